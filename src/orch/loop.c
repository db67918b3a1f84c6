/*
 * loop.c - one task's state machine, persisted step by step.
 *
 * 1. Steps: context (the built prompt), model_call (written 'started'
 *    before the call, 'done' with the response), tool_call (the call's
 *    arguments), tool_result (the result), note (subtask_results,
 *    escalated), approval (a person's decision).  The next action is a
 *    pure function of the task row and its steps, so a resumed task does
 *    exactly what was left: a 'started' model call is made again, a tool
 *    call without a result is executed again, nothing done is repeated.
 * 2. A tool's effect and its tool_result step are one transaction; effects
 *    that create rows use ids derived from (task id, step seq), inserted
 *    with ON CONFLICT DO NOTHING, so even a redone step cannot create a
 *    second subtask.
 * 3. Every write is guarded: the task must still be leased to this node
 *    and in a running status, so a cancel or a lost lease stops the loop
 *    at its next step without a stray write.
 * 4. History: only steps after the last context step are the
 *    conversation; an escalation hands the task to the supervisor with a
 *    fresh context.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "llm/providers/builtin.h"
#include "orch/message.h"
#include "orch/runner.h"
#include "orch/team_view.h"
#include "orch/tools_ext.h"

#define MAX_ATTEMPTS 5
#define BUILTIN_MODEL "builtin/" AP_BUILTIN_MODEL

typedef struct {
    int seq;
    const char *kind, *name, *state;
    json_t *input, *result; /* borrowed from the step arena (kept) */
} step_t;

typedef struct {
    ap_orch_loop_env_t *env;
    ap_arena_t *a;
    ap_tx_t *tx;
    const char *tenant;
    ap_rows_t row;
    ap_orch_agent_t agent;
    step_t *steps;
    int nsteps;
    ap_orch_wake_t *wake;
    const char *call_id; /* the tool call being executed */
    bool open;           /* r->tx is open (batching: it may span steps) */
    bool moved;          /* r->a now belongs to a model call in flight */
} run_t;

ap_rc ap_orch_model_builtin(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                            const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                            ap_llm_error_t *lerr, ap_err_t *err) {
    (void)ud, (void)tenant_id, (void)agent_id, (void)task_id, (void)headers, (void)nheaders;
    memset(lerr, 0, sizeof *lerr);
    return ap_builtin_complete(a, req, resp, err);
}

static const char *col(const run_t *r, const char *c) { return ap_rows_get(&r->row, 0, c); }

static json_t *keep(ap_arena_t *a, json_t *v) {
    if (!v) return NULL;
    ap_llm_json_keep(a, v);
    json_decref(v);
    return v;
}

/* Opens a write transaction (or goes on in the open one), reloads the row
 * and checks the claim. */
static ap_rc begin(run_t *r, ap_err_t *err) {
    ap_rc rc = AP_OK;
    if (!r->open) {
        rc = ap_db_begin(r->env->db, r->tenant, AP_TX_WRITE, r->a, &r->tx, err);
        if (rc) return rc;
        r->open = true;
        /* the tenant's event lock before the task row (events/event.h 4.):
         * a step charges and wakes ancestors after appending events */
        rc = ap_event_lock(r->tx, r->tenant, err);
        if (rc) return rc;
    }
    rc = ap_orch_task_row(r->tx, r->tenant, col(r, "id"), &r->row, err);
    if (rc) return rc;
    const char *owner = col(r, "lease_owner");
    const char *st = col(r, "status");
    if (!owner || strcmp(owner, r->env->node) != 0 ||
        (strcmp(st, "thinking") != 0 && strcmp(st, "executing") != 0))
        return ap_err_set(err, AP_ERR_CONFLICT, "task-state", "task no longer ours", NULL,
                          "task %s is %s, leased to %s", col(r, "id"), st, owner ? owner : "nobody");
    return AP_OK;
}

static bool batching(const run_t *r) { return r->env->batch_steps > 1; }

/* Commits now. */
static ap_rc flush(run_t *r, ap_err_t *err) {
    if (!r->open) return AP_OK;
    r->open = false;
    ap_rc rc = ap_tx_commit(r->tx, err);
    if (!rc) ap_bus_publish(r->env->bus, r->tenant);
    return rc;
}

/* The end of a step: commits, unless steps are batched (the loop commits
 * at the end of the batch). */
static ap_rc commit(run_t *r, ap_err_t *err) { return batching(r) ? AP_OK : flush(r, err); }

static ap_rc load_steps(run_t *r, ap_err_t *err) {
    ap_rows_t s;
    ap_val_t p[] = {AP_VTEXT(r->tenant), AP_VTEXT(col(r, "id"))};
    ap_rc rc = ap_tx_query(r->tx,
                           "SELECT seq, kind, name, state, input, result FROM agent_task_steps"
                           " WHERE tenant_id = ? AND task_id = ? ORDER BY seq",
                           p, 2, &s, err);
    if (rc) return rc;
    r->nsteps = s.nrows;
    r->steps = ap_arena_calloc(r->a, (size_t)(s.nrows + 8) * sizeof *r->steps);
    for (int i = 0; i < s.nrows; i++) {
        step_t *st = &r->steps[i];
        st->seq = (int)ap_rows_int(&s, i, "seq", 0);
        st->kind = ap_rows_get(&s, i, "kind");
        st->name = ap_rows_get(&s, i, "name");
        st->state = ap_rows_get(&s, i, "state");
        const char *in = ap_rows_get(&s, i, "input"), *res = ap_rows_get(&s, i, "result");
        st->input = in ? keep(r->a, json_loads(in, JSON_DECODE_ANY, NULL)) : NULL;
        st->result = res ? keep(r->a, json_loads(res, JSON_DECODE_ANY, NULL)) : NULL;
    }
    return AP_OK;
}

static int next_seq(const run_t *r) { return r->nsteps ? r->steps[r->nsteps - 1].seq + 1 : 1; }

static ap_rc add_step(run_t *r, const char *kind, const char *name, const char *state,
                      json_t *input, json_t *result, ap_err_t *err) {
    int seq = next_seq(r);
    ap_rc rc = ap_orch_step_add(r->tx, r->tenant, &r->row, seq, kind, name, state, input, result,
                                0, 0, err);
    if (rc) return rc;
    step_t *st = &r->steps[r->nsteps++]; /* load_steps leaves room for a few */
    *st = (step_t){.seq = seq, .kind = kind, .name = name, .state = state ? state : "done",
                   .input = input, .result = result};
    r->env->steps++;
    return AP_OK;
}

static ap_rc move(run_t *r, const char *to, const char *reason, ap_err_t *err) {
    if (strcmp(col(r, "status"), to) == 0) return AP_OK;
    json_t *x = reason ? json_pack("{s:s}", "reason", reason) : NULL;
    ap_rc rc = ap_orch_task_move(r->tx, r->tenant, &r->row, NULL, to, x, err);
    json_decref(x);
    if (rc) return rc;
    return ap_orch_task_row(r->tx, r->tenant, col(r, "id"), &r->row, err);
}

static ap_rc release(run_t *r, const char *next_run_at, ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(next_run_at), AP_VTEXT(col(r, "id"))};
    return ap_tx_query(r->tx,
                       "UPDATE agent_tasks SET lease_owner = NULL, lease_expires_at = NULL,"
                       " next_run_at = ? WHERE id = ?",
                       p, 2, NULL, err);
}

/* ---------------------------------------------------------------- context */

static void lines_of(ap_buf_t *b, const char *json_text) {
    json_t *j = json_text ? json_loads(json_text, JSON_DECODE_ANY, NULL) : NULL;
    if (json_is_string(j)) {
        if (*json_string_value(j)) ap_buf_printf(b, "%s\n", json_string_value(j));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (k[0] == '_') continue; /* bookkeeping, not knowledge */
            if (json_is_string(v))
                ap_buf_printf(b, "- %s\n", json_string_value(v));
            else if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e) if (json_is_string(e))
                    ap_buf_printf(b, "- %s\n", json_string_value(e));
            } else {
                char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                if (t) ap_buf_printf(b, "- %s: %s\n", k, t);
                free(t);
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) if (json_is_string(e)) ap_buf_printf(b, "- %s\n",
                                                                          json_string_value(e));
    }
    json_decref(j);
}

static void caps_of(ap_buf_t *b, const char *json_text) {
    json_t *j = json_text ? json_loads(json_text, 0, NULL) : NULL;
    size_t i;
    json_t *e;
    int n = 0;
    json_array_foreach(j, i, e) if (json_is_string(e))
        ap_buf_printf(b, "%s%s", n++ ? ", " : "", json_string_value(e));
    json_decref(j);
}

static bool escalated(const run_t *r) {
    json_t *c = json_loads(col(r, "context"), 0, NULL);
    bool e = c && json_object_get(c, "escalated_from");
    json_decref(c);
    return e;
}

/* Builds the system and user messages in the conventions of
 * docs/builtin-model.md (which real models read just as well). */
