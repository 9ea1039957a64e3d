//! AArch64 Advanced SIMD (NEON) kernels of [`crate::f32ops`]: the fused f16 attention kernels
//! ([`crate::f32ops::attn_scores_f16_ref`] and [`crate::f32ops::attn_values_f16_ref`]) and the
//! quantized value sums ([`crate::f32ops::attn_values_q8_0_ref`] and its Q4_0 twin), used by
//! the NEON and dotprod tiers. The other f32 helpers stay portable (LLVM vectorises them to
//! 4-wide NEON code).
//!
//! Halves are widened with `fcvtl`/`fcvtl2` through `asm!` (exact, like `half`'s conversion;
//! the `float16x4_t` intrinsics are not stable Rust), products are accumulated with `fmla`
//! (`vfmaq_f32`). The kernels are `unsafe fn`s with `#[target_feature(enable = "neon")]`,
//! reached only through the safe wrappers installed in the NEON f32ops table, which check the
//! lengths first and is handed out only after NEON was detected.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

/// Eight halves `h[off..off + 8]` widened to f32 (exact): lanes 0–3 and 4–7.
///
/// # Safety
/// `off + 8 <= h.len()` (not checked).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn widen8(h: &[u16], off: usize) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller guarantees 8 readable halves at `off`; `ld1` of u16 needs only the
    // 2-byte alignment a `u16` slice has.
    let v = unsafe { vld1q_u16(h.as_ptr().add(off)) };
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: `fcvtl`/`fcvtl2` (half to single precision) are baseline AArch64 Advanced SIMD;
    // they read and write only the named vector registers.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {v:v}.4h",
            lo = out(vreg) lo,
            v = in(vreg) v,
            options(pure, nomem, nostack, preserves_flags)
        );
        asm!(
            "fcvtl2 {hi:v}.4s, {v:v}.8h",
            hi = out(vreg) hi,
            v = in(vreg) v,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (lo, hi)
}

/// Scores of `J` query heads (from `j0`) against every key row, `NC` pieces of 8 per row: each
/// piece of a key row is widened once and dotted with all `J` heads, two accumulators per head
/// (the two halves of a piece), so `2·J` multiply-add chains run at once.
///
/// # Safety
/// The CPU must support NEON; `hd == 8 * NC`, `j0 + J <= g`, and the lengths were checked by
/// `check_scores`.
#[target_feature(enable = "neon")]
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
        let mut acc = [[vdupq_n_f32(0.0); 2]; J];
        for c in 0..NC {
            // SAFETY: row i of `k` holds `hd` halves (checked), so 8 are readable at the piece.
            let (k0, k1) = unsafe { widen8(k, i * hd + 8 * c) };
            for (jj, a) in acc.iter_mut().enumerate() {
                // SAFETY: head j0 + jj < g of `q` holds `hd` values (checked); `ld1` of f32
                // needs only the alignment of an f32 slice.
                let (q0, q1) = unsafe {
                    let at = q.as_ptr().add((j0 + jj) * hd + 8 * c);
                    (vld1q_f32(at), vld1q_f32(at.add(4)))
                };
                a[0] = vfmaq_f32(a[0], q0, k0);
                a[1] = vfmaq_f32(a[1], q1, k1);
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            out[(j0 + jj) * out_stride + i] = vaddvq_f32(vaddq_f32(a[0], a[1]));
        }
    }
}

/// [`attn_scores_f16_impl`] for the heads `0..g`, up to four at a time.
///
/// # Safety
/// As for [`attn_scores_f16_impl`], for all heads.
#[target_feature(enable = "neon")]
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

