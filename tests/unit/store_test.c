/*
 * store_test.c - the store interface on every backend: parameters and
 * values, keyset pages, error mapping, transaction failure and cleanup,
 * migrations, concurrency, and (PostgreSQL) row-level security as the
 * database enforces it.
 *
 * 1. Each test gets a fresh, migrated database (tu_db_open).  Scratch
 *    tables the tests create live next to the real ones.
 * 2. The RLS proof deliberately runs queries without a tenant filter: the
 *    point is that the database, not the query, keeps tenants apart.
 */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#include <jansson.h>

#include "audit/audit.h"
#include "core/time.h"

#define TA "0190a000-0000-7000-8000-00000000000a"
#define TB "0190a000-0000-7000-8000-00000000000b"

static void script(ap_db_t *db, const char *sql) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    if (ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err) || ap_tx_script(tx, sql, &err) ||
        ap_tx_commit(tx, &err))
        fail_msg("script: %s %s", err.msg, err.detail);
    ap_arena_free(a);
}

static int in_use(ap_db_t *db) {
    ap_db_stats_t st;
    ap_db_stats(db, &st);
    return st.in_use;
}

/* ---- values ------------------------------------------------------------ */

static void test_placeholders_round_trip(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    script(db, "CREATE TABLE t_vals (k INTEGER PRIMARY KEY, n TEXT, i BIGINT,"
               " r DOUBLE PRECISION, s TEXT)");
    char *big = malloc(100001);
    memset(big, 'z', 100000);
    big[100000] = '\0';
    const char *texts[] = {"plain", "", "it's \"quoted\" ? and $1 and ?2", "Zoë ✓ 日本", big};
    const int64_t ints[] = {0, -1, INT64_MAX, INT64_MIN + 1, 42};
    const double reals[] = {1.5, -0.25, 0.1, 1e-300, 123456.789};
    for (int k = 0; k < 5; k++)
        tu_exec(db, NULL, "INSERT INTO t_vals (k, n, i, r, s) VALUES (?, ?, ?, ?, ?)",
                (ap_val_t[]){AP_VINT(k), AP_VNULL, AP_VINT(ints[k]), AP_VREAL(reals[k]),
                             AP_VTEXT(texts[k])},
                5);

    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "SELECT k, n, i, r, s FROM t_vals ORDER BY k", NULL, 0, &r,
                                 &err),
                     AP_OK);
    assert_int_equal(r.nrows, 5);
    assert_int_equal(r.ncols, 5);
    assert_string_equal(r.cols[0], "k");
    assert_string_equal(r.cols[4], "s");
    for (int k = 0; k < 5; k++) {
        assert_null(ap_rows_get(&r, k, "n")); /* SQL NULL is a NULL pointer */
        assert_int_equal(ap_rows_int(&r, k, "i", -7), ints[k]);
        assert_true(strtod(ap_rows_get(&r, k, "r"), NULL) == reals[k]);
        assert_string_equal(ap_rows_get(&r, k, "s"), texts[k]); /* "" is not NULL */
    }
    assert_null(ap_rows_get(&r, 0, "no_such_column"));
    assert_null(ap_rows_at(&r, 5, 0));
    assert_null(ap_rows_at(&r, 0, 5));
    assert_null(ap_rows_at(&r, -1, 0));
    assert_int_equal(ap_rows_int(&r, 0, "n", -7), -7);

    /* ? inside a string literal is not a placeholder; ?NNN reuses one. */
    assert_int_equal(ap_tx_query(tx,
                                 "SELECT '?' AS q, CAST(?1 AS TEXT) AS a, CAST(?1 AS TEXT) AS b,"
                                 " CAST(?2 AS TEXT) AS c",
                                 (ap_val_t[]){AP_VTEXT("x"), AP_VTEXT("y")}, 2, &r, &err),
                     AP_OK);
    assert_string_equal(ap_rows_get(&r, 0, "q"), "?");
    assert_string_equal(ap_rows_get(&r, 0, "a"), "x");
    assert_string_equal(ap_rows_get(&r, 0, "b"), "x");
    assert_string_equal(ap_rows_get(&r, 0, "c"), "y");
    /* NULL parameters compare as NULL. */
    assert_int_equal(ap_tx_query(tx, "SELECT COUNT(*) AS n FROM t_vals WHERE s = ?",
                                 (ap_val_t[]){AP_VTEXT(NULL)}, 1, &r, &err),
                     AP_OK);
    assert_int_equal(ap_rows_int(&r, 0, "n", -1), 0);
    /* Booleans read the same on both backends. */
    assert_int_equal(ap_tx_query(tx, "SELECT 1 = 1 AS t, 1 = 2 AS f", NULL, 0, &r, &err), AP_OK);
    assert_string_equal(ap_rows_get(&r, 0, "t"), "1");
    assert_string_equal(ap_rows_get(&r, 0, "f"), "0");
    /* ap_rows_json: named integer columns become integers. */
    assert_int_equal(ap_tx_query(tx, "SELECT k, n, i, s FROM t_vals WHERE k = 4", NULL, 0, &r,
                                 &err),
                     AP_OK);
    json_t *j = ap_rows_json(&r, 0, (const char *const[]){"k", "i", NULL});
    assert_int_equal(json_integer_value(json_object_get(j, "k")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "i")), 42);
    assert_true(json_is_null(json_object_get(j, "n")));
    assert_true(json_is_string(json_object_get(j, "s")));
    json_decref(j);
    /* An empty result has columns and no rows. */
    assert_int_equal(ap_tx_query(tx, "SELECT k, s FROM t_vals WHERE k < 0", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(r.ncols, 2);
    assert_null(ap_rows_get(&r, 0, "k"));
    ap_tx_rollback(tx);
    ap_arena_free(a);
    free(big);
    ap_db_close(db);
}

static json_t *key_json(const ap_rows_t *r, int i) {
    return json_string(ap_rows_get(r, i, "k"));
}

/* Pages a keyset list of a, b, c with limit; returns the keys joined and
 * the next cursor ("-" for none). */
static void page(ap_tx_t *tx, const char *after, int limit, char *got, size_t cap) {
    ap_err_t err = {0};
    ap_rows_t r;
    assert_int_equal(ap_tx_query(tx, "SELECT k FROM t_page WHERE k > ? ORDER BY k LIMIT ?",
                                 (ap_val_t[]){AP_VTEXT(after), AP_VINT(limit + 1)}, 2, &r, &err),
                     AP_OK);
    const char *next = "unset";
    json_t *arr = ap_rows_page(&r, limit, key_json, "k", &next);
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++)
        n += (size_t)snprintf(got + n, cap - n, "%s", json_string_value(json_array_get(arr, i)));
    snprintf(got + n, cap - n, " next=%s", next ? next : "-");
    json_decref(arr);
}

