/*
 * router_test.c - path normalisation and route matching, against a small
 * table of this test's own and against the real table in api/routes.c.
 *
 * 1. The real table is checked for ambiguity structurally (two patterns
 *    of one method that some path matches both) and by example (a path
 *    built from each pattern finds exactly that route), so a new route
 *    that shadows an old one fails here rather than in production.
 * 2. Normalisation is checked for its security promises: every refusal
 *    named in router.h, and that a normalised path is a fixed point.
 */
#include "testutil.h"

#include "api/api.h"
#include "core/id.h"
#include "http/router.h"

/* ---- normalisation ----------------------------------------------------- */

static void norm_ok(const char *raw, const char *want) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    char *out = NULL;
    if (ap_path_normalize(a, raw, &out, &err) != AP_OK)
        fail_msg("normalize(\"%s\") refused: %s", raw, err.msg);
    if (strcmp(out, want) != 0) fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", raw, out, want);
    /* A normalised path is a fixed point. */
    char *again = NULL;
    if (!strpbrk(out, "%?#")) {
        assert_int_equal(ap_path_normalize(a, out, &again, &err), AP_OK);
        assert_string_equal(again, out);
    }
    ap_arena_free(a);
}

static void norm_bad(const char *raw, const char *msg_part) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    char *out = (char *)"untouched";
    if (ap_path_normalize(a, raw, &out, &err) != AP_ERR_INVALID)
        fail_msg("normalize(\"%s\") accepted as \"%s\"", raw, out);
    assert_string_equal(err.type, "invalid-path");
    if (!strstr(err.msg, msg_part))
        fail_msg("normalize(\"%s\"): message \"%s\" lacks \"%s\"", raw, err.msg, msg_part);
    ap_arena_free(a);
}

static void test_normalize_shapes(void **state) {
    (void)state;
    norm_ok("/", "/");
    norm_ok("/api/v1/tenants", "/api/v1/tenants");
    /* case */
    norm_ok("/API/V1/Tenants", "/api/v1/tenants");
    norm_ok("/api/v1/tenants/0190A000-0000-7000-8000-00000000000A",
            "/api/v1/tenants/0190a000-0000-7000-8000-00000000000a");
    /* repeated slashes */
    norm_ok("//api///v1//tenants", "/api/v1/tenants");
    norm_ok("//", "/");
    norm_ok("///", "/");
    /* dot segments */
    norm_ok("/api/./v1/./tenants/.", "/api/v1/tenants");
    norm_ok("/api/v1/users/../tenants", "/api/v1/tenants");
    norm_ok("/api/v1/a/b/../../tenants", "/api/v1/tenants");
    norm_ok("/a/..", "/");
    norm_ok("/a/../", "/");
    norm_ok("/.", "/");
    norm_ok("/./", "/");
    norm_ok("/a/.../b", "/a/.../b"); /* three dots are a name */
    norm_ok("/a/.b/c.", "/a/.b/c.");
    norm_ok("/a/..b", "/a/..b");
    /* trailing slash */
    norm_ok("/api/v1/tenants/", "/api/v1/tenants");
    norm_ok("/api/v1/tenants//", "/api/v1/tenants");
    /* percent-decoding, then lowercasing */
    norm_ok("/api/v1/%74enants", "/api/v1/tenants");
    norm_ok("/api/v1/%54ENANTS", "/api/v1/tenants");
    norm_ok("/a%20b", "/a b");
    norm_ok("/%41%62%63", "/abc");
    norm_ok("/caf%C3%A9", "/caf\xc3\xa9");
    /* encoded dots are dots: no spelling slips past the resolution */
    norm_ok("/a/%2e%2e/b", "/b");
    norm_ok("/a/%2E/b", "/a/b");
    norm_ok("/a/.%2e/b", "/b");
    /* query and fragment are not part of the path */
    norm_ok("/api/v1/tenants?limit=5", "/api/v1/tenants");
    norm_ok("/api/v1/tenants/?x=/../../..", "/api/v1/tenants");
    norm_ok("/api?x=%00", "/api");
    norm_ok("/api#frag", "/api");
    norm_ok("/?", "/");
    /* an encoded '?' is part of the path, not a query */
    norm_ok("/a%3fb", "/a?b");
    /* ':' of an action survives */
    norm_ok("/api/v1/tenants/X:Suspend", "/api/v1/tenants/x:suspend");
}

