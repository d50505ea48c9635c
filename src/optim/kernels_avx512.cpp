/*
 * kernels_avx512.cpp -- the optimizer kernels built for AVX-512 F/BW/VL/DQ.
 *
 * Compiled with the AVX-512 flags and -mprefer-vector-width=512
 * (src/CMakeLists.txt, by file name); only called when the CPU has them
 * (kernel_dispatch.cpp). fp16 as in kernels_avx2.cpp (F16C plus NaN
 * patches), 16 lanes at a time; the maskz forms with a full mask only
 * avoid GCC 12's false -W(maybe-)uninitialized in its own headers. bf16
 * stays on integer rounding: vcvtneps2bf16 (AVX512_BF16) flushes subnormal
 * inputs to zero, which half.h does not.
 */
#include <immintrin.h>

#include <cstring>

#include "optim/kernels.h"

namespace dsz {
namespace optk {
namespace {

constexpr size_t kBlockF16 = 512;

/* NaN lanes are rare: one compare per vector finds them, and only then
 * are they patched (see kernels_avx2.cpp). */
void load_f16(const uint16_t *src, float *dst) {
    const __m256i mag16 = _mm256_set1_epi16(0x7fff), inf16 = _mm256_set1_epi16(0x7c00);
    for (size_t i = 0; i < kBlockF16; i += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i));
        __m512 f = _mm512_maskz_cvtph_ps(0xffff, h);
        const __mmask16 nan = _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, mag16), inf16);
        if (nan) {
            const __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, h);
            const __m512i sign = _mm512_maskz_slli_epi32(
                0xffff, _mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16);
            const __m512i mag = _mm512_and_si512(w, _mm512_set1_epi32(0x7fff));
            const __m512i bits = _mm512_or_si512(
                _mm512_or_si512(sign, _mm512_maskz_slli_epi32(0xffff, mag, 13)),
                _mm512_set1_epi32(0x70000000));
            f = _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(bits));
        }
        _mm512_storeu_ps(dst + i, f);
    }
}

void store_f16(const float *src, uint16_t *dst) {
    for (size_t i = 0; i < kBlockF16; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        if (nan) {
            const __m512 quiet = _mm512_or_ps(_mm512_and_ps(x, _mm512_set1_ps(-0.0f)),
                                              _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
            x = _mm512_mask_mov_ps(x, nan, quiet);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i),
                            _mm512_maskz_cvtps_ph(0xffff, x, _MM_FROUND_TO_NEAREST_INT));
    }
}

#include "optim/kernel_body.h"

static_assert(kBlock == kBlockF16, "fp16 block size");

}  // namespace

namespace detail {
extern const KernelTable table_avx512 = DSZ_KERNEL_TABLE_BODY(Isa::avx512);
}

}  // namespace optk
}  // namespace dsz
