/*
 * call.h - one model call, end to end, without HTTP: route resolution,
 * budget check, retries with jittered backoff (honouring Retry-After), the
 * circuit breaker, the fallback chain, and usage metering.  The gateway
 * (api/gateway.c) and the task runner (orch/) both drive models through it.
 *
 * API (summary)
 *
 *   ap_llm_call_env_t env = {db, upstream, usage, breaker, master_key, cache};
 *   ap_llm_call_opts_t opts = {.arena = a, .tenant_id = t, .agent_id = …,
 *                              .task_id = …, .task_type = …, .metadata = …};
 *   ap_llm_call_cb_t cb = {.on_open = …, .on_delta = …, .on_done = …, .ud = …};
 *   rc = ap_llm_call_start(&env, &opts, &req, &cb, &call, &err);
 *   ap_llm_call_cancel(call);            // any thread, until opts.arena is freed
 *   rc = ap_llm_call_sync(&env, &opts, &req, on_delta, ud, &resp, &lerr, &explain, &err);
 *
 * 1. ap_llm_call_start resolves the route and checks the tenant's budgets
 *    on the calling thread (database reads), then runs the attempts on
 *    env->upstream's loop (llm/upstream.h: the shared one, or for the
 *    gateway the loop of the server worker that calls).  It fails (rc, err; no callback ever runs) only
 *    when the call cannot be routed: unknown model, provider without key,
 *    store unavailable.  Every other outcome arrives through on_done,
 *    exactly once:
 *      - success: resp (arena memory; for a stream only model, usage and
 *        finish_reason are set, the content came through on_delta), err NULL;
 *      - failure: resp NULL, err->kind says why.  AP_LLM_BUDGET_EXCEEDED
 *        means no upstream work was done: err->budget names the budget,
 *        err->resets_at when it resets, err->retry_after_ms the wait, and
 *        err->message says it in words (limit, spent, estimate).
 *    explain (arena memory) is the explanation: "served by <catalog id>
 *    (<why the router chose it>)[; failed <id>: <kind>…]", or the failed
 *    attempts alone.  The same text goes into the usage record.
 * 2. Threads: on_open, on_delta and on_done run on the thread of
 *    env->upstream's loop for provider calls (one thread for the whole
 *    call, retries and fallbacks included), and inline on the caller's
 *    thread (before ap_llm_call_start returns) for the builtin model and a
 *    budget refusal.  Callbacks must not block.  After on_done, call.c never touches the
 *    call again: the caller may free opts.arena from inside on_done.
 * 3. Streams (req->stream): on_open(explain) runs once when the first byte
 *    of the serving target arrives — from then on the call is committed to
 *    that target.  A failure before it falls back freely; a stream that
 *    already sent tokens is never replayed: on_done reports the error.
 * 4. Retries: a retryable failure (rate limited, overloaded, timeout,
 *    upstream error) is retried on the same target up to AP_RETRY_MAX
 *    (default 2) times after AP_RETRY_BASE_MS (default 100) × 2^n ms with
 *    ±50 % jitter, or after the provider's Retry-After when it is at most
 *    5 s; then the next target of the route.  A target whose circuit is
 *    open is skipped at once.  Both variables are read once per process.
 *    A failure because the upstream shuts down (AP_UPSTREAM_SHUTDOWN) is
 *    final: no retry, no fallback, no breaker report.
 * 5. Usage: one record per attempt (llm/usage.h), with tenant, key,
 *    agent, task and request ids from opts; failed attempts as "error".
 * 6. Memory: the call lives in opts.arena (which must outlive on_done);
 *    resources outside it are released by arena cleanups.  req is copied
 *    (shallowly: its strings and JSON must live as long as the arena).
 */
#ifndef AP_LLM_CALL_H
#define AP_LLM_CALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/arena.h"
#include "core/err.h"
#include "llm/router.h"
#include "llm/types.h"
#include "store/db.h"

struct ap_upstream;
struct ap_usage_writer;
struct ap_breaker;
struct ap_llm_cache;

