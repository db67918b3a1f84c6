/*
 * sse_fuzz.c - libFuzzer target for the SSE parser (llm/sse.c).
 *
 * FUZZ_SOURCES: src/llm/sse.c src/core/buf.c src/core/alloc.c src/core/arena.c src/core/err.c
 *
 * 1. Input: byte 0 picks the line maximum (small ones reach the limit),
 *    byte 1 seeds the chunking; the rest is the stream.
 * 2. Chunking invariance: the stream fed whole, byte by byte and in
 *    pseudo-random pieces gives the same events and the same result code.
 * 3. The writer round-trips: every event parsed, written back with
 *    ap_sse_write and parsed again, is the same event.
 * 4. Events are well formed: data is NUL-terminated at data_len, names
 *    hold no line break and are at most AP_SSE_MAX_NAME bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/sse.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "sse_fuzz: property failed: %s\n", #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    ap_buf_t log; /* name \0 data \1 per event */
    ap_buf_t rewritten;
    int n;
} log_t;

static ap_rc on_event(void *ud, const ap_sse_event_t *ev) {
    log_t *l = ud;
    CHECK(ev->data[ev->data_len] == '\0');
    CHECK(strlen(ev->event) <= AP_SSE_MAX_NAME);
    CHECK(!strchr(ev->event, '\n') && !strchr(ev->event, '\r'));
    CHECK(!memchr(ev->data, '\r', ev->data_len));
    ap_buf_puts(&l->log, ev->event);
    ap_buf_append(&l->log, "", 1);
    ap_buf_append(&l->log, ev->data, ev->data_len);
    ap_buf_append(&l->log, "\1", 1);
    if (l->rewritten.max == 0) ap_sse_write(&l->rewritten, ev->event, ev->data, ev->data_len);
    l->n++;
    return AP_OK;
}

static ap_rc run(const char *s, size_t n, size_t max_line, int mode, uint32_t seed, log_t *l) {
    ap_sse_parser_t p;
    ap_sse_init(&p, max_line, 1u << 16);
    ap_rc rc = AP_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = n - i;
        if (mode == 1) k = 1;
        if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % 13;
        }
        if (k > n - i) k = n - i;
        rc = ap_sse_feed(&p, s + i, k, on_event, l);
        i += k;
    }
    ap_sse_free(&p);
    return rc;
}

static void log_init(log_t *l, bool rewrite) {
    ap_buf_init(&l->log, 0);
    ap_buf_init(&l->rewritten, rewrite ? 0 : 1); /* max 1: "do not rewrite" */
    l->n = 0;
}

static void log_free(log_t *l) {
    ap_buf_free(&l->log);
    ap_buf_free(&l->rewritten);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t max_line = data[0] < 128 ? (size_t)data[0] + 1 : 0; /* 0: the default */
    uint32_t seed = data[1];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;

    log_t whole, bytes, random;
    log_init(&whole, true);
    log_init(&bytes, false);
    log_init(&random, false);
    ap_rc r1 = run(s, n, max_line, 0, seed, &whole);
    ap_rc r2 = run(s, n, max_line, 1, seed, &bytes);
    ap_rc r3 = run(s, n, max_line, 2, seed, &random);
    CHECK(r1 == AP_OK || r1 == AP_ERR_TOO_LARGE);
    CHECK(r1 == r2 && r1 == r3);
    CHECK(whole.n == bytes.n && whole.n == random.n);
    CHECK(whole.log.len == bytes.log.len && whole.log.len == random.log.len);
    CHECK(!whole.log.len || (!memcmp(whole.log.p, bytes.log.p, whole.log.len) &&
                             !memcmp(whole.log.p, random.log.p, whole.log.len)));

    /* written back and parsed again: the same events (names cut at a NUL
     * byte on both sides, so compare through the writer's own output) */
    log_t again;
    log_init(&again, true);
    ap_rc r4 =
        run(whole.rewritten.p ? whole.rewritten.p : "", whole.rewritten.len, 0, 2, seed, &again);
    CHECK(r4 == AP_OK);
    CHECK(again.n == whole.n);
    CHECK(again.rewritten.len == whole.rewritten.len);
    CHECK(!again.rewritten.len ||
          !memcmp(again.rewritten.p, whole.rewritten.p, whole.rewritten.len));
    log_free(&again);
    log_free(&whole);
    log_free(&bytes);
    log_free(&random);
    return 0;
}