/// NEON [`crate::f32ops::attn_scores_f16_ref`]: head sizes of 64, 128 and 256 through the fused
/// kernel, others through the reference.
pub(crate) fn attn_scores_f16_neon(
    q: &[f32],
    k: &[u16],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let (g, rows) = crate::f32ops::check_scores(q, k, hd, out, out_stride);
    // SAFETY: installed only in the NEON f32ops table, handed out only after NEON was detected;
    // `hd` matches `NC` in each arm and the lengths were checked.
    unsafe {
        match hd {
            64 => attn_scores_f16_heads::<8>(q, k, g, rows, out, out_stride),
            128 => attn_scores_f16_heads::<16>(q, k, g, rows, out, out_stride),
            256 => attn_scores_f16_heads::<32>(q, k, g, rows, out, out_stride),
            _ => crate::f32ops::attn_scores_f16_ref(q, k, hd, out, out_stride),
        }
    }
}

/// Columns of `out` per pass of [`attn_values_f16_impl`] (two pieces of 8, four vectors).
const VALUE_COLS: usize = 16;

/// Weighted sum of value rows for up to `J` (≤ 4) heads at once, [`VALUE_COLS`] columns at a
/// time: the `J × 4` accumulators (at most 16 of the 32 vector registers, leaving room for the
/// widened value pieces and the weights) stay in registers over all rows, and each piece of a
/// value row is widened once for all heads.
///
/// # Safety
/// The CPU must support NEON; `hd % VALUE_COLS == 0`, `j0 + J <= g`, and the lengths were
/// checked by `check_values`.
// `i` indexes the weights of every head and the rows of `v` alike.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "neon")]
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
        let mut acc: [[float32x4_t; VALUE_COLS / 4]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); `ld1` needs only the alignment of an f32 slice.
            core::array::from_fn(|c| unsafe {
                vld1q_f32(out.as_ptr().add((j0 + jj) * hd + d0 + 4 * c))
            })
        });
        for i in 0..rows {
            let w: [f32; J] = core::array::from_fn(|jj| pj[jj][i]);
            for c in 0..VALUE_COLS / 8 {
                // SAFETY: in bounds (above).
                let (v0, v1) = unsafe { widen8(v, i * hd + d0 + 8 * c) };
                for (a, &wj) in acc.iter_mut().zip(&w) {
                    a[2 * c] = vfmaq_n_f32(a[2 * c], v0, wj);
                    a[2 * c + 1] = vfmaq_n_f32(a[2 * c + 1], v1, wj);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); `st1` needs only the alignment of an f32 slice.
                unsafe { vst1q_f32(out.as_mut_ptr().add((j0 + jj) * hd + d0 + 4 * c), *ac) };
            }
        }
    }
}

/// NEON [`crate::f32ops::attn_values_f16_ref`]: head sizes that are multiples of 64 through the
/// fused kernel (heads four at a time), others through the reference.
pub(crate) fn attn_values_f16_neon(
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
        // SAFETY: installed only in the NEON f32ops table, handed out only after NEON was
        // detected; `hd % 64 == 0` (so `hd % VALUE_COLS == 0`), `j0 + jn <= g`, and the lengths
        // were checked.
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

/// Half `h` (values `16h..16h + 16`) of a Q8_0 (`Q4 = false`) or Q4_0 block as 16 signed
/// integers, widened to four vectors of f32 and multiplied by the block's scale (exact).
///
/// # Safety
/// The CPU must support NEON; `blk` holds a whole block (34 or 18 bytes) and `h < 2`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn half_block_values<const Q4: bool>(blk: &[u8], h: usize) -> [float32x4_t; 4] {
    let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
    // SAFETY: 16 bytes from offset 2 (Q4_0: the nibbles) or 2 + 16h (Q8_0) are within the
    // block (caller); `ld1` of bytes needs no alignment.
    let q: int8x16_t = unsafe {
        if Q4 {
            let raw = vld1q_u8(blk.as_ptr().add(2));
            // Low nibbles are values 0..16, high nibbles 16..32.
            let n = if h == 0 {
                vandq_u8(raw, vdupq_n_u8(15))
            } else {
                vshrq_n_u8::<4>(raw)
            };
            vsubq_s8(vreinterpretq_s8_u8(n), vdupq_n_s8(8))
        } else {
            vld1q_s8(blk.as_ptr().add(2 + 16 * h).cast())
        }
    };
    let (lo, hi) = (vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q));
    let widen = |x: int32x4_t| vmulq_n_f32(vcvtq_f32_s32(x), d);
    [
        widen(vmovl_s16(vget_low_s16(lo))),
        widen(vmovl_high_s16(lo)),
        widen(vmovl_s16(vget_low_s16(hi))),
        widen(vmovl_high_s16(hi)),
    ]
}

