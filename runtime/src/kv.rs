//! Key/value storage of the attention cache.
//!
//! Keys and values are stored head-major, `[layer][kv_head][slot][head_dim]`, so that the rows
//! one head attends to lie one after another and are widened to f32 in runs; f16 (default) or f32,
//! in the context's region (`runtime/src/memory.rs`). This module only stores and loads rows; which
//! slot a token occupies is decided by the arena ([`crate::arena`]).

use std::ops::Range;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::memory::Carver;

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

/// The K or V data of every layer, `[layer][slot][row]`, in the cache's element type.
#[derive(Debug)]
enum Elems<'b> {
    F16(&'b mut [f16]),
    F32(&'b mut [f32]),
}

/// K and V of every layer for `n_slots` slots: a view of the context's region.
#[derive(Debug)]
pub(crate) struct KvStore<'b> {
    n_slots: usize,
    /// Elements of one K slot (`n_head_kv * head_dim`).
    k_row: usize,
    /// Elements of one V slot (`n_head_kv * head_dim_v`).
    v_row: usize,
    n_head_kv: usize,
    k: Elems<'b>,
    v: Elems<'b>,
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

    /// The `n` halves at `at` of an f16 cache (as bit patterns); `None` for an f32 cache.
    #[inline]
    pub fn halves(&self, at: usize, n: usize) -> Option<&[u16]> {
        match self {
            Rows::F16(v) => Some(bytemuck::cast_slice(&v[at..at + n])),
            Rows::F32(_) => None,
        }
    }

    /// `row[at..at + buf.len()]` as f32: borrowed as it is from an f32 cache, converted into
    /// `buf` (with the dispatched F16C/NEON conversion) from an f16 one.
    #[inline]
    pub fn row_f32<'s>(
        &'s self,
        at: usize,
        buf: &'s mut [f32],
        ops: &eddy_quant::f32ops::F32Ops,
    ) -> &'s [f32] {
        match self {
            Rows::F32(v) => &v[at..at + buf.len()],
            Rows::F16(v) => {
                let n = buf.len();
                (ops.f16_to_f32)(bytemuck::cast_slice(&v[at..at + n]), buf);
                buf
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

impl<'b> KvStore<'b> {
    /// Takes the storage for `n_layer` layers of `n_slots` slots from `c` (or, measuring, only
    /// counts it). Returns the byte ranges of K and of V in the region.
    pub(crate) fn carve(
        c: &mut Carver<'b>,
        ty: KvType,
        n_layer: usize,
        n_slots: usize,
        k_row: usize,
        v_row: usize,
        n_head_kv: usize,
    ) -> (Self, Range<usize>, Range<usize>) {
        let mut take = |row: usize| match ty {
            KvType::F16 => {
                let (e, r) = c.take::<f16>(n_layer * n_slots * row);
                (Elems::F16(e), r)
            }
            KvType::F32 => {
                let (e, r) = c.take::<f32>(n_layer * n_slots * row);
                (Elems::F32(e), r)
            }
        };
        let (k, rk) = take(k_row);
        let (v, rv) = take(v_row);
        let kv = KvStore {
            n_slots,
            k_row,
            v_row,
            n_head_kv,
            k,
            v,
        };
        (kv, rk, rv)
    }

    /// Stores the key and value of one token in `slot` of `layer`.
    pub(crate) fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        debug_assert!(slot < self.n_slots && k.len() == self.k_row && v.len() == self.v_row);
        let (n, h) = (self.n_slots, self.n_head_kv);
        let (kd, vd) = (self.k_row / h, self.v_row / h);
        for i in 0..h {
            let head = (layer * h + i) * n + slot;
            store(&mut self.k, head * kd, &k[i * kd..(i + 1) * kd]);
            store(&mut self.v, head * vd, &v[i * vd..(i + 1) * vd]);
        }
    }

    /// Keys of `layer` (head `h`, slot `s` starts at `(h * n_slots + s) * head_dim`).
    pub(crate) fn keys(&self, layer: usize) -> Rows<'_> {
        rows(
            &self.k,
            layer * self.n_slots * self.k_row,
            self.n_slots * self.k_row,
        )
    }

    /// Values of `layer`.
    pub(crate) fn values(&self, layer: usize) -> Rows<'_> {
        rows(
            &self.v,
            layer * self.n_slots * self.v_row,
            self.n_slots * self.v_row,
        )
    }
}

fn store(e: &mut Elems<'_>, at: usize, src: &[f32]) {
    match e {
        Elems::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
        Elems::F32(v) => v[at..at + src.len()].copy_from_slice(src),
    }
}

fn rows<'s>(e: &'s Elems<'_>, at: usize, len: usize) -> Rows<'s> {
    match e {
        Elems::F16(v) => Rows::F16(&v[at..at + len]),
        Elems::F32(v) => Rows::F32(&v[at..at + len]),
    }
}
