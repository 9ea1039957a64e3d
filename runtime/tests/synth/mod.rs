//! Random-weight GGUF models of each architecture Eddy runs, small enough to build in a test.
//!
//! No real Qwen3, Phi-3 or Llama 3 file can be fetched here (issue #12), so each architecture is
//! proven on a synthetic model instead: a few layers of random Q8_0 weights around the real
//! GPT-2 BPE tokenizer of the donor model (SmolLM2, 49 152 tokens), with every feature of the
//! architecture that changes the arithmetic (biases, per-head norms, fused projections, RoPE
//! frequency factors, attention factors, partial rotation, grouped-query attention, tied or
//! untied heads). `tools/llama-bench` (binary `llama-logits`) builds the same bytes, runs them
//! through llama.cpp and records its logits in `runtime/tests/data/synthetic/<name>.json`;
//! `runtime/tests/synthetic_archs.rs` rebuilds the bytes, checks their hash against the recorded
//! one and compares Eddy's logits with llama.cpp's.
//!
//! [`build`] is deterministic on every platform: a fixed-seed splitmix64 stream per tensor,
//! values made from integers by exact float operations only (no `exp`/`ln`, whose last bit
//! differs between math libraries), ggml's reference Q8_0 quantizer, and constants written out
//! instead of computed. The same spec and donor give the same bytes, so the FNV-1a hash in the
//! JSON proves that the test runs the model llama.cpp ran.
//!
//! Scales (all weights uniform with the stated standard deviation, norms as ranges):
//! - token embedding σ 0.3, so that at the tied head a token's own embedding does not
//!   dominate its logits (σ 1 made every argmax the input token);
//! - Q and K rows σ 1.5/√n_in (scores of a few units: peaked attention, not uniform), V, O,
//!   gate, up, down σ 1/√n_in (sub-layer outputs about as large as the residual stream);
//! - norm weights in [0.8, 1.2] (Qwen3's per-head norms [0.8, 2.0]); the output head is scaled
//!   so that logits have σ ≈ 4 over the vocabulary: the median top-2 gap is then 0.4-0.7 and
//!   a broken feature moves logits by units (measurements in `synthetic_archs.rs`).
#![allow(dead_code)]

use eddy::gguf::writer::{GgufWriter, OwnedValue};
use eddy::gguf::{GgmlType, Gguf, Value};
use eddy_quant::block_bytes;
use eddy_quant::legacy::BlockQ8_0;

/// The model whose tokenizer every synthetic model carries (`scripts/fetch-models.sh smollm2`).
pub const DONOR: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Context size of the reference run. llama.cpp rounds `n_ctx` up to a multiple of 256, so 256
/// is its smallest context; Phi-3 chooses its RoPE factors by comparing it with
/// `rope.scaling.original_context_length`. The test gives Eddy a window of the same size.
pub const N_CTX: usize = 256;

/// Token sequence length: 24 pseudo-random ids, then the first 12 of them again.
pub const N_TOKENS: usize = 36;

/// An architecture family and the features it turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `llama` (Llama 3.x): adjacent-pair RoPE, optional `rope_freqs.weight`.
    Llama,
    /// `qwen2`: biases on Q, K and V, NEOX RoPE.
    Qwen2,
    /// `qwen3`: per-head RMS norms of Q and K before RoPE, NEOX RoPE, explicit head size.
    Qwen3,
    /// `phi3`: fused QKV, fused gate+up, long/short RoPE factors and an attention factor.
    Phi3,
}

impl Family {
    /// The `general.architecture` value.
    pub fn arch(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Phi3 => "phi3",
        }
    }
}

/// Phi-3's long-context RoPE metadata (as `convert_hf_to_gguf.py` writes it for the 128k
/// models).
#[derive(Clone, Copy, Debug)]
pub struct LongRope {
    /// `rope.scaling.original_context_length`: llama.cpp uses `rope_factors_long` when its
    /// context (`n_ctx_seq`) is larger, `rope_factors_short` otherwise.
    pub original_context_length: u32,
    /// `rope.scaling.attn_factor`, `sqrt(1 + ln(s)/ln(original))` with `s = context_length /
    /// original`, written out as a constant (see the module note on determinism). llama.cpp
    /// multiplies RoPE's cos and sin by it: the rotated dimensions of Q and K grow by this
    /// factor, whichever factor set is in use.
    pub attn_factor: f32,
}

