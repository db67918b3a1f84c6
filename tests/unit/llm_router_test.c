/*
 * llm_router_test.c - routing policies (llm/policy.c) and their use by the
 * model router (llm/router.c) over the seeded catalog, on every backend.
 * (tests/unit/router_test.c is the HTTP route table's test.)
 *
 * 1. Pure parts: needs, the difficulty rule with its documented signals,
 *    rule shapes and matching order, ranking for each policy.
 * 2. The router: with only OpenAI given a key (and the builtin model), the
 *    cheapest / fastest / auto policies pick what the ranking rule says —
 *    checked as properties against every usable candidate, not as a copy
 *    of today's prices — and configuration rules pin by agent, task type
 *    and metadata, in order; every reason names the policy or rule.
 */
#include "testutil.h"

#include <jansson.h>

#include "llm/catalog.h"
#include "llm/config.h"
#include "llm/policy.h"
#include "llm/router.h"

#define T1 "01a1b0e7-0000-7000-8000-000000000001"
#define AGENT "01a1b0e7-0000-7000-8000-0000000000a1"

static ap_llm_msg_t *msgs1(ap_arena_t *a, const char *text) {
    ap_llm_msg_t *m = ap_arena_calloc(a, sizeof *m);
    m->role = AP_LLM_USER;
    m->content = text;
    return m;
}

static ap_llm_req_t req_of(ap_arena_t *a, const char *model, const char *text) {
    return (ap_llm_req_t){.model = model, .msgs = msgs1(a, text), .nmsgs = 1};
}

/* ---- pure -------------------------------------------------------------- */

static void test_difficulty(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_difficulty_t d;
    ap_llm_req_t r = req_of(a, "auto", "What is the capital of France?");
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 0);
    assert_string_equal(d.level, "easy");
    assert_int_equal(d.tier, 1);
    assert_string_equal(d.why, "short, plain");

    r = req_of(a, "auto", "Prove, step by step, that the square root of 2 is irrational.");
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 4); /* two cues, +2 each */
    assert_string_equal(d.level, "hard");
    assert_int_equal(d.tier, 3);
    assert_non_null(strstr(d.why, "cue \"prove\""));
    assert_non_null(strstr(d.why, "cue \"step by step\""));

    r = req_of(a, "auto", "Why does this fail?\n```c\nint main() { return x; }\n```");
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 2);
    assert_string_equal(d.level, "medium");
    assert_non_null(strstr(d.why, "code block"));

    /* cues count at most +4; tools add one */
    r = req_of(a, "auto", "analyze and compare the algorithm, then debug it");
    ap_llm_tool_t tool = {.name = "lookup"};
    r.tools = &tool;
    r.ntools = 1;
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 5);
    assert_non_null(strstr(d.why, "tools"));

    /* length alone: ~600 tokens is +1, ~2500 +2 */
    char *big = ap_arena_alloc(a, 10001);
    memset(big, 'a', 10000);
    big[10000] = '\0';
    big[2400] = '\0';
    r = req_of(a, "auto", big);
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 1);
    big[2400] = 'a';
    r = req_of(a, "auto", big);
    ap_llm_difficulty(&r, &d);
    assert_int_equal(d.score, 2);
    ap_arena_free(a);
}

static void test_needs(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = req_of(a, "auto", "12345678");
    r.max_tokens = 100;
    ap_llm_needs_t n;
    ap_llm_needs_of(&r, &n);
    assert_false(n.tools);
    assert_false(n.vision);
    assert_int_equal(n.prompt_tokens, 2);
    assert_int_equal(n.output_tokens, 100);
    json_t *parts = json_loads("[{\"type\":\"text\",\"text\":\"what is this\"},"
                               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}}]",
                               0, NULL);
    r.msgs[0].content = NULL;
    r.msgs[0].parts = parts;
    ap_llm_needs_of(&r, &n);
    assert_true(n.vision);
    assert_int_equal(n.prompt_tokens, 3);
    json_decref(parts);
    ap_arena_free(a);
}

