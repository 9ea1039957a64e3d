//! The model handle (`eddy_model`): loading, model facts, the tokenizer.

use std::ffi::{CStr, CString, c_char};
use std::sync::Arc;

use eddy::Model;
use eddy::gguf::Gguf;

use crate::boundary::{
    Failure, FfiResult, arg_buf, arg_mut, arg_ref, arg_slice, arg_str, copy_out, guard, guard_value,
};
use crate::eddy_status::{self, *};

/// A token id: an index into the model's vocabulary.
#[allow(non_camel_case_types)]
pub type eddy_token = u32;

/// "No such token": returned by eddy_model_token_bos() and friends when the model has none.
pub const EDDY_TOKEN_NONE: eddy_token = u32::MAX;

/// A loaded model: weights (memory-mapped from the file, or copied from a caller's buffer),
/// hyper-parameters and tokenizer. Immutable once loaded.
///
/// Thread safety: every function that takes a const eddy_model * may be called from several
/// threads at once on the same model. Contexts keep the model alive: eddy_model_free may be
/// called while contexts created from it still exist; the memory is released when the last
/// of them is freed.
#[derive(Debug)]
pub struct eddy_model {
    pub(crate) model: Arc<Model>,
    arch: CString,
}

// The header promises that a model may be used from several threads at once.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};

impl eddy_model {
    fn new(model: Model) -> eddy_model {
        let arch = CString::new(model.arch_name()).unwrap_or_default();
        eddy_model {
            model: Arc::new(model),
            arch,
        }
    }
}

/// Loads the model in the GGUF file at path (a NUL-terminated file name).
///
/// The file is memory-mapped read-only and validated as untrusted input; weights are read from
/// the map on first use, so the file must not be modified while the model is loaded.
///
/// On EDDY_STATUS_OK, *out_model receives a new model, which the caller frees with
/// eddy_model_free. On failure *out_model is untouched. Returns EDDY_STATUS_NULL_POINTER
/// (path or out_model NULL), EDDY_STATUS_IO (cannot open or map the file),
/// EDDY_STATUS_INVALID_MODEL (not a valid or supported model; the message names the offset,
/// key or tensor).
///
/// # Safety
/// path is NULL or a NUL-terminated string; out_model is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_load(
    path: *const c_char,
    out_model: *mut *mut eddy_model,
) -> eddy_status {
    guard(|| {
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: checked non-NULL above; the caller promises a NUL-terminated string.
        let path = unsafe { CStr::from_ptr(path) };
        // SAFETY: the caller promises out_model is NULL or writable.
        let out = unsafe { arg_mut(out_model, "out_model") }?;
        let model = Model::load(path_of(path)?)?;
        log::info!(
            "eddy: loaded {} model from {}",
            model.arch_name(),
            path.to_string_lossy()
        );
        *out = Box::into_raw(Box::new(eddy_model::new(model)));
        Ok(())
    })
}

#[cfg(unix)]
fn path_of(p: &CStr) -> FfiResult<&std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(
        p.to_bytes(),
    )))
}

#[cfg(not(unix))]
fn path_of(p: &CStr) -> FfiResult<&std::path::Path> {
    p.to_str().map(std::path::Path::new).map_err(|e| {
        Failure::new(
            EDDY_STATUS_INVALID_UTF8,
            format!("path is not valid UTF-8: {e}"),
        )
    })
}

/// Loads a model from a GGUF file held in memory: data points to len bytes.
///
/// The bytes are copied (so the model needs as much memory again as the file is long); the
/// caller may free or reuse its buffer as soon as this returns.
///
/// On EDDY_STATUS_OK, *out_model receives a new model (free it with eddy_model_free); on
/// failure it is untouched. Returns EDDY_STATUS_NULL_POINTER (data NULL with len > 0, or
/// out_model NULL), EDDY_STATUS_INVALID_MODEL (the bytes are not a valid or supported model,
/// including len == 0).
///
/// # Safety
/// data is NULL or points to len readable bytes; out_model is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_load_from_buffer(
    data: *const u8,
    len: usize,
    out_model: *mut *mut eddy_model,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises data points to len readable bytes (or is NULL).
        let bytes = unsafe { arg_slice(data, len, "data") }?;
        // SAFETY: the caller promises out_model is NULL or writable.
        let out = unsafe { arg_mut(out_model, "out_model") }?;
        let gguf = Gguf::from_vec(bytes.to_vec()).map_err(eddy::Error::from)?;
        let model = Model::from_gguf(gguf)?;
        *out = Box::into_raw(Box::new(eddy_model::new(model)));
        Ok(())
    })
}

