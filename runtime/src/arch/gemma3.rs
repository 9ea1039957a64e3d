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

use super::{Arch, Meta, base_hparams, desc, read_layers, weights};
use crate::error::{Result, metadata};
use crate::gguf::Gguf;
use crate::model::{Activation, ModelDesc, RopeStyle};

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
    let mut hp = base_hparams(&m, 32768, 1e-6)?;
    if hp.head_dim % 2 != 0 {
        return Err(metadata("gemma3.attention.key_length", "must be even"));
    }
    // Gemma rotates the whole head.
    hp.rope_dim = hp.head_dim;
    hp.rope_style = RopeStyle::Halves;
    hp.activation = Activation::GeluTanh;
    hp.embd_scale = (hp.n_embd as f32).sqrt();
    let window = m.usize_or("attention.sliding_window", 4096)?;
    let rope_base_global = m.f32_or("rope.freq_base", 1_000_000.0)?;
    let mut layers = read_layers(
        g,
        &hp,
        rope_base_global,
        &["q_norm", "k_norm", "post_attn_norm", "post_ffn_norm"],
    )?;
    for (i, l) in layers.iter_mut().enumerate() {
        if i % SWA_PATTERN < SWA_PATTERN - 1 {
            l.rope_base = ROPE_BASE_LOCAL;
            // llama.cpp scales positions on the global layers only (the local layers use the
            // sliding-window defaults, scale 1).
            l.rope_freq_scale = 1.0;
            l.sliding_window = Some(window);
        }
    }
    let mut w = weights(g, &hp, layers)?;
    // Gemma 3 has no frequency factors; a stray tensor of that name is not read.
    w.rope_freqs = None;
    Ok(desc(hp, w))
}