/* What a call needs of the process (all borrowed; long-lived). */
typedef struct {
    ap_db_t *db;
    struct ap_upstream *upstream;  /* NULL: only the builtin model can serve */
    struct ap_usage_writer *usage; /* NULL: not metered (tests) */
    struct ap_breaker *breaker;    /* NULL: no circuit breaking */
    const uint8_t *master_key;     /* 32 bytes opening BYOK keys, or NULL */
    struct ap_llm_cache *cache;    /* routes and budget totals (llm/cache.h), or NULL */
} ap_llm_call_env_t;

#define AP_LLM_CALL_MAX_HEADERS 8

/* Who calls, for routing, budgets and metering.  Strings are copied. */
typedef struct {
    ap_arena_t *arena;     /* required: holds the call, must outlive on_done */
    const char *tenant_id; /* required */
    const ap_actor_t *actor; /* budget threshold audit entries; NULL: system "llm" */
    const char *key_id;    /* API key of the caller, or NULL */
    const char *agent_id;  /* or NULL */
    const char *task_id;   /* or NULL */
    const char *task_type; /* routing rules; or NULL */
    const char *request_id; /* or NULL */
    json_t *metadata;      /* routing rules (borrowed); NULL: req->metadata */
    const char *headers[AP_LLM_CALL_MAX_HEADERS]; /* extra "Name: value" sent upstream */
    int nheaders;
} ap_llm_call_opts_t;

typedef struct {
    void (*on_open)(void *ud, const char *explain); /* streams; may be NULL */
    void (*on_delta)(void *ud, const ap_llm_delta_t *d); /* streams; may be NULL */
    void (*on_done)(void *ud, const ap_llm_resp_t *resp, const ap_llm_error_t *err,
                    const char *explain); /* required */
    void *ud;
} ap_llm_call_cb_t;

typedef struct ap_llm_call ap_llm_call_t;

/* Starts a call (decision 1).  *out (may be NULL) is set before any
 * callback can run.  Thread-safe; may run on env->upstream's own loop
 * thread (the gateway does: the attempt starts at once), but not inside
 * one of its callbacks. */
ap_rc ap_llm_call_start(const ap_llm_call_env_t *env, const ap_llm_call_opts_t *opts,
                        const ap_llm_req_t *req, const ap_llm_call_cb_t *cb,
                        ap_llm_call_t **out, ap_err_t *err);

/* Stops a call early (the caller is gone): no more retries or fallbacks;
 * the running upstream request is aborted and on_done still runs once.
 * Thread-safe; harmless after on_done as long as opts.arena lives. */
void ap_llm_call_cancel(ap_llm_call_t *c);

/* Blocking form for worker threads (CLI, tests, task runner threads):
 * runs ap_llm_call_start and waits for on_done.  On AP_OK *lerr says how
 * the call ended (kind AP_LLM_OK: *resp is set); *explain may be NULL.
 * Deltas of a stream go to on_delta (may be NULL) on the loop thread.
 * Never call it on the thread of env->upstream's loop (it would wait on
 * itself): a server worker uses the shared upstream for it. */
ap_rc ap_llm_call_sync(const ap_llm_call_env_t *env, const ap_llm_call_opts_t *opts,
                       const ap_llm_req_t *req, void (*on_delta)(void *ud, const ap_llm_delta_t *d),
                       void *ud, ap_llm_resp_t *resp, ap_llm_error_t *lerr, const char **explain,
                       ap_err_t *err);

/* The budget check alone, for calls that do not go through
 * ap_llm_call_start (embeddings): a call of about prompt_chars characters
 * and max_tokens output (0: the model's limit, else 1024) on the route's
 * first target.  AP_OK with lerr->kind AP_LLM_OK: within budget;
 * AP_LLM_BUDGET_EXCEEDED: refused (decision 1).  A store failure is
 * AP_ERR_UNAVAILABLE. */
ap_rc ap_llm_call_budget(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                         const char *tenant_id,
                         const ap_actor_t *actor, const ap_llm_route_t *route,
                         int64_t prompt_chars, int64_t max_tokens, ap_llm_error_t *lerr,
                         ap_err_t *err);

/* Characters of a request's prompt (text content, text parts, tool call
 * arguments): the basis of the estimates (characters / 4 tokens). */
int64_t ap_llm_prompt_chars(const ap_llm_req_t *req);

#endif
