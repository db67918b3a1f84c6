/*
 * tasks.c - agent tasks, their messages and the event log:
 *   /api/v1/tenants/{tenant_id}/tasks[/{task_id}[/tree|/steps|/messages|/events]]
 *   /api/v1/tenants/{tenant_id}/tasks/{task_id}:cancel|:approve|:reject
 *   /api/v1/tenants/{tenant_id}/messages, /api/v1/tenants/{tenant_id}/events
 * and the same without the tenant (alias: tenant from the credential).
 *
 * 1. task.read for reading, task.write to create, cancel and post
 *    messages, task.approve to approve or reject.
 * 2. After a commit, tasks that became runnable go to the runner and the
 *    event bus is told (orch/runner.h, events/event.h).
 * 3. …/events answers a JSON page of events, or, with
 *    `Accept: text/event-stream`, a live stream (api/sse.h) resuming after
 *    Last-Event-ID (or ?after=).
 * 4. The dead-letter view is the board filtered on status=failed: each
 *    failed task carries `error` {code, detail}.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/sse.h"
#include "http/server.h"
#include "orch/message.h"
#include "orch/runner.h"
#include "orch/task.h"

static void after_commit(ap_req_t *r, const ap_orch_wake_t *wake) {
    ap_orch_runner_wake(r->app->runner, r->tenant_id, wake);
    ap_bus_publish(r->app->bus, r->tenant_id);
}

void ap_h_task_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_orch_task_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_orch_wake_t wake = {0};
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_task_create(tx, r->tenant_id, &r->actor, in, &out, &wake, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) after_commit(r, &wake);
    ap_api_done(r, rc, &err, 201, out);
}

static bool enum_param(ap_req_t *r, const char *name, const char *const *allowed,
                       const char **out) {
    const char *v = ap_req_query(r, name);
    *out = v;
    if (!v) return true;
    for (int i = 0; allowed[i]; i++)
        if (strcmp(v, allowed[i]) == 0) return true;
    ap_err_t err;
    ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid filter",
               "see the allowed values in docs/api/openapi.yaml", "?%s=%.40s is not one of the %s values",
               name, ap_req_utf8(r->arena, v), name);
    ap_resp_problem(r, &err);
    return false;
}

static bool id_param(ap_req_t *r, const char *name, const char **out) {
    const char *v = ap_req_query(r, name);
    *out = v;
    if (!v || ap_uuid_valid(v)) return true;
    ap_err_t err;
    ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid id",
               "ids are UUIDs as returned by the API", "?%s=%.64s is not a UUID", name,
               ap_req_utf8(r->arena, v));
    ap_resp_problem(r, &err);
    return false;
}

static ap_rc task_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *f,
                       json_t **items, const char **next, ap_err_t *err) {
    (void)pg; /* in the filter */
    return ap_orch_task_list(tx, tenant_id, f, items, next, err);
}

void ap_h_task_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (!ap_api_page(r, &pg)) return;
    ap_orch_task_filter_t f = {.limit = pg.limit, .after = pg.cursor};
    if (!enum_param(r, "status", ap_orch_task_statuses, &f.status) ||
        !enum_param(r, "priority", ap_orch_task_priorities, &f.priority) ||
        !id_param(r, "agent_id", &f.agent_id) || !id_param(r, "group_id", &f.group_id) ||
        !id_param(r, "parent_task_id", &f.parent_task_id))
        return;
    ap_api_list(r, &pg, task_list, &f);
}

void ap_h_task_get(ap_req_t *r) { ap_api_get_one(r, "task_id", ap_orch_task_get); }
void ap_h_task_tree(ap_req_t *r) { ap_api_get_one(r, "task_id", ap_orch_task_tree); }

/* The steps, whole, as one page. */
static ap_rc task_steps(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *id,
                        json_t **items, const char **next, ap_err_t *err) {
    (void)pg;
    (void)next;
    return ap_orch_task_steps(tx, tenant_id, id, items, err);
}

void ap_h_task_steps(ap_req_t *r) {
    const char *id;
    if (ap_api_id(r, "task_id", &id)) ap_api_list(r, &(ap_api_page_t){0}, task_steps, (void *)id);
}

