/*
 * json_fuzz.c - libFuzzer target for ap_json_parse_object + ap_json_check.
 *
 * FUZZ_SOURCES: src/core/json.c src/core/err.c
 *
 * 1. Whatever the body, parsing either gives an object or AP_ERR_INVALID
 *    with type "malformed-json" and *out NULL.
 * 2. When the field table accepts an object, the object really obeys the
 *    table: every key is known, required keys are present, types, enums,
 *    lengths (bytes, no NUL) and numeric ranges hold.  A refusal names a
 *    known problem type.  Errors always fit their buffers.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static const char *const roles[] = {"viewer", "auditor", "tenant_admin", NULL};

static const ap_jfield_t fields[] = {
    {"email", AP_JT_STRING, true, false, NULL, 32, 0, 0},
    {"role", AP_JT_STRING, false, false, roles, 0, 0, 0},
    {"note", AP_JT_STRING, false, true, NULL, 0, 0, 0},
    {"count", AP_JT_INT, false, false, NULL, 0, 1, 100},
    {"ratio", AP_JT_NUMBER, false, true, NULL, 0, -1, 1},
    {"big", AP_JT_INT, false, false, NULL, 0, 0, 0},
    {"flag", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    {"tags", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    {"meta", AP_JT_OBJECT, false, true, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "json_fuzz: property failed: %s\n", #cond);      \
            abort();                                                          \
        }                                                                     \
    } while (0)

static bool type_is(json_t *v, ap_jtype t) {
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

static void check_err(const ap_err_t *err) {
    CHECK(err->rc == AP_ERR_INVALID);
    CHECK(memchr(err->type, '\0', sizeof err->type));
    CHECK(memchr(err->msg, '\0', sizeof err->msg));
    CHECK(memchr(err->detail, '\0', sizeof err->detail));
    CHECK(memchr(err->hint, '\0', sizeof err->hint));
    CHECK(err->msg[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *obj = (json_t *)1;
    ap_err_t err;
    memset(&err, 0x5a, sizeof err); /* garbage: must be overwritten */
    ap_rc rc = ap_json_parse_object((const char *)data, size, &obj, &err);
    if (rc != AP_OK) {
        CHECK(rc == AP_ERR_INVALID);
        CHECK(obj == NULL);
        check_err(&err);
        CHECK(strcmp(err.type, "malformed-json") == 0);
        return 0;
    }
    CHECK(json_is_object(obj));
    memset(&err, 0x5a, sizeof err);
    rc = ap_json_check(obj, fields, &err);
    if (rc != AP_OK) {
        check_err(&err);
        CHECK(!strcmp(err.type, "unknown-field") || !strcmp(err.type, "invalid-field") ||
              !strcmp(err.type, "missing-field"));
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
            const ap_jfield_t *f = fields;
            while (f->name && strcmp(f->name, key) != 0) f++;
            CHECK(f->name != NULL);
            if (json_is_null(v)) {
                CHECK(f->nullable);
                continue;
            }
            CHECK(type_is(v, f->type));
            if (f->type == AP_JT_STRING) {
                size_t max = f->max_len ? f->max_len : 4096;
                CHECK(json_string_length(v) <= max);
                CHECK(strlen(json_string_value(v)) == json_string_length(v));
                if (f->enums) {
                    bool found = false;
                    for (const char *const *e = f->enums; *e; e++)
                        found |= strcmp(*e, json_string_value(v)) == 0;
                    CHECK(found);
                }
            }
            if ((f->type == AP_JT_INT || f->type == AP_JT_NUMBER) && f->min < f->max) {
                double d = json_number_value(v);
                CHECK(!isnan(d) && d >= f->min && d <= f->max);
            }
        }
        for (const ap_jfield_t *f = fields; f->name; f++)
            if (f->required) CHECK(json_object_get(obj, f->name) != NULL);
        /* the getters agree with the object */
        const char *email = ap_json_str(obj, "email");
        CHECK(email != NULL);
        (void)ap_json_int(obj, "count", 0);
    }
    json_decref(obj);
    return 0;
}
