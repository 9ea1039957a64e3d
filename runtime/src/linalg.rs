//! Matrix-vector products of the forward pass: quantize the input once per activation format,
//! then dot every weight row with it, as ggml does.
//!
//! TEMPORARY: the kernels here cover only the formats of the default model (Q4_1, Q8_0, F32)
//! so that the forward pass could be built and tested before `eddy-quant` had its reference
//! formats; they are to be replaced by calls into `eddy-quant`'s dispatched kernels.

use half::f16;

use crate::error::{Result, tensor};
use crate::model::{Model, TensorRef};
use eddy_quant::GgmlType;

const QK: usize = 32;

/// The current input vector and its quantized copies, made on demand.
#[derive(Debug)]
pub struct Activations {
    x: Vec<f32>,
    len: usize,
    q8_0: Vec<u8>,
    q8_0_ok: bool,
    q8_1: Vec<u8>,
    q8_1_ok: bool,
}

impl Activations {
    /// Buffers for vectors of up to `max_len` elements.
    pub fn new(max_len: usize) -> Self {
        let blocks = max_len.div_ceil(QK);
        Activations {
            x: vec![0.0; max_len],
            len: 0,
            q8_0: vec![0; blocks * 34],
            q8_0_ok: false,
            q8_1: vec![0; blocks * 36],
            q8_1_ok: false,
        }
    }

    /// Makes `x` the current input.
    pub fn set(&mut self, x: &[f32]) {
        self.x[..x.len()].copy_from_slice(x);
        self.len = x.len();
        self.q8_0_ok = false;
        self.q8_1_ok = false;
    }

    fn q8_0(&mut self) -> &[u8] {
        let n = self.len / QK;
        if !self.q8_0_ok {
            for (xb, yb) in self.x[..self.len]
                .chunks_exact(QK)
                .zip(self.q8_0.chunks_exact_mut(34))
            {
                let (d, _) = quantize_block_q8(xb, &mut yb[2..34]);
                yb[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            }
            self.q8_0_ok = true;
        }
        &self.q8_0[..n * 34]
    }

    fn q8_1(&mut self) -> &[u8] {
        let n = self.len / QK;
        if !self.q8_1_ok {
            for (xb, yb) in self.x[..self.len]
                .chunks_exact(QK)
                .zip(self.q8_1.chunks_exact_mut(36))
            {
                let (d, sum) = quantize_block_q8(xb, &mut yb[4..36]);
                yb[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                yb[2..4].copy_from_slice(&f16::from_f32(d * sum as f32).to_le_bytes());
            }
            self.q8_1_ok = true;
        }
        &self.q8_1[..n * 36]
    }
}

/// Symmetric 8-bit quantization of 32 values; returns the scale and the sum of the quants.
///
/// As ggml's x86 CPU path does it (which is what llama.cpp runs, and differs from ggml's
/// `_ref` quantizer): inverse scale `127 / amax`, rounding half to even. With these two details
/// the logits of SmolLM2's first position agree with llama.cpp to 4e-6; with `1 / d` and
/// rounding half away from zero they differed by up to 0.34.
fn quantize_block_q8(x: &[f32], q: &mut [u8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i8;
        sum += i32::from(r);
        *o = r as u8;
    }
    (d, sum)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `out[r] = dot(row r of w, x)` for every row.
pub fn matvec(model: &Model, w: &TensorRef, act: &mut Activations, out: &mut [f32]) {
    let data = model.data(w);
    let rb = w.row_bytes();
    debug_assert_eq!(act.len, w.cols);
    debug_assert_eq!(out.len(), w.rows);
    match w.ty {
        GgmlType::Q4_1 => {
            let y = act.q8_1();
            for (o, row) in out.iter_mut().zip(data.chunks_exact(rb)) {
                let mut sum = 0f32;
                for (xb, yb) in row.chunks_exact(20).zip(y.chunks_exact(36)) {
                    let mut sumi = 0i32;
                    for j in 0..16 {
                        let lo = i32::from(xb[4 + j] & 0x0f);
                        let hi = i32::from(xb[4 + j] >> 4);
                        sumi +=
                            lo * i32::from(yb[4 + j] as i8) + hi * i32::from(yb[4 + j + 16] as i8);
                    }
                    sum += (f16_at(xb, 0) * f16_at(yb, 0)) * sumi as f32
                        + f16_at(xb, 2) * f16_at(yb, 2);
                }
                *o = sum;
            }
        }
        GgmlType::Q8_0 => {
            let y = act.q8_0();
            for (o, row) in out.iter_mut().zip(data.chunks_exact(rb)) {
                let mut sum = 0f32;
                for (xb, yb) in row.chunks_exact(34).zip(y.chunks_exact(34)) {
                    let mut sumi = 0i32;
                    for j in 0..32 {
                        sumi += i32::from(xb[2 + j] as i8) * i32::from(yb[2 + j] as i8);
                    }
                    sum += sumi as f32 * (f16_at(xb, 0) * f16_at(yb, 0));
                }
                *o = sum;
            }
        }
        GgmlType::F32 => {
            for (o, row) in out.iter_mut().zip(data.chunks_exact(rb)) {
                let mut sum = 0f32;
                for (wb, &x) in row.chunks_exact(4).zip(&act.x[..act.len]) {
                    sum += f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]) * x;
                }
                *o = sum;
            }
        }
        _ => unreachable!("weight types are checked by supported()"),
    }
}

/// Dequantizes row `row` of `w` into `out`.
pub fn embedding_row(model: &Model, w: &TensorRef, row: usize, out: &mut [f32]) {
    let rb = w.row_bytes();
    let data = &model.data(w)[row * rb..(row + 1) * rb];
    match w.ty {
        GgmlType::Q8_0 => {
            for (b, o) in data.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
                let d = f16_at(b, 0);
                for j in 0..QK {
                    o[j] = d * f32::from(b[2 + j] as i8);
                }
            }
        }
        GgmlType::Q4_1 => {
            for (b, o) in data.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..16 {
                    o[j] = f32::from(b[4 + j] & 0x0f) * d + m;
                    o[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
                }
            }
        }
        GgmlType::F32 => {
            for (b, o) in data.chunks_exact(4).zip(out.iter_mut()) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        _ => unreachable!("weight types are checked by supported()"),
    }
}

/// Whether a weight of this type can be used by [`matvec`] / [`embedding_row`].
pub fn supported(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q8_0 | GgmlType::F32)
}

/// A 1-D F32 tensor (norm weights) copied out as f32 values.
pub fn f32_vector(model: &Model, t: &TensorRef) -> Result<Vec<f32>> {
    if t.ty != GgmlType::F32 {
        return Err(tensor("norm", format!("type {} (expected F32)", t.ty)));
    }
    Ok(model
        .data(t)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
