/*
 * admin.c - `agentprov admin …`: offline platform administration.
 *
 *   purge [--retention-days N]  remove tenants deleted more than N days ago
 *   permissions                 print the role → permission matrix (Markdown)
 *   routes                      print the HTTP route table (JSON lines)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "audit/audit.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/crypto.h"
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
    FILE *f = argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr;
    fprintf(f, "usage: agentprov admin purge [--retention-days N] [--data-dir D] "
               "[--database-url URL]\n       agentprov admin permissions\n       agentprov admin routes\n");
    return f == stdout ? 0 : 2;
}
