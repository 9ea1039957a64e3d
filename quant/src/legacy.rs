//! The legacy 32-weight block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
//!
//! `_0` formats store `x ≈ d·q` with a signed quant; `_1` formats store `x ≈ d·q + m` with an
//! unsigned quant. Nibbles are split by position: byte `j` holds weight `j` in its low nibble
//! and weight `j + 16` in its high nibble; the fifth bit of Q5 quants is kept in a 32-bit mask.
//!
//! Q8_0 and Q8_1 are also the activation formats of the dot products (Q8_0 for Q4_0, Q5_0,
//! Q8_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1). For activations ggml's CPU backend does not call
//! the reference quantizer but its own `quantize_row_q8_0`/`_q8_1` (see
//! [`quantize_row_q8_0_cpu`]): same scale, but the multiplier is `127/amax` instead of `1/d` and
//! the rounding is to nearest-even instead of `roundf`'s ties-away-from-zero.

use crate::GgmlType;
use crate::block::{GgmlBlock, check_dequantize, check_dot, check_quantize, ggml_block_layout};
use crate::num::{cvtt_i32, f16_to_f32, f32_to_f16, fabsf, madd, nearest_int, roundf};

/// Weights per block of every legacy format.
pub const QK: usize = 32;

/// Q4_0: `x = d·(q − 8)`, q in 0..=15 (4.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Quants, two per byte: low nibble weight j, high nibble weight j+16 (4 bpw).
    pub qs: [u8; QK / 2],
}
ggml_block_layout!(BlockQ4_0, 18);

/// Q4_1: `x = d·q + m`, q in 0..=15 (5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Minimum, f16 (0.5 bpw).
    pub m: [u8; 2],
    /// Quants, two per byte as in Q4_0 (4 bpw).
    pub qs: [u8; QK / 2],
}
ggml_block_layout!(BlockQ4_1, 20);

/// Q5_0: `x = d·(q − 16)`, q in 0..=31 (5.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5_0 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Fifth bit of each quant, bit j for weight j, little-endian u32 (1 bpw).
    pub qh: [u8; 4],
    /// Low four bits of the quants, two per byte as in Q4_0 (4 bpw).
    pub qs: [u8; QK / 2],
}
ggml_block_layout!(BlockQ5_0, 22);

/// Q5_1: `x = d·q + m`, q in 0..=31 (6 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5_1 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Minimum, f16 (0.5 bpw).
    pub m: [u8; 2],
    /// Fifth bit of each quant, bit j for weight j, little-endian u32 (1 bpw).
    pub qh: [u8; 4],
    /// Low four bits of the quants, two per byte as in Q4_0 (4 bpw).
    pub qs: [u8; QK / 2],
}
ggml_block_layout!(BlockQ5_1, 24);

/// Q8_0: `x = d·q`, q in −127..=127 (8.5 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// Quants, one per byte in weight order (8 bpw).
    pub qs: [i8; QK],
}
ggml_block_layout!(BlockQ8_0, 34);

/// Q8_1: Q8_0 plus `s = d·Σq`, which lets the `_1` formats fold in their minimum cheaply
/// (9 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_1 {
    /// Scale, f16 (0.5 bpw).
    pub d: [u8; 2],
    /// `d` times the sum of the quants, f16 (0.5 bpw).
    pub s: [u8; 2],
    /// Quants, one per byte in weight order (8 bpw).
    pub qs: [i8; QK],
}
ggml_block_layout!(BlockQ8_1, 36);

// ---------------------------------------------------------------------------------------------
// Q4_0

/// The signed value with the largest magnitude (the first one found on ties), as ggml's
/// `_0` quantizers pick it.
#[inline]
fn signed_absmax(xb: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in xb {
        if amax < fabsf(v) {
            amax = fabsf(v);
            max = v;
        }
    }
    max
}

