/*
 * gateway.c - the OpenAI- and Anthropic-compatible LLM gateway:
 * POST /v1/chat/completions, POST /v1/messages, POST /v1/embeddings,
 * GET /v1/models.
 *
 * 1. A call is parsed from the client's protocol into the internal
 *    representation, resolved by the router to a list of targets (the
 *    chosen model, then fallbacks), and sent upstream on the I/O loop; the
 *    client connection sleeps meanwhile (no thread is held).
 * 2. A failure before any byte reached the client moves to the next
 *    target; a stream that already sent tokens is never replayed: it ends
 *    with an error event instead.
 * 3. The builtin model answers inline (it is local computation).
 * 4. Every call is metered (llm/usage.c) and explained: the X-AgentProv-Route
 *    header and the usage record say which model served, why, and which
 *    attempts failed.
 * 5. Errors reach clients in their own protocol's error shape, so the
 *    official SDKs raise their own error types.
 * 6. Budgets are checked after routing and before any upstream work
 *    (llm/budget.c): prompt estimate (characters / 4) plus max_tokens (else
 *    the model's output limit, else 1024) at the first target's list
 *    price.  Over budget is a 429 naming the budget, with Retry-After.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/time.h"
#include "http/server.h"
#include "llm/budget.h"
#include "llm/providers/builtin.h"
#include "llm/router.h"
#include "llm/breaker.h"
#include "llm/upstream.h"
#include "llm/usage.h"
#include "llm/wire.h"
#include "llm/catalog.h"
#include "llm/embed.h"

typedef struct {
    ap_req_t *r;
    struct ap_app *app;
    ap_arena_t *a;
    ap_wire_kind client;
    ap_llm_req_t req;
    bool include_usage;
    ap_llm_route_t route; /* targets in order */
    int attempt;          /* index into route.targets */
    ap_buf_t explain;     /* "served by X (reason); failed: Y: kind" */
    uint64_t t0, t_first;
    /* streaming */
    ap_llm_decoder_t *dec;
    ap_llm_encoder_t *enc;
    bool started; /* bytes went to the client */
    bool client_gone;
    ap_buf_t out;
    ap_llm_usage_t usage;
    const char *finish;
    ap_llm_error_t stream_err;
    bool stream_failed;
    const char *fwd[8]; /* client headers forwarded to providers (AP_FORWARD_HEADERS) */
    int nfwd;
    int retries;     /* retries of the current target so far */
    int delay_ms;    /* backoff before the next submission */
    /* the running upstream job, for cancellation */
    pthread_mutex_t mu;
    ap_upstream_job_t *job;
} gw_call_t;

static void start_attempt(gw_call_t *g);

static void answer_error(ap_req_t *r, ap_wire_kind client, int status, const char *code,
                         const char *message) {
    json_t *body = ap_wire_render_error(client, status, code, message);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    ap_resp_raw(r, status, "application/json", s, strlen(s));
}

/* The same for an ap_err_t: "msg: detail; hint". */
static void answer_err(ap_req_t *r, ap_wire_kind client, int status, const char *code,
                       const ap_err_t *err) {
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s%s%s", err->msg, err->detail, err->hint[0] ? "; " : "",
             err->hint);
    answer_error(r, client, status, code, msg);
}

/* Checks the tenant's budgets for a call of about prompt_chars characters
 * and max_tokens output (0: the model's limit, else 1024) on the route's
 * first target.  Answers 429 (or the error) and returns false when the call
 * must not run. */
