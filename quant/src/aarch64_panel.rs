//! AArch64 panel kernels (see [`crate::panel`] for the layout and the arithmetic they reproduce
//! bit for bit): one packing for both tiers, a product with `sdot` by element for the dotprod
//! tier and one with `smull`/`smlal` into i16 for baseline NEON (Cortex-A72 and other cores
//! without FEAT_DotProd, which must never reach an `sdot`).
//!
//! A 16-row panel is four 128-bit vectors of four rows per weight vector `k`. The f32 scale step
//! is the reference's per lane: `acc = fma(f32(isum), d_x·d_y, acc)` then `acc = fma(m_x, s_y,
//! acc)` with `vfmaq_f32` (`fmla`, fused) and `vcvtq_f32_s32` (`scvtf`, round to nearest even as
//! the reference's `as f32`).
//!
//! Like the other SIMD kernels these are `unsafe fn`s with `#[target_feature]`, reached only
//! through the safe `_bytes` wrappers, which check every length first and are handed out by
//! [`crate::panel::panel_kernels_for`] only when the CPU supports the tier. Multi-byte fields
//! are read through byte vectors, so the kernels assume little-endian AArch64, as
//! [`crate::dispatch`] does.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use crate::num::f16_to_f32;
use crate::panel::{
    COL_BLOCK, K_BLOCK, K_COL_BLOCK, K_COL_BSUM, K_COL_Q, K_D, K_MIN, K_NEG_M, K_SC, PANEL_BLOCK,
    PANEL_ROWS, check_k_run, check_pack, check_run,
};

/// Packs `rows` Q4_1 rows of `nb` blocks into `panel`: per block and group of four rows, the 16
/// quant bytes of each row split into low and high nibbles, each 4 × 4 square of dwords
/// transposed (`trn1`/`trn2` on 32- then 64-bit lanes) so that vector `j` holds dword `j` of the
/// four rows; `d` and `m` widened to f32 one by one (exact).
///
/// # Safety
/// The CPU must support NEON. `x` must hold `rows` rows of `nb` 20-byte blocks, `rows` must be
/// 1 to 16, and `panel` must hold `nb * PANEL_BLOCK` bytes.
#[target_feature(enable = "neon")]
unsafe fn q4_1_pack(nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let row_bytes = nb * 20;
    let nibbles = vdupq_n_u8(0x0f);
    for (b, out) in panel.chunks_exact_mut(PANEL_BLOCK).take(nb).enumerate() {
        for g in 0..PANEL_ROWS / 4 {
            let q: [uint8x16_t; 4] = core::array::from_fn(|i| {
                let r = 4 * g + i;
                if r < rows {
                    let blk = &x[r * row_bytes + b * 20..][..20];
                    // SAFETY: `blk[4..20]` holds the 16 quant bytes; byte loads have no
                    // alignment requirement.
                    unsafe { vld1q_u8(blk[4..].as_ptr()) }
                } else {
                    vdupq_n_u8(0)
                }
            });
            let lo = q.map(|v| vreinterpretq_u32_u8(vandq_u8(v, nibbles)));
            let hi = q.map(|v| vreinterpretq_u32_u8(vshrq_n_u8::<4>(v)));
            for (half, a) in [lo, hi].iter().enumerate() {
                let t0 = vreinterpretq_u64_u32(vtrn1q_u32(a[0], a[1]));
                let t1 = vreinterpretq_u64_u32(vtrn2q_u32(a[0], a[1]));
                let t2 = vreinterpretq_u64_u32(vtrn1q_u32(a[2], a[3]));
                let t3 = vreinterpretq_u64_u32(vtrn2q_u32(a[2], a[3]));
                let v = [
                    vtrn1q_u64(t0, t2),
                    vtrn1q_u64(t1, t3),
                    vtrn2q_u64(t0, t2),
                    vtrn2q_u64(t1, t3),
                ];
                for (j, vj) in v.iter().enumerate() {
                    let dst = &mut out[64 * (4 * half + j) + 16 * g..][..16];
                    // SAFETY: `dst` holds 16 bytes; byte stores have no alignment requirement.
                    unsafe { vst1q_u8(dst.as_mut_ptr(), vreinterpretq_u8_u64(*vj)) };
                }
            }
        }
        for r in 0..PANEL_ROWS {
            let (d, m) = if r < rows {
                let blk = &x[r * row_bytes + b * 20..][..4];
                (f16_to_f32([blk[0], blk[1]]), f16_to_f32([blk[2], blk[3]]))
            } else {
                (0.0, 0.0)
            };
            out[512 + 4 * r..][..4].copy_from_slice(&d.to_le_bytes());
            out[576 + 4 * r..][..4].copy_from_slice(&m.to_le_bytes());
        }
    }
}

