//! A loaded model: the mapped GGUF file, its hyper-parameters and typed views of its weights.
//!
//! A [`TensorRef`] records where a tensor's bytes lie in the map, and [`Model::data`] hands them
//! out. Which tensors exist and what the hyper-parameters mean is decided by the architecture's
//! file in [`crate::arch`].
//!
//! Weights stay mapped, with two exceptions measured to pay for themselves. Weight matrices of
//! the formats with a product on their row-interleaved layout in the active tier
//! ([`eddy_quant::interleaved`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K on AVX-512,
//! the first four on AVX2) are copied once at load into that layout (the same size), and the
//! mapped pages they came from are dropped from the resident set ([`Gguf::release_pages`]), so
//! the process holds each byte once. Decoding on the copy reads the same bytes with a third of
//! the instructions (these formats' row-by-row decoding was slower than memory on a fast core),
//! and batched prefill packs its panels from it; both compute the panel kernels' arithmetic, so
//! these products are the same bits for any batch size. A tied embedding (the output head's
//! matrix) is copied too, and its rows are then read from the copy. The copies share one
//! buffer, in the order a forward pass reads them, on huge pages where the system gives them
//! ([`HugePageBuffer`]); on Linux x86-64 with transparent huge pages, the other weight matrices
//! are copied there too, as they are (`plain_copies`), and [`Model::data`] hands out those
//! copies. [`Model::repacked_bytes`] reports the copies' size. A model parsed from memory
//! ([`Model::from_vec`], [`Model::from_static`]) keeps its bytes as they are. The constant
//! `INTERLEAVED` in this module's source gives the measurements.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "constraint")]
use std::sync::OnceLock;

use eddy_quant::GgmlType;

use crate::arch::{self, Arch};
#[cfg(feature = "constraint")]
use crate::constraint::{ConstraintError, ConstraintVocab};
use crate::error::{Result, tensor};
use crate::gguf::Gguf;
pub use crate::memory::HugePageBuffer;
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
    /// Multiplier of the rotated elements of queries and keys (`<arch>.rope.scaling.attn_factor`,
    /// Phi-3's LongRoPE magnitude correction; 1 for most models).
    pub rope_attn_factor: f32,
    /// Context length the RoPE factors were trained for
    /// (`<arch>.rope.scaling.original_context_length`, else `n_ctx_train`): a context whose
    /// attention span exceeds it uses the long frequency factors where the model has them.
    pub n_ctx_orig: usize,
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

    /// Consecutive groups of `rows` rows as tensors of their own: views of the same bytes (a
    /// fused tensor's parts). The row counts must add up to `self.rows`; otherwise empty.
    pub fn split_rows(&self, rows: &[usize]) -> Vec<TensorRef> {
        if rows.iter().sum::<usize>() != self.rows {
            return Vec::new();
        }
        let rb = self.row_bytes();
        let mut at = self.range.start;
        rows.iter()
            .map(|&r| {
                let part = TensorRef {
                    ty: self.ty,
                    cols: self.cols,
                    rows: r,
                    range: at..at + r * rb,
                };
                at += r * rb;
                part
            })
            .collect()
    }
}

/// Weights of one transformer block. The required ones are read by `LayerWeights::read`; an
/// optional tensor (a bias, a per-head norm, a post-norm) is used by the forward pass wherever
/// it is present, so a new architecture only names which of them it requires.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMS norm before attention.
    pub attn_norm: TensorRef,
    /// Query projection, `n_head*head_dim` rows of `n_embd` (a view into `attn_qkv` when the
    /// file fuses Q, K and V, as Phi-3 does).
    pub wq: TensorRef,
    /// Key projection, `n_head_kv*head_dim` rows.
    pub wk: TensorRef,
    /// Value projection, `n_head_kv*head_dim_v` rows.
    pub wv: TensorRef,
    /// Attention output projection, `n_embd` rows of `n_head*head_dim_v`.
    pub wo: TensorRef,
    /// Biases of the query, key and value projections (Qwen 2).
    pub bq: Option<TensorRef>,
    /// See `bq`.
    pub bk: Option<TensorRef>,
    /// See `bq`.
    pub bv: Option<TensorRef>,
    /// Per-head RMS norm of queries (Gemma 3, Qwen 3).
    pub q_norm: Option<TensorRef>,
    /// Per-head RMS norm of keys (Gemma 3, Qwen 3).
    pub k_norm: Option<TensorRef>,
    /// RMS norm of the attention output before the residual add (Gemma).
    pub post_attn_norm: Option<TensorRef>,
    /// RMS norm before the FFN.
    pub ffn_norm: TensorRef,
    /// FFN gate, `n_ff` rows of `n_embd` (the first half of a fused `ffn_up`, as in Phi-3).
    pub w_gate: TensorRef,
    /// FFN up, `n_ff` rows of `n_embd` (the second half of a fused `ffn_up`).
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

