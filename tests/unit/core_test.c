/*
 * core_test.c - the core library: arena, bounded buffer, JSON body
 * validation, RFC 3339 time, UUIDv7, crypto helpers and configuration.
 *
 * 1. No database: these run once, not per backend.
 * 2. Expected values are written out literally (known SHA-256 vectors,
 *    RFC 4648 base64 vectors, hand-computed timestamps), never computed
 *    with the code under test.
 */
#include "testutil.h"

#include "core/jload.h"

#include <pthread.h>

#include <jansson.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/id.h"
#include "core/json.h"
#include "core/time.h"

/* ---- arena ------------------------------------------------------------- */

static void test_arena_alignment(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(256);
    unsigned char *ptrs[64];
    size_t sizes[64];
    for (int i = 0; i < 64; i++) {
        sizes[i] = (size_t)(i * 7 % 33) + 1; /* 1..33, odd sizes included */
        ptrs[i] = ap_arena_alloc(a, sizes[i]);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
        memset(ptrs[i], i, sizes[i]);
    }
    /* No allocation overlaps another. */
    for (int i = 0; i < 64; i++)
        for (size_t j = 0; j < sizes[i]; j++) assert_int_equal(ptrs[i][j], (unsigned char)i);
    /* Zero bytes still gives a distinct, aligned pointer. */
    void *z1 = ap_arena_alloc(a, 0), *z2 = ap_arena_alloc(a, 0);
    assert_non_null(z1);
    assert_ptr_not_equal(z1, z2);
    assert_int_equal((uintptr_t)z1 % 16, 0);
    assert_int_equal((uintptr_t)z2 % 16, 0);
    ap_arena_free(a);
}

static void test_arena_large_allocations(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(256);
    char *small = ap_arena_strdup(a, "before");
    size_t big = 3u << 20; /* larger than the largest block */
    unsigned char *p = ap_arena_alloc(a, big);
    assert_int_equal((uintptr_t)p % 16, 0);
    memset(p, 0xAB, big); /* ASan catches a short block */
    unsigned char *q = ap_arena_alloc(a, 5000);
    memset(q, 0xCD, 5000);
    assert_int_equal(p[0], 0xAB);
    assert_int_equal(p[big - 1], 0xAB);
    assert_string_equal(small, "before");
    assert_true(ap_arena_used(a) >= big + 5000);
    /* Many blocks: everything stays readable. */
    char *strs[200];
    for (int i = 0; i < 200; i++) strs[i] = ap_arena_printf(a, "string-%d-%0200d", i, i);
    for (int i = 0; i < 200; i++) {
        char want[256];
        snprintf(want, sizeof want, "string-%d-%0200d", i, i);
        assert_string_equal(strs[i], want);
    }
    ap_arena_free(a);
}

static int cleanup_log[16];
static int cleanup_n;

static void record_cleanup(void *arg) {
    cleanup_log[cleanup_n++] = (int)(intptr_t)arg;
}

static void test_arena_cleanups_reverse_order(void **state) {
    (void)state;
    cleanup_n = 0;
    ap_arena_t *a = ap_arena_new(256);
    for (int i = 0; i < 5; i++) {
        ap_arena_cleanup(a, record_cleanup, (void *)(intptr_t)i);
        (void)ap_arena_alloc(a, 300); /* cleanups interleaved with new blocks */
    }
    assert_int_equal(cleanup_n, 0);
    ap_arena_free(a);
    assert_int_equal(cleanup_n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(cleanup_log[i], 4 - i);

    /* reset runs them too, exactly once; later ones run at free. */
    cleanup_n = 0;
    a = ap_arena_new(256);
    ap_arena_cleanup(a, record_cleanup, (void *)(intptr_t)10);
    ap_arena_cleanup(a, record_cleanup, (void *)(intptr_t)11);
    ap_arena_reset(a);
    assert_int_equal(cleanup_n, 2);
    assert_int_equal(cleanup_log[0], 11);
    assert_int_equal(cleanup_log[1], 10);
    ap_arena_cleanup(a, record_cleanup, (void *)(intptr_t)12);
    ap_arena_free(a);
    assert_int_equal(cleanup_n, 3);
    assert_int_equal(cleanup_log[2], 12);
    ap_arena_free(NULL); /* harmless */
}

static void test_arena_reset_reuses_first_block(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    void *first = ap_arena_alloc(a, 16);
    for (int i = 0; i < 100; i++) (void)ap_arena_alloc(a, 1000); /* spill into new blocks */
    (void)ap_arena_alloc(a, 2u << 20);
    assert_true(ap_arena_used(a) > 100000);
    ap_arena_reset(a);
    assert_int_equal(ap_arena_used(a), 0);
    void *again = ap_arena_alloc(a, 16);
    assert_ptr_equal(first, again);
    /* calloc zeroes memory that held data before the reset */
    memset(again, 0x5A, 16);
    ap_arena_reset(a);
    unsigned char *z = ap_arena_calloc(a, 16);
    assert_ptr_equal(z, first);
    for (int i = 0; i < 16; i++) assert_int_equal(z[i], 0);
    ap_arena_free(a); /* LeakSanitizer: the spilled blocks are gone */
}

static void test_arena_strings(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(256);
    assert_null(ap_arena_strdup(a, NULL));
    assert_string_equal(ap_arena_strdup(a, ""), "");
    assert_string_equal(ap_arena_strndup(a, "abcdef", 3), "abc");
    assert_string_equal(ap_arena_printf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
    char *long_s = ap_arena_printf(a, "%01000d", 7);
    assert_int_equal(strlen(long_s), 1000);
    assert_int_equal(long_s[999], '7');
    assert_int_equal(long_s[0], '0');
    ap_arena_free(a);
}

/* ---- buf --------------------------------------------------------------- */

static void test_buf_max_enforced(void **state) {
    (void)state;
    ap_buf_t b;
    ap_buf_init(&b, 10);
    assert_int_equal(ap_buf_append(&b, "hello", 5), AP_OK);
    assert_int_equal(ap_buf_append(&b, "world!", 6), AP_ERR_TOO_LARGE);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "hello");
    assert_int_equal(ap_buf_puts(&b, "world!"), AP_ERR_TOO_LARGE);
    assert_int_equal(ap_buf_printf(&b, "%s", "world!"), AP_ERR_TOO_LARGE);
    assert_string_equal(b.p, "hello");
    assert_int_equal(ap_buf_printf(&b, "%d", 12345), AP_OK); /* exactly the max */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "hello12345");
    assert_int_equal(ap_buf_append(&b, "x", 1), AP_ERR_TOO_LARGE);
    assert_int_equal(ap_buf_printf(&b, "%s", ""), AP_OK); /* nothing is not too much */
    assert_int_equal(ap_buf_append(&b, "", 0), AP_OK);
    assert_string_equal(b.p, "hello12345");
    ap_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    assert_int_equal(ap_buf_puts(&b, "0123456789"), AP_OK);
    ap_buf_free(&b);
    assert_null(b.p);
}

