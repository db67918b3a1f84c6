/*
 * time_fuzz.c - libFuzzer target for ap_time_parse and ap_time_format.
 *
 * FUZZ_SOURCES: src/core/time.c
 *
 * 1. Whatever parses formats back to a canonical timestamp that parses to
 *    the same millisecond, and formatting that canonical text is a fixed
 *    point (byte-identical).
 * 2. Any 64-bit millisecond value formats to 24 characters ending in 'Z'
 *    that parse again (values past years 0000-9999 are clamped).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "time_fuzz: property failed: %s\n  input: \"%s\"\n", #cond, \
                    s);                                                              \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static void check_canonical(const char *s, const char out[AP_TIME_LEN]) {
    CHECK(strlen(out) == AP_TIME_LEN - 1);
    CHECK(out[4] == '-' && out[7] == '-' && out[10] == 'T' && out[13] == ':' &&
          out[16] == ':' && out[19] == '.' && out[23] == 'Z');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms = 0;
    if (ap_time_parse(s, &ms)) {
        char out[AP_TIME_LEN], out2[AP_TIME_LEN];
        ap_time_format(ms, out);
        check_canonical(s, out);
        int64_t ms2 = 0;
        CHECK(ap_time_parse(out, &ms2));
        CHECK(ms2 == ms);
        ap_time_format(ms2, out2);
        CHECK(strcmp(out, out2) == 0);
    }
    if (size >= 8) {
        int64_t v;
        memcpy(&v, data, 8);
        char out[AP_TIME_LEN];
        ap_time_format(v, out);
        check_canonical(s, out);
        int64_t back = 0;
        CHECK(ap_time_parse(out, &back));
        if (v >= -62167219200000LL && v <= 253402300799999LL) CHECK(back == v);
    }
    free(s);
    return 0;
}
