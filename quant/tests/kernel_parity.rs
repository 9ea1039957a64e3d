//! Every dispatched kernel against the scalar reference, on every tier this CPU supports.
//!
//! The SIMD kernels compute the same integer block sums as the scalar ones and may differ only
//! in the order of the f32 accumulation, so the difference is bounded by [`DOT_REL_TOL`] times
//! the sum of the magnitudes of the per-block terms.

mod common;

use common::Rng;
use eddy_quant::dispatch::{Tier, active_tier, type_traits_for};
use eddy_quant::kquants::{BlockQ4K, BlockQ6K, BlockQ8K};
use eddy_quant::legacy::{BlockQ4_1, BlockQ8_0, BlockQ8_1};
use eddy_quant::panel::panel_kernels_for;
use eddy_quant::{GgmlType, QK_K, block_bytes, dequantize, type_traits, type_traits_scalar};
use half::f16;

/// Allowed |simd − scalar| relative to Σ_blocks (|d_x d_y|·Σ|q_x q_y| + |m_x s_y|).
const DOT_REL_TOL: f64 = 1e-5;

/// Block counts to try: one block, odd counts, the SmolLM2 row lengths (576, 1536 weights).
const BLOCK_COUNTS: [usize; 7] = [1, 2, 3, 7, 18, 33, 48];

fn h(b: [u8; 2]) -> f64 {
    f64::from(f16::from_le_bytes(b).to_f32())
}

/// Compares every supported tier's `vec_dot` of `ty` with the scalar one.
fn check_all_tiers(ty: GgmlType, n: usize, x: &[u8], y: &[u8], magnitude: f64, what: &str) {
    let scalar = (type_traits_scalar(ty).expect("supported").vec_dot)(n, x, y);
    let mut tried = 0;
    for tier in Tier::ALL {
        let Some(t) = type_traits_for(tier, ty) else {
            continue;
        };
        tried += 1;
        let got = (t.vec_dot)(n, x, y);
        let diff = (f64::from(got) - f64::from(scalar)).abs();
        assert!(
            diff <= DOT_REL_TOL * magnitude,
            "{ty} {tier} {what} n={n}: got {got}, scalar {scalar}, |diff| {diff:e}, Σ|terms| {magnitude:e}"
        );
        if magnitude == 0.0 {
            assert_eq!(got, 0.0, "{ty} {tier} {what}: zero blocks");
        }
    }
    assert!(tried >= 1);
}

fn magnitude_q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(bx, by)| {
            let s: f64 = (0..16)
                .map(|j| {
                    f64::from(bx.qs[j] & 15) * f64::from(by.qs[j]).abs()
                        + f64::from(bx.qs[j] >> 4) * f64::from(by.qs[j + 16]).abs()
                })
                .sum();
            (h(bx.d) * h(by.d)).abs() * s + (h(bx.m) * h(by.s)).abs()
        })
        .sum()
}

fn magnitude_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(bx, by)| {
            let s: f64 = bx
                .qs
                .iter()
                .zip(&by.qs)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum();
            (h(bx.d) * h(by.d)).abs() * s
        })
        .sum()
}

fn check_q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1], what: &str) {
    let (xb, yb) = (block_bytes(x), block_bytes(y));
    check_all_tiers(
        GgmlType::Q4_1,
        x.len() * 32,
        xb,
        yb,
        magnitude_q4_1(x, y),
        what,
    );
}

fn check_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0], what: &str) {
    let (xb, yb) = (block_bytes(x), block_bytes(y));
    check_all_tiers(
        GgmlType::Q8_0,
        x.len() * 32,
        xb,
        yb,
        magnitude_q8_0(x, y),
        what,
    );
}

fn random_q4_1(r: &mut Rng) -> BlockQ4_1 {
    BlockQ4_1 {
        d: r.f16(0.05),
        m: r.f16(1.0),
        qs: core::array::from_fn(|_| r.byte()),
    }
}

