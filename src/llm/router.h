/*
 * router.h - from a request's `model` to an ordered list of targets.
 *
 * 1. `model` may be a catalog id ("openai/gpt-4o-mini"), a bare model id
 *    when it is unambiguous, or "auto" (the platform default, AP_DEFAULT_MODEL,
 *    else the builtin model).
 * 2. Fallbacks come after the primary target: AP_FALLBACK_MODELS (comma
 *    separated catalog ids) for now; tenant LLM configurations add theirs.
 * 3. Provider credentials and endpoints: AP_PROVIDER_<ID>_API_KEY and
 *    AP_PROVIDER_<ID>_BASE_URL (ID upper-cased, '-' as '_'), else the
 *    catalog's base URL.  A provider that needs a key and has none is not
 *    routed to; the error says which variable to set.  Keys are never
 *    logged or returned.
 */
#ifndef AP_LLM_ROUTER_H
#define AP_LLM_ROUTER_H

#include <stdbool.h>

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
} ap_llm_target_info_t;

typedef struct {
    ap_llm_target_t targets[AP_LLM_MAX_TARGETS];
    ap_llm_target_info_t info[AP_LLM_MAX_TARGETS];
    int ntargets;
    const char *reason; /* why the first target: "requested", "auto: default model" … */
} ap_llm_route_t;

/* Resolves req->model for tenant_id (catalog reads in a tenant
 * transaction).  Not found → AP_ERR_NOT_FOUND naming the model. */
ap_rc ap_llm_route(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const ap_llm_req_t *req,
                   ap_llm_route_t *out, ap_err_t *err);

/* The same for an embedding model (a single target; "auto" picks
 * AP_DEFAULT_EMBEDDING_MODEL, else the builtin hashed embedder). */
ap_rc ap_llm_route_embed(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *model,
                         ap_llm_route_t *out, ap_err_t *err);

#endif
