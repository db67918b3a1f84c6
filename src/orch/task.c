/*
 * task.c - agent tasks (agent_tasks, agent_task_steps): the service half
 * of the state machine; the runner (runner.c) drives the rest.
 *
 * 1. The board lists by id (UUIDv7: creation order); the cursor is the
 *    last id of a page.
 * 2. root_task_id is the task's own id for a root, so "a task and its
 *    tree" is one indexed condition (events, SSE).
 * 3. tokens_total/cost_total are kept up to date on every charge by
 *    walking the ancestors (a recursive CTE), so a tree's totals read in
 *    one row.
 */
#include "orch/task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "events/event.h"
#include "orch/agent.h"
#include "orch/message.h"
#include "orch/team_view.h"

const char *const ap_orch_task_statuses[] = {"queued",    "thinking",  "executing", "waiting_input",
                                             "delegated", "reviewing", "completed", "failed",
                                             "cancelled", NULL};
const char *const ap_orch_task_priorities[] = {"critical", "high", "normal", "low", "background",
                                               NULL};

const ap_jfield_t ap_orch_task_create_fields[] = {
    {"assigned_agent_id", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"group_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"objective", AP_JT_STRING, true, false, NULL, 16000, 0, 0},
    {"task_type", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"priority", AP_JT_STRING, false, false, ap_orch_task_priorities, 0, 0, 0},
    {"context", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    {"requires_approval", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    {"max_steps", AP_JT_INT, false, false, NULL, 0, 1, 256},
    {"max_tokens", AP_JT_INT, false, false, NULL, 0, 1, 100000000},
    {"timeout_seconds", AP_JT_INT, false, false, NULL, 0, 1, 86400},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_task_decide_fields[] = {
    {"comment", AP_JT_STRING, false, true, NULL, 4000, 0, 0},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_task_cancel_fields[] = {
    {"reason", AP_JT_STRING, false, true, NULL, 1000, 0, 0},
    AP_JFIELDS_END,
};

#define DEFAULT_TIMEOUT_S 600

void ap_orch_wake_add(ap_orch_wake_t *w, const char *id, int rank) {
    if (!w || w->n >= AP_ORCH_WAKE_MAX) return; /* the periodic scan finds the rest */
    snprintf(w->t[w->n].id, sizeof w->t[w->n].id, "%s", id);
    w->t[w->n].rank = rank;
    w->n++;
}

int ap_orch_priority_rank(const char *p) {
    for (int i = 0; p && ap_orch_task_priorities[i]; i++)
        if (strcmp(p, ap_orch_task_priorities[i]) == 0) return i;
    return 2;
}

bool ap_orch_status_terminal(const char *s) {
    return s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "cancelled") == 0);
}

static ap_rc not_found(ap_err_t *err, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "task not found", "check the task id",
                      "no task with id \"%s\" in this tenant", id);
}

static void set_json_col(json_t *o, const ap_rows_t *r, int i, const char *col) {
    const char *v = ap_rows_get(r, i, col);
    if (!v) return;
    json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, col, j ? j : json_string(v));
}

static void set_real_col(json_t *o, const ap_rows_t *r, int i, const char *col) {
    const char *v = ap_rows_get(r, i, col);
    json_object_set_new(o, col, v ? json_real(strtod(v, NULL)) : json_null());
}

static void set_bool_col(json_t *o, const ap_rows_t *r, int i, const char *col) {
    json_object_set_new(o, col, json_boolean(ap_rows_int(r, i, col, 0) != 0));
}

json_t *ap_orch_task_json(const ap_rows_t *r, int i) {
    static const char *const ints[] = {"agent_version", "depth",    "tokens_used", "tokens_total",
                                       "steps",         "max_steps", "max_tokens", "attempts",
                                       NULL};
    json_t *o = ap_rows_json(r, i, ints);
    json_object_del(o, "priority_rank");
    json_object_del(o, "cancel_requested");
    set_json_col(o, r, i, "context");
    set_json_col(o, r, i, "reasoning");
    set_json_col(o, r, i, "error");
    set_real_col(o, r, i, "confidence");
    set_real_col(o, r, i, "cost");
    set_real_col(o, r, i, "cost_total");
    set_bool_col(o, r, i, "human_requested");
    set_bool_col(o, r, i, "requires_approval");
    return o;
}

ap_rc ap_orch_task_row(ap_tx_t *tx, const char *tenant_id, const char *id, ap_rows_t *r,
                       ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "SELECT * FROM agent_tasks WHERE tenant_id = ? AND id = ?", p, 2, r,
                           err);
    if (rc) return rc;
    return r->nrows ? AP_OK : not_found(err, id);
}

