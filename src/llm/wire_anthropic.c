/*
 * wire_anthropic.c - Anthropic Messages: client requests, answers and
 * streams for the gateway; upstream calls to api.anthropic.com.
 *
 * 1. A client's system (string or text blocks) becomes a leading system
 *    message; tool_result blocks become tool messages placed before the
 *    rest of their user turn; tool_use blocks become the assistant's
 *    tool_calls.  The other blocks stay, in order, in msg->parts, so an
 *    Anthropic-to-Anthropic hop keeps images, documents, thinking blocks
 *    and cache_control.
 * 2. Upstream, turns must alternate: consecutive turns of one role are
 *    merged, tool results become user turns with tool_result blocks (put
 *    first in their turn, as the API requires), a single plain text block
 *    is sent as a string, and max_tokens defaults to 4096.
 * 3. Usage: Anthropic's input_tokens excludes cache reads and writes;
 *    internally prompt counts every input token (as OpenAI does) and
 *    cached the cache reads, so the two conversions are inverse.
 * 4. The stream encoder opens a content block when the kind of delta
 *    changes (text, or a new tool call) and closes the previous one.  An
 *    argument fragment for a tool call whose block was already closed is
 *    sent with that block's index (SDK accumulators append by index).
 */
#include <stdio.h>
#include <string.h>

#include "llm/wire_int.h"

#define DEFAULT_MAX_TOKENS 4096

/* ---- client requests --------------------------------------------------- */

static const wire_field_t req_fields[] = {
    {"model", WT_STR, true},
    {"messages", WT_ARR, true},
    {"max_tokens", WT_INT, true},
    {"system", WT_STR | WT_ARR | WT_NULL, false},
    {"metadata", WT_OBJ | WT_NULL, false},
    {"stop_sequences", WT_ARR | WT_NULL, false},
    {"stream", WT_BOOL | WT_NULL, false},
    {"temperature", WT_NUM | WT_NULL, false},
    {"top_p", WT_NUM | WT_NULL, false},
    {"top_k", WT_INT | WT_NULL, false},
    {"tools", WT_ARR | WT_NULL, false},
    {"tool_choice", WT_OBJ | WT_NULL, false},
    {"thinking", WT_OBJ | WT_NULL, false},
    {"service_tier", WT_STR | WT_NULL, false},
    {"container", WT_STR | WT_NULL, false},
    {NULL, 0, false},
};

/* Text of a block list (tool_result content, system): text blocks joined. */
static ap_rc blocks_text(ap_arena_t *a, json_t *c, const char *path, bool text_only, char **out,
                         ap_err_t *err) {
    char fb[192], fb2[224];
    *out = NULL;
    if (!c) return AP_OK;
    if (json_is_string(c)) {
        *out = wire_dup(a, json_string_value(c));
        return AP_OK;
    }
    if (!json_is_array(c)) return wire_err_type(err, path, "string or array", c);
    wire_sb_t sb;
    wire_sb_init(&sb, a);
    size_t i;
    json_t *b;
    json_array_foreach(c, i, b) {
        wire_path_i(fb, sizeof fb, path, "", i);
        const char *type = wire_str(b, "type");
        if (!type) return wire_err_missing(err, wire_path(fb2, sizeof fb2, fb, "type"));
        if (strcmp(type, "text") != 0) {
            if (text_only)
                return wire_err_value(err, wire_path(fb2, sizeof fb2, fb, "type"),
                                      "use text blocks here", "is \"%.40s\"", type);
            continue;
        }
        if (!wire_str(b, "text"))
            return wire_err_type(err, wire_path(fb2, sizeof fb2, fb, "text"), "string",
                                 wire_get(b, "text"));
        wire_sb_add(&sb, NULL, wire_str(b, "text"));
    }
    *out = wire_sb_str(&sb) ? wire_sb_str(&sb) : wire_dup(a, "");
    return AP_OK;
}

/* Checks one block of a user or assistant message. */
static ap_rc check_block(json_t *b, const char *path, bool user, ap_err_t *err) {
    char fb[224];
    if (!json_is_object(b)) return wire_err_type(err, path, "object", b);
    const char *type = wire_str(b, "type");
    if (!type) return wire_err_missing(err, wire_path(fb, sizeof fb, path, "type"));
    const char *need = NULL, *need2 = NULL;
    unsigned ntype = WT_STR;
    if (!strcmp(type, "text"))
        need = "text";
    else if (user && (!strcmp(type, "image") || !strcmp(type, "document")))
        need = "source", ntype = WT_OBJ;
    else if (user && !strcmp(type, "tool_result"))
        need = "tool_use_id";
    else if (!user && !strcmp(type, "tool_use"))
        need = "id", need2 = "name";
    else if (!user && !strcmp(type, "thinking"))
        need = "thinking";
    else if (!user && !strcmp(type, "redacted_thinking"))
        need = "data";
    else
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "type"),
                              user ? "use text, image, document or tool_result blocks"
                                   : "use text, tool_use or thinking blocks",
                              "is \"%.40s\", which a%s message cannot carry here", type,
                              user ? " user" : "n assistant");
    json_t *v = wire_get(b, need);
    if (!v) return wire_err_missing(err, wire_path(fb, sizeof fb, path, need));
    if ((ntype == WT_STR && !json_is_string(v)) || (ntype == WT_OBJ && !json_is_object(v)))
        return wire_err_type(err, wire_path(fb, sizeof fb, path, need),
                             ntype == WT_STR ? "string" : "object", v);
    if (need2 && !wire_str(b, need2))
        return wire_err_missing(err, wire_path(fb, sizeof fb, path, need2));
    if (!strcmp(type, "tool_use") && !json_is_object(wire_get(b, "input")))
        return wire_err_type(err, wire_path(fb, sizeof fb, path, "input"), "object",
                             wire_get(b, "input"));
    return AP_OK;
}

