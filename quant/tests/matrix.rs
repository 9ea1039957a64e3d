//! The matrix drivers against the per-column dot product, bit for bit, for every format on every
//! tier this CPU supports: batched prefill (`matmat`) must give exactly what token-by-token
//! decoding (`matvec`, one `vec_dot` per row) gives, however the rows are split over threads.
//! Plus the length checks: wrong lengths are errors, never panics.

mod common;

use common::Rng;
use eddy_quant::dispatch::{Tier, type_traits_for};
use eddy_quant::{
    GgmlType, QuantError, TypeTraits, WeightMatrix, matmat, matmat_scratch_bytes, matvec, quantize,
    row_bytes, supported_types,
};

/// Row `r` of a test matrix: mostly normal values, with an all-zero row, a constant row and a
/// row of spikes among them, so that zero scales and saturated blocks are covered too.
fn values(rng: &mut Rng, r: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match r % 5 {
            1 => 0.0,
            2 => -0.75,
            3 if i % 37 == 5 => 60.0,
            3 => 0.01 * rng.normal(),
            _ => rng.normal(),
        })
        .collect()
}

struct Case {
    t: &'static TypeTraits,
    rows: usize,
    cols: usize,
    w: Vec<u8>,
}

fn case(t: &'static TypeTraits, rows: usize, cols: usize, seed: u64) -> Case {
    let mut rng = Rng(seed);
    let rb = row_bytes(t.ty, cols).unwrap();
    let mut w = vec![0u8; rows * rb];
    for (r, out) in w.chunks_exact_mut(rb).enumerate() {
        quantize(t.ty, &values(&mut rng, r, cols), out).unwrap();
    }
    Case { t, rows, cols, w }
}

/// `n` activation columns, quantized one by one with the table's `from_float`.
fn columns(t: &TypeTraits, cols: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng(seed);
    let x: Vec<f32> = (0..n * cols)
        .map(|i| {
            if i % cols == 0 && i / cols % 3 == 2 {
                40.0
            } else {
                rng.normal()
            }
        })
        .collect();
    let ab = row_bytes(t.vec_dot_type, cols).unwrap();
    let mut xq = vec![0u8; n * ab];
    let partner = eddy_quant::type_traits(t.vec_dot_type).unwrap();
    for (col, out) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(ab)) {
        (partner.from_float)(col, out);
    }
    (x, xq)
}

/// `Y[j * rows + r] = vec_dot(row r, column j)`: the per-column definition.
fn reference(c: &Case, n: usize, xq: &[u8]) -> Vec<f32> {
    let rb = row_bytes(c.t.ty, c.cols).unwrap();
    let ab = row_bytes(c.t.vec_dot_type, c.cols).unwrap();
    let mut y = vec![0f32; n * c.rows];
    for j in 0..n {
        for r in 0..c.rows {
            y[j * c.rows + r] = (c.t.vec_dot)(
                c.cols,
                &c.w[r * rb..(r + 1) * rb],
                &xq[j * ab..(j + 1) * ab],
            );
        }
    }
    y
}

fn assert_bits(what: &str, c: &Case, tier: Tier, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: {} on {tier}, {}×{}, entry {i} (column {}, row {}): {g} vs {w}",
            c.t.ty,
            c.rows,
            c.cols,
            i / c.rows,
            i % c.rows
        );
    }
}

/// Row lengths: one k-quant block, and 768 = 3·256 = 24·32 (odd block counts both ways).
const COLS: [usize; 2] = [256, 768];
/// Column counts: 1, below/at/above the 4-column kernels, odd, and above the 64-column chunk.
const NS: [usize; 9] = [1, 2, 3, 4, 5, 8, 9, 33, 70];

