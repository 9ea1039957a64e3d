//! Key/value storage of the attention cache.
//!
//! Keys and values are stored head-major, `[layer][kv_head][slot][head_dim]`, so that the rows
//! one head attends to lie one after another and are read in runs; in the context's region
//! (`runtime/src/memory.rs`). K and V each have their own element type: f16 (the default), f32,
//! or the GGML block formats Q8_0 and Q4_0, which quantize each head's row in blocks of 32 (so
//! the head dimension must be a multiple of 32). A key is rotated once, when it enters the
//! arena, and quantized then; it is never touched again, so a quantized cache streams through
//! sinks and window as an f16 one does. This module only stores and reads rows; which slot a
//! token occupies is decided by the arena ([`crate::arena`]).

use std::ops::Range;

use eddy_quant::{GgmlType, TypeTraits};
use half::f16;

use crate::error::{Error, Result};
use crate::memory::Carver;
use crate::ops::HADAMARD_MAX;

/// Element type of the K or V cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision: half the memory of f32, the default (as llama.cpp's).
    #[default]
    F16,
    /// Single precision: exact, twice the memory.
    F32,
    /// GGML Q8_0 blocks (32 signed bytes and an f16 scale): 34 bytes per 32 values, 0.53x of
    /// f16.
    Q8_0,
    /// GGML Q4_0 blocks (32 nibbles and an f16 scale): 18 bytes per 32 values, 0.28x of f16.
    Q4_0,
}

impl KvType {
    /// Every type, in the order of their C constants (`EDDY_KV_F16` = 0, ...).
    pub const ALL: [KvType; 4] = [KvType::F16, KvType::F32, KvType::Q8_0, KvType::Q4_0];

    /// The name llama.cpp's `--cache-type-k` gives the type (`f16`, `f32`, `q8_0`, `q4_0`).
    pub const fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }

    /// Parses a name of [`KvType::name`] (case-insensitive).
    pub fn parse(s: &str) -> Result<KvType> {
        KvType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidParam(format!(
                    "unknown K/V cache type {s:?}: expected f16, f32, q8_0 or q4_0"
                ))
            })
    }

    /// The GGML block format of a quantized type.
    pub const fn ggml(self) -> Option<GgmlType> {
        match self {
            KvType::Q8_0 => Some(GgmlType::Q8_0),
            KvType::Q4_0 => Some(GgmlType::Q4_0),
            KvType::F16 | KvType::F32 => None,
        }
    }

    /// Bytes of a row of `n` values, or `None` if a quantized type cannot hold `n` values
    /// (not whole blocks of 32).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        match self {
            KvType::F16 => Some(2 * n),
            KvType::F32 => Some(4 * n),
            KvType::Q8_0 | KvType::Q4_0 => {
                let ty = self.ggml()?;
                eddy_quant::row_bytes(ty, n).ok()
            }
        }
    }
}

impl core::fmt::Display for KvType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The K or V data of every layer, `[layer][kv_head][slot][head_dim]`, in one element type.
#[derive(Debug)]
enum Elems<'b> {
    F16(&'b mut [f16]),
    F32(&'b mut [f32]),
    /// Rows of GGML blocks, `bytes_per_row` per head row.
    Quant(&'b mut [u8], &'static TypeTraits),
}

/// K and V of every layer for `n_slots` slots: a view of the context's region.
#[derive(Debug)]
pub(crate) struct KvStore<'b> {
    n_slots: usize,
    /// Values of one K (V) row of one head (`head_dim`, `head_dim_v`).
    k_dim: usize,
    v_dim: usize,
    n_head_kv: usize,
    k: Elems<'b>,
    v: Elems<'b>,
    /// `[cos of each RoPE pair, then sin of each][slot]`: the angles each slot's key was rotated
    /// by, for a key cache that keeps the model's key bias out of its blocks (see
    /// [`KvStore::write_angles`]); empty otherwise. Slot-minor, so that attention adds the bias
    /// term of a run of keys with one vector `axpy` per angle.
    angles: &'b mut [f32],
}

