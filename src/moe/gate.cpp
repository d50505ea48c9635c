/*
 * gate.cpp -- top-1 / top-2 / top-k routing (see gate.h).
 *
 * Each rule follows its DeepSpeed function step by step: softmax, choices,
 * per-expert counts and l_aux (both before dropping), capacity, dropping,
 * slots (running count per expert in token order), combine weights. Where
 * DeepSpeed leaves an order undefined (torch.topk among equal values) the
 * earlier token or the lower expert index wins; docs/moe.md lists these.
 */
#include "moe/gate.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "moe/noise.h"

namespace dsz {
namespace moe {
namespace {

constexpr float kEps = FLT_EPSILON;  /* torch.finfo(torch.float32).eps */

void softmax_rows(const float *logits, int64_t S, int64_t E, float *out) {
    std::vector<float> ex(static_cast<size_t>(E));
    for (int64_t s = 0; s < S; ++s) {
        const float *l = logits + s * E;
        const float mx = *std::max_element(l, l + E);
        double sum = 0;
        for (int64_t e = 0; e < E; ++e) sum += ex[static_cast<size_t>(e)] = std::exp(l[e] - mx);
        for (int64_t e = 0; e < E; ++e) out[s * E + e] = static_cast<float>(ex[static_cast<size_t>(e)] / sum);
    }
}

/* First index of the maximum (torch.argmax), skipping `skip`. */
template <class Value>
int32_t argmax(int64_t E, int64_t skip, Value &&value) {
    int32_t best = -1;
    float best_v = 0;
    for (int64_t e = 0; e < E; ++e) {
        if (e == skip) continue;
        const float v = value(e);
        if (best < 0 || v > best_v || (std::isnan(v) && !std::isnan(best_v))) {
            best = static_cast<int32_t>(e);
            best_v = v;
        }
    }
    return best;
}

void validate(const GateConfig &c, int64_t S, int64_t E, const uint8_t *used_token) {
    if (S < 1) fail(DSZ_ERR_SHAPE, "the gate needs at least one token (got %lld)", static_cast<long long>(S));
    if (E < 1) fail(DSZ_ERR_SHAPE, "the gate needs at least one expert (got %lld)", static_cast<long long>(E));
    if (S * E > INT32_MAX) fail(DSZ_ERR_SHAPE, "%lld tokens x %lld experts is too many for one gate call",
                                static_cast<long long>(S), static_cast<long long>(E));
    if (c.k < 1 || c.k > E)
        fail(DSZ_ERR_INVALID_ARGUMENT, "k = %d must be between 1 and the number of experts (%lld)", c.k,
             static_cast<long long>(E));
    const double cf = c.training ? c.capacity_factor : c.eval_capacity_factor;
    if (!std::isfinite(cf) || cf < 0)
        fail(DSZ_ERR_INVALID_ARGUMENT, "%s = %g must be finite and >= 0",
             c.training ? "capacity_factor" : "eval_capacity_factor", cf);
    if (c.min_capacity < 0)
        fail(DSZ_ERR_INVALID_ARGUMENT, "min_capacity = %lld must be >= 0", static_cast<long long>(c.min_capacity));
    if (c.tensor_parallel_size < 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "tensor_parallel_size = %lld must be >= 1",
             static_cast<long long>(c.tensor_parallel_size));
    if (used_token && c.k != 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "used_token applies to top-1 gating only (k = %d); DeepSpeed ignores it there", c.k);
    if (c.noise == NoisePolicy::rsample && c.k != 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "noisy_gate_policy RSample applies to top-1 gating only (k = %d)", c.k);
    if (c.k == 1 && S < c.min_capacity)
        fail(DSZ_ERR_INVALID_ARGUMENT,
             "%lld tokens is fewer than min_capacity = %lld: set min_capacity to 0 or use a larger batch "
             "(DeepSpeed asserts the same)",
             static_cast<long long>(S), static_cast<long long>(c.min_capacity));
}

/* drop_tokens = false: the largest count over the group, rounded up to the
 * tensor-parallel size. */
int64_t no_drop_capacity(const GateConfig &c, const Routing &r, const GroupMax &group_max) {
    int64_t mx = *std::max_element(r.exp_counts.begin(), r.exp_counts.end());
    if (group_max) mx = group_max(mx);
    const int64_t tp = c.tensor_parallel_size;
    return (mx + tp - 1) / tp * tp;
}

/* Among the chosen routes of expert e (token order), keeps `keep` of them:
 * the ones with the largest key, earlier tokens first among equal keys. */
template <class Key>
void keep_best(std::vector<size_t> &routes, int64_t keep, Key &&key, std::vector<uint8_t> &kept) {
    if (static_cast<int64_t>(routes.size()) > keep) {
        std::stable_sort(routes.begin(), routes.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
        routes.resize(static_cast<size_t>(std::max<int64_t>(keep, 0)));
    }
    for (size_t r : routes) kept[r] = 1;
}

/* Slots: running count of kept routes per expert, in the order given. */
void assign_slots(Routing &r, const std::vector<uint8_t> &kept, const std::vector<size_t> &order) {
    std::vector<int32_t> next(static_cast<size_t>(r.experts), 0);
    for (size_t i : order) {
        if (!kept[i]) continue;
        r.slot[i] = next[static_cast<size_t>(r.expert[i])]++;
    }
}

std::vector<size_t> token_order(const Routing &r) {
    std::vector<size_t> o(r.expert.size());
    std::iota(o.begin(), o.end(), size_t{0});
    return o;
}

void finish_l_aux(Routing &r, const std::vector<int64_t> &ce_counts) {
    const size_t E = static_cast<size_t>(r.experts);
    r.ce.assign(E, 0.0f);
    std::vector<double> me(E, 0.0);
    for (int64_t s = 0; s < r.tokens; ++s)
        for (size_t e = 0; e < E; ++e) me[e] += r.probs[static_cast<size_t>(s) * E + e];
    double sum = 0;
    for (size_t e = 0; e < E; ++e) {
        r.ce[e] = static_cast<float>(static_cast<double>(ce_counts[e]) / static_cast<double>(r.tokens));
        sum += me[e] / static_cast<double>(r.tokens) * r.ce[e];
    }
    r.l_aux = r.aux_scale * sum;
}

void top1(const GateConfig &c, const float *logits, const uint8_t *used, Routing &r, const GroupMax &gm) {
    const int64_t S = r.tokens, E = r.experts;
    const bool rsample = c.training && c.noise == NoisePolicy::rsample;
    std::vector<uint8_t> chosen(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) {
        const float *p = &r.probs[static_cast<size_t>(s * E)];
        r.expert[static_cast<size_t>(s)] =
            rsample ? argmax(E, -1, [&](int64_t e) {
                return logits[s * E + e] + static_cast<float>(gumbel(c.seed, NoiseStream::gumbel,
                                                                      static_cast<uint64_t>(s * E + e)));
            })
                    : argmax(E, -1, [&](int64_t e) { return p[e]; });
        chosen[static_cast<size_t>(s)] = !used || used[s];
        if (chosen[static_cast<size_t>(s)]) ++r.exp_counts[static_cast<size_t>(r.expert[static_cast<size_t>(s)])];
    }
    r.aux_scale = static_cast<double>(E);
    finish_l_aux(r, r.exp_counts);

    const double cf = c.training ? c.capacity_factor : c.eval_capacity_factor;
    r.capacity = c.drop_tokens ? gate_capacity(S, E, cf, c.min_capacity)
                               : std::min(no_drop_capacity(c, r, gm), S);
    const int64_t keep = std::min(r.capacity, S);
    std::vector<std::vector<size_t>> per_expert(static_cast<size_t>(E));
    for (int64_t s = 0; s < S; ++s)
        if (chosen[static_cast<size_t>(s)])
            per_expert[static_cast<size_t>(r.expert[static_cast<size_t>(s)])].push_back(static_cast<size_t>(s));
    std::vector<uint8_t> kept(static_cast<size_t>(S), 0);
    for (auto &routes : per_expert) {
        if (c.use_rts)
            keep_best(routes, keep, [&](size_t s) {
                return uniform01(c.seed, NoiseStream::token_selection,
                                 static_cast<uint64_t>(s) * static_cast<uint64_t>(E) +
                                     static_cast<uint64_t>(r.expert[s]));
            }, kept);
        else
            keep_best(routes, keep, [](size_t) { return 0.0f; }, kept);
    }
    assign_slots(r, kept, token_order(r));
    for (int64_t s = 0; s < S; ++s) {
        const size_t i = static_cast<size_t>(s);
        if (kept[i]) r.weight[i] = r.probs[static_cast<size_t>(s * E + r.expert[i])];
        else if (chosen[i]) ++r.dropped;
    }
}

/* Renormalises the kept routes of every token: g / max(sum of kept g, eps). */
void renormalise(Routing &r) {
    const int64_t S = r.tokens, E = r.experts, k = r.k;
    for (int64_t s = 0; s < S; ++s) {
        float sum = 0;
        for (int64_t j = 0; j < k; ++j) {
            const size_t i = static_cast<size_t>(s * k + j);
            if (r.slot[i] >= 0) sum += r.probs[static_cast<size_t>(s * E + r.expert[i])];
        }
        const float denom = std::max(sum, kEps);
        for (int64_t j = 0; j < k; ++j) {
            const size_t i = static_cast<size_t>(s * k + j);
            r.weight[i] = r.slot[i] >= 0 ? r.probs[static_cast<size_t>(s * E + r.expert[i])] / denom : 0.0f;
            if (r.slot[i] < 0) ++r.dropped;
        }
    }
}

void top2(const GateConfig &c, const float *logits, Routing &r, const GroupMax &gm) {
    const int64_t S = r.tokens, E = r.experts;
    std::vector<int64_t> first_counts(static_cast<size_t>(E), 0);
    for (int64_t s = 0; s < S; ++s) {
        const float *p = &r.probs[static_cast<size_t>(s * E)];
        const int32_t e1 = argmax(E, -1, [&](int64_t e) { return p[e]; });
        const int32_t e2 = argmax(E, e1, [&](int64_t e) {
            float l = logits[s * E + e];
            if (c.top2_2nd_expert_sampling)
                l += static_cast<float>(gumbel(c.seed, NoiseStream::gumbel, static_cast<uint64_t>(s * E + e)));
            return l;
        });
        r.expert[static_cast<size_t>(2 * s)] = e1;
        r.expert[static_cast<size_t>(2 * s + 1)] = e2;
        ++first_counts[static_cast<size_t>(e1)];
        ++r.exp_counts[static_cast<size_t>(e1)];
        ++r.exp_counts[static_cast<size_t>(e2)];
    }
    r.aux_scale = static_cast<double>(E);  /* E^2 * mean_e = E * sum_e */
    finish_l_aux(r, first_counts);

    const double cf = c.training ? c.capacity_factor : c.eval_capacity_factor;
    r.capacity = c.drop_tokens ? gate_capacity(S, E, cf * 2, c.min_capacity) : no_drop_capacity(c, r, gm);
    /* All first choices of an expert come before its second choices. */
    std::vector<size_t> order;
    order.reserve(static_cast<size_t>(2 * S));
    for (int64_t j = 0; j < 2; ++j)
        for (int64_t s = 0; s < S; ++s) order.push_back(static_cast<size_t>(2 * s + j));
    std::vector<int64_t> next(static_cast<size_t>(E), 0);
    for (size_t i : order) {
        const int64_t loc = next[static_cast<size_t>(r.expert[i])]++;
        if (loc < r.capacity) r.slot[i] = static_cast<int32_t>(loc);
    }
    renormalise(r);
}

void topk(const GateConfig &c, Routing &r, const GroupMax &gm) {
    const int64_t S = r.tokens, E = r.experts, k = r.k;
    std::vector<int32_t> idx(static_cast<size_t>(E));
    for (int64_t s = 0; s < S; ++s) {
        const float *p = &r.probs[static_cast<size_t>(s * E)];
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
        for (int64_t j = 0; j < k; ++j) {
            r.expert[static_cast<size_t>(s * k + j)] = idx[static_cast<size_t>(j)];
            ++r.exp_counts[static_cast<size_t>(idx[static_cast<size_t>(j)])];
        }
    }
    r.aux_scale = static_cast<double>(E) / static_cast<double>(k);  /* E^2 / k * mean_e */
    finish_l_aux(r, r.exp_counts);

    const double cf = c.training ? c.capacity_factor : c.eval_capacity_factor;
    const size_t n = static_cast<size_t>(S * k);
    std::vector<uint8_t> kept(n, 0);
    if (!c.drop_tokens) {
        r.capacity = no_drop_capacity(c, r, gm);
        std::fill(kept.begin(), kept.end(), 1);
    } else {
        r.capacity = gate_capacity(S, E, cf * static_cast<double>(k), c.min_capacity);
        std::vector<std::vector<size_t>> per_expert(static_cast<size_t>(E));
        for (int64_t s = 0; s < S; ++s)
            for (int64_t j = 0; j < k; ++j) {
                const size_t i = static_cast<size_t>(s * k + j);
                per_expert[static_cast<size_t>(r.expert[i])].push_back(i);
            }
        const int64_t keep = c.drop_policy == DropPolicy::probs ? std::min(r.capacity, S) : r.capacity;
        for (auto &routes : per_expert) {
            if (c.drop_policy == DropPolicy::probs)
                keep_best(routes, keep, [&](size_t i) {
                    return r.probs[i / static_cast<size_t>(k) * static_cast<size_t>(E) +
                                   static_cast<size_t>(r.expert[i])];
                }, kept);
            else
                keep_best(routes, keep, [](size_t) { return 0.0f; }, kept);
        }
    }
    assign_slots(r, kept, token_order(r));
    renormalise(r);
}

}  // namespace

int64_t gate_capacity(int64_t tokens, int64_t experts, double factor, int64_t min_capacity) {
    const float per_expert = static_cast<float>(static_cast<double>(tokens) / static_cast<double>(experts));
    const float want = per_expert * static_cast<float>(factor);
    const int64_t c = static_cast<int64_t>(std::ceil(want));
    return std::max(c, min_capacity);
}

Routing gate(const GateConfig &cfg, const float *logits, int64_t S, int64_t E, const uint8_t *used_token,
             const GroupMax &group_max) {
    validate(cfg, S, E, used_token);
    for (int64_t i = 0; i < S * E; ++i)
        if (!std::isfinite(logits[i]))
            fail(DSZ_ERR_INVALID_ARGUMENT, "gate logit [%lld, %lld] is not finite (%g)",
                 static_cast<long long>(i / E), static_cast<long long>(i % E), static_cast<double>(logits[i]));
    Routing r;
    r.tokens = S;
    r.experts = E;
    r.k = cfg.k;
    r.probs.resize(static_cast<size_t>(S * E));
    softmax_rows(logits, S, E, r.probs.data());
    r.exp_counts.assign(static_cast<size_t>(E), 0);
    const size_t n = static_cast<size_t>(S * cfg.k);
    r.expert.assign(n, 0);
    r.slot.assign(n, -1);
    r.weight.assign(n, 0.0f);
    if (cfg.k == 1) top1(cfg, logits, used_token, r, group_max);
    else if (cfg.k == 2) top2(cfg, logits, r, group_max);
    else topk(cfg, r, group_max);
    return r;
}

void gate_backward(const Routing &r, const float *d_weight, double d_l_aux, float *d_probs, float *d_logits) {
    const int64_t S = r.tokens, E = r.experts, k = r.k;
    std::vector<double> dp(static_cast<size_t>(E));
    for (int64_t s = 0; s < S; ++s) {
        std::fill(dp.begin(), dp.end(), 0.0);
        if (d_weight) {
            if (k == 1) {
                if (r.slot[static_cast<size_t>(s)] >= 0) dp[static_cast<size_t>(r.expert[static_cast<size_t>(s)])] += d_weight[s];
            } else {
                /* w_j = g_j / D, D = max(sum of kept g, eps): dg_i = dw_i / D - sum_j dw_j g_j / D^2
                 * (the second term vanishes where the clamp is active). */
                double sum = 0, dot = 0;
                for (int64_t j = 0; j < k; ++j) {
                    const size_t i = static_cast<size_t>(s * k + j);
                    if (r.slot[i] < 0) continue;
                    const double g = r.probs[static_cast<size_t>(s * E + r.expert[i])];
                    sum += g;
                    dot += d_weight[i] * g;
                }
                const bool clamped = static_cast<float>(sum) < kEps;
                const double D = clamped ? static_cast<double>(kEps) : sum;
                for (int64_t j = 0; j < k; ++j) {
                    const size_t i = static_cast<size_t>(s * k + j);
                    if (r.slot[i] < 0) continue;
                    dp[static_cast<size_t>(r.expert[i])] += d_weight[i] / D - (clamped ? 0.0 : dot / (D * D));
                }
            }
        }
        for (int64_t e = 0; e < E; ++e)
            dp[static_cast<size_t>(e)] += d_l_aux * r.aux_scale * r.ce[static_cast<size_t>(e)] / static_cast<double>(S);
        const float *p = &r.probs[static_cast<size_t>(s * E)];
        if (d_probs)
            for (int64_t e = 0; e < E; ++e) d_probs[s * E + e] = static_cast<float>(dp[static_cast<size_t>(e)]);
        if (d_logits) {
            double pdp = 0;
            for (int64_t e = 0; e < E; ++e) pdp += p[e] * dp[static_cast<size_t>(e)];
            for (int64_t e = 0; e < E; ++e)
                d_logits[s * E + e] = static_cast<float>(p[e] * (dp[static_cast<size_t>(e)] - pdp));
        }
    }
}

void jitter(float *x, size_t n, double eps, uint64_t seed, float *multipliers) {
    if (!std::isfinite(eps) || eps < 0 || eps >= 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "jitter epsilon = %g must be in [0, 1)", eps);
    const float lo = static_cast<float>(1.0 - eps), width = static_cast<float>(2.0 * eps);
    for (size_t i = 0; i < n; ++i) {
        const float m = lo + width * uniform01(seed, NoiseStream::jitter, i);
        if (x) x[i] *= m;
        if (multipliers) multipliers[i] = m;
    }
}

}  // namespace moe
}  // namespace dsz
