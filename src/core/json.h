/*
 * json.h - request body parsing and validation on top of jansson.
 *
 * 1. Bodies must be JSON objects; unknown fields are rejected by name, wrong
 *    types and bad enum values are named in the detail, so a typo is never
 *    silently ignored.
 * 2. A field table describes what an endpoint accepts; the same table is
 *    used by the handler and documented in the OpenAPI spec.
 */
#ifndef AP_CORE_JSON_H
#define AP_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef enum {
    AP_JT_STRING,
    AP_JT_INT,
    AP_JT_NUMBER,
    AP_JT_BOOL,
    AP_JT_OBJECT,
    AP_JT_ARRAY,
} ap_jtype;

typedef struct {
    const char *name;
    ap_jtype type;
    bool required;
    bool nullable;
    const char *const *enums; /* NULL-terminated list for strings, or NULL */
    size_t max_len;           /* strings: max bytes (0 = 4096) */
    double min, max;          /* numbers: inclusive range when min < max */
} ap_jfield_t;

#define AP_JFIELDS_END {NULL, 0, false, false, NULL, 0, 0, 0}

/* Parses body as a JSON object.  *out is a new reference. */
ap_rc ap_json_parse_object(const char *body, size_t len, json_t **out, ap_err_t *err);
/* Checks obj against fields: unknown names, required, types, enums, sizes. */
ap_rc ap_json_check(json_t *obj, const ap_jfield_t *fields, ap_err_t *err);
/* Convenience getters: NULL / default when absent or null. */
const char *ap_json_str(json_t *obj, const char *key);
long long ap_json_int(json_t *obj, const char *key, long long dflt);
bool ap_json_has(json_t *obj, const char *key);
const char *ap_jtype_name(ap_jtype t);

#endif