/// Read access to one layer's keys or values. Offsets are in values (`(head * n_slots + slot)
/// * dim`), whatever the element type.
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// f16 rows.
    F16(&'a [f16]),
    /// f32 rows.
    F32(&'a [f32]),
    /// Rows of GGML blocks of 32 values.
    Quant(&'a [u8], &'static TypeTraits),
}

impl<'a> Rows<'a> {
    /// The `n` halves at `at` of an f16 cache (as bit patterns); `None` for other types.
    #[inline]
    pub fn halves(&self, at: usize, n: usize) -> Option<&'a [u16]> {
        match *self {
            Rows::F16(v) => Some(bytemuck::cast_slice(&v[at..at + n])),
            _ => None,
        }
    }

    /// The blocks holding values `at..at + n` of a quantized cache (both multiples of 32) and
    /// the format's kernels; `None` for f16 and f32.
    #[inline]
    pub fn blocks(&self, at: usize, n: usize) -> Option<(&'a [u8], &'static TypeTraits)> {
        match *self {
            Rows::Quant(b, t) => {
                let bb = block_bytes(t);
                debug_assert!(at.is_multiple_of(32) && n.is_multiple_of(32));
                Some((&b[at / 32 * bb..(at + n) / 32 * bb], t))
            }
            _ => None,
        }
    }

    /// `row[at..at + buf.len()]` as f32: borrowed as it is from an f32 cache, converted into
    /// `buf` from the others (the dispatched F16C/NEON conversion, or the format's
    /// dequantization).
    #[inline]
    pub fn row_f32<'s>(
        &'s self,
        at: usize,
        buf: &'s mut [f32],
        ops: &eddy_quant::f32ops::F32Ops,
    ) -> &'s [f32] {
        let n = buf.len();
        match *self {
            Rows::F32(v) => &v[at..at + n],
            Rows::F16(v) => {
                (ops.f16_to_f32)(bytemuck::cast_slice(&v[at..at + n]), buf);
                buf
            }
            Rows::Quant(..) => {
                if let Some((b, t)) = self.blocks(at, n) {
                    (t.to_float)(b, buf);
                }
                buf
            }
        }
    }
}

/// Bytes of one block of 32 values of a quantized cache format.
fn block_bytes(t: &TypeTraits) -> usize {
    eddy_quant::row_bytes(t.ty, 32).unwrap_or(0)
}

