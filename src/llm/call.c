/*
 * call.c - the model-call driver (call.h): route, budget, attempts on an
 * upstream loop with retries, breaker and fallbacks, metering.
 *
 * 1. A call is a small state machine living in the caller's arena:
 *    start_attempt → upstream job → upstream_done → (retry | next target |
 *    finish).  Only one attempt is in flight at a time, so the state needs
 *    no lock except around the running job (for cancellation).
 * 2. finish() is the one place on_done is called; it runs the caller's
 *    callback last and touches nothing afterwards (the caller may free the
 *    arena there).  The mutex and buffers are released by arena cleanups.
 * 3. Budgets are estimated from characters / 4 plus max_tokens (else the
 *    model's output limit, else 1024) at the first target's list price.
 */
#include "llm/call.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/time.h"
#include "llm/breaker.h"
#include "llm/budget.h"
#include "llm/providers/builtin.h"
#include "llm/upstream.h"
#include "llm/usage.h"
#include "llm/wire.h"

struct ap_llm_call {
    ap_llm_call_env_t env;
    ap_arena_t *a;
    ap_llm_call_cb_t cb;
    char tenant_id[37], key_id[37], agent_id[37], task_id[37], request_id[37];
    const char *headers[AP_LLM_CALL_MAX_HEADERS];
    int nheaders;
    ap_llm_req_t req;
    ap_llm_route_t route;
    int attempt;      /* index into route.targets */
    int retries;      /* retries of the current target so far */
    int delay_ms;     /* backoff before the next submission */
    ap_buf_t explain; /* "served by X (reason); failed Y: kind" */
    uint64_t t0, t_first;
    /* streams */
    ap_llm_decoder_t *dec;
    bool started; /* on_open ran: committed to this target */
    ap_llm_usage_t usage;
    const char *finish_reason;
    ap_llm_error_t stream_err;
    bool stream_failed;
    /* the running upstream job, for cancellation */
    pthread_mutex_t mu;
    ap_upstream_job_t *job;
    bool cancelled;
};

/* ---- process-wide settings, read once -------------------------------- */

static pthread_once_t settings_once = PTHREAD_ONCE_INIT;
static int retry_max_v = 2, retry_base_v = 100;

static void settings_read(void) {
    const char *v = getenv("AP_RETRY_MAX");
    if (v && *v) retry_max_v = atoi(v);
    v = getenv("AP_RETRY_BASE_MS");
    if (v && *v) retry_base_v = atoi(v);
}

static int backoff_ms(int n, const ap_llm_error_t *lerr) {
    if (lerr->retry_after_ms > 0) return lerr->retry_after_ms <= 5000 ? (int)lerr->retry_after_ms : -1;
    double jitter = 0.5 + (double)(ap_random_u32() % 1000) / 1000.0;
    return (int)((double)(retry_base_v << n) * jitter);
}

static int64_t now_ms(void) {
    return (int64_t)(ap_mono_ns() / 1000000);
}

/* ---- estimates and budgets -------------------------------------------- */

int64_t ap_llm_prompt_chars(const ap_llm_req_t *req) {
    int64_t n = 0;
    for (int i = 0; i < req->nmsgs; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->content) n += (int64_t)strlen(m->content);
        size_t k;
        json_t *part;
        json_array_foreach(m->parts, k, part) {
            const char *t = json_string_value(json_object_get(part, "text"));
            if (t) n += (int64_t)strlen(t);
        }
        for (int j = 0; j < m->ntool_calls; j++)
            if (m->tool_calls[j].arguments) n += (int64_t)strlen(m->tool_calls[j].arguments);
    }
    return n;
}

