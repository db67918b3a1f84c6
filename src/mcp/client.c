/*
 * client.c - discovery and calls of external MCP servers' tools (see
 * client.h).
 *
 * 1. No transaction is held while a server is talked to: the server's row
 *    is read (and its secret opened) in a short read transaction, the
 *    connection runs, and the outcome is written in a new one.
 * 2. The audit entry says which server and tool, the outcome, how long and
 *    how many bytes; never the arguments, the result or the secret.
 */
#include "mcp/client.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/secret.h"
#include "core/time.h"
#include "mcp/conn.h"

#define MAX_PAGES 20

bool ap_mcp_allowlist_target(ap_arena_t *a, const ap_mcp_allowlist_t *l, const char *name,
                             char *const **argv, char *const **envp);

typedef struct {
    const char *id, *name, *transport, *url, *command, *tools;
    ap_mcp_target_t target;
} server_row_t;

static ap_rc load(ap_db_t *db, ap_arena_t *a, const uint8_t *master, const char *tenant_id,
                  const char *id_or_name, server_row_t *s, ap_err_t *err) {
    memset(s, 0, sizeof *s);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id_or_name), AP_VTEXT(id_or_name)};
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT id, name, transport, url, command, auth_ciphertext, auth_nonce,"
                         " auth_data_key_wrapped, tools FROM mcp_servers"
                         " WHERE tenant_id = ? AND (id = ? OR name = ?)",
                         p, 3, &rows, err);
    if (rc) return rc;
    ap_tx_rollback(tx);
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "MCP server not found",
                          "list the tenant's MCP servers for their ids and names",
                          "no MCP server \"%.64s\" in this tenant", id_or_name);
    s->id = ap_rows_get(&rows, 0, "id");
    s->name = ap_rows_get(&rows, 0, "name");
    s->transport = ap_rows_get(&rows, 0, "transport");
    s->url = ap_rows_get(&rows, 0, "url");
    s->command = ap_rows_get(&rows, 0, "command");
    s->tools = ap_rows_get(&rows, 0, "tools");
    if (strcmp(s->transport, "stdio") == 0) {
        if (!ap_mcp_allowlist_target(a, ap_mcp_allowlist_get(), s->command, &s->target.argv,
                                     &s->target.envp))
            return ap_err_set(err, AP_ERR_UNAVAILABLE, "mcp-command-not-allowed",
                              "command no longer allowed",
                              "ask the platform administrator to restore the allowlist entry",
                              "the allowlist has no entry \"%s\" (server \"%s\")", s->command,
                              s->name);
        return AP_OK;
    }
    s->target.url = s->url;
    const char *ct = ap_rows_get(&rows, 0, "auth_ciphertext");
    if (ct) {
        if (!master)
            return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "no master key",
                              "start the server with its master key",
                              "the server's Authorization header is sealed");
        ap_sealed_t sealed = {ct, ap_rows_get(&rows, 0, "auth_nonce"),
                              ap_rows_get(&rows, 0, "auth_data_key_wrapped")};
        char *plain;
        rc = ap_secret_open(master, &sealed, a, &plain, err);
        if (rc) return rc;
        s->target.auth = plain;
    }
    return AP_OK;
}

static void limits(const ap_mcp_limits_t *lim, int *timeout_ms, size_t *max_output) {
    *timeout_ms = lim && lim->timeout_ms > 0 ? lim->timeout_ms : AP_MCP_DEFAULT_TIMEOUT_MS;
    if (*timeout_ms > AP_MCP_MAX_TIMEOUT_MS) *timeout_ms = AP_MCP_MAX_TIMEOUT_MS;
    *max_output = lim && lim->max_output > 0 ? lim->max_output : AP_MCP_DEFAULT_OUTPUT;
    if (*max_output > AP_MCP_MAX_OUTPUT) *max_output = AP_MCP_MAX_OUTPUT;
}