ap_rc ap_orch_task_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                       ap_err_t *err) {
    ap_rows_t r;
    ap_rc rc = ap_orch_task_row(tx, tenant_id, id, &r, err);
    if (rc) return rc;
    *out = ap_orch_task_json(&r, 0);
    return AP_OK;
}

ap_rc ap_orch_task_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor, json_t *in,
                          json_t **out, ap_orch_wake_t *wake, ap_err_t *err) {
    const char *agent_ref = ap_json_str(in, "assigned_agent_id");
    const char *group_id = ap_json_str(in, "group_id");
    const char *objective = ap_json_str(in, "objective");
    ap_rc rc;
    if (!agent_ref && !group_id)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "no assignee",
                          "give assigned_agent_id (an agent's id or name) or group_id (the "
                          "group's top supervisor takes it)",
                          "neither assigned_agent_id nor group_id was given");
    if (!objective || !*objective)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "empty objective",
                          "say what the agent should do", "objective is empty");
    if (group_id && !ap_uuid_valid(group_id))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid id",
                          "ids are UUIDs as returned by the API", "group_id \"%.64s\" is not a UUID",
                          group_id);
    if (group_id && !agent_ref) {
        rc = ap_orch_tv_group_top(tx, tenant_id, group_id, &agent_ref, err);
        if (rc == AP_ERR_NOT_FOUND) err->rc = rc = AP_ERR_INVALID;
        if (rc) return rc;
    } else if (group_id) {
        ap_rows_t g;
        rc = ap_orch_tv_group(tx, tenant_id, group_id, &g, err);
        if (rc) return rc;
        if (!g.nrows)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown group",
                              "give the id of an agent group of this tenant",
                              "group_id \"%s\" names no group", group_id);
    }
    ap_orch_agent_t ag;
    rc = ap_orch_tv_agent(tx, tenant_id, agent_ref, "assigned_agent_id", &ag, err);
    if (rc == AP_ERR_NOT_FOUND) err->rc = rc = AP_ERR_INVALID;
    if (rc) return rc;
    if (!ap_orch_tv_runnable(&ag))
        return ap_err_set(err, AP_ERR_CONFLICT, "agent-not-deployed", "agent is not deployed",
                          "deploy the agent first (POST …/agents/{agent_id}:deploy)",
                          "agent %s is %s", ag.name, ag.status);
    if (!group_id) {
        rc = ap_orch_tv_group_of(tx, tenant_id, ag.id, &group_id, err);
        if (rc) return rc;
    }
    char id[AP_UUID_LEN], now[AP_TIME_LEN], deadline[AP_TIME_LEN];
    ap_uuid7(id);
    int64_t now_ms = ap_now_ms();
    ap_time_format(now_ms, now);
    ap_time_format(now_ms + ap_json_int(in, "timeout_seconds", DEFAULT_TIMEOUT_S) * 1000, deadline);
    const char *priority = ap_json_str(in, "priority");
    if (!priority) priority = "normal";
    const char *task_type = ap_json_str(in, "task_type");
    char *ctx = json_object_get(in, "context")
                    ? json_dumps(json_object_get(in, "context"), JSON_COMPACT)
                    : NULL;
    ap_val_t p[] = {AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(group_id),
                    AP_VTEXT(ag.id),
                    AP_VINT(ag.version),
                    AP_VTEXT(actor ? actor->id : NULL),
                    AP_VTEXT(priority),
                    AP_VINT(ap_orch_priority_rank(priority)),
                    AP_VTEXT(task_type ? task_type : "general"),
                    AP_VTEXT(objective),
                    AP_VTEXT(ctx ? ctx : "{}"),
                    AP_VINT(json_is_true(json_object_get(in, "requires_approval")) ? 1 : 0),
                    AP_VINT(ap_json_int(in, "max_steps", 32)),
                    AP_VINT(ap_json_int(in, "max_tokens", 200000)),
                    AP_VTEXT(deadline),
                    AP_VTEXT(id),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO agent_tasks (id, tenant_id, group_id, assigned_agent_id,"
                     " agent_version, created_by, human_requested, priority, priority_rank,"
                     " task_type, objective, context, requires_approval, max_steps, max_tokens,"
                     " deadline_at, root_task_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?,"
                     " ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     p, 18, NULL, err);
    free(ctx);
    if (rc) return rc;
    json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "status", "queued", "priority", priority,
                          "objective", objective, "assigned_agent_id", ag.id);
    rc = ap_event_append(tx, tenant_id, "task.created", id, ag.id, group_id, d, NULL, err);
    json_decref(d);
    if (rc) return rc;
    ap_audit_event_t ev = {.action = "task.create", .resource_type = "agent_task",
                           .resource_id = id, .outcome = "success"};
    json_t *ch = json_pack("{s:s,s:s,s:s?}", "assigned_agent_id", ag.id, "priority", priority,
                           "group_id", group_id);
    ev.changes = ch;
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(ch);
    if (rc) return rc;
    ap_orch_wake_add(wake, id, ap_orch_priority_rank(priority));
    return ap_orch_task_get(tx, tenant_id, id, out, err);
}

