/*
 * memory_test.c - agent memory on every backend: the hot tier's TTL,
 * isolation between agents and tenants on every read path, forget,
 * consolidation (duplicates, contradictions, pruning), sharing rules,
 * re-embedding after an embedder change, and the knowledge graph's
 * temporal facts and k-hop paths.
 */
#include "testutil.h"

#include <pthread.h>

#include <math.h>

#include "llm/embed.h"
#include "memory/graph.h"
#include "memory/hot.h"
#include "memory/index.h"
#include "memory/memory.h"
#include "memory/text.h"

#define T1 "11111111-0000-7000-8000-000000000001"
#define T2 "22222222-0000-7000-8000-000000000002"
#define A1 "aaaaaaaa-0000-7000-8000-000000000001"
#define A2 "aaaaaaaa-0000-7000-8000-000000000002"
#define B1 "bbbbbbbb-0000-7000-8000-000000000001"
#define B2 "bbbbbbbb-0000-7000-8000-000000000002"

static const ap_actor_t actor = {"system", "test", NULL, NULL, NULL};

static void add_agent(ap_db_t *db, const char *tenant, const char *id, const char *name,
                      const char *cfg) {
    tu_exec(db, tenant,
            "INSERT INTO agents (id, tenant_id, name, role, memory_config, created_at, updated_at)"
            " VALUES (?, ?, ?, 'worker', ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            (ap_val_t[]){AP_VTEXT(id), AP_VTEXT(tenant), AP_VTEXT(name), AP_VTEXT(cfg)}, 4);
}

typedef struct {
    ap_db_t *db;
    ap_mem_t *m;
    ap_arena_t *a;
} fx_t;

static fx_t setup(void) {
    fx_t f = {tu_open(), NULL, ap_arena_new(4096)};
    tu_add_tenant(f.db, T1, "t-one");
    tu_add_tenant(f.db, T2, "t-two");
    add_agent(f.db, T1, A1, "a1", "{}");
    add_agent(f.db, T1, A2, "a2", "{}");
    add_agent(f.db, T2, B1, "b1", "{}");
    add_agent(f.db, T2, B2, "b2", "{}");
    ap_err_t err = {0};
    ap_mem_opts_t o = {.db = f.db, .no_worker = true};
    assert_int_equal(ap_mem_new(&o, &f.m, &err), AP_OK);
    return f;
}

static void teardown(fx_t *f) {
    ap_mem_free(f->m);
    ap_arena_free(f->a);
    ap_db_close(f->db);
}

/* Remembers content for agent; returns the new id (arena copy). */
static const char *remember(fx_t *f, const char *tenant, const char *agent, const char *type,
                            const char *content, double importance) {
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:s,s:f}", "content", content, "memory_type", type,
                           "importance", importance), *out = NULL;
    ap_rc rc = ap_mem_remember(f->m, f->a, tenant, &actor, agent, in, &out, &err);
    if (rc) fail_msg("remember: %s %s", err.msg, err.detail);
    const char *id = ap_arena_strdup(f->a, json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    return id;
}

/* Recall: a JSON array of ids (new reference), or NULL with *rc set. */
static json_t *recall(fx_t *f, const char *tenant, const char *agent, const char *query,
                      json_t *extra, ap_rc *rcp) {
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:f}", "query", query, "min_similarity", 0.0), *out = NULL;
    if (extra) json_object_update(in, extra);
    ap_rc rc = ap_mem_recall(f->m, f->a, tenant, agent, in, &out, &err);
    json_decref(in);
    json_decref(extra);
    if (rcp) *rcp = rc;
    if (rc) return NULL;
    json_t *ids = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(out, "data"), i, x) {
        json_array_append(ids, json_object_get(x, "id"));
        assert_true(json_is_number(json_object_get(x, "similarity")));
        assert_true(json_is_number(json_object_get(x, "score")));
    }
    json_decref(out);
    return ids;
}

static bool has(json_t *ids, const char *id) {
    size_t i;
    json_t *x;
    json_array_foreach(ids, i, x) if (!strcmp(json_string_value(x), id)) return true;
    return false;
}

/* ---------- hot tier ---------- */

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

