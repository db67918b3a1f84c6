/*
 * gateway.c - the OpenAI- and Anthropic-compatible LLM gateway:
 * POST /v1/chat/completions, POST /v1/messages, POST /v1/embeddings,
 * GET /v1/models.
 *
 * 1. A thin HTTP adapter over llm/call.h: a call is parsed from the
 *    client's protocol into the internal representation and handed to
 *    ap_llm_call_start, which routes it, checks budgets, and runs the
 *    attempts (retries, breaker, fallbacks) on the upstream loop of the
 *    server worker serving the client, on the same thread; the client
 *    connection sleeps meanwhile (no thread is held).  What stays here is
 *    HTTP: suspend/resume, SSE framing in the client's protocol, the
 *    X-AgentProv-Route header, Retry-After, and wire-shaped errors.
 * 2. A stream's head (status 200, the route header) goes out when the
 *    serving target's first byte arrives (on_open); an error after that is
 *    an error event in the stream, never a replay.
 * 3. The builtin model and budget refusals answer inline, before
 *    ap_llm_call_start returns; the async answer path covers both.
 * 4. Errors reach clients in their own protocol's error shape, so the
 *    official SDKs raise their own error types.  Over budget is a 429
 *    naming the budget, with Retry-After until it resets.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/jload.h"
#include "core/time.h"
#include "http/server.h"
#include "llm/call.h"
#include "llm/router.h"
#include "llm/upstream.h"
#include "llm/usage.h"
#include "llm/wire.h"
#include "llm/catalog.h"
#include "llm/embed.h"

typedef struct {
    ap_req_t *r;
    ap_wire_kind client;
    ap_llm_encoder_t *enc; /* streams */
    ap_buf_t out;          /* stream bytes not yet written */
    bool started;          /* the stream head went to the client */
    /* the running call, for cancellation when the client goes */
    pthread_mutex_t mu;
    ap_llm_call_t *call;
} gw_call_t;

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

/* A call that could not be started (route, budget store). */
static void answer_start_err(ap_req_t *r, ap_wire_kind client, const ap_err_t *err) {
    answer_err(r, client, ap_rc_status(err->rc, err->type),
               err->rc == AP_ERR_NOT_FOUND ? "model_not_found" : err->type, err);
}

/* A call that ended in an error before anything reached the client: the
 * client protocol's error shape; Retry-After for rate limits and budgets. */
static void answer_llm_error(ap_req_t *r, ap_wire_kind client, const ap_llm_error_t *lerr) {
    bool budget = lerr->kind == AP_LLM_BUDGET_EXCEEDED;
    if ((budget || lerr->kind == AP_LLM_RATE_LIMITED) && lerr->retry_after_ms > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)((lerr->retry_after_ms + 999) / 1000));
        ap_resp_header(r, "Retry-After", ra);
    }
    char msg[700];
    if (budget) snprintf(msg, sizeof msg, "%s", lerr->message);
    else snprintf(msg, sizeof msg, "%s: %s", ap_llm_errkind_name(lerr->kind), lerr->message);
    answer_error(r, client, ap_wire_error_status(lerr->kind), ap_llm_errkind_name(lerr->kind),
                 msg);
}

static void gw_cleanup(void *arg) {
    gw_call_t *g = arg;
    ap_buf_free(&g->out);
    pthread_mutex_destroy(&g->mu);
}

static void flush_out(gw_call_t *g) {
    if (!g->out.len) return;
    ap_req_stream_write(g->r, g->out.p, g->out.len); /* a gone client: on_gone cancels */
    ap_buf_reset(&g->out);
}

static void gw_open(void *ud, const char *explain) {
    gw_call_t *g = ud;
    g->started = true;
    ap_resp_header(g->r, "X-AgentProv-Route", explain);
    ap_req_stream_open(g->r, 200, "text/event-stream");
}

static void gw_delta(void *ud, const ap_llm_delta_t *d) {
    gw_call_t *g = ud;
    ap_llm_encoder_delta(g->enc, d, &g->out);
    flush_out(g);
}

