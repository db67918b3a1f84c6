/*
 * usage.c - the asynchronous usage writer.
 *
 * 1. A bounded queue (64k records); past that, records are written by the
 *    caller's thread rather than dropped: metering is never lost.
 * 2. The writer takes the whole queue at once and writes it tenant by
 *    tenant, each in one transaction opened for that tenant.
 * 3. The same transaction adds the batch to llm_usage_daily (tokens and
 *    priced cost per tenant and UTC day), so a budget check reads at most
 *    a month of daily rows instead of every call (llm/budget.c).
 */
#include "llm/usage.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "llm/budget.h"
#include "llm/cache.h"

typedef struct node {
    struct node *next;
    ap_usage_rec_t rec;
    char created_at[AP_TIME_LEN];
} node_t;

struct ap_usage_writer {
    ap_db_t *db;
    struct ap_llm_cache *cache; /* budget totals to invalidate after a write, or NULL */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, flushed;
    node_t *head, *tail;
    int queued;
    uint64_t enqueued, written;
    bool stop;
};

double ap_usage_cost(const ap_llm_usage_t *u, double in_per_mtok, double out_per_mtok) {
    return ((double)u->prompt * in_per_mtok + (double)u->completion * out_per_mtok) / 1e6;
}

#define MAX_DAYS 4

typedef struct {
    char day[11]; /* YYYY-MM-DD */
    int64_t calls, tokens;
    double cost; /* priced calls only */
} day_sum_t;

static ap_rc add_daily(ap_tx_t *tx, const char *tenant, const day_sum_t *d, ap_err_t *err) {
    ap_val_t v[] = {AP_VTEXT(tenant), AP_VTEXT(d->day), AP_VINT(d->calls), AP_VINT(d->tokens),
                    AP_VREAL(d->cost)};
    return ap_tx_query(tx,
                       "INSERT INTO llm_usage_daily (tenant_id, day, calls, tokens, cost_usd)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, day) DO UPDATE SET"
                       " calls = llm_usage_daily.calls + excluded.calls,"
                       " tokens = llm_usage_daily.tokens + excluded.tokens,"
                       " cost_usd = llm_usage_daily.cost_usd + excluded.cost_usd",
                       v, 5, NULL, err);
}

/* Adds one record to the batch's per-day sums (written when the slots are
 * full, which needs a batch spanning more than MAX_DAYS days). */
static ap_rc tally(ap_tx_t *tx, const char *tenant, day_sum_t *days, int *ndays, bool *spilled,
                   const char *created_at, const ap_usage_rec_t *r, ap_err_t *err) {
    int d = 0;
    while (d < *ndays && strncmp(days[d].day, created_at, 10) != 0) d++;
    if (d == MAX_DAYS) {
        *spilled = true;
        for (int k = 0; k < *ndays; k++) {
            ap_rc rc = add_daily(tx, tenant, &days[k], err);
            if (rc) return rc;
        }
        *ndays = d = 0;
    }
    if (d == *ndays) {
        memset(&days[d], 0, sizeof days[d]);
        memcpy(days[d].day, created_at, 10);
        (*ndays)++;
    }
    days[d].calls++;
    days[d].tokens += r->tokens.prompt + r->tokens.completion;
    if (r->priced) days[d].cost += r->cost_usd;
    return AP_OK;
}

