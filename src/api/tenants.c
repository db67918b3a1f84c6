/*
 * tenants.c - /api/v1/tenants: platform administration of tenants, and a
 * tenant reading itself.
 *
 * 1. Administration runs in platform-scope transactions (the tenant may
 *    not exist yet, or the caller is the platform); reading one's own
 *    tenant runs in that tenant's scope.
 */
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "identity/keycache.h"
#include "llm/cache.h"
#include "tenant/tenant.h"

static void in_platform_tx(ap_req_t *r, json_t *in, ap_tenant_op op, bool transition) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, NULL, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) {
        if (transition)
            rc = ap_tenant_transition(tx, &r->actor, r->tenant_id, op, &out, &err);
        else
            rc = ap_tenant_update(tx, &r->actor, r->tenant_id, in, &out, &err);
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    if (!rc) ap_key_cache_invalidate(r->app->key_cache); /* tenant status rides on keys */
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_tenant_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_tenant_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, NULL, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_tenant_create(tx, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) {
        const char *id = json_string_value(json_object_get(out, "id"));
        ap_resp_header(r, "Location", ap_arena_printf(r->arena, "/api/v1/tenants/%s", id));
    }
    ap_api_done(r, rc, &err, 201, out);
}

/* A platform route: no tenant, so the transaction is in platform scope. */
static ap_rc tenant_list(ap_tx_t *tx, const char *no_tenant, const ap_api_page_t *pg,
                         void *status, json_t **items, const char **next, ap_err_t *err) {
    (void)no_tenant;
    return ap_tenant_list(tx, status, pg->cursor, pg->limit, items, next, err);
}

void ap_h_tenant_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (ap_req_page(r, 50, 500, &pg.limit, &pg.cursor)) return;
    const char *status = ap_req_query(r, "status");
    if (status && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
        strcmp(status, "deleted") != 0) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid status filter",
                   "use active, suspended or deleted", "status is \"%.32s\"", status);
        ap_resp_problem(r, &err);
        return;
    }
    /* the cursor after the filter: with both wrong, the status is named */
    if (pg.cursor && !ap_uuid_valid(pg.cursor)) {
        ap_api_bad_cursor(r, pg.cursor);
        return;
    }
    ap_api_list(r, &pg, tenant_list, (void *)status);
}

static ap_rc tenant_get(ap_tx_t *tx, const char *tenant_id, void *ud, json_t **out,
                        ap_err_t *err) {
    (void)ud;
    return ap_tenant_get(tx, tenant_id, out, err);
}

void ap_h_tenant_get(ap_req_t *r) {
    ap_api_read(r, tenant_get, NULL);
}

void ap_h_tenant_self(ap_req_t *r) {
    ap_h_tenant_get(r);
}

void ap_h_tenant_update(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_tenant_update_fields, &in)) return;
    in_platform_tx(r, in, AP_TENANT_SUSPEND, false);
    json_decref(in);
}

void ap_h_tenant_suspend(ap_req_t *r) {
    in_platform_tx(r, NULL, AP_TENANT_SUSPEND, true);
}

void ap_h_tenant_resume(ap_req_t *r) {
    in_platform_tx(r, NULL, AP_TENANT_RESUME, true);
}

void ap_h_tenant_delete(ap_req_t *r) {
    in_platform_tx(r, NULL, AP_TENANT_DELETE, true);
}
