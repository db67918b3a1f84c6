/*
 * api_common_test.c - the read handlers' shape of src/api/common.c
 * (ap_api_list_page, ap_api_list, ap_api_get_one), through the real
 * server and store, on each backend.
 *
 * 1. Stand-in service functions record what they were called with and
 *    answer as the test says; the test talks HTTP to a server whose
 *    routes are these handlers.
 * 2. What is held: ?limit= bounds and ?cursor= validation answer 400
 *    without calling the service; the service's page and cursor, or its
 *    problem, are what the client gets; items a failing service left
 *    behind are released (the sanitizer build fails on a leak).
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "api/api.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/server.h"

#define UUID_A "01890a5d-ac96-774b-bcce-b302099a8057"

/* What the stand-in services saw, and what they answer. */
static struct {
    int calls;
    int limit;
    char after[128]; /* "" for NULL */
    bool after_null;
    bool tenant_null;
    ap_rc fail;       /* answer this error (leaving items set) */
    const char *next; /* the next cursor to hand back */
} svc;

static void svc_reset(void) {
    memset(&svc, 0, sizeof svc);
}

static ap_rc fake_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                       json_t **items, const char **next, ap_err_t *err) {
    (void)tx;
    svc.calls++;
    svc.limit = limit;
    svc.after_null = after == NULL;
    snprintf(svc.after, sizeof svc.after, "%s", after ? after : "");
    svc.tenant_null = tenant_id == NULL;
    *items = json_pack("[{s:i}]", "n", 1);
    if (svc.fail)
        return ap_err_set(err, svc.fail, NULL, "stand-in failed", "try again",
                          "the stand-in was told to fail");
    *next = svc.next;
    return AP_OK;
}

static ap_rc fake_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                      ap_err_t *err) {
    (void)tx;
    (void)tenant_id;
    svc.calls++;
    snprintf(svc.after, sizeof svc.after, "%s", id);
    if (svc.fail)
        return ap_err_set(err, svc.fail, NULL, "not here", NULL, "no thing \"%s\"", id);
    *out = json_pack("{s:s}", "id", id);
    return AP_OK;
}

/* A list with a filter in ud: the filter reaches the service. */
static ap_rc filtered(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *ud,
                      json_t **items, const char **next, ap_err_t *err) {
    svc.next = ud;
    return fake_list(tx, tenant_id, pg->cursor, pg->limit, items, next, err);
}

static void h_list(ap_req_t *r) { ap_api_list_page(r, fake_list); }
static void h_one(ap_req_t *r) { ap_api_get_one(r, "thing_id", fake_get); }
static void h_filtered(ap_req_t *r) {
    ap_api_page_t pg;
    if (ap_api_page(r, &pg)) ap_api_list(r, &pg, filtered, (void *)"from-ud");
}

static const ap_route_t routes[] = {
    {"GET", "/list", h_list, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.list", 0},
    {"GET", "/filtered", h_filtered, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.filtered", 0},
    {"GET", "/things/{thing_id}", h_one, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.get", 0},
    {NULL, NULL, NULL, 0, 0, NULL, 0},
};

static ap_server_t *srv;
static struct ap_app app;

/* GET path; returns the status and the body (heap) in *body. */
static int get(const char *path, char **body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ap_server_port(srv))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                     path);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    ap_buf_t b;
    ap_buf_init(&b, 0);
    char tmp[4096];
    ssize_t got;
    while ((got = recv(fd, tmp, sizeof tmp, 0)) > 0) ap_buf_append(&b, tmp, (size_t)got);
    ap_buf_append(&b, "", 1);
    close(fd);
    int status = 0;
    assert_int_equal(sscanf(b.p, "HTTP/1.1 %d", &status), 1);
    const char *sep = strstr(b.p, "\r\n\r\n");
    assert_non_null(sep);
    *body = ap_strdup(sep + 4);
    ap_buf_free(&b);
    return status;
}

/* Expects status and a body holding each of the NULL-terminated strings. */
static void expect(const char *path, int status, ...) {
    char *body;
    int st = get(path, &body);
    if (st != status) fail_msg("%s: status %d, not %d: %s", path, st, status, body);
    va_list ap;
    va_start(ap, status);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(body, s)) fail_msg("%s: no %s in %s", path, s, body);
    va_end(ap);
    ap_free(body);
}

/* Each test gets a fresh database of the group's backend. */
static int open_db(void **state) {
    (void)state;
    svc_reset();
    app.db = tu_db_open(tu_backend());
    return app.db ? 0 : -1;
}

static int close_db(void **state) {
    (void)state;
    ap_db_close(app.db);
    app.db = NULL;
    return 0;
}

