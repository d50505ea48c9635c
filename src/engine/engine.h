/*
 * engine.h -- the training engine behind a dsz_engine handle.
 *
 * The engine owns everything around the host's forward and backward: the
 * flat fp32 master weights and gradient accumulators of each parameter
 * group (laid out by zero/layout.h), the optimizer state, the loss scaler,
 * the LR schedule, the step counters and the timers. One micro-batch is
 * grad_ready* -> backward -> step; step acts at the accumulation boundary.
 * This file holds no C types beyond what the shims in src/api pass through.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "checkpoint/background_remover.h"
#include "comm/communicator.h"
#include "comm/topology.h"
#include "common/log.h"
#include "common/page_vector.h"
#include "common/thread_pool.h"
#include "config/config.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "tensor/host_tensor.h"
#include "zero/layout.h"

namespace dsz {

class SwapStore;
class ParamSwap;

struct EngineOptions {
    int world_size = 0;   /* 0: from the launcher */
    int rank = -1;
    int local_rank = -1;
    int cpu_threads = 0;
    std::string auto_values;
    dsz_log_fn log_fn = nullptr;
    void *log_user = nullptr;
    int log_level = DSZ_LOG_INFO;
    bool log_all_ranks = false;
    void *mpi_comm = nullptr;   /* pointer to a host MPI_Comm, or nullptr */
    /* Set by the pipeline executor (src/pipe): the engine runs over `comm`
     * (a stage's data-parallel group) instead of creating one, sums gradient
     * norms (hence overflow checks) over `norm_comm` too (the same data rank
     * of the other stages), and logs as world rank `log_rank`. */
    std::shared_ptr<comm::Communicator> comm;
    std::shared_ptr<comm::Communicator> norm_comm;
    int log_rank = -1;          /* -1: this engine's rank */
};

struct ParamRecord {
    std::string name;
    HostTensor host;
    int group = 0;
    size_t offset = 0;         /* inside the group's flat buffer */
    bool grad_in_window = false;   /* a gradient arrived in this accumulation window */
    bool grad_in_micro = false;    /* ... in this micro-batch */
    int refs = 0;                  /* dsz_gather counts not yet released */
    /* Stage 3 (src/engine/zero_gather.cpp): the gathered full values. */
    std::unique_ptr<char[]> full;  /* nullptr: not available on this rank */
    bool persistent = false;       /* param_persistence_threshold: kept once gathered */
    int64_t fetch = -1;            /* id of the fetch filling `full`, -1: none */
};

/* Stage 3: one all-gather of several parameters' values. Each rank sends a
 * header (its fetch's id and a hash of the parameter list, so ranks that
 * fetch different lists are caught) and its pieces of the parameters, in
 * list order, in the model dtype. */
struct ParamFetch {
    int64_t id = 0;
    size_t domain = 0;             /* every parameter's group is in this domain */
    std::vector<size_t> params;
    std::vector<size_t> bytes;     /* bytes from each rank, header included */
    std::vector<char> send, recv;
    comm::Request req;
};

/* The ranks that share parameter groups: the world for ordinary groups; for
 * MoE expert groups (DSZ_GROUP_EXPERT) the expert-data-parallel group of
 * their ep_size, the ranks holding the same experts. Gradients are reduced,
 * partitions laid out and (stage 3) parameters gathered over `comm`. */
struct Domain {
    int ep_size = 0;                                /* 0: the world */
    std::unique_ptr<comm::Topology> topo;           /* expert domains */
    comm::Communicator *comm = nullptr;             /* the world or topo->expert_data() */
    std::unique_ptr<comm::Communicator> gathers;    /* stage 3 across ranks: the gathers' own */
    /* Expert domains: the world ranks of the expert-data-parallel group of
     * expert-parallel rank e, in partition order (checkpoints' slices). */
    std::vector<std::vector<int>> slice_files;
    int size() const { return comm->size(); }
    int rank() const { return comm->rank(); }
};

