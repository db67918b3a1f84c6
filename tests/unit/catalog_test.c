/*
 * catalog_test.c - the LLM catalog on every backend: the seed migration,
 * the tier rule (C against the generator's rows, and spot checks stated
 * from docs/llm-catalog.md), name resolution, filters and paging, platform
 * administration with its audit entries, unpriced models, and tenants'
 * private providers (on PostgreSQL also through row-level security with
 * unfiltered queries).
 */
#include "testutil.h"

#include <jansson.h>
#include <math.h>

#include "audit/audit.h"
#include "core/id.h"
#include "llm/catalog.h"

#define TA "0190a000-0000-7000-8000-00000000000a"
#define TB "0190a000-0000-7000-8000-00000000000b"

static const ap_actor_t actor = {.type = "system", .id = "test", .role = "platform_admin",
                                  .request_id = "req-1", .client_addr = "127.0.0.1"};

/* One transaction in its own arena; end() commits (or rolls back). */
typedef struct {
    ap_arena_t *a;
    ap_tx_t *tx;
} txn_t;

static txn_t begin(ap_db_t *db, const char *tenant) {
    ap_err_t err = {0};
    txn_t t = {.a = ap_arena_new(4096)};
    if (ap_db_begin(db, tenant, AP_TX_WRITE, t.a, &t.tx, &err))
        fail_msg("begin: %s %s", err.msg, err.detail);
    return t;
}

static void end(txn_t *t, bool commit) {
    ap_err_t err = {0};
    if (commit && ap_tx_commit(t->tx, &err)) fail_msg("commit: %s %s", err.msg, err.detail);
    ap_arena_free(t->a);
}

static ap_db_t *open_two_tenants(void) {
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    tu_add_tenant(db, TB, "tenant-b");
    return db;
}

/* ---- the seed ------------------------------------------------------------ */

static void test_seed_counts(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    int64_t providers = tu_count(db, NULL,
                                 "SELECT COUNT(*) FROM llm_providers WHERE tenant_id IS NULL",
                                 NULL, 0);
    int64_t active = tu_count(
        db, NULL, "SELECT COUNT(*) FROM llm_providers WHERE tenant_id IS NULL AND active = 1",
        NULL, 0);
    int64_t models = tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_models WHERE tenant_id IS NULL", NULL, 0);
    int64_t usable = tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_models m JOIN llm_providers p"
                              " ON p.id = m.provider_id WHERE m.active = 1 AND p.active = 1",
                              NULL, 0);
    assert_true(providers >= 20);
    assert_true(active >= 20);
    assert_true(models >= 60);
    assert_true(usable >= 60);
    /* the builtin models run locally: price 0, stated, not unknown */
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_models WHERE provider_id = 'builtin'"
                              " AND input_usd_per_mtok = 0 AND output_usd_per_mtok = 0",
                              NULL, 0),
                     2);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_providers WHERE id = 'builtin'"
                              " AND wire_protocol = 'builtin' AND base_url IS NULL",
                              NULL, 0),
                     1);
    /* providers speaking none of the gateway's protocols are inactive */
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_providers WHERE active = 1 AND"
                              " wire_protocol NOT IN ('openai', 'anthropic', 'gemini', 'builtin')",
                              NULL, 0),
                     0);
    ap_db_close(db);
}

/* Every seeded row's tiers, as written by scripts/catalog-seed.sh, are
 * what ap_catalog_derive says: the two implementations of the rule agree. */
static void test_rule_matches_generator(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    txn_t t = begin(db, NULL);
    ap_err_t err = {0};
    ap_rows_t r;
    if (ap_tx_query(t.tx,
                    "SELECT provider_id, model_id, mode, input_usd_per_mtok AS pin,"
                    " output_usd_per_mtok AS pout, speed_tier, quality_tier, size_category,"
                    " edge_optimized FROM llm_models WHERE tenant_id IS NULL",
                    NULL, 0, &r, &err))
        fail_msg("%s", err.detail);
    assert_true(r.nrows >= 60);
    for (int i = 0; i < r.nrows; i++) {
        const char *pin = ap_rows_get(&r, i, "pin"), *pout = ap_rows_get(&r, i, "pout");
        ap_catalog_tiers_t tiers;
        ap_catalog_derive(ap_rows_get(&r, i, "provider_id"), ap_rows_get(&r, i, "model_id"),
                          ap_rows_get(&r, i, "mode"), pin && pout, pin ? strtod(pin, NULL) : 0,
                          pout ? strtod(pout, NULL) : 0, &tiers);
        const char *id = ap_rows_get(&r, i, "model_id");
        if (strcmp(tiers.speed_tier, ap_rows_get(&r, i, "speed_tier")) ||
            strcmp(tiers.quality_tier, ap_rows_get(&r, i, "quality_tier")) ||
            strcmp(tiers.size_category, ap_rows_get(&r, i, "size_category")) ||
            tiers.edge_optimized != (strcmp(ap_rows_get(&r, i, "edge_optimized"), "1") == 0))
            fail_msg("%s: C says %s/%s/%s/%d, the seed %s/%s/%s/%s", id, tiers.speed_tier,
                     tiers.quality_tier, tiers.size_category, tiers.edge_optimized,
                     ap_rows_get(&r, i, "speed_tier"), ap_rows_get(&r, i, "quality_tier"),
                     ap_rows_get(&r, i, "size_category"), ap_rows_get(&r, i, "edge_optimized"));
    }
    end(&t, false);
    ap_db_close(db);
}