/* One client message → tool messages and/or one user / assistant message. */
static ap_rc parse_message(ap_arena_t *a, json_t *jm, size_t i, ap_llm_req_t *req, ap_err_t *err) {
    static const wire_field_t f[] = {
        {"role", WT_STR, true}, {"content", WT_STR | WT_ARR, true}, {NULL, 0, false}};
    char path[64], fb[160];
    wire_path_i(path, sizeof path, "", "messages", i);
    if (!json_is_object(jm)) return wire_err_type(err, path, "object", jm);
    ap_rc rc = wire_check(jm, f, path, err);
    if (rc) return rc;
    const char *role = wire_str(jm, "role");
    bool user = !strcmp(role, "user");
    if (!user && strcmp(role, "assistant") != 0)
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "role"),
                              "use user or assistant; a system prompt goes in the top-level "
                              "system field",
                              "is \"%.40s\"", role);
    ap_llm_msg_t m = {.role = user ? AP_LLM_USER : AP_LLM_ASSISTANT};
    json_t *content = json_object_get(jm, "content");
    if (json_is_string(content)) {
        m.content = wire_dup(a, json_string_value(content));
        req->msgs[req->nmsgs++] = m;
        return AP_OK;
    }
    char cpath[96];
    wire_path(cpath, sizeof cpath, path, "content");
    size_t n = json_array_size(content);
    json_t *rest = json_array(), *b;
    wire_sb_t text;
    wire_sb_init(&text, a);
    m.tool_calls = ap_arena_calloc(a, (n ? n : 1) * sizeof *m.tool_calls);
    size_t k;
    json_array_foreach(content, k, b) {
        wire_path_i(fb, sizeof fb, cpath, "", k);
        if ((rc = check_block(b, fb, user, err))) break;
        const char *type = wire_str(b, "type");
        if (!strcmp(type, "tool_result")) {
            ap_llm_msg_t *t = &req->msgs[req->nmsgs++];
            char fb2[192];
            memset(t, 0, sizeof *t);
            t->role = AP_LLM_TOOL;
            t->tool_call_id = wire_dup(a, wire_str(b, "tool_use_id"));
            t->is_error = json_is_true(json_object_get(b, "is_error"));
            char *result;
            rc = blocks_text(a, wire_get(b, "content"), wire_path(fb2, sizeof fb2, fb, "content"),
                             false, &result, err);
            if (rc) break;
            t->content = result ? result : wire_dup(a, "");
        } else if (!strcmp(type, "tool_use")) {
            ap_llm_tool_call_t *tc = &m.tool_calls[m.ntool_calls++];
            tc->id = wire_dup(a, wire_str(b, "id"));
            tc->name = wire_dup(a, wire_str(b, "name"));
            tc->arguments = wire_dump(a, json_incref(json_object_get(b, "input")), NULL);
        } else {
            if (!strcmp(type, "text")) wire_sb_add(&text, NULL, wire_str(b, "text"));
            json_array_append(rest, b);
        }
    }
    m.content = wire_sb_str(&text);
    if (!rc && (json_array_size(rest) || m.ntool_calls || n == 0)) {
        if (json_array_size(rest)) m.parts = ap_llm_json_keep(a, rest);
        req->msgs[req->nmsgs++] = m;
    }
    json_decref(rest);
    return rc;
}

