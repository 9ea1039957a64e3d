//! AVX2 (+FMA, F16C) dot-product kernels for x86-64.
//!
//! Each kernel computes the same integer block sums as its scalar reference in
//! [`crate::legacy`] and differs from it only in the order of the f32 accumulation. The kernels
//! are `unsafe fn`s with `#[target_feature]`; the only way to reach them is the safe `_bytes`
//! wrappers installed in [`crate::dispatch`]'s AVX2 and AVX-512 tables, which are handed out
//! only after `avx2`, `fma` and `f16c` were detected. No kernel has a tail: the formats hold
//! whole 32-weight blocks and `check_dot` rejects any other `n`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::check_dot;
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
