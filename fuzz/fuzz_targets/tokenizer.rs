//! The tokenizers of the real models (SmolLM2's GPT-2 BPE, Gemma 3's SentencePiece, Qwen 2.5's
//! BPE), through the Rust API and the C ABI.
//!
//! Input: byte 0 picks the model (bits 0-1) and the flags (bit 2 add_special, bit 3
//! parse_special, bit 4 remove_special, bit 5 unparse_special, bit 6 folds the ids below into
//! the vocabulary); byte 1 is the size of the C calls' buffers; the rest is the text, and also,
//! read as little-endian u32s, a sequence of ids. Checked: no panic; encoded ids are in range;
//! the streaming decoder gives the concatenated pieces whenever they are valid UTF-8; the C
//! calls agree with the Rust API, report the size needed when a buffer is too small, and refuse
//! invalid UTF-8 and out-of-range ids.
#![no_main]

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use eddy::Model;
use eddy::tokenizer::{StreamDecoder, Tokenizer};
use eddy_ffi::eddy_status::{self, *};
use eddy_ffi::model::{
    eddy_detokenize, eddy_model, eddy_model_load, eddy_token_to_piece, eddy_tokenize,
};
use eddy_fuzz::REAL_MODELS;
use libfuzzer_sys::fuzz_target;

/// One real model, loaded once through each API.
struct Loaded {
    model: Model,
    c_model: *mut eddy_model,
}

// SAFETY: the C handle is only read (eddy.h: tokenize, token_to_piece and detokenize on a live
// model may run on any thread), and it lives until the process exits.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

fn models() -> &'static [Loaded] {
    static MODELS: OnceLock<Vec<Loaded>> = OnceLock::new();
    MODELS.get_or_init(|| {
        REAL_MODELS
            .iter()
            .map(|m| {
                let model = m.load();
                let path = CString::new(m.path().to_string_lossy().into_owned()).unwrap();
                let mut c_model = std::ptr::null_mut();
                // SAFETY: path is NUL-terminated, c_model is writable.
                let status = unsafe { eddy_model_load(path.as_ptr(), &mut c_model) };
                assert_eq!(status, EDDY_STATUS_OK, "eddy_model_load({})", m.default);
                Loaded { model, c_model }
            })
            .collect()
    })
}

fn not_panic(status: eddy_status, call: &str) -> eddy_status {
    assert_ne!(status, EDDY_STATUS_PANIC, "{call} panicked");
    status
}

/// Encodes `text` through the C ABI with a buffer of `cap` ids, then, if that was too small,
/// with the size it asked for. Checks the answers against `want`.
fn c_tokenize(m: &Loaded, text: &[u8], add: bool, parse: bool, cap: usize, want: Option<&[u32]>) {
    let mut buf = vec![0u32; cap];
    let mut n = usize::MAX;
    // SAFETY: text and buf hold the lengths passed; n is writable.
    let status = not_panic(
        unsafe {
            eddy_tokenize(
                m.c_model,
                text.as_ptr().cast::<c_char>(),
                text.len(),
                add,
                parse,
                buf.as_mut_ptr(),
                cap,
                &mut n,
            )
        },
        "eddy_tokenize",
    );
    let Some(want) = want else {
        assert_eq!(
            status, EDDY_STATUS_INVALID_UTF8,
            "eddy_tokenize of invalid UTF-8"
        );
        return;
    };
    match status {
        EDDY_STATUS_OK => assert_eq!(&buf[..n], want, "eddy_tokenize differs from encode"),
        EDDY_STATUS_BUFFER_TOO_SMALL => {
            assert_eq!(n, want.len(), "eddy_tokenize: size needed");
            assert!(n > cap, "eddy_tokenize: {n} ids do fit in {cap}");
            c_tokenize(m, text, add, parse, n, Some(want));
        }
        other => panic!("eddy_tokenize returned {other:?}"),
    }
}

