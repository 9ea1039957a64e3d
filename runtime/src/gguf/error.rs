//! Errors of the GGUF reader. Each names the byte offset, key or tensor it is about.

use std::path::PathBuf;

/// Why a GGUF file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: the first bytes are {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The bytes found (fewer than 4 if the file is shorter).
        found: Vec<u8>,
    },
    /// A version this reader does not parse.
    #[error(
        "unsupported GGUF version {version} at offset 4 (this reader supports versions 2 and 3)"
    )]
    UnsupportedVersion {
        /// The version number as read (little-endian).
        version: u32,
    },
    /// A big-endian GGUF file (version reads byte-swapped).
    #[error("big-endian GGUF (version {version} byte-swapped) is not supported")]
    BigEndian {
        /// The version number as read byte-swapped.
        version: u32,
    },
    /// The file ends before a field it must contain.
    #[error(
        "truncated file: {what} at offset {offset} needs {needed} bytes, only {available} remain"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// How many bytes the file has left from `offset`.
        available: u64,
    },
    /// The header's metadata count cannot fit in the bytes that remain.
    #[error(
        "metadata count {count} at offset 16 is impossible: {available} remaining bytes hold at most {max} entries"
    )]
    TooManyMetadata {
        /// The count in the header.
        count: u64,
        /// The upper bound the file's size allows.
        max: u64,
        /// Bytes after the header.
        available: u64,
    },
    /// The header's tensor count cannot fit in the bytes that remain.
    #[error(
        "tensor count {count} at offset 8 is impossible: {available} remaining bytes hold at most {max} tensor infos"
    )]
    TooManyTensors {
        /// The count in the header.
        count: u64,
        /// The upper bound the file's size allows.
        max: u64,
        /// Bytes after the header.
        available: u64,
    },
    /// A string's length field is larger than the rest of the file.
    #[error(
        "string length {len} at offset {offset} ({context}) exceeds the {available} bytes that remain"
    )]
    StringTooLong {
        /// Where the length field is.
        offset: u64,
        /// The length read.
        len: u64,
        /// Bytes left after the length field.
        available: u64,
        /// Which key or tensor the string belongs to.
        context: String,
    },
    /// A string is not valid UTF-8.
    #[error("string at offset {offset} ({context}) is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: u64,
        /// Which key or tensor the string belongs to.
        context: String,
    },
    /// A metadata value type id outside 0..=12.
    #[error("unknown metadata value type {type_id} at offset {offset} (key '{key}')")]
    UnknownValueType {
        /// The id read.
        type_id: u32,
        /// Where it was read.
        offset: u64,
        /// The key being read.
        key: String,
    },
    /// A bool that is neither 0 nor 1.
    #[error("bool value {value} at offset {offset} (key '{key}') is neither 0 nor 1")]
    InvalidBool {
        /// The byte read.
        value: u8,
        /// Where it was read.
        offset: u64,
        /// The key being read.
        key: String,
    },
    /// An array's element count cannot fit in the bytes that remain.
    #[error(
        "array of {len} {elem} elements at offset {offset} (key '{key}') cannot fit in the {available} bytes that remain"
    )]
    ArrayTooLong {
        /// Element count read.
        len: u64,
        /// Element type name.
        elem: &'static str,
        /// Where the array header starts.
        offset: u64,
        /// Bytes left after the array header.
        available: u64,
        /// The key being read.
        key: String,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error("arrays nested deeper than {max} levels at offset {offset} (key '{key}')")]
    NestingTooDeep {
        /// The limit.
        max: usize,
        /// Where the too-deep array starts.
        offset: u64,
        /// The key being read.
        key: String,
    },
    /// The same key appears twice.
    #[error("duplicate metadata key '{key}' at offset {offset}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where its second occurrence starts.
        offset: u64,
    },
    /// A well-known key has the wrong value type.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type it must have.
        expected: &'static str,
        /// The type it has.
        found: &'static str,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment = {value} is not a power of two")]
    BadAlignment {
        /// The value read.
        value: u64,
    },
    /// A tensor has more dimensions than GGML supports.
    #[error("tensor '{tensor}' has {n_dims} dimensions (at most {max} are allowed)")]
    TooManyDims {
        /// The tensor's name.
        tensor: String,
        /// The count read.
        n_dims: u32,
        /// GGML's limit.
        max: usize,
    },
    /// A tensor's dimensions multiply past what a 64-bit element count (or byte size) holds.
    #[error("tensor '{tensor}' has dimensions {dims:?} whose element count or byte size overflows")]
    DimsOverflow {
        /// The tensor's name.
        tensor: String,
        /// Its dimensions as read.
        dims: Vec<u64>,
    },
    /// A tensor type id this reader does not know, or one retired from GGUF.
    #[error("tensor '{tensor}' has {what}")]
    UnknownTensorType {
        /// The tensor's name.
        tensor: String,
        /// The id read.
        type_id: u32,
        /// Description of the id (unknown, or retired and its old name).
        what: String,
    },
    /// A tensor's rows are not a whole number of blocks of its type.
    #[error(
        "tensor '{tensor}' of type {ty}: first dimension {ne0} is not a multiple of the block size {block_size}"
    )]
    PartialBlock {
        /// The tensor's name.
        tensor: String,
        /// Its type.
        ty: eddy_quant::GgmlType,
        /// Its first (innermost) dimension.
        ne0: u64,
        /// The type's weights per block.
        block_size: u32,
    },
    /// The same tensor name appears twice.
    #[error("duplicate tensor name '{tensor}'")]
    DuplicateTensor {
        /// The name.
        tensor: String,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error(
        "tensor '{tensor}' data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        /// The tensor's name.
        tensor: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's data runs past the end of the file (or its end overflows).
    #[error(
        "tensor '{tensor}' data [{start}, {start}+{size}) lies outside the file of {file_len} bytes"
    )]
    TensorOutOfBounds {
        /// The tensor's name.
        tensor: String,
        /// Absolute start offset in the file (data offset + tensor offset, saturated).
        start: u64,
        /// Its byte size.
        size: u64,
        /// The file's size.
        file_len: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    TensorsOverlap {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },
}

/// Result of the GGUF reader.
pub type Result<T> = std::result::Result<T, GgufError>;
