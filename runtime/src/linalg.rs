//! Matrix-vector products of the forward pass: the input vector is converted once to each
//! activation format a weight asks for (ggml's `from_float` of the weight's `vec_dot_type`),
//! then every weight row is dotted with it by `eddy-quant`'s kernel for the weight's format.
//!
//! With the CPU path's activation conversion (inverse scale `127 / amax`, rounding half to
//! even), SmolLM2's first-position logits equal llama.cpp's to 4e-6; ggml's `_ref` conversion
//! (`1 / d`, rounding half away from zero) was off by up to 0.34.

use eddy_quant::{GgmlType, TypeTraits, type_traits};

use crate::memory::Carver;
use crate::model::{Model, TensorRef};
use crate::threads::{SharedOut, ThreadPool, split};

/// Activation formats a weight may ask for, each with a buffer in [`Activations`].
const PARTNERS: [GgmlType; 4] = [
    GgmlType::F32,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q8_K,
];

/// The current input vector and its converted copies, made on first request: a view of the
/// context's region.
#[derive(Debug)]
pub(crate) struct Activations<'b> {
    x: &'b mut [f32],
    len: usize,
    /// One buffer per entry of `PARTNERS`, sized for the longest vector.
    converted: [&'b mut [u8]; 4],
    ready: [bool; 4],
}

impl<'b> Activations<'b> {
    /// Buffers for vectors of up to `max_len` elements (rounded up to whole 256-blocks), taken
    /// from `c`.
    pub(crate) fn carve(c: &mut Carver<'b>, max_len: usize) -> Self {
        let padded = max_len.next_multiple_of(256);
        let bytes = |ty: GgmlType| ty.bytes_for(padded as u64).unwrap_or(0) as usize;
        Activations {
            x: c.slice(max_len),
            len: 0,
            converted: PARTNERS.map(|ty| c.slice(bytes(ty))),
            ready: [false; 4],
        }
    }

    /// Makes `x` the current input.
    pub fn set(&mut self, x: &[f32]) {
        self.x[..x.len()].copy_from_slice(x);
        self.len = x.len();
        self.ready = [false; 4];
    }

    /// The current input converted to `ty` (one of the partner formats).
    fn as_type(&mut self, ty: GgmlType) -> &[u8] {
        let i = PARTNERS.iter().position(|&p| p == ty).unwrap_or(0);
        let n = ty.bytes_for(self.len as u64).unwrap_or(0) as usize;
        if !self.ready[i] {
            if let Some(t) = type_traits(ty) {
                (t.from_float)(&self.x[..self.len], &mut self.converted[i][..n]);
            }
            self.ready[i] = true;
        }
        &self.converted[i][..n]
    }
}

fn traits(ty: GgmlType) -> &'static TypeTraits {
    // Every weight type was checked with `supported` when the model was loaded.
    type_traits(ty).unwrap_or_else(|| unreachable!("unchecked weight type {ty}"))
}

/// `out[r] = dot(row r of w, x)` for every row, the rows split over the pool's threads in fixed
/// ranges (each row is computed the same way whatever the thread count).
pub fn matvec(
    model: &Model,
    w: &TensorRef,
    act: &mut Activations<'_>,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    debug_assert_eq!(act.len, w.cols);
    debug_assert_eq!(out.len(), w.rows);
    let t = traits(w.ty);
    let y = act.as_type(t.vec_dot_type);
    let data = model.data(w);
    let rb = w.row_bytes();
    let n = pool.n_threads();
    // Small matrices are not worth a region.
    if n == 1 || w.rows * rb < 64 * 1024 {
        for (o, row) in out.iter_mut().zip(data.chunks_exact(rb)) {
            *o = (t.vec_dot)(w.cols, row, y);
        }
        return;
    }
    let rows = w.rows;
    let shared = SharedOut::new(out);
    pool.run(&|i| {
        let r = split(rows, n, i);
        let start = r.start;
        #[allow(unsafe_code)]
        // SAFETY: `split` gives each worker a disjoint range inside `0..rows` = `0..out.len()`,
        // and `out` outlives the region (`run` returns after every worker has finished).
        let part = unsafe { shared.range(r) };
        for (k, o) in part.iter_mut().enumerate() {
            let row = &data[(start + k) * rb..(start + k + 1) * rb];
            *o = (t.vec_dot)(w.cols, row, y);
        }
    });
}

/// Dequantizes row `row` of `w` into `out`.
pub fn embedding_row(model: &Model, w: &TensorRef, row: usize, out: &mut [f32]) {
    let rb = w.row_bytes();
    let data = &model.data(w)[row * rb..(row + 1) * rb];
    (traits(w.ty).to_float)(data, out);
}

/// Whether weights of this type can be used by [`matvec`] and [`embedding_row`].
pub fn supported(ty: GgmlType) -> bool {
    type_traits(ty).is_some_and(|t| PARTNERS.contains(&t.vec_dot_type))
}
