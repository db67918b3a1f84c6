/*
 * agent_test.c - agents: immutable versions, the lifecycle and its
 * refusals, the max_agents limit, what the runner reads; on every backend.
 */
#include "testutil.h"

#include <jansson.h>

#include <sys/stat.h>

#include "audit/audit.h"
#include "cmd/demo.h"
#include "core/id.h"
#include "orch/agent.h"

#define TA "0190a000-0000-7000-8000-0000000000a1"
#define TB "0190a000-0000-7000-8000-0000000000b1"

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

/* Creates an agent from JSON text; copies its id into id. */
static ap_rc create(ap_db_t *db, const char *tenant, const char *json, char id[AP_UUID_LEN],
                    ap_err_t *err) {
    txs_t t;
    begin(db, tenant, &t);
    json_t *in = json_loads(json, 0, NULL);
    assert_non_null(in);
    json_t *out = NULL;
    ap_rc rc = ap_json_check(in, ap_orch_agent_create_fields, &t.err);
    if (!rc) rc = ap_orch_agent_create(t.tx, tenant, &actor, in, &out, &t.err);
    if (!rc) snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    if (err) *err = t.err;
    end(&t, rc == AP_OK);
    return rc;
}

static ap_rc update(ap_db_t *db, const char *tenant, const char *id, const char *json,
                    ap_err_t *err) {
    txs_t t;
    begin(db, tenant, &t);
    json_t *in = json_loads(json, 0, NULL), *out = NULL;
    ap_rc rc = ap_orch_agent_update(t.tx, tenant, &actor, id, in, &out, &t.err);
    json_decref(in);
    json_decref(out);
    if (err) *err = t.err;
    end(&t, rc == AP_OK);
    return rc;
}

/* Runs op; *status (optional, 32 bytes) gets the agent's status after. */
static ap_rc step(ap_db_t *db, const char *id, ap_agent_op op, int version, char *status,
                  ap_err_t *err) {
    txs_t t;
    begin(db, TA, &t);
    json_t *out = NULL;
    ap_rc rc = ap_orch_agent_transition(t.tx, TA, &actor, id, op, version, &out, &t.err);
    if (!rc && status)
        snprintf(status, 32, "%s", json_string_value(json_object_get(out, "status")));
    json_decref(out);
    if (err) *err = t.err;
    end(&t, rc == AP_OK);
    return rc;
}

static json_t *get(ap_db_t *db, const char *tenant, const char *id) {
    txs_t t;
    begin(db, tenant, &t);
    json_t *out = NULL;
    if (ap_orch_agent_get(t.tx, tenant, id, &out, &t.err)) fail_msg("get: %s", t.err.detail);
    end(&t, false);
    return out;
}

static json_t *version(ap_db_t *db, const char *id, int v) {
    txs_t t;
    begin(db, TA, &t);
    json_t *out = NULL;
    if (ap_orch_agent_version_get(t.tx, TA, id, v, &out, &t.err))
        fail_msg("version %d: %s", v, t.err.detail);
    end(&t, false);
    return out;
}

