//! Row-interleaved weights for decoding: a repacked copy of a weight matrix, the same size as
//! its rows, whose one-token product needs a third of the instructions of a row-by-row
//! `vec_dot`. Formats: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, and the k-quants Q4_K, Q5_K and Q6_K
//! (see "K-quants" below).
//!
//! A row-by-row `vec_dot` of these formats pays, for every 32-weight block of every row, the
//! widening of its f16 scales, the scale product, the float conversion of its integer sum, the
//! `fma` and, at the end of the row, a horizontal reduction: on AVX-512 about as many
//! instructions as the whole block has bytes, which makes decoding slower than memory on a fast
//! core. Here [`GROUP_ROWS`] rows are stored side by side, block by block. A group's block holds
//! the 16 rows' f16 fields (all 16 `d`, then all 16 `m` for Q4_1 and Q5_1), then for Q5_0 and
//! Q5_1 one 64-byte vector of their fifth bits (below), then the quant bytes as vectors of 64
//! bytes: vector `k` holds bytes `4k..4k + 4` of each row's quants (row `r` at bytes
//! `4r..4r + 4`; for the 4- and 5-bit formats the low nibbles are weights `4k..4k + 4`, the high
//! ones weights `16 + 4k..16 + 4k + 4`). So one `vpdpbusd` with four activation bytes broadcast
//! adds 64 products into the lanes of their own rows, the scale work is one vector operation for
//! 16 rows, and no row needs a reduction.
//!
//! The fifth bits are rearranged so that a vector's worth costs two shifts: byte `4r + i` of the
//! bit vector holds, in bit `k` (0 to 3), the fifth bit of weight `4k + i` of row `r` and, in
//! bit `4 + k`, that of weight `16 + 4k + i`.
//!
//! Groups follow each other, each group's blocks in order (a group is `nb` times its block, as
//! its 16 rows were); the last group is padded with zero rows. [`interleaved_bytes`] gives the
//! size.
//!
//! The arithmetic per row is the format's panel arithmetic ([`crate::panel`]), block after
//! block, on the column [`crate::panel::PanelKernels::prepare`] makes for the format:
//!
//! ```text
//! Q4_0, Q5_0, Q8_0:  acc = fma(f32(Σ v·q_y), d_x·d_y, acc)       v = q − 8, q − 16, q
//! Q4_1, Q5_1:        acc = fma(f32(Σ q·q_y), d_x·d_y, acc)
//!                    acc = fma(m_x, s_y, acc)
//! ```
//!
//! So a product on this layout is bit for bit the panel product of the same row and column, in
//! every tier: decoding and batched prefill give the same logits. It is not `vec_dot`'s f32
//! order.
//!
//! **K-quants.** Q4_K, Q5_K and Q6_K are interleaved super-block by super-block (`KLayout`): a
//! group's super-block holds the 16 rows' f16 fields as 16-lane vectors, then every dword of
//! the rest of their blocks (packed scales, quants, high bits) as a vector of 16 rows × 4
//! bytes, in the order the product reads them (one forward stream per group: Q6_K's first
//! layout, region by region, read three streams at once and decoded from memory at half the
//! row kernel's speed), so that the products unpack scales and values for 16 rows at once.
//! Their arithmetic is the k-quant panels' on a Q8_K column ([`crate::panel`]): exact integer
//! sums `S1`, `S2` per super-block, then two `fma`s; panels are packed from the copy. Criterion,
//! AVX-512, 2026-12-07 (a noisy VM: ranges of alternating runs), one L2-resident MiB: Q4_K
//! 47.8–53.9 µs from the rows (`decode/Q4_K`), 23.1–25.4 µs from the copy; Q6_K 39.5–46.8
//! against 23.2–25.5. 64 MiB from memory: Q4_K 3.8–4.5 ms against 2.8–4.2; Q6_K 3.2–5.0
//! against 3.3–5.9, no gain: its row kernel already streams at memory speed.
//!
//! The products issue no software prefetch, unlike the row kernels on the mapped file
//! ([`crate::prefetch`]). Measured on an AMD EPYC (Zen 4 class) VM, 2026-12-07, `eddy bench -t
//! 1 -n 64`, three alternating rounds: without the prefetch of the next group the copies
//! decoded SmolLM2 Q4_1 at 203–219 tok/s against 174–179 with it, Qwen2.5-as-Q4_0 at 63–66
//! against 52–59, and interleaved Q8_0 went from slower than the row kernel to faster
//! (Qwen2.5-as-Q8_0 44–45 against 32–38 tok/s); the row kernels on the mapped file, for
//! contrast, fell from 112–131 to 44–46 tok/s on SmolLM2-as-Q8_0 without theirs. Not measured
//! on an Intel core yet.

