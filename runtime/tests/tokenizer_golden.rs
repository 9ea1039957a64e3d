//! Tokenizers against llama.cpp: the golden tokenizations in `../shared/golden/tokenize_*.jsonl`
//! (made with `llama_tokenize(vocab, text, len, ids, cap, add_bos, parse_special)`), the token
//! counts of Hamlet in `ppl.json`, round trips through `detokenize` and the streaming decoder,
//! and malformed metadata.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use eddy::gguf::Gguf;
use eddy::gguf::ValueType;
use eddy::gguf::writer::{GgufWriter, OwnedValue};
use eddy::tokenizer::{
    PreTokenizer, StreamDecoder, TokenAttr, Tokenizer, TokenizerError, TokenizerKind,
};
use serde_json::Value as Json;

struct Case {
    text: String,
    add_bos: bool,
    parse_special: bool,
    ids: Vec<u32>,
}

fn cases(file: &str) -> Vec<Case> {
    let path = common::golden(file);
    let body = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let j: Json = serde_json::from_str(l).unwrap();
            Case {
                text: j["text"].as_str().unwrap().to_owned(),
                add_bos: j["add_bos"].as_bool().unwrap(),
                parse_special: j["parse_special"].as_bool().unwrap(),
                ids: j["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect(),
            }
        })
        .collect()
}

fn load(file: &str) -> Option<Tokenizer> {
    let path = common::model(file)?;
    let g = Gguf::open(&path).unwrap();
    let t0 = Instant::now();
    let t = Tokenizer::from_gguf(&g).unwrap();
    eprintln!("{file}: tokenizer loaded in {:?}: {t:?}", t0.elapsed());
    Some(t)
}

/// Streams `ids` one token at a time; checks every emitted chunk is non-empty whole text.
fn stream(t: &Tokenizer, ids: &[u32], special: bool) -> String {
    let mut d = StreamDecoder::new(t, special);
    let mut out = String::new();
    for &id in ids {
        d.push(id, |s| {
            assert!(!s.is_empty());
            out.push_str(s);
        });
    }
    d.finish(|s| out.push_str(s));
    out
}