impl LayerWeights {
    /// Reads block `i` in llama.cpp's tensor names: the matrices and norms every block has
    /// (fused `attn_qkv` and fused gate+up `ffn_up` are split into views, no copy), and every
    /// optional tensor that is present. RoPE settings come from `hp`; the loader adjusts them
    /// per layer where the architecture does.
    pub(crate) fn read(g: &Gguf, i: usize, hp: &HParams, rope_base: f32) -> Result<LayerWeights> {
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        let t = |n: &str, dims: &[usize]| tensor_ref(g, &name(n), dims);
        let opt = |n: &str, dims: &[usize]| optional_tensor_ref(g, &name(n), dims);
        let bias =
            |n: &str, len: usize| optional_tensor_ref(g, &format!("blk.{i}.{n}.bias"), &[len]);
        let (d, f) = (hp.n_embd, hp.n_ff);
        let (q_rows, k_rows, v_rows) = (
            hp.n_head * hp.head_dim,
            hp.n_head_kv * hp.head_dim,
            hp.n_head_kv * hp.head_dim_v,
        );
        let (wq, wk, wv) = match opt("attn_qkv", &[d, q_rows + k_rows + v_rows])? {
            Some(qkv) => {
                let mut parts = qkv.split_rows(&[q_rows, k_rows, v_rows]).into_iter();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(q), Some(k), Some(v)) => (q, k, v),
                    _ => return Err(tensor(&name("attn_qkv"), "cannot split")),
                }
            }
            None => (
                t("attn_q", &[d, q_rows])?,
                t("attn_k", &[d, k_rows])?,
                t("attn_v", &[d, v_rows])?,
            ),
        };
        let (w_gate, w_up) = match opt("ffn_gate", &[d, f])? {
            Some(gate) => (gate, t("ffn_up", &[d, f])?),
            // No gate: `ffn_up` holds the gate rows, then the up rows.
            None => {
                let fused = t("ffn_up", &[d, 2 * f]).map_err(|_| {
                    tensor(
                        &name("ffn_gate"),
                        format!(
                            "missing (and ffn_up is not a fused gate+up of {} rows)",
                            2 * f
                        ),
                    )
                })?;
                let mut parts = fused.split_rows(&[f, f]).into_iter();
                match (parts.next(), parts.next()) {
                    (Some(g_), Some(u)) => (g_, u),
                    _ => return Err(tensor(&name("ffn_up"), "cannot split")),
                }
            }
        };
        Ok(LayerWeights {
            attn_norm: t("attn_norm", &[d])?,
            wq,
            wk,
            wv,
            wo: t("attn_output", &[hp.n_head * hp.head_dim_v, d])?,
            bq: bias("attn_q", q_rows)?,
            bk: bias("attn_k", k_rows)?,
            bv: bias("attn_v", v_rows)?,
            q_norm: opt("attn_q_norm", &[hp.head_dim])?,
            k_norm: opt("attn_k_norm", &[hp.head_dim])?,
            post_attn_norm: opt("post_attention_norm", &[d])?,
            ffn_norm: t("ffn_norm", &[d])?,
            w_gate,
            w_up,
            w_down: t("ffn_down", &[f, d])?,
            post_ffn_norm: opt("post_ffw_norm", &[d])?,
            rope_base,
            rope_freq_scale: hp.rope_freq_scale,
            sliding_window: None,
        })
    }

    /// Fails naming the first optional tensor of `names` (as in `LayerWeights`' field names:
    /// `bq`, `q_norm`, `post_attn_norm`, ...) that block `i` lacks: an architecture that always
    /// has them refuses a file without them.
    pub(crate) fn require(&self, i: usize, names: &[&str]) -> Result<()> {
        for &n in names {
            let (present, file_name) = match n {
                "bq" => (self.bq.is_some(), "attn_q.bias"),
                "bk" => (self.bk.is_some(), "attn_k.bias"),
                "bv" => (self.bv.is_some(), "attn_v.bias"),
                "q_norm" => (self.q_norm.is_some(), "attn_q_norm.weight"),
                "k_norm" => (self.k_norm.is_some(), "attn_k_norm.weight"),
                "post_attn_norm" => (self.post_attn_norm.is_some(), "post_attention_norm.weight"),
                "post_ffn_norm" => (self.post_ffn_norm.is_some(), "post_ffw_norm.weight"),
                other => (false, other),
            };
            if !present {
                return Err(tensor(&format!("blk.{i}.{file_name}"), "missing"));
            }
        }
        Ok(())
    }
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
    /// Per-frequency RoPE divisors (`rope_freqs.weight`, Llama 3 style scaling; Phi-3's
    /// `rope_factors_short.weight`), if present.
    pub rope_freqs: Option<TensorRef>,
    /// Divisors for contexts longer than `HParams::n_ctx_orig` (Phi-3's
    /// `rope_factors_long.weight`), if present.
    pub rope_freqs_long: Option<TensorRef>,
}