static void rule_bad(const char *json, const char *part) {
    json_t *r = json_loads(json, 0, NULL);
    assert_non_null(r);
    ap_err_t err = {0};
    assert_int_equal(ap_llm_rules_check(r, &err), AP_ERR_INVALID);
    if (!strstr(err.detail, part)) fail_msg("%s: detail \"%s\" lacks \"%s\"", json, err.detail, part);
    json_decref(r);
}

static void test_rules(void **state) {
    (void)state;
    rule_bad("[{}]", "routing_rules[0] needs exactly one of");
    rule_bad("[{\"model\":\"a/b\",\"policy\":\"cheapest\"}]", "exactly one");
    rule_bad("[{\"policy\":\"cheap\"}]", "\"policy\" other than");
    rule_bad("[{\"model\":\"a/b\"},{\"model\":\"a/b\",\"when\":{\"agent\":\"x\"}}]",
             "routing_rules[1] has a \"when\" key other than");
    rule_bad("[{\"model\":\"a/b\",\"when\":{\"metadata\":{\"k\":1}}}]", "not a string");
    rule_bad("[{\"policy\":\"auto\",\"quality_floor\":\"great\"}]", "quality_floor");
    rule_bad("[{\"model\":\"a/b\",\"extra\":1}]", "a member other than");
    rule_bad("{}", "not an array");

    json_t *rules = json_loads(
        "[{\"when\":{\"agent_id\":\"A\"},\"model\":\"m/agent\"},"
        " {\"when\":{\"task_type\":\"review\",\"metadata\":{\"tier\":\"gold\"}},\"policy\":\"auto\","
        "  \"quality_floor\":\"best\"},"
        " {\"when\":{\"task_type\":\"review\"},\"policy\":\"fastest\"},"
        " {\"policy\":\"cheapest\"}]",
        0, NULL);
    ap_err_t err = {0};
    assert_int_equal(ap_llm_rules_check(rules, &err), AP_OK);
    json_t *gold = json_pack("{s:s}", "tier", "gold");
    ap_llm_rule_match_t m;
    assert_true(ap_llm_rules_match(rules, "A", "review", gold, &m)); /* first wins */
    assert_int_equal(m.index, 0);
    assert_string_equal(m.model, "m/agent");
    assert_true(ap_llm_rules_match(rules, "B", "review", gold, &m));
    assert_int_equal(m.index, 1);
    assert_int_equal(m.policy, AP_POLICY_AUTO);
    assert_int_equal(m.quality_floor, 3);
    assert_true(ap_llm_rules_match(rules, NULL, "review", NULL, &m));
    assert_int_equal(m.index, 2);
    assert_int_equal(m.policy, AP_POLICY_FASTEST);
    assert_true(ap_llm_rules_match(rules, NULL, NULL, NULL, &m));
    assert_int_equal(m.index, 3);
    assert_false(m.has_when);
    json_decref(gold);
    json_decref(rules);
}

