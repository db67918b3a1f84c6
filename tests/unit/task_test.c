/*
 * task_test.c - the scheduler (priority, fairness, quotas) and the task
 * state machine on every backend: a delegation runs to completion, and a
 * run killed at any durable point resumes without losing or repeating a
 * step.
 */
#include "testutil.h"

#include <jansson.h>

#include "core/id.h"
#include "core/time.h"
#include "llm/providers/builtin.h"
#include "orch/runner.h"
#include "orch/scheduler.h"
#include "orch/task.h"

#define TA "0190a000-0000-7000-8000-0000000000a1"
#define TB "0190a000-0000-7000-8000-0000000000b1"
#define MGR "0190a000-0000-7000-8000-00000000a001"
#define RES "0190a000-0000-7000-8000-00000000a002"
#define WRI "0190a000-0000-7000-8000-00000000a003"
#define GRP "0190a000-0000-7000-8000-00000000a100"

static void id_of(int i, char out[AP_SCHED_ID_LEN]) {
    snprintf(out, AP_SCHED_ID_LEN, "00000000-0000-7000-8000-%012d", i);
}

static void test_sched_priority_within_tenant(void **state) {
    (void)state;
    ap_sched_t *s = ap_sched_new(8);
    assert_true(ap_sched_push(s, TA, "low-1", 3));
    assert_true(ap_sched_push(s, TA, "norm-1", 2));
    assert_true(ap_sched_push(s, TA, "crit-1", 0));
    assert_true(ap_sched_push(s, TA, "norm-2", 2));
    assert_false(ap_sched_push(s, TA, "norm-1", 2)); /* already queued */
    assert_int_equal(ap_sched_len(s), 4);
    const char *want[] = {"crit-1", "norm-1", "norm-2", "low-1"};
    char t[AP_SCHED_ID_LEN], id[AP_SCHED_ID_LEN];
    for (int i = 0; i < 4; i++) {
        assert_true(ap_sched_pop(s, t, id));
        assert_string_equal(id, want[i]);
        assert_string_equal(t, TA);
    }
    assert_false(ap_sched_pop(s, t, id));
    /* popped ids may be queued again */
    assert_true(ap_sched_push(s, TA, "norm-1", 2));
    ap_sched_free(s);
}

static void test_sched_fair_across_tenants(void **state) {
    (void)state;
    ap_sched_t *s = ap_sched_new(1000);
    char id[AP_SCHED_ID_LEN], t[AP_SCHED_ID_LEN], got[AP_SCHED_ID_LEN];
    for (int i = 0; i < 10000; i++) {
        id_of(i, id);
        ap_sched_push(s, TA, id, 2);
    }
    /* A has been running a while */
    for (int i = 0; i < 100; i++) {
        assert_true(ap_sched_pop(s, t, got));
        ap_sched_done(s, t);
    }
    ap_sched_push(s, TB, "b-only", 2);
    int pos = -1;
    for (int i = 0; i < 3 && pos < 0; i++) {
        assert_true(ap_sched_pop(s, t, got));
        if (strcmp(got, "b-only") == 0) pos = i;
        ap_sched_done(s, t);
    }
    assert_true(pos >= 0 && pos <= 1); /* B's task is next, or right after A's */
    /* equal shares while both have work: alternate */
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "b-%d", i);
        ap_sched_push(s, TB, id, 2);
    }
    int a = 0, b = 0;
    for (int i = 0; i < 40; i++) {
        assert_true(ap_sched_pop(s, t, got));
        if (strcmp(t, TB) == 0) b++; else a++;
        ap_sched_done(s, t);
    }
    assert_in_range(b, 19, 21);
    assert_int_equal(a + b, 40);
    /* a weight of 3 gives three times the share */
    ap_sched_set_share(s, TB, 0, -1, 3.0);
    a = b = 0;
    for (int i = 0; i < 40; i++) {
        assert_true(ap_sched_pop(s, t, got));
        if (strcmp(t, TB) == 0) b++; else a++;
        ap_sched_done(s, t);
    }
    assert_in_range(b, 28, 32);
    ap_sched_free(s);
}