static void test_hot_ttl_and_window(void **state) {
    (void)state;
    fake_now = 1000000;
    ap_mem_hot_t *h = ap_mem_hot_local_new(0, 0, fake_clock);
    ap_err_t err = {0};
    for (int i = 0; i < 12; i++) {
        char msg[16];
        snprintf(msg, sizeof msg, "m%d", i);
        assert_int_equal(h->push(h, T1, A1, "c1", "user", msg, &err), AP_OK);
    }
    json_t *task = json_pack("{s:s}", "objective", "write the report");
    assert_int_equal(h->set_task(h, T1, A1, "c1", task, &err), AP_OK);
    json_decref(task);
    json_t *out;
    assert_int_equal(h->get(h, T1, A1, "c1", &out, &err), AP_OK);
    json_t *msgs = json_object_get(out, "messages");
    assert_int_equal(json_array_size(msgs), 10);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")), "m2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 9), "content")), "m11");
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "task_context"), "objective")),
                        "write the report");
    json_decref(out);
    /* another agent, another tenant: nothing */
    assert_int_equal(h->get(h, T1, A2, "c1", &out, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(h->get(h, T2, A1, "c1", &out, &err), AP_ERR_NOT_FOUND);
    /* just before the hour: alive; at the hour: gone */
    fake_now += AP_MEM_HOT_TTL_MS - 1;
    assert_int_equal(h->get(h, T1, A1, "c1", &out, &err), AP_OK);
    json_decref(out);
    fake_now += 1;
    assert_int_equal(h->get(h, T1, A1, "c1", &out, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(h->count(h), 0);
    /* clear drops every conversation of one agent only */
    h->push(h, T1, A1, "c1", "user", "x", &err);
    h->push(h, T1, A1, "c2", "user", "y", &err);
    h->push(h, T1, A2, "c1", "user", "z", &err);
    assert_int_equal(h->count(h), 3);
    h->clear(h, T1, A1, NULL);
    assert_int_equal(h->count(h), 1);
    assert_int_equal(h->push(h, T1, A1, NULL, "user", "x", &err), AP_ERR_INVALID);
    ap_mem_hot_free(h);
}

/* Many conversations: the map grows and every one stays reachable; expiry
 * follows the last write (a rewritten conversation outlives older ones),
 * whatever the order of first writes; one conversation clears alone. */
static void test_hot_many_and_expiry_order(void **state) {
    (void)state;
    fake_now = 5000000;
    ap_mem_hot_t *h = ap_mem_hot_local_new(3, 1000, fake_clock);
    ap_err_t err = {0};
    char c[32];
    for (int i = 0; i < 5000; i++) { /* one ms apart: conversation i written at 5000000 + i */
        snprintf(c, sizeof c, "c%d", i);
        assert_int_equal(h->push(h, T1, A1, c, "user", c, &err), AP_OK);
        fake_now++;
    }
    /* now 5005000: those written in the last second (4001..4999) are alive */
    assert_int_equal(h->count(h), 999);
    fake_now -= 900;                     /* back to 5004100: the clock stepped back */
    for (int i = 4100; i < 5000; i += 7) {
        json_t *out;
        snprintf(c, sizeof c, "c%d", i);
        assert_int_equal(h->get(h, T1, A1, c, &out, &err), AP_OK);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(out, "messages"), 0), "content")), c);
        json_decref(out);
    }
    fake_now += 900; /* 5005000 */
    /* rewrite conversation 4500 now: it outlives 4501..4999 */
    assert_int_equal(h->push(h, T1, A1, "c4500", "user", "again", &err), AP_OK);
    fake_now += 499; /* 5005499: 4001..4499 gone, 4500 (rewritten) ..4999 alive */
    assert_int_equal(h->count(h), 500);
    fake_now += 500; /* 5005999: only c4500 (written at 5005000) is alive */
    assert_int_equal(h->count(h), 1);
    json_t *out;
    assert_int_equal(h->get(h, T1, A1, "c4500", &out, &err), AP_OK);
    json_t *msgs = json_object_get(out, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    json_decref(out);
    assert_int_equal(h->get(h, T1, A1, "c4999", &out, &err), AP_ERR_NOT_FOUND);
    /* clear of one conversation */
    h->push(h, T1, A1, "x", "user", "1", &err);
    h->push(h, T1, A2, "x", "user", "2", &err);
    assert_int_equal(h->count(h), 3);
    h->clear(h, T1, A1, "x");
    assert_int_equal(h->count(h), 2);
    assert_int_equal(h->get(h, T1, A2, "x", &out, &err), AP_OK);
    json_decref(out);
    fake_now += 1000;
    assert_int_equal(h->count(h), 0);
    ap_mem_hot_free(h);
}

/* Threads pushing, replacing tasks, reading and clearing the same
 * conversations at once (ASan checks the memory): every read is whole. */
static ap_mem_hot_t *hot_shared;

static void *hot_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    ap_err_t err = {0};
    char c[16], msg[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(c, sizeof c, "c%d", (i * 7 + id) % 40);
        switch (i % 5) {
        case 0:
        case 1:
            snprintf(msg, sizeof msg, "t%d-%d", id, i);
            assert_int_equal(hot_shared->push(hot_shared, T1, A1, c, "user", msg, &err), AP_OK);
            break;
        case 2: {
            json_t *task = json_pack("{s:i}", "step", i);
            assert_int_equal(hot_shared->set_task(hot_shared, T1, A1, c, task, &err), AP_OK);
            json_decref(task);
            break;
        }
        case 3: {
            json_t *out = NULL;
            if (hot_shared->get(hot_shared, T1, A1, c, &out, &err) == AP_OK) {
                assert_true(json_array_size(json_object_get(out, "messages")) <= 4);
                json_decref(out);
            }
            break;
        }
        default:
            if (i % 50 == 4) hot_shared->clear(hot_shared, T1, A1, c);
        }
    }
    return NULL;
}

