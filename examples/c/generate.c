/*
 * generate.c: load a model, tokenize a prompt, stream a greedy continuation.
 * Prints exactly what `eddy generate -m MODEL -p PROMPT -n N --temp 0` prints on stdout.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/generate.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o generate
 *   ./generate models/SmolLM2-135M-Instruct.Q4_1.gguf "The capital of France is" 32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy.h"

/* Receives whole UTF-8 pieces as they are generated; returning false would stop. */
static bool print_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "generate: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_PREDICT\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    size_t n_predict = (size_t)strtoul(argv[3], NULL, 10);

    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);

    /* Tokenize: ask for the size first, then fill a buffer of that size. */
    size_t n_tokens = 0;
    st = eddy_tokenize(model, prompt, strlen(prompt), true, true, NULL, 0, &n_tokens);
    if (st != EDDY_STATUS_OK && st != EDDY_STATUS_BUFFER_TOO_SMALL) {
        eddy_model_free(model);
        return fail("eddy_tokenize", st);
    }
    eddy_token *tokens = malloc(n_tokens * sizeof *tokens + 1);
    st = eddy_tokenize(model, prompt, strlen(prompt), true, true, tokens, n_tokens, &n_tokens);
    if (st != EDDY_STATUS_OK) {
        free(tokens);
        eddy_model_free(model);
        return fail("eddy_tokenize", st);
    }
    fprintf(stderr, "generate: %s model, %u-token vocabulary, prompt of %zu tokens\n",
            eddy_model_arch(model), (unsigned)eddy_model_n_vocab(model), n_tokens);
    free(tokens);

    /* A context with the default arena: 4 sinks + a window of the model's context. */
    eddy_context_params cparams = eddy_context_default_params();
    eddy_context *ctx = NULL;
    st = eddy_context_new(model, &cparams, &ctx);
    if (st != EDDY_STATUS_OK) {
        eddy_model_free(model);
        return fail("eddy_context_new", st);
    }
    /* The context holds its own reference to the model: the model handle can go now. */
    eddy_model_free(model);

    /* NULL sampler: greedy. */
    size_t n_generated = 0;
    st = eddy_generate(ctx, NULL, prompt, strlen(prompt), true, n_predict, print_piece, NULL,
                       &n_generated);
    printf("\n");
    if (st != EDDY_STATUS_OK) {
        eddy_context_free(ctx);
        return fail("eddy_generate", st);
    }
    fprintf(stderr, "generate: %zu tokens generated, %llu in the context\n", n_generated,
            (unsigned long long)eddy_context_n_seen(ctx));
    eddy_context_free(ctx);
    return 0;
}
