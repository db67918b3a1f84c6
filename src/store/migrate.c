/*
 * migrate.c - applies the embedded migrations.
 *
 * 1. schema_migrations is created with IF NOT EXISTS outside the numbered
 *    files, so "what version is this database" can always be asked.
 * 2. The migration lock (ap_tx_lock) keeps two nodes starting at once from
 *    applying the same version twice; the version is re-read under it.
 */
#include "store/migrate.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/time.h"

int ap_migrate_latest(void) {
    int v = 0;
    for (const ap_migration_t *m = ap_migrations; m->version; m++) v = m->version;
    return v;
}

static ap_rc current_in(ap_tx_t *tx, int *version, ap_err_t *err) {
    ap_rows_t r;
    ap_rc rc = ap_tx_query(tx, "SELECT MAX(version) AS v FROM schema_migrations", NULL, 0, &r,
                           err);
    if (rc) return rc;
    *version = (int)ap_rows_int(&r, 0, "v", 0);
    return AP_OK;
}

static ap_rc ensure_table(ap_db_t *db, ap_err_t *err) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_tx_lock(tx, "agentprov.migrate", err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at TEXT NOT NULL)",
                         NULL, 0, NULL, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    ap_arena_free(a);
    return rc;
}

/* Whether schema_migrations exists yet: asked per backend, because an
 * empty database is at version 0, not an error (and a read must not
 * create the table). */
static ap_rc has_table(ap_tx_t *tx, bool *has, ap_err_t *err) {
    bool pg = strcmp(ap_db_kind(ap_tx_db(tx)), "postgres") == 0;
    ap_rows_t r;
    ap_rc rc = ap_tx_query(tx,
                           pg ? "SELECT to_regclass('schema_migrations') IS NOT NULL AS n"
                              : "SELECT COUNT(*) AS n FROM sqlite_master"
                                " WHERE type = 'table' AND name = 'schema_migrations'",
                           NULL, 0, &r, err);
    if (rc) return rc;
    *has = ap_rows_int(&r, 0, "n", 0) > 0;
    return AP_OK;
}

ap_rc ap_migrate_current(ap_db_t *db, int *version, ap_err_t *err) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    bool has = false;
    *version = 0;
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, a, &tx, err);
    if (!rc) rc = has_table(tx, &has, err);
    if (!rc && has) rc = current_in(tx, version, err);
    ap_arena_free(a);
    return rc;
}

static ap_rc too_new(int have, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_UNAVAILABLE, "schema-too-new",
                      "database schema is newer than this binary",
                      "run a newer agentprov against this database",
                      "the database is at schema version %d; this binary knows up to %d", have,
                      ap_migrate_latest());
}

ap_rc ap_migrate(ap_db_t *db, int *applied, ap_err_t *err) {
    *applied = 0;
    ap_rc rc = ensure_table(db, err);
    if (rc) return rc;
    bool pg = strcmp(ap_db_kind(db), "postgres") == 0;
    for (const ap_migration_t *m = ap_migrations; m->version; m++) {
        ap_arena_t *a = ap_arena_new(4096);
        ap_tx_t *tx;
        int have = 0;
        rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, err);
        if (!rc) rc = ap_tx_lock(tx, "agentprov.migrate", err);
        if (!rc) rc = current_in(tx, &have, err);
        if (!rc && have > ap_migrate_latest()) rc = too_new(have, err);
        /* applied is asked per version, so a version added below the
         * newest one (parallel branches) still gets applied */
        ap_rows_t done;
        ap_val_t pv[] = {AP_VINT(m->version)};
        if (!rc)
            rc = ap_tx_query(tx, "SELECT 1 AS x FROM schema_migrations WHERE version = ?", pv, 1,
                             &done, err);
        if (rc || done.nrows > 0) {
            ap_arena_free(a);
            if (rc) return rc;
            continue;
        }
        rc = ap_tx_script(tx, m->common, err);
        const char *extra = pg ? m->pg : m->sqlite;
        if (!rc && extra) rc = ap_tx_script(tx, extra, err);
        char now[AP_TIME_LEN];
        ap_time_format(ap_now_ms(), now);
        ap_val_t p[] = {AP_VINT(m->version), AP_VTEXT(m->name), AP_VTEXT(now)};
        if (!rc)
            rc = ap_tx_query(tx,
                             "INSERT INTO schema_migrations (version, name, applied_at)"
                             " VALUES (?, ?, ?)",
                             p, 3, NULL, err);
        if (!rc) rc = ap_tx_commit(tx, err);
        ap_arena_free(a);
        if (rc) {
            ap_log(AP_LOG_ERROR, "migration failed", "{s:i,s:s,s:s}", "version", m->version,
                   "name", m->name, "detail", err ? err->detail : "");
            return rc;
        }
        ap_log(AP_LOG_INFO, "migration applied", "{s:i,s:s}", "version", m->version, "name",
               m->name);
        (*applied)++;
    }
    return AP_OK;
}

ap_rc ap_migrate_check(ap_db_t *db, ap_err_t *err) {
    int v = 0;
    ap_rc rc = ap_migrate_current(db, &v, err);
    if (rc) return rc;
    if (v > ap_migrate_latest()) return too_new(v, err);
    if (v < ap_migrate_latest())
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "schema-outdated", "database schema is outdated",
                          "run agentprov migrate", "schema version %d, expected %d", v,
                          ap_migrate_latest());
    return AP_OK;
}
