/*
 * identity_test.c - API keys, users and the permission matrix, on every
 * backend.
 *
 * 1. Keys are checked from the outside: the format of a generated key, what
 *    lands in the database (every column of every row is scanned for the
 *    plaintext), and what authentication answers for each way a key can be
 *    wrong.
 * 2. The permission matrix is restated here row by row from policy.c's
 *    header comment, so a change to the matrix must change this test too.
 */
#include "testutil.h"

#include <sodium.h>

#include <jansson.h>

#include "core/id.h"
#include "core/json.h"
#include "core/time.h"
#include "identity/apikey.h"
#include "identity/user.h"
#include "policy/policy.h"

#define TA "0190a000-0000-7000-8000-00000000000a"
#define TB "0190a000-0000-7000-8000-00000000000b"

static const ap_actor_t actor = {.type = "system", .id = "test", .role = "platform_admin",
                                 .request_id = "req-1", .client_addr = "127.0.0.1"};

static ap_db_t *open_two_tenants(void) {
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    tu_add_tenant(db, TB, "tenant-b");
    return db;
}

/* ---- keys: format ------------------------------------------------------ */

static bool b64url_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void test_apikey_generate_format(void **state) {
    (void)state;
    enum { N = 300 };
    static char keys[N][80];
    int seen[43][128] = {{0}};
    for (int i = 0; i < N; i++) {
        char *key = keys[i], lookup[17], hash[AP_SHA256_HEX];
        memset(key, 'x', 80);
        ap_apikey_generate(key, lookup, hash);
        assert_int_equal(strlen(key), 4 + 16 + 1 + 43);
        assert_memory_equal(key, "apk_", 4);
        assert_int_equal(key[20], '_');
        for (int k = 4; k < 64; k++)
            if (k != 20 && !b64url_char(key[k])) fail_msg("key char %d is '%c'", k, key[k]);
        /* the lookup id is the 16 chars after the prefix */
        assert_int_equal(strlen(lookup), 16);
        assert_memory_equal(lookup, key + 4, 16);
        /* the stored hash is SHA-256 of the whole key, lowercase hex */
        char want[AP_SHA256_HEX];
        ap_sha256_hex(key, strlen(key), want);
        assert_string_equal(hash, want);
        for (int k = 0; k < 64; k++) assert_non_null(strchr("0123456789abcdef", hash[k]));
        /* the secret decodes to 32 bytes: 256 bits */
        unsigned char bin[64];
        size_t binlen = 0;
        assert_int_equal(sodium_base642bin(bin, sizeof bin, key + 21, 43, NULL, &binlen, NULL,
                                           sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                         0);
        assert_int_equal(binlen, 32);
        for (int k = 0; k < 43; k++) seen[k][(unsigned char)key[21 + k]]++;
    }
    /* No repeats, and every secret position varies (it is random, not a
     * counter or a timestamp). */
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            assert_memory_not_equal(keys[i] + 4, keys[j] + 4, 16);
            assert_memory_not_equal(keys[i] + 21, keys[j] + 21, 43);
        }
    for (int k = 0; k < 42; k++) {
        int distinct = 0;
        for (int c = 0; c < 128; c++) distinct += seen[k][c] > 0;
        if (distinct < 20) fail_msg("secret position %d took only %d values", k, distinct);
    }
}

/* ---- keys: create and authenticate -------------------------------------- */

static json_t *create_key(ap_db_t *db, const char *tenant, ap_role granter,
                          const ap_apikey_spec_t *spec, ap_rc want, ap_err_t *err_out) {
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err), AP_OK);
    ap_rc rc = ap_apikey_create(tx, tenant, &actor, granter, spec, &out, &err);
    if (rc != want) fail_msg("create key: rc %s, want %s: %s %s", ap_rc_name(rc),
                             ap_rc_name(want), err.msg, err.detail);
    if (!rc) assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    if (err_out) *err_out = err;
    ap_arena_free(a);
    return out;
}

static const char *key_of(json_t *k) {
    return json_string_value(json_object_get(k, "key"));
}

static ap_rc auth(ap_db_t *db, const char *token, ap_principal_t *p, ap_err_t *err,
                  ap_arena_t *a) {
    memset(p, 0, sizeof *p);
    return ap_apikey_authenticate(db, a, token, p, err);
}

static void expect_unauth(ap_db_t *db, const char *token, const char *detail_part) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_principal_t p;
    ap_err_t err = {0};
    ap_rc rc = auth(db, token, &p, &err, a);
    if (rc != AP_ERR_UNAUTH) fail_msg("\"%s\": rc %s, want unauthenticated", token,
                                      ap_rc_name(rc));
    assert_string_equal(err.type, "unauthenticated");
    if (detail_part && !strstr(err.detail, detail_part))
        fail_msg("\"%s\": detail \"%s\" lacks \"%s\"", token, err.detail, detail_part);
    ap_arena_free(a);
}

