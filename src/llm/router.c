/*
 * router.c - resolving a request's model to targets, with fallbacks.
 *
 * 1. Catalog reads happen in one read transaction for the tenant, so a
 *    tenant's private providers resolve and nobody else's do.
 * 2. Credentials: the tenant's own key (BYOK) for its provider when the
 *    configuration in use (else the tenant default) has one and
 *    use_platform_key is false — decrypted per call, in the request arena;
 *    else the process environment, read-only after start
 *    (AP_PROVIDER_<ID>_API_KEY / _BASE_URL; the base URL applies to BYOK
 *    calls too).  Local endpoints (127.0.0.1, localhost) need no key.
 * 3. The tenant's configurations are read in the same transaction, one
 *    query giving both the configuration named (if any) and the default
 *    (whose USD budgets the gateway checks).
 */
#include "llm/router.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/catalog.h"
#include "core/secret.h"
#include "llm/config.h"

/* "AP_PROVIDER_<ID>_<WHAT>": the id upper-cased, other characters as '_'. */
static void provider_var(char *name, size_t cap, const char *provider, const char *what) {
    size_t n = (size_t)snprintf(name, cap, "AP_PROVIDER_");
    for (const char *p = provider; *p && n + 1 < cap; p++)
        name[n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    snprintf(name + n, cap - n, "_%s", what);
}

static const char *provider_env(ap_arena_t *a, const char *provider, const char *what) {
    char name[160];
    provider_var(name, sizeof name, provider, what);
    const char *v = getenv(name);
    return v && *v ? ap_arena_strdup(a, v) : NULL;
}

static bool wire_of(const char *w, ap_wire_kind *out, bool *builtin) {
    *builtin = false;
    if (strcmp(w, "openai") == 0) *out = AP_WIRE_OPENAI;
    else if (strcmp(w, "anthropic") == 0) *out = AP_WIRE_ANTHROPIC;
    else if (strcmp(w, "gemini") == 0) *out = AP_WIRE_GEMINI;
    else if (strcmp(w, "builtin") == 0) {
        *out = AP_WIRE_OPENAI;
        *builtin = true;
    } else
        return false;
    return true;
}

static bool is_local(const char *url) {
    return url && (strncmp(url, "http://127.", 11) == 0 || strncmp(url, "http://localhost", 16) == 0 ||
                   strncmp(url, "http://[::1]", 12) == 0);
}

/* Fills one target from a model name; *skip explains why it cannot be used. */
typedef struct {
    const char *provider, *key; /* the tenant's own key for one provider (BYOK), or NULLs */
} byok_t;

static ap_rc add_target(ap_tx_t *tx, ap_arena_t *a, const char *tenant_id, const char *model,
                        bool embedding, const byok_t *byok, ap_llm_route_t *out, ap_err_t *err) {
    ap_catalog_entry_t e;
    ap_rc rc = ap_catalog_resolve(tx, tenant_id, model, &e, err);
    if (rc) return rc;
    bool is_embed = strcmp(e.mode, "embedding") == 0;
    if (is_embed != embedding)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-model",
                          embedding ? "not an embedding model" : "not a chat model",
                          embedding ? "pick a model from GET /api/v1/llm/models?capability=embedding"
                                    : "pick a model from GET /api/v1/llm/models?capability=chat",
                          "model \"%s\" is a %s model", e.id, e.mode);
    ap_wire_kind wire;
    bool builtin;
    if (!wire_of(e.wire_protocol, &wire, &builtin))
        return ap_err_set(err, AP_ERR_INVALID, "unsupported-provider",
                          "provider protocol not supported",
                          "pick a model of a provider speaking the OpenAI, Anthropic or Gemini API",
                          "provider \"%s\" speaks %s", e.provider_id, e.wire_protocol);
    const char *key = NULL, *base = e.base_url;
    if (!builtin && !e.tenant_id) {
        bool own = byok && byok->provider && strcmp(byok->provider, e.provider_id) == 0;
        key = own ? byok->key : provider_env(a, e.provider_id, "API_KEY");
        const char *b = provider_env(a, e.provider_id, "BASE_URL");
        if (b) base = b;
        if (!key && !is_local(base)) {
            char var[160];
            provider_var(var, sizeof var, e.provider_id, "API_KEY");
            return ap_err_set(err, AP_ERR_UNAVAILABLE, "provider-not-configured",
                              "provider has no API key",
                              "set the key in the environment of agentprov, or pick another model",
                              "model \"%s\" needs %s", e.id, var);
        }
    }
    int i = out->ntargets++;
    out->targets[i] = (ap_llm_target_t){.base_url = base, .api_key = key, .model = e.model_id};
    out->info[i] = (ap_llm_target_info_t){.catalog_id = e.id,
                                          .provider = e.provider_id,
                                          .wire = wire,
                                          .builtin = builtin,
                                          .priced = e.priced,
                                          .in_per_mtok = e.input_usd_per_mtok,
                                          .out_per_mtok = e.output_usd_per_mtok,
                                          .max_output = e.max_output_tokens};
    return AP_OK;
}

