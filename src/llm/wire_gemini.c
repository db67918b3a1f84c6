/*
 * wire_gemini.c - Google Gemini generateContent: upstream calls, replies
 * and streams (streamGenerateContent?alt=sse).  Gemini is never a client
 * protocol of the gateway; its answer and error renderers exist for
 * symmetry and tests.
 *
 * 1. Turns alternate between "user" and "model": consecutive turns of one
 *    role are merged; tool results are user turns of functionResponse
 *    parts, whose function name is found from the tool call they answer
 *    (Gemini matches results by name, not id).
 * 2. A functionResponse needs an object: a result that is a JSON object is
 *    sent as it is, anything else as {"result": text} ({"error": text}
 *    when the tool failed).
 * 3. Schemas (tool parameters, response schemas) lose the JSON Schema
 *    keys Gemini refuses ($schema, additionalProperties, …), and an object
 *    schema without properties is left out, which Gemini requires.
 * 4. finishReason SAFETY (and the other filter reasons) with no text and
 *    no tool call is an error, CONTENT_FILTERED; with some text it is the
 *    content_filter finish reason.  A tool call with finishReason STOP
 *    finishes as tool_calls, as OpenAI clients expect.
 * 5. usageMetadata is cumulative in streams: the last one seen goes out
 *    with the finish delta.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/wire_int.h"

const char *wire_gemini_model(const char *model) {
    if (!strncmp(model, "models/", 7)) model += 7;
    if (!*model) return NULL;
    for (const char *c = model; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_') return NULL;
    return model;
}

/* ---- upstream calls ---------------------------------------------------- */

static ap_rc to_part(ap_arena_t *a, json_t *p, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *type = wire_str(p, "type");
    if (!type) return AP_OK;
    const char *text = !strcmp(type, "text")      ? wire_str(p, "text")
                       : !strcmp(type, "refusal") ? wire_str(p, "refusal")
                                                  : NULL;
    if (text) {
        if (*text) *out = json_pack("{s:o}", "text", wire_jstr(text));
        return AP_OK;
    }
    if (!strcmp(type, "thinking") || !strcmp(type, "redacted_thinking")) return AP_OK;
    char *mime = NULL, *data = NULL;
    json_t *src = wire_get(p, "source");
    if (!strcmp(type, "image_url"))
        wire_data_url(a, wire_str(wire_get(p, "image_url"), "url"), &mime, &data);
    else if (!strcmp(type, "file"))
        wire_data_url(a, wire_str(wire_get(p, "file"), "file_data"), &mime, &data);
    else if (!strcmp(type, "input_audio") && wire_str(wire_get(p, "input_audio"), "data")) {
        json_t *au = wire_get(p, "input_audio");
        data = wire_dup(a, wire_str(au, "data"));
        mime =
            ap_arena_printf(a, "audio/%s", wire_str(au, "format") ? wire_str(au, "format") : "wav");
    } else if ((!strcmp(type, "image") || !strcmp(type, "document")) && wire_str(src, "type")) {
        const char *st = wire_str(src, "type");
        if (!strcmp(st, "base64") && wire_str(src, "data")) {
            data = wire_dup(a, wire_str(src, "data"));
            mime = wire_dup(a, wire_str(src, "media_type") ? wire_str(src, "media_type")
                                                           : "application/pdf");
        } else if (!strcmp(st, "text") && wire_str(src, "data")) {
            *out = json_pack("{s:o}", "text", wire_jstr(wire_str(src, "data")));
            return AP_OK;
        }
    }
    if (mime && data) {
        *out = json_pack("{s:{s:o,s:o}}", "inlineData", "mimeType", wire_jstr(mime), "data",
                         wire_jstr(data));
        return AP_OK;
    }
    return ap_err_set(err, AP_ERR_INVALID, "unsupported-content", "content cannot be translated",
                      "send text, or images and files inline as base64 (data: URLs)",
                      "a content part of type \"%.40s\" cannot be sent to Gemini (only inline "
                      "data; URLs are not fetched)",
                      type);
}

