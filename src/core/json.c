/*
 * json.c - body parsing and field-table validation.
 */
#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *ap_jtype_name(ap_jtype t) {
    switch (t) {
    case AP_JT_STRING: return "string";
    case AP_JT_INT: return "integer";
    case AP_JT_NUMBER: return "number";
    case AP_JT_BOOL: return "boolean";
    case AP_JT_OBJECT: return "object";
    case AP_JT_ARRAY: return "array";
    }
    return "value";
}

static const char *json_type_name(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

ap_rc ap_json_parse_object(const char *body, size_t len, json_t **out, ap_err_t *err) {
    *out = NULL;
    if (len == 0)
        return ap_err_set(err, AP_ERR_INVALID, "malformed-json", "request body is empty",
                          "send a JSON object with Content-Type: application/json",
                          "expected a JSON object, got an empty body");
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v)
        return ap_err_set(err, AP_ERR_INVALID, "malformed-json", "request body is not valid JSON",
                          "fix the JSON syntax at the position given",
                          "%s at line %d, column %d", jerr.text, jerr.line, jerr.column);
    if (!json_is_object(v)) {
        const char *t = json_type_name(v);
        json_decref(v);
        return ap_err_set(err, AP_ERR_INVALID, "malformed-json",
                          "request body must be a JSON object", "wrap the fields in {...}",
                          "expected an object, got %s", t);
    }
    *out = v;
    return AP_OK;
}

static bool type_ok(json_t *v, ap_jtype t) {
    switch (t) {
    case AP_JT_STRING: return json_is_string(v);
    case AP_JT_INT: return json_is_integer(v);
    case AP_JT_NUMBER: return json_is_number(v);
    case AP_JT_BOOL: return json_is_boolean(v);
    case AP_JT_OBJECT: return json_is_object(v);
    case AP_JT_ARRAY: return json_is_array(v);
    }
    return false;
}

ap_rc ap_json_check(json_t *obj, const ap_jfield_t *fields, ap_err_t *err) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const ap_jfield_t *f = fields;
        while (f->name && strcmp(f->name, key) != 0) f++;
        if (!f->name) {
            char allowed[256] = "";
            size_t n = 0;
            for (const ap_jfield_t *g = fields; g->name; g++) {
                size_t l = strlen(g->name);
                if (n + l + 3 >= sizeof allowed) break;
                if (n) {
                    memcpy(allowed + n, ", ", 2);
                    n += 2;
                }
                memcpy(allowed + n, g->name, l);
                n += l;
                allowed[n] = '\0';
            }
            return ap_err_set(err, AP_ERR_INVALID, "unknown-field", "unknown field",
                              "remove the field or correct its spelling",
                              "field \"%.64s\" is not accepted here; accepted fields: %s", key,
                              allowed);
        }
        if (json_is_null(v)) {
            if (f->nullable) continue;
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "field may not be null",
                              "give a value or leave the field out",
                              "field \"%s\" must be %s, got null", f->name,
                              ap_jtype_name(f->type));
        }
        if (!type_ok(v, f->type))
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "wrong type for field",
                              "send the value with the type named",
                              "field \"%s\" must be %s, got %s", f->name, ap_jtype_name(f->type),
                              json_type_name(v));
        if (f->type == AP_JT_STRING) {
            const char *s = json_string_value(v);
            size_t max = f->max_len ? f->max_len : 4096;
            if (json_string_length(v) > max)
                return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "field too long",
                                  "shorten the value", "field \"%s\" is %zu bytes; at most %zu",
                                  f->name, json_string_length(v), max);
            if (strlen(s) != json_string_length(v))
                return ap_err_set(err, AP_ERR_INVALID, "invalid-field",
                                  "field contains a NUL character", "remove the \\u0000",
                                  "field \"%s\" contains \\u0000", f->name);
            if (f->enums) {
                const char *const *e = f->enums;
                while (*e && strcmp(*e, s) != 0) e++;
                if (!*e) {
                    char allowed[256] = "";
                    size_t n = 0;
                    for (e = f->enums; *e; e++) {
                        size_t l = strlen(*e);
                        if (n + l + 3 >= sizeof allowed) break;
                        if (n) {
                            memcpy(allowed + n, ", ", 2);
                            n += 2;
                        }
                        memcpy(allowed + n, *e, l);
                        n += l;
                        allowed[n] = '\0';
                    }
                    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "value not allowed",
                                      "use one of the allowed values",
                                      "field \"%s\" is \"%.64s\"; allowed: %s", f->name, s,
                                      allowed);
                }
            }
        }
        if ((f->type == AP_JT_INT || f->type == AP_JT_NUMBER) && f->min < f->max) {
            double d = json_number_value(v);
            if (!(d >= f->min && d <= f->max)) {
                /* An integer is shown exactly; %g would round 12345678. */
                char shown[32];
                if (json_is_integer(v))
                    snprintf(shown, sizeof shown, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                else
                    snprintf(shown, sizeof shown, "%g", d);
                return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "value out of range",
                                  "give a value inside the range",
                                  "field \"%s\" is %s; must be between %g and %g", f->name,
                                  shown, f->min, f->max);
            }
        }
    }
    for (const ap_jfield_t *f = fields; f->name; f++) {
        if (f->required && !json_object_get(obj, f->name))
            return ap_err_set(err, AP_ERR_INVALID, "missing-field", "missing required field",
                              "add the field", "field \"%s\" (%s) is required", f->name,
                              ap_jtype_name(f->type));
    }
    return AP_OK;
}

const char *ap_json_str(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long ap_json_int(json_t *obj, const char *key, long long dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool ap_json_has(json_t *obj, const char *key) {
    return json_object_get(obj, key) != NULL;
}
