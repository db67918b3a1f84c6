/*
 * mcp.c - the MCP endpoint, /mcp, over Streamable HTTP.
 *
 * 1. POST carries one JSON-RPC message (or a batch, for protocol versions
 *    that have them).  Requests are answered as application/json, or as a
 *    text/event-stream of one event per answer when the client's Accept
 *    takes event streams but not JSON; a body of notifications and
 *    responses only is answered 202 without a body.
 * 2. initialize opens a session (mcp/session.h), returned in
 *    Mcp-Session-Id; every later POST and DELETE must carry it (400 when
 *    missing, 404 when unknown, expired, ended, or another key's).  DELETE
 *    ends it.  GET is not routed: this server sends nothing unasked, so a
 *    client's GET for a server stream gets 405, as the transport allows.
 * 3. MCP-Protocol-Version, when sent, must be a version this server
 *    speaks (400 otherwise); without it the session's negotiated version
 *    applies.
 * 4. An Origin header, when sent (browsers), must name this server's own
 *    host (DNS rebinding defence): 403 otherwise.
 * 5. Transport refusals (401, 403, 404, 406, 415 …) come back as JSON-RPC
 *    error objects without an id (the route's error_wire), not problem+json.
 * 6. Authorisation: the route needs mcp.use; each tool call is then
 *    authorised as the key's role against the tool's own permission.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "core/buf.h"
#include "http/server.h"
#include "mcp/server.h"
#include "mcp/session.h"

static void refuse(ap_req_t *r, ap_rc rc, const char *type, const char *msg, const char *hint,
                   const char *detail) {
    ap_err_t err;
    ap_err_set(&err, rc, type, msg, hint, "%s", detail);
    ap_resp_problem(r, &err);
}

static void send_json(ap_req_t *r, int status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!s) s = strdup("{}");
    ap_resp_raw(r, status, "application/json", s, strlen(s));
}

static void send_sse(ap_req_t *r, json_t *body) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    json_t *one = json_is_array(body) ? NULL : body;
    size_t n = one ? 1 : json_array_size(body);
    for (size_t i = 0; i < n; i++) {
        char *s = json_dumps(one ? one : json_array_get(body, i), JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s) continue;
        ap_buf_puts(&b, "event: message\ndata: ");
        ap_buf_puts(&b, s);
        ap_buf_puts(&b, "\n\n");
        free(s);
    }
    json_decref(body);
    size_t len = b.len;
    char *p = ap_buf_steal(&b);
    ap_resp_header(r, "Cache-Control", "no-cache");
    ap_resp_raw(r, 200, "text/event-stream", p, len);
}

/* Does the Accept header take this media type: exactly, by a wildcard of
 * its major type, or by the wildcard of all types?  q=0 refuses. */
static bool accepts(const char *accept, const char *type) {
    if (!accept || !*accept) return true;
    const char *slash = strchr(type, '/');
    size_t major = (size_t)(slash - type);
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *end = p + strcspn(p, ",");
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *mt_end = semi ? semi : end;
        while (mt_end > p && mt_end[-1] == ' ') mt_end--;
        size_t l = (size_t)(mt_end - p);
        bool match = (l == strlen(type) && strncasecmp(p, type, l) == 0) ||
                     (l == major + 2 && strncasecmp(p, type, major + 1) == 0 && p[major + 1] == '*') ||
                     (l == 3 && strncmp(p, "*/*", 3) == 0);
        if (match) {
            const char *q = semi ? strstr(semi, "q=") : NULL;
            if (!q || q >= end || strtod(q + 2, NULL) > 0) return true;
        }
        p = end;
    }
    return false;
}

/* Origin, when present, must be http(s)://<Host>. */
static bool origin_ok(ap_req_t *r) {
    const char *o = ap_req_header(r, "Origin");
    if (!o) return true;
    const char *host = ap_req_header(r, "Host");
    if (!host) return false;
    const char *h = strncasecmp(o, "http://", 7) == 0    ? o + 7
                    : strncasecmp(o, "https://", 8) == 0 ? o + 8
                                                         : NULL;
    return h && strcasecmp(h, host) == 0;
}

static bool common_checks(ap_req_t *r) {
    if (!origin_ok(r)) {
        refuse(r, AP_ERR_DENIED, "origin-not-allowed", "origin not allowed",
               "call the MCP endpoint from a client, or from a page served by this host",
               "the Origin header does not name this server");
        return false;
    }
    const char *pv = ap_req_header(r, "MCP-Protocol-Version");
    if (pv && !ap_mcp_version_supported(pv)) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_INVALID, "unsupported-protocol-version",
                   "unsupported protocol version",
                   "send one of 2025-06-18, 2025-03-26, 2024-11-05 (what initialize returned)",
                   "MCP-Protocol-Version is \"%.32s\"", pv);
        ap_resp_problem(r, &err);
        return false;
    }
    return true;
}