static void audit(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const ap_actor_t *actor,
                  const char *action, const server_row_t *s, const char *tool, ap_rc rc,
                  const ap_err_t *why, uint64_t t0, size_t bytes, bool is_error) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *changes = json_pack("{s:s,s:s?,s:f,s:I}", "server", s->name, "tool", tool,
                                "duration_ms", (double)(ap_mono_ns() - t0) / 1e6, "bytes",
                                (json_int_t)bytes);
    if (rc) json_object_set_new(changes, "error", json_string(why->type[0] ? why->type : ap_rc_type(rc)));
    if (tool && !rc) json_object_set_new(changes, "is_error", json_boolean(is_error));
    ap_audit_event_t ev = {action, "mcp_server", s->id, rc ? "failure" : "success", changes};
    ap_rc arc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, &err);
    if (!arc) arc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, &err);
    if (!arc) arc = ap_tx_commit(tx, &err);
    if (arc)
        ap_log(AP_LOG_ERROR, "audit of MCP client call failed", "{s:s,s:s}", "tenant_id",
               tenant_id, "detail", err.detail);
    json_decref(changes);
}

/* The discovered tool named like `tool`: exactly, else case-insensitively
 * when one matches (REST paths are lowercased). */
static ap_rc find_tool(const server_row_t *s, ap_arena_t *a, const char *tool, const char **exact,
                       ap_err_t *err) {
    if (!s->tools)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "mcp-not-discovered", "tools not discovered",
                          "discover the server's tools first (POST …/mcp-servers/{id}:discover)",
                          "MCP server \"%s\" has no discovered tools", s->name);
    json_t *tools = json_loads(s->tools, 0, NULL);
    const char *hit = NULL;
    int ci = 0;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (!n) continue;
        if (strcmp(n, tool) == 0) {
            hit = ap_arena_strdup(a, n);
            ci = 1;
            break;
        }
        if (strcasecmp(n, tool) == 0) {
            hit = ap_arena_strdup(a, n);
            ci++;
        }
    }
    json_decref(tools);
    if (!hit || ci != 1)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", hit ? "tool name ambiguous" : "tool not found",
                          "use a tool name from the server's discovered tools (discover again if "
                          "the server changed)",
                          "MCP server \"%s\" has no tool \"%.128s\"", s->name, tool);
    *exact = hit;
    return AP_OK;
}

ap_rc ap_mcp_client_call(ap_db_t *db, const uint8_t *master, const char *tenant_id,
                         const ap_actor_t *actor, const char *server, const char *tool,
                         json_t *args, const ap_mcp_limits_t *lim, json_t **result,
                         ap_err_t *err) {
    *result = NULL;
    int timeout_ms;
    size_t max_output;
    limits(lim, &timeout_ms, &max_output);
    uint64_t t0 = ap_mono_ns();
    ap_arena_t *a = ap_arena_new(8192);
    server_row_t s;
    ap_rc rc = load(db, a, master, tenant_id, server, &s, err);
    if (rc) {
        ap_arena_free(a);
        return rc;
    }
    const char *name = NULL;
    rc = find_tool(&s, a, tool, &name, err);
    ap_mcp_conn_t *c = NULL;
    json_t *init = NULL;
    if (!rc)
        rc = ap_mcp_conn_open(a, &s.target, t0 + (uint64_t)timeout_ms * 1000000u, max_output, &c,
                              &init, err);
    json_decref(init);
    if (!rc) {
        json_t *ar = json_is_object(args) ? json_incref(args) : json_object();
        json_t *params = json_pack("{s:s,s:o}", "name", name, "arguments", ar);
        rc = ap_mcp_conn_request(c, "tools/call", params, result, err);
    }
    size_t bytes = c ? ap_mcp_conn_bytes(c) : 0;
    ap_mcp_conn_close(c);
    bool is_error = *result && json_is_true(json_object_get(*result, "isError"));
    audit(db, a, tenant_id, actor, "mcp.client.call", &s, name ? name : tool, rc, err, t0, bytes,
          is_error);
    ap_arena_free(a);
    return rc;
}

