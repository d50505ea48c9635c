/*
 * convert.h -- element conversions between the host's dtypes and fp32.
 *
 * Used where gradients enter (copy or accumulate into fp32) and where
 * weights leave outside an optimizer update (checkpoint load). Plain loops
 * the compiler vectorizes; rounding is exactly half.h's.
 */
#pragma once

#include <cstddef>

#include "tensor/dtype.h"

namespace dsz {

void convert_to_f32(const void *src, DType src_dtype, float *dst, size_t n);
void accumulate_to_f32(const void *src, DType src_dtype, float *dst, size_t n);
void convert_from_f32(const float *src, void *dst, DType dst_dtype, size_t n);

}  // namespace dsz
