/*
 * abi_errors.c: calls the C API with NULL and garbage arguments and checks that each call
 * returns its documented status, leaves its outputs untouched, sets a message and never
 * crashes. Run by CI; exits 0 when every check passes.
 *
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/abi_errors.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o abi_errors
 *   ./abi_errors models/SmolLM2-135M-Instruct.Q4_1.gguf
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy.h"

static int failures = 0;
static int checks = 0;

/* Checks that `got` is `want` and that a failure left a non-empty message. */
static void expect(int line, const char *what, eddy_status got, eddy_status want) {
    checks++;
    const char *msg = eddy_last_error();
    if (got != want) {
        fprintf(stderr, "FAIL line %d: %s returned %d, expected %d (last error: %s)\n", line,
                what, (int)got, (int)want, msg);
        failures++;
    } else if (want != EDDY_STATUS_OK && (msg == NULL || msg[0] == '\0')) {
        fprintf(stderr, "FAIL line %d: %s failed without a message\n", line, what);
        failures++;
    } else if (want != EDDY_STATUS_OK) {
        printf("ok  %-58s -> %d: %s\n", what, (int)got, msg);
    }
}

static void check(int line, const char *what, int cond) {
    checks++;
    if (!cond) {
        fprintf(stderr, "FAIL line %d: %s\n", line, what);
        failures++;
    }
}

#define EXPECT(call, want) expect(__LINE__, #call, (call), (want))
#define CHECK(cond) check(__LINE__, #cond, (cond))

static eddy_model *const SENTINEL_MODEL = (eddy_model *)(uintptr_t)0x1234;

static int abort_polls = 0;
static int abort_after = 0;
/* Abort callback: lets `abort_after` batches through, then asks to stop. */
static bool abort_cb(void *user_data) {
    (void)user_data;
    return ++abort_polls > abort_after;
}

static int log_calls = 0;
static void log_cb(eddy_log_level level, const char *message, void *user_data) {
    (void)user_data;
    if (level >= EDDY_LOG_ERROR && level <= EDDY_LOG_TRACE && message != NULL) log_calls++;
}

static void write_file(const char *path, const void *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fwrite(bytes, 1, len, f);
    fclose(f);
}

