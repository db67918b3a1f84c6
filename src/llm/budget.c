/*
 * budget.c - usage reports and budget checks over llm_usage.
 *
 * 1. The check is one read of at most 31 rows of llm_usage_daily (kept by
 *    the usage writer): the day's cost, the month's cost and tokens, and
 *    the tenant's monthly_token_limit in one statement.  Summing llm_usage
 *    itself took ~90 ms for a month of 200k calls on SQLite; the daily
 *    rollup makes the check independent of the call count.  No cache.
 * 2. A call is refused when what was spent plus its estimate passes the
 *    limit, so the last call before the limit cannot overshoot it by more
 *    than the estimate's error.
 * 3. Threshold events go in their own short write transaction, only when a
 *    threshold is reached; INSERT … ON CONFLICT DO NOTHING on
 *    llm_budget_events makes them once per budget, period and threshold.
 */
#include "llm/budget.h"

#include "llm/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

static double num(const char *s) {
    return s ? strtod(s, NULL) : 0;
}

static json_t *group_json(const ap_rows_t *rows, int i, const char *key_name) {
    const char *k = ap_rows_get(rows, i, "k");
    json_t *o = json_object();
    if (key_name) json_object_set_new(o, key_name, k ? json_string(k) : json_null());
    json_object_set_new(o, "calls", json_integer((json_int_t)num(ap_rows_get(rows, i, "calls"))));
    json_object_set_new(o, "errors", json_integer((json_int_t)num(ap_rows_get(rows, i, "errors"))));
    const char *ints[] = {"prompt_tokens", "completion_tokens", "cached_tokens", "priced_calls",
                          "unpriced_calls"};
    for (size_t j = 0; j < sizeof ints / sizeof *ints; j++)
        json_object_set_new(o, ints[j],
                            json_integer((json_int_t)num(ap_rows_get(rows, i, ints[j]))));
    json_object_set_new(o, "cost_usd", json_real(num(ap_rows_get(rows, i, "cost_usd"))));
    return o;
}

#define SUMS                                                                                   \
    "COUNT(*) AS calls, SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END) AS errors,"        \
    " COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"                                        \
    " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"                                \
    " COALESCE(SUM(cached_tokens), 0) AS cached_tokens,"                                        \
    " COALESCE(SUM(cost_usd), 0) AS cost_usd,"                                                  \
    " SUM(CASE WHEN priced = 0 THEN 0 ELSE 1 END) AS priced_calls,"                             \
    " SUM(CASE WHEN priced = 0 THEN 1 ELSE 0 END) AS unpriced_calls"

ap_rc ap_budget_usage_report(ap_tx_t *tx, const char *tenant_id, const char *group_by,
                             const char *since, const char *until, json_t **out, ap_err_t *err) {
    const char *expr, *key_name;
    if (!group_by || strcmp(group_by, "day") == 0) {
        group_by = "day";
        expr = "substr(created_at, 1, 10)";
        key_name = "day";
    } else if (strcmp(group_by, "model") == 0) {
        expr = "provider || '/' || model";
        key_name = "model";
    } else if (strcmp(group_by, "agent") == 0) {
        expr = "agent_id";
        key_name = "agent_id";
    } else {
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "invalid group_by",
                          "use day, model or agent", "group_by is \"%.32s\"", group_by);
    }
    char where[160];
    ap_val_t v[3] = {AP_VTEXT(tenant_id)};
    int nv = 1;
    size_t n = (size_t)snprintf(where, sizeof where, "tenant_id = ?");
    if (since) {
        n += (size_t)snprintf(where + n, sizeof where - n, " AND created_at >= ?");
        v[nv++] = AP_VTEXT(since);
    }
    if (until) {
        snprintf(where + n, sizeof where - n, " AND created_at < ?");
        v[nv++] = AP_VTEXT(until);
    }
    char sql[1400];
    ap_rows_t rows, total;
    snprintf(sql, sizeof sql,
             "SELECT %s AS k, " SUMS " FROM llm_usage WHERE %s GROUP BY %s ORDER BY k", expr,
             where, expr);
    ap_rc rc = ap_tx_query(tx, sql, v, nv, &rows, err);
    if (rc) return rc;
    snprintf(sql, sizeof sql, "SELECT NULL AS k, " SUMS " FROM llm_usage WHERE %s", where);
    rc = ap_tx_query(tx, sql, v, nv, &total, err);
    if (rc) return rc;
    json_t *data = json_array();
    for (int i = 0; i < rows.nrows; i++) json_array_append_new(data, group_json(&rows, i, key_name));
    *out = json_pack("{s:s,s:s?,s:s?,s:o,s:o}", "group_by", group_by, "since", since, "until",
                     until, "data", data, "total", group_json(&total, 0, NULL));
    return AP_OK;
}

