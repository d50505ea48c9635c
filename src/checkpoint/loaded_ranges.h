/*
 * loaded_ranges.h -- what a rank reads from a checkpoint, held aside.
 *
 * dsz_load changes nothing until every rank has read and verified its part,
 * so the planned copies (reshard.h) land in arrays of their own first, one
 * per (group, array) covering that group's target range. They have the
 * engine's array type (common/page_vector.h): where a target range is the
 * engine's whole local array (stages 1-3) the commit swaps it in instead of
 * copying it. Touching fresh memory for the first time cost as much as
 * reading it from disk on the machines measured (about 1-3 GB/s, page
 * faults in a VM), so a helper thread faults the arrays in
 * (MADV_POPULATE_WRITE) ahead of the reads while they wait for the disk.
 * Elements no copy covers (the padding) get the array's initial value.
 */
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/reshard.h"
#include "common/page_vector.h"

namespace dsz {

class LoadedRanges {
public:
    /* `init[k]`: the value of array kind k where nothing is loaded. */
    LoadedRanges(const ReshardTarget &target, const std::vector<float> &init);
    ~LoadedRanges();
    LoadedRanges(const LoadedRanges &) = delete;
    LoadedRanges &operator=(const LoadedRanges &) = delete;
    /* Reads every copy from the shards in dir (verified; see shard_reader.h). */
    void read(const Manifest &m, const std::string &dir, const std::vector<ShardCopy> &copies);

    const float *data(size_t group, size_t kind) const { return arrays_[group * kinds_ + kind].data(); }
    /* The array itself, for the caller to swap with its own (it then holds what was swapped in). */
    PageAlignedFloats &array(size_t group, size_t kind) { return arrays_[group * kinds_ + kind]; }
    size_t size(size_t group) const { return sizes_[group]; }
    uint64_t bytes_read() const { return bytes_read_; }

private:
    void stop_populating();

    size_t kinds_;
    std::vector<size_t> sizes_;
    std::vector<float> init_;
    std::vector<PageAlignedFloats> arrays_;  /* [group * kinds_ + kind] */
    uint64_t bytes_read_ = 0;
    std::atomic<bool> stop_{false};
    std::thread populate_;
};

}  // namespace dsz
