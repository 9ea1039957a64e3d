//! Key/value storage of the attention cache.
//!
//! Keys and values are stored head-major, `[layer][kv_head][slot][head_dim]`, so that the rows
//! one head attends to lie one after another and are read in runs; in the context's region
//! (`runtime/src/memory.rs`). K and V each have their own element type: f16 (the default), f32,
//! or the GGML block formats Q8_0 and Q4_0, which quantize each head's row in blocks of 32 (so
//! the head dimension must be a multiple of 32). A key is rotated once, when it enters the
//! arena, and quantized then; it is never touched again, so a quantized cache streams through
//! sinks and window as an f16 one does. A Q4_0 key row also keeps its largest RoPE pairs exact
//! beside its blocks (`KeyPairs`). This module only stores and reads rows; which slot a
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
    /// The exact pairs of each key row of a Q4_0 key cache, `[layer][kv_head][slot]` rows of
    /// [`PAIR_BYTES`] per pair ([`KvStore::write`]); empty otherwise.
    pairs: &'b mut [u8],
    /// Exact pairs per key row (0 without them) and how RoPE pairs a head's channels.
    n_pairs: usize,
    adjacent: bool,
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
        key_pairs: KeyPairs,
    ) -> (Self, [Range<usize>; 4]) {
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
        let n_pairs = key_pairs.n;
        let (pairs, rp) = c.take::<u8>(n_layer * n_head_kv * n_slots * n_pairs * PAIR_BYTES);
        let kv = KvStore {
            n_slots,
            k_dim,
            v_dim,
            n_head_kv,
            k,
            v,
            angles,
            pairs,
            n_pairs,
            adjacent: key_pairs.adjacent,
        };
        (kv, [rk, rv, ra, rp])
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
    /// `layer`, quantizing them for a quantized cache. With exact pairs, each key row's
    /// [`KeyPairs::n`] RoPE pairs of largest energy (`k_a² + k_b²`) are stored as f16 beside
    /// the row, and the row's blocks hold the key with those channels zeroed.
    pub(crate) fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        let (n, h) = (self.n_slots, self.n_head_kv);
        debug_assert!(slot < n && k.len() == h * self.k_dim && v.len() == h * self.v_dim);
        let pb = self.n_pairs * PAIR_BYTES;
        for i in 0..h {
            let row = (layer * h + i) * n + slot;
            let key = &k[i * self.k_dim..][..self.k_dim];
            if pb > 0 {
                let kp = KeyPairs {
                    n: self.n_pairs,
                    adjacent: self.adjacent,
                };
                let mut zeroed = [usize::MAX; 2 * MAX_PAIRS];
                kp.split(key, &mut self.pairs[row * pb..][..pb], &mut zeroed);
                store_without(&mut self.k, row, self.k_dim, key, &zeroed);
            } else {
                store(&mut self.k, row, self.k_dim, key);
            }
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

    /// The exact pairs of `layer`'s key rows (row `h * n_slots + slot` at byte `row * n *
    /// PAIR_BYTES`), `None` when the key cache keeps none.
    pub(crate) fn key_pairs(&self, layer: usize) -> Option<(KeyPairs, &[u8])> {
        let rb = self.n_pairs * PAIR_BYTES;
        let rows = self.n_head_kv * self.n_slots;
        (rb > 0).then(|| {
            let kp = KeyPairs {
                n: self.n_pairs,
                adjacent: self.adjacent,
            };
            (kp, &self.pairs[layer * rows * rb..][..rows * rb])
        })
    }
}

/// Bytes one exact pair takes beside its key row: its index (one byte, before the row's values)
/// and its two values as f16.
pub(crate) const PAIR_BYTES: usize = 5;
/// Most exact pairs a key row keeps.
pub(crate) const MAX_PAIRS: usize = 8;
/// Largest head a key cache with exact pairs takes (pair indices are one byte).
const MAX_PAIRED_HEAD: usize = 512;

/// How a Q4_0 key cache keeps the RoPE pairs of largest energy of each key row exact, beside the
/// row's blocks.
///
/// Keys of models without key biases (SmolLM2, Gemma 3) still carry a few channel pairs far
/// larger than the rest, after smoothing and RoPE, and which pair varies from token to token.
/// Rotated into the blocks (`crate::ops::hadamard`) such a pair spreads over the whole row and
/// sets every block's scale; kept apart, the blocks hold the rest with 16 levels to spare. One
/// pair per 64 channels (5 bytes beside a Q4_0 row's 36) took Hamlet's 16k-token stream
/// through 4 sinks + 252 with Q4_0 keys and values from +5.3 % over f16 to +3.7 % on SmolLM2,
/// from +5.1 % to +2.8 % on Gemma 3 (four pairs per 256-channel head) and from +1.7 % to +1.5 %
/// on Qwen2.5 (README, "Quantized K/V").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPairs {
    /// Exact pairs per key row; 0 for none.
    pub n: usize,
    /// Whether RoPE pairs adjacent channels `(2j, 2j + 1)`, else `(j, j + head_dim / 2)`.
    pub adjacent: bool,
}

