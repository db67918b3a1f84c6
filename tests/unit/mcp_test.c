/*
 * mcp_test.c - JSON-RPC classification, MCP lifecycle and dispatch, the
 * tool table (schemas from field tables, per-tool authorisation and
 * audit), sessions.
 */
#include "testutil.h"

#include <jansson.h>

#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "mcp/session.h"
#include "mcp/tools.h"

#define TID "01900000-0000-7000-8000-0000000000a1"

static json_t *J(const char *s) {
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v) fail_msg("bad test JSON %s: %s", s, e.text);
    return v;
}

static ap_rpc_kind kind_of(const char *s, char *why, size_t cap) {
    json_t *v = J(s);
    ap_rpc_msg_t m;
    ap_rpc_classify(v, &m);
    if (why) snprintf(why, cap, "%s", m.why);
    json_decref(v);
    return m.kind;
}

static void test_classify(void **state) {
    (void)state;
    char why[160];
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", NULL, 0), AP_RPC_REQUEST);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}", NULL, 0), AP_RPC_REQUEST);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", NULL, 0), AP_RPC_NOTIFICATION);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", NULL, 0), AP_RPC_RESPONSE);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"m\"}}", NULL, 0), AP_RPC_RESPONSE);
    assert_int_equal(kind_of("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", why, sizeof why), AP_RPC_INVALID);
    assert_non_null(strstr(why, "jsonrpc"));
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", why, sizeof why), AP_RPC_INVALID);
    assert_non_null(strstr(why, "id"));
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", NULL, 0), AP_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[1]}", why, sizeof why), AP_RPC_INVALID);
    assert_non_null(strstr(why, "params"));
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"m\"}}", NULL, 0), AP_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"method\":\"\"}", NULL, 0), AP_RPC_INVALID);
    assert_int_equal(kind_of("[1]", NULL, 0), AP_RPC_INVALID);
    assert_int_equal(kind_of("\"x\"", NULL, 0), AP_RPC_INVALID);
    json_t *root;
    bool batch;
    ap_err_t err;
    assert_int_equal(ap_rpc_parse("{\"a\":1,\"a\":2}", 13, &root, &batch, &err), AP_ERR_INVALID);
    assert_null(root);
    assert_int_equal(ap_rpc_parse("", 0, &root, &batch, &err), AP_ERR_INVALID);
    assert_int_equal(ap_rpc_parse("[]", 2, &root, &batch, &err), AP_OK);
    assert_true(batch);
    json_decref(root);
    assert_int_equal(ap_rpc_code_for_status(401), AP_RPC_UNAUTHENTICATED);
    assert_int_equal(ap_rpc_code_for_status(404), AP_RPC_NOT_FOUND);
    assert_int_equal(ap_rpc_code_for_status(415), AP_RPC_INVALID_REQUEST);
    assert_int_equal(ap_rpc_code_for_status(503), AP_RPC_INTERNAL_ERROR);
}

static void test_versions(void **state) {
    (void)state;
    assert_true(ap_mcp_version_supported("2025-06-18"));
    assert_true(ap_mcp_version_supported("2025-03-26"));
    assert_false(ap_mcp_version_supported("2025-06-1"));
    assert_false(ap_mcp_version_supported(NULL));
    assert_false(ap_mcp_version_allows_batch("2025-06-18"));
    assert_true(ap_mcp_version_allows_batch("2025-03-26"));
    assert_true(ap_mcp_version_allows_batch("2024-11-05"));
}

static void test_schema_from_fields(void **state) {
    (void)state;
    int live = 0, pending = 0;
    for (const ap_mcp_tool_t *t = ap_mcp_tools; t->name; t++) {
        json_t *s = ap_mcp_tool_schema(t);
        json_t *props = json_object_get(s, "properties");
        int nf = 0;
        for (const ap_jfield_t *f = t->fields; f->name; f++, nf++) {
            json_t *p = json_object_get(props, f->name);
            assert_non_null(p);
            assert_string_equal(json_string_value(json_object_get(p, "type")), ap_jtype_name(f->type));
            assert_non_null(json_object_get(p, "description")); /* every field documented */
        }
        assert_int_equal(json_object_size(props), nf);
        assert_true(json_is_false(json_object_get(s, "additionalProperties")));
        json_decref(s);
        if (t->fn) live++;
        else pending++;
        assert_true(t->perm != AP_PERM_NONE);
    }
    assert_int_equal(live + pending, 10);
    /* tools/list shows the live ones only */
    json_t *l = ap_mcp_tools_list();
    assert_int_equal(json_array_size(json_object_get(l, "tools")), live);
    json_decref(l);
    assert_int_equal(pending, 0); /* every tool has its service in this build */
    assert_non_null(ap_mcp_tool_find("query_agent"));
    assert_null(ap_mcp_tool_find("run_shell"));
    assert_non_null(ap_mcp_tool_find("list_agents"));
}

