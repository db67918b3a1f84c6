/*
 * wire.c - dispatch of the wire.h functions by protocol, and the helpers
 * the protocol files share: field checks, ids, JSON strings, upstream
 * error classification, finish reasons, decoder and encoder shells.
 *
 * 1. Upstream errors are classified by HTTP status first (429, 503/529,
 *    408/504, 401/403 say what happened whatever the body), then by the
 *    provider's code and message: "context too long" and "content filtered"
 *    hide inside 400s and inside stream error events (status 0).
 * 2. Provider messages are copied into the fixed lerr->message cut at a
 *    UTF-8 boundary, with invalid bytes and control characters replaced:
 *    the message ends up inside JSON problem bodies, which need valid
 *    UTF-8, and in logs, which need single lines.
 * 3. Stream deltas carry arena copies of their strings, so a consumer may
 *    keep them for as long as the arena lives.
 * 4. Serialised JSON uses 15 significant digits: 0.7 stays "0.7" and a
 *    float embedding keeps every bit.
 */
#include "llm/wire_int.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/alloc.h"
#include "core/jload.h"
#include "core/crypto.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- field checks ------------------------------------------------------ */

const char *wire_json_type(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

static bool type_ok(json_t *v, unsigned types) {
    return ((types & WT_STR) && json_is_string(v)) || ((types & WT_INT) && json_is_integer(v)) ||
           ((types & WT_NUM) && json_is_number(v)) || ((types & WT_BOOL) && json_is_boolean(v)) ||
           ((types & WT_OBJ) && json_is_object(v)) || ((types & WT_ARR) && json_is_array(v));
}

static const char *types_name(unsigned types, char *buf, size_t n) {
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{WT_STR, "string"},   {WT_INT, "integer"}, {WT_NUM, "number"},
                 {WT_BOOL, "boolean"}, {WT_OBJ, "object"},  {WT_ARR, "array"}};
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(types & names[i].bit)) continue;
        int w = snprintf(buf + len, n - len, "%s%s", len ? " or " : "", names[i].name);
        if (w < 0 || (size_t)w >= n - len) break;
        len += (size_t)w;
    }
    return buf;
}

const char *wire_path(char *buf, size_t n, const char *path, const char *key) {
    snprintf(buf, n, "%s%s%.64s", path, *path ? "." : "", key);
    return buf;
}

const char *wire_path_i(char *buf, size_t n, const char *path, const char *key, size_t i) {
    snprintf(buf, n, "%s%s%.64s[%zu]", path, *path && *key ? "." : "", key, i);
    return buf;
}

ap_rc wire_err_type(ap_err_t *err, const char *field, const char *want, json_t *got) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "wrong type for field",
                      "send the value with the type named", "field \"%s\" must be %s, got %s",
                      field, want, got ? wire_json_type(got) : "nothing");
}

ap_rc wire_err_value(ap_err_t *err, const char *field, const char *hint, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid value for field",
                      hint ? hint : "correct the value", "field \"%s\" %s", field, what);
}

ap_rc wire_err_missing(ap_err_t *err, const char *field) {
    return ap_err_set(err, AP_ERR_INVALID, "missing-field", "missing required field",
                      "add the field", "field \"%s\" is required", field);
}

ap_rc wire_check(json_t *obj, const wire_field_t *fields, const char *path, ap_err_t *err) {
    char fb[256], tb[80];
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const wire_field_t *f = fields;
        while (f->name && strcmp(f->name, key) != 0) f++;
        if (!f->name) {
            char allowed[300] = "";
            size_t n = 0;
            for (const wire_field_t *g = fields; g->name; g++) {
                int w = snprintf(allowed + n, sizeof allowed - n, "%s%s", n ? ", " : "", g->name);
                if (w < 0 || (size_t)w >= sizeof allowed - n) {
                    allowed[n] = '\0';
                    break;
                }
                n += (size_t)w;
            }
            return ap_err_set(err, AP_ERR_INVALID, "unknown-field", "unknown field",
                              "remove the field or correct its spelling",
                              "field \"%s\" is not accepted here; accepted fields: %s",
                              wire_path(fb, sizeof fb, path, key), allowed);
        }
        if (json_is_null(v) && (f->types & WT_NULL)) continue;
        if (!type_ok(v, f->types))
            return wire_err_type(err, wire_path(fb, sizeof fb, path, key),
                                 types_name(f->types, tb, sizeof tb), v);
    }
    for (const wire_field_t *f = fields; f->name; f++)
        if (f->required && !wire_get(obj, f->name))
            return wire_err_missing(err, wire_path(fb, sizeof fb, path, f->name));
    return AP_OK;
}

