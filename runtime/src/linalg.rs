//! Matrix products of the forward pass: the input columns (one per token of the micro-batch)
//! are converted once to each activation format a weight asks for (ggml's `from_float` of the
//! weight's `vec_dot_type`, or the panel kernels' preparation of it), then every weight row is
//! multiplied with them by `eddy-quant`'s kernels for the weight's format: `vec_dot` or the
//! multi-column kernels for small batches, the matrix-vector kernel on the prepared column for
//! one token where the tier has it, the packed-panel kernels for batches of `PANEL_MIN_COLS`
//! tokens or more. Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 matrices the model keeps row-interleaved
//! ([`Model`]'s documentation) go through the interleaved product for every column of a small
//! batch, and through panels packed from the interleaved copy for larger ones.
//!
//! With the CPU path's activation conversion (inverse scale `127 / amax`, rounding half to
//! even), SmolLM2's first-position logits equal llama.cpp's to 4e-6; ggml's `_ref` conversion
//! (`1 / d`, rounding half away from zero) was off by up to 0.34.

use std::ops::Range;

use eddy_quant::interleaved::{self, InterleavedKernels};
use eddy_quant::panel::{self, MatvecFn, PANEL_ROWS, PanelKernels};
use eddy_quant::prefetch::prefetch;
use eddy_quant::{GgmlType, TypeTraits, type_traits};

use crate::memory::Carver;
use crate::model::{Model, TensorRef};
use crate::threads::{SharedOut, ThreadPool, run_rows};

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
    /// The current columns prepared for panel kernels (`[max_cols]` columns of at most
    /// `max_column_bytes(max_len)`), and the partner format they were prepared for: one buffer
    /// for the 32-weight layouts (Q8_0/Q8_1 partners) and one for the k-quants' (Q8_K), so that
    /// products of one call whose weights have both kinds read each their own.
    prepared: [&'b mut [u8]; 2],
    prepared_for: [Option<GgmlType>; 2],
    /// One packed weight panel per worker, `[n_threads][panel_words]` (f32 words so that
    /// workers can take disjoint parts through [`SharedOut`]).
    panels: &'b mut [f32],
    panel_words: usize,
}

