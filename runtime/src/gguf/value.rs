//! Metadata values as views into the file's bytes.

use std::fmt;

/// The value type ids of GGUF metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// `u8`
    U8 = 0,
    /// `i8`
    I8 = 1,
    /// `u16`
    U16 = 2,
    /// `i16`
    I16 = 3,
    /// `u32`
    U32 = 4,
    /// `i32`
    I32 = 5,
    /// `f32`
    F32 = 6,
    /// bool, one byte 0 or 1
    Bool = 7,
    /// u64 length + UTF-8 bytes
    String = 8,
    /// u32 element type + u64 count + elements
    Array = 9,
    /// `u64`
    U64 = 10,
    /// `i64`
    I64 = 11,
    /// `f64`
    F64 = 12,
}

impl ValueType {
    /// The type with this id.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes of one value for fixed-size types; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Smallest possible encoding of one value of this type (used to bound counts).
    pub(crate) fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }

    /// Lower-case name as in the GGUF spec (`u8`, `string`, …).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value. Strings and arrays borrow the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string (validated when the file was opened)
    String(&'a str),
    /// array of values of one type
    Array(ArrayView<'a>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type that fits `u64` (negative values give `None`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// Any float type (and integers exactly representable as f64) as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<ArrayView<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array of metadata values, viewed in place.
///
/// Fixed-size elements are read by index in O(1); strings and nested arrays are walked in
/// order (use [`ArrayView::iter`] and keep what you need).
#[derive(Clone, Copy, PartialEq)]
pub struct ArrayView<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: usize,
    /// The encoded elements, exactly (validated when the file was opened).
    pub(crate) bytes: &'a [u8],
}

impl fmt::Debug for ArrayView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}; {}]", self.elem, self.len)
    }
}

impl<'a> ArrayView<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded bytes of all elements (little-endian, as in the file).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Element `i`. O(1) for fixed-size types, O(i) for strings and arrays.
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(size) => {
                let start = i.checked_mul(size)?;
                let bytes = self.bytes.get(start..start.checked_add(size)?)?;
                decode_fixed(self.elem, bytes)
            }
            None => self.iter().nth(i),
        }
    }

    /// All elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem: self.elem,
            remaining: self.len,
            bytes: self.bytes,
        }
    }

    /// The elements as strings, if this is an array of strings.
    pub fn strings(&self) -> Option<impl Iterator<Item = &'a str> + 'a> {
        (self.elem == ValueType::String).then(|| self.iter().filter_map(|v| v.as_str()))
    }
}

/// Iterator over an [`ArrayView`].
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    elem: ValueType,
    remaining: usize,
    bytes: &'a [u8],
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The bytes were validated when the file was opened, so decoding cannot fail; if it
        // ever did, iteration simply ends.
        let (value, used) = decode_one(self.elem, self.bytes)?;
        self.bytes = self.bytes.get(used..)?;
        self.remaining -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

fn le<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.get(..N)?.try_into().ok()
}

pub(crate) fn decode_fixed(ty: ValueType, b: &[u8]) -> Option<Value<'_>> {
    Some(match ty {
        ValueType::U8 => Value::U8(*b.first()?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(le(b)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(le(b)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(le(b)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(le(b)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(le(b)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(le(b)?)),
        ValueType::Bool => Value::Bool(*b.first()? != 0),
        ValueType::U64 => Value::U64(u64::from_le_bytes(le(b)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(le(b)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(le(b)?)),
        ValueType::String | ValueType::Array => return None,
    })
}

/// The value whose encoding is exactly `b` (already validated). Arrays become views without
/// walking their elements.
pub(crate) fn view(ty: ValueType, b: &[u8]) -> Option<Value<'_>> {
    if ty == ValueType::Array {
        let elem = ValueType::from_id(u32::from_le_bytes(le(b)?))?;
        let len = usize::try_from(u64::from_le_bytes(le(b.get(4..)?)?)).ok()?;
        return Some(Value::Array(ArrayView {
            elem,
            len,
            bytes: b.get(12..)?,
        }));
    }
    decode_one(ty, b).map(|(v, _)| v)
}

/// Decodes one already-validated value at the start of `b`; returns it and the bytes used.
pub(crate) fn decode_one(ty: ValueType, b: &[u8]) -> Option<(Value<'_>, usize)> {
    if let Some(size) = ty.fixed_size() {
        return Some((decode_fixed(ty, b)?, size));
    }
    match ty {
        ValueType::String => {
            let len = usize::try_from(u64::from_le_bytes(le(b)?)).ok()?;
            let bytes = b.get(8..8usize.checked_add(len)?)?;
            let s = std::str::from_utf8(bytes).ok()?;
            Some((Value::String(s), 8 + len))
        }
        ValueType::Array => {
            let elem = ValueType::from_id(u32::from_le_bytes(le(b)?))?;
            let len = usize::try_from(u64::from_le_bytes(le(b.get(4..)?)?)).ok()?;
            let body = b.get(12..)?;
            let used = encoded_len(elem, len, body)?;
            let view = ArrayView {
                elem,
                len,
                bytes: body.get(..used)?,
            };
            Some((Value::Array(view), 12 + used))
        }
        _ => None,
    }
}

/// Bytes taken by `len` already-validated elements of type `elem` at the start of `b`.
fn encoded_len(elem: ValueType, len: usize, b: &[u8]) -> Option<usize> {
    if let Some(size) = elem.fixed_size() {
        return size.checked_mul(len);
    }
    let mut used = 0usize;
    for _ in 0..len {
        let (_, n) = decode_one(elem, b.get(used..)?)?;
        used = used.checked_add(n)?;
    }
    Some(used)
}
