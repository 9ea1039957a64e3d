//! Multi-column dot-product kernels for x86-64: tiles of one or two weight rows × four activation
//! columns, for [`crate::matrix`]'s matrix-matrix products (batched prefill).
//!
//! Each kernel loads and unpacks a weight block once and reuses it for every column (and, in
//! two-row tiles, loads each column's block once for both rows), and keeps one accumulator per
//! (row, column) that receives exactly the operations, in exactly the order, of
//! the single-column kernel it is paired with in [`crate::dispatch`] (same instructions, same
//! lane layout of the integer sums, same f32 rounding steps, same final reduction). Integer
//! block sums are exact, so only the f32 steps have to be mirrored; the result per column is
//! then bit for bit that single-column kernel's (`tests/matrix.rs` checks every pair). Pairs:
//!
//! | format | AVX2 tier                      | AVX-512 tier                     |
//! |--------|--------------------------------|----------------------------------|
//! | Q8_0   | `x86_avx2` Q8_0 kernel         | `x86_avx512` Q8_0 kernel (VNNI)  |
//! | Q4_1   | `x86_avx2` Q4_1 kernel         | `x86_avx512` Q4_1 kernel (VNNI)  |
//! | Q4_K   | `x86_avx2` Q4_K kernel         | `x86_avx512` Q4_K kernel         |
//! | Q6_K   | `x86_avx2` Q6_K kernel         | `x86_avx512` Q6_K kernel         |
//! | Q5_0   | `x86_avx2` Q5_0 kernel         | `x86_avx512` Q5_0 kernel (VNNI)  |
//!
//! Like the single-column kernels, these are `unsafe fn`s with `#[target_feature]`, reached only
//! through the safe `_bytes` wrappers installed in the dispatch tables of tiers that require
//! those features. Columns come in groups of four, the last one to three one at a time; rows in
//! tiles of `R` (chosen per kernel by measurement: two where the tile's accumulators and
//! unpacked weights fit the registers, one where two rows made AVX2's 16 registers spill and
//! ran slower), the last rows one at a time. No kernel has a weight tail: rows are whole blocks.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use crate::block::{GgmlBlock, check_dot};
use crate::kquants::{BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use crate::legacy::{BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use crate::traits::blocks;
use crate::x86_avx2::{
    f16x2_to_f32, hsum_f32x8, k4_scales_mins_fast, vec_dot_q4_1_q8_1_avx2, vec_dot_q5_0_q8_0_avx2,
    vec_dot_q8_0_q8_0_avx2,
};

/// Columns per kernel call.
const GROUP: usize = 4;

/// Runs the tile kernels over `rows` weight rows (`x`, one after the other, `n` weights each)
/// and `out.len() / rows` columns (`ys[j * y_stride..]`): `R` rows by [`GROUP`] columns at a
/// time (`tile`), the last columns one at a time (`tile_col`), the last rows one at a time
/// (`row`, `row_col`). Result `(r, j)` goes to `out[r * columns + j]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn by_tiles<X: GgmlBlock, const R: usize>(
    n: usize,
    x: &[u8],
    rows: usize,
    ys: &[u8],
    y_stride: usize,
    out: &mut [f32],
    tile: impl Fn([&[X]; R], [&[X::VecDot]; GROUP]) -> [[f32; GROUP]; R],
    tile_col: impl Fn([&[X]; R], [&[X::VecDot]; 1]) -> [[f32; 1]; R],
    row: impl Fn([&[X]; 1], [&[X::VecDot]; GROUP]) -> [[f32; GROUP]; 1],
    row_col: impl Fn([&[X]; 1], [&[X::VecDot]; 1]) -> [[f32; 1]; 1],
) {
    if rows == 0 {
        return;
    }
    let xb = blocks::<X>(x);
    let nb = n / X::WEIGHTS;
    let ncols = out.len() / rows;
    let y_bytes = n / <X::VecDot as GgmlBlock>::WEIGHTS * core::mem::size_of::<X::VecDot>();
    let w = |r: usize| &xb[r * nb..(r + 1) * nb];
    let col = |j: usize| blocks::<X::VecDot>(&ys[j * y_stride..j * y_stride + y_bytes]);
    let mut r = 0;
    while r + R <= rows {
        let xs: [&[X]; R] = core::array::from_fn(|k| w(r + k));
        let mut j = 0;
        while j + GROUP <= ncols {
            let t = tile(xs, [col(j), col(j + 1), col(j + 2), col(j + 3)]);
            for (k, v) in t.iter().enumerate() {
                out[(r + k) * ncols + j..][..GROUP].copy_from_slice(v);
            }
            j += GROUP;
        }
        while j < ncols {
            let t = tile_col(xs, [col(j)]);
            for (k, v) in t.iter().enumerate() {
                out[(r + k) * ncols + j] = v[0];
            }
            j += 1;
        }
        r += R;
    }
    while r < rows {
        let mut j = 0;
        while j + GROUP <= ncols {
            let t = row([w(r)], [col(j), col(j + 1), col(j + 2), col(j + 3)]);
            out[r * ncols + j..][..GROUP].copy_from_slice(&t[0]);
            j += GROUP;
        }
        while j < ncols {
            out[r * ncols + j] = row_col([w(r)], [col(j)])[0][0];
            j += 1;
        }
        r += 1;
    }
}

/// Defines the safe `VecDotMultiFn` wrapper `$name` of the tile kernel `$kernel` (an `unsafe
/// fn` generic over rows and columns) with `$r` rows per tile.
macro_rules! tile_wrapper {
    ($(#[$doc:meta])* $name:ident, $x:ty, $r:literal, $kernel:ident) => {
        $(#[$doc])*
        pub(crate) fn $name(
            n: usize,
            x: &[u8],
            rows: usize,
            ys: &[u8],
            y_stride: usize,
            out: &mut [f32],
        ) {
            by_tiles::<$x, $r>(
                n,
                x,
                rows,
                ys,
                y_stride,
                out,
                // SAFETY: this wrapper is installed only in the dispatch tables of
                // tiers that require the features of `$kernel`, and those tables are handed out
                // only after the features were detected.
                |xs, ys| unsafe { $kernel::<$r, GROUP>(n, xs, ys) },
                // SAFETY: as above.
                |xs, ys| unsafe { $kernel::<$r, 1>(n, xs, ys) },
                // SAFETY: as above.
                |xs, ys| unsafe { $kernel::<1, GROUP>(n, xs, ys) },
                // SAFETY: as above.
                |xs, ys| unsafe { $kernel::<1, 1>(n, xs, ys) },
            );
        }
    };
}

/// Checks every row and column (as the single-column kernels do) and returns the block count
/// with every row and column cut to exactly that many blocks, so that indexing them by a block
/// number below it needs no bounds check.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn check_all<'a, X: GgmlBlock, const R: usize, const C: usize>(
    n: usize,
    xs: [&'a [X]; R],
    ys: [&'a [X::VecDot]; C],
) -> (usize, [&'a [X]; R], [&'a [X::VecDot]; C]) {
    let mut nb = n / X::WEIGHTS;
    for x in xs {
        for y in ys {
            nb = check_dot(n, x, y);
        }
    }
    (nb, xs.map(|x| &x[..nb]), ys.map(|y| &y[..nb]))
}

// ---------------------------------------------------------------------------------------------
// AVX2 helpers (the same instructions as `x86_avx2`'s, so the integer lanes match)

/// Sum of the 32 products of unsigned `x` and signed `y` bytes as eight i32 lanes in f32, each
/// lane the four products of its four bytes (`maddubs` pairs, `madd` by one).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// # Safety
/// `p` must be valid for reading 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

// ---------------------------------------------------------------------------------------------
// Q8_0 · Q8_0, AVX2

/// `R` rows × `C` columns of `vec_dot_q8_0_q8_0_avx2`: `|q_x|` once per row and block, each
/// column's quants and scale loaded once per block, `q_y` signed by `q_x` and `d_x·d_y` per
/// pair, one 8-lane FMA accumulator per pair.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_0_avx2<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ8_0]; R],
    ys: [&[BlockQ8_0]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    for i in 0..nb {
        let mut qx = [_mm256_setzero_si256(); R];
        let mut ax = [_mm256_setzero_si256(); R];
        let mut dx = [_mm_setzero_ps(); R];
        for r in 0..R {
            // SAFETY: `qs` is a 32-byte array.
            qx[r] = unsafe { load32(xs[r][i].qs.as_ptr()) };
            ax[r] = _mm256_sign_epi8(qx[r], qx[r]);
            dx[r] = f16x2_to_f32(xs[r][i].d, [0; 2]);
        }
        for c in 0..C {
            let by = &ys[c][i];
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(by.qs.as_ptr()) };
            let dy = f16x2_to_f32(by.d, [0; 2]);
            for r in 0..R {
                let sumi = dot_u8_i8(ax[r], _mm256_sign_epi8(qy, qx[r]));
                let d = _mm_mul_ps(dx[r], dy);
                acc[r][c] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), sumi, acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum_f32x8(acc[r][c]);
        }
    }
    out
}

tile_wrapper!(
    /// Q8_0 rows against Q8_0 columns; pairs with `vec_dot_q8_0_q8_0_avx2_bytes`.
    vec_dot_multi_q8_0_q8_0_avx2_bytes,
    BlockQ8_0,
    1,
    q8_0_q8_0_avx2
);

// ---------------------------------------------------------------------------------------------
// Q4_1 · Q8_1, AVX2

/// `R` rows × `C` columns of `vec_dot_q4_1_q8_1_avx2`: nibbles unpacked once per row and block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_q8_1_avx2<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ4_1]; R],
    ys: [&[BlockQ8_1]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut acc_ms = [[_mm_setzero_ps(); C]; R];
    for i in 0..nb {
        let mut qx = [_mm256_setzero_si256(); R];
        let mut dmx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let bx = &xs[r][i];
            // SAFETY: `qs` is a 16-byte array; `loadu` has no alignment requirement.
            let q4 = unsafe { _mm_loadu_si128(bx.qs.as_ptr().cast()) };
            qx[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q4), q4), low_nibbles);
            dmx[r] = f16x2_to_f32(bx.d, bx.m);
        }
        for c in 0..C {
            let by = &ys[c][i];
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(by.qs.as_ptr()) };
            let dsy = f16x2_to_f32(by.d, by.s);
            for r in 0..R {
                let sumi = dot_u8_i8(qx[r], qy);
                let dm = _mm_mul_ps(dmx[r], dsy);
                acc[r][c] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dm), sumi, acc[r][c]);
                acc_ms[r][c] = _mm_add_ps(acc_ms[r][c], dm);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum_f32x8(acc[r][c]) + _mm_cvtss_f32(_mm_movehdup_ps(acc_ms[r][c]));
        }
    }
    out
}

