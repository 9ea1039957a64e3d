//! Code shared by Eddy's fuzz targets and by `make-seeds`: where the real models are, tiny
//! synthetic models of every architecture, the state-load geometries, and the walks that touch
//! everything a parsed file or a loaded model exposes.
//!
//! Not a test suite: the targets only check invariants that must hold for any input (no panic,
//! ids in range, the C ABI agreeing with the Rust API); the golden tests live in `runtime/tests`.

use std::path::PathBuf;

use eddy::gguf::writer::{GgufWriter, OwnedValue};
use eddy::gguf::{GgmlType, Gguf, Value, ValueType};
use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};

/// The repository root (the parent of `fuzz/`), wherever the binary is run from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A real model: the environment variable that overrides its path, and its default path
/// relative to the repository root (`scripts/fetch-models.sh` puts them there).
#[derive(Clone, Copy, Debug)]
pub struct RealModel {
    /// Short name, as `scripts/fetch-models.sh` spells it.
    pub name: &'static str,
    /// Overrides the path (relative paths are taken from the repository root).
    pub env: &'static str,
    /// Default path under the repository root.
    pub default: &'static str,
}

/// The three real models: a GPT-2 BPE (SmolLM2), a SentencePiece (Gemma 3) and a large BPE
/// vocabulary with Qwen's pre-tokenizer (Qwen 2.5 Coder).
pub const REAL_MODELS: [RealModel; 3] = [
    RealModel {
        name: "smollm2",
        env: "EDDY_FUZZ_MODEL",
        default: "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    RealModel {
        name: "gemma3",
        env: "EDDY_FUZZ_GEMMA",
        default: "models/gemma-3-270m-q4_k_m.gguf",
    },
    RealModel {
        name: "qwen2",
        env: "EDDY_FUZZ_QWEN",
        default: "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    },
];

impl RealModel {
    /// Where the model is: `$env` if set, else the default, relative to the repository root.
    pub fn path(&self) -> PathBuf {
        let p = std::env::var_os(self.env)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(self.default));
        if p.is_absolute() {
            p
        } else {
            repo_root().join(p)
        }
    }

    /// Maps and loads the model, or panics saying how to fetch it.
    pub fn load(&self) -> Model {
        let path = self.path();
        Model::load(&path).unwrap_or_else(|e| {
            panic!(
                "cannot load {} ({e}); run scripts/fetch-models.sh {} or set {}",
                path.display(),
                self.name,
                self.env
            )
        })
    }
}

// ---- walks ----

/// Touches every metadata value (arrays recursively) and every tensor of a parsed file, and
/// checks what the reader promises: every entry it counted is readable, a tensor's data has
/// exactly the bytes its type and shape need, lookups by name find the first entries.
pub fn walk_gguf(g: &Gguf) {
    let _ = (g.version(), g.alignment(), g.data_offset(), g.file_len());
    let _ = (g.architecture(), g.parameter_count());
    let mut n_kv = 0;
    for (i, (key, value)) in g.metadata().enumerate() {
        walk_value(value, 0);
        // Lookups are linear; checking the first entries keeps each run short.
        if i < 16 {
            assert!(
                g.get(key).is_some(),
                "metadata key {key:?} not found by get"
            );
        }
        n_kv += 1;
    }
    assert_eq!(n_kv, g.metadata_len(), "metadata() skipped entries");
    let mut n_tensors = 0;
    for (i, t) in g.tensors().enumerate() {
        let need = t.ty.bytes_for(t.n_elements);
        assert_eq!(
            Some(t.data.len() as u64),
            need,
            "tensor {:?}: data length",
            t.name
        );
        assert_eq!(
            t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)),
            Some(t.n_elements),
            "tensor {:?}: element count",
            t.name
        );
        if i < 16 {
            assert!(g.tensor(t.name).is_some(), "tensor {:?} not found", t.name);
        }
        n_tensors += 1;
    }
    assert_eq!(n_tensors, g.tensor_count(), "tensors() skipped entries");
}

