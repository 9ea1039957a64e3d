//! The table of per-type kernels and the checked, type-erased entry points built on it.
//!
//! Every supported format has one [`TypeTraits`] row, generated from its [`GgmlBlock`]
//! implementation, so the facts about a format (its partner, its kernels) live in one place and
//! there is no `match` on the type anywhere else. The rows here hold the portable scalar
//! kernels ([`type_traits_scalar`]); [`crate::dispatch`] builds copies whose `vec_dot` points at
//! the best SIMD kernel the CPU supports, and [`type_traits`] returns those.

use crate::GgmlType;
use crate::QuantError;
use crate::block::{GgmlBlock, as_blocks, as_blocks_mut};
use crate::float::{BlockBF16, BlockF16, BlockF32};
use crate::iquants::{BlockIQ4NL, BlockIQ4XS};
use crate::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};

/// Expands whole blocks (`bytes`) into `out`. Lengths must already be consistent.
pub type DequantizeFn = fn(bytes: &[u8], out: &mut [f32]);
/// Quantizes `x` into whole blocks (`out`). Lengths must already be consistent.
pub type QuantizeFn = fn(x: &[f32], out: &mut [u8]);
/// Dot product of `n` weights (`x`, this format) with `n` activations (`y`, the partner).
pub type VecDotFn = fn(n: usize, x: &[u8], y: &[u8]) -> f32;
/// Dot products of `rows` weight rows of `n` weights each (`x`, one row after the other) with
/// `k = out.len() / rows` activation columns (column `j` is
/// `ys[j * y_stride..][..row_bytes(partner, n)]`): `out[r * k + j]` receives exactly the value
/// [`TypeTraits::vec_dot`] of the same table would return for row `r` and column `j` (same
/// bits). Lengths must already be consistent.
pub type VecDotMultiFn =
    fn(n: usize, x: &[u8], rows: usize, ys: &[u8], y_stride: usize, out: &mut [f32]);

/// The kernels of one format. The function pointers take raw bytes and panic if the lengths
/// do not match (the checked functions of this module validate first, so they never do).
#[derive(Clone, Copy, Debug)]
pub struct TypeTraits {
    /// The format.
    pub ty: GgmlType,
    /// The format activations are converted to for [`vec_dot`](Self::vec_dot).
    pub vec_dot_type: GgmlType,
    /// Scalar dequantization.
    pub to_float: DequantizeFn,
    /// ggml's reference quantizer (what model files contain).
    pub quantize: QuantizeFn,
    /// The activation conversion of ggml's CPU backend (`from_float`).
    pub from_float: QuantizeFn,
    /// The dot product with `vec_dot_type` activations: scalar in [`type_traits_scalar`]'s rows,
    /// the best kernel of the CPU in [`type_traits`]'s.
    pub vec_dot: VecDotFn,
    /// A kernel that dots a few weight rows with several activation columns at once, reading
    /// each weight block once and giving bit for bit what [`vec_dot`](Self::vec_dot) gives per
    /// (row, column);
    /// `None` where the tier has none (then [`crate::matrix`] loops over `vec_dot`).
    pub vec_dot_multi: Option<VecDotMultiFn>,
}

pub(crate) fn blocks<B: GgmlBlock>(bytes: &[u8]) -> &[B] {
    match as_blocks::<B>(bytes) {
        Some(b) => b,
        None => panic!("{} data is not a whole number of blocks", B::TYPE),
    }
}

pub(crate) fn blocks_mut<B: GgmlBlock>(bytes: &mut [u8]) -> &mut [B] {
    match as_blocks_mut::<B>(bytes) {
        Some(b) => b,
        None => panic!("{} buffer is not a whole number of blocks", B::TYPE),
    }
}

fn to_float_bytes<B: GgmlBlock>(bytes: &[u8], out: &mut [f32]) {
    B::dequantize(blocks::<B>(bytes), out);
}

fn quantize_bytes<B: GgmlBlock>(x: &[f32], out: &mut [u8]) {
    B::quantize(x, blocks_mut::<B>(out));
}

fn from_float_bytes<B: GgmlBlock>(x: &[f32], out: &mut [u8]) {
    B::from_float(x, blocks_mut::<B>(out));
}

fn vec_dot_bytes<B: GgmlBlock>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    B::vec_dot(n, blocks::<B>(x), blocks::<B::VecDot>(y))
}

const fn row<B: GgmlBlock>() -> TypeTraits {
    TypeTraits {
        ty: B::TYPE,
        vec_dot_type: <B::VecDot as GgmlBlock>::TYPE,
        to_float: to_float_bytes::<B>,
        quantize: quantize_bytes::<B>,
        from_float: from_float_bytes::<B>,
        vec_dot: vec_dot_bytes::<B>,
        vec_dot_multi: None,
    }
}

/// Number of supported formats (rows of every table).
pub(crate) const NUM_TYPES: usize = 17;

