//! Row-interleaved Q4_0 (`eddy_quant::interleaved`): the reference product on the interleaved
//! layout is, bit for bit, the Q4_0 panel reference on the same rows and column (so decoding
//! on it and batched prefill agree), and every tier's SIMD product is the reference bit for
//! bit: quantized and raw rows (f16 scales of every size), partial groups, rows of more blocks
//! than one pass of the column corrections takes, extreme activation scales.

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::dispatch::Tier;
use eddy_quant::interleaved::{
    GROUP_ROWS, InterleavedKernels, interleave_q4_0, interleaved_q4_0_bytes, matvec_q4_0_reference,
    pack_q4_0_panel, q4_0_kernels_for,
};
use eddy_quant::panel::{PANEL_ROWS, panel_kernels_reference};
use eddy_quant::{GgmlType, row_bytes};
use panel_common::{prepared, quantized_rows, same};

const Q4_0: GgmlType = GgmlType::Q4_0;

/// Rows of random bytes with finite f16 scales of every size (up to 65504, and subnormals).
fn raw_rows(rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..rows * n / 32 * 18).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(18).enumerate() {
        let scale = [65504.0, 1.0, 6e-8, 1e-3][i % 4];
        blk[..2].copy_from_slice(&rng.f16(scale));
    }
    w
}

/// One column of `n` values (normal times `scale`, with large ones) prepared for Q4_0's panels.
fn column(rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    prepared(panel_kernels_reference(Q4_0).unwrap(), rng, 1, n, scale)
}

fn interleaved(n: usize, w: &[u8], rows: usize) -> Vec<u8> {
    let mut out = vec![0xa5; interleaved_q4_0_bytes(rows, n).unwrap()];
    interleave_q4_0(n, w, rows, &mut out);
    out
}

/// The SIMD kernels of this CPU.
fn tiers() -> Vec<(Tier, &'static InterleavedKernels)> {
    Tier::ALL
        .into_iter()
        .filter_map(|t| q4_0_kernels_for(t).map(|k| (t, k)))
        .collect()
}

#[test]
fn sizes_are_whole_groups_of_the_rows_bytes() {
    assert_eq!(interleaved_q4_0_bytes(16, 64), Some(2 * 18 * 16));
    assert_eq!(interleaved_q4_0_bytes(17, 64), Some(2 * 2 * 18 * 16));
    assert_eq!(interleaved_q4_0_bytes(1, 32), Some(18 * 16));
    assert_eq!(interleaved_q4_0_bytes(0, 32), Some(0));
    assert_eq!(interleaved_q4_0_bytes(16, 33), None);
    assert_eq!(interleaved_q4_0_bytes(usize::MAX, 64), None);
    let here: Vec<&str> = tiers().iter().map(|(t, _)| t.name()).collect();
    eprintln!("interleaved Q4_0 tiers here: {here:?}");
    #[cfg(target_arch = "x86_64")]
    if Tier::Avx512.is_supported() {
        assert!(here.contains(&"avx512"));
    }
}

/// The reference on the interleaved layout equals the Q4_0 panel reference bit for bit, panel
/// by panel (16 rows), with a partial last panel.
#[test]
fn reference_is_the_panel_product() {
    let mut rng = Rng(41);
    let panel = panel_kernels_reference(Q4_0).unwrap();
    for nb in [1usize, 3, 28] {
        let n = nb * 32;
        let rb = row_bytes(Q4_0, n).unwrap();
        for (rows, raw, scale) in [
            (16, false, 1.0),
            (5, true, 1.0),
            (40, true, 1e4),
            (21, false, 1e-6),
        ] {
            let w = if raw {
                raw_rows(&mut rng, rows, n)
            } else {
                quantized_rows(Q4_0, &mut rng, rows, n)
            };
            let y = column(&mut rng, n, scale);
            let mut got = vec![f32::NAN; rows];
            matvec_q4_0_reference(n, &interleaved(n, &w, rows), &y, &mut got);
            for r0 in (0..rows).step_by(PANEL_ROWS) {
                let in_panel = (rows - r0).min(PANEL_ROWS);
                let mut p = vec![0u8; (panel.panel_bytes)(n)];
                (panel.pack)(n, &w[r0 * rb..][..in_panel * rb], in_panel, &mut p);
                let mut want = vec![0f32; PANEL_ROWS];
                (panel.run)(n, &p, &y, y.len(), &mut want);
                for r in 0..in_panel {
                    assert!(
                        same(got[r0 + r], want[r]),
                        "nb {nb} rows {rows} raw {raw} scale {scale} row {}: {:e} vs {:e}",
                        r0 + r,
                        got[r0 + r],
                        want[r]
                    );
                }
            }
        }
    }
}