static char *user_id_of(json_t *u) {
    return strdup(json_string_value(json_object_get(u, "id")));
}

static json_t *create_user(ap_db_t *db, const char *tenant, ap_role granter, const char *body,
                           ap_rc want, ap_err_t *err_out) {
    ap_err_t err = {0};
    json_t *in;
    if (ap_json_parse_object(body, strlen(body), &in, &err) ||
        ap_json_check(in, ap_user_create_fields, &err))
        fail_msg("bad test body %s: %s", body, err.detail);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err), AP_OK);
    ap_rc rc = ap_user_create(tx, tenant, &actor, granter, in, &out, &err);
    if (rc != want) fail_msg("create user %s: rc %s, want %s: %s", body, ap_rc_name(rc),
                             ap_rc_name(want), err.detail);
    if (!rc) assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    if (err_out) *err_out = err;
    ap_arena_free(a);
    json_decref(in);
    return out;
}

static json_t *update_user(ap_db_t *db, const char *tenant, ap_role granter, const char *id,
                           const char *body, ap_rc want, ap_err_t *err_out) {
    ap_err_t err = {0};
    json_t *in;
    if (ap_json_parse_object(body, strlen(body), &in, &err) ||
        ap_json_check(in, ap_user_update_fields, &err))
        fail_msg("bad test body %s: %s", body, err.detail);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, tenant, AP_TX_WRITE, a, &tx, &err), AP_OK);
    ap_rc rc = ap_user_update(tx, tenant, &actor, granter, id, in, &out, &err);
    if (rc != want) fail_msg("update user %s: rc %s, want %s: %s", body, ap_rc_name(rc),
                             ap_rc_name(want), err.detail);
    if (!rc) assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    if (err_out) *err_out = err;
    ap_arena_free(a);
    json_decref(in);
    return out;
}

static void test_apikey_plaintext_never_stored(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    json_t *u = create_user(db, TA, AP_ROLE_TENANT_ADMIN,
                            "{\"email\":\"ops@a.example\",\"role\":\"operator\"}", AP_OK, NULL);
    char *uid = user_id_of(u);
    json_t *keys[3];
    keys[0] = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                         &(ap_apikey_spec_t){.name = "svc", .role = "auditor"}, AP_OK, NULL);
    keys[1] = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                         &(ap_apikey_spec_t){.name = "mine", .user_id = uid}, AP_OK, NULL);
    keys[2] = create_key(db, TB, AP_ROLE_PLATFORM_ADMIN,
                         &(ap_apikey_spec_t){.name = "b", .role = "tenant_admin",
                                             .expires_at = "2099-01-01T00:00:00+01:00"},
                         AP_OK, NULL);
    /* The create result: metadata plus the key, once; no hash. */
    json_t *k0 = keys[0];
    assert_non_null(key_of(k0));
    assert_null(json_object_get(k0, "key_hash"));
    assert_string_equal(json_string_value(json_object_get(k0, "role")), "auditor");
    assert_string_equal(json_string_value(json_object_get(k0, "tenant_id")), TA);
    assert_true(json_is_null(json_object_get(k0, "user_id")));
    assert_string_equal(json_string_value(json_object_get(keys[1], "role")), "operator");
    assert_string_equal(json_string_value(json_object_get(keys[2], "expires_at")),
                        "2098-12-31T23:00:00.000Z");
    assert_true(ap_uuid_valid(json_string_value(json_object_get(k0, "id"))));

    /* Scan every column of every row of api_keys and audit_log. */
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t r;
    assert_int_equal(ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err), AP_OK);
    const char *tables[] = {"SELECT * FROM api_keys", "SELECT * FROM audit_log",
                            "SELECT * FROM users"};
    for (int t = 0; t < 3; t++) {
        assert_int_equal(ap_tx_query(tx, tables[t], NULL, 0, &r, &err), AP_OK);
        if (t == 0) {
            assert_int_equal(r.nrows, 3);
            assert_true(r.ncols >= 12);
        }
        for (int row = 0; row < r.nrows; row++)
            for (int c = 0; c < r.ncols; c++) {
                const char *v = ap_rows_at(&r, row, c);
                if (!v) continue;
                for (int k = 0; k < 3; k++) {
                    const char *key = key_of(keys[k]);
                    if (strstr(v, key) || strstr(v, key + 21))
                        fail_msg("%s: column %s holds key %d's secret", tables[t], r.cols[c], k);
                }
            }
    }
    /* What is stored: the lookup id and SHA-256 hex of the whole key. */
    assert_int_equal(ap_tx_query(tx, "SELECT id, prefix, key_hash FROM api_keys", NULL, 0, &r,
                                 &err),
                     AP_OK);
    for (int row = 0; row < r.nrows; row++) {
        const char *id = ap_rows_get(&r, row, "id");
        json_t *k = NULL;
        for (int i = 0; i < 3; i++)
            if (strcmp(json_string_value(json_object_get(keys[i], "id")), id) == 0) k = keys[i];
        assert_non_null(k);
        char want[AP_SHA256_HEX];
        ap_sha256_hex(key_of(k), strlen(key_of(k)), want);
        assert_string_equal(ap_rows_get(&r, row, "key_hash"), want);
        assert_memory_equal(ap_rows_get(&r, row, "prefix"), key_of(k) + 4, 16);
        assert_int_equal(strlen(ap_rows_get(&r, row, "prefix")), 16);
    }
    ap_arena_free(a);
    for (int i = 0; i < 3; i++) json_decref(keys[i]);
    json_decref(u);
    free(uid);
    ap_db_close(db);
}

