/*
 * common.c - what every handler shares: finishing a call, id and time parameters,
 * and the read handlers' shape (list a page, get one).
 *
 * 1. A read's transaction is never committed: it ends with the request's
 *    arena, after the answer is rendered (the rows the answer quotes live
 *    there too).
 * 2. A cursor is checked before the transaction starts, so a malformed one
 *    costs no store connection; the lists keyed by something other than
 *    a UUID (versions, audit sequence numbers, skill names, catalog ids)
 *    check their own and call ap_api_list.
 */
#include "api/api.h"
#include "core/time.h"
#include "http/server.h"

void ap_api_done(ap_req_t *r, ap_rc rc, const ap_err_t *err, int status, json_t *out) {
    if (rc) {
        json_decref(out);
        ap_resp_problem(r, err);
        return;
    }
    ap_resp_json(r, status, out);
}

bool ap_api_id(ap_req_t *r, const char *param, const char **out) {
    const char *v = ap_req_param(r, param);
    if (v && ap_uuid_valid(v)) {
        *out = v;
        return true;
    }
    ap_err_t err;
    ap_err_set(&err, AP_ERR_NOT_FOUND, "not-found", "not found",
               "ids are UUIDs as returned by the API", "\"%.64s\" is not a valid %s",
               v ? v : "", param);
    ap_resp_problem(r, &err);
    return false;
}

void ap_api_bad_cursor(ap_req_t *r, const char *cursor) {
    ap_err_t err;
    ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid cursor",
               "pass next_cursor from the previous page unchanged, or leave cursor out",
               "cursor \"%.64s\" is not one this list returned", cursor);
    ap_resp_problem(r, &err);
}

bool ap_api_time(ap_req_t *r, const char *name, const char **out) {
    const char *v = ap_req_query(r, name);
    *out = NULL;
    if (!v || !*v) return true;
    int64_t ms;
    if (!ap_time_parse(v, &ms)) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid time",
                   "use RFC 3339, e.g. 2026-11-21T00:00:00Z", "%s is \"%.40s\"", name, v);
        ap_resp_problem(r, &err);
        return false;
    }
    char *t = ap_arena_alloc(r->arena, AP_TIME_LEN);
    ap_time_format(ms, t);
    *out = t;
    return true;
}

bool ap_api_page(ap_req_t *r, ap_api_page_t *pg) {
    if (ap_req_page(r, 50, 500, &pg->limit, &pg->cursor)) return false;
    if (pg->cursor && !ap_uuid_valid(pg->cursor)) {
        ap_api_bad_cursor(r, pg->cursor);
        return false;
    }
    return true;
}

void ap_api_list(ap_req_t *r, const ap_api_page_t *pg, ap_api_list_fn fn, void *ud) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *items = NULL;
    const char *next = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = fn(tx, r->tenant_id, pg, ud, &items, &next, &err);
    if (rc) {
        json_decref(items);
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_page(r, items, next);
}

/* ap_api_list_page's call: the service's list function is ud. */
typedef struct {
    ap_api_page_fn fn;
} page_call_t;

static ap_rc page_call(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *ud,
                       json_t **items, const char **next, ap_err_t *err) {
    const page_call_t *c = ud;
    return c->fn(tx, tenant_id, pg->cursor, pg->limit, items, next, err);
}

void ap_api_list_page(ap_req_t *r, ap_api_page_fn fn) {
    ap_api_page_t pg;
    if (!ap_api_page(r, &pg)) return;
    page_call_t c = {fn};
    ap_api_list(r, &pg, page_call, &c);
}

void ap_api_read(ap_req_t *r, ap_api_read_fn fn, void *ud) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = fn(tx, r->tenant_id, ud, &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}

/* ap_api_get_one's call: the service's get function and the id. */
typedef struct {
    ap_api_get_fn fn;
    const char *id;
} get_call_t;

static ap_rc get_call(ap_tx_t *tx, const char *tenant_id, void *ud, json_t **out, ap_err_t *err) {
    const get_call_t *c = ud;
    return c->fn(tx, tenant_id, c->id, out, err);
}

void ap_api_get_one(ap_req_t *r, const char *param, ap_api_get_fn fn) {
    get_call_t c = {fn, NULL};
    if (ap_api_id(r, param, &c.id)) ap_api_read(r, get_call, &c);
}
