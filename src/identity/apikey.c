/*
 * apikey.c - issuing and checking API keys.
 *
 * 1. Lookup by the stored lookup id (unique index), then a constant-time
 *    comparison of SHA-256 of the presented key with the stored hash.
 * 2. A user key takes the user's role unless a lesser role is asked for;
 *    nobody grants a role they could not act as (policy.c).
 * 3. A disabled user's keys stop working: authentication joins users.
 */
#include "identity/apikey.h"

#include <string.h>

#include "core/crypto.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"

#define LOOKUP_BYTES 12 /* 16 base64url chars */
#define SECRET_BYTES 32 /* 256 bits: 43 base64url chars */

void ap_apikey_generate(char *key, char *lookup, char *hash) {
    uint8_t l[LOOKUP_BYTES], s[SECRET_BYTES];
    ap_random(l, sizeof l);
    ap_random(s, sizeof s);
    char lb[32], sb[64];
    ap_b64url(l, sizeof l, lb);
    ap_b64url(s, sizeof s, sb);
    snprintf(key, 80, AP_KEY_PREFIX "%.16s_%.43s", lb, sb);
    memcpy(lookup, lb, 17);
    ap_sha256_hex(key, strlen(key), hash);
}

/* "apk_" + 16 + "_" + 43 */
static bool parse_key(const char *token, char lookup[17]) {
    size_t n = strlen(token);
    if (n != 4 + 16 + 1 + 43 || strncmp(token, AP_KEY_PREFIX, 4) != 0 || token[20] != '_')
        return false;
    for (size_t i = 4; i < n; i++) {
        char c = token[i];
        if (i == 20) continue;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    memcpy(lookup, token + 4, 16);
    lookup[16] = '\0';
    return true;
}

static ap_rc unauth(ap_err_t *err, const char *detail) {
    return ap_err_set(err, AP_ERR_UNAUTH, "unauthenticated", "invalid API key",
                      "send a valid, unexpired, unrevoked key as Authorization: Bearer <key>",
                      "%s", detail);
}

ap_rc ap_apikey_authenticate(ap_db_t *db, ap_arena_t *a, const char *token, ap_principal_t *out,
                             ap_err_t *err) {
    char lookup[17];
    if (!parse_key(token, lookup))
        return unauth(err, "the key is malformed; keys look like apk_<16 chars>_<43 chars>");
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(lookup)};
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, a, &tx, err);
    if (rc) return rc;
    rc = ap_tx_query(tx,
                     "SELECT k.id, k.tenant_id, k.user_id, k.name, k.role, k.key_hash,"
                     " k.expires_at, k.revoked_at, k.last_used_at, t.status AS tenant_status,"
                     " u.status AS user_status"
                     " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                     " LEFT JOIN users u ON u.id = k.user_id WHERE k.prefix = ?",
                     p, 1, &rows, err);
    ap_tx_rollback(tx);
    if (rc) return rc;
    char hash[AP_SHA256_HEX];
    ap_sha256_hex(token, strlen(token), hash);
    if (rows.nrows == 0) return unauth(err, "no such key");
    const char *stored = ap_rows_get(&rows, 0, "key_hash");
    if (strlen(stored) != 64 || !ap_ct_eq(stored, hash, 64)) return unauth(err, "no such key");
    if (ap_rows_get(&rows, 0, "revoked_at")) return unauth(err, "the key was revoked");
    int64_t now = ap_now_ms();
    const char *exp = ap_rows_get(&rows, 0, "expires_at");
    int64_t exp_ms;
    /* An expiry that does not parse fails closed: a damaged row locks the
     * key out rather than making it immortal. */
    if (exp && (!ap_time_parse(exp, &exp_ms) || exp_ms <= now))
        return unauth(err, "the key has expired");
    out->expires_ms = exp ? exp_ms : INT64_MAX;
    const char *ustatus = ap_rows_get(&rows, 0, "user_status");
    if (ap_rows_get(&rows, 0, "user_id") && (!ustatus || strcmp(ustatus, "active") != 0))
        return unauth(err, "the key's user is disabled");
    out->key_id = ap_rows_get(&rows, 0, "id");
    out->tenant_id = ap_rows_get(&rows, 0, "tenant_id");
    out->user_id = ap_rows_get(&rows, 0, "user_id");
    out->name = ap_rows_get(&rows, 0, "name");
    out->role = ap_role_parse(ap_rows_get(&rows, 0, "role"));
    out->tenant_status = ap_rows_get(&rows, 0, "tenant_status");
    if (out->role == AP_ROLE_NONE) return unauth(err, "the key has no valid role");
    /* last_used_at, at most once a minute */
    const char *last = ap_rows_get(&rows, 0, "last_used_at");
    int64_t last_ms = 0;
    if (!last || !ap_time_parse(last, &last_ms) || now - last_ms > 60000) {
        char ts[AP_TIME_LEN];
        ap_time_format(now, ts);
        ap_val_t u[] = {AP_VTEXT(ts), AP_VTEXT(out->key_id)};
        ap_err_t e2 = {0};
        rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &e2);
        if (!rc) rc = ap_tx_query(tx, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", u, 2,
                                  NULL, &e2);
        if (!rc) rc = ap_tx_commit(tx, &e2);
        if (rc) ap_log(AP_LOG_WARN, "last_used_at not recorded", "{s:s}", "detail", e2.detail);
    }
    return AP_OK;
}

