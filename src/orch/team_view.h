/*
 * team_view.h - what the task runner reads of agents, teams and their
 * relationships: a narrow read-only view over the orch-team tables.
 *
 * 1. One place for these reads, so the agents service (orch/agent.h) can
 *    take them over without touching the runner.
 * 2. Relationship semantics are orch/relationship.h's:
 *      may delegate to X:  self supervises X, or self delegates_to X;
 *      supervisor of self: S supervises self, or self reports_to S;
 *      may query X:        self collaborates_with X (either direction) or
 *                          self consults X.
 *    The listings for the context follow the same rules.
 * 3. A runnable agent is one whose status is deployed or running; it runs
 *    its deployed version's spec (ap_orch_agent_spec) when that version is
 *    recorded, else the fields of its agents row.
 * 4. Everything returned is memory of the transaction's arena.
 */
#ifndef AP_ORCH_TEAM_VIEW_H
#define AP_ORCH_TEAM_VIEW_H

#include <jansson.h>
#include <stdbool.h>

#include "core/err.h"
#include "store/db.h"

typedef struct {
    const char *id, *name, *role, *description;
    const char *capabilities; /* JSON array text */
    const char *personality;  /* JSON object text */
    const char *autonomy_level; /* full | supervised | approval_required */
    const char *status;
    const char *llm_config_id; /* or NULL */
    int max_delegation_depth;
    int version; /* the deployed version (or latest when none) */
} ap_orch_agent_t;

/* By id, or by name when ref is not a UUID.  AP_ERR_NOT_FOUND naming
 * field when there is none. */
ap_rc ap_orch_tv_agent(ap_tx_t *tx, const char *tenant_id, const char *ref, const char *field,
                       ap_orch_agent_t *out, ap_err_t *err);
bool ap_orch_tv_runnable(const ap_orch_agent_t *a);

/* Agents self may delegate to / query: rows id, name, role, capabilities. */
ap_rc ap_orch_tv_delegates(ap_tx_t *tx, const char *tenant_id, const char *self, ap_rows_t *out,
                           ap_err_t *err);
ap_rc ap_orch_tv_consultees(ap_tx_t *tx, const char *tenant_id, const char *self, ap_rows_t *out,
                            ap_err_t *err);
bool ap_orch_tv_may_delegate(ap_tx_t *tx, const char *tenant_id, const char *self, const char *to);
bool ap_orch_tv_may_query(ap_tx_t *tx, const char *tenant_id, const char *self, const char *to);
/* *out NULL when self has no supervisor. */
ap_rc ap_orch_tv_supervisor(ap_tx_t *tx, const char *tenant_id, const char *self, const char **out,
                            ap_err_t *err);

/* The group's goal, strategy, shared_context, escalation_rules (one row;
 * nrows 0 when gone). */
ap_rc ap_orch_tv_group(ap_tx_t *tx, const char *tenant_id, const char *group_id, ap_rows_t *out,
                       ap_err_t *err);
/* The first group agent_id belongs to, or NULL. */
ap_rc ap_orch_tv_group_of(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                          const char **out, ap_err_t *err);
/* The group's top supervisor: a member no other member supervises (or
 * reports to another member), preferring one that supervises someone.
 * AP_ERR_NOT_FOUND naming group_id when the group is unknown; AP_ERR_INVALID
 * when it has no member. */
ap_rc ap_orch_tv_group_top(ap_tx_t *tx, const char *tenant_id, const char *group_id,
                           const char **out, ap_err_t *err);
/* Records a task outcome against the agent's skill skill_name
 * (ap_orch_skill_record_outcome; example may be NULL). */
ap_rc ap_orch_tv_skill_outcome(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                               const char *skill_name, bool success, double confidence,
                               const char *example, ap_err_t *err);

#endif