use crate::GgmlType;
use crate::dispatch::Tier;
use crate::kquants::{BlockQ4K, BlockQ5K, BlockQ6K, QK_K};
use crate::num::{f16_to_f32, fmaf};
use crate::panel::{
    COL_BLOCK, K_BLOCK, K_COL_BLOCK, K_COL_BSUM, K_COL_Q, KBlock, KValues, PANEL_BLOCK, PANEL_ROWS,
    SIGNED_D, SIGNED_SUM, f32_at, k_put,
};

/// Rows interleaved in one group.
pub const GROUP_ROWS: usize = 16;

/// Where the parts of one block of a group lie.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// f16 fields per row and block: `d`, or `d` and `m`.
    pub fields: usize,
    /// Whether a vector of fifth bits follows them.
    pub high_bits: bool,
    /// Quant vectors of 16 rows × 4 bytes.
    pub vectors: usize,
}

impl Layout {
    /// Bytes of one row's block in the file's format.
    pub const fn row_block(self) -> usize {
        2 * self.fields + if self.high_bits { 4 } else { 0 } + 4 * self.vectors
    }
    /// Bytes of one block of a group.
    pub const fn group_block(self) -> usize {
        GROUP_ROWS * self.row_block()
    }
    /// Offset of the fifth-bit vector.
    pub const fn high_at(self) -> usize {
        32 * self.fields
    }
    /// Offset of the quant vectors.
    pub const fn quants_at(self) -> usize {
        32 * self.fields + if self.high_bits { 64 } else { 0 }
    }
}

/// The 4- and 5-bit formats' layout: `m` for Q4_1 and Q5_1, fifth bits for Q5_0 and Q5_1.
pub(crate) const fn legacy_layout(m: bool, high_bits: bool) -> Layout {
    Layout {
        fields: if m { 2 } else { 1 },
        high_bits,
        vectors: 4,
    }
}

/// Q8_0's layout: one scale, eight quant vectors.
pub(crate) const Q8_0_LAYOUT: Layout = Layout {
    fields: 1,
    high_bits: false,
    vectors: 8,
};

/// The layout of `ty`, if it has one.
pub(crate) const fn layout(ty: GgmlType) -> Option<Layout> {
    match ty {
        GgmlType::Q4_0 => Some(legacy_layout(false, false)),
        GgmlType::Q4_1 => Some(legacy_layout(true, false)),
        GgmlType::Q5_0 => Some(legacy_layout(false, true)),
        GgmlType::Q5_1 => Some(legacy_layout(true, true)),
        GgmlType::Q8_0 => Some(Q8_0_LAYOUT),
        _ => None,
    }
}

/// Where the parts of one super-block of a group of a k-quant lie: the block's f16 fields go to
/// 16-lane vectors of f16 (32 bytes each, in this order), then its dword regions, each dword to
/// a vector of 16 rows × 4 bytes, region after region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KLayout {
    /// Bytes of one row's super-block in the file's format.
    pub block: usize,
    /// Offsets of the f16 fields in the format's block.
    pub fields: &'static [usize],
    /// `(offset, dwords)` of each region of the format's block, in the group's order.
    pub regions: &'static [(usize, usize)],
}

/// Q4_K: `d`, `dmin`; the 12 scale bytes (three vectors at 64), the 128 quant bytes (32
/// vectors at [`Q4_K_QS`]; vector `8g + k` holds bytes `32g + 4k..32g + 4k + 4` of each row's
/// `qs`: low nibbles weights `64g + 4k..`, high ones `64g + 32 + 4k..`).
pub(crate) const Q4_K_LAYOUT: KLayout = KLayout {
    block: 144,
    fields: &[0, 2],
    regions: &[(4, 3), (16, 32)],
};
/// Offset of the `dmin` vector of a Q4_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q4_K_DMIN: usize = 32;
/// Offset of the three scale vectors of a Q4_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q4_K_SCALES: usize = 64;
/// Offset of the 32 quant vectors of a Q4_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q4_K_QS: usize = 256;

