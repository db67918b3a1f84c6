/*
 * call_test.c - llm/call.c, the model-call driver, on every backend:
 * the builtin model (plain and streamed), metering with agent and task
 * ids, budget refusals as their own error kind, routing errors, and —
 * against build/fake-upstream (started here; the tests that need it skip
 * when it is not built) — retries, fallbacks, streams that fail before and
 * after their first token, and cancellation.
 */
#include "testutil.h"
#include "fakeup.h"

#include <pthread.h>

#include "llm/breaker.h"
#include "llm/call.h"
#include "llm/upstream.h"
#include "llm/usage.h"

#define T1 "01a1ca11-0000-7000-8000-000000000001"
#define AGENT "01a1ca11-0000-7000-8000-0000000000a1"
#define TASK "01a1ca11-0000-7000-8000-0000000000b1"

/* ---- the fake upstream --------------------------------------------------- */

static int fake_port;

/* Starts build/fake-upstream once (fakeup.h) and points the openai
 * provider at it; false when it is not built. */
static bool fake_start(void) {
    if (fake_port) return true;
    fake_port = tu_fake_start();
    if (!fake_port) return false;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", fake_port);
    setenv("AP_PROVIDER_OPENAI_BASE_URL", url, 1);
    return true;
}

/* ---- a call, and what came back ----------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, opens, deltas;
    bool open_before_delta;
    ap_buf_t text;
    bool ok;
    ap_llm_error_t lerr;
    char explain[512];
    char finish[32];
    int64_t completion;
} got_t;

static void got_init(got_t *g) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    ap_buf_init(&g->text, 0);
    g->open_before_delta = true;
}

static void got_free(got_t *g) {
    ap_buf_free(&g->text);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void cb_open(void *ud, const char *explain) {
    got_t *g = ud;
    g->opens++;
    snprintf(g->explain, sizeof g->explain, "%s", explain);
}

static void cb_delta(void *ud, const ap_llm_delta_t *d) {
    got_t *g = ud;
    if (!g->opens) g->open_before_delta = false;
    g->deltas++;
    if (d->content) ap_buf_append(&g->text, d->content, strlen(d->content));
}

static void cb_done(void *ud, const ap_llm_resp_t *resp, const ap_llm_error_t *lerr,
                    const char *explain) {
    got_t *g = ud;
    g->ok = resp != NULL;
    if (lerr) g->lerr = *lerr;
    assert_true((resp == NULL) != (lerr == NULL));
    snprintf(g->explain, sizeof g->explain, "%s", explain);
    if (resp && resp->content) ap_buf_append(&g->text, resp->content, strlen(resp->content));
    if (resp && resp->finish_reason)
        snprintf(g->finish, sizeof g->finish, "%s", resp->finish_reason);
    if (resp) g->completion = resp->usage.completion;
    pthread_mutex_lock(&g->mu);
    g->done++;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void got_wait(got_t *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->done) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

typedef struct {
    ap_db_t *db;
    ap_upstream_t *up;
    ap_usage_writer_t *usage;
    ap_breaker_t *breaker;
    ap_llm_call_env_t env;
} fix_t;

static void fix_open(fix_t *f, bool upstream) {
    memset(f, 0, sizeof *f);
    f->db = tu_open();
    tu_add_tenant(f->db, T1, "t1");
    ap_err_t err = {0};
    if (upstream) assert_int_equal(ap_upstream_new(&f->up, &err), AP_OK);
    assert_int_equal(ap_usage_writer_new(f->db, &f->usage, &err), AP_OK);
    f->breaker = ap_breaker_new(0, 0);
    f->env = (ap_llm_call_env_t){.db = f->db, .upstream = f->up, .usage = f->usage,
                                 .breaker = f->breaker};
}

static void fix_close(fix_t *f) {
    ap_upstream_free(f->up);
    ap_usage_writer_free(f->usage);
    ap_breaker_free(f->breaker);
    ap_db_close(f->db);
}

static ap_llm_req_t user_req(ap_arena_t *a, const char *model, const char *text, bool stream) {
    ap_llm_msg_t *m = ap_arena_calloc(a, sizeof *m);
    m->role = AP_LLM_USER;
    m->content = text;
    return (ap_llm_req_t){.model = model, .msgs = m, .nmsgs = 1, .stream = stream};
}

/* Runs one call with start (asynchronously) and waits for on_done. */
static ap_rc run(fix_t *f, ap_arena_t *a, const ap_llm_req_t *req, const char **headers, int nh,
                 got_t *g, ap_err_t *err) {
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = T1, .agent_id = AGENT, .task_id = TASK};
    for (int i = 0; i < nh; i++) o.headers[o.nheaders++] = headers[i];
    ap_llm_call_cb_t cb = {.on_open = cb_open, .on_delta = cb_delta, .on_done = cb_done, .ud = g};
    ap_rc rc = ap_llm_call_start(&f->env, &o, req, &cb, NULL, err);
    if (!rc) got_wait(g);
    return rc;
}

