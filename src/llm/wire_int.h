/*
 * wire_int.h - private to src/llm/wire*.c: helpers shared by the protocol
 * files and the state of stream decoders and encoders.
 *
 * 1. wire.c dispatches every public function on ap_wire_kind to
 *    wire_openai.c, wire_anthropic.c or wire_gemini.c (embeddings:
 *    wire_embed.c); the protocol files know nothing of each other and meet
 *    only in the internal representation of types.h.
 * 2. Validation errors name the field by its JSON path
 *    ("messages[2].content[0].type") so a client can find it.
 */
#ifndef AP_LLM_WIRE_INT_H
#define AP_LLM_WIRE_INT_H

#include <stdarg.h>

#include "llm/sse.h"
#include "llm/wire.h"

/* ---- field tables: a type mask per field ---- */

enum {
    WT_STR = 1,
    WT_INT = 2,
    WT_NUM = 4, /* integer or real */
    WT_BOOL = 8,
    WT_OBJ = 16,
    WT_ARR = 32,
    WT_NULL = 64, /* null accepted, and treated as absent */
};

typedef struct {
    const char *name;
    unsigned types;
    bool required;
} wire_field_t;

/* Checks obj's keys against fields (unknown, type, required).  path is
 * the object's JSON path ("" at the top level). */