/// Q5_K: as Q4_K (`d`, `dmin`, the scale vectors at [`Q4_K_SCALES`]), then the 32 `qh` bytes
/// (eight vectors at [`Q5_K_QH`]; vector `k` holds bytes `4k..4k + 4` of each row's `qh`, whose
/// bit `j` is the fifth bit of weight `32j + 4k + i`), then the 128 quant bytes as Q4_K's (32
/// vectors at [`Q5_K_QS`]).
pub(crate) const Q5_K_LAYOUT: KLayout = KLayout {
    block: 176,
    fields: &[0, 2],
    regions: &[(4, 3), (16, 8), (48, 32)],
};
/// Offset of the eight `qh` vectors of a Q5_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q5_K_QH: usize = 256;
/// Offset of the 32 quant vectors of a Q5_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q5_K_QS: usize = 256 + 8 * 64;

/// Q6_K: `d`; the 16 scale bytes (four vectors at [`Q6_K_SCALES`]); then the quants in the
/// order the product reads them ([`Q6_K_QUANTS`]): for each half `h` of the super-block and
/// each quarter `q` of its 32 `ql` bytes' positions, four vectors of `ql` bytes `64h + 16q..`,
/// four of `ql` bytes `64h + 32 + 16q..` and four of `qh` bytes `32h + 16q..` (each vector `k`
/// of a run holding the dword at `4k` past the run's start of each row's field).
pub(crate) const Q6_K_LAYOUT: KLayout = KLayout {
    block: 210,
    fields: &[208],
    regions: &[
        (192, 4),
        (0, 4),
        (32, 4),
        (128, 4),
        (16, 4),
        (48, 4),
        (144, 4),
        (64, 4),
        (96, 4),
        (160, 4),
        (80, 4),
        (112, 4),
        (176, 4),
    ],
};
/// Offset of the four scale vectors of a Q6_K group super-block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q6_K_SCALES: usize = 32;
/// Offset of the quant vectors of a Q6_K group super-block: 12 per (half, quarter), in the
/// order (0, 0), (0, 1), (1, 0), (1, 1).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const Q6_K_QUANTS: usize = 32 + 4 * 64;

impl KLayout {
    /// Bytes of one super-block of a group.
    pub const fn group_block(self) -> usize {
        GROUP_ROWS * self.block
    }
}

/// How `ty` is interleaved: `(weights per block, bytes of a row's block, bytes of a group's
/// block)`.
fn shape(ty: GgmlType) -> Option<(usize, usize, usize)> {
    match (layout(ty), k_layout(ty)) {
        (Some(l), _) => Some((32, l.row_block(), l.group_block())),
        (None, Some(k)) => Some((256, k.block, k.group_block())),
        _ => None,
    }
}

/// The k-quant layout of `ty`, if it has one.
pub(crate) const fn k_layout(ty: GgmlType) -> Option<KLayout> {
    match ty {
        GgmlType::Q4_K => Some(Q4_K_LAYOUT),
        GgmlType::Q5_K => Some(Q5_K_LAYOUT),
        GgmlType::Q6_K => Some(Q6_K_LAYOUT),
        _ => None,
    }
}

/// One row's super-block `blk` into lane `r` of the group super-block `dst`.
fn put_k_block(l: KLayout, blk: &[u8], r: usize, dst: &mut [u8]) {
    for (f, &at) in l.fields.iter().enumerate() {
        dst[32 * f + 2 * r..][..2].copy_from_slice(&blk[at..at + 2]);
    }
    let mut v = 32 * l.fields.len();
    for &(at, dwords) in l.regions {
        for k in 0..dwords {
            dst[v + 64 * k + 4 * r..][..4].copy_from_slice(&blk[at + 4 * k..][..4]);
        }
        v += 64 * dwords;
    }
}

/// Lane `r` of the group super-block `src` as the format's super-block (`blk`).
fn get_k_block(l: KLayout, src: &[u8], r: usize, blk: &mut [u8]) {
    for (f, &at) in l.fields.iter().enumerate() {
        blk[at..at + 2].copy_from_slice(&src[32 * f + 2 * r..][..2]);
    }
    let mut v = 32 * l.fields.len();
    for &(at, dwords) in l.regions {
        for k in 0..dwords {
            blk[at + 4 * k..][..4].copy_from_slice(&src[v + 64 * k + 4 * r..][..4]);
        }
        v += 64 * dwords;
    }
}