impl KeyPairs {
    /// The pairs a key cache of type `ty` keeps for heads of `head_dim` channels: one per 64
    /// channels for Q4_0 keys (at least 1, at most 8), none for other types.
    pub(crate) fn for_keys(ty: KvType, head_dim: usize, adjacent: bool) -> KeyPairs {
        let n = if ty == KvType::Q4_0 {
            (head_dim / 64).clamp(1, MAX_PAIRS)
        } else {
            0
        };
        KeyPairs { n, adjacent }
    }

    /// The two channels of pair `j` of a head of `dim` channels (`j` taken below `dim / 2`,
    /// so that damaged data reads a wrong channel, never out of bounds).
    #[inline]
    pub(crate) fn channels(self, j: usize, dim: usize) -> (usize, usize) {
        let half = dim / 2;
        let j = j.min(half.saturating_sub(1));
        if self.adjacent {
            (2 * j, 2 * j + 1)
        } else {
            (j, j + half)
        }
    }

    /// The pairs stored in `row` (`n * PAIR_BYTES` bytes) of a head of `dim` channels: channels
    /// `a`, `b` and their values.
    #[inline]
    pub(crate) fn read(
        self,
        row: &[u8],
        dim: usize,
    ) -> impl Iterator<Item = ((usize, usize), (f32, f32))> + '_ {
        let (idx, vals) = row.split_at(self.n);
        idx.iter().zip(vals.chunks_exact(4)).map(move |(&j, v)| {
            let a = half_to_f32(u16::from_le_bytes([v[0], v[1]]));
            let b = half_to_f32(u16::from_le_bytes([v[2], v[3]]));
            (self.channels(usize::from(j), dim), (a, b))
        })
    }

    /// Whether every pair index in `rows` (rows of `n * PAIR_BYTES` bytes) names a pair of a
    /// head of `dim` channels: what a restored state is checked for.
    pub(crate) fn valid(self, rows: &[u8], dim: usize) -> bool {
        let rb = self.n * PAIR_BYTES;
        rb == 0
            || rows
                .chunks_exact(rb)
                .all(|r| r[..self.n].iter().all(|&j| usize::from(j) < dim / 2))
    }

    /// Picks the `n` pairs of largest energy of `key` (the first of equals), writes them to
    /// `out` and their channels to `zeroed`.
    fn split(self, key: &[f32], out: &mut [u8], zeroed: &mut [usize; 2 * MAX_PAIRS]) {
        let dim = key.len();
        // The n largest energies, largest first.
        let mut top = [(usize::MAX, f32::NEG_INFINITY); MAX_PAIRS];
        let top = &mut top[..self.n];
        for j in 0..dim / 2 {
            let (a, b) = self.channels(j, dim);
            let e = key[a] * key[a] + key[b] * key[b];
            if let Some(at) = top.iter().position(|&(_, t)| e > t) {
                top.copy_within(at..top.len() - 1, at + 1);
                top[at] = (j, e);
            }
        }
        let (idx, vals) = out.split_at_mut(self.n);
        for ((p, (j, _)), (i, v)) in top
            .iter()
            .enumerate()
            .zip(idx.iter_mut().zip(vals.chunks_exact_mut(4)))
        {
            // Fewer pairs than asked (energies of NaN): pair 0 stands in.
            let j = if *j == usize::MAX { 0 } else { *j };
            let (a, b) = self.channels(j, dim);
            *i = j as u8;
            v[..2].copy_from_slice(&f16::from_f32(key[a]).to_le_bytes());
            v[2..].copy_from_slice(&f16::from_f32(key[b]).to_le_bytes());
            zeroed[2 * p] = a;
            zeroed[2 * p + 1] = b;
        }
    }
}

