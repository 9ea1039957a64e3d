//! Matrix drivers: a quantized weight matrix times one activation vector ([`matvec`]) or times
//! `n` activation vectors at once ([`matmat`], for batched prefill).
//!
//! The activations are converted once to the weight's partner format (`from_float` of
//! [`TypeTraits::vec_dot_type`]), then every weight row is dotted with them. Results are
//! defined per (row, column): entry `(j, r)` of a product is, bit for bit, what
//! [`TypeTraits::vec_dot`] returns for weight row `r` and activation column `j`, whichever
//! driver computed it, however the rows were split over threads and however many columns were
//! multiplied together. That is what lets a runtime check batched prefill against token-by-token
//! decoding bit for bit. Where the table has a multi-column kernel
//! ([`TypeTraits::vec_dot_multi`]), [`matmat`] reads each weight row once for all columns;
//! otherwise it loops `vec_dot` over the columns.
//!
//! Layouts: the weights are `rows` rows of `cols` weights, each row [`row_bytes`]`(ty, cols)`
//! bytes, rows one after the other. Activations `X` are `n` columns of `cols` f32 values, column
//! after column (`X[j * cols + k]`, the layout of `n` token vectors), quantized activations the
//! same with each column [`WeightMatrix::activation_row_bytes`] bytes long. Outputs `Y` are `n`
//! vectors of `rows` values (`Y[j * rows + r]`).
//!
//! Nothing here allocates: the caller hands in the scratch for the quantized activations
//! ([`WeightMatrix::scratch_bytes`] says how much), so a runtime can size it once. Every length
//! is checked first and reported as a [`QuantError`]; on error nothing has been written.

use core::ops::Range;

use crate::traits::{TypeTraits, check_len, row_bytes, type_traits};
use crate::{GgmlType, QuantError};

/// Columns handed to one call of a multi-column kernel (outputs gathered on the stack).
const COLUMN_CHUNK: usize = 64;
/// Weight rows handed to one call of a multi-column kernel.
const ROW_CHUNK: usize = 4;

/// A quantized weight matrix viewed in place, checked once, with the kernels that multiply it.
///
/// Building one costs a few multiplications and no allocation, so it can be made per call.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    traits: &'static TypeTraits,
    /// The row of the activation format, whose `from_float` converts the activations.
    act_traits: &'static TypeTraits,
    data: &'a [u8],
    rows: usize,
    cols: usize,
    /// Bytes of one weight row.
    row_bytes: usize,
    /// Bytes of one activation column in the partner format.
    act_bytes: usize,
}

fn mul(ty: GgmlType, what: &'static str, a: usize, b: usize) -> Result<usize, QuantError> {
    a.checked_mul(b).ok_or(QuantError::LengthMismatch {
        ty,
        what,
        expected: usize::MAX,
        actual: 0,
    })
}

impl<'a> WeightMatrix<'a> {
    /// `data` as `rows × cols` weights of `ty`, multiplied with the kernels of the best tier this
    /// CPU supports ([`crate::type_traits`]).
    ///
    /// Errors: `ty` unsupported, `cols` not a whole number of blocks, or `data` not exactly
    /// `rows` rows.
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<Self, QuantError> {
        let traits = type_traits(ty).ok_or(QuantError::Unsupported { ty })?;
        Self::with_traits(traits, data, rows, cols)
    }

    /// As [`WeightMatrix::new`] with the dot products of a given table row, e.g. a tier forced
    /// through [`crate::dispatch::type_traits_for`] (benchmarks and tests). The activations are
    /// converted by the `from_float` of the partner's row in [`crate::type_traits`].
    pub fn with_traits(
        traits: &'static TypeTraits,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        let ty = traits.ty;
        let rb = row_bytes(ty, cols)?;
        let at = traits.vec_dot_type;
        let act_traits = type_traits(at).ok_or(QuantError::Unsupported { ty: at })?;
        let act_bytes = row_bytes(at, cols)?;
        check_len(ty, "w", mul(ty, "w", rows, rb)?, data.len())?;
        Ok(WeightMatrix {
            traits,
            act_traits,
            data,
            rows,
            cols,
            row_bytes: rb,
            act_bytes,
        })
    }

    /// The weight format.
    pub fn ty(&self) -> GgmlType {
        self.traits.ty
    }

    /// The activation format ([`TypeTraits::vec_dot_type`]).
    pub fn activation_type(&self) -> GgmlType {
        self.traits.vec_dot_type
    }

    /// Rows (outputs per activation column).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (weights per row, values per activation column).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one quantized activation column.
    pub fn activation_row_bytes(&self) -> usize {
        self.act_bytes
    }