void ap_h_task_cancel(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "task_id", &id)) return;
    json_t *in = NULL;
    if (r->body.len && ap_req_json(r, ap_orch_task_cancel_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_orch_wake_t wake = {0};
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_orch_task_cancel(tx, r->tenant_id, &r->actor, id, in ? ap_json_str(in, "reason") : NULL,
                                 &out, &wake, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) after_commit(r, &wake);
    ap_api_done(r, rc, &err, 200, out);
}

static void decide(ap_req_t *r, bool approve) {
    const char *id;
    if (!ap_api_id(r, "task_id", &id)) return;
    json_t *in = NULL;
    if (r->body.len && ap_req_json(r, ap_orch_task_decide_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_orch_wake_t wake = {0};
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc)
        rc = ap_orch_task_decide(tx, r->tenant_id, &r->actor, id, approve,
                                 in ? ap_json_str(in, "comment") : NULL, &out, &wake, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) after_commit(r, &wake);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_task_approve(ap_req_t *r) { decide(r, true); }
void ap_h_task_reject(ap_req_t *r) { decide(r, false); }

/* A task's messages (404 when there is no such task), or all of them. */
static ap_rc messages(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *task_id,
                      json_t **items, const char **next, ap_err_t *err) {
    json_t *t = NULL;
    ap_rc rc = task_id ? ap_orch_task_get(tx, tenant_id, task_id, &t, err) : AP_OK;
    json_decref(t);
    if (!rc)
        rc = ap_orch_message_list(tx, tenant_id, task_id, pg->cursor, pg->limit, items, next, err);
    return rc;
}

void ap_h_task_messages(ap_req_t *r) {
    const char *id;
    ap_api_page_t pg;
    if (ap_api_id(r, "task_id", &id) && ap_api_page(r, &pg))
        ap_api_list(r, &pg, messages, (void *)id);
}

void ap_h_message_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (ap_api_page(r, &pg)) ap_api_list(r, &pg, messages, NULL);
}

void ap_h_message_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_orch_message_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_message_create(tx, r->tenant_id, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    if (!rc) ap_bus_publish(r->app->bus, r->tenant_id);
    ap_api_done(r, rc, &err, 201, out);
}

static void events(ap_req_t *r, const char *task_id) {
    ap_event_filter_t f = {.task_id = task_id};
    const char *after = ap_req_query(r, "after");
    if (!after) after = ap_req_query(r, "cursor");
    const char *last_id = ap_req_header(r, "last-event-id");
    if (last_id && *last_id) after = last_id;
    if (after) {
        char *end;
        long long v = strtoll(after, &end, 10);
        if (*end || !*after || v < 0) {
            ap_err_t err;
            ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid event position",
                       "pass the id of the last event received (an integer)",
                       "\"%.40s\" is not an event id", ap_req_utf8(r->arena, after));
            ap_resp_problem(r, &err);
            return;
        }
        f.after_seq = v;
    }
    f.type = ap_req_query(r, "type");
    if (!id_param(r, "agent_id", &f.agent_id) || !id_param(r, "group_id", &f.group_id)) return;
    if (!task_id && !id_param(r, "task_id", &f.task_id)) return;
    int limit;
    const char *cursor_unused;
    if (ap_req_page(r, 100, 1000, &limit, &cursor_unused)) return;
    f.limit = limit;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *t = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc && task_id) rc = ap_orch_task_get(tx, r->tenant_id, task_id, &t, &err);
    json_decref(t);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    const char *accept = ap_req_header(r, "accept");
    if (accept && strstr(accept, "text/event-stream") && r->app->sse) {
        ap_tx_rollback(tx);
        ap_sse_hub_add(r->app->sse, r, r->tenant_id, &f);
        return;
    }
    json_t *items = NULL;
    int64_t last = 0;
    rc = ap_event_list(tx, r->tenant_id, &f, &items, &last, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    const char *next = (int)json_array_size(items) == limit
                           ? ap_arena_printf(r->arena, "%lld", (long long)last)
                           : NULL;
    ap_resp_page(r, items, next);
}

void ap_h_task_events(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "task_id", &id)) return;
    events(r, id);
}

void ap_h_event_list(ap_req_t *r) { events(r, NULL); }
