//! Packed-panel matrix products for batched prefill: a GEMM-style path for many activation
//! columns at once.
//!
//! [`crate::matrix`]'s multi-column kernels keep the single-column arithmetic, so every block
//! of every (row, column) pair pays its own widening, scale product and float conversion: on
//! AVX-512 that is five or six instructions next to one `vpdpbusd` of 64 products. Here a few
//! weight rows are first repacked into a small panel (in the caller's scratch; the weights
//! themselves stay as mapped) whose layout puts [`PANEL_ROWS`] rows side by side in the lanes
//! of a register: quants widened to bytes and transposed so that lane `r` of the `k`-th vector
//! holds weights `4k..4k + 4` of row `r`, scales already in f32. One `vpdpbusd` of that vector
//! with four activation bytes broadcast then adds 64 useful products, a block's integer sum
//! ends in the lane of its row with no horizontal reduction, and the scale work is one vector
//! operation per block for all rows. The packing is paid once per panel and reused for every
//! column.
//!
//! The arithmetic is fixed per (row, column), independent of how rows are grouped into panels,
//! panels split over threads or columns grouped into calls, so results are bit-identical for
//! any thread count. It is, for Q4_1 weights against Q8_1 activations, block after block:
//!
//! ```text
//! acc = fma(f32(Σ q_x·q_y), d_x·d_y, acc)
//! acc = fma(m_x, s_y, acc)
//! ```
//!
//! with `d_x, m_x, d_y, s_y` the f16 fields widened (exact) and `d_x·d_y` rounded to f32. This
//! is a different f32 order from [`crate::TypeTraits::vec_dot`]'s, so a panel product and a
//! `vec_dot` of the same row and column agree to rounding, not bit for bit. The scalar kernels
//! of [`panel_kernels_reference`] compute exactly the formula above (with a software fused
//! multiply-add) and are the reference every SIMD panel kernel is tested against bit for bit.
//!
//! Q4_0, Q5_0, Q8_0 and IQ4_NL weights (against Q8_0 activations) pack into a second layout of
//! signed values with one product kernel per tier, and Q4_K, Q5_K, Q6_K and IQ4_XS (against
//! Q8_K) into a third of 256-weight super-blocks with integer sub-block scales (one product per
//! tier, with a signed variant for IQ4_XS), each described at its section below.
//! SIMD kernels for Q4_1, by tier ([`panel_kernels_for`]):
//!
//! - AVX-512 VNNI (`x86_panel`): one 512-bit vector of 16 rows per weight vector, `vpdpbusd`
//!   with four activation bytes broadcast, eight columns per call.
//! - AVX2 with FMA and F16C (`x86_panel`): two 256-bit halves of eight rows, `vpmaddubsw` into
//!   i16 pairs summed over the block with `vpaddw` and into i32 by one `vpmaddwd` per block,
//!   three columns per call; its own column preparation.
//! - AArch64 dotprod (`aarch64_panel`): four 128-bit vectors of four rows, `sdot` by element
//!   (the four activation bytes taken from a lane), two columns per call.
//! - AArch64 baseline NEON (`aarch64_panel`, no `sdot`: Cortex-A72 and the like): `smull`/`smlal`
//!   into i16 over the block, then pairwise adds into i32, two columns per call.
//! - AArch64 i8mm (`aarch64_i8mm`, Armv8.6 FEAT_I8MM): `smmla`, two rows by two columns per
//!   instruction, two columns per call, on the same layout with the value bytes of each block
//!   reordered into row pairs (the i8mm section below).
//!
//! The AArch64 tiers share one packing (the i8mm tier then reorders it) and prepare columns with
//! the scalar reference code. The signed layout has products for the same five tiers, the
//! k-quant layout for all but baseline NEON; AVX-512 and AVX2 pack the signed layout with SIMD
//! code and Q5_1 with the portable decoding followed by 4 × 4 dword transposes
//! (`x86_panel::q5_1_pack_avx2`); the AArch64 tiers, and the k-quant layout everywhere, use the
//! portable packing. The i8mm tier has `smmla` products for
//! every format with panel kernels (Q4_1 and Q5_1, the signed and the k-quant layouts).
//!
//! Activations are prepared once per column ([`PanelKernels::prepare`]): quantized exactly as
//! [`crate::from_float`] quantizes them for `vec_dot` (same quants, same f16 scales), then laid
//! out per block as the 32 quants followed by `d_y` and `s_y` in f32, which the kernels
//! broadcast straight from memory.

use crate::GgmlType;
use crate::block::GgmlBlock;
use crate::dispatch::Tier;
use crate::iquants::{BlockIQ4NL, BlockIQ4XS, KVALUES_IQ4NL, xs_scale};
use crate::kquants::{BlockQ4K, BlockQ5K, BlockQ6K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::num::{f16_to_f32, fmaf};
use crate::traits::blocks;

/// Weight rows in one panel (the lanes of a 512-bit register of i32; two 256-bit or four 128-bit
/// registers in the other tiers).
pub const PANEL_ROWS: usize = 16;

/// Bytes of one prepared activation block: 32 quants, `d_y` and `s_y` as f32.
pub(crate) const COL_BLOCK: usize = 40;
/// Bytes of one packed weight block for a panel: 8 vectors of 16 rows × 4 quant bytes, then 16
/// `d_x` and 16 `m_x` as f32.
pub(crate) const PANEL_BLOCK: usize = 8 * 64 + 2 * 64;

/// Packs `rows` weight rows into a panel.
pub type PackFn = fn(n: usize, x: &[u8], rows: usize, panel: &mut [u8]);
/// Prepares one activation column.
pub type PrepareFn = fn(x: &[f32], out: &mut [u8]);
/// Multiplies a packed panel by prepared columns.
pub type PanelRunFn = fn(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]);

/// The panel kernels of one weight format in one tier. The function pointers take raw bytes
/// and panic if the lengths do not match (callers size them with the `*_bytes` functions).
#[derive(Clone, Copy, Debug)]
pub struct PanelKernels {
    /// The weight format.
    pub ty: GgmlType,
    /// Bytes of one panel of [`PANEL_ROWS`] rows of `n` weights.
    pub panel_bytes: fn(n: usize) -> usize,
    /// Bytes of one prepared activation column of `n` values.
    pub column_bytes: fn(n: usize) -> usize,
    /// Packs `rows` (1 to [`PANEL_ROWS`]) weight rows of `n` weights (`x`, the rows back to
    /// back in the file's format) into `panel` (`panel_bytes(n)`); the missing rows are zero.
    pub pack: PackFn,
    /// Prepares one activation column `x` into `out` (`column_bytes(x.len())`).
    pub prepare: PrepareFn,
    /// `out[j * PANEL_ROWS + r]` = row `r` of the panel times column `j`, for every column
    /// `j < out.len() / PANEL_ROWS` (column `j` is `ys[j * y_stride..][..column_bytes(n)]`).
    pub run: PanelRunFn,
    /// A matrix-vector product on one prepared column, without packing: `out[r]` is, bit for
    /// bit, what the same tier's [`crate::TypeTraits::vec_dot`] gives for weight row `r` (`x`,
    /// `out.len()` rows of `n` weights in the file's format) and the `vec_dot_type` column the
    /// preparation came from — a decode step's kernel with fewer instructions. `None` where the
    /// tier has none.
    pub matvec: Option<MatvecFn>,
}

/// `(n, x, y, out)`: see [`PanelKernels::matvec`].
pub type MatvecFn = fn(n: usize, x: &[u8], y: &[u8], out: &mut [f32]);

fn panel_bytes_32(n: usize) -> usize {
    n / 32 * PANEL_BLOCK
}

fn column_bytes_32(n: usize) -> usize {
    n / 32 * COL_BLOCK
}

