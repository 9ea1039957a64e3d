//! The crate's error type.

use core::fmt;

use crate::GgmlType;

/// Why a quantization entry point refused its arguments. Nothing is written to the output when
/// an error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantError {
    /// This crate has no scalar kernels for the type (yet).
    Unsupported {
        /// The type asked for.
        ty: GgmlType,
    },
    /// The number of weights is not a whole number of blocks.
    NotWholeBlocks {
        /// The type asked for.
        ty: GgmlType,
        /// The number of weights given.
        n: usize,
    },
    /// A buffer has the wrong length for the number of weights.
    LengthMismatch {
        /// The type of the data in that buffer.
        ty: GgmlType,
        /// Which buffer: `"input"`, `"output"`, `"x"` or `"y"`; for the matrix drivers also
        /// `"w"`, `"xq"` and `"scratch"` (whose `expected` is the minimum length). `expected`
        /// is `usize::MAX` when the required length overflows `usize`.
        what: &'static str,
        /// The length required, in bytes or elements as the buffer holds.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A range of matrix rows does not lie inside the matrix.
    RowRange {
        /// First row asked for.
        start: usize,
        /// One past the last row asked for.
        end: usize,
        /// Rows of the matrix.
        rows: usize,
    },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QuantError::Unsupported { ty } => write!(f, "type {ty} is not supported by eddy-quant"),
            QuantError::NotWholeBlocks { ty, n } => write!(
                f,
                "{n} weights are not a whole number of {ty} blocks of {}",
                ty.block_size()
            ),
            QuantError::LengthMismatch {
                ty,
                what,
                expected,
                actual,
            } => write!(
                f,
                "{ty} {what} buffer has length {actual}, expected {expected}"
            ),
            QuantError::RowRange { start, end, rows } => write!(
                f,
                "row range {start}..{end} does not lie inside a matrix of {rows} rows"
            ),
        }
    }
}

impl core::error::Error for QuantError {}