static void test_hot_threads(void **state) {
    (void)state;
    hot_shared = ap_mem_hot_local_new(4, 0, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hot_worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int n = hot_shared->count(hot_shared);
    assert_true(n > 0 && n <= 40);
    hot_shared->clear(hot_shared, T1, A1, NULL);
    assert_int_equal(hot_shared->count(hot_shared), 0);
    ap_mem_hot_free(hot_shared);
}

/* ---------- semantic tier ---------- */

static void test_isolation_matrix(void **state) {
    (void)state;
    fx_t f = setup();
    const char *tenants[2] = {T1, T2};
    const char *agents[2][2] = {{A1, A2}, {B1, B2}};
    const char *ids[2][2];
    for (int t = 0; t < 2; t++)
        for (int g = 0; g < 2; g++) {
            char c[128];
            snprintf(c, sizeof c, "the launch code of project orion is %d%d", t, g);
            ids[t][g] = remember(&f, tenants[t], agents[t][g], "fact", c, 0.7);
        }
    for (int t = 0; t < 2; t++)
        for (int g = 0; g < 2; g++) {
            ap_rc rc;
            json_t *got = recall(&f, tenants[t], agents[t][g], "launch code of project orion",
                                 NULL, &rc);
            assert_int_equal(rc, AP_OK);
            assert_int_equal(json_array_size(got), 1);
            assert_true(has(got, ids[t][g]));
            json_decref(got);
            /* another tenant's agent through this tenant: not found */
            got = recall(&f, tenants[t], agents[1 - t][g], "launch code", NULL, &rc);
            assert_null(got);
            assert_int_equal(rc, AP_ERR_NOT_FOUND);
            /* list, get, inspect, forget of others' memories: not found */
            ap_err_t err = {0};
            json_t *items, *out;
            const char *next;
            assert_int_equal(ap_mem_list(f.m, f.a, tenants[t], agents[1 - t][g], NULL, NULL,
                                         NULL, 10, &items, &next, &err),
                             AP_ERR_NOT_FOUND);
            assert_int_equal(ap_mem_list(f.m, f.a, tenants[t], agents[t][g], NULL, NULL, NULL,
                                         10, &items, &next, &err),
                             AP_OK);
            assert_int_equal(json_array_size(items), 1);
            json_decref(items);
            /* the other agent of the same tenant, and any memory of the other tenant */
            assert_int_equal(ap_mem_get(f.m, f.a, tenants[t], agents[t][g], ids[t][1 - g], NULL,
                                        &out, &err),
                             AP_ERR_NOT_FOUND);
            assert_int_equal(ap_mem_get(f.m, f.a, tenants[t], NULL, ids[1 - t][g], NULL, &out,
                                        &err),
                             AP_ERR_NOT_FOUND);
            assert_int_equal(ap_mem_get(f.m, f.a, tenants[t], NULL, ids[t][g], "orion", &out,
                                        &err),
                             AP_OK);
            assert_true(json_real_value(json_object_get(out, "similarity")) > 0.1);
            json_decref(out);
            assert_int_equal(ap_mem_forget(f.m, f.a, tenants[t], &actor, NULL, ids[1 - t][g], &err),
                             AP_ERR_NOT_FOUND);
            assert_int_equal(ap_mem_forget(f.m, f.a, tenants[t], &actor, agents[t][g],
                                           ids[t][1 - g], &err),
                             AP_ERR_NOT_FOUND);
        }
    /* recall bumped the counters: shown at once, written by the flusher */
    assert_int_equal(tu_count(f.db, T1, "SELECT access_count FROM agent_memories WHERE id = ?",
                              (ap_val_t[]){AP_VTEXT(ids[0][0])}, 1),
                     0);
    ap_err_t err = {0};
    json_t *out;
    assert_int_equal(ap_mem_get(f.m, f.a, T1, NULL, ids[0][0], NULL, &out, &err), AP_OK);
    assert_int_equal(json_integer_value(json_object_get(out, "access_count")), 1);
    assert_true(json_is_string(json_object_get(out, "last_accessed_at")));
    json_decref(out);
    assert_true(ap_mem_flush(f.m) >= 1);
    assert_int_equal(tu_count(f.db, T1, "SELECT access_count FROM agent_memories WHERE id = ?",
                              (ap_val_t[]){AP_VTEXT(ids[0][0])}, 1),
                     1);
    assert_int_equal(ap_mem_flush(f.m), 0); /* nothing left */
    assert_int_equal(ap_mem_get(f.m, f.a, T1, NULL, ids[0][0], NULL, &out, &err), AP_OK);
    assert_int_equal(json_integer_value(json_object_get(out, "access_count")), 1);
    json_decref(out);
    teardown(&f);
}

static void test_forget_removes_from_index(void **state) {
    (void)state;
    fx_t f = setup();
    const char *keep = remember(&f, T1, A1, "experience", "the deploy failed on friday night", 0.5);
    const char *gone = remember(&f, T1, A1, "experience", "the deploy succeeded on monday", 0.5);
    ap_rc rc;
    json_t *got = recall(&f, T1, A1, "deploy", NULL, &rc);
    assert_true(has(got, keep) && has(got, gone));
    json_decref(got);
    ap_err_t err = {0};
    assert_int_equal(ap_mem_forget(f.m, f.a, T1, &actor, A1, gone, &err), AP_OK);
    got = recall(&f, T1, A1, "deploy succeeded monday", NULL, &rc);
    assert_true(has(got, keep));
    assert_false(has(got, gone));
    json_decref(got);
    assert_int_equal(tu_count(f.db, T1, "SELECT COUNT(*) FROM agent_memories WHERE id = ?",
                              (ap_val_t[]){AP_VTEXT(gone)}, 1),
                     0);
    assert_int_equal(tu_count(f.db, T1,
                              "SELECT COUNT(*) FROM audit_log WHERE action = 'memory.forget'"
                              " AND resource_id = ?",
                              (ap_val_t[]){AP_VTEXT(gone)}, 1),
                     1);
    assert_int_equal(ap_mem_forget(f.m, f.a, T1, &actor, A1, gone, &err), AP_ERR_NOT_FOUND);
    teardown(&f);
}

static void test_recall_filters_and_ranking(void **state) {
    (void)state;
    fx_t f = setup();
    const char *lo = remember(&f, T1, A1, "preference", "the user prefers tea in the morning", 0.1);
    const char *hi = remember(&f, T1, A1, "preference", "the user prefers tea in the morning!", 0.9);
    const char *sk = remember(&f, T1, A1, "skill", "brewing tea in the morning", 0.5);
    ap_rc rc;
    json_t *got = recall(&f, T1, A1, "prefers tea morning", NULL, &rc);
    /* same similarity: the important one first */
    assert_string_equal(json_string_value(json_array_get(got, 0)), hi);
    json_decref(got);
    got = recall(&f, T1, A1, "tea", json_pack("{s:[s]}", "types", "skill"), &rc);
    assert_int_equal(json_array_size(got), 1);
    assert_true(has(got, sk));
    json_decref(got);
    got = recall(&f, T1, A1, "tea", json_pack("{s:f}", "min_importance", 0.5), &rc);
    assert_false(has(got, lo));
    assert_true(has(got, hi));
    json_decref(got);
    got = recall(&f, T1, A1, "tea", json_pack("{s:s}", "since", "2999-01-01T00:00:00Z"), &rc);
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    got = recall(&f, T1, A1, "tea", json_pack("{s:[s]}", "types", "nope"), &rc);
    assert_int_equal(rc, AP_ERR_INVALID);
    /* expired memories are not recalled */
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:s,s:s}", "content", "tea expires soon", "memory_type", "fact",
                           "expires_at", "2000-01-01T00:00:00Z"), *out;
    assert_int_equal(ap_mem_remember(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    const char *exp = ap_arena_strdup(f.a, json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    got = recall(&f, T1, A1, "tea expires soon", NULL, &rc);
    assert_false(has(got, exp));
    json_decref(got);
    teardown(&f);
}

static void test_consolidate(void **state) {
    (void)state;
    fx_t f = setup();
    const char *d1 = remember(&f, T1, A1, "experience", "the staging database ran out of disk", 0.4);
    const char *d2 = remember(&f, T1, A1, "experience", "The staging database ran out of disk.", 0.8);
    const char *old = remember(&f, T1, A1, "fact", "The office wifi password is swordfish", 0.6);
    const char *neu = remember(&f, T1, A1, "fact", "The office wifi password is marlin", 0.6);
    const char *other = remember(&f, T1, A1, "fact", "Paris is the capital of France", 0.6);
    const char *b = remember(&f, T1, A2, "experience", "the staging database ran out of disk", 0.4);
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:s,s:s}", "content", "a stale note", "memory_type", "fact",
                           "expires_at", "2000-01-01T00:00:00Z"), *out;
    assert_int_equal(ap_mem_remember(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    const char *exp = ap_arena_strdup(f.a, json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    /* warm the index so consolidation must keep it in sync */
    ap_rc rc;
    json_decref(recall(&f, T1, A1, "disk", NULL, &rc));

    in = json_object();
    assert_int_equal(ap_mem_consolidate(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    json_decref(in);
    json_t *c = json_object_get(out, "counts");
    assert_int_equal(json_integer_value(json_object_get(c, "merged")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "superseded")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "pruned_expired")), 1);
    json_t *mg = json_array_get(json_object_get(out, "merged"), 0);
    assert_string_equal(json_string_value(json_object_get(mg, "kept")), d1);
    assert_string_equal(json_string_value(json_object_get(mg, "removed")), d2);
    json_t *sp = json_array_get(json_object_get(out, "superseded"), 0);
    assert_string_equal(json_string_value(json_object_get(sp, "old")), old);
    assert_string_equal(json_string_value(json_object_get(sp, "new")), neu);
    assert_string_equal(json_string_value(json_array_get(json_object_get(out, "pruned_expired"), 0)), exp);
    json_decref(out);
    /* the kept duplicate took the higher importance; the old fact is superseded, not gone */
    json_t *m;
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A1, d1, NULL, &m, &err), AP_OK);
    assert_true(json_real_value(json_object_get(m, "importance")) > 0.79);
    json_decref(m);
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A1, old, NULL, &m, &err), AP_OK);
    assert_string_equal(json_string_value(json_object_get(m, "status")), "superseded");
    assert_string_equal(json_string_value(json_object_get(m, "superseded_by")), neu);
    json_decref(m);
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A1, d2, NULL, &m, &err), AP_ERR_NOT_FOUND);
    /* recall sees neither the merged-away copy nor the superseded fact */
    json_t *got = recall(&f, T1, A1, "office wifi password", NULL, &rc);
    assert_true(has(got, neu));
    assert_false(has(got, old));
    json_decref(got);
    got = recall(&f, T1, A1, "staging database disk", NULL, &rc);
    assert_true(has(got, d1));
    assert_false(has(got, d2));
    json_decref(got);
    /* the other agent's identical memory and an unrelated fact are untouched */
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A2, b, NULL, &m, &err), AP_OK);
    json_decref(m);
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A1, other, NULL, &m, &err), AP_OK);
    assert_string_equal(json_string_value(json_object_get(m, "status")), "active");
    json_decref(m);
    /* a second pass finds nothing to do */
    in = json_object();
    assert_int_equal(ap_mem_consolidate(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "counts"), "merged")), 0);
    json_decref(in);
    json_decref(out);
    teardown(&f);
}

