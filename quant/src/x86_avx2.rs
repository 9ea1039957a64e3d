//! AVX2 (+FMA, F16C) dot-product kernels for x86-64.
//!
//! One kernel per format of the table (every one of them), plus the AVX2 paths of
//! [`crate::f32ops`]. Each dot kernel computes the same integer block sums as its scalar
//! reference in [`crate::legacy`], [`crate::kquants`] or [`crate::iquants`] and differs from it
//! only in the order of the f32 accumulation. The kernels
//! are `unsafe fn`s with `#[target_feature]`; the only way to reach them is the safe `_bytes`
//! wrappers installed in [`crate::dispatch`]'s AVX2 and AVX-512 tables, which are handed out
//! only after `avx2`, `fma` and `f16c` were detected. The block kernels have no tail: the
//! formats hold whole blocks (32 or 256 weights) and `check_dot` rejects any other `n`; the
//! float kernels (F32, F16, BF16: blocks of one value) finish a row's last `n % 8` values in
//! scalar code.
//!
//! Integer block sums are exact: every `maddubs` pair sum stays below 2^15 in magnitude for the
//! quant ranges of the format (argued at each kernel), and the i32 sums cannot overflow for
//! 256-weight blocks. The sign trick ([`dot_i8_i8`]; Q8_0, Q8_1, Q8_K, IQ4_NL, IQ4_XS)
//! is exact unless a quant is −128, which neither ggml's quantizers nor this crate's
//! `from_float` write (only a NaN activation would).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::check_dot;
use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
use crate::float::{BlockBF16, BlockF16, BlockF32};
use crate::iquants::{BlockIQ4NL, BlockIQ4XS, KVALUES_IQ4NL};
use crate::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::num::{bf16_to_f32, f16_to_f32};
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
    let mut acc = _mm256_setzero_ps();
    // Lane 1 collects Σ m_x·s_y (lane 0 holds the d products and is ignored).
    let mut acc_ms = _mm_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        // Weights 0..16 are the low nibbles, 16..32 the high ones.
        let qx = nibbles_32(&bx.qs);
        let qy = ld256_i8(&by.qs);
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

/// Q4_K · Q8_K with AVX2: per 32-weight sub-block `sc·Σ q_x q_y` in i32 (nibbles unsigned, so
/// `maddubs` applies directly), scaled by `d·d_y`; the minimum term `dmin·d_y·Σ m·bsum` uses
/// Q8_K's group sums as the scalar kernel does.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_k_q8_k_avx2(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the same preconditions.
    unsafe { q4_k_q8_k_avx2_hooked(n, x, y, || {}) }
}

/// [`vec_dot_q4_k_q8_k_avx2`] with `before_block` called before each block: the hook of a
/// matrix-vector kernel that prefetches later rows while this one is multiplied (the
/// arithmetic, and so the result, is the same).
///
/// # Safety
/// As for [`vec_dot_q4_k_q8_k_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q4_k_q8_k_avx2_hooked(
    n: usize,
    x: &[BlockQ4K],
    y: &[BlockQ8K],
    mut before_block: impl FnMut(),
) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        before_block();
        let (scales, mins) = k4_scales_mins_fast(&bx.scales);
        let summin = k4_min_lanes(mins, by);
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
        acc_min = _mm256_fmadd_ps(
            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
            _mm256_cvtepi32_ps(summin),
            acc_min,
        );
    }
    hsum_f32x8(_mm256_sub_ps(acc, acc_min))
}

/// Q6_K · Q8_K with AVX2: the 6-bit quants are rebuilt unsigned (0..=63) from `ql` and `qh`,
/// multiplied with Q8_K by `maddubs` (pair sums ≤ 2·63·128) and weighted by the signed per-16
/// scales in i32; the offset 32 is removed once per block as `32·Σ_j sc_j·bsum_j` from Q8_K's
/// group sums (equal to the scalar kernel's sum because `bsums` are the sums of the quants),
/// then scaled by `d·d_y`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q6_k_q8_k_avx2(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the same preconditions.
    unsafe { q6_k_q8_k_avx2_hooked(n, x, y, || {}) }
}

/// [`vec_dot_q6_k_q8_k_avx2`] with `before_block` called before each block: the hook of a
/// matrix-vector kernel that prefetches later rows while this one is multiplied (the
/// arithmetic, and so the result, is the same).
///
/// # Safety
/// As for [`vec_dot_q6_k_q8_k_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q6_k_q8_k_avx2_hooked(
    n: usize,
    x: &[BlockQ6K],
    y: &[BlockQ8K],
    mut before_block: impl FnMut(),
) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        before_block();
        let scales = ld128(&bx.scales.map(|v| v as u8));
        let offset =
            _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), ld256(by.bsums.as_flattened()));
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
                // Chunk 4h + k: scales 8h + 2k and 8h + 2k + 1.
                let pairs = _mm256_maddubs_epi16(q, yk);
                let sc = scale_pair_i16(scales, 4 * h + k);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, sc));
            }
        }
        // Σ sc·q·y − 32·Σ sc·bsum, lane by lane (|32·offset| < 2^25).
        let sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32::<5>(offset));
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

// ---------------------------------------------------------------------------------------------
// Helpers shared by the kernels below

/// 32 bytes from the start of `s` (which must hold at least 32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld256(s: &[u8]) -> __m256i {
    let a: &[u8; 32] = s.first_chunk().expect("32 bytes");
    // SAFETY: `a` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

/// 32 signed quants from the start of `s` (which must hold at least 32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld256_i8(s: &[i8]) -> __m256i {
    let a: &[i8; 32] = s.first_chunk().expect("32 quants");
    // SAFETY: `a` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

/// 16 bytes from the start of `s` (which must hold at least 16).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld128(s: &[u8]) -> __m128i {
    let a: &[u8; 16] = s.first_chunk().expect("16 bytes");
    // SAFETY: `a` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(a.as_ptr().cast()) }
}

/// Sum of the four f64 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_f64x4(v: __m256d) -> f64 {
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
}

/// One f16 widened to f32 (broadcast to all four lanes is not needed: lane 0 only).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_lane0(a: [u8; 2]) -> __m128 {
    f16x2_to_f32(a, [0; 2])
}

/// `a·b` of two halves in lane 0 (one conversion for both).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_product(a: [u8; 2], b: [u8; 2]) -> __m128 {
    let v = f16x2_to_f32(a, b);
    _mm_mul_ss(v, _mm_movehdup_ps(v))
}

/// The 32 products of two signed byte vectors summed in groups of four into eight i32 lanes,
/// through `maddubs(|x|, y·sign(x))`. Exact when no `x` is −128 and no `y` is −128 where `x`
/// is negative (a pair sum is at most 2·128·127 < 2^15 in magnitude otherwise).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// The 32 quants of a legacy 16-byte nibble field in weight order: low nibbles (weights
/// 0..16) in the low half, high nibbles (16..32) in the high half, each 0..=15. The field is
/// broadcast to both halves by the load itself and the high half shifted by 4, which keeps
/// the shuffle port free.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles_32(qs: &[u8]) -> __m256i {
    let a: &[u8; 16] = qs.first_chunk().expect("16 bytes");
    // SAFETY: `a` is 16 readable bytes; the broadcast load has no alignment requirement.
    let q = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(a.as_ptr().cast())) };
    _mm256_and_si256(
        _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)),
        _mm256_set1_epi8(0x0f),
    )
}

/// Byte `j` is 0xff where bit `j` of `bits` is set and 0 elsewhere (the Q5 fifth-bit masks).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_bytes(bits: u32) -> __m256i {
    // Byte j of the spread holds byte j/8 of `bits`; the probe keeps bit j%8 of it.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let probe = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, probe), probe)
}

/// Byte `l` is `value` where bit `bit` of byte `l` of `mask` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bit_select(mask: __m256i, bit: u32, value: i8) -> __m256i {
    let b = _mm256_set1_epi8((1u8 << bit) as i8);
    _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(mask, b), b),
        _mm256_set1_epi8(value),
    )
}

/// The 16 level values of the IQ4 formats in both 128-bit lanes (a `pshufb` table).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4_table() -> __m256i {
    let bytes = KVALUES_IQ4NL.map(|v| v as u8);
    _mm256_broadcastsi128_si256(ld128(&bytes))
}

