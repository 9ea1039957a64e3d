//! Criterion benchmarks of the matrix drivers, throughput in bytes of weights (GB/s).
//!
//! `nice cargo bench -p eddy-quant --bench matvec` (add a filter such as `-- matvec/Q4_K` to
//! run a part).
//!
//! - `matvec/<format>/<tier>`: one decode-shaped product `y = W·x` (activation conversion
//!   included) over a matrix of about 64 MiB of weights, 4096 weights per row: twice this
//!   machine's L3, so the weights stream from memory as in a decoding step of a model larger
//!   than the caches. Every format on every tier whose kernel differs from the tier below.
//! - `head/Q8_0/<tier>`: SmolLM2-135M's tied output head, 49152 × 576 Q8_0 (28 MiB).
//! - `matmat/<format>/<tier>/<n>` against `matvec_x_n/<format>/<tier>/<n>`: `n` activation
//!   columns (already quantized) through one `matmat_rows` call, or through `n` `matvec_rows`
//!   calls, over the same 64 MiB matrix. Throughput counts the weights once per column, so both
//!   report the weight bandwidth a per-column product would need ("effective GB/s"), and their
//!   ratio is the speed-up of batching.
//!
//! - `matmat_small/...`: the same comparison over SmolLM2-135M's FFN up projection (1536 × 576
//!   Q4_1, 0.5 MiB), which stays in L2, for `n = 32`.
//! - `decode/<format>/<tier>`: the runtime's one-token path where the panel kernels have a
//!   matrix-vector kernel on the prepared column (Q4_1, Q5_1, Q4_0, Q5_0, Q8_0 on AVX-512; Q4_K,
//!   Q5_K, Q6_K on AVX-512 and AVX2), over the 64 MiB matrix: compare with
//!   `matvec/<format>/<tier>`.
//! - `panel/<format>/<tier>/<n>`: the packed-panel kernels of every format that has them
//!   (every panel packed, then multiplied with all `n` prepared columns), the runtime's prefill
//!   path from 8 tokens on: SmolLM2's FFN up projection for the 32-weight formats (compare
//!   Q4_1 with `matmat_small`, same throughput convention), Gemma 3's 640 × 1024 attention
//!   output for the k-quants.
//! - `from_float/Q8_K/<tier>`: the k-quants' activation quantizer over 32 columns of 4864
//!   values (Qwen2.5-0.5B's FFN width), throughput in bytes of f32 input.
//! - `attention/<tier>/<span>`: one KV group of SmolLM2 (3 query heads of 64, f16 keys and
//!   values, `span` cached rows): the fused kernels against widening each row and using `dot`
//!   and `axpy` per head, as tiers without fused kernels do.
//!
//! `EDDY_BENCH_MIB=<n>` changes the size of the 64 MiB matrices. Every benchmark is kept short (10 samples, about a second each) so that the whole run takes a
//! few minutes on two cores.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eddy_quant::dispatch::{Tier, type_traits_for};
use eddy_quant::{GgmlType, TypeTraits, WeightMatrix, quantize, row_bytes, supported_types};

/// Weights per row of the decode-shaped matrices.
const COLS: usize = 4096;
/// Approximate bytes of weights per decode-shaped matrix, in MiB (`EDDY_BENCH_MIB` overrides).
const MATRIX_MIB: usize = 64;

fn matrix_bytes() -> usize {
    std::env::var("EDDY_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MATRIX_MIB)
        << 20
}
/// Distinct rows quantized; the matrix repeats them (the kernels' speed does not depend on the
/// values, and quantizing 64 MiB with the k-quant searches would take longer than the benches).
const DISTINCT_ROWS: usize = 64;

/// Deterministic, roughly normal values (sum of four uniforms, centred).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| (uniform() + uniform() + uniform() + uniform() - 2.0) * 1.7)
        .collect()
}

