//! Helpers shared by the panel-kernel tests (`panel_signed.rs`, `panel_k.rs`,
//! `panel_q5_1.rs`), included with `#[path]` so that the other test binaries do not carry them.
#![allow(dead_code)]

use eddy_quant::dispatch::Tier;
use eddy_quant::panel::{PANEL_ROWS, PanelKernels, panel_kernels_for, panel_kernels_reference};
use eddy_quant::{GgmlType, quantize, row_bytes};

use crate::common::Rng;

/// Rows of `ty` quantized by the reference quantizer from normal values, with a zero row and a
/// spiky row among them.
pub fn quantized_rows(ty: GgmlType, rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let rb = row_bytes(ty, n).unwrap();
    let mut w = vec![0u8; rows * rb];
    for (r, out) in w.chunks_exact_mut(rb).enumerate() {
        let x: Vec<f32> = (0..n)
            .map(|i| match r % 4 {
                1 => 0.0,
                2 if i % 29 == 3 => 50.0,
                _ => rng.normal(),
            })
            .collect();
        quantize(ty, &x, out).unwrap();
    }
    w
}

/// `cols` activation columns of `n` values (normal, times `scale`, with one large value in
/// every 17) prepared by `k`, back to back.
pub fn prepared(k: &PanelKernels, rng: &mut Rng, cols: usize, n: usize, scale: f32) -> Vec<u8> {
    let cb = (k.column_bytes)(n);
    let mut ys = vec![0u8; cols * cb];
    for c in 0..cols {
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if i % 17 == c % 17 {
                    30.0 * scale
                } else {
                    rng.normal() * scale
                }
            })
            .collect();
        (k.prepare)(&x, &mut ys[c * cb..][..cb]);
    }
    ys
}

/// Equal bits, or both NaN.
pub fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The SIMD panel kernels of `ty` in every tier this CPU supports.
pub fn tiers(ty: GgmlType) -> Vec<(Tier, &'static PanelKernels)> {
    Tier::ALL
        .into_iter()
        .filter_map(|t| panel_kernels_for(t, ty).map(|k| (t, k)))
        .collect()
}

/// The little-endian f32 at byte `at`.
pub fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Whether `tier` packs `ty` with the value bytes of each block in row pairs rather than in the
/// reference layout: the i8mm tier does, for every format with panel kernels (`smmla` takes two
/// rows' eight consecutive values side by side). Byte `128 m + 16 p + 8 h + i` of a block's
/// values is then value `8 m + i` of row `2 p + h`, where the reference layout has value
/// `4 k + i` of row `r` at byte `64 k + 4 r + i`; every other byte is the same in both.
pub fn row_pairs(tier: Tier, ty: GgmlType) -> bool {
    tier == Tier::I8mm && panel_kernels_reference(ty).is_some()
}

/// Bytes of a packed block of `ty` and, at its start, of its values.
fn block_and_values(ty: GgmlType) -> (usize, usize) {
    if ty.block_size() == 256 {
        (5760, 4096)
    } else {
        (640, 512)
    }
}

/// Byte offsets of value `v` of row `r` in the reference layout and in row pairs.
fn offsets(v: usize, r: usize) -> (usize, usize) {
    (
        64 * (v / 4) + 4 * r + v % 4,
        128 * (v / 8) + 16 * (r / 2) + 8 * (r % 2) + v % 8,
    )
}

/// A panel of `ty` packed in the reference layout, rearranged into `tier`'s layout.
pub fn in_tier_layout(tier: Tier, ty: GgmlType, panel: &[u8]) -> Vec<u8> {
    let mut out = panel.to_vec();
    if row_pairs(tier, ty) {
        let (block, values) = block_and_values(ty);
        for (src, dst) in panel.chunks_exact(block).zip(out.chunks_exact_mut(block)) {
            for r in 0..16 {
                for v in 0..values / 16 {
                    let (a, b) = offsets(v, r);
                    dst[b] = src[a];
                }
            }
        }
    }
    out
}

/// A panel of `ty` packed in `tier`'s layout, rearranged into the reference layout.
pub fn in_reference_layout(tier: Tier, ty: GgmlType, panel: &[u8]) -> Vec<u8> {
    let mut out = panel.to_vec();
    if row_pairs(tier, ty) {
        let (block, values) = block_and_values(ty);
        for (src, dst) in panel.chunks_exact(block).zip(out.chunks_exact_mut(block)) {
            for r in 0..16 {
                for v in 0..values / 16 {
                    let (a, b) = offsets(v, r);
                    dst[a] = src[b];
                }
            }
        }
    }
    out
}

/// Every tier's packing and product of the 16 rows `w` (`n` weights each) with one and with two
/// of the prepared columns `ys` (stride `cb`) give `want`'s bits (the reference's outputs for
/// both columns).
pub fn assert_tiers_match(ty: GgmlType, n: usize, w: &[u8], ys: &[u8], cb: usize, want: &[f32]) {
    for (tier, k) in tiers(ty) {
        let mut panel = vec![0; (k.panel_bytes)(n)];
        (k.pack)(n, w, PANEL_ROWS, &mut panel);
        for cols in 1..=2 {
            let mut got = vec![0f32; cols * PANEL_ROWS];
            (k.run)(n, &panel, &ys[..cols * cb], cb, &mut got);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    same(*g, *w),
                    "{ty} {tier}: cols {cols} output {i}: {g:e} vs {w:e}"
                );
            }
        }
    }
}