/// The eight 6-bit scales and eight 6-bit minimums of a Q4_K/Q5_K block (the same values as
/// [`crate::kquants::k4_scales_mins`]), unpacked with four 32-bit masks and shifts: entries 0..4
/// are the low six bits of bytes 0..4 (scales) and 4..8 (minimums); entries 4..8 take their low
/// four bits from the nibbles of bytes 8..12 and their top two bits from the top of bytes 0..8.
#[inline]
pub(crate) fn k4_scales_mins_fast(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let word =
        |i: usize| u32::from_le_bytes([packed[i], packed[i + 1], packed[i + 2], packed[i + 3]]);
    let (a, b, c) = (word(0), word(4), word(8));
    let low6 = 0x3f3f_3f3f;
    let nib = 0x0f0f_0f0f;
    let top2 = 0x3030_3030;
    let scales_hi = (c & nib) | ((a >> 2) & top2);
    let mins_hi = ((c >> 4) & nib) | ((b >> 2) & top2);
    let scales = (u64::from(a & low6) | (u64::from(scales_hi) << 32)).to_le_bytes();
    let mins = (u64::from(b & low6) | (u64::from(mins_hi) << 32)).to_le_bytes();
    (scales, mins)
}

/// The sixteen Q3_K sub-block scales minus 32 (−32..=31) as signed bytes: low nibbles from
/// bytes 0..8 (scales 0..8 low, 8..16 high nibble), top two bits from bytes 8..12, bit pair
/// `j / 4` of byte `8 + j % 4` (the same values as `q3k_scale(j) − 32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q3k_scales_i8(packed: &[u8; 12]) -> __m128i {
    let word =
        |i: usize| u32::from_le_bytes([packed[i], packed[i + 1], packed[i + 2], packed[i + 3]]);
    let (a0, a1, a2) = (word(0), word(4), word(8));
    let nib = 0x0f0f_0f0f;
    let two = 0x0303_0303;
    let s0 = (a0 & nib) | ((a2 & two) << 4);
    let s1 = (a1 & nib) | (((a2 >> 2) & two) << 4);
    let s2 = ((a0 >> 4) & nib) | (((a2 >> 4) & two) << 4);
    let s3 = ((a1 >> 4) & nib) | (((a2 >> 6) & two) << 4);
    let v = _mm_setr_epi32(s0 as i32, s1 as i32, s2 as i32, s3 as i32);
    _mm_sub_epi8(v, _mm_set1_epi8(32))
}

/// The eight IQ4_XS sub-block scales minus 32 (−32..=31) as signed bytes 0..8 (the same values
/// as `xs_scale(ib) − 32`): the nibbles of `scales_l` and the bit pairs of `scales_h` spread to
/// one byte each by shift-and-mask steps.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4xs_scales_i8(b: &BlockIQ4XS) -> __m128i {
    // Nibble i of `scales_l` to byte i.
    let mut lo = u64::from(u32::from_le_bytes(b.scales_l));
    lo = (lo | (lo << 16)) & 0x0000_ffff_0000_ffff;
    lo = (lo | (lo << 8)) & 0x00ff_00ff_00ff_00ff;
    lo = (lo | (lo << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // Bit pair i of `scales_h` to byte i.
    let mut hi = u64::from(u16::from_le_bytes(b.scales_h));
    hi = (hi | (hi << 24)) & 0x0000_00ff_0000_00ff;
    hi = (hi | (hi << 12)) & 0x000f_000f_000f_000f;
    hi = (hi | (hi << 6)) & 0x0303_0303_0303_0303;
    let v = _mm_cvtsi64_si128((lo | (hi << 4)) as i64);
    _mm_sub_epi8(v, _mm_set1_epi8(32))
}

/// From sixteen signed byte scales, the 16 × i16 vector with scale `2c` in lanes 0..8 and
/// `2c + 1` in lanes 8..16 (lined up with the pair sums of `maddubs` over chunk `c`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pair_i16(s8: __m128i, c: usize) -> __m256i {
    let lo = 0x0101_0101_0101_0101u64.wrapping_mul(2 * c as u64);
    let hi = 0x0101_0101_0101_0101u64.wrapping_mul(2 * c as u64 + 1);
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, _mm_set_epi64x(hi as i64, lo as i64)))
}

/// Σ_j bsum_j · m_{j/2} over the 16 group sums of a Q8_K block and the 8 minimums of a
/// Q4_K/Q5_K block (each minimum covers two groups of 16), as eight i32 partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_min_lanes(mins: [u8; 8], by: &BlockQ8K) -> __m256i {
    let m = _mm_cvtsi64_si128(i64::from_le_bytes(mins));
    let m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
    let bsums = ld256(by.bsums.as_flattened());
    _mm256_madd_epi16(m16, bsums)
}

// ---------------------------------------------------------------------------------------------
// Legacy 32-weight formats

/// Q4_0 · Q8_0 with AVX2: `Σ (q − 8)·y` as `maddubs(q, y) − maddubs(8, y)` per pair (the
/// unsigned nibbles against the signed Q8_0 quants; each pair sum ≤ 2·15·127).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_0_q8_0_avx2(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let eight = _mm256_set1_epi8(8);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let qy = ld256_i8(&by.qs);
        // Σ (q − 8)·y per pair as maddubs(q, y) − maddubs(8, y): each term ≤ 2·15·127.
        let pairs = _mm256_sub_epi16(
            _mm256_maddubs_epi16(nibbles_32(&bx.qs), qy),
            _mm256_maddubs_epi16(eight, qy),
        );
        let sumi = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
        let d = f16_product(bx.d, by.d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// Q5_0 · Q8_0 with AVX2: the unsigned quant (the nibble, plus 16 where the fifth bit is set)
/// against the signed Q8_0 quants, `Σ (q − 16)·y` as `maddubs(q, y) − maddubs(16, y)` per pair
/// (each term ≤ 2·31·128, so exact for every activation byte).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q5_0_q8_0_avx2(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let sixteen = _mm256_set1_epi8(16);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let set = bits_to_bytes(u32::from_le_bytes(bx.qh));
        let qx = _mm256_or_si256(nibbles_32(&bx.qs), _mm256_and_si256(set, sixteen));
        let qy = ld256_i8(&by.qs);
        let pairs = _mm256_sub_epi16(
            _mm256_maddubs_epi16(qx, qy),
            _mm256_maddubs_epi16(sixteen, qy),
        );
        let sumi = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
        let d = f16_product(bx.d, by.d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// Q5_1 · Q8_1 with AVX2: unsigned 5-bit quants (nibble or 16) times the signed Q8_1 quants by
/// `maddubs` (pair sums ≤ 2·31·127), plus `m_x·s_y` per block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q5_1_q8_1_avx2(n: usize, x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let sixteen = _mm256_set1_epi8(0x10);
    let mut acc = _mm256_setzero_ps();
    let mut acc_ms = _mm_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let set = bits_to_bytes(u32::from_le_bytes(bx.qh));
        let qx = _mm256_or_si256(nibbles_32(&bx.qs), _mm256_and_si256(set, sixteen));
        let sumi = dot_u8_i8(qx, ld256_i8(&by.qs));
        // [d_x·d_y, m_x·s_y, 0, 0]
        let dm = _mm_mul_ps(f16x2_to_f32(bx.d, bx.m), f16x2_to_f32(by.d, by.s));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), sumi, acc);
        acc_ms = _mm_add_ps(acc_ms, dm);
    }
    hsum_f32x8(acc) + _mm_cvtss_f32(_mm_movehdup_ps(acc_ms))
}

/// Q8_1 · Q8_1 with AVX2 (ggml has no such kernel; Q8_1 is an activation format): as Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_1_q8_1_avx2(n: usize, x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sumi = dot_i8_i8(ld256_i8(&bx.qs), ld256_i8(&by.qs));
        let d = f16_product(bx.d, by.d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// IQ4_NL · Q8_0 with AVX2: the nibbles index the level table with `pshufb`; levels
/// (−127..=113) times Q8_0 quants through the sign trick (pair sums ≤ 2·127·127 < 2^15).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_iq4_nl_q8_0_avx2(n: usize, x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let table = iq4_table();
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let qx = _mm256_shuffle_epi8(table, nibbles_32(&bx.qs));
        let sumi = dot_i8_i8(qx, ld256_i8(&by.qs));
        let d = f16_product(bx.d, by.d);
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

// ---------------------------------------------------------------------------------------------
// 256-weight formats against Q8_K

/// Q2_K · Q8_K with AVX2: the 2-bit quants (0..=3, pair sums ≤ 2·3·127) times Q8_K by
/// `maddubs`, weighted by the 4-bit scales in i32; the minimum term from Q8_K's group sums.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q2_k_q8_k_avx2(n: usize, x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let m3 = _mm256_set1_epi8(3);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sc = ld128(&bx.scales);
        let mins =
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), _mm_set1_epi8(0x0f)));
        let summs = _mm256_madd_epi16(mins, ld256(by.bsums.as_flattened()));
        let scales = _mm_and_si128(sc, _mm_set1_epi8(0x0f));
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q2 = ld256(&bx.qs[32 * h..]);
            for s in 0..4 {
                // Chunk c holds weights 32c..32c+32 with scales 2c and 2c+1.
                let c = 4 * h + s;
                let q = _mm256_and_si256(_mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let pairs = _mm256_maddubs_epi16(q, ld256_i8(&by.qs[32 * c..]));
                let sc = scale_pair_i16(scales, c);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, sc));
            }
        }
        let d = _mm_mul_ps(f16x2_to_f32(bx.d, bx.dmin), _mm_set1_ps(by.scale()));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(
            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
            _mm256_cvtepi32_ps(summs),
            acc_min,
        );
    }
    hsum_f32x8(_mm256_sub_ps(acc, acc_min))
}

