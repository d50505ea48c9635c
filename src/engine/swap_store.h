/*
 * swap_store.h -- optimizer states on NVMe (ZeRO-Infinity), sub-group by
 * sub-group (offload_optimizer.device = "nvme", ZeRO stage 3).
 *
 * Each rank's partition of a parameter group is cut into sub-groups at
 * tensor boundaries: a sub-group closes once it holds sub_group_size
 * elements (the tensor crossing the limit included) or at the group's end,
 * as in DeepSpeed (reference §5.2). Every optimizer state of a group lives
 * in one swap file, <nvme_path>/zero_stage_3/optimizer/rank<R>/group<g>.<state>.swp,
 * each sub-group at an offset aligned for O_DIRECT. Host memory holds only
 * offload_optimizer.buffer_count sub-group-sized buffers, grouped in slots
 * of one buffer per state: a slot holds one sub-group's states. The step
 * walks the sub-groups (pipeline()): with pipeline_read the next one is read
 * into a free slot while the current one is updated, with pipeline_write the
 * previous one is written while the next ones proceed.
 *
 * The gradient accumulators stay in memory (they are partition sized); the
 * fp32 masters too, unless offload_param swaps them (param_swap.h). Files
 * are created and their space reserved when parameters are
 * registered, so a full disk fails dsz_register_params, not a step; they are
 * removed when the store is destroyed (dsz_engine_free). The folder is
 * locked (swap_folder.h), so two engines cannot share it.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aio/aligned_buffer.h"
#include "aio/direct_file.h"
#include "aio/io_engine.h"
#include "common/log.h"
#include "config/config.h"
#include "engine/swap_folder.h"
#include "optim/optimizer.h"

namespace dsz {

struct SubGroup {
    size_t group = 0;
    size_t begin = 0, end = 0;     /* local coordinates in the group's partition */
    uint64_t file_offset = 0;      /* in each of the group's swap files, aligned */
    std::vector<Span> spans;       /* the group's spans inside, offsets from begin */
    std::vector<Segment> tensors;  /* likewise */
    size_t size() const { return end - begin; }
};

/* What the store needs to know of one parameter group. */
struct SwapGroup {
    size_t partition = 0;                 /* local elements */
    const std::vector<Span> *spans = nullptr;
    const std::vector<Segment> *tensors = nullptr;
};

/* Cuts each group's partition into sub-groups (the rule above) and places
 * them at aligned offsets of the group's swap files: group_subs gets each
 * group's sub-group indices, file_bytes each group's file size. */
std::vector<SubGroup> layout_sub_groups(const std::vector<SwapGroup> &groups, int64_t sub_group_size,
                                        std::vector<std::vector<size_t>> *group_subs,
                                        std::vector<uint64_t> *file_bytes);

class SwapStore {
public:
    /* Checks offload_optimizer.nvme_path (it must exist and be writable;
     * DSZ_ERR_CONFIG when unset, DSZ_ERR_IO naming it otherwise), creates and
     * locks this rank's folder, probes O_DIRECT (one warning and buffered
     * I/O where the filesystem refuses it). DSZ_ERR_UNSUPPORTED without
     * libaio or for settings dszero does not implement. */
    SwapStore(const Config &cfg, int rank, const Logger &log);
    ~SwapStore();  /* waits for I/O in flight, removes the files and the folder */
    SwapStore(const SwapStore &) = delete;
    SwapStore &operator=(const SwapStore &) = delete;

    /* Lays out the sub-groups, allocates the buffers, creates the files with
     * their space reserved and writes the states' initial values. */
    void create(const std::vector<SwapGroup> &groups, const Optimizer &opt);

    const std::vector<SubGroup> &sub_groups() const { return subs_; }
    size_t states() const { return n_states_; }
    size_t slots() const { return slots_.size(); }
    size_t buffer_bytes() const;   /* host memory held for swapped states */
    uint64_t disk_bytes() const;   /* size of all swap files */
    const std::string &folder() const { return folder_->path(); }

    /* Every swap file still has the size dszero gave it (DSZ_ERR_IO naming
     * the first that does not). Cheap: run before a step changes anything. */
    void verify() const;

    /* One optimizer step: update(sub-group, its states) for every sub-group
     * with something to update, states read before and written after. On a
     * failure everything in flight is waited for and the error rethrown. */
    void pipeline(const std::function<void(const SubGroup &, float *const *)> &update);

    /* Checkpoints: streams state `s` of group `g` (the whole partition, in
     * order) through a buffer, or overwrites it from `values`. */
    void read_state(size_t g, size_t s, const std::function<void(const float *, size_t)> &sink);
    void write_state(size_t g, size_t s, const float *values);

private:
    aio::Transfer transfer(size_t sub, size_t s, size_t slot, bool write);
    aio::IoEngine::Ticket start(size_t sub, size_t slot, bool write);
    float *buffer(size_t slot, size_t s) const { return slots_[slot][s].as<float>(); }

    Logger log_;
    std::unique_ptr<SwapFolder> folder_;   /* destroyed last: removes the folder */
    bool pipeline_read_ = false, pipeline_write_ = false;
    size_t buffer_count_ = 0;
    int64_t sub_group_size_ = 0;
    std::unique_ptr<aio::IoEngine> io_;
    size_t n_states_ = 0;
    std::vector<SubGroup> subs_;
    std::vector<std::vector<size_t>> group_subs_;        /* sub-group indices of each group */
    std::vector<std::vector<aio::DirectFile>> files_;    /* [group][state] */
    std::vector<uint64_t> file_bytes_;                   /* [group] */
    std::vector<std::vector<aio::AlignedBuffer>> slots_; /* [slot][state] */
};

}  // namespace dsz