impl<'b> KvStore<'b> {
    /// Takes the storage for `n_layer` layers of `n_slots` slots of `n_head_kv` heads from `c`
    /// (or, measuring, only counts it). Returns the byte ranges of K and of V in the region.
    /// A quantized type needs head dimensions that are whole blocks of 32.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn carve(
        c: &mut Carver<'b>,
        types: [KvType; 2],
        n_layer: usize,
        n_slots: usize,
        k_dim: usize,
        v_dim: usize,
        n_head_kv: usize,
        angles_per_slot: usize,
    ) -> (Self, [Range<usize>; 3]) {
        let mut take = |ty: KvType, dim: usize| {
            let rows = n_layer * n_head_kv * n_slots;
            match (ty, ty.ggml().and_then(eddy_quant::type_traits)) {
                (KvType::F32, _) => {
                    let (e, r) = c.take::<f32>(rows * dim);
                    (Elems::F32(e), r)
                }
                (KvType::Q8_0 | KvType::Q4_0, Some(t)) => {
                    // Checked by `check_types` before any carving.
                    let bytes = ty.row_bytes(dim).unwrap_or(0);
                    let (e, r) = c.take::<u8>(rows * bytes);
                    (Elems::Quant(e, t), r)
                }
                _ => {
                    let (e, r) = c.take::<f16>(rows * dim);
                    (Elems::F16(e), r)
                }
            }
        };
        let (k, rk) = take(types[0], k_dim);
        let (v, rv) = take(types[1], v_dim);
        let (angles, ra) = c.take::<f32>(n_slots * angles_per_slot);
        let kv = KvStore {
            n_slots,
            k_dim,
            v_dim,
            n_head_kv,
            k,
            v,
            angles,
        };
        (kv, [rk, rv, ra])
    }

    /// Records the RoPE angles (`cos`, `sin`: one per pair) the key in `slot` was rotated by,
    /// when this cache keeps the key bias apart (else does nothing). The key itself was then
    /// stored without its bias, `R(pos)·(W·x)`, and a score adds `q·R(pos)·b` from these angles
    /// ([`crate::context`]'s attention), exactly: a 4-bit block no longer spends its levels on
    /// a bias that is the same for every token (Qwen2's reach 150 where the keys vary by ~1).
    pub(crate) fn write_angles(&mut self, slot: usize, cos: &[f32], sin: &[f32]) {
        let n = self.n_slots;
        if self.angles.is_empty() || slot >= n {
            return;
        }
        for (row, &a) in self.angles.chunks_exact_mut(n).zip(cos.iter().chain(sin)) {
            row[slot] = a;
        }
    }

    /// The angles table of [`KvStore::write_angles`], `None` when the cache keeps none.
    pub(crate) fn angles(&self) -> Option<&[f32]> {
        (!self.angles.is_empty()).then_some(&*self.angles)
    }

    /// Stores the key and value of one token (all KV heads, `[head][dim]`) in `slot` of
    /// `layer`, quantizing them for a quantized cache.
    pub(crate) fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        let (n, h) = (self.n_slots, self.n_head_kv);
        debug_assert!(slot < n && k.len() == h * self.k_dim && v.len() == h * self.v_dim);
        for i in 0..h {
            let row = (layer * h + i) * n + slot;
            store(
                &mut self.k,
                row,
                self.k_dim,
                &k[i * self.k_dim..][..self.k_dim],
            );
            store(
                &mut self.v,
                row,
                self.v_dim,
                &v[i * self.v_dim..][..self.v_dim],
            );
        }
    }

    /// Whether keys are stored as Q4_0 blocks (and so smoothed: `model::key_smoothing`).
    pub(crate) fn keys_q4_0(&self) -> bool {
        matches!(&self.k, Elems::Quant(_, t) if t.ty == GgmlType::Q4_0)
    }

    /// Keys of `layer` (head `h`, slot `s` starts at value `(h * n_slots + s) * head_dim`).
    pub(crate) fn keys(&self, layer: usize) -> Rows<'_> {
        let rows = self.n_head_kv * self.n_slots;
        view(&self.k, layer * rows, rows, self.k_dim)
    }

    /// Values of `layer`.
    pub(crate) fn values(&self, layer: usize) -> Rows<'_> {
        let rows = self.n_head_kv * self.n_slots;
        view(&self.v, layer * rows, rows, self.v_dim)
    }
}

/// Checks that `types` can hold rows of `k_dim` keys and `v_dim` values.
pub(crate) fn check_types(types: [KvType; 2], k_dim: usize, v_dim: usize) -> Result<()> {
    for (ty, dim, what) in [(types[0], k_dim, "K"), (types[1], v_dim, "V")] {
        if ty.row_bytes(dim).is_none() {
            return Err(Error::InvalidParam(format!(
                "a {ty} {what} cache stores heads in blocks of 32 values, and this model's {what} \
                 heads have {dim}"
            )));
        }
    }
    Ok(())
}

