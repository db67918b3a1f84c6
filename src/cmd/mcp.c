/*
 * mcp.c - `agentprov mcp --stdio`: the platform as an MCP server on
 * standard input and output, for local clients (Claude Desktop, IDEs)
 * that start a server process.
 *
 * 1. Messages are newline-delimited JSON-RPC (one message, or a batch for
 *    versions that allow it, per line); answers go to stdout, one per
 *    line, and nothing else does: logs go to stderr.
 * 2. The caller is the API key in AP_API_KEY, or the first line of
 *    --key-file, authenticated against the database directly (--data-dir
 *    / --database-url, as for `serve`; no HTTP server is needed).  The key
 *    must be active, its tenant active, its role allowed mcp.use; each
 *    tool call is then authorised and audited as for /mcp.
 * 3. The database must be migrated (by `serve` or `migrate`); this
 *    command does not change the schema.
 * 4. End of input ends the process with status 0.
 * 5. `agentprov mcp servers …` are API client commands (AP_URL, AP_API_KEY)
 *    for the tenant's external MCP servers; an Authorization header value
 *    is read from an environment variable named by --auth-header-env,
 *    never from the command line (which other users can see).
 * 6. Tasks created here are picked up by the serving nodes' runners at
 *    their next queue scan; memories are indexed by this process's own
 *    memory service (without the re-embed worker, which the serving nodes
 *    run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/log.h"
#include "identity/apikey.h"
#include "mcp/server.h"
#include "memory/memory.h"

#define MAX_LINE (16u << 20)

static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char buf[512];
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!ok) return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return strdup(buf);
}

static void emit(json_t *answer) {
    char *s = json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(answer);
    if (!s) return;
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
}

static int servers_usage(FILE *f, int code) {
    fprintf(f,
            "usage: agentprov mcp servers list [-o table|json]\n"
            "       agentprov mcp servers get ID|NAME [-o table|json]\n"
            "       agentprov mcp servers create --name N (--url URL [--auth-header-env VAR] |\n"
            "                                               --command ALLOWLIST_NAME)\n"
            "       agentprov mcp servers delete ID\n"
            "       agentprov mcp servers discover ID\n"
            "       agentprov mcp servers call ID TOOL [--args JSON] [--timeout-ms N]\n"
            "\n"
            "  --auth-header-env VAR  the Authorization header value sent to the server is read\n"
            "                         from the environment variable VAR (e.g. \"Bearer …\")\n"
            "\nAP_URL and AP_API_KEY select the platform and the key; see docs/mcp.md.\n");
    return code;
}

static const char *const server_cols[] = {"id", "name", "transport", "url", "command",
                                          "tool_count", "discovered_at", NULL};

/* The value following argv[*i] (a flag), or NULL after printing why. */
static const char *flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: option %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int servers_cmd(int argc, char **argv) {
    if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))
        return servers_usage(argc < 3 ? stderr : stdout, argc < 3 ? 2 : 0);
    const char *what = argv[2];
    bool as_json = false;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    const char *name = NULL, *url = NULL, *auth_env = NULL, *command = NULL, *args = NULL,
               *timeout = NULL;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], **dst = NULL;
        if (!strcmp(a, "-o")) {
            const char *v = flag_value(argc, argv, &i);
            if (!v || (strcmp(v, "json") && strcmp(v, "table"))) return servers_usage(stderr, 2);
            as_json = !strcmp(v, "json");
            continue;
        }
        if (!strcmp(a, "--name")) dst = &name;
        else if (!strcmp(a, "--url")) dst = &url;
        else if (!strcmp(a, "--auth-header-env")) dst = &auth_env;
        else if (!strcmp(a, "--command")) dst = &command;
        else if (!strcmp(a, "--args")) dst = &args;
        else if (!strcmp(a, "--timeout-ms")) dst = &timeout;
        if (dst) {
            if (!(*dst = flag_value(argc, argv, &i))) return 2;
            continue;
        }
        if (a[0] == '-' || npos == 2) {
            fprintf(stderr, "error: unexpected argument \"%s\"\n", a);
            return servers_usage(stderr, 2);
        }
        pos[npos++] = a;
    }
    char path[1024];
    json_t *body = NULL, *out = NULL;
    const char *method = "GET";
    int rc;
    if (!strcmp(what, "list")) {
        snprintf(path, sizeof path, "/api/v1/mcp-servers?limit=500");
    } else if (!strcmp(what, "create")) {
        if (!name) {
            fprintf(stderr, "error: --name is required\n");
            return 2;
        }
        body = json_pack("{s:s}", "name", name);
        if (url) json_object_set_new(body, "url", json_string(url));
        if (command) json_object_set_new(body, "command", json_string(command));
        if (auth_env) {
            const char *v = getenv(auth_env);
            if (!v || !*v) {
                fprintf(stderr, "error: the variable %s is not set\n", auth_env);
                json_decref(body);
                return 2;
            }
            json_object_set_new(body, "auth_header", json_string(v));
        }
        method = "POST";
        snprintf(path, sizeof path, "/api/v1/mcp-servers");
    } else if (npos >= 1 && (!strcmp(what, "get") || !strcmp(what, "delete") ||
                             !strcmp(what, "discover") || !strcmp(what, "call"))) {
        if (!strcmp(what, "call")) {
            if (npos < 2) return servers_usage(stderr, 2);
            json_error_t je;
            json_t *a = args ? json_loads(args, 0, &je) : json_object();
            if (!json_is_object(a)) {
                fprintf(stderr, "error: --args must be a JSON object\n");
                json_decref(a);
                return 2;
            }
            body = json_pack("{s:o}", "arguments", a);
            if (timeout) json_object_set_new(body, "timeout_ms", json_integer(atoi(timeout)));
            method = "POST";
            snprintf(path, sizeof path, "/api/v1/mcp-servers/%s/tools/%s:call", pos[0], pos[1]);
        } else {
            method = !strcmp(what, "delete") ? "DELETE" : !strcmp(what, "discover") ? "POST" : "GET";
            snprintf(path, sizeof path, "/api/v1/mcp-servers/%s%s", pos[0],
                     !strcmp(what, "discover") ? ":discover" : "");
        }
    } else {
        return servers_usage(stderr, 2);
    }
    rc = ap_client_call(method, path, body, &out);
    json_decref(body);
    if (rc == 0 && out) {
        /* a tool's result and a server's tools read best as JSON */
        bool js = as_json || !strcmp(what, "call") || !strcmp(what, "discover") || !strcmp(what, "get");
        ap_client_print(out, server_cols, js);
    }
    json_decref(out);
    return rc;
}

