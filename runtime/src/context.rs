//! A context: one stream of tokens through a model, with every buffer it needs allocated once.
//!
//! [`Context::new`] sizes and allocates the KV cache, the activation scratch and the logits;
//! [`Context::decode`] then runs the forward pass over a batch of tokens without allocating.
//! The forward pass reads like the model: embed → for each block (norm → attention → residual →
//! norm → FFN → residual) → final norm → logits. A batch is processed layer by layer, and each
//! token's arithmetic is exactly what it would be if the tokens came one at a time, so batched
//! prefill and token-by-token decoding give bit-identical logits.

use std::ops::{Deref, Range};

use crate::arena::ArenaLayout;
use crate::error::{Error, Result};
use crate::kv::{KvStore, KvType};
use crate::linalg::{self, Activations};
use crate::memory::{Carver, Region};
use crate::model::{Activation, Model, RopeStyle};
use crate::ops;
use crate::threads::{SharedOut, ThreadPool};

/// Parameters of a context.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextParams {
    /// Attention-sink slots: the first tokens of the stream, kept for ever (StreamingLLM: 4).
    pub n_sink: usize,
    /// Recent tokens a query sees besides the sinks (0 = the model's trained context, capped at
    /// 4096, minus the sinks). Older tokens are evicted from the ring; the stream never ends.
    pub n_window: usize,
    /// Most tokens one `decode` call takes.
    pub n_batch: usize,
    /// Tokens processed together inside a `decode` call; the ring keeps `n_ubatch - 1` slack
    /// slots so that batched and token-by-token processing see the same window.
    pub n_ubatch: usize,
    /// K/V element type.
    pub kv_type: KvType,
    /// Keep logits for every token of a batch (needed for perplexity and teacher forcing);
    /// otherwise only for the last one.
    pub logits_all: bool,
    /// Threads of the context's pool, the calling thread included (they claim chunks of rows
    /// whose arithmetic does not depend on who computes them: logits are bit-identical for any
    /// count).
    pub n_threads: usize,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams {
            n_sink: 4,
            n_window: 0,
            n_batch: 512,
            n_ubatch: 32,
            kv_type: KvType::F16,
            logits_all: false,
            n_threads: 1,
        }
    }
}

/// Sizes of every buffer, from the model and the resolved parameters.
#[derive(Clone, Copy, Debug)]
struct Shape {
    n_embd: usize,
    n_ubatch: usize,
    q_width: usize,
    att_width: usize,
    head_dim: usize,
    head_dim_v: usize,
    group: usize,
    n_head_kv: usize,
    half_rot: usize,
    n_ff: usize,
    n_layer: usize,
    n_slots: usize,
    k_row: usize,
    v_row: usize,
    kv_type: KvType,
    logit_rows: usize,
    n_vocab: usize,
    n_threads: usize,
}

impl Shape {
    fn new(model: &Model, p: &ContextParams) -> Shape {
        let hp = model.hparams();
        let layout = ArenaLayout::new(p.n_sink, p.n_window, p.n_ubatch);
        Shape {
            n_embd: hp.n_embd,
            n_ubatch: p.n_ubatch,
            q_width: hp.n_head * hp.head_dim,
            att_width: hp.n_head * hp.head_dim_v,
            head_dim: hp.head_dim,
            head_dim_v: hp.head_dim_v,
            group: hp.n_head / hp.n_head_kv,
            n_head_kv: hp.n_head_kv,
            half_rot: hp.rope_dim / 2,
            n_ff: hp.n_ff,
            n_layer: hp.n_layer,
            n_slots: layout.n_slots(),
            k_row: hp.n_head_kv * hp.head_dim,
            v_row: hp.n_head_kv * hp.head_dim_v,
            kv_type: p.kv_type,
            logit_rows: if p.logits_all { p.n_batch } else { 1 },
            n_vocab: hp.n_vocab,
            n_threads: p.n_threads,
        }
    }
}