static void test_apikey_authenticate(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    json_t *svc = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                             &(ap_apikey_spec_t){.name = "svc", .role = "operator"}, AP_OK, NULL);
    json_t *u = create_user(db, TB, AP_ROLE_PLATFORM_ADMIN,
                            "{\"email\":\"boss@b.example\",\"role\":\"tenant_admin\"}", AP_OK,
                            NULL);
    char *uid = user_id_of(u);
    json_t *mine = create_key(db, TB, AP_ROLE_PLATFORM_ADMIN,
                              &(ap_apikey_spec_t){.name = "mine", .user_id = uid}, AP_OK, NULL);

    ap_arena_t *a = ap_arena_new(1024);
    ap_principal_t p;
    ap_err_t err = {0};
    assert_int_equal(auth(db, key_of(svc), &p, &err, a), AP_OK);
    assert_string_equal(p.tenant_id, TA);
    assert_int_equal(p.role, AP_ROLE_OPERATOR);
    assert_null(p.user_id);
    assert_string_equal(p.name, "svc");
    assert_string_equal(p.key_id, json_string_value(json_object_get(svc, "id")));
    assert_string_equal(p.tenant_status, "active");

    assert_int_equal(auth(db, key_of(mine), &p, &err, a), AP_OK);
    assert_string_equal(p.tenant_id, TB);
    assert_int_equal(p.role, AP_ROLE_TENANT_ADMIN);
    assert_string_equal(p.user_id, uid);
    ap_arena_free(a);

    /* last_used_at is recorded on use */
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM api_keys WHERE last_used_at IS NOT NULL",
                              NULL, 0),
                     2);

    /* The right lookup id with a wrong secret: unauthenticated, and the
     * answer says no more than for an unknown key. */
    char bad[80];
    snprintf(bad, sizeof bad, "%s", key_of(svc));
    bad[40] = bad[40] == 'A' ? 'B' : 'A';
    expect_unauth(db, bad, "no such key");
    snprintf(bad, sizeof bad, "%s", key_of(svc));
    bad[63] = bad[63] == 'A' ? 'B' : 'A'; /* the last character counts too */
    expect_unauth(db, bad, "no such key");
    /* Right secret, other lookup id. */
    snprintf(bad, sizeof bad, "%s", key_of(svc));
    memcpy(bad + 4, key_of(mine) + 4, 16);
    expect_unauth(db, bad, "no such key");
    /* A well-formed key nobody issued. */
    char fresh[80], lookup[17], hash[AP_SHA256_HEX];
    ap_apikey_generate(fresh, lookup, hash);
    expect_unauth(db, fresh, "no such key");

    /* Malformed strings never reach the database. */
    const char *malformed[] = {
        "",
        "apk_",
        "Bearer apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "apx_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "APK_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 63 */
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 65 */
        "apk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* no '_' at 20 */
        "apk_AAAAAAAAAAAAAAA+_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAA",
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAA'AAAAAAAAAAAAAA",
        "apk_AAAAAAAA%AAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++)
        expect_unauth(db, malformed[i], "malformed");
    char with_space[80];
    snprintf(with_space, sizeof with_space, " %.63s", key_of(svc));
    expect_unauth(db, with_space, "malformed");

    /* Revoked. */
    a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *out = NULL;
    const char *svc_id = json_string_value(json_object_get(svc, "id"));
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_apikey_revoke(tx, TA, &actor, svc_id, &out, &err), AP_OK);
    assert_false(json_is_null(json_object_get(out, "revoked_at")));
    json_decref(out);
    /* Another tenant cannot revoke it (and learns nothing). */
    assert_int_equal(ap_apikey_revoke(tx, TB, &actor, svc_id, &out, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    expect_unauth(db, key_of(svc), "revoked");
    expect_unauth(db, bad, "no such key"); /* wrong secret still says nothing more */
    /* The user's key is unaffected. */
    a = ap_arena_new(1024);
    assert_int_equal(auth(db, key_of(mine), &p, &err, a), AP_OK);
    ap_arena_free(a);

    json_decref(svc);
    json_decref(mine);
    json_decref(u);
    free(uid);
    ap_db_close(db);
}

static void test_apikey_expired(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    json_t *old = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                             &(ap_apikey_spec_t){.name = "old", .role = "viewer",
                                                 .expires_at = "2020-01-01T00:00:00Z"},
                             AP_OK, NULL);
    expect_unauth(db, key_of(old), "expired");
    /* A key that expires a second from now works now, not later. */
    char soon[AP_TIME_LEN];
    ap_time_format(ap_now_ms() + 1000, soon);
    json_t *k = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                           &(ap_apikey_spec_t){.name = "soon", .role = "viewer",
                                               .expires_at = soon},
                           AP_OK, NULL);
    ap_arena_t *a = ap_arena_new(1024);
    ap_principal_t p;
    ap_err_t err = {0};
    assert_int_equal(auth(db, key_of(k), &p, &err, a), AP_OK);
    ap_arena_free(a);
    usleep(1100000);
    expect_unauth(db, key_of(k), "expired");
    /* An expiry that is not a timestamp is refused at creation. */
    create_key(db, TA, AP_ROLE_TENANT_ADMIN,
               &(ap_apikey_spec_t){.name = "x", .role = "viewer", .expires_at = "tomorrow"},
               AP_ERR_INVALID, &err);
    assert_non_null(strstr(err.detail, "tomorrow"));
    json_decref(old);
    json_decref(k);
    ap_db_close(db);
}

