//! The boundary between C and Rust: status codes, the thread-local last error, the panic
//! guard every exported function runs in, and the pointer checks.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Status returned by every fallible function.
///
/// The numeric values are part of the ABI: they are never renumbered and never reused. On any
/// value other than EDDY_STATUS_OK, eddy_last_error() returns a message saying what went wrong,
/// and the function's outputs are untouched unless its documentation says otherwise.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum eddy_status {
    /// Success.
    EDDY_STATUS_OK = 0,
    /// An argument is out of range: a params struct whose size field does not match, a zero
    /// length where tokens are required, a NaN sampling parameter, an index past the end.
    EDDY_STATUS_INVALID_ARGUMENT = 1,
    /// A pointer argument that must not be NULL was NULL.
    EDDY_STATUS_NULL_POINTER = 2,
    /// A file could not be opened, read or mapped.
    EDDY_STATUS_IO = 3,
    /// The model is invalid or not supported: not GGUF, corrupt or hostile GGUF, unknown
    /// architecture, missing or mis-shaped tensor, unusable tokenizer metadata.
    EDDY_STATUS_INVALID_MODEL = 4,
    /// A caller's output buffer is too small; the size needed was written to the length
    /// output.
    EDDY_STATUS_BUFFER_TOO_SMALL = 5,
    /// Reserved: the context has no room for the tokens. Not returned by this version, whose
    /// contexts stream for ever (sinks + a circular window); the value is never reused.
    EDDY_STATUS_CONTEXT_FULL = 6,
    /// A token id is outside the model's vocabulary.
    EDDY_STATUS_INVALID_TOKEN = 7,
    /// The abort callback asked to stop; the context is usable and holds what was consumed.
    EDDY_STATUS_ABORTED = 8,
    /// A bug in Eddy was caught at the boundary (a Rust panic). The handle the call was given
    /// may be in an inconsistent state: free it rather than use it again.
    EDDY_STATUS_PANIC = 9,
    /// Text passed in is not valid UTF-8.
    EDDY_STATUS_INVALID_UTF8 = 10,
    /// The thing asked for does not exist (for example a metadata key the model lacks).
    EDDY_STATUS_NOT_FOUND = 11,
    /// The logits asked for do not exist (nothing was decoded since creation or reset, or the
    /// row was not kept).
    EDDY_STATUS_NO_LOGITS = 12,
    /// Any other runtime error; the message says what.
    EDDY_STATUS_RUNTIME_ERROR = 13,
    /// Memory handed in by the caller does not start on the required boundary
    /// (EDDY_CONTEXT_ALIGN bytes for eddy_context_new_in).
    EDDY_STATUS_MISALIGNED = 14,
    /// A saved context state does not fit the context (other model, other arena geometry) or
    /// is damaged (checksum, length); the context is unchanged.
    EDDY_STATUS_INVALID_STATE = 15,
    /// The system allocator refused memory.
    EDDY_STATUS_OUT_OF_MEMORY = 16,
    /// A chat template does not parse or fails while rendering (raise_exception, out of its
    /// instruction budget, output too large), or the model has no template and no built-in
    /// format fits it; eddy_last_error says which.
    EDDY_STATUS_INVALID_TEMPLATE = 17,
    /// A constraint (JSON schema, grammar, regular expression) does not compile, or failed
    /// while generating (the grammar rejected an accepted token, a step exceeded its limits),
    /// or the library was built without constraint support; eddy_last_error says which.
    EDDY_STATUS_INVALID_CONSTRAINT = 18,
}

use eddy_status::*;

/// A failed call: its status and the message `eddy_last_error` will return.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: eddy_status,
    pub(crate) message: String,
}

/// Result of the body of an exported function.
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

impl Failure {
    pub(crate) fn new(status: eddy_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(EDDY_STATUS_INVALID_ARGUMENT, message)
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(EDDY_STATUS_NULL_POINTER, format!("{what} is NULL"))
    }
}

