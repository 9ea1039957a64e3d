//! The packed-panel kernels of Q4_K, Q5_K, Q6_K and IQ4_XS (one k-quant layout, one product
//! kernel per tier, a signed variant for IQ4_XS) against their scalar reference, bit for bit, on
//! every tier this CPU supports: weights from the reference quantizers and raw random
//! super-blocks (every quant and scale pattern, Q6_K's −128 scales included, f16 scales of every
//! size), partial panels, every column-group remainder and extreme activation scales. The packed
//! values rebuild the dequantized weights exactly, and products agree with `vec_dot` to f32
//! rounding (another summation order).

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::panel::{PANEL_ROWS, panel_kernels_reference};
use eddy_quant::{GgmlType, dequantize, from_float, row_bytes, type_traits};
use panel_common::{
    assert_tiers_match, f32_at, in_reference_layout, in_tier_layout, prepared, quantized_rows,
    same, tiers,
};

const FORMATS: [GgmlType; 4] = [
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_XS,
];
/// IQ4_XS's levels (ggml's `kvalues_iq4nl`).
const LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
/// Bytes of a packed super-block and offsets inside it (the layout of `eddy_quant::panel`).
const K_BLOCK: usize = 5760;
const K_SC: usize = 4096;
const K_MIN: usize = 5120;
const K_D: usize = 5632;
const K_NEG_M: usize = 5696;

fn block_bytes(ty: GgmlType) -> usize {
    row_bytes(ty, 256).unwrap()
}

/// Byte offsets of the f16 scales in a super-block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q6_K => &[208],
        GgmlType::IQ4_XS => &[0],
        _ => &[0, 2],
    }
}

/// Rows of random bytes with finite f16 scales of every size (up to 65504, and subnormals).
fn raw_rows(ty: GgmlType, rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let bb = block_bytes(ty);
    let mut w: Vec<u8> = (0..rows * n / 256 * bb).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(bb).enumerate() {
        for (f, &at) in f16_fields(ty).iter().enumerate() {
            let scale = [65504.0, 1.0, 6e-8, 1e-3][(i + f) % 4];
            blk[at..at + 2].copy_from_slice(&rng.f16(scale));
        }
    }
    w
}

#[test]
fn references_exist_and_simd_tiers_are_listed() {
    for ty in FORMATS {
        let r = panel_kernels_reference(ty).unwrap();
        assert_eq!(r.ty, ty);
        assert_eq!((r.panel_bytes)(512), 2 * K_BLOCK);
        let here: Vec<&str> = tiers(ty).iter().map(|(t, _)| t.name()).collect();
        eprintln!("{ty} panel tiers here: {here:?}");
        for (_, k) in tiers(ty) {
            assert_eq!(k.ty, ty);
        }
    }
}

