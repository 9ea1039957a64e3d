//! The k-quants: 256-weight super-blocks with quantized sub-block scales (Q2_K … Q6_K) and
//! their activation format Q8_K.
//!
//! The reference quantizers search for good scales iteratively (ggml's `make_qkx2_quants`,
//! `make_q3_quants`, `make_qx_quants`). Their results depend on the exact order and precision
//! of the float operations, so the code below keeps ggml's evaluation order and uses f32 where
//! ggml uses `float`, with no fused multiply-adds (ggml's reference quantizers are compiled for
//! baseline x86-64, where the compiler cannot contract).
//!
//! Layout conventions shared by Q2_K/Q3_K/Q6_K: weights are grouped in halves of 128; within a
//! half, byte `l` of a 32-byte quant row holds weights `l`, `l+32`, `l+64`, `l+96` in successive
//! bit fields. Q4_K/Q5_K group by 64: byte `l` holds weight `l` (low nibble) and `l+32` (high).

use crate::GgmlType;
use crate::block::{GgmlBlock, check_dequantize, check_dot, check_quantize, ggml_block_layout};
use crate::num::{f16_to_f32, f32_to_f16, fabsf, madd, nearest_int, nearest_int_of_product, sqrtf};

/// Weights per k-quant super-block.
pub const QK_K: usize = 256;

/// Below this magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// Q2_K: 16 sub-blocks of 16 with 4-bit scale and 4-bit minimum, 2-bit quants:
/// `x = d·sc·q − dmin·m` (2.625 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ2K {
    /// Per sub-block: scale in the low nibble, minimum in the high nibble (0.5 bpw).
    pub scales: [u8; QK_K / 16],
    /// Quants, four per byte (2 bpw).
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the scales, f16 (0.0625 bpw).
    pub d: [u8; 2],
    /// Super-block scale of the minimums, f16 (0.0625 bpw).
    pub dmin: [u8; 2],
}
ggml_block_layout!(BlockQ2K, 84);

/// Q3_K: 16 sub-blocks of 16 with 6-bit signed scales, 3-bit signed quants:
/// `x = d·(sc − 32)·(q − 4)` (3.4375 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ3K {
    /// High (third) bit of each quant: byte `l`, bit `k` is weight `32k + l` (1 bpw).
    pub hmask: [u8; QK_K / 8],
    /// Low two bits of the quants, four per byte (2 bpw).
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales: low nibbles in bytes 0..8, high bit pairs in bytes 8..12 (0.375 bpw).
    pub scales: [u8; 12],
    /// Super-block scale, f16 (0.0625 bpw).
    pub d: [u8; 2],
}
ggml_block_layout!(BlockQ3K, 110);

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and minimums, 4-bit quants:
/// `x = d·sc·q − dmin·m` (4.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4K {
    /// Super-block scale of the scales, f16 (0.0625 bpw).
    pub d: [u8; 2],
    /// Super-block scale of the minimums, f16 (0.0625 bpw).
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit minimums, packed (see `scale_min_k4`) (0.375 bpw).
    pub scales: [u8; 12],
    /// Quants, two per byte (4 bpw).
    pub qs: [u8; QK_K / 2],
}
ggml_block_layout!(BlockQ4K, 144);

/// Q5_K: as Q4_K with a fifth quant bit: `x = d·sc·q − dmin·m` (5.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5K {
    /// Super-block scale of the scales, f16 (0.0625 bpw).
    pub d: [u8; 2],
    /// Super-block scale of the minimums, f16 (0.0625 bpw).
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit minimums, packed as in Q4_K (0.375 bpw).
    pub scales: [u8; 12],
    /// Fifth bit of each quant: byte `l`, bit `k` is weight `32k + l` (1 bpw).
    pub qh: [u8; QK_K / 8],
    /// Low four bits of the quants, two per byte as in Q4_K (4 bpw).
    pub qs: [u8; QK_K / 2],
}
ggml_block_layout!(BlockQ5K, 176);

/// Q6_K: 16 sub-blocks of 16 with 8-bit signed scales, 6-bit signed quants:
/// `x = d·sc·(q − 32)` (6.5625 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    /// Low four bits of the quants (4 bpw).
    pub ql: [u8; QK_K / 2],
    /// High two bits of the quants, four per byte (2 bpw).
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales, signed (0.5 bpw).
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 (0.0625 bpw).
    pub d: [u8; 2],
}
ggml_block_layout!(BlockQ6K, 210);

