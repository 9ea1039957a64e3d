//! AArch64 panel kernels of the i8mm tier (FEAT_I8MM, Armv8.6): products with `smmla`, which
//! multiplies a 2 × 8 matrix of signed bytes by an 8 × 2 one into a 2 × 2 block of i32 sums, so
//! one instruction adds 32 products (`sdot`: 16).
//!
//! The operands want two rows' eight consecutive values side by side, which the layouts of
//! [`crate::panel`] (value `4 k + i` of row `r` at byte `64 k + 4 r + i`) do not have. The i8mm
//! tier therefore packs as the other tiers do and then reorders the value bytes of every packed
//! block in place ([`interleave_row_pairs_bytes`]): byte `128 m + 16 p + 8 h + i` becomes value
//! `8 m + i` of row `2 p + h`. Each 128-byte slab (weight vectors `2m` and `2m + 1`) maps onto
//! itself, so a block keeps its size and its other fields (scales, minimums, row sums) stay
//! where they were. Columns are taken two at a time: their eight values of slab `m`, side by
//! side, are the other operand, and lane `2 h + c` of the result is row `2 p + h` times column
//! `c`. `uzp1`/`uzp2` of two row pairs' sums give the four-row vectors of one column that the
//! dotprod kernels have, and from there the f32 steps are theirs, per lane: the reference's
//! operations in the reference's order (the integer sums are exact in any order).
//!
//! Like the other SIMD kernels these are `unsafe fn`s with `#[target_feature]`, reached only
//! through the safe `_bytes` wrappers, which check every length first and are handed out by
//! [`crate::panel::panel_kernels_for`] only when the CPU supports the i8mm tier. Multi-byte
//! fields are read through byte vectors, so the kernels assume little-endian AArch64, as
//! [`crate::dispatch`] does.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use crate::aarch64_panel::{dup_f32, k_finish, load_f32x4, scale_step, store};
use crate::panel::{
    COL_BLOCK, K_BLOCK, K_COL_BLOCK, K_COL_Q, K_SC, PANEL_BLOCK, PANEL_ROWS, check_k_run, check_run,
};

/// Reorders the first `values` bytes of each `block`-byte packed block of `panel` from the
/// four-byte transposed order into row pairs (see the module documentation): in each 128-byte
/// slab, dword `g` of weight vector `2m` and dword `g` of vector `2m + 1` are rows `4g..4g + 4`
/// of values `8m..8m + 4` and `8m + 4..8m + 8`; `zip1`/`zip2` on 32-bit lanes put each row's
/// two dwords next to each other.
///
/// # Safety
/// The CPU must support NEON. `panel.len()` must be a multiple of `block`, and `values` a
/// multiple of 128 no larger than `block`.
#[target_feature(enable = "neon")]
unsafe fn interleave_row_pairs(panel: &mut [u8], block: usize, values: usize) {
    for blk in panel.chunks_exact_mut(block) {
        for slab in blk[..values].chunks_exact_mut(128) {
            let p = slab.as_mut_ptr();
            // SAFETY: `slab` holds 128 bytes, read as eight vectors and then written back as
            // eight; byte loads and stores have no alignment requirement.
            unsafe {
                let a: [uint32x4_t; 4] = core::array::from_fn(|g| vld1q_u32(p.add(16 * g).cast()));
                let b: [uint32x4_t; 4] =
                    core::array::from_fn(|g| vld1q_u32(p.add(64 + 16 * g).cast()));
                for g in 0..4 {
                    vst1q_u32(p.add(32 * g).cast(), vzip1q_u32(a[g], b[g]));
                    vst1q_u32(p.add(32 * g + 16).cast(), vzip2q_u32(a[g], b[g]));
                }
            }
        }
    }
}