/// Q3_K · Q8_K with AVX2: the quant plus 4 (0..=7: the two low bits, and 4 where the `hmask`
/// bit is set) times Q8_K by `maddubs` (pair sums ≤ 2·7·128), weighted by the signed 6-bit
/// scales in i32; the offset 4 is removed once per block as `4·Σ_j sc_j·bsum_j` from Q8_K's
/// group sums (equal to the scalar kernel's sum because `bsums` are the sums of the quants).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q3_k_q8_k_avx2(n: usize, x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let m3 = _mm256_set1_epi8(3);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let scales = q3k_scales_i8(&bx.scales);
        let offset =
            _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), ld256(by.bsums.as_flattened()));
        let hm = ld256(&bx.hmask);
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q2 = ld256(&bx.qs[32 * h..]);
            for s in 0..4 {
                // Chunk c holds weights 32c..32c+32, scales 2c and 2c+1, `hmask` bit c.
                let c = 4 * h + s;
                let low =
                    _mm256_and_si256(_mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let q = _mm256_or_si256(low, bit_select(hm, c as u32, 4));
                let yc = ld256_i8(&by.qs[32 * c..]);
                let pairs = _mm256_maddubs_epi16(q, yc);
                let sc = scale_pair_i16(scales, c);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, sc));
            }
        }
        // Σ sc·(q + 4)·y − 4·Σ sc·bsum, lane by lane (|4·offset| < 2^22).
        let sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32::<2>(offset));
        let d = _mm_mul_ps(f16_lane0(bx.d), _mm_set1_ps(by.scale()));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// Q5_K · Q8_K with AVX2: as Q4_K with the fifth bit (16) or-ed into each nibble from `qh`
/// (quants 0..=31, pair sums ≤ 2·31·127).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q5_k_q8_k_avx2(n: usize, x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the same preconditions.
    unsafe { q5_k_q8_k_avx2_hooked(n, x, y, || {}) }
}

/// [`vec_dot_q5_k_q8_k_avx2`] with `before_block` called before each block: the hook of a
/// matrix-vector kernel that prefetches later rows while this one is multiplied (the
/// arithmetic, and so the result, is the same).
///
/// # Safety
/// As for [`vec_dot_q5_k_q8_k_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q5_k_q8_k_avx2_hooked(
    n: usize,
    x: &[BlockQ5K],
    y: &[BlockQ8K],
    mut before_block: impl FnMut(),
) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        before_block();
        let (scales, mins) = k4_scales_mins_fast(&bx.scales);
        let summin = k4_min_lanes(mins, by);
        let qh = ld256(&bx.qh);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..QK_K / 64 {
            let q4 = ld256(&bx.qs[32 * g..]);
            // Weights 64g..64g+32: low nibbles and `qh` bit 2g; the next 32: high nibbles and
            // bit 2g+1.
            let lo = _mm256_or_si256(
                _mm256_and_si256(q4, low_nibbles),
                bit_select(qh, 2 * g as u32, 16),
            );
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q4), low_nibbles),
                bit_select(qh, 2 * g as u32 + 1, 16),
            );
            let s0 = _mm256_set1_epi16(i16::from(scales[2 * g]));
            let s1 = _mm256_set1_epi16(i16::from(scales[2 * g + 1]));
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld256_i8(&by.qs[64 * g..])), s0);
            let p1 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, ld256_i8(&by.qs[64 * g + 32..])),
                s1,
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        let d = _mm_mul_ps(f16x2_to_f32(bx.d, bx.dmin), _mm_set1_ps(by.scale()));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(
            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
            _mm256_cvtepi32_ps(summin),
            acc_min,
        );
    }
    hsum_f32x8(_mm256_sub_ps(acc, acc_min))
}

/// Q8_K · Q8_K with AVX2 (ggml has no such kernel; Q8_K is an activation format): the sign
/// trick over eight 32-quant chunks, `d_x·d_y` per block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_k_q8_k_avx2(n: usize, x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let mut sumi = _mm256_setzero_si256();
        for c in 0..QK_K / 32 {
            let p = dot_i8_i8(ld256_i8(&bx.qs[32 * c..]), ld256_i8(&by.qs[32 * c..]));
            sumi = _mm256_add_epi32(sumi, p);
        }
        let d = _mm256_set1_ps(bx.scale() * by.scale());
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// IQ4_XS · Q8_K with AVX2: per 32-weight sub-block the levels (looked up with `pshufb`) times
/// Q8_K through the sign trick, weighted by the signed 6-bit scale in i32 (|sum| ≤
/// 8·32·32·127·127 < 2^31).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_iq4_xs_q8_k_avx2(n: usize, x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    debug_assert!(features_present());
    let nb = check_dot(n, x, y);
    let table = iq4_table();
    let mut acc = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let scales = iq4xs_scales_i8(bx);
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..QK_K / 32 {
            let qx = _mm256_shuffle_epi8(table, nibbles_32(&bx.qs[16 * ib..]));
            let yc = ld256_i8(&by.qs[32 * ib..]);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(yc, qx));
            let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, _mm_set1_epi8(ib as i8)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, sc));
        }
        let d = _mm_mul_ps(f16_lane0(bx.d), _mm_set1_ps(by.scale()));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

// ---------------------------------------------------------------------------------------------
// Float formats

/// Eight F32 values from the start of `s` (which must hold at least eight).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load8_f32(s: &[BlockF32]) -> __m256 {
    let a: &[BlockF32; 8] = s.first_chunk().expect("8 values");
    // SAFETY: `a` is 32 readable bytes (BlockF32 is 4 bytes, alignment 1); `loadu` has no
    // alignment requirement.
    unsafe { _mm256_loadu_ps(a.as_ptr().cast()) }
}

/// Eight F16 values from the start of `s`, widened (exactly) by F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load8_f16(s: &[BlockF16]) -> __m256 {
    let a: &[BlockF16; 8] = s.first_chunk().expect("8 values");
    // SAFETY: `a` is 16 readable bytes; `loadu` has no alignment requirement.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(a.as_ptr().cast()) })
}

/// Eight BF16 values from the start of `s`, widened (exactly) by a 16-bit shift.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load8_bf16(s: &[BlockBF16]) -> __m256 {
    let a: &[BlockBF16; 8] = s.first_chunk().expect("8 values");
    // SAFETY: `a` is 16 readable bytes; `loadu` has no alignment requirement.
    let h = unsafe { _mm_loadu_si128(a.as_ptr().cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

/// Values per f32 partial sum of the float kernels: short enough that the f32 rounding of the
/// four 8-lane accumulators (at most 8 additions per lane) stays near 2^-21 relative before
/// each partial sum is added in f64, as the scalar kernel does for every product.
pub(crate) const FLOAT_CHUNK: usize = 256;

macro_rules! float_dot_kernel {
    ($(#[$doc:meta])* $name:ident, $block:ty, $load:ident, $widen:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(n: usize, x: &[$block], y: &[$block]) -> f32 {
            debug_assert!(features_present());
            check_dot(n, x, y);
            let widen = $widen;
            let mut wide = _mm256_setzero_pd();
            let mut tail = 0.0f64;
            for (xc, yc) in x[..n].chunks(FLOAT_CHUNK).zip(y[..n].chunks(FLOAT_CHUNK)) {
                let (mut a0, mut a1, mut a2, mut a3) = (
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                );
                let mut k = 0;
                while k + 32 <= xc.len() {
                    a0 = _mm256_fmadd_ps($load(&xc[k..]), $load(&yc[k..]), a0);
                    a1 = _mm256_fmadd_ps($load(&xc[k + 8..]), $load(&yc[k + 8..]), a1);
                    a2 = _mm256_fmadd_ps($load(&xc[k + 16..]), $load(&yc[k + 16..]), a2);
                    a3 = _mm256_fmadd_ps($load(&xc[k + 24..]), $load(&yc[k + 24..]), a3);
                    k += 32;
                }
                while k + 8 <= xc.len() {
                    a0 = _mm256_fmadd_ps($load(&xc[k..]), $load(&yc[k..]), a0);
                    k += 8;
                }
                for (a, b) in xc[k..].iter().zip(&yc[k..]) {
                    tail += f64::from(widen(a.v) * widen(b.v));
                }
                let s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
                let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(s));
                let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(s));
                wide = _mm256_add_pd(wide, _mm256_add_pd(lo, hi));
            }
            (hsum_f64x4(wide) + tail) as f32
        }
    };
}