/* Bug: reserve() computed len + n, which wrapped for a huge n and let the
 * append through (memcpy of SIZE_MAX bytes). */
static void test_buf_huge_append_does_not_wrap(void **state) {
    (void)state;
    ap_buf_t b;
    ap_buf_init(&b, 10);
    assert_int_equal(ap_buf_puts(&b, "abc"), AP_OK);
    assert_int_equal(ap_buf_append(&b, "x", SIZE_MAX), AP_ERR_TOO_LARGE);
    assert_int_equal(ap_buf_append(&b, "x", SIZE_MAX - 2), AP_ERR_TOO_LARGE);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.p, "abc");
    ap_buf_free(&b);
    ap_buf_init(&b, 0); /* unlimited is not unbounded arithmetic */
    assert_int_equal(ap_buf_puts(&b, "abc"), AP_OK);
    assert_int_equal(ap_buf_append(&b, "x", SIZE_MAX - 1), AP_ERR_TOO_LARGE);
    assert_string_equal(b.p, "abc");
    ap_buf_free(&b);
}

static void test_buf_growth_and_printf(void **state) {
    (void)state;
    ap_buf_t b;
    ap_buf_init(&b, 0); /* unlimited */
    char want[20000];
    size_t w = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ap_buf_printf(&b, "%d,%s;", i, i % 2 ? "odd" : "even"), AP_OK);
        w += (size_t)snprintf(want + w, sizeof want - w, "%d,%s;", i, i % 2 ? "odd" : "even");
    }
    assert_int_equal(b.len, w);
    assert_int_equal(strlen(b.p), w);
    assert_memory_equal(b.p, want, w);
    /* Binary data with NULs is kept byte for byte. */
    ap_buf_reset(&b);
    assert_int_equal(ap_buf_append(&b, "a\0b", 3), AP_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.p, "a\0b\0", 4);
    char *s = ap_buf_steal(&b);
    assert_memory_equal(s, "a\0b", 3);
    ap_free(s);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    s = ap_buf_steal(&b); /* an empty buffer gives "" */
    assert_string_equal(s, "");
    ap_free(s);
    ap_buf_free(&b);
}

/* ---- json -------------------------------------------------------------- */

static ap_rc parse(const char *s, json_t **out, ap_err_t *err) {
    return ap_json_parse_object(s, strlen(s), out, err);
}

static void test_json_parse_errors(void **state) {
    (void)state;
    json_t *o = (json_t *)1;
    ap_err_t err = {0};
    assert_int_equal(ap_json_parse_object("", 0, &o, &err), AP_ERR_INVALID);
    assert_null(o);
    assert_string_equal(err.type, "malformed-json");
    assert_non_null(strstr(err.msg, "empty"));

    const char *bad[] = {"   ", "{", "{\"a\":}", "{\"a\":1,}", "{'a':1}", "{} {}",
                         "{\"a\":1} x", "{\"a\":\"\xff\"}", "nul", "\"str\"", "42", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = (json_t *)1;
        memset(&err, 0, sizeof err);
        assert_int_equal(parse(bad[i], &o, &err), AP_ERR_INVALID);
        assert_null(o);
        assert_int_equal(err.rc, AP_ERR_INVALID);
        assert_string_equal(err.type, "malformed-json");
        assert_true(err.detail[0] != '\0');
    }
    /* Position of a syntax error is in the detail. */
    assert_int_equal(parse("{\n  \"a\": tru\n}", &o, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "line 2"));

    /* Valid JSON, not an object. */
    assert_int_equal(parse("[1,2]", &o, &err), AP_ERR_INVALID);
    assert_null(o);
    assert_non_null(strstr(err.msg, "must be a JSON object"));
    assert_non_null(strstr(err.detail, "got array"));

    /* Duplicate keys are refused, not last-wins. */
    assert_int_equal(parse("{\"role\":\"viewer\",\"role\":\"platform_admin\"}", &o, &err),
                     AP_ERR_INVALID);
    assert_null(o);
    assert_non_null(strstr(err.detail, "role"));

    /* A NUL byte inside the body is not valid JSON. */
    assert_int_equal(ap_json_parse_object("{\"a\":1}\0", 8, &o, &err), AP_ERR_INVALID);
    assert_null(o);
    /* Only len bytes are read: a body that is not NUL-terminated. */
    char raw[7] = {'{', '"', 'a', '"', ':', '1', '}'};
    assert_int_equal(ap_json_parse_object(raw, sizeof raw, &o, &err), AP_OK);
    json_decref(o);

    assert_int_equal(parse(" {\"a\": {\"b\": [1, 2]}} \n", &o, &err), AP_OK);
    assert_true(json_is_object(o));
    assert_true(json_is_array(json_object_get(json_object_get(o, "a"), "b")));
    json_decref(o);
}

