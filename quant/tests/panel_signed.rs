//! The packed-panel kernels of Q4_0, Q5_0, Q8_0 and IQ4_NL (one signed layout, one product
//! kernel per tier) against their scalar reference, bit for bit, on every tier this CPU supports: weights
//! from the reference quantizer and raw random blocks (every quant pattern, Q8_0's −128
//! included, scales of every size), odd block counts, partial panels, every column-group
//! remainder and extreme activation scales. Against `vec_dot` they agree to f32 rounding (a
//! different summation order), and the packed values times `d_x` are the dequantized weights.

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::panel::{PANEL_ROWS, panel_kernels_reference};
use eddy_quant::{GgmlType, dequantize, from_float, row_bytes, type_traits};
use panel_common::{in_reference_layout, in_tier_layout, prepared, quantized_rows, same, tiers};

const FORMATS: [GgmlType; 4] = [
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::IQ4_NL,
];

fn block_bytes(ty: GgmlType) -> usize {
    row_bytes(ty, 32).unwrap()
}

/// Rows of random bytes with finite f16 scales of every size (up to 65504, and subnormals).
fn raw_rows(ty: GgmlType, rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let bb = block_bytes(ty);
    let mut w: Vec<u8> = (0..rows * n / 32 * bb).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(bb).enumerate() {
        let scale = [65504.0, 1.0, 6e-8, 1e-3][i % 4];
        blk[..2].copy_from_slice(&rng.f16(scale));
    }
    w
}

#[test]
fn references_exist_and_simd_tiers_are_listed() {
    for ty in FORMATS {
        let r = panel_kernels_reference(ty).unwrap();
        assert_eq!(r.ty, ty);
        let here: Vec<&str> = tiers(ty).iter().map(|(t, _)| t.name()).collect();
        eprintln!("{ty} panel tiers here: {here:?}");
        for (_, k) in tiers(ty) {
            assert_eq!(k.ty, ty);
        }
    }
}

/// The packed values times the block scale are the dequantized weights, and every tier packs
/// the same bytes as the reference, in its own layout (the i8mm tier's row pairs).
#[test]
fn packed_values_are_the_weights() {
    let mut rng = Rng(21);
    for ty in FORMATS {
        let reference = panel_kernels_reference(ty).unwrap();
        for nb in [1usize, 3, 7] {
            let n = nb * 32;
            for rows in [1usize, 9, 16] {
                let w = raw_rows(ty, &mut rng, rows, n);
                let mut panel = vec![0xaa; (reference.panel_bytes)(n)];
                (reference.pack)(n, &w, rows, &mut panel);
                let rb = row_bytes(ty, n).unwrap();
                for r in 0..rows {
                    let mut x = vec![0f32; n];
                    dequantize(ty, &w[r * rb..][..rb], &mut x).unwrap();
                    for b in 0..nb {
                        let p = &panel[b * 640..][..640];
                        let d = f32::from_le_bytes(p[512 + 4 * r..][..4].try_into().unwrap());
                        let mut sum = 0i32;
                        for j in 0..32 {
                            let v = p[(j / 4) * 64 + r * 4 + j % 4] as i8;
                            sum += i32::from(v);
                            let want = x[b * 32 + j];
                            assert!(
                                same(f32::from(v) * d, want),
                                "{ty} row {r} block {b} weight {j}: {v} * {d} vs {want}"
                            );
                        }
                        let s = i32::from_le_bytes(p[576 + 4 * r..][..4].try_into().unwrap());
                        assert_eq!(s, sum, "{ty} row {r} block {b}: row sum");
                    }
                }
                // Rows past `rows` are zero.
                for b in 0..nb {
                    for r in rows..PANEL_ROWS {
                        for k in 0..8 {
                            assert_eq!(panel[b * 640 + k * 64 + r * 4..][..4], [0; 4]);
                        }
                    }
                }
                for (tier, k) in tiers(ty) {
                    let mut got = vec![0x55; (k.panel_bytes)(n)];
                    (k.pack)(n, &w, rows, &mut got);
                    assert_eq!(
                        got,
                        in_tier_layout(tier, ty, &panel),
                        "{ty} {tier}: packing"
                    );
                }
            }
        }
    }
}

