/*
 * llm_config.c - a tenant's LLM configurations:
 * /api/v1/tenants/{tenant_id}/llm/configs[/{config_id}] (alias
 * /api/v1/llm/configs[/{config_id}]).
 *
 * 1. Reading needs llm.read (every role: the configurations hold model
 *    choices and budgets, no secret); writing llm.config.write
 *    (tenant_admin).
 * 2. One service call (llm/config.c) in one transaction per request.
 */
#include "api/api.h"
#include "http/server.h"
#include "llm/cache.h"
#include "llm/config.h"

void ap_h_llm_config_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_llm_config_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_llm_config_create(tx, r->tenant_id, &r->actor, r->app->master_key, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_llm_config_list(ap_req_t *r) {
    ap_api_list_page(r, ap_llm_config_list);
}

void ap_h_llm_config_get(ap_req_t *r) {
    ap_api_get_one(r, "config_id", ap_llm_config_get);
}

void ap_h_llm_config_update(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "config_id", &id)) return;
    json_t *in;
    if (ap_req_json(r, ap_llm_config_update_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_llm_config_update(tx, r->tenant_id, &r->actor, r->app->master_key, id, in, &out,
                                   &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    json_decref(in);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_llm_config_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "config_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_llm_config_delete(tx, r->tenant_id, &r->actor, id, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_llm_cache_invalidate(r->app->llm_cache, r->tenant_id, AP_LLM_CACHE_ALL);
    ap_api_done(r, rc, &err, 204, NULL);
}