/// Loads a model from a GGUF file held in memory without copying it: the weights are read
/// from data for as long as the model (and every context made from it) lives. For models in
/// flash, linked into the program, or mapped by the embedder.
///
/// Returns as eddy_model_load_from_buffer. The bytes are validated as untrusted input, as
/// from a file.
///
/// # Safety
/// data is NULL or points to len readable bytes that stay valid and unchanged until the model
/// and every context created from it are freed; out_model is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_load_from_buffer_nocopy(
    data: *const u8,
    len: usize,
    out_model: *mut *mut eddy_model,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises len readable bytes at data (or NULL), unchanged for the
        // model's whole life, which is what the 'static borrow stands for here.
        let bytes: &'static [u8] = unsafe { arg_slice(data, len, "data") }?;
        // SAFETY: the caller promises out_model is NULL or writable.
        let out = unsafe { arg_mut(out_model, "out_model") }?;
        let model = Model::from_static(bytes)?;
        *out = Box::into_raw(Box::new(eddy_model::new(model)));
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. Contexts created from the model stay valid (they hold
/// their own reference); the memory is released when the last of them is freed.
///
/// # Safety
/// model is NULL or a pointer returned by eddy_model_load*, not freed before, and not in use
/// by another thread during this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_free(model: *mut eddy_model) {
    guard_value((), || {
        if !model.is_null() {
            // SAFETY: the caller passes a pointer made by Box::into_raw in eddy_model_load*,
            // freed once.
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// Runs a getter on a model handle inside the panic boundary; `default` for NULL.
///
/// # Safety
/// `model` is NULL or a live model handle.
unsafe fn getter<T: Copy>(
    model: *const eddy_model,
    default: T,
    f: impl FnOnce(&eddy_model) -> T,
) -> T {
    guard_value(default, || {
        // SAFETY: the caller's contract: NULL (handled by `as_ref`) or a live model.
        match unsafe { model.as_ref() } {
            Some(m) => f(m),
            None => default,
        }
    })
}

/// Vocabulary size (number of token ids). 0 if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_n_vocab(model: *const eddy_model) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(model, 0, |m| m.model.hparams().n_vocab as u32) }
}

/// Context length the model was trained with. 0 if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_n_ctx_train(model: *const eddy_model) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(model, 0, |m| m.model.hparams().n_ctx_train as u32) }
}

/// Width of the model's residual stream (embedding size). 0 if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_n_embd(model: *const eddy_model) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(model, 0, |m| m.model.hparams().n_embd as u32) }
}

/// Number of transformer layers. 0 if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_n_layer(model: *const eddy_model) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(model, 0, |m| m.model.hparams().n_layer as u32) }
}

/// Bytes the model holds besides its file: weights copied at load (Q4_0, Q4_1, Q5_0, Q5_1,
/// Q8_0, Q4_K, Q5_K and Q6_K matrices into a row-interleaved layout where the CPU has kernels
/// for it, AVX-512 (all eight) and AVX2 (the first four) today; on Linux x86-64 with
/// transparent huge pages, the other weight matrices as they are, onto huge pages; the mapped
/// pages they came from are released, so resident memory stays about the file's size). 0 for a
/// model loaded from a buffer, which keeps its bytes as they are, or if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_repacked_bytes(model: *const eddy_model) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { getter(model, 0, |m| m.model.repacked_bytes() as u64) }
}

/// The architecture name (general.architecture, e.g. "llama"), as a NUL-terminated string
/// owned by the model and valid until the model is freed. NULL if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_arch(model: *const eddy_model) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { getter(model, std::ptr::null(), |m| m.arch.as_ptr()) }
}

/// The beginning-of-sequence token, or EDDY_TOKEN_NONE if the model has none or model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_token_bos(model: *const eddy_model) -> eddy_token {
    // SAFETY: forwarded contract.
    unsafe {
        getter(model, EDDY_TOKEN_NONE, |m| {
            special(m).bos.unwrap_or(EDDY_TOKEN_NONE)
        })
    }
}

/// The end-of-sequence token, or EDDY_TOKEN_NONE if the model has none or model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_token_eos(model: *const eddy_model) -> eddy_token {
    // SAFETY: forwarded contract.
    unsafe {
        getter(model, EDDY_TOKEN_NONE, |m| {
            special(m).eos.unwrap_or(EDDY_TOKEN_NONE)
        })
    }
}

