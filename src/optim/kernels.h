/*
 * kernels.h -- the element-wise optimizer kernels and the run-time ISA choice.
 *
 * The arithmetic of every optimizer is written once, as plain branch-free
 * loops over contiguous fp32 arrays (kernel_body.h), and compiled three
 * times: plain x86-64 (kernels_baseline.cpp), AVX2+FMA+F16C
 * (kernels_avx2.cpp) and AVX-512 (kernels_avx512.cpp). kernel_table() picks
 * the best set the CPU supports, once. Each kernel exists per (gradient
 * dtype, output dtype) pair so that no dtype is tested inside a loop.
 *
 * A kernel updates one Piece: a contiguous run of one span, with every
 * pointer already offset to the run's first element. The per-optimizer
 * files (adam.cpp, ...) turn hyper-parameters into the fp32 constants
 * below and spread pieces over the thread pool.
 *
 * This header is included by the ISA-specific files, so it holds only
 * types and declarations: no inline function that a file compiled for
 * AVX-512 could emit and the linker then share with baseline code.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsz {
namespace optk {

/* Indices into the kernel arrays: gradient and output dtypes use DType's
 * values (f32 0, f16 1, bf16 2); an output index of 3 means "no output". */
constexpr int kDtypes = 3;
constexpr int kOutNone = 3;
constexpr int kOuts = 4;

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

struct Piece {
    float *p;          /* master weights */
    float *s0, *s1;    /* state arrays (unused ones may be null) */
    const void *g;     /* gradients, in the kernel's gradient dtype */
    void *out;         /* updated weights in the output dtype, or null */
    size_t n;
};

/* Adam/AdamW (DeepSpeedCPUAdam form): g = g*gm + l2*p; m, v from g;
 * p = p*decay + step*m / (sqrt(v)*rbc2 + eps). AdamW: l2 = 0, decay =
 * 1 - lr*wd; L2 mode: l2 = wd, decay = 1; step = -lr/bc1, rbc2 = 1/sqrt(bc2). */
struct AdamK {
    float gm, l2, decay, b1, omb1, b2, omb2, step, rbc2, eps;
};

/* LAMB: u = m / (sqrt(v + eps_in) + eps_out) + wd*p with m, v from g*gm;
 * (eps_in, eps_out) = (eps, 0) with eps_inside_sqrt, (0, eps) without. */
struct LambK {
    float gm, wd, b1, omb1, b2, omb2, eps_in, eps_out;
};

/* Lion: c = b1*m + omb1*g; p = p*decay - lr*sign(c) (sign(0) = -1);
 * m = b2*m + omb2*g. */
struct LionK {
    float gm, decay, lr, b1, omb1, b2, omb2;
};

/* CPUAdagrad: s += (g + wd*p)^2; p -= lr*g / (sqrt(s) + eps). */
struct AdagradK {
    float gm, wd, lr, eps;
};

/* torch.optim.SGD: d = g + wd*p; with momentum: buf = d on the first step,
 * else mom*buf + damp1*d (damp1 = 1 - dampening); d = nesterov ? d +
 * mom*buf : buf; p = p + nlr*d (nlr = -lr). */
struct SgdK {
    float gm, wd, nlr, mom, damp1;
    bool nesterov;
};

template <class K>
using KernelFn = void (*)(const K &, const Piece &);

struct KernelTable {
    Isa isa;
    KernelFn<AdamK> adam[kDtypes][kOuts];
    /* LAMB pass 1: updates m and v, returns sum(p^2) and sum(u^2) of the
     * piece (double, fixed summation order). Reads p, writes nothing else. */
    void (*lamb_moments[kDtypes])(const LambK &, const Piece &, double sums[2]);
    /* LAMB pass 2: p -= coef*u, u recomputed from the updated m and v. */
    void (*lamb_apply[kOuts])(const LambK &, float coef, const Piece &);
    KernelFn<LionK> lion[kDtypes][kOuts];
    KernelFn<AdagradK> adagrad[kDtypes][kOuts];
    KernelFn<SgdK> sgd[kDtypes][kOuts];                 /* no momentum, no state */
    KernelFn<SgdK> sgd_momentum[2][kDtypes][kOuts];     /* [first step] */
    /* n values between fp32 and a dtype, exactly as common/half.h rounds. */
    void (*to_f32[kDtypes])(const void *src, float *dst, size_t n);
    void (*from_f32[kDtypes])(const float *src, void *dst, size_t n);
};

/* The table in use: the best ISA this CPU supports, unless forced. */
const KernelTable &kernel_table();

Isa best_isa();
bool isa_supported(Isa isa);
const char *isa_name(Isa isa);

/* For tests and benchmarks: make kernel_table() return the given ISA's
 * kernels. Returns false (and changes nothing) if the CPU lacks it. */
bool force_isa(Isa isa);

namespace detail {
extern const KernelTable table_baseline, table_avx2, table_avx512;
}

}  // namespace optk
}  // namespace dsz
