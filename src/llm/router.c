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
#include "core/buf.h"
#include "llm/cache.h"
#include "llm/config.h"
#include "llm/policy.h"

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

typedef struct {
    const char *provider, *key; /* the tenant's own key for one provider (BYOK), or NULLs */
} byok_t;

/* Whether the gateway can call e now: the builtin model, a tenant's own
 * endpoint, a provider with a key (the tenant's or the platform's), or a
 * local endpoint.  *key and *base are what to use.  configured: only a
 * local endpoint set in the environment counts (policies must not pick a
 * catalog default such as Ollama's port when nothing runs there). */
static bool can_call(ap_arena_t *a, const ap_catalog_entry_t *e, bool builtin, const byok_t *byok,
                     bool configured, const char **key, const char **base) {
    *key = NULL;
    *base = e->base_url;
    if (builtin || e->tenant_id) return true;
    bool own = byok && byok->provider && strcmp(byok->provider, e->provider_id) == 0;
    *key = own ? byok->key : provider_env(a, e->provider_id, "API_KEY");
    const char *b = provider_env(a, e->provider_id, "BASE_URL");
    if (b) *base = b;
    return *key || (is_local(*base) && (b || !configured));
}

/* Appends one catalog entry as a target. */
static ap_rc add_entry(ap_arena_t *a, const ap_catalog_entry_t *e, bool embedding,
                       const byok_t *byok, ap_llm_route_t *out, ap_err_t *err) {
    bool is_embed = strcmp(e->mode, "embedding") == 0;
    if (is_embed != embedding)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-model",
                          embedding ? "not an embedding model" : "not a chat model",
                          embedding ? "pick a model from GET /api/v1/llm/models?capability=embedding"
                                    : "pick a model from GET /api/v1/llm/models?capability=chat",
                          "model \"%s\" is a %s model", e->id, e->mode);
    ap_wire_kind wire;
    bool builtin;
    if (!wire_of(e->wire_protocol, &wire, &builtin))
        return ap_err_set(err, AP_ERR_INVALID, "unsupported-provider",
                          "provider protocol not supported",
                          "pick a model of a provider speaking the OpenAI, Anthropic or Gemini API",
                          "provider \"%s\" speaks %s", e->provider_id, e->wire_protocol);
    const char *key, *base;
    if (!can_call(a, e, builtin, byok, false, &key, &base)) {
        char var[160];
        provider_var(var, sizeof var, e->provider_id, "API_KEY");
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "provider-not-configured",
                          "provider has no API key",
                          "set the key in the environment of agentprov, or pick another model",
                          "model \"%s\" needs %s", e->id, var);
    }
    if (out->ntargets >= AP_LLM_MAX_TARGETS) return AP_OK;
    for (int j = 0; j < out->ntargets; j++) /* a model once in a route */
        if (strcmp(out->info[j].catalog_id, e->id) == 0) return AP_OK;
    int i = out->ntargets++;
    out->targets[i] = (ap_llm_target_t){.base_url = base, .api_key = key, .model = e->model_id};
    out->info[i] = (ap_llm_target_info_t){.catalog_id = e->id,
                                          .provider = e->provider_id,
                                          .wire = wire,
                                          .builtin = builtin,
                                          .priced = e->priced,
                                          .in_per_mtok = e->input_usd_per_mtok,
                                          .out_per_mtok = e->output_usd_per_mtok,
                                          .max_output = e->max_output_tokens};
    return AP_OK;
}

static ap_rc add_target(ap_tx_t *tx, ap_arena_t *a, const char *tenant_id, const char *model,
                        bool embedding, const byok_t *byok, ap_llm_route_t *out, ap_err_t *err) {
    ap_catalog_entry_t e;
    ap_rc rc = ap_catalog_resolve(tx, tenant_id, model, &e, err);
    if (rc) return rc;
    return add_entry(a, &e, embedding, byok, out, err);
}

/* ---- policies ------------------------------------------------------------ */

#define POLICY_TARGETS 3 /* ranked candidates put in a route; fallbacks follow */