impl<'b> Activations<'b> {
    /// Buffers for `max_cols` vectors of up to `max_len` elements (rounded up to whole
    /// 256-blocks), taken from `c`.
    /// Panel scratch is taken only when batches can reach [`PANEL_MIN_COLS`] columns.
    pub(crate) fn carve(
        c: &mut Carver<'b>,
        max_len: usize,
        max_cols: usize,
        n_threads: usize,
    ) -> Self {
        let padded = max_len.next_multiple_of(256);
        let bytes = |ty: GgmlType| ty.bytes_for(padded as u64).unwrap_or(0) as usize;
        let panel_words = if max_cols >= PANEL_MIN_COLS {
            panel::max_panel_bytes(max_len).div_ceil(4)
        } else {
            0
        };
        Activations {
            x: c.slice(max_len * max_cols),
            len: 0,
            cols: 0,
            max_len,
            converted: PARTNERS.map(|ty| c.slice(bytes(ty) * max_cols)),
            ready: [false; 4],
            prepared: [(); 2].map(|_| c.slice(panel::max_column_bytes(max_len) * max_cols)),
            prepared_for: [None; 2],
            panels: c.slice(panel_words * n_threads),
            panel_words,
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
        self.prepared_for = [None; 2];
    }

    /// Prepares the current columns for the panel kernels `k` (whose weights pair with
    /// `partner`) unless done already.
    fn prepare_panel(&mut self, k: &PanelKernels, partner: GgmlType, pool: &ThreadPool) {
        let i = prepared_index(partner);
        if self.prepared_for[i] == Some(partner) {
            return;
        }
        let n = (k.column_bytes)(self.len);
        let (x, max_len, len) = (&*self.x, self.max_len, self.len);
        // Columns on the pool from `PANEL_MIN_COLS` on: a column's bytes depend only on it.
        run_rows(
            pool,
            PANEL_MIN_COLS,
            self.prepared[i],
            n,
            self.cols,
            &|c, out| {
                (k.prepare)(&x[c * max_len..c * max_len + len], out);
            },
        );
        self.prepared_for[i] = Some(partner);
    }

    /// Converts the current columns to `ty` (one of the partner formats) unless done already.
    fn prepare(&mut self, ty: GgmlType, pool: &ThreadPool) {
        let i = PARTNERS.iter().position(|&p| p == ty).unwrap_or(0);
        if self.ready[i] {
            return;
        }
        let n = ty.bytes_for(self.len as u64).unwrap_or(0) as usize;
        if let Some(t) = type_traits(ty) {
            let (x, max_len, len) = (&*self.x, self.max_len, self.len);
            run_rows(
                pool,
                PANEL_MIN_COLS,
                self.converted[i],
                n,
                self.cols,
                &|c, out| {
                    (t.from_float)(&x[c * max_len..c * max_len + len], out);
                },
            );
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

pub(crate) fn traits(ty: GgmlType) -> &'static TypeTraits {
    // Every weight type was checked with `supported` when the model was loaded.
    type_traits(ty).unwrap_or_else(|| unreachable!("unchecked weight type {ty}"))
}

/// Weight rows whose bytes a worker keeps in L1 while it dots them with every column.
const ROW_BLOCK_BYTES: usize = 8 * 1024;
/// Outputs of one multi-column kernel call (a stack tile of rows × columns).
const TILE: usize = 1024;
/// How far ahead of the row being multiplied the one-column path prefetches weights.
const PREFETCH_BYTES: usize = 4096;
/// Columns per multi-column kernel call.
const TILE_COLS: usize = 32;
/// Chunks per thread a product is cut into.
const CHUNKS_PER_THREAD: usize = 2;
/// Fewest weight bytes in one chunk of a parallel region.
const CHUNK_MIN_BYTES: usize = 16 * 1024;
/// Which of the two prepared-column buffers the panel kernels of a weight paired with
/// `partner` use.
fn prepared_index(partner: GgmlType) -> usize {
    usize::from(partner == GgmlType::Q8_K)
}

/// Fewest columns for which a product goes through the panel kernels (packing a panel costs
/// about as much as multiplying it with a few columns).
pub(crate) const PANEL_MIN_COLS: usize = 8;
/// Columns per panel kernel call (a stack tile of `PANEL_TILE_COLS × PANEL_ROWS` outputs).
const PANEL_TILE_COLS: usize = 64;

/// How one product is computed, chosen once per call from the weight's format, the column count
/// and the tier's kernels.
#[derive(Clone, Copy)]
enum Path<'m> {
    /// `vec_dot` per row, or the multi-column kernels, on `from_float` columns.
    Dot,
    /// One column through the panel kernels' matrix-vector kernel on the prepared column (the
    /// same bits as `vec_dot`).
    Matvec(&'static PanelKernels, MatvecFn),
    /// [`PANEL_MIN_COLS`] columns or more through packed panels.
    Panel(&'static PanelKernels),
    /// A row-interleaved copy (`'m` is the model's), each column through the interleaved
    /// product on the panel kernels' prepared column: the panels' arithmetic.
    Interleaved(&'static PanelKernels, &'static InterleavedKernels, &'m [u8]),
    /// [`PANEL_MIN_COLS`] columns or more through panels packed from a row-interleaved copy.
    InterleavedPanel(&'static PanelKernels, &'static InterleavedKernels, &'m [u8]),
}

impl<'m> Path<'m> {
    fn of(model: &'m Model, w: &TensorRef, cols: usize, have_panel_scratch: bool) -> Path<'m> {
        let k = panel::panel_kernels(w.ty);
        if let (Some(k), Some(copy)) = (k, model.interleaved(w)) {
            // The model makes copies only where the tier has the product.
            if let Some(ik) = interleaved::kernels_for(eddy_quant::dispatch::active_tier(), w.ty) {
                return if cols >= PANEL_MIN_COLS && have_panel_scratch {
                    Path::InterleavedPanel(k, ik, copy)
                } else {
                    Path::Interleaved(k, ik, copy)
                };
            }
        }
        match k {
            Some(k) if cols >= PANEL_MIN_COLS && have_panel_scratch => Path::Panel(k),
            Some(k) if cols == 1 => k.matvec.map_or(Path::Dot, |f| Path::Matvec(k, f)),
            _ => Path::Dot,
        }
    }

    /// The panel kernels whose column preparation the path reads.
    fn kernels(&self) -> Option<&'static PanelKernels> {
        match *self {
            Path::Dot => None,
            Path::Matvec(k, _)
            | Path::Panel(k)
            | Path::Interleaved(k, ..)
            | Path::InterleavedPanel(k, ..) => Some(k),
        }
    }
}

/// Products that share their input: `out_k[c][r] = dot(row r of w_k, column c)` for every
/// weight `w_k`, row `r` and current activation column `c` (outputs are `[cols][rows]`).
///
/// One parallel region for all of them: the rows of every weight are cut into chunks that the
/// threads claim, and each block of rows is dotted with all columns while it is in L1, so the
/// weights are read from memory once per call however many columns there are. From
/// [`PANEL_MIN_COLS`] columns on, weights with panel kernels go through [`panel_rows`] instead,
/// and a single column through the panel kernels' `matvec` where the tier has one.
///
/// Each output's arithmetic depends only on its row, its column and whether the call has at
/// least [`PANEL_MIN_COLS`] columns, never on the thread count or on how rows are grouped, so
/// logits are bit-identical for any number of threads. Token-by-token decoding (one column)
/// and batches of up to `PANEL_MIN_COLS - 1` tokens give the same bits; larger batches of a
/// weight format with panel kernels sum the same integer block products in another f32 order
/// (see [`eddy_quant::panel`]), so they agree with them to rounding. Row-interleaved
/// copies compute the panels' order for every column count, so their products are the same
/// bits for any batch size.
pub(crate) fn matmul<const K: usize>(
    model: &Model,
    jobs: [(&TensorRef, &mut [f32]); K],
    act: &mut Activations<'_>,
    pool: &ThreadPool,
) {
    let cols = act.cols;
    let paths = jobs
        .each_ref()
        .map(|(w, _)| Path::of(model, w, cols, act.panel_words > 0));
    for ((w, _), path) in jobs.iter().zip(&paths) {
        let partner = traits(w.ty).vec_dot_type;
        match path.kernels() {
            Some(k) => act.prepare_panel(k, partner, pool),
            None => act.prepare(partner, pool),
        }
    }
    // The panel scratch leaves `act` for the region (workers write it through `panels`) and
    // comes back afterwards.
    let panel_buf = std::mem::take(&mut act.panels);
    let panels = SharedOut::new(panel_buf);
    let panel_words = act.panel_words;
    let act_ref = &*act;
    let mut paths = paths.into_iter();
    let work = jobs.map(|(w, out)| {
        debug_assert_eq!(act_ref.len, w.cols);
        debug_assert_eq!(out.len(), w.rows * cols);
        let t = traits(w.ty);
        let path = paths.next().unwrap_or(Path::Dot);
        let (y, ystride) = match path.kernels() {
            Some(k) => {
                let n = (k.column_bytes)(act_ref.len);
                let i = prepared_index(t.vec_dot_type);
                (&act_ref.prepared[i][..n * cols], n)
            }
            None => act_ref.converted(t.vec_dot_type),
        };
        // The weight's bytes, looked up once per call rather than per chunk (`Model::data`
        // searches the model's copies).
        (w, t, path, y, ystride, SharedOut::new(out), model.data(w))
    });
    let n = pool.n_threads();
    let bytes: usize = work.iter().map(|(w, ..)| w.rows * w.row_bytes()).sum();
    // Rows per chunk of each product: `CHUNKS_PER_THREAD` chunks per thread so that claiming
    // balances the threads (and a thread the OS took away delays only the chunk it holds), at
    // least `CHUNK_MIN_BYTES` of weights, whole panels on the panel path. Any grouping of rows
    // gives the same bits, so chunk sizes may depend on the thread count.
    let plan = work.each_ref().map(|(w, _, path, ..)| {
        let by_bytes = CHUNK_MIN_BYTES.div_ceil(w.row_bytes());
        let mut rows = w.rows.div_ceil(CHUNKS_PER_THREAD * n).max(by_bytes).max(1);
        if let Path::Panel(_) | Path::Interleaved(..) | Path::InterleavedPanel(..) = path {
            // Whole panels, or whole interleaved groups (of as many rows).
            rows = rows.next_multiple_of(PANEL_ROWS);
        }
        (rows, w.rows.div_ceil(rows))
    });
    let n_chunks: usize = plan.iter().map(|p| p.1).sum();
    let run = |worker: usize, chunk: usize| {
        let (mut j, mut c) = (0, chunk);
        while c >= plan[j].1 {
            c -= plan[j].1;
            j += 1;
        }
        let (w, t, path, y, ystride, out, data) = &work[j];
        let per = plan[j].0;
        let rows = c * per..((c + 1) * per).min(w.rows);
        match *path {
            Path::Matvec(_, f) => {
                let rb = w.row_bytes();
                #[allow(unsafe_code)]
                // SAFETY: only this chunk writes rows `rows` of the single output column
                // (chunks are disjoint); the output outlives the region.
                let part = unsafe { out.range(rows.clone()) };
                f(w.cols, &data[rows.start * rb..rows.end * rb], y, part);
            }
            Path::Panel(k) => {
                #[allow(unsafe_code)]
                // SAFETY: a worker runs one chunk at a time, and only worker `worker` uses words
                // `worker * panel_words..` of the panel scratch during this region.
                let scratch =
                    unsafe { panels.range(worker * panel_words..(worker + 1) * panel_words) };
                panel_rows(
                    w,
                    k,
                    Rows::Mapped(data),
                    y,
                    *ystride,
                    cols,
                    out,
                    rows,
                    scratch,
                );
            }
            Path::InterleavedPanel(k, ik, copy) => {
                #[allow(unsafe_code)]
                // SAFETY: as for `Path::Panel`.
                let scratch =
                    unsafe { panels.range(worker * panel_words..(worker + 1) * panel_words) };
                let rows_in = Rows::Interleaved(ik, copy);
                panel_rows(w, k, rows_in, y, *ystride, cols, out, rows, scratch);
            }
            Path::Interleaved(_, ik, copy) => {
                // The chunk starts at a whole group; its groups are `rows / 16` on.
                let group = w.cols / 32 * ik.group_block;
                let groups = rows.start / PANEL_ROWS * group..rows.end.div_ceil(PANEL_ROWS) * group;
                for c in 0..cols {
                    #[allow(unsafe_code)]
                    // SAFETY: only this chunk writes rows `rows` of each column (chunks are
                    // disjoint); the range lies inside the `cols * rows` output, which outlives
                    // the region.
                    let part = unsafe { out.range(c * w.rows + rows.start..c * w.rows + rows.end) };
                    let yc = &y[c * ystride..][..*ystride];
                    (ik.matvec)(w.cols, &copy[groups.clone()], yc, part);
                }
            }
            Path::Dot => dot_rows(w, t, data, y, *ystride, cols, out, rows),
        }
    };
    // Small products are not worth a region.
    if n == 1 || bytes < 64 * 1024 {
        (0..n_chunks).for_each(|c| run(0, c));
    } else {
        pool.run_chunks(n_chunks, &run);
    }
    act.panels = panel_buf;
}

/// Rows `rows` of `w` times every current column with `vec_dot` or the multi-column kernel.
/// The chunk's rows are written by this call only (chunks are disjoint).
#[allow(clippy::too_many_arguments)]
fn dot_rows(
    w: &TensorRef,
    t: &TypeTraits,
    data: &[u8],
    y: &[u8],
    ystride: usize,
    cols: usize,
    out: &SharedOut,
    rows: Range<usize>,
) {
    let rb = w.row_bytes();
    let block = (ROW_BLOCK_BYTES / rb).max(1);
    let multi = t.vec_dot_multi.filter(|_| cols > 1);
    let mut tile = [0f32; TILE];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + block).min(rows.end);
        if let Some(f) = multi {
            // Several columns per kernel call, each weight row unpacked once for all of them;
            // results land in a stack tile `[row][column]`, then in the outputs.
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
                        ystride,
                        &mut tile[..m * k],
                    );
                    for j in 0..k {
                        let c = c0 + j;
                        #[allow(unsafe_code)]
                        // SAFETY: as below: rows `ra..rb_` of column `c` belong to this chunk.
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
            // SAFETY: only this chunk writes rows `rows` of each column (chunks are disjoint
            // ranges of `0..rows`); `[c][r0..r1]` lies inside the `cols * rows` output, which
            // outlives the region.
            let part = unsafe { out.range(c * w.rows + r0..c * w.rows + r1) };
            for (k, o) in part.iter_mut().enumerate() {
                let r = r0 + k;
                if c == 0 {
                    // The row `PREFETCH_BYTES` ahead (see `eddy_quant::prefetch`): a decode step
                    // streams the weights, and the hardware prefetchers stop at page boundaries.
                    let ahead = r + PREFETCH_BYTES.div_ceil(rb);
                    if ahead < rows.end {
                        prefetch(&data[ahead * rb..(ahead + 1) * rb]);
                    }
                }
                *o = (t.vec_dot)(w.cols, &data[r * rb..(r + 1) * rb], yc);
            }
        }
        r0 = r1;
    }
}

// A panel packed from an interleaved copy is one of its groups.
const _: () = assert!(PANEL_ROWS == interleaved::GROUP_ROWS);

/// Where [`panel_rows`] packs its panels from.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// The weight's rows as the file has them.
    Mapped(&'a [u8]),
    /// The weight's row-interleaved copy (a group of 16 rows per panel) and the kernels
    /// that pack from it.
    Interleaved(&'static InterleavedKernels, &'a [u8]),
}

/// Rows `rows` of `w` (a chunk starting at a whole panel) times every current column through
/// the panel kernels `k`: each panel of [`PANEL_ROWS`] rows is packed into the worker's
/// `scratch` once and multiplied with all columns, [`PANEL_TILE_COLS`] at a time into a stack
/// tile `[column][row]`, then copied to the outputs.
#[allow(clippy::too_many_arguments)]
fn panel_rows(
    w: &TensorRef,
    k: &PanelKernels,
    src: Rows<'_>,
    y: &[u8],
    ystride: usize,
    cols: usize,
    out: &SharedOut,
    rows: Range<usize>,
    scratch: &mut [f32],
) {
    let rb = w.row_bytes();
    let panel_bytes = (k.panel_bytes)(w.cols);
    let panel = &mut bytemuck::cast_slice_mut::<f32, u8>(scratch)[..panel_bytes];
    let mut tile = [0f32; PANEL_TILE_COLS * PANEL_ROWS];
    for r0 in rows.clone().step_by(PANEL_ROWS) {
        let m = (rows.end - r0).min(PANEL_ROWS);
        // The next panel's bytes are prefetched while this one is multiplied: packing is where
        // the weights are first read, and it stalled on memory (see `eddy_quant::prefetch`).
        let next = (r0 + m)..(r0 + m + PANEL_ROWS).min(rows.end);
        match src {
            Rows::Mapped(data) => {
                (k.pack)(w.cols, &data[r0 * rb..(r0 + m) * rb], m, panel);
                prefetch(&data[next.start * rb..next.end * rb]);
            }
            Rows::Interleaved(ik, copy) => {
                let group = w.cols / 32 * ik.group_block;
                let g = r0 / PANEL_ROWS;
                (ik.pack)(w.cols, &copy[g * group..][..group], m, panel);
                if !next.is_empty() {
                    prefetch(&copy[(g + 1) * group..][..group]);
                }
            }
        }
        let mut c0 = 0;
        while c0 < cols {
            let kc = (cols - c0).min(PANEL_TILE_COLS);
            let tile = &mut tile[..kc * PANEL_ROWS];
            (k.run)(w.cols, panel, &y[c0 * ystride..], ystride, tile);
            for (j, t) in tile.chunks_exact(PANEL_ROWS).enumerate() {
                let c = c0 + j;
                #[allow(unsafe_code)]
                // SAFETY: rows `r0..r0 + m` belong to this chunk, which only this call handles
                // (chunks are disjoint); the range lies inside the `cols * rows` output, which
                // outlives the region.
                let dst = unsafe { out.range(c * w.rows + r0..c * w.rows + r0 + m) };
                // Whole panels (all but a weight's last) copy a fixed 64 bytes, inline.
                if m == PANEL_ROWS {
                    let d: Result<&mut [f32; PANEL_ROWS], _> = dst.try_into();
                    let src: Result<&[f32; PANEL_ROWS], _> = t.try_into();
                    if let (Ok(d), Ok(src)) = (d, src) {
                        *d = *src;
                    }
                } else {
                    dst.copy_from_slice(&t[..m]);
                }
            }
            c0 += kc;
        }
    }
}

/// Dequantizes row `row` of `w` into `out` (from the row-interleaved copy if the model holds
/// one: a tied embedding, block by block through a stack buffer).
pub fn embedding_row(model: &Model, w: &TensorRef, row: usize, out: &mut [f32]) {
    let rb = w.row_bytes();
    let t = traits(w.ty);
    if let Some(copy) = model.interleaved(w) {
        // One block at a time (the interleaved formats' blocks are at most 210 bytes: 32
        // weights, or a k-quant's super-block of 256).
        let wb = w.ty.block_size() as usize;
        let bb = rb / (w.cols / wb).max(1);
        let mut blk = [0u8; 256];
        for (b, o) in out.chunks_exact_mut(wb).enumerate() {
            interleaved::block_of(w.ty, w.cols, copy, row, b, &mut blk[..bb]);
            (t.to_float)(&blk[..bb], o);
        }
        return;
    }
    let data = &model.data(w)[row * rb..(row + 1) * rb];
    (t.to_float)(data, out);
}

/// Whether weights of this type can be used by [`matmul`] and [`embedding_row`].
pub fn supported(ty: GgmlType) -> bool {
    type_traits(ty).is_some_and(|t| PARTNERS.contains(&t.vec_dot_type))
}