/* --- the check --- */

typedef struct {
    const char *name, *unit, *period;
    double limit, spent;
    const char *resets_at;
} budget_t;

static void threshold_events(ap_db_t *db, const char *tenant_id, const ap_actor_t *actor,
                             const budget_t *b, const int *thresholds, int n) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, &err);
    for (int i = 0; i < n && !rc; i++) {
        char now[AP_TIME_LEN];
        ap_time_format(ap_now_ms(), now);
        ap_val_t v[] = {AP_VTEXT(tenant_id), AP_VTEXT(b[i].name), AP_VTEXT(b[i].period),
                        AP_VINT(thresholds[i]), AP_VTEXT(now)};
        ap_rows_t res;
        rc = ap_tx_query(tx,
                         "INSERT INTO llm_budget_events (tenant_id, budget, period, threshold,"
                         " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         v, 5, &res, &err);
        if (rc || res.changes != 1) continue;
        json_t *ch = json_pack("{s:s,s:s,s:s,s:i,s:f,s:f,s:s}", "budget", b[i].name, "unit",
                               b[i].unit, "period", b[i].period, "threshold_percent",
                               thresholds[i], "limit", b[i].limit, "spent", b[i].spent,
                               "resets_at", b[i].resets_at);
        ap_audit_event_t ev = {.action = "llm.budget.threshold",
                               .resource_type = "llm_budget",
                               .resource_id = b[i].name,
                               .outcome = "success",
                               .changes = ch};
        rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, &err);
        json_decref(ch);
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (rc)
        ap_log(AP_LOG_WARN, "budget event not recorded", "{s:s,s:s}", "tenant_id", tenant_id,
               "detail", err.detail);
    ap_arena_free(a);
}

/* What the check reads: the tenant's token limit and its spending this
 * day and month — through the cache when there is one (cache.h; the usage
 * writer invalidates a tenant's totals after writing its records). */
typedef struct {
    double token_limit; /* < 0: none */
    double day_cost, month_cost, month_tokens;
} totals_t;

static ap_rc read_totals(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                         const char *tenant_id, const char *day, const char *month_day1,
                         totals_t *t, ap_err_t *err) {
    void *blob;
    size_t len;
    if (ap_llm_cache_get(cache, AP_LLM_CACHE_BUDGET, tenant_id, day, a, &blob, &len) &&
        len == sizeof *t) {
        memcpy(t, blob, sizeof *t);
        return AP_OK;
    }
    uint64_t gen = ap_llm_cache_gen(cache, AP_LLM_CACHE_BUDGET, tenant_id);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (rc) return rc;
    ap_val_t v[] = {AP_VTEXT(tenant_id), AP_VTEXT(day), AP_VTEXT(tenant_id), AP_VTEXT(month_day1)};
    rc = ap_tx_query(tx,
                     "SELECT (SELECT monthly_token_limit FROM tenants WHERE id = ?) AS token_limit,"
                     " COALESCE(SUM(CASE WHEN day = ? THEN cost_usd END), 0) AS day_cost,"
                     " COALESCE(SUM(cost_usd), 0) AS month_cost,"
                     " COALESCE(SUM(tokens), 0) AS month_tokens"
                     " FROM llm_usage_daily WHERE tenant_id = ? AND day >= ?",
                     v, 4, &rows, err);
    ap_tx_rollback(tx);
    if (rc) return rc;
    const char *tl = ap_rows_get(&rows, 0, "token_limit");
    *t = (totals_t){.token_limit = tl ? num(tl) : -1,
                    .day_cost = num(ap_rows_get(&rows, 0, "day_cost")),
                    .month_cost = num(ap_rows_get(&rows, 0, "month_cost")),
                    .month_tokens = num(ap_rows_get(&rows, 0, "month_tokens"))};
    ap_llm_cache_put(cache, gen, AP_LLM_CACHE_BUDGET, tenant_id, day, t, sizeof *t);
    return AP_OK;
}

typedef struct {
    int64_t tokens;
    double cost;
} delta_t;