static void test_rank(void **state) {
    (void)state;
    ap_llm_cand_t c[] = {
        {.id = "p/big", .priced = true, .in_per_mtok = 3, .out_per_mtok = 15, .quality = 3,
         .speed = 1, .size = 3, .tools = true, .vision = true, .context_window = 200000},
        {.id = "p/mid", .priced = true, .in_per_mtok = 0.5, .out_per_mtok = 2, .quality = 2,
         .speed = 0, .size = 2, .tools = true, .context_window = 8000},
        {.id = "p/small", .priced = true, .in_per_mtok = 0.1, .out_per_mtok = 0.4, .quality = 1,
         .speed = 0, .size = 0, .tools = false, .context_window = 16000},
        {.id = "p/unpriced", .priced = false, .quality = 1, .speed = 0, .size = 0, .tools = true},
    };
    ap_llm_needs_t n = {.prompt_tokens = 100};
    int order[4];
    bool relaxed;
    int k = ap_llm_rank(AP_POLICY_CHEAPEST, &n, 0, c, 4, order, 4, &relaxed);
    assert_int_equal(k, 4);
    assert_string_equal(c[order[0]].id, "p/small");
    assert_string_equal(c[order[1]].id, "p/mid");
    assert_string_equal(c[order[3]].id, "p/unpriced"); /* unknown price is not cheap */
    n.tools = true; /* small cannot */
    k = ap_llm_rank(AP_POLICY_CHEAPEST, &n, 0, c, 4, order, 4, &relaxed);
    assert_int_equal(k, 3);
    assert_string_equal(c[order[0]].id, "p/mid");
    n.tools = false;
    n.prompt_tokens = 9000; /* mid's window is too small */
    k = ap_llm_rank(AP_POLICY_FASTEST, &n, 0, c, 4, order, 4, &relaxed);
    assert_string_equal(c[order[0]].id, "p/small"); /* fast and tiny, then cheaper */
    for (int i = 0; i < k; i++) assert_string_not_equal(c[order[i]].id, "p/mid");
    n.prompt_tokens = 100;
    k = ap_llm_rank(AP_POLICY_AUTO, &n, 2, c, 4, order, 4, &relaxed); /* medium: good+ */
    assert_false(relaxed);
    assert_int_equal(k, 2);
    assert_string_equal(c[order[0]].id, "p/mid");
    n.vision = true;
    n.quality_floor = 3;
    k = ap_llm_rank(AP_POLICY_AUTO, &n, 1, c, 4, order, 4, &relaxed);
    assert_int_equal(k, 1);
    assert_string_equal(c[order[0]].id, "p/big");
    /* nothing at the floor: the best available, and it says so */
    ap_llm_cand_t low[] = {c[2], c[3]};
    n = (ap_llm_needs_t){.prompt_tokens = 10};
    k = ap_llm_rank(AP_POLICY_AUTO, &n, 3, low, 2, order, 2, &relaxed);
    assert_true(relaxed);
    assert_int_equal(k, 2);
}

/* ---- the router over the catalog ----------------------------------------- */

static ap_db_t *setup(void) {
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    return db;
}

static ap_rc route(ap_db_t *db, ap_arena_t *a, const ap_llm_req_t *req,
                   const ap_llm_route_ctx_t *ctx, ap_llm_route_t *out, ap_err_t *err) {
    return ap_llm_route(db, a, T1, NULL, req, ctx, out, err);
}

/* Every usable candidate (OpenAI and builtin here) meeting the needs. */
static int usable(ap_db_t *db, ap_arena_t *a, ap_catalog_entry_t **out) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_catalog_entry_t *e;
    int n;
    if (ap_db_begin(db, T1, AP_TX_READ, a, &tx, &err) ||
        ap_catalog_chat_models(tx, T1, &e, &n, &err))
        fail_msg("%s", err.detail);
    ap_tx_rollback(tx);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].provider_id, "openai") || !strcmp(e[i].provider_id, "builtin"))
            e[k++] = e[i];
    *out = e;
    return k;
}

static double est(const ap_catalog_entry_t *e, int64_t in, int64_t out) {
    return ((double)in * e->input_usd_per_mtok + (double)out * e->output_usd_per_mtok) / 1e6;
}

static const ap_catalog_entry_t *find(ap_catalog_entry_t *e, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].id, id)) return &e[i];
    fail_msg("%s is not a usable candidate", id);
    return NULL;
}

