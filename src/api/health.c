/*
 * health.c - liveness, readiness and Prometheus metrics.
 */
#include <stdlib.h>

#include "api/api.h"
#include "http/server.h"
#include "store/migrate.h"

void ap_h_healthz(ap_req_t *r) {
    ap_resp_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void ap_h_readyz(ap_req_t *r) {
    ap_err_t err = {0};
    if (ap_migrate_check(r->app->db, &err)) {
        err.rc = AP_ERR_UNAVAILABLE;
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_json(r, 200,
                 json_pack("{s:s,s:i,s:s}", "status", "ready", "schema_version",
                           ap_migrate_latest(), "store", ap_db_kind(r->app->db)));
}

void ap_h_metrics(ap_req_t *r) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_metrics_render(r->app->metrics, r->app->db, r->app->started_ms, &b);
    size_t len = b.len;
    ap_resp_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", ap_buf_steal(&b), len);
}
