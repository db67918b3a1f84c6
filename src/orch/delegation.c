/*
 * delegation.c - delegate, query and escalate for callers outside a
 * running task (delegation.h).
 */
#include "orch/delegation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/id.h"
#include "core/time.h"
#include "orch/message.h"
#include "orch/team_view.h"

static ap_rc task_row(ap_tx_t *tx, const char *tenant, const char *id, const char *field,
                      ap_rows_t *row, ap_err_t *err) {
    ap_rc rc = ap_uuid_valid(id) ? ap_orch_task_row(tx, tenant, id, row, err) : AP_ERR_NOT_FOUND;
    if (rc == AP_ERR_NOT_FOUND)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "task not found",
                          "give the id of a task of this tenant",
                          "%s \"%.36s\" names no task", field, id ? id : "");
    return rc;
}

ap_rc ap_orch_delegate(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor, json_t *in,
                       json_t **out, ap_orch_wake_t *wake, ap_err_t *err) {
    const char *to = ap_json_str(in, "agent_id"), *from = ap_json_str(in, "from_agent_id");
    const char *parent = ap_json_str(in, "parent_task_id");
    ap_orch_agent_t tgt, src;
    ap_rc rc = ap_orch_tv_agent(tx, tenant, to ? to : "", "agent_id", &tgt, err);
    if (rc) return rc;
    if (from) {
        rc = ap_orch_tv_agent(tx, tenant, from, "from_agent_id", &src, err);
        if (rc) return rc;
        if (!ap_orch_tv_may_delegate(tx, tenant, src.id, tgt.id))
            return ap_err_set(err, AP_ERR_DENIED, "relationship", "delegation not allowed",
                              "relate the agents (supervises or delegates_to) first, or leave"
                              " from_agent_id out",
                              "agent %s may not delegate to %s (no supervises, delegates_to or"
                              " reports_to relationship)", src.name, tgt.name);
    }
    ap_rows_t prow;
    int depth = 0;
    if (parent) {
        rc = task_row(tx, tenant, parent, "parent_task_id", &prow, err);
        if (rc) return rc;
        if (ap_orch_status_terminal(ap_rows_get(&prow, 0, "status")))
            return ap_err_set(err, AP_ERR_CONFLICT, "task-finished", "parent task is finished",
                              "give a task that is still open, or leave parent_task_id out",
                              "task %s is %s", parent, ap_rows_get(&prow, 0, "status"));
        depth = (int)ap_rows_int(&prow, 0, "depth", 0) + 1;
        if (from && depth > src.max_delegation_depth)
            return ap_err_set(err, AP_ERR_DENIED, "delegation-depth", "delegation too deep",
                              "delegate from a task closer to the root",
                              "depth %d exceeds max_delegation_depth %d of agent %s", depth,
                              src.max_delegation_depth, src.name);
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:{s:{s:s?,s:s?}}}", "assigned_agent_id", tgt.id,
                             "objective", ap_json_str(in, "objective"), "priority",
                             ap_json_str(in, "priority") ? ap_json_str(in, "priority")
                             : parent ? ap_rows_get(&prow, 0, "priority") : "normal",
                             "context", "_delegation", "parent_task_id", parent,
                             "delegated_by", from ? src.name : NULL);
    json_t *task = NULL;
    rc = ap_orch_task_create(tx, tenant, actor, body, &task, wake, err);
    json_decref(body);
    if (rc) return rc;
    char id[40];
    snprintf(id, sizeof id, "%s", ap_json_str(task, "id"));
    if (parent || from) {
        ap_val_t p[] = {AP_VTEXT(parent), AP_VTEXT(parent ? ap_rows_get(&prow, 0, "root_task_id") : id),
                        AP_VINT(depth), AP_VTEXT(from ? src.id : NULL),
                        AP_VTEXT(parent ? ap_rows_get(&prow, 0, "group_id") : NULL),
                        AP_VTEXT(tenant), AP_VTEXT(id)};
        rc = ap_tx_query(tx,
                         "UPDATE agent_tasks SET parent_task_id = ?, root_task_id = ?, depth = ?,"
                         " created_by_agent_id = ?, group_id = COALESCE(?, group_id)"
                         " WHERE tenant_id = ? AND id = ?",
                         p, 7, NULL, err);
    }
    if (!rc && from) {
        json_t *c = json_pack("{s:s}", "objective", ap_json_str(in, "objective"));
        ap_orch_msg_t m = {.task_id = id, .from_agent_id = src.id, .to_agent_id = tgt.id,
                           .type = "request", .content = c};
        rc = ap_orch_message_add(tx, tenant, &m, NULL, err);
        json_decref(c);
    }
    if (!rc && (parent || from)) {
        json_decref(task);
        task = NULL;
        rc = ap_orch_task_get(tx, tenant, id, &task, err);
    }
    if (rc) {
        json_decref(task);
        return rc;
    }
    *out = task;
    return AP_OK;
}