ap_rc wire_check(json_t *obj, const wire_field_t *fields, const char *path, ap_err_t *err);
/* "path.key" (or "key" at the top level) into buf. */
const char *wire_path(char *buf, size_t n, const char *path, const char *key);
const char *wire_path_i(char *buf, size_t n, const char *path, const char *key, size_t i);
/* Errors in the style of core/json.c, always AP_ERR_INVALID. */
ap_rc wire_err_type(ap_err_t *err, const char *field, const char *want, json_t *got);
ap_rc wire_err_value(ap_err_t *err, const char *field, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
ap_rc wire_err_missing(ap_err_t *err, const char *field);
const char *wire_json_type(json_t *v);
/* A member that is present and not null, else NULL. */
json_t *wire_get(json_t *obj, const char *key);
const char *wire_str(json_t *obj, const char *key);
/* Reads an optional number in [min, max] (inclusive). */
ap_rc wire_number(json_t *body, const char *key, double min, double max, double *out, bool *has,
                  ap_err_t *err);
/* Reads an optional integer >= min into *out (left alone when absent). */
ap_rc wire_int(json_t *body, const char *key, long long min, long long max, int *out,
               ap_err_t *err);
/* stop: a string, or an array of at most max strings. */
ap_rc wire_stop(ap_arena_t *a, json_t *v, const char *field, int max, ap_llm_req_t *req,
                ap_err_t *err);
/* Valid tool/function names: [A-Za-z0-9_-]{1,64} (shared by the three APIs). */
bool wire_tool_name_ok(const char *s);
/* Checks tool i's name (valid, not a repeat of tools 0..i-1; errors name
 * field "<path>.name") and fills req->tools[i]. */
ap_rc wire_set_tool(ap_arena_t *a, ap_llm_req_t *req, size_t i, const char *path,
                    const char *name, const char *description, json_t *parameters,
                    ap_err_t *err);

/* ---- strings and JSON ---- */

char *wire_dup(ap_arena_t *a, const char *s); /* NULL stays NULL */
/* A random id "prefix" + 24 letters and digits (ap_random). */
char *wire_id(ap_arena_t *a, const char *prefix);
#define WIRE_ID_MAX 48
void wire_id_buf(char *out, size_t n, const char *prefix);
/* json_string that never fails: NULL gives null, invalid UTF-8 is repaired. */
json_t *wire_jstr(const char *s);
/* Serialises v compactly into the arena; steals v. */
char *wire_dump(ap_arena_t *a, json_t *v, size_t *len);
/* Parses tool arguments; "" or only spaces give {}.  New reference or NULL
 * when the text is not a JSON object. */
json_t *wire_args_object(const char *args);
/* Arguments for a tool call rendered where an object is required: the
 * parsed object, or {} when the model produced something else. */
json_t *wire_args_or_empty(const char *args);
/* A string built piece by piece in the arena, in linear time (blocks
 * double; the abandoned ones are at most the final size). */
typedef struct {
    ap_arena_t *a;
    char *p;
    size_t len, cap;
} wire_sb_t;
void wire_sb_init(wire_sb_t *s, ap_arena_t *a);
/* Appends sep (when something came before) and text. */
void wire_sb_add(wire_sb_t *s, const char *sep, const char *text);
/* The string, or NULL when nothing was added. */
char *wire_sb_str(wire_sb_t *s);
/* "data:MIME;base64,DATA" → mime and data (arena), false when not one. */
bool wire_data_url(ap_arena_t *a, const char *url, char **mime, char **data);
/* Removes JSON Schema keys Gemini rejects; new reference. */
json_t *wire_gemini_schema(json_t *schema);

/* ---- building calls ---- */

void wire_header(ap_arena_t *a, ap_http_call_t *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *wire_url(ap_arena_t *a, const char *base, const char *suffix);
ap_rc wire_check_target(const ap_llm_target_t *t, ap_err_t *err);

/* ---- upstream errors ---- */

/* Copies up to sizeof lerr->message - 1 bytes of text, cut at a UTF-8
 * boundary, invalid bytes and control characters replaced. */
void wire_set_message(ap_llm_error_t *lerr, const char *text, size_t len);
/* Classifies an error from its HTTP status (0 in streams), the provider's
 * type / code strings and message; fills lerr.  Returns AP_ERR_UNAVAILABLE. */
ap_rc wire_fail(ap_llm_error_t *lerr, int status, const char *retry_after, const char *type,
                const char *code, const char *message);
/* Error reply bodies of any of the three shapes, or plain text. */
ap_rc wire_fail_body(ap_llm_error_t *lerr, int status, const char *retry_after, const char *body,
                     size_t len);
/* An error object of any of the three shapes inside an already parsed
 * value (stream events, 200 replies carrying an error); NULL-safe.
 * Returns AP_OK when v holds no error. */
ap_rc wire_fail_json(ap_llm_error_t *lerr, int status, const char *retry_after, json_t *v);
/* Milliseconds from a Retry-After value (delta seconds or HTTP date). */
int64_t wire_retry_after_ms(const char *v, int64_t now_s);

/* ---- direct JSON text (hot paths) ---- */

/* Appends s as a JSON string exactly as json_dumps writes wire_jstr(s)
 * (NULL: null). */
void wire_jbuf_str(ap_buf_t *b, const char *s);
/* The OpenAI chat.completion of resp as compact JSON text (heap, free()),
 * identical to json_dumps of wire_openai_render; NULL when the response
 * has tool calls (the caller then goes through jansson). */
char *wire_openai_render_text(const ap_llm_resp_t *resp, size_t *len);
/* The OpenAI request body for target t: as JSON values (new reference),
 * and as text written directly (arena; NULL when the request's shape
 * needs the JSON path: parts, tool calls or results, tools, response
 * format, temperature or top_p).  wire_openai_build uses the text when it
 * can; both give the same bytes. */
ap_rc wire_openai_body(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                       json_t **out, ap_err_t *err);
char *wire_openai_body_text(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                            size_t *len);

/* ---- finish reasons ---- */

const char *wire_finish_openai(const char *s);      /* OpenAI → internal */
const char *wire_finish_anthropic(const char *s);   /* stop_reason → internal */
const char *wire_finish_gemini(const char *s);      /* finishReason → internal */
const char *wire_stop_reason(const char *internal); /* internal → stop_reason */

/* ---- streams ---- */

struct ap_llm_decoder {
    ap_arena_t *a;
    ap_wire_kind kind;
    ap_sse_parser_t *sse;
    bool done, failed;
    ap_llm_error_t error; /* the failure, repeated by later feeds */
    ap_llm_delta_fn fn;   /* during a feed */
    void *ud;
    int ntools;      /* tool calls started */
    int last_tool;   /* OpenAI: the tool call of the last delta */
    int *block_tool; /* Anthropic: tool index per content block, -1 none */
    int nblocks, cap_blocks;
    bool emitted;         /* text or a tool call went out (Gemini SAFETY) */
    ap_llm_usage_t usage; /* Anthropic: from message_start; Gemini: latest */
    bool has_usage;
    int64_t raw[4]; /* Anthropic: input, cache read, cache write, output tokens */
};

#define WIRE_MAX_TOOLS 1024    /* tool calls per answer */
#define WIRE_MAX_TOOL_DEFS 512 /* tool definitions per request */
#define WIRE_MAX_BLOCKS 4096   /* Anthropic content blocks per message */

/* Sends d to the feed's callback (tool_index -1 unless set). */
void wire_emit(ap_llm_decoder_t *d, const ap_llm_delta_t *delta);
/* Fails the decoder: the error is kept and returned by every later feed. */
ap_rc wire_dec_fail(ap_llm_decoder_t *d, ap_llm_errkind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses an event's data as a JSON object (new reference) or fails d. */
json_t *wire_dec_json(ap_llm_decoder_t *d, const ap_sse_event_t *ev);

typedef struct {
    int index;
    int block; /* Anthropic content block of the call */
} wire_enc_tool_t;

struct ap_llm_encoder {
    ap_arena_t *a;
    ap_wire_kind kind;
    const char *id, *model;
    bool include_usage;
    int64_t created;
    bool started, finished, finish_sent;
    const char *finish_reason;
    ap_llm_usage_t usage;
    bool has_usage;
    wire_enc_tool_t *tools;
    int ntools, cap_tools;
    int block;     /* Anthropic: open content block, -1 none */
    int nblocks;   /* Anthropic: blocks opened so far */
    int open_tool; /* Anthropic: tool index of the open block, -1 text */
};

/* The encoder's record of tool index i, or NULL; add creates it. */
wire_enc_tool_t *wire_enc_tool(ap_llm_encoder_t *e, int index, bool add, bool *created);
/* Serialises v (stolen) as one SSE frame. */
void wire_sse_json(ap_buf_t *out, const char *event, json_t *v);

/* ---- per protocol ---- */

ap_rc wire_openai_parse_request(ap_arena_t *a, json_t *body, ap_llm_req_t *req, ap_err_t *err);
json_t *wire_openai_render(const ap_llm_resp_t *resp);
ap_rc wire_openai_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                        ap_http_call_t *out, ap_err_t *err);
ap_rc wire_openai_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr);
ap_rc wire_openai_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev);
void wire_openai_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out);
void wire_openai_finish(ap_llm_encoder_t *e, ap_buf_t *out);
void wire_openai_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out);
json_t *wire_openai_error_body(int status, const char *code, const char *message);

ap_rc wire_anthropic_parse_request(ap_arena_t *a, json_t *body, ap_llm_req_t *req, ap_err_t *err);
json_t *wire_anthropic_render(const ap_llm_resp_t *resp);
ap_rc wire_anthropic_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                           ap_http_call_t *out, ap_err_t *err);
ap_rc wire_anthropic_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr);
ap_rc wire_anthropic_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev);
void wire_anthropic_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out);
void wire_anthropic_finish(ap_llm_encoder_t *e, ap_buf_t *out);
void wire_anthropic_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out);
json_t *wire_anthropic_error_body(int status, const char *code, const char *message);
const char *wire_anthropic_error_type(ap_llm_errkind k, int status);

json_t *wire_gemini_render(const ap_llm_resp_t *resp);
ap_rc wire_gemini_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                        ap_http_call_t *out, ap_err_t *err);
ap_rc wire_gemini_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr);
ap_rc wire_gemini_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev);
json_t *wire_gemini_error_body(int status, const char *message);
/* "models/NAME" → "NAME"; NULL when the id has characters a URL path
 * segment cannot carry as they are. */
const char *wire_gemini_model(const char *model);

#endif
