/*
 * llm_usage.c - GET /api/v1/tenants/{tenant_id}/llm/usage (alias
 * GET /api/v1/llm/usage): a tenant's model usage summed by day, model or
 * agent.
 *
 * 1. Permission llm.read: every role of the tenant may see what it spends
 *    (amounts and token counts, no prompt or key).
 * 2. The usage writer is flushed first, so the calls this tenant made
 *    before the request are counted (it waits only for records already
 *    queued).
 * 3. since / until are RFC 3339 instants (since inclusive, until
 *    exclusive); both optional.
 */
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "llm/budget.h"
#include "llm/usage.h"

void ap_h_llm_usage(ap_req_t *r) {
    const char *since, *until;
    if (!ap_api_time(r, "since", &since) || !ap_api_time(r, "until", &until)) return;
    const char *group_by = ap_req_query(r, "group_by");
    if (group_by && !*group_by) group_by = NULL;
    ap_usage_flush(r->app->usage);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_budget_usage_report(tx, r->tenant_id, group_by, since, until, &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}
