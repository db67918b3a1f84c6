/*
 * runner.c - the runner pool: scheduler index, worker threads, lease
 * heartbeats and the scan of the durable queue.
 *
 * 1. One mutex guards the scheduler and the table of tasks in flight;
 *    workers wait on a condition variable signalled by wake() and by the
 *    scan.
 * 2. The scan runs on the heartbeat thread: every scan_ms it reads
 *    runnable tasks of every tenant (platform-scope read: on PostgreSQL
 *    app.platform lets it see all tenants) and every lease_ms / 3 it
 *    renews the leases of the tasks in flight.
 * 3. Each tenant's share comes from its entitlements: max_concurrent_tasks
 *    bounds its tasks in flight (waiting on a model call included) and
 *    its runners (with the platform quota as ceiling), task_weight its
 *    stride;
 *    read when the runner first hears of the tenant (wake) and refreshed
 *    by every scan for the tenants with runnable tasks, so a change of a
 *    tenant's plan applies within scan_ms.
 */
#include "orch/runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "llm/call.h"
#include "orch/scheduler.h"

typedef struct {
    char tenant[37], task[37];
    bool busy;
} slot_t;

struct ap_orch_runner {
    ap_orch_runner_opts_t o;
    char node[AP_UUID_LEN];
    pthread_mutex_t mu;
    pthread_cond_t cv, hb_cv;
    ap_sched_t *sched;
    int quota; /* the platform's per-tenant quota: default and ceiling */
    volatile int stop;
    pthread_t *threads, hb;
    slot_t *slots;
    int64_t steps, finished;
    /* model calls in flight (registered, not done) and done ones waiting
     * for a worker (FIFO) */
    ap_orch_await_t *outstanding, *ready, *ready_tail;
};

static void await_register(void *ud, ap_orch_await_t *w) {
    ap_orch_runner_t *r = ud;
    pthread_mutex_lock(&r->mu);
    w->next = r->outstanding;
    r->outstanding = w;
    pthread_mutex_unlock(&r->mu);
}

/* A call came back (any thread; never blocks beyond the runner lock). */
static void await_done(void *ud, ap_orch_await_t *w) {
    ap_orch_runner_t *r = ud;
    pthread_mutex_lock(&r->mu);
    for (ap_orch_await_t **pp = &r->outstanding; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    w->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = w;
    else
        r->ready = w;
    r->ready_tail = w;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Caller holds r->mu.  ent: the tenant's max_concurrent_tasks (0: the
 * platform quota). */
static void set_share(ap_orch_runner_t *r, const char *tenant_id, long long ent,
                      long long weight) {
    int q = ent > 0 && ent < r->quota ? (int)ent : r->quota;
    ap_sched_set_share(r->sched, tenant_id, q, ent > 0 ? (int)ent : 0,
                       weight > 0 ? (double)weight : 1.0);
}

/* Reads a tenant's share the first time the runner hears of it. */
static void load_share(ap_orch_runner_t *r, const char *tenant_id) {
    pthread_mutex_lock(&r->mu);
    bool known = ap_sched_has_share(r->sched, tenant_id);
    pthread_mutex_unlock(&r->mu);
    if (known) return;
    ap_arena_t *a = ap_arena_new(2048);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id)};
    if (!ap_db_begin(r->o.db, tenant_id, AP_TX_READ, a, &tx, &err) &&
        !ap_tx_query(tx, "SELECT max_concurrent_tasks, task_weight FROM tenants WHERE id = ?", p,
                     1, &rows, &err) &&
        rows.nrows) {
        pthread_mutex_lock(&r->mu);
        set_share(r, tenant_id, ap_rows_int(&rows, 0, "max_concurrent_tasks", 0),
                  ap_rows_int(&rows, 0, "task_weight", 1));
        pthread_mutex_unlock(&r->mu);
    }
    ap_arena_free(a);
}

void ap_orch_runner_wake(ap_orch_runner_t *r, const char *tenant_id, const ap_orch_wake_t *w) {
    if (!r || !w || !w->n) return;
    load_share(r, tenant_id);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < w->n; i++) ap_sched_push(r->sched, tenant_id, w->t[i].id, w->t[i].rank);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void ap_orch_runner_stats(ap_orch_runner_t *r, int64_t *steps, int64_t *finished) {
    pthread_mutex_lock(&r->mu);
    *steps = r->steps;
    *finished = r->finished;
    pthread_mutex_unlock(&r->mu);
}

