/*
 * keys.c - /api/v1/tenants/{tenant_id}/api-keys and the /api/v1/api-keys
 * alias.  The plaintext key is in the create response only; an
 * idempotent replay of the create returns the metadata without it.
 */
#include <stdlib.h>

#include "api/api.h"
#include "http/server.h"
#include "identity/keycache.h"

static const ap_jfield_t create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    {"role", AP_JT_STRING, false, false, ap_role_names, 0, 0, 0},
    {"user_id", AP_JT_STRING, false, false, NULL, 36, 0, 0},
    {"expires_at", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    AP_JFIELDS_END,
};

void ap_h_key_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, create_fields, &in)) return;
    ap_apikey_spec_t spec = {
        .name = ap_json_str(in, "name"),
        .role = ap_json_str(in, "role"),
        .user_id = ap_json_str(in, "user_id"),
        .expires_at = ap_json_str(in, "expires_at"),
    };
    ap_err_t err = {0};
    ap_rc rc = AP_OK;
    if (spec.user_id && !ap_uuid_valid(spec.user_id))
        rc = ap_err_set(&err, AP_ERR_INVALID, "invalid-field", "invalid user_id",
                        "give a user id as returned by the users API", "user_id \"%.36s\"",
                        spec.user_id);
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!rc) rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_apikey_create(tx, r->tenant_id, &r->actor, r->principal->role, &spec, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) {
        json_t *meta = json_deep_copy(out);
        json_object_del(meta, "key");
        json_object_set_new(meta, "key_redacted",
                            json_string("the key is shown only in the first response"));
        char *s = json_dumps(meta, JSON_COMPACT);
        r->replay_body = ap_arena_strdup(r->arena, s);
        free(s);
        json_decref(meta);
    }
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_key_list(ap_req_t *r) {
    ap_api_list_page(r, ap_apikey_list);
}

void ap_h_key_get(ap_req_t *r) {
    ap_api_get_one(r, "key_id", ap_apikey_get);
}

void ap_h_key_revoke(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "key_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_apikey_revoke(tx, r->tenant_id, &r->actor, id, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) ap_key_cache_invalidate(r->app->key_cache); /* stops working at once */
    ap_api_done(r, rc, &err, 200, out);
}