fn show(t: &Tokenizer, ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| format!("{i}:{:?}", t.token_text(i).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every golden entry gives exactly llama.cpp's ids; the ids decode back to the text (with
/// special tokens rendered, BOS dropped), also when streamed token by token.
fn check_golden(t: &Tokenizer, file: &str) {
    let cases = cases(file);
    assert!(cases.len() >= 40, "{file}: only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let got = t.encode(&c.text, c.add_bos, c.parse_special);
        if got != c.ids {
            let first = got.iter().zip(&c.ids).position(|(a, b)| a != b);
            failures.push(format!(
                "{:?} (add_bos {}, parse_special {}): first difference at {first:?}\n  want {}\n  got  {}",
                c.text,
                c.add_bos,
                c.parse_special,
                show(t, &c.ids),
                show(t, &got)
            ));
            continue;
        }
        // Round trip. Neither model adds a space prefix, so the text comes back as it was.
        assert!(!t.add_space_prefix());
        let back = t.detokenize(&c.ids, true, true);
        assert_eq!(
            String::from_utf8_lossy(&back),
            c.text,
            "{file}: detokenize of {:?}",
            c.text
        );
        // Streaming gives the same text, without the BOS that detokenize dropped.
        let body = match c.ids.first() {
            Some(&b) if c.add_bos && Some(b) == t.special_ids().bos => &c.ids[1..],
            _ => &c.ids[..],
        };
        assert_eq!(
            stream(t, body, true),
            c.text,
            "{file}: stream of {:?}",
            c.text
        );
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    let Some(t) = load(common::SMOLLM2) else {
        return;
    };
    assert_eq!(t.kind(), TokenizerKind::Bpe(PreTokenizer::Smollm));
    assert_eq!(t.n_tokens(), 49152);
    assert!(!t.add_bos());
    let ids = t.special_ids();
    assert_eq!(
        (ids.bos, ids.eos, ids.unk, ids.pad),
        (Some(1), Some(2), Some(0), Some(2))
    );
    assert!(t.is_eog(2));
    // Like llama.cpp: <|endoftext|>, <|im_end|> and the FIM repository marker end generation;
    // <|im_start|> does not.
    let eog: Vec<u32> = (0..t.n_tokens() as u32).filter(|&i| t.is_eog(i)).collect();
    let names: Vec<&str> = eog.iter().map(|&i| t.token_text(i).unwrap()).collect();
    assert_eq!(names, ["<|endoftext|>", "<|im_end|>", "<reponame>"]);
    assert_eq!(t.token_attr(1), TokenAttr::CONTROL);
    check_golden(&t, "tokenize_smollm2.jsonl");
}

#[test]
fn gemma3_matches_llama_cpp() {
    let Some(t) = load(common::GEMMA3) else {
        return;
    };
    assert_eq!(t.kind(), TokenizerKind::Spm);
    assert_eq!(t.n_tokens(), 262144);
    assert!(t.add_bos());
    let ids = t.special_ids();
    assert_eq!(
        (ids.bos, ids.eos, ids.unk, ids.pad),
        (Some(2), Some(1), Some(3), Some(0))
    );
    let eot = t.token_id("<end_of_turn>").unwrap();
    assert_eq!(ids.eot, Some(eot));
    assert!(t.is_eog(eot) && t.is_eog(1));
    // Control tokens render only when asked; "<unused0>" is control and unused.
    assert_eq!(t.token_to_piece(eot, false), b"");
    assert_eq!(t.token_to_piece(eot, true), b"<end_of_turn>");
    let unused = t.token_id("<unused0>").unwrap();
    assert_eq!(t.token_attr(unused), TokenAttr::CONTROL | TokenAttr::UNUSED);
    check_golden(&t, "tokenize_gemma3.jsonl");
}

#[test]
fn qwen2_matches_llama_cpp() {
    let Some(t) = load(common::QWEN2) else {
        return;
    };
    assert_eq!(t.kind(), TokenizerKind::Bpe(PreTokenizer::Qwen2));
    assert_eq!(t.n_tokens(), 151936);
    assert!(!t.add_bos());
    let ids = t.special_ids();
    assert_eq!((ids.bos, ids.eos), (Some(151643), Some(151645)));
    // <|im_end|> ends a turn, <|endoftext|> ends generation too; <|im_start|> does not.
    let im_end = t.token_id("<|im_end|>").unwrap();
    let im_start = t.token_id("<|im_start|>").unwrap();
    assert!(t.is_eog(im_end) && t.is_eog(151643) && !t.is_eog(im_start));
    check_golden(&t, "tokenize_qwen2.jsonl");
}

fn hamlet() -> String {
    std::fs::read_to_string(common::golden("hamlet.txt")).unwrap()
}

fn ppl_tokens(model: &str) -> usize {
    let j: Json =
        serde_json::from_str(&std::fs::read_to_string(common::golden("ppl.json")).unwrap())
            .unwrap();
    j["results"][model]["tokens"].as_u64().unwrap() as usize
}

/// llama-perplexity tokenizes the file with `add_special = true`, `parse_special = false`.
fn check_hamlet(t: &Tokenizer, model: &str) {
    let text = hamlet();
    let t0 = Instant::now();
    let ids = t.encode(&text, true, false);
    let dt = t0.elapsed();
    eprintln!(
        "{model}: hamlet.txt ({} bytes) → {} tokens in {dt:?}",
        text.len(),
        ids.len()
    );
    assert_eq!(
        ids.len(),
        ppl_tokens(model),
        "{model}: token count of hamlet.txt"
    );
    // Generous bound for a shared 2-core machine; typically far below.
    assert!(
        dt.as_secs_f64() < 5.0,
        "{model}: tokenizing hamlet took {dt:?}"
    );
    let back = t.detokenize(&ids, true, false);
    assert!(
        back == text.as_bytes(),
        "{model}: hamlet does not round-trip"
    );
    assert_eq!(stream(t, &ids, false), text);
}

#[test]
fn smollm2_hamlet_token_count() {
    let Some(t) = load(common::SMOLLM2) else {
        return;
    };
    check_hamlet(&t, "smollm2");
}

#[test]
fn gemma3_hamlet_token_count() {
    let Some(t) = load(common::GEMMA3) else {
        return;
    };
    check_hamlet(&t, "gemma3");
}

#[test]
fn qwen2_hamlet_token_count() {
    let Some(t) = load(common::QWEN2) else {
        return;
    };
    check_hamlet(&t, "qwen2");
}

// ---------------------------------------------------------------------------------------------
// Synthetic tokenizers and malformed metadata.

/// A tiny byte-level BPE vocabulary: the four bytes `a b c Ġ`, merges `a b`, `ab c`, `Ġ a`;
/// `changes` replace (or, with `None`, remove) keys.
fn bpe_writer(changes: Vec<(&str, Option<OwnedValue>)>) -> GgufWriter {
    let mut kvs: Vec<(&str, OwnedValue)> = vec![
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::strings(["<s>", "a", "b", "c", "Ġ", "ab", "abc", "Ġa"]),
        ),
        (
            "tokenizer.ggml.token_type",
            i32_array(&[3, 1, 1, 1, 1, 1, 1, 1]),
        ),
        (
            "tokenizer.ggml.merges",
            OwnedValue::strings(["a b", "ab c", "Ġ a"]),
        ),
        ("tokenizer.ggml.bos_token_id", OwnedValue::U32(0)),
    ];
    for (key, value) in changes {
        kvs.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            kvs.push((key, v));
        }
    }
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.kv(k, v);
    }
    w
}

