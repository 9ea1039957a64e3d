//! `gemma3`: Gemma 3 (text).
//!
//! Differences from `llama`, as llama.cpp's Gemma 3 graph has them: embeddings scaled by
//! sqrt(n_embd); RMS norms of each query and key head (`attn_q_norm`, `attn_k_norm`); RMS norms
//! of the attention and FFN outputs before their residual adds (`post_attention_norm`,
//! `post_ffw_norm`); GELU-gated FFN; RoPE on halves (NEOX); attention scaled by
//! 1/sqrt(head_dim); five of every six layers attend through a sliding window
//! (`gemma3.attention.sliding_window`) with RoPE base 10 000, the sixth globally with
//! `gemma3.rope.freq_base`. The output projection is tied to the embedding. (The converter has
//! already added Gemma's +1 to the norm weights.)

use super::{Arch, Meta};
use crate::error::{Result, metadata};
use crate::gguf::Gguf;
use crate::model::{
    Activation, HParams, LayerWeights, ModelDesc, RopeStyle, Weights, optional_tensor_ref,
    tensor_ref,
};

pub(super) static GEMMA3: Arch = Arch {
    name: "gemma3",
    load,
};

/// Every sixth layer is global; the others use the sliding window.
const SWA_PATTERN: usize = 6;
/// RoPE base of the sliding-window layers (fixed for Gemma 3, not stored in the file).
const ROPE_BASE_LOCAL: f32 = 10_000.0;

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "gemma3" };
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    let n_head_kv = m.usize_or("attention.head_count_kv", n_head)?;
    if n_head % n_head_kv != 0 {
        return Err(metadata(
            "gemma3.attention.head_count_kv",
            format!("{n_head} query heads are not a multiple of {n_head_kv} kv heads"),
        ));
    }
    let head_dim = m.usize_or("attention.key_length", n_embd / n_head)?;
    let head_dim_v = m.usize_or("attention.value_length", head_dim)?;
    if head_dim % 2 != 0 {
        return Err(metadata("gemma3.attention.key_length", "must be even"));
    }
    let n_vocab = match g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        Some(tokens) => tokens.len(),
        None => m.usize("vocab_size")?,
    };
    let rope_freq_scale = match m.str("rope.scaling.type") {
        None | Some("none") => 1.0,
        Some("linear") => 1.0 / m.f32_or("rope.scaling.factor", 1.0)?,
        Some(other) => {
            return Err(metadata(
                "gemma3.rope.scaling.type",
                format!("'{other}' is not supported (none, linear)"),
            ));
        }
    };
    let window = m.usize_or("attention.sliding_window", 4096)?;
    let hp = HParams {
        n_vocab,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv,
        head_dim,
        head_dim_v,
        n_ff: m.usize("feed_forward_length")?,
        rms_eps: m.f32_or("attention.layer_norm_rms_epsilon", 1e-6)?,
        rope_dim: head_dim,
        rope_style: RopeStyle::Halves,
        rope_freq_scale,
        n_ctx_train: m.usize_or("context_length", 32768)?,
        activation: Activation::GeluTanh,
        embd_scale: (n_embd as f32).sqrt(),
        attn_scale: 1.0 / (head_dim as f32).sqrt(),
    };
    let rope_base_global = m.f32_or("rope.freq_base", 1_000_000.0)?;

    let token_embd = tensor_ref(g, "token_embd.weight", &[n_embd, n_vocab])?;
    let output = optional_tensor_ref(g, "output.weight", &[n_embd, n_vocab])?
        .unwrap_or_else(|| token_embd.clone());
    let mut layers = Vec::with_capacity(hp.n_layer);
    for i in 0..hp.n_layer {
        let t = |name: &str, dims: &[usize]| tensor_ref(g, &format!("blk.{i}.{name}.weight"), dims);
        let local = i % SWA_PATTERN < SWA_PATTERN - 1;
        layers.push(LayerWeights {
            attn_norm: t("attn_norm", &[n_embd])?,
            wq: t("attn_q", &[n_embd, n_head * head_dim])?,
            wk: t("attn_k", &[n_embd, n_head_kv * head_dim])?,
            wv: t("attn_v", &[n_embd, n_head_kv * head_dim_v])?,
            wo: t("attn_output", &[n_head * head_dim_v, n_embd])?,
            q_norm: Some(t("attn_q_norm", &[head_dim])?),
            k_norm: Some(t("attn_k_norm", &[head_dim])?),
            post_attn_norm: Some(t("post_attention_norm", &[n_embd])?),
            ffn_norm: t("ffn_norm", &[n_embd])?,
            w_gate: t("ffn_gate", &[n_embd, hp.n_ff])?,
            w_up: t("ffn_up", &[n_embd, hp.n_ff])?,
            w_down: t("ffn_down", &[hp.n_ff, n_embd])?,
            post_ffn_norm: Some(t("post_ffw_norm", &[n_embd])?),
            rope_base: if local {
                ROPE_BASE_LOCAL
            } else {
                rope_base_global
            },
            // llama.cpp scales positions on the global layers only (the local layers use the
            // sliding-window defaults, scale 1).
            rope_freq_scale: if local { 1.0 } else { hp.rope_freq_scale },
            sliding_window: local.then_some(window),
        });
    }
    let weights = Weights {
        output_norm: tensor_ref(g, "output_norm.weight", &[n_embd])?,
        token_embd,
        output,
        layers,
        rope_freqs: None,
    };
    Ok(ModelDesc {
        hparams: hp,
        weights,
    })
}