static void test_share_rules(void **state) {
    (void)state;
    fx_t f = setup();
    const char *id = remember(&f, T1, A1, "procedure", "rotate the api keys every quarter", 0.7);
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:[s]}", "to_agent_id", A2, "memory_ids", id), *out;
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    json_t *sh = json_array_get(json_object_get(out, "shared"), 0);
    const char *copy = ap_arena_strdup(f.a, json_string_value(json_object_get(sh, "id")));
    json_decref(out);
    /* again: skipped, not copied twice */
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    assert_int_equal(json_array_size(json_object_get(out, "skipped")), 1);
    json_decref(out);
    json_decref(in);
    ap_rc rc;
    json_t *got = recall(&f, T1, A2, "rotate api keys", NULL, &rc);
    assert_true(has(got, copy));
    json_decref(got);
    got = recall(&f, T1, A2, "rotate api keys", json_pack("{s:b}", "include_shared", 0), &rc);
    assert_false(has(got, copy));
    json_decref(got);
    json_t *m;
    assert_int_equal(ap_mem_get(f.m, f.a, T1, A2, copy, NULL, &m, &err), AP_OK);
    assert_string_equal(json_string_value(json_object_get(m, "shared_from_memory_id")), id);
    assert_string_equal(json_string_value(json_object_get(m, "shared_from_agent_id")), A1);
    json_decref(m);
    /* across tenants: the receiver does not exist here */
    in = json_pack("{s:s,s:[s]}", "to_agent_id", B1, "memory_ids", id);
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_ERR_NOT_FOUND);
    json_decref(in);
    /* memory_config forbids */
    tu_exec(f.db, T1, "UPDATE agents SET memory_config = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"allow_share_to\":[]}"), AP_VTEXT(A1)}, 2);
    in = json_pack("{s:s,s:[s]}", "to_agent_id", A2, "memory_ids", id);
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_ERR_DENIED);
    assert_non_null(strstr(err.hint, "allow_share_to"));
    tu_exec(f.db, T1, "UPDATE agents SET memory_config = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"allow_share_to\":[\"" A2 "\"]}"), AP_VTEXT(A1)}, 2);
    tu_exec(f.db, T1, "UPDATE agents SET memory_config = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"accept_shared\":false}"), AP_VTEXT(A2)}, 2);
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A1, in, &out, &err), AP_ERR_DENIED);
    assert_non_null(strstr(err.hint, "accept_shared"));
    json_decref(in);
    /* a memory of another agent cannot be shared as one's own */
    in = json_pack("{s:s,s:[s]}", "to_agent_id", A1, "memory_ids", id);
    assert_int_equal(ap_mem_share(f.m, f.a, T1, &actor, A2, in, &out, &err), AP_ERR_NOT_FOUND);
    json_decref(in);
    teardown(&f);
}