/// Safe wrapper of the NEON Q4_1 packing (both AArch64 tiers).
pub(crate) fn q4_1_pack_neon_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack(n, x, rows, panel);
    // SAFETY: lengths were checked above; this wrapper is handed out only for a CPU that
    // supports the NEON tier (which the dotprod tier includes).
    unsafe { q4_1_pack(nb, x, rows, panel) }
}

/// Four f32 from `p` (any alignment).
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn load_f32x4(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees 16 readable bytes; byte loads have no alignment requirement.
    unsafe { vreinterpretq_f32_u8(vld1q_u8(p)) }
}

/// The f32 at `p` (any alignment) in every lane.
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dup_f32(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees 4 readable bytes; `read_unaligned` has no alignment
    // requirement.
    vdupq_n_f32(f32::from_bits(unsafe { p.cast::<u32>().read_unaligned() }))
}

/// The reference's scale step for four rows: `acc = fma(f32(isum), d_x·d_y, acc)`, then
/// `acc = fma(m_x, s_y, acc)`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn scale_step(
    acc: float32x4_t,
    isum: int32x4_t,
    dx: float32x4_t,
    mx: float32x4_t,
    dy: float32x4_t,
    sy: float32x4_t,
) -> float32x4_t {
    let acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), vmulq_f32(dx, dy));
    vfmaq_f32(acc, mx, sy)
}

/// `acc` plus, in lane `i`, the dot of bytes `4i..4i + 4` of `w` with bytes `4L..4L + 4` of `y`
/// (`sdot` by element, exact in i32).
///
/// # Safety
/// The CPU must support FEAT_DotProd.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn sdot_lane<const L: u32>(mut acc: int32x4_t, w: int8x16_t, y: int8x16_t) -> int32x4_t {
    // SAFETY: the caller guarantees FEAT_DotProd; `sdot` reads and writes only the named vector
    // registers, and `L` is below 4 at every call site.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {y:v}.4b[{l}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            y = in(vreg) y,
            l = const L,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `C` prepared columns times a Q4_1 panel with `sdot`, into `out[c * 16 + r]`: per block, the
