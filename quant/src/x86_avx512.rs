//! AVX-512 (F, BW, VL, VNNI) dot-product kernels for x86-64. A format gets a kernel here only
//! where it measured faster than its AVX2 kernel (`tests/bench_dot.rs`); the others (Q8_1,
//! Q5_K, IQ4_XS, F32 and F16) run their AVX2 kernels in the AVX-512 tier.
//!
//! Legacy formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): two 32-weight blocks per 512-bit
//! register, loaded by broadcast and blend (plain loads, no shuffle-port work): `vpdpbusd`
//! (unsigned × signed bytes, summed in groups of four into i32 without saturation) gives eight i32
//! lanes per block, which are scaled by that block's `d_x·d_y` and accumulated with FMA. The
//! integer block sums are those of the scalar references in [`crate::legacy`] and
//! [`crate::iquants`]; only the order of the f32 accumulation differs. An odd last block goes
//! through the AVX2 kernel (the AVX-512 tier requires AVX2, FMA and F16C too).
//!
//! k-quants (Q2_K, Q3_K, Q4_K, Q6_K; Q8_K against itself): 64 weights per 512-bit register;
//! `maddubs` pair sums (exact, as argued in the AVX2 kernels) are multiplied by the sub-block
//! scales and accumulated in i32 by `vpdpwssd`, which fuses the AVX2 kernels' `madd` and `add`.
//! Q3_K and Q6_K remove their quant offset (4, 32) once per block through Q8_K's group sums,
//! which equals the scalar kernels' sum because `bsums` are the sums of the quants.
//!
//! Reached only through the safe `_bytes` wrappers of [`crate::dispatch`]'s AVX-512 table,
//! which is handed out only after all those features were detected.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::check_dot;
use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
use crate::float::BlockBF16;
use crate::iquants::{BlockIQ4NL, KVALUES_IQ4NL};
use crate::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::traits::blocks;
use crate::x86_avx2::{
    FLOAT_CHUNK, hsum_f32x8, k4_min_lanes, k4_scales_mins_fast, q3k_scales_i8,
    vec_dot_iq4_nl_q8_0_avx2, vec_dot_q4_0_q8_0_avx2, vec_dot_q4_1_q8_1_avx2,
    vec_dot_q5_0_q8_0_avx2, vec_dot_q5_1_q8_1_avx2, vec_dot_q8_0_q8_0_avx2,
};

/// Four little-endian halves `[a, b, c, e]` (8 bytes) widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16x4_to_f32(a: [u8; 2], b: [u8; 2], c: [u8; 2], e: [u8; 2]) -> __m128 {
    // Whole 16-bit reads shifted into place: handed to `i64::from_le_bytes`, the bytes were
    // assembled one by one (about twice the scalar instructions).
    let half = |v: [u8; 2]| u64::from(u16::from_le_bytes(v));
    let bits = half(a) | half(b) << 16 | half(c) << 32 | half(e) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
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
        let qx = q8_pair(&bx[0].qs, &bx[1].qs);
        let qy = q8_pair(&by[0].qs, &by[1].qs);
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

/// One pair of Q4_1 blocks in the AVX-512 Q4_1 kernels ([`vec_dot_q4_1_q8_1_avx512`] and
/// [`matvec_q4_1_prepared_avx512`], which share it so that they agree bit for bit): `qy` holds
/// the pair's 64 activation quants, `dsy` is `[d_y0, s_y0, d_y1, s_y1]`. Unsigned nibbles ×
/// signed quants through `vpdpbusd`; `acc` collects `d_x·d_y·Σq_x·q_y` in lanes, lanes 1 and 3 of
/// `acc_ms` collect `m_x·s_y`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn q4_1_pair(bx: &[BlockQ4_1], qy: __m512i, dsy: __m128, acc: &mut __m512, acc_ms: &mut __m128) {
    // Per block: weights 0..16 are the low nibbles, 16..32 the high ones.
    let qx = nibbles_64(&bx[0].qs, &bx[1].qs);
    let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
    // [dx0·dy0, mx0·sy0, dx1·dy1, mx1·sy1]
    let dm = _mm_mul_ps(f16x4_to_f32(bx[0].d, bx[0].m, bx[1].d, bx[1].m), dsy);
    *acc = _mm512_fmadd_ps(spread_two(dm, 0, 2), _mm512_cvtepi32_ps(sumi), *acc);
    *acc_ms = _mm_add_ps(*acc_ms, dm);
}

/// One pair of Q5_1 blocks (the body of [`vec_dot_q5_1_q8_1_avx512`] and of
/// [`matvec_q5_1_prepared_avx512`]): [`q4_1_pair`] with the fifth bit (16) added from `qh`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn q5_1_pair(bx: &[BlockQ5_1], qy: __m512i, dsy: __m128, acc: &mut __m512, acc_ms: &mut __m128) {
    let bits =
        u64::from(u32::from_le_bytes(bx[0].qh)) | (u64::from(u32::from_le_bytes(bx[1].qh)) << 32);
    let nib = nibbles_64(&bx[0].qs, &bx[1].qs);
    let qx = _mm512_mask_add_epi8(nib, bits, nib, _mm512_set1_epi8(16));
    let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
    // [dx0·dy0, mx0·sy0, dx1·dy1, mx1·sy1]
    let dm = _mm_mul_ps(f16x4_to_f32(bx[0].d, bx[0].m, bx[1].d, bx[1].m), dsy);
    *acc = _mm512_fmadd_ps(spread_two(dm, 0, 2), _mm512_cvtepi32_ps(sumi), *acc);
    *acc_ms = _mm_add_ps(*acc_ms, dm);
}

/// The sum of [`q4_1_pair`]'s accumulators.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn q4_1_total(acc: __m512, acc_ms: __m128) -> f32 {
    // [a1, a1, a3, a3] → lane 0: a1 + a3
    let odd = _mm_movehdup_ps(acc_ms);
    let ms = _mm_add_ss(odd, _mm_movehl_ps(odd, odd));
    _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(ms)
}

/// Q4_1 · Q8_1 with AVX-512 VNNI: unsigned nibbles × signed Q8_1 quants through `vpdpbusd`,
/// plus `m_x·s_y` per block.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_1_q8_1_avx512(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut acc = _mm512_setzero_ps();
    let mut acc_ms = _mm_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        let qy = q8_pair(&by[0].qs, &by[1].qs);
        let dsy = f16x4_to_f32(by[0].d, by[0].s, by[1].d, by[1].s);
        q4_1_pair(bx, qy, dsy, &mut acc, &mut acc_ms);
    }
    let mut sum = q4_1_total(acc, acc_ms);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q4_1_q8_1_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