struct GroupState {
    std::string name;
    size_t domain = 0;             /* index into Engine::domains_ */
    int ep_size = 0;               /* > 0: MoE expert parameters */
    /* Expert groups: the parameter names every expert-parallel rank holds
     * in this group, in flat order (checkpoint manifests list them all). */
    std::vector<std::vector<std::string>> slice_names;
    double base_lr = 0;
    double weight_decay = 0;
    double lr = 0;                 /* current (scheduled) */
    ScheduleValue sched{};         /* current schedule value (betas for OneCycle) */
    int64_t step_count = 0;        /* updates applied */
    /* Partitions: the domain's size; this rank owns partition `part`. Local
     * arrays cover flat [base, base + master.size()): the whole padded group
     * at stage 0, this rank's partition at stages >= 1. */
    int parts = 1, part = 0;
    size_t base = 0;
    PageAlignedFloats master;      /* fp32 weights */
    std::vector<PageAlignedFloats> states;
    /* Gradient accumulator: the padded group at stages 0/1 (reduced at the
     * boundary), this rank's partition at stage 2 (reduced bucket by bucket
     * during backward). */
    std::vector<float> grad;
    std::vector<float> part_grad;  /* stage 1: the reduce-scattered partition */
    bool grad_window = false;      /* stage 2: grad holds this window's sum */
    std::vector<Segment> tensors;  /* local coordinates */
    std::vector<Span> spans;       /* local coordinates, what this rank updates */
};

/* Stage 2: a fixed flat range of a group whose gradients are reduce-scattered
 * together once every parameter overlapping it has handed over its gradient. */
struct Bucket {
    size_t group = 0;
    size_t begin = 0, end = 0;     /* flat range in the group */
    size_t expected = 0;           /* parameter elements inside the range */
    size_t filled = 0;             /* ... received in this micro-batch */
    int slot = -1;                 /* index of its buffers in the pool, -1: none */
    comm::Request req;
};

/* Stage 2 keeps at most kBucketsInFlight buckets' buffers; they are reused
 * from micro-batch to micro-batch, never freed and re-allocated. */
struct BucketSlot {
    std::vector<float> buf;        /* the micro-batch's gradients of the range */
    std::vector<float> recv;       /* this rank's reduced share */
    std::vector<uint16_t> buf16, recv16;  /* the same on the wire, 16-bit communication_data_type */
    bool busy = false;
};

/* A dsz_param_group after the C shim: which settings the host gave. */
struct GroupSpec {
    std::string name;
    bool has_lr = false, has_weight_decay = false;
    double lr = 0, weight_decay = 0;
    int ep_size = 0;               /* > 0: expert parameters (DSZ_GROUP_EXPERT) */
};

struct StepResult {
    bool boundary = false, stepped = false, skipped = false;
};

/* Wall-clock accumulators for wall_clock_breakdown (milliseconds). */
struct StepTimers {
    double grad_ready = 0, backward = 0, step = 0;          /* this micro-step */
    double win_grad_ready = 0, win_backward = 0, win_step = 0; /* this window */
    double norm = 0, update = 0;                            /* last boundary */
    double comm_wait = 0;                                   /* since the last dsz_step */
    double last_comm_wait = 0;                              /* ... reported by it */
};

class Engine {
public:
    Engine(const std::string &config_text, const EngineOptions &opts);
    ~Engine();

    const Config &config() const { return cfg_; }
    const Logger &logger() const { return log_; }
    int rank() const { return rank_; }
    int world_size() const { return world_; }
    /* The world communicator; MoE groups are split from it (src/api/moe_api.cpp). */
    comm::Communicator &communicator() const { return *comm_; }

    /* names[i] / tensors[i] / groups[i] describe parameter i; `specs` may be
     * empty (one group with the config's settings). */
    void register_params(const std::vector<std::string> &names, const std::vector<const DLTensor *> &tensors,
                         const std::vector<int> &groups, const std::vector<GroupSpec> &specs);
    bool registered() const { return registered_; }
    /* Throws DSZ_ERR_STATE naming `what` before dsz_register_params. */
    void require_registered(const char *what) const;
    size_t param_index(const std::string &name) const;

    /* dsz_gather & co. (zero_gather.cpp); `out` may be nullptr. */
    void gather(const std::vector<size_t> &indices, DLTensor *out);
    void release(const std::vector<size_t> &indices);
    void prefetch(const std::vector<size_t> &indices);
    void param_tensor(size_t index, DLTensor *out) const;

    double loss_multiplier() const;
    void grad_ready(size_t index, const DLTensor *grad);
    void backward();
    StepResult step();