/// [`bpe_writer`] with one key replaced.
fn with(key: &str, value: OwnedValue) -> GgufWriter {
    bpe_writer(vec![(key, Some(value))])
}

fn i32_array(v: &[i32]) -> OwnedValue {
    OwnedValue::Array {
        elem: ValueType::I32,
        items: v.iter().map(|&x| OwnedValue::I32(x)).collect(),
    }
}

fn build(w: &GgufWriter) -> Result<Tokenizer, TokenizerError> {
    let g = Gguf::from_vec(w.to_bytes()).expect("the writer makes valid GGUF");
    Tokenizer::from_gguf(&g)
}

#[test]
fn synthetic_bpe_merges_by_rank() {
    let t = build(&bpe_writer(vec![])).unwrap();
    assert_eq!(t.encode("abc", false, false), [6]);
    assert_eq!(t.encode("ab a", false, false), [5, 7]);
    assert_eq!(t.encode("cab", false, false), [3, 5]);
    // A byte with no token is dropped (as llama.cpp does); special text only when asked.
    assert_eq!(t.encode("az", false, false), [1]);
    assert_eq!(t.encode("<s>a", false, true), [0, 1]);
    assert_eq!(t.detokenize(&[5, 7], false, false), b"ab a");
    assert_eq!(t.token_to_piece(0, false), b"");
    assert_eq!(t.token_to_piece(0, true), b"<s>");
    assert_eq!(t.token_to_piece(99, true), b"");
}