float_dot_kernel!(
    /// F32 · F32 with AVX2: products fused into four 8-lane f32 accumulators per
    /// [`FLOAT_CHUNK`] values, the partial sums added in f64.
    vec_dot_f32_f32_avx2,
    BlockF32,
    load8_f32,
    f32::from_le_bytes
);
float_dot_kernel!(
    /// F16 · F16 with AVX2: widened by F16C, then as [`vec_dot_f32_f32_avx2`].
    vec_dot_f16_f16_avx2,
    BlockF16,
    load8_f16,
    f16_to_f32
);
float_dot_kernel!(
    /// BF16 · BF16 with AVX2: widened by a shift, then as [`vec_dot_f32_f32_avx2`].
    vec_dot_bf16_bf16_avx2,
    BlockBF16,
    load8_bf16,
    bf16_to_f32
);

// ---------------------------------------------------------------------------------------------
// Byte wrappers for the dispatch tables

macro_rules! bytes_wrapper {
    ($name:ident, $kernel:ident, $bx:ty, $by:ty) => {
        #[doc = concat!("[`", stringify!($kernel), "`] on raw bytes, for the dispatch tables.")]
        pub(crate) fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let (x, y) = (blocks::<$bx>(x), blocks::<$by>(y));
            // SAFETY: this function is installed only in the dispatch tables of tiers that
            // require AVX2, FMA and F16C, and those tables are handed out only after detecting
            // them.
            unsafe { $kernel(n, x, y) }
        }
    };
}

bytes_wrapper!(
    vec_dot_q4_0_q8_0_avx2_bytes,
    vec_dot_q4_0_q8_0_avx2,
    BlockQ4_0,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_q5_0_q8_0_avx2_bytes,
    vec_dot_q5_0_q8_0_avx2,
    BlockQ5_0,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_q5_1_q8_1_avx2_bytes,
    vec_dot_q5_1_q8_1_avx2,
    BlockQ5_1,
    BlockQ8_1
);
bytes_wrapper!(
    vec_dot_q8_1_q8_1_avx2_bytes,
    vec_dot_q8_1_q8_1_avx2,
    BlockQ8_1,
    BlockQ8_1
);
bytes_wrapper!(
    vec_dot_iq4_nl_q8_0_avx2_bytes,
    vec_dot_iq4_nl_q8_0_avx2,
    BlockIQ4NL,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_q2_k_q8_k_avx2_bytes,
    vec_dot_q2_k_q8_k_avx2,
    BlockQ2K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q3_k_q8_k_avx2_bytes,
    vec_dot_q3_k_q8_k_avx2,
    BlockQ3K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q5_k_q8_k_avx2_bytes,
    vec_dot_q5_k_q8_k_avx2,
    BlockQ5K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q8_k_q8_k_avx2_bytes,
    vec_dot_q8_k_q8_k_avx2,
    BlockQ8K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_iq4_xs_q8_k_avx2_bytes,
    vec_dot_iq4_xs_q8_k_avx2,
    BlockIQ4XS,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_f32_f32_avx2_bytes,
    vec_dot_f32_f32_avx2,
    BlockF32,
    BlockF32
);
bytes_wrapper!(
    vec_dot_f16_f16_avx2_bytes,
    vec_dot_f16_f16_avx2,
    BlockF16,
    BlockF16
);
bytes_wrapper!(
    vec_dot_bf16_bf16_avx2_bytes,
    vec_dot_bf16_bf16_avx2,
    BlockBF16,
    BlockBF16
);

// ---------------------------------------------------------------------------------------------
// f32 helpers of `crate::f32ops`

/// Eight f32 from the start of `s` (which must hold at least eight).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld8(s: &[f32]) -> __m256 {
    let a: &[f32; 8] = s.first_chunk().expect("8 values");
    // SAFETY: `a` is 8 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(a.as_ptr()) }
}

/// Stores eight f32 at the start of `s` (which must hold at least eight).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn st8(s: &mut [f32], v: __m256) {
    let a: &mut [f32; 8] = s.first_chunk_mut().expect("8 values");
    // SAFETY: `a` is 8 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
}

/// Adds the eight lanes of `v` to `wide` in f64.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_wide(wide: __m256d, v: __m256) -> __m256d {
    let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
    _mm256_add_pd(wide, _mm256_add_pd(lo, hi))
}

/// `e^x` on eight lanes, the algorithm of [`crate::f32ops::exp`] with fused multiply-adds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn exp_f32x8(x: __m256) -> __m256 {
    use crate::f32ops::{EXP_MAX_ARG, EXP_MIN_ARG, EXP_POLY, LN2_HI, LN2_LO, LOG2E};
    // `max`/`min` return their second operand when either is NaN, so NaN passes through.
    let x = _mm256_min_ps(
        _mm256_set1_ps(EXP_MAX_ARG),
        _mm256_max_ps(_mm256_set1_ps(EXP_MIN_ARG), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[5]);
    for &c in EXP_POLY[..5].iter().rev() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let one = _mm256_set1_ps(1.0);
    let p = _mm256_fmadd_ps(_mm256_fmadd_ps(p, r, one), r, one);
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let p1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let p2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(p, p1), p2)
}

/// `Σ a_i·b_i` as the f32ops contract says: four 8-lane f32 accumulators per
/// [`crate::f32ops::CHUNK`] values, partial sums in f64.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_dot_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: slices differ in length");
    let mut wide = _mm256_setzero_pd();
    let mut tail = 0.0f64;
    for (ac, bc) in a
        .chunks(crate::f32ops::CHUNK)
        .zip(b.chunks(crate::f32ops::CHUNK))
    {
        let (mut s0, mut s1, mut s2, mut s3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut k = 0;
        while k + 32 <= ac.len() {
            s0 = _mm256_fmadd_ps(ld8(&ac[k..]), ld8(&bc[k..]), s0);
            s1 = _mm256_fmadd_ps(ld8(&ac[k + 8..]), ld8(&bc[k + 8..]), s1);
            s2 = _mm256_fmadd_ps(ld8(&ac[k + 16..]), ld8(&bc[k + 16..]), s2);
            s3 = _mm256_fmadd_ps(ld8(&ac[k + 24..]), ld8(&bc[k + 24..]), s3);
            k += 32;
        }
        while k + 8 <= ac.len() {
            s0 = _mm256_fmadd_ps(ld8(&ac[k..]), ld8(&bc[k..]), s0);
            k += 8;
        }
        for (&x, &y) in ac[k..].iter().zip(&bc[k..]) {
            tail += f64::from(x * y);
        }
        wide = add_wide(
            wide,
            _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
        );
    }
    (hsum_f64x4(wide) + tail) as f32
}

/// `max` of the lanes and the elements of `x`, NaNs ignored.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_max_avx2_impl(x: &[f32]) -> f32 {
    let mut m0 = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut m1 = m0;
    let mut k = 0;
    // `max(v, m)` returns `m` when `v` is NaN: NaNs never enter the accumulators.
    while k + 16 <= x.len() {
        m0 = _mm256_max_ps(ld8(&x[k..]), m0);
        m1 = _mm256_max_ps(ld8(&x[k + 8..]), m1);
        k += 16;
    }
    if k + 8 <= x.len() {
        m0 = _mm256_max_ps(ld8(&x[k..]), m0);
        k += 8;
    }
    let m = _mm256_max_ps(m0, m1);
    let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_max_ss(h, _mm_movehdup_ps(h));
    x[k..].iter().fold(_mm_cvtss_f32(h), |a, &b| a.max(b))
}

/// `y += a·x` with FMA.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_axpy_avx2_impl(a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: slices differ in length");
    let av = _mm256_set1_ps(a);
    let mut k = 0;
    while k + 8 <= x.len() {
        let v = _mm256_fmadd_ps(av, ld8(&x[k..]), ld8(&y[k..]));
        st8(&mut y[k..], v);
        k += 8;
    }
    for (yi, &xi) in y[k..].iter_mut().zip(&x[k..]) {
        *yi += a * xi;
    }
}

/// `x *= s`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_scale_avx2_impl(x: &mut [f32], s: f32) {
    let sv = _mm256_set1_ps(s);
    let mut k = 0;
    while k + 8 <= x.len() {
        let v = _mm256_mul_ps(ld8(&x[k..]), sv);
        st8(&mut x[k..], v);
        k += 8;
    }
    for v in &mut x[k..] {
        *v *= s;
    }
}

