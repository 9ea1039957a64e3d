//! Vectorised f32 helpers for the forward pass: dot products, `axpy`, scaling, the sum of
//! squares of RMS norm, maximum, softmax, SwiGLU's `silu(gate)·up` and f16 ↔ f32 conversion.
//!
//! Every function has one portable implementation written in plain Rust (the reference, and what
//! runs on [`Tier::Scalar`] and on other architectures: it keeps eight independent f32 lanes, and
//! the release assembly for aarch64 shows LLVM turning its loops into 4-wide NEON code, all but the
//! f32 → f16 rounding, which stays `half`'s scalar software conversion) and, on x86-64, an
//! AVX2+FMA+F16C version, and AVX-512 versions of the helpers built on `exp`. The fused f16
//! attention kernels ([`F32Ops::attn_scores_f16`], [`F32Ops::attn_values_f16`]) exist for the
//! AVX2 and AVX-512 tiers and, on AArch64, in NEON for the NEON and dotprod tiers (which share
//! one set); the scalar tier has none (`None`: the caller widens rows and uses [`dot`] and
//! [`axpy`]). Each SIMD version fuses head sizes of 64, 128 and 256 (scores) or multiples of 64
//! (values) and hands any other size to the reference. The set used is
//! chosen once, by the same tier choice as the dot-product kernels ([`crate::dispatch`], so
//! `EDDY_QUANT_TIER` governs it too); [`ops_for`] gives the set of any supported tier for
//! comparisons.
//!
//! Accuracy contract, shared by every tier:
//! - [`dot`] and [`sum_squares`] add at most 8 products per lane in f32 and then add those
//!   partial sums (one per 64 or 256 values) in f64, so the error is at most about 2^-21 of
//!   `Σ|a_i·b_i|` plus the final rounding to f32, for any length.
//! - [`axpy`], [`scale`], [`max`] and the conversions are elementwise; [`axpy`] may fuse the
//!   multiply-add (one rounding instead of two).
//! - [`exp`] is a polynomial approximation with range reduction; its largest relative error,
//!   measured against f64 `exp` over every 2^-12 step of [-87, 88] (and checked by the tests), is
//!   [`EXP_MAX_REL_ERR`]. [`softmax_in_place`] and [`silu_mul`] use it. Softmax sums in f64
//!   per 256 values like [`dot`], so each output is within 1e-6 relative of the exact softmax
//!   of its f32 inputs, plus `|x_i − max|·2^-24` from rounding the argument `x_i − max` to f32
//!   (inherent to computing in f32; 1.2e-6 for a logit 20 below the maximum). `silu_mul` is
//!   within 5e-7 relative, except that for `g < −88.7` (where `exp(−g)` overflows) it returns
//!   0 for a value whose magnitude is below `3e-37·|up|`.
//!
//! All slices passed together must have equal lengths; the functions panic otherwise (a
//! programming error in the caller, not a data error).

use crate::dispatch::{Tier, active_tier};

/// A bound on the relative error of [`exp`] (and of every tier's [`exp_in_place`]) against the
/// exact exponential for results in f32's normal range. Measured over every 2^-12 step of
/// [-87, 88] (test `exp_is_accurate_on_a_dense_sweep`): at most 1.00e-7 for the portable
/// function (at x = −81.44) and 7.6e-8 for the AVX2 form, whose polynomial uses fused
/// multiply-adds; f32's own rounding is 6e-8. Results below the normal range (x < −87.3) are
/// subnormal or zero, with an absolute error below 2^-126.
pub const EXP_MAX_REL_ERR: f32 = 1.2e-7;

