/*
 * budget.h - what a tenant has spent on models, and whether it may spend
 * more: the usage report (GET /api/v1/llm/usage) and the budget check the
 * gateway runs before every call.
 *
 * 1. Both read llm_usage (written asynchronously by llm/usage.c); callers
 *    that need their own last calls counted flush the writer first.
 * 2. Periods are UTC: the day and the month a call's created_at falls in.
 *    A budget resets at the start of the next UTC day / month.
 * 3. Unpriced calls (priced = 0) count towards token limits, never towards
 *    USD budgets, and are reported apart: unpriced, never free.
 * 4. Budget events: the first time in a period a budget is found at 80% or
 *    100% (or a call is refused), one audit entry "llm.budget.threshold" is
 *    written; llm_budget_events holds one row per budget, period and
 *    threshold so it is never repeated.
 */
#ifndef AP_LLM_BUDGET_H
#define AP_LLM_BUDGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/time.h"
#include "store/db.h"

/* Sums of tenant_id's usage in [since, until) (RFC 3339 as written by
 * ap_time_format, or NULL), grouped by "day", "model" or "agent".  *out is
 * a new reference: {"group_by", "since", "until", "data": [groups],
 * "total": {…}}.  An unknown group_by is AP_ERR_INVALID. */
ap_rc ap_budget_usage_report(ap_tx_t *tx, const char *tenant_id, const char *group_by,
                             const char *since, const char *until, json_t **out, ap_err_t *err);

typedef struct {
    double daily_usd;   /* < 0: no daily USD budget */
    double monthly_usd; /* < 0: no monthly USD budget */
} ap_budget_limits_t;

typedef struct {
    bool over;
    const char *budget;  /* "monthly_token_limit" | "budget_limit_daily" | "budget_limit_monthly" */
    const char *unit;    /* "tokens" | "USD" */
    double limit, spent, estimate;
    char resets_at[AP_TIME_LEN];
    int64_t retry_after_s; /* seconds until resets_at, at least 1 */
} ap_budget_verdict_t;

/* Checks a call estimated at est_tokens / est_usd against the tenant's
 * monthly_token_limit and the USD limits (may be NULL): one indexed read.
 * Writes threshold events (audit) when a budget is at 80% / 100% for the
 * first time in its period.  out->over says whether the call must be
 * refused; the other members then name the budget.  Thread-safe. */
ap_rc ap_budget_check(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const ap_actor_t *actor,
                      const ap_budget_limits_t *limits, int64_t est_tokens, double est_usd,
                      ap_budget_verdict_t *out, ap_err_t *err);

struct ap_llm_cache;

/* The same, reading the tenant's limit and totals through cache
 * (llm/cache.h; NULL: from the database).  Spending reaches the totals
 * when the usage writer has written it, with or without the cache. */
ap_rc ap_budget_check_cached(struct ap_llm_cache *cache, ap_db_t *db, ap_arena_t *a,
                             const char *tenant_id, const ap_actor_t *actor,
                             const ap_budget_limits_t *limits, int64_t est_tokens, double est_usd,
                             ap_budget_verdict_t *out, ap_err_t *err);

/* The usage writer's news: tokens and USD (priced calls) of one tenant
 * were written for UTC day (YYYY-MM-DD).  Cached totals of that day take
 * them in; a day other than today drops the tenant's totals instead. */
void ap_budget_cache_add(struct ap_llm_cache *cache, const char *tenant_id, const char *day,
                         int64_t tokens, double cost_usd);

#endif