ap_rc ap_orch_task_list(ap_tx_t *tx, const char *tenant_id, const ap_orch_task_filter_t *f,
                        json_t **out, const char **next, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    char *sql = "SELECT * FROM agent_tasks WHERE tenant_id = ? AND id > ?";
    ap_val_t p[8];
    int n = 0;
    p[n++] = AP_VTEXT(tenant_id);
    p[n++] = AP_VTEXT(f->after ? f->after : "");
    const struct {
        const char *col, *v;
    } eq[] = {{"status", f->status},
              {"priority", f->priority},
              {"assigned_agent_id", f->agent_id},
              {"group_id", f->group_id},
              {"parent_task_id", f->parent_task_id}};
    for (size_t i = 0; i < sizeof eq / sizeof eq[0]; i++)
        if (eq[i].v) {
            sql = ap_arena_printf(a, "%s AND %s = ?", sql, eq[i].col);
            p[n++] = AP_VTEXT(eq[i].v);
        }
    sql = ap_arena_printf(a, "%s ORDER BY id LIMIT ?", sql);
    p[n++] = AP_VINT(f->limit + 1);
    ap_rows_t r;
    ap_rc rc = ap_tx_query(tx, sql, p, n, &r, err);
    if (rc) return rc;
    *out = ap_rows_page(&r, f->limit, ap_orch_task_json, "id", next);
    return AP_OK;
}

ap_rc ap_orch_task_tree(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err) {
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(
        tx,
        "WITH RECURSIVE t(id) AS (SELECT id FROM agent_tasks WHERE tenant_id = ? AND id = ?"
        " UNION ALL SELECT c.id FROM agent_tasks c JOIN t ON c.parent_task_id = t.id)"
        " SELECT * FROM agent_tasks WHERE tenant_id = ? AND id IN (SELECT id FROM t)"
        " ORDER BY depth, id",
        p, 3, &r, err);
    if (rc) return rc;
    if (!r.nrows) return not_found(err, id);
    json_t **nodes = ap_arena_calloc(ap_tx_arena(tx), (size_t)r.nrows * sizeof *nodes);
    for (int i = 0; i < r.nrows; i++) {
        nodes[i] = ap_orch_task_json(&r, i);
        json_object_set_new(nodes[i], "subtasks", json_array());
    }
    /* parents come first (ordered by depth): attach each child to its parent */
    for (int i = 1; i < r.nrows; i++) {
        const char *parent = ap_rows_get(&r, i, "parent_task_id");
        for (int j = 0; j < i; j++)
            if (parent && strcmp(parent, ap_rows_get(&r, j, "id")) == 0) {
                json_array_append(json_object_get(nodes[j], "subtasks"), nodes[i]);
                break;
            }
    }
    *out = json_incref(nodes[0]);
    for (int i = 0; i < r.nrows; i++) json_decref(nodes[i]);
    return AP_OK;
}

ap_rc ap_orch_task_steps(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                         ap_err_t *err) {
    ap_rows_t t;
    ap_rc rc = ap_orch_task_row(tx, tenant_id, id, &t, err);
    if (rc) return rc;
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "SELECT task_id, seq, kind, name, state, input, result, tokens, cost,"
                     " created_at, completed_at FROM agent_task_steps WHERE tenant_id = ? AND"
                     " task_id = ? ORDER BY seq",
                     p, 2, &r, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r.nrows; i++) {
        static const char *const ints[] = {"seq", "tokens", NULL};
        json_t *o = ap_rows_json(&r, i, ints);
        set_json_col(o, &r, i, "input");
        set_json_col(o, &r, i, "result");
        set_real_col(o, &r, i, "cost");
        json_array_append_new(arr, o);
    }
    *out = arr;
    return AP_OK;
}

