/*
 * serve.c - `agentprov serve`: the platform process.
 *
 * 1. Start: options → log the effective configuration (secrets masked) →
 *    open the store → migrate → first-start platform admin key → listen →
 *    log "ready" with the bound port (tests bind port 0 and read it).
 * 2. The first start writes a platform admin key to <data-dir>/admin.key
 *    (mode 0600) when no active platform key exists; the log says where,
 *    never what.
 * 3. SIGTERM/SIGINT: stop accepting, wait for in-flight requests up to
 *    --shutdown-timeout, end the model calls still running (their clients
 *    get an error answer), stop the purge job, close the store.
 * 4. At the same moment as the first admin key (unless --no-demo or
 *    AP_DEMO=0) it seeds the demo tenant and its team (cmd/demo.c) and
 *    writes that tenant's admin key to <data-dir>/demo.key.
 * 5. A background job purges tenants deleted longer ago than
 *    --retention-days, and idempotency records older than a day, once an
 *    hour.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/demo.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/secret.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "core/version.h"
#include "http/server.h"
#include "http/idempotency.h"
#include "identity/apikey.h"
#include "llm/breaker.h"
#include "llm/cache.h"
#include "llm/upstream.h"
#include "memory/memory.h"
#include "identity/keycache.h"
#include "llm/usage.h"
#include "mcp/client.h"
#include "api/sse.h"
#include "events/event.h"
#include "llm/call.h"
#include "orch/runner.h"
#include "orch/tools_ext.h"
#include "store/migrate.h"
#include "tenant/tenant.h"

static ap_rc bootstrap_admin_key(ap_db_t *db, const char *data_dir, bool *created,
                                 char *path, size_t cap, ap_err_t *err) {
    *created = false;
    snprintf(path, cap, "%s/admin.key", data_dir);
    ap_arena_t *a = ap_arena_new(4096);
    ap_tx_t *tx;
    ap_rows_t rows;
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT("platform_admin"), AP_VTEXT(now)};
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT COUNT(*) AS n FROM api_keys WHERE role = ? AND revoked_at IS NULL"
                         " AND (expires_at IS NULL OR expires_at > ?)",
                         p, 2, &rows, err);
    if (rc || ap_rows_int(&rows, 0, "n", 0) > 0) {
        ap_arena_free(a);
        return rc;
    }
    ap_actor_t actor = {.type = "system", .id = "bootstrap", .role = "platform_admin"};
    ap_apikey_spec_t spec = {.name = "bootstrap platform admin", .role = "platform_admin"};
    json_t *key = NULL;
    rc = ap_apikey_create(tx, AP_NIL_UUID, &actor, AP_ROLE_PLATFORM_ADMIN, &spec, &key, err);
    if (!rc) {
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
            rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot create data directory", NULL, "%s: %s",
                            data_dir, strerror(errno));
        } else {
            char tmp[4200];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const char *k = json_string_value(json_object_get(key, "key"));
            if (fd < 0 || write(fd, k, strlen(k)) != (ssize_t)strlen(k) ||
                write(fd, "\n", 1) != 1 || fsync(fd) != 0 || close(fd) != 0 ||
                rename(tmp, path) != 0)
                rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot write admin key", NULL, "%s: %s",
                                path, strerror(errno));
        }
    }
    json_decref(key);
    if (!rc) rc = ap_tx_commit(tx, err);
    ap_arena_free(a);
    if (!rc) *created = true;
    return rc;
}

/* On PostgreSQL, tenant isolation rests on row-level security, which a
 * superuser or a BYPASSRLS role silently skips: refuse to serve as one. */