/// The kernels of one tier. Each function panics if its slices differ in length.
#[derive(Clone, Copy, Debug)]
pub struct F32Ops {
    /// The tier whose kernels these are ([`Tier::Scalar`] for the portable set, which tiers
    /// without f32 kernels of their own use too).
    pub tier: Tier,
    /// See [`dot`].
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// See [`axpy`].
    pub axpy: fn(f32, &[f32], &mut [f32]),
    /// See [`scale`].
    pub scale: fn(&mut [f32], f32),
    /// See [`sum_squares`].
    pub sum_squares: fn(&[f32]) -> f32,
    /// See [`max`].
    pub max: fn(&[f32]) -> f32,
    /// See [`exp_in_place`].
    pub exp_in_place: fn(&mut [f32]),
    /// See [`softmax_in_place`].
    pub softmax_in_place: fn(&mut [f32]) -> f32,
    /// See [`silu_mul`].
    pub silu_mul: fn(&mut [f32], &[f32]),
    /// See [`f16_to_f32`].
    pub f16_to_f32: fn(&[u16], &mut [f32]),
    /// See [`f32_to_f16`].
    pub f32_to_f16: fn(&[f32], &mut [u16]),
    /// Fused attention scores over f16 keys ([`attn_scores_f16_ref`] is the reference); `None`
    /// where the tier has no fused kernel (the caller widens rows and uses [`dot`]).
    pub attn_scores_f16: Option<AttnScoresFn>,
    /// Fused attention-weighted sum of f16 values ([`attn_values_f16_ref`] is the reference);
    /// `None` where the tier has none (the caller widens rows and uses [`axpy`]).
    pub attn_values_f16: Option<AttnValuesFn>,
    /// Attention scores over Q8_0 key rows, read as blocks ([`attn_scores_q8_0_ref`]; tiers
    /// add in lanes, within [`dot`]'s bound; the portable set uses the reference).
    pub attn_scores_q8_0: AttnScoresQuantFn,
    /// The same for Q4_0 key rows ([`attn_scores_q4_0_ref`]).
    pub attn_scores_q4_0: AttnScoresQuantFn,
    /// Scores added from a slot-minor table ([`attn_table_scores_ref`]).
    pub attn_table_scores: AttnTableScoresFn,
    /// Attention-weighted sum of Q8_0 value rows, read as blocks ([`attn_values_q8_0_ref`]:
    /// every tier's result is bit-identical to it; the portable set uses it).
    pub attn_values_q8_0: AttnValuesQuantFn,
    /// The same for Q4_0 value rows ([`attn_values_q4_0_ref`]).
    pub attn_values_q4_0: AttnValuesQuantFn,
}

/// `(q, k, hd, out, out_stride)`: see [`attn_scores_f16_ref`].
pub type AttnScoresFn = fn(&[f32], &[u16], usize, &mut [f32], usize);
/// `(p, p_stride, v, hd, out)`: see [`attn_values_f16_ref`].
pub type AttnValuesFn = fn(&[f32], usize, &[u16], usize, &mut [f32]);
/// `(q, k, hd, out, out_stride)` with `k` the rows' GGML blocks: see [`attn_scores_q8_0_ref`].
pub type AttnScoresQuantFn = fn(&[f32], &[u8], usize, &mut [f32], usize);
/// `(p, p_stride, v, hd, out)` with `v` the rows' GGML blocks: see [`attn_values_q8_0_ref`].
pub type AttnValuesQuantFn = fn(&[f32], usize, &[u8], usize, &mut [f32]);
/// `(coef, width, table, out, stride, len)`: see [`attn_table_scores_ref`].
pub type AttnTableScoresFn = fn(&[f32], usize, &[f32], &mut [f32], usize, usize);

pub(crate) fn check_scores(
    q: &[f32],
    k: &[u16],
    hd: usize,
    out: &[f32],
    out_stride: usize,
) -> (usize, usize) {
    assert!(
        hd > 0 && q.len() % hd == 0 && k.len() % hd == 0,
        "attention rows of {hd}"
    );
    let (g, rows) = (q.len() / hd, k.len() / hd);
    if g > 0 && rows > 0 {
        assert!(out_stride >= rows, "score rows overlap");
        assert!(
            out.len() >= (g - 1) * out_stride + rows,
            "scores do not fit"
        );
    }
    (g, rows)
}

pub(crate) fn check_values(
    p: &[f32],
    p_stride: usize,
    v: &[u16],
    hd: usize,
    out: &[f32],
) -> (usize, usize) {
    assert!(
        hd > 0 && out.len() % hd == 0 && v.len() % hd == 0,
        "attention rows of {hd}"
    );
    let (g, rows) = (out.len() / hd, v.len() / hd);
    if g > 0 && rows > 0 {
        assert!(p.len() >= (g - 1) * p_stride + rows, "weights do not fit");
    }
    (g, rows)
}