static void test_sched_quota(void **state) {
    (void)state;
    ap_sched_t *s = ap_sched_new(2);
    char id[AP_SCHED_ID_LEN], t[AP_SCHED_ID_LEN], got[AP_SCHED_ID_LEN];
    for (int i = 0; i < 10; i++) {
        id_of(i, id);
        ap_sched_push(s, TA, id, 0); /* critical */
    }
    ap_sched_push(s, TB, "b-bg", 4); /* background */
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    /* A is at its quota: B's background task runs despite A's critical ones */
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(got, "b-bg");
    assert_false(ap_sched_pop(s, t, got));
    ap_sched_done(s, TA);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    ap_sched_free(s);
}

/* A tenant's own quota (its max_concurrent_tasks) holds before it has work,
 * while it is idle, and when lowered below what runs now. */
static void test_sched_tenant_quota(void **state) {
    (void)state;
    ap_sched_t *s = ap_sched_new(3);
    char id[AP_SCHED_ID_LEN], t[AP_SCHED_ID_LEN], got[AP_SCHED_ID_LEN];
    assert_false(ap_sched_has_share(s, TA));
    ap_sched_set_share(s, TA, 1, 1, 0); /* set before A has any task */
    assert_true(ap_sched_has_share(s, TA));
    assert_false(ap_sched_has_share(s, TB));
    for (int i = 0; i < 4; i++) {
        id_of(i, id);
        ap_sched_push(s, TA, id, 2);
        snprintf(id, sizeof id, "b-%d", i);
        if (i < 3) ap_sched_push(s, TB, id, 2);
    }
    int a = 0, b = 0;
    while (ap_sched_pop(s, t, got)) strcmp(t, TA) == 0 ? a++ : b++;
    assert_int_equal(a, 1); /* A: its own quota */
    assert_int_equal(b, 3); /* B: the default */
    /* A's task ends: one more of A, never two at once */
    ap_sched_done(s, TA);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    assert_false(ap_sched_pop(s, t, got));
    /* idle (dropped from the table) and back: the share still holds */
    ap_sched_done(s, TA);
    while (ap_sched_pop(s, t, got)) assert_string_equal(t, TA), ap_sched_done(s, TA);
    for (int i = 10; i < 13; i++) {
        id_of(i, id);
        ap_sched_push(s, TA, id, 2);
    }
    assert_true(ap_sched_pop(s, t, got));
    assert_false(ap_sched_pop(s, t, got));
    /* raised to 2: a second one runs at once */
    ap_sched_set_share(s, TA, 2, 2, 0);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    assert_false(ap_sched_pop(s, t, got));
    /* lowered to 1 while 2 run: none until both of those ended */
    ap_sched_set_share(s, TA, 1, 1, 0);
    ap_sched_done(s, TA);
    assert_false(ap_sched_pop(s, t, got));
    ap_sched_done(s, TA);
    assert_true(ap_sched_pop(s, t, got));
    ap_sched_free(s);

    /* a task waiting on its model call holds no runner: without a limit
     * of tasks in flight another one runs; with max_concurrent_tasks 1 not */
    s = ap_sched_new(1);
    ap_sched_set_share(s, TA, 1, 1, 0);
    for (int i = 0; i < 2; i++) {
        id_of(i, id);
        ap_sched_push(s, TA, id, 2);
        snprintf(id, sizeof id, "b-%d", i);
        ap_sched_push(s, TB, id, 2);
    }
    assert_true(ap_sched_pop(s, t, got));
    assert_true(ap_sched_pop(s, t, got));
    assert_false(ap_sched_pop(s, t, got)); /* both at their runner quota */
    ap_sched_await(s, TA, true);
    ap_sched_await(s, TB, true);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TB);
    assert_false(ap_sched_pop(s, t, got));
    /* A's call came back and its task ended: A's next one runs */
    ap_sched_await(s, TA, false);
    ap_sched_done(s, TA);
    assert_true(ap_sched_pop(s, t, got));
    assert_string_equal(t, TA);
    ap_sched_free(s);
}