static bool within_budget(ap_req_t *r, ap_wire_kind client, const ap_llm_route_t *route,
                          int64_t prompt_chars, int64_t max_tokens) {
    const ap_llm_target_info_t *info = &route->info[0];
    int64_t out_tok = max_tokens > 0 ? max_tokens : info->max_output > 0 ? info->max_output : 1024;
    int64_t in_tok = (prompt_chars + 3) / 4;
    double usd = info->priced ? ((double)in_tok * info->in_per_mtok +
                                 (double)out_tok * info->out_per_mtok) / 1e6
                              : 0;
    ap_budget_verdict_t v;
    ap_err_t err = {0};
    ap_budget_limits_t lim = {.daily_usd = route->budget_daily_usd,
                              .monthly_usd = route->budget_monthly_usd};
    if (ap_budget_check(r->app->db, r->arena, r->principal->tenant_id, &r->actor, &lim,
                        in_tok + out_tok, usd, &v, &err)) {
        answer_error(r, client, 503, "service_unavailable", "cannot check the tenant's budget");
        return false;
    }
    if (!v.over) return true;
    char ra[32], msg[600];
    snprintf(ra, sizeof ra, "%lld", (long long)v.retry_after_s);
    ap_resp_header(r, "Retry-After", ra);
    bool in_usd = strcmp(v.unit, "USD") == 0; /* USD to 6 significant digits, tokens whole */
    snprintf(msg, sizeof msg,
             "budget exceeded: %s is %.*g %s, %.*g %s spent and this call is estimated at %.*g %s;"
             " it resets at %s",
             v.budget, in_usd ? 6 : 15, v.limit, v.unit, in_usd ? 6 : 15, v.spent, v.unit, in_usd ? 6 : 15,
             v.estimate, v.unit, v.resets_at);
    answer_error(r, client, 429, "budget_exceeded", msg);
    return false;
}

static int64_t prompt_chars(const ap_llm_req_t *req) {
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

static void record(gw_call_t *g, const ap_llm_target_t *t, const ap_llm_target_info_t *info,
                   const ap_llm_usage_t *u, const char *outcome, ap_llm_errkind kind) {
    ap_usage_rec_t rec;
    memset(&rec, 0, sizeof rec);
    ap_principal_t *p = g->r->principal;
    snprintf(rec.tenant_id, sizeof rec.tenant_id, "%s", p->tenant_id);
    snprintf(rec.key_id, sizeof rec.key_id, "%s", p->key_id);
    snprintf(rec.provider, sizeof rec.provider, "%s", info->provider);
    snprintf(rec.model, sizeof rec.model, "%s", t->model);
    rec.tokens = *u;
    rec.priced = info->priced;
    rec.cost_usd = info->priced ? ap_usage_cost(u, info->in_per_mtok, info->out_per_mtok) : 0;
    rec.latency_ms = (double)(ap_mono_ns() - g->t0) / 1e6;
    rec.ttft_ms = g->req.stream && g->t_first ? (double)(g->t_first - g->t0) / 1e6 : -1;
    rec.stream = g->req.stream;
    snprintf(rec.outcome, sizeof rec.outcome, "%s", outcome);
    if (kind != AP_LLM_OK) snprintf(rec.error_kind, sizeof rec.error_kind, "%s", ap_llm_errkind_name(kind));
    snprintf(rec.route, sizeof rec.route, "%s", g->explain.p ? g->explain.p : "");
    snprintf(rec.request_id, sizeof rec.request_id, "%s", g->r->request_id);
    ap_usage_record(g->app->usage, &rec);
}

/* Releases what a call holds outside the request arena. */
static void gw_locals_free(gw_call_t *g) {
    ap_buf_free(&g->explain);
    ap_buf_free(&g->out);
    pthread_mutex_destroy(&g->mu);
}

static void finish_call(gw_call_t *g) {
    gw_locals_free(g);
    ap_req_t *r = g->r;
    ap_req_async_release(r); /* may free r and its arena (and g with it) */
}

static void note_failure(gw_call_t *g, const ap_llm_error_t *lerr) {
    const ap_llm_target_info_t *info = &g->route.info[g->attempt];
    ap_buf_printf(&g->explain, "%sfailed %s: %s", g->explain.len ? "; " : "", info->catalog_id,
                  ap_llm_errkind_name(lerr->kind));
}

/* A failed attempt: next target, or the error to the client. */
/* Retries of one target: at most AP_RETRY_MAX (default 2), after
 * AP_RETRY_BASE_MS (default 100) × 2^n with ±50 % jitter, or after the
 * provider's Retry-After when it asks for at most 5 s; longer waits go to
 * the next target instead. */
static int retry_max(void) {
    const char *v = getenv("AP_RETRY_MAX");
    return v && *v ? atoi(v) : 2;
}

static int backoff_ms(int n, const ap_llm_error_t *lerr) {
    if (lerr->retry_after_ms > 0) return lerr->retry_after_ms <= 5000 ? (int)lerr->retry_after_ms : -1;
    const char *v = getenv("AP_RETRY_BASE_MS");
    int base = v && *v ? atoi(v) : 100;
    double jitter = 0.5 + (double)(ap_random_u32() % 1000) / 1000.0;
    return (int)((double)(base << n) * jitter);
}

static void attempt_failed(gw_call_t *g, const ap_llm_error_t *lerr) {
    note_failure(g, lerr);
    ap_llm_usage_t none = {0};
    const ap_llm_target_info_t *info = &g->route.info[g->attempt];
    record(g, &g->route.targets[g->attempt], info, &none, "error", lerr->kind);
    bool retryable = ap_llm_err_retryable(lerr->kind) && !g->client_gone;
    bool circuit_open = strcmp(lerr->message, "circuit open") == 0;
    if (retryable && !circuit_open)
        ap_breaker_report(g->app->breaker, info->catalog_id, false,
                          (int64_t)(ap_mono_ns() / 1000000));
    if (retryable && !circuit_open && g->retries < retry_max()) {
        int delay = backoff_ms(g->retries, lerr);
        if (delay >= 0) {
            g->retries++;
            g->delay_ms = delay;
            start_attempt(g);
            return;
        }
    }
    bool more = g->attempt + 1 < g->route.ntargets && retryable;
    if (more) {
        g->attempt++;
        g->retries = 0;
        g->delay_ms = 0;
        start_attempt(g);
        return;
    }
    ap_resp_header(g->r, "X-AgentProv-Route", g->explain.p);
    if (lerr->kind == AP_LLM_RATE_LIMITED && lerr->retry_after_ms > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)((lerr->retry_after_ms + 999) / 1000));
        ap_resp_header(g->r, "Retry-After", ra);
    }
    char msg[700];
    snprintf(msg, sizeof msg, "%s: %s", ap_llm_errkind_name(lerr->kind), lerr->message);
    answer_error(g->r, g->client, ap_wire_error_status(lerr->kind), ap_llm_errkind_name(lerr->kind),
                 msg);
    ap_req_async_answer(g->r);
    finish_call(g);
}