fn random_q8_1(r: &mut Rng) -> BlockQ8_1 {
    BlockQ8_1 {
        d: r.f16(0.02),
        s: r.f16(50.0),
        qs: core::array::from_fn(|_| r.q8()),
    }
}

fn random_q8_0(r: &mut Rng) -> BlockQ8_0 {
    BlockQ8_0 {
        d: r.f16(0.02),
        qs: core::array::from_fn(|_| r.q8()),
    }
}

const F16_MAX: [u8; 2] = [0xff, 0x7b];
const F16_NEG_MAX: [u8; 2] = [0xff, 0xfb];

#[test]
fn q4_1_q8_1_matches_scalar_on_random_blocks() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for nb in BLOCK_COUNTS {
        for rep in 0..20 {
            let x: Vec<_> = (0..nb).map(|_| random_q4_1(&mut r)).collect();
            let y: Vec<_> = (0..nb).map(|_| random_q8_1(&mut r)).collect();
            check_q4_1(&x, &y, &format!("random rep {rep}"));
        }
    }
}

#[test]
fn q8_0_q8_0_matches_scalar_on_random_blocks() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for nb in BLOCK_COUNTS {
        for rep in 0..20 {
            let x: Vec<_> = (0..nb).map(|_| random_q8_0(&mut r)).collect();
            let y: Vec<_> = (0..nb).map(|_| random_q8_0(&mut r)).collect();
            check_q8_0(&x, &y, &format!("random rep {rep}"));
        }
    }
}

#[test]
fn q4_1_q8_1_extreme_blocks() {
    let zero_x = BlockQ4_1 {
        d: [0; 2],
        m: [0; 2],
        qs: [0; 16],
    };
    let zero_y = BlockQ8_1 {
        d: [0; 2],
        s: [0; 2],
        qs: [0; 32],
    };
    check_q4_1(&[zero_x; 3], &[zero_y; 3], "all zero");
    let max_x = BlockQ4_1 {
        d: F16_MAX,
        m: F16_NEG_MAX,
        qs: [0xff; 16],
    };
    for q in [127i8, -127] {
        let max_y = BlockQ8_1 {
            d: F16_MAX,
            s: F16_MAX,
            qs: [q; 32],
        };
        check_q4_1(
            &[max_x; 5],
            &[max_y; 5],
            &format!("f16 max, quants 15 × {q}"),
        );
        check_q4_1(&[max_x, zero_x], &[max_y, zero_y], "max then zero");
    }
    let mut alt = [0i8; 32];
    for (i, a) in alt.iter_mut().enumerate() {
        *a = if i % 2 == 0 { 127 } else { -127 };
    }
    let y = BlockQ8_1 {
        d: F16_MAX,
        s: [0; 2],
        qs: alt,
    };
    check_q4_1(&[max_x], &[y], "alternating ±127");
}

#[test]
fn q8_0_q8_0_extreme_blocks() {
    let zero = BlockQ8_0 {
        d: [0; 2],
        qs: [0; 32],
    };
    check_q8_0(&[zero; 3], &[zero; 3], "all zero");
    for (qx, qy) in [
        (127i8, 127i8),
        (-127, 127),
        (127, -127),
        (-127, -127),
        (0, 127),
    ] {
        let x = BlockQ8_0 {
            d: F16_MAX,
            qs: [qx; 32],
        };
        let y = BlockQ8_0 {
            d: F16_NEG_MAX,
            qs: [qy; 32],
        };
        check_q8_0(&[x; 3], &[y; 3], &format!("f16 max, {qx} × {qy}"));
        check_q8_0(&[zero, x], &[y, zero], "zero against max");
    }
}

#[test]
fn type_traits_returns_the_active_tier() {
    let tier = active_tier();
    assert!(tier.is_supported());
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K] {
        let a = type_traits(ty).expect("supported");
        let b = type_traits_for(tier, ty).expect("supported");
        assert!(core::ptr::eq(a, b), "{ty}");
    }
    eprintln!("active tier: {tier}");
}

