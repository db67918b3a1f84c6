/*
 * budget_test.c - llm/budget.c and the usage writer's daily rollup, on
 * every backend: usage reports sum what the writer wrote (priced and
 * unpriced apart), the budget check refuses past a limit, names the budget
 * and its reset, and writes each threshold event once.
 */
#include "testutil.h"

#include <jansson.h>

#include "llm/budget.h"
#include "llm/usage.h"

#define T1 "01a1fe00-0000-7000-8000-000000000001"
#define T2 "01a1fe00-0000-7000-8000-000000000002"

static void rec(ap_usage_writer_t *w, const char *tenant, const char *provider, const char *model,
                int64_t prompt, int64_t completion, bool priced, double cost) {
    ap_usage_rec_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant_id, sizeof r.tenant_id, "%s", tenant);
    snprintf(r.provider, sizeof r.provider, "%s", provider);
    snprintf(r.model, sizeof r.model, "%s", model);
    r.tokens = (ap_llm_usage_t){.prompt = prompt, .completion = completion, .cached = 1};
    r.priced = priced;
    r.cost_usd = cost;
    r.ttft_ms = -1;
    snprintf(r.outcome, sizeof r.outcome, "success");
    ap_usage_record(w, &r);
}

static json_t *report(ap_db_t *db, const char *tenant, const char *by, const char *since) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    if (ap_db_begin(db, tenant, AP_TX_READ, a, &tx, &err) ||
        ap_budget_usage_report(tx, tenant, by, since, NULL, &out, &err))
        fail_msg("report: %s %s", err.msg, err.detail);
    ap_arena_free(a);
    return out;
}

static void test_usage_report(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    tu_add_tenant(db, T2, "t2");
    ap_usage_writer_t *w;
    ap_err_t err = {0};
    assert_int_equal(ap_usage_writer_new(db, &w, &err), AP_OK);
    rec(w, T1, "openai", "gpt-4o-mini", 100, 20, true, 0.25);
    rec(w, T2, "openai", "gpt-4o-mini", 1000, 1000, true, 9);
    rec(w, T1, "openai", "gpt-4o-mini", 50, 10, true, 0.5);
    rec(w, T1, "mine", "llama", 7, 3, false, 0);
    ap_usage_flush(w);

    json_t *r = report(db, T1, "model", NULL);
    json_t *data = json_object_get(r, "data");
    assert_int_equal(json_array_size(data), 2);
    json_t *g = json_array_get(data, 1); /* ordered by key: mine/llama, openai/… */
    assert_string_equal(json_string_value(json_object_get(g, "model")), "openai/gpt-4o-mini");
    assert_int_equal(json_integer_value(json_object_get(g, "calls")), 2);
    assert_int_equal(json_integer_value(json_object_get(g, "prompt_tokens")), 150);
    assert_int_equal(json_integer_value(json_object_get(g, "completion_tokens")), 30);
    assert_int_equal(json_integer_value(json_object_get(g, "cached_tokens")), 2);
    assert_float_equal(json_real_value(json_object_get(g, "cost_usd")), 0.75, 1e-9);
    g = json_array_get(data, 0);
    assert_int_equal(json_integer_value(json_object_get(g, "unpriced_calls")), 1);
    assert_int_equal(json_integer_value(json_object_get(g, "priced_calls")), 0);
    assert_float_equal(json_real_value(json_object_get(g, "cost_usd")), 0, 1e-12);
    json_t *total = json_object_get(r, "total");
    assert_int_equal(json_integer_value(json_object_get(total, "calls")), 3);
    assert_int_equal(json_integer_value(json_object_get(total, "unpriced_calls")), 1);
    json_decref(r);

    r = report(db, T1, NULL, "2999-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(r, "group_by")), "day");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);

    /* the daily rollup agrees with the rows */
    const char *q = "SELECT SUM(tokens) FROM llm_usage_daily WHERE tenant_id = ?";
    assert_int_equal(tu_count(db, T1, q, (ap_val_t[]){AP_VTEXT(T1)}, 1), 190);
    assert_int_equal(tu_count(db, T2, q, (ap_val_t[]){AP_VTEXT(T2)}, 1), 2000);
    assert_int_equal(tu_count(db, T1, "SELECT SUM(calls) FROM llm_usage_daily WHERE tenant_id = ?",
                              (ap_val_t[]){AP_VTEXT(T1)}, 1),
                     3);

    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, T1, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_budget_usage_report(tx, T1, "week", NULL, NULL, &out, &err),
                     AP_ERR_INVALID);
    assert_null(out);
    ap_arena_free(a);
    ap_usage_writer_free(w);
    ap_db_close(db);
}