/// 32 activation bytes of each column in two vectors; for each weight vector `k` and group `g`
/// of four rows, `sdot` of the rows' four quant bytes (0..15, so signed bytes too) with lane
/// `k % 4` of the column's vector `k / 4` adds the four products of each row into its lane.
///
/// # Safety
/// The CPU must support NEON and FEAT_DotProd; `panel` must hold `nb * PANEL_BLOCK` bytes and
/// each `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice).
///
/// With `MIN` false the same product serves the signed layout of Q4_0, Q5_0, Q8_0 and IQ4_NL
/// (signed values, no minimum term): `sdot` multiplies signed bytes, so only the scale step differs.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn run_dotprod<const C: usize, const MIN: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // byte loads have no alignment requirement. `sdot` is supported by the contract.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            let mut isum = [[vdupq_n_s32(0); 4]; C];
            for half in 0..2 {
                let yv: [int8x16_t; C] =
                    core::array::from_fn(|c| vld1q_s8(y[c].add(16 * half).cast()));
                macro_rules! step {
                    ($lane:literal) => {{
                        let k = 4 * half + $lane;
                        let w: [int8x16_t; 4] =
                            core::array::from_fn(|g| vld1q_s8(p.add(64 * k + 16 * g).cast()));
                        for c in 0..C {
                            for g in 0..4 {
                                isum[c][g] = sdot_lane::<$lane>(isum[c][g], w[g], yv[c]);
                            }
                        }
                    }};
                }
                step!(0);
                step!(1);
                step!(2);
                step!(3);
            }
            for g in 0..4 {
                let dx = load_f32x4(p.add(512 + 16 * g));
                for c in 0..C {
                    let dy = dup_f32(y[c].add(32));
                    acc[c][g] = if MIN {
                        let mx = load_f32x4(p.add(576 + 16 * g));
                        scale_step(acc[c][g], isum[c][g], dx, mx, dy, dup_f32(y[c].add(36)))
                    } else {
                        vfmaq_f32(acc[c][g], vcvtq_f32_s32(isum[c][g]), vmulq_f32(dx, dy))
                    };
                }
            }
        }
    }
    store(&acc, out);
}

/// The Q4_1 product of [`run_dotprod`].
///
/// # Safety
/// As [`run_dotprod`].
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn q4_1_run_dotprod<const C: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    // SAFETY: the same contract.
    unsafe { run_dotprod::<C, true>(nb, panel, ys, out) }
}

/// The signed-layout product of [`run_dotprod`] (Q4_0, Q5_0, Q8_0, IQ4_NL).
///
/// # Safety
/// As [`run_dotprod`].
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn signed_run_dotprod<const C: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    // SAFETY: the same contract.
    unsafe { run_dotprod::<C, false>(nb, panel, ys, out) }
}

/// `C` prepared columns times a panel of signed values (Q4_0, Q5_0, Q8_0, IQ4_NL) with
/// baseline NEON, into `out[c * 16 + r]`. Values and activations reach ±128, so products do not
/// add up in i16 over a block as Q4_1's do: per weight vector, `smull`/`smull2` give the
/// products in i16 (at most 2^14) and `sadalp` adds their pairs into i32 lanes (two per row); at
/// the block's end `addp` joins each row's two lanes: the exact `Σ v·q_y`. Then, as the
/// reference, `acc = fma(f32(isum), d_x·d_y, acc)`.
///
/// With `MIN` the same integer sums serve Q5_1 in Q4_1's layout (values 0..31, whose i16 sums
/// over a block would reach 8·31·128·2 and overflow in [`q4_1_run_neon`]), followed by Q4_1's
/// scale step with the minimum term.
///
/// # Safety
/// The CPU must support NEON; `panel` must hold `nb * PANEL_BLOCK` bytes and each `ys[c]`
/// `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn run_neon_wide<const C: usize, const MIN: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // byte loads and `read_unaligned` have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            // Rows 4g, 4g + 1 in `lo[c][g]`, rows 4g + 2, 4g + 3 in `hi[c][g]`, two i32 each.
            let mut lo = [[vdupq_n_s32(0); 4]; C];
            let mut hi = [[vdupq_n_s32(0); 4]; C];
            for k in 0..8 {
                let w: [int8x16_t; 4] =
                    core::array::from_fn(|g| vld1q_s8(p.add(64 * k + 16 * g).cast()));
                for c in 0..C {
                    let word = y[c].add(4 * k).cast::<i32>().read_unaligned();
                    let yk = vreinterpretq_s8_s32(vdupq_n_s32(word));
                    for g in 0..4 {
                        let pl = vmull_s8(vget_low_s8(w[g]), vget_low_s8(yk));
                        lo[c][g] = vpadalq_s16(lo[c][g], pl);
                        hi[c][g] = vpadalq_s16(hi[c][g], vmull_high_s8(w[g], yk));
                    }
                }
            }
            for g in 0..4 {
                let dx = load_f32x4(p.add(512 + 16 * g));
                for c in 0..C {
                    let isum = vpaddq_s32(lo[c][g], hi[c][g]);
                    let dy = dup_f32(y[c].add(32));
                    acc[c][g] = if MIN {
                        let mx = load_f32x4(p.add(576 + 16 * g));
                        scale_step(acc[c][g], isum, dx, mx, dy, dup_f32(y[c].add(36)))
                    } else {
                        vfmaq_f32(acc[c][g], vcvtq_f32_s32(isum), vmulq_f32(dx, dy))
                    };
                }
            }
        }
    }
    store(&acc, out);
}

