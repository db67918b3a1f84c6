/*
 * buf.c - bounded growable buffer.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

void ap_buf_init(ap_buf_t *b, size_t max) {
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void ap_buf_free(ap_buf_t *b) {
    ap_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ap_buf_reset(ap_buf_t *b) {
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

static ap_rc reserve(ap_buf_t *b, size_t extra) {
    /* Compared by subtraction: len + extra could wrap (len <= max holds). */
    if (extra >= SIZE_MAX / 2 - b->len) return AP_ERR_TOO_LARGE;
    if (b->max && extra > b->max - b->len) return AP_ERR_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return AP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    b->p = ap_realloc(b->p, cap);
    b->cap = cap;
    return AP_OK;
}

ap_rc ap_buf_append(ap_buf_t *b, const void *data, size_t n) {
    ap_rc rc = reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return AP_OK;
}

ap_rc ap_buf_puts(ap_buf_t *b, const char *s) {
    return ap_buf_append(b, s, strlen(s));
}

ap_rc ap_buf_printf(ap_buf_t *b, const char *fmt, ...) {
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) {
        va_end(ap);
        return AP_ERR_INTERNAL;
    }
    ap_rc rc = reserve(b, (size_t)n);
    if (rc) {
        va_end(ap);
        return rc;
    }
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return AP_OK;
}

char *ap_buf_steal(ap_buf_t *b) {
    char *p = b->p;
    if (!p) p = ap_strdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