typedef struct {
    ap_orch_runner_t *r;
    int idx;
} worker_arg_t;

static void *worker_main(void *arg) {
    worker_arg_t *wa = arg;
    ap_orch_runner_t *r = wa->r;
    slot_t *slot = &r->slots[wa->idx];
    ap_free(wa);
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        char tenant[37], task[37];
        ap_orch_await_t *w = r->ready;
        if (w) {
            r->ready = w->next;
            if (!r->ready) r->ready_tail = NULL;
            snprintf(tenant, sizeof tenant, "%.36s", w->tenant);
            snprintf(task, sizeof task, "%.36s", w->task);
        } else if (!ap_sched_pop(r->sched, tenant, task)) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        if (w) ap_sched_await(r->sched, tenant, false);
        memcpy(slot->tenant, tenant, sizeof tenant);
        memcpy(slot->task, task, sizeof task);
        slot->busy = true;
        pthread_mutex_unlock(&r->mu);
        ap_orch_wake_t wake = {0};
        ap_orch_loop_env_t env = {.model_start = r->o.model_start,
                                  .model_start_ud = r->o.model_start_ud,
                                  .await_register = await_register, .await_done = await_done,
                                  .await_ud = r,
                                  .db = r->o.db, .bus = r->o.bus, .node = r->node,
                                  .lease_ms = r->o.lease_ms, .step_delay_ms = r->o.step_delay_ms,
                                  .model = r->o.model, .model_ud = r->o.model_ud,
                                  .default_model = r->o.default_model,
                                  .batch_steps = r->o.step_delay_ms > 0 ? 0 : 16,
                                  .stop = &r->stop, .ext = r->o.ext};
        ap_orch_run_result res = w ? ap_orch_loop_continue(&env, w, &wake)
                                   : ap_orch_loop_run(&env, tenant, task, &wake);
        pthread_mutex_lock(&r->mu);
        slot->busy = false;
        /* a task waiting for its model call holds no runner but stays in
         * flight (its tenant's max_concurrent_tasks) */
        if (res == AP_ORCH_RUN_AWAIT)
            ap_sched_await(r->sched, tenant, true);
        else
            ap_sched_done(r->sched, tenant);
        r->steps += env.steps;
        if (res == AP_ORCH_RUN_PARKED) r->finished++;
        for (int i = 0; i < wake.n; i++)
            ap_sched_push(r->sched, tenant, wake.t[i].id, wake.t[i].rank);
        if (wake.n) pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void scan(ap_orch_runner_t *r) {
    ap_arena_t *a = ap_arena_new(65536);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows;
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(now), AP_VTEXT(now)};
    ap_rc rc = ap_db_begin(r->o.db, NULL, AP_TX_READ, a, &tx, &err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT t.tenant_id, t.id, t.priority_rank, n.max_concurrent_tasks,"
                         " n.task_weight FROM agent_tasks t JOIN tenants n ON n.id = t.tenant_id"
                         " WHERE t.status IN ('queued', 'thinking', 'executing') AND"
                         " (t.next_run_at IS NULL OR t.next_run_at <= ?) AND (t.lease_owner IS"
                         " NULL OR t.lease_expires_at < ?) ORDER BY t.priority_rank, t.id"
                         " LIMIT 2000",
                         p, 2, &rows, &err);
    if (rc) {
        ap_log(AP_LOG_WARN, "task scan failed", "{s:s}", "detail", err.detail);
    } else if (rows.nrows) {
        pthread_mutex_lock(&r->mu);
        int added = 0;
        const char *last = "";
        for (int i = 0; i < rows.nrows; i++) {
            bool running = false;
            const char *id = ap_rows_get(&rows, i, "id");
            const char *tenant = ap_rows_get(&rows, i, "tenant_id");
            if (strcmp(tenant, last) != 0) /* rows of a tenant mostly come together */
                set_share(r, tenant, ap_rows_int(&rows, i, "max_concurrent_tasks", 0),
                          ap_rows_int(&rows, i, "task_weight", 1));
            last = tenant;
            for (int w = 0; w < r->o.workers; w++)
                if (r->slots[w].busy && strcmp(r->slots[w].task, id) == 0) running = true;
            if (!running)
                added += ap_sched_push(r->sched, tenant, id,
                                       (int)ap_rows_int(&rows, i, "priority_rank", 2));
        }
        if (added) pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    ap_arena_free(a);
}

static void heartbeat(ap_orch_runner_t *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->o.workers;
    for (ap_orch_await_t *w = r->outstanding; w; w = w->next) n++;
    for (ap_orch_await_t *w = r->ready; w; w = w->next) n++;
    char (*t)[2][37] = ap_calloc((size_t)n, sizeof *t);
    int k = 0;
    for (int i = 0; i < r->o.workers; i++)
        if (r->slots[i].busy) {
            memcpy(t[k][0], r->slots[i].tenant, 37);
            memcpy(t[k][1], r->slots[i].task, 37);
            k++;
        }
    /* tasks waiting for their model call keep their lease too */
    for (int pass = 0; pass < 2; pass++)
        for (ap_orch_await_t *w = pass ? r->ready : r->outstanding; w && k < n; w = w->next) {
            snprintf(t[k][0], 37, "%.36s", w->tenant);
            snprintf(t[k][1], 37, "%.36s", w->task);
            k++;
        }
    pthread_mutex_unlock(&r->mu);
    char until[AP_TIME_LEN];
    ap_time_format(ap_now_ms() + r->o.lease_ms, until);
    for (int i = 0; i < k; i++) {
        ap_arena_t *a = ap_arena_new(2048);
        ap_err_t err = {0};
        ap_tx_t *tx;
        ap_val_t p[] = {AP_VTEXT(until), AP_VTEXT(t[i][1]), AP_VTEXT(r->node)};
        if (!ap_db_begin(r->o.db, t[i][0], AP_TX_WRITE, a, &tx, &err) &&
            !ap_tx_query(tx,
                         "UPDATE agent_tasks SET lease_expires_at = ? WHERE id = ? AND"
                         " lease_owner = ?",
                         p, 3, NULL, &err))
            ap_tx_commit(tx, &err);
        ap_arena_free(a);
    }
    ap_free(t);
}

static void *hb_main(void *arg) {
    ap_orch_runner_t *r = arg;
    int64_t next_scan = 0, next_hb = ap_now_ms() + r->o.lease_ms / 3;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t now = ap_now_ms();
        if (now >= next_scan) {
            pthread_mutex_unlock(&r->mu);
            scan(r);
            pthread_mutex_lock(&r->mu);
            next_scan = now + r->o.scan_ms;
        }
        if (now >= next_hb) {
            pthread_mutex_unlock(&r->mu);
            heartbeat(r);
            pthread_mutex_lock(&r->mu);
            next_hb = now + r->o.lease_ms / 3;
        }
        int64_t wake_at = next_scan < next_hb ? next_scan : next_hb;
        struct timespec ts = {.tv_sec = wake_at / 1000, .tv_nsec = (wake_at % 1000) * 1000000};
        /* ap_now_ms is wall-clock milliseconds, as CLOCK_REALTIME */
        if (!r->stop) pthread_cond_timedwait(&r->hb_cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

ap_rc ap_orch_runner_start(const ap_orch_runner_opts_t *opts, ap_orch_runner_t **out,
                           ap_err_t *err) {
    if (!opts->db || opts->workers < 1)
        return ap_err_set(err, AP_ERR_INVALID, NULL, "invalid runner options",
                          "give a store and at least one worker", "workers %d", opts->workers);
    ap_orch_runner_t *r = ap_calloc(1, sizeof *r);
    r->o = *opts;
    if (r->o.lease_ms <= 0) r->o.lease_ms = 15000;
    if (r->o.lease_ms < 300) r->o.lease_ms = 300;
    if (r->o.scan_ms <= 0) r->o.scan_ms = 1000;
    int quota = r->o.tenant_quota > 0 ? r->o.tenant_quota : (r->o.workers * 3) / 4;
    if (quota < 1) quota = 1;
    ap_uuid7(r->node);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->hb_cv, NULL);
    r->quota = quota;
    r->sched = ap_sched_new(quota);
    r->slots = ap_calloc((size_t)r->o.workers, sizeof *r->slots);
    r->threads = ap_calloc((size_t)r->o.workers, sizeof *r->threads);
    for (int i = 0; i < r->o.workers; i++) {
        worker_arg_t *wa = ap_malloc(sizeof *wa);
        *wa = (worker_arg_t){r, i};
        pthread_create(&r->threads[i], NULL, worker_main, wa);
    }
    pthread_create(&r->hb, NULL, hb_main, r);
    ap_log(AP_LOG_INFO, "task runner started", "{s:s,s:i,s:i,s:I}", "node", r->node, "workers",
           r->o.workers, "tenant_quota", quota, "lease_ms", (json_int_t)r->o.lease_ms);
    *out = r;
    return AP_OK;
}

void ap_orch_runner_stop(ap_orch_runner_t *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->hb_cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->o.workers; i++) pthread_join(r->threads[i], NULL);
    pthread_join(r->hb, NULL);
    /* model calls still in flight: cancelled, and their callbacks awaited
     * (they touch this runner); their tasks stay leased and resume, after
     * the lease, on the next start (the started step is redone) */
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (ap_orch_await_t *w = r->outstanding; w; w = w->next) n++;
    void **handles = ap_calloc((size_t)n + 1, sizeof *handles);
    n = 0;
    for (ap_orch_await_t *w = r->outstanding; w; w = w->next) handles[n++] = w->handle;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++)
        if (handles[i] && r->o.model_cancel) r->o.model_cancel(handles[i]);
    ap_free(handles);
    int64_t until = ap_now_ms() + 10000;
    pthread_mutex_lock(&r->mu);
    while (r->outstanding && ap_now_ms() < until) {
        struct timespec ts = {.tv_sec = (ap_now_ms() + 50) / 1000,
                              .tv_nsec = ((ap_now_ms() + 50) % 1000) * 1000000};
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    bool stuck = r->outstanding != NULL;
    while (r->ready) {
        ap_orch_await_t *w = r->ready;
        r->ready = w->next;
        ap_arena_free(w->a);
        ap_free(w);
    }
    pthread_mutex_unlock(&r->mu);
    if (stuck) {
        /* never expected: leave the runner allocated rather than let a late
         * callback write into freed memory */
        ap_log(AP_LOG_ERROR, "model calls did not end at shutdown", NULL);
        return;
    }
    ap_sched_free(r->sched);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->hb_cv);
    ap_free(r->slots);
    ap_free(r->threads);
    ap_free(r);
}