macro_rules! min_matvec {
    ($name:ident, $bytes:ident, $block:ty, $pair:ident, $tail:ident, $fmt:literal) => {
        /// `out[r]` = the AVX-512 `vec_dot` of Q4_1 (or Q5_1) weight row `r` with the Q8_1 column that
        /// [`crate::panel`]'s preparation laid out (`y`: per block 32 quants, then `d` and `s` widened
        /// to f32), bit for bit: the same instructions on the same values, except that the column's
        /// scales are loaded already widened (they are the f16 values, exactly) instead of being
        /// converted again for every row, and that the rows are looped here rather than through a
        /// function pointer per row. A decode step's products are bound by this loop's arithmetic as
        /// much as by memory, which is what the saved instructions buy.
        ///
        /// # Safety
        /// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `x` holds `rows` rows of
        /// `nb` blocks, `y` holds `nb` prepared blocks and `out` `rows` values (checked by the wrapper).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $name(nb: usize, x: &[$block], y: &[u8], out: &mut [f32]) {
            use crate::panel::COL_BLOCK;
            let pairs = nb / 2;
            // The row about 4 KiB ahead is prefetched a few lines per pair (`crate::prefetch::Spread`).
            let ahead = 4096usize.div_ceil(nb * size_of::<$block>());
            for (r, (o, row)) in out.iter_mut().zip(x.chunks_exact(nb)).enumerate() {
                let next = x.get((r + ahead) * nb..(r + ahead + 1) * nb).unwrap_or(&[]);
                let mut next = crate::prefetch::Spread::new(crate::block_bytes(next), pairs);
                let mut acc = _mm512_setzero_ps();
                let mut acc_ms = _mm_setzero_ps();
                for (bx, by) in row[..2 * pairs]
                    .chunks_exact(2)
                    .zip(y.chunks_exact(2 * COL_BLOCK))
                {
                    next.step();
                    // SAFETY: `by` is two prepared blocks (80 bytes): quants at 0 and 40, `d, s` at 32
                    // and 72; unaligned loads.
                    let (qy, dsy) = unsafe {
                        let p = by.as_ptr();
                        let qa = _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast()));
                        let qb = _mm512_broadcast_i64x4(_mm256_loadu_si256(p.add(COL_BLOCK).cast()));
                        let lo = _mm_loadl_epi64(p.add(32).cast());
                        let hi = _mm_loadl_epi64(p.add(COL_BLOCK + 32).cast());
                        (
                            _mm512_mask_blend_epi64(0xf0, qa, qb),
                            _mm_castsi128_ps(_mm_unpacklo_epi64(lo, hi)),
                        )
                    };
                    $pair(bx, qy, dsy, &mut acc, &mut acc_ms);
                }
                let mut sum = q4_1_total(acc, acc_ms);
                if nb % 2 == 1 {
                    // The odd last block through the AVX2 kernel, on the Q8_1 block the prepared one
                    // came from (its scales are f16 values, so narrowing them back is exact).
                    let last = &y[(nb - 1) * COL_BLOCK..][..COL_BLOCK];
                    let mut qs = [0i8; 32];
                    for (q, &b) in qs.iter_mut().zip(&last[..32]) {
                        *q = b as i8;
                    }
                    let f = |at: usize| {
                        f32::from_le_bytes([last[at], last[at + 1], last[at + 2], last[at + 3]])
                    };
                    let block = BlockQ8_1 {
                        d: crate::num::f32_to_f16(f(32)),
                        s: crate::num::f32_to_f16(f(36)),
                        qs,
                    };
                    // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
                    sum += unsafe { $tail(32, &row[nb - 1..], &[block]) };
                }
                *o = sum;
            }
        }

        #[doc = concat!("Safe wrapper of [`", stringify!($name), "`] for [`crate::panel::PanelKernels::matvec`].")]
        pub(crate) fn $bytes(n: usize, x: &[u8], y: &[u8], out: &mut [f32]) {
            assert!(n % 32 == 0, concat!("{} weights are not whole ", $fmt, " blocks"), n);
            let nb = n / 32;
            assert_eq!(x.len(), out.len() * nb * size_of::<$block>(), concat!($fmt, " rows"));
            assert_eq!(y.len(), nb * crate::panel::COL_BLOCK, "prepared column");
            if nb == 0 {
                out.fill(0.0);
                return;
            }
            // SAFETY: lengths checked above; handed out only for a CPU that supports the
            // AVX-512 tier.
            unsafe { $name(nb, blocks::<$block>(x), y, out) }
        }
    };
}

min_matvec!(
    matvec_q4_1_prepared_avx512,
    matvec_q4_1_prepared_avx512_bytes,
    BlockQ4_1,
    q4_1_pair,
    vec_dot_q4_1_q8_1_avx2,
    "Q4_1"
);
min_matvec!(
    matvec_q5_1_prepared_avx512,
    matvec_q5_1_prepared_avx512_bytes,
    BlockQ5_1,
    q5_1_pair,
    vec_dot_q5_1_q8_1_avx2,
    "Q5_1"
);

/// Q5_1 · Q8_1 with AVX-512 VNNI: the fifth bits of two blocks form a 64-bit mask that adds 16
/// to the nibbles; unsigned quants × signed Q8_1 quants through `vpdpbusd`, plus `m_x·s_y`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q5_1_q8_1_avx512(n: usize, x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut acc = _mm512_setzero_ps();
    // Lanes 1 and 3 collect Σ m_x·s_y.
    let mut acc_ms = _mm_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        let qy = q8_pair(&by[0].qs, &by[1].qs);
        let dsy = f16x4_to_f32(by[0].d, by[0].s, by[1].d, by[1].s);
        q5_1_pair(bx, qy, dsy, &mut acc, &mut acc_ms);
    }
    let mut sum = q4_1_total(acc, acc_ms);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q5_1_q8_1_avx2(32, &x[last..nb], &y[last..nb]) };
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

// ---------------------------------------------------------------------------------------------
// Helpers

/// 64 bytes from the start of `s` (which must hold at least 64).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld512(s: &[u8]) -> __m512i {
    let a: &[u8; 64] = s.first_chunk().expect("64 bytes");
    // SAFETY: `a` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
}

/// 64 signed quants from the start of `s` (which must hold at least 64).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld512_i8(s: &[i8]) -> __m512i {
    let a: &[i8; 64] = s.first_chunk().expect("64 quants");
    // SAFETY: `a` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
}

/// 32 bytes from the start of `s` (which must hold at least 32).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld256(s: &[u8]) -> __m256i {
    let a: &[u8; 32] = s.first_chunk().expect("32 bytes");
    // SAFETY: `a` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

/// 16 bytes from the start of `s` (which must hold at least 16).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld128(s: &[u8]) -> __m128i {
    let a: &[u8; 16] = s.first_chunk().expect("16 bytes");
    // SAFETY: `a` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(a.as_ptr().cast()) }
}

/// The 32-byte quants of two Q8_0 or Q8_1 blocks in one register: each row broadcast from memory (a
/// plain load) and the halves blended, which keeps the shuffle port free.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn q8_pair(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
    // SAFETY: `a` and `b` are 32 readable bytes; the broadcast load has no alignment
    // requirement.
    let (qa, qb) = unsafe {
        (
            _mm512_broadcast_i64x4(_mm256_loadu_si256(a.as_ptr().cast())),
            _mm512_broadcast_i64x4(_mm256_loadu_si256(b.as_ptr().cast())),
        )
    };
    _mm512_mask_blend_epi64(0xf0, qa, qb)
}

/// The 64 nibbles of two 16-byte legacy nibble fields in weight order, each 0..=15: each field
/// broadcast to four 128-bit lanes (a plain load), two lanes of each kept by a blend, and the
/// second and fourth lanes shifted right by 4 (high nibbles).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn nibbles_64(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: `a` and `b` are 16 readable bytes; the broadcast load has no alignment
    // requirement.
    let (qa, qb) = unsafe {
        (
            _mm512_broadcast_i32x4(_mm_loadu_si128(a.as_ptr().cast())),
            _mm512_broadcast_i32x4(_mm_loadu_si128(b.as_ptr().cast())),
        )
    };
    let q = _mm512_mask_blend_epi64(0xf0, qa, qb);
    let shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(0x0f))
}

/// `[d_a·d_b of pair 0, of pair 1, 0, 0]` from four f16 scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scale_pair(xa: [u8; 2], xb: [u8; 2], ya: [u8; 2], yb: [u8; 2]) -> __m512 {
    let d = _mm_mul_ps(
        f16x4_to_f32(xa, xb, [0; 2], [0; 2]),
        f16x4_to_f32(ya, yb, [0; 2], [0; 2]),
    );
    spread_two(d, 0, 1)
}

// ---------------------------------------------------------------------------------------------
// Legacy formats

