/*
 * server.h - the platform as an MCP server: lifecycle, version
 * negotiation and method dispatch, shared by both transports (Streamable
 * HTTP in api/mcp.c, stdio in cmd/mcp.c).
 *
 * 1. Protocol versions spoken: 2025-06-18 (latest), 2025-03-26 and
 *    2024-11-05.  initialize answers the client's version when it is one
 *    of these, else the latest; the client decides whether it can go on.
 *    JSON-RPC batches are accepted for versions before 2025-06-18 (that
 *    revision removed them), and initialize is never part of a batch.
 * 2. Methods: initialize, ping, tools/list, tools/call; notifications:
 *    notifications/initialized, notifications/cancelled (answers are not
 *    cancellable here: every call finishes quickly).  Anything else is
 *    -32601; a notification that is not understood is dropped.
 * 3. The caller is an authenticated API key: every tool call is
 *    authorised as the key's role and audited (mcp/tools.h).
 * 4. Thread-safe: state lives in the caller's ap_mcp_state_t.
 */
#ifndef AP_MCP_SERVER_H
#define AP_MCP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/arena.h"
#include "mcp/jsonrpc.h"
#include "policy/policy.h"
#include "store/db.h"

struct ap_orch_runner;
struct ap_mem;

/* What a tool's transaction leaves for after its commit. */
typedef struct {
    void *wake; /* ap_orch_wake_t *: tasks to hand to the runner */
} ap_mcp_after_commit_t;

/* Who is calling: an API key of a tenant. */
typedef struct {
    ap_db_t *db;
    struct ap_orch_runner *runner; /* this node's task runner, or NULL */
    struct ap_mem *memory;         /* the memory service (memory/memory.h), or NULL */
    ap_mcp_after_commit_t *after_commit; /* set by the tool dispatcher */
    const uint8_t *master_key; /* tenant secrets (may be NULL) */
    const char *tenant_id;
    const char *key_id;
    ap_role role;
    const ap_actor_t *actor;
} ap_mcp_caller_t;

/* The protocol state of one connection (stdio) or session (HTTP). */
typedef struct {
    const char *protocol_version; /* negotiated; NULL before initialize */
    bool initialized;             /* notifications/initialized seen */
    /* set by an initialize handled in this call */
    bool did_initialize;
    const char *client_name, *client_version; /* arena memory */
    bool saw_initialized; /* notifications/initialized handled in this call */
} ap_mcp_state_t;

bool ap_mcp_version_allows_batch(const char *v);

/* Handles one message.  Returns the answer to a request (result or
 * error; new reference), or NULL for notifications and responses.  An
 * invalid message is answered with -32600. */
json_t *ap_mcp_handle(const ap_mcp_caller_t *c, ap_mcp_state_t *st, ap_arena_t *a, json_t *msg);

/* Handles a parsed body: one message or a batch.  *answer is what to send
 * back (an object, an array for a batch, or NULL when only notifications
 * and responses came).  A batch the negotiated version does not allow, an
 * empty batch, or initialize inside a batch is answered with one -32600
 * error and *refused set. */
void ap_mcp_process(const ap_mcp_caller_t *c, ap_mcp_state_t *st, ap_arena_t *a, json_t *root,
                    bool batch, json_t **answer, bool *refused);

#endif