static ap_rc build_context(run_t *r, json_t **out, ap_err_t *err) {
    ap_buf_t s, u;
    ap_buf_init(&s, 0);
    ap_buf_init(&u, 0);
    const ap_orch_agent_t *ag = &r->agent;
    ap_buf_printf(&s, "You are %s, %s.", ag->name, ag->role);
    if (ag->description && *ag->description) ap_buf_printf(&s, " %s", ag->description);
    ap_buf_puts(&s, "\n");
    if (ag->personality && strcmp(ag->personality, "{}") != 0) {
        ap_buf_puts(&s, "# Personality\n");
        lines_of(&s, ag->personality);
    }
    ap_rc rc = AP_OK;
    const char *gid = col(r, "group_id");
    if (gid) {
        ap_rows_t g;
        rc = ap_orch_tv_group(r->tx, r->tenant, gid, &g, err);
        if (!rc && g.nrows) {
            const char *goal = ap_rows_get(&g, 0, "goal");
            if (goal && *goal) ap_buf_printf(&s, "# Goal\n%s\n", goal);
            const char *strat = ap_rows_get(&g, 0, "strategy");
            if (strat && strcmp(strat, "{}") != 0) {
                ap_buf_puts(&s, "# Strategy\n");
                lines_of(&s, strat);
            }
            const char *sc = ap_rows_get(&g, 0, "shared_context");
            if (sc && strcmp(sc, "{}") != 0) {
                ap_buf_puts(&s, "# Shared context\n");
                lines_of(&s, sc);
            }
        }
    }
    bool esc = escalated(r);
    ap_rows_t d;
    if (!rc && !esc) rc = ap_orch_tv_delegates(r->tx, r->tenant, ag->id, &d, err);
    if (!rc && !esc && d.nrows) {
        ap_buf_puts(&s, "# Agents you can delegate to\n");
        for (int i = 0; i < d.nrows; i++) {
            ap_buf_printf(&s, "- agent %s \"%s\" (%s): capabilities: ", ap_rows_get(&d, i, "id"),
                          ap_rows_get(&d, i, "name"), ap_rows_get(&d, i, "role"));
            caps_of(&s, ap_rows_get(&d, i, "capabilities"));
            ap_buf_puts(&s, "\n");
        }
    }
    ap_rows_t q;
    if (!rc) rc = ap_orch_tv_consultees(r->tx, r->tenant, ag->id, &q, err);
    if (!rc && q.nrows) {
        ap_buf_puts(&s, "# Colleagues you can ask (query_agent)\n");
        for (int i = 0; i < q.nrows; i++) {
            ap_buf_printf(&s, "- colleague %s \"%s\" (%s): ", ap_rows_get(&q, i, "id"),
                          ap_rows_get(&q, i, "name"), ap_rows_get(&q, i, "role"));
            caps_of(&s, ap_rows_get(&q, i, "capabilities"));
            ap_buf_puts(&s, "\n");
        }
    }
    /* recent messages addressed to this agent */
    ap_rows_t m;
    ap_val_t p[] = {AP_VTEXT(r->tenant), AP_VTEXT(ag->id), AP_VTEXT(col(r, "id"))};
    if (!rc)
        rc = ap_tx_query(r->tx,
                         "SELECT message_type, content FROM agent_messages WHERE tenant_id = ?"
                         " AND to_agent_id = ? AND (task_id IS NULL OR task_id <> ?) AND"
                         " message_type IN ('update', 'handoff', 'response') ORDER BY id DESC"
                         " LIMIT 5",
                         p, 3, &m, err);
    if (!rc && m.nrows) {
        ap_buf_puts(&s, "# Message history\n");
        for (int i = m.nrows - 1; i >= 0; i--) lines_of(&s, ap_rows_get(&m, i, "content"));
    }
    /* recalled memories and knowledge facts (tools_ext.h): memory opens its
     * own transactions, so the loop's is committed first and reopened */
    json_t *used = NULL;
    if (!rc && r->env->ext) {
        rc = flush(r, err);
        if (!rc)
            ap_orch_ext_context(r->env->ext, r->tenant, ag->id, col(r, "id"), col(r, "objective"),
                                &s, &used);
        if (!rc) rc = begin(r, err);
    }
    if (rc) {
        json_decref(used);
        ap_buf_free(&s);
        ap_buf_free(&u);
        return rc;
    }
    ap_buf_printf(&u, "Objective: %s\n", col(r, "objective"));
    const char *ctx = col(r, "context");
    json_t *cj = ctx ? json_loads(ctx, 0, NULL) : NULL;
    /* a delegated part says what it is part of (docs/builtin-model.md) */
    const char *whole = ap_json_str(json_object_get(cj, "_delegation"), "parent_objective");
    if (whole && *whole && strcmp(whole, col(r, "objective")) != 0)
        ap_buf_printf(&u, "\nPart of: %s\n", whole);
    /* an escalation is said in its own section, not mixed with knowledge:
     * the name of the agent who escalated is not an answer */
    const char *from = ap_json_str(cj, "escalated_from");
    if (from) {
        ap_buf_printf(&s, "# Escalation\nEscalated by %s", from);
        const char *why = ap_json_str(cj, "escalation_reason");
        if (why) ap_buf_printf(&s, " (%s)", why);
        ap_buf_puts(&s, ".\n");
        const char *prev = ap_json_str(cj, "previous_answer");
        if (prev) ap_buf_printf(&s, "Their answer was: %s\n", prev);
        json_object_del(cj, "escalated_from");
        json_object_del(cj, "escalation_reason");
        json_object_del(cj, "previous_answer");
    }
    char *rest = json_is_object(cj) && json_object_size(cj) ? json_dumps(cj, JSON_COMPACT) : NULL;
    json_decref(cj);
    if (rest) {
        ap_buf_t cb;
        ap_buf_init(&cb, 0);
        lines_of(&cb, rest);
        if (cb.len) {
            ap_buf_puts(&u, "\n");
            ap_buf_append(&u, cb.p, cb.len);
        }
        ap_buf_free(&cb);
        free(rest);
    }
    char *sys = ap_buf_steal(&s), *usr = ap_buf_steal(&u);
    *out = json_pack("{s:s,s:s,s:s,s:i}", "system", sys ? sys : "", "user", usr ? usr : "",
                     "agent_id", ag->id, "agent_version", ag->version);
    if (used) json_object_set_new(*out, "recalled", used);
    ap_free(sys);
    ap_free(usr);
    return AP_OK;
}

/* ------------------------------------------------------------------ tools */

typedef struct {
    json_t *content; /* new reference */
    bool is_error;
    bool parked;     /* the task left the running states */
    bool written;    /* the tool wrote its tool_result step itself */
} tool_out_t;

typedef ap_rc (*tool_fn)(run_t *r, const step_t *call, json_t *args, tool_out_t *o,
                         ap_err_t *err);

typedef struct {
    const char *name, *description, *params;
    bool side_effect; /* needs approval under autonomy "supervised" */
    bool (*offered)(run_t *r);
    tool_fn run;
} tool_t;

static json_t *tool_err(const char *fmt, const char *a1, const char *a2) {
    char buf[2048];
    snprintf(buf, sizeof buf, fmt, a1 ? a1 : "", a2 ? a2 : "");
    return json_pack("{s:s}", "error", buf);
}

/* An id derived from the task id and a step seq: a redone step gets the
 * same one. */