ap_rc ap_llm_call_budget(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                         const char *tenant_id,
                         const ap_actor_t *actor, const ap_llm_route_t *route,
                         int64_t prompt_chars, int64_t max_tokens, ap_llm_error_t *lerr,
                         ap_err_t *err) {
    memset(lerr, 0, sizeof *lerr);
    const ap_llm_target_info_t *info = &route->info[0];
    int64_t out_tok = max_tokens > 0 ? max_tokens : info->max_output > 0 ? info->max_output : 1024;
    int64_t in_tok = (prompt_chars + 3) / 4;
    double usd = info->priced ? ((double)in_tok * info->in_per_mtok +
                                 (double)out_tok * info->out_per_mtok) / 1e6
                              : 0;
    ap_budget_verdict_t v;
    ap_budget_limits_t lim = {.daily_usd = route->budget_daily_usd,
                              .monthly_usd = route->budget_monthly_usd};
    static const ap_actor_t sys = {.type = "system", .id = "llm"};
    if (ap_budget_check_cached(cache, db, a, tenant_id, actor ? actor : &sys, &lim,
                               in_tok + out_tok, usd, &v, err))
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "service-unavailable",
                          "cannot check the tenant's budget", "try again shortly",
                          "the budget store did not answer");
    if (!v.over) return AP_OK;
    lerr->kind = AP_LLM_BUDGET_EXCEEDED;
    lerr->http_status = 429;
    lerr->retry_after_ms = v.retry_after_s * 1000;
    snprintf(lerr->budget, sizeof lerr->budget, "%s", v.budget);
    snprintf(lerr->resets_at, sizeof lerr->resets_at, "%s", v.resets_at);
    bool in_usd = strcmp(v.unit, "USD") == 0; /* USD to 6 significant digits, tokens whole */
    snprintf(lerr->message, sizeof lerr->message,
             "budget exceeded: %s is %.*g %s, %.*g %s spent and this call is estimated at %.*g %s;"
             " it resets at %s",
             v.budget, in_usd ? 6 : 15, v.limit, v.unit, in_usd ? 6 : 15, v.spent, v.unit,
             in_usd ? 6 : 15, v.estimate, v.unit, v.resets_at);
    return AP_OK;
}

/* ---- metering and explanation ---------------------------------------- */

