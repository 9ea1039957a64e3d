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
//!
//! Q8_0 interleaves the same way with eight quant vectors per block (544 bytes per group and
//! block, as its 16 rows were), `acc = fma(f32(Σ q·q_y), d_x·d_y, acc)`: the Q8_0 panel
//! product. Its vectors are the signed panel layout's value vectors as they are. The generic
//! functions ([`interleaved_bytes`], [`interleave`], [`row_of`], [`kernels_for`]) take the
//! format.

use crate::GgmlType;
use crate::dispatch::Tier;
use crate::num::{f16_to_f32, fmaf};
use crate::panel::{COL_BLOCK, f32_at};

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

/// The kernels of one tier on one row-interleaved format.
#[derive(Clone, Copy, Debug)]
pub struct InterleavedKernels {
    /// The one-column product (the format's reference arithmetic).
    pub matvec: InterleavedMatvecFn,
    /// The panel packing (the format's reference bytes).
    pub pack: InterleavedPackFn,
    /// Bytes of one block of a group: a group of rows of `n` weights is `n / 32` times this.
    pub group_block: usize,
}

/// The scalar kernels of Q4_0: the reference.
pub static Q4_0_REFERENCE: InterleavedKernels = InterleavedKernels {
    matvec: matvec_q4_0_reference,
    pack: pack_q4_0_panel,
    group_block: GROUP_BLOCK,
};

/// The scalar kernels of Q8_0: the reference.
pub static Q8_0_REFERENCE: InterleavedKernels = InterleavedKernels {
    matvec: matvec_q8_0_reference,
    pack: pack_q8_0_panel,
    group_block: Q8_0_GROUP_BLOCK,
};

/// Bytes of one block of a Q8_0 group: 16 f16 scales, then 8 vectors of 16 rows × 4 quants.
pub(crate) const Q8_0_GROUP_BLOCK: usize = 32 + 8 * 64;

/// Bytes of one block of a group of `ty`, if `ty` has an interleaved layout.
pub fn group_block(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q4_0 => Some(GROUP_BLOCK),
        GgmlType::Q8_0 => Some(Q8_0_GROUP_BLOCK),
        _ => None,
    }
}

/// Bytes of `rows` rows of `ty` of `n` weights interleaved (whole groups), or `None` if `ty`
/// has no interleaved layout, `n` is not whole blocks or the size overflows.
pub fn interleaved_bytes(ty: GgmlType, rows: usize, n: usize) -> Option<usize> {
    let gb = group_block(ty)?;
    if n % 32 != 0 {
        return None;
    }
    rows.div_ceil(GROUP_ROWS)
        .checked_mul(n / 32)?
        .checked_mul(gb)
}