ap_rc ap_orch_query_start(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor,
                          const char *agent_id, const char *question, json_t **out,
                          ap_orch_wake_t *wake, ap_err_t *err) {
    json_t *body = json_pack("{s:s,s:s,s:s,s:i}", "assigned_agent_id", agent_id ? agent_id : "",
                             "objective", question ? question : "", "task_type", "query",
                             "max_steps", 16);
    ap_rc rc = ap_orch_task_create(tx, tenant, actor, body, out, wake, err);
    json_decref(body);
    return rc;
}

ap_rc ap_orch_query_wait(ap_db_t *db, const char *tenant, const char *task_id, int timeout_ms,
                         json_t **out, ap_err_t *err) {
    if (timeout_ms <= 0) timeout_ms = AP_ORCH_QUERY_TIMEOUT_MS;
    if (timeout_ms > AP_ORCH_QUERY_MAX_TIMEOUT_MS) timeout_ms = AP_ORCH_QUERY_MAX_TIMEOUT_MS;
    int64_t end = ap_now_ms() + timeout_ms;
    for (int delay = 10;; delay = delay < 200 ? delay * 2 : 200) {
        ap_arena_t *a = ap_arena_new(4096);
        ap_tx_t *tx;
        json_t *t = NULL;
        ap_rc rc = ap_db_begin(db, tenant, AP_TX_READ, a, &tx, err);
        if (!rc) rc = ap_orch_task_get(tx, tenant, task_id, &t, err);
        if (!rc) rc = ap_tx_commit(tx, err);
        ap_arena_free(a);
        if (rc) {
            json_decref(t);
            return rc;
        }
        const char *st = ap_json_str(t, "status");
        if (st && strcmp(st, "completed") == 0) {
            json_t *conf = json_object_get(t, "confidence");
            *out = json_pack("{s:s,s:s,s:O?,s:O?}", "task_id", task_id, "status", st, "answer",
                             json_object_get(t, "output"), "confidence", conf);
            json_decref(t);
            return AP_OK;
        }
        if (st && ap_orch_status_terminal(st)) {
            char *e = json_dumps(json_object_get(t, "error"), JSON_COMPACT | JSON_ENCODE_ANY);
            rc = ap_err_set(err, AP_ERR_CONFLICT, "query-failed", "the agent did not answer",
                            "see the task with get_task", "query task %s is %s: %.300s", task_id,
                            st, e ? e : "");
            free(e);
            json_decref(t);
            return rc;
        }
        json_decref(t);
        if (ap_now_ms() >= end)
            return ap_err_set(err, AP_ERR_UNAVAILABLE, "query-timeout", "no answer in time",
                              "follow the task with get_task, or ask with a longer timeout_ms",
                              "query task %s is %s after %d ms", task_id, st ? st : "?",
                              timeout_ms);
        struct timespec ts = {0, (long)delay * 1000000L};
        nanosleep(&ts, NULL);
    }
}

