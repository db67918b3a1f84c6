/*
 * config.h - tenants' LLM configurations (table llm_configs): named
 * defaults for the gateway — primary and fallback model, temperature,
 * max_tokens, routing rules, USD budgets.
 *
 * 1. A name is unique in its tenant and has no '/', so a request's `model`
 *    can name a configuration ("support-bot") without clashing with a
 *    catalog id; "auto" is not a valid name.
 * 2. At most one configuration per tenant is the tenant default
 *    (is_tenant_default): `model: "auto"` uses it, and its budgets are the
 *    tenant's USD budgets (spending is summed per tenant).  Making one the
 *    default clears the flag on the others in the same transaction.
 * 3. primary_model and fallback_model must resolve in the catalog when the
 *    configuration is written (and are resolved again at each call).
 * 4. routing_rules are checked when written (llm/policy.h decision 5:
 *    [{"when": {...}, "model": "..." | "policy": "...", "quality_floor"}],
 *    at most 50) and applied by the router in order at each call.
 * 5. Every write is audited in the tenant's chain (llm.config.create,
 *    .update, .delete) with the fields given — a BYOK key only as
 *    "api_key_set".
 * 6. BYOK: "byok": {"provider", "api_key"} seals the key (core/secret.h)
 *    under its own data key wrapped by the master key; null removes it.
 *    Responses show the provider, api_key_set and the last 4 characters,
 *    never the key.  master may be NULL when no key is given.
 */
#ifndef AP_LLM_CONFIG_H
#define AP_LLM_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/json.h"
#include "core/secret.h"
#include "store/db.h"

#define AP_LLM_CONFIG_MAX 100 /* per tenant */

extern const ap_jfield_t ap_llm_config_create_fields[];
extern const ap_jfield_t ap_llm_config_update_fields[];

/* All: tx is a write (or, for list/get, read) transaction for tenant_id;
 * *out is a new reference. */
ap_rc ap_llm_config_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_llm_config_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err);
ap_rc ap_llm_config_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err);
ap_rc ap_llm_config_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, const char *id, json_t *in, json_t **out,
                           ap_err_t *err);
ap_rc ap_llm_config_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err);

/* What the router needs of a configuration (tx-arena strings). */
typedef struct {
    bool found;
    const char *name;
    const char *primary_model, *fallback_model; /* or NULL */
    const char *routing_rules;                  /* JSON array text, or NULL */
    bool has_temperature;
    double temperature;
    int max_tokens;                  /* 0: none */
    double budget_daily, budget_monthly; /* < 0: none */
    bool use_platform_key;
    const char *byok_provider; /* NULL: no tenant key */
    ap_sealed_t byok;          /* the sealed key (open with ap_secret_open) */
} ap_llm_config_t;

/* One read: the configuration called `name` (NULL: none asked) into
 * *named, and the tenant default into *dflt. */
ap_rc ap_llm_config_lookup(ap_tx_t *tx, const char *tenant_id, const char *name,
                           ap_llm_config_t *named, ap_llm_config_t *dflt, ap_err_t *err);

#endif
