//! A context: one stream of tokens through a model, with every buffer it needs allocated once.
//!
//! [`Context::new`] sizes and allocates the KV cache, the activation scratch and the logits;
//! [`Context::decode`] then runs the forward pass over a batch of tokens without allocating.
//! The forward pass reads like the model: embed → for each block (norm → attention → residual →
//! norm → FFN → residual) → final norm → logits. A batch is processed layer by layer, and each
//! token's arithmetic is exactly what it would be if the tokens came one at a time, so batched
//! prefill and token-by-token decoding give bit-identical logits.

use std::ops::Deref;

use crate::error::{Error, Result};
use crate::kv::{KvStore, KvType};
use crate::linalg::{self, Activations};
use crate::model::{Activation, Model, RopeStyle};
use crate::ops;

/// Parameters of a context.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextParams {
    /// Positions the cache holds (0 = the model's trained context, capped at 4096).
    pub n_ctx: usize,
    /// Most tokens one `decode` call takes.
    pub n_batch: usize,
    /// K/V element type.
    pub kv_type: KvType,
    /// Keep logits for every token of a batch (needed for perplexity and teacher forcing);
    /// otherwise only for the last one.
    pub logits_all: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams {
            n_ctx: 0,
            n_batch: 512,
            kv_type: KvType::F16,
            logits_all: false,
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
    /// Attention scores of one head, `[n_ctx]`.
    scores: Vec<f32>,
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
    /// Tokens in the cache so far (the next token's position).
    n_past: usize,
    scratch: Scratch,
    logits: Vec<f32>,
    /// Rows of `logits` written by the last decode.
    n_logits: usize,
}

