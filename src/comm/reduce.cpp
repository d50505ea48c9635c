/*
 * reduce.cpp -- rank-order reductions (see reduce.h).
 *
 * Works in blocks of kBlock elements through a small accumulator so that
 * dst may alias a source and the loops vectorize; the per-element order of
 * operations is fixed, so blocking changes nothing in the result.
 */
#include "comm/reduce.h"

#include <cstdint>
#include <cstring>

#include "common/error.h"
#include "common/half.h"

namespace dsz {
namespace comm {
namespace {

constexpr size_t kBlock = 1024;

/* How an element type is loaded into its accumulator and stored back. */
template <class T> struct Plain {
    using Elem = T;
    using Acc = T;
    static Acc load(Elem x) { return x; }
    static Elem store(Acc a) { return a; }
    static Acc round(Acc a) { return a; }
};
struct Fp16 {
    using Elem = uint16_t;
    using Acc = float;
    static Acc load(Elem x) { return fp16_to_float(x); }
    static Elem store(Acc a) { return float_to_fp16(a); }
    static Acc round(Acc a) { return fp16_to_float(float_to_fp16(a)); }
};
struct Bf16 {
    using Elem = uint16_t;
    using Acc = float;
    static Acc load(Elem x) { return bf16_to_float(x); }
    static Elem store(Acc a) { return float_to_bf16(a); }
    static Acc round(Acc a) { return bf16_to_float(float_to_bf16(a)); }
};

template <class A> inline A add(A a, A b) { return a + b; }
inline int32_t add(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
inline int64_t add(int64_t a, int64_t b) {
    return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
inline uint8_t add(uint8_t a, uint8_t b) { return static_cast<uint8_t>(a + b); }

/* NaN wins: once an accumulator is NaN it stays NaN, and a NaN source
 * replaces it. For integers b != b is always false. */
template <class A> inline A max_of(A a, A b) { return (b > a || b != b) ? b : a; }
template <class A> inline A min_of(A a, A b) { return (b < a || b != b) ? b : a; }

struct Sum {
    template <class A> static A apply(A a, A b) { return add(a, b); }
    static constexpr bool rounds = true;
};
struct Max {
    template <class A> static A apply(A a, A b) { return max_of(a, b); }
    static constexpr bool rounds = false;
};
struct Min {
    template <class A> static A apply(A a, A b) { return min_of(a, b); }
    static constexpr bool rounds = false;
};

template <class Ty, class Op>
void reduce_typed(void *dst_v, const void *const *srcs_v, int nsrc, size_t count) {
    using Elem = typename Ty::Elem;
    using Acc = typename Ty::Acc;
    Elem *dst = static_cast<Elem *>(dst_v);
    Acc acc[kBlock];
    for (size_t base = 0; base < count; base += kBlock) {
        const size_t n = count - base < kBlock ? count - base : kBlock;
        const Elem *s0 = static_cast<const Elem *>(srcs_v[0]) + base;
        for (size_t i = 0; i < n; ++i) acc[i] = Ty::load(s0[i]);
        for (int r = 1; r < nsrc; ++r) {
            const Elem *s = static_cast<const Elem *>(srcs_v[r]) + base;
            if (Op::rounds) {
                for (size_t i = 0; i < n; ++i) acc[i] = Ty::round(Op::apply(acc[i], Ty::load(s[i])));
            } else {
                for (size_t i = 0; i < n; ++i) acc[i] = Op::apply(acc[i], Ty::load(s[i]));
            }
        }
        Elem *d = dst + base;
        for (size_t i = 0; i < n; ++i) d[i] = Ty::store(acc[i]);
    }
}

template <class Ty>
void reduce_op(ReduceOp op, void *dst, const void *const *srcs, int nsrc, size_t count) {
    switch (op) {
    case ReduceOp::sum: reduce_typed<Ty, Sum>(dst, srcs, nsrc, count); return;
    case ReduceOp::max: reduce_typed<Ty, Max>(dst, srcs, nsrc, count); return;
    case ReduceOp::min: reduce_typed<Ty, Min>(dst, srcs, nsrc, count); return;
    }
    fail(DSZ_ERR_INVALID_ARGUMENT, "unknown reduction %d", static_cast<int>(op));
}

}  // namespace

void reduce_in_order(ElemType type, ReduceOp op, void *dst, const void *const *srcs, int nsrc,
                     size_t count) {
    if (nsrc < 1) fail(DSZ_ERR_INTERNAL, "reduce_in_order needs at least one source");
    if (count == 0) return;
    if (nsrc == 1) {
        if (dst != srcs[0]) std::memmove(dst, srcs[0], count * elem_size(type));
        return;
    }
    switch (type) {
    case ElemType::f32: reduce_op<Plain<float>>(op, dst, srcs, nsrc, count); return;
    case ElemType::f64: reduce_op<Plain<double>>(op, dst, srcs, nsrc, count); return;
    case ElemType::i32: reduce_op<Plain<int32_t>>(op, dst, srcs, nsrc, count); return;
    case ElemType::i64: reduce_op<Plain<int64_t>>(op, dst, srcs, nsrc, count); return;
    case ElemType::u8: reduce_op<Plain<uint8_t>>(op, dst, srcs, nsrc, count); return;
    case ElemType::f16: reduce_op<Fp16>(op, dst, srcs, nsrc, count); return;
    case ElemType::bf16: reduce_op<Bf16>(op, dst, srcs, nsrc, count); return;
    }
    fail(DSZ_ERR_INVALID_ARGUMENT, "unknown element type %d", static_cast<int>(type));
}

}  // namespace comm
}  // namespace dsz
