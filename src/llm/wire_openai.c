/*
 * wire_openai.c - OpenAI Chat Completions: client requests, answers and
 * streams for the gateway; upstream calls to OpenAI and every
 * OpenAI-compatible server.
 *
 * 1. Requests are validated as the real API does: documented fields we do
 *    not use (seed, logprobs, penalties, store, …) are accepted and
 *    dropped, unknown ones are refused by name; n must be 1.
 * 2. Content given as parts keeps the array in msg->parts; the text parts,
 *    concatenated, become msg->content.  Parts from an Anthropic client
 *    (image blocks, PDF documents) are translated when sent upstream here;
 *    thinking blocks are dropped (they mean nothing to another model).
 * 3. Upstream, max_tokens goes as max_completion_tokens to api.openai.com
 *    (its reasoning models refuse max_tokens) and as max_tokens to
 *    compatible servers, most of which know only that name.
 * 4. The stream encoder sends role first, then deltas, a finish chunk, a
 *    usage chunk when the client asked (stream_options.include_usage) and
 *    "data: [DONE]"; an error after the start is a data frame holding
 *    {"error":{…}}, which the SDKs raise.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "llm/wire_int.h"

/* ---- client requests --------------------------------------------------- */

static const wire_field_t req_fields[] = {
    {"model", WT_STR, true},
    {"messages", WT_ARR, true},
    {"max_tokens", WT_INT | WT_NULL, false},
    {"max_completion_tokens", WT_INT | WT_NULL, false},
    {"temperature", WT_NUM | WT_NULL, false},
    {"top_p", WT_NUM | WT_NULL, false},
    {"n", WT_INT | WT_NULL, false},
    {"stop", WT_STR | WT_ARR | WT_NULL, false},
    {"stream", WT_BOOL | WT_NULL, false},
    {"stream_options", WT_OBJ | WT_NULL, false},
    {"tools", WT_ARR | WT_NULL, false},
    {"tool_choice", WT_STR | WT_OBJ | WT_NULL, false},
    {"parallel_tool_calls", WT_BOOL | WT_NULL, false},
    {"response_format", WT_OBJ | WT_NULL, false},
    {"user", WT_STR | WT_NULL, false},
    {"metadata", WT_OBJ | WT_NULL, false},
    {"frequency_penalty", WT_NUM | WT_NULL, false},
    {"presence_penalty", WT_NUM | WT_NULL, false},
    {"logit_bias", WT_OBJ | WT_NULL, false},
    {"logprobs", WT_BOOL | WT_NULL, false},
    {"top_logprobs", WT_INT | WT_NULL, false},
    {"seed", WT_INT | WT_NULL, false},
    {"store", WT_BOOL | WT_NULL, false},
    {"service_tier", WT_STR | WT_NULL, false},
    {"reasoning_effort", WT_STR | WT_NULL, false},
    {"verbosity", WT_STR | WT_NULL, false},
    {"modalities", WT_ARR | WT_NULL, false},
    {"audio", WT_OBJ | WT_NULL, false},
    {"prediction", WT_OBJ | WT_NULL, false},
    {"prompt_cache_key", WT_STR | WT_NULL, false},
    {"safety_identifier", WT_STR | WT_NULL, false},
    {"web_search_options", WT_OBJ | WT_NULL, false},
    {"functions", WT_ARR | WT_NULL, false},
    {"function_call", WT_STR | WT_OBJ | WT_NULL, false},
    {NULL, 0, false},
};

static const wire_field_t msg_fields[] = {
    {"role", WT_STR, true},
    {"content", WT_STR | WT_ARR | WT_NULL, false},
    {"name", WT_STR | WT_NULL, false},
    {"tool_calls", WT_ARR | WT_NULL, false},
    {"tool_call_id", WT_STR | WT_NULL, false},
    {"refusal", WT_STR | WT_NULL, false},
    {"audio", WT_OBJ | WT_NULL, false},
    {"function_call", WT_OBJ | WT_NULL, false},
    {NULL, 0, false},
};

/* Text parts join into content; other parts are allowed per role. */
static ap_rc parse_content(ap_arena_t *a, json_t *c, const char *path, ap_llm_role role,
                           ap_llm_msg_t *m, ap_err_t *err) {
    char fb[160], fb2[192];
    if (json_is_string(c)) {
        m->content = wire_dup(a, json_string_value(c));
        return AP_OK;
    }
    if (json_array_size(c) == 0)
        return wire_err_value(err, path, "give the content as a string or non-empty array",
                              "is an empty array");
    wire_sb_t text;
    wire_sb_init(&text, a);
    size_t i;
    json_t *p;
    json_array_foreach(c, i, p) {
        wire_path_i(fb, sizeof fb, path, "", i);
        if (!json_is_object(p)) return wire_err_type(err, fb, "object", p);
        const char *type = wire_str(p, "type");
        if (!type) return wire_err_missing(err, wire_path(fb2, sizeof fb2, fb, "type"));
        const char *t = NULL;
        if (!strcmp(type, "text"))
            t = wire_str(p, "text");
        else if (!strcmp(type, "refusal") && role == AP_LLM_ASSISTANT)
            t = wire_str(p, "refusal");
        else if (role == AP_LLM_USER && (!strcmp(type, "image_url") || !strcmp(type, "file") ||
                                         !strcmp(type, "input_audio"))) {
            if (!json_is_object(wire_get(p, type)))
                return wire_err_type(err, wire_path(fb2, sizeof fb2, fb, type), "object",
                                     wire_get(p, type));
            continue;
        } else
            return wire_err_value(err, wire_path(fb2, sizeof fb2, fb, "type"),
                                  "use text parts (images, files and audio only in user messages)",
                                  "is \"%.40s\", which a %s message cannot carry", type,
                                  ap_llm_role_name(role));
        if (!t)
            return wire_err_type(err, wire_path(fb2, sizeof fb2, fb, type), "string",
                                 wire_get(p, type));
        wire_sb_add(&text, NULL, t);
    }
    m->content = wire_sb_str(&text);
    m->parts = ap_llm_json_keep(a, c);
    return AP_OK;
}

