/*
 * convert.cpp -- see convert.h. The conversions themselves are the optimizer
 * kernels' (src/optim/kernels.h: vectorized per ISA, chosen at run time,
 * bit-exact with common/half.h); this file only adds accumulation.
 */
#include "tensor/convert.h"

#include <cstring>

#include "optim/kernels.h"

namespace dsz {

void convert_to_f32(const void *src, DType t, float *dst, size_t n) {
    if (n == 0) return; /* empty ranges may come with null pointers */
    optk::kernel_table().to_f32[static_cast<int>(t)](src, dst, n);
}

void accumulate_to_f32(const void *src, DType t, float *dst, size_t n) {
    constexpr size_t kBlock = 2048;
    float tmp[kBlock];
    const char *s = static_cast<const char *>(src);
    for (size_t i = 0; i < n; i += kBlock) {
        const size_t k = n - i < kBlock ? n - i : kBlock;
        convert_to_f32(s + i * dtype_size(t), t, tmp, k);
        for (size_t j = 0; j < k; ++j) dst[i + j] += tmp[j];
    }
}

void convert_from_f32(const float *src, void *dst, DType t, size_t n) {
    if (n == 0) return;
    optk::kernel_table().from_f32[static_cast<int>(t)](src, dst, n);
}

}  // namespace dsz