/// Checks the buffers of a pack call; returns the block count per row.
pub(crate) fn check_pack(n: usize, x: &[u8], rows: usize, panel: &[u8]) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole Q4_1 blocks");
    assert!(
        (1..=PANEL_ROWS).contains(&rows),
        "a panel holds 1 to {PANEL_ROWS} rows, not {rows}"
    );
    let nb = n / 32;
    assert_eq!(x.len(), rows * nb * 20, "Q4_1 rows");
    assert_eq!(panel.len(), nb * PANEL_BLOCK, "Q4_1 panel");
    nb
}

/// Checks the buffers of a run call; returns the block count and the column count.
pub(crate) fn check_run(
    n: usize,
    panel: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &[f32],
) -> (usize, usize) {
    assert!(n % 32 == 0, "{n} weights are not whole 32-weight blocks");
    let nb = n / 32;
    assert_eq!(panel.len(), nb * PANEL_BLOCK, "panel");
    assert!(
        out.len() % PANEL_ROWS == 0,
        "output is not whole panel columns"
    );
    let cols = out.len() / PANEL_ROWS;
    if cols > 0 {
        assert!(y_stride >= nb * COL_BLOCK, "column stride below a column");
        assert!(
            ys.len() >= (cols - 1) * y_stride + nb * COL_BLOCK,
            "{cols} columns do not fit in {} bytes",
            ys.len()
        );
    }
    (nb, cols)
}

/// Scalar Q4_1 packing (the reference layout).
fn q4_1_pack_scalar(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack(n, x, rows, panel);
    let xb = blocks::<BlockQ4_1>(x);
    panel.fill(0);
    for (b, out) in panel.chunks_exact_mut(PANEL_BLOCK).enumerate() {
        for r in 0..rows {
            let blk = &xb[r * nb + b];
            for k in 0..8 {
                for i in 0..4 {
                    // Weights 0..16 are the low nibbles of qs, 16..32 the high ones.
                    let j = 4 * k + i;
                    let q = if j < 16 {
                        blk.qs[j] & 0x0f
                    } else {
                        blk.qs[j - 16] >> 4
                    };
                    out[k * 64 + r * 4 + i] = q;
                }
            }
            out[512 + 4 * r..][..4].copy_from_slice(&f16_to_f32(blk.d).to_le_bytes());
            out[576 + 4 * r..][..4].copy_from_slice(&f16_to_f32(blk.m).to_le_bytes());
        }
    }
}

/// Quantizes a column as `from_float` does for Q8_1 and lays it out in prepared blocks.
fn q8_1_prepare(x: &[f32], out: &mut [u8]) {
    check_prepare(x, out);
    for (src, dst) in x.chunks_exact(32).zip(out.chunks_exact_mut(COL_BLOCK)) {
        q8_1_prepare_block(src, dst);
    }
}

pub(crate) fn check_prepare(x: &[f32], out: &[u8]) {
    assert!(x.len() % 32 == 0, "{} values are not whole blocks", x.len());
    assert_eq!(out.len(), x.len() / 32 * COL_BLOCK, "prepared column");
}

/// One block of [`q8_1_prepare`]: 32 values into [`COL_BLOCK`] bytes.
pub(crate) fn q8_1_prepare_block(src: &[f32], dst: &mut [u8]) {
    let mut blk = [<BlockQ8_1 as GgmlBlock>::ZERO];
    BlockQ8_1::from_float(src, &mut blk);
    for (d, &q) in dst[..32].iter_mut().zip(&blk[0].qs) {
        *d = q as u8;
    }
    dst[32..36].copy_from_slice(&f16_to_f32(blk[0].d).to_le_bytes());
    dst[36..40].copy_from_slice(&f16_to_f32(blk[0].s).to_le_bytes());
}

pub(crate) fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Scalar Q4_1 panel product: the formula of the module documentation, lane by lane.
fn q4_1_run_scalar(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]) {
    let (nb, cols) = check_run(n, panel, ys, y_stride, out);
    for j in 0..cols {
        let y = &ys[j * y_stride..][..nb * COL_BLOCK];
        for r in 0..PANEL_ROWS {
            let mut acc = 0f32;
            for (p, yb) in panel
                .chunks_exact(PANEL_BLOCK)
                .zip(y.chunks_exact(COL_BLOCK))
            {
                let mut isum = 0i32;
                for k in 0..8 {
                    for i in 0..4 {
                        isum += i32::from(p[k * 64 + r * 4 + i]) * i32::from(yb[4 * k + i] as i8);
                    }
                }
                let (dx, mx) = (f32_at(p, 512 + 4 * r), f32_at(p, 576 + 4 * r));
                let (dy, sy) = (f32_at(yb, 32), f32_at(yb, 36));
                acc = fmaf(isum as f32, dx * dy, acc);
                acc = fmaf(mx, sy, acc);
            }
            out[j * PANEL_ROWS + r] = acc;
        }
    }
}

/// Portable Q5_1 packing into Q4_1's layout: the 5-bit values (0..31) as bytes, `d` and `m`.
/// Q4_1's product kernels serve it on the tiers that sum byte products straight into i32
/// (the reference, AVX-512 VNNI's `vpdpbusd`, dotprod's `sdot`, i8mm's `smmla`); the AVX2 and
/// baseline NEON Q4_1 kernels sum in i16, which 5-bit values would overflow: AVX2 widens to
/// i32 twice as often (`Q5_1_AVX2`), baseline NEON uses the signed layout's widening product
/// (`Q5_1_NEON`).
fn q5_1_pack(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack_of(n, x, rows, panel, size_of::<BlockQ5_1>(), GgmlType::Q5_1);
    let xb = blocks::<BlockQ5_1>(x);
    for (b, out) in panel.chunks_exact_mut(PANEL_BLOCK).enumerate() {
        if rows < PANEL_ROWS {
            out.fill(0);
        }
        for r in 0..rows {
            let u = q5_1_unpack(&xb[r * nb + b], r, out);
            for (k, u4) in u.chunks_exact(4).enumerate() {
                out[k * 64 + r * 4..][..4].copy_from_slice(u4);
            }
        }
    }
}

