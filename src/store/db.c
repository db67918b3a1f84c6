/*
 * db.c - backend-independent transaction handling.
 *
 * 1. A transaction holds one pooled connection from begin to commit or
 *    rollback.  An arena cleanup rolls back a transaction still open when
 *    its arena dies, and returns the connection to the pool.
 * 2. A failed statement marks the transaction failed: commit then rolls
 *    back and reports the failure, so partial writes never land.
 */
#include "store/db.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/alloc.h"
#include "store/db_backend.h"

struct ap_db {
    const ap_db_backend_t *be;
    void *impl;
};

struct ap_tx {
    ap_db_t *db;
    void *conn;
    ap_arena_t *arena;
    const char *tenant;
    bool open;
    bool failed;
    bool broken;
};

ap_rc ap_db_open(const char *url, int pool_size, ap_db_t **out, ap_err_t *err) {
    const ap_db_backend_t *be = NULL;
    if (strncmp(url, "sqlite:", 7) == 0)
        be = &ap_db_sqlite;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        be = &ap_db_pg;
    else
        return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "unsupported database url",
                          "use sqlite:PATH or postgres://user:pass@host:port/db",
                          "the database url must start with sqlite: or postgres://");
    void *impl = NULL;
    ap_rc rc = be->open(url, pool_size, &impl, err);
    if (rc) return rc;
    ap_db_t *db = ap_calloc(1, sizeof *db);
    db->be = be;
    db->impl = impl;
    *out = db;
    return AP_OK;
}

void ap_db_close(ap_db_t *db) {
    if (!db) return;
    db->be->close(db->impl);
    ap_free(db);
}

const char *ap_db_kind(const ap_db_t *db) {
    return db->be->name;
}

void ap_db_stats(ap_db_t *db, ap_db_stats_t *out) {
    memset(out, 0, sizeof *out);
    db->be->stats(db->impl, out);
}

static void tx_finish(ap_tx_t *tx) {
    if (tx->conn) {
        tx->db->be->release(tx->db->impl, tx->conn, tx->broken);
        tx->conn = NULL;
    }
    tx->open = false;
}

static void tx_cleanup(void *arg) {
    ap_tx_t *tx = arg;
    if (tx->open) ap_tx_rollback(tx);
}

ap_rc ap_db_begin(ap_db_t *db, const char *tenant_id, ap_tx_mode mode, ap_arena_t *a,
                  ap_tx_t **out, ap_err_t *err) {
    *out = NULL;
    void *conn = NULL;
    ap_rc rc = db->be->acquire(db->impl, &conn, err);
    if (rc) return rc;
    rc = db->be->begin(conn, tenant_id, mode, err);
    if (rc) {
        db->be->release(db->impl, conn, true);
        return rc;
    }
    ap_tx_t *tx = ap_arena_calloc(a, sizeof *tx);
    tx->db = db;
    tx->conn = conn;
    tx->arena = a;
    tx->tenant = tenant_id ? ap_arena_strdup(a, tenant_id) : NULL;
    tx->open = true;
    ap_arena_cleanup(a, tx_cleanup, tx);
    *out = tx;
    return AP_OK;
}

ap_rc ap_tx_commit(ap_tx_t *tx, ap_err_t *err) {
    if (!tx->open)
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "transaction already finished", NULL, NULL);
    if (tx->failed) {
        tx->db->be->rollback(tx->conn);
        tx_finish(tx);
        return ap_err_set(err, AP_ERR_IO, NULL, "transaction rolled back after a failed statement",
                          "retry the request", NULL);
    }
    ap_rc rc = tx->db->be->commit(tx->conn, err);
    if (rc) {
        tx->db->be->rollback(tx->conn);
        tx->broken = rc == AP_ERR_IO;
    }
    tx_finish(tx);
    return rc;
}

void ap_tx_rollback(ap_tx_t *tx) {
    if (!tx || !tx->open) return;
    tx->db->be->rollback(tx->conn);
    tx_finish(tx);
}

ap_arena_t *ap_tx_arena(ap_tx_t *tx) {
    return tx->arena;
}

const char *ap_tx_tenant(ap_tx_t *tx) {
    return tx->tenant;
}

ap_db_t *ap_tx_db(ap_tx_t *tx) {
    return tx->db;
}

ap_rc ap_tx_query(ap_tx_t *tx, const char *sql, const ap_val_t *params, int nparams,
                  ap_rows_t *out, ap_err_t *err) {
    ap_rows_t scratch;
    if (!out) out = &scratch;
    memset(out, 0, sizeof *out);
    if (!tx->open)
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "query on a finished transaction", NULL,
                          NULL);
    ap_rc rc = tx->db->be->query(tx->conn, tx->arena, sql, params, nparams, out, err);
    if (rc) tx->failed = true;
    return rc;
}

ap_rc ap_tx_lock(ap_tx_t *tx, const char *key, ap_err_t *err) {
    if (!tx->open)
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "lock on a finished transaction", NULL, NULL);
    ap_rc rc = tx->db->be->lock(tx->conn, key, err);
    if (rc) tx->failed = true;
    return rc;
}

ap_rc ap_tx_script(ap_tx_t *tx, const char *sql, ap_err_t *err) {
    if (!tx->open)
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "script on a finished transaction", NULL,
                          NULL);
    ap_rc rc = tx->db->be->script(tx->conn, sql, err);
    if (rc) tx->failed = true;
    return rc;
}

const char *ap_rows_at(const ap_rows_t *r, int row, int col) {
    if (row < 0 || row >= r->nrows || col < 0 || col >= r->ncols) return NULL;
    return r->vals[row * r->ncols + col];
}

const char *ap_rows_get(const ap_rows_t *r, int row, const char *col) {
    for (int c = 0; c < r->ncols; c++)
        if (strcmp(r->cols[c], col) == 0) return ap_rows_at(r, row, c);
    return NULL;
}

int64_t ap_rows_int(const ap_rows_t *r, int row, const char *col, int64_t dflt) {
    const char *v = ap_rows_get(r, row, col);
    if (!v) return dflt;
    char *end;
    long long n = strtoll(v, &end, 10);
    return end == v ? dflt : (int64_t)n;
}

struct json_t *ap_rows_page(const ap_rows_t *r, int limit,
                            struct json_t *(*row)(const ap_rows_t *r, int i), const char *key,
                            const char **next) {
    json_t *arr = json_array();
    int n = r->nrows > limit ? limit : r->nrows;
    for (int i = 0; i < n; i++) json_array_append_new(arr, row(r, i));
    *next = r->nrows > limit ? ap_rows_get(r, n - 1, key) : NULL;
    return arr;
}

struct json_t *ap_rows_json(const ap_rows_t *r, int row, const char *const *int_cols) {
    json_t *o = json_object();
    for (int c = 0; c < r->ncols; c++) {
        const char *v = ap_rows_at(r, row, c);
        bool is_int = false;
        for (const char *const *ic = int_cols; ic && *ic; ic++)
            if (strcmp(*ic, r->cols[c]) == 0) is_int = true;
        if (!v)
            json_object_set_new(o, r->cols[c], json_null());
        else if (is_int)
            json_object_set_new(o, r->cols[c], json_integer(strtoll(v, NULL, 10)));
        else
            json_object_set_new(o, r->cols[c], json_string(v));
    }
    return o;
}
