/*
 * relationship_test.c - relationships, the supervision cycle check, the
 * runner's queries, groups with their hierarchy and limits, and the skill
 * practice rule; on every backend.
 */
#include "testutil.h"

#include <math.h>

#include <jansson.h>

#include "core/id.h"
#include "orch/agent.h"
#include "orch/group.h"
#include "orch/relationship.h"
#include "orch/skill.h"

#define TA "0190a000-0000-7000-8000-0000000000a2"
#define TB "0190a000-0000-7000-8000-0000000000b2"

static const ap_actor_t actor = {.type = "system", .id = "test", .role = "tenant_admin"};

typedef struct {
    ap_arena_t *a;
    ap_tx_t *tx;
    ap_err_t err;
} txs_t;

static void begin(ap_db_t *db, const char *tenant, txs_t *t) {
    memset(t, 0, sizeof *t);
    t->a = ap_arena_new(4096);
    if (ap_db_begin(db, tenant, AP_TX_WRITE, t->a, &t->tx, &t->err))
        fail_msg("begin: %s", t->err.detail);
}

static void end(txs_t *t, bool commit) {
    if (commit && ap_tx_commit(t->tx, &t->err)) fail_msg("commit: %s", t->err.detail);
    ap_arena_free(t->a);
}

static ap_db_t *setup(void) {
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TA, "tenant-a");
    tu_add_tenant(db, TB, "tenant-b");
    return db;
}

static void agent(ap_db_t *db, const char *tenant, const char *name, const char *caps,
                  char id[AP_UUID_LEN]) {
    txs_t t;
    begin(db, tenant, &t);
    json_t *in = json_pack("{s:s,s:s,s:o}", "name", name, "role", "Worker", "capabilities",
                           json_loads(caps, 0, NULL));
    json_t *out = NULL;
    if (ap_orch_agent_create(t.tx, tenant, &actor, in, &out, &t.err))
        fail_msg("agent %s: %s", name, t.err.detail);
    snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    end(&t, true);
}

/* Relates from → to; returns the rc, the error in *err. */
static ap_rc rel(ap_db_t *db, const char *from, const char *to, const char *type,
                 const char *group, ap_err_t *err) {
    txs_t t;
    begin(db, TA, &t);
    json_t *in = json_pack("{s:s,s:s,s:s}", "from_agent_id", from, "to_agent_id", to,
                           "relationship_type", type);
    if (group) json_object_set_new(in, "group_id", json_string(group));
    json_t *out = NULL;
    ap_rc rc = ap_orch_rel_create(t.tx, TA, &actor, in, &out, &t.err);
    json_decref(in);
    json_decref(out);
    if (err) *err = t.err;
    end(&t, rc == AP_OK);
    return rc;
}

