//! The runtime's error type.

use crate::gguf::GgufError;

/// Everything that can go wrong in the runtime, with the offending key, tensor or value named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file is not a valid GGUF file.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `general.architecture` names an architecture Eddy does not run.
    #[error("unsupported architecture '{0}' (supported: {supported})", supported = crate::arch::names().join(", "))]
    UnsupportedArchitecture(String),
    /// A required metadata key is absent or has an unusable value.
    #[error("model metadata: {key}: {problem}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A required tensor is absent, or has the wrong shape or type.
    #[error("tensor '{name}': {problem}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The tokenizer metadata is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A context parameter is out of range.
    #[error("invalid context parameter: {0}")]
    InvalidParam(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab} tokens")]
    InvalidToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// The batch is larger than the context's batch capacity, or empty.
    #[error("batch of {n} tokens does not fit the context's batch size {n_batch}")]
    BatchSize {
        /// Tokens given.
        n: usize,
        /// The context's capacity per call.
        n_batch: usize,
    },
    /// Memory handed in by the caller is smaller than the context needs.
    #[error("the buffer holds {got} bytes, but the context needs {needed}")]
    BufferTooSmall {
        /// Bytes needed (`Context::memory_required`).
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// Memory handed in by the caller does not start on the required boundary.
    #[error("the buffer at address {addr:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// Its address.
        addr: usize,
        /// The alignment required (`eddy::context::ALIGN`).
        align: usize,
    },
    /// The allocator refused a request.
    #[error("cannot allocate {bytes} bytes")]
    OutOfMemory {
        /// Bytes requested.
        bytes: usize,
    },
    /// A saved context state does not fit this context, or is damaged.
    #[error("context state: {0}")]
    State(String),
}

/// Result of the runtime.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn metadata(key: &str, problem: impl Into<String>) -> Error {
    Error::Metadata {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

pub(crate) fn tensor(name: &str, problem: impl Into<String>) -> Error {
    Error::Tensor {
        name: name.to_owned(),
        problem: problem.into(),
    }
}
