/*
 * executor.cpp -- one pipeline-parallel training batch (see executor.h).
 *
 * Per schedule step: post the step's sends (non-blocking, from the host's
 * memory), take its receives (blocking, into the buffer slots), wait for
 * the sends, then run its load / forward / backward callbacks. Every send
 * of a step is posted before any of its receives blocks, and each stage's
 * receive at step k matches its neighbour's send at step k, so no order of
 * arrival can deadlock. ReduceTiedGrads has nothing to do (no tied layers),
 * ReduceGrads and OptimizerStep are the stage engine's boundary step, taken
 * after the agreement that ends every batch.
 */
#include "pipe/executor.h"

#include <chrono>
#include <climits>
#include <cstring>

#include "comm/consistency.h"
#include "common/error.h"
#include "config/json_text.h"
#include "engine/agree.h"
#include "tensor/host_tensor.h"

namespace dsz {
namespace pipe {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/* pipeline.stages of the config: a positive integer, or 0 when "auto" or
 * absent. */
int config_stages(const std::string &text) {
    cfg::JsonPtr root = cfg::parse_json_text(text, "config", DSZ_ERR_CONFIG);
    const cJSON *stages = cfg::member(cfg::member(root.get(), "pipeline"), "stages");
    if (!stages || cJSON_IsString(stages)) return 0;
    if (!cJSON_IsNumber(stages) || stages->valuedouble < 1 || stages->valuedouble != static_cast<int>(stages->valuedouble))
        fail(DSZ_ERR_CONFIG, "pipeline.stages: %s is not a positive integer", cfg::describe(stages).c_str());
    return static_cast<int>(stages->valuedouble);
}

/* The settings every rank must share, checked before the grid is built. */
struct Plan {
    int stages = 0, micro_batches = 0;
    bool overlap_comm = false;
};

Plan plan(const std::string &text, const EngineOptions &options, int stages, int world) {
    Plan p;
    p.stages = stages > 0 ? stages : config_stages(text);
    if (p.stages <= 0)
        fail(DSZ_ERR_INVALID_ARGUMENT, "dsz_pipe_options.stages is 0 and the config gives no number in "
                                       "pipeline.stages: say how many stages the pipeline has");
    comm::Topology::validate(comm::TopologySpec{p.stages, 1, 1}, world);
    HostValues host;
    host.world_size = world / p.stages;
    host.auto_values_json = options.auto_values;
    const Config cfg = parse_config(text, host).config;
    if (cfg.zero.stage >= 2)
        fail(DSZ_ERR_UNSUPPORTED, "zero_optimization.stage: stage %d does not combine with pipeline parallelism "
                                  "(DeepSpeed refuses it too); use stage 0 or 1",
             cfg.zero.stage);
    p.micro_batches = static_cast<int>(cfg.gradient_accumulation_steps);
    p.overlap_comm = cfg.zero.overlap_comm;
    return p;
}

}  // namespace

Executor::Executor(const std::string &config_text, const EngineOptions &options, int n_stages,
                   const Callbacks &callbacks)
    : cb_(callbacks) {
    if (!cb_.forward || !cb_.backward)
        fail(DSZ_ERR_INVALID_ARGUMENT, "dsz_pipe_options: the forward and backward callbacks are required");
    comm::CommOptions co;
    co.world_size = options.world_size;
    co.rank = options.rank;
    co.mpi_comm = options.mpi_comm;
    world_ = comm::create_communicator(co);

    /* Every rank must reach the grid with the same plan, or fail with the others. */
    Plan p;
    std::string error;
    dsz_status status = DSZ_OK;
    try {
        p = plan(config_text, options, n_stages, world_->size());
    } catch (const Error &e) {
        error = e.what();
        status = e.status();
    }
    if (world_->size() > 1) agree(*world_, error, DSZ_ERR_INVALID_ARGUMENT, "dsz_pipe_init");
    if (!error.empty()) throw Error(status, error);
    if (world_->size() > 1)
        comm::check_consistent(*world_, "dsz_pipe_init: the pipeline settings",
                               {"stages " + std::to_string(p.stages),
                                "gradient_accumulation_steps " + std::to_string(p.micro_batches)});
    micro_batches_ = p.micro_batches;

    topo_.reset(new comm::Topology(world_, comm::TopologySpec{p.stages, 1, 1}));
    EngineOptions eo = options;
    eo.comm = topo_->data_ptr();
    eo.norm_comm = topo_->pipeline_ptr();
    eo.log_rank = world_->rank();
    engine_ = std::make_shared<Engine>(config_text, eo);
    transport_.reset(new Transport(topo_->pipeline(), stage()));

    const std::vector<Instr> stream = make_schedule(ScheduleKind::train, micro_batches_, stages(), stage());
    steps_.resize(static_cast<size_t>(steps()));
    for (const Instr &in : stream) steps_[static_cast<size_t>(in.step)].push_back(in);
    slots_.resize(static_cast<size_t>(buffers()));

    const Logger &log = engine_->logger();
    if (p.overlap_comm) log.warn("zero_optimization.overlap_comm has no effect under pipeline parallelism");
    log.logf(DSZ_LOG_INFO, "pipeline: %d stages x %d data-parallel replicas, %d micro-batches per batch",
             stages(), topo_->data_size(), micro_batches_);
}

Executor::~Executor() = default;

void Executor::fail_here(dsz_status status, const std::string &message) {
    if (failure_.any) return;
    failure_.any = failure_.origin = true;
    failure_.status = status;
    failure_.message = strprintf("stage %d (rank %d): %s", stage(), world_->rank(), message.c_str());
}

DLTensor Executor::view(Slot &slot, bool grad) const {
    TensorMeta &m = grad ? slot.grad_meta : slot.in_meta;
    DLTensor t;
    std::memset(&t, 0, sizeof t);
    t.data = grad ? slot.grad.data() : slot.in.data();
    t.device.device_type = kDLCPU;
    t.ndim = static_cast<int32_t>(m.shape.size());
    t.dtype = dtype_to_dlpack(m.dtype);
    t.shape = m.shape.data();
    return t;
}

HostTensor Executor::host_output(const DLTensor &t, const std::string &what, TensorMeta *meta) const {
    HostTensor h = check_host_tensor(&t, what);
    if (h.shape.size() > static_cast<size_t>(Transport::kMaxDims))
        fail(DSZ_ERR_SHAPE, "%s has %zu dimensions; at most %d cross stages", what.c_str(), h.shape.size(),
             Transport::kMaxDims);
    meta->dtype = h.dtype;
    meta->shape = h.shape;
    return h;
}

void Executor::load(const Instr &in) {
    if (!cb_.load) return;
    const int32_t rc = cb_.load(cb_.user, in.buffer, in.micro_batch);
    if (rc)
        fail(DSZ_ERR_CALLBACK, "the load_micro_batch callback returned %d for micro-batch %d (buffer %d)", rc,
             in.micro_batch, in.buffer);
}

void Executor::forward(const Instr &in) {
    Slot &slot = slots_[static_cast<size_t>(in.buffer)];
    const bool first = stage() == 0, last = stage() == stages() - 1;
    DLTensor input = view(slot, false), output;
    std::memset(&output, 0, sizeof output);
    double loss = 0;
    const int32_t rc = cb_.forward(cb_.user, in.buffer, in.micro_batch, first ? nullptr : &input,
                                   last ? nullptr : &output, last ? &loss : nullptr);
    if (rc)
        fail(DSZ_ERR_CALLBACK, "the forward callback returned %d for micro-batch %d (buffer %d)", rc, in.micro_batch,
             in.buffer);
    if (last) {
        loss_sum_ += loss;
        return;
    }
    TensorMeta m;
    const HostTensor h =
        host_output(output, strprintf("the forward output of micro-batch %d", in.micro_batch), &m);
    if (!have_out_meta_) {
        out_meta_ = m;
        have_out_meta_ = true;
    } else if (m != out_meta_) {
        fail(m.dtype != out_meta_.dtype ? DSZ_ERR_DTYPE : DSZ_ERR_SHAPE,
             "the forward output of micro-batch %d is %s, but stage %d and stage %d agreed on %s with the first "
             "micro-batch (what crosses stages keeps its shape and dtype for the whole run)",
             in.micro_batch, m.describe().c_str(), stage(), stage() + 1, out_meta_.describe().c_str());
    }
    slot.out_data = h.data;
}

void Executor::backward(const Instr &in) {
    Slot &slot = slots_[static_cast<size_t>(in.buffer)];
    const bool first = stage() == 0, last = stage() == stages() - 1;
    DLTensor output_grad = view(slot, true), input_grad;
    std::memset(&input_grad, 0, sizeof input_grad);
    const int32_t rc = cb_.backward(cb_.user, in.buffer, in.micro_batch, last ? nullptr : &output_grad,
                                    first ? nullptr : &input_grad);
    if (rc)
        fail(DSZ_ERR_CALLBACK, "the backward callback returned %d for micro-batch %d (buffer %d)", rc, in.micro_batch,
             in.buffer);
    if (!first) {
        TensorMeta m;
        const HostTensor h =
            host_output(input_grad, strprintf("the input gradient of micro-batch %d", in.micro_batch), &m);
        if (m != slot.in_meta)
            fail(m.dtype != slot.in_meta.dtype ? DSZ_ERR_DTYPE : DSZ_ERR_SHAPE,
                 "the backward callback returned an input gradient of %s for micro-batch %d, but stage %d sends "
                 "this stage activations of %s (an input's gradient has the input's shape and dtype)",
                 m.describe().c_str(), in.micro_batch, stage() - 1, slot.in_meta.describe().c_str());
        slot.in_grad_data = h.data;
    }
    engine_->backward();
    if (++backwards_done_ < micro_batches_) engine_->step(); /* the last one is the batch's OptimizerStep */
}

void Executor::compute(const Instr &in) {
    if (failure_.any) return;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        if (in.op == Op::load_micro_batch) load(in);
        else if (in.op == Op::forward_pass) forward(in);
        else backward(in);
    } catch (const Error &e) {
        fail_here(e.status(), e.what());
    } catch (const std::bad_alloc &) {
        fail_here(DSZ_ERR_OUT_OF_MEMORY, strprintf("out of memory in %s", op_name(in.op)));
    }
    compute_ms_ += ms_since(t0);
}

