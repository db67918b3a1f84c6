/*
 * sse_read.c - the CLI's text/event-stream reader (decisions in the
 * header).
 *
 * 1. A lone CR ends a line as LF does; a LF right after a CR belongs to
 *    that CR (after_cr), so CRLF cut between two pieces still counts once.
 */
#include "cmd/sse_read.h"

#include <string.h>

void ap_sse_read_init(ap_sse_read_t *r, size_t max, ap_sse_read_fn fn, void *ud) {
    memset(r, 0, sizeof *r);
    ap_buf_init(&r->line, max);
    ap_buf_init(&r->id, 1024);
    ap_buf_init(&r->type, 1024);
    ap_buf_init(&r->data, max);
    r->fn = fn;
    r->ud = ud;
}

void ap_sse_read_free(ap_sse_read_t *r) {
    ap_buf_free(&r->line);
    ap_buf_free(&r->id);
    ap_buf_free(&r->type);
    ap_buf_free(&r->data);
}

static ap_rc set(ap_buf_t *b, const char *v, size_t n) {
    ap_buf_reset(b);
    return ap_buf_append(b, v, n);
}

static ap_rc line(ap_sse_read_t *r, const char *l, size_t n) {
    if (n == 0) { /* end of an event */
        ap_rc rc = AP_OK;
        if (r->has_data) {
            rc = ap_buf_append(&r->id, "", 1);
            if (!rc) rc = ap_buf_append(&r->type, "", 1);
            if (!rc) rc = ap_buf_append(&r->data, "", 1);
            if (!rc) r->fn(r->ud, r->id.p, r->type.p, r->data.p);
        }
        ap_buf_reset(&r->id);
        ap_buf_reset(&r->type);
        ap_buf_reset(&r->data);
        r->has_data = false;
        return rc;
    }
    if (l[0] == ':') return AP_OK; /* heartbeat */
    const char *colon = memchr(l, ':', n);
    size_t k = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ') v++;
    size_t vn = (size_t)(l + n - v);
    if (k == 2 && memcmp(l, "id", 2) == 0) {
        return set(&r->id, v, vn);
    } else if (k == 5 && memcmp(l, "event", 5) == 0) {
        return set(&r->type, v, vn);
    } else if (k == 4 && memcmp(l, "data", 4) == 0) {
        ap_rc rc = r->has_data ? ap_buf_append(&r->data, "\n", 1) : AP_OK;
        r->has_data = true;
        return rc ? rc : ap_buf_append(&r->data, v, vn);
    }
    return AP_OK;
}

ap_rc ap_sse_read_feed(ap_sse_read_t *r, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n' && r->after_cr) {
            r->after_cr = false;
            continue;
        }
        r->after_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            ap_rc rc = line(r, r->line.p ? r->line.p : "", r->line.len);
            ap_buf_reset(&r->line);
            if (rc) return rc;
        } else if (ap_buf_append(&r->line, &c, 1)) {
            return AP_ERR_TOO_LARGE;
        }
    }
    return AP_OK;
}
