//! Multi-column dot-product kernels for x86-64: one weight row against up to four activation
//! columns at once, for [`crate::matrix`]'s matrix-matrix products (batched prefill).
//!
//! Each kernel loads and unpacks a weight block once and reuses it for every column, and keeps
//! one accumulator per column that receives exactly the operations, in exactly the order, of
//! the single-column kernel it is paired with in [`crate::dispatch`] (same instructions, same
//! lane layout of the integer sums, same f32 rounding steps, same final reduction). Integer
//! block sums are exact, so only the f32 steps have to be mirrored; the result per column is
//! then bit for bit that single-column kernel's (`tests/matrix.rs` checks every pair). Pairs:
//!
//! | format | AVX2 tier                      | AVX-512 tier                     |
//! |--------|--------------------------------|----------------------------------|
//! | Q8_0   | `x86_avx2` Q8_0 kernel         | `x86_avx512` Q8_0 kernel (VNNI)  |
//! | Q4_1   | `x86_avx2` Q4_1 kernel         | `x86_avx512` Q4_1 kernel (VNNI)  |
//! | Q4_K   | `x86_avx2` Q4_K kernel         | same as AVX2                     |
//! | Q6_K   | `x86_avx2` Q6_K kernel         | same as AVX2                     |
//! | Q5_0   | the scalar reference (AVX2 integer sums, ggml's scalar f32 order) | same as AVX2 |
//!
//! Like the single-column kernels, these are `unsafe fn`s with `#[target_feature]`, reached only
//! through the safe `_bytes` wrappers installed in the dispatch tables of tiers that require
//! those features. Columns come in groups of four; the last one to three columns go through the
//! one-column instance of the same kernel. No kernel has a weight tail: rows are whole blocks.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::{GgmlBlock, check_dot};
use crate::kquants::{BlockQ4K, BlockQ6K, BlockQ8K, QK_K, k4_scales_mins};
use crate::legacy::{BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1, vec_dot_q5_0_q8_0_scalar};
use crate::traits::blocks;
use crate::x86_avx2::{f16x2_to_f32, hsum_f32x8, vec_dot_q4_1_q8_1_avx2, vec_dot_q8_0_q8_0_avx2};

/// Columns per kernel call.
const GROUP: usize = 4;

/// Calls `kernel` on the columns of `ys` in groups of [`GROUP`], then one by one, and stores the
/// results in `out` (one per column). Column `j` is `ys[j * y_stride..]`, `n` values long.
#[inline(always)]
fn by_groups<X: GgmlBlock>(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
    group: impl Fn(&[X], [&[X::VecDot]; GROUP]) -> [f32; GROUP],
    single: impl Fn(&[X], [&[X::VecDot]; 1]) -> [f32; 1],
) {
    let x = blocks::<X>(x);
    let y_bytes = n / <X::VecDot as GgmlBlock>::WEIGHTS * core::mem::size_of::<X::VecDot>();
    let col = |j: usize| blocks::<X::VecDot>(&ys[j * y_stride..j * y_stride + y_bytes]);
    let mut j = 0;
    while j + GROUP <= out.len() {
        let r = group(x, [col(j), col(j + 1), col(j + 2), col(j + 3)]);
        out[j..j + GROUP].copy_from_slice(&r);
        j += GROUP;
    }
    while j < out.len() {
        out[j] = single(x, [col(j)])[0];
        j += 1;
    }
}

/// Checks every column against `x` (as the single-column kernels do) and returns the block
/// count with `x` and every column cut to exactly that many blocks, so that indexing them by a
/// block number below it needs no bounds check.
#[inline(always)]
fn check_all<'a, X: GgmlBlock, const C: usize>(
    n: usize,
    x: &'a [X],
    ys: [&'a [X::VecDot]; C],
) -> (usize, &'a [X], [&'a [X::VecDot]; C]) {
    let mut nb = n / X::WEIGHTS;
    for y in ys {
        nb = check_dot(n, x, y);
    }
    (nb, &x[..nb], ys.map(|y| &y[..nb]))
}

// ---------------------------------------------------------------------------------------------
// AVX2 helpers (the same instructions as `x86_avx2`'s, so the integer lanes match)

/// Sum of the 32 products of unsigned `x` and signed `y` bytes as eight i32 lanes in f32, each
/// lane the four products of its four bytes (`maddubs` pairs, `madd` by one).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// # Safety
/// `p` must be valid for reading 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

// ---------------------------------------------------------------------------------------------
// Q8_0 · Q8_0, AVX2