/* Bug: an expires_at that did not parse was treated as "never expires";
 * a damaged row must lock the key out, not open it up. */
static void test_apikey_unparsable_expiry_fails_closed(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    json_t *k = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                           &(ap_apikey_spec_t){.name = "k", .role = "viewer",
                                               .expires_at = "2099-01-01T00:00:00Z"},
                           AP_OK, NULL);
    tu_exec(db, NULL, "UPDATE api_keys SET expires_at = 'never'", NULL, 0);
    expect_unauth(db, key_of(k), "expired");
    json_decref(k);
    ap_db_close(db);
}

static void test_apikey_create_rules(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_t *u = create_user(db, TA, AP_ROLE_TENANT_ADMIN,
                            "{\"email\":\"aud@a.example\",\"role\":\"auditor\"}", AP_OK, NULL);
    char *uid = user_id_of(u);
    /* A user key takes the user's role, or viewer; nothing else. */
    json_t *k = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                           &(ap_apikey_spec_t){.name = "v", .user_id = uid, .role = "viewer"},
                           AP_OK, NULL);
    assert_string_equal(json_string_value(json_object_get(k, "role")), "viewer");
    json_decref(k);
    create_key(db, TA, AP_ROLE_TENANT_ADMIN,
               &(ap_apikey_spec_t){.name = "up", .user_id = uid, .role = "tenant_admin"},
               AP_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "exceeds"));
    create_key(db, TA, AP_ROLE_TENANT_ADMIN,
               &(ap_apikey_spec_t){.name = "side", .user_id = uid, .role = "operator"},
               AP_ERR_INVALID, NULL);
    /* A user of another tenant is not found. */
    create_key(db, TB, AP_ROLE_PLATFORM_ADMIN,
               &(ap_apikey_spec_t){.name = "x", .user_id = uid}, AP_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "user not found"));
    /* A service key needs a role. */
    create_key(db, TA, AP_ROLE_TENANT_ADMIN, &(ap_apikey_spec_t){.name = "x"}, AP_ERR_INVALID,
               &err);
    assert_string_equal(err.type, "missing-field");
    /* Granting: tenant_admin cannot mint platform_admin, nor can lesser
     * roles mint anything; platform_admin only lives in the platform. */
    create_key(db, AP_NIL_UUID, AP_ROLE_TENANT_ADMIN,
               &(ap_apikey_spec_t){.name = "x", .role = "platform_admin"}, AP_ERR_DENIED, NULL);
    create_key(db, TA, AP_ROLE_PLATFORM_ADMIN,
               &(ap_apikey_spec_t){.name = "x", .role = "platform_admin"}, AP_ERR_INVALID, NULL);
    create_key(db, AP_NIL_UUID, AP_ROLE_PLATFORM_ADMIN,
               &(ap_apikey_spec_t){.name = "x", .role = "tenant_admin"}, AP_ERR_INVALID, NULL);
    create_key(db, TA, AP_ROLE_OPERATOR, &(ap_apikey_spec_t){.name = "x", .role = "viewer"},
               AP_ERR_DENIED, NULL);
    create_key(db, TA, AP_ROLE_VIEWER, &(ap_apikey_spec_t){.name = "x", .role = "viewer"},
               AP_ERR_DENIED, NULL);
    k = create_key(db, AP_NIL_UUID, AP_ROLE_PLATFORM_ADMIN,
                   &(ap_apikey_spec_t){.name = "root", .role = "platform_admin"}, AP_OK, NULL);
    json_decref(k);
    /* A disabled user gets no new key. */
    json_decref(update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"status\":\"disabled\"}", AP_OK,
                            NULL));
    create_key(db, TA, AP_ROLE_TENANT_ADMIN, &(ap_apikey_spec_t){.name = "x", .user_id = uid},
               AP_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "disabled"));
    /* list and get see only the tenant's own keys */
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *arr = NULL;
    const char *next = "unset";
    assert_int_equal(ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_apikey_list(tx, TA, NULL, 10, &arr, &next, &err), AP_OK);
    assert_int_equal(json_array_size(arr), 1);
    assert_null(next);
    assert_null(json_object_get(json_array_get(arr, 0), "key_hash"));
    assert_null(json_object_get(json_array_get(arr, 0), "key"));
    const char *kid = json_string_value(json_object_get(json_array_get(arr, 0), "id"));
    json_t *one = NULL;
    assert_int_equal(ap_apikey_get(tx, TA, kid, &one, &err), AP_OK);
    assert_null(json_object_get(one, "key_hash"));
    json_decref(one);
    assert_int_equal(ap_apikey_get(tx, TB, kid, &one, &err), AP_ERR_NOT_FOUND);
    json_decref(arr);
    ap_arena_free(a);
    json_decref(u);
    free(uid);
    ap_db_close(db);
}

