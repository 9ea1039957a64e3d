//! The sampler handle (`eddy_sampler`): turning logits into the next token.

use eddy::{Sampler, SamplerParams};

use crate::boundary::{
    Failure, FfiResult, arg_mut, arg_ref, arg_slice, arg_str, guard, guard_value, read_params,
};
use crate::context::eddy_context;
use crate::eddy_status::{self, *};
use crate::model::{eddy_model, eddy_token};

/// Sampling parameters: penalties, then top-k, top-p, min-p, temperature, then a seeded draw
/// (llama.cpp's order). Get them from eddy_sampler_default_params(), then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct eddy_sampler_params {
    /// sizeof(eddy_sampler_params) as the caller sees it; set by eddy_sampler_default_params().
    pub size: u32,
    /// 0 (or less) is greedy: always the most likely token. Default 0.
    pub temperature: f32,
    /// Keep only the top_k most likely tokens (0 = all). Default 40.
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches top_p (1 = all). Default 0.95.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0 = off). Default 0.05.
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// Subtract count * frequency_penalty from recent tokens' logits (0 = off).
    pub frequency_penalty: f32,
    /// Subtract presence_penalty from every recent token's logit (0 = off).
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at (at most 65536). Default 64.
    pub penalty_last_n: u32,
    /// Seed of the random draw: the same seed gives the same text.
    pub seed: u64,
}

impl crate::boundary::ParamsStruct for eddy_sampler_params {
    const BOOL_OFFSETS: &'static [usize] = &[];
}

/// What the text given to eddy_sampler_set_constraint is.
pub type eddy_constraint_kind = u32;
/// A JSON schema: the output is one JSON value valid under it.
pub const EDDY_CONSTRAINT_JSON_SCHEMA: eddy_constraint_kind = 0;
/// A grammar in llguidance's Lark-like syntax (`start: ...`).
pub const EDDY_CONSTRAINT_LARK: eddy_constraint_kind = 1;
/// A regular expression the whole output must match.
pub const EDDY_CONSTRAINT_REGEX: eddy_constraint_kind = 2;

/// A sampler for one stream of tokens: its parameters, the recent tokens (for penalties) and
/// its random state. All memory is allocated when it is created.
///
/// Thread safety: one thread at a time; it may move between threads.
#[derive(Debug)]
pub struct eddy_sampler {
    pub(crate) sampler: Sampler,
    n_vocab: usize,
}

/// The default sampling parameters (greedy: temperature 0; the other fields as llama.cpp's
/// defaults). Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_sampler_default_params() -> eddy_sampler_params {
    let d = SamplerParams::default();
    eddy_sampler_params {
        size: std::mem::size_of::<eddy_sampler_params>() as u32,
        temperature: d.temperature,
        top_k: d.top_k as u32,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        frequency_penalty: d.frequency_penalty,
        presence_penalty: d.presence_penalty,
        penalty_last_n: d.penalty_last_n as u32,
        seed: d.seed,
    }
}

fn sampler_params(p: &eddy_sampler_params) -> FfiResult<SamplerParams> {
    for (name, v) in [
        ("temperature", p.temperature),
        ("top_p", p.top_p),
        ("min_p", p.min_p),
        ("repeat_penalty", p.repeat_penalty),
        ("frequency_penalty", p.frequency_penalty),
        ("presence_penalty", p.presence_penalty),
    ] {
        if !v.is_finite() {
            return Err(Failure::invalid(format!(
                "{name} is {v}, not a finite number"
            )));
        }
    }
    if p.penalty_last_n > 1 << 16 {
        return Err(Failure::invalid(format!(
            "penalty_last_n {} is larger than 65536",
            p.penalty_last_n
        )));
    }
    Ok(SamplerParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        penalty_last_n: p.penalty_last_n as usize,
        seed: p.seed,
    })
}

