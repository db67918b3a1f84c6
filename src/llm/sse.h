/*
 * sse.h - incremental Server-Sent Events parser and frame writer.
 *
 * 1. Bytes may be fed in arbitrary pieces: a line, a CRLF pair or a UTF-8
 *    sequence may be split anywhere, and the events seen are the same as
 *    when the whole stream arrives at once (the fuzz target checks it).
 * 2. Follows the WHATWG event-stream rules: lines end in LF, CRLF or a lone
 *    CR; ":" starts a comment; "field: value" drops one leading space of the
 *    value; data lines join with "\n"; a blank line dispatches an event when
 *    data was given; an event without a name is "message"; a leading BOM
 *    is skipped.  id and retry fields and unknown fields are ignored.
 * 3. Every line and every event's data have a maximum; past it the parser
 *    fails with AP_ERR_TOO_LARGE and stays failed (a stream is not resumed
 *    in the middle of a line).
 * 4. The parser owns two heap buffers: ap_sse_free releases them
 *    (ap_sse_new ties that to an arena).  Not thread-safe.
 */
#ifndef AP_LLM_SSE_H
#define AP_LLM_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

#define AP_SSE_MAX_LINE (1u << 20) /* default line maximum: 1 MiB */
#define AP_SSE_MAX_DATA (8u << 20) /* default event data maximum: 8 MiB */
#define AP_SSE_MAX_NAME 128        /* event names longer than this fail */

typedef struct {
    const char *event; /* "message" when the event had no name (cut at a NUL byte) */
    const char *data;  /* data lines joined by "\n"; NUL-terminated */
    size_t data_len;
} ap_sse_event_t;

/* Called for each event; the strings are valid during the call only.  A
 * non-zero return stops the feed, which returns it. */
typedef ap_rc (*ap_sse_fn)(void *ud, const ap_sse_event_t *ev);

typedef struct {
    ap_buf_t line; /* the unfinished line */
    ap_buf_t data; /* data of the event being collected, "\n" after each line */
    char event[AP_SSE_MAX_NAME + 1];
    size_t event_len;
    size_t max_line;
    bool cr;      /* the last byte was CR: a following LF belongs to it */
    bool started; /* the first line was seen (BOM check done) */
    ap_rc failed; /* sticky error */
} ap_sse_parser_t;

/* max_line / max_data 0: the defaults above. */
void ap_sse_init(ap_sse_parser_t *p, size_t max_line, size_t max_data);
void ap_sse_free(ap_sse_parser_t *p);
/* An initialised parser in arena memory, freed with the arena. */
ap_sse_parser_t *ap_sse_new(ap_arena_t *a, size_t max_line, size_t max_data);
/* Feeds bytes; calls fn for each complete event.  Returns AP_OK, the
 * callback's non-zero rc, or AP_ERR_TOO_LARGE for a line, an event name or
 * event data past its maximum (and that again on every later feed). */
ap_rc ap_sse_feed(ap_sse_parser_t *p, const char *data, size_t len, ap_sse_fn fn, void *ud);

/* Appends one frame: "event: NAME\n" (when name is not NULL), one
 * "data: " line per line of data (LF, CRLF and CR all split, so data can
 * never break the framing), and the blank line.  CR and LF are removed
 * from the name.  Returns ap_buf_append's rc. */
ap_rc ap_sse_write(ap_buf_t *out, const char *event, const char *data, size_t len);
/* Appends ": text\n\n" (a keep-alive); line breaks in text become spaces. */
ap_rc ap_sse_write_comment(ap_buf_t *out, const char *text);

#endif
