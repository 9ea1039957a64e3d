//! The context handle (`eddy_context`): a stream of tokens through a model, decoding, logits,
//! the abort callback.

use std::ffi::c_void;
use std::sync::Arc;

use eddy::{Context, ContextParams, KvType, Model};

use crate::boundary::{
    Failure, FfiResult, arg_buf, arg_mut, arg_ref, arg_slice, copy_out, guard, guard_value,
    read_params,
};
use crate::eddy_status::{self, *};
use crate::model::{eddy_model, eddy_token};

/// Element type of the K/V cache (a field of eddy_context_params).
#[allow(non_camel_case_types)]
pub type eddy_kv_type = u32;
/// Half-precision K/V cache: half the memory, the default.
pub const EDDY_KV_F16: eddy_kv_type = 0;
/// Single-precision K/V cache: exact, twice the memory.
pub const EDDY_KV_F32: eddy_kv_type = 1;
/// Q8_0 K/V cache (GGML blocks of 32 signed bytes and an f16 scale): 0.53x the memory of f16.
/// Every head dimension of the model must be a multiple of 32.
pub const EDDY_KV_Q8_0: eddy_kv_type = 2;
/// Q4_0 K/V cache (GGML blocks of 32 nibbles and an f16 scale): 0.28x the memory of f16, and
/// Q4_0 keys keep 5 bytes per 64 values exact beside their blocks (0.30x in all).
/// Every head dimension of the model must be a multiple of 32.
pub const EDDY_KV_Q4_0: eddy_kv_type = 3;
/// kv_type_k / kv_type_v: take the type of the field kv_type (their default).
pub const EDDY_KV_SAME: eddy_kv_type = u32::MAX;

/// Parameters of a context. Get them from eddy_context_default_params(), then change fields:
/// the size field tells the library which version of the struct the caller was compiled with.
///
/// A context never fills up: its K/V arena keeps the first n_sink tokens for ever plus a
/// circular window of the n_window most recent ones (attention sinks, StreamingLLM), so a
/// stream of tokens can go on without end and without re-processing the prompt. While the
/// whole text fits in n_sink + n_window, attention is exact.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct eddy_context_params {
    /// sizeof(eddy_context_params) as the caller sees it; set by eddy_context_default_params().
    pub size: u32,
    /// Attention-sink slots: the first tokens of the stream, kept for ever. Default 4.
    pub n_sink: u32,
    /// Recent tokens a query sees besides the sinks; 0 = the model's trained context length
    /// (capped at 4096) minus the sinks. Default 0.
    pub n_window: u32,
    /// Most tokens one forward pass takes (eddy_decode splits larger inputs into batches of this
    /// size and polls the abort callback before each). Default 512, at most 65536.
    pub n_batch: u32,
    /// Tokens processed together inside a batch; the arena keeps n_ubatch - 1 extra slots for
    /// them. Default 128 (each micro-batch repacks the weights for the prefill kernels: 32
    /// prefills about a third slower and uses 7-13 MB less on 135M-0.5B models), capped at
    /// n_batch.
    pub n_ubatch: u32,
    /// Element type of the keys and values: EDDY_KV_F16 (default), EDDY_KV_F32, EDDY_KV_Q8_0
    /// or EDDY_KV_Q4_0 (see also kv_type_k and kv_type_v).
    pub kv_type: eddy_kv_type,
    /// Threads of the context's pool, the calling thread included; 0 means 1. The threads claim
    /// chunks of rows whose arithmetic does not depend on who computes them, so logits are
    /// bit-identical for any count.
    pub n_threads: u32,
    /// Keep the logits of every token of a batch (for scoring text); default false: only the
    /// last token's logits are kept.
    pub logits_all: bool,
    /// Element type of the keys alone, or EDDY_KV_SAME (the default) for kv_type's.
    pub kv_type_k: eddy_kv_type,
    /// Element type of the values alone, or EDDY_KV_SAME (the default) for kv_type's.
    pub kv_type_v: eddy_kv_type,
}