static void test_rows_page(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    script(db, "CREATE TABLE t_page (k TEXT PRIMARY KEY);"
               " INSERT INTO t_page (k) VALUES ('a'), ('b'), ('c');");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    char got[64];
    page(tx, "", 2, got, sizeof got); /* the extra row says more follow */
    assert_string_equal(got, "ab next=b");
    page(tx, "b", 2, got, sizeof got); /* the last page: no cursor */
    assert_string_equal(got, "c next=-");
    page(tx, "", 3, got, sizeof got); /* exactly a page: nothing follows */
    assert_string_equal(got, "abc next=-");
    page(tx, "", 1, got, sizeof got);
    assert_string_equal(got, "a next=a");
    page(tx, "c", 5, got, sizeof got); /* an empty page */
    assert_string_equal(got, " next=-");
    ap_tx_rollback(tx);
    ap_arena_free(a);
    ap_db_close(db);
}

static void test_parameter_count_mismatch(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "SELECT CAST(? AS TEXT) AS a", NULL, 0, NULL, &err),
                     AP_ERR_INTERNAL);
    assert_int_equal(ap_tx_query(tx, "SELECT 1 AS a", (ap_val_t[]){AP_VINT(1)}, 1, NULL, &err),
                     AP_ERR_INTERNAL);
    ap_arena_free(a);
    assert_int_equal(in_use(db), 0);
    ap_db_close(db);
}

/* Bug: on SQLite, `changes` after a SELECT repeated the row count of the
 * connection's last INSERT/UPDATE/DELETE; PostgreSQL said 0. */
