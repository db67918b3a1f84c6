/*
 * secret_test.c - core/secret.c envelope encryption, and BYOK keys at rest
 * through llm/config.c on every backend: round trip, a wrong master key
 * fails, rotation leaves keys readable with the new key only, and the
 * plaintext key is nowhere in the database.
 */
#include "testutil.h"

#include <jansson.h>
#include <sys/stat.h>

#include "core/secret.h"
#include "llm/config.h"

#define T1 "01a1fe00-0000-7000-8000-0000000000a1"
#define KEY "sk-tenant-secret-key-0123456789abcdef"

static void test_seal_open_rotate(void **state) {
    (void)state;
    ap_crypto_init();
    uint8_t m1[AP_SECRET_KEY_LEN], m2[AP_SECRET_KEY_LEN];
    ap_random(m1, sizeof m1);
    ap_random(m2, sizeof m2);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_sealed_t s;
    assert_int_equal(ap_secret_seal(m1, KEY, a, &s, &err), AP_OK);
    assert_null(strstr(s.ciphertext, KEY));
    char *p = NULL;
    assert_int_equal(ap_secret_open(m1, &s, a, &p, &err), AP_OK);
    assert_string_equal(p, KEY);
    assert_int_equal(ap_secret_open(m2, &s, a, &p, &err), AP_ERR_DENIED);
    assert_string_equal(err.type, "secret-unreadable");
    /* two seals of the same key differ (own data key and nonces) */
    ap_sealed_t s2;
    assert_int_equal(ap_secret_seal(m1, KEY, a, &s2, &err), AP_OK);
    assert_string_not_equal(s.ciphertext, s2.ciphertext);
    assert_string_not_equal(s.wrapped_key, s2.wrapped_key);
    /* rotation: the new master opens it, the old one no longer does */
    const char *w = NULL;
    assert_int_equal(ap_secret_rewrap(m1, m2, s.wrapped_key, a, &w, &err), AP_OK);
    ap_sealed_t r = {s.ciphertext, s.nonce, w};
    assert_int_equal(ap_secret_open(m2, &r, a, &p, &err), AP_OK);
    assert_string_equal(p, KEY);
    assert_int_equal(ap_secret_open(m1, &r, a, &p, &err), AP_ERR_DENIED);
    assert_int_equal(ap_secret_rewrap(m1, m2, w, a, &w, &err), AP_ERR_DENIED);
    /* altered ciphertext */
    char *bad = ap_arena_strdup(a, s.ciphertext);
    bad[0] = bad[0] == '0' ? '1' : '0';
    ap_sealed_t b = {bad, s.nonce, s.wrapped_key};
    assert_int_equal(ap_secret_open(m1, &b, a, &p, &err), AP_ERR_DENIED);
    ap_arena_free(a);
}