    /* Counters and values for dsz_get_state / dsz_step_info. */
    int64_t global_steps() const { return global_steps_; }
    int64_t micro_steps() const { return micro_steps_; }
    int64_t skipped_steps() const { return skipped_steps_; }
    int64_t global_samples() const { return global_samples_; }
    double loss_scale() const { return scaler_.scale(); }
    double grad_norm() const { return grad_norm_; }
    double last_comm_wait_ms() const { return timers_.last_comm_wait; }
    struct MemoryFigures {
        size_t host_params = 0, master = 0, optimizer = 0, grads = 0, comm_buffers = 0, gathered = 0;
        size_t total() const { return master + optimizer + grads + comm_buffers + gathered; }
    };
    MemoryFigures memory() const;
    size_t peak_memory() const { return peak_total_; }
    int64_t comm_elements() const { return comm_elements_; }
    int64_t collectives() const { return collectives_; }
    double group_lr(size_t g) const;
    size_t n_groups() const { return groups_.size(); }
    size_t n_params() const { return params_.size(); }
    size_t n_elements() const { return n_elements_; }

    /* Forgets the micro-batches of the current accumulation window (their
     * gradients and counts), as if they never happened: the pipeline
     * executor's way out of an aborted batch. Stages 0 and 1 only. */
    void discard_window();