/* Tool calls of the conversation sorted by id, to name tool results in
 * O(log n) each (a conversation may hold thousands). */
typedef struct {
    const ap_llm_tool_call_t **calls;
    size_t n;
} call_index_t;

static int by_id(const void *x, const void *y) {
    return strcmp((*(const ap_llm_tool_call_t *const *)x)->id,
                  (*(const ap_llm_tool_call_t *const *)y)->id);
}

static void index_calls(ap_arena_t *a, const ap_llm_req_t *req, call_index_t *ix) {
    size_t n = 0;
    for (int i = 0; i < req->nmsgs; i++) n += (size_t)req->msgs[i].ntool_calls;
    ix->calls = ap_arena_alloc(a, (n ? n : 1) * sizeof *ix->calls);
    ix->n = 0;
    for (int i = 0; i < req->nmsgs; i++)
        for (int j = 0; j < req->msgs[i].ntool_calls; j++)
            if (req->msgs[i].tool_calls[j].id) ix->calls[ix->n++] = &req->msgs[i].tool_calls[j];
    if (ix->n > 1) qsort(ix->calls, ix->n, sizeof *ix->calls, by_id);
}

/* The function name a tool result answers. */
static const char *result_name(const call_index_t *ix, const ap_llm_msg_t *m) {
    if (m->name) return m->name;
    if (!m->tool_call_id || !ix->n) return NULL;
    ap_llm_tool_call_t key = {.id = m->tool_call_id};
    const ap_llm_tool_call_t *kp = &key;
    const ap_llm_tool_call_t *const *hit = bsearch(&kp, ix->calls, ix->n, sizeof *ix->calls, by_id);
    return hit ? (*hit)->name : NULL;
}

static ap_rc message_parts(ap_arena_t *a, const call_index_t *ix, const ap_llm_msg_t *m,
                           json_t *parts, ap_err_t *err) {
    if (m->role == AP_LLM_TOOL) {
        const char *name = result_name(ix, m);
        if (!name)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-tool-result",
                              "tool result answers no known tool call",
                              "send the assistant message with the tool call before its result",
                              "no tool call with id \"%.64s\" is in the conversation",
                              m->tool_call_id ? m->tool_call_id : "");
        json_t *resp = m->is_error ? NULL : wire_args_object(m->content);
        if (resp && (!m->content || !*m->content))
            json_object_set_new(resp, "result", json_string(""));
        if (!resp)
            resp = json_pack("{s:o}", m->is_error ? "error" : "result",
                             wire_jstr(m->content ? m->content : ""));
        json_array_append_new(parts, json_pack("{s:{s:o,s:o}}", "functionResponse", "name",
                                               wire_jstr(name), "response", resp));
        return AP_OK;
    }
    if (json_is_array(m->parts)) {
        size_t k;
        json_t *p;
        json_array_foreach(m->parts, k, p) {
            json_t *q;
            ap_rc rc = to_part(a, p, &q, err);
            if (rc) return rc;
            if (q) json_array_append_new(parts, q);
        }
    } else if (m->content && *m->content) {
        json_array_append_new(parts, json_pack("{s:o}", "text", wire_jstr(m->content)));
    }
    for (int k = 0; m->role == AP_LLM_ASSISTANT && k < m->ntool_calls; k++) {
        const ap_llm_tool_call_t *tc = &m->tool_calls[k];
        json_t *args = wire_args_object(tc->arguments);
        if (!args)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-tool-call",
                              "tool call arguments are not a JSON object",
                              "send the arguments of earlier tool calls as a JSON object",
                              "the arguments of tool call \"%.64s\" (%.64s) are not a JSON object",
                              tc->id ? tc->id : "", tc->name ? tc->name : "");
        json_array_append_new(parts, json_pack("{s:{s:o,s:o}}", "functionCall", "name",
                                               wire_jstr(tc->name ? tc->name : ""), "args", args));
    }
    return AP_OK;
}

