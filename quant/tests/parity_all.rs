//! Every format's dispatched `vec_dot`, on every tier this CPU supports, against the scalar
//! reference: one harness for all formats, so a new SIMD kernel is covered the moment it enters
//! a tier's table.
//!
//! Weights are made the way model files make them (ggml's reference quantizer over random
//! rows), activations the way the forward pass makes them (`from_float` into the partner
//! format). Rows cover the shapes that break kernels: one block, odd block counts, tails of a
//! SIMD loop, and values that stress scales (all zeros, constant rows, single spikes, huge and
//! tiny magnitudes, mixed signs).
//!
//! Tolerance: a SIMD kernel computes the same integer block sums as the scalar one and may
//! differ only in how the f32 per-block terms are scaled and summed. Each f32 operation is off
//! by at most 2^-24 relative, and a sum of `b` terms by at most about `b`·2^-24 times the sum of
//! their magnitudes. The magnitudes are bounded here by Σ|w_i|·|a_i| plus, for formats with a
//! block minimum, Σ|min|·|a_i| (computed from the dequantized operands, in f64). With at most
//! 64 blocks that is 4e-6; [`DOT_REL_TOL`] allows 2.5× that for kernels that split the sum
//! over several accumulators. ggml's own test accepts 2e-2.

mod common;

use common::Rng;
use eddy_quant::dispatch::{Tier, type_traits_for};
use eddy_quant::{GgmlType, dequantize, from_float, quantize, row_bytes, supported_types};

/// Allowed |simd − scalar| relative to the magnitude bound described above.
const DOT_REL_TOL: f64 = 1e-5;

/// Row lengths in blocks of 256 (k-quants) or their equivalent in 32-blocks: 1, odd counts, the
/// SmolLM2 rows (576 = 18·32, 1536 = 48·32) and Gemma 3's 640 = 20·32. Miri (scripts/sanitize.sh),
/// which interprets every step of the scalar tier, takes the one-block rows only.
const WEIGHTS_PER_ROW: &[usize] = if cfg!(miri) {
    &[256]
} else {
    &[256, 512, 768, 1792, 2304, 4608, 5120, 1536 * 8]
};

/// The kinds of rows every kernel must survive.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Normal,
    Zeros,
    Constant,
    Spikes,
    Huge,
    Tiny,
    Positive,
}

const SHAPES: [Shape; 7] = [
    Shape::Normal,
    Shape::Zeros,
    Shape::Constant,
    Shape::Spikes,
    Shape::Huge,
    Shape::Tiny,
    Shape::Positive,
];

fn row(r: &mut Rng, n: usize, shape: Shape) -> Vec<f32> {
    (0..n)
        .map(|i| match shape {
            Shape::Normal => r.normal(),
            Shape::Zeros => 0.0,
            Shape::Constant => -0.75,
            Shape::Spikes => {
                if i % 37 == 5 {
                    if r.uniform() < 0.5 { 60.0 } else { -60.0 }
                } else {
                    0.01 * r.normal()
                }
            }
            // Large enough to stress the scales, small enough that f16 scales stay finite
            // (ggml's formats cannot hold more: amax/127 must fit an f16).
            Shape::Huge => 3.0e4 * r.normal(),
            Shape::Tiny => 1.0e-6 * r.normal(),
            Shape::Positive => r.uniform() * 2.0 + 0.5,
        })
        .collect()
}

fn has_min(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q2_K | GgmlType::Q4_K | GgmlType::Q5_K
    )
}

/// Σ|w_i a_i| plus, for formats with a block minimum, 3·Σ(max|w| over the block)·|a_i|: the
/// kernels sum `scale·q·a` and `min·a` separately, and each of |scale·q| ≤ range ≤ 2·max|w| and
/// |min| ≤ max|w| (plus rounding), so these bound the terms that cancel in Σ w_i a_i.
fn magnitude(ty: GgmlType, w: &[f32], a: &[f32]) -> f64 {
    let plain: f64 = w
        .iter()
        .zip(a)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum();
    if !has_min(ty) {
        return plain;
    }
    let bs = ty.block_size() as usize;
    let mut extra = 0.0;
    for (wb, ab) in w.chunks(bs).zip(a.chunks(bs)) {
        let amax = wb.iter().fold(0f64, |m, x| m.max(f64::from(*x).abs()));
        extra += 3.0 * amax * ab.iter().map(|y| f64::from(*y).abs()).sum::<f64>();
    }
    plain + extra
}

