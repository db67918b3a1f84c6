/*
 * err.c - ap_rc names and filling ap_err_t.
 */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void copy(char *dst, size_t cap, const char *src) {
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

ap_rc ap_err_set(ap_err_t *err, ap_rc rc, const char *type, const char *msg,
                 const char *hint, const char *detail_fmt, ...) {
    if (!err) return rc;
    err->rc = rc;
    copy(err->type, sizeof err->type, type ? type : ap_rc_type(rc));
    copy(err->msg, sizeof err->msg, msg);
    copy(err->hint, sizeof err->hint, hint);
    if (detail_fmt) {
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(err->detail, sizeof err->detail, detail_fmt, ap);
        va_end(ap);
    } else {
        err->detail[0] = '\0';
    }
    return rc;
}

void ap_err_clear(ap_err_t *err) {
    if (err) memset(err, 0, sizeof *err);
}

const char *ap_rc_name(ap_rc rc) {
    switch (rc) {
    case AP_OK: return "ok";
    case AP_ERR_INVALID: return "invalid";
    case AP_ERR_NOT_FOUND: return "not found";
    case AP_ERR_CONFLICT: return "conflict";
    case AP_ERR_DENIED: return "denied";
    case AP_ERR_UNAUTH: return "unauthenticated";
    case AP_ERR_LIMIT: return "limit";
    case AP_ERR_TOO_LARGE: return "too large";
    case AP_ERR_IO: return "i/o error";
    case AP_ERR_UNAVAILABLE: return "unavailable";
    case AP_ERR_INTERNAL: return "internal error";
    }
    return "unknown";
}

const char *ap_rc_type(ap_rc rc) {
    switch (rc) {
    case AP_OK: return "ok";
    case AP_ERR_INVALID: return "invalid-request";
    case AP_ERR_NOT_FOUND: return "not-found";
    case AP_ERR_CONFLICT: return "conflict";
    case AP_ERR_DENIED: return "forbidden";
    case AP_ERR_UNAUTH: return "unauthenticated";
    case AP_ERR_LIMIT: return "limit-exceeded";
    case AP_ERR_TOO_LARGE: return "payload-too-large";
    case AP_ERR_IO: return "storage-error";
    case AP_ERR_UNAVAILABLE: return "unavailable";
    case AP_ERR_INTERNAL: return "internal-error";
    }
    return "internal-error";
}