static void test_changes_counts_only_this_statement(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    script(db, "CREATE TABLE t_ch (k INTEGER PRIMARY KEY, v TEXT)");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "INSERT INTO t_ch (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
                                 NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.changes, 3);
    assert_int_equal(ap_tx_query(tx, "UPDATE t_ch SET v = 'x' WHERE k >= 2", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.changes, 2);
    assert_int_equal(ap_tx_query(tx, "SELECT k FROM t_ch", NULL, 0, &r, &err), AP_OK);
    assert_int_equal(r.nrows, 3);
    assert_int_equal(r.changes, 0);
    assert_int_equal(ap_tx_query(tx, "UPDATE t_ch SET v = 'y' WHERE k > 99", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.changes, 0);
    assert_int_equal(ap_tx_query(tx, "DELETE FROM t_ch WHERE k = 1 RETURNING k", NULL, 0, &r,
                                 &err),
                     AP_OK);
    assert_int_equal(r.changes, 1);
    assert_int_equal(r.nrows, 1);
    assert_int_equal(ap_tx_query(tx, "CREATE TABLE t_ch2 (k INTEGER)", NULL, 0, &r, &err), AP_OK);
    assert_int_equal(r.changes, 0);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    ap_db_close(db);
}

/* Bug: SQLite ran the first statement of "A; B" and silently dropped B,
 * where PostgreSQL refuses the whole string. */
static void test_query_refuses_two_statements(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    script(db, "CREATE TABLE t_two (k INTEGER PRIMARY KEY)");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_not_equal(ap_tx_query(tx,
                                     "INSERT INTO t_two VALUES (1); INSERT INTO t_two VALUES (2)",
                                     NULL, 0, NULL, &err),
                         AP_OK);
    ap_tx_rollback(tx);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM t_two", NULL, 0), 0);
    /* Nothing but a comment is an empty statement, not an error. */
    ap_rows_t r;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "-- nothing here", NULL, 0, &r, &err), AP_OK);
    assert_int_equal(r.nrows, 0);
    ap_tx_rollback(tx);
    /* A trailing semicolon, whitespace or comment is still one statement. */
    tu_exec(db, NULL, "INSERT INTO t_two VALUES (3);", NULL, 0);
    tu_exec(db, NULL, "INSERT INTO t_two VALUES (4) ; \n -- done\n", NULL, 0);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM t_two", NULL, 0), 2);
    ap_arena_free(a);
    ap_db_close(db);
}

/* db_pg.c's placeholder rewriter (AP_TESTABLE): `?` outside literals,
 * identifiers, comments and dollar quotes.  Pure, so it runs the same on
 * either backend. */
char *ap_db_pg_rewrite(const char *sql, int *nparams);

static void rewrite(const char *sql, const char *want, int want_n) {
    int n = -1;
    char *out = ap_db_pg_rewrite(sql, &n);
    if (strcmp(out, want) != 0 || n != want_n)
        fail_msg("rewrite(%s) = %s (%d), want %s (%d)", sql, out, n, want, want_n);
    free(out);
}

static void test_pg_placeholder_rewrite(void **state) {
    (void)state;
    rewrite("SELECT 1", "SELECT 1", 0);
    rewrite("", "", 0);
    rewrite("?", "$1", 1);
    rewrite("a = ? AND b = ?", "a = $1 AND b = $2", 2);
    rewrite("?2 ?1 ?", "$2 $1 $3", 3);
    rewrite("?1, ?1", "$1, $1", 1);
    rewrite("'?' ?", "'?' $1", 1);
    rewrite("'it''s ?' ?", "'it''s ?' $1", 1);
    rewrite("E'\\\\' ?", "E'\\\\' $1", 1); /* E'\\' then a placeholder */
    rewrite("E'\\' ?' ?", "E'\\' ?' $1", 1); /* E'\' ?' is one string */
    rewrite("e'\\'?' ?", "e'\\'?' $1", 1);
    rewrite("'\\' ?", "'\\' $1", 1); /* no backslash escapes in '' */
    rewrite("\"col?\" = ?", "\"col?\" = $1", 1);
    rewrite("\"a\"\"?\" ?", "\"a\"\"?\" $1", 1);
    rewrite("-- what?\n?", "-- what?\n$1", 1);
    rewrite("/* ? /* ? */ ? */ ?", "/* ? /* ? */ ? */ $1", 1);
    rewrite("$$ ? $$ ?", "$$ ? $$ $1", 1);
    rewrite("$fn$ ? $x$ ? $fn$ ?", "$fn$ ? $x$ ? $fn$ $1", 1);
    rewrite("a$1 ?", "a$1 $1", 1); /* $ inside an identifier is not a quote */
    rewrite("'unterminated ?", "'unterminated ?", 0);
    rewrite("/* unterminated ?", "/* unterminated ?", 0);
    rewrite("$$ unterminated ?", "$$ unterminated ?", 0);
    rewrite("??", "$1$2", 2);
    rewrite("? -- ?", "$1 -- ?", 1);
    rewrite("x?", "x$1", 1);
    rewrite("?$", "$1$", 1);
}

/* ---- errors and transactions ------------------------------------------- */

