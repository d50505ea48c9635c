/*
 * engine.cpp -- creating an engine and registering the model's parameters.
 *
 * Creation parses the config (src/config), builds the optimizer, schedule
 * and loss scaler, and decides the world size. Registration validates every
 * tensor before changing anything, lays the parameters out flat
 * (zero/layout.h), copies their initial values into the fp32 masters and
 * prepares the spans the optimizer walks.
 */
#include "engine/engine.h"
#include "engine/param_swap.h"
#include "engine/swap_store.h"

#include <algorithm>

#include "comm/consistency.h"
#include "common/error.h"
#include "tensor/convert.h"

namespace dsz {

/* Elements per span: small enough to spread a tensor over threads, large
 * enough that per-span overhead is noise. */
static constexpr size_t kSpanElements = size_t(1) << 16;

static int min_log_level(const std::string &name, int fallback) {
    if (name.empty()) return fallback;
    std::string l = name;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (l == "debug") return DSZ_LOG_DEBUG;
    if (l == "info") return DSZ_LOG_INFO;
    if (l == "warning") return DSZ_LOG_WARNING;
    return DSZ_LOG_ERROR;
}

static const char *dtype_label(ModelDtype d) {
    return d == ModelDtype::fp16 ? "fp16" : d == ModelDtype::bf16 ? "bf16" : "fp32";
}

static DType model_dtype(ModelDtype d) {
    return d == ModelDtype::fp16 ? DType::f16 : d == ModelDtype::bf16 ? DType::bf16 : DType::f32;
}

Engine::Engine(const std::string &config_text, const EngineOptions &opts)
    : schedule_(SchedulerConfig{}) {
    comm::CommOptions co;
    co.world_size = opts.world_size;
    co.rank = opts.rank;
    co.mpi_comm = opts.mpi_comm;
    if (opts.comm) comm_ = opts.comm;
    else comm_ = comm::create_communicator(co);
    norm_comm_ = opts.norm_comm;
    world_ = comm_->size();
    rank_ = comm_->rank();

    HostValues host;
    host.world_size = world_;
    host.auto_values_json = opts.auto_values;
    ParseResult parsed = parse_config(config_text, host);
    cfg_ = std::move(parsed.config);
    log_ = Logger(opts.log_fn, opts.log_user, min_log_level(cfg_.log_level, opts.log_level),
                  opts.log_rank >= 0 ? opts.log_rank : rank_,
                  opts.log_all_ranks);
    for (const std::string &w : parsed.warnings) log_.warn(w);

    schedule_ = LrSchedule(cfg_.scheduler);
    /* DeepSpeed warns that the lr was read "before the scheduler started" on
     * every construction; that one is noise, the others matter. */
    for (const std::string &w : schedule_.warnings())
        log_.log(w.rfind("Attempting", 0) == 0 ? DSZ_LOG_DEBUG : DSZ_LOG_WARNING, w);
    if (cfg_.optimizer.type != OptimizerType::none) optimizer_ = make_optimizer(cfg_.optimizer);
    if (cfg_.scheduler.type == SchedulerType::one_cycle && cfg_.scheduler.cycle_momentum &&
        (cfg_.optimizer.type == OptimizerType::sgd || cfg_.optimizer.type == OptimizerType::adagrad))
        log_.warn("scheduler.params.cycle_momentum: the optimizer has no betas, so momentum is not cycled");
    if (cfg_.fp16.enabled) scaler_ = LossScaler(cfg_.fp16, cfg_.zero.stage >= 1);
    in_pipeline_ = opts.comm != nullptr;
    domains_.emplace_back();
    domains_[0].comm = comm_.get();
    if (world_ > 1 && cfg_.zero.stage == 3) domains_[0].params = comm_->split(0, rank_, "zero3-params");
    if (cfg_.zero.overlap_comm && cfg_.zero.stage >= 2) {
        const std::string why = comm::background_progress_missing(*comm_);
        if (!why.empty())
            log_.warn("zero_optimization.overlap_comm: communication advances only while dszero is called, so "
                      "little of it is hidden behind the host's compute: " + why);
    }
    /* Parameter offload is a stage-3 feature, ignored below as in DeepSpeed. */
    if (cfg_.zero.stage == 3 && cfg_.zero.offload_param.device == OffloadDevice::nvme) open_param_swap();
    if (cfg_.zero.offload_optimizer.device == OffloadDevice::nvme) open_swap();
    pool_.reset(new ThreadPool(opts.cpu_threads));
    if (cfg_.dump_state) log_.info("dszero engine configuration (dump_state):\n" + config_to_json(cfg_));

    log_.logf(DSZ_LOG_INFO,
              "dszero %s: ZeRO stage %d, %s, optimizer %s, scheduler %s, world size %d, micro batch %lld, "
              "gradient accumulation %lld, %d CPU threads",
              dsz_version(), cfg_.zero.stage, dtype_label(cfg_.model_dtype()),
              optimizer_ ? optimizer_->name() : "none",
              cfg_.scheduler.type == SchedulerType::none ? "none" : cfg_.scheduler.type_name.c_str(), world_,
              static_cast<long long>(cfg_.train_micro_batch_size_per_gpu),
              static_cast<long long>(cfg_.gradient_accumulation_steps), pool_->size());
}

Engine::~Engine() = default;

void Engine::require_registered(const char *what) const {
    if (!registered_) fail(DSZ_ERR_STATE, "%s: no parameters registered yet (call dsz_register_params first)", what);
    if (!failed_.empty()) fail(DSZ_ERR_STATE, "%s: the engine failed earlier and cannot be used any more: %s", what, failed_.c_str());
}

size_t Engine::param_index(const std::string &name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(DSZ_ERR_NOT_FOUND, "no parameter named '%s' is registered", name.c_str());
    return it->second;
}

double Engine::group_lr(size_t g) const {
    if (g >= groups_.size())
        fail(DSZ_ERR_INVALID_ARGUMENT, "parameter group %zu does not exist (%zu groups)", g, groups_.size());
    return groups_[g].lr;
}

void Engine::register_params(const std::vector<std::string> &names, const std::vector<const DLTensor *> &tensors,
                             const std::vector<int> &groups, const std::vector<GroupSpec> &specs) {
    if (registered_) fail(DSZ_ERR_STATE, "dsz_register_params was already called for this engine");
    const size_t n = names.size();
    const int n_groups = specs.empty() ? 1 : static_cast<int>(specs.size());
    const DType want = model_dtype(cfg_.model_dtype());

    std::vector<ParamRecord> params(n);
    std::unordered_map<std::string, size_t> by_name;
    std::vector<LayoutParam> lp(n);
    for (size_t i = 0; i < n; ++i) {
        if (names[i].empty()) fail(DSZ_ERR_INVALID_ARGUMENT, "parameter %zu has an empty or NULL name", i);
        const std::string what = "parameter '" + names[i] + "'";
        if (!by_name.emplace(names[i], i).second)
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s is registered twice (indices %zu and %zu)", what.c_str(),
                 by_name[names[i]], i);
        if (groups[i] < 0 || groups[i] >= n_groups)
            fail(DSZ_ERR_INVALID_ARGUMENT, "%s names group %d, but there %s %d group%s", what.c_str(), groups[i],
                 n_groups == 1 ? "is" : "are", n_groups, n_groups == 1 ? "" : "s");
        params[i].name = names[i];
        params[i].host = check_host_tensor(tensors[i], what);
        params[i].group = groups[i];
        if (params[i].host.dtype != want)
            fail(DSZ_ERR_DTYPE, "%s is %s, but the config trains in %s (%s); register %s tensors", what.c_str(),
                 dtype_name(params[i].host.dtype), dtype_name(want),
                 cfg_.fp16.enabled ? "fp16.enabled" : cfg_.bf16.enabled ? "bf16.enabled" : "no fp16/bf16 section enabled",
                 dtype_name(want));
        lp[i] = LayoutParam{params[i].host.numel, groups[i]};
    }

