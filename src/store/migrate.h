/*
 * migrate.h - numbered SQL migrations built into the binary.
 *
 * 1. Each version has a common part (runs on both backends) and optional
 *    backend parts (.pg.sql: row-level security, triggers; .sqlite.sql).
 * 2. Each version applies in its own transaction, under a migration lock,
 *    and is recorded in schema_migrations; applying twice is harmless.
 * 3. A database whose schema is newer than this binary knows is refused
 *    with a message that says to upgrade the binary.
 */
#ifndef AP_STORE_MIGRATE_H
#define AP_STORE_MIGRATE_H

#include "core/err.h"
#include "store/db.h"

typedef struct {
    int version;
    const char *name;
    const char *common, *pg, *sqlite;
} ap_migration_t;

extern const ap_migration_t ap_migrations[]; /* ends with version 0 */

int ap_migrate_latest(void);
/* Applies what is missing; *applied gets how many were applied. */
ap_rc ap_migrate(ap_db_t *db, int *applied, ap_err_t *err);
/* Current schema version of the database (0 for an empty one). */
ap_rc ap_migrate_current(ap_db_t *db, int *version, ap_err_t *err);
/* AP_OK when the schema is exactly what this binary expects. */
ap_rc ap_migrate_check(ap_db_t *db, ap_err_t *err);

#endif
