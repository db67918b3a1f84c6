/*
 * time.h - wall clock in milliseconds, RFC 3339 formatting, monotonic clock.
 *
 * 1. Timestamps are stored as RFC 3339 UTC text with milliseconds and a
 *    trailing Z ("2026-11-21T10:41:05.123Z"): the same bytes on SQLite and
 *    PostgreSQL, and lexicographic order equals time order.
 * 2. The range is years 0000-9999: ap_time_format clamps to it, and
 *    ap_time_parse refuses impossible dates (2026-02-30) and instants an
 *    offset pushes outside it, so whatever parses formats back exactly.
 */
#ifndef AP_CORE_TIME_H
#define AP_CORE_TIME_H

#include <stdbool.h>
#include <stdint.h>

#define AP_TIME_LEN 25 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL */

int64_t ap_now_ms(void);
uint64_t ap_mono_ns(void);
void ap_time_format(int64_t ms, char out[AP_TIME_LEN]);
/* Parses RFC 3339 (with Z or ±hh:mm offset, optional fraction).  Returns
 * false on anything else. */
bool ap_time_parse(const char *s, int64_t *ms);

#endif