static void gw_done(void *ud, const ap_llm_resp_t *resp, const ap_llm_error_t *lerr,
                    const char *explain) {
    gw_call_t *g = ud;
    ap_req_t *r = g->r;
    if (g->started) { /* a stream: end it, with an error event if it failed */
        if (lerr) ap_llm_encoder_error(g->enc, lerr, &g->out);
        else ap_llm_encoder_finish(g->enc, &resp->usage, &g->out);
        flush_out(g);
        ap_req_stream_close(r);
    } else {
        if (explain && *explain) ap_resp_header(r, "X-AgentProv-Route", explain);
        if (lerr) answer_llm_error(r, g->client, lerr);
        else {
            size_t len;
            char *s = ap_wire_render_response_text(g->client, resp, &len);
            ap_resp_raw(r, 200, "application/json", s, len);
        }
        ap_req_async_answer(r);
    }
    ap_req_async_release(r); /* may free r and its arena (and g with it) */
}

static void on_gone(void *ud) {
    gw_call_t *g = ud;
    pthread_mutex_lock(&g->mu);
    ap_llm_call_cancel(g->call);
    pthread_mutex_unlock(&g->mu);
}

/* The worker's own upstream: the call runs on this request's thread from
 * start to answer (http/server.h, decision 4). */
static struct ap_upstream *gw_upstream(ap_req_t *r) {
    return r->upstream ? r->upstream : r->app->upstream;
}

static ap_llm_call_env_t call_env(ap_req_t *r) {
    return (ap_llm_call_env_t){.db = r->app->db,
                               .upstream = gw_upstream(r),
                               .usage = r->app->usage,
                               .breaker = r->app->breaker,
                               .master_key = r->app->master_key,
                               .cache = r->app->llm_cache};
}

static void chat(ap_req_t *r, ap_wire_kind client) {
    ap_err_t err = {0};
    json_error_t jerr;
    json_t *body = ap_jload(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
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
    g->client = client;
    ap_buf_init(&g->out, 0);
    pthread_mutex_init(&g->mu, NULL);
    ap_arena_cleanup(r->arena, gw_cleanup, g);
    if (req.stream) {
        char id[64];
        snprintf(id, sizeof id, "%s%s", client == AP_WIRE_ANTHROPIC ? "msg_" : "chatcmpl-",
                 r->request_id);
        g->enc = ap_llm_encoder_new(r->arena, client, id, req.model, include_usage);
    }
    ap_llm_call_opts_t opts = {.arena = r->arena,
                               .tenant_id = r->principal->tenant_id,
                               .actor = &r->actor,
                               .key_id = r->principal->key_id,
                               .request_id = r->request_id};
    opts.nheaders = ap_req_forward_headers(r, getenv("AP_FORWARD_HEADERS"), opts.headers,
                                           AP_LLM_CALL_MAX_HEADERS);
    ap_llm_call_env_t env = call_env(r);
    ap_llm_call_cb_t cb = {.on_open = gw_open, .on_delta = gw_delta, .on_done = gw_done, .ud = g};
    /* the answer may come before start returns (builtin model, budget) */
    ap_req_async_begin(r, on_gone, g);
    pthread_mutex_lock(&g->mu);
    rc = ap_llm_call_start(&env, &opts, &req, &cb, &g->call, &err);
    pthread_mutex_unlock(&g->mu);
    if (rc) {
        answer_start_err(r, client, &err);
        ap_req_async_answer(r);
        ap_req_async_release(r);
    }
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
    json_t *body = ap_jload(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
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
    ap_llm_error_t lerr;
    if (ap_llm_call_budget(r->app->llm_cache, r->app->db, r->arena, r->principal->tenant_id,
                           &r->actor, &g->route, chars, 1, &lerr, &err)) {
        answer_start_err(r, AP_WIRE_OPENAI, &err);
        return;
    }
    if (lerr.kind != AP_LLM_OK) {
        answer_llm_error(r, AP_WIRE_OPENAI, &lerr);
        return;
    }
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
    ap_upstream_submit(gw_upstream(r), &call, &lim, &cb, NULL, &err);
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
