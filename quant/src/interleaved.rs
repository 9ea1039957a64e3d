//! Row-interleaved Q4_0 for decoding: a repacked copy of a weight matrix, the same size as the
//! Q4_0 rows, whose one-token product needs a third of the instructions of a row-by-row
//! `vec_dot`.
//!
//! A row-by-row Q4_0 `vec_dot` pays, for every block of every row, the widening of its f16
//! scale, the scale product, the float conversion of its integer sum, the `fma` and, at the end
//! of the row, a horizontal reduction: on AVX-512 about as many instructions as the whole block
//! has bytes, which makes Q4_0 decoding slower than memory on a fast core. Here
//! [`GROUP_ROWS`] rows are stored side by side, block by block: the group's 16 f16 scales
//! first, then the 16 rows' quant bytes as four vectors of 64 bytes, vector `k` holding bytes
//! `4k..4k + 4` of each row's 16 (row `r` at bytes `4r..4r + 4`: the low nibbles are weights
//! `4k..4k + 4`, the high ones weights `16 + 4k..16 + 4k + 4`). So one `vpdpbusd` with four
//! activation bytes broadcast adds 64 products into the lanes of their own rows, the scale work
//! is one vector operation for 16 rows, and no row needs a reduction.
//!
//! Groups follow each other, each group's blocks in order (a group is `nb * 288` bytes, as its
//! 16 rows were); the last group is padded with zero rows. [`interleaved_q4_0_bytes`] gives the
//! size.
//!
//! The arithmetic per row is the signed panel layout's ([`crate::panel`]), block after block:
//!
//! ```text
//! acc = fma(f32(Σ (q − 8)·q_y), d_x·d_y, acc)
//! ```
//!
//! on the column [`crate::panel::PanelKernels::prepare`] makes for Q4_0 (Q8_0's quants and
//! `d_y`). So a product on this layout is bit for bit the Q4_0 panel product of the same row
//! and column, in every tier: decoding and batched prefill give the same logits. It is not
//! `vec_dot`'s f32 order.

use crate::GgmlType;
use crate::dispatch::Tier;
use crate::legacy::BlockQ4_0;
use crate::num::{f16_to_f32, fmaf};
use crate::panel::{COL_BLOCK, f32_at};
use crate::traits::blocks;

/// Rows interleaved in one group.
pub const GROUP_ROWS: usize = 16;
/// Bytes of one block of a group: 16 f16 scales, then 4 vectors of 16 rows × 4 quant bytes.
pub(crate) const GROUP_BLOCK: usize = 32 + 4 * 64;
/// Bytes of one block (32 weights) of a group of [`GROUP_ROWS`] rows: a group of rows of `n`
/// weights is `n / 32` times this.
pub const GROUP_BYTES_PER_BLOCK: usize = GROUP_BLOCK;
/// Byte offset of the quant vectors in a block of a group.
pub(crate) const GROUP_QS: usize = 32;

/// Packs the first `rows` rows of one interleaved group into a Q4_0 panel (see
/// [`pack_q4_0_panel`], the reference).
pub type InterleavedPackFn = fn(n: usize, group: &[u8], rows: usize, panel: &mut [u8]);

/// The kernels of one tier on row-interleaved Q4_0.
#[derive(Clone, Copy, Debug)]
pub struct InterleavedKernels {
    /// The one-column product ([`matvec_q4_0_reference`]'s arithmetic).
    pub matvec: InterleavedMatvecFn,
    /// The panel packing ([`pack_q4_0_panel`]'s bytes).
    pub pack: InterleavedPackFn,
}

/// The scalar kernels: the reference.
pub static Q4_0_REFERENCE: InterleavedKernels = InterleavedKernels {
    matvec: matvec_q4_0_reference,
    pack: pack_q4_0_panel,
};

