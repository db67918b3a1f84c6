/*
 * event.c - the tenant event log (events, tenant_event_seq) and the bus.
 *
 * 1. The sequence upsert is one statement both databases accept; on
 *    PostgreSQL the row lock it takes serialises a tenant's writers until
 *    commit, on SQLite write transactions are serial anyway.
 *    Writers of task rows take that lock first (ap_event_lock), so the
 *    lock order is the same in every transaction (event.h 4.).
 * 2. A task filter covers the task's whole tree (root_task_id), so a
 *    stream of a task shows its subtasks' progress too.
 */
#include "events/event.h"

#include <pthread.h>
#include <string.h>

#include <stdlib.h>

#include "core/alloc.h"
#include "core/time.h"

ap_rc ap_event_append(ap_tx_t *tx, const char *tenant_id, const char *type, const char *task_id,
                      const char *agent_id, const char *group_id, json_t *data, int64_t *seq,
                      ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO tenant_event_seq (tenant_id, next_seq) VALUES (?, 2)"
                           " ON CONFLICT (tenant_id) DO UPDATE SET next_seq ="
                           " tenant_event_seq.next_seq + 1 RETURNING next_seq - 1 AS seq",
                           p, 1, &rows, err);
    if (rc) return rc;
    int64_t s = ap_rows_int(&rows, 0, "seq", 0);
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    /* 15 digits: a confidence 0.1 reads 0.1, not 0.10000000000000001 */
    char *d = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    ap_val_t q[] = {AP_VTEXT(tenant_id), AP_VINT(s),          AP_VTEXT(type),
                    AP_VTEXT(task_id),   AP_VTEXT(agent_id),  AP_VTEXT(group_id),
                    AP_VTEXT(d ? d : "{}"), AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO events (tenant_id, seq, type, task_id, agent_id, group_id, data,"
                     " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     q, 8, NULL, err);
    free(d);
    if (!rc && seq) *seq = s;
    return rc;
}

ap_rc ap_event_lock(ap_tx_t *tx, const char *tenant_id, ap_err_t *err) {
    /* next_seq 1 for a new tenant: the first append then takes 1 */
    ap_val_t p[] = {AP_VTEXT(tenant_id)};
    return ap_tx_query(tx,
                       "INSERT INTO tenant_event_seq (tenant_id, next_seq) VALUES (?, 1)"
                       " ON CONFLICT (tenant_id) DO UPDATE SET next_seq = tenant_event_seq.next_seq",
                       p, 1, NULL, err);
}

ap_rc ap_event_list(ap_tx_t *tx, const char *tenant_id, const ap_event_filter_t *f, json_t **out,
                    int64_t *last_seq, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    char *sql = ap_arena_strdup(a, "SELECT seq, type, task_id, agent_id, group_id, data, created_at"
                                   " FROM events WHERE tenant_id = ? AND seq > ?");
    ap_val_t p[8];
    int n = 0;
    p[n++] = AP_VTEXT(tenant_id);
    p[n++] = AP_VINT(f->after_seq);
    if (f->type) {
        size_t l = strlen(f->type);
        if (l && f->type[l - 1] == '*') {
            sql = ap_arena_printf(a, "%s AND substr(type, 1, %zu) = ?", sql, l - 1);
            p[n++] = AP_VTEXT(ap_arena_strndup(a, f->type, l - 1));
        } else {
            sql = ap_arena_printf(a, "%s AND type = ?", sql);
            p[n++] = AP_VTEXT(f->type);
        }
    }
    if (f->task_id) {
        sql = ap_arena_printf(a, "%s AND task_id IN (SELECT id FROM agent_tasks WHERE"
                                 " tenant_id = ? AND (id = ? OR root_task_id = ?))", sql);
        p[n++] = AP_VTEXT(tenant_id);
        p[n++] = AP_VTEXT(f->task_id);
        p[n++] = AP_VTEXT(f->task_id);
    }
    if (f->agent_id) {
        sql = ap_arena_printf(a, "%s AND agent_id = ?", sql);
        p[n++] = AP_VTEXT(f->agent_id);
    }
    if (f->group_id && n < 8) {
        sql = ap_arena_printf(a, "%s AND group_id = ?", sql);
        p[n++] = AP_VTEXT(f->group_id);
    }
    sql = ap_arena_printf(a, "%s ORDER BY seq LIMIT %d", sql,
                          f->limit > 0 && f->limit <= 1000 ? f->limit : 100);
    ap_rows_t rows;
    ap_rc rc = ap_tx_query(tx, sql, p, n, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    int64_t last = f->after_seq;
    for (int i = 0; i < rows.nrows; i++) {
        static const char *const ints[] = {"seq", NULL};
        json_t *o = ap_rows_json(&rows, i, ints);
        const char *d = ap_rows_get(&rows, i, "data");
        json_t *dj = d ? json_loads(d, 0, NULL) : NULL;
        json_object_set_new(o, "data", dj ? dj : json_object());
        json_array_append_new(arr, o);
        last = ap_rows_int(&rows, i, "seq", last);
    }
    *out = arr;
    if (last_seq) *last_seq = last;
    return AP_OK;
}

#define BUS_MAX 16

struct ap_bus {
    pthread_mutex_t mu;
    struct {
        ap_bus_fn fn;
        void *ud;
    } subs[BUS_MAX];
};

ap_bus_t *ap_bus_new(void) {
    ap_bus_t *b = ap_calloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void ap_bus_free(ap_bus_t *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    ap_free(b);
}

bool ap_bus_subscribe(ap_bus_t *b, ap_bus_fn fn, void *ud) {
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < BUS_MAX; i++)
        if (!b->subs[i].fn) {
            b->subs[i].fn = fn;
            b->subs[i].ud = ud;
            pthread_mutex_unlock(&b->mu);
            return true;
        }
    pthread_mutex_unlock(&b->mu);
    return false;
}

void ap_bus_unsubscribe(ap_bus_t *b, ap_bus_fn fn, void *ud) {
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < BUS_MAX; i++)
        if (b->subs[i].fn == fn && b->subs[i].ud == ud) b->subs[i].fn = NULL;
    pthread_mutex_unlock(&b->mu);
}

void ap_bus_publish(ap_bus_t *b, const char *tenant_id) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < BUS_MAX; i++)
        if (b->subs[i].fn) b->subs[i].fn(b->subs[i].ud, tenant_id);
    pthread_mutex_unlock(&b->mu);
}
