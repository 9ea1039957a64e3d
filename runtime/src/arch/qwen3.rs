//! `qwen3`: Qwen 3 (dense).
//!
//! Qwen 2's block without the projection biases and with an RMS norm of each query and key head
//! before RoPE (`attn_q_norm`, `attn_k_norm`); head sizes come from `qwen3.attention.key_length`
//! and `value_length` (128 in the released models, not `n_embd / n_head`). RoPE on halves.

use super::{Arch, Meta, base_hparams, desc, read_layers, weights};
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::{ModelDesc, RopeStyle};

pub(super) static QWEN3: Arch = Arch {
    name: "qwen3",
    load,
};

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "qwen3" };
    let mut hp = base_hparams(&m, 32768, 1e-6)?;
    hp.rope_style = RopeStyle::Halves;
    let rope_base = m.f32_or("rope.freq_base", 1_000_000.0)?;
    let layers = read_layers(g, &hp, rope_base, &["q_norm", "k_norm"])?;
    Ok(desc(hp.clone(), weights(g, &hp, layers)?))
}
