/*
 * server.h - the HTTP server (libmicrohttpd on event-loop workers, each
 * with its own upstream loop) and the request pipeline every route goes
 * through.
 *
 * 1. Pipeline: request id → normalise path → route → body limit →
 *    authenticate → resolve tenant → tenant status → authorise →
 *    idempotency → handler → log line + metrics.  Denials by an
 *    authenticated caller are audited in the caller's tenant chain.
 * 2. Keep-alive: the first access-handler call only accepts the request;
 *    the response is queued on a later call, which keeps libmicrohttpd
 *    from closing the connection.
 * 3. Shutdown: quiesce (stop accepting), wait for in-flight requests up to
 *    a bound, end the model calls still running on the workers (their
 *    clients get an error answer), then stop.
 * 4. Workers: `threads` of them, each a thread running one event loop
 *    with its own libmicrohttpd daemon and its own upstream
 *    (llm/upstream.h), which a request reaches as r->upstream: model
 *    calls started there run on the worker's thread from start to answer.
 *    The workers accept from one listening socket, each when it waits in
 *    epoll, the one with fewer connections first (server.c, decision 2).
 */
#ifndef AP_HTTP_SERVER_H
#define AP_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/metrics.h"
#include "http/router.h"
#include "store/db.h"

struct ap_upstream;
struct ap_usage_writer;
struct ap_breaker;
struct ap_orch_runner;
struct ap_bus;
struct ap_sse_hub;
struct ap_llm_cache;
struct ap_mem;
struct ap_key_cache;

struct ap_app {
    ap_db_t *db;
    struct ap_upstream *upstream;    /* model calls (llm/upstream.h) */
    struct ap_usage_writer *usage;   /* metering (llm/usage.h) */
    struct ap_breaker *breaker;      /* per-model circuit breakers (llm/breaker.h) */
    struct ap_orch_runner *runner;   /* task runner (orch/runner.h), or NULL */
    struct ap_bus *bus;              /* event announcements (events/event.h), or NULL */
    struct ap_sse_hub *sse;          /* event streams (api/sse.h), or NULL */
    struct ap_llm_cache *llm_cache;  /* routes and budget totals (llm/cache.h), or NULL */
    struct ap_mem *memory;           /* agent memory service (memory/memory.h) */
    struct ap_key_cache *key_cache;  /* verified API keys (identity/keycache.h), or NULL */
    const ap_route_t *routes;
    ap_metrics_t *metrics;
    int64_t started_ms;
    size_t max_body;
    const uint8_t *master_key; /* 32 bytes wrapping tenant secrets (core/secret.h), or NULL */
};

typedef struct {
    const char *host; /* numeric IPv4 address */
    int port;         /* 0 picks a free port */
    int threads;      /* workers; 0: 2 */
} ap_server_opts_t;

typedef struct ap_server ap_server_t;

ap_rc ap_server_start(struct ap_app *app, const ap_server_opts_t *opts, ap_server_t **out,
                      ap_err_t *err);
int ap_server_port(ap_server_t *s);
void ap_server_quiesce(ap_server_t *s);
/* Waits until no request is in flight or timeout_ms passes; true if drained. */
bool ap_server_drain(ap_server_t *s, int timeout_ms);
/* Model calls running on the workers' upstreams end with "shutting down"
 * (ap_upstream_shutdown); returns when they have.  Later ones end so too. */
void ap_server_end_calls(ap_server_t *s);
void ap_server_stop(ap_server_t *s); /* accepts NULL */

#endif
