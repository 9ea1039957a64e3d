//! After `Context::new` and `Sampler::new`, decoding and sampling allocate nothing: a counting
//! global allocator watches hundreds of decoded tokens.
//!
//! One test per binary: the allocator counts every thread of the process.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use eddy::{Context, ContextParams, Model, Sampler, SamplerParams};

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

#[test]
fn decode_and_sample_allocate_nothing() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let model = Model::load(&path).unwrap();
    let params = ContextParams {
        n_ctx: 320,
        n_batch: 64,
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

    let before = ALLOCS.load(Ordering::SeqCst);
    ctx.decode(&prompt).unwrap();
    let mut tok = sampler.sample(ctx.logits());
    for i in 0..260 {
        sampler.accept(tok);
        ctx.decode(&[tok]).unwrap();
        tok = if i % 2 == 0 {
            sampler.sample(ctx.logits())
        } else {
            greedy.sample(ctx.logits())
        };
    }
    // A refused call allocates nothing either (its error message is built lazily).
    let full = ctx.decode(&prompt).is_err();
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(full);
    assert_eq!(
        after - before,
        0,
        "{} allocations during 308 decoded tokens",
        after - before
    );
}
