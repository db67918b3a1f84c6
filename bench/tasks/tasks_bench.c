/*
 * tasks_bench.c - the task runner measured in process, on SQLite, with the
 * built-in model (bench/tasks.sh runs it and writes bench/RESULTS.md).
 *
 *   build/bench/tasks_bench DIR [--tasks N] [--workers W] [--flood N]
 *
 * 1. Throughput: N simple tasks (one worker agent answers and completes:
 *    context, model call, complete_task) are created, then the runner pool
 *    drains them; tasks/s end to end (create + run) and for the run alone.
 * 2. Scheduling overhead: the scheduler's push + pop in memory, and the
 *    runner's wall time per status transition (everything included).
 * 3. Fairness: tenant A enqueues --flood tasks; while they run, tenant B
 *    creates one task every 20 ms; the start latency of B's tasks
 *    (started_at - created_at) at p50 / p99 / max.
 * 4. Scenario suite: delegation with collection, a depth-limited manager,
 *    an escalation, a plain worker question, a manager with nothing to
 *    delegate; completion rate and mean task time.
 * Output: one JSON object on stdout.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "orch/runner.h"
#include "orch/scheduler.h"
#include "orch/task.h"
#include "store/db.h"
#include "store/migrate.h"

#define TA "0190b000-0000-7000-8000-0000000000a1"
#define TB "0190b000-0000-7000-8000-0000000000b1"
#define NOW "2026-01-01T00:00:00.000Z"

static ap_db_t *db;

static void die(const char *what, const ap_err_t *e) {
    fprintf(stderr, "tasks_bench: %s: %s %s\n", what, e ? e->msg : "", e ? e->detail : "");
    exit(1);
}

static void exec(const char *tenant, const char *sql, const ap_val_t *p, int n) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_err_t e = {0};
    if (ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &e) || ap_tx_query(tx, sql, p, n, NULL, &e) ||
        ap_tx_commit(tx, &e))
        die(sql, &e);
    ap_arena_free(a);
}

static int64_t count(const char *tenant, const char *sql) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    ap_err_t e = {0};
    /* SQLite has no row-level security: every query names its tenant (the one ?) */
    ap_val_t p[] = {AP_VTEXT(tenant)};
    if (ap_db_begin(db, tenant, AP_TX_READ, a, &tx, &e) || ap_tx_query(tx, sql, p, 1, &r, &e))
        die(sql, &e);
    int64_t n = r.nrows ? strtoll(ap_rows_at(&r, 0, 0) ? ap_rows_at(&r, 0, 0) : "0", NULL, 10) : 0;
    ap_arena_free(a);
    return n;
}

static void agent(const char *tenant, const char *id, const char *name, const char *role,
                  const char *caps, int depth) {
    exec(tenant,
         "INSERT INTO agents (id, tenant_id, name, role, capabilities, max_delegation_depth,"
         " status, version, deployed_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?,"
         " 'deployed', 1, 1, ?, ?)",
         (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(tenant), AP_VTEXT(name), AP_VTEXT(role),
                      AP_VTEXT(caps), AP_VINT(depth), AP_VTEXT(NOW), AP_VTEXT(NOW)},
         8);
}

static void relate(const char *tenant, const char *from, const char *to, const char *type) {
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    exec(tenant,
         "INSERT INTO agent_relationships (id, tenant_id, from_agent_id, to_agent_id,"
         " relationship_type, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
         (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(tenant), AP_VTEXT(from), AP_VTEXT(to),
                      AP_VTEXT(type), AP_VTEXT(NOW), AP_VTEXT(NOW)},
         7);
}

static void group(const char *tenant, const char *id, const char *rules, const char **members,
                  int n) {
    exec(tenant,
         "INSERT INTO agent_groups (id, tenant_id, name, goal, shared_context, escalation_rules,"
         " created_at, updated_at) VALUES (?, ?, ?, 'Inform the board.', ?, ?, ?, ?)",
         (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(tenant), AP_VTEXT(id),
                      AP_VTEXT("{\"m\":\"The EV battery market grew 40% in 2024.\","
                               "\"b\":\"A one-page brief states the market size and one risk.\"}"),
                      AP_VTEXT(rules), AP_VTEXT(NOW), AP_VTEXT(NOW)},
         7);
    for (int i = 0; i < n; i++)
        exec(tenant,
             "INSERT INTO agent_group_members (tenant_id, group_id, agent_id, created_at) VALUES"
             " (?, ?, ?, ?)",
             (ap_val_t[]){AP_VTEXT(tenant), AP_VTEXT(id), AP_VTEXT(members[i]), AP_VTEXT(NOW)}, 4);
}