static ap_rc parse_tool_calls(ap_arena_t *a, json_t *arr, const char *path, ap_llm_msg_t *m,
                              ap_err_t *err) {
    static const wire_field_t tc_fields[] = {
        {"id", WT_STR, true}, {"type", WT_STR, true}, {"function", WT_OBJ, true}, {NULL, 0, false}};
    static const wire_field_t fn_fields[] = {
        {"name", WT_STR, true}, {"arguments", WT_STR, true}, {NULL, 0, false}};
    size_t n = json_array_size(arr);
    m->tool_calls = ap_arena_calloc(a, (n ? n : 1) * sizeof *m->tool_calls);
    for (size_t i = 0; i < n; i++) {
        char fb[160], fb2[192];
        json_t *tc = json_array_get(arr, i);
        wire_path_i(fb, sizeof fb, path, "tool_calls", i);
        if (!json_is_object(tc)) return wire_err_type(err, fb, "object", tc);
        ap_rc rc = wire_check(tc, tc_fields, fb, err);
        if (!rc)
            rc = wire_check(json_object_get(tc, "function"), fn_fields,
                            wire_path(fb2, sizeof fb2, fb, "function"), err);
        if (rc) return rc;
        if (strcmp(wire_str(tc, "type"), "function") != 0)
            return wire_err_value(err, wire_path(fb2, sizeof fb2, fb, "type"), "use \"function\"",
                                  "is \"%.40s\"", wire_str(tc, "type"));
        json_t *fn = json_object_get(tc, "function");
        m->tool_calls[i].id = wire_dup(a, wire_str(tc, "id"));
        m->tool_calls[i].name = wire_dup(a, wire_str(fn, "name"));
        m->tool_calls[i].arguments = wire_dup(a, wire_str(fn, "arguments"));
    }
    m->ntool_calls = (int)n;
    return AP_OK;
}

static ap_rc parse_message(ap_arena_t *a, json_t *jm, size_t i, ap_llm_msg_t *m, ap_err_t *err) {
    char path[64], fb[160];
    wire_path_i(path, sizeof path, "", "messages", i);
    if (!json_is_object(jm)) return wire_err_type(err, path, "object", jm);
    ap_rc rc = wire_check(jm, msg_fields, path, err);
    if (rc) return rc;
    const char *role = wire_str(jm, "role");
    if (!strcmp(role, "system") || !strcmp(role, "developer"))
        m->role = AP_LLM_SYSTEM;
    else if (!strcmp(role, "user"))
        m->role = AP_LLM_USER;
    else if (!strcmp(role, "assistant"))
        m->role = AP_LLM_ASSISTANT;
    else if (!strcmp(role, "tool"))
        m->role = AP_LLM_TOOL;
    else
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "role"),
                              "use system, developer, user, assistant or tool "
                              "(the function role is replaced by tool)",
                              "is \"%.40s\"", role);
    if (wire_get(jm, "function_call"))
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "function_call"),
                              "send tool_calls instead", "is deprecated and not supported");
    json_t *content = wire_get(jm, "content");
    json_t *tcs = wire_get(jm, "tool_calls");
    if (tcs && m->role != AP_LLM_ASSISTANT)
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "tool_calls"),
                              "only assistant messages carry tool calls",
                              "is not allowed in a %s message", role);
    if (!content && !(m->role == AP_LLM_ASSISTANT && (tcs || wire_get(jm, "refusal"))))
        return wire_err_missing(err, wire_path(fb, sizeof fb, path, "content"));
    if (content && (rc = parse_content(a, content, wire_path(fb, sizeof fb, path, "content"),
                                       m->role, m, err)))
        return rc;
    if (!content && wire_str(jm, "refusal")) m->content = wire_dup(a, wire_str(jm, "refusal"));
    if (tcs && (rc = parse_tool_calls(a, tcs, path, m, err))) return rc;
    if (m->role == AP_LLM_TOOL) {
        if (!wire_str(jm, "tool_call_id"))
            return wire_err_missing(err, wire_path(fb, sizeof fb, path, "tool_call_id"));
        m->tool_call_id = wire_dup(a, wire_str(jm, "tool_call_id"));
    }
    m->name = wire_dup(a, wire_str(jm, "name"));
    return AP_OK;
}

