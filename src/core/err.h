/*
 * err.h - the one result type and errors that carry words for people.
 *
 * 1. Every fallible function returns ap_rc; results come back through
 *    out-parameters.  AP_OK is zero so `if (rc)` reads naturally.
 * 2. An ap_err_t holds a short lowercase message, a detail (what was wrong,
 *    with the offending value) and a hint (what to do).  The HTTP layer maps
 *    rc + err to a status and an RFC 9457 problem; the CLI prints the same.
 * 3. Details must never contain secrets: callers pass field names and
 *    user-visible values only.
 */
#ifndef AP_CORE_ERR_H
#define AP_CORE_ERR_H

typedef enum {
    AP_OK = 0,
    AP_ERR_INVALID,     /* bad input: 400 / 422 */
    AP_ERR_NOT_FOUND,   /* 404 */
    AP_ERR_CONFLICT,    /* 409 */
    AP_ERR_DENIED,      /* 403 */
    AP_ERR_UNAUTH,      /* 401 */
    AP_ERR_LIMIT,       /* 429 / quota */
    AP_ERR_TOO_LARGE,   /* 413 */
    AP_ERR_IO,          /* 500 */
    AP_ERR_UNAVAILABLE, /* 503 */
    AP_ERR_INTERNAL,    /* 500 */
} ap_rc;

typedef struct {
    ap_rc rc;
    char type[48];    /* stable problem type slug, e.g. "invalid-field" */
    char msg[128];    /* short, lowercase: "unknown field" */
    char detail[512]; /* what was wrong: "field \"nmae\" is not accepted" */
    char hint[256];   /* what to do */
} ap_err_t;

/* Fills *err (if not NULL) and returns rc.  `type` may be NULL for the
 * default slug of rc.  detail is printf-style. */
ap_rc ap_err_set(ap_err_t *err, ap_rc rc, const char *type, const char *msg,
                 const char *hint, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));
void ap_err_clear(ap_err_t *err);
const char *ap_rc_name(ap_rc rc);
/* Default problem type slug for rc. */
const char *ap_rc_type(ap_rc rc);

#endif
