/*
 * mcp_servers.c - a tenant's external MCP servers:
 * /api/v1/tenants/{tenant_id}/mcp-servers[/{server_id}[:discover]]
 * and …/mcp-servers/{server_id}/tools/{tool}:call (aliases under
 * /api/v1/mcp-servers).
 *
 * 1. Registering and removing needs mcp.server.write (tenant_admin), as
 *    does :discover (it rewrites the cached tools); reading agent.read;
 *    :call task.write (it runs a tool as agents would).
 * 2. :discover and :call talk to the external server and block this
 *    request's thread until it answers or the deadline passes (at most
 *    AP_MCP_MAX_TIMEOUT_MS); they are for set-up, testing and operations.
 *    Agents reach the same service from the runner's threads.
 * 3. A failure of the external server is the server's, not ours: it is
 *    answered 502 (504 past the deadline) with a detail that says what
 *    the server did, never 500 with the detail hidden.
 * 4. Paths are lowercased by the router; the tool in a :call path is
 *    matched against the discovered names without regard to case when
 *    that is unambiguous.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "mcp/client.h"

static const ap_jfield_t call_fields[] = {
    {"arguments", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    {"timeout_ms", AP_JT_INT, false, false, NULL, 0, 1, AP_MCP_MAX_TIMEOUT_MS},
    {"max_output_bytes", AP_JT_INT, false, false, NULL, 0, 1, AP_MCP_MAX_OUTPUT},
    AP_JFIELDS_END,
};

/* Answers a failure of the external server as 502/504 with its detail. */
static void answer(ap_req_t *r, ap_rc rc, const ap_err_t *err, int status, json_t *out) {
    bool remote = (rc == AP_ERR_IO || rc == AP_ERR_UNAVAILABLE || rc == AP_ERR_TOO_LARGE) &&
                  strncmp(err->type, "mcp-", 4) == 0;
    if (!rc || !remote) {
        ap_api_done(r, rc, err, status, out);
        return;
    }
    json_decref(out);
    int st = strcmp(err->type, "mcp-timeout") == 0 ? 504 : 502;
    json_t *p = ap_problem_json(err, 400, r->request_id, r->path); /* 4xx: keeps the detail */
    json_object_set_new(p, "status", json_integer(st));
    char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    ap_resp_raw(r, st, "application/problem+json", s, strlen(s));
}

void ap_h_mcp_server_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_mcp_server_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_mcp_server_create(tx, r->tenant_id, &r->actor, r->app->master_key, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_mcp_server_list(ap_req_t *r) {
    ap_api_list_page(r, ap_mcp_server_list);
}

void ap_h_mcp_server_get(ap_req_t *r) {
    ap_api_get_one(r, "server_id", ap_mcp_server_get);
}

void ap_h_mcp_server_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "server_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_mcp_server_delete(tx, r->tenant_id, &r->actor, id, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    ap_api_done(r, rc, &err, 204, NULL);
}

static const ap_jfield_t discover_fields[] = {
    {"timeout_ms", AP_JT_INT, false, false, NULL, 0, 1, AP_MCP_MAX_TIMEOUT_MS},
    AP_JFIELDS_END,
};

void ap_h_mcp_server_discover(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "server_id", &id)) return;
    json_t *in = NULL;
    if (r->body.len && ap_req_json(r, discover_fields, &in)) return;
    ap_mcp_limits_t lim = {.timeout_ms = in ? (int)ap_json_int(in, "timeout_ms", 0) : 0,
                           .max_output = AP_MCP_MAX_OUTPUT};
    json_decref(in);
    ap_err_t err = {0};
    json_t *out = NULL;
    ap_rc rc = ap_mcp_client_discover(r->app->db, r->app->master_key, r->tenant_id, &r->actor, id,
                                      &lim, &out, &err);
    answer(r, rc, &err, 200, out);
}

void ap_h_mcp_server_call(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "server_id", &id)) return;
    const char *tool = ap_req_param(r, "tool");
    json_t *in = NULL;
    if (r->body.len && ap_req_json(r, call_fields, &in)) return;
    ap_mcp_limits_t lim = {
        .timeout_ms = in ? (int)ap_json_int(in, "timeout_ms", 0) : 0,
        .max_output = in ? (size_t)ap_json_int(in, "max_output_bytes", 0) : 0,
    };
    ap_err_t err = {0};
    json_t *result = NULL;
    ap_rc rc = ap_mcp_client_call(r->app->db, r->app->master_key, r->tenant_id, &r->actor, id, tool,
                                  in ? json_object_get(in, "arguments") : NULL, &lim, &result, &err);
    json_decref(in);
    json_t *out = NULL;
    if (!rc) out = json_pack("{s:s,s:s,s:o}", "server_id", id, "tool", tool, "result", result);
    answer(r, rc, &err, 200, out);
}