// ---------------------------------------------------------------------------------------------
// k-quants against Q8_K

fn random_q8_k(r: &mut Rng, fill: Option<i8>) -> BlockQ8K {
    let mut qs = [0i8; QK_K];
    for q in &mut qs {
        *q = fill.unwrap_or_else(|| r.q8());
    }
    let mut bsums = [[0u8; 2]; QK_K / 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        let sum: i32 = qs[16 * j..16 * j + 16].iter().map(|&q| i32::from(q)).sum();
        *s = (sum as i16).to_le_bytes();
    }
    let d = (r.next() >> 40) as f32 / (1u64 << 24) as f32 * 0.02;
    BlockQ8K {
        d: d.to_le_bytes(),
        qs,
        bsums,
    }
}

fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f64> {
    let mut out = vec![0.0f32; n];
    dequantize(ty, bytes, &mut out).expect("dequantize");
    out.into_iter().map(f64::from).collect()
}

/// Σ_i |x_i|·|y_i| over the given per-weight term vectors (several for formats whose weight is a
/// sum of terms, e.g. `d·sc·q` and `−dmin·m`).
fn magnitude_of(terms: &[Vec<f64>], y: &[f64]) -> f64 {
    (0..y.len())
        .map(|i| terms.iter().map(|t| t[i].abs()).sum::<f64>() * y[i].abs())
        .sum()
}

fn check_q4_k(x: &[BlockQ4K], y: &[BlockQ8K], what: &str) {
    let n = x.len() * QK_K;
    let only_d: Vec<_> = x.iter().map(|b| BlockQ4K { dmin: [0; 2], ..*b }).collect();
    let only_min: Vec<_> = x.iter().map(|b| BlockQ4K { d: [0; 2], ..*b }).collect();
    let terms = [
        dequant(GgmlType::Q4_K, block_bytes(&only_d), n),
        dequant(GgmlType::Q4_K, block_bytes(&only_min), n),
    ];
    let yd = dequant(GgmlType::Q8_K, block_bytes(y), n);
    let mag = magnitude_of(&terms, &yd);
    check_all_tiers(GgmlType::Q4_K, n, block_bytes(x), block_bytes(y), mag, what);
}

fn check_q6_k(x: &[BlockQ6K], y: &[BlockQ8K], what: &str) {
    let n = x.len() * QK_K;
    let terms = [dequant(GgmlType::Q6_K, block_bytes(x), n)];
    let yd = dequant(GgmlType::Q8_K, block_bytes(y), n);
    let mag = magnitude_of(&terms, &yd);
    check_all_tiers(GgmlType::Q6_K, n, block_bytes(x), block_bytes(y), mag, what);
}

fn random_q4_k(r: &mut Rng) -> BlockQ4K {
    BlockQ4K {
        d: r.f16(0.01),
        dmin: r.f16(0.01),
        scales: core::array::from_fn(|_| r.byte()),
        qs: core::array::from_fn(|_| r.byte()),
    }
}

fn random_q6_k(r: &mut Rng) -> BlockQ6K {
    BlockQ6K {
        ql: core::array::from_fn(|_| r.byte()),
        qh: core::array::from_fn(|_| r.byte()),
        scales: core::array::from_fn(|_| r.byte() as i8),
        d: r.f16(0.01),
    }
}

const K_BLOCK_COUNTS: [usize; 5] = [1, 2, 3, 5, 6];

#[test]
fn q4_k_q8_k_matches_scalar_on_random_blocks() {
    let mut r = Rng(0x0bad_cafe_f00d_1234);
    for nb in K_BLOCK_COUNTS {
        for rep in 0..10 {
            let x: Vec<_> = (0..nb).map(|_| random_q4_k(&mut r)).collect();
            let y: Vec<_> = (0..nb).map(|_| random_q8_k(&mut r, None)).collect();
            check_q4_k(&x, &y, &format!("random rep {rep}"));
        }
    }
}