static void test_supervision_cycles_refused(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char a[AP_UUID_LEN], b[AP_UUID_LEN], c[AP_UUID_LEN], d[AP_UUID_LEN];
    agent(db, TA, "Alpha", "[]", a);
    agent(db, TA, "Bravo", "[]", b);
    agent(db, TA, "Charlie", "[]", c);
    agent(db, TA, "Delta", "[]", d);
    ap_err_t err;
    assert_int_equal(rel(db, a, b, "supervises", NULL, NULL), AP_OK);
    /* the direct inverse */
    assert_int_equal(rel(db, b, a, "supervises", NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "supervision-cycle");
    assert_non_null(strstr(err.detail, "Bravo supervises Alpha supervises Bravo"));
    /* reports_to is supervision the other way: A reports_to B closes it too */
    assert_int_equal(rel(db, a, b, "reports_to", NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "supervision-cycle");
    /* C reports_to B: B supervises C; then C supervises A closes A→B→C→A */
    assert_int_equal(rel(db, c, b, "reports_to", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, c, a, "supervises", NULL, &err), AP_ERR_CONFLICT);
    assert_non_null(strstr(err.detail, "Charlie supervises Alpha supervises Bravo supervises Charlie"));
    /* a diamond is fine: A supervises D, C supervises D */
    assert_int_equal(rel(db, a, d, "supervises", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, c, d, "supervises", NULL, NULL), AP_OK);
    /* other types never form supervision cycles */
    assert_int_equal(rel(db, d, a, "delegates_to", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, b, a, "collaborates_with", NULL, NULL), AP_OK);
    /* duplicates, self-relations, unknown agents and groups */
    assert_int_equal(rel(db, a, b, "supervises", NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "conflict");
    assert_int_equal(rel(db, a, a, "consults", NULL, &err), AP_ERR_INVALID);
    char other[AP_UUID_LEN];
    agent(db, TB, "Foreign", "[]", other);
    assert_int_equal(rel(db, a, other, "consults", NULL, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "to_agent_id"));
    assert_int_equal(rel(db, a, c, "consults", other, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "group_id"));
    /* one audit entry per relationship written */
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM audit_log WHERE action ="
                              " 'agent.relationship.create'",
                              NULL, 0),
                     6);
    ap_db_close(db);
}

/* A long chain: the walk finds the far end, and the named cycle is cut
 * cleanly when the names do not fit. */
static void test_long_chain_cycle(void **state) {
    (void)state;
    ap_db_t *db = setup();
    tu_exec(db, NULL, "UPDATE tenants SET max_agents = 100 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    enum { N = 60 };
    static char ids[N][AP_UUID_LEN];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "Agent-%02d", i);
        agent(db, TA, name, "[]", ids[i]);
        /* alternate the two spellings of the same supervision */
        if (i > 0)
            assert_int_equal(i % 2 ? rel(db, ids[i - 1], ids[i], "supervises", NULL, NULL)
                                   : rel(db, ids[i], ids[i - 1], "reports_to", NULL, NULL),
                             AP_OK);
    }
    ap_err_t err;
    assert_int_equal(rel(db, ids[N - 1], ids[0], "supervises", NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "supervision-cycle");
    assert_non_null(strstr(err.detail, "the cycle Agent-59 supervises Agent-00 supervises Agent-01 supervises"));
    assert_non_null(strstr(err.detail, " ... (reports_to counts"));
    /* a short way round is named in full, the shortest one */
    assert_int_equal(rel(db, ids[0], ids[2], "supervises", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, ids[0], ids[3], "reports_to", NULL, &err), AP_ERR_CONFLICT);
    assert_non_null(strstr(err.detail, "the cycle Agent-03 supervises Agent-00 supervises Agent-02 supervises Agent-03 ("));
    /* branching off the chain is fine */
    assert_int_equal(rel(db, ids[10], ids[40], "supervises", NULL, NULL), AP_OK);
    ap_db_close(db);
}

static void test_runner_queries(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char m[AP_UUID_LEN], r[AP_UUID_LEN], n[AP_UUID_LEN], x[AP_UUID_LEN];
    agent(db, TA, "Manager", "[\"planning\"]", m);
    agent(db, TA, "Researcher", "[\"research\",\"sources\"]", r);
    agent(db, TA, "Analyst", "[\"analysis\"]", n);
    agent(db, TA, "Expert", "[\"law\"]", x);
    assert_int_equal(rel(db, m, r, "supervises", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, n, m, "reports_to", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, r, n, "collaborates_with", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, r, x, "consults", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, x, n, "delegates_to", NULL, NULL), AP_OK);
    txs_t t;
    begin(db, TA, &t);
    bool yes;
    struct {
        ap_rc (*fn)(ap_tx_t *, const char *, const char *, bool *, ap_err_t *);
        const char *from, *to;
        bool want;
    } cases[] = {
        {ap_orch_rel_allows_delegation, m, r, true},   /* supervises */
        {ap_orch_rel_allows_delegation, m, n, true},   /* n reports_to m */
        {ap_orch_rel_allows_delegation, r, m, false},  /* not upwards */
        {ap_orch_rel_allows_delegation, x, n, true},   /* delegates_to */
        {ap_orch_rel_allows_delegation, n, x, false},
        {ap_orch_rel_allows_delegation, r, n, false},  /* peers do not delegate */
        {ap_orch_rel_can_query, r, n, true},           /* collaborates_with, both ways */
        {ap_orch_rel_can_query, n, r, true},
        {ap_orch_rel_can_query, r, x, true},           /* consults */
        {ap_orch_rel_can_query, x, r, false},          /* consults is one way */
        {ap_orch_rel_can_query, m, r, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cases[i].fn(t.tx, cases[i].from, cases[i].to, &yes, &t.err), AP_OK);
        if (yes != cases[i].want) fail_msg("case %zu: got %d", i, yes);
    }
    const char *boss;
    assert_int_equal(ap_orch_supervisor_of(t.tx, r, &boss, &t.err), AP_OK);
    assert_string_equal(boss, m);
    assert_int_equal(ap_orch_supervisor_of(t.tx, n, &boss, &t.err), AP_OK);
    assert_string_equal(boss, m);
    assert_int_equal(ap_orch_supervisor_of(t.tx, m, &boss, &t.err), AP_OK);
    assert_null(boss);
    json_t *nb = NULL;
    assert_int_equal(ap_orch_rel_neighbours(t.tx, m, &nb, &t.err), AP_OK);
    assert_int_equal(json_array_size(nb), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(nb, i);
        assert_string_equal(json_string_value(json_object_get(e, "relation")), "subordinate");
        assert_true(json_is_array(json_object_get(e, "capabilities")));
    }
    json_decref(nb);
    assert_int_equal(ap_orch_rel_neighbours(t.tx, r, &nb, &t.err), AP_OK);
    /* supervisor first, then peer, then consultant */
    assert_int_equal(json_array_size(nb), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nb, 0), "relation")), "supervisor");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nb, 1), "relation")), "peer");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nb, 1), "name")), "Analyst");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nb, 2), "relation")), "consultant");
    json_decref(nb);
    end(&t, false);
    /* another tenant's transaction sees none of it */
    begin(db, TB, &t);
    assert_int_equal(ap_orch_rel_allows_delegation(t.tx, m, r, &yes, &t.err), AP_OK);
    assert_false(yes);
    end(&t, false);
    ap_db_close(db);
}

