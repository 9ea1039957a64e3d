/*
 * zero_alloc.c: checks through the C API that eddy_context_new / eddy_sampler_new allocate
 * exactly what eddy_*_memory_required announce, and that decoding allocates nothing. malloc and friends
 * are wrapped by the linker (--wrap), so every allocation libeddy makes is counted; the loop
 * decodes, samples, accepts and renders 300 tokens one at a time through a 4-sink + 64-token
 * window (which wraps several times) and must allocate 0 times.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/zero_alloc.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o zero_alloc \
 *      -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free \
 *      -Wl,--wrap=posix_memalign,--wrap=aligned_alloc
 *   ./zero_alloc models/SmolLM2-135M-Instruct.Q4_1.gguf
 * (GNU ld or lld; --wrap is not available with the macOS linker.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy.h"

#include "alloc_count.h"

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "zero_alloc: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);

    /* Everything is allocated here, before the loop, and exactly as much as announced. */
    eddy_context_params cp = eddy_context_default_params();
    cp.n_sink = 4;
    cp.n_window = 64;
    cp.n_batch = 16;
    eddy_sampler_params sp = eddy_sampler_default_params();
    sp.temperature = 0.8f; /* exercises top-k / top-p / min-p and the draw */
    sp.repeat_penalty = 1.1f;
    size_t ctx_bytes = 0, smp_bytes = 0;
    st = eddy_context_memory_required(model, &cp, &ctx_bytes);
    if (st != EDDY_STATUS_OK) return fail("eddy_context_memory_required", st);
    st = eddy_sampler_memory_required(model, &sp, &smp_bytes);
    if (st != EDDY_STATUS_OK) return fail("eddy_sampler_memory_required", st);

    eddy_context *ctx = NULL;
    counting = 1;
    st = eddy_context_new(model, &cp, &ctx);
    counting = 0;
    if (st != EDDY_STATUS_OK) return fail("eddy_context_new", st);
    printf("zero_alloc: eddy_context_new allocated %zu bytes, memory_required said %zu\n",
           n_bytes, ctx_bytes);
    int rc = n_bytes == ctx_bytes ? 0 : 1;
    n_bytes = 0;
    eddy_sampler *sampler = NULL;
    counting = 1;
    st = eddy_sampler_new(model, &sp, &sampler);
    counting = 0;
    if (st != EDDY_STATUS_OK) return fail("eddy_sampler_new", st);
    printf("zero_alloc: eddy_sampler_new allocated %zu bytes, memory_required said %zu\n",
           n_bytes, smp_bytes);
    if (n_bytes != smp_bytes) rc = 1;
    n_allocs = n_frees = 0;
    n_bytes = 0;
    eddy_token prompt[64];
    size_t n_prompt = 0;
    const char *text = "The history of the lighthouse begins";
    st = eddy_tokenize(model, text, strlen(text), true, true, prompt, 64, &n_prompt);
    if (st != EDDY_STATUS_OK) return fail("eddy_tokenize", st);
    char piece[256];
    size_t n_piece = 0, n_done = 0;

    /* Control: tokenizing allocates working buffers, so the wrap must see it. */
    counting = 1;
    st = eddy_tokenize(model, text, strlen(text), true, true, prompt, 64, &n_prompt);
    counting = 0;
    if (st != EDDY_STATUS_OK) return fail("eddy_tokenize", st);
    if (n_allocs == 0) {
        fprintf(stderr, "zero_alloc: the malloc wrap saw nothing: link with -Wl,--wrap=...\n");
        return 1;
    }
    printf("zero_alloc: control: eddy_tokenize made %ld allocations\n", n_allocs);
    n_allocs = n_frees = 0;

    counting = 1;
    st = eddy_decode(ctx, prompt, n_prompt, &n_done);
    for (int i = 0; i < 300 && st == EDDY_STATUS_OK; i++) {
        eddy_token next = 0;
        st = eddy_sampler_sample(sampler, ctx, &next);
        if (st == EDDY_STATUS_OK) st = eddy_sampler_accept(sampler, next);
        if (st == EDDY_STATUS_OK)
            st = eddy_token_to_piece(model, next, false, piece, sizeof piece, &n_piece);
        if (st == EDDY_STATUS_OK) st = eddy_decode(ctx, &next, 1, &n_done);
    }
    counting = 0;
    if (st != EDDY_STATUS_OK) return fail("the decode loop", st);

    unsigned long long n_seen = eddy_context_n_seen(ctx);
    printf("zero_alloc: %llu tokens through a %zu + %zu arena: %ld allocations, %ld frees\n",
           n_seen, eddy_context_n_sink(ctx), eddy_context_n_window(ctx), n_allocs, n_frees);
    eddy_sampler_free(sampler);
    eddy_context_free(ctx);
    eddy_model_free(model);
    return n_allocs == 0 && n_frees == 0 ? rc : 1;
}