/// Writes `src` (one head's row of `dim` values) as row `row` of `e`. A quantized cache stores
/// the row rotated by [`crate::ops::hadamard_chunks`], chunk by chunk.
fn store(e: &mut Elems<'_>, row: usize, dim: usize, src: &[f32]) {
    if let Elems::Quant(..) = e {
        let mut rotated = [0f32; HADAMARD_MAX];
        for (c, r) in src.chunks(HADAMARD_MAX).zip(0..) {
            let buf = &mut rotated[..c.len()];
            buf.copy_from_slice(c);
            crate::ops::hadamard(buf);
            store_at(e, row * dim + r * HADAMARD_MAX, buf);
        }
    } else {
        store_at(e, row * dim, &src[..dim]);
    }
}

/// Writes `src` at value `at` of `e` (for a quantized cache, both whole blocks of 32).
fn store_at(e: &mut Elems<'_>, at: usize, src: &[f32]) {
    match e {
        Elems::F16(v) => {
            use half::slice::HalfFloatSliceExt;
            v[at..][..src.len()].convert_from_f32_slice(src)
        }
        Elems::F32(v) => v[at..][..src.len()].copy_from_slice(src),
        Elems::Quant(b, t) => {
            let bb = block_bytes(t);
            let dst = &mut b[at / 32 * bb..][..src.len() / 32 * bb];
            if t.ty == GgmlType::Q4_0 {
                for (x, blk) in src.chunks_exact(32).zip(dst.chunks_exact_mut(bb)) {
                    quantize_q4_0_least_squares(x, blk);
                }
            } else {
                (t.from_float)(src, dst);
            }
        }
    }
}

/// One Q4_0 block of 32 values (`x`) into `out` (18 bytes), with the scale that fits best.
///
/// ggml's reference quantizer maps the value of largest magnitude to level −8 and rounds the rest
/// with that scale. With only 16 levels that wastes precision on the other 31 values, and a
/// cached key's error moves every score it takes part in. This one also tries the scales of
/// ggml's `make_qx_quants` search: levels `round(−(8 + t/10)/max·x)` for t in −9..=9, each set
/// with its least-squares scale `Σx·l / Σl²`; every candidate is rounded to the f16 it is
/// stored as and its levels taken again with that scale, and the block with the smallest
/// squared error is kept. The reference's own block is a candidate, so the error is never
/// larger than its (tested); the format is unchanged.
pub(crate) fn quantize_q4_0_least_squares(x: &[f32], out: &mut [u8]) {
    let max = x
        .iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    // ggml's reference: scale max/−8, levels from the unrounded scale.
    let reference = max / -8.0;
    let id = if reference != 0.0 {
        1.0 / reference
    } else {
        0.0
    };
    let mut best = [0u8; 18];
    let mut best_err = q4_0_block(x, reference, id, &mut best);
    if max == 0.0 || !max.is_finite() {
        out[..18].copy_from_slice(&best);
        return;
    }
    let mut cand = [0u8; 18];
    for t in -9..=9 {
        let iscale = -(8.0 + 0.1 * t as f32) / max;
        let (mut sum_xl, mut sum_ll) = (0f32, 0f32);
        for &v in x {
            let l = (v * iscale).round().clamp(-8.0, 7.0);
            sum_xl += v * l;
            sum_ll += l * l;
        }
        if sum_ll == 0.0 {
            continue;
        }
        let d = f16::from_f32(sum_xl / sum_ll).to_f32();
        if d == 0.0 || !d.is_finite() {
            continue;
        }
        let err = q4_0_block(x, d, 1.0 / d, &mut cand);
        if err < best_err {
            (best, best_err) = (cand, err);
        }
    }
    out[..18].copy_from_slice(&best);
}

/// Writes `x` as a Q4_0 block with scale `d` (stored as f16) and levels rounded as ggml does
/// (`⌊x·id + 8.5⌋`, clamped to 0..=15); returns the block's squared error.
fn q4_0_block(x: &[f32], d: f32, id: f32, out: &mut [u8; 18]) -> f32 {
    let d16 = f16::from_f32(d);
    out[..2].copy_from_slice(&d16.to_le_bytes());
    let d = d16.to_f32();
    // Saturating cast, then clamp: in-range values round as ggml's `(int8_t)(x·id + 8.5f)`.
    let level = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
    let mut err = 0f32;
    for j in 0..16 {
        // Value j in the low nibble, value j + 16 in the high one.
        let (lo, hi) = (level(x[j]), level(x[j + 16]));
        out[2 + j] = lo | (hi << 4);
        for (v, l) in [(x[j], lo), (x[j + 16], hi)] {
            let e = v - d * (f32::from(l) - 8.0);
            err += e * e;
        }
    }
    err
}