tile_wrapper!(
    /// Q4_1 rows against Q8_1 columns; pairs with `vec_dot_q4_1_q8_1_avx2_bytes`.
    vec_dot_multi_q4_1_q8_1_avx2_bytes,
    BlockQ4_1,
    1,
    q4_1_q8_1_avx2
);

// ---------------------------------------------------------------------------------------------
// Q4_K · Q8_K, AVX2

/// Defines `$name`, the Q4_K tile kernel compiled for the features `$features`. Only the AVX2
/// instance exists (an instance compiled for AVX-512's 32 registers with two-row tiles measured
/// no faster); the AVX-512 tier has `q4_k_q8_k_avx512`, which mirrors that tier's own kernel.
macro_rules! q4_k_tile {
    ($name:ident, $features:literal) => {
        /// `R` rows × `C` columns of `vec_dot_q4_k_q8_k_avx2`: scales, minimums and nibbles unpacked
        /// once per row and block, each column's quants loaded once per block.
        ///
        /// # Safety
        /// The CPU must support the features `$features` names.
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize, const C: usize>(
            n: usize,
            xs: [&[BlockQ4K]; R],
            ys: [&[BlockQ8K]; C],
        ) -> [[f32; C]; R] {
            let (nb, xs, ys) = check_all(n, xs, ys);
            let low_nibbles = _mm256_set1_epi8(0x0f);
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let mut acc_min = [[_mm256_setzero_ps(); C]; R];
            for i in 0..nb {
                let mut scales = [[0u8; 8]; R];
                // Each 32-weight minimum twice, as i16: one per 16-quant group sum of Q8_K.
                let mut mins = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    let (sc, m) = k4_scales_mins_fast(&xs[r][i].scales);
                    scales[r] = sc;
                    let m = _mm_cvtsi64_si128(i64::from_le_bytes(m));
                    mins[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
                }
                let mut sumi = [[_mm256_setzero_si256(); C]; R];
                for g in 0..QK_K / 64 {
                    let mut lo = [_mm256_setzero_si256(); R];
                    let mut hi = [_mm256_setzero_si256(); R];
                    let mut s0 = [_mm256_setzero_si256(); R];
                    let mut s1 = [_mm256_setzero_si256(); R];
                    for r in 0..R {
                        // SAFETY: `32 * g + 32 <= 128`, the length of `qs`.
                        let q4 = unsafe { load32(xs[r][i].qs.as_ptr().add(32 * g).cast()) };
                        lo[r] = _mm256_and_si256(q4, low_nibbles);
                        hi[r] = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), low_nibbles);
                        s0[r] = _mm256_set1_epi16(i16::from(scales[r][2 * g]));
                        s1[r] = _mm256_set1_epi16(i16::from(scales[r][2 * g + 1]));
                    }
                    for c in 0..C {
                        let yq = ys[c][i].qs.as_ptr();
                        let y0 =
                            // SAFETY: `64 * g + 32 <= 256`, the length of `qs`.
                            unsafe { load32(yq.add(64 * g)) };
                        let y1 =
                            // SAFETY: `64 * g + 64 <= 256`, the length of `qs`.
                            unsafe { load32(yq.add(64 * g + 32)) };
                        for r in 0..R {
                            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], y0), s0[r]);
                            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], y1), s1[r]);
                            sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_add_epi32(p0, p1));
                        }
                    }
                }
                for c in 0..C {
                    let by = &ys[c][i];
                    let dy = _mm_set1_ps(by.scale());
                    // SAFETY: `bsums` is 16 two-byte values (32 bytes).
                    let bsums = unsafe { load32(by.bsums.as_ptr().cast()) };
                    for r in 0..R {
                        // Σ_j bsum_j·min_(j/2) as the single-column kernel's eight i32 lanes.
                        let summin = _mm256_madd_epi16(mins[r], bsums);
                        let d = _mm_mul_ps(f16x2_to_f32(xs[r][i].d, xs[r][i].dmin), dy);
                        acc[r][c] = _mm256_fmadd_ps(
                            _mm256_broadcastss_ps(d),
                            _mm256_cvtepi32_ps(sumi[r][c]),
                            acc[r][c],
                        );
                        acc_min[r][c] = _mm256_fmadd_ps(
                            _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
                            _mm256_cvtepi32_ps(summin),
                            acc_min[r][c],
                        );
                    }
                }
            }
            let mut out = [[0f32; C]; R];
            for r in 0..R {
                for c in 0..C {
                    out[r][c] = hsum_f32x8(_mm256_sub_ps(acc[r][c], acc_min[r][c]));
                }
            }
            out
        }
    };
}

