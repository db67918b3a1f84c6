/*
 * embed_call.c - the synchronous embedding call (embed_call.h).
 *
 * 1. A provider call is submitted to the upstream loop and this thread
 *    waits on a condition variable until on_done fires (it always does,
 *    also on shutdown), with the reply parsed by the same wire codec the
 *    gateway uses.
 * 2. Metering (embed_call.h decision 3) follows the gateway's embeddings
 *    (api/gateway.c): the same estimate for the budget check (characters
 *    / 4 prompt tokens, 1 output token), the same record.  A provider that
 *    reports no prompt tokens is recorded at the estimate, so a token
 *    budget still sees the call.
 */
#include "llm/embed_call.h"

#include <pthread.h>
#include <string.h>

#include "core/time.h"
#include "llm/call.h"
#include "llm/embed.h"
#include "llm/router.h"
#include "llm/usage.h"
#include "llm/upstream.h"
#include "llm/wire.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    ap_arena_t *a;
    ap_wire_kind wire;
    ap_llm_embed_resp_t resp;
    ap_llm_error_t lerr;
    ap_rc rc;
} wait_t;

static void on_done(void *ud, int status, const char *retry_after, const char *body, size_t len,
                    const ap_llm_error_t *lerr) {
    wait_t *w = ud;
    pthread_mutex_lock(&w->mu);
    if (lerr && lerr->kind != AP_LLM_OK) {
        w->lerr = *lerr;
        w->rc = AP_ERR_UNAVAILABLE;
    } else {
        w->rc = ap_wire_parse_embed_reply(w->a, w->wire, status, retry_after, body, len, &w->resp,
                                          &w->lerr);
    }
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* s into dst[cap] when it fits whole (ids), else "". */
static void copy_id(char *dst, size_t cap, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n >= cap) n = 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

static void record(const ap_llm_embed_meter_t *meter, const char *tenant_id,
                   const ap_llm_route_t *route, const ap_llm_usage_t *u, uint64_t t0,
                   ap_llm_errkind kind) {
    if (!meter || !meter->usage) return;
    const ap_llm_target_info_t *info = &route->info[0];
    ap_usage_rec_t rec;
    memset(&rec, 0, sizeof rec);
    copy_id(rec.tenant_id, sizeof rec.tenant_id, tenant_id);
    copy_id(rec.agent_id, sizeof rec.agent_id, meter->agent_id);
    copy_id(rec.task_id, sizeof rec.task_id, meter->task_id);
    if (meter->actor) {
        if (meter->actor->type && !strcmp(meter->actor->type, "key"))
            copy_id(rec.key_id, sizeof rec.key_id, meter->actor->id);
        copy_id(rec.request_id, sizeof rec.request_id, meter->actor->request_id);
    }
    snprintf(rec.provider, sizeof rec.provider, "%s", info->provider ? info->provider : "");
    snprintf(rec.model, sizeof rec.model, "%s", route->targets[0].model);
    rec.tokens = *u;
    rec.priced = info->priced;
    rec.cost_usd = info->priced ? ap_usage_cost(u, info->in_per_mtok, info->out_per_mtok) : 0;
    rec.latency_ms = (double)(ap_mono_ns() - t0) / 1e6;
    rec.ttft_ms = -1;
    snprintf(rec.outcome, sizeof rec.outcome, "%s", kind == AP_LLM_OK ? "success" : "error");
    if (kind != AP_LLM_OK)
        snprintf(rec.error_kind, sizeof rec.error_kind, "%s", ap_llm_errkind_name(kind));
    snprintf(rec.route, sizeof rec.route, "memory embedding served by %s (%s)", info->catalog_id,
             route->reason ? route->reason : "");
    ap_usage_record(meter->usage, &rec);
}

ap_rc ap_llm_embed_sync(ap_db_t *db, struct ap_upstream *upstream, const ap_llm_embed_meter_t *meter,
                        ap_arena_t *a, const char *tenant_id, const char *model,
                        const char *const *texts, int n, int dim, ap_llm_embed_result_t *out,
                        ap_err_t *err) {
    ap_llm_route_t route;
    ap_rc rc = ap_llm_route_embed(db, a, tenant_id, model, &route, err);
    if (rc) return rc;
    if (route.info[0].builtin) {
        if (dim <= 0) dim = AP_EMBED_DIM_DEFAULT;
        if (dim < AP_EMBED_DIM_MIN || dim > AP_EMBED_DIM_MAX)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid dimensions",
                              "pick a dimension the builtin embedder supports",
                              "dimensions %d is outside %d..%d", dim, AP_EMBED_DIM_MIN,
                              AP_EMBED_DIM_MAX);
        out->vectors = ap_arena_alloc(a, sizeof(float *) * (size_t)(n + 1));
        for (int i = 0; i < n; i++) {
            out->vectors[i] = ap_arena_alloc(a, sizeof(float) * (size_t)dim);
            ap_embed_hash(texts[i], strlen(texts[i]), out->vectors[i], dim);
        }
        out->dim = dim;
        out->model = route.info[0].catalog_id;
        return AP_OK;
    }
    if (!upstream)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "unavailable", "no upstream",
                          "provider embeddings need the server's upstream loop",
                          "model \"%s\" needs a provider call", route.info[0].catalog_id);
    int64_t chars = 0;
    for (int i = 0; i < n; i++) chars += (int64_t)strlen(texts[i]);
    if (meter) {
        ap_llm_error_t berr;
        if ((rc = ap_llm_call_budget(meter->cache, db, a, tenant_id, meter->actor, &route, chars, 1,
                                     &berr, err)))
            return rc;
        if (berr.kind != AP_LLM_OK)
            return ap_err_set(err, AP_ERR_LIMIT, "budget-exceeded", "budget exceeded",
                              "raise the tenant's budget (llm config) or wait until it resets;"
                              " the builtin embedder needs no budget",
                              "embedding with model \"%s\" refused: %s", route.info[0].catalog_id,
                              berr.message);
    }
    uint64_t t0 = ap_mono_ns();
    ap_llm_embed_req_t req = {.model = route.targets[0].model,
                              .inputs = (const char **)texts,
                              .ninputs = n,
                              .dimensions = dim};
    ap_http_call_t call;
    if ((rc = ap_wire_build_embed_call(a, route.info[0].wire, &req, &route.targets[0], &call, err)))
        return rc;
    wait_t w = {.a = a, .wire = route.info[0].wire};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    ap_upstream_cb_t cb = {.on_done = on_done, .ud = &w};
    ap_upstream_limits_t lim = {.timeout_ms = 60000};
    rc = ap_upstream_submit(upstream, &call, &lim, &cb, NULL, err);
    if (rc) {
        ap_llm_usage_t none = {0};
        record(meter, tenant_id, &route, &none, t0, AP_LLM_UPSTREAM);
    } else {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        if (rc)
            ap_err_set(err, AP_ERR_UNAVAILABLE, "upstream-error", "embedding call failed",
                       "check the provider's key and the model id, or use the builtin embedder",
                       "model \"%s\": %s", route.info[0].catalog_id,
                       w.lerr.message[0] ? w.lerr.message : ap_llm_errkind_name(w.lerr.kind));
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (rc) {
        ap_llm_usage_t none = {0};
        if (w.done) record(meter, tenant_id, &route, &none, t0,
                           w.lerr.kind != AP_LLM_OK ? w.lerr.kind : AP_LLM_UPSTREAM);
        return rc;
    }
    bool bad = w.resp.nvectors != n || w.resp.dim <= 0;
    ap_llm_usage_t u = w.resp.usage;
    if (u.prompt <= 0) u.prompt = (chars + 3) / 4;
    record(meter, tenant_id, &route, &u, t0, bad ? AP_LLM_UPSTREAM : AP_LLM_OK);
    if (bad)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "upstream-error", "bad embedding reply",
                          "check the model is an embedding model",
                          "model \"%s\" returned %d vectors for %d inputs",
                          route.info[0].catalog_id, w.resp.nvectors, n);
    out->vectors = w.resp.vectors;
    out->dim = w.resp.dim;
    out->model = route.info[0].catalog_id;
    return AP_OK;
}