static void test_normalize_refusals(void **state) {
    (void)state;
    /* not absolute */
    norm_bad("", "must start with /");
    norm_bad("api/v1", "must start with /");
    norm_bad("?x", "must start with /");
    /* encoded slash or backslash would change the shape */
    norm_bad("/a%2Fb", "encoded slash");
    norm_bad("/a%2fb", "encoded slash");
    norm_bad("/a%5cb", "encoded slash");
    norm_bad("/%2f", "encoded slash");
    /* NUL and control characters, encoded or raw */
    norm_bad("/a%00", "control character");
    norm_bad("/a%00b/../c", "control character");
    norm_bad("/a%0a", "control character");
    norm_bad("/a%0D%0Aset-cookie", "control character");
    norm_bad("/a%1f", "control character");
    norm_bad("/a%7f", "control character");
    norm_bad("/a\x01", "control character");
    norm_bad("/a\tb", "control character");
    norm_bad("/a\x7f", "control character");
    norm_bad("/a\r\n", "control character");
    /* above the root */
    norm_bad("/..", "above the root");
    norm_bad("/../api/v1/tenants", "above the root");
    norm_bad("/a/../..", "above the root");
    norm_bad("/a/../../b", "above the root");
    norm_bad("/%2e%2e", "above the root");
    norm_bad("/./..", "above the root");
    /* bad percent-encoding */
    norm_bad("/%", "bad percent-encoding");
    norm_bad("/a%", "bad percent-encoding");
    norm_bad("/a%4", "bad percent-encoding");
    norm_bad("/a%zz", "bad percent-encoding");
    norm_bad("/a%g0", "bad percent-encoding");
    norm_bad("/a%0g", "bad percent-encoding");
    norm_bad("/a%%41", "bad percent-encoding");
    norm_bad("/a%-1", "bad percent-encoding");
    /* not UTF-8 once decoded: overlong forms and surrogates included */
    norm_bad("/%ff", "UTF-8");
    norm_bad("/a%c3", "UTF-8");
    norm_bad("/%c0%af", "UTF-8"); /* overlong '/' */
    norm_bad("/%e0%80%ae%e0%80%ae", "UTF-8"); /* overlong ".." */
    norm_bad("/%ed%a0%80", "UTF-8");          /* surrogate */
    norm_bad("/\xc3(", "UTF-8");
    /* length */
    char *big = malloc(3000);
    big[0] = '/';
    memset(big + 1, 'a', 2998);
    big[2999] = '\0';
    norm_bad(big, "too long");
    big[2048] = '\0'; /* exactly 2048 bytes is fine */
    ap_arena_t *a = ap_arena_new(1024);
    char *out;
    assert_int_equal(ap_path_normalize(a, big, &out, NULL), AP_OK);
    assert_int_equal(strlen(out), 2048);
    ap_arena_free(a);
    free(big);
}

/* ---- matching ---------------------------------------------------------- */

static void h(struct ap_req *r) {
    (void)r;
}

enum { R_LIST, R_CREATE, R_GET, R_DELETE, R_ARCHIVE, R_RESTORE, R_PART, R_SEARCH, R_PUT_X };

static const ap_route_t table[] = {
    [R_LIST] = {"GET", "/things", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "thing.list"},
    [R_CREATE] = {"POST", "/things", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "thing.create"},
    [R_GET] = {"GET", "/things/{id}", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "thing.get"},
    [R_DELETE] = {"DELETE", "/things/{id}", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "thing.delete"},
    [R_ARCHIVE] = {"POST", "/things/{id}:archive", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "a"},
    [R_RESTORE] = {"POST", "/things/{id}:restore", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "r"},
    [R_PART] = {"GET", "/things/{id}/parts/{part_id}", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "p"},
    [R_SEARCH] = {"GET", "/things:search", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "s"},
    [R_PUT_X] = {"PUT", "/x", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "x"},
    {NULL, NULL, NULL, AP_PERM_NONE, AP_SCOPE_PUBLIC, NULL},
};

