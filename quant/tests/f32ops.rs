//! The f32 helpers of every supported tier against exact (f64) results, on random data of odd
//! lengths and on extreme values.
//!
//! Tolerances follow from the accuracy contract in `eddy_quant::f32ops` (u = 2^-24, the unit
//! roundoff of f32):
//! - [`DOT_REL_TOL`]: each product is rounded once (u), each lane adds at most 8 of them in f32
//!   (8u), the partial sums are exact enough in f64, the result is rounded once more (u):
//!   10u ≈ 6e-7 of `Σ|a_i·b_i|`, rounded up to 1e-6.
//! - [`AXPY_REL_TOL`]: a product and a sum, two roundings: 2u of `|a·x| + |y|`.
//! - [`EXP_REL_TOL`]: [`EXP_MAX_REL_ERR`] as measured by `exp_is_accurate_on_a_dense_sweep`.
//! - [`SOFTMAX_REL_TOL`]: exp (≤ 1.2e-7), the sum (8u + f64), the reciprocal and the product
//!   (2u): about 8e-7 at worst, so 1e-6 of each output (and of the returned sum); plus the rounding
//!   of the f32 argument `x_i − max` itself, which moves `exp` by `|x_i − max|·u` relative
//!   (inherent to f32 inputs: 1.2e-6 for a logit 20 below the maximum).
//! - [`SILU_REL_TOL`]: exp (1.2e-7), `1 + e` (u), the division and the product (2u): 3e-7, so
//!   5e-7 of `|silu(g)·u|`.
//! - [`TINY`]: results below f32's normal range may be flushed or rounded as subnormals.
//!   For `silu(g)` with g < −88.7, `exp(−g)` overflows and the result is 0 while the exact
//!   value is below 89·e^−88.7 < 3e-37 in magnitude ([`SILU_TINY`], times `|u|`).
//!   Scaling, max and the f16 conversions are exact.

mod common;

use common::Rng;
use eddy_quant::dispatch::Tier;
use eddy_quant::f32ops::{self, EXP_MAX_REL_ERR, F32Ops, ops_for};
use half::f16;

const DOT_REL_TOL: f64 = 1e-6;
const AXPY_REL_TOL: f64 = 2.0 / 16_777_216.0;
const EXP_REL_TOL: f64 = EXP_MAX_REL_ERR as f64;
const SOFTMAX_REL_TOL: f64 = 1e-6;
const SILU_REL_TOL: f64 = 5e-7;
const TINY: f64 = 1.2e-38;
const SILU_TINY: f64 = 3e-37;

const LENGTHS: [usize; 12] = [0, 1, 2, 7, 8, 15, 17, 33, 100, 257, 1000, 4099];

fn tiers() -> Vec<&'static F32Ops> {
    let t: Vec<_> = Tier::ALL.into_iter().filter_map(ops_for).collect();
    assert_eq!(t[0].tier, Tier::Scalar);
    t
}

/// Vectors of every kind: plain, large (products near 1e34, sums of 4099 of them still finite),
/// tiny (products subnormal), mixed magnitudes, zeros.
fn samples(r: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let mut mixed = r.vec(n, 1.0);
    for (i, v) in mixed.iter_mut().enumerate() {
        *v *= [1e-20, 1.0, 1e15][i % 3];
    }
    vec![
        r.vec(n, 1.0),
        r.vec(n, 1e17),
        r.vec(n, 1e-20),
        mixed,
        vec![0.0; n],
    ]
}

fn close(got: f32, want: f64, tol: f64) -> bool {
    (f64::from(got) - want).abs() <= tol
}

