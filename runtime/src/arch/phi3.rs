//! `phi3`: Phi-3 and Phi-3.5 mini / medium, Phi-4-mini.
//!
//! Llama's block with Q, K and V fused in one `attn_qkv` matrix and the FFN's gate and up fused
//! in one `ffn_up` of `2 * n_ff` rows (gate first), both split at load into views of the mapped
//! file; RoPE on halves (NEOX). Long-context variants carry LongRoPE frequency factors
//! `rope_factors_short` / `rope_factors_long` (the long ones are used when a context's span
//! exceeds `phi3.rope.scaling.original_context_length`) and a magnitude correction
//! `phi3.rope.scaling.attn_factor` on the rotated elements. Like llama.cpp (which turned Phi's
//! sliding window off), every layer attends globally. The head is untied unless
//! `output.weight` is absent.

use super::{Arch, Meta, base_hparams, desc, read_layers, weights};
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::{ModelDesc, RopeStyle, optional_tensor_ref};

pub(super) static PHI3: Arch = Arch { name: "phi3", load };

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "phi3" };
    let mut hp = base_hparams(&m, 4096, 1e-5)?;
    hp.rope_style = RopeStyle::Halves;
    let rope_base = m.f32_or("rope.freq_base", 10000.0)?;
    let layers = read_layers(g, &hp, rope_base, &[])?;
    let mut w = weights(g, &hp, layers)?;
    let pairs = [hp.rope_dim / 2];
    if w.rope_freqs.is_none() {
        w.rope_freqs = optional_tensor_ref(g, "rope_factors_short.weight", &pairs)?;
    }
    w.rope_freqs_long = optional_tensor_ref(g, "rope_factors_long.weight", &pairs)?;
    Ok(desc(hp, w))
}
