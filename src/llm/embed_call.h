/*
 * embed_call.h - a synchronous embedding call for server-side callers
 * (agent memory), through the same router as the gateway's /v1/embeddings.
 *
 * 1. The model is routed for the tenant (llm/router.h ap_llm_route_embed):
 *    the builtin hashed embedder is computed in place; a provider model is
 *    one upstream call (llm/upstream.h) that this thread waits for.
 * 2. Never call it inside a database transaction: a provider call can take
 *    seconds.  Usage of provider calls is not metered yet.
 * 3. Thread-safe; results live in the caller's arena.
 */
#ifndef AP_LLM_EMBED_CALL_H
#define AP_LLM_EMBED_CALL_H

#include "core/arena.h"
#include "core/err.h"
#include "store/db.h"

struct ap_upstream;

typedef struct {
    float **vectors;       /* n vectors of dim floats, arena memory */
    int dim;
    const char *model;     /* the catalog id that answered */
} ap_llm_embed_result_t;

/* upstream may be NULL: then only the builtin model can answer (a
 * provider model is AP_ERR_UNAVAILABLE).  dim 0 takes the model default. */
ap_rc ap_llm_embed_sync(ap_db_t *db, struct ap_upstream *upstream, ap_arena_t *a,
                        const char *tenant_id, const char *model, const char *const *texts,
                        int n, int dim, ap_llm_embed_result_t *out, ap_err_t *err);

#endif
