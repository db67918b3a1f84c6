/*
 * admin.c - `agentprov admin …`: offline platform administration.
 *
 *   purge [--retention-days N]  remove tenants deleted more than N days ago
 *   permissions                 print the role → permission matrix (Markdown)
 *   routes                      print the HTTP route table (JSON lines)
 *   rotate-master-key --new-key-file F
 *                               re-wrap every tenant secret's data key with a
 *                               new master key (server stopped); when the old
 *                               key came from <data-dir>/master.key, the file
 *                               is replaced with the new key
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "audit/audit.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/crypto.h"
#include "core/secret.h"
#include "policy/policy.h"
#include "store/migrate.h"
#include "tenant/tenant.h"

static int permissions(void) {
    printf("| permission | what it allows |");
    for (int r = 1; r < AP_ROLE_COUNT; r++) printf(" %s |", ap_role_name((ap_role)r));
    printf("\n|---|---|");
    for (int r = 1; r < AP_ROLE_COUNT; r++) printf("---|");
    printf("\n");
    for (int p = 1; p < AP_PERM_COUNT; p++) {
        printf("| `%s` | %s |", ap_perm_name((ap_perm)p), ap_perm_describe((ap_perm)p));
        for (int r = 1; r < AP_ROLE_COUNT; r++)
            printf(" %s |", ap_policy_allows((ap_role)r, (ap_perm)p) ? "yes" : "-");
        printf("\n");
    }
    return 0;
}

static int purge(int argc, char **argv) {
    ap_opt_t opts[] = {AP_DB_OPTS,
                       {"retention-days", "AP_RETENTION_DAYS", "30",
                        "purge tenants deleted more than this many days ago", false, false, NULL},
                       {NULL, NULL, NULL, NULL, false, false, NULL}};
    ap_err_t err = {0};
    bool help;
    if (ap_config_parse(opts, argc, argv, NULL, NULL, &help, &err)) {
        ap_cmd_print_err(&err);
        return 2;
    }
    if (help) {
        ap_config_usage(stdout, "usage: agentprov admin purge [options]", opts);
        return 0;
    }
    if (!ap_cmd_log_level(opts)) return 2;
    /* Digits only, and bounded like serve's option: an empty value must
     * not read as 0 (purge every deleted tenant now), nor a huge one wrap
     * around to a negative retention. */
    const char *rd = ap_config_get(opts, "retention-days");
    char *end;
    errno = 0;
    long days = strtol(rd, &end, 10);
    if (!*rd || *end || rd[0] < '0' || rd[0] > '9' || errno || days > 36500) {
        fprintf(stderr, "error: invalid --retention-days \"%s\"\n  hint: use a whole number of "
                        "days from 0 to 36500\n", rd);
        return 2;
    }
    ap_crypto_init();
    ap_db_t *db = ap_cmd_open_db(opts, 1);
    if (!db) return 1;
    ap_rc rc = ap_migrate_check(db, &err);
    ap_arena_t *a = ap_arena_new(4096);
    ap_tx_t *tx;
    json_t *purged = NULL;
    ap_actor_t actor = {.type = "system", .id = "cli", .role = "platform_admin"};
    if (!rc) rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err);
    if (!rc) rc = ap_tenant_purge(tx, &actor, (int)days, &purged, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    ap_arena_free(a);
    ap_db_close(db);
    if (rc) {
        json_decref(purged);
        ap_cmd_print_err(&err);
        return 1;
    }
    printf("purged %zu tenant(s)\n", json_array_size(purged));
    size_t i;
    json_t *v;
    json_array_foreach(purged, i, v) printf("  %s\n", json_string_value(v));
    json_decref(purged);
    return 0;
}

/* Reads a key file (hex or base64 text). */
static ap_rc read_key_file(const char *path, uint8_t key[AP_SECRET_KEY_LEN], ap_err_t *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot read the new key file", NULL, "%s: %s",
                          path, strerror(errno));
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ap_rc rc = ap_secret_parse_key(buf, key, err);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