/// What an architecture's loader produces.
#[derive(Clone, Debug)]
pub struct ModelDesc {
    /// Hyper-parameters.
    pub hparams: HParams,
    /// Weights.
    pub weights: Weights,
}

/// Norm weights and biases of one block as f32 values (read once at load, shared by every
/// context).
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
    /// Biases of the query, key and value projections (Qwen 2).
    pub bias_q: Option<Vec<f32>>,
    /// See `bias_q`.
    pub bias_k: Option<Vec<f32>>,
    /// See `bias_q`.
    pub bias_v: Option<Vec<f32>>,
    /// Per key channel (`[n_head_kv][head_dim]`): the divisor a Q4_0 key cache applies to
    /// each key before storing it, and the factor each query gets before scoring (see
    /// `key_smoothing` in this module's source).
    pub k_smooth: Vec<f32>,
}

/// The model's small f32 vectors: norm weights, biases and RoPE frequency factors.
#[derive(Clone, Debug)]
pub struct Norms {
    /// Per block.
    pub layers: Vec<LayerNorms>,
    /// The final norm.
    pub output: Vec<f32>,
    /// RoPE frequency divisors (`rope_freqs.weight` or the short factors), if the model has
    /// them.
    pub rope_factors: Option<Vec<f32>>,
    /// RoPE frequency divisors for long contexts, if the model has them.
    pub rope_factors_long: Option<Vec<f32>>,
}

impl Norms {
    /// The RoPE frequency divisors a context uses whose queries see up to `span` tokens: the
    /// long ones when the span exceeds what the short ones were trained for (as llama.cpp
    /// chooses by context size).
    pub fn rope_factors_for(&self, span: usize, hp: &HParams) -> Option<&[f32]> {
        match &self.rope_factors_long {
            Some(long) if span > hp.n_ctx_orig => Some(long),
            _ => self.rope_factors.as_deref(),
        }
    }
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
                bias_q: l.bq.as_ref().map(f).transpose()?,
                bias_k: l.bk.as_ref().map(f).transpose()?,
                bias_v: l.bv.as_ref().map(f).transpose()?,
                k_smooth: Vec::new(),
            });
        }
        Ok(Norms {
            layers,
            output: f(&w.output_norm)?,
            rope_factors: w.rope_freqs.as_ref().map(f).transpose()?,
            rope_factors_long: w.rope_freqs_long.as_ref().map(f).transpose()?,
        })
    }
}

