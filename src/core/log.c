/*
 * log.c - JSON line logger.
 */
#include "core/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/time.h"

static ap_log_level g_level = AP_LOG_INFO;

void ap_log_set_level(ap_log_level lvl) {
    g_level = lvl;
}

bool ap_log_enabled(ap_log_level lvl) {
    return lvl >= g_level;
}

static const char *names[] = {"debug", "info", "warn", "error"};

const char *ap_log_level_name(ap_log_level lvl) {
    return names[lvl];
}

bool ap_log_level_parse(const char *s, ap_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (ap_log_level)i;
            return true;
        }
    }
    return false;
}

void ap_log(ap_log_level lvl, const char *msg, const char *fmt, ...) {
    if (lvl < g_level) return;
    json_t *o = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_error_t jerr;
        o = json_vpack_ex(&jerr, 0, fmt, ap);
        va_end(ap);
    }
    if (!o) o = json_object();
    char ts[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), ts);
    json_t *line = json_pack("{s:s,s:s,s:s}", "time", ts, "level", names[lvl], "msg", msg);
    json_object_update(line, o);
    json_decref(o);
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!s) return;
    size_t n = strlen(s);
    s[n] = '\n'; /* replace NUL; we write n+1 bytes and never read it as a string again */
    ssize_t w = write(STDERR_FILENO, s, n + 1);
    (void)w;
    free(s);
}
