/*
 * optim_harness.h -- a parameter group in memory, random data, and one
 * update step, for the optimizer tests.
 *
 * A Group owns the flat arrays the engine would hand to Optimizer::update:
 * master weights, states, gradients (fp32 or 16-bit), 16-bit/fp32 outputs,
 * tensor boundaries and spans. Data are random with a fixed seed: weights
 * over several decades, gradients from 1e-20 to 1e4 with some exact zeros,
 * so that tiny, huge and zero values all pass through every formula.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/half.h"
#include "common/thread_pool.h"
#include "config/config.h"
#include "optim/optimizer.h"
#include "optim_reference.h"

namespace optharness {

using dsz::DType;

inline float round_to(DType t, float x) {
    if (t == DType::f16) return dsz::fp16_to_float(dsz::float_to_fp16(x));
    if (t == DType::bf16) return dsz::bf16_to_float(dsz::float_to_bf16(x));
    return x;
}

inline uint16_t to16(DType t, float x) {
    return t == DType::f16 ? dsz::float_to_fp16(x) : dsz::float_to_bf16(x);
}

inline float from16(DType t, uint16_t h) {
    return t == DType::f16 ? dsz::fp16_to_float(h) : dsz::bf16_to_float(h);
}

struct Group {
    size_t n = 0;
    std::vector<dsz::Segment> tensors;
    std::vector<dsz::Span> spans;  /* out pointers are set by step() */
    std::vector<float> p;
    std::vector<std::vector<float>> s;
    std::vector<float> g32;        /* the gradient values, fp32 */
    std::vector<uint16_t> g16;     /* the same, 16-bit, when grad_dtype is */
    DType grad_dtype = DType::f32;
    bool with_out = false;
    DType out_dtype = DType::f32;
    std::vector<float> out32;
    std::vector<uint16_t> out16;
};

/* Tensors of the given sizes, back to back, each cut into spans of at
 * most max_span elements. */
inline void layout(Group &G, const std::vector<size_t> &sizes, size_t max_span) {
    G.tensors.clear();
    G.spans.clear();
    size_t off = 0;
    for (size_t sz : sizes) {
        G.tensors.push_back({off, sz});
        for (size_t b = 0; b < sz; b += max_span)
            G.spans.push_back({off + b, std::min(max_span, sz - b), nullptr});
        off += sz;
    }
    G.n = off;
}

inline float random_magnitude(std::mt19937_64 &rng, double lo_exp, double hi_exp) {
    std::uniform_real_distribution<double> e(lo_exp, hi_exp);
    const double sign = (rng() & 1) ? 1.0 : -1.0;
    return static_cast<float>(sign * std::pow(10.0, e(rng)));
}

inline void init_group(Group &G, std::mt19937_64 &rng, int nstates, float state_init) {
    G.p.resize(G.n);
    for (float &x : G.p) x = rng() % 50 == 0 ? 0.0f : random_magnitude(rng, -4, 1);
    G.s.assign(nstates, std::vector<float>(G.n, state_init));
    G.out32.assign(G.n, 0.0f);
    G.out16.assign(G.n, 0);
}

/* New random gradients, representable in grad_dtype. */
inline void random_grads(Group &G, std::mt19937_64 &rng) {
    G.g32.resize(G.n);
    G.g16.resize(G.n);
    for (size_t i = 0; i < G.n; ++i) {
        const float g = rng() % 33 == 0 ? 0.0f : random_magnitude(rng, -20, 4);
        if (G.grad_dtype == DType::f32) {
            G.g32[i] = g;
        } else {
            G.g16[i] = to16(G.grad_dtype, g);
            G.g32[i] = from16(G.grad_dtype, G.g16[i]);
        }
    }
}

/* The hyper-parameters of step k: lr and beta1 move as a scheduler would. */
inline dsz::StepHyper hyper_for(int64_t k, double wd) {
    dsz::StepHyper h;
    h.lr = 1e-3 * (1.0 + 0.5 * std::sin(static_cast<double>(k)));
    h.weight_decay = wd;
    h.beta1 = 0.9 - 0.02 * static_cast<double>(k % 3);
    h.beta2 = 0.999;
    h.step = k;
    return h;
}

inline void step(const dsz::Optimizer &opt, Group &G, const dsz::StepHyper &h, double grad_mul,
                 dsz::ThreadPool *pool) {
    std::vector<float *> st;
    for (auto &v : G.s) st.push_back(v.data());
    for (dsz::Span &sp : G.spans) {
        if (!G.with_out) {
            sp.out = nullptr;
        } else if (G.out_dtype == DType::f32) {
            sp.out = G.out32.data() + sp.offset;
        } else {
            sp.out = G.out16.data() + sp.offset;
        }
    }
    dsz::UpdateArgs a;
    a.master = G.p.data();
    a.grad = G.grad_dtype == DType::f32 ? static_cast<const void *>(G.g32.data())
                                        : static_cast<const void *>(G.g16.data());
    a.grad_dtype = G.grad_dtype;
    a.states = st.empty() ? nullptr : st.data();
    a.out_dtype = G.out_dtype;
    a.spans = &G.spans;
    a.tensors = &G.tensors;
    a.grad_mul = grad_mul;
    a.hyper = h;
    a.pool = pool;
    opt.update(a);
}

inline optref::In reference_input(const Group &G, const dsz::StepHyper &h, double grad_mul) {
    optref::In in;
    in.p.assign(G.p.begin(), G.p.end());
    in.g.assign(G.g32.begin(), G.g32.end());
    for (const auto &v : G.s) in.s.emplace_back(v.begin(), v.end());
    in.grad_mul = static_cast<double>(static_cast<float>(grad_mul));
    in.h = h;
    in.tensors = &G.tensors;
    return in;
}

/* Worst |x - exact| / (2^-24 · e) seen, and the first element beyond the
 * tolerance (1e-6 · e, i.e. about 16.8 of these units). */
struct Check {
    double worst = 0;
    long bad = 0;
    char what[256] = "";

    void value(const char *name, size_t i, float x, const optref::E &r,
               const optref::E *alt = nullptr) {
        const double unit = std::ldexp(1.0, -24);
        double err = std::fabs(static_cast<double>(x) - r.v);
        if (alt) err = std::min(err, std::fabs(static_cast<double>(x) - alt->v));
        const double tol = 1e-6 * r.e + 1e-37;
        const double ratio = r.e > 0 ? err / (unit * r.e) : (err == 0 ? 0 : INFINITY);
        if (ratio > worst && err > 1e-37) worst = ratio;
        if (!(err <= tol)) {
            if (bad++ == 0)
                std::snprintf(what, sizeof what, "%s[%zu] = %.9g, exact %.17g, e %.3g", name, i,
                              static_cast<double>(x), r.v, r.e);
        }
    }
};

/* Pools live for the whole test program: a failed CMocka assertion
 * longjmps out of the test, skipping destructors, and a pool left behind
 * on a dead stack frame would hang the next test. */
inline dsz::ThreadPool &pool(int threads) {
    static dsz::ThreadPool one(1), two(2);
    return threads == 1 ? one : two;
}

inline dsz::OptimizerConfig config(dsz::OptimizerType t) {
    dsz::OptimizerConfig c;
    c.type = t;
    return c;
}

}  // namespace optharness