/// The one-column product on an interleaved matrix: `out[r]` is row `r` times the prepared
/// column `y`, for every `r < out.len()`; `w` holds the `out.len().div_ceil(GROUP_ROWS)` groups
/// of rows of `n` weights.
pub type InterleavedMatvecFn = fn(n: usize, w: &[u8], y: &[u8], out: &mut [f32]);

/// Packs the first `rows` rows (1 to 16) of one interleaved group of rows of `n` weights into
/// the format's panel (see [`crate::panel`]): the same bytes as the format's panel packing of
/// those rows.
pub type InterleavedPackFn = fn(n: usize, group: &[u8], rows: usize, panel: &mut [u8]);

/// The kernels of one tier on one row-interleaved format.
#[derive(Clone, Copy, Debug)]
pub struct InterleavedKernels {
    /// The one-column product (the format's reference arithmetic).
    pub matvec: InterleavedMatvecFn,
    /// The panel packing (the format's reference bytes).
    pub pack: InterleavedPackFn,
    /// Bytes of a group per 32 weights of its rows: a group of rows of `n` weights is `n / 32`
    /// times this (a block of the group for the 32-weight formats, an eighth of a super-block
    /// of the group for the k-quants).
    pub group_block: usize,
}

/// Bytes of a group of `ty` per 32 weights of its rows (see
/// [`InterleavedKernels::group_block`]), if `ty` has an interleaved layout.
pub fn group_block(ty: GgmlType) -> Option<usize> {
    shape(ty).map(|(wb, _, gb)| gb * 32 / wb)
}

/// Bytes of `rows` rows of `ty` of `n` weights interleaved (whole groups), or `None` if `ty`
/// has no interleaved layout, `n` is not whole blocks or the size overflows.
pub fn interleaved_bytes(ty: GgmlType, rows: usize, n: usize) -> Option<usize> {
    let (wb, _, gb) = shape(ty)?;
    if n % wb != 0 {
        return None;
    }
    rows.div_ceil(GROUP_ROWS)
        .checked_mul(n / wb)?
        .checked_mul(gb)
}

/// A row's 32 fifth bits (`qh`, little-endian) as the four bytes of its lane in the bit vector
/// (see the module documentation).
fn spread_high_bits(qh: [u8; 4]) -> [u8; 4] {
    let qh = u32::from_le_bytes(qh);
    let mut out = [0u8; 4];
    for (i, o) in out.iter_mut().enumerate() {
        for k in 0..4 {
            *o |= (((qh >> (4 * k + i)) & 1) << k) as u8;
            *o |= (((qh >> (16 + 4 * k + i)) & 1) << (4 + k)) as u8;
        }
    }
    out
}

/// The inverse of [`spread_high_bits`].
fn gather_high_bits(lane: [u8; 4]) -> [u8; 4] {
    let mut qh = 0u32;
    for (i, &b) in lane.iter().enumerate() {
        for k in 0..4 {
            qh |= u32::from((b >> k) & 1) << (4 * k + i);
            qh |= u32::from((b >> (4 + k)) & 1) << (16 + 4 * k + i);
        }
    }
    qh.to_le_bytes()
}

/// Interleaves `rows` rows of `ty` of `n` weights (`x`, back to back) into `out`
/// ([`interleaved_bytes`] long): per row and block, its f16 fields to its two bytes of each
/// field's 32, its fifth bits spread into its lane of the bit vector, its quant bytes a dword at
/// a time to its lane of each vector. Rows past `rows` in the last group are zero.
///
/// # Panics
/// If `ty` has no interleaved layout, `n` is not whole blocks or a buffer has the wrong length.
pub fn interleave(ty: GgmlType, n: usize, x: &[u8], rows: usize, out: &mut [u8]) {
    let size = interleaved_bytes(ty, rows, n).expect("a format with whole blocks");
    let (wb, bb, gb) = shape(ty).expect("a format with an interleaved layout");
    let nb = n / wb;
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
                match (layout(ty), k_layout(ty)) {
                    (Some(l), _) => put_block(l, blk, r, dst),
                    (None, Some(k)) => put_k_block(k, blk, r, dst),
                    _ => unreachable!("a format with a shape has a layout"),
                }
            }
        }
    }
}