static void test_versions_are_immutable(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char id[AP_UUID_LEN];
    assert_int_equal(create(db, TA,
                            "{\"name\":\"Rita\",\"role\":\"Researcher\",\"capabilities\":"
                            "[\"research\"],\"tools\":[\"recall\",\"mcp:web/search\"]}",
                            id, NULL),
                     AP_OK);
    assert_int_equal(update(db, TA, id, "{\"description\":\"finds sources\"}", NULL), AP_OK);
    assert_int_equal(update(db, TA, id, "{\"capabilities\":[\"research\",\"sources\"]}", NULL),
                     AP_OK);
    json_t *a = get(db, TA, id);
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(a, "description")), "finds sources");
    assert_int_equal(json_array_size(json_object_get(a, "capabilities")), 2);
    json_decref(a);
    /* version 1 is exactly what was created; version 2 carries only the
     * first change on top of it */
    json_t *v1 = version(db, id, 1), *v2 = version(db, id, 2);
    json_t *s1 = json_object_get(v1, "spec"), *s2 = json_object_get(v2, "spec");
    assert_string_equal(json_string_value(json_object_get(s1, "description")), "");
    assert_string_equal(json_string_value(json_object_get(s2, "description")), "finds sources");
    assert_int_equal(json_array_size(json_object_get(s2, "capabilities")), 1);
    assert_string_equal(json_string_value(json_object_get(v1, "state")), "draft");
    json_decref(v1);
    json_decref(v2);
    /* the store refuses to rewrite a version row twice (primary key) */
    ap_err_t err = {0};
    assert_int_equal(tu_try(db, TA,
                            "INSERT INTO agent_versions (tenant_id, agent_id, version, spec,"
                            " created_at) VALUES (?, ?, 1, '{}', 'x')",
                            (ap_val_t[]){AP_VTEXT(TA), AP_VTEXT(id)}, 2, &err),
                     AP_ERR_CONFLICT);
    /* … and to change one: only its state may move */
    assert_int_equal(tu_try(db, TA, "UPDATE agent_versions SET spec = '{}' WHERE agent_id = ?",
                            (ap_val_t[]){AP_VTEXT(id)}, 1, &err),
                     AP_ERR_DENIED);
    assert_int_equal(tu_try(db, TA, "UPDATE agent_versions SET version = 9 WHERE agent_id = ?",
                            (ap_val_t[]){AP_VTEXT(id)}, 1, &err),
                     AP_ERR_DENIED);
    tu_exec(db, TA, "UPDATE agent_versions SET state = 'validated' WHERE agent_id = ? AND version = 1",
            (ap_val_t[]){AP_VTEXT(id)}, 1);
    /* the store's CHECKs back the service's checks */
    assert_int_equal(tu_try(db, TA, "UPDATE agents SET status = 'asleep' WHERE id = ?",
                            (ap_val_t[]){AP_VTEXT(id)}, 1, &err),
                     AP_ERR_INVALID);
    /* a bad change leaves no new version */
    assert_int_equal(update(db, TA, id, "{\"tools\":[\"rm_rf\"]}", &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "rm_rf"));
    assert_int_equal(tu_count(db, TA, "SELECT COUNT(*) FROM agent_versions WHERE agent_id = ?",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     3);
    /* one audit entry per change, in the tenant's chain */
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM audit_log WHERE tenant_id = ? AND"
                              " resource_id = ? AND action IN ('agent.create', 'agent.update')",
                              (ap_val_t[]){AP_VTEXT(TA), AP_VTEXT(id)}, 2),
                     3);
    /* another tenant does not see it */
    txs_t t;
    begin(db, TB, &t);
    json_t *out = NULL;
    assert_int_equal(ap_orch_agent_get(t.tx, TB, id, &out, &t.err), AP_ERR_NOT_FOUND);
    end(&t, false);
    ap_db_close(db);
}