static ap_rc parse_tools(ap_arena_t *a, json_t *tools, ap_llm_req_t *req, ap_err_t *err) {
    static const wire_field_t t_fields[] = {
        {"type", WT_STR, true}, {"function", WT_OBJ, true}, {NULL, 0, false}};
    static const wire_field_t fn_fields[] = {{"name", WT_STR, true},
                                             {"description", WT_STR | WT_NULL, false},
                                             {"parameters", WT_OBJ | WT_NULL, false},
                                             {"strict", WT_BOOL | WT_NULL, false},
                                             {NULL, 0, false}};
    size_t n = json_array_size(tools);
    if (n > WIRE_MAX_TOOL_DEFS)
        return wire_err_value(err, "tools", "send fewer tools", "has %zu tools; at most %d", n,
                              WIRE_MAX_TOOL_DEFS);
    req->tools = ap_arena_calloc(a, (n ? n : 1) * sizeof *req->tools);
    for (size_t i = 0; i < n; i++) {
        char path[64], fb[160];
        json_t *t = json_array_get(tools, i);
        wire_path_i(path, sizeof path, "", "tools", i);
        if (!json_is_object(t)) return wire_err_type(err, path, "object", t);
        ap_rc rc = wire_check(t, t_fields, path, err);
        if (rc) return rc;
        if (strcmp(wire_str(t, "type"), "function") != 0)
            return wire_err_value(err, wire_path(fb, sizeof fb, path, "type"),
                                  "only function tools are supported", "is \"%.40s\"",
                                  wire_str(t, "type"));
        json_t *fn = json_object_get(t, "function");
        wire_path(fb, sizeof fb, path, "function");
        if ((rc = wire_check(fn, fn_fields, fb, err))) return rc;
        rc = wire_set_tool(a, req, i, fb, wire_str(fn, "name"), wire_str(fn, "description"),
                           wire_get(fn, "parameters"), err);
        if (rc) return rc;
    }
    req->ntools = (int)n;
    return AP_OK;
}

static ap_rc parse_tool_choice(ap_arena_t *a, json_t *tc, ap_llm_req_t *req, ap_err_t *err) {
    if (!tc) return AP_OK;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (strcmp(s, "none") && strcmp(s, "auto") && strcmp(s, "required"))
            return wire_err_value(err, "tool_choice", "use none, auto, required or an object",
                                  "is \"%.40s\"", s);
        req->tool_choice = wire_dup(a, s);
    } else {
        static const wire_field_t f[] = {
            {"type", WT_STR, true}, {"function", WT_OBJ, true}, {NULL, 0, false}};
        ap_rc rc = wire_check(tc, f, "tool_choice", err);
        if (rc) return rc;
        const char *name = wire_str(json_object_get(tc, "function"), "name");
        if (strcmp(wire_str(tc, "type"), "function") != 0 || !name)
            return wire_err_value(err, "tool_choice",
                                  "use {\"type\":\"function\",\"function\":"
                                  "{\"name\":\"…\"}}",
                                  "does not name a function");
        bool found = false;
        for (int i = 0; i < req->ntools; i++) found |= !strcmp(req->tools[i].name, name);
        if (!found)
            return wire_err_value(err, "tool_choice.function.name", "name one of the tools",
                                  "is \"%.64s\", which is not in tools", name);
        req->tool_choice = wire_dup(a, name);
    }
    if (!req->ntools && strcmp(req->tool_choice, "none") != 0)
        return wire_err_value(err, "tool_choice", "define tools or leave tool_choice out",
                              "is set but no tools are given");
    return AP_OK;
}

static ap_rc parse_response_format(ap_arena_t *a, json_t *rf, ap_llm_req_t *req, ap_err_t *err) {
    if (!rf) return AP_OK;
    const char *type = wire_str(rf, "type");
    if (!type) return wire_err_missing(err, "response_format.type");
    if (!strcmp(type, "text")) return AP_OK;
    if (!strcmp(type, "json_schema")) {
        json_t *js = wire_get(rf, "json_schema");
        if (!json_is_object(js))
            return wire_err_type(err, "response_format.json_schema", "object", js);
        if (!wire_str(js, "name")) return wire_err_missing(err, "response_format.json_schema.name");
    } else if (strcmp(type, "json_object") != 0) {
        return wire_err_value(err, "response_format.type", "use text, json_object or json_schema",
                              "is \"%.40s\"", type);
    }
    req->response_format = ap_llm_json_keep(a, rf);
    return AP_OK;
}