#define KEY_COLS                                                                            \
    "id, tenant_id, user_id, name, role, prefix, created_at, created_by, expires_at,"      \
    " revoked_at, last_used_at"

static json_t *row_json(const ap_rows_t *r, int i) {
    return ap_rows_json(r, i, NULL);
}

ap_rc ap_apikey_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                       ap_role granter, const ap_apikey_spec_t *spec, json_t **key_json,
                       ap_err_t *err) {
    ap_role role = AP_ROLE_NONE;
    if (spec->role) role = ap_role_parse(spec->role);
    if (spec->user_id) {
        ap_rows_t u;
        ap_val_t p[] = {AP_VTEXT(spec->user_id), AP_VTEXT(tenant_id)};
        ap_rc rc = ap_tx_query(tx, "SELECT role, status FROM users WHERE id = ? AND tenant_id = ?",
                               p, 2, &u, err);
        if (rc) return rc;
        if (u.nrows == 0)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "user not found",
                              "give the id of a user of this tenant, or omit user_id for a "
                              "service key",
                              "user_id \"%s\" is not a user of this tenant", spec->user_id);
        if (strcmp(ap_rows_get(&u, 0, "status"), "active") != 0)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "user is disabled",
                              "enable the user first", "user_id \"%s\"", spec->user_id);
        ap_role urole = ap_role_parse(ap_rows_get(&u, 0, "role"));
        if (role == AP_ROLE_NONE) role = urole;
        else if (role != urole && role != AP_ROLE_VIEWER)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field",
                              "key role exceeds the user's role",
                              "omit role to use the user's own role, or ask for viewer",
                              "user has role %s; asked for %s", ap_role_name(urole),
                              spec->role);
    }
    if (role == AP_ROLE_NONE)
        return ap_err_set(err, AP_ERR_INVALID, "missing-field", "missing role",
                          "give a role for a service key", "field \"role\" is required when "
                          "user_id is not given");
    bool platform_tenant = strcmp(tenant_id, AP_NIL_UUID) == 0;
    if ((role == AP_ROLE_PLATFORM_ADMIN) != platform_tenant)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "role not allowed in this tenant",
                          platform_tenant ? "platform keys have role platform_admin"
                                          : "platform_admin keys belong to the platform",
                          "role %s", ap_role_name(role));
    if (!ap_policy_may_grant(granter, role))
        return ap_err_set(err, AP_ERR_DENIED, "forbidden", "cannot grant this role",
                          "ask a platform administrator", "role %s cannot grant role %s",
                          ap_role_name(granter), ap_role_name(role));
    int64_t exp_ms;
    if (spec->expires_at && !ap_time_parse(spec->expires_at, &exp_ms))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid expires_at",
                          "use RFC 3339, e.g. 2027-01-01T00:00:00Z", "expires_at \"%.40s\"",
                          spec->expires_at);
    char exp[AP_TIME_LEN];
    if (spec->expires_at) ap_time_format(exp_ms, exp);
    char key[80], lookup[17], hash[AP_SHA256_HEX], id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_apikey_generate(key, lookup, hash);
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(id),           AP_VTEXT(tenant_id),    AP_VTEXT(spec->user_id),
                    AP_VTEXT(spec->name),   AP_VTEXT(ap_role_name(role)), AP_VTEXT(lookup),
                    AP_VTEXT(hash),         AP_VTEXT(now),          AP_VTEXT(actor->id),
                    AP_VTEXT(spec->expires_at ? exp : NULL)};
    ap_rows_t rows;
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO api_keys (id, tenant_id, user_id, name, role, prefix,"
                           " key_hash, created_at, created_by, expires_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING " KEY_COLS,
                           p, 10, &rows, err);
    if (rc) return rc;
    json_t *o = row_json(&rows, 0);
    json_t *changes = json_pack("{s:s,s:s,s:s?,s:s?}", "name", spec->name, "role",
                                ap_role_name(role), "user_id", spec->user_id, "expires_at",
                                spec->expires_at ? exp : NULL);
    ap_audit_event_t ev = {"api_key.create", "api_key", id, "success", changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) {
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "key", json_string(key));
    *key_json = o;
    return AP_OK;
}

ap_rc ap_apikey_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                     json_t **out, const char **next, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ? AND id > ?"
                           " ORDER BY id LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, row_json, "id", next);
    return AP_OK;
}

ap_rc ap_apikey_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                    ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ? AND id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "API key not found",
                          "check the key id", "no key with id \"%s\" in this tenant", id);
    *out = row_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_apikey_revoke(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                       const char *id, json_t **out, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(now), AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx,
                           "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)"
                           " WHERE tenant_id = ? AND id = ? RETURNING " KEY_COLS,
                           p, 3, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "API key not found",
                          "check the key id", "no key with id \"%s\" in this tenant", id);
    ap_audit_event_t ev = {"api_key.revoke", "api_key", id, "success", NULL};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    if (rc) return rc;
    *out = row_json(&rows, 0);
    return AP_OK;
}
