/*
 * catalog.h - the LLM catalog: providers and models with context windows,
 * list prices, capabilities and tiers; tenants' private providers; and the
 * lookup the gateway uses to turn a model name into a provider call.
 *
 * 1. The catalog is data (tables llm_providers and llm_models, seeded by
 *    migration 0002 from the TSV files in data/).  Rows with tenant_id NULL are the
 *    platform catalog, seen by every tenant and changed only by a
 *    platform_admin (audited in the platform chain); rows with a tenant_id
 *    are that tenant's private OpenAI-compatible endpoint and its models
 *    (audited in the tenant's chain).  Every query names the tenant too,
 *    and on PostgreSQL row-level security enforces it.
 * 2. Prices are USD per million tokens.  NULL is "unpriced": unknown, never
 *    free.  ap_catalog_entry_t.priced says which; usage of an unpriced
 *    model must be recorded as unpriced, with no cost, never as 0.
 * 3. A model is named "provider/model" (its id; the model part may hold
 *    '/'), "<private provider name>/model" for a tenant's own endpoint, or
 *    by the bare provider model id when exactly one visible model has it.
 *    More than one is an "ambiguous-model" error listing the candidates.
 * 4. No API key is stored or echoed here: BYOK keys live elsewhere,
 *    encrypted.  A private provider's base_url may not carry credentials.
 * 5. Functions run inside the caller's transaction (ap_db_begin for the
 *    tenant, or NULL for platform administration); JSON results are new
 *    references, strings in ap_catalog_entry_t are tx-arena memory.
 *    Everything is reentrant; nothing is cached.
 */
#ifndef AP_LLM_CATALOG_H
#define AP_LLM_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

/* --- the tier rule (docs/llm-catalog.md; scripts/catalog-seed.sh) --- */

typedef struct {
    const char *speed_tier;    /* "fast" | "standard" | "slow" (static strings) */
    const char *quality_tier;  /* "best" | "good" | "basic" */
    const char *size_category; /* "tiny" | "small" | "medium" | "large" | "xl" */
    bool edge_optimized;
} ap_catalog_tiers_t;

/* Derives the tiers of a model from its provider id, model id, mode and
 * list prices (priced: both prices known).  Pure and thread-safe; gives
 * the same answer as the seed generator for every seeded row. */
void ap_catalog_derive(const char *provider_id, const char *model_id, const char *mode,
                       bool priced, double input_usd, double output_usd,
                       ap_catalog_tiers_t *out);
/* Parameter count in billions stated by the model id ("70b", "8x7b",
 * "1p5b"), or -1.  Exposed for tests. */
double ap_catalog_params_b(const char *model_id);

/* --- reading --- */

typedef struct {
    const char *provider;   /* provider id, or a private provider's name; NULL: any */
    const char *capability; /* comma list of tools, vision, reasoning, chat, embedding, edge */
    const char *tier;       /* comma list of best|good|basic, fast|standard|slow, tiny…xl */
    const char *max_price;  /* decimal USD/Mtok: input and output both at most this */
    bool include_inactive;  /* deactivated models and inactive providers too */
    const char *after;      /* cursor: ids greater than this; NULL: from the start */
    int limit;              /* 1..500 */
} ap_catalog_filter_t;

/* Providers visible to tenant_id (platform ones and its own), ordered by
 * id.  *next is the cursor of the next page or NULL (tx-arena memory). */
ap_rc ap_catalog_provider_list(ap_tx_t *tx, const char *tenant_id, bool include_inactive,
                               const char *after, int limit, json_t **out, const char **next,
                               ap_err_t *err);
/* Models visible to tenant_id, filtered, ordered by id.  A bad filter
 * value is AP_ERR_INVALID "invalid-parameter" naming it. */
ap_rc ap_catalog_model_list(ap_tx_t *tx, const char *tenant_id, const ap_catalog_filter_t *f,
                            json_t **out, const char **next, ap_err_t *err);
