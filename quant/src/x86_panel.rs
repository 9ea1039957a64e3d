//! AVX-512 VNNI panel kernels (see [`crate::panel`] for the layout and the arithmetic they
//! reproduce bit for bit).
//!
//! Like the other SIMD kernels these are `unsafe fn`s with `#[target_feature]`, reached only
//! through the safe `_bytes` wrappers, which check every length first and are handed out by
//! [`crate::panel::panel_kernels_for`] only when the CPU supports the tier.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::GgmlType;
use crate::legacy::BlockQ5_1;
use crate::num::{f16_to_f32, f32_to_f16};
use crate::panel::{
    COL_BLOCK, K_BLOCK, K_COL_BLOCK, K_COL_BSUM, K_COL_Q, K_D, K_MIN, K_NEG_M, K_SC, PANEL_BLOCK,
    PANEL_ROWS, SIGNED_D, SIGNED_SUM, check_k_run, check_pack, check_pack_of, check_prepare,
    check_run, q5_1_unpack, q8_1_prepare_block,
};
use crate::traits::blocks;

/// A safe wrapper of a panel product kernel `$kernel::<C>`: checks the lengths, then runs the
/// columns `$max` at a time, the last ones in one smaller group (the sizes listed, else 1).
macro_rules! run_columns {
    ($name:ident, $kernel:ident, $doc:literal, $max:expr, [$($c:literal),*]) => {
        run_columns!($name, $kernel, $doc, $max, [$($c),*], check_run, COL_BLOCK);
    };
    (
        $name:ident, $kernel:ident, $doc:literal, $max:expr, [$($c:literal),*],
        $check:ident, $col_block:expr
    ) => {
        #[doc = $doc]
        pub(crate) fn $name(n: usize, panel: &[u8], ys: &[u8], y_stride: usize, out: &mut [f32]) {
            let (nb, cols) = $check(n, panel, ys, y_stride, out);
            let col = |j: usize| &ys[j * y_stride..][..nb * $col_block];
            let mut j = 0;
            while j < cols {
                let k = (cols - j).min($max);
                let out = &mut out[j * PANEL_ROWS..][..k * PANEL_ROWS];
                match k {
                    $(
                        // SAFETY: panel and column lengths were checked by `check_run` and
                        // `out` holds `$c` columns; this wrapper is handed out only for a CPU
                        // that supports the kernel's tier.
                        $c => unsafe {
                            $kernel::<$c>(nb, panel, core::array::from_fn(|c| col(j + c)), out)
                        },
                    )*
                    // SAFETY: as above, for one column.
                    _ => unsafe { $kernel::<1>(nb, panel, [col(j)], out) },
                }
                j += k;
            }
        }
    };
}

/// Packs `rows` Q4_1 rows of `nb` blocks (`x`, `nb * 20` bytes apart) into `panel`: per block,
/// the 16 quant bytes of each row loaded four rows to a register, the 16 × 4 dwords transposed
/// with `vpermt2d` so that vector `j` holds dword `j` of every row, split into low and high
/// nibbles; `d` and `m` of the 16 rows gathered and widened to f32.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C. `x` must hold `rows`
/// rows of `nb` 20-byte blocks, `rows` must be 1 to 16, `rows * nb * 20` must fit an `i32`, and
/// `panel` must hold `nb * PANEL_BLOCK` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_1_pack(nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let row_bytes = nb * 20;
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(row_bytes as i32),
    );
    let mask: __mmask16 = ((1u32 << rows) - 1) as u16;
    let zero = _mm512_setzero_si512();
    let nibbles = _mm512_set1_epi8(0x0f);
    // Register g holds rows 4g..4g + 4, row 4g + i in lanes 4i..4i + 4 (its dwords 0..4).
    // Dword j of row r sits in register r / 4 at lane 4 (r % 4) + j: `vpermt2d` picks it from a
    // pair of registers (index bit 4 chooses the second), the low eight rows from registers 0
    // and 1, the high eight from 2 and 3.
    let pick = |j: i32| {
        _mm512_setr_epi32(
            j,
            4 + j,
            8 + j,
            12 + j,
            16 + j,
            20 + j,
            24 + j,
            28 + j,
            j,
            4 + j,
            8 + j,
            12 + j,
            16 + j,
            20 + j,
            24 + j,
            28 + j,
        )
    };
    let picks = [pick(0), pick(1), pick(2), pick(3)];
    for b in 0..nb {
        let out = panel[b * PANEL_BLOCK..][..PANEL_BLOCK].as_mut_ptr();
        // SAFETY: row r < rows is read at `r * row_bytes + b * 20 + 4..+ 16`, inside its block
        // b; rows at or beyond `rows` are not read (zero registers and masked gather lanes).
        // The stores write the 640 bytes of this block's part of `panel`.
        unsafe {
            let base = x.as_ptr().add(b * 20);
            let dm = _mm512_mask_i32gather_epi32::<1>(zero, mask, idx, base.cast());
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            let m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(dm)));
            let qs = |r: usize| {
                if r < rows {
                    _mm_loadu_si128(base.add(r * row_bytes + 4).cast())
                } else {
                    _mm_setzero_si128()
                }
            };
            let g: [__m512i; 4] = core::array::from_fn(|g| {
                let lo = _mm256_set_m128i(qs(4 * g + 1), qs(4 * g));
                let hi = _mm256_set_m128i(qs(4 * g + 3), qs(4 * g + 2));
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
            });
            for (j, idx_j) in picks.iter().enumerate() {
                let low8 = _mm512_permutex2var_epi32(g[0], *idx_j, g[1]);
                let high8 = _mm512_permutex2var_epi32(g[2], *idx_j, g[3]);
                let q = _mm512_mask_blend_epi32(0xff00, low8, high8);
                let lo = _mm512_and_si512(q, nibbles);
                let hi = _mm512_and_si512(_mm512_srli_epi32::<4>(q), nibbles);
                _mm512_storeu_si512(out.add(64 * j).cast(), lo);
                _mm512_storeu_si512(out.add(64 * (j + 4)).cast(), hi);
            }
            _mm512_storeu_ps(out.add(512).cast(), d);
            _mm512_storeu_ps(out.add(576).cast(), m);
        }
    }
}

/// Safe wrapper of the AVX-512 Q4_1 packing.
pub(crate) fn q4_1_pack_avx512_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack(n, x, rows, panel);
    assert!(
        x.len() <= i32::MAX as usize,
        "rows too long for 32-bit gather offsets"
    );
    // SAFETY: lengths were checked above; this wrapper is handed out only for a CPU that
    // supports the AVX-512 tier.
    unsafe { q4_1_pack(nb, x, rows, panel) }
}

/// `C` prepared columns (`ys[c]`, `nb` blocks of [`COL_BLOCK`] bytes each) times a Q4_1 panel,
/// into `out[c * 16 + r]`:
/// per block, eight `vpdpbusd` per column (quants of the 16 rows × four activation bytes
/// broadcast), then `acc = fma(f32(isum), d_x·d_y, acc)` and `acc = fma(m_x, s_y, acc)`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `panel` must hold
/// `nb * PANEL_BLOCK` bytes and each `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_1_run<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            let mut isum = [_mm512_setzero_si512(); C];
            for k in 0..8 {
                let w = _mm512_loadu_si512(p.add(64 * k).cast());
                for c in 0..C {
                    let yk = _mm512_set1_epi32(y[c].add(4 * k).cast::<i32>().read_unaligned());
                    isum[c] = _mm512_dpbusd_epi32(isum[c], w, yk);
                }
            }
            let dx = _mm512_loadu_ps(p.add(512).cast());
            let mx = _mm512_loadu_ps(p.add(576).cast());
            for c in 0..C {
                let dy = _mm512_set1_ps(y[c].add(32).cast::<f32>().read_unaligned());
                let sy = _mm512_set1_ps(y[c].add(36).cast::<f32>().read_unaligned());
                acc[c] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dx, dy), acc[c]);
                acc[c] = _mm512_fmadd_ps(mx, sy, acc[c]);
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *v) };
    }
}

/// Columns per call of [`q4_1_run`] (its registers: `C` accumulators, `C` integer sums).
const GROUP: usize = 8;

run_columns!(
    q4_1_run_avx512_bytes,
    q4_1_run,
    "Safe wrapper of the AVX-512 Q4_1 panel product: columns eight at a time, the last ones in one smaller group.",
    GROUP,
    [8, 7, 6, 5, 4, 3, 2]
);

/// Prepares a column for the Q4_1 panel kernels, as [`crate::panel`]'s reference does: per block,
/// the absolute maximum, quants `round_even(x · 127/max)` saturated to i8 (`vpmovsdb`), their sum
/// for `s`, and `d`, `s` rounded to f16 and widened back. Blocks holding a NaN go through the
/// reference code.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `x` must be whole blocks
/// and `out` their prepared bytes (checked by the wrapper).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_1_prepare(x: &[f32], out: &mut [u8]) {
    let lo = _mm512_set1_epi32(-128);
    let hi = _mm512_set1_epi32(127);
    for (src, dst) in x.chunks_exact(32).zip(out.chunks_exact_mut(COL_BLOCK)) {
        // SAFETY: `src` holds 32 f32 and `dst` 40 bytes; unaligned loads and stores.
        unsafe {
            let a = _mm512_loadu_ps(src.as_ptr());
            let b = _mm512_loadu_ps(src.as_ptr().add(16));
            if _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b)
                != 0
            {
                q8_1_prepare_block(src, dst);
                continue;
            }
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let ids = _mm512_set1_ps(id);
            // Rounds to nearest even (the default MXCSR mode); NaN products (an infinite
            // maximum) become i32::MIN, which saturates to -128 as in the reference.
            let qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, ids));
            let qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, ids));
            _mm_storeu_si128(dst.as_mut_ptr().cast(), _mm512_cvtsepi32_epi8(qa));
            _mm_storeu_si128(dst.as_mut_ptr().add(16).cast(), _mm512_cvtsepi32_epi8(qb));
            let clamp = |q| _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
            let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(clamp(qa), clamp(qb)));
            let dh = f32_to_f16(d);
            let sh = f32_to_f16(d * sum as f32);
            dst[32..36].copy_from_slice(&f16_to_f32(dh).to_le_bytes());
            dst[36..40].copy_from_slice(&f16_to_f32(sh).to_le_bytes());
        }
    }
}

/// Safe wrapper of the AVX-512 column preparation.
pub(crate) fn q8_1_prepare_avx512_bytes(x: &[f32], out: &mut [u8]) {
    check_prepare(x, out);
    // SAFETY: lengths were checked above; this wrapper is handed out only for a CPU that
    // supports the AVX-512 tier.
    unsafe { q8_1_prepare(x, out) }
}

// ---------------------------------------------------------------------------------------------
// AVX2 (with FMA and F16C): the same layout and arithmetic without VNNI.

/// Packs `rows` Q4_1 rows of `nb` blocks into `panel` with SSE2 shuffles: per block and group
/// of four rows, the 16 quant bytes of each row split into low and high nibbles, each 4 × 4
/// dword square transposed (`punpck{l,h}dq`, `punpck{l,h}qdq`) so that vector `j` holds dword
/// `j` of the four rows; `d` and `m` collected and widened to f32 with `vcvtph2ps`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C. `x` must hold `rows` rows of `nb` 20-byte blocks,
/// `rows` must be 1 to 16, and `panel` must hold `nb * PANEL_BLOCK` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_pack_avx2(nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let row_bytes = nb * 20;
    let nibbles = _mm_set1_epi8(0x0f);
    for b in 0..nb {
        let out = panel[b * PANEL_BLOCK..][..PANEL_BLOCK].as_mut_ptr();
        let mut d = [0u16; PANEL_ROWS];
        let mut m = [0u16; PANEL_ROWS];
        for g in 0..PANEL_ROWS / 4 {
            let q: [__m128i; 4] = core::array::from_fn(|i| {
                let r = 4 * g + i;
                if r < rows {
                    let blk = &x[r * row_bytes + b * 20..][..20];
                    d[r] = u16::from_le_bytes([blk[0], blk[1]]);
                    m[r] = u16::from_le_bytes([blk[2], blk[3]]);
                    // SAFETY: `blk[4..20]` holds the 16 quant bytes; unaligned load.
                    unsafe { _mm_loadu_si128(blk[4..].as_ptr().cast()) }
                } else {
                    _mm_setzero_si128()
                }
            });
            let lo = q.map(|v| _mm_and_si128(v, nibbles));
            let hi = q.map(|v| _mm_and_si128(_mm_srli_epi16::<4>(v), nibbles));
            for (half, a) in [lo, hi].iter().enumerate() {
                let v = transpose_dwords(*a);
                for (j, vj) in v.iter().enumerate() {
                    // SAFETY: vector `4 half + j` of this block is `out[64 (4 half + j)..][..64]`,
                    // rows 4g..4g + 4 its bytes `16 g..16 g + 16`, inside the 640-byte block.
                    unsafe { _mm_storeu_si128(out.add(64 * (4 * half + j) + 16 * g).cast(), *vj) };
                }
            }
        }
        // SAFETY: `d` and `m` hold 16 u16 each; the stores write bytes 512..640 of the block.
        unsafe {
            for h in 0..2 {
                let dh = _mm_loadu_si128(d.as_ptr().add(8 * h).cast());
                let mh = _mm_loadu_si128(m.as_ptr().add(8 * h).cast());
                _mm256_storeu_ps(out.add(512 + 32 * h).cast(), _mm256_cvtph_ps(dh));
                _mm256_storeu_ps(out.add(576 + 32 * h).cast(), _mm256_cvtph_ps(mh));
            }
        }
    }
}

