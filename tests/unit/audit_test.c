/*
 * audit_test.c - the hash-chained audit log on every backend: chains,
 * verification against edits, deletions and reordering, the append-only
 * triggers, list filters and paging, export, and (PostgreSQL) RLS.
 *
 * 1. Tampering needs the append-only triggers out of the way; each test
 *    has a fresh database, so they are dropped (SQLite) or disabled
 *    (PostgreSQL, the test role owns the table) and never restored.
 * 2. The canonical form is recomputed here from the header's description,
 *    independently of audit.c, so the documented format is what is tested.
 */
#include "testutil.h"

#include <jansson.h>

#include "audit/audit.h"
#include "core/time.h"

#define TA "0190a000-0000-7000-8000-00000000000a"
#define TB "0190a000-0000-7000-8000-00000000000b"

static ap_db_t *open_db(void) {
    ap_db_t *db = tu_db_open(tu_backend());
    if (!db) skip();
    return db;
}

static bool is_pg(void) {
    return strcmp(tu_backend(), "postgres") == 0;
}

/* Runs one statement in a platform write transaction and commits. */
static void exec_sql(ap_db_t *db, const char *sql, const ap_val_t *p, int np) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    if (ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err) ||
        ap_tx_query(tx, sql, p, np, NULL, &err) || ap_tx_commit(tx, &err))
        fail_msg("%s: %s %s", sql, err.msg, err.detail);
    ap_arena_free(a);
}

static void add_tenant(ap_db_t *db, const char *id, const char *slug) {
    exec_sql(db,
             "INSERT INTO tenants (id, name, slug, created_at, updated_at) "
             "VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
             (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(slug), AP_VTEXT(slug)}, 3);
}

static int64_t append_full(ap_db_t *db, const char *tenant, const char *action,
                           const char *rtype, const char *rid, const char *actor_id,
                           json_t *changes) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_actor_t actor = {.type = "user", .id = actor_id, .role = NULL, .request_id = "req-1",
                        .client_addr = "127.0.0.1"};
    ap_audit_event_t ev = {.action = action, .resource_type = rtype, .resource_id = rid,
                           .outcome = "success", .changes = changes};
    int64_t seq = 0;
    if (ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err) ||
        ap_audit_append(tx, tenant, &actor, &ev, &seq, &err) || ap_tx_commit(tx, &err))
        fail_msg("append %s: %s %s", action, err.msg, err.detail);
    ap_arena_free(a);
    return seq;
}

static int64_t append(ap_db_t *db, const char *tenant, const char *action) {
    return append_full(db, tenant, action, "user", "u-1", "actor-1", NULL);
}

static ap_audit_verify_t verify(ap_db_t *db, const char *tenant) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_audit_verify_t v;
    if (ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err) ||
        ap_audit_verify(tx, tenant, &v, &err))
        fail_msg("verify: %s %s", err.msg, err.detail);
    ap_arena_free(a);
    return v;
}

static json_t *list(ap_db_t *db, const char *tenant, const ap_audit_filter_t *f,
                    int64_t *next) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    if (ap_db_begin(db, tenant, AP_TX_READ, a, &tx, &err) ||
        ap_audit_list(tx, tenant, f, &out, next, &err))
        fail_msg("list: %s %s", err.msg, err.detail);
    ap_arena_free(a);
    return out;
}

static int64_t seq_at(json_t *arr, size_t i) {
    return (int64_t)json_integer_value(json_object_get(json_array_get(arr, i), "seq"));
}

/* Gets the append-only triggers out of the way (point 1). */
static void disable_triggers(ap_db_t *db) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    const char *sql = is_pg() ? "ALTER TABLE audit_log DISABLE TRIGGER USER"
                              : "DROP TRIGGER audit_log_no_update; "
                                "DROP TRIGGER audit_log_no_delete;";
    if (ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err) || ap_tx_script(tx, sql, &err) ||
        ap_tx_commit(tx, &err))
        fail_msg("disable triggers: %s %s", err.msg, err.detail);
    ap_arena_free(a);
}

