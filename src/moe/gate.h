/*
 * gate.h -- DeepSpeed's top-1 / top-2 / top-k gating on host-computed logits.
 *
 * The host computes the gate logits (x_fp32 . Wg^T) and owns the gate's
 * weights; dszero turns the logits into routes -- which expert and which
 * capacity slot each token's choices go to, with which combine weight --
 * following deepspeed/moe/sharded_moe.py (top1gating, top2gating,
 * topkgating; reference section 9.2), plus the load-balancing loss l_aux.
 * gate_backward() gives the gradient of the combine weights and of l_aux
 * with respect to the gate probabilities and the logits, so the host can
 * train its gate. Everything here is a pure function of its arguments; the
 * only communication is the MAX of the per-expert counts over the
 * expert-parallel group when tokens are not dropped, passed in as a
 * callback.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace dsz {
namespace moe {

enum class NoisePolicy : uint8_t { none, jitter, rsample };
enum class DropPolicy : uint8_t { probs, position };

struct GateConfig {
    int k = 1;
    double capacity_factor = 1.0;
    double eval_capacity_factor = 1.0;
    int64_t min_capacity = 4;
    bool training = true;
    bool drop_tokens = true;
    bool use_rts = true;
    NoisePolicy noise = NoisePolicy::none;   /* rsample acts at k == 1 only */
    bool top2_2nd_expert_sampling = true;
    DropPolicy drop_policy = DropPolicy::probs;  /* k > 2 only */
    int64_t tensor_parallel_size = 1;        /* no-drop capacity is rounded up to it */
    uint64_t seed = 0;
};

/* The routes of S tokens, k choices each, route r = s * k + j (choice j of
 * token s; j = 0 is the best). A route is kept when slot >= 0; it is
 * dispatched (its token copied into the [E, C, M] buffer) when it is kept
 * and its weight is not zero, as DeepSpeed's dispatch_mask =
 * combine_weights.bool(). */
struct Routing {
    int64_t tokens = 0, experts = 0, k = 1, capacity = 0;
    double l_aux = 0;
    double aux_scale = 0;            /* l_aux = aux_scale * sum_e me_e * ce_e */
    std::vector<float> probs;        /* [S, E] softmax of the logits */
    std::vector<float> ce;           /* [E] fraction of tokens chosen (before dropping) */
    std::vector<int64_t> exp_counts; /* [E] routes per expert before dropping */
    std::vector<int32_t> expert;     /* [S * k] */
    std::vector<int32_t> slot;       /* [S * k] capacity slot, -1 dropped */
    std::vector<float> weight;       /* [S * k] combine weight, 0 when dropped */
    int64_t dropped = 0;             /* chosen routes dropped for capacity */

    bool dispatched(size_t r) const { return slot[r] >= 0 && weight[r] != 0.0f; }
};

/* The maximum of a value over the expert-parallel group (identity on one rank). */
using GroupMax = std::function<int64_t(int64_t)>;

/* ceil((S / E) * factor) computed in float32 as torch does
 * (float(S / E) * float(factor)), then raised to min_capacity. */
int64_t gate_capacity(int64_t tokens, int64_t experts, double factor, int64_t min_capacity);

/* Routes `tokens` x `experts` fp32 logits (row-major). used_token (k == 1
 * only, may be null): tokens whose entry is 0 are routed nowhere. Throws
 * DSZ_ERR_INVALID_ARGUMENT on a bad configuration or shape. */
Routing gate(const GateConfig &cfg, const float *logits, int64_t tokens, int64_t experts,
             const uint8_t *used_token, const GroupMax &group_max);

/* Backward of gate(): given dL/dweight per route (may be null: zero) and
 * dL/dl_aux, writes dL/dprobs and/or dL/dlogits ([S, E] each; either may be
 * null). The routing decisions (argmax, noise, drops) are held fixed, as in
 * autograd. */
void gate_backward(const Routing &r, const float *d_weight, double d_l_aux, float *d_probs,
                   float *d_logits);

/* Multiplies x[i] by a multiplier drawn from U(1 - eps, 1 + eps) (stream
 * `jitter` of seed, index i), DeepSpeed's multiplicative_jitter; writes the
 * multipliers too when `multipliers` is not null (the backward of the host's
 * gate input is d_x * multiplier). */
void jitter(float *x, size_t n, double eps, uint64_t seed, float *multipliers);

}  // namespace moe
}  // namespace dsz