#[test]
fn matmat_equals_per_column_vec_dot_bit_for_bit() {
    let mut checked = 0;
    for tier in Tier::ALL.into_iter().filter(|t| t.is_supported()) {
        for ty in supported_types() {
            let t = type_traits_for(tier, ty).unwrap();
            for (k, &cols) in COLS.iter().enumerate() {
                let c = case(t, 11, cols, 17 + k as u64);
                let m = WeightMatrix::with_traits(t, &c.w, c.rows, c.cols).unwrap();
                for &n in &NS {
                    let (x, xq) = columns(t, cols, n, 1000 + n as u64);
                    let want = reference(&c, n, &xq);

                    // The whole product from f32 activations.
                    let mut scratch = vec![0u8; m.scratch_bytes(n).unwrap() + 3];
                    let mut y = vec![f32::NAN; n * c.rows];
                    m.matmat(n, &x, &mut scratch, &mut y).unwrap();
                    assert_bits("matmat", &c, tier, &y, &want);

                    // Row ranges into dense tiles, as threads would split the rows.
                    for split in [1, 4, 10] {
                        let mut y = vec![f32::NAN; n * c.rows];
                        for (a, b) in [(0, split), (split, c.rows)] {
                            let mut tile = vec![f32::NAN; n * (b - a)];
                            m.matmat_rows(n, &xq, a..b, &mut tile, b - a).unwrap();
                            for j in 0..n {
                                y[j * c.rows + a..j * c.rows + b]
                                    .copy_from_slice(&tile[j * (b - a)..(j + 1) * (b - a)]);
                            }
                        }
                        assert_bits("matmat_rows", &c, tier, &y, &want);
                    }

                    // One column at a time, as decoding does.
                    let ab = m.activation_row_bytes();
                    for j in 0..n.min(3) {
                        let mut y = vec![f32::NAN; c.rows];
                        m.matvec(&x[j * cols..(j + 1) * cols], &mut scratch, &mut y)
                            .unwrap();
                        assert_bits("matvec", &c, tier, &y, &want[j * c.rows..][..c.rows]);
                        let mut part = vec![f32::NAN; 6];
                        m.matvec_rows(&xq[j * ab..(j + 1) * ab], 3..9, &mut part)
                            .unwrap();
                        assert_bits(
                            "matvec_rows",
                            &c,
                            tier,
                            &part,
                            &want[j * c.rows + 3..j * c.rows + 9],
                        );
                    }

                    // The multi-column kernel called directly, with a stride longer than a column.
                    if let Some(multi) = t.vec_dot_multi {
                        let stride = ab + 5;
                        let mut ys = vec![0u8; n * stride];
                        for j in 0..n {
                            ys[j * stride..j * stride + ab]
                                .copy_from_slice(&xq[j * ab..(j + 1) * ab]);
                        }
                        // Every row at once, and rows 2..5 (a tile, then an odd row).
                        let rb = row_bytes(ty, cols).unwrap();
                        for (a, b) in [(0, c.rows), (2, 5)] {
                            let mut out = vec![f32::NAN; (b - a) * n];
                            multi(cols, &c.w[a * rb..b * rb], b - a, &ys, stride, &mut out);
                            let tile: Vec<f32> = (a..b)
                                .flat_map(|r| (0..n).map(move |j| (r, j)))
                                .map(|(r, j)| want[j * c.rows + r])
                                .collect();
                            assert_bits("vec_dot_multi", &c, tier, &out, &tile);
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= supported_types().count() * COLS.len() * NS.len());
}

/// The formats of the project's models have a multi-column kernel on the x86 tiers.
#[cfg(target_arch = "x86_64")]
#[test]
fn model_formats_have_multi_column_kernels() {
    use GgmlType::*;
    for (tier, formats) in [
        (Tier::Avx2, &[Q8_0, Q4_1, Q4_K, Q6_K, Q5_0][..]),
        (Tier::Avx512, &[Q8_0, Q4_1, Q5_0, Q4_K, Q6_K][..]),
    ] {
        if !tier.is_supported() {
            continue;
        }
        for &ty in formats {
            let t = type_traits_for(tier, ty).unwrap();
            assert!(t.vec_dot_multi.is_some(), "{ty} on {tier}");
        }
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let ty = GgmlType::Q4_1;
    let (rows, cols) = (4, 64);
    let rb = row_bytes(ty, cols).unwrap();
    let w = vec![0u8; rows * rb];
    let x = vec![0.5f32; 2 * cols];
    let need = matmat_scratch_bytes(ty, cols, 2).unwrap();
    let mut scratch = vec![0u8; need];
    let mut y = vec![0f32; 2 * rows];

    // Weights one byte short, columns not whole blocks, unsupported type.
    assert!(matches!(
        matvec(
            ty,
            &w[1..],
            rows,
            cols,
            &x[..cols],
            &mut scratch,
            &mut y[..rows]
        ),
        Err(QuantError::LengthMismatch { what: "w", .. })
    ));
    assert!(matches!(
        WeightMatrix::new(ty, &w, rows, cols + 1),
        Err(QuantError::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        WeightMatrix::new(GgmlType::Q8_K, &w, rows, cols),
        Err(QuantError::Unsupported { .. }) | Err(QuantError::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        WeightMatrix::new(GgmlType::I8, &w, rows, cols),
        Err(QuantError::Unsupported { .. })
    ));

    // Activations, outputs and scratch of the wrong size.
    let m = WeightMatrix::new(ty, &w, rows, cols).unwrap();
    assert!(m.matmat(2, &x[1..], &mut scratch, &mut y).is_err());
    assert!(m.matmat(2, &x, &mut scratch, &mut y[1..]).is_err());
    assert!(matches!(
        m.matmat(2, &x, &mut scratch[1..], &mut y),
        Err(QuantError::LengthMismatch {
            what: "scratch",
            ..
        })
    ));
    assert!(matmat(ty, &w, rows, cols, 2, &x, &mut scratch, &mut y).is_ok());
    assert!(m.matvec(&x, &mut scratch, &mut y[..rows]).is_err());

    // Row ranges outside the matrix, outputs and strides too short, quantized input too short.
    let xq = &scratch[..need];
    assert!(matches!(
        m.matmat_rows(2, xq, 2..5, &mut y, rows),
        Err(QuantError::RowRange {
            start: 2,
            end: 5,
            rows: 4
        })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 3..1;
    assert!(m.matmat_rows(2, xq, backwards, &mut y, rows).is_err());
    assert!(m.matmat_rows(2, xq, 0..4, &mut y, 3).is_err());
    assert!(m.matmat_rows(2, xq, 0..4, &mut y[..7], 4).is_err());
    assert!(m.matmat_rows(2, &xq[1..], 0..4, &mut y, 4).is_err());
    assert!(m.matmat_rows(2, xq, 0..4, &mut y, 4).is_ok());
    assert!(m.matvec_rows(&xq[..need / 2], 1..3, &mut y[..3]).is_err());
    assert!(m.matvec_rows(&xq[..need / 2], 1..3, &mut y[..2]).is_ok());
    // Nothing to do is fine.
    assert!(m.matmat_rows(0, &[], 0..4, &mut [], 0).is_ok());
    assert!(m.matvec_rows(&xq[..need / 2], 2..2, &mut []).is_ok());

    // Sizes that overflow are errors too.
    assert!(matches!(
        WeightMatrix::new(ty, &w, usize::MAX / 2, cols),
        Err(QuantError::LengthMismatch { what: "w", .. })
    ));
    assert!(m.scratch_bytes(usize::MAX).is_err());
}

/// Rows of no weights are empty sums, with and without a multi-column kernel.
#[test]
fn zero_columns_give_zero() {
    for ty in [GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_1] {
        let m = WeightMatrix::new(ty, &[], 3, 0).unwrap();
        assert_eq!(m.scratch_bytes(5).unwrap(), 0);
        let mut y = [f32::NAN; 15];
        m.matmat(5, &[], &mut [], &mut y).unwrap();
        assert!(y.iter().all(|v| *v == 0.0), "{ty}: {y:?}");
    }
}
