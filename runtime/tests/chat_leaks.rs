//! Hostile chat templates must not leak: minijinja frees values by reference counting, and a
//! template can build a reference cycle (`{% set ns.x = ns %}`, `loop.changed(loop)`) that
//! would outlive its render. An application rendering such a template once per turn would
//! grow without bound. A global allocator counts the bytes alive; after a warm-up render,
//! 200 more renders of each template must leave that count where it was.
//!
//! Like `zero_alloc.rs`, this binary has no libtest harness (`harness = false`): libtest's
//! own threads allocate and would blur the count. `main` exits non-zero on failure.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use eddy::Model;
use eddy::chat::{ChatTemplate, Conversation};

struct Live;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts bytes.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Live = Live;

/// Templates that build a reference cycle in plain minijinja; each must now render or fail
/// with a typed error, and leave nothing behind either way.
const CASES: &[&str] = &[
    // A namespace holding itself, directly and through a list.
    "{% set ns = namespace(x=0) %}{% set ns.x = ns %}{{ ns.x is defined }}",
    "{% set ns = namespace() %}{% set ns.l = [1, ns] %}ok",
    // Two namespaces holding each other, the second through its defaults.
    "{% set a = namespace() %}{% set b = namespace(p=a) %}{% set a.q = b %}ok",
    // A loop held by a namespace the loop iterates over.
    "{% set ns = namespace() %}{% for x in [ns, 1] %}{% set ns.l = loop %}{% endfor %}ok",
    // Through a block assignment's filter.
    "{% set ns = namespace() %}{% set ns.x | default(ns, true) %}{% endset %}ok",
    // A macro closure and a namespace (minijinja frees closures itself).
    "{% set ns = namespace() %}{% macro m() %}{{ ns }}{% endmacro %}{% set ns.m = m %}ok",
    // The fuzzer's find (CI, 2026-12-07), reduced.
    "{% set ns = namespace(x=0) %}{% for m in messages %}{% set ns.x = ns %}{% endfor %}{{ ns.x.x.x is defined }}",
    // A loop remembering itself through `changed`.
    "{% for m in messages %}{{ loop.changed(loop) }}{% endfor %}",
    "{% for m in messages %}{{ loop.changed([loop, m]) }}{% endfor %}",
    // Plain namespace use, as real templates do: must keep working and not leak.
    "{% set ns = namespace(n=0, seen=[]) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% set ns.seen = ns.seen + [m] %}{% endfor %}{{ ns.n }} {{ ns.seen|length }}",
];

fn main() {
    let Some(path) = common::model(common::SMOLLM2) else {
        common::skipped("chat_leaks: the SmolLM2 model is missing");
        return;
    };
    let model = Model::load(path).expect("model loads");
    let mut conv = Conversation::new();
    conv.push("user", "hi");
    conv.push("assistant", "hello");
    let mut failed = 0;
    for src in CASES {
        // Compiling and rendering, each one way or the other: the outcome is not the point.
        let attempt = || match ChatTemplate::from_source(&model, src) {
            Ok(t) => t.render(&conv).map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let outcome = attempt();
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        for _ in 0..200 {
            let _ = attempt();
        }
        let grown = LIVE_BYTES.load(Ordering::Relaxed) - before;
        let verdict = if grown > 0 { "LEAKS" } else { "ok" };
        eprintln!("{verdict:>5}: {grown:>7} bytes after 200 renders of {src}\n       {outcome:?}");
        if grown > 0 {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("chat_leaks: {failed} of {} templates leak", CASES.len());
        std::process::exit(1);
    }
}