/* The canonical JSON of a listed entry, per audit.h. */
static char *canonical_of(json_t *entry) {
    json_t *c = json_deep_copy(entry);
    json_object_del(c, "prev_hash");
    json_object_del(c, "hash");
    json_t *ch = json_object_get(c, "changes");
    if (!json_is_null(ch)) {
        char *s = json_dumps(ch, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_object_set_new(c, "changes", json_string(s));
        free(s);
    }
    char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(c);
    return s;
}

static void hash_of(const char *prev, const char *canon, char out[AP_SHA256_HEX]) {
    size_t np = strlen(prev), nc = strlen(canon);
    char *m = malloc(np + nc);
    memcpy(m, prev, np);
    memcpy(m + np, canon, nc);
    ap_sha256_hex(m, np + nc, out);
    free(m);
}

static void seed_two_tenants(ap_db_t *db) {
    add_tenant(db, TA, "tenant-a");
    add_tenant(db, TB, "tenant-b");
    assert_int_equal(append(db, TA, "user.create"), 1);
    assert_int_equal(append(db, TB, "user.create"), 1);
    assert_int_equal(append(db, TA, "user.update"), 2);
    assert_int_equal(append(db, TB, "user.delete"), 2);
    assert_int_equal(append(db, TA, "user.delete"), 3);
}

static void test_chain_and_verify(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    add_tenant(db, TA, "tenant-a");
    add_tenant(db, TB, "tenant-b");
    json_t *changes = json_pack("{s:s,s:i,s:[i,i]}", "name", "Zoë", "quota", 5, "list", 1, 2);
    assert_int_equal(append_full(db, TA, "user.create", "user", "u-1", "actor-1", changes), 1);
    json_decref(changes);
    assert_int_equal(append(db, TB, "user.create"), 1);
    assert_int_equal(append(db, TA, "user.update"), 2);
    assert_int_equal(append(db, TB, "user.delete"), 2);
    assert_int_equal(append(db, TA, "user.delete"), 3);

    ap_audit_verify_t v = verify(db, TA);
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 3);
    assert_int_equal(v.first_bad_sequence, 0);
    v = verify(db, TB);
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 2);
    v = verify(db, "0190a000-0000-7000-8000-0000000000ff"); /* no entries */
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 0);

    /* Each chain starts at genesis and links to its own previous entry,
     * and every hash is the documented SHA-256 of prev ‖ canonical JSON. */
    const char *tenants[] = {TA, TB};
    for (int t = 0; t < 2; t++) {
        int64_t next = -1;
        json_t *arr = list(db, tenants[t], &(ap_audit_filter_t){.limit = 10}, &next);
        assert_int_equal(next, 0);
        assert_int_equal(json_array_size(arr), t == 0 ? 3 : 2);
        const char *prev = AP_AUDIT_GENESIS;
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *e = json_array_get(arr, i);
            assert_int_equal(seq_at(arr, i), (int64_t)i + 1);
            assert_string_equal(json_string_value(json_object_get(e, "tenant_id")), tenants[t]);
            assert_string_equal(json_string_value(json_object_get(e, "prev_hash")), prev);
            char *canon = canonical_of(e);
            char h[AP_SHA256_HEX];
            hash_of(prev, canon, h);
            free(canon);
            assert_string_equal(json_string_value(json_object_get(e, "hash")), h);
            prev = json_string_value(json_object_get(e, "hash"));
        }
        json_decref(arr);
    }

    /* Shape of an entry: every column, changes parsed back into JSON. */
    json_t *arr = list(db, TA, &(ap_audit_filter_t){.limit = 1}, &(int64_t){0});
    json_t *e = json_array_get(arr, 0);
    assert_int_equal(json_object_size(e), 16);
    assert_true(json_is_integer(json_object_get(e, "seq")));
    assert_true(json_is_null(json_object_get(e, "actor_role")));
    assert_string_equal(json_string_value(json_object_get(e, "actor_type")), "user");
    assert_string_equal(json_string_value(json_object_get(e, "client_addr")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(e, "request_id")), "req-1");
    int64_t ms;
    assert_true(ap_time_parse(json_string_value(json_object_get(e, "time")), &ms));
    assert_int_equal(strlen(json_string_value(json_object_get(e, "id"))), 36);
    json_t *ch = json_object_get(e, "changes");
    assert_true(json_is_object(ch));
    assert_string_equal(json_string_value(json_object_get(ch, "name")), "Zoë");
    assert_int_equal(json_integer_value(json_object_get(ch, "quota")), 5);
    json_decref(arr);

    /* Tenants with entries. */
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *ts = NULL;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_audit_tenants(tx, &ts, &err), AP_OK);
    assert_int_equal(json_array_size(ts), 2);
    assert_string_equal(json_string_value(json_array_get(ts, 0)), TA);
    assert_string_equal(json_string_value(json_array_get(ts, 1)), TB);
    json_decref(ts);
    ap_arena_free(a);
    ap_db_close(db);
}

