/*
 * delegation.h - the agent-to-agent acts for callers outside a running
 * task (the MCP server's delegate_to_agent, query_agent and
 * escalate_to_supervisor; docs/mcp.md): a person or key with task.write
 * hands work to an agent, asks one a question, or escalates a task.
 *
 * 1. delegate: a new task for agent_id (deployed).  With from_agent_id,
 *    the relationship rules of the loop's own delegate_to_agent apply
 *    (supervises, delegates_to or reports_to from that agent, and its
 *    max_delegation_depth); with parent_task_id (not finished) the task is
 *    that task's subtask (same group, depth + 1, same root).  Audited as
 *    task.create, like any created task.
 * 2. query: a task of type "query" whose objective is the question, run
 *    by the runners like any other; ap_orch_query_wait then polls it
 *    until it finishes or the timeout passes (the task goes on; the
 *    caller can follow it with its id).  Blocks the calling thread.
 * 3. escalate: the task goes to the supervisor of its assigned agent
 *    (ap_orch_tv_supervisor), queued, with escalated_from and
 *    escalation_reason in its context and an "escalated" note step, so
 *    the runner builds a fresh context for the supervisor, exactly as the
 *    loop's own escalation.  Refused for a finished or delegated task and
 *    for one a runner holds right now (retry when it waits).  Audited as
 *    task.escalate.
 * 4. Every function but ap_orch_query_wait runs in the caller's tenant
 *    transaction; runnable tasks go to *wake (hand them to the runner
 *    after commit).  JSON out is a new reference (the task).
 */
#ifndef AP_ORCH_DELEGATION_H
#define AP_ORCH_DELEGATION_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/err.h"
#include "orch/task.h"
#include "store/db.h"

#define AP_ORCH_QUERY_TIMEOUT_MS 30000
#define AP_ORCH_QUERY_MAX_TIMEOUT_MS 120000

/* {agent_id, objective, parent_task_id?, from_agent_id?, priority?} */
ap_rc ap_orch_delegate(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor, json_t *in,
                       json_t **out, ap_orch_wake_t *wake, ap_err_t *err);
/* Creates the query task for agent_id (id or name); *out is the task. */
ap_rc ap_orch_query_start(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                          const char *agent_id, const char *question, json_t **out,
                          ap_orch_wake_t *wake, ap_err_t *err);
/* Waits for the task (own read transactions): *out {task_id, status,
 * answer, confidence} when it completed; AP_ERR_UNAVAILABLE type
 * "query-timeout" naming the task when it did not finish in timeout_ms;
 * AP_ERR_CONFLICT "query-failed" with the task's error when it failed. */
ap_rc ap_orch_query_wait(ap_db_t *db, const char *tenant_id, const char *task_id,
                         int timeout_ms, json_t **out, ap_err_t *err);
ap_rc ap_orch_escalate(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                       const char *task_id, const char *reason, json_t **out,
                       ap_orch_wake_t *wake, ap_err_t *err);

#endif
