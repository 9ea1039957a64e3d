//! `qwen2`: Qwen 2 and Qwen 2.5 (and their Coder and Math variants).
//!
//! Llama's block with biases on the query, key and value projections, RoPE on halves (NEOX)
//! with base 1e6 by default, RMS epsilon 1e-6; small models tie the output head to the
//! embedding.

use super::{Arch, Meta, base_hparams, desc, read_layers, weights};
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::{ModelDesc, RopeStyle};

pub(super) static QWEN2: Arch = Arch {
    name: "qwen2",
    load,
};

fn load(g: &Gguf) -> Result<ModelDesc> {
    let m = Meta { g, arch: "qwen2" };
    let mut hp = base_hparams(&m, 32768, 1e-6)?;
    hp.rope_style = RopeStyle::Halves;
    let rope_base = m.f32_or("rope.freq_base", 1_000_000.0)?;
    let layers = read_layers(g, &hp, rope_base, &["bq", "bk", "bv"])?;
    Ok(desc(hp.clone(), weights(g, &hp, layers)?))
}
