//! A loaded model: the mapped GGUF file, its hyper-parameters and typed views of its weights.
//!
//! Weights are never copied: a [`TensorRef`] records where a tensor's bytes lie in the map,
//! and [`Model::data`] hands them out. Which tensors exist and what the hyper-parameters mean is
//! decided by the architecture's file in [`crate::arch`].

use std::ops::Range;
use std::path::Path;

use eddy_quant::GgmlType;

use crate::arch::{self, Arch};
use crate::error::{Result, tensor};
use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;

/// How RoPE pairs the elements of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (llama.cpp's "normal" mode; the GGUF converter
    /// permutes Llama's Q/K weights into this order).
    Adjacent,
    /// Pairs `(x[i], x[i + d/2])` (llama.cpp's NEOX mode; Gemma, Qwen, …).
    Halves,
}

/// The FFN's gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(x)` (SwiGLU).
    Silu,
    /// GELU, tanh approximation (GeGLU).
    GeluTanh,
}

/// Hyper-parameters, read from `<arch>.*` metadata by the architecture's loader.
#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    /// Vocabulary size (rows of the embedding).
    pub n_vocab: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of one key (and query) head.
    pub head_dim: usize,
    /// Width of one value head.
    pub head_dim_v: usize,
    /// Hidden width of the FFN.
    pub n_ff: usize,
    /// RMS norm epsilon.
    pub rms_eps: f32,
    /// Number of head elements RoPE rotates (the rest pass through).
    pub rope_dim: usize,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Position scale (1 / linear rope scaling factor).
    pub rope_freq_scale: f32,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    /// Gate activation of the FFN.
    pub activation: Activation,
    /// Multiplier applied to token embeddings (Gemma: sqrt(n_embd)); 1 for Llama.
    pub embd_scale: f32,
    /// Multiplier applied to attention scores (usually 1/sqrt(head_dim)).
    pub attn_scale: f32,
}

/// Where a weight matrix (or vector) lies in the file, with its validated shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// Element type.
    pub ty: GgmlType,
    /// Row length (GGML `ne[0]`).
    pub cols: usize,
    /// Number of rows (product of the other dimensions).
    pub rows: usize,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

impl TensorRef {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() as usize * self.ty.type_size() as usize
    }
}

/// Weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMS norm before attention.
    pub attn_norm: TensorRef,
    /// Query projection, `n_head*head_dim` rows of `n_embd`.
    pub wq: TensorRef,
    /// Key projection, `n_head_kv*head_dim` rows.
    pub wk: TensorRef,
    /// Value projection, `n_head_kv*head_dim_v` rows.
    pub wv: TensorRef,
    /// Attention output projection, `n_embd` rows of `n_head*head_dim_v`.
    pub wo: TensorRef,
    /// Per-head RMS norm of queries (Gemma 3).
    pub q_norm: Option<TensorRef>,
    /// Per-head RMS norm of keys (Gemma 3).
    pub k_norm: Option<TensorRef>,
    /// RMS norm of the attention output before the residual add (Gemma).
    pub post_attn_norm: Option<TensorRef>,
    /// RMS norm before the FFN.
    pub ffn_norm: TensorRef,
    /// FFN gate, `n_ff` rows of `n_embd`.
    pub w_gate: TensorRef,
    /// FFN up, `n_ff` rows of `n_embd`.
    pub w_up: TensorRef,
    /// FFN down, `n_embd` rows of `n_ff`.
    pub w_down: TensorRef,
    /// RMS norm of the FFN output before the residual add (Gemma).
    pub post_ffn_norm: Option<TensorRef>,
    /// RoPE base frequency of this layer.
    pub rope_base: f32,
    /// RoPE position scale of this layer (linear scaling; 1 = none).
    pub rope_freq_scale: f32,
    /// Sliding-window size if this layer attends locally only (Gemma 3 local layers).
    pub sliding_window: Option<usize>,
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding, `n_vocab` rows of `n_embd`.
    pub token_embd: TensorRef,
    /// Final RMS norm.
    pub output_norm: TensorRef,
    /// Output projection (the embedding itself when the model ties them).
    pub output: TensorRef,
    /// Blocks.
    pub layers: Vec<LayerWeights>,
    /// Per-frequency RoPE divisors (`rope_freqs.weight`, Llama 3 style scaling), if present.
    pub rope_freqs: Option<TensorRef>,
}

