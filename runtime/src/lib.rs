//! `eddy`: the Eddy runtime.
//!
//! It reads GGUF model files ([`gguf`]) zero-copy from a memory map and validates them as the
//! untrusted input they are. Model architectures, tokenizers, the KV arena and the forward pass
//! build on it. Numeric kernels live in `eddy-quant`; the C ABI lives in `eddy-ffi`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod gguf;

pub use eddy_quant::GgmlType;