/// Interleaves `rows` rows of `ty` of `n` weights (`x`, back to back) into `out`
/// ([`interleaved_bytes`] long): per row and block, the f16 scale to the row's two bytes of
/// the group block's scales, the quant bytes a dword at a time to the row's lane of each
/// vector. Rows past `rows` in the last group are zero.
///
/// # Panics
/// If `ty` has no interleaved layout, `n` is not whole blocks or a buffer has the wrong length.
pub fn interleave(ty: GgmlType, n: usize, x: &[u8], rows: usize, out: &mut [u8]) {
    let size = interleaved_bytes(ty, rows, n).expect("a format with whole blocks");
    let gb = group_block(ty).unwrap_or(GROUP_BLOCK);
    let bb = 2 + (gb - GROUP_QS) / GROUP_ROWS;
    let nb = n / 32;
    assert_eq!(x.len(), rows * nb * bb, "{ty} rows");
    assert_eq!(out.len(), size, "interleaved buffer");
    if nb == 0 {
        return;
    }
    for (g, group) in out.chunks_exact_mut(nb * gb).enumerate() {
        let r0 = g * GROUP_ROWS;
        let in_group = (rows - r0).min(GROUP_ROWS);
        if in_group < GROUP_ROWS {
            group.fill(0);
        }
        // Row by row, so that the rows are read in order; each block's bytes go to their lanes.
        for (r, row) in x[r0 * nb * bb..(r0 + in_group) * nb * bb]
            .chunks_exact(nb * bb)
            .enumerate()
        {
            for (blk, dst) in row.chunks_exact(bb).zip(group.chunks_exact_mut(gb)) {
                let (scales, qs) = dst.split_at_mut(GROUP_QS);
                scales[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
                for (k, q4) in blk[2..].chunks_exact(4).enumerate() {
                    qs[64 * k + 4 * r..64 * k + 4 * r + 4].copy_from_slice(q4);
                }
            }
        }
    }
}

/// Block `b` of row `r` of an interleaved matrix of `ty` (rows of `n` weights) as the format's
/// block, into `out` (one block's bytes): for reading one row of a tied embedding with no
/// buffer of a row's size.
///
/// # Panics
/// If `ty` has no interleaved layout, `n` is not whole blocks, `r` or `b` is past the matrix or
/// `out` is not one block.
pub fn block_of(ty: GgmlType, n: usize, w: &[u8], r: usize, b: usize, out: &mut [u8]) {
    let gb = group_block(ty).expect("a format with an interleaved layout");
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    let nb = n / 32;
    assert!(b < nb, "block {b} of {nb}");
    assert_eq!(
        out.len(),
        2 + (gb - GROUP_QS) / GROUP_ROWS,
        "one {ty} block"
    );
    let src = &w[(r / GROUP_ROWS * nb + b) * gb..][..gb];
    let lane = r % GROUP_ROWS;
    out[..2].copy_from_slice(&src[2 * lane..2 * lane + 2]);
    for (k, q4) in out[2..].chunks_exact_mut(4).enumerate() {
        q4.copy_from_slice(&src[GROUP_QS + 64 * k + 4 * lane..][..4]);
    }
}

/// Row `r` of an interleaved matrix of `ty` (rows of `n` weights) as the format's blocks, into
/// `out` (one row's bytes): the inverse of [`interleave`] for one row, for a matrix whose rows
/// are also looked up one by one (a tied embedding).
///
/// # Panics
/// If `ty` has no interleaved layout, `n` is not whole blocks, `r` is past the matrix or `out`
/// is not one row.
pub fn row_of(ty: GgmlType, n: usize, w: &[u8], r: usize, out: &mut [u8]) {
    let gb = group_block(ty).expect("a format with an interleaved layout");
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    let bb = 2 + (gb - GROUP_QS) / GROUP_ROWS;
    assert_eq!(out.len(), n / 32 * bb, "one {ty} row");
    for (b, blk) in out.chunks_exact_mut(bb).enumerate() {
        block_of(ty, n, w, r, b, blk);
    }
}

/// The product of an interleaved matrix with one prepared column: `out[r]` is row `r` times the
/// column, for every `r < out.len()`. `w` holds the `out.len().div_ceil(GROUP_ROWS)` groups of
/// rows of `n` weights, `y` the column.
pub type InterleavedMatvecFn = fn(n: usize, w: &[u8], y: &[u8], out: &mut [f32]);

/// Bytes of `rows` Q4_0 rows of `n` weights interleaved (whole groups), or `None` if `n` is not
/// whole blocks or the size overflows.
pub fn interleaved_q4_0_bytes(rows: usize, n: usize) -> Option<usize> {
    interleaved_bytes(GgmlType::Q4_0, rows, n)
}

/// Interleaves `rows` Q4_0 rows of `n` weights (`x`, back to back) into `out`
/// ([`interleaved_q4_0_bytes`] long): [`interleave`] of Q4_0.
///
/// # Panics
/// If `n` is not whole blocks or a buffer has the wrong length.
pub fn interleave_q4_0(n: usize, x: &[u8], rows: usize, out: &mut [u8]) {
    interleave(GgmlType::Q4_0, n, x, rows, out);
}

/// Checks the buffers of a panel packing from an interleaved group of `gb`-byte blocks;
/// returns the block count.
pub(crate) fn check_pack_of(n: usize, group: &[u8], rows: usize, panel: &[u8], gb: usize) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    assert!((1..=GROUP_ROWS).contains(&rows), "1 to 16 rows, not {rows}");
    let nb = n / 32;
    assert_eq!(group.len(), nb * gb, "interleaved group");
    assert_eq!(panel.len(), nb * crate::panel::PANEL_BLOCK, "panel");
    nb
}

/// [`check_pack_of`] for Q4_0.
pub(crate) fn check_pack(n: usize, group: &[u8], rows: usize, panel: &[u8]) -> usize {
    check_pack_of(n, group, rows, panel, GROUP_BLOCK)
}

/// Checks the buffers of an interleaved product of `gb`-byte group blocks; returns the block
/// count per row.
pub(crate) fn check_matvec_of(n: usize, w: &[u8], y: &[u8], out: &[f32], gb: usize) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    let nb = n / 32;
    assert_eq!(
        w.len(),
        out.len().div_ceil(GROUP_ROWS) * nb * gb,
        "interleaved rows"
    );
    assert_eq!(y.len(), nb * COL_BLOCK, "prepared column");
    nb
}