static void test_error_mapping(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    ap_err_t err = {0};
    const char *ins = "INSERT INTO tenants (id, name, slug, created_at, updated_at) "
                      "VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')";
    /* unique (slug) and primary key */
    assert_int_equal(tu_try(db, NULL, ins,
                            (ap_val_t[]){AP_VTEXT(TB), AP_VTEXT("x"), AP_VTEXT("tenant-a")}, 3,
                            &err),
                     AP_ERR_CONFLICT);
    assert_int_equal(err.rc, AP_ERR_CONFLICT);
    assert_true(err.detail[0] != '\0');
    assert_int_equal(tu_try(db, NULL, ins,
                            (ap_val_t[]){AP_VTEXT(TA), AP_VTEXT("x"), AP_VTEXT("other")}, 3, &err),
                     AP_ERR_CONFLICT);
    /* foreign key */
    assert_int_equal(tu_try(db, NULL,
                            "INSERT INTO users (id, tenant_id, email, display_name, role,"
                            " created_at, updated_at) VALUES ('u1', ?, 'a@b.c', 'a', 'viewer',"
                            " 'now', 'now')",
                            (ap_val_t[]){AP_VTEXT(TB)}, 1, &err),
                     AP_ERR_CONFLICT);
    /* NOT NULL */
    assert_int_equal(tu_try(db, NULL, ins,
                            (ap_val_t[]){AP_VTEXT(TB), AP_VNULL, AP_VTEXT("tenant-b")}, 3, &err),
                     AP_ERR_INVALID);
    /* syntax error, unknown table */
    assert_int_equal(tu_try(db, NULL, "SELEC 1", NULL, 0, &err), AP_ERR_IO);
    assert_int_equal(tu_try(db, NULL, "SELECT * FROM no_such_table", NULL, 0, &err), AP_ERR_IO);
    assert_non_null(strstr(err.detail, "no_such_table"));
    /* nothing leaked */
    assert_int_equal(in_use(db), 0);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants", NULL, 0), 2);
    ap_db_close(db);
}

static void test_failed_statement_fails_commit(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "UPDATE tenants SET name = 'changed' WHERE id = ?",
                                 (ap_val_t[]){AP_VTEXT(TA)}, 1, NULL, &err),
                     AP_OK);
    assert_int_equal(ap_tx_query(tx, "UPDATE tenants SET slug = 'platform' WHERE id = ?",
                                 (ap_val_t[]){AP_VTEXT(TA)}, 1, NULL, &err),
                     AP_ERR_CONFLICT);
    memset(&err, 0, sizeof err);
    assert_int_not_equal(ap_tx_commit(tx, &err), AP_OK);
    assert_true(err.msg[0] != '\0');
    /* the earlier, successful statement did not land */
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants WHERE name = 'changed'",
                              NULL, 0),
                     0);
    /* a finished transaction refuses more work; rollback is harmless */
    assert_int_equal(ap_tx_query(tx, "SELECT 1 AS x", NULL, 0, NULL, &err), AP_ERR_INTERNAL);
    assert_int_equal(ap_tx_commit(tx, &err), AP_ERR_INTERNAL);
    ap_tx_rollback(tx);
    ap_tx_rollback(NULL);
    assert_int_equal(in_use(db), 0);
    ap_arena_free(a);

    /* A plain rollback undoes too; a commit keeps. */
    a = ap_arena_new(1024);
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "UPDATE tenants SET name = 'rolled' WHERE id = ?",
                                 (ap_val_t[]){AP_VTEXT(TA)}, 1, NULL, &err),
                     AP_OK);
    ap_tx_rollback(tx);
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "UPDATE tenants SET name = 'kept' WHERE id = ?",
                                 (ap_val_t[]){AP_VTEXT(TA)}, 1, NULL, &err),
                     AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants WHERE name = 'rolled'",
                              NULL, 0),
                     0);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants WHERE name = 'kept'",
                              NULL, 0),
                     1);
    ap_db_close(db);
}

static void test_open_tx_rolled_back_when_arena_freed(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    ap_db_stats_t st;
    ap_db_stats(db, &st);
    assert_int_equal(st.size, 4);
    assert_int_equal(st.in_use, 0);
    /* More abandoned transactions than the pool has connections: each must
     * come back, rolled back, or a later begin would block or nest. */
    for (int i = 0; i < 10; i++) {
        ap_err_t err = {0};
        ap_arena_t *a = ap_arena_new(1024);
        ap_tx_t *tx;
        assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
        assert_int_equal(in_use(db), 1);
        char slug[32];
        snprintf(slug, sizeof slug, "abandoned-%d", i);
        char id[40];
        snprintf(id, sizeof id, "0190a000-0000-7000-8000-%012d", i + 100);
        assert_int_equal(
            ap_tx_query(tx,
                        "INSERT INTO tenants (id, name, slug, created_at, updated_at) "
                        "VALUES (?, ?, ?, 'x', 'x')",
                        (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(slug), AP_VTEXT(slug)}, 3, NULL, &err),
            AP_OK);
        if (i % 2) (void)ap_arena_alloc(a, 100000); /* cleanup with several blocks */
        ap_arena_free(a); /* no commit, no rollback */
        assert_int_equal(in_use(db), 0);
    }
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants", NULL, 0), 1);
    /* Several open at once, freed in another order than opened. */
    ap_arena_t *as[4];
    for (int i = 0; i < 4; i++) {
        ap_tx_t *tx;
        as[i] = ap_arena_new(256);
        assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, as[i], &tx, NULL), AP_OK);
    }
    assert_int_equal(in_use(db), 4);
    ap_arena_free(as[2]);
    ap_arena_free(as[0]);
    ap_arena_free(as[3]);
    ap_arena_free(as[1]);
    assert_int_equal(in_use(db), 0);
    /* reset works like free */
    ap_arena_t *a = ap_arena_new(256);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, NULL), AP_OK);
    ap_arena_reset(a);
    assert_int_equal(in_use(db), 0);
    ap_arena_free(a);
    tu_add_tenant(db, TA, "tenant-a"); /* the pool still writes */
    ap_db_close(db);
}

