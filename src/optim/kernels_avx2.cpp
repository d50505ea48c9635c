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
 * they are: such lanes are rebuilt from the bits. NaN lanes are rare, so
 * one compare per vector finds them and the patch runs only then. */
void load_f16(const uint16_t *src, float *dst) {
    const __m128i mag16 = _mm_set1_epi16(0x7fff), inf16 = _mm_set1_epi16(0x7c00);
    for (size_t i = 0; i < kBlockF16; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i));
        __m256 f = _mm256_cvtph_ps(h);
        const __m128i nan16 = _mm_cmpgt_epi16(_mm_and_si128(h, mag16), inf16);
        if (_mm_movemask_epi8(nan16)) {
            const __m256i w = _mm256_cvtepu16_epi32(h);
            const __m256i mag = _mm256_and_si256(w, _mm256_set1_epi32(0x7fff));
            const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16);
            const __m256i bits = _mm256_or_si256(_mm256_or_si256(sign, _mm256_slli_epi32(mag, 13)),
                                                 _mm256_set1_epi32(0x70000000));
            const __m256i nan = _mm256_cvtepi16_epi32(nan16);
            f = _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan));
        }
        _mm256_storeu_ps(dst + i, f);
    }
}

void store_f16(const float *src, uint16_t *dst) {
    for (size_t i = 0; i < kBlockF16; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        if (_mm256_movemask_ps(nan)) {
            const __m256 quiet = _mm256_or_ps(_mm256_and_ps(x, _mm256_set1_ps(-0.0f)),
                                              _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
            x = _mm256_blendv_ps(x, quiet, nan);
        }
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
