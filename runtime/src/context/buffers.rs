//! The buffer layout of a context: every buffer the forward pass uses is a slice of the
//! context's one region, carved by a single walk ([`Bufs::carve`]). Walking without memory
//! measures the region ([`Bufs::plan`]); walking over the region hands out the slices, at
//! creation and at every decode (nothing is allocated).

use std::ops::Range;

use super::ContextParams;
use super::attention;
use crate::arena::ArenaLayout;
use crate::kv::{KeyPairs, KvStore, KvType};
use crate::linalg::Activations;
use crate::memory::Carver;
use crate::model::Model;
use crate::model::RopeStyle;

/// Sizes of every buffer, from the model and the resolved parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub n_embd: usize,
    pub n_ubatch: usize,
    /// Width of the queries of one token (`n_head * head_dim`).
    pub q_width: usize,
    /// Width of the attention output of one token (`n_head * head_dim_v`).
    pub att_width: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    /// Query heads per KV head.
    pub group: usize,
    pub n_head_kv: usize,
    /// RoPE pairs of one head.
    pub half_rot: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    /// Slots of the KV arena (sinks + ring).
    pub n_slots: usize,
    /// Elements of one K (V) slot of a layer, all KV heads.
    pub k_row: usize,
    pub v_row: usize,
    /// Element types of the K and of the V cache.
    pub kv_types: [KvType; 2],
    /// Whether the key cache keeps the model's key bias out of its rows (Q4_0 keys of a model
    /// with key biases and one RoPE for every layer; see [`KvStore::write_angles`]).
    pub key_bias_apart: bool,
    /// The exact pairs each key row keeps beside its blocks (Q4_0 keys; see [`KeyPairs`]).
    pub key_pairs: KeyPairs,
    /// Rows of logits kept (every token of a batch, or the last).
    pub logit_rows: usize,
    pub n_vocab: usize,
    pub n_threads: usize,
}

impl Shape {
    pub(super) fn new(model: &Model, p: &ContextParams) -> Shape {
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
            kv_types: p.kv_types(),
            key_bias_apart: p.kv_types()[0] == KvType::Q4_0 && model.key_bias_with_one_rope(),
            key_pairs: KeyPairs::for_keys(
                p.kv_types()[0],
                hp.head_dim,
                hp.rope_style == RopeStyle::Adjacent,
            ),
            logit_rows: if p.logits_all { p.n_batch } else { 1 },
            n_vocab: hp.n_vocab,
            n_threads: p.n_threads,
        }
    }
}

/// The buffers of one decode call: views of the context's region, laid out by [`Bufs::carve`].
#[derive(Debug)]
pub(super) struct Bufs<'b> {
    /// Residual stream, `[n_ubatch][n_embd]`.
    pub x: &'b mut [f32],
    /// Normed input of a sub-layer, `[n_ubatch][n_embd]`.
    pub xb: &'b mut [f32],
    /// Queries, `[n_ubatch][n_head * head_dim]`.
    pub q: &'b mut [f32],
    /// Keys and values of the micro-batch before they enter the cache, `[n_ubatch][row]`.
    pub k: &'b mut [f32],
    pub v: &'b mut [f32],
    /// Attention output, `[n_ubatch][n_head * head_dim_v]`.
    pub att: &'b mut [f32],
    /// Attention's scratch, one share of [`attention::scratch_len`] per worker.
    pub att_scratch: &'b mut [f32],
    /// Output of a projection back to the residual width, `[n_ubatch][n_embd]`.
    pub proj: &'b mut [f32],
    /// FFN gate and up, `[n_ubatch][n_ff]` each.
    pub gate: &'b mut [f32],
    pub up: &'b mut [f32],
    /// RoPE angles of the micro-batch's positions, `[n_ubatch][half_rot]`.
    pub cos: &'b mut [f32],
    pub sin: &'b mut [f32],
    /// The RoPE base and frequency scale (their bits) whose angles `cos` and `sin` hold for this
    /// call's positions, if any yet.
    pub rope_angles_of: Option<(u32, u32)>,
    /// Quantized copies of the current input vector, one per activation format.
    pub act: Activations<'b>,
    /// The arena's keys and values.
    pub kv: KvStore<'b>,
    /// `[logit_rows][n_vocab]`.
    pub logits: &'b mut [f32],
}

/// Where the buffers that outlive a decode call sit in the region, and its size.
#[derive(Clone, Debug)]
pub(super) struct Marks {
    pub k: Range<usize>,
    pub v: Range<usize>,
    /// The key angles table (empty unless [`Shape::key_bias_apart`]).
    pub angles: Range<usize>,
    /// The key rows' exact pairs (empty unless [`Shape::key_pairs`] has some).
    pub pairs: Range<usize>,
    pub logits: Range<usize>,
    pub total: usize,
}

impl<'b> Bufs<'b> {
    /// The one layout of a context's region (see [`crate::memory`]).
    pub(super) fn carve(sh: &Shape, c: &mut Carver<'b>) -> (Bufs<'b>, [Range<usize>; 5]) {
        let ub = sh.n_ubatch;
        let widest = sh.n_embd.max(sh.n_ff).max(sh.att_width);
        let (kv, [k_range, v_range, angles_range, pairs_range]) = KvStore::carve(
            c,
            sh.kv_types,
            sh.n_layer,
            sh.n_slots,
            sh.head_dim,
            sh.head_dim_v,
            sh.n_head_kv,
            if sh.key_bias_apart {
                2 * sh.half_rot
            } else {
                0
            },
            sh.key_pairs,
        );
        let (logits, logits_range) = c.take(sh.logit_rows * sh.n_vocab);
        let bufs = Bufs {
            x: c.slice(ub * sh.n_embd),
            xb: c.slice(ub * sh.n_embd),
            q: c.slice(ub * sh.q_width),
            k: c.slice(ub * sh.k_row),
            v: c.slice(ub * sh.v_row),
            att: c.slice(ub * sh.att_width),
            att_scratch: c.slice(sh.n_threads * attention::scratch_len(sh)),
            proj: c.slice(ub * sh.n_embd),
            gate: c.slice(ub * sh.n_ff),
            up: c.slice(ub * sh.n_ff),
            cos: c.slice(ub * sh.half_rot),
            sin: c.slice(ub * sh.half_rot),
            rope_angles_of: None,
            act: Activations::carve(c, widest, ub, sh.n_threads),
            kv,
            logits,
        };
        (
            bufs,
            [k_range, v_range, angles_range, pairs_range, logits_range],
        )
    }

    /// The layout measured, without memory.
    pub(super) fn plan(sh: &Shape) -> Marks {
        let mut c = Carver::measure();
        let (_, [k, v, angles, pairs, logits]) = Bufs::carve(sh, &mut c);
        Marks {
            k,
            v,
            angles,
            pairs,
            logits,
            total: c.used(),
        }
    }
}