/// Softmax in place: max, then `exp(x − max)` stored and summed per chunk in f32 lanes and
/// across chunks in f64, then one multiplication by the reciprocal of the sum.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_softmax_avx2_impl(x: &mut [f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    // SAFETY: this function's preconditions are those of the callee.
    let m = unsafe { f32_max_avx2_impl(x) };
    let mv = _mm256_set1_ps(m);
    let mut wide = _mm256_setzero_pd();
    let mut tail = 0.0f64;
    for c in x.chunks_mut(crate::f32ops::CHUNK) {
        // Four accumulators: 8 additions per lane in a whole chunk.
        let (mut s0, mut s1, mut s2, mut s3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut k = 0;
        while k + 32 <= c.len() {
            let e0 = exp_f32x8(_mm256_sub_ps(ld8(&c[k..]), mv));
            let e1 = exp_f32x8(_mm256_sub_ps(ld8(&c[k + 8..]), mv));
            let e2 = exp_f32x8(_mm256_sub_ps(ld8(&c[k + 16..]), mv));
            let e3 = exp_f32x8(_mm256_sub_ps(ld8(&c[k + 24..]), mv));
            st8(&mut c[k..], e0);
            st8(&mut c[k + 8..], e1);
            st8(&mut c[k + 16..], e2);
            st8(&mut c[k + 24..], e3);
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
            s2 = _mm256_add_ps(s2, e2);
            s3 = _mm256_add_ps(s3, e3);
            k += 32;
        }
        while k + 8 <= c.len() {
            let e = exp_f32x8(_mm256_sub_ps(ld8(&c[k..]), mv));
            st8(&mut c[k..], e);
            s0 = _mm256_add_ps(s0, e);
            k += 8;
        }
        for v in &mut c[k..] {
            *v = crate::f32ops::exp(*v - m);
            tail += f64::from(*v);
        }
        wide = add_wide(
            wide,
            _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
        );
    }
    let total = hsum_f64x4(wide) + tail;
    // SAFETY: this function's preconditions are those of the callee.
    unsafe { f32_scale_avx2_impl(x, (1.0 / total) as f32) };
    total as f32
}

/// `x = exp(x)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_exp_avx2_impl(x: &mut [f32]) {
    let mut k = 0;
    while k + 8 <= x.len() {
        let e = exp_f32x8(ld8(&x[k..]));
        st8(&mut x[k..], e);
        k += 8;
    }
    for v in &mut x[k..] {
        *v = crate::f32ops::exp(*v);
    }
}

/// `gate = gate/(1 + exp(−gate))·up`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_silu_mul_avx2_impl(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: slices differ in length");
    let one = _mm256_set1_ps(1.0);
    let sign = _mm256_set1_ps(-0.0);
    let mut k = 0;
    while k + 8 <= gate.len() {
        let g = ld8(&gate[k..]);
        let e = exp_f32x8(_mm256_xor_ps(g, sign));
        let v = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), ld8(&up[k..]));
        st8(&mut gate[k..], v);
        k += 8;
    }
    crate::f32ops::silu_mul_tail(&mut gate[k..], &up[k..]);
}

/// Halves to f32 with F16C (exact).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_to_f32_avx2_impl(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: slices differ in length");
    let mut k = 0;
    while k + 8 <= src.len() {
        let a: &[u16; 8] = src[k..].first_chunk().expect("8 values");
        // SAFETY: `a` is 16 readable bytes; `loadu` has no alignment requirement.
        let h = unsafe { _mm_loadu_si128(a.as_ptr().cast()) };
        st8(&mut dst[k..], _mm256_cvtph_ps(h));
        k += 8;
    }
    crate::f32ops::f16_to_f32_tail(&src[k..], &mut dst[k..]);
}

/// f32 to halves with F16C, rounding to nearest-even.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_to_f16_avx2_impl(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: slices differ in length");
    let mut k = 0;
    while k + 8 <= src.len() {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(ld8(&src[k..]));
        let a: &mut [u16; 8] = dst[k..].first_chunk_mut().expect("8 values");
        // SAFETY: `a` is 16 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm_storeu_si128(a.as_mut_ptr().cast(), h) };
        k += 8;
    }
    crate::f32ops::f32_to_f16_tail(&src[k..], &mut dst[k..]);
}

macro_rules! f32ops_wrapper {
    ($name:ident, $kernel:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        #[doc = concat!("[`", stringify!($kernel), "`] for the f32ops tables.")]
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: installed only in the f32ops tables of tiers that require AVX2, FMA and
            // F16C, which are handed out only after detecting them.
            unsafe { $kernel($($arg),*) }
        }
    };
}

f32ops_wrapper!(f32_dot_avx2, f32_dot_avx2_impl, (a: &[f32], b: &[f32]) -> f32);
f32ops_wrapper!(f32_max_avx2, f32_max_avx2_impl, (x: &[f32]) -> f32);
f32ops_wrapper!(f32_axpy_avx2, f32_axpy_avx2_impl, (a: f32, x: &[f32], y: &mut [f32]));
f32ops_wrapper!(f32_exp_avx2, f32_exp_avx2_impl, (x: &mut [f32]));
f32ops_wrapper!(f32_scale_avx2, f32_scale_avx2_impl, (x: &mut [f32], s: f32));
f32ops_wrapper!(f32_softmax_avx2, f32_softmax_avx2_impl, (x: &mut [f32]) -> f32);
f32ops_wrapper!(f32_silu_mul_avx2, f32_silu_mul_avx2_impl, (gate: &mut [f32], up: &[f32]));
f32ops_wrapper!(f16_to_f32_avx2, f16_to_f32_avx2_impl, (src: &[u16], dst: &mut [f32]));
f32ops_wrapper!(f32_to_f16_avx2, f32_to_f16_avx2_impl, (src: &[f32], dst: &mut [u16]));

/// [`crate::f32ops::attn_table_scores_ref`]'s loops compiled for AVX2 (8 lanes; the compiler
/// fuses nothing, so the bits are the reference's).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_table_scores_avx2_impl(
    coef: &[f32],
    width: usize,
    table: &[f32],
    out: &mut [f32],
    stride: usize,
    len: usize,
) {
    crate::f32ops::table_scores_body(coef, width, table, out, stride, len);
}

f32ops_wrapper!(
    attn_table_scores_avx2,
    attn_table_scores_avx2_impl,
    (coef: &[f32], width: usize, table: &[f32], out: &mut [f32], stride: usize, len: usize)
);

/// Scores of `J` query heads (from `j0`) against every key row, `NC` vectors of 8 per row: each
/// 8-value piece of a key row is widened once (`vcvtph2ps`) and dotted with all `J` heads, two
/// accumulators per head (alternate pieces) so that `2·J` multiply-add chains run at once and
/// nothing spills (at most 8 accumulators, one key piece, one query piece).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `hd == 8 * NC` with `NC` even, `j0 + J <= g`, and
/// the lengths were checked by `check_scores`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_scores_f16_impl<const NC: usize, const J: usize>(
    q: &[f32],
    k: &[u16],
    j0: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let hd = 8 * NC;
    for i in 0..rows {
        let mut acc = [[_mm256_setzero_ps(); 2]; J];
        // Pieces in pairs, so that each accumulator has a fixed index (registers, not memory).
        for c2 in (0..NC).step_by(2) {
            for (h, c) in [c2, c2 + 1].into_iter().enumerate() {
                // SAFETY: row i of `k` holds `hd` halves (checked; `c < NC` as `NC` is even);
                // unaligned load of 8 halves.
                let kc = unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i * hd + 8 * c).cast()))
                };
                for (jj, a) in acc.iter_mut().enumerate() {
                    // SAFETY: head j0 + jj < g of `q` holds `hd` values (checked); unaligned
                    // load.
                    let qc = unsafe { _mm256_loadu_ps(q.as_ptr().add((j0 + jj) * hd + 8 * c)) };
                    a[h] = _mm256_fmadd_ps(qc, kc, a[h]);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            out[(j0 + jj) * out_stride + i] = hsum_f32x8(_mm256_add_ps(a[0], a[1]));
        }
    }
}

/// [`attn_scores_f16_impl`] for the heads `0..g`, up to four at a time.
///
/// # Safety
/// As for [`attn_scores_f16_impl`], for all heads.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_scores_f16_heads<const NC: usize>(
    q: &[f32],
    k: &[u16],
    g: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let mut j0 = 0;
    while j0 < g {
        let jn = (g - j0).min(4);
        // SAFETY: `j0 + jn <= g`; the rest is this function's contract.
        unsafe {
            match jn {
                4 => attn_scores_f16_impl::<NC, 4>(q, k, j0, rows, out, out_stride),
                3 => attn_scores_f16_impl::<NC, 3>(q, k, j0, rows, out, out_stride),
                2 => attn_scores_f16_impl::<NC, 2>(q, k, j0, rows, out, out_stride),
                _ => attn_scores_f16_impl::<NC, 1>(q, k, j0, rows, out, out_stride),
            }
        }
        j0 += jn;
    }
}