static void test_route_policies(void **state) {
    (void)state;
    ap_db_t *db = setup();
    ap_arena_t *a = ap_arena_new(1 << 16);
    ap_err_t err = {0};
    ap_llm_route_t rt;
    ap_catalog_entry_t *e;
    int n = usable(db, a, &e);
    assert_true(n > 5);

    /* cheapest: the builtin model is free */
    ap_llm_req_t r = req_of(a, "cheapest", "hello");
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    assert_string_equal(rt.info[0].catalog_id, "builtin/agentprov-mini");
    assert_non_null(strstr(rt.reason, "cheapest: lowest estimated cost"));
    assert_true(rt.ntargets >= 2); /* the next ranked ones follow as fallbacks */

    /* with a quality floor from the metadata: no usable candidate at or
     * above it costs less than the one chosen */
    json_t *md = json_pack("{s:s}", "quality_floor", "good");
    ap_llm_route_ctx_t ctx = {.metadata = md};
    assert_int_equal(route(db, a, &r, &ctx, &rt, &err), AP_OK);
    const ap_catalog_entry_t *got = find(e, n, rt.info[0].catalog_id);
    assert_true(ap_llm_tier_parse(got->tiers.quality_tier) >= 2);
    for (int i = 0; i < n; i++)
        if (ap_llm_tier_parse(e[i].tiers.quality_tier) >= 2 && e[i].priced)
            assert_true(est(got, 2, 1024) <= est(&e[i], 2, 1024));
    assert_non_null(strstr(rt.reason, "quality floor good"));
    json_decref(md);

    /* fastest with an image: a vision model of the fastest tier and size */
    r = req_of(a, "fastest", NULL);
    json_t *parts = json_loads("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}}]", 0,
                               NULL);
    r.msgs[0].parts = ap_llm_json_keep(a, parts);
    json_decref(parts);
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    got = find(e, n, rt.info[0].catalog_id);
    assert_true(got->supports_vision);
    for (int i = 0; i < n; i++)
        if (e[i].supports_vision) {
            int si = ap_llm_speed_rank(e[i].tiers.speed_tier), sg = ap_llm_speed_rank(got->tiers.speed_tier);
            assert_true(sg <= si);
            if (si == sg)
                assert_true(ap_llm_size_rank(got->tiers.size_category) <=
                            ap_llm_size_rank(e[i].tiers.size_category));
        }
    assert_non_null(strstr(rt.reason, "fastest: fastest tier"));
    assert_non_null(strstr(rt.reason, "vision"));

    /* auto without a configuration: easy -> the basic tier (builtin, free);
     * hard -> the best tier */
    r = req_of(a, "auto", "hi there");
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    assert_string_equal(rt.info[0].catalog_id, "builtin/agentprov-mini");
    assert_non_null(strstr(rt.reason, "auto: easy request (short, plain) -> basic tier"));
    r = req_of(a, "auto", "Prove step by step that there are infinitely many primes.");
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    got = find(e, n, rt.info[0].catalog_id);
    assert_string_equal(got->tiers.quality_tier, "best");
    assert_non_null(strstr(rt.reason, "auto: hard request (cue \"prove\", cue \"step by step\") -> best tier"));

    /* a need nothing usable meets: a clear error naming the needs */
    r = req_of(a, "cheapest", NULL);
    parts = json_loads("[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}}]", 0, NULL);
    r.msgs[0].parts = ap_llm_json_keep(a, parts);
    json_decref(parts);
    r.max_tokens = 5000000; /* beyond every usable vision model's window */
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "no-usable-model");
    assert_non_null(strstr(err.detail, "vision"));
    ap_arena_free(a);
    ap_db_close(db);
}

static void config(ap_db_t *db, const char *json) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *in = json_loads(json, 0, NULL), *out = NULL;
    assert_non_null(in);
    ap_actor_t actor = {.type = "system", .id = "test"};
    if (ap_db_begin(db, T1, AP_TX_WRITE, a, &tx, &err) ||
        ap_llm_config_create(tx, T1, &actor, NULL, in, &out, &err) || ap_tx_commit(tx, &err))
        fail_msg("config: %s: %s", err.msg, err.detail);
    json_decref(in);
    json_decref(out);
    ap_arena_free(a);
}

