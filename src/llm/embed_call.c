/*
 * embed_call.c - the synchronous embedding call (embed_call.h).
 *
 * 1. A provider call is submitted to the upstream loop and this thread
 *    waits on a condition variable until on_done fires (it always does,
 *    also on shutdown), with the reply parsed by the same wire codec the
 *    gateway uses.
 */
#include "llm/embed_call.h"

#include <pthread.h>
#include <string.h>

#include "llm/embed.h"
#include "llm/router.h"
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

ap_rc ap_llm_embed_sync(ap_db_t *db, struct ap_upstream *upstream, ap_arena_t *a,
                        const char *tenant_id, const char *model, const char *const *texts,
                        int n, int dim, ap_llm_embed_result_t *out, ap_err_t *err) {
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
    if (!rc) {
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
    if (rc) return rc;
    if (w.resp.nvectors != n || w.resp.dim <= 0)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "upstream-error", "bad embedding reply",
                          "check the model is an embedding model",
                          "model \"%s\" returned %d vectors for %d inputs",
                          route.info[0].catalog_id, w.resp.nvectors, n);
    out->vectors = w.resp.vectors;
    out->dim = w.resp.dim;
    out->model = route.info[0].catalog_id;
    return AP_OK;
}
