/*
 * metrics.h - request counters and latency histograms in Prometheus text.
 *
 * 1. Counters are per route (index into the route table, plus one slot for
 *    unmatched paths) and per status code from a fixed list; lock-free
 *    atomics, so recording costs a few nanoseconds on the request path.
 * 2. The exposition is built on demand by ap_metrics_render.
 */
#ifndef AP_HTTP_METRICS_H
#define AP_HTTP_METRICS_H

#include <stdint.h>

#include "core/buf.h"
#include "http/router.h"
#include "store/db.h"

typedef struct ap_metrics ap_metrics_t;

ap_metrics_t *ap_metrics_new(const ap_route_t *routes);
void ap_metrics_free(ap_metrics_t *m);
/* route_index -1 for unmatched requests. */
void ap_metrics_observe(ap_metrics_t *m, int route_index, int status, uint64_t duration_ns);
void ap_metrics_render(ap_metrics_t *m, ap_db_t *db, int64_t started_ms, ap_buf_t *out);

#endif
