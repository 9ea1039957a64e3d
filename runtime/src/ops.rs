//! f32 building blocks of the forward pass, following ggml's arithmetic where it matters for
//! agreement with llama.cpp (sums of squares and softmax denominators in f64).
//!
//! The hot f32 loops (dot, axpy, softmax, SiLU, f16 conversion, fused attention) have
//! dispatched SIMD versions in `eddy_quant::f32ops`; these scalar ones serve the cold paths and
//! are written so that the compiler can auto-vectorise their inner loops.

/// `Σ x_i²` as RMS norm takes it: each square rounded to f32 and summed in f64, as ggml does,
/// but in eight independent f64 lanes (then added pairwise). ggml's single running sum is a
/// chain of dependent additions, 4 cycles each, that made the norms about 0.7 % of a SmolLM2
/// token; the lanes reorder f64 additions only, whose rounding (2^-53 relative per addition)
/// lies far below the f32 result's.
fn sum_squares_f64(x: &[f32]) -> f64 {
    const LANES: usize = 8;
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut lanes = [0f64; LANES];
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f64::from(v * v);
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut sum = ((a + e) + (b + f)) + ((c + g) + (d + h));
    for &v in rest {
        sum += f64::from(v * v);
    }
    sum
}

/// `out = x / rms(x) * w`, with the mean square summed in f64 as ggml does (each square
/// rounded to f32, then added in eight f64 lanes).
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    debug_assert!(out.len() == x.len() && x.len() == w.len());
    let sum = sum_squares_f64(x);
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// In-place [`rms_norm`].
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum = sum_squares_f64(x);
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// Softmax in place: `x[i] = exp(x[i] - max) / sum`, the sum accumulated in f64.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        let e = (*v - max).exp();
        sum += f64::from(e);
        *v = e;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x * sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU with the tanh approximation.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU as ggml's CPU backend computes it: `x` rounded to f16, GELU of that in f32, the result
/// rounded to f16 (ggml reads it from a 64k-entry f16 table); exact GELU outside ±10 (x or 0).
#[inline]
pub fn gelu_tanh_f16_table(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let xh = half::f16::from_f32(x).to_f32();
        half::f16::from_f32(gelu_tanh(xh)).to_f32()
    }
}

/// [`gelu_tanh_f16_table`] of every f16 value, indexed by its bits: ggml's table, in f32.
/// Built once (256 KiB), on first use; a model with GELU builds it at load so that no decode
/// step allocates.
pub(crate) fn gelu_f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = half::f16::from_bits(bits).to_f32();
                half::f16::from_f32(gelu_tanh(x)).to_f32()
            })
            .collect()
    })
}

/// `g[i] = gelu_tanh_f16_table(g[i]) * u[i]`, converting to f16 a few lanes at a time (the
/// `half` crate's slice conversion uses F16C/NEON where the CPU has it) and reading the table.
/// Element-wise, so a token's result does not depend on its place in the batch.
pub fn gelu_tanh_f16_table_mul(g: &mut [f32], u: &[f32]) {
    use half::slice::HalfFloatSliceExt;
    debug_assert_eq!(g.len(), u.len());
    let table = gelu_f16_table();
    let mut h = [half::f16::ZERO; 64];
    for (gc, uc) in g.chunks_mut(64).zip(u.chunks(64)) {
        let h = &mut h[..gc.len()];
        h.convert_from_f32_slice(gc);
        for ((g, &u), hx) in gc.iter_mut().zip(uc).zip(h.iter()) {
            let x = *g;
            let y = if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x
            } else {
                table[usize::from(hx.to_bits())]
            };
            *g = y * u;
        }
    }
}

