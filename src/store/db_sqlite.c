/*
 * db_sqlite.c - the embedded SQLite backend.
 *
 * 1. A pool of connections to one database file in WAL mode: readers run
 *    alongside one writer.  Write transactions start with BEGIN IMMEDIATE,
 *    so two writers queue on the busy timeout instead of deadlocking on a
 *    lock upgrade; that also makes write transactions serial, which is why
 *    ap_tx_lock is a no-op here.
 * 2. Each connection caches prepared statements by SQL text (small
 *    open-addressed table), because the same few statements run on every
 *    request.
 * 3. Writers of this process take a pool mutex before BEGIN IMMEDIATE, so
 *    they queue in order instead of sleeping in SQLite's busy handler.
 * 4. SQLite has no row-level security: tenant scoping rests on every query
 *    naming its tenant, which the service layer does; the PostgreSQL
 *    backend is where a forgotten WHERE is caught by the database.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/db_backend.h"

#define STMT_CACHE 128

typedef struct {
    const char *sql; /* owned copy */
    sqlite3_stmt *st;
} cached_t;

typedef struct conn {
    sqlite3 *h;
    struct conn *next_free;
    cached_t cache[STMT_CACHE];
    int ncached;
    pthread_mutex_t *write_mu; /* the pool's writer lock */
    bool writing;              /* holds it */
} conn_t;

typedef struct {
    conn_t *conns;
    int size, in_use;
    int64_t waits;
    conn_t *free_list;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t write_mu;
} pool_t;

static ap_rc map_err(sqlite3 *h, int rc, ap_err_t *err) {
    int base = rc & 0xff;
    const char *m = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
    if (base == SQLITE_CONSTRAINT) {
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
            rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return ap_err_set(err, AP_ERR_CONFLICT, "conflict",
                              "conflicts with an existing record", NULL, "%s", m);
        if (rc == SQLITE_CONSTRAINT_TRIGGER)
            return ap_err_set(err, AP_ERR_DENIED, "forbidden", "refused by the database", NULL,
                              "%s", m);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-request", "violates a constraint", NULL,
                          "%s", m);
    }
    if (base == SQLITE_BUSY || base == SQLITE_LOCKED)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "unavailable", "database is busy",
                          "retry the request", "%s", m);
    return ap_err_set(err, AP_ERR_IO, "storage-error", "database error", NULL, "%s", m);
}

static ap_rc conn_open(const char *path, conn_t *c, ap_err_t *err) {
    int rc = sqlite3_open_v2(path, &c->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        ap_rc r = ap_err_set(err, AP_ERR_UNAVAILABLE, "unavailable", "cannot open sqlite database",
                             "check that the data directory exists and is writable",
                             "%s: %s", path, c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        sqlite3_close(c->h);
        c->h = NULL;
        return r;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_timeout(c->h, 5000);
    char *msg = NULL;
    rc = sqlite3_exec(c->h,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ap_rc r = ap_err_set(err, AP_ERR_UNAVAILABLE, "unavailable", "cannot configure sqlite",
                             NULL, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close(c->h);
        c->h = NULL;
        return r;
    }
    return AP_OK;
}

static void conn_close(conn_t *c) {
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].st) {
            sqlite3_finalize(c->cache[i].st);
            ap_free((void *)c->cache[i].sql);
        }
    }
    sqlite3_close(c->h);
}

static void pool_close(void *impl) {
    pool_t *p = impl;
    if (!p) return;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].h) conn_close(&p->conns[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->write_mu);
    pthread_cond_destroy(&p->cv);
    ap_free(p->conns);
    ap_free(p);
}

static ap_rc pool_open(const char *url, int pool_size, void **impl, ap_err_t *err) {
    const char *path = url + strlen("sqlite:");
    if (!*path)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "empty sqlite path",
                          "use sqlite:PATH, e.g. sqlite:./var/agentprov.db", NULL);
    pool_t *p = ap_calloc(1, sizeof *p);
    p->size = pool_size > 0 ? pool_size : 8;
    p->conns = ap_calloc((size_t)p->size, sizeof(conn_t));
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->write_mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < p->size; i++) {
        ap_rc rc = conn_open(path, &p->conns[i], err);
        if (rc) {
            pool_close(p);
            return rc;
        }
        p->conns[i].write_mu = &p->write_mu;
        p->conns[i].next_free = p->free_list;
        p->free_list = &p->conns[i];
    }
    *impl = p;
    return AP_OK;
}

