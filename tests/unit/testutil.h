/*
 * testutil.h - shared helpers for the cmocka unit tests.
 *
 * 1. tu_db_open("sqlite") gives a migrated database in a fresh temporary
 *    directory (removed when the next one is opened, and at exit);
 *    tu_db_open("postgres") resets the schema of the database named
 *    by AP_TEST_PG_URL and migrates it, or returns NULL when the variable
 *    is unset (the test then skips).  scripts/test.sh sets it.
 * 2. Each test binary runs its store-backed tests once per backend.
 * 3. tu_exec / tu_try / tu_count / tu_add_tenant are one-statement
 *    shortcuts in their own transaction, for arranging and checking state.
 */
#ifndef AP_TESTUTIL_H
#define AP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/crypto.h"
#include "core/err.h"
#include "store/db.h"
#include "store/migrate.h"

/* The SQLite directory of the previous tu_db_open: removed at the next
 * open and at exit, so test runs do not pile up in /tmp (an abandoned,
 * still-open database is unaffected once unlinked). */
static char tu_last_dir_[64];

static inline void tu_rm_last_dir_(void) {
    if (!tu_last_dir_[0]) return;
    DIR *d = opendir(tu_last_dir_);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[sizeof tu_last_dir_ + 256];
            snprintf(path, sizeof path, "%s/%s", tu_last_dir_, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tu_last_dir_);
    tu_last_dir_[0] = '\0';
}

static inline ap_db_t *tu_db_open(const char *backend) {
    ap_err_t err = {0};
    ap_db_t *db = NULL;
    ap_crypto_init();
    if (strcmp(backend, "sqlite") == 0) {
        static bool registered;
        if (!registered) registered = atexit(tu_rm_last_dir_) == 0;
        tu_rm_last_dir_();
        char tmpl[] = "/tmp/aptest-XXXXXX";
        char *dir = mkdtemp(tmpl);
        assert_non_null(dir);
        snprintf(tu_last_dir_, sizeof tu_last_dir_, "%s", dir);
        char url[256];
        snprintf(url, sizeof url, "sqlite:%s/test.db", dir);
        if (ap_db_open(url, 4, &db, &err)) fail_msg("open %s: %s", url, err.detail);
    } else {
        const char *url = getenv("AP_TEST_PG_URL");
        if (!url || !*url) return NULL;
        if (ap_db_open(url, 4, &db, &err)) fail_msg("open pg: %s", err.detail);
        ap_arena_t *a = ap_arena_new(1024);
        ap_tx_t *tx;
        if (ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err) ||
            ap_tx_script(tx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;", &err) ||
            ap_tx_commit(tx, &err))
            fail_msg("reset pg schema: %s", err.detail);
        ap_arena_free(a);
    }
    int applied = 0;
    if (ap_migrate(db, &applied, &err)) fail_msg("migrate: %s %s", err.msg, err.detail);
    return db;
}

/* Runs a cmocka group once per available backend; the group's state is
 * the backend name. */
#define TU_RUN_BACKENDS(tests)                                                     \
    do {                                                                           \
        int failed_ = 0;                                                           \
        setenv("TU_BACKEND", "sqlite", 1);                                         \
        failed_ += cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);       \
        if (getenv("AP_TEST_PG_URL") && *getenv("AP_TEST_PG_URL")) {               \
            setenv("TU_BACKEND", "postgres", 1);                                   \
            failed_ += cmocka_run_group_tests_name("postgres", tests, NULL, NULL); \
        }                                                                          \
        return failed_;                                                            \
    } while (0)

static inline const char *tu_backend(void) {
    const char *b = getenv("TU_BACKEND");
    return b ? b : "sqlite";
}

static inline bool tu_is_pg(void) {
    return strcmp(tu_backend(), "postgres") == 0;
}

/* Opens the current backend's database, or skips the test. */
static inline ap_db_t *tu_open(void) {
    ap_db_t *db = tu_db_open(tu_backend());
    if (!db) skip();
    return db;
}

/* Runs one statement in its own write transaction for tenant (NULL:
 * platform) and commits; fails the test on any error. */
static inline void tu_exec(ap_db_t *db, const char *tenant, const char *sql,
                           const ap_val_t *p, int np) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    if (ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err) ||
        ap_tx_query(tx, sql, p, np, NULL, &err) || ap_tx_commit(tx, &err))
        fail_msg("%s: %s %s", sql, err.msg, err.detail);
    ap_arena_free(a);
}

/* Like tu_exec but returns the rc and leaves err for the caller. */
static inline ap_rc tu_try(ap_db_t *db, const char *tenant, const char *sql, const ap_val_t *p,
                           int np, ap_err_t *err) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_tx_query(tx, sql, p, np, NULL, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    ap_arena_free(a);
    return rc;
}

/* The integer in the first column of the first row of a read in tenant's
 * scope (NULL: platform). */
static inline int64_t tu_count(ap_db_t *db, const char *tenant, const char *sql,
                               const ap_val_t *p, int np) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    if (ap_db_begin(db, tenant, AP_TX_READ, a, &tx, &err) ||
        ap_tx_query(tx, sql, p, np, &r, &err))
        fail_msg("%s: %s %s", sql, err.msg, err.detail);
    if (r.nrows < 1 || r.ncols < 1 || !ap_rows_at(&r, 0, 0)) fail_msg("%s: no value", sql);
    int64_t n = strtoll(ap_rows_at(&r, 0, 0), NULL, 10);
    ap_arena_free(a);
    return n;
}

/* Inserts a tenant row directly (platform scope). */
static inline void tu_add_tenant(ap_db_t *db, const char *id, const char *slug) {
    tu_exec(db, NULL,
            "INSERT INTO tenants (id, name, slug, created_at, updated_at) "
            "VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(slug), AP_VTEXT(slug)}, 3);
}

#endif