static void test_without_model(void) {
    eddy_model *m = SENTINEL_MODEL;
    EXPECT(eddy_model_load(NULL, &m), EDDY_STATUS_NULL_POINTER);
    CHECK(m == SENTINEL_MODEL);
    EXPECT(eddy_model_load("/nonexistent/eddy/model.gguf", NULL), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_model_load("/nonexistent/eddy/model.gguf", &m), EDDY_STATUS_IO);
    CHECK(m == SENTINEL_MODEL);
    EXPECT(eddy_model_load("/", &m), EDDY_STATUS_IO);
    CHECK(m == SENTINEL_MODEL);

    /* Hostile and garbage files. */
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/eddy_abi_errors_%ld.gguf", dir, (long)rand());
    write_file(path, "", 0);
    EXPECT(eddy_model_load(path, &m), EDDY_STATUS_INVALID_MODEL);
    write_file(path, "this is not a model", 19);
    EXPECT(eddy_model_load(path, &m), EDDY_STATUS_INVALID_MODEL);
    /* GGUF v3 claiming 2^60 tensors and 2^60 metadata entries in a 24-byte file. */
    const unsigned char huge_counts[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0,
                                           0,   0,   0,   16,  0, 0, 0, 0, 0, 0, 0, 16};
    write_file(path, huge_counts, sizeof huge_counts);
    EXPECT(eddy_model_load(path, &m), EDDY_STATUS_INVALID_MODEL);
    /* One metadata entry whose key claims to be 2^63 bytes long. */
    const unsigned char long_key[32] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        1,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128};
    write_file(path, long_key, sizeof long_key);
    EXPECT(eddy_model_load(path, &m), EDDY_STATUS_INVALID_MODEL);
    remove(path);
    CHECK(m == SENTINEL_MODEL);

    EXPECT(eddy_model_load_from_buffer(NULL, 10, &m), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_model_load_from_buffer(huge_counts, 0, &m), EDDY_STATUS_INVALID_MODEL);
    EXPECT(eddy_model_load_from_buffer(huge_counts, sizeof huge_counts, &m),
           EDDY_STATUS_INVALID_MODEL);
    EXPECT(eddy_model_load_from_buffer(huge_counts, sizeof huge_counts, NULL),
           EDDY_STATUS_NULL_POINTER);
    CHECK(m == SENTINEL_MODEL);

    /* Getters and frees with NULL handles. */
    CHECK(eddy_model_n_vocab(NULL) == 0);
    CHECK(eddy_model_n_ctx_train(NULL) == 0);
    CHECK(eddy_model_arch(NULL) == NULL);
    CHECK(eddy_model_token_bos(NULL) == EDDY_TOKEN_NONE);
    CHECK(eddy_model_token_eos(NULL) == EDDY_TOKEN_NONE);
    CHECK(eddy_model_token_eot(NULL) == EDDY_TOKEN_NONE);
    CHECK(!eddy_model_token_is_eog(NULL, 0));
    CHECK(eddy_context_n_seen(NULL) == 0);
    CHECK(eddy_context_n_window(NULL) == 0);
    eddy_model_free(NULL);
    eddy_context_free(NULL);
    eddy_sampler_free(NULL);
    eddy_context_reset(NULL);
    eddy_sampler_reset(NULL);

    size_t n = 99;
    eddy_token tok[4] = {0};
    eddy_context *ctx = NULL;
    eddy_sampler *smp = NULL;
    EXPECT(eddy_tokenize(NULL, "hi", 2, true, true, tok, 4, &n), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_context_new(NULL, NULL, &ctx), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_sampler_new(NULL, NULL, &smp), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_decode(NULL, tok, 1, &n), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_generate(NULL, NULL, "hi", 2, true, 4, NULL, NULL, &n), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_context_set_abort_callback(NULL, abort_cb, NULL), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_set_log_callback(log_cb, NULL, 99), EDDY_STATUS_INVALID_ARGUMENT);
    CHECK(n == 99 && ctx == NULL && smp == NULL);

    /* The last error, copied into a caller's buffer. */
    EXPECT(eddy_model_load(NULL, &m), EDDY_STATUS_NULL_POINTER);
    size_t need = 0;
    EXPECT(eddy_last_error_copy(NULL, 0, &need), EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(need == strlen(eddy_last_error()) + 1);
    char small[4] = {'x', 'x', 'x', 'x'};
    EXPECT(eddy_last_error_copy(small, sizeof small, &n), EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(small[0] == 'x');
    char *msg = malloc(need);
    EXPECT(eddy_last_error_copy(msg, need, &n), EDDY_STATUS_OK);
    CHECK(n == need - 1 && strcmp(msg, eddy_last_error()) == 0);
    EXPECT(eddy_last_error_copy(NULL, 5, &n), EDDY_STATUS_NULL_POINTER);
    free(msg);
}

static void test_with_model(const char *model_path) {
    CHECK(eddy_set_log_callback(log_cb, NULL, EDDY_LOG_INFO) == EDDY_STATUS_OK);
    eddy_model *model = NULL;
    EXPECT(eddy_model_load(model_path, &model), EDDY_STATUS_OK);
    if (model == NULL) return;
    CHECK(log_calls > 0);
    CHECK(eddy_set_log_callback(NULL, NULL, EDDY_LOG_OFF) == EDDY_STATUS_OK);
    uint32_t n_vocab = eddy_model_n_vocab(model);
    CHECK(n_vocab > 0);
    CHECK(strcmp(eddy_model_arch(model), "llama") == 0);

    /* Truncated copy of a real model. */
    FILE *f = fopen(model_path, "rb");
    unsigned char *head = malloc(65536);
    size_t got = fread(head, 1, 65536, f);
    fclose(f);
    eddy_model *m2 = SENTINEL_MODEL;
    EXPECT(eddy_model_load_from_buffer(head, got, &m2), EDDY_STATUS_INVALID_MODEL);
    CHECK(m2 == SENTINEL_MODEL);
    free(head);

    /* Metadata. */
    size_t n = 77;
    EXPECT(eddy_model_meta_str(model, "no.such.key", NULL, 0, &n), EDDY_STATUS_NOT_FOUND);
    CHECK(n == 77);
    EXPECT(eddy_model_meta_str(model, NULL, NULL, 0, &n), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_model_chat_template(model, NULL, 0, &n), EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > 1);
    EXPECT(eddy_model_chat_template(model, NULL, 0, NULL), EDDY_STATUS_NULL_POINTER);

    /* Tokenize: too small, size query, exact size, bad UTF-8, NULL text. */
    const char *text = "Hello, world! Bonjour à tous.";
    eddy_token toks[64];
    for (int i = 0; i < 64; i++) toks[i] = 0xdead;
    n = 0;
    EXPECT(eddy_tokenize(model, text, strlen(text), true, true, toks, 1, &n),
           EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > 1 && n < 64 && toks[0] == 0xdead);
    size_t need = n;
    EXPECT(eddy_tokenize(model, text, strlen(text), true, true, NULL, 0, &n),
           EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == need);
    EXPECT(eddy_tokenize(model, text, strlen(text), true, true, toks, need, &n), EDDY_STATUS_OK);
    CHECK(n == need && toks[0] != 0xdead);
    EXPECT(eddy_tokenize(model, "\xff\xfe", 2, true, true, toks, 64, &n),
           EDDY_STATUS_INVALID_UTF8);
    EXPECT(eddy_tokenize(model, NULL, 3, true, true, toks, 64, &n), EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_tokenize(model, text, strlen(text), true, true, NULL, 8, &n),
           EDDY_STATUS_NULL_POINTER);
    EXPECT(eddy_tokenize(model, "", 0, false, false, NULL, 0, &n), EDDY_STATUS_OK);
    CHECK(n == 0);

    /* Token pieces. */
    char piece[64];
    EXPECT(eddy_token_to_piece(model, n_vocab, false, piece, sizeof piece, &n),
           EDDY_STATUS_INVALID_TOKEN);
    EXPECT(eddy_token_to_piece(model, EDDY_TOKEN_NONE, false, piece, sizeof piece, &n),
           EDDY_STATUS_INVALID_TOKEN);
    EXPECT(eddy_token_to_piece(model, toks[1], false, piece, 0, &n),
           EDDY_STATUS_BUFFER_TOO_SMALL);
    EXPECT(eddy_token_to_piece(model, toks[1], false, piece, sizeof piece, &n), EDDY_STATUS_OK);
    eddy_token bad[2] = {1, 0x7fffffff};
    EXPECT(eddy_detokenize(model, bad, 2, false, false, piece, sizeof piece, &n),
           EDDY_STATUS_INVALID_TOKEN);
    EXPECT(eddy_detokenize(model, toks, need, true, false, piece, 2, &n),
           EDDY_STATUS_BUFFER_TOO_SMALL);

    /* Context parameters. */
    eddy_context *ctx = NULL;
    eddy_context_params p = eddy_context_default_params();
    p.size = 3;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    p = eddy_context_default_params();
    p.kv_type = 7;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    p = eddy_context_default_params();
    p.kv_type_v = 4;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    p = eddy_context_default_params();
    p.n_batch = 0;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    p = eddy_context_default_params();
    /* A bool field holding a byte other than 0 or 1 (e.g. from memset). */
    ((unsigned char *)&p)[offsetof(eddy_context_params, logits_all)] = 0xff;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    p = eddy_context_default_params();
    p.n_window = 0xffffffffu;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_INVALID_ARGUMENT);
    EXPECT(eddy_context_new(model, NULL, NULL), EDDY_STATUS_NULL_POINTER);
    CHECK(ctx == NULL);
    p = eddy_context_default_params();
    p.n_sink = 4;
    p.n_window = 32;
    p.n_batch = 4;
    EXPECT(eddy_context_new(model, &p, &ctx), EDDY_STATUS_OK);
    if (ctx == NULL) return;

    /* Logits before any decode. */
    const float *logits = NULL;
    size_t n_logits = 0;
    EXPECT(eddy_context_logits(ctx, &logits, &n_logits), EDDY_STATUS_NO_LOGITS);
    CHECK(logits == NULL && n_logits == 0);

    /* Decode: bad ids (nothing consumed), zero length, NULL tokens. */
    eddy_token with_bad[3] = {toks[0], n_vocab + 5, toks[1]};
    n = 55;
    EXPECT(eddy_decode(ctx, with_bad, 3, &n), EDDY_STATUS_INVALID_TOKEN);
    CHECK(n == 55 && eddy_context_n_seen(ctx) == 0);
    EXPECT(eddy_decode(ctx, toks, 0, &n), EDDY_STATUS_INVALID_ARGUMENT);
    EXPECT(eddy_decode(ctx, NULL, 3, &n), EDDY_STATUS_NULL_POINTER);
    CHECK(eddy_context_n_seen(ctx) == 0);

    /* Abort during a long prefill: batches of 4, the callback lets 2 through. */
    eddy_token many[10];
    for (int i = 0; i < 10; i++) many[i] = toks[i % need];
    abort_polls = 0;
    abort_after = 2;
    CHECK(eddy_context_set_abort_callback(ctx, abort_cb, NULL) == EDDY_STATUS_OK);
    EXPECT(eddy_decode(ctx, many, 10, &n), EDDY_STATUS_ABORTED);
    CHECK(n == 8 && eddy_context_n_seen(ctx) == 8);
    /* The context is usable: feed the rest. */
    CHECK(eddy_context_set_abort_callback(ctx, NULL, NULL) == EDDY_STATUS_OK);
    EXPECT(eddy_decode(ctx, many + 8, 2, &n), EDDY_STATUS_OK);
    CHECK(n == 2 && eddy_context_n_seen(ctx) == 10);

    /* Logits: borrowed, copied, too-small buffer, missing row. */
    EXPECT(eddy_context_logits(ctx, &logits, &n_logits), EDDY_STATUS_OK);
    CHECK(logits != NULL && n_logits == n_vocab);
    float few[3] = {-1, -1, -1};
    EXPECT(eddy_context_copy_logits(ctx, few, 3, &n), EDDY_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == n_vocab && few[0] == -1);
    EXPECT(eddy_context_logits_ith(ctx, 1, &logits, &n_logits), EDDY_STATUS_NO_LOGITS);
    EXPECT(eddy_context_logits(ctx, NULL, &n_logits), EDDY_STATUS_NULL_POINTER);

    /* Caller memory: NULL, too small (the message states the size), misaligned; nothing
     * written on failure. */
    {
        size_t need = 0;
        EXPECT(eddy_context_memory_required(model, &p, &need), EDDY_STATUS_OK);
        unsigned char *raw = malloc(need + 2 * EDDY_CONTEXT_ALIGN);
        CHECK(raw != NULL);
        if (raw != NULL) {
            unsigned char *mem = raw + (EDDY_CONTEXT_ALIGN - (uintptr_t)raw % EDDY_CONTEXT_ALIGN);
            memset(raw, 0x5a, need + 2 * EDDY_CONTEXT_ALIGN);
            eddy_context *c2 = NULL;
            EXPECT(eddy_context_new_in(model, &p, NULL, need, &c2), EDDY_STATUS_NULL_POINTER);
            EXPECT(eddy_context_new_in(model, &p, mem, need - 1, &c2),
                   EDDY_STATUS_BUFFER_TOO_SMALL);
            EXPECT(eddy_context_new_in(model, &p, mem + 8, need, &c2), EDDY_STATUS_MISALIGNED);
            EXPECT(eddy_context_new_in(model, &p, mem, need, NULL), EDDY_STATUS_NULL_POINTER);
            EXPECT(eddy_context_new_in(NULL, &p, mem, need, &c2), EDDY_STATUS_NULL_POINTER);
            CHECK(c2 == NULL && mem[0] == 0x5a && mem[need - 1] == 0x5a);
            EXPECT(eddy_context_new_in(model, &p, mem, need, &c2), EDDY_STATUS_OK);
            CHECK(c2 != NULL && (unsigned char *)c2 == mem && mem[need] == 0x5a);

            /* State: size query, too small, NULLs, garbage, another geometry. */
            size_t st_len = 0;
            EXPECT(eddy_context_state_save(ctx, NULL, 0, &st_len), EDDY_STATUS_BUFFER_TOO_SMALL);
            CHECK(st_len == eddy_context_state_size(ctx) && st_len > 0);
            EXPECT(eddy_context_state_save(NULL, NULL, 0, &st_len), EDDY_STATUS_NULL_POINTER);
            EXPECT(eddy_context_state_save(ctx, NULL, 0, NULL), EDDY_STATUS_NULL_POINTER);
            CHECK(eddy_context_state_size(NULL) == 0);
            unsigned char *st = malloc(st_len);
            CHECK(st != NULL);
            if (st != NULL) {
                size_t wrote = 0;
                EXPECT(eddy_context_state_save(ctx, st, st_len, &wrote), EDDY_STATUS_OK);
                CHECK(wrote == st_len);
                EXPECT(eddy_context_state_load(c2, st, st_len), EDDY_STATUS_OK);
                CHECK(eddy_context_n_seen(c2) == eddy_context_n_seen(ctx));
                EXPECT(eddy_context_state_load(c2, st, st_len - 1), EDDY_STATUS_INVALID_STATE);
                EXPECT(eddy_context_state_load(c2, NULL, st_len), EDDY_STATUS_NULL_POINTER);
                EXPECT(eddy_context_state_load(NULL, st, st_len), EDDY_STATUS_NULL_POINTER);
                st[st_len / 2] ^= 0x40;
                EXPECT(eddy_context_state_load(c2, st, st_len), EDDY_STATUS_INVALID_STATE);
                memset(st, 0xab, st_len);
                EXPECT(eddy_context_state_load(c2, st, st_len), EDDY_STATUS_INVALID_STATE);
                CHECK(eddy_context_n_seen(c2) == eddy_context_n_seen(ctx));
                free(st);
            }
            eddy_context_free(c2);
            /* Another window: the state of ctx does not fit. */
            eddy_context_params q = p;
            q.n_window = 33;
            eddy_context *c3 = NULL;
            EXPECT(eddy_context_new(model, &q, &c3), EDDY_STATUS_OK);
            size_t n3 = eddy_context_state_size(ctx);
            unsigned char *st3 = malloc(n3);
            if (c3 != NULL && st3 != NULL) {
                size_t w3 = 0;
                EXPECT(eddy_context_state_save(ctx, st3, n3, &w3), EDDY_STATUS_OK);
                EXPECT(eddy_context_state_load(c3, st3, w3), EDDY_STATUS_INVALID_STATE);
                CHECK(eddy_context_n_seen(c3) == 0);
            }
            free(st3);
            eddy_context_free(c3);
            free(raw);
        }
        static const unsigned char junk[12] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0xff, 0xff, 0, 0};
        eddy_model *m3 = SENTINEL_MODEL;
        EXPECT(eddy_model_load_from_buffer_nocopy(NULL, 10, &m3), EDDY_STATUS_NULL_POINTER);
        EXPECT(eddy_model_load_from_buffer_nocopy(junk, sizeof junk, &m3),
               EDDY_STATUS_INVALID_MODEL);
        CHECK(m3 == SENTINEL_MODEL);
    }

    /* Sampler: bad params, bad ids, wrong logits length. */
    eddy_sampler *smp = NULL;
    eddy_sampler_params sp = eddy_sampler_default_params();
    sp.temperature = NAN;
    EXPECT(eddy_sampler_new(model, &sp, &smp), EDDY_STATUS_INVALID_ARGUMENT);
    sp = eddy_sampler_default_params();
    sp.size = 0;
    EXPECT(eddy_sampler_new(model, &sp, &smp), EDDY_STATUS_INVALID_ARGUMENT);
    sp = eddy_sampler_default_params();
    sp.penalty_last_n = 0xffffffffu;
    EXPECT(eddy_sampler_new(model, &sp, &smp), EDDY_STATUS_INVALID_ARGUMENT);
    CHECK(smp == NULL);
    EXPECT(eddy_sampler_new(model, NULL, &smp), EDDY_STATUS_OK);
    EXPECT(eddy_sampler_accept(smp, n_vocab), EDDY_STATUS_INVALID_TOKEN);
    eddy_token next = 12345678;
    EXPECT(eddy_sampler_sample_logits(smp, few, 3, &next), EDDY_STATUS_INVALID_ARGUMENT);
    EXPECT(eddy_sampler_sample(smp, ctx, NULL), EDDY_STATUS_NULL_POINTER);
    CHECK(next == 12345678);
    EXPECT(eddy_sampler_sample(smp, ctx, &next), EDDY_STATUS_OK);
    CHECK(next < n_vocab);

    /* Generate: bad UTF-8 prompt; reset then an empty prompt has no logits to continue. */
    EXPECT(eddy_generate(ctx, smp, "\xc3", 1, false, 4, NULL, NULL, &n), EDDY_STATUS_INVALID_UTF8);
    eddy_context_reset(ctx);
    CHECK(eddy_context_n_seen(ctx) == 0);
    EXPECT(eddy_generate(ctx, smp, "", 0, false, 4, NULL, NULL, &n), EDDY_STATUS_NO_LOGITS);
    /* Abort right at the start of a generation's prefill. */
    abort_polls = 0;
    abort_after = 0;
    CHECK(eddy_context_set_abort_callback(ctx, abort_cb, NULL) == EDDY_STATUS_OK);
    n = 42;
    EXPECT(eddy_generate(ctx, smp, text, strlen(text), true, 4, NULL, NULL, &n),
           EDDY_STATUS_ABORTED);
    CHECK(n == 0 && eddy_context_n_seen(ctx) == 0);

    eddy_sampler_free(smp);
    eddy_context_free(ctx);
    eddy_model_free(model);
}

int main(int argc, char **argv) {
    test_without_model();
    if (argc > 1) {
        test_with_model(argv[1]);
    } else {
        printf("no model given: model-dependent checks skipped\n");
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