static ap_rc acquire(void *impl, void **out, ap_err_t *err) {
    (void)err;
    pool_t *p = impl;
    pthread_mutex_lock(&p->mu);
    if (!p->free_list) p->waits++;
    while (!p->free_list) pthread_cond_wait(&p->cv, &p->mu);
    conn_t *c = p->free_list;
    p->free_list = c->next_free;
    p->in_use++;
    pthread_mutex_unlock(&p->mu);
    *out = c;
    return AP_OK;
}

static void release(void *impl, void *conn, bool broken) {
    (void)broken; /* a sqlite handle does not break like a socket */
    pool_t *p = impl;
    conn_t *c = conn;
    pthread_mutex_lock(&p->mu);
    c->next_free = p->free_list;
    p->free_list = c;
    p->in_use--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}


static ap_rc exec_simple(conn_t *c, const char *sql, ap_err_t *err);

/* Writers of this process queue on a mutex rather than on SQLite's busy
 * handler, whose growing sleeps (up to 100 ms a try) would show as tail
 * latency under load; writers of other processes (the CLI) still meet the
 * busy timeout.  The wait is bounded like the busy timeout. */
static ap_rc take_write(conn_t *c, ap_err_t *err) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    if (pthread_mutex_timedlock(c->write_mu, &ts) != 0)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "unavailable", "database is busy",
                          "retry the request", "no write slot within 5 s");
    c->writing = true;
    return AP_OK;
}

static void drop_write(conn_t *c) {
    if (!c->writing) return;
    c->writing = false;
    pthread_mutex_unlock(c->write_mu);
}

static ap_rc begin(void *conn, const char *tenant_id, ap_tx_mode mode, ap_err_t *err) {
    (void)tenant_id;
    conn_t *c = conn;
    if (mode != AP_TX_WRITE) return exec_simple(c, "BEGIN", err);
    ap_rc rc = take_write(c, err);
    if (rc) return rc;
    rc = exec_simple(c, "BEGIN IMMEDIATE", err);
    if (rc) drop_write(c);
    return rc;
}

static ap_rc commit(void *conn, ap_err_t *err) {
    ap_rc rc = exec_simple(conn, "COMMIT", err);
    if (!rc) drop_write(conn); /* on failure db.c rolls back, which drops it */
    return rc;
}


static uint32_t hash_sql(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Returns a prepared statement, cached when there is room. *owned says
 * whether the caller must finalize it. */
static ap_rc prepare(conn_t *c, const char *sql, sqlite3_stmt **st, bool *owned,
                     ap_err_t *err) {
    uint32_t h = hash_sql(sql);
    for (int i = 0; i < STMT_CACHE; i++) {
        cached_t *e = &c->cache[(h + (uint32_t)i) % STMT_CACHE];
        if (!e->st) break;
        if (strcmp(e->sql, sql) == 0) {
            *st = e->st;
            *owned = false;
            return AP_OK;
        }
    }
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, &tail);
    if (rc != SQLITE_OK) return map_err(c->h, rc, err);
    *owned = true;
    /* One statement per call, as PostgreSQL's extended protocol insists:
     * a second one is refused, not silently dropped.  Only whitespace and
     * comments may follow (they prepare to no statement). */
    if (*st && tail && *tail) {
        sqlite3_stmt *extra = NULL;
        rc = sqlite3_prepare_v2(c->h, tail, -1, &extra, NULL);
        if (rc != SQLITE_OK || extra) {
            sqlite3_finalize(extra);
            sqlite3_finalize(*st);
            *st = NULL;
            return ap_err_set(err, AP_ERR_INTERNAL, NULL, "more than one statement in a query",
                              "send one statement per call, or use ap_tx_script",
                              "after the first statement: \"%.60s\"", tail);
        }
    }
    if (!*st) return AP_OK; /* only whitespace or comments */
    if (c->ncached < STMT_CACHE * 3 / 4) {
        for (int i = 0; i < STMT_CACHE; i++) {
            cached_t *e = &c->cache[(h + (uint32_t)i) % STMT_CACHE];
            if (!e->st) {
                e->st = *st;
                e->sql = ap_strdup(sql);
                c->ncached++;
                *owned = false;
                break;
            }
        }
    }
    return AP_OK;
}

/* BEGIN / COMMIT / ROLLBACK run on every transaction: through the
 * statement cache they are not parsed again each time. */