/// Q4_0 · Q8_0 with AVX-512 VNNI: `Σ (q − 8)·y = Σ q·y − Σ 8·y`, both by `vpdpbusd` (unsigned
/// nibbles and the constant 8 against the signed Q8_0 quants; no saturation).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_0_q8_0_avx512(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let eight = _mm512_set1_epi8(8);
    let mut acc = _mm512_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        let qx = nibbles_64(&bx[0].qs, &bx[1].qs);
        let qy = q8_pair(&by[0].qs, &by[1].qs);
        let zero = _mm512_setzero_si512();
        let sumi = _mm512_sub_epi32(
            _mm512_dpbusd_epi32(zero, qx, qy),
            _mm512_dpbusd_epi32(zero, eight, qy),
        );
        let d = scale_pair(bx[0].d, bx[1].d, by[0].d, by[1].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q4_0_q8_0_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

/// Q5_0 · Q8_0 with AVX-512 VNNI: the fifth bits of two blocks form a 64-bit mask that adds 16
/// to the nibbles; `Σ (q − 16)·y = Σ q·y − Σ 16·y` by `vpdpbusd`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q5_0_q8_0_avx512(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let sixteen = _mm512_set1_epi8(16);
    let mut acc = _mm512_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        let bits = u64::from(u32::from_le_bytes(bx[0].qh))
            | (u64::from(u32::from_le_bytes(bx[1].qh)) << 32);
        let nib = nibbles_64(&bx[0].qs, &bx[1].qs);
        let qx = _mm512_mask_add_epi8(nib, bits, nib, sixteen);
        let qy = q8_pair(&by[0].qs, &by[1].qs);
        let zero = _mm512_setzero_si512();
        let sumi = _mm512_sub_epi32(
            _mm512_dpbusd_epi32(zero, qx, qy),
            _mm512_dpbusd_epi32(zero, sixteen, qy),
        );
        let d = scale_pair(bx[0].d, bx[1].d, by[0].d, by[1].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_q5_0_q8_0_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

/// IQ4_NL · Q8_0 with AVX-512 VNNI: the levels plus 128 (1..=241, unsigned) are looked up with
/// `pshufb`; `Σ level·y = Σ (level + 128)·y − Σ 128·y` by `vpdpbusd`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_iq4_nl_q8_0_avx512(
    n: usize,
    x: &[BlockIQ4NL],
    y: &[BlockQ8_0],
) -> f32 {
    let nb = check_dot(n, x, y);
    let biased = KVALUES_IQ4NL.map(|v| (i16::from(v) + 128) as u8);
    let table = _mm512_broadcast_i32x4(ld128(&biased));
    let bias = _mm512_set1_epi8(-128);
    let mut acc = _mm512_setzero_ps();
    let pairs = nb / 2;
    for (bx, by) in x[..2 * pairs]
        .chunks_exact(2)
        .zip(y[..2 * pairs].chunks_exact(2))
    {
        let qx = _mm512_shuffle_epi8(table, nibbles_64(&bx[0].qs, &bx[1].qs));
        let qy = q8_pair(&by[0].qs, &by[1].qs);
        let zero = _mm512_setzero_si512();
        let sumi = _mm512_sub_epi32(
            _mm512_dpbusd_epi32(zero, qx, qy),
            _mm512_dpbusd_epi32(zero, bias, qy),
        );
        let d = scale_pair(bx[0].d, bx[1].d, by[0].d, by[1].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if nb % 2 == 1 {
        let last = nb - 1;
        // SAFETY: this function's own preconditions include AVX2, FMA and F16C.
        sum += unsafe { vec_dot_iq4_nl_q8_0_avx2(32, &x[last..nb], &y[last..nb]) };
    }
    sum
}

// ---------------------------------------------------------------------------------------------
// k-quants

/// Broadcasts i16 lane `lo` of `v` to i16 lanes 0..16 of the result and lane `lo + 1` to lanes
/// 16..32 (the scales of two 32-weight sub-blocks).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scales_2x16(v: __m512i, lo: i16) -> __m512i {
    let idx = _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi16(lo)),
        _mm256_set1_epi16(lo + 1),
    );
    _mm512_permutexvar_epi16(idx, v)
}

/// Broadcasts i16 lanes `first..first + 4` of `v` to the four 128-bit lanes of the result (the
/// scales of four 16-weight sub-blocks).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scales_4x8(v: __m512i, first: i16) -> __m512i {
    let idx = _mm512_add_epi16(
        _mm512_set_epi64(
            0x0003_0003_0003_0003,
            0x0003_0003_0003_0003,
            0x0002_0002_0002_0002,
            0x0002_0002_0002_0002,
            0x0001_0001_0001_0001,
            0x0001_0001_0001_0001,
            0,
            0,
        ),
        _mm512_set1_epi16(first),
    );
    _mm512_permutexvar_epi16(idx, v)
}

/// The body of Q4_K: 64 weights per step, `x_g` (unsigned, ≤ 31) the quants of
/// weights 64g..64g+64.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn k4_block_sum(scales: [u8; 8], xs: [__m512i; 4], by: &BlockQ8K) -> __m512i {
    let sc = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_cvtsi64_si128(
        i64::from_le_bytes(scales),
    )));
    let mut sumi = _mm512_setzero_si512();
    for (g, xg) in xs.into_iter().enumerate() {
        let pairs = _mm512_maddubs_epi16(xg, ld512_i8(&by.qs[64 * g..]));
        sumi = _mm512_dpwssd_epi32(sumi, pairs, scales_2x16(sc, 2 * g as i16));
    }
    sumi
}

/// Q4_K · Q8_K with AVX-512: 64 nibbles per register (low then high nibbles of 32 bytes, which
/// is weight order), `maddubs` against Q8_K and `vpdpwssd` with the per-32 scales; the minimum
/// term from Q8_K's group sums as in the scalar kernel.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_k_q8_k_avx512(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the same preconditions.
    unsafe { q4_k_q8_k_avx512_hooked(n, x, y, || {}) }
}

/// [`vec_dot_q4_k_q8_k_avx512`] with `before_block` called before each block: the hook of a
/// matrix-vector kernel that prefetches later rows while this one is multiplied (the
/// arithmetic, and so the result, is the same).
///
/// # Safety
/// As for [`vec_dot_q4_k_q8_k_avx512`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn q4_k_q8_k_avx512_hooked(
    n: usize,
    x: &[BlockQ4K],
    y: &[BlockQ8K],
    mut before_block: impl FnMut(),
) -> f32 {
    let nb = check_dot(n, x, y);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let high_half_by_4 = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        before_block();
        let (scales, mins) = k4_scales_mins_fast(&bx.scales);
        let summin = k4_min_lanes(mins, by);
        let xs: [__m512i; 4] = core::array::from_fn(|g| {
            // Both halves loaded by one broadcast; the high half shifted to its high nibbles.
            let q = _mm512_broadcast_i64x4(ld256(&bx.qs[32 * g..]));
            _mm512_and_si512(_mm512_srlv_epi64(q, high_half_by_4), low_nibbles)
        });
        let sumi = k4_block_sum(scales, xs, by);
        let d = _mm_mul_ps(
            f16x4_to_f32(bx.d, bx.dmin, [0; 2], [0; 2]),
            _mm_set1_ps(by.scale()),
        );
        acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(
            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
            _mm256_cvtepi32_ps(summin),
            acc_min,
        );
    }
    _mm512_reduce_add_ps(acc) - hsum_f32x8(acc_min)
}

/// Q6_K · Q8_K with AVX-512: the unsigned 6-bit quants (0..=63) of 64 weights per register,
/// `maddubs` against Q8_K (pair sums ≤ 2·63·128) and `vpdpwssd` with the signed per-16 scales;
/// the offset 32 is removed once per block as `32·Σ_j sc_j·bsum_j` from Q8_K's group sums
/// (exact, and equal to the scalar kernel's sum because `bsums` are the sums of the quants).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q6_k_q8_k_avx512(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the same preconditions.
    unsafe { q6_k_q8_k_avx512_hooked(n, x, y, || {}) }
}

/// [`vec_dot_q6_k_q8_k_avx512`] with `before_block` called before each block: the hook of a
/// matrix-vector kernel that prefetches later rows while this one is multiplied (the
/// arithmetic, and so the result, is the same).
///
/// # Safety
/// As for [`vec_dot_q6_k_q8_k_avx512`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn q6_k_q8_k_avx512_hooked(
    n: usize,
    x: &[BlockQ6K],
    y: &[BlockQ8K],
    mut before_block: impl FnMut(),
) -> f32 {
    let nb = check_dot(n, x, y);
    let m4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    let mut acc = _mm512_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        before_block();
        let sc16 = _mm256_cvtepi8_epi16(ld128(&bx.scales.map(|v| v as u8)));
        let offset = _mm256_madd_epi16(sc16, ld256(by.bsums.as_flattened()));
        let sc = _mm512_castsi256_si512(sc16);
        let mut sumi = _mm512_setzero_si512();
        for h in 0..2 {
            let ql = ld512(&bx.ql[64 * h..]);
            let qh = ld256(&bx.qh[32 * h..]);
            // Weights 128h..128h+64: low nibbles of `ql` with `qh` bits 0-1 (first 32) and 2-3
            // (next 32) as bits 4-5; weights 128h+64..128h+128: high nibbles with bits 4-5 and
            // 6-7. Each 16-bit shift is masked to bits 4-5 of the same byte.
            let h01 = _mm512_and_si512(
                join(_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<2>(qh)),
                m30,
            );
            let h23 = _mm512_and_si512(join(qh, _mm256_srli_epi16::<2>(qh)), m30);
            let x01 = _mm512_or_si512(_mm512_and_si512(ql, m4), h01);
            let x23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4), h23);
            let p01 = _mm512_maddubs_epi16(x01, ld512_i8(&by.qs[128 * h..]));
            let p23 = _mm512_maddubs_epi16(x23, ld512_i8(&by.qs[128 * h + 64..]));
            sumi = _mm512_dpwssd_epi32(sumi, p01, scales_4x8(sc, 8 * h as i16));
            sumi = _mm512_dpwssd_epi32(sumi, p23, scales_4x8(sc, 8 * h as i16 + 4));
        }
        // Σ sc·q·y − 32·Σ sc·bsum, lane by lane (|32·offset| < 2^25).
        let total = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32::<5>(offset)));
        let d = crate::num::f16_to_f32(bx.d) * by.scale();
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(total), acc);
    }
    _mm512_reduce_add_ps(acc)
}

