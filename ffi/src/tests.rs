//! Tests of the C ABI, calling the `extern "C"` functions as a C program would (the crate is a
//! cdylib/staticlib only, so these live inside it rather than in `tests/`).

use std::ffi::{CStr, c_char, c_void};
use std::path::PathBuf;
use std::ptr;

use super::*;
use crate::chat::*;
use crate::context::*;
use crate::generate::*;
use crate::logging::*;
use crate::model::*;
use crate::sampler::*;
use eddy_status::*;

fn last_error() -> String {
    // SAFETY: eddy_last_error returns a valid NUL-terminated string, never NULL.
    unsafe { CStr::from_ptr(eddy_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// The default model, or `None` (with a loud message) when it has not been fetched; with
/// `EDDY_REQUIRE_MODELS=1` (CI) a missing model fails the test instead.
fn model_path() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        return Some(p);
    }
    if std::env::var("EDDY_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("{} is missing and EDDY_REQUIRE_MODELS=1", p.display());
    }
    eprintln!(
        "SKIPPED: {} not found (run scripts/fetch-models.sh)",
        p.display()
    );
    None
}

fn load(path: &std::path::Path) -> *mut eddy_model {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut m = ptr::null_mut();
    // SAFETY: a valid C string and a writable out pointer.
    let st = unsafe { eddy_model_load(c.as_ptr(), &mut m) };
    assert_eq!(st, EDDY_STATUS_OK, "{}", last_error());
    m
}

#[test]
fn version_string_matches_numbers_and_cargo() {
    let want = format!("{EDDY_VERSION_MAJOR}.{EDDY_VERSION_MINOR}.{EDDY_VERSION_PATCH}");
    // SAFETY: eddy_version returns a static C string.
    let got = unsafe { CStr::from_ptr(eddy_version()) };
    assert_eq!(got.to_str().unwrap(), want);
    assert_eq!(want, env!("CARGO_PKG_VERSION"));
    assert_eq!(eddy_abi_version(), EDDY_ABI_VERSION);
}

#[test]
fn a_panic_becomes_a_status_and_a_message() {
    let st = boundary::guard(|| panic!("boom in a test"));
    assert_eq!(st, EDDY_STATUS_PANIC);
    assert!(last_error().contains("boom in a test"), "{}", last_error());
    let v = boundary::guard_value(7u32, || panic!("again"));
    assert_eq!(v, 7);
}

#[test]
fn last_error_is_per_thread_and_copy_does_not_replace_it() {
    let mut m = ptr::null_mut();
    // SAFETY: NULL path is allowed (reported); out pointer is writable.
    let st = unsafe { eddy_model_load(ptr::null(), &mut m) };
    assert_eq!(st, EDDY_STATUS_NULL_POINTER);
    assert_eq!(last_error(), "path is NULL");
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");

    let mut need = 0usize;
    // SAFETY: size query with a NULL buffer of length 0.
    let st = unsafe { eddy_last_error_copy(ptr::null_mut(), 0, &mut need) };
    assert_eq!(st, EDDY_STATUS_BUFFER_TOO_SMALL);
    assert_eq!(need, "path is NULL".len() + 1);
    let mut buf = vec![b'x' as c_char; need];
    let mut n = 0usize;
    // SAFETY: buf holds `need` writable bytes.
    let st = unsafe { eddy_last_error_copy(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(st, EDDY_STATUS_OK);
    assert_eq!(n, need - 1);
    // SAFETY: the copy is NUL-terminated.
    let copied = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(copied.to_str().unwrap(), "path is NULL");
    assert_eq!(last_error(), "path is NULL");
}

#[test]
fn null_handles_are_harmless() {
    // SAFETY: every function below accepts NULL handles.
    unsafe {
        eddy_model_free(ptr::null_mut());
        eddy_context_free(ptr::null_mut());
        eddy_sampler_free(ptr::null_mut());
        eddy_context_reset(ptr::null_mut());
        eddy_sampler_reset(ptr::null_mut());
        assert_eq!(eddy_model_n_vocab(ptr::null()), 0);
        assert_eq!(eddy_model_repacked_bytes(ptr::null()), 0);
        assert_eq!(eddy_model_token_bos(ptr::null()), EDDY_TOKEN_NONE);
        assert!(eddy_model_arch(ptr::null()).is_null());
        assert_eq!(eddy_context_n_seen(ptr::null()), 0);
        let mut n = 5usize;
        assert_eq!(
            eddy_decode(ptr::null_mut(), ptr::null(), 0, &mut n),
            EDDY_STATUS_NULL_POINTER
        );
        assert_eq!(n, 5);
    }
}

#[test]
fn garbage_bytes_are_an_invalid_model() {
    let bytes = b"GGUF\x03\0\0\0\xff\xff\xff\xff\xff\xff\xff\x7f\0\0\0\0\0\0\0\0";
    let mut m = ptr::null_mut();
    // SAFETY: bytes is readable for its length; out pointer writable.
    let st = unsafe { eddy_model_load_from_buffer(bytes.as_ptr(), bytes.len(), &mut m) };
    assert_eq!(st, EDDY_STATUS_INVALID_MODEL);
    assert!(m.is_null());
    assert!(last_error().contains("tensor count"), "{}", last_error());
}

#[test]
fn params_carry_their_size() {
    let p = eddy_context_default_params();
    assert_eq!(p.size as usize, std::mem::size_of::<eddy_context_params>());
    let s = eddy_sampler_default_params();
    assert_eq!(s.size as usize, std::mem::size_of::<eddy_sampler_params>());
    let d = eddy::SamplerParams::default();
    assert_eq!(s.temperature, d.temperature);
    assert_eq!(s.seed, d.seed);
}

struct Collected {
    text: String,
    pieces: usize,
    stop_after: usize,
}

unsafe extern "C" fn collect(piece: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: user is the &mut Collected passed to eddy_generate below.
    let c = unsafe { &mut *user.cast::<Collected>() };
    // SAFETY: piece points to len bytes of UTF-8 plus a NUL, valid during the call.
    let bytes = unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), len + 1) };
    assert_eq!(bytes[len], 0, "pieces are NUL-terminated");
    c.text
        .push_str(std::str::from_utf8(&bytes[..len]).expect("whole UTF-8"));
    c.pieces += 1;
    c.pieces < c.stop_after
}

