//! GGUF files, read zero-copy and validated as untrusted input.
//!
//! [`Gguf::open`] maps a file with `memmap2`, parses the header, metadata and tensor infos in
//! one checked pass, and keeps only offsets: keys, string values, arrays and tensor data are
//! handed out as views into the map. Opening a model therefore touches only the header pages;
//! tensor data is paged in when a kernel first reads it.
//!
//! Supported: GGUF versions 2 and 3, little-endian, every metadata value type (nested arrays up
//! to [`MAX_ARRAY_DEPTH`] levels), every GGML tensor type id (see [`eddy_quant::GgmlType`]).
//! Refused with a [`GgufError`] naming the offset, key or tensor: everything else, including
//! truncation anywhere, impossible counts, overflowing shapes, tensor data outside the file or
//! off its alignment, overlapping tensors, duplicate keys or names, and non-UTF-8 strings.

mod error;
mod ftype;
mod parse;
mod value;
pub mod writer;

use std::fmt;
use std::fs::File;
use std::path::Path;

pub use eddy_quant::GgmlType;
pub use error::{GgufError, Result};
pub use ftype::file_type_name;
pub use value::{ArrayIter, ArrayView, Value, ValueType};

use parse::Layout;

/// GGML's maximum number of tensor dimensions.
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of arrays inside arrays that the reader accepts.
pub const MAX_ARRAY_DEPTH: usize = 8;
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The bytes a [`Gguf`] reads from.
enum Source {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mmap(m) => m,
            Source::Owned(v) => v,
            Source::Static(s) => s,
        }
    }
}

/// A parsed, validated GGUF file.
pub struct Gguf {
    source: Source,
    layout: Layout,
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.layout.version)
            .field("metadata", &self.layout.kvs.len())
            .field("tensors", &self.layout.tensors.len())
            .field("file_len", &self.file_len())
            .finish()
    }
}

/// One tensor: its name, type, shape and a view of its data in the file.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// Name as in the file (e.g. `blk.0.attn_q.weight`).
    pub name: &'a str,
    /// Element type.
    pub ty: GgmlType,
    /// Dimensions, innermost first (GGML order: `dims[0]` is the row length).
    pub dims: &'a [u64],
    /// Product of the dimensions.
    pub n_elements: u64,
    /// Offset of the data relative to the data section, as stored in the file.
    pub offset: u64,
    /// Absolute offset of the data in the file.
    pub file_offset: u64,
    /// The tensor's bytes (`ty.bytes_for(n_elements)` of them).
    pub data: &'a [u8],
}

