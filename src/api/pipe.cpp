/*
 * pipe.cpp -- the C ABI of pipeline parallelism (the "Pipeline parallelism"
 * section of include/dszero.h).
 *
 * Thin shims over src/pipe: schedules and partitions are pure functions; a
 * dsz_pipe_engine holds an Executor and the engine handle it lends the host
 * for its stage (api/shim.h), registered like any engine handle so that the
 * usual engine calls accept it.
 */
#include <algorithm>
#include <cstring>

#include "api/shim.h"
#include "pipe/executor.h"
#include "pipe/partition.h"
#include "pipe/schedule.h"

struct dsz_pipe_engine {
    dsz_engine stage;                              /* lent to the host */
    std::unique_ptr<dsz::pipe::Executor> impl;
};

namespace dsz {
namespace {

constexpr size_t kPipeOptionsV1 = sizeof(dsz_pipe_options);
constexpr size_t kPipeInfoV1 = sizeof(dsz_pipe_info);
constexpr size_t kBatchInfoV1 = sizeof(dsz_pipe_batch_info);

Registry<dsz_pipe_engine> &pipes() {
    static Registry<dsz_pipe_engine> r;
    return r;
}

dsz_pipe_engine &live_pipe(dsz_pipe_engine *p) {
    if (!p) fail(DSZ_ERR_INVALID_ARGUMENT, "pipeline engine handle is NULL");
    if (!pipes().contains(p))
        fail(DSZ_ERR_INVALID_ARGUMENT, "pipeline engine handle %p is not live (freed already?)", static_cast<void *>(p));
    return *p;
}

/* Zeroes `size` bytes of a growable struct and sets its size field. */
template <class T>
void init_sized(T *s, size_t size, size_t min, const char *what) {
    need(s, what);
    check_struct_size(size, min, what);
    std::memset(static_cast<void *>(s), 0, size);
    s->size = static_cast<uint32_t>(std::min(size, sizeof(T)));
}

template <class T>
void write_sized(T *dst, const T &src) {
    std::memcpy(static_cast<void *>(dst), &src, std::min<size_t>(dst->size, sizeof(T)));
}

}  // namespace
}  // namespace dsz

using namespace dsz;