/// The 4 × 4 square of dwords `a` transposed: vector `j` of the result holds dword `j` of
/// `a[0]`, `a[1]`, `a[2]`, `a[3]` (`punpck{l,h}dq`, then `punpck{l,h}qdq`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose_dwords(a: [__m128i; 4]) -> [__m128i; 4] {
    let t0 = _mm_unpacklo_epi32(a[0], a[1]);
    let t1 = _mm_unpacklo_epi32(a[2], a[3]);
    let t2 = _mm_unpackhi_epi32(a[0], a[1]);
    let t3 = _mm_unpackhi_epi32(a[2], a[3]);
    [
        _mm_unpacklo_epi64(t0, t1),
        _mm_unpackhi_epi64(t0, t1),
        _mm_unpacklo_epi64(t2, t3),
        _mm_unpackhi_epi64(t2, t3),
    ]
}

/// Stores the values of four rows `4 g..4 g + 4` of a packed block (`u[i]`: the `N` value bytes
/// of row `4 g + i`) where Q4_1's layout keeps them, a dword of 16 rows per 64-byte vector (byte
/// `64 k + 4 r + i` is value `4 k + i` of row `r`), a 4 × 4 square of dwords at a time
/// ([`transpose_dwords`]): `N / 4` 16-byte stores instead of `N` 4-byte ones per four rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_transposed<const N: usize>(u: [&[u8; N]; 4], g: usize, out: &mut [u8]) {
    for c in 0..N / 16 {
        let q: [__m128i; 4] = core::array::from_fn(|i| {
            let src: &[u8; 16] = u[i][16 * c..].first_chunk().expect("16 values");
            // SAFETY: `src` is 16 readable bytes; unaligned load.
            unsafe { _mm_loadu_si128(src.as_ptr().cast()) }
        });
        for (j, vj) in transpose_dwords(q).into_iter().enumerate() {
            // Vector `4 c + j` of the block, rows `4 g..4 g + 4`: its bytes 16 g..16 g + 16.
            let dst: &mut [u8; 16] = out[64 * (4 * c + j) + 16 * g..]
                .first_chunk_mut()
                .expect("inside the block's values");
            // SAFETY: `dst` is 16 writable bytes; unaligned store.
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), vj) };
        }
    }
}

/// Packs `rows` Q5_1 rows into Q4_1's layout with AVX2: the same bytes as the reference
/// packing (`panel::q5_1_pack`). Per block and group of four rows, each row's 32 values are
/// decoded by the portable code (compiled here with AVX2) and `d`, `m` stored as the reference
/// stores them, then the values go out through [`store_transposed`]. The AVX-512 tier packs
/// with this too.
pub(crate) fn q5_1_pack_avx2(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack_of(n, x, rows, panel, size_of::<BlockQ5_1>(), GgmlType::Q5_1);
    // SAFETY: this packing is handed out only for a CPU that supports the AVX2 tier (or the
    // AVX-512 one, which includes AVX2, FMA and F16C); the function checks its own indices.
    unsafe { q5_1_pack_avx2_impl(nb, x, rows, panel) }
}

/// The body of [`q5_1_pack_avx2`].
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_pack_avx2_impl(nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let xb = blocks::<BlockQ5_1>(x);
    let mut u = [[0u8; 32]; 4];
    for (b, out) in panel.chunks_exact_mut(PANEL_BLOCK).enumerate() {
        if rows < PANEL_ROWS {
            out.fill(0);
        }
        for g in 0..rows.div_ceil(4) {
            for (i, ui) in u.iter_mut().enumerate() {
                let r = 4 * g + i;
                *ui = if r < rows {
                    q5_1_unpack(&xb[r * nb + b], r, out)
                } else {
                    [0; 32]
                };
            }
            store_transposed(u.each_ref(), g, out);
        }
    }
}

/// Safe wrapper of the AVX2 Q4_1 packing.
pub(crate) fn q4_1_pack_avx2_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack(n, x, rows, panel);
    // SAFETY: lengths were checked above; this wrapper is handed out only for a CPU that
    // supports the AVX2 tier.
    unsafe { q4_1_pack_avx2(nb, x, rows, panel) }
}

/// `C` prepared columns times a Q4_1 or Q5_1 panel (Q4_1's layout) with AVX2, into
/// `out[c * 16 + r]`. The 16 rows are two halves of eight i32 lanes. Per block and column,
/// `vpmaddubsw` of each half of the eight weight vectors (u8 values) with the four activation
/// bytes broadcast (i8) gives pairs of products in i16, summed over `SPAN` vectors with
/// `vpaddw`, then `vpmaddwd` with ones adds the pairs into the row's i32 lane: the exact integer
/// block sum, as long as `SPAN · 2 · v_max · 128 < 2^15`. Q4_1 (`v_max` 15) sums all eight
/// vectors in i16 (at most 30720); Q5_1 (`v_max` 31) widens every four (at most 31744), since
/// eight would reach 63488. Then, as the reference, `acc = fma(f32(isum), d_x·d_y, acc)` and
/// `acc = fma(m_x, s_y, acc)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `panel` must hold `nb * PANEL_BLOCK` bytes and each
/// `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice). `SPAN` must be 4 or 8, and 8 only
/// for values below 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unsigned_run_avx2<const C: usize, const SPAN: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            let mut isum = [[_mm256_setzero_si256(); 2]; C];
            for k0 in (0..8).step_by(SPAN) {
                let mut pairs = [[_mm256_setzero_si256(); 2]; C];
                for k in k0..k0 + SPAN {
                    let w0 = _mm256_loadu_si256(p.add(64 * k).cast());
                    let w1 = _mm256_loadu_si256(p.add(64 * k + 32).cast());
                    for c in 0..C {
                        let yk = _mm256_set1_epi32(y[c].add(4 * k).cast::<i32>().read_unaligned());
                        pairs[c][0] = _mm256_add_epi16(pairs[c][0], _mm256_maddubs_epi16(w0, yk));
                        pairs[c][1] = _mm256_add_epi16(pairs[c][1], _mm256_maddubs_epi16(w1, yk));
                    }
                }
                for c in 0..C {
                    for h in 0..2 {
                        let wide = _mm256_madd_epi16(pairs[c][h], ones);
                        isum[c][h] = _mm256_add_epi32(isum[c][h], wide);
                    }
                }
            }
            for h in 0..2 {
                let dx = _mm256_loadu_ps(p.add(512 + 32 * h).cast());
                let mx = _mm256_loadu_ps(p.add(576 + 32 * h).cast());
                for c in 0..C {
                    let dy = _mm256_set1_ps(y[c].add(32).cast::<f32>().read_unaligned());
                    let sy = _mm256_set1_ps(y[c].add(36).cast::<f32>().read_unaligned());
                    let s = _mm256_cvtepi32_ps(isum[c][h]);
                    acc[c][h] = _mm256_fmadd_ps(s, _mm256_mul_ps(dx, dy), acc[c][h]);
                    acc[c][h] = _mm256_fmadd_ps(mx, sy, acc[c][h]);
                }
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_ps(dst.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), v[1]);
        }
    }
}

/// [`unsigned_run_avx2`] for Q4_1 (4-bit values: eight vectors summed in i16).
///
/// # Safety
/// As [`unsigned_run_avx2`], with values 0..15.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_run_avx2<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    // SAFETY: the caller's contract, with values below 16 for a span of eight.
    unsafe { unsigned_run_avx2::<C, 8>(nb, panel, ys, out) }
}

/// [`unsigned_run_avx2`] for Q5_1 (5-bit values: widened to i32 every four vectors).
///
/// # Safety
/// As [`unsigned_run_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_run_avx2<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    // SAFETY: the caller's contract; a span of four is exact for any byte value up to 31.
    unsafe { unsigned_run_avx2::<C, 4>(nb, panel, ys, out) }
}

/// Columns per call of [`q4_1_run_avx2`] and [`q5_1_run_avx2`]: `C` columns keep `4 C`
/// registers live (two integer sums and two accumulators each) next to two weight vectors and a
/// broadcast, so three fill the sixteen ymm registers without spilling (Q5_1's i16 partial sums
/// add two per column, which the compiler may spill).
const GROUP_AVX2: usize = 3;

run_columns!(
    q4_1_run_avx2_bytes,
    q4_1_run_avx2,
    "Safe wrapper of the AVX2 Q4_1 panel product: columns `GROUP_AVX2` at a time, the last ones in one smaller group.",
    GROUP_AVX2,
    [3, 2]
);

run_columns!(
    q5_1_run_avx2_bytes,
    q5_1_run_avx2,
    "Safe wrapper of the AVX2 Q5_1 panel product: columns `GROUP_AVX2` at a time, the last ones in one smaller group.",
    GROUP_AVX2,
    [3, 2]
);

/// Prepares a column for the Q4_1 panel kernels with AVX2, as [`crate::panel`]'s reference does
/// (the same steps as the AVX-512 preparation): per block, the absolute maximum, quants
/// `round_even(x · 127/max)` saturated to i8 (`vpackssdw`, `vpacksswb`, then `vpermd` to undo
/// the lane interleaving), their sum for `s`, and `d`, `s` rounded to f16 and widened back.
/// Blocks holding a NaN go through the reference code.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `x` must be whole blocks and `out` their prepared
/// bytes (checked by the wrapper).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_1_prepare_avx2(x: &[f32], out: &mut [u8]) {
    let sign = _mm256_set1_ps(-0.0);
    let lo = _mm256_set1_epi32(-128);
    let hi = _mm256_set1_epi32(127);
    // After the two packs, dword i holds the quants of register i % 4 from its 128-bit half
    // i / 4 (quants 4 (i / 4)..4 (i / 4) + 4): dwords 0, 4, 1, 5 … put them back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (src, dst) in x.chunks_exact(32).zip(out.chunks_exact_mut(COL_BLOCK)) {
        // SAFETY: `src` holds 32 f32 and `dst` 40 bytes; unaligned loads and stores.
        unsafe {
            let v: [__m256; 4] = core::array::from_fn(|i| _mm256_loadu_ps(src.as_ptr().add(8 * i)));
            let unord = v.map(|a| _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a));
            let any_nan = _mm256_or_ps(
                _mm256_or_ps(unord[0], unord[1]),
                _mm256_or_ps(unord[2], unord[3]),
            );
            if _mm256_movemask_ps(any_nan) != 0 {
                q8_1_prepare_block(src, dst);
                continue;
            }
            let a = v.map(|a| _mm256_andnot_ps(sign, a));
            let m8 = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps::<1>(m8));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let ids = _mm256_set1_ps(id);
            // Rounds to nearest even (the default MXCSR mode); NaN products (an infinite
            // maximum) become i32::MIN, which saturates to -128 as in the reference.
            let q = v.map(|a| _mm256_cvtps_epi32(_mm256_mul_ps(a, ids)));
            let q16a = _mm256_packs_epi32(q[0], q[1]);
            let q16b = _mm256_packs_epi32(q[2], q[3]);
            let q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), q8);
            let clamp = |q| _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
            let s8 = _mm256_add_epi32(
                _mm256_add_epi32(clamp(q[0]), clamp(q[1])),
                _mm256_add_epi32(clamp(q[2]), clamp(q[3])),
            );
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(s8),
                _mm256_extracti128_si256::<1>(s8),
            );
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
            let dh = f32_to_f16(d);
            let sh = f32_to_f16(d * sum as f32);
            dst[32..36].copy_from_slice(&f16_to_f32(dh).to_le_bytes());
            dst[36..40].copy_from_slice(&f16_to_f32(sh).to_le_bytes());
        }
    }
}

/// Safe wrapper of the AVX2 column preparation.
pub(crate) fn q8_1_prepare_avx2_bytes(x: &[f32], out: &mut [u8]) {
    check_prepare(x, out);
    // SAFETY: lengths were checked above; this wrapper is handed out only for a CPU that
    // supports the AVX2 tier.
    unsafe { q8_1_prepare_avx2(x, out) }
}

// ---------------------------------------------------------------------------------------------
// Q4_0, Q5_0, Q8_0 and IQ4_NL: the signed layout (see `crate::panel`), one product kernel per
// tier.

/// The four bytes at `p` broadcast to every dword of a vector by `vpbroadcastd zmm, m32`, a
/// pure load (the intrinsics let the compiler load them into a register and broadcast with a
/// shuffle instead).
///
/// # Safety
/// The CPU must support AVX-512 F; `p` must be valid for reading 4 bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn broadcast_dword(p: *const u8) -> __m512i {
    let v: __m512i;
    // SAFETY: the caller guarantees AVX-512 F and 4 readable bytes at `p`; the instruction
    // reads only them and writes only the output register.
    unsafe {
        core::arch::asm!(
            "vpbroadcastd {v}, dword ptr [{p}]",
            v = out(zmm_reg) v,
            p = in(reg) p,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    v
}

/// `C` prepared columns times a panel of signed values with AVX-512 VNNI, into
/// `out[c * 16 + r]`. `vpdpbusd` multiplies unsigned by signed bytes, so each broadcast of four
/// activation bytes is flipped to `q_y + 128` (xor 0x80) and multiplied with the signed
/// weights: the sum gains `128·Σv`, which the row sums stored in the panel take away again.
/// The integer block sum is exact, then `acc = fma(f32(isum), d_x·d_y, acc)` as the reference.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `panel` must hold
/// `nb * PANEL_BLOCK` bytes and each `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn signed_run<const C: usize>(nb: usize, panel: &[u8], ys: [&[u8]; C], out: &mut [f32]) {
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            // Each column's 32 quants flipped once per block into a stack copy, whose
            // four-byte groups are then broadcast straight from memory (a load, no ALU work):
            // `vpdpbusd` takes its unsigned operand from a register only, and flipping each
            // broadcast cost two ALU operations per product (the compiler xors the four bytes,
            // then broadcasts them with a shuffle).
            let mut flipped = [[0u8; 32]; C];
            for c in 0..C {
                let q = _mm256_loadu_si256(y[c].cast());
                let f = _mm256_xor_si256(q, _mm512_castsi512_si256(flip));
                _mm256_storeu_si256(flipped[c].as_mut_ptr().cast(), f);
            }
            let mut isum = [_mm512_setzero_si512(); C];
            for k in 0..8 {
                let w = _mm512_loadu_si512(p.add(64 * k).cast());
                for c in 0..C {
                    let yk = broadcast_dword(flipped[c].as_ptr().add(4 * k));
                    isum[c] = _mm512_dpbusd_epi32(isum[c], yk, w);
                }
            }
            let dx = _mm512_loadu_ps(p.add(SIGNED_D).cast());
            let offset = _mm512_slli_epi32::<7>(_mm512_loadu_si512(p.add(SIGNED_SUM).cast()));
            for c in 0..C {
                let dy = _mm512_set1_ps(y[c].add(32).cast::<f32>().read_unaligned());
                let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[c], offset));
                acc[c] = _mm512_fmadd_ps(s, _mm512_mul_ps(dx, dy), acc[c]);
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *v) };
    }
}