/// Detokenizes `ids` through the C ABI with a `cap`-byte buffer; `want` is the Rust API's text,
/// or `None` if an id is out of range.
fn c_detokenize(
    m: &Loaded,
    ids: &[u32],
    remove: bool,
    unparse: bool,
    cap: usize,
    want: Option<&[u8]>,
) {
    let mut buf = vec![0u8; cap];
    let mut n = usize::MAX;
    // SAFETY: ids and buf hold the lengths passed; n is writable.
    let status = not_panic(
        unsafe {
            eddy_detokenize(
                m.c_model,
                ids.as_ptr(),
                ids.len(),
                remove,
                unparse,
                buf.as_mut_ptr().cast::<c_char>(),
                cap,
                &mut n,
            )
        },
        "eddy_detokenize",
    );
    let Some(want) = want else {
        assert_eq!(
            status, EDDY_STATUS_INVALID_TOKEN,
            "eddy_detokenize of a bad id"
        );
        return;
    };
    match status {
        EDDY_STATUS_OK => {
            assert_eq!(&buf[..n], want, "eddy_detokenize differs from detokenize");
            assert_eq!(buf[n], 0, "eddy_detokenize: no NUL");
        }
        EDDY_STATUS_BUFFER_TOO_SMALL => {
            assert_eq!(n, want.len() + 1, "eddy_detokenize: size needed");
            assert!(n > cap);
            c_detokenize(m, ids, remove, unparse, n, Some(want));
        }
        other => panic!("eddy_detokenize returned {other:?}"),
    }
}

/// Streams `ids` and checks the text against the concatenated pieces.
fn stream(tok: &Tokenizer, ids: &[u32], special: bool) {
    let mut dec = StreamDecoder::new(tok, special);
    let mut text = String::new();
    let mut pieces = Vec::new();
    for &id in ids {
        pieces.extend_from_slice(tok.token_to_piece(id, special));
        dec.push(id, |s| text.push_str(s));
    }
    dec.finish(|s| text.push_str(s));
    if let Ok(whole) = std::str::from_utf8(&pieces) {
        assert_eq!(text, whole, "streamed text differs from the pieces");
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, cap, text @ ..] = data else {
        return;
    };
    let m = &models()[usize::from(flags & 3) % REAL_MODELS.len()];
    let (add, parse) = (flags & 4 != 0, flags & 8 != 0);
    let (remove, unparse) = (flags & 16 != 0, flags & 32 != 0);
    let cap = usize::from(*cap);
    let tok = m.model.tokenizer();
    let n_vocab = tok.n_tokens() as u32;

    // Text → ids → text.
    let utf8 = std::str::from_utf8(text).ok();
    let ids = tok.encode(utf8.unwrap_or(&String::from_utf8_lossy(text)), add, parse);
    assert!(
        ids.iter().all(|&id| id < n_vocab),
        "encode gave an id out of range"
    );
    c_tokenize(m, text, add, parse, cap, utf8.is_some().then_some(&ids[..]));
    let back = tok.detokenize(&ids, remove, unparse);
    c_detokenize(m, &ids, remove, unparse, cap, Some(&back));
    stream(tok, &ids, unparse);

    // The same bytes as arbitrary ids, in range or not.
    let raw: Vec<u32> = text
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .map(|id| {
            if flags & 64 != 0 {
                id % (n_vocab + 4)
            } else {
                id
            }
        })
        .collect();
    let back = tok.detokenize(&raw, remove, unparse);
    let _ = tok.decode(&raw);
    let in_range = raw.iter().all(|&id| id < n_vocab);
    c_detokenize(m, &raw, remove, unparse, cap, in_range.then_some(&back[..]));
    stream(tok, &raw, unparse);
    for &id in raw.iter().take(4) {
        let mut buf = vec![0u8; cap];
        let mut n = usize::MAX;
        // SAFETY: buf holds cap bytes; n is writable.
        let status = not_panic(
            unsafe {
                eddy_token_to_piece(m.c_model, id, unparse, buf.as_mut_ptr().cast(), cap, &mut n)
            },
            "eddy_token_to_piece",
        );
        let piece = tok.token_to_piece(id, unparse);
        match status {
            EDDY_STATUS_OK => assert_eq!(&buf[..n], piece),
            EDDY_STATUS_BUFFER_TOO_SMALL => assert_eq!(n, piece.len()),
            EDDY_STATUS_INVALID_TOKEN => assert!(id >= n_vocab),
            other => panic!("eddy_token_to_piece returned {other:?}"),
        }
    }
});
