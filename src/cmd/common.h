/*
 * common.h - what several subcommands share: locating and opening the
 * database named by --database-url / --data-dir.
 */
#ifndef AP_CMD_COMMON_H
#define AP_CMD_COMMON_H

#include "core/config.h"
#include "store/db.h"

/* Option rows every database-using command accepts. */
#define AP_DB_OPTS                                                                           \
    {"data-dir", "AP_DATA_DIR", "./var", "directory for the SQLite file and admin.key",      \
     false, false, NULL},                                                                   \
        {"database-url", "AP_DATABASE_URL", NULL,                                           \
         "sqlite:PATH or postgres://user:pass@host:port/db (default sqlite:<data-dir>/"     \
         "agentprov.db); a password in it is masked in logs",                             \
         false, false, NULL},                                                                \
        {"log-level", "AP_LOG_LEVEL", "info", "debug, info, warn or error", false, false, NULL}

/* Opens the database from the parsed options (creating the data dir for
 * SQLite); prints the problem and returns NULL on failure. */
ap_db_t *ap_cmd_open_db(const ap_opt_t *opts, int pool);
/* Prints an error the way every command does: title, detail, hint. */
void ap_cmd_print_err(const ap_err_t *err);
/* Applies --log-level; false (after printing) when it is invalid. */
bool ap_cmd_log_level(const ap_opt_t *opts);

#endif
