/*
 * half.h -- exact scalar conversions between float and the 16-bit formats.
 *
 * IEEE binary16 (fp16) and bfloat16, round-to-nearest-even, NaN kept quiet,
 * overflow to infinity. Correct rounding is unique, so any vectorized kernel
 * that rounds correctly produces the same bits as these functions; tests use
 * them as the reference.
 */
#pragma once

#include <cstdint>
#include <cstring>

namespace dsz {

inline float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint32_t float_to_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline uint16_t float_to_fp16(float value) {
    uint32_t u = float_to_bits(value);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t out;
    if (u >= 0x47800000u) {                 /* >= 65536, inf or NaN */
        out = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (u < 0x38800000u) {           /* below 2^-14: subnormal or zero */
        float f = bits_to_float(u) + 0.5f;  /* the FPU rounds to the 2^-24 grid */
        out = static_cast<uint16_t>(float_to_bits(f) - 0x3f000000u);
    } else {
        const uint32_t mant_odd = (u >> 13) & 1u;
        u += 0xc8000fffu + mant_odd;        /* rebias exponent, round to nearest even */
        out = static_cast<uint16_t>(u >> 13);
    }
    return static_cast<uint16_t>(out | (sign >> 16));
}

inline float fp16_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float f = static_cast<float>(mant) * 5.9604644775390625e-8f; /* 2^-24, exact */
        return bits_to_float(float_to_bits(f) | sign);
    }
    if (exp == 31) return bits_to_float(sign | 0x7f800000u | (mant << 13));
    return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t float_to_bf16(float value) {
    uint32_t u = float_to_bits(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

}  // namespace dsz