/* s into dst[cap], cut to fit (the metering hot path: no printf). */
static void copy_str(char *dst, size_t cap, const char *s) {
    size_t n = s ? strnlen(s, cap - 1) : 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

static void record(ap_llm_call_t *c, const ap_llm_usage_t *u, const char *outcome,
                   ap_llm_errkind kind) {
    if (!c->env.usage) return;
    const ap_llm_target_t *t = &c->route.targets[c->attempt];
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    ap_usage_rec_t rec;
    memset(&rec, 0, sizeof rec);
    memcpy(rec.tenant_id, c->tenant_id, sizeof rec.tenant_id);
    memcpy(rec.key_id, c->key_id, sizeof rec.key_id);
    memcpy(rec.agent_id, c->agent_id, sizeof rec.agent_id);
    memcpy(rec.task_id, c->task_id, sizeof rec.task_id);
    memcpy(rec.request_id, c->request_id, sizeof rec.request_id);
    copy_str(rec.provider, sizeof rec.provider, info->provider);
    copy_str(rec.model, sizeof rec.model, t->model);
    rec.tokens = *u;
    rec.priced = info->priced;
    rec.cost_usd = info->priced ? ap_usage_cost(u, info->in_per_mtok, info->out_per_mtok) : 0;
    rec.latency_ms = (double)(ap_mono_ns() - c->t0) / 1e6;
    rec.ttft_ms = c->req.stream && c->t_first ? (double)(c->t_first - c->t0) / 1e6 : -1;
    rec.stream = c->req.stream;
    copy_str(rec.outcome, sizeof rec.outcome, outcome);
    if (kind != AP_LLM_OK) copy_str(rec.error_kind, sizeof rec.error_kind, ap_llm_errkind_name(kind));
    copy_str(rec.route, sizeof rec.route, c->explain.p);
    ap_usage_record(c->env.usage, &rec);
}

static void note_failure(ap_llm_call_t *c, const ap_llm_error_t *lerr) {
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    ap_buf_printf(&c->explain, "%sfailed %s: %s", c->explain.len ? "; " : "", info->catalog_id,
                  ap_llm_errkind_name(lerr->kind));
}

/* "served by X (reason)" in front of the failures so far. */
static void note_served(ap_llm_call_t *c) {
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    char *prev = c->explain.len ? ap_arena_strdup(c->a, c->explain.p) : NULL;
    ap_buf_reset(&c->explain);
    ap_buf_printf(&c->explain, "served by %s (%s)%s%s", info->catalog_id, c->route.reason,
                  prev ? "; " : "", prev ? prev : "");
}

/* The one exit: on_done last, nothing touched after it (decision 2). */
static void finish(ap_llm_call_t *c, const ap_llm_resp_t *resp, const ap_llm_error_t *lerr) {
    const char *explain = ap_arena_strdup(c->a, c->explain.p ? c->explain.p : "");
    ap_llm_call_cb_t cb = c->cb;
    cb.on_done(cb.ud, resp, lerr, explain);
}

static void call_cleanup(void *arg) {
    ap_llm_call_t *c = arg;
    ap_buf_free(&c->explain);
    pthread_mutex_destroy(&c->mu);
}

/* ---- attempts ---------------------------------------------------------- */

static void start_attempt(ap_llm_call_t *c);

static void attempt_failed(ap_llm_call_t *c, const ap_llm_error_t *lerr) {
    note_failure(c, lerr);
    ap_llm_usage_t none = {0};
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    record(c, &none, "error", lerr->kind);
    pthread_mutex_lock(&c->mu);
    bool cancelled = c->cancelled;
    pthread_mutex_unlock(&c->mu);
    /* a stopped upstream answers every attempt the same way: no retry, no
     * fallback, and the model's circuit stays as it was */
    bool shutdown = lerr->kind == AP_LLM_UPSTREAM && strcmp(lerr->message, AP_UPSTREAM_SHUTDOWN) == 0;
    bool retryable = ap_llm_err_retryable(lerr->kind) && !cancelled && !shutdown;
    bool circuit_open = strcmp(lerr->message, "circuit open") == 0;
    if (retryable && !circuit_open && c->env.breaker)
        ap_breaker_report(c->env.breaker, info->catalog_id, false, now_ms());
    if (retryable && !circuit_open && c->retries < retry_max_v) {
        int delay = backoff_ms(c->retries, lerr);
        if (delay >= 0) {
            c->retries++;
            c->delay_ms = delay;
            start_attempt(c);
            return;
        }
    }
    if (retryable && c->attempt + 1 < c->route.ntargets) {
        c->attempt++;
        c->retries = 0;
        c->delay_ms = 0;
        start_attempt(c);
        return;
    }
    finish(c, NULL, lerr);
}

static void on_delta(void *ud, const ap_llm_delta_t *d) {
    ap_llm_call_t *c = ud;
    if (d->has_usage) c->usage = d->usage;
    if (d->finish_reason) c->finish_reason = d->finish_reason;
    if (c->cb.on_delta) c->cb.on_delta(c->cb.ud, d);
}

static void open_stream(ap_llm_call_t *c) {
    c->started = true;
    c->t_first = ap_mono_ns();
    note_served(c);
    if (c->cb.on_open) c->cb.on_open(c->cb.ud, c->explain.p);
}

static void upstream_data(void *ud, int status, const char *data, size_t len) {
    (void)status;
    ap_llm_call_t *c = ud;
    if (!c->started) open_stream(c);
    if (c->stream_failed) return;
    ap_llm_error_t lerr = {0};
    if (ap_llm_decoder_feed(c->dec, data, len, on_delta, c, &lerr)) {
        c->stream_failed = true;
        c->stream_err = lerr;
    }
}

static void succeed(ap_llm_call_t *c, ap_llm_resp_t *resp) {
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    if (!resp->model) resp->model = c->route.targets[c->attempt].model;
    record(c, &resp->usage, "success", AP_LLM_OK);
    if (!info->builtin && c->env.breaker)
        ap_breaker_report(c->env.breaker, info->catalog_id, true, now_ms());
    finish(c, resp, NULL);
}

static void upstream_done(void *ud, int status, const char *retry_after, const char *body,
                          size_t len, const ap_llm_error_t *lerr_in) {
    ap_llm_call_t *c = ud;
    pthread_mutex_lock(&c->mu);
    c->job = NULL;
    pthread_mutex_unlock(&c->mu);
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    ap_llm_error_t lerr = *lerr_in;
    if (c->req.stream) {
        if (!c->started) { /* nothing reached the caller: fall back freely */
            if (lerr.kind == AP_LLM_OK) {
                ap_llm_resp_t dummy;
                ap_wire_parse_reply(c->a, info->wire, status, retry_after, body, len, &dummy,
                                    &lerr);
                if (lerr.kind == AP_LLM_OK) {
                    lerr.kind = AP_LLM_UPSTREAM;
                    snprintf(lerr.message, sizeof lerr.message, "empty stream");
                }
            }
            attempt_failed(c, &lerr);
            return;
        }
        if (lerr.kind == AP_LLM_OK && c->stream_failed) lerr = c->stream_err;
        if (lerr.kind == AP_LLM_OK && !ap_llm_decoder_done(c->dec)) {
            lerr.kind = AP_LLM_UPSTREAM;
            snprintf(lerr.message, sizeof lerr.message, "the provider's stream ended early");
        }
        if (lerr.kind != AP_LLM_OK) { /* tokens were sent: never replayed */
            note_failure(c, &lerr);
            record(c, &c->usage, "error", lerr.kind);
            finish(c, NULL, &lerr);
            return;
        }
        ap_llm_resp_t resp = {.usage = c->usage, .finish_reason = c->finish_reason};
        succeed(c, &resp);
        return;
    }
    ap_llm_resp_t resp;
    memset(&resp, 0, sizeof resp);
    if (lerr.kind == AP_LLM_OK)
        ap_wire_parse_reply(c->a, info->wire, status, retry_after, body, len, &resp, &lerr);
    if (lerr.kind != AP_LLM_OK) {
        attempt_failed(c, &lerr);
        return;
    }
    note_served(c);
    succeed(c, &resp);
}

/* The builtin model: local computation, on the current thread. */
static void run_builtin(ap_llm_call_t *c) {
    ap_err_t err = {0};
    ap_llm_resp_t resp;
    memset(&resp, 0, sizeof resp);
    ap_rc rc;
    c->req.model = c->route.targets[c->attempt].model;
    if (c->req.stream) {
        open_stream(c);
        rc = ap_builtin_stream(c->a, &c->req, on_delta, c, &err);
        resp.usage = c->usage;
        resp.finish_reason = c->finish_reason;
    } else {
        note_served(c);
        rc = ap_builtin_complete(c->a, &c->req, &resp, &err);
    }
    if (rc) {
        ap_llm_error_t lerr = {.kind = AP_LLM_UPSTREAM};
        snprintf(lerr.message, sizeof lerr.message, "the builtin model failed: %.400s", err.detail);
        record(c, &c->usage, "error", lerr.kind);
        finish(c, NULL, &lerr);
        return;
    }
    succeed(c, &resp);
}

static void start_attempt(ap_llm_call_t *c) {
    const ap_llm_target_info_t *info = &c->route.info[c->attempt];
    ap_llm_target_t *t = &c->route.targets[c->attempt];
    if (info->builtin) {
        run_builtin(c);
        return;
    }
    ap_llm_error_t lerr = {0};
    if (!c->env.upstream) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "no upstream I/O loop in this process");
        attempt_failed(c, &lerr);
        return;
    }
    if (c->env.breaker && !ap_breaker_allow(c->env.breaker, info->catalog_id, now_ms())) {
        /* the provider model failed repeatedly: do not wait on it */
        lerr.kind = AP_LLM_OVERLOADED;
        snprintf(lerr.message, sizeof lerr.message, "circuit open");
        attempt_failed(c, &lerr);
        return;
    }
    ap_err_t err = {0};
    ap_http_call_t call;
    c->req.model = t->model;
    if (ap_wire_build_call(c->a, info->wire, &c->req, t, &call, &err)) {
        lerr.kind = AP_LLM_BAD_REQUEST;
        snprintf(lerr.message, sizeof lerr.message, "%.100s: %.380s", err.msg, err.detail);
        attempt_failed(c, &lerr);
        return;
    }
    for (int i = 0; i < c->nheaders && call.nheaders < AP_WIRE_MAX_HEADERS; i++)
        call.headers[call.nheaders++] = c->headers[i];
    if (c->req.stream) c->dec = ap_llm_decoder_new(c->a, info->wire);
    ap_upstream_cb_t ucb = {.on_data = c->req.stream ? upstream_data : NULL,
                            .on_done = upstream_done,
                            .ud = c};
    ap_upstream_limits_t lim = {.timeout_ms = 600000, .first_byte_ms = 120000,
                                .delay_ms = c->delay_ms};
    c->delay_ms = 0;
    pthread_mutex_lock(&c->mu);
    bool cancelled = c->cancelled;
    if (!cancelled) ap_upstream_submit(c->env.upstream, &call, &lim, &ucb, &c->job, &err);
    pthread_mutex_unlock(&c->mu);
    if (cancelled) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "cancelled");
        attempt_failed(c, &lerr);
    }
}