static ap_rc group(ap_db_t *db, const char *json, char id[AP_UUID_LEN], ap_err_t *err) {
    txs_t t;
    begin(db, TA, &t);
    json_t *in = json_loads(json, 0, NULL), *out = NULL;
    assert_non_null(in);
    ap_rc rc = ap_orch_group_create(t.tx, TA, &actor, in, &out, &t.err);
    if (!rc) snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    if (err) *err = t.err;
    end(&t, rc == AP_OK);
    return rc;
}

static void test_groups_and_hierarchy(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char m[AP_UUID_LEN], r[AP_UUID_LEN], n[AP_UUID_LEN], out_id[AP_UUID_LEN], g[AP_UUID_LEN];
    agent(db, TA, "Manager", "[]", m);
    agent(db, TA, "Researcher", "[]", r);
    agent(db, TA, "Analyst", "[]", n);
    agent(db, TA, "Outsider", "[]", out_id);
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"Team\",\"goal\":\"answer\",\"members\":[\"%s\",\"%s\",\"%s\"],"
             "\"escalation_rules\":{\"min_confidence\":0.6,\"on_failure\":true,"
             "\"escalate_to\":\"%s\"}}",
             m, r, n, m);
    assert_int_equal(group(db, body, g, NULL), AP_OK);
    assert_int_equal(rel(db, m, r, "supervises", g, NULL), AP_OK);
    assert_int_equal(rel(db, n, m, "reports_to", NULL, NULL), AP_OK);
    assert_int_equal(rel(db, r, n, "collaborates_with", g, NULL), AP_OK);
    assert_int_equal(rel(db, m, out_id, "supervises", NULL, NULL), AP_OK); /* not a member */
    txs_t t;
    begin(db, TA, &t);
    json_t *h = NULL;
    assert_int_equal(ap_orch_group_hierarchy(t.tx, TA, g, &h, &t.err), AP_OK);
    json_t *roots = json_object_get(h, "roots");
    assert_int_equal(json_array_size(roots), 1);
    json_t *root = json_array_get(roots, 0);
    assert_string_equal(json_string_value(json_object_get(root, "agent_id")), m);
    json_t *kids = json_object_get(root, "children");
    assert_int_equal(json_array_size(kids), 2); /* Analyst (reports_to), Researcher */
    assert_string_equal(json_string_value(json_object_get(json_array_get(kids, 0), "name")), "Analyst");
    json_t *edges = json_object_get(h, "edges");
    assert_int_equal(json_array_size(edges), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(edges, 0), "relationship_type")),
                        "collaborates_with");
    json_decref(h);
    /* the runner's view */
    ap_orch_group_ctx_t ctx;
    assert_int_equal(ap_orch_group_context(t.tx, g, &ctx, &t.err), AP_OK);
    assert_string_equal(ctx.goal, "answer");
    assert_true(json_is_true(json_object_get(ctx.escalation_rules, "on_failure")));
    bool member;
    assert_int_equal(ap_orch_group_has_member(t.tx, g, out_id, &member, &t.err), AP_OK);
    assert_false(member);
    json_t *gs = NULL;
    assert_int_equal(ap_orch_agent_groups(t.tx, r, &gs, &t.err), AP_OK);
    assert_int_equal(json_array_size(gs), 1);
    json_decref(gs);
    /* members: add is idempotent, remove of a non-member is 404 */
    json_t *o = NULL;
    assert_int_equal(ap_orch_group_member_add(t.tx, TA, &actor, g, out_id, &o, &t.err), AP_OK);
    assert_int_equal(json_array_size(json_object_get(o, "members")), 4);
    json_decref(o);
    assert_int_equal(ap_orch_group_member_add(t.tx, TA, &actor, g, out_id, &o, &t.err), AP_OK);
    json_decref(o);
    assert_int_equal(ap_orch_group_member_remove(t.tx, TA, &actor, g, out_id, &t.err), AP_OK);
    assert_int_equal(ap_orch_group_member_remove(t.tx, TA, &actor, g, out_id, &t.err),
                     AP_ERR_NOT_FOUND);
    end(&t, true);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'agent_group.member.%'",
                              NULL, 0),
                     2);
    /* bad escalation rules and members are named */
    ap_err_t err;
    char g2[AP_UUID_LEN];
    const char *bad[][2] = {
        {"{\"name\":\"X\",\"escalation_rules\":{\"min_confidence\":2}}", "min_confidence"},
        {"{\"name\":\"X\",\"escalation_rules\":{\"on_fail\":true}}", "on_fail"},
        {"{\"name\":\"X\",\"escalation_rules\":{\"escalate_to\":\"boss\"}}", "escalate_to"},
        {"{\"name\":\"X\",\"members\":[\"nope\"]}", "members[0]"},
        {"{\"name\":\"Team\"}", "Team"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (group(db, bad[i][0], g2, &err) == AP_OK) fail_msg("accepted %s", bad[i][0]);
        if (!strstr(err.detail, bad[i][1])) fail_msg("%s: %s", bad[i][0], err.detail);
    }
    /* max_agent_groups */
    tu_exec(db, NULL, "UPDATE tenants SET max_agent_groups = 2 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    assert_int_equal(group(db, "{\"name\":\"Two\"}", g2, NULL), AP_OK);
    assert_int_equal(group(db, "{\"name\":\"Three\"}", g2, &err), AP_ERR_DENIED);
    assert_string_equal(err.type, "limit-exceeded");
    assert_non_null(strstr(err.detail, "max_agent_groups is 2 and the tenant has 2 groups"));
    assert_string_equal(err.msg, "agent group limit reached");
    assert_string_equal(err.hint, "delete a group, or ask a platform administrator to raise the "
                                  "tenant's max_agent_groups");
    tu_exec(db, NULL, "UPDATE tenants SET max_agent_groups = 5 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    assert_int_equal(group(db, "{\"name\":\"Two\"}", g2, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.detail, "an agent group named \"Two\" exists in this tenant");
    assert_string_equal(err.hint, "choose another name, or update the existing group");
    ap_db_close(db);
}

static void test_skill_rule(void **state) {
    (void)state;
    /* the pure rule */
    ap_orch_skill_state_t s = {0.5, 0, 0};
    ap_orch_skill_apply(&s, true, 0.9);
    assert_int_equal(s.times_used, 1);
    assert_true(fabs(s.success_rate - 1.0) < 1e-9);
    assert_true(fabs(s.proficiency - 0.7) < 1e-9); /* 0.5 + 1/2 (0.9 - 0.5) */
    ap_orch_skill_apply(&s, false, 0.8);
    assert_true(fabs(s.success_rate - 0.5) < 1e-9);
    assert_true(fabs(s.proficiency - 0.7 * 2.0 / 3.0) < 1e-9); /* η = 1/3, target 0 */
    /* many successes at confidence 0.8 converge on 0.8; the rate floors at 0.05 */
    for (int i = 0; i < 400; i++) ap_orch_skill_apply(&s, true, 0.8);
    assert_true(fabs(s.proficiency - 0.8) < 1e-3);
    ap_orch_skill_state_t f = {0.5, 0.5, 1000};
    ap_orch_skill_apply(&f, false, 1);
    assert_true(fabs(f.proficiency - 0.5 * 0.95) < 1e-9);
    /* out-of-range confidence is clamped */
    ap_orch_skill_state_t c = {0, 0, 0};
    ap_orch_skill_apply(&c, true, 7);
    assert_true(fabs(c.proficiency - 0.5) < 1e-9);
    ap_orch_skill_apply(&c, true, NAN);
    assert_true(c.proficiency >= 0 && c.proficiency <= 1);

    /* through the store: a new skill is created as practice */
    ap_db_t *db = setup();
    char a[AP_UUID_LEN];
    agent(db, TA, "Learner", "[]", a);
    txs_t t;
    begin(db, TA, &t);
    json_t *out = NULL;
    assert_int_equal(ap_orch_skill_record_outcome(t.tx, a, "summarise", true, 0.9, "q1", &out,
                                                  &t.err),
                     AP_OK);
    assert_string_equal(json_string_value(json_object_get(out, "learned_from")), "practice");
    assert_int_equal(json_integer_value(json_object_get(out, "times_used")), 1);
    assert_true(fabs(json_number_value(json_object_get(out, "proficiency")) - 0.7) < 1e-9);
    assert_non_null(json_string_value(json_object_get(out, "last_used_at")));
    json_decref(out);
    for (int i = 0; i < 12; i++) {
        char ex[16];
        snprintf(ex, sizeof ex, "q%d", i + 2);
        assert_int_equal(ap_orch_skill_record_outcome(t.tx, a, "summarise", i % 2, 0.5, ex, NULL,
                                                      &t.err),
                         AP_OK);
    }
    assert_int_equal(ap_orch_skill_record_outcome(t.tx, a, "summarise", false, 0.5, NULL, &out,
                                                  &t.err),
                     AP_OK);
    assert_int_equal(json_integer_value(json_object_get(out, "times_used")), 14);
    json_t *ex = json_object_get(out, "examples");
    assert_int_equal(json_array_size(ex), AP_ORCH_SKILL_EXAMPLES);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ex, 9), "text")), "q13");
    /* 1 + 6 successes of 14 */
    assert_true(fabs(json_number_value(json_object_get(out, "success_rate")) - 7.0 / 14.0) < 1e-9);
    json_decref(out);
    /* another tenant's transaction cannot touch the agent */
    end(&t, true);
    begin(db, TB, &t);
    assert_int_equal(ap_orch_skill_record_outcome(t.tx, a, "x", true, 1, NULL, NULL, &t.err),
                     AP_ERR_NOT_FOUND);
    end(&t, false);
    /* a platform-scope transaction finds the agent's tenant */
    begin(db, NULL, &t);
    assert_int_equal(ap_orch_skill_record_outcome(t.tx, a, "x", true, 1, NULL, NULL, &t.err),
                     AP_OK);
    end(&t, true);
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM agent_skills WHERE tenant_id = ?",
                              (ap_val_t[]){AP_VTEXT(TA)}, 1),
                     2);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supervision_cycles_refused),
        cmocka_unit_test(test_long_chain_cycle),
        cmocka_unit_test(test_runner_queries),
        cmocka_unit_test(test_groups_and_hierarchy),
        cmocka_unit_test(test_skill_rule),
    };
    TU_RUN_BACKENDS(tests);
}
