/*
 * reduce.h -- the element-wise reduction every backend uses.
 *
 * One function, one promise: element i of the result is
 * ((s0[i] op s1[i]) op s2[i]) ... in the order the sources are given, and
 * does not depend on how many elements are reduced per call. That is what
 * makes dszero's reductions bitwise reproducible whatever the chunking or
 * the partition (all_reduce == reduce_scatter + all_gather).
 */
#pragma once

#include <cstddef>

#include "comm/communicator.h"

namespace dsz {
namespace comm {

/* dst[i] = srcs[0][i] op srcs[1][i] op ... op srcs[nsrc-1][i] for i < count,
 * left to right. dst may alias any source. nsrc >= 1.
 * Floats: max/min propagate NaN. Integers wrap on overflow. f16/bf16 sums
 * are rounded to the type after every addition. */
void reduce_in_order(ElemType type, ReduceOp op, void *dst, const void *const *srcs, int nsrc,
                     size_t count);

}  // namespace comm
}  // namespace dsz
