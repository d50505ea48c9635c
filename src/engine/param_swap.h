/*
 * param_swap.h -- the fp32 master weights on NVMe (ZeRO-Infinity parameter
 * offload: offload_param.device = "nvme", ZeRO stage 3).
 *
 * At stage 3 the fp32 master partition is the parameters' only copy on a
 * rank. With parameter swapping it lives in one file per parameter group,
 * <nvme_path>/zero_stage_3/fp32params/rank<R>/group<g>.fp32.swp, cut into
 * the same sub-groups as the optimizer's swap files (layout_sub_groups),
 * each at an offset aligned for O_DIRECT. No master is kept in memory
 * between uses; host memory holds one staging arena of
 *   max(largest sub-group, buffer_count x min(buffer_size, largest partition))
 * fp32 elements (plus one I/O block per buffer for alignment), which must fit
 * in max_in_cpu elements. Gathers read the ranges they need through
 * buffer_count buffers of that arena (aligned reads covering each range,
 * buffer_count of them in flight); the optimizer step reads one sub-group
 * into the whole arena, updates it and writes it back. Gathers and the step
 * never run at the same time, so they share the arena.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "aio/aligned_buffer.h"
#include "aio/direct_file.h"
#include "aio/io_engine.h"
#include "engine/swap_folder.h"
#include "engine/swap_store.h"

namespace dsz {

class ParamSwap {
public:
    /* Checks offload_param (nvme_path as SwapFolder does) and locks the folder. */
    ParamSwap(const Config &cfg, int rank, const Logger &log);
    ~ParamSwap();  /* removes the files and the folder */
    ParamSwap(const ParamSwap &) = delete;
    ParamSwap &operator=(const ParamSwap &) = delete;

    /* Lays out the sub-groups, allocates the arena (DSZ_ERR_CONFIG when it
     * exceeds max_in_cpu), creates the files with their space reserved and
     * writes masters[g] (a partition-sized array per group) into them. */
    void create(const std::vector<SwapGroup> &groups, const std::vector<const float *> &masters);

    size_t buffer_bytes() const { return arena_.size(); }
    uint64_t disk_bytes() const;
    const std::string &folder() const { return folder_->path(); }
    const std::vector<SubGroup> &sub_groups() const { return subs_; }

    /* Every file still has the size dszero gave it (DSZ_ERR_IO naming it). */
    void verify() const;

    /* Elements [begin, begin + n) of group g's partition, streamed in order
     * to sink (pieces of at most one buffer). */
    void read(size_t g, size_t begin, size_t n, const std::function<void(const float *, size_t)> &sink);
    /* Overwrites group g's whole partition from `values`. */
    void write(size_t g, const float *values);
    /* The optimizer step: the sub-group of group g starting at `begin` is
     * read into the arena (returned), and written back from it. */
    float *load_sub_group(size_t g, size_t begin);
    void store_sub_group(size_t g, size_t begin);

private:
    size_t find_sub(size_t g, size_t begin) const;   /* the sub-group holding element `begin` */
    aio::Transfer sub_transfer(size_t sub, bool write) const;

    Logger log_;
    std::unique_ptr<SwapFolder> folder_;   /* destroyed last: removes the folder */
    std::unique_ptr<aio::IoEngine> io_;
    size_t buffer_count_ = 0, buffer_size_ = 0, max_in_cpu_ = 0;
    int64_t sub_group_size_ = 0;
    size_t chunk_ = 0;                     /* elements one gather buffer takes */
    std::vector<SubGroup> subs_;
    std::vector<std::vector<size_t>> group_subs_;
    std::vector<aio::DirectFile> files_;   /* [group]; closed for groups without elements */
    std::vector<uint64_t> file_bytes_;
    aio::AlignedBuffer arena_;
};

}  // namespace dsz
