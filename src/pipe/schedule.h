/*
 * schedule.h -- pipeline schedules as pure instruction streams.
 *
 * DeepSpeed's TrainSchedule (synchronous 1F1B) and InferenceSchedule
 * (reference §8.1-8.2), reproduced instruction for instruction: the same
 * kinds, buffer ids and order, step by step. A stream is a pure function of
 * (micro-batches, stages, stage id); the executor (executor.h) runs it and
 * dsz_pipe_schedule hands it to hosts that want to inspect it. Each
 * instruction also carries the step it belongs to and the micro-batch it
 * acts on, which DeepSpeed's instructions leave implicit.
 */
#pragma once

#include <cstdint>
#include <vector>

namespace dsz {
namespace pipe {

/* Same values as the DSZ_PIPE_* instruction kinds of dszero.h. */
enum class Op : int32_t {
    load_micro_batch = 0,
    forward_pass = 1,
    backward_pass = 2,
    send_activation = 3,
    recv_activation = 4,
    send_grad = 5,
    recv_grad = 6,
    reduce_tied_grads = 7,
    reduce_grads = 8,
    optimizer_step = 9,
};

/* Same values as DSZ_PIPE_SCHEDULE_*. */
enum class ScheduleKind : int32_t { train = 0, inference = 1 };

struct Instr {
    Op op;
    int step;          /* the schedule step it belongs to, from 0 */
    int buffer;        /* pipeline buffer id; -1 for the reduce / step ops */
    int micro_batch;   /* the micro-batch it acts on; -1 for the reduce / step ops */
    bool operator==(const Instr &o) const {
        return op == o.op && step == o.step && buffer == o.buffer && micro_batch == o.micro_batch;
    }
};

const char *op_name(Op op);   /* DeepSpeed's class name, "ForwardPass" */

/* Throws DSZ_ERR_INVALID_ARGUMENT unless M >= 1, S >= 1, 0 <= s < S and
 * the kind is known. */
void check_schedule_args(ScheduleKind kind, int micro_batches, int stages, int stage_id);

/* Steps of a batch: 2 (M + S - 1) to train, M + S - 1 for inference. */
int schedule_steps(ScheduleKind kind, int micro_batches, int stages);
/* Buffers the stage needs: max(2, min(S - s, M)) to train, 2 for inference. */
int schedule_buffers(ScheduleKind kind, int micro_batches, int stages, int stage_id);

std::vector<Instr> make_schedule(ScheduleKind kind, int micro_batches, int stages, int stage_id);

}  // namespace pipe
}  // namespace dsz
