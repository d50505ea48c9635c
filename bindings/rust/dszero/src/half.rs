//! fp16 and bf16 as `u16` bit patterns, for host programs that keep fp16/bf16
//! parameters and gradients in `&[u16]` (Rust has no stable `f16`; no crate is
//! used). Conversions from `f32` round to nearest, ties to even, as the
//! library's own kernels do; conversions to `f32` are exact. NaN stays NaN.

/// `f32` -> IEEE binary16 bits (round to nearest even; overflow gives inf).
pub fn f32_to_f16_bits(value: f32) -> u16 {
    let x = value.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let a = x & 0x7fff_ffff;
    if a >= 0x7f80_0000 {
        return sign | if a > 0x7f80_0000 { 0x7e00 } else { 0x7c00 };
    }
    if a >= 0x4780_0000 {
        return sign | 0x7c00; // >= 65536: beyond the last rounding interval
    }
    if a < 0x3880_0000 {
        // Below 2^-14: a subnormal half (or zero). value = m * 2^(e - 150).
        if a <= 0x3300_0000 {
            return sign; // at most 2^-25: ties to the even neighbour, 0
        }
        let e = a >> 23;
        let m = (a & 0x7f_ffff) | 0x80_0000;
        return sign | round_shift(m, 126 - e) as u16;
    }
    // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits;
    // a carry out of the mantissa correctly bumps the exponent (up to inf).
    sign | round_shift(a - 0x3800_0000, 13) as u16
}

/// IEEE binary16 bits -> `f32` (exact).
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = ((bits & 0x8000) as u32) << 16;
    let e = ((bits >> 10) & 0x1f) as u32;
    let m = (bits & 0x3ff) as u32;
    let out = match e {
        0 if m == 0 => sign,
        0 => {
            let (mut m, mut e) = (m, 113u32);
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        31 => sign | 0x7f80_0000 | (m << 13),
        _ => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(out)
}

/// `f32` -> bfloat16 bits (round to nearest even; NaN stays a quiet NaN).
pub fn f32_to_bf16_bits(value: f32) -> u16 {
    let u = value.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// bfloat16 bits -> `f32` (exact).
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `x >> shift`, rounded to nearest with ties to even.
fn round_shift(x: u32, shift: u32) -> u32 {
    let half = 1u32 << (shift - 1);
    let rem = x & ((1u32 << shift) - 1);
    let r = x >> shift;
    if rem > half || (rem == half && r & 1 == 1) {
        r + 1
    } else {
        r
    }
}

/// Converts a slice of `f32` into fp16 bits; panics when lengths differ.
pub fn f32_slice_to_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_slice_to_f16: length mismatch");
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f32_to_f16_bits(s));
}

/// Converts a slice of `f32` into bf16 bits; panics when lengths differ.
pub fn f32_slice_to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_slice_to_bf16: length mismatch");
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f32_to_bf16_bits(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_bits_to_f32(h);
            if f.is_nan() {
                assert!(f32_to_f16_bits(f) & 0x7c00 == 0x7c00 && f32_to_f16_bits(f) & 0x3ff != 0);
            } else {
                assert_eq!(f32_to_f16_bits(f), h, "h = {h:#06x}, f = {f:e}");
            }
        }
    }

    #[test]
    fn f16_ties_go_to_even_and_neighbours_to_nearest() {
        // Between consecutive finite halves a < b the midpoint is exact in f32.
        for h in 0..0x7bffu16 {
            let (a, b) = (f16_bits_to_f32(h), f16_bits_to_f32(h + 1));
            let mid = ((a as f64 + b as f64) / 2.0) as f32;
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16_bits(mid), even, "tie at {mid:e}");
            assert_eq!(f32_to_f16_bits(f32::from_bits(mid.to_bits() - 1)), h);
            assert_eq!(f32_to_f16_bits(f32::from_bits(mid.to_bits() + 1)), h + 1);
            assert_eq!(f32_to_f16_bits(-mid), even | 0x8000);
        }
    }

    #[test]
    fn f16_edges() {
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(65519.996), 0x7bff);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00); // tie with "65536": even is inf
        assert_eq!(f32_to_f16_bits(1e9), 0x7c00);
        assert_eq!(f32_to_f16_bits(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0);
        assert_eq!(
            f32_to_f16_bits(f32::from_bits(2f32.powi(-25).to_bits() + 1)),
            1
        );
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert!(f16_bits_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn bf16_round_trips_and_rounds_to_even() {
        for b in 0..=u16::MAX {
            let f = bf16_bits_to_f32(b);
            if !f.is_nan() {
                assert_eq!(f32_to_bf16_bits(f), b);
            }
        }
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even down
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, even up
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    }
}
