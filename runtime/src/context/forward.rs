//! The forward pass of one micro-batch, as the model reads:
//!
//! ```text
//! x = embed(tokens)
//! for each block:
//!     x += post_attn_norm?(attention(norm(x)))     // Q/K/V (+ biases), Q/K norms, RoPE, arena
//!     x += post_ffn_norm?(ffn(norm(x)))            // gate/up, SwiGLU or GeGLU, down
//! logits = output(norm(x))
//! ```
//!
//! What differs between architectures is data on the model description (optional tensors,
//! [`crate::model::HParams`]), never a match on the architecture here. The micro-batch goes
//! through each matrix together (one pass over the weights); everything else is per token, so
//! a token's result does not depend on its place in the batch.

use std::ops::Deref;

use super::Context;
use super::attention::{self, Job};
use super::buffers::{Bufs, Shape};
use crate::arena::ArenaLayout;
use crate::linalg;
use crate::memory::Carver;
use crate::model::{Activation, LayerNorms, LayerWeights, Model, RopeStyle};
use crate::ops;
use crate::threads::{ThreadPool, run_rows};

/// What every step of one micro-batch reads.
struct Step<'m> {
    model: &'m Model,
    shape: &'m Shape,
    layout: ArenaLayout,
    pool: &'m ThreadPool,
    /// Absolute position of the first token.
    n_seen: u64,
    /// Tokens in the micro-batch.
    n: usize,
    /// RoPE frequency factors in force for this context.
    rope_factors: Option<&'m [f32]>,
}

impl<M: Deref<Target = Model>> Context<'_, M> {
    /// One micro-batch; with `logits`, its logits go to rows `row0..` (all tokens) or row 0
    /// (the last).
    pub(super) fn forward(&mut self, tokens: &[u32], row0: usize, logits: bool) {
        let model: &Model = &self.model;
        let step = Step {
            model,
            shape: &self.shape,
            layout: self.layout,
            pool: &self.pool,
            n_seen: self.n_seen,
            n: tokens.len(),
            rope_factors: model
                .norms()
                .rope_factors_for(self.layout.n_sink + self.layout.n_window, model.hparams()),
        };
        let (mut b, _) = Bufs::carve(&self.shape, &mut Carver::over(self.region.bytes_mut()));
        embed(&step, tokens, &mut b);
        let norms = model.norms();
        for (l, (lw, ln)) in model.weights().layers.iter().zip(&norms.layers).enumerate() {
            attention_block(&step, l, lw, ln, &mut b);
            ffn_block(&step, lw, ln, &mut b);
        }
        if !logits {
            return;
        }
        let rows = if self.params.logits_all {
            row0..row0 + step.n
        } else {
            0..1
        };
        output(&step, rows, &mut b);
    }
}

/// `x[t] = token_embd[tokens[t]] * embd_scale`.
fn embed(st: &Step<'_>, tokens: &[u32], b: &mut Bufs<'_>) {
    let hp = st.model.hparams();
    let d = hp.n_embd;
    for (x, &tok) in b.x.chunks_exact_mut(d).zip(tokens) {
        linalg::embedding_row(st.model, &st.model.weights().token_embd, tok as usize, x);
        if hp.embd_scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= hp.embd_scale);
        }
    }
}