/// AVX2 [`crate::f32ops::attn_scores_f16_ref`]: head sizes of 64, 128 and 256 through the
/// fused kernel, others through the reference.
pub(crate) fn attn_scores_f16_avx2(
    q: &[f32],
    k: &[u16],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let (g, rows) = crate::f32ops::check_scores(q, k, hd, out, out_stride);
    // SAFETY: installed only in the AVX2 f32ops table, handed out only after AVX2, FMA and F16C
    // were detected; `hd` matches `NC` in each arm and the lengths were checked.
    unsafe {
        match hd {
            64 => attn_scores_f16_heads::<8>(q, k, g, rows, out, out_stride),
            128 => attn_scores_f16_heads::<16>(q, k, g, rows, out, out_stride),
            256 => attn_scores_f16_heads::<32>(q, k, g, rows, out, out_stride),
            _ => crate::f32ops::attn_scores_f16_ref(q, k, hd, out, out_stride),
        }
    }
}

/// Columns of `out` per pass of [`attn_values_f16_impl`] (4 vectors of 8).
const VALUE_COLS: usize = 32;

/// Weighted sum of value rows for up to `J` (≤ 3) heads at once, [`VALUE_COLS`] columns at a
/// time: the `J × 4` accumulators (at most 12 of the 16 ymm registers, leaving room for the
/// widened value piece and the broadcast weight) stay in registers over all rows, and each
/// piece of a value row is widened once for all heads.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `hd % VALUE_COLS == 0`, `j0 + J <= g`, and the
/// lengths were checked by `check_values`.
// `i` indexes the weights of every head and the rows of `v` alike.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_values_f16_impl<const J: usize>(
    p: &[f32],
    p_stride: usize,
    v: &[u16],
    hd: usize,
    rows: usize,
    j0: usize,
    out: &mut [f32],
) {
    // The weights of each head, sliced once (no bounds checks in the row loop).
    let pj: [&[f32]; J] = core::array::from_fn(|jj| &p[(j0 + jj) * p_stride..][..rows]);
    for d0 in (0..hd).step_by(VALUE_COLS) {
        // Head j0 + jj of `out` holds `hd` values and row i of `v` holds `hd` halves (checked by
        // `check_values`; `d0 + VALUE_COLS <= hd`), so every access below is in bounds.
        let mut acc: [[__m256; VALUE_COLS / 8]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); unaligned load.
            core::array::from_fn(|c| unsafe {
                _mm256_loadu_ps(out.as_ptr().add((j0 + jj) * hd + d0 + 8 * c))
            })
        });
        for i in 0..rows {
            let w: [__m256; J] = core::array::from_fn(|jj| _mm256_set1_ps(pj[jj][i]));
            for c in 0..VALUE_COLS / 8 {
                // SAFETY: in bounds (above); unaligned load of 8 halves.
                let vc = unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i * hd + d0 + 8 * c).cast()))
                };
                for (a, wj) in acc.iter_mut().zip(&w) {
                    a[c] = _mm256_fmadd_ps(*wj, vc, a[c]);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); unaligned store.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add((j0 + jj) * hd + d0 + 8 * c), *ac) };
            }
        }
    }
}

/// AVX2 [`crate::f32ops::attn_values_f16_ref`]: head sizes that are multiples of 64 through the
/// fused kernel (heads three at a time), others through the reference.
pub(crate) fn attn_values_f16_avx2(
    p: &[f32],
    p_stride: usize,
    v: &[u16],
    hd: usize,
    out: &mut [f32],
) {
    let (g, rows) = crate::f32ops::check_values(p, p_stride, v, hd, out);
    if hd % 64 != 0 {
        return crate::f32ops::attn_values_f16_ref(p, p_stride, v, hd, out);
    }
    let mut j0 = 0;
    while j0 < g {
        let jn = (g - j0).min(3);
        // SAFETY: installed only in the AVX2 f32ops table, handed out only after AVX2, FMA and
        // F16C were detected; `hd % 64 == 0` (so `hd % VALUE_COLS == 0`), `j0 + jn <= g`, and
        // the lengths were checked.
        unsafe {
            match jn {
                3 => attn_values_f16_impl::<3>(p, p_stride, v, hd, rows, j0, out),
                2 => attn_values_f16_impl::<2>(p, p_stride, v, hd, rows, j0, out),
                _ => attn_values_f16_impl::<1>(p, p_stride, v, hd, rows, j0, out),
            }
        }
        j0 += jn;
    }
}

/// Half `h` (values `16h..16h + 16`) of a Q8_0 (`Q4 = false`) or Q4_0 block, `d·q` exact, as
/// two vectors.
///
/// # Safety
/// The CPU must support AVX2 and F16C; `blk` points at a whole block (34 or 18 bytes) and
/// `h < 2`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_block_values<const Q4: bool>(blk: *const u8, h: usize) -> [__m256; 2] {
    // SAFETY: the block starts with its f16 scale (unaligned read), then 32 signed bytes or 16
    // bytes of nibbles, all within the block (caller).
    unsafe {
        let d = _mm256_cvtph_ps(_mm_set1_epi16(blk.cast::<i16>().read_unaligned()));
        let (q0, q1) = if Q4 {
            // Low nibbles are values 0..16, high nibbles 16..32.
            let lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(2).cast()));
            let hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(10).cast()));
            let (lo, hi) = if h == 0 {
                let m = _mm256_set1_epi32(15);
                (_mm256_and_si256(lo, m), _mm256_and_si256(hi, m))
            } else {
                (_mm256_srli_epi32::<4>(lo), _mm256_srli_epi32::<4>(hi))
            };
            let eight = _mm256_set1_epi32(8);
            (_mm256_sub_epi32(lo, eight), _mm256_sub_epi32(hi, eight))
        } else {
            let q = blk.add(2 + 16 * h);
            (
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(q.cast())),
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(q.add(8).cast())),
            )
        };
        [
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(q0)),
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(q1)),
        ]
    }
}

/// The sums of the lanes of 8 vectors, as one vector: lane `r` is the sum of `v[r]`'s lanes,
/// added in the same order for every lane (see the AVX-512 `reduce16`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce8(v: &[__m256; 8]) -> __m256 {
    let l1: [__m256; 4] = core::array::from_fn(|p| {
        let (a, b) = (v[2 * p], v[2 * p + 1]);
        _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b))
    });
    let l2: [__m256; 2] = core::array::from_fn(|p| {
        let (a, b) = (_mm256_castps_pd(l1[2 * p]), _mm256_castps_pd(l1[2 * p + 1]));
        _mm256_add_ps(
            _mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)),
        )
    });
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(l2[0], l2[1]),
        _mm256_permute2f128_ps::<0x31>(l2[0], l2[1]),
    )
}

/// Scores of all query heads against Q8_0 or Q4_0 key rows of `NC` vectors of 8 (`NC / 4`
/// blocks), 8 keys at a time: the keys expanded once (exactly) for all heads, each head's 8
/// dot products reduced together ([`reduce8`]) and stored as one vector.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `hd == 8 * NC`, and the lengths were checked by
/// `check_scores_quant` with this format's block size.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_scores_quant_impl<const Q4: bool, const NC: usize>(
    q: &[f32],
    k: &[u8],
    g: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (hd, row_bytes) = (8 * NC, NC / 4 * bb);
    let mut keys = [[_mm256_setzero_ps(); NC]; 8];
    for i0 in (0..rows).step_by(8) {
        let n = (rows - i0).min(8);
        for (r, key) in keys.iter_mut().enumerate() {
            for c in (0..NC).step_by(2) {
                let (b, h) = (c / 4, c / 2 % 2);
                [key[c], key[c + 1]] = if r < n {
                    // SAFETY: row i0 + r < rows holds `NC / 4` whole blocks (checked), h < 2.
                    unsafe {
                        half_block_values::<Q4>(k.as_ptr().add((i0 + r) * row_bytes + b * bb), h)
                    }
                } else {
                    [_mm256_setzero_ps(); 2]
                };
            }
        }
        for j in 0..g {
            let acc: [__m256; 8] = core::array::from_fn(|r| {
                let mut a = _mm256_setzero_ps();
                for (c, kc) in keys[r].iter().enumerate() {
                    // SAFETY: head j of `q` holds `hd` values (checked); unaligned load.
                    let qc = unsafe { _mm256_loadu_ps(q.as_ptr().add(j * hd + 8 * c)) };
                    a = _mm256_fmadd_ps(qc, *kc, a);
                }
                a
            });
            let mut sums = [0f32; 8];
            // SAFETY: `sums` holds 8 values; unaligned store.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), reduce8(&acc)) };
            out[j * out_stride + i0..][..n].copy_from_slice(&sums[..n]);
        }
    }
}

