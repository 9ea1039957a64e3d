//! AVX2 (+FMA, F16C) dot-product kernels for x86-64.
//!
//! Each kernel computes the same integer block sums as its scalar reference in
//! [`crate::legacy`] or [`crate::kquants`] and differs from it only in the order of the f32 accumulation. The kernels
//! are `unsafe fn`s with `#[target_feature]`; the only way to reach them is the safe `_bytes`
//! wrappers installed in [`crate::dispatch`]'s AVX2 and AVX-512 tables, which are handed out
//! only after `avx2`, `fma` and `f16c` were detected. No kernel has a tail: the formats hold
//! whole blocks (32 or 256 weights) and `check_dot` rejects any other `n`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::check_dot;
use crate::kquants::{BlockQ4K, BlockQ6K, BlockQ8K, QK_K, k4_scales_mins};
use crate::legacy::{BlockQ4_1, BlockQ8_0, BlockQ8_1};
use crate::traits::blocks;

/// Whether the features of this module's kernels were detected (for debug assertions).
#[cfg(feature = "std")]
fn features_present() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

#[cfg(not(feature = "std"))]
fn features_present() -> bool {
    cfg!(all(
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))
}

/// Sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_f32x8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Two little-endian halves `[a, b]` (4 bytes) widened to `[a, b, 0, 0]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16x2_to_f32(a: [u8; 2], b: [u8; 2]) -> __m128 {
    _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes([
        a[0], a[1], b[0], b[1],
    ])))
}

/// Sum of the 32 signed products of two 32-byte vectors, as eight i32 lanes converted to f32,
/// with `x` unsigned (0..=255) and `y` signed. Products are paired in i16 by `maddubs`, so
/// `|x0·y0 + x1·y1|` must stay below 2^15 (true for 4-bit `x`, and for `|x|, |y| ≤ 127`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// Q8_0 · Q8_0 with AVX2: per block `(d_x·d_y)·Σ q_x q_y`, the product formed as
/// `|q_x| · (q_y with q_x's sign)` so that `maddubs` (unsigned × signed) applies. Quants of -128
/// (never written by ggml's quantizers) can saturate the pair sums and differ from the scalar.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_0_q8_0_avx2(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        // SAFETY: `qs` are 32-byte arrays and `loadu` has no alignment requirement.
        let (qx, qy) = unsafe {
            (
                _mm256_loadu_si256(bx.qs.as_ptr().cast()),
                _mm256_loadu_si256(by.qs.as_ptr().cast()),
            )
        };
        let sumi = dot_u8_i8(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
        let d = _mm_mul_ps(f16x2_to_f32(bx.d, [0; 2]), f16x2_to_f32(by.d, [0; 2]));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), sumi, acc);
    }
    hsum_f32x8(acc)
}

/// Q4_1 · Q8_1 with AVX2: per block `(d_x·d_y)·Σ q_x q_y + m_x·s_y`; the nibbles are unsigned,
/// so `maddubs` multiplies them by the signed Q8_1 quants directly.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_1_q8_1_avx2(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    // Lane 1 collects Σ m_x·s_y (lane 0 holds the d products and is ignored).
    let mut acc_ms = _mm_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        // SAFETY: `bx.qs` is a 16-byte array, `by.qs` a 32-byte one; `loadu` has no alignment
        // requirement.
        let (q4, qy) = unsafe {
            (
                _mm_loadu_si128(bx.qs.as_ptr().cast()),
                _mm256_loadu_si256(by.qs.as_ptr().cast()),
            )
        };
        // Weights 0..16 are the low nibbles, 16..32 the high ones.
        let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q4), q4), low_nibbles);
        let sumi = dot_u8_i8(qx, qy);
        // [d_x·d_y, m_x·s_y, 0, 0]
        let dm = _mm_mul_ps(f16x2_to_f32(bx.d, bx.m), f16x2_to_f32(by.d, by.s));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), sumi, acc);
        acc_ms = _mm_add_ps(acc_ms, dm);
    }
    hsum_f32x8(acc) + _mm_cvtss_f32(_mm_movehdup_ps(acc_ms))
}

/// [`vec_dot_q8_0_q8_0_avx2`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_q8_0_q8_0_avx2_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ8_0>(x), blocks::<BlockQ8_0>(y));
    // SAFETY: this function is installed only in the dispatch tables of tiers that require
    // AVX2, FMA and F16C, and those tables are handed out only after detecting them.
    unsafe { vec_dot_q8_0_q8_0_avx2(n, x, y) }
}

/// [`vec_dot_q4_1_q8_1_avx2`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_q4_1_q8_1_avx2_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ4_1>(x), blocks::<BlockQ8_1>(y));
    // SAFETY: as for `vec_dot_q8_0_q8_0_avx2_bytes`.
    unsafe { vec_dot_q4_1_q8_1_avx2(n, x, y) }
}