/// Attention scores of `g = q.len() / hd` query heads against `k.len() / hd` cached key rows
/// stored as IEEE halves: `out[j * out_stride + i] = Σ_d q[j·hd + d] · k[i·hd + d]`, each sum
/// in f32 in order of `d` (the reference; SIMD tiers add in lanes, within [`dot`]'s bound).
///
/// # Panics
/// If a length is not a multiple of `hd` or `out` cannot hold the rows.
pub fn attn_scores_f16_ref(q: &[f32], k: &[u16], hd: usize, out: &mut [f32], out_stride: usize) {
    let (g, rows) = check_scores(q, k, hd, out, out_stride);
    for i in 0..rows {
        let kr = &k[i * hd..(i + 1) * hd];
        for j in 0..g {
            let qr = &q[j * hd..(j + 1) * hd];
            out[j * out_stride + i] = qr
                .iter()
                .zip(kr)
                .fold(0f32, |s, (&a, &b)| s + a * half::f16::from_bits(b).to_f32());
        }
    }
}

/// The attention-weighted sum of value rows stored as IEEE halves, added to `out` (`g =
/// out.len() / hd` heads): `out[j·hd + d] += Σ_i p[j * p_stride + i] · v[i·hd + d]`, rows in
/// order (the reference; SIMD tiers may fuse each multiply-add).
///
/// # Panics
/// If a length is not a multiple of `hd` or `p` cannot hold the weights.
pub fn attn_values_f16_ref(p: &[f32], p_stride: usize, v: &[u16], hd: usize, out: &mut [f32]) {
    let (g, rows) = check_values(p, p_stride, v, hd, out);
    for i in 0..rows {
        let vr = &v[i * hd..(i + 1) * hd];
        for j in 0..g {
            let a = p[j * p_stride + i];
            for (o, &h) in out[j * hd..(j + 1) * hd].iter_mut().zip(vr) {
                *o += a * half::f16::from_bits(h).to_f32();
            }
        }
    }
}

/// Bytes of a Q8_0 block (an f16 scale and 32 signed bytes).
pub(crate) const Q8_0_BLOCK: usize = 34;
/// Bytes of a Q4_0 block (an f16 scale and 32 nibbles offset by 8).
pub(crate) const Q4_0_BLOCK: usize = 18;

/// The lengths of a quantized-value call, checked: `(heads, rows)`. `hd` must be whole blocks
/// of 32 and `v` whole rows of `hd / 32` blocks of `block` bytes.
pub(crate) fn check_values_quant(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    block: usize,
    hd: usize,
    out: &[f32],
) -> (usize, usize) {
    assert!(
        hd > 0 && hd % 32 == 0 && out.len() % hd == 0,
        "quantized attention rows of {hd}"
    );
    let row_bytes = hd / 32 * block;
    assert!(v.len() % row_bytes == 0, "value bytes are not whole rows");
    let (g, rows) = (out.len() / hd, v.len() / row_bytes);
    if g > 0 && rows > 0 {
        assert!(p.len() >= (g - 1) * p_stride + rows, "weights do not fit");
    }
    (g, rows)
}

/// A Q8_0 block's 32 values `d·q` (exact in f32: an 11-bit scale times an 8-bit integer).
pub(crate) fn q8_0_values(blk: &[u8], x: &mut [f32; 32]) {
    let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
    for (x, &q) in x.iter_mut().zip(&blk[2..34]) {
        *x = d * f32::from(q as i8);
    }
}

/// A Q4_0 block's 32 values `d·(q − 8)` (exact in f32): low nibbles are values 0..16, high
/// nibbles 16..32.
pub(crate) fn q4_0_values(blk: &[u8], x: &mut [f32; 32]) {
    let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
    for (k, &q) in blk[2..18].iter().enumerate() {
        x[k] = d * f32::from(i16::from(q & 15) - 8);
        x[k + 16] = d * f32::from(i16::from(q >> 4) - 8);
    }
}

