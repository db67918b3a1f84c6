/*
 * upstream_test.c - the event loop (core/loop.c) and upstreams on it
 * (llm/upstream.c), against build/fake-upstream (started here; the tests
 * that need it skip when it is not built).
 *
 * An upstream on a loop run by another thread is what a server worker
 * has; the tests submit from the loop's own thread (the gateway's path:
 * started at once, on_done never inside submit) and from other threads
 * (queued), cancel before the start, in flight and from inside on_done,
 * and shut down with jobs in flight, delayed, and submitted by on_done
 * while the upstream shuts down (retries): every job ends exactly once.
 */
#include "testutil.h"
#include "fakeup.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "core/loop.h"
#include "llm/upstream.h"

/* ---- the fake upstream --------------------------------------------------- */

static int fake_port;
static char fake_url[96];

static bool fake_start(void) {
    if (fake_port) return true;
    fake_port = tu_fake_start();
    if (!fake_port) return false;
    snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%d/v1/chat/completions", fake_port);
    return true;
}

#define NEED_FAKE()                                                     \
    do {                                                                \
        if (!fake_start()) {                                            \
            skip();                                                     \
            return;                                                     \
        }                                                               \
    } while (0)

/* ---- jobs and what came back -------------------------------------------- */

typedef struct res {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int done;
    int status;
    ap_llm_error_t lerr;
    char body[512];
    bool on_loop_thread;
    ap_loop_t *loop;
    ap_upstream_t *u;
    ap_upstream_job_t *job;
    bool cancel_in_done;   /* cancel the job from inside on_done */
    struct res *resubmit;  /* submit this one from inside on_done (a retry) */
    const char *latency;   /* x-fake-latency-ms of the resubmission */
} res_t;

static void res_init(res_t *r, ap_loop_t *loop) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->loop = loop;
}

static void res_free(res_t *r) {
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static void submit(ap_upstream_t *u, res_t *r, const char *latency_ms, int delay_ms);

static void on_done(void *ud, int status, const char *retry_after, const char *body, size_t len,
                    const ap_llm_error_t *lerr) {
    (void)retry_after;
    res_t *r = ud;
    assert_int_equal(atomic_load(&r->done), 0); /* exactly once */
    r->status = status;
    r->lerr = *lerr;
    snprintf(r->body, sizeof r->body, "%.*s", (int)(len < 500 ? len : 500), body);
    r->on_loop_thread = r->loop ? ap_loop_on_thread(r->loop) : true;
    if (r->cancel_in_done) ap_upstream_cancel(r->u, r->job); /* still valid here */
    if (r->resubmit) submit(r->u, r->resubmit, r->latency, 0);
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->done, 1);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void submit(ap_upstream_t *u, res_t *r, const char *latency_ms, int delay_ms) {
    char lat[64];
    snprintf(lat, sizeof lat, "x-fake-latency-ms: %s", latency_ms ? latency_ms : "0");
    static const char body[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hello loop\"}]}";
    ap_http_call_t call = {.url = fake_url,
                           .headers = {"Content-Type: application/json", lat},
                           .nheaders = 2,
                           .body = body,
                           .len = sizeof body - 1};
    ap_upstream_limits_t lim = {.timeout_ms = 20000, .delay_ms = delay_ms};
    ap_upstream_cb_t cb = {.on_done = on_done, .ud = r};
    r->u = u;
    ap_err_t err = {0};
    assert_int_equal(ap_upstream_submit(u, &call, &lim, &cb, &r->job, &err), AP_OK);
}

/* Waits up to ms for on_done; true if it ran. */
static bool res_wait(res_t *r, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->done))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
    pthread_mutex_unlock(&r->mu);
    return atomic_load(&r->done);
}

static void assert_ok(res_t *r) {
    assert_int_equal(r->lerr.kind, AP_LLM_OK);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "echo: hello loop"));
}

static void assert_ended(res_t *r, const char *why) {
    assert_int_equal(r->lerr.kind, AP_LLM_UPSTREAM);
    assert_string_equal(r->lerr.message, why);
}

/* A worker-like set-up: an upstream on a loop that another thread runs. */
typedef struct {
    ap_loop_t *loop;
    ap_upstream_t *u;
} worker_t;

static void worker_start(worker_t *w) {
    ap_err_t err = {0};
    assert_int_equal(ap_loop_new(&w->loop, &err), AP_OK);
    assert_int_equal(ap_upstream_new_on(w->loop, &w->u, &err), AP_OK);
    assert_int_equal(ap_loop_start_thread(w->loop, &err), AP_OK);
}