ap_rc wire_openai_parse_request(ap_arena_t *a, json_t *body, ap_llm_req_t *req, ap_err_t *err) {
    ap_rc rc = wire_check(body, req_fields, "", err);
    if (rc) return rc;
    if (wire_get(body, "functions") || wire_get(body, "function_call"))
        return wire_err_value(err, wire_get(body, "functions") ? "functions" : "function_call",
                              "send tools and tool_choice instead",
                              "is deprecated and not supported");
    req->model = wire_dup(a, wire_str(body, "model"));
    if (!*req->model) return wire_err_value(err, "model", "name a model", "is empty");
    json_t *msgs = json_object_get(body, "messages");
    size_t n = json_array_size(msgs);
    if (n == 0) return wire_err_value(err, "messages", "send at least one message", "is empty");
    req->msgs = ap_arena_calloc(a, n * sizeof *req->msgs);
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_message(a, json_array_get(msgs, i), i, &req->msgs[i], err))) return rc;
    req->nmsgs = (int)n;
    int nn = 1;
    double pen = 0;
    if ((rc = wire_int(body, "n", 1, 128, &nn, err))) return rc;
    if (nn != 1)
        return wire_err_value(err, "n", "ask for one choice and repeat the call for more",
                              "is %d; only 1 is supported", nn);
    if ((rc = wire_int(body, "max_tokens", 1, 1 << 30, &req->max_tokens, err)) ||
        (rc = wire_int(body, "max_completion_tokens", 1, 1 << 30, &req->max_tokens, err)) ||
        (rc = wire_number(body, "temperature", 0, 2, &req->temperature, &req->has_temperature,
                          err)) ||
        (rc = wire_number(body, "top_p", 0, 1, &req->top_p, &req->has_top_p, err)) ||
        (rc = wire_number(body, "frequency_penalty", -2, 2, &pen, NULL, err)) ||
        (rc = wire_number(body, "presence_penalty", -2, 2, &pen, NULL, err)) ||
        (rc = wire_int(body, "top_logprobs", 0, 20, &nn, err)) ||
        (rc = wire_stop(a, wire_get(body, "stop"), "stop", 4, req, err)) ||
        (rc = parse_tools(a, wire_get(body, "tools"), req, err)) ||
        (rc = parse_tool_choice(a, wire_get(body, "tool_choice"), req, err)) ||
        (rc = parse_response_format(a, wire_get(body, "response_format"), req, err)))
        return rc;
    req->stream = json_is_true(json_object_get(body, "stream"));
    json_t *so = wire_get(body, "stream_options");
    if (so) {
        static const wire_field_t f[] = {{"include_usage", WT_BOOL | WT_NULL, false},
                                         {"include_obfuscation", WT_BOOL | WT_NULL, false},
                                         {NULL, 0, false}};
        if (!req->stream)
            return wire_err_value(err, "stream_options", "set stream to true or leave it out",
                                  "is only allowed when stream is true");
        if ((rc = wire_check(so, f, "stream_options", err))) return rc;
    }
    json_t *mod = wire_get(body, "modalities");
    for (size_t i = 0; i < json_array_size(mod); i++)
        if (!json_is_string(json_array_get(mod, i)) ||
            strcmp(json_string_value(json_array_get(mod, i)), "text") != 0)
            return wire_err_value(err, "modalities", "ask for [\"text\"]",
                                  "asks for an output other than text, which is not supported");
    if (wire_get(body, "audio"))
        return wire_err_value(err, "audio", "leave audio out", "audio output is not supported");
    req->user = wire_dup(a, wire_str(body, "user"));
    req->metadata = ap_llm_json_keep(a, wire_get(body, "metadata"));
    return AP_OK;
}

/* ---- answers ----------------------------------------------------------- */

static json_t *usage_json(const ap_llm_usage_t *u) {
    return json_pack("{sIsIsIs{sI}}", "prompt_tokens", (json_int_t)u->prompt, "completion_tokens",
                     (json_int_t)u->completion, "total_tokens",
                     (json_int_t)(u->prompt + u->completion), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)u->cached);
}

static json_t *tool_call_json(const ap_llm_tool_call_t *tc) {
    json_t *fn = json_object();
    json_object_set_new(fn, "name", wire_jstr(tc->name ? tc->name : ""));
    json_object_set_new(fn, "arguments", wire_jstr(tc->arguments ? tc->arguments : "{}"));
    json_t *o = json_object();
    char id[WIRE_ID_MAX];
    if (!tc->id) wire_id_buf(id, sizeof id, "call_");
    json_object_set_new(o, "id", wire_jstr(tc->id ? tc->id : id));
    json_object_set_new(o, "type", json_string("function"));
    json_object_set_new(o, "function", fn);
    return o;
}

json_t *wire_openai_render(const ap_llm_resp_t *resp) {
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "content",
                        resp->content || !resp->ntool_calls
                            ? wire_jstr(resp->content ? resp->content : "")
                            : json_null());
    json_object_set_new(msg, "refusal", json_null());
    if (resp->ntool_calls) {
        json_t *arr = json_array();
        for (int i = 0; i < resp->ntool_calls; i++)
            json_array_append_new(arr, tool_call_json(&resp->tool_calls[i]));
        json_object_set_new(msg, "tool_calls", arr);
    }
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "message", msg);
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(
        choice, "finish_reason",
        json_string(resp->finish_reason ? wire_finish_openai(resp->finish_reason) : "stop"));
    json_t *o = json_object();
    char id[WIRE_ID_MAX];
    if (!resp->id) wire_id_buf(id, sizeof id, "chatcmpl-");
    json_object_set_new(o, "id", wire_jstr(resp->id ? resp->id : id));
    json_object_set_new(o, "object", json_string("chat.completion"));
    json_object_set_new(o, "created",
                        json_integer(resp->created ? resp->created : (json_int_t)time(NULL)));
    json_object_set_new(o, "model", wire_jstr(resp->model ? resp->model : ""));
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    json_object_set_new(o, "usage", usage_json(&resp->usage));
    return o;
}