fn err(w: &GgufWriter) -> TokenizerError {
    match build(w) {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_metadata_gives_typed_errors() {
    // Merges naming a token that does not exist.
    let w = with("tokenizer.ggml.merges", OwnedValue::strings(["a b", "b z"]));
    let e = err(&w);
    assert!(
        matches!(&e, TokenizerError::BadMerge { index: 1, .. }),
        "{e}"
    );
    // A merge whose result is not a token.
    let w = with("tokenizer.ggml.merges", OwnedValue::strings(["b c"]));
    assert!(matches!(err(&w), TokenizerError::BadMerge { index: 0, .. }));
    // A merge without a separator.
    let w = with("tokenizer.ggml.merges", OwnedValue::strings(["ab"]));
    assert!(matches!(err(&w), TokenizerError::BadMerge { .. }));
    // token_type shorter than the vocabulary.
    let w = with("tokenizer.ggml.token_type", i32_array(&[1, 1, 1]));
    let e = err(&w);
    assert!(
        matches!(
            e,
            TokenizerError::LengthMismatch {
                len: 3,
                n_tokens: 8,
                ..
            }
        ),
        "{e}"
    );
    // token_type of the wrong element type.
    let w = with("tokenizer.ggml.token_type", OwnedValue::strings(["1"; 8]));
    assert!(matches!(err(&w), TokenizerError::WrongType { .. }));
    // Scores shorter than the vocabulary.
    let w = with(
        "tokenizer.ggml.scores",
        OwnedValue::Array {
            elem: ValueType::F32,
            items: vec![OwnedValue::F32(0.0)],
        },
    );
    assert!(matches!(err(&w), TokenizerError::LengthMismatch { .. }));
    // Unknown model and pre-tokenizer; missing pre-tokenizer.
    let w = with("tokenizer.ggml.model", OwnedValue::String("t5".into()));
    assert!(matches!(err(&w), TokenizerError::UnknownModel(m) if m == "t5"));
    let w = with("tokenizer.ggml.pre", OwnedValue::String("klingon".into()));
    assert!(matches!(err(&w), TokenizerError::UnknownPreTokenizer(p) if p == "klingon"));
    let mut w = GgufWriter::new();
    w.kv("tokenizer.ggml.model", OwnedValue::String("gpt2".into()));
    assert!(matches!(err(&w), TokenizerError::UnknownPreTokenizer(_)));
    // Missing keys.
    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String("llama".into()));
    assert!(matches!(err(&w), TokenizerError::MissingKey(_)));
    let mut w = GgufWriter::new();
    w.kv("tokenizer.ggml.model", OwnedValue::String("llama".into()));
    assert!(matches!(err(&w), TokenizerError::MissingKey(_)));
    // Tokens that are not strings; an empty vocabulary; duplicate tokens.
    let w = with("tokenizer.ggml.tokens", i32_array(&[1, 2, 3]));
    assert!(matches!(err(&w), TokenizerError::WrongType { .. }));
    let w = with(
        "tokenizer.ggml.tokens",
        OwnedValue::strings(Vec::<String>::new()),
    );
    assert!(matches!(err(&w), TokenizerError::EmptyVocabulary));
    let w = with(
        "tokenizer.ggml.tokens",
        OwnedValue::strings(["<s>", "a", "b", "c", "Ġ", "ab", "abc", "a"]),
    );
    assert!(matches!(
        err(&w),
        TokenizerError::DuplicateToken {
            first: 1,
            second: 7,
            ..
        }
    ));
    // A flag of the wrong type.
    let w = with("tokenizer.ggml.add_bos_token", OwnedValue::U32(1));
    assert!(matches!(err(&w), TokenizerError::WrongType { .. }));
    // Adding BOS without a BOS id in range: the BPE default (11) is out of range too.
    let w = bpe_writer(vec![
        ("tokenizer.ggml.bos_token_id", Some(OwnedValue::U32(1000))),
        ("tokenizer.ggml.add_bos_token", Some(OwnedValue::Bool(true))),
    ]);
    assert!(matches!(
        err(&w),
        TokenizerError::MissingSpecialToken { .. }
    ));
}

#[test]
fn out_of_range_special_ids_are_ignored() {
    let w = bpe_writer(vec![
        ("tokenizer.ggml.eos_token_id", Some(OwnedValue::U32(4000))),
        ("tokenizer.ggml.padding_token_id", Some(OwnedValue::I32(-1))),
    ]);
    let t = build(&w).unwrap();
    assert_eq!(t.special_ids().eos, None);
    assert_eq!(t.special_ids().pad, None);
    assert_eq!(t.special_ids().bos, Some(0));
}

/// A tiny SentencePiece vocabulary with byte fallback.
#[test]
fn synthetic_spm_scores_and_byte_fallback() {
    let mut tokens = vec!["<unk>".to_owned(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32, 0.0, 0.0];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (t, s) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("i", -2.0),
        ("▁h", -3.0),
        ("hi", -1.5),
        ("▁hi", -0.5),
    ] {
        tokens.push(t.into());
        types.push(1);
        scores.push(s);
    }
    let id = |s: &str| tokens.iter().position(|t| t == s).unwrap() as u32;
    let mut w = GgufWriter::new();
    w.kv("tokenizer.ggml.model", OwnedValue::String("llama".into()))
        .kv("tokenizer.ggml.tokens", OwnedValue::strings(tokens.clone()))
        .kv("tokenizer.ggml.token_type", i32_array(&types))
        .kv(
            "tokenizer.ggml.scores",
            OwnedValue::Array {
                elem: ValueType::F32,
                items: scores.iter().map(|&s| OwnedValue::F32(s)).collect(),
            },
        );
    let t = build(&w).unwrap();
    assert!(t.add_bos() && t.add_space_prefix());
    // "▁hi": "hi" (-1.5) beats "▁h" (-3.0), then "▁hi".
    assert_eq!(t.encode("hi", true, false), [1, id("▁hi")]);
    // "é" has no token: its two UTF-8 bytes as byte tokens.
    assert_eq!(t.encode("é", false, false), [id("▁"), 3 + 0xC3, 3 + 0xA9]);
    // The space prefix comes off again (no BOS in front), byte tokens join into "é".
    let ids = t.encode("hi é", false, false);
    assert_eq!(t.detokenize(&ids, false, false), "hi é".as_bytes());
    // llama.cpp keeps the space when a BOS was removed in front of it.
    let ids = t.encode("hi", true, false);
    assert_eq!(t.detokenize(&ids, true, false), b" hi");
    let mut d = StreamDecoder::new(&t, false).strip_first_space();
    let mut out = String::new();
    for &i in &t.encode("hi é", false, false) {
        d.push(i, |s| out.push_str(s));
    }
    assert_eq!(out, "hi é");
}

// ---------------------------------------------------------------------------------------------
// Random text: no panics, lossless round trips.

/// Random strings from a pool of troublesome pieces (a fixed-seed generator, reproducible).
fn random_texts(count: usize, with_sp_marker: bool) -> Vec<String> {
    let mut pool: Vec<&str> = vec![
        "a",
        "Z",
        "é",
        "e\u{301}",
        "ß",
        "İ",
        "ǅ",
        "Ω",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\u{a0}",
        "\u{2009}",
        "\u{3000}",
        "\u{200b}",
        "0",
        "7",
        "42",
        "٣",
        "½",
        "Ⅻ",
        "'",
        "'s",
        "'LL",
        "'re",
        ".",
        ",",
        "!?",
        "...",
        "-",
        "(",
        ")",
        "$",
        "你",
        "好",
        "😀",
        "🚀",
        "👍🏽",
        "\u{fe0f}",
        "ك",
        "\u{64b}",
        "<",
        ">",
        "|",
        "_",
        "<|im_start|>",
        "<|im_end|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<0x41>",
        "<unk>",
        "<bos>",
        "[multimodal]",
        "hello",
        " world",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "\u{10ffff}",
        "\u{378}",
    ];
    if with_sp_marker {
        pool.push("▁");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let n = (next() % 24) as usize;
            (0..n)
                .map(|_| pool[(next() % pool.len() as u64) as usize])
                .collect()
        })
        .collect()
}