#[test]
fn q6_k_q8_k_matches_scalar_on_random_blocks() {
    let mut r = Rng(0x5eed_5eed_5eed_5eed);
    for nb in K_BLOCK_COUNTS {
        for rep in 0..10 {
            let x: Vec<_> = (0..nb).map(|_| random_q6_k(&mut r)).collect();
            let y: Vec<_> = (0..nb).map(|_| random_q8_k(&mut r, None)).collect();
            check_q6_k(&x, &y, &format!("random rep {rep}"));
        }
    }
}

#[test]
fn k_quants_extreme_blocks() {
    let mut r = Rng(7);
    let x4 = BlockQ4K {
        d: F16_MAX,
        dmin: F16_NEG_MAX,
        scales: [0xff; 12],
        qs: [0xff; QK_K / 2],
    };
    let x6 = BlockQ6K {
        ql: [0xff; QK_K / 2],
        qh: [0xff; QK_K / 4],
        scales: [-128; QK_K / 16],
        d: F16_MAX,
    };
    let x6_zero = BlockQ6K {
        ql: [0; QK_K / 2],
        qh: [0; QK_K / 4],
        scales: [127; QK_K / 16],
        d: F16_NEG_MAX,
    };
    for q in [127i8, -127, 0] {
        let y = random_q8_k(&mut r, Some(q));
        check_q4_k(&[x4; 3], &[y; 3], &format!("max × {q}"));
        check_q6_k(&[x6; 3], &[y; 3], &format!("max × {q}"));
        check_q6_k(&[x6_zero, x6], &[y; 2], &format!("q = −32 and max × {q}"));
    }
    let zero4 = BlockQ4K {
        d: [0; 2],
        dmin: [0; 2],
        scales: [0; 12],
        qs: [0; QK_K / 2],
    };
    let zy = random_q8_k(&mut r, Some(0));
    check_q4_k(&[zero4; 2], &[zy; 2], "all zero");
}

// ---------------------------------------------------------------------------------------------
// Every block format at the edges of its fields

/// Where a format keeps its f16 scale fields (byte offsets in a block) and which of them is a
/// block minimum (summed separately, so it needs its own term in the magnitude bound).
struct Fields {
    ty: GgmlType,
    scales: &'static [usize],
    min: Option<usize>,
    /// Whether an all-0x80 pattern makes quants of −128, which the sign-trick kernels of the
    /// 8-bit formats do not support (ggml's quantizers never write them).
    has_i8_quants: bool,
}

const FIELDS: [Fields; 13] = [
    Fields {
        ty: GgmlType::Q4_0,
        scales: &[0],
        min: None,
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q4_1,
        scales: &[0],
        min: Some(2),
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q5_0,
        scales: &[0],
        min: None,
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q5_1,
        scales: &[0],
        min: Some(2),
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q8_0,
        scales: &[0],
        min: None,
        has_i8_quants: true,
    },
    // Q8_1's `s` (offset 2) is not read by Q8_1 · Q8_1; it is left as quantized.
    Fields {
        ty: GgmlType::Q8_1,
        scales: &[0, 2],
        min: None,
        has_i8_quants: true,
    },
    Fields {
        ty: GgmlType::Q2_K,
        scales: &[80],
        min: Some(82),
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q3_K,
        scales: &[108],
        min: None,
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q4_K,
        scales: &[0],
        min: Some(2),
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q5_K,
        scales: &[0],
        min: Some(2),
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::Q6_K,
        scales: &[208],
        min: None,
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::IQ4_NL,
        scales: &[0],
        min: None,
        has_i8_quants: false,
    },
    Fields {
        ty: GgmlType::IQ4_XS,
        scales: &[0],
        min: None,
        has_i8_quants: false,
    },
];

