/*
 * common.h - what the orch modules (agent, group, relationship, skill)
 * share: JSON columns, string-array checks, audit entries.
 *
 * 1. JSON columns are stored as compact text; reading one back that is
 *    not valid JSON yields null rather than failing the whole answer.
 * 2. Internal to src/orch/: other domains use the module headers.
 */
#ifndef AP_ORCH_COMMON_H
#define AP_ORCH_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "store/db.h"

/* The JSON text s parsed (new reference), or json_null(). */
json_t *ap_orch_json_col(const char *s);
/* Compact JSON text of v in the tx arena ("null" for NULL). */
const char *ap_orch_json_text(ap_tx_t *tx, json_t *v);
/* Checks that v is an array of at most max_items non-empty strings of at
 * most max_len bytes, without duplicates; names field and index. */
ap_rc ap_orch_check_strings(json_t *v, const char *field, size_t max_items, size_t max_len,
                            ap_err_t *err);
/* Appends one audit entry (resource_type, id, changes borrowed). */
ap_rc ap_orch_audit(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                    const char *action, const char *resource_type, const char *id,
                    json_t *changes, ap_err_t *err);
/* The tenant of tx, or NULL in platform scope: queries filter with
 * "tenant_id = COALESCE(?, tenant_id)". */
const char *ap_orch_tenant(ap_tx_t *tx);
/* AP_ERR_NOT_FOUND "not-found" for an agent id. */
ap_rc ap_orch_agent_not_found(const char *id, ap_err_t *err);
/* Whether agent id exists in tenant_id; *status (optional) gets its status
 * (tx arena). */
ap_rc ap_orch_agent_status(ap_tx_t *tx, const char *tenant_id, const char *id,
                           const char **status, ap_err_t *err);

/* AP_ERR_NOT_FOUND naming the group unless group id exists in tenant_id. */
ap_rc ap_orch_group_check(ap_tx_t *tx, const char *tenant_id, const char *id, ap_err_t *err);
/* A kind of named, counted resource of a tenant (agents, agent groups):
 * what the name and limit checks below say of it. */
typedef struct {
    const char *table;      /* also the lock key's prefix: "agents" */
    const char *noun;       /* "agent", "agent group" (after "an") */
    const char *short_noun; /* "agent", "group": "update the existing …" */
    const char *limit_col;  /* the tenants column: "max_agents" */
    const char *counted;    /* SQL added to what counts ("" for every row) */
    const char *counted_as; /* "agents that are not retired", "groups" */
    const char *make_room;  /* "retire an agent", "delete a group" */
} ap_orch_kind_t;

/* AP_ERR_CONFLICT "conflict" when another row of the kind (not id, which
 * may be NULL) has this name in the tenant. */
ap_rc ap_orch_name_free(ap_tx_t *tx, const ap_orch_kind_t *k, const char *tenant_id,
                        const char *name, const char *id, ap_err_t *err);
/* Takes the tenant's lock for the kind, then AP_ERR_DENIED
 * "limit-exceeded" when the tenant has its limit of counted rows. */
ap_rc ap_orch_check_limit(ap_tx_t *tx, const ap_orch_kind_t *k, const char *tenant_id,
                          ap_err_t *err);

/* AP_ERR_INVALID "invalid-field" unless v is a number in [0, 1]. */
ap_rc ap_orch_check_unit(json_t *v, const char *field, ap_err_t *err);

#endif