static ap_rc check_pg_role(ap_db_t *db, ap_err_t *err) {
    if (strcmp(ap_db_kind(db), "postgres") != 0) return AP_OK;
    ap_arena_t *a = ap_arena_new(1024);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT rolname, CASE WHEN rolsuper OR rolbypassrls THEN 1 ELSE 0 END"
                         " AS bypass FROM pg_roles WHERE rolname = current_user",
                         NULL, 0, &rows, err);
    if (!rc && ap_rows_int(&rows, 0, "bypass", 1) != 0)
        rc = ap_err_set(err, AP_ERR_UNAVAILABLE, "unsafe-role",
                        "database role bypasses row-level security",
                        "connect as a role created with NOSUPERUSER NOBYPASSRLS that owns the "
                        "database (see docs/operations.md)",
                        "role \"%s\" is a superuser or has BYPASSRLS", ap_rows_get(&rows, 0, "rolname"));
    ap_arena_free(a);
    return rc;
}

typedef struct {
    ap_db_t *db;
    int retention_days;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} purge_job_t;

static void purge_once(purge_job_t *j) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *purged = NULL;
    ap_actor_t actor = {.type = "system", .id = "purge-job", .role = "platform_admin"};
    ap_rc rc = ap_db_begin(j->db, NULL, AP_TX_WRITE, a, &tx, &err);
    if (!rc) rc = ap_tenant_purge(tx, &actor, j->retention_days, &purged, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (rc)
        ap_log(AP_LOG_ERROR, "tenant purge failed", "{s:s}", "detail", err.detail);
    else if (json_array_size(purged))
        ap_log(AP_LOG_INFO, "tenants purged", "{s:O}", "tenant_ids", purged);
    int64_t removed = 0;
    if (ap_idem_expire(j->db, AP_IDEM_TTL_MS, &removed, &err))
        ap_log(AP_LOG_ERROR, "idempotency expiry failed", "{s:s}", "detail", err.detail);
    else if (removed)
        ap_log(AP_LOG_INFO, "idempotency records expired", "{s:I}", "removed", (json_int_t)removed);
    json_decref(purged);
    ap_arena_free(a);
}