fn walk_value(v: Value<'_>, depth: usize) {
    let _ = (
        v.value_type(),
        v.as_u64(),
        v.as_i64(),
        v.as_f64(),
        v.as_bool(),
    );
    if let Some(s) = v.as_str() {
        std::hint::black_box(s.len());
    }
    if let Some(a) = v.as_array() {
        assert!(
            depth <= eddy::gguf::MAX_ARRAY_DEPTH,
            "array nested too deep"
        );
        let mut n = 0;
        for item in a.iter() {
            walk_value(item, depth + 1);
            n += 1;
        }
        assert_eq!(n, a.len(), "array iterator ended early");
        if !a.is_empty() {
            assert!(a.get(a.len() - 1).is_some(), "last array element");
        }
    }
}

/// The arena a fuzzed model gets: a window of 8 behind 2 sinks, batches of up to 4 in
/// micro-batches of 2, one thread. Small on purpose: a file's hyper-parameters size the KV
/// cache (layers × slots × K/V rows), and the window keeps that proportional to the file.
pub fn small_params() -> ContextParams {
    ContextParams {
        n_sink: 2,
        n_window: 8,
        n_batch: 4,
        n_ubatch: 2,
        kv_type: KvType::F16,
        kv_type_k: None,
        kv_type_v: None,
        logits_all: true,
        n_threads: 1,
    }
}

/// Largest context a fuzzed model may ask for. A 64 KiB input bounds every width, so this is
/// never reached by files the reader accepts; it turns a regression into a finding instead of
/// an out-of-memory kill.
pub const MAX_CONTEXT_BYTES: usize = 256 << 20;

/// Runs a loaded model through what a user does with it: tokenize and detokenize, make a small
/// context, decode a batch and one more token, sample from the logits.
pub fn exercise_model(model: &Model) {
    let hp = model.hparams();
    let tok = model.tokenizer();
    assert_eq!(tok.n_tokens(), hp.n_vocab);
    let ids = tok.encode("Hello, world! <|im_start|>user\n é 日本", true, true);
    assert!(ids.iter().all(|&id| (id as usize) < hp.n_vocab));
    let _ = tok.detokenize(&ids, true, true);

    let params = small_params();
    let need = Context::memory_required(model, &params).expect("valid parameters refused");
    assert!(
        need <= MAX_CONTEXT_BYTES,
        "a {}-byte file asks for a {need}-byte context",
        model.gguf().file_len()
    );
    let mut ctx = Context::new(model, params).expect("context of a loaded model");
    let n_vocab = hp.n_vocab as u32;
    let first = tok.special_ids().bos.unwrap_or(0);
    let batch = [first, 1 % n_vocab, (n_vocab - 1) / 2, n_vocab - 1];
    ctx.decode(&batch).expect("decode of valid ids");
    assert_eq!(ctx.logits().len(), hp.n_vocab);
    let mut sampler = Sampler::new(
        hp.n_vocab,
        SamplerParams {
            temperature: 0.8,
            top_k: 5,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 1.1,
            ..SamplerParams::default()
        },
    );
    for &id in &batch {
        sampler.accept(id);
    }
    let next = sampler.sample(ctx.logits());
    assert!(next < n_vocab, "sampled {next} of {n_vocab}");
    ctx.decode(&[next]).expect("decode of a sampled id");
    assert!(ctx.decode(&[n_vocab]).is_err(), "out-of-range id accepted");
}

// ---- tiny synthetic models ----

/// How a tiny model's tokenizer is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vocab {
    /// SentencePiece (`llama`): `<unk> <s> </s>`, two chat markers, word pieces.
    Spm,
    /// SentencePiece with the 256 byte-fallback tokens `<0x00>..<0xFF>`.
    SpmBytes,
    /// GPT-2 byte-level BPE: the printable ASCII characters, `Ġ` for space, a few merges, the
    /// ChatML markers.
    Bpe,
}

