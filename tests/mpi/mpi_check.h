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
 *                          to nearest even, as the library converts
 *                          (tests/common/half_bits.h);
 *   view_f32(data, ndim, shape)  a compact float32 host DLTensor;
 *   world_engine(config, log_level)  an engine over MPI_COMM_WORLD, which
 *                          the program initialised itself.
 */
#pragma once

#include <dszero.h>
#include <mpi.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/half_bits.h"

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

static inline DLTensor view_f32(float *data, int ndim, int64_t *shape) {
    DLTensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.device.device_type = kDLCPU;
    t.ndim = ndim;
    t.dtype.code = kDLFloat;
    t.dtype.bits = 32;
    t.dtype.lanes = 1;
    t.shape = shape;
    return t;
}

static inline dsz_engine *world_engine(const char *config, int32_t log_level) {
    dsz_init_options o;
    OK(dsz_init_options_init(&o, sizeof o));
    MPI_Comm world = MPI_COMM_WORLD; /* read by dsz_init only */
    o.mpi_comm = &world;
    o.log_level = log_level;
    dsz_engine *e = NULL;
    OK(dsz_init(&e, config, &o));
    return e;
}