static void test_append_rejects_bad_input(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    add_tenant(db, TA, "tenant-a");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    ap_actor_t actor = {.type = "system", .id = "cli"};
    ap_audit_event_t ev = {.action = NULL, .resource_type = "user", .outcome = "success"};
    assert_int_equal(ap_audit_append(tx, TA, &actor, &ev, NULL, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "action"));
    ev.action = "bad.\xff";
    assert_int_equal(ap_audit_append(tx, TA, &actor, &ev, NULL, &err), AP_ERR_INVALID);
    /* A transaction for one tenant cannot write another tenant's chain. */
    ev.action = "user.create";
    assert_int_equal(ap_audit_append(tx, TB, &actor, &ev, NULL, &err), AP_ERR_INTERNAL);
    ap_audit_verify_t v;
    assert_int_equal(ap_audit_verify(tx, TB, &v, &err), AP_ERR_INTERNAL);
    ap_tx_rollback(tx);
    ap_arena_free(a);
    ap_db_close(db);
}

static void test_triggers_refuse_update_and_delete(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    const char *sqls[] = {
        "UPDATE audit_log SET action = 'forged' WHERE tenant_id = ? AND seq = 2",
        "DELETE FROM audit_log WHERE tenant_id = ? AND seq = 2",
    };
    for (int i = 0; i < 2; i++) {
        ap_err_t err = {0};
        ap_arena_t *a = ap_arena_new(1024);
        ap_tx_t *tx;
        assert_int_equal(ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err), AP_OK);
        assert_int_not_equal(ap_tx_query(tx, sqls[i], (ap_val_t[]){AP_VTEXT(TA)}, 1, NULL, &err),
                             AP_OK);
        assert_int_not_equal(ap_tx_commit(tx, &err), AP_OK);
        ap_arena_free(a);
    }
    ap_audit_verify_t v = verify(db, TA);
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 3);
    ap_db_close(db);
}

static void test_detects_edit(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    disable_triggers(db);
    exec_sql(db, "UPDATE audit_log SET action = 'user.forged' WHERE tenant_id = ? AND seq = 2",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    ap_audit_verify_t v = verify(db, TA);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 2);
    assert_int_equal(v.entries_checked, 1);
    assert_non_null(strstr(v.reason, "hash"));
    v = verify(db, TB); /* the other tenant's chain is untouched */
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 2);
    ap_db_close(db);
}

/* An edit whose author also recomputed the entry's own hash still breaks
 * the link from the next entry. */