run_columns!(
    signed_run_avx512_bytes,
    signed_run,
    "Safe wrapper of the AVX-512 signed panel product: columns eight at a time, the last ones in one smaller group.",
    GROUP,
    [8, 7, 6, 5, 4, 3, 2]
);

/// `C` prepared columns times a panel of signed values with AVX2, into `out[c * 16 + r]`. The
/// 16 rows are two halves of eight i32 lanes. `vpmaddubsw` needs one unsigned operand: per
/// weight vector its absolute values (at most 128) are taken once, and each column's four
/// broadcast activation bytes get the weights' signs (`vpsignb`), so every i16 pair sum is
/// `Σ v·q_y` of two weights, at most 2·128·127 in magnitude (no saturation), and one
/// `vpmaddwd` with ones adds the pairs into the row's i32 lane. (As in ggml's AVX2 kernels,
/// an activation quant of −128, which only a block holding an infinity produces, would change
/// sign there; such a block's scale is infinite and its products are not finite anyway.)
/// Then, as the reference, `acc = fma(f32(isum), d_x·d_y, acc)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `panel` must hold `nb * PANEL_BLOCK` bytes and each
/// `ys[c]` `nb * COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn signed_run_avx2<const C: usize>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; C];
    for b in 0..nb {
        // SAFETY: block b of the panel is `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]` and block b
        // of column c is `ys[c][b * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * PANEL_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * COL_BLOCK));
            let mut isum = [[_mm256_setzero_si256(); 2]; C];
            for k in 0..8 {
                let w = [
                    _mm256_loadu_si256(p.add(64 * k).cast()),
                    _mm256_loadu_si256(p.add(64 * k + 32).cast()),
                ];
                let a = w.map(|v| _mm256_abs_epi8(v));
                for c in 0..C {
                    let yk = _mm256_set1_epi32(y[c].add(4 * k).cast::<i32>().read_unaligned());
                    for h in 0..2 {
                        let pairs = _mm256_maddubs_epi16(a[h], _mm256_sign_epi8(yk, w[h]));
                        isum[c][h] = _mm256_add_epi32(isum[c][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            for h in 0..2 {
                let dx = _mm256_loadu_ps(p.add(SIGNED_D + 32 * h).cast());
                for c in 0..C {
                    let dy = _mm256_set1_ps(y[c].add(32).cast::<f32>().read_unaligned());
                    let s = _mm256_cvtepi32_ps(isum[c][h]);
                    acc[c][h] = _mm256_fmadd_ps(s, _mm256_mul_ps(dx, dy), acc[c][h]);
                }
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_ps(dst.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), v[1]);
        }
    }
}

run_columns!(
    signed_run_avx2_bytes,
    signed_run_avx2,
    "Safe wrapper of the AVX2 signed panel product: columns `GROUP_AVX2` at a time, the last ones in one smaller group.",
    GROUP_AVX2,
    [3, 2]
);

/// The formats of the signed layout, for the SIMD packing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignedFormat {
    Q4_0,
    Q5_0,
    Q8_0,
    Iq4Nl,
}

impl SignedFormat {
    fn ggml(self) -> crate::GgmlType {
        match self {
            SignedFormat::Q4_0 => crate::GgmlType::Q4_0,
            SignedFormat::Q5_0 => crate::GgmlType::Q5_0,
            SignedFormat::Q8_0 => crate::GgmlType::Q8_0,
            SignedFormat::Iq4Nl => crate::GgmlType::IQ4_NL,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            SignedFormat::Q4_0 | SignedFormat::Iq4Nl => 18,
            SignedFormat::Q5_0 => 22,
            SignedFormat::Q8_0 => 34,
        }
    }
}

/// Packs `rows` rows of a signed-layout format into `panel` with AVX-512: per block, each
/// row's 32 values decoded into half a register (two rows per register), the 16 × 8 dwords
/// transposed in two rounds of `vpermt2d` (four rows × eight dwords into two registers, then
/// dword `k` of every row into vector `k`), the row sums `Σ v` by `vpdpbusd` with ones, and the
/// 16 `d_x` widened with `vcvtph2ps`: the reference's bytes.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C. `x` must hold `rows`
/// rows of `nb` blocks of `ty`, `rows` must be 1 to 16, and `panel` must hold
/// `nb * PANEL_BLOCK` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn signed_pack(ty: SignedFormat, nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let bb = ty.block_bytes();
    let row_bytes = nb * bb;
    // Round one: lane 4 k' + i of the result is dword k (k' = k % 4 of one half) of row i of
    // a group of four, whose rows 0, 1 sit in the first register and 2, 3 in the second.
    let round1 = |half: i32| {
        let at = |k: i32, i: i32| (i / 2) * 16 + (i % 2) * 8 + 4 * half + k;
        _mm512_setr_epi32(
            at(0, 0),
            at(0, 1),
            at(0, 2),
            at(0, 3),
            at(1, 0),
            at(1, 1),
            at(1, 2),
            at(1, 3),
            at(2, 0),
            at(2, 1),
            at(2, 2),
            at(2, 3),
            at(3, 0),
            at(3, 1),
            at(3, 2),
            at(3, 3),
        )
    };
    // Round two: lane 4 g + i (g = 0, 1 the group of the pair) takes lane 4 k' + i.
    let round2 = |k: i32| {
        let at = |g: i32, i: i32| g * 16 + 4 * k + i;
        _mm512_setr_epi32(
            at(0, 0),
            at(0, 1),
            at(0, 2),
            at(0, 3),
            at(1, 0),
            at(1, 1),
            at(1, 2),
            at(1, 3),
            at(0, 0),
            at(0, 1),
            at(0, 2),
            at(0, 3),
            at(1, 0),
            at(1, 1),
            at(1, 2),
            at(1, 3),
        )
    };
    let r1 = [round1(0), round1(1)];
    let r2 = [round2(0), round2(1), round2(2), round2(3)];
    let ones = _mm512_set1_epi8(1);
    for b in 0..nb {
        let out = panel[b * PANEL_BLOCK..][..PANEL_BLOCK].as_mut_ptr();
        let mut d = [0u16; PANEL_ROWS];
        // SAFETY: row r < rows reads its block b, `x[r * row_bytes + b * bb..][..bb]`, inside
        // `x` by the contract; rows at or beyond `rows` are zero. The stores write the 640
        // bytes of this block's part of `panel`.
        unsafe {
            let v: [__m256i; PANEL_ROWS] = core::array::from_fn(|r| {
                if r < rows {
                    let blk = x.as_ptr().add(r * row_bytes + b * bb);
                    d[r] = blk.cast::<u16>().read_unaligned();
                    signed_values_avx2(ty, blk)
                } else {
                    _mm256_setzero_si256()
                }
            });
            let pairs: [__m512i; 8] = core::array::from_fn(|p| {
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v[2 * p]), v[2 * p + 1])
            });
            // groups[g][h]: rows 4g..4g + 4, dwords 4h..4h + 4.
            let groups: [[__m512i; 2]; 4] = core::array::from_fn(|g| {
                [0, 1].map(|h| _mm512_permutex2var_epi32(pairs[2 * g], r1[h], pairs[2 * g + 1]))
            });
            let mut sums = _mm512_setzero_si512();
            for k in 0..8 {
                let (h, kk) = (k / 4, k % 4);
                let low = _mm512_permutex2var_epi32(groups[0][h], r2[kk], groups[1][h]);
                let high = _mm512_permutex2var_epi32(groups[2][h], r2[kk], groups[3][h]);
                let vk = _mm512_mask_blend_epi32(0xff00, low, high);
                sums = _mm512_dpbusd_epi32(sums, ones, vk);
                _mm512_storeu_si512(out.add(64 * k).cast(), vk);
            }
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr().cast()));
            _mm512_storeu_ps(out.add(SIGNED_D).cast(), dx);
            _mm512_storeu_si512(out.add(SIGNED_SUM).cast(), sums);
        }
    }
}

/// Safe wrapper of the AVX-512 signed packing for `ty`.
fn signed_pack_avx512(ty: SignedFormat, n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack_of(n, x, rows, panel, ty.block_bytes(), ty.ggml());
    // SAFETY: lengths were checked above; the wrappers below are handed out only for a CPU
    // that supports the AVX-512 tier.
    unsafe { signed_pack(ty, nb, x, rows, panel) }
}

/// AVX-512 packing of Q4_0 rows (see [`signed_pack`]).
pub(crate) fn q4_0_pack_avx512_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx512(SignedFormat::Q4_0, n, x, rows, panel);
}

/// AVX-512 packing of Q5_0 rows (see [`signed_pack`]).
pub(crate) fn q5_0_pack_avx512_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx512(SignedFormat::Q5_0, n, x, rows, panel);
}

/// AVX-512 packing of Q8_0 rows (see [`signed_pack`]).
pub(crate) fn q8_0_pack_avx512_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx512(SignedFormat::Q8_0, n, x, rows, panel);
}

/// AVX-512 packing of IQ4_NL rows (see [`signed_pack`]).
pub(crate) fn iq4_nl_pack_avx512_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx512(SignedFormat::Iq4Nl, n, x, rows, panel);
}

/// The 32 signed values of one block of a Q8_0-partner format as bytes of a 256-bit vector, in
/// weight order, with AVX2 (Q5_0's fifth bits spread to bytes by a byte shuffle and a bit
/// test; IQ4_NL's levels looked up by a byte shuffle of the 16-entry table); both SIMD
/// packings use it.
///
/// # Safety
/// The CPU must support AVX2; `blk` must point at a whole block of `ty`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn signed_values_avx2(ty: SignedFormat, blk: *const u8) -> __m256i {
    let nibbles = _mm_set1_epi8(0x0f);
    // SAFETY: the reads stay inside the block (Q4_0 and IQ4_NL: 18 bytes, Q5_0: 22, Q8_0: 34)
    // by the contract; unaligned loads.
    unsafe {
        let split = |qs: __m128i| {
            let lo = _mm_and_si128(qs, nibbles);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), nibbles);
            _mm256_set_m128i(hi, lo)
        };
        match ty {
            SignedFormat::Q4_0 => {
                let q = split(_mm_loadu_si128(blk.add(2).cast()));
                _mm256_sub_epi8(q, _mm256_set1_epi8(8))
            }
            SignedFormat::Q5_0 => {
                let qh = blk.add(2).cast::<i32>().read_unaligned();
                let q = split(_mm_loadu_si128(blk.add(6).cast()));
                // Byte j takes byte j / 8 of qh, then tests bit j % 8.
                let bytes = _mm256_shuffle_epi8(
                    _mm256_set1_epi32(qh),
                    _mm256_setr_epi8(
                        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                        3, 3, 3, 3, 3, 3, 3,
                    ),
                );
                let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
                let h = _mm256_and_si256(set, _mm256_set1_epi8(0x10));
                _mm256_sub_epi8(_mm256_or_si256(q, h), _mm256_set1_epi8(16))
            }
            SignedFormat::Q8_0 => _mm256_loadu_si256(blk.add(2).cast()),
            SignedFormat::Iq4Nl => {
                // `vpshufb` looks up each index (0..15) in its 128-bit half of the table.
                let table = _mm_loadu_si128(crate::iquants::KVALUES_IQ4NL.as_ptr().cast());
                let q = split(_mm_loadu_si128(blk.add(2).cast()));
                _mm256_shuffle_epi8(_mm256_set_m128i(table, table), q)
            }
        }
    }
}

