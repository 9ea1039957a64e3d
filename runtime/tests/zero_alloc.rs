//! After `Context::new` and `Sampler::new`, decoding, sampling and detokenizing allocate
//! nothing: a counting global allocator watches 308 tokens stream through a 4 + 64 arena, so
//! the ring wraps four times. Keep this test green for ever.
//!
//! The allocator counts every thread of the process, so this binary has no libtest harness
//! (`harness = false` in Cargo.toml): libtest's own threads allocate, e.g. to print "has been
//! running for over 60 seconds" on a loaded machine, which once made this test fail with 2
//! allocations that were not ours. `main` runs the check and exits non-zero on failure.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    // SmolLM2 (llama), Qwen2.5 (qwen2: biases, 7:1 grouped-query attention, 152k vocabulary)
    // and Gemma 3 (gemma3: GELU through its f16 table, sliding-window layers, 262k vocabulary).
    let (mut passed, mut skipped) = (0, 0);
    for file in [common::SMOLLM2, common::QWEN2, common::GEMMA3] {
        for quantized_cache in [false, true] {
            if decode_and_sample_allocate_nothing(file, quantized_cache) {
                passed += 1;
            } else {
                skipped += 1;
            }
        }
    }
    println!("zero_alloc: {passed} passed, 0 failed, {skipped} skipped");
}

/// False when the model is absent (skipped, loudly).
fn decode_and_sample_allocate_nothing(file: &str, quantized_cache: bool) -> bool {
    let Some(path) = common::model(file) else {
        return false;
    };
    let model = Model::load(&path).unwrap();
    // A small arena: 4 sinks + a window of 64, so the ring wraps several times.
    // Two threads: the workers are started by Context::new; the count covers them too.
    // With `quantized_cache`, keys in Q4_0 and values in Q8_0: quantizing rows as they enter
    // the arena and scoring quantized queries allocate nothing either.
    let params = ContextParams {
        n_sink: 4,
        n_window: 64,
        n_batch: 64,
        n_threads: 2,
        kv_type: if quantized_cache {
            KvType::Q8_0
        } else {
            KvType::F16
        },
        kv_type_k: quantized_cache.then_some(KvType::Q4_0),
        ..Default::default()
    };
    let mut ctx = Context::new(&model, params).unwrap();
    let sampling = SamplerParams {
        temperature: 0.8,
        repeat_penalty: 1.1,
        top_k: 0,
        ..Default::default()
    };
    let mut sampler = Sampler::new(model.hparams().n_vocab, sampling);
    let mut greedy = Sampler::new(model.hparams().n_vocab, SamplerParams::default());
    let prompt: Vec<u32> = (0..48).map(|i| 100 + i * 7).collect();
    // Room for a saved state (sized before the count: the state of a full arena).
    let mut state = vec![0u8; 64 << 20];

    let tokenizer = model.tokenizer();
    let mut text_bytes = 0usize;
    let mut decoder = eddy::tokenizer::StreamDecoder::new(tokenizer, false);
    // Warm-up outside the count: one decode call.
    ctx.decode(&prompt[..1]).unwrap();

    let before = ALLOCS.load(Ordering::SeqCst);
    ctx.decode(&prompt).unwrap();
    let mut tok = sampler.sample(ctx.logits());
    for i in 0..260 {
        sampler.accept(tok);
        decoder.push(tok, |s| text_bytes += s.len());
        ctx.decode(&[tok]).unwrap();
        if i == 200 {
            // Saving and restoring the stream allocates nothing either.
            let n = ctx.save_state(&mut state).unwrap();
            ctx.load_state(&state[..n]).unwrap();
        }
        tok = if i % 2 == 0 {
            sampler.sample(ctx.logits())
        } else {
            greedy.sample(ctx.logits())
        };
    }
    decoder.finish(|s| text_bytes += s.len());
    // A refused call allocates nothing either (its error message is built lazily).
    let refused = ctx.decode(&[u32::MAX]).is_err();
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(refused);
    assert!(text_bytes > 0);
    assert!(
        ctx.n_seen() > 3 * 64 + 4,
        "the ring must wrap several times"
    );
    assert_eq!(
        after - before,
        0,
        "{file}: {} allocations while streaming 308 tokens through decode, sample, detokenize and a state save + restore",
        after - before
    );
    eprintln!("{file}: 0 allocations over 308 tokens");
    true
}
