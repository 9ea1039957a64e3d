//! The block trait that ties a format to its activation partner, and the one place where raw
//! bytes are viewed as blocks.
//!
//! Every block struct is `#[repr(C)]` and made only of `u8`/`i8` arrays, so it has alignment 1,
//! no padding and no invalid bit patterns; that is what makes the zero-copy view sound. The
//! trait is sealed: only the formats of this crate, each declared through [`ggml_block_layout!`] with
//! its compile-time layout checks, implement it.
#![allow(unsafe_code)]

use core::mem::{align_of, size_of};

use crate::GgmlType;

pub(crate) mod sealed {
    /// Implemented only through [`ggml_block_layout!`](crate::block::ggml_block_layout), which checks the layout.
    pub trait Sealed {}
}

/// A GGML block format: its layout, its activation partner and its scalar reference kernels.
///
/// `VecDot` is the format that activations are converted to before a dot product with weights
/// of this format (ggml's `vec_dot_type`), so a mismatched pairing does not type-check.
pub trait GgmlBlock: sealed::Sealed + Copy + core::fmt::Debug + PartialEq + 'static {
    /// The GGML type id of this format.
    const TYPE: GgmlType;
    /// Weights per block.
    const WEIGHTS: usize;
    /// A block of all-zero bytes.
    const ZERO: Self;
    /// The activation format a dot product with this format expects.
    type VecDot: GgmlBlock;

    /// Expands `blocks` into `out`.
    ///
    /// # Panics
    /// If `out.len() != blocks.len() * Self::WEIGHTS`.
    fn dequantize(blocks: &[Self], out: &mut [f32]);

    /// ggml's reference quantizer (`quantize_row_*_ref`, or `quantize_*` without importance
    /// matrix where ggml's file writer uses that instead). This is what writes model files.
    ///
    /// # Panics
    /// If `x.len() != out.len() * Self::WEIGHTS`.
    fn quantize(x: &[f32], out: &mut [Self]);

    /// The conversion ggml's CPU backend applies to activations (`from_float`). It equals
    /// [`quantize`](Self::quantize) except where ggml's CPU path rounds differently (Q8_0, Q8_1).
    ///
    /// # Panics
    /// If `x.len() != out.len() * Self::WEIGHTS`.
    fn from_float(x: &[f32], out: &mut [Self]) {
        Self::quantize(x, out);
    }

    /// The scalar reference dot product of the first `n` weights of `x` with the first `n`
    /// values of `y`, accumulated the way ggml's generic C code does.
    ///
    /// # Panics
    /// If `n` is not a multiple of `Self::WEIGHTS` or either slice holds fewer than `n` values.
    fn vec_dot(n: usize, x: &[Self], y: &[Self::VecDot]) -> f32;
}

/// Declares the layout facts of a block struct and checks them at compile time: size equal to
/// the bytes per block in ggml's layout, alignment 1.
macro_rules! ggml_block_layout {
    ($block:ty, $bytes:expr) => {
        const _: () = assert!(core::mem::size_of::<$block>() == $bytes);
        const _: () = assert!(core::mem::align_of::<$block>() == 1);
        impl $crate::block::sealed::Sealed for $block {}
    };
}
pub(crate) use ggml_block_layout;

/// Views `bytes` as blocks without copying. `None` if the length is not a whole number of
/// blocks.
pub fn as_blocks<B: GgmlBlock>(bytes: &[u8]) -> Option<&[B]> {
    const { assert!(align_of::<B>() == 1 && size_of::<B>() > 0) };
    let size = size_of::<B>();
    if bytes.len() % size != 0 {
        return None;
    }
    // SAFETY: `B` is sealed, so it is one of this crate's block structs, each a `#[repr(C)]`
    // struct of `u8`/`i8` arrays (checked by `ggml_block_layout!`): alignment 1 (asserted above),
    // no padding, every bit pattern valid. `bytes.len() / size` blocks cover exactly `bytes`,
    // and the returned slice borrows `bytes` immutably for its whole lifetime.
    Some(unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) })
}

/// Views `bytes` as mutable blocks without copying. `None` if the length is not a whole number
/// of blocks.
pub fn as_blocks_mut<B: GgmlBlock>(bytes: &mut [u8]) -> Option<&mut [B]> {
    const { assert!(align_of::<B>() == 1 && size_of::<B>() > 0) };
    let size = size_of::<B>();
    if bytes.len() % size != 0 {
        return None;
    }
    // SAFETY: as in `as_blocks`; additionally any bytes written through the blocks are plain
    // `u8`/`i8` values, so `bytes` stays valid, and the exclusive borrow is carried over.
    Some(unsafe {
        core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / size)
    })
}

/// Views blocks as their bytes without copying.
pub fn block_bytes<B: GgmlBlock>(blocks: &[B]) -> &[u8] {
    const { assert!(align_of::<B>() == 1 && size_of::<B>() > 0) };
    // SAFETY: block structs have no padding (sizes asserted equal to the sum of their byte
    // arrays), so every byte is initialised; `u8` has alignment 1; the length is exact.
    unsafe {
        core::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), core::mem::size_of_val(blocks))
    }
}

/// Checks that `n` weights fill whole blocks of `B` and that `x` and `y` hold at least that many.
/// Shared by the scalar dot products.
#[inline]
pub(crate) fn check_dot<B: GgmlBlock>(n: usize, x: &[B], y: &[B::VecDot]) -> usize {
    assert!(
        n % B::WEIGHTS == 0,
        "{n} is not a multiple of {}",
        B::WEIGHTS
    );
    let nb = n / B::WEIGHTS;
    assert!(x.len() >= nb, "x holds {} blocks, need {nb}", x.len());
    let ny = n / <B::VecDot as GgmlBlock>::WEIGHTS;
    assert!(y.len() >= ny, "y holds {} blocks, need {ny}", y.len());
    nb
}

/// Checks the lengths of a dequantization.
#[inline]
pub(crate) fn check_dequantize<B: GgmlBlock>(blocks: &[B], out: &[f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * B::WEIGHTS,
        "{} output length",
        B::TYPE
    );
}

/// Checks the lengths of a quantization.
#[inline]
pub(crate) fn check_quantize<B: GgmlBlock>(x: &[f32], out: &[B]) {
    assert_eq!(x.len(), out.len() * B::WEIGHTS, "{} input length", B::TYPE);
}