/// One row's block `blk` into lane `r` of the group block `dst`.
fn put_block(l: Layout, blk: &[u8], r: usize, dst: &mut [u8]) {
    for f in 0..l.fields {
        dst[32 * f + 2 * r..][..2].copy_from_slice(&blk[2 * f..2 * f + 2]);
    }
    let mut at = 2 * l.fields;
    if l.high_bits {
        let qh = [blk[at], blk[at + 1], blk[at + 2], blk[at + 3]];
        dst[l.high_at() + 4 * r..][..4].copy_from_slice(&spread_high_bits(qh));
        at += 4;
    }
    for (k, q4) in blk[at..].chunks_exact(4).enumerate() {
        dst[l.quants_at() + 64 * k + 4 * r..][..4].copy_from_slice(q4);
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
    let (wb, bb, gb) = shape(ty).expect("a format with an interleaved layout");
    assert!(n % wb == 0, "{n} weights are not whole blocks");
    let nb = n / wb;
    assert!(b < nb, "block {b} of {nb}");
    assert_eq!(out.len(), bb, "one {ty} block");
    let src = &w[(r / GROUP_ROWS * nb + b) * gb..][..gb];
    let lane = r % GROUP_ROWS;
    let l = match (layout(ty), k_layout(ty)) {
        (Some(l), _) => l,
        (None, Some(k)) => return get_k_block(k, src, lane, out),
        _ => unreachable!("a format with a shape has a layout"),
    };
    for f in 0..l.fields {
        out[2 * f..2 * f + 2].copy_from_slice(&src[32 * f + 2 * lane..][..2]);
    }
    let mut at = 2 * l.fields;
    if l.high_bits {
        let s = &src[l.high_at() + 4 * lane..][..4];
        out[at..at + 4].copy_from_slice(&gather_high_bits([s[0], s[1], s[2], s[3]]));
        at += 4;
    }
    for (k, q4) in out[at..].chunks_exact_mut(4).enumerate() {
        q4.copy_from_slice(&src[l.quants_at() + 64 * k + 4 * lane..][..4]);
    }
}

/// Row `r` of an interleaved matrix of `ty` (rows of `n` weights) as the format's blocks, into
/// `out` (one row's bytes): the inverse of [`interleave`] for one row.
///
/// # Panics
/// If `ty` has no interleaved layout, `n` is not whole blocks, `r` is past the matrix or `out`
/// is not one row.
pub fn row_of(ty: GgmlType, n: usize, w: &[u8], r: usize, out: &mut [u8]) {
    let (wb, bb, _) = shape(ty).expect("a format with an interleaved layout");
    assert!(n % wb == 0, "{n} weights are not whole blocks");
    assert_eq!(out.len(), n / wb * bb, "one {ty} row");
    for (b, blk) in out.chunks_exact_mut(bb).enumerate() {
        block_of(ty, n, w, r, b, blk);
    }
}

/// Checks the buffers of a panel packing from an interleaved group of `gb`-byte blocks;
/// returns the block count.
pub(crate) fn check_pack_of(n: usize, group: &[u8], rows: usize, panel: &[u8], gb: usize) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole blocks");
    assert!((1..=GROUP_ROWS).contains(&rows), "1 to 16 rows, not {rows}");
    let nb = n / 32;
    assert_eq!(group.len(), nb * gb, "interleaved group");
    assert_eq!(panel.len(), nb * PANEL_BLOCK, "panel");
    nb
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

/// Row `lane`'s 32 values of a group block of layout `l`, in weight order, as the panels take
/// them: the quants (with their fifth bits), less `offset`.
fn values(l: Layout, blk: &[u8], lane: usize, offset: i32) -> [i32; 32] {
    let mut v = [0i32; 32];
    let qs = &blk[l.quants_at()..];
    if l.vectors == 8 {
        for (j, x) in v.iter_mut().enumerate() {
            *x = i32::from(qs[64 * (j / 4) + 4 * lane + j % 4] as i8) - offset;
        }
        return v;
    }
    let hb = if l.high_bits {
        &blk[l.high_at() + 4 * lane..][..4]
    } else {
        &[0u8; 4][..]
    };
    for k in 0..4 {
        for i in 0..4 {
            let q = qs[64 * k + 4 * lane + i];
            let (h_lo, h_hi) = ((hb[i] >> k) & 1, (hb[i] >> (4 + k)) & 1);
            v[4 * k + i] = i32::from((q & 0x0f) | (h_lo << 4)) - offset;
            v[16 + 4 * k + i] = i32::from((q >> 4) | (h_hi << 4)) - offset;
        }
    }
    v
}

/// The offset taken from the quants of `ty` (Q4_0's 8, Q5_0's 16), 0 for the others.
fn offset_of(ty: GgmlType) -> i32 {
    match ty {
        GgmlType::Q4_0 => 8,
        GgmlType::Q5_0 => 16,
        _ => 0,
    }
}

/// The scalar product on interleaved `ty`: the formula above, row by row (the reference every
/// SIMD kernel is tested against bit for bit).
fn matvec_reference(ty: GgmlType, n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let l = layout(ty).expect("a format with an interleaved layout");
    let gb = l.group_block();
    let nb = check_matvec_of(n, w, y, out, gb);
    let offset = offset_of(ty);
    for (r, o) in out.iter_mut().enumerate() {
        let group = &w[r / GROUP_ROWS * nb * gb..][..nb * gb];
        let lane = r % GROUP_ROWS;
        let mut acc = 0f32;
        for (blk, yb) in group.chunks_exact(gb).zip(y.chunks_exact(COL_BLOCK)) {
            let v = values(l, blk, lane, offset);
            let isum: i32 = v
                .iter()
                .zip(&yb[..32])
                .map(|(&v, &q)| v * i32::from(q as i8))
                .sum();
            let dx = f16_to_f32([blk[2 * lane], blk[2 * lane + 1]]);
            acc = fmaf(isum as f32, dx * f32_at(yb, 32), acc);
            if l.fields == 2 {
                let mx = f16_to_f32([blk[32 + 2 * lane], blk[33 + 2 * lane]]);
                acc = fmaf(mx, f32_at(yb, 36), acc);
            }
        }
        *o = acc;
    }
}

/// Packs the first `rows` rows of one interleaved group of `ty` into the format's panel: the
/// values (less the offset) to the value vectors, then `d` and `m` widened (Q4_1, Q5_1) or `d`
/// and the row sums of the values (the signed layout). Lanes of rows past `rows` are zero.
fn pack_reference(ty: GgmlType, n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    let l = layout(ty).expect("a format with an interleaved layout");
    let gb = l.group_block();
    check_pack_of(n, group, rows, panel, gb);
    let offset = offset_of(ty);
    for (src, dst) in group
        .chunks_exact(gb)
        .zip(panel.chunks_exact_mut(PANEL_BLOCK))
    {
        dst.fill(0);
        for r in 0..rows.min(PANEL_ROWS) {
            let v = values(l, src, r, offset);
            for (j, &x) in v.iter().enumerate() {
                dst[64 * (j / 4) + 4 * r + j % 4] = x as u8;
            }
            let d = f16_to_f32([src[2 * r], src[2 * r + 1]]);
            dst[SIGNED_D + 4 * r..][..4].copy_from_slice(&d.to_le_bytes());
            let last = if l.fields == 2 {
                f16_to_f32([src[32 + 2 * r], src[33 + 2 * r]]).to_le_bytes()
            } else {
                v.iter().sum::<i32>().to_le_bytes()
            };
            dst[SIGNED_SUM + 4 * r..][..4].copy_from_slice(&last);
        }
    }
}

macro_rules! reference_kernels {
    ($($name:ident, $matvec:ident, $pack:ident, $ty:ident;)*) => {$(
        #[doc = concat!("The scalar product on interleaved ", stringify!($ty), ".")]
        pub fn $matvec(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
            matvec_reference(GgmlType::$ty, n, w, y, out);
        }
        #[doc = concat!("The reference packing of an interleaved ", stringify!($ty), " group.")]
        pub fn $pack(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
            pack_reference(GgmlType::$ty, n, group, rows, panel);
        }
        static $name: InterleavedKernels = InterleavedKernels {
            matvec: $matvec,
            pack: $pack,
            group_block: layout(GgmlType::$ty).unwrap().group_block(),
        };
    )*};
}

reference_kernels! {
    Q4_0_REFERENCE, matvec_q4_0_reference, pack_q4_0_panel, Q4_0;
    Q4_1_REFERENCE, matvec_q4_1_reference, pack_q4_1_panel, Q4_1;
    Q5_0_REFERENCE, matvec_q5_0_reference, pack_q5_0_panel, Q5_0;
    Q5_1_REFERENCE, matvec_q5_1_reference, pack_q5_1_panel, Q5_1;
    Q8_0_REFERENCE, matvec_q8_0_reference, pack_q8_0_panel, Q8_0;
}

/// Checks the buffers of an interleaved k-quant product of `gs`-byte group super-blocks;
/// returns the super-block count per row.
pub(crate) fn check_k_matvec_of(n: usize, w: &[u8], y: &[u8], out: &[f32], gs: usize) -> usize {
    assert!(n % QK_K == 0, "{n} weights are not whole super-blocks");
    let nb = n / QK_K;
    assert_eq!(
        w.len(),
        out.len().div_ceil(GROUP_ROWS) * nb * gs,
        "interleaved rows"
    );
    assert_eq!(y.len(), nb * K_COL_BLOCK, "prepared column");
    nb
}

/// Checks the buffers of a k-quant panel packing from an interleaved group of `gs`-byte
/// super-blocks; returns the super-block count.
pub(crate) fn check_k_pack_of(
    n: usize,
    group: &[u8],
    rows: usize,
    panel: &[u8],
    gs: usize,
) -> usize {
    assert!(n % QK_K == 0, "{n} weights are not whole super-blocks");
    assert!((1..=GROUP_ROWS).contains(&rows), "1 to 16 rows, not {rows}");
    let nb = n / QK_K;
    assert_eq!(group.len(), nb * gs, "interleaved group");
    assert_eq!(panel.len(), nb * K_BLOCK, "panel");
    nb
}

/// Row `lane` of the group super-block `src` of `B`, decoded as the k-quant panels take it.
fn k_lane_values<B: KBlock>(src: &[u8], lane: usize) -> KValues {
    let l = k_layout(B::TYPE).expect("a k-quant with an interleaved layout");
    let mut blk = [0u8; 256];
    get_k_block(l, src, lane, &mut blk[..l.block]);
    match crate::block::as_blocks::<B>(&blk[..l.block]) {
        Some([b]) => b.k_values(),
        _ => unreachable!("one super-block of bytes is one block"),
    }
}

/// The scalar product on an interleaved k-quant `B`: the k-quant panels' arithmetic (see
/// [`crate::panel`]) row by row, super-block after super-block, on a Q8_K column.
fn k_matvec_reference<B: KBlock>(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let gs = k_layout(B::TYPE)
        .expect("an interleaved k-quant")
        .group_block();
    let nb = check_k_matvec_of(n, w, y, out, gs);
    let i16_at = |b: &[u8], at: usize| i32::from(i16::from_le_bytes([b[at], b[at + 1]]));
    for (r, o) in out.iter_mut().enumerate() {
        let group = &w[r / GROUP_ROWS * nb * gs..][..nb * gs];
        let mut acc = 0f32;
        for (src, yb) in group.chunks_exact(gs).zip(y.chunks_exact(K_COL_BLOCK)) {
            let v = k_lane_values::<B>(src, r % GROUP_ROWS);
            let (mut s1, mut s2) = (0i32, 0i32);
            for k in 0..16 {
                let isum: i32 = (16 * k..16 * k + 16)
                    .map(|i| i32::from(v.u[i]) * i32::from(yb[K_COL_Q + i] as i8))
                    .sum();
                s1 += isum * v.sc[k];
                s2 += i32::from(v.m[k]) * i16_at(yb, K_COL_BSUM + 2 * k);
            }
            let dy = f32_at(yb, 0);
            acc = fmaf(s1 as f32, v.d * dy, acc);
            acc = fmaf(s2 as f32, v.neg_m * dy, acc);
        }
        *o = acc;
    }
}

/// Packs the first `rows` rows of one interleaved group of the k-quant `B` into the k-quant
/// panel: the bytes the panel packing of those rows writes. Lanes past `rows` are zero.
fn k_pack_reference<B: KBlock>(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    let gs = k_layout(B::TYPE)
        .expect("an interleaved k-quant")
        .group_block();
    check_k_pack_of(n, group, rows, panel, gs);
    for (src, dst) in group.chunks_exact(gs).zip(panel.chunks_exact_mut(K_BLOCK)) {
        dst.fill(0);
        for r in 0..rows {
            k_put(&k_lane_values::<B>(src, r), r, dst);
        }
    }
}

macro_rules! k_reference_kernels {
    ($($name:ident, $matvec:ident, $pack:ident, $ty:ident, $block:ty, $layout:ident;)*) => {$(
        #[doc = concat!("The scalar product on interleaved ", stringify!($ty), ".")]
        pub fn $matvec(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
            k_matvec_reference::<$block>(n, w, y, out);
        }
        #[doc = concat!("The reference packing of an interleaved ", stringify!($ty), " group.")]
        pub fn $pack(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
            k_pack_reference::<$block>(n, group, rows, panel);
        }
        static $name: InterleavedKernels = InterleavedKernels {
            matvec: $matvec,
            pack: $pack,
            group_block: $layout.group_block() / 8,
        };
    )*};
}

k_reference_kernels! {
    Q4_K_REFERENCE, matvec_q4_k_reference, pack_q4_k_panel, Q4_K, BlockQ4K, Q4_K_LAYOUT;
    Q5_K_REFERENCE, matvec_q5_k_reference, pack_q5_k_panel, Q5_K, BlockQ5K, Q5_K_LAYOUT;
    Q6_K_REFERENCE, matvec_q6_k_reference, pack_q6_k_panel, Q6_K, BlockQ6K, Q6_K_LAYOUT;
}

/// The reference kernels of `ty`, if it has an interleaved layout.
pub fn reference_kernels(ty: GgmlType) -> Option<&'static InterleavedKernels> {
    match ty {
        GgmlType::Q4_0 => Some(&Q4_0_REFERENCE),
        GgmlType::Q4_1 => Some(&Q4_1_REFERENCE),
        GgmlType::Q5_0 => Some(&Q5_0_REFERENCE),
        GgmlType::Q5_1 => Some(&Q5_1_REFERENCE),
        GgmlType::Q8_0 => Some(&Q8_0_REFERENCE),
        GgmlType::Q4_K => Some(&Q4_K_REFERENCE),
        GgmlType::Q5_K => Some(&Q5_K_REFERENCE),
        GgmlType::Q6_K => Some(&Q6_K_REFERENCE),
        _ => None,
    }
}