static void expect_tiers(const char *prov, const char *model, const char *mode, bool priced,
                         double pin, double pout, const char *speed, const char *quality,
                         const char *size, bool edge) {
    ap_catalog_tiers_t t;
    ap_catalog_derive(prov, model, mode, priced, pin, pout, &t);
    if (strcmp(t.speed_tier, speed) || strcmp(t.quality_tier, quality) ||
        strcmp(t.size_category, size) || t.edge_optimized != edge)
        fail_msg("%s/%s: got %s/%s/%s/%d, want %s/%s/%s/%d", prov, model, t.speed_tier,
                 t.quality_tier, t.size_category, t.edge_optimized, speed, quality, size, edge);
}

/* The examples of docs/llm-catalog.md, one per clause of the rule. */
static void test_rule_spot_checks(void **state) {
    (void)state;
    /* parameter counts */
    assert_true(ap_catalog_params_b("llama-3.3-70b-versatile") == 70);
    assert_true(ap_catalog_params_b("Mixtral-8x7B-Instruct-v0.1") == 56);
    assert_true(ap_catalog_params_b("accounts/fireworks/models/qwen2p5-1p5b-instruct") == 1.5);
    assert_true(ap_catalog_params_b("Qwen2.5-0.5B") == 0.5);
    assert_true(ap_catalog_params_b("command-r7b-12-2024") == 7);
    assert_true(ap_catalog_params_b("Qwen3-Next-80B-A3B-Thinking") == 80);
    assert_true(ap_catalog_params_b("gpt-4o") == -1);
    assert_true(ap_catalog_params_b("gemini-2.5-flash") == -1);
    /* builtin */
    expect_tiers("builtin", "agentprov-mini", "chat", true, 0, 0, "fast", "basic", "tiny", true);
    /* size from the parameter count; edge when at most 8B */
    expect_tiers("cerebras", "llama3.1-8b", "chat", true, 0.1, 0.1, "fast", "basic", "small",
                 true);
    expect_tiers("deepinfra", "meta-llama/Llama-3.2-3B-Instruct", "chat", true, 0.02, 0.02,
                 "fast", "basic", "tiny", true);
    expect_tiers("novita", "baidu/ernie-4.5-300b-a47b-paddle", "chat", true, 0.28, 1.1, "slow",
                 "best", "xl", false);
    expect_tiers("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat", true, 0.88, 0.88,
                 "fast", "good", "large", false); /* "turbo" */
    /* fast-inference providers */
    expect_tiers("groq", "llama-3.3-70b-versatile", "chat", true, 0.59, 0.79, "fast", "good",
                 "large", false);
    /* name cues */
    expect_tiers("openai", "gpt-5-nano", "chat", true, 0.05, 0.4, "fast", "basic", "tiny", false);
    expect_tiers("openai", "gpt-4o-mini", "chat", true, 0.15, 0.6, "fast", "basic", "small", false);
    expect_tiers("anthropic", "claude-haiku-4-5", "chat", true, 1, 5, "fast", "basic", "small",
                 false);
    expect_tiers("google", "gemini-2.5-flash", "chat", true, 0.3, 2.5, "fast", "basic", "small",
                 false);
    expect_tiers("mistral", "magistral-medium-2509", "chat", true, 2, 5, "standard", "good",
                 "medium", false);
    expect_tiers("anthropic", "claude-opus-4-1", "chat", true, 15, 75, "slow", "best", "xl", false);
    expect_tiers("google", "gemini-2.5-pro", "chat", true, 1.25, 10, "slow", "best", "xl", false);
    expect_tiers("mistral", "mistral-large-2411", "chat", true, 2, 6, "slow", "best", "xl", false);
    /* price: output price sets the size, the blended price the quality */
    expect_tiers("anthropic", "claude-sonnet-4-5", "chat", true, 3, 15, "standard", "best",
                 "large", false);
    expect_tiers("deepseek", "deepseek-chat", "chat", true, 0.28, 0.42, "standard", "good",
                 "medium", false);
    expect_tiers("mistral", "codestral-latest", "chat", true, 1, 3, "standard", "good", "large",
                 false);
    expect_tiers("openai", "o1", "chat", true, 15, 60, "slow", "best", "xl", false);
    expect_tiers("dashscope", "qwen-turbo", "chat", true, 0.05, 0.2, "fast", "basic", "small",
                 false);
    /* unpriced or free, no other clue: medium */
    expect_tiers("ollama", "llama3.1", "chat", true, 0, 0, "standard", "good", "medium", false);
    expect_tiers("openai", "gpt-9-preview", "chat", false, 0, 0, "standard", "good", "medium",
                 false);
    /* embeddings */
    expect_tiers("openai", "text-embedding-3-large", "embedding", true, 0.13, 0, "fast", "good",
                 "small", false);
}