static void test_detects_edit_with_rehash(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    disable_triggers(db);
    json_t *arr = list(db, TA, &(ap_audit_filter_t){.limit = 10}, &(int64_t){0});
    json_t *e = json_array_get(arr, 1);
    json_object_set_new(e, "outcome", json_string("failure"));
    char *canon = canonical_of(e);
    char h[AP_SHA256_HEX];
    hash_of(json_string_value(json_object_get(e, "prev_hash")), canon, h);
    free(canon);
    json_decref(arr);
    exec_sql(db,
             "UPDATE audit_log SET outcome = 'failure', hash = ? WHERE tenant_id = ? AND seq = 2",
             (ap_val_t[]){AP_VTEXT(h), AP_VTEXT(TA)}, 2);
    ap_audit_verify_t v = verify(db, TA);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 3);
    assert_non_null(strstr(v.reason, "prev_hash"));
    ap_db_close(db);
}

static void test_detects_delete(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    disable_triggers(db);
    exec_sql(db, "DELETE FROM audit_log WHERE tenant_id = ? AND seq = 2",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    ap_audit_verify_t v = verify(db, TA);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 2);
    assert_int_equal(v.entries_checked, 1);
    assert_non_null(strstr(v.reason, "missing"));

    /* Deleting the first entry: the chain no longer starts at 1. */
    exec_sql(db, "DELETE FROM audit_log WHERE tenant_id = ? AND seq = 1",
             (ap_val_t[]){AP_VTEXT(TB)}, 1);
    v = verify(db, TB);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 1);
    assert_int_equal(v.entries_checked, 0);
    ap_db_close(db);
}