/// `C` columns of `vec_dot_q8_0_q8_0_avx2`: `|q_x|` once per block, `q_y` signed by `q_x` per
/// column, `d_x·d_y` per column, one 8-lane FMA accumulator per column.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_0_avx2<const C: usize>(
    n: usize,
    x: &[BlockQ8_0],
    ys: [&[BlockQ8_0]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let mut acc = [_mm256_setzero_ps(); C];
    for i in 0..nb {
        let bx = &x[i];
        // SAFETY: `qs` is a 32-byte array.
        let qx = unsafe { load32(bx.qs.as_ptr()) };
        let ax = _mm256_sign_epi8(qx, qx);
        let dx = f16x2_to_f32(bx.d, [0; 2]);
        for c in 0..C {
            let by = &ys[c][i];
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(by.qs.as_ptr()) };
            let sumi = dot_u8_i8(ax, _mm256_sign_epi8(qy, qx));
            let d = _mm_mul_ps(dx, f16x2_to_f32(by.d, [0; 2]));
            acc[c] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), sumi, acc[c]);
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = hsum_f32x8(acc[c]);
    }
    out
}

/// Q8_0 weights against several Q8_0 columns; pairs with `vec_dot_q8_0_q8_0_avx2_bytes`.
pub(crate) fn vec_dot_multi_q8_0_q8_0_avx2_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ8_0>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: installed only in the dispatch tables of tiers that require AVX2, FMA and F16C,
        // which are handed out only after detecting them.
        |x, ys| unsafe { q8_0_q8_0_avx2(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q8_0_q8_0_avx2(n, x, ys) },
    );
}

// ---------------------------------------------------------------------------------------------
// Q4_1 · Q8_1, AVX2

/// `C` columns of `vec_dot_q4_1_q8_1_avx2`: nibbles unpacked once per block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_q8_1_avx2<const C: usize>(
    n: usize,
    x: &[BlockQ4_1],
    ys: [&[BlockQ8_1]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); C];
    let mut acc_ms = [_mm_setzero_ps(); C];
    for i in 0..nb {
        let bx = &x[i];
        // SAFETY: `qs` is a 16-byte array; `loadu` has no alignment requirement.
        let q4 = unsafe { _mm_loadu_si128(bx.qs.as_ptr().cast()) };
        let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q4), q4), low_nibbles);
        let dmx = f16x2_to_f32(bx.d, bx.m);
        for c in 0..C {
            let by = &ys[c][i];
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(by.qs.as_ptr()) };
            let sumi = dot_u8_i8(qx, qy);
            let dm = _mm_mul_ps(dmx, f16x2_to_f32(by.d, by.s));
            acc[c] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), sumi, acc[c]);
            acc_ms[c] = _mm_add_ps(acc_ms[c], dm);
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = hsum_f32x8(acc[c]) + _mm_cvtss_f32(_mm_movehdup_ps(acc_ms[c]));
    }
    out
}

/// Q4_1 weights against several Q8_1 columns; pairs with `vec_dot_q4_1_q8_1_avx2_bytes`.
pub(crate) fn vec_dot_multi_q4_1_q8_1_avx2_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ4_1>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: as for `vec_dot_multi_q8_0_q8_0_avx2_bytes`.
        |x, ys| unsafe { q4_1_q8_1_avx2(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q4_1_q8_1_avx2(n, x, ys) },
    );
}

// ---------------------------------------------------------------------------------------------
// Q4_K · Q8_K, AVX2

/// `C` columns of `vec_dot_q4_k_q8_k_avx2`: scales, minimums and nibbles unpacked once per
/// block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_q8_k_avx2<const C: usize>(
    n: usize,
    x: &[BlockQ4K],
    ys: [&[BlockQ8K]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); C];
    let mut acc_min = [0f32; C];
    for i in 0..nb {
        let bx = &x[i];
        let (scales, mins) = k4_scales_mins(&bx.scales);
        let mut sumi = [_mm256_setzero_si256(); C];
        for g in 0..QK_K / 64 {
            // SAFETY: `32 * g + 32 <= 128`, the length of `qs`.
            let q4 = unsafe { load32(bx.qs.as_ptr().add(32 * g).cast()) };
            let lo = _mm256_and_si256(q4, low_nibbles);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), low_nibbles);
            let s0 = _mm256_set1_epi16(i16::from(scales[2 * g]));
            let s1 = _mm256_set1_epi16(i16::from(scales[2 * g + 1]));
            for c in 0..C {
                let yq = ys[c][i].qs.as_ptr();
                // SAFETY: `64 * g + 64 <= 256`, the length of `qs`.
                let (y0, y1) = unsafe { (load32(yq.add(64 * g)), load32(yq.add(64 * g + 32))) };
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(p0, p1));
            }
        }
        let dx = f16x2_to_f32(bx.d, bx.dmin);
        for c in 0..C {
            let by = &ys[c][i];
            let summin: i32 = (0..QK_K / 16)
                .map(|j| i32::from(by.bsum(j)) * i32::from(mins[j / 2]))
                .sum();
            let d = _mm_mul_ps(dx, _mm_set1_ps(by.scale()));
            acc[c] = _mm256_fmadd_ps(
                _mm256_broadcastss_ps(d),
                _mm256_cvtepi32_ps(sumi[c]),
                acc[c],
            );
            acc_min[c] += _mm_cvtss_f32(_mm_movehdup_ps(d)) * summin as f32;
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = hsum_f32x8(acc[c]) - acc_min[c];
    }
    out
}