static void test_page_defaults_and_bounds(void **state) {
    (void)state;
    expect("/list", 200, "{\"data\":[{\"n\":1}],\"next_cursor\":null}", NULL);
    assert_int_equal(svc.calls, 1);
    assert_int_equal(svc.limit, 50);
    assert_true(svc.after_null);
    assert_true(svc.tenant_null); /* a public route: no tenant, platform scope */
    expect("/list?limit=1", 200, "\"data\"", NULL);
    assert_int_equal(svc.limit, 1);
    expect("/list?limit=500&cursor=", 200, "\"data\"", NULL);
    assert_int_equal(svc.limit, 500);
    assert_true(svc.after_null); /* an empty cursor is no cursor */
    assert_int_equal(svc.calls, 3);
    static const char *const bad[] = {"0", "501", "-1", "abc", "", "5x", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/list?limit=%s", bad[i]);
        expect(path, 400, "\"title\":\"invalid limit\"", "it must be between 1 and 500", NULL);
    }
    /* the limit is checked before the cursor */
    expect("/list?limit=0&cursor=nope", 400, "invalid limit", NULL);
    assert_int_equal(svc.calls, 3); /* never called for a bad request */
}

static void test_cursor_must_be_a_uuid(void **state) {
    (void)state;
    expect("/list?cursor=nope", 400, "urn:agentprov:problem:invalid-parameter",
           "\"title\":\"invalid cursor\"", "cursor \\\"nope\\\" is not one this list returned",
           NULL);
    /* bytes that are not UTF-8 are named as '?', and the answer is JSON */
    expect("/list?cursor=%FF%FE", 400, "cursor \\\"??\\\" is not one", NULL);
    expect("/filtered?cursor=" UUID_A "x", 400, "invalid cursor", NULL);
    assert_int_equal(svc.calls, 0);
    expect("/list?cursor=" UUID_A, 200, "\"data\"", NULL);
    assert_string_equal(svc.after, UUID_A);
}

static void test_service_answer_is_the_page_or_the_problem(void **state) {
    (void)state;
    svc.next = UUID_A;
    expect("/list?limit=1", 200, "\"next_cursor\":\"" UUID_A "\"", NULL);
    svc.fail = AP_ERR_NOT_FOUND; /* leaves its items: released, no leak */
    expect("/list", 404, "\"title\":\"stand-in failed\"",
           "the stand-in was told to fail; try again", NULL);
    svc.fail = AP_ERR_INTERNAL; /* 5xx: the detail stays in the log */
    char *body;
    assert_int_equal(get("/list", &body), 500);
    assert_null(strstr(body, "told to fail"));
    ap_free(body);
    svc.fail = AP_OK;
    expect("/filtered?limit=2", 200, "\"next_cursor\":\"from-ud\"", NULL);
    assert_int_equal(svc.limit, 2);
}

static void test_get_one(void **state) {
    (void)state;
    expect("/things/" UUID_A, 200, "{\"id\":\"" UUID_A "\"}", NULL);
    assert_int_equal(svc.calls, 1);
    expect("/things/not-a-uuid", 404, "urn:agentprov:problem:not-found",
           "\\\"not-a-uuid\\\" is not a valid thing_id", NULL);
    assert_int_equal(svc.calls, 1); /* never called for an id that cannot exist */
    svc.fail = AP_ERR_NOT_FOUND;
    expect("/things/" UUID_A, 404, "\"title\":\"not here\"", "no thing", NULL);
    assert_int_equal(svc.calls, 2);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    ap_log_set_level(AP_LOG_ERROR + 1); /* quiet: the 500 case logs by design */
    app.routes = routes;
    app.metrics = ap_metrics_new(routes);
    app.max_body = 1 << 16;
    ap_server_opts_t so = {.host = "127.0.0.1", .port = 0, .threads = 2};
    ap_err_t err = {0};
    if (ap_server_start(&app, &so, &srv, &err)) {
        fprintf(stderr, "cannot start the server: %s\n", err.detail);
        return 1;
    }
    const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, open_db, close_db)
        T(test_page_defaults_and_bounds),
        T(test_cursor_must_be_a_uuid),
        T(test_service_answer_is_the_page_or_the_problem),
        T(test_get_one),
#undef T
    };
    int failed = 0;
    setenv("TU_BACKEND", "sqlite", 1);
    failed += cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
    if (getenv("AP_TEST_PG_URL") && *getenv("AP_TEST_PG_URL")) {
        setenv("TU_BACKEND", "postgres", 1);
        failed += cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
    }
    ap_server_stop(srv);
    ap_metrics_free(app.metrics);
    return failed;
}
