/*
 * log.h - structured JSON log lines on stderr.
 *
 * 1. One line per event, written with a single write(2) so lines from
 *    different threads never interleave.
 * 2. Extra fields are given as a jansson json_pack format plus arguments,
 *    so values are always escaped correctly: ap_log(AP_LOG_INFO, "request",
 *    "{s:s,s:i}", "route", route, "status", 200).
 * 3. Never pass a secret, key, token or prompt body: the logger cannot tell.
 * 4. The level is the one mutable global besides allocator hooks (set once
 *    at start).
 */
#ifndef AP_CORE_LOG_H
#define AP_CORE_LOG_H

#include <stdbool.h>

typedef enum { AP_LOG_DEBUG, AP_LOG_INFO, AP_LOG_WARN, AP_LOG_ERROR } ap_log_level;

void ap_log_set_level(ap_log_level lvl);
bool ap_log_enabled(ap_log_level lvl);
bool ap_log_level_parse(const char *s, ap_log_level *out);
const char *ap_log_level_name(ap_log_level lvl);
/* fmt may be NULL for no extra fields. */
void ap_log(ap_log_level lvl, const char *msg, const char *fmt, ...);

#endif