/* --- the state machine on a store --- */

typedef struct {
    int calls;
    int crash_every; /* crash at every n-th durable point (0: never) */
    int points;
} model_state_t;

static ap_rc counting_model(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                            const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                            ap_llm_error_t *lerr, ap_err_t *err) {
    model_state_t *m = ud;
    m->calls++;
    return ap_orch_model_builtin(NULL, a, tenant_id, agent_id, task_id, headers, nheaders, req, resp,
                                 lerr, err);
}

static bool crash_sometimes(void *ud, const char *where) {
    model_state_t *m = ud;
    (void)where;
    return m->crash_every && ++m->points % m->crash_every == 0;
}

static void seed_team(ap_db_t *db) {
    tu_add_tenant(db, TA, "tenant-a");
    const char *now = "2026-01-01T00:00:00.000Z";
    const struct {
        const char *id, *name, *role, *caps;
    } ag[] = {{MGR, "Manager", "manager", "[\"planning\"]"},
              {RES, "Researcher", "researcher", "[\"research\",\"market analysis\"]"},
              {WRI, "Writer", "writer", "[\"writing\",\"editing\"]"}};
    for (int i = 0; i < 3; i++)
        tu_exec(db, TA,
                "INSERT INTO agents (id, tenant_id, name, role, capabilities, status, version,"
                " deployed_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'deployed', 1,"
                " 1, ?, ?)",
                (ap_val_t[]){AP_VTEXT(ag[i].id), AP_VTEXT(TA), AP_VTEXT(ag[i].name),
                             AP_VTEXT(ag[i].role), AP_VTEXT(ag[i].caps), AP_VTEXT(now),
                             AP_VTEXT(now)},
                7);
    tu_exec(db, TA,
            "INSERT INTO agent_groups (id, tenant_id, name, goal, shared_context, created_at,"
            " updated_at) VALUES (?, ?, 'team', 'Inform the board.', ?, ?, ?)",
            (ap_val_t[]){AP_VTEXT(GRP), AP_VTEXT(TA),
                         AP_VTEXT("{\"m\":\"The EV battery market grew 40% in 2024.\"}"),
                         AP_VTEXT(now), AP_VTEXT(now)},
            5);
    const char *subs[] = {RES, WRI};
    for (int i = 0; i < 2; i++) {
        char rid[AP_UUID_LEN];
        ap_uuid7(rid);
        tu_exec(db, TA,
                "INSERT INTO agent_relationships (id, tenant_id, group_id, from_agent_id,"
                " to_agent_id, relationship_type, created_at, updated_at) VALUES (?, ?, ?, ?, ?,"
                " 'supervises', ?, ?)",
                (ap_val_t[]){AP_VTEXT(rid), AP_VTEXT(TA), AP_VTEXT(GRP), AP_VTEXT(MGR),
                             AP_VTEXT(subs[i]), AP_VTEXT(now), AP_VTEXT(now)},
                7);
    }
    for (int i = 0; i < 3; i++)
        tu_exec(db, TA,
                "INSERT INTO agent_group_members (tenant_id, group_id, agent_id, created_at)"
                " VALUES (?, ?, ?, ?)",
                (ap_val_t[]){AP_VTEXT(TA), AP_VTEXT(GRP), AP_VTEXT(ag[i].id), AP_VTEXT(now)}, 4);
}

static void create_task(ap_db_t *db, char id[AP_UUID_LEN]) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *in = json_pack("{s:s,s:s}", "group_id", GRP, "objective",
                           "Research the EV battery market and write a one-page brief");
    json_t *out = NULL;
    ap_orch_wake_t wake = {0};
    ap_actor_t actor = {.type = "system", .id = "test"};
    if (ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err) ||
        ap_orch_task_create(tx, TA, &actor, in, &out, &wake, &err) || ap_tx_commit(tx, &err))
        fail_msg("create: %s", err.detail);
    snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    assert_int_equal(wake.n, 1);
    json_decref(in);
    json_decref(out);
    ap_arena_free(a);
}