/* started: the caller knows a task of the agent is in flight now. */
static ap_rc settle(ap_tx_t *tx, const char *tenant_id, const char *agent_id, bool started,
                    ap_err_t *err) {
    if (!agent_id) return AP_OK;
    /* two tasks of the agent ending in two transactions must not both see
     * the other as still in flight, nor an end miss a start in progress */
    ap_rc rc = ap_tx_lock(tx, ap_arena_printf(ap_tx_arena(tx), "agent-run:%s", agent_id), err);
    if (rc) return rc;
    bool running = started;
    if (!running) {
        ap_rows_t c;
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(agent_id)};
        /* the WHERE of the partial index agent_tasks_in_flight (0008) */
        rc = ap_tx_query(tx,
                         "SELECT 1 AS x FROM agent_tasks WHERE tenant_id = ? AND"
                         " assigned_agent_id = ? AND completed_at IS NULL AND (status <> 'queued'"
                         " OR started_at IS NOT NULL) LIMIT 1",
                         p, 2, &c, err);
        if (rc) return rc;
        running = c.nrows > 0;
    }
    return ap_orch_agent_set_running(tx, agent_id, running, err);
}

ap_rc ap_orch_task_settle_agent(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                                ap_err_t *err) {
    return settle(tx, tenant_id, agent_id, false, err);
}

ap_rc ap_orch_task_move(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row, const char *from,
                        const char *to, json_t *extra, ap_err_t *err) {
    const char *id = ap_rows_get(row, 0, "id");
    const char *cur = ap_rows_get(row, 0, "status");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(to), AP_VTEXT(now), AP_VTEXT(to), AP_VTEXT(now),
                    AP_VTEXT(to), AP_VTEXT(now), AP_VTEXT(id),  AP_VTEXT(from ? from : cur)};
    ap_rc rc = ap_tx_query(
        tx,
        "UPDATE agent_tasks SET status = ?, updated_at = ?, started_at = CASE WHEN started_at IS"
        " NULL AND ? = 'thinking' THEN ? ELSE started_at END, completed_at = CASE WHEN ? IN"
        " ('completed', 'failed', 'cancelled') THEN ? ELSE completed_at END WHERE id = ? AND"
        " status = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
        p, 8, &r, err);
    if (rc) return rc;
    if (r.changes == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "task-state", "task changed state",
                          "read the task again", "task %s is no longer %s", id, from ? from : cur);
    json_t *d = json_pack("{s:s,s:s}", "from", from ? from : cur, "status", to);
    if (extra) json_object_update_missing(d, extra);
    rc = ap_event_append(tx, tenant_id, "task.status", id, ap_rows_get(row, 0, "assigned_agent_id"),
                         ap_rows_get(row, 0, "group_id"), d, NULL, err);
    json_decref(d);
    if (rc) return rc;
    /* decision 6: only a start and an end can change the agent's status */
    bool leaves_queue = strcmp(from ? from : cur, "queued") == 0 && strcmp(to, "queued") != 0;
    if (leaves_queue || ap_orch_status_terminal(to))
        rc = settle(tx, tenant_id, ap_rows_get(row, 0, "assigned_agent_id"),
                    !ap_orch_status_terminal(to), err);
    return rc;
}

/* The parent wakes when none of its subtasks is unfinished. */
static ap_rc wake_parent(ap_tx_t *tx, const char *tenant_id, const char *parent_id,
                         ap_orch_wake_t *wake, ap_err_t *err) {
    ap_rc rc = ap_tx_lock(tx, ap_arena_printf(ap_tx_arena(tx), "task:%s", parent_id), err);
    if (rc) return rc;
    ap_rows_t pr;
    rc = ap_orch_task_row(tx, tenant_id, parent_id, &pr, err);
    if (rc) return rc == AP_ERR_NOT_FOUND ? AP_OK : rc;
    if (strcmp(ap_rows_get(&pr, 0, "status"), "delegated") != 0) return AP_OK;
    ap_rows_t c;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(parent_id)};
    rc = ap_tx_query(tx,
                     "SELECT COUNT(*) AS n FROM agent_tasks WHERE tenant_id = ? AND"
                     " parent_task_id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
                     p, 2, &c, err);
    if (rc || ap_rows_int(&c, 0, "n", 1) > 0) return rc;
    json_t *x = json_pack("{s:s}", "reason", "subtasks finished");
    rc = ap_orch_task_move(tx, tenant_id, &pr, "delegated", "queued", x, err);
    json_decref(x);
    if (!rc) ap_orch_wake_add(wake, parent_id, (int)ap_rows_int(&pr, 0, "priority_rank", 2));
    return rc;
}