json_t *wire_get(json_t *obj, const char *key) {
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

const char *wire_str(json_t *obj, const char *key) {
    json_t *v = wire_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

ap_rc wire_number(json_t *body, const char *key, double min, double max, double *out, bool *has,
                  ap_err_t *err) {
    json_t *v = wire_get(body, key);
    if (!v) return AP_OK;
    if (!json_is_number(v)) return wire_err_type(err, key, "number", v);
    double d = json_number_value(v);
    if (!(d >= min && d <= max))
        return wire_err_value(err, key, "give a value inside the range",
                              "is %g; must be between %g and %g", d, min, max);
    *out = d;
    if (has) *has = true;
    return AP_OK;
}

ap_rc wire_int(json_t *body, const char *key, long long min, long long max, int *out,
               ap_err_t *err) {
    json_t *v = wire_get(body, key);
    if (!v) return AP_OK;
    if (!json_is_integer(v)) return wire_err_type(err, key, "integer", v);
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return wire_err_value(err, key, "give a value inside the range",
                              "is %lld; must be between %lld and %lld", n, min, max);
    *out = (int)n;
    return AP_OK;
}

ap_rc wire_stop(ap_arena_t *a, json_t *v, const char *field, int max, ap_llm_req_t *req,
                ap_err_t *err) {
    if (!v) return AP_OK;
    if (json_is_string(v)) {
        req->stop = ap_arena_alloc(a, sizeof *req->stop);
        req->stop[0] = wire_dup(a, json_string_value(v));
        req->nstop = 1;
        return AP_OK;
    }
    if (!json_is_array(v)) return wire_err_type(err, field, "string or array", v);
    size_t n = json_array_size(v);
    if (n > (size_t)max)
        return wire_err_value(err, field, "send fewer stop sequences",
                              "has %zu stop sequences; at most %d are allowed", n, max);
    req->stop = ap_arena_alloc(a, (n ? n : 1) * sizeof *req->stop);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        char fb[96];
        if (!json_is_string(s))
            return wire_err_type(err, wire_path_i(fb, sizeof fb, field, "", i), "string", s);
        req->stop[i] = wire_dup(a, json_string_value(s));
    }
    req->nstop = (int)n;
    return AP_OK;
}

bool wire_tool_name_ok(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-') return false;
    return n >= 1 && n <= 64;
}

ap_rc wire_set_tool(ap_arena_t *a, ap_llm_req_t *req, size_t i, const char *path,
                    const char *name, const char *description, json_t *parameters,
                    ap_err_t *err) {
    char fb[256];
    if (!wire_tool_name_ok(name))
        return wire_err_value(err, wire_path(fb, sizeof fb, path, "name"),
                              "use 1 to 64 letters, digits, _ or -", "is \"%.64s\"", name);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(req->tools[j].name, name))
            return wire_err_value(err, wire_path(fb, sizeof fb, path, "name"),
                                  "give every tool its own name", "\"%.64s\" is defined twice",
                                  name);
    req->tools[i].name = wire_dup(a, name);
    req->tools[i].description = wire_dup(a, description);
    req->tools[i].parameters = ap_llm_json_keep(a, parameters);
    return AP_OK;
}

/* ---- strings and JSON -------------------------------------------------- */

char *wire_dup(ap_arena_t *a, const char *s) {
    return s ? ap_arena_strdup(a, s) : NULL;
}

void wire_id_buf(char *out, size_t n, const char *prefix) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    char tail[sizeof r + 1];
    ap_random(r, sizeof r);
    for (size_t i = 0; i < sizeof r; i++) tail[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    tail[sizeof r] = '\0';
    snprintf(out, n, "%s%s", prefix, tail);
}

char *wire_id(ap_arena_t *a, const char *prefix) {
    char buf[WIRE_ID_MAX];
    wire_id_buf(buf, sizeof buf, prefix);
    return ap_arena_strdup(a, buf);
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned long cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

json_t *wire_jstr(const char *s) {
    if (!s) return json_null();
    json_t *v = json_string(s);
    if (v) return v;
    size_t n = strlen(s), o = 0;
    char *fixed = ap_malloc(n + 1);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq((const unsigned char *)s + i, n - i);
        if (l) {
            memcpy(fixed + o, s + i, l);
            o += l, i += l;
        } else {
            fixed[o++] = '?', i++;
        }
    }
    fixed[o] = '\0';
    v = json_string(fixed);
    ap_free(fixed);
    return v ? v : json_string("");
}

