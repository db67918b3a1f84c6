/*
 * tenant.h - tenants: lifecycle, plan and entitlements.
 *
 * 1. Lifecycle: active ⇄ suspended; active|suspended → deleted (soft);
 *    deleted → gone, by ap_tenant_purge after the retention period.  A
 *    suspended or deleted tenant keeps its data; its keys are refused.
 * 2. Entitlements are stored now and enforced by each feature as it lands:
 *    max_agents 10, max_agent_groups 5, monthly_token_limit 1,000,000,
 *    storage_limit_gb 10 by default; max_concurrent_tasks 0 (the platform's
 *    --task-tenant-quota, which is also its ceiling) and task_weight 1
 *    (the tenant's weight in the task scheduler), read by the runner.
 * 3. Inputs are JSON objects already checked against the field tables in
 *    ap_tenant_create_fields / ap_tenant_update_fields.  Every change
 *    writes an audit entry to the tenant's own chain in the same
 *    transaction; a purge writes to the platform chain.
 * 4. The platform tenant (nil UUID) is never listed, changed or deleted.
 */
#ifndef AP_TENANT_TENANT_H
#define AP_TENANT_TENANT_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

extern const ap_jfield_t ap_tenant_create_fields[];
extern const ap_jfield_t ap_tenant_update_fields[];

typedef enum { AP_TENANT_SUSPEND, AP_TENANT_RESUME, AP_TENANT_DELETE } ap_tenant_op;

ap_rc ap_tenant_create(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                       ap_err_t *err);
/* status NULL lists active and suspended tenants; "deleted" lists those. */
ap_rc ap_tenant_list(ap_tx_t *tx, const char *status, const char *after, int limit, json_t **out,
                     const char **next, ap_err_t *err);
ap_rc ap_tenant_get(ap_tx_t *tx, const char *id, json_t **out, ap_err_t *err);
ap_rc ap_tenant_update(ap_tx_t *tx, const ap_actor_t *actor, const char *id, json_t *in,
                       json_t **out, ap_err_t *err);
ap_rc ap_tenant_transition(ap_tx_t *tx, const ap_actor_t *actor, const char *id, ap_tenant_op op,
                           json_t **out, ap_err_t *err);
/* Removes tenants deleted more than retention_days ago, with their users,
 * keys and idempotency records (their audit chains stay).  Platform-scope
 * transaction. */
ap_rc ap_tenant_purge(ap_tx_t *tx, const ap_actor_t *actor, int retention_days, json_t **purged,
                      ap_err_t *err);

#endif