q4_k_tile!(q4_k_q8_k_avx2, "avx2,fma,f16c");

tile_wrapper!(
    /// Q4_K rows against Q8_K columns; pairs with `vec_dot_q4_k_q8_k_avx2_bytes`.
    vec_dot_multi_q4_k_q8_k_avx2_bytes,
    BlockQ4K,
    1,
    q4_k_q8_k_avx2
);

// ---------------------------------------------------------------------------------------------
// Q6_K · Q8_K, AVX2

/// Defines `$name`, the Q6_K tile kernel compiled for the features `$features`. Only the AVX2
/// instance exists (an instance compiled for AVX-512's 32 registers with two-row tiles was 10 %
/// faster at 32 columns but two times slower at 4 and 8); the AVX-512 tier has
/// `q6_k_q8_k_avx512`, which mirrors that tier's own kernel.
macro_rules! q6_k_tile {
    ($name:ident, $features:literal) => {
        /// `R` rows × `C` columns of `vec_dot_q6_k_q8_k_avx2`: the 6-bit quants rebuilt once per row
        /// and block, each column's quants loaded once per block.
        ///
        /// # Safety
        /// The CPU must support the features `$features` names.
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize, const C: usize>(
            n: usize,
            xs: [&[BlockQ6K]; R],
            ys: [&[BlockQ8K]; C],
        ) -> [[f32; C]; R] {
            let (nb, xs, ys) = check_all(n, xs, ys);
            let m4 = _mm256_set1_epi8(0x0f);
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            for i in 0..nb {
                // The sixteen signed scales of each row as i16, for the offset term.
                let mut sc16 = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    // SAFETY: `scales` is a 16-byte array.
                    let s8 = unsafe { _mm_loadu_si128(xs[r][i].scales.as_ptr().cast()) };
                    sc16[r] = _mm256_cvtepi8_epi16(s8);
                }
                let mut sumi = [[_mm256_setzero_si256(); C]; R];
                for h in 0..2 {
                    let mut qs = [[_mm256_setzero_si256(); 4]; R];
                    let mut sc = [[_mm256_setzero_si256(); 4]; R];
                    for r in 0..R {
                        let bx = &xs[r][i];
                        // SAFETY: the offsets keep the loads inside `ql` (128 bytes) and `qh` (64 bytes).
                        let (ql0, ql1, qh) = unsafe {
                            (
                                load32(bx.ql.as_ptr().add(64 * h).cast()),
                                load32(bx.ql.as_ptr().add(64 * h + 32).cast()),
                                load32(bx.qh.as_ptr().add(32 * h).cast()),
                            )
                        };
                        qs[r] = [
                            _mm256_or_si256(
                                _mm256_and_si256(ql0, m4),
                                _mm256_slli_epi16::<4>(_mm256_and_si256(
                                    qh,
                                    _mm256_set1_epi8(0x03),
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(ql1, m4),
                                _mm256_slli_epi16::<2>(_mm256_and_si256(
                                    qh,
                                    _mm256_set1_epi8(0x0c),
                                )),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                                _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                                _mm256_srli_epi16::<2>(_mm256_and_si256(
                                    qh,
                                    _mm256_set1_epi8(0xc0u8 as i8),
                                )),
                            ),
                        ];
                        for (k, s) in sc[r].iter_mut().enumerate() {
                            let j = 8 * h + 2 * k;
                            *s = _mm256_set_m128i(
                                _mm_set1_epi16(i16::from(bx.scales[j + 1])),
                                _mm_set1_epi16(i16::from(bx.scales[j])),
                            );
                        }
                    }
                    for c in 0..C {
                        let yp = ys[c][i].qs.as_ptr();
                        for k in 0..4 {
                            // SAFETY: `128 * h + 32 * k + 32 <= 256`, the length of `qs`.
                            let yk = unsafe { load32(yp.add(128 * h + 32 * k)) };
                            for r in 0..R {
                                let pairs = _mm256_maddubs_epi16(qs[r][k], yk);
                                sumi[r][c] = _mm256_add_epi32(
                                    sumi[r][c],
                                    _mm256_madd_epi16(pairs, sc[r][k]),
                                );
                            }
                        }
                    }
                }
                for c in 0..C {
                    let by = &ys[c][i];
                    let dy = _mm_set1_ps(by.scale());
                    // SAFETY: `bsums` is 16 two-byte values (32 bytes).
                    let bsums = unsafe { load32(by.bsums.as_ptr().cast()) };
                    for r in 0..R {
                        // Σ sc·q·y − 32·Σ sc·bsum, lane by lane, as the single-column kernel.
                        let offset = _mm256_madd_epi16(sc16[r], bsums);
                        sumi[r][c] = _mm256_sub_epi32(sumi[r][c], _mm256_slli_epi32::<5>(offset));
                        let d = _mm_mul_ps(f16x2_to_f32(xs[r][i].d, [0; 2]), dy);
                        acc[r][c] = _mm256_fmadd_ps(
                            _mm256_broadcastss_ps(d),
                            _mm256_cvtepi32_ps(sumi[r][c]),
                            acc[r][c],
                        );
                    }
                }
            }
            let mut out = [[0f32; C]; R];
            for r in 0..R {
                for c in 0..C {
                    out[r][c] = hsum_f32x8(acc[r][c]);
                }
            }
            out
        }
    };
}

q6_k_tile!(q6_k_q8_k_avx2, "avx2,fma,f16c");

tile_wrapper!(
    /// Q6_K rows against Q8_K columns; pairs with `vec_dot_q6_k_q8_k_avx2_bytes`.
    vec_dot_multi_q6_k_q8_k_avx2_bytes,
    BlockQ6K,
    1,
    q6_k_q8_k_avx2
);

// ---------------------------------------------------------------------------------------------
// Q5_0 · Q8_0, AVX2

/// `R` rows × `C` columns of `vec_dot_q5_0_q8_0_avx2`: the unsigned 5-bit quants (nibble, plus
/// 16 where the fifth bit is set) rebuilt once per row and block, `maddubs(16, y)` once per
/// column and block, `maddubs(q, y) − maddubs(16, y)` per pair (exact for every activation
/// byte), `d_x·d_y` per pair and one 8-lane FMA accumulator per pair.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_q8_0_avx2<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ5_0]; R],
    ys: [&[BlockQ8_0]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let sixteen = _mm256_set1_epi8(16);
    let ones = _mm256_set1_epi16(1);
    // Byte i of a vector picks byte i / 8 of `qh`, then tests bit i % 8.
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    for i in 0..nb {
        let mut q = [_mm256_setzero_si256(); R];
        let mut dx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let bx = &xs[r][i];
            // SAFETY: `qs` is a 16-byte array; `loadu` has no alignment requirement.
            let q4 = unsafe { _mm_loadu_si128(bx.qs.as_ptr().cast()) };
            // Weights 0..16 are the low nibbles, 16..32 the high ones; bit j of `qh` is bit 4
            // of weight j.
            let lo = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q4), q4), low_nibbles);
            let qh = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(bx.qh)), spread);
            let high = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
            q[r] = _mm256_or_si256(lo, _mm256_and_si256(high, sixteen));
            dx[r] = f16x2_to_f32(bx.d, [0; 2]);
        }
        for c in 0..C {
            let by = &ys[c][i];
            // SAFETY: `qs` is a 32-byte array.
            let qy = unsafe { load32(by.qs.as_ptr()) };
            let y16 = _mm256_maddubs_epi16(sixteen, qy);
            let dy = f16x2_to_f32(by.d, [0; 2]);
            for r in 0..R {
                let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(q[r], qy), y16);
                let sumi = _mm256_madd_epi16(pairs, ones);
                let d = _mm_mul_ps(dx[r], dy);
                acc[r][c] = _mm256_fmadd_ps(
                    _mm256_broadcastss_ps(d),
                    _mm256_cvtepi32_ps(sumi),
                    acc[r][c],
                );
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = hsum_f32x8(acc[r][c]);
        }
    }
    out
}