void Executor::run_step(const std::vector<Instr> &step) {
    for (const Instr &in : step) {
        Slot &slot = slots_[static_cast<size_t>(in.buffer < 0 ? 0 : in.buffer)];
        if (in.op == Op::send_activation)
            transport_->post_send(Flow::activation, in.micro_batch, !failure_.any, out_meta_, slot.out_data);
        else if (in.op == Op::send_grad)
            transport_->post_send(Flow::grad, in.micro_batch, !failure_.any, slot.in_meta, slot.in_grad_data);
    }
    for (const Instr &in : step) {
        if (in.op != Op::recv_activation && in.op != Op::recv_grad) continue;
        Slot &slot = slots_[static_cast<size_t>(in.buffer)];
        const bool act = in.op == Op::recv_activation;
        TensorMeta m;
        if (!transport_->recv(act ? Flow::activation : Flow::grad, in.micro_batch, &m, act ? &slot.in : &slot.grad)) {
            failure_.any = true; /* the message comes from the rank that failed first */
            continue;
        }
        if (act) {
            slot.in_meta = m;
        } else {
            slot.grad_meta = m;
            if (m != out_meta_ && !failure_.any)
                fail_here(DSZ_ERR_INTERNAL, strprintf("stage %d sent a gradient of %s for an output of %s", stage() + 1,
                                                      m.describe().c_str(), out_meta_.describe().c_str()));
        }
    }
    transport_->wait_sends();
    for (const Instr &in : step)
        if (in.op == Op::load_micro_batch || in.op == Op::forward_pass || in.op == Op::backward_pass) compute(in);
}