/// The greedy continuation computed with the Rust API, as `eddy generate --temp 0` does.
fn rust_greedy(path: &std::path::Path, prompt: &str, n: usize) -> String {
    let model = eddy::Model::load(path).unwrap();
    let tok = model.tokenizer();
    let ids = tok.encode(prompt, true, true);
    let mut ctx = eddy::Context::new(&model, eddy::ContextParams::default()).unwrap();
    ctx.decode(&ids).unwrap();
    let mut out = String::new();
    let mut dec = eddy::tokenizer::StreamDecoder::new(tok, false);
    for i in 0..n {
        let next =
            eddy::Sampler::new(model.hparams().n_vocab, Default::default()).sample(ctx.logits());
        if tok.is_eog(next) {
            break;
        }
        dec.push(next, |s| out.push_str(s));
        if i + 1 < n {
            ctx.decode(&[next]).unwrap();
        }
    }
    dec.finish(|s| out.push_str(s));
    out
}

#[test]
fn generate_equals_the_rust_api_and_the_context_outlives_the_model() {
    let Some(path) = model_path() else { return };
    let prompt = "The capital of France is";
    let want = rust_greedy(&path, prompt, 24);

    let model = load(&path);
    let mut ctx = ptr::null_mut();
    // SAFETY: live model, NULL params (defaults), writable out pointer.
    let st = unsafe { eddy_context_new(model, ptr::null(), &mut ctx) };
    assert_eq!(st, EDDY_STATUS_OK, "{}", last_error());
    // SAFETY: the model may be freed while the context lives (documented).
    unsafe { eddy_model_free(model) };

    let mut got = Collected {
        text: String::new(),
        pieces: 0,
        stop_after: usize::MAX,
    };
    let mut n = 0usize;
    // SAFETY: live context, NULL sampler (greedy), prompt bytes valid, callback + user data
    // valid for the call.
    let st = unsafe {
        eddy_generate(
            ctx,
            ptr::null_mut(),
            prompt.as_ptr().cast(),
            prompt.len(),
            true,
            24,
            Some(collect),
            (&mut got as *mut Collected).cast(),
            &mut n,
        )
    };
    assert_eq!(st, EDDY_STATUS_OK, "{}", last_error());
    assert_eq!(got.text, want);
    assert_eq!(n, 24);
    // SAFETY: live context.
    let seen = unsafe { eddy_context_n_seen(ctx) };
    assert_eq!(
        seen,
        5 + 24,
        "prompt + every generated token are in the context"
    );

    // The callback can stop generation: one piece, then stop.
    let mut one = Collected {
        text: String::new(),
        pieces: 0,
        stop_after: 1,
    };
    // SAFETY: as above; an empty prompt continues from the last logits.
    let st = unsafe {
        eddy_generate(
            ctx,
            ptr::null_mut(),
            ptr::null(),
            0,
            false,
            10,
            Some(collect),
            (&mut one as *mut Collected).cast(),
            &mut n,
        )
    };
    assert_eq!(st, EDDY_STATUS_OK);
    assert_eq!(one.pieces, 1);
    assert!(n >= 1);
    // SAFETY: live context, freed once.
    unsafe { eddy_context_free(ctx) };
}