/// One row per supported format, every kernel scalar. A `const` so that [`crate::dispatch`] can
/// build its SIMD tables from it at compile time.
pub(crate) const SCALAR_ROWS: [TypeTraits; NUM_TYPES] = [
    row::<BlockF32>(),
    row::<BlockF16>(),
    row::<BlockBF16>(),
    row::<BlockQ4_0>(),
    row::<BlockQ4_1>(),
    row::<BlockQ5_0>(),
    row::<BlockQ5_1>(),
    row::<BlockQ8_0>(),
    row::<BlockQ8_1>(),
    row::<BlockQ2K>(),
    row::<BlockQ3K>(),
    row::<BlockQ4K>(),
    row::<BlockQ5K>(),
    row::<BlockQ6K>(),
    row::<BlockQ8K>(),
    row::<BlockIQ4NL>(),
    row::<BlockIQ4XS>(),
];

static TABLE: [TypeTraits; NUM_TYPES] = SCALAR_ROWS;

/// Every format this crate computes, in table order.
pub fn supported_types() -> impl Iterator<Item = GgmlType> {
    TABLE.iter().map(|t| t.ty)
}

/// The kernels of `ty` with the dot product of the best instruction set this CPU supports
/// (chosen once, see [`crate::dispatch`]), or `None` if this crate cannot compute `ty`.
pub fn type_traits(ty: GgmlType) -> Option<&'static TypeTraits> {
    crate::dispatch::active_table().iter().find(|t| t.ty == ty)
}

/// The kernels of `ty` with every function scalar (the reference every SIMD kernel is tested
/// against), or `None` if this crate cannot compute `ty`.
pub fn type_traits_scalar(ty: GgmlType) -> Option<&'static TypeTraits> {
    TABLE.iter().find(|t| t.ty == ty)
}

pub(crate) fn traits_or_err(ty: GgmlType) -> Result<&'static TypeTraits, QuantError> {
    type_traits(ty).ok_or(QuantError::Unsupported { ty })
}

/// Bytes taken by `n` weights of `ty`, checking that they fill whole blocks.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    let bs = ty.block_size() as usize;
    if n % bs != 0 {
        return Err(QuantError::NotWholeBlocks { ty, n });
    }
    Ok(n / bs * ty.type_size() as usize)
}

pub(crate) fn check_len(
    ty: GgmlType,
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), QuantError> {
    if expected == actual {
        Ok(())
    } else {
        Err(QuantError::LengthMismatch {
            ty,
            what,
            expected,
            actual,
        })
    }
}

/// Dequantizes `bytes` (whole blocks of `ty`) into `out`, whose length is the number of
/// weights. Errors if `ty` is unsupported, `out.len()` is not a whole number of blocks, or
/// `bytes` does not hold exactly those blocks; `out` is untouched then.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let t = traits_or_err(ty)?;
    let need = row_bytes(ty, out.len())?;
    check_len(ty, "input", need, bytes.len())?;
    (t.to_float)(bytes, out);
    Ok(())
}

/// Quantizes `x` with ggml's reference quantizer of `ty` into `out`, which must hold exactly
/// the bytes of `x.len()` weights. Errors as [`dequantize`] does; `out` is untouched then.
pub fn quantize(ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let t = traits_or_err(ty)?;
    let need = row_bytes(ty, x.len())?;
    check_len(ty, "output", need, out.len())?;
    (t.quantize)(x, out);
    Ok(())
}

/// Quantizes as [`quantize`] does, but with the roundings of ggml's reference quantizers as
/// GCC compiles them for a CPU with FMA (its default `-ffp-contract=fast`): a product whose
/// only uses are additions is fused into one multiply-add, except in the loops GCC vectorizes
/// into in-order sums (each quantizer marks which). llama.cpp's x86-64 AVX2/AVX-512 builds with
/// GCC quantize this way; a build without FMA or with MSVC gives [`quantize`]'s bytes. The two
/// differ where a rounding lands on the other side of a tie: a few blocks per tensor, a
/// different file, the same quality.
///
/// Fused forms exist for Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and
/// IQ4_XS; Q8_0, F16, BF16 and F32 fuse nothing that changes a result. Checked byte for byte
/// against `tools/llama-bench`'s llama.cpp: every fused type on generated rows
/// (`tests/golden_vectors.rs`, hashes from `scripts/ggml-fused-hashes.c`), and whole files on
/// two models for Q4_0, Q8_0, Q4_K, Q5_K, Q6_K and IQ4_NL, on SmolLM2 for Q3_K
/// (`runtime/tests/quantize_models.rs`). Dispatched at run time
/// ([`crate::dispatch::quantize_fused_for`] with the active tier): on x86-64 with FMA the
/// quantizers are compiled for it, otherwise each fused multiply-add is a call to `fmaf`; the
/// bytes are the same. Errors as [`quantize`].
pub fn quantize_fused(ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    crate::dispatch::quantize_fused_for(crate::dispatch::active_tier(), ty, x, out)
}