/// What an architecture's loader produces.
#[derive(Clone, Debug)]
pub struct ModelDesc {
    /// Hyper-parameters.
    pub hparams: HParams,
    /// Weights.
    pub weights: Weights,
}

/// Norm weights of one block as f32 values (read once at load, shared by every context).
#[derive(Clone, Debug)]
pub struct LayerNorms {
    /// Before attention.
    pub attn: Vec<f32>,
    /// Before the FFN.
    pub ffn: Vec<f32>,
    /// Per query head (Gemma 3).
    pub q: Option<Vec<f32>>,
    /// Per key head (Gemma 3).
    pub k: Option<Vec<f32>>,
    /// Of the attention output (Gemma).
    pub post_attn: Option<Vec<f32>>,
    /// Of the FFN output (Gemma).
    pub post_ffn: Option<Vec<f32>>,
}

/// The model's small f32 vectors: norm weights and RoPE frequency factors.
#[derive(Clone, Debug)]
pub struct Norms {
    /// Per block.
    pub layers: Vec<LayerNorms>,
    /// The final norm.
    pub output: Vec<f32>,
    /// RoPE frequency divisors (`rope_freqs.weight`), if the model has them.
    pub rope_factors: Option<Vec<f32>>,
}

impl Norms {
    fn read(gguf: &Gguf, w: &Weights) -> Result<Norms> {
        let f = |t: &TensorRef| f32_vector(gguf, t);
        let mut layers = Vec::with_capacity(w.layers.len());
        for l in &w.layers {
            layers.push(LayerNorms {
                attn: f(&l.attn_norm)?,
                ffn: f(&l.ffn_norm)?,
                q: l.q_norm.as_ref().map(f).transpose()?,
                k: l.k_norm.as_ref().map(f).transpose()?,
                post_attn: l.post_attn_norm.as_ref().map(f).transpose()?,
                post_ffn: l.post_ffn_norm.as_ref().map(f).transpose()?,
            });
        }
        Ok(Norms {
            layers,
            output: f(&w.output_norm)?,
            rope_factors: w.rope_freqs.as_ref().map(f).transpose()?,
        })
    }
}

/// A 1-D F32 tensor copied out as f32 values.
fn f32_vector(gguf: &Gguf, t: &TensorRef) -> Result<Vec<f32>> {
    if t.ty != GgmlType::F32 {
        return Err(tensor("norm", format!("type {} (expected F32)", t.ty)));
    }
    Ok(gguf.bytes()[t.range.clone()]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A loaded model. Cheap to share by reference between contexts; immutable.
#[derive(Debug)]
pub struct Model {
    gguf: Gguf,
    arch: &'static Arch,
    desc: ModelDesc,
    tokenizer: Tokenizer,
    norms: Norms,
    fingerprint: u64,
}

impl Model {
    /// Maps a GGUF file and loads the model it holds.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::from_gguf(Gguf::open(path)?)
    }

    /// Loads the model held by an already parsed file.
    pub fn from_gguf(gguf: Gguf) -> Result<Model> {
        let arch = arch::lookup(&gguf)?;
        let desc = (arch.load)(&gguf)?;
        check_types(&desc)?;
        let tokenizer =
            Tokenizer::from_gguf(&gguf).map_err(|e| crate::Error::Tokenizer(e.to_string()))?;
        if tokenizer.n_tokens() != desc.hparams.n_vocab {
            return Err(crate::Error::Tokenizer(format!(
                "{} tokens, but the embedding has {} rows",
                tokenizer.n_tokens(),
                desc.hparams.n_vocab
            )));
        }
        let norms = Norms::read(&gguf, &desc.weights)?;
        let fingerprint = fingerprint(&gguf);
        Ok(Model {
            gguf,
            arch,
            desc,
            tokenizer,
            norms,
            fingerprint,
        })
    }

    /// Parses a GGUF file held in memory that lives as long as the program (zero-copy).
    pub fn from_static(bytes: &'static [u8]) -> Result<Model> {
        Self::from_gguf(Gguf::from_static(bytes)?)
    }

    /// Parses a GGUF file held in memory, taking ownership of the bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Model> {
        Self::from_gguf(Gguf::from_vec(bytes)?)
    }

    /// Norm weights and RoPE factors as f32.
    pub fn norms(&self) -> &Norms {
        &self.norms
    }

    /// A 64-bit hash of the file's header (metadata and tensor table) and length: two models
    /// with equal fingerprints are the same file for all practical purposes. Saved context
    /// states carry it, so a state is never loaded into a context of another model.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The parsed file.
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// The architecture's name (`general.architecture`).
    pub fn arch_name(&self) -> &'static str {
        self.arch.name
    }

    /// Hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        &self.desc.hparams
    }

    /// The tokenizer read from the file's metadata.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Weights.
    pub fn weights(&self) -> &Weights {
        &self.desc.weights
    }

    /// The bytes of a weight.
    pub fn data(&self, t: &TensorRef) -> &[u8] {
        // Ranges were validated against the file when the GGUF was parsed.
        &self.gguf.bytes()[t.range.clone()]
    }
}