extern "C" {

DSZ_API dsz_status dsz_pipe_schedule(int32_t kind, int32_t micro_batches, int32_t stages, int32_t stage_id,
                                     dsz_pipe_instr *out, size_t capacity, size_t *n_instr) {
    return guarded("dsz_pipe_schedule", [&] {
        need(n_instr, "n_instr");
        *n_instr = 0;
        const std::vector<pipe::Instr> s =
            pipe::make_schedule(static_cast<pipe::ScheduleKind>(kind), micro_batches, stages, stage_id);
        *n_instr = s.size();
        if (capacity == 0 && !out) return;
        if (capacity < s.size())
            fail(DSZ_ERR_INVALID_ARGUMENT, "capacity %zu is smaller than the %zu instructions of the schedule",
                 capacity, s.size());
        need(out, "out");
        for (size_t i = 0; i < s.size(); ++i)
            out[i] = dsz_pipe_instr{static_cast<int32_t>(s[i].op), s[i].step, s[i].buffer, s[i].micro_batch};
    });
}

DSZ_API dsz_status dsz_pipe_schedule_size(int32_t kind, int32_t micro_batches, int32_t stages, int32_t stage_id,
                                          int32_t *n_buffers, int32_t *n_steps) {
    return guarded("dsz_pipe_schedule_size", [&] {
        const auto k = static_cast<pipe::ScheduleKind>(kind);
        pipe::check_schedule_args(k, micro_batches, stages, stage_id);
        if (n_buffers) *n_buffers = pipe::schedule_buffers(k, micro_batches, stages, stage_id);
        if (n_steps) *n_steps = pipe::schedule_steps(k, micro_batches, stages);
    });
}

DSZ_API dsz_status dsz_pipe_partition(const char *method, size_t n_layers, const int64_t *param_counts,
                                      const char **layer_types, int32_t stages, int64_t *parts) {
    return guarded("dsz_pipe_partition", [&] {
        need(method, "method");
        need(parts, "parts");
        const std::vector<int64_t> p =
            pipe::partition_layers(method, static_cast<int64_t>(n_layers), param_counts, layer_types, stages);
        std::copy(p.begin(), p.end(), parts);
    });
}

DSZ_API dsz_status dsz_pipe_options_init(dsz_pipe_options *opts, size_t size) {
    return guarded("dsz_pipe_options_init", [&] { init_sized(opts, size, kPipeOptionsV1, "dsz_pipe_options"); });
}

DSZ_API dsz_status dsz_pipe_init(dsz_pipe_engine **out, const char *config, const dsz_init_options *opts,
                                 const dsz_pipe_options *pipe_opts) {
    return guarded("dsz_pipe_init", [&] {
        need(out, "out");
        *out = nullptr;
        need(pipe_opts, "pipe");
        const dsz_pipe_options p = read_sized(pipe_opts, kPipeOptionsV1, "dsz_pipe_options");
        pipe::Callbacks cb;
        cb.load = p.load_micro_batch;
        cb.forward = p.forward;
        cb.backward = p.backward;
        cb.user = p.user_data;
        const std::string text = config_text(config);
        std::unique_ptr<dsz_pipe_engine> h(new dsz_pipe_engine);
        h->impl.reset(new pipe::Executor(text, engine_options(opts), p.stages, cb));
        h->stage.impl = h->impl->engine();
        h->stage.lender = "pipeline engine (dsz_pipe_free)";
        engines().add(&h->stage);
        pipes().add(h.get());
        *out = h.release();
    });
}

DSZ_API dsz_status dsz_pipe_free(dsz_pipe_engine *pipe) {
    return guarded("dsz_pipe_free", [&] {
        if (!pipe) return;
        if (!pipes().remove(pipe))
            fail(DSZ_ERR_INVALID_ARGUMENT, "pipeline engine handle %p is not live (freed already?)",
                 static_cast<void *>(pipe));
        engines().remove(&pipe->stage);
        delete pipe;
    });
}

DSZ_API dsz_status dsz_pipe_stage_engine(dsz_pipe_engine *pipe, dsz_engine **engine) {
    return guarded("dsz_pipe_stage_engine", [&] {
        need(engine, "engine");
        *engine = &live_pipe(pipe).stage;
    });
}

DSZ_API dsz_status dsz_pipe_info_init(dsz_pipe_info *info, size_t size) {
    return guarded("dsz_pipe_info_init", [&] { init_sized(info, size, kPipeInfoV1, "dsz_pipe_info"); });
}

DSZ_API dsz_status dsz_pipe_get_info(dsz_pipe_engine *pipe, dsz_pipe_info *info) {
    return guarded("dsz_pipe_get_info", [&] {
        const pipe::Executor &x = *live_pipe(pipe).impl;
        need(info, "info");
        check_struct_size(info->size, kPipeInfoV1, "dsz_pipe_info");
        dsz_pipe_info o;
        std::memset(&o, 0, sizeof o);
        o.size = info->size;
        o.stages = x.stages();
        o.stage_id = x.stage();
        o.data_parallel_size = x.topology().data_size();
        o.data_parallel_rank = x.topology().data_index();
        o.world_size = x.topology().world().size();
        o.rank = x.topology().world().rank();
        o.micro_batches = x.micro_batches();
        o.n_buffers = x.buffers();
        o.n_steps = x.steps();
        write_sized(info, o);
    });
}

DSZ_API dsz_status dsz_pipe_batch_info_init(dsz_pipe_batch_info *info, size_t size) {
    return guarded("dsz_pipe_batch_info_init", [&] { init_sized(info, size, kBatchInfoV1, "dsz_pipe_batch_info"); });
}

DSZ_API dsz_status dsz_pipe_train_batch(dsz_pipe_engine *pipe, double *loss, dsz_pipe_batch_info *info) {
    return guarded("dsz_pipe_train_batch", [&] {
        pipe::Executor &x = *live_pipe(pipe).impl;
        if (info) check_struct_size(info->size, kBatchInfoV1, "dsz_pipe_batch_info");
        const pipe::BatchResult r = x.train_batch();
        if (loss) *loss = r.loss;
        if (!info) return;
        const Engine &e = *x.engine();
        dsz_pipe_batch_info o;
        std::memset(&o, 0, sizeof o);
        o.size = info->size;
        o.stepped = r.stepped;
        o.skipped = r.skipped;
        o.loss = r.loss;
        o.grad_norm = e.grad_norm();
        o.global_steps = e.global_steps();
        o.schedule_ms = r.schedule_ms;
        o.compute_ms = r.compute_ms;
        o.transfer_wait_ms = r.transfer_wait_ms;
        o.step_ms = r.step_ms;
        write_sized(info, o);
    });
}

}  // extern "C"
