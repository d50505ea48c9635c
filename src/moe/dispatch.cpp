/*
 * dispatch.cpp -- see dispatch.h. Rows are moved whole (memcpy) where no
 * arithmetic is needed; sums run in fp32 over rows converted by
 * tensor/convert.h, one token at a time.
 */
#include "moe/dispatch.h"

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

size_t buffer_row(const Routing &r, size_t route) {
    return static_cast<size_t>(r.expert[route]) * static_cast<size_t>(r.capacity) + static_cast<size_t>(r.slot[route]);
}

}  // namespace

void dispatch(const Routing &r, const void *x, void *buf, DType dt, int64_t hidden) {
    const Rows R = rows(dt, hidden);
    std::memset(buf, 0, static_cast<size_t>(r.experts * r.capacity) * R.row_bytes);
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
    std::vector<float> acc(R.hidden), scratch(R.hidden);
    for (size_t s = 0; s < static_cast<size_t>(r.tokens); ++s) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t i = s * k; i < (s + 1) * k; ++i) {
            if (!r.dispatched(i)) continue;
            const float w = r.weight[i];
            const float *o = R.f32(out, buffer_row(r, i), scratch.data());
            for (size_t m = 0; m < R.hidden; ++m) acc[m] += w * o[m];
        }
        convert_from_f32(acc.data(), R.at(y, s), dt, R.hidden);
    }
}

void combine_backward(const Routing &r, const void *out, const void *dy, void *d_out, float *d_weight, DType dt,
                      int64_t hidden) {
    const Rows R = rows(dt, hidden);
    const size_t k = static_cast<size_t>(r.k);
    std::vector<float> gy(R.hidden), go(R.hidden), scaled(R.hidden);
    if (d_out) std::memset(d_out, 0, static_cast<size_t>(r.experts * r.capacity) * R.row_bytes);
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
                const float w = r.weight[i];
                for (size_t m = 0; m < R.hidden; ++m) scaled[m] = w * g[m];
                convert_from_f32(scaled.data(), R.at(d_out, buffer_row(r, i)), dt, R.hidden);
            }
        }
    }
}

}  // namespace moe
}  // namespace dsz
