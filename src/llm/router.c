/*
 * router.c - resolving a request's model to targets, with fallbacks.
 *
 * 1. Catalog reads happen in one read transaction for the tenant, so a
 *    tenant's private providers resolve and nobody else's do.
 * 2. Credentials come from the process environment, read-only after start
 *    (AP_PROVIDER_<ID>_API_KEY / _BASE_URL); tenant keys (BYOK) will slot in
 *    before them.  Local endpoints (127.0.0.1, localhost) need no key.
 */
#include "llm/router.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/catalog.h"

static const char *provider_env(ap_arena_t *a, const char *provider, const char *what) {
    char name[160];
    size_t n = (size_t)snprintf(name, sizeof name, "AP_PROVIDER_");
    for (const char *p = provider; *p && n + 1 < sizeof name; p++)
        name[n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    snprintf(name + n, sizeof name - n, "_%s", what);
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
static ap_rc add_target(ap_tx_t *tx, ap_arena_t *a, const char *tenant_id, const char *model,
                        bool embedding, ap_llm_route_t *out, ap_err_t *err) {
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
        key = provider_env(a, e.provider_id, "API_KEY");
        const char *b = provider_env(a, e.provider_id, "BASE_URL");
        if (b) base = b;
        if (!key && !is_local(base)) {
            char var[160];
            size_t n = (size_t)snprintf(var, sizeof var, "AP_PROVIDER_");
            for (const char *p = e.provider_id; *p && n + 1 < sizeof var; p++)
                var[n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
            snprintf(var + n, sizeof var - n, "_API_KEY");
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
                                          .out_per_mtok = e.output_usd_per_mtok};
    return AP_OK;
}

ap_rc ap_llm_route(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const ap_llm_req_t *req,
                   ap_llm_route_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    const char *model = req->model;
    out->reason = "requested";
    if (!model || !*model || strcmp(model, "auto") == 0) {
        const char *dflt = getenv("AP_DEFAULT_MODEL");
        model = dflt && *dflt ? dflt : "builtin/agentprov-mini";
        out->reason = dflt && *dflt ? "auto: AP_DEFAULT_MODEL" : "auto: builtin default";
    }
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (rc) return rc;
    rc = add_target(tx, a, tenant_id, model, false, out, err);
    if (rc) return rc;
    /* fallbacks: best effort, a fallback that cannot be used is skipped */
    const char *fb = getenv("AP_FALLBACK_MODELS");
    if (fb && *fb) {
        char *list = ap_arena_strdup(a, fb), *save = NULL;
        for (char *m = strtok_r(list, ",", &save); m && out->ntargets < AP_LLM_MAX_TARGETS;
             m = strtok_r(NULL, ",", &save)) {
            while (*m == ' ') m++;
            if (!*m || strcmp(m, out->info[0].catalog_id) == 0) continue;
            ap_err_t ignore = {0};
            add_target(tx, a, tenant_id, m, false, out, &ignore);
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
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (!rc) rc = add_target(tx, a, tenant_id, model, true, out, err);
    if (!rc) ap_tx_rollback(tx);
    return rc;
}
