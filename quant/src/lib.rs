//! `eddy-quant`: the numeric core of Eddy.
//!
//! This crate knows the GGML tensor types: which ids exist, how many weights a block holds
//! and how many bytes it takes ([`GgmlType`]). For the formats Eddy computes it declares each
//! block layout as a `#[repr(C)]` struct (viewable in place over file bytes, see
//! [`as_blocks`]) and gives the scalar reference kernels that are the spec every faster kernel
//! is tested against: dequantization, ggml's reference quantizers (byte-exact with ggml) and
//! the dot products against the activation partner format, computed with ggml's integer
//! arithmetic so that results are comparable with llama.cpp.
//!
//! Formats, one module per family: [`float`] (F32, F16, BF16), [`legacy`] (Q4_0 … Q8_1),
//! [`kquants`] (Q2_K … Q8_K), [`iquants`] (IQ4_NL, IQ4_XS). SIMD dot products live in one private
//! module per instruction set (`x86_avx2`: every format; `x86_avx512`: Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K, Q6_K, Q8_K, BF16, the rest through AVX2) and are chosen once at
//! run time by [`dispatch`]. [`f32ops`] has the vectorised f32 helpers of the forward pass (dot,
//! axpy, softmax, SiLU, f16 conversion …), dispatched the same way. The per-type table
//! ([`type_traits`], dispatched; [`type_traits_scalar`], the reference) and the checked entry
//! points ([`dequantize`], [`quantize`], [`from_float`], [`vec_dot`]) work on raw bytes and return
//! a [`QuantError`] instead of panicking on wrong lengths or unsupported types. On top of them,
//! [`matrix`] multiplies a weight matrix by one activation vector ([`matvec`]) or by several at
//! once ([`matmat`], with multi-column kernels in the private `x86_matmat` module),
//! bit-identical per column. [`panel`] is the GEMM-style path of batched prefill: weight rows
//! repacked into small panels in the caller's scratch and multiplied with many columns at once
//! (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, in the AVX-512 VNNI, AVX2 and AArch64 i8mm,
//! dotprod and NEON tiers, see [`panel`] for which tier has which), its own f32 order checked
//! bit for bit against a scalar reference.
//!
//! On AArch64 the SIMD modules are `aarch64_neon` and `aarch64_dotprod`, with a `vec_dot` for
//! every format, `aarch64_panel` with the panel kernels of the NEON and dotprod tiers,
//! `aarch64_i8mm` with the `smmla` panel kernels of the i8mm tier (which otherwise uses
//! dotprod's), and `aarch64_f32ops` with the fused f16 attention kernels of [`f32ops`] (shared
//! by all three).
//!
//! It knows nothing about models, files or tokenizers; `eddy` (the runtime) does. It builds
//! without `std` (`default-features = false`).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]
// `is_multiple_of` is stable from Rust 1.87 (the workspace's floor is 1.89, see Cargo.toml),
// but the `%` form reads the same on every toolchain.
#![allow(clippy::manual_is_multiple_of)]

#[cfg(target_arch = "aarch64")]
mod aarch64_dotprod;
#[cfg(target_arch = "aarch64")]
mod aarch64_f32ops;
#[cfg(target_arch = "aarch64")]
mod aarch64_i8mm;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon;
#[cfg(target_arch = "aarch64")]
mod aarch64_panel;
mod block;
pub mod dispatch;
mod error;
pub mod f32ops;
pub mod float;
pub mod interleaved;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod matrix;
mod num;
pub mod panel;
pub mod prefetch;
mod traits;
mod types;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_matmat;
#[cfg(target_arch = "x86_64")]
mod x86_panel;

pub use block::{GgmlBlock, as_blocks, as_blocks_mut, block_bytes};
pub use error::QuantError;
pub use kquants::QK_K;
pub use matrix::{WeightMatrix, matmat, matmat_scratch_bytes, matvec};
pub use traits::{
    DequantizeFn, QuantizeFn, TypeTraits, VecDotFn, VecDotMultiFn, dequantize, from_float,
    quantize, quantize_fused, row_bytes, supported_types, type_traits, type_traits_scalar, vec_dot,
};
pub use types::{GgmlType, TypeLookup};

#[cfg(test)]
mod build_checks {
    /// The test profile builds this crate without debug assertions and overflow checks (for the
    /// speed of the model tests, see the workspace `Cargo.toml`); CI's runs of these tests turn
    /// them back on with RUSTFLAGS and set `EDDY_REQUIRE_CHECKS=1`, so a run that lost them fails.
    #[test]
    fn checked_runs_have_their_checks() {
        if std::env::var_os("EDDY_REQUIRE_CHECKS").is_none() {
            return;
        }
        if !cfg!(debug_assertions) {
            panic!("debug assertions are off");
        }
        let x = core::hint::black_box(u8::MAX);
        let add = std::panic::catch_unwind(|| x + core::hint::black_box(1));
        assert!(add.is_err(), "overflow checks are off");
    }
}
