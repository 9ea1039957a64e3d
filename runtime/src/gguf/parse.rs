//! The GGUF parser: one pass over untrusted bytes that records where everything is.
//!
//! Every length, count and offset is checked with checked arithmetic before it is used; no
//! allocation is sized from a count in the file (vectors grow as entries actually parse, so
//! memory stays proportional to the bytes read); recursion is bounded by
//! [`MAX_ARRAY_DEPTH`].

use std::collections::HashSet;
use std::ops::Range;

use eddy_quant::{GgmlType, TypeLookup};

use super::error::{GgufError, Result};
use super::value::ValueType;
use super::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};

/// Where one metadata entry lies in the file.
#[derive(Clone, Debug)]
pub(crate) struct KvEntry {
    pub key: Range<usize>,
    pub ty: ValueType,
    /// The encoded value (for arrays: element type, count and elements).
    pub value: Range<usize>,
}

/// Where one tensor lies in the file, with its validated shape and size.
#[derive(Clone, Debug)]
pub(crate) struct TensorEntry {
    pub name: Range<usize>,
    pub n_dims: usize,
    pub dims: [u64; MAX_DIMS],
    pub ty: GgmlType,
    /// Offset relative to the data section, as stored.
    pub offset: u64,
    pub n_elements: u64,
    /// Absolute byte range of the data in the file.
    pub data: Range<usize>,
}

/// Everything the parser learned, as offsets into the bytes it was given.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub version: u32,
    pub kvs: Vec<KvEntry>,
    pub tensors: Vec<TensorEntry>,
    pub alignment: u64,
    pub data_offset: u64,
}

const MAGIC: &[u8; 4] = b"GGUF";
/// 8 (key length) + 4 (type) + 1 (smallest value).
const MIN_KV_SIZE: u64 = 13;
/// 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
const MIN_TENSOR_INFO_SIZE: u64 = 24;
/// Upper bound for the capacity reserved up front; beyond it vectors grow as entries parse.
const INITIAL_CAPACITY: usize = 1024;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let available = self.remaining();
        if n > available {
            return Err(GgufError::Truncated {
                what,
                offset: self.pos as u64,
                needed: n,
                available,
            });
        }
        // n <= remaining <= usize::MAX, so the cast and the addition are exact.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string (u64 length + UTF-8 bytes). `context` names it in errors.
    fn string(
        &mut self,
        what: &'static str,
        context: impl Fn() -> String,
    ) -> Result<(Range<usize>, &'a str)> {
        let len_at = self.pos as u64;
        let len = self.u64(what)?;
        let available = self.remaining();
        if len > available {
            return Err(GgufError::StringTooLong {
                offset: len_at,
                len,
                available,
                context: context(),
            });
        }
        let start = self.pos;
        let bytes = self.take(len, what)?;
        let s = std::str::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 {
            offset: start as u64,
            context: context(),
        })?;
        Ok((start..self.pos, s))
    }
}

