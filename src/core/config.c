/*
 * config.c - flag and environment parsing.
 */
#include "core/config.h"

#include <stdlib.h>
#include <string.h>

static ap_opt_t *find(ap_opt_t *opts, const char *name, size_t len) {
    for (ap_opt_t *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

ap_rc ap_config_parse(ap_opt_t *opts, int argc, char **argv, const char ***rest, int *nrest,
                      bool *help, ap_err_t *err) {
    *help = false;
    if (nrest) *nrest = 0;
    for (ap_opt_t *o = opts; o->name; o++) {
        const char *e = o->env ? getenv(o->env) : NULL;
        o->value = e && *e ? e : o->dflt;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return AP_OK;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!rest)
                return ap_err_set(err, AP_ERR_INVALID, "usage", "unexpected argument",
                                  "see --help", "\"%s\"", a);
            (*rest)[(*nrest)++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        ap_opt_t *o = find(opts, name, len);
        if (!o)
            return ap_err_set(err, AP_ERR_INVALID, "usage", "unknown option", "see --help",
                              "%s", a);
        if (o->is_flag) {
            o->value = "true";
            continue;
        }
        if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return ap_err_set(err, AP_ERR_INVALID, "usage", "option needs a value",
                                  "see --help", "--%s", o->name);
            o->value = argv[++i];
        }
    }
    return AP_OK;
}

const char *ap_config_get(const ap_opt_t *opts, const char *name) {
    for (const ap_opt_t *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o->value;
    return NULL;
}

void ap_config_usage(FILE *f, const char *usage, const ap_opt_t *opts) {
    fprintf(f, "%s\n\nOptions (flag, environment variable, default):\n", usage);
    for (const ap_opt_t *o = opts; o->name; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", o->name, o->is_flag ? "" : " VALUE");
        fprintf(f, "  %-28s %s\n  %-28s   env %s, default %s\n", flag, o->help, "",
                o->env ? o->env : "-", o->dflt ? o->dflt : "(none)");
    }
}

void ap_mask_url(const char *url, char *out, size_t cap) {
    snprintf(out, cap, "%s", url);
    char tail[1024];
    char *scheme = strstr(out, "://");
    if (scheme) {
        /* The last '@' before the path: an unencoded '@' in a password
         * must not leave the rest of the password showing. */
        char *auth = scheme + 3;
        char *end = auth + strcspn(auth, "/");
        char *at = NULL;
        for (char *q = auth; q < end; q++)
            if (*q == '@') at = q;
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            snprintf(tail, sizeof tail, "%s", at);
            snprintf(colon, cap - (size_t)(colon - out), ":***%s", tail);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw) {
        char *end = strchr(pw, '&');
        snprintf(tail, sizeof tail, "%s", end ? end : "");
        snprintf(pw, cap - (size_t)(pw - out), "password=***%s", tail);
    }
}

json_t *ap_config_json(const ap_opt_t *opts) {
    json_t *o = json_object();
    for (const ap_opt_t *p = opts; p->name; p++) {
        if (!p->value) {
            json_object_set_new(o, p->name, json_null());
        } else if (p->secret) {
            json_object_set_new(o, p->name, json_string("***"));
        } else if (strstr(p->value, "://")) {
            char buf[1024];
            ap_mask_url(p->value, buf, sizeof buf);
            json_object_set_new(o, p->name, json_string(buf));
        } else {
            json_object_set_new(o, p->name, json_string(p->value));
        }
    }
    return o;
}