/* Creates n tasks in batches; the runner (may be NULL) gets them at once. */
static void create_tasks(ap_orch_runner_t *run, const char *tenant, int n, const char *agent_id,
                         const char *group_id, const char *objective) {
    ap_actor_t actor = {.type = "system", .id = "bench"};
    for (int done = 0; done < n;) {
        ap_arena_t *a = ap_arena_new(65536);
        ap_tx_t *tx;
        ap_err_t e = {0};
        ap_orch_wake_t wake = {0};
        if (ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &e)) die("begin", &e);
        int k = 0;
        for (; k < AP_ORCH_WAKE_MAX && done + k < n; k++) {
            json_t *in = json_pack("{s:s}", "objective", objective);
            if (agent_id) json_object_set_new(in, "assigned_agent_id", json_string(agent_id));
            if (group_id) json_object_set_new(in, "group_id", json_string(group_id));
            json_t *out = NULL;
            if (ap_orch_task_create(tx, tenant, &actor, in, &out, &wake, &e)) die("create", &e);
            json_decref(in);
            json_decref(out);
        }
        if (ap_tx_commit(tx, &e)) die("commit", &e);
        ap_arena_free(a);
        ap_orch_runner_wake(run, tenant, &wake);
        done += k;
    }
}

static void wait_settled(const char *tenant, int64_t want, int timeout_s) {
    int64_t t0 = ap_now_ms();
    for (;;) {
        int64_t n = count(tenant,
                          "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND status IN"
                          " ('completed', 'failed', 'cancelled')");
        if (n >= want) return;
        if (ap_now_ms() - t0 > timeout_s * 1000LL) {
            fprintf(stderr, "tasks_bench: only %lld of %lld tasks finished\n", (long long)n,
                    (long long)want);
            exit(1);
        }
        usleep(2000);
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    if (!n) return 0;
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tasks_bench DIR [--tasks N] [--workers W] [--flood N]\n");
        return 2;
    }
    int ntasks = 5000, workers = 2, flood = 10000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tasks") == 0) ntasks = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--workers") == 0) workers = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--flood") == 0) flood = atoi(argv[i + 1]);
    }
    ap_log_set_level(AP_LOG_WARN);
    ap_crypto_init();
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s/bench.db", argv[1]);
    ap_err_t e = {0};
    int applied;
    if (ap_db_open(url, workers + 4, &db, &e) || ap_migrate(db, &applied, &e)) die("open", &e);
    const char *tenants[] = {TA, TB};
    for (int i = 0; i < 2; i++)
        exec(NULL,
             "INSERT INTO tenants (id, name, slug, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
             (ap_val_t[]){AP_VTEXT(tenants[i]), AP_VTEXT(tenants[i]), AP_VTEXT(tenants[i]),
                          AP_VTEXT(NOW), AP_VTEXT(NOW)},
             5);
    const char *WA = "0190b000-0000-7000-8000-00000000a0a1", *WB = "0190b000-0000-7000-8000-00000000b0b1";
    agent(TA, WA, "Worker A", "worker", "[\"answers\"]", 2);
    agent(TB, WB, "Worker B", "worker", "[\"answers\"]", 2);
    json_t *res = json_object();

    /* 2a. the scheduler alone */
    {
        ap_sched_t *s = ap_sched_new(1 << 20);
        char id[AP_SCHED_ID_LEN], t[AP_SCHED_ID_LEN], got[AP_SCHED_ID_LEN];
        const int n = 200000;
        uint64_t t0 = ap_mono_ns();
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof id, "00000000-0000-7000-8000-%012d", i);
            ap_sched_push(s, i % 3 ? TA : TB, id, i % 5);
        }
        for (int i = 0; i < n; i++) {
            ap_sched_pop(s, t, got);
            ap_sched_done(s, t);
        }
        double ns = (double)(ap_mono_ns() - t0) / n;
        json_object_set_new(res, "sched_push_pop_us", json_real(ns / 1000.0));
        ap_sched_free(s);
    }

    /* throughput of one tenant: its quota is every worker; fairness runs
     * with the default quota (three quarters of the workers) */
    ap_orch_runner_opts_t ro = {.db = db, .workers = workers, .tenant_quota = workers,
                                .lease_ms = 30000, .scan_ms = 1000};
    ap_orch_runner_t *run;

    /* 1. throughput */
    {
        uint64_t t0 = ap_mono_ns();
        create_tasks(NULL, TA, ntasks, WA, NULL, "What grew in 2024?");
        double create_s = (double)(ap_mono_ns() - t0) / 1e9;
        uint64_t t1 = ap_mono_ns();
        if (ap_orch_runner_start(&ro, &run, &e)) die("runner", &e);
        wait_settled(TA, ntasks, 600);
        double run_s = (double)(ap_mono_ns() - t1) / 1e9;
        int64_t steps, fin;
        ap_orch_runner_stats(run, &steps, &fin);
        ap_orch_runner_stop(run);
        int64_t transitions = count(TA, "SELECT COUNT(*) FROM events WHERE tenant_id = ? AND type = 'task.status'");
        int64_t completed = count(TA, "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND status = 'completed'");
        json_object_set_new(res, "tasks", json_integer(ntasks));
        json_object_set_new(res, "completed", json_integer(completed));
        json_object_set_new(res, "create_per_s", json_real(ntasks / create_s));
        json_object_set_new(res, "run_per_s", json_real(ntasks / run_s));
        json_object_set_new(res, "end_to_end_per_s", json_real(ntasks / (create_s + run_s)));
        json_object_set_new(res, "steps_per_task", json_real((double)steps / ntasks));
        json_object_set_new(res, "transitions", json_integer(transitions));
        json_object_set_new(res, "ms_per_transition_wall",
                            json_real(run_s * 1000.0 / (double)transitions));
        json_object_set_new(res, "ms_per_transition_cpu",
                            json_real(run_s * 1000.0 * workers / (double)transitions));
        /* the same, with creation and running together (a live queue) */
        exec(TA, "DELETE FROM agent_tasks WHERE tenant_id = ?", (ap_val_t[]){AP_VTEXT(TA)}, 1);
        if (ap_orch_runner_start(&ro, &run, &e)) die("runner", &e);
        uint64_t t2 = ap_mono_ns();
        create_tasks(run, TA, ntasks, WA, NULL, "What grew in 2024?");
        wait_settled(TA, ntasks, 600);
        double live_s = (double)(ap_mono_ns() - t2) / 1e9;
        ap_orch_runner_stop(run);
        json_object_set_new(res, "live_end_to_end_per_s", json_real(ntasks / live_s));
        exec(TA, "DELETE FROM agent_tasks WHERE tenant_id = ?", (ap_val_t[]){AP_VTEXT(TA)}, 1);
    }

    /* 3. fairness */
    {
        ro.tenant_quota = 0;
        if (ap_orch_runner_start(&ro, &run, &e)) die("runner", &e);
        create_tasks(run, TA, flood, WA, NULL, "What grew in 2024?");
        int samples = 100;
        int64_t a_left = count(TA, "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND status = 'queued'");
        for (int i = 0; i < samples; i++) {
            create_tasks(run, TB, 1, WB, NULL, "What grew in 2024?");
            usleep(20000);
        }
        wait_settled(TB, samples, 120);
        ap_arena_t *a = ap_arena_new(65536);
        ap_tx_t *tx;
        ap_rows_t r;
        if (ap_db_begin(db, TB, AP_TX_READ, a, &tx, &e) ||
            ap_tx_query(tx, "SELECT created_at, started_at FROM agent_tasks WHERE tenant_id = ?",
                        (ap_val_t[]){AP_VTEXT(TB)}, 1, &r, &e))
            die("read", &e);
        double *lat = calloc((size_t)r.nrows, sizeof *lat);
        for (int i = 0; i < r.nrows; i++) {
            int64_t c, s;
            ap_time_parse(ap_rows_at(&r, i, 0), &c);
            ap_time_parse(ap_rows_at(&r, i, 1), &s);
            lat[i] = (double)(s - c);
        }
        qsort(lat, (size_t)r.nrows, sizeof *lat, cmp_d);
        json_object_set_new(res, "fairness_flood", json_integer(flood));
        json_object_set_new(res, "fairness_a_queued_at_start", json_integer(a_left));
        json_object_set_new(res, "fairness_b_start_p50_ms", json_real(pct(lat, r.nrows, 0.5)));
        json_object_set_new(res, "fairness_b_start_p99_ms", json_real(pct(lat, r.nrows, 0.99)));
        json_object_set_new(res, "fairness_b_start_max_ms", json_real(lat[r.nrows - 1]));
        free(lat);
        ap_arena_free(a);
        ap_orch_runner_stop(run);
        exec(TA, "DELETE FROM agent_tasks WHERE tenant_id = ?", (ap_val_t[]){AP_VTEXT(TA)}, 1);
        exec(TB, "DELETE FROM agent_tasks WHERE tenant_id = ?", (ap_val_t[]){AP_VTEXT(TB)}, 1);
    }

    /* 4. scenario suite */
    {
        const char *M = "0190b000-0000-7000-8000-00000000c001", *R = "0190b000-0000-7000-8000-00000000c002",
                   *W = "0190b000-0000-7000-8000-00000000c003", *L = "0190b000-0000-7000-8000-00000000c004",
                   *G = "0190b000-0000-7000-8000-00000000c100", *G2 = "0190b000-0000-7000-8000-00000000c101";
        agent(TB, M, "Manager", "manager", "[\"planning\"]", 2);
        agent(TB, R, "Researcher", "researcher", "[\"research\",\"market analysis\"]", 2);
        agent(TB, W, "Writer", "writer", "[\"writing\",\"editing\"]", 2);
        agent(TB, L, "Lead", "lead", "[\"planning\"]", 0);
        relate(TB, M, R, "supervises");
        relate(TB, M, W, "supervises");
        relate(TB, L, R, "supervises");
        const char *mem[] = {M, R, W};
        group(TB, G, "{}", mem, 3);
        const char *mem2[] = {L, R};
        group(TB, G2, "{\"min_confidence\":0.5}", mem2, 2);
        if (ap_orch_runner_start(&ro, &run, &e)) die("runner", &e);
        const int reps = 40;
        struct {
            const char *agent, *group, *objective;
        } sc[] = {
            {NULL, G, "Research the EV battery market and write a one-page brief"},
            {L, NULL, "Research the EV battery market"},
            {R, G2, "What is the capital of Freedonia?"},
            {R, G, "How much did the EV battery market grow in 2024?"},
            {M, G, "Plan the offsite"},
        };
        int nsc = (int)(sizeof sc / sizeof sc[0]);
        for (int i = 0; i < nsc; i++) create_tasks(run, TB, reps, sc[i].agent, sc[i].group, sc[i].objective);
        wait_settled(TB, (int64_t)nsc * reps, 300);
        /* roots only: subtasks are part of their root's time */
        int64_t roots = count(TB, "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND parent_task_id IS NULL");
        for (int guard = 0; guard < 3000; guard++) {
            if (count(TB, "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND status NOT IN"
                          " ('completed', 'failed', 'cancelled')") == 0)
                break;
            usleep(10000);
        }
        int64_t ok = count(TB, "SELECT COUNT(*) FROM agent_tasks WHERE tenant_id = ? AND"
                               " parent_task_id IS NULL AND status = 'completed'");
        ap_arena_t *a = ap_arena_new(65536);
        ap_tx_t *tx;
        ap_rows_t r;
        if (ap_db_begin(db, TB, AP_TX_READ, a, &tx, &e) ||
            ap_tx_query(tx,
                        "SELECT created_at, completed_at FROM agent_tasks WHERE tenant_id = ? AND"
                        " parent_task_id IS NULL AND completed_at IS NOT NULL",
                        (ap_val_t[]){AP_VTEXT(TB)}, 1, &r, &e))
            die("read", &e);
        double sum = 0;
        for (int i = 0; i < r.nrows; i++) {
            int64_t c, d;
            ap_time_parse(ap_rows_at(&r, i, 0), &c);
            ap_time_parse(ap_rows_at(&r, i, 1), &d);
            sum += (double)(d - c);
        }
        ap_arena_free(a);
        ap_orch_runner_stop(run);
        json_object_set_new(res, "scenario_tasks", json_integer(roots));
        json_object_set_new(res, "scenario_completion_rate", json_real((double)ok / (double)roots));
        json_object_set_new(res, "scenario_mean_task_ms", json_real(r.nrows ? sum / r.nrows : 0));
    }
    char *out = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", out);
    free(out);
    json_decref(res);
    ap_db_close(db);
    return 0;
}
