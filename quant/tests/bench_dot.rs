//! Throughput of the dispatched dot products, per tier (no criterion; a quick number).
//!
//! `cargo test --release -p eddy-quant --test bench_dot -- --ignored --nocapture`
//!
//! Multiplies a 1536 × 576 weight matrix (SmolLM2's FFN up shape; 576 × 1536, FFN down, for the
//! k-quants, whose 256-weight blocks do not divide 576) by one activation vector 20 times per
//! round, 50 rounds per tier, and prints the weight bytes streamed per second in the fastest round:
//! on a shared machine short rounds are the likeliest to run undisturbed.
//! `EDDY_BENCH_TYPES=Q4_0,Q5_K` limits the formats. The second ignored test,
//! `bench_f32ops_per_tier`, times every `f32ops` helper per tier at a few lengths.

use std::hint::black_box;
use std::time::Instant;

use eddy_quant::dispatch::{Tier, type_traits_for};
use eddy_quant::{GgmlType, from_float, quantize, row_bytes};

const REPEATS: usize = 20;
const ROUNDS: usize = 50;

fn bench(ty: GgmlType, rows: usize, cols: usize) {
    let weights: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1)
        .collect();
    let act: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let rb = row_bytes(ty, cols).expect("whole blocks");
    let mut w = vec![0u8; rb * rows];
    quantize(ty, &weights, &mut w).expect("quantize");
    for tier in Tier::ALL {
        let Some(t) = type_traits_for(tier, ty) else {
            eprintln!("{ty} {tier}: not supported on this CPU");
            continue;
        };
        let yt = t.vec_dot_type;
        let mut y = vec![0u8; row_bytes(yt, cols).expect("whole blocks")];
        from_float(yt, &act, &mut y).expect("from_float");
        // The machine is shared: the best of several rounds is the least disturbed one.
        let mut secs = f64::INFINITY;
        for _ in 0..ROUNDS {
            let mut sink = 0.0f32;
            let start = Instant::now();
            for _ in 0..REPEATS {
                for row in w.chunks_exact(rb) {
                    sink += (t.vec_dot)(cols, black_box(row), black_box(&y));
                }
            }
            secs = secs.min(start.elapsed().as_secs_f64());
            black_box(sink);
        }
        let gbs = (w.len() * REPEATS) as f64 / secs / 1e9;
        let us = secs / REPEATS as f64 * 1e6;
        eprintln!(
            "{ty} {tier:>6}: {us:8.1} µs per {rows}×{cols} matvec, {gbs:6.2} GB/s of weights"
        );
    }
}

#[test]
#[ignore = "benchmark; run with --release -- --ignored --nocapture"]
fn bench_dot_per_tier() {
    // `EDDY_BENCH_TYPES=Q4_0,Q5_K` restricts the run to those formats.
    let only = std::env::var("EDDY_BENCH_TYPES").ok();
    let wanted = |ty: GgmlType| {
        only.as_deref().is_none_or(|l| {
            l.split(',')
                .any(|n| n.trim().eq_ignore_ascii_case(ty.name()))
        })
    };
    for ty in eddy_quant::supported_types() {
        if !wanted(ty) {
            continue;
        }
        if ty.block_size() == 256 {
            bench(ty, 576, 1536);
        } else {
            bench(ty, 1536, 576);
        }
    }
}

/// Times one f32ops function on every tier: `f` runs once per call over vectors of `n`; with
/// `restore`, `x` is copied back from its start values after each call (and that copy is timed
/// too), for functions whose repeated application would drift into infinities or subnormals.
fn bench_f32(
    name: &str,
    n: usize,
    restore: bool,
    mut f: impl FnMut(&eddy_quant::f32ops::F32Ops, &mut [f32], &[f32]),
) {
    let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
    let calls = (2_000_000 / n).max(1);
    let mut base = 0.0;
    for tier in Tier::ALL {
        let Some(ops) = eddy_quant::f32ops::ops_for(tier) else {
            continue;
        };
        let mut secs = f64::INFINITY;
        for _ in 0..ROUNDS {
            let mut x = a.clone();
            let start = Instant::now();
            for _ in 0..calls {
                f(ops, black_box(&mut x), black_box(&b));
                if restore {
                    x.copy_from_slice(&a);
                }
            }
            secs = secs.min(start.elapsed().as_secs_f64());
        }
        let ns = secs / calls as f64 * 1e9;
        if tier == Tier::Scalar {
            base = ns;
        }
        eprintln!(
            "{name:>12} n={n:5} {tier:>6}: {ns:9.1} ns per call{}, {:5.2}× scalar",
            if restore { " (with a copy)" } else { "" },
            base / ns
        );
    }
}

#[test]
#[ignore = "benchmark; run with --release -- --ignored --nocapture"]
fn bench_f32ops_per_tier() {
    for n in [64, 576, 4096] {
        bench_f32("dot", n, false, |o, x, b| {
            black_box((o.dot)(x, b));
        });
        bench_f32("sum_squares", n, false, |o, x, _| {
            black_box((o.sum_squares)(x));
        });
        bench_f32("axpy", n, false, |o, x, b| (o.axpy)(0.5, b, x));
        bench_f32("scale", n, false, |o, x, _| (o.scale)(x, 1.0));
        bench_f32("max", n, false, |o, x, _| {
            black_box((o.max)(x));
        });
        bench_f32("exp", n, true, |o, x, _| (o.exp_in_place)(x));
        bench_f32("softmax", n, false, |o, x, _| {
            black_box((o.softmax_in_place)(x));
        });
        bench_f32("silu_mul", n, true, |o, x, b| (o.silu_mul)(x, b));
        let h: Vec<u16> = (0..n).map(|i| (i * 37 % 0x7bff) as u16).collect();
        bench_f32("f16_to_f32", n, false, |o, x, _| (o.f16_to_f32)(&h, x));
        let mut out = vec![0u16; n];
        bench_f32("f32_to_f16", n, false, |o, x, _| {
            (o.f32_to_f16)(x, &mut out)
        });
    }
}