/// Packs `rows` rows of a signed-layout format into `panel` with AVX2: per block and group of
/// eight rows, each row's 32 values decoded into a register, the 8 × 8 dwords transposed
/// (`vpunpck{l,h}dq`, `vpunpck{l,h}qdq`, `vperm2i128`) so that vector `k` holds dword `k` of the
/// eight rows, the row sums from `vpmaddubsw` with ones and `vpmaddwd`, and the 16 `d_x` widened
/// with `vcvtph2ps`: the reference's bytes.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C. `x` must hold `rows` rows of `nb` blocks of `ty`,
/// `rows` must be 1 to 16, and `panel` must hold `nb * PANEL_BLOCK` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn signed_pack_avx2(ty: SignedFormat, nb: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let bb = ty.block_bytes();
    let row_bytes = nb * bb;
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    for b in 0..nb {
        let out = panel[b * PANEL_BLOCK..][..PANEL_BLOCK].as_mut_ptr();
        let mut d = [0u16; PANEL_ROWS];
        // SAFETY: row r < rows reads its block b, `x[r * row_bytes + b * bb..][..bb]`, inside
        // `x` by the contract; rows at or beyond `rows` are zero. The stores write the 640
        // bytes of this block's part of `panel`.
        unsafe {
            for h in 0..2 {
                let v: [__m256i; 8] = core::array::from_fn(|i| {
                    let r = 8 * h + i;
                    if r < rows {
                        let blk = x.as_ptr().add(r * row_bytes + b * bb);
                        d[r] = blk.cast::<u16>().read_unaligned();
                        signed_values_avx2(ty, blk)
                    } else {
                        _mm256_setzero_si256()
                    }
                });
                let t: [__m256i; 8] = [
                    _mm256_unpacklo_epi32(v[0], v[1]),
                    _mm256_unpackhi_epi32(v[0], v[1]),
                    _mm256_unpacklo_epi32(v[2], v[3]),
                    _mm256_unpackhi_epi32(v[2], v[3]),
                    _mm256_unpacklo_epi32(v[4], v[5]),
                    _mm256_unpackhi_epi32(v[4], v[5]),
                    _mm256_unpacklo_epi32(v[6], v[7]),
                    _mm256_unpackhi_epi32(v[6], v[7]),
                ];
                // u[j]: within each 128-bit half, dword j % 4 (of that half) of four rows.
                let u: [__m256i; 8] = [
                    _mm256_unpacklo_epi64(t[0], t[2]),
                    _mm256_unpackhi_epi64(t[0], t[2]),
                    _mm256_unpacklo_epi64(t[1], t[3]),
                    _mm256_unpackhi_epi64(t[1], t[3]),
                    _mm256_unpacklo_epi64(t[4], t[6]),
                    _mm256_unpackhi_epi64(t[4], t[6]),
                    _mm256_unpacklo_epi64(t[5], t[7]),
                    _mm256_unpackhi_epi64(t[5], t[7]),
                ];
                let mut sums = _mm256_setzero_si256();
                for j in 0..4 {
                    // Rows 0..4 from u[j], rows 4..8 from u[j + 4]; low halves are dwords 0..4,
                    // high halves dwords 4..8.
                    let lo = _mm256_permute2x128_si256::<0x20>(u[j], u[j + 4]);
                    let hi = _mm256_permute2x128_si256::<0x31>(u[j], u[j + 4]);
                    for (k, vk) in [(j, lo), (j + 4, hi)] {
                        let pairs = _mm256_maddubs_epi16(ones8, vk);
                        sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, ones16));
                        _mm256_storeu_si256(out.add(64 * k + 32 * h).cast(), vk);
                    }
                }
                _mm256_storeu_si256(out.add(SIGNED_SUM + 32 * h).cast(), sums);
            }
            for h in 0..2 {
                let dh = _mm_loadu_si128(d.as_ptr().add(8 * h).cast());
                _mm256_storeu_ps(out.add(SIGNED_D + 32 * h).cast(), _mm256_cvtph_ps(dh));
            }
        }
    }
}

/// Safe wrapper of the AVX2 signed packing for `ty`.
fn signed_pack_avx2_checked(ty: SignedFormat, n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    let nb = check_pack_of(n, x, rows, panel, ty.block_bytes(), ty.ggml());
    // SAFETY: lengths were checked above; the wrappers below are handed out only for a CPU
    // that supports the AVX2 tier.
    unsafe { signed_pack_avx2(ty, nb, x, rows, panel) }
}

/// AVX2 packing of Q4_0 rows (see [`signed_pack_avx2`]).
pub(crate) fn q4_0_pack_avx2_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx2_checked(SignedFormat::Q4_0, n, x, rows, panel);
}

/// AVX2 packing of Q5_0 rows (see [`signed_pack_avx2`]).
pub(crate) fn q5_0_pack_avx2_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx2_checked(SignedFormat::Q5_0, n, x, rows, panel);
}

/// AVX2 packing of Q8_0 rows (see [`signed_pack_avx2`]).
pub(crate) fn q8_0_pack_avx2_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx2_checked(SignedFormat::Q8_0, n, x, rows, panel);
}

/// AVX2 packing of IQ4_NL rows (see [`signed_pack_avx2`]).
pub(crate) fn iq4_nl_pack_avx2_bytes(n: usize, x: &[u8], rows: usize, panel: &mut [u8]) {
    signed_pack_avx2_checked(SignedFormat::Iq4Nl, n, x, rows, panel);
}

// ---------------------------------------------------------------------------------------------
// Q4_K, Q5_K and Q6_K: the k-quant layout (see `crate::panel`), one product kernel per tier.

/// `C` prepared Q8_K columns times a k-quant panel with AVX-512 VNNI, into `out[c * 16 + r]`.
/// Per group of 16 weights, four `vpdpbusd` of the unsigned values with four broadcast
/// activation bytes give each row's exact group sum, which `vpmulld` scales by `sc_k` into S1;
/// S2 is eight `vpmaddwd` of the `(m_2i, m_2i+1)` pairs with the broadcast pairs of group sums.
/// Then, as the reference, `acc = fma(f32(S1), d·d_y, acc)` and `acc = fma(f32(S2), −m·d_y,
/// acc)`.
///
/// `SIGNED` (IQ4_XS): the values are i8, which `vpdpbusd` cannot take as its unsigned operand;
/// flipping their top bit gives `value + 128` (1..241) as unsigned bytes, and each group sum
/// starts at `−128·bsum_k` (the column's sum of the group's quants), which takes the 128 back
/// out exactly. No S2 step.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `panel` must hold
/// `nb * K_BLOCK` bytes and each `ys[c]` `nb * K_COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn k_run_any<const C: usize, const SIGNED: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        // SAFETY: super-block b of the panel is `panel[b * K_BLOCK..][..K_BLOCK]` and of
        // column c `ys[c][b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * K_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * K_COL_BLOCK));
            let mut s1 = [_mm512_setzero_si512(); C];
            for k in 0..16 {
                let mut isum: [__m512i; C] = core::array::from_fn(|c| {
                    if SIGNED {
                        let bsum = y[c].add(K_COL_BSUM + 2 * k).cast::<i16>().read_unaligned();
                        _mm512_set1_epi32(-128 * i32::from(bsum))
                    } else {
                        _mm512_setzero_si512()
                    }
                });
                for v in 4 * k..4 * k + 4 {
                    let mut w = _mm512_loadu_si512(p.add(64 * v).cast());
                    if SIGNED {
                        w = _mm512_xor_si512(w, _mm512_set1_epi8(-128));
                    }
                    for c in 0..C {
                        let yv = y[c].add(K_COL_Q + 4 * v).cast::<i32>().read_unaligned();
                        isum[c] = _mm512_dpbusd_epi32(isum[c], w, _mm512_set1_epi32(yv));
                    }
                }
                let sc = _mm512_loadu_si512(p.add(K_SC + 64 * k).cast());
                for c in 0..C {
                    s1[c] = _mm512_add_epi32(s1[c], _mm512_mullo_epi32(isum[c], sc));
                }
            }
            let d = _mm512_loadu_ps(p.add(K_D).cast());
            for c in 0..C {
                let dy = _mm512_set1_ps(y[c].cast::<f32>().read_unaligned());
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1[c]), _mm512_mul_ps(d, dy), acc[c]);
            }
            if SIGNED {
                continue;
            }
            let mut s2 = [_mm512_setzero_si512(); C];
            for i in 0..8 {
                let m = _mm512_loadu_si512(p.add(K_MIN + 64 * i).cast());
                for c in 0..C {
                    let pair = y[c].add(K_COL_BSUM + 4 * i).cast::<i32>().read_unaligned();
                    s2[c] = _mm512_add_epi32(s2[c], _mm512_madd_epi16(m, _mm512_set1_epi32(pair)));
                }
            }
            let neg_m = _mm512_loadu_ps(p.add(K_NEG_M).cast());
            for c in 0..C {
                let dy = _mm512_set1_ps(y[c].cast::<f32>().read_unaligned());
                acc[c] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(s2[c]), _mm512_mul_ps(neg_m, dy), acc[c]);
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *v) };
    }
}

crate::panel::k_instances!(
    k_run_any,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    k_run,
    k_run_signed
);

run_columns!(
    k_run_signed_avx512_bytes,
    k_run_signed,
    "Safe wrapper of the AVX-512 IQ4_XS (signed k-quant layout) panel product: columns `K_GROUP` at a time, the last ones in one smaller group.",
    K_GROUP,
    [6, 5, 4, 3, 2],
    check_k_run,
    K_COL_BLOCK
);

run_columns!(
    k_run_avx512_bytes,
    k_run,
    "Safe wrapper of the AVX-512 k-quant panel product: columns `K_GROUP` at a time, the last ones in one smaller group.",
    K_GROUP,
    [6, 5, 4, 3, 2],
    check_k_run,
    K_COL_BLOCK
);

/// Columns per AVX-512 k-quant kernel call: S1, the group sums and the accumulators of six
/// columns fill 18 of the 32 vector registers.
const K_GROUP: usize = 6;

/// `C` prepared Q8_K columns times a k-quant panel with AVX2, into `out[c * 16 + r]`; the 16
/// rows are two halves of eight i32 lanes. The values are unsigned (at most 63), so
/// `vpmaddubsw` with four broadcast activation bytes gives i16 sums of two products (at most
/// 2·63·127 in magnitude: no saturation), and `vpmaddwd` with `sc_k` repeated in both i16
/// halves of each lane adds the pairs already scaled into S1; no i32 multiply is needed. S2
/// and the float steps are as in the reference.
///
/// `SIGNED` (IQ4_XS, values −127..113): `vpmaddubsw` takes the values' magnitudes, and the
/// activation bytes get the values' signs (`vpsignb`; Q8_K quants are −127..127, so no byte
/// overflows), at most 2·127·127 per pair. No S2 step.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `panel` must hold `nb * K_BLOCK` bytes and each
/// `ys[c]` `nb * K_COL_BLOCK` bytes (`out` is a checked slice).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_run_avx2_any<const C: usize, const SIGNED: bool>(
    nb: usize,
    panel: &[u8],
    ys: [&[u8]; C],
    out: &mut [f32],
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; C];
    for b in 0..nb {
        // SAFETY: super-block b of the panel is `panel[b * K_BLOCK..][..K_BLOCK]` and of
        // column c `ys[c][b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract;
        // unaligned loads and broadcasts have no alignment requirement.
        unsafe {
            let p = panel.as_ptr().add(b * K_BLOCK);
            let y: [*const u8; C] = core::array::from_fn(|c| ys[c].as_ptr().add(b * K_COL_BLOCK));
            let mut s1 = [[_mm256_setzero_si256(); 2]; C];
            for k in 0..16 {
                // sc_k (an i32 whose value fits i16) in both i16 halves of each lane.
                let sc = [0, 32].map(|h| {
                    let v = _mm256_loadu_si256(p.add(K_SC + 64 * k + h).cast());
                    _mm256_blend_epi16::<0xaa>(v, _mm256_slli_epi32::<16>(v))
                });
                for v in 4 * k..4 * k + 4 {
                    let w = [0, 32].map(|h| _mm256_loadu_si256(p.add(64 * v + h).cast()));
                    let wu = if SIGNED {
                        w.map(|w| _mm256_abs_epi8(w))
                    } else {
                        w
                    };
                    for c in 0..C {
                        let yv = y[c].add(K_COL_Q + 4 * v).cast::<i32>().read_unaligned();
                        let yv = _mm256_set1_epi32(yv);
                        for h in 0..2 {
                            let yh = if SIGNED {
                                _mm256_sign_epi8(yv, w[h])
                            } else {
                                yv
                            };
                            let pairs = _mm256_maddubs_epi16(wu[h], yh);
                            s1[c][h] = _mm256_add_epi32(s1[c][h], _mm256_madd_epi16(pairs, sc[h]));
                        }
                    }
                }
            }
            if SIGNED {
                for h in 0..2 {
                    let d = _mm256_loadu_ps(p.add(K_D + 32 * h).cast());
                    for c in 0..C {
                        let dy = _mm256_set1_ps(y[c].cast::<f32>().read_unaligned());
                        acc[c][h] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(s1[c][h]),
                            _mm256_mul_ps(d, dy),
                            acc[c][h],
                        );
                    }
                }
                continue;
            }
            let mut s2 = [[_mm256_setzero_si256(); 2]; C];
            for i in 0..8 {
                let m = [0, 32].map(|h| _mm256_loadu_si256(p.add(K_MIN + 64 * i + h).cast()));
                for c in 0..C {
                    let pair = y[c].add(K_COL_BSUM + 4 * i).cast::<i32>().read_unaligned();
                    let pair = _mm256_set1_epi32(pair);
                    for h in 0..2 {
                        s2[c][h] = _mm256_add_epi32(s2[c][h], _mm256_madd_epi16(m[h], pair));
                    }
                }
            }
            for h in 0..2 {
                let d = _mm256_loadu_ps(p.add(K_D + 32 * h).cast());
                let neg_m = _mm256_loadu_ps(p.add(K_NEG_M + 32 * h).cast());
                for c in 0..C {
                    let dy = _mm256_set1_ps(y[c].cast::<f32>().read_unaligned());
                    let a = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(s1[c][h]),
                        _mm256_mul_ps(d, dy),
                        acc[c][h],
                    );
                    acc[c][h] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(s2[c][h]), _mm256_mul_ps(neg_m, dy), a);
                }
            }
        }
    }
    for (c, v) in acc.iter().enumerate() {
        let dst = &mut out[c * PANEL_ROWS..][..PANEL_ROWS];
        // SAFETY: `dst` holds 16 f32; `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_ps(dst.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), v[1]);
        }
    }
}

crate::panel::k_instances!(
    k_run_avx2_any,
    "avx2,fma,f16c",
    k_run_avx2,
    k_run_signed_avx2
);

