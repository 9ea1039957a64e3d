//! Row-interleaved Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K
//! (`eddy_quant::interleaved`): the reference product on the interleaved layout is, bit for bit,
//! the format's panel reference on the same rows and column (so decoding on it and batched
//! prefill agree), and every tier's SIMD product is the reference bit for bit: quantized and raw
//! rows (f16 scales of every size), partial groups, rows of more blocks than one pass of the
//! column corrections takes, extreme activation scales. Panels packed from a group are the rows'
//! own panels, and rows read back from the layout are the rows.

mod common;
#[path = "common/panel.rs"]
mod panel_common;

use common::Rng;
use eddy_quant::dispatch::Tier;
use eddy_quant::interleaved::{
    GROUP_ROWS, InterleavedKernels, interleave, interleaved_bytes, kernels_for, reference_kernels,
    row_of,
};
use eddy_quant::panel::{PANEL_ROWS, panel_kernels_reference};
use eddy_quant::{GgmlType, row_bytes};
use panel_common::{prepared, quantized_rows, same};

const FORMATS: [GgmlType; 8] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// f16 fields per block of `ty`: `d`, or `d` and `m` (`dmin`).
fn fields(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => 2,
        _ => 1,
    }
}

/// Offset of a block's first f16 field (`d`; `m` or `dmin` follows it).
fn d_at(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q6_K => 208,
        _ => 0,
    }
}

/// Weights per block of `ty`: 32, or a k-quant's super-block of 256.
fn wb(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => 256,
        _ => 32,
    }
}

/// Rows of random bytes of `ty` with finite f16 scales of every size (up to 65504, and
/// subnormals).
fn raw_rows(ty: GgmlType, rng: &mut Rng, rows: usize, n: usize) -> Vec<u8> {
    let bb = row_bytes(ty, wb(ty)).unwrap();
    let mut w: Vec<u8> = (0..rows * n / wb(ty) * bb).map(|_| rng.byte()).collect();
    for (i, blk) in w.chunks_exact_mut(bb).enumerate() {
        let scale = [65504.0, 1.0, 6e-8, 1e-3][i % 4];
        let at = d_at(ty);
        blk[at..at + 2].copy_from_slice(&rng.f16(scale));
        if fields(ty) == 2 {
            let m = [1e-3, 65504.0, 1.0, 6e-8][i % 4];
            blk[at + 2..at + 4].copy_from_slice(&rng.f16(m));
        }
    }
    w
}

/// One column of `n` values (normal times `scale`, with large ones) prepared for the panels of
/// `ty` (Q8_0's quants and scales for the 32-weight formats, Q8_K for the k-quants).
fn column(ty: GgmlType, rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    prepared(panel_kernels_reference(ty).unwrap(), rng, 1, n, scale)
}

fn interleaved(ty: GgmlType, n: usize, w: &[u8], rows: usize) -> Vec<u8> {
    let mut out = vec![0xa5; interleaved_bytes(ty, rows, n).unwrap()];
    interleave(ty, n, w, rows, &mut out);
    out
}

/// The SIMD kernels of `ty` on this CPU.
fn tiers(ty: GgmlType) -> Vec<(Tier, &'static InterleavedKernels)> {
    Tier::ALL
        .into_iter()
        .filter_map(|t| kernels_for(t, ty).map(|k| (t, k)))
        .collect()
}

#[test]
fn sizes_are_whole_groups_of_the_rows_bytes() {
    let q4_0 = |rows, n| interleaved_bytes(GgmlType::Q4_0, rows, n);
    assert_eq!(q4_0(16, 64), Some(2 * 18 * 16));
    assert_eq!(q4_0(17, 64), Some(2 * 2 * 18 * 16));
    assert_eq!(q4_0(1, 32), Some(18 * 16));
    assert_eq!(q4_0(0, 32), Some(0));
    assert_eq!(q4_0(16, 33), None);
    assert_eq!(q4_0(usize::MAX, 64), None);
    assert_eq!(interleaved_bytes(GgmlType::Q2_K, 16, 256), None);
    assert_eq!(interleaved_bytes(GgmlType::Q4_K, 16, 128), None);
    for ty in FORMATS {
        let bb = row_bytes(ty, wb(ty)).unwrap();
        assert_eq!(
            interleaved_bytes(ty, 17, 2 * wb(ty)),
            Some(2 * 2 * bb * 16),
            "{ty}"
        );
        let here: Vec<&str> = tiers(ty).iter().map(|(t, _)| t.name()).collect();
        eprintln!("interleaved {ty} tiers here: {here:?}");
        #[cfg(target_arch = "x86_64")]
        if Tier::Avx512.is_supported() {
            assert!(here.contains(&"avx512"));
        }
    }
}