/// Safe wrapper of [`interleave_row_pairs`]: the i8mm tier's last packing step.
pub(crate) fn interleave_row_pairs_bytes(panel: &mut [u8], block: usize, values: usize) {
    assert!(
        values % 128 == 0 && values <= block && panel.len() % block == 0,
        "{} bytes are not whole {block}-byte blocks of {values} value bytes",
        panel.len()
    );
    // SAFETY: the lengths were checked above; this wrapper is reached only through the i8mm
    // tier's packing, handed out only for a CPU that supports it (and so NEON).
    unsafe { interleave_row_pairs(panel, block, values) }
}

/// `acc` plus the 2 × 2 products of `a` (two rows of eight signed bytes) and `b` (two columns
/// of eight), lane `2 i + j` for row `i` and column `j` (`smmla`, exact in i32).
///
/// # Safety
/// The CPU must support FEAT_I8MM.
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn smmla(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the caller guarantees FEAT_I8MM; `smmla` reads and writes only the named vector
    // registers.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// The eight-byte halves of `a` and `b` side by side: `(a.lo, b.lo)` and `(a.hi, b.hi)`, the
/// column operands of two slabs.
#[inline]
#[target_feature(enable = "neon")]
fn pair_columns(a: int8x16_t, b: int8x16_t) -> [int8x16_t; 2] {
    let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
    [
        vreinterpretq_s8_s64(vzip1q_s64(a, b)),
        vreinterpretq_s8_s64(vzip2q_s64(a, b)),
    ]
}

/// `C` (1 or 2) prepared columns times a row-pair panel of the 32-weight layouts with `smmla`,
/// into `out[c * 16 + r]`: per block, the columns' 32 bytes as four slab operands; for each
/// slab `m` and row pair `p`, `smmla` adds rows `2p, 2p + 1` times both columns; then, per
/// group `g` of four rows, `uzp1`/`uzp2` of row pairs `2g, 2g + 1` give the column-0 and
/// column-1 sums of those rows, and the f32 step is [`crate::aarch64_panel`]'s. A single column
/// is multiplied as a pair with itself, the second half of the result unused.
///
/// With `MIN` (Q4_1, Q5_1: unsigned values below 32, as signed bytes too) the step adds
/// `m_x·s_y`; without (the signed layout of Q4_0, Q5_0, Q8_0, IQ4_NL) it does not.
///
/// # Safety
/// The CPU must support NEON and FEAT_I8MM; `panel` must hold `nb * PANEL_BLOCK` bytes packed
/// in row pairs and each `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn run_i8mm<const C: usize, const MIN: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    const { assert!(C == 1 || C == 2) };
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // byte loads have no alignment requirement. `smmla` is supported by the contract.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            let (y0, y1) = (y[0], y[C - 1]);
            let [m0, m1] = pair_columns(vld1q_s8(y0.cast()), vld1q_s8(y1.cast()));
            let [m2, m3] = pair_columns(vld1q_s8(y0.add(16).cast()), vld1q_s8(y1.add(16).cast()));
            let ym = [m0, m1, m2, m3];
            let mut isum = [vdupq_n_s32(0); PANEL_ROWS / 2];
            for (m, ym) in ym.iter().enumerate() {
                for (pair, s) in isum.iter_mut().enumerate() {
                    let w = vld1q_s8(p.add(128 * m + 16 * pair).cast());
                    *s = smmla(*s, w, *ym);
                }
            }
            for g in 0..4 {
                let dx = load_f32x4(p.add(512 + 16 * g));
                let sums = [
                    vuzp1q_s32(isum[2 * g], isum[2 * g + 1]),
                    vuzp2q_s32(isum[2 * g], isum[2 * g + 1]),
                ];
                for c in 0..C {
                    let dy = dup_f32(y[c].add(32));
                    acc[c][g] = if MIN {
                        let mx = load_f32x4(p.add(576 + 16 * g));
                        scale_step(acc[c][g], sums[c], dx, mx, dy, dup_f32(y[c].add(36)))
                    } else {
                        vfmaq_f32(acc[c][g], vcvtq_f32_s32(sums[c]), vmulq_f32(dx, dy))
                    };
                }
            }
        }
    }
    store(&acc, out);
}

