/* reshard.cpp -- see reshard.h. */
#include "checkpoint/reshard.h"

#include <algorithm>
#include <unordered_map>

#include "common/error.h"
#include "tensor/host_tensor.h"

namespace dsz {

namespace {

struct SavedRef {
    size_t group, index;
};

std::unordered_map<std::string, SavedRef> saved_by_name(const Manifest &m) {
    std::unordered_map<std::string, SavedRef> out;
    for (size_t g = 0; g < m.groups.size(); ++g)
        for (size_t k = 0; k < m.groups[g].params.size(); ++k)
            if (!out.emplace(m.groups[g].params[k].name, SavedRef{g, k}).second)
                fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' is listed twice", m.path.c_str(),
                     m.groups[g].params[k].name.c_str());
    return out;
}

/* Checks that the two parameter sets are the same; returns, for each target
 * parameter, where it was saved. */
std::vector<SavedRef> match_params(const Manifest &m, const ReshardTarget &t) {
    if (m.groups.size() != t.ranges.size())
        fail(DSZ_ERR_CHECKPOINT, "%s: %zu parameter groups saved, %zu registered", m.path.c_str(), m.groups.size(),
             t.ranges.size());
    const auto saved = saved_by_name(m);
    auto ep_of = [&](size_t g) { return g < t.ep_sizes.size() ? t.ep_sizes[g] : 0; };
    std::vector<size_t> registered_in(m.groups.size(), 0);
    for (const ReshardParam &p : t.params)
        if (p.group < registered_in.size()) ++registered_in[p.group];
    for (size_t g = 0; g < m.groups.size(); ++g) {
        const int ep = ep_of(g);
        if ((m.groups[g].ep_size > 0) != (ep > 0))
            fail(DSZ_ERR_CHECKPOINT, "%s: group %zu ('%s') holds %s in the checkpoint but %s here", m.path.c_str(), g,
                 m.groups[g].name.c_str(), m.groups[g].ep_size > 0 ? "MoE expert parameters" : "ordinary parameters",
                 ep > 0 ? "expert parameters" : "ordinary parameters");
        /* Every expert is somewhere: this rank holds 1/ep of the group's. */
        if (ep > 0 && m.groups[g].params.size() != registered_in[g] * static_cast<size_t>(ep))
            fail(DSZ_ERR_CHECKPOINT, "%s: expert group %zu ('%s') holds %zu parameters in the checkpoint, but %zu on "
                                     "each of the %d expert-parallel ranks here",
                 m.path.c_str(), g, m.groups[g].name.c_str(), m.groups[g].params.size(), registered_in[g], ep);
    }
    std::vector<SavedRef> where;
    std::unordered_map<std::string, bool> registered;
    for (const ReshardParam &p : t.params) {
        registered[p.name] = true;
        auto it = saved.find(p.name);
        if (it == saved.end())
            fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' is registered but not in the checkpoint", m.path.c_str(),
                 p.name.c_str());
        const ManifestParam &sp = m.groups[it->second.group].params[it->second.index];
        if (sp.shape != p.shape)
            fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' has shape %s in the checkpoint but %s here", m.path.c_str(),
                 p.name.c_str(), shape_string(sp.shape).c_str(), shape_string(p.shape).c_str());
        if (it->second.group != p.group)
            fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' is in group %zu in the checkpoint but in group %zu here",
                 m.path.c_str(), p.name.c_str(), it->second.group, p.group);
        where.push_back(it->second);
    }
    for (const ManifestGroup &G : m.groups)
        for (const ManifestParam &sp : G.params)
            if (G.ep_size == 0 && !registered.count(sp.name))
                fail(DSZ_ERR_CHECKPOINT, "%s: parameter '%s' is in the checkpoint but not registered", m.path.c_str(),
                     sp.name.c_str());
    return where;
}

}  // namespace

std::vector<ShardCopy> plan_reshard(const Manifest &m, const ReshardTarget &t) {
    const std::vector<SavedRef> where = match_params(m, t);
    std::vector<ShardCopy> copies;
    for (size_t i = 0; i < t.params.size(); ++i) {
        const ReshardParam &p = t.params[i];
        const ManifestGroup &G = m.groups[where[i].group];
        const ManifestParam &sp = G.params[where[i].index];
        const auto range = t.ranges[p.group];
        /* The piece of this parameter inside the target range, in target coordinates... */
        const size_t a = std::max(range.first, p.offset), b = std::min(range.second, p.offset + p.numel);
        if (a >= b) continue;
        /* ... and in saved coordinates, cut at the saved partitions. */
        size_t s = sp.offset + (a - p.offset);
        const size_t s_end = sp.offset + (b - p.offset);
        while (s < s_end) {
            const size_t part = s / G.partition;
            const int rank = m.file_of(where[i].group, sp.slice, part);
            const size_t part_begin = part * G.partition;
            const size_t piece_end = std::min(s_end, part_begin + G.partition);
            for (size_t k = 0; k < t.kinds.size(); ++k) {
                const ManifestArray *arr = m.array(rank, p.group, t.kinds[k]);
                if (!arr)
                    fail(DSZ_ERR_CHECKPOINT, "%s: shard %s has no array '%s' for group %zu", m.path.c_str(),
                         m.files[static_cast<size_t>(rank)].name.c_str(), t.kinds[k].c_str(), p.group);
                copies.push_back(ShardCopy{rank, arr->offset + (s - part_begin) * sizeof(float), p.group, k,
                                           p.offset + (s - sp.offset) - range.first, piece_end - s});
            }
            s = piece_end;
        }
    }
    std::sort(copies.begin(), copies.end(), [](const ShardCopy &x, const ShardCopy &y) {
        return x.file != y.file ? x.file < y.file : x.src < y.src;
    });
    std::vector<ShardCopy> merged;
    for (const ShardCopy &c : copies) {
        if (!merged.empty()) {
            ShardCopy &l = merged.back();
            if (l.file == c.file && l.group == c.group && l.kind == c.kind && l.src + l.count * sizeof(float) == c.src &&
                l.dst + l.count == c.dst) {
                l.count += c.count;
                continue;
            }
        }
        merged.push_back(c);
    }
    return merged;
}

}  // namespace dsz