static int64_t events(ap_db_t *db) {
    return tu_count(db, T1,
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'llm.budget.threshold'", NULL, 0);
}

static void test_budget_check(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    tu_exec(db, NULL, "UPDATE tenants SET monthly_token_limit = 100 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(T1)}, 1);
    ap_usage_writer_t *w;
    ap_err_t err = {0};
    assert_int_equal(ap_usage_writer_new(db, &w, &err), AP_OK);
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_arena_t *a = ap_arena_new(4096);
    ap_budget_verdict_t v;

    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 100, 0, &v, &err), AP_OK);
    assert_false(v.over);
    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 101, 0, &v, &err), AP_OK);
    assert_true(v.over);
    assert_string_equal(v.budget, "monthly_token_limit");
    assert_string_equal(v.unit, "tokens");
    assert_float_equal(v.limit, 100, 0);
    assert_float_equal(v.spent, 0, 0);
    assert_non_null(strstr(v.resets_at, "-01T00:00:00.000Z"));
    assert_true(v.retry_after_s >= 1 && v.retry_after_s <= 31 * 86400);
    assert_int_equal(events(db), 1); /* 100%: a call refused */

    rec(w, T1, "openai", "gpt-4o-mini", 70, 15, true, 0.004);
    ap_usage_flush(w);
    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 10, 0, &v, &err), AP_OK);
    assert_false(v.over);
    assert_int_equal(events(db), 2); /* 80% reached */
    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 10, 0, &v, &err), AP_OK);
    assert_int_equal(ap_budget_check(db, a, T1, &actor, NULL, 16, 0, &v, &err), AP_OK);
    assert_true(v.over);
    assert_float_equal(v.spent, 85, 0);
    assert_int_equal(events(db), 2); /* once per budget, period and threshold */

    /* USD budgets: the daily one first */
    tu_exec(db, NULL, "UPDATE tenants SET monthly_token_limit = 1000000 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(T1)}, 1);
    ap_budget_limits_t lim = {.daily_usd = 0.005, .monthly_usd = 1};
    assert_int_equal(ap_budget_check(db, a, T1, &actor, &lim, 10, 0.0005, &v, &err), AP_OK);
    assert_false(v.over);
    assert_int_equal(ap_budget_check(db, a, T1, &actor, &lim, 10, 0.002, &v, &err), AP_OK);
    assert_true(v.over);
    assert_string_equal(v.budget, "budget_limit_daily");
    assert_string_equal(v.unit, "USD");
    assert_float_equal(v.spent, 0.004, 1e-12);
    assert_non_null(strstr(v.resets_at, "T00:00:00.000Z"));
    assert_true(v.retry_after_s >= 1 && v.retry_after_s <= 86400);
    lim = (ap_budget_limits_t){.daily_usd = -1, .monthly_usd = 0.004};
    assert_int_equal(ap_budget_check(db, a, T1, &actor, &lim, 10, 0.0001, &v, &err), AP_OK);
    assert_true(v.over);
    assert_string_equal(v.budget, "budget_limit_monthly");
    ap_arena_free(a);
    ap_usage_writer_free(w);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_report),
        cmocka_unit_test(test_budget_check),
    };
    TU_RUN_BACKENDS(tests);
}
