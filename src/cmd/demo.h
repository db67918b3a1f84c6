/*
 * demo.h - the demo team `serve` seeds on its first start.
 */
#ifndef AP_CMD_DEMO_H
#define AP_CMD_DEMO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/db.h"

/* Creates the tenant "demo" with its team (docs/agents.md, "The demo
 * team") and a tenant_admin key written to <data_dir>/demo.key (0600),
 * in one transaction.  *created is false, and nothing is changed, when a
 * tenant with the slug "demo" exists already.  path gets the key file's
 * path. */
ap_rc ap_cmd_demo_seed(ap_db_t *db, const char *data_dir, bool *created, char *path, size_t cap,
                       ap_err_t *err);

#endif
