/*
 * jload_fuzz.c - libFuzzer target holding ap_jload to json_loadb.
 *
 * FUZZ_SOURCES: src/core/jload.c src/core/alloc.c
 *
 * Whatever the bytes, with and without JSON_REJECT_DUPLICATES: both parse
 * or both refuse; when both parse the values are equal (json_equal, and
 * the same text when dumped, so key order too).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jload.h"

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "jload_fuzz: property failed: %s\n", #cond); \
            abort();                                                     \
        }                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int f = 0; f < 2; f++) {
        size_t flags = f ? JSON_REJECT_DUPLICATES : 0;
        json_error_t e1, e2;
        json_t *a = ap_jload((const char *)data, size, flags, &e1);
        json_t *b = json_loadb((const char *)data, size, flags, &e2);
        CHECK((a == NULL) == (b == NULL));
        if (a) {
            CHECK(json_equal(a, b));
            char *sa = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
            char *sb = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
            CHECK(sa && sb && strcmp(sa, sb) == 0);
            free(sa);
            free(sb);
        } else {
            CHECK(strcmp(e1.text, e2.text) == 0);
        }
        json_decref(a);
        json_decref(b);
    }
    return 0;
}