static void test_route_rules(void **state) {
    (void)state;
    ap_db_t *db = setup();
    ap_arena_t *a = ap_arena_new(1 << 16);
    ap_err_t err = {0};
    ap_llm_route_t rt;
    config(db, "{\"name\":\"team\",\"is_tenant_default\":true,\"primary_model\":\"openai/gpt-4o\","
               "\"routing_rules\":["
               "{\"when\":{\"agent_id\":\"" AGENT "\"},\"model\":\"openai/gpt-4o-mini\"},"
               "{\"when\":{\"task_type\":\"triage\"},\"policy\":\"fastest\"},"
               "{\"when\":{\"metadata\":{\"plan\":\"premium\"}},\"policy\":\"auto\","
               "\"quality_floor\":\"best\"},"
               "{\"when\":{\"task_type\":\"exact\"},\"policy\":\"fixed\"}]}");
    config(db, "{\"name\":\"budget\",\"routing_rules\":[{\"policy\":\"cheapest\"}]}");
    setenv("AP_FALLBACK_MODELS", "builtin/agentprov-mini", 1);

    ap_llm_req_t r = req_of(a, "auto", "hello");
    ap_llm_route_ctx_t ctx = {.agent_id = AGENT, .task_type = "triage"};
    assert_int_equal(route(db, a, &r, &ctx, &rt, &err), AP_OK); /* rule 1 first */
    assert_string_equal(rt.info[0].catalog_id, "openai/gpt-4o-mini");
    assert_string_equal(rt.reason, "auto: configuration team rule 1");

    ctx.agent_id = "someone-else";
    assert_int_equal(route(db, a, &r, &ctx, &rt, &err), AP_OK);
    assert_non_null(strstr(rt.reason, "auto: configuration team rule 2: fastest tier"));
    assert_string_equal(rt.info[0].catalog_id, "builtin/agentprov-mini"); /* fast and tiny */

    json_t *md = json_pack("{s:s}", "plan", "premium");
    ap_llm_route_ctx_t ctx2 = {.metadata = md};
    assert_int_equal(route(db, a, &r, &ctx2, &rt, &err), AP_OK);
    assert_non_null(strstr(rt.reason, "auto: configuration team rule 3: easy request"));
    assert_non_null(strstr(rt.reason, "-> best tier"));
    assert_string_not_equal(rt.info[0].catalog_id, "builtin/agentprov-mini");
    json_decref(md);

    /* fixed: the primary model alone, no fallbacks */
    ap_llm_route_ctx_t ctx3 = {.task_type = "exact"};
    assert_int_equal(route(db, a, &r, &ctx3, &rt, &err), AP_OK);
    assert_int_equal(rt.ntargets, 1);
    assert_string_equal(rt.info[0].catalog_id, "openai/gpt-4o");
    assert_string_equal(rt.reason, "auto: configuration team rule 4: fixed");

    /* no rule matches: the primary model, then the fallback chain */
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    assert_string_equal(rt.info[0].catalog_id, "openai/gpt-4o");
    assert_string_equal(rt.reason, "auto: configuration team");
    assert_int_equal(rt.ntargets, 2);

    /* a configuration whose policy is a catch-all rule; request metadata
     * policy when no rule matches */
    r = req_of(a, "budget", "hello");
    assert_int_equal(route(db, a, &r, NULL, &rt, &err), AP_OK);
    assert_non_null(strstr(rt.reason, "configuration budget policy: lowest estimated cost"));
    md = json_pack("{s:s}", "routing_policy", "fastest");
    ap_llm_route_ctx_t ctx4 = {.metadata = md};
    r = req_of(a, "auto", "hello");
    assert_int_equal(route(db, a, &r, &ctx4, &rt, &err), AP_OK);
    assert_non_null(strstr(rt.reason, "request metadata routing_policy fastest"));
    json_decref(md);
    unsetenv("AP_FALLBACK_MODELS");
    ap_arena_free(a);
    ap_db_close(db);
}

int main(void) {
    unsetenv("AP_DEFAULT_MODEL");
    unsetenv("AP_FALLBACK_MODELS");
    setenv("AP_PROVIDER_OPENAI_API_KEY", "sk-test-not-sent", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_difficulty),
        cmocka_unit_test(test_needs),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_route_policies),
        cmocka_unit_test(test_route_rules),
    };
    TU_RUN_BACKENDS(tests);
}
