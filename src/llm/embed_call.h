/*
 * embed_call.h - a synchronous embedding call for server-side callers
 * (agent memory), through the same router as the gateway's /v1/embeddings.
 *
 * 1. The model is routed for the tenant (llm/router.h ap_llm_route_embed):
 *    the builtin hashed embedder is computed in place; a provider model is
 *    one upstream call (llm/upstream.h) that this thread waits for.
 * 2. Never call it inside a database transaction: a provider call can take
 *    seconds.
 * 3. A provider call is metered like the gateway's: the tenant's budgets
 *    are checked before it (llm/call.h ap_llm_call_budget; over budget is
 *    AP_ERR_LIMIT, type "budget-exceeded", the detail naming the budget,
 *    and no upstream work is done), and one usage record (llm/usage.h)
 *    is written per call, success or error, with the agent and task of
 *    the meter.  The builtin hashed embedder costs nothing, is computed
 *    in place and is neither checked nor recorded.
 * 4. Thread-safe; results live in the caller's arena.
 */
#ifndef AP_LLM_EMBED_CALL_H
#define AP_LLM_EMBED_CALL_H

#include "audit/audit.h"
#include "core/arena.h"
#include "core/err.h"
#include "store/db.h"

struct ap_upstream;
struct ap_usage_writer;
struct ap_llm_cache;

/* Who pays for a provider call, and where it is recorded.  Strings are
 * copied (ids longer than 36 characters are left out). */
typedef struct {
    struct ap_usage_writer *usage; /* NULL: not recorded (tests, CLI) */
    struct ap_llm_cache *cache;    /* budget totals (llm/cache.h), or NULL */
    const ap_actor_t *actor;       /* budget audit entries, request id; NULL: system "llm" */
    const char *agent_id;          /* NULL or "" when none */
    const char *task_id;           /* NULL or "" when none */
} ap_llm_embed_meter_t;

typedef struct {
    float **vectors;       /* n vectors of dim floats, arena memory */
    int dim;
    const char *model;     /* the catalog id that answered */
} ap_llm_embed_result_t;

/* upstream may be NULL: then only the builtin model can answer (a
 * provider model is AP_ERR_UNAVAILABLE).  dim 0 takes the model default.
 * meter may be NULL: no budget check, no usage record (tests). */
ap_rc ap_llm_embed_sync(ap_db_t *db, struct ap_upstream *upstream, const ap_llm_embed_meter_t *meter,
                        ap_arena_t *a, const char *tenant_id, const char *model,
                        const char *const *texts, int n, int dim, ap_llm_embed_result_t *out,
                        ap_err_t *err);

#endif