/* Runs every runnable task of TA until none is left; between runs, a
 * "crashed" run's leases are expired as time would. */
static int drain(ap_db_t *db, ap_orch_loop_env_t *env) {
    int runs = 0;
    for (int guard = 0; guard < 400; guard++) {
        tu_exec(db, TA,
                "UPDATE agent_tasks SET lease_expires_at = '2000-01-01T00:00:00.000Z' WHERE"
                " lease_owner IS NOT NULL",
                NULL, 0);
        ap_arena_t *a = ap_arena_new(4096);
        ap_err_t err = {0};
        ap_tx_t *tx;
        ap_rows_t r;
        if (ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err) ||
            ap_tx_query(tx,
                        "SELECT id FROM agent_tasks WHERE status IN ('queued', 'thinking',"
                        " 'executing') ORDER BY id LIMIT 1",
                        NULL, 0, &r, &err))
            fail_msg("scan: %s", err.detail);
        if (r.nrows == 0) {
            ap_arena_free(a);
            return runs;
        }
        char id[AP_UUID_LEN];
        snprintf(id, sizeof id, "%s", ap_rows_at(&r, 0, 0));
        ap_arena_free(a);
        ap_orch_wake_t wake = {0};
        char node[AP_UUID_LEN];
        ap_uuid7(node); /* a new process each time */
        env->node = node;
        ap_orch_loop_run(env, TA, id, &wake);
        runs++;
    }
    fail_msg("tasks did not settle");
    return runs;
}

static void check_steps(ap_db_t *db, const char *task_id) {
    /* dense seqs, all done, one context, no repeated tool call */
    int64_t n = tu_count(db, TA, "SELECT COUNT(*) FROM agent_task_steps WHERE task_id = ?",
                         (ap_val_t[]){AP_VTEXT(task_id)}, 1);
    assert_true(n >= 4);
    assert_int_equal(tu_count(db, TA, "SELECT MAX(seq) FROM agent_task_steps WHERE task_id = ?",
                              (ap_val_t[]){AP_VTEXT(task_id)}, 1),
                     n);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_task_steps WHERE task_id = ? AND"
                              " state <> 'done'",
                              (ap_val_t[]){AP_VTEXT(task_id)}, 1),
                     0);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_task_steps WHERE task_id = ? AND"
                              " kind = 'context'",
                              (ap_val_t[]){AP_VTEXT(task_id)}, 1),
                     1);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) - COUNT(DISTINCT input) FROM agent_task_steps"
                              " WHERE task_id = ? AND kind = 'tool_call'",
                              (ap_val_t[]){AP_VTEXT(task_id)}, 1),
                     0);
}

static void run_scenario(int crash_every, int batch, int *model_calls, int64_t *steps_total) {
    ap_db_t *db = tu_open();
    seed_team(db);
    char id[AP_UUID_LEN];
    create_task(db, id);
    model_state_t m = {.crash_every = crash_every};
    ap_orch_loop_env_t env = {.db = db, .lease_ms = 60000, .model = counting_model,
                              .model_ud = &m, .crash = crash_sometimes, .crash_ud = &m,
                              .batch_steps = batch};
    drain(db, &env);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_tasks WHERE status = 'completed'",
                              NULL, 0),
                     3);
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM agent_tasks WHERE parent_task_id = ?",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     2);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    ap_err_t err = {0};
    if (ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err) ||
        ap_tx_query(tx, "SELECT id, output, tokens_total FROM agent_tasks ORDER BY depth, id", NULL,
                    0, &r, &err))
        fail_msg("%s", err.detail);
    assert_non_null(strstr(ap_rows_get(&r, 0, "output"), "grew 40% in 2024"));
    for (int i = 0; i < r.nrows; i++) check_steps(db, ap_rows_get(&r, i, "id"));
    /* the event lock every step transaction takes uses no number: dense */
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM events", NULL, 0),
                     tu_count(db, TA, "SELECT MAX(seq) FROM events", NULL, 0));
    assert_int_equal(tu_count(db, TA, "SELECT MIN(seq) FROM events", NULL, 0), 1);
    *steps_total = tu_count(db, TA, "SELECT COUNT(*) FROM agent_task_steps", NULL, 0);
    *model_calls = m.calls;
    ap_arena_free(a);
    ap_db_close(db);
}

