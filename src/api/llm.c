/*
 * llm.c - /api/v1/llm: the model catalog (read by every role, changed by
 * platform admins) and tenants' private providers
 * (/api/v1/tenants/{tenant_id}/llm/providers, alias
 * /api/v1/llm/private-providers).
 *
 * 1. Model ids hold '/' and capitals ("together/meta-llama/Llama-3.3-…"),
 *    which a path cannot carry: paths are lowercased and an encoded '/' is
 *    refused.  So one model is named by ?id= on GET /api/v1/llm/models and
 *    by "id" in the body of PATCH /api/v1/llm/models and
 *    POST /api/v1/llm/models:deactivate — in the body rather than the
 *    query because an Idempotency-Key record hashes method, path and body,
 *    and must tell two models apart.
 * 2. Reads run in the caller's tenant scope (the platform tenant for a
 *    platform_admin key on the alias routes): platform rows plus that
 *    tenant's private ones.  Catalog writes run in platform scope.
 * 3. include_inactive=true is for platform admins; others get 403.
 */
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "llm/cache.h"
#include "llm/catalog.h"

/* An optional query parameter; "" counts as absent. */
static const char *query(ap_req_t *r, const char *name) {
    const char *v = ap_req_query(r, name);
    return v && *v ? v : NULL;
}

/* ?include_inactive=true|false; answers the problem and returns false when
 * it is malformed or not allowed for the caller. */
static bool include_inactive(ap_req_t *r, bool *out) {
    const char *v = query(r, "include_inactive");
    ap_err_t err = {0};
    *out = false;
    if (!v || strcmp(v, "false") == 0) return true;
    if (strcmp(v, "true") != 0) {
        ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid include_inactive",
                   "use true or false", "include_inactive is \"%.32s\"", v);
        ap_resp_problem(r, &err);
        return false;
    }
    if (r->principal->role != AP_ROLE_PLATFORM_ADMIN) {
        ap_err_set(&err, AP_ERR_DENIED, "forbidden", "permission denied",
                   "leave include_inactive out to see what this tenant can use",
                   "only platform_admin sees inactive models and providers (role %s)",
                   ap_role_name(r->principal->role));
        ap_resp_problem(r, &err);
        return false;
    }
    *out = true;
    return true;
}

static ap_rc provider_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg,
                           void *inactive, json_t **items, const char **next, ap_err_t *err) {
    return ap_catalog_provider_list(tx, tenant_id, *(bool *)inactive, pg->cursor, pg->limit,
                                    items, next, err);
}

/* The cursors of the catalog are provider and model ids: any text. */
void ap_h_llm_provider_list(ap_req_t *r) {
    ap_api_page_t pg;
    bool inactive;
    if (ap_req_page(r, 50, 500, &pg.limit, &pg.cursor) || !include_inactive(r, &inactive)) return;
    ap_api_list(r, &pg, provider_list, &inactive);
}

/* The models after the cursor, or the one named by ?id= as a page of one. */
typedef struct {
    ap_catalog_filter_t f;
    const char *id;
} model_query_t;

static ap_rc model_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *ud,
                        json_t **items, const char **next, ap_err_t *err) {
    (void)pg; /* in the filter */
    const model_query_t *q = ud;
    if (!q->id) return ap_catalog_model_list(tx, tenant_id, &q->f, items, next, err);
    json_t *one = NULL;
    ap_rc rc = ap_catalog_model_get(tx, tenant_id, q->id, &one, err);
    if (!rc) {
        *items = json_array();
        json_array_append_new(*items, one);
    }
    return rc;
}

void ap_h_llm_model_list(ap_req_t *r) {
    ap_api_page_t pg;
    bool inactive;
    if (ap_req_page(r, 50, 500, &pg.limit, &pg.cursor) || !include_inactive(r, &inactive)) return;
    model_query_t q = {
        .f = {
            .provider = query(r, "provider"),
            .capability = query(r, "capability"),
            .tier = query(r, "tier"),
            .max_price = query(r, "max_price"),
            .include_inactive = inactive,
            .after = pg.cursor,
            .limit = pg.limit,
        },
        .id = query(r, "id"),
    };
    const ap_catalog_filter_t *f = &q.f;
    if (q.id && (f->provider || f->capability || f->tier || f->max_price || f->after)) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "id does not combine with filters",
                   "look one model up with ?id= alone, or list with filters",
                   "id was given with provider, capability, tier, max_price or cursor");
        ap_resp_problem(r, &err);
        return;
    }
    ap_api_list(r, &pg, model_list, &q);
}

void ap_h_llm_model_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_catalog_model_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, NULL, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_catalog_model_create(tx, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, NULL, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_llm_model_update(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_catalog_model_update_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, NULL, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_catalog_model_update(tx, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, NULL, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_llm_model_deactivate(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_catalog_model_ref_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, NULL, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_catalog_model_deactivate(tx, &r->actor, ap_json_str(in, "id"), &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, NULL, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_llm_private_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_catalog_private_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_catalog_private_create(tx, r->tenant_id, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_llm_private_list(ap_req_t *r) {
    ap_api_list_page(r, ap_catalog_private_list);
}

void ap_h_llm_private_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "provider_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_catalog_private_delete(tx, r->tenant_id, &r->actor, id, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    ap_api_done(r, rc, &err, 204, NULL);
}
