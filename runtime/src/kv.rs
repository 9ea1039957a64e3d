//! Key/value storage of the attention cache.
//!
//! Per layer, keys and values are stored as `[slot][kv_head][head_dim]`, in f16 (default) or
//! f32. This module only stores and loads rows; which slot a token occupies is decided by the
//! context (a linear cache for now, the sink + window arena next).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Element type of the K/V cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision: half the memory, the default (as llama.cpp's).
    #[default]
    F16,
    /// Single precision: exact, twice the memory.
    F32,
}

impl KvType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

#[derive(Debug)]
enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Store {
    fn new(ty: KvType, n: usize) -> Store {
        match ty {
            KvType::F16 => Store::F16(vec![f16::ZERO; n]),
            KvType::F32 => Store::F32(vec![0.0; n]),
        }
    }

    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Store::F16(v) => {
                for (d, &s) in v[at..at + src.len()].iter_mut().zip(src) {
                    *d = f16::from_f32(s);
                }
            }
            Store::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }
}

/// K and V of every layer for `n_slots` slots.
#[derive(Debug)]
pub struct KvStore {
    ty: KvType,
    n_slots: usize,
    /// Elements of one K slot (`n_head_kv * head_dim`).
    k_row: usize,
    /// Elements of one V slot (`n_head_kv * head_dim_v`).
    v_row: usize,
    k: Vec<Store>,
    v: Vec<Store>,
}

/// Read access to one layer's keys or values.
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// f16 rows.
    F16(&'a [f16]),
    /// f32 rows.
    F32(&'a [f32]),
}

impl Rows<'_> {
    /// `dot(q, row[at..at+q.len()])`, with the row element converted to f32.
    #[inline]
    pub fn dot(&self, at: usize, q: &[f32]) -> f32 {
        match self {
            Rows::F32(v) => crate::ops::dot(q, &v[at..at + q.len()]),
            Rows::F16(v) => {
                // Convert through a stack buffer with `half`'s slice conversion (F16C when the
                // CPU has it, detected at run time), then the f32 dot; no allocation.
                let row = &v[at..at + q.len()];
                let mut buf = [0f32; 64];
                let mut s = 0f32;
                for (qc, rc) in q.chunks(64).zip(row.chunks(64)) {
                    let b = &mut buf[..rc.len()];
                    rc.convert_to_f32_slice(b);
                    s += crate::ops::dot(qc, b);
                }
                s
            }
        }
    }

    /// `out += a * row[at..at+out.len()]`.
    #[inline]
    pub fn axpy(&self, at: usize, a: f32, out: &mut [f32]) {
        match self {
            Rows::F32(v) => crate::ops::axpy(out, a, &v[at..at + out.len()]),
            Rows::F16(v) => {
                let n = out.len();
                let mut buf = [0f32; 64];
                for (oc, rc) in out.chunks_mut(64).zip(v[at..at + n].chunks(64)) {
                    let b = &mut buf[..rc.len()];
                    rc.convert_to_f32_slice(b);
                    crate::ops::axpy(oc, a, b);
                }
            }
        }
    }
}

impl KvStore {
    /// Storage for `n_layer` layers of `n_slots` slots.
    pub fn new(ty: KvType, n_layer: usize, n_slots: usize, k_row: usize, v_row: usize) -> Self {
        KvStore {
            ty,
            n_slots,
            k_row,
            v_row,
            k: (0..n_layer)
                .map(|_| Store::new(ty, n_slots * k_row))
                .collect(),
            v: (0..n_layer)
                .map(|_| Store::new(ty, n_slots * v_row))
                .collect(),
        }
    }

    /// Every byte [`KvStore::new`] allocates for the given shape (data and per-layer headers).
    pub fn memory_required(
        ty: KvType,
        n_layer: usize,
        n_slots: usize,
        k_row: usize,
        v_row: usize,
    ) -> usize {
        Self::bytes_for(ty, n_layer, n_slots, k_row, v_row)
            + 2 * n_layer * std::mem::size_of::<Store>()
    }

    /// Bytes of K/V data for the given shape.
    pub fn bytes_for(
        ty: KvType,
        n_layer: usize,
        n_slots: usize,
        k_row: usize,
        v_row: usize,
    ) -> usize {
        n_layer * n_slots * (k_row + v_row) * ty.size()
    }

    /// Element type.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Stores the key and value of one token in `slot` of `layer`.
    pub fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        debug_assert!(slot < self.n_slots && k.len() == self.k_row && v.len() == self.v_row);
        self.k[layer].write(slot * self.k_row, k);
        self.v[layer].write(slot * self.v_row, v);
    }

    /// Keys of `layer` (slot `s`, head `h` starts at `s * k_row + h * head_dim`).
    pub fn keys(&self, layer: usize) -> Rows<'_> {
        rows(&self.k[layer])
    }

    /// Values of `layer`.
    pub fn values(&self, layer: usize) -> Rows<'_> {
        rows(&self.v[layer])
    }

    /// Elements per K slot.
    pub fn k_row(&self) -> usize {
        self.k_row
    }

    /// Elements per V slot.
    pub fn v_row(&self) -> usize {
        self.v_row
    }
}

fn rows(s: &Store) -> Rows<'_> {
    match s {
        Store::F16(v) => Rows::F16(v),
        Store::F32(v) => Rows::F32(v),
    }
}
