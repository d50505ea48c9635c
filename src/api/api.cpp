/*
 * api.cpp -- the C ABI of the engine (include/dszero.h).
 *
 * Thin shims: check pointers and handles, translate C structs into engine
 * calls, and let guarded() turn failures into statuses. Live handles are
 * kept in registries so that a freed or foreign pointer is refused with a
 * message instead of being dereferenced.
 */
#include <cmath>
#include <cstring>
#include <memory>

#include "api/shim.h"
#include "config/config.h"

namespace dsz {

Registry<dsz_engine> &engines() {
    static Registry<dsz_engine> r;
    return r;
}

Engine &live(dsz_engine *e) {
    if (!e) fail(DSZ_ERR_INVALID_ARGUMENT, "engine handle is NULL");
    if (!engines().contains(e)) fail(DSZ_ERR_INVALID_ARGUMENT, "engine handle %p is not a live engine (freed already?)", static_cast<void *>(e));
    return *e->impl;
}

Engine &owned(dsz_engine *e, const char *fn) {
    Engine &impl = live(e);
    if (e->lender)
        fail(DSZ_ERR_STATE, "%s: this engine belongs to a %s, which runs its backward and step and frees it", fn,
             e->lender);
    return impl;
}

void need(const void *p, const char *what) {
    if (!p) fail(DSZ_ERR_INVALID_ARGUMENT, "%s is NULL", what);
}

void check_struct_size(size_t size, size_t min, const char *what) {
    if (size < min)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s.size is %zu, smaller than the first version of the struct (%zu): "
                                       "fill it with its _init function",
             what, size, min);
}

namespace {

/* First published size of each growable struct: callers may not pass less. */
constexpr size_t kInitOptionsV1 = offsetof(dsz_init_options, log_all_ranks) + sizeof(int32_t);
constexpr size_t kStepInfoV1 = offsetof(dsz_step_info, loss_scale) + sizeof(double);
constexpr size_t kStateV1 = sizeof(dsz_engine_state);

Registry<dsz_init_options> &heap_options() {
    static Registry<dsz_init_options> r;
    return r;
}

}  // namespace

EngineOptions engine_options(const dsz_init_options *o) {
    dsz_init_options d;
    dsz_init_options_init(&d, sizeof d);
    if (o) {
        const dsz_init_options given = read_sized(o, kInitOptionsV1, "dsz_init_options");
        std::memcpy(&d, &given, std::min<size_t>(o->size, sizeof d));
    }
    EngineOptions e;
    e.world_size = d.world_size;
    e.rank = d.rank;
    e.local_rank = d.local_rank;
    e.cpu_threads = d.cpu_threads;
    if (d.auto_values) e.auto_values = d.auto_values;
    e.log_fn = d.log_fn;
    e.log_user = d.log_user_data;
    e.log_level = d.log_level;
    e.log_all_ranks = d.log_all_ranks != 0;
    if (d.size >= offsetof(dsz_init_options, mpi_comm) + sizeof(void *)) e.mpi_comm = d.mpi_comm;
    return e;
}

std::string config_text(const char *config) {
    need(config, "config");
    const char *p = config;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
    if (*p == '{') return config;
    if (!*p) fail(DSZ_ERR_CONFIG, "config is empty: pass JSON text or the path of a JSON file");
    return read_config_file(config);
}

namespace {

char *copy_string(const std::string &s) {
    char *out = new char[s.size() + 1];
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

}  // namespace


}  // namespace dsz

using namespace dsz;