static void on_delta(void *ud, const ap_llm_delta_t *d) {
    gw_call_t *g = ud;
    if (d->has_usage) g->usage = d->usage;
    if (d->finish_reason) g->finish = d->finish_reason;
    ap_llm_encoder_delta(g->enc, d, &g->out);
}

static void flush_out(gw_call_t *g) {
    if (!g->out.len) return;
    if (!ap_req_stream_write(g->r, g->out.p, g->out.len)) g->client_gone = true;
    ap_buf_reset(&g->out);
}

static void served_header(gw_call_t *g) {
    const ap_llm_target_info_t *info = &g->route.info[g->attempt];
    char *prev = g->explain.len ? ap_arena_strdup(g->a, g->explain.p) : NULL;
    ap_buf_reset(&g->explain);
    ap_buf_printf(&g->explain, "served by %s (%s)%s%s", info->catalog_id, g->route.reason,
                  prev ? "; " : "", prev ? prev : "");
    ap_resp_header(g->r, "X-AgentProv-Route", g->explain.p);
}

static void on_data(void *ud, int status, const char *data, size_t len) {
    (void)status;
    gw_call_t *g = ud;
    if (!g->started) {
        g->started = true;
        g->t_first = ap_mono_ns();
        served_header(g);
        ap_req_stream_open(g->r, 200, "text/event-stream");
    }
    if (g->stream_failed) return;
    ap_llm_error_t lerr = {0};
    if (ap_llm_decoder_feed(g->dec, data, len, on_delta, g, &lerr)) {
        g->stream_failed = true;
        g->stream_err = lerr;
    }
    flush_out(g);
}

