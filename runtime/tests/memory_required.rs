//! `Context::memory_required` tells every byte `Context::new` will allocate: a counting global
//! allocator sums the bytes `new` asks for. One test per binary (the count is process-wide).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use eddy::{Context, ContextParams, KvType, Model, Sampler, SamplerParams};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only adds up sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size.saturating_sub(layout.size()), Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn memory_required_is_exact() {
    for file in [common::SMOLLM2, common::GEMMA3, common::QWEN2] {
        let Some(path) = common::model(file) else {
            continue;
        };
        let model = Model::load(&path).unwrap();
        for params in [
            ContextParams::default(),
            ContextParams {
                n_sink: 4,
                n_window: 252,
                n_batch: 64,
                kv_type: KvType::F32,
                logits_all: true,
                ..Default::default()
            },
            ContextParams {
                kv_type: KvType::Q8_0,
                ..Default::default()
            },
            ContextParams {
                n_window: 300,
                kv_type_k: Some(KvType::Q4_0),
                kv_type_v: Some(KvType::F32),
                ..Default::default()
            },
            ContextParams {
                n_sink: 0,
                n_window: 17,
                n_batch: 5,
                n_ubatch: 3,
                ..Default::default()
            },
        ] {
            let want = Context::memory_required(&model, &params).unwrap();
            let before = BYTES.load(Ordering::SeqCst);
            let ctx = Context::new(&model, params.clone()).unwrap();
            let got = BYTES.load(Ordering::SeqCst) - before;
            drop(ctx);
            eprintln!("{file} {params:?}: memory_required {want}, allocated {got}");
            assert_eq!(got, want, "{file} {params:?}");
        }
        let sp = SamplerParams::default();
        let want = Sampler::memory_required(model.hparams().n_vocab, &sp);
        let before = BYTES.load(Ordering::SeqCst);
        let s = Sampler::new(model.hparams().n_vocab, sp);
        let got = BYTES.load(Ordering::SeqCst) - before;
        drop(s);
        assert_eq!(got, want);
    }
}