/* Parameters for a function declaration, or NULL to leave them out. */
static json_t *parameters(json_t *schema) {
    if (!json_is_object(schema)) return NULL;
    json_t *props = json_object_get(schema, "properties");
    if (!props || (json_is_object(props) && json_object_size(props) == 0)) return NULL;
    return wire_gemini_schema(schema);
}

static json_t *generation_config(const ap_llm_req_t *req) {
    json_t *g = json_object();
    if (req->has_temperature) json_object_set_new(g, "temperature", json_real(req->temperature));
    if (req->has_top_p) json_object_set_new(g, "topP", json_real(req->top_p));
    if (req->top_k > 0) json_object_set_new(g, "topK", json_integer(req->top_k));
    if (req->max_tokens > 0)
        json_object_set_new(g, "maxOutputTokens", json_integer(req->max_tokens));
    if (req->nstop) {
        json_t *stop = json_array();
        for (int i = 0; i < req->nstop; i++) json_array_append_new(stop, wire_jstr(req->stop[i]));
        json_object_set_new(g, "stopSequences", stop);
    }
    const char *rf = wire_str(req->response_format, "type");
    if (rf && (!strcmp(rf, "json_object") || !strcmp(rf, "json_schema"))) {
        json_object_set_new(g, "responseMimeType", json_string("application/json"));
        json_t *schema = wire_get(wire_get(req->response_format, "json_schema"), "schema");
        if (json_is_object(schema))
            json_object_set_new(g, "responseSchema", wire_gemini_schema(schema));
    }
    return g;
}

ap_rc wire_gemini_build(ap_arena_t *a, const ap_llm_req_t *req, const ap_llm_target_t *t,
                        ap_http_call_t *out, ap_err_t *err) {
    const char *model = wire_gemini_model(t->model);
    if (!model)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-target", "invalid Gemini model id",
                          "use letters, digits, '.', '-' and '_'", "model \"%.64s\"", t->model);
    ap_rc rc = AP_OK;
    json_t *body = json_object(), *contents = json_array();
    wire_sb_t sys;
    wire_sb_init(&sys, a);
    const char *last = NULL;
    call_index_t ix;
    index_calls(a, req, &ix);
    for (int i = 0; i < req->nmsgs && !rc; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->role == AP_LLM_SYSTEM) {
            if (m->content && *m->content) wire_sb_add(&sys, "\n\n", m->content);
            continue;
        }
        const char *role = m->role == AP_LLM_ASSISTANT ? "model" : "user";
        json_t *parts = json_array();
        rc = message_parts(a, &ix, m, parts, err);
        if (!json_array_size(parts)) {
            json_decref(parts);
            continue;
        }
        if (last && !strcmp(last, role)) {
            json_array_extend(
                json_object_get(json_array_get(contents, json_array_size(contents) - 1), "parts"),
                parts);
            json_decref(parts);
        } else {
            json_array_append_new(contents, json_pack("{s:s,s:o}", "role", role, "parts", parts));
        }
        last = role;
    }
    json_object_set_new(body, "contents", contents);
    if (rc) {
        json_decref(body);
        return rc;
    }
    if (wire_sb_str(&sys))
        json_object_set_new(
            body, "systemInstruction",
            json_pack("{s:[{s:o}]}", "parts", "text", wire_jstr(wire_sb_str(&sys))));
    if (req->ntools) {
        json_t *decls = json_array();
        for (int i = 0; i < req->ntools; i++) {
            const ap_llm_tool_t *tl = &req->tools[i];
            json_t *o = json_pack("{s:o}", "name", wire_jstr(tl->name));
            if (tl->description) json_object_set_new(o, "description", wire_jstr(tl->description));
            json_t *p = parameters(tl->parameters);
            if (p) json_object_set_new(o, "parameters", p);
            json_array_append_new(decls, o);
        }
        json_object_set_new(body, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
    }
    if (req->tool_choice) {
        const char *c = req->tool_choice;
        json_t *fc = json_object();
        bool named = strcmp(c, "auto") && strcmp(c, "none") && strcmp(c, "required");
        json_object_set_new(fc, "mode",
                            json_string(!strcmp(c, "auto")   ? "AUTO"
                                        : !strcmp(c, "none") ? "NONE"
                                                             : "ANY"));
        if (named) json_object_set_new(fc, "allowedFunctionNames", json_pack("[o]", wire_jstr(c)));
        json_object_set_new(body, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fc));
    }
    json_t *gc = generation_config(req);
    if (json_object_size(gc))
        json_object_set_new(body, "generationConfig", gc);
    else
        json_decref(gc);
    char *path = ap_arena_printf(a, "/models/%s:%s", model,
                                 req->stream ? "streamGenerateContent?alt=sse" : "generateContent");
    out->url = wire_url(a, t->base_url, path);
    wire_header(a, out, "Content-Type: application/json");
    if (t->api_key && *t->api_key) wire_header(a, out, "x-goog-api-key: %s", t->api_key);
    if (req->stream) wire_header(a, out, "Accept: text/event-stream");
    out->body = wire_dump(a, body, &out->len);
    return AP_OK;
}