static void test_reembed_after_config_change(void **state) {
    (void)state;
    fx_t f = setup();
    const char *id = remember(&f, T1, A1, "fact", "the backup runs at three in the morning", 0.5);
    tu_exec(f.db, T1, "UPDATE agents SET memory_config = ? WHERE id = ?",
            (ap_val_t[]){AP_VTEXT("{\"embedder\":\"builtin\",\"dimensions\":64}"), AP_VTEXT(A1)},
            2);
    ap_rc rc;
    json_t *got = recall(&f, T1, A1, "backup time", NULL, &rc);
    assert_int_equal(rc, AP_OK);
    assert_false(has(got, id)); /* not yet re-embedded */
    json_decref(got);
    assert_int_equal(ap_mem_run_jobs(f.m), 1);
    assert_int_equal(tu_count(f.db, T1, "SELECT dim FROM agent_memories WHERE id = ?",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     64);
    got = recall(&f, T1, A1, "backup", NULL, &rc);
    assert_true(has(got, id));
    json_decref(got);
    teardown(&f);
}

static void test_config_check_and_subject(void **state) {
    (void)state;
    ap_err_t err = {0};
    json_t *c = json_loads("{\"embedder\":\"builtin\",\"allow_share_to\":[\"*\"],"
                           "\"accept_shared\":true,\"duplicate_threshold\":0.9}", 0, NULL);
    assert_int_equal(ap_mem_config_check(c, &err), AP_OK);
    json_decref(c);
    c = json_loads("{\"embeder\":\"builtin\"}", 0, NULL);
    assert_int_equal(ap_mem_config_check(c, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "embeder"));
    json_decref(c);
    c = json_loads("{\"allow_share_to\":[\"bob\"]}", 0, NULL);
    assert_int_equal(ap_mem_config_check(c, &err), AP_ERR_INVALID);
    json_decref(c);
    ap_arena_t *a = ap_arena_new(256);
    assert_string_equal(ap_mem_subject(a, "The office WiFi password is swordfish"),
                        "office wifi password");
    assert_string_equal(ap_mem_subject(a, "Alice's manager: Bob"), "alice's manager");
    assert_null(ap_mem_subject(a, "remember to buy milk"));
    assert_null(ap_mem_subject(a, "is it raining"));
    assert_true(ap_mem_same_text("The build failed.", "the  build FAILED"));
    assert_false(ap_mem_same_text("The build failed", "The build passed"));
    assert_string_equal(ap_mem_norm_name(a, "  Acme   Corp "), "acme corp");
    ap_arena_free(a);
}

static void test_agent_tools_and_task_context(void **state) {
    (void)state;
    fx_t f = setup();
    ap_err_t err = {0};
    json_t *args = json_pack("{s:s,s:s}", "content", "the customer acme wants weekly reports",
                             "memory_type", "preference"), *res;
    assert_int_equal(ap_mem_tool_remember(f.m, T1, A1, args, &res, &err), AP_OK);
    json_decref(args);
    json_decref(res);
    args = json_pack("{s:s,s:s,s:{s:s}}", "entity_type", "company", "name", "Acme",
                     "attributes", "report_cadence", "weekly");
    assert_int_equal(ap_mem_tool_learn_entity(f.m, T1, A1, args, &res, &err), AP_OK);
    json_decref(args);
    json_decref(res);
    assert_int_equal(ap_mem_task_context(f.m, T1, A1, "prepare the report for ACME", 5, &res, &err),
                     AP_OK);
    assert_int_equal(json_array_size(json_object_get(res, "memories")), 1);
    json_t *fact = json_array_get(json_object_get(res, "facts"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(fact, "attributes"),
                                                          "report_cadence")),
                        "weekly");
    json_decref(res);
    args = json_pack("{s:s}", "name", "acme");
    assert_int_equal(ap_mem_tool_query_knowledge(f.m, T1, A1, args, &res, &err), AP_OK);
    assert_int_equal(json_array_size(json_object_get(res, "data")), 1);
    json_decref(res);
    /* the other tenant sees none of it */
    assert_int_equal(ap_mem_tool_query_knowledge(f.m, T2, B1, args, &res, &err), AP_OK);
    assert_int_equal(json_array_size(json_object_get(res, "data")), 0);
    json_decref(res);
    assert_int_equal(ap_mem_tool_query_knowledge(f.m, T2, A1, args, &res, &err), AP_ERR_NOT_FOUND);
    json_decref(args);
    args = json_pack("{s:s}", "content", "x");
    assert_int_equal(ap_mem_tool_remember(f.m, T1, A1, args, &res, &err), AP_ERR_INVALID);
    assert_null(res);
    json_decref(args);
    teardown(&f);
}

