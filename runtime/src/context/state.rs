//! Saving and restoring a context's stream: position, the K/V of the slots in use and the
//! last logits, behind a header that says which model and arena geometry they belong to.
//!
//! Format (little-endian): a 72-byte header — magic `EDDYSTAT`, format version, K/V type, the
//! model's fingerprint, layer count, sinks, window, ring size, K row, V row, position, logit
//! rows, vocabulary size, checksum of the data — then for each layer and KV head the K rows of
//! the slots in use, the same for V, the slots' RoPE angles where the key cache keeps them (Q4_0
//! keys of a model with key biases), the exact pairs of the K rows in use where it keeps them
//! (Q4_0 keys), then the logits. Loading treats the bytes as untrusted.

use std::ops::{Deref, Range};

use super::Context;
use crate::error::{Error, Result};
use crate::kv::{KvType, PAIR_BYTES};
use crate::model::Model;

const STATE_MAGIC: [u8; 8] = *b"EDDYSTAT";
/// 3: the K and V types in bytes 12 and 13 (2 had one type for both in the word at 12).
/// 4: Q4_0 keys are stored smoothed (`model::key_smoothing`).
/// 5: Q4_0 keys of models with key biases are stored without them, and the angles of the slots
/// in use follow the V rows (`KvStore::write_angles`).
/// 6: Q4_0 key rows keep exact pairs (`kv::KeyPairs`), which follow the angles.
const STATE_VERSION: u32 = 6;
/// Magic, version, K/V type, model fingerprint, geometry, position, logit rows, vocabulary,
/// checksum.
const STATE_HEADER: usize = 72;

/// A 64-bit checksum of the state's data (FNV-1a over 8-byte words): catches truncation and
/// damage, not deliberate forgery (a state is as trusted as the memory it came from).
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().unwrap_or_default());
        h = (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ data.len() as u64
}

impl<'a, M: Deref<Target = Model>> Context<'a, M> {
    /// Bytes [`Context::save_state`] writes for the current state: a header, the K and V of
    /// the slots in use, and the logits of the last decode.
    pub fn state_size(&self) -> usize {
        STATE_HEADER + self.state_payload()
    }

    /// Bytes of one head's row in the K (`which` 0) or V (1) cache.
    fn head_bytes(&self, which: usize) -> usize {
        let sh = &self.shape;
        let dim = [sh.head_dim, sh.head_dim_v][which];
        // The types were checked against the head dimensions when the context was made.
        sh.kv_types[which].row_bytes(dim).unwrap_or(0)
    }

    fn slots_in_use(&self) -> usize {
        self.n_seen.min(self.shape.n_slots as u64) as usize
    }

    /// Bytes of one slot's angles (0 when the cache keeps none); the table holds
    /// `angle_bytes / 4` rows of `n_slots` f32s.
    fn angle_bytes(&self) -> usize {
        self.marks.angles.len() / self.shape.n_slots.max(1)
    }

    /// Bytes of one key row's exact pairs (0 when the cache keeps none).
    fn pair_bytes(&self) -> usize {
        self.shape.key_pairs.n * PAIR_BYTES
    }

    /// Where the pairs sit in the payload: after the K and V rows and the angles.
    fn pairs_in_payload(&self) -> Range<usize> {
        let sh = &self.shape;
        let (used, heads) = (self.slots_in_use(), sh.n_layer * sh.n_head_kv);
        let start =
            heads * used * (self.head_bytes(0) + self.head_bytes(1)) + used * self.angle_bytes();
        start..start + heads * used * self.pair_bytes()
    }

    fn state_payload(&self) -> usize {
        self.pairs_in_payload().end + self.n_logits * self.shape.n_vocab * size_of::<f32>()
    }

