//! AVX-512 (F, BW, VL, VNNI) dot-product kernels for x86-64.
//!
//! Two 32-weight blocks per 512-bit register: `vpdpbusd` (unsigned × signed bytes, summed in
//! groups of four into i32 without saturation) gives eight i32 lanes per block, which are scaled
//! by that block's `d_x·d_y` and accumulated with FMA. The integer block sums are those of the
//! scalar references in [`crate::legacy`]; only the order of the f32 accumulation differs. An
//! odd last block goes through the AVX2 kernel (the AVX-512 tier requires AVX2, FMA and F16C
//! too). Reached only through the safe `_bytes` wrappers of [`crate::dispatch`]'s AVX-512 table,
//! which is handed out only after all those features were detected.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::check_dot;
use crate::legacy::{BlockQ4_1, BlockQ8_0, BlockQ8_1};
use crate::traits::blocks;
use crate::x86_avx2::{vec_dot_q4_1_q8_1_avx2, vec_dot_q8_0_q8_0_avx2};

/// Four little-endian halves `[a, b, c, e]` (8 bytes) widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16x4_to_f32(a: [u8; 2], b: [u8; 2], c: [u8; 2], e: [u8; 2]) -> __m128 {
    let bits = i64::from_le_bytes([a[0], a[1], b[0], b[1], c[0], c[1], e[0], e[1]]);
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits))
}

/// Lanes 0..8 of the result are lane `i` of `v`, lanes 8..16 lane `j`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn spread_two(v: __m128, i: i32, j: i32) -> __m512 {
    let idx = _mm512_setr_epi32(i, i, i, i, i, i, i, i, j, j, j, j, j, j, j, j);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v))
}

/// Two 256-bit halves joined into one 512-bit register (`lo` in the low half).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Q8_0 · Q8_0 with AVX-512 VNNI: `|q_x| · (q_y with q_x's sign)` through `vpdpbusd`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_0_q8_0_avx512(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut acc = _mm512_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        // SAFETY: every `qs` is a 32-byte array and `loadu` has no alignment requirement.
        let (qx, qy) = unsafe {
            (
                join(
                    _mm256_loadu_si256(bx[0].qs.as_ptr().cast()),
                    _mm256_loadu_si256(bx[1].qs.as_ptr().cast()),
                ),
                join(
                    _mm256_loadu_si256(by[0].qs.as_ptr().cast()),
                    _mm256_loadu_si256(by[1].qs.as_ptr().cast()),
                ),
            )
        };
        let negative = _mm512_movepi8_mask(qx);
        let qy_signed = _mm512_mask_sub_epi8(qy, negative, _mm512_setzero_si512(), qy);
        let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(qx), qy_signed);
        // [dx0·dy0, dx1·dy1, 0, 0]
        let d = _mm_mul_ps(
            f16x4_to_f32(bx[0].d, bx[1].d, [0; 2], [0; 2]),
            f16x4_to_f32(by[0].d, by[1].d, [0; 2], [0; 2]),
        );
        acc = _mm512_fmadd_ps(spread_two(d, 0, 1), _mm512_cvtepi32_ps(sumi), acc);
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q8_0_q8_0_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

/// Q4_1 · Q8_1 with AVX-512 VNNI: unsigned nibbles × signed Q8_1 quants through `vpdpbusd`,
/// plus `m_x·s_y` per block.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_1_q8_1_avx512(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let mut acc = _mm512_setzero_ps();
    // Lanes 1 and 3 collect Σ m_x·s_y.
    let mut acc_ms = _mm_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        // SAFETY: every `qs` of Q4_1 is a 16-byte array, of Q8_1 a 32-byte one; `loadu` has no
        // alignment requirement.
        let (q0, q1, qy) = unsafe {
            (
                _mm_loadu_si128(bx[0].qs.as_ptr().cast()),
                _mm_loadu_si128(bx[1].qs.as_ptr().cast()),
                join(
                    _mm256_loadu_si256(by[0].qs.as_ptr().cast()),
                    _mm256_loadu_si256(by[1].qs.as_ptr().cast()),
                ),
            )
        };
        // Per block: weights 0..16 are the low nibbles, 16..32 the high ones.
        let qx = _mm512_and_si512(
            join(
                _mm256_set_m128i(_mm_srli_epi16::<4>(q0), q0),
                _mm256_set_m128i(_mm_srli_epi16::<4>(q1), q1),
            ),
            low_nibbles,
        );
        let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
        // [dx0·dy0, mx0·sy0, dx1·dy1, mx1·sy1]
        let dm = _mm_mul_ps(
            f16x4_to_f32(bx[0].d, bx[0].m, bx[1].d, bx[1].m),
            f16x4_to_f32(by[0].d, by[0].s, by[1].d, by[1].s),
        );
        acc = _mm512_fmadd_ps(spread_two(dm, 0, 2), _mm512_cvtepi32_ps(sumi), acc);
        acc_ms = _mm_add_ps(acc_ms, dm);
    }
    // [a1, a1, a3, a3] → lane 0: a1 + a3
    let odd = _mm_movehdup_ps(acc_ms);
    let ms = _mm_add_ss(odd, _mm_movehl_ps(odd, odd));
    let mut sum = _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(ms);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q4_1_q8_1_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

/// [`vec_dot_q8_0_q8_0_avx512`] on raw bytes, for the dispatch table.
pub(crate) fn vec_dot_q8_0_q8_0_avx512_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ8_0>(x), blocks::<BlockQ8_0>(y));
    // SAFETY: installed only in the AVX-512 dispatch table, which is handed out only after
    // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C were detected.
    unsafe { vec_dot_q8_0_q8_0_avx512(n, x, y) }
}

/// [`vec_dot_q4_1_q8_1_avx512`] on raw bytes, for the dispatch table.
pub(crate) fn vec_dot_q4_1_q8_1_avx512_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (blocks::<BlockQ4_1>(x), blocks::<BlockQ8_1>(y));
    // SAFETY: as for `vec_dot_q8_0_q8_0_avx512_bytes`.
    unsafe { vec_dot_q4_1_q8_1_avx512(n, x, y) }
}
