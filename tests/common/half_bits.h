/*
 * half_bits.h -- fp32 to fp16 / bf16 bits for the C tests, rounding to
 * nearest even as the library converts (common/half.h), so that tests can
 * build 16-bit inputs and expected values without linking the library's
 * internals. Shared by the API tests (tests/api/support.c) and the programs
 * run under mpirun (tests/mpi/mpi_check.h).
 */
#ifndef DSZ_TEST_HALF_BITS_H
#define DSZ_TEST_HALF_BITS_H

#include <stdint.h>
#include <string.h>

/* fp32 -> fp16 (bf = 0) or bf16 (bf = 1). */
static inline uint16_t to16(float f, int bf) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (bf) return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    uint32_t s = u & 0x80000000u;
    u ^= s;
    uint16_t o;
    if (u >= 0x47800000u) {
        o = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (u < 0x38800000u) {
        float a;
        memcpy(&a, &u, 4);
        a += 0.5f;
        uint32_t r;
        memcpy(&r, &a, 4);
        o = (uint16_t)(r - 0x3f000000u);
    } else {
        u += 0xc8000fffu + ((u >> 13) & 1u);
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (s >> 16));
}

#endif