/// Q4_K weights against several Q8_K columns; pairs with `vec_dot_q4_k_q8_k_avx2_bytes`.
pub(crate) fn vec_dot_multi_q4_k_q8_k_avx2_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ4K>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: as for `vec_dot_multi_q8_0_q8_0_avx2_bytes`.
        |x, ys| unsafe { q4_k_q8_k_avx2(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q4_k_q8_k_avx2(n, x, ys) },
    );
}

// ---------------------------------------------------------------------------------------------
// Q6_K · Q8_K, AVX2

/// `C` columns of `vec_dot_q6_k_q8_k_avx2`: the 6-bit quants rebuilt once per block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_q8_k_avx2<const C: usize>(
    n: usize,
    x: &[BlockQ6K],
    ys: [&[BlockQ8K]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let m4 = _mm256_set1_epi8(0x0f);
    let m32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); C];
    for i in 0..nb {
        let bx = &x[i];
        let mut sumi = [_mm256_setzero_si256(); C];
        for h in 0..2 {
            // SAFETY: the offsets keep the loads inside `ql` (128 bytes) and `qh` (64 bytes).
            let (ql0, ql1, qh) = unsafe {
                (
                    load32(bx.ql.as_ptr().add(64 * h).cast()),
                    load32(bx.ql.as_ptr().add(64 * h + 32).cast()),
                    load32(bx.qh.as_ptr().add(32 * h).cast()),
                )
            };
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
            let mut sc = [_mm256_setzero_si256(); 4];
            for (k, s) in sc.iter_mut().enumerate() {
                let c = 8 * h + 2 * k;
                *s = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(bx.scales[c + 1])),
                    _mm_set1_epi16(i16::from(bx.scales[c])),
                );
            }
            for c in 0..C {
                let yp = ys[c][i].qs.as_ptr();
                for k in 0..4 {
                    // SAFETY: `128 * h + 32 * k + 32 <= 256`, the length of `qs`.
                    let yk = unsafe { load32(yp.add(128 * h + 32 * k)) };
                    let pairs = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(qs[k], yk),
                        _mm256_maddubs_epi16(m32, yk),
                    );
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(pairs, sc[k]));
                }
            }
        }
        let dx = f16x2_to_f32(bx.d, [0; 2]);
        for c in 0..C {
            let d = _mm_mul_ps(dx, _mm_set1_ps(ys[c][i].scale()));
            acc[c] = _mm256_fmadd_ps(
                _mm256_broadcastss_ps(d),
                _mm256_cvtepi32_ps(sumi[c]),
                acc[c],
            );
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = hsum_f32x8(acc[c]);
    }
    out
}

/// Q6_K weights against several Q8_K columns; pairs with `vec_dot_q6_k_q8_k_avx2_bytes`.
pub(crate) fn vec_dot_multi_q6_k_q8_k_avx2_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ6K>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: as for `vec_dot_multi_q8_0_q8_0_avx2_bytes`.
        |x, ys| unsafe { q6_k_q8_k_avx2(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q6_k_q8_k_avx2(n, x, ys) },
    );
}

// ---------------------------------------------------------------------------------------------
// Q5_0 · Q8_0, AVX2 integer sums, scalar f32 order

/// The scalar reference on raw bytes: the single-column kernel that
/// [`vec_dot_multi_q5_0_q8_0_avx2_bytes`] reproduces, installed with it as a pair.
pub(crate) fn vec_dot_q5_0_q8_0_scalar_bytes(n: usize, x: &[u8], y: &[u8]) -> f32 {
    vec_dot_q5_0_q8_0_scalar(n, blocks::<BlockQ5_0>(x), blocks::<BlockQ8_0>(y))
}