impl crate::boundary::ParamsStruct for eddy_context_params {
    const BOOL_OFFSETS: &'static [usize] = &[std::mem::offset_of!(eddy_context_params, logits_all)];
}

// The context handle moves between threads with its user (one at a time).
const _: () = {
    const fn send<T: Send>() {}
    send::<Context<'static, Arc<Model>>>();
};

/// Called before each batch of a decode; return true to stop (the call then returns
/// EDDY_STATUS_ABORTED). Runs on the thread that called eddy_decode or eddy_generate.
#[allow(non_camel_case_types)]
pub type eddy_abort_callback = Option<unsafe extern "C" fn(user_data: *mut c_void) -> bool>;

/// A context: one stream of tokens through a model, with its K/V cache, scratch buffers and
/// logits, all allocated when it is created.
///
/// Thread safety: a context may be used from any thread, but by one thread at a time; the
/// caller serialises calls on the same context. Different contexts (also of the same model)
/// may be used in parallel. The context holds its own reference to the model.
#[derive(Debug)]
pub struct eddy_context {
    pub(crate) model: Arc<Model>,
    pub(crate) ctx: Context<'static, Arc<Model>>,
    abort: eddy_abort_callback,
    abort_data: *mut c_void,
    n_threads: u32,
    /// Buffer for one NUL-terminated streamed piece (eddy_generate), in the context's memory.
    pub(crate) piece: &'static mut [u8],
    /// The block eddy_context_new allocated (handle first), freed with the handle; None when
    /// the caller provided the memory (eddy_context_new_in).
    allocation: Option<std::alloc::Layout>,
}

/// The default context parameters (size set, n_sink 4, n_window 0 = the model's context,
/// n_batch 512, n_ubatch 128, EDDY_KV_F16, n_threads 0, logits_all false, kv_type_k and
/// kv_type_v EDDY_KV_SAME). Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_context_default_params() -> eddy_context_params {
    let d = ContextParams::default();
    eddy_context_params {
        size: std::mem::size_of::<eddy_context_params>() as u32,
        n_sink: d.n_sink as u32,
        n_window: d.n_window as u32,
        n_batch: d.n_batch as u32,
        n_ubatch: d.n_ubatch as u32,
        kv_type: EDDY_KV_F16,
        n_threads: 0,
        logits_all: d.logits_all,
        kv_type_k: EDDY_KV_SAME,
        kv_type_v: EDDY_KV_SAME,
    }
}

fn context_params(p: &eddy_context_params) -> FfiResult<ContextParams> {
    let kv = |field: &str, v: eddy_kv_type| -> FfiResult<KvType> {
        KvType::ALL.get(v as usize).copied().ok_or_else(|| {
            Failure::invalid(format!(
                "{field} {v} is not EDDY_KV_F16, EDDY_KV_F32, EDDY_KV_Q8_0 or EDDY_KV_Q4_0"
            ))
        })
    };
    let one = |field: &str, v: eddy_kv_type| -> FfiResult<Option<KvType>> {
        if v == EDDY_KV_SAME {
            Ok(None)
        } else {
            kv(field, v).map(Some)
        }
    };
    Ok(ContextParams {
        n_sink: p.n_sink as usize,
        n_window: p.n_window as usize,
        n_batch: p.n_batch as usize,
        n_ubatch: p.n_ubatch as usize,
        kv_type: kv("kv_type", p.kv_type)?,
        kv_type_k: one("kv_type_k", p.kv_type_k)?,
        kv_type_v: one("kv_type_v", p.kv_type_v)?,
        logits_all: p.logits_all,
        // 0 (the default) means 1: the calling thread only.
        n_threads: (p.n_threads as usize).max(1),
    })
}

/// Alignment (bytes) that memory handed to eddy_context_new_in must have.
pub const EDDY_CONTEXT_ALIGN: usize = 64;