/// The packed values and integer scales rebuild the dequantized weights bit for bit (with the
/// dequantizer's own float steps), rows past `rows` are zero, and every tier packs the
/// reference's bytes.
#[test]
fn packed_values_are_the_weights() {
    let mut rng = Rng(31);
    for ty in FORMATS {
        let reference = panel_kernels_reference(ty).unwrap();
        for nb in [1usize, 3] {
            let n = nb * 256;
            for rows in [1usize, 9, 16] {
                let w = raw_rows(ty, &mut rng, rows, n);
                let mut panel = vec![0xaa; (reference.panel_bytes)(n)];
                (reference.pack)(n, &w, rows, &mut panel);
                let rb = row_bytes(ty, n).unwrap();
                for r in 0..rows {
                    let mut x = vec![0f32; n];
                    dequantize(ty, &w[r * rb..][..rb], &mut x).unwrap();
                    for b in 0..nb {
                        let p = &panel[b * K_BLOCK..][..K_BLOCK];
                        let d = f32_at(p, K_D + 4 * r);
                        let neg_m = f32_at(p, K_NEG_M + 4 * r);
                        for j in 0..256 {
                            let u = p[(j / 4) * 64 + r * 4 + j % 4];
                            let k = j / 16;
                            let sc = i32::from_le_bytes(
                                p[K_SC + 64 * k + 4 * r..][..4].try_into().unwrap(),
                            );
                            let at = K_MIN + 64 * (k / 2) + 4 * r + 2 * (k % 2);
                            let m = i16::from_le_bytes(p[at..at + 2].try_into().unwrap());
                            let got = if ty == GgmlType::IQ4_XS {
                                let level = u as i8;
                                assert!(LEVELS.contains(&level), "{ty}: value {level}");
                                assert!((-32..32).contains(&sc) && m == 0 && neg_m == 0.0);
                                d * sc as f32 * f32::from(level)
                            } else if ty == GgmlType::Q6_K {
                                assert!(u < 64 && i32::from(m) == sc && neg_m == -32.0 * d);
                                d * sc as f32 * (i32::from(u) - 32) as f32
                            } else {
                                let max = if ty == GgmlType::Q4_K { 16 } else { 32 };
                                assert!(u < max && (0..64).contains(&sc) && (0..64).contains(&m));
                                d * sc as f32 * f32::from(u) - (-neg_m) * f32::from(m)
                            };
                            let want = x[b * 256 + j];
                            assert!(
                                same(got, want),
                                "{ty} row {r} super-block {b} weight {j}: {got:e} vs {want:e}"
                            );
                        }
                    }
                }
                for b in 0..nb {
                    let p = &panel[b * K_BLOCK..][..K_BLOCK];
                    for r in rows..PANEL_ROWS {
                        for v in 0..64 {
                            assert_eq!(p[v * 64 + r * 4..][..4], [0; 4]);
                        }
                        for v in 0..16 {
                            assert_eq!(p[K_SC + v * 64 + r * 4..][..4], [0; 4]);
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
    let mut rng = Rng(32);
    for ty in FORMATS {
        let reference = panel_kernels_reference(ty).unwrap();
        for (tier, k) in tiers(ty) {
            for nb in [1usize, 3, 19] {
                let n = nb * 256;
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
                    let max_cols = if nb > 3 { 9 } else { 21 };
                    for cols in 1..=max_cols {
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

/// The largest integer sums: every value at its top (15, 31, 63; IQ4_XS's 113) against columns
/// of −127 (the quantization of a constant column), so that any product summing more than four
/// of them per 16-bit lane (baseline NEON sums exactly four: 4·63·127 = 32004; two of IQ4_XS's)
/// would overflow and differ. IQ4_XS also at its bottom (level −127, scale −32).
#[test]
fn largest_group_sums_are_exact() {
    for (ty, fill) in FORMATS
        .map(|ty| (ty, 0xff))
        .into_iter()
        .chain([(GgmlType::IQ4_XS, 0x00)])
    {
        let reference = panel_kernels_reference(ty).unwrap();
        let (rows, nb) = (16, 2);
        let n = nb * 256;
        let mut block = vec![fill; block_bytes(ty)];
        for &at in f16_fields(ty) {
            block[at..at + 2].copy_from_slice(&[0x00, 0x3c]); // 1.0
        }
        let w = block.repeat(rows * nb);
        let cb = (reference.column_bytes)(n);
        let mut ys = vec![0u8; 2 * cb];
        for (c, v) in [1.0f32, -1.0].into_iter().enumerate() {
            (reference.prepare)(&vec![v; n], &mut ys[c * cb..][..cb]);
        }
        assert!(ys[..cb].iter().skip(4).take(256).all(|&q| q as i8 == -127));
        let mut ref_panel = vec![0; (reference.panel_bytes)(n)];
        (reference.pack)(n, &w, rows, &mut ref_panel);
        let mut want = vec![0f32; 2 * PANEL_ROWS];
        (reference.run)(n, &ref_panel, &ys, cb, &mut want);
        assert_tiers_match(ty, n, &w, &ys, cb, &want);
    }
}

/// Against the single-column path (`vec_dot` on the `from_float` Q8_K column): equal up to f32
/// rounding, and the prepared column is `from_float`'s bytes.
#[test]
fn panel_products_agree_with_vec_dot() {
    let mut rng = Rng(33);
    for ty in FORMATS {
        let t = type_traits(ty).unwrap();
        assert_eq!(t.vec_dot_type, GgmlType::Q8_K);
        for (name, k) in std::iter::once(("reference", panel_kernels_reference(ty).unwrap()))
            .chain(tiers(ty).into_iter().map(|(t, k)| (t.name(), k)))
        {
            let (rows, nb, cols) = (16, 7, 9);
            let n = nb * 256;
            let w = quantized_rows(ty, &mut rng, rows, n);
            let rb = row_bytes(ty, n).unwrap();
            let mut panel = vec![0; (k.panel_bytes)(n)];
            (k.pack)(n, &w, rows, &mut panel);
            let cb = (k.column_bytes)(n);
            let ab = row_bytes(GgmlType::Q8_K, n).unwrap();
            assert_eq!(cb, ab);
            let mut ys = vec![0u8; cols * cb];
            let mut yq = vec![0u8; cols * ab];
            for c in 0..cols {
                let x = rng.vec(n, 1.0);
                (k.prepare)(&x, &mut ys[c * cb..][..cb]);
                from_float(GgmlType::Q8_K, &x, &mut yq[c * ab..][..ab]).unwrap();
            }
            assert_eq!(ys, yq, "{ty} {name}: prepared columns");
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

/// The matrix-vector kernels on a prepared (Q8_K) column give, bit for bit, the same tier's
/// `vec_dot` on the `from_float` column: one to several super-blocks, row counts beyond the
/// prefetch distance, quantized and raw rows, extreme activation scales.
#[test]
fn matvec_equals_vec_dot_bit_for_bit() {
    let mut rng = Rng(25);
    let mut checked = 0;
    for ty in FORMATS {
        for (tier, k) in tiers(ty) {
            let Some(matvec) = k.matvec else {
                continue;
            };
            let t = eddy_quant::dispatch::type_traits_for(tier, ty).unwrap();
            for nb in [1usize, 2, 5] {
                let n = nb * 256;
                for (rows, raw, scale) in [
                    (40, false, 1.0),
                    (3, true, 1.0),
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
                    let mut yq = vec![0u8; row_bytes(GgmlType::Q8_K, n).unwrap()];
                    from_float(GgmlType::Q8_K, &x, &mut yq).unwrap();
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
            checked >= 72,
            "the x86 k-quant matvec kernels were not all checked"
        );
    }
}