/// The buffers of one decode call: views of the context's region, laid out by [`Bufs::carve`].
#[derive(Debug)]
struct Bufs<'b> {
    /// Residual stream, `[n_ubatch][n_embd]`.
    x: &'b mut [f32],
    /// Normed input of a sub-layer, `[n_ubatch][n_embd]`.
    xb: &'b mut [f32],
    /// Queries, `[n_ubatch][n_head * head_dim]`.
    q: &'b mut [f32],
    /// Keys and values of the micro-batch before they enter the cache, `[n_ubatch][row]`.
    k: &'b mut [f32],
    v: &'b mut [f32],
    /// Attention output, `[n_ubatch][n_head * head_dim_v]`.
    att: &'b mut [f32],
    /// Attention scores of the query heads of one KV group, `[n_threads][group][n_slots]`.
    scores: &'b mut [f32],
    /// A run of up to `KV_RUN` key or value rows of one head as f32, per worker.
    kv_row: &'b mut [f32],
    /// The query heads of one KV group rotated to their cache position, for the sink keys
    /// (per worker).
    q_sink: &'b mut [f32],
    /// RoPE angles of the extra rotation of the query for the sinks (per worker).
    cos_sink: &'b mut [f32],
    sin_sink: &'b mut [f32],
    /// Output of a projection back to the residual width, `[n_ubatch][n_embd]`.
    proj: &'b mut [f32],
    /// FFN gate and up, `[n_ubatch][n_ff]` each.
    gate: &'b mut [f32],
    up: &'b mut [f32],
    /// RoPE angles of one position.
    cos: &'b mut [f32],
    sin: &'b mut [f32],
    /// Quantized copies of the current input vector, one per activation format.
    act: Activations<'b>,
    /// The arena's keys and values.
    kv: KvStore<'b>,
    /// `[logit_rows][n_vocab]`.
    logits: &'b mut [f32],
}

/// Where the buffers that outlive a decode call sit in the region, and its size.
#[derive(Clone, Debug)]
struct Marks {
    k: Range<usize>,
    v: Range<usize>,
    logits: Range<usize>,
    total: usize,
}

impl<'b> Bufs<'b> {
    /// The one layout of a context's region (see [`crate::memory`]).
    fn carve(sh: &Shape, c: &mut Carver<'b>) -> (Bufs<'b>, [Range<usize>; 3]) {
        let ub = sh.n_ubatch;
        let widest = sh.n_embd.max(sh.n_ff).max(sh.att_width);
        let (kv, k_range, v_range) = KvStore::carve(
            c,
            sh.kv_type,
            sh.n_layer,
            sh.n_slots,
            sh.k_row,
            sh.v_row,
            sh.n_head_kv,
        );
        let (logits, logits_range) = c.take(sh.logit_rows * sh.n_vocab);
        let bufs = Bufs {
            x: c.slice(ub * sh.n_embd),
            xb: c.slice(ub * sh.n_embd),
            q: c.slice(ub * sh.q_width),
            k: c.slice(ub * sh.k_row),
            v: c.slice(ub * sh.v_row),
            att: c.slice(ub * sh.att_width),
            scores: c.slice(sh.n_threads * sh.group * sh.n_slots),
            q_sink: c.slice(sh.n_threads * sh.group * sh.head_dim),
            kv_row: c.slice(sh.n_threads * KV_RUN * sh.head_dim.max(sh.head_dim_v)),
            cos_sink: c.slice(sh.n_threads * sh.half_rot),
            sin_sink: c.slice(sh.n_threads * sh.half_rot),
            proj: c.slice(ub * sh.n_embd),
            gate: c.slice(ub * sh.n_ff),
            up: c.slice(ub * sh.n_ff),
            cos: c.slice(sh.half_rot),
            sin: c.slice(sh.half_rot),
            act: Activations::carve(c, widest, ub, sh.n_threads),
            kv,
            logits,
        };
        (bufs, [k_range, v_range, logits_range])
    }

    /// The layout measured, without memory.
    fn plan(sh: &Shape) -> Marks {
        let mut c = Carver::measure();
        let (_, [k, v, logits]) = Bufs::carve(sh, &mut c);
        Marks {
            k,
            v,
            logits,
            total: c.used(),
        }
    }
}

const STATE_MAGIC: [u8; 8] = *b"EDDYSTAT";
const STATE_VERSION: u32 = 2;
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

/// Cached rows of one head widened to f32 per call in attention.
const KV_RUN: usize = 32;

/// Alignment the memory given to [`Context::new_in`] must have.
pub const ALIGN: usize = crate::memory::ALIGN;