// The C constants are the indices of `KvType::ALL`.
const _: () = {
    assert!(matches!(KvType::ALL[EDDY_KV_F16 as usize], KvType::F16));
    assert!(matches!(KvType::ALL[EDDY_KV_F32 as usize], KvType::F32));
    assert!(matches!(KvType::ALL[EDDY_KV_Q8_0 as usize], KvType::Q8_0));
    assert!(matches!(KvType::ALL[EDDY_KV_Q4_0 as usize], KvType::Q4_0));
};

const _: () = assert!(EDDY_CONTEXT_ALIGN == eddy::context::ALIGN);
const _: () = assert!(std::mem::align_of::<eddy_context>() <= EDDY_CONTEXT_ALIGN);

/// How a context's memory is laid out: the handle, the piece buffer of eddy_generate, then the
/// runtime's region (each on an EDDY_CONTEXT_ALIGN boundary).
struct Placement {
    piece_at: usize,
    piece_len: usize,
    region_at: usize,
    total: usize,
}

fn placement(model: &Model, params: &ContextParams) -> FfiResult<Placement> {
    let a = EDDY_CONTEXT_ALIGN;
    let runtime = Context::memory_required(model, params)?;
    let piece_at = std::mem::size_of::<eddy_context>().next_multiple_of(a);
    let piece_len = piece_capacity(model).next_multiple_of(a);
    let region_at = piece_at + piece_len;
    Ok(Placement {
        piece_at,
        piece_len,
        region_at,
        total: region_at + runtime,
    })
}

fn piece_capacity(model: &Model) -> usize {
    model.tokenizer().max_token_len() + 8
}

/// Builds a context in `mem` (EDDY_CONTEXT_ALIGN-aligned, at least `place.total` bytes) and
/// returns the handle, which sits at the start of `mem`.
///
/// # Safety
/// `mem` is not used by anyone else until the handle is freed, and outlives it.
unsafe fn place(
    model: &Arc<Model>,
    p: &eddy_context_params,
    params: ContextParams,
    place: &Placement,
    mem: &'static mut [u8],
    allocation: Option<std::alloc::Layout>,
) -> FfiResult<*mut eddy_context> {
    let (head, rest) = mem.split_at_mut(place.piece_at);
    let (piece, region) = rest.split_at_mut(place.region_at - place.piece_at);
    let ctx = Context::new_in(Arc::clone(model), params, region)?;
    let handle = head.as_mut_ptr().cast::<eddy_context>();
    // SAFETY: `head` is the first `size_of::<eddy_context>()` (rounded up) bytes of `mem`, which
    // starts on an EDDY_CONTEXT_ALIGN boundary, at least eddy_context's alignment (asserted
    // above); nothing else refers to those bytes.
    unsafe {
        handle.write(eddy_context {
            model: Arc::clone(model),
            ctx,
            abort: None,
            abort_data: std::ptr::null_mut(),
            n_threads: p.n_threads,
            piece: &mut piece[..place.piece_len],
            allocation,
        })
    };
    Ok(handle)
}

/// Checked arguments of eddy_context_new / eddy_context_new_in / eddy_context_memory_required.
///
/// # Safety
/// As those functions' contracts.
unsafe fn context_args<'m>(
    model: *const eddy_model,
    params: *const eddy_context_params,
) -> FfiResult<(&'m eddy_model, eddy_context_params, ContextParams)> {
    // SAFETY: the caller promises model is NULL or live.
    let m = unsafe { arg_ref(model, "model") }?;
    // SAFETY: the caller promises params is NULL or a struct with its size field set.
    let p =
        unsafe { read_params(params, "params") }?.unwrap_or_else(|| eddy_context_default_params());
    let cp = context_params(&p)?;
    Ok((m, p, cp))
}

