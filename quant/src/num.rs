//! Scalar number helpers shared by every block format.
//!
//! The reference quantizers are specified by ggml's C code, so the helpers here reproduce the
//! C semantics that matter for bit-exact results: the `nearest_int` rounding trick, `roundf`
//! (half away from zero), x86's truncating float-to-int conversion and IEEE half/bfloat
//! rounding. `core` has no `sqrt` or `round`, so correctly rounded versions live here too; with
//! the `std` feature the hardware square root is used (the unit tests check both agree).

/// Reads an IEEE half stored little-endian and widens it (exact).
#[inline]
pub(crate) fn f16_to_f32(h: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(h)).to_f32()
}

/// Rounds to the nearest IEEE half (ties to even, as F16C and ggml's software path do).
#[inline]
pub(crate) fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// Widens a bfloat16 stored little-endian (exact).
#[inline]
pub(crate) fn bf16_to_f32(h: [u8; 2]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes(h)) << 16)
}

/// Rounds to the nearest bfloat16 with ties to even; NaNs stay NaN (quiet bit forced), as in
/// ggml's `ggml_compute_fp32_to_bf16`. Subnormals are kept, not flushed.
#[inline]
pub(crate) fn f32_to_bf16(x: f32) -> [u8; 2] {
    let u = x.to_bits();
    let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
        (u >> 16) | 64
    } else {
        u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16
    };
    (h as u16).to_le_bytes()
}

/// `|x|` without depending on `std`.
#[inline]
pub(crate) fn fabsf(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}

/// ggml's `nearest_int`: adds 1.5·2²³ so that the float adder rounds to an integer (ties to
/// even) and reads the integer back from the mantissa. Exact for |x| ≤ 4194303; larger or
/// non-finite inputs give some integer (ggml only asserts in debug builds) that callers clamp.
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `a·b + c` as ggml's C code computes it: rounded twice (`FUSED = false`, the C source's own
/// semantics and what MSVC or clang with `-ffp-contract=on` build for separate statements), or
/// once, as a fused multiply-add (`FUSED = true`: what GCC builds by default, `-ffp-contract=
/// fast`, for a CPU with FMA; llama.cpp's x86-64 AVX2 and AArch64 builds with GCC). GCC fuses a
/// product whose every use is an addition or subtraction, across statements; the quantizers
/// call this helper exactly where it does.
///
/// The fused form is one instruction only where the function it ends up in is compiled for
/// FMA: on AArch64 always; on x86-64 (whose baseline has no FMA) inside
/// `x86_avx2::quantize_fused_rows_avx2`, which is why this helper and every quantizer with a
/// `FUSED` parameter are `#[inline(always)]`. Elsewhere it is a call to the C library's `fmaf`
/// (with `std`) or the portable [`fmaf`] below: the same bits, several times slower.
#[inline(always)]
pub(crate) fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if !FUSED {
        return a * b + c;
    }
    // The same correctly rounded result; std's is the CPU's instruction where there is one.
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        fmaf(a, b, c)
    }
}

/// `nearest_int(a·b)` with ggml's inlined `nearest_int` (`a·b + 12582912`, then the low
/// mantissa bits): with `FUSED` the product is not rounded before the addition (see [`madd`]).
#[inline(always)]
pub(crate) fn nearest_int_of_product<const FUSED: bool>(a: f32, b: f32) -> i32 {
    let v = madd::<FUSED>(a, b, 12_582_912.0);
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's float → integer conversion as compiled for x86 (`cvttss2si`): truncation toward zero,
/// and the "integer indefinite" value `i32::MIN` for NaN or out-of-range inputs. Narrowing
/// casts in C (`(int8_t)`, `(uint8_t)`) then keep the low bits, which `as u8`/`as i8` do.
#[inline]
pub(crate) fn cvtt_i32(x: f32) -> i32 {
    // 2^31 is exactly representable; every f32 strictly inside (-2^31, 2^31) truncates in range.
    if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    }
}

/// C's `roundf`: nearest integer, ties away from zero, as a float.
#[inline]
pub(crate) fn roundf(x: f32) -> f32 {
    // At or above 2^23 every float is an integer already (and NaN passes through).
    if x.is_nan() || fabsf(x) >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32; // truncation, exact in this range
    let frac = x - t; // exact: x and t share the same binade or t is 0
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// `a·b + c` with a single rounding (IEEE `fmaf`), without depending on `std` or on an FMA
/// unit, so that scalar reference kernels give the bits of the SIMD kernels' fused
/// multiply-adds in every build. The product of two f32 is exact in f64; the sum is rounded to
/// f64 "to odd" (the nearest f64 with an odd last bit when inexact, found with TwoSum), which
/// then rounds to f32 correctly because f64 has more than 24 + 1 extra bits.
#[inline]
pub(crate) fn fmaf(a: f32, b: f32, c: f32) -> f32 {
    let p = f64::from(a) * f64::from(b);
    let c = f64::from(c);
    let s = p + c;
    if !s.is_finite() || s == 0.0 {
        return s as f32;
    }
    // TwoSum: `err` is exactly (p + c) - s.
    let pv = s - c;
    let cv = s - pv;
    let err = (p - pv) + (c - cv);
    let bits = s.to_bits();
    let odd = if err != 0.0 && bits & 1 == 0 {
        // The other neighbour of the exact sum: one step toward it (away from zero when it is
        // larger in magnitude).
        if (err > 0.0) == (s > 0.0) {
            f64::from_bits(bits + 1)
        } else {
            f64::from_bits(bits - 1)
        }
    } else {
        s
    };
    odd as f32
}

/// Correctly rounded square root (IEEE `sqrtf`).
#[inline]
pub(crate) fn sqrtf(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        soft_sqrtf(x)
    }
}

