/*
 * mpi_check.h -- what the C programs run under mpirun share, so that each
 * test states only what it checks:
 *   CHECK(cond, fmt, ...)  on failure prints "[rank R] file:line: check
 *                          failed: cond: message" and aborts the whole job
 *                          (MPI_Abort: no rank is left waiting);
 *   OK(call)               CHECK that a dszero call returned DSZ_OK, with
 *                          dsz_last_error() as the message;
 *   test_hash(seed)        a well-mixed 32-bit hash for deterministic data;
 *   to16(f, bf)            fp32 -> fp16 (bf = 0) or bf16 (bf = 1), round
 *                          to nearest even, as the library converts.
 */
#pragma once

#include <dszero.h>
#include <mpi.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline void check_failed_at(const char *file, int line, const char *cond) {
    int r = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", r, file, line, cond);
}

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            check_failed_at(__FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, "\n");                         \
            MPI_Abort(MPI_COMM_WORLD, 1);                  \
        }                                                  \
    } while (0)

#define OK(call) CHECK((call) == DSZ_OK, "%s", dsz_last_error())

static inline unsigned test_hash(unsigned seed) {
    seed ^= seed >> 16;
    seed *= 0x7feb352dU;
    seed ^= seed >> 15;
    seed *= 0x846ca68bU;
    seed ^= seed >> 16;
    return seed;
}

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
