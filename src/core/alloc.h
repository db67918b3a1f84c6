/*
 * alloc.h - allocation wrappers that abort on out-of-memory.
 *
 * 1. Callers never check for NULL: running out of memory is not a condition
 *    this server recovers from (as in Redis zmalloc and PostgreSQL palloc).
 * 2. ap_free(NULL) is harmless.
 */
#ifndef AP_CORE_ALLOC_H
#define AP_CORE_ALLOC_H

#include <stddef.h>

void *ap_malloc(size_t n);
void *ap_calloc(size_t count, size_t size);
void *ap_realloc(void *p, size_t n);
char *ap_strdup(const char *s);
char *ap_strndup(const char *s, size_t n);
void ap_free(void *p);

#endif