/// Q8_K: the activation format of the k-quants: `x = d·q` with an f32 scale and the sums of
/// each group of 16 quants precomputed for the minimum terms (9.125 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8K {
    /// Scale, f32 little-endian (0.125 bpw).
    pub d: [u8; 4],
    /// Quants, one per byte in weight order (8 bpw).
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 quants, i16 little-endian (1 bpw).
    pub bsums: [[u8; 2]; QK_K / 16],
}
ggml_block_layout!(BlockQ8K, 292);

impl BlockQ8K {
    /// The f32 scale.
    #[inline]
    pub fn scale(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }

    /// The sum of quants `16j .. 16j+16`.
    #[inline]
    pub fn bsum(&self, j: usize) -> i16 {
        i16::from_le_bytes(self.bsums[j])
    }
}

// ---------------------------------------------------------------------------------------------
// Scale searches (ggml-quants.c "helper functions")

/// The value with the largest magnitude (first one on ties) and that magnitude.
#[inline]
fn signed_max(x: &[f32]) -> (f32, f32) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = fabsf(v);
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (the only form the
/// reference quantizers use): symmetric quants in `-nmax..nmax` stored as `l + nmax` in `ls`,
/// weights `x²`, a first guess from the extreme value and 18 nearby scales tried. Returns the
/// scale.
#[inline(always)]
fn make_qx_quants<const FUSED: bool>(nmax: i32, x: &[f32], ls: &mut [i8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (l_out, &v) in ls.iter_mut().zip(x) {
        let l = clamp(nearest_int_of_product::<FUSED>(iscale, v));
        *l_out = (l + nmax) as i8;
        let w = v * v;
        let lf = l as f32;
        sumlx = madd::<FUSED>(w * v, lf, sumlx);
        suml2 = madd::<FUSED>(w * lf, lf, suml2);
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -madd::<FUSED>(0.1, is as f32, nmax as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        // GCC vectorizes this loop: the products are rounded in vectors and then added in
        // order (an in-order reduction is not fused), while `nearest_int` stays fused.
        for &v in x {
            let l = clamp(nearest_int_of_product::<FUSED>(iscale, v));
            let w = v * v;
            let lf = l as f32;
            sumlx += w * v * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l_out, &v) in ls.iter_mut().zip(x) {
                *l_out = (nmax + clamp(nearest_int_of_product::<FUSED>(iscale, v))) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse`: symmetric quants refined one at a time (up to five
/// passes) to minimise the `x²`-weighted error. Stores `l + nmax` in `ls`; returns the scale.
///
/// With `FUSED`, as GCC builds it for FMA (read from `quantize_row_q3_K_ref` in
/// llama-quantize): `nearest_int(iscale·x)` and every `± (w·x)·l`, `± (w·l)·l` update of the
/// two sums are fused; `x·sl2/slx` and the acceptance test are not.
#[inline(always)]
fn make_q3_quants<const FUSED: bool>(nmax: i32, x: &[f32], ls: &mut [i8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (l_out, &v) in ls.iter_mut().zip(x) {
        let l = clamp(nearest_int_of_product::<FUSED>(iscale, v));
        *l_out = l as i8;
        let w = v * v;
        let lf = l as f32;
        sumlx = madd::<FUSED>(w * v, lf, sumlx);
        suml2 = madd::<FUSED>(w * lf, lf, suml2);
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (l_cur, &v) in ls.iter_mut().zip(x) {
            let w = v * v;
            let cur = *l_cur as f32;
            let wx = w * v;
            let mut slx = madd::<FUSED>(-wx, cur, sumlx);
            if slx > 0.0 {
                let mut sl2 = madd::<FUSED>(-(w * cur), cur, suml2);
                let new_l = clamp(nearest_int(v * sl2 / slx));
                if new_l != *l_cur as i32 {
                    let nf = new_l as f32;
                    slx = madd::<FUSED>(wx, nf, slx);
                    sl2 = madd::<FUSED>(w * nf, nf, sl2);
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_cur = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in ls.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Parameters of ggml's `make_qkx2_quants` search over `nstep + 1` candidate scales
/// `(rmin + rdelta·is + nmax)/(max − min)`.
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric quants `0..=nmax` with a (non-positive) minimum,
/// fitted by weighted least squares for each candidate scale; the candidate with the smallest
/// weighted error (absolute or squared) wins. Writes the quants to `ls`, returns
/// `(scale, -min)`.
#[inline(always)]
fn make_qkx2_quants<const FUSED: bool>(
    p: &Qkx2,
    x: &[f32],
    weights: &[f32],
    ls: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x = madd::<FUSED>(w, x[i], sum_x);
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        ls.fill(0);
        return (0.0, -min);
    }
    let nmax = p.nmax;
    let err = |diff: f32| if p.use_mad { fabsf(diff) } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int_of_product::<FUSED>(iscale, x[i] - min);
        ls[i] = l.clamp(0, nmax) as u8;
        let diff = madd::<FUSED>(scale, ls[i] as f32, min) - x[i];
        best_error = madd::<FUSED>(weights[i], err(diff), best_error);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (madd::<FUSED>(p.rdelta, is as f32, p.rmin) + nmax as f32) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int_of_product::<FUSED>(iscale, x[i] - min).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            // `w·l` is computed once (it has a product among its uses, so it is not fused).
            let wl = w * lf;
            sum_l += wl;
            sum_l2 = madd::<FUSED>(wl, lf, sum_l2);
            sum_xl = madd::<FUSED>(wl, x[i], sum_xl);
        }
        let det = madd::<FUSED>(sum_w, sum_l2, -(sum_l * sum_l));
        if det > 0.0 {
            // GCC fuses the second product here (and the first one in `det` and `this_min`).
            let mut this_scale = madd::<FUSED>(-sum_x, sum_l, sum_w * sum_xl) / det;
            let mut this_min = madd::<FUSED>(sum_l2, sum_x, -(sum_l * sum_xl)) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = madd::<FUSED>(this_scale, laux[i] as f32, this_min) - x[i];
                cur_error = madd::<FUSED>(weights[i], err(diff), cur_error);
            }
            if cur_error < best_error {
                ls.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Scale and minimum `j` (0..8) of the packed 12-byte field of Q4_K/Q5_K: entries 0..4 are the
/// low six bits of bytes 0..4 (scales) and 4..8 (minimums); entries 4..8 keep their low four
/// bits in bytes 8..12 and their top two bits in the top bits of bytes 0..8.
#[inline]
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs scale `ls` and minimum `lm` (both ≤ 63) as entry `j` of the Q4_K/Q5_K field.
#[inline]
fn set_scale_min_k4(j: usize, ls: u8, lm: u8, q: &mut [u8; 12]) {
    if j < 4 {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
        q[j - 4] |= (ls >> 4) << 6;
        q[j] |= (lm >> 4) << 6;
    }
}

/// Sub-block scale `j` (0..16) of Q3_K, as stored (0..=63, bias 32 not yet removed).
#[inline]
pub(crate) fn q3k_scale(scales: &[u8; 12], j: usize) -> i32 {
    let low = if j < 8 {
        scales[j] & 0x0f
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32
}

/// Packs 2-bit values `l[0..256]` the way Q2_K and Q3_K store them.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for half in 0..2 {
        let j = half * 128;
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q2_K

/// Q2_K → f32.
pub fn dequantize_row_q2_k(blocks: &[BlockQ2K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        let mut k = 0;
        for half in 0..2 {
            let q = &b.qs[32 * half..32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for part in 0..2 {
                    let sc = b.scales[8 * half + shift + part];
                    let dl = d * (sc & 0x0f) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for &qb in &q[16 * part..16 * part + 16] {
                        o[k] = dl * ((qb >> shift) & 3) as f32 - ml;
                        k += 1;
                    }
                }
            }
        }
    }
}

/// ggml's `quantize_row_q2_K_ref`.
pub fn quantize_row_q2_k(x: &[f32], out: &mut [BlockQ2K]) {
    quantize_row_q2_k_with::<false>(x, out)
}

/// [`quantize_row_q2_k`] with GCC's contraction when `FUSED` (see `num::madd`): GCC inlines
/// `make_qkx2_quants` here and fuses it as in Q4_K/Q5_K, and the quantization of the scales
/// and minimums (the minimums in a vector FMA); the final `(x + dm)/d` re-fit is not fused.
#[inline(always)]
pub(crate) fn quantize_row_q2_k_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ2K]) {
    check_quantize(x, out);
    const Q4SCALE: f32 = 15.0;
    let params = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut mins = [0.0f32; QK_K / 16];
        let mut weights = [0.0f32; 16];
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..QK_K / 16 {
            let xs = &xb[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = fabsf(v);
            }
            let (scale, min) =
                make_qkx2_quants::<FUSED>(&params, xs, &weights, &mut l[16 * j..16 * j + 16]);
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (s, &sc) in b.scales.iter_mut().zip(&scales) {
                *s = nearest_int_of_product::<FUSED>(iscale, sc) as u8;
            }
            b.d = f32_to_f16(max_scale / Q4SCALE);
        } else {
            b.scales = [0; 16];
            b.d = f32_to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (s, &m) in b.scales.iter_mut().zip(&mins) {
                *s |= (nearest_int_of_product::<FUSED>(iscale, m) << 4) as u8;
            }
            b.dmin = f32_to_f16(max_min / Q4SCALE);
        } else {
            b.dmin = f32_to_f16(0.0);
        }
        let dd = f16_to_f32(b.d);
        let dmin = f16_to_f32(b.dmin);
        for j in 0..QK_K / 16 {
            let d = dd * (b.scales[j] & 0x0f) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin * (b.scales[j] >> 4) as f32;
            for ii in 0..16 {
                let q = nearest_int((xb[16 * j + ii] + dm) / d);
                l[16 * j + ii] = q.clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// Q2_K · Q8_K, ggml's generic kernel: integer sums per sub-block weighted by the 4-bit scales,
/// minus the minimums times Q8_K's precomputed group sums.
pub fn vec_dot_q2_k_q8_k_scalar(n: usize, x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sc = &bx.scales;
        let mut summs = 0i32;
        for (j, &s) in sc.iter().enumerate() {
            summs += by.bsum(j) as i32 * (s >> 4) as i32;
        }
        let dall = by.scale() * f16_to_f32(bx.d);
        let dmin = by.scale() * f16_to_f32(bx.dmin);
        let mut isum = 0i32;
        let mut is = 0;
        let mut q8 = &by.qs[..];
        for half in 0..2 {
            let q2 = &bx.qs[32 * half..32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for part in 0..2 {
                    let d = (sc[is] & 0x0f) as i32;
                    is += 1;
                    let mut isuml = 0i32;
                    for l in 16 * part..16 * part + 16 {
                        isuml += q8[l] as i32 * ((q2[l] >> shift) & 3) as i32;
                    }
                    isum += d * isuml;
                }
                q8 = &q8[32..];
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q3_K

/// Q3_K → f32.
pub fn dequantize_row_q3_k(blocks: &[BlockQ3K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d_all = f16_to_f32(b.d);
        let mut k = 0;
        let mut is = 0;
        let mut m = 1u8;
        for half in 0..2 {
            let q = &b.qs[32 * half..32 * half + 32];
            for shift in [0, 2, 4, 6] {
                for part in 0..2 {
                    let dl = d_all * (q3k_scale(&b.scales, is) - 32) as f32;
                    is += 1;
                    let range = 16 * part..16 * part + 16;
                    for (&qb, &hb) in q[range.clone()].iter().zip(&b.hmask[range]) {
                        let hi = if hb & m != 0 { 0 } else { 4 };
                        o[k] = dl * (((qb >> shift) & 3) as i32 - hi) as f32;
                        k += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// ggml's `quantize_row_q3_K_ref`.
pub fn quantize_row_q3_k(x: &[f32], out: &mut [BlockQ3K]) {
    quantize_row_q3_k_with::<false>(x, out)
}

/// [`quantize_row_q3_k`] with GCC's contraction when `FUSED` (see `num::madd`): in
/// [`make_q3_quants`] and in the quantization of the sub-block scales; the final re-fit
/// (`x/d`, vectorized) is not fused.
#[inline(always)]
pub(crate) fn quantize_row_q3_k_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ3K]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for j in 0..QK_K / 16 {
            scales[j] =
                make_q3_quants::<FUSED>(4, &xb[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let scale = fabsf(scales[j]);
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let lj =
                    (nearest_int_of_product::<FUSED>(iscale, s) as i8 as i32).clamp(-32, 31) + 32;
                if j < 8 {
                    b.scales[j] = (lj & 0x0f) as u8;
                } else {
                    b.scales[j - 8] |= ((lj & 0x0f) << 4) as u8;
                }
                b.scales[j % 4 + 8] |= ((lj >> 4) << (2 * (j / 4))) as u8;
            }
            b.d = f32_to_f16(1.0 / iscale);
        } else {
            b.d = f32_to_f16(0.0);
        }
        let dd = f16_to_f32(b.d);
        for j in 0..QK_K / 16 {
            let sc = q3k_scale(&b.scales, j) as i8 - 32;
            let d = dd * sc as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(xb[16 * j + ii] / d).clamp(-4, 3);
                l[16 * j + ii] = (q + 4) as i8;
            }
        }
        b.hmask = [0; QK_K / 8];
        let mut lu = [0u8; QK_K];
        for (j, (&v, u)) in l.iter().zip(lu.iter_mut()).enumerate() {
            let mut v = v as u8;
            if v > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
                v -= 4;
            }
            *u = v;
        }
        pack_2bit(&lu, &mut b.qs);
    }
}

/// Unpacks the 256 signed 3-bit quants of a Q3_K block (−4..=3) in weight order.
fn unpack_q3k(b: &BlockQ3K, a: &mut [i8; QK_K]) {
    let mut k = 0;
    let mut m = 1u8;
    for half in 0..2 {
        let q3 = &b.qs[32 * half..32 * half + 32];
        for shift in [0, 2, 4, 6] {
            for (&qb, &hb) in q3.iter().zip(&b.hmask) {
                let hi = if hb & m != 0 { 0 } else { 4 };
                a[k] = ((qb >> shift) & 3) as i8 - hi;
                k += 1;
            }
            m <<= 1;
        }
    }
}

/// The eight-lane accumulation of ggml's generic k-quant kernels: for each group of
/// `group` weights, `lanes[l] += scale(group) · Σ over the group's 8-chunks of q8·a` lane-wise.
#[inline]
fn accumulate_lanes(
    a: &[i8; QK_K],
    q8: &[i8; QK_K],
    group: usize,
    scale: impl Fn(usize) -> i32,
) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, (ag, qg)) in a
        .chunks_exact(group)
        .zip(q8.chunks_exact(group))
        .enumerate()
    {
        let s = scale(g);
        for (ac, qc) in ag.chunks_exact(8).zip(qg.chunks_exact(8)) {
            for l in 0..8 {
                // ggml stores the product in an int16 first; it always fits.
                let p = (qc[l] as i32 * ac[l] as i32) as i16;
                aux32[l] += s * p as i32;
            }
        }
    }
    aux32
}

/// Q3_K · Q8_K, ggml's generic kernel (eight integer lanes, one f32 sum per lane).
pub fn vec_dot_q3_k_q8_k_scalar(n: usize, x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sums = [0.0f32; 8];
    let mut a = [0i8; QK_K];
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        unpack_q3k(bx, &mut a);
        let aux32 = accumulate_lanes(&a, &by.qs, 16, |j| q3k_scale(&bx.scales, j) - 32);
        let d = f16_to_f32(bx.d) * by.scale();
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q4_K

/// Q4_K → f32.
pub fn dequantize_row_q4_k(blocks: &[BlockQ4K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for (g, o64) in o.chunks_exact_mut(64).enumerate() {
            let q = &b.qs[32 * g..32 * g + 32];
            let (sc1, m1) = scale_min_k4(2 * g, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * g + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                o64[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                o64[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Shared first half of the Q4_K/Q5_K reference quantizers: per sub-block of 32 a
/// `make_qkx2_quants` fit with weights `rms + |x|`, then 6-bit scales and minimums relative to
/// the largest of each. Returns the final quants (re-fitted to the stored scales).
#[inline(always)]
fn quantize_k4_scales<const FUSED: bool>(
    xb: &[f32],
    params: &Qkx2,
    d_out: &mut [u8; 2],
    dmin_out: &mut [u8; 2],
    packed: &mut [u8; 12],
) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 32];
    let mut mins = [0.0f32; QK_K / 32];
    let mut weights = [0.0f32; 32];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 32 {
        let xs = &xb[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            // GCC vectorizes this sum: squares rounded, then added in order (not fused).
            sum_x2 += v * v;
        }
        let av_x = sqrtf(sum_x2 / 32.0);
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + fabsf(v);
        }
        let (scale, min) =
            make_qkx2_quants::<FUSED>(params, xs, &weights, &mut l[32 * j..32 * j + 32]);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    *packed = [0; 12];
    for j in 0..QK_K / 32 {
        let ls = (nearest_int_of_product::<FUSED>(inv_scale, scales[j]) as u8).min(63);
        let lm = (nearest_int_of_product::<FUSED>(inv_min, mins[j]) as u8).min(63);
        set_scale_min_k4(j, ls, lm, packed);
    }
    *d_out = f32_to_f16(max_scale / 63.0);
    *dmin_out = f32_to_f16(max_min / 63.0);
    let dd = f16_to_f32(*d_out);
    let dmin = f16_to_f32(*dmin_out);
    let nmax = params.nmax;
    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min_k4(j, packed);
        let d = dd * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            let q = nearest_int((xb[32 * j + ii] + dm) / d);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }
    l
}

/// ggml's `quantize_row_q4_K_ref`.
pub fn quantize_row_q4_k(x: &[f32], out: &mut [BlockQ4K]) {
    quantize_row_q4_k_with::<false>(x, out)
}

/// [`quantize_row_q4_k`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q4_k_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ4K]) {
    check_quantize(x, out);
    let params = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let l = quantize_k4_scales::<FUSED>(xb, &params, &mut b.d, &mut b.dmin, &mut b.scales);
        for g in 0..QK_K / 64 {
            for i in 0..32 {
                b.qs[32 * g + i] = l[64 * g + i] | (l[64 * g + i + 32] << 4);
            }
        }
    }
}

/// Scales and minimums of a Q4_K/Q5_K block as ggml's generic kernel unpacks them.
#[inline]
pub(crate) fn k4_scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..8 {
        (scales[j], mins[j]) = scale_min_k4(j, packed);
    }
    (scales, mins)
}

/// Shared tail of the Q4_K/Q5_K kernels: eight integer lanes with per-32 scales, the minimum
/// term from Q8_K's group sums.
#[inline]
fn dot_k4(
    a: &[i8; QK_K],
    packed: &[u8; 12],
    d: [u8; 2],
    dmin: [u8; 2],
    by: &BlockQ8K,
    sums: &mut [f32; 8],
    sumf: &mut f32,
) {
    let (scales, mins) = k4_scales_mins(packed);
    let mut sumi = 0i32;
    for j in 0..QK_K / 16 {
        sumi += by.bsum(j) as i32 * mins[j / 2] as i32;
    }
    let aux32 = accumulate_lanes(a, &by.qs, 32, |j| scales[j] as i32);
    let d = f16_to_f32(d) * by.scale();
    for l in 0..8 {
        sums[l] += d * aux32[l] as f32;
    }
    let dmin = f16_to_f32(dmin) * by.scale();
    *sumf -= dmin * sumi as f32;
}

/// Q4_K · Q8_K, ggml's generic kernel.
pub fn vec_dot_q4_k_q8_k_scalar(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    let mut a = [0i8; QK_K];
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        for g in 0..QK_K / 64 {
            for l in 0..32 {
                let q = bx.qs[32 * g + l];
                a[64 * g + l] = (q & 0x0f) as i8;
                a[64 * g + l + 32] = (q >> 4) as i8;
            }
        }
        dot_k4(&a, &bx.scales, bx.d, bx.dmin, by, &mut sums, &mut sumf);
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q5_K

/// Q5_K → f32.
pub fn dequantize_row_q5_k(blocks: &[BlockQ5K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for (g, o64) in o.chunks_exact_mut(64).enumerate() {
            let ql = &b.qs[32 * g..32 * g + 32];
            let u1 = 1u8 << (2 * g);
            let u2 = 2u8 << (2 * g);
            let (sc1, m1) = scale_min_k4(2 * g, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * g + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                o64[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                o64[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// ggml's `quantize_row_q5_K_ref`.
pub fn quantize_row_q5_k(x: &[f32], out: &mut [BlockQ5K]) {
    quantize_row_q5_k_with::<false>(x, out)
}

/// [`quantize_row_q5_k`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q5_k_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ5K]) {
    check_quantize(x, out);
    let params = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let l = quantize_k4_scales::<FUSED>(xb, &params, &mut b.d, &mut b.dmin, &mut b.scales);
        b.qh = [0; QK_K / 8];
        for g in 0..QK_K / 64 {
            let m1 = 1u8 << (2 * g);
            let m2 = 2u8 << (2 * g);
            for j in 0..32 {
                let mut l1 = l[64 * g + j];
                if l1 > 15 {
                    l1 -= 16;
                    b.qh[j] |= m1;
                }
                let mut l2 = l[64 * g + j + 32];
                if l2 > 15 {
                    l2 -= 16;
                    b.qh[j] |= m2;
                }
                b.qs[32 * g + j] = l1 | (l2 << 4);
            }
        }
    }
}

/// Q5_K · Q8_K, ggml's generic kernel.
pub fn vec_dot_q5_k_q8_k_scalar(n: usize, x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    let mut a = [0i8; QK_K];
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        for g in 0..QK_K / 64 {
            let m1 = 1u8 << (2 * g);
            let m2 = 2u8 << (2 * g);
            for l in 0..32 {
                let q = bx.qs[32 * g + l];
                let h1 = if bx.qh[l] & m1 != 0 { 16 } else { 0 };
                let h2 = if bx.qh[l] & m2 != 0 { 16 } else { 0 };
                a[64 * g + l] = ((q & 0x0f) + h1) as i8;
                a[64 * g + l + 32] = ((q >> 4) + h2) as i8;
            }
        }
        dot_k4(&a, &bx.scales, bx.d, bx.dmin, by, &mut sums, &mut sumf);
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q6_K

/// Unpacks the 256 signed 6-bit quants of a Q6_K block (−32..=31) in weight order.
fn unpack_q6k(b: &BlockQ6K, a: &mut [i8; QK_K]) {
    for half in 0..2 {
        let ql = &b.ql[64 * half..64 * half + 64];
        let qh = &b.qh[32 * half..32 * half + 32];
        let a = &mut a[128 * half..128 * half + 128];
        for l in 0..32 {
            a[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            a[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            a[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            a[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
}

/// Q6_K → f32.
pub fn dequantize_row_q6_k(blocks: &[BlockQ6K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    let mut a = [0i8; QK_K];
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        unpack_q6k(b, &mut a);
        for (i, (o, &q)) in o.iter_mut().zip(&a).enumerate() {
            *o = d * b.scales[i / 16] as f32 * q as f32;
        }
    }
}

/// ggml's `quantize_row_q6_K_ref`.
pub fn quantize_row_q6_k(x: &[f32], out: &mut [BlockQ6K]) {
    quantize_row_q6_k_with::<false>(x, out)
}

/// [`quantize_row_q6_k`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q6_k_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ6K]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for ib in 0..QK_K / 16 {
            let scale = make_qx_quants::<FUSED>(
                32,
                &xb[16 * ib..16 * ib + 16],
                &mut l[16 * ib..16 * ib + 16],
            );
            scales[ib] = scale;
            let abs_scale = fabsf(scale);
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = BlockQ6K::ZERO;
            b.d = f32_to_f16(0.0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f32_to_f16(1.0 / iscale);
        for (s, &sc) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int_of_product::<FUSED>(iscale, sc).min(127) as i8;
        }
        let dd = f16_to_f32(b.d);
        for j in 0..QK_K / 16 {
            let d = dd * b.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(xb[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        for half in 0..2 {
            let j = 128 * half;
            for i in 0..32 {
                let q1 = l[j + i] as u8;
                let q2 = l[j + i + 32] as u8;
                let q3 = l[j + i + 64] as u8;
                let q4 = l[j + i + 96] as u8;
                b.ql[64 * half + i] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
                b.ql[64 * half + i + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
                b.qh[32 * half + i] =
                    (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    }
}

/// Q6_K · Q8_K, ggml's generic kernel.
pub fn vec_dot_q6_k_q8_k_scalar(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sums = [0.0f32; 8];
    let mut a = [0i8; QK_K];
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        unpack_q6k(bx, &mut a);
        let aux32 = accumulate_lanes(&a, &by.qs, 16, |j| bx.scales[j] as i32);
        let d = f16_to_f32(bx.d) * by.scale();
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q8_K

/// Q8_K → f32.
pub fn dequantize_row_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.scale();
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = d * q as f32;
        }
    }
}

/// ggml's `quantize_row_q8_K_ref` (also what its CPU backend uses for activations): the scale
/// maps the signed extreme value to −127, quants round to nearest-even, group sums of 16 are
/// stored. An all-zero block gets `d = 0`, zero quants and (unlike ggml, which leaves them
/// untouched) zero sums.
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (max, amax) = signed_max(xb);
        if amax == 0.0 {
            *b = BlockQ8K::ZERO;
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (j, s) in b.bsums.iter_mut().enumerate() {
            let sum: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            *s = (sum as i16).to_le_bytes();
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// Q8_K · Q8_K (not a ggml kernel: ggml never uses Q8_K as weights): `Σ q_x q_y · (d_x·d_y)`
/// per block.
pub fn vec_dot_q8_k_q8_k_scalar(n: usize, x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sumi: i32 = bx
            .qs
            .iter()
            .zip(&by.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (bx.scale() * by.scale());
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// The block trait

macro_rules! impl_block {
    ($block:ident, $ty:ident, $vd:ident, $deq:ident, $q:ident, $dot:ident, $zero:expr) => {
        impl GgmlBlock for $block {
            const TYPE: GgmlType = GgmlType::$ty;
            const WEIGHTS: usize = QK_K;
            const ZERO: Self = $zero;
            type VecDot = $vd;
            fn dequantize(blocks: &[Self], out: &mut [f32]) {
                $deq(blocks, out);
            }
            fn quantize(x: &[f32], out: &mut [Self]) {
                $q(x, out);
            }
            fn vec_dot(n: usize, x: &[Self], y: &[$vd]) -> f32 {
                $dot(n, x, y)
            }
        }
    };
}

impl_block!(
    BlockQ2K,
    Q2_K,
    BlockQ8K,
    dequantize_row_q2_k,
    quantize_row_q2_k,
    vec_dot_q2_k_q8_k_scalar,
    BlockQ2K {
        scales: [0; 16],
        qs: [0; 64],
        d: [0; 2],
        dmin: [0; 2]
    }
);
impl_block!(
    BlockQ3K,
    Q3_K,
    BlockQ8K,
    dequantize_row_q3_k,
    quantize_row_q3_k,
    vec_dot_q3_k_q8_k_scalar,
    BlockQ3K {
        hmask: [0; 32],
        qs: [0; 64],
        scales: [0; 12],
        d: [0; 2]
    }
);
impl_block!(
    BlockQ4K,
    Q4_K,
    BlockQ8K,
    dequantize_row_q4_k,
    quantize_row_q4_k,
    vec_dot_q4_k_q8_k_scalar,
    BlockQ4K {
        d: [0; 2],
        dmin: [0; 2],
        scales: [0; 12],
        qs: [0; 128]
    }
);
impl_block!(
    BlockQ5K,
    Q5_K,
    BlockQ8K,
    dequantize_row_q5_k,
    quantize_row_q5_k,
    vec_dot_q5_k_q8_k_scalar,
    BlockQ5K {
        d: [0; 2],
        dmin: [0; 2],
        scales: [0; 12],
        qh: [0; 32],
        qs: [0; 128]
    }
);
impl_block!(
    BlockQ6K,
    Q6_K,
    BlockQ8K,
    dequantize_row_q6_k,
    quantize_row_q6_k,
    vec_dot_q6_k_q8_k_scalar,
    BlockQ6K {
        ql: [0; 128],
        qh: [0; 64],
        scales: [0; 16],
        d: [0; 2]
    }
);
impl_block!(
    BlockQ8K,
    Q8_K,
    BlockQ8K,
    dequantize_row_q8_k,
    quantize_row_q8_k,
    vec_dot_q8_k_q8_k_scalar,
    BlockQ8K {
        d: [0; 4],
        qs: [0; 256],
        bsums: [[0; 2]; 16]
    }
);