BatchResult Executor::train_batch() {
    failure_ = Failure();
    backwards_done_ = 0;
    loss_sum_ = 0;
    compute_ms_ = 0;
    if (!engine_->registered())
        fail_here(DSZ_ERR_STATE, "no parameters are registered on the stage engine (dsz_pipe_stage_engine, then "
                                 "dsz_register_params)");
    BatchResult r;
    const double wait0 = transport_->wait_ms();
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::vector<Instr> &step : steps_) run_step(step);
    r.schedule_ms = ms_since(t0);
    r.compute_ms = compute_ms_;
    r.transfer_wait_ms = transport_->wait_ms() - wait0;
    const auto t1 = std::chrono::steady_clock::now();
    agree_and_step(&r);
    r.step_ms = ms_since(t1);
    return r;
}

void Executor::agree_and_step(BatchResult *r) {
    const bool last = stage() == stages() - 1;
    double v[2] = {failure_.any ? 1.0 : 0.0, last && !failure_.any ? loss_sum_ / micro_batches_ : 0.0};
    if (world_->size() > 1) world_->all_reduce(v, 2, comm::ReduceOp::sum);
    backwards_done_ = 0;
    if (v[0] > 0) {
        int32_t reporter = failure_.origin ? world_->rank() : INT32_MAX;
        if (world_->size() > 1) reporter = world_->all_reduce_value<int32_t>(reporter, comm::ReduceOp::min);
        struct {
            int32_t status;
            char message[2044];
        } note;
        std::memset(&note, 0, sizeof note);
        if (reporter == world_->rank()) {
            note.status = failure_.status;
            std::strncpy(note.message, failure_.message.c_str(), sizeof note.message - 1);
        }
        if (reporter != INT32_MAX && world_->size() > 1) world_->broadcast(&note, sizeof note, reporter);
        engine_->discard_window();
        if (reporter == INT32_MAX)
            fail(DSZ_ERR_INTERNAL, "a stage reported a failure that no rank owns; the batch was abandoned");
        fail(note.status, "%s; the batch was abandoned on every rank, nothing was updated", note.message);
    }
    r->loss = v[1] / topo_->data_size();
    const StepResult s = engine_->step();
    r->stepped = s.stepped;
    r->skipped = s.skipped;
}

}  // namespace pipe
}  // namespace dsz
