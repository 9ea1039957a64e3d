//! What constrained decoding costs per token, apart from the model: builds a model's
//! constraint tables, compiles a JSON schema, then replays a schema-valid output token by
//! token, timing each step's mask and counting the allocations it makes.
//!
//! ```text
//! cargo run --release -p eddy --example constraint_cost -- MODEL.gguf [ROUNDS]
//! ```
//!
//! The output replayed is the model's own tokenization of a fixed JSON record (valid under the
//! schema below), so each step computes the mask a real generation would.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use eddy::Model;
use eddy::constraint::ConstraintKind;

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for GlobalAlloc::alloc, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout (the caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract for GlobalAlloc::realloc, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 24},
    "age": {"type": "integer", "minimum": 18, "maximum": 99},
    "role": {"enum": ["engineer", "designer", "manager"]},
    "skills": {"type": "array", "items": {"type": "string", "maxLength": 16},
               "minItems": 1, "maxItems": 3},
    "remote": {"type": "boolean"}
  },
  "required": ["name", "age", "role", "skills", "remote"],
  "additionalProperties": false
}"#;

const OUTPUT: &str = "{\n  \"name\": \"Jane Doe\",\n  \"age\": 28,\n  \"role\": \"manager\",\n  \
                      \"skills\": [\"Java\", \"SQL\", \"Data Science\"],\n  \"remote\": true\n}";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: constraint_cost MODEL.gguf [ROUNDS]")?;
    let rounds: usize = args.get(2).map_or(Ok(20), |r| r.parse())?;
    let model = Model::load(path)?;
    let t = Instant::now();
    let vocab = model.constraint_vocab()?;
    let t_vocab = t.elapsed().as_secs_f64() * 1e3;
    let tokens = model.tokenizer().encode(OUTPUT, false, false);

    let mut times = Vec::new();
    let mut compile_ms = Vec::new();
    let (mut allocs, mut bytes) = (0u64, 0u64);
    for round in 0..rounds {
        let t = Instant::now();
        let mut c = vocab.compile(ConstraintKind::JsonSchema, SCHEMA)?;
        compile_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for &tok in &tokens {
            let t = Instant::now();
            let mask = c.allowed()?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(mask.allows(tok), "the record is not valid under the schema");
            c.advance(tok)?;
        }
        let mask = c.allowed()?;
        assert!(
            model
                .tokenizer()
                .eog_tokens()
                .iter()
                .all(|&e| mask.allows(e))
        );
        if round == rounds - 1 {
            allocs = ALLOCS.load(Ordering::Relaxed) - a0;
            bytes = BYTES.load(Ordering::Relaxed) - b0;
        }
    }
    times.sort_by(f64::total_cmp);
    compile_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let n = tokens.len() as u64;
    println!(
        "{}: {} tokens; tables {t_vocab:.0} ms; compile median {:.2} ms; mask per token over {} steps: median {:.0} us, p90 {:.0} us, max {:.0} us, mean {:.0} us; per token {} allocations, {} bytes (last round)",
        model.arch_name(),
        model.tokenizer().n_tokens(),
        compile_ms[compile_ms.len() / 2],
        times.len(),
        pct(0.5),
        pct(0.9),
        times[times.len() - 1],
        times.iter().sum::<f64>() / times.len() as f64,
        allocs / n,
        bytes / n,
    );
    Ok(())
}