/// The product of an interleaved matrix with one prepared column: `out[r]` is row `r` times the
/// column, for every `r < out.len()`. `w` holds the `out.len().div_ceil(GROUP_ROWS)` groups of
/// rows of `n` weights, `y` the column.
pub type InterleavedMatvecFn = fn(n: usize, w: &[u8], y: &[u8], out: &mut [f32]);

/// Bytes of `rows` Q4_0 rows of `n` weights interleaved (whole groups), or `None` if `n` is not
/// whole blocks or the size overflows.
pub fn interleaved_q4_0_bytes(rows: usize, n: usize) -> Option<usize> {
    if n % 32 != 0 {
        return None;
    }
    rows.div_ceil(GROUP_ROWS)
        .checked_mul(n / 32)?
        .checked_mul(GROUP_BLOCK)
}

/// Interleaves `rows` Q4_0 rows of `n` weights (`x`, back to back) into `out`
/// ([`interleaved_q4_0_bytes`] long).
///
/// # Panics
/// If `n` is not whole blocks or a buffer has the wrong length.
pub fn interleave_q4_0(n: usize, x: &[u8], rows: usize, out: &mut [u8]) {
    let size = interleaved_q4_0_bytes(rows, n).expect("whole Q4_0 blocks");
    let nb = n / 32;
    assert_eq!(x.len(), rows * nb * size_of::<BlockQ4_0>(), "Q4_0 rows");
    assert_eq!(out.len(), size, "interleaved buffer");
    if nb == 0 {
        return;
    }
    let xb = blocks::<BlockQ4_0>(x);
    for (g, group) in out.chunks_exact_mut(nb * GROUP_BLOCK).enumerate() {
        let r0 = g * GROUP_ROWS;
        let in_group = (rows - r0).min(GROUP_ROWS);
        if in_group < GROUP_ROWS {
            group.fill(0);
        }
        // Row by row, so that the rows are read in order; each block's bytes go to their lanes.
        for (r, row) in xb[r0 * nb..(r0 + in_group) * nb]
            .chunks_exact(nb)
            .enumerate()
        {
            for (blk, dst) in row.iter().zip(group.chunks_exact_mut(GROUP_BLOCK)) {
                let (scales, qs) = dst.split_at_mut(GROUP_QS);
                scales[2 * r..2 * r + 2].copy_from_slice(&blk.d);
                for (k, q4) in blk.qs.chunks_exact(4).enumerate() {
                    qs[64 * k + 4 * r..64 * k + 4 * r + 4].copy_from_slice(q4);
                }
            }
        }
    }
}

/// Checks the buffers of a panel packing from an interleaved group; returns the block count.
pub(crate) fn check_pack(n: usize, group: &[u8], rows: usize, panel: &[u8]) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    assert!((1..=GROUP_ROWS).contains(&rows), "1 to 16 rows, not {rows}");
    let nb = n / 32;
    assert_eq!(group.len(), nb * GROUP_BLOCK, "interleaved group");
    assert_eq!(panel.len(), nb * crate::panel::PANEL_BLOCK, "Q4_0 panel");
    nb
}

/// Checks the buffers of an interleaved product; returns the block count per row.
pub(crate) fn check_matvec(n: usize, w: &[u8], y: &[u8], out: &[f32]) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    let nb = n / 32;
    assert_eq!(
        w.len(),
        out.len().div_ceil(GROUP_ROWS) * nb * GROUP_BLOCK,
        "interleaved rows"
    );
    assert_eq!(y.len(), nb * COL_BLOCK, "prepared column");
    nb
}

