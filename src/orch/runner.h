/*
 * runner.h - the task runner: a pool of threads that execute queued tasks
 * as persisted state machines (docs/tasks.md).
 *
 * 1. The agent_tasks table is the durable queue.  The scheduler
 *    (scheduler.h) indexes it in memory: tasks are pushed when created or
 *    woken, and a scan of the table every scan_ms finds the rest (retries
 *    whose time came, tasks whose lease expired after a crash, tasks other
 *    nodes queued).
 * 2. A worker claims a task by taking its lease (lease_owner = this
 *    process's node id, lease_expires_at = now + lease_ms) in one guarded
 *    UPDATE; a heartbeat thread renews the leases of running tasks every
 *    lease_ms / 3.  After kill -9 the lease expires and any node resumes
 *    the task from its steps (loop.c).
 * 3. Model calls go through one function (model_fn): by default the
 *    built-in model, called directly; the process routes it through the
 *    LLM call service.  With model_start, a call to a remote model holds
 *    no worker: the task waits, leased, in a list the heartbeat renews,
 *    and the call's callback hands it back to the next free worker.
 * 4. Thread-safe: wake may be called from any thread.
 */
#ifndef AP_ORCH_RUNNER_H
#define AP_ORCH_RUNNER_H

#include <stdint.h>

#include "core/err.h"
#include "events/event.h"
#include "llm/types.h"
#include "orch/task.h"
#include "store/db.h"

/* One model call for a task step.  On AP_OK, lerr->kind says how it ended
 * (AP_LLM_OK: *resp is set, arena memory of a).  headers: extra "Name:
 * value" lines for the provider (the task's context `_llm_headers`, names
 * limited to the AP_FORWARD_HEADERS prefixes, as the gateway forwards). */
typedef ap_rc (*ap_orch_model_fn)(void *ud, ap_arena_t *a, const char *tenant_id,
                                  const char *agent_id, const char *task_id,
                                  const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                                  ap_llm_error_t *lerr, ap_err_t *err);

struct ap_orch_await;

/* An asynchronous model call: starts the call and returns; done(cb_ud,
 * resp, lerr) runs exactly once later (or before the start returns),
 * unless the start fails (rc, err; done never runs).  *handle, for
 * ap_orch_model_cancel_fn, is set before done can run.  Everything lives
 * in a, which the caller keeps until done has run. */
typedef void (*ap_orch_model_done_fn)(void *cb_ud, const ap_llm_resp_t *resp,
                                      const ap_llm_error_t *lerr);
typedef ap_rc (*ap_orch_model_start_fn)(void *ud, ap_arena_t *a, const char *tenant_id,
                                        const char *agent_id, const char *task_id,
                                        const char *const *headers, int nheaders,
                                        const ap_llm_req_t *req, ap_orch_model_done_fn done,
                                        void *cb_ud, void **handle, ap_err_t *err);
typedef void (*ap_orch_model_cancel_fn)(void *handle);

typedef struct {
    ap_db_t *db;
    ap_bus_t *bus;          /* may be NULL */
    int workers;            /* runner threads, >= 1 */
    int tenant_quota;       /* concurrent tasks per tenant; 0: 3/4 of workers (>= 1);
                               the default and ceiling of max_concurrent_tasks */
    int64_t lease_ms;       /* 0: 15000 */
    int64_t scan_ms;        /* 0: 1000 */
    int64_t step_delay_ms;  /* pause after each step (tests of crash recovery); 0 */
    ap_orch_model_fn model; /* NULL: the built-in model */
    void *model_ud;
    const char *default_model; /* agents without an LLM configuration; NULL: builtin */
    /* With model_start, a call to a model reached over the network does not
     * hold its worker: the task waits (leased, heartbeats going on) and a
     * worker takes it up again from the callback.  NULL: model (blocking). */
    ap_orch_model_start_fn model_start;
    ap_orch_model_cancel_fn model_cancel;
    void *model_start_ud;
    /* Memory and MCP tools, and memory in the context (tools_ext.h); NULL:
     * neither.  Outlives the runner. */
    const struct ap_orch_ext *ext;
} ap_orch_runner_opts_t;

typedef struct ap_orch_runner ap_orch_runner_t;

ap_rc ap_orch_runner_start(const ap_orch_runner_opts_t *opts, ap_orch_runner_t **out,
                           ap_err_t *err);
/* Stops taking tasks, lets each worker end its current step, releases the
 * leases of tasks in flight (so a restart resumes them at once), joins. */
