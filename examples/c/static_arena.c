/*
 * static_arena.c: a context that lives entirely in memory the application owns.
 *
 * The application asks how much a context needs (eddy_context_memory_required), hands in one
 * block of its own (here carved from a buffer it reserved at start-up, as a device would from
 * a static pool), and from then on libeddy allocates nothing: creating the context, a greedy
 * stream of 300 tokens through a 4-sink + 64-token window (which wraps several times), saving
 * the stream's state into another application buffer and restoring it. The malloc family is
 * wrapped at link time and must count 0 calls for all of that; the restored stream must
 * continue with exactly the tokens the original produced.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/static_arena.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o static_arena \
 *      -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free \
 *      -Wl,--wrap=posix_memalign,--wrap=aligned_alloc
 *   ./static_arena models/SmolLM2-135M-Instruct.Q4_1.gguf
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "eddy.h"

/* The application's memory pool, reserved once at start-up. */
#define POOL_BYTES (64u << 20)
static unsigned char *pool;
static size_t pool_used;

/* Takes `n` bytes aligned to `align` from the pool (NULL when it is exhausted). */
static void *pool_take(size_t n, size_t align) {
    uintptr_t base = (uintptr_t)pool + pool_used;
    size_t pad = (align - base % align) % align;
    if (pool_used + pad + n > POOL_BYTES) return NULL;
    pool_used += pad + n;
    return (void *)(base + pad);
}

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "static_arena: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

/* Greedy continuation: `n` tokens after the context's last logits, ids into `out`. */
static eddy_status greedy(eddy_context *ctx, eddy_sampler *smp, const eddy_model *model, int n,
                          eddy_token *out, int print) {
    char piece[256];
    size_t len = 0, done = 0;
    for (int i = 0; i < n; i++) {
        eddy_token t = 0;
        eddy_status st = eddy_sampler_sample(smp, ctx, &t);
        if (st == EDDY_STATUS_OK) st = eddy_token_to_piece(model, t, false, piece, sizeof piece, &len);
        if (st == EDDY_STATUS_OK) st = eddy_decode(ctx, &t, 1, &done);
        if (st != EDDY_STATUS_OK) return st;
        if (out != NULL) out[i] = t;
        if (print) fwrite(piece, 1, len, stdout);
    }
    return EDDY_STATUS_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    pool = malloc(POOL_BYTES);
    if (pool == NULL) return 1;

    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);
    eddy_context_params cp = eddy_context_default_params();
    cp.n_sink = 4;
    cp.n_window = 64;
    cp.n_batch = 32;
    eddy_sampler *smp = NULL;
    st = eddy_sampler_new(model, NULL, &smp); /* defaults: greedy */
    if (st != EDDY_STATUS_OK) return fail("eddy_sampler_new", st);
    eddy_token prompt[64];
    size_t n_prompt = 0;
    const char *text = "Once upon a time, in a lighthouse by the sea,";
    st = eddy_tokenize(model, text, strlen(text), true, true, prompt, 64, &n_prompt);
    if (st != EDDY_STATUS_OK) return fail("eddy_tokenize", st);

    size_t need = 0;
    st = eddy_context_memory_required(model, &cp, &need);
    if (st != EDDY_STATUS_OK) return fail("eddy_context_memory_required", st);
    void *arena = pool_take(need, EDDY_CONTEXT_ALIGN);
    if (arena == NULL) {
        fprintf(stderr, "static_arena: the pool of %u bytes cannot hold %zu\n", POOL_BYTES, need);
        return 1;
    }
    printf("static_arena: context needs %zu bytes (4 sinks + 64-token window)\n", need);

    /* From here on libeddy may not allocate. */
    counting = 1;
    eddy_context *ctx = NULL;
    st = eddy_context_new_in(model, &cp, arena, need, &ctx);
    if (st != EDDY_STATUS_OK) return fail("eddy_context_new_in", st);
    size_t done = 0;
    st = eddy_decode(ctx, prompt, n_prompt, &done);
    if (st != EDDY_STATUS_OK) return fail("eddy_decode", st);
    fwrite(text, 1, strlen(text), stdout);
    st = greedy(ctx, smp, model, 300, NULL, 1);
    if (st != EDDY_STATUS_OK) return fail("generation", st);
    printf("\n");

    /* Save the stream into application memory, continue it, restore it, continue again. */
    size_t state_len = eddy_context_state_size(ctx), wrote = 0;
    void *state = pool_take(state_len, 16);
    if (state == NULL) return fail("pool_take(state)", EDDY_STATUS_BUFFER_TOO_SMALL);
    st = eddy_context_state_save(ctx, state, state_len, &wrote);
    if (st != EDDY_STATUS_OK) return fail("eddy_context_state_save", st);
    eddy_token first[24], again[24];
    st = greedy(ctx, smp, model, 24, first, 0);
    if (st == EDDY_STATUS_OK) st = eddy_context_state_load(ctx, state, wrote);
    if (st == EDDY_STATUS_OK) st = greedy(ctx, smp, model, 24, again, 0);
    if (st != EDDY_STATUS_OK) return fail("save/continue/restore", st);
    counting = 0;

    int same = memcmp(first, again, sizeof first) == 0;
    unsigned long long seen = eddy_context_n_seen(ctx);
    printf("static_arena: %llu tokens streamed, state of %zu bytes restored: continuation %s\n",
           seen, wrote, same ? "identical" : "DIFFERENT");
    printf("static_arena: %ld allocations and %ld frees by the library after the arena was "
           "handed in\n",
           n_allocs, n_frees);
    eddy_context_free(ctx); /* releases the model reference; the arena is ours again */
    eddy_sampler_free(smp);
    eddy_model_free(model);
    free(pool);
    return (same && n_allocs == 0 && n_frees == 0 && seen > 3 * 64) ? 0 : 1;
}
