/*
 * memory_text_fuzz.c - libFuzzer target for the text rules of agent memory
 * (src/memory/text.c): fact subjects, text equality, entity names.
 *
 * FUZZ_SOURCES: src/memory/text.c src/core/arena.c src/core/alloc.c
 *
 * 1. A subject is NULL or a non-empty string no longer than the input,
 *    without ASCII upper case, and with no leading or trailing space.
 * 2. The normalised name is a fixed point (normalising it again changes
 *    nothing), has no ASCII upper case and no double space, and equals the
 *    input under ap_mem_same_text.
 * 3. ap_mem_same_text is reflexive and symmetric.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/text.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "memory_text_fuzz: property failed: %s\n", #cond); \
            abort();                                                         \
        }                                                                    \
    } while (0)

static int no_upper(const char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    for (size_t i = 0; i < size; i++) s[i] = data[i] ? (char)data[i] : ' ';
    s[size] = '\0';
    ap_arena_t *a = ap_arena_new(1024);

    const char *subj = ap_mem_subject(a, s);
    if (subj) {
        size_t n = strlen(subj);
        CHECK(n > 0 && n <= size);
        CHECK(no_upper(subj));
        CHECK(subj[0] != ' ' && subj[n - 1] != ' ');
    }

    const char *norm = ap_mem_norm_name(a, s);
    CHECK(strcmp(ap_mem_norm_name(a, norm), norm) == 0);
    CHECK(no_upper(norm));
    CHECK(strstr(norm, "  ") == NULL);
    CHECK(ap_mem_same_text(s, norm));

    CHECK(ap_mem_same_text(s, s));
    size_t half = size / 2;
    char *t = ap_arena_strndup(a, s, half);
    CHECK(ap_mem_same_text(s, t) == ap_mem_same_text(t, s));

    ap_arena_free(a);
    free(s);
    return 0;
}