static ap_rc parse_tools(ap_arena_t *a, json_t *tools, ap_llm_req_t *req, ap_err_t *err) {
    static const wire_field_t f[] = {{"name", WT_STR, true},
                                     {"description", WT_STR | WT_NULL, false},
                                     {"input_schema", WT_OBJ, true},
                                     {"type", WT_STR | WT_NULL, false},
                                     {"cache_control", WT_OBJ | WT_NULL, false},
                                     {NULL, 0, false}};
    size_t n = json_array_size(tools);
    if (n > WIRE_MAX_TOOL_DEFS)
        return wire_err_value(err, "tools", "send fewer tools", "has %zu tools; at most %d", n,
                              WIRE_MAX_TOOL_DEFS);
    req->tools = ap_arena_calloc(a, (n ? n : 1) * sizeof *req->tools);
    for (size_t i = 0; i < n; i++) {
        char path[64], fb[96];
        json_t *t = json_array_get(tools, i);
        wire_path_i(path, sizeof path, "", "tools", i);
        if (!json_is_object(t)) return wire_err_type(err, path, "object", t);
        const char *type = wire_str(t, "type");
        if (type && strcmp(type, "custom") != 0)
            return wire_err_value(err, wire_path(fb, sizeof fb, path, "type"),
                                  "define client tools with name, description and input_schema",
                                  "is \"%.40s\"; server tools are not supported", type);
        ap_rc rc = wire_check(t, f, path, err);
        if (rc) return rc;
        rc = wire_set_tool(a, req, i, path, wire_str(t, "name"), wire_str(t, "description"),
                           json_object_get(t, "input_schema"), err);
        if (rc) return rc;
    }
    req->ntools = (int)n;
    return AP_OK;
}

static ap_rc parse_tool_choice(ap_arena_t *a, json_t *tc, ap_llm_req_t *req, ap_err_t *err) {
    static const wire_field_t f[] = {{"type", WT_STR, true},
                                     {"name", WT_STR | WT_NULL, false},
                                     {"disable_parallel_tool_use", WT_BOOL | WT_NULL, false},
                                     {NULL, 0, false}};
    if (!tc) return AP_OK;
    ap_rc rc = wire_check(tc, f, "tool_choice", err);
    if (rc) return rc;
    const char *type = wire_str(tc, "type");
    if (!strcmp(type, "auto") || !strcmp(type, "none")) {
        req->tool_choice = wire_dup(a, type);
    } else if (!strcmp(type, "any")) {
        req->tool_choice = "required";
    } else if (!strcmp(type, "tool")) {
        const char *name = wire_str(tc, "name");
        if (!name) return wire_err_missing(err, "tool_choice.name");
        bool found = false;
        for (int i = 0; i < req->ntools; i++) found |= !strcmp(req->tools[i].name, name);
        if (!found)
            return wire_err_value(err, "tool_choice.name", "name one of the tools",
                                  "is \"%.64s\", which is not in tools", name);
        req->tool_choice = wire_dup(a, name);
    } else {
        return wire_err_value(err, "tool_choice.type", "use auto, any, tool or none",
                              "is \"%.40s\"", type);
    }
    return AP_OK;
}

ap_rc wire_anthropic_parse_request(ap_arena_t *a, json_t *body, ap_llm_req_t *req, ap_err_t *err) {
    ap_rc rc = wire_check(body, req_fields, "", err);
    if (rc) return rc;
    req->model = wire_dup(a, wire_str(body, "model"));
    if (!*req->model) return wire_err_value(err, "model", "name a model", "is empty");
    json_t *msgs = json_object_get(body, "messages");
    size_t n = json_array_size(msgs), cap = 1;
    if (n == 0) return wire_err_value(err, "messages", "send at least one message", "is empty");
    for (size_t i = 0; i < n; i++)
        cap += 1 + json_array_size(json_object_get(json_array_get(msgs, i), "content"));
    req->msgs = ap_arena_calloc(a, cap * sizeof *req->msgs);
    json_t *sys = wire_get(body, "system");
    if (sys) {
        char *text;
        if ((rc = blocks_text(a, sys, "system", true, &text, err))) return rc;
        ap_llm_msg_t *m = &req->msgs[req->nmsgs++];
        m->role = AP_LLM_SYSTEM;
        m->content = text;
        if (json_is_array(sys)) m->parts = ap_llm_json_keep(a, sys);
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_message(a, json_array_get(msgs, i), i, req, err))) return rc;
    json_t *md = wire_get(body, "metadata");
    if (md) {
        static const wire_field_t f[] = {{"user_id", WT_STR | WT_NULL, false}, {NULL, 0, false}};
        if ((rc = wire_check(md, f, "metadata", err))) return rc;
        req->user = wire_dup(a, wire_str(md, "user_id"));
        req->metadata = ap_llm_json_keep(a, md);
    }
    if ((rc = wire_int(body, "max_tokens", 1, 1 << 30, &req->max_tokens, err)) ||
        (rc = wire_int(body, "top_k", 0, 1 << 30, &req->top_k, err)) ||
        (rc = wire_number(body, "temperature", 0, 1, &req->temperature, &req->has_temperature,
                          err)) ||
        (rc = wire_number(body, "top_p", 0, 1, &req->top_p, &req->has_top_p, err)) ||
        (rc = wire_stop(a, wire_get(body, "stop_sequences"), "stop_sequences", 64, req, err)) ||
        (rc = parse_tools(a, wire_get(body, "tools"), req, err)) ||
        (rc = parse_tool_choice(a, wire_get(body, "tool_choice"), req, err)))
        return rc;
    req->stream = json_is_true(json_object_get(body, "stream"));
    return AP_OK;
}