/// Q2_K · Q8_K with AVX-512: the 2-bit quants of 64 weights per register (two shifts of one
/// 32-byte row), `maddubs` against Q8_K (pair sums ≤ 2·3·127) and `vpdpwssd` with the 4-bit
/// per-16 scales; the minimum term from Q8_K's group sums.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q2_k_q8_k_avx512(n: usize, x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let m3 = _mm512_set1_epi8(3);
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sc = ld128(&bx.scales);
        let nib = _mm_set1_epi8(0x0f);
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), nib));
        let summs = _mm256_madd_epi16(mins, ld256(by.bsums.as_flattened()));
        let scales = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc, nib)));
        let mut sumi = _mm512_setzero_si512();
        for h in 0..2 {
            // Weights 128h + 32s .. +32 are bits 2s..2s+2 of the 32 bytes of this half.
            let q2 = ld256(&bx.qs[32 * h..]);
            let x01 = _mm512_and_si512(join(q2, _mm256_srli_epi16::<2>(q2)), m3);
            let x23 = _mm512_and_si512(
                join(_mm256_srli_epi16::<4>(q2), _mm256_srli_epi16::<6>(q2)),
                m3,
            );
            let p01 = _mm512_maddubs_epi16(x01, ld512_i8(&by.qs[128 * h..]));
            let p23 = _mm512_maddubs_epi16(x23, ld512_i8(&by.qs[128 * h + 64..]));
            sumi = _mm512_dpwssd_epi32(sumi, p01, scales_4x8(scales, 8 * h as i16));
            sumi = _mm512_dpwssd_epi32(sumi, p23, scales_4x8(scales, 8 * h as i16 + 4));
        }
        let d = _mm_mul_ps(
            f16x4_to_f32(bx.d, bx.dmin, [0; 2], [0; 2]),
            _mm_set1_ps(by.scale()),
        );
        acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(
            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
            _mm256_cvtepi32_ps(summs),
            acc_min,
        );
    }
    _mm512_reduce_add_ps(acc) - hsum_f32x8(acc_min)
}

/// Q3_K · Q8_K with AVX-512: the quant plus 4 (0..=7: two low bits, plus 4 where the `hmask`
/// bit is set) of 64 weights per register, `maddubs` against Q8_K and `vpdpwssd` with the
/// signed per-16 scales; the offset 4 is removed once per block as `4·Σ_j sc_j·bsum_j` from
/// Q8_K's group sums (exact, and equal to the scalar sum because `bsums` are the quant sums).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q3_k_q8_k_avx512(n: usize, x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let m3 = _mm512_set1_epi8(3);
    let four = _mm512_set1_epi8(4);
    let mut acc = _mm512_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sc16 = _mm256_cvtepi8_epi16(q3k_scales_i8(&bx.scales));
        let offset = _mm256_madd_epi16(sc16, ld256(by.bsums.as_flattened()));
        let scales = _mm512_castsi256_si512(sc16);
        let hm = ld256(&bx.hmask);
        let hm2 = join(hm, hm);
        let mut sumi = _mm512_setzero_si512();
        for h in 0..2 {
            let q2 = ld256(&bx.qs[32 * h..]);
            let low01 = _mm512_and_si512(join(q2, _mm256_srli_epi16::<2>(q2)), m3);
            let low23 = _mm512_and_si512(
                join(_mm256_srli_epi16::<4>(q2), _mm256_srli_epi16::<6>(q2)),
                m3,
            );
            // Chunk c = 4h + s uses `hmask` bit c.
            let probe = |c: usize| {
                join(
                    _mm256_set1_epi8((1u8 << c) as i8),
                    _mm256_set1_epi8((1u8 << (c + 1)) as i8),
                )
            };
            let x01 =
                _mm512_mask_add_epi8(low01, _mm512_test_epi8_mask(hm2, probe(4 * h)), low01, four);
            let x23 = _mm512_mask_add_epi8(
                low23,
                _mm512_test_epi8_mask(hm2, probe(4 * h + 2)),
                low23,
                four,
            );
            let p01 = _mm512_maddubs_epi16(x01, ld512_i8(&by.qs[128 * h..]));
            let p23 = _mm512_maddubs_epi16(x23, ld512_i8(&by.qs[128 * h + 64..]));
            sumi = _mm512_dpwssd_epi32(sumi, p01, scales_4x8(scales, 8 * h as i16));
            sumi = _mm512_dpwssd_epi32(sumi, p23, scales_4x8(scales, 8 * h as i16 + 4));
        }
        // Σ sc·(q + 4)·y − 4·Σ sc·bsum, lane by lane (|4·offset| < 2^22).
        let total = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32::<2>(offset)));
        let d = crate::num::f16_to_f32(bx.d) * by.scale();
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(total), acc);
    }
    _mm512_reduce_add_ps(acc)
}

/// Q8_K · Q8_K with AVX-512 VNNI: `|q_x| · (q_y with q_x's sign)` through `vpdpbusd`, 64
/// quants per step (exact unless a quant is −128).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_k_q8_k_avx512(n: usize, x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut acc = _mm512_setzero_ps();
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let mut sumi = _mm512_setzero_si512();
        for c in 0..QK_K / 64 {
            let qx = ld512_i8(&bx.qs[64 * c..]);
            let qy = ld512_i8(&by.qs[64 * c..]);
            let negative = _mm512_movepi8_mask(qx);
            let qy_signed = _mm512_mask_sub_epi8(qy, negative, _mm512_setzero_si512(), qy);
            sumi = _mm512_dpbusd_epi32(sumi, _mm512_abs_epi8(qx), qy_signed);
        }
        let d = _mm512_set1_ps(bx.scale() * by.scale());
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}

// ---------------------------------------------------------------------------------------------
// Float formats

/// Sixteen BF16 values from the start of `s`, widened (exactly) by a 16-bit shift.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn load16_bf16(s: &[BlockBF16]) -> __m512 {
    let a: &[BlockBF16; 16] = s.first_chunk().expect("16 values");
    // SAFETY: `a` is 32 readable bytes; `loadu` has no alignment requirement.
    let h = unsafe { _mm256_loadu_si256(a.as_ptr().cast()) };
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
}

macro_rules! float_dot_kernel {
    ($(#[$doc:meta])* $name:ident, $block:ty, $load:ident, $widen:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(crate) unsafe fn $name(n: usize, x: &[$block], y: &[$block]) -> f32 {
            check_dot(n, x, y);
            let widen = $widen;
            let mut wide = _mm512_setzero_pd();
            let mut tail = 0.0f64;
            for (xc, yc) in x[..n].chunks(FLOAT_CHUNK).zip(y[..n].chunks(FLOAT_CHUNK)) {
                let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                let mut k = 0;
                while k + 32 <= xc.len() {
                    a0 = _mm512_fmadd_ps($load(&xc[k..]), $load(&yc[k..]), a0);
                    a1 = _mm512_fmadd_ps($load(&xc[k + 16..]), $load(&yc[k + 16..]), a1);
                    k += 32;
                }
                while k + 16 <= xc.len() {
                    a0 = _mm512_fmadd_ps($load(&xc[k..]), $load(&yc[k..]), a0);
                    k += 16;
                }
                for (a, b) in xc[k..].iter().zip(&yc[k..]) {
                    tail += f64::from(widen(a.v) * widen(b.v));
                }
                let s = _mm512_add_ps(a0, a1);
                let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(s));
                let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(s),
                )));
                wide = _mm512_add_pd(wide, _mm512_add_pd(lo, hi));
            }
            (_mm512_reduce_add_pd(wide) + tail) as f32
        }
    };
}

float_dot_kernel!(
    /// BF16 · BF16 with AVX-512: widened 16 at a time by a shift, products fused into two
    /// 16-lane accumulators per [`FLOAT_CHUNK`] values (at most 8 additions per lane), partial
    /// sums in f64, as the AVX2 kernel. (512-bit F32 and F16 kernels measured slower than AVX2:
    /// F32 is bound by memory, and the 512-bit F16 conversion costs two micro-ops.)
    vec_dot_bf16_bf16_avx512,
    BlockBF16,
    load16_bf16,
    crate::num::bf16_to_f32
);

// ---------------------------------------------------------------------------------------------
// f32 helpers of `crate::f32ops`

/// Sixteen f32 from the start of `s` (which must hold at least sixteen).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn ld16(s: &[f32]) -> __m512 {
    let a: &[f32; 16] = s.first_chunk().expect("16 values");
    // SAFETY: `a` is 16 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_ps(a.as_ptr()) }
}

/// Stores sixteen f32 at the start of `s` (which must hold at least sixteen).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn st16(s: &mut [f32], v: __m512) {
    let a: &mut [f32; 16] = s.first_chunk_mut().expect("16 values");
    // SAFETY: `a` is 16 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) }
}