/// The reference on the interleaved layout equals the format's panel reference bit for bit,
/// panel by panel (16 rows), with a partial last panel.
#[test]
fn reference_is_the_panel_product() {
    let mut rng = Rng(41);
    for ty in FORMATS {
        let panel = panel_kernels_reference(ty).unwrap();
        let reference = reference_kernels(ty).unwrap();
        for nb in [1usize, 3, 28] {
            let n = nb * wb(ty);
            let rb = row_bytes(ty, n).unwrap();
            for (rows, raw, scale) in [
                (16, false, 1.0),
                (5, true, 1.0),
                (40, true, 1e4),
                (21, false, 1e-6),
            ] {
                let w = if raw {
                    raw_rows(ty, &mut rng, rows, n)
                } else {
                    quantized_rows(ty, &mut rng, rows, n)
                };
                let y = column(ty, &mut rng, n, scale);
                let mut got = vec![f32::NAN; rows];
                (reference.matvec)(n, &interleaved(ty, n, &w, rows), &y, &mut got);
                for r0 in (0..rows).step_by(PANEL_ROWS) {
                    let in_panel = (rows - r0).min(PANEL_ROWS);
                    let mut p = vec![0u8; (panel.panel_bytes)(n)];
                    (panel.pack)(n, &w[r0 * rb..][..in_panel * rb], in_panel, &mut p);
                    let mut want = vec![0f32; PANEL_ROWS];
                    (panel.run)(n, &p, &y, y.len(), &mut want);
                    for r in 0..in_panel {
                        assert!(
                            same(got[r0 + r], want[r]),
                            "{ty}: nb {nb} rows {rows} raw {raw} scale {scale} row {}: {:e} vs \
                             {:e}",
                            r0 + r,
                            got[r0 + r],
                            want[r]
                        );
                    }
                }
            }
        }
    }
}