/// Every byte of every block outside the scale fields set to `pattern` (quants, sub-block
/// scales and minimums, high bits: all at their extremes for 0x00 and 0xff), the scale fields
/// set to `scale` and the minimum to `min`, against activations whose quants are all ±127 or
/// alternate in sign, or come from a normal row; every tier against the scalar kernel.
#[test]
fn every_block_format_with_extreme_fields() {
    let mut r = Rng(0xfeed_beef_0000_0001);
    for f in &FIELDS {
        let ty = f.ty;
        let scalar = type_traits_scalar(ty).expect("supported");
        let yt = scalar.vec_dot_type;
        let n = 768;
        let bs = ty.type_size() as usize;
        let mut base = vec![0u8; n / ty.block_size() as usize * bs];
        let w: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        eddy_quant::quantize(ty, &w, &mut base).expect("quantize");
        let patterns: &[u8] = if f.has_i8_quants {
            &[0x00, 0xff, 0x55, 0xaa, 0x7f, 0x81]
        } else {
            &[0x00, 0xff, 0x55, 0xaa, 0x7f, 0x80, 0x81]
        };
        let scale_values = [F16_MAX, F16_NEG_MAX, [0x00, 0x3c], [0; 2]];
        let activations: Vec<Vec<f32>> = vec![
            vec![1.0; n],
            vec![-300.0; n],
            (0..n)
                .map(|i| if i % 2 == 0 { 2.0 } else { -2.0 })
                .collect(),
            (0..n).map(|_| (r.byte() as f32 - 127.5) / 64.0).collect(),
        ];
        for &pattern in patterns {
            for (si, &scale) in scale_values.iter().enumerate() {
                let min = scale_values[(si + 1) % scale_values.len()];
                let mut x = base.clone();
                for blk in x.chunks_mut(bs) {
                    let keep =
                        |i: usize| f.scales.iter().chain(&f.min).any(|&o| i == o || i == o + 1);
                    for (i, b) in blk.iter_mut().enumerate() {
                        if !keep(i) {
                            *b = pattern;
                        }
                    }
                    for &o in f.scales {
                        if !(ty == GgmlType::Q8_1 && o == 2) {
                            blk[o..o + 2].copy_from_slice(&scale);
                        }
                    }
                    if let Some(o) = f.min {
                        blk[o..o + 2].copy_from_slice(&min);
                    }
                }
                // The two parts of each weight, for the magnitude bound.
                let zero_fields = |which: &[usize]| {
                    let mut v = x.clone();
                    for blk in v.chunks_mut(bs) {
                        for &o in which {
                            blk[o..o + 2].copy_from_slice(&[0; 2]);
                        }
                    }
                    dequant(ty, &v, n)
                };
                let mins: Vec<usize> = f.min.into_iter().collect();
                let terms = [zero_fields(&mins), zero_fields(f.scales)];
                for a in &activations {
                    let mut y = vec![0u8; eddy_quant::row_bytes(yt, n).unwrap()];
                    eddy_quant::from_float(yt, a, &mut y).expect("from_float");
                    let yd = dequant(yt, &y, n);
                    let mag = magnitude_of(&terms, &yd);
                    let what = format!("pattern {pattern:#04x}, scale {scale:?}, min {min:?}");
                    check_all_tiers(ty, n, &x, &y, mag, &what);
                }
            }
        }
    }
}

/// The float formats have blocks of one value, so rows of any length are valid: every length
/// up to 70 (all tails of the 8-, 16- and 32-value loops) and a few long odd ones, against the
/// scalar kernel, with the magnitude bound of the other tests (Σ|x_i·y_i|).
#[test]
fn float_formats_with_odd_lengths() {
    let mut r = Rng(0xf10a_7000_0000_0001);
    let lengths: Vec<usize> = (0..=70).chain([255, 257, 511, 1000, 4097]).collect();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for &n in &lengths {
            let xf: Vec<f32> = (0..n).map(|_| (r.byte() as f32 - 127.5) / 16.0).collect();
            let yf: Vec<f32> = (0..n).map(|_| (r.byte() as f32 - 127.5) / 32.0).collect();
            let size = ty.type_size() as usize;
            let mut x = vec![0u8; n * size];
            let mut y = vec![0u8; n * size];
            eddy_quant::quantize(ty, &xf, &mut x).expect("quantize");
            eddy_quant::quantize(ty, &yf, &mut y).expect("quantize");
            let (xd, yd) = (dequant(ty, &x, n), dequant(ty, &y, n));
            let mag: f64 = xd.iter().zip(&yd).map(|(a, b)| (a * b).abs()).sum();
            check_all_tiers(ty, n, &x, &y, mag, "odd length");
        }
    }
}