/* ---- answers ----------------------------------------------------------- */

static json_t *usage_json(const ap_llm_usage_t *u, bool with_output) {
    int64_t in = u->prompt - u->cached;
    json_t *o = json_object();
    json_object_set_new(o, "input_tokens", json_integer(in > 0 ? in : 0));
    json_object_set_new(o, "cache_creation_input_tokens", json_integer(0));
    json_object_set_new(o, "cache_read_input_tokens", json_integer(u->cached));
    if (with_output) json_object_set_new(o, "output_tokens", json_integer(u->completion));
    return o;
}

static json_t *tool_use_json(const char *id, const char *name, json_t *input) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("tool_use"));
    json_object_set_new(o, "id", wire_jstr(id));
    json_object_set_new(o, "name", wire_jstr(name ? name : ""));
    json_object_set_new(o, "input", input);
    return o;
}

json_t *wire_anthropic_render(const ap_llm_resp_t *resp) {
    json_t *content = json_array();
    if (resp->content && (*resp->content || !resp->ntool_calls))
        json_array_append_new(
            content, json_pack("{s:s,s:o}", "type", "text", "text", wire_jstr(resp->content)));
    for (int i = 0; i < resp->ntool_calls; i++) {
        const ap_llm_tool_call_t *tc = &resp->tool_calls[i];
        char id[WIRE_ID_MAX];
        if (!tc->id) wire_id_buf(id, sizeof id, "toolu_");
        json_array_append_new(content, tool_use_json(tc->id ? tc->id : id, tc->name,
                                                     wire_args_or_empty(tc->arguments)));
    }
    char id[WIRE_ID_MAX];
    if (!resp->id) wire_id_buf(id, sizeof id, "msg_");
    json_t *o = json_object();
    json_object_set_new(o, "id", wire_jstr(resp->id ? resp->id : id));
    json_object_set_new(o, "type", json_string("message"));
    json_object_set_new(o, "role", json_string("assistant"));
    json_object_set_new(o, "model", wire_jstr(resp->model ? resp->model : ""));
    json_object_set_new(o, "content", content);
    json_object_set_new(o, "stop_reason", json_string(wire_stop_reason(resp->finish_reason)));
    json_object_set_new(o, "stop_sequence", json_null());
    json_object_set_new(o, "usage", usage_json(&resp->usage, true));
    return o;
}

const char *wire_anthropic_error_type(ap_llm_errkind k, int status) {
    switch (k) {
    case AP_LLM_RATE_LIMITED:
    case AP_LLM_BUDGET_EXCEEDED: return "rate_limit_error";
    case AP_LLM_OVERLOADED: return "overloaded_error";
    case AP_LLM_TIMEOUT: return "timeout_error";
    case AP_LLM_AUTH_FAILED:
    case AP_LLM_UPSTREAM: return "api_error";
    case AP_LLM_CONTEXT_TOO_LONG:
    case AP_LLM_CONTENT_FILTERED:
    case AP_LLM_BAD_REQUEST: return "invalid_request_error";
    case AP_LLM_OK: break;
    }
    switch (status) {
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    case 504: return "timeout_error";
    }
    return status >= 500 ? "api_error" : "invalid_request_error";
}

json_t *wire_anthropic_error_body(int status, const char *code, const char *message) {
    (void)code; /* Anthropic errors carry a type only, derived from the status */
    return json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type",
                     wire_anthropic_error_type(AP_LLM_OK, status), "message", wire_jstr(message));
}

/* ---- upstream calls ---------------------------------------------------- */

/* One content part in Anthropic's shape, or NULL to drop it. */
static ap_rc to_block(ap_arena_t *a, json_t *p, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *type = wire_str(p, "type");
    if (!type) return AP_OK;
    const char *text = !strcmp(type, "text")      ? wire_str(p, "text")
                       : !strcmp(type, "refusal") ? wire_str(p, "refusal")
                                                  : NULL;
    if (text) {
        if (!*text) return AP_OK; /* the API refuses empty text blocks */
        *out = json_pack("{s:s,s:o}", "type", "text", "text", wire_jstr(text));
        json_t *cc = wire_get(p, "cache_control");
        if (cc) json_object_set(*out, "cache_control", cc);
        return AP_OK;
    }
    if (!strcmp(type, "image") || !strcmp(type, "document") || !strcmp(type, "thinking") ||
        !strcmp(type, "redacted_thinking")) {
        *out = json_incref(p);
        return AP_OK;
    }
    char *mime, *data;
    const char *url = NULL;
    if (!strcmp(type, "image_url")) url = wire_str(wire_get(p, "image_url"), "url");
    if (!strcmp(type, "file")) url = wire_str(wire_get(p, "file"), "file_data");
    if (url && wire_data_url(a, url, &mime, &data)) {
        *out =
            json_pack("{s:s,s:{s:s,s:s,s:s}}", "type", !strcmp(type, "file") ? "document" : "image",
                      "source", "type", "base64", "media_type", mime, "data", data);
        if (*out) return AP_OK;
    } else if (url && !strcmp(type, "image_url") && strncmp(url, "data:", 5) != 0) {
        *out = json_pack("{s:s,s:{s:s,s:o}}", "type", "image", "source", "type", "url", "url",
                         wire_jstr(url));
        return AP_OK;
    }
    return ap_err_set(err, AP_ERR_INVALID, "unsupported-content", "content cannot be translated",
                      "send text, images as data: or https URLs, or PDF files as data: URLs",
                      "a content part of type \"%.40s\" cannot be sent to Anthropic", type);
}