static void on_done(void *ud, int status, const char *retry_after, const char *body, size_t len,
                    const ap_llm_error_t *lerr_in) {
    gw_call_t *g = ud;
    pthread_mutex_lock(&g->mu);
    g->job = NULL;
    pthread_mutex_unlock(&g->mu);
    ap_llm_target_t *t = &g->route.targets[g->attempt];
    ap_llm_target_info_t *info = &g->route.info[g->attempt];
    ap_llm_error_t lerr = *lerr_in;
    if (g->req.stream) {
        if (!g->started) { /* nothing reached the client: fall back freely */
            if (lerr.kind == AP_LLM_OK) {
                ap_llm_resp_t dummy;
                ap_wire_parse_reply(g->a, info->wire, status, retry_after, body, len, &dummy, &lerr);
                if (lerr.kind == AP_LLM_OK) {
                    lerr.kind = AP_LLM_UPSTREAM;
                    snprintf(lerr.message, sizeof lerr.message, "empty stream");
                }
            }
            attempt_failed(g, &lerr);
            return;
        }
        if (lerr.kind == AP_LLM_OK && g->stream_failed) lerr = g->stream_err;
        if (lerr.kind == AP_LLM_OK && !ap_llm_decoder_done(g->dec)) {
            lerr.kind = AP_LLM_UPSTREAM;
            snprintf(lerr.message, sizeof lerr.message, "the provider's stream ended early");
        }
        if (lerr.kind == AP_LLM_OK) {
            ap_llm_encoder_finish(g->enc, &g->usage, &g->out);
            record(g, t, info, &g->usage, "success", AP_LLM_OK);
            ap_breaker_report(g->app->breaker, info->catalog_id, true,
                              (int64_t)(ap_mono_ns() / 1000000));
        } else {
            ap_llm_encoder_error(g->enc, &lerr, &g->out);
            note_failure(g, &lerr);
            record(g, t, info, &g->usage, "error", lerr.kind);
        }
        flush_out(g);
        ap_req_stream_close(g->r);
        finish_call(g);
        return;
    }
    ap_llm_resp_t resp;
    memset(&resp, 0, sizeof resp);
    if (lerr.kind == AP_LLM_OK)
        ap_wire_parse_reply(g->a, info->wire, status, retry_after, body, len, &resp, &lerr);
    if (lerr.kind != AP_LLM_OK) {
        attempt_failed(g, &lerr);
        return;
    }
    if (!resp.model) resp.model = t->model;
    served_header(g);
    record(g, t, info, &resp.usage, "success", AP_LLM_OK);
    ap_breaker_report(g->app->breaker, info->catalog_id, true, (int64_t)(ap_mono_ns() / 1000000));
    ap_resp_json(g->r, 200, ap_wire_render_response(g->client, &resp));
    ap_req_async_answer(g->r);
    finish_call(g);
}

static void on_gone(void *ud) {
    gw_call_t *g = ud;
    pthread_mutex_lock(&g->mu);
    g->client_gone = true;
    if (g->job) ap_upstream_cancel(g->app->upstream, g->job);
    pthread_mutex_unlock(&g->mu);
}

/* The builtin model: computed here, answered at once. */
static void builtin_delta(void *ud, const ap_llm_delta_t *d) {
    on_delta(ud, d);
}

static bool run_builtin(gw_call_t *g) {
    ap_err_t err = {0};
    const ap_llm_target_info_t *info = &g->route.info[g->attempt];
    served_header(g);
    if (g->req.stream) {
        g->started = true;
        g->t_first = ap_mono_ns();
        if (ap_builtin_stream(g->a, &g->req, builtin_delta, g, &err)) return false;
        ap_llm_encoder_finish(g->enc, &g->usage, &g->out);
        record(g, &g->route.targets[g->attempt], info, &g->usage, "success", AP_LLM_OK);
        char *s = ap_buf_steal(&g->out);
        size_t n = strlen(s);
        ap_resp_raw(g->r, 200, "text/event-stream", s, n);
        return true;
    }
    ap_llm_resp_t resp;
    memset(&resp, 0, sizeof resp);
    if (ap_builtin_complete(g->a, &g->req, &resp, &err)) return false;
    if (!resp.model) resp.model = g->route.targets[g->attempt].model;
    record(g, &g->route.targets[g->attempt], info, &resp.usage, "success", AP_LLM_OK);
    ap_resp_json(g->r, 200, ap_wire_render_response(g->client, &resp));
    return true;
}