/// Four columns of `vec_dot_q5_0_q8_0_scalar`: the block sums `Σ (q − 16)·q_y` are computed
/// exactly with AVX2 (`maddubs(q, y) − maddubs(16, y)`, `q` in 0..=31, so no i16 pair sum can
/// saturate for any `q_y`), four columns reduced together, and then accumulated in f32 lane by
/// lane exactly as the scalar loop does: `sumf += (d_x·d_y)·sumi` per block, no FMA.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_q8_0_avx2_x4(n: usize, x: &[BlockQ5_0], ys: [&[BlockQ8_0]; GROUP]) -> [f32; GROUP] {
    let (nb, x, ys) = check_all(n, x, ys);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let m16 = _mm256_set1_epi8(16);
    let ones = _mm256_set1_epi16(1);
    // Byte i of a vector picks byte i / 8 of `qh`, then tests bit i % 8.
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let mut sumf = _mm_setzero_ps();
    for i in 0..nb {
        let bx = &x[i];
        // SAFETY: `qs` is a 16-byte array; `loadu` has no alignment requirement.
        let q4 = unsafe { _mm_loadu_si128(bx.qs.as_ptr().cast()) };
        // Weights 0..16 are the low nibbles, 16..32 the high ones; bit j of `qh` is bit 4 of
        // weight j.
        let lo = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q4), q4), low_nibbles);
        let qh = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(bx.qh)), spread);
        let high = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
        let q = _mm256_or_si256(lo, _mm256_and_si256(high, m16));
        let mut s = [_mm256_setzero_si256(); GROUP];
        for c in 0..GROUP {
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(ys[c][i].qs.as_ptr()) };
            let pairs =
                _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy), _mm256_maddubs_epi16(m16, qy));
            s[c] = _mm256_madd_epi16(pairs, ones);
        }
        // [Σ s0, Σ s1, Σ s2, Σ s3] in i32 (wrapping adds of exact partial sums: exact).
        let h01 = _mm256_hadd_epi32(s[0], s[1]);
        let h23 = _mm256_hadd_epi32(s[2], s[3]);
        let h = _mm256_hadd_epi32(h01, h23);
        let sumi = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        let dy = _mm_cvtph_ps(_mm_setr_epi16(
            i16::from_le_bytes(ys[0][i].d),
            i16::from_le_bytes(ys[1][i].d),
            i16::from_le_bytes(ys[2][i].d),
            i16::from_le_bytes(ys[3][i].d),
            0,
            0,
            0,
            0,
        ));
        let dx = _mm_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes(bx.d)));
        let term = _mm_mul_ps(_mm_mul_ps(dx, dy), _mm_cvtepi32_ps(sumi));
        sumf = _mm_add_ps(sumf, term);
    }
    let mut out = [0f32; GROUP];
    // SAFETY: `out` holds four f32 values; `storeu` has no alignment requirement.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), sumf) };
    out
}

/// Q5_0 weights against several Q8_0 columns; pairs with [`vec_dot_q5_0_q8_0_scalar_bytes`].
pub(crate) fn vec_dot_multi_q5_0_q8_0_avx2_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ5_0>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: as for `vec_dot_multi_q8_0_q8_0_avx2_bytes`.
        |x, ys| unsafe { q5_0_q8_0_avx2_x4(n, x, ys) },
        |x, [y]| [vec_dot_q5_0_q8_0_scalar(n, x, y)],
    );
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI

/// Four little-endian halves widened to f32.
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

/// The 32 quants of two blocks, `a` in the low half.
///
/// # Safety
/// `a` and `b` must be valid for reading 32 bytes each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn load_two(a: *const i8, b: *const i8) -> __m512i {
    // SAFETY: the caller guarantees 32 readable bytes at each pointer.
    unsafe {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(a.cast())),
            _mm256_loadu_si256(b.cast()),
        )
    }
}