fn check_random_round_trips(t: &Tokenizer, with_sp_marker: bool) {
    for text in random_texts(400, with_sp_marker) {
        for (add, parse) in [(false, false), (true, true), (false, true)] {
            let ids = t.encode(&text, add, parse);
            assert!(ids.iter().all(|&i| (i as usize) < t.n_tokens()));
            // Drop the BOS only where tokenize added one (the text may spell "<bos>" too).
            let back = t.detokenize(&ids, add, true);
            assert!(
                back == text.as_bytes(),
                "{text:?} ({add}, {parse}) → {ids:?} → {:?}",
                String::from_utf8_lossy(&back)
            );
            let body = match ids.first() {
                Some(&b) if add && t.add_bos() && Some(b) == t.special_ids().bos => &ids[1..],
                _ => &ids[..],
            };
            assert_eq!(stream(t, body, true), text);
        }
    }
}

/// Byte-level BPE is lossless; SentencePiece with byte fallback too, except that a `▁` in the
/// input comes back as a space (it is SentencePiece's space marker), so Gemma's pool has none.
#[test]
fn random_text_round_trips() {
    if let Some(t) = load(common::SMOLLM2) {
        check_random_round_trips(&t, true);
    }
    if let Some(t) = load(common::GEMMA3) {
        check_random_round_trips(&t, false);
        let ids = t.encode("a▁b", false, false);
        assert_eq!(t.detokenize(&ids, false, false), b"a b");
    }
}