run_columns!(
    k_run_signed_avx2_bytes,
    k_run_signed_avx2,
    "Safe wrapper of the AVX2 IQ4_XS (signed k-quant layout) panel product: columns `GROUP_AVX2` at a time, the last ones in one smaller group.",
    GROUP_AVX2,
    [3, 2],
    check_k_run,
    K_COL_BLOCK
);

run_columns!(
    k_run_avx2_bytes,
    k_run_avx2,
    "Safe wrapper of the AVX2 k-quant panel product: columns `GROUP_AVX2` at a time, the last ones in one smaller group.",
    GROUP_AVX2,
    [3, 2],
    check_k_run,
    K_COL_BLOCK
);

// ---------------------------------------------------------------------------------------------
// Row-interleaved weights (see `crate::interleaved`): the one-token product and the packing of
// panels from a group. Q4_0, Q4_1, Q5_0 and Q5_1 share one kernel per tier, generic over the
// format's `m` (`M`), fifth bits (`QH`) and offset (8, 16 or 0); Q8_0 has its own.

/// Blocks whose column corrections an interleaved product computes at a time (1 KiB of stack;
/// 8192 weights per row, more than the models we run have, take one pass).
const CORRECTION_CHUNK: usize = 256;

/// `−offset·Σ q_y` of prepared blocks `b0..b0 + out.len()` of the column `y`: the same for every
/// row of a block (Q4_0's offset 8, Q5_0's 16, or the 128 that makes Q8_0's quants unsigned).
fn column_corrections(y: &[u8], b0: usize, offset: i32, out: &mut [i32]) {
    for (b, c) in out.iter_mut().enumerate() {
        let q = &y[(b0 + b) * COL_BLOCK..][..32];
        *c = -offset * q.iter().map(|&v| i32::from(v as i8)).sum::<i32>();
    }
}

/// The 64 low and 64 high values (weights `4k..4k + 4` and `16 + 4k..16 + 4k + 4` of each row)
/// of the quant vector at `q`: its nibbles, with the fifth bits in bit 4 when `QH`. `bits` holds
/// the block's bit vector shifted for this vector (`[bits << 4, bits] >> k`, in 16-bit lanes: bit
/// 4 of each byte is then the bit of weight `4k + i`, respectively `16 + 4k + i`) and moves on
/// to the next one.
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `q` must point to 64 readable bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn legacy_values<const QH: bool>(q: *const u8, bits: &mut [__m512i; 2]) -> [__m512i; 2] {
    let low = _mm512_set1_epi8(0x0f);
    // SAFETY: 64 readable bytes at `q` by the contract; an unaligned load.
    let v = unsafe { _mm512_loadu_si512(q.cast()) };
    let mut lo = _mm512_and_si512(v, low);
    let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
    if QH {
        let bit4 = _mm512_set1_epi8(0x10);
        // lo | (bits & 0x10): 0xf8 is `a | (b & c)`.
        lo = _mm512_ternarylogic_epi32::<0xf8>(lo, bits[0], bit4);
        hi = _mm512_ternarylogic_epi32::<0xf8>(hi, bits[1], bit4);
        *bits = [
            _mm512_srli_epi16::<1>(bits[0]),
            _mm512_srli_epi16::<1>(bits[1]),
        ];
    }
    [lo, hi]
}

/// The bit vector at `p` as [`legacy_values`] takes it for quant vector 0 (all zero unless `QH`).
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `p` must point to 64 readable bytes if `QH`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn legacy_bits<const QH: bool>(p: *const u8) -> [__m512i; 2] {
    if !QH {
        return [_mm512_setzero_si512(); 2];
    }
    // SAFETY: 64 readable bytes at `p` by the contract; an unaligned load.
    let hb = unsafe { _mm512_loadu_si512(p.cast()) };
    [_mm512_slli_epi16::<4>(hb), hb]
}

/// An interleaved Q4_0, Q4_1, Q5_0 or Q5_1 matrix times one prepared column with AVX-512 VNNI,
/// into `out`: per group of 16 rows and block, the four quant vectors split into their low and
/// high values ([`legacy_values`]), eight `vpdpbusd` with four activation bytes broadcast (two
/// chains, low and high) give each row's `Σ q·q_y` in its lane, started at `−OFFSET·Σ q_y` (the
/// same for every row: computed once per block of the column); then one `vcvtph2ps` of the 16
/// `d` and, as the reference, `acc = fma(f32(isum), d_x·d_y, acc)`, and with `M` one
/// `vcvtph2ps` of the 16 `m` and `acc = fma(m_x, s_y, acc)`. The last group's missing rows are
/// masked off. No software prefetch: the copy is one sequential stream in the process's own
/// memory, which the hardware prefetchers follow (see `crate::interleaved` on what was measured).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `w` must hold
/// `out.len().div_ceil(16)` groups of `nb` blocks of the layout `legacy_layout(M, QH)` and `y`
/// `nb` prepared blocks (checked by the wrapper).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_legacy_matvec<const M: bool, const QH: bool, const OFFSET: i32>(
    nb: usize,
    w: &[u8],
    y: &[u8],
    out: &mut [f32],
) {
    use crate::interleaved::{GROUP_ROWS, legacy_layout};
    let l = legacy_layout(M, QH);
    let (gb, bits_at, quants_at) = (l.group_block(), l.high_at(), l.quants_at());
    let groups = out.len().div_ceil(GROUP_ROWS);
    let mut correction = [0i32; CORRECTION_CHUNK];
    let mut b0 = 0;
    while b0 < nb {
        let cb = (nb - b0).min(CORRECTION_CHUNK);
        if OFFSET != 0 {
            column_corrections(y, b0, OFFSET, &mut correction[..cb]);
        }
        for g in 0..groups {
            let rows = (out.len() - g * GROUP_ROWS).min(GROUP_ROWS);
            let mask = ((1u32 << rows) - 1) as __mmask16;
            let dst = &mut out[g * GROUP_ROWS..][..rows];
            let chunk = &w[(g * nb + b0) * gb..][..cb * gb];
            // SAFETY: `dst` holds `rows` f32, and the masked load and store touch only those;
            // block b of the chunk is `chunk[b * gb..][..gb]` and of the column
            // `y[(b0 + b) * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract; unaligned
            // loads and broadcasts have no alignment requirement.
            unsafe {
                let mut acc = if b0 == 0 {
                    _mm512_setzero_ps()
                } else {
                    _mm512_maskz_loadu_ps(mask, dst.as_ptr())
                };
                for (b, &c) in correction[..cb].iter().enumerate() {
                    let p = chunk.as_ptr().add(b * gb);
                    let yb = y.as_ptr().add((b0 + b) * COL_BLOCK);
                    let mut lo_sum = _mm512_set1_epi32(c);
                    let mut hi_sum = _mm512_setzero_si512();
                    let mut bits = legacy_bits::<QH>(p.add(bits_at));
                    for k in 0..4 {
                        let [lo, hi] = legacy_values::<QH>(p.add(quants_at + 64 * k), &mut bits);
                        let ylo = yb.add(4 * k).cast::<i32>().read_unaligned();
                        let yhi = yb.add(16 + 4 * k).cast::<i32>().read_unaligned();
                        lo_sum = _mm512_dpbusd_epi32(lo_sum, lo, _mm512_set1_epi32(ylo));
                        hi_sum = _mm512_dpbusd_epi32(hi_sum, hi, _mm512_set1_epi32(yhi));
                    }
                    let isum = _mm512_add_epi32(lo_sum, hi_sum);
                    let dx = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                    let dy = _mm512_set1_ps(yb.add(32).cast::<f32>().read_unaligned());
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dx, dy), acc);
                    if M {
                        let mx = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32).cast()));
                        let sy = _mm512_set1_ps(yb.add(36).cast::<f32>().read_unaligned());
                        acc = _mm512_fmadd_ps(mx, sy, acc);
                    }
                }
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, acc);
            }
        }
        b0 += cb;
    }
}

/// Packs the first `rows` rows of an interleaved Q4_0, Q4_1, Q5_0 or Q5_1 group into the
/// format's panel with AVX-512: per block, each quant vector's low and high values
/// ([`legacy_values`]) are the panel's value vectors `k` and `4 + k` (less `OFFSET`); then the
/// 16 `d` widened by one `vcvtph2ps` and, with `M`, the 16 `m` (the Q4_1 layout), else the row
/// sums of the values by `vpdpbusd` with ones (the signed layout). Lanes of rows past `rows` are
/// zeroed, as the reference packing leaves them.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `group` must hold `nb`
/// blocks of the layout `legacy_layout(M, QH)`, `panel` `nb` panel blocks, and `rows` must be 1
/// to 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_legacy_pack<const M: bool, const QH: bool, const OFFSET: i32>(
    nb: usize,
    group: &[u8],
    rows: usize,
    panel: &mut [u8],
) {
    let l = crate::interleaved::legacy_layout(M, QH);
    let (gb, bits_at, quants_at) = (l.group_block(), l.high_at(), l.quants_at());
    let mask = ((1u32 << rows) - 1) as __mmask16;
    let offset = _mm512_set1_epi8(OFFSET as i8);
    let ones = _mm512_set1_epi8(1);
    for b in 0..nb {
        // SAFETY: block b is `group[b * gb..][..gb]` and `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]`,
        // both inside by the contract; unaligned loads and stores have no alignment requirement.
        unsafe {
            let src = group.as_ptr().add(b * gb);
            let dst = panel.as_mut_ptr().add(b * PANEL_BLOCK);
            let mut value_sums = _mm512_setzero_si512();
            let mut bits = legacy_bits::<QH>(src.add(bits_at));
            for k in 0..4 {
                let [mut lo, mut hi] = legacy_values::<QH>(src.add(quants_at + 64 * k), &mut bits);
                if !M {
                    value_sums = _mm512_dpbusd_epi32(value_sums, lo, ones);
                    value_sums = _mm512_dpbusd_epi32(value_sums, hi, ones);
                    lo = _mm512_sub_epi8(lo, offset);
                    hi = _mm512_sub_epi8(hi, offset);
                }
                _mm512_storeu_si512(dst.add(64 * k).cast(), _mm512_maskz_mov_epi32(mask, lo));
                _mm512_storeu_si512(
                    dst.add(64 * (4 + k)).cast(),
                    _mm512_maskz_mov_epi32(mask, hi),
                );
            }
            let d = _mm512_maskz_mov_ps(mask, _mm512_cvtph_ps(_mm256_loadu_si256(src.cast())));
            _mm512_storeu_ps(dst.add(SIGNED_D).cast(), d);
            if M {
                let m = _mm512_cvtph_ps(_mm256_loadu_si256(src.add(32).cast()));
                _mm512_storeu_ps(dst.add(SIGNED_SUM).cast(), _mm512_maskz_mov_ps(mask, m));
            } else {
                let sums = _mm512_maskz_sub_epi32(mask, value_sums, _mm512_set1_epi32(OFFSET * 32));
                _mm512_storeu_si512(dst.add(SIGNED_SUM).cast(), sums);
            }
        }
    }
}

/// [`legacy_values`] with AVX2, on the 32 bytes at `q` (eight rows): the fifth bits merged with
/// an `and` and an `or`.
///
/// # Safety
/// The CPU must support AVX2; `q` must point to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_values_avx2<const QH: bool>(
    q: *const u8,
    bits: &mut [__m256i; 2],
) -> [__m256i; 2] {
    let low = _mm256_set1_epi8(0x0f);
    // SAFETY: 32 readable bytes at `q` by the contract; an unaligned load.
    let v = unsafe { _mm256_loadu_si256(q.cast()) };
    let mut lo = _mm256_and_si256(v, low);
    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
    if QH {
        let bit4 = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo, _mm256_and_si256(bits[0], bit4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(bits[1], bit4));
        *bits = [
            _mm256_srli_epi16::<1>(bits[0]),
            _mm256_srli_epi16::<1>(bits[1]),
        ];
    }
    [lo, hi]
}

/// [`legacy_bits`] with AVX2, for the 32 bytes at `p` (eight rows).
///
/// # Safety
/// The CPU must support AVX2; `p` must point to 32 readable bytes if `QH`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_bits_avx2<const QH: bool>(p: *const u8) -> [__m256i; 2] {
    if !QH {
        return [_mm256_setzero_si256(); 2];
    }
    // SAFETY: 32 readable bytes at `p` by the contract; an unaligned load.
    let hb = unsafe { _mm256_loadu_si256(p.cast()) };
    [_mm256_slli_epi16::<4>(hb), hb]
}

