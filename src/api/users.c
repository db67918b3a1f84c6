/*
 * users.c - /api/v1/tenants/{tenant_id}/users and the /api/v1/users alias.
 */
#include "api/api.h"
#include "http/server.h"
#include "identity/keycache.h"
#include "identity/user.h"

void ap_h_user_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_user_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_user_create(tx, r->tenant_id, &r->actor, r->principal->role, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_key_cache_invalidate(r->app->key_cache); /* a disabled user's keys */
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_user_list(ap_req_t *r) {
    ap_api_list_page(r, ap_user_list);
}

void ap_h_user_get(ap_req_t *r) {
    ap_api_get_one(r, "user_id", ap_user_get);
}

void ap_h_user_update(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "user_id", &id)) return;
    json_t *in;
    if (ap_req_json(r, ap_user_update_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_user_update(tx, r->tenant_id, &r->actor, r->principal->role, id, in, &out,
                            &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_user_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "user_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_user_delete(tx, r->tenant_id, &r->actor, id, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_key_cache_invalidate(r->app->key_cache);
    ap_api_done(r, rc, &err, 204, NULL);
}
