/*
 * optimizer.h -- optimizers as updates of flat fp32 buffers.
 *
 * Under ZeRO the optimizer only ever sees one flat fp32 partition per
 * parameter group (DeepSpeed §5.1), so an optimizer here is a function of
 * flat arrays: master weights, gradients, and state_count() state arrays of
 * the same length. Per-tensor optimizers (LAMB) also get the tensor
 * boundaries. The update optionally writes the new values, cast to a 16-bit
 * or fp32 dtype, straight into the host's parameter memory (one pass over
 * memory instead of two). Formulas: reference §4; each has a float64
 * reference test in tests/.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "config/config.h"
#include "tensor/dtype.h"

namespace dsz {

/* A contiguous piece of the flat group buffer and where its updated values
 * go in host memory (out == nullptr: nowhere). Spans never straddle two
 * tensors; the engine cuts tensors into spans of a bounded size so that
 * they can be spread over threads. */
struct Span {
    size_t offset;
    size_t n;
    void *out;
};

/* A tensor's range in the flat buffer (for per-tensor optimizers). */
struct Segment {
    size_t offset;
    size_t n;
};

/* Hyper-parameters of one update of one group. */
struct StepHyper {
    double lr;
    double weight_decay;
    double beta1, beta2;   /* current values (OneCycle may cycle beta1) */
    int64_t step;          /* 1-based count of updates applied to this group */
};

struct UpdateArgs {
    float *master;                 /* flat fp32 weights of the group */
    const void *grad;              /* flat gradients, grad_dtype */
    DType grad_dtype;
    float *const *states;          /* state_count() flat fp32 arrays */
    DType out_dtype;               /* dtype of Span::out */
    const std::vector<Span> *spans;        /* cover what is to be updated */
    const std::vector<Segment> *tensors;   /* tensor boundaries, in order */
    double grad_mul;               /* each gradient is multiplied by this first
                                      (unscale and clip in one factor, §6) */
    StepHyper hyper;
    ThreadPool *pool;
};

class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual const char *name() const = 0;
    /* Number of fp32 state arrays per element, and their names (checkpoints). */
    virtual int state_count() const = 0;
    virtual const char *state_name(int i) const = 0;
    /* One update over args.spans. Must not change anything outside them. */
    virtual void update(const UpdateArgs &args) const = 0;
    /* Initial value of state array i (Adagrad's initial_accumulator_value). */
    virtual float state_init(int /*i*/) const { return 0.0f; }
};

/* Builds the optimizer of a config section; throws DSZ_ERR_UNSUPPORTED for
 * a type dszero does not implement (the message names optimizer.type). */
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig &cfg);

}  // namespace dsz