/// [`interleaved_legacy_matvec`] with AVX2 (no VNNI), on two 256-bit halves of eight rows. Per
/// half and block, eight `vpmaddubsw` of the values with four broadcast activation bytes, added
/// in i16, then `vpmaddwd` with ones into each row's i32 lane, started at the block's
/// `−OFFSET·Σ q_y`. The 4-bit values' eight products add up to at most 8·2·15·128 = 30720, in
/// one i16 chain; the 5-bit ones' in two chains of four (4·2·31·128 = 31744): exact. Then the
/// reference's `fma`s.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold `out.len().div_ceil(16)` groups of
/// `nb` blocks of the layout `legacy_layout(M, QH)` and `y` `nb` prepared blocks (checked by
/// the wrapper).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn interleaved_legacy_matvec_avx2<const M: bool, const QH: bool, const OFFSET: i32>(
    nb: usize,
    w: &[u8],
    y: &[u8],
    out: &mut [f32],
) {
    use crate::interleaved::{GROUP_ROWS, legacy_layout};
    let l = legacy_layout(M, QH);
    let (gb, bits_at, quants_at) = (l.group_block(), l.high_at(), l.quants_at());
    let groups = out.len().div_ceil(GROUP_ROWS);
    let ones = _mm256_set1_epi16(1);
    let mut correction = [0i32; CORRECTION_CHUNK];
    let mut b0 = 0;
    while b0 < nb {
        let cb = (nb - b0).min(CORRECTION_CHUNK);
        if OFFSET != 0 {
            column_corrections(y, b0, OFFSET, &mut correction[..cb]);
        }
        for g in 0..groups {
            let rows = (out.len() - g * GROUP_ROWS).min(GROUP_ROWS);
            let dst = &mut out[g * GROUP_ROWS..][..rows];
            let chunk = &w[(g * nb + b0) * gb..][..cb * gb];
            // The group's 16 sums so far (the rows past `rows` are never stored).
            let mut sums = [0f32; GROUP_ROWS];
            sums[..rows].copy_from_slice(dst);
            // SAFETY: block b of the chunk is `chunk[b * gb..][..gb]` and of the column
            // `y[(b0 + b) * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract; `sums` holds
            // 16 f32; unaligned loads and broadcasts have no alignment requirement.
            unsafe {
                let mut acc = if b0 == 0 {
                    [_mm256_setzero_ps(); 2]
                } else {
                    [0, 8].map(|h| _mm256_loadu_ps(sums.as_ptr().add(h)))
                };
                for (b, &c) in correction[..cb].iter().enumerate() {
                    let p = chunk.as_ptr().add(b * gb);
                    let yb = y.as_ptr().add((b0 + b) * COL_BLOCK);
                    let yq =
                        |at: usize| _mm256_set1_epi32(yb.add(at).cast::<i32>().read_unaligned());
                    let ylo = [0, 4, 8, 12].map(yq);
                    let yhi = [16, 20, 24, 28].map(yq);
                    let dy = _mm256_set1_ps(yb.add(32).cast::<f32>().read_unaligned());
                    let sy = _mm256_set1_ps(yb.add(36).cast::<f32>().read_unaligned());
                    for (h, a) in acc.iter_mut().enumerate() {
                        let mut s16 = [_mm256_setzero_si256(); 2];
                        let mut bits = legacy_bits_avx2::<QH>(p.add(bits_at + 32 * h));
                        for k in 0..4 {
                            let q = p.add(quants_at + 64 * k + 32 * h);
                            let [lo, hi] = legacy_values_avx2::<QH>(q, &mut bits);
                            let hi_chain = usize::from(QH);
                            s16[0] = _mm256_add_epi16(s16[0], _mm256_maddubs_epi16(lo, ylo[k]));
                            s16[hi_chain] =
                                _mm256_add_epi16(s16[hi_chain], _mm256_maddubs_epi16(hi, yhi[k]));
                        }
                        let mut isum =
                            _mm256_add_epi32(_mm256_madd_epi16(s16[0], ones), _mm256_set1_epi32(c));
                        if QH {
                            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16[1], ones));
                        }
                        let dx = _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * h).cast()));
                        *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dx, dy), *a);
                        if M {
                            let mx = _mm256_cvtph_ps(_mm_loadu_si128(p.add(32 + 16 * h).cast()));
                            *a = _mm256_fmadd_ps(mx, sy, *a);
                        }
                    }
                }
                _mm256_storeu_ps(sums.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(sums.as_mut_ptr().add(8), acc[1]);
            }
            dst.copy_from_slice(&sums[..rows]);
        }
        b0 += cb;
    }
}

/// [`interleaved_legacy_pack`] with AVX2: two 256-bit halves of eight rows, the value sums by
/// `vpmaddubsw` with ones and one `vpmaddwd` (at most 8·2·31 per i16: exact), lanes of rows past
/// `rows` cleared with a mask.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `group` must hold `nb` blocks of the layout
/// `legacy_layout(M, QH)`, `panel` `nb` panel blocks, and `rows` must be 1 to 16.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn interleaved_legacy_pack_avx2<const M: bool, const QH: bool, const OFFSET: i32>(
    nb: usize,
    group: &[u8],
    rows: usize,
    panel: &mut [u8],
) {
    let l = crate::interleaved::legacy_layout(M, QH);
    let (gb, bits_at, quants_at) = (l.group_block(), l.high_at(), l.quants_at());
    let offset = _mm256_set1_epi8(OFFSET as i8);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let keep = [0, 8].map(|h| _mm256_cmpgt_epi32(_mm256_set1_epi32(rows as i32 - h), lanes));
    for b in 0..nb {
        // SAFETY: block b is `group[b * gb..][..gb]` and `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]`,
        // both inside by the contract; unaligned loads and stores have no alignment requirement.
        unsafe {
            let src = group.as_ptr().add(b * gb);
            let dst = panel.as_mut_ptr().add(b * PANEL_BLOCK);
            for (h, &keep) in keep.iter().enumerate() {
                let mut value_sums = _mm256_setzero_si256();
                let mut bits = legacy_bits_avx2::<QH>(src.add(bits_at + 32 * h));
                for k in 0..4 {
                    let q = src.add(quants_at + 64 * k + 32 * h);
                    let [mut lo, mut hi] = legacy_values_avx2::<QH>(q, &mut bits);
                    if !M {
                        value_sums = _mm256_add_epi16(value_sums, _mm256_maddubs_epi16(lo, ones8));
                        value_sums = _mm256_add_epi16(value_sums, _mm256_maddubs_epi16(hi, ones8));
                        lo = _mm256_sub_epi8(lo, offset);
                        hi = _mm256_sub_epi8(hi, offset);
                    }
                    _mm256_storeu_si256(
                        dst.add(64 * k + 32 * h).cast(),
                        _mm256_and_si256(lo, keep),
                    );
                    _mm256_storeu_si256(
                        dst.add(64 * (4 + k) + 32 * h).cast(),
                        _mm256_and_si256(hi, keep),
                    );
                }
                let keep_ps = _mm256_castsi256_ps(keep);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(src.add(16 * h).cast()));
                _mm256_storeu_ps(dst.add(SIGNED_D + 32 * h).cast(), _mm256_and_ps(d, keep_ps));
                let last = if M {
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(src.add(32 + 16 * h).cast()));
                    _mm256_castps_si256(_mm256_and_ps(m, keep_ps))
                } else {
                    let sums = _mm256_sub_epi32(
                        _mm256_madd_epi16(value_sums, ones16),
                        _mm256_set1_epi32(OFFSET * 32),
                    );
                    _mm256_and_si256(sums, keep)
                };
                _mm256_storeu_si256(dst.add(SIGNED_SUM + 32 * h).cast(), last);
            }
        }
    }
}

/// Safe wrappers of the generic interleaved kernels `$mk` and `$pk` for one format (`M`, `QH`,
/// `OFFSET`), and the table [`crate::interleaved::kernels_for`] hands out.
macro_rules! interleaved_legacy {
    ($table:ident, $mk:ident, $pk:ident, $m:literal, $qh:literal, $offset:literal) => {
        pub(crate) static $table: crate::interleaved::InterleavedKernels = {
            const L: crate::interleaved::Layout = crate::interleaved::legacy_layout($m, $qh);
            fn matvec(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
                let nb = crate::interleaved::check_matvec_of(n, w, y, out, L.group_block());
                // SAFETY: lengths checked above; handed out by `kernels_for` only for a CPU
                // that supports the kernel's tier.
                unsafe { $mk::<$m, $qh, $offset>(nb, w, y, out) }
            }
            fn pack(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
                let nb = crate::interleaved::check_pack_of(n, group, rows, panel, L.group_block());
                // SAFETY: lengths and the row count checked above; handed out by `kernels_for`
                // only for a CPU that supports the kernel's tier.
                unsafe { $pk::<$m, $qh, $offset>(nb, group, rows, panel) }
            }
            crate::interleaved::InterleavedKernels {
                matvec,
                pack,
                group_block: L.group_block(),
            }
        };
    };
}

use interleaved_legacy_matvec as il_matvec_avx512;
use interleaved_legacy_matvec_avx2 as il_matvec_avx2;
use interleaved_legacy_pack as il_pack_avx512;
use interleaved_legacy_pack_avx2 as il_pack_avx2;
interleaved_legacy!(
    INTERLEAVED_Q4_0_AVX512,
    il_matvec_avx512,
    il_pack_avx512,
    false,
    false,
    8
);
interleaved_legacy!(
    INTERLEAVED_Q4_1_AVX512,
    il_matvec_avx512,
    il_pack_avx512,
    true,
    false,
    0
);
interleaved_legacy!(
    INTERLEAVED_Q5_0_AVX512,
    il_matvec_avx512,
    il_pack_avx512,
    false,
    true,
    16
);
interleaved_legacy!(
    INTERLEAVED_Q5_1_AVX512,
    il_matvec_avx512,
    il_pack_avx512,
    true,
    true,
    0
);
interleaved_legacy!(
    INTERLEAVED_Q4_0_AVX2,
    il_matvec_avx2,
    il_pack_avx2,
    false,
    false,
    8
);
interleaved_legacy!(
    INTERLEAVED_Q4_1_AVX2,
    il_matvec_avx2,
    il_pack_avx2,
    true,
    false,
    0
);
interleaved_legacy!(
    INTERLEAVED_Q5_0_AVX2,
    il_matvec_avx2,
    il_pack_avx2,
    false,
    true,
    16
);
interleaved_legacy!(
    INTERLEAVED_Q5_1_AVX2,
    il_matvec_avx2,
    il_pack_avx2,
    true,
    true,
    0
);

/// An interleaved Q8_0 matrix times one prepared column with AVX-512 VNNI, into `out`: per
/// group of 16 rows and block, the eight quant vectors with their top bit flipped (`q + 128`,
/// unsigned for `vpdpbusd`) and eight `vpdpbusd` with four broadcast activation bytes (two
/// chains), started at `−128·Σ q_y`, give each row's exact `Σ q·q_y` in its lane; then one
/// `vcvtph2ps` of the 16 scales and, as the reference, `acc = fma(f32(isum), d_x·d_y, acc)`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `w` must hold
/// `out.len().div_ceil(16)` groups of `nb` Q8_0 blocks and `y` `nb` prepared blocks (checked by
/// the wrapper).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_q8_0_matvec(nb: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    use crate::interleaved::{GROUP_ROWS, Q8_0_LAYOUT};
    let (gb, quants_at) = (Q8_0_LAYOUT.group_block(), Q8_0_LAYOUT.quants_at());
    let groups = out.len().div_ceil(GROUP_ROWS);
    let flip = _mm512_set1_epi8(-128);
    let mut correction = [0i32; CORRECTION_CHUNK];
    let mut b0 = 0;
    while b0 < nb {
        let cb = (nb - b0).min(CORRECTION_CHUNK);
        column_corrections(y, b0, 128, &mut correction[..cb]);
        for g in 0..groups {
            let rows = (out.len() - g * GROUP_ROWS).min(GROUP_ROWS);
            let mask = ((1u32 << rows) - 1) as __mmask16;
            let dst = &mut out[g * GROUP_ROWS..][..rows];
            let chunk = &w[(g * nb + b0) * gb..][..cb * gb];
            // SAFETY: `dst` holds `rows` f32, and the masked load and store touch only those;
            // block b of the chunk is `chunk[b * gb..][..gb]` and of the column
            // `y[(b0 + b) * COL_BLOCK..][..COL_BLOCK]`, both inside by the contract; unaligned
            // loads and broadcasts have no alignment requirement.
            unsafe {
                let mut acc = if b0 == 0 {
                    _mm512_setzero_ps()
                } else {
                    _mm512_maskz_loadu_ps(mask, dst.as_ptr())
                };
                for (b, &c) in correction[..cb].iter().enumerate() {
                    let p = chunk.as_ptr().add(b * gb);
                    let yb = y.as_ptr().add((b0 + b) * COL_BLOCK);
                    let mut sums = [_mm512_set1_epi32(c), _mm512_setzero_si512()];
                    for k in 0..8 {
                        let v = _mm512_loadu_si512(p.add(quants_at + 64 * k).cast());
                        let yk = yb.add(4 * k).cast::<i32>().read_unaligned();
                        sums[k % 2] = _mm512_dpbusd_epi32(
                            sums[k % 2],
                            _mm512_xor_si512(v, flip),
                            _mm512_set1_epi32(yk),
                        );
                    }
                    let isum = _mm512_add_epi32(sums[0], sums[1]);
                    let dx = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                    let dy = _mm512_set1_ps(yb.add(32).cast::<f32>().read_unaligned());
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dx, dy), acc);
                }
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, acc);
            }
        }
        b0 += cb;
    }
}

/// Safe wrapper of [`interleaved_q8_0_matvec`] for [`crate::interleaved::kernels_for`].
fn interleaved_q8_0_matvec_avx512_bytes(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let gb = crate::interleaved::Q8_0_LAYOUT.group_block();
    let nb = crate::interleaved::check_matvec_of(n, w, y, out, gb);
    // SAFETY: lengths checked above; handed out only for a CPU that supports the AVX-512 tier.
    unsafe { interleaved_q8_0_matvec(nb, w, y, out) }
}