tile_wrapper!(
    /// Q5_0 rows against Q8_0 columns; pairs with `vec_dot_q5_0_q8_0_avx2_bytes`.
    vec_dot_multi_q5_0_q8_0_avx2_bytes,
    BlockQ5_0,
    2,
    q5_0_q8_0_avx2
);

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI

/// Four little-endian halves widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16x4_to_f32(a: [u8; 2], b: [u8; 2], c: [u8; 2], e: [u8; 2]) -> __m128 {
    let bits = i64::from_le_bytes([a[0], a[1], b[0], b[1], c[0], c[1], e[0], e[1]]);
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits))
}

/// Lanes 0..8 of the result are lane `i` of `v`, lanes 8..16 lane `j`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn spread_two(v: __m128, i: i32, j: i32) -> __m512 {
    let idx = _mm512_setr_epi32(i, i, i, i, i, i, i, i, j, j, j, j, j, j, j, j);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v))
}

/// The 32 quants of two blocks, `a` in the low half.
///
/// # Safety
/// `a` and `b` must be valid for reading 32 bytes each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn load_two(a: *const i8, b: *const i8) -> __m512i {
    // SAFETY: the caller guarantees 32 readable bytes at each pointer.
    unsafe {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(a.cast())),
            _mm256_loadu_si256(b.cast()),
        )
    }
}

