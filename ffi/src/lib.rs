//! `eddy-ffi`: the C ABI of Eddy (`libeddy.a` / `libeddy.so`), declared in `include/eddy.h`,
//! which cbindgen generates from this crate (`ffi/cbindgen.toml`).
//!
//! It is a thin layer over the `eddy` runtime and adds no model logic. Shape of the ABI:
//! opaque handles (`eddy_model`, `eddy_context`, `eddy_sampler`) made by `*_new`/`*_load` and
//! released by `*_free` (`NULL` is a no-op); `*_default_params()` structs that carry their own
//! size; every fallible call returns an [`eddy_status`] with explicit, never reused values,
//! writes its outputs only on success and leaves a thread-local message for
//! `eddy_last_error()`; caller-owned buffers with explicit lengths, a too-small one reporting
//! the size needed. Every exported body runs inside the panic boundary of [`boundary`]: a
//! panic becomes `EDDY_STATUS_PANIC` (or a neutral value), never an unwind into C (the release
//! profile keeps `panic = "unwind"` for that reason).
//!
//! Modules: [`boundary`] (status, last error, panic guard, pointer checks), [`logging`] (the
//! `log` → C callback bridge), [`model`], [`context`], [`sampler`], [`generate`].
//!
//! Not here: Rust users call the `eddy` crate directly.
#![deny(missing_docs)]
#![allow(non_camel_case_types)]

use std::ffi::{CStr, c_char};

// The order of these modules is the order of the declarations in include/eddy.h.
pub mod boundary;

pub mod logging;

pub mod model;

pub mod context;

pub mod sampler;

pub mod generate;

pub mod chat;

pub use boundary::eddy_status;

/// Major version of the library; eddy_version() reports the same.
pub const EDDY_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const EDDY_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const EDDY_VERSION_PATCH: u32 = 0;
/// Version of the ABI described by this header; eddy_abi_version() must return the same
/// number. Bumped on every incompatible change (0 while the ABI is not yet stable).
pub const EDDY_ABI_VERSION: u32 = 0;

static VERSION_STRING: &CStr = c"0.1.0";

/// The library version as "MAJOR.MINOR.PATCH": a static NUL-terminated string owned by the
/// library; never NULL, never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_version() -> *const c_char {
    VERSION_STRING.as_ptr()
}

/// The ABI version the library was built with; compare it with EDDY_ABI_VERSION to detect a
/// header/library mismatch. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_abi_version() -> u32 {
    EDDY_ABI_VERSION
}

/// The message of the last failed call on the calling thread ("" if none failed yet): a
/// NUL-terminated string owned by the library, valid until the next failing call on this
/// thread. Never NULL. Each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_last_error() -> *const c_char {
    boundary::guard_value(c"".as_ptr(), boundary::last_error_ptr)
}

/// Copies the message of the last failed call on the calling thread into buf, NUL-terminated.
///
/// This call never replaces the message itself. buf may be NULL when buf_len is 0 (a size
/// query). On EDDY_STATUS_OK, *out_len (if out_len is not NULL) receives the message length
/// without the NUL. On EDDY_STATUS_BUFFER_TOO_SMALL, *out_len receives the buffer size needed
/// (with the NUL) and buf is untouched. EDDY_STATUS_NULL_POINTER if buf is NULL with
/// buf_len > 0.
///
/// # Safety
/// buf is NULL or holds buf_len writable bytes; out_len is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eddy_last_error_copy(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> eddy_status {
    boundary::guard_value(eddy_status::EDDY_STATUS_PANIC, || {
        // SAFETY: the caller promises buf holds buf_len writable bytes (or is NULL).
        let buf = match unsafe { boundary::arg_buf(buf.cast::<u8>(), buf_len, "buf") } {
            Ok(b) => b,
            Err(e) => return e.status,
        };
        let mut n = 0;
        let status = boundary::with_last_error(|msg| {
            match boundary::copy_out(msg, buf, &mut n, true, "message") {
                Ok(()) => eddy_status::EDDY_STATUS_OK,
                Err(e) => e.status,
            }
        });
        // SAFETY: the caller promises out_len is NULL or writable.
        if let Some(out) = unsafe { out_len.as_mut() } {
            *out = n;
        }
        status
    })
}

#[cfg(test)]
mod tests;