char *wire_dump(ap_arena_t *a, json_t *v, size_t *len) {
    char *s = json_dumps(v, DUMP_FLAGS);
    json_decref(v);
    if (!s) s = strdup("null"); /* unreachable for the values built here */
    size_t n = strlen(s);
    char *r = ap_arena_strndup(a, s, n);
    free(s);
    if (len) *len = n;
    return r;
}

json_t *wire_args_object(const char *args) {
    const char *p = args ? args : "";
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (!*p) return json_object();
    json_t *v = json_loads(p, 0, NULL);
    if (json_is_object(v)) return v;
    json_decref(v);
    return NULL;
}

json_t *wire_args_or_empty(const char *args) {
    json_t *v = wire_args_object(args);
    return v ? v : json_object();
}

void wire_sb_init(wire_sb_t *s, ap_arena_t *a) {
    memset(s, 0, sizeof *s);
    s->a = a;
}

static void sb_put(wire_sb_t *s, const char *t, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->len + n + 1) cap *= 2;
        char *p = ap_arena_alloc(s->a, cap);
        if (s->len) memcpy(p, s->p, s->len);
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, t, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void wire_sb_add(wire_sb_t *s, const char *sep, const char *text) {
    if (s->p && sep) sb_put(s, sep, strlen(sep));
    sb_put(s, text, strlen(text));
}

char *wire_sb_str(wire_sb_t *s) {
    return s->p;
}

bool wire_data_url(ap_arena_t *a, const char *url, char **mime, char **data) {
    if (!url || strncmp(url, "data:", 5) != 0) return false;
    const char *b = strstr(url, ";base64,");
    if (!b) return false;
    const char *m = url + 5;
    size_t ml = strcspn(m, ";");
    if (ml == 0) return false;
    *mime = ap_arena_strndup(a, m, ml);
    *data = ap_arena_strdup(a, b + 8);
    return true;
}

static json_t *gemini_clean(json_t *v, bool in_properties) {
    static const char *const drop[] = {
        "$schema", "additionalProperties", "$id", "$comment", "strict", NULL};
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            bool skip = false;
            for (const char *const *d = drop; *d && !in_properties; d++) skip |= !strcmp(*d, k);
            if (skip) continue;
            json_object_set_new(o, k, gemini_clean(x, !in_properties && !strcmp(k, "properties")));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *arr = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(arr, gemini_clean(x, false));
        return arr;
    }
    return json_incref(v);
}

json_t *wire_gemini_schema(json_t *schema) {
    return gemini_clean(schema, false);
}

/* ---- building calls ---------------------------------------------------- */

void wire_header(ap_arena_t *a, ap_http_call_t *out, const char *fmt, ...) {
    assert(out->nheaders < AP_WIRE_MAX_HEADERS);
    va_list ap;
    va_start(ap, fmt);
    out->headers[out->nheaders++] = ap_arena_vprintf(a, fmt, ap);
    va_end(ap);
}

char *wire_url(ap_arena_t *a, const char *base, const char *suffix) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    return ap_arena_printf(a, "%.*s%s", (int)n, base, suffix);
}

static bool header_safe(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return false;
    return true;
}

ap_rc wire_check_target(const ap_llm_target_t *t, ap_err_t *err) {
    if (!t || !t->base_url || !*t->base_url || !t->model || !*t->model)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-target", "incomplete provider target",
                          "configure the provider's base URL and model",
                          "the target needs base_url and model");
    if (!header_safe(t->base_url) || !header_safe(t->model) ||
        (t->api_key && !header_safe(t->api_key)))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-target",
                          "provider target contains control characters",
                          "fix the provider's configuration",
                          "base_url, model or api_key contains a control character");
    return AP_OK;
}

/* ---- upstream errors --------------------------------------------------- */