unsafe extern "C" fn abort_after_two(user: *mut c_void) -> bool {
    // SAFETY: user is the &mut u32 counter given with the callback.
    let polls = unsafe { &mut *user.cast::<u32>() };
    *polls += 1;
    *polls > 2
}

#[test]
fn an_aborted_decode_reports_what_it_consumed_and_stays_usable() {
    let Some(path) = model_path() else { return };
    let model = load(&path);
    let mut p = eddy_context_default_params();
    p.n_batch = 3;
    p.n_window = 32;
    let mut ctx = ptr::null_mut();
    // SAFETY: live model, valid params, writable out.
    let st = unsafe { eddy_context_new(model, &p, &mut ctx) };
    assert_eq!(st, EDDY_STATUS_OK);
    let mut polls = 0u32;
    // SAFETY: live context; the counter outlives its use.
    unsafe {
        eddy_context_set_abort_callback(ctx, Some(abort_after_two), (&mut polls as *mut u32).cast())
    };
    let tokens: Vec<u32> = (100..110).collect();
    let mut n = 0usize;
    // SAFETY: live context, tokens readable.
    let st = unsafe { eddy_decode(ctx, tokens.as_ptr(), tokens.len(), &mut n) };
    assert_eq!(st, EDDY_STATUS_ABORTED);
    assert_eq!(n, 6);
    // SAFETY: live context.
    unsafe {
        assert_eq!(eddy_context_n_seen(ctx), 6);
        eddy_context_set_abort_callback(ctx, None, ptr::null_mut());
        assert_eq!(
            eddy_decode(ctx, tokens[6..].as_ptr(), 4, &mut n),
            EDDY_STATUS_OK
        );
        assert_eq!(n, 4);
        assert_eq!(eddy_context_n_seen(ctx), 10);
        let mut logits = ptr::null();
        let mut n_vocab = 0usize;
        assert_eq!(
            eddy_context_logits(ctx, &mut logits, &mut n_vocab),
            EDDY_STATUS_OK
        );
        assert_eq!(n_vocab as u32, eddy_model_n_vocab(model));
        eddy_context_free(ctx);
        eddy_model_free(model);
    }
}

static LOGGED: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn record_log(level: eddy_log_level, msg: *const c_char, _user: *mut c_void) {
    // SAFETY: msg is a valid C string during the call.
    let text = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    LOGGED.lock().unwrap().push((level, text));
}

#[test]
fn log_records_reach_the_c_callback() {
    // SAFETY: the callback is thread-safe (a mutex) and needs no user data.
    let st = unsafe { eddy_set_log_callback(Some(record_log), ptr::null_mut(), EDDY_LOG_WARN) };
    assert_eq!(st, EDDY_STATUS_OK);
    log::warn!("a warning for the test {}", 42);
    log::debug!("filtered out");
    // SAFETY: turning logging off.
    unsafe { eddy_set_log_callback(None, ptr::null_mut(), EDDY_LOG_OFF) };
    log::warn!("after turning it off");
    let logged = LOGGED.lock().unwrap();
    assert!(logged.contains(&(EDDY_LOG_WARN, "a warning for the test 42".to_owned())));
    assert!(
        !logged
            .iter()
            .any(|(_, m)| m == "filtered out" || m == "after turning it off")
    );
}