/// Scores of all query heads against Q8_0 or Q4_0 key rows of `NC` vectors of 4 (`NC / 8`
/// blocks), 4 keys at a time: the keys expanded once (exactly) for all heads, each head's 4 dot
/// products reduced together by pairwise adds (`faddp`, the same order for every key) and
/// stored as one vector.
///
/// # Safety
/// The CPU must support NEON; `hd == 4 * NC`, and the lengths were checked by
/// `check_scores_quant` with this format's block size.
#[target_feature(enable = "neon")]
unsafe fn attn_scores_quant_impl<const Q4: bool, const NC: usize>(
    q: &[f32],
    k: &[u8],
    g: usize,
    rows: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (hd, row_bytes) = (4 * NC, NC / 8 * bb);
    let mut keys = [[vdupq_n_f32(0.0); NC]; 4];
    for i0 in (0..rows).step_by(4) {
        let n = (rows - i0).min(4);
        for (r, key) in keys.iter_mut().enumerate() {
            for c in (0..NC).step_by(4) {
                let (b, h) = (c / 8, c / 4 % 2);
                let x = if r < n {
                    let blk = &k[(i0 + r) * row_bytes + b * bb..][..bb];
                    // SAFETY: NEON was detected (caller); the block is a whole one (sliced).
                    unsafe { half_block_values::<Q4>(blk, h) }
                } else {
                    [vdupq_n_f32(0.0); 4]
                };
                key[c..c + 4].copy_from_slice(&x);
            }
        }
        for j in 0..g {
            let qj = &q[j * hd..][..hd];
            let acc: [float32x4_t; 4] = core::array::from_fn(|r| {
                let mut a = vdupq_n_f32(0.0);
                for (c, kc) in keys[r].iter().enumerate() {
                    // SAFETY: `qj` holds `hd = 4·NC` values; `ld1` needs only f32 alignment.
                    let qc = unsafe { vld1q_f32(qj.as_ptr().add(4 * c)) };
                    a = vfmaq_f32(a, qc, *kc);
                }
                a
            });
            let s = vpaddq_f32(vpaddq_f32(acc[0], acc[1]), vpaddq_f32(acc[2], acc[3]));
            let mut sums = [0f32; 4];
            // SAFETY: `sums` holds 4 values.
            unsafe { vst1q_f32(sums.as_mut_ptr(), s) };
            out[j * out_stride + i0..][..n].copy_from_slice(&sums[..n]);
        }
    }
}

/// [`attn_scores_quant_impl`] for the head sizes 32–256 (any whole number of blocks), the
/// reference beyond.
fn attn_scores_quant_neon<const Q4: bool>(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (g, rows) = crate::f32ops::check_scores_quant(q, k, bb, hd, out, out_stride);
    let f = match hd {
        32 => attn_scores_quant_impl::<Q4, 8>,
        64 => attn_scores_quant_impl::<Q4, 16>,
        96 => attn_scores_quant_impl::<Q4, 24>,
        128 => attn_scores_quant_impl::<Q4, 32>,
        160 => attn_scores_quant_impl::<Q4, 40>,
        192 => attn_scores_quant_impl::<Q4, 48>,
        224 => attn_scores_quant_impl::<Q4, 56>,
        256 => attn_scores_quant_impl::<Q4, 64>,
        _ if Q4 => return crate::f32ops::attn_scores_q4_0_ref(q, k, hd, out, out_stride),
        _ => return crate::f32ops::attn_scores_q8_0_ref(q, k, hd, out, out_stride),
    };
    // SAFETY: installed only in the NEON f32ops table, handed out only after NEON was detected;
    // `hd` matches `NC` in each arm and the lengths were checked.
    unsafe { f(q, k, g, rows, out, out_stride) }
}

