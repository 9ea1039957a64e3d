//! `llama`: Llama 1/2/3, Mistral, SmolLM, TinyLlama and the rest of the family.
//!
//! Pre-norm blocks (RMS norm → attention → residual → RMS norm → SwiGLU FFN → residual), RoPE on
//! adjacent pairs (the GGUF converter permutes Hugging Face's Q/K rows into that order), grouped
//! query attention, and an output projection tied to the embedding when `output.weight` is
//! absent.

use super::{Arch, Meta};
use crate::error::{Result, metadata};
use crate::gguf::Gguf;
use crate::model::{
    Activation, HParams, LayerWeights, ModelDesc, RopeStyle, Weights, optional_tensor_ref,
    tensor_ref,
};

pub(super) static LLAMA: Arch = Arch {
    name: "llama",
    load,
};

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "llama" };
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    let n_head_kv = m.usize_or("attention.head_count_kv", n_head)?;
    if n_head % n_head_kv != 0 {
        return Err(metadata(
            "llama.attention.head_count_kv",
            format!("{n_head} query heads are not a multiple of {n_head_kv} kv heads"),
        ));
    }
    let head_dim = m.usize_or("attention.key_length", n_embd / n_head)?;
    let head_dim_v = m.usize_or("attention.value_length", head_dim)?;
    let rope_dim = m.usize_or("rope.dimension_count", head_dim)?;
    if rope_dim > head_dim || rope_dim % 2 != 0 {
        return Err(metadata(
            "llama.rope.dimension_count",
            format!("{rope_dim} must be even and at most the head size {head_dim}"),
        ));
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
                "llama.rope.scaling.type",
                format!("'{other}' is not supported (none, linear)"),
            ));
        }
    };
    let hp = HParams {
        n_vocab,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv,
        head_dim,
        head_dim_v,
        n_ff: m.usize("feed_forward_length")?,
        rms_eps: m.f32_or("attention.layer_norm_rms_epsilon", 1e-5)?,
        rope_dim,
        rope_style: RopeStyle::Adjacent,
        rope_freq_scale,
        n_ctx_train: m.usize_or("context_length", 2048)?,
        activation: Activation::Silu,
        embd_scale: 1.0,
        attn_scale: 1.0 / (head_dim as f32).sqrt(),
    };
    let rope_base = m.f32_or("rope.freq_base", 10000.0)?;

    let token_embd = tensor_ref(g, "token_embd.weight", &[n_embd, n_vocab])?;
    let output = optional_tensor_ref(g, "output.weight", &[n_embd, n_vocab])?
        .unwrap_or_else(|| token_embd.clone());
    let mut layers = Vec::with_capacity(hp.n_layer);
    for i in 0..hp.n_layer {
        let t = |name: &str, dims: &[usize]| tensor_ref(g, &format!("blk.{i}.{name}.weight"), dims);
        layers.push(LayerWeights {
            attn_norm: t("attn_norm", &[n_embd])?,
            wq: t("attn_q", &[n_embd, n_head * head_dim])?,
            wk: t("attn_k", &[n_embd, n_head_kv * head_dim])?,
            wv: t("attn_v", &[n_embd, n_head_kv * head_dim_v])?,
            wo: t("attn_output", &[n_head * head_dim_v, n_embd])?,
            q_norm: None,
            k_norm: None,
            post_attn_norm: None,
            ffn_norm: t("ffn_norm", &[n_embd])?,
            w_gate: t("ffn_gate", &[n_embd, hp.n_ff])?,
            w_up: t("ffn_up", &[n_embd, hp.n_ff])?,
            w_down: t("ffn_down", &[hp.n_ff, n_embd])?,
            post_ffn_norm: None,
            rope_base,
            rope_freq_scale: hp.rope_freq_scale,
            sliding_window: None,
        });
    }
    let weights = Weights {
        output_norm: tensor_ref(g, "output_norm.weight", &[n_embd])?,
        token_embd,
        output,
        layers,
        rope_freqs: optional_tensor_ref(g, "rope_freqs.weight", &[rope_dim / 2])?,
    };
    Ok(ModelDesc {
        hparams: hp,
        weights,
    })
}