/* "tools, vision, ~N tokens" for explanations and errors. */
static const char *needs_text(ap_arena_t *a, const ap_llm_needs_t *n) {
    return ap_arena_printf(a, "%s%s~%lld tokens%s%s", n->tools ? "tools, " : "",
                           n->vision ? "vision, " : "",
                           (long long)(n->prompt_tokens + n->output_tokens),
                           n->quality_floor ? ", quality floor " : "",
                           n->quality_floor ? ap_llm_tier_name(n->quality_floor) : "");
}

/* Routes by policy p over the usable chat models: the best POLICY_TARGETS
 * in order.  source says who chose the policy ("cheapest", "configuration
 * x rule 2"); the route's reason says it and why. */
static ap_rc route_policy(ap_tx_t *tx, ap_arena_t *a, const char *tenant_id, ap_llm_policy p,
                          int floor, const char *source, const ap_llm_req_t *req,
                          const byok_t *byok, ap_llm_route_t *out, ap_err_t *err) {
    ap_catalog_entry_t *e;
    int n;
    ap_rc rc = ap_catalog_chat_models(tx, tenant_id, &e, &n, err);
    if (rc) return rc;
    ap_llm_cand_t *c = ap_arena_calloc(a, sizeof *c * (size_t)(n ? n : 1));
    ap_catalog_entry_t **ce = ap_arena_calloc(a, sizeof *ce * (size_t)(n ? n : 1));
    int nc = 0;
    for (int i = 0; i < n; i++) {
        ap_wire_kind wire;
        bool builtin;
        const char *key, *base;
        if (!wire_of(e[i].wire_protocol, &wire, &builtin)) continue;
        if (!can_call(a, &e[i], builtin, byok, true, &key, &base)) continue;
        ce[nc] = &e[i];
        c[nc++] = (ap_llm_cand_t){.id = e[i].id,
                                  .priced = e[i].priced,
                                  .in_per_mtok = e[i].input_usd_per_mtok,
                                  .out_per_mtok = e[i].output_usd_per_mtok,
                                  .quality = ap_llm_tier_parse(e[i].tiers.quality_tier),
                                  .speed = ap_llm_speed_rank(e[i].tiers.speed_tier),
                                  .size = ap_llm_size_rank(e[i].tiers.size_category),
                                  .tools = e[i].supports_tools,
                                  .vision = e[i].supports_vision,
                                  .context_window = e[i].context_window};
    }
    ap_llm_needs_t needs;
    ap_llm_needs_of(req, &needs);
    needs.quality_floor = floor;
    int tier = 0;
    const char *why;
    if (p == AP_POLICY_AUTO) {
        ap_llm_difficulty_t d;
        ap_llm_difficulty(req, &d);
        tier = d.tier;
        why = ap_arena_printf(a, "%s request (%s) -> %s tier", d.level, d.why,
                              ap_llm_tier_name(floor > tier ? floor : tier));
    } else
        why = p == AP_POLICY_FASTEST ? "fastest tier" : "lowest estimated cost";
    int order[POLICY_TARGETS];
    bool relaxed;
    int k = ap_llm_rank(p, &needs, tier, c, nc, order, POLICY_TARGETS, &relaxed);
    if (k == 0)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "no-usable-model",
                          "no usable model meets the request's needs",
                          "give a provider key (AP_PROVIDER_<ID>_API_KEY), or ask for less "
                          "(fewer tools, no images, a shorter prompt)",
                          "policy %s: needs %s; %d usable chat models, none fits",
                          ap_llm_policy_name(p), needs_text(a, &needs), nc);
    for (int i = 0; i < k; i++) {
        ap_err_t ignore = {0};
        add_entry(a, ce[order[i]], false, byok, out, &ignore);
    }
    out->reason = ap_arena_printf(a, "%s: %s%s; %d usable models, needs %s", source, why,
                                  relaxed ? ", none usable at that tier: the best available" : "",
                                  nc, needs_text(a, &needs));
    return AP_OK;
}

/* The request metadata's routing_policy / quality_floor (strings). */
static void metadata_policy(json_t *md, ap_llm_policy *p, int *floor) {
    *p = AP_POLICY_NONE;
    *floor = 0;
    if (!json_is_object(md)) return;
    ap_llm_policy_parse(json_string_value(json_object_get(md, "routing_policy")), p);
    *floor = ap_llm_tier_parse(json_string_value(json_object_get(md, "quality_floor")));
}

