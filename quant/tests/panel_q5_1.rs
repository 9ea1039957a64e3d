//! Q5_1 packs into Q4_1's panel layout (5-bit values as bytes) and reuses Q4_1's product
//! kernels on the tiers whose integer sums cannot overflow with them (baseline NEON, whose Q4_1
//! sums are i16, has its own with i32 sums; AVX2 widens its i16 sums twice as often): the packed
//! values rebuild the dequantized weights, every tier's product equals the scalar reference bit
//! for bit (raw random blocks with scales of every size, partial panels, every column-group
//! remainder, the largest block sums), and products agree with `vec_dot` to f32 rounding.

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::panel::{PANEL_ROWS, panel_kernels_reference};
use eddy_quant::{GgmlType, dequantize, from_float, row_bytes, type_traits};
use panel_common::{assert_tiers_match, f32_at, in_reference_layout, quantized_rows, same, tiers};

const TY: GgmlType = GgmlType::Q5_1;

/// Random bytes with finite f16 `d` and `m` of every size.
fn raw_rows(rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..rows * n / 32 * 24).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(24).enumerate() {
        blk[..2].copy_from_slice(&rng.f16([65504.0, 1.0, 6e-8, 1e-3][i % 4]));
        blk[2..4].copy_from_slice(&rng.f16([1e-3, 65504.0, 1.0, 6e-8][i % 4]));
    }
    w
}

#[test]
fn packed_values_are_the_weights() {
    let mut rng = Rng(41);
    let reference = panel_kernels_reference(TY).unwrap();
    let here: Vec<&str> = tiers(TY).iter().map(|(t, _)| t.name()).collect();
    eprintln!("Q5_1 panel tiers here: {here:?}");
    for nb in [1usize, 5] {
        let n = nb * 32;
        for rows in [1usize, 16] {
            let w = raw_rows(&mut rng, rows, n);
            let mut panel = vec![0xaa; (reference.panel_bytes)(n)];
            (reference.pack)(n, &w, rows, &mut panel);
            for r in 0..rows {
                let mut x = vec![0f32; n];
                dequantize(TY, &w[r * n / 32 * 24..][..n / 32 * 24], &mut x).unwrap();
                for b in 0..nb {
                    let p = &panel[b * 640..][..640];
                    let (d, m) = (f32_at(p, 512 + 4 * r), f32_at(p, 576 + 4 * r));
                    for j in 0..32 {
                        let u = p[(j / 4) * 64 + r * 4 + j % 4];
                        assert!(u < 32);
                        let want = x[b * 32 + j];
                        let got = f32::from(u) * d + m;
                        assert!(
                            same(got, want),
                            "row {r} block {b} weight {j}: {got} vs {want}"
                        );
                    }
                }
            }
            for b in 0..nb {
                for r in rows..PANEL_ROWS {
                    for k in 0..8 {
                        assert_eq!(panel[b * 640 + k * 64 + r * 4..][..4], [0; 4]);
                    }
                }
            }
        }
    }
}

#[test]
fn run_matches_the_reference_bit_for_bit() {
    let mut rng = Rng(42);
    let reference = panel_kernels_reference(TY).unwrap();
    for (tier, k) in tiers(TY) {
        for nb in [1usize, 3, 28] {
            let n = nb * 32;
            for (rows, raw, scale) in [
                (16, false, 1.0f32),
                (5, false, 1.0),
                (16, true, 1.0),
                (16, true, 1e4),
                (11, true, 1e-6),
            ] {
                let w = if raw {
                    raw_rows(&mut rng, rows, n)
                } else {
                    quantized_rows(TY, &mut rng, rows, n)
                };
                // Both buffers dirty: every byte of a packed block is written, padding rows too.
                let mut panel = vec![0x55; (k.panel_bytes)(n)];
                (k.pack)(n, &w, rows, &mut panel);
                let mut want_panel = vec![0xaa; panel.len()];
                (reference.pack)(n, &w, rows, &mut want_panel);
                // Packed as the reference, in the tier's layout.
                assert_eq!(
                    in_reference_layout(tier, TY, &panel),
                    want_panel,
                    "{tier}: packing"
                );
                for cols in 1..=21 {
                    let cb = (k.column_bytes)(n);
                    let mut ys = vec![0u8; cols * cb];
                    for c in 0..cols {
                        let x = rng.vec(n, scale);
                        (reference.prepare)(&x, &mut ys[c * cb..][..cb]);
                    }
                    let mut want = vec![0f32; cols * PANEL_ROWS];
                    let mut got = vec![1f32; cols * PANEL_ROWS];
                    (reference.run)(n, &want_panel, &ys, cb, &mut want);
                    (k.run)(n, &panel, &ys, cb, &mut got);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            same(*g, *w),
                            "{tier}: nb {nb} rows {rows} raw {raw} cols {cols}: output {i}: \
                             {g:e} vs {w:e}"
                        );
                    }
                }
            }
        }
    }
}

