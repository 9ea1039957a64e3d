//! AArch64 Advanced SIMD (NEON) kernels of [`crate::f32ops`]: the fused f16 attention kernels
//! ([`crate::f32ops::attn_scores_f16_ref`] and [`crate::f32ops::attn_values_f16_ref`]), used by
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