/// The signed-layout product of [`run_neon_wide`] (Q4_0, Q5_0, Q8_0, IQ4_NL).
///
/// # Safety
/// As [`run_neon_wide`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn signed_run_neon<const C: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    // SAFETY: the same contract.
    unsafe { run_neon_wide::<C, false>(nb, panel, ys, out) }
}

/// The Q5_1 product of [`run_neon_wide`] (Q4_1's layout and scale step, i32 sums).
///
/// # Safety
/// As [`run_neon_wide`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q5_1_run_neon<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    // SAFETY: the same contract.
    unsafe { run_neon_wide::<C, true>(nb, panel, ys, out) }
}

/// Stores `C` columns of four 4-row accumulators to `out[c * 16..][..16]`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn store<const C: usize>(acc: &[[float32x4_t; 4]; C], out: &mut [f32]) {
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        for (g, vg) in v.iter().enumerate() {
            // SAFETY: `dst[4g..4g + 4]` lies inside the 16 f32 of `dst`.
            unsafe { vst1q_f32(dst[4 * g..][..4].as_mut_ptr(), *vg) };
        }
    }
}

/// `C` prepared columns times a Q4_1 panel with baseline NEON, into `out[c * 16 + r]`: per
/// block, column and group of four rows, `smull`/`smlal` (`smull2`/`smlal2` for the upper two
/// rows) of each weight vector (0..15 as i8) with the column's four bytes broadcast gives the
/// products in i16, summed over the eight vectors per lane (at most 8·15·128 = 15360 in
/// magnitude, exact); `saddlp` and `addp` then add each row's eight lanes into its i32 lane.
///
/// # Safety
/// The CPU must support NEON; `panel` must hold `nb * PANEL_BLOCK` bytes and each `ys[c]`
/// `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q4_1_run_neon<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // byte loads and `read_unaligned` have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            // Rows 4g, 4g + 1 in `lo[c][g]`, rows 4g + 2, 4g + 3 in `hi[c][g]`, four i16 each.
            let mut lo = [[vdupq_n_s16(0); 4]; C];
            let mut hi = [[vdupq_n_s16(0); 4]; C];
            for k in 0..8 {
                let w: [int8x16_t; 4] =
                    core::array::from_fn(|g| vld1q_s8(p.add(64 * k + 16 * g).cast()));
                for c in 0..C {
                    let word = y[c].add(4 * k).cast::<i32>().read_unaligned();
                    let yk = vreinterpretq_s8_s32(vdupq_n_s32(word));
                    for g in 0..4 {
                        lo[c][g] = vmlal_s8(lo[c][g], vget_low_s8(w[g]), vget_low_s8(yk));
                        hi[c][g] = vmlal_high_s8(hi[c][g], w[g], yk);
                    }
                }
            }
            for g in 0..4 {
                let dx = load_f32x4(p.add(512 + 16 * g));
                let mx = load_f32x4(p.add(576 + 16 * g));
                for c in 0..C {
                    let isum = vpaddq_s32(vpaddlq_s16(lo[c][g]), vpaddlq_s16(hi[c][g]));
                    let (dy, sy) = (dup_f32(y[c].add(32)), dup_f32(y[c].add(36)));
                    acc[c][g] = scale_step(acc[c][g], isum, dx, mx, dy, sy);
                }
            }
        }
    }
    store(&acc, out);
}