/* ---- replies ----------------------------------------------------------- */

static void read_usage(json_t *u, ap_llm_usage_t *out) {
    out->prompt = (int64_t)json_integer_value(json_object_get(u, "promptTokenCount"));
    out->completion = (int64_t)json_integer_value(json_object_get(u, "candidatesTokenCount")) +
                      (int64_t)json_integer_value(json_object_get(u, "thoughtsTokenCount"));
    out->cached = (int64_t)json_integer_value(json_object_get(u, "cachedContentTokenCount"));
}

static ap_rc filtered(ap_llm_error_t *lerr, const char *why) {
    char m[160];
    snprintf(m, sizeof m, "the provider's safety filter blocked the answer (%.60s)", why);
    memset(lerr, 0, sizeof *lerr);
    lerr->kind = AP_LLM_CONTENT_FILTERED;
    wire_set_message(lerr, m, strlen(m));
    return AP_ERR_UNAVAILABLE;
}

/* The model failed to produce a valid call: worth another try. */
static ap_rc malformed_call(ap_llm_error_t *lerr) {
    memset(lerr, 0, sizeof *lerr);
    lerr->kind = AP_LLM_UPSTREAM;
    snprintf(lerr->message, sizeof lerr->message,
             "the model produced a malformed function call (MALFORMED_FUNCTION_CALL)");
    return AP_ERR_UNAVAILABLE;
}

/* The prompt was blocked: no candidate, promptFeedback.blockReason. */
static const char *blocked(json_t *body) {
    if (json_array_size(json_object_get(body, "candidates"))) return NULL;
    return wire_str(wire_get(body, "promptFeedback"), "blockReason");
}

static char *call_args(ap_arena_t *a, json_t *fc) {
    json_t *args = json_object_get(fc, "args");
    return json_is_object(args) ? wire_dump(a, json_incref(args), NULL) : wire_dup(a, "{}");
}