/// `R` rows × `C` columns of `vec_dot_q8_0_q8_0_avx512`: two blocks per register, `|q_x|`
/// and the sign mask once per row and pair of blocks, `vpdpbusd` per row and column, the odd
/// last block through the AVX2 kernel.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_0_q8_0_avx512<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ8_0]; R],
    ys: [&[BlockQ8_0]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for p in 0..nb / 2 {
        let mut negative = [0u64; R];
        let mut ax = [_mm512_setzero_si512(); R];
        let mut dx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let (b0, b1) = (&xs[r][2 * p], &xs[r][2 * p + 1]);
            // SAFETY: every `qs` is a 32-byte array.
            let qx = unsafe { load_two(b0.qs.as_ptr(), b1.qs.as_ptr()) };
            negative[r] = _mm512_movepi8_mask(qx);
            ax[r] = _mm512_abs_epi8(qx);
            dx[r] = f16x4_to_f32(b0.d, b1.d, [0; 2], [0; 2]);
        }
        for c in 0..C {
            let (y0, y1) = (&ys[c][2 * p], &ys[c][2 * p + 1]);
            // SAFETY: every `qs` is a 32-byte array.
            let qy = unsafe { load_two(y0.qs.as_ptr(), y1.qs.as_ptr()) };
            let dy = f16x4_to_f32(y0.d, y1.d, [0; 2], [0; 2]);
            for r in 0..R {
                let qy_signed = _mm512_mask_sub_epi8(qy, negative[r], _mm512_setzero_si512(), qy);
                let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax[r], qy_signed);
                let d = _mm_mul_ps(dx[r], dy);
                acc[r][c] =
                    _mm512_fmadd_ps(spread_two(d, 0, 1), _mm512_cvtepi32_ps(sumi), acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
            if nb % 2 == 1 {
                let last = nb - 1;
                // SAFETY: this function's preconditions include AVX2, FMA and F16C.
                out[r][c] +=
                    unsafe { vec_dot_q8_0_q8_0_avx2(32, &xs[r][last..nb], &ys[c][last..nb]) };
            }
        }
    }
    out
}