/// `e^x` on sixteen lanes: the algorithm of [`crate::f32ops::exp`], with `vscalefps` applying
/// `2^n` (exact, overflowing to +∞ and underflowing through the subnormals as IEEE says).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn exp_f32x16(x: __m512) -> __m512 {
    use crate::f32ops::{EXP_MAX_ARG, EXP_MIN_ARG, EXP_POLY, LN2_HI, LN2_LO, LOG2E};
    // `max`/`min` return their second operand when either is NaN, so NaN passes through.
    let x = _mm512_min_ps(
        _mm512_set1_ps(EXP_MAX_ARG),
        _mm512_max_ps(_mm512_set1_ps(EXP_MIN_ARG), x),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[5]);
    for &c in EXP_POLY[..5].iter().rev() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let one = _mm512_set1_ps(1.0);
    let p = _mm512_fmadd_ps(_mm512_fmadd_ps(p, r, one), r, one);
    _mm512_scalef_ps(p, n)
}

/// `x = exp(x)`, sixteen at a time.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn f32_exp_avx512_impl(x: &mut [f32]) {
    let mut k = 0;
    while k + 16 <= x.len() {
        let e = exp_f32x16(ld16(&x[k..]));
        st16(&mut x[k..], e);
        k += 16;
    }
    for v in &mut x[k..] {
        *v = crate::f32ops::exp(*v);
    }
}

/// Softmax in place, sixteen at a time: the maximum (AVX2), then `exp(x − max)` stored and
/// summed in two 16-lane f32 accumulators per [`crate::f32ops::CHUNK`] values (8 additions per
/// lane) and across chunks in f64, then one multiplication by the reciprocal of the sum.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn f32_softmax_avx512_impl(x: &mut [f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let m = crate::x86_avx2::f32_max_avx2(x);
    let mv = _mm512_set1_ps(m);
    let mut wide = _mm512_setzero_pd();
    let mut tail = 0.0f64;
    for c in x.chunks_mut(crate::f32ops::CHUNK) {
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut k = 0;
        while k + 32 <= c.len() {
            let e0 = exp_f32x16(_mm512_sub_ps(ld16(&c[k..]), mv));
            let e1 = exp_f32x16(_mm512_sub_ps(ld16(&c[k + 16..]), mv));
            st16(&mut c[k..], e0);
            st16(&mut c[k + 16..], e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
            k += 32;
        }
        while k + 16 <= c.len() {
            let e = exp_f32x16(_mm512_sub_ps(ld16(&c[k..]), mv));
            st16(&mut c[k..], e);
            s0 = _mm512_add_ps(s0, e);
            k += 16;
        }
        for v in &mut c[k..] {
            *v = crate::f32ops::exp(*v - m);
            tail += f64::from(*v);
        }
        let s = _mm512_add_ps(s0, s1);
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(s));
        let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(s),
        )));
        wide = _mm512_add_pd(wide, _mm512_add_pd(lo, hi));
    }
    let total = _mm512_reduce_add_pd(wide) + tail;
    crate::x86_avx2::f32_scale_avx2(x, (1.0 / total) as f32);
    total as f32
}

/// `gate = gate/(1 + exp(−gate))·up`, sixteen at a time.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn f32_silu_mul_avx512_impl(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: slices differ in length");
    let one = _mm512_set1_ps(1.0);
    let mut k = 0;
    while k + 16 <= gate.len() {
        let g = ld16(&gate[k..]);
        let e = exp_f32x16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        let v = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), ld16(&up[k..]));
        st16(&mut gate[k..], v);
        k += 16;
    }
    crate::f32ops::silu_mul_tail(&mut gate[k..], &up[k..]);
}

/// [`f32_exp_avx512_impl`] for the AVX-512 f32ops table.
pub(crate) fn f32_exp_avx512(x: &mut [f32]) {
    // SAFETY: installed only in the AVX-512 f32ops table, which is handed out only after
    // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C were detected.
    unsafe { f32_exp_avx512_impl(x) }
}

/// [`f32_softmax_avx512_impl`] for the AVX-512 f32ops table.
pub(crate) fn f32_softmax_avx512(x: &mut [f32]) -> f32 {
    // SAFETY: as for `f32_exp_avx512`.
    unsafe { f32_softmax_avx512_impl(x) }
}

/// [`f32_silu_mul_avx512_impl`] for the AVX-512 f32ops table.
pub(crate) fn f32_silu_mul_avx512(gate: &mut [f32], up: &[f32]) {
    // SAFETY: as for `f32_exp_avx512`.
    unsafe { f32_silu_mul_avx512_impl(gate, up) }
}

/// Scores of all query heads against key rows, `NC` vectors of 16 per row: each key row is
/// widened once (`vcvtph2ps`) and kept in registers for every head.
///
/// # Safety
/// The CPU must support AVX-512 F; `hd == 16 * NC`, and the lengths were checked by
/// `check_scores`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn attn_scores_f16_impl<const NC: usize>(
    q: &[f32],
    k: &[u16],
    g: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let hd = 16 * NC;
    for i in 0..rows {
        // SAFETY: row i of `k` holds `hd` halves (checked); unaligned loads.
        let kv: [__m512; NC] = core::array::from_fn(|c| unsafe {
            _mm512_cvtph_ps(_mm256_loadu_si256(k.as_ptr().add(i * hd + 16 * c).cast()))
        });
        for j in 0..g {
            let mut acc = _mm512_setzero_ps();
            for (c, kc) in kv.iter().enumerate() {
                // SAFETY: head j of `q` holds `hd` values (checked).
                let qc = unsafe { _mm512_loadu_ps(q.as_ptr().add(j * hd + 16 * c)) };
                acc = _mm512_fmadd_ps(qc, *kc, acc);
            }
            out[j * out_stride + i] = _mm512_reduce_add_ps(acc);
        }
    }
}

/// AVX-512 [`crate::f32ops::attn_scores_f16_ref`]: head sizes of 64, 128 and 256 through the
/// fused kernel, others through the reference.
pub(crate) fn attn_scores_f16_avx512(
    q: &[f32],
    k: &[u16],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let (g, rows) = crate::f32ops::check_scores(q, k, hd, out, out_stride);
    // SAFETY: installed only in the AVX-512 f32ops table, handed out only after the features
    // were detected; `hd` matches `NC` in each arm and the lengths were checked.
    unsafe {
        match hd {
            64 => attn_scores_f16_impl::<4>(q, k, g, rows, out, out_stride),
            128 => attn_scores_f16_impl::<8>(q, k, g, rows, out, out_stride),
            256 => attn_scores_f16_impl::<16>(q, k, g, rows, out, out_stride),
            _ => crate::f32ops::attn_scores_f16_ref(q, k, hd, out, out_stride),
        }
    }
}

/// Weighted sum of value rows for up to `J` heads at once, 64 columns at a time: the `J × 4`
/// accumulators stay in registers over all rows, each row widened once for all heads.
///
/// # Safety
/// The CPU must support AVX-512 F; `hd % 64 == 0`, `j0 + J <= g`, and the lengths were checked
/// by `check_values`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn attn_values_f16_impl<const J: usize>(
    p: &[f32],
    p_stride: usize,
    v: &[u16],
    hd: usize,
    rows: usize,
    j0: usize,
    out: &mut [f32],
) {
    for d0 in (0..hd).step_by(64) {
        // Head j0 + jj of `out` holds `hd` values and row i of `v` holds `hd` halves (checked by
        // `check_values`; `d0 + 64 <= hd`), so every access below is in bounds.
        let mut acc: [[__m512; 4]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); unaligned load.
            core::array::from_fn(|c| unsafe {
                _mm512_loadu_ps(out.as_ptr().add((j0 + jj) * hd + d0 + 16 * c))
            })
        });
        for i in 0..rows {
            // SAFETY: in bounds (above); unaligned load.
            let vv: [__m512; 4] = core::array::from_fn(|c| unsafe {
                _mm512_cvtph_ps(_mm256_loadu_si256(
                    v.as_ptr().add(i * hd + d0 + 16 * c).cast(),
                ))
            });
            for (jj, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(p[(j0 + jj) * p_stride + i]);
                for (ac, vc) in a.iter_mut().zip(&vv) {
                    *ac = _mm512_fmadd_ps(w, *vc, *ac);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); unaligned store.
                unsafe {
                    _mm512_storeu_ps(out.as_mut_ptr().add((j0 + jj) * hd + d0 + 16 * c), *ac)
                };
            }
        }
    }
}