static void add_delta(void *val, size_t len, void *ud) {
    const delta_t *d = ud;
    if (len != sizeof(totals_t)) return;
    totals_t *t = val;
    t->day_cost += d->cost;
    t->month_cost += d->cost;
    t->month_tokens += (double)d->tokens;
}

void ap_budget_cache_add(struct ap_llm_cache *cache, const char *tenant_id, const char *day,
                         int64_t tokens, double cost_usd) {
    if (!cache) return;
    char today[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), today);
    if (strncmp(day, today, 10) != 0) {
        ap_llm_cache_invalidate(cache, tenant_id, AP_LLM_CACHE_BUDGET);
        return;
    }
    char key[11];
    memcpy(key, day, 10);
    key[10] = '\0';
    delta_t d = {tokens, cost_usd};
    ap_llm_cache_update(cache, AP_LLM_CACHE_BUDGET, tenant_id, key, add_delta, &d);
}

ap_rc ap_budget_check(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const ap_actor_t *actor,
                      const ap_budget_limits_t *limits, int64_t est_tokens, double est_usd,
                      ap_budget_verdict_t *out, ap_err_t *err) {
    return ap_budget_check_cached(NULL, db, a, tenant_id, actor, limits, est_tokens, est_usd, out,
                                  err);
}

ap_rc ap_budget_check_cached(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                             const char *tenant_id, const ap_actor_t *actor,
                             const ap_budget_limits_t *limits, int64_t est_tokens, double est_usd,
                             ap_budget_verdict_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    int64_t now = ap_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char day[16], month[16], month_day1[16];
    snprintf(day, sizeof day, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
    memcpy(month, day, 7);
    month[7] = '\0';
    memcpy(month_day1, day, 8);
    memcpy(month_day1 + 8, "01", 3);
    /* reset times are formatted only when a verdict or an event needs them */
    char next_day[AP_TIME_LEN] = "", next_month[AP_TIME_LEN] = "";
    int64_t day_ms = 0, next_month_ms = 0;

    totals_t t;
    ap_rc rc = read_totals(cache, db, a, tenant_id, day, month_day1, &t, err);
    if (rc) return rc;
    budget_t b[3] = {
        {"monthly_token_limit", "tokens", month, t.token_limit, t.month_tokens, next_month},
        {"budget_limit_daily", "USD", day, limits ? limits->daily_usd : -1, t.day_cost, next_day},
        {"budget_limit_monthly", "USD", month, limits ? limits->monthly_usd : -1, t.month_cost,
         next_month},
    };
    double est[3] = {(double)est_tokens, est_usd, est_usd};
    bool need_times = false;
    for (int i = 0; i < 3; i++)
        if (b[i].limit >= 0 && (b[i].spent >= 0.8 * b[i].limit || b[i].spent + est[i] > b[i].limit))
            need_times = true;
    if (need_times) {
        struct tm d = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = tm.tm_mday};
        day_ms = (int64_t)timegm(&d) * 1000;
        d = (struct tm){.tm_year = tm.tm_year, .tm_mon = tm.tm_mon + 1, .tm_mday = 1};
        next_month_ms = (int64_t)timegm(&d) * 1000;
        ap_time_format(day_ms + 86400000, next_day);
        ap_time_format(next_month_ms, next_month);
    }
    budget_t hit[6];
    int thr[6], nhit = 0;
    for (int i = 0; i < 3; i++) {
        if (b[i].limit < 0) continue; /* no such budget */
        bool over = b[i].spent + est[i] > b[i].limit;
        if (b[i].spent >= 0.8 * b[i].limit) {
            hit[nhit] = b[i];
            thr[nhit++] = 80;
        }
        if (b[i].spent >= b[i].limit || over) {
            hit[nhit] = b[i];
            thr[nhit++] = 100;
        }
        if (over && !out->over) {
            out->over = true;
            out->budget = b[i].name;
            out->unit = b[i].unit;
            out->limit = b[i].limit;
            out->spent = b[i].spent;
            out->estimate = est[i];
            snprintf(out->resets_at, sizeof out->resets_at, "%s", b[i].resets_at);
            int64_t reset_ms = b[i].resets_at == next_day ? day_ms + 86400000 : next_month_ms;
            out->retry_after_s = (reset_ms - now + 999) / 1000;
            if (out->retry_after_s < 1) out->retry_after_s = 1;
        }
    }
    if (nhit) threshold_events(db, tenant_id, actor, hit, thr, nhit);
    return AP_OK;
}
