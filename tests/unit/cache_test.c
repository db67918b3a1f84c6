/*
 * cache_test.c - llm/cache.c and its two users: the route cache
 * (ap_llm_route_cached) and the budget totals (ap_budget_check_cached,
 * ap_budget_cache_add), on every backend.
 *
 * 1. The table: copies in and out, expiry, invalidation by tenant and kind,
 *    in-place updates, and refusal of a value read before an invalidation.
 * 2. Routes: a hit gives the same route (strings in the caller's arena)
 *    without reading the database — shown by changing the database
 *    behind the cache's back — until an invalidation; routes that depend
 *    on the request (policies) are never kept.
 * 3. Budgets: cached totals take in the usage writer's news, so a limit is
 *    enforced without a database read.
 */
#include "testutil.h"

#include <jansson.h>

#include "llm/budget.h"
#include "llm/cache.h"
#include "llm/router.h"

#define T1 "01a1cac7-0000-7000-8000-000000000001"
#define T2 "01a1cac7-0000-7000-8000-000000000002"

static bool get_str(ap_llm_cache_t *c, int kind, const char *t, const char *name, ap_arena_t *a,
                    const char **out) {
    void *v;
    size_t n;
    if (!ap_llm_cache_get(c, kind, t, name, a, &v, &n)) return false;
    *out = v;
    return true;
}

static void bump(void *val, size_t len, void *ud) {
    (void)ud;
    ((char *)val)[len - 2]++;
}

static void test_table(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_cache_t *c = ap_llm_cache_new(60000);
    const char *s;
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    ap_llm_cache_put(c, ap_llm_cache_gen(c, AP_LLM_CACHE_ROUTE, T1), AP_LLM_CACHE_ROUTE, T1, "m",
                     "one", 4);
    ap_llm_cache_put(c, ap_llm_cache_gen(c, AP_LLM_CACHE_BUDGET, T1), AP_LLM_CACHE_BUDGET, T1, "m",
                     "two", 4);
    ap_llm_cache_put(c, ap_llm_cache_gen(c, AP_LLM_CACHE_ROUTE, T2), AP_LLM_CACHE_ROUTE, T2, "m",
                     "three", 6);
    assert_true(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    assert_string_equal(s, "one");
    assert_true(get_str(c, AP_LLM_CACHE_BUDGET, T1, "m", a, &s));
    assert_string_equal(s, "two");
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "other", a, &s));

    /* in place; and a value read before that is refused */
    uint64_t old = ap_llm_cache_gen(c, AP_LLM_CACHE_BUDGET, T1);
    ap_llm_cache_update(c, AP_LLM_CACHE_BUDGET, T1, "m", bump, NULL);
    assert_true(get_str(c, AP_LLM_CACHE_BUDGET, T1, "m", a, &s));
    assert_string_equal(s, "twp");
    ap_llm_cache_put(c, old, AP_LLM_CACHE_BUDGET, T1, "m", "stale", 6);
    assert_true(get_str(c, AP_LLM_CACHE_BUDGET, T1, "m", a, &s));
    assert_string_equal(s, "twp");

    /* invalidation by kind and tenant */
    ap_llm_cache_invalidate(c, T1, AP_LLM_CACHE_BUDGET);
    assert_false(get_str(c, AP_LLM_CACHE_BUDGET, T1, "m", a, &s));
    assert_true(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    ap_llm_cache_invalidate(c, T1, AP_LLM_CACHE_ALL);
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    assert_true(get_str(c, AP_LLM_CACHE_ROUTE, T2, "m", a, &s));
    ap_llm_cache_invalidate(c, NULL, AP_LLM_CACHE_ALL);
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T2, "m", a, &s));

    /* the bound: past it the table starts over */
    for (int i = 0; i <= AP_LLM_CACHE_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        ap_llm_cache_put(c, ap_llm_cache_gen(c, AP_LLM_CACHE_ROUTE, T1), AP_LLM_CACHE_ROUTE, T1,
                         name, "x", 2);
    }
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "n0", a, &s));
    assert_true(get_str(c, AP_LLM_CACHE_ROUTE, T1, "n4096", a, &s));
    ap_llm_cache_free(c);

    /* expiry, and a cache switched off */
    c = ap_llm_cache_new(30);
    ap_llm_cache_put(c, 0, AP_LLM_CACHE_ROUTE, T1, "m", "one", 4);
    assert_true(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    usleep(60 * 1000);
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    ap_llm_cache_free(c);
    c = ap_llm_cache_new(0);
    ap_llm_cache_put(c, 0, AP_LLM_CACHE_ROUTE, T1, "m", "one", 4);
    assert_false(get_str(c, AP_LLM_CACHE_ROUTE, T1, "m", a, &s));
    ap_llm_cache_free(c);
    ap_llm_cache_free(NULL);
    ap_arena_free(a);
}