/// [`check_matvec_of`] for Q4_0.
pub(crate) fn check_matvec(n: usize, w: &[u8], y: &[u8], out: &[f32]) -> usize {
    check_matvec_of(n, w, y, out, GROUP_BLOCK)
}

/// The scalar product on interleaved Q8_0: `acc = fma(f32(Σ q·q_y), d_x·d_y, acc)` row by row
/// (the reference every SIMD kernel is tested against bit for bit).
pub fn matvec_q8_0_reference(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let gb = Q8_0_GROUP_BLOCK;
    let nb = check_matvec_of(n, w, y, out, gb);
    for (r, o) in out.iter_mut().enumerate() {
        let group = &w[r / GROUP_ROWS * nb * gb..][..nb * gb];
        let lane = r % GROUP_ROWS;
        let mut acc = 0f32;
        for (blk, yb) in group.chunks_exact(gb).zip(y.chunks_exact(COL_BLOCK)) {
            let mut isum = 0i32;
            for k in 0..8 {
                for i in 0..4 {
                    let q = blk[GROUP_QS + 64 * k + 4 * lane + i] as i8;
                    isum += i32::from(q) * i32::from(yb[4 * k + i] as i8);
                }
            }
            let dx = f16_to_f32([blk[2 * lane], blk[2 * lane + 1]]);
            acc = fmaf(isum as f32, dx * f32_at(yb, 32), acc);
        }
        *o = acc;
    }
}

/// Packs the first `rows` rows of one interleaved Q8_0 group into a Q8_0 panel of the signed
/// layout: the quant vectors are its value vectors already (rows past `rows` zeroed), then the
/// scales widened and the row sums. The same bytes as the Q8_0 panel kernels' own packing in
/// every tier whose panels use the reference layout.
///
/// # Panics
/// If `n` is not whole blocks, `rows` is not 1 to 16 or a buffer has the wrong length.
pub fn pack_q8_0_panel(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    use crate::panel::{PANEL_BLOCK, PANEL_ROWS, SIGNED_D, SIGNED_SUM};
    check_pack_of(n, group, rows, panel, Q8_0_GROUP_BLOCK);
    for (src, dst) in group
        .chunks_exact(Q8_0_GROUP_BLOCK)
        .zip(panel.chunks_exact_mut(PANEL_BLOCK))
    {
        let mut sums = [0i32; PANEL_ROWS];
        for (i, d) in dst[..SIGNED_D].iter_mut().enumerate() {
            let r = (i % 64) / 4;
            let q = if r < rows { src[GROUP_QS + i] } else { 0 };
            sums[r] += i32::from(q as i8);
            *d = q;
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

/// The SIMD kernels on the interleaved layout of `ty` in `tier`, or `None` (as
/// [`q4_0_kernels_for`]): Q4_0 on AVX-512 and AVX2, Q8_0 on AVX-512.
pub fn kernels_for(tier: Tier, ty: GgmlType) -> Option<&'static InterleavedKernels> {
    match ty {
        GgmlType::Q4_0 => q4_0_kernels_for(tier),
        GgmlType::Q8_0 if tier.is_supported() => match tier {
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => Some(&Q8_0_AVX512),
            _ => None,
        },
        _ => None,
    }
}

/// The reference kernels of `ty`, if it has an interleaved layout.
pub fn reference_kernels(ty: GgmlType) -> Option<&'static InterleavedKernels> {
    match ty {
        GgmlType::Q4_0 => Some(&Q4_0_REFERENCE),
        GgmlType::Q8_0 => Some(&Q8_0_REFERENCE),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
static Q8_0_AVX512: InterleavedKernels = InterleavedKernels {
    matvec: crate::x86_panel::interleaved_q8_0_matvec_avx512_bytes,
    pack: crate::x86_panel::interleaved_q8_0_pack_avx512_bytes,
    group_block: Q8_0_GROUP_BLOCK,
};

#[cfg(target_arch = "x86_64")]
static Q4_0_AVX2: InterleavedKernels = InterleavedKernels {
    matvec: crate::x86_panel::interleaved_q4_0_matvec_avx2_bytes,
    pack: crate::x86_panel::interleaved_q4_0_pack_avx2_bytes,
    group_block: GROUP_BLOCK,
};

#[cfg(target_arch = "x86_64")]
static Q4_0_AVX512: InterleavedKernels = InterleavedKernels {
    matvec: crate::x86_panel::interleaved_q4_0_matvec_avx512_bytes,
    pack: crate::x86_panel::interleaved_q4_0_pack_avx512_bytes,
    group_block: GROUP_BLOCK,
};
