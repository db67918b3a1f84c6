/*
 * req.c - request accessors and response builders.
 *
 * 1. Every string a problem carries passes ap_req_utf8 first: details
 *    quote client input, and a string jansson refuses as JSON would leave
 *    nothing to send (it once took the server down).
 * 2. A JSON body is accepted for Content-Type application/json in any
 *    case, with parameters; anything else with a body is 415.
 */
#include "http/req.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/log.h"
#include "llm/wire.h"
#include "mcp/jsonrpc.h"

const char *ap_req_param(ap_req_t *r, const char *name) {
    return ap_match_param(&r->match, name);
}

const char *ap_req_query(ap_req_t *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *ap_req_header(ap_req_t *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int ap_rc_status(ap_rc rc, const char *type) {
    if (type && strcmp(type, "idempotency-key-reused") == 0) return 422;
    if (type && strcmp(type, "unsupported-media-type") == 0) return 415;
    if (type && strcmp(type, "method-not-allowed") == 0) return 405;
    if (type && strcmp(type, "not-acceptable") == 0) return 406;
    switch (rc) {
    case AP_OK: return 200;
    case AP_ERR_INVALID: return 400;
    case AP_ERR_NOT_FOUND: return 404;
    case AP_ERR_CONFLICT: return 409;
    case AP_ERR_DENIED: return 403;
    case AP_ERR_UNAUTH: return 401;
    case AP_ERR_LIMIT: return 429;
    case AP_ERR_TOO_LARGE: return 413;
    case AP_ERR_UNAVAILABLE: return 503;
    case AP_ERR_IO:
    case AP_ERR_INTERNAL: return 500;
    }
    return 500;
}

/* Copies s into the arena with every byte that is not part of a UTF-8
 * character replaced by '?'.  Details quote client input ("%.64s" may
 * also cut a character in two), and JSON strings must be UTF-8: jansson
 * refuses anything else, which would leave no problem to send at all. */
const char *ap_req_utf8(ap_arena_t *a, const char *s) {
    size_t n = strlen(s);
    char *o = ap_arena_strndup(a, s, n);
    for (size_t i = 0; i < n;) {
        size_t l = ap_router_utf8_seq((const unsigned char *)o + i, n - i);
        if (l == 0) {
            o[i++] = '?';
            continue;
        }
        i += l;
    }
    return o;
}

json_t *ap_problem_json(const ap_err_t *err, int status, const char *request_id,
                        const char *instance) {
    ap_arena_t *a = ap_arena_new(1024);
    char type[96];
    snprintf(type, sizeof type, "urn:agentprov:problem:%s",
             err->type[0] ? err->type : ap_rc_type(err->rc));
    const char *title = err->msg[0] ? err->msg : ap_rc_name(err->rc);
    char detail[800];
    if (status >= 500) {
        snprintf(detail, sizeof detail,
                 "the server could not complete the request; retry later, and quote request id "
                 "%s if it persists",
                 request_id ? request_id : "-");
    } else if (err->hint[0] && err->detail[0]) {
        snprintf(detail, sizeof detail, "%s; %s", err->detail, err->hint);
    } else {
        snprintf(detail, sizeof detail, "%s", err->detail[0] ? err->detail : err->hint);
    }
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "type", ap_req_utf8(a, type), "title",
                          ap_req_utf8(a, title), "status", status, "detail",
                          ap_req_utf8(a, detail));
    if (instance) json_object_set_new(o, "instance", json_string(ap_req_utf8(a, instance)));
    if (request_id) json_object_set_new(o, "request_id", json_string(request_id));
    ap_arena_free(a);
    return o;
}

static void set_body(ap_req_t *r, int status, const char *ctype, char *body, size_t len) {
    if (r->answered) { /* a second answer is a programming error: keep the first */
        free(body);
        ap_log(AP_LOG_ERROR, "handler answered twice", "{s:s}", "request_id", r->request_id);
        return;
    }
    r->answered = true;
    r->status = status;
    r->content_type = ctype;
    r->resp_body = body;
    r->resp_len = len;
}

void ap_resp_raw(ap_req_t *r, int status, const char *content_type, char *heap_body,
                 size_t len) {
    set_body(r, status, content_type, heap_body, len);
}

void ap_resp_json(ap_req_t *r, int status, json_t *body) {
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (status == 204) {
        free(s);
        set_body(r, status, NULL, NULL, 0);
        return;
    }
    if (!s) s = strdup("{}");
    set_body(r, status, "application/json", s, strlen(s));
}

/* Routes of the LLM gateway answer errors in their protocol's shape, so
 * the official SDKs raise their own error types (even for 401/403); the MCP
 * endpoint answers JSON-RPC errors without an id, as its transport asks. */
static bool wire_problem(ap_req_t *r, const ap_err_t *err, int status) {
    if (!r->match.route || !r->match.route->error_wire) return false;
    char msg[1200];
    if (status >= 500)
        snprintf(msg, sizeof msg, "%s (request id %s)", err->msg[0] ? err->msg : "internal error",
                 r->request_id);
    else
        snprintf(msg, sizeof msg, "%s: %s%s%s", err->msg[0] ? err->msg : ap_rc_name(err->rc),
                 err->detail, err->hint[0] ? "; " : "", err->hint);
    const char *type = err->type[0] ? err->type : ap_rc_type(err->rc);
    json_t *body;
    if (r->match.route->error_wire == AP_ERROR_WIRE_JSONRPC) /* no id: the transport refused */
        body = ap_rpc_error(NULL, ap_rpc_code_for_status(status), ap_req_utf8(r->arena, msg),
                            json_pack("{s:s,s:i,s:s}", "type", type, "status", status,
                                      "request_id", r->request_id));
    else
        body = ap_wire_render_error((ap_wire_kind)(r->match.route->error_wire - 1), status, type,
                                    msg);
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) return false;
    set_body(r, status, "application/json", s, strlen(s));
    return true;
}