/// `x += post_attn_norm?(wo · attention(rope(q), rope(k), v))` with `q, k, v` projected from
/// `attn_norm(x)` (plus biases, per-head norms where the model has them); K and V enter the
/// arena at their slots first.
fn attention_block(st: &Step<'_>, l: usize, lw: &LayerWeights, ln: &LayerNorms, b: &mut Bufs<'_>) {
    let (model, sh, n) = (st.model, st.shape, st.n);
    let hp = model.hparams();
    let d = hp.n_embd;
    let (qw, kw, vw) = (sh.q_width, sh.k_row, sh.v_row);
    let x = &*b.x;
    for_each_token(st, b.xb, d, &|t, xb| {
        ops::rms_norm(xb, &x[t * d..][..d], &ln.attn, hp.rms_eps);
    });
    b.act.set(&b.xb[..n * d], d);
    linalg::matmul(
        model,
        [
            (&lw.wq, &mut b.q[..n * qw]),
            (&lw.wk, &mut b.k[..n * kw]),
            (&lw.wv, &mut b.v[..n * vw]),
        ],
        &mut b.act,
        st.pool,
    );
    let adjacent = hp.rope_style == RopeStyle::Adjacent;
    let smooth_keys = b.kv.keys_q4_0();
    // The RoPE angles of the micro-batch's positions, computed once for every layer that
    // shares this layer's base and scale (all of them, or Gemma 3's two kinds).
    let hr = sh.half_rot;
    let rope = (lw.rope_base.to_bits(), lw.rope_freq_scale.to_bits());
    if b.rope_angles_of != Some(rope) {
        for (t, (cos, sin)) in b
            .cos
            .chunks_exact_mut(hr.max(1))
            .zip(b.sin.chunks_exact_mut(hr.max(1)))
            .take(n)
            .enumerate()
        {
            let pos = st.n_seen + t as u64;
            ops::rope_angles(
                cos,
                sin,
                pos as f64,
                lw.rope_base,
                lw.rope_freq_scale,
                st.rope_factors,
            );
            if hp.rope_attn_factor != 1.0 {
                // LongRoPE's magnitude correction, on the rotated elements only (as ggml's
                // rope).
                cos.iter_mut().for_each(|c| *c *= hp.rope_attn_factor);
                sin.iter_mut().for_each(|s| *s *= hp.rope_attn_factor);
            }
        }
        b.rope_angles_of = Some(rope);
    }
    for t in 0..n {
        let pos = st.n_seen + t as u64;
        let q = &mut b.q[t * qw..(t + 1) * qw];
        let k = &mut b.k[t * kw..(t + 1) * kw];
        let v = &mut b.v[t * vw..(t + 1) * vw];
        add_bias(q, ln.bias_q.as_deref());
        if sh.key_bias_apart {
            // The cache keeps the rotated channels' bias apart (`KvStore::write_angles`).
            let hd = hp.head_dim;
            let rot = 2 * sh.half_rot;
            if let Some(bk) = ln.bias_k.as_deref() {
                for (h, bh) in k.chunks_exact_mut(hd).zip(bk.chunks_exact(hd)) {
                    add_bias(&mut h[rot..], Some(&bh[rot..]));
                }
            }
        } else {
            add_bias(k, ln.bias_k.as_deref());
        }
        add_bias(v, ln.bias_v.as_deref());
        if let Some(qn) = &ln.q {
            q.chunks_exact_mut(hp.head_dim)
                .for_each(|h| ops::rms_norm_inplace(h, qn, hp.rms_eps));
        }
        if let Some(kn) = &ln.k {
            k.chunks_exact_mut(hp.head_dim)
                .for_each(|h| ops::rms_norm_inplace(h, kn, hp.rms_eps));
        }
        let (cos, sin) = (&b.cos[t * hr..][..hr], &b.sin[t * hr..][..hr]);
        for h in q.chunks_exact_mut(hp.head_dim) {
            ops::rope_apply(h, cos, sin, adjacent);
        }
        for h in k.chunks_exact_mut(hp.head_dim) {
            ops::rope_apply(h, cos, sin, adjacent);
        }
        if smooth_keys {
            // A Q4_0 key cache stores smoothed keys (see `model::key_smoothing`).
            k.iter_mut().zip(&ln.k_smooth).for_each(|(x, s)| *x /= s);
        }
        let slot = st.layout.slot_of(pos);
        if l == 0 {
            // One table for all layers: they share one RoPE when it is kept.
            b.kv.write_angles(slot, cos, sin);
        }
        b.kv.write(l, slot, k, v);
    }
    let job = Job {
        shape: sh,
        layout: st.layout,
        n_seen: st.n_seen,
        keys: b.kv.keys(l),
        values: b.kv.values(l),
        q: &b.q[..n * qw],
        sliding_window: lw.sliding_window,
        rope_base: lw.rope_base,
        rope_freq_scale: lw.rope_freq_scale,
        rope_factors: st.rope_factors,
        rope_adjacent: adjacent,
        attn_scale: hp.attn_scale,
        k_smooth: smooth_keys.then_some(&ln.k_smooth[..]),
        key_bias: match (b.kv.angles(), ln.bias_k.as_deref()) {
            (Some(angles), Some(bias)) => Some((bias, angles)),
            _ => None,
        },
        key_pairs: b.kv.key_pairs(l),
    };
    attention::attend(&job, n, b.att, b.att_scratch, st.pool);
    let aw = sh.att_width;
    b.act.set(&b.att[..n * aw], aw);
    linalg::matmul(model, [(&lw.wo, &mut b.proj[..n * d])], &mut b.act, st.pool);
    residual(st, b.x, b.proj, d, ln.post_attn.as_deref(), hp.rms_eps);
}

