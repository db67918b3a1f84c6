/*
 * server_test.c - the asynchronous answer machinery of src/http/server.c
 * (req.h "answers from another thread") against the real libmicrohttpd
 * server, over real sockets.
 *
 * A worker thread answers each request, as the LLM gateway's I/O loop
 * does.  Its on_gone sleeps before touching the request's arena, which
 * widens the window in which the worker releases the request: if the
 * server side ran on_gone after dropping its reference, the release would
 * free the arena under on_gone and ASan would report the use after free.
 * The test also holds on_gone to its contract: exactly once per client
 * that goes away mid-stream, never for a request answered in full; and it
 * checks that a worker blocked in a call to its own server is not handed
 * that call's connection.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/metrics.h"
#include "http/req.h"
#include "http/server.h"

#define MAGIC 0x5eedf00du

static atomic_int gone_calls, released, started;

typedef struct {
    ap_req_t *r;
    unsigned magic;
    int mode; /* 0 endless stream, 1 short stream, 2 whole answer */
    int gone_seen;
} work_t;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void t_on_gone(void *ud) {
    work_t *w = ud;
    atomic_fetch_add(&gone_calls, 1);
    sleep_ms(30);           /* the worker releases meanwhile */
    assert_int_equal(w->magic, MAGIC); /* ASan: use after free if r was freed */
    w->gone_seen++;
}

static void *worker(void *arg) {
    work_t *w = arg;
    ap_req_t *r = w->r;
    if (w->mode == 2) {
        ap_resp_raw(r, 200, "text/plain", ap_strdup("whole"), 5);
        ap_req_async_answer(r);
        sleep_ms(5); /* the server completes first: no on_gone, r stays ours */
    } else {
        ap_req_stream_open(r, 200, "text/plain");
        int n = w->mode == 0 ? 2000 : 3;
        for (int i = 0; i < n; i++) {
            if (!ap_req_stream_write(r, "chunk\n", 6)) break; /* client gone */
            sleep_ms(2);
        }
        ap_req_stream_close(r);
        if (w->mode == 1) sleep_ms(5);
    }
    atomic_fetch_add(&released, 1);
    ap_req_async_release(r); /* may free w with the arena */
    return NULL;
}

static void start_worker(ap_req_t *r, int mode) {
    work_t *w = ap_arena_calloc(r->arena, sizeof *w);
    w->r = r;
    w->magic = MAGIC;
    w->mode = mode;
    ap_req_async_begin(r, t_on_gone, w);
    atomic_fetch_add(&started, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, w), 0);
    pthread_detach(t);
}

static void h_plain(ap_req_t *r) {
    ap_resp_raw(r, 200, "text/plain", ap_strdup("plain"), 5);
}

static int connect_to(int port);
static void send_get(int fd, const char *path);
static char *read_all(int fd);
static int server_port(void);

/* A handler that calls its own server synchronously, as the MCP client
 * does when a tenant registers the platform's /mcp: its worker is blocked
 * until another worker has answered. */
static void h_self(ap_req_t *r) {
    int fd = connect_to(server_port());
    send_get(fd, "/plain");
    char *s = read_all(fd);
    close(fd);
    bool ok = strstr(s, "200 OK") && strstr(s, "plain");
    ap_free(s);
    ap_resp_raw(r, 200, "text/plain", ap_strdup(ok ? "self ok" : "self failed"), ok ? 7 : 11);
}

static void h_endless(ap_req_t *r) { start_worker(r, 0); }
static void h_short(ap_req_t *r) { start_worker(r, 1); }
static void h_whole(ap_req_t *r) { start_worker(r, 2); }

static const ap_route_t routes[] = {
    {"GET", "/endless", h_endless, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.endless", 0},
    {"GET", "/short", h_short, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.short", 0},
    {"GET", "/whole", h_whole, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.whole", 0},
    {"GET", "/plain", h_plain, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.plain", 0},
    {"GET", "/self", h_self, AP_PERM_NONE, AP_SCOPE_PUBLIC, "test.self", 0},
    {NULL, NULL, NULL, 0, 0, NULL, 0},
};

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_get(int fd, const char *path) {
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* Reads until the peer closes; returns the bytes as a heap string. */
static char *read_all(int fd) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    char tmp[4096];
    ssize_t n;
    while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0) ap_buf_append(&b, tmp, (size_t)n);
    ap_buf_append(&b, "", 1);
    char *s = ap_strdup(b.p);
    ap_buf_free(&b);
    return s;
}

static ap_server_t *srv;
static struct ap_app app;

static int server_port(void) {
    return ap_server_port(srv);
}

static void wait_released(void) {
    for (int i = 0; i < 500 && atomic_load(&released) < atomic_load(&started); i++) sleep_ms(10);
    assert_int_equal(atomic_load(&released), atomic_load(&started));
    assert_true(ap_server_drain(srv, 5000)); /* every request freed, by either side */
}

static void test_whole_and_short_answers_never_call_on_gone(void **state) {
    (void)state;
    int before = atomic_load(&gone_calls);
    for (int i = 0; i < 20; i++) {
        int fd = connect_to(ap_server_port(srv));
        send_get(fd, i % 2 ? "/short" : "/whole");
        char *s = read_all(fd);
        close(fd);
        assert_non_null(strstr(s, "200 OK"));
        assert_non_null(strstr(s, i % 2 ? "chunk\n" : "whole"));
        ap_free(s);
    }
    wait_released();
    assert_int_equal(atomic_load(&gone_calls), before);
}

/* Clients reset the connection mid-stream while the worker keeps writing:
 * the server sees the failed send, completes the request and calls
 * on_gone; the worker sees its write refused and releases at once. */
static void test_clients_gone_mid_stream(void **state) {
    (void)state;
    int before = atomic_load(&gone_calls);
    enum { N = 24 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_to(ap_server_port(srv));
        send_get(fds[i], "/endless");
    }
    for (int i = 0; i < N; i++) {
        char tmp[256];
        assert_true(recv(fds[i], tmp, sizeof tmp, 0) > 0); /* the stream is running */
        struct linger lg = {1, 0};                        /* close with RST */
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fds[i]);
    }
    wait_released();
    assert_int_equal(atomic_load(&gone_calls) - before, N);
    /* the server still answers */
    int fd = connect_to(ap_server_port(srv));
    send_get(fd, "/whole");
    char *s = read_all(fd);
    close(fd);
    assert_non_null(strstr(s, "whole"));
    ap_free(s);
    wait_released();
}

/* Regression: with one SO_REUSEPORT socket per worker the kernel handed
 * about half of these inner connections to the worker blocked in h_self,
 * which never accepted them (the read timed out).  Accepting from one
 * shared socket, only a worker waiting in epoll takes them. */
static void test_a_worker_blocked_on_its_own_server_is_not_handed_the_call(void **state) {
    (void)state;
    for (int i = 0; i < 20; i++) {
        int fd = connect_to(ap_server_port(srv));
        send_get(fd, "/self");
        char *s = read_all(fd);
        close(fd);
        assert_non_null(strstr(s, "self ok"));
        ap_free(s);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    ap_log_set_level(AP_LOG_WARN);
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
        cmocka_unit_test(test_whole_and_short_answers_never_call_on_gone),
        cmocka_unit_test(test_clients_gone_mid_stream),
        cmocka_unit_test(test_a_worker_blocked_on_its_own_server_is_not_handed_the_call),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ap_server_stop(srv);
    ap_metrics_free(app.metrics);
    return rc;
}
