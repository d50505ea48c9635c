/*
 * stream.h -- streaming kernels that move the same bytes as an Adam step.
 *
 * The yardstick of bench_adam: what memory allows for Adam's access
 * pattern, with trivial arithmetic. fp32 step: read p, g, m, v and write p,
 * m, v (28 B/param). Mixed-precision step: read p, m, v and a 16-bit g,
 * write p, m, v and a 16-bit copy of p (28 B/param). Plus STREAM triad.
 * Each is built three times (stream_<isa>.cpp), like the library kernels.
 */
#pragma once

#include <cstddef>
#include <cstdint>

struct StreamKernels {
    void (*same_fp32)(float *p, float *m, float *v, const float *g, size_t n);
    void (*same_mixed)(float *p, float *m, float *v, const uint16_t *g, uint16_t *out, size_t n);
    void (*triad)(float *a, const float *b, const float *c, float s, size_t n);
    /* The same in fixed blocks of 512 (n a multiple of 512). */
    void (*same_fp32_blocked)(float *p, float *m, float *v, const float *g, size_t n);
    void (*same_mixed_blocked)(float *p, float *m, float *v, const uint16_t *g, uint16_t *out,
                               size_t n);
};

extern const StreamKernels stream_baseline, stream_avx2, stream_avx512;