/* ---------- knowledge graph ---------- */

static json_t *learn(fx_t *f, const char *tenant, const char *json) {
    ap_err_t err = {0};
    json_t *in = json_loads(json, 0, NULL), *out = NULL;
    assert_non_null(in);
    ap_tx_t *tx;
    if (ap_db_begin(f->db, tenant, AP_TX_WRITE, f->a, &tx, &err) ||
        ap_graph_learn(tx, tenant, &actor, NULL, in, &out, &err) || ap_tx_commit(tx, &err))
        fail_msg("learn %s: %s %s", json, err.msg, err.detail);
    json_decref(in);
    return out;
}

static json_t *query(fx_t *f, const char *tenant, const char *json, ap_rc want) {
    ap_err_t err = {0};
    json_t *in = json_loads(json, 0, NULL), *out = NULL;
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(f->db, tenant, AP_TX_READ, f->a, &tx, &err);
    if (!rc) rc = ap_graph_query(tx, tenant, in, &out, &err);
    ap_tx_rollback(tx);
    json_decref(in);
    if (rc != want) fail_msg("query %s: %d %s %s", json, rc, err.msg, err.detail);
    return out;
}

static const char *attr(json_t *ent, const char *k) {
    return json_string_value(json_object_get(json_object_get(ent, "attributes"), k));
}