/* ---- builtin ------------------------------------------------------------- */

static void test_builtin_sync(void **state) {
    (void)state;
    fix_t f;
    fix_open(&f, false);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_llm_req_t req = user_req(a, "auto", "The sky is blue. What colour is the sky?", false);
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = T1, .agent_id = AGENT, .task_id = TASK};
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    const char *explain = NULL;
    assert_int_equal(ap_llm_call_sync(&f.env, &o, &req, NULL, NULL, &resp, &lerr, &explain, &err),
                     AP_OK);
    assert_int_equal(lerr.kind, AP_LLM_OK);
    assert_non_null(resp.content);
    assert_non_null(strstr(resp.content, "blue"));
    assert_true(resp.usage.completion > 0);
    assert_non_null(strstr(explain, "served by builtin/agentprov-mini (auto: easy request"));
    ap_usage_flush(f.usage);
    assert_int_equal(tu_count(f.db, T1,
                              "SELECT COUNT(*) FROM llm_usage WHERE agent_id = ? AND task_id = ?"
                              " AND outcome = 'success' AND model = 'agentprov-mini'",
                              (ap_val_t[]){AP_VTEXT(AGENT), AP_VTEXT(TASK)}, 2),
                     1);
    ap_arena_free(a);
    fix_close(&f);
}