impl From<eddy::Error> for Failure {
    fn from(e: eddy::Error) -> Failure {
        use eddy::Error as E;
        use eddy::gguf::GgufError;
        let status = match &e {
            E::Gguf(GgufError::Io { .. }) => EDDY_STATUS_IO,
            E::Gguf(_)
            | E::UnsupportedArchitecture(_)
            | E::Metadata { .. }
            | E::Tensor { .. }
            | E::Tokenizer(_) => EDDY_STATUS_INVALID_MODEL,
            E::InvalidParam(_) | E::BatchSize { .. } => EDDY_STATUS_INVALID_ARGUMENT,
            E::InvalidToken { .. } => EDDY_STATUS_INVALID_TOKEN,
            E::BufferTooSmall { .. } => EDDY_STATUS_BUFFER_TOO_SMALL,
            E::Misaligned { .. } => EDDY_STATUS_MISALIGNED,
            E::State(_) => EDDY_STATUS_INVALID_STATE,
            E::OutOfMemory { .. } => EDDY_STATUS_OUT_OF_MEMORY,
            _ => EDDY_STATUS_RUNTIME_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NULs become spaces).
pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // During thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error; valid until the next failing call on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    static EMPTY: &std::ffi::CStr = c"";
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(EMPTY.as_ptr())
}

/// Runs `f` with this thread's last error message (without its NUL).
pub(crate) fn with_last_error<T>(f: impl FnOnce(&[u8]) -> T) -> T {
    let mut f = Some(f);
    let mut call = |bytes: &[u8]| (f.take().expect("called once"))(bytes);
    match LAST_ERROR.try_with(|e| call(e.borrow().as_bytes())) {
        Ok(v) => v,
        Err(_) => call(b""),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic payload"
    }
}

/// The panic boundary of every exported function returning a status: runs `f`, records a
/// failure's message, and turns a panic into `EDDY_STATUS_PANIC`.
pub(crate) fn guard(f: impl FnOnce() -> FfiResult) -> eddy_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => EDDY_STATUS_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "internal error (panic) in eddy: {}",
                panic_message(payload.as_ref())
            ));
            EDDY_STATUS_PANIC
        }
    }
}

/// The panic boundary of exported functions that return a value: `on_panic` if `f` panics.
pub(crate) fn guard_value<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(&format!(
                "internal error (panic) in eddy: {}",
                panic_message(payload.as_ref())
            ));
            on_panic
        }
    }
}

/// A shared reference from a C pointer, or `EDDY_STATUS_NULL_POINTER` naming `what`.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` that nothing mutates during `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller's contract: NULL (handled by `as_ref`) or valid for `'a`.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// An exclusive reference from a C pointer, or `EDDY_STATUS_NULL_POINTER` naming `what`.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` that nothing else accesses during
/// `'a`.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract: NULL (handled by `as_mut`) or valid and unaliased.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// A slice from a C pointer and an element count. A zero count gives an empty slice whatever
/// the pointer; otherwise the pointer must be non-NULL and aligned.
///
/// # Safety
/// If `len > 0` and `p` is not NULL, `p` points to `len` initialised `T`s that nothing mutates
/// during `'a`.
pub(crate) unsafe fn arg_slice<'a, T>(p: *const T, len: usize, what: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::null(what));
    }
    check_extent::<T>(p.cast(), len, what)?;
    // SAFETY: non-NULL, aligned, within isize::MAX bytes (checked above); the caller promises
    // `len` initialised elements that stay unchanged during `'a`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller's output buffer of `len` elements, or `None` when `len` is 0. The elements are
/// `MaybeUninit`: a C caller may hand in memory it never initialised, and it is only written.
///
/// # Safety
/// If `len > 0` and `p` is not NULL, `p` points to `len` writable `T`s that nothing else
/// accesses during `'a`.
pub(crate) unsafe fn arg_buf<'a, T>(
    p: *mut T,
    len: usize,
    what: &str,
) -> FfiResult<Option<&'a mut [MaybeUninit<T>]>> {
    if len == 0 {
        return Ok(None);
    }
    if p.is_null() {
        return Err(Failure::null(what));
    }
    check_extent::<T>(p.cast_const().cast(), len, what)?;
    // SAFETY: non-NULL, aligned, within isize::MAX bytes (checked above); the caller promises
    // `len` writable elements that nothing else touches during `'a`; `MaybeUninit<T>` has the
    // layout of `T` and makes no claim that the bytes are initialised.
    Ok(Some(unsafe {
        std::slice::from_raw_parts_mut(p.cast::<MaybeUninit<T>>(), len)
    }))
}