ap_rc ap_llm_route(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const uint8_t *master_key,
                   const ap_llm_req_t *req, const ap_llm_route_ctx_t *ctx, ap_llm_route_t *out,
                   ap_err_t *err) {
    (void)ctx;
    memset(out, 0, sizeof *out);
    const char *model = req->model;
    bool is_auto = !model || !*model || strcmp(model, "auto") == 0;
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (rc) return rc;
    ap_llm_config_t named, dflt;
    rc = ap_llm_config_lookup(tx, tenant_id, !is_auto && !strchr(model, '/') ? model : NULL,
                              &named, &dflt, err);
    if (rc) return rc;
    out->budget_daily_usd = dflt.budget_daily;
    out->budget_monthly_usd = dflt.budget_monthly;
    const ap_llm_config_t *cfg = named.found ? &named : is_auto && dflt.found ? &dflt : NULL;
    const char *fallback = NULL;
    out->reason = "requested";
    if (cfg) {
        out->has_temperature = cfg->has_temperature;
        out->temperature = cfg->temperature;
        out->max_tokens = cfg->max_tokens;
        fallback = cfg->fallback_model;
        is_auto = !cfg->primary_model;
        model = cfg->primary_model;
        out->reason = ap_arena_printf(a, "%sconfiguration %s", cfg == &dflt ? "auto: " : "",
                                      cfg->name);
    }
    if (is_auto) {
        const char *d = getenv("AP_DEFAULT_MODEL");
        model = d && *d ? d : "builtin/agentprov-mini";
        if (!cfg) out->reason = d && *d ? "auto: AP_DEFAULT_MODEL" : "auto: builtin default";
    }
    /* the tenant's own key: that of the configuration used, else the default's */
    const ap_llm_config_t *kc = cfg ? cfg : dflt.found ? &dflt : NULL;
    byok_t byok = {0};
    if (kc && kc->byok_provider && !kc->use_platform_key) {
        char *key = NULL;
        if (!master_key)
            return ap_err_set(err, AP_ERR_UNAVAILABLE, "provider-not-configured",
                              "tenant key unavailable", "start agentprov with its master key",
                              "LLM configuration \"%.63s\" has a %s key but no master key is loaded",
                              kc->name, kc->byok_provider);
        rc = ap_secret_open(master_key, &kc->byok, a, &key, err);
        if (rc) {
            snprintf(err->detail, sizeof err->detail,
                     "the %s key of LLM configuration \"%.63s\" cannot be decrypted with the "
                     "master key",
                     kc->byok_provider, kc->name);
            err->rc = AP_ERR_UNAVAILABLE;
            return AP_ERR_UNAVAILABLE;
        }
        byok = (byok_t){kc->byok_provider, key};
    }
    rc = add_target(tx, a, tenant_id, model, false, &byok, out, err);
    if (rc && cfg && cfg->primary_model)
        snprintf(err->detail + strlen(err->detail), sizeof err->detail - strlen(err->detail),
                 " (primary model of LLM configuration \"%.63s\")", cfg->name);
    if (rc) return rc;
    /* fallbacks: best effort, a fallback that cannot be used is skipped */
    if (fallback && strcmp(fallback, out->info[0].catalog_id) != 0) {
        ap_err_t ignore = {0};
        add_target(tx, a, tenant_id, fallback, false, &byok, out, &ignore);
    }
    const char *fb = getenv("AP_FALLBACK_MODELS");
    if (fb && *fb) {
        char *list = ap_arena_strdup(a, fb), *save = NULL;
        for (char *m = strtok_r(list, ",", &save); m && out->ntargets < AP_LLM_MAX_TARGETS;
             m = strtok_r(NULL, ",", &save)) {
            while (*m == ' ') m++;
            if (!*m || strcmp(m, out->info[0].catalog_id) == 0) continue;
            ap_err_t ignore = {0};
            add_target(tx, a, tenant_id, m, false, &byok, out, &ignore);
        }
    }
    ap_tx_rollback(tx);
    return AP_OK;
}

ap_rc ap_llm_route_embed(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *model,
                         ap_llm_route_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    out->reason = "requested";
    if (!model || !*model || strcmp(model, "auto") == 0) {
        const char *dflt = getenv("AP_DEFAULT_EMBEDDING_MODEL");
        model = dflt && *dflt ? dflt : "builtin/hash-embed-384";
        out->reason = "auto: default embedding model";
    }
    ap_tx_t *tx;
    ap_llm_config_t named, dflt;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (!rc) rc = ap_llm_config_lookup(tx, tenant_id, NULL, &named, &dflt, err);
    if (!rc) {
        out->budget_daily_usd = dflt.budget_daily;
        out->budget_monthly_usd = dflt.budget_monthly;
    }
    if (!rc) rc = add_target(tx, a, tenant_id, model, true, NULL, out, err);
    if (!rc) ap_tx_rollback(tx);
    return rc;
}