/// The product: bit for bit the reference, for 1 to 21 columns (every remainder of a column
/// group), partial panels and extreme values.
#[test]
fn run_matches_the_reference_bit_for_bit() {
    let mut rng = Rng(22);
    for ty in FORMATS {
        let reference = panel_kernels_reference(ty).unwrap();
        for (tier, k) in tiers(ty) {
            for nb in [1usize, 3, 28] {
                let n = nb * 32;
                for (rows, raw, scale) in [
                    (16, false, 1.0),
                    (5, false, 1.0),
                    (16, true, 1.0),
                    (16, true, 1e4),
                    (11, true, 1e-6),
                ] {
                    let w = if raw {
                        raw_rows(ty, &mut rng, rows, n)
                    } else {
                        quantized_rows(ty, &mut rng, rows, n)
                    };
                    let mut panel = vec![0; (k.panel_bytes)(n)];
                    (k.pack)(n, &w, rows, &mut panel);
                    // The reference multiplies the same values in its own layout.
                    let ref_panel = in_reference_layout(tier, ty, &panel);
                    for cols in 1..=21 {
                        let ys = prepared(reference, &mut rng, cols, n, scale);
                        let stride = (k.column_bytes)(n);
                        let mut want = vec![0f32; cols * PANEL_ROWS];
                        let mut got = vec![1f32; cols * PANEL_ROWS];
                        (reference.run)(n, &ref_panel, &ys, stride, &mut want);
                        (k.run)(n, &panel, &ys, stride, &mut got);
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                same(*g, *w),
                                "{ty} {tier}: nb {nb} rows {rows} raw {raw} scale {scale} \
                                 cols {cols}: column {} row {}: {g:e} vs {w:e}",
                                i / PANEL_ROWS,
                                i % PANEL_ROWS
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Against the single-column path (`vec_dot` on the `from_float` column, the same quants):
/// equal up to f32 rounding, and the prepared quants are `from_float`'s.
#[test]
fn panel_products_agree_with_vec_dot() {
    let mut rng = Rng(23);
    for ty in FORMATS {
        let t = type_traits(ty).unwrap();
        assert_eq!(t.vec_dot_type, GgmlType::Q8_0);
        for (name, k) in std::iter::once(("reference", panel_kernels_reference(ty).unwrap()))
            .chain(tiers(ty).into_iter().map(|(t, k)| (t.name(), k)))
        {
            let (rows, nb, cols) = (16, 18, 9);
            let n = nb * 32;
            let w = quantized_rows(ty, &mut rng, rows, n);
            let rb = row_bytes(ty, n).unwrap();
            let mut panel = vec![0; (k.panel_bytes)(n)];
            (k.pack)(n, &w, rows, &mut panel);
            let cb = (k.column_bytes)(n);
            let ab = row_bytes(GgmlType::Q8_0, n).unwrap();
            let mut ys = vec![0u8; cols * cb];
            let mut yq = vec![0u8; cols * ab];
            for c in 0..cols {
                let x = rng.vec(n, 1.0);
                (k.prepare)(&x, &mut ys[c * cb..][..cb]);
                from_float(GgmlType::Q8_0, &x, &mut yq[c * ab..][..ab]).unwrap();
                for b in 0..nb {
                    assert_eq!(
                        ys[c * cb + b * 40..][..32],
                        yq[c * ab + b * 34 + 2..][..32],
                        "{ty} {name}: column {c} block {b}: quants"
                    );
                }
            }
            let mut out = vec![0f32; cols * PANEL_ROWS];
            (k.run)(n, &panel, &ys, cb, &mut out);
            for c in 0..cols {
                for r in 0..rows {
                    let want = (t.vec_dot)(n, &w[r * rb..][..rb], &yq[c * ab..][..ab]);
                    let got = out[c * PANEL_ROWS + r];
                    let bound = 1e-5 * (want.abs() + 1.0) * nb as f32;
                    assert!(
                        (got - want).abs() <= bound,
                        "{ty} {name}: row {r} column {c}: panel {got} vs vec_dot {want}"
                    );
                }
            }
        }
    }
}

/// The matrix-vector kernels on a prepared column give, bit for bit, the same tier's `vec_dot`
/// on the `from_float` column: odd and even block counts, row counts around the kernels' row
/// groups, quantized and raw rows (Q8_0's −128 included), extreme scales.
#[test]
fn matvec_equals_vec_dot_bit_for_bit() {
    let mut rng = Rng(24);
    let mut checked = 0;
    for ty in FORMATS {
        for (tier, k) in tiers(ty) {
            let Some(matvec) = k.matvec else {
                continue;
            };
            let t = eddy_quant::dispatch::type_traits_for(tier, ty).unwrap();
            for nb in [1usize, 2, 3, 18, 47] {
                let n = nb * 32;
                for (rows, raw, scale) in [
                    (13, false, 1.0),
                    (4, true, 1.0),
                    (9, true, 1e4),
                    (1, false, 1e-6),
                ] {
                    let w = if raw {
                        raw_rows(ty, &mut rng, rows, n)
                    } else {
                        quantized_rows(ty, &mut rng, rows, n)
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
                    let ab = row_bytes(GgmlType::Q8_0, n).unwrap();
                    let mut yq = vec![0u8; ab];
                    from_float(GgmlType::Q8_0, &x, &mut yq).unwrap();
                    let mut out = vec![0f32; rows];
                    matvec(n, &w, &y, &mut out);
                    let rb = row_bytes(ty, n).unwrap();
                    for (r, &got) in out.iter().enumerate() {
                        let want = (t.vec_dot)(n, &w[r * rb..(r + 1) * rb], &yq);
                        assert!(
                            same(got, want),
                            "{ty} {tier}: nb {nb} rows {rows} raw {raw} scale {scale} row {r}: \
                             {got:e} vs {want:e}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} matvec cases checked");
    #[cfg(target_arch = "x86_64")]
    if eddy_quant::dispatch::Tier::Avx512.is_supported() {
        assert!(
            checked >= 60,
            "the AVX-512 matvec kernels were not all checked"
        );
    }
}