/* ---- resolving ------------------------------------------------------------- */

static void test_resolve_both_spellings(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    txn_t t = begin(db, TA);
    ap_err_t err = {0};
    ap_catalog_entry_t full, bare;
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "openai/gpt-4o", &full, &err), AP_OK);
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "gpt-4o", &bare, &err), AP_OK);
    assert_string_equal(full.id, "openai/gpt-4o");
    assert_string_equal(bare.id, full.id);
    assert_string_equal(full.provider_id, "openai");
    assert_string_equal(full.wire_protocol, "openai");
    assert_string_equal(full.base_url, "https://api.openai.com/v1");
    assert_string_equal(full.model_id, "gpt-4o");
    assert_string_equal(full.mode, "chat");
    assert_null(full.tenant_id);
    assert_true(full.priced);
    assert_true(full.input_usd_per_mtok == 2.5 && full.output_usd_per_mtok == 10);
    assert_true(full.supports_tools && full.supports_vision && !full.supports_reasoning);
    assert_int_equal(full.context_window, 128000);
    assert_int_equal(full.max_output_tokens, 16384);
    assert_string_equal(full.tiers.quality_tier, "best");
    /* a model id with '/' of its own, both ways */
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "groq/openai/gpt-oss-120b", &full, &err), AP_OK);
    assert_string_equal(full.model_id, "openai/gpt-oss-120b");
    assert_string_equal(full.base_url, "https://api.groq.com/openai/v1");
    /* "openai/gpt-5" is an exact id even though openrouter's model id is the same text */
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "openai/gpt-5", &full, &err), AP_OK);
    assert_string_equal(full.provider_id, "openai");
    /* builtin: price 0 is a price */
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "agentprov-mini", &full, &err), AP_OK);
    assert_string_equal(full.id, "builtin/agentprov-mini");
    assert_string_equal(full.wire_protocol, "builtin");
    assert_null(full.base_url);
    assert_true(full.priced);
    assert_true(full.input_usd_per_mtok == 0 && full.output_usd_per_mtok == 0);
    end(&t, false);
    ap_db_close(db);
}

static void test_resolve_ambiguous_and_missing(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    txn_t t = begin(db, TA);
    ap_err_t err = {0};
    ap_catalog_entry_t e;
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "gpt-oss-120b", &e, &err), AP_ERR_INVALID);
    assert_string_equal(err.type, "ambiguous-model");
    assert_non_null(strstr(err.detail, "cerebras/gpt-oss-120b"));
    assert_non_null(strstr(err.detail, "sambanova/gpt-oss-120b"));
    assert_non_null(strstr(err.hint, "provider/model"));
    err = (ap_err_t){0};
    assert_int_equal(
        ap_catalog_resolve(t.tx, TA, "meta-llama/Llama-3.3-70B-Instruct-Turbo", &e, &err),
        AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"));
    assert_non_null(strstr(err.detail, "deepinfra/meta-llama/Llama-3.3-70B-Instruct-Turbo"));
    err = (ap_err_t){0};
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "no-such-model", &e, &err), AP_ERR_NOT_FOUND);
    assert_non_null(strstr(err.hint, "GET /api/v1/llm/models"));
    /* a provider speaking none of the gateway's protocols does not resolve */
    err = (ap_err_t){0};
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
                                        &e, &err),
                     AP_ERR_NOT_FOUND);
    assert_non_null(strstr(err.detail, "not enabled"));
    /* but it is listed, and can be read */
    json_t *m = NULL;
    assert_int_equal(ap_catalog_model_get(t.tx, TA, "voyage-3", &m, &err), AP_OK);
    assert_false(json_is_true(json_object_get(m, "provider_active")));
    json_decref(m);
    end(&t, false);
    ap_db_close(db);
}

