/* pieces.cpp -- see pieces.h. */
#include "optim/pieces.h"

#include <algorithm>

#include "common/error.h"

namespace dsz {

static_assert(static_cast<int>(DType::f32) == 0 && static_cast<int>(DType::f16) == 1 &&
                  static_cast<int>(DType::bf16) == 2,
              "kernel tables are indexed by DType");

static bool known_dtype(DType t) {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16;
}

void check_update_args(const UpdateArgs &a, int state_count, const char *who) {
    if (!a.spans) fail(DSZ_ERR_INTERNAL, "%s: update without spans", who);
    if (a.spans->empty()) return;
    if (!a.master || !a.grad)
        fail(DSZ_ERR_INTERNAL, "%s: update without master weights or gradients", who);
    if (state_count > 0 && !a.states) fail(DSZ_ERR_INTERNAL, "%s: update without states", who);
    for (int i = 0; i < state_count; ++i)
        if (!a.states[i]) fail(DSZ_ERR_INTERNAL, "%s: state array %d is null", who, i);
    if (!known_dtype(a.grad_dtype) || !known_dtype(a.out_dtype))
        fail(DSZ_ERR_INTERNAL, "%s: unknown gradient or output dtype", who);
    if (a.hyper.step < 1)
        fail(DSZ_ERR_INTERNAL, "%s: step count %lld (must be >= 1)", who,
             static_cast<long long>(a.hyper.step));
}

std::vector<PieceRef> cut_spans(const std::vector<Span> &spans) {
    std::vector<PieceRef> out;
    size_t count = 0;
    for (const Span &s : spans) count += (s.n + kPieceElems - 1) / kPieceElems;
    out.reserve(count);
    for (size_t i = 0; i < spans.size(); ++i)
        for (size_t b = 0; b < spans[i].n; b += kPieceElems)
            out.push_back({i, spans[i].offset + b, std::min(kPieceElems, spans[i].n - b), 0});
    return out;
}

std::vector<PieceRef> cut_spans_by_tensor(const std::vector<Span> &spans,
                                          const std::vector<Segment> &tensors, const char *who) {
    std::vector<PieceRef> out = cut_spans(spans);
    size_t last_span = static_cast<size_t>(-1), tensor = 0;
    for (PieceRef &r : out) {
        if (r.span != last_span) {
            const Span &s = spans[r.span];
            auto it = std::upper_bound(tensors.begin(), tensors.end(), s.offset,
                                       [](size_t off, const Segment &t) { return off < t.offset; });
            if (it == tensors.begin() || s.offset + s.n > (it - 1)->offset + (it - 1)->n)
                fail(DSZ_ERR_INTERNAL, "%s: span [%zu, %zu) is not inside one tensor", who,
                     s.offset, s.offset + s.n);
            tensor = static_cast<size_t>(it - tensors.begin()) - 1;
            last_span = r.span;
        }
        r.tensor = tensor;
    }
    return out;
}

optk::Piece make_piece(const UpdateArgs &a, const PieceRef &r, int state_count) {
    const Span &s = (*a.spans)[r.span];
    optk::Piece p;
    p.p = a.master + r.begin;
    p.s0 = state_count > 0 ? a.states[0] + r.begin : nullptr;
    p.s1 = state_count > 1 ? a.states[1] + r.begin : nullptr;
    p.g = static_cast<const char *>(a.grad) + r.begin * dtype_size(a.grad_dtype);
    p.out = s.out ? static_cast<char *>(s.out) + (r.begin - s.offset) * dtype_size(a.out_dtype)
                  : nullptr;
    p.n = r.n;
    return p;
}

int out_index(const UpdateArgs &a, const PieceRef &r) {
    return (*a.spans)[r.span].out ? static_cast<int>(a.out_dtype) : optk::kOutNone;
}

void for_each_piece(ThreadPool *pool, size_t count, const std::function<void(size_t)> &fn) {
    if (!pool || pool->size() == 1 || count < 2) {
        for (size_t i = 0; i < count; ++i) fn(i);
        return;
    }
    pool->parallel_for(count, 1, [&](size_t, size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) fn(i);
    });
}

}  // namespace dsz