/// One stream of tokens through a model. `M` is how the context holds the model: `&Model` or
/// `Arc<Model>`; `'a` is the lifetime of the memory it lives in (`'static` when it allocated
/// that memory itself).
#[derive(Debug)]
pub struct Context<'a, M: Deref<Target = Model>> {
    model: M,
    params: ContextParams,
    shape: Shape,
    marks: Marks,
    /// Every buffer: the KV arena, activations, logits.
    region: Region<'a>,
    /// Sink + ring geometry of the KV arena.
    layout: ArenaLayout,
    /// Tokens streamed so far (the next token's absolute position).
    n_seen: u64,
    /// Rows of the logits written by the last decode.
    n_logits: usize,
    /// Worker threads for the matrix products.
    pool: ThreadPool,
}

impl<M: Deref<Target = Model>> Context<'static, M> {
    /// A context over `model`, with every buffer allocated now
    /// ([`Context::memory_required`] bytes, plus the worker threads if `n_threads > 1`).
    pub fn new(model: M, params: ContextParams) -> Result<Self> {
        let params = resolve(&model, params)?;
        let shape = Shape::new(&model, &params);
        let marks = Bufs::plan(&shape);
        let region = Region::owned(marks.total)?;
        Self::build(model, params, shape, marks, region)
    }
}

impl<'a, M: Deref<Target = Model>> Context<'a, M> {
    /// A context over `model` whose buffers all live in `mem`, which must hold
    /// [`Context::memory_required`] bytes and start on an [`ALIGN`]-byte boundary (bytes past
    /// that are not touched). Nothing else is allocated, except the worker threads and their
    /// control block when `n_threads > 1`. The memory is zeroed first.
    ///
    /// Errors ([`Error::BufferTooSmall`], [`Error::Misaligned`], invalid parameters) are
    /// reported before `mem` is written.
    pub fn new_in(model: M, params: ContextParams, mem: &'a mut [u8]) -> Result<Self> {
        let params = resolve(&model, params)?;
        let shape = Shape::new(&model, &params);
        let marks = Bufs::plan(&shape);
        let mut region = Region::borrowed(mem, marks.total)?;
        region.bytes_mut().fill(0);
        Self::build(model, params, shape, marks, region)
    }

