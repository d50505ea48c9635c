/*
 * executor.h -- running a pipeline-parallel training batch.
 *
 * An Executor is one rank of a (pipeline x data) grid (comm/topology.h):
 * it owns the rank's stage Engine, built over the stage's data-parallel
 * group, and runs the TrainSchedule (schedule.h) for it: host callbacks for
 * loads, forward and backward passes; activations and gradients to and from
 * the neighbouring stages (transport.h); then the optimizer boundary.
 *
 * Failures never leave a rank waiting. A callback that fails, or an output
 * whose shape changed, puts the rank in "failed" mode: it keeps following
 * the schedule's communication, sending headers that say so instead of
 * data and skipping every callback, and the stages it talks to do the same
 * when they read such a header. At the end of the stream every rank meets
 * in one all-reduce over the world (which also carries the loss); if anyone
 * failed, the first failing rank's message is broadcast, every stage engine
 * forgets the batch's micro-steps and every rank throws the same error.
 */
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/topology.h"
#include "engine/engine.h"
#include "pipe/schedule.h"
#include "pipe/transport.h"
#include "tensor/host_tensor.h"

namespace dsz {
namespace pipe {

struct Callbacks {
    dsz_pipe_load_fn load = nullptr;
    dsz_pipe_forward_fn forward = nullptr;
    dsz_pipe_backward_fn backward = nullptr;
    void *user = nullptr;
};

struct BatchResult {
    double loss = 0;
    bool stepped = false, skipped = false;
    double schedule_ms = 0, compute_ms = 0, transfer_wait_ms = 0, step_ms = 0;
};

class Executor {
public:
    /* Collective over the world the options describe. n_stages 0: the
     * config's pipeline.stages. */
    Executor(const std::string &config_text, const EngineOptions &options, int n_stages, const Callbacks &callbacks);
    ~Executor();

    std::shared_ptr<Engine> engine() const { return engine_; }
    const comm::Topology &topology() const { return *topo_; }
    int stages() const { return topo_->spec().pipeline; }
    int stage() const { return topo_->stage(); }
    int micro_batches() const { return micro_batches_; }
    int buffers() const { return schedule_buffers(ScheduleKind::train, micro_batches_, stages(), stage()); }
    int steps() const { return schedule_steps(ScheduleKind::train, micro_batches_, stages()); }

    /* Collective over the world. */
    BatchResult train_batch();

private:
    struct Slot {                      /* one pipeline buffer */
        TensorMeta in_meta, grad_meta;  /* received activation / output gradient */
        std::vector<char> in, grad;
        const void *out_data = nullptr;  /* host's forward output */
        const void *in_grad_data = nullptr; /* host's input gradient */
    };
    struct Failure {
        bool any = false, origin = false;  /* origin: this rank's own error */
        dsz_status status = DSZ_OK;
        std::string message;
    };

    void run_step(const std::vector<Instr> &step);
    void compute(const Instr &in);
    void load(const Instr &in);
    void forward(const Instr &in);
    void backward(const Instr &in);
    void fail_here(dsz_status status, const std::string &message);
    void agree_and_step(BatchResult *r);
    DLTensor view(Slot &slot, bool grad) const;
    /* Checks a tensor the host described (forward output, input gradient). */
    HostTensor host_output(const DLTensor &t, const std::string &what, TensorMeta *meta) const;

    std::shared_ptr<comm::Communicator> world_;
    std::unique_ptr<comm::Topology> topo_;
    std::shared_ptr<Engine> engine_;
    std::unique_ptr<Transport> transport_;
    Callbacks cb_;
    int micro_batches_ = 1;
    std::vector<std::vector<Instr>> steps_;   /* the stream, step by step */
    std::vector<Slot> slots_;
    bool have_out_meta_ = false, have_in_meta_ = false;
    TensorMeta out_meta_, in_meta_;            /* agreed with the next / previous stage */
    Failure failure_;
    int backwards_done_ = 0;
    double loss_sum_ = 0;
    double compute_ms_ = 0;
};

}  // namespace pipe
}  // namespace dsz
