/*
 * group.h - agent groups (teams): goal, strategy, shared context,
 * escalation rules and members (tables agent_groups,
 * agent_group_members; docs/agents.md).
 *
 * 1. Members are agents of the tenant.  A create or update may give
 *    "members": [agent ids] (an update replaces the whole set); single
 *    members are added and removed with ap_orch_group_member_add/_remove
 *    (PUT/DELETE …/agent-groups/{id}/members/{agent_id}).  Adding a
 *    member twice is not an error.  A retired agent cannot join.
 * 2. escalation_rules keys (checked; unknown keys refused): min_confidence
 *    (0..1: a result below it is escalated), on_failure (bool: a failed
 *    task is escalated), max_attempts (1..10: tries before escalating),
 *    escalate_to ("supervisor" | "human" | an agent id of the group).
 *    strategy and shared_context are free objects the context builder
 *    passes on.
 * 3. max_agent_groups (tenant entitlement) bounds the groups; one more is
 *    AP_ERR_DENIED "limit-exceeded" naming the limit and the count.
 * 4. Every mutation is audited (agent_group.create, .update, .delete,
 *    .member.add, .member.remove).
 * 5. The hierarchy of a group: its members as a forest by supervision
 *    (supervises, and reports_to reversed) among members, with every
 *    other relationship between members listed as edges.
 */
#ifndef AP_ORCH_GROUP_H
#define AP_ORCH_GROUP_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/json.h"
#include "store/db.h"

#define AP_ORCH_GROUP_MAX_MEMBERS 500

extern const ap_jfield_t ap_orch_group_create_fields[];
extern const ap_jfield_t ap_orch_group_update_fields[];

/* tx: a transaction for tenant_id; *out a new reference (the group with
 * its members). */
ap_rc ap_orch_group_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_orch_group_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err);
ap_rc ap_orch_group_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err);
ap_rc ap_orch_group_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_orch_group_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err);
ap_rc ap_orch_group_member_add(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                               const char *group_id, const char *agent_id, json_t **out,
                               ap_err_t *err);
ap_rc ap_orch_group_member_remove(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                  const char *group_id, const char *agent_id, ap_err_t *err);
/* {"group_id", "name", "goal", "roots": [node], "edges": [relationship]}
 * where node = {"agent_id", "name", "role", "status", "capabilities",
 * "relationship_id" (of the edge from its parent, null for roots),
 * "children": [node]}; edges are the relationships between members that
 * are not the tree's parent links. */
ap_rc ap_orch_group_hierarchy(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                              ap_err_t *err);

/* --- for the runner and the context builder --- */

/* A group's context.  Strings in the tx arena; json_t members borrowed
 * (released with the tx arena). */
typedef struct {
    const char *id, *tenant_id, *name, *description, *goal;
    json_t *strategy, *shared_context, *escalation_rules;
} ap_orch_group_ctx_t;

/* The tenant comes from the transaction (platform scope: any tenant). */
ap_rc ap_orch_group_context(ap_tx_t *tx, const char *group_id, ap_orch_group_ctx_t *out,
                            ap_err_t *err);
/* The groups agent_id belongs to: a JSON array (new reference) of
 * {"group_id", "name"} ordered by name. */
ap_rc ap_orch_agent_groups(ap_tx_t *tx, const char *agent_id, json_t **out, ap_err_t *err);
/* Whether agent_id is a member of group_id. */
ap_rc ap_orch_group_has_member(ap_tx_t *tx, const char *group_id, const char *agent_id,
                               bool *member, ap_err_t *err);

#endif
