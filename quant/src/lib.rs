//! `eddy-quant`: the numeric core of Eddy.
//!
//! This crate knows the GGML tensor types: which ids exist, how many weights a block holds
//! and how many bytes it takes ([`GgmlType`]). Block layouts, reference quantizers and the
//! SIMD dot-product kernels with run-time dispatch build on this table.
//!
//! It knows nothing about models, files or tokenizers; `eddy` (the runtime) does.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod types;

pub use types::{GgmlType, TypeLookup};
