/*
 * migrate.c - `agentprov migrate`: apply the built-in schema migrations.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/crypto.h"
#include "store/migrate.h"

int ap_cmd_migrate(int argc, char **argv) {
    ap_opt_t opts[] = {AP_DB_OPTS, {NULL, NULL, NULL, NULL, false, false, NULL}};
    ap_err_t err = {0};
    bool help;
    if (ap_config_parse(opts, argc, argv, NULL, NULL, &help, &err)) {
        ap_cmd_print_err(&err);
        return 2;
    }
    if (help) {
        ap_config_usage(stdout, "usage: agentprov migrate [options]\n\nApplies the schema "
                                "migrations built into this binary; running it twice is harmless.",
                        opts);
        return 0;
    }
    if (!ap_cmd_log_level(opts)) return 2;
    ap_crypto_init();
    ap_db_t *db = ap_cmd_open_db(opts, 1);
    if (!db) return 1;
    int applied = 0;
    ap_rc rc = ap_migrate(db, &applied, &err);
    ap_db_close(db);
    if (rc) {
        ap_cmd_print_err(&err);
        return 1;
    }
    printf("schema at version %d (%d applied)\n", ap_migrate_latest(), applied);
    return 0;
}