tile_wrapper!(
    /// Q8_0 rows against Q8_0 columns; pairs with `vec_dot_q8_0_q8_0_avx512_bytes`.
    vec_dot_multi_q8_0_q8_0_avx512_bytes,
    BlockQ8_0,
    2,
    q8_0_q8_0_avx512
);

/// `R` rows × `C` columns of `vec_dot_q4_1_q8_1_avx512`: two blocks of nibbles unpacked once
/// per row and pair of blocks.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_1_q8_1_avx512<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ4_1]; R],
    ys: [&[BlockQ8_1]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut acc_ms = [[_mm_setzero_ps(); C]; R];
    for p in 0..nb / 2 {
        let mut qx = [_mm512_setzero_si512(); R];
        let mut dmx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let (b0, b1) = (&xs[r][2 * p], &xs[r][2 * p + 1]);
            // SAFETY: every `qs` of Q4_1 is a 16-byte array; `loadu` has no alignment
            // requirement.
            let (q0, q1) = unsafe {
                (
                    _mm_loadu_si128(b0.qs.as_ptr().cast()),
                    _mm_loadu_si128(b1.qs.as_ptr().cast()),
                )
            };
            qx[r] = _mm512_and_si512(
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_set_m128i(_mm_srli_epi16::<4>(q0), q0)),
                    _mm256_set_m128i(_mm_srli_epi16::<4>(q1), q1),
                ),
                low_nibbles,
            );
            dmx[r] = f16x4_to_f32(b0.d, b0.m, b1.d, b1.m);
        }
        for c in 0..C {
            let (y0, y1) = (&ys[c][2 * p], &ys[c][2 * p + 1]);
            // SAFETY: every `qs` of Q8_1 is a 32-byte array.
            let qy = unsafe { load_two(y0.qs.as_ptr(), y1.qs.as_ptr()) };
            let dsy = f16x4_to_f32(y0.d, y0.s, y1.d, y1.s);
            for r in 0..R {
                let sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx[r], qy);
                let dm = _mm_mul_ps(dmx[r], dsy);
                acc[r][c] =
                    _mm512_fmadd_ps(spread_two(dm, 0, 2), _mm512_cvtepi32_ps(sumi), acc[r][c]);
                acc_ms[r][c] = _mm_add_ps(acc_ms[r][c], dm);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let odd = _mm_movehdup_ps(acc_ms[r][c]);
            let ms = _mm_add_ss(odd, _mm_movehl_ps(odd, odd));
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]) + _mm_cvtss_f32(ms);
            if nb % 2 == 1 {
                let last = nb - 1;
                // SAFETY: this function's preconditions include AVX2, FMA and F16C.
                out[r][c] +=
                    unsafe { vec_dot_q4_1_q8_1_avx2(32, &xs[r][last..nb], &ys[c][last..nb]) };
            }
        }
    }
    out
}

tile_wrapper!(
    /// Q4_1 rows against Q8_1 columns; pairs with `vec_dot_q4_1_q8_1_avx512_bytes`.
    vec_dot_multi_q4_1_q8_1_avx512_bytes,
    BlockQ4_1,
    1,
    q4_1_q8_1_avx512
);

