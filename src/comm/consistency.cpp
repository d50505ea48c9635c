/* consistency.cpp -- cross-rank agreement checks (see consistency.h). */
#include "comm/consistency.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "common/error.h"

namespace dsz {
namespace comm {
namespace {

uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

std::string rank_list(const std::vector<int> &ranks) {
    std::string s = ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
    return s;
}

/* Groups ranks by key, largest group first (ties: lowest rank first). */
template <class K> std::vector<std::pair<K, std::vector<int>>> group_ranks(const std::vector<K> &keys) {
    std::map<K, std::vector<int>> by;
    for (size_t r = 0; r < keys.size(); ++r) by[keys[r]].push_back(static_cast<int>(r));
    std::vector<std::pair<K, std::vector<int>>> out(by.begin(), by.end());
    std::stable_sort(out.begin(), out.end(), [](const auto &a, const auto &b) {
        if (a.second.size() != b.second.size()) return a.second.size() > b.second.size();
        return a.second.front() < b.second.front();
    });
    return out;
}

std::string clip(const std::string &s) { return s.size() <= 200 ? s : s.substr(0, 197) + "..."; }

std::vector<uint64_t> gather_u64(Communicator &comm, const uint64_t *mine, size_t per_rank) {
    std::vector<uint64_t> all(per_rank * static_cast<size_t>(comm.size()));
    comm.all_gather(mine, all.data(), Partition::from_counts(std::vector<size_t>(
                                          static_cast<size_t>(comm.size()), per_rank)),
                    sizeof(uint64_t));
    return all;
}

}  // namespace

uint64_t digest(const void *bytes, size_t n, uint64_t seed) {
    const unsigned char *p = static_cast<const unsigned char *>(bytes);
    uint64_t h = mix(seed ^ (n * 0x9e3779b97f4a7c15ULL));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    uint64_t tail = 0;
    if (n > i) std::memcpy(&tail, p + i, n - i);
    return mix(h ^ tail ^ (static_cast<uint64_t>(n - i) << 56));
}

void check_consistent(Communicator &comm, const std::string &what, const void *bytes, size_t n) {
    const uint64_t mine = digest(bytes, n);
    const std::vector<uint64_t> all = gather_u64(comm, &mine, 1);
    auto groups = group_ranks(all);
    if (groups.size() == 1) return;
    std::string msg = what + " differs across ranks:";
    for (size_t g = 0; g < groups.size(); ++g)
        msg += strprintf("%s %s %s", g ? ";" : "", rank_list(groups[g].second).c_str(),
                         g == 0 ? (groups[g].second.size() == 1 ? "has one version" : "agree")
                                : "differ from them");
    throw Error(DSZ_ERR_INVALID_ARGUMENT, msg);
}

std::vector<std::string> all_gather_text(Communicator &comm, const std::string &text) {
    const uint64_t len = text.size();
    const std::vector<uint64_t> lens = gather_u64(comm, &len, 1);
    std::vector<size_t> counts(lens.begin(), lens.end());
    const Partition part = Partition::from_counts(counts);
    std::vector<char> all(part.total() + 1, 0);
    comm.all_gather(text.data(), all.data(), part, 1);
    std::vector<std::string> out(counts.size());
    for (size_t r = 0; r < counts.size(); ++r)
        out[r].assign(all.data() + part.offset(static_cast<int>(r)), counts[r]);
    return out;
}

void check_consistent(Communicator &comm, const std::string &what, const std::vector<std::string> &items) {
    const size_t W = static_cast<size_t>(comm.size());
    std::vector<uint64_t> item_digests(items.size());
    uint64_t total = digest(nullptr, 0, items.size());
    for (size_t i = 0; i < items.size(); ++i) {
        item_digests[i] = digest(items[i].data(), items[i].size(), i);
        total = mix(total ^ item_digests[i]);
    }
    const uint64_t head[2] = {items.size(), total};
    const std::vector<uint64_t> heads = gather_u64(comm, head, 2);
    bool same = true;
    for (size_t r = 1; r < W; ++r)
        if (heads[2 * r] != heads[0] || heads[2 * r + 1] != heads[1]) same = false;
    if (same) return;

    /* They differ: every rank takes the same path from here on. */
    std::vector<size_t> counts(W);
    size_t min_count = SIZE_MAX;
    for (size_t r = 0; r < W; ++r) {
        counts[r] = static_cast<size_t>(heads[2 * r]);
        min_count = std::min(min_count, counts[r]);
    }
    const Partition part = Partition::from_counts(counts);
    std::vector<uint64_t> all(part.total());
    comm.all_gather(item_digests.data(), all.data(), part, sizeof(uint64_t));
    size_t first = min_count;
    for (size_t i = 0; i < min_count && first == min_count; ++i)
        for (size_t r = 1; r < W; ++r)
            if (all[part.offset(static_cast<int>(r)) + i] != all[i]) {
                first = i;
                break;
            }

    /* Each rank's text of item `first` (none: "nothing"). */
    const bool has = first < items.size();
    const std::vector<std::string> texts = all_gather_text(comm, has ? "'" + clip(items[first]) + "'" : std::string());
    std::vector<std::string> per_rank(W);
    for (size_t r = 0; r < W; ++r) per_rank[r] = texts[r].empty() ? std::string("nothing") : texts[r];

    std::string msg = what + " differs across ranks";
    auto count_groups = group_ranks(counts);
    if (count_groups.size() > 1) {
        msg += " (";
        for (size_t g = 0; g < count_groups.size(); ++g)
            msg += strprintf("%s%s %s %zu", g ? ", " : "", rank_list(count_groups[g].second).c_str(),
                             count_groups[g].second.size() == 1 ? "has" : "have", count_groups[g].first);
        msg += " items)";
    }
    msg += strprintf(": first difference at item %zu:", first);
    auto text_groups = group_ranks(per_rank);
    for (size_t g = 0; g < text_groups.size(); ++g)
        msg += strprintf("%s %s %s %s", g ? ";" : "", rank_list(text_groups[g].second).c_str(),
                         text_groups[g].second.size() == 1 ? "has" : "have", text_groups[g].first.c_str());
    throw Error(DSZ_ERR_INVALID_ARGUMENT, msg);
}

void check_distinct(Communicator &comm, const std::string &what, const std::vector<std::string> &items) {
    if (comm.size() == 1) return;
    std::vector<uint64_t> mine;
    for (const std::string &s : items) mine.push_back(digest(s.data(), s.size()));
    const std::vector<uint64_t> all = gather_u64(comm, mine.data(), mine.size());
    std::map<uint64_t, int> owner;
    const size_t n = items.size();
    for (size_t r = 0; r < static_cast<size_t>(comm.size()); ++r)
        for (size_t k = 0; k < n; ++k) {
            auto it = owner.emplace(all[r * n + k], static_cast<int>(r)).first;
            if (it->second == static_cast<int>(r)) continue;
            /* Every rank finds the same first collision; the ranks holding it name the item. */
            std::string msg = strprintf("%s: item %zu of rank %d is also an item of rank %d", what.c_str(), k,
                                        static_cast<int>(r), it->second);
            if (comm.rank() == static_cast<int>(r)) msg += " ('" + clip(items[k]) + "')";
            throw Error(DSZ_ERR_INVALID_ARGUMENT, msg + "; each must be different");
        }
}

}  // namespace comm
}  // namespace dsz