fn check_extent<T>(p: *const u8, len: usize, what: &str) -> FfiResult {
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Failure::invalid(format!("{what} is not aligned")));
    }
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::invalid(format!(
            "{what}: length {len} is impossibly large"
        ))),
    }
}

/// Copies `src` into the caller's buffer when it fits and reports the count in `out_len`;
/// otherwise reports the count needed and fails with `EDDY_STATUS_BUFFER_TOO_SMALL`. With
/// `nul`, a terminating 0 follows the copy (and counts toward the size needed, not toward the
/// length reported on success).
pub(crate) fn copy_out<T: Copy + Default>(
    src: &[T],
    buf: Option<&mut [MaybeUninit<T>]>,
    out_len: &mut usize,
    nul: bool,
    what: &str,
) -> FfiResult {
    let needed = src.len() + usize::from(nul);
    let cap = buf.as_ref().map_or(0, |b| b.len());
    if cap < needed {
        *out_len = needed;
        return Err(Failure::new(
            EDDY_STATUS_BUFFER_TOO_SMALL,
            format!("{what}: buffer of {cap} elements is too small, {needed} needed"),
        ));
    }
    let Some(buf) = buf else {
        // needed == 0 (empty, no NUL): nothing to write.
        *out_len = 0;
        return Ok(());
    };
    for (d, &v) in buf.iter_mut().zip(src) {
        d.write(v);
    }
    if nul {
        buf[src.len()].write(T::default());
    }
    *out_len = src.len();
    Ok(())
}

/// A `#[repr(C)]` params struct that starts with a `uint32_t size` field.
pub(crate) trait ParamsStruct: Copy {
    /// Byte offsets of its `bool` fields, checked to hold 0 or 1 before the struct is read
    /// (any other byte would not be a valid Rust `bool`).
    const BOOL_OFFSETS: &'static [usize];
}

/// Reads a params struct, checking that the size the caller set equals this library's
/// `sizeof(T)` and that its `bool` fields hold 0 or 1.
///
/// # Safety
/// `p` is NULL or points to at least 4 readable bytes holding the size field, followed by the
/// rest of a `T` when that size equals `size_of::<T>()`.
pub(crate) unsafe fn read_params<T: ParamsStruct>(p: *const T, what: &str) -> FfiResult<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    check_extent::<T>(p.cast(), 1, what)?;
    // SAFETY: non-NULL and aligned; every params struct begins with a u32 size field, which
    // the caller promises is readable.
    let size = unsafe { p.cast::<u32>().read() };
    if size as usize != std::mem::size_of::<T>() {
        return Err(Failure::invalid(format!(
            "{what}: size field is {size}, this library expects {} (start from the \
             eddy_*_default_params() of the header you compile against)",
            std::mem::size_of::<T>()
        )));
    }
    for &off in T::BOOL_OFFSETS {
        // SAFETY: the size field says the caller's struct is a whole `T`, and `off` is the
        // offset of one of its fields, so the byte is inside it and initialised.
        let byte = unsafe { p.cast::<u8>().add(off).read() };
        if byte > 1 {
            return Err(Failure::invalid(format!(
                "{what}: a bool field at offset {off} holds {byte}, not 0 or 1"
            )));
        }
    }
    // SAFETY: a whole `T` (size checked above) whose bool fields are valid (checked above);
    // its other fields are integers and floats, valid for any bits.
    Ok(Some(unsafe { p.read() }))
}

/// Text from a C pointer and a byte length, which must be UTF-8.
///
/// # Safety
/// As for [`arg_slice`] with `u8` elements.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, len: usize, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { arg_slice(p.cast::<u8>(), len, what) }?;
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            EDDY_STATUS_INVALID_UTF8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}