/// One synthetic model.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// File stem of the reference JSON.
    pub name: &'static str,
    /// Architecture.
    pub family: Family,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Head size (written as `attention.key_length`/`value_length` when it is not
    /// `n_embd / n_head`).
    pub head_dim: usize,
    /// Rotated dimensions per head (`rope.dimension_count`).
    pub rope_dim: usize,
    /// FFN hidden width.
    pub n_ff: usize,
    /// `rope.freq_base`.
    pub rope_base: f32,
    /// `attention.layer_norm_rms_epsilon`.
    pub rms_eps: f32,
    /// No `output.weight`: the head is the token embedding.
    pub tied: bool,
    /// Llama 3: write `rope_freqs.weight` (rope_dim/2 factors dividing the frequencies).
    pub rope_freqs: bool,
    /// `context_length`.
    pub ctx_train: u32,
    /// Phi-3 long-context RoPE (both factor tensors are always written for Phi-3).
    pub long_rope: Option<LongRope>,
    /// Seed of the weights.
    pub seed: u64,
}

/// The specs with reference logits in `runtime/tests/data/synthetic/`.
pub const SPECS: &[Spec] = &[
    // Llama 3.x: GQA ratio 3, rope_freqs, untied head, three layers.
    Spec {
        name: "llama3",
        family: Family::Llama,
        n_layer: 3,
        n_embd: 96,
        n_head: 6,
        n_head_kv: 2,
        head_dim: 16,
        rope_dim: 16,
        n_ff: 160,
        rope_base: 500_000.0,
        rms_eps: 1e-5,
        tied: false,
        rope_freqs: true,
        ctx_train: 131_072,
        long_rope: None,
        seed: 0x11a3a,
    },
    // Llama with a tied head and no frequency factors (SmolLM2/Llama 3.2 1B style).
    Spec {
        name: "llama_tied",
        family: Family::Llama,
        n_layer: 2,
        n_embd: 64,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 16,
        rope_dim: 16,
        n_ff: 128,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        tied: true,
        rope_freqs: false,
        ctx_train: 8192,
        long_rope: None,
        seed: 0x71ed,
    },
    // Qwen2: Q/K/V biases, NEOX RoPE base 1e6, tied head, GQA 4/2.
    Spec {
        name: "qwen2",
        family: Family::Qwen2,
        n_layer: 2,
        n_embd: 64,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 16,
        rope_dim: 16,
        n_ff: 128,
        rope_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied: true,
        rope_freqs: false,
        ctx_train: 32_768,
        long_rope: None,
        seed: 0x9e2,
    },
    // Qwen3: per-head Q/K norms, head size 32 with n_embd 64 and 4 heads (Q is 128 wide),
    // untied head.
    Spec {
        name: "qwen3",
        family: Family::Qwen3,
        n_layer: 2,
        n_embd: 64,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 32,
        rope_dim: 32,
        n_ff: 128,
        rope_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied: false,
        rope_freqs: false,
        ctx_train: 40_960,
        long_rope: None,
        seed: 0x9e3,
    },
    // Phi-3.5-mini style: 128k context trained from 4096, so llama.cpp's 256-token context
    // uses the SHORT factors; MHA, full rotation, untied head.
    Spec {
        name: "phi3",
        family: Family::Phi3,
        n_layer: 2,
        n_embd: 96,
        n_head: 6,
        n_head_kv: 6,
        head_dim: 16,
        rope_dim: 16,
        n_ff: 128,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        tied: false,
        rope_freqs: false,
        ctx_train: 131_072,
        // sqrt(1 + ln(131072/4096)/ln(4096)) = sqrt(1 + 5 ln 2 / 12 ln 2) = sqrt(17/12)
        long_rope: Some(LongRope {
            original_context_length: 4096,
            attn_factor: 1.190_238_1,
        }),
        seed: 0xf13,
    },
    // Phi-4-mini style: GQA 4/2, partial rotation (24 of 32 dimensions), tied head; trained
    // from 128 tokens, so llama.cpp's 256-token context uses the LONG factors.
    Spec {
        name: "phi3_long",
        family: Family::Phi3,
        n_layer: 2,
        n_embd: 128,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 32,
        rope_dim: 24,
        n_ff: 128,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        tied: true,
        rope_freqs: false,
        ctx_train: 4096,
        // sqrt(1 + ln(4096/128)/ln(128)) = sqrt(1 + 5/7) = sqrt(12/7)
        long_rope: Some(LongRope {
            original_context_length: 128,
            attn_factor: 1.309_307_3,
        }),
        seed: 0xf14,
    },
];

