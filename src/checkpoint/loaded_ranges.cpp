/* loaded_ranges.cpp -- see loaded_ranges.h. */
#include "checkpoint/loaded_ranges.h"

#include <sys/mman.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "checkpoint/shard_reader.h"
#include "common/error.h"

namespace dsz {

static constexpr size_t kPopulateStep = size_t(32) << 20;

LoadedRanges::LoadedRanges(const ReshardTarget &target, const std::vector<float> &init)
    : kinds_(target.kinds.size()), init_(init) {
    for (const auto &r : target.ranges) {
        sizes_.push_back(r.second - r.first);
        for (size_t k = 0; k < kinds_; ++k) arrays_.emplace_back().resize(r.second - r.first); /* unset, untouched */
    }
    /* Fault the pages in ahead of the reads, in the order they are filled. */
    std::vector<std::pair<char *, size_t>> blocks;
    for (PageAlignedFloats &a : arrays_)
        if (!a.empty()) blocks.emplace_back(reinterpret_cast<char *>(a.data()), a.size() * sizeof(float));
    populate_ = std::thread([this, blocks = std::move(blocks)] {
        for (const auto &[at, bytes] : blocks)
            for (size_t o = 0; o < bytes; o += kPopulateStep) {
                if (stop_.load(std::memory_order_relaxed)) return;
                if (::madvise(at + o, std::min(kPopulateStep, bytes - o), MADV_POPULATE_WRITE) != 0) return; /* a hint */
            }
    });
}

LoadedRanges::~LoadedRanges() { stop_populating(); }

void LoadedRanges::stop_populating() {
    stop_ = true;
    if (populate_.joinable()) populate_.join();
}

void LoadedRanges::read(const Manifest &m, const std::string &dir, const std::vector<ShardCopy> &copies) {
    /* The initial value wherever no copy writes. */
    std::vector<std::vector<std::pair<size_t, size_t>>> covered(arrays_.size());
    for (const ShardCopy &c : copies) covered[c.group * kinds_ + c.kind].emplace_back(c.dst, c.dst + c.count);
    for (size_t i = 0; i < covered.size(); ++i) {
        auto &iv = covered[i];
        std::sort(iv.begin(), iv.end());
        float *arr = arrays_[i].data();
        const float v = init_[i % kinds_];
        size_t at = 0;
        for (const auto &r : iv) {
            if (r.first > at) std::fill(arr + at, arr + r.first, v);
            at = std::max(at, r.second);
        }
        std::fill(arr + at, arr + sizes_[i / kinds_], v);
    }
    std::unique_ptr<ShardReader> reader;
    int reader_file = -1;
    for (const ShardCopy &c : copies) { /* ordered by file, then offset */
        if (c.file != reader_file) {
            if (reader) bytes_read_ += reader->bytes_read();
            reader.reset(new ShardReader(dir, m.files[static_cast<size_t>(c.file)]));
            reader_file = c.file;
        }
        reader->read(c.src, c.count * sizeof(float), arrays_[c.group * kinds_ + c.kind].data() + c.dst);
    }
    if (reader) bytes_read_ += reader->bytes_read();
    stop_populating(); /* nothing left to fault in for; the arrays may now change hands */
}

}  // namespace dsz
