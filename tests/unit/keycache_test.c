/*
 * keycache_test.c - the verified-key cache (identity/keycache.h): hits,
 * TTL, expiry, invalidation, and a put that raced an invalidation.
 */
#include "testutil.h"

#include <time.h>

#include "identity/keycache.h"

static ap_principal_t principal(void) {
    return (ap_principal_t){.key_id = "0190c2b4-0000-7000-8000-000000000001",
                            .tenant_id = "0190c2b4-0000-7000-8000-000000000002",
                            .user_id = NULL,
                            .name = "bench",
                            .tenant_status = "active",
                            .role = AP_ROLE_OPERATOR,
                            .expires_ms = INT64_MAX};
}

static void test_hit_copy_and_miss(void **state) {
    (void)state;
    ap_key_cache_t *c = ap_key_cache_new(60000);
    ap_arena_t *a = ap_arena_new(1024);
    uint8_t h[AP_SHA256_LEN], h2[AP_SHA256_LEN];
    ap_sha256("apk_one", 7, h);
    ap_sha256("apk_two", 7, h2);
    ap_principal_t p = principal(), out = {0};
    assert_false(ap_key_cache_get(c, h, 0, a, &out));
    ap_key_cache_put(c, ap_key_cache_gen(c), h, 0, INT64_MAX, &p);
    assert_true(ap_key_cache_get(c, h, 0, a, &out));
    assert_string_equal(out.key_id, p.key_id);
    assert_string_equal(out.tenant_id, p.tenant_id);
    assert_null(out.user_id);
    assert_string_equal(out.tenant_status, "active");
    assert_int_equal(out.role, AP_ROLE_OPERATOR);
    assert_false(ap_key_cache_get(c, h2, 0, a, &out)); /* another key */
    ap_arena_free(a);
    ap_key_cache_free(c);
}

static void test_invalidate_and_raced_put(void **state) {
    (void)state;
    ap_key_cache_t *c = ap_key_cache_new(60000);
    ap_arena_t *a = ap_arena_new(1024);
    uint8_t h[AP_SHA256_LEN];
    ap_sha256("apk_one", 7, h);
    ap_principal_t p = principal(), out = {0};
    ap_key_cache_put(c, ap_key_cache_gen(c), h, 0, INT64_MAX, &p);
    ap_key_cache_invalidate(c); /* e.g. the key was revoked */
    assert_false(ap_key_cache_get(c, h, 0, a, &out));
    uint64_t g = ap_key_cache_gen(c); /* a read starts … */
    ap_key_cache_invalidate(c);       /* … a revocation commits meanwhile … */
    ap_key_cache_put(c, g, h, 0, INT64_MAX, &p); /* … so its result is dropped */
    assert_false(ap_key_cache_get(c, h, 0, a, &out));
    ap_arena_free(a);
    ap_key_cache_free(c);
}

static void test_ttl_expiry_and_off(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    uint8_t h[AP_SHA256_LEN];
    ap_sha256("apk_one", 7, h);
    ap_principal_t p = principal(), out = {0};
    ap_key_cache_t *c = ap_key_cache_new(30);
    ap_key_cache_put(c, ap_key_cache_gen(c), h, 0, INT64_MAX, &p);
    assert_true(ap_key_cache_get(c, h, 0, a, &out));
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    assert_false(ap_key_cache_get(c, h, 0, a, &out)); /* past the TTL */
    ap_key_cache_free(c);
    c = ap_key_cache_new(60000);
    ap_key_cache_put(c, ap_key_cache_gen(c), h, 0, 1000, &p); /* the key expires at 1000 */
    assert_true(ap_key_cache_get(c, h, 999, a, &out));
    assert_false(ap_key_cache_get(c, h, 1000, a, &out));
    ap_key_cache_free(c);
    c = ap_key_cache_new(0); /* off */
    ap_key_cache_put(c, ap_key_cache_gen(c), h, 0, INT64_MAX, &p);
    assert_false(ap_key_cache_get(c, h, 0, a, &out));
    ap_key_cache_free(c);
    ap_arena_free(a);
}

/* Through the database: a verified key is served from the cache; after the
 * revocation and the invalidation the handler does, it is refused at once. */
static void test_authenticate_cached_follows_revoke(void **state) {
    (void)state;
    ap_db_t *db = tu_db_open("sqlite");
    const char *tid = "0190c2b4-0000-7000-8000-0000000000aa";
    tu_add_tenant(db, tid, "cached-keys");
    ap_err_t err = {0};
    ap_arena_t *a = ap_arena_new(4096);
    ap_tx_t *tx;
    json_t *kj = NULL;
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_apikey_spec_t spec = {.name = "k", .role = "operator"};
    assert_int_equal(ap_db_begin(db, tid, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_apikey_create(tx, tid, &actor, AP_ROLE_TENANT_ADMIN, &spec, &kj, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    const char *key = ap_arena_strdup(a, json_string_value(json_object_get(kj, "key")));
    const char *kid = ap_arena_strdup(a, json_string_value(json_object_get(kj, "id")));
    json_decref(kj);
    ap_key_cache_t *c = ap_key_cache_new(60000);
    ap_principal_t p;
    assert_int_equal(ap_apikey_authenticate_cached(c, db, a, key, &p, &err), AP_OK);
    assert_string_equal(p.tenant_id, tid);
    assert_int_equal(p.role, AP_ROLE_OPERATOR);
    assert_int_equal(ap_apikey_authenticate_cached(c, db, a, key, &p, &err), AP_OK); /* a hit */
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, tid, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_apikey_revoke(tx, tid, &actor, kid, &out, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    json_decref(out);
    /* without the invalidation the entry would still answer (this is what
     * the TTL bounds for other nodes) */
    assert_int_equal(ap_apikey_authenticate_cached(c, db, a, key, &p, &err), AP_OK);
    ap_key_cache_invalidate(c);
    assert_int_equal(ap_apikey_authenticate_cached(c, db, a, key, &p, &err), AP_ERR_UNAUTH);
    assert_non_null(strstr(err.detail, "revoked"));
    /* a wrong key with a real lookup id is never served from the cache */
    char wrong[80];
    snprintf(wrong, sizeof wrong, "%s", key);
    wrong[30] = wrong[30] == 'A' ? 'B' : 'A';
    assert_int_equal(ap_apikey_authenticate_cached(c, db, a, wrong, &p, &err), AP_ERR_UNAUTH);
    ap_key_cache_free(c);
    ap_arena_free(a);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_copy_and_miss),
        cmocka_unit_test(test_invalidate_and_raced_put),
        cmocka_unit_test(test_ttl_expiry_and_off),
        cmocka_unit_test(test_authenticate_cached_follows_revoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