/// Creates a context over model; params may be NULL for the defaults.
///
/// Allocates, in one block, exactly eddy_context_memory_required() bytes: the handle, the K/V
/// arena and every buffer; decoding allocates nothing more (n_threads > 1 also starts worker
/// threads). The context holds a reference to the model, so the model may be freed before the
/// context.
///
/// On EDDY_STATUS_OK, *out_context receives the new context (free it with eddy_context_free);
/// on failure it is untouched. Returns EDDY_STATUS_NULL_POINTER (model or out_context NULL),
/// EDDY_STATUS_INVALID_ARGUMENT (params->size is not sizeof(eddy_context_params), unknown
/// kv_type, n_batch or n_ubatch 0, an arena too large), EDDY_STATUS_OUT_OF_MEMORY.
///
/// # Safety
/// model is NULL or a live model; params is NULL or points to an eddy_context_params whose
/// size field is set; out_context is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_new(
    model: *const eddy_model,
    params: *const eddy_context_params,
    out_context: *mut *mut eddy_context,
) -> eddy_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (m, p, cp) = unsafe { context_args(model, params) }?;
        // SAFETY: the caller promises out_context is NULL or writable.
        let out = unsafe { arg_mut(out_context, "out_context") }?;
        let pl = placement(&m.model, &cp)?;
        let layout = std::alloc::Layout::from_size_align(pl.total, EDDY_CONTEXT_ALIGN)
            .map_err(|_| Failure::invalid(format!("a context of {} bytes", pl.total)))?;
        // SAFETY: `layout` has a non-zero size (it holds at least the handle).
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(Failure::new(
                EDDY_STATUS_OUT_OF_MEMORY,
                format!("cannot allocate {} bytes for a context", pl.total),
            ));
        }
        // SAFETY: `ptr` is a fresh allocation of `layout.size()` bytes, owned by the handle made
        // below (which frees it in eddy_context_free) or freed right here on failure.
        let mem: &'static mut [u8] = unsafe {
            ptr.write_bytes(0, pl.total);
            std::slice::from_raw_parts_mut(ptr, pl.total)
        };
        // SAFETY: `mem` is ours alone and lives until eddy_context_free.
        match unsafe { place(&m.model, &p, cp, &pl, mem, Some(layout)) } {
            Ok(h) => {
                *out = h;
                Ok(())
            }
            Err(e) => {
                // SAFETY: allocated above with `layout`; nothing refers to it any more.
                unsafe { std::alloc::dealloc(ptr, layout) };
                Err(e)
            }
        }
    })
}

/// Creates a context over model inside memory the caller provides: mem points to mem_len
/// bytes aligned to EDDY_CONTEXT_ALIGN, of which eddy_context_memory_required() are used (the
/// handle itself, the K/V arena and every buffer); the library allocates nothing for the
/// context (except worker threads when n_threads > 1). The memory is zeroed first.
///
/// The returned handle points into mem. Free it with eddy_context_free (which releases the
/// model reference and threads, not mem) before reusing or freeing mem.
///
/// On EDDY_STATUS_OK, *out_context receives the context; on failure it is untouched and mem is
/// not written. Returns EDDY_STATUS_NULL_POINTER (model, mem or out_context NULL),
/// EDDY_STATUS_BUFFER_TOO_SMALL (mem_len < the size needed, which the message states),
/// EDDY_STATUS_MISALIGNED (mem not aligned to EDDY_CONTEXT_ALIGN), EDDY_STATUS_INVALID_ARGUMENT
/// (as eddy_context_new).
///
/// # Safety
/// model is NULL or a live model; params is NULL or points to an eddy_context_params whose
/// size field is set; mem is NULL or points to mem_len writable bytes that nothing else reads
/// or writes until the context is freed; out_context is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_new_in(
    model: *const eddy_model,
    params: *const eddy_context_params,
    mem: *mut c_void,
    mem_len: usize,
    out_context: *mut *mut eddy_context,
) -> eddy_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (m, p, cp) = unsafe { context_args(model, params) }?;
        if mem.is_null() {
            return Err(Failure::null("mem"));
        }
        // SAFETY: the caller promises out_context is NULL or writable.
        let out = unsafe { arg_mut(out_context, "out_context") }?;
        let pl = placement(&m.model, &cp)?;
        if mem_len < pl.total {
            return Err(Failure::new(
                EDDY_STATUS_BUFFER_TOO_SMALL,
                format!(
                    "mem holds {mem_len} bytes, but this context needs {}",
                    pl.total
                ),
            ));
        }
        if !(mem as usize).is_multiple_of(EDDY_CONTEXT_ALIGN) {
            return Err(Failure::new(
                EDDY_STATUS_MISALIGNED,
                format!(
                    "mem at {mem:p} is not aligned to {EDDY_CONTEXT_ALIGN} bytes (EDDY_CONTEXT_ALIGN)"
                ),
            ));
        }
        // SAFETY: the caller promises mem_len writable bytes at mem, used by no one else until
        // the context is freed (which is as long as the handle uses them).
        let mem: &'static mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(mem.cast::<u8>(), pl.total) };
        // SAFETY: as just argued.
        *out = unsafe { place(&m.model, &p, cp, &pl, mem, None) }?;
        Ok(())
    })
}