/// One tiny model: an architecture, a tokenizer and widths small enough to decode in
/// microseconds, with the weight types chosen so that the models together cover the kernels.
#[derive(Clone, Copy, Debug)]
pub struct Tiny {
    /// File stem of the seed.
    pub name: &'static str,
    /// `general.architecture`.
    pub arch: &'static str,
    /// Tokenizer.
    pub vocab: Vocab,
    /// Blocks.
    pub n_layer: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Head size (written as `attention.key_length` when not `n_embd / n_head`).
    pub head_dim: usize,
    /// FFN width (the row length of `ffn_down`: 256 for the k-quants).
    pub n_ff: usize,
    /// Type of the embedding and of every matrix whose rows are `n_embd` long.
    pub ty: GgmlType,
    /// Type of `ffn_down`.
    pub down_ty: GgmlType,
    /// No `output.weight` (the head is the embedding).
    pub tied: bool,
}

/// The tiny models `make-seeds` writes; each loads and decodes.
pub const TINY: &[Tiny] = &[
    Tiny {
        name: "llama_spm_f32",
        arch: "llama",
        vocab: Vocab::Spm,
        n_layer: 2,
        n_embd: 16,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 8,
        n_ff: 24,
        ty: GgmlType::F32,
        down_ty: GgmlType::F32,
        tied: false,
    },
    Tiny {
        name: "llama_bpe_q8_0",
        arch: "llama",
        vocab: Vocab::Bpe,
        n_layer: 1,
        n_embd: 32,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 8,
        n_ff: 64,
        ty: GgmlType::Q8_0,
        down_ty: GgmlType::Q4_0,
        tied: false,
    },
    Tiny {
        name: "qwen2_bpe_q4_1",
        arch: "qwen2",
        vocab: Vocab::Bpe,
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 16,
        n_ff: 64,
        ty: GgmlType::Q4_1,
        down_ty: GgmlType::Q5_0,
        tied: true,
    },
    Tiny {
        name: "qwen3_spm_q4_0",
        arch: "qwen3",
        vocab: Vocab::Spm,
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 32,
        n_ff: 64,
        ty: GgmlType::Q4_0,
        down_ty: GgmlType::Q8_0,
        tied: false,
    },
    Tiny {
        name: "gemma3_spm_bytes_q4_k",
        arch: "gemma3",
        vocab: Vocab::SpmBytes,
        n_layer: 2,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 16,
        n_ff: 256,
        ty: GgmlType::Q5_1,
        down_ty: GgmlType::Q4_K,
        tied: true,
    },
    Tiny {
        name: "phi3_bpe_q6_k",
        arch: "phi3",
        vocab: Vocab::Bpe,
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        head_dim: 16,
        n_ff: 256,
        ty: GgmlType::Q8_0,
        down_ty: GgmlType::Q6_K,
        tied: false,
    },
];

/// A fixed-seed generator (splitmix64): the same spec gives the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    }
}

/// GPT-2's stand-in character for a byte (printable ASCII stands for itself).
fn gpt2_char(b: u8) -> char {
    match b {
        b'!'..=b'~' => b as char,
        // Space is U+0120 'Ġ', newline U+010A 'Ċ' in GPT-2's table.
        b' ' => 'Ġ',
        b'\n' => 'Ċ',
        _ => char::from_u32(0x100 + u32::from(b)).unwrap_or('?'),
    }
}

/// Tokens, their types and, for BPE, the merges.
fn vocab(kind: Vocab) -> (Vec<String>, Vec<i32>, Vec<String>) {
    // llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte.
    let mut tokens: Vec<String> = Vec::new();
    let mut types = Vec::new();
    let mut merges = Vec::new();
    let mut push = |t: &str, ty: i32| {
        tokens.push(t.to_owned());
        types.push(ty);
    };
    match kind {
        Vocab::Spm | Vocab::SpmBytes => {
            push("<unk>", 2);
            push("<s>", 3);
            push("</s>", 3);
            push("<|im_start|>", 3);
            push("<|im_end|>", 3);
            push("<user>", 4);
            if kind == Vocab::SpmBytes {
                for b in 0..=255u8 {
                    push(&format!("<0x{b:02X}>"), 6);
                }
            }
            for p in [
                "▁", "▁the", "▁a", "▁Hello", "▁world", "e", "t", "o", "h", "l", "r", "d", "H", "W",
                "!", ",", ".", "▁é", "日", "本", "\n", "▁▁", "er", "th", "▁t",
            ] {
                push(p, 1);
            }
        }
        Vocab::Bpe => {
            for b in (b'!'..=b'~').chain(*b" \n") {
                push(&gpt2_char(b).to_string(), 1);
            }
            for (a, b) in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "w")] {
                merges.push(format!("{a} {b}"));
                push(&format!("{a}{b}"), 1);
            }
            push("<|endoftext|>", 3);
            push("<|im_start|>", 3);
            push("<|im_end|>", 3);
        }
    }
    (tokens, types, merges)
}