void wire_set_message(ap_llm_error_t *lerr, const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t cap = sizeof lerr->message - 1, o = 0;
    if (!text) len = 0;
    while (len && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, len--;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_seq(s + i, len - i);
        if (l > 1) {
            if (o + l > cap) break;
            memcpy(lerr->message + o, s + i, l);
            o += l, i += l;
            continue;
        }
        if (o + 1 > cap) break;
        unsigned char c = s[i];
        lerr->message[o++] = !l ? '?' : (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
        i++;
    }
    while (o && lerr->message[o - 1] == ' ') o--;
    lerr->message[o] = '\0';
}

int64_t wire_retry_after_ms(const char *v, int64_t now_s) {
    if (!v) return 0;
    while (*v == ' ' || *v == '\t') v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        double secs = strtod(v, &end);
        while (*end == ' ' || *end == '\t') end++;
        if (*end || !(secs >= 0)) return 0;
        if (secs > 86400) secs = 86400; /* a day at most */
        return (int64_t)(secs * 1000.0);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return 0;
    int64_t at = (int64_t)timegm(&tm);
    if (at <= now_s) return 0;
    int64_t d = at - now_s;
    return (d > 86400 ? 86400 : d) * 1000;
}

static bool has_ci(const char *hay, const char *needle) {
    return hay && strcasestr(hay, needle) != NULL;
}

static bool is_any(const char *s, const char *const *list) {
    for (; s && *list; list++)
        if (!strcasecmp(s, *list)) return true;
    return false;
}

static ap_llm_errkind classify(int status, const char *type, const char *code, const char *msg) {
    static const char *const rate[] = {"rate_limit_error",
                                       "rate_limit_exceeded",
                                       "RESOURCE_EXHAUSTED",
                                       "insufficient_quota",
                                       "requests",
                                       "tokens",
                                       NULL};
    static const char *const over[] = {"overloaded_error", "overloaded", "UNAVAILABLE",
                                       "server_overloaded", NULL};
    static const char *const slow[] = {"timeout_error", "timeout", "DEADLINE_EXCEEDED", NULL};
    static const char *const auth[] = {"authentication_error", "permission_error",
                                       "invalid_api_key",      "UNAUTHENTICATED",
                                       "PERMISSION_DENIED",    NULL};
    static const char *const bad[] = {"invalid_request_error",
                                      "not_found_error",
                                      "INVALID_ARGUMENT",
                                      "NOT_FOUND",
                                      "FAILED_PRECONDITION",
                                      "request_too_large",
                                      NULL};
    static const char *const filt[] = {"content_filter", "content_policy_violation", NULL};
    bool ctx = is_any(code, (const char *const[]){"context_length_exceeded", NULL}) ||
               has_ci(msg, "prompt is too long") || has_ci(msg, "maximum context length") ||
               has_ci(msg, "context length") || has_ci(msg, "context window") ||
               has_ci(msg, "context limit") ||
               has_ci(msg, "exceeds the maximum number of tokens") ||
               (has_ci(msg, "max_tokens") && has_ci(msg, "context"));
    bool filtered =
        is_any(code, filt) || is_any(type, filt) || has_ci(msg, "content management policy");
    if (status == 429) return AP_LLM_RATE_LIMITED;
    if (status == 503 || status == 529) return AP_LLM_OVERLOADED;
    if (status == 408 || status == 504) return AP_LLM_TIMEOUT;
    if (status == 401 || status == 403) return AP_LLM_AUTH_FAILED;
    if (status < 500 && !is_any(type, rate) && !is_any(code, rate)) {
        if (ctx) return AP_LLM_CONTEXT_TOO_LONG;
        if (filtered) return AP_LLM_CONTENT_FILTERED;
    }
    if (status >= 400 && status < 500) return AP_LLM_BAD_REQUEST;
    if (is_any(type, over) || is_any(code, over)) return AP_LLM_OVERLOADED;
    if (status >= 500) return AP_LLM_UPSTREAM;
    if (is_any(type, rate) || is_any(code, rate)) return AP_LLM_RATE_LIMITED;
    if (is_any(type, slow) || is_any(code, slow)) return AP_LLM_TIMEOUT;
    if (is_any(type, auth) || is_any(code, auth)) return AP_LLM_AUTH_FAILED;
    if (is_any(type, bad) || is_any(code, bad)) return AP_LLM_BAD_REQUEST;
    return AP_LLM_UPSTREAM;
}

static ap_rc fail_n(ap_llm_error_t *lerr, int status, const char *retry_after, const char *type,
                    const char *code, const char *msg, size_t len) {
    ap_llm_error_t tmp;
    if (!lerr) lerr = &tmp;
    memset(lerr, 0, sizeof *lerr);
    lerr->http_status = status;
    if (msg && len) wire_set_message(lerr, msg, len);
    if (!lerr->message[0]) {
        if (status)
            snprintf(lerr->message, sizeof lerr->message, "upstream answered HTTP %d", status);
        else
            snprintf(lerr->message, sizeof lerr->message, "upstream reported an error");
    }
    lerr->kind = classify(status, type, code, lerr->message);
    lerr->retry_after_ms = wire_retry_after_ms(retry_after, (int64_t)time(NULL));
    return AP_ERR_UNAVAILABLE;
}

ap_rc wire_fail(ap_llm_error_t *lerr, int status, const char *retry_after, const char *type,
                const char *code, const char *message) {
    return fail_n(lerr, status, retry_after, type, code, message, message ? strlen(message) : 0);
}

ap_rc wire_fail_json(ap_llm_error_t *lerr, int status, const char *retry_after, json_t *v) {
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_object(v)) return AP_OK;
    json_t *e = json_object_get(v, "error");
    const char *top = wire_str(v, "type");
    if (json_is_string(e))
        return wire_fail(lerr, status, retry_after, NULL, NULL, json_string_value(e));
    if (!json_is_object(e)) {
        if (top && !strcmp(top, "error"))
            return wire_fail(lerr, status, retry_after, NULL, NULL, wire_str(v, "message"));
        return AP_OK;
    }
    const char *type = wire_str(e, "type");
    if (!type) type = wire_str(e, "status"); /* Gemini: "RESOURCE_EXHAUSTED" */
    json_t *c = json_object_get(e, "code");
    const char *code = json_is_string(c) ? json_string_value(c) : NULL;
    if (!status && json_is_integer(c) && json_integer_value(c) >= 400 &&
        json_integer_value(c) < 600)
        status = (int)json_integer_value(c); /* Gemini stream errors carry the status */
    return wire_fail(lerr, status, retry_after, type, code, wire_str(e, "message"));
}

