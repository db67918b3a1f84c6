/*
 * graph.h - tier 3 of agent memory: the tenant's knowledge graph.
 *
 * 1. Entities are unique per tenant by (entity_type, normalised name):
 *    learning an entity again upserts it, merges its attributes and raises
 *    its confidence by noisy-or (c = 1 - (1 - c_old)(1 - c_new)).
 * 2. Attribute values are temporal facts [valid_from, valid_to): a new
 *    value of the same attribute closes the open fact at the new fact's
 *    valid_from instead of deleting it; the same value again only raises
 *    the fact's confidence.  Relations are temporal too: a relation type
 *    that is single-valued (a built-in list, or "single_valued": true)
 *    closes the entity's open relation of that type to another target.
 *    Every read takes `as_of` (RFC 3339; default now): what was true then.
 * 3. Paths up to k hops are one recursive CTE, the same SQL on SQLite and
 *    PostgreSQL; edges are walked in both directions, no node twice.
 * 4. Every function runs in the caller's tenant transaction; learn and
 *    delete append their audit entry there.  Results are new references.
 */
#ifndef AP_MEMORY_GRAPH_H
#define AP_MEMORY_GRAPH_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

#define AP_GRAPH_MAX_HOPS 6

extern const ap_jfield_t ap_graph_learn_fields[];
extern const ap_jfield_t ap_graph_relate_fields[];
extern const char *const ap_graph_single_valued[]; /* NULL-terminated */

/* {entity_type, name, attributes?, confidence?, observed_at?,
 *  relations?: [{relation_type, to_entity_id | to:{entity_type,name},
 *                strength?, evidence?, single_valued?}]}
 * agent_id (or NULL) is recorded as source / discoverer.  → the entity. */
ap_rc ap_graph_learn(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     const char *agent_id, json_t *in, json_t **out, ap_err_t *err);
/* {from_entity_id | from:{…}, to_entity_id | to:{…}, relation_type,
 *  strength?, evidence?, single_valued?, observed_at?} → the relation. */
ap_rc ap_graph_relate(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                      const char *agent_id, json_t *in, json_t **out, ap_err_t *err);
/* {name?, entity_type?, attribute?, value?, as_of?, limit?,
 *  neighbors_of?, path:{from, to, max_hops}?}: entities matching (name is a
 * substring of the normalised name), or with neighbors_of the neighbours,
 * or with path the paths.  → {"data":[…]}. */
ap_rc ap_graph_query(ap_tx_t *tx, const char *tenant_id, json_t *in, json_t **out,
                     ap_err_t *err);
/* One entity with its attributes as of as_of (NULL: now), its fact
 * history and its relations then. */
ap_rc ap_graph_get(ap_tx_t *tx, const char *tenant_id, const char *id, const char *as_of,
                   json_t **out, ap_err_t *err);
/* {"data":[{relation, direction, entity}]} of relations touching id. */
ap_rc ap_graph_neighbors(ap_tx_t *tx, const char *tenant_id, const char *id, const char *as_of,
                         json_t **out, ap_err_t *err);
/* {"data":[{hops, nodes:[ids], relations:[ids]}]}, shortest first (at
 * most 50); to NULL: paths to every entity within max_hops. */
ap_rc ap_graph_paths(ap_tx_t *tx, const char *tenant_id, const char *from, const char *to,
                     int max_hops, const char *as_of, json_t **out, ap_err_t *err);
/* {"nodes":[{id,label,type,attributes,confidence}], "edges":[{id,source,
 * target,type,strength}]} for visualisation (up to 5000 nodes). */
ap_rc ap_graph_export(ap_tx_t *tx, const char *tenant_id, const char *as_of, json_t **out,
                      ap_err_t *err);
ap_rc ap_graph_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                      const char *id, ap_err_t *err);
/* Current attributes of entities whose normalised name occurs in text:
 * a JSON array of {entity_type, name, attributes} (new reference). */
ap_rc ap_graph_facts_for_text(ap_tx_t *tx, const char *tenant_id, const char *text, int limit,
                              json_t **out, ap_err_t *err);

#endif