/// The lengths of a quantized-score call, checked: `(heads, rows)`.
pub(crate) fn check_scores_quant(
    q: &[f32],
    k: &[u8],
    block: usize,
    hd: usize,
    out: &[f32],
    out_stride: usize,
) -> (usize, usize) {
    assert!(
        hd > 0 && hd % 32 == 0 && q.len() % hd == 0,
        "quantized attention rows of {hd}"
    );
    let row_bytes = hd / 32 * block;
    assert!(k.len() % row_bytes == 0, "key bytes are not whole rows");
    let (g, rows) = (q.len() / hd, k.len() / row_bytes);
    if g > 0 && rows > 0 {
        assert!(out_stride >= rows, "score rows overlap");
        assert!(
            out.len() >= (g - 1) * out_stride + rows,
            "scores do not fit"
        );
    }
    (g, rows)
}

/// The reference of the quantized score kernels: each key row expanded to its exact values,
/// then dotted with every head in order of the element.
fn attn_scores_blocks_ref(
    q: &[f32],
    k: &[u8],
    block: usize,
    expand: fn(&[u8], &mut [f32; 32]),
    hd: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let (g, rows) = check_scores_quant(q, k, block, hd, out, out_stride);
    let mut x = [0f32; 32];
    for i in 0..rows {
        for j in 0..g {
            let mut s = 0f32;
            for b in 0..hd / 32 {
                expand(&k[(i * hd / 32 + b) * block..][..block], &mut x);
                for (&a, &xk) in q[j * hd + 32 * b..][..32].iter().zip(&x) {
                    s += a * xk;
                }
            }
            out[j * out_stride + i] = s;
        }
    }
}

/// Attention scores of `g = q.len() / hd` f32 query heads against key rows stored as Q8_0 blocks
/// (`hd / 32` blocks of 34 bytes per row): `out[j * out_stride + i] = Σ_d q[j·hd + d] · k_i[d]`
/// with `k_i[d] = scale·q` exact, each sum in f32 in order of `d` (the reference; SIMD tiers add
/// in lanes, within [`dot`]'s bound). The queries stay f32: no rounding of the query, unlike a
/// product of two quantized rows.
///
/// # Panics
/// If `hd` is not a multiple of 32, a length is not whole rows, or `out` cannot hold the scores.
pub fn attn_scores_q8_0_ref(q: &[f32], k: &[u8], hd: usize, out: &mut [f32], out_stride: usize) {
    attn_scores_blocks_ref(q, k, Q8_0_BLOCK, q8_0_values, hd, out, out_stride);
}

/// [`attn_scores_q8_0_ref`] for key rows stored as Q4_0 blocks.
///
/// # Panics
/// As for [`attn_scores_q8_0_ref`].
pub fn attn_scores_q4_0_ref(q: &[f32], k: &[u8], hd: usize, out: &mut [f32], out_stride: usize) {
    attn_scores_blocks_ref(q, k, Q4_0_BLOCK, q4_0_values, hd, out, out_stride);
}

/// The reference of the quantized value kernels: rows in order, each block expanded once and
/// added to every head with one fused multiply-add per value.
fn attn_values_blocks_ref(
    p: &[f32],
    p_stride: usize,
    v: &[u8],
    block: usize,
    expand: fn(&[u8], &mut [f32; 32]),
    hd: usize,
    out: &mut [f32],
) {
    let (g, rows) = check_values_quant(p, p_stride, v, block, hd, out);
    let mut x = [0f32; 32];
    for i in 0..rows {
        for b in 0..hd / 32 {
            expand(&v[(i * hd / 32 + b) * block..][..block], &mut x);
            for j in 0..g {
                let a = p[j * p_stride + i];
                for (o, &xk) in out[j * hd + 32 * b..][..32].iter_mut().zip(&x) {
                    *o = crate::num::madd::<true>(a, xk, *o);
                }
            }
        }
    }
}

/// The attention-weighted sum of value rows stored as Q8_0 blocks (`hd / 32` blocks of 34 bytes
/// per row), added to `out` (`g = out.len() / hd` heads):
/// `out[j·hd + d] += Σ_i p[j * p_stride + i] · v_i[d]`, rows in order, each term one fused
/// multiply-add of the block's exact value `scale·q`. Every tier's kernel gives these bits exactly (the order per output value is the
/// same and every operation is exact or singly rounded).
///
/// # Panics
/// If `hd` is not a multiple of 32, a length is not whole rows, or `p` cannot hold the weights.
pub fn attn_values_q8_0_ref(p: &[f32], p_stride: usize, v: &[u8], hd: usize, out: &mut [f32]) {
    attn_values_blocks_ref(p, p_stride, v, Q8_0_BLOCK, q8_0_values, hd, out);
}

