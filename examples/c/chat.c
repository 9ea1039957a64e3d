/*
 * chat.c: a small terminal assistant in the model's own chat format. Each line on stdin is a
 * user turn; the reply streams to stdout.
 *
 * Every turn renders the whole conversation with eddy_chat_apply_template (the model's chat
 * template, or llama.cpp's built-in format for a file without one) and decodes only the text
 * after what the context already holds: the history is never re-processed. The context keeps
 * 4 attention sinks plus a window of recent tokens, so the conversation can go on for ever.
 *
 *   cargo build --release -p eddy-ffi
 *   cc -std=c99 -Wall -Wextra -Werror examples/c/chat.c -Iinclude \
 *      target/release/libeddy.a -lm -lpthread -ldl -o chat
 *   ./chat models/SmolLM2-135M-Instruct.Q4_1.gguf [WINDOW]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy.h"

#define MAX_REPLY 128
#define MAX_MESSAGES 512

/* A growing byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static bool text_append(text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) return false;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

/* Streams a piece of the reply to stdout and keeps it. */
static bool on_piece(const char *piece, size_t len, void *user_data) {
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return text_append((text_buf *)user_data, piece, len);
}

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "chat: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

/* The conversation rendered as a prompt that opens the assistant's turn (malloc'd), or NULL. */
static char *render(const eddy_model *model, const eddy_chat_message *msgs, size_t n,
                    size_t *out_len) {
    size_t need = 0;
    eddy_status st = eddy_chat_apply_template(model, NULL, msgs, n, NULL, true, NULL, 0, &need);
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) {
        fail("eddy_chat_apply_template", st);
        return NULL;
    }
    char *text = malloc(need);
    if (text == NULL) return NULL;
    st = eddy_chat_apply_template(model, NULL, msgs, n, NULL, true, text, need, out_len);
    if (st != EDDY_STATUS_OK) {
        fail("eddy_chat_apply_template", st);
        free(text);
        return NULL;
    }
    return text;
}

/* Decodes text (control-token text parsed) after what the context holds. If the last reply
   ended with an end-of-generation token, that token is already in the context: the rendered
   end-of-turn marker that opens text is then skipped instead of being decoded twice. */
static eddy_status decode_text(eddy_context *ctx, const eddy_model *model, const char *text,
                               size_t len, bool add_special, bool skip_eog, size_t *n_decoded) {
    size_t n = 0;
    *n_decoded = 0;
    eddy_status st = eddy_tokenize(model, text, len, add_special, true, NULL, 0, &n);
    if (st == EDDY_STATUS_OK) return EDDY_STATUS_OK; /* nothing to decode */
    if (st != EDDY_STATUS_BUFFER_TOO_SMALL) return st;
    eddy_token *ids = malloc(n * sizeof *ids);
    if (ids == NULL) return EDDY_STATUS_OUT_OF_MEMORY;
    st = eddy_tokenize(model, text, len, add_special, true, ids, n, &n);
    size_t skip = skip_eog && n > 0 && eddy_model_token_is_eog(model, ids[0]) ? 1 : 0;
    if (st == EDDY_STATUS_OK && n > skip) {
        st = eddy_decode(ctx, ids + skip, n - skip, NULL);
        *n_decoded = n - skip;
    }
    free(ids);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.gguf [WINDOW]\n", argv[0]);
        return 2;
    }
    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);

    eddy_context_params cp = eddy_context_default_params();
    cp.n_sink = 4;
    cp.n_window = argc == 3 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1024;
    eddy_context *ctx = NULL;
    st = eddy_context_new(model, &cp, &ctx);
    if (st != EDDY_STATUS_OK) {
        eddy_model_free(model);
        return fail("eddy_context_new", st);
    }
    eddy_sampler_params sp = eddy_sampler_default_params();
    sp.temperature = 0.6f;
    sp.repeat_penalty = 1.1f;
    eddy_sampler *sampler = NULL;
    st = eddy_sampler_new(model, &sp, &sampler);
    if (st != EDDY_STATUS_OK) {
        eddy_context_free(ctx);
        eddy_model_free(model);
        return fail("eddy_sampler_new", st);
    }

    eddy_chat_message msgs[MAX_MESSAGES];
    size_t n_msgs = 0;
    msgs[n_msgs++] = (eddy_chat_message){"system", "You are a helpful assistant."};
    text_buf fed = {0};   /* the text the context has consumed */
    text_buf reply = {0}; /* the reply being generated */
    bool ended_with_eog = false;
    char line[2048];
    int rc = 0;
    while (rc == 0 && n_msgs + 2 <= MAX_MESSAGES && fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        char *user = malloc(strlen(line) + 1);
        if (user == NULL) break;
        strcpy(user, line);
        msgs[n_msgs++] = (eddy_chat_message){"user", user};
        printf("> %s\n", line);

        size_t len = 0;
        char *text = render(model, msgs, n_msgs, &len);
        if (text == NULL) {
            rc = 1;
            break;
        }
        /* Normally the rendering extends what the context holds. A template that rewrites
           earlier turns breaks that: start the context afresh from the whole rendering. */
        /* (fed.data is NULL before the first turn: memcmp must not see it, even for 0 bytes.) */
        if (fed.len > 0 && (len < fed.len || memcmp(text, fed.data, fed.len) != 0)) {
            fprintf(stderr, "[the template rewrote earlier turns: starting afresh]\n");
            eddy_context_reset(ctx);
            eddy_sampler_reset(sampler);
            fed.len = 0;
            ended_with_eog = false;
        }
        size_t n_prompt = 0;
        st = decode_text(ctx, model, text + fed.len, len - fed.len, fed.len == 0, ended_with_eog,
                         &n_prompt);
        fed.len = 0;
        bool ok = text_append(&fed, text, len);
        free(text);
        if (st != EDDY_STATUS_OK || !ok) {
            rc = ok ? fail("decode", st) : 1;
            break;
        }

        /* An empty prompt: generate from the logits the prompt left. */
        reply.len = 0;
        size_t n_generated = 0;
        st = eddy_generate(ctx, sampler, "", 0, false, MAX_REPLY, on_piece, &reply, &n_generated);
        printf("\n");
        if (st != EDDY_STATUS_OK) {
            rc = fail("eddy_generate", st);
            break;
        }
        ended_with_eog = n_generated < MAX_REPLY;
        char *answer = malloc(reply.len + 1);
        if (answer == NULL || !text_append(&fed, reply.data ? reply.data : "", reply.len)) {
            free(answer);
            rc = 1;
            break;
        }
        memcpy(answer, reply.data ? reply.data : "", reply.len + 1);
        msgs[n_msgs++] = (eddy_chat_message){"assistant", answer};
        fprintf(stderr, "[turn %zu: %zu new prompt tokens, %zu generated; %llu tokens streamed, window %zu]\n",
                n_msgs / 2, n_prompt, n_generated, (unsigned long long)eddy_context_n_seen(ctx),
                eddy_context_n_window(ctx));
    }
    for (size_t i = 1; i < n_msgs; i++) free((void *)msgs[i].content);
    free(fed.data);
    free(reply.data);
    eddy_sampler_free(sampler);
    eddy_context_free(ctx);
    eddy_model_free(model);
    return rc;
}