ap_rc wire_gemini_reply(ap_arena_t *a, json_t *body, ap_llm_resp_t *resp, ap_llm_error_t *lerr) {
    const char *why = blocked(body);
    if (why) return filtered(lerr, why);
    json_t *c0 = json_array_get(json_object_get(body, "candidates"), 0);
    if (!json_is_object(c0)) {
        memset(lerr, 0, sizeof *lerr);
        lerr->kind = AP_LLM_UPSTREAM;
        snprintf(lerr->message, sizeof lerr->message,
                 "malformed reply from the provider: no candidates");
        return AP_ERR_UNAVAILABLE;
    }
    json_t *parts = json_object_get(json_object_get(c0, "content"), "parts");
    size_t n = json_array_size(parts), i;
    if (n > WIRE_MAX_BLOCKS) n = WIRE_MAX_BLOCKS;
    resp->tool_calls = ap_arena_calloc(a, (n ? n : 1) * sizeof *resp->tool_calls);
    wire_sb_t text;
    wire_sb_init(&text, a);
    for (i = 0; i < n; i++) {
        json_t *p = json_array_get(parts, i), *fc = wire_get(p, "functionCall");
        if (wire_str(p, "text") && !json_is_true(json_object_get(p, "thought"))) {
            wire_sb_add(&text, NULL, wire_str(p, "text"));
        } else if (json_is_object(fc)) {
            ap_llm_tool_call_t *tc = &resp->tool_calls[resp->ntool_calls++];
            tc->id = wire_dup(a, wire_str(fc, "id"));
            tc->name = wire_dup(a, wire_str(fc, "name"));
            tc->arguments = call_args(a, fc);
        }
    }
    const char *raw = wire_str(c0, "finishReason");
    const char *fin = wire_finish_gemini(raw);
    const char *t = wire_sb_str(&text);
    bool empty = (!t || !*t) && !resp->ntool_calls;
    if (fin && !strcmp(fin, "content_filter") && empty) return filtered(lerr, raw);
    if (raw && !strcmp(raw, "MALFORMED_FUNCTION_CALL") && empty) return malformed_call(lerr);
    if (resp->ntool_calls && (!fin || !strcmp(fin, "stop"))) fin = "tool_calls";
    resp->content = t;
    resp->finish_reason = fin;
    resp->id = wire_dup(a, wire_str(body, "responseId"));
    resp->model = wire_dup(a, wire_str(body, "modelVersion"));
    read_usage(wire_get(body, "usageMetadata"), &resp->usage);
    return AP_OK;
}

ap_rc wire_gemini_event(ap_llm_decoder_t *d, const ap_sse_event_t *ev) {
    json_t *v = wire_dec_json(d, ev);
    if (!v) return AP_ERR_UNAVAILABLE;
    ap_rc rc = AP_OK;
    const char *why = blocked(v);
    if (wire_get(v, "error")) {
        if (!wire_fail_json(&d->error, 0, NULL, v))
            wire_fail(&d->error, 0, NULL, NULL, NULL, "the provider sent an error event");
        d->failed = true;
        rc = AP_ERR_UNAVAILABLE;
    } else if (why) {
        rc = filtered(&d->error, why);
        d->failed = true;
    }
    json_t *c0 = json_array_get(json_object_get(v, "candidates"), 0);
    json_t *parts = json_object_get(json_object_get(c0, "content"), "parts");
    for (size_t i = 0; !rc && i < json_array_size(parts); i++) {
        json_t *p = json_array_get(parts, i), *fc = wire_get(p, "functionCall");
        const char *text = wire_str(p, "text");
        if (text && *text && !json_is_true(json_object_get(p, "thought"))) {
            ap_llm_delta_t dl = {.content = text, .tool_index = -1};
            d->emitted = true;
            wire_emit(d, &dl);
        } else if (json_is_object(fc)) {
            if (d->ntools >= WIRE_MAX_TOOLS) {
                rc = wire_dec_fail(d, AP_LLM_UPSTREAM, "too many tool calls");
                break;
            }
            const char *id = wire_str(fc, "id");
            ap_llm_delta_t dl = {.tool_index = d->ntools++,
                                 .tool_id = id ? id : wire_id(d->a, "call_"),
                                 .tool_name = wire_str(fc, "name") ? wire_str(fc, "name") : "",
                                 .tool_args = call_args(d->a, fc)};
            d->emitted = true;
            wire_emit(d, &dl);
        }
    }
    json_t *um = wire_get(v, "usageMetadata");
    if (!rc && json_is_object(um)) {
        read_usage(um, &d->usage);
        d->has_usage = true;
    }
    const char *raw = rc ? NULL : wire_str(c0, "finishReason");
    const char *fin = wire_finish_gemini(raw);
    if (fin && !strcmp(fin, "content_filter") && !d->emitted) {
        rc = filtered(&d->error, raw);
        d->failed = true;
    } else if (raw && !strcmp(raw, "MALFORMED_FUNCTION_CALL") && !d->emitted) {
        rc = malformed_call(&d->error);
        d->failed = true;
    } else if (fin && !d->done) {
        if (d->ntools && !strcmp(fin, "stop")) fin = "tool_calls";
        ap_llm_delta_t dl = {
            .finish_reason = fin, .tool_index = -1, .has_usage = d->has_usage, .usage = d->usage};
        d->done = true;
        wire_emit(d, &dl);
    } else if (!rc && d->done && json_is_object(um)) { /* usage after the finish */
        ap_llm_delta_t dl = {.tool_index = -1, .has_usage = true, .usage = d->usage};
        wire_emit(d, &dl);
    }
    json_decref(v);
    return rc;
}

