/*
 * idempotency.c - reserve, replay, and record POST responses by key.
 */
#include "http/idempotency.h"

#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/time.h"
#include "http/server.h"

static void request_hash(ap_req_t *r, char out[AP_SHA256_HEX]) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_buf_printf(&b, "%s %s\n", r->method, r->path);
    ap_buf_append(&b, r->body.p ? r->body.p : "", r->body.len);
    ap_sha256_hex(b.p, b.len, out);
    ap_buf_free(&b);
}

bool ap_idem_begin(ap_req_t *r, const char *key, bool *reserved) {
    ap_err_t err = {0};
    *reserved = false;
    if (strlen(key) == 0 || strlen(key) > 255) {
        ap_err_set(&err, AP_ERR_INVALID, "invalid-header", "invalid Idempotency-Key",
                   "use 1 to 255 characters, e.g. a UUID", "Idempotency-Key is %zu characters",
                   strlen(key));
        ap_resp_problem(r, &err);
        return true;
    }
    char hash[AP_SHA256_HEX];
    request_hash(r, hash);
    const char *tenant = r->principal->tenant_id;
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(r->principal->key_id), AP_VTEXT(key)};
    ap_rc rc = ap_db_begin(r->app->db, tenant, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT request_hash, status, response FROM idempotency_keys"
                         " WHERE tenant_id = ? AND actor_id = ? AND idem_key = ?",
                         p, 3, &rows, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return true;
    }
    if (rows.nrows) {
        ap_tx_rollback(tx);
        const char *h = ap_rows_get(&rows, 0, "request_hash");
        const char *status = ap_rows_get(&rows, 0, "status");
        if (strcmp(h, hash) != 0) {
            ap_err_set(&err, AP_ERR_INVALID, "idempotency-key-reused",
                       "idempotency key already used for a different request",
                       "use a new Idempotency-Key for a new request",
                       "key \"%.64s\" was first used with another method, path or body", key);
            ap_resp_problem(r, &err);
            return true;
        }
        if (!status) {
            ap_err_set(&err, AP_ERR_CONFLICT, "idempotency-in-progress",
                       "a request with this idempotency key is still in progress",
                       "retry after the first request completes", NULL);
            ap_resp_problem(r, &err);
            return true;
        }
        const char *body = ap_rows_get(&rows, 0, "response");
        int st = atoi(status);
        ap_resp_header(r, "Idempotent-Replayed", "true");
        char *copy = strdup(body ? body : "");
        ap_resp_raw(r, st, st >= 400 ? "application/problem+json" : "application/json", copy,
                    strlen(copy));
        return true;
    }
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t ins[] = {AP_VTEXT(tenant), AP_VTEXT(r->principal->key_id), AP_VTEXT(key),
                      AP_VTEXT(hash), AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO idempotency_keys (tenant_id, actor_id, idem_key, request_hash,"
                     " created_at) VALUES (?, ?, ?, ?, ?)",
                     ins, 5, NULL, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (rc == AP_ERR_CONFLICT) {
        ap_err_set(&err, AP_ERR_CONFLICT, "idempotency-in-progress",
                   "a request with this idempotency key is still in progress",
                   "retry after the first request completes", NULL);
    }
    if (rc) {
        ap_resp_problem(r, &err);
        return true;
    }
    *reserved = true;
    return false;
}

void ap_idem_finish(ap_req_t *r, const char *key) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    const char *tenant = r->principal->tenant_id;
    ap_rc rc = ap_db_begin(r->app->db, tenant, AP_TX_WRITE, r->arena, &tx, &err);
    if (rc) goto fail;
    if (r->status >= 500) {
        ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(r->principal->key_id), AP_VTEXT(key)};
        rc = ap_tx_query(tx,
                         "DELETE FROM idempotency_keys WHERE tenant_id = ? AND actor_id = ?"
                         " AND idem_key = ?",
                         p, 3, NULL, &err);
    } else {
        const char *body = r->replay_body ? r->replay_body
                                          : ap_arena_strndup(r->arena,
                                                             r->resp_body ? r->resp_body : "",
                                                             r->resp_len);
        ap_val_t p[] = {AP_VINT(r->status), AP_VTEXT(body), AP_VTEXT(tenant),
                        AP_VTEXT(r->principal->key_id), AP_VTEXT(key)};
        rc = ap_tx_query(tx,
                         "UPDATE idempotency_keys SET status = ?, response = ?"
                         " WHERE tenant_id = ? AND actor_id = ? AND idem_key = ?",
                         p, 5, NULL, &err);
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc) return;
fail:
    ap_log(AP_LOG_ERROR, "idempotency record failed", "{s:s,s:s}", "request_id", r->request_id,
           "detail", err.detail);
}

ap_rc ap_idem_expire(ap_db_t *db, int64_t older_than_ms, int64_t *removed, ap_err_t *err) {
    char cutoff[AP_TIME_LEN];
    ap_time_format(ap_now_ms() - older_than_ms, cutoff);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(cutoff)};
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_tx_query(tx, "DELETE FROM idempotency_keys WHERE created_at < ?", p, 1, &rows, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    if (!rc && removed) *removed = rows.changes;
    ap_arena_free(a);
    return rc;
}