/// AVX-512 [`crate::f32ops::attn_values_f16_ref`]: head sizes that are multiples of 64 through
/// the fused kernel (heads four at a time), others through the reference.
pub(crate) fn attn_values_f16_avx512(
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
        let jn = (g - j0).min(4);
        // SAFETY: installed only in the AVX-512 f32ops table, handed out only after the
        // features were detected; `hd % 64 == 0`, `j0 + jn <= g`, lengths checked.
        unsafe {
            match jn {
                4 => attn_values_f16_impl::<4>(p, p_stride, v, hd, rows, j0, out),
                3 => attn_values_f16_impl::<3>(p, p_stride, v, hd, rows, j0, out),
                2 => attn_values_f16_impl::<2>(p, p_stride, v, hd, rows, j0, out),
                _ => attn_values_f16_impl::<1>(p, p_stride, v, hd, rows, j0, out),
            }
        }
        j0 += jn;
    }
}

/// A Q8_0 (`Q4 = false`) or Q4_0 block's 32 values `d·q`, exact, as two vectors.
///
/// # Safety
/// The CPU must support AVX-512 F and F16C; `blk` points at a whole block (34 or 18 bytes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn block_values<const Q4: bool>(blk: *const u8) -> [__m512; 2] {
    // SAFETY: the block starts with its f16 scale (unaligned read), then 32 signed bytes or 16
    // bytes of nibbles, all within the block (caller).
    unsafe {
        let d = _mm512_cvtph_ps(_mm256_set1_epi16(blk.cast::<i16>().read_unaligned()));
        let (q0, q1) = if Q4 {
            let raw = _mm512_cvtepu8_epi32(_mm_loadu_si128(blk.add(2).cast()));
            let eight = _mm512_set1_epi32(8);
            (
                _mm512_sub_epi32(_mm512_and_si512(raw, _mm512_set1_epi32(15)), eight),
                _mm512_sub_epi32(_mm512_srli_epi32::<4>(raw), eight),
            )
        } else {
            (
                _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(2).cast())),
                _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(18).cast())),
            )
        };
        [
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0)),
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1)),
        ]
    }
}

/// The sums of the lanes of 16 vectors, as one vector: lane `r` is the sum of `v[r]`'s lanes.
/// A tree of shuffles and adds (4 levels, 30 instructions for 16 sums instead of a reduction
/// each); every lane's sum is added in the same order, whichever its place, so a key's score
/// does not depend on which group of 16 it falls in.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn reduce16(v: &[__m512; 16]) -> __m512 {
    // Within each 128-bit chunk: lanes (0, 2) and (1, 3) of two vectors, interleaved.
    let l1: [__m512; 8] = core::array::from_fn(|p| {
        let (a, b) = (v[2 * p], v[2 * p + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    // Within each chunk: the two pairs, so that a chunk holds one sum of four vectors.
    let l2: [__m512; 4] = core::array::from_fn(|p| {
        let (a, b) = (_mm512_castps_pd(l1[2 * p]), _mm512_castps_pd(l1[2 * p + 1]));
        _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        )
    });
    // Chunks 0 + 1 and 2 + 3, of two vectors at a time.
    let pairs = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    let l3 = [pairs(l2[0], l2[1]), pairs(l2[2], l2[3])];
    pairs(l3[0], l3[1])
}

/// Scores of all query heads against Q8_0 or Q4_0 key rows of `NC` vectors (`NC / 2` blocks),
/// 16 keys at a time: the keys are expanded once (exactly) for all heads, each head's 16 dot
/// products are reduced together ([`reduce16`]) and stored as one vector.
///
/// # Safety
/// The CPU must support AVX-512 F, AVX2, FMA and F16C; `hd == 16 * NC`, and the lengths were
/// checked by `check_scores_quant` with this format's block size.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn attn_scores_quant_impl<const Q4: bool, const NC: usize>(
    q: &[f32],
    k: &[u8],
    g: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (hd, row_bytes) = (16 * NC, NC / 2 * bb);
    let mut keys = [[_mm512_setzero_ps(); NC]; 16];
    for i0 in (0..rows).step_by(16) {
        let n = (rows - i0).min(16);
        for (r, key) in keys.iter_mut().enumerate() {
            for b in 0..NC / 2 {
                [key[2 * b], key[2 * b + 1]] = if r < n {
                    // SAFETY: row i0 + r < rows holds `NC / 2` whole blocks (checked).
                    unsafe { block_values::<Q4>(k.as_ptr().add((i0 + r) * row_bytes + b * bb)) }
                } else {
                    [_mm512_setzero_ps(); 2]
                };
            }
        }
        let mask: __mmask16 = if n == 16 { !0 } else { (1 << n) - 1 };
        for j in 0..g {
            // SAFETY: head j of `q` holds `hd` values (checked); unaligned loads.
            let qj: [__m512; NC] = core::array::from_fn(|c| unsafe {
                _mm512_loadu_ps(q.as_ptr().add(j * hd + 16 * c))
            });
            let acc: [__m512; 16] = core::array::from_fn(|r| {
                let mut a = _mm512_setzero_ps();
                for (qc, kc) in qj.iter().zip(&keys[r]) {
                    a = _mm512_fmadd_ps(*qc, *kc, a);
                }
                a
            });
            // SAFETY: scores j·out_stride + i0 .. + n are within `out` (checked: i0 + n <= rows
            // <= out_stride); the masked store writes only those.
            unsafe {
                _mm512_mask_storeu_ps(
                    out.as_mut_ptr().add(j * out_stride + i0),
                    mask,
                    reduce16(&acc),
                )
            };
        }
    }
}

/// [`attn_scores_quant_impl`] for the head sizes 32–256 (any whole number of blocks), the
/// reference beyond.
fn attn_scores_quant_avx512<const Q4: bool>(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (g, rows) = crate::f32ops::check_scores_quant(q, k, bb, hd, out, out_stride);
    let f = match hd {
        32 => attn_scores_quant_impl::<Q4, 2>,
        64 => attn_scores_quant_impl::<Q4, 4>,
        96 => attn_scores_quant_impl::<Q4, 6>,
        128 => attn_scores_quant_impl::<Q4, 8>,
        160 => attn_scores_quant_impl::<Q4, 10>,
        192 => attn_scores_quant_impl::<Q4, 12>,
        224 => attn_scores_quant_impl::<Q4, 14>,
        256 => attn_scores_quant_impl::<Q4, 16>,
        _ if Q4 => return crate::f32ops::attn_scores_q4_0_ref(q, k, hd, out, out_stride),
        _ => return crate::f32ops::attn_scores_q8_0_ref(q, k, hd, out, out_stride),
    };
    // SAFETY: installed only in the AVX-512 f32ops table, handed out only after the features
    // were detected; `hd` matches `NC` in each arm and the lengths were checked.
    unsafe { f(q, k, g, rows, out, out_stride) }
}

/// AVX-512 [`crate::f32ops::attn_scores_q8_0_ref`].
pub(crate) fn attn_scores_q8_0_avx512(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_avx512::<false>(q, k, hd, out, out_stride);
}

/// [`crate::f32ops::attn_table_scores_ref`]'s loops compiled for AVX-512 (16 lanes; the
/// compiler fuses nothing, so the bits are the reference's).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn attn_table_scores_avx512_impl(
    coef: &[f32],
    width: usize,
    table: &[f32],
    out: &mut [f32],
    stride: usize,
    len: usize,
) {
    crate::f32ops::table_scores_body(coef, width, table, out, stride, len);
}

/// AVX-512 [`crate::f32ops::attn_table_scores_ref`].
pub(crate) fn attn_table_scores_avx512(
    coef: &[f32],
    width: usize,
    table: &[f32],
    out: &mut [f32],
    stride: usize,
    len: usize,
) {
    // SAFETY: installed only in the AVX-512 f32ops table, handed out only after the features
    // were detected.
    unsafe { attn_table_scores_avx512_impl(coef, width, table, out, stride, len) }
}

/// AVX-512 [`crate::f32ops::attn_scores_q4_0_ref`].
pub(crate) fn attn_scores_q4_0_avx512(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_avx512::<true>(q, k, hd, out, out_stride);
}

/// Weighted sum of Q8_0 or Q4_0 value rows for up to `J` (≤ 8) heads at once, one block (32
/// columns) at a time: the `J × 2` accumulators stay in registers over all rows, and each block
/// is expanded once for all heads.
///
/// # Safety
/// The CPU must support AVX-512 F, AVX2, FMA and F16C; `j0 + J <= g`, and the lengths were
/// checked by `check_values_quant` with this format's block size.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
    for b in 0..hd / 32 {
        // Head j0 + jj of `out` holds `hd` values and `v` holds `rows` rows of `hd / 32` blocks
        // (checked), so every access below is in bounds.
        let mut acc: [[__m512; 2]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); unaligned load.
            core::array::from_fn(|c| unsafe {
                _mm512_loadu_ps(out.as_ptr().add((j0 + jj) * hd + 32 * b + 16 * c))
            })
        });
        for i in 0..rows {
            // SAFETY: block b of row i is in bounds (above).
            let x = unsafe { block_values::<Q4>(v.as_ptr().add(i * row_bytes + b * bb)) };
            for (a, pw) in acc.iter_mut().zip(&pj) {
                let w = _mm512_set1_ps(pw[i]);
                a[0] = _mm512_fmadd_ps(w, x[0], a[0]);
                a[1] = _mm512_fmadd_ps(w, x[1], a[1]);
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); unaligned store.
                unsafe {
                    _mm512_storeu_ps(out.as_mut_ptr().add((j0 + jj) * hd + 32 * b + 16 * c), *ac)
                };
            }
        }
    }
}