char *wire_openai_render_text(const ap_llm_resp_t *resp, size_t *len) {
    if (resp->ntool_calls) return NULL;
    ap_buf_t b;
    ap_buf_init(&b, 0);
    char id[WIRE_ID_MAX], num[160];
    if (!resp->id) wire_id_buf(id, sizeof id, "chatcmpl-");
    ap_buf_puts(&b, "{\"id\":");
    wire_jbuf_str(&b, resp->id ? resp->id : id);
    snprintf(num, sizeof num, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
             (long long)(resp->created ? resp->created : (json_int_t)time(NULL)));
    ap_buf_puts(&b, num);
    wire_jbuf_str(&b, resp->model ? resp->model : "");
    ap_buf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    wire_jbuf_str(&b, resp->content ? resp->content : "");
    ap_buf_puts(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    wire_jbuf_str(&b, resp->finish_reason ? wire_finish_openai(resp->finish_reason) : "stop");
    snprintf(num, sizeof num,
             "}],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
             "\"prompt_tokens_details\":{\"cached_tokens\":%lld}}}",
             (long long)resp->usage.prompt, (long long)resp->usage.completion,
             (long long)(resp->usage.prompt + resp->usage.completion), (long long)resp->usage.cached);
    ap_buf_puts(&b, num);
    *len = b.len;
    return ap_buf_steal(&b);
}

static const char *error_type(int status) {
    if (status == 401) return "authentication_error";
    if (status == 403) return "permission_error";
    if (status == 429) return "rate_limit_error";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
}

json_t *wire_openai_error_body(int status, const char *code, const char *message) {
    json_t *e = json_object();
    json_object_set_new(e, "message", wire_jstr(message));
    json_object_set_new(e, "type", json_string(error_type(status)));
    json_object_set_new(e, "param", json_null());
    json_object_set_new(e, "code", wire_jstr(code));
    return json_pack("{so}", "error", e);
}

/* ---- upstream calls ---------------------------------------------------- */

/* One content part in OpenAI's shape, or NULL to drop it. */
static ap_rc to_openai_part(ap_arena_t *a, json_t *p, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *type = wire_str(p, "type");
    if (!type) return AP_OK;
    if (!strcmp(type, "text")) {
        *out = json_pack("{s:s,s:o}", "type", "text", "text", wire_jstr(wire_str(p, "text")));
        return AP_OK;
    }
    if (!strcmp(type, "image_url") || !strcmp(type, "file") || !strcmp(type, "input_audio")) {
        *out = json_incref(p);
        return AP_OK;
    }
    if (!strcmp(type, "thinking") || !strcmp(type, "redacted_thinking")) return AP_OK;
    json_t *src = wire_get(p, "source");
    const char *st = wire_str(src, "type");
    if (!strcmp(type, "image") && st) {
        const char *url = !strcmp(st, "url") ? wire_str(src, "url") : NULL;
        if (!strcmp(st, "base64") && wire_str(src, "media_type") && wire_str(src, "data"))
            url = ap_arena_printf(a, "data:%s;base64,%s", wire_str(src, "media_type"),
                                  wire_str(src, "data"));
        if (url) {
            *out =
                json_pack("{s:s,s:{s:o}}", "type", "image_url", "image_url", "url", wire_jstr(url));
            return AP_OK;
        }
    }
    if (!strcmp(type, "document") && st && !strcmp(st, "text") && wire_str(src, "data")) {
        *out = json_pack("{s:s,s:o}", "type", "text", "text", wire_jstr(wire_str(src, "data")));
        return AP_OK;
    }
    if (!strcmp(type, "document") && st && !strcmp(st, "base64") && wire_str(src, "data")) {
        const char *mt =
            wire_str(src, "media_type") ? wire_str(src, "media_type") : "application/pdf";
        *out =
            json_pack("{s:s,s:{s:o,s:s}}", "type", "file", "file", "file_data",
                      wire_jstr(ap_arena_printf(a, "data:%s;base64,%s", mt, wire_str(src, "data"))),
                      "filename", "document.pdf");
        return AP_OK;
    }
    return ap_err_set(err, AP_ERR_INVALID, "unsupported-content", "content cannot be translated",
                      "send text, images as base64 or URLs, or PDF documents as base64",
                      "a content part of type \"%.40s\" cannot be sent to an OpenAI-compatible "
                      "provider",
                      type);
}

static ap_rc message_json(ap_arena_t *a, const ap_llm_msg_t *m, json_t **out, ap_err_t *err) {
    json_t *o = json_object();
    *out = o;
    json_object_set_new(o, "role", json_string(ap_llm_role_name(m->role)));
    if (m->role == AP_LLM_TOOL) {
        json_object_set_new(o, "tool_call_id", wire_jstr(m->tool_call_id ? m->tool_call_id : ""));
        json_object_set_new(o, "content", wire_jstr(m->content ? m->content : ""));
        return AP_OK;
    }
    if (m->role == AP_LLM_USER && json_is_array(m->parts)) {
        json_t *arr = json_array(), *p;
        size_t i;
        json_array_foreach(m->parts, i, p) {
            json_t *q;
            ap_rc rc = to_openai_part(a, p, &q, err);
            if (rc) {
                json_decref(arr);
                return rc;
            }
            if (q) json_array_append_new(arr, q);
        }
        /* a lone text part goes as a string, as Anthropic's do */
        json_t *only = json_array_size(arr) == 1 ? json_array_get(arr, 0) : NULL;
        if (only && !strcmp(wire_str(only, "type"), "text")) {
            json_object_set(o, "content", json_object_get(only, "text"));
            json_decref(arr);
        } else {
            json_object_set_new(o, "content", arr);
        }
    } else if (m->role == AP_LLM_ASSISTANT && !m->content && m->ntool_calls) {
        json_object_set_new(o, "content", json_null());
    } else {
        json_object_set_new(o, "content", wire_jstr(m->content ? m->content : ""));
    }
    if (m->name) json_object_set_new(o, "name", wire_jstr(m->name));
    if (m->role == AP_LLM_ASSISTANT && m->ntool_calls) {
        json_t *arr = json_array();
        for (int i = 0; i < m->ntool_calls; i++)
            json_array_append_new(arr, tool_call_json(&m->tool_calls[i]));
        json_object_set_new(o, "tool_calls", arr);
    }
    return AP_OK;
}

/* The request body written directly, for the common shape: text
 * messages (no parts, tool calls or tool results), no tools, no response
 * format, no sampling reals.  Byte for byte what json_dumps of
 * wire_openai_body gives; NULL for any other shape. */
char *wire_openai_body_text(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                            size_t *len) {
    if (req->ntools || req->tool_choice || req->response_format || req->has_temperature ||
        req->has_top_p)
        return NULL;
    for (int i = 0; i < req->nmsgs; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->role == AP_LLM_TOOL || m->parts || m->ntool_calls) return NULL;
    }
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_buf_puts(&b, "{\"model\":");
    wire_jbuf_str(&b, t->model);
    ap_buf_puts(&b, ",\"messages\":[");
    for (int i = 0; i < req->nmsgs; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        ap_buf_puts(&b, i ? ",{\"role\":\"" : "{\"role\":\"");
        ap_buf_puts(&b, ap_llm_role_name(m->role));
        ap_buf_puts(&b, "\",\"content\":");
        wire_jbuf_str(&b, m->content ? m->content : "");
        if (m->name) {
            ap_buf_puts(&b, ",\"name\":");
            wire_jbuf_str(&b, m->name);
        }
        ap_buf_puts(&b, "}");
    }
    ap_buf_puts(&b, "]");
    if (req->nstop) {
        for (int i = 0; i < req->nstop; i++) {
            ap_buf_puts(&b, i ? "," : ",\"stop\":[");
            wire_jbuf_str(&b, req->stop[i]);
        }
        ap_buf_puts(&b, "]");
    }
    if (req->max_tokens > 0)
        ap_buf_printf(&b, ",\"%s\":%lld",
                      strstr(t->base_url, "api.openai.com") ? "max_completion_tokens" : "max_tokens",
                      (long long)req->max_tokens);
    if (req->user) {
        ap_buf_puts(&b, ",\"user\":");
        wire_jbuf_str(&b, req->user);
    }
    if (req->stream) ap_buf_puts(&b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    ap_buf_puts(&b, "}");
    char *s = ap_arena_strndup(a, b.p, b.len);
    *len = b.len;
    ap_buf_free(&b);
    return s;
}

ap_rc wire_openai_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                        ap_http_call_t *out, ap_err_t *err) {
    out->body = wire_openai_body_text(a, req, t, &out->len);
    if (!out->body) {
        json_t *body;
        ap_rc rc = wire_openai_body(a, req, t, &body, err);
        if (rc) return rc;
        out->body = wire_dump(a, body, &out->len);
    }
    out->url = wire_url(a, t->base_url, "/chat/completions");
    wire_header(a, out, "Content-Type: application/json");
    if (t->api_key && *t->api_key) wire_header(a, out, "Authorization: Bearer %s", t->api_key);
    if (req->stream) wire_header(a, out, "Accept: text/event-stream");
    return AP_OK;
}