/// `C` columns of `vec_dot_q8_0_q8_0_avx512`: two blocks per register, `|q_x|` and the sign
/// mask once per pair, `vpdpbusd` per column, the odd last block through the AVX2 kernel.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_0_q8_0_avx512<const C: usize>(
    n: usize,
    x: &[BlockQ8_0],
    ys: [&[BlockQ8_0]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let mut acc = [_mm512_setzero_ps(); C];
    for p in 0..nb / 2 {
        let (b0, b1) = (&x[2 * p], &x[2 * p + 1]);
        // SAFETY: every `qs` is a 32-byte array.
        let qx = unsafe { load_two(b0.qs.as_ptr(), b1.qs.as_ptr()) };
        let negative = _mm512_movepi8_mask(qx);
        let ax = _mm512_abs_epi8(qx);
        let dx = f16x4_to_f32(b0.d, b1.d, [0; 2], [0; 2]);
        for c in 0..C {
            let (y0, y1) = (&ys[c][2 * p], &ys[c][2 * p + 1]);
            // SAFETY: every `qs` is a 32-byte array.
            let qy = unsafe { load_two(y0.qs.as_ptr(), y1.qs.as_ptr()) };
            let qy_signed = _mm512_mask_sub_epi8(qy, negative, _mm512_setzero_si512(), qy);
            let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, qy_signed);
            let d = _mm_mul_ps(dx, f16x4_to_f32(y0.d, y1.d, [0; 2], [0; 2]));
            acc[c] = _mm512_fmadd_ps(spread_two(d, 0, 1), _mm512_cvtepi32_ps(sumi), acc[c]);
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = _mm512_reduce_add_ps(acc[c]);
        if nb % 2 == 1 {
            let last = nb - 1;
            // SAFETY: this function's preconditions include AVX2, FMA and F16C.
            out[c] += unsafe { vec_dot_q8_0_q8_0_avx2(32, &x[last..nb], &ys[c][last..nb]) };
        }
    }
    out
}

/// Q8_0 weights against several Q8_0 columns; pairs with `vec_dot_q8_0_q8_0_avx512_bytes`.
pub(crate) fn vec_dot_multi_q8_0_q8_0_avx512_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ8_0>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: installed only in the AVX-512 dispatch table, which is handed out only after
        // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C were detected.
        |x, ys| unsafe { q8_0_q8_0_avx512(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q8_0_q8_0_avx512(n, x, ys) },
    );
}

/// `C` columns of `vec_dot_q4_1_q8_1_avx512`: two blocks of nibbles unpacked once per pair.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_1_q8_1_avx512<const C: usize>(
    n: usize,
    x: &[BlockQ4_1],
    ys: [&[BlockQ8_1]; C],
) -> [f32; C] {
    let (nb, x, ys) = check_all(n, x, ys);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); C];
    let mut acc_ms = [_mm_setzero_ps(); C];
    for p in 0..nb / 2 {
        let (b0, b1) = (&x[2 * p], &x[2 * p + 1]);
        // SAFETY: every `qs` of Q4_1 is a 16-byte array; `loadu` has no alignment requirement.
        let (q0, q1) = unsafe {
            (
                _mm_loadu_si128(b0.qs.as_ptr().cast()),
                _mm_loadu_si128(b1.qs.as_ptr().cast()),
            )
        };
        let qx = _mm512_and_si512(
            _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_set_m128i(_mm_srli_epi16::<4>(q0), q0)),
                _mm256_set_m128i(_mm_srli_epi16::<4>(q1), q1),
            ),
            low_nibbles,
        );
        let dmx = f16x4_to_f32(b0.d, b0.m, b1.d, b1.m);
        for c in 0..C {
            let (y0, y1) = (&ys[c][2 * p], &ys[c][2 * p + 1]);
            // SAFETY: every `qs` of Q8_1 is a 32-byte array.
            let qy = unsafe { load_two(y0.qs.as_ptr(), y1.qs.as_ptr()) };
            let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
            let dm = _mm_mul_ps(dmx, f16x4_to_f32(y0.d, y0.s, y1.d, y1.s));
            acc[c] = _mm512_fmadd_ps(spread_two(dm, 0, 2), _mm512_cvtepi32_ps(sumi), acc[c]);
            acc_ms[c] = _mm_add_ps(acc_ms[c], dm);
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        let odd = _mm_movehdup_ps(acc_ms[c]);
        let ms = _mm_add_ss(odd, _mm_movehl_ps(odd, odd));
        out[c] = _mm512_reduce_add_ps(acc[c]) + _mm_cvtss_f32(ms);
        if nb % 2 == 1 {
            let last = nb - 1;
            // SAFETY: this function's preconditions include AVX2, FMA and F16C.
            out[c] += unsafe { vec_dot_q4_1_q8_1_avx2(32, &x[last..nb], &ys[c][last..nb]) };
        }
    }
    out
}

/// Q4_1 weights against several Q8_1 columns; pairs with `vec_dot_q4_1_q8_1_avx512_bytes`.
pub(crate) fn vec_dot_multi_q4_1_q8_1_avx512_bytes(
    n: usize,
    x: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    by_groups::<BlockQ4_1>(
        n,
        x,
        ys,
        y_stride,
        out,
        // SAFETY: as for `vec_dot_multi_q8_0_q8_0_avx512_bytes`.
        |x, ys| unsafe { q4_1_q8_1_avx512(n, x, ys) },
        // SAFETY: as above.
        |x, ys| unsafe { q4_1_q8_1_avx512(n, x, ys) },
    );
}