/// The spec called `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

impl Spec {
    /// Which RoPE factors llama.cpp applies in a context of `n_ctx_seq` tokens:
    /// `"rope_freqs"`, `"long"`, `"short"` or `"none"` (`llama_model::get_rope_factors`).
    pub fn rope_factors_used(&self, n_ctx_seq: usize) -> &'static str {
        match (self.rope_freqs, self.long_rope) {
            (true, _) => "rope_freqs",
            (false, Some(l)) if n_ctx_seq > l.original_context_length as usize => "long",
            (false, Some(_)) => "short",
            (false, None) => "none",
        }
    }
}

/// 64-bit FNV-1a, the hash recorded for each generated file.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64: a fixed, portable stream.
struct Rng(u64);

impl Rng {
    /// A stream for one tensor, independent of the order in which tensors are made.
    fn for_tensor(seed: u64, name: &str) -> Rng {
        Rng(seed ^ fnv1a64(name.as_bytes()))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1): a 24-bit integer scaled by a power of two, exact in f32.
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u32 << 23) as f32 - 1.0
    }

    /// `n` values uniform with standard deviation `std` (half-width `std·√3`).
    fn uniform(&mut self, n: usize, std: f32) -> Vec<f32> {
        let a = std * 3f32.sqrt();
        (0..n).map(|_| self.unit() * a).collect()
    }

    /// `n` values uniform in `[lo, hi)`.
    fn range(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (self.unit() + 1.0) * 0.5 * (hi - lo))
            .collect()
    }
}

/// The token ids of the reference run: 24 pseudo-random ids below `n_vocab`, then the first 12
/// again (repeated content gives attention something to find).
pub fn tokens(n_vocab: usize) -> Vec<u32> {
    let mut r = Rng(0x70c3_e115);
    let mut ids: Vec<u32> = (0..24)
        .map(|_| (r.next_u64() % n_vocab as u64) as u32)
        .collect();
    let repeat = ids[..12].to_vec();
    ids.extend(repeat);
    debug_assert_eq!(ids.len(), N_TOKENS);
    ids
}

/// Number of tokens of the donor's vocabulary.
pub fn donor_vocab_size(donor: &Gguf) -> usize {
    donor
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map_or(0, |a| a.len())
}

/// A metadata value copied out of a file.
fn owned(v: Value<'_>) -> OwnedValue {
    match v {
        Value::U8(x) => OwnedValue::U8(x),
        Value::I8(x) => OwnedValue::I8(x),
        Value::U16(x) => OwnedValue::U16(x),
        Value::I16(x) => OwnedValue::I16(x),
        Value::U32(x) => OwnedValue::U32(x),
        Value::I32(x) => OwnedValue::I32(x),
        Value::F32(x) => OwnedValue::F32(x),
        Value::Bool(x) => OwnedValue::Bool(x),
        Value::String(s) => OwnedValue::String(s.to_owned()),
        Value::Array(a) => OwnedValue::Array {
            elem: a.elem_type(),
            items: a.iter().map(owned).collect(),
        },
        Value::U64(x) => OwnedValue::U64(x),
        Value::I64(x) => OwnedValue::I64(x),
        Value::F64(x) => OwnedValue::F64(x),
    }
}

/// Appends tensors to a writer: matrices in Q8_0 (rows quantized by ggml's reference
/// quantizer), vectors in F32.
struct Tensors<'a> {
    w: &'a mut GgufWriter,
    seed: u64,
}