/// Per-channel key scales for a quantized key cache (SmoothQuant's migration, exact): each key
/// channel `c` is divided by `s_c` before it is quantized and each query channel multiplied by
/// it, so `(s∘q)·(k/s) = q·k`, while the channels whose keys are far larger than the rest (Qwen
/// 2's key biases reach 150 where most channels are near 1) no longer set the block scale for
/// all the others. `s_c` is the square root of the channel's expected magnitude, estimated from
/// the weights: `sqrt(Σ_j (W_cj γ_j)² + b_c²)` with `γ` the attention norm (unit-RMS inputs) and
/// `b` the key bias where the cache stores it, or the key norm's weight where keys are RMS-normed
/// per head. The two channels RoPE turns
/// together share one scale, so the scaling commutes with RoPE.
fn key_smoothing(gguf: &Gguf, desc: &ModelDesc, norms: &mut Norms) {
    let hp = &desc.hparams;
    let hd = hp.head_dim;
    // A Q4_0 cache of such a model stores keys without the bias (`KvStore::write_angles`): the
    // scale follows what is stored, `W·x` alone.
    let bias_apart = key_bias_with_one_rope(&desc.weights.layers, &norms.layers);
    for (lw, ln) in desc.weights.layers.iter().zip(norms.layers.iter_mut()) {
        let n = lw.wk.rows;
        let mut m2 = vec![0f64; n];
        if let Some(kn) = &ln.k {
            for (c, m) in m2.iter_mut().enumerate() {
                *m = f64::from(kn[c % kn.len()]).powi(2);
            }
        } else {
            let mut row = vec![0f32; lw.wk.cols];
            let rb = lw.wk.row_bytes();
            let data = &gguf.bytes()[lw.wk.range.clone()];
            for (c, m) in m2.iter_mut().enumerate() {
                let Some(bytes) = data.get(c * rb..(c + 1) * rb) else {
                    break;
                };
                (crate::linalg::traits(lw.wk.ty).to_float)(bytes, &mut row);
                *m = row
                    .iter()
                    .zip(&ln.attn)
                    .map(|(&w, &g)| f64::from(w * g).powi(2))
                    .sum::<f64>();
                if let Some(b) = &ln.bias_k {
                    // Kept apart from the rotated channels when `bias_apart`.
                    if !bias_apart || c % hd >= hp.rope_dim {
                        *m += f64::from(b[c]).powi(2);
                    }
                }
            }
        }
        let mut s = vec![1f32; n];
        for head in 0..n / hd {
            let m = &m2[head * hd..(head + 1) * hd];
            let max = m.iter().copied().fold(0.0, f64::max).max(1e-30);
            for i in 0..hd / 2 {
                let (a, b) = match hp.rope_style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    _ => (i, i + hd / 2),
                };
                let pair = ((m[a] + m[b]) / 2.0).max(max * 1e-6);
                // The square root of the magnitude (the fourth root of its square):
                // SmoothQuant's migration strength 0.5, the best of 0.3-1.0 measured here.
                let v = pair.sqrt().sqrt() as f32;
                s[head * hd + a] = v;
                s[head * hd + b] = v;
            }
        }
        ln.k_smooth = s;
    }
}

/// See [`Model::key_bias_with_one_rope`].
fn key_bias_with_one_rope(layers: &[LayerWeights], norms: &[LayerNorms]) -> bool {
    let first = layers.first();
    !layers.is_empty()
        && norms.iter().all(|ln| ln.bias_k.is_some())
        && layers.iter().all(|l| {
            first.is_some_and(|f| {
                l.rope_base == f.rope_base && l.rope_freq_scale == f.rope_freq_scale
            })
        })
}

