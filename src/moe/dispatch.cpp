/*
 * dispatch.cpp -- see dispatch.h. Rows are moved whole (memcpy) where no
 * arithmetic is needed; sums run in fp32 over rows converted by
 * tensor/convert.h, one token at a time.
 */
#include "moe/dispatch.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/convert.h"

namespace dsz {
namespace moe {
namespace {

struct Rows {
    size_t row_bytes;
    size_t hidden;
    DType dt;
    const char *at(const void *base, size_t row) const { return static_cast<const char *>(base) + row * row_bytes; }
    char *at(void *base, size_t row) const { return static_cast<char *>(base) + row * row_bytes; }
    /* The row as fp32: in place for float32, else converted into scratch. */
    const float *f32(const void *base, size_t row, float *scratch) const {
        if (dt == DType::f32) return reinterpret_cast<const float *>(at(base, row));
        convert_to_f32(at(base, row), dt, scratch, hidden);
        return scratch;
    }
};

Rows rows(DType dt, int64_t hidden) {
    return Rows{static_cast<size_t>(hidden) * dtype_size(dt), static_cast<size_t>(hidden), dt};
}

/* y += a * x and y = a * x over rows that never overlap (restrict lets the
 * compiler vectorize at -O2). */
void axpy(float *__restrict y, const float *__restrict x, float a, size_t n) {
    for (size_t m = 0; m < n; ++m) y[m] += a * x[m];
}

void scale(float *__restrict y, const float *__restrict x, float a, size_t n) {
    for (size_t m = 0; m < n; ++m) y[m] = a * x[m];
}

size_t buffer_row(const Routing &r, size_t route) {
    return static_cast<size_t>(r.expert[route]) * static_cast<size_t>(r.capacity) + static_cast<size_t>(r.slot[route]);
}

/* Zeroes the rows of an [E, C, M] buffer that no dispatched route writes:
 * the slots past each expert's last kept route, and kept routes whose weight
 * is zero. Cheaper than clearing the whole buffer before the copies. */
void zero_unwritten(const Routing &r, void *buf, const Rows &R) {
    std::vector<int64_t> used(static_cast<size_t>(r.experts), 0);
    for (size_t i = 0; i < r.expert.size(); ++i) {
        if (r.slot[i] < 0) continue;
        int64_t &u = used[static_cast<size_t>(r.expert[i])];
        u = std::max<int64_t>(u, r.slot[i] + 1);
        if (!r.dispatched(i)) std::memset(R.at(buf, buffer_row(r, i)), 0, R.row_bytes);
    }
    for (int64_t e = 0; e < r.experts; ++e) {
        const size_t first = static_cast<size_t>(e * r.capacity + used[static_cast<size_t>(e)]);
        const size_t end = static_cast<size_t>((e + 1) * r.capacity);
        if (end > first) std::memset(R.at(buf, first), 0, (end - first) * R.row_bytes);
    }
}

}  // namespace

void dispatch(const Routing &r, const void *x, void *buf, DType dt, int64_t hidden) {
    const Rows R = rows(dt, hidden);
    zero_unwritten(r, buf, R);
    for (size_t i = 0; i < r.expert.size(); ++i)
        if (r.dispatched(i)) std::memcpy(R.at(buf, buffer_row(r, i)), R.at(x, i / static_cast<size_t>(r.k)), R.row_bytes);
}

void dispatch_backward(const Routing &r, const void *d_buf, void *d_x, DType dt, int64_t hidden) {
    const Rows R = rows(dt, hidden);
    const size_t k = static_cast<size_t>(r.k);
    std::vector<float> acc(R.hidden);
    for (size_t s = 0; s < static_cast<size_t>(r.tokens); ++s) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t i = s * k; i < (s + 1) * k; ++i)
            if (r.dispatched(i)) accumulate_to_f32(R.at(d_buf, buffer_row(r, i)), dt, acc.data(), R.hidden);
        convert_from_f32(acc.data(), R.at(d_x, s), dt, R.hidden);
    }
}

void combine(const Routing &r, const void *out, void *y, DType dt, int64_t hidden) {
    const Rows R = rows(dt, hidden);
    const size_t k = static_cast<size_t>(r.k);
    std::vector<float> tmp(dt == DType::f32 ? 0 : R.hidden), scratch(R.hidden);
    for (size_t s = 0; s < static_cast<size_t>(r.tokens); ++s) {
        /* float32 sums straight into y's row; 16-bit rows into fp32 first */
        float *acc = dt == DType::f32 ? reinterpret_cast<float *>(R.at(y, s)) : tmp.data();
        std::memset(acc, 0, R.hidden * sizeof(float));
        for (size_t i = s * k; i < (s + 1) * k; ++i)
            if (r.dispatched(i)) axpy(acc, R.f32(out, buffer_row(r, i), scratch.data()), r.weight[i], R.hidden);
        if (dt != DType::f32) convert_from_f32(acc, R.at(y, s), dt, R.hidden);
    }
}

void combine_backward(const Routing &r, const void *out, const void *dy, void *d_out, float *d_weight, DType dt,
                      int64_t hidden) {
    const Rows R = rows(dt, hidden);
    const size_t k = static_cast<size_t>(r.k);
    std::vector<float> gy(R.hidden), go(R.hidden), scaled(R.hidden);
    if (d_out) zero_unwritten(r, d_out, R);
    for (size_t s = 0; s < static_cast<size_t>(r.tokens); ++s) {
        const float *g = R.f32(dy, s, gy.data());
        for (size_t i = s * k; i < (s + 1) * k; ++i) {
            if (d_weight) {
                double dot = 0;
                if (r.slot[i] >= 0) {
                    const float *o = R.f32(out, buffer_row(r, i), go.data());
                    for (size_t m = 0; m < R.hidden; ++m) dot += static_cast<double>(g[m]) * o[m];
                }
                d_weight[i] = static_cast<float>(dot);
            }
            if (d_out && r.dispatched(i)) {
                scale(scaled.data(), g, r.weight[i], R.hidden);
                convert_from_f32(scaled.data(), R.at(d_out, buffer_row(r, i)), dt, R.hidden);
            }
        }
    }
}

}  // namespace moe
}  // namespace dsz