/// Columns per call of the AArch64 products: two columns keep 16 (dotprod: eight integer sums
/// and eight accumulators; NEON: sixteen i16 sums and eight accumulators) to 24 vector
/// registers live next to four weight vectors and the activations, within the 32.
const GROUP: usize = 2;

/// Runs `kernel` over the columns, [`GROUP`] at a time and a last single column if any.
macro_rules! run_bytes {
    ($name:ident, $kernel:ident, $tier:literal) => {
        run_bytes!($name, $kernel, $tier, check_run, COL_BLOCK);
    };
    ($name:ident, $kernel:ident, $tier:literal, $check:ident, $col_block:expr) => {
        #[doc = concat!("Safe wrapper of the ", $tier, " panel product.")]
        pub(crate) fn $name(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]) {
            let (nb, cols) = $check(n, panel, ys, y_stride, out);
            let col = |j: usize| &ys[j * y_stride..][..nb * $col_block];
            let mut j = 0;
            while j < cols {
                let k = (cols - j).min(GROUP);
                if k == GROUP {
                    // SAFETY: panel and column lengths were checked by `check_run`; this
                    // wrapper is handed out only for a CPU that supports its tier.
                    unsafe {
                        $kernel::<GROUP>(
                            nb,
                            panel,
                            core::array::from_fn(|c| col(j + c)),
                            &mut out[j * PANEL_ROWS..][..GROUP * PANEL_ROWS],
                        )
                    };
                } else {
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
                j += k;
            }
        }
    };
}

run_bytes!(
    q4_1_run_dotprod_bytes,
    q4_1_run_dotprod,
    "dotprod (`sdot`) Q4_1"
);
run_bytes!(q4_1_run_neon_bytes, q4_1_run_neon, "baseline NEON Q4_1");
run_bytes!(
    signed_run_dotprod_bytes,
    signed_run_dotprod,
    "dotprod (`sdot`) signed-layout"
);
run_bytes!(
    signed_run_neon_bytes,
    signed_run_neon,
    "baseline NEON signed-layout"
);
run_bytes!(q5_1_run_neon_bytes, q5_1_run_neon, "baseline NEON Q5_1");

/// `C` prepared Q8_K columns times a k-quant panel with `sdot` (see [`crate::panel`]), into
/// `out[c * 16 + r]`: per group `k` of 16 weights, the column's 16 quants in one vector and,
/// for each group `g` of four rows, four `sdot` by element of the rows' unsigned values (at
/// most 63, so signed bytes too) give each row's exact group sum, which `mla` scales by `sc_k`
/// into S1; then [`k_finish`].
///
/// # Safety
/// The CPU must support NEON and FEAT_DotProd; `panel` must hold `nb * K_BLOCK` bytes and each
/// `ys[c]` `nb * K_COL_BLOCK` bytes (`out` is a checked slice).
///
/// `SIGNED` (IQ4_XS): the values are i8 already, which is what `sdot` takes; [`k_finish`] then
/// skips S2.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn k_run_dotprod<const C: usize, const SIGNED: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: super-block b of the panel is `panel[b * K_BLOCK..][..K_BLOCK]` and of
        // column c `ys[c][b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract;
        // byte loads have no alignment requirement. `sdot` is supported by the contract.
        unsafe {
            let p = panel.as_ptr().add(b * K_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * K_COL_BLOCK));
            let mut s1 = [[vdupq_n_s32(0); 4]; C];
            for k in 0..16 {
                let yv: [int8x16_t; C] =
                    core::array::from_fn(|c| vld1q_s8(y[c].add(K_COL_Q + 16 * k).cast()));
                let mut isum = [[vdupq_n_s32(0); 4]; C];
                macro_rules! step {
                    ($lane:literal) => {{
                        let v = 4 * k + $lane;
                        let w: [int8x16_t; 4] =
                            core::array::from_fn(|g| vld1q_s8(p.add(64 * v + 16 * g).cast()));
                        for c in 0..C {
                            for g in 0..4 {
                                isum[c][g] = sdot_lane::<$lane>(isum[c][g], w[g], yv[c]);
                            }
                        }
                    }};
                }
                step!(0);
                step!(1);
                step!(2);
                step!(3);
                for g in 0..4 {
                    let sc = vld1q_s32(p.add(K_SC + 64 * k + 16 * g).cast());
                    for c in 0..C {
                        s1[c][g] = vmlaq_s32(s1[c][g], isum[c][g], sc);
                    }
                }
            }
            k_finish::<C, SIGNED>(p, &y, &s1, &mut acc);
        }
    }
    store(&acc, out);
}