ap_rc ap_orch_task_finish(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row,
                          const char *status, const char *output, double confidence,
                          const char *code, const char *detail, ap_orch_wake_t *wake,
                          ap_err_t *err) {
    const char *id = ap_rows_get(row, 0, "id");
    bool ok = strcmp(status, "completed") == 0;
    char *error = NULL;
    if (!ok) {
        json_t *e = json_pack("{s:s,s:s}", "code", code ? code : status, "detail",
                              detail ? detail : "");
        error = json_dumps(e, JSON_COMPACT);
        json_decref(e);
    }
    ap_val_t p[] = {AP_VTEXT(ok ? output : NULL),
                    ok ? AP_VREAL(confidence) : AP_VNULL,
                    AP_VTEXT(error),
                    AP_VINT(strcmp(status, "cancelled") == 0 ? 1 : 0),
                    AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx,
                           "UPDATE agent_tasks SET output = ?, confidence = ?, error = ?,"
                           " cancel_requested = ?, lease_owner = NULL, lease_expires_at = NULL"
                           " WHERE id = ?",
                           p, 5, NULL, err);
    free(error);
    if (rc) return rc;
    json_t *x = ok ? json_pack("{s:f}", "confidence", confidence)
                   : json_pack("{s:s,s:s}", "code", code ? code : status, "detail",
                               detail ? detail : "");
    rc = ap_orch_task_move(tx, tenant_id, row, NULL, status, x, err);
    json_decref(x);
    if (rc) return rc;
    const char *agent = ap_rows_get(row, 0, "assigned_agent_id");
    const char *parent = ap_rows_get(row, 0, "parent_task_id");
    if (parent) {
        json_t *c = ok ? json_pack("{s:s,s:s?,s:f}", "status", status, "output", output,
                                   "confidence", confidence)
                       : json_pack("{s:s,s:s?}", "status", status, "error", detail);
        ap_orch_msg_t m = {.group_id = ap_rows_get(row, 0, "group_id"),
                           .task_id = id,
                           .from_agent_id = agent,
                           .to_agent_id = ap_rows_get(row, 0, "created_by_agent_id"),
                           .type = "response",
                           .content = c};
        rc = ap_orch_message_add(tx, tenant_id, &m, NULL, err);
        json_decref(c);
        if (!rc) rc = wake_parent(tx, tenant_id, parent, wake, err);
        if (rc) return rc;
    }
    if (strcmp(status, "cancelled") != 0)
        rc = ap_orch_tv_skill_outcome(tx, tenant_id, agent, ap_rows_get(row, 0, "task_type"), ok,
                                      ok ? confidence : 0, ap_rows_get(row, 0, "objective"), err);
    return rc;
}

ap_rc ap_orch_step_add(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row, int seq,
                       const char *kind, const char *name, const char *state, json_t *input,
                       json_t *result, int64_t tokens, double cost, ap_err_t *err) {
    const char *id = ap_rows_get(row, 0, "id");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    if (!state) state = "done";
    bool done = strcmp(state, "done") == 0;
    char *in = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *res = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id),        AP_VINT(seq),   AP_VTEXT(kind),
                    AP_VTEXT(name),      AP_VTEXT(state),     AP_VTEXT(in),   AP_VTEXT(res),
                    AP_VINT(tokens),     AP_VREAL(cost),      AP_VTEXT(now),
                    AP_VTEXT(done ? now : NULL)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO agent_task_steps (tenant_id, task_id, seq, kind, name,"
                           " state, input, result, tokens, cost, created_at, completed_at) VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           p, 12, NULL, err);
    free(in);
    free(res);
    if (rc) return rc;
    ap_val_t q[] = {AP_VINT(seq), AP_VTEXT(id)};
    rc = ap_tx_query(tx, "UPDATE agent_tasks SET steps = ? WHERE id = ?", q, 2, NULL, err);
    if (rc) return rc;
    json_t *d = json_pack("{s:i,s:s,s:s?,s:s}", "seq", seq, "kind", kind, "name", name, "state",
                          state);
    if (strcmp(kind, "tool_call") == 0 && input) json_object_set(d, "arguments", input);
    rc = ap_event_append(tx, tenant_id, strcmp(kind, "tool_call") == 0 ? "tool.call" : "task.step",
                         id, ap_rows_get(row, 0, "assigned_agent_id"),
                         ap_rows_get(row, 0, "group_id"), d, NULL, err);
    json_decref(d);
    if (!rc && tokens) rc = ap_orch_task_charge(tx, tenant_id, id, tokens, cost, err);
    return rc;
}