ap_rc wire_fail_body(ap_llm_error_t *lerr, int status, const char *retry_after, const char *body,
                     size_t len) {
    json_t *v = body && len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    if (v) {
        ap_rc rc = wire_fail_json(lerr, status, retry_after, v);
        json_decref(v);
        if (rc) return rc;
    }
    return fail_n(lerr, status, retry_after, NULL, NULL, body, body ? len : 0);
}

/* ---- finish reasons ---------------------------------------------------- */

const char *wire_finish_openai(const char *s) {
    if (!s) return NULL;
    if (!strcmp(s, "length")) return "length";
    if (!strcmp(s, "tool_calls") || !strcmp(s, "function_call")) return "tool_calls";
    if (!strcmp(s, "content_filter")) return "content_filter";
    return "stop";
}

const char *wire_finish_anthropic(const char *s) {
    if (!s) return NULL;
    if (!strcmp(s, "max_tokens") || !strcmp(s, "model_context_window_exceeded")) return "length";
    if (!strcmp(s, "tool_use")) return "tool_calls";
    if (!strcmp(s, "refusal")) return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

const char *wire_finish_gemini(const char *s) {
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", NULL};
    if (!s || !strcmp(s, "FINISH_REASON_UNSPECIFIED")) return NULL;
    if (!strcmp(s, "MAX_TOKENS")) return "length";
    if (is_any(s, filtered)) return "content_filter";
    return "stop";
}

const char *wire_stop_reason(const char *internal) {
    if (!internal) return "end_turn";
    if (!strcmp(internal, "length")) return "max_tokens";
    if (!strcmp(internal, "tool_calls")) return "tool_use";
    if (!strcmp(internal, "content_filter")) return "refusal";
    return "end_turn";
}

/* ---- client side ------------------------------------------------------- */

ap_rc ap_wire_parse_request(ap_arena_t *a, ap_wire_kind client, json_t *body, ap_llm_req_t *req,
                            ap_err_t *err) {
    memset(req, 0, sizeof *req);
    if (!json_is_object(body))
        return ap_err_set(err, AP_ERR_INVALID, "malformed-json",
                          "request body must be a JSON object", "wrap the fields in {...}",
                          "expected an object, got %s", body ? wire_json_type(body) : "nothing");
    switch (client) {
    case AP_WIRE_OPENAI: return wire_openai_parse_request(a, body, req, err);
    case AP_WIRE_ANTHROPIC: return wire_anthropic_parse_request(a, body, req, err);
    case AP_WIRE_GEMINI: break;
    }
    return ap_err_set(err, AP_ERR_INVALID, "unsupported-protocol", "unsupported client protocol",
                      "use the OpenAI or Anthropic endpoint",
                      "the gateway accepts OpenAI chat completions and Anthropic messages");
}

/* s as a JSON string, byte for byte what json_dumps writes for
 * wire_jstr(s) (JSON_COMPACT): '"' and '\\' escaped, control characters
 * as \b \f \n \r \t or \u00XX, everything else as is; a string that is
 * not UTF-8 has each stray byte replaced by '?'. */
void wire_jbuf_str(ap_buf_t *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    if (!s) {
        ap_buf_append(b, "null", 4);
        return;
    }
    size_t n = strlen(s);
    bool valid = true;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq((const unsigned char *)s + i, n - i);
        if (!l) {
            valid = false;
            break;
        }
        i += l;
    }
    ap_buf_append(b, "\"", 1);
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || valid)) {
            i++;
            continue;
        }
        if (i > run) ap_buf_append(b, s + run, i - run);
        if (c >= 0x80) { /* only when the string is not UTF-8 */
            size_t l = utf8_seq((const unsigned char *)s + i, n - i);
            if (l) ap_buf_append(b, s + i, l);
            else ap_buf_append(b, "?", 1);
            i += l ? l : 1;
            run = i;
            continue;
        }
        char e[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        ap_buf_append(b, e, el);
        i++;
        run = i;
    }
    if (n > run) ap_buf_append(b, s + run, n - run);
    ap_buf_append(b, "\"", 1);
}