/// The GGUF bytes of `spec`: deterministic random weights, quantized with the reference
/// quantizers.
pub fn build(spec: &Tiny) -> Vec<u8> {
    let mut rng = Rng(spec.name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let (tokens, types, merges) = vocab(spec.vocab);
    let n_vocab = tokens.len();
    let a = spec.arch;
    let mut w = GgufWriter::new();
    let u32v = |v: usize| OwnedValue::U32(v as u32);
    w.kv("general.architecture", OwnedValue::String(a.into()));
    w.kv(
        "general.name",
        OwnedValue::String(format!("eddy-fuzz {}", spec.name)),
    );
    w.kv(&format!("{a}.block_count"), u32v(spec.n_layer));
    w.kv(&format!("{a}.context_length"), u32v(256));
    w.kv(&format!("{a}.embedding_length"), u32v(spec.n_embd));
    w.kv(&format!("{a}.feed_forward_length"), u32v(spec.n_ff));
    w.kv(&format!("{a}.attention.head_count"), u32v(spec.n_head));
    w.kv(
        &format!("{a}.attention.head_count_kv"),
        u32v(spec.n_head_kv),
    );
    if spec.head_dim != spec.n_embd / spec.n_head {
        w.kv(&format!("{a}.attention.key_length"), u32v(spec.head_dim));
        w.kv(&format!("{a}.attention.value_length"), u32v(spec.head_dim));
    }
    w.kv(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(1e-5),
    );
    w.kv(&format!("{a}.rope.freq_base"), OwnedValue::F32(10_000.0));
    if a == "gemma3" {
        w.kv(&format!("{a}.attention.sliding_window"), u32v(4));
    }
    if a == "phi3" {
        w.kv(
            &format!("{a}.rope.scaling.original_context_length"),
            u32v(8),
        );
        w.kv(
            &format!("{a}.rope.scaling.attn_factor"),
            OwnedValue::F32(1.1),
        );
    }
    let spm = spec.vocab != Vocab::Bpe;
    w.kv(
        "tokenizer.ggml.model",
        OwnedValue::String(if spm { "llama" } else { "gpt2" }.into()),
    );
    if !spm {
        let pre = if a == "qwen2" { "qwen2" } else { "smollm" };
        w.kv("tokenizer.ggml.pre", OwnedValue::String(pre.into()));
        w.kv("tokenizer.ggml.merges", OwnedValue::strings(merges));
    }
    let eos = tokens.iter().position(|t| t == "<|im_end|>").unwrap_or(0);
    w.kv("tokenizer.ggml.tokens", OwnedValue::strings(tokens));
    w.kv(
        "tokenizer.ggml.token_type",
        OwnedValue::Array {
            elem: ValueType::I32,
            items: types.into_iter().map(OwnedValue::I32).collect(),
        },
    );
    if spm {
        w.kv(
            "tokenizer.ggml.scores",
            OwnedValue::Array {
                elem: ValueType::F32,
                items: (0..n_vocab).map(|i| OwnedValue::F32(-(i as f32))).collect(),
            },
        );
    } else {
        w.kv("tokenizer.ggml.bos_token_id", u32v(eos - 2));
        w.kv("tokenizer.ggml.eos_token_id", u32v(eos));
    }
    w.kv(
        "tokenizer.chat_template",
        OwnedValue::String(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                .into(),
        ),
    );

    let d = spec.n_embd;
    let (q, kv, f) = (
        spec.n_head * spec.head_dim,
        spec.n_head_kv * spec.head_dim,
        spec.n_ff,
    );
    let mut put = |w: &mut GgufWriter, name: &str, ty: GgmlType, dims: &[usize], scale: f32| {
        let n: usize = dims.iter().product();
        let x = rng.values(n, scale);
        let dims: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
        let mut data = vec![0u8; ty.bytes_for(n as u64).unwrap_or(0) as usize];
        eddy_quant::quantize(ty, &x, &mut data).expect("quantizable tiny tensor");
        w.tensor(name, ty, &dims, data);
    };
    let norm = |w: &mut GgufWriter, name: &str, n: usize| {
        w.tensor_f32(name, &[n as u64], &vec![1.0; n]);
    };
    put(&mut w, "token_embd.weight", spec.ty, &[d, n_vocab], 0.5);
    norm(&mut w, "output_norm.weight", d);
    if !spec.tied {
        put(&mut w, "output.weight", spec.ty, &[d, n_vocab], 0.5);
    }
    if a == "phi3" {
        let pairs = spec.head_dim / 2;
        w.tensor_f32(
            "rope_factors_short.weight",
            &[pairs as u64],
            &vec![1.0; pairs],
        );
        w.tensor_f32(
            "rope_factors_long.weight",
            &[pairs as u64],
            &vec![2.0; pairs],
        );
    }
    let s = 1.0 / (d as f32).sqrt();
    for i in 0..spec.n_layer {
        let n = |t: &str| format!("blk.{i}.{t}.weight");
        norm(&mut w, &n("attn_norm"), d);
        if a == "phi3" {
            put(&mut w, &n("attn_qkv"), spec.ty, &[d, q + 2 * kv], s);
        } else {
            put(&mut w, &n("attn_q"), spec.ty, &[d, q], s);
            put(&mut w, &n("attn_k"), spec.ty, &[d, kv], s);
            put(&mut w, &n("attn_v"), spec.ty, &[d, kv], s);
        }
        if a == "qwen2" {
            for (t, len) in [("attn_q", q), ("attn_k", kv), ("attn_v", kv)] {
                put(
                    &mut w,
                    &format!("blk.{i}.{t}.bias"),
                    GgmlType::F32,
                    &[len],
                    0.1,
                );
            }
        }
        if a == "qwen3" || a == "gemma3" {
            norm(&mut w, &n("attn_q_norm"), spec.head_dim);
            norm(&mut w, &n("attn_k_norm"), spec.head_dim);
        }
        if a == "gemma3" {
            norm(&mut w, &n("post_attention_norm"), d);
            norm(&mut w, &n("post_ffw_norm"), d);
        }
        put(&mut w, &n("attn_output"), spec.ty, &[q, d], s);
        norm(&mut w, &n("ffn_norm"), d);
        if a == "phi3" {
            put(&mut w, &n("ffn_up"), spec.ty, &[d, 2 * f], s);
        } else {
            put(&mut w, &n("ffn_gate"), spec.ty, &[d, f], s);
            put(&mut w, &n("ffn_up"), spec.ty, &[d, f], s);
        }
        put(
            &mut w,
            &n("ffn_down"),
            spec.down_ty,
            &[f, d],
            1.0 / (f as f32).sqrt(),
        );
    }
    w.to_bytes()
}

// ---- real model headers ----

/// `v` as a writer value, arrays cut to their first `max_items` elements.
fn owned(v: Value<'_>, max_items: usize) -> OwnedValue {
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
        Value::U64(x) => OwnedValue::U64(x),
        Value::I64(x) => OwnedValue::I64(x),
        Value::F64(x) => OwnedValue::F64(x),
        Value::Array(a) => OwnedValue::Array {
            elem: a.elem_type(),
            items: a
                .iter()
                .take(max_items)
                .map(|x| owned(x, max_items))
                .collect(),
        },
    }
}