ap_rc ap_orch_step_done(ap_tx_t *tx, const char *tenant_id, const char *task_id, int seq,
                        json_t *result, int64_t tokens, double cost, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    char *res = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    ap_val_t p[] = {AP_VTEXT(res), AP_VINT(tokens), AP_VREAL(cost), AP_VTEXT(now),
                    AP_VTEXT(tenant_id), AP_VTEXT(task_id), AP_VINT(seq)};
    ap_rc rc = ap_tx_query(tx,
                           "UPDATE agent_task_steps SET state = 'done', result = ?, tokens = ?,"
                           " cost = ?, completed_at = ? WHERE tenant_id = ? AND task_id = ? AND"
                           " seq = ?",
                           p, 7, NULL, err);
    free(res);
    if (!rc && tokens) rc = ap_orch_task_charge(tx, tenant_id, task_id, tokens, cost, err);
    return rc;
}

ap_rc ap_orch_task_charge(ap_tx_t *tx, const char *tenant_id, const char *task_id, int64_t tokens,
                          double cost, ap_err_t *err) {
    ap_val_t p[] = {AP_VINT(tokens), AP_VREAL(cost), AP_VTEXT(task_id)};
    ap_rc rc = ap_tx_query(tx,
                           "UPDATE agent_tasks SET tokens_used = tokens_used + ?, cost = cost + ?"
                           " WHERE id = ?",
                           p, 3, NULL, err);
    if (rc) return rc;
    ap_val_t q[] = {AP_VTEXT(tenant_id), AP_VTEXT(task_id), AP_VINT(tokens), AP_VREAL(cost)};
    return ap_tx_query(
        tx,
        "WITH RECURSIVE up(id, parent) AS (SELECT id, parent_task_id FROM agent_tasks WHERE"
        " tenant_id = ? AND id = ? UNION ALL SELECT t.id, t.parent_task_id FROM agent_tasks t"
        " JOIN up ON t.id = up.parent) UPDATE agent_tasks SET tokens_total = tokens_total + ?,"
        " cost_total = cost_total + ? WHERE id IN (SELECT id FROM up)",
        q, 4, NULL, err);
}

ap_rc ap_orch_task_cancel(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                          const char *id, const char *reason, json_t **out, ap_orch_wake_t *wake,
                          ap_err_t *err) {
    /* the tenant's event lock before any task row (events/event.h 4.) */
    ap_rc rc = ap_event_lock(tx, tenant_id, err);
    if (rc) return rc;
    ap_rows_t root;
    rc = ap_orch_task_row(tx, tenant_id, id, &root, err);
    if (rc) return rc;
    if (ap_orch_status_terminal(ap_rows_get(&root, 0, "status")))
        return ap_orch_task_get(tx, tenant_id, id, out, err);
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    rc = ap_tx_query(
        tx,
        "WITH RECURSIVE t(id) AS (SELECT id FROM agent_tasks WHERE tenant_id = ? AND id = ?"
        " UNION ALL SELECT c.id FROM agent_tasks c JOIN t ON c.parent_task_id = t.id)"
        " SELECT id FROM agent_tasks WHERE id IN (SELECT id FROM t) AND status NOT IN"
        " ('completed', 'failed', 'cancelled') ORDER BY depth, id",
        p, 2, &r, err);
    if (rc) return rc;
    const char *why = reason ? reason : "cancelled by request";
    for (int i = 0; i < r.nrows && !rc; i++) {
        ap_rows_t row;
        rc = ap_orch_task_row(tx, tenant_id, ap_rows_at(&r, i, 0), &row, err);
        if (!rc) rc = ap_orch_task_finish(tx, tenant_id, &row, "cancelled", NULL, 0, "cancelled",
                                          why, wake, err);
    }
    if (rc) return rc;
    ap_audit_event_t ev = {.action = "task.cancel", .resource_type = "agent_task",
                           .resource_id = id, .outcome = "success"};
    json_t *ch = json_pack("{s:s,s:i}", "reason", why, "tasks_cancelled", r.nrows);
    ev.changes = ch;
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(ch);
    if (rc) return rc;
    return ap_orch_task_get(tx, tenant_id, id, out, err);
}