static void test_detects_reorder(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    disable_triggers(db);
    /* Swap entries 2 and 3 in three steps: the primary key is checked per row. */
    exec_sql(db, "UPDATE audit_log SET seq = 1000 WHERE tenant_id = ? AND seq = 2",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    exec_sql(db, "UPDATE audit_log SET seq = 2 WHERE tenant_id = ? AND seq = 3",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    exec_sql(db, "UPDATE audit_log SET seq = 3 WHERE tenant_id = ? AND seq = 1000",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    ap_audit_verify_t v = verify(db, TA);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 2);
    assert_int_equal(v.entries_checked, 1);

    /* Swapping 1 and 2 of the other tenant is caught at 1. */
    exec_sql(db, "UPDATE audit_log SET seq = 1000 WHERE tenant_id = ? AND seq = 1",
             (ap_val_t[]){AP_VTEXT(TB)}, 1);
    exec_sql(db, "UPDATE audit_log SET seq = 1 WHERE tenant_id = ? AND seq = 2",
             (ap_val_t[]){AP_VTEXT(TB)}, 1);
    exec_sql(db, "UPDATE audit_log SET seq = 2 WHERE tenant_id = ? AND seq = 1000",
             (ap_val_t[]){AP_VTEXT(TB)}, 1);
    v = verify(db, TB);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 1);
    assert_int_equal(v.entries_checked, 0);
    ap_db_close(db);
}

/* More than one verify page (1000 entries) in one chain. */
static void test_verify_pages(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    add_tenant(db, TA, "tenant-a");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1 << 16);
    ap_tx_t *tx;
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_audit_event_t ev = {.action = "x.y", .resource_type = "thing", .outcome = "success"};
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    for (int i = 0; i < 2005; i++)
        assert_int_equal(ap_audit_append(tx, TA, &actor, &ev, NULL, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    ap_audit_verify_t v = verify(db, TA);
    assert_true(v.ok);
    assert_int_equal(v.entries_checked, 2005);

    disable_triggers(db);
    exec_sql(db, "DELETE FROM audit_log WHERE tenant_id = ? AND seq = 1500",
             (ap_val_t[]){AP_VTEXT(TA)}, 1);
    v = verify(db, TA);
    assert_false(v.ok);
    assert_int_equal(v.first_bad_sequence, 1500);
    assert_int_equal(v.entries_checked, 1499);
    ap_db_close(db);
}

static void test_list_filters(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    add_tenant(db, TA, "tenant-a");
    add_tenant(db, TB, "tenant-b");
    /* Times strictly increase: each append waits a few milliseconds. */
    struct {
        const char *action, *rtype, *rid, *actor;
    } in[] = {
        {"user.create", "user", "u-1", "alice"},     {"user.update", "user", "u-1", "bob"},
        {"tenant.update", "tenant", TA, "alice"},    {"user_admin.grant", "user", "u-2", "bob"},
        {"userXadmin.grant", "user", "u-2", "alice"}, {"User.login", "user", "u-3", "carol"},
    };
    for (int i = 0; i < 6; i++) {
        assert_int_equal(append_full(db, TA, in[i].action, in[i].rtype, in[i].rid, in[i].actor,
                                     NULL),
                         i + 1);
        usleep(3000);
    }
    append_full(db, TB, "user.create", "user", "u-1", "alice", NULL);

    int64_t next = -1;
    json_t *r = list(db, TA, &(ap_audit_filter_t){.action = "user.*", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 2); /* not "User.login", not "user_admin" */
    assert_int_equal(seq_at(r, 0), 1);
    assert_int_equal(seq_at(r, 1), 2);
    assert_int_equal(next, 0);
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.action = "user_*", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 1); /* '_' is literal */
    assert_int_equal(seq_at(r, 0), 4);
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.action = "user.update", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 1);
    assert_int_equal(seq_at(r, 0), 2);
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.action = "user", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 0); /* exact without '*' */
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.action = "*", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 6);
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.actor_id = "alice", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 3);
    assert_int_equal(seq_at(r, 0), 1);
    assert_int_equal(seq_at(r, 1), 3);
    assert_int_equal(seq_at(r, 2), 5);
    json_decref(r);

    r = list(db, TA, &(ap_audit_filter_t){.resource_type = "tenant", .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 1);
    assert_int_equal(seq_at(r, 0), 3);
    json_decref(r);

    r = list(db, TA,
             &(ap_audit_filter_t){.resource_type = "user", .resource_id = "u-2", .limit = 50},
             &next);
    assert_int_equal(json_array_size(r), 2);
    assert_int_equal(seq_at(r, 0), 4);
    assert_int_equal(seq_at(r, 1), 5);
    json_decref(r);

    /* Time range: since inclusive, until exclusive. */
    json_t *all = list(db, TA, &(ap_audit_filter_t){.limit = 50}, &next);
    char since[AP_TIME_LEN], until[AP_TIME_LEN];
    snprintf(since, sizeof since, "%s",
             json_string_value(json_object_get(json_array_get(all, 2), "time")));
    snprintf(until, sizeof until, "%s",
             json_string_value(json_object_get(json_array_get(all, 4), "time")));
    json_decref(all);
    r = list(db, TA, &(ap_audit_filter_t){.since = since, .until = until, .limit = 50}, &next);
    assert_int_equal(json_array_size(r), 2);
    assert_int_equal(seq_at(r, 0), 3);
    assert_int_equal(seq_at(r, 1), 4);
    json_decref(r);
    r = list(db, TA, &(ap_audit_filter_t){.since = until, .actor_id = "alice", .limit = 50},
             &next);
    assert_int_equal(json_array_size(r), 1);
    assert_int_equal(seq_at(r, 0), 5);
    json_decref(r);

    /* Cursor paging. */
    r = list(db, TA, &(ap_audit_filter_t){.limit = 2}, &next);
    assert_int_equal(json_array_size(r), 2);
    assert_int_equal(seq_at(r, 0), 1);
    assert_int_equal(next, 2);
    json_decref(r);
    r = list(db, TA, &(ap_audit_filter_t){.limit = 2, .after_seq = next}, &next);
    assert_int_equal(seq_at(r, 0), 3);
    assert_int_equal(next, 4);
    json_decref(r);
    r = list(db, TA, &(ap_audit_filter_t){.limit = 2, .after_seq = next}, &next);
    assert_int_equal(json_array_size(r), 2);
    assert_int_equal(seq_at(r, 0), 5);
    assert_int_equal(next, 0);
    json_decref(r);
    r = list(db, TA, &(ap_audit_filter_t){.action = "user*", .limit = 1, .after_seq = 1},
             &next);
    assert_int_equal(seq_at(r, 0), 2);
    assert_int_equal(next, 2);
    json_decref(r);

    /* Bad filters. */
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_audit_list(tx, TA, &(ap_audit_filter_t){.limit = 501}, &out, &next, &err),
                     AP_ERR_INVALID);
    assert_int_equal(
        ap_audit_list(tx, TA, &(ap_audit_filter_t){.since = "yesterday", .limit = 5}, &out,
                      &next, &err),
        AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "yesterday"));
    assert_null(out);
    ap_arena_free(a);
    ap_db_close(db);
}