static ap_rc exec_simple(conn_t *c, const char *sql, ap_err_t *err) {
    sqlite3_stmt *st;
    bool owned;
    ap_rc r = prepare(c, sql, &st, &owned, err);
    if (r) return r;
    int rc = sqlite3_step(st);
    if (owned)
        sqlite3_finalize(st);
    else
        sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? AP_OK : map_err(c->h, rc, err);
}

static void rollback(void *conn) {
    conn_t *c = conn;
    if (!sqlite3_get_autocommit(c->h)) exec_simple(c, "ROLLBACK", NULL);
    drop_write(c);
}

static ap_rc query(void *conn, ap_arena_t *a, const char *sql, const ap_val_t *params,
                   int nparams, ap_rows_t *out, ap_err_t *err) {
    conn_t *c = conn;
    sqlite3_stmt *st;
    bool owned;
    ap_rc r = prepare(c, sql, &st, &owned, err);
    if (r) return r;
    if (!st) return AP_OK; /* an empty statement, as PGRES_EMPTY_QUERY */
    int before = sqlite3_total_changes(c->h);
    int rc = SQLITE_OK;
    if (sqlite3_bind_parameter_count(st) != nparams) {
        r = ap_err_set(err, AP_ERR_INTERNAL, NULL, "parameter count mismatch", NULL,
                       "statement wants %d parameters, got %d",
                       sqlite3_bind_parameter_count(st), nparams);
        goto done;
    }
    for (int i = 0; i < nparams && rc == SQLITE_OK; i++) {
        const ap_val_t *v = &params[i];
        switch (v->t) {
        case AP_V_NULL: rc = sqlite3_bind_null(st, i + 1); break;
        case AP_V_TEXT: rc = sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC); break;
        case AP_V_INT: rc = sqlite3_bind_int64(st, i + 1, v->i); break;
        case AP_V_REAL: rc = sqlite3_bind_double(st, i + 1, v->d); break;
        }
    }
    if (rc != SQLITE_OK) {
        r = map_err(c->h, rc, err);
        goto done;
    }
    int ncols = sqlite3_column_count(st);
    out->ncols = ncols;
    out->cols = ap_arena_alloc(a, sizeof(char *) * (size_t)(ncols ? ncols : 1));
    for (int i = 0; i < ncols; i++) out->cols[i] = ap_arena_strdup(a, sqlite3_column_name(st, i));
    int cap = 0;
    const char **vals = NULL;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            r = map_err(c->h, rc, err);
            goto done;
        }
        if (out->nrows == cap) {
            int ncap = cap ? cap * 2 : 8;
            const char **nv = ap_arena_alloc(a, sizeof(char *) * (size_t)(ncap * ncols + 1));
            if (vals) memcpy(nv, vals, sizeof(char *) * (size_t)(cap * ncols));
            vals = nv;
            cap = ncap;
        }
        for (int i = 0; i < ncols; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            vals[out->nrows * ncols + i] =
                t ? ap_arena_strndup(a, (const char *)t, (size_t)sqlite3_column_bytes(st, i))
                  : NULL;
        }
        out->nrows++;
    }
    out->vals = vals;
    /* sqlite3_changes() keeps the count of the connection's last
     * INSERT/UPDATE/DELETE: report it only if this statement changed rows. */
    out->changes = sqlite3_total_changes(c->h) != before ? sqlite3_changes(c->h) : 0;
    r = AP_OK;
done:
    if (owned)
        sqlite3_finalize(st);
    else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return r;
}

static ap_rc lock(void *conn, const char *key, ap_err_t *err) {
    (void)conn;
    (void)key;
    (void)err;
    return AP_OK; /* write transactions are serial (BEGIN IMMEDIATE) */
}

static ap_rc script(void *conn, const char *sql, ap_err_t *err) {
    conn_t *c = conn;
    char *msg = NULL;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) return AP_OK;
    ap_rc r = ap_err_set(err, AP_ERR_IO, "storage-error", "script failed", NULL, "%s",
                         msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return r;
}

static void stats(void *impl, ap_db_stats_t *out) {
    pool_t *p = impl;
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->in_use = p->in_use;
    out->waits = p->waits;
    pthread_mutex_unlock(&p->mu);
}

const ap_db_backend_t ap_db_sqlite = {
    .name = "sqlite",
    .open = pool_open,
    .close = pool_close,
    .acquire = acquire,
    .release = release,
    .begin = begin,
    .commit = commit,
    .rollback = rollback,
    .query = query,
    .lock = lock,
    .script = script,
    .stats = stats,
};
