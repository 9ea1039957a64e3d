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

/// The current input columns (up to a micro-batch of vectors) and their converted copies, made
/// on first request: a view of the context's region.
#[derive(Debug)]
pub(crate) struct Activations<'b> {
    /// `[max_cols][max_len]`.
    x: &'b mut [f32],
    /// Length of each current column.
    len: usize,
    /// Number of current columns.
    cols: usize,
    max_len: usize,
    /// One buffer per entry of `PARTNERS`: `[max_cols]` rows of the longest vector converted.
    converted: [&'b mut [u8]; 4],
    ready: [bool; 4],
}

impl<'b> Activations<'b> {
    /// Buffers for `max_cols` vectors of up to `max_len` elements (rounded up to whole
    /// 256-blocks), taken from `c`.
    pub(crate) fn carve(c: &mut Carver<'b>, max_len: usize, max_cols: usize) -> Self {
        let padded = max_len.next_multiple_of(256);
        let bytes = |ty: GgmlType| ty.bytes_for(padded as u64).unwrap_or(0) as usize;
        Activations {
            x: c.slice(max_len * max_cols),
            len: 0,
            cols: 0,
            max_len,
            converted: PARTNERS.map(|ty| c.slice(bytes(ty) * max_cols)),
            ready: [false; 4],
        }
    }

    /// Makes the `x.len() / len` vectors of `len` elements in `x` the current input columns.
    pub(crate) fn set(&mut self, x: &[f32], len: usize) {
        debug_assert!(len <= self.max_len && x.len().is_multiple_of(len));
        let cols = x.len() / len;
        for (dst, src) in self
            .x
            .chunks_exact_mut(self.max_len)
            .zip(x.chunks_exact(len))
        {
            dst[..len].copy_from_slice(src);
        }
        self.len = len;
        self.cols = cols;
        self.ready = [false; 4];
    }

    /// Converts the current columns to `ty` (one of the partner formats) unless done already.
    fn prepare(&mut self, ty: GgmlType) {
        let i = PARTNERS.iter().position(|&p| p == ty).unwrap_or(0);
        if self.ready[i] {
            return;
        }
        let n = ty.bytes_for(self.len as u64).unwrap_or(0) as usize;
        if let Some(t) = type_traits(ty) {
            for c in 0..self.cols {
                let x = &self.x[c * self.max_len..c * self.max_len + self.len];
                (t.from_float)(x, &mut self.converted[i][c * n..(c + 1) * n]);
            }
        }
        self.ready[i] = true;
    }

    /// The current columns converted to `ty` (after [`Activations::prepare`]), back to back,
    /// and the bytes of one column.
    fn converted(&self, ty: GgmlType) -> (&[u8], usize) {
        let i = PARTNERS.iter().position(|&p| p == ty).unwrap_or(0);
        let n = ty.bytes_for(self.len as u64).unwrap_or(0) as usize;
        (&self.converted[i][..n * self.cols], n)
    }
}

fn traits(ty: GgmlType) -> &'static TypeTraits {
    // Every weight type was checked with `supported` when the model was loaded.
    type_traits(ty).unwrap_or_else(|| unreachable!("unchecked weight type {ty}"))
}

/// Weight rows whose bytes a worker keeps in L1 while it dots them with every column.
const ROW_BLOCK_BYTES: usize = 8 * 1024;
/// Outputs of one multi-column kernel call (a stack tile of rows × columns).
const TILE: usize = 1024;
/// Columns per multi-column kernel call.
const TILE_COLS: usize = 32;