#[test]
fn every_format_every_tier_matches_scalar() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0usize;
    let supported: Vec<Tier> = Tier::ALL.into_iter().filter(|t| t.is_supported()).collect();
    eprintln!(
        "parity_all: supported tiers {supported:?}, best {}, active {}",
        eddy_quant::dispatch::best_supported(),
        eddy_quant::dispatch::active_tier()
    );
    for ty in supported_types() {
        let scalar = type_traits_for(Tier::Scalar, ty).expect("scalar row");
        let yt = scalar.vec_dot_type;
        let tiers: Vec<Tier> = Tier::ALL
            .into_iter()
            .filter(|t| *t != Tier::Scalar && type_traits_for(*t, ty).is_some())
            .collect();
        for &n in WEIGHTS_PER_ROW {
            if n % ty.block_size() as usize != 0 || n % yt.block_size() as usize != 0 {
                continue;
            }
            for ws in SHAPES {
                for as_ in [Shape::Normal, Shape::Spikes, Shape::Zeros, Shape::Huge] {
                    let wf = row(&mut rng, n, ws);
                    let af = row(&mut rng, n, as_);
                    let mut wq = vec![0u8; row_bytes(ty, n).unwrap()];
                    quantize(ty, &wf, &mut wq).unwrap();
                    let mut aq = vec![0u8; row_bytes(yt, n).unwrap()];
                    from_float(yt, &af, &mut aq).unwrap();
                    let mut wd = vec![0f32; n];
                    dequantize(ty, &wq, &mut wd).unwrap();
                    let mut ad = vec![0f32; n];
                    dequantize(yt, &aq, &mut ad).unwrap();
                    let mag = magnitude(ty, &wd, &ad);
                    let want = (scalar.vec_dot)(n, &wq, &aq);
                    for &tier in &tiers {
                        let t = type_traits_for(tier, ty).unwrap();
                        let got = (t.vec_dot)(n, &wq, &aq);
                        if !want.is_finite() {
                            // F16 activations overflow on the `Huge` rows: both must say so.
                            assert!(
                                got.is_nan() == want.is_nan() && !got.is_finite(),
                                "{ty} on {tier}, n={n}: got {got}, scalar {want}"
                            );
                            continue;
                        }
                        let diff = (f64::from(got) - f64::from(want)).abs();
                        assert!(
                            diff <= DOT_REL_TOL * mag || got == want,
                            "{ty} on {tier}, n={n}, weights {ws:?}, activations {as_:?}: \
                             got {got}, scalar {want}, |diff| {diff:e}, bound {:e}",
                            DOT_REL_TOL * mag
                        );
                        if mag == 0.0 {
                            assert_eq!(got, 0.0, "{ty} on {tier}: zero operands");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("parity_all: {checked} (format, tier, row) comparisons");
}

/// Any bit pattern a file may hold in the quant fields: rows quantized by the reference
/// quantizer, then random bytes XOR-ed into the middle third of every block, which holds only
/// quants in every layout (the f16/f32 scales, which must stay finite, sit at either end).
#[test]
fn random_quant_bits_match_scalar() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for ty in supported_types() {
        if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            continue;
        }
        let scalar = type_traits_for(Tier::Scalar, ty).expect("scalar row");
        let yt = scalar.vec_dot_type;
        let n = 2304;
        if n % ty.block_size() as usize != 0 {
            continue;
        }
        for _ in 0..if cfg!(miri) { 1 } else { 8 } {
            let wf = row(&mut rng, n, Shape::Normal);
            let af = row(&mut rng, n, Shape::Normal);
            let mut wq = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize(ty, &wf, &mut wq).unwrap();
            let tsz = ty.type_size() as usize;
            for blk in wq.chunks_mut(tsz) {
                for b in &mut blk[tsz / 3..2 * tsz / 3] {
                    *b ^= rng.next() as u8;
                }
            }
            let mut aq = vec![0u8; row_bytes(yt, n).unwrap()];
            from_float(yt, &af, &mut aq).unwrap();
            let mut wd = vec![0f32; n];
            dequantize(ty, &wq, &mut wd).unwrap();
            let mut ad = vec![0f32; n];
            dequantize(yt, &aq, &mut ad).unwrap();
            let mag = magnitude(ty, &wd, &ad);
            let want = (scalar.vec_dot)(n, &wq, &aq);
            for tier in Tier::ALL {
                if tier == Tier::Scalar {
                    continue;
                }
                let Some(t) = type_traits_for(tier, ty) else {
                    continue;
                };
                let got = (t.vec_dot)(n, &wq, &aq);
                let diff = (f64::from(got) - f64::from(want)).abs();
                assert!(
                    diff <= DOT_REL_TOL * mag,
                    "{ty} on {tier}, random quant bits: got {got}, scalar {want}, |diff| {diff:e}"
                );
            }
        }
    }
}