/// A 1-D F32 tensor copied out as f32 values.
fn f32_vector(gguf: &Gguf, t: &TensorRef) -> Result<Vec<f32>> {
    if t.ty != GgmlType::F32 {
        return Err(tensor(
            "norm, bias or RoPE factors",
            format!("type {} (expected F32)", t.ty),
        ));
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
    tokenizer: Arc<Tokenizer>,
    norms: Norms,
    fingerprint: u64,
    /// Row-interleaved copies of weight matrices.
    repacked: Copies,
    /// The vocabulary as constrained decoding sees it, built on first use.
    #[cfg(feature = "constraint")]
    constraint_vocab: OnceLock<std::result::Result<Arc<ConstraintVocab>, ConstraintError>>,
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
        let mut norms = Norms::read(&gguf, &desc.weights)?;
        key_smoothing(&gguf, &desc, &mut norms);
        if desc.hparams.activation == Activation::GeluTanh {
            // Built here, once per process, so that no decode step allocates it.
            crate::ops::gelu_f16_table();
        }
        let fingerprint = fingerprint(&gguf);
        let repacked = interleave_weights(&gguf, &desc.weights);
        Ok(Model {
            gguf,
            arch,
            desc,
            tokenizer: Arc::new(tokenizer),
            norms,
            fingerprint,
            repacked,
            #[cfg(feature = "constraint")]
            constraint_vocab: OnceLock::new(),
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

    /// The vocabulary as constrained decoding sees it ([`crate::constraint`]): built on the
    /// first call (tens of milliseconds and a few MB for a 150k-token vocabulary), then shared
    /// by every caller.
    #[cfg(feature = "constraint")]
    pub fn constraint_vocab(&self) -> std::result::Result<Arc<ConstraintVocab>, ConstraintError> {
        self.constraint_vocab
            .get_or_init(|| ConstraintVocab::new(Arc::clone(&self.tokenizer)).map(Arc::new))
            .clone()
    }

    /// Weights.
    pub fn weights(&self) -> &Weights {
        &self.desc.weights
    }

    /// Whether every layer adds a key bias and all layers rotate by the same RoPE: then a Q4_0
    /// key cache stores keys without their bias and adds its exact part to the scores from one
    /// table of angles per slot (`KvStore::write_angles`).
    pub(crate) fn key_bias_with_one_rope(&self) -> bool {
        key_bias_with_one_rope(&self.desc.weights.layers, &self.norms.layers)
    }

    /// The bytes of a weight.
    pub fn data(&self, t: &TensorRef) -> &[u8] {
        match self.repacked.of(t) {
            // A weight matrix copied as it is, onto huge pages.
            Some((copy, false)) => copy,
            // Ranges were validated against the file when the GGUF was parsed.
            _ => &self.gguf.bytes()[t.range.clone()],
        }
    }

    /// The row-interleaved copy of a weight matrix, if the model made one (see the module
    /// documentation).
    pub(crate) fn interleaved(&self, t: &TensorRef) -> Option<&[u8]> {
        self.repacked
            .of(t)
            .and_then(|(copy, interleaved)| interleaved.then_some(copy))
    }

    /// Bytes the model holds besides the file: its copies of weight matrices, row-interleaved or
    /// as they are (whose mapped pages it released, so the total stays about the file's size).
    pub fn repacked_bytes(&self) -> usize {
        self.repacked.list.iter().map(|r| r.at.len()).sum()
    }
}

/// The row-interleaved copies: one [`HugePageBuffer`] holding every copy, in the order the
/// forward pass reads them, and where each one lies in it.
///
/// One buffer rather than one per matrix, so that the system can back the copies with huge
/// pages: most matrices of a small model are far below 2 MiB (SmolLM2's `attn_k` is 62 KB).
#[derive(Debug, Default)]
struct Copies {
    /// The buffer (`None` when nothing was copied).
    buf: Option<HugePageBuffer>,
    /// Each copy, sorted by its range in the file.
    list: Vec<Repacked>,
}

impl Copies {
    /// The copy of `t` and whether it is row-interleaved, if there is one.
    fn of(&self, t: &TensorRef) -> Option<(&[u8], bool)> {
        let buf = self.buf.as_ref()?;
        let i = self
            .list
            .binary_search_by_key(&t.range.start, |r| r.range.start)
            .ok()?;
        let r = &self.list[i];
        (r.range == t.range).then(|| (&buf.as_slice()[r.at.clone()], r.interleaved))
    }
}

/// A weight matrix copied at load, into its row-interleaved layout or as it is.
#[derive(Debug)]
struct Repacked {
    /// The matrix's bytes in the file.
    range: Range<usize>,
    /// Where its copy lies in the buffer.
    at: Range<usize>,
    /// Row-interleaved; else the file's bytes as they are ([`plain_copies`]).
    interleaved: bool,
}

/// Whether the matrices without a row-interleaved copy are copied as they are, onto the huge
/// pages of the copies' buffer: on Linux on x86-64, where transparent huge pages are given on
/// request. A mapped file's pages are base pages, and decoding streams every matrix once per
/// token, so the copy reads the same bytes with far fewer TLB misses. Measured on the AMD EPYC
/// VM of 2026-12-08 with the AVX2 tier, which interleaves no k-quant nor Q8_0
/// (`EDDY_QUANT_TIER=avx2 eddy bench -t 1 -p 16 -n 64 -r 3`, three alternating rounds,
/// medians): Gemma 3 66.2 → 75.1 tok/s, Qwen2.5 Q4_K_M 48.5 → 56.7; with AVX-512, Qwen2.5 as
/// IQ4_XS (whose product is bound by arithmetic, not memory) 45.4 → 46.5. Not measured on
/// AArch64 yet, so not done there.
fn plain_copies() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
        && std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
}

/// The formats whose matrices the model copies into their row-interleaved layout (where the tier
/// has its kernels: AVX-512 has all eight, AVX2 Q4_0, Q4_1, Q5_0 and Q5_1). Their row-by-row decoding was bound
/// by instructions (Q4_0 on a Zen 4-class VM: 0.87x llama.cpp at one thread; criterion, one
/// L2-resident MiB on AVX-512: 11-15 GiB/s for the row kernels of Q4_0, Q4_1, Q5_0 and Q5_1,
/// 32-37 on the copies), the copy reads the same bytes at memory speed. Q8_0's row kernel was
/// nearer memory speed, and its copy first measured no faster (Gemma 3's 168 MB head); that was
/// the interleaved products' software prefetch, which slowed them on the copy. Without it (see
/// `eddy_quant::interleaved`), Qwen2.5-as-Q8_0 decodes at 44-45 tok/s against 32-38 from the
/// rows (2026-12-07, `eddy bench -t 1 -n 64`, three alternating rounds). Q4_K and Q6_K (in the
/// files here, the `ffn_down` matrices, whose rows are whole super-blocks) decode about as fast
/// as from the rows on this VM (`eddy bench -t 1 -p 128 -n 64 -r 3`, five alternating rounds,
/// medians: Gemma 3 71.7 → 74.1 tok/s, Qwen2.5-as-Q6_K 38.5 → 40.4, within the noise); their
/// copies pay in prefill, packed from the copy by SIMD code where the rows took the portable
/// packing (pp128 medians: Gemma 3 859 → 924 tok/s, Qwen2.5-as-Q6_K 306 → 327, SmolLM2-as-Q6_K
/// 932 → 958), and make these models' batches bit-identical to single tokens. Q5_K (the
/// `ffn_down` of the Q5_K_M files) follows Q4_K; its copy decodes faster from memory too
/// (tg64 medians of five alternating rounds: Qwen2.5-as-Q5_K_M 50.9 → 54.8 tok/s,
/// SmolLM2-as-Q5_K_M 171.4 → 188.5).
const INTERLEAVED: [GgmlType; 8] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Row-interleaved copies of the matrices the forward pass multiplies (a tied embedding
/// included: its rows are then read from the copy) whose format is in [`INTERLEAVED`] and has
/// kernels in the active tier, for a mapped file, in one [`HugePageBuffer`] ([`Copies`]); a
/// matrix's mapped pages are released as it is copied, about 1 MiB at a time. If the buffer
/// cannot be allocated, every matrix stays as it is.
fn interleave_weights(gguf: &Gguf, w: &Weights) -> Copies {
    use eddy_quant::interleaved::{interleave, interleaved_bytes, kernels_for};
    let tier = eddy_quant::dispatch::active_tier();
    if !gguf.is_mapped() {
        return Copies::default();
    }
    // In the order of a forward pass, so that decoding walks the region from start to end.
    let matrices = w
        .layers
        .iter()
        .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
        .chain([&w.output]);
    let plain = plain_copies();
    let mut plan: Vec<(&TensorRef, Range<usize>, bool)> = Vec::new();
    let mut end = 0usize;
    for t in matrices {
        if plan.iter().any(|(p, ..)| p.range == t.range) {
            continue;
        }
        let interleaved = INTERLEAVED.contains(&t.ty) && kernels_for(tier, t.ty).is_some();
        let size = if interleaved {
            interleaved_bytes(t.ty, t.rows, t.cols)
        } else {
            plain.then(|| t.range.len())
        };
        let Some(size) = size else {
            continue;
        };
        // Each copy on a cache line of its own.
        let Some(next) = end.checked_add(size).map(|e| e.next_multiple_of(64)) else {
            return Copies::default();
        };
        plan.push((t, end..end + size, interleaved));
        end = next;
    }
    if plan.is_empty() {
        return Copies::default();
    }
    // Grown as the copies are written, so that the copies become resident as the file's pages
    // are released: zeroing the whole buffer first made the peak the copies plus whatever of
    // the file was mapped then (18 MB more for SmolLM2 when the file's page cache held it
    // whole, in a fresh clone).
    let Some(mut buf) = HugePageBuffer::with_capacity(end) else {
        return Copies::default();
    };
    let mut list = Vec::with_capacity(plan.len());
    for (t, at, interleaved) in plan {
        // A few groups of rows at a time, each one's mapped pages released once copied, so that
        // the file's pages and the copy are not both resident for a whole matrix: Gemma 3's
        // head alone is 168 MB (peak RSS then grew by about that much while loading).
        let src = &gguf.bytes()[t.range.clone()];
        let (rows_per_chunk, src_chunk, dst_chunk) = if interleaved {
            copy_chunks(t, at.len())
        } else {
            (0, 1 << 20, 1 << 20)
        };
        for (x, i) in src.chunks(src_chunk).zip(0..) {
            let to = at.start + i * dst_chunk..(at.start + (i + 1) * dst_chunk).min(at.end);
            buf.grow(to.end);
            let out = &mut buf.as_mut_slice()[to];
            if interleaved {
                let rows = (t.rows - i * rows_per_chunk).min(rows_per_chunk);
                interleave(t.ty, t.cols, x, rows, out);
            } else {
                out.copy_from_slice(x);
            }
            let from = t.range.start + i * src_chunk;
            gguf.release_pages(from..from + x.len());
        }
        // The pages that straddled two chunks.
        gguf.release_pages(t.range.clone());
        list.push(Repacked {
            range: t.range.clone(),
            at,
            interleaved,
        });
    }
    buf.grow(end);
    list.sort_by_key(|r| r.range.start);
    Copies {
        buf: Some(buf),
        list,
    }
}

/// How [`interleave_weights`] copies the matrix `t` into its `size`-byte copy: `(rows, source
/// bytes, copy bytes)` per chunk, whole groups of rows of about 1 MiB of the file.
fn copy_chunks(t: &TensorRef, size: usize) -> (usize, usize, usize) {
    use eddy_quant::interleaved::GROUP_ROWS;
    let groups = t.rows.div_ceil(GROUP_ROWS).max(1);
    let group_src = t.row_bytes() * GROUP_ROWS;
    let per_chunk = ((1 << 20) / group_src.max(1)).clamp(1, groups);
    // Never zero-sized (`chunks` refuses 0): a matrix of empty rows has no bytes to copy.
    (
        per_chunk * GROUP_ROWS,
        (per_chunk * group_src).max(1),
        (per_chunk * (size / groups)).max(1),
    )
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
