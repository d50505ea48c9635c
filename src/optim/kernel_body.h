/*
 * kernel_body.h -- the optimizer arithmetic, written once, compiled per ISA.
 *
 * Included only by kernels_baseline.cpp, kernels_avx2.cpp and
 * kernels_avx512.cpp, inside an anonymous namespace, after each has defined
 * its fp16 conversion of one block of kBlock elements:
 *     void load_f16(const uint16_t *src, float *dst);
 *     void store_f16(const float *src, uint16_t *dst);
 * and before it defines its KernelTable with DSZ_KERNEL_TABLE_BODY.
 * Everything here has internal linkage, so nothing compiled for AVX-512 can
 * be shared by the linker with code that runs on an older CPU; for the same
 * reason it calls no inline function of another header (std::min,
 * std::sqrt, half.h) -- only builtins.
 *
 * Work goes in blocks of kBlock elements and every loop has that fixed trip
 * count, which GCC vectorizes even at -O2 (whose cost model skips loops
 * needing a scalar epilogue). A piece's last partial block is copied into
 * zero-padded buffers and run through the same code, so every element is
 * computed by the same instructions wherever a span boundary falls.
 * 16-bit gradients are widened into an L1-resident block buffer before the
 * arithmetic loop, and outputs narrowed from the just-written block after
 * it: the extra traffic stays in L1, the memory traffic is one pass.
 */

constexpr size_t kBlock = 512;

/* ---- bf16 (integer round-to-nearest-even, NaN kept quiet) ---- */

inline void load_bf16(const uint16_t *__restrict src, float *__restrict dst) {
    for (size_t i = 0; i < kBlock; ++i)
        dst[i] = __builtin_bit_cast(float, static_cast<uint32_t>(src[i]) << 16);
}

