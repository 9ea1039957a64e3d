//! A context: one stream of tokens through a model, with every buffer it needs allocated once.
//!
//! [`Context::new`] sizes and allocates the KV cache, the activation scratch and the logits;
//! [`Context::decode`] then runs the forward pass over a batch of tokens without allocating.
//! The forward pass reads like the model: embed → for each block (norm → attention → residual →
//! norm → FFN → residual) → final norm → logits. A batch is processed layer by layer, and each
//! token's arithmetic is exactly what it would be if the tokens came one at a time, so batched
//! prefill and token-by-token decoding give bit-identical logits.

use std::ops::Deref;

use crate::arena::ArenaLayout;
use crate::error::{Error, Result};
use crate::kv::{KvStore, KvType};
use crate::linalg::{self, Activations};
use crate::model::{Activation, Model, RopeStyle};
use crate::ops;
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
    /// slots so that batched and token-by-token processing see the same window.
    pub n_ubatch: usize,
    /// K/V element type.
    pub kv_type: KvType,
    /// Keep logits for every token of a batch (needed for perplexity and teacher forcing);
    /// otherwise only for the last one.
    pub logits_all: bool,
    /// Threads of the context's pool, the calling thread included (matrix rows are split over
    /// them in fixed ranges: logits are bit-identical for any count).
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

/// Activation buffers, sized for `n_batch` tokens.
#[derive(Debug)]
struct Scratch {
    /// Residual stream, `[n_batch][n_embd]`.
    x: Vec<f32>,
    /// Normed input of a sub-layer, `[n_embd]`.
    xb: Vec<f32>,
    /// Queries, `[n_batch][n_head * head_dim]`.
    q: Vec<f32>,
    /// One token's keys and values before they enter the cache.
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention output, `[n_batch][n_head * head_dim_v]`.
    att: Vec<f32>,
    /// Attention scores of one head, `[n_sink + n_window]`.
    scores: Vec<f32>,
    /// One query head rotated to its cache position, for the sink keys.
    q_sink: Vec<f32>,
    /// RoPE angles of the extra rotation of the query for the sinks.
    cos_sink: Vec<f32>,
    sin_sink: Vec<f32>,
    /// Output of a projection back to the residual width, `[n_embd]`.
    proj: Vec<f32>,
    /// FFN gate and up, `[n_ff]` each.
    gate: Vec<f32>,
    up: Vec<f32>,
    /// RoPE angles of one position.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// RoPE frequency factors (`rope_freqs.weight`), if the model has them.
    rope_factors: Option<Vec<f32>>,
    /// Norm weights as f32, per layer: attn, ffn, (q, k, post-attn, post-ffn when present).
    norms: Vec<LayerNorms>,
    output_norm: Vec<f32>,
    /// Quantized copies of the current input vector, one per activation format.
    act: Activations,
}

#[derive(Debug)]
struct LayerNorms {
    attn: Vec<f32>,
    ffn: Vec<f32>,
    q: Option<Vec<f32>>,
    k: Option<Vec<f32>>,
    post_attn: Option<Vec<f32>>,
    post_ffn: Option<Vec<f32>>,
}

/// One stream of tokens through a model. `M` is how the context holds the model: `&Model` or
/// `Arc<Model>`.
#[derive(Debug)]
pub struct Context<M: Deref<Target = Model>> {
    model: M,
    params: ContextParams,
    kv: KvStore,
    /// Sink + ring geometry of `kv`.
    layout: ArenaLayout,
    /// Tokens streamed so far (the next token's absolute position).
    n_seen: u64,
    scratch: Scratch,
    logits: Vec<f32>,
    /// Rows of `logits` written by the last decode.
    n_logits: usize,
    /// Worker threads for the matrix products.
    pool: ThreadPool,
}

