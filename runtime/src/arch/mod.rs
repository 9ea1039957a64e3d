//! The architecture registry: one file per architecture, looked up by `general.architecture`.
//!
//! An architecture's loader reads its hyper-parameters and finds its weights; the forward pass
//! is shared and reads the differences (norm placement, activation, RoPE pairing, sliding
//! windows) from [`crate::model::HParams`] and [`crate::model::LayerWeights`]. Nothing outside
//! this module matches on architecture names.

mod gemma3;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

use crate::error::{Error, Result, metadata};
use crate::gguf::Gguf;
use crate::model::{
    Activation, HParams, LayerWeights, ModelDesc, RopeStyle, TensorRef, Weights,
    optional_tensor_ref, tensor_ref,
};

/// One supported architecture.
#[derive(Debug)]
pub struct Arch {
    /// The `general.architecture` value.
    pub name: &'static str,
    /// Reads hyper-parameters and weight locations.
    pub load: fn(&Gguf) -> Result<ModelDesc>,
}

const REGISTRY: &[&Arch] = &[
    &llama::LLAMA,
    &gemma3::GEMMA3,
    &qwen2::QWEN2,
    &qwen3::QWEN3,
    &phi3::PHI3,
];

/// Names of all supported architectures.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|a| a.name).collect()
}

/// The architecture of a file.
pub(crate) fn lookup(g: &Gguf) -> Result<&'static Arch> {
    let name = g
        .architecture()
        .ok_or_else(|| metadata("general.architecture", "missing"))?;
    REGISTRY
        .iter()
        .copied()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::UnsupportedArchitecture(name.to_owned()))
}

/// Typed access to `<arch>.<suffix>` keys.
pub(crate) struct Meta<'a> {
    pub g: &'a Gguf,
    pub arch: &'a str,
}

impl Meta<'_> {
    /// The full key `<arch>.<suffix>`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch)
    }

    /// A required positive integer that fits usize.
    pub fn usize(&self, suffix: &str) -> Result<usize> {
        let key = self.key(suffix);
        let v = self
            .g
            .get(&key)
            .ok_or_else(|| metadata(&key, "missing"))?
            .as_u64()
            .ok_or_else(|| metadata(&key, "not a non-negative integer"))?;
        // Bound every size by something a small device could ever hold, so that products of
        // sizes cannot overflow later.
        if v == 0 || v > (1 << 24) {
            return Err(metadata(&key, format!("{v} is out of range")));
        }
        Ok(v as usize)
    }

    /// An optional positive integer.
    pub fn usize_or(&self, suffix: &str, default: usize) -> Result<usize> {
        if self.g.get(&self.key(suffix)).is_none() {
            return Ok(default);
        }
        self.usize(suffix)
    }

    /// An optional finite float.
    pub fn f32_or(&self, suffix: &str, default: f32) -> Result<f32> {
        let key = self.key(suffix);
        match self.g.get(&key) {
            None => Ok(default),
            Some(v) => {
                let f = v.as_f64().ok_or_else(|| metadata(&key, "not a number"))? as f32;
                if !f.is_finite() {
                    return Err(metadata(&key, format!("{f} is not finite")));
                }
                Ok(f)
            }
        }
    }

    /// An optional string.
    pub fn str(&self, suffix: &str) -> Option<&str> {
        self.g.get_str(&self.key(suffix))
    }
}

