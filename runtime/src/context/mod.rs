//! A context: one stream of tokens through a model, with every buffer it needs allocated once.
//!
//! [`Context::new`] sizes and allocates the KV cache, the activation scratch and the logits;
//! [`Context::decode`] then runs the forward pass over a batch of tokens without allocating.
//!
//! - `forward`: the forward pass of one micro-batch (embed → blocks → logits), reading like
//!   the model;
//! - `attention`: what a query sees (sinks, window, sliding window) and the attention kernels;
//! - `buffers`: the layout of the context's one region;
//! - `state`: saving and restoring the stream.
//!
//! A token's arithmetic does not depend on the thread count, and batches below
//! `linalg::PANEL_MIN_COLS` tokens give the same bits as token-by-token decoding (larger ones
//! agree to rounding: the panel kernels sum in another order).

mod attention;
mod buffers;
mod forward;
mod state;

use std::ops::Deref;

use buffers::{Bufs, Marks, Shape};

use crate::arena::ArenaLayout;
use crate::error::{Error, Result};
use crate::kv::KvType;
use crate::memory::Region;
use crate::model::Model;
use crate::threads::ThreadPool;

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
    /// slots so that batched and token-by-token processing see the same window. Default 128:
    /// every micro-batch packs each weight matrix into panels again, which at 32 tokens cost
    /// about a third of prefill; 128 reaches 90–98 % of the prefill speed of 512 for 7–13 MB
    /// more than 32 on the three reference models (512 would cost 33–66 MB).
    pub n_ubatch: usize,
    /// Element type of the K/V cache, for keys and values (f16 by default; Q8_0 and Q4_0
    /// quantize each head's row in blocks of 32 when it enters the arena).
    pub kv_type: KvType,
    /// Element type of the keys alone, if not `kv_type`.
    pub kv_type_k: Option<KvType>,
    /// Element type of the values alone, if not `kv_type`.
    pub kv_type_v: Option<KvType>,
    /// Keep logits for every token of a batch (needed for perplexity and teacher forcing);
    /// otherwise only for the last one.
    pub logits_all: bool,
    /// Threads of the context's pool, the calling thread included (they claim chunks of rows
    /// whose arithmetic does not depend on who computes them: logits are bit-identical for any
    /// count).
    pub n_threads: usize,
}

impl ContextParams {
    /// The element types of the K and of the V cache.
    pub fn kv_types(&self) -> [KvType; 2] {
        [
            self.kv_type_k.unwrap_or(self.kv_type),
            self.kv_type_v.unwrap_or(self.kv_type),
        ]
    }
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams {
            n_sink: 4,
            n_window: 0,
            n_batch: 512,
            n_ubatch: 128,
            kv_type: KvType::F16,
            kv_type_k: None,
            kv_type_v: None,
            logits_all: false,
            n_threads: 1,
        }
    }
}

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
        let n_chunks = n.div_ceil(self.params.n_ubatch);
        for (i, chunk) in tokens.chunks(self.params.n_ubatch).enumerate() {
            // Without `logits_all` only the batch's last token has logits: the earlier
            // micro-batches skip the output head (Gemma 3's is two thirds of its weights).
            let logits = self.params.logits_all || i + 1 == n_chunks;
            self.forward(chunk, row, logits);
            self.n_seen += chunk.len() as u64;
            row += chunk.len();
        }
        self.n_logits = if self.params.logits_all { n } else { 1 };
        Ok(())
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
    crate::kv::check_types(p.kv_types(), hp.head_dim, hp.head_dim_v)?;
    if p.n_sink + p.n_window + p.n_ubatch > MAX_SLOTS {
        return Err(Error::InvalidParam(format!(
            "{} sinks + a window of {} + {} slack slots exceed {MAX_SLOTS} slots",
            p.n_sink, p.n_window, p.n_ubatch
        )));
    }
    Ok(p)
}
