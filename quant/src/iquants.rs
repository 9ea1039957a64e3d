//! Non-linear 4-bit formats: IQ4_NL (32-weight blocks) and IQ4_XS (256-weight super-blocks
//! with 6-bit sub-block scales). A quant is an index into a fixed table of 16 levels that is
//! denser near zero than a uniform grid.
//!
//! ggml's file writer quantizes these with `quantize_iq4_nl`/`quantize_iq4_xs` (no importance
//! matrix): weights `x²` and a search over 15 candidate scales per block. (ggml's
//! `quantize_row_iq4_nl_ref` skips that search; it is not what model files contain.)

use crate::GgmlType;
use crate::block::{GgmlBlock, check_dequantize, check_dot, check_quantize, ggml_block_layout};
use crate::kquants::{BlockQ8K, QK_K};
use crate::legacy::BlockQ8_0;
use crate::num::{f16_to_f32, f32_to_f16, fabsf, madd, nearest_int_of_product};

/// Weights per IQ4_NL block.
pub const QK4_NL: usize = 32;

/// The 16 levels of the IQ4 formats (ggml's `kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Below this magnitude a block counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// Candidate scales tried on each side of the first guess.
const NTRY: i32 = 7;

/// IQ4_NL: `x = d·KVALUES_IQ4NL[q]` (4.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIQ4NL {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Level indices, two per byte: low nibble weight j, high nibble weight j+16 (4 bpw).
    pub qs: [u8; QK4_NL / 2],
}
ggml_block_layout!(BlockIQ4NL, 18);

/// IQ4_XS: 8 sub-blocks of 32 with 6-bit scales: `x = d·(ls − 32)·KVALUES_IQ4NL[q]`
/// (4.25 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIQ4XS {
    /// Super-block scale, f16 (0.0625 bpw).
    pub d: [u8; 2],
    /// High two bits of the eight sub-block scales, bits 2j..2j+2, u16 little-endian
    /// (0.0625 bpw).
    pub scales_h: [u8; 2],
    /// Low four bits of the sub-block scales, two per byte (0.125 bpw).
    pub scales_l: [u8; QK_K / 64],
    /// Level indices; sub-block j uses bytes 16j..16j+16 as IQ4_NL does (4 bpw).
    pub qs: [u8; QK_K / 2],
}
ggml_block_layout!(BlockIQ4XS, 136);

/// `2·` the midpoint between level `j` and level `j + 1` (exact: small integers).
const THRESHOLDS: [f32; 15] = {
    let mut t = [0.0f32; 15];
    let mut j = 0;
    while j < 15 {
        t[j] = (KVALUES_IQ4NL[j] as i32 + KVALUES_IQ4NL[j + 1] as i32) as f32;
        j += 1;
    }
    t
};

/// The step from level `j` to level `j + 1`.
const STEPS: [f32; 15] = {
    let mut s = [0.0f32; 15];
    let mut j = 0;
    while j < 15 {
        s[j] = (KVALUES_IQ4NL[j + 1] as i32 - KVALUES_IQ4NL[j] as i32) as f32;
        j += 1;
    }
    s
};

/// Index of the level nearest to `x` (ties go to the upper level), as ggml's `best_index_int8`:
/// the number of midpoints that `x` reaches, comparing `2x` with the sums of neighbouring
/// levels, which is exact (and ggml's rounded differences decide no tie differently: near a
/// midpoint both differences are exact). NaN reaches none, as in ggml. Counted without
/// branches: ggml's binary search mispredicts about every other step.
#[inline(always)]
fn best_index(x: f32) -> usize {
    let x2 = x + x;
    THRESHOLDS.iter().map(|&t| usize::from(x2 >= t)).sum()
}

/// Lanes of [`fit_block`]'s search: the first guess and the `2·NTRY + 1` candidate scales.
const LANES: usize = 2 * NTRY as usize + 2;

