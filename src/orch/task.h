/*
 * task.h - agent tasks: create, read, board, tree, steps, cancel, approve,
 * reject, and the transitions the runner drives.
 *
 * 1. Status: queued → thinking → executing → (waiting_input | delegated |
 *    reviewing) → completed | failed, plus cancelled from any state.
 *    Every change goes through ap_orch_task_move, which guards on the
 *    expected current status and appends a task.status event in the same
 *    transaction.
 * 2. Terminal transitions go through ap_orch_task_finish: output or error,
 *    a response message to the parent's agent, the skill outcome, and the
 *    parent's wake-up when all its subtasks have finished (the caller then
 *    hands the parent to the scheduler after commit).
 * 3. Cancel works in every state: the task and every unfinished task of
 *    its subtree become cancelled; a runner holding one of them notices at
 *    its next step (its writes are guarded on status and lease) and stops.
 *    Cancelling a finished task changes nothing and answers it as it is.
 * 4. Approvals: a task in waiting_input (approval_state pending: the
 *    autonomy gate before it starts, a supervised tool call, or an explicit
 *    request_approval) is approved back to queued, or rejected (before
 *    start: failed; for a tool call: the tool result becomes the refusal).
 *    A task in reviewing (requires_approval) is approved to completed or
 *    rejected to failed.  Both are audited with the comment.
 * 5. Every function runs inside the caller's tenant transaction; JSON out
 *    is a new reference.
 * 6. The assigned agent is running while it has a task in flight (moved
 *    out of queued at least once and not finished: thinking, executing,
 *    waiting for an approval or its subtasks, in review, or queued again
 *    after such a wait), deployed otherwise.  ap_orch_task_move settles it
 *    when a task leaves queued and when one finishes, counting under a
 *    per-agent lock in the same transaction; ap_orch_agent_set_running
 *    touches only deployed and running agents, so a pause or a retirement
 *    by a person wins.
 */
#ifndef AP_ORCH_TASK_H
#define AP_ORCH_TASK_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

#define AP_ORCH_WAKE_MAX 64 /* parents woken by one transaction */

extern const ap_jfield_t ap_orch_task_create_fields[];
extern const ap_jfield_t ap_orch_task_decide_fields[];
extern const ap_jfield_t ap_orch_task_cancel_fields[];
extern const char *const ap_orch_task_statuses[];
extern const char *const ap_orch_task_priorities[];

/* Tasks that became runnable in a transaction (to push to the scheduler
 * after it commits). */
typedef struct {
    int n;
    struct {
        char id[37];
        int rank;
    } t[AP_ORCH_WAKE_MAX];
} ap_orch_wake_t;
void ap_orch_wake_add(ap_orch_wake_t *w, const char *id, int rank);

int ap_orch_priority_rank(const char *priority); /* 0..4, normal 2 when unknown */
bool ap_orch_status_terminal(const char *status);

/* Creates a task from a request body (ap_orch_task_create_fields).  The
 * new task is added to *wake. */
ap_rc ap_orch_task_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor, json_t *in,
                          json_t **out, ap_orch_wake_t *wake, ap_err_t *err);
ap_rc ap_orch_task_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                       ap_err_t *err);

typedef struct {
    const char *status, *priority, *agent_id, *group_id, *parent_task_id; /* or NULL */
    const char *after; /* cursor: id */
    int limit;
} ap_orch_task_filter_t;
ap_rc ap_orch_task_list(ap_tx_t *tx, const char *tenant_id, const ap_orch_task_filter_t *f,
                        json_t **out, const char **next, ap_err_t *err);
/* The task with its subtasks nested under "subtasks", recursively. */
ap_rc ap_orch_task_tree(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err);
ap_rc ap_orch_task_steps(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                         ap_err_t *err);
ap_rc ap_orch_task_cancel(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                          const char *id, const char *reason, json_t **out, ap_orch_wake_t *wake,
                          ap_err_t *err);
ap_rc ap_orch_task_decide(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                          const char *id, bool approve, const char *comment, json_t **out,
                          ap_orch_wake_t *wake, ap_err_t *err);

/* --- for the runner --- */

/* The task's row (every column) into *r; AP_ERR_NOT_FOUND when none. */
ap_rc ap_orch_task_row(ap_tx_t *tx, const char *tenant_id, const char *id, ap_rows_t *r,
                       ap_err_t *err);
/* from → to with a task.status event carrying extra's members (borrowed,
 * may be NULL).  AP_ERR_CONFLICT when the status is no longer `from`
 * (from NULL: any non-terminal status). */
ap_rc ap_orch_task_move(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row, const char *from,
                        const char *to, json_t *extra, ap_err_t *err);
/* Sets agent_id running or deployed by its tasks in flight (decision 6);
 * for a task handed to another agent without a move that settles it. */
ap_rc ap_orch_task_settle_agent(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                                ap_err_t *err);
/* Terminal transition (decision 2).  status completed: output and
 * confidence; failed/cancelled: code and detail. */
ap_rc ap_orch_task_finish(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row,
                          const char *status, const char *output, double confidence,
                          const char *code, const char *detail, ap_orch_wake_t *wake,
                          ap_err_t *err);
/* Appends a step (done unless started) and a task.step event; bumps the
 * task's step count.  Returns the step's seq in *seq. */
ap_rc ap_orch_step_add(ap_tx_t *tx, const char *tenant_id, const ap_rows_t *row, int seq,
                       const char *kind, const char *name, const char *state, json_t *input,
                       json_t *result, int64_t tokens, double cost, ap_err_t *err);
/* Completes a started step. */
ap_rc ap_orch_step_done(ap_tx_t *tx, const char *tenant_id, const char *task_id, int seq,
                        json_t *result, int64_t tokens, double cost, ap_err_t *err);
/* Adds tokens and cost to the task and to tokens_total/cost_total of the
 * task and every ancestor. */
ap_rc ap_orch_task_charge(ap_tx_t *tx, const char *tenant_id, const char *task_id, int64_t tokens,
                          double cost, ap_err_t *err);

/* Renders a task row. */
json_t *ap_orch_task_json(const ap_rows_t *r, int i);

#endif