/* ---- migrations -------------------------------------------------------- */

static void test_migrations_idempotent(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    ap_err_t err = {0};
    int applied = -1, version = -1;
    assert_true(ap_migrate_latest() >= 1);
    assert_int_equal(ap_migrate(db, &applied, &err), AP_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(ap_migrate(db, &applied, &err), AP_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(ap_migrate_current(db, &version, &err), AP_OK);
    assert_int_equal(version, ap_migrate_latest());
    assert_int_equal(ap_migrate_check(db, &err), AP_OK);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM schema_migrations", NULL, 0),
                     ap_migrate_latest());
    /* the platform tenant was seeded exactly once */
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants", NULL, 0), 1);
    assert_int_equal(in_use(db), 0);
    ap_db_close(db);
}

static void test_migrate_check_refuses_newer_schema(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_exec(db, NULL,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future',"
            " '2030-01-01T00:00:00.000Z')",
            NULL, 0);
    ap_err_t err = {0};
    int version = 0, applied = -1;
    assert_int_equal(ap_migrate_current(db, &version, &err), AP_OK);
    assert_int_equal(version, 9999);
    assert_int_equal(ap_migrate_check(db, &err), AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "schema-too-new");
    assert_non_null(strstr(err.detail, "9999"));
    char latest[16];
    snprintf(latest, sizeof latest, "%d", ap_migrate_latest());
    assert_non_null(strstr(err.detail, latest));
    assert_non_null(strstr(err.hint, "newer"));
    /* migrate refuses too, and does nothing */
    memset(&err, 0, sizeof err);
    assert_int_equal(ap_migrate(db, &applied, &err), AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "schema-too-new");
    assert_int_equal(applied, 0);
    assert_int_equal(in_use(db), 0);
    ap_db_close(db);
}

/* An empty database: current version 0 and "outdated", as migrate.h says,
 * and a first migrate applies every version. */
static ap_db_t *open_empty(char *dir_out, size_t cap) {
    ap_err_t err = {0};
    ap_db_t *db = NULL;
    if (!tu_is_pg()) {
        char tmpl[] = "/tmp/aptest-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        snprintf(dir_out, cap, "%s", tmpl);
        char url[256];
        snprintf(url, sizeof url, "sqlite:%s/empty.db", tmpl);
        if (ap_db_open(url, 2, &db, &err)) fail_msg("open: %s", err.detail);
        return db;
    }
    dir_out[0] = '\0';
    db = tu_open(); /* migrated: empty it again */
    script(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    return db;
}

/* Bug: ap_migrate_current and ap_migrate_check failed with a storage error
 * ("no such table: schema_migrations") on an empty database instead of
 * reporting version 0 / schema-outdated. */
static void test_migrate_check_on_empty_database(void **state) {
    (void)state;
    char dir[64];
    ap_db_t *db = open_empty(dir, sizeof dir);
    ap_err_t err = {0};
    int version = -1, applied = -1;
    assert_int_equal(ap_migrate_current(db, &version, &err), AP_OK);
    assert_int_equal(version, 0);
    assert_int_equal(ap_migrate_check(db, &err), AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "schema-outdated");
    assert_non_null(strstr(err.hint, "migrate"));
    assert_int_equal(ap_migrate(db, &applied, &err), AP_OK);
    assert_int_equal(applied, ap_migrate_latest());
    assert_int_equal(ap_migrate_check(db, &err), AP_OK);
    ap_db_close(db);
    if (dir[0]) {
        char path[128];
        const char *files[] = {"empty.db", "empty.db-wal", "empty.db-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            unlink(path);
        }
        rmdir(dir);
    }
}

static void test_open_errors(void **state) {
    (void)state;
    ap_err_t err = {0};
    ap_db_t *db = (ap_db_t *)1;
    assert_int_equal(ap_db_open("mysql://x", 1, &db, &err), AP_ERR_INVALID);
    assert_int_equal(ap_db_open("sqlite:", 1, &db, &err), AP_ERR_INVALID);
    assert_int_equal(ap_db_open("sqlite:/nonexistent-dir-ap/x/y.db", 1, &db, &err),
                     AP_ERR_UNAVAILABLE);
    /* A server that is not there: unavailable, and the password never
     * appears in the message. */
    memset(&err, 0, sizeof err);
    assert_int_equal(ap_db_open("postgres://app:hunter2-pw@127.0.0.1:1/db", 1, &db, &err),
                     AP_ERR_UNAVAILABLE);
    assert_null(strstr(err.detail, "hunter2"));
    assert_null(strstr(err.msg, "hunter2"));
    assert_int_equal(ap_db_open("postgres://app:hunter2-pw@127.0.0.1:1/db?nosuchparam=1", 1, &db,
                                &err),
                     AP_ERR_INVALID);
    assert_null(strstr(err.detail, "hunter2"));
}

/* ---- concurrency ------------------------------------------------------- */

#define WRITERS 8
#define PER_WRITER 25

typedef struct {
    ap_db_t *db;
    int thread;
    int failures;
    char detail[256];
} writer_t;

static void *writer(void *arg) {
    writer_t *w = arg;
    for (int n = 0; n < PER_WRITER; n++) {
        ap_err_t err = {0};
        ap_arena_t *a = ap_arena_new(1024);
        ap_tx_t *tx;
        char id[32];
        snprintf(id, sizeof id, "w%d-%d", w->thread, n);
        ap_rc rc = ap_db_begin(w->db, NULL, AP_TX_WRITE, a, &tx, &err);
        if (!rc) rc = ap_tx_query(tx, "INSERT INTO t_conc (id, thread, n) VALUES (?, ?, ?)",
                                  (ap_val_t[]){AP_VTEXT(id), AP_VINT(w->thread), AP_VINT(n)},
                                  3, NULL, &err);
        if (!rc) rc = ap_tx_query(tx, "UPDATE t_total SET n = n + 1", NULL, 0, NULL, &err);
        if (!rc) rc = ap_tx_commit(tx, &err);
        if (rc) {
            w->failures++;
            snprintf(w->detail, sizeof w->detail, "%.100s: %.140s", err.msg, err.detail);
        }
        ap_arena_free(a);
    }
    return NULL;
}

static void test_concurrent_writers(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    script(db, "CREATE TABLE t_conc (id TEXT PRIMARY KEY, thread INTEGER, n INTEGER);"
               "CREATE TABLE t_total (n INTEGER NOT NULL); INSERT INTO t_total VALUES (0);");
    pthread_t th[WRITERS];
    writer_t w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer_t){.db = db, .thread = i};
        pthread_create(&th[i], NULL, writer, &w[i]);
    }
    for (int i = 0; i < WRITERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < WRITERS; i++)
        if (w[i].failures) fail_msg("writer %d: %d failures, last %s", i, w[i].failures,
                                    w[i].detail);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM t_conc", NULL, 0),
                     WRITERS * PER_WRITER);
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM t_conc WHERE thread = ?",
                                  (ap_val_t[]){AP_VINT(i)}, 1),
                         PER_WRITER);
    /* read-modify-write of one row lost no update */
    assert_int_equal(tu_count(db, NULL, "SELECT n FROM t_total", NULL, 0), WRITERS * PER_WRITER);
    ap_db_stats_t st;
    ap_db_stats(db, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.size, 4);
    /* a fifth transaction waits for a connection, and is counted: hold all
     * four, start one more on another thread, then let go */
    int64_t waits0 = st.waits;
    ap_arena_t *hold = ap_arena_new(1024);
    ap_err_t err = {0};
    ap_tx_t *held[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, hold, &held[i], &err), AP_OK);
    writer_t extra = {.db = db, .thread = WRITERS};
    pthread_t t;
    pthread_create(&t, NULL, writer, &extra);
    struct timespec pause = {0, 50 * 1000000};
    nanosleep(&pause, NULL);
    for (int i = 0; i < 4; i++) ap_tx_rollback(held[i]);
    pthread_join(t, NULL);
    ap_arena_free(hold);
    assert_int_equal(extra.failures, 0);
    ap_db_stats(db, &st);
    assert_true(st.waits > waits0);
    assert_int_equal(st.in_use, 0);
    ap_db_close(db);
}

