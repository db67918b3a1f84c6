/*
 * usage.h - metering of model calls.
 *
 * 1. The gateway records a row per call without waiting on the database:
 *    records go on a queue that one writer thread drains in batches, one
 *    transaction per tenant per batch.  Nothing slow runs on an upstream loop.
 *    A batch waits up to AP_USAGE_LINGER_MS (default 5; 0: no wait) after
 *    its first record, or until 256 records, so that under load many calls
 *    share one commit; ap_usage_flush cuts the wait short.
 * 2. cost is computed from the catalog's list prices at the time of the
 *    call; a model without a price gives priced = false and cost NULL.
 * 3. Flushed on shutdown; ap_usage_flush waits until what was queued
 *    before the call is written (tests, budgets).
 */
#ifndef AP_LLM_USAGE_H
#define AP_LLM_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "llm/types.h"
#include "store/db.h"

typedef struct ap_usage_writer ap_usage_writer_t;

typedef struct {
    char tenant_id[37];
    char key_id[37];
    char agent_id[37]; /* "" when none */
    char task_id[37];  /* "" when none */
    char provider[64];
    char model[160];
    ap_llm_usage_t tokens;
    bool priced;
    double cost_usd;
    double latency_ms;
    double ttft_ms; /* < 0 when not streamed */
    bool stream;
    char outcome[16];   /* "success" | "error" */
    char error_kind[32];
    char route[512];    /* how the router chose, and failed attempts */
    char request_id[37];
} ap_usage_rec_t;

ap_rc ap_usage_writer_new(ap_db_t *db, ap_usage_writer_t **out, ap_err_t *err);
void ap_usage_writer_free(ap_usage_writer_t *w); /* flushes */
void ap_usage_record(ap_usage_writer_t *w, const ap_usage_rec_t *rec); /* copies; thread-safe */
void ap_usage_flush(ap_usage_writer_t *w);

struct ap_llm_cache;
/* After each tenant's records are written, that tenant's cached budget
 * totals are dropped (llm/cache.h).  Set before traffic starts. */
void ap_usage_writer_set_cache(ap_usage_writer_t *w, struct ap_llm_cache *cache);

/* Cost of a call at list prices (USD per million tokens); cached prompt
 * tokens are billed as prompt tokens (no cache discount is assumed). */
double ap_usage_cost(const ap_llm_usage_t *u, double in_per_mtok, double out_per_mtok);

#endif