#[test]
fn dot_and_sum_squares_match_exact_sums() {
    let mut r = Rng(1);
    for ops in tiers() {
        for n in LENGTHS {
            for a in samples(&mut r, n) {
                let b = r.vec(n, 1.0);
                let want: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum();
                let mag: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
                    .sum();
                let got = (ops.dot)(&a, &b);
                assert!(
                    close(got, want, DOT_REL_TOL * mag + TINY),
                    "{} dot n={n}: got {got}, want {want}, Σ|ab| {mag}",
                    ops.tier
                );
                let want2: f64 = a.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
                let got2 = (ops.sum_squares)(&a);
                assert!(
                    close(got2, want2, DOT_REL_TOL * want2 + TINY),
                    "{} sum_squares n={n}: got {got2}, want {want2}",
                    ops.tier
                );
            }
        }
    }
}

#[test]
fn axpy_and_scale_are_elementwise() {
    let mut r = Rng(2);
    for ops in tiers() {
        for n in LENGTHS {
            for x in samples(&mut r, n) {
                let y0 = r.vec(n, 3.0);
                for a in [0.0f32, 1.0, -0.37, 1e-3, 2.5e10] {
                    let mut y = y0.clone();
                    (ops.axpy)(a, &x, &mut y);
                    for i in 0..n {
                        let ax = f64::from(a) * f64::from(x[i]);
                        let want = ax + f64::from(y0[i]);
                        let tol = AXPY_REL_TOL * (ax.abs() + f64::from(y0[i]).abs()) + TINY;
                        assert!(close(y[i], want, tol), "{} axpy n={n} i={i}", ops.tier);
                    }
                    let mut s = x.clone();
                    (ops.scale)(&mut s, a);
                    for i in 0..n {
                        assert_eq!(s[i].to_bits(), (x[i] * a).to_bits(), "{} scale", ops.tier);
                    }
                }
            }
        }
    }
}

#[test]
fn max_ignores_nans_and_is_exact() {
    let mut r = Rng(3);
    for ops in tiers() {
        assert_eq!((ops.max)(&[]), f32::NEG_INFINITY);
        for n in LENGTHS.into_iter().filter(|&n| n > 0) {
            for mut x in samples(&mut r, n) {
                if n > 3 {
                    x[n / 2] = f32::NAN;
                    x[n - 1] = f32::NAN;
                }
                let want = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                assert_eq!((ops.max)(&x), want, "{} max n={n}", ops.tier);
                x[n / 3] = f32::INFINITY;
                assert_eq!((ops.max)(&x), f32::INFINITY, "{} max n={n}", ops.tier);
            }
        }
        assert!((ops.max)(&[f32::NAN; 9]) == f32::NEG_INFINITY);
    }
}

/// The measured error of `exp` on every tier, over every 2^-12 step of [-87, 88]; prints it so
/// that the documented bound can be checked against the measurement.
#[test]
fn exp_is_accurate_on_a_dense_sweep() {
    let xs: Vec<f32> = (-87 * 4096..=88 * 4096)
        .map(|i| i as f32 / 4096.0)
        .collect();
    for ops in tiers() {
        let mut e = xs.clone();
        (ops.exp_in_place)(&mut e);
        let mut worst = 0.0f64;
        let mut at = 0.0f32;
        for (&x, &got) in xs.iter().zip(&e) {
            let want = f64::from(x).exp();
            let rel = (f64::from(got) - want).abs() / want;
            if rel > worst {
                worst = rel;
                at = x;
            }
        }
        eprintln!(
            "exp on {}: max relative error {worst:.3e} at x = {at}",
            ops.tier
        );
        assert!(worst <= EXP_REL_TOL, "{}: {worst:e} at {at}", ops.tier);
        // The scalar function is the spec; the tiers agree with it within the same bound.
        for (&x, &got) in xs.iter().zip(&e).step_by(97) {
            let s = f32ops::exp(x);
            assert!(
                ((got - s) / s).abs() <= 2.0 * EXP_MAX_REL_ERR,
                "{} at {x}",
                ops.tier
            );
        }
    }
}