/// Packs the first `rows` rows of an interleaved Q8_0 group into a signed-layout panel with
/// AVX-512: the quant vectors copied with the lanes of rows past `rows` zeroed, the row sums by
/// `vpdpbusd` of the flipped quants with ones (less 128·32), the scales by one `vcvtph2ps`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `group` must hold `nb`
/// interleaved Q8_0 blocks, `panel` `nb` panel blocks, and `rows` must be 1 to 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_q8_0_pack(nb: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    use crate::interleaved::Q8_0_LAYOUT;
    let (gb, quants_at) = (Q8_0_LAYOUT.group_block(), Q8_0_LAYOUT.quants_at());
    let mask = ((1u32 << rows) - 1) as __mmask16;
    let flip = _mm512_set1_epi8(-128);
    let ones = _mm512_set1_epi8(1);
    for b in 0..nb {
        // SAFETY: block b is `group[b * gb..][..gb]` and `panel[b * PANEL_BLOCK..][..PANEL_BLOCK]`,
        // both inside by the contract; unaligned loads and stores have no alignment requirement.
        unsafe {
            let src = group.as_ptr().add(b * gb);
            let dst = panel.as_mut_ptr().add(b * PANEL_BLOCK);
            let mut flipped_sums = _mm512_setzero_si512();
            for k in 0..8 {
                let v = _mm512_loadu_si512(src.add(quants_at + 64 * k).cast());
                flipped_sums = _mm512_dpbusd_epi32(flipped_sums, _mm512_xor_si512(v, flip), ones);
                _mm512_storeu_si512(dst.add(64 * k).cast(), _mm512_maskz_mov_epi32(mask, v));
            }
            let sums = _mm512_maskz_sub_epi32(mask, flipped_sums, _mm512_set1_epi32(128 * 32));
            let d = _mm512_maskz_mov_ps(mask, _mm512_cvtph_ps(_mm256_loadu_si256(src.cast())));
            _mm512_storeu_ps(dst.add(SIGNED_D).cast(), d);
            _mm512_storeu_si512(dst.add(SIGNED_SUM).cast(), sums);
        }
    }
}

/// Safe wrapper of [`interleaved_q8_0_pack`] for [`crate::interleaved::kernels_for`].
fn interleaved_q8_0_pack_avx512_bytes(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    let gb = crate::interleaved::Q8_0_LAYOUT.group_block();
    let nb = crate::interleaved::check_pack_of(n, group, rows, panel, gb);
    // SAFETY: lengths and the row count checked above; handed out only for a CPU that supports
    // the AVX-512 tier.
    unsafe { interleaved_q8_0_pack(nb, group, rows, panel) }
}

/// The AVX-512 kernels on interleaved Q8_0 ([`crate::interleaved::kernels_for`]).
pub(crate) static INTERLEAVED_Q8_0_AVX512: crate::interleaved::InterleavedKernels =
    crate::interleaved::InterleavedKernels {
        matvec: interleaved_q8_0_matvec_avx512_bytes,
        pack: interleaved_q8_0_pack_avx512_bytes,
        group_block: crate::interleaved::Q8_0_LAYOUT.group_block(),
    };

/// The three scale vectors of a Q4_K group super-block at `p` (each row's 12 packed bytes).
///
/// # Safety
/// AVX-512 F; `p` must point at 192 readable bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn q4_k_scales(p: *const u8) -> [__m512i; 3] {
    // SAFETY: 192 readable bytes by the contract; unaligned loads.
    unsafe { [0, 64, 128].map(|at| _mm512_loadu_si512(p.add(at).cast())) }
}

/// The 6-bit scale and minimum of sub-block `j` (0 to 7) of every row, as i32 lanes, from the
/// scale vectors `[a, b, c]` (bytes 0–3, 4–7 and 8–11 of each row's `scales`): ggml's
/// `get_scale_min_k4`, 16 rows at once.
#[inline]
#[target_feature(enable = "avx512f")]
fn q4_k_scale_min([a, b, c]: [__m512i; 3], j: usize) -> (__m512i, __m512i) {
    let byte = |v: __m512i, i: usize| _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * i as i32));
    let low6 = _mm512_set1_epi32(63);
    let low4 = _mm512_set1_epi32(15);
    let two = _mm512_set1_epi32(3);
    if j < 4 {
        (
            _mm512_and_si512(byte(a, j), low6),
            _mm512_and_si512(byte(b, j), low6),
        )
    } else {
        let (c, a, b) = (byte(c, j - 4), byte(a, j - 4), byte(b, j - 4));
        let ah = _mm512_and_si512(_mm512_srli_epi32(a, 6), two);
        let bh = _mm512_and_si512(_mm512_srli_epi32(b, 6), two);
        (
            _mm512_or_si512(_mm512_and_si512(c, low4), _mm512_slli_epi32(ah, 4)),
            _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32(c, 4), low4),
                _mm512_slli_epi32(bh, 4),
            ),
        )
    }
}

/// The layout of interleaved Q4_K (`Q5 = false`) or Q5_K (`true`): `(group super-block bytes,
/// offset of the quant vectors)`; the f16 fields and scale vectors are at the same places in
/// both, Q5_K's `qh` vectors at [`crate::interleaved::Q5_K_QH`].
const fn q45_k_layout(q5: bool) -> (usize, usize) {
    use crate::interleaved::{Q4_K_LAYOUT, Q4_K_QS, Q5_K_LAYOUT, Q5_K_QS};
    if q5 {
        (Q5_K_LAYOUT.group_block(), Q5_K_QS)
    } else {
        (Q4_K_LAYOUT.group_block(), Q4_K_QS)
    }
}

/// The value vectors of weights `64 pair + 4k..` (`lo`) and `64 pair + 32 + 4k..` (`hi`) of 16
/// rows of interleaved Q4_K or Q5_K, from quant vector `8 pair + k` (`q`) and, for Q5_K, `qh`
/// vector `k` (`h`): the nibbles, with Q5_K's fifth bits (bits `2 pair` and `2 pair + 1` of
/// each `qh` byte) as 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn q45_k_values<const Q5: bool>(q: __m512i, h: __m512i, pair: usize) -> (__m512i, __m512i) {
    let nibble = _mm512_set1_epi8(0x0f);
    let lo = _mm512_and_si512(q, nibble);
    let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), nibble);
    if !Q5 {
        return (lo, hi);
    }
    // Bits 2·pair and 2·pair + 1 of each byte to bits 0 and 1 (a 16-bit shift by at most 6
    // brings only bits above 1 of a byte from its neighbour), then to bit 4.
    let h = _mm512_srl_epi16(h, _mm_cvtsi32_si128(2 * pair as i32));
    let five = _mm512_set1_epi8(0x10);
    (
        _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(h, 4), five)),
        _mm512_or_si512(hi, _mm512_and_si512(_mm512_slli_epi16(h, 3), five)),
    )
}

/// Packs the first `rows` rows of an interleaved Q4_K or Q5_K group into the k-quant panel with
/// AVX-512, super-block by super-block: each quant vector's values ([`q45_k_values`]) are
/// already the panel's value vectors `16g + k` and `16g + 8 + k`; the scales and minimums are
/// unpacked as the product does ([`q4_k_scale_min`]) to the `sc_k` vectors and `m_k` pair
/// vectors, `d` and `−dmin` widened by `vcvtph2ps`. Lanes of rows past `rows` are zeroed, as
/// the reference packing leaves them.
///
/// # Safety
/// The CPU must support AVX-512 F and BW and F16C; `group` must hold `nb` group super-blocks of
/// the format, `panel` `nb` k-quant panel super-blocks, and `rows` must be 1 to 16.
#[target_feature(enable = "avx512f,avx512bw,f16c")]
unsafe fn interleaved_q45_k_pack_avx512<const Q5: bool>(
    nb: usize,
    group: &[u8],
    rows: usize,
    panel: &mut [u8],
) {
    use crate::interleaved::{Q4_K_DMIN, Q4_K_SCALES, Q5_K_QH};
    let (gs, qs) = q45_k_layout(Q5);
    let lanes = ((1u32 << rows) - 1) as __mmask16;
    let sign = _mm512_set1_epi32(i32::MIN);
    for b in 0..nb {
        // SAFETY: super-block b of the group is `group[b * gs..][..gs]` and of the panel
        // `panel[b * K_BLOCK..][..K_BLOCK]`, both inside by the contract; every offset below
        // is inside them (Q4_K has no `qh` vectors and reads none); unaligned loads and stores
        // have no alignment requirement.
        unsafe {
            let p = group.as_ptr().add(b * gs);
            let o = panel.as_mut_ptr().add(b * K_BLOCK);
            for g in 0..4 {
                for k in 0..8 {
                    let q = _mm512_loadu_si512(p.add(qs + 64 * (8 * g + k)).cast());
                    let h = if Q5 {
                        _mm512_loadu_si512(p.add(Q5_K_QH + 64 * k).cast())
                    } else {
                        _mm512_setzero_si512()
                    };
                    let (lo, hi) = q45_k_values::<Q5>(q, h, g);
                    _mm512_storeu_si512(
                        o.add(64 * (16 * g + k)).cast(),
                        _mm512_maskz_mov_epi32(lanes, lo),
                    );
                    _mm512_storeu_si512(
                        o.add(64 * (16 * g + 8 + k)).cast(),
                        _mm512_maskz_mov_epi32(lanes, hi),
                    );
                }
            }
            let scales = q4_k_scales(p.add(Q4_K_SCALES));
            for j in 0..8 {
                let (sc, m) = q4_k_scale_min(scales, j);
                let sc = _mm512_maskz_mov_epi32(lanes, sc);
                _mm512_storeu_si512(o.add(K_SC + 64 * 2 * j).cast(), sc);
                _mm512_storeu_si512(o.add(K_SC + 64 * (2 * j + 1)).cast(), sc);
                let pair = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
                _mm512_storeu_si512(
                    o.add(K_MIN + 64 * j).cast(),
                    _mm512_maskz_mov_epi32(lanes, pair),
                );
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(Q4_K_DMIN).cast()));
            let neg_m = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(dmin), sign));
            _mm512_storeu_ps(o.add(K_D).cast(), _mm512_maskz_mov_ps(lanes, d));
            _mm512_storeu_ps(o.add(K_NEG_M).cast(), _mm512_maskz_mov_ps(lanes, neg_m));
        }
    }
}

fn interleaved_q45_k_pack_avx512_bytes<const Q5: bool>(
    n: usize,
    group: &[u8],
    rows: usize,
    panel: &mut [u8],
) {
    let nb = crate::interleaved::check_k_pack_of(n, group, rows, panel, q45_k_layout(Q5).0);
    // SAFETY: lengths and the row count checked above; handed out by `kernels_for` only for a
    // CPU that supports AVX-512.
    unsafe { interleaved_q45_k_pack_avx512::<Q5>(nb, group, rows, panel) }
}

/// The one-column product on interleaved Q4_K or Q5_K with AVX-512 VNNI: per group of 16 rows
/// and super-block, the 16 rows' scales and minimums are unpacked from their three scale
/// vectors (`get_scale_min_k4`'s bit arithmetic, one lane per row), then for each 64-weight
/// pair of sub-blocks eight quant vectors give, by `vpdpbusd` of their values
/// ([`q45_k_values`]: nibbles, and Q5_K's fifth bits from its eight `qh` vectors) with four
/// broadcast column quants, the two sub-blocks' sums in each row's lane; `S1` gathers them
/// times their scales, `S2` the minimums times the column's 32-quant sums, and, as the k-quant
/// panels (see `crate::panel`), `acc = fma(f32(S1), d·d_y, acc)`, `acc = fma(f32(S2),
/// (−dmin)·d_y, acc)`. The last group's missing rows are masked off. No software prefetch (see
/// `crate::interleaved`).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `w` must hold
/// `out.len().div_ceil(16)` groups of `nb` group super-blocks of the format and `y` `nb` Q8_K
/// blocks (checked by the wrapper).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_q45_k_matvec_avx512<const Q5: bool>(
    nb: usize,
    w: &[u8],
    y: &[u8],
    out: &mut [f32],
) {
    use crate::interleaved::{GROUP_ROWS, Q4_K_DMIN, Q4_K_SCALES, Q5_K_QH};
    let (gs, qs) = q45_k_layout(Q5);
    let groups = out.len().div_ceil(GROUP_ROWS);
    for g in 0..groups {
        let rows = (out.len() - g * GROUP_ROWS).min(GROUP_ROWS);
        let mask = ((1u32 << rows) - 1) as __mmask16;
        let dst = &mut out[g * GROUP_ROWS..][..rows];
        let group = &w[g * nb * gs..][..nb * gs];
        // SAFETY: `dst` holds `rows` f32, and the masked store touches only those; super-block
        // b of the group is `group[b * gs..][..gs]` and of the column
        // `y[b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract (every offset
        // below is inside a group super-block or a Q8_K block; Q4_K reads no `qh` vectors);
        // unaligned loads have no alignment requirement.
        unsafe {
            let mut acc = _mm512_setzero_ps();
            for b in 0..nb {
                let p = group.as_ptr().add(b * gs);
                let yb = y.as_ptr().add(b * K_COL_BLOCK);
                let scales = q4_k_scales(p.add(Q4_K_SCALES));
                let yq = yb.add(K_COL_Q);
                let mut s1 = _mm512_setzero_si512();
                let mut s2 = _mm512_setzero_si512();
                for pair in 0..4 {
                    let mut lo_sum = _mm512_setzero_si512();
                    let mut hi_sum = _mm512_setzero_si512();
                    for k in 0..8 {
                        let q = _mm512_loadu_si512(p.add(qs + 64 * (8 * pair + k)).cast());
                        let h = if Q5 {
                            _mm512_loadu_si512(p.add(Q5_K_QH + 64 * k).cast())
                        } else {
                            _mm512_setzero_si512()
                        };
                        let (lo, hi) = q45_k_values::<Q5>(q, h, pair);
                        let ylo = yq.add(64 * pair + 4 * k).cast::<i32>().read_unaligned();
                        let yhi = yq
                            .add(64 * pair + 32 + 4 * k)
                            .cast::<i32>()
                            .read_unaligned();
                        lo_sum = _mm512_dpbusd_epi32(lo_sum, lo, _mm512_set1_epi32(ylo));
                        hi_sum = _mm512_dpbusd_epi32(hi_sum, hi, _mm512_set1_epi32(yhi));
                    }
                    for (half, sum) in [(0, lo_sum), (1, hi_sum)] {
                        let j = 2 * pair + half;
                        let (scale, min) = q4_k_scale_min(scales, j);
                        s1 = _mm512_add_epi32(s1, _mm512_mullo_epi32(sum, scale));
                        let bsum = yb
                            .add(K_COL_BSUM + 4 * j)
                            .cast::<[i16; 2]>()
                            .read_unaligned();
                        let bsum = i32::from(bsum[0]) + i32::from(bsum[1]);
                        s2 = _mm512_add_epi32(s2, _mm512_mullo_epi32(min, _mm512_set1_epi32(bsum)));
                    }
                }
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(Q4_K_DMIN).cast()));
                let dy = _mm512_set1_ps(yb.cast::<f32>().read_unaligned());
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(d, dy), acc);
                acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(s2), _mm512_mul_ps(dmin, dy), acc);
            }
            _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, acc);
        }
    }
}