char *ap_wire_render_response_text(ap_wire_kind client, const ap_llm_resp_t *resp, size_t *len) {
    char *s = client == AP_WIRE_OPENAI ? wire_openai_render_text(resp, len) : NULL;
    if (s) return s;
    json_t *o = ap_wire_render_response(client, resp);
    s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s) s = strdup("{}");
    *len = strlen(s);
    return s;
}

json_t *ap_wire_render_response(ap_wire_kind client, const ap_llm_resp_t *resp) {
    switch (client) {
    case AP_WIRE_OPENAI: return wire_openai_render(resp);
    case AP_WIRE_ANTHROPIC: return wire_anthropic_render(resp);
    case AP_WIRE_GEMINI: return wire_gemini_render(resp);
    }
    return wire_openai_render(resp);
}

json_t *ap_wire_render_error(ap_wire_kind client, int status, const char *code,
                             const char *message) {
    if (!message) message = "error";
    switch (client) {
    case AP_WIRE_OPENAI: return wire_openai_error_body(status, code, message);
    case AP_WIRE_ANTHROPIC: return wire_anthropic_error_body(status, code, message);
    case AP_WIRE_GEMINI: return wire_gemini_error_body(status, message);
    }
    return wire_openai_error_body(status, code, message);
}

int ap_wire_error_status(ap_llm_errkind k) {
    switch (k) {
    case AP_LLM_OK: return 200;
    case AP_LLM_RATE_LIMITED: return 429;
    case AP_LLM_OVERLOADED: return 503;
    case AP_LLM_TIMEOUT: return 504;
    case AP_LLM_CONTEXT_TOO_LONG: return 400;
    case AP_LLM_CONTENT_FILTERED: return 400;
    case AP_LLM_AUTH_FAILED: return 502; /* our credentials upstream, not the client's */
    case AP_LLM_BAD_REQUEST: return 400;
    case AP_LLM_UPSTREAM: return 502;
    case AP_LLM_BUDGET_EXCEEDED: return 429;
    }
    return 502;
}

/* ---- provider side ----------------------------------------------------- */

ap_rc ap_wire_build_call(ap_arena_t *a, ap_wire_kind provider, const ap_llm_req_t *req,
                         const ap_llm_target_t *t, ap_http_call_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rc rc = wire_check_target(t, err);
    if (rc) return rc;
    switch (provider) {
    case AP_WIRE_OPENAI: return wire_openai_build(a, req, t, out, err);
    case AP_WIRE_ANTHROPIC: return wire_anthropic_build(a, req, t, out, err);
    case AP_WIRE_GEMINI: return wire_gemini_build(a, req, t, out, err);
    }
    return ap_err_set(err, AP_ERR_INVALID, "unsupported-protocol", "unknown provider protocol",
                      NULL, "protocol %d", (int)provider);
}

