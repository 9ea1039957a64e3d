//! Helpers shared by the panel-kernel tests (`panel_signed.rs`, `panel_k.rs`,
//! `panel_q5_1.rs`), included with `#[path]` so that the other test binaries do not carry them.
#![allow(dead_code)]

use eddy_quant::dispatch::Tier;
use eddy_quant::panel::{PanelKernels, panel_kernels_for};
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