    std::vector<GroupState> gs(static_cast<size_t>(n_groups));
    for (int g = 0; g < n_groups; ++g) {
        GroupState &G = gs[static_cast<size_t>(g)];
        const GroupSpec spec = specs.empty() ? GroupSpec{} : specs[static_cast<size_t>(g)];
        G.name = spec.name.empty() ? "group" + std::to_string(g) : spec.name;
        G.ep_size = spec.ep_size;
    }
    check_expert_groups(params, gs);
    std::vector<int> parts;
    for (GroupState &G : gs) {
        if (G.ep_size > 0) G.domain = expert_domain(G.ep_size);
        G.parts = domains_[G.domain].size();
        G.part = domains_[G.domain].rank();
        parts.push_back(G.parts);
    }
    for (size_t g = 0; g < gs.size(); ++g)
        if (gs[g].ep_size > 0) gs[g].slice_names = expert_slice_names(params, g, gs[g].domain);
    FlatLayout layout = make_flat_layout(lp, parts);
    const bool partitioned = cfg_.zero.stage >= 1;
    const int n_states = optimizer_ ? optimizer_->state_count() : 0;
    for (int g = 0; g < n_groups; ++g) {
        GroupState &G = gs[static_cast<size_t>(g)];
        const GroupLayout &L = layout.groups[static_cast<size_t>(g)];
        const GroupSpec spec = specs.empty() ? GroupSpec{} : specs[static_cast<size_t>(g)];
        G.base_lr = spec.has_lr ? spec.lr : cfg_.optimizer.lr;
        G.weight_decay = spec.has_weight_decay ? spec.weight_decay : cfg_.optimizer.weight_decay;
        /* Stage 0 holds and updates the whole group; stages >= 1 this rank's partition. */
        G.base = partitioned ? static_cast<size_t>(G.part) * L.partition : 0;
        const size_t local = partitioned ? L.partition : L.padded;
        G.master.assign(local, 0.0f);
        if (!swap_) /* else they live on NVMe (prepare_swap) */
            for (int s = 0; s < n_states; ++s) G.states.emplace_back(local, optimizer_->state_init(s));
        G.grad.assign(cfg_.zero.stage >= 2 ? local : L.padded, 0.0f);
        if (cfg_.zero.stage == 1 && G.parts > 1) G.part_grad.assign(local, 0.0f);
        for (size_t k = 0; k < L.params.size(); ++k) {
            ParamRecord &p = params[L.params[k]];
            p.offset = L.offsets[k];
            const Range own = partitioned ? partition_overlap(L, G.part, p.offset, p.host.numel)
                                          : Range{p.offset, p.offset + p.host.numel};
            if (own.size() == 0) continue;
            G.tensors.push_back(Segment{own.begin - G.base, own.size()});
            /* Stage 3 writes no host tensor: gathers convert the masters. */
            for (size_t b = own.begin; b < own.end; b += kSpanElements) {
                const size_t len = std::min(kSpanElements, own.end - b);
                G.spans.push_back(Span{b - G.base, len,
                                       cfg_.zero.stage == 3 ? nullptr
                                                            : static_cast<char *>(p.host.data) +
                                                                  (b - p.offset) * dtype_size(p.host.dtype)});
            }
        }
        /* DeepSpeed's ZeRO (stages >= 1) hands its optimizer one flat fp32
         * tensor per group partition, so LAMB's trust ratio is that of the
         * rank's whole partition (it depends on the world size, as there). */
        if (partitioned && cfg_.optimizer.type == OptimizerType::lamb && !G.tensors.empty()) {
            const size_t first = G.tensors.front().offset;
            const size_t end = G.tensors.back().offset + G.tensors.back().n;
            G.tensors.assign(1, Segment{first, end - first});
        }
    }

