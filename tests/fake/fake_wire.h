/*
 * fake_wire.h - the OpenAI, Anthropic and Gemini wire formats of the fake
 * LLM upstream: reading what a request asks for, and writing replies,
 * stream events, errors, embeddings and model lists.
 *
 * 1. Pure functions of their arguments that append to an ap_buf_t: no
 *    network, no threads, no globals, so the server (fake_upstream.c) can
 *    call them from any thread.
 * 2. Written by hand rather than through a JSON DOM: a reply is a handful of
 *    appends into one buffer, which keeps the fake far faster than whatever
 *    it is benchmarked against.  Output buffers have no maximum (their size
 *    is bounded by what is written) and ap_realloc aborts on out-of-memory,
 *    so appends cannot fail.
 */
#ifndef FAKE_WIRE_H
#define FAKE_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define FAKE_MAX_CHUNKS 100000
#define FAKE_MAX_DIMS   8192
#define FAKE_ECHO_CHARS 40 /* the default reply echoes this many characters */

typedef enum { FAKE_OPENAI, FAKE_ANTHROPIC, FAKE_GEMINI } fake_proto_t;

/* One answer to a chat request, in protocol-neutral form. */
typedef struct {
    fake_proto_t proto;
    char *model;     /* owned */
    char *content;   /* owned: the reply text, or the tool arguments (a JSON object) */
    char *tool_name; /* owned; NULL unless the reply is a tool call */
    bool include_usage;
    long prompt_tokens, completion_tokens;
    unsigned long long n; /* makes ids unique */
    long long created;
} fake_chat_t;

/* A chat answer cut into content pieces for streaming. */
typedef struct {
    fake_chat_t chat;
    bool gemini_sse; /* Gemini: SSE framing; otherwise one JSON array */
    bool malformed;  /* the first content event's JSON is cut in half */
    size_t *cuts;    /* owned: piece i is chat.content[cuts[i], cuts[i + 1]) */
    size_t npieces;
} fake_stream_t;

/* JSON writing. */
void fake_put(ap_buf_t *b, const char *s, size_t n);
#define FAKE_PUTS(b, lit) fake_put((b), (lit), sizeof(lit) - 1)
void fake_put_str(ap_buf_t *b, const char *s);
void fake_put_num(ap_buf_t *b, long long v);
/* A JSON string literal, quotes included; bytes >= 0x80 pass through. */
void fake_put_jstr(ap_buf_t *b, const char *s, size_t n);
uint64_t fake_hash(const void *p, size_t n); /* FNV-1a */

/* Fills c from a chat request body.  path_model: the Gemini model from the
 * URL (NULL: "model" from the body).  reply / tool_call: the x-fake-reply
 * and x-fake-tool-call headers or NULL.  False, with *why, when tool_call is
 * not <name>:<json object>; c is then empty.  Free with fake_chat_free. */
bool fake_chat_init(fake_chat_t *c, fake_proto_t p, const char *path_model, json_t *body, const char *reply,
                    const char *tool_call, unsigned long long n, const char **why);
void fake_chat_free(fake_chat_t *c);
/* The non-streaming reply body. */
void fake_render_chat(ap_buf_t *b, const fake_chat_t *c);

/* Takes c (s->chat = *c) and cuts its content: `chunks` near-equal pieces
 * by characters (0: one per word for text, three for tool arguments; a
 * Gemini function call is always one piece). */
void fake_stream_init(fake_stream_t *s, fake_chat_t *c, long chunks);
void fake_stream_free(fake_stream_t *s);
/* What comes before the first piece (OpenAI role chunk; Anthropic
 * message_start, content_block_start, ping; Gemini nothing). */
void fake_stream_preamble(const fake_stream_t *s, ap_buf_t *out);
void fake_stream_piece(const fake_stream_t *s, size_t i, ap_buf_t *out);
/* The terminator (finish chunk, usage, [DONE]; content_block_stop,
 * message_delta, message_stop; the finishReason chunk). */
void fake_stream_end(const fake_stream_t *s, ap_buf_t *out);
const char *fake_stream_ctype(fake_proto_t p, bool gemini_sse);

/* The status an injected error uses: status if >= 400, else the one that
 * goes with code (x-fake-error-code), else 400 with a code, 500 without. */
int fake_error_status(long status, const char *code);
/* An error body in the protocol's shape.  code: x-fake-error-code or NULL;
 * msg: replaces the default message when not NULL. */
void fake_render_error(ap_buf_t *b, fake_proto_t p, int status, const char *code, const char *msg,
                       unsigned long long n);

/* Embedding responses; dims > 0 overrides the request's dimensions.  False,
 * with *why, on a request without input (answer 400). */
bool fake_openai_embeddings(ap_buf_t *b, json_t *body, long dims, const char **why);
bool fake_gemini_embeddings(ap_buf_t *b, json_t *body, bool batch, long dims, const char **why);

/* A model list; ids: comma-separated (x-fake-models) or NULL for defaults. */
void fake_render_models(ap_buf_t *b, fake_proto_t p, const char *ids);

#endif