static void test_graph_temporal_facts(void **state) {
    (void)state;
    fx_t f = setup();
    json_t *e = learn(&f, T1,
                      "{\"entity_type\":\"company\",\"name\":\"Acme  Corp\",\"confidence\":0.5,"
                      "\"observed_at\":\"2025-01-01T00:00:00Z\",\"attributes\":{\"ceo\":\"Ann\","
                      "\"city\":\"Oslo\"}}");
    const char *id = ap_arena_strdup(f.a, json_string_value(json_object_get(e, "id")));
    json_decref(e);
    e = learn(&f, T1,
              "{\"entity_type\":\"company\",\"name\":\"acme corp\",\"confidence\":0.5,"
              "\"observed_at\":\"2026-01-01T00:00:00Z\",\"attributes\":{\"ceo\":\"Bob\","
              "\"city\":\"Oslo\"}}");
    /* same entity (normalised name), confidence raised, current value Bob */
    assert_string_equal(json_string_value(json_object_get(e, "id")), id);
    assert_true(json_real_value(json_object_get(e, "confidence")) > 0.74);
    assert_int_equal(json_integer_value(json_object_get(e, "evidence_count")), 2);
    assert_string_equal(attr(e, "ceo"), "Bob");
    json_decref(e);
    json_t *r = query(&f, T1, "{\"name\":\"acme\",\"as_of\":\"2025-06-01T00:00:00Z\"}", AP_OK);
    assert_string_equal(attr(json_array_get(json_object_get(r, "data"), 0), "ceo"), "Ann");
    json_decref(r);
    r = query(&f, T1, "{\"name\":\"acme\"}", AP_OK);
    assert_string_equal(attr(json_array_get(json_object_get(r, "data"), 0), "ceo"), "Bob");
    json_decref(r);
    /* by attribute value, then and now */
    r = query(&f, T1, "{\"attribute\":\"ceo\",\"value\":\"Ann\"}", AP_OK);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    r = query(&f, T1, "{\"attribute\":\"ceo\",\"value\":\"Ann\",\"as_of\":\"2025-02-01T00:00:00Z\"}",
              AP_OK);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    json_decref(r);
    /* before it was known: nothing */
    r = query(&f, T1, "{\"name\":\"acme\",\"as_of\":\"2024-01-01T00:00:00Z\"}", AP_OK);
    assert_string_equal(json_string_value(json_object_get(r, "as_of")), "2024-01-01T00:00:00.000Z");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    /* the history is kept: Ann closed when Bob started */
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *g;
    assert_int_equal(ap_db_begin(f.db, T1, AP_TX_READ, f.a, &tx, &err), AP_OK);
    assert_int_equal(ap_graph_get(tx, T1, id, NULL, &g, &err), AP_OK);
    ap_tx_rollback(tx);
    json_t *facts = json_object_get(g, "facts");
    assert_int_equal(json_array_size(facts), 3); /* ceo Ann, ceo Bob, city Oslo */
    json_t *ann = json_array_get(facts, 0);
    assert_string_equal(json_string_value(json_object_get(ann, "value")), "Ann");
    assert_string_equal(json_string_value(json_object_get(ann, "valid_to")), "2026-01-01T00:00:00.000Z");
    json_decref(g);
    r = query(&f, T1, "{\"as_of\":\"yesterday\"}", AP_ERR_INVALID);
    /* other tenant: nothing */
    r = query(&f, T2, "{\"name\":\"acme\"}", AP_OK);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    teardown(&f);
}

