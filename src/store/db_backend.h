/*
 * db_backend.h - what a storage backend implements (private to store/).
 *
 * 1. A backend owns a pool of connections; the generic layer (db.c) checks
 *    a connection out for the life of one transaction.
 * 2. `begin` receives the tenant scope; the backend applies it however it
 *    must (PostgreSQL: set_config of app.tenant_id and app.platform, local
 *    to the transaction).
 * 3. Row values are copied into the arena before `query` returns.
 */
#ifndef AP_STORE_DB_BACKEND_H
#define AP_STORE_DB_BACKEND_H

#include "store/db.h"

typedef struct {
    const char *name;
    ap_rc (*open)(const char *url, int pool_size, void **impl, ap_err_t *err);
    void (*close)(void *impl);
    ap_rc (*acquire)(void *impl, void **conn, ap_err_t *err);
    void (*release)(void *impl, void *conn, bool broken);
    ap_rc (*begin)(void *conn, const char *tenant_id, ap_tx_mode mode, ap_err_t *err);
    ap_rc (*commit)(void *conn, ap_err_t *err);
    void (*rollback)(void *conn);
    ap_rc (*query)(void *conn, ap_arena_t *a, const char *sql, const ap_val_t *params,
                   int nparams, ap_rows_t *out, ap_err_t *err);
    ap_rc (*lock)(void *conn, const char *key, ap_err_t *err);
    ap_rc (*script)(void *conn, const char *sql, ap_err_t *err);
    void (*stats)(void *impl, ap_db_stats_t *out);
} ap_db_backend_t;

extern const ap_db_backend_t ap_db_sqlite;
extern const ap_db_backend_t ap_db_pg;

#endif
