/*
 * kernels_avx2.cpp -- the optimizer kernels built for AVX2 + FMA + F16C.
 *
 * Compiled with -mavx2 -mfma -mf16c (src/CMakeLists.txt, by file name) and
 * only called when the CPU has them (kernel_dispatch.cpp). fp16 uses F16C:
 * vcvtph2ps is exact, and vcvtps2ph rounds to nearest even like half.h
 * except for NaN payloads, so NaNs are first replaced by the quiet NaN of
 * the same sign that half.h produces (0x7e00 | sign).
 */
#include <immintrin.h>

#include <cstring>

#include "optim/kernels.h"

namespace dsz {
namespace optk {
namespace {

constexpr size_t kBlockF16 = 512;

void load_f16(const uint16_t *src, float *dst) {
    for (size_t i = 0; i < kBlockF16; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
}

void store_f16(const float *src, uint16_t *dst) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
    for (size_t i = 0; i < kBlockF16; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        x = _mm256_blendv_ps(x, _mm256_or_ps(_mm256_and_ps(x, sign), qnan), nan);
        _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i),
                         _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
}

#include "optim/kernel_body.h"

static_assert(kBlock == kBlockF16, "fp16 block size");

}  // namespace

namespace detail {
extern const KernelTable table_avx2 = DSZ_KERNEL_TABLE_BODY(Isa::avx2);
}

}  // namespace optk
}  // namespace dsz