/// Correctly rounded square root in integer arithmetic, for builds without `std`.
#[cfg_attr(feature = "std", allow(dead_code))]
pub(crate) fn soft_sqrtf(x: f32) -> f32 {
    let bits = x.to_bits();
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    // x = m · 2^e with m an integer below 2^24.
    let exp_field = ((bits >> 23) & 0xff) as i32;
    let (mut m, mut e) = if exp_field == 0 {
        (u64::from(bits & 0x007f_ffff), -149)
    } else {
        (
            u64::from((bits & 0x007f_ffff) | 0x0080_0000),
            exp_field - 150,
        )
    };
    if e & 1 != 0 {
        m <<= 1;
        e -= 1;
    }
    // Scale m up by an even power of two so that isqrt has at least 25 significant bits.
    let shift = (m.leading_zeros() as i32 - 12) & !1; // leaves m below 2^52
    let n = m << shift;
    let q = n.isqrt();
    let sticky = u64::from(q * q != n);
    // 2q + sticky has ≥ 26 bits; its lowest bit only records inexactness, so rounding it to
    // 24 bits rounds the true root correctly (ties cannot be mistaken).
    let q2 = (q << 1) | sticky;
    let r = q2 as f32;
    // sqrt(x) = sqrt(n) · 2^((e - shift)/2) and q2 ≈ 2·sqrt(n).
    let k = (e - shift) / 2 - 1;
    r * pow2(k)
}

/// 2^k as an f32 for k in the normal range.
#[cfg_attr(feature = "std", allow(dead_code))]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmaf_is_fused() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Random bit patterns (every exponent, subnormals, infinities, NaN) and values built to
        // cancel, where a separate rounding of the product would show.
        // Miri interprets every step: a short run there checks the same code for UB.
        let n = if cfg!(miri) { 2_000 } else { 2_000_000 };
        for i in 0..n {
            let r = next();
            let (a, b, c) = if i % 2 == 0 {
                let a = f32::from_bits(r as u32);
                let b = f32::from_bits((r >> 32) as u32);
                (a, b, f32::from_bits(next() as u32))
            } else {
                let a = (r as u32 >> 8) as f32 / 65536.0 - 128.0;
                let b = ((r >> 32) as u32 >> 8) as f32 / 4096.0 - 2048.0;
                let c = -(a * b) * (1.0 + ((next() & 0xff) as f32 - 128.0) * 1e-7);
                (a, b, c)
            };
            let want = a.mul_add(b, c);
            let got = fmaf(a, b, c);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "fmaf({a:e}, {b:e}, {c:e}) = {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(127.49), 127);
    }

    #[test]
    fn roundf_rounds_ties_away_from_zero() {
        assert_eq!(roundf(0.5), 1.0);
        assert_eq!(roundf(2.5), 3.0);
        assert_eq!(roundf(-2.5), -3.0);
        assert_eq!(roundf(-0.49), 0.0);
        assert_eq!(roundf(126.5), 127.0);
        assert_eq!(roundf(1e10), 1e10);
    }

    #[test]
    fn cvtt_matches_x86_truncation() {
        assert_eq!(cvtt_i32(16.9), 16);
        assert_eq!(cvtt_i32(-0.9), 0);
        assert_eq!(cvtt_i32(f32::NAN), i32::MIN);
        assert_eq!(cvtt_i32(f32::INFINITY), i32::MIN);
        assert_eq!(cvtt_i32(3e9), i32::MIN);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16(1.0), [0x80, 0x3f]);
        // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: goes to the even one (1.0).
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), [0x80, 0x3f]);
        assert_eq!(bf16_to_f32(f32_to_bf16(-2.5)), -2.5);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn soft_sqrt_is_correctly_rounded() {
        // A deterministic spread of values over the whole range, plus subnormals and squares.
        let mut s: u32 = 0x1234_5678;
        for _ in 0..if cfg!(miri) { 2_000 } else { 200_000 } {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = f32::from_bits(s & 0x7fff_ffff);
            if !x.is_finite() {
                continue;
            }
            assert_eq!(soft_sqrtf(x).to_bits(), x.sqrt().to_bits(), "sqrt({x:e})");
        }
        for x in [
            0.0f32,
            1.0,
            2.0,
            4.0,
            0.25,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            3.0,
            1e-40,
        ] {
            assert_eq!(soft_sqrtf(x).to_bits(), x.sqrt().to_bits(), "sqrt({x:e})");
        }
        assert!(soft_sqrtf(-1.0).is_nan());
    }
}