void ap_resp_problem(ap_req_t *r, const ap_err_t *err) {
    int status = ap_rc_status(err->rc, err->type);
    if (wire_problem(r, err, status)) return;
    if (status >= 500)
        ap_log(AP_LOG_ERROR, "request failed", "{s:s,s:s,s:s,s:s}", "request_id", r->request_id,
               "error", err->msg, "detail", err->detail, "path", r->path ? r->path : "");
    json_t *p = ap_problem_json(err, status, r->request_id, r->path);
    char *s = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(p);
    if (!s) { /* cannot happen with UTF-8-clean strings; never send nothing */
        ap_log(AP_LOG_ERROR, "problem not serialisable", "{s:s}", "request_id", r->request_id);
        s = strdup("{\"type\":\"urn:agentprov:problem:internal-error\","
                   "\"title\":\"internal error\",\"status\":500}");
        status = 500;
    }
    set_body(r, status, "application/problem+json", s, strlen(s));
}

void ap_resp_header(ap_req_t *r, const char *name, const char *value) {
    if (r->nresp_hdr >= AP_MAX_RESP_HEADERS) return;
    r->resp_hdr_k[r->nresp_hdr] = ap_arena_strdup(r->arena, name);
    r->resp_hdr_v[r->nresp_hdr] = ap_arena_strdup(r->arena, value);
    r->nresp_hdr++;
}

void ap_resp_page(ap_req_t *r, json_t *items, const char *next) {
    json_t *o = json_object();
    json_object_set_new(o, "data", items);
    json_object_set_new(o, "next_cursor", next ? json_string(next) : json_null());
    ap_resp_json(r, 200, o);
}

/* Is ct the media type application/json?  Media types compare without
 * regard to case and may carry parameters (RFC 9110 §8.3.1); a longer name
 * such as application/jsonp or application/json-patch+json is another type. */
static bool is_json_type(const char *ct) {
    static const char want[] = "application/json";
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0) return false;
    char c = ct[sizeof want - 1];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

ap_rc ap_req_json(ap_req_t *r, const ap_jfield_t *fields, json_t **out) {
    ap_err_t err = {0};
    *out = NULL;
    const char *ct = ap_req_header(r, "Content-Type");
    if (r->body.len && ct && !is_json_type(ct)) {
        ap_err_set(&err, AP_ERR_INVALID, "unsupported-media-type", "unsupported content type",
                   "send the body as application/json", "Content-Type is \"%.64s\"", ct);
        ap_resp_problem(r, &err);
        return AP_ERR_INVALID;
    }
    json_t *o;
    ap_rc rc = ap_json_parse_object(r->body.p ? r->body.p : "", r->body.len, &o, &err);
    if (!rc) rc = ap_json_check(o, fields, &err);
    if (rc) {
        if (o) json_decref(o);
        ap_resp_problem(r, &err);
        return rc;
    }
    *out = o;
    return AP_OK;
}

ap_rc ap_req_page(ap_req_t *r, int dflt, int max, int *limit, const char **cursor) {
    ap_err_t err = {0};
    *limit = dflt;
    *cursor = ap_req_query(r, "cursor");
    const char *l = ap_req_query(r, "limit");
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > max) {
            ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid limit",
                       "use an integer between 1 and the maximum",
                       "limit is \"%.32s\"; it must be between 1 and %d", l, max);
            ap_resp_problem(r, &err);
            return AP_ERR_INVALID;
        }
        *limit = (int)v;
    }
    if (*cursor && !**cursor) *cursor = NULL;
    return AP_OK;
}

typedef struct {
    ap_req_t *r;
    const char *const *prefixes;
    int nprefixes;
    const char **out;
    int n, max;
} fwd_t;

static enum MHD_Result fwd_one(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
    (void)kind;
    fwd_t *f = cls;
    if (f->n >= f->max || !value) return MHD_YES;
    for (int i = 0; i < f->nprefixes; i++) {
        size_t pl = strlen(f->prefixes[i]);
        if (pl && strncasecmp(key, f->prefixes[i], pl) == 0) {
            f->out[f->n++] = ap_arena_printf(f->r->arena, "%s: %s", key, value);
            break;
        }
    }
    return MHD_YES;
}

int ap_req_forward_headers(ap_req_t *r, const char *prefix_list, const char **out, int max) {
    if (!prefix_list || !*prefix_list) return 0;
    const char *prefixes[8];
    int np = 0;
    char *list = ap_arena_strdup(r->arena, prefix_list), *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p && np < 8; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ') p++;
        /* credentials are never forwarded, whatever the configuration says */
        if (*p && strncasecmp(p, "authorization", 13) != 0 && strncasecmp(p, "x-api-key", 9) != 0 &&
            strncasecmp(p, "cookie", 6) != 0)
            prefixes[np++] = p;
    }
    fwd_t f = {r, prefixes, np, out, 0, max};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, fwd_one, &f);
    return f.n;
}