static void test_lifecycle(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char id[AP_UUID_LEN], st[32];
    ap_err_t err;
    assert_int_equal(create(db, TA, "{\"name\":\"Max\",\"role\":\"Manager\"}", id, NULL), AP_OK);
    /* a draft cannot be deployed, paused or resumed: 409 naming what is allowed */
    assert_int_equal(step(db, id, AP_AGENT_DEPLOY, 0, NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "invalid-transition");
    assert_non_null(strstr(err.detail, "allowed from draft: :validate, :retire"));
    assert_int_equal(step(db, id, AP_AGENT_PAUSE, 0, NULL, &err), AP_ERR_CONFLICT);
    assert_int_equal(step(db, id, AP_AGENT_VALIDATE, 0, st, NULL), AP_OK);
    assert_string_equal(st, "validated");
    assert_int_equal(step(db, id, AP_AGENT_RESUME, 0, NULL, &err), AP_ERR_CONFLICT);
    assert_non_null(strstr(err.detail, ":deploy"));
    assert_int_equal(step(db, id, AP_AGENT_DEPLOY, 0, st, NULL), AP_OK);
    assert_string_equal(st, "deployed");
    json_t *a = get(db, TA, id);
    assert_int_equal(json_integer_value(json_object_get(a, "deployed_version")), 1);
    json_decref(a);

    /* a new draft while deployed: status and deployed version stay */
    assert_int_equal(update(db, TA, id, "{\"role\":\"Director\"}", NULL), AP_OK);
    a = get(db, TA, id);
    assert_string_equal(json_string_value(json_object_get(a, "status")), "deployed");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    json_decref(a);
    /* the draft version cannot be deployed before it is validated */
    assert_int_equal(step(db, id, AP_AGENT_DEPLOY, 2, NULL, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "not-validated");
    assert_int_equal(step(db, id, AP_AGENT_DEPLOY, 7, NULL, &err), AP_ERR_NOT_FOUND);

    /* the runner sees version 1 */
    txs_t t;
    begin(db, TA, &t);
    ap_orch_agent_spec_t spec;
    assert_int_equal(ap_orch_agent_runnable(t.tx, id, &spec, &t.err), AP_OK);
    assert_int_equal(spec.version, 1);
    assert_string_equal(spec.role, "Manager");
    assert_null(spec.llm_config_id);
    assert_true(json_is_array(spec.capabilities));
    assert_int_equal(ap_orch_agent_set_running(t.tx, id, true, &t.err), AP_OK);
    end(&t, true);
    a = get(db, TA, id);
    assert_string_equal(json_string_value(json_object_get(a, "status")), "running");
    json_decref(a);

    assert_int_equal(step(db, id, AP_AGENT_VALIDATE, 0, st, NULL), AP_OK);
    assert_string_equal(st, "running");
    assert_int_equal(step(db, id, AP_AGENT_DEPLOY, 0, st, NULL), AP_OK);
    a = get(db, TA, id);
    assert_int_equal(json_integer_value(json_object_get(a, "deployed_version")), 2);
    json_decref(a);
    assert_int_equal(step(db, id, AP_AGENT_PAUSE, 0, st, NULL), AP_OK);
    assert_string_equal(st, "paused");
    begin(db, TA, &t);
    assert_int_equal(ap_orch_agent_runnable(t.tx, id, &spec, &t.err), AP_ERR_CONFLICT);
    assert_string_equal(t.err.type, "agent-not-runnable");
    assert_non_null(strstr(t.err.detail, "paused"));
    /* set_running leaves a paused agent alone */
    assert_int_equal(ap_orch_agent_set_running(t.tx, id, true, &t.err), AP_OK);
    /* a pinned version is readable whatever the status */
    assert_int_equal(ap_orch_agent_spec(t.tx, id, 1, &spec, &t.err), AP_OK);
    assert_string_equal(spec.role, "Manager");
    end(&t, true);
    assert_int_equal(step(db, id, AP_AGENT_RESUME, 0, st, NULL), AP_OK);
    assert_string_equal(st, "deployed");
    assert_int_equal(step(db, id, AP_AGENT_RETIRE, 0, st, NULL), AP_OK);
    assert_string_equal(st, "retired");
    /* retired is final */
    for (ap_agent_op op = AP_AGENT_VALIDATE; op <= AP_AGENT_RETIRE; op++) {
        assert_int_equal(step(db, id, op, 0, NULL, &err), AP_ERR_CONFLICT);
        assert_non_null(strstr(err.detail, "allowed from retired: none"));
    }
    assert_int_equal(update(db, TA, id, "{\"role\":\"x\"}", &err), AP_ERR_CONFLICT);
    assert_int_equal(tu_count(db, TA,
                              "SELECT COUNT(*) FROM audit_log WHERE resource_id = ? AND action IN"
                              " ('agent.validate', 'agent.deploy', 'agent.pause', 'agent.resume',"
                              " 'agent.retire')",
                              (ap_val_t[]){AP_VTEXT(id)}, 1),
                     7);
    ap_db_close(db);
}

static void test_validation_names_problems(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char id[AP_UUID_LEN], cfg[AP_UUID_LEN];
    ap_err_t err;
    /* an LLM configuration that exists when the agent is written */
    ap_uuid7(cfg);
    tu_exec(db, TA,
            "INSERT INTO llm_configs (id, tenant_id, name, created_at, updated_at)"
            " VALUES (?, ?, 'cfg', 'x', 'x')",
            (ap_val_t[]){AP_VTEXT(cfg), AP_VTEXT(TA)}, 2);
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"Ann\",\"role\":\"Analyst\",\"llm_config_id\":\"%s\","
             "\"tools\":[\"delegate_to_agent\"],\"max_delegation_depth\":0}",
             cfg);
    assert_int_equal(create(db, TA, body, id, NULL), AP_OK);
    /* … and is deleted before validation */
    tu_exec(db, TA, "DELETE FROM llm_configs WHERE id = ?", (ap_val_t[]){AP_VTEXT(cfg)}, 1);
    assert_int_equal(step(db, id, AP_AGENT_VALIDATE, 0, NULL, &err), AP_ERR_INVALID);
    assert_string_equal(err.type, "agent-invalid");
    assert_non_null(strstr(err.detail, cfg));
    assert_non_null(strstr(err.detail, "max_delegation_depth is 0"));
    json_t *a = get(db, TA, id);
    assert_string_equal(json_string_value(json_object_get(a, "status")), "draft");
    json_decref(a);

    /* write-time checks */
    const char *bad[][2] = {
        {"{\"name\":\"B\",\"role\":\"R\",\"tools\":[\"mcp:/x\"]}", "mcp:/x"},
        {"{\"name\":\"B\",\"role\":\"R\",\"tools\":[\"recall\",\"recall\"]}", "repeats"},
        {"{\"name\":\"B\",\"role\":\"  \"}", "role"},
        {"{\"name\":\"B\",\"role\":\"R\",\"capabilities\":[1]}", "capabilities[0]"},
        {"{\"name\":\"B\",\"role\":\"R\",\"memory_config\":{\"ttl\":1}}", "memory_config.ttl"},
        {"{\"name\":\"B\",\"role\":\"R\",\"memory_config\":{\"ttl_days\":-1}}", "ttl_days"},
        {"{\"name\":\"B\",\"role\":\"R\",\"memory_config\":{\"embedder\":\"nope/x\"}}", "nope/x"},
        {"{\"name\":\"B\",\"role\":\"R\",\"memory_config\":{\"share_with\":[\"all\"]}}", "all"},
        {"{\"name\":\"B\",\"role\":\"R\",\"max_delegation_depth\":11}", "max_delegation_depth"},
        {"{\"name\":\"B\",\"role\":\"R\",\"autonomy_level\":\"yolo\"}", "autonomy_level"},
        {"{\"name\":\"B\",\"role\":\"R\",\"llm_config_id\":\"not-a-uuid\"}", "not-a-uuid"},
        {"{\"name\":\"Ann\",\"role\":\"R\"}", "Ann"},
    };
    char id2[AP_UUID_LEN];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ap_rc rc = create(db, TA, bad[i][0], id2, &err);
        if (rc == AP_OK) fail_msg("accepted %s", bad[i][0]);
        if (!strstr(err.detail, bad[i][1]))
            fail_msg("%s: detail \"%s\" does not name %s", bad[i][0], err.detail, bad[i][1]);
    }
    assert_int_equal(create(db, TA,
                            "{\"name\":\"C\",\"role\":\"R\",\"memory_config\":{\"embedder\":"
                            "\"builtin\",\"share_with\":[\"group\"],\"allow_share\":true,"
                            "\"ttl_days\":0,\"recall_limit\":5}}",
                            id2, &err),
                     AP_OK);
    assert_true(ap_orch_tool_known("mcp:files/read_file"));
    assert_false(ap_orch_tool_known("mcp:files"));
    assert_false(ap_orch_tool_known("mcp:files/a/b"));
    assert_false(ap_orch_tool_known("Recall"));
    ap_db_close(db);
}