    if (swap_) prepare_swap(gs);
    params_ = std::move(params);
    n_elements_ = 0;
    for (const ParamRecord &p : params_) n_elements_ += p.host.numel;
    by_name_ = std::move(by_name);
    groups_ = std::move(gs);
    layout_ = std::move(layout);
    /* Every rank starts from rank 0's values. Stage 3 must not write into
     * the host's tensors, so it receives them in a scratch buffer. */
    const bool scratch = cfg_.zero.stage == 3 && world_ > 1;
    if (!scratch) broadcast_initial_params();
    std::vector<char> initial;
    int64_t persistent_total = 0;
    for (ParamRecord &p : params_) {
        GroupState &G = groups_[static_cast<size_t>(p.group)];
        const size_t es = dtype_size(p.host.dtype);
        const char *src = static_cast<const char *>(p.host.data);
        if (scratch && p.host.numel && G.parts > 1) {
            initial.assign(src, src + p.host.numel * es);
            group_comm(G).broadcast(initial.data(), initial.size(), 0);
            src = initial.data();
        }
        const int64_t numel = static_cast<int64_t>(p.host.numel);
        if (cfg_.zero.stage == 3 && numel <= cfg_.zero.param_persistence_threshold &&
            persistent_total + numel <= cfg_.zero.model_persistence_threshold) {
            p.persistent = true;
            persistent_total += numel;
        }
        const Range own = partitioned ? partition_overlap(layout_.groups[static_cast<size_t>(p.group)], G.part,
                                                          p.offset, p.host.numel)
                                      : Range{p.offset, p.offset + p.host.numel};
        if (own.size() == 0) continue;
        convert_to_f32(src + (own.begin - p.offset) * es, p.host.dtype, G.master.data() + local_of(G, own.begin),
                       own.size());
    }
    if (param_swap_) swap_params_out();
    if (cfg_.zero.stage >= 2) build_buckets();
    sched_t_ = cfg_.scheduler.last_batch_iteration;
    refresh_schedule();
    registered_ = true;
    note_memory();
    log_memory("Engine after register_params");
    log_.logf(DSZ_LOG_INFO, "registered %zu parameters (%zu elements) in %d group%s on %d rank%s", n, n_elements(),
              n_groups, n_groups == 1 ? "" : "s", world_, world_ == 1 ? "" : "s");
}