/// Calls eddy_chat_apply_template with a buffer of `cap` bytes; returns the status, the text
/// and *out_len.
fn apply(
    m: *const eddy_model,
    tmpl: Option<&CStr>,
    msgs: &[eddy_chat_message],
    tools: Option<&CStr>,
    cap: usize,
) -> (eddy_status, String, usize) {
    let mut buf = vec![0 as c_char; cap];
    let mut len = usize::MAX;
    // SAFETY: valid strings, a buffer of cap bytes, a writable length.
    let st = unsafe {
        eddy_chat_apply_template(
            m,
            tmpl.map_or(ptr::null(), CStr::as_ptr),
            msgs.as_ptr(),
            msgs.len(),
            tools.map_or(ptr::null(), CStr::as_ptr),
            true,
            if cap == 0 {
                ptr::null_mut()
            } else {
                buf.as_mut_ptr()
            },
            cap,
            &mut len,
        )
    };
    let text = if st == EDDY_STATUS_OK {
        // SAFETY: on success the buffer holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    (st, text, len)
}

#[test]
fn chat_apply_template_renders_sizes_and_refuses() {
    let Some(path) = model_path() else { return };
    let m = load(&path);
    let msgs = [
        eddy_chat_message {
            role: c"system".as_ptr(),
            content: c"Be brief.".as_ptr(),
        },
        eddy_chat_message {
            role: c"user".as_ptr(),
            content: c"Hi!".as_ptr(),
        },
    ];
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n";
    // Size query, then the exact size (with the NUL), then one byte short.
    let (st, _, need) = apply(m, None, &msgs, None, 0);
    assert_eq!(st, EDDY_STATUS_BUFFER_TOO_SMALL);
    assert_eq!(need, want.len() + 1);
    let (st, text, len) = apply(m, None, &msgs, None, need);
    assert_eq!((st, text.as_str(), len), (EDDY_STATUS_OK, want, want.len()));
    assert_eq!(
        apply(m, None, &msgs, None, need - 1).0,
        EDDY_STATUS_BUFFER_TOO_SMALL
    );
    // A built-in format by name, and a template given as source.
    let (st, text, _) = apply(m, Some(c"gemma"), &msgs, None, 4096);
    assert_eq!(st, EDDY_STATUS_OK);
    assert_eq!(
        text,
        "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\n"
    );
    let (st, text, _) = apply(
        m,
        Some(c"{{ messages | length }}{{ tools[0].x }}"),
        &msgs,
        Some(c"[{\"x\": 7}]"),
        64,
    );
    assert_eq!((st, text.as_str()), (EDDY_STATUS_OK, "27"));
    // Bad templates, tools, strings and pointers.
    let (st, _, len) = apply(m, Some(c"{% if %}"), &msgs, None, 64);
    assert_eq!((st, len), (EDDY_STATUS_INVALID_TEMPLATE, usize::MAX));
    assert!(last_error().contains("syntax"), "{}", last_error());
    let (st, _, _) = apply(m, Some(c"{{ raise_exception('nope') }}"), &msgs, None, 64);
    assert_eq!(st, EDDY_STATUS_INVALID_TEMPLATE);
    assert!(last_error().contains("nope"), "{}", last_error());
    assert_eq!(
        apply(m, None, &msgs, Some(c"{}"), 64).0,
        EDDY_STATUS_INVALID_ARGUMENT
    );
    let bad = [eddy_chat_message {
        role: c"user".as_ptr(),
        content: c"\xff".as_ptr(),
    }];
    assert_eq!(apply(m, None, &bad, None, 64).0, EDDY_STATUS_INVALID_UTF8);
    let null_role = [eddy_chat_message {
        role: ptr::null(),
        content: c"x".as_ptr(),
    }];
    assert_eq!(
        apply(m, None, &null_role, None, 64).0,
        EDDY_STATUS_NULL_POINTER
    );
    assert!(
        last_error().contains("messages[0].role"),
        "{}",
        last_error()
    );
    assert_eq!(
        apply(ptr::null(), None, &msgs, None, 64).0,
        EDDY_STATUS_NULL_POINTER
    );
    // SAFETY: m was loaded above and is not used afterwards.
    unsafe { eddy_model_free(m) };
}

/// A constraint through the C ABI: compiled against the model, refused with a reason when bad
/// (the sampler unchanged), applied by eddy_generate (the output is what the regex allows, and
/// the call ends where the regex is complete), removed by NULL text.
#[test]
fn sampler_constraint_through_the_c_abi() {
    let Some(path) = model_path() else { return };
    let m = load(&path);
    let mut s = ptr::null_mut();
    assert_eq!(
        // SAFETY: live model, NULL params, writable out pointer.
        unsafe { eddy_sampler_new(m, ptr::null(), &mut s) },
        EDDY_STATUS_OK
    );
    let set = |kind: u32, text: &[u8]| {
        // SAFETY: live sampler and model; text holds text.len() bytes.
        unsafe { eddy_sampler_set_constraint(s, m, kind, text.as_ptr().cast(), text.len()) }
    };
    assert_eq!(
        set(EDDY_CONSTRAINT_REGEX, b"(ab"),
        EDDY_STATUS_INVALID_CONSTRAINT
    );
    assert!(last_error().contains("invalid regex"), "{}", last_error());
    assert_eq!(
        set(EDDY_CONSTRAINT_JSON_SCHEMA, b"{\"type\": \"nope\"}"),
        EDDY_STATUS_INVALID_CONSTRAINT
    );
    assert!(last_error().contains("json-schema"), "{}", last_error());
    assert_eq!(
        set(EDDY_CONSTRAINT_LARK, b"start: nowhere"),
        EDDY_STATUS_INVALID_CONSTRAINT
    );
    assert_eq!(set(7, b"x"), EDDY_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("kind 7"), "{}", last_error());
    assert_eq!(
        set(EDDY_CONSTRAINT_REGEX, b"\xff"),
        EDDY_STATUS_INVALID_UTF8
    );
    // SAFETY: NULL sampler / model are reported, not dereferenced.
    unsafe {
        assert_eq!(
            eddy_sampler_set_constraint(ptr::null_mut(), m, 0, c"x".as_ptr(), 1),
            EDDY_STATUS_NULL_POINTER
        );
        assert_eq!(
            eddy_sampler_set_constraint(s, ptr::null(), 0, c"x".as_ptr(), 1),
            EDDY_STATUS_NULL_POINTER
        );
    }

    assert_eq!(
        set(EDDY_CONSTRAINT_REGEX, b"[0-9]{2}:[0-9]{2}"),
        EDDY_STATUS_OK
    );
    let mut ctx = ptr::null_mut();
    assert_eq!(
        // SAFETY: live model, NULL params, writable out pointer.
        unsafe { eddy_context_new(m, ptr::null(), &mut ctx) },
        EDDY_STATUS_OK
    );
    let prompt = "The train leaves at ";
    let run = |ctx: *mut eddy_context| {
        let mut got = Collected {
            text: String::new(),
            pieces: 0,
            stop_after: usize::MAX,
        };
        let mut n = 0usize;
        // SAFETY: live context and sampler, prompt bytes valid, callback + user data valid.
        let st = unsafe {
            eddy_generate(
                ctx,
                s,
                prompt.as_ptr().cast(),
                prompt.len(),
                true,
                32,
                Some(collect),
                (&mut got as *mut Collected).cast(),
                &mut n,
            )
        };
        assert_eq!(st, EDDY_STATUS_OK, "{}", last_error());
        (got.text, n)
    };
    let (text, n) = run(ctx);
    let b = text.as_bytes();
    assert!(
        b.len() == 5 && b[2] == b':' && text.bytes().filter(u8::is_ascii_digit).count() == 4,
        "{text:?}"
    );
    assert!(
        n < 32,
        "ended at the end-of-generation token, not at n_predict"
    );
    // A second call is a second output, from the constraint's start.
    let (again, _) = run(ctx);
    assert_eq!(again.len(), 5, "{again:?}");

    // NULL text removes the constraint: greedy output is free again.
    // SAFETY: live sampler and model; NULL text with length 0 is the documented removal.
    let st = unsafe { eddy_sampler_set_constraint(s, m, 0, ptr::null(), 0) };
    assert_eq!(st, EDDY_STATUS_OK);
    let (free, n) = run(ctx);
    assert_eq!(n, 32, "{free:?}");
    // SAFETY: handles made above, each freed once.
    unsafe {
        eddy_context_free(ctx);
        eddy_sampler_free(s);
        eddy_model_free(m);
    }
}