static void test_builtin_stream(void **state) {
    (void)state;
    fix_t f;
    fix_open(&f, false);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    got_t g;
    got_init(&g);
    ap_llm_req_t req = user_req(a, "builtin/agentprov-mini", "Water is wet. Is water wet?", true);
    assert_int_equal(run(&f, a, &req, NULL, 0, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_int_equal(g.opens, 1);
    assert_true(g.open_before_delta);
    assert_true(g.deltas > 1);
    assert_non_null(strstr(g.text.p, "wet"));
    assert_string_equal(g.finish, "stop");
    assert_true(g.completion > 0);
    assert_string_equal(g.explain, "served by builtin/agentprov-mini (requested)");
    got_free(&g);
    ap_arena_free(a);
    fix_close(&f);
}

static void test_budget_refusal(void **state) {
    (void)state;
    fix_t f;
    fix_open(&f, false);
    tu_exec(f.db, NULL, "UPDATE tenants SET monthly_token_limit = 10 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(T1)}, 1);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    got_t g;
    got_init(&g);
    ap_llm_req_t req = user_req(a, "auto", "hello", false);
    req.max_tokens = 50;
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = T1};
    ap_llm_call_cb_t cb = {.on_done = cb_done, .ud = &g};
    assert_int_equal(ap_llm_call_start(&f.env, &o, &req, &cb, NULL, &err), AP_OK);
    assert_int_equal(g.done, 1); /* inline, before start returned */
    assert_false(g.ok);
    assert_int_equal(g.lerr.kind, AP_LLM_BUDGET_EXCEEDED);
    assert_string_equal(g.lerr.budget, "monthly_token_limit");
    assert_non_null(strstr(g.lerr.resets_at, "-01T00:00:00.000Z"));
    assert_true(g.lerr.retry_after_ms >= 1000);
    assert_non_null(strstr(g.lerr.message, "monthly_token_limit is 10 tokens"));
    assert_string_equal(ap_llm_errkind_name(g.lerr.kind), "budget_exceeded");
    ap_usage_flush(f.usage);
    assert_int_equal(tu_count(f.db, T1, "SELECT COUNT(*) FROM llm_usage", NULL, 0), 0);
    got_free(&g);
    ap_arena_free(a);
    fix_close(&f);
}

static void test_route_error(void **state) {
    (void)state;
    fix_t f;
    fix_open(&f, false);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    got_t g;
    got_init(&g);
    ap_llm_req_t req = user_req(a, "nosuch/model-x", "hello", false);
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = T1};
    ap_llm_call_cb_t cb = {.on_done = cb_done, .ud = &g};
    assert_int_equal(ap_llm_call_start(&f.env, &o, &req, &cb, NULL, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(g.done, 0); /* a failed start never calls back */
    assert_non_null(strstr(err.detail, "nosuch/model-x"));
    got_free(&g);
    ap_arena_free(a);
    fix_close(&f);
}

/* ---- provider calls against the fake ------------------------------------ */

static bool need_fake(void) {
    if (!fake_start()) {
        fprintf(stderr, "build/fake-upstream not built: skipped\n");
        return false;
    }
    setenv("AP_FALLBACK_MODELS", "builtin/agentprov-mini", 1);
    return true;
}

static void test_provider_retry_and_fallback(void **state) {
    (void)state;
    if (!need_fake()) skip();
    fix_t f;
    fix_open(&f, true);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_llm_req_t req = user_req(a, "openai/gpt-4o-mini", "hello", false);

    /* plain success */
    got_t g;
    got_init(&g);
    const char *h1[] = {"x-fake-reply: hi there"};
    assert_int_equal(run(&f, a, &req, h1, 1, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_string_equal(g.text.p, "hi there");
    assert_string_equal(g.explain, "served by openai/gpt-4o-mini (requested)");
    got_free(&g);

    /* one overload, then success on the retry of the same target */
    char key[64];
    snprintf(key, sizeof key, "x-fake-key: retry-%s-%d", tu_backend(), (int)getpid());
    const char *h2[] = {"x-fake-fail-first: 1", "x-fake-status: 503", key};
    got_init(&g);
    assert_int_equal(run(&f, a, &req, h2, 3, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_string_equal(g.explain, "served by openai/gpt-4o-mini (requested); "
                                   "failed openai/gpt-4o-mini: overloaded");
    got_free(&g);

    /* always failing: retries, then the fallback chain (the builtin model) */
    const char *h3[] = {"x-fake-status: 500"};
    got_init(&g);
    assert_int_equal(run(&f, a, &req, h3, 1, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_string_equal(g.explain,
                        "served by builtin/agentprov-mini (requested); "
                        "failed openai/gpt-4o-mini: upstream_error; "
                        "failed openai/gpt-4o-mini: upstream_error; "
                        "failed openai/gpt-4o-mini: upstream_error");
    got_free(&g);

    /* a client error is not retried and does not fall back */
    const char *h4[] = {"x-fake-status: 400"};
    got_init(&g);
    assert_int_equal(run(&f, a, &req, h4, 1, &g, &err), AP_OK);
    assert_false(g.ok);
    assert_int_equal(g.lerr.kind, AP_LLM_BAD_REQUEST);
    assert_string_equal(g.explain, "failed openai/gpt-4o-mini: bad_request");
    got_free(&g);

    /* metering: every attempt, with its outcome */
    ap_usage_flush(f.usage);
    assert_int_equal(tu_count(f.db, T1,
                              "SELECT COUNT(*) FROM llm_usage WHERE outcome = 'error'"
                              " AND task_id = ?",
                              (ap_val_t[]){AP_VTEXT(TASK)}, 1),
                     5);
    assert_int_equal(tu_count(f.db, T1,
                              "SELECT COUNT(*) FROM llm_usage WHERE outcome = 'success'", NULL, 0),
                     3);
    ap_arena_free(a);
    fix_close(&f);
}

static void test_provider_streams(void **state) {
    (void)state;
    if (!need_fake()) skip();
    fix_t f;
    fix_open(&f, true);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_llm_req_t req = user_req(a, "openai/gpt-4o-mini", "hello", true);

    /* a whole stream */
    got_t g;
    got_init(&g);
    const char *h1[] = {"x-fake-reply: one two three"};
    assert_int_equal(run(&f, a, &req, h1, 1, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_int_equal(g.opens, 1);
    assert_string_equal(g.text.p, "one two three");
    got_free(&g);

    /* failing before the first token: falls back, the builtin model streams */
    const char *h2[] = {"x-fake-status: 529"};
    got_init(&g);
    assert_int_equal(run(&f, a, &req, h2, 1, &g, &err), AP_OK);
    assert_true(g.ok);
    assert_int_equal(g.opens, 1);
    assert_non_null(strstr(g.explain, "served by builtin/agentprov-mini"));
    assert_non_null(strstr(g.explain, "failed openai/gpt-4o-mini: overloaded"));
    got_free(&g);

    /* cut after tokens went out: an error, never a replay elsewhere */
    const char *h3[] = {"x-fake-reply: a b c d e", "x-fake-cut-after: 2"};
    got_init(&g);
    assert_int_equal(run(&f, a, &req, h3, 2, &g, &err), AP_OK);
    assert_false(g.ok);
    assert_int_equal(g.opens, 1);
    assert_int_equal(g.lerr.kind, AP_LLM_UPSTREAM);
    assert_null(strstr(g.explain, "builtin"));
    assert_non_null(strstr(g.explain, "served by openai/gpt-4o-mini (requested); "
                                      "failed openai/gpt-4o-mini: upstream_error"));
    got_free(&g);
    ap_arena_free(a);
    fix_close(&f);
}

static void test_cancel(void **state) {
    (void)state;
    if (!need_fake()) skip();
    fix_t f;
    fix_open(&f, true);
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_llm_req_t req = user_req(a, "openai/gpt-4o-mini", "hello", false);
    got_t g;
    got_init(&g);
    ap_llm_call_opts_t o = {.arena = a, .tenant_id = T1, .nheaders = 1};
    o.headers[0] = "x-fake-stall: 1";
    ap_llm_call_cb_t cb = {.on_done = cb_done, .ud = &g};
    ap_llm_call_t *c = NULL;
    assert_int_equal(ap_llm_call_start(&f.env, &o, &req, &cb, &c, &err), AP_OK);
    assert_non_null(c);
    usleep(100 * 1000);
    assert_int_equal(g.done, 0);
    ap_llm_call_cancel(c);
    got_wait(&g);
    assert_false(g.ok);
    /* cancelled: neither retried nor moved to the fallback */
    assert_string_equal(g.explain, "failed openai/gpt-4o-mini: upstream_error");
    assert_non_null(strstr(g.lerr.message, "cancelled"));
    ap_llm_call_cancel(c); /* harmless after on_done while the arena lives */
    got_free(&g);
    ap_arena_free(a);
    fix_close(&f);
}

int main(void) {
    setenv("AP_RETRY_BASE_MS", "1", 1);
    unsetenv("AP_DEFAULT_MODEL");
    unsetenv("AP_FALLBACK_MODELS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_sync),
        cmocka_unit_test(test_builtin_stream),
        cmocka_unit_test(test_budget_refusal),
        cmocka_unit_test(test_route_error),
        cmocka_unit_test(test_provider_retry_and_fallback),
        cmocka_unit_test(test_provider_streams),
        cmocka_unit_test(test_cancel),
    };
    TU_RUN_BACKENDS(tests);
}