    fn build(
        model: M,
        params: ContextParams,
        shape: Shape,
        marks: Marks,
        region: Region<'a>,
    ) -> Result<Self> {
        let pool = ThreadPool::new(params.n_threads)
            .map_err(|e| Error::InvalidParam(format!("cannot start threads: {e}")))?;
        Ok(Context {
            layout: ArenaLayout::new(params.n_sink, params.n_window, params.n_ubatch),
            model,
            params,
            shape,
            marks,
            region,
            n_seen: 0,
            n_logits: 0,
            pool,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The parameters in force (with defaults resolved).
    pub fn params(&self) -> &ContextParams {
        &self.params
    }

    /// Tokens streamed through the context so far (the next token's absolute position).
    pub fn n_seen(&self) -> u64 {
        self.n_seen
    }

    /// The arena's geometry.
    pub fn layout(&self) -> ArenaLayout {
        self.layout
    }

    /// Starts a new stream: the next token is at position 0 again, the sinks refill.
    pub fn reset(&mut self) {
        self.n_seen = 0;
        self.n_logits = 0;
    }

    /// Logits of the last token of the last batch (`n_vocab` values).
    pub fn logits(&self) -> &[f32] {
        let n = self.shape.n_vocab;
        let row = self.n_logits.saturating_sub(1);
        &self.all_logits()[row * n..(row + 1) * n]
    }

    fn all_logits(&self) -> &[f32] {
        bytemuck::cast_slice(&self.region.bytes()[self.marks.logits.clone()])
    }

    /// Logits of token `i` of the last batch; only with `logits_all` (else only the last).
    pub fn logits_ith(&self, i: usize) -> Option<&[f32]> {
        let n = self.model.hparams().n_vocab;
        if i >= self.n_logits {
            return None;
        }
        Some(&self.all_logits()[i * n..(i + 1) * n])
    }

    /// Bytes [`Context::save_state`] writes for the current state: a header, the K and V of
    /// the slots in use, and the logits of the last decode.
    pub fn state_size(&self) -> usize {
        STATE_HEADER + self.state_payload()
    }

    fn slots_in_use(&self) -> usize {
        self.n_seen.min(self.shape.n_slots as u64) as usize
    }

    fn state_payload(&self) -> usize {
        let sh = &self.shape;
        let used = self.slots_in_use();
        sh.n_layer * used * (sh.k_row + sh.v_row) * sh.kv_type.size()
            + self.n_logits * sh.n_vocab * size_of::<f32>()
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
        put(12, &(sh.kv_type as u32).to_le_bytes());
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
    /// the K rows of the slots in use, then the same for V, then the logits rows.
    fn state_ranges(&self) -> impl Iterator<Item = Range<usize>> + use<'a, M> {
        let sh = self.shape;
        let used = self.slots_in_use();
        let es = sh.kv_type.size();
        let (k0, v0) = (self.marks.k.start, self.marks.v.start);
        let heads = sh.n_layer * sh.n_head_kv;
        let lay = move |base: usize, row: usize| {
            let dim = row / sh.n_head_kv;
            (0..heads).map(move |lh| {
                let s = base + lh * sh.n_slots * dim * es;
                s..s + used * dim * es
            })
        };
        let logits = self.marks.logits.start;
        let logit_bytes = self.n_logits * sh.n_vocab * size_of::<f32>();
        lay(k0, sh.k_row)
            .chain(lay(v0, sh.v_row))
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

    /// Runs the model over `tokens` (at most `n_batch`), streaming them into the arena.
    ///
    /// On error nothing has changed: the arena and the logits are as they were.
    pub fn decode(&mut self, tokens: &[u32]) -> Result<()> {
        let hp = self.model.hparams();
        let n = tokens.len();
        if n == 0 || n > self.params.n_batch {
            return Err(Error::BatchSize {
                n,
                n_batch: self.params.n_batch,
            });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::InvalidToken {
                id,
                n_vocab: hp.n_vocab,
            });
        }
        let mut row = 0;
        for chunk in tokens.chunks(self.params.n_ubatch) {
            self.forward(chunk, row);
            self.n_seen += chunk.len() as u64;
            row += chunk.len();
        }
        self.n_logits = if self.params.logits_all { n } else { 1 };
        Ok(())
    }

    /// One micro-batch; its logits go to rows `row0..` (all tokens) or row 0 (the last).
    fn forward(&mut self, tokens: &[u32], row0: usize) {
        let model: &Model = &self.model;
        let hp = model.hparams();
        let w = model.weights();
        let norms_all = model.norms();
        let (mut s, _) = Bufs::carve(&self.shape, &mut Carver::over(self.region.bytes_mut()));
        let pool = &self.pool;
        let n = tokens.len();
        let (d, q_width, att_width) = (
            hp.n_embd,
            hp.n_head * hp.head_dim,
            hp.n_head * hp.head_dim_v,
        );
        let group = hp.n_head / hp.n_head_kv;

        // Token embeddings.
        for (t, &tok) in tokens.iter().enumerate() {
            let x = &mut s.x[t * d..(t + 1) * d];
            linalg::embedding_row(model, &w.token_embd, tok as usize, x);
            if hp.embd_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= hp.embd_scale);
            }
        }

        for (l, lw) in w.layers.iter().enumerate() {
            let norms = &norms_all.layers[l];
            // Attention: norm, Q/K/V for the whole micro-batch (one pass over the three
            // weights), per-head norms, RoPE, store K/V.
            let (kr, vr) = (s.kv.k_row(), s.kv.v_row());
            for t in 0..n {
                let xb = &mut s.xb[t * d..(t + 1) * d];
                ops::rms_norm(xb, &s.x[t * d..(t + 1) * d], &norms.attn, hp.rms_eps);
            }
            s.act.set(&s.xb[..n * d], d);
            linalg::matmul(
                model,
                [
                    (&lw.wq, &mut s.q[..n * q_width]),
                    (&lw.wk, &mut s.k[..n * kr]),
                    (&lw.wv, &mut s.v[..n * vr]),
                ],
                &mut s.act,
                pool,
            );
            for t in 0..n {
                let pos = self.n_seen + t as u64;
                let q = &mut s.q[t * q_width..(t + 1) * q_width];
                let k = &mut s.k[t * kr..(t + 1) * kr];
                if let Some(qn) = &norms.q {
                    q.chunks_exact_mut(hp.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, qn, hp.rms_eps));
                }
                if let Some(kn) = &norms.k {
                    k.chunks_exact_mut(hp.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, kn, hp.rms_eps));
                }
                ops::rope_angles(
                    s.cos,
                    s.sin,
                    pos as f64,
                    lw.rope_base,
                    lw.rope_freq_scale,
                    norms_all.rope_factors.as_deref(),
                );
                let adjacent = hp.rope_style == RopeStyle::Adjacent;
                for h in q.chunks_exact_mut(hp.head_dim) {
                    ops::rope_apply(h, s.cos, s.sin, adjacent);
                }
                for h in k.chunks_exact_mut(hp.head_dim) {
                    ops::rope_apply(h, s.cos, s.sin, adjacent);
                }
                let v = &s.v[t * vr..(t + 1) * vr];
                s.kv.write(l, self.layout.slot_of(pos), k, v);
            }
            // Attention over the arena: the sinks (at their cache positions) and the window.
            // Layers with their own sliding window (Gemma 3) see only keys within that text
            // distance, all at true distances. Chunks of (token, KV head) items are claimed by
            // the pool's threads; each item is computed the same way whoever takes it.
            let keys = s.kv.keys(l);
            let values = s.kv.values(l);
            let layout = self.layout;
            let n_seen = self.n_seen;
            let n_slots = self.shape.n_slots;
            let half_rot = self.shape.half_rot;
            let (hd, hdv) = (hp.head_dim, hp.head_dim_v);
            let adjacent = hp.rope_style == RopeStyle::Adjacent;
            let q_all = &*s.q;
            let att_out = SharedOut::new(&mut s.att[..n * att_width]);
            let scratch = [
                SharedOut::new(s.scores),
                SharedOut::new(s.q_sink),
                SharedOut::new(s.cos_sink),
                SharedOut::new(s.sin_sink),
                SharedOut::new(s.kv_row),
            ];
            // One item per (token, KV head): each key and value row is converted to f32 once
            // and used by every query head of the group (grouped-query attention).
            let n_items = n * hp.n_head_kv;
            let fops = eddy_quant::f32ops::ops();
            // Items per chunk: about eight chunks per thread.
            let nt = pool.n_threads();
            let per_chunk = n_items.div_ceil(8 * nt).max(1);
            let attend = |worker: usize, chunk: usize| {
                #[allow(unsafe_code)]
                // SAFETY: each scratch buffer holds one share per worker of the pool (see
                // `Bufs::carve`) and worker `worker` takes only its own; the buffers outlive the
                // region.
                let (scores_buf, q_sink_buf, cos_sink, sin_sink, rows_buf) = unsafe {
                    (
                        scratch[0].range(worker * group * n_slots..(worker + 1) * group * n_slots),
                        scratch[1].range(worker * group * hd..(worker + 1) * group * hd),
                        scratch[2].range(worker * half_rot..(worker + 1) * half_rot),
                        scratch[3].range(worker * half_rot..(worker + 1) * half_rot),
                        scratch[4].range(
                            worker * KV_RUN * hd.max(hdv)..(worker + 1) * KV_RUN * hd.max(hdv),
                        ),
                    )
                };
                let mut angles_for = None;
                for item in chunk * per_chunk..((chunk + 1) * per_chunk).min(n_items) {
                    let (t, kvh) = (item / hp.n_head_kv, item % hp.n_head_kv);
                    let pos = n_seen + t as u64;
                    let view = layout.view(pos);
                    let (n_sinks, first, shift) = match lw.sliding_window {
                        None => (
                            view.n_sink_visible,
                            view.window_first,
                            view.query_pos != pos,
                        ),
                        Some(sw) => {
                            let oldest = (pos + 1).saturating_sub(sw as u64);
                            let sinks = (oldest..view.n_sink_visible as u64).count();
                            (
                                sinks.min(view.n_sink_visible),
                                view.window_first.max(oldest),
                                false,
                            )
                        }
                    };
                    // Sinks visible on a sliding-window layer are the last `n_sinks` of them.
                    let sink_start = view.n_sink_visible - n_sinks;
                    let sink_shift = shift && n_sinks > 0;
                    if sink_shift && angles_for != Some(t) {
                        ops::rope_angles(
                            cos_sink,
                            sin_sink,
                            view.query_pos as f64 - pos as f64,
                            lw.rope_base,
                            lw.rope_freq_scale,
                            norms_all.rope_factors.as_deref(),
                        );
                        angles_for = Some(t);
                    }
                    let span = n_sinks + (pos + 1 - first) as usize;
                    let slot = |i: usize| {
                        if i < n_sinks {
                            sink_start + i
                        } else {
                            layout.slot_of(first + (i - n_sinks) as u64)
                        }
                    };
                    let heads = kvh * group..(kvh + 1) * group;
                    let q_of = |h: usize| &q_all[t * q_width + h * hd..][..hd];
                    if sink_shift {
                        for (j, h) in heads.clone().enumerate() {
                            let qs = &mut q_sink_buf[j * hd..(j + 1) * hd];
                            qs.copy_from_slice(q_of(h));
                            ops::rope_apply(qs, cos_sink, sin_sink, adjacent);
                        }
                    }
                    // Consecutive slots form runs (broken at the sinks/window boundary, where
                    // the query differs, and where the ring wraps); each run is one kernel call.
                    let run_of = |i: usize| {
                        let s0 = slot(i);
                        let mut len = 1;
                        while i + len < span
                            && len < KV_RUN
                            && slot(i + len) == s0 + len
                            && (i + len < n_sinks) == (i < n_sinks)
                        {
                            len += 1;
                        }
                        (s0, len)
                    };
                    let mut i = 0;
                    while i < span {
                        let (s0, len) = run_of(i);
                        let at = (kvh * n_slots + s0) * hd;
                        // A run lies on one side of the sinks/window boundary: one query block.
                        if let (Some(f), Some(k)) =
                            (fops.attn_scores_f16, keys.halves(at, len * hd))
                        {
                            let q = if sink_shift && i < n_sinks {
                                &q_sink_buf[..group * hd]
                            } else {
                                &q_all[t * q_width + kvh * group * hd..][..group * hd]
                            };
                            f(q, k, hd, &mut scores_buf[i..], n_slots);
                            for j in 0..group {
                                for v in &mut scores_buf[j * n_slots + i..][..len] {
                                    *v *= hp.attn_scale;
                                }
                            }
                            i += len;
                            continue;
                        }
                        let k = keys.row_f32(at, &mut rows_buf[..len * hd], fops);
                        for r in 0..len {
                            let krow = &k[r * hd..(r + 1) * hd];
                            for (j, h) in heads.clone().enumerate() {
                                let q = if sink_shift && i + r < n_sinks {
                                    &q_sink_buf[j * hd..(j + 1) * hd]
                                } else {
                                    q_of(h)
                                };
                                scores_buf[j * n_slots + i + r] =
                                    (fops.dot)(q, krow) * hp.attn_scale;
                            }
                        }
                        i += len;
                    }
                    for j in 0..group {
                        ops::softmax(&mut scores_buf[j * n_slots..j * n_slots + span]);
                    }
                    // The group's heads are adjacent in the output: one slice per item.
                    let out_at = t * att_width + kvh * group * hdv;
                    #[allow(unsafe_code)]
                    // SAFETY: the heads of KV group `kvh` of token `t` are item (t, kvh), owned
                    // by exactly one worker; the range lies inside `att_out` (n tokens ×
                    // att_width), which outlives the region.
                    let out = unsafe { att_out.range(out_at..out_at + group * hdv) };
                    out.fill(0.0);
                    let mut i = 0;
                    while i < span {
                        let (s0, len) = run_of(i);
                        let at = (kvh * n_slots + s0) * hdv;
                        if let (Some(f), Some(v)) =
                            (fops.attn_values_f16, values.halves(at, len * hdv))
                        {
                            f(&scores_buf[i..], n_slots, v, hdv, out);
                            i += len;
                            continue;
                        }
                        let v = values.row_f32(at, &mut rows_buf[..len * hdv], fops);
                        for r in 0..len {
                            let vrow = &v[r * hdv..(r + 1) * hdv];
                            for (j, oh) in out.chunks_exact_mut(hdv).enumerate() {
                                (fops.axpy)(scores_buf[j * n_slots + i + r], vrow, oh);
                            }
                        }
                        i += len;
                    }
                }
            };
            // Worth a region only when the spans are long or the batch is large.
            let last_span = layout.n_sink + layout.n_window;
            let work = n * hp.n_head * (last_span.min((n_seen as usize) + n)) * hd;
            let n_chunks = n_items.div_ceil(per_chunk);
            if nt == 1 || work < 1 << 14 {
                (0..n_chunks).for_each(|c| attend(0, c));
            } else {
                pool.run_chunks(n_chunks, &attend);
            }
            // Output projection and residual; then the FFN (gate and up in one pass) and its
            // residual.
            s.act.set(&s.att[..n * att_width], att_width);
            linalg::matmul(model, [(&lw.wo, &mut s.proj[..n * d])], &mut s.act, pool);
            for t in 0..n {
                let proj = &mut s.proj[t * d..(t + 1) * d];
                if let Some(pn) = &norms.post_attn {
                    ops::rms_norm_inplace(proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
                ops::rms_norm(&mut s.xb[t * d..(t + 1) * d], x, &norms.ffn, hp.rms_eps);
            }
            let f = hp.n_ff;
            s.act.set(&s.xb[..n * d], d);
            linalg::matmul(
                model,
                [
                    (&lw.w_gate, &mut s.gate[..n * f]),
                    (&lw.w_up, &mut s.up[..n * f]),
                ],
                &mut s.act,
                pool,
            );
            let (gate, up) = (&mut s.gate[..n * f], &s.up[..n * f]);
            match hp.activation {
                // Row by row: the vector code treats a tail differently from full lanes, and a
                // token's result must not depend on its place in the batch.
                Activation::Silu => gate
                    .chunks_exact_mut(f)
                    .zip(up.chunks_exact(f))
                    .for_each(|(g, u)| eddy_quant::f32ops::silu_mul(g, u)),
                Activation::GeluTanh => gate
                    .iter_mut()
                    .zip(up)
                    .for_each(|(g, u)| *g = ops::gelu_tanh_f16_table(*g) * u),
            }
            s.act.set(gate, f);
            linalg::matmul(
                model,
                [(&lw.w_down, &mut s.proj[..n * d])],
                &mut s.act,
                pool,
            );
            for t in 0..n {
                let proj = &mut s.proj[t * d..(t + 1) * d];
                if let Some(pn) = &norms.post_ffn {
                    ops::rms_norm_inplace(proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
            }
        }

        // Final norm and logits: for every token, or only the last of the micro-batch.
        let first = if self.params.logits_all { 0 } else { n - 1 };
        for t in first..n {
            let xb = &mut s.xb[(t - first) * d..(t - first + 1) * d];
            ops::rms_norm(xb, &s.x[t * d..(t + 1) * d], &norms_all.output, hp.rms_eps);
        }
        let m = n - first;
        let row = if self.params.logits_all { row0 } else { 0 };
        let nv = hp.n_vocab;
        s.act.set(&s.xb[..m * d], d);
        linalg::matmul(
            model,
            [(&w.output, &mut s.logits[row * nv..(row + m) * nv])],
            &mut s.act,
            pool,
        );
    }
}

impl Context<'static, &Model> {
    /// Every byte of the region a context with these parameters lives in (KV arena,
    /// activations, logits), computed before anything is allocated: what [`Context::new`]
    /// allocates and what [`Context::new_in`] needs. A [`crate::Sampler`] adds
    /// [`crate::Sampler::memory_required`]; worker threads (`n_threads > 1`) are not counted.
    pub fn memory_required(model: &Model, params: &ContextParams) -> Result<usize> {
        let p = resolve(model, params.clone())?;
        Ok(Bufs::plan(&Shape::new(model, &p)).total)
    }
}

/// Fills in defaults and checks ranges.
fn resolve(model: &Model, mut p: ContextParams) -> Result<ContextParams> {
    let hp = model.hparams();
    const MAX_SLOTS: usize = 1 << 22;
    if p.n_sink > MAX_SLOTS {
        return Err(Error::InvalidParam(format!(
            "n_sink {} is larger than {MAX_SLOTS}",
            p.n_sink
        )));
    }
    if p.n_window == 0 {
        p.n_window = hp.n_ctx_train.min(4096).saturating_sub(p.n_sink).max(1);
    }
    if p.n_batch == 0 || p.n_batch > 1 << 16 {
        return Err(Error::InvalidParam(format!(
            "n_batch {} is out of range 1..=65536",
            p.n_batch
        )));
    }
    if p.n_threads == 0 || p.n_threads > 256 {
        return Err(Error::InvalidParam(format!(
            "n_threads {} is out of range 1..=256",
            p.n_threads
        )));
    }
    if p.n_ubatch == 0 {
        return Err(Error::InvalidParam("n_ubatch 0: must be at least 1".into()));
    }
    p.n_ubatch = p.n_ubatch.min(p.n_batch);
    if p.n_sink + p.n_window + p.n_ubatch > MAX_SLOTS {
        return Err(Error::InvalidParam(format!(
            "{} sinks + a window of {} + {} slack slots exceed {MAX_SLOTS} slots",
            p.n_sink, p.n_window, p.n_ubatch
        )));
    }
    Ok(p)
}
