/*
 * relationship.h - typed relationships between agents (table
 * agent_relationships; docs/agents.md).
 *
 * 1. Types: supervises, delegates_to, collaborates_with, reports_to,
 *    consults.  "X reports_to Y" is the same supervision as "Y supervises
 *    X": both are edges of one supervision graph, which must stay acyclic;
 *    a relationship that would close a cycle is AP_ERR_CONFLICT
 *    "supervision-cycle" naming the agents of the cycle in order.
 * 2. from and to are different agents of the tenant, neither retired;
 *    group_id (optional) names a group of the tenant; trust_level 0..1;
 *    communication_style sync | async | broadcast; handoff_rules an object.
 *    One relationship per (from, to, type).  An update may change only
 *    trust_level, communication_style, handoff_rules and group_id.
 * 3. Every create, update and delete is audited (agent.relationship.*).
 * 4. The queries for the runner (allows_delegation, can_query,
 *    supervisor_of, neighbours) take the tenant from the transaction (a
 *    platform-scope transaction sees every tenant) and ignore nothing:
 *    a retired agent's relationships still answer; the runner checks
 *    runnability itself (ap_orch_agent_runnable).
 */
#ifndef AP_ORCH_RELATIONSHIP_H
#define AP_ORCH_RELATIONSHIP_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/json.h"
#include "store/db.h"

extern const ap_jfield_t ap_orch_rel_create_fields[];
extern const ap_jfield_t ap_orch_rel_update_fields[];
extern const char *const ap_orch_rel_types[]; /* NULL-terminated */

typedef struct {
    const char *agent_id; /* either end; or NULL */
    const char *group_id; /* or NULL */
    const char *type;     /* or NULL */
} ap_orch_rel_filter_t;

/* tx: a transaction for tenant_id; *out a new reference. */
ap_rc ap_orch_rel_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor, json_t *in,
                         json_t **out, ap_err_t *err);
ap_rc ap_orch_rel_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                      ap_err_t *err);
ap_rc ap_orch_rel_list(ap_tx_t *tx, const char *tenant_id, const ap_orch_rel_filter_t *f,
                       const char *after, int limit, json_t **out, const char **next,
                       ap_err_t *err);
ap_rc ap_orch_rel_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                         const char *id, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_orch_rel_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                         const char *id, ap_err_t *err);

/* --- for the runner and the context builder --- */

/* from supervises to, or from delegates_to to. */
ap_rc ap_orch_rel_allows_delegation(ap_tx_t *tx, const char *from, const char *to, bool *allowed,
                                    ap_err_t *err);
/* from consults to, or a collaborates_with edge in either direction. */
ap_rc ap_orch_rel_can_query(ap_tx_t *tx, const char *from, const char *to, bool *allowed,
                            ap_err_t *err);
/* The supervisor of agent_id: a supervises edge into it, or a reports_to
 * edge out of it (the oldest when there are several).  *supervisor_id is
 * tx-arena memory, NULL when the agent has none. */
ap_rc ap_orch_supervisor_of(ap_tx_t *tx, const char *agent_id, const char **supervisor_id,
                            ap_err_t *err);
/* The agents related to agent_id, each once per relationship, as a JSON
 * array (new reference) of {"agent_id", "name", "role", "status",
 * "capabilities", "relation", "relationship_type", "relationship_id",
 * "trust_level", "communication_style", "handoff_rules"} where relation is
 * what the other agent is to agent_id: subordinate, supervisor, delegate
 * (agent_id delegates_to it), delegator, peer (collaborates_with),
 * consultant (agent_id consults it) or consulted_by.  Ordered by relation
 * then name. */
ap_rc ap_orch_rel_neighbours(ap_tx_t *tx, const char *agent_id, json_t **out, ap_err_t *err);

#endif