/* ap_event_lock takes the sequence row without using a number, on a new
 * tenant and an existing one, and again in the same transaction. */
static void test_event_lock_uses_no_number(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    int64_t want = 1;
    for (int round = 0; round < 2; round++) {
        ap_tx_t *tx;
        if (ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err) || ap_event_lock(tx, TA, &err) ||
            ap_event_lock(tx, TA, &err))
            fail_msg("%s", err.detail);
        for (int i = 0; i < 2; i++) {
            int64_t seq = 0;
            if (ap_event_append(tx, TA, "task.step", NULL, NULL, NULL, NULL, &seq, &err))
                fail_msg("%s", err.detail);
            assert_int_equal(seq, want++);
        }
        if (ap_tx_commit(tx, &err)) fail_msg("%s", err.detail);
    }
    ap_arena_free(a);
    ap_db_close(db);
}

static void test_delegation_runs_to_completion(void **state) {
    (void)state;
    int calls;
    int64_t steps;
    for (int batch = 0; batch <= 16; batch += 16) {
        run_scenario(0, batch, &calls, &steps);
        /* manager: 2 model calls; each specialist: 1 */
        assert_int_equal(calls, 4);
        assert_int_equal(steps, 10 + 4 + 4);
    }
}

static void test_crash_at_any_point_loses_and_repeats_nothing(void **state) {
    (void)state;
    int base_calls;
    int64_t base_steps;
    run_scenario(0, 0, &base_calls, &base_steps);
    for (int every = 2; every <= 12; every++) {
        int calls;
        int64_t steps;
        /* one transaction per step (crashes between a model call's started
         * and done steps), and batched steps (crashes between batches) */
        run_scenario(every, every <= 6 ? 0 : 16, &calls, &steps);
        /* the same steps, whatever the crashes */
        assert_int_equal(steps, base_steps);
        /* a model call is made again only when the process died during it */
        assert_true(calls >= base_calls);
        assert_true(calls <= base_calls * 2);
    }
}

static void test_cancel_cascades_and_stops_the_runner(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    seed_team(db);
    char id[AP_UUID_LEN];
    create_task(db, id);
    /* run the manager until it delegated */
    model_state_t m = {0};
    char node[AP_UUID_LEN];
    ap_uuid7(node);
    ap_orch_loop_env_t env = {.db = db, .node = node, .lease_ms = 60000, .model = counting_model,
                              .model_ud = &m};
    ap_orch_wake_t wake = {0};
    assert_int_equal(ap_orch_loop_run(&env, TA, id, &wake), AP_ORCH_RUN_PARKED);
    assert_int_equal(wake.n, 2);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_err_t err = {0};
    json_t *out = NULL;
    ap_actor_t actor = {.type = "system", .id = "test"};
    if (ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err) ||
        ap_orch_task_cancel(tx, TA, &actor, id, "stop", &out, NULL, &err) ||
        ap_tx_commit(tx, &err))
        fail_msg("%s", err.detail);
    assert_string_equal(json_string_value(json_object_get(out, "status")), "cancelled");
    json_decref(out);
    ap_arena_free(a);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_tasks WHERE status = 'cancelled'", NULL,
                              0),
                     3);
    /* the queued subtasks are no longer claimable */
    assert_int_equal(ap_orch_loop_run(&env, TA, wake.t[0].id, &wake), AP_ORCH_RUN_LOST);
    ap_db_close(db);
}

/* A model that is down for the Researcher. */
static ap_rc flaky_model(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                         const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                         ap_llm_error_t *lerr, ap_err_t *err) {
    model_state_t *m = ud;
    m->calls++;
    if (strcmp(agent_id, RES) == 0) {
        memset(lerr, 0, sizeof *lerr);
        lerr->kind = AP_LLM_OVERLOADED;
        snprintf(lerr->message, sizeof lerr->message, "overloaded");
        return AP_OK;
    }
    return ap_orch_model_builtin(NULL, a, tenant_id, agent_id, task_id, headers, nheaders, req, resp,
                                 lerr, err);
}