ap_rc ap_wire_parse_reply(ap_arena_t *a, ap_wire_kind provider, int status, const char *retry_after,
                          const char *body, size_t len, ap_llm_resp_t *resp, ap_llm_error_t *lerr) {
    ap_llm_error_t tmp;
    if (!lerr) lerr = &tmp;
    memset(resp, 0, sizeof *resp);
    memset(lerr, 0, sizeof *lerr);
    if (status >= 300 || status < 200) return wire_fail_body(lerr, status, retry_after, body, len);
    json_error_t jerr;
    json_t *v = body && len ? ap_jload(body, len, 0, &jerr) : NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        char m[300];
        snprintf(m, sizeof m, "malformed reply from the provider: %s",
                 !len ? "empty body"
                 : v  ? "not a JSON object"
                      : jerr.text);
        lerr->kind = AP_LLM_UPSTREAM;
        lerr->http_status = status;
        wire_set_message(lerr, m, strlen(m));
        return AP_ERR_UNAVAILABLE;
    }
    ap_rc rc = wire_fail_json(lerr, 0, retry_after, v);
    if (rc) {
        lerr->http_status = status;
        json_decref(v);
        return rc;
    }
    switch (provider) {
    case AP_WIRE_OPENAI: rc = wire_openai_reply(a, v, resp, lerr); break;
    case AP_WIRE_ANTHROPIC: rc = wire_anthropic_reply(a, v, resp, lerr); break;
    case AP_WIRE_GEMINI: rc = wire_gemini_reply(a, v, resp, lerr); break;
    }
    json_decref(v);
    if (rc) {
        lerr->http_status = status;
        return rc;
    }
    for (int i = 0; i < resp->ntool_calls; i++) {
        ap_llm_tool_call_t *tc = &resp->tool_calls[i];
        if (!tc->id || !*tc->id) tc->id = wire_id(a, "call_");
        if (!tc->name) tc->name = "";
        if (!tc->arguments) tc->arguments = "{}";
    }
    if (!resp->finish_reason) resp->finish_reason = resp->ntool_calls ? "tool_calls" : "stop";
    if (!resp->created) resp->created = (int64_t)time(NULL);
    if (!resp->content && !resp->ntool_calls) resp->content = "";
    return AP_OK;
}

/* ---- streams ----------------------------------------------------------- */

void wire_emit(ap_llm_decoder_t *d, const ap_llm_delta_t *delta) {
    if (!d->fn) return;
    ap_llm_delta_t c = *delta;
    c.content = wire_dup(d->a, c.content);
    c.tool_id = wire_dup(d->a, c.tool_id);
    c.tool_name = wire_dup(d->a, c.tool_name);
    c.tool_args = wire_dup(d->a, c.tool_args);
    d->fn(d->ud, &c);
}