static void derived_id(const char *task_id, int seq, const char *salt, char out[AP_UUID_LEN]) {
    char in[160];
    snprintf(in, sizeof in, "%s:%d:%s", task_id, seq, salt);
    uint8_t h[AP_SHA256_LEN];
    ap_sha256(in, strlen(in), h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    char hex[33];
    ap_hex(h, 16, hex);
    snprintf(out, AP_UUID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

static ap_rc t_delegate(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    const char *to = ap_json_str(args, "agent_id");
    const char *objective = ap_json_str(args, "objective");
    if (!to || !objective || !*objective) {
        o->content = tool_err("delegate_to_agent needs agent_id and objective", NULL, NULL);
        o->is_error = true;
        return AP_OK;
    }
    ap_orch_agent_t tgt;
    ap_err_t e2 = {0};
    ap_rc rc = ap_orch_tv_agent(r->tx, r->tenant, to, "agent_id", &tgt, &e2);
    if (rc == AP_ERR_NOT_FOUND) {
        o->content = tool_err("no agent \"%s\" in this tenant", to, NULL);
        o->is_error = true;
        return AP_OK;
    }
    if (rc) return ap_err_set(err, rc, NULL, e2.msg, NULL, "%s", e2.detail);
    int depth = (int)ap_rows_int(&r->row, 0, "depth", 0) + 1;
    if (!ap_orch_tv_may_delegate(r->tx, r->tenant, r->agent.id, tgt.id)) {
        o->content = tool_err("refused: %s may not delegate to %s (no supervises, delegates_to"
                              " or reports_to relationship)", r->agent.name, tgt.name);
        o->is_error = true;
        return AP_OK;
    }
    if (depth > r->agent.max_delegation_depth) {
        char lim[64];
        snprintf(lim, sizeof lim, "%d > %d", depth, r->agent.max_delegation_depth);
        o->content = tool_err("refused: delegation depth limit of %s reached (depth %s)",
                              r->agent.name, lim);
        o->is_error = true;
        return AP_OK;
    }
    if (!ap_orch_tv_runnable(&tgt)) {
        o->content = tool_err("refused: agent %s is %s, not deployed", tgt.name, tgt.status);
        o->is_error = true;
        return AP_OK;
    }
    char sub[AP_UUID_LEN], now[AP_TIME_LEN];
    derived_id(col(r, "id"), call->seq, "subtask", sub);
    ap_time_format(ap_now_ms(), now);
    json_t *ctx = json_pack("{s:{s:s,s:s,s:s}}", "_delegation", "parent_task_id", col(r, "id"),
                            "parent_objective", col(r, "objective"), "delegated_by", r->agent.name);
    char *ctxs = json_dumps(ctx, JSON_COMPACT);
    json_decref(ctx);
    ap_val_t p[] = {AP_VTEXT(sub),
                    AP_VTEXT(r->tenant),
                    AP_VTEXT(col(r, "group_id")),
                    AP_VTEXT(tgt.id),
                    AP_VINT(tgt.version),
                    AP_VTEXT(r->agent.id),
                    AP_VTEXT(col(r, "priority")),
                    AP_VINT(ap_rows_int(&r->row, 0, "priority_rank", 2)),
                    AP_VTEXT(col(r, "task_type")),
                    AP_VTEXT(objective),
                    AP_VTEXT(ctxs),
                    AP_VTEXT(col(r, "id")),
                    AP_VTEXT(col(r, "root_task_id")),
                    AP_VINT(depth),
                    AP_VINT(ap_rows_int(&r->row, 0, "max_steps", 32)),
                    AP_VINT(ap_rows_int(&r->row, 0, "max_tokens", 200000)),
                    AP_VTEXT(col(r, "deadline_at")),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    ap_rows_t ins;
    rc = ap_tx_query(r->tx,
                     "INSERT INTO agent_tasks (id, tenant_id, group_id, assigned_agent_id,"
                     " agent_version, created_by_agent_id, priority, priority_rank, task_type,"
                     " objective, context, parent_task_id, root_task_id, depth, max_steps,"
                     " max_tokens, deadline_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?,"
                     " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                     p, 19, &ins, err);
    free(ctxs);
    if (rc) return rc;
    if (ins.changes > 0) {
        json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "status", "queued", "objective", objective,
                              "assigned_agent_id", tgt.id, "parent_task_id", col(r, "id"));
        rc = ap_event_append(r->tx, r->tenant, "task.created", sub, tgt.id, col(r, "group_id"), d,
                             NULL, err);
        json_decref(d);
        json_t *c = json_pack("{s:s}", "objective", objective);
        ap_orch_msg_t m = {.group_id = col(r, "group_id"), .task_id = sub,
                           .from_agent_id = r->agent.id, .to_agent_id = tgt.id,
                           .type = "request", .content = c};
        if (!rc) rc = ap_orch_message_add(r->tx, r->tenant, &m, NULL, err);
        json_decref(c);
        if (rc) return rc;
        ap_orch_wake_add(r->wake, sub, (int)ap_rows_int(&r->row, 0, "priority_rank", 2));
    }
    o->content = json_pack("{s:s,s:s,s:s,s:s}", "task_id", sub, "status", "delegated",
                           "agent_id", tgt.id, "objective", objective);
    return AP_OK;
}

static ap_rc run_model(run_t *r, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                       ap_llm_error_t *lerr, ap_err_t *err);
static const char *model_for(run_t *r);

#define COMPLETE_PARAMS                                                                           \
    "{\"type\":\"object\",\"properties\":{\"output\":{\"type\":\"string\"},\"confidence\":"          \
    "{\"type\":\"number\",\"minimum\":0,\"maximum\":1}},\"required\":[\"output\"]}"

/* query_agent: the colleague's model answers once, synchronously, as part
 * of this step (its tokens are charged to the asking task). */
static ap_rc t_query(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    (void)call;
    const char *to = ap_json_str(args, "agent_id");
    const char *question = ap_json_str(args, "question");
    if (!question) question = ap_json_str(args, "objective");
    if (!to || !question) {
        o->content = tool_err("query_agent needs agent_id and question", NULL, NULL);
        o->is_error = true;
        return AP_OK;
    }
    ap_orch_agent_t tgt;
    ap_err_t e2 = {0};
    if (ap_orch_tv_agent(r->tx, r->tenant, to, "agent_id", &tgt, &e2) ||
        !ap_orch_tv_may_query(r->tx, r->tenant, r->agent.id, tgt.id)) {
        o->content = tool_err("refused: %s may not query \"%s\" (needs collaborates_with or"
                              " consults)", r->agent.name, to);
        o->is_error = true;
        return AP_OK;
    }
    char *sys = ap_arena_printf(r->a, "You are %s, %s. %s\n", tgt.name, tgt.role,
                                tgt.description ? tgt.description : "");
    ap_rows_t g;
    if (col(r, "group_id") && !ap_orch_tv_group(r->tx, r->tenant, col(r, "group_id"), &g, err) &&
        g.nrows) {
        ap_buf_t b;
        ap_buf_init(&b, 0);
        ap_buf_puts(&b, "# Shared context\n");
        lines_of(&b, ap_rows_get(&g, 0, "shared_context"));
        char *t = ap_buf_steal(&b);
        sys = ap_arena_printf(r->a, "%s%s", sys, t ? t : "");
        ap_free(t);
    }
    ap_llm_msg_t msgs[2] = {{.role = AP_LLM_SYSTEM, .content = sys},
                            {.role = AP_LLM_USER,
                             .content = ap_arena_printf(r->a, "Objective: %s", question)}};
    ap_orch_agent_t self = r->agent;
    r->agent = tgt; /* the colleague's own model */
    /* the colleague answers through complete_task, so its confidence comes
     * back with the answer */
    ap_llm_tool_t ct = {.name = "complete_task",
                        .description = "Give your answer and your confidence (0..1).",
                        .parameters = keep(r->a, json_loads(COMPLETE_PARAMS, 0, NULL))};
    ap_llm_req_t req = {.model = model_for(r), .msgs = msgs, .nmsgs = 2, .tools = &ct, .ntools = 1,
                        .tool_choice = "complete_task"};
    r->agent = self;
    ap_llm_resp_t resp = {0};
    ap_llm_error_t lerr = {0};
    ap_rc rc = run_model(r, &req, &resp, &lerr, err);
    if (rc) return rc;
    if (lerr.kind != AP_LLM_OK) {
        o->content = tool_err("the colleague could not answer: %s", lerr.message, NULL);
        o->is_error = true;
        return AP_OK;
    }
    const char *answer = resp.content;
    double conf = -1;
    for (int i = 0; i < resp.ntool_calls; i++) {
        const char *txt = resp.tool_calls[i].arguments;
        json_t *ca = keep(r->a, json_loads(txt ? txt : "{}", 0, NULL));
        if (ap_json_str(ca, "output")) answer = ap_json_str(ca, "output");
        json_t *c = json_object_get(ca, "confidence");
        if (json_is_number(c)) conf = json_number_value(c);
    }
    if (!answer) answer = "";
    ap_orch_task_charge(r->tx, r->tenant, col(r, "id"), resp.usage.prompt + resp.usage.completion,
                        0, err);
    json_t *qc = json_pack("{s:s}", "question", question);
    ap_orch_msg_t q = {.group_id = col(r, "group_id"), .task_id = col(r, "id"),
                       .from_agent_id = r->agent.id, .to_agent_id = tgt.id, .type = "question",
                       .content = qc, .requires_response = true};
    rc = ap_orch_message_add(r->tx, r->tenant, &q, NULL, err);
    json_decref(qc);
    json_t *ac = json_pack("{s:s}", "answer", answer);
    if (conf >= 0) json_object_set_new(ac, "confidence", json_real(conf));
    ap_orch_msg_t an = {.group_id = col(r, "group_id"), .task_id = col(r, "id"),
                        .from_agent_id = tgt.id, .to_agent_id = r->agent.id, .type = "response",
                        .content = ac};
    if (!rc) rc = ap_orch_message_add(r->tx, r->tenant, &an, NULL, err);
    json_decref(ac);
    o->content = json_pack("{s:s,s:s}", "output", answer, "agent_id", tgt.id);
    if (conf >= 0) json_object_set_new(o->content, "confidence", json_real(conf));
    return rc;
}

/* Hands the task to the supervisor with a fresh context. */
static ap_rc escalate(run_t *r, const char *sup_id, const char *reason, const char *output,
                      ap_err_t *err) {
    ap_orch_agent_t sup;
    ap_rc rc = ap_orch_tv_agent(r->tx, r->tenant, sup_id, "supervisor", &sup, err);
    if (rc) return rc;
    json_t *c = json_pack("{s:s,s:s?}", "reason", reason, "output", output);
    ap_orch_msg_t m = {.group_id = col(r, "group_id"), .task_id = col(r, "id"),
                       .from_agent_id = r->agent.id, .to_agent_id = sup.id, .type = "escalation",
                       .content = c, .requires_response = true};
    rc = ap_orch_message_add(r->tx, r->tenant, &m, NULL, err);
    json_decref(c);
    if (rc) return rc;
    json_t *ctx = json_loads(col(r, "context"), 0, NULL);
    if (!json_is_object(ctx)) {
        json_decref(ctx);
        ctx = json_object();
    }
    json_object_set_new(ctx, "escalated_from", json_string(r->agent.name));
    json_object_set_new(ctx, "escalation_reason", json_string(reason));
    if (output) json_object_set_new(ctx, "previous_answer", json_string(output));
    char *cs = json_dumps(ctx, JSON_COMPACT);
    json_decref(ctx);
    ap_val_t p[] = {AP_VTEXT(sup.id), AP_VINT(sup.version), AP_VTEXT(cs), AP_VTEXT(col(r, "id"))};
    rc = ap_tx_query(r->tx,
                     "UPDATE agent_tasks SET assigned_agent_id = ?, agent_version = ?, context = ?"
                     " WHERE id = ?",
                     p, 4, NULL, err);
    free(cs);
    if (rc) return rc;
    json_t *res = json_pack("{s:s,s:s}", "to_agent_id", sup.id, "reason", reason);
    rc = add_step(r, "note", "escalated", "done", NULL, keep(r->a, res), err);
    if (!rc) rc = move(r, "queued", "escalated to the supervisor", err);
    /* the task changed hands: the worker may be idle, the supervisor is not */
    if (!rc) rc = ap_orch_task_settle_agent(r->tx, r->tenant, r->agent.id, err);
    if (!rc) rc = ap_orch_task_settle_agent(r->tx, r->tenant, sup.id, err);
    if (!rc) rc = release(r, NULL, err);
    if (!rc) ap_orch_wake_add(r->wake, col(r, "id"), (int)ap_rows_int(&r->row, 0, "priority_rank", 2));
    return rc;
}

/* The group's escalation_rules (docs/agents.md): min_confidence,
 * on_failure, max_attempts, escalate_to. */
typedef struct {
    double min_confidence; /* 0: none */
    bool on_failure;
    int max_attempts;      /* 0: the runner's default */
    const char *escalate_to; /* "supervisor" | "human" | an agent id */
} rules_t;

static rules_t rules_of(run_t *r) {
    rules_t ru = {.escalate_to = "supervisor"};
    const char *gid = col(r, "group_id");
    ap_rows_t g;
    ap_err_t e;
    if (!gid || ap_orch_tv_group(r->tx, r->tenant, gid, &g, &e) || !g.nrows) return ru;
    json_t *j = json_loads(ap_rows_get(&g, 0, "escalation_rules"), 0, NULL);
    json_t *v = json_object_get(j, "min_confidence");
    if (json_is_number(v)) ru.min_confidence = json_number_value(v);
    ru.on_failure = json_is_true(json_object_get(j, "on_failure"));
    v = json_object_get(j, "max_attempts");
    if (json_is_integer(v)) ru.max_attempts = (int)json_integer_value(v);
    const char *to = json_string_value(json_object_get(j, "escalate_to"));
    if (to) ru.escalate_to = ap_arena_strdup(r->a, to);
    json_decref(j);
    return ru;
}

static bool to_human(const rules_t *ru) { return strcmp(ru->escalate_to, "human") == 0; }

/* Where an escalation goes (not "human"): the supervisor, or the member the
 * rules name.  NULL when there is none (or it is the agent itself). */
static const char *escalation_target(run_t *r, const rules_t *ru, ap_err_t *err) {
    const char *to = NULL;
    if (strcmp(ru->escalate_to, "supervisor") == 0) {
        if (ap_orch_tv_supervisor(r->tx, r->tenant, r->agent.id, &to, err)) return NULL;
    } else if (!to_human(ru)) {
        to = ru->escalate_to;
    }
    return to && strcmp(to, r->agent.id) != 0 ? to : NULL;
}

static ap_rc park_for_approval(run_t *r, json_t *content, const char *why, ap_err_t *err);

static ap_rc t_escalate(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    (void)call;
    rules_t ru = rules_of(r);
    if (to_human(&ru)) {
        /* reached only after a person decided (the call is gated) */
        o->content = json_pack("{s:s}", "output", "a person approved going on");
        return AP_OK;
    }
    const char *to = escalation_target(r, &ru, err);
    if (!to) {
        o->content = tool_err("refused: %s has no one to escalate to (escalation_rules.escalate_to"
                              " %s)", r->agent.name, ru.escalate_to);
        o->is_error = true;
        return AP_OK;
    }
    const char *reason = ap_json_str(args, "reason");
    o->content = json_pack("{s:s,s:s}", "status", "escalated", "to_agent_id", to);
    o->parked = true;
    return escalate(r, to, reason ? reason : "escalated by the agent", NULL, err);
}

static ap_rc complete(run_t *r, const char *output, double conf, tool_out_t *o, ap_err_t *err) {
    o->parked = true;
    ap_orch_ext_hot(r->env->ext, r->tenant, r->agent.id, col(r, "id"), "assistant", output);
    rules_t ru = rules_of(r);
    bool low = conf < ru.min_confidence && !escalated(r);
    char why[128];
    snprintf(why, sizeof why, "low confidence %.2f < %.2f (escalation_rules.min_confidence)", conf,
             ru.min_confidence);
    if (low && !to_human(&ru)) {
        const char *to = escalation_target(r, &ru, err);
        if (to) {
            o->content = json_pack("{s:s,s:s}", "status", "escalated", "reason", why);
            return escalate(r, to, why, output, err);
        }
    }
    if (ap_rows_int(&r->row, 0, "requires_approval", 0) || (low && to_human(&ru))) {
        ap_val_t p[] = {AP_VTEXT(output), AP_VREAL(conf), AP_VTEXT(col(r, "id"))};
        ap_rc rc = ap_tx_query(r->tx,
                               "UPDATE agent_tasks SET output = ?, confidence = ?, approval_state ="
                               " 'pending' WHERE id = ?",
                               p, 3, NULL, err);
        json_t *c = json_pack("{s:s,s:s,s:f}", "kind",
                              ap_rows_int(&r->row, 0, "requires_approval", 0) ? "review" : "escalation",
                              "output", output, "confidence", conf);
        if (low) json_object_set_new(c, "reason", json_string(why));
        ap_orch_msg_t m = {.group_id = col(r, "group_id"), .task_id = col(r, "id"),
                           .from_agent_id = r->agent.id, .type = "approval_request", .content = c,
                           .requires_response = true};
        if (!rc) rc = ap_orch_message_add(r->tx, r->tenant, &m, NULL, err);
        json_decref(c);
        if (!rc) rc = move(r, "reviewing", "output awaits approval", err);
        if (!rc) rc = release(r, NULL, err);
        o->content = json_pack("{s:s}", "status", "reviewing");
        return rc;
    }
    /* the result step goes before the terminal status, so the task's last
     * event is its completion (a stream of the task ends there) */
    json_t *res = keep(r->a, json_pack("{s:s?,s:{s:s},s:b}", "call_id", r->call_id, "content",
                                       "status", "completed", "is_error", 0));
    ap_rc rc = add_step(r, "tool_result", "complete_task", "done", NULL, res, err);
    o->written = true;
    if (rc) return rc;
    return ap_orch_task_finish(r->tx, r->tenant, &r->row, "completed", output, conf, NULL, NULL,
                               r->wake, err);
}

static ap_rc t_complete(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    (void)call;
    const char *output = ap_json_str(args, "output");
    if (!output) {
        o->content = tool_err("complete_task needs output", NULL, NULL);
        o->is_error = true;
        return AP_OK;
    }
    json_t *c = json_object_get(args, "confidence");
    double conf = json_is_number(c) ? json_number_value(c) : 0.5;
    if (conf < 0) conf = 0;
    if (conf > 1) conf = 1;
    return complete(r, output, conf, o, err);
}

/* request_approval: reached only once a person decided (see gate()). */
static ap_rc t_approval(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    (void)r, (void)call, (void)args, (void)err;
    o->content = json_pack("{s:s}", "output", "approved");
    return AP_OK;
}

static bool has_delegates(run_t *r) {
    ap_rows_t d;
    ap_err_t e;
    return !escalated(r) && !ap_orch_tv_delegates(r->tx, r->tenant, r->agent.id, &d, &e) &&
           d.nrows > 0;
}
static bool has_consultees(run_t *r) {
    ap_rows_t d;
    ap_err_t e;
    return !ap_orch_tv_consultees(r->tx, r->tenant, r->agent.id, &d, &e) && d.nrows > 0;
}
static bool has_supervisor(run_t *r) {
    rules_t ru = rules_of(r);
    ap_err_t e;
    return to_human(&ru) || escalation_target(r, &ru, &e) != NULL;
}
static bool always(run_t *r) {
    (void)r;
    return true;
}

/* Memory and MCP tools (tools_ext.h): found by the call's name among the
 * agent's grants; run with the loop's transaction committed (they open
 * their own, and an MCP call may take until its deadline), then the loop
 * takes its transaction and claim back. */
static ap_rc t_ext(run_t *r, const step_t *call, json_t *args, tool_out_t *o, ap_err_t *err) {
    json_t *found = keep(r->a, ap_orch_ext_find(r->env->ext, r->tx, r->tenant, r->agent.id,
                                                call->name));
    if (!found) {
        o->content = tool_err("unknown or unavailable tool \"%s\"", call->name, NULL);
        o->is_error = true;
        return AP_OK;
    }
    ap_rc rc = flush(r, err);
    if (rc) return rc;
    ap_orch_ext_call(r->env->ext, r->tenant, r->agent.id, col(r, "id"), found, args, &o->content,
                     &o->is_error);
    char *t = json_dumps(o->content, JSON_COMPACT);
    ap_orch_ext_hot(r->env->ext, r->tenant, r->agent.id, col(r, "id"), "tool",
                    ap_arena_printf(r->a, "%s: %.2000s", call->name, t ? t : ""));
    free(t);
    return begin(r, err);
}

/* The tool table: adding a tool is one entry (memory and MCP tools join
 * here). */
static const tool_t TOOLS[] = {
    {"delegate_to_agent", "Give part of the objective to an agent you supervise or delegate to.",
     "{\"type\":\"object\",\"properties\":{\"agent_id\":{\"type\":\"string\"},\"objective\":"
     "{\"type\":\"string\"}},\"required\":[\"agent_id\",\"objective\"]}",
     true, has_delegates, t_delegate},
    {"query_agent", "Ask a colleague (collaborator or consultee) a question; returns the answer.",
     "{\"type\":\"object\",\"properties\":{\"agent_id\":{\"type\":\"string\"},\"question\":"
     "{\"type\":\"string\"}},\"required\":[\"agent_id\",\"question\"]}",
     false, has_consultees, t_query},
    {"escalate_to_supervisor", "Hand the task to your supervisor, saying why.",
     "{\"type\":\"object\",\"properties\":{\"reason\":{\"type\":\"string\"}},\"required\":"
     "[\"reason\"]}",
     true, has_supervisor, t_escalate},
    {"request_approval", "Wait for a person to approve before going on.",
     "{\"type\":\"object\",\"properties\":{\"reason\":{\"type\":\"string\"}},\"required\":"
     "[\"reason\"]}",
     false, always, t_approval},
    {"complete_task", "Finish the task with its output and your confidence (0..1).",
     COMPLETE_PARAMS,
     false, always, t_complete},
};
#define NTOOLS (int)(sizeof TOOLS / sizeof TOOLS[0])

static const tool_t *tool_find(const char *name) {
    for (int i = 0; i < NTOOLS; i++)
        if (name && strcmp(TOOLS[i].name, name) == 0) return &TOOLS[i];
    return NULL;
}

/* ------------------------------------------------------------------ model */

/* The task's _llm_headers as "Name: value" lines (at most 8), limited to
 * the AP_FORWARD_HEADERS prefixes. */
static int task_headers(run_t *r, const char *hdr[8]) {
    int nh = 0;
    const char *list = getenv("AP_FORWARD_HEADERS");
    json_t *ctx = list && *list ? json_loads(col(r, "context"), 0, NULL) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(ctx, "_llm_headers"), k, v) {
        if (nh >= 8 || !json_is_string(v) || strncasecmp(k, "authorization", 13) == 0 ||
            strncasecmp(k, "x-api-key", 9) == 0 || strncasecmp(k, "cookie", 6) == 0 ||
            strpbrk(k, ":\r\n") || strpbrk(json_string_value(v), "\r\n"))
            continue;
        char *pl = ap_arena_strdup(r->a, list), *save = NULL;
        for (char *p = strtok_r(pl, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            while (*p == ' ') p++;
            if (*p && strncasecmp(k, p, strlen(p)) == 0) {
                hdr[nh++] = ap_arena_printf(r->a, "%s: %s", k, json_string_value(v));
                break;
            }
        }
    }
    json_decref(ctx);
    return nh;
}

static ap_rc run_model(run_t *r, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                       ap_llm_error_t *lerr, ap_err_t *err) {
    ap_orch_model_fn fn = r->env->model ? r->env->model : ap_orch_model_builtin;
    const char *hdr[8];
    int nh = task_headers(r, hdr);
    return fn(r->env->model_ud, r->a, r->tenant, r->agent.id, col(r, "id"), hdr, nh, req, resp,
              lerr, err);
}

static int last_ctx(const run_t *r) {
    for (int i = r->nsteps - 1; i >= 0; i--)
        if (strcmp(r->steps[i].kind, "context") == 0) return i;
    return -1;
}

/* The subtask_results note after step index i, or NULL. */
static json_t *subtask_results(const run_t *r, int from) {
    for (int i = from; i < r->nsteps; i++)
        if (strcmp(r->steps[i].kind, "note") == 0 && r->steps[i].name &&
            strcmp(r->steps[i].name, "subtask_results") == 0)
            return r->steps[i].result;
    return NULL;
}

/* The agent's LLM configuration (the gateway reads a configuration's name
 * as a model), else the runner's default model. */
static const char *model_for(run_t *r) {
    if (r->agent.llm_config_id) {
        ap_rows_t c;
        ap_err_t e;
        ap_val_t p[] = {AP_VTEXT(r->tenant), AP_VTEXT(r->agent.llm_config_id)};
        if (!ap_tx_query(r->tx, "SELECT name FROM llm_configs WHERE tenant_id = ? AND id = ?", p,
                         2, &c, &e) &&
            c.nrows)
            return ap_rows_get(&c, 0, "name");
    }
    return r->env->default_model ? r->env->default_model : BUILTIN_MODEL;
}

static ap_rc build_request(run_t *r, ap_llm_req_t *req, ap_err_t *err) {
    (void)err;
    int c = last_ctx(r);
    json_t *ctx = r->steps[c].result;
    int cap = 2 + 2 * (r->nsteps - c);
    ap_llm_msg_t *msgs = ap_arena_calloc(r->a, (size_t)cap * sizeof *msgs);
    int n = 0;
    msgs[n++] = (ap_llm_msg_t){.role = AP_LLM_SYSTEM, .content = ap_json_str(ctx, "system")};
    msgs[n++] = (ap_llm_msg_t){.role = AP_LLM_USER, .content = ap_json_str(ctx, "user")};
    for (int i = c + 1; i < r->nsteps; i++) {
        step_t *s = &r->steps[i];
        if (strcmp(s->kind, "model_call") == 0 && strcmp(s->state, "done") == 0) {
            json_t *calls = json_object_get(s->result, "tool_calls");
            ap_llm_msg_t *m = &msgs[n++];
            *m = (ap_llm_msg_t){.role = AP_LLM_ASSISTANT, .content = ap_json_str(s->result, "content")};
            m->ntool_calls = (int)json_array_size(calls);
            m->tool_calls = ap_arena_calloc(r->a, (size_t)(m->ntool_calls + 1) * sizeof *m->tool_calls);
            for (int k = 0; k < m->ntool_calls; k++) {
                json_t *tc = json_array_get(calls, (size_t)k);
                m->tool_calls[k] = (ap_llm_tool_call_t){.id = ap_json_str(tc, "id"),
                                                        .name = ap_json_str(tc, "name"),
                                                        .arguments = ap_json_str(tc, "arguments")};
            }
        } else if (strcmp(s->kind, "tool_result") == 0) {
            json_t *content = json_object_get(s->result, "content");
            bool is_error = json_is_true(json_object_get(s->result, "is_error"));
            const char *call_id = ap_json_str(s->result, "call_id");
            json_t *subs = subtask_results(r, i + 1);
            json_t *sr = subs && call_id ? json_object_get(subs, call_id) : NULL;
            if (sr) {
                content = sr;
                is_error = !json_is_string(json_object_get(sr, "output"));
            }
            char *t = json_dumps(content ? content : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
            msgs[n++] = (ap_llm_msg_t){.role = AP_LLM_TOOL,
                                       .content = ap_arena_strdup(r->a, t ? t : "null"),
                                       .tool_call_id = call_id,
                                       .name = s->name,
                                       .is_error = is_error};
            free(t);
        }
    }
    int nt = 0;
    json_t *ext = keep(r->a, ap_orch_ext_offered(r->env->ext, r->tx, r->tenant, r->agent.id));
    ap_llm_tool_t *tools =
        ap_arena_calloc(r->a, (NTOOLS + json_array_size(ext)) * sizeof *tools);
    for (int i = 0; i < NTOOLS; i++)
        if (TOOLS[i].offered(r))
            tools[nt++] = (ap_llm_tool_t){
                .name = TOOLS[i].name, .description = TOOLS[i].description,
                .parameters = keep(r->a, json_loads(TOOLS[i].params, 0, NULL))};
    size_t ei;
    json_t *et;
    json_array_foreach(ext, ei, et) /* granted memory and MCP tools */
        tools[nt++] = (ap_llm_tool_t){.name = ap_json_str(et, "name"),
                                      .description = ap_json_str(et, "description"),
                                      .parameters = json_object_get(et, "parameters")};
    *req = (ap_llm_req_t){.model = model_for(r), .msgs = msgs, .nmsgs = n, .tools = tools,
                          .ntools = nt};
    return AP_OK;
}

static json_t *resp_json(const ap_llm_resp_t *resp) {
    json_t *calls = json_array();
    for (int i = 0; i < resp->ntool_calls; i++)
        json_array_append_new(calls, json_pack("{s:s?,s:s?,s:s?}", "id", resp->tool_calls[i].id,
                                               "name", resp->tool_calls[i].name, "arguments",
                                               resp->tool_calls[i].arguments));
    return json_pack("{s:s?,s:s?,s:s?,s:o,s:I,s:I}", "model", resp->model, "content",
                     resp->content, "finish_reason", resp->finish_reason, "tool_calls", calls,
                     "prompt_tokens", (json_int_t)resp->usage.prompt, "completion_tokens",
                     (json_int_t)resp->usage.completion);
}

static ap_rc append_reasoning(run_t *r, const ap_llm_resp_t *resp, int seq, ap_err_t *err) {
    json_t *arr = json_loads(col(r, "reasoning"), 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        arr = json_array();
    }
    json_t *names = json_array();
    for (int i = 0; i < resp->ntool_calls; i++)
        json_array_append_new(names, json_string(resp->tool_calls[i].name ? resp->tool_calls[i].name : ""));
    json_array_append_new(arr, json_pack("{s:i,s:s?,s:o}", "step", seq, "thought", resp->content,
                                         "tool_calls", names));
    char *t = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    ap_val_t p[] = {AP_VTEXT(t), AP_VTEXT(col(r, "id"))};
    ap_rc rc = ap_tx_query(r->tx, "UPDATE agent_tasks SET reasoning = ? WHERE id = ?", p, 2, NULL, err);
    free(t);
    return rc;
}

/* --------------------------------------------------------------- the loop */

typedef enum { GO_ON, STOP_PARKED, STOP_RETRY, STOP_LOST, STOP_CRASH, STOP_AWAIT } next_t;

static bool crash_at(const run_t *r, const char *where) {
    return r->env->crash && r->env->crash(r->env->crash_ud, where);
}

/* Fails the task, or, with escalation_rules.on_failure, escalates it
 * instead when the failure is the agent's (its model failed) and there is
 * someone to take it over. */
static next_t fail_task(run_t *r, const char *code, const char *detail, ap_err_t *err) {
    rules_t ru = rules_of(r);
    if (ru.on_failure && !escalated(r) && !to_human(&ru) &&
        (strcmp(code, "model_error") == 0 || strcmp(code, "model_unavailable") == 0)) {
        ap_err_t e2 = {0};
        const char *to = escalation_target(r, &ru, &e2);
        if (to) {
            ap_rc rc = escalate(r, to,
                                ap_arena_printf(r->a, "failed (escalation_rules.on_failure): %s",
                                                detail),
                                NULL, err);
            if (!rc) rc = commit(r, err);
            return rc ? STOP_LOST : STOP_PARKED;
        }
    }
    ap_rc rc = ap_orch_task_finish(r->tx, r->tenant, &r->row, "failed", NULL, 0, code, detail,
                                   r->wake, err);
    if (!rc) rc = commit(r, err);
    return rc ? STOP_LOST : STOP_PARKED;
}

/* The model call step: written 'started', called outside any
 * transaction, completed.  A started step found on resume is redone. */
static next_t model_fail(run_t *r, ap_rc rc, const ap_llm_error_t *lerr, ap_err_t *err);

/* With batching, the in-process model is called inside the transaction:
 * one step row, written done. */
static next_t model_inline(run_t *r, ap_err_t *err) {
    ap_llm_req_t req;
    if (build_request(r, &req, err)) return STOP_LOST;
    ap_llm_resp_t resp = {0};
    ap_llm_error_t lerr = {0};
    ap_rc rc = run_model(r, &req, &resp, &lerr, err);
    if (rc || lerr.kind != AP_LLM_OK) return model_fail(r, rc, &lerr, err);
    json_t *res = keep(r->a, resp_json(&resp));
    int seq = next_seq(r);
    rc = ap_orch_step_add(r->tx, r->tenant, &r->row, seq, "model_call", req.model, "done", NULL,
                          res, resp.usage.prompt + resp.usage.completion, 0, err);
    if (!rc) rc = append_reasoning(r, &resp, seq, err);
    if (!rc) rc = commit(r, err);
    r->env->steps++;
    return rc ? STOP_LOST : GO_ON;
}

/* The call's callback (any thread): the outcome goes to the runner. */
static void on_model_done(void *cb_ud, const ap_llm_resp_t *resp, const ap_llm_error_t *lerr) {
    ap_orch_await_t *w = cb_ud;
    if (resp) w->resp = *resp;
    if (lerr) w->lerr = *lerr;
    else w->lerr.kind = AP_LLM_OK;
    w->done = true;
    w->report(w->report_ud, w);
}

/* Starts the model call and leaves the task waiting for it, leased: the
 * started step is already durable.  The step's arena (request, call,
 * response) goes with the call. */
static next_t model_async(run_t *r, const ap_llm_req_t *req, int seq) {
    ap_orch_await_t *w = ap_calloc(1, sizeof *w);
    w->a = r->a;
    snprintf(w->tenant, sizeof w->tenant, "%s", r->tenant);
    snprintf(w->task, sizeof w->task, "%s", col(r, "id"));
    w->seq = seq;
    w->report = r->env->await_done;
    w->report_ud = r->env->await_ud;
    r->moved = true;
    r->env->await_register(r->env->await_ud, w);
    const char *hdr[8];
    int nh = task_headers(r, hdr);
    ap_err_t e = {0};
    if (r->env->model_start(r->env->model_start_ud, w->a, r->tenant, r->agent.id, col(r, "id"),
                            hdr, nh, req, on_model_done, w, &w->handle, &e)) {
        /* not routable (unknown model, no key): reported as a failed call */
        ap_llm_error_t le = {.kind = e.rc == AP_ERR_UNAVAILABLE ? AP_LLM_UPSTREAM : AP_LLM_BAD_REQUEST};
        snprintf(le.message, sizeof le.message, "%s", e.detail[0] ? e.detail : e.msg);
        on_model_done(w, NULL, &le);
    }
    return STOP_AWAIT;
}

static next_t model_step(run_t *r, ap_err_t *err) {
    step_t *last = r->nsteps ? &r->steps[r->nsteps - 1] : NULL;
    int seq;
    ap_rc rc = move(r, "thinking", NULL, err);
    if (rc) return STOP_LOST;
    bool redo = last && strcmp(last->kind, "model_call") == 0 && strcmp(last->state, "started") == 0;
    if (!redo && batching(r) && strncmp(model_for(r), "builtin/", 8) == 0) return model_inline(r, err);
    if (redo) {
        seq = last->seq;
        r->nsteps--; /* it is redone below */
    } else {
        seq = next_seq(r);
        rc = ap_orch_step_add(r->tx, r->tenant, &r->row, seq, "model_call", model_for(r),
                              "started", NULL, NULL, 0, 0, err);
        if (rc) return STOP_LOST;
    }
    ap_llm_req_t req;
    rc = build_request(r, &req, err);
    if (!rc) rc = flush(r, err); /* the started step is durable before the call */
    if (rc) return STOP_LOST;
    if (crash_at(r, "model")) return STOP_CRASH;
    if (r->env->model_start) return model_async(r, &req, seq);
    ap_llm_resp_t resp = {0};
    ap_llm_error_t lerr = {0};
    rc = run_model(r, &req, &resp, &lerr, err);
    if (begin(r, err)) return STOP_LOST;
    if (rc || lerr.kind != AP_LLM_OK) return model_fail(r, rc, &lerr, err);
    json_t *res = keep(r->a, resp_json(&resp));
    int64_t tokens = resp.usage.prompt + resp.usage.completion;
    rc = ap_orch_step_done(r->tx, r->tenant, col(r, "id"), seq, res, tokens, 0, err);
    if (!rc) rc = append_reasoning(r, &resp, seq, err);
    if (!rc) rc = commit(r, err);
    r->env->steps++;
    return rc ? STOP_LOST : GO_ON;
}

/* A failed model call: retried later when transient, else the task fails. */
static next_t model_fail(run_t *r, ap_rc rc, const ap_llm_error_t *lerr, ap_err_t *err) {
    {
        bool transient = !rc ? ap_llm_err_retryable(lerr->kind) : rc == AP_ERR_UNAVAILABLE;
        int attempts = (int)ap_rows_int(&r->row, 0, "attempts", 0) + 1;
        const char *why = rc ? err->detail : lerr->message;
        rules_t ru = rules_of(r);
        int max = ru.max_attempts > 0 ? ru.max_attempts : MAX_ATTEMPTS;
        if (!transient || attempts >= max)
            return fail_task(r, transient ? "model_unavailable" : "model_error",
                             ap_arena_printf(r->a, "model call failed after %d attempt(s): %s",
                                             attempts, why), err);
        char at[AP_TIME_LEN];
        ap_time_format(ap_now_ms() + (200LL << attempts), at);
        ap_val_t p[] = {AP_VINT(attempts), AP_VTEXT(col(r, "id"))};
        rc = ap_tx_query(r->tx, "UPDATE agent_tasks SET attempts = ? WHERE id = ?", p, 2, NULL, err);
        if (!rc) rc = move(r, "queued", ap_arena_printf(r->a, "retrying: %s", why), err);
        if (!rc) rc = release(r, at, err);
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : STOP_RETRY;
    }
}

/* Approval for a tool call at step seq: NULL when none yet. */
static const step_t *approval_after(const run_t *r, int seq) {
    for (int i = 0; i < r->nsteps; i++)
        if (r->steps[i].seq > seq && strcmp(r->steps[i].kind, "approval") == 0) return &r->steps[i];
    return NULL;
}

static ap_rc park_for_approval(run_t *r, json_t *content, const char *why, ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(col(r, "id"))};
    ap_rc rc = ap_tx_query(r->tx, "UPDATE agent_tasks SET approval_state = 'pending' WHERE id = ?",
                           p, 1, NULL, err);
    ap_orch_msg_t m = {.group_id = col(r, "group_id"), .task_id = col(r, "id"),
                       .from_agent_id = r->agent.id, .type = "approval_request",
                       .content = content, .requires_response = true};
    if (!rc) rc = ap_orch_message_add(r->tx, r->tenant, &m, NULL, err);
    if (!rc) rc = move(r, "waiting_input", why, err);
    if (!rc) rc = release(r, NULL, err);
    return rc;
}

/* Executes tool call k of the model turn at step index mi. */
static next_t tool_step(run_t *r, int mi, int k, step_t *call_step, ap_err_t *err) {
    json_t *tc = json_array_get(json_object_get(r->steps[mi].result, "tool_calls"), (size_t)k);
    const char *name = ap_json_str(tc, "name");
    const char *call_id = ap_json_str(tc, "id");
    const char *argtext = ap_json_str(tc, "arguments");
    json_t *args = keep(r->a, json_loads(argtext ? argtext : "{}", 0, NULL));
    ap_rc rc = move(r, "executing", NULL, err);
    if (rc) return STOP_LOST;
    if (!call_step) {
        json_t *in = keep(r->a, json_pack("{s:i,s:s?,s:O?}", "index", k, "call_id", call_id,
                                          "arguments", args));
        rc = add_step(r, "tool_call", name, "done", in, NULL, err);
        if (rc) return STOP_LOST;
        call_step = &r->steps[r->nsteps - 1];
    }
    const tool_t *tool = tool_find(name);
    tool_t ext_tool; /* a granted memory or MCP tool */
    json_t *ext = tool ? NULL : ap_orch_ext_find(r->env->ext, r->tx, r->tenant, r->agent.id, name);
    if (ext) {
        ext_tool = (tool_t){name, "", "{}", ap_orch_ext_side_effect(ext), always, t_ext};
        tool = &ext_tool;
        json_decref(ext);
    }
    tool_out_t o = {0};
    r->call_id = call_id;
    bool offered = tool && tool->offered(r);
    bool human_esc = false;
    if (tool && strcmp(name, "escalate_to_supervisor") == 0) {
        rules_t ru = rules_of(r);
        human_esc = to_human(&ru);
    }
    bool gated = tool && offered &&
                 (strcmp(name, "request_approval") == 0 || human_esc ||
                  (tool->side_effect && strcmp(r->agent.autonomy_level, "supervised") == 0));
    const step_t *ap = gated ? approval_after(r, call_step->seq) : NULL;
    if (gated && !ap) {
        json_t *c = json_pack("{s:s,s:s,s:O?,s:i}", "kind", "tool_call", "tool", name, "arguments",
                              args, "step_seq", call_step->seq);
        rc = park_for_approval(r, c, ap_arena_printf(r->a, "approval needed for %s", name), err);
        json_decref(c);
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : STOP_PARKED;
    }
    if (!tool || !offered) {
        o.content = tool_err("unknown or unavailable tool \"%s\"", name ? name : "", NULL);
        o.is_error = true;
    } else if (ap && strcmp(ap->name, "approved") != 0) {
        const char *cm = ap_json_str(ap->result, "comment");
        o.content = tool_err("rejected by a reviewer%s%s", cm ? ": " : "", cm);
        o.is_error = true;
    } else if (!json_is_object(args)) {
        o.content = tool_err("arguments of %s are not a JSON object", name, NULL);
        o.is_error = true;
    } else {
        rc = tool->run(r, call_step, args, &o, err);
        if (rc) {
            json_decref(o.content);
            return STOP_LOST;
        }
    }
    if (ap) {
        ap_val_t p[] = {AP_VTEXT(col(r, "id"))};
        ap_tx_query(r->tx, "UPDATE agent_tasks SET approval_state = NULL WHERE id = ?", p, 1, NULL,
                    err);
    }
    if (o.written) {
        json_decref(o.content);
    } else {
        json_t *res = keep(r->a, json_pack("{s:s?,s:o,s:b}", "call_id", call_id, "content",
                                           o.content ? o.content : json_null(), "is_error",
                                           o.is_error));
        rc = add_step(r, "tool_result", name, "done", NULL, res, err);
    }
    if (!rc) rc = commit(r, err);
    if (rc) return STOP_LOST;
    return o.parked ? STOP_PARKED : GO_ON;
}

/* After every tool call of a turn has its result: wait for subtasks, or
 * record their results, or go back to the model. */
static next_t after_turn(run_t *r, int mi, ap_err_t *err) {
    json_t *subs = json_object();
    int pending = 0;
    for (int i = mi + 1; i < r->nsteps; i++) {
        step_t *s = &r->steps[i];
        if (strcmp(s->kind, "tool_result") != 0 || !s->name ||
            strcmp(s->name, "delegate_to_agent") != 0 ||
            json_is_true(json_object_get(s->result, "is_error")))
            continue;
        const char *sub = ap_json_str(json_object_get(s->result, "content"), "task_id");
        const char *cid = ap_json_str(s->result, "call_id");
        ap_rows_t t;
        ap_err_t e2;
        if (!sub || !cid || ap_orch_task_row(r->tx, r->tenant, sub, &t, &e2)) continue;
        const char *st = ap_rows_get(&t, 0, "status");
        if (!ap_orch_status_terminal(st)) {
            pending++;
            continue;
        }
        const char *conf = ap_rows_get(&t, 0, "confidence");
        json_t *err_j = json_loads(ap_rows_get(&t, 0, "error") ? ap_rows_get(&t, 0, "error") : "null",
                                   0, NULL);
        json_object_set_new(
            subs, cid,
            strcmp(st, "completed") == 0
                ? json_pack("{s:s,s:s?,s:f,s:s}", "status", st, "output",
                            ap_rows_get(&t, 0, "output"), "confidence", conf ? strtod(conf, NULL) : 0.5,
                            "task_id", sub)
                : json_pack("{s:s,s:s,s:s}", "status", st, "error",
                            ap_json_str(err_j, "detail") ? ap_json_str(err_j, "detail") : st,
                            "task_id", sub));
        json_decref(err_j);
    }
    ap_rc rc;
    if (pending) {
        json_decref(subs);
        rc = ap_tx_lock(r->tx, ap_arena_printf(r->a, "task:%s", col(r, "id")), err);
        if (!rc) rc = move(r, "delegated", ap_arena_printf(r->a, "waiting for %d subtask(s)", pending), err);
        if (!rc) rc = release(r, NULL, err);
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : STOP_PARKED;
    }
    if (json_object_size(subs) && !subtask_results(r, mi + 1)) {
        rc = add_step(r, "note", "subtask_results", "done", NULL, keep(r->a, subs), err);
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : GO_ON;
    }
    json_decref(subs);
    return model_step(r, err);
}

/* One action; the transaction is open on entry and closed on return. */
static next_t step(run_t *r, ap_err_t *err) {
    if (load_steps(r, err)) return STOP_LOST;
    int64_t now = ap_now_ms(), deadline;
    if (ap_rows_int(&r->row, 0, "steps", 0) >= ap_rows_int(&r->row, 0, "max_steps", 32))
        return fail_task(r, "step_limit",
                         ap_arena_printf(r->a, "the task used its %s steps (max_steps)",
                                         col(r, "max_steps")), err);
    if (ap_rows_int(&r->row, 0, "tokens_used", 0) >= ap_rows_int(&r->row, 0, "max_tokens", 200000))
        return fail_task(r, "token_limit",
                         ap_arena_printf(r->a, "the task used %s tokens (max_tokens %s)",
                                         col(r, "tokens_used"), col(r, "max_tokens")), err);
    if (col(r, "deadline_at") && ap_time_parse(col(r, "deadline_at"), &deadline) && now > deadline)
        return fail_task(r, "timeout",
                         ap_arena_printf(r->a, "the task passed its deadline %s",
                                         col(r, "deadline_at")), err);
    if (ap_orch_tv_agent(r->tx, r->tenant, col(r, "assigned_agent_id"), "assigned_agent_id",
                         &r->agent, err))
        return fail_task(r, "agent_gone", "the assigned agent no longer exists", err);
    int c = last_ctx(r);
    /* the autonomy gate before the first step */
    if (c < 0 && strcmp(r->agent.autonomy_level, "approval_required") == 0) {
        const step_t *ap = approval_after(r, 0);
        if (!ap) {
            json_t *cn = json_pack("{s:s,s:s}", "kind", "start", "objective", col(r, "objective"));
            ap_rc rc = park_for_approval(r, cn, "the agent's autonomy requires approval", err);
            json_decref(cn);
            if (!rc) rc = commit(r, err);
            return rc ? STOP_LOST : STOP_PARKED;
        }
    }
    bool handed = false;
    for (int i = c + 1; c >= 0 && i < r->nsteps; i++)
        if (strcmp(r->steps[i].kind, "note") == 0 && r->steps[i].name &&
            strcmp(r->steps[i].name, "escalated") == 0)
            handed = true;
    if (c < 0 || handed) {
        json_t *ctx;
        if (move(r, "thinking", NULL, err) || build_context(r, &ctx, err)) return STOP_LOST;
        ap_rc rc = add_step(r, "context", r->agent.name, "done", NULL, keep(r->a, ctx), err);
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : GO_ON;
    }
    /* the last model turn after the context */
    int mi = -1;
    for (int i = r->nsteps - 1; i > c; i--)
        if (strcmp(r->steps[i].kind, "model_call") == 0) {
            mi = i;
            break;
        }
    if (mi < 0 || strcmp(r->steps[mi].state, "started") == 0) return model_step(r, err);
    json_t *calls = json_object_get(r->steps[mi].result, "tool_calls");
    int ncalls = (int)json_array_size(calls);
    if (ncalls == 0) {
        /* a plain answer: it completes the task */
        tool_out_t o = {0};
        const char *text = ap_json_str(r->steps[mi].result, "content");
        ap_rc rc = complete(r, text ? text : "", 0.5, &o, err);
        if (!rc && !o.written) {
            json_t *res = keep(r->a, json_pack("{s:o}", "content", o.content ? o.content : json_null()));
            rc = add_step(r, "tool_result", "complete_task", "done", NULL, res, err);
        } else {
            json_decref(o.content);
        }
        if (!rc) rc = commit(r, err);
        return rc ? STOP_LOST : STOP_PARKED;
    }
    /* calls answered so far; a trailing tool_call is one without result */
    int answered = 0;
    step_t *open_call = NULL;
    for (int i = mi + 1; i < r->nsteps; i++) {
        if (strcmp(r->steps[i].kind, "tool_result") == 0) {
            answered++;
            open_call = NULL;
        } else if (strcmp(r->steps[i].kind, "tool_call") == 0) {
            open_call = &r->steps[i];
        }
    }
    if (answered < ncalls) return tool_step(r, mi, answered, open_call, err);
    return after_turn(r, mi, err);
}

static ap_rc claim(run_t *r, ap_err_t *err) {
    char now[AP_TIME_LEN], until[AP_TIME_LEN];
    int64_t t = ap_now_ms();
    ap_time_format(t, now);
    ap_time_format(t + r->env->lease_ms, until);
    ap_rc rc = ap_db_begin(r->env->db, r->tenant, AP_TX_WRITE, r->a, &r->tx, err);
    if (rc) return rc;
    r->open = true;
    /* the tenant's event lock before the claimed row (events/event.h 4.) */
    rc = ap_event_lock(r->tx, r->tenant, err);
    if (rc) return rc;
    ap_rows_t u;
    ap_val_t p[] = {AP_VTEXT(r->env->node), AP_VTEXT(until), AP_VTEXT(r->tenant),
                    AP_VTEXT(col(r, "id")), AP_VTEXT(now), AP_VTEXT(now)};
    rc = ap_tx_query(r->tx,
                     "UPDATE agent_tasks SET lease_owner = ?, lease_expires_at = ?, next_run_at ="
                     " NULL WHERE tenant_id = ? AND id = ? AND status IN ('queued', 'thinking',"
                     " 'executing') AND (next_run_at IS NULL OR next_run_at <= ?) AND"
                     " (lease_owner IS NULL OR lease_expires_at < ?)",
                     p, 6, &u, err);
    if (rc) return rc;
    if (u.changes == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "task-state", "not claimable", NULL, "task %s",
                          col(r, "id"));
    rc = ap_orch_task_row(r->tx, r->tenant, col(r, "id"), &r->row, err);
    if (rc) return rc;
    const char *st = col(r, "status");
    if (strcmp(st, "queued") == 0)
        rc = move(r, "thinking", NULL, err);
    else {
        json_t *x = json_pack("{s:s}", "reason", "resumed after its lease expired");
        rc = ap_orch_task_move(r->tx, r->tenant, &r->row, st, st, x, err);
        json_decref(x);
    }
    if (!rc) rc = commit(r, err);
    return rc;
}

/* Runs the task's steps until it parks, finishes, waits for a model call
 * or stops; a and *r0 hold the state of a first, maybe open, transaction. */
static ap_orch_run_result run_from(ap_orch_loop_env_t *env, const char *tenant_id,
                                   const char *task_id, ap_orch_wake_t *wake, ap_arena_t *a,
                                   run_t *r0, int batched) {
    ap_orch_run_result res = AP_ORCH_RUN_LOST;
    static const char *cols[] = {"id"};
    const char *vals[] = {NULL};
    char id[AP_UUID_LEN];
    snprintf(id, sizeof id, "%s", task_id);
    run_t r = *r0;
    ap_err_t err = {0};
    for (;;) {
        if (env->step_delay_ms > 0) usleep((useconds_t)env->step_delay_ms * 1000);
        if (!r.open) {
            /* each transaction in its own arena, keeping the task id alive */
            ap_arena_free(a);
            a = ap_arena_new(16384);
            vals[0] = id;
            r = (run_t){.env = env, .a = a, .tenant = tenant_id, .wake = wake,
                        .row = {.nrows = 1, .ncols = 1, .cols = cols, .vals = vals}};
        }
        if (env->stop && *env->stop) {
            if (r.open || !ap_db_begin(env->db, tenant_id, AP_TX_WRITE, a, &r.tx, &err)) {
                r.open = true;
                ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(env->node)};
                if (!ap_tx_query(r.tx,
                                 "UPDATE agent_tasks SET lease_owner = NULL, lease_expires_at ="
                                 " NULL WHERE id = ? AND lease_owner = ?",
                                 p, 2, NULL, &err))
                    flush(&r, &err);
            }
            res = AP_ORCH_RUN_STOPPED;
            break;
        }
        if (begin(&r, &err)) {
            res = AP_ORCH_RUN_LOST;
            break;
        }
        next_t n = step(&r, &err);
        if (n == STOP_AWAIT) {
            a = NULL; /* the model call in flight owns it */
            res = AP_ORCH_RUN_AWAIT;
            break;
        }
        batched++;
        if (n == GO_ON && r.open && batched < env->batch_steps) continue;
        if (n != STOP_LOST && n != STOP_CRASH && flush(&r, &err)) n = STOP_LOST;
        batched = 0;
        if (n == STOP_CRASH || (n != STOP_LOST && crash_at(&r, "step"))) {
            res = AP_ORCH_RUN_LOST;
            break;
        }
        if (n == GO_ON) continue;
        if (n == STOP_LOST && err.rc != AP_ERR_CONFLICT)
            ap_log(AP_LOG_WARN, "task step failed", "{s:s,s:s,s:s}", "tenant_id", tenant_id,
                   "task_id", id, "detail", err.detail);
        res = n == STOP_PARKED ? AP_ORCH_RUN_PARKED
              : n == STOP_RETRY ? AP_ORCH_RUN_RETRY
                                : AP_ORCH_RUN_LOST;
        break;
    }
    ap_arena_free(a);
    return res;
}

ap_orch_run_result ap_orch_loop_run(ap_orch_loop_env_t *env, const char *tenant_id,
                                    const char *task_id, ap_orch_wake_t *wake) {
    ap_arena_t *a = ap_arena_new(16384);
    /* a minimal row so col(r, "id") works before the first load */
    static const char *cols[] = {"id"};
    const char *vals[] = {task_id};
    run_t r = {.env = env, .a = a, .tenant = tenant_id, .wake = wake,
               .row = {.nrows = 1, .ncols = 1, .cols = cols, .vals = vals}};
    ap_err_t err = {0};
    if (claim(&r, &err)) {
        ap_arena_free(a);
        return AP_ORCH_RUN_LOST;
    }
    return run_from(env, tenant_id, task_id, wake, a, &r, r.open ? 1 : 0);
}

ap_orch_run_result ap_orch_loop_continue(ap_orch_loop_env_t *env, ap_orch_await_t *w,
                                         ap_orch_wake_t *wake) {
    ap_arena_t *a = ap_arena_new(16384);
    char tenant[40], id[40];
    snprintf(tenant, sizeof tenant, "%s", w->tenant);
    snprintf(id, sizeof id, "%s", w->task);
    static const char *cols[] = {"id"};
    const char *vals[] = {id};
    run_t r = {.env = env, .a = a, .tenant = tenant, .wake = wake,
               .row = {.nrows = 1, .ncols = 1, .cols = cols, .vals = vals}};
    ap_err_t err = {0};
    next_t n = STOP_LOST;
    if (!begin(&r, &err) && !load_steps(&r, &err) &&
        !ap_orch_tv_agent(r.tx, tenant, col(&r, "assigned_agent_id"), "assigned_agent_id",
                          &r.agent, &err)) {
        step_t *last = r.nsteps ? &r.steps[r.nsteps - 1] : NULL;
        if (last && last->seq == w->seq && strcmp(last->kind, "model_call") == 0 &&
            strcmp(last->state, "started") == 0) {
            if (w->lerr.kind != AP_LLM_OK) {
                n = model_fail(&r, AP_OK, &w->lerr, &err);
            } else {
                json_t *res = keep(a, resp_json(&w->resp));
                ap_rc rc = ap_orch_step_done(r.tx, tenant, id, w->seq, res,
                                             w->resp.usage.prompt + w->resp.usage.completion, 0,
                                             &err);
                if (!rc) rc = append_reasoning(&r, &w->resp, w->seq, &err);
                env->steps++;
                n = rc ? STOP_LOST : GO_ON;
            }
        }
    }
    ap_arena_free(w->a); /* the response was copied into the step */
    ap_free(w);
    if (n != STOP_LOST && flush(&r, &err)) n = STOP_LOST;
    ap_arena_free(a);
    if (n == STOP_PARKED) return AP_ORCH_RUN_PARKED;
    if (n == STOP_RETRY) return AP_ORCH_RUN_RETRY;
    if (n != GO_ON) return AP_ORCH_RUN_LOST;
    a = ap_arena_new(16384);
    r = (run_t){.env = env, .a = a, .tenant = tenant, .wake = wake,
                .row = {.nrows = 1, .ncols = 1, .cols = cols, .vals = vals}};
    return run_from(env, tenant, id, wake, a, &r, 0);
}