/// [`attn_values_q8_0_ref`] for value rows stored as Q4_0 blocks (18 bytes per 32 values).
///
/// # Panics
/// As for [`attn_values_q8_0_ref`].
pub fn attn_values_q4_0_ref(p: &[f32], p_stride: usize, v: &[u8], hd: usize, out: &mut [f32]) {
    attn_values_blocks_ref(p, p_stride, v, Q4_0_BLOCK, q4_0_values, hd, out);
}

/// For each head `h` (row `h` of `coef`, `width` coefficients) and each column `r < len`:
/// `out[h·stride + r] += Σ_c coef[h][c] · table[c·stride + r]`, over `c` in order, every product
/// and sum rounded on its own (no fused multiply-add). A column's bits are then the same on every
/// tier and wherever it falls in a call, so a caller may cut its columns into runs of any
/// length. Attention adds the key-bias term of a Q4_0 key cache with it, the table holding each
/// slot's RoPE angles (`runtime/src/kv.rs`) and `out` the scores, both with a row per head or
/// angle of `stride` slots. The SIMD tiers compile this same code for their vector width.
///
/// # Panics
/// If `coef` is not whole rows of `width`, or `table` or `out` is too short.
pub fn attn_table_scores_ref(
    coef: &[f32],
    width: usize,
    table: &[f32],
    out: &mut [f32],
    stride: usize,
    len: usize,
) {
    table_scores_body(coef, width, table, out, stride, len);
}

/// The loops of [`attn_table_scores_ref`], inlined into each tier's `target_feature` function:
/// sixteen columns at a time held in one accumulator array across all of `c` (a vector register
/// once compiled for a SIMD tier), the rest one by one; each column's sum runs over `c` in the
/// same order either way.
#[inline(always)]
pub(crate) fn table_scores_body(
    coef: &[f32],
    width: usize,
    table: &[f32],
    out: &mut [f32],
    stride: usize,
    len: usize,
) {
    const W: usize = 16;
    assert!(width > 0 && coef.len().is_multiple_of(width));
    let heads = coef.len() / width;
    assert!(heads == 0 || out.len() >= (heads - 1) * stride + len);
    assert!(table.len() >= (width - 1) * stride + len);
    for (h, c) in coef.chunks_exact(width).enumerate() {
        let o = &mut out[h * stride..][..len];
        let mut r = 0;
        while r + W <= len {
            let mut acc = [0f32; W];
            acc.copy_from_slice(&o[r..r + W]);
            for (k, &a) in c.iter().enumerate() {
                let t = &table[k * stride + r..][..W];
                for l in 0..W {
                    acc[l] += a * t[l];
                }
            }
            o[r..r + W].copy_from_slice(&acc);
            r += W;
        }
        for (col, y) in o.iter_mut().enumerate().skip(r) {
            for (k, &a) in c.iter().enumerate() {
                *y += a * table[k * stride + col];
            }
        }
    }
}

static SCALAR_OPS: F32Ops = F32Ops {
    tier: Tier::Scalar,
    dot: dot_scalar,
    axpy: axpy_scalar,
    scale: scale_scalar,
    sum_squares: sum_squares_scalar,
    max: max_scalar,
    exp_in_place: exp_scalar,
    softmax_in_place: softmax_scalar,
    silu_mul: silu_mul_scalar,
    f16_to_f32: f16_to_f32_scalar,
    f32_to_f16: f32_to_f16_scalar,
    attn_scores_f16: None,
    attn_values_f16: None,
    attn_scores_q8_0: attn_scores_q8_0_ref,
    attn_scores_q4_0: attn_scores_q4_0_ref,
    attn_table_scores: attn_table_scores_ref,
    attn_values_q8_0: attn_values_q8_0_ref,
    attn_values_q4_0: attn_values_q4_0_ref,
};

