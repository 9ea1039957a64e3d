/*
 * json_output.c: output that must parse. The model's chat format asks for a record, a JSON
 * schema constrains the reply (eddy_sampler_set_constraint), and a sampler at temperature 0.9
 * draws it once per seed: every reply is one JSON object valid under the schema, printed one
 * per line. A broken schema is refused before anything is decoded.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/json_output.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o json_output
 *   ./json_output models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf 4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy.h"

static const char SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"name\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 24},"
    "  \"age\": {\"type\": \"integer\", \"minimum\": 18, \"maximum\": 99},"
    "  \"role\": {\"enum\": [\"engineer\", \"designer\", \"manager\"]},"
    "  \"skills\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 16},"
    "              \"minItems\": 1, \"maxItems\": 3},"
    "  \"remote\": {\"type\": \"boolean\"}},"
    " \"required\": [\"name\", \"age\", \"role\", \"skills\", \"remote\"],"
    " \"additionalProperties\": false}";

/* The reply, gathered piece by piece; newlines become spaces so that each reply is one line. */
typedef struct {
    char text[4096];
    size_t len;
} reply;

static bool gather(const char *piece, size_t len, void *user_data) {
    reply *r = user_data;
    for (size_t i = 0; i < len && r->len + 1 < sizeof r->text; i++) {
        r->text[r->len++] = piece[i] == '\n' ? ' ' : piece[i];
    }
    return true;
}

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "json_output: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf N_SEEDS\n", argv[0]);
        return 2;
    }
    unsigned n_seeds = (unsigned)strtoul(argv[2], NULL, 10);
    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);

    /* The request, in the model's own chat format. */
    eddy_chat_message msg = {"user", "Describe a fictional employee of a small software company as JSON."};
    size_t len = 0;
    st = eddy_chat_apply_template(model, NULL, &msg, 1, NULL, true, NULL, 0, &len);
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) return fail("eddy_chat_apply_template", st);
    char *prompt = malloc(len);
    st = eddy_chat_apply_template(model, NULL, &msg, 1, NULL, true, prompt, len, &len);
    if (st != EDDY_STATUS_OK) return fail("eddy_chat_apply_template", st);

    eddy_sampler_params sp = eddy_sampler_default_params();
    sp.temperature = 0.9f;
    eddy_sampler *sampler = NULL;
    st = eddy_sampler_new(model, &sp, &sampler);
    if (st != EDDY_STATUS_OK) return fail("eddy_sampler_new", st);

    /* A broken schema is refused with a reason, and the sampler stays as it was. */
    const char *broken = "{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 2}";
    st = eddy_sampler_set_constraint(sampler, model, EDDY_CONSTRAINT_JSON_SCHEMA, broken,
                                     strlen(broken));
    if (st != EDDY_STATUS_INVALID_CONSTRAINT) {
        fprintf(stderr, "json_output: a broken schema gave status %d\n", (int)st);
        return 1;
    }
    fprintf(stderr, "json_output: broken schema refused: %s\n", eddy_last_error());
    eddy_sampler_free(sampler);

    eddy_context_params cp = eddy_context_default_params();
    cp.n_window = 512;
    for (unsigned seed = 0; seed < n_seeds; seed++) {
        eddy_context *ctx = NULL;
        st = eddy_context_new(model, &cp, &ctx);
        if (st != EDDY_STATUS_OK) return fail("eddy_context_new", st);
        /* One sampler per seed (the seed is a parameter); the constraint compiles against
           tables built once per model, and restarts with each eddy_generate. */
        sp.seed = seed;
        eddy_sampler *s = NULL;
        st = eddy_sampler_new(model, &sp, &s);
        if (st != EDDY_STATUS_OK) return fail("eddy_sampler_new", st);
        st = eddy_sampler_set_constraint(s, model, EDDY_CONSTRAINT_JSON_SCHEMA, SCHEMA,
                                         strlen(SCHEMA));
        if (st != EDDY_STATUS_OK) return fail("eddy_sampler_set_constraint", st);
        reply r = {.len = 0};
        size_t n = 0;
        st = eddy_generate(ctx, s, prompt, len, true, 256, gather, &r, &n);
        if (st != EDDY_STATUS_OK) return fail("eddy_generate", st);
        r.text[r.len] = '\0';
        printf("%s\n", r.text);
        fprintf(stderr, "json_output: seed %u, %zu tokens\n", seed, n);
        eddy_sampler_free(s);
        eddy_context_free(ctx);
    }
    eddy_model_free(model);
    free(prompt);
    return 0;
}