/* ---- answers (symmetry and tests) -------------------------------------- */

json_t *wire_gemini_render(const ap_llm_resp_t *resp) {
    json_t *parts = json_array();
    if (resp->content && *resp->content)
        json_array_append_new(parts, json_pack("{s:o}", "text", wire_jstr(resp->content)));
    for (int i = 0; i < resp->ntool_calls; i++) {
        const ap_llm_tool_call_t *tc = &resp->tool_calls[i];
        json_t *fc = json_pack("{s:o,s:o}", "name", wire_jstr(tc->name ? tc->name : ""), "args",
                               wire_args_or_empty(tc->arguments));
        if (tc->id) json_object_set_new(fc, "id", wire_jstr(tc->id));
        json_array_append_new(parts, json_pack("{s:o}", "functionCall", fc));
    }
    const char *f = resp->finish_reason ? resp->finish_reason : "stop";
    const char *fin = !strcmp(f, "length")           ? "MAX_TOKENS"
                      : !strcmp(f, "content_filter") ? "SAFETY"
                                                     : "STOP";
    json_t *o = json_pack(
        "{s:[{s:{s:s,s:o},s:s,s:i}],s:{s:I,s:I,s:I,s:I}}", "candidates", "content", "role", "model",
        "parts", parts, "finishReason", fin, "index", 0, "usageMetadata", "promptTokenCount",
        (json_int_t)resp->usage.prompt, "candidatesTokenCount", (json_int_t)resp->usage.completion,
        "cachedContentTokenCount", (json_int_t)resp->usage.cached, "totalTokenCount",
        (json_int_t)(resp->usage.prompt + resp->usage.completion));
    if (resp->model) json_object_set_new(o, "modelVersion", wire_jstr(resp->model));
    if (resp->id) json_object_set_new(o, "responseId", wire_jstr(resp->id));
    return o;
}

json_t *wire_gemini_error_body(int status, const char *message) {
    const char *st = status == 400   ? "INVALID_ARGUMENT"
                     : status == 401 ? "UNAUTHENTICATED"
                     : status == 403 ? "PERMISSION_DENIED"
                     : status == 404 ? "NOT_FOUND"
                     : status == 429 ? "RESOURCE_EXHAUSTED"
                     : status == 503 ? "UNAVAILABLE"
                     : status == 504 ? "DEADLINE_EXCEEDED"
                     : status >= 500 ? "INTERNAL"
                                     : "FAILED_PRECONDITION";
    return json_pack("{s:{s:i,s:o,s:s}}", "error", "code", status, "message", wire_jstr(message),
                     "status", st);
}