/// Products that share their input: `out_k[c][r] = dot(row r of w_k, column c)` for every
/// weight `w_k`, row `r` and current activation column `c` (outputs are `[cols][rows]`).
///
/// One parallel region for all of them: each worker takes a fixed share of every weight's rows
/// and dots each block of rows with all columns while the block is in L1, so the weights are
/// read from memory once per call however many columns there are. Each output is computed by
/// the same kernel call whatever the thread count and batch size, so logits are bit-identical
/// for any number of threads and batched prefill equals token-by-token decoding.
pub(crate) fn matmul<const K: usize>(
    model: &Model,
    jobs: [(&TensorRef, &mut [f32]); K],
    act: &mut Activations<'_>,
    pool: &ThreadPool,
) {
    for (w, _) in &jobs {
        act.prepare(traits(w.ty).vec_dot_type);
    }
    let act = &*act;
    let cols = act.cols;
    let work = jobs.map(|(w, out)| {
        debug_assert_eq!(act.len, w.cols);
        debug_assert_eq!(out.len(), w.rows * cols);
        let t = traits(w.ty);
        let (y, ystride) = act.converted(t.vec_dot_type);
        (w, t, y, ystride, SharedOut::new(out))
    });
    let n = pool.n_threads();
    let bytes: usize = work.iter().map(|(w, ..)| w.rows * w.row_bytes()).sum();
    let run = |i: usize, parts: usize| {
        for (w, t, y, ystride, out) in &work {
            let data = model.data(w);
            let rb = w.row_bytes();
            let share = split(w.rows, parts, i);
            let block = (ROW_BLOCK_BYTES / rb).max(1);
            let multi = t.vec_dot_multi.filter(|_| cols > 1);
            let mut tile = [0f32; TILE];
            let mut r0 = share.start;
            while r0 < share.end {
                let r1 = (r0 + block).min(share.end);
                if let Some(f) = multi {
                    // Several columns per kernel call, each weight row unpacked once for all of
                    // them; results land in a stack tile `[row][column]`, then in the outputs.
                    let mut c0 = 0;
                    while c0 < cols {
                        let k = (cols - c0).min(TILE_COLS);
                        let rows_per = (TILE / k).min(r1 - r0);
                        let mut ra = r0;
                        while ra < r1 {
                            let rb_ = (ra + rows_per).min(r1);
                            let m = rb_ - ra;
                            f(
                                w.cols,
                                &data[ra * rb..rb_ * rb],
                                m,
                                &y[c0 * ystride..],
                                *ystride,
                                &mut tile[..m * k],
                            );
                            for j in 0..k {
                                let c = c0 + j;
                                #[allow(unsafe_code)]
                                // SAFETY: as below: rows `ra..rb_` of column `c` belong to this
                                // worker's share.
                                let part = unsafe { out.range(c * w.rows + ra..c * w.rows + rb_) };
                                for (i, o) in part.iter_mut().enumerate() {
                                    *o = tile[i * k + j];
                                }
                            }
                            ra = rb_;
                        }
                        c0 += k;
                    }
                    r0 = r1;
                    continue;
                }
                for c in 0..cols {
                    let yc = &y[c * ystride..(c + 1) * ystride];
                    #[allow(unsafe_code)]
                    // SAFETY: worker `i` writes only rows `share` of each column, and `split`
                    // gives the workers disjoint shares of `0..rows`; `[c][r0..r1]` lies inside
                    // the `cols * rows` output, which outlives the region.
                    let part = unsafe { out.range(c * w.rows + r0..c * w.rows + r1) };
                    for (k, o) in part.iter_mut().enumerate() {
                        let r = r0 + k;
                        *o = (t.vec_dot)(w.cols, &data[r * rb..(r + 1) * rb], yc);
                    }
                }
                r0 = r1;
            }
        }
    };
    // Small products are not worth a region.
    if n == 1 || bytes < 64 * 1024 {
        run(0, 1);
    } else {
        pool.run(&|i| run(i, n));
    }
}

/// Dequantizes row `row` of `w` into `out`.
pub fn embedding_row(model: &Model, w: &TensorRef, row: usize, out: &mut [f32]) {
    let rb = w.row_bytes();
    let data = &model.data(w)[row * rb..(row + 1) * rb];
    (traits(w.ty).to_float)(data, out);
}

/// Whether weights of this type can be used by [`matmul`] and [`embedding_row`].
pub fn supported(ty: GgmlType) -> bool {
    type_traits(ty).is_some_and(|t| PARTNERS.contains(&t.vec_dot_type))
}
