//! `eddy`: the Eddy runtime.
//!
//! It reads GGUF model files ([`gguf`]) zero-copy from a memory map and validates them as the
//! untrusted input they are. Model architectures, tokenizers, the KV arena and the forward pass
//! build on it. Numeric kernels live in `eddy-quant`; the C ABI lives in `eddy-ffi`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod arch;
pub mod arena;
pub mod chat;
#[cfg(feature = "constraint")]
pub mod constraint;
pub mod context;
mod error;
pub mod gguf;
pub mod kv;
mod linalg;
mod memory;
pub mod model;
pub mod ops;
pub mod quantize;
pub mod sampler;
pub mod threads;
pub mod tokenizer;

pub use context::{Context, ContextParams};
pub use error::{Error, Result};
pub use kv::KvType;
pub use model::Model;
pub use sampler::{Sampler, SamplerParams};

pub use eddy_quant::GgmlType;