int ap_cmd_mcp(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "servers") == 0) return servers_cmd(argc, argv);
    ap_opt_t opts[] = {
        {"stdio", NULL, NULL, "serve MCP on standard input and output", false, true, NULL},
        {"key-file", "AP_API_KEY_FILE", NULL,
         "file whose first line is the API key (default: the AP_API_KEY variable)", false, false,
         NULL},
        AP_DB_OPTS,
        {NULL, NULL, NULL, NULL, false, false, NULL},
    };
    ap_err_t err = {0};
    bool help;
    if (ap_config_parse(opts, argc, argv, NULL, NULL, &help, &err)) {
        ap_cmd_print_err(&err);
        return 2;
    }
    const char *usage =
        "usage: agentprov mcp --stdio [--key-file FILE] [--data-dir DIR | --database-url URL]\n"
        "       agentprov mcp servers …   (the tenant's external MCP servers; `servers --help`)\n\n"
        "Serves the platform's MCP tools on stdin/stdout (newline-delimited JSON-RPC) as the API\n"
        "key in AP_API_KEY (or --key-file), reading the database directly.  See docs/mcp.md.";
    if (help) {
        ap_config_usage(stdout, usage, opts);
        return 0;
    }
    if (!ap_config_get(opts, "stdio")) {
        fprintf(stderr, "error: no transport chosen\n  hint: run `agentprov mcp --stdio`; over "
                        "HTTP the server answers at /mcp\n");
        return 2;
    }
    if (!ap_cmd_log_level(opts)) return 2;
    char *token = NULL;
    const char *kf = ap_config_get(opts, "key-file");
    if (kf) {
        token = read_key_file(kf);
        if (!token) {
            fprintf(stderr, "error: cannot read the key file\n  %s\n  hint: its first line must "
                            "be an API key (apk_…)\n",
                    kf);
            return 2;
        }
    } else if (getenv("AP_API_KEY") && *getenv("AP_API_KEY")) {
        token = strdup(getenv("AP_API_KEY"));
    } else {
        fprintf(stderr, "error: no API key\n  hint: set AP_API_KEY or pass --key-file\n");
        return 2;
    }
    if (ap_crypto_init()) {
        free(token);
        return 1;
    }
    ap_db_t *db = ap_cmd_open_db(opts, 2);
    if (!db) {
        free(token);
        return 1;
    }
    ap_arena_t *keep = ap_arena_new(4096);
    ap_principal_t pr = {0};
    ap_rc rc = ap_apikey_authenticate(db, keep, token, &pr, &err);
    free(token);
    if (!rc && pr.role != AP_ROLE_PLATFORM_ADMIN && strcmp(pr.tenant_status, "active") != 0)
        rc = ap_err_set(&err, AP_ERR_DENIED, "tenant-suspended", "tenant is not active",
                        "ask a platform administrator to resume the tenant",
                        "the key's tenant is %s", pr.tenant_status);
    if (!rc && !ap_policy_allows(pr.role, AP_PERM_MCP_USE))
        rc = ap_err_set(&err, AP_ERR_DENIED, "forbidden", "permission denied",
                        "use a key of role operator or above", "role %s lacks permission mcp.use",
                        ap_role_name(pr.role));
    if (rc) {
        ap_cmd_print_err(&err);
        ap_arena_free(keep);
        ap_db_close(db);
        return 1;
    }
    char rid[AP_UUID_LEN];
    ap_uuid7(rid);
    ap_actor_t actor = {.type = "key", .id = pr.key_id, .role = ap_role_name(pr.role),
                        .request_id = rid, .client_addr = "stdio"};
    /* the memory service without its re-embed worker: the serving nodes run those jobs */
    ap_mem_t *mem = NULL;
    ap_mem_opts_t mo = {.db = db, .no_worker = true};
    if (ap_mem_new(&mo, &mem, &err)) {
        ap_cmd_print_err(&err);
        ap_arena_free(keep);
        ap_db_close(db);
        return 1;
    }
    ap_mcp_caller_t caller = {.db = db, .memory = mem, .tenant_id = pr.tenant_id,
                              .key_id = pr.key_id, .role = pr.role, .actor = &actor};
    ap_mcp_state_t st = {0};
    ap_log(AP_LOG_INFO, "mcp stdio ready", "{s:s,s:s,s:s}", "tenant_id", pr.tenant_id, "key_id",
           pr.key_id, "role", ap_role_name(pr.role));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if ((size_t)n > MAX_LINE) {
            emit(ap_rpc_error(NULL, AP_RPC_INVALID_REQUEST, "message longer than 16 MiB", NULL));
            continue;
        }
        ap_arena_t *a = ap_arena_new(8192);
        json_t *root;
        bool batch;
        if (ap_rpc_parse(line, (size_t)n, &root, &batch, &err)) {
            char msg[700];
            snprintf(msg, sizeof msg, "parse error: %s", err.detail);
            emit(ap_rpc_error(NULL, AP_RPC_PARSE_ERROR, msg, NULL));
            ap_arena_free(a);
            continue;
        }
        ap_uuid7(rid); /* each message is its own request in the audit log */
        json_t *answer;
        bool refused;
        ap_mcp_process(&caller, &st, a, root, batch, &answer, &refused);
        json_decref(root);
        if (answer) emit(answer);
        st.client_name = st.client_version = NULL; /* arena strings, gone with the arena */
        st.did_initialize = false;
        st.saw_initialized = false;
        ap_arena_free(a);
    }
    free(line);
    ap_mem_free(mem);
    ap_arena_free(keep);
    ap_db_close(db);
    return 0;
}