    /// Scratch bytes [`WeightMatrix::matmat`] needs for `n` columns (the quantized
    /// activations); `n = 1` for [`WeightMatrix::matvec`]. Errors only if that overflows.
    pub fn scratch_bytes(&self, n: usize) -> Result<usize, QuantError> {
        mul(self.activation_type(), "scratch", n, self.act_bytes)
    }

    /// Converts `n` activation columns `x` (`n × cols` f32) to the partner format into `xq`,
    /// which must be exactly [`WeightMatrix::scratch_bytes`]`(n)` long.
    pub fn quantize_activations(
        &self,
        n: usize,
        x: &[f32],
        xq: &mut [u8],
    ) -> Result<(), QuantError> {
        let at = self.activation_type();
        check_len(at, "x", mul(at, "x", n, self.cols)?, x.len())?;
        check_len(at, "xq", self.scratch_bytes(n)?, xq.len())?;
        if self.cols == 0 {
            return Ok(());
        }
        for (col, out) in x
            .chunks_exact(self.cols)
            .zip(xq.chunks_exact_mut(self.act_bytes))
        {
            (self.act_traits.from_float)(col, out);
        }
        Ok(())
    }

    /// `y = W·x` for one activation vector: `x` quantized once into the front of `scratch`
    /// (at least [`WeightMatrix::scratch_bytes`]`(1)` bytes), then every row dotted with it.
    /// `x.len()` must be `cols`, `y.len()` `rows`.
    pub fn matvec(&self, x: &[f32], scratch: &mut [u8], y: &mut [f32]) -> Result<(), QuantError> {
        self.matmat(1, x, scratch, y)
    }

    /// Rows `rows` of `W·x` with `x` already quantized (`xq`, exactly
    /// [`WeightMatrix::scratch_bytes`]`(1)` bytes, e.g. from
    /// [`WeightMatrix::quantize_activations`]): `y[i]` is the dot of row `rows.start + i`, and
    /// `y.len()` must be `rows.len()`. Each row is computed exactly as [`WeightMatrix::matvec`]
    /// computes it, so threads may split the rows any way they like.
    pub fn matvec_rows(
        &self,
        xq: &[u8],
        rows: Range<usize>,
        y: &mut [f32],
    ) -> Result<(), QuantError> {
        self.check_rows(&rows)?;
        check_len(self.ty(), "y", rows.len(), y.len())?;
        self.matmat_rows(1, xq, rows, y, 0)
    }

    /// `Y = W·X` for `n` activation columns: `X` (`n × cols` f32) quantized once into the front
    /// of `scratch` (at least [`WeightMatrix::scratch_bytes`]`(n)` bytes), then each weight row
    /// dotted with all columns while it is in cache. `y` is `n × rows` (`y[j * rows + r]`).
    /// Entry `(j, r)` is bit for bit what [`WeightMatrix::matvec`] gives for column `j`.
    pub fn matmat(
        &self,
        n: usize,
        x: &[f32],
        scratch: &mut [u8],
        y: &mut [f32],
    ) -> Result<(), QuantError> {
        let need = self.scratch_bytes(n)?;
        if scratch.len() < need {
            return Err(QuantError::LengthMismatch {
                ty: self.activation_type(),
                what: "scratch",
                expected: need,
                actual: scratch.len(),
            });
        }
        check_len(self.ty(), "y", mul(self.ty(), "y", n, self.rows)?, y.len())?;
        let xq = &mut scratch[..need];
        self.quantize_activations(n, x, xq)?;
        self.matmat_rows(n, xq, 0..self.rows, y, self.rows)
    }

    /// Rows `rows` of `W·X` for `n` columns already quantized (`xq`, exactly
    /// [`WeightMatrix::scratch_bytes`]`(n)` bytes): the result for column `j` and row
    /// `rows.start + i` goes to `y[j * y_stride + i]`. `y_stride` must be at least `rows.len()`
    /// when `n > 1`, and `y` at least `(n − 1)·y_stride + rows.len()` long (`y_stride =
    /// rows.len()` for a dense tile; `rows = 0..self.rows()`, `y_stride = self.rows()` for the
    /// whole product). Each entry is computed exactly as [`WeightMatrix::matvec`] computes it.
    pub fn matmat_rows(
        &self,
        n: usize,
        xq: &[u8],
        rows: Range<usize>,
        y: &mut [f32],
        y_stride: usize,
    ) -> Result<(), QuantError> {
        let at = self.activation_type();
        check_len(at, "xq", self.scratch_bytes(n)?, xq.len())?;
        self.check_rows(&rows)?;
        let len = rows.len();
        if n == 0 || len == 0 {
            return Ok(());
        }
        if n > 1 && y_stride < len {
            return Err(QuantError::LengthMismatch {
                ty: self.ty(),
                what: "y",
                expected: len,
                actual: y_stride,
            });
        }
        let need = mul(self.ty(), "y", n - 1, y_stride)?
            .checked_add(len)
            .ok_or(QuantError::LengthMismatch {
                ty: self.ty(),
                what: "y",
                expected: usize::MAX,
                actual: y.len(),
            })?;
        if y.len() < need {
            return Err(QuantError::LengthMismatch {
                ty: self.ty(),
                what: "y",
                expected: need,
                actual: y.len(),
            });
        }
        self.run(n, xq, rows, y, y_stride);
        Ok(())
    }