/// Only handed out when [`Tier::Avx2`] is supported.
#[cfg(target_arch = "x86_64")]
static AVX2_OPS: F32Ops = {
    use crate::x86_avx2 as k;
    F32Ops {
        tier: Tier::Avx2,
        dot: k::f32_dot_avx2,
        axpy: k::f32_axpy_avx2,
        scale: k::f32_scale_avx2,
        sum_squares: k::f32_sum_squares_avx2,
        max: k::f32_max_avx2,
        exp_in_place: k::f32_exp_avx2,
        softmax_in_place: k::f32_softmax_avx2,
        silu_mul: k::f32_silu_mul_avx2,
        f16_to_f32: k::f16_to_f32_avx2,
        f32_to_f16: k::f32_to_f16_avx2,
        attn_scores_f16: Some(k::attn_scores_f16_avx2),
        attn_values_f16: Some(k::attn_values_f16_avx2),
        attn_scores_q8_0: k::attn_scores_q8_0_avx2,
        attn_scores_q4_0: k::attn_scores_q4_0_avx2,
        attn_table_scores: k::attn_table_scores_avx2,
        attn_values_q8_0: k::attn_values_q8_0_avx2,
        attn_values_q4_0: k::attn_values_q4_0_avx2,
    }
};

/// Only handed out when [`Tier::Avx512`] is supported. 16-lane `exp` (in [`exp_in_place`],
/// [`softmax_in_place`] and [`silu_mul`]); the AVX2 kernels for the rest, where 512-bit
/// versions measured no faster (loops bound by loads, or by the f64 partial sums).
#[cfg(target_arch = "x86_64")]
static AVX512_OPS: F32Ops = {
    use crate::x86_avx512 as k;
    F32Ops {
        tier: Tier::Avx512,
        exp_in_place: k::f32_exp_avx512,
        softmax_in_place: k::f32_softmax_avx512,
        silu_mul: k::f32_silu_mul_avx512,
        attn_scores_f16: Some(k::attn_scores_f16_avx512),
        attn_values_f16: Some(k::attn_values_f16_avx512),
        attn_scores_q8_0: k::attn_scores_q8_0_avx512,
        attn_scores_q4_0: k::attn_scores_q4_0_avx512,
        attn_table_scores: k::attn_table_scores_avx512,
        attn_values_q8_0: k::attn_values_q8_0_avx512,
        attn_values_q4_0: k::attn_values_q4_0_avx512,
        ..AVX2_OPS
    }
};

/// Only handed out when [`Tier::Neon`] (or [`Tier::Dotprod`] or [`Tier::I8mm`], which imply it)
/// is supported:
/// the fused attention kernels in NEON, the portable code for the rest.
#[cfg(target_arch = "aarch64")]
static NEON_OPS: F32Ops = {
    use crate::aarch64_f32ops as k;
    F32Ops {
        tier: Tier::Neon,
        attn_scores_f16: Some(k::attn_scores_f16_neon),
        attn_values_f16: Some(k::attn_values_f16_neon),
        attn_scores_q8_0: k::attn_scores_q8_0_neon,
        attn_scores_q4_0: k::attn_scores_q4_0_neon,
        attn_values_q8_0: k::attn_values_q8_0_neon,
        attn_values_q4_0: k::attn_values_q4_0_neon,
        ..SCALAR_OPS
    }
};

/// The kernels of `tier`, or `None` if this CPU does not support it. A supported tier without
/// f32 kernels of its own gets the portable set.
pub fn ops_for(tier: Tier) -> Option<&'static F32Ops> {
    if !tier.is_supported() {
        return None;
    }
    Some(match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => &AVX2_OPS,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => &AVX512_OPS,
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::Dotprod | Tier::I8mm => &NEON_OPS,
        // The scalar tier, and tiers without f32 kernels of their own (the portable code
        // vectorises well wherever LLVM has SIMD).
        _ => &SCALAR_OPS,
    })
}

/// The kernels of the active tier ([`active_tier`]).
pub fn ops() -> &'static F32Ops {
    ops_for(active_tier()).unwrap_or(&SCALAR_OPS)
}

