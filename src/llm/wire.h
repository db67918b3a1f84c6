/*
 * wire.h - translation between the internal representation (types.h) and
 * the wire protocols: OpenAI Chat Completions (and every OpenAI-compatible
 * provider), Anthropic Messages, Google Gemini generateContent.
 *
 * 1. Both directions for each protocol: the gateway parses a client's
 *    request and renders the answer in the client's protocol; a provider
 *    call renders the upstream request and parses the upstream answer.
 *    Tool definitions, tool calls and tool results translate both ways,
 *    in streams too.
 * 2. Streams: a decoder turns upstream bytes (SSE, or Gemini's SSE with
 *    alt=sse) into deltas; an encoder turns deltas into the client's
 *    stream events.  Both are stateful and arena-allocated; bytes may be
 *    fed in arbitrary pieces.
 * 3. Pure functions: no I/O, no globals; thread-safe on distinct arenas.
 * 4. Upstream errors map to ap_llm_errkind keeping the provider's message.
 */
#ifndef AP_LLM_WIRE_H
#define AP_LLM_WIRE_H

#include <jansson.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "llm/types.h"

typedef enum { AP_WIRE_OPENAI, AP_WIRE_ANTHROPIC, AP_WIRE_GEMINI } ap_wire_kind;

typedef struct {
    const char *base_url; /* e.g. "https://api.openai.com/v1", "http://127.0.0.1:PORT/v1" */
    const char *api_key;  /* or NULL (local servers) */
    const char *model;    /* the provider's own model id */
} ap_llm_target_t;

#define AP_WIRE_MAX_HEADERS 8

typedef struct {
    const char *url;
    const char *headers[AP_WIRE_MAX_HEADERS]; /* "Name: value" */
    int nheaders;
    const char *body; /* JSON text */
    size_t len;
} ap_http_call_t;

/* --- client side (the gateway) --- */

/* Parses a client request body (OpenAI chat.completions or Anthropic
 * messages; not Gemini) into req.  Errors name the offending field. */
ap_rc ap_wire_parse_request(ap_arena_t *a, ap_wire_kind client, json_t *body, ap_llm_req_t *req,
                            ap_err_t *err);
/* Renders a complete answer in the client's protocol (new reference). */
json_t *ap_wire_render_response(ap_wire_kind client, const ap_llm_resp_t *resp);
/* The same as compact JSON text (heap, free(); *len its length), written
 * directly without building JSON values where the shape allows (OpenAI
 * replies without tool calls); byte for byte what json_dumps of
 * ap_wire_render_response gives. */
char *ap_wire_render_response_text(ap_wire_kind client, const ap_llm_resp_t *resp, size_t *len);
/* An error body in the client's protocol, so SDKs raise their own error
 * types: OpenAI {"error":{"message","type","param","code"}}, Anthropic
 * {"type":"error","error":{"type","message"}} (new reference). */
json_t *ap_wire_render_error(ap_wire_kind client, int status, const char *code,
                             const char *message);
/* HTTP status a client should see for an upstream error kind. */
int ap_wire_error_status(ap_llm_errkind k);

/* --- provider side (upstream calls) --- */

ap_rc ap_wire_build_call(ap_arena_t *a, ap_wire_kind provider, const ap_llm_req_t *req,
                         const ap_llm_target_t *t, ap_http_call_t *out, ap_err_t *err);
/* Parses a non-streamed upstream reply.  status >= 400 or a malformed body
 * fill *lerr and return AP_ERR_UNAVAILABLE. retry_after: header value or NULL. */
ap_rc ap_wire_parse_reply(ap_arena_t *a, ap_wire_kind provider, int status,
                          const char *retry_after, const char *body, size_t len,
                          ap_llm_resp_t *resp, ap_llm_error_t *lerr);

/* --- streams --- */

typedef struct ap_llm_decoder ap_llm_decoder_t;
typedef void (*ap_llm_delta_fn)(void *ud, const ap_llm_delta_t *d);

ap_llm_decoder_t *ap_llm_decoder_new(ap_arena_t *a, ap_wire_kind provider);
/* Feeds upstream bytes; calls fn for each delta.  Returns AP_ERR_UNAVAILABLE
 * with *lerr on an error event or malformed data. */
ap_rc ap_llm_decoder_feed(ap_llm_decoder_t *d, const char *data, size_t len, ap_llm_delta_fn fn,
                          void *ud, ap_llm_error_t *lerr);
/* True once the stream's end was seen ([DONE], message_stop, final
 * candidate with finishReason). */
bool ap_llm_decoder_done(const ap_llm_decoder_t *d);

typedef struct ap_llm_encoder ap_llm_encoder_t;

/* id and model appear in every event; include_usage: OpenAI
 * stream_options.include_usage (a final chunk with usage). */
ap_llm_encoder_t *ap_llm_encoder_new(ap_arena_t *a, ap_wire_kind client, const char *id,
                                     const char *model, bool include_usage);
/* Appends the SSE bytes for one delta to out (the first call also emits
 * the stream preamble: Anthropic message_start). */
void ap_llm_encoder_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out);
/* Closes the stream: OpenAI "data: [DONE]", Anthropic content_block_stop,
 * message_delta (stop_reason, usage), message_stop. */
void ap_llm_encoder_finish(ap_llm_encoder_t *e, const ap_llm_usage_t *usage, ap_buf_t *out);
/* An error after the stream started (an error event in the protocol). */
void ap_llm_encoder_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out);

/* --- embeddings (OpenAI-style and Gemini) --- */

typedef struct {
    const char *model;
    const char **inputs;
    int ninputs;
    int dimensions; /* 0: model default */
    bool base64;    /* encoding_format "base64": little-endian float32, base64 (the OpenAI SDK's default) */
} ap_llm_embed_req_t;

typedef struct {
    float **vectors; /* ninputs vectors of dim floats */
    int nvectors, dim;
    ap_llm_usage_t usage;
    const char *model;
    bool base64; /* render each vector as base64 of little-endian float32 */
} ap_llm_embed_resp_t;

/* OpenAI embeddings request body → embed_req (client side). */
ap_rc ap_wire_parse_embed_request(ap_arena_t *a, json_t *body, ap_llm_embed_req_t *req,
                                  ap_err_t *err);
json_t *ap_wire_render_embed_response(const ap_llm_embed_resp_t *resp);
ap_rc ap_wire_build_embed_call(ap_arena_t *a, ap_wire_kind provider,
                               const ap_llm_embed_req_t *req, const ap_llm_target_t *t,
                               ap_http_call_t *out, ap_err_t *err);
ap_rc ap_wire_parse_embed_reply(ap_arena_t *a, ap_wire_kind provider, int status,
                                const char *retry_after, const char *body, size_t len,
                                ap_llm_embed_resp_t *resp, ap_llm_error_t *lerr);

#endif