/// The scalar product on the interleaved layout: the formula above, row by row (the reference
/// every SIMD kernel is tested against bit for bit).
pub fn matvec_q4_0_reference(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let nb = check_matvec(n, w, y, out);
    for (r, o) in out.iter_mut().enumerate() {
        let group = &w[r / GROUP_ROWS * nb * GROUP_BLOCK..][..nb * GROUP_BLOCK];
        let lane = r % GROUP_ROWS;
        let mut acc = 0f32;
        for (blk, yb) in group
            .chunks_exact(GROUP_BLOCK)
            .zip(y.chunks_exact(COL_BLOCK))
        {
            let mut isum = 0i32;
            for k in 0..4 {
                for i in 0..4 {
                    let q = blk[GROUP_QS + 64 * k + 4 * lane + i];
                    isum += (i32::from(q & 0x0f) - 8) * i32::from(yb[4 * k + i] as i8);
                    isum += (i32::from(q >> 4) - 8) * i32::from(yb[16 + 4 * k + i] as i8);
                }
            }
            let dx = f16_to_f32([blk[2 * lane], blk[2 * lane + 1]]);
            acc = fmaf(isum as f32, dx * f32_at(yb, 32), acc);
        }
        *o = acc;
    }
}

/// Packs the first `rows` rows (1 to 16) of one interleaved group of rows of `n` weights
/// (`group`, `n / 32` blocks of [`GROUP_BYTES_PER_BLOCK`] bytes) into a Q4_0 panel of the signed layout
/// ([`crate::panel`]): the same bytes as the Q4_0 panel kernels' own packing of those rows in
/// every tier whose panels use the reference layout (all but i8mm, which
/// [`q4_0_kernels_for`] does not serve). Cheaper than packing from the rows: the quants are
/// already transposed, so each block is eight nibble extractions.
///
/// # Panics
/// If `n` is not whole blocks, `rows` is not 1 to 16 or a buffer has the wrong length.
pub fn pack_q4_0_panel(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    use crate::panel::{PANEL_ROWS, SIGNED_D, SIGNED_SUM};
    check_pack(n, group, rows, panel);
    let block = crate::panel::PANEL_BLOCK;
    for (src, dst) in group
        .chunks_exact(GROUP_BLOCK)
        .zip(panel.chunks_exact_mut(block))
    {
        let mut sums = [0i32; PANEL_ROWS];
        for k in 0..4 {
            let v = &src[GROUP_QS + 64 * k..][..64];
            for (i, &q) in v.iter().enumerate() {
                let r = i / 4;
                let (lo, hi) = if r < rows {
                    ((q & 0x0f) as i8 - 8, (q >> 4) as i8 - 8)
                } else {
                    (0, 0)
                };
                sums[r] += i32::from(lo) + i32::from(hi);
                dst[64 * k + i] = lo as u8;
                dst[64 * (4 + k) + i] = hi as u8;
            }
        }
        for r in 0..PANEL_ROWS {
            let d = if r < rows {
                f16_to_f32([src[2 * r], src[2 * r + 1]])
            } else {
                0.0
            };
            dst[SIGNED_D + 4 * r..][..4].copy_from_slice(&d.to_le_bytes());
            dst[SIGNED_SUM + 4 * r..][..4].copy_from_slice(&sums[r].to_le_bytes());
        }
    }
}

/// The SIMD kernels on the interleaved Q4_0 layout of `tier`, or `None` if the CPU does not
/// support `tier` or the tier has none (then a caller keeps the rows as they are: the layout
/// pays only where its product is fast).
pub fn q4_0_kernels_for(tier: Tier) -> Option<&'static InterleavedKernels> {
    if !tier.is_supported() {
        return None;
    }
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => Some(&Q4_0_AVX512),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => Some(&Q4_0_AVX2),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
static Q4_0_AVX2: InterleavedKernels = InterleavedKernels {
    matvec: crate::x86_panel::interleaved_q4_0_matvec_avx2_bytes,
    pack: crate::x86_panel::interleaved_q4_0_pack_avx2_bytes,
};

#[cfg(target_arch = "x86_64")]
static Q4_0_AVX512: InterleavedKernels = InterleavedKernels {
    matvec: crate::x86_panel::interleaved_q4_0_matvec_avx512_bytes,
    pack: crate::x86_panel::interleaved_q4_0_pack_avx512_bytes,
};

/// The formats with an interleaved layout (Q4_0 for now).
pub fn has_interleaved_layout(ty: GgmlType) -> bool {
    ty == GgmlType::Q4_0
}