impl Tensors<'_> {
    /// A Q8_0 matrix of `rows` rows of `cols`; `parts` gives consecutive row ranges and the
    /// standard deviation of each (fused projections).
    fn matrix_parts(&mut self, name: &str, cols: usize, parts: &[(usize, f32)]) {
        assert_eq!(
            cols % 32,
            0,
            "{name}: Q8_0 rows must be a multiple of 32 long"
        );
        let mut r = Rng::for_tensor(self.seed, name);
        let mut x = Vec::new();
        for &(rows, std) in parts {
            x.extend(r.uniform(rows * cols, std));
        }
        let rows: usize = parts.iter().map(|p| p.0).sum();
        let mut blocks = vec![
            BlockQ8_0 {
                d: [0; 2],
                qs: [0; 32]
            };
            x.len() / 32
        ];
        // ggml's reference quantizer (`quantize_row_q8_0_ref`), as llama-quantize uses.
        eddy_quant::legacy::quantize_row_q8_0(&x, &mut blocks);
        self.w.tensor(
            name,
            GgmlType::Q8_0,
            &[cols as u64, rows as u64],
            block_bytes(&blocks).to_vec(),
        );
    }

    fn matrix(&mut self, name: &str, cols: usize, rows: usize, std: f32) {
        self.matrix_parts(name, cols, &[(rows, std)]);
    }

    fn vector(&mut self, name: &str, values: Vec<f32>) {
        self.w.tensor_f32(name, &[values.len() as u64], &values);
    }

    fn uniform(&mut self, name: &str, n: usize, std: f32) {
        let v = Rng::for_tensor(self.seed, name).uniform(n, std);
        self.vector(name, v);
    }

    fn range(&mut self, name: &str, n: usize, lo: f32, hi: f32) {
        let v = Rng::for_tensor(self.seed, name).range(n, lo, hi);
        self.vector(name, v);
    }
}

/// 1/√n in f32 (IEEE square root: exact, portable).
fn inv_sqrt(n: usize) -> f32 {
    1.0 / (n as f32).sqrt()
}