static bool is_json_type(const char *ct) {
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return false;
    char c = ct[16];
    return c == '\0' || c == ';' || c == ' ';
}

void ap_h_mcp_post(ap_req_t *r) {
    if (!common_checks(r)) return;
    const char *ct = ap_req_header(r, "Content-Type");
    if (!ct || !is_json_type(ct)) {
        refuse(r, AP_ERR_INVALID, "unsupported-media-type", "unsupported content type",
               "send JSON-RPC messages with Content-Type: application/json",
               ct ? "the Content-Type is not application/json" : "the Content-Type header is missing");
        return;
    }
    const char *accept = ap_req_header(r, "Accept");
    bool json_ok = accepts(accept, "application/json");
    bool sse_ok = accepts(accept, "text/event-stream");
    if (!json_ok && !sse_ok) {
        refuse(r, AP_ERR_INVALID, "not-acceptable", "not acceptable",
               "send Accept: application/json, text/event-stream",
               "the Accept header takes neither application/json nor text/event-stream");
        return;
    }
    json_t *root;
    bool batch;
    ap_err_t err = {0};
    if (ap_rpc_parse(r->body.p ? r->body.p : "", r->body.len, &root, &batch, &err)) {
        char msg[700];
        snprintf(msg, sizeof msg, "parse error: %s", err.detail);
        send_json(r, 400, ap_rpc_error(NULL, AP_RPC_PARSE_ERROR, ap_req_utf8(r->arena, msg), NULL));
        return;
    }
    ap_mcp_caller_t caller = {
        .db = r->app->db,
        .runner = r->app->runner,
        .memory = r->app->memory,
        .master_key = r->app->master_key,
        .tenant_id = r->tenant_id,
        .key_id = r->principal->key_id,
        .role = r->principal->role,
        .actor = &r->actor,
    };
    ap_mcp_state_t st = {0};
    ap_mcp_session_t sess = {0};
    json_t *meth = !batch ? json_object_get(root, "method") : NULL;
    bool init = json_is_string(meth) && strcmp(json_string_value(meth), "initialize") == 0 &&
                json_object_get(root, "id");
    const char *sid = ap_req_header(r, "Mcp-Session-Id");
    if (!init) {
        if (!sid) {
            json_decref(root);
            refuse(r, AP_ERR_INVALID, "missing-session", "missing Mcp-Session-Id",
                   "send the Mcp-Session-Id header that initialize returned, or initialize first",
                   "requests after initialize must carry the session id");
            return;
        }
        if (ap_mcp_session_get(r->app->db, r->arena, r->tenant_id, r->principal->key_id, sid, &sess,
                               &err)) {
            json_decref(root);
            ap_resp_problem(r, &err);
            return;
        }
        st.protocol_version = sess.protocol_version;
        st.initialized = sess.initialized;
    }
    json_t *answer;
    bool refused;
    ap_mcp_process(&caller, &st, r->arena, root, batch, &answer, &refused);
    json_decref(root);
    if (refused) {
        send_json(r, 400, answer);
        return;
    }
    if (init && st.did_initialize && answer && json_object_get(answer, "result")) {
        if (ap_mcp_session_create(r->app->db, r->arena, r->tenant_id, r->principal->key_id,
                                  st.protocol_version, st.client_name, st.client_version, &sess,
                                  &err)) {
            json_decref(answer);
            ap_resp_problem(r, &err);
            return;
        }
        ap_resp_header(r, "Mcp-Session-Id", sess.id);
    }
    if (!init && st.saw_initialized && !sess.initialized &&
        ap_mcp_session_mark_initialized(r->app->db, r->arena, r->tenant_id, sess.id, &err)) {
        json_decref(answer);
        ap_resp_problem(r, &err);
        return;
    }
    if (!answer) {
        ap_resp_raw(r, 202, NULL, NULL, 0);
        return;
    }
    if (json_ok)
        send_json(r, 200, answer);
    else
        send_sse(r, answer);
}

void ap_h_mcp_delete(ap_req_t *r) {
    if (!common_checks(r)) return;
    const char *sid = ap_req_header(r, "Mcp-Session-Id");
    if (!sid) {
        refuse(r, AP_ERR_INVALID, "missing-session", "missing Mcp-Session-Id",
               "send the Mcp-Session-Id of the session to end",
               "DELETE /mcp ends the session named by the Mcp-Session-Id header");
        return;
    }
    ap_err_t err = {0};
    if (ap_mcp_session_delete(r->app->db, r->arena, r->tenant_id, r->principal->key_id, sid, &err)) {
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_raw(r, 204, NULL, NULL, 0);
}
