//! Arbitrary bytes as a saved context state, restored through the Rust API or the C ABI into a
//! fresh context of a tiny synthetic model.
//!
//! Input: byte 0 picks the arena geometry (`eddy_fuzz::state_params`, bits 0-1), bit 2 makes
//! the target write the right checksum into the header first (so that mutations reach the code
//! behind the checksum), bit 3 goes through the C ABI; the rest is the state. Checked: the load
//! is refused with an error, leaving the context as it was, or accepted; an accepted state
//! saves back to the same bytes and the stream continues (one more token decodes).
#![no_main]

use eddy::{Context, Model};
use eddy_ffi::context::{
    EDDY_KV_SAME, eddy_context, eddy_context_default_params, eddy_context_free,
    eddy_context_n_seen, eddy_context_new, eddy_context_state_load, eddy_context_state_save,
    eddy_decode,
};
use eddy_ffi::eddy_status::{self, *};
use eddy_ffi::model::eddy_model;
use eddy_fuzz::{fix_state_checksum, state_params};
use libfuzzer_sys::fuzz_target;

fn check(status: eddy_status, call: &str) -> eddy_status {
    assert_ne!(status, EDDY_STATUS_PANIC, "{call} panicked");
    status
}

fn load_rust(model: &Model, selector: u8, state: &[u8]) {
    let mut ctx = Context::new(model, state_params(selector)).expect("context");
    if ctx.load_state(state).is_err() {
        assert_eq!(ctx.n_seen(), 0, "a refused state changed the context");
        return;
    }
    assert_eq!(ctx.state_size(), state.len());
    let mut again = vec![0u8; state.len()];
    assert_eq!(ctx.save_state(&mut again).ok(), Some(state.len()));
    assert_eq!(again, state, "an accepted state saves back differently");
    ctx.decode(&[1]).expect("decode after a restored state");
}

fn load_c(c_model: *const eddy_model, selector: u8, state: &[u8]) {
    let p = state_params(selector);
    let mut params = eddy_context_default_params();
    params.n_sink = p.n_sink as u32;
    params.n_window = p.n_window as u32;
    params.n_batch = p.n_batch as u32;
    params.n_ubatch = p.n_ubatch as u32;
    // The C constants are the indices of `KvType::ALL`.
    let code = |t: eddy::KvType| eddy::KvType::ALL.iter().position(|&x| x == t).unwrap() as u32;
    params.kv_type = code(p.kv_type);
    params.kv_type_k = p.kv_type_k.map_or(EDDY_KV_SAME, code);
    params.kv_type_v = p.kv_type_v.map_or(EDDY_KV_SAME, code);
    params.logits_all = p.logits_all;
    let mut ctx: *mut eddy_context = std::ptr::null_mut();
    // SAFETY: c_model is live, params is a whole struct, ctx is writable.
    let status = unsafe { eddy_context_new(c_model, &params, &mut ctx) };
    assert_eq!(check(status, "eddy_context_new"), EDDY_STATUS_OK);
    // SAFETY: ctx is live and ours; state holds len bytes.
    let status = check(
        unsafe { eddy_context_state_load(ctx, state.as_ptr(), state.len()) },
        "eddy_context_state_load",
    );
    match status {
        // SAFETY: ctx is live.
        EDDY_STATUS_INVALID_STATE => assert_eq!(unsafe { eddy_context_n_seen(ctx) }, 0),
        EDDY_STATUS_OK => {
            let mut again = vec![0u8; state.len()];
            let mut n = 0;
            // SAFETY: ctx is live; again holds its length; n is writable.
            let status =
                unsafe { eddy_context_state_save(ctx, again.as_mut_ptr(), again.len(), &mut n) };
            assert_eq!(check(status, "eddy_context_state_save"), EDDY_STATUS_OK);
            assert_eq!(
                &again[..n],
                state,
                "an accepted state saves back differently"
            );
            let token = 1u32;
            let mut consumed = 0;
            // SAFETY: ctx is live; one token; consumed is writable.
            let status = unsafe { eddy_decode(ctx, &token, 1, &mut consumed) };
            assert_eq!(check(status, "eddy_decode"), EDDY_STATUS_OK);
        }
        other => panic!("eddy_context_state_load returned {other:?}"),
    }
    // SAFETY: ctx came from eddy_context_new and is not used again.
    unsafe { eddy_context_free(ctx) };
}

fuzz_target!(|data: &[u8]| {
    let [flags, state @ ..] = data else {
        return;
    };
    let mut state = state.to_vec();
    if flags & 4 != 0 {
        fix_state_checksum(&mut state);
    }
    let m = eddy_fuzz::tiny_models();
    if flags & 8 != 0 {
        load_c(m.c_model, *flags, &state);
    } else {
        load_rust(&m.model, *flags, &state);
    }
});
