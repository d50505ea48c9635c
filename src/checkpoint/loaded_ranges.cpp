/* loaded_ranges.cpp -- see loaded_ranges.h. */
#include "checkpoint/loaded_ranges.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

#include "checkpoint/shard_reader.h"
#include "common/error.h"

namespace dsz {

static constexpr size_t kPage = 4096;
static constexpr size_t kPopulateStep = size_t(32) << 20;

void LoadedRanges::Free::operator()(float *p) const { std::free(p); }

LoadedRanges::LoadedRanges(const ReshardTarget &target, const std::vector<float> &init)
    : kinds_(target.kinds.size()), init_(init) {
    size_t total = 0;
    for (const auto &r : target.ranges) {
        sizes_.push_back(r.second - r.first);
        for (size_t k = 0; k < kinds_; ++k) { /* page-aligned arrays: O_DIRECT reads land in place */
            total = (total + kPage / sizeof(float) - 1) / (kPage / sizeof(float)) * (kPage / sizeof(float));
            offset_.push_back(total);
            total += r.second - r.first;
        }
    }
    bytes_ = std::max<size_t>(1, (total * sizeof(float) + kPage - 1) / kPage * kPage);
    base_.reset(static_cast<float *>(std::aligned_alloc(kPage, bytes_)));
    if (!base_) throw std::bad_alloc();
    /* Fault the pages in ahead of the reads, in the order they are filled. */
    char *at = reinterpret_cast<char *>(base_.get());
    const size_t bytes = bytes_;
    populate_ = std::thread([this, at, bytes] {
        for (size_t o = 0; o < bytes && !stop_.load(std::memory_order_relaxed); o += kPopulateStep)
            if (::madvise(at + o, std::min(kPopulateStep, bytes - o), MADV_POPULATE_WRITE) != 0) break; /* a hint */
    });
}

LoadedRanges::~LoadedRanges() {
    stop_ = true;
    if (populate_.joinable()) populate_.join();
}

void LoadedRanges::read(const Manifest &m, const std::string &dir, const std::vector<ShardCopy> &copies) {
    /* The initial value wherever no copy writes. */
    std::vector<std::vector<std::pair<size_t, size_t>>> covered(offset_.size());
    for (const ShardCopy &c : copies) covered[c.group * kinds_ + c.kind].emplace_back(c.dst, c.dst + c.count);
    for (size_t i = 0; i < covered.size(); ++i) {
        auto &iv = covered[i];
        std::sort(iv.begin(), iv.end());
        float *arr = base_.get() + offset_[i];
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
        reader->read(c.src, c.count * sizeof(float), base_.get() + offset_[c.group * kinds_ + c.kind] + c.dst);
    }
    if (reader) bytes_read_ += reader->bytes_read();
}

}  // namespace dsz