static void *purge_main(void *arg) {
    purge_job_t *j = arg;
    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        pthread_mutex_unlock(&j->mu);
        purge_once(j);
        pthread_mutex_lock(&j->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 3600;
        while (!j->stop && pthread_cond_timedwait(&j->cv, &j->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* address:port with an IPv4 address: checked here, before the store is
 * opened or migrated, so a bad value is a usage error with no side
 * effects rather than a failure after start-up work. */
static bool parse_listen(const char *v, char *host, size_t cap, int *port) {
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= cap) return false;
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    struct in_addr ia;
    if (inet_pton(AF_INET, host, &ia) != 1) return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || colon[1] == '\0') return false;
    *port = (int)p;
    return true;
}

static int parse_int(const char *name, const char *v, int lo, int hi, int *out) {
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || !*v || n < lo || n > hi) {
        fprintf(stderr, "error: invalid --%s \"%s\"\n  hint: use an integer from %d to %d\n", name,
                v ? v : "", lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int ap_cmd_serve(int argc, char **argv) {
    char ncpu[16];
    snprintf(ncpu, sizeof ncpu, "%ld", sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 2);
    ap_opt_t opts[] = {
        {"listen", "AP_LISTEN", "127.0.0.1:8080", "address:port to listen on (port 0 = any free)",
         false, false, NULL},
        AP_DB_OPTS,
        {"threads", "AP_THREADS", ncpu,
         "server workers: threads with one event loop each (HTTP and the gateway's model calls)",
         false, false, NULL},
        {"db-pool", "AP_DB_POOL", NULL, "store connections (default threads + 2)", false, false, NULL},
        {"max-body", "AP_MAX_BODY", "1048576", "largest request body in bytes (413 beyond)", false,
         false, NULL},
        {"shutdown-timeout", "AP_SHUTDOWN_TIMEOUT", "10",
         "seconds to let in-flight requests finish on SIGTERM", false, false, NULL},
        {"retention-days", "AP_RETENTION_DAYS", "30",
         "days a deleted tenant is kept before the purge job removes it", false, false, NULL},
        {"mcp-stdio-allow", "AP_MCP_STDIO_ALLOW", NULL,
         "stdio MCP servers tenants may register, as JSON {\"name\": [\"/path/prog\", \"arg\"]} "
         "or @FILE (docs/mcp.md); none when unset",
         false, false, NULL},
        {"task-workers", "AP_TASK_WORKERS", "4", "task runner threads (0: no runner on this node)",
         false, false, NULL},
        {"task-tenant-quota", "AP_TASK_TENANT_QUOTA", "0",
         "tasks one tenant may run at once (0: three quarters of the task workers); a tenant's"
         " max_concurrent_tasks lowers it for that tenant", false, false,
         NULL},
        {"task-lease-ms", "AP_TASK_LEASE_MS", "15000",
         "task lease: a crashed node's tasks resume this long after its last heartbeat", false,
         false, NULL},
        {"task-scan-ms", "AP_TASK_SCAN_MS", "1000",
         "how often the durable task queue is scanned for retries and expired leases", false,
         false, NULL},
        {"task-step-delay-ms", "AP_TASK_STEP_DELAY_MS", "0",
         "pause after each task step (for crash-recovery tests and demos)", false, false, NULL},
        {"task-model", "AP_TASK_MODEL", "builtin/agentprov-mini",
         "model of agents that have no LLM configuration (catalog id or configuration name)",
         false, false, NULL},
        {"memory-hnsw-min", "AP_MEMORY_HNSW_MIN", "20000",
         "memories of one agent from which its index partition gets an HNSW graph (0: never;"
         " docs/memory.md)", false, false, NULL},
        {"memory-max-candidates", "AP_MEMORY_MAX_CANDIDATES", "4096",
         "graph candidates one recall may pull before it scans the partition instead", false,
         false, NULL},
        {"sse-heartbeat-ms", "AP_SSE_HEARTBEAT_MS", "15000",
         "interval of keep-alive comments on event streams", false, false, NULL},
        {"demo", "AP_DEMO", "1",
         "1: on the first start, create the demo tenant and team (key in <data-dir>/demo.key); 0 "
         "(or the switch --no-demo): do not",
         false, false, NULL},
        {NULL, NULL, NULL, NULL, false, false, NULL},
    };
    ap_err_t err = {0};
    bool help, no_demo = false;
    /* --no-demo is the switch form of --demo 0; every table option has its
     * own AP_ variable, so it is taken out before the table is parsed */
    char **args = ap_calloc((size_t)argc + 1, sizeof *args);
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--no-demo") == 0)
            no_demo = true;
        else
            args[nargs++] = argv[i];
    }
    ap_rc prc = ap_config_parse(opts, nargs, args, NULL, NULL, &help, &err);
    ap_free(args);
    if (prc) {
        ap_cmd_print_err(&err);
        return 2;
    }
    if (help) {
        ap_config_usage(stdout, "usage: agentprov serve [options]\n\nRuns the platform: REST API, "
                                "health and metrics endpoints, background jobs.",
                        opts);
        return 0;
    }
    if (!ap_cmd_log_level(opts)) return 2;
    char host[64];
    int port, threads, pool, max_body, shutdown_s, retention;
    int task_workers, task_quota, task_lease, task_scan, task_delay, sse_hb;
    int mem_hnsw_min, mem_max_cand;
    if (!parse_listen(ap_config_get(opts, "listen"), host, sizeof host, &port)) {
        fprintf(stderr, "error: invalid --listen \"%s\"\n  hint: use an IPv4 address and a port, e.g. "
                        "127.0.0.1:8080\n",
                ap_config_get(opts, "listen"));
        return 2;
    }
    if (parse_int("threads", ap_config_get(opts, "threads"), 1, 256, &threads) ||
        parse_int("max-body", ap_config_get(opts, "max-body"), 1024, 64 << 20, &max_body) ||
        parse_int("shutdown-timeout", ap_config_get(opts, "shutdown-timeout"), 0, 3600, &shutdown_s) ||
        parse_int("retention-days", ap_config_get(opts, "retention-days"), 0, 36500, &retention) ||
        parse_int("task-workers", ap_config_get(opts, "task-workers"), 0, 256, &task_workers) ||
        parse_int("task-tenant-quota", ap_config_get(opts, "task-tenant-quota"), 0, 256, &task_quota) ||
        parse_int("task-lease-ms", ap_config_get(opts, "task-lease-ms"), 300, 3600000, &task_lease) ||
        parse_int("task-scan-ms", ap_config_get(opts, "task-scan-ms"), 10, 600000, &task_scan) ||
        parse_int("task-step-delay-ms", ap_config_get(opts, "task-step-delay-ms"), 0, 60000, &task_delay) ||
        parse_int("sse-heartbeat-ms", ap_config_get(opts, "sse-heartbeat-ms"), 100, 600000, &sse_hb) ||
        parse_int("memory-hnsw-min", ap_config_get(opts, "memory-hnsw-min"), 0, 1 << 30, &mem_hnsw_min) ||
        parse_int("memory-max-candidates", ap_config_get(opts, "memory-max-candidates"), 16,
                  1 << 20, &mem_max_cand))
        return 2;
    const char *demo_v = ap_config_get(opts, "demo");
    if (strcmp(demo_v, "0") != 0 && strcmp(demo_v, "1") != 0) {
        fprintf(stderr, "error: invalid --demo \"%s\"\n  hint: use 1 or 0\n", demo_v);
        return 2;
    }
    bool demo = strcmp(demo_v, "1") == 0 && !no_demo;
    pool = threads + task_workers + 3;
    if (ap_config_get(opts, "db-pool") &&
        parse_int("db-pool", ap_config_get(opts, "db-pool"), 1, 1024, &pool))
        return 2;
    ap_mcp_allowlist_t *mcp_allow = NULL;
    if (ap_config_get(opts, "mcp-stdio-allow") &&
        ap_mcp_allowlist_parse(ap_config_get(opts, "mcp-stdio-allow"), &mcp_allow, &err)) {
        ap_cmd_print_err(&err);
        return 2;
    }
    ap_mcp_allowlist_set(mcp_allow); /* read-only from here on */
    uint64_t t0 = ap_mono_ns();
    /* every streamed model call holds two descriptors (client, provider):
     * take the hard limit the system allows */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    json_t *cfg = ap_config_json(opts);
    ap_log(AP_LOG_INFO, "starting", "{s:s,s:o}", "version", ap_version, "config", cfg);
    if (ap_crypto_init()) {
        ap_log(AP_LOG_ERROR, "libsodium failed to initialise", NULL);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    /* Signals are taken by sigwait below; block them before threads start. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ap_db_t *db = ap_cmd_open_db(opts, pool);
    if (!db) {
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    int applied = 0;
    if (check_pg_role(db, &err) || ap_migrate(db, &applied, &err)) {
        ap_cmd_print_err(&err);
        ap_db_close(db);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    const char *data_dir = ap_config_get(opts, "data-dir");
    char keypath[4096];
    bool created;
    if (bootstrap_admin_key(db, data_dir, &created, keypath, sizeof keypath, &err)) {
        ap_cmd_print_err(&err);
        ap_db_close(db);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    if (created)
        ap_log(AP_LOG_INFO, "platform admin key created", "{s:s,s:s}", "path", keypath, "hint",
               "export AP_API_KEY=$(cat <path>) and call the API with Authorization: Bearer");
    if (created && demo) {
        char demopath[4096];
        bool seeded;
        if (ap_cmd_demo_seed(db, data_dir, &seeded, demopath, sizeof demopath, &err)) {
            ap_cmd_print_err(&err);
            ap_db_close(db);
            return 1;
        }
        if (seeded)
            ap_log(AP_LOG_INFO, "demo team created", "{s:s,s:s,s:s,s:s}", "tenant", "demo",
                   "group", "Research team", "key_file", demopath, "hint",
                   "export AP_API_KEY=$(cat <key_file>); agentprov agents list");
        else
            ap_log(AP_LOG_INFO, "demo team not created", "{s:s}", "reason",
                   "a tenant with the slug demo exists");
    }
    /* the master key of tenant secrets (BYOK keys): AP_MASTER_KEY or <data-dir>/master.key */
    static uint8_t master_key[AP_SECRET_KEY_LEN];
    bool master_from_file;
    if (ap_secret_master_load(data_dir, master_key, &master_from_file, &err)) {
        ap_cmd_print_err(&err);
        ap_db_close(db);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }

    struct ap_app app = {
        .db = db,
        .routes = ap_routes,
        .metrics = ap_metrics_new(ap_routes),
        .started_ms = ap_now_ms(),
        .max_body = (size_t)max_body,
        .master_key = master_key,
    };
    const char *bt = getenv("AP_BREAKER_THRESHOLD"), *bo = getenv("AP_BREAKER_OPEN_MS");
    app.breaker = ap_breaker_new(bt ? atoi(bt) : 0, bo ? atoll(bo) : 0);
    /* routes and budget totals, fresh for AP_LLM_CACHE_MS (llm/cache.h) */
    const char *cm = getenv("AP_LLM_CACHE_MS");
    app.llm_cache = ap_llm_cache_new(cm && *cm ? atoll(cm) : 2000);
    /* verified API keys, fresh for AP_KEY_CACHE_MS (identity/keycache.h) */
    const char *km = getenv("AP_KEY_CACHE_MS");
    app.key_cache = ap_key_cache_new(km && *km ? atoll(km) : 1000);
    if (ap_upstream_new(&app.upstream, &err) || ap_usage_writer_new(db, &app.usage, &err)) {
        ap_cmd_print_err(&err);
        ap_upstream_free(app.upstream);
        ap_breaker_free(app.breaker);
        ap_llm_cache_free(app.llm_cache);
        ap_key_cache_free(app.key_cache);
        ap_metrics_free(app.metrics);
        ap_db_close(db);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    ap_usage_writer_set_cache(app.usage, app.llm_cache);
    app.bus = ap_bus_new();
    app.sse = ap_sse_hub_new(db, app.bus, sse_hb);
    /* agents' model calls go through the same service as the gateway */
    static ap_llm_call_env_t call_env;
    call_env = (ap_llm_call_env_t){.db = db, .upstream = app.upstream, .usage = app.usage,
                                   .breaker = app.breaker, .master_key = master_key,
                                   .cache = app.llm_cache};
    /* the memory index: partition files under the data directory (docs/memory.md) */
    char mem_dir[PATH_MAX];
    snprintf(mem_dir, sizeof mem_dir, "%s/memory-index", data_dir);
    ap_mem_opts_t mo = {.db = db, .upstream = app.upstream, .usage = app.usage,
                        .cache = app.llm_cache, .hnsw_min = mem_hnsw_min ? mem_hnsw_min : -1,
                        .max_candidates = mem_max_cand, .index_dir = mem_dir};
    ap_mem_new(&mo, &app.memory, &err);
    /* agents' memory and MCP tools (orch/tools_ext.h) */
    static ap_orch_ext_t task_ext;
    task_ext = (ap_orch_ext_t){.db = db, .mem = app.memory, .master_key = master_key};
    if (task_workers > 0) {
        ap_orch_runner_opts_t ro = {.ext = &task_ext, .db = db, .bus = app.bus, .workers = task_workers,
                                    .tenant_quota = task_quota, .lease_ms = task_lease,
                                    .scan_ms = task_scan, .step_delay_ms = task_delay,
                                    .model = ap_orch_model_llm, .model_ud = &call_env,
                                    .model_start = ap_orch_model_llm_start,
                                    .model_cancel = ap_orch_model_llm_cancel,
                                    .model_start_ud = &call_env,
                                    .default_model = ap_config_get(opts, "task-model")};
        if (ap_orch_runner_start(&ro, &app.runner, &err)) {
            ap_cmd_print_err(&err);
            ap_mem_free(app.memory);
            ap_mcp_allowlist_free(mcp_allow);
            return 1;
        }
    }
    ap_server_opts_t so = {.host = host, .port = port, .threads = threads};
    ap_server_t *srv = NULL;
    if (ap_server_start(&app, &so, &srv, &err)) {
        ap_cmd_print_err(&err);
        ap_orch_runner_stop(app.runner);
        ap_sse_hub_free(app.sse);
        ap_bus_free(app.bus);
        ap_mem_free(app.memory);
        ap_upstream_free(app.upstream);
        ap_usage_writer_free(app.usage);
        ap_breaker_free(app.breaker);
        ap_llm_cache_free(app.llm_cache);
        ap_key_cache_free(app.key_cache);
        ap_metrics_free(app.metrics);
        ap_db_close(db);
        ap_mcp_allowlist_free(mcp_allow);
        return 1;
    }
    purge_job_t job = {.db = db, .retention_days = retention};
    pthread_mutex_init(&job.mu, NULL);
    pthread_cond_init(&job.cv, NULL);
    pthread_t purge_thread;
    pthread_create(&purge_thread, NULL, purge_main, &job);

    char url[128];
    snprintf(url, sizeof url, "http://%s:%d", host, ap_server_port(srv));
    ap_log(AP_LOG_INFO, "ready", "{s:s,s:i,s:s,s:s,s:s,s:f}", "url", url, "port",
           ap_server_port(srv), "store", ap_db_kind(db), "admin_key_file", keypath,
           "first_call", "curl -H \"Authorization: Bearer $(cat <admin_key_file>)\" <url>/api/v1/tenants",
           "startup_ms", (double)(ap_mono_ns() - t0) / 1e6);

    int sig = 0;
    sigwait(&sigs, &sig);
    ap_log(AP_LOG_INFO, "shutting down", "{s:s,s:i}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
           "timeout_s", shutdown_s);
    ap_server_quiesce(srv);
    /* tasks in flight end their current step and release their leases;
     * event streams end, so the drain below does not wait for them */
    ap_orch_runner_stop(app.runner);
    ap_sse_hub_free(app.sse);
    bool drained = ap_server_drain(srv, shutdown_s * 1000);
    /* Model calls still running past the bound are cut; their clients get
     * an error answer, which wakes their connections before the stop. */
    ap_mem_stop_worker(app.memory); /* it may be waiting on the upstream loop */
    ap_upstream_free(app.upstream);
    ap_server_end_calls(srv); /* the gateway's calls, on the server workers */
    if (!drained) ap_server_drain(srv, 2000);
    ap_server_stop(srv);
    ap_mem_free(app.memory);
    ap_usage_writer_free(app.usage); /* flushes the last records */
    ap_breaker_free(app.breaker);
    ap_llm_cache_free(app.llm_cache);
    ap_key_cache_free(app.key_cache);
    pthread_mutex_lock(&job.mu);
    job.stop = true;
    pthread_cond_signal(&job.cv);
    pthread_mutex_unlock(&job.mu);
    pthread_join(purge_thread, NULL);
    pthread_mutex_destroy(&job.mu);
    pthread_cond_destroy(&job.cv);
    ap_bus_free(app.bus);
    ap_metrics_free(app.metrics);
    ap_db_close(db);
    ap_mcp_allowlist_set(NULL);
    ap_mcp_allowlist_free(mcp_allow);
    ap_log(AP_LOG_INFO, "stopped", "{s:b}", "drained", drained);
    return 0;
}