/// The SIMD kernels on the interleaved layout of `ty` in `tier`, or `None` if the CPU does not
/// support `tier` or the tier has none for `ty` (then a caller keeps the rows as they are: the
/// layout pays only where its product is fast). AVX-512 has all eight formats (Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), AVX2 the first four.
pub fn kernels_for(tier: Tier, ty: GgmlType) -> Option<&'static InterleavedKernels> {
    if !tier.is_supported() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::x86_panel as x;
        match (tier, ty) {
            (Tier::Avx512, GgmlType::Q4_0) => Some(&x::INTERLEAVED_Q4_0_AVX512),
            (Tier::Avx512, GgmlType::Q4_1) => Some(&x::INTERLEAVED_Q4_1_AVX512),
            (Tier::Avx512, GgmlType::Q5_0) => Some(&x::INTERLEAVED_Q5_0_AVX512),
            (Tier::Avx512, GgmlType::Q5_1) => Some(&x::INTERLEAVED_Q5_1_AVX512),
            (Tier::Avx512, GgmlType::Q8_0) => Some(&x::INTERLEAVED_Q8_0_AVX512),
            (Tier::Avx512, GgmlType::Q4_K) => Some(&x::INTERLEAVED_Q4_K_AVX512),
            (Tier::Avx512, GgmlType::Q5_K) => Some(&x::INTERLEAVED_Q5_K_AVX512),
            (Tier::Avx512, GgmlType::Q6_K) => Some(&x::INTERLEAVED_Q6_K_AVX512),
            (Tier::Avx2, GgmlType::Q4_0) => Some(&x::INTERLEAVED_Q4_0_AVX2),
            (Tier::Avx2, GgmlType::Q4_1) => Some(&x::INTERLEAVED_Q4_1_AVX2),
            (Tier::Avx2, GgmlType::Q5_0) => Some(&x::INTERLEAVED_Q5_0_AVX2),
            (Tier::Avx2, GgmlType::Q5_1) => Some(&x::INTERLEAVED_Q5_1_AVX2),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}