/// The Q4_1 / Q5_1 product of [`run_i8mm`].
///
/// # Safety
/// As [`run_i8mm`].
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn q4_1_run_i8mm<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    // SAFETY: the same contract.
    unsafe { run_i8mm::<C, true>(nb, panel, ys, out) }
}

/// The signed-layout product of [`run_i8mm`] (Q4_0, Q5_0, Q8_0, IQ4_NL).
///
/// # Safety
/// As [`run_i8mm`].
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn signed_run_i8mm<const C: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    // SAFETY: the same contract.
    unsafe { run_i8mm::<C, false>(nb, panel, ys, out) }
}

/// `C` (1 or 2) prepared Q8_K columns times a row-pair k-quant panel with `smmla` (see
/// [`crate::panel`] for the layout and its arithmetic), into `out[c * 16 + r]`: per group `k`
/// of 16 weights (slabs `2k`, `2k + 1`), the columns' 16 quants as two slab operands and 16
/// `smmla` give each row pair's exact group sums for both columns; `uzp1`/`uzp2` turn them into
/// four-row vectors per column, which `mla` scales by `sc_k` into S1; then
/// [`crate::aarch64_panel::k_finish`], as the dotprod kernel.
///
/// # Safety
/// The CPU must support NEON and FEAT_I8MM; `panel` must hold `nb * K_BLOCK` bytes packed in
/// row pairs and each `ys[c]` `nb * K_COL_BLOCK` bytes (`out` is a checked slice).
///
/// `SIGNED` (IQ4_XS): the values are i8 already, which is what `smmla` takes; `k_finish` then
/// skips S2.
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn k_run_i8mm<const C: usize, const SIGNED: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    const { assert!(C == 1 || C == 2) };
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: super-block b of the panel is `panel[b * K_BLOCK..][..K_BLOCK]` and of
        // column c `ys[c][b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract;
        // byte loads and `read_unaligned` have no alignment requirement. `smmla` is supported
        // by the contract.
        unsafe {
            let p = panel.as_ptr().add(b * K_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * K_COL_BLOCK));
            let (y0, y1) = (y[0], y[C - 1]);
            let mut s1 = [[vdupq_n_s32(0); 4]; C];
            for k in 0..16 {
                let ym = pair_columns(
                    vld1q_s8(y0.add(K_COL_Q + 16 * k).cast()),
                    vld1q_s8(y1.add(K_COL_Q + 16 * k).cast()),
                );
                let mut isum = [vdupq_n_s32(0); PANEL_ROWS / 2];
                for (h, ym) in ym.iter().enumerate() {
                    for (pair, s) in isum.iter_mut().enumerate() {
                        let w = vld1q_s8(p.add(128 * (2 * k + h) + 16 * pair).cast());
                        *s = smmla(*s, w, *ym);
                    }
                }
                for g in 0..4 {
                    let sc = vld1q_s32(p.add(K_SC + 64 * k + 16 * g).cast());
                    let sums = [
                        vuzp1q_s32(isum[2 * g], isum[2 * g + 1]),
                        vuzp2q_s32(isum[2 * g], isum[2 * g + 1]),
                    ];
                    for c in 0..C {
                        s1[c][g] = vmlaq_s32(s1[c][g], sums[c], sc);
                    }
                }
            }
            k_finish::<C, SIGNED>(p, &y, &s1, &mut acc);
        }
    }
    store(&acc, out);
}

/// Runs `kernel` over the columns two at a time, and a last single column if any.
macro_rules! run_bytes {
    ($name:ident, $kernel:ident, $what:literal, $check:ident, $col_block:expr) => {
        #[doc = concat!("Safe wrapper of the i8mm (`smmla`) ", $what, " panel product.")]
        pub(crate) fn $name(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]) {
            let (nb, cols) = $check(n, panel, ys, y_stride, out);
            let col = |j: usize| &ys[j * y_stride..][..nb * $col_block];
            let mut j = 0;
            while j + 2 <= cols {
                // SAFETY: panel and column lengths were checked by the check above; this
                // wrapper is handed out only for a CPU that supports the i8mm tier.
                unsafe {
                    $kernel::<2>(
                        nb,
                        panel,
                        [col(j), col(j + 1)],
                        &mut out[j * PANEL_ROWS..][..2 * PANEL_ROWS],
                    )
                };
                j += 2;
            }
            if j < cols {
                // SAFETY: as above.
                unsafe {
                    $kernel::<1>(
                        nb,
                        panel,
                        [col(j)],
                        &mut out[j * PANEL_ROWS..][..PANEL_ROWS],
                    )
                };
            }
        }
    };
}