/// Creates a sampler for the vocabulary of model; params may be NULL for the defaults
/// (greedy). The sampler does not keep a reference to the model.
///
/// On EDDY_STATUS_OK, *out_sampler receives the new sampler (free it with eddy_sampler_free);
/// on failure it is untouched. Returns EDDY_STATUS_NULL_POINTER or
/// EDDY_STATUS_INVALID_ARGUMENT (wrong size field, a NaN or infinite parameter,
/// penalty_last_n > 65536).
///
/// # Safety
/// model is NULL or a live model; params is NULL or points to an eddy_sampler_params whose
/// size field is set; out_sampler is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_new(
    model: *const eddy_model,
    params: *const eddy_sampler_params,
    out_sampler: *mut *mut eddy_sampler,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises params is NULL or a struct with its size field set.
        let p = unsafe { read_params(params, "params") }?
            .unwrap_or_else(|| eddy_sampler_default_params());
        // SAFETY: the caller promises out_sampler is NULL or writable.
        let out = unsafe { arg_mut(out_sampler, "out_sampler") }?;
        let n_vocab = m.model.hparams().n_vocab;
        let sampler = Sampler::new(n_vocab, sampler_params(&p)?);
        *out = Box::into_raw(Box::new(eddy_sampler { sampler, n_vocab }));
        Ok(())
    })
}

/// Bytes eddy_sampler_new would allocate for a sampler over model's vocabulary with params
/// (NULL: the defaults). Nothing is allocated by this call.
///
/// On EDDY_STATUS_OK, *out_bytes receives the size; on failure it is untouched. Returns
/// EDDY_STATUS_NULL_POINTER or EDDY_STATUS_INVALID_ARGUMENT (as eddy_sampler_new).
///
/// # Safety
/// model is NULL or a live model; params is NULL or points to an eddy_sampler_params whose
/// size field is set; out_bytes is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_memory_required(
    model: *const eddy_model,
    params: *const eddy_sampler_params,
    out_bytes: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        // SAFETY: the caller promises params is NULL or a struct with its size field set.
        let p = unsafe { read_params(params, "params") }?
            .unwrap_or_else(|| eddy_sampler_default_params());
        // SAFETY: the caller promises out_bytes is NULL or writable.
        let out = unsafe { arg_mut(out_bytes, "out_bytes") }?;
        let n_vocab = m.model.hparams().n_vocab;
        *out = Sampler::memory_required(n_vocab, &sampler_params(&p)?)
            + std::mem::size_of::<eddy_sampler>();
        Ok(())
    })
}

/// Frees a sampler. NULL is a no-op.
///
/// # Safety
/// sampler is NULL or a pointer returned by eddy_sampler_new, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_free(sampler: *mut eddy_sampler) {
    guard_value((), || {
        if !sampler.is_null() {
            // SAFETY: made by Box::into_raw in eddy_sampler_new; freed once (caller's contract).
            drop(unsafe { Box::from_raw(sampler) });
        }
    })
}

/// Forgets the recent tokens, re-seeds the random draw and takes a constraint back to its
/// start. NULL is a no-op.
///
/// # Safety
/// sampler is NULL or a live sampler not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_reset(sampler: *mut eddy_sampler) {
    guard_value((), || {
        // SAFETY: the caller's contract: NULL or a live, unshared sampler.
        if let Some(s) = unsafe { sampler.as_mut() } {
            s.sampler.reset();
        }
    })
}