typedef struct {
    bool user;
    json_t *blocks;
} turn_t;

static ap_rc message_blocks(ap_arena_t *a, const ap_llm_msg_t *m, json_t *blocks, ap_err_t *err) {
    if (m->role == AP_LLM_TOOL) {
        json_t *r = json_pack("{s:s,s:o,s:o}", "type", "tool_result", "tool_use_id",
                              wire_jstr(m->tool_call_id ? m->tool_call_id : ""), "content",
                              wire_jstr(m->content ? m->content : ""));
        if (m->is_error) json_object_set_new(r, "is_error", json_true());
        json_array_append_new(blocks, r);
        return AP_OK;
    }
    if (json_is_array(m->parts)) {
        size_t i;
        json_t *p;
        json_array_foreach(m->parts, i, p) {
            json_t *b;
            ap_rc rc = to_block(a, p, &b, err);
            if (rc) return rc;
            if (b) json_array_append_new(blocks, b);
        }
    } else if (m->content && *m->content) {
        json_array_append_new(
            blocks, json_pack("{s:s,s:o}", "type", "text", "text", wire_jstr(m->content)));
    }
    for (int i = 0; m->role == AP_LLM_ASSISTANT && i < m->ntool_calls; i++) {
        const ap_llm_tool_call_t *tc = &m->tool_calls[i];
        json_t *input = wire_args_object(tc->arguments);
        if (!input)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-tool-call",
                              "tool call arguments are not a JSON object",
                              "send the arguments of earlier tool calls as a JSON object",
                              "the arguments of tool call \"%.64s\" (%.64s) are not a JSON object",
                              tc->id ? tc->id : "", tc->name ? tc->name : "");
        json_array_append_new(
            blocks, tool_use_json(tc->id ? tc->id : wire_id(a, "toolu_"), tc->name, input));
    }
    return AP_OK;
}

/* tool_result blocks first in a user turn, the rest after, in order. */
static json_t *results_first(json_t *blocks) {
    json_t *o = json_array(), *b;
    size_t i;
    for (int pass = 0; pass < 2; pass++) json_array_foreach(blocks, i, b) {
            const char *t = wire_str(b, "type");
            bool res = t && !strcmp(t, "tool_result");
            if (res == (pass == 0)) json_array_append(o, b);
        }
    return o;
}

/* A lone plain text block is sent as a string. */
static json_t *simplify(json_t *blocks) {
    json_t *b = json_array_get(blocks, 0);
    if (json_array_size(blocks) == 1 && json_object_size(b) == 2 && wire_str(b, "text") &&
        !strcmp(wire_str(b, "type"), "text"))
        return json_incref(json_object_get(b, "text"));
    return json_incref(blocks);
}

static json_t *system_value(ap_arena_t *a, const ap_llm_req_t *req, ap_err_t *err, ap_rc *rc) {
    bool blocks = false;
    wire_sb_t joined;
    wire_sb_init(&joined, a);
    for (int i = 0; i < req->nmsgs; i++)
        if (req->msgs[i].role == AP_LLM_SYSTEM) {
            blocks |= json_is_array(req->msgs[i].parts);
            if (req->msgs[i].content && *req->msgs[i].content)
                wire_sb_add(&joined, "\n\n", req->msgs[i].content);
        }
    if (!blocks) return wire_sb_str(&joined) ? wire_jstr(wire_sb_str(&joined)) : NULL;
    json_t *arr = json_array();
    for (int i = 0; i < req->nmsgs && !*rc; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->role != AP_LLM_SYSTEM) continue;
        ap_llm_msg_t copy = *m;
        copy.role = AP_LLM_USER;
        *rc = message_blocks(a, &copy, arr, err);
    }
    return arr;
}