run_bytes!(
    q4_1_run_i8mm_bytes,
    q4_1_run_i8mm,
    "Q4_1 / Q5_1",
    check_run,
    COL_BLOCK
);
run_bytes!(
    signed_run_i8mm_bytes,
    signed_run_i8mm,
    "signed-layout",
    check_run,
    COL_BLOCK
);
crate::panel::k_instances!(k_run_i8mm, "neon,i8mm", k_i8mm, k_signed_i8mm);

run_bytes!(
    k_run_i8mm_bytes,
    k_i8mm,
    "k-quant",
    check_k_run,
    K_COL_BLOCK
);
run_bytes!(
    k_run_signed_i8mm_bytes,
    k_signed_i8mm,
    "IQ4_XS (signed k-quant layout)",
    check_k_run,
    K_COL_BLOCK
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Tier;

    /// `smmla`'s lanes are row-major (row `i`, column `j` in lane `2 i + j`) and its sums exact
    /// at the extremes (−128 · −128 eight times, and mixed signs).
    #[test]
    fn smmla_is_a_2x2_product() {
        if !Tier::I8mm.is_supported() {
            return;
        }
        let cases: [([i8; 16], [i8; 16]); 3] = [
            ([-128; 16], [-128; 16]),
            (
                core::array::from_fn(|i| if i < 8 { 127 } else { -128 }),
                core::array::from_fn(|i| if i % 3 == 0 { -128 } else { 127 }),
            ),
            (
                core::array::from_fn(|i| (i as i8 - 8) * 13),
                core::array::from_fn(|i| (i as i8) * 7 - 50),
            ),
        ];
        for (a, b) in cases {
            let want: [i32; 4] = core::array::from_fn(|lane| {
                let (i, j) = (lane / 2, lane % 2);
                let dot: i32 = (0..8)
                    .map(|k| i32::from(a[8 * i + k]) * i32::from(b[8 * j + k]))
                    .sum();
                dot + lane as i32
            });
            let mut got = [0i32; 4];
            // SAFETY: FEAT_I8MM was detected above; the loads and the store cover the 16-byte
            // arrays exactly.
            unsafe {
                let acc = vld1q_s32([0, 1, 2, 3].as_ptr());
                let r = smmla(acc, vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr()));
                vst1q_s32(got.as_mut_ptr(), r);
            }
            assert_eq!(got, want, "{a:?} x {b:?}");
        }
    }

    /// Byte `64 k + 4 r + i` (value `4 k + i` of row `r`) moves to `128 m + 16 p + 8 h + i'`
    /// (value `8 m + i'` of row `2 p + h`), in every block; the bytes after the values stay.
    #[test]
    fn row_pairs_are_the_documented_order() {
        if !Tier::I8mm.is_supported() {
            return;
        }
        let (block, values) = (640, 512);
        let panel: Vec<u8> = (0..2 * block).map(|i| (i * 7 % 251) as u8).collect();
        let mut got = panel.clone();
        interleave_row_pairs_bytes(&mut got, block, values);
        for b in 0..2 {
            let (src, dst) = (&panel[b * block..][..block], &got[b * block..][..block]);
            for r in 0..16 {
                for v in 0..32 {
                    let from = 64 * (v / 4) + 4 * r + v % 4;
                    let to = 128 * (v / 8) + 16 * (r / 2) + 8 * (r % 2) + v % 8;
                    assert_eq!(dst[to], src[from], "block {b} row {r} value {v}");
                }
            }
            assert_eq!(dst[values..], src[values..]);
        }
    }
}