ap_rc wire_openai_body(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                       json_t **out, ap_err_t *err) {
    *out = NULL;
    json_t *body = json_object(), *msgs = json_array();
    json_object_set_new(body, "model", wire_jstr(t->model));
    json_object_set_new(body, "messages", msgs);
    for (int i = 0; i < req->nmsgs; i++) {
        json_t *m;
        ap_rc rc = message_json(a, &req->msgs[i], &m, err);
        json_array_append_new(msgs, m);
        if (rc) {
            json_decref(body);
            return rc;
        }
    }
    if (req->ntools) {
        json_t *tools = json_array();
        for (int i = 0; i < req->ntools; i++) {
            const ap_llm_tool_t *tl = &req->tools[i];
            json_t *fn = json_pack("{s:o}", "name", wire_jstr(tl->name));
            if (tl->description) json_object_set_new(fn, "description", wire_jstr(tl->description));
            if (tl->parameters) json_object_set(fn, "parameters", tl->parameters);
            json_array_append_new(tools,
                                  json_pack("{s:s,s:o}", "type", "function", "function", fn));
        }
        json_object_set_new(body, "tools", tools);
    }
    if (req->tool_choice) {
        const char *c = req->tool_choice;
        json_object_set_new(
            body, "tool_choice",
            !strcmp(c, "auto") || !strcmp(c, "none") || !strcmp(c, "required")
                ? json_string(c)
                : json_pack("{s:s,s:{s:o}}", "type", "function", "function", "name", wire_jstr(c)));
    }
    if (req->response_format) json_object_set(body, "response_format", req->response_format);
    if (req->nstop) {
        json_t *stop = json_array();
        for (int i = 0; i < req->nstop; i++) json_array_append_new(stop, wire_jstr(req->stop[i]));
        json_object_set_new(body, "stop", stop);
    }
    if (req->has_temperature) json_object_set_new(body, "temperature", json_real(req->temperature));
    if (req->has_top_p) json_object_set_new(body, "top_p", json_real(req->top_p));
    if (req->max_tokens > 0)
        json_object_set_new(
            body, strstr(t->base_url, "api.openai.com") ? "max_completion_tokens" : "max_tokens",
            json_integer(req->max_tokens));
    if (req->user) json_object_set_new(body, "user", wire_jstr(req->user));
    if (req->stream) {
        json_object_set_new(body, "stream", json_true());
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    *out = body;
    return AP_OK;
}

static ap_rc malformed(ap_llm_error_t *lerr, const char *what) {
    char m[200];
    snprintf(m, sizeof m, "malformed reply from the provider: %s", what);
    memset(lerr, 0, sizeof *lerr);
    lerr->kind = AP_LLM_UPSTREAM;
    wire_set_message(lerr, m, strlen(m));
    return AP_ERR_UNAVAILABLE;
}

static void read_usage(json_t *u, ap_llm_usage_t *out) {
    out->prompt = (int64_t)json_integer_value(json_object_get(u, "prompt_tokens"));
    out->completion = (int64_t)json_integer_value(json_object_get(u, "completion_tokens"));
    json_t *det = json_object_get(u, "prompt_tokens_details");
    out->cached = (int64_t)json_integer_value(json_object_get(det, "cached_tokens"));
}

/* A tool call's arguments as JSON text (some servers send an object). */
static const char *args_text(ap_arena_t *a, json_t *v) {
    if (json_is_string(v)) return wire_dup(a, json_string_value(v));
    if (json_is_object(v)) return wire_dump(a, json_incref(v), NULL);
    return NULL;
}

ap_rc wire_openai_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr) {
    json_t *choices = json_object_get(body, "choices");
    json_t *c0 = json_array_get(choices, 0);
    json_t *msg = json_object_get(c0, "message");
    if (!json_is_object(msg)) return malformed(lerr, "no choices[0].message");
    resp->id = wire_dup(a, wire_str(body, "id"));
    resp->model = wire_dup(a, wire_str(body, "model"));
    resp->created = (int64_t)json_integer_value(json_object_get(body, "created"));
    resp->content = wire_dup(a, wire_str(msg, "content"));
    if (!resp->content) resp->content = wire_dup(a, wire_str(msg, "refusal"));
    json_t *tcs = wire_get(msg, "tool_calls");
    size_t n = json_array_size(tcs);
    if (n > WIRE_MAX_TOOLS) return malformed(lerr, "too many tool calls");
    resp->tool_calls = ap_arena_calloc(a, (n ? n : 1) * sizeof *resp->tool_calls);
    for (size_t i = 0; i < n; i++) {
        json_t *tc = json_array_get(tcs, i), *fn = json_object_get(tc, "function");
        if (!json_is_object(fn)) return malformed(lerr, "tool call without function");
        resp->tool_calls[i].id = wire_dup(a, wire_str(tc, "id"));
        resp->tool_calls[i].name = wire_dup(a, wire_str(fn, "name"));
        resp->tool_calls[i].arguments = args_text(a, json_object_get(fn, "arguments"));
    }
    resp->ntool_calls = (int)n;
    resp->finish_reason = wire_finish_openai(wire_str(c0, "finish_reason"));
    read_usage(wire_get(body, "usage"), &resp->usage);
    return AP_OK;
}

