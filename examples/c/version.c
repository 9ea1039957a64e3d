/*
 * The smallest program linked against libeddy: checks that the header and the library agree.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/version.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o version && ./version
 */
#include <stdio.h>
#include <string.h>

#include "eddy.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
    const char *want = STR(EDDY_VERSION_MAJOR) "." STR(EDDY_VERSION_MINOR) "." STR(EDDY_VERSION_PATCH);
    const char *got = eddy_version();
    printf("libeddy %s (ABI %u), header %s (ABI %d)\n", got, (unsigned)eddy_abi_version(), want,
           EDDY_ABI_VERSION);
    if (strcmp(got, want) != 0 || eddy_abi_version() != EDDY_ABI_VERSION) {
        fprintf(stderr, "version mismatch between include/eddy.h and libeddy\n");
        return 1;
    }
    return 0;
}