static void create_for(ap_db_t *db, const char *agent, const char *objective, char id[AP_UUID_LEN]) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *in = json_pack("{s:s,s:s,s:s}", "assigned_agent_id", agent, "group_id", GRP,
                           "objective", objective);
    json_t *out = NULL;
    ap_actor_t actor = {.type = "system", .id = "test"};
    if (ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err) ||
        ap_orch_task_create(tx, TA, &actor, in, &out, NULL, &err) || ap_tx_commit(tx, &err))
        fail_msg("create: %s", err.detail);
    snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    ap_arena_free(a);
}

static const char *status_of(ap_db_t *db, const char *id, char *buf, size_t cap) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    ap_err_t err = {0};
    if (ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err) || ap_orch_task_row(tx, TA, id, &r, &err))
        fail_msg("%s", err.detail);
    snprintf(buf, cap, "%s %s", ap_rows_get(&r, 0, "status"), ap_rows_get(&r, 0, "assigned_agent_id"));
    ap_arena_free(a);
    return buf;
}

static void test_escalation_rules(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    seed_team(db);
    /* on_failure: the Researcher's model is down; after max_attempts the
     * task goes to its supervisor instead of failing */
    tu_exec(db, TA, "UPDATE agent_groups SET escalation_rules = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"on_failure\":true,\"max_attempts\":1}"), AP_VTEXT(GRP)}, 2);
    char id[AP_UUID_LEN], buf[128];
    create_for(db, RES, "How much did the EV battery market grow in 2024?", id);
    model_state_t m = {0};
    ap_orch_loop_env_t env = {.db = db, .lease_ms = 60000, .model = flaky_model, .model_ud = &m,
                              .batch_steps = 16};
    drain(db, &env);
    assert_string_equal(status_of(db, id, buf, sizeof buf), "completed " MGR);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_messages WHERE task_id = ? AND"
                              " message_type = 'escalation' AND from_agent_id = ? AND to_agent_id = ?",
                              (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(RES), AP_VTEXT(MGR)}, 3),
                     1);
    /* without on_failure the same task fails, with its reason */
    tu_exec(db, TA, "UPDATE agent_groups SET escalation_rules = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"max_attempts\":1}"), AP_VTEXT(GRP)}, 2);
    create_for(db, RES, "How much did the EV battery market grow in 2024?", id);
    drain(db, &env);
    assert_string_equal(status_of(db, id, buf, sizeof buf), "failed " RES);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_tasks WHERE id = ? AND error LIKE"
                              " '%model_unavailable%overloaded%'",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     1);
    /* escalate_to human: a low-confidence answer waits for a person */
    tu_exec(db, TA, "UPDATE agent_groups SET escalation_rules = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"min_confidence\":0.5,\"escalate_to\":\"human\"}"), AP_VTEXT(GRP)},
            2);
    create_for(db, WRI, "What is the capital of Freedonia?", id);
    drain(db, &env);
    assert_string_equal(status_of(db, id, buf, sizeof buf), "reviewing " WRI);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM agent_messages WHERE task_id = ? AND"
                              " message_type = 'approval_request' AND content LIKE '%escalation%'",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     1);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_priority_within_tenant),
        cmocka_unit_test(test_sched_fair_across_tenants),
        cmocka_unit_test(test_sched_quota),
        cmocka_unit_test(test_sched_tenant_quota),
        cmocka_unit_test(test_event_lock_uses_no_number),
        cmocka_unit_test(test_delegation_runs_to_completion),
        cmocka_unit_test(test_crash_at_any_point_loses_and_repeats_nothing),
        cmocka_unit_test(test_cancel_cascades_and_stops_the_runner),
        cmocka_unit_test(test_escalation_rules),
    };
    TU_RUN_BACKENDS(tests);
}