static int last_seq(ap_tx_t *tx, const char *tenant_id, const char *id) {
    ap_rows_t r;
    ap_err_t e;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    if (ap_tx_query(tx,
                    "SELECT COALESCE(MAX(seq), 0) AS n FROM agent_task_steps WHERE tenant_id = ?"
                    " AND task_id = ?",
                    p, 2, &r, &e))
        return 0;
    return (int)ap_rows_int(&r, 0, "n", 0);
}

ap_rc ap_orch_task_decide(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                          const char *id, bool approve, const char *comment, json_t **out,
                          ap_orch_wake_t *wake, ap_err_t *err) {
    /* the tenant's event lock before any task row (events/event.h 4.) */
    ap_rc rc = ap_event_lock(tx, tenant_id, err);
    if (rc) return rc;
    ap_rows_t row;
    rc = ap_orch_task_row(tx, tenant_id, id, &row, err);
    if (rc) return rc;
    const char *status = ap_rows_get(&row, 0, "status");
    const char *state = ap_rows_get(&row, 0, "approval_state");
    bool waiting = strcmp(status, "waiting_input") == 0 && state && strcmp(state, "pending") == 0;
    bool reviewing = strcmp(status, "reviewing") == 0;
    if (!waiting && !reviewing)
        return ap_err_set(err, AP_ERR_CONFLICT, "task-state", "task is not waiting for approval",
                          "approve or reject a task in waiting_input (approval pending) or "
                          "reviewing",
                          "task %s is %s", id, status);
    const char *decision = approve ? "approved" : "rejected";
    json_t *res = json_pack("{s:s,s:s?,s:s?,s:s?}", "decision", decision, "comment", comment,
                            "by_type", actor ? actor->type : NULL, "by", actor ? actor->id : NULL);
    rc = ap_orch_step_add(tx, tenant_id, &row, last_seq(tx, tenant_id, id) + 1, "approval",
                          decision, "done", NULL, res, 0, 0, err);
    json_decref(res);
    if (rc) return rc;
    ap_val_t p[] = {AP_VTEXT(decision), AP_VTEXT(comment), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "UPDATE agent_tasks SET approval_state = ?, approval_comment = ? WHERE id = ?",
                     p, 3, NULL, err);
    if (rc) return rc;
    json_t *x = json_pack("{s:s,s:s?}", "approval", decision, "comment", comment);
    if (reviewing) {
        rc = approve ? ap_orch_task_finish(tx, tenant_id, &row, "completed",
                                           ap_rows_get(&row, 0, "output"),
                                           strtod(ap_rows_get(&row, 0, "confidence")
                                                      ? ap_rows_get(&row, 0, "confidence")
                                                      : "0",
                                                  NULL),
                                           NULL, NULL, wake, err)
                     : ap_orch_task_finish(tx, tenant_id, &row, "failed", NULL, 0, "rejected",
                                           comment ? comment : "output rejected by a reviewer",
                                           wake, err);
    } else if (!approve && ap_rows_int(&row, 0, "steps", 0) == 0) {
        /* the autonomy gate before the task started */
        rc = ap_orch_task_finish(tx, tenant_id, &row, "failed", NULL, 0, "rejected",
                                 comment ? comment : "rejected before start", wake, err);
    } else {
        rc = ap_orch_task_move(tx, tenant_id, &row, "waiting_input", "queued", x, err);
        if (!rc) ap_orch_wake_add(wake, id, (int)ap_rows_int(&row, 0, "priority_rank", 2));
    }
    json_decref(x);
    if (rc) return rc;
    ap_audit_event_t ev = {.action = approve ? "task.approve" : "task.reject",
                           .resource_type = "agent_task", .resource_id = id, .outcome = "success"};
    json_t *ch = json_pack("{s:s,s:s?}", "was", status, "comment", comment);
    ev.changes = ch;
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(ch);
    if (rc) return rc;
    return ap_orch_task_get(tx, tenant_id, id, out, err);
}