/// [`attn_scores_quant_impl`] for the head sizes 32–256 (any whole number of blocks), the
/// reference beyond.
fn attn_scores_quant_avx2<const Q4: bool>(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (g, rows) = crate::f32ops::check_scores_quant(q, k, bb, hd, out, out_stride);
    let f = match hd {
        32 => attn_scores_quant_impl::<Q4, 4>,
        64 => attn_scores_quant_impl::<Q4, 8>,
        96 => attn_scores_quant_impl::<Q4, 12>,
        128 => attn_scores_quant_impl::<Q4, 16>,
        160 => attn_scores_quant_impl::<Q4, 20>,
        192 => attn_scores_quant_impl::<Q4, 24>,
        224 => attn_scores_quant_impl::<Q4, 28>,
        256 => attn_scores_quant_impl::<Q4, 32>,
        _ if Q4 => return crate::f32ops::attn_scores_q4_0_ref(q, k, hd, out, out_stride),
        _ => return crate::f32ops::attn_scores_q8_0_ref(q, k, hd, out, out_stride),
    };
    // SAFETY: installed only in the AVX2 f32ops table, handed out only after AVX2, FMA and
    // F16C were detected; `hd` matches `NC` in each arm and the lengths were checked.
    unsafe { f(q, k, g, rows, out, out_stride) }
}

/// AVX2 [`crate::f32ops::attn_scores_q8_0_ref`].
pub(crate) fn attn_scores_q8_0_avx2(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_avx2::<false>(q, k, hd, out, out_stride);
}

/// AVX2 [`crate::f32ops::attn_scores_q4_0_ref`].
pub(crate) fn attn_scores_q4_0_avx2(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_avx2::<true>(q, k, hd, out, out_stride);
}

/// Weighted sum of Q8_0 or Q4_0 value rows for up to `J` (≤ 6) heads at once, half a block (16
/// columns) at a time: the `J × 2` accumulators (at most 12 of the 16 registers) stay in
/// registers over all rows, each half block expanded once for all heads.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `j0 + J <= g`, and the lengths were checked by
/// `check_values_quant` with this format's block size.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attn_values_quant_impl<const Q4: bool, const J: usize>(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    rows: usize,
    j0: usize,
    out: &mut [f32],
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let row_bytes = hd / 32 * bb;
    let pj: [&[f32]; J] = core::array::from_fn(|jj| &p[(j0 + jj) * p_stride..][..rows]);
    for c0 in (0..hd).step_by(16) {
        let (b, h) = (c0 / 32, c0 / 16 % 2);
        // Head j0 + jj of `out` holds `hd` values and `v` holds `rows` rows of `hd / 32` blocks
        // (checked), so every access below is in bounds.
        let mut acc: [[__m256; 2]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); unaligned load.
            core::array::from_fn(|c| unsafe {
                _mm256_loadu_ps(out.as_ptr().add((j0 + jj) * hd + c0 + 8 * c))
            })
        });
        for i in 0..rows {
            // SAFETY: block b of row i is in bounds (above), h < 2.
            let x = unsafe { half_block_values::<Q4>(v.as_ptr().add(i * row_bytes + b * bb), h) };
            for (a, pw) in acc.iter_mut().zip(&pj) {
                let w = _mm256_set1_ps(pw[i]);
                a[0] = _mm256_fmadd_ps(w, x[0], a[0]);
                a[1] = _mm256_fmadd_ps(w, x[1], a[1]);
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); unaligned store.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add((j0 + jj) * hd + c0 + 8 * c), *ac) };
            }
        }
    }
}

/// [`attn_values_quant_impl`] for all heads, six at a time.
fn attn_values_quant_avx2<const Q4: bool>(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (g, rows) = crate::f32ops::check_values_quant(p, p_stride, v, bb, hd, out);
    let mut j0 = 0;
    while j0 < g {
        let jn = (g - j0).min(6);
        // SAFETY: installed only in the AVX2 f32ops table, handed out only after AVX2, FMA and
        // F16C were detected; `j0 + jn <= g` and the lengths were checked.
        unsafe {
            let f = match jn {
                6 => attn_values_quant_impl::<Q4, 6>,
                5 => attn_values_quant_impl::<Q4, 5>,
                4 => attn_values_quant_impl::<Q4, 4>,
                3 => attn_values_quant_impl::<Q4, 3>,
                2 => attn_values_quant_impl::<Q4, 2>,
                _ => attn_values_quant_impl::<Q4, 1>,
            };
            f(p, p_stride, v, hd, rows, j0, out);
        }
        j0 += jn;
    }
}

/// AVX2 [`crate::f32ops::attn_values_q8_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q8_0_avx2(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_avx2::<false>(p, p_stride, v, hd, out);
}

/// AVX2 [`crate::f32ops::attn_values_q4_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q4_0_avx2(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_avx2::<true>(p, p_stride, v, hd, out);
}