size_t Engine::expert_domain(int ep_size) {
    for (size_t d = 1; d < domains_.size(); ++d)
        if (domains_[d].ep_size == ep_size) return d;
    Domain D;
    D.ep_size = ep_size;
    D.topo.reset(new comm::Topology(comm_, comm::TopologySpec{1, ep_size}));
    D.comm = &D.topo->expert_data();
    D.slice_files = comm::Topology::expert_data_groups(D.topo->spec(), world_);
    if (D.comm->size() > 1 && cfg_.zero.stage == 3)
        D.params = D.comm->split(0, D.comm->rank(), "zero3-expert-params");
    domains_.push_back(std::move(D));
    return domains_.size() - 1;
}

/* Ranks must agree on the groups and on every ordinary parameter. Expert
 * parameters differ within an expert-parallel group (each rank holds other
 * experts) but must have the same shapes there, and the same names across
 * the expert-data-parallel group. Collective; every rank throws alike. */
void Engine::check_expert_groups(const std::vector<ParamRecord> &params, const std::vector<GroupState> &groups) {
    std::vector<std::string> items;
    for (size_t g = 0; g < groups.size(); ++g)
        items.push_back("group " + std::to_string(g) + " '" + groups[g].name + "' ep_size " +
                        std::to_string(groups[g].ep_size));
    std::vector<size_t> expert_count(groups.size(), 0);
    for (const ParamRecord &p : params) {
        const GroupState &G = groups[static_cast<size_t>(p.group)];
        const std::string what = G.ep_size > 0 ? "expert parameter " + std::to_string(expert_count[static_cast<size_t>(p.group)]++) +
                                                     " of group '" + G.name + "'"
                                               : p.name;
        items.push_back(what + " " + dtype_name(p.host.dtype) + " " + shape_string(p.host.shape) + " group " +
                        std::to_string(p.group));
    }
    if (world_ > 1) comm::check_consistent(*comm_, "dsz_register_params: the parameters", items);
    for (const GroupState &G : groups) {
        if (G.ep_size > 0 && in_pipeline_)
            fail(DSZ_ERR_UNSUPPORTED, "group '%s' holds MoE expert parameters: expert groups are not supported inside "
                                      "a pipeline stage yet", G.name.c_str());
        if (G.ep_size > 0 && world_ % G.ep_size != 0)
            fail(DSZ_ERR_INVALID_ARGUMENT, "group '%s': ep_size %d does not divide the world size %d", G.name.c_str(),
                 G.ep_size, world_);
    }
    if (world_ == 1) return;
    std::vector<int> seen;
    for (const GroupState &G : groups) {
        if (G.ep_size == 0 || std::find(seen.begin(), seen.end(), G.ep_size) != seen.end()) continue;
        seen.push_back(G.ep_size);
        const Domain &D = domains_[expert_domain(G.ep_size)];
        std::vector<std::string> names;
        for (const ParamRecord &p : params)
            if (groups[static_cast<size_t>(p.group)].ep_size == G.ep_size) names.push_back(p.name);
        const std::string ep = std::to_string(G.ep_size);
        comm::check_consistent(*D.comm, "dsz_register_params: the expert parameters (ep_size " + ep +
                                            ") across an expert-data-parallel group", names);
        comm::check_distinct(D.topo->expert(), "dsz_register_params: the expert parameter names (ep_size " + ep +
                                                   ") across an expert-parallel group", names);
    }
}

/* The names of group g's parameters on every rank of this rank's
 * expert-parallel group, by expert-parallel rank. Collective there. */
std::vector<std::vector<std::string>> Engine::expert_slice_names(const std::vector<ParamRecord> &params, size_t g,
                                                                size_t domain) {
    std::string mine;
    for (const ParamRecord &p : params)
        if (static_cast<size_t>(p.group) == g) mine.append(p.name).push_back('\0');
    std::vector<std::vector<std::string>> out;
    for (const std::string &text : comm::all_gather_text(domains_[domain].topo->expert(), mine)) {
        out.emplace_back();
        for (size_t a = 0; a < text.size();) {
            const size_t b = text.find('\0', a);
            out.back().push_back(text.substr(a, b - a));
            a = b + 1;
        }
    }
    return out;
}

void Engine::refresh_schedule() {
    for (GroupState &G : groups_) {
        G.sched = schedule_.at(sched_t_, G.base_lr);
        G.lr = G.sched.lr;
    }
}

}  // namespace dsz
