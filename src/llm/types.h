/*
 * types.h - the one internal representation of an LLM call.
 *
 * 1. Every wire protocol (OpenAI Chat Completions, Anthropic Messages,
 *    Gemini generateContent) is translated to and from these structs; the
 *    router, budgets and usage only ever see these.
 * 2. Everything hangs off an arena: strings and arrays are arena memory and
 *    never freed individually.  json_t members are borrowed references
 *    owned by the arena (registered with ap_llm_json_keep).
 * 3. Content is text; multi-part content (images) is kept as the original
 *    JSON parts in `parts` so a same-protocol hop can pass it through.
 */
#ifndef AP_LLM_TYPES_H
#define AP_LLM_TYPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"

typedef enum { AP_LLM_SYSTEM, AP_LLM_USER, AP_LLM_ASSISTANT, AP_LLM_TOOL } ap_llm_role;

typedef struct {
    const char *id;        /* tool call id ("call_…", "toolu_…"); generated when absent */
    const char *name;      /* function name */
    const char *arguments; /* JSON text of the arguments object */
} ap_llm_tool_call_t;

typedef struct {
    ap_llm_role role;
    const char *content;      /* text, or NULL */
    json_t *parts;            /* original multi-part content (array), or NULL */
    ap_llm_tool_call_t *tool_calls; /* assistant turns */
    int ntool_calls;
    const char *tool_call_id; /* tool results */
    const char *name;         /* optional participant / tool name */
    bool is_error;            /* tool results: the tool failed (Anthropic is_error) */
} ap_llm_msg_t;

typedef struct {
    const char *name;
    const char *description; /* or NULL */
    json_t *parameters;      /* JSON Schema object, or NULL */
} ap_llm_tool_t;

typedef struct {
    const char *model;  /* as asked by the client: catalog id, provider/model, config name, auto */
    ap_llm_msg_t *msgs;
    int nmsgs;
    ap_llm_tool_t *tools;
    int ntools;
    const char *tool_choice;  /* NULL, "auto", "none", "required", or a tool name */
    json_t *response_format;  /* OpenAI shape {"type":"json_schema",…} / json_object, or NULL */
    const char **stop;
    int nstop;
    double temperature;
    bool has_temperature;
    double top_p;
    bool has_top_p;
    int max_tokens; /* 0: provider default */
    int top_k;      /* 0: provider default (Anthropic, Gemini; OpenAI has none) */
    bool stream;
    const char *user; /* end-user id for abuse tracking, or NULL */
    json_t *metadata; /* free-form request metadata (routing rules), or NULL */
} ap_llm_req_t;

typedef struct {
    int64_t prompt;
    int64_t completion;
    int64_t cached; /* prompt tokens served from a cache */
} ap_llm_usage_t;

typedef struct {
    const char *id;
    const char *model; /* model that served */
    const char *content;
    ap_llm_tool_call_t *tool_calls;
    int ntool_calls;
    const char *finish_reason; /* "stop" | "length" | "tool_calls" | "content_filter" */
    ap_llm_usage_t usage;
    int64_t created; /* unix seconds */
} ap_llm_resp_t;

/* One streamed increment.  Any subset of the members may be set. */
typedef struct {
    const char *content;       /* text delta, or NULL */
    int tool_index;            /* -1 when no tool call delta */
    const char *tool_id;       /* first delta of a tool call */
    const char *tool_name;     /* first delta of a tool call */
    const char *tool_args;     /* arguments JSON fragment */
    const char *finish_reason; /* last delta */
    bool has_usage;
    ap_llm_usage_t usage;
} ap_llm_delta_t;

/* Errors of every provider mapped to one set. */
typedef enum {
    AP_LLM_OK = 0,
    AP_LLM_RATE_LIMITED,   /* 429, honour retry_after_ms */
    AP_LLM_OVERLOADED,     /* 503/529 */
    AP_LLM_TIMEOUT,
    AP_LLM_CONTEXT_TOO_LONG,
    AP_LLM_CONTENT_FILTERED,
    AP_LLM_AUTH_FAILED,    /* 401/403 from upstream */
    AP_LLM_BAD_REQUEST,    /* 400/404/422 from upstream */
    AP_LLM_UPSTREAM,       /* 5xx, malformed reply, cut stream, connection failure */
    AP_LLM_BUDGET_EXCEEDED, /* refused before any upstream work: a tenant budget (llm/call.h) */
} ap_llm_errkind;

typedef struct {
    ap_llm_errkind kind;
    int http_status;     /* upstream status, 0 when none */
    int64_t retry_after_ms; /* from Retry-After, 0 when none */
    char message[512];   /* the provider's own message, for the problem detail */
    /* AP_LLM_BUDGET_EXCEEDED only: which budget ("monthly_token_limit",
     * "budget_limit_daily", "budget_limit_monthly") and when it resets
     * (RFC 3339 UTC); retry_after_ms is the time until then. */
    char budget[32];
    char resets_at[32];
} ap_llm_error_t;

const char *ap_llm_role_name(ap_llm_role r); /* "system", "user", "assistant", "tool" */
const char *ap_llm_errkind_name(ap_llm_errkind k);
/* Whether a router should try again / fall back on this error. */
bool ap_llm_err_retryable(ap_llm_errkind k);
/* Keeps a JSON value alive as long as the arena (takes a reference). */
json_t *ap_llm_json_keep(ap_arena_t *a, json_t *v);

#endif