static const char *const colours[] = {"red", "green", NULL};

static const ap_jfield_t fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 8, 0, 0},
    {"colour", AP_JT_STRING, false, false, colours, 0, 0, 0},
    {"count", AP_JT_INT, false, false, NULL, 0, 1, 10},
    {"ratio", AP_JT_NUMBER, false, false, NULL, 0, -0.5, 0.5},
    {"any_int", AP_JT_INT, false, false, NULL, 0, 0, 0}, /* no range */
    {"flag", AP_JT_BOOL, false, true, NULL, 0, 0, 0},
    {"note", AP_JT_STRING, false, true, NULL, 0, 0, 0},
    {"tags", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    {"meta", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

/* Parses s and checks it against `fields`. */
static ap_rc check(const char *s, ap_err_t *err) {
    json_t *o;
    ap_rc rc = parse(s, &o, err);
    if (rc) fail_msg("test input is not an object: %s", s);
    rc = ap_json_check(o, fields, err);
    json_decref(o);
    return rc;
}

static void expect_bad(const char *s, const char *type, const char *detail_part) {
    ap_err_t err = {0};
    ap_rc rc = check(s, &err);
    if (rc != AP_ERR_INVALID) fail_msg("%s: accepted", s);
    if (strcmp(err.type, type) != 0) fail_msg("%s: type %s, want %s", s, err.type, type);
    if (!strstr(err.detail, detail_part))
        fail_msg("%s: detail \"%s\" lacks \"%s\"", s, err.detail, detail_part);
    assert_int_equal(err.rc, AP_ERR_INVALID);
}

static void expect_ok(const char *s) {
    ap_err_t err = {0};
    if (check(s, &err) != AP_OK) fail_msg("%s: refused: %s", s, err.detail);
}

static void test_json_check(void **state) {
    (void)state;
    expect_ok("{\"name\":\"ann\"}");
    expect_ok("{\"name\":\"12345678\",\"colour\":\"green\",\"count\":10,\"ratio\":0.5,"
              "\"any_int\":-99999999999,\"flag\":true,\"note\":\"x\",\"tags\":[],\"meta\":{}}");
    expect_ok("{\"name\":\"a\",\"ratio\":-0.5,\"count\":1}");
    expect_ok("{\"name\":\"a\",\"ratio\":0}"); /* integer accepted as a number */

    /* unknown field, named, with the accepted list */
    expect_bad("{\"name\":\"a\",\"nmae\":\"b\"}", "unknown-field", "\"nmae\"");
    expect_bad("{\"name\":\"a\",\"nmae\":\"b\"}", "unknown-field", "accepted fields: name, colour");
    /* missing required */
    expect_bad("{}", "missing-field", "\"name\"");
    expect_bad("{\"colour\":\"red\"}", "missing-field", "\"name\" (string) is required");
    /* wrong types */
    expect_bad("{\"name\":5}", "invalid-field", "\"name\" must be string, got integer");
    expect_bad("{\"name\":\"a\",\"count\":1.5}", "invalid-field", "must be integer, got number");
    expect_bad("{\"name\":\"a\",\"count\":\"3\"}", "invalid-field", "got string");
    expect_bad("{\"name\":\"a\",\"flag\":\"true\"}", "invalid-field", "must be boolean");
    expect_bad("{\"name\":\"a\",\"flag\":1}", "invalid-field", "must be boolean");
    expect_bad("{\"name\":\"a\",\"tags\":{}}", "invalid-field", "must be array, got object");
    expect_bad("{\"name\":\"a\",\"meta\":[]}", "invalid-field", "must be object, got array");
    expect_bad("{\"name\":\"a\",\"ratio\":\"0.1\"}", "invalid-field", "must be number");
    /* enum */
    expect_bad("{\"name\":\"a\",\"colour\":\"blue\"}", "invalid-field",
               "\"colour\" is \"blue\"; allowed: red, green");
    expect_bad("{\"name\":\"a\",\"colour\":\"Red\"}", "invalid-field", "allowed");
    /* max_len: bytes, not characters */
    expect_bad("{\"name\":\"123456789\"}", "invalid-field", "9 bytes; at most 8");
    expect_bad("{\"name\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", "invalid-field",
               "10 bytes");
    /* NUL inside a string: the parser refuses \u0000 already; a value
     * built in code is caught by the check. */
    json_t *o = NULL;
    ap_err_t err = {0};
    assert_int_equal(parse("{\"name\":\"a\\u0000b\"}", &o, &err), AP_ERR_INVALID);
    assert_null(o);
    o = json_pack("{s:s%}", "name", "a\0b", (size_t)3);
    assert_int_equal(ap_json_check(o, fields, &err), AP_ERR_INVALID);
    assert_string_equal(err.type, "invalid-field");
    assert_non_null(strstr(err.detail, "\"name\" contains \\u0000"));
    json_decref(o);
    /* numeric range, inclusive */
    expect_bad("{\"name\":\"a\",\"count\":0}", "invalid-field", "between 1 and 10");
    expect_bad("{\"name\":\"a\",\"count\":11}", "invalid-field", "\"count\" is 11");
    expect_bad("{\"name\":\"a\",\"count\":-9223372036854775807}", "invalid-field",
               "between 1 and 10");
    expect_bad("{\"name\":\"a\",\"ratio\":0.5000001}", "invalid-field", "between -0.5 and 0.5");
    expect_bad("{\"name\":\"a\",\"ratio\":-1e300}", "invalid-field", "is -1e+300");
    /* nullable */
    expect_ok("{\"name\":\"a\",\"flag\":null,\"note\":null}");
    expect_bad("{\"name\":null}", "invalid-field", "\"name\" must be string, got null");
    expect_bad("{\"name\":\"a\",\"count\":null}", "invalid-field", "got null");

    /* The default maximum is 4096 bytes. */
    char *body = malloc(5000);
    for (int len = 4096; len <= 4097; len++) {
        int n = snprintf(body, 5000, "{\"name\":\"a\",\"note\":\"");
        memset(body + n, 'x', (size_t)len);
        snprintf(body + n + len, 5000 - (size_t)(n + len), "\"}");
        memset(&err, 0, sizeof err);
        assert_int_equal(check(body, &err), len == 4096 ? AP_OK : AP_ERR_INVALID);
    }
    free(body);

    /* An unknown name longer than the detail field is cut, not overflowed. */
    char big[1200];
    int n = snprintf(big, sizeof big, "{\"name\":\"a\",\"");
    memset(big + n, 'k', 1000);
    snprintf(big + n + 1000, sizeof big - (size_t)(n + 1000), "\":1}");
    assert_int_equal(check(big, &err), AP_ERR_INVALID);
    assert_string_equal(err.type, "unknown-field");
    assert_true(strlen(err.detail) < sizeof err.detail);
}

/* Bug: an out-of-range integer was shown through %g ("1.23457e+07"), so
 * the detail did not carry the offending value. */
static void test_json_range_detail_shows_integer_exactly(void **state) {
    (void)state;
    expect_bad("{\"name\":\"a\",\"count\":12345678}", "invalid-field",
               "\"count\" is 12345678; must be between 1 and 10");
    expect_bad("{\"name\":\"a\",\"count\":-9223372036854775807}", "invalid-field",
               "is -9223372036854775807;");
}

static void test_json_getters(void **state) {
    (void)state;
    json_t *o;
    assert_int_equal(parse("{\"s\":\"x\",\"i\":7,\"n\":null,\"r\":1.5}", &o, NULL), AP_OK);
    assert_string_equal(ap_json_str(o, "s"), "x");
    assert_null(ap_json_str(o, "i"));
    assert_null(ap_json_str(o, "n"));
    assert_null(ap_json_str(o, "missing"));
    assert_int_equal(ap_json_int(o, "i", -1), 7);
    assert_int_equal(ap_json_int(o, "r", -1), -1);
    assert_int_equal(ap_json_int(o, "missing", -2), -2);
    assert_true(ap_json_has(o, "n"));
    assert_false(ap_json_has(o, "missing"));
    assert_string_equal(ap_jtype_name(AP_JT_INT), "integer");
    json_decref(o);
}

/* ---- time -------------------------------------------------------------- */

static int64_t parse_ok(const char *s) {
    int64_t ms = -12345;
    if (!ap_time_parse(s, &ms)) fail_msg("\"%s\" was refused", s);
    return ms;
}

static void test_time_format(void **state) {
    (void)state;
    char out[AP_TIME_LEN];
    struct {
        int64_t ms;
        const char *s;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {951782400000, "2000-02-29T00:00:00.000Z"},
        {1700000000123, "2023-11-14T22:13:20.123Z"},
        {1709251199999, "2024-02-29T23:59:59.999Z"},
        {1709251200000, "2024-03-01T00:00:00.000Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
        {-62167219200000, "0000-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(out, 'x', sizeof out);
        ap_time_format(cases[i].ms, out);
        assert_string_equal(out, cases[i].s);
        assert_int_equal(parse_ok(cases[i].s), cases[i].ms);
    }
    /* Outside years 0000-9999 the output is clamped, never garbage. */
    ap_time_format(INT64_MAX, out);
    assert_string_equal(out, "9999-12-31T23:59:59.999Z");
    ap_time_format(253402300800000, out);
    assert_string_equal(out, "9999-12-31T23:59:59.999Z");
    ap_time_format(INT64_MIN, out);
    assert_string_equal(out, "0000-01-01T00:00:00.000Z");
    /* Round trip of the current time, and lexicographic = time order. */
    int64_t now = ap_now_ms();
    char a[AP_TIME_LEN], b[AP_TIME_LEN];
    ap_time_format(now, a);
    ap_time_format(now + 1, b);
    assert_int_equal(parse_ok(a), now);
    assert_true(strcmp(a, b) < 0);
    ap_time_format(now + 86400000LL * 400, b);
    assert_true(strcmp(a, b) < 0);
}

static void test_time_parse_offsets_and_fractions(void **state) {
    (void)state;
    int64_t base = parse_ok("2026-01-01T00:00:00Z");
    assert_int_equal(base, 1767225600000);
    assert_int_equal(parse_ok("2026-01-01T01:30:00+01:30"), base);
    assert_int_equal(parse_ok("2025-12-31T19:00:00-05:00"), base);
    assert_int_equal(parse_ok("2026-01-01T00:00:00+00:00"), base);
    assert_int_equal(parse_ok("2026-01-01T00:00:00-00:00"), base);
    assert_int_equal(parse_ok("2026-01-01t00:00:00z"), base); /* RFC 3339 5.6 note */
    assert_int_equal(parse_ok("2026-01-01T23:59:00+23:59"), base);
    /* fractions: up to ms kept, more digits truncated */
    assert_int_equal(parse_ok("2026-01-01T00:00:00.1Z"), base + 100);
    assert_int_equal(parse_ok("2026-01-01T00:00:00.12Z"), base + 120);
    assert_int_equal(parse_ok("2026-01-01T00:00:00.123Z"), base + 123);
    assert_int_equal(parse_ok("2026-01-01T00:00:00.123999999Z"), base + 123);
    assert_int_equal(parse_ok("2026-01-01T00:00:00.000000000000000000001Z"), base);
    assert_int_equal(parse_ok("2026-01-01T01:00:00.5+01:00"), base + 500);
    /* before the epoch */
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
}

static void test_time_parse_rejects(void **state) {
    (void)state;
    const char *bad[] = {
        "",
        "2026",
        "2026-01-01",
        "2026-01-01T00:00:00",        /* no zone */
        "2026-01-01T00:00Z",          /* no seconds */
        "2026-01-01T00:00:00+0100",   /* offset without colon */
        "2026-01-01T00:00:00+01",     /* short offset */
        "2026-01-01T00:00:00+01:0",   /* short offset */
        "2026-01-01T00:00:00Zjunk",   /* trailing text */
        "2026-01-01T00:00:00Z ",      /* trailing space */
        " 2026-01-01T00:00:00Z",      /* leading space */
        "2026-01-01T00:00:00.Z",      /* empty fraction */
        "2026-01-01T00:00:00,5Z",     /* comma fraction */
        "2026-1-01T00:00:00Z",        /* one-digit month */
        "2026/01/01T00:00:00Z",
        "2026-01-01X00:00:00Z",
        "+2026-01-01T00:00:00Z",
        "-026-01-01T00:00:00Z",
        "2026-00-10T00:00:00Z",       /* month 0 */
        "2026-13-10T00:00:00Z",       /* month 13 */
        "2026-01-00T00:00:00Z",       /* day 0 */
        "2026-01-32T00:00:00Z",       /* day 32 */
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:61Z",
        "2026-01-01T00:00:00\xc2\xa0Z",
        "2026-01-01T0a:00:00Z",
        "2026-01-01T00:00:00.1a2Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 777;
        if (ap_time_parse(bad[i], &ms)) fail_msg("\"%s\" was accepted as %lld", bad[i],
                                                 (long long)ms);
    }
}

static void expect_time_refused(const char *const *bad, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t ms = 777;
        if (ap_time_parse(bad[i], &ms))
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ms);
    }
}

/* Bug: any day 1-31 was accepted in any month, so "2026-02-30" silently
 * became March 2nd. */
static void test_time_parse_rejects_impossible_dates(void **state) {
    (void)state;
    const char *bad[] = {
        "2026-04-31T00:00:00Z", /* April has 30 days */
        "2026-06-31T00:00:00Z",
        "2026-09-31T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2026-02-29T00:00:00Z", /* 2026 is not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
        "2100-02-29T00:00:00Z",
    };
    expect_time_refused(bad, sizeof bad / sizeof *bad);
    parse_ok("2026-01-31T00:00:00Z");
    parse_ok("2026-12-31T00:00:00Z");
    parse_ok("2026-04-30T00:00:00Z");
    parse_ok("2026-02-28T00:00:00Z");
}

/* Bug: offsets were not range-checked ("+99:99" was 100 hours). */
static void test_time_parse_rejects_bad_offsets(void **state) {
    (void)state;
    const char *bad[] = {"2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+01:60",
                         "2026-01-01T00:00:00+99:99", "2026-01-01T00:00:00-24:00"};
    expect_time_refused(bad, sizeof bad / sizeof *bad);
    assert_int_equal(parse_ok("2026-01-01T00:00:00-23:59") - parse_ok("2026-01-01T00:00:00Z"),
                     (23 * 60 + 59) * 60000LL);
}

/* Bug: an offset could push an instant outside years 0000-9999; it parsed
 * but formatted as "-001-12-31..." or "10000-01-01T00:00:59.000" (no Z),
 * which no longer parsed.  Found by tests/fuzz/time_fuzz.c's property. */
static void test_time_parse_refuses_unformattable_years(void **state) {
    (void)state;
    const char *bad[] = {"0000-01-01T00:00:00+00:01", "0000-01-01T00:00:00.999+23:59",
                         "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:60Z"};
    expect_time_refused(bad, sizeof bad / sizeof *bad);
    char out[AP_TIME_LEN];
    ap_time_format(parse_ok("0000-01-01T00:00:00-00:01"), out);
    assert_string_equal(out, "0000-01-01T00:01:00.000Z");
    ap_time_format(parse_ok("9999-12-31T23:59:59.999+00:01"), out);
    assert_string_equal(out, "9999-12-31T23:58:59.999Z");
}

static void test_time_leap_years(void **state) {
    (void)state;
    char out[AP_TIME_LEN];
    const char *ok[] = {"2024-02-29T12:34:56.789Z", "2000-02-29T00:00:00.000Z",
                        "1600-02-29T23:59:59.999Z", "2400-02-29T00:00:00.000Z"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        ap_time_format(parse_ok(ok[i]), out);
        assert_string_equal(out, ok[i]);
    }
    /* The day after Feb 28 is Feb 29 in a leap year, Mar 1 otherwise. */
    ap_time_format(parse_ok("2024-02-28T23:59:59.999Z") + 1, out);
    assert_string_equal(out, "2024-02-29T00:00:00.000Z");
    ap_time_format(parse_ok("2023-02-28T23:59:59.999Z") + 1, out);
    assert_string_equal(out, "2023-03-01T00:00:00.000Z");
    ap_time_format(parse_ok("2100-02-28T00:00:00.000Z") + 86400000, out);
    assert_string_equal(out, "2100-03-01T00:00:00.000Z");
    /* 2024 has 366 days. */
    assert_int_equal(parse_ok("2025-01-01T00:00:00Z") - parse_ok("2024-01-01T00:00:00Z"),
                     366LL * 86400000);
    assert_int_equal(parse_ok("2026-01-01T00:00:00Z") - parse_ok("2025-01-01T00:00:00Z"),
                     365LL * 86400000);
    /* A leap second is accepted and lands on the next second. */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2017-01-01T00:00:00Z"));
}

static void test_time_clocks(void **state) {
    (void)state;
    int64_t a = ap_now_ms();
    uint64_t m1 = ap_mono_ns();
    assert_true(a > 1700000000000); /* after Nov 2023 */
    usleep(2000);
    assert_true(ap_mono_ns() - m1 >= 2000000);
    assert_true(ap_now_ms() >= a);
}

/* ---- id ---------------------------------------------------------------- */

static void check_uuid7(const char *u) {
    assert_int_equal(strlen(u), 36);
    assert_true(ap_uuid_valid(u));
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", u[i]));
    }
    assert_int_equal(u[14], '7');                /* version */
    assert_non_null(strchr("89ab", u[19]));      /* variant 10xx */
}

static int64_t uuid_ms(const char *u) {
    char hex[13];
    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return strtoll(hex, NULL, 16);
}

static void test_uuid7_format(void **state) {
    (void)state;
    char u[AP_UUID_LEN];
    int64_t before = ap_now_ms();
    ap_uuid7(u);
    int64_t after = ap_now_ms();
    check_uuid7(u);
    assert_true(uuid_ms(u) >= before && uuid_ms(u) <= after + 1);
    /* The random part differs between two ids. */
    char v[AP_UUID_LEN];
    ap_uuid7(v);
    assert_string_not_equal(u + 24, v + 24);
}

#define NIDS 10000

static void *make_ids(void *arg) {
    char (*ids)[AP_UUID_LEN] = arg;
    for (int i = 0; i < NIDS; i++) ap_uuid7(ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b) {
    return strcmp(a, b);
}

static void test_uuid7_increasing(void **state) {
    (void)state;
    char(*ids)[AP_UUID_LEN] = malloc(sizeof(*ids) * NIDS * 3);
    make_ids(ids);
    for (int i = 0; i < NIDS; i++) check_uuid7(ids[i]);
    for (int i = 1; i < NIDS; i++)
        if (strcmp(ids[i - 1], ids[i]) >= 0) fail_msg("id %d not increasing: %s then %s", i,
                                                      ids[i - 1], ids[i]);
    /* Per thread: each of two threads gets an increasing sequence, and no
     * id is repeated anywhere. */
    pthread_t t1, t2;
    pthread_create(&t1, NULL, make_ids, ids + NIDS);
    pthread_create(&t2, NULL, make_ids, ids + 2 * NIDS);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    for (int t = 1; t < 3; t++)
        for (int i = 1; i < NIDS; i++)
            assert_true(strcmp(ids[t * NIDS + i - 1], ids[t * NIDS + i]) < 0);
    qsort(ids, NIDS * 3, sizeof *ids, cmp_id);
    for (int i = 1; i < NIDS * 3; i++) assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_uuid_valid(void **state) {
    (void)state;
    assert_true(ap_uuid_valid("0190a000-0000-7000-8000-00000000000a"));
    assert_true(ap_uuid_valid(AP_NIL_UUID));
    const char *bad[] = {
        "0190A000-0000-7000-8000-00000000000a",  /* uppercase */
        "0190a000-0000-7000-8000-00000000000",   /* short */
        "0190a000-0000-7000-8000-00000000000aa", /* long */
        "0190a000-0000-7000-8000-00000000000g",  /* not hex */
        "0190a000-0000-7000-8000_00000000000a",  /* wrong separator */
        "0190a0000-000-7000-8000-00000000000a",  /* dash misplaced */
        "0190a000000007000800000000000000000a",  /* no dashes */
        "{0190a000-0000-7000-8000-00000000000a}",
        "0190a000-0000-7000-8000-00000000000 ",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ap_uuid_valid(bad[i])) fail_msg("\"%s\" accepted", bad[i]);
    assert_false(ap_uuid_valid(NULL));
    char nul[40];
    memcpy(nul, "0190a000-0000-7000-8000-00000000000a", 37);
    nul[5] = '\0';
    assert_false(ap_uuid_valid(nul));
}

/* ---- crypto ------------------------------------------------------------ */

static void test_crypto(void **state) {
    (void)state;
    assert_int_equal(ap_crypto_init(), AP_OK);
    assert_int_equal(ap_crypto_init(), AP_OK); /* idempotent */
    char hex[AP_SHA256_HEX];
    ap_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ap_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ap_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    uint8_t bin[AP_SHA256_LEN];
    ap_sha256("abc", 3, bin);
    assert_int_equal(bin[0], 0xba);
    assert_int_equal(bin[31], 0xad);
    char hx[7];
    ap_hex((const uint8_t *)"\x00\x7f\xff", 3, hx);
    assert_string_equal(hx, "007fff");

    assert_true(ap_ct_eq("abcdef", "abcdef", 6));
    assert_false(ap_ct_eq("abcdef", "abcdeg", 6));
    assert_false(ap_ct_eq("xbcdef", "abcdef", 6));
    assert_true(ap_ct_eq("abc", "abd", 2)); /* only n bytes compared */

    struct {
        const char *in, *out;
    } b64[] = {{"", ""},       {"f", "Zg"},         {"fo", "Zm8"},          {"foo", "Zm9v"},
               {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
               {"\xfb\xff\xbf", "-_-_"}, {"\xff\xfe", "__4"}};
    for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++) {
        size_t n = strlen(b64[i].in);
        assert_int_equal(ap_b64url_len(n), strlen(b64[i].out) + 1);
        char out[32];
        memset(out, '#', sizeof out);
        ap_b64url((const uint8_t *)b64[i].in, n, out);
        assert_string_equal(out, b64[i].out);
    }
    assert_int_equal(ap_b64url_len(32), 44); /* 43 chars + NUL */

    uint8_t r1[32] = {0}, r2[32] = {0};
    ap_random(r1, sizeof r1);
    ap_random(r2, sizeof r2);
    assert_memory_not_equal(r1, r2, 32);
}

/* ---- config ------------------------------------------------------------ */

static ap_opt_t *opts_new(void) {
    static const ap_opt_t tmpl[] = {
        {"listen", "AP_TEST_LISTEN", "127.0.0.1:8080", "address", false, false, NULL},
        {"database-url", "AP_TEST_DB", NULL, "database", false, false, NULL},
        {"token", "AP_TEST_TOKEN", NULL, "a secret", true, false, NULL},
        {"verbose", "AP_TEST_VERBOSE", NULL, "more logs", false, true, NULL},
        {NULL, NULL, NULL, NULL, false, false, NULL},
    };
    ap_opt_t *o = malloc(sizeof tmpl);
    memcpy(o, tmpl, sizeof tmpl);
    return o;
}

static ap_rc cfg_parse(ap_opt_t *o, int argc, char **argv, ap_err_t *err) {
    bool help = false;
    return ap_config_parse(o, argc, argv, NULL, NULL, &help, err);
}

static void test_config_precedence(void **state) {
    (void)state;
    ap_opt_t *o = opts_new();
    ap_err_t err = {0};
    unsetenv("AP_TEST_LISTEN");
    unsetenv("AP_TEST_DB");
    char *argv0[] = {"serve"};
    assert_int_equal(cfg_parse(o, 1, argv0, &err), AP_OK);
    assert_string_equal(ap_config_get(o, "listen"), "127.0.0.1:8080"); /* default */
    assert_null(ap_config_get(o, "database-url"));
    assert_null(ap_config_get(o, "verbose"));
    assert_null(ap_config_get(o, "no-such-option"));

    setenv("AP_TEST_LISTEN", "10.0.0.1:1", 1);
    assert_int_equal(cfg_parse(o, 1, argv0, &err), AP_OK);
    assert_string_equal(ap_config_get(o, "listen"), "10.0.0.1:1"); /* env beats default */

    char *argv1[] = {"serve", "--listen", "10.0.0.2:2"};
    assert_int_equal(cfg_parse(o, 3, argv1, &err), AP_OK);
    assert_string_equal(ap_config_get(o, "listen"), "10.0.0.2:2"); /* flag beats env */

    char *argv2[] = {"serve", "--listen=10.0.0.3:3", "--database-url=sqlite:/x=y", "--verbose"};
    assert_int_equal(cfg_parse(o, 4, argv2, &err), AP_OK);
    assert_string_equal(ap_config_get(o, "listen"), "10.0.0.3:3");
    assert_string_equal(ap_config_get(o, "database-url"), "sqlite:/x=y"); /* first '=' only */
    assert_string_equal(ap_config_get(o, "verbose"), "true");

    /* A new parse starts again from env and defaults. */
    setenv("AP_TEST_LISTEN", "", 1); /* empty counts as unset */
    assert_int_equal(cfg_parse(o, 1, argv0, &err), AP_OK);
    assert_string_equal(ap_config_get(o, "listen"), "127.0.0.1:8080");
    assert_null(ap_config_get(o, "database-url"));
    assert_null(ap_config_get(o, "verbose"));
    unsetenv("AP_TEST_LISTEN");
    free(o);
}

static void test_config_errors(void **state) {
    (void)state;
    ap_opt_t *o = opts_new();
    ap_err_t err = {0};
    char *argv1[] = {"serve", "--lisen", "x"};
    assert_int_equal(cfg_parse(o, 3, argv1, &err), AP_ERR_INVALID);
    assert_string_equal(err.msg, "unknown option");
    assert_non_null(strstr(err.detail, "--lisen"));

    char *argv2[] = {"serve", "--listen"};
    assert_int_equal(cfg_parse(o, 2, argv2, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.msg, "needs a value"));

    char *argv3[] = {"serve", "stray"};
    assert_int_equal(cfg_parse(o, 2, argv3, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "stray"));

    char *argv4[] = {"serve", "--listen-x=1"}; /* prefix of a name is not the name */
    assert_int_equal(cfg_parse(o, 2, argv4, &err), AP_ERR_INVALID);
    char *argv5[] = {"serve", "--liste=1"};
    assert_int_equal(cfg_parse(o, 2, argv5, &err), AP_ERR_INVALID);

    /* positional arguments and --help */
    const char *restv[4];
    const char **rest = restv;
    int nrest = -1;
    bool help = true;
    char *argv6[] = {"users", "list", "--listen", "a", "more"};
    assert_int_equal(ap_config_parse(o, 5, argv6, &rest, &nrest, &help, &err), AP_OK);
    assert_false(help);
    assert_int_equal(nrest, 2);
    assert_string_equal(restv[0], "list");
    assert_string_equal(restv[1], "more");
    char *argv7[] = {"serve", "--listen", "x", "-h", "--bogus"};
    assert_int_equal(ap_config_parse(o, 5, argv7, NULL, NULL, &help, &err), AP_OK);
    assert_true(help);
    char *argv8[] = {"--help"}; /* argv[0] is the command name, not an option */
    assert_int_equal(ap_config_parse(o, 1, argv8, NULL, NULL, &help, &err), AP_OK);
    assert_false(help);
    free(o);
}

static void mask(const char *in, const char *want) {
    char out[512];
    ap_mask_url(in, out, sizeof out);
    if (strcmp(out, want) != 0) fail_msg("mask(%s) = %s, want %s", in, out, want);
}

static void test_config_mask_url(void **state) {
    (void)state;
    mask("postgres://app:s3cret@db:5432/prod", "postgres://app:***@db:5432/prod");
    mask("postgresql://app:s3cret@db/prod?sslmode=require",
         "postgresql://app:***@db/prod?sslmode=require");
    mask("postgres://db/prod?user=app&password=s3cret&sslmode=require",
         "postgres://db/prod?user=app&password=***&sslmode=require");
    mask("postgres://db/prod?password=s3cret", "postgres://db/prod?password=***");
    mask("postgres://app:s3cret@db/prod?password=other", "postgres://app:***@db/prod?password=***");
    /* Nothing to mask: left as is. */
    const char *plain[] = {"postgres://app@db:5432/prod", "postgres://db:5432/prod",
                           "http://example.com:8080/x?mail=a@b.c", "sqlite:./var/agentprov.db",
                           "https://example.com/", "127.0.0.1:8080", ""};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) mask(plain[i], plain[i]);
    /* A small buffer is never overrun and stays terminated. */
    char small[12];
    memset(small, 'z', sizeof small);
    ap_mask_url("postgres://app:s3cret@db/prod", small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_null(strstr(small, "s3cret"));
}

/* Bug: the first '@' ended the password, so "p@ss" logged as "***@ss". */
static void test_config_mask_url_unencoded_at_in_password(void **state) {
    (void)state;
    mask("postgres://app:p@ss@db/prod", "postgres://app:***@db/prod");
    mask("postgres://app:a@b@c@db:5432", "postgres://app:***@db:5432");
    mask("postgres://app@db/x?mail=a@b.c", "postgres://app@db/x?mail=a@b.c");
}

static void test_config_json_masks_secrets(void **state) {
    (void)state;
    ap_opt_t *o = opts_new();
    ap_err_t err = {0};
    char *argv[] = {"serve", "--token", "tok-SECRET", "--database-url",
                    "postgres://app:pw-SECRET@db/prod?password=pw-SECRET"};
    assert_int_equal(cfg_parse(o, 5, argv, &err), AP_OK);
    json_t *j = ap_config_json(o);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_null(strstr(s, "SECRET"));
    assert_string_equal(json_string_value(json_object_get(j, "token")), "***");
    assert_string_equal(json_string_value(json_object_get(j, "database-url")),
                        "postgres://app:***@db/prod?password=***");
    assert_string_equal(json_string_value(json_object_get(j, "listen")), "127.0.0.1:8080");
    assert_true(json_is_null(json_object_get(j, "verbose")));
    assert_int_equal(json_object_size(j), 4);
    free(s);
    json_decref(j);
    free(o);
}


/* ap_jload reads what json_loadb reads, the same way, and refuses what it
 * refuses with jansson's own error text. */
static void test_jload_matches_jansson(void **state) {
    (void)state;
    const char *cases[] = {
        "{\"a\":1,\"b\":[true,false,null,-0,2.5e3,\"x\\n\\u00e9\\ud83d\\ude00\"],\"c\":{}}",
        " [ ] ", "{\"a\":1,\"a\":2}", "{\"k\":\"caf\xc3\xa9\"}",
        "", "{", "[1,]", "{\"a\":01}", "[1e400]", "[9223372036854775808]", "[\"\\u0000\"]",
        "[\"\\udc00\"]", "[\"\xff\"]", "[truex]", "{} x", "\"scalar\"", "[\"a\tb\"]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int f = 0; f < 2; f++) {
            size_t flags = f ? JSON_REJECT_DUPLICATES : 0;
            json_error_t e1, e2;
            json_t *a = ap_jload(cases[i], strlen(cases[i]), flags, &e1);
            json_t *b = json_loadb(cases[i], strlen(cases[i]), flags, &e2);
            assert_int_equal(a == NULL, b == NULL);
            if (a) assert_true(json_equal(a, b));
            else assert_string_equal(e1.text, e2.text);
            json_decref(a);
            json_decref(b);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jload_matches_jansson),
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_large_allocations),
        cmocka_unit_test(test_arena_cleanups_reverse_order),
        cmocka_unit_test(test_arena_reset_reuses_first_block),
        cmocka_unit_test(test_arena_strings),
        cmocka_unit_test(test_buf_max_enforced),
        cmocka_unit_test(test_buf_huge_append_does_not_wrap),
        cmocka_unit_test(test_buf_growth_and_printf),
        cmocka_unit_test(test_json_parse_errors),
        cmocka_unit_test(test_json_check),
        cmocka_unit_test(test_json_range_detail_shows_integer_exactly),
        cmocka_unit_test(test_json_getters),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_parse_offsets_and_fractions),
        cmocka_unit_test(test_time_parse_rejects),
        cmocka_unit_test(test_time_parse_rejects_impossible_dates),
        cmocka_unit_test(test_time_parse_rejects_bad_offsets),
        cmocka_unit_test(test_time_parse_refuses_unformattable_years),
        cmocka_unit_test(test_time_leap_years),
        cmocka_unit_test(test_time_clocks),
        cmocka_unit_test(test_uuid7_format),
        cmocka_unit_test(test_uuid7_increasing),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_crypto),
        cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_mask_url),
        cmocka_unit_test(test_config_mask_url_unencoded_at_in_password),
        cmocka_unit_test(test_config_json_masks_secrets),
    };
    ap_crypto_init();
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