/// A 16 × i16 vector with `lo` in lanes 0..8 and `hi` in lanes 8..16: the per-16-weight scales
/// of one 32-weight chunk, lined up with the pair sums of `maddubs`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_16x2(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// Q4_K · Q8_K with AVX2: per 32-weight sub-block `sc·Σ q_x q_y` in i32 (nibbles unsigned, so
/// `maddubs` applies directly), scaled by `d·d_y`; the minimum term `dmin·d_y·Σ m·bsum` uses
/// Q8_K's group sums as the scalar kernel does.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_k_q8_k_avx2(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let (scales, mins) = k4_scales_mins(&bx.scales);
        let summin: i32 = (0..QK_K / 16)
            .map(|j| i32::from(by.bsum(j)) * i32::from(mins[j / 2]))
            .sum();
        let mut sumi = _mm256_setzero_si256();
        for g in 0..QK_K / 64 {
            // SAFETY: the offsets keep every 32-byte load inside `bx.qs` (128 bytes) and
            // `by.qs` (256 bytes); `loadu` has no alignment requirement.
            let (q4, y0, y1) = unsafe {
                (
                    _mm256_loadu_si256(bx.qs.as_ptr().add(32 * g).cast()),
                    _mm256_loadu_si256(by.qs.as_ptr().add(64 * g).cast()),
                    _mm256_loadu_si256(by.qs.as_ptr().add(64 * g + 32).cast()),
                )
            };
            // Weights 64g..64g+32 are the low nibbles, the next 32 the high ones.
            let lo = _mm256_and_si256(q4, low_nibbles);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), low_nibbles);
            let s0 = _mm256_set1_epi16(i16::from(scales[2 * g]));
            let s1 = _mm256_set1_epi16(i16::from(scales[2 * g + 1]));
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        let dy = by.scale();
        let d = f16x2_to_f32(bx.d, bx.dmin);
        let d = _mm_mul_ps(d, _mm_set1_ps(dy));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min += _mm_cvtss_f32(_mm_movehdup_ps(d)) * summin as f32;
    }
    hsum_f32x8(acc) - acc_min
}

/// Q6_K · Q8_K with AVX2: the 6-bit quants are rebuilt unsigned (0..=63) from `ql` and `qh`,
/// `Σ (q − 32)·q_y` is formed as `maddubs(q, y) − maddubs(32, y)` per pair, then weighted by the
/// signed per-16 scales in i32 and scaled by `d·d_y`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q6_k_q8_k_avx2(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let m4 = _mm256_set1_epi8(0x0f);
    let m32 = _mm256_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            // SAFETY: the offsets keep the loads inside `bx.ql` (128 bytes), `bx.qh` (64 bytes)
            // and `by.qs` (256 bytes); `loadu` has no alignment requirement.
            let (ql0, ql1, qh, ys) = unsafe {
                let yp = by.qs.as_ptr().add(128 * h);
                (
                    _mm256_loadu_si256(bx.ql.as_ptr().add(64 * h).cast()),
                    _mm256_loadu_si256(bx.ql.as_ptr().add(64 * h + 32).cast()),
                    _mm256_loadu_si256(bx.qh.as_ptr().add(32 * h).cast()),
                    [
                        _mm256_loadu_si256(yp.cast()),
                        _mm256_loadu_si256(yp.add(32).cast()),
                        _mm256_loadu_si256(yp.add(64).cast()),
                        _mm256_loadu_si256(yp.add(96).cast()),
                    ],
                )
            };
            // The four 32-weight chunks of this half, unsigned 0..=63 (bits masked before each
            // 16-bit shift, so nothing crosses a byte).
            let qs = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(qh, _mm256_set1_epi8(0x03))),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_slli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c))),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                    _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    _mm256_srli_epi16::<2>(_mm256_and_si256(qh, _mm256_set1_epi8(0xc0u8 as i8))),
                ),
            ];
            for (k, (q, yk)) in qs.into_iter().zip(ys).enumerate() {
                let c = 8 * h + 2 * k;
                let pairs =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(q, yk), _mm256_maddubs_epi16(m32, yk));
                let sc = scales_16x2(i16::from(bx.scales[c]), i16::from(bx.scales[c + 1]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, sc));
            }
        }
        let d = _mm_mul_ps(f16x2_to_f32(bx.d, [0; 2]), _mm_set1_ps(by.scale()));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// [`vec_dot_q4_k_q8_k_avx2`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_q4_k_q8_k_avx2_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ4K>(x), blocks::<BlockQ8K>(y));
    // SAFETY: as for `vec_dot_q8_0_q8_0_avx2_bytes`.
    unsafe { vec_dot_q4_k_q8_k_avx2(n, x, y) }
}

/// [`vec_dot_q6_k_q8_k_avx2`] on raw bytes, for the dispatch tables.
pub(crate) fn vec_dot_q6_k_q8_k_avx2_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ6K>(x), blocks::<BlockQ8K>(y));
    // SAFETY: as for `vec_dot_q8_0_q8_0_avx2_bytes`.
    unsafe { vec_dot_q6_k_q8_k_avx2(n, x, y) }
}