/// `sum(a[i] * b[i])` in f32.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators: vectorises and keeps the order fixed.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += a[c * 8 + j] * b[c * 8 + j];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// `y += a * x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// Rotates one head in place by the angles in `cos`/`sin` (one per pair).
///
/// `adjacent`: pairs `(2i, 2i+1)`; otherwise pairs `(i, i + n/2)` where `n = 2 * cos.len()`.
/// Elements past `2 * cos.len()` are left as they are.
pub fn rope_apply(head: &mut [f32], cos: &[f32], sin: &[f32], adjacent: bool) {
    let half = cos.len();
    if adjacent {
        for i in 0..half {
            let (x0, x1) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = x0 * cos[i] - x1 * sin[i];
            head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
        }
    } else {
        for i in 0..half {
            let (x0, x1) = (head[i], head[i + half]);
            head[i] = x0 * cos[i] - x1 * sin[i];
            head[i + half] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/// Fills `cos`/`sin` with the RoPE angles of position `pos`.
///
/// Angle of pair `i`: `pos * scale * base^(-2i/n_rot) / factor[i]`, computed in f64 so that
/// positions in the millions keep their precision.
pub fn rope_angles(
    cos: &mut [f32],
    sin: &mut [f32],
    pos: f64,
    base: f32,
    freq_scale: f32,
    factors: Option<&[f32]>,
) {
    let half = cos.len();
    let n_rot = (2 * half) as f64;
    for i in 0..half {
        let inv_freq = f64::from(base).powf(-((2 * i) as f64) / n_rot);
        let mut theta = pos * f64::from(freq_scale) * inv_freq;
        if let Some(f) = factors {
            theta /= f64::from(f[i]);
        }
        let (s, c) = theta.sin_cos();
        cos[i] = c as f32;
        sin[i] = s as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_table_product_equals_the_element_wise_formula() {
        // Every f16 value, values between them, the ±10 edges, infinities and NaN, in a
        // length that leaves a partial chunk.
        let mut x: Vec<f32> = (0..=u16::MAX)
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect();
        x.extend((0..5000).map(|i| (i as f32 - 2500.0) * 0.004_321));
        x.extend([-10.0, 10.0, -9.999, 9.999, -10.001, 10.001, f32::INFINITY]);
        x.extend([f32::NEG_INFINITY, f32::NAN, 65520.0, -65520.0, 1e-8, -0.0]);
        let u: Vec<f32> = (0..x.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let mut g = x.clone();
        gelu_tanh_f16_table_mul(&mut g, &u);
        for ((&x, &u), &g) in x.iter().zip(&u).zip(&g) {
            let want = gelu_tanh_f16_table(x) * u;
            assert!(
                want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                "x = {x:e}: {g:e} != {want:e}"
            );
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0f32, 3.0, -2.0, 3.0, 100.0];
        softmax(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[4] > 0.99 && x[1] == x[3] && x[2] < x[0]);
    }

    #[test]
    fn rope_is_a_rotation_and_position_zero_is_identity() {
        let mut cos = [0f32; 4];
        let mut sin = [0f32; 4];
        rope_angles(&mut cos, &mut sin, 0.0, 10000.0, 1.0, None);
        let orig = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut h = orig;
        rope_apply(&mut h, &cos, &sin, true);
        assert_eq!(h, orig);
        rope_angles(&mut cos, &mut sin, 1234.0, 10000.0, 1.0, None);
        for adjacent in [true, false] {
            let mut h = orig;
            rope_apply(&mut h, &cos, &sin, adjacent);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = h.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-3);
        }
    }

    #[test]
    fn rope_relative_property() {
        // <R(a) q, R(b) k> depends only on a - b.
        let q = [0.3f32, -1.0, 0.5, 2.0, 0.1, 0.7, -0.4, 1.5];
        let k = [1.0f32, 0.2, -0.3, 0.8, 0.9, -1.1, 0.6, 0.05];
        let score = |a: f64, b: f64| {
            let (mut c, mut s) = ([0f32; 4], [0f32; 4]);
            let (mut qa, mut kb) = (q, k);
            rope_angles(&mut c, &mut s, a, 10000.0, 1.0, None);
            rope_apply(&mut qa, &c, &s, false);
            rope_angles(&mut c, &mut s, b, 10000.0, 1.0, None);
            rope_apply(&mut kb, &c, &s, false);
            dot(&qa, &kb)
        };
        assert!((score(10.0, 3.0) - score(1_000_007.0, 1_000_000.0)).abs() < 1e-4);
    }

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0];
        let w = [1.0f32, 0.5, 2.0];
        let mut out = [0f32; 3];
        rms_norm(&mut out, &x, &w, 0.0);
        let rms = ((1.0 + 4.0 + 9.0) / 3.0f32).sqrt();
        for i in 0..3 {
            assert!((out[i] - x[i] / rms * w[i]).abs() < 1e-6);
        }
    }
}

/// Largest chunk [`hadamard`] transforms at once.
pub const HADAMARD_MAX: usize = 256;

/// The orthonormal Walsh–Hadamard transform of `x`, chunk by chunk, each chunk the largest power
/// of two up to [`HADAMARD_MAX`] that divides `x.len()`: `H·H = I` and `(H·q)·(H·k) = q·k`. A
/// quantized key cache stores `H·k` and scores `H·q` against it: the rotation spreads a key's few
/// large channels over the whole chunk, so the 32-value blocks of Q4_0/Q8_0 lose far less to
/// them (the rotation trick of QuaRot and of KV-cache quantization work since).
pub fn hadamard(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let m = (1usize << n.trailing_zeros()).min(HADAMARD_MAX);
    let scale = 1.0 / (m as f32).sqrt();
    for c in x.chunks_exact_mut(m) {
        let mut h = 1;
        while h < m {
            for i in (0..m).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (c[j], c[j + h]);
                    c[j] = a + b;
                    c[j + h] = a - b;
                }
            }
            h *= 2;
        }
        for v in c.iter_mut() {
            *v *= scale;
        }
    }
}

/// [`hadamard`] over chunks of [`HADAMARD_MAX`] values: how a quantized key cache rotates each
/// head's key when storing it, and each query before scoring it.
pub fn hadamard_chunks(x: &mut [f32]) {
    for c in x.chunks_mut(HADAMARD_MAX) {
        hadamard(c);
    }
}

#[cfg(test)]
mod hadamard_tests {
    use super::*;

    /// The transform is orthonormal and its own inverse, on every chunking a head dimension can
    /// give (a power of two up to 256, 96 = 3 x 32, 320 = 256 + 64).
    #[test]
    fn hadamard_is_orthonormal_and_its_own_inverse() {
        for n in [32usize, 64, 96, 128, 256, 320, 512] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.7).collect();
            let (mut hx, mut hy) = (x.clone(), y.clone());
            hadamard_chunks(&mut hx);
            hadamard_chunks(&mut hy);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
            assert!(
                (dot(&hx, &hy) - dot(&x, &y)).abs() < 1e-3,
                "{n}: inner product kept"
            );
            assert!(hx != x, "{n}: the transform moves values");
            hadamard_chunks(&mut hx);
            for (a, b) in hx.iter().zip(&x) {
                assert!((a - b).abs() < 1e-5, "{n}: H·H = I");
            }
        }
        // One large channel is spread evenly over its chunk.
        let mut spike = vec![0f32; 64];
        spike[5] = 8.0;
        hadamard_chunks(&mut spike);
        assert!(spike.iter().all(|v| (v.abs() - 1.0).abs() < 1e-6));
    }
}