static void worker_stop(worker_t *w) {
    ap_upstream_shutdown(w->u);
    ap_loop_join(w->loop);
    ap_upstream_free(w->u);
    ap_loop_free(w->loop);
}

static int64_t ms_since(int64_t t0) {
    return ap_loop_now_ms() - t0;
}

/* ---- the loop ------------------------------------------------------------- */

typedef struct {
    ap_loop_t *loop;
    bool on_thread;
    int runs;
} probe_t;

static void probe(void *arg) {
    probe_t *p = arg;
    p->on_thread = ap_loop_on_thread(p->loop);
    p->runs++;
}

static void test_loop_call_runs_on_the_loop_or_inline(void **state) {
    (void)state;
    ap_loop_t *l;
    ap_err_t err = {0};
    assert_int_equal(ap_loop_new(&l, &err), AP_OK);
    probe_t p = {.loop = l};
    ap_loop_call(l, probe, &p); /* not running: inline, on this thread */
    assert_int_equal(p.runs, 1);
    assert_false(p.on_thread);
    assert_int_equal(ap_loop_start_thread(l, &err), AP_OK);
    assert_false(ap_loop_on_thread(l));
    for (int i = 0; i < 100; i++) ap_loop_call(l, probe, &p);
    assert_int_equal(p.runs, 101);
    assert_true(p.on_thread);
    ap_loop_join(l);
    ap_loop_call(l, probe, &p); /* stopped: inline again */
    assert_int_equal(p.runs, 102);
    assert_false(p.on_thread);
    ap_loop_free(l);
}

/* ---- submissions ---------------------------------------------------------- */

static void test_submit_from_another_thread(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    res_t r[8];
    for (int i = 0; i < 8; i++) {
        res_init(&r[i], w.loop);
        submit(w.u, &r[i], NULL, 0); /* this thread does not run the loop: queued */
    }
    for (int i = 0; i < 8; i++) {
        assert_true(res_wait(&r[i], 10000));
        assert_ok(&r[i]);
        assert_true(r[i].on_loop_thread);
        res_free(&r[i]);
    }
    worker_stop(&w);
}

typedef struct {
    worker_t *w;
    res_t *r;
    int active_after_submit;
    int done_after_submit;
} onloop_t;

static void submit_on_loop(void *arg) {
    onloop_t *o = arg;
    submit(o->w->u, o->r, NULL, 0);
    o->active_after_submit = ap_upstream_active(o->w->u);
    o->done_after_submit = atomic_load(&o->r->done);
}

/* The gateway's path: on the loop's own thread the transfer is in curl
 * (and the request sent) when submit returns; on_done comes later. */
static void test_submit_on_the_loop_thread_starts_at_once(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    for (int i = 0; i < 20; i++) {
        res_t r;
        res_init(&r, w.loop);
        onloop_t o = {.w = &w, .r = &r};
        ap_loop_call(w.loop, submit_on_loop, &o);
        assert_int_equal(o.active_after_submit, 1);
        assert_int_equal(o.done_after_submit, 0);
        assert_true(res_wait(&r, 10000));
        assert_ok(&r);
        assert_true(r.on_loop_thread);
        res_free(&r);
    }
    worker_stop(&w);
}

/* ---- cancellation ---------------------------------------------------------- */

static void test_cancel_before_start(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    res_t r;
    res_init(&r, w.loop);
    int64_t t0 = ap_loop_now_ms();
    submit(w.u, &r, NULL, 30000); /* waits 30 s (a retry's backoff) */
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&r.done), 0);
    ap_upstream_cancel(w.u, r.job);
    assert_true(res_wait(&r, 5000));
    assert_true(ms_since(t0) < 5000);
    assert_ended(&r, "request cancelled");
    assert_int_equal(r.status, 0);
    assert_true(r.on_loop_thread);
    res_free(&r);
    worker_stop(&w);
}

static void test_cancel_in_flight(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    res_t r;
    res_init(&r, w.loop);
    int64_t t0 = ap_loop_now_ms();
    submit(w.u, &r, "10000", 0); /* the fake answers after 10 s */
    usleep(200 * 1000);
    assert_int_equal(ap_upstream_active(w.u), 1);
    ap_upstream_cancel(w.u, r.job);
    assert_true(res_wait(&r, 5000));
    assert_true(ms_since(t0) < 5000); /* at once, not at the next progress call */
    assert_ended(&r, "request cancelled");
    assert_int_equal(ap_upstream_active(w.u), 0);
    res_free(&r);
    /* the upstream goes on */
    res_init(&r, w.loop);
    submit(w.u, &r, NULL, 0);
    assert_true(res_wait(&r, 10000));
    assert_ok(&r);
    res_free(&r);
    worker_stop(&w);
}

