/*
 * dispatch.h -- moving tokens into the [experts, capacity, hidden] layout and
 * back, forward and backward, on host memory.
 *
 * dispatch:  buf[e, c, :] = x[s, :] for every dispatched route (s -> e, c);
 *            every other slot is zero (DeepSpeed's einsum "sec,sm->ecm").
 * combine:   y[s, :] = sum over the token's kept routes of
 *            weight * out[e, c, :] (einsum "sec,ecm->sm").
 * Their backward passes are the transposes: dispatch_backward sums a
 * token's slot gradients; combine_backward gives d_out[e, c] = weight * dy[s]
 * and d_weight = <dy[s], out[e, c]> for every kept route (0 otherwise).
 * Elements are float32, float16 or bfloat16; 16-bit sums are taken in fp32
 * and rounded once. CPU only: the CUDA kernels belong to the GPU backend.
 */
#pragma once

#include <cstdint>

#include "moe/gate.h"
#include "tensor/dtype.h"

namespace dsz {
namespace moe {

/* x: [S, M]; buf: [E, C, M]. */
void dispatch(const Routing &r, const void *x, void *buf, DType dt, int64_t hidden);
void dispatch_backward(const Routing &r, const void *d_buf, void *d_x, DType dt, int64_t hidden);
/* out: [E, C, M]; y: [S, M]. */
void combine(const Routing &r, const void *out, void *y, DType dt, int64_t hidden);
/* Either of d_out (dtype dt) and d_weight ([S * k] fp32) may be null. */
void combine_backward(const Routing &r, const void *out, const void *dy, void *d_out, float *d_weight, DType dt,
                      int64_t hidden);

}  // namespace moe
}  // namespace dsz