ap_rc ap_llm_route(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const uint8_t *master_key,
                   const ap_llm_req_t *req, const ap_llm_route_ctx_t *ctx, ap_llm_route_t *out,
                   ap_err_t *err) {
    memset(out, 0, sizeof *out);
    static const ap_llm_route_ctx_t none;
    if (!ctx) ctx = &none;
    const char *model = req->model;
    bool is_auto = !model || !*model || strcmp(model, "auto") == 0;
    /* a policy named as the model */
    ap_llm_policy policy = AP_POLICY_NONE;
    if (!is_auto && (strcmp(model, "cheapest") == 0 || strcmp(model, "fastest") == 0))
        ap_llm_policy_parse(model, &policy);
    ap_llm_policy md_policy;
    int floor;
    metadata_policy(ctx->metadata, &md_policy, &floor);
    const char *source = policy ? model : NULL;
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (rc) return rc;
    ap_llm_config_t named, dflt;
    bool by_name = !is_auto && !policy && !strchr(model, '/');
    rc = ap_llm_config_lookup(tx, tenant_id, by_name ? model : NULL, &named, &dflt, err);
    if (rc) return rc;
    out->budget_daily_usd = dflt.budget_daily;
    out->budget_monthly_usd = dflt.budget_monthly;
    const ap_llm_config_t *cfg = named.found ? &named : is_auto && dflt.found ? &dflt : NULL;
    const char *fallback = NULL;
    bool no_fallbacks = false;
    out->reason = "requested";
    if (cfg) {
        out->has_temperature = cfg->has_temperature;
        out->temperature = cfg->temperature;
        out->max_tokens = cfg->max_tokens;
        fallback = cfg->fallback_model;
        const char *cname = ap_arena_printf(a, "%sconfiguration %s", cfg == &dflt ? "auto: " : "",
                                            cfg->name);
        json_t *rules = cfg->routing_rules ? json_loads(cfg->routing_rules, 0, NULL) : NULL;
        ap_llm_json_keep(a, rules);
        json_decref(rules);
        ap_llm_rule_match_t m;
        if (rules && ap_llm_rules_match(rules, ctx->agent_id, ctx->task_type, ctx->metadata, &m)) {
            const char *rname = m.has_when ? ap_arena_printf(a, "%s rule %d", cname, m.index + 1)
                                           : ap_arena_printf(a, "%s policy", cname);
            if (m.quality_floor > floor) floor = m.quality_floor;
            if (m.model) {
                model = m.model;
                is_auto = false;
                out->reason = rname;
            } else if (m.policy == AP_POLICY_FIXED || m.policy == AP_POLICY_FALLBACK) {
                no_fallbacks = m.policy == AP_POLICY_FIXED;
                model = cfg->primary_model;
                is_auto = !model;
                out->reason = ap_arena_printf(a, "%s: %s", rname, ap_llm_policy_name(m.policy));
            } else {
                policy = m.policy;
                source = rname;
            }
        } else if (md_policy) {
            policy = md_policy;
            source = ap_arena_printf(a, "%s, request metadata routing_policy %s", cname,
                                     ap_llm_policy_name(md_policy));
        } else {
            is_auto = !cfg->primary_model;
            model = cfg->primary_model;
            out->reason = cname;
        }
    } else if (is_auto && md_policy) {
        policy = md_policy;
        source = ap_arena_printf(a, "request metadata routing_policy %s",
                                 ap_llm_policy_name(md_policy));
    } else if (is_auto && !(getenv("AP_DEFAULT_MODEL") && *getenv("AP_DEFAULT_MODEL"))) {
        policy = AP_POLICY_AUTO;
        source = "auto";
    }
    if (!policy && is_auto) {
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
    json_t *rules_set = NULL;
    if (cfg && cfg->routing_rules) {
        rules_set = json_loads(cfg->routing_rules, 0, NULL);
        out->cacheable = json_array_size(rules_set) == 0;
        json_decref(rules_set);
    } else
        out->cacheable = true;
    out->cacheable = out->cacheable && !policy && !byok.key;
    if (policy) {
        rc = route_policy(tx, a, tenant_id, policy, floor, source, req, &byok, out, err);
    } else {
        rc = add_target(tx, a, tenant_id, model, false, &byok, out, err);
        if (rc && cfg && model == cfg->primary_model)
            snprintf(err->detail + strlen(err->detail), sizeof err->detail - strlen(err->detail),
                     " (primary model of LLM configuration \"%.63s\")", cfg->name);
    }
    if (rc) return rc;
    if (no_fallbacks) {
        ap_tx_rollback(tx);
        return AP_OK;
    }
    /* fallbacks: best effort, a fallback that cannot be used is skipped */
    if (fallback) {
        ap_err_t ignore = {0};
        add_target(tx, a, tenant_id, fallback, false, &byok, out, &ignore);
    }
    const char *fb = getenv("AP_FALLBACK_MODELS");
    if (fb && *fb) {
        char *list = ap_arena_strdup(a, fb), *save = NULL;
        for (char *m = strtok_r(list, ",", &save); m && out->ntargets < AP_LLM_MAX_TARGETS;
             m = strtok_r(NULL, ",", &save)) {
            while (*m == ' ') m++;
            if (!*m) continue;
            ap_err_t ignore = {0};
            add_target(tx, a, tenant_id, m, false, &byok, out, &ignore);
        }
    }
    ap_tx_rollback(tx);
    return AP_OK;
}

/* ---- the cache ------------------------------------------------------------ */

/* A route as one blob: the struct, its string pointers as offsets + 1
 * into the bytes after it (0: NULL). */
static void ser_str(ap_buf_t *b, const char **field) {
    if (!*field) return;
    uintptr_t off = b->len - sizeof(ap_llm_route_t) + 1;
    ap_buf_append(b, *field, strlen(*field) + 1);
    *field = (const char *)off;
}

static void de_str(char *base, const char **field) {
    if (*field) *field = base + ((uintptr_t)*field - 1);
}

#define ROUTE_STRINGS(F, r)                                                                 \
    do {                                                                                    \
        for (int i_ = 0; i_ < (r)->ntargets; i_++) {                                        \
            F(&(r)->targets[i_].base_url);                                                  \
            F(&(r)->targets[i_].api_key);                                                   \
            F(&(r)->targets[i_].model);                                                     \
            F(&(r)->info[i_].catalog_id);                                                   \
            F(&(r)->info[i_].provider);                                                     \
        }                                                                                   \
        F(&(r)->reason);                                                                    \
    } while (0)

static bool routing_keys(json_t *md) {
    return json_object_get(md, "routing_policy") || json_object_get(md, "quality_floor");
}

ap_rc ap_llm_route_cached(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                          const char *tenant_id, const uint8_t *master_key,
                          const ap_llm_req_t *req, const ap_llm_route_ctx_t *ctx,
                          ap_llm_route_t *out, ap_err_t *err) {
    const char *name = req->model && *req->model ? req->model : "auto";
    bool use = cache && !(ctx && routing_keys(ctx->metadata)) && strlen(name) < 512;
    void *blob;
    size_t len;
    if (use && ap_llm_cache_get(cache, AP_LLM_CACHE_ROUTE, tenant_id, name, a, &blob, &len) &&
        len >= sizeof *out) {
        memcpy(out, blob, sizeof *out);
        char *base = (char *)blob + sizeof *out;
#define DE(f) de_str(base, f)
        ROUTE_STRINGS(DE, out);
#undef DE
        return AP_OK;
    }
    uint64_t gen = use ? ap_llm_cache_gen(cache, AP_LLM_CACHE_ROUTE, tenant_id) : 0;
    ap_rc rc = ap_llm_route(db, a, tenant_id, master_key, req, ctx, out, err);
    if (rc || !use || !out->cacheable) return rc;
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_llm_route_t copy = *out;
    ap_buf_append(&b, &copy, sizeof copy);
#define SER(f) ser_str(&b, f)
    ROUTE_STRINGS(SER, &copy);
#undef SER
    memcpy(b.p, &copy, sizeof copy); /* with the offsets */
    ap_llm_cache_put(cache, gen, AP_LLM_CACHE_ROUTE, tenant_id, name, b.p, b.len);
    ap_buf_free(&b);
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