/// Random token ids (including out-of-range ones) decode and stream without panics, and the
/// stream is the lossy decoding of the concatenated pieces.
#[test]
fn random_ids_stream_as_lossy_text() {
    for file in [common::SMOLLM2, common::GEMMA3] {
        let Some(t) = load(file) else {
            continue;
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let ids: Vec<u32> = (0..16)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) % (t.n_tokens() as u64 + 10)) as u32
                })
                .collect();
            for special in [false, true] {
                let bytes: Vec<u8> = ids
                    .iter()
                    .flat_map(|&i| t.token_to_piece(i, special).iter().copied())
                    .collect();
                assert_eq!(stream(&t, &ids, special), String::from_utf8_lossy(&bytes));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The streaming side allocates nothing.

thread_local! {
    /// Allocations made by this thread (tests run in parallel threads; each counts its own).
    static THREAD_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

struct CountingPerThread;

// SAFETY: forwards every call to the system allocator unchanged; it only bumps a thread-local
// counter, which is const-initialised and so never allocates itself.
unsafe impl GlobalAlloc for CountingPerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingPerThread = CountingPerThread;

fn allocations() -> usize {
    THREAD_ALLOCS.with(|c| c.get())
}

/// `token_to_piece` over the whole vocabulary and a `StreamDecoder` over Hamlet allocate
/// nothing once the tokenizer is built.
#[test]
fn pieces_and_streaming_allocate_nothing() {
    for file in [common::SMOLLM2, common::GEMMA3] {
        let Some(t) = load(file) else {
            continue;
        };
        let ids = t.encode(&hamlet(), true, false);
        // The counter sees this thread's allocations.
        let probe = allocations();
        drop(std::hint::black_box(vec![0u8; 64]));
        assert!(allocations() > probe);
        let before = allocations();
        let mut bytes = 0usize;
        for id in 0..t.n_tokens() as u32 + 5 {
            bytes += t.token_to_piece(id, true).len() + t.token_to_piece(id, false).len();
        }
        let mut chars = 0usize;
        let mut d = StreamDecoder::new(&t, false);
        for &id in &ids {
            d.push(id, |s| chars += s.chars().count());
        }
        d.finish(|s| chars += s.chars().count());
        let after = allocations();
        assert_eq!(after - before, 0, "{file}: {} allocations", after - before);
        assert!(bytes > 0 && chars > 100_000);
    }
}
