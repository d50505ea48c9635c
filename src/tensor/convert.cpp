/* convert.cpp -- see convert.h. */
#include "tensor/convert.h"

#include <cstdint>
#include <cstring>

#include "common/half.h"

namespace dsz {

/* convert_avx2.cpp, compiled for F16C. */
void fp16_to_f32_f16c(const uint16_t *src, float *dst, size_t n, bool add);
void f32_to_fp16_f16c(const float *src, uint16_t *dst, size_t n);

static bool have_f16c() {
    static const bool yes = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
    return yes;
}

template <class F>
static void for_each_f32(const void *src, DType t, size_t n, F &&f) {
    switch (t) {
    case DType::f32: {
        const float *s = static_cast<const float *>(src);
        for (size_t i = 0; i < n; ++i) f(i, s[i]);
        break;
    }
    case DType::f16: {
        const uint16_t *s = static_cast<const uint16_t *>(src);
        for (size_t i = 0; i < n; ++i) f(i, fp16_to_float(s[i]));
        break;
    }
    case DType::bf16: {
        const uint16_t *s = static_cast<const uint16_t *>(src);
        for (size_t i = 0; i < n; ++i) f(i, bf16_to_float(s[i]));
        break;
    }
    }
}

void convert_to_f32(const void *src, DType t, float *dst, size_t n) {
    if (n == 0) return; /* empty ranges may come with null pointers */
    if (t == DType::f32) {
        std::memcpy(dst, src, n * sizeof(float));
        return;
    }
    if (t == DType::f16 && have_f16c()) return fp16_to_f32_f16c(static_cast<const uint16_t *>(src), dst, n, false);
    for_each_f32(src, t, n, [dst](size_t i, float v) { dst[i] = v; });
}

void accumulate_to_f32(const void *src, DType t, float *dst, size_t n) {
    if (t == DType::f16 && have_f16c()) return fp16_to_f32_f16c(static_cast<const uint16_t *>(src), dst, n, true);
    for_each_f32(src, t, n, [dst](size_t i, float v) { dst[i] += v; });
}

void convert_from_f32(const float *src, void *dst, DType t, size_t n) {
    if (n == 0) return;
    switch (t) {
    case DType::f32: std::memcpy(dst, src, n * sizeof(float)); break;
    case DType::f16: {
        uint16_t *d = static_cast<uint16_t *>(dst);
        if (have_f16c()) return f32_to_fp16_f16c(src, d, n);
        for (size_t i = 0; i < n; ++i) d[i] = float_to_fp16(src[i]);
        break;
    }
    case DType::bf16: {
        uint16_t *d = static_cast<uint16_t *>(dst);
        for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
        break;
    }
    }
}

}  // namespace dsz
