/*
 * config.h - options from flags and AP_* environment variables.
 *
 * 1. A command describes its options in a table; a flag beats the
 *    environment, which beats the default.  `--help` prints the table.
 * 2. Values are kept as strings; secret options and passwords inside URLs
 *    are masked when the effective configuration is logged.
 */
#ifndef AP_CORE_CONFIG_H
#define AP_CORE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

typedef struct {
    const char *name; /* flag without dashes: "listen" */
    const char *env;  /* "AP_LISTEN", or NULL */
    const char *dflt; /* or NULL */
    const char *help;
    bool secret;
    bool is_flag; /* boolean switch without a value */
    const char *value; /* filled by ap_config_parse */
} ap_opt_t;

/* Parses argv[1..] (argv[0] is the command name) into opts (terminated by
 * name NULL).  Positional arguments are collected into *rest / *nrest
 * (both NULL when none are accepted; *rest must have room for argc
 * entries).  *help set on --help/-h. */
ap_rc ap_config_parse(ap_opt_t *opts, int argc, char **argv, const char ***rest, int *nrest,
                      bool *help, ap_err_t *err);
const char *ap_config_get(const ap_opt_t *opts, const char *name);
void ap_config_usage(FILE *f, const char *usage, const ap_opt_t *opts);
/* Effective configuration as JSON with secrets masked (new reference). */
json_t *ap_config_json(const ap_opt_t *opts);
/* Copies url with any password replaced by "***" into out. */
void ap_mask_url(const char *url, char *out, size_t cap);

#endif