/// An f16 (its bits) as f32, exactly, in a few integer operations: attention widens every
/// key's pairs per score run, where a call through the `half` crate's runtime dispatch cost
/// more than the rest of the pair's work. Magnitudes below infinity move their exponent and
/// mantissa into place and are multiplied by 2^112 (the difference of the exponent biases),
/// which is exact for subnormals too; infinities and NaNs keep their payload.
#[inline]
pub(crate) fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let mag = u32::from(h & 0x7fff);
    let v = if mag >= 0x7c00 {
        f32::from_bits(0x7f80_0000 | ((mag & 0x3ff) << 13))
    } else {
        f32::from_bits(mag << 13) * f32::from_bits(0x7780_0000)
    };
    f32::from_bits(v.to_bits() | sign)
}

/// Checks that `types` can hold rows of `k_dim` keys and `v_dim` values.
pub(crate) fn check_types(types: [KvType; 2], k_dim: usize, v_dim: usize) -> Result<()> {
    if types[0] == KvType::Q4_0 && k_dim > MAX_PAIRED_HEAD {
        return Err(Error::InvalidParam(format!(
            "a q4_0 K cache takes heads of at most {MAX_PAIRED_HEAD} values, and this model's K \
             heads have {k_dim}"
        )));
    }
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
        store_without(e, row, dim, src, &[]);
    } else {
        store_at(e, row * dim, &src[..dim]);
    }
}

/// [`store`] of a quantized row with the channels in `zeroed` (indices; `usize::MAX` for
/// none) taken as 0.
fn store_without(e: &mut Elems<'_>, row: usize, dim: usize, src: &[f32], zeroed: &[usize]) {
    let mut rotated = [0f32; HADAMARD_MAX];
    for (c, r) in src.chunks(HADAMARD_MAX).zip(0..) {
        let buf = &mut rotated[..c.len()];
        buf.copy_from_slice(c);
        let first = r * HADAMARD_MAX;
        for &z in zeroed {
            if let Some(x) = z.checked_sub(first).and_then(|i| buf.get_mut(i)) {
                *x = 0.0;
            }
        }
        crate::ops::hadamard(buf);
        store_at(e, row * dim + first, buf);
    }
}