ap_rc wire_dec_fail(ap_llm_decoder_t *d, ap_llm_errkind k, const char *fmt, ...) {
    char m[sizeof d->error.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    memset(&d->error, 0, sizeof d->error);
    d->error.kind = k;
    wire_set_message(&d->error, m, strlen(m));
    d->failed = true;
    return AP_ERR_UNAVAILABLE;
}

json_t *wire_dec_json(ap_llm_decoder_t *d, const ap_sse_event_t *ev) {
    json_error_t jerr;
    json_t *v = ap_jload(ev->data, ev->data_len, 0, &jerr);
    if (json_is_object(v)) return v;
    json_decref(v);
    wire_dec_fail(d, AP_LLM_UPSTREAM, "malformed stream event from the provider: %s",
                  v ? "not a JSON object" : jerr.text);
    return NULL;
}

static ap_rc on_event(void *ud, const ap_sse_event_t *ev) {
    ap_llm_decoder_t *d = ud;
    switch (d->kind) {
    case AP_WIRE_OPENAI: return wire_openai_event(d, ev);
    case AP_WIRE_ANTHROPIC: return wire_anthropic_event(d, ev);
    case AP_WIRE_GEMINI: return wire_gemini_event(d, ev);
    }
    return AP_OK;
}

ap_llm_decoder_t *ap_llm_decoder_new(ap_arena_t *a, ap_wire_kind provider) {
    ap_llm_decoder_t *d = ap_arena_calloc(a, sizeof *d);
    d->a = a;
    d->kind = provider;
    d->sse = ap_sse_new(a, 0, 0);
    d->last_tool = -1;
    return d;
}

ap_rc ap_llm_decoder_feed(ap_llm_decoder_t *d, const char *data, size_t len, ap_llm_delta_fn fn,
                          void *ud, ap_llm_error_t *lerr) {
    if (!d->failed) {
        d->fn = fn;
        d->ud = ud;
        ap_rc rc = ap_sse_feed(d->sse, data, len, on_event, d);
        d->fn = NULL;
        d->ud = NULL;
        if (rc && !d->failed)
            wire_dec_fail(d, AP_LLM_UPSTREAM,
                          "the provider's stream has a line or event longer "
                          "than the maximum");
    }
    if (!d->failed) return AP_OK;
    if (lerr) *lerr = d->error;
    return AP_ERR_UNAVAILABLE;
}

bool ap_llm_decoder_done(const ap_llm_decoder_t *d) {
    return d->done;
}

wire_enc_tool_t *wire_enc_tool(ap_llm_encoder_t *e, int index, bool add, bool *created) {
    if (created) *created = false;
    /* deltas of one call come in runs: try the last one first */
    if (e->ntools && e->tools[e->ntools - 1].index == index) return &e->tools[e->ntools - 1];
    for (int i = 0; i < e->ntools; i++)
        if (e->tools[i].index == index) return &e->tools[i];
    if (!add) return NULL;
    if (e->ntools == e->cap_tools) {
        int cap = e->cap_tools ? e->cap_tools * 2 : 8;
        wire_enc_tool_t *n = ap_arena_alloc(e->a, (size_t)cap * sizeof *n);
        if (e->ntools) memcpy(n, e->tools, (size_t)e->ntools * sizeof *n);
        e->tools = n;
        e->cap_tools = cap;
    }
    wire_enc_tool_t *t = &e->tools[e->ntools++];
    t->index = index;
    t->block = -1;
    if (created) *created = true;
    return t;
}

void wire_sse_json(ap_buf_t *out, const char *event, json_t *v) {
    char *s = json_dumps(v, DUMP_FLAGS);
    json_decref(v);
    if (!s) return;
    ap_sse_write(out, event, s, strlen(s));
    free(s);
}

ap_llm_encoder_t *ap_llm_encoder_new(ap_arena_t *a, ap_wire_kind client, const char *id,
                                     const char *model, bool include_usage) {
    ap_llm_encoder_t *e = ap_arena_calloc(a, sizeof *e);
    e->a = a;
    e->kind = client == AP_WIRE_ANTHROPIC ? AP_WIRE_ANTHROPIC : AP_WIRE_OPENAI;
    e->id = id ? ap_arena_strdup(a, id)
               : wire_id(a, e->kind == AP_WIRE_ANTHROPIC ? "msg_" : "chatcmpl-");
    e->model = ap_arena_strdup(a, model ? model : "");
    e->include_usage = include_usage;
    e->created = (int64_t)time(NULL);
    e->block = -1;
    e->open_tool = -1;
    return e;
}

void ap_llm_encoder_delta(ap_llm_encoder_t *e, const ap_llm_delta_t *d, ap_buf_t *out) {
    if (e->finished || !d) return;
    if (d->has_usage) {
        e->usage = d->usage;
        e->has_usage = true;
    }
    if (d->finish_reason) e->finish_reason = wire_finish_openai(d->finish_reason);
    if (e->kind == AP_WIRE_ANTHROPIC)
        wire_anthropic_delta(e, d, out);
    else
        wire_openai_delta(e, d, out);
}

void ap_llm_encoder_finish(ap_llm_encoder_t *e, const ap_llm_usage_t *usage, ap_buf_t *out) {
    if (e->finished) return;
    if (usage) {
        e->usage = *usage;
        e->has_usage = true;
    }
    if (e->kind == AP_WIRE_ANTHROPIC)
        wire_anthropic_finish(e, out);
    else
        wire_openai_finish(e, out);
    e->finished = true;
}

void ap_llm_encoder_error(ap_llm_encoder_t *e, const ap_llm_error_t *lerr, ap_buf_t *out) {
    if (e->finished) return;
    ap_llm_error_t fallback = {.kind = AP_LLM_UPSTREAM};
    if (!lerr) lerr = &fallback;
    if (e->kind == AP_WIRE_ANTHROPIC)
        wire_anthropic_error(e, lerr, out);
    else
        wire_openai_error(e, lerr, out);
    e->finished = true;
}