/// Bytes a context over model with params (NULL: the defaults) takes: what eddy_context_new
/// allocates (in one block) and what eddy_context_new_in needs; the handle, the K/V arena,
/// activation buffers and logits. Nothing is allocated by this call. Lets an embedder check
/// the memory budget up front.
///
/// On EDDY_STATUS_OK, *out_bytes receives the size; on failure it is untouched. Returns
/// EDDY_STATUS_NULL_POINTER or EDDY_STATUS_INVALID_ARGUMENT (as eddy_context_new).
///
/// # Safety
/// model is NULL or a live model; params is NULL or points to an eddy_context_params whose
/// size field is set; out_bytes is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_memory_required(
    model: *const eddy_model,
    params: *const eddy_context_params,
    out_bytes: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let (m, _, cp) = unsafe { context_args(model, params) }?;
        // SAFETY: the caller promises out_bytes is NULL or writable.
        let out = unsafe { arg_mut(out_bytes, "out_bytes") }?;
        *out = placement(&m.model, &cp)?.total;
        Ok(())
    })
}

/// Frees a context (its reference to the model, its threads, and its memory if
/// eddy_context_new allocated it; memory given to eddy_context_new_in is the caller's again
/// afterwards). NULL is a no-op.
///
/// # Safety
/// context is NULL or a pointer returned by eddy_context_new or eddy_context_new_in, not freed
/// before, and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_free(context: *mut eddy_context) {
    guard_value((), || {
        if context.is_null() {
            return;
        }
        // SAFETY: `context` was written by `place` and is dropped once (caller's contract).
        let allocation = unsafe { (*context).allocation };
        // SAFETY: as above; after this the bytes are plain memory again.
        unsafe { std::ptr::drop_in_place(context) };
        if let Some(layout) = allocation {
            // SAFETY: eddy_context_new allocated the block that starts at the handle with
            // `layout`; the handle (the only user of the block) was just dropped.
            unsafe { std::alloc::dealloc(context.cast::<u8>(), layout) };
        }
    })
}

/// Bytes eddy_context_state_save writes for the context's current state (position, the K/V of
/// the tokens in the arena, the last logits). 0 if context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_state_size(context: *const eddy_context) -> usize {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.ctx.state_size()) }
}

/// Saves the context's stream into buf (buf_len bytes) so that a context of the same model and
/// arena parameters (n_sink, n_window, n_ubatch, kv_type, logits_all/n_batch) can continue it
/// with eddy_context_state_load. Allocates nothing.
///
/// On EDDY_STATUS_OK, *out_len receives the bytes written; on EDDY_STATUS_BUFFER_TOO_SMALL the
/// bytes needed (buf untouched; buf may be NULL with buf_len 0 to ask). EDDY_STATUS_NULL_POINTER
/// if context or out_len is NULL.
///
/// # Safety
/// context is NULL or a live context not used by another thread during the call; buf is NULL
/// or holds buf_len writable bytes; out_len is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_state_save(
    context: *const eddy_context,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live.
        let c = unsafe { arg_ref(context, "context") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out = unsafe { arg_mut(out_len, "out_len") }?;
        let need = c.ctx.state_size();
        if buf_len < need || buf.is_null() {
            *out = need;
            return Err(Failure::new(
                EDDY_STATUS_BUFFER_TOO_SMALL,
                format!("the state takes {need} bytes, buf holds {buf_len}"),
            ));
        }
        // SAFETY: the caller promises buf_len writable bytes at buf (not NULL, checked).
        let dst = unsafe { std::slice::from_raw_parts_mut(buf, buf_len) };
        *out = c.ctx.save_state(dst)?;
        Ok(())
    })
}