/// The end of a k-quant super-block shared by the AArch64 products: S2, each row's
/// `(m_2i, m_2i+1)` pair times the column's pair of group sums by `smull`/`smull2`, the two
/// products of a row added by `addp`; then the reference's two `fma`s per lane,
/// `acc = fma(f32(S1), d·d_y, acc)` and `acc = fma(f32(S2), −m·d_y, acc)`; `SIGNED` (IQ4_XS,
/// no minimum) only the first.
///
/// # Safety
/// The CPU must support NEON; `p` must point at a whole packed super-block (`K_BLOCK` bytes) and
/// each `y[c]` at a whole prepared one (`K_COL_BLOCK` bytes).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn k_finish<const C: usize, const SIGNED: bool>(
    p: *const u8,
    y: &[*const u8; C],
    s1: &[[int32x4_t; 4]; C],
    acc: &mut [[float32x4_t; 4]; C],
) {
    // SAFETY: every offset below lies inside the super-block or the column block by the
    // contract; byte loads and `read_unaligned` have no alignment requirement.
    unsafe {
        if SIGNED {
            for g in 0..4 {
                let d = load_f32x4(p.add(K_D + 16 * g));
                for c in 0..C {
                    let dy = dup_f32(y[c]);
                    acc[c][g] = vfmaq_f32(acc[c][g], vcvtq_f32_s32(s1[c][g]), vmulq_f32(d, dy));
                }
            }
            return;
        }
        let mut s2 = [[vdupq_n_s32(0); 4]; C];
        for i in 0..8 {
            let pairs: [int16x8_t; C] = core::array::from_fn(|c| {
                let pair = y[c].add(K_COL_BSUM + 4 * i).cast::<i32>().read_unaligned();
                vreinterpretq_s16_s32(vdupq_n_s32(pair))
            });
            for (s2c, pair) in s2.iter_mut().zip(pairs) {
                for (g, s) in s2c.iter_mut().enumerate() {
                    let m = vld1q_s16(p.add(K_MIN + 64 * i + 16 * g).cast());
                    let lo = vmull_s16(vget_low_s16(m), vget_low_s16(pair));
                    let hi = vmull_high_s16(m, pair);
                    *s = vaddq_s32(*s, vpaddq_s32(lo, hi));
                }
            }
        }
        for g in 0..4 {
            let d = load_f32x4(p.add(K_D + 16 * g));
            let neg_m = load_f32x4(p.add(K_NEG_M + 16 * g));
            for c in 0..C {
                let dy = dup_f32(y[c]);
                let a = vfmaq_f32(acc[c][g], vcvtq_f32_s32(s1[c][g]), vmulq_f32(d, dy));
                acc[c][g] = vfmaq_f32(a, vcvtq_f32_s32(s2[c][g]), vmulq_f32(neg_m, dy));
            }
        }
    }
}

