//! The packed-panel kernels (batched prefill) against their scalar reference, bit for bit, on
//! every tier this CPU supports: random weights and activations, odd block counts, partial
//! panels, every column-group remainder, and extreme scales. Against `vec_dot` they agree to
//! f32 rounding (a different summation order), which is checked with a bound.

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::dispatch::Tier;
use eddy_quant::dispatch::type_traits_for;
use eddy_quant::panel::{PANEL_ROWS, PanelKernels, panel_kernels_for, panel_kernels_reference};
use eddy_quant::{GgmlType, from_float, quantize, row_bytes, type_traits};
use panel_common::in_tier_layout;

/// Q4_1 rows made by the reference quantizer from normal values, with a zero row and a spiky
/// row among them.
fn q4_1_rows(rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let rb = row_bytes(GgmlType::Q4_1, n).unwrap();
    let mut w = vec![0u8; rows * rb];
    for (r, out) in w.chunks_exact_mut(rb).enumerate() {
        let x: Vec<f32> = (0..n)
            .map(|i| match r % 4 {
                1 => 0.0,
                2 if i % 29 == 3 => 50.0,
                _ => rng.normal(),
            })
            .collect();
        quantize(GgmlType::Q4_1, &x, out).unwrap();
    }
    w
}

/// Q4_1 rows of random bytes with finite f16 scales of every size (up to 65504, and
/// subnormals): every nibble pattern, huge and tiny products.
fn q4_1_raw(rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..rows * n / 32 * 20).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(20).enumerate() {
        let scale = [65504.0, 1.0, 6e-8, 1e-3][i % 4];
        blk[..2].copy_from_slice(&rng.f16(scale));
        blk[2..4].copy_from_slice(&rng.f16(scale));
    }
    w
}

fn prepared(k: &PanelKernels, rng: &mut Rng, cols: usize, n: usize, scale: f32) -> Vec<u8> {
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

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn tiers() -> Vec<(Tier, &'static PanelKernels)> {
    Tier::ALL
        .into_iter()
        .filter_map(|t| panel_kernels_for(t, GgmlType::Q4_1).map(|k| (t, k)))
        .collect()
}

#[test]
fn the_reference_exists_and_simd_tiers_are_listed() {
    assert!(panel_kernels_reference(GgmlType::Q4_1).is_some());
    assert!(panel_kernels_reference(GgmlType::F32).is_none());
    eprintln!(
        "panel tiers here: {:?}",
        tiers().iter().map(|(t, _)| t.name()).collect::<Vec<_>>()
    );
}

/// Packing: the same bytes as the reference (in the tier's layout: the i8mm tier's row pairs)
/// for 1 to 16 rows and several block counts.
#[test]
fn pack_matches_the_reference() {
    let reference = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let mut rng = Rng(11);
    for (tier, k) in tiers() {
        for nb in [1usize, 2, 3, 18, 48] {
            let n = nb * 32;
            for rows in 1..=PANEL_ROWS {
                for raw in [false, true] {
                    let w = if raw {
                        q4_1_raw(&mut rng, rows, n)
                    } else {
                        q4_1_rows(&mut rng, rows, n)
                    };
                    let mut want = vec![0xaa; (k.panel_bytes)(n)];
                    let mut got = vec![0x55; (k.panel_bytes)(n)];
                    (reference.pack)(n, &w, rows, &mut want);
                    (k.pack)(n, &w, rows, &mut got);
                    let want = in_tier_layout(tier, GgmlType::Q4_1, &want);
                    assert_eq!(got, want, "{tier}: nb {nb}, rows {rows}, raw {raw}");
                }
            }
        }
    }
}

/// The product: bit for bit the reference, for 1 to 21 columns (every remainder of a column
/// group), partial panels and extreme values.
#[test]
fn run_matches_the_reference_bit_for_bit() {
    let reference = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let mut rng = Rng(12);
    for (tier, k) in tiers() {
        for nb in [1usize, 3, 18, 48] {
            let n = nb * 32;
            for (rows, raw, scale) in [
                (16, false, 1.0),
                (5, false, 1.0),
                (16, true, 1.0),
                (16, true, 1e4),
                (11, true, 1e-6),
            ] {
                let w = if raw {
                    q4_1_raw(&mut rng, rows, n)
                } else {
                    q4_1_rows(&mut rng, rows, n)
                };
                let mut panel = vec![0; (k.panel_bytes)(n)];
                (reference.pack)(n, &w, rows, &mut panel);
                let tier_panel = in_tier_layout(tier, GgmlType::Q4_1, &panel);
                for cols in 1..=21 {
                    let ys = prepared(reference, &mut rng, cols, n, scale);
                    let stride = (k.column_bytes)(n);
                    let mut want = vec![0f32; cols * PANEL_ROWS];
                    let mut got = vec![1f32; cols * PANEL_ROWS];
                    (reference.run)(n, &panel, &ys, stride, &mut want);
                    (k.run)(n, &tier_panel, &ys, stride, &mut got);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            same(*g, *w),
                            "{tier}: nb {nb} rows {rows} raw {raw} scale {scale} cols {cols}: \
                             column {} row {}: {g:e} vs {w:e}",
                            i / PANEL_ROWS,
                            i % PANEL_ROWS
                        );
                    }
                }
            }
        }
    }
}

