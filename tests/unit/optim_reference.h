/*
 * optim_reference.h -- float64 references of the optimizer formulas (tests).
 *
 * Written from deepspeed-behavior.md §4 and torch.optim.SGD's documented
 * semantics, independently of src/optim: Adam follows FusedAdam's form
 * (§4.2) while the library implements DeepSpeedCPUAdam's (§4.3), so the
 * tests also check that the two agree. Each reference takes the fp32 inputs
 * of one step and returns, per element, the exact (double) result and an
 * error magnitude `e`: a first-order bound on how far an fp32 evaluation
 * may land, in units of the fp32 rounding unit. e = |value| when nothing
 * cancels; it is larger where the formula cancels (p + update with opposite
 * signs, g + wd·p, ...), because there even a correctly rounded fp32
 * evaluation differs from the exact value by more than |value|·2^-24. The
 * tests accept |fp32 - exact| <= 1e-6·e (about 17 rounding units).
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "optim/optimizer.h"

namespace optref {

/* A double value with its error magnitude. */
struct E {
    double v, e;
};

/* An input or constant that the fp32 code holds rounded once. */
inline E ex(double x) { return {x, std::fabs(x)}; }
inline E operator+(E a, E b) { return {a.v + b.v, a.e + b.e}; }
inline E operator-(E a, E b) { return {a.v - b.v, a.e + b.e}; }
inline E operator*(E a, E b) { return {a.v * b.v, a.e * std::fabs(b.v) + std::fabs(a.v) * b.e}; }
inline E operator/(E a, E b) {
    return {a.v / b.v, a.e / std::fabs(b.v) + std::fabs(a.v) * b.e / (b.v * b.v)};
}
inline E esqrt(E a) {
    const double s = std::sqrt(a.v);
    return {s, s > 0 ? a.e / s : std::sqrt(a.e)};
}

/* One step's inputs: fp32 values widened, gradients as the kernel reads
 * them (after dtype conversion, before grad_mul). */
struct In {
    std::vector<double> p, g;
    std::vector<std::vector<double>> s;
    double grad_mul;
    dsz::StepHyper h;
    const std::vector<dsz::Segment> *tensors;
};

struct Out {
    std::vector<E> p;
    std::vector<std::vector<E>> s;
    /* Lion: where sign(c) is within rounding of 0, either sign is right:
     * alt_ok[i] says p_alt[i] is also acceptable. */
    std::vector<E> p_alt;
    std::vector<char> alt_ok;
};

inline void init_out(const In &in, int nstates, Out &o) {
    const size_t n = in.p.size();
    o.p.assign(n, E{0, 0});
    o.s.assign(nstates, std::vector<E>(n, E{0, 0}));
    o.p_alt.assign(n, E{0, 0});
    o.alt_ok.assign(n, 0);
}

/* FusedAdam (§4.2). */
inline void adam(const dsz::OptimizerConfig &c, const In &in, Out &o) {
    init_out(in, 2, o);
    const double k = static_cast<double>(in.h.step), b1 = in.h.beta1, b2 = in.h.beta2;
    const double wd = in.h.weight_decay, lr = in.h.lr;
    const double bc1 = c.bias_correction ? 1 - std::pow(b1, k) : 1;
    const double bc2 = c.bias_correction ? 1 - std::pow(b2, k) : 1;
    for (size_t i = 0; i < in.p.size(); ++i) {
        const E p = ex(in.p[i]);
        E g = ex(in.g[i]) * ex(in.grad_mul);
        if (!c.adam_w_mode && wd > 0) g = g + ex(wd) * p;
        const E m = ex(b1) * ex(in.s[0][i]) + ex(1 - b1) * g;
        const E v = ex(b2) * ex(in.s[1][i]) + ex(1 - b2) * (g * g);
        E upd = (m / ex(bc1)) / (esqrt(v / ex(bc2)) + ex(c.eps));
        if (c.adam_w_mode && wd > 0) upd = upd + ex(wd) * p;
        o.p[i] = p - ex(lr) * upd;
        o.s[0][i] = m;
        o.s[1][i] = v;
    }
}