/// `rows × cols` weights of `ty` (the first [`DISTINCT_ROWS`] quantized, then repeated).
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let rb = row_bytes(ty, cols).expect("whole blocks");
    let distinct = DISTINCT_ROWS.min(rows);
    let mut first = vec![0u8; distinct * rb];
    quantize(ty, &values(distinct * cols, ty as u64), &mut first).expect("quantize");
    let mut w = Vec::with_capacity(rows * rb);
    while w.len() < rows * rb {
        let take = (rows * rb - w.len()).min(first.len());
        w.extend_from_slice(&first[..take]);
    }
    w
}

/// The tiers worth measuring for `ty`: supported ones whose `vec_dot` (and, with `multi`,
/// whose `vec_dot_multi`) differs from the tier below; the others run the same code.
fn tiers(ty: GgmlType, multi: bool) -> Vec<(Tier, &'static TypeTraits)> {
    let mut out: Vec<(Tier, &'static TypeTraits)> = Vec::new();
    for tier in Tier::ALL {
        let Some(t) = type_traits_for(tier, ty) else {
            continue;
        };
        let same = out.last().is_some_and(|(_, p)| {
            std::ptr::fn_addr_eq(p.vec_dot, t.vec_dot)
                && (!multi
                    || match (p.vec_dot_multi, t.vec_dot_multi) {
                        (None, None) => true,
                        (Some(a), Some(b)) => std::ptr::fn_addr_eq(a, b),
                        _ => false,
                    })
        });
        if !same {
            out.push((tier, t));
        }
    }
    out
}

/// Weight formats (activation-only formats Q8_1 and Q8_K are left out).
fn weight_formats() -> impl Iterator<Item = GgmlType> {
    supported_types().filter(|ty| !matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K))
}

fn bench_matvec(c: &mut Criterion) {
    let mut group = c.benchmark_group("matvec");
    for ty in weight_formats() {
        let rb = row_bytes(ty, COLS).expect("whole blocks");
        let rows = matrix_bytes() / rb;
        let w = weights(ty, rows, COLS);
        let x = values(COLS, 7);
        let mut y = vec![0f32; rows];
        group.throughput(Throughput::Bytes(w.len() as u64));
        for (tier, t) in tiers(ty, false) {
            let m = WeightMatrix::with_traits(t, &w, rows, COLS).expect("matrix");
            let mut scratch = vec![0u8; m.scratch_bytes(1).expect("scratch")];
            group.bench_function(BenchmarkId::new(ty.to_string(), tier), |b| {
                b.iter(|| {
                    m.matvec(black_box(&x), &mut scratch, &mut y)
                        .expect("matvec");
                    black_box(&y);
                })
            });
        }
    }
    group.finish();
}

fn bench_head(c: &mut Criterion) {
    let mut group = c.benchmark_group("head");
    let (ty, rows, cols) = (GgmlType::Q8_0, 49152, 576);
    let w = weights(ty, rows, cols);
    let x = values(cols, 11);
    let mut y = vec![0f32; rows];
    group.throughput(Throughput::Bytes(w.len() as u64));
    for (tier, t) in tiers(ty, false) {
        let m = WeightMatrix::with_traits(t, &w, rows, cols).expect("matrix");
        let mut scratch = vec![0u8; m.scratch_bytes(1).expect("scratch")];
        group.bench_function(BenchmarkId::new(ty.to_string(), tier), |b| {
            b.iter(|| {
                m.matvec(black_box(&x), &mut scratch, &mut y)
                    .expect("matvec");
                black_box(&y);
            })
        });
    }
    group.finish();
}