/// [`attn_values_quant_impl`] for all heads, eight at a time.
fn attn_values_quant_avx512<const Q4: bool>(
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
        let jn = (g - j0).min(8);
        // SAFETY: installed only in the AVX-512 f32ops table, handed out only after the
        // features were detected; `j0 + jn <= g` and the lengths were checked.
        unsafe {
            let f = match jn {
                8 => attn_values_quant_impl::<Q4, 8>,
                7 => attn_values_quant_impl::<Q4, 7>,
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

/// AVX-512 [`crate::f32ops::attn_values_q8_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q8_0_avx512(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_avx512::<false>(p, p_stride, v, hd, out);
}

/// AVX-512 [`crate::f32ops::attn_values_q4_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q4_0_avx512(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_avx512::<true>(p, p_stride, v, hd, out);
}

macro_rules! bytes_wrapper {
    ($name:ident, $kernel:ident, $bx:ty, $by:ty) => {
        #[doc = concat!("[`", stringify!($kernel), "`] on raw bytes, for the dispatch table.")]
        pub(crate) fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let (x, y) = (blocks::<$bx>(x), blocks::<$by>(y));
            // SAFETY: installed only in the AVX-512 dispatch table, which is handed out only
            // after AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C were detected.
            unsafe { $kernel(n, x, y) }
        }
    };
}

bytes_wrapper!(
    vec_dot_q4_0_q8_0_avx512_bytes,
    vec_dot_q4_0_q8_0_avx512,
    BlockQ4_0,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_q5_0_q8_0_avx512_bytes,
    vec_dot_q5_0_q8_0_avx512,
    BlockQ5_0,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_iq4_nl_q8_0_avx512_bytes,
    vec_dot_iq4_nl_q8_0_avx512,
    BlockIQ4NL,
    BlockQ8_0
);
bytes_wrapper!(
    vec_dot_q4_k_q8_k_avx512_bytes,
    vec_dot_q4_k_q8_k_avx512,
    BlockQ4K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q6_k_q8_k_avx512_bytes,
    vec_dot_q6_k_q8_k_avx512,
    BlockQ6K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q2_k_q8_k_avx512_bytes,
    vec_dot_q2_k_q8_k_avx512,
    BlockQ2K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q3_k_q8_k_avx512_bytes,
    vec_dot_q3_k_q8_k_avx512,
    BlockQ3K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_q8_k_q8_k_avx512_bytes,
    vec_dot_q8_k_q8_k_avx512,
    BlockQ8K,
    BlockQ8K
);
bytes_wrapper!(
    vec_dot_bf16_bf16_avx512_bytes,
    vec_dot_bf16_bf16_avx512,
    BlockBF16,
    BlockBF16
);
bytes_wrapper!(
    vec_dot_q5_1_q8_1_avx512_bytes,
    vec_dot_q5_1_q8_1_avx512,
    BlockQ5_1,
    BlockQ8_1
);

// ---------------------------------------------------------------------------------------------
// Decode kernels of the Q8_0-partner formats on the prepared column

/// Pair `p` of a column prepared by [`crate::panel`] (per block 32 quants, then `d` and `s` as
/// f32): the 64 quants as [`q8_pair`] loads them, and `[d_0, d_1, 0, 0]`.
///
/// # Safety
/// `y` must hold at least `2 * p + 2` prepared blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn prepared_pair(y: &[u8], p: usize) -> (__m512i, __m128) {
    use crate::panel::COL_BLOCK;
    // SAFETY: blocks 2p and 2p + 1 lie inside `y` by the contract; unaligned loads.
    unsafe {
        let ptr = y.as_ptr().add(2 * p * COL_BLOCK);
        let qa = _mm512_broadcast_i64x4(_mm256_loadu_si256(ptr.cast()));
        let qb = _mm512_broadcast_i64x4(_mm256_loadu_si256(ptr.add(COL_BLOCK).cast()));
        let d0 = ptr.add(32).cast::<f32>().read_unaligned();
        let d1 = ptr.add(COL_BLOCK + 32).cast::<f32>().read_unaligned();
        (
            _mm512_mask_blend_epi64(0xf0, qa, qb),
            _mm_setr_ps(d0, d1, 0.0, 0.0),
        )
    }
}

/// The Q8_0 block a prepared block came from (its scale is an f16 value, so narrowing it back
/// is exact): for the odd last block, which the kernels hand to the AVX2 code.
fn prepared_q8_0_block(y: &[u8], b: usize) -> BlockQ8_0 {
    use crate::panel::COL_BLOCK;
    let blk = &y[b * COL_BLOCK..][..COL_BLOCK];
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(&blk[..32]) {
        *q = v as i8;
    }
    let d = f32::from_le_bytes([blk[32], blk[33], blk[34], blk[35]]);
    BlockQ8_0 {
        d: crate::num::f32_to_f16(d),
        qs,
    }
}

/// Matrix-vector kernels of a Q8_0-partner format on the prepared column: `out[r]` is, bit for
/// bit, the format's AVX-512 `vec_dot` of row `r` with the Q8_0 column the preparation came
/// from — the same integer pair sums, scale products, `fma` order, reduction and AVX2 tail —
/// but with [`ROWS`] rows interleaved (independent accumulator chains; the column's pair and
/// any term that depends on it alone loaded or computed once for all of them) and the column's
/// scales read already widened.
macro_rules! signed_matvec {
    (
        $(#[$doc:meta])* $name:ident, $bytes:ident, $block:ty, $bb:literal, $tail:ident,
        |$bx:ident, $qy:ident, $ycommon:ident| $common:expr, $sumi:expr
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `x` holds
        /// `out.len()` rows of `nb` blocks and `y` `nb` prepared blocks (checked by the wrapper).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $name(nb: usize, x: &[$block], y: &[u8], out: &mut [f32]) {
            let pairs = nb / 2;
            let tail = (nb % 2 == 1).then(|| prepared_q8_0_block(y, nb - 1));
            let mut rows = out.chunks_exact_mut(ROWS);
            let mut r0 = 0;
            for o in &mut rows {
                // The rows `PREFETCH_GROUPS` groups ahead, a few cache lines per pair: the
                // hardware prefetchers stop at page boundaries, a streaming decode step should
                // not (see `crate::prefetch::Spread`).
                let ahead = (r0 + PREFETCH_GROUPS * ROWS) * nb;
                let next = x.get(ahead..(ahead + ROWS * nb).min(x.len())).unwrap_or(&[]);
                let mut next = crate::prefetch::Spread::new(crate::block_bytes(next), pairs);
                let mut acc = [_mm512_setzero_ps(); ROWS];
                for p in 0..pairs {
                    next.step();
                    // SAFETY: `y` holds `nb` prepared blocks, pair p is inside.
                    let ($qy, dy) = unsafe { prepared_pair(y, p) };
                    let $ycommon = $common;
                    for (i, a) in acc.iter_mut().enumerate() {
                        let $bx = &x[(r0 + i) * nb + 2 * p..][..2];
                        let sumi = $sumi;
                        let d = _mm_mul_ps(f16x4_to_f32($bx[0].d, $bx[1].d, [0; 2], [0; 2]), dy);
                        *a = _mm512_fmadd_ps(spread_two(d, 0, 1), _mm512_cvtepi32_ps(sumi), *a);
                    }
                }
                for (i, (o, a)) in o.iter_mut().zip(acc).enumerate() {
                    let mut sum = _mm512_reduce_add_ps(a);
                    if let Some(last) = &tail {
                        let row = &x[(r0 + i) * nb + nb - 1..][..1];
                        // SAFETY: this function's own preconditions include AVX2, FMA, F16C.
                        sum += unsafe { $tail(32, row, core::slice::from_ref(last)) };
                    }
                    *o = sum;
                }
                r0 += ROWS;
            }
            for (i, o) in rows.into_remainder().iter_mut().enumerate() {
                let r = r0 + i;
                let mut acc = _mm512_setzero_ps();
                for p in 0..pairs {
                    // SAFETY: as above.
                    let ($qy, dy) = unsafe { prepared_pair(y, p) };
                    let $ycommon = $common;
                    let $bx = &x[r * nb + 2 * p..][..2];
                    let sumi = $sumi;
                    let d = _mm_mul_ps(f16x4_to_f32($bx[0].d, $bx[1].d, [0; 2], [0; 2]), dy);
                    acc = _mm512_fmadd_ps(spread_two(d, 0, 1), _mm512_cvtepi32_ps(sumi), acc);
                }
                let mut sum = _mm512_reduce_add_ps(acc);
                if let Some(last) = &tail {
                    // SAFETY: as above.
                    sum += unsafe { $tail(32, &x[r * nb + nb - 1..][..1], core::slice::from_ref(last)) };
                }
                *o = sum;
            }
        }

        #[doc = concat!("Safe wrapper of [`", stringify!($name), "`] for [`crate::panel::PanelKernels::matvec`].")]
        pub(crate) fn $bytes(n: usize, x: &[u8], y: &[u8], out: &mut [f32]) {
            assert!(n % 32 == 0, "{n} weights are not whole blocks");
            let nb = n / 32;
            assert_eq!(x.len(), out.len() * nb * $bb, "weight rows");
            assert_eq!(y.len(), nb * crate::panel::COL_BLOCK, "prepared column");
            if nb == 0 {
                out.fill(0.0);
                return;
            }
            // SAFETY: lengths checked above; handed out only for a CPU that supports the
            // AVX-512 tier.
            unsafe { $name(nb, blocks::<$block>(x), y, out) }
        }
    };
}

