/*
 * buf.h - growable byte buffer with a hard maximum.
 *
 * 1. Every buffer has a maximum (request bodies, upstream streams); an
 *    append past it fails with AP_ERR_TOO_LARGE and leaves the buffer as it
 *    was, so the caller can answer 413 cleanly.
 * 2. The content is always NUL-terminated for convenience; len excludes it.
 * 3. Heap-owned: ap_buf_free releases it.  Not thread-safe.
 */
#ifndef AP_CORE_BUF_H
#define AP_CORE_BUF_H

#include <stddef.h>

#include "core/err.h"

typedef struct {
    char *p;
    size_t len, cap, max;
} ap_buf_t;

void ap_buf_init(ap_buf_t *b, size_t max); /* max 0 = unlimited */
void ap_buf_free(ap_buf_t *b);
void ap_buf_reset(ap_buf_t *b);
ap_rc ap_buf_append(ap_buf_t *b, const void *data, size_t n);
ap_rc ap_buf_puts(ap_buf_t *b, const char *s);
ap_rc ap_buf_printf(ap_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the content to the caller (free with ap_free) and resets b. */
char *ap_buf_steal(ap_buf_t *b);

#endif