extern "C" {

DSZ_API dsz_status dsz_init_options_init(dsz_init_options *opts, size_t size) {
    return guarded("dsz_init_options_init", [&] {
        need(opts, "opts");
        check_struct_size(size, kInitOptionsV1, "dsz_init_options");
        dsz_init_options d;
        std::memset(&d, 0, sizeof d);
        d.size = static_cast<uint32_t>(std::min(size, sizeof d));
        d.world_size = 0;
        d.rank = -1;
        d.local_rank = -1;
        d.cpu_threads = 0;
        d.log_level = DSZ_LOG_INFO;
        std::memset(opts, 0, size);
        std::memcpy(opts, &d, std::min(size, sizeof d));
    });
}

DSZ_API dsz_status dsz_init_options_new(dsz_init_options **out) {
    return guarded("dsz_init_options_new", [&] {
        need(out, "out");
        *out = nullptr;
        std::unique_ptr<dsz_init_options> o(new dsz_init_options);
        dsz_init_options_init(o.get(), sizeof *o);
        heap_options().add(o.get());
        *out = o.release();
    });
}

DSZ_API dsz_status dsz_init_options_free(dsz_init_options *opts) {
    return guarded("dsz_init_options_free", [&] {
        if (!opts) return;
        if (!heap_options().remove(opts))
            fail(DSZ_ERR_INVALID_ARGUMENT, "options %p were not allocated by dsz_init_options_new or are already freed",
                 static_cast<void *>(opts));
        delete opts;
    });
}

DSZ_API dsz_status dsz_init(dsz_engine **out, const char *config, const dsz_init_options *opts) {
    return guarded("dsz_init", [&] {
        need(out, "out");
        *out = nullptr;
        const std::string text = config_text(config);
        std::unique_ptr<dsz_engine> e(new dsz_engine);
        e->impl.reset(new Engine(text, engine_options(opts)));
        engines().add(e.get());
        *out = e.release();
    });
}

DSZ_API dsz_status dsz_engine_free(dsz_engine *engine) {
    return guarded("dsz_engine_free", [&] {
        if (!engine) return;
        if (engines().contains(engine)) owned(engine, "dsz_engine_free");
        if (!engines().remove(engine))
            fail(DSZ_ERR_INVALID_ARGUMENT, "engine handle %p is not a live engine (freed already?)",
                 static_cast<void *>(engine));
        delete engine;
    });
}

DSZ_API dsz_status dsz_config_resolve(const char *config, const dsz_init_options *opts, char **resolved_json) {
    return guarded("dsz_config_resolve", [&] {
        if (resolved_json) *resolved_json = nullptr;
        const EngineOptions o = engine_options(opts);
        HostValues host;
        host.world_size = o.world_size > 0 ? o.world_size : 1;
        host.auto_values_json = o.auto_values;
        const ParseResult r = parse_config(config_text(config), host);
        if (resolved_json) *resolved_json = copy_string(config_to_json(r.config));
    });
}

DSZ_API dsz_status dsz_register_params(dsz_engine *engine, const dsz_param *params, size_t n_params,
                                       const dsz_param_group *groups, size_t n_groups) {
    return guarded("dsz_register_params", [&] {
        Engine &e = live(engine);
        if (n_params > 0) need(params, "params");
        if (n_groups > 0) need(groups, "groups");
        std::vector<std::string> names(n_params);
        std::vector<const DLTensor *> tensors(n_params);
        std::vector<int> gidx(n_params);
        for (size_t i = 0; i < n_params; ++i) {
            if (params[i].flags != 0)
                fail(DSZ_ERR_INVALID_ARGUMENT, "params[%zu].flags is 0x%x: no flags are defined yet", i, params[i].flags);
            names[i] = params[i].name ? params[i].name : "";
            tensors[i] = params[i].tensor;
            gidx[i] = params[i].group;
        }
        std::vector<GroupSpec> specs(n_groups);
        for (size_t g = 0; g < n_groups; ++g) {
            const dsz_param_group &G = groups[g];
            if (G.set_fields & ~uint32_t(DSZ_GROUP_LR | DSZ_GROUP_WEIGHT_DECAY | DSZ_GROUP_EXPERT))
                fail(DSZ_ERR_INVALID_ARGUMENT, "groups[%zu].set_fields has unknown bits 0x%x", g, G.set_fields);
            if (G.set_fields & DSZ_GROUP_EXPERT) {
                if (G.ep_size < 1 || G.ep_size > (1u << 24))
                    fail(DSZ_ERR_INVALID_ARGUMENT, "groups[%zu].ep_size is %u: an expert group needs ep_size >= 1", g,
                         G.ep_size);
                specs[g].ep_size = static_cast<int>(G.ep_size);
            } else if (G.ep_size != 0) {
                fail(DSZ_ERR_INVALID_ARGUMENT, "groups[%zu].ep_size is %u without DSZ_GROUP_EXPERT in set_fields", g,
                     G.ep_size);
            }
            specs[g].name = G.name ? G.name : "";
            specs[g].has_lr = G.set_fields & DSZ_GROUP_LR;
            specs[g].has_weight_decay = G.set_fields & DSZ_GROUP_WEIGHT_DECAY;
            specs[g].lr = G.lr;
            specs[g].weight_decay = G.weight_decay;
            if (specs[g].has_lr && !(std::isfinite(G.lr) && G.lr >= 0))
                fail(DSZ_ERR_INVALID_ARGUMENT, "groups[%zu].lr is %g: expected a finite value >= 0", g, G.lr);
            if (specs[g].has_weight_decay && !(std::isfinite(G.weight_decay) && G.weight_decay >= 0))
                fail(DSZ_ERR_INVALID_ARGUMENT, "groups[%zu].weight_decay is %g: expected a finite value >= 0", g,
                     G.weight_decay);
        }
        e.register_params(names, tensors, gidx, specs);
    });
}

DSZ_API dsz_status dsz_param_index(dsz_engine *engine, const char *name, size_t *index) {
    return guarded("dsz_param_index", [&] {
        Engine &e = live(engine);
        need(name, "name");
        need(index, "index");
        *index = e.param_index(name);
    });
}

/* The index list of dsz_gather & co.: NULL only with n == 0. */
static std::vector<size_t> index_list(const size_t *indices, size_t n) {
    if (n && !indices) fail(DSZ_ERR_INVALID_ARGUMENT, "indices is NULL but n is %zu", n);
    return std::vector<size_t>(indices, indices + n);
}

DSZ_API dsz_status dsz_gather(dsz_engine *engine, const size_t *indices, size_t n, DLTensor *out) {
    return guarded("dsz_gather", [&] { live(engine).gather(index_list(indices, n), out); });
}

DSZ_API dsz_status dsz_release(dsz_engine *engine, const size_t *indices, size_t n) {
    return guarded("dsz_release", [&] { live(engine).release(index_list(indices, n)); });
}

DSZ_API dsz_status dsz_prefetch(dsz_engine *engine, const size_t *indices, size_t n) {
    return guarded("dsz_prefetch", [&] { live(engine).prefetch(index_list(indices, n)); });
}

DSZ_API dsz_status dsz_param_tensor(dsz_engine *engine, size_t index, DLTensor *out) {
    return guarded("dsz_param_tensor", [&] {
        Engine &e = live(engine);
        need(out, "out");
        e.param_tensor(index, out);
    });
}

DSZ_API dsz_status dsz_loss_scale(dsz_engine *engine, double *multiplier) {
    return guarded("dsz_loss_scale", [&] {
        Engine &e = live(engine);
        need(multiplier, "multiplier");
        *multiplier = e.loss_multiplier();
    });
}

DSZ_API dsz_status dsz_grad_ready(dsz_engine *engine, size_t index, const DLTensor *grad) {
    return guarded("dsz_grad_ready", [&] { live(engine).grad_ready(index, grad); });
}

DSZ_API dsz_status dsz_backward(dsz_engine *engine) {
    return guarded("dsz_backward", [&] { owned(engine, "dsz_backward").backward(); });
}

DSZ_API dsz_status dsz_step_info_init(dsz_step_info *info, size_t size) {
    return guarded("dsz_step_info_init", [&] {
        need(info, "info");
        check_struct_size(size, kStepInfoV1, "dsz_step_info");
        std::memset(info, 0, size);
        info->size = static_cast<uint32_t>(std::min(size, sizeof *info));
    });
}

DSZ_API dsz_status dsz_step(dsz_engine *engine, dsz_step_info *info) {
    Engine *e = nullptr;
    StepResult r;
    const dsz_status st = guarded("dsz_step", [&] {
        e = &owned(engine, "dsz_step");
        if (info) check_struct_size(info->size, kStepInfoV1, "dsz_step_info");
        r = e->step();
    });
    if (info && e && (st == DSZ_OK || st == DSZ_ERR_LOSS_SCALE)) {
        dsz_step_info out;
        std::memset(&out, 0, sizeof out);
        out.size = info->size;
        out.boundary = r.boundary || st == DSZ_ERR_LOSS_SCALE;
        out.stepped = r.stepped;
        out.skipped = r.skipped || st == DSZ_ERR_LOSS_SCALE;
        out.global_steps = e->global_steps();
        out.micro_steps = e->micro_steps();
        out.skipped_steps = e->skipped_steps();
        out.grad_norm = e->grad_norm();
        out.lr = e->n_groups() ? e->group_lr(0) : 0.0;
        out.loss_scale = e->loss_scale();
        out.comm_wait_ms = e->last_comm_wait_ms();
        std::memcpy(info, &out, std::min<size_t>(info->size, sizeof out));
    }
    return st;
}

DSZ_API dsz_status dsz_engine_state_init(dsz_engine_state *state, size_t size) {
    return guarded("dsz_engine_state_init", [&] {
        need(state, "state");
        check_struct_size(size, kStateV1, "dsz_engine_state");
        std::memset(state, 0, size);
        state->size = static_cast<uint32_t>(std::min(size, sizeof *state));
    });
}

DSZ_API dsz_status dsz_get_state(dsz_engine *engine, dsz_engine_state *state) {
    return guarded("dsz_get_state", [&] {
        Engine &e = live(engine);
        need(state, "state");
        check_struct_size(state->size, kStateV1, "dsz_engine_state");
        const Config &c = e.config();
        dsz_engine_state s;
        std::memset(&s, 0, sizeof s);
        s.size = state->size;
        s.world_size = e.world_size();
        s.rank = e.rank();
        s.zero_stage = c.zero.stage;
        const DLDataType dt = dtype_to_dlpack(c.model_dtype() == ModelDtype::fp16   ? DType::f16
                                              : c.model_dtype() == ModelDtype::bf16 ? DType::bf16
                                                                                    : DType::f32);
        s.dtype_code = dt.code;
        s.dtype_bits = dt.bits;
        s.train_batch_size = static_cast<int32_t>(c.train_batch_size);
        s.micro_batch_size = static_cast<int32_t>(c.train_micro_batch_size_per_gpu);
        s.gradient_accumulation_steps = static_cast<int32_t>(c.gradient_accumulation_steps);
        s.n_params = static_cast<int32_t>(e.n_params());
        s.n_groups = static_cast<int32_t>(e.n_groups());
        s.n_elements = static_cast<int64_t>(e.n_elements());
        s.global_steps = e.global_steps();
        s.micro_steps = e.micro_steps();
        s.skipped_steps = e.skipped_steps();
        s.global_samples = e.global_samples();
        s.loss_scale = e.loss_scale();
        s.grad_norm = e.grad_norm();
        std::memcpy(state, &s, std::min<size_t>(state->size, sizeof s));
    });
}

DSZ_API dsz_status dsz_memory_stats_init(dsz_memory_stats *stats, size_t size) {
    return guarded("dsz_memory_stats_init", [&] {
        need(stats, "stats");
        check_struct_size(size, sizeof(dsz_memory_stats), "dsz_memory_stats");
        std::memset(stats, 0, size);
        stats->size = static_cast<uint32_t>(std::min(size, sizeof *stats));
    });
}

DSZ_API dsz_status dsz_memory_stats_get(dsz_engine *engine, dsz_memory_stats *stats) {
    return guarded("dsz_memory_stats_get", [&] {
        Engine &e = live(engine);
        need(stats, "stats");
        check_struct_size(stats->size, sizeof(dsz_memory_stats), "dsz_memory_stats");
        const Engine::MemoryFigures m = e.memory();
        dsz_memory_stats s;
        std::memset(&s, 0, sizeof s);
        s.size = stats->size;
        s.host_param_bytes = static_cast<int64_t>(m.host_params);
        s.master_bytes = static_cast<int64_t>(m.master);
        s.optimizer_bytes = static_cast<int64_t>(m.optimizer);
        s.grad_bytes = static_cast<int64_t>(m.grads);
        s.comm_buffer_bytes = static_cast<int64_t>(m.comm_buffers);
        s.gathered_bytes = static_cast<int64_t>(m.gathered);
        s.total_bytes = static_cast<int64_t>(m.total());
        s.peak_total_bytes = static_cast<int64_t>(std::max(e.peak_memory(), m.total()));
        s.comm_elements = e.comm_elements();
        s.collectives = e.collectives();
        std::memcpy(stats, &s, std::min<size_t>(stats->size, sizeof s));
    });
}

DSZ_API dsz_status dsz_get_lr(dsz_engine *engine, size_t group, double *lr) {
    return guarded("dsz_get_lr", [&] {
        Engine &e = live(engine);
        need(lr, "lr");
        e.require_registered("dsz_get_lr");
        *lr = e.group_lr(group);
    });
}

DSZ_API dsz_status dsz_save(dsz_engine *engine, const char *dir, const char *tag, const char *client_state_json) {
    return guarded("dsz_save", [&] {
        Engine &e = live(engine);
        need(dir, "dir");
        e.with_masters_in_memory(false,
                                 [&] { e.save(dir, tag ? tag : "", client_state_json ? client_state_json : ""); });
    });
}

DSZ_API dsz_status dsz_load(dsz_engine *engine, const char *dir, const char *tag, uint32_t flags,
                            char **client_state_json) {
    return guarded("dsz_load", [&] {
        if (client_state_json) *client_state_json = nullptr;
        Engine &e = live(engine);
        need(dir, "dir");
        std::string client;
        e.with_masters_in_memory(true, [&] { client = e.load(dir, tag ? tag : "", flags); });
        if (client_state_json) *client_state_json = copy_string(client);
    });
}

}  // extern "C"