/* FusedLamb (§4.4), per tensor. */
inline void lamb(const dsz::OptimizerConfig &c, const In &in, Out &o) {
    init_out(in, 2, o);
    const double k = static_cast<double>(in.h.step), b1 = in.h.beta1, b2 = in.h.beta2;
    const double wd = in.h.weight_decay, lr = in.h.lr;
    const double step_size =
        c.bias_correction ? lr * std::sqrt(1 - std::pow(b2, k)) / (1 - std::pow(b1, k)) : lr;
    std::vector<E> u(in.p.size());
    for (const dsz::Segment &t : *in.tensors) {
        double pp = 0, uu = 0;
        for (size_t i = t.offset; i < t.offset + t.n; ++i) {
            const E g = ex(in.g[i]) * ex(in.grad_mul);
            const E m = ex(b1) * ex(in.s[0][i]) + ex(1 - b1) * g;
            const E v = ex(b2) * ex(in.s[1][i]) + ex(1 - b2) * (g * g);
            const E denom = c.eps_inside_sqrt ? esqrt(v + ex(c.eps)) : esqrt(v) + ex(c.eps);
            u[i] = m / denom + ex(wd) * ex(in.p[i]);
            o.s[0][i] = m;
            o.s[1][i] = v;
            pp += in.p[i] * in.p[i];
            uu += u[i].v * u[i].v;
        }
        const double pn = std::sqrt(pp), un = std::sqrt(uu);
        E trust{1, 1};
        if (pn > 0 && un > 0) {
            double eu = 0;  /* first-order error of ||u|| */
            for (size_t i = t.offset; i < t.offset + t.n; ++i) eu += std::fabs(u[i].v) * u[i].e;
            eu /= un;
            const double r = pn / un;
            trust = {std::min(std::max(r, c.min_coeff), c.max_coeff), r + r * eu / un};
        }
        for (size_t i = t.offset; i < t.offset + t.n; ++i)
            o.p[i] = ex(in.p[i]) - ex(step_size) * trust * u[i];
    }
}

/* FusedLion / CPULion (§4.5): sign(0) = -1. */
inline void lion(const dsz::OptimizerConfig &, const In &in, Out &o) {
    init_out(in, 1, o);
    const double b1 = in.h.beta1, b2 = in.h.beta2, lr = in.h.lr, wd = in.h.weight_decay;
    for (size_t i = 0; i < in.p.size(); ++i) {
        const E g = ex(in.g[i]) * ex(in.grad_mul);
        const E c = ex(b1) * ex(in.s[0][i]) + ex(1 - b1) * g;
        const E decayed = ex(in.p[i]) * ex(1 - lr * wd);
        const bool positive = c.v > 0;
        o.p[i] = positive ? decayed - ex(lr) : decayed + ex(lr);
        if (c.e > 0 && std::fabs(c.v) <= 1e-6 * c.e) {
            o.alt_ok[i] = 1;
            o.p_alt[i] = positive ? decayed + ex(lr) : decayed - ex(lr);
        }
        o.s[0][i] = ex(b2) * ex(in.s[0][i]) + ex(1 - b2) * g;
    }
}

/* DeepSpeed's CPUAdagrad (§4.5): raw gradient in the numerator. */
inline void adagrad(const dsz::OptimizerConfig &c, const In &in, Out &o) {
    init_out(in, 1, o);
    const double lr = in.h.lr, wd = in.h.weight_decay;
    for (size_t i = 0; i < in.p.size(); ++i) {
        const E p = ex(in.p[i]);
        const E g = ex(in.g[i]) * ex(in.grad_mul);
        const E gw = wd != 0 ? g + ex(wd) * p : g;
        const E s = ex(in.s[0][i]) + gw * gw;
        o.p[i] = p - ex(lr) * g / (esqrt(s) + ex(c.eps));
        o.s[0][i] = s;
    }
}

/* torch.optim.SGD. */
inline void sgd(const dsz::OptimizerConfig &c, const In &in, Out &o) {
    const bool mom = c.momentum != 0;
    init_out(in, mom ? 1 : 0, o);
    const double lr = in.h.lr, wd = in.h.weight_decay;
    for (size_t i = 0; i < in.p.size(); ++i) {
        const E p = ex(in.p[i]);
        E d = ex(in.g[i]) * ex(in.grad_mul);
        if (wd != 0) d = d + ex(wd) * p;
        if (mom) {
            const E buf = in.h.step == 1
                              ? d
                              : ex(c.momentum) * ex(in.s[0][i]) + ex(1 - c.dampening) * d;
            o.s[0][i] = buf;
            d = c.nesterov ? d + ex(c.momentum) * buf : buf;
        }
        o.p[i] = p - ex(lr) * d;
    }
}

using RefFn = void (*)(const dsz::OptimizerConfig &, const In &, Out &);

}  // namespace optref