/* ---- listing --------------------------------------------------------------- */

static json_t *list(ap_db_t *db, const char *tenant, ap_catalog_filter_t f, const char **next,
                    ap_rc want) {
    txn_t t = begin(db, tenant);
    ap_err_t err = {0};
    json_t *out = NULL;
    const char *n = NULL;
    if (!f.limit) f.limit = 500;
    ap_rc rc = ap_catalog_model_list(t.tx, tenant, &f, &out, &n, &err);
    if (rc != want) fail_msg("list: rc %d, want %d: %s", rc, want, err.detail);
    if (next) *next = n ? strdup(n) : NULL;
    end(&t, false);
    return out;
}

static void test_list_filters_and_pages(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    json_t *all = list(db, TA, (ap_catalog_filter_t){0}, NULL, AP_OK);
    size_t total = json_array_size(all);
    assert_true(total >= 60);
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        assert_true(json_is_true(json_object_get(m, "active")));
        assert_true(json_is_true(json_object_get(m, "provider_active")));
    }
    json_t *groq = list(db, TA, (ap_catalog_filter_t){.provider = "groq"}, NULL, AP_OK);
    assert_true(json_array_size(groq) >= 5);
    json_array_foreach(groq, i, m)
        assert_string_equal(json_string_value(json_object_get(m, "provider_id")), "groq");
    json_t *tv = list(db, TA, (ap_catalog_filter_t){.capability = "tools,vision"}, NULL, AP_OK);
    assert_true(json_array_size(tv) > 0);
    json_array_foreach(tv, i, m) {
        assert_true(json_is_true(json_object_get(m, "supports_tools")));
        assert_true(json_is_true(json_object_get(m, "supports_vision")));
    }
    json_t *emb = list(db, TA, (ap_catalog_filter_t){.capability = "embedding"}, NULL, AP_OK);
    json_array_foreach(emb, i, m)
        assert_string_equal(json_string_value(json_object_get(m, "mode")), "embedding");
    json_t *best = list(db, TA, (ap_catalog_filter_t){.tier = "best,slow"}, NULL, AP_OK);
    assert_true(json_array_size(best) > 0);
    json_array_foreach(best, i, m) {
        assert_string_equal(json_string_value(json_object_get(m, "quality_tier")), "best");
        assert_string_equal(json_string_value(json_object_get(m, "speed_tier")), "slow");
    }
    json_t *cheap = list(db, TA, (ap_catalog_filter_t){.max_price = "0.5"}, NULL, AP_OK);
    assert_true(json_array_size(cheap) > 0 && json_array_size(cheap) < total);
    json_array_foreach(cheap, i, m) {
        assert_true(json_number_value(json_object_get(m, "input_usd_per_mtok")) <= 0.5);
        assert_true(json_number_value(json_object_get(m, "output_usd_per_mtok")) <= 0.5);
    }
    json_decref(list(db, TA, (ap_catalog_filter_t){.tier = "huge"}, NULL, AP_ERR_INVALID));
    json_decref(list(db, TA, (ap_catalog_filter_t){.capability = "tools,"}, NULL, AP_ERR_INVALID));
    json_decref(list(db, TA, (ap_catalog_filter_t){.max_price = "-1"}, NULL, AP_ERR_INVALID));
    json_decref(list(db, TA, (ap_catalog_filter_t){.max_price = "cheap"}, NULL, AP_ERR_INVALID));
    /* inactive ones only on request */
    json_t *with = list(db, TA, (ap_catalog_filter_t){.include_inactive = true}, NULL, AP_OK);
    assert_true(json_array_size(with) > total);
    /* pages of 7 visit every model once, in id order */
    size_t seen = 0;
    char *cursor = NULL;
    char last[600] = "";
    int pages = 0;
    do {
        const char *next = NULL;
        json_t *p = list(db, TA, (ap_catalog_filter_t){.after = cursor, .limit = 7}, &next, AP_OK);
        json_array_foreach(p, i, m) {
            const char *id = json_string_value(json_object_get(m, "id"));
            assert_string_equal(id, json_string_value(json_object_get(json_array_get(all, seen), "id")));
            snprintf(last, sizeof last, "%s", id);
            seen++;
        }
        json_decref(p);
        free(cursor);
        cursor = (char *)next;
        pages++;
    } while (cursor && pages < 100);
    assert_int_equal(seen, total);
    assert_true(pages >= (int)(total / 7));
    json_decref(all);
    json_decref(groq);
    json_decref(tv);
    json_decref(emb);
    json_decref(best);
    json_decref(cheap);
    json_decref(with);
    ap_db_close(db);
}