/// Constrains the sampler's output to a JSON schema, a grammar or a regular expression
/// (text: text_len bytes of UTF-8, no NUL needed), replacing any earlier constraint; text NULL
/// with text_len 0 removes it. The text is compiled now, for model's vocabulary (the
/// vocabulary's tables are built on the first call per model and shared), so a bad one is
/// refused before anything is decoded.
///
/// From then on eddy_sampler_sample draws only tokens the constraint allows; an
/// end-of-generation token exactly when the output so far is complete, and only that once
/// nothing more can follow. eddy_sampler_accept advances the constraint; record prompt tokens
/// with eddy_sampler_accept_prompt instead. eddy_sampler_reset takes the constraint back to
/// its start. Computing each step's allowed set allocates (the unconstrained sampler does not).
///
/// Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER, EDDY_STATUS_INVALID_UTF8,
/// EDDY_STATUS_INVALID_ARGUMENT (unknown kind, or a model whose vocabulary differs from the
/// sampler's) or EDDY_STATUS_INVALID_CONSTRAINT (the text does not compile: the message says
/// why); the sampler is unchanged on failure.
///
/// # Safety
/// sampler is NULL or a live sampler not used by another thread; model is NULL or a live
/// model; text is NULL or holds text_len readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_set_constraint(
    sampler: *mut eddy_sampler,
    model: *const eddy_model,
    kind: eddy_constraint_kind,
    text: *const std::ffi::c_char,
    text_len: usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let s = unsafe { arg_mut(sampler, "sampler") }?;
        // SAFETY: the caller promises model is NULL or live.
        let m = unsafe { arg_ref(model, "model") }?;
        if text.is_null() && text_len == 0 {
            set_constraint(s, None);
            return Ok(());
        }
        // SAFETY: the caller promises text holds text_len bytes (or is NULL).
        let text = unsafe { arg_str(text, text_len, "text") }?;
        if m.model.hparams().n_vocab != s.n_vocab {
            return Err(Failure::invalid(format!(
                "the sampler was made for {} tokens, the model has {}",
                s.n_vocab,
                m.model.hparams().n_vocab
            )));
        }
        let c = compile(&m.model, kind, text)?;
        set_constraint(s, Some(c));
        Ok(())
    })
}

#[cfg(feature = "constraint")]
type CompiledConstraint = eddy::constraint::Constraint;
/// Without the `constraint` feature nothing compiles.
#[cfg(not(feature = "constraint"))]
enum CompiledConstraint {}

#[cfg(feature = "constraint")]
fn compile(
    model: &eddy::Model,
    kind: eddy_constraint_kind,
    text: &str,
) -> FfiResult<CompiledConstraint> {
    use eddy::constraint::ConstraintKind;
    let kind = match kind {
        EDDY_CONSTRAINT_JSON_SCHEMA => ConstraintKind::JsonSchema,
        EDDY_CONSTRAINT_LARK => ConstraintKind::Lark,
        EDDY_CONSTRAINT_REGEX => ConstraintKind::Regex,
        k => return Err(Failure::invalid(format!("unknown constraint kind {k}"))),
    };
    let vocab = model.constraint_vocab().map_err(constraint_failure)?;
    vocab.compile(kind, text).map_err(constraint_failure)
}

#[cfg(not(feature = "constraint"))]
fn compile(
    _model: &eddy::Model,
    _kind: eddy_constraint_kind,
    _text: &str,
) -> FfiResult<CompiledConstraint> {
    Err(Failure::new(
        EDDY_STATUS_INVALID_CONSTRAINT,
        "this libeddy was built without constraint support (cargo feature 'constraint')",
    ))
}

#[cfg(feature = "constraint")]
fn set_constraint(s: &mut eddy_sampler, c: Option<CompiledConstraint>) {
    s.sampler.set_constraint(c);
}

#[cfg(not(feature = "constraint"))]
fn set_constraint(_s: &mut eddy_sampler, c: Option<CompiledConstraint>) {
    if let Some(c) = c {
        match c {}
    }
}

/// A constraint's error as the C ABI reports it.
#[cfg(feature = "constraint")]
pub(crate) fn constraint_failure(e: eddy::constraint::ConstraintError) -> Failure {
    Failure::new(EDDY_STATUS_INVALID_CONSTRAINT, e.to_string())
}

/// The sampler's draw: with a constraint, its failures become EDDY_STATUS_INVALID_CONSTRAINT.
pub(crate) fn sample(s: &mut Sampler, logits: &[f32]) -> FfiResult<u32> {
    #[cfg(feature = "constraint")]
    return s.try_sample(logits).map_err(constraint_failure);
    #[cfg(not(feature = "constraint"))]
    Ok(s.sample(logits))
}

/// Records token for the repetition penalties only (prompt tokens that should be penalised);
/// a constraint is not advanced. Without a constraint it is eddy_sampler_accept.
///
/// Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER or EDDY_STATUS_INVALID_TOKEN.
///
/// # Safety
/// sampler is NULL or a live sampler not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_accept_prompt(
    sampler: *mut eddy_sampler,
    token: eddy_token,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let s = unsafe { arg_mut(sampler, "sampler") }?;
        s.check_token(token)?;
        s.sampler.accept_prompt(token);
        Ok(())
    })
}