/* Cancelling from inside on_done (the job is still valid there) neither
 * calls on_done again nor disturbs the next job. */
static void test_cancel_after_completion(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    res_t r, next;
    res_init(&r, w.loop);
    res_init(&next, w.loop);
    r.cancel_in_done = true;
    r.resubmit = &next;
    submit(w.u, &r, NULL, 0);
    assert_true(res_wait(&r, 10000));
    assert_ok(&r);
    assert_true(res_wait(&next, 10000)); /* submitted from on_done, on the loop's thread */
    assert_ok(&next);
    assert_true(next.on_loop_thread);
    usleep(50 * 1000); /* a second on_done of r would fail its assert */
    res_free(&r);
    res_free(&next);
    worker_stop(&w);
}

/* ---- shutdown ---------------------------------------------------------------- */

static void test_shutdown_with_jobs_in_flight(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    res_t fly, later, retry, delayed, after;
    res_init(&fly, w.loop);
    res_init(&later, w.loop);
    res_init(&retry, w.loop);
    res_init(&delayed, w.loop);
    res_init(&after, w.loop);
    later.resubmit = &retry; /* its on_done submits again, as a retry does */
    later.latency = "10000";
    submit(w.u, &fly, "10000", 0);
    submit(w.u, &later, "10000", 0);
    submit(w.u, &delayed, NULL, 30000);
    usleep(200 * 1000);
    assert_int_equal(ap_upstream_active(w.u), 2);
    int64_t t0 = ap_loop_now_ms();
    ap_upstream_shutdown(w.u);
    /* shutdown returns when the jobs have ended, the retry included */
    assert_int_equal(atomic_load(&fly.done), 1);
    assert_int_equal(atomic_load(&later.done), 1);
    assert_int_equal(atomic_load(&retry.done), 1);
    assert_int_equal(atomic_load(&delayed.done), 1);
    assert_true(ms_since(t0) < 5000);
    assert_ended(&fly, "shutting down");
    assert_ended(&later, "shutting down");
    assert_ended(&retry, "shutting down");
    assert_ended(&delayed, "shutting down");
    assert_int_equal(ap_upstream_active(w.u), 0);
    /* later submissions end the same way, on the loop's thread */
    submit(w.u, &after, NULL, 0);
    assert_true(res_wait(&after, 5000));
    assert_ended(&after, "shutting down");
    assert_true(after.on_loop_thread);
    res_free(&fly);
    res_free(&later);
    res_free(&retry);
    res_free(&delayed);
    res_free(&after);
    worker_stop(&w);
}

/* A job queued for a loop that no longer runs ends when the upstream is
 * freed. */
static void test_free_ends_what_a_stopped_loop_left(void **state) {
    (void)state;
    NEED_FAKE();
    worker_t w;
    worker_start(&w);
    ap_loop_join(w.loop);
    res_t r;
    res_init(&r, NULL);
    submit(w.u, &r, NULL, 0);
    assert_int_equal(atomic_load(&r.done), 0);
    ap_upstream_free(w.u);
    assert_int_equal(atomic_load(&r.done), 1);
    assert_ended(&r, "shutting down");
    ap_loop_free(w.loop);
    res_free(&r);
}

/* The shared upstream: a loop and a thread of its own. */
static void test_own_thread_upstream(void **state) {
    (void)state;
    NEED_FAKE();
    ap_upstream_t *u;
    ap_err_t err = {0};
    assert_int_equal(ap_upstream_new(&u, &err), AP_OK);
    res_t ok, fly;
    res_init(&ok, NULL);
    res_init(&fly, NULL);
    submit(u, &ok, NULL, 0);
    assert_true(res_wait(&ok, 10000));
    assert_ok(&ok);
    submit(u, &fly, "10000", 0);
    usleep(200 * 1000);
    ap_upstream_free(u); /* ends the job in flight */
    assert_int_equal(atomic_load(&fly.done), 1);
    assert_ended(&fly, "shutting down");
    res_free(&ok);
    res_free(&fly);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_call_runs_on_the_loop_or_inline),
        cmocka_unit_test(test_submit_from_another_thread),
        cmocka_unit_test(test_submit_on_the_loop_thread_starts_at_once),
        cmocka_unit_test(test_cancel_before_start),
        cmocka_unit_test(test_cancel_in_flight),
        cmocka_unit_test(test_cancel_after_completion),
        cmocka_unit_test(test_shutdown_with_jobs_in_flight),
        cmocka_unit_test(test_free_ends_what_a_stopped_loop_left),
        cmocka_unit_test(test_own_thread_upstream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