/* ---- platform administration -------------------------------------------- */

static json_t *admin(ap_db_t *db, const char *op, json_t *in, ap_rc want, ap_err_t *err) {
    txn_t t = begin(db, NULL);
    json_t *out = NULL;
    ap_rc rc;
    if (strcmp(op, "create") == 0)
        rc = ap_catalog_model_create(t.tx, &actor, in, &out, err);
    else if (strcmp(op, "update") == 0)
        rc = ap_catalog_model_update(t.tx, &actor, in, &out, err);
    else
        rc = ap_catalog_model_deactivate(t.tx, &actor, ap_json_str(in, "id"), &out, err);
    if (rc != want) fail_msg("%s: rc %d, want %d: %s %s", op, rc, want, err->msg, err->detail);
    end(&t, rc == AP_OK);
    json_decref(in);
    return out;
}

static void test_unpriced_model_keeps_null_prices(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_t *m = admin(db, "create",
                      json_pack("{s:s,s:s,s:i}", "provider_id", "openai", "model_id",
                                "gpt-9-preview", "context_window", 400000),
                      AP_OK, &err);
    assert_false(json_is_true(json_object_get(m, "priced")));
    assert_true(json_is_null(json_object_get(m, "input_usd_per_mtok")));
    assert_true(json_is_null(json_object_get(m, "output_usd_per_mtok")));
    assert_string_equal(json_string_value(json_object_get(m, "quality_tier")), "good");
    json_decref(m);
    const char *q = "SELECT COUNT(*) FROM llm_models WHERE id = 'openai/gpt-9-preview'"
                    " AND input_usd_per_mtok IS NULL AND output_usd_per_mtok IS NULL";
    assert_int_equal(tu_count(db, NULL, q, NULL, 0), 1);
    txn_t t = begin(db, TA);
    ap_catalog_entry_t e;
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "gpt-9-preview", &e, &err), AP_OK);
    assert_false(e.priced);
    assert_true(e.input_usd_per_mtok == 0 && e.output_usd_per_mtok == 0);
    end(&t, false);
    /* priced, then unpriced again; one price alone is refused */
    json_decref(admin(db, "update",
                      json_pack("{s:s,s:f,s:i}", "id", "gpt-9-preview", "input_usd_per_mtok", 1.5,
                                "output_usd_per_mtok", 6),
                      AP_OK, &err));
    assert_int_equal(tu_count(db, NULL, q, NULL, 0), 0);
    json_decref(admin(db, "update",
                      json_pack("{s:s,s:n}", "id", "openai/gpt-9-preview", "input_usd_per_mtok"),
                      AP_ERR_INVALID, &err));
    assert_non_null(strstr(err.msg, "both prices"));
    json_decref(admin(db, "update",
                      json_pack("{s:s,s:n,s:n}", "id", "openai/gpt-9-preview",
                                "input_usd_per_mtok", "output_usd_per_mtok"),
                      AP_OK, &err));
    assert_int_equal(tu_count(db, NULL, q, NULL, 0), 1);
    /* the database refuses one price alone too, and never turns NULL into 0 */
    err = (ap_err_t){0};
    assert_int_equal(tu_try(db, NULL,
                            "UPDATE llm_models SET input_usd_per_mtok = 1"
                            " WHERE id = 'openai/gpt-9-preview'",
                            NULL, 0, &err),
                     AP_ERR_INVALID);
    ap_db_close(db);
}