/// Continues the stream saved by eddy_context_state_save (data: len bytes). The bytes are
/// treated as untrusted: another model, other arena parameters, a wrong length or damaged
/// data give EDDY_STATUS_INVALID_STATE (the message says which) and leave the context
/// unchanged. Allocates nothing. Returns EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER,
/// EDDY_STATUS_INVALID_STATE.
///
/// # Safety
/// context is NULL or a live context not used by another thread during the call; data is NULL
/// or holds len readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_state_load(
    context: *mut eddy_context,
    data: *const u8,
    len: usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live and not shared during the call.
        let c = unsafe { arg_mut(context, "context") }?;
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        // SAFETY: the caller promises len readable bytes at data (not NULL, checked).
        let src = unsafe { std::slice::from_raw_parts(data, len) };
        c.ctx.load_state(src)?;
        Ok(())
    })
}

/// Runs a getter on a context handle inside the panic boundary; `default` for NULL.
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call.
unsafe fn getter<T: Copy>(
    context: *const eddy_context,
    default: T,
    f: impl FnOnce(&eddy_context) -> T,
) -> T {
    guard_value(default, || {
        // SAFETY: the caller's contract: NULL (handled by `as_ref`) or a live context.
        match unsafe { context.as_ref() } {
            Some(c) => f(c),
            None => default,
        }
    })
}

/// Tokens streamed through the context since it was created or reset (the absolute position of
/// the next token; it keeps growing past the arena's size). 0 if context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_n_seen(context: *const eddy_context) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.ctx.n_seen()) }
}

/// Attention-sink slots of the context. 0 if context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_n_sink(context: *const eddy_context) -> usize {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.ctx.params().n_sink) }
}

/// Window size of the context (n_window with the default resolved). 0 if context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_n_window(context: *const eddy_context) -> usize {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.ctx.params().n_window) }
}

/// Most tokens per forward pass (the context's n_batch). 0 if context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_n_batch(context: *const eddy_context) -> usize {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.ctx.params().n_batch) }
}

/// The thread count the context was created with (see eddy_context_params.n_threads). 0 if
/// context is NULL.
///
/// # Safety
/// context is NULL or a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_n_threads(context: *const eddy_context) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(context, 0, |c| c.n_threads) }
}

/// Empties the context: the next token is at position 0 again and there are no logits until
/// the next decode. NULL is a no-op.
///
/// # Safety
/// context is NULL or a live context not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_reset(context: *mut eddy_context) {
    guard_value((), || {
        // SAFETY: the caller's contract: NULL or a live, unshared context.
        if let Some(c) = unsafe { context.as_mut() } {
            c.ctx.reset();
        }
    })
}

/// Sets (or, with callback NULL, removes) the abort callback of a context.
///
/// The callback is polled before each batch of eddy_decode and eddy_generate (each batch is at
/// most n_batch tokens) and before each generated token; when it returns true the call stops
/// and returns EDDY_STATUS_ABORTED, leaving the context usable with the tokens consumed so
/// far. Returns EDDY_STATUS_OK or EDDY_STATUS_NULL_POINTER (context NULL).
///
/// # Safety
/// context is NULL or a live context; callback, if not NULL, may be called with user_data on
/// the thread that decodes until it is replaced or the context is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_set_abort_callback(
    context: *mut eddy_context,
    callback: eddy_abort_callback,
    user_data: *mut c_void,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live and unshared.
        let c = unsafe { arg_mut(context, "context") }?;
        c.abort = callback;
        c.abort_data = user_data;
        Ok(())
    })
}

