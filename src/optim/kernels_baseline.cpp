/*
 * kernels_baseline.cpp -- the optimizer kernels for any x86-64 CPU.
 *
 * The fallback when AVX2/FMA/F16C are missing, and the reference the tests
 * compare the faster builds against. fp16 goes through common/half.h's
 * scalar conversions (no F16C here); the rest is kernel_body.h, which the
 * compiler still vectorizes with SSE2.
 */
#include <cstring>

#include "common/half.h"
#include "optim/kernels.h"

namespace dsz {
namespace optk {
namespace {

constexpr size_t kBlockF16 = 512;

void load_f16(const uint16_t *src, float *dst) {
    for (size_t i = 0; i < kBlockF16; ++i) dst[i] = fp16_to_float(src[i]);
}

void store_f16(const float *src, uint16_t *dst) {
    for (size_t i = 0; i < kBlockF16; ++i) dst[i] = float_to_fp16(src[i]);
}

#include "optim/kernel_body.h"

static_assert(kBlock == kBlockF16, "fp16 block size");

}  // namespace

namespace detail {
extern const KernelTable table_baseline = DSZ_KERNEL_TABLE_BODY(Isa::baseline);
}

}  // namespace optk
}  // namespace dsz
