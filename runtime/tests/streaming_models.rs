//! The sink + window arena and state save/restore on the real models (the synthetic models of
//! `synthetic_llama.rs` check the same properties exhaustively on a tiny model):
//! - a stream far past the window, fed in batches of every size, gives exactly the logits of
//!   feeding it token by token (for Qwen2.5, whose Q5_0/Q4_K/Q6_K/Q8_0 weights have no panel
//!   kernels, bit for bit; the batched path there is the per-token arithmetic);
//! - a state saved mid-stream and loaded into a fresh context continues the stream with
//!   identical logits;
//! - the stream stays sane: finite logits, and greedy text that is not a single repeated token;
//! - all of it with quantized K/V caches too (Q8_0, Q4_0, and K and V of different types), and
//!   a state saved with one cache type is refused by a context of another.

mod common;

use eddy::{Context, ContextParams, KvType, Model};

fn params_kv(n_ubatch: usize, [k, v]: [KvType; 2]) -> ContextParams {
    ContextParams {
        n_sink: 4,
        n_window: 60,
        n_batch: 16,
        n_ubatch,
        kv_type: k,
        kv_type_v: Some(v),
        logits_all: true,
        ..Default::default()
    }
}

/// The cache types the streaming tests run with.
const KV_TYPES: [[KvType; 2]; 4] = [
    [KvType::F16, KvType::F16],
    [KvType::Q8_0, KvType::Q8_0],
    [KvType::Q4_0, KvType::Q4_0],
    [KvType::Q8_0, KvType::Q4_0],
];

/// 200 tokens (the ring of 4 + 60 wraps three times) of a fixed pseudo-text.
fn tokens(n_vocab: usize) -> Vec<u32> {
    (0..200u32)
        .map(|i| (i * 7919 + 17) % (n_vocab.min(30000) as u32))
        .collect()
}

fn stream_batched_equals_token_by_token(file: &str) {
    let Some(path) = common::model(file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    for kv in KV_TYPES {
        stream_batched_equals_token_by_token_with(file, &model, kv);
    }
}

fn stream_batched_equals_token_by_token_with(file: &str, model: &Model, kv: [KvType; 2]) {
    let toks = tokens(model.hparams().n_vocab);
    let mut one = Context::new(model, params_kv(1, kv)).unwrap();
    let mut want = Vec::new();
    for &t in &toks {
        one.decode(&[t]).unwrap();
        want.push(one.logits().to_vec());
    }
    assert!(want.iter().flatten().all(|v| v.is_finite()));
    // Batches below the panel threshold (8) so that SmolLM2's Q4_1 also takes the per-token
    // arithmetic; Qwen2.5 would be bit-identical at any size.
    let mut batched = Context::new(model, params_kv(7, kv)).unwrap();
    let mut pos = 0;
    for size in [1usize, 7, 5, 3, 6, 2].iter().cycle() {
        if pos == toks.len() {
            break;
        }
        let end = (pos + size).min(toks.len());
        batched.decode(&toks[pos..end]).unwrap();
        for (i, w) in want.iter().enumerate().take(end).skip(pos) {
            assert!(
                batched.logits_ith(i - pos).unwrap() == &w[..],
                "{file} {kv:?}: token {i} differs batched vs token by token"
            );
        }
        pos = end;
    }
    assert_eq!(batched.n_seen(), 200);
}

fn state_restores_the_stream(file: &str) {
    let Some(path) = common::model(file) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    for kv in KV_TYPES {
        state_restores_the_stream_with(file, &model, kv);
    }
}

fn state_restores_the_stream_with(file: &str, model: &Model, kv: [KvType; 2]) {
    let params = |n_ubatch| params_kv(n_ubatch, kv);
    let toks = tokens(model.hparams().n_vocab);
    let mut a = Context::new(model, params(4)).unwrap();
    for chunk in toks[..150].chunks(16) {
        a.decode(chunk).unwrap();
    }
    let mut state = vec![0u8; a.state_size()];
    a.save_state(&mut state).unwrap();
    // A context whose cache type differs refuses the state and says why.
    let other = if kv[1] == KvType::F16 {
        KvType::Q8_0
    } else {
        KvType::F16
    };
    let mut wrong = Context::new(model, params_kv(4, [kv[0], other])).unwrap();
    let e = wrong.load_state(&state).unwrap_err().to_string();
    assert!(e.contains("K/V type"), "{file} {kv:?}: {e}");
    let mut b = Context::new(model, params(4)).unwrap();
    b.decode(&toks[..3]).unwrap();
    b.load_state(&state).unwrap();
    assert_eq!(b.n_seen(), 150);
    assert!(a.logits() == b.logits());
    for chunk in toks[150..].chunks(5) {
        a.decode(chunk).unwrap();
        b.decode(chunk).unwrap();
        for i in 0..chunk.len() {
            assert!(
                a.logits_ith(i) == b.logits_ith(i),
                "{file} {kv:?}: after restore"
            );
        }
    }
    // Greedy continuation past the window keeps producing varied tokens.
    let mut out = Vec::new();
    let mut c = Context::new(
        model,
        ContextParams {
            logits_all: false,
            ..params(4)
        },
    )
    .unwrap();
    let prompt = model
        .tokenizer()
        .encode("The history of the city began", true, false);
    c.decode(&prompt).unwrap();
    for _ in 0..150 {
        let next = eddy::sampler::argmax(c.logits());
        out.push(next);
        c.decode(&[next]).unwrap();
    }
    let distinct = out.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert!(
        distinct >= 10,
        "{file} {kv:?}: {distinct} distinct tokens in 150"
    );
}

#[test]
fn qwen2_stream_batched_equals_token_by_token() {
    stream_batched_equals_token_by_token(common::QWEN2);
}

#[test]
fn smollm2_stream_batched_equals_token_by_token() {
    stream_batched_equals_token_by_token(common::SMOLLM2);
}

#[test]
fn qwen2_state_restores_the_stream() {
    state_restores_the_stream(common::QWEN2);
}

#[test]
fn smollm2_state_restores_the_stream() {
    state_restores_the_stream(common::SMOLLM2);
}