impl Gguf {
    /// Maps `path` read-only and parses it.
    ///
    /// The map is shared with the page cache: opening costs the pages the header occupies, and
    /// tensor data is read from disk when first touched.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            // Nothing to map; parse the empty file for the proper error.
            return Self::from_vec(Vec::new());
        }
        // SAFETY: the map is read-only and private to this process. Rust's aliasing rules
        // assume the bytes do not change while borrowed; another process truncating or
        // rewriting the file while it is mapped breaks that assumption (SIGBUS or changed
        // bytes), as for every mmap-based loader. Eddy treats the bytes as untrusted and
        // re-checks every range, so changed bytes cannot cause out-of-bounds access.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_source(Source::Mmap(map))
    }

    /// Parses a GGUF file held in memory (takes ownership of the bytes).
    pub fn from_vec(bytes: Vec<u8>) -> Result<Gguf> {
        Self::from_source(Source::Owned(bytes))
    }

    /// Parses a GGUF file held in memory that lives for the rest of the program, without
    /// copying it (e.g. a model linked into the binary, or flash mapped by the embedder).
    pub fn from_static(bytes: &'static [u8]) -> Result<Gguf> {
        Self::from_source(Source::Static(bytes))
    }

    fn from_source(source: Source) -> Result<Gguf> {
        let layout = parse::parse(source.bytes())?;
        Ok(Gguf { source, layout })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.source.bytes()
    }

    /// Whether the bytes are a map of a file ([`Gguf::open`]), whose pages the process holds
    /// only while they are resident (see [`Gguf::release_pages`]).
    pub fn is_mapped(&self) -> bool {
        matches!(self.source, Source::Mmap(_))
    }

    /// Drops the mapped pages that lie wholly inside `range` from this process's resident set
    /// (`madvise(MADV_DONTNEED)`): for bytes the process has copied elsewhere and will rarely
    /// read again. Reading them later is still correct: the pages come back from the file (or
    /// the page cache) as they were. Returns the bytes released; 0 for bytes held in memory,
    /// on non-Unix systems, for a range outside the file or if the system refuses.
    pub fn release_pages(&self, range: std::ops::Range<usize>) -> usize {
        #[cfg(unix)]
        if let Source::Mmap(map) = &self.source {
            const PAGE: usize = 4096;
            if range.end > map.len() || range.start >= range.end {
                return 0;
            }
            // The map starts on a page boundary; a larger system page size makes the kernel
            // refuse an unaligned start, which is then just not released.
            let start = range.start.next_multiple_of(PAGE);
            let end = range.end / PAGE * PAGE;
            if start >= end {
                return 0;
            }
            // SAFETY: the map is read-only and never written by this process, so dropping its
            // pages loses nothing: a later read faults them back in from the file with the bytes
            // they had (the same assumption as mapping at all: no one rewrites the file while
            // it is mapped). No reference into the range is invalidated, since the addresses
            // stay mapped.
            #[allow(unsafe_code)]
            let done = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
            return if done.is_ok() { end - start } else { 0 };
        }
        let _ = range;
        0
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.layout.version
    }

    /// Alignment of tensor data (from `general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.layout.alignment
    }

    /// Offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.layout.data_offset
    }

    /// Number of metadata entries.
    pub fn metadata_len(&self) -> usize {
        self.layout.kvs.len()
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, Value<'_>)> + '_ {
        self.layout.kvs.iter().filter_map(move |kv| {
            let key = std::str::from_utf8(self.bytes().get(kv.key.clone())?).ok()?;
            Some((key, self.value_of(kv)?))
        })
    }

    /// Every metadata entry as the file encodes it, in file order: the key, the value's type
    /// and the value's bytes (for an array: element type, count and elements). Writing the key
    /// as a GGUF string, the type as a `u32` and then these bytes reproduces the entry exactly
    /// (what `eddy quantize` does to copy metadata).
    pub fn metadata_raw(&self) -> impl Iterator<Item = (&str, ValueType, &[u8])> + '_ {
        self.layout.kvs.iter().filter_map(move |kv| {
            let key = std::str::from_utf8(self.bytes().get(kv.key.clone())?).ok()?;
            Some((key, kv.ty, self.bytes().get(kv.value.clone())?))
        })
    }

    fn value_of(&self, kv: &parse::KvEntry) -> Option<Value<'_>> {
        value::view(kv.ty, self.bytes().get(kv.value.clone())?)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        let kv = self
            .layout
            .kvs
            .iter()
            .find(|kv| self.bytes().get(kv.key.clone()) == Some(key.as_bytes()))?;
        self.value_of(kv)
    }

    /// The string value of `key`, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The value of `key` as an unsigned integer, if present and an integer that fits.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// `general.architecture`, if present.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Total number of weights over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.layout
            .tensors
            .iter()
            .fold(0u64, |acc, t| acc.saturating_add(t.n_elements))
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.layout.tensors.len()
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = Tensor<'_>> + '_ {
        self.layout.tensors.iter().filter_map(move |t| {
            Some(Tensor {
                name: std::str::from_utf8(self.bytes().get(t.name.clone())?).ok()?,
                ty: t.ty,
                dims: &t.dims[..t.n_dims],
                n_elements: t.n_elements,
                offset: t.offset,
                file_offset: t.data.start as u64,
                data: self.bytes().get(t.data.clone())?,
            })
        })
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<Tensor<'_>> {
        self.tensors().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests;