static int count_lines(FILE *f, const char *first_tenant, const char *last_tenant) {
    rewind(f);
    char line[8192];
    int n = 0;
    char prev_key[128] = "";
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) fail_msg("line %d is not JSON: %s", n + 1, je.text);
        const char *t = json_string_value(json_object_get(o, "tenant_id"));
        if (n == 0 && first_tenant) assert_string_equal(t, first_tenant);
        if (last_tenant && strcmp(t, last_tenant) == 0) last_tenant = NULL;
        char key[128];
        snprintf(key, sizeof key, "%s/%06lld", t,
                 (long long)json_integer_value(json_object_get(o, "seq")));
        assert_true(strcmp(prev_key, key) < 0); /* tenant, then seq order */
        memcpy(prev_key, key, sizeof key);
        assert_int_equal(json_object_size(o), 16);
        json_decref(o);
        n++;
    }
    assert_null(last_tenant); /* was seen */
    return n;
}

static void test_export(void **state) {
    (void)state;
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    int64_t count = -1;
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_audit_export_jsonl(tx, NULL, f, &count, &err), AP_OK);
    assert_int_equal(count, 5);
    assert_int_equal(count_lines(f, TA, TB), 5);
    fclose(f);

    f = tmpfile();
    assert_int_equal(ap_audit_export_jsonl(tx, TB, f, &count, &err), AP_OK);
    assert_int_equal(count, 2);
    assert_int_equal(count_lines(f, TB, TB), 2);
    fclose(f);
    ap_arena_free(a);
    ap_db_close(db);
}

/* PostgreSQL only: a transaction for tenant A sees only A's entries even
 * without a WHERE clause. */
static void test_rls_scopes_reads(void **state) {
    (void)state;
    if (!is_pg()) skip();
    ap_db_t *db = open_db();
    seed_two_tenants(db);
    const char *tenants[] = {TA, TB, NULL};
    const char *want[] = {"3", "2", "5"};
    for (int i = 0; i < 3; i++) {
        ap_err_t err = {0};
        ap_arena_t *a = ap_arena_new(1024);
        ap_tx_t *tx;
        ap_rows_t r;
        assert_int_equal(ap_db_begin(db, tenants[i], AP_TX_READ, a, &tx, &err), AP_OK);
        assert_int_equal(
            ap_tx_query(tx, "SELECT COUNT(*) AS n FROM audit_log", NULL, 0, &r, &err), AP_OK);
        assert_string_equal(ap_rows_get(&r, 0, "n"), want[i]);
        json_t *ts = NULL;
        assert_int_equal(ap_audit_tenants(tx, &ts, &err), AP_OK);
        assert_int_equal(json_array_size(ts), tenants[i] ? 1 : 2);
        json_decref(ts);
        ap_arena_free(a);
    }
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_and_verify),
        cmocka_unit_test(test_append_rejects_bad_input),
        cmocka_unit_test(test_triggers_refuse_update_and_delete),
        cmocka_unit_test(test_detects_edit),
        cmocka_unit_test(test_detects_edit_with_rehash),
        cmocka_unit_test(test_detects_delete),
        cmocka_unit_test(test_detects_reorder),
        cmocka_unit_test(test_verify_pages),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_rls_scopes_reads),
    };
    TU_RUN_BACKENDS(tests);
}