/// The end-of-turn token (chat models), or EDDY_TOKEN_NONE if the model has none or model is
/// NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_token_eot(model: *const eddy_model) -> eddy_token {
    // SAFETY: forwarded contract.
    unsafe {
        getter(model, EDDY_TOKEN_NONE, |m| {
            special(m).eot.unwrap_or(EDDY_TOKEN_NONE)
        })
    }
}

fn special(m: &eddy_model) -> &eddy::tokenizer::SpecialIds {
    m.model.tokenizer().special_ids()
}

/// Whether generation should stop at token: EOS, EOT, EOM and other end-of-generation
/// tokens. false for other ids, ids outside the vocabulary, or model NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_token_is_eog(
    model: *const eddy_model,
    token: eddy_token,
) -> bool {
    // SAFETY: forwarded contract.
    unsafe { getter(model, false, |m| m.model.tokenizer().is_eog(token)) }
}

/// Whether the model asks for a BOS token at the start of a sequence (what eddy_tokenize adds
/// when add_special is true). false if model is NULL.
///
/// # Safety
/// model is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_add_bos(model: *const eddy_model) -> bool {
    // SAFETY: forwarded contract.
    unsafe { getter(model, false, |m| m.model.tokenizer().add_bos()) }
}

/// Copies the string value of the metadata key (NUL-terminated, e.g.
/// "tokenizer.chat_template" or "general.name") into buf, NUL-terminated.
///
/// buf holds buf_len bytes; buf may be NULL when buf_len is 0 (a size query). On
/// EDDY_STATUS_OK, *out_len receives the string's length without the NUL. On
/// EDDY_STATUS_BUFFER_TOO_SMALL, *out_len receives the buffer size needed (with the NUL) and
/// buf is untouched. Other returns: EDDY_STATUS_NULL_POINTER (model, key or out_len NULL, or
/// buf NULL with buf_len > 0), EDDY_STATUS_NOT_FOUND (no such key, or its value is not a
/// string), EDDY_STATUS_INVALID_UTF8 (key is not UTF-8).
///
/// # Safety
/// model is NULL or a live model; key is NULL or NUL-terminated; buf is NULL or holds buf_len
/// writable bytes; out_len is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_meta_str(
    model: *const eddy_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        if key.is_null() {
            return Err(Failure::null("key"));
        }
        // SAFETY: non-NULL; the caller promises a NUL-terminated string.
        let key = unsafe { CStr::from_ptr(key) }.to_str().map_err(|e| {
            Failure::new(
                EDDY_STATUS_INVALID_UTF8,
                format!("key is not valid UTF-8: {e}"),
            )
        })?;
        // SAFETY: the caller promises buf holds buf_len writable bytes (or is NULL).
        let buf = unsafe { arg_buf(buf.cast::<u8>(), buf_len, "buf") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out_len = unsafe { arg_mut(out_len, "out_len") }?;
        let value = m.model.gguf().get_str(key).ok_or_else(|| {
            Failure::new(
                EDDY_STATUS_NOT_FOUND,
                format!("the model has no string metadata '{key}'"),
            )
        })?;
        copy_out(value.as_bytes(), buf, out_len, true, "metadata value")
    })
}

/// Copies the model's chat template (Jinja text from tokenizer.chat_template) into buf,
/// NUL-terminated. Same buffer rules and returns as eddy_model_meta_str; EDDY_STATUS_NOT_FOUND
/// when the model has no template.
///
/// # Safety
/// As for eddy_model_meta_str.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_model_chat_template(
    model: *const eddy_model,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    // SAFETY: forwarded contract; the key is a static C string.
    unsafe {
        eddy_model_meta_str(
            model,
            c"tokenizer.chat_template".as_ptr(),
            buf,
            buf_len,
            out_len,
        )
    }
}