static void test_admin_changes_are_audited(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_decref(admin(db, "create",
                      json_pack("{s:s,s:s,s:f,s:f,s:b,s:s}", "provider_id", "mistral", "model_id",
                                "mistral-tiny-test", "input_usd_per_mtok", 0.1,
                                "output_usd_per_mtok", 0.3, "supports_tools", 1, "quality_tier",
                                "good"),
                      AP_OK, &err));
    json_decref(admin(db, "create",
                      json_pack("{s:s,s:s}", "provider_id", "mistral", "model_id",
                                "mistral-tiny-test"),
                      AP_ERR_CONFLICT, &err));
    json_decref(admin(db, "create",
                      json_pack("{s:s,s:s}", "provider_id", "nosuch", "model_id", "x"),
                      AP_ERR_INVALID, &err));
    json_t *u = admin(db, "update",
                      json_pack("{s:s,s:f,s:f}", "id", "mistral/mistral-tiny-test",
                                "input_usd_per_mtok", 0.2, "output_usd_per_mtok", 0.3),
                      AP_OK, &err);
    assert_true(json_real_value(json_object_get(u, "input_usd_per_mtok")) == 0.2);
    json_decref(u);
    json_t *d = admin(db, "deactivate", json_pack("{s:s}", "id", "mistral-tiny-test"), AP_OK, &err);
    assert_false(json_is_true(json_object_get(d, "active")));
    json_decref(d);
    json_decref(admin(db, "deactivate", json_pack("{s:s}", "id", "mistral-tiny-test"),
                      AP_ERR_CONFLICT, &err));
    /* a deactivated model no longer resolves */
    txn_t t = begin(db, TA);
    ap_catalog_entry_t e;
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "mistral/mistral-tiny-test", &e, &err),
                     AP_ERR_NOT_FOUND);
    assert_non_null(strstr(err.detail, "deactivated"));
    end(&t, false);
    /* three entries in the platform chain, which still verifies */
    t = begin(db, NULL);
    ap_audit_filter_t f = {.action = "llm.model.*", .limit = 100};
    json_t *entries = NULL;
    int64_t next = 0;
    assert_int_equal(ap_audit_list(t.tx, AP_NIL_UUID, &f, &entries, &next, &err), AP_OK);
    assert_int_equal(json_array_size(entries), 3);
    const char *actions[] = {"llm.model.create", "llm.model.update", "llm.model.deactivate"};
    for (int i = 0; i < 3; i++) {
        json_t *en = json_array_get(entries, (size_t)i);
        assert_string_equal(json_string_value(json_object_get(en, "action")), actions[i]);
        assert_string_equal(json_string_value(json_object_get(en, "resource_id")),
                            "mistral/mistral-tiny-test");
    }
    json_t *ch = json_object_get(json_array_get(entries, 1), "changes");
    if (json_is_string(ch)) ch = json_loads(json_string_value(ch), 0, NULL);
    else json_incref(ch);
    json_t *price = json_object_get(ch, "input_usd_per_mtok");
    assert_true(json_number_value(json_object_get(price, "from")) == 0.1);
    assert_true(json_number_value(json_object_get(price, "to")) == 0.2);
    assert_null(json_object_get(ch, "output_usd_per_mtok")); /* unchanged: not listed */
    json_decref(ch);
    json_decref(entries);
    ap_audit_verify_t v;
    assert_int_equal(ap_audit_verify(t.tx, AP_NIL_UUID, &v, &err), AP_OK);
    assert_true(v.ok);
    end(&t, false);
    ap_db_close(db);
}

/* ---- private providers ------------------------------------------------- */

static json_t *private_create(ap_db_t *db, const char *tenant, json_t *in, ap_rc want,
                              ap_err_t *err) {
    txn_t t = begin(db, tenant);
    json_t *out = NULL;
    ap_rc rc = ap_catalog_private_create(t.tx, tenant, &actor, in, &out, err);
    if (rc != want) fail_msg("private create: rc %d, want %d: %s", rc, want, err->detail);
    end(&t, rc == AP_OK);
    json_decref(in);
    return out;
}

