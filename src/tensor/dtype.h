/*
 * dtype.h -- the element types dszero moves around, and their DLPack codes.
 *
 * Only three floating types cross the ABI today: float32, float16 and
 * bfloat16. Everything internal is keyed on DType, never on raw DLPack codes.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include <dlpack/dlpack.h>

namespace dsz {

enum class DType : uint8_t { f32 = 0, f16 = 1, bf16 = 2 };

inline size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

inline const char *dtype_name(DType t) {
    switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    default: return "bfloat16";
    }
}

inline DLDataType dtype_to_dlpack(DType t) {
    DLDataType d;
    d.code = t == DType::bf16 ? static_cast<uint8_t>(kDLBfloat) : static_cast<uint8_t>(kDLFloat);
    d.bits = t == DType::f32 ? 32 : 16;
    d.lanes = 1;
    return d;
}

/* false when the DLPack type is none of the three. */
inline bool dtype_from_dlpack(DLDataType d, DType *out) {
    if (d.lanes != 1) return false;
    if (d.code == kDLFloat && d.bits == 32) { *out = DType::f32; return true; }
    if (d.code == kDLFloat && d.bits == 16) { *out = DType::f16; return true; }
    if (d.code == kDLBfloat && d.bits == 16) { *out = DType::bf16; return true; }
    return false;
}

}  // namespace dsz
