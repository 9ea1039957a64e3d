//! Plain float formats: F32, F16 and BF16, each a "block" of one value.
//!
//! Their activation partner is the format itself (ggml converts activations to F16 for F16
//! weights, to BF16 for BF16 weights). The dot products multiply in f32 and accumulate in f64,
//! as ggml's scalar `ggml_vec_dot_f16`/`_bf16`/`_f32` do.

use crate::GgmlType;
use crate::block::{GgmlBlock, check_dequantize, check_dot, check_quantize, ggml_block_layout};
use crate::num::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};

/// One IEEE single-precision value (32 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockF32 {
    /// The value, little-endian (32 bpw).
    pub v: [u8; 4],
}
ggml_block_layout!(BlockF32, 4);

/// One IEEE half-precision value (16 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockF16 {
    /// The value, little-endian (16 bpw).
    pub v: [u8; 2],
}
ggml_block_layout!(BlockF16, 2);

/// One bfloat16 value: the upper half of an f32 (16 bits per weight).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockBF16 {
    /// The value, little-endian (16 bpw).
    pub v: [u8; 2],
}
ggml_block_layout!(BlockBF16, 2);

/// Copies f32 values out of their little-endian bytes.
pub fn dequantize_row_f32(blocks: &[BlockF32], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (o, b) in out.iter_mut().zip(blocks) {
        *o = f32::from_le_bytes(b.v);
    }
}

/// Stores f32 values as little-endian bytes.
pub fn quantize_row_f32(x: &[f32], out: &mut [BlockF32]) {
    check_quantize(x, out);
    for (b, &v) in out.iter_mut().zip(x) {
        b.v = v.to_le_bytes();
    }
}

/// Widens halves to f32 (exact).
pub fn dequantize_row_f16(blocks: &[BlockF16], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (o, b) in out.iter_mut().zip(blocks) {
        *o = f16_to_f32(b.v);
    }
}

/// Rounds f32 to the nearest half, ties to even (ggml's `ggml_fp32_to_fp16_row`).
pub fn quantize_row_f16(x: &[f32], out: &mut [BlockF16]) {
    check_quantize(x, out);
    for (b, &v) in out.iter_mut().zip(x) {
        b.v = f32_to_f16(v);
    }
}

/// Widens bfloat16 to f32 (exact).
pub fn dequantize_row_bf16(blocks: &[BlockBF16], out: &mut [f32]) {
    check_dequantize(blocks, out);
    for (o, b) in out.iter_mut().zip(blocks) {
        *o = bf16_to_f32(b.v);
    }
}

/// Rounds f32 to the nearest bfloat16, ties to even (ggml's `ggml_fp32_to_bf16_row_ref`).
pub fn quantize_row_bf16(x: &[f32], out: &mut [BlockBF16]) {
    check_quantize(x, out);
    for (b, &v) in out.iter_mut().zip(x) {
        b.v = f32_to_bf16(v);
    }
}

/// Dot product of two f32 rows: f32 products summed in f64, rounded to f32 at the end.
pub fn vec_dot_f32_f32_scalar(n: usize, x: &[BlockF32], y: &[BlockF32]) -> f32 {
    check_dot(n, x, y);
    let mut sum = 0.0f64;
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sum += f64::from(f32::from_le_bytes(a.v) * f32::from_le_bytes(b.v));
    }
    sum as f32
}

/// Dot product of two F16 rows: products of the widened values in f32, summed in f64.
pub fn vec_dot_f16_f16_scalar(n: usize, x: &[BlockF16], y: &[BlockF16]) -> f32 {
    check_dot(n, x, y);
    let mut sum = 0.0f64;
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sum += f64::from(f16_to_f32(a.v) * f16_to_f32(b.v));
    }
    sum as f32
}

/// Dot product of two BF16 rows: products of the widened values in f32, summed in f64.
pub fn vec_dot_bf16_bf16_scalar(n: usize, x: &[BlockBF16], y: &[BlockBF16]) -> f32 {
    check_dot(n, x, y);
    let mut sum = 0.0f64;
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sum += f64::from(bf16_to_f32(a.v) * bf16_to_f32(b.v));
    }
    sum as f32
}

impl GgmlBlock for BlockF32 {
    const TYPE: GgmlType = GgmlType::F32;
    const WEIGHTS: usize = 1;
    const ZERO: Self = BlockF32 { v: [0; 4] };
    type VecDot = BlockF32;
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        dequantize_row_f32(blocks, out);
    }
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_f32(x, out);
    }
    fn vec_dot(n: usize, x: &[Self], y: &[Self]) -> f32 {
        vec_dot_f32_f32_scalar(n, x, y)
    }
}

impl GgmlBlock for BlockF16 {
    const TYPE: GgmlType = GgmlType::F16;
    const WEIGHTS: usize = 1;
    const ZERO: Self = BlockF16 { v: [0; 2] };
    type VecDot = BlockF16;
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        dequantize_row_f16(blocks, out);
    }
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_f16(x, out);
    }
    fn vec_dot(n: usize, x: &[Self], y: &[Self]) -> f32 {
        vec_dot_f16_f16_scalar(n, x, y)
    }
}

impl GgmlBlock for BlockBF16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const WEIGHTS: usize = 1;
    const ZERO: Self = BlockBF16 { v: [0; 2] };
    type VecDot = BlockBF16;
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        dequantize_row_bf16(blocks, out);
    }
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_bf16(x, out);
    }
    fn vec_dot(n: usize, x: &[Self], y: &[Self]) -> f32 {
        vec_dot_bf16_bf16_scalar(n, x, y)
    }
}