/* ---- users ------------------------------------------------------------- */

static void test_user_email_rules(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_t *u = create_user(db, TA, AP_ROLE_TENANT_ADMIN,
                            "{\"email\":\"Ann.Lee@Example.COM\",\"role\":\"viewer\"}", AP_OK, NULL);
    assert_string_equal(json_string_value(json_object_get(u, "email")), "ann.lee@example.com");
    assert_string_equal(json_string_value(json_object_get(u, "display_name")),
                        "ann.lee@example.com");
    assert_string_equal(json_string_value(json_object_get(u, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(u, "role")), "viewer");
    assert_string_equal(json_string_value(json_object_get(u, "tenant_id")), TA);
    json_decref(u);
    /* the same address in any case is the same user */
    create_user(db, TA, AP_ROLE_TENANT_ADMIN,
                "{\"email\":\"ANN.LEE@example.com\",\"role\":\"operator\"}", AP_ERR_CONFLICT, &err);
    assert_non_null(strstr(err.detail, "ann.lee@example.com"));
    /* ... but another tenant may have it */
    u = create_user(db, TB, AP_ROLE_PLATFORM_ADMIN,
                    "{\"email\":\"ann.lee@example.com\",\"role\":\"auditor\"}", AP_OK, NULL);
    json_decref(u);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM users WHERE email = 'ann.lee@example.com'",
                              NULL, 0),
                     2);
    /* A conflict leaves the transaction usable: the next create commits. */
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *in = json_pack("{s:s,s:s}", "email", "ann.lee@example.com", "role", "viewer");
    json_t *in2 = json_pack("{s:s,s:s}", "email", "bob@example.com", "role", "viewer");
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_user_create(tx, TA, &actor, AP_ROLE_TENANT_ADMIN, in, &out, &err),
                     AP_ERR_CONFLICT);
    assert_int_equal(ap_user_create(tx, TA, &actor, AP_ROLE_TENANT_ADMIN, in2, &out, &err), AP_OK);
    json_decref(out);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    ap_arena_free(a);
    json_decref(in);
    json_decref(in2);
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM users WHERE tenant_id = ?",
                              (ap_val_t[]){AP_VTEXT(TA)}, 1),
                     2);
    /* invalid addresses */
    const char *bad[] = {"",        "plain",       "@example.com", "ann@",
                         "ann@host", "a@b@example.com", "ann lee@example.com",
                         "ann@.example.com", "ann@example.com.", "ann@exa\\tmple.com",
                         "ann@example.com\\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"viewer\"}", bad[i]);
        create_user(db, TA, AP_ROLE_TENANT_ADMIN, body, AP_ERR_INVALID, &err);
        assert_string_equal(err.msg, "invalid email");
    }
    /* roles: platform_admin lives only in the platform; granters obey
     * ap_policy_may_grant */
    create_user(db, TA, AP_ROLE_PLATFORM_ADMIN,
                "{\"email\":\"p@example.com\",\"role\":\"platform_admin\"}", AP_ERR_INVALID, NULL);
    create_user(db, AP_NIL_UUID, AP_ROLE_TENANT_ADMIN,
                "{\"email\":\"p@example.com\",\"role\":\"platform_admin\"}", AP_ERR_DENIED, NULL);
    create_user(db, TA, AP_ROLE_OPERATOR, "{\"email\":\"o@example.com\",\"role\":\"viewer\"}",
                AP_ERR_DENIED, NULL);
    u = create_user(db, AP_NIL_UUID, AP_ROLE_PLATFORM_ADMIN,
                    "{\"email\":\"p@example.com\",\"role\":\"platform_admin\"}", AP_OK, NULL);
    json_decref(u);
    /* every successful create was audited in its tenant's chain */
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create'",
                              NULL, 0),
                     4);
    ap_db_close(db);
}

