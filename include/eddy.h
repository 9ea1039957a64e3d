/*
 * eddy.h: the C interface of Eddy (libeddy).
 *
 * Link against the static library (libeddy.a) or the shared one (libeddy.so / .dylib), both
 * built by `cargo build --release -p eddy-ffi` into target/release/.
 *
 * So far the library exposes its version only; model and context handles follow.
 * Thread safety: every function declared here may be called from any thread.
 */
#ifndef EDDY_H
#define EDDY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header. eddy_version() reports the library's; they must agree. */
#define EDDY_VERSION_MAJOR 0
#define EDDY_VERSION_MINOR 1
#define EDDY_VERSION_PATCH 0

/* ABI version of this header; eddy_abi_version() must return the same number. */
#define EDDY_ABI_VERSION 0

/*
 * The library version as "MAJOR.MINOR.PATCH".
 * Returns a static NUL-terminated string owned by the library; never NULL, never free it.
 */
const char *eddy_version(void);

/* The ABI version the library was built with (compare with EDDY_ABI_VERSION). */
uint32_t eddy_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* EDDY_H */