/* ---- streams ----------------------------------------------------------- */

static ap_rc tool_delta(ap_llm_decoder_t *d, json_t *tc) {
    if (!json_is_object(tc)) return AP_OK;
    json_t *fn = json_object_get(tc, "function");
    const char *id = wire_str(tc, "id");
    json_t *ji = json_object_get(tc, "index");
    int idx;
    if (json_is_integer(ji)) {
        json_int_t v = json_integer_value(ji);
        if (v < 0 || v >= WIRE_MAX_TOOLS)
            return wire_dec_fail(d, AP_LLM_UPSTREAM, "tool call index %lld out of range",
                                 (long long)v);
        idx = (int)v;
    } else { /* servers that leave out the index: a new id starts a call */
        idx = id || d->last_tool < 0 ? d->ntools : d->last_tool;
        if (idx >= WIRE_MAX_TOOLS) return wire_dec_fail(d, AP_LLM_UPSTREAM, "too many tool calls");
    }
    if (idx >= d->ntools) d->ntools = idx + 1;
    d->last_tool = idx;
    const char *args = args_text(d->a, json_object_get(fn, "arguments"));
    ap_llm_delta_t delta = {.tool_index = idx,
                            .tool_id = id,
                            .tool_name = wire_str(fn, "name"),
                            .tool_args = args && *args ? args : NULL};
    wire_emit(d, &delta);
    return AP_OK;
}