/// `C` prepared Q8_K columns times a k-quant panel with baseline NEON (no `sdot`), into
/// `out[c * 16 + r]`: per group `k` of 16 weights and group `g` of four rows, `smull`/`smlal`
/// (`smull2`/`smlal2` for rows `4g + 2`, `4g + 3`) of the four weight vectors with the column's
/// matching four quants broadcast sum four products in each i16 lane (at most
/// 4·63·128 = 32256 in magnitude, exact); `saddlp` and `addp` join each row's lanes into its
/// group sum, which `mla` scales by `sc_k` into S1; then [`k_finish`].
///
/// `SIGNED` (IQ4_XS, values −127..113): two products per i16 lane (at most 2·127·128 = 32512),
/// the two halves joined by `saddlp` and `sadalp` before `addp`.
///
/// # Safety
/// The CPU must support NEON; `panel` must hold `nb * K_BLOCK` bytes and each `ys[c]`
/// `nb * K_COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn k_run_neon<const C: usize, const SIGNED: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; C];
    for b in 0..nb {
        // SAFETY: super-block b of the panel is `panel[b * K_BLOCK..][..K_BLOCK]` and of
        // column c `ys[c][b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract;
        // byte loads have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * K_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * K_COL_BLOCK));
            let mut s1 = [[vdupq_n_s32(0); 4]; C];
            for k in 0..16 {
                // Quants 4l..4l + 4 of the group in every dword of `yl[c][l]`.
                let yl: [[int8x16_t; 4]; C] = core::array::from_fn(|c| {
                    let v = vreinterpretq_s32_s8(vld1q_s8(y[c].add(K_COL_Q + 16 * k).cast()));
                    [
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<0>(v)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<1>(v)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<2>(v)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<3>(v)),
                    ]
                });
                for g in 0..4 {
                    let w: [int8x16_t; 4] =
                        core::array::from_fn(|l| vld1q_s8(p.add(64 * (4 * k + l) + 16 * g).cast()));
                    let sc = vld1q_s32(p.add(K_SC + 64 * k + 16 * g).cast());
                    for (s1c, yc) in s1.iter_mut().zip(&yl) {
                        // Products of values l0, l0 + 1: rows 4g, 4g + 1 (low), 4g + 2, 4g + 3.
                        let two = |l0: usize| {
                            let lo = vmull_s8(vget_low_s8(w[l0]), vget_low_s8(yc[l0]));
                            let hi = vmull_high_s8(w[l0], yc[l0]);
                            (
                                vmlal_s8(lo, vget_low_s8(w[l0 + 1]), vget_low_s8(yc[l0 + 1])),
                                vmlal_high_s8(hi, w[l0 + 1], yc[l0 + 1]),
                            )
                        };
                        let isum = if SIGNED {
                            let ((lo0, hi0), (lo1, hi1)) = (two(0), two(2));
                            vpaddq_s32(
                                vpadalq_s16(vpaddlq_s16(lo0), lo1),
                                vpadalq_s16(vpaddlq_s16(hi0), hi1),
                            )
                        } else {
                            let (mut lo, mut hi) = two(0);
                            for l in 2..4 {
                                lo = vmlal_s8(lo, vget_low_s8(w[l]), vget_low_s8(yc[l]));
                                hi = vmlal_high_s8(hi, w[l], yc[l]);
                            }
                            vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
                        };
                        s1c[g] = vmlaq_s32(s1c[g], isum, sc);
                    }
                }
            }
            k_finish::<C, SIGNED>(p, &y, &s1, &mut acc);
        }
    }
    store(&acc, out);
}

crate::panel::k_instances!(k_run_dotprod, "neon,dotprod", k_dotprod, k_signed_dotprod);
crate::panel::k_instances!(k_run_neon, "neon", k_neon, k_signed_neon);

run_bytes!(
    k_run_dotprod_bytes,
    k_dotprod,
    "dotprod (`sdot`) k-quant",
    check_k_run,
    K_COL_BLOCK
);
run_bytes!(
    k_run_signed_dotprod_bytes,
    k_signed_dotprod,
    "dotprod (`sdot`) IQ4_XS (signed k-quant layout)",
    check_k_run,
    K_COL_BLOCK
);
run_bytes!(
    k_run_neon_bytes,
    k_neon,
    "baseline NEON k-quant",
    check_k_run,
    K_COL_BLOCK
);
run_bytes!(
    k_run_signed_neon_bytes,
    k_signed_neon,
    "baseline NEON IQ4_XS (signed k-quant layout)",
    check_k_run,
    K_COL_BLOCK
);