/// NEON [`crate::f32ops::attn_scores_q8_0_ref`].
pub(crate) fn attn_scores_q8_0_neon(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_neon::<false>(q, k, hd, out, out_stride);
}

/// NEON [`crate::f32ops::attn_scores_q4_0_ref`].
pub(crate) fn attn_scores_q4_0_neon(
    q: &[f32],
    k: &[u8],
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    attn_scores_quant_neon::<true>(q, k, hd, out, out_stride);
}

/// Weighted sum of Q8_0 or Q4_0 value rows for up to `J` (≤ 4) heads at once, half a block (16
/// columns) at a time: the `J × 4` accumulators stay in registers over all rows, each half
/// block expanded once for all heads.
///
/// # Safety
/// The CPU must support NEON; `j0 + J <= g`, and the lengths were checked by
/// `check_values_quant` with this format's block size.
#[target_feature(enable = "neon")]
unsafe fn attn_values_quant_impl<const Q4: bool, const J: usize>(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    rows: usize,
    j0: usize,
    out: &mut [f32],
) {
    use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let row_bytes = hd / 32 * bb;
    let pj: [&[f32]; J] = core::array::from_fn(|jj| &p[(j0 + jj) * p_stride..][..rows]);
    for c0 in (0..hd).step_by(16) {
        let (b, h) = (c0 / 32, c0 / 16 % 2);
        // Head j0 + jj of `out` holds `hd` values (checked), so the loads and stores are in
        // bounds.
        let mut acc: [[float32x4_t; 4]; J] = core::array::from_fn(|jj| {
            // SAFETY: in bounds (above); `ld1` needs only the alignment of an f32 slice.
            core::array::from_fn(|c| unsafe {
                vld1q_f32(out.as_ptr().add((j0 + jj) * hd + c0 + 4 * c))
            })
        });
        for i in 0..rows {
            // SAFETY: NEON was detected (caller); the block is a whole one (sliced).
            let x = unsafe { half_block_values::<Q4>(&v[i * row_bytes + b * bb..][..bb], h) };
            for (a, pw) in acc.iter_mut().zip(&pj) {
                let w = pw[i];
                for (ac, xc) in a.iter_mut().zip(&x) {
                    *ac = vfmaq_n_f32(*ac, *xc, w);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            for (c, ac) in a.iter().enumerate() {
                // SAFETY: in bounds (above); `st1` needs only the alignment of an f32 slice.
                unsafe { vst1q_f32(out.as_mut_ptr().add((j0 + jj) * hd + c0 + 4 * c), *ac) };
            }
        }
    }
}

/// [`attn_values_quant_impl`] for all heads, four at a time.
fn attn_values_quant_neon<const Q4: bool>(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    use crate::f32ops::{Q4_0_BLOCK, Q8_0_BLOCK};
    let bb = if Q4 { Q4_0_BLOCK } else { Q8_0_BLOCK };
    let (g, rows) = crate::f32ops::check_values_quant(p, p_stride, v, bb, hd, out);
    let mut j0 = 0;
    while j0 < g {
        let jn = (g - j0).min(4);
        // SAFETY: installed only in the NEON f32ops table, handed out only after NEON was
        // detected; `j0 + jn <= g` and the lengths were checked.
        unsafe {
            let f = match jn {
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

/// NEON [`crate::f32ops::attn_values_q8_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q8_0_neon(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_neon::<false>(p, p_stride, v, hd, out);
}

/// NEON [`crate::f32ops::attn_values_q4_0_ref`], bit-identical to it.
pub(crate) fn attn_values_q4_0_neon(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    hd: usize,
    out: &mut [f32],
) {
    attn_values_quant_neon::<true>(p, p_stride, v, hd, out);
}