static const char *key_role(ap_db_t *db, ap_arena_t *a, json_t *k) {
    ap_principal_t p;
    ap_err_t err = {0};
    if (auth(db, key_of(k), &p, &err, a)) return NULL;
    return ap_role_name(p.role);
}

static void test_user_role_change_propagates_to_keys(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    ap_err_t err = {0};
    json_t *u = create_user(db, TA, AP_ROLE_TENANT_ADMIN,
                            "{\"email\":\"lead@a.example\",\"role\":\"tenant_admin\"}", AP_OK,
                            NULL);
    char *uid = user_id_of(u);
    json_t *full = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                              &(ap_apikey_spec_t){.name = "full", .user_id = uid}, AP_OK, NULL);
    json_t *view = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                              &(ap_apikey_spec_t){.name = "view", .user_id = uid,
                                                  .role = "viewer"},
                              AP_OK, NULL);
    json_t *svc = create_key(db, TA, AP_ROLE_TENANT_ADMIN,
                             &(ap_apikey_spec_t){.name = "svc", .role = "tenant_admin"}, AP_OK,
                             NULL);
    ap_arena_t *a = ap_arena_new(1024);
    assert_string_equal(key_role(db, a, full), "tenant_admin");

    /* Demotion: the user's full key follows; a viewer key stays viewer;
     * other keys are untouched. */
    json_t *out = update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"role\":\"auditor\"}", AP_OK,
                              NULL);
    assert_string_equal(json_string_value(json_object_get(out, "role")), "auditor");
    json_decref(out);
    assert_string_equal(key_role(db, a, full), "auditor");
    assert_string_equal(key_role(db, a, view), "viewer");
    assert_string_equal(key_role(db, a, svc), "tenant_admin");
    /* No key of the user exceeds the user. */
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND role NOT IN"
                              " ('auditor', 'viewer')",
                              (ap_val_t[]){AP_VTEXT(uid)}, 1),
                     0);
    /* Down to viewer: everything of the user is viewer. */
    json_decref(update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"role\":\"viewer\"}", AP_OK,
                            NULL));
    assert_string_equal(key_role(db, a, full), "viewer");
    /* A display-name change leaves keys alone. */
    json_decref(update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"display_name\":\"Lead\"}",
                            AP_OK, NULL));
    assert_string_equal(key_role(db, a, full), "viewer");

    /* Disabling the user stops its keys; enabling brings them back. */
    json_decref(update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"status\":\"disabled\"}", AP_OK,
                            NULL));
    expect_unauth(db, key_of(full), "disabled");
    expect_unauth(db, key_of(view), "disabled");
    assert_string_equal(key_role(db, a, svc), "tenant_admin");
    json_decref(update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"status\":\"active\"}", AP_OK,
                            NULL));
    assert_string_equal(key_role(db, a, full), "viewer");

    /* Who may change whom. */
    update_user(db, TA, AP_ROLE_TENANT_ADMIN, uid, "{\"role\":\"platform_admin\"}",
                AP_ERR_INVALID, NULL);
    update_user(db, TA, AP_ROLE_OPERATOR, uid, "{\"role\":\"viewer\"}", AP_ERR_DENIED, NULL);
    update_user(db, TB, AP_ROLE_PLATFORM_ADMIN, uid, "{\"role\":\"viewer\"}", AP_ERR_NOT_FOUND,
                &err);
    /* A refused update changed nothing. */
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM users WHERE id = ? AND role = 'viewer'",
                              (ap_val_t[]){AP_VTEXT(uid)}, 1),
                     1);

    /* Deleting the user deletes its keys, and says how many. */
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_user_delete(tx, TA, &actor, uid, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    expect_unauth(db, key_of(full), "no such key");
    assert_string_equal(key_role(db, a, svc), "tenant_admin");
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM audit_log WHERE action = 'user.delete' AND"
                              " changes LIKE '%\"keys_deleted\":2%'",
                              NULL, 0),
                     1);
    assert_int_equal(ap_db_begin(db, TA, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_user_delete(tx, TA, &actor, uid, &err), AP_ERR_NOT_FOUND);
    ap_tx_rollback(tx);
    ap_arena_free(a);
    json_decref(full);
    json_decref(view);
    json_decref(svc);
    json_decref(u);
    free(uid);
    ap_db_close(db);
}