/// Parses and validates a whole GGUF file held in `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Layout> {
    let mut c = Cursor { bytes, pos: 0 };

    // Header: magic, version, tensor count, metadata count.
    if bytes.len() < 4 {
        if MAGIC.starts_with(bytes) {
            c.take(4, "magic")?;
        }
        return Err(GgufError::BadMagic {
            found: bytes.to_vec(),
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(GgufError::BadMagic {
            found: bytes[..4].to_vec(),
        });
    }
    c.pos = 4;
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(GgufError::BigEndian {
                version: v.swap_bytes(),
            });
        }
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    let available = c.remaining();
    let max_tensors = available / MIN_TENSOR_INFO_SIZE;
    if tensor_count > max_tensors {
        return Err(GgufError::TooManyTensors {
            count: tensor_count,
            max: max_tensors,
            available,
        });
    }
    let max_kvs = available / MIN_KV_SIZE;
    if kv_count > max_kvs {
        return Err(GgufError::TooManyMetadata {
            count: kv_count,
            max: max_kvs,
            available,
        });
    }

    // Metadata.
    let mut kvs = Vec::with_capacity((kv_count as usize).min(INITIAL_CAPACITY));
    let mut keys: HashSet<&str> = HashSet::with_capacity((kv_count as usize).min(INITIAL_CAPACITY));
    for i in 0..kv_count {
        let entry_at = c.pos as u64;
        let (key_range, key) = c.string("metadata key", || format!("metadata key #{i}"))?;
        if !keys.insert(key) {
            return Err(GgufError::DuplicateKey {
                key: key.to_owned(),
                offset: entry_at,
            });
        }
        let type_at = c.pos as u64;
        let type_id = c.u32("metadata value type")?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            type_id,
            offset: type_at,
            key: key.to_owned(),
        })?;
        let value_start = c.pos;
        skip_value(&mut c, ty, key, 0)?;
        kvs.push(KvEntry {
            key: key_range,
            ty,
            value: value_start..c.pos,
        });
    }

    let alignment = alignment_of(bytes, &kvs)?;

    // Tensor infos.
    let mut tensors = Vec::with_capacity((tensor_count as usize).min(INITIAL_CAPACITY));
    let mut names: HashSet<&str> =
        HashSet::with_capacity((tensor_count as usize).min(INITIAL_CAPACITY));
    for i in 0..tensor_count {
        let (name_range, name) = c.string("tensor name", || format!("tensor #{i} name"))?;
        if !names.insert(name) {
            return Err(GgufError::DuplicateTensor {
                tensor: name.to_owned(),
            });
        }
        let n_dims = c.u32("tensor dimension count")?;
        if n_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name.to_owned(),
                n_dims,
                max: MAX_DIMS,
            });
        }
        let n_dims = n_dims as usize;
        let mut dims = [1u64; MAX_DIMS];
        for d in dims.iter_mut().take(n_dims) {
            *d = c.u64("tensor dimension")?;
        }
        let type_id = c.u32("tensor type")?;
        let offset = c.u64("tensor data offset")?;

        let overflow = || GgufError::DimsOverflow {
            tensor: name.to_owned(),
            dims: dims[..n_dims].to_vec(),
        };
        // GGML stores dimensions and counts as int64: each must fit, and so must the product.
        let mut n_elements: u64 = 1;
        for &d in &dims[..n_dims] {
            if d > i64::MAX as u64 {
                return Err(overflow());
            }
            n_elements = n_elements.checked_mul(d).ok_or_else(overflow)?;
        }
        if n_elements > i64::MAX as u64 {
            return Err(overflow());
        }
        let ty = match GgmlType::lookup(type_id) {
            TypeLookup::Known(t) => t,
            TypeLookup::Removed(old) => {
                return Err(GgufError::UnknownTensorType {
                    tensor: name.to_owned(),
                    type_id,
                    what: format!(
                        "type id {type_id} ({old}), a repacked layout that ggml removed from GGUF files"
                    ),
                });
            }
            TypeLookup::Unknown => {
                return Err(GgufError::UnknownTensorType {
                    tensor: name.to_owned(),
                    type_id,
                    what: format!("unknown type id {type_id}"),
                });
            }
        };
        if dims[0] % u64::from(ty.block_size()) != 0 {
            return Err(GgufError::PartialBlock {
                tensor: name.to_owned(),
                ty,
                ne0: dims[0],
                block_size: ty.block_size(),
            });
        }
        let n_bytes = ty.bytes_for(n_elements).ok_or_else(overflow)?;
        tensors.push((
            TensorEntry {
                name: name_range,
                n_dims,
                dims,
                ty,
                offset,
                n_elements,
                data: 0..0,
            },
            n_bytes,
        ));
    }

    // The data section starts at the next multiple of the alignment.
    let info_end = c.pos as u64;
    let data_offset = info_end
        .checked_next_multiple_of(alignment)
        .unwrap_or(u64::MAX);
    let file_len = bytes.len() as u64;
    let mut out = Vec::with_capacity(tensors.len());
    for (mut t, n_bytes) in tensors {
        let name = &bytes[t.name.clone()];
        let name = || String::from_utf8_lossy(name).into_owned();
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: name(),
                offset: t.offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => t.data = s as usize..e as usize,
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: name(),
                    start: data_offset.saturating_add(t.offset),
                    size: n_bytes,
                    file_len,
                });
            }
        }
        out.push(t);
    }
    check_overlaps(bytes, &out)?;

    Ok(Layout {
        version,
        kvs,
        tensors: out,
        alignment,
        data_offset,
    })
}

