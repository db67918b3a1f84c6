/*
 * metrics.c - Prometheus exposition of request counts, latency, pool state.
 *
 * 1. A latency observation increments exactly one slot: its bucket, or
 *    the overflow slot past the last bound.  The rendered cumulative
 *    buckets, +Inf and _count are all derived from one read of those
 *    slots, so a scrape racing with requests still shows a consistent
 *    histogram (+Inf = _count >= every bucket), which a separately kept
 *    count read at another moment would not guarantee.
 */
#include "http/metrics.h"

#include "core/version.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/time.h"

static const int statuses[] = {200, 201, 204, 304, 400, 401, 403, 404, 405,
                               409, 413, 415, 422, 429, 500, 503, 0};
#define NSTATUS (sizeof statuses / sizeof statuses[0]) /* last slot: other */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define NBUCKET (sizeof buckets / sizeof buckets[0])

typedef struct {
    _Atomic uint64_t by_status[NSTATUS];
    _Atomic uint64_t bucket[NBUCKET + 1]; /* the last slot: above every bound */
    _Atomic uint64_t sum_us;
} route_stats_t;

struct ap_metrics {
    const ap_route_t *routes;
    int nroutes;
    route_stats_t *stats; /* nroutes + 1; the last one is "unmatched" */
};

ap_metrics_t *ap_metrics_new(const ap_route_t *routes) {
    ap_metrics_t *m = ap_calloc(1, sizeof *m);
    m->routes = routes;
    while (routes[m->nroutes].method) m->nroutes++;
    m->stats = ap_calloc((size_t)m->nroutes + 1, sizeof(route_stats_t));
    return m;
}

void ap_metrics_free(ap_metrics_t *m) {
    if (!m) return;
    ap_free(m->stats);
    ap_free(m);
}

void ap_metrics_observe(ap_metrics_t *m, int route_index, int status, uint64_t duration_ns) {
    route_stats_t *s = &m->stats[route_index < 0 ? m->nroutes : route_index];
    size_t i = 0;
    while (statuses[i] && statuses[i] != status) i++;
    atomic_fetch_add_explicit(&s->by_status[i], 1, memory_order_relaxed);
    double secs = (double)duration_ns / 1e9;
    size_t b = 0;
    while (b < NBUCKET && secs > buckets[b]) b++;
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_ns / 1000, memory_order_relaxed);
}

static void route_label(const ap_metrics_t *m, int i, char *buf, size_t cap) {
    if (i == m->nroutes) {
        snprintf(buf, cap, "method=\"\",route=\"unmatched\"");
        return;
    }
    snprintf(buf, cap, "method=\"%s\",route=\"%s\"", m->routes[i].method, m->routes[i].pattern);
}

void ap_metrics_render(ap_metrics_t *m, ap_db_t *db, int64_t started_ms, ap_buf_t *out) {
    char lbl[256];
    ap_buf_puts(out, "# HELP agentprov_http_requests_total HTTP requests by route and status.\n"
                     "# TYPE agentprov_http_requests_total counter\n");
    for (int i = 0; i <= m->nroutes; i++) {
        route_label(m, i, lbl, sizeof lbl);
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&m->stats[i].by_status[s], memory_order_relaxed);
            if (!v) continue;
            if (statuses[s])
                ap_buf_printf(out, "agentprov_http_requests_total{%s,status=\"%d\"} %llu\n", lbl,
                              statuses[s], (unsigned long long)v);
            else
                ap_buf_printf(out, "agentprov_http_requests_total{%s,status=\"other\"} %llu\n",
                              lbl, (unsigned long long)v);
        }
    }
    ap_buf_puts(out,
                "# HELP agentprov_http_request_duration_seconds Time from request to response.\n"
                "# TYPE agentprov_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= m->nroutes; i++) {
        uint64_t slot[NBUCKET + 1], count = 0;
        for (size_t b = 0; b <= NBUCKET; b++) {
            slot[b] = atomic_load_explicit(&m->stats[i].bucket[b], memory_order_relaxed);
            count += slot[b];
        }
        if (!count) continue;
        route_label(m, i, lbl, sizeof lbl);
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKET; b++) {
            cum += slot[b];
            ap_buf_printf(out, "agentprov_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
                          lbl, buckets[b], (unsigned long long)cum);
        }
        ap_buf_printf(out, "agentprov_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
                      lbl, (unsigned long long)count);
        ap_buf_printf(out, "agentprov_http_request_duration_seconds_sum{%s} %.6f\n", lbl,
                      (double)atomic_load_explicit(&m->stats[i].sum_us, memory_order_relaxed) /
                          1e6);
        ap_buf_printf(out, "agentprov_http_request_duration_seconds_count{%s} %llu\n", lbl,
                      (unsigned long long)count);
    }
    ap_db_stats_t st;
    ap_db_stats(db, &st);
    ap_buf_printf(out,
                  "# HELP agentprov_store_pool_connections Connections in the store pool.\n"
                  "# TYPE agentprov_store_pool_connections gauge\n"
                  "agentprov_store_pool_connections{backend=\"%s\"} %d\n"
                  "# HELP agentprov_store_pool_in_use Store connections checked out now.\n"
                  "# TYPE agentprov_store_pool_in_use gauge\n"
                  "agentprov_store_pool_in_use{backend=\"%s\"} %d\n"
                  "# HELP agentprov_store_pool_waits_total Acquisitions that had to wait.\n"
                  "# TYPE agentprov_store_pool_waits_total counter\n"
                  "agentprov_store_pool_waits_total{backend=\"%s\"} %lld\n",
                  ap_db_kind(db), st.size, ap_db_kind(db), st.in_use, ap_db_kind(db),
                  (long long)st.waits);
    ap_buf_printf(out,
                  "# HELP agentprov_build_info Build information.\n"
                  "# TYPE agentprov_build_info gauge\n"
                  "agentprov_build_info{version=\"%s\"} 1\n"
                  "# HELP agentprov_start_time_seconds Start time since the epoch.\n"
                  "# TYPE agentprov_start_time_seconds gauge\n"
                  "agentprov_start_time_seconds %.3f\n",
                  ap_version, (double)started_ms / 1000.0);
}