/// Every tier's product equals the reference bit for bit, including rows of 300 blocks (more
/// than one pass of the AVX-512 kernel's column corrections) and every partial last group.
#[test]
fn simd_products_equal_the_reference() {
    let mut rng = Rng(42);
    let mut checked = 0;
    for (tier, ik) in tiers() {
        for nb in [1usize, 2, 28, 300] {
            let n = nb * 32;
            let row_counts: &[usize] = if nb == 300 {
                &[16, 33]
            } else {
                &[1, 7, 16, 17, 31, 48]
            };
            for &rows in row_counts {
                for (raw, scale) in [(false, 1.0), (true, 1.0), (true, 1e4), (false, 1e-6)] {
                    let w = if raw {
                        raw_rows(&mut rng, rows, n)
                    } else {
                        quantized_rows(Q4_0, &mut rng, rows, n)
                    };
                    let x = interleaved(n, &w, rows);
                    let y = column(&mut rng, n, scale);
                    let mut want = vec![0f32; rows];
                    matvec_q4_0_reference(n, &x, &y, &mut want);
                    // One element past the rows, to catch a store beyond them.
                    let mut got = vec![f32::NAN; rows + 1];
                    got[rows] = 7.0;
                    (ik.matvec)(n, &x, &y, &mut got[..rows]);
                    assert_eq!(got[rows], 7.0, "{tier}: wrote past the rows");
                    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            same(*g, *w),
                            "{tier}: nb {nb} rows {rows} raw {raw} scale {scale} row {r}: \
                             {g:e} vs {w:e}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} interleaved products checked");
}

/// A group's padding rows are zero, and the rows' bytes are all there: interleaving the rows
/// of two groups separately gives the two halves of interleaving them at once.
#[test]
fn groups_are_independent_and_padded_with_zeros() {
    let mut rng = Rng(43);
    let n = 96;
    let rb = row_bytes(Q4_0, n).unwrap();
    let w = raw_rows(&mut rng, 2 * GROUP_ROWS, n);
    let both = interleaved(n, &w, 2 * GROUP_ROWS);
    let first = interleaved(n, &w[..GROUP_ROWS * rb], GROUP_ROWS);
    let second = interleaved(n, &w[GROUP_ROWS * rb..], GROUP_ROWS);
    assert_eq!(both, [first, second].concat());
    let three = interleaved(n, &w[..3 * rb], 3);
    let mut out = [0f32; 3];
    matvec_q4_0_reference(n, &three, &column(&mut rng, n, 1.0), &mut out);
    for blk in three.chunks_exact(288) {
        assert!(blk[6..32].iter().all(|&b| b == 0), "padding scales");
        for k in 0..4 {
            assert!(
                blk[32 + 64 * k + 12..32 + 64 * (k + 1)]
                    .iter()
                    .all(|&b| b == 0)
            );
        }
    }
}

/// A panel packed from an interleaved group is, byte for byte, the Q4_0 panel packed from the
/// rows, by the reference and by every tier this CPU has that serves interleaved products.
#[test]
fn panels_pack_from_a_group_as_from_the_rows() {
    let mut rng = Rng(44);
    let reference = panel_kernels_reference(Q4_0).unwrap();
    for nb in [1usize, 5] {
        let n = nb * 32;
        let rb = row_bytes(Q4_0, n).unwrap();
        for rows in [1usize, 6, 16] {
            // A full group, of which the first `rows` rows are packed: the others must not
            // leak into the panel.
            let w = raw_rows(&mut rng, GROUP_ROWS, n);
            let x = interleaved(n, &w, GROUP_ROWS);
            let mut got = vec![0x5a; (reference.panel_bytes)(n)];
            pack_q4_0_panel(n, &x, rows, &mut got);
            let mut want = vec![0xa5; got.len()];
            (reference.pack)(n, &w[..rows * rb], rows, &mut want);
            assert_eq!(got, want, "nb {nb} rows {rows}");
            for (tier, ik) in tiers() {
                let k = eddy_quant::panel::panel_kernels_for(tier, Q4_0).unwrap();
                let mut tier_pack = vec![0x33; got.len()];
                (k.pack)(n, &w[..rows * rb], rows, &mut tier_pack);
                assert_eq!(got, tier_pack, "{tier}: nb {nb} rows {rows}");
                let mut from_group = vec![0x77; got.len()];
                (ik.pack)(n, &x, rows, &mut from_group);
                assert_eq!(
                    got, from_group,
                    "{tier}: packed from the group, nb {nb} rows {rows}"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "interleaved rows")]
fn a_short_matrix_is_refused() {
    let w = vec![0u8; 288];
    let y = vec![0u8; 2 * 40];
    let mut out = [0f32; 1];
    matvec_q4_0_reference(64, &w, &y, &mut out);
}