/// Validates one value of type `ty` at the cursor and moves past it.
fn skip_value(c: &mut Cursor<'_>, ty: ValueType, key: &str, depth: usize) -> Result<()> {
    match ty {
        ValueType::Bool => check_bool(c, key),
        ValueType::String => c.string("string value", || key.to_owned()).map(|_| ()),
        ValueType::Array => skip_array(c, key, depth + 1),
        fixed => {
            // Every type but string and array has a fixed size.
            let size = fixed.fixed_size().unwrap_or(1) as u64;
            c.take(size, "metadata value").map(|_| ())
        }
    }
}

fn check_bool(c: &mut Cursor<'_>, key: &str) -> Result<()> {
    let at = c.pos as u64;
    match c.u8("bool value")? {
        0 | 1 => Ok(()),
        value => Err(GgufError::InvalidBool {
            value,
            offset: at,
            key: key.to_owned(),
        }),
    }
}

fn skip_array(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<()> {
    let at = c.pos as u64;
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            max: MAX_ARRAY_DEPTH,
            offset: at,
            key: key.to_owned(),
        });
    }
    let type_at = c.pos as u64;
    let elem_id = c.u32("array element type")?;
    let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
        type_id: elem_id,
        offset: type_at,
        key: key.to_owned(),
    })?;
    let len = c.u64("array length")?;
    let available = c.remaining();
    if len > available / elem.min_size() as u64 {
        return Err(GgufError::ArrayTooLong {
            len,
            elem: elem.name(),
            offset: at,
            available,
            key: key.to_owned(),
        });
    }
    match elem {
        ValueType::Bool => {
            for _ in 0..len {
                check_bool(c, key)?;
            }
        }
        ValueType::String => {
            for i in 0..len {
                c.string("string array element", || format!("{key}[{i}]"))?;
            }
        }
        ValueType::Array => {
            for _ in 0..len {
                skip_array(c, key, depth + 1)?;
            }
        }
        fixed => {
            // len * size <= available (checked above), so this cannot overflow.
            let size = fixed.fixed_size().unwrap_or(1) as u64;
            c.take(len * size, "array elements")?;
        }
    }
    Ok(())
}

/// `general.alignment` if present (it must be a u32 power of two), else 32.
fn alignment_of(bytes: &[u8], kvs: &[KvEntry]) -> Result<u64> {
    const KEY: &str = "general.alignment";
    let Some(kv) = kvs
        .iter()
        .find(|kv| &bytes[kv.key.clone()] == KEY.as_bytes())
    else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    if kv.ty != ValueType::U32 {
        return Err(GgufError::WrongType {
            key: KEY.to_owned(),
            expected: "u32",
            found: kv.ty.name(),
        });
    }
    let raw: [u8; 4] = bytes[kv.value.clone()].try_into().unwrap_or([0; 4]);
    let value = u64::from(u32::from_le_bytes(raw));
    if !value.is_power_of_two() {
        return Err(GgufError::BadAlignment { value });
    }
    Ok(value)
}

fn check_overlaps(bytes: &[u8], tensors: &[TensorEntry]) -> Result<()> {
    let mut order: Vec<&TensorEntry> = tensors.iter().filter(|t| !t.data.is_empty()).collect();
    order.sort_by_key(|t| t.data.start);
    for pair in order.windows(2) {
        if pair[1].data.start < pair[0].data.end {
            let name =
                |t: &TensorEntry| String::from_utf8_lossy(&bytes[t.name.clone()]).into_owned();
            return Err(GgufError::TensorsOverlap {
                first: name(pair[0]),
                second: name(pair[1]),
            });
        }
    }
    Ok(())
}