typedef struct {
    ap_route_result res;
    int index;
    ap_match_t m;
    const char *allow;
} found_t;

static found_t find(ap_arena_t *a, const char *method, const char *path) {
    found_t f = {.index = -1, .allow = NULL};
    f.res = ap_route_find(table, a, method, path, &f.m, &f.allow);
    if (f.res == AP_ROUTE_FOUND) {
        f.index = f.m.index;
        assert_ptr_equal(f.m.route, &table[f.m.index]);
    }
    return f;
}

static void test_route_params(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    found_t f = find(a, "GET", "/things");
    assert_int_equal(f.res, AP_ROUTE_FOUND);
    assert_int_equal(f.index, R_LIST);
    assert_int_equal(f.m.nparams, 0);

    f = find(a, "GET", "/things/abc-123");
    assert_int_equal(f.index, R_GET);
    assert_int_equal(f.m.nparams, 1);
    assert_string_equal(ap_match_param(&f.m, "id"), "abc-123");
    assert_null(ap_match_param(&f.m, "part_id"));

    f = find(a, "DELETE", "/things/abc");
    assert_int_equal(f.index, R_DELETE);

    f = find(a, "GET", "/things/t1/parts/p2");
    assert_int_equal(f.index, R_PART);
    assert_int_equal(f.m.nparams, 2);
    assert_string_equal(ap_match_param(&f.m, "id"), "t1");
    assert_string_equal(ap_match_param(&f.m, "part_id"), "p2");

    /* segment counts must agree */
    assert_int_equal(find(a, "GET", "/things/t1/parts").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/things/t1/parts/p2/x").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/things/t1/partz/p2").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/thing").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/thingsx").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/").res, AP_ROUTE_NO_PATH);
    /* literal segments with a colon */
    assert_int_equal(find(a, "GET", "/things:search").index, R_SEARCH);
    assert_int_equal(find(a, "GET", "/things:searchx").res, AP_ROUTE_NO_PATH);
    ap_arena_free(a);
}

static void test_route_actions(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    found_t f = find(a, "POST", "/things/abc:archive");
    assert_int_equal(f.res, AP_ROUTE_FOUND);
    assert_int_equal(f.index, R_ARCHIVE);
    assert_int_equal(f.m.nparams, 1);
    assert_string_equal(ap_match_param(&f.m, "id"), "abc"); /* suffix not captured */
    assert_int_equal(find(a, "POST", "/things/abc:restore").index, R_RESTORE);

    /* An action never matches a plain {id} route: GET of an action path is
     * 405 (only POST exists for it), not the GET of a thing "abc:archive". */
    f = find(a, "GET", "/things/abc:archive");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "POST");
    f = find(a, "DELETE", "/things/abc:archive");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "POST");
    /* An unknown action matches nothing at all. */
    assert_int_equal(find(a, "POST", "/things/abc:explode").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/things/abc:explode").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "POST", "/things/a:b:archive").res, AP_ROUTE_NO_PATH);
    /* An action needs an id. */
    assert_int_equal(find(a, "POST", "/things/:archive").res, AP_ROUTE_NO_PATH);
    assert_int_equal(find(a, "GET", "/things/:").res, AP_ROUTE_NO_PATH);
    /* And vice versa: a plain id never matches an action route. */
    f = find(a, "POST", "/things/abc");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "GET, DELETE");
    f = find(a, "POST", "/things/archive");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    ap_arena_free(a);
}