static void test_private_provider_is_the_tenants_own(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_t *p = private_create(
        db, TA,
        json_pack("{s:s,s:s,s:[s,{s:s,s:b,s:i}]}", "name", "my-vllm", "base_url",
                  "http://10.0.0.5:8000/v1/", "models", "llama3.1-8b", "model_id",
                  "Qwen/Qwen3-32B", "supports_tools", 1, "context_window", 32768),
        AP_OK, &err);
    const char *pid = json_string_value(json_object_get(p, "id"));
    assert_true(ap_uuid_valid(pid));
    char provider_id[AP_UUID_LEN];
    snprintf(provider_id, sizeof provider_id, "%s", pid);
    assert_string_equal(json_string_value(json_object_get(p, "base_url")), "http://10.0.0.5:8000/v1");
    assert_true(json_is_true(json_object_get(p, "private")));
    json_t *models = json_object_get(p, "models");
    assert_int_equal(json_array_size(models), 2);
    json_t *m0;
    size_t i;
    json_array_foreach(models, i, m0) {
        assert_false(json_is_true(json_object_get(m0, "priced"))); /* no price given: unpriced */
        assert_string_equal(json_string_value(json_object_get(m0, "tenant_id")), TA);
    }
    json_decref(p);
    /* names: taken in this tenant, free in another, never a platform id */
    json_decref(private_create(db, TA,
                               json_pack("{s:s,s:s}", "name", "my-vllm", "base_url",
                                         "http://10.0.0.6/v1"),
                               AP_ERR_CONFLICT, &err));
    json_decref(private_create(db, TA,
                               json_pack("{s:s,s:s}", "name", "openai", "base_url",
                                         "http://10.0.0.6/v1"),
                               AP_ERR_INVALID, &err));
    json_t *pb = private_create(db, TB,
                                json_pack("{s:s,s:s,s:[s]}", "name", "my-vllm", "base_url",
                                          "http://127.0.0.1:11434/v1", "models", "llama3.1-8b"),
                                AP_OK, &err);
    json_decref(pb);

    /* TA resolves its model by name/model, id and bare id ... */
    txn_t t = begin(db, TA);
    ap_catalog_entry_t e;
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "my-vllm/Qwen/Qwen3-32B", &e, &err), AP_OK);
    assert_string_equal(e.model_id, "Qwen/Qwen3-32B");
    assert_string_equal(e.base_url, "http://10.0.0.5:8000/v1");
    assert_string_equal(e.wire_protocol, "openai");
    assert_string_equal(e.tenant_id, TA);
    assert_false(e.priced);
    assert_true(e.supports_tools);
    assert_int_equal(e.context_window, 32768);
    char full[128];
    snprintf(full, sizeof full, "%s/llama3.1-8b", provider_id);
    assert_int_equal(ap_catalog_resolve(t.tx, TA, full, &e, &err), AP_OK);
    assert_int_equal(ap_catalog_resolve(t.tx, TA, "Qwen/Qwen3-32B", &e, &err), AP_OK);
    assert_string_equal(e.tenant_id, TA);
    json_t *mine = NULL;
    const char *next = NULL;
    assert_int_equal(ap_catalog_private_list(t.tx, TA, NULL, 50, &mine, &next, &err), AP_OK);
    assert_int_equal(json_array_size(mine), 1);
    json_decref(mine);
    end(&t, false);

    /* ... TB sees none of it, and cannot delete it */
    json_t *theirs = list(db, TB, (ap_catalog_filter_t){0}, NULL, AP_OK);
    json_array_foreach(theirs, i, m0) {
        json_t *tid = json_object_get(m0, "tenant_id");
        assert_true(json_is_null(tid) || strcmp(json_string_value(tid), TB) == 0);
    }
    json_decref(theirs);
    t = begin(db, TB);
    err = (ap_err_t){0};
    assert_int_equal(ap_catalog_resolve(t.tx, TB, full, &e, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_catalog_resolve(t.tx, TB, "Qwen/Qwen3-32B", &e, &err), AP_ERR_NOT_FOUND);
    /* TB's own my-vllm/llama3.1-8b is TB's */
    assert_int_equal(ap_catalog_resolve(t.tx, TB, "my-vllm/llama3.1-8b", &e, &err), AP_OK);
    assert_string_equal(e.tenant_id, TB);
    assert_int_equal(ap_catalog_private_delete(t.tx, TB, &actor, provider_id, &err),
                     AP_ERR_NOT_FOUND);
    end(&t, false);

    /* the rows are there, seen through each scope with no WHERE at all */
    if (tu_is_pg()) {
        assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM llm_models WHERE tenant_id IS NOT NULL", NULL, 0), 2);
        assert_int_equal(tu_count(db, TB, "SELECT COUNT(*) FROM llm_models WHERE tenant_id IS NOT NULL", NULL, 0), 1);
        assert_int_equal(tu_count(db, TB, "SELECT COUNT(*) FROM llm_providers WHERE tenant_id IS NOT NULL", NULL, 0), 1);
        assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM llm_models WHERE tenant_id IS NOT NULL", NULL, 0), 3);
        int64_t shared = tu_count(db, NULL, "SELECT COUNT(*) FROM llm_models WHERE tenant_id IS NULL", NULL, 0);
        assert_int_equal(tu_count(db, TB, "SELECT COUNT(*) FROM llm_models", NULL, 0), shared + 1);
        /* a tenant cannot write another tenant's rows, nor the platform's */
        ap_val_t v[] = {AP_VTEXT(TA)};
        err = (ap_err_t){0};
        assert_int_equal(tu_try(db, TB,
                                "INSERT INTO llm_providers (id, name, wire_protocol, tenant_id,"
                                " created_at, updated_at) VALUES ('x', 'x', 'openai', ?, 'now', 'now')",
                                v, 1, &err),
                         AP_ERR_DENIED);
        assert_int_equal(tu_try(db, TB,
                                "INSERT INTO llm_providers (id, name, wire_protocol,"
                                " created_at, updated_at) VALUES ('y', 'y', 'openai', 'now', 'now')",
                                NULL, 0, &err),
                         AP_ERR_DENIED);
        txn_t w = begin(db, TB);
        ap_rows_t r;
        assert_int_equal(ap_tx_query(w.tx, "UPDATE llm_models SET input_usd_per_mtok = 0,"
                                           " output_usd_per_mtok = 0", NULL, 0, &r, &err), AP_OK);
        assert_int_equal(r.changes, 1); /* only TB's own model */
        assert_int_equal(ap_tx_query(w.tx, "DELETE FROM llm_providers", NULL, 0, &r, &err), AP_OK);
        assert_int_equal(r.changes, 1);
        end(&w, false);
    }

    /* TA deletes its provider: its models go, the audit entries stay */
    t = begin(db, TA);
    assert_int_equal(ap_catalog_private_delete(t.tx, TA, &actor, provider_id, &err), AP_OK);
    end(&t, true);
    ap_val_t pv[] = {AP_VTEXT(provider_id)};
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM llm_models WHERE provider_id = ?", pv, 1), 0);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '" TA "'"
                              " AND action LIKE 'llm.private_provider.%'",
                              NULL, 0),
                     2);
    /* purging a tenant takes its private providers and models with it */
    const char *tb_models = "SELECT COUNT(*) FROM llm_models WHERE tenant_id = '" TB "'";
    assert_int_equal(tu_count(db, NULL, tb_models, NULL, 0), 1);
    tu_exec(db, NULL, "DELETE FROM tenants WHERE id = '" TB "'", NULL, 0);
    assert_int_equal(tu_count(db, NULL, tb_models, NULL, 0), 0);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM llm_providers WHERE tenant_id IS NOT NULL",
                              NULL, 0),
                     0);
    ap_db_close(db);
}