ap_rc ap_mcp_client_discover(ap_db_t *db, const uint8_t *master, const char *tenant_id,
                             const ap_actor_t *actor, const char *server_id,
                             const ap_mcp_limits_t *lim, json_t **out, ap_err_t *err) {
    *out = NULL;
    int timeout_ms;
    size_t max_output;
    limits(lim, &timeout_ms, &max_output);
    uint64_t t0 = ap_mono_ns();
    ap_arena_t *a = ap_arena_new(8192);
    server_row_t s;
    ap_rc rc = load(db, a, master, tenant_id, server_id, &s, err);
    if (rc) {
        ap_arena_free(a);
        return rc;
    }
    ap_mcp_conn_t *c = NULL;
    json_t *init = NULL, *tools = json_array();
    rc = ap_mcp_conn_open(a, &s.target, t0 + (uint64_t)timeout_ms * 1000000u, max_output, &c,
                          &init, err);
    const char *cursor = NULL;
    for (int page = 0; !rc && page < MAX_PAGES; page++) {
        json_t *res = NULL;
        json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
        rc = ap_mcp_conn_request(c, "tools/list", params, &res, err);
        if (rc) break;
        json_t *list = json_object_get(res, "tools");
        if (!json_is_array(list)) {
            rc = ap_err_set(err, AP_ERR_IO, "mcp-protocol", "MCP server answered badly", NULL,
                            "tools/list: \"tools\" is not an array");
            json_decref(res);
            break;
        }
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t) {
            if (json_is_string(json_object_get(t, "name"))) json_array_append(tools, t);
        }
        const char *next = json_string_value(json_object_get(res, "nextCursor"));
        cursor = next ? ap_arena_strdup(a, next) : NULL;
        json_decref(res);
        if (!cursor) break;
    }
    size_t bytes = c ? ap_mcp_conn_bytes(c) : 0;
    const char *version = c ? ap_mcp_conn_version(c) : NULL;
    ap_mcp_conn_close(c);
    if (!rc) {
        char *ts = json_dumps(tools, JSON_COMPACT);
        char *si = json_dumps(json_object_get(init, "serverInfo") ? json_object_get(init, "serverInfo")
                                                                   : json_null(),
                              JSON_COMPACT | JSON_ENCODE_ANY);
        char now[AP_TIME_LEN];
        ap_time_format(ap_now_ms(), now);
        ap_tx_t *tx;
        ap_val_t v[] = {AP_VTEXT(ts),  AP_VTEXT(si),        AP_VTEXT(version), AP_VTEXT(now),
                        AP_VTEXT(now), AP_VTEXT(tenant_id), AP_VTEXT(s.id)};
        json_t *changes = json_pack("{s:s,s:I}", "server", s.name, "tool_count",
                                    (json_int_t)json_array_size(tools));
        ap_audit_event_t ev = {"mcp.server.discover", "mcp_server", s.id, "success", changes};
        rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, err);
        if (!rc)
            rc = ap_tx_query(tx,
                             "UPDATE mcp_servers SET tools = ?, server_info = ?, protocol_version = ?,"
                             " discovered_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                             v, 7, NULL, err);
        if (!rc) rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
        if (!rc) rc = ap_mcp_server_get(tx, tenant_id, s.id, out, err);
        if (!rc) rc = ap_tx_commit(tx, err);
        if (rc) {
            json_decref(*out);
            *out = NULL;
        }
        json_decref(changes);
        free(ts);
        free(si);
    } else {
        audit(db, a, tenant_id, actor, "mcp.server.discover", &s, NULL, rc, err, t0, bytes, false);
    }
    json_decref(init);
    json_decref(tools);
    ap_arena_free(a);
    return rc;
}