    void save(const std::string &dir, const std::string &tag, const std::string &client_state);
    /* This rank's partition of optimizer state s of group g, wherever it
     * lives (memory or NVMe swap): streamed to `sink` in order, or replaced
     * by `values` (a local-sized array, consumed). Checkpoints use these. */
    void read_state_partition(size_t g, int s, const std::function<void(const float *, size_t)> &sink);
    void put_state_partition(size_t g, int s, PageAlignedFloats &values);
    std::string load(const std::string &dir, const std::string &tag, uint32_t flags);
    /* Runs f (dsz_save, dsz_load) with the fp32 masters in GroupState::master
     * even when they are swapped to NVMe (offload_param nvme): read in
     * before, written back after when `changes`, and released. */
    void with_masters_in_memory(bool changes, const std::function<void()> &f);

private:
    void zero_untouched_grads();
    void clear_grads();
    double grad_sumsq();               /* sum of squares of all accumulated grads */
    void apply_update(double grad_mul);
    UpdateArgs group_update_args(const GroupState &G, double grad_mul) const;
    /* NVMe offload (src/engine/swap_step.cpp) */
    void open_swap();
    void prepare_swap(const std::vector<GroupState> &groups);
    void apply_update_swapped(double grad_mul);
    void open_param_swap();
    void swap_params_out();            /* register_params: masters -> NVMe */
    void refresh_schedule();
    void write_back_all();             /* master -> host tensors, then publish */
    std::string load_verified(const std::string &dir, const std::string &tag, uint32_t flags);
    std::string write_shard(const std::string &dir, uint32_t *crc, uint64_t *bytes, std::vector<uint32_t> *chunk_crcs);
    /* ZeRO (src/engine/zero_*.cpp) */
    size_t local_of(const GroupState &G, size_t flat) const { return flat - G.base; }
    void build_buckets();
    void bucket_grad(const ParamRecord &p, const char *src, DType dt);
    void launch_ready_buckets(bool all);
    int take_slot(Bucket &k);
    void complete_bucket(Bucket &k);   /* wait, add into the partition, free its slot */
    void finish_buckets();
    void reduce_at_boundary();         /* stages 0/1 */
    /* Gradients on the wire (communication_data_type, gradient_predivide_factor):
     * wire_out scales `grads` (consumed) by 1/predivide and returns them in
     * the communication dtype (fp32: in place; 16-bit: in `b16`); wire_in
     * turns reduced wire values back into fp32 sums. */
    bool wire16() const { return comm_dtype_ != DType::f32; }
    const void *wire_out(float *grads, size_t n, std::vector<uint16_t> &b16);
    void wire_in(const void *wire, float *dst, size_t n);
    const float *reduced_grad(const GroupState &G) const;
    void publish_params();             /* stages 1-2: all-gather updated weights */
    /* Stage 3 (zero_gather.cpp) */
    bool stage3() const { return cfg_.zero.stage == 3; }
    void check_indices(const char *what, const std::vector<size_t> &indices) const;
    void describe(size_t index, DLTensor *out) const;
    void start_fetch(const std::vector<size_t> &params);
    void start_domain_fetch(size_t domain, const std::vector<size_t> &params);
    void finish_fetch(int64_t id);     /* waits for it and unpacks */
    void finish_all_fetches();
    void drop_values(ParamRecord &p);
    void refresh_gathered();           /* after an update or a load */
    void prefetch_along_trace();
    bool reused_soon(size_t index) const;
    void trace_micro_batch_end();
    /* Runs a blocking communication step, adding its time to comm_wait. */
    template <class F> void waiting(F &&f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        timers_.comm_wait += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    void broadcast_initial_params();
    double global_sumsq(double local);
    void update_scaler(bool overflow);  /* and log DeepSpeed's scaler lines */
    void log_progress() const;
    void log_timers(bool boundary);
    size_t owned_bytes() const;        /* everything dszero allocated for the model */
    void log_memory(const char *where);  /* memory_breakdown */

    Config cfg_;
    Logger log_;
    int world_ = 1, rank_ = 0;
    std::shared_ptr<comm::Communicator> comm_;
    std::shared_ptr<comm::Communicator> norm_comm_;  /* EngineOptions::norm_comm */
    std::vector<Bucket> buckets_;      /* stage 2, in flat order across groups */
    std::vector<BucketSlot> slots_;
    std::vector<char> publish_send_, publish_recv_;  /* all-gather staging, reused */
    DType comm_dtype_ = DType::f32;    /* gradient reductions (communication_data_type) */
    double predivide_ = 1.0;           /* gradients are divided by it before a reduction */
    std::vector<uint16_t> wire16_, wire16_out_;  /* stages 0/1: 16-bit staging */
    std::vector<size_t> in_flight_;    /* launched, not yet completed, oldest first */
    /* domains_[0] is the world; one more per ep_size of the expert groups.
     * Stage 3: gathers run on each domain's own communicator, so their order
     * never interleaves with the gradient buckets' (which may launch at
     * different moments on different ranks). */
    std::vector<Domain> domains_;
    bool in_pipeline_ = false;         /* EngineOptions::comm was given */
    Domain &domain_of(const GroupState &G) { return domains_[G.domain]; }
    comm::Communicator &group_comm(const GroupState &G) const { return *domains_[G.domain].comm; }
    size_t expert_domain(int ep_size);  /* finds or creates it (collective) */
    void check_expert_groups(const std::vector<ParamRecord> &params, const std::vector<GroupState> &groups);
    std::vector<std::vector<std::string>> expert_slice_names(const std::vector<ParamRecord> &params, size_t g,
                                                             size_t domain);
    std::deque<ParamFetch> fetches_;   /* in flight, oldest first */
    size_t available_elements_ = 0;    /* of the parameters whose `full` exists */
    int64_t next_fetch_ = 0;
    /* The order of dsz_gather calls in one micro-batch, for prefetching. */
    enum class Trace : uint8_t { recording, valid, restart };
    Trace trace_state_ = Trace::recording;
    std::vector<std::vector<size_t>> trace_;
    size_t trace_pos_ = 0;             /* next call expected (valid) */
    long next_bucket_ = -1;            /* next to launch (descending order) */
    std::unique_ptr<ThreadPool> pool_;
    std::unique_ptr<Optimizer> optimizer_;
    LrSchedule schedule_;
    LossScaler scaler_;
    FlatLayout layout_;
    std::vector<ParamRecord> params_;
    std::unordered_map<std::string, size_t> by_name_;
    std::vector<GroupState> groups_;
    bool registered_ = false;
    size_t n_elements_ = 0;            /* parameter elements registered */

    bool in_micro_ = false;            /* grads arrived since the last backward */
    bool backward_done_ = false;       /* backward called, step not yet */
    int64_t micro_steps_ = 0, global_steps_ = 0, skipped_steps_ = 0, global_samples_ = 0;
    int64_t sched_t_ = -1;             /* the schedule's last_batch_iteration */
    double grad_norm_ = 0;
    StepTimers timers_;
    size_t peak_bytes_ = 0;            /* memory_breakdown: since its last print */
    size_t peak_total_ = 0;            /* dsz_memory_stats: since creation */
    int64_t comm_elements_ = 0, collectives_ = 0;
    void note_memory();                /* updates peak_total_ */
    void count_comm(size_t elements) { comm_elements_ += static_cast<int64_t>(elements); ++collectives_; }
    bool agreed_ = false;              /* dsz_load: every rank verified */
    BackgroundRemover removing_;       /* dsz_save: the checkpoint a save replaced */
    /* NVMe offload: optimizer states swapped by sub-group (swap_store.h). */
    std::unique_ptr<SwapStore> swap_;
    /* NVMe offload of the fp32 masters (param_swap.h): while set and no
     * checkpoint runs, GroupState::master is empty. */
    std::unique_ptr<ParamSwap> param_swap_;
    /* Set when a failure left the engine inconsistent (a swap error in the
     * middle of a step); every later call reports it. */
    std::string failed_;
};

}  // namespace dsz