static void test_route_methods(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    found_t f = find(a, "PUT", "/things");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "GET, POST");
    f = find(a, "PATCH", "/things/abc");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "GET, DELETE");
    /* HEAD is served by the GET route */
    f = find(a, "HEAD", "/things/abc");
    assert_int_equal(f.res, AP_ROUTE_FOUND);
    assert_int_equal(f.index, R_GET);
    assert_string_equal(ap_match_param(&f.m, "id"), "abc");
    assert_int_equal(find(a, "HEAD", "/things").index, R_LIST);
    /* ... but not by any other */
    f = find(a, "HEAD", "/things/abc:archive");
    assert_int_equal(f.res, AP_ROUTE_NO_METHOD);
    assert_string_equal(f.allow, "POST");
    assert_int_equal(find(a, "HEAD", "/x").res, AP_ROUTE_NO_METHOD);
    /* methods are case-sensitive (RFC 9110) */
    assert_int_equal(find(a, "get", "/things").res, AP_ROUTE_NO_METHOD);
    /* allow may be NULL */
    ap_match_t m;
    assert_int_equal(ap_route_find(table, a, "PUT", "/things", &m, NULL), AP_ROUTE_NO_METHOD);
    ap_arena_free(a);
}

/* ---- the real route table ---------------------------------------------- */

typedef struct {
    const char *p;
    size_t len;
} seg_t;

static int split(const char *pattern, seg_t *segs, int max) {
    int n = 0;
    assert_int_equal(pattern[0], '/');
    const char *p = pattern;
    while (*p == '/') {
        p++;
        size_t len = strcspn(p, "/");
        assert_true(n < max);
        segs[n++] = (seg_t){p, len};
        p += len;
    }
    return n;
}

static bool is_capture(seg_t s) {
    return s.len >= 2 && s.p[0] == '{' && memchr(s.p, '}', s.len);
}

/* Literal suffix after "{name}". */
static seg_t suffix_of(seg_t s) {
    const char *close = memchr(s.p, '}', s.len);
    return (seg_t){close + 1, s.len - (size_t)(close + 1 - s.p)};
}

/* Can one path segment match both pattern segments?  A capture's value
 * never contains ':', so a capture with suffix S matches exactly the
 * segments "v" + S with v non-empty and colon-free. */
static bool segs_overlap(seg_t x, seg_t y) {
    bool cx = is_capture(x), cy = is_capture(y);
    if (!cx && !cy) return x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    if (cx && cy) {
        seg_t sx = suffix_of(x), sy = suffix_of(y);
        return sx.len == sy.len && memcmp(sx.p, sy.p, sx.len) == 0;
    }
    seg_t lit = cx ? y : x, cap = cx ? x : y;
    seg_t suf = suffix_of(cap);
    if (lit.len <= suf.len) return false;
    if (memcmp(lit.p + lit.len - suf.len, suf.p, suf.len) != 0) return false;
    return memchr(lit.p, ':', lit.len - suf.len) == NULL;
}

static bool patterns_overlap(const char *a, const char *b) {
    seg_t sa[16], sb[16];
    int na = split(a, sa, 16), nb = split(b, sb, 16);
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (!segs_overlap(sa[i], sb[i])) return false;
    return true;
}

static bool same_method(const char *a, const char *b) {
    if (strcmp(a, "HEAD") == 0) a = "GET";
    if (strcmp(b, "HEAD") == 0) b = "GET";
    return strcmp(a, b) == 0;
}

static void test_overlap_checker_itself(void **state) {
    (void)state;
    assert_true(patterns_overlap("/a/{x}", "/a/b"));
    assert_true(patterns_overlap("/a/{x}", "/a/{y}"));
    assert_true(patterns_overlap("/a/{x}:go", "/a/b:go"));
    assert_true(patterns_overlap("/a/{x}:go", "/a/{y}:go"));
    assert_false(patterns_overlap("/a/{x}:go", "/a/{y}"));
    assert_false(patterns_overlap("/a/{x}:go", "/a/{y}:stop"));
    assert_false(patterns_overlap("/a/{x}", "/a/b:go"));
    assert_false(patterns_overlap("/a/{x}", "/a/{x}/c"));
    assert_false(patterns_overlap("/a/{x}:go", "/a/:go"));
    assert_false(patterns_overlap("/a/b", "/a/c"));
    assert_true(same_method("HEAD", "GET"));
    assert_false(same_method("POST", "GET"));
}