impl eddy_context {
    fn aborted(&self) -> bool {
        match self.abort {
            // SAFETY: the callback and user_data were registered together through
            // eddy_context_set_abort_callback, whose contract allows this call.
            Some(cb) => unsafe { cb(self.abort_data) },
            None => false,
        }
    }

    /// Checks that `tokens` can be decoded in full (the arena never fills), so that every
    /// failure other than an abort leaves the context untouched.
    pub(crate) fn check_tokens(&self, tokens: &[eddy_token]) -> FfiResult {
        if tokens.is_empty() {
            return Err(Failure::invalid("no tokens to decode (n_tokens is 0)"));
        }
        let n_vocab = self.model.hparams().n_vocab;
        if let Some((i, &id)) = tokens
            .iter()
            .enumerate()
            .find(|&(_, &t)| t as usize >= n_vocab)
        {
            return Err(Failure::new(
                EDDY_STATUS_INVALID_TOKEN,
                format!("tokens[{i}] = {id} is outside the vocabulary of {n_vocab} tokens"),
            ));
        }
        Ok(())
    }

    /// Decodes checked tokens batch by batch, polling the abort callback before each batch.
    /// Returns how many tokens entered the context, and the outcome.
    pub(crate) fn decode_batches(&mut self, tokens: &[eddy_token]) -> (usize, FfiResult) {
        let mut done = 0;
        for chunk in tokens.chunks(self.ctx.params().n_batch) {
            if self.aborted() {
                return (
                    done,
                    Err(Failure::new(
                        EDDY_STATUS_ABORTED,
                        format!(
                            "aborted by the abort callback after {done} of {} tokens",
                            tokens.len()
                        ),
                    )),
                );
            }
            if let Err(e) = self.ctx.decode(chunk) {
                return (done, Err(e.into()));
            }
            done += chunk.len();
        }
        (done, Ok(()))
    }

    /// Polls the abort callback between generated tokens (the message is built only when it
    /// is needed: this runs once per token and must not allocate).
    pub(crate) fn check_abort(&self, what: impl FnOnce() -> String) -> FfiResult {
        if self.aborted() {
            return Err(Failure::new(
                EDDY_STATUS_ABORTED,
                format!("aborted by the abort callback {}", what()),
            ));
        }
        Ok(())
    }

    /// The last token's logits, if a decode produced any since creation or reset.
    pub(crate) fn last_logits(&self) -> FfiResult<&[f32]> {
        if self.ctx.logits_ith(0).is_none() {
            return Err(no_logits());
        }
        Ok(self.ctx.logits())
    }
}

fn no_logits() -> Failure {
    Failure::new(
        EDDY_STATUS_NO_LOGITS,
        "no logits: nothing was decoded since the context was created or reset",
    )
}

/// Appends n_tokens tokens to the context and runs the model over them, in batches of at most
/// n_batch tokens. There is no length limit: once the window is full, the oldest tokens after
/// the sinks are evicted. Afterwards the logits of the last token (or, with logits_all, of every token
/// of the last batch) can be read.
///
/// Before anything is decoded the whole call is checked: on EDDY_STATUS_NULL_POINTER,
/// EDDY_STATUS_INVALID_ARGUMENT (n_tokens is 0), EDDY_STATUS_INVALID_TOKEN (an id outside the
/// vocabulary) the context is unchanged and *out_n_consumed untouched. On EDDY_STATUS_OK, *out_n_consumed = n_tokens. On
/// EDDY_STATUS_ABORTED (the abort callback returned true before a batch), the batches before it
/// were decoded, *out_n_consumed says how many tokens that was, and the context is usable: pass
/// the remaining tokens to continue. out_n_consumed may be NULL.
///
/// # Safety
/// context is NULL or a live context not used by another thread; tokens is NULL or holds
/// n_tokens ids; out_n_consumed is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_decode(
    context: *mut eddy_context,
    tokens: *const eddy_token,
    n_tokens: usize,
    out_n_consumed: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live and unshared.
        let c = unsafe { arg_mut(context, "context") }?;
        // SAFETY: the caller promises tokens holds n_tokens ids (or is NULL).
        let ids = unsafe { arg_slice(tokens, n_tokens, "tokens") }?;
        // SAFETY: the caller promises out_n_consumed is NULL or writable.
        let out = unsafe { out_n_consumed.as_mut() };
        c.check_tokens(ids)?;
        let (done, result) = c.decode_batches(ids);
        let report = match &result {
            Ok(()) => true,
            Err(e) => e.status == EDDY_STATUS_ABORTED,
        };
        if report && let Some(out) = out {
            *out = done;
        }
        result
    })
}