static void start_attempt(gw_call_t *g) {
    ap_llm_target_t *t = &g->route.targets[g->attempt];
    if (g->route.info[g->attempt].builtin) { /* a fallback to the local model */
        if (!run_builtin(g))
            answer_error(g->r, g->client, 500, "internal_error", "the builtin model failed");
        ap_req_async_answer(g->r);
        finish_call(g);
        return;
    }
    if (!ap_breaker_allow(g->app->breaker, g->route.info[g->attempt].catalog_id,
                          (int64_t)(ap_mono_ns() / 1000000))) {
        /* the provider model failed repeatedly: do not wait on it */
        ap_llm_error_t lerr = {.kind = AP_LLM_OVERLOADED};
        snprintf(lerr.message, sizeof lerr.message, "circuit open");
        attempt_failed(g, &lerr);
        return;
    }
    ap_err_t err = {0};
    ap_http_call_t call;
    g->req.model = t->model;
    if (ap_wire_build_call(g->a, g->route.info[g->attempt].wire, &g->req, t, &call, &err)) {
        ap_llm_error_t lerr = {.kind = AP_LLM_BAD_REQUEST};
        snprintf(lerr.message, sizeof lerr.message, "%.100s: %.380s", err.msg, err.detail);
        attempt_failed(g, &lerr);
        return;
    }
    for (int i = 0; i < g->nfwd && call.nheaders < AP_WIRE_MAX_HEADERS; i++)
        call.headers[call.nheaders++] = g->fwd[i];
    if (g->req.stream) g->dec = ap_llm_decoder_new(g->a, g->route.info[g->attempt].wire);
    ap_upstream_cb_t cb = {.on_data = g->req.stream ? on_data : NULL, .on_done = on_done, .ud = g};
    ap_upstream_limits_t lim = {.timeout_ms = 600000, .first_byte_ms = 120000,
                                .delay_ms = g->delay_ms};
    g->delay_ms = 0;
    pthread_mutex_lock(&g->mu);
    ap_upstream_submit(g->app->upstream, &call, &lim, &cb, &g->job, &err);
    pthread_mutex_unlock(&g->mu);
}

static void chat(ap_req_t *r, ap_wire_kind client) {
    ap_err_t err = {0};
    json_error_t jerr;
    json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        char msg[300];
        snprintf(msg, sizeof msg, "request body must be a JSON object: %s",
                 body ? "got another JSON value" : jerr.text);
        json_decref(body);
        answer_error(r, client, 400, "invalid_request_error", msg);
        return;
    }
    ap_llm_req_t req;
    memset(&req, 0, sizeof req);
    ap_rc rc = ap_wire_parse_request(r->arena, client, body, &req, &err);
    bool include_usage = false;
    json_t *so = json_object_get(body, "stream_options");
    if (json_is_object(so)) include_usage = json_is_true(json_object_get(so, "include_usage"));
    ap_llm_json_keep(r->arena, body);
    json_decref(body);
    if (rc) {
        answer_err(r, client, 400, "invalid_request_error", &err);
        return;
    }
    gw_call_t *g = ap_arena_calloc(r->arena, sizeof *g);
    g->r = r;
    g->app = r->app;
    g->a = r->arena;
    g->client = client;
    g->req = req;
    g->include_usage = include_usage;
    g->t0 = ap_mono_ns();
    g->nfwd = ap_req_forward_headers(r, getenv("AP_FORWARD_HEADERS"), g->fwd, 8);
    ap_buf_init(&g->explain, 4096);
    ap_buf_init(&g->out, 0);
    pthread_mutex_init(&g->mu, NULL);
    if (ap_llm_route(r->app->db, r->arena, r->principal->tenant_id, r->app->master_key, &req,
                     &g->route, &err)) {
        gw_locals_free(g);
        answer_err(r, client, ap_rc_status(err.rc, err.type),
                   err.rc == AP_ERR_NOT_FOUND ? "model_not_found" : err.type, &err);
        return;
    }
    /* the configuration's defaults, where the request has none */
    if (!req.has_temperature && g->route.has_temperature) {
        req.has_temperature = true;
        req.temperature = g->route.temperature;
    }
    if (req.max_tokens <= 0 && g->route.max_tokens > 0) req.max_tokens = g->route.max_tokens;
    g->req = req;
    if (!within_budget(r, client, &g->route, prompt_chars(&req), req.max_tokens)) {
        gw_locals_free(g);
        return;
    }
    char id[64];
    snprintf(id, sizeof id, "%s%s", client == AP_WIRE_ANTHROPIC ? "msg_" : "chatcmpl-",
             r->request_id);
    if (req.stream)
        g->enc = ap_llm_encoder_new(r->arena, client, id, req.model, include_usage);
    if (g->route.info[0].builtin) {
        bool ok = run_builtin(g);
        if (!ok) answer_error(r, client, 500, "internal_error", "the builtin model failed");
        gw_locals_free(g);
        return;
    }
    ap_req_async_begin(r, on_gone, g);
    start_attempt(g);
}