ap_rc ap_orch_escalate(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor,
                       const char *task_id, const char *reason, json_t **out,
                       ap_orch_wake_t *wake, ap_err_t *err) {
    ap_rows_t row;
    ap_rc rc = task_row(tx, tenant, task_id, "task_id", &row, err);
    if (rc) return rc;
    const char *st = ap_rows_get(&row, 0, "status");
    const char *lease = ap_rows_get(&row, 0, "lease_owner");
    if (ap_orch_status_terminal(st) || strcmp(st, "delegated") == 0 ||
        ((strcmp(st, "thinking") == 0 || strcmp(st, "executing") == 0) && lease))
        return ap_err_set(err, AP_ERR_CONFLICT, "task-state", "task cannot be escalated now",
                          ap_orch_status_terminal(st) ? "escalate an open task"
                                                      : "retry when the task waits (queued, "
                                                        "waiting_input or reviewing)",
                          "task %s is %s", task_id, st);
    const char *agent_id = ap_rows_get(&row, 0, "assigned_agent_id");
    ap_orch_agent_t ag, sup;
    const char *sup_id = NULL;
    rc = ap_orch_tv_agent(tx, tenant, agent_id, "assigned_agent_id", &ag, err);
    if (!rc) rc = ap_orch_tv_supervisor(tx, tenant, agent_id, &sup_id, err);
    if (rc) return rc;
    if (!sup_id)
        return ap_err_set(err, AP_ERR_CONFLICT, "no-supervisor", "the agent has no supervisor",
                          "relate a supervisor to the agent (supervises or reports_to)",
                          "agent %s of task %s has no supervisor", ag.name, task_id);
    rc = ap_orch_tv_agent(tx, tenant, sup_id, "supervisor", &sup, err);
    if (rc) return rc;
    if (!ap_orch_tv_runnable(&sup))
        return ap_err_set(err, AP_ERR_CONFLICT, "agent-not-deployed", "supervisor not deployed",
                          "deploy the supervisor first", "supervisor %s is %s", sup.name,
                          sup.status);
    json_t *ctx = json_loads(ap_rows_get(&row, 0, "context"), 0, NULL);
    if (!json_is_object(ctx)) {
        json_decref(ctx);
        ctx = json_object();
    }
    json_object_set_new(ctx, "escalated_from", json_string(ag.name));
    json_object_set_new(ctx, "escalation_reason", json_string(reason));
    const char *prev = ap_rows_get(&row, 0, "output");
    if (prev) json_object_set_new(ctx, "previous_answer", json_string(prev));
    char *cs = json_dumps(ctx, JSON_COMPACT);
    json_decref(ctx);
    ap_val_t p[] = {AP_VTEXT(sup.id), AP_VINT(sup.version), AP_VTEXT(cs), AP_VTEXT(tenant),
                    AP_VTEXT(task_id)};
    rc = ap_tx_query(tx,
                     "UPDATE agent_tasks SET assigned_agent_id = ?, agent_version = ?, context = ?,"
                     " approval_state = NULL, lease_owner = NULL, lease_expires_at = NULL,"
                     " next_run_at = NULL WHERE tenant_id = ? AND id = ?",
                     p, 5, NULL, err);
    free(cs);
    if (rc) return rc;
    /* an "escalated" note after the last step: the runner builds a fresh
     * context for the supervisor (loop.c) */
    ap_rows_t s;
    ap_val_t ps[] = {AP_VTEXT(tenant), AP_VTEXT(task_id)};
    rc = ap_tx_query(tx,
                     "SELECT COALESCE(MAX(seq), 0) AS seq FROM agent_task_steps WHERE tenant_id = ?"
                     " AND task_id = ?",
                     ps, 2, &s, err);
    if (rc) return rc;
    int seq = (int)ap_rows_int(&s, 0, "seq", 0);
    if (seq > 0) {
        json_t *res = json_pack("{s:s,s:s,s:s}", "to_agent_id", sup.id, "reason", reason, "by",
                                actor && actor->id ? actor->id : "");
        rc = ap_orch_step_add(tx, tenant, &row, seq + 1, "note", "escalated", "done", NULL, res, 0,
                              0, err);
        json_decref(res);
        if (rc) return rc;
    }
    json_t *c = json_pack("{s:s}", "reason", reason);
    ap_orch_msg_t m = {.group_id = ap_rows_get(&row, 0, "group_id"), .task_id = task_id,
                       .from_agent_id = ag.id, .to_agent_id = sup.id, .type = "escalation",
                       .content = c, .requires_response = true};
    rc = ap_orch_message_add(tx, tenant, &m, NULL, err);
    json_decref(c);
    if (rc) return rc;
    if (strcmp(st, "queued") != 0) {
        json_t *x = json_pack("{s:s}", "reason", "escalated to the supervisor");
        rc = ap_orch_task_move(tx, tenant, &row, st, "queued", x, err);
        json_decref(x);
        if (rc) return rc;
    }
    ap_audit_event_t ev = {.action = "task.escalate", .resource_type = "agent_task",
                           .resource_id = task_id, .outcome = "success"};
    json_t *ch = json_pack("{s:s,s:s,s:s}", "from_agent_id", ag.id, "to_agent_id", sup.id,
                           "reason", reason);
    ev.changes = ch;
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(ch);
    if (rc) return rc;
    ap_orch_wake_add(wake, task_id, (int)ap_rows_int(&row, 0, "priority_rank", 2));
    return ap_orch_task_get(tx, tenant, task_id, out, err);
}