static json_t *call(const ap_mcp_caller_t *c, ap_mcp_state_t *st, const char *msg) {
    ap_arena_t *a = ap_arena_new(1024);
    json_t *m = J(msg);
    json_t *r = ap_mcp_handle(c, st, a, m);
    json_decref(m);
    ap_arena_free(a);
    return r;
}

static void test_dispatch_and_tool_authorisation(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TID, "mcp-unit");
    ap_actor_t actor = {.type = "key", .id = "k-viewer", .role = "viewer"};
    ap_mcp_caller_t c = {.db = db, .tenant_id = TID, .key_id = "k-viewer", .role = AP_ROLE_VIEWER,
                         .actor = &actor};
    ap_mcp_state_t st = {0};
    json_t *r = call(&c, &st, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                              "{\"protocolVersion\":\"2024-11-05\"}}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "protocolVersion")),
                        "2024-11-05");
    assert_true(st.did_initialize);
    json_decref(r);
    r = call(&c, &st, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")), -32602);
    json_decref(r);
    assert_null(call(&c, &st, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
    assert_true(st.initialized);
    /* a viewer may read agents but not create tasks: an isError result, audited as denied */
    r = call(&c, &st, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
                      "\"create_task\",\"arguments\":{\"agent_id\":\"x\",\"objective\":\"y\"}}}");
    json_t *res = json_object_get(r, "result");
    assert_true(json_is_true(json_object_get(res, "isError")));
    const char *text = json_string_value(json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    assert_non_null(strstr(text, "tool create_task needs permission task.write; role viewer lacks it"));
    json_decref(r);
    r = call(&c, &st, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
                      "\"list_agents\"}}");
    assert_true(json_is_false(json_object_get(json_object_get(r, "result"), "isError")));
    json_decref(r);
    ap_val_t p[] = {AP_VTEXT(TID)};
    assert_int_equal(tu_count(db, TID, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = ? AND"
                                       " action = 'mcp.tool.call' AND outcome = 'denied'", p, 1), 1);
    assert_int_equal(tu_count(db, TID, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = ? AND"
                                       " action = 'mcp.tool.call' AND outcome = 'success'", p, 1), 1);
    /* a batch is refused once 2025-06-18 is negotiated */
    ap_arena_t *a = ap_arena_new(1024);
    json_t *b = J("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"), *ans;
    bool refused;
    st.protocol_version = "2025-06-18";
    ap_mcp_process(&c, &st, a, b, true, &ans, &refused);
    assert_true(refused);
    json_decref(ans);
    st.protocol_version = "2025-03-26";
    ap_mcp_process(&c, &st, a, b, true, &ans, &refused);
    assert_false(refused);
    assert_int_equal(json_array_size(ans), 1);
    json_decref(ans);
    json_decref(b);
    ap_arena_free(a);
    ap_db_close(db);
}

static void test_sessions(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TID, "mcp-unit");
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    ap_mcp_session_t s, g;
    assert_int_equal(ap_mcp_session_create(db, a, TID, "key-1", "2025-06-18", "c", "1", &s, &err), AP_OK);
    assert_true(ap_mcp_session_id_valid(s.id));
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-1", s.id, &g, &err), AP_OK);
    assert_string_equal(g.protocol_version, "2025-06-18");
    assert_false(g.initialized);
    assert_int_equal(ap_mcp_session_mark_initialized(db, a, TID, s.id, &err), AP_OK);
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-1", s.id, &g, &err), AP_OK);
    assert_true(g.initialized);
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-2", s.id, &g, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-1", "nope", &g, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_mcp_session_delete(db, a, TID, "key-2", s.id, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_mcp_session_delete(db, a, TID, "key-1", s.id, &err), AP_OK);
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-1", s.id, &g, &err), AP_ERR_NOT_FOUND);
    /* an expired session is gone, and removed when the key opens the next */
    assert_int_equal(ap_mcp_session_create(db, a, TID, "key-1", "2025-06-18", NULL, NULL, &s, &err), AP_OK);
    tu_exec(db, TID, "UPDATE mcp_sessions SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
            (ap_val_t[]){AP_VTEXT(s.id)}, 1);
    assert_int_equal(ap_mcp_session_get(db, a, TID, "key-1", s.id, &g, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_mcp_session_create(db, a, TID, "key-1", "2025-06-18", NULL, NULL, &g, &err), AP_OK);
    ap_val_t p[] = {AP_VTEXT(TID)};
    assert_int_equal(tu_count(db, TID, "SELECT COUNT(*) FROM mcp_sessions WHERE tenant_id = ?", p, 1), 1);
    ap_arena_free(a);
    ap_db_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_schema_from_fields),
        cmocka_unit_test(test_dispatch_and_tool_authorisation),
        cmocka_unit_test(test_sessions),
    };
    ap_crypto_init();
    TU_RUN_BACKENDS(tests);
}