/// The largest block sums: every value 31 against columns whose quants are all +127 or all
/// -127 (constant activations), where a kernel summing eight weight vectors' byte-pair products
/// in i16 (Q4_1's AVX2 kernel) would overflow (8 · 2 · 31 · 127 = 62992). Every tier equals
/// the reference, and the reference equals the exact integer sum.
#[test]
fn largest_block_sums_are_exact() {
    let reference = panel_kernels_reference(TY).unwrap();
    let (rows, nb) = (16, 4);
    let n = nb * 32;
    // d = 1, m = 0 (f16), every value 31: qs all 0xff, qh all ones.
    let block = [[0x00, 0x3c, 0, 0], [0xff; 4]].concat();
    let w: Vec<u8> = std::iter::repeat_n([block, vec![0xff; 16]].concat(), rows * nb)
        .flatten()
        .collect();
    let cb = (reference.column_bytes)(n);
    let mut ys = vec![0u8; 2 * cb];
    for (c, v) in [1.0f32, -1.0].into_iter().enumerate() {
        (reference.prepare)(&vec![v; n], &mut ys[c * cb..][..cb]);
    }
    let mut want_panel = vec![0; (reference.panel_bytes)(n)];
    (reference.pack)(n, &w, rows, &mut want_panel);
    let mut want = vec![0f32; 2 * PANEL_ROWS];
    (reference.run)(n, &want_panel, &ys, cb, &mut want);
    // Each column quantizes to ±127 in every block, with d_y = 1/127 rounded to f16.
    for (c, sign) in [1.0f32, -1.0].into_iter().enumerate() {
        let d_y = f32_at(&ys[c * cb..], 32);
        let exact = sign * (31.0 * 127.0 * n as f32) * d_y;
        for r in 0..rows {
            let got = want[c * PANEL_ROWS + r];
            assert!(
                (got / exact - 1.0).abs() < 1e-5 * nb as f32,
                "{got} vs {exact}"
            );
        }
    }
    assert_tiers_match(TY, n, &w, &ys, cb, &want);
}

#[test]
fn panel_products_agree_with_vec_dot() {
    let mut rng = Rng(43);
    let t = type_traits(TY).unwrap();
    assert_eq!(t.vec_dot_type, GgmlType::Q8_1);
    for (name, k) in std::iter::once(("reference", panel_kernels_reference(TY).unwrap()))
        .chain(tiers(TY).into_iter().map(|(t, k)| (t.name(), k)))
    {
        let (rows, nb, cols) = (16, 18, 9);
        let n = nb * 32;
        let w = quantized_rows(TY, &mut rng, rows, n);
        let rb = row_bytes(TY, n).unwrap();
        let mut panel = vec![0; (k.panel_bytes)(n)];
        (k.pack)(n, &w, rows, &mut panel);
        let cb = (k.column_bytes)(n);
        let ab = row_bytes(GgmlType::Q8_1, n).unwrap();
        let mut ys = vec![0u8; cols * cb];
        let mut yq = vec![0u8; cols * ab];
        for c in 0..cols {
            let x = rng.vec(n, 1.0);
            (k.prepare)(&x, &mut ys[c * cb..][..cb]);
            from_float(GgmlType::Q8_1, &x, &mut yq[c * ab..][..ab]).unwrap();
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
                    "{name}: row {r} column {c}: panel {got} vs vec_dot {want}"
                );
            }
        }
    }
}

/// The matrix-vector kernel on a prepared column gives, bit for bit, the same tier's `vec_dot`
/// on the `from_float` column: odd and even block counts, quantized and raw rows, extreme
/// activation scales.
#[test]
fn matvec_equals_vec_dot_bit_for_bit() {
    let mut rng = Rng(46);
    let mut checked = 0;
    for (tier, k) in tiers(TY) {
        let Some(matvec) = k.matvec else {
            continue;
        };
        let t = eddy_quant::dispatch::type_traits_for(tier, TY).unwrap();
        for nb in [1usize, 2, 3, 18, 47, 48] {
            let n = nb * 32;
            for (raw, scale) in [(false, 1.0), (true, 1.0), (true, 1e4), (false, 1e-6)] {
                let rows = 13;
                let w = if raw {
                    raw_rows(&mut rng, rows, n)
                } else {
                    quantized_rows(TY, &mut rng, rows, n)
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
                let mut yq = vec![0u8; row_bytes(GgmlType::Q8_1, n).unwrap()];
                from_float(GgmlType::Q8_1, &x, &mut yq).unwrap();
                let mut out = vec![0f32; rows];
                matvec(n, &w, &y, &mut out);
                let rb = row_bytes(TY, n).unwrap();
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
    #[cfg(target_arch = "x86_64")]
    if eddy_quant::dispatch::Tier::Avx512.is_supported() {
        assert!(
            checked >= 24,
            "the AVX-512 Q5_1 matvec kernel was not checked"
        );
    }
}
