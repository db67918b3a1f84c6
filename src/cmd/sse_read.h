/*
 * sse_read.h - the CLI's reader of text/event-stream answers (the tasks
 * and events commands follow a stream with it).
 *
 * 1. Bytes are fed as they come, in pieces of any size; the result does
 *    not depend on how the stream was cut.
 * 2. Lines end with LF, CRLF or a lone CR.  An empty line ends an event; a
 *    line starting with ':' is a comment (heartbeat); `data` lines are
 *    joined with LF, `id` and `event` take the last value within the
 *    event (the callback gets "" when the event had none); other fields
 *    and lines without a colon are ignored.  An event without any data
 *    line is not delivered (the HTML living standard's rules).
 * 3. Growth is bounded: a line or an event's data longer than the
 *    maximum, or an id or event name over 1 KiB, makes feed fail with AP_ERR_TOO_LARGE (the caller drops the
 *    stream).
 * 4. Not thread-safe; the strings given to the callback live until it
 *    returns.
 */
#ifndef AP_CMD_SSE_READ_H
#define AP_CMD_SSE_READ_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef void (*ap_sse_read_fn)(void *ud, const char *id, const char *type, const char *data);

typedef struct {
    ap_buf_t line, id, type, data;
    bool has_data, after_cr;
    ap_sse_read_fn fn;
    void *ud;
} ap_sse_read_t;

/* max: the longest line and event data, in bytes (> 0). */
void ap_sse_read_init(ap_sse_read_t *r, size_t max, ap_sse_read_fn fn, void *ud);
/* AP_ERR_TOO_LARGE past the maximum; the reader is then spent. */
ap_rc ap_sse_read_feed(ap_sse_read_t *r, const char *p, size_t n);
void ap_sse_read_free(ap_sse_read_t *r);

#endif