/// Preparing columns: the same bytes as the reference, for normal values, zero blocks, huge and
/// tiny values, infinities and NaN.
#[test]
fn prepare_matches_the_reference() {
    let reference = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let mut rng = Rng(15);
    for (tier, k) in tiers() {
        for case in 0..200 {
            let n = 32 * (1 + case % 7);
            let x: Vec<f32> = (0..n)
                .map(|i| match (case + i) % 23 {
                    _ if case % 10 == 3 => 0.0,
                    0 if case % 5 == 1 => f32::INFINITY,
                    1 if case % 7 == 2 => f32::NAN,
                    2 if case % 3 == 0 => 3e38,
                    3 => 1e-40,
                    4 => -0.0,
                    _ => rng.normal() * [1.0, 1e-3, 1e4][case % 3],
                })
                .collect();
            let mut want = vec![0u8; (reference.column_bytes)(n)];
            let mut got = vec![1u8; (k.column_bytes)(n)];
            (reference.prepare)(&x, &mut want);
            (k.prepare)(&x, &mut got);
            assert_eq!(got, want, "{tier}: case {case}");
        }
    }
}

/// The matrix-vector kernel on a prepared column gives, bit for bit, the same tier's `vec_dot`
/// on the `from_float` column: odd and even block counts, normal and raw rows, extreme scales.
#[test]
fn matvec_equals_vec_dot_bit_for_bit() {
    let mut rng = Rng(16);
    let mut checked = 0;
    for (tier, k) in tiers() {
        let Some(matvec) = k.matvec else {
            continue;
        };
        let t = type_traits_for(tier, GgmlType::Q4_1).unwrap();
        for nb in [1usize, 2, 3, 18, 47, 48] {
            let n = nb * 32;
            for (raw, scale) in [(false, 1.0), (true, 1.0), (true, 1e4), (false, 1e-6)] {
                let rows = 13;
                let w = if raw {
                    q4_1_raw(&mut rng, rows, n)
                } else {
                    q4_1_rows(&mut rng, rows, n)
                };
                let x: Vec<f32> = (0..n)
                    .map(|i| {
                        if i % 13 == 5 {
                            40.0 * scale
                        } else {
                            rng.normal() * scale
                        }
                    })
                    .collect();
                let mut y = vec![0u8; (k.column_bytes)(n)];
                (k.prepare)(&x, &mut y);
                let ab = row_bytes(GgmlType::Q8_1, n).unwrap();
                let mut yq = vec![0u8; ab];
                from_float(GgmlType::Q8_1, &x, &mut yq).unwrap();
                let mut out = vec![0f32; rows];
                matvec(n, &w, &y, &mut out);
                let rb = row_bytes(GgmlType::Q4_1, n).unwrap();
                for (r, &got) in out.iter().enumerate() {
                    let want = (t.vec_dot)(n, &w[r * rb..(r + 1) * rb], &yq);
                    assert!(
                        same(got, want),
                        "{tier}: nb {nb} raw {raw} scale {scale} row {r}: {got:e} vs {want:e}"
                    );
                }
                checked += 1;
            }
        }
    }
    eprintln!("{checked} matvec cases checked");
}