/// The 32 values (0..31) of a Q5_1 block, in order; its `d` and `m`, widened, stored as row `r`'s
/// in the packed block `out`.
pub(crate) fn q5_1_unpack(blk: &BlockQ5_1, r: usize, out: &mut [u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes(blk.qh);
    let mut u = [0u8; 32];
    for (j, &q) in blk.qs.iter().enumerate() {
        u[j] = (q & 0x0f) | (((qh >> j) & 1) << 4) as u8;
        u[j + 16] = (q >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
    }
    out[512 + 4 * r..][..4].copy_from_slice(&f16_to_f32(blk.d).to_le_bytes());
    out[576 + 4 * r..][..4].copy_from_slice(&f16_to_f32(blk.m).to_le_bytes());
    u
}

static Q5_1_SCALAR: PanelKernels = PanelKernels {
    ty: GgmlType::Q5_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: q5_1_pack,
    prepare: q8_1_prepare,
    run: q4_1_run_scalar,
    matvec: None,
};

#[cfg(target_arch = "x86_64")]
static Q5_1_AVX512: PanelKernels = PanelKernels {
    ty: GgmlType::Q5_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::x86_panel::q5_1_pack_avx2,
    prepare: crate::x86_panel::q8_1_prepare_avx512_bytes,
    run: crate::x86_panel::q4_1_run_avx512_bytes,
    matvec: Some(crate::x86_avx512::matvec_q5_1_prepared_avx512_bytes),
};

/// Q5_1 on AVX2: Q4_1's product with the i16 pair sums widened every four vectors instead of
/// eight, since 5-bit values would overflow them.
#[cfg(target_arch = "x86_64")]
static Q5_1_AVX2: PanelKernels = PanelKernels {
    ty: GgmlType::Q5_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::x86_panel::q5_1_pack_avx2,
    prepare: crate::x86_panel::q8_1_prepare_avx2_bytes,
    run: crate::x86_panel::q5_1_run_avx2_bytes,
    matvec: None,
};

#[cfg(target_arch = "aarch64")]
static Q5_1_DOTPROD: PanelKernels = PanelKernels {
    ty: GgmlType::Q5_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: q5_1_pack,
    prepare: q8_1_prepare,
    run: crate::aarch64_panel::q4_1_run_dotprod_bytes,
    matvec: None,
};

/// Q5_1 on baseline NEON: the signed layout's widening product (`smull` + `sadalp` into i32)
/// with Q4_1's scale step, since Q4_1's i16 block sums overflow with 5-bit values.
#[cfg(target_arch = "aarch64")]
static Q5_1_NEON: PanelKernels = PanelKernels {
    ty: GgmlType::Q5_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: q5_1_pack,
    prepare: q8_1_prepare,
    run: crate::aarch64_panel::q5_1_run_neon_bytes,
    matvec: None,
};

static Q4_1_SCALAR: PanelKernels = PanelKernels {
    ty: GgmlType::Q4_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: q4_1_pack_scalar,
    prepare: q8_1_prepare,
    run: q4_1_run_scalar,
    matvec: None,
};

#[cfg(target_arch = "x86_64")]
static Q4_1_AVX512: PanelKernels = PanelKernels {
    ty: GgmlType::Q4_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::x86_panel::q4_1_pack_avx512_bytes,
    prepare: crate::x86_panel::q8_1_prepare_avx512_bytes,
    run: crate::x86_panel::q4_1_run_avx512_bytes,
    matvec: Some(crate::x86_avx512::matvec_q4_1_prepared_avx512_bytes),
};

#[cfg(target_arch = "x86_64")]
static Q4_1_AVX2: PanelKernels = PanelKernels {
    ty: GgmlType::Q4_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::x86_panel::q4_1_pack_avx2_bytes,
    prepare: crate::x86_panel::q8_1_prepare_avx2_bytes,
    run: crate::x86_panel::q4_1_run_avx2_bytes,
    matvec: None,
};

#[cfg(target_arch = "aarch64")]
static Q4_1_DOTPROD: PanelKernels = PanelKernels {
    ty: GgmlType::Q4_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::aarch64_panel::q4_1_pack_neon_bytes,
    prepare: q8_1_prepare,
    run: crate::aarch64_panel::q4_1_run_dotprod_bytes,
    matvec: None,
};

#[cfg(target_arch = "aarch64")]
static Q4_1_NEON: PanelKernels = PanelKernels {
    ty: GgmlType::Q4_1,
    panel_bytes: panel_bytes_32,
    column_bytes: column_bytes_32,
    pack: crate::aarch64_panel::q4_1_pack_neon_bytes,
    prepare: q8_1_prepare,
    run: crate::aarch64_panel::q4_1_run_neon_bytes,
    matvec: None,
};

// ---------------------------------------------------------------------------------------------
// Q4_0, Q5_0, Q8_0 and IQ4_NL weights against Q8_0 activations.
//
// The four formats pack into one layout of signed values, so one product kernel per tier
// serves them all. Per block, 512 bytes hold the values `v = q - 8` (Q4_0), `q - 16` (Q5_0),
// `q` (Q8_0) or the level `KVALUES_IQ4NL[q]` (IQ4_NL, −127..113) as i8, transposed as for
// Q4_1 (byte `64 k + 4 r + i` is value `4 k + i` of row `r`); then the 16 `d_x` widened to
// f32; then the 16 row sums `Σ v` as i32 (which the AVX-512 kernel needs to undo its unsigned
// offset). The arithmetic, block after block:
//
//     acc = fma(f32(Σ v·q_y), d_x·d_y, acc)
//
// The column is prepared exactly as for Q4_1 ([`q8_1_prepare`]): its quants and `d_y` are
// those of Q8_0's `from_float` (ggml's CPU conversion is the same for Q8_0 and Q8_1), and the
// `s_y` field is not read.
//
// Every tier's product is exact for any i8 value, so for all four formats: AVX-512 adds
// `(q_y + 128)·v` four at a time into i32 (`vpdpbusd`); AVX2's `vpmaddubsw` pairs are
// `|v|·(±q_y)` of two weights, at most 2·128·127 < 2^15 in magnitude; NEON's `smull` products
// are at most 2^14 before `sadalp` widens them to i32; `sdot` and `smmla` add into i32.

/// Byte offset of the `d_x` values in a packed block of signed values.
pub(crate) const SIGNED_D: usize = 512;
/// Byte offset of the row sums `Σ v` in a packed block of signed values.
pub(crate) const SIGNED_SUM: usize = 576;

/// The 32 signed values and the f16 scale of one block of a Q8_0-partner format.
trait SignedBlock: GgmlBlock {
    fn values(&self) -> ([u8; 2], [i8; 32]);
}

impl SignedBlock for BlockQ4_0 {
    fn values(&self) -> ([u8; 2], [i8; 32]) {
        let mut v = [0i8; 32];
        for (j, &q) in self.qs.iter().enumerate() {
            v[j] = (q & 0x0f) as i8 - 8;
            v[j + 16] = (q >> 4) as i8 - 8;
        }
        (self.d, v)
    }
}

impl SignedBlock for BlockQ5_0 {
    fn values(&self) -> ([u8; 2], [i8; 32]) {
        let qh = u32::from_le_bytes(self.qh);
        let mut v = [0i8; 32];
        for (j, &q) in self.qs.iter().enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            v[j] = ((q & 0x0f) as u32 | h0) as i8 - 16;
            v[j + 16] = ((q >> 4) as u32 | h1) as i8 - 16;
        }
        (self.d, v)
    }
}

impl SignedBlock for BlockQ8_0 {
    fn values(&self) -> ([u8; 2], [i8; 32]) {
        (self.d, self.qs)
    }
}

impl SignedBlock for BlockIQ4NL {
    fn values(&self) -> ([u8; 2], [i8; 32]) {
        let mut v = [0i8; 32];
        for (j, &q) in self.qs.iter().enumerate() {
            v[j] = KVALUES_IQ4NL[usize::from(q & 0x0f)];
            v[j + 16] = KVALUES_IQ4NL[usize::from(q >> 4)];
        }
        (self.d, v)
    }
}

/// Packs rows of a Q8_0-partner format into the signed layout (every tier uses this packing):
/// per block, each row's values are decoded into a tile of 16 × 8 dwords, which is then
/// written transposed (dword `k` of row `r` to word `16 k + r`), so the scatter moves whole
/// dwords rather than bytes.
fn signed_pack<B: SignedBlock>(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack_of(n, x, rows, panel, size_of::<B>(), B::TYPE);
    let xb = blocks::<B>(x);
    for (b, out) in panel.chunks_exact_mut(PANEL_BLOCK).enumerate() {
        let mut tile = [[0u32; 8]; PANEL_ROWS];
        let mut d = [0f32; PANEL_ROWS];
        let mut sums = [0i32; PANEL_ROWS];
        for r in 0..rows {
            let (dh, v) = xb[r * nb + b].values();
            d[r] = f16_to_f32(dh);
            sums[r] = v.iter().map(|&q| i32::from(q)).sum();
            for (t, q) in tile[r].iter_mut().zip(v.chunks_exact(4)) {
                *t = u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
            }
        }
        let (vals, rest) = out.split_at_mut(SIGNED_D);
        for (k, vk) in vals.chunks_exact_mut(64).enumerate() {
            for (r, w) in vk.chunks_exact_mut(4).enumerate() {
                w.copy_from_slice(&tile[r][k].to_le_bytes());
            }
        }
        for (r, (dr, sr)) in d.iter().zip(&sums).enumerate() {
            rest[4 * r..][..4].copy_from_slice(&dr.to_le_bytes());
            rest[SIGNED_SUM - SIGNED_D + 4 * r..][..4].copy_from_slice(&sr.to_le_bytes());
        }
    }
}

/// Checks the buffers of a pack call of a format with `block_bytes`-byte blocks of 32 weights;
/// returns the block count per row.
pub(crate) fn check_pack_of(
    n: usize,
    x: &[u8],
    rows: usize,
    panel: &[u8],
    block_bytes: usize,
    ty: GgmlType,
) -> usize {
    assert!(n % 32 == 0, "{n} weights are not whole {ty} blocks");
    assert!(
        (1..=PANEL_ROWS).contains(&rows),
        "a panel holds 1 to {PANEL_ROWS} rows, not {rows}"
    );
    let nb = n / 32;
    assert_eq!(x.len(), rows * nb * block_bytes, "{ty} rows");
    assert_eq!(panel.len(), nb * PANEL_BLOCK, "{ty} panel");
    nb
}

/// Scalar product of a signed panel with prepared columns: the formula above, lane by lane.
fn signed_run_scalar(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]) {
    let (nb, cols) = check_run(n, panel, ys, y_stride, out);
    for j in 0..cols {
        let y = &ys[j * y_stride..][..nb * COL_BLOCK];
        for r in 0..PANEL_ROWS {
            let mut acc = 0f32;
            for (p, yb) in panel
                .chunks_exact(PANEL_BLOCK)
                .zip(y.chunks_exact(COL_BLOCK))
            {
                let mut isum = 0i32;
                for k in 0..8 {
                    for i in 0..4 {
                        isum +=
                            i32::from(p[k * 64 + r * 4 + i] as i8) * i32::from(yb[4 * k + i] as i8);
                    }
                }
                let dx = f32_at(p, SIGNED_D + 4 * r);
                acc = fmaf(isum as f32, dx * f32_at(yb, 32), acc);
            }
            out[j * PANEL_ROWS + r] = acc;
        }
    }
}

