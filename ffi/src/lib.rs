//! `eddy-ffi`: the C ABI of Eddy (`libeddy`), declared in `include/eddy.h`.
//!
//! Only the version queries exist so far; the model and context handles follow. Every exported
//! function will run inside a panic boundary: a panic becomes an error status, never an unwind
//! into C (the release profile keeps `panic = "unwind"` for that reason).
#![deny(missing_docs)]

use std::ffi::{CStr, c_char};

/// Major version; must equal `EDDY_VERSION_MAJOR` in `include/eddy.h`.
pub const VERSION_MAJOR: u32 = 0;
/// Minor version; must equal `EDDY_VERSION_MINOR`.
pub const VERSION_MINOR: u32 = 1;
/// Patch version; must equal `EDDY_VERSION_PATCH`.
pub const VERSION_PATCH: u32 = 0;
/// ABI version; must equal `EDDY_ABI_VERSION`. Bumped on any incompatible change.
pub const ABI_VERSION: u32 = 0;

static VERSION_STRING: &CStr = c"0.1.0";

/// The library version as a static NUL-terminated string ("MAJOR.MINOR.PATCH").
#[unsafe(no_mangle)]
pub extern "C" fn eddy_version() -> *const c_char {
    VERSION_STRING.as_ptr()
}

/// The ABI version the library was built with.
#[unsafe(no_mangle)]
pub extern "C" fn eddy_abi_version() -> u32 {
    ABI_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_numbers_and_cargo() {
        let want = format!("{VERSION_MAJOR}.{VERSION_MINOR}.{VERSION_PATCH}");
        assert_eq!(VERSION_STRING.to_str().unwrap(), want);
        assert_eq!(want, env!("CARGO_PKG_VERSION"));
    }
}
