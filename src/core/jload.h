/*
 * jload.h - a fast reader of JSON text into jansson values, for the hot
 * paths (gateway requests, provider replies).
 *
 * 1. ap_jload gives exactly what json_loadb(buf, len, flags, err) gives:
 *    the same values (jansson's own constructors, insertion order kept),
 *    or NULL with jansson's own error.  It reads the common case itself —
 *    an object or array of UTF-8 strings, integers, reals, literals, up to
 *    AP_JLOAD_MAX_DEPTH deep — about five times faster than jansson's
 *    lexer; on anything else (malformed input, \u0000, integers or reals
 *    out of range, other flags than JSON_REJECT_DUPLICATES) it hands the
 *    whole text to json_loadb, so errors and edge cases stay jansson's.
 * 2. Pure; thread-safe.  tests/fuzz/jload_fuzz.c holds it to json_loadb.
 */
#ifndef AP_CORE_JLOAD_H
#define AP_CORE_JLOAD_H

#include <jansson.h>
#include <stddef.h>

#define AP_JLOAD_MAX_DEPTH 256

json_t *ap_jload(const char *buf, size_t len, size_t flags, json_error_t *err);

#endif