/// `R` rows × `C` columns of `vec_dot_q5_0_q8_0_avx512`: two blocks per register, the 5-bit
/// quants (nibbles plus 16 under the fifth-bit mask) built once per row and pair of blocks,
/// `Σ 16·y` once per column and pair, `vpdpbusd` per row and column, the odd last block
/// through the AVX2 kernel.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q5_0_q8_0_avx512<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ5_0]; R],
    ys: [&[BlockQ8_0]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let sixteen = _mm512_set1_epi8(16);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for p in 0..nb / 2 {
        let mut qx = [zero; R];
        let mut dx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let (b0, b1) = (&xs[r][2 * p], &xs[r][2 * p + 1]);
            // SAFETY: every `qs` of Q5_0 is a 16-byte array; `loadu` has no alignment
            // requirement.
            let (q0, q1) = unsafe {
                (
                    _mm_loadu_si128(b0.qs.as_ptr().cast()),
                    _mm_loadu_si128(b1.qs.as_ptr().cast()),
                )
            };
            // Per block: weights 0..16 are the low nibbles, 16..32 the high ones; bit j of the
            // two `qh` words is bit 4 of weight j of the pair.
            let nib = _mm512_and_si512(
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_set_m128i(_mm_srli_epi16::<4>(q0), q0)),
                    _mm256_set_m128i(_mm_srli_epi16::<4>(q1), q1),
                ),
                low_nibbles,
            );
            let bits =
                u64::from(u32::from_le_bytes(b0.qh)) | (u64::from(u32::from_le_bytes(b1.qh)) << 32);
            qx[r] = _mm512_mask_add_epi8(nib, bits, nib, sixteen);
            dx[r] = f16x4_to_f32(b0.d, b1.d, [0; 2], [0; 2]);
        }
        for c in 0..C {
            let (y0, y1) = (&ys[c][2 * p], &ys[c][2 * p + 1]);
            // SAFETY: every `qs` of Q8_0 is a 32-byte array.
            let qy = unsafe { load_two(y0.qs.as_ptr(), y1.qs.as_ptr()) };
            let y16 = _mm512_dpbusd_epi32(zero, sixteen, qy);
            let dy = f16x4_to_f32(y0.d, y1.d, [0; 2], [0; 2]);
            for r in 0..R {
                let sumi = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, qx[r], qy), y16);
                let d = spread_two(_mm_mul_ps(dx[r], dy), 0, 1);
                acc[r][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
            if nb % 2 == 1 {
                let last = nb - 1;
                // SAFETY: this function's preconditions include AVX2, FMA and F16C.
                out[r][c] +=
                    unsafe { vec_dot_q5_0_q8_0_avx2(32, &xs[r][last..nb], &ys[c][last..nb]) };
            }
        }
    }
    out
}

tile_wrapper!(
    /// Q5_0 rows against Q8_0 columns; pairs with `vec_dot_q5_0_q8_0_avx512_bytes`.
    vec_dot_multi_q5_0_q8_0_avx512_bytes,
    BlockQ5_0,
    2,
    q5_0_q8_0_avx512
);

/// `R` rows × `C` columns of `vec_dot_q4_k_q8_k_avx512`: 64 nibbles per register, scales,
/// minimums, nibbles and the per-32 scale vectors built once per row and block, each column's
/// quants and group sums loaded once per block, `maddubs` + `vpdpwssd` per row and column.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_k_q8_k_avx512<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ4K]; R],
    ys: [&[BlockQ8K]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let low_nibbles = _mm512_set1_epi8(0x0f);
    let high_half_by_4 = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut acc_min = [[_mm256_setzero_ps(); C]; R];
    for i in 0..nb {
        let mut q = [[_mm512_setzero_si512(); 4]; R];
        let mut sc = [[_mm512_setzero_si512(); 4]; R];
        let mut mins = [_mm256_setzero_si256(); R];
        let mut dx = [_mm_setzero_ps(); R];
        for r in 0..R {
            let bx = &xs[r][i];
            let (scales, m) = k4_scales_mins_fast(&bx.scales);
            let m = _mm_cvtsi64_si128(i64::from_le_bytes(m));
            mins[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
            let sc16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_cvtsi64_si128(
                i64::from_le_bytes(scales),
            )));
            for g in 0..4 {
                // SAFETY: `32 * g + 32 <= 128`, the length of `qs`.
                let q4 = unsafe { load32(bx.qs.as_ptr().add(32 * g).cast()) };
                // Low nibbles (weights 64g..64g+32) in the low half, high nibbles in the high.
                let both = _mm512_broadcast_i64x4(q4);
                q[r][g] = _mm512_and_si512(_mm512_srlv_epi64(both, high_half_by_4), low_nibbles);
                // Scale 2g for i16 lanes 0..16, scale 2g + 1 for lanes 16..32.
                let lo = 2 * g as i16;
                let idx = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_set1_epi16(lo)),
                    _mm256_set1_epi16(lo + 1),
                );
                sc[r][g] = _mm512_permutexvar_epi16(idx, sc16);
            }
            dx[r] = f16x4_to_f32(bx.d, bx.dmin, [0; 2], [0; 2]);
        }
        for c in 0..C {
            let by = &ys[c][i];
            let mut yq = [_mm512_setzero_si512(); 4];
            for (g, v) in yq.iter_mut().enumerate() {
                // SAFETY: `64 * g + 64 <= 256`, the length of `qs`.
                *v = unsafe { _mm512_loadu_si512(by.qs.as_ptr().add(64 * g).cast()) };
            }
            // SAFETY: `bsums` is 16 two-byte values (32 bytes).
            let bsums = unsafe { load32(by.bsums.as_ptr().cast()) };
            let dy = _mm_set1_ps(by.scale());
            for r in 0..R {
                let mut sumi = _mm512_setzero_si512();
                for g in 0..4 {
                    let pairs = _mm512_maddubs_epi16(q[r][g], yq[g]);
                    sumi = _mm512_dpwssd_epi32(sumi, pairs, sc[r][g]);
                }
                let summin = _mm256_madd_epi16(mins[r], bsums);
                let d = _mm_mul_ps(dx[r], dy);
                acc[r][c] = _mm512_fmadd_ps(
                    _mm512_broadcastss_ps(d),
                    _mm512_cvtepi32_ps(sumi),
                    acc[r][c],
                );
                acc_min[r][c] = _mm256_fmadd_ps(
                    _mm256_broadcastss_ps(_mm_movehdup_ps(d)),
                    _mm256_cvtepi32_ps(summin),
                    acc_min[r][c],
                );
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]) - hsum_f32x8(acc_min[r][c]);
        }
    }
    out
}