void ap_h_gw_chat(ap_req_t *r) {
    chat(r, AP_WIRE_OPENAI);
}

void ap_h_gw_messages(ap_req_t *r) {
    chat(r, AP_WIRE_ANTHROPIC);
}

/* --- embeddings --- */

typedef struct {
    ap_req_t *r;
    struct ap_app *app;
    ap_llm_embed_req_t req;
    ap_llm_route_t route;
    uint64_t t0;
} gw_embed_t;

static void embed_record(gw_embed_t *g, const ap_llm_usage_t *u, const char *outcome,
                         ap_llm_errkind kind) {
    ap_usage_rec_t rec;
    memset(&rec, 0, sizeof rec);
    ap_principal_t *p = g->r->principal;
    const ap_llm_target_info_t *info = &g->route.info[0];
    snprintf(rec.tenant_id, sizeof rec.tenant_id, "%s", p->tenant_id);
    snprintf(rec.key_id, sizeof rec.key_id, "%s", p->key_id);
    snprintf(rec.provider, sizeof rec.provider, "%s", info->provider);
    snprintf(rec.model, sizeof rec.model, "%s", g->route.targets[0].model);
    rec.tokens = *u;
    rec.priced = info->priced;
    rec.cost_usd = info->priced ? ap_usage_cost(u, info->in_per_mtok, info->out_per_mtok) : 0;
    rec.latency_ms = (double)(ap_mono_ns() - g->t0) / 1e6;
    rec.ttft_ms = -1;
    snprintf(rec.outcome, sizeof rec.outcome, "%s", outcome);
    if (kind != AP_LLM_OK) snprintf(rec.error_kind, sizeof rec.error_kind, "%s", ap_llm_errkind_name(kind));
    snprintf(rec.route, sizeof rec.route, "served by %s (%s)", info->catalog_id, g->route.reason);
    snprintf(rec.request_id, sizeof rec.request_id, "%s", g->r->request_id);
    ap_usage_record(g->app->usage, &rec);
}

static void embed_done(void *ud, int status, const char *retry_after, const char *body,
                       size_t len, const ap_llm_error_t *lerr_in) {
    gw_embed_t *g = ud;
    ap_llm_error_t lerr = *lerr_in;
    ap_llm_embed_resp_t resp;
    memset(&resp, 0, sizeof resp);
    if (lerr.kind == AP_LLM_OK)
        ap_wire_parse_embed_reply(g->r->arena, g->route.info[0].wire, status, retry_after, body,
                                  len, &resp, &lerr);
    if (lerr.kind != AP_LLM_OK) {
        ap_llm_usage_t none = {0};
        embed_record(g, &none, "error", lerr.kind);
        char msg[700];
        snprintf(msg, sizeof msg, "%s: %s", ap_llm_errkind_name(lerr.kind), lerr.message);
        answer_error(g->r, AP_WIRE_OPENAI, ap_wire_error_status(lerr.kind),
                     ap_llm_errkind_name(lerr.kind), msg);
    } else {
        resp.model = g->route.info[0].catalog_id;
        resp.base64 = g->req.base64;
        embed_record(g, &resp.usage, "success", AP_LLM_OK);
        ap_resp_json(g->r, 200, ap_wire_render_embed_response(&resp));
    }
    ap_req_async_answer(g->r);
    ap_req_async_release(g->r);
}