/// The header of a real file with its metadata arrays cut to `max_items` elements and every
/// tensor entry kept (names, shapes, types, offsets), but no tensor data: the reader must
/// refuse it (tensor data past the end), after parsing everything a real file has.
pub fn header_skeleton(g: &Gguf, max_items: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(g.version().to_le_bytes());
    out.extend((g.tensor_count() as u64).to_le_bytes());
    out.extend((g.metadata_len() as u64).to_le_bytes());
    for (key, value) in g.metadata() {
        let v = owned(value, max_items);
        eddy::gguf::writer::put_str(&mut out, key);
        out.extend((v.value_type() as u32).to_le_bytes());
        v.encode(&mut out);
    }
    for t in g.tensors() {
        eddy::gguf::writer::put_str(&mut out, t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ty.id().to_le_bytes());
        out.extend(t.offset.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(g.alignment() as usize), 0);
    out
}

// ---- state loading ----

/// The arena geometries the `state_load` target restores into, chosen by bits 0-1 of the
/// input's first byte (3 is 0 again): states only load into a context of the same geometry, so
/// each gets its own seeds.
pub fn state_params(selector: u8) -> ContextParams {
    let base = ContextParams {
        n_sink: 2,
        n_window: 6,
        n_batch: 4,
        n_ubatch: 2,
        kv_type: KvType::F16,
        kv_type_k: None,
        kv_type_v: None,
        logits_all: false,
        n_threads: 1,
    };
    match (selector & 3) % 3 {
        0 => base,
        1 => ContextParams {
            kv_type: KvType::F32,
            logits_all: true,
            ..base
        },
        _ => ContextParams {
            n_sink: 0,
            n_window: 3,
            n_ubatch: 1,
            ..base
        },
    }
}

/// The model `state_load` runs: the first tiny model (F32 llama, SentencePiece).
pub fn state_model_bytes() -> Vec<u8> {
    build(&TINY[0])
}

/// The tiny model of [`state_model_bytes`], loaded once through the Rust API and the C ABI
/// (the `state_load` and `chat_template` targets).
#[derive(Debug)]
pub struct TinyModels {
    /// Through `Model::from_vec`.
    pub model: Model,
    /// Through `eddy_model_load_from_buffer`; lives until the process exits.
    pub c_model: *mut eddy_ffi::model::eddy_model,
}

// SAFETY: the C model is only read (contexts are created and templates rendered from it) and
// lives until the process exits; libFuzzer calls a target from one thread.
unsafe impl Send for TinyModels {}
// SAFETY: as above.
unsafe impl Sync for TinyModels {}

/// The process's [`TinyModels`], loaded at the first call.
pub fn tiny_models() -> &'static TinyModels {
    static MODELS: std::sync::OnceLock<TinyModels> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        let bytes = state_model_bytes();
        let mut c_model = std::ptr::null_mut();
        // SAFETY: bytes holds len readable bytes; c_model is writable.
        let status = unsafe {
            eddy_ffi::model::eddy_model_load_from_buffer(bytes.as_ptr(), bytes.len(), &mut c_model)
        };
        assert_eq!(status, eddy_ffi::eddy_status::EDDY_STATUS_OK);
        TinyModels {
            model: Model::from_vec(bytes).expect("the tiny model loads"),
            c_model,
        }
    })
}

/// Byte offset of the data checksum in a saved state's 72-byte header.
pub const STATE_CHECKSUM_AT: usize = 64;

/// The runtime's state checksum (FNV-1a over 8-byte words, `runtime/src/context/state.rs`),
/// written into the header so that mutated data gets past the checksum to the code behind it.
/// `make-seeds` checks that this leaves real saved states unchanged.
pub fn fix_state_checksum(state: &mut [u8]) {
    let Some(body) = state.get(STATE_CHECKSUM_AT + 8..) else {
        return;
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = body.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().unwrap_or_default());
        h = (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= body.len() as u64;
    state[STATE_CHECKSUM_AT..STATE_CHECKSUM_AT + 8].copy_from_slice(&h.to_le_bytes());
}
