/*
 * client.h - external MCP servers as tools for agents: the tenant's
 * registry of servers, discovery of their tools, and calls.
 *
 * 1. A tenant registers a server by name, reached either over Streamable
 *    HTTP (url, and optionally the value of an Authorization header, sealed
 *    at rest with core/secret.h like BYOK keys and never returned, logged
 *    or audited) or over stdio (command: the NAME of an entry of the
 *    platform administrator's allowlist; a tenant never supplies a command
 *    line).  Names are 1-63 of [a-z0-9_-] and unique in the tenant.
 * 2. The allowlist is JSON, from `serve --mcp-stdio-allow` /
 *    AP_MCP_STDIO_ALLOW (the text itself, or @FILE): {"name": ["/path/to/
 *    program", "arg", …]} or {"name": {"argv": [...], "env": {"K": "V"}}}.
 *    It is set once at start (ap_mcp_allowlist_set) and read-only after.
 *    A stdio server starts with that argv (execve, no shell), an
 *    environment of PATH, HOME, LANG plus the entry's env (nothing of the
 *    platform's own environment: no keys leak), stdin/stdout as pipes,
 *    stderr to /dev/null, in its own process group; it is killed (the
 *    whole group, SIGKILL) when the call ends or its time is up, and
 *    reaped.
 * 3. Tools are discovered with tools/list (ap_mcp_client_discover, every
 *    page) and cached on the server's row; they are named
 *    "mcp:<server>/<tool>" when granted to agents (the agents.tools array
 *    holds such names, or "mcp:<server>/" followed by a star for all of a
 *    server's tools).
 * 4. A call opens a connection (initialize, notifications/initialized),
 *    sends tools/call, and closes it (HTTP: DELETE of the session; stdio:
 *    end of input, then kill).  Every call has a deadline (timeout_ms,
 *    1 ms..AP_MCP_MAX_TIMEOUT_MS, covering connection, handshake and
 *    call) and a bound on the bytes read from the server (max_output,
 *    1..AP_MCP_MAX_OUTPUT; past it the call fails with AP_ERR_TOO_LARGE).
 * 5. Threading: calls BLOCK the calling thread until the answer, the
 *    deadline or a failure (plain libcurl easy handles; poll() on the
 *    pipes).  Call them from a runner/worker thread, never on an HTTP
 *    request thread that must stay responsive (the REST :call endpoint
 *    does block its thread, bounded by the deadline; it is for testing
 *    and operations).  Thread-safe: no shared mutable state.
 * 6. Every call and discovery writes one audit entry in the tenant's chain
 *    (mcp.client.call / mcp.server.discover: server, tool, outcome,
 *    duration, bytes; never arguments or results, which may be private).
 */
#ifndef AP_MCP_CLIENT_H
#define AP_MCP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

#define AP_MCP_DEFAULT_TIMEOUT_MS 30000
#define AP_MCP_MAX_TIMEOUT_MS 300000
#define AP_MCP_DEFAULT_OUTPUT (1u << 20)
#define AP_MCP_MAX_OUTPUT (16u << 20)
#define AP_MCP_NAME_MAX 63

/* ---- the platform administrator's allowlist of stdio commands ---------- */

typedef struct ap_mcp_allowlist ap_mcp_allowlist_t;

/* Parses the allowlist JSON (see 2).  The text may be "@/path/file".
 * AP_ERR_INVALID naming the entry when malformed. */
ap_rc ap_mcp_allowlist_parse(const char *text, ap_mcp_allowlist_t **out, ap_err_t *err);
void ap_mcp_allowlist_free(ap_mcp_allowlist_t *l); /* accepts NULL */
/* The process-wide allowlist: set once at start, before threads; NULL
 * when none was configured (no stdio servers). */
void ap_mcp_allowlist_set(const ap_mcp_allowlist_t *l);
const ap_mcp_allowlist_t *ap_mcp_allowlist_get(void);
bool ap_mcp_allowlist_has(const ap_mcp_allowlist_t *l, const char *name);
/* The names in the allowlist, as a JSON array (new reference). */
json_t *ap_mcp_allowlist_names(const ap_mcp_allowlist_t *l);

/* ---- the registry (one tenant transaction each) ------------------------ */

extern const ap_jfield_t ap_mcp_server_create_fields[];

/* Registers a server: {name, url, auth_header?} or {name, command}.
 * master may be NULL only when no auth_header is given.  *out is the
 * server as the API shows it (no secret).  Writes "mcp.server.create". */
ap_rc ap_mcp_server_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_mcp_server_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err);
/* id_or_name: the server's id, or its name. */
ap_rc ap_mcp_server_get(ap_tx_t *tx, const char *tenant_id, const char *id_or_name, json_t **out,
                        ap_err_t *err);
/* Writes "mcp.server.delete". */
ap_rc ap_mcp_server_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err);

/* ---- talking to servers (blocking; see 5) ------------------------------ */

typedef struct {
    int timeout_ms;    /* 0: AP_MCP_DEFAULT_TIMEOUT_MS */
    size_t max_output; /* 0: AP_MCP_DEFAULT_OUTPUT */
} ap_mcp_limits_t;

/* Runs tools/list (all pages) on the server and caches the tools on its
 * row.  *out is the server with its tools (new reference). */
ap_rc ap_mcp_client_discover(ap_db_t *db, const uint8_t *master, const char *tenant_id,
                             const ap_actor_t *actor, const char *server_id,
                             const ap_mcp_limits_t *lim, json_t **out, ap_err_t *err);

/* Calls tool `tool` of the tenant's server `server` (id or name) with
 * `args` (an object; NULL for none).  The tool must be among the server's
 * discovered tools (AP_ERR_NOT_FOUND otherwise, with a hint to discover);
 * its name is matched exactly, else without regard to case when that is
 * unambiguous.  *result is the server's CallToolResult ({content,
 * structuredContent?, isError}; new reference): a result with isError is
 * success here (the tool ran and said no).  Failures: AP_ERR_NOT_FOUND
 * (server, tool), AP_ERR_UNAVAILABLE (cannot start, connect, or the
 * deadline passed; type "mcp-timeout" for the deadline), AP_ERR_TOO_LARGE
 * (output bound), AP_ERR_IO (protocol error; the detail quotes the
 * server's JSON-RPC error).  Audited (6).  Blocks (5). */
ap_rc ap_mcp_client_call(ap_db_t *db, const uint8_t *master, const char *tenant_id,
                         const ap_actor_t *actor, const char *server, const char *tool,
                         json_t *args, const ap_mcp_limits_t *lim, json_t **result,
                         ap_err_t *err);

/* ---- agents' tool names ------------------------------------------------ */

/* Splits "mcp:<server>/<tool>" into its parts (arena memory); false when
 * name is not of that form.  tool may be "*". */
bool ap_mcp_tool_ref_parse(ap_arena_t *a, const char *name, const char **server,
                           const char **tool);
/* The definitions of the MCP tools an agent is granted: for every
 * "mcp:<server>/<tool>" (tool may be a star) in `granted` (a JSON array of tool
 * names; other names are skipped) whose server is registered and whose
 * tool was discovered, {"name": "mcp:<server>/<tool>", "description",
 * "input_schema"}.  *out is a JSON array (new reference); what cannot be
 * resolved is left out (the agent does not see a tool it cannot call). */
ap_rc ap_mcp_client_tool_defs(ap_tx_t *tx, const char *tenant_id, json_t *granted, json_t **out,
                              ap_err_t *err);

#endif
