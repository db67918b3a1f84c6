/*
 * scheduler.h - which queued task runs next: priority classes, weighted
 * fair sharing across tenants, per-tenant concurrency quotas.
 *
 * 1. A library over plain data (no store, no threads): the runner feeds it
 *    the runnable tasks it learns of (a create, a resumed parent, the
 *    periodic scan of the table) and asks it for the next one.  The table
 *    stays the durable queue; this is an index of it, rebuilt at start.
 * 2. Choice: among tenants below their concurrency quota and with a task
 *    queued, the best priority class at the head of a tenant's queue wins
 *    (critical 0 … background 4); within a class, the tenant with the
 *    smallest virtual time (stride scheduling: each dispatch adds 1/weight)
 *    wins; within a tenant, FIFO per class.  A tenant that becomes active
 *    starts at the current virtual time, so a tenant with 10,000 queued
 *    tasks cannot push a newcomer's single task behind all of them, and
 *    the quota (default: three quarters of the runners) keeps one tenant
 *    from holding every runner even with more urgent work.  A tenant may
 *    also have a limit on its tasks in flight (popped and not done, a
 *    task waiting on a model call included, which holds no runner).
 * 3. Pushing a task id already queued is a no-op.  Costs: push O(1)
 *    amortised plus O(tenants) to find the tenant, pop O(tenants).
 * 4. Not thread-safe: the caller holds a lock.
 */
#ifndef AP_ORCH_SCHEDULER_H
#define AP_ORCH_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#define AP_SCHED_RANKS 5
#define AP_SCHED_ID_LEN 37

typedef struct ap_sched ap_sched_t;

/* default_quota: concurrent tasks per tenant (>= 1). */
ap_sched_t *ap_sched_new(int default_quota);
void ap_sched_free(ap_sched_t *s); /* accepts NULL */

/* Queues task_id of tenant_id with priority rank (0..4, clamped).  Returns
 * false when it was already queued. */
bool ap_sched_push(ap_sched_t *s, const char *tenant_id, const char *task_id, int rank);
/* Takes the next task (decision 2) into tenant_out / task_out and counts
 * it as running for its tenant.  false when nothing is eligible. */
bool ap_sched_pop(ap_sched_t *s, char tenant_out[AP_SCHED_ID_LEN], char task_out[AP_SCHED_ID_LEN]);
/* A popped task stopped running (finished, parked or lost its claim). */
void ap_sched_done(ap_sched_t *s, const char *tenant_id);
/* A popped task left its runner to wait on a model call (waiting true:
 * still in flight, no longer on a runner) or came back to one (false). */
void ap_sched_await(ap_sched_t *s, const char *tenant_id, bool waiting);
/* Sets one tenant's quota of runners (>= 1; otherwise kept), limit of
 * tasks in flight (0: none; < 0: kept) and weight (> 0; otherwise kept).  Remembered while the tenant is idle too, so it applies
 * to tasks pushed later; a lower quota than the tasks running now lets
 * them finish and dispatches no more until the tenant is below it. */
void ap_sched_set_share(ap_sched_t *s, const char *tenant_id, int quota, int limit,
                        double weight);
/* Whether tenant_id's share was set. */
bool ap_sched_has_share(const ap_sched_t *s, const char *tenant_id);
/* Tasks queued (all tenants). */
size_t ap_sched_len(const ap_sched_t *s);
/* Whether task_id is queued. */
bool ap_sched_has(const ap_sched_t *s, const char *task_id);

#endif