fn interleaved_q45_k_matvec_avx512_bytes<const Q5: bool>(
    n: usize,
    w: &[u8],
    y: &[u8],
    out: &mut [f32],
) {
    let nb = crate::interleaved::check_k_matvec_of(n, w, y, out, q45_k_layout(Q5).0);
    // SAFETY: lengths checked above; handed out by `kernels_for` only for a CPU that supports
    // AVX-512 VNNI.
    unsafe { interleaved_q45_k_matvec_avx512::<Q5>(nb, w, y, out) }
}

/// The AVX-512 kernels on interleaved Q4_K ([`crate::interleaved::kernels_for`]).
pub(crate) static INTERLEAVED_Q4_K_AVX512: crate::interleaved::InterleavedKernels =
    crate::interleaved::InterleavedKernels {
        matvec: interleaved_q45_k_matvec_avx512_bytes::<false>,
        pack: interleaved_q45_k_pack_avx512_bytes::<false>,
        group_block: crate::interleaved::Q4_K_LAYOUT.group_block() / 8,
    };

/// The AVX-512 kernels on interleaved Q5_K ([`crate::interleaved::kernels_for`]).
pub(crate) static INTERLEAVED_Q5_K_AVX512: crate::interleaved::InterleavedKernels =
    crate::interleaved::InterleavedKernels {
        matvec: interleaved_q45_k_matvec_avx512_bytes::<true>,
        pack: interleaved_q45_k_pack_avx512_bytes::<true>,
        group_block: crate::interleaved::Q5_K_LAYOUT.group_block() / 8,
    };

/// The four value vectors (`u = q + 32`, 0 to 63) of weights `32t + 4c..32t + 4c + 4` of a
/// Q6_K half, t = 0..3, from its `ql` vectors `c` (`qa`) and `c + 8` (`qb`) and `qh` vector `c`
/// (`hb`): low nibbles of `qa`, `qb`, then high nibbles, each with its two bits of `hb`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn q6_k_values(qa: __m512i, qb: __m512i, hb: __m512i) -> [__m512i; 4] {
    let nibble = _mm512_set1_epi8(0x0f);
    let bits45 = _mm512_set1_epi8(0x30);
    [
        _mm512_or_si512(
            _mm512_and_si512(qa, nibble),
            _mm512_and_si512(_mm512_slli_epi16(hb, 4), bits45),
        ),
        _mm512_or_si512(
            _mm512_and_si512(qb, nibble),
            _mm512_and_si512(_mm512_slli_epi16(hb, 2), bits45),
        ),
        _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16(qa, 4), nibble),
            _mm512_and_si512(hb, bits45),
        ),
        _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16(qb, 4), nibble),
            _mm512_and_si512(_mm512_srli_epi16(hb, 2), bits45),
        ),
    ]
}

/// The signed 8-bit scale of 16-weight group `k` of every row, as i32 lanes, from the four
/// scale vectors of a Q6_K group super-block at `p`.
///
/// # Safety
/// AVX-512 F; `p` must point at 256 readable bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn q6_k_scale(p: *const u8, k: usize) -> __m512i {
    // SAFETY: vector k / 4 lies inside the 256 bytes by the contract; an unaligned load.
    let v = unsafe { _mm512_loadu_si512(p.add(64 * (k / 4)).cast()) };
    let up = _mm512_set1_epi32(24 - 8 * (k % 4) as i32);
    _mm512_srai_epi32(_mm512_sllv_epi32(v, up), 24)
}

/// Packs the first `rows` rows of an interleaved Q6_K group into the k-quant panel with
/// AVX-512, super-block by super-block: [`q6_k_values`] of each run of the layout are the
/// panel's value vectors `32h + 8t + c`; the signed scales, sign-extended, are the `sc_k`
/// vectors and, as i16 pairs, the `m_k` pair vectors; `d` and `−32·d` widened by `vcvtph2ps`.
/// Lanes of rows past `rows` are zeroed, as the reference packing leaves them.
///
/// # Safety
/// The CPU must support AVX-512 F and BW and F16C; `group` must hold `nb` Q6_K group
/// super-blocks, `panel` `nb` k-quant panel super-blocks, and `rows` must be 1 to 16.
#[target_feature(enable = "avx512f,avx512bw,f16c")]
unsafe fn interleaved_q6_k_pack_avx512(nb: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    use crate::interleaved::{Q6_K_LAYOUT, Q6_K_QUANTS, Q6_K_SCALES};
    let gs = Q6_K_LAYOUT.group_block();
    let lanes = ((1u32 << rows) - 1) as __mmask16;
    for b in 0..nb {
        // SAFETY: super-block b of the group is `group[b * gs..][..gs]` and of the panel
        // `panel[b * K_BLOCK..][..K_BLOCK]`, both inside by the contract; every offset below
        // is inside them; unaligned loads and stores have no alignment requirement.
        unsafe {
            let p = group.as_ptr().add(b * gs);
            let o = panel.as_mut_ptr().add(b * K_BLOCK);
            for half in 0..2 {
                for quarter in 0..2 {
                    let run = p.add(Q6_K_QUANTS + 768 * (2 * half + quarter));
                    for c in 4 * quarter..4 * quarter + 4 {
                        let v = 64 * (c % 4);
                        let qa = _mm512_loadu_si512(run.add(v).cast());
                        let qb = _mm512_loadu_si512(run.add(256 + v).cast());
                        let hb = _mm512_loadu_si512(run.add(512 + v).cast());
                        for (t, u) in q6_k_values(qa, qb, hb).into_iter().enumerate() {
                            let at = o.add(64 * (32 * half + 8 * t + c));
                            _mm512_storeu_si512(at.cast(), _mm512_maskz_mov_epi32(lanes, u));
                        }
                    }
                }
            }
            let low16 = _mm512_set1_epi32(0xffff);
            for i in 0..8 {
                let (s0, s1) = (
                    q6_k_scale(p.add(Q6_K_SCALES), 2 * i),
                    q6_k_scale(p.add(Q6_K_SCALES), 2 * i + 1),
                );
                _mm512_storeu_si512(
                    o.add(K_SC + 64 * 2 * i).cast(),
                    _mm512_maskz_mov_epi32(lanes, s0),
                );
                _mm512_storeu_si512(
                    o.add(K_SC + 64 * (2 * i + 1)).cast(),
                    _mm512_maskz_mov_epi32(lanes, s1),
                );
                let pair = _mm512_or_si512(_mm512_and_si512(s0, low16), _mm512_slli_epi32(s1, 16));
                _mm512_storeu_si512(
                    o.add(K_MIN + 64 * i).cast(),
                    _mm512_maskz_mov_epi32(lanes, pair),
                );
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let neg_m = _mm512_mul_ps(d, _mm512_set1_ps(-32.0));
            _mm512_storeu_ps(o.add(K_D).cast(), _mm512_maskz_mov_ps(lanes, d));
            _mm512_storeu_ps(o.add(K_NEG_M).cast(), _mm512_maskz_mov_ps(lanes, neg_m));
        }
    }
}

fn interleaved_q6_k_pack_avx512_bytes(n: usize, group: &[u8], rows: usize, panel: &mut [u8]) {
    let gs = crate::interleaved::Q6_K_LAYOUT.group_block();
    let nb = crate::interleaved::check_k_pack_of(n, group, rows, panel, gs);
    // SAFETY: lengths and the row count checked above; handed out by `kernels_for` only for a
    // CPU that supports AVX-512.
    unsafe { interleaved_q6_k_pack_avx512(nb, group, rows, panel) }
}

/// The one-column product on interleaved Q6_K with AVX-512 VNNI: per group of 16 rows and
/// super-block, for each half (128 weights) and each dword `c` of its first 32 `ql` bytes, two
/// `ql` vectors and one `qh` vector (read in the order the layout stores them, so that the
/// group is one forward stream) give four value vectors (low and high nibbles, each with its
/// two high bits: `u = q + 32`, 0..63), whose `vpdpbusd` with four broadcast column quants add
/// into the sums of four 16-weight groups; `S1` gathers each group's sum times its signed scale
/// (sign-extended from its byte in the scale vectors), `S2` the scales times the column's
/// 16-quant sums, and, as the k-quant panels (see `crate::panel`), `acc = fma(f32(S1), d·d_y,
/// acc)`, `acc = fma(f32(S2), (−32·d)·d_y, acc)`. The last group's missing rows are masked off.
/// No software prefetch (see `crate::interleaved`).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `w` must hold
/// `out.len().div_ceil(16)` groups of `nb` Q6_K group super-blocks and `y` `nb` Q8_K blocks
/// (checked by the wrapper).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn interleaved_q6_k_matvec_avx512(nb: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    use crate::interleaved::{GROUP_ROWS, Q6_K_LAYOUT, Q6_K_QUANTS, Q6_K_SCALES};
    let gs = Q6_K_LAYOUT.group_block();
    let groups = out.len().div_ceil(GROUP_ROWS);
    for g in 0..groups {
        let rows = (out.len() - g * GROUP_ROWS).min(GROUP_ROWS);
        let mask = ((1u32 << rows) - 1) as __mmask16;
        let dst = &mut out[g * GROUP_ROWS..][..rows];
        let group = &w[g * nb * gs..][..nb * gs];
        // SAFETY: `dst` holds `rows` f32, and the masked store touches only those; super-block
        // b of the group is `group[b * gs..][..gs]` and of the column
        // `y[b * K_COL_BLOCK..][..K_COL_BLOCK]`, both inside by the contract (every offset
        // below is inside a group super-block or a Q8_K block); unaligned loads have no
        // alignment requirement.
        unsafe {
            let mut acc = _mm512_setzero_ps();
            for b in 0..nb {
                let p = group.as_ptr().add(b * gs);
                let yb = y.as_ptr().add(b * K_COL_BLOCK);
                let yq = yb.add(K_COL_Q);
                let bsums = yb.add(K_COL_BSUM).cast::<[i16; 16]>().read_unaligned();
                let mut s1 = _mm512_setzero_si512();
                let mut s2 = _mm512_setzero_si512();
                for half in 0..2 {
                    for quarter in 0..2 {
                        // Sums of the groups 8·half + 2t + quarter, t = 0..3.
                        let mut sums = [_mm512_setzero_si512(); 4];
                        let run = p.add(Q6_K_QUANTS + 768 * (2 * half + quarter));
                        for c in 4 * quarter..4 * quarter + 4 {
                            let v = 64 * (c % 4);
                            let qa = _mm512_loadu_si512(run.add(v).cast());
                            let qb = _mm512_loadu_si512(run.add(256 + v).cast());
                            let hb = _mm512_loadu_si512(run.add(512 + v).cast());
                            let values = q6_k_values(qa, qb, hb);
                            for (t, (sum, v)) in sums.iter_mut().zip(values).enumerate() {
                                let at = 128 * half + 32 * t + 4 * c;
                                let q = yq.add(at).cast::<i32>().read_unaligned();
                                *sum = _mm512_dpbusd_epi32(*sum, v, _mm512_set1_epi32(q));
                            }
                        }
                        for (t, sum) in sums.into_iter().enumerate() {
                            let k = 8 * half + 2 * t + quarter;
                            let scale = q6_k_scale(p.add(Q6_K_SCALES), k);
                            s1 = _mm512_add_epi32(s1, _mm512_mullo_epi32(sum, scale));
                            let bsum = _mm512_set1_epi32(i32::from(bsums[k]));
                            s2 = _mm512_add_epi32(s2, _mm512_mullo_epi32(scale, bsum));
                        }
                    }
                }
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
                let dy = _mm512_set1_ps(yb.cast::<f32>().read_unaligned());
                let m = _mm512_mul_ps(d, _mm512_set1_ps(32.0));
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(d, dy), acc);
                acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(s2), _mm512_mul_ps(m, dy), acc);
            }
            _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, acc);
        }
    }
}

fn interleaved_q6_k_matvec_avx512_bytes(n: usize, w: &[u8], y: &[u8], out: &mut [f32]) {
    let gs = crate::interleaved::Q6_K_LAYOUT.group_block();
    let nb = crate::interleaved::check_k_matvec_of(n, w, y, out, gs);
    // SAFETY: lengths checked above; handed out by `kernels_for` only for a CPU that supports
    // AVX-512 VNNI.
    unsafe { interleaved_q6_k_matvec_avx512(nb, w, y, out) }
}

/// The AVX-512 kernels on interleaved Q6_K ([`crate::interleaved::kernels_for`]).
pub(crate) static INTERLEAVED_Q6_K_AVX512: crate::interleaved::InterleavedKernels =
    crate::interleaved::InterleavedKernels {
        matvec: interleaved_q6_k_matvec_avx512_bytes,
        pack: interleaved_q6_k_pack_avx512_bytes,
        group_block: crate::interleaved::Q6_K_LAYOUT.group_block() / 8,
    };