static void test_parse_key(void **state) {
    (void)state;
    uint8_t k[AP_SECRET_KEY_LEN];
    ap_err_t err = {0};
    assert_int_equal(
        ap_secret_parse_key(" 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", k, &err),
        AP_OK);
    assert_int_equal(k[31], 0x1f);
    assert_int_equal(ap_secret_parse_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", k, &err), AP_OK);
    assert_int_equal(k[31], 0x1f);
    assert_int_equal(ap_secret_parse_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", k, &err), AP_OK);
    assert_int_equal(ap_secret_parse_key("00ff", k, &err), AP_ERR_INVALID);
    assert_int_equal(ap_secret_parse_key("not a key at all", k, &err), AP_ERR_INVALID);
}

static void test_master_key_file(void **state) {
    (void)state;
    char tmpl[] = "/tmp/apsecret-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    unsetenv("AP_MASTER_KEY");
    uint8_t k1[AP_SECRET_KEY_LEN], k2[AP_SECRET_KEY_LEN];
    bool from_file = false;
    ap_err_t err = {0};
    assert_int_equal(ap_secret_master_load(dir, k1, &from_file, &err), AP_OK);
    assert_true(from_file);
    char path[128];
    snprintf(path, sizeof path, "%s/master.key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ap_secret_master_load(dir, k2, &from_file, &err), AP_OK);
    assert_memory_equal(k1, k2, sizeof k1);
    chmod(path, 0644);
    assert_int_equal(ap_secret_master_load(dir, k2, &from_file, &err), AP_ERR_DENIED);
    unlink(path);
    rmdir(dir);
    setenv("AP_MASTER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
    assert_int_equal(ap_secret_master_load("/nonexistent", k2, &from_file, &err), AP_OK);
    assert_false(from_file);
    assert_int_equal(k2[1], 1);
    unsetenv("AP_MASTER_KEY");
}

/* Every text value of every row of table, concatenated (platform scope). */
static bool table_contains(ap_db_t *db, const char *table, const char *needle) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t r;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    if (ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err) || ap_tx_query(tx, sql, NULL, 0, &r, &err))
        fail_msg("%s: %s", sql, err.detail);
    bool found = false;
    for (int i = 0; i < r.nrows * r.ncols && !found; i++)
        found = r.vals[i] && strstr(r.vals[i], needle);
    ap_arena_free(a);
    return found;
}

static void test_byok_at_rest(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, T1, "t1");
    uint8_t m1[AP_SECRET_KEY_LEN], m2[AP_SECRET_KEY_LEN];
    ap_random(m1, sizeof m1);
    ap_random(m2, sizeof m2);
    ap_actor_t actor = {.type = "system", .id = "test"};
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *in = json_pack("{s:s,s:s,s:b,s:{s:s,s:s}}", "name", "mine", "primary_model",
                           "openai/gpt-4o-mini", "use_platform_key", 0, "byok", "provider",
                           "openai", "api_key", KEY);
    json_t *out = NULL;
    assert_int_equal(ap_db_begin(db, T1, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_llm_config_create(tx, T1, &actor, m1, in, &out, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    char *shown = json_dumps(out, 0);
    assert_null(strstr(shown, KEY));
    assert_non_null(strstr(shown, "\"api_key_last4\": \"cdef\""));
    free(shown);
    json_decref(out);
    json_decref(in);
    assert_false(table_contains(db, "llm_configs", KEY));
    assert_false(table_contains(db, "llm_configs", "0123456789abcdef"));
    assert_false(table_contains(db, "audit_log", KEY));

    /* the router's lookup opens it with the master key, not another */
    ap_llm_config_t named, dflt;
    assert_int_equal(ap_db_begin(db, T1, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_llm_config_lookup(tx, T1, "mine", &named, &dflt, &err), AP_OK);
    assert_true(named.found);
    assert_false(named.use_platform_key);
    assert_string_equal(named.byok_provider, "openai");
    char *p = NULL;
    assert_int_equal(ap_secret_open(m1, &named.byok, a, &p, &err), AP_OK);
    assert_string_equal(p, KEY);
    assert_int_equal(ap_secret_open(m2, &named.byok, a, &p, &err), AP_ERR_DENIED);
    ap_tx_rollback(tx);

    /* no master key: a key cannot be stored */
    in = json_pack("{s:s,s:{s:s,s:s}}", "name", "other", "byok", "provider", "openai", "api_key",
                   KEY);
    assert_int_equal(ap_db_begin(db, T1, AP_TX_WRITE, a, &tx, &err), AP_OK);
    assert_int_equal(ap_llm_config_create(tx, T1, &actor, NULL, in, &out, &err), AP_ERR_UNAVAILABLE);
    ap_tx_rollback(tx);
    json_decref(in);
    ap_arena_free(a);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_seal_open_rotate),
        cmocka_unit_test(test_parse_key),
        cmocka_unit_test(test_master_key_file),
    };
    int failed = cmocka_run_group_tests_name("secret", plain, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byok_at_rest),
    };
    int f2 = 0;
    setenv("TU_BACKEND", "sqlite", 1);
    f2 += cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
    if (getenv("AP_TEST_PG_URL") && *getenv("AP_TEST_PG_URL")) {
        setenv("TU_BACKEND", "postgres", 1);
        f2 += cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
    }
    return failed + f2;
}
