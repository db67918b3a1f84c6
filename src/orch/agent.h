/*
 * agent.h - agents: their immutable versions and their lifecycle
 * (tables agents, agent_versions; docs/agents.md).
 *
 * 1. An agent's configurable fields form its spec: name, description,
 *    role, capabilities, personality, llm_config_id, memory_config,
 *    autonomy_level, max_delegation_depth, tools.  Every version's spec is
 *    written once to agent_versions and never changed: create writes
 *    version 1 (draft); an update writes version n+1, a copy of the latest
 *    with the changes laid over it, again a draft.  The agents row mirrors
 *    the latest version for listing.
 * 2. Lifecycle (agents.status): draft → validated → deployed → running →
 *    paused → retired.  :validate checks the latest version (LLM config
 *    exists, tools known, relationships sane) and marks it validated;
 *    :deploy picks a validated version (default the latest validated) as
 *    deployed_version; :pause, :resume, :retire.  While an agent is
 *    deployed, running or paused a new draft version does not change its
 *    status: the deployed version keeps running until another is
 *    deployed.  An illegal transition is AP_ERR_CONFLICT naming the
 *    transitions allowed from the current status.
 * 3. running is set and cleared as the agent's tasks start and end
 *    (ap_orch_task_settle_agent → ap_orch_agent_set_running):
 *    deployed ⇄ running.  Only deployed and running agents take tasks
 *    (ap_orch_agent_runnable).
 * 4. max_agents (tenant entitlement) bounds the agents that are not
 *    retired; creating one more is AP_ERR_DENIED "limit-exceeded" naming
 *    the limit and the current count.
 * 5. Every mutation writes its audit entry (agent.create, agent.update,
 *    agent.validate, agent.deploy, agent.pause, agent.resume,
 *    agent.retire) in the caller's transaction.
 * 6. Threads: every function works inside the caller's transaction and
 *    is as thread-safe as that transaction (one thread).  json_t results
 *    are new references the caller releases, unless stated otherwise.
 */
#ifndef AP_ORCH_AGENT_H
#define AP_ORCH_AGENT_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/json.h"
#include "store/db.h"

#define AP_ORCH_MAX_DELEGATION_DEPTH 10

/* Body fields of POST …/agents and PATCH …/agents/{id}. */
extern const ap_jfield_t ap_orch_agent_create_fields[];
extern const ap_jfield_t ap_orch_agent_update_fields[];
/* Body of POST …/agents/{id}:deploy: {"version": n} (optional). */
extern const ap_jfield_t ap_orch_agent_deploy_fields[];

/* The tool names agents may list besides MCP tools ("mcp:<server>/<tool>"),
 * NULL-terminated. */
extern const char *const ap_orch_tool_names[];
/* true when name is a known tool or matches mcp:<server>/<tool>. */
bool ap_orch_tool_known(const char *name);

typedef enum {
    AP_AGENT_VALIDATE,
    AP_AGENT_DEPLOY,
    AP_AGENT_PAUSE,
    AP_AGENT_RESUME,
    AP_AGENT_RETIRE,
} ap_agent_op;

/* tx: write transaction for tenant_id.  *out: the agent. */
ap_rc ap_orch_agent_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           json_t *in, json_t **out, ap_err_t *err);
/* Writes a new draft version (latest + in).  *out: the agent. */
ap_rc ap_orch_agent_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_orch_agent_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err);
/* status NULL: every status.  Ordered by id; *next is the cursor (tx arena)
 * or NULL. */
ap_rc ap_orch_agent_list(ap_tx_t *tx, const char *tenant_id, const char *status,
                         const char *after, int limit, json_t **out, const char **next,
                         ap_err_t *err);
/* Versions newest first; after_version 0 starts at the latest, else lists
 * versions below it; *next is the cursor (0: none). */
ap_rc ap_orch_agent_versions(ap_tx_t *tx, const char *tenant_id, const char *id,
                             int after_version, int limit, json_t **out, int *next,
                             ap_err_t *err);
ap_rc ap_orch_agent_version_get(ap_tx_t *tx, const char *tenant_id, const char *id,
                                int version, json_t **out, ap_err_t *err);
/* A lifecycle step.  version: for AP_AGENT_DEPLOY the version to deploy
 * (0: the latest validated one); ignored otherwise.  A failed validation
 * is AP_ERR_INVALID "agent-invalid" with every problem in the detail.
 * *out: the agent. */
ap_rc ap_orch_agent_transition(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                               const char *id, ap_agent_op op, int version, json_t **out,
                               ap_err_t *err);

/* --- for the runner and the context builder --- */

/* An agent's deployed spec.  Strings live in the tx arena; the json_t
 * members are borrowed (released when the tx arena is freed). */
typedef struct {
    const char *id, *tenant_id, *name, *description, *role;
    const char *status;          /* deployed | running */
    int version;                 /* the deployed version */
    const char *llm_config_id;   /* NULL: the tenant default (→ builtin) */
    const char *autonomy_level;  /* full | supervised | approval_required */
    int max_delegation_depth;    /* 0..10 */
    json_t *capabilities;        /* array of strings */
    json_t *personality;         /* object */
    json_t *memory_config;       /* object (docs/agents.md) */
    json_t *tools;               /* array of tool names */
    json_t *spec;                /* the whole version spec */
} ap_orch_agent_spec_t;

/* The deployed version's spec of agent_id when the agent is deployed or
 * running: AP_ERR_NOT_FOUND when there is no such agent (in the tx's
 * tenant; a platform-scope tx sees every tenant), AP_ERR_CONFLICT
 * "agent-not-runnable" naming its status otherwise. */
ap_rc ap_orch_agent_runnable(ap_tx_t *tx, const char *agent_id, ap_orch_agent_spec_t *out,
                             ap_err_t *err);
/* Any version's spec (for a task that pinned agent_version), whatever the
 * agent's status.  version 0: the deployed one. */
ap_rc ap_orch_agent_spec(ap_tx_t *tx, const char *agent_id, int version,
                         ap_orch_agent_spec_t *out, ap_err_t *err);
/* deployed → running (running true) or running → deployed (false); any
 * other status is left alone (AP_OK).  Not audited: the runner's events
 * record it. */
ap_rc ap_orch_agent_set_running(ap_tx_t *tx, const char *agent_id, bool running,
                                ap_err_t *err);

#endif
