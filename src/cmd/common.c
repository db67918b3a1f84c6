/*
 * common.c - database opening shared by serve, migrate, admin, audit.
 */
#include "cmd/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

void ap_cmd_print_err(const ap_err_t *err) {
    fprintf(stderr, "error: %s\n", err->msg[0] ? err->msg : ap_rc_name(err->rc));
    if (err->detail[0]) fprintf(stderr, "  %s\n", err->detail);
    if (err->hint[0]) fprintf(stderr, "  hint: %s\n", err->hint);
}

bool ap_cmd_log_level(const ap_opt_t *opts) {
    ap_log_level lvl;
    const char *v = ap_config_get(opts, "log-level");
    if (!v || !ap_log_level_parse(v, &lvl)) {
        fprintf(stderr, "error: invalid --log-level \"%s\"\n  hint: use debug, info, warn or error\n",
                v ? v : "");
        return false;
    }
    ap_log_set_level(lvl);
    return true;
}

ap_db_t *ap_cmd_open_db(const ap_opt_t *opts, int pool) {
    const char *dir = ap_config_get(opts, "data-dir");
    const char *url = ap_config_get(opts, "database-url");
    char buf[4096];
    if (!url) {
        snprintf(buf, sizeof buf, "sqlite:%s/agentprov.db", dir);
        url = buf;
    }
    /* Only the default location lives in the data dir; an explicit
     * sqlite:PATH must not create ./var (or any dir) as a side effect. */
    if (url == buf && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "error: cannot create data directory\n  %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    ap_db_t *db = NULL;
    ap_err_t err = {0};
    if (ap_db_open(url, pool, &db, &err)) {
        ap_cmd_print_err(&err);
        return NULL;
    }
    return db;
}