ap_rc wire_anthropic_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                           ap_http_call_t *out, ap_err_t *err) {
    ap_rc rc = AP_OK;
    json_t *body = json_object();
    json_object_set_new(body, "model", wire_jstr(t->model));
    json_object_set_new(body, "max_tokens",
                        json_integer(req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS));
    json_t *sys = system_value(a, req, err, &rc);
    if (sys) json_object_set_new(body, "system", sys);
    turn_t *turns = ap_arena_calloc(a, (size_t)(req->nmsgs + 1) * sizeof *turns);
    int nt = 0;
    for (int i = 0; i < req->nmsgs && !rc; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->role == AP_LLM_SYSTEM) continue;
        bool user = m->role != AP_LLM_ASSISTANT;
        if (!nt || turns[nt - 1].user != user) {
            turns[nt].user = user;
            turns[nt++].blocks = json_array();
        }
        rc = message_blocks(a, m, turns[nt - 1].blocks, err);
    }
    json_t *msgs = json_array();
    json_object_set_new(body, "messages", msgs);
    for (int i = 0; i < nt; i++) {
        json_t *blocks =
            turns[i].user ? results_first(turns[i].blocks) : json_incref(turns[i].blocks);
        if (json_array_size(blocks))
            json_array_append_new(msgs, json_pack("{s:s,s:o}", "role",
                                                  turns[i].user ? "user" : "assistant", "content",
                                                  simplify(blocks)));
        json_decref(blocks);
        json_decref(turns[i].blocks);
    }
    if (rc) {
        json_decref(body);
        return rc;
    }
    if (req->ntools) {
        json_t *tools = json_array();
        for (int i = 0; i < req->ntools; i++) {
            const ap_llm_tool_t *tl = &req->tools[i];
            json_t *o = json_pack("{s:o}", "name", wire_jstr(tl->name));
            if (tl->description) json_object_set_new(o, "description", wire_jstr(tl->description));
            json_object_set_new(o, "input_schema",
                                tl->parameters
                                    ? json_incref(tl->parameters)
                                    : json_pack("{s:s,s:{}}", "type", "object", "properties"));
            json_array_append_new(tools, o);
        }
        json_object_set_new(body, "tools", tools);
    }
    if (req->tool_choice) {
        const char *c = req->tool_choice;
        json_object_set_new(body, "tool_choice",
                            !strcmp(c, "auto") || !strcmp(c, "none") ? json_pack("{s:s}", "type", c)
                            : !strcmp(c, "required")
                                ? json_pack("{s:s}", "type", "any")
                                : json_pack("{s:s,s:o}", "type", "tool", "name", wire_jstr(c)));
    }
    if (req->nstop) {
        json_t *stop = json_array();
        for (int i = 0; i < req->nstop; i++) json_array_append_new(stop, wire_jstr(req->stop[i]));
        json_object_set_new(body, "stop_sequences", stop);
    }
    if (req->has_temperature) /* OpenAI's range is 0..2, Anthropic's 0..1 */
        json_object_set_new(body, "temperature",
                            json_real(req->temperature > 1 ? 1.0 : req->temperature));
    if (req->has_top_p) json_object_set_new(body, "top_p", json_real(req->top_p));
    if (req->top_k > 0) json_object_set_new(body, "top_k", json_integer(req->top_k));
    if (req->user)
        json_object_set_new(body, "metadata", json_pack("{s:o}", "user_id", wire_jstr(req->user)));
    if (req->stream) json_object_set_new(body, "stream", json_true());
    out->url = wire_url(a, t->base_url, "/messages");
    wire_header(a, out, "Content-Type: application/json");
    if (t->api_key && *t->api_key) wire_header(a, out, "x-api-key: %s", t->api_key);
    wire_header(a, out, "anthropic-version: 2023-06-01");
    if (req->stream) wire_header(a, out, "Accept: text/event-stream");
    out->body = wire_dump(a, body, &out->len);
    return AP_OK;
}

static const char *const usage_keys[4] = {"input_tokens", "cache_read_input_tokens",
                                          "cache_creation_input_tokens", "output_tokens"};

/* Overlays the counts u holds on raw (input, cache read, cache write,
 * output).  Input counts only replace earlier ones when positive: a
 * message_delta may repeat them as 0 (or carry them for the first time,
 * as some proxies do). */
static void merge_usage(json_t *u, int64_t raw[4]) {
    for (int k = 0; k < 4; k++) {
        json_t *v = json_object_get(u, usage_keys[k]);
        if (json_is_integer(v) && (k == 3 || json_integer_value(v) > 0))
            raw[k] = (int64_t)json_integer_value(v);
    }
}

static ap_llm_usage_t usage_of(const int64_t raw[4]) {
    return (ap_llm_usage_t){.prompt = raw[0] + raw[1] + raw[2], .cached = raw[1], .completion = raw[3]};
}

static void read_usage(json_t *u, ap_llm_usage_t *out) {
    int64_t raw[4] = {0};
    merge_usage(u, raw);
    *out = usage_of(raw);
}