static void test_user_list_pages(void **state) {
    (void)state;
    ap_db_t *db = open_two_tenants();
    for (int i = 0; i < 5; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"email\":\"u%d@a.example\",\"role\":\"viewer\"}", i);
        json_decref(create_user(db, TA, AP_ROLE_TENANT_ADMIN, body, AP_OK, NULL));
    }
    json_decref(create_user(db, TB, AP_ROLE_PLATFORM_ADMIN,
                            "{\"email\":\"other@b.example\",\"role\":\"viewer\"}", AP_OK, NULL));
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    assert_int_equal(ap_db_begin(db, TA, AP_TX_READ, a, &tx, &err), AP_OK);
    const char *cursor = NULL;
    int seen = 0, pages = 0;
    char last[AP_UUID_LEN] = "";
    do {
        json_t *arr = NULL;
        const char *next = NULL;
        assert_int_equal(ap_user_list(tx, TA, cursor, 2, &arr, &next, &err), AP_OK);
        assert_true(json_array_size(arr) <= 2);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *u = json_array_get(arr, i);
            const char *id = json_string_value(json_object_get(u, "id"));
            assert_string_equal(json_string_value(json_object_get(u, "tenant_id")), TA);
            assert_true(strcmp(last, id) < 0); /* ascending, no repeats */
            snprintf(last, sizeof last, "%s", id);
            seen++;
        }
        json_decref(arr);
        cursor = next;
        pages++;
    } while (cursor && pages < 10);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 3);
    json_t *one = NULL;
    assert_int_equal(ap_user_get(tx, TA, last, &one, &err), AP_OK);
    json_decref(one);
    assert_int_equal(ap_user_get(tx, TB, last, &one, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_user_get(tx, TA, AP_NIL_UUID, &one, &err), AP_ERR_NOT_FOUND);
    ap_arena_free(a);
    ap_db_close(db);
}

/* ---- policy ------------------------------------------------------------ */

static void test_policy_matrix(void **state) {
    (void)state;
    /* rows as documented in policy.c: viewer reads; operator runs work and
     * reads; auditor reads the audit log; project_admin defines agents and
     * teams and approves tasks; tenant_admin manages its users, keys and
     * MCP servers; platform_admin all. */
    static const struct {
        ap_role role;
        bool allow[AP_PERM_COUNT];
    } rows[] = {
        /* none  t.rd  t.adm u.rd  u.wr  k.rd  k.wr  audit llm.rd llm.cat llm.prov llm.inv llm.cfg ag.rd ag.wr tk.rd tk.wr tk.ap mem.rd mem.wr mcp mcp.srv */
        {AP_ROLE_VIEWER, {true, true, false, true, false, false, false, false, true, false, false, false, false, true, false, true, false, false, true, false, false, false}},
        {AP_ROLE_AUDITOR, {true, true, false, true, false, false, false, true, true, false, false, false, false, false, false, true, false, false, false, false, false, false}},
        {AP_ROLE_OPERATOR, {true, true, false, true, false, false, false, false, true, false, false, true, false, true, false, true, true, false, true, true, true, false}},
        {AP_ROLE_PROJECT_ADMIN, {true, true, false, true, false, false, false, false, true, false, false, true, false, true, true, true, true, true, true, true, true, false}},
        {AP_ROLE_TENANT_ADMIN, {true, true, false, true, true, true, true, true, true, false, true, true, true, true, true, true, true, true, true, true, true, true}},
        {AP_ROLE_PLATFORM_ADMIN, {true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true}},
    };
    assert_int_equal(sizeof rows / sizeof *rows, AP_ROLE_COUNT - 1);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        for (int p = 0; p < AP_PERM_COUNT; p++)
            if (ap_policy_allows(rows[i].role, (ap_perm)p) != rows[i].allow[p])
                fail_msg("%s / %s: got %d", ap_role_name(rows[i].role), ap_perm_name((ap_perm)p),
                         !rows[i].allow[p]);
    /* no role, or out of range: nothing */
    for (int p = 0; p < AP_PERM_COUNT; p++) {
        assert_false(ap_policy_allows(AP_ROLE_NONE, (ap_perm)p));
        assert_false(ap_policy_allows(AP_ROLE_COUNT, (ap_perm)p));
        assert_false(ap_policy_allows((ap_role)-1, (ap_perm)p));
    }
    assert_false(ap_policy_allows(AP_ROLE_PLATFORM_ADMIN, AP_PERM_COUNT));
    assert_false(ap_policy_allows(AP_ROLE_PLATFORM_ADMIN, (ap_perm)99));
    for (int p = 0; p < AP_PERM_COUNT; p++) {
        assert_string_not_equal(ap_perm_name((ap_perm)p), "unknown");
        assert_string_not_equal(ap_perm_describe((ap_perm)p), "unknown");
    }
    assert_string_equal(ap_perm_name(AP_PERM_COUNT), "unknown");
}