static void test_private_provider_validation(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    const char *bad_urls[] = {"ftp://x/v1",
                              "http://user:secret@10.0.0.5/v1",
                              "http://10.0.0.5/v1?key=abc",
                              "http://10.0.0.5/v1#x",
                              "http:///v1",
                              "http://10.0.0.5:99999/v1",
                              "http://bad host/v1",
                              "HTTP://x",
                              NULL};
    for (int i = 0; bad_urls[i]; i++) {
        err = (ap_err_t){0};
        json_decref(private_create(db, TA,
                                   json_pack("{s:s,s:s}", "name", "p", "base_url", bad_urls[i]),
                                   AP_ERR_INVALID, &err));
        assert_non_null(strstr(err.msg, "base_url"));
        assert_null(strstr(err.detail, "secret")); /* never echoed */
    }
    const char *bad_names[] = {"My-VLLM", "-x", "a b", "", NULL};
    for (int i = 0; bad_names[i]; i++)
        json_decref(private_create(db, TA,
                                   json_pack("{s:s,s:s}", "name", bad_names[i], "base_url",
                                             "http://10.0.0.5/v1"),
                                   AP_ERR_INVALID, &err));
    json_decref(private_create(db, TA,
                               json_pack("{s:s,s:s,s:[s,s]}", "name", "dup", "base_url",
                                         "http://10.0.0.5/v1", "models", "a", "a"),
                               AP_ERR_INVALID, &err));
    assert_non_null(strstr(err.detail, "models[1]"));
    json_decref(private_create(db, TA,
                               json_pack("{s:s,s:s,s:[{s:s}]}", "name", "typo", "base_url",
                                         "http://10.0.0.5/v1", "models", "modle_id", "a"),
                               AP_ERR_INVALID, &err));
    assert_non_null(strstr(err.detail, "models[0]"));
    json_decref(private_create(db, TA,
                               json_pack("{s:s,s:s,s:[{s:s,s:f}]}", "name", "half", "base_url",
                                         "http://10.0.0.5/v1", "models", "model_id", "a",
                                         "input_usd_per_mtok", 1.0),
                               AP_ERR_INVALID, &err));
    json_t *ok = private_create(db, TA,
                                json_pack("{s:s,s:s}", "name", "ipv6", "base_url",
                                          "http://[::1]:8080/v1"),
                                AP_OK, &err);
    json_decref(ok);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM llm_providers WHERE tenant_id IS NOT NULL", NULL, 0), 1);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_counts),
        cmocka_unit_test(test_rule_matches_generator),
        cmocka_unit_test(test_rule_spot_checks),
        cmocka_unit_test(test_resolve_both_spellings),
        cmocka_unit_test(test_resolve_ambiguous_and_missing),
        cmocka_unit_test(test_list_filters_and_pages),
        cmocka_unit_test(test_unpriced_model_keeps_null_prices),
        cmocka_unit_test(test_admin_changes_are_audited),
        cmocka_unit_test(test_private_provider_is_the_tenants_own),
        cmocka_unit_test(test_private_provider_validation),
    };
    TU_RUN_BACKENDS(tests);
}