/// `Σ a_i·b_i`.
///
/// # Panics
/// If `a.len() != b.len()`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (ops().dot)(a, b)
}

/// `y += a·x`, elementwise.
///
/// # Panics
/// If `x.len() != y.len()`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    (ops().axpy)(a, x, y)
}

/// `x *= s`, elementwise (exact IEEE products on every tier).
pub fn scale(x: &mut [f32], s: f32) {
    (ops().scale)(x, s)
}

/// `Σ x_i²` (RMS norm's `mean(x²)` is this divided by the length).
pub fn sum_squares(x: &[f32]) -> f32 {
    (ops().sum_squares)(x)
}

/// The largest element; NaNs are ignored (as [`f32::max`] does) and an empty slice gives −∞.
pub fn max(x: &[f32]) -> f32 {
    (ops().max)(x)
}

/// `x_i = exp(x_i)` with [`exp`] (max relative error [`EXP_MAX_REL_ERR`]).
pub fn exp_in_place(x: &mut [f32]) {
    (ops().exp_in_place)(x)
}

/// Replaces `x` by `softmax(x)`: `exp(x_i − max)/Σ_j exp(x_j − max)` with [`exp`], and returns
/// the denominator `Σ_j exp(x_j − max)` (≥ 1 for finite inputs). An empty slice returns 0 and
/// stays empty. If `x` holds a NaN or +∞, or every element is −∞, the outputs are NaN; −∞
/// elements next to finite ones (masked positions) become exactly 0.
pub fn softmax_in_place(x: &mut [f32]) -> f32 {
    (ops().softmax_in_place)(x)
}

/// `gate_i = silu(gate_i)·up_i` with `silu(g) = g/(1 + exp(−g))` ([`exp`]): SwiGLU's gating.
///
/// # Panics
/// If `gate.len() != up.len()`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    (ops().silu_mul)(gate, up)
}

/// Widens IEEE halves (bit patterns) to f32, exactly.
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    (ops().f16_to_f32)(src, dst)
}

/// Rounds f32 to the nearest IEEE half (ties to even; overflow to ±∞; NaN stays NaN, its
/// payload may differ between tiers).
///
/// # Panics
/// If `src.len() != dst.len()`.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    (ops().f32_to_f16)(src, dst)
}

// ---------------------------------------------------------------------------------------------
// The exponential shared by every tier