void ap_orch_runner_stop(ap_orch_runner_t *r); /* accepts NULL */
/* Hands tasks that became runnable (after their transaction committed). */
void ap_orch_runner_wake(ap_orch_runner_t *r, const char *tenant_id, const ap_orch_wake_t *w);
/* Steps executed and tasks finished since start (metrics, benchmarks). */
void ap_orch_runner_stats(ap_orch_runner_t *r, int64_t *steps, int64_t *finished);

/* --- loop.c: one task's state machine (used by the runner and tests) --- */

typedef struct {
    ap_db_t *db;
    ap_bus_t *bus;
    const char *node;       /* lease owner id */
    int64_t lease_ms;
    int64_t step_delay_ms;
    ap_orch_model_fn model;
    void *model_ud;
    const char *default_model; /* NULL: builtin/agentprov-mini */
    /* Steps that may share one transaction (0 or 1: each step commits).
     * With batching, a model that answers in process (builtin/…) is called
     * inside the step's transaction, so its step is written once, done; a
     * crash before the commit loses only work that is redone the same way. */
    int batch_steps;
    volatile int *stop;     /* non-zero: stop after the current step */
    int64_t steps;          /* out: steps written by this call */
    /* Tests of crash recovery: asked at each durable point ("step" after a
     * commit, "model" between a model call's started step and the call);
     * true makes the loop vanish there as a killed process would (no
     * release, no cleanup in the store).  NULL in production. */
    bool (*crash)(void *ud, const char *where);
    void *crash_ud;
    /* Asynchronous model calls (runner.c): start, and where a started call
     * is registered (before the start) and reported (when done). */
    ap_orch_model_start_fn model_start;
    void *model_start_ud;
    void (*await_register)(void *ud, struct ap_orch_await *w);
    void (*await_done)(void *ud, struct ap_orch_await *w);
    void *await_ud;
    const struct ap_orch_ext *ext; /* memory and MCP tools (tools_ext.h); NULL: none */
} ap_orch_loop_env_t;

/* A model call in flight for a task that waits without a worker. */
typedef struct ap_orch_await {
    struct ap_orch_await *next; /* the runner's lists */
    ap_arena_t *a;              /* the request, the call and its response */
    char tenant[40], task[40];
    int seq;                    /* the model_call step, written 'started' */
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    bool done;
    void *handle;               /* for cancel */
    void (*report)(void *ud, struct ap_orch_await *w);
    void *report_ud;
} ap_orch_await_t;

typedef enum {
    AP_ORCH_RUN_PARKED,   /* finished, parked (delegated, waiting_input, reviewing) or handed on */
    AP_ORCH_RUN_LOST,     /* not claimed, or lost the lease / cancelled meanwhile */
    AP_ORCH_RUN_RETRY,    /* requeued for later (transient model failure) */
    AP_ORCH_RUN_STOPPED,  /* the process is stopping: lease released */
    AP_ORCH_RUN_AWAIT,    /* a model call is in flight (ap_orch_await_t registered) */
} ap_orch_run_result;

/* Claims task_id and runs it until it parks, finishes or stops.  Tasks
 * that became runnable on the way (subtasks, woken parents) go to *wake. */
ap_orch_run_result ap_orch_loop_run(ap_orch_loop_env_t *env, const char *tenant_id,
                                    const char *task_id, ap_orch_wake_t *wake);

/* Through the LLM call service (llm/call.h): ud is an ap_llm_call_env_t
 * that outlives the runner.  Routing, budgets, retries, fallbacks and
 * metering (with agent and task ids) are the service's. */
ap_rc ap_orch_model_llm(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                        const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                        ap_llm_error_t *lerr, ap_err_t *err);

/* Takes up a task whose model call has come back (w->done): writes the
 * step, then runs on like ap_orch_loop_run.  Frees w. */
ap_orch_run_result ap_orch_loop_continue(ap_orch_loop_env_t *env, ap_orch_await_t *w,
                                         ap_orch_wake_t *wake);

/* The LLM call service started asynchronously (ud: ap_llm_call_env_t). */
ap_rc ap_orch_model_llm_start(void *ud, ap_arena_t *a, const char *tenant_id,
                              const char *agent_id, const char *task_id,
                              const char *const *headers, int nheaders, const ap_llm_req_t *req,
                              ap_orch_model_done_fn done, void *cb_ud, void **handle,
                              ap_err_t *err);
void ap_orch_model_llm_cancel(void *handle);

/* The built-in model as a model_fn. */
ap_rc ap_orch_model_builtin(void *ud, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                            const char *task_id, const char *const *headers, int nheaders, const ap_llm_req_t *req, ap_llm_resp_t *resp,
                            ap_llm_error_t *lerr, ap_err_t *err);

#endif