/// `n` columns of `m` through one `matmat_rows` call (`matmat`) and through `n` `matvec_rows`
/// calls (`matvec_x_n`), the weights counted once per column.
fn matmat_vs_matvec(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    m: &WeightMatrix<'_>,
    n: usize,
    seed: u64,
    id: &str,
) {
    let rows = m.rows();
    let x = values(n * m.cols(), seed);
    let mut xq = vec![0u8; m.scratch_bytes(n).expect("scratch")];
    m.quantize_activations(n, &x, &mut xq).expect("quantize");
    let ab = m.activation_row_bytes();
    let mut y = vec![0f32; n * rows];
    group.throughput(Throughput::Bytes(
        (n * rows * row_bytes(m.ty(), m.cols()).expect("row")) as u64,
    ));
    group.bench_function(BenchmarkId::new("matmat", id), |b| {
        b.iter(|| {
            m.matmat_rows(n, black_box(&xq), 0..rows, &mut y, rows)
                .expect("matmat");
            black_box(&y);
        })
    });
    group.bench_function(BenchmarkId::new("matvec_x_n", id), |b| {
        b.iter(|| {
            for (j, yj) in y.chunks_exact_mut(rows).enumerate() {
                m.matvec_rows(black_box(&xq[j * ab..(j + 1) * ab]), 0..rows, yj)
                    .expect("matvec");
            }
            black_box(&y);
        })
    });
}

fn bench_matmat(c: &mut Criterion) {
    use GgmlType::*;
    let mut group = c.benchmark_group("matmat");
    for ty in [Q4_1, Q8_0, Q4_K, Q6_K, Q5_0] {
        let rb = row_bytes(ty, COLS).expect("whole blocks");
        let rows = matrix_bytes() / rb;
        let w = weights(ty, rows, COLS);
        for (tier, t) in tiers(ty, true)
            .into_iter()
            .filter(|(t, _)| *t != Tier::Scalar)
        {
            let m = WeightMatrix::with_traits(t, &w, rows, COLS).expect("matrix");
            for n in [4usize, 8, 32] {
                matmat_vs_matvec(&mut group, &m, n, 13, &format!("{ty}/{tier}/{n}"));
            }
        }
    }
    group.finish();
}

/// `n` columns through a cache-resident matrix: SmolLM2-135M's FFN up projection, 1536 × 576
/// Q4_1 (0.5 MiB, inside L2), where the products are bound by arithmetic, not memory.
fn bench_matmat_small(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmat_small");
    let (ty, rows, cols, n) = (GgmlType::Q4_1, 1536, 576, 32);
    let w = weights(ty, rows, cols);
    for (tier, t) in tiers(ty, true)
        .into_iter()
        .filter(|(t, _)| *t != Tier::Scalar)
    {
        let m = WeightMatrix::with_traits(t, &w, rows, cols).expect("matrix");
        matmat_vs_matvec(&mut group, &m, n, 17, &format!("{ty}/{tier}/{n}"));
    }
    group.finish();
}

/// Prefill-shaped products through the packed-panel kernels of every format that has them:
/// pack every panel, multiply it with all `n` prepared columns. The 32-weight-block formats use
/// SmolLM2's FFN up projection (1536 × 576), the k-quants Gemma 3's attention output
/// (640 × 1024: rows of whole 256-weight super-blocks); both stay in L2.
fn bench_panel(c: &mut Criterion) {
    use eddy_quant::panel::{PANEL_ROWS, panel_kernels_for};
    let mut group = c.benchmark_group("panel");
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::IQ4_NL,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_XS,
    ] {
        let (rows, cols) = if ty.block_size() == 256 {
            (640, 1024)
        } else {
            (1536, 576)
        };
        let w = weights(ty, rows, cols);
        let rb = row_bytes(ty, cols).expect("whole blocks");
        for tier in Tier::ALL {
            let Some(k) = panel_kernels_for(tier, ty) else {
                continue;
            };
            for n in [32usize, 128] {
                let x = values(n * cols, 19);
                let cb = (k.column_bytes)(cols);
                let mut ys = vec![0u8; n * cb];
                for (xc, yc) in x.chunks_exact(cols).zip(ys.chunks_exact_mut(cb)) {
                    (k.prepare)(xc, yc);
                }
                let mut panel = vec![0u8; (k.panel_bytes)(cols)];
                let mut out = vec![0f32; n * PANEL_ROWS];
                group.throughput(Throughput::Bytes((n * w.len()) as u64));
                let id = BenchmarkId::new(ty.to_string(), format!("{tier}/{n}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        for r0 in (0..rows).step_by(PANEL_ROWS) {
                            (k.pack)(
                                cols,
                                &w[r0 * rb..(r0 + PANEL_ROWS) * rb],
                                PANEL_ROWS,
                                &mut panel,
                            );
                            (k.run)(cols, &panel, black_box(&ys), cb, &mut out);
                        }
                        black_box(&out);
                    })
                });
            }
        }
    }
    group.finish();
}