ap_rc wire_anthropic_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr) {
    json_t *content = json_object_get(body, "content");
    if (!json_is_array(content) || json_array_size(content) > WIRE_MAX_BLOCKS) {
        memset(lerr, 0, sizeof *lerr);
        lerr->kind = AP_LLM_UPSTREAM;
        snprintf(lerr->message, sizeof lerr->message,
                 "malformed reply from the provider: no content array");
        return AP_ERR_UNAVAILABLE;
    }
    resp->id = wire_dup(a, wire_str(body, "id"));
    resp->model = wire_dup(a, wire_str(body, "model"));
    size_t n = json_array_size(content), i;
    resp->tool_calls = ap_arena_calloc(a, (n ? n : 1) * sizeof *resp->tool_calls);
    wire_sb_t text;
    wire_sb_init(&text, a);
    json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = wire_str(b, "type");
        if (!type) continue;
        if (!strcmp(type, "text") && wire_str(b, "text")) {
            wire_sb_add(&text, NULL, wire_str(b, "text"));
        } else if (!strcmp(type, "tool_use")) {
            ap_llm_tool_call_t *tc = &resp->tool_calls[resp->ntool_calls++];
            tc->id = wire_dup(a, wire_str(b, "id"));
            tc->name = wire_dup(a, wire_str(b, "name"));
            json_t *in = json_object_get(b, "input");
            tc->arguments = json_is_object(in) ? wire_dump(a, json_incref(in), NULL) : "{}";
        }
    }
    resp->content = wire_sb_str(&text);
    resp->finish_reason = wire_finish_anthropic(wire_str(body, "stop_reason"));
    read_usage(wire_get(body, "usage"), &resp->usage);
    return AP_OK;
}

/* ---- streams ----------------------------------------------------------- */

static ap_rc block_start(ap_llm_decoder_t *d, int index, json_t *cb) {
    const char *type = wire_str(cb, "type");
    if (index >= d->cap_blocks) {
        int cap = d->cap_blocks ? d->cap_blocks : 8;
        while (cap <= index) cap *= 2;
        int *n = ap_arena_alloc(d->a, (size_t)cap * sizeof *n);
        for (int i = 0; i < cap; i++) n[i] = i < d->nblocks ? d->block_tool[i] : -1;
        d->block_tool = n;
        d->cap_blocks = cap;
    }
    if (index >= d->nblocks) d->nblocks = index + 1;
    if (type && !strcmp(type, "tool_use")) {
        if (d->ntools >= WIRE_MAX_TOOLS)
            return wire_dec_fail(d, AP_LLM_UPSTREAM, "too many tool calls");
        int t = d->block_tool[index] = d->ntools++;
        json_t *in = json_object_get(cb, "input");
        const char *args = json_object_size(in) ? wire_dump(d->a, json_incref(in), NULL) : NULL;
        ap_llm_delta_t dl = {.tool_index = t,
                             .tool_id = wire_str(cb, "id"),
                             .tool_name = wire_str(cb, "name"),
                             .tool_args = args};
        d->emitted = true;
        wire_emit(d, &dl);
    } else if (type && !strcmp(type, "text") && wire_str(cb, "text") && *wire_str(cb, "text")) {
        ap_llm_delta_t dl = {.content = wire_str(cb, "text"), .tool_index = -1};
        wire_emit(d, &dl);
    }
    return AP_OK;
}

ap_rc wire_anthropic_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev) {
    json_t *v = wire_dec_json(d, ev);
    if (!v) return AP_ERR_UNAVAILABLE;
    const char *type = wire_str(v, "type");
    if (!type) type = ev->event;
    ap_rc rc = AP_OK;
    json_t *ji = json_object_get(v, "index");
    json_int_t index = json_is_integer(ji) ? json_integer_value(ji) : -1;
    bool indexed = !strcmp(type, "content_block_start") || !strcmp(type, "content_block_delta");
    if (indexed && (index < 0 || index >= WIRE_MAX_BLOCKS)) {
        rc = wire_dec_fail(d, AP_LLM_UPSTREAM, "content block index out of range");
    } else if (!strcmp(type, "error")) {
        if (!wire_fail_json(&d->error, 0, NULL, v))
            wire_fail(&d->error, 0, NULL, NULL, NULL, "the provider sent an error event");
        d->failed = true;
        rc = AP_ERR_UNAVAILABLE;
    } else if (!strcmp(type, "message_start")) {
        merge_usage(wire_get(wire_get(v, "message"), "usage"), d->raw);
        d->usage = usage_of(d->raw);
        d->has_usage = true;
        /* early, so a re-encoded message_start shows the input count */
        ap_llm_delta_t dl = {.tool_index = -1, .has_usage = true, .usage = d->usage};
        wire_emit(d, &dl);
    } else if (!strcmp(type, "content_block_start")) {
        rc = block_start(d, (int)index, wire_get(v, "content_block"));
    } else if (!strcmp(type, "content_block_delta")) {
        json_t *delta = wire_get(v, "delta");
        const char *dt = wire_str(delta, "type");
        ap_llm_delta_t dl = {.tool_index = -1};
        if (dt && !strcmp(dt, "text_delta")) {
            dl.content = wire_str(delta, "text");
        } else if (dt && !strcmp(dt, "input_json_delta") && index < d->nblocks &&
                   d->block_tool[index] >= 0) {
            dl.tool_index = d->block_tool[index];
            dl.tool_args = wire_str(delta, "partial_json");
        }
        if ((dl.content && *dl.content) || (dl.tool_args && *dl.tool_args)) {
            d->emitted = true;
            wire_emit(d, &dl);
        }
    } else if (!strcmp(type, "message_delta")) {
        json_t *u = wire_get(v, "usage");
        ap_llm_delta_t dl = {
            .tool_index = -1,
            .finish_reason = wire_finish_anthropic(wire_str(wire_get(v, "delta"), "stop_reason"))};
        if (json_is_object(u)) {
            merge_usage(u, d->raw);
            d->usage = usage_of(d->raw);
            d->has_usage = true;
        }
        dl.has_usage = d->has_usage;
        dl.usage = d->usage;
        if (dl.finish_reason || dl.has_usage) wire_emit(d, &dl);
    } else if (!strcmp(type, "message_stop")) {
        d->done = true;
    }
    json_decref(v);
    return rc;
}