    fn check_rows(&self, rows: &Range<usize>) -> Result<(), QuantError> {
        if rows.start > rows.end || rows.end > self.rows {
            return Err(QuantError::RowRange {
                start: rows.start,
                end: rows.end,
                rows: self.rows,
            });
        }
        Ok(())
    }

    /// The product once every length is known to be consistent.
    fn run(&self, n: usize, xq: &[u8], rows: Range<usize>, y: &mut [f32], y_stride: usize) {
        let (cols, ab, rb, t) = (self.cols, self.act_bytes, self.row_bytes, self.traits);
        let weights = &self.data[rows.start * rb..rows.end * rb];
        let len = rows.len();
        match t.vec_dot_multi {
            Some(multi) if n > 1 => {
                // Tiles of up to ROW_CHUNK rows × COLUMN_CHUNK columns, results gathered on the
                // stack and then scattered to their strided places in `y`.
                let mut out = [0f32; ROW_CHUNK * COLUMN_CHUNK];
                let mut r0 = 0;
                while r0 < len {
                    let nr = (len - r0).min(ROW_CHUNK);
                    let w = &weights[r0 * rb..(r0 + nr) * rb];
                    let mut j0 = 0;
                    while j0 < n {
                        let nc = (n - j0).min(COLUMN_CHUNK);
                        let tile = &mut out[..nr * nc];
                        multi(cols, w, nr, &xq[j0 * ab..(j0 + nc) * ab], ab, tile);
                        for (r, row) in tile.chunks_exact(nc).enumerate() {
                            for (k, v) in row.iter().enumerate() {
                                y[(j0 + k) * y_stride + r0 + r] = *v;
                            }
                        }
                        j0 += nc;
                    }
                    r0 += nr;
                }
            }
            _ => {
                for i in 0..len {
                    let w = &weights[i * rb..(i + 1) * rb];
                    for j in 0..n {
                        y[j * y_stride + i] = (t.vec_dot)(cols, w, &xq[j * ab..(j + 1) * ab]);
                    }
                }
            }
        }
    }
}

/// `y = W·x` with `W` the `rows × cols` matrix of `ty` in `w`, on the best tier of this CPU.
/// `scratch` holds the quantized `x`: at least [`WeightMatrix::scratch_bytes`]`(1)` bytes.
/// See [`WeightMatrix::matvec`].
pub fn matvec(
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    scratch: &mut [u8],
    y: &mut [f32],
) -> Result<(), QuantError> {
    WeightMatrix::new(ty, w, rows, cols)?.matvec(x, scratch, y)
}

/// `Y = W·X` for `n` activation columns (`x`: `n × cols`, `y`: `n × rows`), on the best tier of
/// this CPU. `scratch`: at least [`matmat_scratch_bytes`]`(ty, cols, n)` bytes. See
/// [`WeightMatrix::matmat`].
#[allow(clippy::too_many_arguments)]
pub fn matmat(
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    n: usize,
    x: &[f32],
    scratch: &mut [u8],
    y: &mut [f32],
) -> Result<(), QuantError> {
    WeightMatrix::new(ty, w, rows, cols)?.matmat(n, x, scratch, y)
}

/// Scratch bytes [`matmat`] needs for `n` columns of `cols` values against weights of `ty`
/// (`n = 1` for [`matvec`]). Errors if `ty` is unsupported, `cols` is not a whole number of
/// blocks, or the size overflows.
pub fn matmat_scratch_bytes(ty: GgmlType, cols: usize, n: usize) -> Result<usize, QuantError> {
    let t = type_traits(ty).ok_or(QuantError::Unsupported { ty })?;
    let ab = row_bytes(t.vec_dot_type, cols)?;
    mul(t.vec_dot_type, "scratch", n, ab)
}