inline void store_bf16(const float *__restrict src, uint16_t *__restrict dst) {
    for (size_t i = 0; i < kBlock; ++i) {
        const uint32_t u = __builtin_bit_cast(uint32_t, src[i]);
        const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const uint32_t quiet = (u >> 16) | 0x40u;
        dst[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
    }
}

/* ---- one block of gradients in, one block of outputs out ---- */

constexpr int kNoGrad = 3;

constexpr size_t grad_bytes(int G) { return G == 0 ? 4 : 2; }
constexpr size_t out_bytes(int O) { return O == 0 ? 4 : O == optk::kOutNone ? 0 : 2; }

/* Gradients i..i+kBlock of g as fp32: in place for f32, else widened into buf. */
template <int G>
inline const float *grad_block(const void *g, size_t i, float *buf) {
    if constexpr (G == 0) {
        return static_cast<const float *>(g) + i;
    } else if constexpr (G == 1) {
        load_f16(static_cast<const uint16_t *>(g) + i, buf);
        return buf;
    } else if constexpr (G == 2) {
        load_bf16(static_cast<const uint16_t *>(g) + i, buf);
        return buf;
    } else {
        return nullptr;
    }
}

/* Writes p[0..kBlock) to out elements i..i+kBlock in the output dtype. */
template <int O>
inline void out_block(const float *__restrict p, void *out, size_t i) {
    if constexpr (O == 0) {
        float *__restrict o = static_cast<float *>(out) + i;
        for (size_t j = 0; j < kBlock; ++j) o[j] = p[j];
    } else if constexpr (O == 1) {
        store_f16(p, static_cast<uint16_t *>(out) + i);
    } else if constexpr (O == 2) {
        store_bf16(p, static_cast<uint16_t *>(out) + i);
    }
}

/* Runs op.block() over a piece with NS state arrays. op.block(p, s0, s1, g,
 * count) updates exactly kBlock elements; count (< kBlock only in the
 * padded last block) tells reductions how many are real. */
template <int G, int O, int NS, class Op>
inline void run_piece(Op &op, const optk::Piece &pc) {
    alignas(64) float gbuf[kBlock];
    size_t i = 0;
    for (; i + kBlock <= pc.n; i += kBlock) {
        const float *g = grad_block<G>(pc.g, i, gbuf);
        op.block(pc.p + i, NS > 0 ? pc.s0 + i : nullptr, NS > 1 ? pc.s1 + i : nullptr, g, kBlock);
        out_block<O>(pc.p + i, pc.out, i);
    }
    const size_t len = pc.n - i;
    if (len == 0) return;

    alignas(64) float p[kBlock] = {}, s0[kBlock] = {}, s1[kBlock] = {};
    alignas(64) float graw32[kBlock] = {};
    alignas(64) uint16_t graw16[kBlock] = {};
    std::memcpy(p, pc.p + i, len * 4);
    if (NS > 0) std::memcpy(s0, pc.s0 + i, len * 4);
    if (NS > 1) std::memcpy(s1, pc.s1 + i, len * 4);
    const float *g = nullptr;
    if constexpr (G == 0) {
        std::memcpy(graw32, static_cast<const float *>(pc.g) + i, len * 4);
        g = graw32;
    } else if constexpr (G != kNoGrad) {
        std::memcpy(graw16, static_cast<const uint16_t *>(pc.g) + i, len * 2);
        g = grad_block<G>(graw16, 0, gbuf);
    }
    op.block(p, s0, s1, g, len);
    std::memcpy(pc.p + i, p, len * 4);
    if (NS > 0) std::memcpy(pc.s0 + i, s0, len * 4);
    if (NS > 1) std::memcpy(pc.s1 + i, s1, len * 4);
    if constexpr (O != optk::kOutNone) {
        alignas(64) float o32[kBlock];
        alignas(64) uint16_t o16[kBlock];
        void *o = O == 0 ? static_cast<void *>(o32) : static_cast<void *>(o16);
        out_block<O>(p, o, 0);
        std::memcpy(static_cast<char *>(pc.out) + i * out_bytes(O), o, len * out_bytes(O));
    }
}

/* ---- the optimizers: one block each ---- */

struct AdamOp {
    optk::AdamK k;
    void block(float *__restrict p, float *__restrict m, float *__restrict v,
               const float *__restrict g, size_t) const {
        const float gm = k.gm, l2 = k.l2, decay = k.decay, b1 = k.b1, omb1 = k.omb1;
        const float b2 = k.b2, omb2 = k.omb2, step = k.step, rbc2 = k.rbc2, eps = k.eps;
        for (size_t i = 0; i < kBlock; ++i) {
            const float gi = g[i] * gm + l2 * p[i];
            const float mi = b1 * m[i] + omb1 * gi;
            const float vi = b2 * v[i] + omb2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            const float denom = __builtin_sqrtf(vi) * rbc2 + eps;
            p[i] = p[i] * decay + step * mi / denom;
        }
    }
};

/* LAMB pass 1. Partial sums go to 8 lanes in a fixed order (reproducible
 * whatever the threads; the lanes also let the compiler vectorize). u is
 * zeroed past count (padding); p is zero there already. */
struct LambMomentsOp {
    optk::LambK k;
    double pp[8] = {}, uu[8] = {};
    void block(float *__restrict p, float *__restrict m, float *__restrict v,
               const float *__restrict g, size_t count) {
        const float gm = k.gm, wd = k.wd, b1 = k.b1, omb1 = k.omb1, b2 = k.b2, omb2 = k.omb2;
        const float eps_in = k.eps_in, eps_out = k.eps_out;
        alignas(64) float u[kBlock];
        for (size_t i = 0; i < kBlock; ++i) {
            const float gi = g[i] * gm;
            const float mi = b1 * m[i] + omb1 * gi;
            const float vi = b2 * v[i] + omb2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            u[i] = mi / (__builtin_sqrtf(vi + eps_in) + eps_out) + wd * p[i];
        }
        for (size_t i = count; i < kBlock; ++i) u[i] = 0.0f;
        double sp[8], su[8];
        for (size_t j = 0; j < 8; ++j) {
            sp[j] = pp[j];
            su[j] = uu[j];
        }
        for (size_t i = 0; i < kBlock; i += 8) {
            for (size_t j = 0; j < 8; ++j) {
                const double pj = p[i + j], uj = u[i + j];
                sp[j] += pj * pj;
                su[j] += uj * uj;
            }
        }
        for (size_t j = 0; j < 8; ++j) {
            pp[j] = sp[j];
            uu[j] = su[j];
        }
    }
};

struct LambApplyOp {
    optk::LambK k;
    float coef;
    void block(float *__restrict p, float *__restrict m, float *__restrict v,
               const float *__restrict, size_t) const {
        const float wd = k.wd, eps_in = k.eps_in, eps_out = k.eps_out, c = coef;
        for (size_t i = 0; i < kBlock; ++i) {
            const float u = m[i] / (__builtin_sqrtf(v[i] + eps_in) + eps_out) + wd * p[i];
            p[i] = p[i] - c * u;
        }
    }
};

struct LionOp {
    optk::LionK k;
    void block(float *__restrict p, float *__restrict m, float *__restrict,
               const float *__restrict g, size_t) const {
        const float gm = k.gm, decay = k.decay, lr = k.lr, b1 = k.b1, omb1 = k.omb1;
        const float b2 = k.b2, omb2 = k.omb2, nlr = -k.lr;
        for (size_t i = 0; i < kBlock; ++i) {
            const float gi = g[i] * gm;
            const float c = b1 * m[i] + omb1 * gi;
            p[i] = p[i] * decay + (c > 0.0f ? nlr : lr);
            m[i] = b2 * m[i] + omb2 * gi;
        }
    }
};

/* DeepSpeed's CPUAdagrad: the decayed gradient feeds the sum, the raw
 * gradient the numerator (torch.optim.Adagrad differs when wd > 0). */
struct AdagradOp {
    optk::AdagradK k;
    void block(float *__restrict p, float *__restrict s, float *__restrict,
               const float *__restrict g, size_t) const {
        const float gm = k.gm, wd = k.wd, lr = k.lr, eps = k.eps;
        for (size_t i = 0; i < kBlock; ++i) {
            const float gi = g[i] * gm;
            const float gw = gi + wd * p[i];
            const float si = s[i] + gw * gw;
            s[i] = si;
            p[i] = p[i] - lr * gi / (__builtin_sqrtf(si) + eps);
        }
    }
};

struct SgdOp {
    optk::SgdK k;
    void block(float *__restrict p, float *__restrict, float *__restrict,
               const float *__restrict g, size_t) const {
        const float gm = k.gm, wd = k.wd, nlr = k.nlr;
        for (size_t i = 0; i < kBlock; ++i) {
            const float d = g[i] * gm + wd * p[i];
            p[i] = p[i] + nlr * d;
        }
    }
};

template <bool First>
struct SgdMomentumOp {
    optk::SgdK k;
    void block(float *__restrict p, float *__restrict buf, float *__restrict,
               const float *__restrict g, size_t) const {
        const float gm = k.gm, wd = k.wd, nlr = k.nlr, mom = k.mom, damp1 = k.damp1;
        const bool nesterov = k.nesterov;
        for (size_t i = 0; i < kBlock; ++i) {
            const float d = g[i] * gm + wd * p[i];
            const float b = First ? d : mom * buf[i] + damp1 * d;
            buf[i] = b;
            const float step = nesterov ? d + mom * b : b;
            p[i] = p[i] + nlr * step;
        }
    }
};

/* ---- kernel entry points, one per (gradient dtype, output dtype) ---- */

template <int G, int O>
void adam_kernel(const optk::AdamK &k, const optk::Piece &pc) {
    AdamOp op{k};
    run_piece<G, O, 2>(op, pc);
}

template <int G>
void lamb_moments_kernel(const optk::LambK &k, const optk::Piece &pc, double sums[2]) {
    LambMomentsOp op{k};
    run_piece<G, optk::kOutNone, 2>(op, pc);
    double sp = 0, su = 0;
    for (int j = 0; j < 8; ++j) {
        sp += op.pp[j];
        su += op.uu[j];
    }
    sums[0] = sp;
    sums[1] = su;
}

template <int O>
void lamb_apply_kernel(const optk::LambK &k, float coef, const optk::Piece &pc) {
    LambApplyOp op{k, coef};
    run_piece<kNoGrad, O, 2>(op, pc);
}

template <int G, int O>
void lion_kernel(const optk::LionK &k, const optk::Piece &pc) {
    LionOp op{k};
    run_piece<G, O, 1>(op, pc);
}

template <int G, int O>
void adagrad_kernel(const optk::AdagradK &k, const optk::Piece &pc) {
    AdagradOp op{k};
    run_piece<G, O, 1>(op, pc);
}

template <int G, int O>
void sgd_kernel(const optk::SgdK &k, const optk::Piece &pc) {
    SgdOp op{k};
    run_piece<G, O, 0>(op, pc);
}

template <bool First, int G, int O>
void sgd_momentum_kernel(const optk::SgdK &k, const optk::Piece &pc) {
    SgdMomentumOp<First> op{k};
    run_piece<G, O, 1>(op, pc);
}

/* ---- plain conversions (tests, and callers that need one) ---- */

template <int G>
void to_f32_kernel(const void *src, float *dst, size_t n) {
    alignas(64) float buf[kBlock];
    alignas(64) uint16_t raw[kBlock] = {};
    size_t i = 0;
    for (; i + kBlock <= n; i += kBlock) {
        const float *f = grad_block<G>(src, i, buf);
        std::memcpy(dst + i, f, kBlock * 4);
    }
    if (i == n) return;
    if constexpr (G == 0) {
        std::memcpy(dst + i, static_cast<const float *>(src) + i, (n - i) * 4);
    } else {
        std::memcpy(raw, static_cast<const uint16_t *>(src) + i, (n - i) * 2);
        std::memcpy(dst + i, grad_block<G>(raw, 0, buf), (n - i) * 4);
    }
}

template <int O>
void from_f32_kernel(const float *src, void *dst, size_t n) {
    size_t i = 0;
    for (; i + kBlock <= n; i += kBlock) out_block<O>(src + i, dst, i);
    if (i == n) return;
    alignas(64) float in[kBlock] = {};
    alignas(64) float o32[kBlock];
    alignas(64) uint16_t o16[kBlock];
    std::memcpy(in, src + i, (n - i) * 4);
    void *o = O == 0 ? static_cast<void *>(o32) : static_cast<void *>(o16);
    out_block<O>(in, o, 0);
    std::memcpy(static_cast<char *>(dst) + i * out_bytes(O), o, (n - i) * out_bytes(O));
}

#define DSZ_KT_GO(f) \
    { {f<0, 0>, f<0, 1>, f<0, 2>, f<0, 3>}, \
      {f<1, 0>, f<1, 1>, f<1, 2>, f<1, 3>}, \
      {f<2, 0>, f<2, 1>, f<2, 2>, f<2, 3>} }

#define DSZ_KT_SGDM(first) \
    { {sgd_momentum_kernel<first, 0, 0>, sgd_momentum_kernel<first, 0, 1>, \
       sgd_momentum_kernel<first, 0, 2>, sgd_momentum_kernel<first, 0, 3>}, \
      {sgd_momentum_kernel<first, 1, 0>, sgd_momentum_kernel<first, 1, 1>, \
       sgd_momentum_kernel<first, 1, 2>, sgd_momentum_kernel<first, 1, 3>}, \
      {sgd_momentum_kernel<first, 2, 0>, sgd_momentum_kernel<first, 2, 1>, \
       sgd_momentum_kernel<first, 2, 2>, sgd_momentum_kernel<first, 2, 3>} }

/* The initializer of a KernelTable for ISA `isa`, from the kernels above. */
#define DSZ_KERNEL_TABLE_BODY(isa) \
    { isa, \
      DSZ_KT_GO(adam_kernel), \
      {lamb_moments_kernel<0>, lamb_moments_kernel<1>, lamb_moments_kernel<2>}, \
      {lamb_apply_kernel<0>, lamb_apply_kernel<1>, lamb_apply_kernel<2>, lamb_apply_kernel<3>}, \
      DSZ_KT_GO(lion_kernel), \
      DSZ_KT_GO(adagrad_kernel), \
      DSZ_KT_GO(sgd_kernel), \
      {DSZ_KT_SGDM(false), DSZ_KT_SGDM(true)}, \
      {to_f32_kernel<0>, to_f32_kernel<1>, to_f32_kernel<2>}, \
      {from_f32_kernel<0>, from_f32_kernel<1>, from_f32_kernel<2>} }