/* ---- the API ----------------------------------------------------------- */


ap_rc ap_llm_call_start(const ap_llm_call_env_t *env, const ap_llm_call_opts_t *opts,
                        const ap_llm_req_t *req, const ap_llm_call_cb_t *cb,
                        ap_llm_call_t **out, ap_err_t *err) {
    pthread_once(&settings_once, settings_read);
    ap_arena_t *a = opts->arena;
    ap_llm_call_t *c = ap_arena_calloc(a, sizeof *c);
    c->env = *env;
    c->a = a;
    c->cb = *cb;
    copy_str(c->tenant_id, sizeof c->tenant_id, opts->tenant_id);
    copy_str(c->key_id, sizeof c->key_id, opts->key_id);
    copy_str(c->agent_id, sizeof c->agent_id, opts->agent_id);
    copy_str(c->task_id, sizeof c->task_id, opts->task_id);
    copy_str(c->request_id, sizeof c->request_id, opts->request_id);
    for (int i = 0; i < opts->nheaders && i < AP_LLM_CALL_MAX_HEADERS; i++)
        c->headers[c->nheaders++] = ap_arena_strdup(a, opts->headers[i]);
    c->req = *req;
    c->t0 = ap_mono_ns();
    ap_llm_route_ctx_t rctx = {.agent_id = opts->agent_id,
                               .task_type = opts->task_type,
                               .metadata = opts->metadata ? opts->metadata : req->metadata};
    ap_rc rc = ap_llm_route_cached(env->cache, env->db, a, opts->tenant_id, env->master_key,
                                   &c->req, &rctx, &c->route, err);
    if (rc) return rc;
    /* the configuration's defaults, where the request has none */
    if (!c->req.has_temperature && c->route.has_temperature) {
        c->req.has_temperature = true;
        c->req.temperature = c->route.temperature;
    }
    if (c->req.max_tokens <= 0 && c->route.max_tokens > 0) c->req.max_tokens = c->route.max_tokens;
    ap_llm_error_t lerr;
    rc = ap_llm_call_budget(env->cache, env->db, a, opts->tenant_id, opts->actor, &c->route,
                            ap_llm_prompt_chars(&c->req), c->req.max_tokens, &lerr, err);
    if (rc) return rc;
    pthread_mutex_init(&c->mu, NULL);
    ap_buf_init(&c->explain, 4096);
    ap_arena_cleanup(a, call_cleanup, c);
    if (out) *out = c;
    if (lerr.kind != AP_LLM_OK) {
        finish(c, NULL, &lerr);
        return AP_OK;
    }
    start_attempt(c);
    return AP_OK;
}