/// `Σ x_i²` (the dot product of `x` with itself).
pub(crate) fn f32_sum_squares_avx2(x: &[f32]) -> f32 {
    f32_dot_avx2(x, x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iquants::xs_scale;
    use crate::kquants::{k4_scales_mins, q3k_scale};

    /// A small xorshift, so the sweep is reproducible.
    fn bytes12(state: &mut u64) -> [u8; 12] {
        core::array::from_fn(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 24) as u8
        })
    }

    #[test]
    fn fast_scale_unpacking_matches_the_reference() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for i in 0..if cfg!(miri) { 200 } else { 20_000 } {
            let p = if i == 0 {
                [0xff; 12]
            } else {
                bytes12(&mut state)
            };
            assert_eq!(k4_scales_mins_fast(&p), k4_scales_mins(&p), "{p:?}");
            if features_present() {
                // SAFETY: AVX2, FMA and F16C were just detected.
                let v = unsafe { q3k_scales_i8_checked(&p) };
                let want: [i8; 16] = core::array::from_fn(|j| (q3k_scale(&p, j) - 32) as i8);
                assert_eq!(v, want, "{p:?}");
                let b = BlockIQ4XS {
                    d: [0; 2],
                    scales_h: [p[0], p[1]],
                    scales_l: [p[2], p[3], p[4], p[5]],
                    qs: [0; 128],
                };
                // SAFETY: AVX2, FMA and F16C were just detected.
                let v = unsafe { iq4xs_scales_checked(&b) };
                let want: [i8; 8] = core::array::from_fn(|ib| (xs_scale(&b, ib) - 32) as i8);
                assert_eq!(v, want, "{p:?}");
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn iq4xs_scales_checked(b: &BlockIQ4XS) -> [i8; 8] {
        (_mm_cvtsi128_si64(iq4xs_scales_i8(b)) as u64)
            .to_le_bytes()
            .map(|v| v as i8)
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q3k_scales_i8_checked(p: &[u8; 12]) -> [i8; 16] {
        let mut out = [0i8; 16];
        // SAFETY: `out` is 16 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), q3k_scales_i8(p)) };
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Decode kernels of the k-quants on the prepared column

/// Bytes of weights ahead of the row being multiplied that the k-quant matrix-vector kernels
/// prefetch (a page: the hardware prefetchers stop at its end).
pub(crate) const K_PREFETCH_AHEAD: usize = 4096;

/// A matrix-vector kernel of a k-quant on the prepared column (a plain Q8_K column): `out[r]`
/// is, bit for bit, the tier's `vec_dot` of row `r` — the same function, called through its
/// hooked variant — while the row about [`K_PREFETCH_AHEAD`] bytes ahead is prefetched a few
/// lines per block ([`crate::prefetch::Spread`]) rather than in one burst before the call, as
/// a caller of `vec_dot` row by row has to.
macro_rules! k_matvec {
    ($(#[$doc:meta])* $name:ident, $bytes:ident, $block:ty, $row:path, $features:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("The CPU must support ", $features, "; `x` holds `out.len()` rows of `nb` blocks and `y` `nb` blocks (checked by the wrapper).")]
        #[target_feature(enable = $features)]
        unsafe fn $name(nb: usize, x: &[$block], y: &[BlockQ8K], out: &mut [f32]) {
            let ahead = $crate::x86_avx2::K_PREFETCH_AHEAD.div_ceil(nb * size_of::<$block>());
            for (r, (o, row)) in out.iter_mut().zip(x.chunks_exact(nb)).enumerate() {
                let next = x.get((r + ahead) * nb..(r + ahead + 1) * nb).unwrap_or(&[]);
                let mut next = $crate::prefetch::Spread::new($crate::block_bytes(next), nb);
                // SAFETY: this function's preconditions are the row kernel's.
                *o = unsafe { $row(nb * QK_K, row, y, || next.step()) };
            }
        }

        #[doc = concat!("Safe wrapper of [`", stringify!($name), "`] for [`crate::panel::PanelKernels::matvec`].")]
        pub(crate) fn $bytes(n: usize, x: &[u8], y: &[u8], out: &mut [f32]) {
            assert!(n % QK_K == 0, "{n} weights are not whole k-quant blocks");
            let nb = n / QK_K;
            assert_eq!(x.len(), out.len() * nb * size_of::<$block>(), "weight rows");
            assert_eq!(y.len(), nb * size_of::<BlockQ8K>(), "prepared column");
            if nb == 0 {
                out.fill(0.0);
                return;
            }
            // SAFETY: lengths checked above; handed out only for a CPU that supports the tier
            // of the features above.
            unsafe { $name(nb, blocks::<$block>(x), blocks::<BlockQ8K>(y), out) }
        }
    };
}
pub(crate) use k_matvec;

k_matvec!(
    /// Q4_K rows ([`vec_dot_q4_k_q8_k_avx2`]) times a prepared column.
    matvec_q4_k_prepared_avx2,
    matvec_q4_k_prepared_avx2_bytes,
    BlockQ4K,
    q4_k_q8_k_avx2_hooked,
    "avx2,fma,f16c"
);
k_matvec!(
    /// Q5_K rows ([`vec_dot_q5_k_q8_k_avx2`]) times a prepared column.
    matvec_q5_k_prepared_avx2,
    matvec_q5_k_prepared_avx2_bytes,
    BlockQ5K,
    q5_k_q8_k_avx2_hooked,
    "avx2,fma,f16c"
);
k_matvec!(
    /// Q6_K rows ([`vec_dot_q6_k_q8_k_avx2`]) times a prepared column.
    matvec_q6_k_prepared_avx2,
    matvec_q6_k_prepared_avx2_bytes,
    BlockQ6K,
    q6_k_q8_k_avx2_hooked,
    "avx2,fma,f16c"
);

// ---------------------------------------------------------------------------------------------
// Activation quantization: Q8_K

/// `nearest_int`'s magic number (1.5·2^23): adding it leaves `round(x)` in the low mantissa
/// bits, ties to even ([`crate::num`]).
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

/// [`crate::kquants::quantize_row_q8_k`] with AVX2, byte for byte: the largest magnitude by
/// `vmaxps` (which returns its second operand, the running maximum, when the value is NaN,
/// so NaNs are skipped as the scalar `>` skips them), the first value of that magnitude found
/// by `vcmpeqps` + `vmovmskps`; then per eight values the scalar's exact steps, `iscale·v`
/// (`vmulps`, no fused add), `+ 1.5·2^23`, the mantissa bits minus 2^22, `min(127)`; the quants
/// narrowed to their low byte (`as i8`: masked, then two unsigned packs that cannot saturate);
/// the sums of 16 by `vpmaddubsw`/`vpmaddwd` with ones and `vphaddd`. `iscale` and `d` are the
/// scalar's divisions.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row_q8_k_avx2(x: &[f32], out: &mut [BlockQ8K]) {
    debug_assert!(features_present());
    crate::block::check_quantize(x, out);
    let abs_mask = _mm256_set1_ps(-0.0);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let p = xb.as_ptr();
        // SAFETY: `xb` holds QK_K = 256 values, so every load of eight at `8 k` (k < 32) is
        // inside; unaligned loads.
        let amax = unsafe {
            let mut m = [_mm256_setzero_ps(); 4];
            for k in 0..8 {
                for (a, mv) in m.iter_mut().enumerate() {
                    let v = _mm256_andnot_ps(abs_mask, _mm256_loadu_ps(p.add(32 * k + 8 * a)));
                    *mv = _mm256_max_ps(v, *mv);
                }
            }
            let m = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            _mm_cvtss_f32(m)
        };
        if amax == 0.0 {
            *b = <BlockQ8K as crate::block::GgmlBlock>::ZERO;
            continue;
        }
        // SAFETY: as above.
        let first = unsafe {
            let target = _mm256_set1_ps(amax);
            let mut at = 0;
            for k in 0..QK_K / 8 {
                let v = _mm256_andnot_ps(abs_mask, _mm256_loadu_ps(p.add(8 * k)));
                let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, target));
                if hit != 0 {
                    at = 8 * k + hit.trailing_zeros() as usize;
                    break;
                }
            }
            at
        };
        let iscale = -127.0 / xb[first];
        // SAFETY: the loads read `xb` (256 values) and the stores write `b.qs` (256 bytes),
        // 32 at a time; unaligned loads and stores.
        unsafe {
            let scale = _mm256_set1_ps(iscale);
            let magic = _mm256_set1_ps(ROUND_MAGIC);
            let mantissa = _mm256_set1_epi32(0x007f_ffff);
            let half = _mm256_set1_epi32(0x0040_0000);
            let top = _mm256_set1_epi32(127);
            let low_byte = _mm256_set1_epi32(0xff);
            let round = |v: __m256| {
                let t = _mm256_add_ps(_mm256_mul_ps(scale, v), magic);
                let i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), mantissa), half);
                _mm256_and_si256(_mm256_min_epi32(i, top), low_byte)
            };
            let q = b.qs.as_mut_ptr();
            let ones8 = _mm256_set1_epi8(1);
            let ones16 = _mm256_set1_epi16(1);
            // Four sums of four quants per 128-bit half: group 2j in the low half of `s[j]`,
            // group 2j + 1 in its high half.
            let mut s = [_mm256_setzero_si256(); 8];
            for (j, sj) in s.iter_mut().enumerate() {
                let r: [__m256i; 4] =
                    core::array::from_fn(|i| round(_mm256_loadu_ps(p.add(32 * j + 8 * i))));
                let w = _mm256_packus_epi16(
                    _mm256_packus_epi32(r[0], r[1]),
                    _mm256_packus_epi32(r[2], r[3]),
                );
                let v = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(q.add(32 * j).cast(), v);
                *sj = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16);
            }
            // Low halves [g0, g2, g4, g6] and [g8, …, g14], high halves the odd groups.
            let first8 =
                _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            let last8 =
                _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
            // |sum| ≤ 16·128, so the signed pack does not saturate: [g0, g2, …, g14] in the
            // low half, the odd groups in the high one.
            let w = _mm256_packs_epi32(first8, last8);
            let (even, odd) = (_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
            let dst = b.bsums.as_mut_ptr().cast::<u8>();
            _mm_storeu_si128(dst.cast(), _mm_unpacklo_epi16(even, odd));
            _mm_storeu_si128(dst.add(16).cast(), _mm_unpackhi_epi16(even, odd));
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// [`quantize_row_q8_k_avx2`] on raw bytes, for the dispatch tables and the k-quant panels.
pub(crate) fn quantize_row_q8_k_avx2_bytes(x: &[f32], out: &mut [u8]) {
    let out = crate::traits::blocks_mut::<BlockQ8K>(out);
    // SAFETY: installed only in the tables and panel kernels of tiers that require AVX2, FMA
    // and F16C, handed out only after detecting them.
    unsafe { quantize_row_q8_k_avx2(x, out) }
}

// ---------------------------------------------------------------------------------------------
// The fused reference quantizers, compiled for FMA

/// [`crate::quantize_fused`]'s quantizers (`traits::quantize_fused_rows`, inlined with every
/// quantizer it calls) compiled for AVX2 and FMA: each `num::madd` is one `vfmadd` instead of a
/// call to the C library's `fmaf`, which the baseline x86-64 build makes. The same operations
/// in the same order, so the same bytes as the portable build (`tests/kernel_parity.rs`
/// checks). Returns `false`, writing nothing, if `ty` has no fused form.
#[target_feature(enable = "avx2,fma")]
fn quantize_fused_rows_avx2(ty: crate::GgmlType, x: &[f32], out: &mut [u8]) -> bool {
    crate::traits::quantize_fused_rows(ty, x, out)
}

/// [`quantize_fused_rows_avx2`] if this CPU has AVX2 and FMA (`Some`), `None` otherwise.
pub(crate) fn quantize_fused_rows_avx2_checked(
    ty: crate::GgmlType,
    x: &[f32],
    out: &mut [u8],
) -> Option<bool> {
    if !crate::dispatch::Tier::Avx2.is_supported() {
        return None;
    }
    // SAFETY: AVX2 and FMA were detected just above.
    Some(unsafe { quantize_fused_rows_avx2(ty, x, out) })
}
