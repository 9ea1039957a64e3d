//! A small GGUF writer, for tests and for building tiny synthetic models.
//!
//! It writes what it is given without validating it, so tests can also build malformed files
//! (wrong sizes, odd alignments) on purpose; the reader is what validates.

use eddy_quant::GgmlType;

use super::value::ValueType;

/// A metadata value owned by the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
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
    /// string
    String(String),
    /// array of one element type (`elem` is written even when `items` is empty)
    Array {
        /// Element type.
        elem: ValueType,
        /// Elements; each should have type `elem`.
        items: Vec<OwnedValue>,
    },
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl OwnedValue {
    /// This value's type id.
    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::String(_) => ValueType::String,
            OwnedValue::Array { .. } => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }

    /// An array of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> OwnedValue {
        OwnedValue::Array {
            elem: ValueType::String,
            items: items
                .into_iter()
                .map(|s| OwnedValue::String(s.into()))
                .collect(),
        }
    }

    /// Appends this value's encoding (without its type id) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::U8(v) => out.push(*v),
            OwnedValue::I8(v) => out.extend(v.to_le_bytes()),
            OwnedValue::U16(v) => out.extend(v.to_le_bytes()),
            OwnedValue::I16(v) => out.extend(v.to_le_bytes()),
            OwnedValue::U32(v) => out.extend(v.to_le_bytes()),
            OwnedValue::I32(v) => out.extend(v.to_le_bytes()),
            OwnedValue::F32(v) => out.extend(v.to_le_bytes()),
            OwnedValue::Bool(v) => out.push(u8::from(*v)),
            OwnedValue::String(s) => put_str(out, s),
            OwnedValue::Array { elem, items } => {
                out.extend((*elem as u32).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            OwnedValue::U64(v) => out.extend(v.to_le_bytes()),
            OwnedValue::I64(v) => out.extend(v.to_le_bytes()),
            OwnedValue::F64(v) => out.extend(v.to_le_bytes()),
        }
    }
}

/// Appends a GGUF string (u64 length + bytes).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A tensor to write.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: GgmlType,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// Raw data bytes.
    pub data: Vec<u8>,
}

/// Builds a GGUF file in memory.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    /// Version written in the header (default 3).
    pub version: u32,
    /// Data alignment (default 32). A value other than 32 is also written as
    /// `general.alignment` unless that key was added explicitly.
    pub alignment: u64,
    /// Metadata in write order.
    pub kvs: Vec<(String, OwnedValue)>,
    /// Tensors in write order; data is laid out in this order, each padded to the alignment.
    pub tensors: Vec<TensorSpec>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            version: 3,
            alignment: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufWriter {
    /// An empty version-3 file with alignment 32.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry.
    pub fn kv(&mut self, key: &str, value: OwnedValue) -> &mut Self {
        self.kvs.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, name: &str, ty: GgmlType, dims: &[u64], data: Vec<u8>) -> &mut Self {
        self.tensors.push(TensorSpec {
            name: name.to_owned(),
            ty,
            dims: dims.to_vec(),
            data,
        });
        self
    }

    /// Adds an F32 tensor from values.
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, GgmlType::F32, dims, data)
    }

    /// The encoded file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = self.alignment.max(1) as usize;
        let mut kvs: Vec<(String, OwnedValue)> = self.kvs.clone();
        if self.alignment != 32 && !kvs.iter().any(|(k, _)| k == "general.alignment") {
            kvs.push((
                "general.alignment".to_owned(),
                OwnedValue::U32(self.alignment as u32),
            ));
        }

        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((kvs.len() as u64).to_le_bytes());
        for (key, value) in &kvs {
            put_str(&mut out, key);
            out.extend((value.value_type() as u32).to_le_bytes());
            value.encode(&mut out);
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.id().to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        out.resize(out.len().next_multiple_of(align), 0);
        for t in &self.tensors {
            out.extend(&t.data);
            out.resize(out.len().next_multiple_of(align), 0);
        }
        out
    }
}