/// Every tier's product equals the reference bit for bit, including rows of 300 blocks (more
/// than one pass of the column corrections) and every partial last group.
#[test]
fn simd_products_equal_the_reference() {
    let mut rng = Rng(42);
    let mut checked = 0;
    for ty in FORMATS {
        let reference = reference_kernels(ty).unwrap();
        for (tier, ik) in tiers(ty) {
            for nb in [1usize, 2, 28, 300] {
                if wb(ty) == 256 && nb == 300 {
                    continue;
                }
                let n = nb * wb(ty);
                let row_counts: &[usize] = if nb == 300 {
                    &[16, 33]
                } else {
                    &[1, 7, 16, 17, 31, 48]
                };
                for &rows in row_counts {
                    for (raw, scale) in [(false, 1.0), (true, 1.0), (true, 1e4), (false, 1e-6)] {
                        let w = if raw {
                            raw_rows(ty, &mut rng, rows, n)
                        } else {
                            quantized_rows(ty, &mut rng, rows, n)
                        };
                        let x = interleaved(ty, n, &w, rows);
                        let y = column(ty, &mut rng, n, scale);
                        let mut want = vec![0f32; rows];
                        (reference.matvec)(n, &x, &y, &mut want);
                        // One element past the rows, to catch a store beyond them.
                        let mut got = vec![f32::NAN; rows + 1];
                        got[rows] = 7.0;
                        (ik.matvec)(n, &x, &y, &mut got[..rows]);
                        assert_eq!(got[rows], 7.0, "{ty} {tier}: wrote past the rows");
                        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                same(*g, *w),
                                "{ty} {tier}: nb {nb} rows {rows} raw {raw} scale {scale} row \
                                 {r}: {g:e} vs {w:e}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} interleaved products checked");
}

/// A group's padding rows are zero, the rows' bytes are all there (interleaving the rows of two
/// groups separately gives the two halves of interleaving them at once), and each row reads
/// back as it was.
#[test]
fn groups_are_independent_padded_with_zeros_and_read_back() {
    let mut rng = Rng(43);
    for ty in FORMATS {
        let n = 3 * wb(ty);
        let rb = row_bytes(ty, n).unwrap();
        let gb = interleaved_bytes(ty, 1, wb(ty)).unwrap();
        let w = raw_rows(ty, &mut rng, 2 * GROUP_ROWS, n);
        let both = interleaved(ty, n, &w, 2 * GROUP_ROWS);
        let first = interleaved(ty, n, &w[..GROUP_ROWS * rb], GROUP_ROWS);
        let second = interleaved(ty, n, &w[GROUP_ROWS * rb..], GROUP_ROWS);
        assert_eq!(both, [first, second].concat(), "{ty}");
        for r in 0..2 * GROUP_ROWS {
            let mut row = vec![0u8; rb];
            row_of(ty, n, &both, r, &mut row);
            assert_eq!(row, w[r * rb..][..rb], "{ty} row {r}");
        }
        let three = interleaved(ty, n, &w[..3 * rb], 3);
        let f = 32 * fields(ty);
        for blk in three.chunks_exact(gb) {
            for field in blk[..f].chunks_exact(32) {
                assert!(field[6..].iter().all(|&b| b == 0), "{ty}: padding scales");
            }
            for v in blk[f..].chunks_exact(64) {
                assert!(v[12..].iter().all(|&b| b == 0), "{ty}: padding quants");
            }
        }
    }
}

/// A panel packed from an interleaved group is, byte for byte, the panel packed from the rows,
/// by the reference and by every tier this CPU has that serves interleaved products.
#[test]
fn panels_pack_from_a_group_as_from_the_rows() {
    let mut rng = Rng(44);
    for ty in FORMATS {
        let panel = panel_kernels_reference(ty).unwrap();
        let reference = reference_kernels(ty).unwrap();
        for nb in [1usize, 5] {
            let n = nb * wb(ty);
            let rb = row_bytes(ty, n).unwrap();
            for rows in [1usize, 6, 16] {
                // A full group, of which the first `rows` rows are packed: the others must not
                // leak into the panel.
                let w = raw_rows(ty, &mut rng, GROUP_ROWS, n);
                let x = interleaved(ty, n, &w, GROUP_ROWS);
                let mut want = vec![0xa5; (panel.panel_bytes)(n)];
                (panel.pack)(n, &w[..rows * rb], rows, &mut want);
                let mut got = vec![0x5a; want.len()];
                (reference.pack)(n, &x, rows, &mut got);
                assert_eq!(got, want, "{ty}: nb {nb} rows {rows}");
                for (tier, ik) in tiers(ty) {
                    let k = eddy_quant::panel::panel_kernels_for(tier, ty).unwrap();
                    let mut tier_pack = vec![0x33; want.len()];
                    (k.pack)(n, &w[..rows * rb], rows, &mut tier_pack);
                    assert_eq!(want, tier_pack, "{ty} {tier}: nb {nb} rows {rows}");
                    let mut from_group = vec![0x77; want.len()];
                    (ik.pack)(n, &x, rows, &mut from_group);
                    assert_eq!(
                        want, from_group,
                        "{ty} {tier}: packed from the group, nb {nb} rows {rows}"
                    );
                }
            }
        }
    }
}

/// The largest sums: every value at its top (and, for the 4- and 5-bit formats, its bottom)
/// against activation quants of −128 and 127, on rows of many blocks: each tier equals the
/// reference (an i16 sum that overflowed would not).
#[test]
fn extreme_sums_equal_the_reference() {
    let mut checked = 0;
    for ty in FORMATS {
        let reference = reference_kernels(ty).unwrap();
        let (nb, rows) = (if wb(ty) == 256 { 6 } else { 40usize }, 19usize);
        let n = nb * wb(ty);
        let bb = row_bytes(ty, wb(ty)).unwrap();
        for fill in [0xffu8, 0x00, 0x80, 0x7f] {
            let mut w = vec![fill; rows * nb * bb];
            for blk in w.chunks_exact_mut(bb) {
                let at = d_at(ty);
                blk[at..at + 2].copy_from_slice(&[0x00, 0x3c]); // d = 1
                if fields(ty) == 2 {
                    blk[at + 2..at + 4].copy_from_slice(&[0x00, 0xbc]); // m = -1
                }
            }
            let x = interleaved(ty, n, &w, rows);
            for q_y in [0x80u8, 0x7f] {
                let y = extreme_column(ty, nb, q_y);
                let mut want = vec![0f32; rows];
                (reference.matvec)(n, &x, &y, &mut want);
                for (tier, ik) in tiers(ty) {
                    let mut got = vec![f32::NAN; rows];
                    (ik.matvec)(n, &x, &y, &mut got);
                    assert_eq!(got, want, "{ty} {tier}: fill {fill:#x}, q_y {q_y:#x}");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} extreme products checked");
}

/// `nb` blocks of a column prepared for `ty` whose quants are all `q_y`: Q8_0 blocks with
/// `d_y = 1` and the sum field −1, or Q8_K blocks with `d_y = 1` and their true 16-quant sums.
fn extreme_column(ty: GgmlType, nb: usize, q_y: u8) -> Vec<u8> {
    if wb(ty) == 256 {
        let mut y = Vec::new();
        for _ in 0..nb {
            y.extend_from_slice(&1f32.to_le_bytes());
            y.extend(std::iter::repeat_n(q_y, 256));
            let bsum = 16 * i16::from(q_y as i8);
            for _ in 0..16 {
                y.extend_from_slice(&bsum.to_le_bytes());
            }
        }
        return y;
    }
    let mut y = vec![q_y; nb * 40];
    for blk in y.chunks_exact_mut(40) {
        blk[32..36].copy_from_slice(&1f32.to_le_bytes());
        blk[36..40].copy_from_slice(&(-1f32).to_le_bytes());
    }
    y
}

#[test]
#[should_panic(expected = "interleaved rows")]
fn a_short_matrix_is_refused() {
    let w = vec![0u8; 288];
    let y = vec![0u8; 2 * 40];
    let mut out = [0f32; 1];
    eddy_quant::interleaved::matvec_q4_0_reference(64, &w, &y, &mut out);
}