static void event(ap_buf_t *out, const char *name, json_t *v) {
    wire_sse_json(out, name, v);
}

static void start(ap_llm_encoder_t *e, ap_buf_t *out) {
    if (e->started) return;
    e->started = true;
    ap_llm_usage_t u = e->has_usage ? e->usage : (ap_llm_usage_t){0};
    u.completion = 0;
    json_t *msg = json_object();
    json_object_set_new(msg, "id", wire_jstr(e->id));
    json_object_set_new(msg, "type", json_string("message"));
    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "model", wire_jstr(e->model));
    json_object_set_new(msg, "content", json_array());
    json_object_set_new(msg, "stop_reason", json_null());
    json_object_set_new(msg, "stop_sequence", json_null());
    json_object_set_new(msg, "usage", usage_json(&u, true));
    event(out, "message_start", json_pack("{s:s,s:o}", "type", "message_start", "message", msg));
}

static void close_block(ap_llm_encoder_t *e, ap_buf_t *out) {
    if (e->block < 0) return;
    event(out, "content_block_stop",
          json_pack("{s:s,s:i}", "type", "content_block_stop", "index", e->block));
    e->block = -1;
    e->open_tool = -1;
}

static void open_block(ap_llm_encoder_t *e, json_t *cb, ap_buf_t *out) {
    close_block(e, out);
    e->block = e->nblocks++;
    event(out, "content_block_start",
          json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", e->block,
                    "content_block", cb));
}

static void block_delta(ap_buf_t *out, int index, json_t *delta) {
    event(
        out, "content_block_delta",
        json_pack("{s:s,s:i,s:o}", "type", "content_block_delta", "index", index, "delta", delta));
}

void wire_anthropic_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out) {
    start(e, out);
    if (d->content && *d->content) {
        if (e->block < 0 || e->open_tool >= 0)
            open_block(e, json_pack("{s:s,s:s}", "type", "text", "text", ""), out);
        block_delta(out, e->block,
                    json_pack("{s:s,s:o}", "type", "text_delta", "text", wire_jstr(d->content)));
    }
    if (d->tool_index >= 0) {
        bool created;
        wire_enc_tool_t *t = wire_enc_tool(e, d->tool_index, true, &created);
        if (created) {
            const char *id = d->tool_id ? d->tool_id : wire_id(e->a, "toolu_");
            open_block(e, tool_use_json(id, d->tool_name, json_object()), out);
            t->block = e->block;
            e->open_tool = d->tool_index;
        }
        if (d->tool_args && *d->tool_args)
            block_delta(out, t->block,
                        json_pack("{s:s,s:o}", "type", "input_json_delta", "partial_json",
                                  wire_jstr(d->tool_args)));
    }
}

void wire_anthropic_finish(ap_llm_encoder_t *e, ap_buf_t *out) {
    start(e, out);
    close_block(e, out);
    const char *fin = e->finish_reason ? e->finish_reason : e->ntools ? "tool_calls" : "stop";
    json_t *usage = e->has_usage ? usage_json(&e->usage, true)
                                 : json_pack("{s:I}", "output_tokens", (json_int_t)0);
    event(out, "message_delta",
          json_pack("{s:s,s:{s:s,s:n},s:o}", "type", "message_delta", "delta", "stop_reason",
                    wire_stop_reason(fin), "stop_sequence", "usage", usage));
    event(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

void wire_anthropic_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out) {
    (void)e;
    const char *msg = lerr->message[0] ? lerr->message : ap_llm_errkind_name(lerr->kind);
    event(out, "error",
          json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type",
                    wire_anthropic_error_type(lerr->kind, lerr->http_status), "message",
                    wire_jstr(msg)));
}
