/*
 * event.h - the tenant event log and the in-process bus that announces it.
 *
 * 1. Every task status change, step, tool call and message is appended to
 *    the `events` table in the transaction of the change itself, so an
 *    event exists exactly when its change does.  seq is per tenant, dense
 *    and increasing (tenant_event_seq holds the next value; the upsert that
 *    takes it locks the tenant's row on PostgreSQL, so concurrent writers
 *    get consecutive numbers).  It is the SSE event id.
 * 2. The bus carries no payload: after a commit the writer announces
 *    "tenant T has new events"; subscribers (the SSE hub) read what they
 *    have not seen from the table.  A missed or doubled announcement is
 *    harmless, and replay and live delivery are one code path.
 * 3. The bus is thread-safe; callbacks run on the publisher's thread and
 *    must not block.
 * 4. Lock order.  The sequence row is a per-tenant lock held until commit,
 *    so a transaction that appends events and also writes agent_tasks rows
 *    must take it BEFORE its first task row (ap_event_lock right after
 *    ap_db_begin): otherwise one transaction holds a task row and waits for
 *    the sequence while another holds the sequence and waits for that row
 *    (a parent charged or woken by a subtask, a tree being cancelled), and
 *    PostgreSQL aborts one of them (40P01, "database is busy").  The order
 *    is: tenant event sequence, then task rows (and task:ID advisory
 *    locks), then the audit chain head.  Single-statement transactions
 *    that only touch one task row (lease heartbeat) need not take it.
 */
#ifndef AP_EVENTS_EVENT_H
#define AP_EVENTS_EVENT_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "store/db.h"

/* Appends one event in tx.  data is borrowed (may be NULL: {}).  *seq
 * (optional) gets the event's sequence number. */
ap_rc ap_event_append(ap_tx_t *tx, const char *tenant_id, const char *type, const char *task_id,
                      const char *agent_id, const char *group_id, json_t *data, int64_t *seq,
                      ap_err_t *err);

/* Takes the tenant's event-sequence lock now (until the transaction ends)
 * without using a number: the first lock of any transaction that writes
 * task rows and appends events (see 4.).  Cheap on SQLite (write
 * transactions are serial). */
ap_rc ap_event_lock(ap_tx_t *tx, const char *tenant_id, ap_err_t *err);

typedef struct {
    const char *type;     /* exact, or a prefix ending in '*' ("task.*"); or NULL */
    const char *task_id;  /* the task and every task of its tree; or NULL */
    const char *agent_id; /* or NULL */
    const char *group_id; /* or NULL */
    int64_t after_seq;    /* events with seq > after_seq */
    int limit;            /* 1..1000 */
} ap_event_filter_t;

/* Events matching f, oldest first, as a JSON array (new reference) of
 * {seq, type, task_id, agent_id, group_id, data, created_at}.  *last_seq
 * gets the seq of the last event returned, or f->after_seq when none. */
ap_rc ap_event_list(ap_tx_t *tx, const char *tenant_id, const ap_event_filter_t *f, json_t **out,
                    int64_t *last_seq, ap_err_t *err);

typedef struct ap_bus ap_bus_t;
typedef void (*ap_bus_fn)(void *ud, const char *tenant_id);

ap_bus_t *ap_bus_new(void);
void ap_bus_free(ap_bus_t *b); /* accepts NULL */
/* At most 16 subscribers; returns false when full. */
bool ap_bus_subscribe(ap_bus_t *b, ap_bus_fn fn, void *ud);
void ap_bus_unsubscribe(ap_bus_t *b, ap_bus_fn fn, void *ud);
/* Announces new events of tenant_id (after the commit).  b may be NULL. */
void ap_bus_publish(ap_bus_t *b, const char *tenant_id);

#endif
