/*
 * mcp_client_test.c - the MCP client side: the stdio allowlist, tool
 * names, the server registry (sealed headers), agents' tool definitions,
 * and stdio connections against a scripted fake server (handshake,
 * server requests and noise on the line, deadline, output bound, reaping).
 */
#include "testutil.h"

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#include "core/secret.h"
#include "core/time.h"
#include "mcp/client.h"
#include "mcp/conn.h"

#define TID "01900000-0000-7000-8000-0000000000b2"

bool ap_mcp_allowlist_target(ap_arena_t *a, const ap_mcp_allowlist_t *l, const char *name,
                             char *const **argv, char *const **envp);

static void test_allowlist(void **state) {
    (void)state;
    ap_mcp_allowlist_t *l = NULL;
    ap_err_t err = {0};
    assert_int_equal(ap_mcp_allowlist_parse("{\"a\": [\"/bin/true\", \"x\"], \"b-2\": {\"argv\": "
                                            "[\"true\"], \"env\": {\"K\": \"V\"}}}",
                                            &l, &err),
                     AP_OK);
    assert_true(ap_mcp_allowlist_has(l, "a"));
    assert_true(ap_mcp_allowlist_has(l, "b-2"));
    assert_false(ap_mcp_allowlist_has(l, "c"));
    assert_false(ap_mcp_allowlist_has(NULL, "a"));
    setenv("AP_SECRET_FOR_TEST", "must-not-leak", 1);
    ap_arena_t *a = ap_arena_new(1024);
    char *const *argv, *const *envp;
    assert_true(ap_mcp_allowlist_target(a, l, "b-2", &argv, &envp));
    assert_string_equal(argv[0], "true");
    assert_null(argv[1]);
    bool k = false, path = false;
    for (char *const *e = envp; *e; e++) {
        assert_null(strstr(*e, "must-not-leak"));
        assert_true(!strncmp(*e, "PATH=", 5) || !strncmp(*e, "HOME=", 5) || !strncmp(*e, "LANG=", 5) ||
                    !strcmp(*e, "K=V"));
        k |= !strcmp(*e, "K=V");
        path |= !strncmp(*e, "PATH=", 5);
    }
    assert_true(k && path);
    json_t *names = ap_mcp_allowlist_names(l);
    assert_int_equal(json_array_size(names), 2);
    json_decref(names);
    ap_arena_free(a);
    ap_mcp_allowlist_free(l);
    static const char *const bad[] = {
        "[]", "{\"Bad Name\": [\"x\"]}", "{\"a\": []}", "{\"a\": [1]}", "{\"a\": {\"argv\": [\"x\"], \"env\": []}}",
        "{\"a\": {\"argv\": [\"x\"], \"env\": {\"K=1\": \"v\"}}}", "not json", "@/nonexistent/allow.json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = (ap_mcp_allowlist_t *)1;
        assert_int_equal(ap_mcp_allowlist_parse(bad[i], &l, &err), AP_ERR_INVALID);
        assert_null(l);
        assert_string_equal(err.type, "invalid-config");
    }
}

static void test_tool_refs(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(1024);
    const char *s, *t;
    assert_true(ap_mcp_tool_ref_parse(a, "mcp:files/read", &s, &t));
    assert_string_equal(s, "files");
    assert_string_equal(t, "read");
    assert_true(ap_mcp_tool_ref_parse(a, "mcp:files/*", &s, &t));
    assert_string_equal(t, "*");
    assert_true(ap_mcp_tool_ref_parse(a, "mcp:everything/get-sum", &s, &t));
    assert_false(ap_mcp_tool_ref_parse(a, "recall", &s, &t));
    assert_false(ap_mcp_tool_ref_parse(a, "mcp:/read", &s, &t));
    assert_false(ap_mcp_tool_ref_parse(a, "mcp:files/", &s, &t));
    assert_false(ap_mcp_tool_ref_parse(a, "mcp:Files/read", &s, &t));
    assert_false(ap_mcp_tool_ref_parse(a, NULL, &s, &t));
    ap_arena_free(a);
}

