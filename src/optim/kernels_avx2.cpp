/*
 * kernels_avx2.cpp -- the optimizer kernels built for AVX2 + FMA + F16C.
 *
 * Compiled with -mavx2 -mfma -mf16c (src/CMakeLists.txt, by file name) and
 * only called when the CPU has them (kernel_dispatch.cpp). fp16 uses F16C,
 * which rounds exactly like half.h everywhere but on NaNs: vcvtph2ps
 * quiets signalling NaNs (half.h keeps them), and vcvtps2ph keeps payload
 * bits (half.h gives 0x7e00 | sign); both are patched up per lane.
 */
#include <immintrin.h>

#include <cstring>

#include "optim/kernels.h"

namespace dsz {
namespace optk {
namespace {

constexpr size_t kBlockF16 = 512;

/* vcvtph2ps is exact but quiets signalling NaNs, which half.h keeps as
 * they are; such lanes are rebuilt from the bits. */
void load_f16(const uint16_t *src, float *dst) {
    const __m256i mag_mask = _mm256_set1_epi32(0x7fff), sign_mask = _mm256_set1_epi32(0x8000);
    const __m256i inf16 = _mm256_set1_epi32(0x7c00), exp_fill = _mm256_set1_epi32(0x70000000);
    for (size_t i = 0; i < kBlockF16; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i));
        const __m256i w = _mm256_cvtepu16_epi32(h);
        const __m256i mag = _mm256_and_si256(w, mag_mask);
        const __m256i nan = _mm256_cmpgt_epi32(mag, inf16);
        const __m256i nan_bits =
            _mm256_or_si256(_mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, sign_mask), 16),
                                            _mm256_slli_epi32(mag, 13)),
                            exp_fill);
        const __m256 f = _mm256_blendv_ps(_mm256_cvtph_ps(h), _mm256_castsi256_ps(nan_bits),
                                          _mm256_castsi256_ps(nan));
        _mm256_storeu_ps(dst + i, f);
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