impl<M: Deref<Target = Model>> Context<M> {
    /// A context over `model`, with every buffer allocated now.
    pub fn new(model: M, params: ContextParams) -> Result<Self> {
        let params = resolve(&model, params)?;
        let hp = model.hparams().clone();
        let w = model.weights();
        let n_batch = params.n_batch;
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
            x: vec![0.0; n_batch * hp.n_embd],
            xb: vec![0.0; hp.n_embd],
            q: vec![0.0; n_batch * q_width],
            k: vec![0.0; hp.n_head_kv * hp.head_dim],
            v: vec![0.0; hp.n_head_kv * hp.head_dim_v],
            att: vec![0.0; n_batch * att_width],
            scores: vec![0.0; params.n_ctx],
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
        let kv = KvStore::new(
            params.kv_type,
            hp.n_layer,
            params.n_ctx,
            hp.n_head_kv * hp.head_dim,
            hp.n_head_kv * hp.head_dim_v,
        );
        let logit_rows = if params.logits_all { n_batch } else { 1 };
        Ok(Context {
            logits: vec![0.0; logit_rows * hp.n_vocab],
            model,
            params,
            kv,
            n_past: 0,
            scratch,
            n_logits: 0,
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

    /// Tokens in the cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Empties the cache; the next token is at position 0 again.
    pub fn reset(&mut self) {
        self.n_past = 0;
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

    /// Runs the model over `tokens` (at most `n_batch`), appending them to the cache.
    ///
    /// On error nothing has changed: the cache and the logits are as they were.
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
        if self.n_past + n > self.params.n_ctx {
            return Err(Error::ContextFull {
                used: self.n_past,
                n_ctx: self.params.n_ctx,
                requested: n,
            });
        }
        self.forward(tokens);
        self.n_past += n;
        Ok(())
    }

    fn forward(&mut self, tokens: &[u32]) {
        let model: &Model = &self.model;
        let hp = model.hparams();
        let w = model.weights();
        let s = &mut self.scratch;
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
                let pos = self.n_past + t;
                ops::rms_norm(&mut s.xb, &s.x[t * d..(t + 1) * d], &norms.attn, hp.rms_eps);
                s.act.set(&s.xb);
                let q = &mut s.q[t * q_width..(t + 1) * q_width];
                linalg::matvec(model, &lw.wq, &mut s.act, q);
                linalg::matvec(model, &lw.wk, &mut s.act, &mut s.k);
                linalg::matvec(model, &lw.wv, &mut s.act, &mut s.v);
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
                self.kv.write(l, pos, &s.k, &s.v);
            }
            // Attention over the cache, causal (and windowed on sliding-window layers).
            let keys = self.kv.keys(l);
            let values = self.kv.values(l);
            for t in 0..n {
                let pos = self.n_past + t;
                let first = match lw.sliding_window {
                    Some(win) => (pos + 1).saturating_sub(win),
                    None => 0,
                };
                let span = pos + 1 - first;
                let out = &mut s.att[t * att_width..(t + 1) * att_width];
                out.fill(0.0);
                for h in 0..hp.n_head {
                    let kvh = h / group;
                    let qh = &s.q[t * q_width + h * hp.head_dim..][..hp.head_dim];
                    let scores = &mut s.scores[..span];
                    for (j, sc) in scores.iter_mut().enumerate() {
                        let at = (first + j) * self.kv.k_row() + kvh * hp.head_dim;
                        *sc = keys.dot(at, qh) * hp.attn_scale;
                    }
                    ops::softmax(scores);
                    let oh = &mut out[h * hp.head_dim_v..(h + 1) * hp.head_dim_v];
                    for (j, &p) in scores.iter().enumerate() {
                        let at = (first + j) * self.kv.v_row() + kvh * hp.head_dim_v;
                        values.axpy(at, p, oh);
                    }
                }
            }
            // Output projection and residual; then the FFN and its residual.
            for t in 0..n {
                s.act.set(&s.att[t * att_width..(t + 1) * att_width]);
                linalg::matvec(model, &lw.wo, &mut s.act, &mut s.proj);
                if let Some(pn) = &norms.post_attn {
                    ops::rms_norm_inplace(&mut s.proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);

                ops::rms_norm(&mut s.xb, x, &norms.ffn, hp.rms_eps);
                s.act.set(&s.xb);
                linalg::matvec(model, &lw.w_gate, &mut s.act, &mut s.gate);
                linalg::matvec(model, &lw.w_up, &mut s.act, &mut s.up);
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
                linalg::matvec(model, &lw.w_down, &mut s.act, &mut s.proj);
                if let Some(pn) = &norms.post_ffn {
                    ops::rms_norm_inplace(&mut s.proj, pn, hp.rms_eps);
                }
                let x = &mut s.x[t * d..(t + 1) * d];
                x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);
            }
        }

        // Final norm and logits: for every token or only the last.
        let first = if self.params.logits_all { 0 } else { n - 1 };
        for (row, t) in (first..n).enumerate() {
            ops::rms_norm(
                &mut s.xb,
                &s.x[t * d..(t + 1) * d],
                &s.output_norm,
                hp.rms_eps,
            );
            s.act.set(&s.xb);
            let out = &mut self.logits[row * hp.n_vocab..(row + 1) * hp.n_vocab];
            linalg::matvec(model, &w.output, &mut s.act, out);
        }
        self.n_logits = n - first;
    }
}

/// Fills in defaults and checks ranges.
fn resolve(model: &Model, mut p: ContextParams) -> Result<ContextParams> {
    let hp = model.hparams();
    if p.n_ctx == 0 {
        p.n_ctx = hp.n_ctx_train.min(4096);
    }
    if p.n_ctx > 1 << 22 {
        return Err(Error::InvalidParam(format!(
            "n_ctx {} is too large",
            p.n_ctx
        )));
    }
    if p.n_batch == 0 || p.n_batch > 1 << 16 {
        return Err(Error::InvalidParam(format!(
            "n_batch {} out of range 1..=65536",
            p.n_batch
        )));
    }
    p.n_batch = p.n_batch.min(p.n_ctx);
    Ok(p)
}