/* One model by any of the names of decision 3, active or not. */
ap_rc ap_catalog_model_get(ap_tx_t *tx, const char *tenant_id, const char *name, json_t **out,
                           ap_err_t *err);

/* What the gateway needs to call a model. */
typedef struct {
    const char *id;            /* "provider/model" */
    const char *provider_id;
    const char *provider_name;
    const char *wire_protocol; /* "openai" | "anthropic" | "gemini" | "builtin" */
    const char *base_url;      /* NULL for builtin */
    const char *model_id;      /* the provider's own name, sent upstream */
    const char *mode;          /* "chat" | "embedding" | … */
    const char *tenant_id;     /* owner of a private provider's model, else NULL */
    bool priced;               /* false: unpriced, bill nothing and mark the usage unpriced */
    double input_usd_per_mtok, output_usd_per_mtok; /* 0 when !priced */
    bool supports_tools, supports_vision, supports_reasoning;
    int64_t context_window;    /* 0 when unknown */
    int64_t max_output_tokens; /* 0 when unknown */
    ap_catalog_tiers_t tiers;
} ap_catalog_entry_t;

/* Resolves a model name (decision 3) among the active models of active
 * providers visible to tenant_id (NULL: platform models only).  Not found,
 * deactivated, or a provider speaking no protocol the gateway has:
 * AP_ERR_NOT_FOUND with a hint to GET /api/v1/llm/models; ambiguous:
 * AP_ERR_INVALID "ambiguous-model" listing the candidates. */
ap_rc ap_catalog_resolve(ap_tx_t *tx, const char *tenant_id, const char *model,
                         ap_catalog_entry_t *out, ap_err_t *err);

/* Every active chat model of an active provider visible to tenant_id
 * (platform ones and its own) that the gateway can call, ordered by id:
 * the candidates of the routing policies.  *out is tx-arena memory. */
ap_rc ap_catalog_chat_models(ap_tx_t *tx, const char *tenant_id, ap_catalog_entry_t **out,
                             int *n, ap_err_t *err);

/* --- platform administration (platform-scope tx; audited in the
 * platform chain, tenant AP_NIL_UUID) --- */

extern const ap_jfield_t ap_catalog_model_create_fields[];
extern const ap_jfield_t ap_catalog_model_update_fields[]; /* includes "id" */
extern const ap_jfield_t ap_catalog_model_ref_fields[];    /* {"id"} */

/* Adds a model to a platform provider.  Tiers left out are derived. */
ap_rc ap_catalog_model_create(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                              ap_err_t *err);
/* Changes the fields given of the platform model named by in.id (prices
 * may be set to null: unpriced).  Tiers not given are kept. */
ap_rc ap_catalog_model_update(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                              ap_err_t *err);
/* Deactivates a platform model: it stays listed for admins and in usage
 * history, and stops resolving.  Already inactive: AP_ERR_CONFLICT. */
ap_rc ap_catalog_model_deactivate(ap_tx_t *tx, const ap_actor_t *actor, const char *name,
                                  json_t **out, ap_err_t *err);

/* --- tenants' private providers (tenant tx; audited in its chain) --- */

#define AP_CATALOG_MAX_PRIVATE 50         /* private providers per tenant */
#define AP_CATALOG_MAX_PRIVATE_MODELS 200 /* models per private provider */

extern const ap_jfield_t ap_catalog_private_create_fields[];

/* Registers an OpenAI-compatible endpoint (name, base_url, optional
 * models) as a provider only tenant_id sees.  Its models are unpriced
 * unless prices are given. */
ap_rc ap_catalog_private_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_catalog_private_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                              json_t **out, const char **next, ap_err_t *err);
/* Removes a private provider and its models; another tenant's: not found. */
ap_rc ap_catalog_private_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                const char *provider_id, ap_err_t *err);

#endif