/// Rows of 256-value blocks that exercise every branch of the Q8_K quantizer: normal values of
/// every scale, the largest magnitude at either sign, first or last, ties between `+a` and
/// `−a` (the first wins), all zeros and signed zeros, subnormal and huge extremes (where
/// `−127 / max` overflows to infinity), infinities, NaNs with payloads among values and whole
/// blocks of NaN, and values on rounding ties.
fn q8_k_cases(rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut cases = Vec::new();
    for scale in [1.0f32, 1e-3, 1e4, 1e30, 1e-30, 1e-40, 3e38] {
        cases.push(rng.vec(QK_K * 3, scale));
    }
    let block = |f: &dyn Fn(usize) -> f32| (0..QK_K).map(f).collect::<Vec<f32>>();
    cases.push(vec![0.0; QK_K]);
    cases.push(block(&|i| if i % 2 == 0 { -0.0 } else { 0.0 }));
    cases.push(block(&|i| if i == 255 { -3.5 } else { 0.0 }));
    cases.push(block(&|i| if i == 0 { 7.0 } else { 0.25 }));
    for first in [0usize, 17, 100, 254] {
        cases.push(block(&|i| match i {
            i if i == first => -2.0,
            255 => 2.0,
            i => (i as f32 * 0.37).sin(),
        }));
        cases.push(block(&|i| match i {
            i if i == first => 2.0,
            255 => -2.0,
            i => (i as f32 * 0.37).sin(),
        }));
    }
    cases.push(block(&|i| if i == 9 { f32::MAX } else { -f32::MAX * 0.5 }));
    cases.push(block(&|i| if i == 3 { f32::MIN_POSITIVE } else { 1e-39 }));
    cases.push(block(&|i| if i == 40 { -1e-45 } else { 0.0 }));
    cases.push(block(&|i| {
        if i == 40 {
            -1e-45
        } else {
            (i % 3) as f32 * 1e-45
        }
    }));
    cases.push(block(&|i| if i == 7 { 3e-37 } else { (i as f32) * 1e-39 }));
    cases.push(block(&|i| match i % 5 {
        0 => f32::INFINITY,
        1 => 1.0,
        _ => -2.0,
    }));
    cases.push(block(&|i| if i == 200 { f32::NEG_INFINITY } else { 0.5 }));
    let payloads = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0xffc1_2345),
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0x7fbf_ffff),
    ];
    cases.push(block(&|i| {
        if i % 7 == 2 {
            payloads[i % payloads.len()]
        } else {
            (i as f32 - 128.0) * 0.1
        }
    }));
    cases.push(block(&|i| payloads[i % payloads.len()]));
    cases.push(block(&|i| {
        if i % 3 == 0 {
            payloads[i % payloads.len()]
        } else {
            0.0
        }
    }));
    cases.push(block(&|i| if i == 0 { f32::NAN } else { 1.0 }));
    // iscale = −1, so v = k + 0.5 rounds to the even neighbour.
    cases.push(block(&|i| {
        if i == 0 {
            -127.0
        } else {
            (i as f32 - 128.0) + 0.5
        }
    }));
    cases.push(block(&|i| {
        if i == 5 {
            127.0
        } else {
            126.5 - i as f32 * 0.5
        }
    }));
    let mut mixed = Vec::new();
    for c in &cases[7..] {
        mixed.extend_from_slice(c);
    }
    cases.push(mixed);
    cases
}