static void write_batch(ap_db_t *db, struct ap_llm_cache *cache, node_t *list) {
    while (list) {
        /* one transaction per tenant: take this tenant's records out (a copy
         * of the id: the first record is freed in the loop) */
        char tenant[sizeof list->rec.tenant_id];
        memcpy(tenant, list->rec.tenant_id, sizeof tenant);
        ap_arena_t *a = ap_arena_new(8192);
        ap_err_t err = {0};
        ap_tx_t *tx;
        ap_rc rc = ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err);
        node_t *rest = NULL, **rtail = &rest;
        int n = 0;
        day_sum_t days[MAX_DAYS];
        int ndays = 0;
        bool spilled = false; /* day sums written before the end of the batch */
        for (node_t *p = list, *next; p; p = next) {
            next = p->next;
            if (strcmp(p->rec.tenant_id, tenant) != 0) {
                *rtail = p;
                rtail = &p->next;
                p->next = NULL;
                continue;
            }
            const ap_usage_rec_t *r = &p->rec;
            char id[AP_UUID_LEN];
            ap_uuid7(id);
            ap_val_t v[] = {AP_VTEXT(id),
                            AP_VTEXT(r->tenant_id),
                            AP_VTEXT(r->key_id[0] ? r->key_id : NULL),
                            AP_VTEXT(r->agent_id[0] ? r->agent_id : NULL),
                            AP_VTEXT(r->task_id[0] ? r->task_id : NULL),
                            AP_VTEXT(r->provider),
                            AP_VTEXT(r->model),
                            AP_VINT(r->tokens.prompt),
                            AP_VINT(r->tokens.completion),
                            AP_VINT(r->tokens.cached),
                            r->priced ? AP_VREAL(r->cost_usd) : AP_VNULL,
                            AP_VINT(r->priced ? 1 : 0),
                            AP_VREAL(r->latency_ms),
                            r->ttft_ms >= 0 ? AP_VREAL(r->ttft_ms) : AP_VNULL,
                            AP_VINT(r->stream ? 1 : 0),
                            AP_VTEXT(r->outcome),
                            AP_VTEXT(r->error_kind[0] ? r->error_kind : NULL),
                            AP_VTEXT(r->route[0] ? r->route : NULL),
                            AP_VTEXT(r->request_id[0] ? r->request_id : NULL),
                            AP_VTEXT(p->created_at)};
            if (!rc)
                rc = ap_tx_query(tx,
                                 "INSERT INTO llm_usage (id, tenant_id, key_id, agent_id, task_id,"
                                 " provider, model, prompt_tokens, completion_tokens,"
                                 " cached_tokens, cost_usd, priced, latency_ms, ttft_ms, stream,"
                                 " outcome, error_kind, route, request_id, created_at)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                                 " ?, ?)",
                                 v, 20, NULL, &err);
            n++;
            if (!rc) rc = tally(tx, tenant, days, &ndays, &spilled, p->created_at, r, &err);
            ap_free(p);
        }
        for (int d = 0; d < ndays && !rc; d++) rc = add_daily(tx, tenant, &days[d], &err);
        if (!rc) rc = ap_tx_commit(tx, &err);
        /* cached budget totals take the spending in (or are dropped) */
        if (rc || spilled) ap_llm_cache_invalidate(cache, tenant, AP_LLM_CACHE_BUDGET);
        else
            for (int d = 0; d < ndays; d++)
                ap_budget_cache_add(cache, tenant, days[d].day, days[d].tokens, days[d].cost);
        if (rc)
            ap_log(AP_LOG_ERROR, "usage not recorded", "{s:s,s:i,s:s}", "tenant_id", tenant, "records", n,
                   "detail", err.detail);
        ap_arena_free(a);
        list = rest;
    }
}

static void *writer(void *arg) {
    ap_usage_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && w->stop) break;
        node_t *list = w->head;
        uint64_t upto = w->enqueued;
        w->head = w->tail = NULL;
        w->queued = 0;
        struct ap_llm_cache *cache = w->cache;
        pthread_mutex_unlock(&w->mu);
        write_batch(w->db, cache, list);
        pthread_mutex_lock(&w->mu);
        w->written = upto;
        pthread_cond_broadcast(&w->flushed);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

ap_rc ap_usage_writer_new(ap_db_t *db, ap_usage_writer_t **out, ap_err_t *err) {
    ap_usage_writer_t *w = ap_calloc(1, sizeof *w);
    w->db = db;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->flushed, NULL);
    if (pthread_create(&w->thread, NULL, writer, w) != 0) {
        ap_free(w);
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot start the usage writer", NULL, NULL);
    }
    *out = w;
    return AP_OK;
}

void ap_usage_record(ap_usage_writer_t *w, const ap_usage_rec_t *rec) {
    node_t *n = ap_malloc(sizeof *n);
    n->next = NULL;
    n->rec = *rec;
    ap_time_format(ap_now_ms(), n->created_at);
    pthread_mutex_lock(&w->mu);
    if (w->queued >= 65536) { /* back-pressure: write it here */
        struct ap_llm_cache *cache = w->cache;
        pthread_mutex_unlock(&w->mu);
        write_batch(w->db, cache, n);
        return;
    }
    if (w->tail) w->tail->next = n;
    else w->head = n;
    w->tail = n;
    w->queued++;
    w->enqueued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ap_usage_flush(ap_usage_writer_t *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->enqueued;
    while (w->written < target) pthread_cond_wait(&w->flushed, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void ap_usage_writer_free(ap_usage_writer_t *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->flushed);
    ap_free(w);
}

void ap_usage_writer_set_cache(ap_usage_writer_t *w, struct ap_llm_cache *cache) {
    pthread_mutex_lock(&w->mu);
    w->cache = cache;
    pthread_mutex_unlock(&w->mu);
}