ap_rc ap_orch_model_llm(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                        const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                        ap_llm_error_t *lerr, ap_err_t *err) {
    const ap_llm_call_env_t *env = ud;
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = tenant_id, .agent_id = agent_id,
                            .task_id = task_id};
    for (int i = 0; i < nheaders && i < AP_LLM_CALL_MAX_HEADERS; i++)
        o.headers[o.nheaders++] = headers[i];
    return ap_llm_call_sync(env, &o, req, NULL, NULL, resp, lerr, NULL, err);
}

typedef struct {
    ap_orch_model_done_fn done;
    void *cb_ud;
} llm_cb_t;

static void llm_on_done(void *ud, const ap_llm_resp_t *resp, const ap_llm_error_t *err,
                        const char *explain) {
    (void)explain;
    llm_cb_t *cb = ud;
    cb->done(cb->cb_ud, resp, err);
}

ap_rc ap_orch_model_llm_start(void *ud, ap_arena_t *a, const char *tenant_id,
                              const char *agent_id, const char *task_id,
                              const char *const *headers, int nheaders, const ap_llm_req_t *req,
                              ap_orch_model_done_fn done, void *cb_ud, void **handle,
                              ap_err_t *err) {
    const ap_llm_call_env_t *env = ud;
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = tenant_id, .agent_id = agent_id,
                            .task_id = task_id};
    for (int i = 0; i < nheaders && i < AP_LLM_CALL_MAX_HEADERS; i++)
        o.headers[o.nheaders++] = headers[i];
    llm_cb_t *cb = ap_arena_calloc(a, sizeof *cb);
    cb->done = done;
    cb->cb_ud = cb_ud;
    ap_llm_call_cb_t c = {.on_done = llm_on_done, .ud = cb};
    *handle = NULL;
    /* the handle is written before any callback can run (call.h) */
    return ap_llm_call_start(env, &o, req, &c, (ap_llm_call_t **)handle, err);
}

void ap_orch_model_llm_cancel(void *handle) { ap_llm_call_cancel(handle); }