#[test]
fn exp_edges() {
    for ops in tiers() {
        let mut x = [
            0.0,
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            89.0,
            88.7,
            -88.0,
            -103.0,
            -200.0,
        ];
        (ops.exp_in_place)(&mut x);
        assert_eq!(x[0], 1.0, "{}", ops.tier);
        assert!(x[1].is_nan(), "{}", ops.tier);
        assert_eq!(x[2], 0.0, "{}", ops.tier);
        assert_eq!(x[3], f32::INFINITY, "{}", ops.tier);
        assert_eq!(x[4], f32::INFINITY, "{}", ops.tier);
        assert!(
            close(
                x[5],
                f64::from(88.7f32).exp(),
                EXP_REL_TOL * f64::from(88.7f32).exp()
            ),
            "{}",
            ops.tier
        );
        assert!(close(x[6], (-88.0f64).exp(), TINY), "{} {}", ops.tier, x[6]);
        assert!(x[7] >= 0.0 && x[7] < 1e-44, "{}", ops.tier);
        assert_eq!(x[8], 0.0, "{}", ops.tier);
    }
}

fn exact_softmax(x: &[f32]) -> (Vec<f64>, f64) {
    let m = x
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
    let e: Vec<f64> = x.iter().map(|&v| (f64::from(v) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    (e.iter().map(|v| v / s).collect(), s)
}

/// The relative change of `exp(x − m)` caused by rounding `x − m` to f32 (see the module docs).
fn arg_rounding(x: f32, m: f32) -> f64 {
    if x == f32::NEG_INFINITY {
        0.0
    } else {
        f64::from(x - m).abs() / 16_777_216.0
    }
}

#[test]
fn softmax_matches_the_exact_one() {
    let mut r = Rng(4);
    for ops in tiers() {
        let mut empty: [f32; 0] = [];
        assert_eq!((ops.softmax_in_place)(&mut empty), 0.0);
        for n in LENGTHS.into_iter().filter(|&n| n > 0) {
            let mut masked = r.vec(n, 3.0);
            for v in masked.iter_mut().skip(1).step_by(3) {
                *v = f32::NEG_INFINITY;
            }
            let mut constant = vec![7.5f32; n];
            constant[0] = 7.5;
            for x in [
                r.vec(n, 1.0),
                r.vec(n, 30.0),
                r.vec(n, 1e4),
                masked,
                constant,
            ] {
                let (want, want_sum) = exact_softmax(&x);
                let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let mut got = x.clone();
                let sum = (ops.softmax_in_place)(&mut got);
                assert!(
                    close(sum, want_sum, SOFTMAX_REL_TOL * want_sum),
                    "{} softmax sum n={n}: {sum} vs {want_sum}",
                    ops.tier
                );
                for i in 0..n {
                    assert!(
                        close(
                            got[i],
                            want[i],
                            (SOFTMAX_REL_TOL + arg_rounding(x[i], m)) * want[i] + TINY
                        ),
                        "{} softmax n={n} i={i}: got {}, want {}",
                        ops.tier,
                        got[i],
                        want[i]
                    );
                    if x[i] == f32::NEG_INFINITY {
                        assert_eq!(got[i], 0.0);
                    }
                }
            }
        }
        let mut nan = [1.0, f32::NAN, 2.0];
        (ops.softmax_in_place)(&mut nan);
        assert!(nan.iter().all(|v| v.is_nan()), "{}", ops.tier);
    }
}

#[test]
fn silu_mul_matches_the_exact_one() {
    let mut r = Rng(5);
    for ops in tiers() {
        for n in LENGTHS {
            for scale in [1.0f32, 8.0, 100.0, 1e4] {
                let g = r.vec(n, scale);
                let u = r.vec(n, 2.0);
                let mut got = g.clone();
                (ops.silu_mul)(&mut got, &u);
                for i in 0..n {
                    let gi = f64::from(g[i]);
                    let want = gi / (1.0 + (-gi).exp()) * f64::from(u[i]);
                    assert!(
                        close(
                            got[i],
                            want,
                            SILU_REL_TOL * want.abs() + SILU_TINY * f64::from(u[i]).abs()
                        ),
                        "{} silu_mul g={} u={}: got {}, want {want}",
                        ops.tier,
                        g[i],
                        u[i],
                        got[i]
                    );
                }
            }
        }
        let mut g = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, -200.0, 200.0];
        (ops.silu_mul)(&mut g, &[1.0; 6]);
        assert_eq!(&g[..2], &[0.0, 0.0], "{}", ops.tier);
        assert!(g[2].is_nan() || g[2] == f32::INFINITY, "{}", ops.tier);
        assert_eq!(g[4], 0.0, "{}", ops.tier);
        assert_eq!(g[5], 200.0, "{}", ops.tier);
    }
}

#[test]
fn f16_conversions_match_half_exactly() {
    let mut r = Rng(6);
    for ops in tiers() {
        // Every half bit pattern, widened.
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut wide = vec![0.0f32; all.len()];
        (ops.f16_to_f32)(&all, &mut wide);
        for (&h, &f) in all.iter().zip(&wide) {
            let want = f16::from_bits(h).to_f32();
            assert!(
                f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()),
                "{} f16 {h:#06x}",
                ops.tier
            );
        }
        for n in LENGTHS {
            let mut x = r.vec(n, 1e4);
            for (i, v) in x.iter_mut().enumerate() {
                match i % 11 {
                    1 => *v = 65504.0,
                    2 => *v = 65520.0,
                    3 => *v = -1e-7,
                    4 => *v = 3e-8,
                    5 => *v = f32::NAN,
                    6 => *v = f32::NEG_INFINITY,
                    7 => *v *= 1e-6,
                    _ => {}
                }
            }
            let mut h = vec![0u16; n];
            (ops.f32_to_f16)(&x, &mut h);
            for i in 0..n {
                let want = f16::from_f32(x[i]);
                let got = f16::from_bits(h[i]);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{} f32_to_f16 {}: got {got}, want {want}",
                    ops.tier,
                    x[i]
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "differ in length")]
fn mismatched_lengths_panic() {
    f32ops::dot(&[1.0; 3], &[1.0; 4]);
}

#[test]
fn free_functions_use_the_active_tier() {
    let a = [1.0f32, 2.0, 3.0];
    assert_eq!(f32ops::dot(&a, &a), 14.0);
    assert_eq!(f32ops::sum_squares(&a), 14.0);
    assert_eq!(f32ops::max(&a), 3.0);
    let active = ops_for(eddy_quant::dispatch::active_tier()).expect("active tier is supported");
    assert!(core::ptr::eq(f32ops::ops(), active));
}

/// The fused attention kernels (where a tier has them) against the references: scores within
/// the dot bound of `Σ|q·k|`, value sums within a few roundings per row of `Σ|p·v|`, for the
/// head sizes with fused paths (64, 128, 256) and one without (48), 1 to 6 heads, 1 to 40 rows,
/// strides wider than the rows.
#[test]
fn fused_attention_matches_the_reference() {
    let mut rng = Rng(77);
    let mut checked = 0;
    for ops in tiers() {
        let (Some(scores), Some(values)) = (ops.attn_scores_f16, ops.attn_values_f16) else {
            continue;
        };
        for hd in [48usize, 64, 128, 256] {
            for g in 1..=6 {
                for rows in [1usize, 2, 7, 40] {
                    let q = rng.vec(g * hd, 1.0);
                    let k: Vec<u16> = (0..rows * hd)
                        .map(|_| f16::from_f32(rng.normal() * 2.0).to_bits())
                        .collect();
                    let stride = rows + 3;
                    let mut want = vec![0f32; g * stride];
                    let mut got = vec![0f32; g * stride];
                    f32ops::attn_scores_f16_ref(&q, &k, hd, &mut want, stride);
                    scores(&q, &k, hd, &mut got, stride);
                    for j in 0..g {
                        for i in 0..rows {
                            let mag: f64 = (0..hd)
                                .map(|d| {
                                    (q[j * hd + d] as f64 * f16::from_bits(k[i * hd + d]).to_f64())
                                        .abs()
                                })
                                .sum();
                            let (a, b) = (got[j * stride + i] as f64, want[j * stride + i] as f64);
                            assert!(
                                (a - b).abs() <= 2.0 * hd as f64 * 6e-8 * mag + TINY,
                                "{:?} scores hd {hd} g {g} rows {rows}: {a} vs {b}",
                                ops.tier
                            );
                        }
                    }
                    let p: Vec<f32> = (0..g * stride).map(|_| rng.uniform()).collect();
                    let init = rng.vec(g * hd, 0.5);
                    let (mut want, mut got) = (init.clone(), init.clone());
                    f32ops::attn_values_f16_ref(&p, stride, &k, hd, &mut want);
                    values(&p, stride, &k, hd, &mut got);
                    for j in 0..g {
                        for d in 0..hd {
                            let mag: f64 = init[j * hd + d].abs() as f64
                                + (0..rows)
                                    .map(|i| {
                                        (p[j * stride + i] as f64
                                            * f16::from_bits(k[i * hd + d]).to_f64())
                                        .abs()
                                    })
                                    .sum::<f64>();
                            let (a, b) = (got[j * hd + d] as f64, want[j * hd + d] as f64);
                            assert!(
                                (a - b).abs() <= 2.0 * rows as f64 * 6e-8 * mag + TINY,
                                "{:?} values hd {hd} g {g} rows {rows}: {a} vs {b}",
                                ops.tier
                            );
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} fused attention cases checked");
}

/// Random Q8_0 (`block == 34`) or Q4_0 (18) value rows: scales of every kind (ordinary,
/// f16's largest and subnormal ones, signed zeros) and every byte value, extremes included.
fn quant_rows(rng: &mut Rng, block: usize, hd: usize, rows: usize) -> Vec<u8> {
    let special = [0x7bffu16, 0xfbff, 0x0001, 0x8001, 0x0000, 0x8000, 0x3c00];
    let mut v = Vec::with_capacity(rows * hd / 32 * block);
    for b in 0..rows * hd / 32 {
        let d = if b % 5 == 4 {
            special[(rng.next() % special.len() as u64) as usize].to_le_bytes()
        } else {
            rng.f16(0.05)
        };
        v.extend_from_slice(&d);
        for k in 0..block - 2 {
            // A few blocks hold only the extreme codes.
            v.push(match b % 7 {
                6 => [0x80, 0x7f, 0x00, 0xff][k % 4],
                _ => rng.byte(),
            });
        }
    }
    v
}

/// The value of element `d` of row `i`, exactly.
fn quant_value(v: &[u8], block: usize, hd: usize, i: usize, d: usize) -> f64 {
    let blk = &v[(i * hd / 32 + d / 32) * block..][..block];
    let scale = f16::from_le_bytes([blk[0], blk[1]]).to_f64();
    let k = d % 32;
    let q = if block == 34 {
        f64::from(blk[2 + k] as i8)
    } else {
        let b = blk[2 + k % 16];
        f64::from(if k < 16 { b & 15 } else { b >> 4 }) - 8.0
    };
    scale * q
}

/// The quantized value sums of every tier are bit-identical to the reference (same order per
/// output value, every step exact or one rounding), and the reference is within one rounding
/// per row of the exact sum, for head sizes 32 to 256, 1 to 9 heads (more than any tier's
/// register tile), 1 to 40 rows, strides wider than the rows, weights with zeros.
#[test]
fn quantized_values_match_the_reference_bit_for_bit() {
    type Kernel = fn(&[f32], usize, &[u8], usize, &mut [f32]);
    type Format = (&'static str, usize, Kernel, fn(&F32Ops) -> Kernel);
    let mut rng = Rng(91);
    let mut checked = 0;
    let formats: [Format; 2] = [
        ("q8_0", 34, f32ops::attn_values_q8_0_ref, |o| {
            o.attn_values_q8_0
        }),
        ("q4_0", 18, f32ops::attn_values_q4_0_ref, |o| {
            o.attn_values_q4_0
        }),
    ];
    for (name, block, reference, pick) in formats {
        for hd in [32usize, 64, 96, 128, 256] {
            for g in 1..=9 {
                for rows in [1usize, 2, 5, 17, 40] {
                    let v = quant_rows(&mut rng, block, hd, rows);
                    let stride = rows + 3;
                    let p: Vec<f32> = (0..g * stride)
                        .map(|i| if i % 11 == 3 { 0.0 } else { rng.uniform() })
                        .collect();
                    let init = rng.vec(g * hd, 0.5);
                    let mut want = init.clone();
                    reference(&p, stride, &v, hd, &mut want);
                    for j in 0..g {
                        for d in 0..hd {
                            let mut exact = f64::from(init[j * hd + d]);
                            let mut mag = exact.abs();
                            for i in 0..rows {
                                let t =
                                    f64::from(p[j * stride + i]) * quant_value(&v, block, hd, i, d);
                                exact += t;
                                mag += t.abs();
                            }
                            let got = f64::from(want[j * hd + d]);
                            assert!(
                                (got - exact).abs() <= rows as f64 * 6e-8 * mag + TINY,
                                "{name} reference hd {hd} g {g} rows {rows}: {got} vs {exact}"
                            );
                        }
                    }
                    for ops in tiers() {
                        let mut got = init.clone();
                        pick(ops)(&p, stride, &v, hd, &mut got);
                        let same = got
                            .iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{:?} {name} hd {hd} g {g} rows {rows} differs",
                            ops.tier
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} quantized value cases checked");
}

#[test]
#[should_panic(expected = "quantized attention rows")]
fn quantized_values_refuse_partial_blocks() {
    let mut out = [0f32; 48];
    f32ops::attn_values_q8_0_ref(&[1.0], 1, &[0; 34 * 2], 48, &mut out);
}

/// The quantized score kernels of every tier against the exact dot products of f32 queries with
/// the keys' exact values: within one rounding per term of `Σ|q·k|` (the reference adds in
/// order; the tiers add in lanes and then in a tree, which is tighter). A key's
/// score has the same bits whichever run it is scored in (from any first row, any number of
/// rows): batched and token-by-token attention cut the span into the same runs only by
/// accident, and must not depend on it.
#[test]
fn quantized_scores_match_exact_sums_and_do_not_depend_on_the_run() {
    type Kernel = fn(&[f32], &[u8], usize, &mut [f32], usize);
    type Format = (&'static str, usize, Kernel, fn(&F32Ops) -> Kernel);
    let mut rng = Rng(92);
    let mut checked = 0;
    let formats: [Format; 2] = [
        ("q8_0", 34, f32ops::attn_scores_q8_0_ref, |o| {
            o.attn_scores_q8_0
        }),
        ("q4_0", 18, f32ops::attn_scores_q4_0_ref, |o| {
            o.attn_scores_q4_0
        }),
    ];
    for (name, block, reference, pick) in formats {
        for hd in [32usize, 64, 96, 128, 256, 288] {
            for g in [1usize, 2, 3, 7, 9] {
                for rows in [1usize, 3, 8, 16, 17, 40] {
                    let k = quant_rows(&mut rng, block, hd, rows);
                    let q = rng.vec(g * hd, 1.0);
                    let stride = rows + 5;
                    let row_bytes = hd / 32 * block;
                    let mut kernels: Vec<(String, Kernel)> = vec![("reference".into(), reference)];
                    kernels.extend(
                        tiers()
                            .into_iter()
                            .map(|o| (format!("{:?}", o.tier), pick(o))),
                    );
                    for (tier, f) in kernels {
                        let mut got = vec![f32::NAN; g * stride];
                        f(&q, &k, hd, &mut got, stride);
                        for j in 0..g {
                            for i in 0..rows {
                                let (mut exact, mut mag) = (0f64, 0f64);
                                for d in 0..hd {
                                    let t =
                                        f64::from(q[j * hd + d]) * quant_value(&k, block, hd, i, d);
                                    exact += t;
                                    mag += t.abs();
                                }
                                let a = f64::from(got[j * stride + i]);
                                assert!(
                                    (a - exact).abs() <= 2.0 * hd as f64 * 6e-8 * mag + TINY,
                                    "{tier} {name} scores hd {hd} g {g} rows {rows}: {a} vs {exact}"
                                );
                            }
                            // Nothing written past the rows.
                            assert!(
                                got[j * stride + rows..][..stride - rows]
                                    .iter()
                                    .all(|v| v.is_nan())
                            );
                        }
                        // The same keys scored from another first row, in runs of other lengths.
                        for from in [1usize, 5, 9] {
                            if from >= rows {
                                continue;
                            }
                            let mut part = vec![0f32; g * stride];
                            f(&q, &k[from * row_bytes..], hd, &mut part, stride);
                            for j in 0..g {
                                for i in from..rows {
                                    assert_eq!(
                                        part[j * stride + i - from].to_bits(),
                                        got[j * stride + i].to_bits(),
                                        "{tier} {name} hd {hd}: key {i} scored from row {from}"
                                    );
                                }
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} quantized score cases checked");
}

/// `attn_table_scores` of every tier against the reference, bit for bit (each tier compiles the
/// reference's loops; nothing may fuse), for 1-9 heads, odd widths and lengths, large and tiny
/// values; against an exact f64 sum within the rounding of `width` products and sums; and cut
/// into runs of any length at any offset, the same bits (what attention relies on when a batch
/// splits a span differently from token-by-token decoding).
#[test]
fn attn_table_scores_match_the_reference_bit_for_bit() {
    let mut r = Rng(0x7ab1e);
    for heads in 1..=9 {
        for width in [2usize, 6, 32, 64, 128] {
            for len in [0usize, 1, 5, 16, 17, 31, 32, 47] {
                for mag in [1.0f32, 1e15, 1e-18] {
                    let stride = len + 3;
                    let coef = r.vec(heads * width, mag);
                    let table = r.vec(width * stride, 1.0);
                    let init = r.vec(heads * stride, mag);
                    let mut want = init.clone();
                    f32ops::attn_table_scores_ref(&coef, width, &table, &mut want, stride, len);
                    for h in 0..heads {
                        for c in 0..len {
                            let y = f64::from(init[h * stride + c]);
                            let (mut exact, mut bound) = (y, y.abs());
                            for k in 0..width {
                                let p = f64::from(coef[h * width + k])
                                    * f64::from(table[k * stride + c]);
                                exact += p;
                                bound += p.abs();
                            }
                            let tol = 2.0 * width as f64 * bound / 16_777_216.0 + TINY;
                            let got = want[h * stride + c];
                            assert!(
                                close(got, exact, tol),
                                "heads {heads} width {width} len {len}: {got} vs {exact}"
                            );
                        }
                        // Columns past `len` are untouched.
                        assert_eq!(
                            want[h * stride + len..][..stride - len],
                            init[h * stride + len..][..stride - len]
                        );
                    }
                    for ops in tiers() {
                        let same = |got: &[f32]| {
                            got.iter()
                                .zip(&want)
                                .all(|(a, b)| a.to_bits() == b.to_bits())
                        };
                        let mut got = init.clone();
                        (ops.attn_table_scores)(&coef, width, &table, &mut got, stride, len);
                        assert!(
                            same(&got),
                            "{:?}: heads {heads} width {width} len {len}",
                            ops.tier
                        );
                        // The same columns in two runs, split at every point.
                        for cut in 0..=len {
                            let mut split = init.clone();
                            (ops.attn_table_scores)(&coef, width, &table, &mut split, stride, cut);
                            (ops.attn_table_scores)(
                                &coef,
                                width,
                                &table[cut..],
                                &mut split[cut..],
                                stride,
                                len - cut,
                            );
                            assert!(
                                same(&split),
                                "{:?}: heads {heads} width {width} len {len} cut {cut}",
                                ops.tier
                            );
                        }
                    }
                }
            }
        }
    }
}
