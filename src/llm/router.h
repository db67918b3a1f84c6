/*
 * router.h - from a request's `model` to an ordered list of targets.
 *
 * 1. `model` may be a catalog id ("openai/gpt-4o-mini"), a bare model id
 *    when it is unambiguous, the name of one of the tenant's LLM
 *    configurations (llm/config.h; a name without '/' is looked up as a
 *    configuration first), or "auto": the tenant's default configuration
 *    if it has one with a primary model, else the platform default
 *    (AP_DEFAULT_MODEL, else the builtin model).
 * 2. Fallbacks come after the primary target: the configuration's
 *    fallback_model, then AP_FALLBACK_MODELS (comma separated catalog ids).
 *    The configuration's temperature and max_tokens are returned for the
 *    caller to apply when the request has none.
 * 3. Provider credentials and endpoints: the tenant's BYOK key (llm/config.h)
 *    when its configuration has one and use_platform_key is false, else
 *    AP_PROVIDER_<ID>_API_KEY and
 *    AP_PROVIDER_<ID>_BASE_URL (ID upper-cased, '-' as '_'), else the
 *    catalog's base URL.  A provider that needs a key and has none is not
 *    routed to; the error says which variable to set.  Keys are never
 *    logged or returned.
 */
#ifndef AP_LLM_ROUTER_H
#define AP_LLM_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "llm/types.h"
#include "llm/wire.h"
#include "store/db.h"

#define AP_LLM_MAX_TARGETS 6

typedef struct {
    const char *catalog_id; /* "openai/gpt-4o-mini" */
    const char *provider;   /* "openai" */
    ap_wire_kind wire;
    bool builtin;
    bool priced;
    double in_per_mtok, out_per_mtok;
    int64_t max_output; /* the model's output limit, 0 when unknown */
} ap_llm_target_info_t;

typedef struct {
    ap_llm_target_t targets[AP_LLM_MAX_TARGETS];
    ap_llm_target_info_t info[AP_LLM_MAX_TARGETS];
    int ntargets;
    const char *reason; /* why the first target: "requested", "auto: default model" … */
    /* from the configuration used (has_temperature false / max_tokens 0: none) */
    bool has_temperature;
    double temperature;
    int max_tokens;
    /* the tenant's USD budgets (its default configuration's); < 0: none */
    double budget_daily_usd, budget_monthly_usd;
    /* the route depends only on (tenant, model name): no policy, no
     * routing rules, no tenant key (ap_llm_route_cached may keep it) */
    bool cacheable;
} ap_llm_route_t;

/* Who asks, for routing rules (all may be NULL). */
typedef struct {
    const char *agent_id;
    const char *task_type;
    json_t *metadata; /* request metadata object (borrowed) */
} ap_llm_route_ctx_t;

/* Resolves req->model for tenant_id (catalog reads in a tenant
 * transaction).  Not found → AP_ERR_NOT_FOUND naming the model.
 * master_key (32 bytes, or NULL) opens the tenant's BYOK key; an
 * unreadable key is AP_ERR_UNAVAILABLE (never a silent platform key). */
ap_rc ap_llm_route(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const uint8_t *master_key,
                   const ap_llm_req_t *req, const ap_llm_route_ctx_t *ctx, ap_llm_route_t *out,
                   ap_err_t *err);

struct ap_llm_cache;

/* ap_llm_route through the cache (llm/cache.h; NULL: none).  Routes whose
 * outcome depends on the request (policies, rules, request metadata
 * routing keys, tenant keys) are never cached. */
ap_rc ap_llm_route_cached(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                          const char *tenant_id, const uint8_t *master_key,
                          const ap_llm_req_t *req, const ap_llm_route_ctx_t *ctx,
                          ap_llm_route_t *out, ap_err_t *err);

/* The same for an embedding model (a single target; "auto" picks
 * AP_DEFAULT_EMBEDDING_MODEL, else the builtin hashed embedder). */
ap_rc ap_llm_route_embed(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *model,
                         ap_llm_route_t *out, ap_err_t *err);

#endif