/// Points *out_logits at the logits of the last decoded token (*out_n_vocab floats, one per
/// token id) and sets *out_n_vocab.
///
/// The pointer is borrowed from the context: valid until the next eddy_decode,
/// eddy_generate, eddy_context_reset or eddy_context_free on this context. Returns
/// EDDY_STATUS_OK, EDDY_STATUS_NULL_POINTER, or EDDY_STATUS_NO_LOGITS (nothing decoded since
/// creation or reset); outputs are untouched on failure.
///
/// # Safety
/// context is NULL or a live context; out_logits and out_n_vocab are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_logits(
    context: *const eddy_context,
    out_logits: *mut *const f32,
    out_n_vocab: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live.
        let c = unsafe { arg_ref(context, "context") }?;
        // SAFETY: the caller promises out_logits is NULL or writable.
        let out = unsafe { arg_mut(out_logits, "out_logits") }?;
        // SAFETY: the caller promises out_n_vocab is NULL or writable.
        let out_n = unsafe { arg_mut(out_n_vocab, "out_n_vocab") }?;
        let l = c.last_logits()?;
        *out = l.as_ptr();
        *out_n = l.len();
        Ok(())
    })
}

/// Like eddy_context_logits, for token i of the last batch. Only a context created with
/// logits_all keeps every row; otherwise only i = 0 (the last token) exists. Returns
/// EDDY_STATUS_NO_LOGITS when row i was not kept.
///
/// # Safety
/// As for eddy_context_logits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_logits_ith(
    context: *const eddy_context,
    i: usize,
    out_logits: *mut *const f32,
    out_n_vocab: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live.
        let c = unsafe { arg_ref(context, "context") }?;
        // SAFETY: the caller promises out_logits is NULL or writable.
        let out = unsafe { arg_mut(out_logits, "out_logits") }?;
        // SAFETY: the caller promises out_n_vocab is NULL or writable.
        let out_n = unsafe { arg_mut(out_n_vocab, "out_n_vocab") }?;
        let l = c.ctx.logits_ith(i).ok_or_else(|| {
            Failure::new(
                EDDY_STATUS_NO_LOGITS,
                format!("no logits for row {i} of the last batch"),
            )
        })?;
        *out = l.as_ptr();
        *out_n = l.len();
        Ok(())
    })
}

/// Copies the logits of the last decoded token into buf (buf_len floats).
///
/// On EDDY_STATUS_OK, *out_len receives the number of floats written (the vocabulary size); on
/// EDDY_STATUS_BUFFER_TOO_SMALL, the number needed (buf untouched; buf may be NULL with
/// buf_len 0 to ask). Other returns: EDDY_STATUS_NULL_POINTER, EDDY_STATUS_NO_LOGITS.
///
/// # Safety
/// context is NULL or a live context; buf is NULL or holds buf_len writable floats; out_len is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_context_copy_logits(
    context: *const eddy_context,
    buf: *mut f32,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    guard(|| {
        // SAFETY: the caller promises context is NULL or live.
        let c = unsafe { arg_ref(context, "context") }?;
        // SAFETY: the caller promises buf holds buf_len writable floats (or is NULL).
        let buf = unsafe { arg_buf(buf, buf_len, "buf") }?;
        // SAFETY: the caller promises out_len is NULL or writable.
        let out = unsafe { arg_mut(out_len, "out_len") }?;
        copy_out(c.last_logits()?, buf, out, false, "logits")
    })
}