/// The fused quantizer of `ty`, if it has one: quantizes `x` into `out` (lengths checked by the
/// caller) and returns `true`; `false` if `ty` has no fused form. Inlined into each build of
/// the fused quantizers (`dispatch::quantize_fused_for`): the portable one and, on x86-64, one
/// compiled for FMA.
#[inline(always)]
pub(crate) fn quantize_fused_rows(ty: GgmlType, x: &[f32], out: &mut [u8]) -> bool {
    use crate::{iquants, kquants, legacy};
    match ty {
        GgmlType::Q4_0 => legacy::quantize_row_q4_0_with::<true>(x, blocks_mut(out)),
        GgmlType::Q4_1 => legacy::quantize_row_q4_1_with::<true>(x, blocks_mut(out)),
        GgmlType::Q5_0 => legacy::quantize_row_q5_0_with::<true>(x, blocks_mut(out)),
        GgmlType::Q5_1 => legacy::quantize_row_q5_1_with::<true>(x, blocks_mut(out)),
        GgmlType::Q2_K => kquants::quantize_row_q2_k_with::<true>(x, blocks_mut(out)),
        GgmlType::Q3_K => kquants::quantize_row_q3_k_with::<true>(x, blocks_mut(out)),
        GgmlType::Q4_K => kquants::quantize_row_q4_k_with::<true>(x, blocks_mut(out)),
        GgmlType::Q5_K => kquants::quantize_row_q5_k_with::<true>(x, blocks_mut(out)),
        GgmlType::Q6_K => kquants::quantize_row_q6_k_with::<true>(x, blocks_mut(out)),
        GgmlType::IQ4_NL => iquants::quantize_row_iq4_nl_with::<true>(x, blocks_mut(out)),
        GgmlType::IQ4_XS => iquants::quantize_row_iq4_xs_with::<true>(x, blocks_mut(out)),
        _ => return false,
    }
    true
}

/// Converts activations `x` to `ty` the way ggml's CPU backend does before a dot product
/// (`from_float`; differs from [`quantize`] only for Q8_0 and Q8_1). Errors as [`quantize`].
pub fn from_float(ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let t = traits_or_err(ty)?;
    let need = row_bytes(ty, x.len())?;
    check_len(ty, "output", need, out.len())?;
    (t.from_float)(x, out);
    Ok(())
}

/// The dot product (dispatched, see [`type_traits`]) of `n` weights of type `ty` (`x`) with `n` activations already in
/// `ty`'s partner format (`y`, see [`TypeTraits::vec_dot_type`]). Both buffers must hold exactly
/// `n` values.
pub fn vec_dot(ty: GgmlType, n: usize, x: &[u8], y: &[u8]) -> Result<f32, QuantError> {
    let t = traits_or_err(ty)?;
    check_len(ty, "x", row_bytes(ty, n)?, x.len())?;
    let yt = t.vec_dot_type;
    check_len(yt, "y", row_bytes(yt, n)?, y.len())?;
    Ok((t.vec_dot)(n, x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    fn size_of_block(ty: GgmlType) -> usize {
        match ty {
            GgmlType::F32 => size_of::<BlockF32>(),
            GgmlType::F16 => size_of::<BlockF16>(),
            GgmlType::BF16 => size_of::<BlockBF16>(),
            GgmlType::Q4_0 => size_of::<BlockQ4_0>(),
            GgmlType::Q4_1 => size_of::<BlockQ4_1>(),
            GgmlType::Q5_0 => size_of::<BlockQ5_0>(),
            GgmlType::Q5_1 => size_of::<BlockQ5_1>(),
            GgmlType::Q8_0 => size_of::<BlockQ8_0>(),
            GgmlType::Q8_1 => size_of::<BlockQ8_1>(),
            GgmlType::Q2_K => size_of::<BlockQ2K>(),
            GgmlType::Q3_K => size_of::<BlockQ3K>(),
            GgmlType::Q4_K => size_of::<BlockQ4K>(),
            GgmlType::Q5_K => size_of::<BlockQ5K>(),
            GgmlType::Q6_K => size_of::<BlockQ6K>(),
            GgmlType::Q8_K => size_of::<BlockQ8K>(),
            GgmlType::IQ4_NL => size_of::<BlockIQ4NL>(),
            GgmlType::IQ4_XS => size_of::<BlockIQ4XS>(),
            _ => 0,
        }
    }

    /// The block structs agree with the `GgmlType` table (the single source of sizes).
    #[test]
    fn block_structs_match_the_type_table() {
        assert_eq!(supported_types().count(), 17);
        for ty in supported_types() {
            assert_eq!(size_of_block(ty), ty.type_size() as usize, "{ty}");
        }
    }

    #[test]
    fn partners_are_the_ggml_ones() {
        use GgmlType::*;
        let expect = [
            (F32, F32),
            (F16, F16),
            (BF16, BF16),
            (Q4_0, Q8_0),
            (Q4_1, Q8_1),
            (Q5_0, Q8_0),
            (Q5_1, Q8_1),
            (Q8_0, Q8_0),
            (Q2_K, Q8_K),
            (Q3_K, Q8_K),
            (Q4_K, Q8_K),
            (Q5_K, Q8_K),
            (Q6_K, Q8_K),
            (IQ4_NL, Q8_0),
            (IQ4_XS, Q8_K),
        ];
        for (w, a) in expect {
            assert_eq!(type_traits(w).map(|t| t.vec_dot_type), Some(a), "{w}");
        }
    }
}