/// log2(e), rounded to f32.
pub(crate) const LOG2E: f32 = core::f32::consts::LOG2_E;
/// The high part of ln 2: 0.693359375 has 10 significant bits, so `n·LN2_HI` is exact for
/// |n| < 2^14 and `x − n·LN2_HI` loses nothing (Cody and Waite).
pub(crate) const LN2_HI: f32 = 0.693_359_4;
/// ln 2 − [`LN2_HI`].
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Arguments are clamped to this range first: below it exp is 0 in f32 (e^-104 is under half
/// the smallest subnormal), above it +∞, and it keeps `n` within ±150 so that `2^n` can be
/// applied as two normal powers of two.
pub(crate) const EXP_MIN_ARG: f32 = -104.0;
/// See [`EXP_MIN_ARG`].
pub(crate) const EXP_MAX_ARG: f32 = 89.0;
/// Taylor coefficients 1/k! for k = 2..=7 of `e^r` on |r| ≤ ln2/2 (truncation error below
/// 5e-9 relative there, far under the f32 rounding).
pub(crate) const EXP_POLY: [f32; 6] = [
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
];

/// `e^x` in f32 without `std`: `x = n·ln2 + r` with `n` the nearest integer to `x·log2 e` and
/// |r| ≤ ln2/2, `e^r` by a degree-7 polynomial, then multiplied by `2^⌊n/2⌋` and `2^⌈n/2⌉`.
/// Max relative error [`EXP_MAX_REL_ERR`]; NaN gives NaN, large arguments ±∞ → +∞ or 0.
#[inline]
pub fn exp(x: f32) -> f32 {
    // `clamp` passes NaN through.
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    // Round to nearest, ties to even: adding 1.5·2^23 leaves no fraction bits (|x·log2e| < 2^22).
    let n = (x * LOG2E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let mut p = EXP_POLY[5];
    for &c in EXP_POLY[..5].iter().rev() {
        p = p * r + c;
    }
    let p = (p * r + 1.0) * r + 1.0;
    // NaN casts to 0, and p is NaN then anyway.
    let ni = n as i32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * pow2(n1) * pow2(n2)
}

// ---------------------------------------------------------------------------------------------
// Portable implementations (the reference, and the scalar tier)

/// Independent f32 accumulators of the portable code (a multiple of every SIMD width here).
const LANES: usize = 8;
/// Values per f32 partial sum of the SIMD kernels before it is added in f64 (see the module's
/// accuracy contract): with 32 f32 lanes, 8 additions per lane.
#[cfg(target_arch = "x86_64")]
pub(crate) const CHUNK: usize = 256;

/// Values per f32 partial sum of the portable code: [`LANES`] lanes of 8 additions each.
const PORTABLE_CHUNK: usize = 8 * LANES;

/// `Σ f(a_i, b_i)` with [`LANES`] f32 lanes per [`PORTABLE_CHUNK`] values (8 additions per
/// lane) and f64 across chunks.
#[inline]
fn chunked_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut total = 0.0f64;
    for (ac, bc) in a.chunks(PORTABLE_CHUNK).zip(b.chunks(PORTABLE_CHUNK)) {
        let mut lanes = [0.0f32; LANES];
        let (ai, ar) = ac.as_chunks::<LANES>();
        let (bi, br) = bc.as_chunks::<LANES>();
        for (x, y) in ai.iter().zip(bi) {
            for l in 0..LANES {
                lanes[l] += f(x[l], y[l]);
            }
        }
        let mut s = 0.0f64;
        for v in lanes {
            s += f64::from(v);
        }
        for (&x, &y) in ar.iter().zip(br) {
            s += f64::from(f(x, y));
        }
        total += s;
    }
    total as f32
}

fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: slices differ in length");
    chunked_sum(a, b, |x, y| x * y)
}

fn axpy_scalar(a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: slices differ in length");
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

fn scale_scalar(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

fn sum_squares_scalar(x: &[f32]) -> f32 {
    chunked_sum(x, x, |a, _| a * a)
}

fn max_scalar(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut m = f32::NEG_INFINITY;
    for &v in rest {
        m = m.max(v);
    }
    for c in chunks {
        for l in 0..LANES {
            // A compare-and-select (false for NaN, which is thus skipped) vectorises where
            // `f32::max` does not.
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    lanes.into_iter().fold(m, f32::max)
}

fn exp_scalar(x: &mut [f32]) {
    for v in x {
        *v = exp(*v);
    }
}

fn softmax_scalar(x: &mut [f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let m = max_scalar(x);
    for v in x.iter_mut() {
        *v = exp(*v - m);
    }
    let total = chunked_sum(x, x, |e, _| e);
    scale_scalar(x, 1.0 / total);
    total
}

/// `silu(g)·u`.
#[inline]
fn silu_times(g: f32, u: f32) -> f32 {
    g / (1.0 + exp(-g)) * u
}

fn silu_mul_scalar(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: slices differ in length");
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu_times(*g, u);
    }
}

fn f16_to_f32_scalar(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: slices differ in length");
    for (d, &h) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(h).to_f32();
    }
}

fn f32_to_f16_scalar(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: slices differ in length");
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(v).to_bits();
    }
}

/// The scalar tail of the SIMD kernels: `silu(g)·u` for the last few values.
#[cfg(target_arch = "x86_64")]
pub(crate) fn silu_mul_tail(gate: &mut [f32], up: &[f32]) {
    silu_mul_scalar(gate, up);
}

/// The scalar tails of the SIMD conversions.
#[cfg(target_arch = "x86_64")]
pub(crate) fn f16_to_f32_tail(src: &[u16], dst: &mut [f32]) {
    f16_to_f32_scalar(src, dst);
}

/// See [`f16_to_f32_tail`].
#[cfg(target_arch = "x86_64")]
pub(crate) fn f32_to_f16_tail(src: &[f32], dst: &mut [u16]) {
    f32_to_f16_scalar(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
        assert!((exp(1.0) - core::f32::consts::E).abs() <= 2.0 * f32::EPSILON);
    }
}
