//! The architecture registry: one file per architecture, looked up by `general.architecture`.
//!
//! An architecture's loader reads its hyper-parameters and finds its weights; the forward pass
//! is shared and reads the differences (norm placement, activation, RoPE pairing, sliding
//! windows) from [`crate::model::HParams`] and [`crate::model::LayerWeights`]. Nothing outside
//! this module matches on architecture names.

mod gemma3;
mod llama;

use crate::error::{Error, Result, metadata};
use crate::gguf::Gguf;
use crate::model::ModelDesc;

/// One supported architecture.
#[derive(Debug)]
pub struct Arch {
    /// The `general.architecture` value.
    pub name: &'static str,
    /// Reads hyper-parameters and weight locations.
    pub load: fn(&Gguf) -> Result<ModelDesc>,
}

const REGISTRY: &[&Arch] = &[&llama::LLAMA, &gemma3::GEMMA3];

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
    fn key(&self, suffix: &str) -> String {
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
