/*
 * chat.c: a small terminal assistant. Each line on stdin is a user turn; the reply streams to
 * stdout. The context keeps 4 attention sinks plus a window of recent tokens, so the
 * conversation can go on for ever: old turns fall out of the window, nothing is re-processed.
 * Knows the ChatML (<|im_start|>, SmolLM2, Qwen) and Gemma (<start_of_turn>) chat formats,
 * chosen from the model's chat template.
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

static bool print_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what, eddy_status st) {
    fprintf(stderr, "chat: %s failed (status %d): %s\n", what, (int)st, eddy_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.gguf [WINDOW]\n", argv[0]);
        return 2;
    }
    eddy_model *model = NULL;
    eddy_status st = eddy_model_load(argv[1], &model);
    if (st != EDDY_STATUS_OK) return fail("eddy_model_load", st);

    /* The chat format, from the template's markers. */
    size_t len = 0;
    char *tmpl = NULL;
    st = eddy_model_chat_template(model, NULL, 0, &len);
    if (st == EDDY_STATUS_BUFFER_TOO_SMALL) {
        tmpl = malloc(len);
        st = eddy_model_chat_template(model, tmpl, len, &len);
    }
    if (st != EDDY_STATUS_OK) {
        eddy_model_free(model);
        free(tmpl);
        return fail("eddy_model_chat_template", st);
    }
    /* first: what starts the conversation; end: the end-of-turn marker, which the model
       generates (and eddy_generate decodes into the context) unless the reply was cut. */
    const char *user_fmt, *first, *end;
    if (strstr(tmpl, "<|im_start|>") != NULL) {
        first = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
        end = "<|im_end|>";
        user_fmt = "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n";
    } else if (strstr(tmpl, "<start_of_turn>") != NULL) {
        first = "";
        end = "<end_of_turn>";
        user_fmt = "<start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n";
    } else {
        fprintf(stderr, "chat: unknown chat format in the model's template\n");
        free(tmpl);
        eddy_model_free(model);
        return 1;
    }
    free(tmpl);

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
    eddy_model_free(model); /* the context keeps what it needs */
    if (st != EDDY_STATUS_OK) {
        eddy_context_free(ctx);
        return fail("eddy_sampler_new", st);
    }

    char line[2048];
    char turn[4096];
    int n_turns = 0;
    bool cut = false;
    int rc = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        int n = snprintf(turn, sizeof turn, "%s%s%s", n_turns == 0 ? first : "",
                         cut ? end : "", n_turns == 0 ? "" : "\n");
        n += snprintf(turn + n, sizeof turn - (size_t)n, user_fmt, line);
        printf("> %s\n", line);
        size_t n_generated = 0;
        /* add_special on the first turn only: BOS (if the model wants one) starts the stream. */
        st = eddy_generate(ctx, sampler, turn, (size_t)n, n_turns == 0, MAX_REPLY, print_piece,
                           NULL, &n_generated);
        printf("\n");
        if (st != EDDY_STATUS_OK) {
            rc = fail("eddy_generate", st);
            break;
        }
        cut = n_generated == MAX_REPLY; /* (or ended exactly there: an extra marker is harmless) */
        n_turns++;
        fprintf(stderr, "[turn %d: %zu tokens; %llu tokens streamed, window %zu]\n", n_turns,
                n_generated, (unsigned long long)eddy_context_n_seen(ctx),
                eddy_context_n_window(ctx));
    }
    eddy_sampler_free(sampler);
    eddy_context_free(ctx);
    return rc;
}
