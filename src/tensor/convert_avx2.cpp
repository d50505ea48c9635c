/*
 * convert_avx2.cpp -- fp16 <-> fp32 with F16C (compiled with -mavx2 -mf16c,
 * called only when the CPU has F16C; see convert.cpp). The hardware rounds
 * to nearest even, exactly like half.h, so results are the same bits.
 */
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "common/half.h"

namespace dsz {

void fp16_to_f32_f16c(const uint16_t *src, float *dst, size_t n, bool add) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i)));
        if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(dst + i));
        _mm256_storeu_ps(dst + i, v);
    }
    for (; i < n; ++i) dst[i] = add ? dst[i] + fp16_to_float(src[i]) : fp16_to_float(src[i]);
}

void f32_to_fp16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; ++i) dst[i] = float_to_fp16(src[i]);
}

}  // namespace dsz