static void test_max_agents(void **state) {
    (void)state;
    ap_db_t *db = setup();
    tu_exec(db, NULL, "UPDATE tenants SET max_agents = 2 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    char a1[AP_UUID_LEN], a2[AP_UUID_LEN], a3[AP_UUID_LEN];
    ap_err_t err;
    assert_int_equal(create(db, TA, "{\"name\":\"one\",\"role\":\"R\"}", a1, NULL), AP_OK);
    assert_int_equal(create(db, TA, "{\"name\":\"two\",\"role\":\"R\"}", a2, NULL), AP_OK);
    assert_int_equal(create(db, TA, "{\"name\":\"three\",\"role\":\"R\"}", a3, &err), AP_ERR_DENIED);
    assert_string_equal(err.type, "limit-exceeded");
    assert_non_null(strstr(err.detail, "max_agents is 2"));
    assert_non_null(strstr(err.detail, "has 2 agents"));
    assert_string_equal(err.msg, "agent limit reached");
    assert_string_equal(err.hint, "retire an agent, or ask a platform administrator to raise the "
                                  "tenant's max_agents");
    /* a taken name is a conflict that names it */
    tu_exec(db, NULL, "UPDATE tenants SET max_agents = 10 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    assert_int_equal(create(db, TA, "{\"name\":\"two\",\"role\":\"R\"}", a3, &err), AP_ERR_CONFLICT);
    assert_string_equal(err.type, "conflict");
    assert_string_equal(err.detail, "an agent named \"two\" exists in this tenant");
    assert_string_equal(err.hint, "choose another name, or update the existing agent");
    tu_exec(db, NULL, "UPDATE tenants SET max_agents = 2 WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(TA)}, 1);
    /* the other tenant is not affected; a retired agent frees its place */
    assert_int_equal(create(db, TB, "{\"name\":\"three\",\"role\":\"R\"}", a3, NULL), AP_OK);
    assert_int_equal(step(db, a1, AP_AGENT_RETIRE, 0, NULL, NULL), AP_OK);
    assert_int_equal(create(db, TA, "{\"name\":\"three\",\"role\":\"R\"}", a3, NULL), AP_OK);
    ap_db_close(db);
}

static void test_list_and_versions_pages(void **state) {
    (void)state;
    ap_db_t *db = setup();
    char id[AP_UUID_LEN], other[AP_UUID_LEN];
    assert_int_equal(create(db, TA, "{\"name\":\"p\",\"role\":\"R\"}", id, NULL), AP_OK);
    assert_int_equal(create(db, TA, "{\"name\":\"q\",\"role\":\"R\"}", other, NULL), AP_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(update(db, TA, id, "{\"description\":\"d\"}", NULL), AP_OK);
    assert_int_equal(step(db, other, AP_AGENT_VALIDATE, 0, NULL, NULL), AP_OK);
    txs_t t;
    begin(db, TA, &t);
    json_t *items = NULL;
    int next = 0, seen = 0, last = 100;
    int after = 0;
    do {
        assert_int_equal(ap_orch_agent_versions(t.tx, TA, id, after, 2, &items, &next, &t.err), AP_OK);
        size_t i;
        json_t *v;
        json_array_foreach(items, i, v) {
            int n = (int)json_integer_value(json_object_get(v, "version"));
            assert_true(n < last);
            last = n;
            seen++;
        }
        json_decref(items);
        after = next;
    } while (next);
    assert_int_equal(seen, 5);
    const char *cur = NULL;
    assert_int_equal(ap_orch_agent_list(t.tx, TA, "validated", NULL, 10, &items, &cur, &t.err), AP_OK);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), other);
    json_decref(items);
    assert_int_equal(ap_orch_agent_list(t.tx, TA, NULL, NULL, 1, &items, &cur, &t.err), AP_OK);
    assert_non_null(cur);
    json_decref(items);
    end(&t, false);
    ap_db_close(db);
}

/* The demo seed: a deployed team; a second seed (a restart whose admin
 * key was revoked) changes nothing and writes no key. */
static void test_demo_seed(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    char dir[] = "/tmp/apdemo-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    bool created = false;
    ap_err_t err = {0};
    if (ap_cmd_demo_seed(db, dir, &created, path, sizeof path, &err)) fail_msg("%s", err.detail);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM agents a JOIN tenants t ON t.id = a.tenant_id"
                              " WHERE t.slug = 'demo' AND a.status = 'deployed'"
                              " AND a.deployed_version = 1 AND a.llm_config_id IS NULL",
                              NULL, 0),
                     3);
    assert_int_equal(tu_count(db, NULL,
                              "SELECT COUNT(*) FROM agent_relationships WHERE relationship_type"
                              " = 'supervises'",
                              NULL, 0),
                     2);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM agent_group_members", NULL, 0), 3);
    unlink(path);
    if (ap_cmd_demo_seed(db, dir, &created, path, sizeof path, &err)) fail_msg("%s", err.detail);
    assert_false(created);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM agents", NULL, 0), 3);
    assert_int_equal(tu_count(db, NULL, "SELECT COUNT(*) FROM tenants WHERE slug = 'demo'", NULL, 0), 1);
    rmdir(dir);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_are_immutable),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_validation_names_problems),
        cmocka_unit_test(test_max_agents),
        cmocka_unit_test(test_list_and_versions_pages),
        cmocka_unit_test(test_demo_seed),
    };
    TU_RUN_BACKENDS(tests);
}