static ap_llm_req_t req_of(ap_arena_t *a, const char *model) {
    ap_llm_msg_t *m = ap_arena_calloc(a, sizeof *m);
    m->role = AP_LLM_USER;
    m->content = "hello";
    return (ap_llm_req_t){.model = model, .msgs = m, .nmsgs = 1};
}

static void test_routes(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    ap_llm_cache_t *c = ap_llm_cache_new(60000);
    ap_err_t err = {0};
    ap_arena_t *a1 = ap_arena_new(4096), *a2 = ap_arena_new(4096);
    ap_llm_req_t r = req_of(a1, "openai/gpt-4o-mini");
    ap_llm_route_t first, hit;
    assert_int_equal(ap_llm_route_cached(c, db, a1, T1, NULL, &r, NULL, &first, &err), AP_OK);
    assert_true(first.cacheable);
    /* the catalog changes behind the cache's back: the hit does not see it */
    tu_exec(db, NULL, "UPDATE llm_models SET active = 0 WHERE id = 'openai/gpt-4o-mini'", NULL, 0);
    assert_int_equal(ap_llm_route_cached(c, db, a2, T1, NULL, &r, NULL, &hit, &err), AP_OK);
    assert_int_equal(hit.ntargets, first.ntargets);
    assert_string_equal(hit.info[0].catalog_id, "openai/gpt-4o-mini");
    assert_string_equal(hit.targets[0].model, first.targets[0].model);
    assert_string_equal(hit.targets[0].api_key, "sk-cache-test");
    assert_string_equal(hit.reason, "requested");
    assert_ptr_not_equal(hit.info[0].catalog_id, first.info[0].catalog_id);
    assert_true(ap_arena_used(a2) > 0);
    ap_arena_free(a1); /* the hit lives in its own arena */
    assert_string_equal(hit.info[0].provider, "openai");
    /* until an invalidation (a catalog write) */
    ap_llm_cache_invalidate(c, NULL, AP_LLM_CACHE_ALL);
    assert_int_equal(ap_llm_route_cached(c, db, a2, T1, NULL, &r, NULL, &hit, &err),
                     AP_ERR_NOT_FOUND);
    tu_exec(db, NULL, "UPDATE llm_models SET active = 1 WHERE id = 'openai/gpt-4o-mini'", NULL, 0);

    /* a policy's route depends on the request: never kept */
    ap_llm_req_t p = req_of(a2, "cheapest");
    assert_int_equal(ap_llm_route_cached(c, db, a2, T1, NULL, &p, NULL, &hit, &err), AP_OK);
    assert_false(hit.cacheable);
    void *v;
    size_t n;
    assert_false(ap_llm_cache_get(c, AP_LLM_CACHE_ROUTE, T1, "cheapest", a2, &v, &n));
    ap_arena_free(a2);
    ap_llm_cache_free(c);
    ap_db_close(db);
}

static void test_budget(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    tu_exec(db, NULL, "UPDATE tenants SET monthly_token_limit = 100 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(T1)}, 1);
    ap_llm_cache_t *c = ap_llm_cache_new(60000);
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(4096);
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_budget_verdict_t v;
    assert_int_equal(ap_budget_check_cached(c, db, a, T1, &actor, NULL, 50, 0, &v, &err), AP_OK);
    assert_false(v.over);
    /* the writer's news reaches the cached totals: 60 tokens spent today */
    char today[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), today);
    ap_budget_cache_add(c, T1, today, 60, 0.01);
    assert_int_equal(ap_budget_check_cached(c, db, a, T1, &actor, NULL, 50, 0, &v, &err), AP_OK);
    assert_true(v.over);
    assert_float_equal(v.spent, 60, 0);
    assert_string_equal(v.budget, "monthly_token_limit");
    /* the database never saw it: without the cache the call passes */
    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 50, 0, &v, &err), AP_OK);
    assert_false(v.over);
    /* news of another day drops the totals: the next check reads again */
    ap_budget_cache_add(c, T1, "1999-01-01", 1, 0);
    assert_int_equal(ap_budget_check_cached(c, db, a, T1, &actor, NULL, 50, 0, &v, &err), AP_OK);
    assert_false(v.over);
    ap_arena_free(a);
    ap_llm_cache_free(c);
    ap_db_close(db);
}

int main(void) {
    setenv("AP_PROVIDER_OPENAI_API_KEY", "sk-cache-test", 1);
    unsetenv("AP_FALLBACK_MODELS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_budget),
    };
    TU_RUN_BACKENDS(tests);
}