tile_wrapper!(
    /// Q4_K rows against Q8_K columns; pairs with `vec_dot_q4_k_q8_k_avx512_bytes`.
    vec_dot_multi_q4_k_q8_k_avx512_bytes,
    BlockQ4K,
    1,
    q4_k_q8_k_avx512
);

/// `R` rows × `C` columns of `vec_dot_q6_k_q8_k_avx512`: 64 six-bit quants per register and the
/// per-16 scale vectors built once per row and block, each column's quants and group sums
/// loaded once per block, `maddubs` + `vpdpwssd` per row and column, the offset 32 removed
/// through the group sums and `d_x·d_y` formed in scalar f32, as the single-column kernel does.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6_k_q8_k_avx512<const R: usize, const C: usize>(
    n: usize,
    xs: [&[BlockQ6K]; R],
    ys: [&[BlockQ8K]; C],
) -> [[f32; C]; R] {
    let (nb, xs, ys) = check_all(n, xs, ys);
    let m4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    // 128-bit lane j of a scale vector holds scale `first + j` in all eight i16 lanes.
    let quarter = _mm512_set_epi64(
        0x0003_0003_0003_0003,
        0x0003_0003_0003_0003,
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0001_0001_0001_0001,
        0x0001_0001_0001_0001,
        0,
        0,
    );
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    for i in 0..nb {
        let mut q = [[_mm512_setzero_si512(); 4]; R];
        let mut sc = [[_mm512_setzero_si512(); 4]; R];
        let mut sc16 = [_mm256_setzero_si256(); R];
        let mut dx = [0f32; R];
        for r in 0..R {
            let bx = &xs[r][i];
            // SAFETY: `scales` is a 16-byte array.
            let s8 = unsafe { _mm_loadu_si128(bx.scales.as_ptr().cast()) };
            sc16[r] = _mm256_cvtepi8_epi16(s8);
            let wide = _mm512_castsi256_si512(sc16[r]);
            for h in 0..2 {
                // SAFETY: `64 * h + 64 <= 128` (`ql`) and `32 * h + 32 <= 64` (`qh`).
                let (ql, qh) = unsafe {
                    (
                        _mm512_loadu_si512(bx.ql.as_ptr().add(64 * h).cast()),
                        load32(bx.qh.as_ptr().add(32 * h).cast()),
                    )
                };
                let join = |lo: __m256i, hi: __m256i| {
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
                };
                let h01 = _mm512_and_si512(
                    join(_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<2>(qh)),
                    m30,
                );
                let h23 = _mm512_and_si512(join(qh, _mm256_srli_epi16::<2>(qh)), m30);
                q[r][2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), h01);
                q[r][2 * h + 1] =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4), h23);
                for k in 0..2 {
                    let first = _mm512_set1_epi16((8 * h + 4 * k) as i16);
                    sc[r][2 * h + k] =
                        _mm512_permutexvar_epi16(_mm512_add_epi16(quarter, first), wide);
                }
            }
            dx[r] = crate::num::f16_to_f32(bx.d);
        }
        for c in 0..C {
            let by = &ys[c][i];
            let mut yq = [_mm512_setzero_si512(); 4];
            for (k, v) in yq.iter_mut().enumerate() {
                // SAFETY: `64 * k + 64 <= 256`, the length of `qs`.
                *v = unsafe { _mm512_loadu_si512(by.qs.as_ptr().add(64 * k).cast()) };
            }
            // SAFETY: `bsums` is 16 two-byte values (32 bytes).
            let bsums = unsafe { load32(by.bsums.as_ptr().cast()) };
            let dy = by.scale();
            for r in 0..R {
                let mut sumi = _mm512_setzero_si512();
                for k in 0..4 {
                    let pairs = _mm512_maddubs_epi16(q[r][k], yq[k]);
                    sumi = _mm512_dpwssd_epi32(sumi, pairs, sc[r][k]);
                }
                let offset = _mm256_madd_epi16(sc16[r], bsums);
                let total =
                    _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32::<5>(offset)));
                let d = dx[r] * dy;
                acc[r][c] =
                    _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(total), acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
    out
}

tile_wrapper!(
    /// Q6_K rows against Q8_K columns; pairs with `vec_dot_q6_k_q8_k_avx512_bytes`.
    vec_dot_multi_q6_k_q8_k_avx512_bytes,
    BlockQ6K,
    1,
    q6_k_q8_k_avx512
);