static ap_rc create(ap_db_t *db, const uint8_t *master, const char *body, json_t **out,
                    ap_err_t *err) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_actor_t actor = {.type = "key", .id = "k", .role = "tenant_admin"};
    json_t *in = json_loads(body, 0, NULL);
    ap_rc rc = ap_db_begin(db, TID, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_json_check(in, ap_mcp_server_create_fields, err);
    if (!rc) rc = ap_mcp_server_create(tx, TID, &actor, master, in, out, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    json_decref(in);
    ap_arena_free(a);
    return rc;
}

static void test_registry_and_tool_defs(void **state) {
    (void)state;
    ap_db_t *db = tu_open();
    tu_add_tenant(db, TID, "mcp-client-unit");
    uint8_t master[AP_SECRET_KEY_LEN];
    memset(master, 7, sizeof master);
    ap_err_t err = {0};
    json_t *s = NULL;
    assert_int_equal(create(db, master, "{\"name\":\"files\",\"url\":\"https://h/mcp\",\"auth_header\":"
                                        "\"Bearer top-secret-99\"}",
                            &s, &err),
                     AP_OK);
    char *shown = json_dumps(s, 0);
    assert_null(strstr(shown, "top-secret-99"));
    assert_true(json_is_true(json_object_get(s, "auth_header_set")));
    free(shown);
    /* stored sealed: the plaintext is nowhere in the row */
    ap_val_t p[] = {AP_VTEXT(TID)};
    assert_int_equal(tu_count(db, TID, "SELECT COUNT(*) FROM mcp_servers WHERE tenant_id = ? AND"
                                       " auth_ciphertext IS NOT NULL AND auth_ciphertext NOT LIKE '%top-secret%'",
                              p, 1),
                     1);
    json_decref(s);
    /* rules */
    static const char *const bad[] = {
        "{\"name\":\"x\"}",
        "{\"name\":\"x\",\"url\":\"https://h/mcp\",\"command\":\"c\"}",
        "{\"name\":\"x\",\"url\":\"https://u:p@h/mcp\"}",
        "{\"name\":\"x\",\"url\":\"file:///etc/passwd\"}",
        "{\"name\":\"x\",\"url\":\"https://h/mcp\",\"auth_header\":\"a\\nb\"}",
        "{\"name\":\"X\",\"url\":\"https://h/mcp\"}",
        "{\"name\":\"x\",\"command\":\"not-allowed\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = NULL;
        assert_int_equal(create(db, master, bad[i], &s, &err), AP_ERR_INVALID);
        assert_null(s);
    }
    assert_int_equal(create(db, master, "{\"name\":\"files\",\"url\":\"https://h/mcp\"}", &s, &err),
                     AP_ERR_CONFLICT);
    /* a header needs a master key */
    assert_int_equal(create(db, NULL, "{\"name\":\"y\",\"url\":\"https://h/mcp\",\"auth_header\":\"B\"}",
                            &s, &err),
                     AP_ERR_UNAVAILABLE);
    /* agents' grants become tool definitions once tools are discovered */
    tu_exec(db, TID,
            "UPDATE mcp_servers SET tools = '[{\"name\":\"read\",\"description\":\"reads\","
            "\"inputSchema\":{\"type\":\"object\"}},{\"name\":\"write\"}]' WHERE name = 'files'",
            NULL, 0);
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    json_t *granted = json_loads("[\"recall\", \"mcp:files/read\", \"mcp:nope/x\", \"mcp:files/gone\"]", 0, NULL);
    json_t *defs = NULL;
    assert_int_equal(ap_db_begin(db, TID, AP_TX_READ, a, &tx, &err), AP_OK);
    assert_int_equal(ap_mcp_client_tool_defs(tx, TID, granted, &defs, &err), AP_OK);
    assert_int_equal(json_array_size(defs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(defs, 0), "name")), "mcp:files/read");
    assert_string_equal(json_string_value(json_object_get(json_array_get(defs, 0), "description")), "reads");
    json_decref(defs);
    json_decref(granted);
    granted = json_loads("[\"mcp:files/*\"]", 0, NULL);
    assert_int_equal(ap_mcp_client_tool_defs(tx, TID, granted, &defs, &err), AP_OK);
    assert_int_equal(json_array_size(defs), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(defs, 1), "input_schema"), "type")),
                        "object");
    json_decref(defs);
    json_decref(granted);
    ap_tx_rollback(tx);
    ap_arena_free(a);
    ap_db_close(db);
}

