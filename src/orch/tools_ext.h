/*
 * tools_ext.h - the agent loop's tools that live in other domains: agent
 * memory (remember, recall, learn_entity, query_knowledge) and the tools
 * of external MCP servers ("mcp:<server>/<tool>"), plus what memory adds
 * to a task's context (docs/tasks.md "Tools", docs/memory.md "In the
 * agent loop").
 *
 * 1. Grants: these tools are offered to the model only when the agent's
 *    `tools` array names them (memory tools by name, MCP tools as
 *    "mcp:<server>/<tool>" whose server is registered and whose tool was
 *    discovered).  The loop's own tools (delegate_to_agent, query_agent,
 *    escalate_to_supervisor, request_approval, complete_task) keep being
 *    offered by the agent's relationships (loop.c).
 * 2. Names: an MCP tool is shown to the model as "mcp__<server>__<tool>"
 *    (characters outside [A-Za-z0-9_-] become '_', cut at 64 bytes) since
 *    provider APIs accept only such names; a call is mapped back by
 *    recomputing the names of the agent's grants (first grant wins a
 *    collision).  The grant's own name "mcp:<server>/<tool>" is accepted
 *    too.
 * 3. Calls run with NO transaction of the loop open (the loop commits
 *    before and reopens after: the memory service and the MCP client open
 *    their own, and an MCP call may take up to its deadline).  A call
 *    never fails the task: any error becomes a tool result with is_error,
 *    {"error": "<what was wrong>"}, which the model sees.
 * 4. An MCP call blocks the runner worker that runs it, bounded by the
 *    call's deadline (AP_ORCH_MCP_TIMEOUT_MS unless configured) and output
 *    bound; it is audited by the MCP client (mcp.client.call, actor the
 *    agent).  MCP tools count as side-effecting: under autonomy
 *    "supervised" a person approves each call first.
 * 5. Thread-safe (no state but the configuration, read-only).
 */
#ifndef AP_ORCH_TOOLS_EXT_H
#define AP_ORCH_TOOLS_EXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/db.h"

struct ap_mem;

#define AP_ORCH_MCP_TIMEOUT_MS 30000
#define AP_ORCH_CONTEXT_MEMORIES 5 /* memories recalled into a task's context */

typedef struct ap_orch_ext {
    ap_db_t *db;                /* the store (MCP calls open their own transactions) */
    struct ap_mem *mem;         /* NULL: no memory tools and no recalled context */
    const uint8_t *master_key;  /* opens MCP servers' sealed auth headers; NULL: none */
    int mcp_timeout_ms;         /* 0: AP_ORCH_MCP_TIMEOUT_MS */
    size_t mcp_max_output;      /* 0: the client's default */
} ap_orch_ext_t;

/* The extension tools agent_id is granted, as a JSON array of
 * {"name", "description", "parameters"} (new reference; empty when x is
 * NULL or nothing is granted).  tx: any open transaction of the tenant. */
json_t *ap_orch_ext_offered(const ap_orch_ext_t *x, ap_tx_t *tx, const char *tenant_id,
                            const char *agent_id);
/* The offered entry whose name (or grant name) is `name`, or NULL (new
 * reference). */
json_t *ap_orch_ext_find(const ap_orch_ext_t *x, ap_tx_t *tx, const char *tenant_id,
                         const char *agent_id, const char *name);
/* Needs approval under autonomy "supervised" (MCP tools). */
bool ap_orch_ext_side_effect(json_t *found);

/* Runs the tool `found` (from ap_orch_ext_find) for the agent of task_id.
 * *content: the result (new reference); *is_error when it failed. */
void ap_orch_ext_call(const ap_orch_ext_t *x, const char *tenant_id, const char *agent_id,
                      const char *task_id, json_t *found, json_t *args, json_t **content,
                      bool *is_error);

/* Appends "# Recalled memories" and "# Knowledge facts" sections for the
 * objective to the system prompt (nothing when there is nothing), and
 * records the objective in the hot tier (conversation = the task id).
 * *used (new reference, may be NULL): {"memories":[ids], "facts":[names]}.
 * Failures of memory are logged and leave the sections out. */
void ap_orch_ext_context(const ap_orch_ext_t *x, const char *tenant_id, const char *agent_id,
                         const char *task_id, const char *objective, ap_buf_t *sys,
                         json_t **used);

/* Appends one message of the task's conversation to the hot tier. */
void ap_orch_ext_hot(const ap_orch_ext_t *x, const char *tenant_id, const char *agent_id,
                     const char *task_id, const char *role, const char *content);

#endif