/// Rows `first..first + n` (of `dim` values) of `e`.
fn view<'s>(e: &'s Elems<'_>, first: usize, n: usize, dim: usize) -> Rows<'s> {
    match e {
        Elems::F16(v) => Rows::F16(&v[first * dim..][..n * dim]),
        Elems::F32(v) => Rows::F32(&v[first * dim..][..n * dim]),
        Elems::Quant(b, t) => {
            let rb = dim / 32 * block_bytes(t);
            Rows::Quant(&b[first * rb..][..n * rb], t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache's Q4_0 writer against ggml's reference quantizer, block by block: never a
    /// larger squared error (random blocks, blocks with one outlier, constant and zero blocks),
    /// and a smaller one in total.
    #[test]
    fn q4_0_least_squares_beats_the_reference() {
        let t = eddy_quant::type_traits(GgmlType::Q4_0).unwrap();
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let (mut total_ls, mut total_ref) = (0f64, 0f64);
        for case in 0..2000 {
            // Roughly normal values (a sum of four uniform ones), as rotated rows are.
            let mut x: Vec<f32> = (0..32)
                .map(|_| (rnd() + rnd() + rnd() + rnd()) * 1.5)
                .collect();
            match case % 5 {
                1 => x[case % 32] *= 20.0,
                2 => x.iter_mut().for_each(|v| *v = 0.7),
                3 => x.iter_mut().for_each(|v| *v = 0.0),
                _ => {}
            }
            let (mut ls, mut reference) = ([0u8; 18], [0u8; 18]);
            quantize_q4_0_least_squares(&x, &mut ls);
            (t.from_float)(&x, &mut reference);
            let err = |b: &[u8]| {
                let mut y = [0f32; 32];
                (t.to_float)(b, &mut y);
                x.iter()
                    .zip(&y)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum::<f64>()
            };
            let (e_ls, e_ref) = (err(&ls), err(&reference));
            assert!(
                e_ls <= e_ref * (1.0 + 1e-6) + 1e-12,
                "case {case}: {e_ls} > {e_ref}"
            );
            total_ls += e_ls;
            total_ref += e_ref;
        }
        assert!(total_ls < 0.99 * total_ref, "{total_ls} vs {total_ref}");
        eprintln!("squared error: least squares {total_ls:.1}, reference {total_ref:.1}");
    }

    #[test]
    fn names_round_trip_and_bad_names_say_what_is_expected() {
        for t in KvType::ALL {
            assert_eq!(KvType::parse(t.name()).unwrap(), t);
            assert_eq!(KvType::parse(&t.name().to_uppercase()).unwrap(), t);
        }
        for bad in ["", "q8", "q4_1", "f64", "q8_0 "] {
            let e = KvType::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("q8_0, or q4_0") || e.contains("q8_0 or q4_0"),
                "{e}"
            );
        }
    }

    #[test]
    fn row_bytes_by_type() {
        assert_eq!(KvType::F16.row_bytes(64), Some(128));
        assert_eq!(KvType::F32.row_bytes(64), Some(256));
        assert_eq!(KvType::Q8_0.row_bytes(64), Some(68));
        assert_eq!(KvType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(KvType::Q8_0.row_bytes(48), None);
        assert!(check_types([KvType::Q4_0, KvType::F16], 80, 80).is_err());
        assert!(check_types([KvType::F16, KvType::Q8_0], 80, 64).is_ok());
    }
}