/// A longer column stride (columns with gaps between them) reads the same values.
#[test]
fn column_stride_is_respected() {
    let reference = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let mut rng = Rng(13);
    let n = 96;
    let w = q4_1_rows(&mut rng, 16, n);
    let mut panel = vec![0; (reference.panel_bytes)(n)];
    (reference.pack)(n, &w, 16, &mut panel);
    let cb = (reference.column_bytes)(n);
    let ys = prepared(reference, &mut rng, 3, n, 1.0);
    let mut gapped = vec![0x7f; 3 * (cb + 8)];
    for c in 0..3 {
        gapped[c * (cb + 8)..][..cb].copy_from_slice(&ys[c * cb..][..cb]);
    }
    for (tier, k) in std::iter::once((Tier::Scalar, reference)).chain(tiers()) {
        let panel = in_tier_layout(tier, GgmlType::Q4_1, &panel);
        let mut a = vec![0f32; 3 * PANEL_ROWS];
        let mut b = vec![0f32; 3 * PANEL_ROWS];
        (k.run)(n, &panel, &ys, cb, &mut a);
        (k.run)(n, &panel, &gapped, cb + 8, &mut b);
        assert_eq!(a, b);
    }
}

/// Against the per-row `vec_dot` of the active table: the same quants and scales, summed in a
/// different f32 order, so equal up to a few ulps of the sum of the terms' magnitudes.
#[test]
fn panel_products_agree_with_vec_dot() {
    let reference = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let t = type_traits(GgmlType::Q4_1).unwrap();
    let mut rng = Rng(14);
    let (rows, nb, cols) = (16, 18, 5);
    let n = nb * 32;
    let w = q4_1_rows(&mut rng, rows, n);
    let rb = row_bytes(GgmlType::Q4_1, n).unwrap();
    let mut panel = vec![0; (reference.panel_bytes)(n)];
    (reference.pack)(n, &w, rows, &mut panel);
    let cb = (reference.column_bytes)(n);
    let ab = row_bytes(GgmlType::Q8_1, n).unwrap();
    let mut ys = vec![0u8; cols * cb];
    let mut yq = vec![0u8; cols * ab];
    for c in 0..cols {
        let x = rng.vec(n, 1.0);
        (reference.prepare)(&x, &mut ys[c * cb..][..cb]);
        from_float(GgmlType::Q8_1, &x, &mut yq[c * ab..][..ab]).unwrap();
        // The prepared quants are the `from_float` quants.
        for b in 0..nb {
            assert_eq!(
                ys[c * cb + b * 40..][..32],
                yq[c * ab + b * 36 + 4..][..32],
                "column {c} block {b}"
            );
        }
    }
    let mut out = vec![0f32; cols * PANEL_ROWS];
    (reference.run)(n, &panel, &ys, cb, &mut out);
    for c in 0..cols {
        for r in 0..rows {
            let want = (t.vec_dot)(n, &w[r * rb..][..rb], &yq[c * ab..][..ab]);
            let got = out[c * PANEL_ROWS + r];
            // Every block term is below 16·32·128·|d_x·d_y| + |m_x·s_y|; bound the rounding by
            // a few ulps of that magnitude summed over the blocks.
            let bound = 1e-5 * (want.abs() + 1.0) * nb as f32;
            assert!(
                (got - want).abs() <= bound,
                "row {r} column {c}: panel {got} vs vec_dot {want}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "a panel holds 1 to 16 rows")]
fn too_many_rows_panic_in_the_raw_kernel() {
    let k = panel_kernels_reference(GgmlType::Q4_1).unwrap();
    let w = vec![0u8; 17 * 20];
    let mut panel = vec![0u8; (k.panel_bytes)(32)];
    (k.pack)(32, &w, 17, &mut panel);
}