void ap_h_gw_embeddings(ap_req_t *r) {
    ap_err_t err = {0};
    json_error_t jerr;
    json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    gw_embed_t *g = ap_arena_calloc(r->arena, sizeof *g);
    g->r = r;
    g->app = r->app;
    g->t0 = ap_mono_ns();
    ap_rc rc = body && json_is_object(body)
                   ? ap_wire_parse_embed_request(r->arena, body, &g->req, &err)
                   : ap_err_set(&err, AP_ERR_INVALID, NULL, "request body must be a JSON object",
                                NULL, "%s", body ? "got another JSON value" : jerr.text);
    if (body) {
        ap_llm_json_keep(r->arena, body);
        json_decref(body);
    }
    if (!rc) rc = ap_llm_route_embed(r->app->db, r->arena, r->principal->tenant_id, g->req.model,
                                     &g->route, &err);
    if (rc) {
        answer_err(r, AP_WIRE_OPENAI, ap_rc_status(err.rc, err.type),
                   err.rc == AP_ERR_NOT_FOUND ? "model_not_found" : "invalid_request_error", &err);
        return;
    }
    int64_t chars = 0;
    for (int i = 0; i < g->req.ninputs; i++) chars += (int64_t)strlen(g->req.inputs[i]);
    if (!within_budget(r, AP_WIRE_OPENAI, &g->route, chars, 1)) return;
    if (g->route.info[0].builtin) {
        int dim = g->req.dimensions > 0 ? g->req.dimensions : AP_EMBED_DIM_DEFAULT;
        if (dim < AP_EMBED_DIM_MIN || dim > AP_EMBED_DIM_MAX) {
            char msg[200];
            snprintf(msg, sizeof msg, "dimensions must be between %d and %d", AP_EMBED_DIM_MIN,
                     AP_EMBED_DIM_MAX);
            answer_error(r, AP_WIRE_OPENAI, 400, "invalid_request_error", msg);
            return;
        }
        ap_llm_embed_resp_t resp = {.nvectors = g->req.ninputs, .dim = dim};
        resp.vectors = ap_arena_alloc(r->arena, sizeof(float *) * (size_t)(g->req.ninputs + 1));
        for (int i = 0; i < g->req.ninputs; i++) {
            resp.vectors[i] = ap_arena_alloc(r->arena, sizeof(float) * (size_t)dim);
            size_t n = strlen(g->req.inputs[i]);
            ap_embed_hash(g->req.inputs[i], n, resp.vectors[i], dim);
            resp.usage.prompt += (int64_t)((n + 3) / 4);
        }
        resp.model = g->route.info[0].catalog_id;
        resp.base64 = g->req.base64;
        embed_record(g, &resp.usage, "success", AP_LLM_OK);
        ap_resp_json(r, 200, ap_wire_render_embed_response(&resp));
        return;
    }
    ap_http_call_t call;
    g->req.model = g->route.targets[0].model;
    const char *fwd[8];
    int nfwd = ap_req_forward_headers(r, getenv("AP_FORWARD_HEADERS"), fwd, 8);
    if (ap_wire_build_embed_call(r->arena, g->route.info[0].wire, &g->req, &g->route.targets[0],
                                 &call, &err)) {
        answer_error(r, AP_WIRE_OPENAI, 400, "invalid_request_error", err.detail);
        return;
    }
    for (int i = 0; i < nfwd && call.nheaders < AP_WIRE_MAX_HEADERS; i++)
        call.headers[call.nheaders++] = fwd[i];
    ap_req_async_begin(r, NULL, NULL);
    ap_upstream_cb_t cb = {.on_done = embed_done, .ud = g};
    ap_upstream_limits_t lim = {.timeout_ms = 120000};
    ap_upstream_submit(r->app->upstream, &call, &lim, &cb, NULL, &err);
}

/* --- models --- */

void ap_h_gw_models(ap_req_t *r) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *data = json_array();
    ap_rc rc = ap_db_begin(r->app->db, r->principal->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    const char *after = NULL;
    while (!rc) {
        ap_catalog_filter_t f = {.after = after, .limit = 500};
        json_t *page = NULL;
        const char *next = NULL;
        rc = ap_catalog_model_list(tx, r->principal->tenant_id, &f, &page, &next, &err);
        if (rc) break;
        size_t i;
        json_t *m;
        json_array_foreach(page, i, m) {
            const char *id = json_string_value(json_object_get(m, "id"));
            const char *owner = json_string_value(json_object_get(m, "provider_id"));
            json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s}", "id", id ? id : "",
                                                  "object", "model", "created", 0, "owned_by",
                                                  owner ? owner : "agentprov"));
        }
        json_decref(page);
        if (!next) break;
        after = next;
    }
    if (rc) {
        json_decref(data);
        answer_error(r, AP_WIRE_OPENAI, 500, "internal_error", "cannot list models");
        return;
    }
    ap_resp_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}