typedef struct {
    ap_db_t *db;
    int64_t locked_at_ns; /* when the second transaction held the lock */
    ap_rc rc;
} locker_t;

static int64_t now_ns(void) {
    return (int64_t)ap_mono_ns();
}

static void *second_locker(void *arg) {
    locker_t *l = arg;
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    l->rc = ap_db_begin(l->db, NULL, AP_TX_WRITE, a, &tx, &err);
    if (!l->rc) l->rc = ap_tx_lock(tx, "test.lock", &err);
    l->locked_at_ns = now_ns();
    if (!l->rc) l->rc = ap_tx_commit(tx, &err);
    ap_arena_free(a);
    return NULL;
}

/* ap_tx_lock holds out a second writer until the first one commits (an
 * advisory lock on PostgreSQL, the write lock itself on SQLite). */
static void test_tx_lock_serialises(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_lock(tx, "test.lock", &err), AP_OK);
    locker_t l = {.db = db};
    pthread_t th;
    pthread_create(&th, NULL, second_locker, &l);
    usleep(300000);
    int64_t committed_at = now_ns();
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    pthread_join(th, NULL);
    assert_int_equal(l.rc, AP_OK);
    assert_true(l.locked_at_ns >= committed_at);
    ap_arena_free(a);
    ap_db_close(db);
}