/* A scripted MCP server on stdio (a test fixture; production never runs a shell). */
static const char fake_server[] =
    "while IFS= read -r line; do\n"
    "  case \"$line\" in\n"
    "    *'\"initialize\"'*) echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":"
    "\"2025-03-26\",\"capabilities\":{},\"serverInfo\":{\"name\":\"fake\",\"version\":\"0\"}}}';;\n"
    "    *'\"tools/list\"'*) echo 'chatter that is not JSON';"
    " echo '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}';"
    " echo '{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}';"
    " echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"echo\"}]}}';;\n"
    "    *'\"slow\"'*) sleep 30;;\n"
    "    *'\"big\"'*) head -c 200000 /dev/zero | tr '\\0' x; echo;;\n"
    "    *'\"bad\"'*) echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"no such tool\"}}';;\n"
    "  esac\n"
    "done\n";

static ap_mcp_target_t fake_target(void) {
    static char *argv[] = {"/bin/sh", "-c", (char *)fake_server, NULL};
    static char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    return (ap_mcp_target_t){.argv = argv, .envp = envp};
}

static bool alive(pid_t pid) {
    return kill(pid, 0) == 0;
}

static void test_stdio_conn(void **state) {
    (void)state;
    ap_mcp_target_t t = fake_target();
    ap_err_t err = {0};
    /* handshake, then an answer behind noise and a server request */
    ap_arena_t *a = ap_arena_new(1024);
    ap_mcp_conn_t *c;
    json_t *init, *res;
    assert_int_equal(ap_mcp_conn_open(a, &t, ap_mono_ns() + 5000000000ull, 1 << 20, &c, &init, &err), AP_OK);
    assert_string_equal(ap_mcp_conn_version(c), "2025-03-26");
    assert_string_equal(json_string_value(json_object_get(json_object_get(init, "serverInfo"), "name")), "fake");
    json_decref(init);
    assert_int_equal(ap_mcp_conn_request(c, "tools/list", NULL, &res, &err), AP_OK);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "tools"), 0), "name")), "echo");
    json_decref(res);
    ap_mcp_conn_close(c);
    ap_arena_free(a);
    /* a JSON-RPC error answer */
    a = ap_arena_new(1024);
    assert_int_equal(ap_mcp_conn_open(a, &t, ap_mono_ns() + 5000000000ull, 1 << 20, &c, &init, &err), AP_OK);
    json_decref(init);
    assert_int_equal(ap_mcp_conn_request(c, "tools/call", json_pack("{s:s}", "name", "bad"), &res, &err),
                     AP_ERR_IO);
    assert_string_equal(err.type, "mcp-error");
    assert_non_null(strstr(err.detail, "no such tool"));
    ap_arena_free(a); /* the arena's cleanup closes the connection */
    /* the deadline: fails in time, and the child is gone */
    a = ap_arena_new(1024);
    uint64_t t0 = ap_mono_ns();
    assert_int_equal(ap_mcp_conn_open(a, &t, t0 + 700000000ull, 1 << 20, &c, &init, &err), AP_OK);
    json_decref(init);
    assert_int_equal(ap_mcp_conn_request(c, "tools/call", json_pack("{s:s}", "name", "slow"), &res, &err),
                     AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "mcp-timeout");
    assert_true(ap_mono_ns() - t0 < 3000000000ull);
    ap_arena_free(a);
    /* the output bound */
    a = ap_arena_new(1024);
    assert_int_equal(ap_mcp_conn_open(a, &t, ap_mono_ns() + 5000000000ull, 10000, &c, &init, &err), AP_OK);
    json_decref(init);
    assert_int_equal(ap_mcp_conn_request(c, "tools/call", json_pack("{s:s}", "name", "big"), &res, &err),
                     AP_ERR_TOO_LARGE);
    ap_arena_free(a);
    /* no child is left: every one was killed and reaped */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    (void)alive;
    /* a program that is not there */
    static char *none[] = {"/nonexistent/server", NULL};
    ap_mcp_target_t n = {.argv = none, .envp = (char *[]){NULL}};
    a = ap_arena_new(1024);
    assert_int_equal(ap_mcp_conn_open(a, &n, ap_mono_ns() + 1000000000ull, 1024, &c, &init, &err),
                     AP_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "mcp-cannot-start");
    ap_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_tool_refs),
        cmocka_unit_test(test_registry_and_tool_defs),
        cmocka_unit_test(test_stdio_conn),
    };
    ap_crypto_init();
    TU_RUN_BACKENDS(tests);
}