/// The GGUF bytes of `spec`'s random-weight model, carrying every `tokenizer.*` key of `donor`.
/// Byte-identical on every call and platform.
pub fn build(spec: &Spec, donor_tokenizer: &Gguf) -> Vec<u8> {
    let s = spec;
    let arch = s.family.arch();
    let n_vocab = donor_vocab_size(donor_tokenizer);
    assert!(n_vocab > 0, "the donor has no tokenizer.ggml.tokens");
    assert!(
        s.n_head.is_multiple_of(s.n_head_kv)
            && s.rope_dim <= s.head_dim
            && s.rope_dim.is_multiple_of(2)
    );
    if s.family == Family::Phi3 || s.family == Family::Qwen2 {
        // Their output projection is [n_embd, n_embd] in llama.cpp.
        assert_eq!(
            s.n_head * s.head_dim,
            s.n_embd,
            "{}: heads must tile n_embd",
            s.name
        );
    }

    let mut w = GgufWriter::new();
    let kv = |w: &mut GgufWriter, key: &str, v: OwnedValue| {
        w.kv(&format!("{arch}.{key}"), v);
    };
    w.kv("general.architecture", OwnedValue::String(arch.into()));
    // Not the spec's name: llama.cpp's vocabulary loader looks up Phi-3's special tokens
    // (absent from the donor) when general.name contains "phi3".
    w.kv(
        "general.name",
        OwnedValue::String("Eddy synthetic model".into()),
    );
    // LLAMA_FTYPE_MOSTLY_Q8_0
    w.kv("general.file_type", OwnedValue::U32(7));
    let u32v = |x: usize| OwnedValue::U32(x as u32);
    kv(&mut w, "context_length", OwnedValue::U32(s.ctx_train));
    kv(&mut w, "embedding_length", u32v(s.n_embd));
    kv(&mut w, "block_count", u32v(s.n_layer));
    kv(&mut w, "feed_forward_length", u32v(s.n_ff));
    kv(&mut w, "attention.head_count", u32v(s.n_head));
    kv(&mut w, "attention.head_count_kv", u32v(s.n_head_kv));
    if s.head_dim != s.n_embd / s.n_head {
        kv(&mut w, "attention.key_length", u32v(s.head_dim));
        kv(&mut w, "attention.value_length", u32v(s.head_dim));
    }
    kv(
        &mut w,
        "attention.layer_norm_rms_epsilon",
        OwnedValue::F32(s.rms_eps),
    );
    kv(&mut w, "rope.freq_base", OwnedValue::F32(s.rope_base));
    kv(&mut w, "rope.dimension_count", u32v(s.rope_dim));
    if let Some(l) = s.long_rope {
        kv(
            &mut w,
            "rope.scaling.original_context_length",
            OwnedValue::U32(l.original_context_length),
        );
        kv(
            &mut w,
            "rope.scaling.attn_factor",
            OwnedValue::F32(l.attn_factor),
        );
    }
    for (key, value) in donor_tokenizer.metadata() {
        if key.starts_with("tokenizer.") {
            w.kv(key, owned(value));
        }
    }

    let (d, hd, q_w, kv_w) = (
        s.n_embd,
        s.head_dim,
        s.n_head * s.head_dim,
        s.n_head_kv * s.head_dim,
    );
    let mut t = Tensors {
        w: &mut w,
        seed: s.seed,
    };
    const EMBD_STD: f32 = 0.3;
    const LOGIT_STD: f32 = 4.0;
    t.matrix("token_embd.weight", d, n_vocab, EMBD_STD);
    if s.tied {
        // logit = Σ_i e_i·w_i·x_i with e_i of σ 0.3 and x of RMS 1: w ≈ 4/(0.3·√d).
        let mid = LOGIT_STD / EMBD_STD * inv_sqrt(d);
        t.range("output_norm.weight", d, 0.8 * mid, 1.2 * mid);
    } else {
        t.range("output_norm.weight", d, 0.8, 1.2);
        t.matrix("output.weight", d, n_vocab, LOGIT_STD * inv_sqrt(d));
    }
    if s.rope_freqs {
        // Llama 3's factors are 1 for fast and up to 8 for slow frequencies; here every
        // factor is random so that the fast, position-sensitive pairs are affected too.
        t.range("rope_freqs.weight", s.rope_dim / 2, 0.5, 4.0);
    }
    if s.family == Family::Phi3 {
        t.range("rope_factors_short.weight", s.rope_dim / 2, 1.0, 2.0);
        t.range("rope_factors_long.weight", s.rope_dim / 2, 2.0, 12.0);
    }
    let (qk_std, std) = (1.5 * inv_sqrt(d), inv_sqrt(d));
    for i in 0..s.n_layer {
        let n = |x: &str| format!("blk.{i}.{x}");
        t.range(&n("attn_norm.weight"), d, 0.8, 1.2);
        if s.family == Family::Phi3 {
            // Rows: Q, then K, then V.
            t.matrix_parts(
                &n("attn_qkv.weight"),
                d,
                &[(q_w, qk_std), (kv_w, qk_std), (kv_w, std)],
            );
        } else {
            t.matrix(&n("attn_q.weight"), d, q_w, qk_std);
            t.matrix(&n("attn_k.weight"), d, kv_w, qk_std);
            t.matrix(&n("attn_v.weight"), d, kv_w, std);
        }
        if s.family == Family::Qwen2 {
            // Qwen2's trained K biases are large; these are of the order of the projections.
            t.uniform(&n("attn_q.bias"), q_w, 0.5);
            t.uniform(&n("attn_k.bias"), kv_w, 1.0);
            t.uniform(&n("attn_v.bias"), kv_w, 0.3);
        }
        if s.family == Family::Qwen3 {
            t.range(&n("attn_q_norm.weight"), hd, 0.8, 2.0);
            t.range(&n("attn_k_norm.weight"), hd, 0.8, 2.0);
        }
        t.matrix(&n("attn_output.weight"), q_w, d, inv_sqrt(q_w));
        t.range(&n("ffn_norm.weight"), d, 0.8, 1.2);
        if s.family == Family::Phi3 {
            // Rows: gate, then up (llama.cpp's ggml_swiglu: silu(first half) · second half).
            t.matrix_parts(&n("ffn_up.weight"), d, &[(s.n_ff, std), (s.n_ff, std)]);
        } else {
            t.matrix(&n("ffn_gate.weight"), d, s.n_ff, std);
            t.matrix(&n("ffn_up.weight"), d, s.n_ff, std);
        }
        t.matrix(&n("ffn_down.weight"), s.n_ff, d, inv_sqrt(s.n_ff));
    }
    w.to_bytes()
}