/// Rows interleaved by the signed matrix-vector kernels.
const ROWS: usize = 4;
/// How many row groups ahead the signed matrix-vector kernels prefetch.
const PREFETCH_GROUPS: usize = 2;

signed_matvec!(
    /// Q8_0 rows ([`vec_dot_q8_0_q8_0_avx512`]'s arithmetic) times a prepared column.
    matvec_q8_0_prepared_avx512,
    matvec_q8_0_prepared_avx512_bytes,
    BlockQ8_0,
    34,
    vec_dot_q8_0_q8_0_avx2,
    |bx, qy, _none| (),
    {
        let qx = q8_pair(&bx[0].qs, &bx[1].qs);
        let negative = _mm512_movepi8_mask(qx);
        let qy_signed = _mm512_mask_sub_epi8(qy, negative, _mm512_setzero_si512(), qy);
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(qx), qy_signed)
    }
);

signed_matvec!(
    /// Q4_0 rows ([`vec_dot_q4_0_q8_0_avx512`]'s arithmetic) times a prepared column.
    matvec_q4_0_prepared_avx512,
    matvec_q4_0_prepared_avx512_bytes,
    BlockQ4_0,
    18,
    vec_dot_q4_0_q8_0_avx2,
    |bx, qy, eights| _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), qy),
    {
        let qx = nibbles_64(&bx[0].qs, &bx[1].qs);
        _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy), eights)
    }
);

signed_matvec!(
    /// Q5_0 rows ([`vec_dot_q5_0_q8_0_avx512`]'s arithmetic) times a prepared column.
    matvec_q5_0_prepared_avx512,
    matvec_q5_0_prepared_avx512_bytes,
    BlockQ5_0,
    22,
    vec_dot_q5_0_q8_0_avx2,
    |bx, qy, sixteens| _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(16), qy),
    {
        let bits = u64::from(u32::from_le_bytes(bx[0].qh))
            | (u64::from(u32::from_le_bytes(bx[1].qh)) << 32);
        let nib = nibbles_64(&bx[0].qs, &bx[1].qs);
        let qx = _mm512_mask_add_epi8(nib, bits, nib, _mm512_set1_epi8(16));
        _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy), sixteens)
    }
);

crate::x86_avx2::k_matvec!(
    /// Q4_K rows ([`vec_dot_q4_k_q8_k_avx512`]) times a prepared column.
    matvec_q4_k_prepared_avx512,
    matvec_q4_k_prepared_avx512_bytes,
    BlockQ4K,
    q4_k_q8_k_avx512_hooked,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);
crate::x86_avx2::k_matvec!(
    /// Q6_K rows ([`vec_dot_q6_k_q8_k_avx512`]) times a prepared column.
    matvec_q6_k_prepared_avx512,
    matvec_q6_k_prepared_avx512_bytes,
    BlockQ6K,
    q6_k_q8_k_avx512_hooked,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);

// ---------------------------------------------------------------------------------------------
// Activation quantization: Q8_K

/// [`crate::kquants::quantize_row_q8_k`] with AVX-512, byte for byte, as
/// [`crate::x86_avx2::quantize_row_q8_k_avx2`] with 16 values per register: `vmaxps` skipping
/// NaNs for the largest magnitude, `vcmpps` into a mask for its first occurrence, the scalar's
/// rounding steps, `vpmovdb` (truncation, the scalar's `as i8`) for the quants; the sums of 16
/// by `vpmaddubsw`/`vpmaddwd` with ones (one group per 128-bit lane), a 4 × 4 transpose by
/// unpacks, a `vpermd` into group order and `vpmovdw` (the scalar's `as i16`).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row_q8_k_avx512(x: &[f32], out: &mut [BlockQ8K]) {
    crate::block::check_quantize(x, out);
    let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
    let abs = |v: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let p = xb.as_ptr();
        // SAFETY: `xb` holds QK_K = 256 values, so every load of 16 at `16 k` (k < 16) is
        // inside; unaligned loads.
        let amax = unsafe {
            let mut m = [_mm512_setzero_ps(); 4];
            for k in 0..4 {
                for (a, mv) in m.iter_mut().enumerate() {
                    // The running maximum is the second operand: returned for a NaN value.
                    *mv = _mm512_max_ps(abs(_mm512_loadu_ps(p.add(64 * k + 16 * a))), *mv);
                }
            }
            let m = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
            let m = _mm256_max_ps(
                _mm512_castps512_ps256(m),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(m))),
            );
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
            let target = _mm512_set1_ps(amax);
            let mut at = 0;
            for k in 0..QK_K / 16 {
                let v = abs(_mm512_loadu_ps(p.add(16 * k)));
                let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, target);
                if hit != 0 {
                    at = 16 * k + hit.trailing_zeros() as usize;
                    break;
                }
            }
            at
        };
        let iscale = -127.0 / xb[first];
        // SAFETY: the loads read `xb` (256 values) and the stores write `b.qs` (256 bytes) and
        // `b.bsums` (32 bytes); unaligned loads and stores.
        unsafe {
            let scale = _mm512_set1_ps(iscale);
            let magic = _mm512_set1_ps(crate::x86_avx2::ROUND_MAGIC);
            let mantissa = _mm512_set1_epi32(0x007f_ffff);
            let half = _mm512_set1_epi32(0x0040_0000);
            let top = _mm512_set1_epi32(127);
            let q = b.qs.as_mut_ptr();
            for k in 0..QK_K / 16 {
                let v = _mm512_loadu_ps(p.add(16 * k));
                let t = _mm512_add_ps(_mm512_mul_ps(scale, v), magic);
                let i = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(t), mantissa), half);
                let bytes = _mm512_cvtepi32_epi8(_mm512_min_epi32(i, top));
                _mm_storeu_si128(q.add(16 * k).cast(), bytes);
            }
            // Per 64 quants (four groups, one per 128-bit lane), four sums of four.
            let ones8 = _mm512_set1_epi8(1);
            let ones16 = _mm512_set1_epi16(1);
            let s: [__m512i; 4] = core::array::from_fn(|j| {
                let v = _mm512_loadu_si512(q.add(64 * j).cast());
                _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, v), ones16)
            });
            // Lane l of `t` holds [g_l, g_4+l, g_8+l, g_12+l].
            let ab = _mm512_add_epi32(
                _mm512_unpacklo_epi32(s[0], s[1]),
                _mm512_unpackhi_epi32(s[0], s[1]),
            );
            let cd = _mm512_add_epi32(
                _mm512_unpacklo_epi32(s[2], s[3]),
                _mm512_unpackhi_epi32(s[2], s[3]),
            );
            let t = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
            let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            let sums = _mm512_cvtepi32_epi16(_mm512_permutexvar_epi32(order, t));
            _mm256_storeu_si256(b.bsums.as_mut_ptr().cast(), sums);
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// [`quantize_row_q8_k_avx512`] on raw bytes, for the dispatch table and the k-quant panels.
pub(crate) fn quantize_row_q8_k_avx512_bytes(x: &[f32], out: &mut [u8]) {
    let out = crate::traits::blocks_mut::<BlockQ8K>(out);
    // SAFETY: installed only in the table and panel kernels of the AVX-512 tier, handed out
    // only after detecting all of its features.
    unsafe { quantize_row_q8_k_avx512(x, out) }
}