/// FNV-1a over the header bytes and the file length.
fn fingerprint(gguf: &Gguf) -> u64 {
    let header_len = (gguf.data_offset() as usize).min(gguf.bytes().len());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in gguf.bytes()[..header_len]
        .iter()
        .chain(&gguf.file_len().to_le_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Refuses weights whose type the kernels cannot multiply yet.
fn check_types(desc: &ModelDesc) -> Result<()> {
    let w = &desc.weights;
    let mut matrices = vec![
        ("token_embd.weight".to_owned(), &w.token_embd),
        ("output.weight".to_owned(), &w.output),
    ];
    for (i, l) in w.layers.iter().enumerate() {
        for (name, t) in [
            ("attn_q", &l.wq),
            ("attn_k", &l.wk),
            ("attn_v", &l.wv),
            ("attn_output", &l.wo),
            ("ffn_gate", &l.w_gate),
            ("ffn_up", &l.w_up),
            ("ffn_down", &l.w_down),
        ] {
            matrices.push((format!("blk.{i}.{name}.weight"), t));
        }
    }
    for (name, t) in matrices {
        if !crate::linalg::supported(t.ty) {
            return Err(tensor(&name, format!("type {} is not supported yet", t.ty)));
        }
        if t.cols % t.ty.block_size() as usize != 0 {
            return Err(tensor(&name, "row length is not a whole number of blocks"));
        }
    }
    Ok(())
}

/// Looks up a tensor and checks its shape (`dims` innermost first) and, if given, its type.
pub(crate) fn tensor_ref(g: &Gguf, name: &str, dims: &[usize]) -> Result<TensorRef> {
    let t = g.tensor(name).ok_or_else(|| tensor(name, "missing"))?;
    let got: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    // A trailing dimension of 1 is the same shape (`[n]` vs `[n, 1]`).
    let trim = |d: &[usize]| -> Vec<usize> {
        let mut v = d.to_vec();
        while v.len() > 1 && v.last() == Some(&1) {
            v.pop();
        }
        v
    };
    if trim(&got) != trim(dims) {
        return Err(tensor(name, format!("shape {got:?}, expected {dims:?}")));
    }
    let cols = dims.first().copied().unwrap_or(1);
    Ok(TensorRef {
        ty: t.ty,
        cols,
        rows: dims.iter().skip(1).product(),
        range: t.file_offset as usize..t.file_offset as usize + t.data.len(),
    })
}

/// Like [`tensor_ref`], `None` when the tensor is absent (a wrong shape is still an error).
pub(crate) fn optional_tensor_ref(
    g: &Gguf,
    name: &str,
    dims: &[usize],
) -> Result<Option<TensorRef>> {
    if g.tensor(name).is_none() {
        return Ok(None);
    }
    tensor_ref(g, name, dims).map(Some)
}
