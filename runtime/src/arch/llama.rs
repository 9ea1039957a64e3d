//! `llama`: Llama 1/2/3, Mistral, SmolLM, TinyLlama and the rest of the family.
//!
//! Pre-norm blocks (RMS norm → attention → residual → RMS norm → SwiGLU FFN → residual), RoPE on
//! adjacent pairs (the GGUF converter permutes Hugging Face's Q/K rows into that order), grouped
//! query attention with any ratio, Llama 3's RoPE frequency factors (`rope_freqs.weight`) where
//! present, and an output projection tied to the embedding when `output.weight` is absent. These
//! are [`super::base_hparams`]' defaults: the loader adds nothing.

use super::{Arch, Meta, base_hparams, desc, read_layers, weights};
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::ModelDesc;

pub(super) static LLAMA: Arch = Arch {
    name: "llama",
    load,
};

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "llama" };
    let hp = base_hparams(&m, 2048, 1e-5)?;
    let rope_base = m.f32_or("rope.freq_base", 10000.0)?;
    let layers = read_layers(g, &hp, rope_base, &[])?;
    Ok(desc(hp.clone(), weights(g, &hp, layers)?))
}
