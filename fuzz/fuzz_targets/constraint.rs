//! Arbitrary JSON schemas, Lark grammars, regexes and tool lists as constraints
//! (`eddy::constraint`, through llguidance), compiled against the real models' vocabularies and
//! then followed for a few tokens; also through the C call `eddy_sampler_set_constraint`.
//!
//! Input: byte 0 picks the kind (bits 0-1: JSON schema, Lark, regex, tool list) and the model
//! (bit 2: SmolLM2's 49k-token vocabulary or Qwen 2.5's 152k); the rest is the text, and its
//! bytes also choose which allowed token each step takes. Checked: compiling succeeds or fails
//! with `ConstraintError::Invalid`; a compiled constraint gives a non-empty mask or a typed
//! error at every step; the C call gives the same verdict as the Rust API (or
//! EDDY_STATUS_INVALID_UTF8 for bytes that are not UTF-8). A panic, a hang (libFuzzer's
//! timeout) or an out-of-memory kill is a bug. Seeds: `make-seeds`.
#![no_main]

use std::sync::OnceLock;

use eddy::Model;
use eddy::constraint::{ConstraintError, ConstraintKind, tool_call_grammar};
use eddy_ffi::eddy_status::*;
use eddy_ffi::model::eddy_model;
use eddy_ffi::sampler::{eddy_sampler, eddy_sampler_new, eddy_sampler_set_constraint};
use eddy_fuzz::REAL_MODELS;
use libfuzzer_sys::fuzz_target;

/// A real model, loaded once through each API, with a sampler of the C API.
struct Loaded {
    model: Model,
    c_model: *mut eddy_model,
    c_sampler: *mut eddy_sampler,
}

// SAFETY: libFuzzer runs the target on one thread; the handles live until the process exits.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

fn models() -> &'static [Loaded] {
    static MODELS: OnceLock<Vec<Loaded>> = OnceLock::new();
    MODELS.get_or_init(|| {
        ["smollm2", "qwen2"]
            .iter()
            .map(|name| {
                let m = REAL_MODELS.iter().find(|m| m.name == *name).unwrap();
                let model = m.load();
                let path = std::ffi::CString::new(m.path().to_string_lossy().into_owned()).unwrap();
                let mut c_model = std::ptr::null_mut();
                // SAFETY: path is NUL-terminated, c_model is writable.
                let st = unsafe { eddy_ffi::model::eddy_model_load(path.as_ptr(), &mut c_model) };
                assert_eq!(st, EDDY_STATUS_OK);
                let mut c_sampler = std::ptr::null_mut();
                // SAFETY: live model, NULL params, writable out pointer.
                let st = unsafe { eddy_sampler_new(c_model, std::ptr::null(), &mut c_sampler) };
                assert_eq!(st, EDDY_STATUS_OK);
                Loaded {
                    model,
                    c_model,
                    c_sampler,
                }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, text)) = data.split_first() else {
        return;
    };
    let loaded = &models()[usize::from(head >> 2 & 1)];
    let kind = match head & 3 {
        0 => ConstraintKind::JsonSchema,
        1 => ConstraintKind::Lark,
        2 => ConstraintKind::Regex,
        _ => ConstraintKind::Lark,
    };
    let Ok(s) = std::str::from_utf8(text) else {
        if head & 3 != 3 {
            // SAFETY: live sampler and model; text holds text.len() bytes.
            let st = unsafe {
                eddy_sampler_set_constraint(
                    loaded.c_sampler,
                    loaded.c_model,
                    u32::from(head & 3),
                    text.as_ptr().cast(),
                    text.len(),
                )
            };
            assert_eq!(st, EDDY_STATUS_INVALID_UTF8);
        }
        return;
    };
    let source = if head & 3 == 3 {
        match tool_call_grammar(s) {
            Ok(g) => g,
            Err(ConstraintError::Invalid { .. }) => return,
            Err(e) => panic!("tool_call_grammar: wrong error kind {e:?}"),
        }
    } else {
        s.to_string()
    };
    let vocab = loaded.model.constraint_vocab().unwrap();
    let compiled = vocab.compile(kind, &source);
    // The C call agrees with the Rust API.
    // SAFETY: live sampler and model; source holds source.len() bytes.
    let st = unsafe {
        eddy_sampler_set_constraint(
            loaded.c_sampler,
            loaded.c_model,
            match kind {
                ConstraintKind::JsonSchema => 0,
                ConstraintKind::Lark => 1,
                ConstraintKind::Regex => 2,
            },
            source.as_ptr().cast(),
            source.len(),
        )
    };
    let mut c = match compiled {
        Ok(c) => {
            assert_eq!(st, EDDY_STATUS_OK);
            c
        }
        Err(ConstraintError::Invalid { .. }) => {
            assert_eq!(st, EDDY_STATUS_INVALID_CONSTRAINT);
            return;
        }
        Err(e) => panic!("compile: wrong error kind {e:?}"),
    };
    // Follow it for a few steps, each taking an allowed token chosen by the input's bytes.
    let mut pick = text.iter().cycle().copied();
    for _ in 0..12 {
        let mask = match c.allowed() {
            Ok(m) => m,
            Err(ConstraintError::Parse(_)) => return,
            Err(e) => panic!("allowed: wrong error kind {e:?}"),
        };
        let n = mask.count();
        assert!(n > 0, "an empty mask without an error");
        let k = usize::from(pick.next().unwrap_or(0)) % n;
        let mut chosen = None;
        let mut i = 0;
        mask.for_each(|t| {
            if i == k {
                chosen = Some(t);
            }
            i += 1;
        });
        let t = chosen.unwrap();
        assert!(mask.allows(t));
        if loaded.model.tokenizer().is_eog(t) || c.is_finished() {
            return;
        }
        if c.advance(t).is_err() {
            return;
        }
    }
});