void ap_llm_call_cancel(ap_llm_call_t *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->cancelled = true;
    if (c->job) ap_upstream_cancel(c->env.upstream, c->job);
    pthread_mutex_unlock(&c->mu);
}

/* ---- blocking form ----------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    void (*on_delta)(void *ud, const ap_llm_delta_t *d);
    void *ud;
    ap_llm_resp_t *resp;
    ap_llm_error_t *lerr;
    const char **explain;
} sync_t;

static void sync_delta(void *ud, const ap_llm_delta_t *d) {
    sync_t *s = ud;
    if (s->on_delta) s->on_delta(s->ud, d);
}

static void sync_done(void *ud, const ap_llm_resp_t *resp, const ap_llm_error_t *lerr,
                      const char *explain) {
    sync_t *s = ud;
    if (resp) *s->resp = *resp;
    if (lerr) *s->lerr = *lerr;
    else s->lerr->kind = AP_LLM_OK;
    if (s->explain) *s->explain = explain;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

ap_rc ap_llm_call_sync(const ap_llm_call_env_t *env, const ap_llm_call_opts_t *opts,
                       const ap_llm_req_t *req, void (*delta_fn)(void *ud, const ap_llm_delta_t *d),
                       void *ud, ap_llm_resp_t *resp, ap_llm_error_t *lerr, const char **explain,
                       ap_err_t *err) {
    memset(resp, 0, sizeof *resp);
    memset(lerr, 0, sizeof *lerr);
    if (explain) *explain = NULL;
    sync_t s = {.on_delta = delta_fn, .ud = ud, .resp = resp, .lerr = lerr, .explain = explain};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    ap_llm_call_cb_t cb = {.on_delta = sync_delta, .on_done = sync_done, .ud = &s};
    ap_rc rc = ap_llm_call_start(env, opts, req, &cb, NULL, err);
    if (!rc) {
        pthread_mutex_lock(&s.mu);
        while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
    }
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