/// Minimum and maximum of a block, as ggml's `_1` quantizers compute them.
#[inline]
fn min_max(xb: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in xb {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Q4_0 → f32.
pub fn dequantize_row_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (j, &q) in b.qs.iter().enumerate() {
            o[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            o[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// ggml's `quantize_row_q4_0_ref`: the scale maps the signed extreme value to −8.
pub fn quantize_row_q4_0(x: &[f32], out: &mut [BlockQ4_0]) {
    quantize_row_q4_0_with::<false>(x, out)
}

/// [`quantize_row_q4_0`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q4_0_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ4_0]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let d = signed_absmax(xb) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let q0 = (cvtt_i32(madd::<FUSED>(xb[j], id, 8.5)) as i8).min(15) as u8;
            let q1 = (cvtt_i32(madd::<FUSED>(xb[j + QK / 2], id, 8.5)) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Q4_0 · Q8_0, ggml's generic kernel: integer dot per block, then `(Σ · d_x) · d_y`.
pub fn vec_dot_q4_0_q8_0_scalar(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let v0 = (bx.qs[j] & 0x0f) as i32 - 8;
            let v1 = (bx.qs[j] >> 4) as i32 - 8;
            sumi0 += v0 * by.qs[j] as i32;
            sumi1 += v1 * by.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        sumf += sumi as f32 * f16_to_f32(bx.d) * f16_to_f32(by.d);
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q4_1

/// Q4_1 → f32.
pub fn dequantize_row_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for (j, &q) in b.qs.iter().enumerate() {
            o[j] = (q & 0x0f) as f32 * d + m;
            o[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

/// ggml's `quantize_row_q4_1_ref`: `d = (max − min)/15`, `m = min`.
pub fn quantize_row_q4_1(x: &[f32], out: &mut [BlockQ4_1]) {
    quantize_row_q4_1_with::<false>(x, out)
}

/// [`quantize_row_q4_1`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q4_1_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ4_1]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        for j in 0..QK / 2 {
            let q0 = (cvtt_i32(madd::<FUSED>(xb[j] - min, id, 0.5)) as i8).min(15) as u8;
            let q1 = (cvtt_i32(madd::<FUSED>(xb[j + QK / 2] - min, id, 0.5)) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Q4_1 · Q8_1, ggml's generic kernel: `(d_x·d_y)·Σ q_x q_y + m_x·s_y` per block.
pub fn vec_dot_q4_1_q8_1_scalar(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            sumi0 += (bx.qs[j] & 0x0f) as i32 * by.qs[j] as i32;
            sumi1 += (bx.qs[j] >> 4) as i32 * by.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32
            + f16_to_f32(bx.m) * f16_to_f32(by.s);
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q5_0

/// Q5_0 → f32.
pub fn dequantize_row_q5_0(blocks: &[BlockQ5_0], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for (j, &q) in b.qs.iter().enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            o[j] = (((q & 0x0f) as u32 | h0) as i32 - 16) as f32 * d;
            o[j + QK / 2] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
        }
    }
}

/// ggml's `quantize_row_q5_0_ref`: the scale maps the signed extreme value to −16.
pub fn quantize_row_q5_0(x: &[f32], out: &mut [BlockQ5_0]) {
    quantize_row_q5_0_with::<false>(x, out)
}

/// [`quantize_row_q5_0`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q5_0_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ5_0]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let d = signed_absmax(xb) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let q0 = (cvtt_i32(madd::<FUSED>(xb[j], id, 16.5)) as i8).min(31) as u8;
            let q1 = (cvtt_i32(madd::<FUSED>(xb[j + QK / 2], id, 16.5)) as i8).min(31) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// Q5_0 · Q8_0, ggml's generic kernel: `(d_x·d_y)·Σ q_x q_y` per block.
pub fn vec_dot_q5_0_q8_0_scalar(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let qh = u32::from_le_bytes(bx.qh);
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            let x0 = ((bx.qs[j] & 0x0f) as u32 | h0) as i32 - 16;
            let x1 = ((bx.qs[j] >> 4) as u32 | h1) as i32 - 16;
            sumi0 += x0 * by.qs[j] as i32;
            sumi1 += x1 * by.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q5_1

/// Q5_1 → f32.
pub fn dequantize_row_q5_1(blocks: &[BlockQ5_1], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let qh = u32::from_le_bytes(b.qh);
        for (j, &q) in b.qs.iter().enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            o[j] = ((q & 0x0f) as u32 | h0) as f32 * d + m;
            o[j + QK / 2] = ((q >> 4) as u32 | h1) as f32 * d + m;
        }
    }
}

/// ggml's `quantize_row_q5_1_ref`: `d = (max − min)/31`, `m = min`.
pub fn quantize_row_q5_1(x: &[f32], out: &mut [BlockQ5_1]) {
    quantize_row_q5_1_with::<false>(x, out)
}

/// [`quantize_row_q5_1`] with GCC's contraction when `FUSED` (see `num::madd`).
#[inline(always)]
pub(crate) fn quantize_row_q5_1_with<const FUSED: bool>(x: &[f32], out: &mut [BlockQ5_1]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            // ggml converts straight to uint8_t here (no clamp): truncation, low byte kept.
            let q0 = cvtt_i32(madd::<FUSED>(xb[j] - min, id, 0.5)) as u8;
            let q1 = cvtt_i32(madd::<FUSED>(xb[j + QK / 2] - min, id, 0.5)) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// Q5_1 · Q8_1, ggml's generic kernel: `(d_x·d_y)·Σ q_x q_y + m_x·s_y` per block.
pub fn vec_dot_q5_1_q8_1_scalar(n: usize, x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let qh = u32::from_le_bytes(bx.qh);
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            let x0 = ((bx.qs[j] & 0x0f) as u32 | h0) as i32;
            let x1 = ((bx.qs[j] >> 4) as u32 | h1) as i32;
            sumi0 += x0 * by.qs[j] as i32;
            sumi1 += x1 * by.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        sumf += (f16_to_f32(bx.d) * f16_to_f32(by.d)) * sumi as f32
            + f16_to_f32(bx.m) * f16_to_f32(by.s);
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q8_0

/// Largest magnitude in a block (0 for an all-zero block).
#[inline]
fn absmax(xb: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    for &v in xb {
        let a = fabsf(v);
        // MAX(a, b) in ggml is `a > b ? a : b`.
        amax = if amax > a { amax } else { a };
    }
    amax
}

/// Q8_0 → f32.
pub fn dequantize_row_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// ggml's `quantize_row_q8_0_ref`: `d = amax/127`, `q = roundf(x/d)` (ties away from zero).
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let d = absmax(xb) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = cvtt_i32(roundf(v * id)) as i8;
        }
    }
}

/// The Q8_0 conversion of ggml's x86 CPU backend (`quantize_row_q8_0` with AVX/AVX2), which is
/// what activations go through before a dot product: `d = amax/127` as in the reference, but
/// the multiplier is `127/amax` and rounding is to nearest-even (`_mm256_round_ps`), with
/// saturation to −128..=127. The stored `d` is the same as the reference's; quants can differ
/// by one where `x·127/amax` lands on or next to a half.
pub fn quantize_row_q8_0_cpu(x: &[f32], out: &mut [BlockQ8_0]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, id) = cpu_q8_scale(xb);
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = saturate_i8(v * id);
        }
    }
}

/// `(d, 1/d)` as ggml's AVX code computes them for Q8_0 and Q8_1.
#[inline]
fn cpu_q8_scale(xb: &[f32]) -> (f32, f32) {
    let max = absmax(xb);
    let d = max / 127.0;
    let id = if max != 0.0 { 127.0 / max } else { 0.0 };
    (d, id)
}

/// Round to nearest-even and saturate to i8, as `_mm256_round_ps` + `cvtps` + two `packs` do.
#[inline]
fn saturate_i8(v: f32) -> i8 {
    if v.is_nan() {
        return i8::MIN; // cvtps gives i32::MIN, which saturates to −128
    }
    let r = if fabsf(v) < 4_194_304.0 {
        nearest_int(v)
    } else if v > 0.0 {
        i32::MAX
    } else {
        i32::MIN
    };
    r.clamp(-128, 127) as i8
}

/// Q8_0 · Q8_0, ggml's generic kernel: `Σ q_x q_y · (d_x·d_y)` per block.
pub fn vec_dot_q8_0_q8_0_scalar(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sumi: i32 = bx
            .qs
            .iter()
            .zip(&by.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (f16_to_f32(bx.d) * f16_to_f32(by.d));
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q8_1

/// Q8_1 → f32 (the `s` field is redundant and ignored).
pub fn dequantize_row_q8_1(blocks: &[BlockQ8_1], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// ggml's `quantize_row_q8_1_ref`: Q8_0's reference rounding plus `s = f16(Σq · d)`, with `d`
/// the unrounded f32 scale.
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let d = absmax(xb) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = cvtt_i32(roundf(v * id)) as i8;
            sum += *q as i32;
        }
        b.s = f32_to_f16(sum as f32 * d);
    }
}

/// The Q8_1 conversion of ggml's x86 CPU backend: quants as in [`quantize_row_q8_0_cpu`],
/// `s = f16(d · Σq)` with the unrounded f32 `d` (the same formula as the reference).
pub fn quantize_row_q8_1_cpu(x: &[f32], out: &mut [BlockQ8_1]) {
    check_quantize(x, out);
    for (b, xb) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, id) = cpu_q8_scale(xb);
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = saturate_i8(v * id);
            sum += *q as i32;
        }
        b.s = f32_to_f16(d * sum as f32);
    }
}

/// Q8_1 · Q8_1 (not a ggml kernel: ggml never uses Q8_1 as weights): `Σ q_x q_y · (d_x·d_y)`.
pub fn vec_dot_q8_1_q8_1_scalar(n: usize, x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    let nb = check_dot(n, x, y);
    let mut sumf = 0.0f32;
    for (bx, by) in x[..nb].iter().zip(&y[..nb]) {
        let sumi: i32 = bx
            .qs
            .iter()
            .zip(&by.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (f16_to_f32(bx.d) * f16_to_f32(by.d));
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// The block trait

macro_rules! impl_block {
    ($block:ident, $ty:ident, $vd:ident, $deq:ident, $q:ident, $from:ident, $dot:ident, $zero:expr) => {
        impl GgmlBlock for $block {
            const TYPE: GgmlType = GgmlType::$ty;
            const WEIGHTS: usize = QK;
            const ZERO: Self = $zero;
            type VecDot = $vd;
            fn dequantize(blocks: &[Self], out: &mut [f32]) {
                $deq(blocks, out);
            }
            fn quantize(x: &[f32], out: &mut [Self]) {
                $q(x, out);
            }
            fn from_float(x: &[f32], out: &mut [Self]) {
                $from(x, out);
            }
            fn vec_dot(n: usize, x: &[Self], y: &[$vd]) -> f32 {
                $dot(n, x, y)
            }
        }
    };
}

impl_block!(
    BlockQ4_0,
    Q4_0,
    BlockQ8_0,
    dequantize_row_q4_0,
    quantize_row_q4_0,
    quantize_row_q4_0,
    vec_dot_q4_0_q8_0_scalar,
    BlockQ4_0 {
        d: [0; 2],
        qs: [0; 16]
    }
);
impl_block!(
    BlockQ4_1,
    Q4_1,
    BlockQ8_1,
    dequantize_row_q4_1,
    quantize_row_q4_1,
    quantize_row_q4_1,
    vec_dot_q4_1_q8_1_scalar,
    BlockQ4_1 {
        d: [0; 2],
        m: [0; 2],
        qs: [0; 16]
    }
);
impl_block!(
    BlockQ5_0,
    Q5_0,
    BlockQ8_0,
    dequantize_row_q5_0,
    quantize_row_q5_0,
    quantize_row_q5_0,
    vec_dot_q5_0_q8_0_scalar,
    BlockQ5_0 {
        d: [0; 2],
        qh: [0; 4],
        qs: [0; 16]
    }
);
impl_block!(
    BlockQ5_1,
    Q5_1,
    BlockQ8_1,
    dequantize_row_q5_1,
    quantize_row_q5_1,
    quantize_row_q5_1,
    vec_dot_q5_1_q8_1_scalar,
    BlockQ5_1 {
        d: [0; 2],
        m: [0; 2],
        qh: [0; 4],
        qs: [0; 16]
    }
);
impl_block!(
    BlockQ8_0,
    Q8_0,
    BlockQ8_0,
    dequantize_row_q8_0,
    quantize_row_q8_0,
    quantize_row_q8_0_cpu,
    vec_dot_q8_0_q8_0_scalar,
    BlockQ8_0 {
        d: [0; 2],
        qs: [0; 32]
    }
);
impl_block!(
    BlockQ8_1,
    Q8_1,
    BlockQ8_1,
    dequantize_row_q8_1,
    quantize_row_q8_1,
    quantize_row_q8_1_cpu,
    vec_dot_q8_1_q8_1_scalar,
    BlockQ8_1 {
        d: [0; 2],
        s: [0; 2],
        qs: [0; 32]
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference Q8_0/Q8_1 quantizers round ties away from zero, ggml's CPU activation path
    /// rounds them to even: a block whose scale is exactly 1 shows the difference.
    #[test]
    fn reference_and_cpu_q8_paths_differ_only_on_ties() {
        let mut x = [0.0f32; QK];
        x[0] = 127.0; // amax: d = 1, both multipliers are exactly 1
        x[1] = 2.5;
        x[2] = -0.5;
        x[3] = 3.5;
        x[4] = 1.25;
        let mut r = [BlockQ8_0 {
            d: [0; 2],
            qs: [0; QK],
        }];
        let mut c = r;
        quantize_row_q8_0(&x, &mut r);
        quantize_row_q8_0_cpu(&x, &mut c);
        assert_eq!(r[0].d, c[0].d);
        assert_eq!(&r[0].qs[..5], &[127, 3, -1, 4, 1]);
        assert_eq!(&c[0].qs[..5], &[127, 2, 0, 4, 1]);

        let mut r1 = [BlockQ8_1 {
            d: [0; 2],
            s: [0; 2],
            qs: [0; QK],
        }];
        let mut c1 = r1;
        quantize_row_q8_1(&x, &mut r1);
        quantize_row_q8_1_cpu(&x, &mut c1);
        assert_eq!(f16_to_f32(r1[0].s), 127.0 + 3.0 - 1.0 + 4.0 + 1.0);
        assert_eq!(f16_to_f32(c1[0].s), 127.0 + 2.0 + 0.0 + 4.0 + 1.0);
    }

    #[test]
    fn q4_0_uses_the_signed_extreme() {
        // The extreme is negative: it maps to quant 0 (−8·d with d = −max/8 > 0).
        let mut x = [0.0f32; QK];
        x[7] = -4.0;
        x[8] = 3.0;
        let mut b = [BlockQ4_0 {
            d: [0; 2],
            qs: [0; 16],
        }];
        quantize_row_q4_0(&x, &mut b);
        assert_eq!(f16_to_f32(b[0].d), 0.5);
        let mut y = [0.0f32; QK];
        dequantize_row_q4_0(&b, &mut y);
        assert_eq!(y[7], -4.0);
        assert_eq!(y[8], 3.0);
        assert_eq!(y[0], 0.0);
    }
}
