//! `eddy_generate`: prompt in, streamed text out, in one call.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use eddy::tokenizer::StreamDecoder;
use eddy::{Sampler, SamplerParams};

use crate::boundary::{arg_mut, arg_str, guard};
use crate::context::eddy_context;
use crate::eddy_status::{self, *};
use crate::sampler::eddy_sampler;

/// Receives one piece of generated text: piece points to len bytes of whole UTF-8 characters
/// followed by a NUL (so it can be printed with fputs), valid only during the call; user_data
/// is the pointer given to eddy_generate. Return true to go on, false to stop generating.
/// Runs on the thread that called eddy_generate.
#[allow(non_camel_case_types)]
pub type eddy_piece_callback =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> bool>;

/// Hands one piece to the callback, NUL-terminated in `buf` (in parts that end on character
/// boundaries if it is longer than `buf` holds); false if the callback asks to stop.
fn emit(buf: &mut [u8], cb: eddy_piece_callback, user_data: *mut c_void, piece: &str) -> bool {
    let Some(cb) = cb else { return true };
    let mut rest = piece;
    while !rest.is_empty() {
        let mut n = rest.len().min(buf.len().saturating_sub(1));
        while !rest.is_char_boundary(n) {
            n -= 1;
        }
        if n == 0 {
            // `buf` holds at least 8 bytes plus the longest token (see `piece_capacity`).
            return false;
        }
        let (part, tail) = rest.split_at(n);
        buf[..n].copy_from_slice(part.as_bytes());
        buf[n] = 0;
        // SAFETY: the callback was passed to eddy_generate with this user_data, whose contract
        // allows this call; the part is NUL-terminated and outlives the call.
        if !unsafe { cb(buf.as_ptr().cast(), n, user_data) } {
            return false;
        }
        rest = tail;
    }
    true
}

/// Generates a continuation of prompt and streams it to on_piece, in one call.
///
/// prompt (prompt_len bytes of UTF-8) is tokenized (add_special adds BOS where the model asks
/// for one: pass true at the start of a conversation, false to continue one; control-token
/// text such as "<|im_start|>" is parsed into its token) and decoded after what the context
/// already holds, in batches, polling the abort callback before each. An empty prompt
/// continues from the context's last logits. Then up to n_predict tokens are sampled with
/// sampler (NULL: greedy), each accepted by the sampler, decoded into the context, and
/// streamed as whole UTF-8 text (control tokens are not rendered). Generation stops after
/// n_predict tokens, at an end-of-generation token (decoded into the context, not streamed),
/// when on_piece returns false, or when the abort callback returns true (polled before each
/// prompt batch and each generated token after the first). The context never fills: past
/// n_sink + n_window tokens the oldest window tokens are evicted. on_piece may be NULL (tokens
/// then only enter the context).
///
/// Every sampled token is in the context when the call returns, so a later call continues the
/// conversation. With a greedy sampler the text equals `eddy generate --temp 0` for the same
/// prompt. A constraint on the sampler (eddy_sampler_set_constraint) is taken back to its
/// start and shapes this call's output, which ends where the constraint is complete.
///
/// Returns EDDY_STATUS_OK (including a stop requested by on_piece), EDDY_STATUS_ABORTED,
/// EDDY_STATUS_NULL_POINTER (context NULL, prompt NULL with prompt_len > 0),
/// EDDY_STATUS_INVALID_UTF8, EDDY_STATUS_NO_LOGITS (empty prompt and nothing decoded before),
/// EDDY_STATUS_INVALID_CONSTRAINT (the sampler's constraint failed while generating).
/// *out_n_generated (may be NULL) receives the number of generated tokens added to the
/// context on EDDY_STATUS_OK and EDDY_STATUS_ABORTED (0 if the prompt's prefill was aborted;
/// eddy_context_n_seen tells how much of the prompt was consumed).
///
/// # Safety
/// context is NULL or a live context, sampler NULL or a live sampler, neither used by another
/// thread; prompt is NULL or holds prompt_len bytes; on_piece, if not NULL, may be called with
/// user_data; out_n_generated is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_generate(
    context: *mut eddy_context,
    sampler: *mut eddy_sampler,
    prompt: *const c_char,
    prompt_len: usize,
    add_special: bool,
    n_predict: usize,
    on_piece: eddy_piece_callback,
    user_data: *mut c_void,
    out_n_generated: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live and unshared.
        let c = unsafe { arg_mut(context, "context") }?;
        // SAFETY: the caller promises prompt holds prompt_len bytes (or is NULL).
        let text = unsafe { arg_str(prompt, prompt_len, "prompt") }?;
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let sampler = unsafe { sampler.as_mut() };
        // SAFETY: the caller promises out_n_generated is NULL or writable.
        let out = unsafe { out_n_generated.as_mut() };
        let model = Arc::clone(&c.model);
        let tok = model.tokenizer();
        let mut greedy;
        let s: &mut Sampler = match sampler {
            Some(s) => &mut s.sampler,
            None => {
                greedy = Sampler::new(model.hparams().n_vocab, SamplerParams::default());
                &mut greedy
            }
        };

        let ids = tok.encode(text, add_special, true);
        if ids.is_empty() {
            c.last_logits()?;
        } else {
            c.check_tokens(&ids)?;
            let (_, prefill) = c.decode_batches(&ids);
            if let Err(e) = prefill {
                if e.status == EDDY_STATUS_ABORTED
                    && let Some(out) = out
                {
                    *out = 0;
                }
                return Err(e);
            }
        }
        for &t in &ids {
            s.accept_prompt(t);
        }
        // Each call is one output of a constraint, from its start.
        #[cfg(feature = "constraint")]
        s.restart_constraint();

        let mut decoder = StreamDecoder::new(tok, false);
        let mut n_gen = 0;
        let mut stopped = false;
        let result = loop {
            if n_gen == n_predict {
                break Ok(());
            }
            if n_gen > 0
                && let Err(e) = c.check_abort(|| format!("after {n_gen} generated tokens"))
            {
                break Err(e);
            }
            let next = match crate::sampler::sample(s, c.ctx.logits()) {
                Ok(t) => t,
                Err(e) => break Err(e),
            };
            s.accept(next);
            let eog = tok.is_eog(next);
            if !eog {
                let piece_buf = &mut *c.piece;
                decoder.push(next, |piece| {
                    if !stopped {
                        stopped = !emit(piece_buf, on_piece, user_data, piece);
                    }
                });
            }
            if let Err(e) = c.ctx.decode(&[next]) {
                break Err(e.into());
            }
            n_gen += 1;
            if eog || stopped {
                break Ok(());
            }
        };
        if !stopped {
            let piece_buf = &mut *c.piece;
            decoder.finish(|piece| {
                if !stopped {
                    stopped = !emit(piece_buf, on_piece, user_data, piece);
                }
            });
        }
        let report = match &result {
            Ok(()) => true,
            Err(e) => e.status == EDDY_STATUS_ABORTED,
        };
        if report && let Some(out) = out {
            *out = n_gen;
        }
        result
    })
}