static void test_policy_may_grant(void **state) {
    (void)state;
    for (int r = AP_ROLE_VIEWER; r < AP_ROLE_COUNT; r++) {
        /* platform_admin grants everything */
        assert_true(ap_policy_may_grant(AP_ROLE_PLATFORM_ADMIN, (ap_role)r));
        /* tenant_admin everything but platform_admin */
        assert_int_equal(ap_policy_may_grant(AP_ROLE_TENANT_ADMIN, (ap_role)r),
                         r != AP_ROLE_PLATFORM_ADMIN);
        /* the others grant nothing */
        for (int g = AP_ROLE_NONE; g < AP_ROLE_TENANT_ADMIN; g++)
            assert_false(ap_policy_may_grant((ap_role)g, (ap_role)r));
    }
    /* nobody grants no role */
    assert_false(ap_policy_may_grant(AP_ROLE_PLATFORM_ADMIN, AP_ROLE_NONE));
    assert_false(ap_policy_may_grant(AP_ROLE_PLATFORM_ADMIN, AP_ROLE_COUNT));
    /* a granter never grants what it could not do itself */
    for (int g = AP_ROLE_VIEWER; g < AP_ROLE_COUNT; g++)
        for (int r = AP_ROLE_VIEWER; r < AP_ROLE_COUNT; r++)
            if (ap_policy_may_grant((ap_role)g, (ap_role)r))
                for (int p = 0; p < AP_PERM_COUNT; p++)
                    if (ap_policy_allows((ap_role)r, (ap_perm)p))
                        assert_true(ap_policy_allows((ap_role)g, (ap_perm)p));
}

static void test_role_names(void **state) {
    (void)state;
    int n = 0;
    for (const char *const *s = ap_role_names; *s; s++, n++) {
        ap_role r = ap_role_parse(*s);
        assert_int_not_equal(r, AP_ROLE_NONE);
        assert_string_equal(ap_role_name(r), *s);
    }
    assert_int_equal(n, AP_ROLE_COUNT - 1);
    assert_int_equal(ap_role_parse("tenant_admin"), AP_ROLE_TENANT_ADMIN);
    assert_int_equal(ap_role_parse("Viewer"), AP_ROLE_NONE);
    assert_int_equal(ap_role_parse("none"), AP_ROLE_NONE);
    assert_int_equal(ap_role_parse(""), AP_ROLE_NONE);
    assert_int_equal(ap_role_parse(NULL), AP_ROLE_NONE);
    assert_string_equal(ap_role_name(AP_ROLE_NONE), "none");
    assert_string_equal(ap_role_name(AP_ROLE_COUNT), "none");
    assert_string_equal(ap_role_name((ap_role)-3), "none");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apikey_generate_format),
        cmocka_unit_test(test_apikey_plaintext_never_stored),
        cmocka_unit_test(test_apikey_authenticate),
        cmocka_unit_test(test_apikey_expired),
        cmocka_unit_test(test_apikey_unparsable_expiry_fails_closed),
        cmocka_unit_test(test_apikey_create_rules),
        cmocka_unit_test(test_user_email_rules),
        cmocka_unit_test(test_user_role_change_propagates_to_keys),
        cmocka_unit_test(test_user_list_pages),
        cmocka_unit_test(test_policy_matrix),
        cmocka_unit_test(test_policy_may_grant),
        cmocka_unit_test(test_role_names),
    };
    ap_crypto_init();
    TU_RUN_BACKENDS(tests);
}
