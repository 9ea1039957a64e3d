/*
 * alloc_count.h: counts every allocation the program (and so libeddy) makes while `counting`
 * is set, by wrapping malloc and friends at link time. Link with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
 *   -Wl,--wrap=posix_memalign,--wrap=aligned_alloc
 * (GNU ld or lld; the macOS linker has no --wrap). Included by one translation unit only.
 */
#ifndef EDDY_EXAMPLES_ALLOC_COUNT_H
#define EDDY_EXAMPLES_ALLOC_COUNT_H

#include <stddef.h>

static int counting = 0;
static long n_allocs = 0;
static long n_frees = 0;
static size_t n_bytes = 0; /* bytes requested while counting */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size) {
    n_allocs += counting;
    n_bytes += counting ? size : 0;
    return __real_malloc(size);
}
void *__wrap_calloc(size_t n, size_t size) {
    n_allocs += counting;
    n_bytes += counting ? n * size : 0;
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t size) {
    n_allocs += counting;
    n_bytes += counting ? size : 0;
    return __real_realloc(p, size);
}
void __wrap_free(void *p) {
    n_frees += counting && p != NULL;
    __real_free(p);
}
int __wrap_posix_memalign(void **p, size_t align, size_t size) {
    n_allocs += counting;
    n_bytes += counting ? size : 0;
    return __real_posix_memalign(p, align, size);
}
void *__wrap_aligned_alloc(size_t align, size_t size) {
    n_allocs += counting;
    n_bytes += counting ? size : 0;
    return __real_aligned_alloc(align, size);
}

#endif