/// The weighted fit of one 32-weight block (ggml's `quantize_row_iq4_nl_impl` inner part, no
/// importance matrix): a first scale from the extreme value, refined by least squares, then
/// `2·NTRY + 1` candidate scales. Returns the scale (the callers choose the levels for the
/// scale they store).
///
/// ggml tries the scales one after another; here the sixteen fits run side by side, one lane
/// each (lane 0 the first guess, then `itry = -NTRY..=NTRY`), which vectorizes. Each lane does
/// ggml's operations in ggml's order (its own sums, in weight order), and the lanes are then
/// compared in ggml's order, so the result is the same to the bit.
#[inline(always)]
fn fit_block<const FUSED: bool>(xb: &[f32]) -> f32 {
    let mut weight = [0.0f32; 32];
    for (w, &v) in weight.iter_mut().zip(xb) {
        *w = v * v;
    }
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in xb {
        let ax = fabsf(v);
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = KVALUES_IQ4NL[0] as f32;
    let mut id = [0.0f32; LANES];
    id[0] = 1.0 / (-max / v0);
    for (k, itry) in (-NTRY..=NTRY).enumerate() {
        id[k + 1] = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
    }
    let mut sumqx = [0.0f32; LANES];
    let mut sumq2 = [0.0f32; LANES];
    for (&v, &w) in xb.iter().zip(&weight) {
        // The level of `id·v` in each lane, `KVALUES_IQ4NL[best_index(id·v)]` built from the
        // steps it reaches (sums of small integers, exact) so that it needs no look-up.
        let mut q = [0.0f32; LANES];
        for (q, &id) in q.iter_mut().zip(&id) {
            let al = id * v;
            let x2 = al + al;
            *q = v0;
            for (&t, &step) in THRESHOLDS.iter().zip(&STEPS) {
                *q += if x2 >= t { step } else { 0.0 };
            }
        }
        // `w·q` is computed once; both sums fuse their last product.
        for k in 0..LANES {
            let wq = w * q[k];
            sumqx[k] = madd::<FUSED>(wq, v, sumqx[k]);
            sumq2[k] = madd::<FUSED>(wq, q[k], sumq2[k]);
        }
    }
    let mut d = if sumq2[0] > 0.0 {
        sumqx[0] / sumq2[0]
    } else {
        0.0
    };
    let mut best = d * sumqx[0];
    for k in 1..LANES {
        if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best * sumq2[k] {
            d = sumqx[k] / sumq2[k];
            best = d * sumqx[k];
        }
    }
    d
}

/// Packs 32 level indices into 16 bytes (weight j low nibble, j+16 high nibble).
#[inline]
fn pack_nibbles(l: &[u8], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

// ---------------------------------------------------------------------------------------------
// IQ4_NL

/// IQ4_NL → f32.
pub fn dequantize_row_iq4_nl(blocks: &[BlockIQ4NL], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK4_NL)) {
        let d = f16_to_f32(b.d);
        for (j, &q) in b.qs.iter().enumerate() {
            o[j] = d * KVALUES_IQ4NL[(q & 0x0f) as usize] as f32;
            o[j + 16] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
        }
    }
}

/// ggml's `quantize_iq4_nl` without importance matrix (what `llama-quantize` writes).
pub fn quantize_row_iq4_nl(x: &[f32], out: &mut [BlockIQ4NL]) {
    quantize_row_iq4_nl_with::<false>(x, out)
}

/// [`quantize_row_iq4_nl`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_iq4_nl_with<const FUSED: bool>(x: &[f32], out: &mut [BlockIQ4NL]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK4_NL)) {
        let mut l = [0u8; QK4_NL];
        let scale = fit_block::<FUSED>(xb);
        b.d = f32_to_f16(scale);
        // Re-quantize with the final f32 scale.
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (lj, &v) in l.iter_mut().zip(xb) {
            *lj = best_index(id * v) as u8;
        }
        pack_nibbles(&l, &mut b.qs);
    }
}

