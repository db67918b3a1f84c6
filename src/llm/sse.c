/*
 * sse.c - incremental Server-Sent Events parser and frame writer.
 *
 * 1. A complete line found inside one piece is processed in place; only
 *    the tail of a piece (a line still open) is copied into p->line.  So
 *    the common case, whole events per network read, copies data once.
 * 2. A CR at the end of a piece sets p->cr: the LF that may start the next
 *    piece is swallowed, which keeps CRLF split across pieces one break.
 * 3. Limits are checked before anything is appended, so a failed feed
 *    leaves no half-appended state behind, and the error is the same
 *    whatever the chunking (the position of the failure is a line).
 */
#include "llm/sse.h"

#include <string.h>

void ap_sse_init(ap_sse_parser_t *p, size_t max_line, size_t max_data) {
    memset(p, 0, sizeof *p);
    p->max_line = max_line ? max_line : AP_SSE_MAX_LINE;
    ap_buf_init(&p->line, 0);
    ap_buf_init(&p->data, max_data ? max_data : AP_SSE_MAX_DATA);
}

void ap_sse_free(ap_sse_parser_t *p) {
    ap_buf_free(&p->line);
    ap_buf_free(&p->data);
}

static void free_cleanup(void *arg) {
    ap_sse_free(arg);
}

ap_sse_parser_t *ap_sse_new(ap_arena_t *a, size_t max_line, size_t max_data) {
    ap_sse_parser_t *p = ap_arena_alloc(a, sizeof *p);
    ap_sse_init(p, max_line, max_data);
    ap_arena_cleanup(a, free_cleanup, p);
    return p;
}

static ap_rc dispatch(ap_sse_parser_t *p, ap_sse_fn fn, void *ud) {
    if (p->data.len == 0) { /* no data field: nothing to deliver */
        p->event_len = 0;
        return AP_OK;
    }
    p->data.len--; /* the "\n" after the last data line */
    p->data.p[p->data.len] = '\0';
    p->event[p->event_len] = '\0';
    /* names are C strings: one cut to nothing at a NUL byte is "message" */
    ap_sse_event_t ev = {p->event[0] ? p->event : "message", p->data.p, p->data.len};
    ap_rc rc = fn(ud, &ev);
    ap_buf_reset(&p->data);
    p->event_len = 0;
    return rc;
}

static ap_rc process_line(ap_sse_parser_t *p, const char *s, size_t n, ap_sse_fn fn, void *ud) {
    if (!p->started) {
        p->started = true;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, n -= 3;
    }
    if (n == 0) return dispatch(p, fn, ud);
    if (s[0] == ':') return AP_OK; /* comment */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = (size_t)(s + n - v);
    if (vlen && *v == ' ') v++, vlen--;
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        /* data + "\n" must fit; ap_buf_append checks the maximum */
        if (vlen + 1 > p->data.max - p->data.len) return AP_ERR_TOO_LARGE;
        ap_buf_append(&p->data, v, vlen);
        ap_buf_append(&p->data, "\n", 1);
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (vlen > AP_SSE_MAX_NAME) return AP_ERR_TOO_LARGE;
        memcpy(p->event, v, vlen);
        p->event_len = vlen;
    }
    return AP_OK;
}

ap_rc ap_sse_feed(ap_sse_parser_t *p, const char *data, size_t len, ap_sse_fn fn, void *ud) {
    if (p->failed) return p->failed;
    size_t i = 0;
    while (i < len) {
        if (p->cr) {
            p->cr = false;
            if (data[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        size_t seg = j - i;
        if (seg > p->max_line - p->line.len) {
            p->failed = AP_ERR_TOO_LARGE;
            return p->failed;
        }
        if (j == len) { /* the line continues in a later piece */
            ap_buf_append(&p->line, data + i, seg);
            break;
        }
        ap_rc rc;
        if (p->line.len == 0) {
            rc = process_line(p, data + i, seg, fn, ud);
        } else {
            ap_buf_append(&p->line, data + i, seg);
            rc = process_line(p, p->line.p, p->line.len, fn, ud);
            ap_buf_reset(&p->line);
        }
        if (rc) {
            p->failed = rc;
            return rc;
        }
        if (data[j] == '\r') p->cr = true;
        i = j + 1;
    }
    return AP_OK;
}

ap_rc ap_sse_write(ap_buf_t *out, const char *event, const char *data, size_t len) {
    ap_rc rc = AP_OK;
    if (event) {
        rc = ap_buf_puts(out, "event: ");
        for (const char *c = event; *c && !rc; c++)
            if (*c != '\r' && *c != '\n') rc = ap_buf_append(out, c, 1);
        if (!rc) rc = ap_buf_append(out, "\n", 1);
    }
    size_t i = 0;
    do {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        if (!rc) rc = ap_buf_append(out, "data: ", 6);
        if (!rc) rc = ap_buf_append(out, data + i, j - i);
        if (!rc) rc = ap_buf_append(out, "\n", 1);
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    } while (i <= len && !rc);
    if (!rc) rc = ap_buf_append(out, "\n", 1);
    return rc;
}

ap_rc ap_sse_write_comment(ap_buf_t *out, const char *text) {
    ap_rc rc = ap_buf_append(out, ": ", 2);
    for (const char *c = text; *c && !rc; c++)
        rc = ap_buf_append(out, (*c == '\r' || *c == '\n') ? " " : c, 1);
    if (!rc) rc = ap_buf_append(out, "\n\n", 2);
    return rc;
}