macro_rules! signed_kernels {
    ($name:ident, $ty:ident, $pack:expr, $prepare:expr, $run:expr) => {
        signed_kernels!($name, $ty, $pack, $prepare, $run, None);
    };
    ($name:ident, $ty:ident, $pack:expr, $prepare:expr, $run:expr, $matvec:expr) => {
        static $name: PanelKernels = PanelKernels {
            ty: GgmlType::$ty,
            panel_bytes: panel_bytes_32,
            column_bytes: column_bytes_32,
            pack: $pack,
            prepare: $prepare,
            run: $run,
            matvec: $matvec,
        };
    };
}

signed_kernels!(
    Q4_0_SCALAR,
    Q4_0,
    signed_pack::<BlockQ4_0>,
    q8_1_prepare,
    signed_run_scalar
);
signed_kernels!(
    Q5_0_SCALAR,
    Q5_0,
    signed_pack::<BlockQ5_0>,
    q8_1_prepare,
    signed_run_scalar
);
signed_kernels!(
    Q8_0_SCALAR,
    Q8_0,
    signed_pack::<BlockQ8_0>,
    q8_1_prepare,
    signed_run_scalar
);
signed_kernels!(
    IQ4_NL_SCALAR,
    IQ4_NL,
    signed_pack::<BlockIQ4NL>,
    q8_1_prepare,
    signed_run_scalar
);

#[cfg(target_arch = "x86_64")]
mod x86_signed {
    use super::*;
    use crate::x86_avx512::{
        matvec_q4_0_prepared_avx512_bytes as mv4_0, matvec_q5_0_prepared_avx512_bytes as mv5_0,
        matvec_q8_0_prepared_avx512_bytes as mv8_0,
    };
    use crate::x86_panel::{
        iq4_nl_pack_avx2_bytes as iq4_nl_pack2, iq4_nl_pack_avx512_bytes as iq4_nl_pack512,
        q4_0_pack_avx2_bytes as q4_0_pack2, q4_0_pack_avx512_bytes as q4_0_pack512,
        q5_0_pack_avx2_bytes as q5_0_pack2, q5_0_pack_avx512_bytes as q5_0_pack512,
        q8_0_pack_avx2_bytes as q8_0_pack2, q8_0_pack_avx512_bytes as q8_0_pack512,
        q8_1_prepare_avx2_bytes as prep2, q8_1_prepare_avx512_bytes as prep512,
        signed_run_avx2_bytes as run2, signed_run_avx512_bytes as run512,
    };
    signed_kernels!(
        Q4_0_AVX512,
        Q4_0,
        q4_0_pack512,
        prep512,
        run512,
        Some(mv4_0)
    );
    signed_kernels!(
        Q5_0_AVX512,
        Q5_0,
        q5_0_pack512,
        prep512,
        run512,
        Some(mv5_0)
    );
    signed_kernels!(
        Q8_0_AVX512,
        Q8_0,
        q8_0_pack512,
        prep512,
        run512,
        Some(mv8_0)
    );
    signed_kernels!(Q4_0_AVX2, Q4_0, q4_0_pack2, prep2, run2);
    signed_kernels!(Q5_0_AVX2, Q5_0, q5_0_pack2, prep2, run2);
    signed_kernels!(Q8_0_AVX2, Q8_0, q8_0_pack2, prep2, run2);
    // IQ4_NL has no matrix-vector kernel on the prepared column yet (`vec_dot` serves decode).
    signed_kernels!(IQ4_NL_AVX512, IQ4_NL, iq4_nl_pack512, prep512, run512);
    signed_kernels!(IQ4_NL_AVX2, IQ4_NL, iq4_nl_pack2, prep2, run2);