/// IQ4_NL · Q8_0, ggml's generic kernel: `(d_y·d_x)·Σ level·q_y` per block.
pub fn vec_dot_iq4_nl_q8_0_scalar(n: usize, x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let d = f16_to_f32(by.d) * f16_to_f32(bx.d);
        let mut sumi1 = 0i32;
        let mut sumi2 = 0i32;
        for j in 0..16 {
            sumi1 += by.qs[j] as i32 * KVALUES_IQ4NL[(bx.qs[j] & 0x0f) as usize] as i32;
            sumi2 += by.qs[j + 16] as i32 * KVALUES_IQ4NL[(bx.qs[j] >> 4) as usize] as i32;
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// IQ4_XS

/// Sub-block scale `ib` (0..8) of an IQ4_XS block, bias 32 not removed.
#[inline]
pub(crate) fn xs_scale(b: &BlockIQ4XS, ib: usize) -> i32 {
    let h = u16::from_le_bytes(b.scales_h);
    let low = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    let high = ((h >> (2 * ib)) & 3) as u8;
    (low | (high << 4)) as i32
}

/// IQ4_XS → f32.
pub fn dequantize_row_iq4_xs(blocks: &[BlockIQ4XS], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        for (ib, o32) in o.chunks_exact_mut(32).enumerate() {
            let dl = d * (xs_scale(b, ib) - 32) as f32;
            let qs = &b.qs[16 * ib..16 * ib + 16];
            for (j, &q) in qs.iter().enumerate() {
                o32[j] = dl * KVALUES_IQ4NL[(q & 0x0f) as usize] as f32;
                o32[j + 16] = dl * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
            }
        }
    }
}

/// ggml's `quantize_iq4_xs` without importance matrix (what `llama-quantize` writes): each
/// sub-block fitted as in IQ4_NL, the scales quantized to 6 bits against the largest one, the
/// indices re-chosen for the stored scales.
pub fn quantize_row_iq4_xs(x: &[f32], out: &mut [BlockIQ4XS]) {
    quantize_row_iq4_xs_with::<false>(x, out)
}

/// [`quantize_row_iq4_xs`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_iq4_xs_with<const FUSED: bool>(x: &[f32], out: &mut [BlockIQ4XS]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 32];
        let mut max_scale = 0.0f32;
        let mut amax_scale = 0.0f32;
        for ib in 0..QK_K / 32 {
            let d = fit_block::<FUSED>(&xb[32 * ib..32 * ib + 32]);
            scales[ib] = d;
            let abs_d = fabsf(d);
            if abs_d > amax_scale {
                amax_scale = abs_d;
                max_scale = d;
            }
        }
        let mut scales_h = 0u16;
        b.scales_l = [0; 4];
        let d = -max_scale / 32.0;
        b.d = f32_to_f16(d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for ib in 0..QK_K / 32 {
            let ls = nearest_int_of_product::<FUSED>(id, scales[ib]).clamp(-32, 31);
            let dl = d * ls as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for j in 0..32 {
                l[32 * ib + j] = best_index(idl * xb[32 * ib + j]) as u8;
            }
            let ls = (ls + 32) as u8;
            if ib % 2 == 0 {
                b.scales_l[ib / 2] = ls & 0x0f;
            } else {
                b.scales_l[ib / 2] |= (ls & 0x0f) << 4;
            }
            scales_h |= u16::from(ls >> 4) << (2 * (ib % 8));
        }
        b.scales_h = scales_h.to_le_bytes();
        for ib in 0..QK_K / 32 {
            pack_nibbles(&l[32 * ib..32 * ib + 32], &mut b.qs[16 * ib..16 * ib + 16]);
        }
    }
}

/// IQ4_XS · Q8_K, ggml's generic kernel: per sub-block `(d_x·d_y·(ls − 32))·Σ level·q_y`.
pub fn vec_dot_iq4_xs_q8_k_scalar(n: usize, x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let d4d8 = f16_to_f32(bx.d) * by.scale();
        for ib in 0..QK_K / 32 {
            let dl = d4d8 * (xs_scale(bx, ib) - 32) as f32;
            let qs = &bx.qs[16 * ib..16 * ib + 16];
            let q8 = &by.qs[32 * ib..32 * ib + 32];
            let mut sumi1 = 0i32;
            let mut sumi2 = 0i32;
            for j in 0..16 {
                sumi1 += q8[j] as i32 * KVALUES_IQ4NL[(qs[j] & 0x0f) as usize] as i32;
                sumi2 += q8[j + 16] as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
            }
            sumf += dl * (sumi1 + sumi2) as f32;
        }
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// The block trait

impl GgmlBlock for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const WEIGHTS: usize = QK4_NL;
    const ZERO: Self = BlockIQ4NL {
        d: [0; 2],
        qs: [0; 16],
    };
    type VecDot = BlockQ8_0;
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        dequantize_row_iq4_nl(blocks, out);
    }
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_iq4_nl(x, out);
    }
    fn vec_dot(n: usize, x: &[Self], y: &[BlockQ8_0]) -> f32 {
        vec_dot_iq4_nl_q8_0_scalar(n, x, y)
    }
}

impl GgmlBlock for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const WEIGHTS: usize = QK_K;
    const ZERO: Self = BlockIQ4XS {
        d: [0; 2],
        scales_h: [0; 2],
        scales_l: [0; 4],
        qs: [0; 128],
    };
    type VecDot = BlockQ8K;
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        dequantize_row_iq4_xs(blocks, out);
    }
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_iq4_xs(x, out);
    }
    fn vec_dot(n: usize, x: &[Self], y: &[BlockQ8K]) -> f32 {
        vec_dot_iq4_xs_q8_k_scalar(n, x, y)
    }
}