static int rotate_master_key(int argc, char **argv) {
    ap_opt_t opts[] = {AP_DB_OPTS,
                       {"new-key-file", NULL, NULL,
                        "file holding the new master key: 32 bytes as hex or base64 "
                        "(e.g. openssl rand -hex 32 > F)", false, false, NULL},
                       {NULL, NULL, NULL, NULL, false, false, NULL}};
    ap_err_t err = {0};
    bool help;
    if (ap_config_parse(opts, argc, argv, NULL, NULL, &help, &err)) {
        ap_cmd_print_err(&err);
        return 2;
    }
    if (help) {
        ap_config_usage(stdout, "usage: agentprov admin rotate-master-key --new-key-file F [options]",
                        opts);
        return 0;
    }
    if (!ap_cmd_log_level(opts)) return 2;
    const char *file = ap_config_get(opts, "new-key-file");
    if (!file || !*file) {
        fprintf(stderr, "error: --new-key-file is required\n  hint: openssl rand -hex 32 > new.key\n");
        return 2;
    }
    ap_crypto_init();
    const char *data_dir = ap_config_get(opts, "data-dir");
    uint8_t old_key[AP_SECRET_KEY_LEN], new_key[AP_SECRET_KEY_LEN];
    bool from_file = false;
    ap_rc rc = read_key_file(file, new_key, &err);
    if (!rc) rc = ap_secret_master_load(data_dir, old_key, &from_file, &err);
    if (rc) {
        ap_cmd_print_err(&err);
        return 1;
    }
    ap_db_t *db = ap_cmd_open_db(opts, 1);
    if (!db) return 1;
    rc = ap_migrate_check(db, &err);
    ap_arena_t *a = ap_arena_new(8192);
    ap_tx_t *tx;
    ap_rows_t rows;
    int64_t n = 0;
    if (!rc) rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, &err);
    /* every table that holds a wrapped data key: LLM configurations' BYOK
     * keys and MCP servers' Authorization headers */
    static const struct {
        const char *table, *col, *what;
    } sealed[] = {
        {"llm_configs", "byok_data_key_wrapped", "LLM configuration"},
        {"mcp_servers", "auth_data_key_wrapped", "MCP server"},
    };
    for (size_t t = 0; !rc && t < sizeof sealed / sizeof sealed[0]; t++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT id, %s AS wrapped FROM %s WHERE %s IS NOT NULL ORDER BY id",
                 sealed[t].col, sealed[t].table, sealed[t].col);
        rc = ap_tx_query(tx, sql, NULL, 0, &rows, &err);
        for (int i = 0; !rc && i < rows.nrows; i++, n++) {
            const char *wrapped;
            rc = ap_secret_rewrap(old_key, new_key, ap_rows_get(&rows, i, "wrapped"), a, &wrapped,
                                  &err);
            if (rc) {
                snprintf(err.detail, sizeof err.detail,
                         "%s %s: its data key does not open with the current master key; nothing "
                         "was changed",
                         sealed[t].what, ap_rows_get(&rows, i, "id"));
                break;
            }
            snprintf(sql, sizeof sql, "UPDATE %s SET %s = ? WHERE id = ?", sealed[t].table,
                     sealed[t].col);
            ap_val_t v[] = {AP_VTEXT(wrapped), AP_VTEXT(ap_rows_get(&rows, i, "id"))};
            rc = ap_tx_query(tx, sql, v, 2, NULL, &err);
        }
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    ap_arena_free(a);
    ap_db_close(db);
    if (!rc && from_file) {
        char path[4096];
        snprintf(path, sizeof path, "%s/master.key", data_dir);
        rc = ap_secret_write_key_file(path, new_key, &err);
    }
    sodium_memzero(old_key, sizeof old_key);
    sodium_memzero(new_key, sizeof new_key);
    if (rc) {
        ap_cmd_print_err(&err);
        return 1;
    }
    printf("re-wrapped %lld data key(s)\n", (long long)n);
    if (from_file)
        printf("%s/master.key now holds the new key\n", data_dir);
    else
        printf("set AP_MASTER_KEY to the new key before the next start\n");
    return 0;
}

/* The route table as JSON lines: what the OpenAPI test compares against. */
static int routes(void) {
    for (const ap_route_t *r = ap_routes; r->method; r++) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "method", r->method, "path", r->pattern,
                              "permission", ap_perm_name(r->perm), "scope",
                              r->scope == AP_SCOPE_PUBLIC     ? "public"
                              : r->scope == AP_SCOPE_PLATFORM ? "platform"
                              : r->scope == AP_SCOPE_PATH     ? "tenant-path"
                                                              : "tenant-credential",
                              "action", r->action, "errors",
                              r->error_wire == 0 ? "problem"
                              : r->error_wire == 1 ? "openai"
                              : r->error_wire == AP_ERROR_WIRE_JSONRPC ? "jsonrpc"
                                                   : "anthropic");
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", line);
        free(line);
        json_decref(o);
    }
    return 0;
}

int ap_cmd_admin(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "purge") == 0) return purge(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "routes") == 0) return routes();
    if (argc >= 2 && strcmp(argv[1], "permissions") == 0) return permissions();
    if (argc >= 2 && strcmp(argv[1], "rotate-master-key") == 0)
        return rotate_master_key(argc - 1, argv + 1);
    FILE *f = argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr;
    fprintf(f, "usage: agentprov admin purge [--retention-days N] [--data-dir D] "
               "[--database-url URL]\n       agentprov admin permissions\n       agentprov admin routes\n"
               "       agentprov admin rotate-master-key --new-key-file F [--data-dir D] "
               "[--database-url URL]\n");
    return f == stdout ? 0 : 2;
}