    /// The signed-layout kernels of `ty` on AVX-512 (`avx512`) or AVX2.
    pub(super) fn kernels(ty: GgmlType, avx512: bool) -> Option<&'static PanelKernels> {
        Some(match (ty, avx512) {
            (GgmlType::Q4_0, true) => &Q4_0_AVX512,
            (GgmlType::Q5_0, true) => &Q5_0_AVX512,
            (GgmlType::Q8_0, true) => &Q8_0_AVX512,
            (GgmlType::IQ4_NL, true) => &IQ4_NL_AVX512,
            (GgmlType::Q4_0, false) => &Q4_0_AVX2,
            (GgmlType::Q5_0, false) => &Q5_0_AVX2,
            (GgmlType::Q8_0, false) => &Q8_0_AVX2,
            (GgmlType::IQ4_NL, false) => &IQ4_NL_AVX2,
            _ => return None,
        })
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64_signed {
    use super::*;
    use crate::aarch64_panel::{signed_run_dotprod_bytes as dot, signed_run_neon_bytes as neon};
    signed_kernels!(
        Q4_0_DOTPROD,
        Q4_0,
        signed_pack::<BlockQ4_0>,
        q8_1_prepare,
        dot
    );
    signed_kernels!(
        Q5_0_DOTPROD,
        Q5_0,
        signed_pack::<BlockQ5_0>,
        q8_1_prepare,
        dot
    );
    signed_kernels!(
        Q8_0_DOTPROD,
        Q8_0,
        signed_pack::<BlockQ8_0>,
        q8_1_prepare,
        dot
    );
    signed_kernels!(
        IQ4_NL_DOTPROD,
        IQ4_NL,
        signed_pack::<BlockIQ4NL>,
        q8_1_prepare,
        dot
    );
    signed_kernels!(
        Q4_0_NEON,
        Q4_0,
        signed_pack::<BlockQ4_0>,
        q8_1_prepare,
        neon
    );
    signed_kernels!(
        Q5_0_NEON,
        Q5_0,
        signed_pack::<BlockQ5_0>,
        q8_1_prepare,
        neon
    );
    signed_kernels!(
        Q8_0_NEON,
        Q8_0,
        signed_pack::<BlockQ8_0>,
        q8_1_prepare,
        neon
    );
    signed_kernels!(
        IQ4_NL_NEON,
        IQ4_NL,
        signed_pack::<BlockIQ4NL>,
        q8_1_prepare,
        neon
    );

    /// The signed-layout kernels of `ty` on the dotprod tier (`dotprod`) or baseline NEON.
    pub(super) fn kernels(ty: GgmlType, dotprod: bool) -> Option<&'static PanelKernels> {
        Some(match (ty, dotprod) {
            (GgmlType::Q4_0, true) => &Q4_0_DOTPROD,
            (GgmlType::Q5_0, true) => &Q5_0_DOTPROD,
            (GgmlType::Q8_0, true) => &Q8_0_DOTPROD,
            (GgmlType::IQ4_NL, true) => &IQ4_NL_DOTPROD,
            (GgmlType::Q4_0, false) => &Q4_0_NEON,
            (GgmlType::Q5_0, false) => &Q5_0_NEON,
            (GgmlType::Q8_0, false) => &Q8_0_NEON,
            (GgmlType::IQ4_NL, false) => &IQ4_NL_NEON,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K, Q5_K and Q6_K weights against Q8_K activations.
//
// The three k-quants pack into one layout of super-blocks of 256 weights, so one product
// kernel per tier serves them all. Each weight is `d·sc_k·u − m·m_k` with an unsigned value
// `u` and per-16-weight integers `sc_k`, `m_k`:
//
// - Q4_K, Q5_K: `u = q` (0..15, 0..31); `sc_k`, `m_k` the 6-bit scale and minimum of the
//   32-weight sub-block holding group `k`; `d`, and `m = dmin`.
// - Q6_K: `u = q + 32` (0..63, the stored 6 bits); `sc_k = m_k` its signed 8-bit scale; `d`,
//   and `m = 32·d`: `d·sc·(u − 32)`.
//
// Per packed super-block: the 256 values of the 16 rows as bytes, transposed as in the other
// layouts (byte `64 k + 4 r + i` is value `4 k + i` of row `r`: 4096 bytes); then `sc_k` of
// every row as i32, one 64-byte vector per group `k` (1024 bytes); then `m_k` as i16 pairs,
// vector `i` holding `(m_2i, m_2i+1)` of each row (512 bytes); then `d` and `−m` of each row as
// f32. The column is plain Q8_K, as ggml's `from_float` makes it for these formats: `d_y`, the
// 256 quants, and the 16 sums of 16 quants. The arithmetic, super-block after super-block,
// with exact integer sums:
//
//     S1 = Σ_k sc_k · Σ_(i in group k) u_i·q_y,i       S2 = Σ_k m_k · bsum_k
//     acc = fma(f32(S1), d·d_y, acc)
//     acc = fma(f32(S2), (−m)·d_y, acc)
//
// (|S1| < 2^28 and |S2| < 2^23 for every format, so the i32 sums cannot overflow; the kernels
// may group the integer products in any order.)
//
// IQ4_XS (also against Q8_K) packs into the same layout with signed values: the value byte is
// the level `KVALUES_IQ4NL[q]` (−127..113) as i8, `sc_k = ls − 32` of the sub-block holding
// group `k`, and no minimum (`m_k = 0`, `−m = 0`). Its products read the values as signed and
// end without the S2 step, `acc = fma(f32(S1), d·d_y, acc)` (|S1| < 2^28 again). Each tier forms
// the signed S1 its own way (see its kernel); `sdot` and `smmla` take the bytes as they are.

/// Weights in one super-block of the k-quants.
const QK_K: usize = 256;
/// Bytes of one packed super-block of the k-quant layout.
pub(crate) const K_BLOCK: usize = 4096 + 1024 + 512 + 2 * 64;
/// Byte offset of the `sc_k` vectors in a packed k-quant super-block.
pub(crate) const K_SC: usize = 4096;
/// Byte offset of the `m_k` pair vectors.
pub(crate) const K_MIN: usize = K_SC + 1024;
/// Byte offset of the 16 `d` values.
pub(crate) const K_D: usize = K_MIN + 512;
/// Byte offset of the 16 `−m` values.
pub(crate) const K_NEG_M: usize = K_D + 64;
/// Bytes of one prepared activation super-block: a Q8_K block (`d_y` f32, 256 quants, 16 sums
/// of 16 quants as i16).
pub(crate) const K_COL_BLOCK: usize = 292;
/// Byte offset of the quants in a prepared super-block.
pub(crate) const K_COL_Q: usize = 4;
/// Byte offset of the group sums in a prepared super-block.
pub(crate) const K_COL_BSUM: usize = 260;

fn panel_bytes_256(n: usize) -> usize {
    n / QK_K * K_BLOCK
}

fn column_bytes_256(n: usize) -> usize {
    n / QK_K * K_COL_BLOCK
}

/// One super-block of a k-quant, decoded for the k-quant layout.
pub(crate) struct KValues {
    /// The values: unsigned, or for IQ4_XS the levels' i8 bits.
    pub u: [u8; QK_K],
    pub sc: [i32; 16],
    pub m: [i16; 16],
    pub d: f32,
    pub neg_m: f32,
}

/// The k-quant formats of the k-quant layout.
pub(crate) trait KBlock: GgmlBlock {
    fn k_values(&self) -> KValues;
}

/// `(u, sc, m)` of Q4_K and Q5_K, whose 4-bit quants are in `qs` as 64-weight groups: low
/// nibbles first, then high ones; `high(l, g)` is the fifth bit (0 or 16) of weight `l` of the
/// two halves of group `g`.
fn k4_values(
    qs: &[u8; QK_K / 2],
    scales: &[u8; 12],
    high: impl Fn(usize, usize) -> (u8, u8),
) -> ([u8; QK_K], [i32; 16], [i16; 16]) {
    let mut u = [0u8; QK_K];
    for g in 0..4 {
        for l in 0..32 {
            let q = qs[32 * g + l];
            let (h1, h2) = high(l, g);
            u[64 * g + l] = (q & 0x0f) | h1;
            u[64 * g + 32 + l] = (q >> 4) | h2;
        }
    }
    let (sc8, m8) = crate::kquants::k4_scales_mins(scales);
    let sc = core::array::from_fn(|k| i32::from(sc8[k / 2]));
    let m = core::array::from_fn(|k| i16::from(m8[k / 2]));
    (u, sc, m)
}

impl KBlock for BlockQ4K {
    fn k_values(&self) -> KValues {
        let (u, sc, m) = k4_values(&self.qs, &self.scales, |_, _| (0, 0));
        KValues {
            u,
            sc,
            m,
            d: f16_to_f32(self.d),
            neg_m: -f16_to_f32(self.dmin),
        }
    }
}

impl KBlock for BlockQ5K {
    fn k_values(&self) -> KValues {
        let bit = |l: usize, k: usize| ((self.qh[l] >> k) & 1) << 4;
        let (u, sc, m) = k4_values(&self.qs, &self.scales, |l, g| {
            (bit(l, 2 * g), bit(l, 2 * g + 1))
        });
        KValues {
            u,
            sc,
            m,
            d: f16_to_f32(self.d),
            neg_m: -f16_to_f32(self.dmin),
        }
    }
}

impl KBlock for BlockQ6K {
    fn k_values(&self) -> KValues {
        let mut u = [0u8; QK_K];
        for half in 0..2 {
            let ql = &self.ql[64 * half..][..64];
            let qh = &self.qh[32 * half..][..32];
            let u = &mut u[128 * half..][..128];
            for l in 0..32 {
                u[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
                u[l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
                u[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                u[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
        }
        let d = f16_to_f32(self.d);
        KValues {
            u,
            sc: self.scales.map(i32::from),
            m: self.scales.map(i16::from),
            d,
            neg_m: -32.0 * d,
        }
    }
}

impl KBlock for BlockIQ4XS {
    fn k_values(&self) -> KValues {
        let mut u = [0u8; QK_K];
        let mut sc = [0i32; 16];
        for ib in 0..QK_K / 32 {
            for (j, &q) in self.qs[16 * ib..][..16].iter().enumerate() {
                u[32 * ib + j] = KVALUES_IQ4NL[usize::from(q & 0x0f)] as u8;
                u[32 * ib + 16 + j] = KVALUES_IQ4NL[usize::from(q >> 4)] as u8;
            }
            let ls = xs_scale(self, ib) - 32;
            sc[2 * ib] = ls;
            sc[2 * ib + 1] = ls;
        }
        KValues {
            u,
            sc,
            m: [0; 16],
            d: f16_to_f32(self.d),
            neg_m: 0.0,
        }
    }
}

/// The two instances of a tier's k-quant product `$generic::<C, SIGNED>` (defined with the
/// target features `$features`): `$unsigned::<C>` for Q4_K, Q5_K and Q6_K, `$signed::<C>` for
/// IQ4_XS, each a kernel the tier's column-group wrapper takes.
macro_rules! k_instances {
    ($generic:ident, $features:literal, $unsigned:ident, $signed:ident) => {
        /// The unsigned k-quants' instance of the generic kernel.
        ///
        /// # Safety
        /// As the generic kernel.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $unsigned<const C: usize>(
            nb: usize,
            panel: &[u8],
            ys: [&[u8]; C],
            out: &mut [f32],
        ) {
            // SAFETY: the contract is the caller's.
            unsafe { $generic::<C, false>(nb, panel, ys, out) }
        }

        /// IQ4_XS's instance of the generic kernel.
        ///
        /// # Safety
        /// As the generic kernel.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $signed<const C: usize>(
            nb: usize,
            panel: &[u8],
            ys: [&[u8]; C],
            out: &mut [f32],
        ) {
            // SAFETY: the contract is the caller's.
            unsafe { $generic::<C, true>(nb, panel, ys, out) }
        }
    };
}
pub(crate) use k_instances;

/// Checks the buffers of a k-quant pack call; returns the super-block count per row.
pub(crate) fn check_k_pack(
    n: usize,
    x: &[u8],
    rows: usize,
    panel: &[u8],
    block_bytes: usize,
    ty: GgmlType,
) -> usize {
    assert!(n % QK_K == 0, "{n} weights are not whole {ty} super-blocks");
    assert!(
        (1..=PANEL_ROWS).contains(&rows),
        "a panel holds 1 to {PANEL_ROWS} rows, not {rows}"
    );
    let nb = n / QK_K;
    assert_eq!(x.len(), rows * nb * block_bytes, "{ty} rows");
    assert_eq!(panel.len(), nb * K_BLOCK, "{ty} panel");
    nb
}

/// Checks the buffers of a k-quant run call; returns the super-block and column counts.
pub(crate) fn check_k_run(
    n: usize,
    panel: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &[f32],
) -> (usize, usize) {
    assert!(n % QK_K == 0, "{n} weights are not whole super-blocks");
    let nb = n / QK_K;
    assert_eq!(panel.len(), nb * K_BLOCK, "panel");
    assert!(
        out.len() % PANEL_ROWS == 0,
        "output is not whole panel columns"
    );
    let cols = out.len() / PANEL_ROWS;
    if cols > 0 {
        assert!(y_stride >= nb * K_COL_BLOCK, "column stride below a column");
        assert!(
            ys.len() >= (cols - 1) * y_stride + nb * K_COL_BLOCK,
            "{cols} columns do not fit in {} bytes",
            ys.len()
        );
    }
    (nb, cols)
}

/// Packs rows of a k-quant into the k-quant layout (the reference packing, which every tier
/// uses): each row's super-block decoded, then scattered a dword at a time.
fn k_pack<B: KBlock>(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_k_pack(n, x, rows, panel, size_of::<B>(), B::TYPE);
    let xb = blocks::<B>(x);
    for (b, out) in panel.chunks_exact_mut(K_BLOCK).enumerate() {
        if rows < PANEL_ROWS {
            out.fill(0);
        }
        for r in 0..rows {
            k_put(&xb[r * nb + b].k_values(), r, out);
        }
    }
}

/// One row's decoded super-block `v` into lane `r` of the packed super-block `out`.
pub(crate) fn k_put(v: &KValues, r: usize, out: &mut [u8]) {
    for (k, u4) in v.u.chunks_exact(4).enumerate() {
        out[64 * k + 4 * r..][..4].copy_from_slice(u4);
    }
    for (k, sc) in v.sc.iter().enumerate() {
        out[K_SC + 64 * k + 4 * r..][..4].copy_from_slice(&sc.to_le_bytes());
    }
    for (k, m) in v.m.iter().enumerate() {
        out[K_MIN + 64 * (k / 2) + 4 * r + 2 * (k % 2)..][..2].copy_from_slice(&m.to_le_bytes());
    }
    out[K_D + 4 * r..][..4].copy_from_slice(&v.d.to_le_bytes());
    out[K_NEG_M + 4 * r..][..4].copy_from_slice(&v.neg_m.to_le_bytes());
}

/// Prepares a column for the k-quant layout: Q8_K blocks, exactly as `from_float` makes them
/// (the scalar quantizer; the SIMD tiers prepare with their `from_float` of Q8_K, which writes
/// the same bytes).
fn q8_k_prepare(x: &[f32], out: &mut [u8]) {
    assert!(
        x.len() % QK_K == 0,
        "{} values are not whole super-blocks",
        x.len()
    );
    assert_eq!(out.len(), x.len() / QK_K * K_COL_BLOCK, "prepared column");
    match crate::block::as_blocks_mut::<crate::kquants::BlockQ8K>(out) {
        Some(blocks) => crate::kquants::quantize_row_q8_k(x, blocks),
        None => unreachable!("a prepared column is whole Q8_K blocks"),
    }
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i16_at(b: &[u8], at: usize) -> i32 {
    i32::from(i16::from_le_bytes([b[at], b[at + 1]]))
}

/// Scalar product of a k-quant panel with prepared columns: the formula above, lane by lane;
/// `SIGNED` (IQ4_XS) reads the values as i8 and ends after the S1 step.
fn k_run_scalar<const SIGNED: bool>(
    n: usize,
    panel: &[u8],
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
) {
    let (nb, cols) = check_k_run(n, panel, ys, y_stride, out);
    for j in 0..cols {
        let y = &ys[j * y_stride..][..nb * K_COL_BLOCK];
        for r in 0..PANEL_ROWS {
            let mut acc = 0f32;
            for (p, yb) in panel.chunks_exact(K_BLOCK).zip(y.chunks_exact(K_COL_BLOCK)) {
                let (mut s1, mut s2) = (0i32, 0i32);
                for k in 0..16 {
                    let mut isum = 0i32;
                    for v in 4 * k..4 * k + 4 {
                        for i in 0..4 {
                            let u = p[64 * v + 4 * r + i];
                            let x = if SIGNED {
                                i32::from(u as i8)
                            } else {
                                i32::from(u)
                            };
                            isum += x * i32::from(yb[K_COL_Q + 4 * v + i] as i8);
                        }
                    }
                    s1 += isum * i32_at(p, K_SC + 64 * k + 4 * r);
                    s2 += i16_at(p, K_MIN + 64 * (k / 2) + 4 * r + 2 * (k % 2))
                        * i16_at(yb, K_COL_BSUM + 2 * k);
                }
                let dy = f32_at(yb, 0);
                acc = fmaf(s1 as f32, f32_at(p, K_D + 4 * r) * dy, acc);
                if !SIGNED {
                    acc = fmaf(s2 as f32, f32_at(p, K_NEG_M + 4 * r) * dy, acc);
                }
            }
            out[j * PANEL_ROWS + r] = acc;
        }
    }
}

macro_rules! k_kernels {
    ($name:ident, $ty:ident, $block:ty, $prepare:expr, $run:expr) => {
        k_kernels!($name, $ty, $block, $prepare, $run, None);
    };
    ($name:ident, $ty:ident, $block:ty, $prepare:expr, $run:expr, $matvec:expr) => {
        static $name: PanelKernels = PanelKernels {
            ty: GgmlType::$ty,
            panel_bytes: panel_bytes_256,
            column_bytes: column_bytes_256,
            pack: k_pack::<$block>,
            prepare: $prepare,
            run: $run,
            matvec: $matvec,
        };
    };
}

k_kernels!(
    Q4_K_SCALAR,
    Q4_K,
    BlockQ4K,
    q8_k_prepare,
    k_run_scalar::<false>
);
k_kernels!(
    Q5_K_SCALAR,
    Q5_K,
    BlockQ5K,
    q8_k_prepare,
    k_run_scalar::<false>
);
k_kernels!(
    Q6_K_SCALAR,
    Q6_K,
    BlockQ6K,
    q8_k_prepare,
    k_run_scalar::<false>
);
k_kernels!(
    IQ4_XS_SCALAR,
    IQ4_XS,
    BlockIQ4XS,
    q8_k_prepare,
    k_run_scalar::<true>
);

#[cfg(target_arch = "x86_64")]
mod x86_k {
    use super::*;
    use crate::x86_avx2::quantize_row_q8_k_avx2_bytes as prep2;
    use crate::x86_avx2::{
        matvec_q4_k_prepared_avx2_bytes as q4_k_2, matvec_q5_k_prepared_avx2_bytes as q5_k_2,
        matvec_q6_k_prepared_avx2_bytes as q6_k_2,
    };
    use crate::x86_avx512::{
        matvec_q4_k_prepared_avx512_bytes as q4_k_512,
        matvec_q6_k_prepared_avx512_bytes as q6_k_512, quantize_row_q8_k_avx512_bytes as prep512,
    };
    use crate::x86_panel::{
        k_run_avx2_bytes as run2, k_run_avx512_bytes as run512, k_run_signed_avx2_bytes as srun2,
        k_run_signed_avx512_bytes as srun512,
    };
    // The AVX-512 tier's Q5_K `vec_dot` is the AVX2 kernel, and so is its matrix-vector one.
    k_kernels!(Q4_K_AVX512, Q4_K, BlockQ4K, prep512, run512, Some(q4_k_512));
    k_kernels!(Q5_K_AVX512, Q5_K, BlockQ5K, prep512, run512, Some(q5_k_2));
    k_kernels!(Q6_K_AVX512, Q6_K, BlockQ6K, prep512, run512, Some(q6_k_512));
    k_kernels!(Q4_K_AVX2, Q4_K, BlockQ4K, prep2, run2, Some(q4_k_2));
    k_kernels!(Q5_K_AVX2, Q5_K, BlockQ5K, prep2, run2, Some(q5_k_2));
    k_kernels!(Q6_K_AVX2, Q6_K, BlockQ6K, prep2, run2, Some(q6_k_2));
    // IQ4_XS has no matrix-vector kernel on the prepared column (`vec_dot` serves decode).
    k_kernels!(IQ4_XS_AVX512, IQ4_XS, BlockIQ4XS, prep512, srun512);
    k_kernels!(IQ4_XS_AVX2, IQ4_XS, BlockIQ4XS, prep2, srun2);

    /// The k-quant-layout kernels of `ty` on AVX-512 (`avx512`) or AVX2.
    pub(super) fn kernels(ty: GgmlType, avx512: bool) -> Option<&'static PanelKernels> {
        Some(match (ty, avx512) {
            (GgmlType::Q4_K, true) => &Q4_K_AVX512,
            (GgmlType::Q5_K, true) => &Q5_K_AVX512,
            (GgmlType::Q6_K, true) => &Q6_K_AVX512,
            (GgmlType::Q4_K, false) => &Q4_K_AVX2,
            (GgmlType::Q5_K, false) => &Q5_K_AVX2,
            (GgmlType::Q6_K, false) => &Q6_K_AVX2,
            (GgmlType::IQ4_XS, true) => &IQ4_XS_AVX512,
            (GgmlType::IQ4_XS, false) => &IQ4_XS_AVX2,
            _ => return None,
        })
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64_k {
    use super::*;
    use crate::aarch64_neon::quantize_row_q8_k_neon_bytes as prep;
    use crate::aarch64_panel::{
        k_run_dotprod_bytes as dot, k_run_neon_bytes as neon, k_run_signed_dotprod_bytes as sdot,
        k_run_signed_neon_bytes as sneon,
    };
    k_kernels!(Q4_K_DOTPROD, Q4_K, BlockQ4K, prep, dot);
    k_kernels!(Q5_K_DOTPROD, Q5_K, BlockQ5K, prep, dot);
    k_kernels!(Q6_K_DOTPROD, Q6_K, BlockQ6K, prep, dot);
    k_kernels!(Q4_K_NEON, Q4_K, BlockQ4K, prep, neon);
    k_kernels!(Q5_K_NEON, Q5_K, BlockQ5K, prep, neon);
    k_kernels!(Q6_K_NEON, Q6_K, BlockQ6K, prep, neon);
    k_kernels!(IQ4_XS_DOTPROD, IQ4_XS, BlockIQ4XS, prep, sdot);
    k_kernels!(IQ4_XS_NEON, IQ4_XS, BlockIQ4XS, prep, sneon);

    /// The k-quant-layout kernels of `ty` on the dotprod tier (`dotprod`) or baseline NEON.
    pub(super) fn kernels(ty: GgmlType, dotprod: bool) -> Option<&'static PanelKernels> {
        Some(match (ty, dotprod) {
            (GgmlType::Q4_K, true) => &Q4_K_DOTPROD,
            (GgmlType::Q5_K, true) => &Q5_K_DOTPROD,
            (GgmlType::Q6_K, true) => &Q6_K_DOTPROD,
            (GgmlType::Q4_K, false) => &Q4_K_NEON,
            (GgmlType::Q5_K, false) => &Q5_K_NEON,
            (GgmlType::Q6_K, false) => &Q6_K_NEON,
            (GgmlType::IQ4_XS, true) => &IQ4_XS_DOTPROD,
            (GgmlType::IQ4_XS, false) => &IQ4_XS_NEON,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The i8mm tier: the layouts above with the value bytes of each packed block in row pairs.
//
// `smmla` multiplies two rows of eight values by two columns, so this tier packs as the others
// do and then reorders the values of every block (4096 bytes of a k-quant super-block, 512 of
// the other layouts): byte `128 m + 16 p + 8 h + i` holds value `8 m + i` of row `2 p + h`. The
// scales, minimums and row sums stay where they are, the block sizes are unchanged, and the
// arithmetic is the layout's own, bit for bit (`aarch64_i8mm`).

#[cfg(target_arch = "aarch64")]
mod aarch64_i8mm {
    use super::*;
    use crate::aarch64_i8mm::{
        interleave_row_pairs_bytes as row_pairs, k_run_i8mm_bytes as k_run,
        k_run_signed_i8mm_bytes as k_run_signed, q4_1_run_i8mm_bytes as q4_1_run,
        signed_run_i8mm_bytes as signed_run,
    };

    fn signed_pack_i8mm<B: SignedBlock>(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
        signed_pack::<B>(n, x, rows, panel);
        row_pairs(panel, PANEL_BLOCK, SIGNED_D);
    }

    fn q4_1_pack_i8mm(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
        crate::aarch64_panel::q4_1_pack_neon_bytes(n, x, rows, panel);
        row_pairs(panel, PANEL_BLOCK, 512);
    }

    fn q5_1_pack_i8mm(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
        q5_1_pack(n, x, rows, panel);
        row_pairs(panel, PANEL_BLOCK, 512);
    }

    fn k_pack_i8mm<B: KBlock>(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
        k_pack::<B>(n, x, rows, panel);
        row_pairs(panel, K_BLOCK, K_SC);
    }

    signed_kernels!(
        Q4_0_I8MM,
        Q4_0,
        signed_pack_i8mm::<BlockQ4_0>,
        q8_1_prepare,
        signed_run
    );
    signed_kernels!(
        Q5_0_I8MM,
        Q5_0,
        signed_pack_i8mm::<BlockQ5_0>,
        q8_1_prepare,
        signed_run
    );
    signed_kernels!(
        Q8_0_I8MM,
        Q8_0,
        signed_pack_i8mm::<BlockQ8_0>,
        q8_1_prepare,
        signed_run
    );
    signed_kernels!(
        IQ4_NL_I8MM,
        IQ4_NL,
        signed_pack_i8mm::<BlockIQ4NL>,
        q8_1_prepare,
        signed_run
    );
    signed_kernels!(Q4_1_I8MM, Q4_1, q4_1_pack_i8mm, q8_1_prepare, q4_1_run);
    signed_kernels!(Q5_1_I8MM, Q5_1, q5_1_pack_i8mm, q8_1_prepare, q4_1_run);
    macro_rules! k_i8mm {
        ($name:ident, $ty:ident, $block:ty) => {
            k_i8mm!($name, $ty, $block, k_run);
        };
        ($name:ident, $ty:ident, $block:ty, $run:ident) => {
            static $name: PanelKernels = PanelKernels {
                ty: GgmlType::$ty,
                panel_bytes: panel_bytes_256,
                column_bytes: column_bytes_256,
                pack: k_pack_i8mm::<$block>,
                prepare: crate::aarch64_neon::quantize_row_q8_k_neon_bytes,
                run: $run,
                matvec: None,
            };
        };
    }
    k_i8mm!(Q4_K_I8MM, Q4_K, BlockQ4K);
    k_i8mm!(Q5_K_I8MM, Q5_K, BlockQ5K);
    k_i8mm!(Q6_K_I8MM, Q6_K, BlockQ6K);
    k_i8mm!(IQ4_XS_I8MM, IQ4_XS, BlockIQ4XS, k_run_signed);

    /// The i8mm tier's panel kernels of `ty`.
    pub(super) fn kernels(ty: GgmlType) -> Option<&'static PanelKernels> {
        Some(match ty {
            GgmlType::Q4_0 => &Q4_0_I8MM,
            GgmlType::Q5_0 => &Q5_0_I8MM,
            GgmlType::Q8_0 => &Q8_0_I8MM,
            GgmlType::IQ4_NL => &IQ4_NL_I8MM,
            GgmlType::Q4_1 => &Q4_1_I8MM,
            GgmlType::Q5_1 => &Q5_1_I8MM,
            GgmlType::Q4_K => &Q4_K_I8MM,
            GgmlType::Q5_K => &Q5_K_I8MM,
            GgmlType::Q6_K => &Q6_K_I8MM,
            GgmlType::IQ4_XS => &IQ4_XS_I8MM,
            _ => return None,
        })
    }
}

/// At least [`PanelKernels::panel_bytes`] of any panel kernels for rows of `n` weights (`n`
/// rounded up to whole blocks): what a caller sizes its panel scratch with.
pub fn max_panel_bytes(n: usize) -> usize {
    (n.div_ceil(32) * PANEL_BLOCK).max(n.div_ceil(QK_K) * K_BLOCK)
}

/// At least [`PanelKernels::column_bytes`] of any panel kernels for columns of `n` values.
pub fn max_column_bytes(n: usize) -> usize {
    (n.div_ceil(32) * COL_BLOCK).max(n.div_ceil(QK_K) * K_COL_BLOCK)
}

/// The scalar panel kernels of `ty` (the reference), or `None` if `ty` has none.
pub fn panel_kernels_reference(ty: GgmlType) -> Option<&'static PanelKernels> {
    match ty {
        GgmlType::Q4_1 => Some(&Q4_1_SCALAR),
        GgmlType::Q5_1 => Some(&Q5_1_SCALAR),
        GgmlType::Q4_0 => Some(&Q4_0_SCALAR),
        GgmlType::Q5_0 => Some(&Q5_0_SCALAR),
        GgmlType::Q8_0 => Some(&Q8_0_SCALAR),
        GgmlType::IQ4_NL => Some(&IQ4_NL_SCALAR),
        GgmlType::Q4_K => Some(&Q4_K_SCALAR),
        GgmlType::Q5_K => Some(&Q5_K_SCALAR),
        GgmlType::Q6_K => Some(&Q6_K_SCALAR),
        GgmlType::IQ4_XS => Some(&IQ4_XS_SCALAR),
        _ => None,
    }
}

/// The panel kernels of `ty` in `tier`, or `None` if the CPU does not support `tier` or the tier
/// has no SIMD panel kernel for `ty` (a runtime then uses [`crate::matrix`]'s kernels, and so
/// does the scalar tier: its panel kernels are [`panel_kernels_reference`]).
pub fn panel_kernels_for(tier: Tier, ty: GgmlType) -> Option<&'static PanelKernels> {
    if !tier.is_supported() {
        return None;
    }
    match (tier, ty) {
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx512, GgmlType::Q4_1) => Some(&Q4_1_AVX512),
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx2, GgmlType::Q4_1) => Some(&Q4_1_AVX2),
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx512, GgmlType::Q5_1) => Some(&Q5_1_AVX512),
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx2, GgmlType::Q5_1) => Some(&Q5_1_AVX2),
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx512, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS) => {
            x86_k::kernels(ty, true)
        }
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx2, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS) => {
            x86_k::kernels(ty, false)
        }
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx512, _) => x86_signed::kernels(ty, true),
        #[cfg(target_arch = "x86_64")]
        (Tier::Avx2, _) => x86_signed::kernels(ty, false),
        #[cfg(target_arch = "aarch64")]
        (Tier::Dotprod, GgmlType::Q4_1) => Some(&Q4_1_DOTPROD),
        #[cfg(target_arch = "aarch64")]
        (Tier::Neon, GgmlType::Q4_1) => Some(&Q4_1_NEON),
        #[cfg(target_arch = "aarch64")]
        (Tier::Dotprod, GgmlType::Q5_1) => Some(&Q5_1_DOTPROD),
        #[cfg(target_arch = "aarch64")]
        (Tier::Neon, GgmlType::Q5_1) => Some(&Q5_1_NEON),
        #[cfg(target_arch = "aarch64")]
        (Tier::Dotprod, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS) => {
            aarch64_k::kernels(ty, true)
        }
        #[cfg(target_arch = "aarch64")]
        (Tier::Neon, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS) => {
            aarch64_k::kernels(ty, false)
        }
        #[cfg(target_arch = "aarch64")]
        (Tier::Dotprod, _) => aarch64_signed::kernels(ty, true),
        #[cfg(target_arch = "aarch64")]
        (Tier::Neon, _) => aarch64_signed::kernels(ty, false),
        #[cfg(target_arch = "aarch64")]
        (Tier::I8mm, _) => aarch64_i8mm::kernels(ty),
        _ => None,
    }
}

/// The panel kernels of `ty` in the active tier ([`crate::dispatch::active_tier`]), if any.
pub fn panel_kernels(ty: GgmlType) -> Option<&'static PanelKernels> {
    panel_kernels_for(crate::dispatch::active_tier(), ty)
}