/// Tokenizes text (text_len bytes of UTF-8, no NUL needed) into tokens.
///
/// add_special adds BOS (and EOS) where the model asks for them; parse_special turns
/// control-token text such as "<|im_start|>" into its token (leave it false for untrusted
/// user text). tokens holds n_tokens_max ids; it may be NULL when n_tokens_max is 0 (a size
/// query). On EDDY_STATUS_OK, *out_n_tokens receives the number of ids written. On
/// EDDY_STATUS_BUFFER_TOO_SMALL, *out_n_tokens receives the number needed and tokens is
/// untouched. Other returns: EDDY_STATUS_NULL_POINTER (model or out_n_tokens NULL, text NULL
/// with text_len > 0, tokens NULL with n_tokens_max > 0), EDDY_STATUS_INVALID_UTF8.
///
/// # Safety
/// model is NULL or a live model; text is NULL or holds text_len readable bytes; tokens is
/// NULL or holds n_tokens_max writable ids; out_n_tokens is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_tokenize(
    model: *const eddy_model,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    parse_special: bool,
    tokens: *mut eddy_token,
    n_tokens_max: usize,
    out_n_tokens: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises text holds text_len readable bytes (or is NULL).
        let text = unsafe { arg_str(text, text_len, "text") }?;
        // SAFETY: the caller promises tokens holds n_tokens_max writable ids (or is NULL).
        let buf = unsafe { arg_buf(tokens, n_tokens_max, "tokens") }?;
        // SAFETY: the caller promises out_n_tokens is NULL or writable.
        let out = unsafe { arg_mut(out_n_tokens, "out_n_tokens") }?;
        let ids = m.model.tokenizer().encode(text, add_special, parse_special);
        copy_out(&ids, buf, out, false, "tokens")
    })
}

fn check_token(m: &eddy_model, token: eddy_token) -> FfiResult {
    let n_vocab = m.model.hparams().n_vocab;
    if token as usize >= n_vocab {
        return Err(Failure::new(
            EDDY_STATUS_INVALID_TOKEN,
            format!("token id {token} is outside the vocabulary of {n_vocab} tokens"),
        ));
    }
    Ok(())
}

/// Copies the bytes token stands for into buf (not NUL-terminated).
///
/// A piece may end inside a UTF-8 character: concatenate pieces before printing, or use
/// eddy_generate, which streams whole characters. Control tokens (such as "<|im_end|>") give
/// their text only when special is true, else nothing (length 0). buf may be NULL when
/// buf_len is 0. On EDDY_STATUS_OK, *out_len receives the number of bytes written; on
/// EDDY_STATUS_BUFFER_TOO_SMALL, the number needed. Other returns: EDDY_STATUS_NULL_POINTER,
/// EDDY_STATUS_INVALID_TOKEN (token outside the vocabulary).
///
/// # Safety
/// model is NULL or a live model; buf is NULL or holds buf_len writable bytes; out_len is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_token_to_piece(
    model: *const eddy_model,
    token: eddy_token,
    special: bool,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises buf holds buf_len writable bytes (or is NULL).
        let buf = unsafe { arg_buf(buf.cast::<u8>(), buf_len, "buf") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out = unsafe { arg_mut(out_len, "out_len") }?;
        check_token(m, token)?;
        let piece = m.model.tokenizer().token_to_piece(token, special);
        copy_out(piece, buf, out, false, "piece")
    })
}

/// Copies the text of n_tokens tokens into buf, NUL-terminated (invalid UTF-8 is passed
/// through as it is).
///
/// remove_special drops a leading BOS and trailing EOS that the model adds; unparse_special
/// renders control tokens as their text. On EDDY_STATUS_OK, *out_len receives the text's
/// length without the NUL; on EDDY_STATUS_BUFFER_TOO_SMALL, the buffer size needed with the
/// NUL. Other returns: EDDY_STATUS_NULL_POINTER, EDDY_STATUS_INVALID_TOKEN.
///
/// # Safety
/// model is NULL or a live model; tokens is NULL or holds n_tokens ids; buf is NULL or holds
/// buf_len writable bytes; out_len is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_detokenize(
    model: *const eddy_model,
    tokens: *const eddy_token,
    n_tokens: usize,
    remove_special: bool,
    unparse_special: bool,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises tokens holds n_tokens ids (or is NULL).
        let ids = unsafe { arg_slice(tokens, n_tokens, "tokens") }?;
        // SAFETY: the caller promises buf holds buf_len writable bytes (or is NULL).
        let buf = unsafe { arg_buf(buf.cast::<u8>(), buf_len, "buf") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out = unsafe { arg_mut(out_len, "out_len") }?;
        for &t in ids {
            check_token(m, t)?;
        }
        let text = m
            .model
            .tokenizer()
            .detokenize(ids, remove_special, unparse_special);
        copy_out(&text, buf, out, true, "text")
    })
}