static void test_graph_relations_and_paths(void **state) {
    (void)state;
    fx_t f = setup();
    json_t *e = learn(&f, T1,
                      "{\"entity_type\":\"person\",\"name\":\"Ann\",\"observed_at\":\"2025-01-01T00:00:00Z\","
                      "\"relations\":[{\"relation_type\":\"works_for\",\"to\":{\"entity_type\":"
                      "\"company\",\"name\":\"Acme\"},\"evidence\":\"payroll\"}]}");
    const char *ann = ap_arena_strdup(f.a, json_string_value(json_object_get(e, "id")));
    const char *acme = ap_arena_strdup(f.a, json_string_value(json_object_get(
        json_array_get(json_object_get(e, "relations"), 0), "to_entity_id")));
    json_decref(e);
    e = learn(&f, T1,
              "{\"entity_type\":\"company\",\"name\":\"Acme\",\"relations\":[{\"relation_type\":"
              "\"located_in\",\"to\":{\"entity_type\":\"city\",\"name\":\"Oslo\"}}]}");
    json_decref(e);
    e = learn(&f, T1,
              "{\"entity_type\":\"city\",\"name\":\"Oslo\",\"relations\":[{\"relation_type\":"
              "\"capital_of\",\"to\":{\"entity_type\":\"country\",\"name\":\"Norway\"}}]}");
    json_decref(e);
    json_t *r = query(&f, T1, "{\"name\":\"norway\"}", AP_OK);
    const char *norway = ap_arena_strdup(f.a, json_string_value(json_object_get(
        json_array_get(json_object_get(r, "data"), 0), "id")));
    json_decref(r);
    char q[512];
    snprintf(q, sizeof q, "{\"path\":{\"from\":\"%s\",\"to\":\"%s\",\"max_hops\":3}}", ann, norway);
    r = query(&f, T1, q, AP_OK);
    json_t *p = json_array_get(json_object_get(r, "data"), 0);
    assert_non_null(p);
    assert_int_equal(json_integer_value(json_object_get(p, "hops")), 3);
    assert_int_equal(json_array_size(json_object_get(p, "nodes")), 4);
    assert_int_equal(json_array_size(json_object_get(p, "relations")), 3);
    json_decref(r);
    snprintf(q, sizeof q, "{\"path\":{\"from\":\"%s\",\"to\":\"%s\",\"max_hops\":2}}", ann, norway);
    r = query(&f, T1, q, AP_OK);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    /* works_for is single-valued: a new employer closes the old one */
    e = learn(&f, T1,
              "{\"entity_type\":\"person\",\"name\":\"Ann\",\"observed_at\":\"2026-01-01T00:00:00Z\","
              "\"relations\":[{\"relation_type\":\"works_for\",\"to\":{\"entity_type\":"
              "\"company\",\"name\":\"Globex\"}}]}");
    json_decref(e);
    snprintf(q, sizeof q, "{\"neighbors_of\":\"%s\"}", ann);
    r = query(&f, T1, q, AP_OK);
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(d, 0), "entity"), "name")),
                        "Globex");
    json_decref(r);
    snprintf(q, sizeof q, "{\"neighbors_of\":\"%s\",\"as_of\":\"2025-06-01T00:00:00Z\"}", ann);
    r = query(&f, T1, q, AP_OK);
    d = json_object_get(r, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(d, 0), "entity"), "id")),
                        acme);
    json_decref(r);
    /* export, and other tenants */
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *g;
    assert_int_equal(ap_db_begin(f.db, T1, AP_TX_READ, f.a, &tx, &err), AP_OK);
    assert_int_equal(ap_graph_export(tx, T1, NULL, &g, &err), AP_OK);
    assert_int_equal(json_array_size(json_object_get(g, "nodes")), 5);
    assert_int_equal(json_array_size(json_object_get(g, "edges")), 3);
    json_decref(g);
    ap_tx_rollback(tx);
    snprintf(q, sizeof q, "{\"neighbors_of\":\"%s\"}", ann);
    r = query(&f, T2, q, AP_ERR_NOT_FOUND);
    assert_int_equal(ap_db_begin(f.db, T2, AP_TX_WRITE, f.a, &tx, &err), AP_OK);
    assert_int_equal(ap_graph_delete(tx, T2, &actor, ann, &err), AP_ERR_NOT_FOUND);
    ap_tx_rollback(tx);
    assert_int_equal(ap_db_begin(f.db, T1, AP_TX_WRITE, f.a, &tx, &err), AP_OK);
    assert_int_equal(ap_graph_delete(tx, T1, &actor, ann, &err), AP_OK);
    assert_int_equal(ap_tx_commit(tx, &err), AP_OK);
    assert_int_equal(tu_count(f.db, T1, "SELECT COUNT(*) FROM knowledge_relations WHERE from_entity_id = ?",
                              (ap_val_t[]){AP_VTEXT(ann)}, 1),
                     0);
    teardown(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hot_ttl_and_window),
        cmocka_unit_test(test_hot_many_and_expiry_order),
        cmocka_unit_test(test_hot_threads),
        cmocka_unit_test(test_config_check_and_subject),
        cmocka_unit_test(test_isolation_matrix),
        cmocka_unit_test(test_forget_removes_from_index),
        cmocka_unit_test(test_recall_filters_and_ranking),
        cmocka_unit_test(test_consolidate),
        cmocka_unit_test(test_share_rules),
        cmocka_unit_test(test_reembed_after_config_change),
        cmocka_unit_test(test_agent_tools_and_task_context),
        cmocka_unit_test(test_graph_temporal_facts),
        cmocka_unit_test(test_graph_relations_and_paths),
    };
    TU_RUN_BACKENDS(tests);
}
