/*
 * stream_body.h -- the streaming kernels' loops (see stream.h), included
 * by stream_<isa>.cpp inside an anonymous namespace.
 */

void same_fp32(float *__restrict p, float *__restrict m, float *__restrict v,
               const float *__restrict g, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const float gi = g[i];
        p[i] += gi;
        m[i] += gi;
        v[i] += gi;
    }
}

void same_mixed(float *__restrict p, float *__restrict m, float *__restrict v,
                const uint16_t *__restrict g, uint16_t *__restrict out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const uint16_t gi = g[i];
        const float gf = static_cast<float>(gi);
        p[i] += gf;
        m[i] += gf;
        v[i] += gf;
        out[i] = static_cast<uint16_t>(gi + 1u);
    }
}

void triad(float *__restrict a, const float *__restrict b, const float *__restrict c, float s,
           size_t n) {
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

/* The same two kernels in the optimizer kernels' loop shape (fixed blocks
 * of 512, see src/optim/kernel_body.h); bench_adam takes the faster form
 * as the yardstick. n must be a multiple of 512 here. */
constexpr size_t kBlk = 512;

void same_fp32_blocked(float *p, float *m, float *v, const float *g, size_t n) {
    for (size_t b = 0; b < n; b += kBlk) {
        float *__restrict pb = p + b, *__restrict mb = m + b, *__restrict vb = v + b;
        const float *__restrict gb = g + b;
        for (size_t i = 0; i < kBlk; ++i) {
            const float gi = gb[i];
            pb[i] += gi;
            mb[i] += gi;
            vb[i] += gi;
        }
    }
}

void same_mixed_blocked(float *p, float *m, float *v, const uint16_t *g, uint16_t *out, size_t n) {
    for (size_t b = 0; b < n; b += kBlk) {
        float *__restrict pb = p + b, *__restrict mb = m + b, *__restrict vb = v + b;
        const uint16_t *__restrict gb = g + b;
        uint16_t *__restrict ob = out + b;
        for (size_t i = 0; i < kBlk; ++i) {
            const uint16_t gi = gb[i];
            const float gf = static_cast<float>(gi);
            pb[i] += gf;
            mb[i] += gf;
            vb[i] += gf;
            ob[i] = static_cast<uint16_t>(gi + 1u);
        }
    }
}
