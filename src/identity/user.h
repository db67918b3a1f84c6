/*
 * user.h - users of a tenant: email (unique within the tenant), display
 * name, role, status (active | disabled).
 *
 * 1. Inputs are JSON objects checked against the field tables below.
 * 2. Creating or changing a user's role obeys ap_policy_may_grant; a
 *    disabled user's keys stop authenticating.
 * 3. Every change is audited in the same transaction.
 */
#ifndef AP_IDENTITY_USER_H
#define AP_IDENTITY_USER_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "policy/policy.h"
#include "store/db.h"

extern const ap_jfield_t ap_user_create_fields[];
extern const ap_jfield_t ap_user_update_fields[];

ap_rc ap_user_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     ap_role granter, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_user_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                   json_t **out, const char **next, ap_err_t *err);
ap_rc ap_user_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                  ap_err_t *err);
ap_rc ap_user_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     ap_role granter, const char *id, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_user_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     const char *id, ap_err_t *err);

#endif