impl<M: Deref<Target = Model>> Context<M> {
    /// A context over `model`, with every buffer allocated now.
    pub fn new(model: M, params: ContextParams) -> Result<Self> {
        let params = resolve(&model, params)?;
        let hp = model.hparams().clone();
        let w = model.weights();
        let n_batch = params.n_batch;
        let ub = params.n_ubatch;
        let f32_of = |t: &crate::model::TensorRef| linalg::f32_vector(&model, t);
        let mut norms = Vec::with_capacity(hp.n_layer);
        for l in &w.layers {
            norms.push(LayerNorms {
                attn: f32_of(&l.attn_norm)?,
                ffn: f32_of(&l.ffn_norm)?,
                q: l.q_norm.as_ref().map(f32_of).transpose()?,
                k: l.k_norm.as_ref().map(f32_of).transpose()?,
                post_attn: l.post_attn_norm.as_ref().map(f32_of).transpose()?,
                post_ffn: l.post_ffn_norm.as_ref().map(f32_of).transpose()?,
            });
        }
        let q_width = hp.n_head * hp.head_dim;
        let att_width = hp.n_head * hp.head_dim_v;
        let widest = hp.n_embd.max(hp.n_ff).max(att_width);
        let scratch = Scratch {
            x: vec![0.0; ub * hp.n_embd],
            xb: vec![0.0; hp.n_embd],
            q: vec![0.0; ub * q_width],
            k: vec![0.0; hp.n_head_kv * hp.head_dim],
            v: vec![0.0; hp.n_head_kv * hp.head_dim_v],
            att: vec![0.0; ub * att_width],
            scores: vec![0.0; params.n_sink + params.n_window],
            q_sink: vec![0.0; hp.head_dim],
            cos_sink: vec![0.0; hp.rope_dim / 2],
            sin_sink: vec![0.0; hp.rope_dim / 2],
            proj: vec![0.0; hp.n_embd],
            gate: vec![0.0; hp.n_ff],
            up: vec![0.0; hp.n_ff],
            cos: vec![0.0; hp.rope_dim / 2],
            sin: vec![0.0; hp.rope_dim / 2],
            rope_factors: w.rope_freqs.as_ref().map(f32_of).transpose()?,
            norms,
            output_norm: f32_of(&w.output_norm)?,
            act: Activations::new(widest),
        };
        let layout = ArenaLayout::new(params.n_sink, params.n_window, params.n_ubatch);
        let kv = KvStore::new(
            params.kv_type,
            hp.n_layer,
            layout.n_slots(),
            hp.n_head_kv * hp.head_dim,
            hp.n_head_kv * hp.head_dim_v,
        );
        let logit_rows = if params.logits_all { n_batch } else { 1 };
        let pool = ThreadPool::new(params.n_threads)
            .map_err(|e| Error::InvalidParam(format!("cannot start threads: {e}")))?;
        Ok(Context {
            logits: vec![0.0; logit_rows * hp.n_vocab],
            model,
            params,
            kv,
            layout,
            n_seen: 0,
            scratch,
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
        let n = self.model.hparams().n_vocab;
        let row = self.n_logits.saturating_sub(1);
        &self.logits[row * n..(row + 1) * n]
    }

    /// Logits of token `i` of the last batch; only with `logits_all` (else only the last).
    pub fn logits_ith(&self, i: usize) -> Option<&[f32]> {
        let n = self.model.hparams().n_vocab;
        if i >= self.n_logits {
            return None;
        }
        Some(&self.logits[i * n..(i + 1) * n])
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
        let s = &mut self.scratch;
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
            let norms = &s.norms[l];
            // Attention: norm, Q/K/V, per-head norms, RoPE, store K/V.
            for t in 0..n {
                let pos = self.n_seen + t as u64;
                ops::rms_norm(&mut s.xb, &s.x[t * d..(t + 1) * d], &norms.attn, hp.rms_eps);
                s.act.set(&s.xb);
                let q = &mut s.q[t * q_width..(t + 1) * q_width];
                linalg::matvec(model, &lw.wq, &mut s.act, q, pool);
                linalg::matvec(model, &lw.wk, &mut s.act, &mut s.k, pool);
                linalg::matvec(model, &lw.wv, &mut s.act, &mut s.v, pool);
                if let Some(qn) = &norms.q {
                    q.chunks_exact_mut(hp.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, qn, hp.rms_eps));
                }
                if let Some(kn) = &norms.k {
                    s.k.chunks_exact_mut(hp.head_dim)
                        .for_each(|h| ops::rms_norm_inplace(h, kn, hp.rms_eps));
                }
                ops::rope_angles(
                    &mut s.cos,
                    &mut s.sin,
                    pos as f64,
                    lw.rope_base,
                    hp.rope_freq_scale,
                    s.rope_factors.as_deref(),
                );
                let adjacent = hp.rope_style == RopeStyle::Adjacent;
                for h in q.chunks_exact_mut(hp.head_dim) {
                    ops::rope_apply(h, &s.cos, &s.sin, adjacent);
                }
                for h in s.k.chunks_exact_mut(hp.head_dim) {
                    ops::rope_apply(h, &s.cos, &s.sin, adjacent);
                }
                self.kv.write(l, self.layout.slot_of(pos), &s.k, &s.v);
            }
            // Attention over the arena: the sinks (at their cache positions) and the window.
            // Layers with their own sliding window (Gemma 3) see only keys within that text
            // distance, all at true distances.
            let keys = self.kv.keys(l);
            let values = self.kv.values(l);
            let (k_row, v_row) = (self.kv.k_row(), self.kv.v_row());
            let layout = self.layout;
            for t in 0..n {
                let pos = self.n_seen + t as u64;
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
                if shift {
                    ops::rope_angles(
                        &mut s.cos_sink,
                        &mut s.sin_sink,
                        view.query_pos as f64 - pos as f64,
                        lw.rope_base,
                        hp.rope_freq_scale,
                        s.rope_factors.as_deref(),
                    );
                }
                let span = n_sinks + (pos + 1 - first) as usize;
                let out = &mut s.att[t * att_width..(t + 1) * att_width];
                out.fill(0.0);
                for h in 0..hp.n_head {
                    let kvh = h / group;
                    let qh = &s.q[t * q_width + h * hp.head_dim..][..hp.head_dim];
                    let q_for_sinks: &[f32] = if shift && n_sinks > 0 {
                        s.q_sink.copy_from_slice(qh);
                        let adjacent = hp.rope_style == RopeStyle::Adjacent;
                        ops::rope_apply(&mut s.q_sink, &s.cos_sink, &s.sin_sink, adjacent);
                        &s.q_sink
                    } else {
                        qh
                    };
                    let scores = &mut s.scores[..span];
                    for (i, sc) in scores[..n_sinks].iter_mut().enumerate() {
                        let at = (sink_start + i) * k_row + kvh * hp.head_dim;
                        *sc = keys.dot(at, q_for_sinks) * hp.attn_scale;
                    }
                    for (i, sc) in scores[n_sinks..].iter_mut().enumerate() {
                        let at = layout.slot_of(first + i as u64) * k_row + kvh * hp.head_dim;
                        *sc = keys.dot(at, qh) * hp.attn_scale;
                    }
                    ops::softmax(scores);
                    let oh = &mut out[h * hp.head_dim_v..(h + 1) * hp.head_dim_v];
                    for (i, &p) in scores.iter().enumerate() {
                        let slot = if i < n_sinks {
                            sink_start + i
                        } else {
                            layout.slot_of(first + (i - n_sinks) as u64)
                        };
                        values.axpy(slot * v_row + kvh * hp.head_dim_v, p, oh);
                    }
                }
            }
            // Output projection and residual; then the FFN and its residual.
            for t in 0..n {
                s.act.set(&s.att[t * att_width..(t + 1) * att_width]);
                linalg::matvec(model, &lw.wo, &mut s.act, &mut s.proj, pool);
                if let Some(pn) = &norms.post_attn {
                    ops::rms_norm_inplace(&mut s.proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);

                ops::rms_norm(&mut s.xb, x, &norms.ffn, hp.rms_eps);
                s.act.set(&s.xb);
                linalg::matvec(model, &lw.w_gate, &mut s.act, &mut s.gate, pool);
                linalg::matvec(model, &lw.w_up, &mut s.act, &mut s.up, pool);
                match hp.activation {
                    Activation::Silu => s
                        .gate
                        .iter_mut()
                        .zip(&s.up)
                        .for_each(|(g, u)| *g = ops::silu(*g) * u),
                    Activation::GeluTanh => s
                        .gate
                        .iter_mut()
                        .zip(&s.up)
                        .for_each(|(g, u)| *g = ops::gelu_tanh_f16_table(*g) * u),
                }
                s.act.set(&s.gate);
                linalg::matvec(model, &lw.w_down, &mut s.act, &mut s.proj, pool);
                if let Some(pn) = &norms.post_ffn {
                    ops::rms_norm_inplace(&mut s.proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);
            }
        }

        // Final norm and logits: for every token, or only the last of the micro-batch.
        let first = if self.params.logits_all { 0 } else { n - 1 };
        for t in first..n {
            let row = if self.params.logits_all { row0 + t } else { 0 };
            ops::rms_norm(
                &mut s.xb,
                &s.x[t * d..(t + 1) * d],
                &s.output_norm,
                hp.rms_eps,
            );
            s.act.set(&s.xb);
            let out = &mut self.logits[row * hp.n_vocab..(row + 1) * hp.n_vocab];
            linalg::matvec(model, &w.output, &mut s.act, out, pool);
        }
    }
}

impl Context<&Model> {
    /// Every byte [`Context::new`] allocates for these parameters (arena, activations, norms,
    /// logits), computed before anything is allocated. A [`crate::Sampler`] adds
    /// [`crate::Sampler::memory_required`].
    pub fn memory_required(model: &Model, params: &ContextParams) -> Result<usize> {
        let p = resolve(model, params.clone())?;
        let hp = model.hparams();
        let w = model.weights();
        let f = std::mem::size_of::<f32>();
        let ub = p.n_ubatch;
        let half_rot = hp.rope_dim / 2;
        let q_width = hp.n_head * hp.head_dim;
        let att_width = hp.n_head * hp.head_dim_v;
        let scratch_f32 = ub * hp.n_embd
            + hp.n_embd
            + ub * q_width
            + hp.n_head_kv * (hp.head_dim + hp.head_dim_v)
            + ub * att_width
            + p.n_sink
            + p.n_window
            + hp.head_dim
            + 4 * half_rot
            + hp.n_embd
            + 2 * hp.n_ff
            + w.rope_freqs.as_ref().map_or(0, |t| t.cols * t.rows)
            + hp.n_embd;
        let norms_f32: usize = w
            .layers
            .iter()
            .map(|l| {
                [&l.q_norm, &l.k_norm, &l.post_attn_norm, &l.post_ffn_norm]
                    .iter()
                    .filter_map(|t| t.as_ref())
                    .chain([&l.attn_norm, &l.ffn_norm])
                    .map(|t| t.cols * t.rows)
                    .sum::<usize>()
            })
            .sum();
        let widest = hp.n_embd.max(hp.n_ff).max(att_width);
        let layout = ArenaLayout::new(p.n_sink, p.n_window, p.n_ubatch);
        let logit_rows = if p.logits_all { p.n_batch } else { 1 };
        Ok(f * (scratch_f32 + norms_f32 + logit_rows * hp.n_vocab)
            + hp.n_layer * std::mem::size_of::<LayerNorms>()
            + Activations::memory_required(widest)
            + KvStore::memory_required(
                p.kv_type,
                hp.n_layer,
                layout.n_slots(),
                hp.n_head_kv * hp.head_dim,
                hp.n_head_kv * hp.head_dim_v,
            ))
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