ap_rc wire_openai_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev) {
    const char *s = ev->data;
    size_t n = ev->data_len;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 6 && !memcmp(s, "[DONE]", 6)) {
        d->done = true;
        return AP_OK;
    }
    json_t *v = wire_dec_json(d, ev);
    if (!v) return AP_ERR_UNAVAILABLE;
    ap_rc rc = AP_OK;
    if (wire_get(v, "error") || !strcmp(ev->event, "error")) {
        if (!wire_fail_json(&d->error, 0, NULL, v))
            wire_fail(&d->error, 0, NULL, NULL, NULL, "the provider sent an error event");
        d->failed = true;
        json_decref(v);
        return AP_ERR_UNAVAILABLE;
    }
    json_t *choices = json_object_get(v, "choices"), *c0 = NULL, *c;
    size_t i;
    json_array_foreach(choices, i, c) {
        if (json_integer_value(json_object_get(c, "index")) == 0) {
            c0 = c;
            break;
        }
    }
    json_t *delta = json_object_get(c0, "delta");
    const char *text = wire_str(delta, "content");
    if (!text || !*text) text = wire_str(delta, "refusal");
    if (text && *text) {
        ap_llm_delta_t dl = {.content = text, .tool_index = -1};
        wire_emit(d, &dl);
    }
    json_t *tcs = wire_get(delta, "tool_calls");
    json_array_foreach(tcs, i, c) {
        if ((rc = tool_delta(d, c))) break;
    }
    const char *fin = wire_str(c0, "finish_reason");
    if (!rc && fin) {
        ap_llm_delta_t dl = {.finish_reason = wire_finish_openai(fin), .tool_index = -1};
        wire_emit(d, &dl);
    }
    json_t *u = wire_get(v, "usage");
    if (!rc && json_is_object(u)) {
        ap_llm_delta_t dl = {.tool_index = -1, .has_usage = true};
        read_usage(u, &dl.usage);
        wire_emit(d, &dl);
    }
    json_decref(v);
    return rc;
}

static void chunk(ap_llm_encoder_t *e, json_t *delta, const char *finish, ap_buf_t *out) {
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "id", wire_jstr(e->id));
    json_object_set_new(o, "object", json_string("chat.completion.chunk"));
    json_object_set_new(o, "created", json_integer(e->created));
    json_object_set_new(o, "model", wire_jstr(e->model));
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    if (e->include_usage) json_object_set_new(o, "usage", json_null());
    wire_sse_json(out, NULL, o);
}

static void start(ap_llm_encoder_t *e, ap_buf_t *out) {
    if (e->started) return;
    e->started = true;
    chunk(e, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL, out);
}

void wire_openai_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out) {
    start(e, out);
    if (d->content && *d->content)
        chunk(e, json_pack("{s:o}", "content", wire_jstr(d->content)), NULL, out);
    if (d->tool_index >= 0) {
        bool created;
        wire_enc_tool(e, d->tool_index, true, &created);
        json_t *tc = json_pack("{s:i}", "index", d->tool_index);
        if (created) {
            json_object_set_new(tc, "id",
                                wire_jstr(d->tool_id ? d->tool_id : wire_id(e->a, "call_")));
            json_object_set_new(tc, "type", json_string("function"));
            json_object_set_new(tc, "function",
                                json_pack("{s:o,s:o}", "name",
                                          wire_jstr(d->tool_name ? d->tool_name : ""), "arguments",
                                          wire_jstr(d->tool_args ? d->tool_args : "")));
            chunk(e, json_pack("{s:[o]}", "tool_calls", tc), NULL, out);
        } else if (d->tool_args && *d->tool_args) {
            json_object_set_new(tc, "function",
                                json_pack("{s:o}", "arguments", wire_jstr(d->tool_args)));
            chunk(e, json_pack("{s:[o]}", "tool_calls", tc), NULL, out);
        } else {
            json_decref(tc);
        }
    }
    if (d->finish_reason && !e->finish_sent) {
        e->finish_sent = true;
        chunk(e, json_object(), e->finish_reason, out);
    }
}

void wire_openai_finish(ap_llm_encoder_t *e, ap_buf_t *out) {
    start(e, out);
    if (!e->finish_sent) {
        e->finish_sent = true;
        const char *fin = e->finish_reason ? e->finish_reason : e->ntools ? "tool_calls" : "stop";
        chunk(e, json_object(), fin, out);
    }
    if (e->include_usage) {
        json_t *o = json_object();
        json_object_set_new(o, "id", wire_jstr(e->id));
        json_object_set_new(o, "object", json_string("chat.completion.chunk"));
        json_object_set_new(o, "created", json_integer(e->created));
        json_object_set_new(o, "model", wire_jstr(e->model));
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage_json(&e->usage));
        wire_sse_json(out, NULL, o);
    }
    ap_sse_write(out, NULL, "[DONE]", 6);
}

void wire_openai_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out) {
    (void)e;
    const char *msg = lerr->message[0] ? lerr->message : ap_llm_errkind_name(lerr->kind);
    wire_sse_json(out, NULL,
                  wire_openai_error_body(ap_wire_error_status(lerr->kind),
                                         ap_llm_errkind_name(lerr->kind), msg));
}