/// Writes `src` at value `at` of `e` (for a quantized cache, both whole blocks of 32).
fn store_at(e: &mut Elems<'_>, at: usize, src: &[f32]) {
    match e {
        // The dispatched conversion (F16C on x86): `half`'s slice conversion, which detects
        // the CPU on every call, was 0.4 % of a SmolLM2 token.
        Elems::F16(v) => {
            eddy_quant::f32ops::f32_to_f16(src, bytemuck::cast_slice_mut(&mut v[at..][..src.len()]))
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

    /// Uniform values in [−1, 1) from a linear congruential generator seeded with `seed`.
    fn uniform(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// The cache's Q4_0 writer against ggml's reference quantizer, block by block: never a
    /// larger squared error (random blocks, blocks with one outlier, constant and zero blocks),
    /// and a smaller one in total.
    #[test]
    fn q4_0_least_squares_beats_the_reference() {
        let t = eddy_quant::type_traits(GgmlType::Q4_0).unwrap();
        let mut rnd = uniform(12345u64);
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

    /// A Q4_0 key row with one pair far larger than the rest (as SmolLM2's and Gemma's keys
    /// have): the pair comes back exactly as f16, the blocks hold the row with its channels
    /// zeroed, and the key's reconstruction error is far below that of the same row quantized
    /// whole. Damaged pair indices are refused by `valid` and read in bounds.
    #[test]
    fn q4_0_keys_keep_their_largest_pair_exact() {
        let (dim, slots) = (64, 3);
        let mut rnd = uniform(99u64);
        let ops = eddy_quant::f32ops::ops();
        for adjacent in [false, true] {
            let kp = KeyPairs::for_keys(KvType::Q4_0, dim, adjacent);
            assert_eq!(kp.n, 1);
            let (a, b) = kp.channels(11, dim);
            assert_eq!((a, b), if adjacent { (22, 23) } else { (11, 43) });
            let mut key: Vec<f32> = (0..dim).map(|_| rnd() + rnd()).collect();
            (key[a], key[b]) = (40.0, -30.5);
            let value = vec![0.5f32; 32];
            // Reconstruction error of slot 0's key with `pairs`, and what the pairs hold.
            let err_with = |pairs: KeyPairs| {
                fn geometry<'b>(
                    c: &mut Carver<'b>,
                    p: KeyPairs,
                ) -> (KvStore<'b>, [Range<usize>; 4]) {
                    KvStore::carve(c, [KvType::Q4_0, KvType::F16], 1, 3, 64, 32, 1, 0, p)
                }
                let mut c = Carver::measure();
                geometry(&mut c, pairs);
                let mut region = crate::memory::Region::owned(c.used()).unwrap();
                let (mut kv, ranges) = geometry(&mut Carver::over(region.bytes_mut()), pairs);
                assert_eq!(ranges[3].len(), slots * pairs.n * PAIR_BYTES);
                kv.write(0, 0, &key, &value);
                let mut got = vec![0f32; dim];
                kv.keys(0).row_f32(0, &mut got, ops);
                crate::ops::hadamard_chunks(&mut got);
                let mut stored = Vec::new();
                if let Some((kp, bytes)) = kv.key_pairs(0) {
                    assert!(kp.valid(bytes, dim));
                    for ((a, b), (ka, kb)) in kp.read(&bytes[..kp.n * PAIR_BYTES], dim) {
                        // The blocks hold nothing of the pair's channels.
                        assert!(got[a].abs() < 0.3 && got[b].abs() < 0.3, "{got:?}");
                        (got[a], got[b]) = (ka, kb);
                        stored.push(((a, b), (ka, kb)));
                    }
                }
                let err = key
                    .iter()
                    .zip(&got)
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f32>();
                (err, stored)
            };
            let (with, stored) = err_with(kp);
            assert_eq!(stored, [((a, b), (40.0, -30.5))]);
            let (whole, none) = err_with(KeyPairs::default());
            assert!(none.is_empty());
            assert!(with < whole / 10.0, "{with} vs {whole}");
            eprintln!(
                "adjacent {adjacent}: squared error {with:.4} with the pair, {whole:.4} without"
            );
        }
        // A pair index past the head is refused, and still read in bounds.
        let kp = KeyPairs::for_keys(KvType::Q4_0, dim, false);
        let mut row = [0u8; PAIR_BYTES];
        row[0] = (dim / 2) as u8;
        assert!(!kp.valid(&row, dim));
        let ((a, b), _) = kp.read(&row, dim).next().unwrap();
        assert!(a < dim && b < dim);
        row[0] = (dim / 2 - 1) as u8;
        assert!(kp.valid(&row, dim));
        assert_eq!(KeyPairs::for_keys(KvType::Q4_0, 256, false).n, 4);
        assert_eq!(KeyPairs::for_keys(KvType::Q8_0, 256, false).n, 0);
    }

    /// [`half_to_f32`] against the `half` crate for all 65536 bit patterns.
    #[test]
    fn half_to_f32_is_exact_for_every_f16() {
        for h in 0..=u16::MAX {
            let (got, want) = (half_to_f32(h), f16::from_bits(h).to_f32());
            if want.is_nan() {
                assert!(got.is_nan() && got.is_sign_negative() == want.is_sign_negative());
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
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
