/*
 * audit.c - reading and verifying a tenant's audit chain over HTTP.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/server.h"

/* A text filter must be UTF-8: otherwise SQLite would match nothing and
 * PostgreSQL refuse the bytes; both backends answer 400 this way. */
static bool text_param(ap_req_t *r, const char *name, const char **out) {
    const char *v = ap_req_query(r, name);
    *out = v;
    json_t *j = v ? json_string(v) : NULL;
    if (!v || j) {
        json_decref(j);
        return true;
    }
    ap_err_t err;
    ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid value", "pass UTF-8 text",
               "%s is not valid UTF-8", name);
    ap_resp_problem(r, &err);
    return false;
}

static ap_rc audit_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *f,
                        json_t **items, const char **next, ap_err_t *err) {
    (void)pg; /* in the filter */
    int64_t seq = 0;
    ap_rc rc = ap_audit_list(tx, tenant_id, f, items, &seq, err);
    if (!rc && seq) *next = ap_arena_printf(ap_tx_arena(tx), "%lld", (long long)seq);
    return rc;
}

/* The cursor is the sequence number of the previous page's last entry. */
void ap_h_audit_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (ap_req_page(r, 100, 500, &pg.limit, &pg.cursor)) return;
    ap_audit_filter_t f = {.limit = pg.limit};
    if (!ap_api_time(r, "since", &f.since) || !ap_api_time(r, "until", &f.until)) return;
    if (pg.cursor) {
        /* a sequence number: digits only (strtoll alone takes " +5" and
         * clamps what overflows) */
        size_t n = strspn(pg.cursor, "0123456789");
        if (n == 0 || n > 18 || pg.cursor[n]) {
            ap_api_bad_cursor(r, pg.cursor);
            return;
        }
        f.after_seq = strtoll(pg.cursor, NULL, 10);
    }
    if (!text_param(r, "actor", &f.actor_id) || !text_param(r, "action", &f.action) ||
        !text_param(r, "resource_type", &f.resource_type) ||
        !text_param(r, "resource_id", &f.resource_id))
        return;
    ap_api_list(r, &pg, audit_list, &f);
}

void ap_h_audit_verify(ap_req_t *r) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_audit_verify_t v = {0};
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_audit_verify(tx, r->tenant_id, &v, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    json_t *o = json_pack("{s:b,s:I,s:o}", "ok", v.ok, "entries_checked",
                          (json_int_t)v.entries_checked, "first_bad_sequence",
                          v.ok ? json_null() : json_integer(v.first_bad_sequence));
    if (!v.ok) json_object_set_new(o, "reason", json_string(v.reason));
    ap_resp_json(r, 200, o);
}