impl eddy_sampler {
    fn check_token(&self, token: eddy_token) -> FfiResult<()> {
        if token as usize >= self.n_vocab {
            return Err(Failure::new(
                EDDY_STATUS_INVALID_TOKEN,
                format!(
                    "token id {token} is outside the vocabulary of {} tokens",
                    self.n_vocab
                ),
            ));
        }
        Ok(())
    }
}

/// Records a generated token as part of the stream: for the repetition penalties, and to
/// advance a constraint (eddy_sampler_set_constraint). Call it for each sampled token you
/// keep; prompt tokens that should be penalised go to eddy_sampler_accept_prompt (without a
/// constraint the two are the same). A token the constraint does not allow makes the next
/// eddy_sampler_sample fail with EDDY_STATUS_INVALID_CONSTRAINT.
///
/// Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER or EDDY_STATUS_INVALID_TOKEN.
///
/// # Safety
/// sampler is NULL or a live sampler not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_accept(
    sampler: *mut eddy_sampler,
    token: eddy_token,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let s = unsafe { arg_mut(sampler, "sampler") }?;
        s.check_token(token)?;
        s.sampler.accept(token);
        Ok(())
    })
}

/// Picks the next token from the last decoded token's logits in context, into *out_token.
/// Does not accept it (call eddy_sampler_accept) and does not decode it (call eddy_decode).
///
/// Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER, EDDY_STATUS_NO_LOGITS (nothing decoded
/// since creation or reset) or EDDY_STATUS_INVALID_CONSTRAINT (a constraint failed; see
/// eddy_sampler_set_constraint); *out_token is untouched on failure.
///
/// # Safety
/// sampler is NULL or a live sampler; context is NULL or a live context; neither used by
/// another thread; out_token is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_sample(
    sampler: *mut eddy_sampler,
    context: *const eddy_context,
    out_token: *mut eddy_token,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let s = unsafe { arg_mut(sampler, "sampler") }?;
        // SAFETY: the caller promises context is NULL or live.
        let c = unsafe { arg_ref(context, "context") }?;
        // SAFETY: the caller promises out_token is NULL or writable.
        let out = unsafe { arg_mut(out_token, "out_token") }?;
        let logits = c.last_logits()?;
        if logits.len() != s.n_vocab {
            return Err(Failure::invalid(format!(
                "the sampler was made for {} tokens, the context's model has {}",
                s.n_vocab,
                logits.len()
            )));
        }
        *out = sample(&mut s.sampler, logits)?;
        Ok(())
    })
}

/// Picks the next token from caller-provided logits (n_logits floats, which must equal the
/// vocabulary size the sampler was made for), into *out_token. Does not accept it.
///
/// Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER, EDDY_STATUS_INVALID_ARGUMENT
/// (n_logits differs from the vocabulary size) or EDDY_STATUS_INVALID_CONSTRAINT.
///
/// # Safety
/// sampler is NULL or a live sampler not used by another thread; logits is NULL or holds
/// n_logits floats; out_token is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_sampler_sample_logits(
    sampler: *mut eddy_sampler,
    logits: *const f32,
    n_logits: usize,
    out_token: *mut eddy_token,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises sampler is NULL or live and unshared.
        let s = unsafe { arg_mut(sampler, "sampler") }?;
        // SAFETY: the caller promises logits holds n_logits floats (or is NULL).
        let l = unsafe { arg_slice(logits, n_logits, "logits") }?;
        // SAFETY: the caller promises out_token is NULL or writable.
        let out = unsafe { arg_mut(out_token, "out_token") }?;
        if l.len() != s.n_vocab {
            return Err(Failure::invalid(format!(
                "n_logits is {}, the sampler's vocabulary has {} tokens",
                l.len(),
                s.n_vocab
            )));
        }
        *out = sample(&mut s.sampler, l)?;
        Ok(())
    })
}