/* ---- tenant isolation -------------------------------------------------- */

static void add_user(ap_db_t *db, const char *id, const char *tenant, const char *email) {
    tu_exec(db, NULL,
            "INSERT INTO users (id, tenant_id, email, display_name, role, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'viewer', '2026-01-01T00:00:00.000Z',"
            " '2026-01-01T00:00:00.000Z')",
            (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(tenant), AP_VTEXT(email), AP_VTEXT(email)}, 4);
}

static void seed_users(ap_db_t *db) {
    tu_add_tenant(db, TA, "tenant-a");
    tu_add_tenant(db, TB, "tenant-b");
    add_user(db, "ua1", TA, "a1@a.example");
    add_user(db, "ua2", TA, "a2@a.example");
    add_user(db, "ub1", TB, "b1@b.example");
    add_user(db, "ub2", TB, "b2@b.example");
    add_user(db, "ub3", TB, "b3@b.example");
}

/* PostgreSQL: the database itself keeps tenants apart. */
static void test_rls_proof(void **state) {
    (void)state;
    if (!tu_is_pg()) skip();
    ap_db_t *db = tu_open();
    seed_users(db);
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;

    /* The role the server connects as can neither skip nor bypass RLS. */
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx,
                                 "SELECT rolsuper, rolbypassrls FROM pg_roles"
                                 " WHERE rolname = current_user",
                                 NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.nrows, 1);
    assert_string_equal(ap_rows_get(&r, 0, "rolsuper"), "0");
    assert_string_equal(ap_rows_get(&r, 0, "rolbypassrls"), "0");
    /* Every tenant table has RLS enabled and forced (the role owns them). */
    assert_int_equal(ap_tx_query(tx,
                                 "SELECT COUNT(*) AS n FROM pg_class WHERE relname IN"
                                 " ('tenants', 'users', 'api_keys', 'audit_log',"
                                 " 'idempotency_keys') AND relrowsecurity AND"
                                 " relforcerowsecurity AND pg_get_userbyid(relowner) ="
                                 " current_user",
                                 NULL, 0, &r, &err),
                     AP_OK);
    assert_string_equal(ap_rows_get(&r, 0, "n"), "5");
    ap_tx_rollback(tx);

    /* Tenant A, unfiltered reads: only A's rows. */
    assert_int_equal(ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "SELECT COUNT(*) AS n FROM users", NULL, 0, &r, &err), AP_OK);
    assert_string_equal(ap_rows_get(&r, 0, "n"), "2");
    assert_int_equal(ap_tx_query(tx, "SELECT email FROM users ORDER BY email", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.nrows, 2);
    assert_string_equal(ap_rows_get(&r, 0, "email"), "a1@a.example");
    assert_string_equal(ap_rows_get(&r, 1, "email"), "a2@a.example");
    /* even asking for B by name */
    assert_int_equal(ap_tx_query(tx, "SELECT email FROM users WHERE tenant_id = ?",
                                 (ap_val_t[]){AP_VTEXT(TB)}, 1, &r, &err),
                     AP_OK);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(ap_tx_query(tx, "SELECT id FROM tenants", NULL, 0, &r, &err), AP_OK);
    assert_int_equal(r.nrows, 1);
    assert_string_equal(ap_rows_get(&r, 0, "id"), TA);
    ap_tx_rollback(tx);

    /* Tenant A, unfiltered writes: only A's rows change. */
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_tx_query(tx, "UPDATE users SET display_name = 'pwned'", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.changes, 2);
    assert_int_equal(ap_tx_query(tx, "DELETE FROM users WHERE email LIKE 'b%'", NULL, 0, &r, &err),
                     AP_OK);
    assert_int_equal(r.changes, 0);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM users WHERE display_name = 'pwned'",
                              NULL, 0),
                     2);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM users WHERE tenant_id = ? AND"
                              " display_name <> 'pwned'",
                              (ap_val_t[]){AP_VTEXT(TB)}, 1),
                     3);

    /* Writing a row for B from A's transaction is refused. */
    memset(&err, 0, sizeof err);
    assert_int_equal(tu_try(db, TA,
                            "INSERT INTO users (id, tenant_id, email, display_name, role,"
                            " created_at, updated_at) VALUES ('x1', ?, 'x@b.example', 'x',"
                            " 'tenant_admin', 'now', 'now')",
                            (ap_val_t[]){AP_VTEXT(TB)}, 1, &err),
                     AP_ERR_DENIED);
    assert_non_null(strstr(err.detail, "row-level security"));
    /* ... and so is moving one of A's rows to B. */
    assert_int_equal(tu_try(db, TA, "UPDATE users SET tenant_id = ? WHERE id = 'ua1'",
                            (ap_val_t[]){AP_VTEXT(TB)}, 1, &err),
                     AP_ERR_DENIED);
    /* An audit entry for B written from A's transaction too. */
    assert_int_equal(tu_try(db, TA,
                            "INSERT INTO audit_log (tenant_id, seq, id, time, actor_type,"
                            " action, resource_type, outcome, prev_hash, hash) VALUES"
                            " (?, 1, 'e1', 't', 'system', 'x', 'x', 'success', 'p', 'h')",
                            (ap_val_t[]){AP_VTEXT(TB)}, 1, &err),
                     AP_ERR_DENIED);

    /* Platform scope sees both tenants. */
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM users", NULL, 0), 5);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants", NULL, 0), 3);
    /* Scope dies with the transaction: B then A on pooled connections. */
    for (int i = 0; i < 6; i++) {
        const char *t = i % 2 ? TA : TB;
        assert_int_equal(tu_count(db, t, "SELECT COUNT(*) FROM users", NULL, 0), i % 2 ? 2 : 3);
    }
    /* An unknown tenant sees nothing. */
    assert_int_equal(tu_count(db, "0190a000-0000-7000-8000-0000000000ff",
                              "SELECT COUNT(*) FROM users", NULL, 0),
                     0);
    ap_arena_free(a);
    assert_int_equal(in_use(db), 0);
    ap_db_close(db);
}