/// The hyper-parameters every architecture reads the same way (`<arch>.embedding_length`,
/// heads, head sizes, FFN width, RMS epsilon, RoPE dimensions and linear scaling, context
/// length), with Llama's defaults for the rest: RoPE on adjacent pairs, SwiGLU, no embedding
/// scale, attention scaled by 1/sqrt(head_dim). A loader changes what its architecture does
/// differently. `n_ctx` and `rms_eps` are the defaults of `context_length` and the RMS epsilon
/// where the file lacks them.
pub(crate) fn base_hparams(m: &Meta<'_>, n_ctx: usize, rms_eps: f32) -> Result<HParams> {
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    let n_head_kv = m.usize_or("attention.head_count_kv", n_head)?;
    if n_head % n_head_kv != 0 {
        return Err(metadata(
            &m.key("attention.head_count_kv"),
            format!("{n_head} query heads are not a multiple of {n_head_kv} kv heads"),
        ));
    }
    let head_dim = m.usize_or("attention.key_length", n_embd / n_head)?;
    let head_dim_v = m.usize_or("attention.value_length", head_dim)?;
    let rope_dim = m.usize_or("rope.dimension_count", head_dim)?;
    if rope_dim > head_dim || rope_dim % 2 != 0 {
        return Err(metadata(
            &m.key("rope.dimension_count"),
            format!("{rope_dim} must be even and at most the head size {head_dim}"),
        ));
    }
    let n_vocab = match m.g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        Some(tokens) => tokens.len(),
        None => m.usize("vocab_size")?,
    };
    let rope_freq_scale = match m.str("rope.scaling.type") {
        // LongRoPE's scaling is in its frequency factors (`rope_factors_long/short`).
        None | Some("none") | Some("longrope") => 1.0,
        Some("linear") => 1.0 / m.f32_or("rope.scaling.factor", 1.0)?,
        Some(other) => {
            return Err(metadata(
                &m.key("rope.scaling.type"),
                format!("'{other}' is not supported (none, linear, longrope)"),
            ));
        }
    };
    let n_ctx_train = m.usize_or("context_length", n_ctx)?;
    Ok(HParams {
        n_vocab,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv,
        head_dim,
        head_dim_v,
        n_ff: m.usize("feed_forward_length")?,
        rms_eps: m.f32_or("attention.layer_norm_rms_epsilon", rms_eps)?,
        rope_dim,
        rope_style: RopeStyle::Adjacent,
        rope_freq_scale,
        n_ctx_train,
        activation: Activation::Silu,
        embd_scale: 1.0,
        attn_scale: 1.0 / (head_dim as f32).sqrt(),
        rope_attn_factor: m.f32_or("rope.scaling.attn_factor", 1.0)?,
        n_ctx_orig: m.usize_or("rope.scaling.original_context_length", n_ctx_train)?,
    })
}

/// Every block through [`LayerWeights::read`], each checked for the optional tensors the
/// architecture `requires`, with RoPE base `rope_base`.
pub(crate) fn read_layers(
    g: &Gguf,
    hp: &HParams,
    rope_base: f32,
    requires: &[&str],
) -> Result<Vec<LayerWeights>> {
    (0..hp.n_layer)
        .map(|i| {
            let l = LayerWeights::read(g, i, hp, rope_base)?;
            l.require(i, requires)?;
            Ok(l)
        })
        .collect()
}

/// The embedding, the final norm and the output head (the embedding itself when
/// `output.weight` is absent: a tied head), around `layers`.
pub(crate) fn weights(g: &Gguf, hp: &HParams, layers: Vec<LayerWeights>) -> Result<Weights> {
    let token_embd = tensor_ref(g, "token_embd.weight", &[hp.n_embd, hp.n_vocab])?;
    let output: Option<TensorRef> =
        optional_tensor_ref(g, "output.weight", &[hp.n_embd, hp.n_vocab])?;
    Ok(Weights {
        output_norm: tensor_ref(g, "output_norm.weight", &[hp.n_embd])?,
        output: output.unwrap_or_else(|| token_embd.clone()),
        token_embd,
        layers,
        rope_freqs: optional_tensor_ref(g, "rope_freqs.weight", &[hp.rope_dim / 2])?,
        rope_freqs_long: None,
    })
}

/// The description of a model from its parts.
pub(crate) fn desc(hparams: HParams, weights: Weights) -> ModelDesc {
    ModelDesc { hparams, weights }
}
