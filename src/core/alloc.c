/*
 * alloc.c - abort-on-OOM allocation wrappers.
 */
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *ap_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *ap_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *ap_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *ap_strdup(const char *s) {
    return ap_strndup(s, strlen(s));
}

char *ap_strndup(const char *s, size_t n) {
    char *p = ap_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ap_free(void *p) {
    free(p);
}