static void test_audit_log_append_only(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_audit_event_t ev = {.action = "test.event", .resource_type = "test", .outcome = "success"};
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_audit_append(tx, TA, &actor, &ev, NULL, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    const char *sqls[] = {
        "UPDATE audit_log SET action = 'forged'",
        "UPDATE audit_log SET hash = hash WHERE seq = 1",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE seq = 1",
    };
    const char *scopes[] = {NULL, TA};
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < sizeof sqls / sizeof *sqls; i++) {
            memset(&err, 0, sizeof err);
            ap_rc rc = tu_try(db, scopes[s], sqls[i], NULL, 0, &err);
            if (rc != AP_ERR_DENIED)
                fail_msg("%s: rc %s (%s), want denied", sqls[i], ap_rc_name(rc), err.detail);
            assert_non_null(strstr(err.detail, "append-only"));
        }
    if (tu_is_pg()) {
        assert_int_equal(tu_try(db, NULL, "TRUNCATE audit_log", NULL, 0, &err), AP_ERR_DENIED);
    }
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM audit_log WHERE action = 'test.event'", NULL,
                              0),
                     1);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placeholders_round_trip),
        cmocka_unit_test(test_rows_page),
        cmocka_unit_test(test_parameter_count_mismatch),
        cmocka_unit_test(test_changes_counts_only_this_statement),
        cmocka_unit_test(test_query_refuses_two_statements),
        cmocka_unit_test(test_pg_placeholder_rewrite),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_failed_statement_fails_commit),
        cmocka_unit_test(test_open_tx_rolled_back_when_arena_freed),
        cmocka_unit_test(test_migrations_idempotent),
        cmocka_unit_test(test_migrate_check_refuses_newer_schema),
        cmocka_unit_test(test_migrate_check_on_empty_database),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_tx_lock_serialises),
        cmocka_unit_test(test_rls_proof),
        cmocka_unit_test(test_audit_log_append_only),
    };
    TU_RUN_BACKENDS(tests);
}
