/*
 * testutil.h - shared helpers for the cmocka unit tests.
 *
 * 1. tu_db_open("sqlite") gives a migrated database in a fresh temporary
 *    file; tu_db_open("postgres") resets the schema of the database named
 *    by AP_TEST_PG_URL and migrates it, or returns NULL when the variable
 *    is unset (the test then skips).  scripts/test.sh sets it.
 * 2. Each test binary runs its store-backed tests once per backend.
 */
#ifndef AP_TESTUTIL_H
#define AP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/crypto.h"
#include "core/err.h"
#include "store/db.h"
#include "store/migrate.h"

static inline ap_db_t *tu_db_open(const char *backend) {
    ap_err_t err = {0};
    ap_db_t *db = NULL;
    ap_crypto_init();
    if (strcmp(backend, "sqlite") == 0) {
        char tmpl[] = "/tmp/aptest-XXXXXX";
        char *dir = mkdtemp(tmpl);
        assert_non_null(dir);
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

#endif