/// `x += post_ffn_norm?(w_down · (act(w_gate · h) ⊙ (w_up · h)))` with `h = ffn_norm(x)`.
fn ffn_block(st: &Step<'_>, lw: &LayerWeights, ln: &LayerNorms, b: &mut Bufs<'_>) {
    let (model, n) = (st.model, st.n);
    let hp = model.hparams();
    let (d, f) = (hp.n_embd, hp.n_ff);
    let x = &*b.x;
    for_each_token(st, b.xb, d, &|t, xb| {
        ops::rms_norm(xb, &x[t * d..][..d], &ln.ffn, hp.rms_eps);
    });
    b.act.set(&b.xb[..n * d], d);
    linalg::matmul(
        model,
        [
            (&lw.w_gate, &mut b.gate[..n * f]),
            (&lw.w_up, &mut b.up[..n * f]),
        ],
        &mut b.act,
        st.pool,
    );
    let up = &*b.up;
    // Row by row: the vector code treats a tail differently from full lanes, and a token's
    // result must not depend on its place in the batch.
    for_each_token(st, b.gate, f, &|t, g| {
        let u = &up[t * f..][..f];
        match hp.activation {
            Activation::Silu => eddy_quant::f32ops::silu_mul(g, u),
            Activation::GeluTanh => ops::gelu_tanh_f16_table_mul(g, u),
        }
    });
    b.act.set(&b.gate[..n * f], f);
    linalg::matmul(
        model,
        [(&lw.w_down, &mut b.proj[..n * d])],
        &mut b.act,
        st.pool,
    );
    residual(st, b.x, b.proj, d, ln.post_ffn.as_deref(), hp.rms_eps);
}

/// `logits[rows] = output · output_norm(x)` for every token (`rows` has `n` rows) or only the
/// last (`rows` has one).
fn output(st: &Step<'_>, rows: std::ops::Range<usize>, b: &mut Bufs<'_>) {
    let (model, n) = (st.model, st.n);
    let hp = model.hparams();
    let d = hp.n_embd;
    let first = n - rows.len();
    for (xb, x) in
        b.xb.chunks_exact_mut(d)
            .zip(b.x[first * d..n * d].chunks_exact(d))
    {
        ops::rms_norm(xb, x, &model.norms().output, hp.rms_eps);
    }
    let nv = hp.n_vocab;
    b.act.set(&b.xb[..rows.len() * d], d);
    linalg::matmul(
        model,
        [(
            &model.weights().output,
            &mut b.logits[rows.start * nv..rows.end * nv],
        )],
        &mut b.act,
        st.pool,
    );
}

/// `x[t] += norm?(proj[t])` for the micro-batch's tokens.
fn residual(
    st: &Step<'_>,
    x: &mut [f32],
    proj: &mut [f32],
    d: usize,
    norm: Option<&[f32]>,
    eps: f32,
) {
    if let Some(w) = norm {
        for_each_token(st, proj, d, &|_, p| ops::rms_norm_inplace(p, w, eps));
    }
    let proj = &*proj;
    for_each_token(st, x, d, &|t, x| {
        x.iter_mut()
            .zip(&proj[t * d..][..d])
            .for_each(|(a, b)| *a += b);
    });
}

/// Fewest tokens for which the per-token steps between the matrix products (norms, the FFN's
/// activation, residual adds) run on the thread pool: below, a region costs more than it saves.
const PARALLEL_TOKENS: usize = 8;

/// `f(t, row)` for each token `t` of the micro-batch and its row of `out` (rows of `len`
/// elements), on the pool for [`PARALLEL_TOKENS`] tokens or more ([`run_rows`]).
fn for_each_token(
    st: &Step<'_>,
    out: &mut [f32],
    len: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    run_rows(st.pool, PARALLEL_TOKENS, out, len, st.n, f);
}

/// `v += bias`, where the model has one.
fn add_bias(v: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        v.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
    }
}