/// `decode/<format>/<tier>`: the runtime's one-token product for formats whose panel kernels
/// have a matrix-vector kernel on the prepared column (column preparation included), over the
/// same 64 MiB decode-shaped matrix as `matvec` (compare with `matvec/<format>/<tier>`).
fn bench_decode(c: &mut Criterion) {
    use eddy_quant::panel::panel_kernels_for;
    let mut group = c.benchmark_group("decode");
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        let rb = row_bytes(ty, COLS).expect("whole blocks");
        let rows = (matrix_bytes() / rb).max(1);
        let w = weights(ty, rows, COLS);
        for tier in Tier::ALL {
            let Some(k) = panel_kernels_for(tier, ty) else {
                continue;
            };
            let Some(matvec) = k.matvec else {
                continue;
            };
            let x = values(COLS, 23);
            let mut y = vec![0u8; (k.column_bytes)(COLS)];
            let mut out = vec![0f32; rows];
            group.throughput(Throughput::Bytes(w.len() as u64));
            group.bench_function(BenchmarkId::new(ty.to_string(), tier), |b| {
                b.iter(|| {
                    (k.prepare)(black_box(&x), &mut y);
                    matvec(COLS, &w, &y, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

/// `interleaved/<format>/<tier>`: the one-token product on row-interleaved Q4_0, Q4_1, Q5_0,
/// Q5_1, Q8_0, Q4_K, Q5_K and Q6_K (`eddy_quant::interleaved`), column preparation included,
/// over the same matrix as `decode/<format>` (compare with it: the same rows, the same bytes).
fn bench_interleaved(c: &mut Criterion) {
    use eddy_quant::interleaved::{interleave, interleaved_bytes, kernels_for};
    use eddy_quant::panel::panel_kernels_for;
    let mut group = c.benchmark_group("interleaved");
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        let rb = row_bytes(ty, COLS).expect("whole blocks");
        let rows = (matrix_bytes() / rb).max(1);
        let w = weights(ty, rows, COLS);
        let mut iw = vec![0u8; interleaved_bytes(ty, rows, COLS).expect("whole blocks")];
        interleave(ty, COLS, &w, rows, &mut iw);
        for tier in Tier::ALL {
            let (Some(ik), Some(k)) = (kernels_for(tier, ty), panel_kernels_for(tier, ty)) else {
                continue;
            };
            let x = values(COLS, 23);
            let mut y = vec![0u8; (k.column_bytes)(COLS)];
            let mut out = vec![0f32; rows];
            group.throughput(Throughput::Bytes(w.len() as u64));
            group.bench_function(BenchmarkId::new(ty.to_string(), tier), |b| {
                b.iter(|| {
                    (k.prepare)(black_box(&x), &mut y);
                    (ik.matvec)(COLS, &iw, &y, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

/// One KV group of SmolLM2's attention over `span` cached rows: scores, then the weighted sum of
/// values; f16 rows fused or row by row, and Q8_0 / Q4_0 rows through the block kernels.
fn bench_attention(c: &mut Criterion) {
    use eddy_quant::f32ops::ops_for;
    let mut group = c.benchmark_group("attention");
    let (g, hd) = (3usize, 64usize);
    for tier in Tier::ALL {
        let Some(ops) = ops_for(tier) else {
            continue;
        };
        for span in [128usize, 1024] {
            let q = values(g * hd, 23);
            let kv: Vec<u16> = values(span * hd, 29)
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            let mut scores = vec![0f32; g * span];
            let mut out = vec![0f32; g * hd];
            let mut row = vec![0f32; hd];
            group.throughput(Throughput::Elements(span as u64));
            let id = format!("{tier}/{span}");
            group.bench_function(BenchmarkId::new("row_by_row", &id), |b| {
                b.iter(|| {
                    for i in 0..span {
                        (ops.f16_to_f32)(&kv[i * hd..(i + 1) * hd], &mut row);
                        for j in 0..g {
                            scores[j * span + i] = (ops.dot)(&q[j * hd..(j + 1) * hd], &row);
                        }
                    }
                    out.fill(0.0);
                    for i in 0..span {
                        (ops.f16_to_f32)(&kv[i * hd..(i + 1) * hd], &mut row);
                        for j in 0..g {
                            (ops.axpy)(scores[j * span + i], &row, &mut out[j * hd..(j + 1) * hd]);
                        }
                    }
                    black_box(&out);
                })
            });
            if let (Some(sf), Some(vf)) = (ops.attn_scores_f16, ops.attn_values_f16) {
                group.bench_function(BenchmarkId::new("fused", &id), |b| {
                    b.iter(|| {
                        sf(black_box(&q), &kv, hd, &mut scores, span);
                        out.fill(0.0);
                        vf(&scores, span, &kv, hd, &mut out);
                        black_box(&out);
                    })
                });
            }
            // The same rows as a quantized cache holds them, read by the block kernels.
            let quant = [
                (GgmlType::Q8_0, ops.attn_scores_q8_0, ops.attn_values_q8_0),
                (GgmlType::Q4_0, ops.attn_scores_q4_0, ops.attn_values_q4_0),
            ];
            for (ty, sf, vf) in quant {
                let rows = values(span * hd, 29);
                let mut kq = vec![0u8; row_bytes(ty, span * hd).expect("whole blocks")];
                eddy_quant::from_float(ty, &rows, &mut kq).expect("a quantizable type");
                let name = ty.to_string().to_lowercase();
                group.bench_function(BenchmarkId::new(name, &id), |b| {
                    b.iter(|| {
                        sf(black_box(&q), &kq, hd, &mut scores, span);
                        out.fill(0.0);
                        vf(&scores, span, &kq, hd, &mut out);
                        black_box(&out);
                    })
                });
            }
        }
    }
    group.finish();
}

/// `from_float/Q8_K/<tier>`: the activation quantizer of the k-quants (and the k-quant panels'
/// column preparation) over 32 columns of Qwen2.5-0.5B's FFN width (4864 values, 19
/// super-blocks), the shape its `ffn_down` product converts per prefill batch. Throughput in
/// bytes of f32 input.
fn bench_from_float(c: &mut Criterion) {
    let mut group = c.benchmark_group("from_float");
    let (cols, n) = (32usize, 4864usize);
    let x = values(cols * n, 23);
    for ty in [GgmlType::Q8_K] {
        let rb = row_bytes(ty, n).expect("whole blocks");
        let mut out = vec![0u8; cols * rb];
        for tier in Tier::ALL {
            let Some(t) = type_traits_for(tier, ty) else {
                continue;
            };
            group.throughput(Throughput::Bytes((x.len() * 4) as u64));
            group.bench_function(BenchmarkId::new(ty.to_string(), tier.to_string()), |b| {
                b.iter(|| {
                    for (xc, oc) in x.chunks_exact(n).zip(out.chunks_exact_mut(rb)) {
                        (t.from_float)(black_box(xc), oc);
                    }
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
}

criterion_group! {
    name = benches;
    config = short();
    targets = bench_matvec, bench_head, bench_decode, bench_interleaved, bench_matmat, bench_matmat_small, bench_panel, bench_attention, bench_from_float
}
criterion_main!(benches);
