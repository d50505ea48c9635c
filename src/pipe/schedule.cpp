/* schedule.cpp -- TrainSchedule and InferenceSchedule (see schedule.h). */
#include "pipe/schedule.h"

#include <algorithm>

#include "common/error.h"

namespace dsz {
namespace pipe {

const char *op_name(Op op) {
    switch (op) {
    case Op::load_micro_batch: return "LoadMicroBatch";
    case Op::forward_pass: return "ForwardPass";
    case Op::backward_pass: return "BackwardPass";
    case Op::send_activation: return "SendActivation";
    case Op::recv_activation: return "RecvActivation";
    case Op::send_grad: return "SendGrad";
    case Op::recv_grad: return "RecvGrad";
    case Op::reduce_tied_grads: return "ReduceTiedGrads";
    case Op::reduce_grads: return "ReduceGrads";
    case Op::optimizer_step: return "OptimizerStep";
    }
    return "?";
}

void check_schedule_args(ScheduleKind kind, int M, int S, int s) {
    if (kind != ScheduleKind::train && kind != ScheduleKind::inference)
        fail(DSZ_ERR_INVALID_ARGUMENT, "schedule kind %d is neither DSZ_PIPE_SCHEDULE_TRAIN (0) nor "
                                       "DSZ_PIPE_SCHEDULE_INFERENCE (1)",
             static_cast<int>(kind));
    if (M < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "micro_batches is %d; a batch needs at least one", M);
    if (S < 1) fail(DSZ_ERR_INVALID_ARGUMENT, "stages is %d; a pipeline needs at least one", S);
    if (s < 0 || s >= S) fail(DSZ_ERR_INVALID_ARGUMENT, "stage_id %d is outside [0, %d)", s, S);
}

int schedule_steps(ScheduleKind kind, int M, int S) {
    return kind == ScheduleKind::train ? 2 * (M + S - 1) : M + S - 1;
}

int schedule_buffers(ScheduleKind kind, int M, int S, int s) {
    return kind == ScheduleKind::train ? std::max(2, std::min(S - s, M)) : 2;
}

namespace {

/* floor division for possibly negative numerators */
int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* The micro-batch of step k at stage s, and whether it is a forward step:
 * forward when k and s have the same parity. */
int train_micro_batch(int k, int S, int s, bool *forward) {
    const bool k_even = k % 2 == 0, s_even = s % 2 == 0;
    *forward = k_even == s_even;
    if (*forward) return floor_div(k_even ? k : k - 1, 2) - s / 2;
    if (k_even) return k / 2 - S + (s + 1) / 2;      /* odd stage */
    return floor_div(k - 1, 2) - S + 1 + s / 2;        /* even stage */
}

std::vector<Instr> train(int M, int S, int s) {
    std::vector<Instr> out;
    const int B = schedule_buffers(ScheduleKind::train, M, S, s);
    const int steps = schedule_steps(ScheduleKind::train, M, S);
    const bool has_prev = s > 0, has_next = s < S - 1, loads = s == 0 || s == S - 1;
    auto valid = [&](int id) { return id >= 0 && id < M; };
    int prev = -1;
    for (int k = 0; k < steps; ++k) {
        bool forward = false;
        const int cur = train_micro_batch(k, S, s, &forward);
        auto add = [&](Op op, int id) { out.push_back(Instr{op, k, id % B, id}); };
        if (forward) {
            if (valid(prev) && has_prev) add(Op::send_grad, prev);
            if (valid(cur) && has_prev) add(Op::recv_activation, cur);
        } else {
            if (valid(cur) && has_next) add(Op::recv_grad, cur);
            if (valid(prev) && has_next) add(Op::send_activation, prev);
        }
        if (loads && forward && valid(cur)) add(Op::load_micro_batch, cur);
        if (valid(cur)) add(forward ? Op::forward_pass : Op::backward_pass, cur);
        if (k == steps - 1)
            for (Op op : {Op::reduce_tied_grads, Op::reduce_grads, Op::optimizer_step})
                out.push_back(Instr{op, k, -1, -1});
        prev = cur;
    }
    return out;
}

std::vector<Instr> inference(int M, int S, int s) {
    std::vector<Instr> out;
    const int steps = schedule_steps(ScheduleKind::inference, M, S);
    const bool even = s % 2 == 0, has_prev = s > 0, has_next = s < S - 1;
    auto valid = [&](int id) { return id >= 0 && id < M; };
    for (int k = 0; k < steps; ++k) {
        const int id = k - s;
        const int recv_buf = even ? k % 2 : (k + 1) % 2;
        const int send_buf = even ? (k + 1) % 2 : k % 2;
        if ((s == 0 || s == S - 1) && valid(id)) out.push_back(Instr{Op::load_micro_batch, k, recv_buf, id});
        const bool send = has_next && valid(id - 1), recv = has_prev && valid(id);
        const Instr send_i{Op::send_activation, k, send_buf, id - 1}, recv_i{Op::recv_activation, k, recv_buf, id};
        if (even) {
            if (send) out.push_back(send_i);
            if (recv) out.push_back(recv_i);
        } else {
            if (recv) out.push_back(recv_i);
            if (send) out.push_back(send_i);
        }
        if (valid(id)) out.push_back(Instr{Op::forward_pass, k, recv_buf, id});
    }
    return out;
}

}  // namespace

std::vector<Instr> make_schedule(ScheduleKind kind, int M, int S, int s) {
    check_schedule_args(kind, M, S, s);
    return kind == ScheduleKind::train ? train(M, S, s) : inference(M, S, s);
}

}  // namespace pipe
}  // namespace dsz