/// Asserts equal Q8_K bytes, naming the first differing block and byte.
fn same_q8_k(got: &[u8], want: &[u8], x: &[f32], what: &str) {
    let bb = std::mem::size_of::<BlockQ8K>();
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let (blk, at) = (i / bb, i % bb);
        panic!(
            "{what}: block {blk} byte {at} (d 0..4, qs 4..260, bsums 260..292): {} vs {}; \
             block values start {:?}",
            got[i],
            want[i],
            &x[blk * QK_K..][..8]
        );
    }
}

/// `from_float` of Q8_K (the activation quantizer of every k-quant) and the k-quant panels'
/// column preparation write, on every tier, the scalar quantizer's bytes.
#[test]
fn q8_k_from_float_is_byte_identical_on_every_tier() {
    let scalar = type_traits_scalar(GgmlType::Q8_K).unwrap();
    let mut rng = Rng(41);
    let cases = q8_k_cases(&mut rng);
    let mut checked = 0;
    for x in &cases {
        let bytes = x.len() / QK_K * std::mem::size_of::<BlockQ8K>();
        let mut want = vec![0u8; bytes];
        (scalar.from_float)(x, &mut want);
        for tier in Tier::ALL {
            let Some(t) = type_traits_for(tier, GgmlType::Q8_K) else {
                continue;
            };
            let mut got = vec![0x5a; bytes];
            (t.from_float)(x, &mut got);
            same_q8_k(&got, &want, x, tier.name());
            if let Some(k) = panel_kernels_for(tier, GgmlType::Q4_K) {
                let mut got = vec![0xa5; bytes];
                (k.prepare)(x, &mut got);
                same_q8_k(&got, &want, x, &format!("{tier} panel"));
            }
            checked += 1;
        }
    }
    eprintln!(
        "{checked} Q8_K conversions checked on {} cases",
        cases.len()
    );
}

/// Rows for the fused quantizers: Gaussian weights at several scales, and blocks that put
/// roundings on ties (small integers and halves), zeros, a lone spike and tiny values.
fn fused_cases(rng: &mut Rng) -> Vec<Vec<f32>> {
    let n = 4 * QK_K;
    let mut cases: Vec<Vec<f32>> = [1e-3, 0.02, 1.0, 300.0]
        .iter()
        .map(|&s| rng.vec(n, s))
        .collect();
    cases.push((0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.5).collect());
    cases.push(
        (0..n)
            .map(|i| if i % 97 == 0 { 5.0 } else { 0.0 })
            .collect(),
    );
    cases.push(vec![0.0; n]);
    cases.push((0..n).map(|i| (i as f32 - 512.0) * 1e-30).collect());
    cases
}

/// The fused quantizers (`quantize_fused`) write the same bytes on every tier: on x86-64 the
/// AVX2/AVX-512 tiers run them compiled for FMA, the scalar tier calls `fmaf`.
#[test]
fn fused_quantizers_are_byte_identical_on_every_tier() {
    use eddy_quant::dispatch::quantize_fused_for;
    use eddy_quant::{quantize_fused, row_bytes};
    let mut rng = Rng(43);
    let cases = fused_cases(&mut rng);
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
    ];
    let mut checked = 0;
    for ty in types {
        for (c, x) in cases.iter().enumerate() {
            let bytes = row_bytes(ty, x.len()).unwrap();
            let mut want = vec![0u8; bytes];
            quantize_fused_for(Tier::Scalar, ty, x, &mut want).unwrap();
            for tier in Tier::ALL.into_iter().filter(|t| t.is_supported()) {
                let mut got = vec![0x5a; bytes];
                quantize_fused_for(tier, ty, x, &mut got).unwrap();
                assert!(
                    got == want,
                    "{ty} {tier} case {c}: differs from the scalar tier"
                );
                checked += 1;
            }
            let mut got = vec![0xa5; bytes];
            quantize_fused(ty, x, &mut got).unwrap();
            assert!(
                got == want,
                "{ty} {} case {c}: quantize_fused",
                active_tier()
            );
        }
    }
    eprintln!("{checked} fused quantizations checked");
}
