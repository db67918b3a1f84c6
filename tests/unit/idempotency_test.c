/*
 * idempotency_test.c - idempotency records expire after their time to live.
 */
#include "testutil.h"

#include "core/id.h"
#include "core/time.h"
#include "http/idempotency.h"

static void insert(ap_db_t *db, const char *key, const char *created_at) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_val_t p[] = {AP_VTEXT(AP_NIL_UUID), AP_VTEXT("key-1"), AP_VTEXT(key), AP_VTEXT("h"),
                    AP_VTEXT(created_at)};
    if (ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err) ||
        ap_tx_query(tx,
                    "INSERT INTO idempotency_keys (tenant_id, actor_id, idem_key, request_hash,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    p, 5, NULL, &err) ||
        ap_tx_commit(tx, &err))
        fail_msg("insert: %s", err.detail);
    ap_arena_free(a);
}

static int64_t count(ap_db_t *db) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows;
    if (ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err) ||
        ap_tx_query(tx, "SELECT COUNT(*) AS n FROM idempotency_keys", NULL, 0, &rows, &err))
        fail_msg("count: %s", err.detail);
    int64_t n = ap_rows_int(&rows, 0, "n", -1);
    ap_arena_free(a);
    return n;
}

static void test_expire_removes_only_old_records(void **state) {
    (void)state;
    ap_db_t *db = tu_db_open(tu_backend());
    if (!db) skip();
    char old[AP_TIME_LEN], fresh[AP_TIME_LEN];
    ap_time_format(ap_now_ms() - AP_IDEM_TTL_MS - 60000, old);
    ap_time_format(ap_now_ms() - 60000, fresh);
    insert(db, "old", old);
    insert(db, "fresh", fresh);
    assert_int_equal(count(db), 2);
    ap_err_t err = {0};
    int64_t removed = -1;
    assert_int_equal(ap_idem_expire(db, AP_IDEM_TTL_MS, &removed, &err), AP_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(count(db), 1);
    assert_int_equal(ap_idem_expire(db, AP_IDEM_TTL_MS, &removed, &err), AP_OK);
    assert_int_equal(removed, 0);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expire_removes_only_old_records),
    };
    TU_RUN_BACKENDS(tests);
}
