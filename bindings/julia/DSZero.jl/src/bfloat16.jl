# bfloat16.jl -- bf16 as UInt16 bits (Julia's Float16 is IEEE fp16 already;
# Base has no bfloat16). Round to nearest, ties to even, like the library.

"""
    bf16_bits(x::Float32) -> UInt16

The bfloat16 nearest to `x` (ties to even), as bits. NaN stays a quiet NaN.
"""
function bf16_bits(x::Float32)
    u = reinterpret(UInt32, x)
    (u & 0x7fffffff) > 0x7f800000 && return UInt16((u >> 16) | 0x0040)
    return UInt16((u + 0x00007fff + ((u >> 16) & 0x00000001)) >> 16)
end
bf16_bits(x::Real) = bf16_bits(Float32(x))

"The `Float32` a bfloat16 bit pattern stands for (exact)."
bf16_to_float32(b::UInt16) = reinterpret(Float32, UInt32(b) << 16)