/* A concrete path for a pattern: each capture becomes a distinct UUID. */
static char *sample_path(ap_arena_t *a, const char *pattern) {
    size_t cap = strlen(pattern) * 4 + 64;
    char *out = ap_arena_alloc(a, cap);
    size_t o = 0;
    int k = 0;
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            assert_non_null(close);
            o += (size_t)snprintf(out + o, cap - o, "0190a000-0000-7000-8000-%012d", ++k);
            p = close + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

static void test_real_routes_unambiguous(void **state) {
    (void)state;
    int n = 0;
    while (ap_routes[n].method) n++;
    assert_true(n > 10);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (same_method(ap_routes[i].method, ap_routes[j].method) &&
                patterns_overlap(ap_routes[i].pattern, ap_routes[j].pattern))
                fail_msg("ambiguous routes: %s %s and %s %s", ap_routes[i].method,
                         ap_routes[i].pattern, ap_routes[j].method, ap_routes[j].pattern);

    ap_arena_t *a = ap_arena_new(4096);
    for (int i = 0; i < n; i++) {
        const ap_route_t *r = &ap_routes[i];
        assert_non_null(r->handler);
        assert_non_null(r->action);
        /* Patterns are written in normalised form, or no request could
         * reach them. */
        char *path = sample_path(a, r->pattern), *norm = NULL;
        ap_err_t err = {0};
        if (ap_path_normalize(a, path, &norm, &err) || strcmp(norm, path) != 0)
            fail_msg("pattern %s is not in normalised form", r->pattern);
        /* The sample path finds exactly this route, with its parameters. */
        ap_match_t m;
        const char *allow = NULL;
        if (ap_route_find(ap_routes, a, r->method, path, &m, &allow) != AP_ROUTE_FOUND ||
            m.index != i)
            fail_msg("%s %s is shadowed (found route %d)", r->method, path, m.index);
        int captures = 0;
        for (const char *p = r->pattern; (p = strchr(p, '{')); p++) captures++;
        assert_int_equal(m.nparams, captures);
        assert_true(captures <= AP_MAX_PARAMS);
        /* A route scoped by path carries {tenant_id}; the others must not
         * take a tenant from the path. */
        const char *tid = ap_match_param(&m, "tenant_id");
        if (r->scope == AP_SCOPE_PATH) {
            if (!tid) fail_msg("%s %s has scope PATH but no {tenant_id}", r->method, r->pattern);
            assert_true(ap_uuid_valid(tid));
        } else if (tid) {
            fail_msg("%s %s has {tenant_id} but is not scoped by path", r->method, r->pattern);
        }
        /* Public routes are exactly the unauthenticated ones. */
        assert_int_equal(r->scope == AP_SCOPE_PUBLIC, r->perm == AP_PERM_NONE);
        /* An action path never reaches a non-action route of another method. */
        if (strchr(strrchr(r->pattern, '/'), ':') && strchr(r->pattern, '{')) {
            const char *methods[] = {"GET", "POST", "PATCH", "DELETE", "PUT"};
            for (size_t k = 0; k < 5; k++) {
                if (strcmp(methods[k], r->method) == 0) continue;
                ap_route_result res = ap_route_find(ap_routes, a, methods[k], path, &m, &allow);
                if (res == AP_ROUTE_FOUND)
                    fail_msg("%s %s reached %s", methods[k], path, m.route->pattern);
            }
        }
    }
    ap_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_shapes),
        cmocka_unit_test(test_normalize_refusals),
        cmocka_unit_test(test_route_params),
        cmocka_unit_test(test_route_actions),
        cmocka_unit_test(test_route_methods),
        cmocka_unit_test(test_overlap_checker_itself),
        cmocka_unit_test(test_real_routes_unambiguous),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