    /// Writes the stream's state (position, K/V arena, last logits) into `out`, which must hold
    /// [`Context::state_size`] bytes; returns the bytes written. A context of the same model and
    /// the same arena geometry can continue the stream from it with [`Context::load_state`].
    /// Allocates nothing.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize> {
        let need = self.state_size();
        if out.len() < need {
            return Err(Error::BufferTooSmall {
                needed: need,
                got: out.len(),
            });
        }
        let (head, body) = out[..need].split_at_mut(STATE_HEADER);
        let mut at = 0;
        for chunk in self.state_chunks() {
            body[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        let h = self.state_header(checksum(body));
        head.copy_from_slice(&h);
        Ok(need)
    }

    /// Continues the stream saved by [`Context::save_state`]. The bytes are untrusted: the
    /// header must match this context (model fingerprint, arena geometry, K/V type, logit rows),
    /// the length must be exact and the checksum must agree; otherwise [`Error::State`] says
    /// what differs and the context is unchanged. Allocates nothing.
    pub fn load_state(&mut self, data: &[u8]) -> Result<()> {
        let bad = |what: String| Err(Error::State(what));
        if data.len() < STATE_HEADER {
            return bad(format!(
                "{} bytes is shorter than the {STATE_HEADER}-byte header",
                data.len()
            ));
        }
        let (head, body) = data.split_at(STATE_HEADER);
        let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or_default());
        if head[..8] != STATE_MAGIC {
            return bad("not an Eddy context state (bad magic)".into());
        }
        if u32_at(8) != STATE_VERSION {
            return bad(format!(
                "format version {} (this build reads {STATE_VERSION})",
                u32_at(8)
            ));
        }
        let n_seen = u64_at(48);
        // Far beyond any real stream, and leaves room for positions to grow without overflow.
        if n_seen > 1 << 53 {
            return bad(format!("position {n_seen} is beyond 2^53 tokens"));
        }
        let n_logits = u32_at(56) as usize;
        // Compare the header with the one this context would write for the same position.
        let (saved_seen, saved_logits) = (self.n_seen, self.n_logits);
        self.n_seen = n_seen;
        self.n_logits = n_logits;
        let want = self.state_header(u64_at(STATE_HEADER - 8));
        let payload = self.state_payload();
        let pairs = self.pairs_in_payload();
        self.n_seen = saved_seen;
        self.n_logits = saved_logits;
        let names = [
            (12, "K/V type"),
            (16, "model fingerprint"),
            (24, "layer count"),
            (28, "sink count"),
            (32, "window"),
            (36, "ring size"),
            (40, "K row"),
            (44, "V row"),
            (60, "vocabulary size"),
        ];
        for (at, name) in names {
            let len = if at == 16 { 8 } else { 4 };
            if at == 12 && head[at..at + len] != want[at..at + len] {
                let types = |h: &[u8]| {
                    let name = |c: u8| KvType::ALL.get(usize::from(c)).map_or("?", |t| t.name());
                    format!("K {} and V {}", name(h[12]), name(h[13]))
                };
                return bad(format!(
                    "{name} differs: the state holds {}, this context {}",
                    types(head),
                    types(&want)
                ));
            }
            if head[at..at + len] != want[at..at + len] {
                return bad(format!(
                    "{name} differs from this context's (saved {:?}, here {:?})",
                    &head[at..at + len],
                    &want[at..at + len]
                ));
            }
        }
        let max_rows = self.shape.logit_rows as u64;
        if n_logits as u64 > max_rows.min(n_seen) {
            return bad(format!(
                "{n_logits} rows of logits after {n_seen} tokens (this context keeps at most {max_rows})"
            ));
        }
        if body.len() != payload {
            return bad(format!(
                "{} bytes of data, expected {payload} for {n_seen} tokens",
                body.len()
            ));
        }
        if checksum(body) != u64_at(STATE_HEADER - 8) {
            return bad("checksum mismatch: the data is damaged".into());
        }
        if !self
            .shape
            .key_pairs
            .valid(&body[pairs], self.shape.head_dim)
        {
            return bad("a key row's exact pair names a channel past its head".into());
        }
        self.n_seen = n_seen;
        self.n_logits = n_logits;
        let mut at = 0;
        for chunk in self.state_chunks_mut() {
            chunk.copy_from_slice(&body[at..at + chunk.len()]);
            at += chunk.len();
        }
        Ok(())
    }

    fn state_header(&self, sum: u64) -> [u8; STATE_HEADER] {
        let sh = &self.shape;
        let mut h = [0u8; STATE_HEADER];
        let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
        put(0, &STATE_MAGIC);
        put(8, &STATE_VERSION.to_le_bytes());
        // The K type in byte 12, the V type in byte 13 (the order of `KvType::ALL`).
        put(
            12,
            &[kv_code(sh.kv_types[0]), kv_code(sh.kv_types[1]), 0, 0],
        );
        put(16, &self.model.fingerprint().to_le_bytes());
        let geometry = [
            sh.n_layer,
            self.layout.n_sink,
            self.layout.n_window,
            self.layout.n_ring,
            sh.k_row,
            sh.v_row,
        ];
        for (i, g) in geometry.into_iter().enumerate() {
            put(24 + 4 * i, &(g as u32).to_le_bytes());
        }
        put(48, &self.n_seen.to_le_bytes());
        put(56, &(self.n_logits as u32).to_le_bytes());
        put(60, &(sh.n_vocab as u32).to_le_bytes());
        put(64, &sum.to_le_bytes());
        h
    }

    /// Byte ranges of the region that make up the state, in order: for each layer and KV head
    /// the K rows of the slots in use, then the same for V, the angles rows, the key rows' pairs
    /// as the K rows, then the logits rows.
    fn state_ranges(&self) -> impl Iterator<Item = Range<usize>> + use<'a, M> {
        let sh = self.shape;
        let used = self.slots_in_use();
        let (k0, v0) = (self.marks.k.start, self.marks.v.start);
        let heads = sh.n_layer * sh.n_head_kv;
        let lay = move |base: usize, row_bytes: usize| {
            (0..heads).map(move |lh| {
                let s = base + lh * sh.n_slots * row_bytes;
                s..s + used * row_bytes
            })
        };
        let logits = self.marks.logits.start;
        let logit_bytes = self.n_logits * sh.n_vocab * size_of::<f32>();
        let a0 = self.marks.angles.start;
        let angle_rows = (0..self.angle_bytes() / size_of::<f32>()).map(move |r| {
            let s = a0 + r * sh.n_slots * size_of::<f32>();
            s..s + used * size_of::<f32>()
        });
        lay(k0, self.head_bytes(0))
            .chain(lay(v0, self.head_bytes(1)))
            .chain(angle_rows)
            .chain(lay(self.marks.pairs.start, self.pair_bytes()))
            .chain(std::iter::once(logits..logits + logit_bytes))
    }

    fn state_chunks(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.region.bytes();
        self.state_ranges().map(move |r| &bytes[r])
    }

    fn state_chunks_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        let ranges = self.state_ranges();
        let mut rest: &mut [u8] = self.region.bytes_mut();
        let mut base = 0;
        ranges.map(move |r| {
            let tail = std::mem::take(&mut rest);
            let (_, tail) = tail.split_at_mut(r.start - base);
            let (mine, tail) = tail.split_at_mut(r.len());
            rest = tail;
            base = r.end;
            mine
        })
    }
}

/// The state header's code of a cache type: its index in [`KvType::ALL`].
fn kv_code(t: KvType) -> u8 {
    KvType::ALL.iter().position(|&x| x == t).unwrap_or(0) as u8
}
