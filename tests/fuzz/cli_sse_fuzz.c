/*
 * cli_sse_fuzz.c - libFuzzer target for the CLI's event-stream reader
 * (cmd/sse_read.c), which `agentprov tasks ... --follow` and
 * `agentprov events --follow` read the server's streams with.
 *
 * FUZZ_SOURCES: src/cmd/sse_read.c src/core/buf.c src/core/alloc.c src/core/err.c
 *
 * 1. Input: byte 0 picks the maximum (small ones reach the limit), byte 1
 *    seeds the chunking; the rest is the stream.
 * 2. Chunking invariance: the stream fed whole, byte by byte and in
 *    pseudo-random pieces gives the same events and the same result (a
 *    CRLF cut between two pieces included).
 * 3. Events are well formed: id and event hold no line break; data holds
 *    no CR and is at most the maximum; the result is AP_OK or
 *    AP_ERR_TOO_LARGE.
 * 4. A stream written as the server writes it (id, event, data lines, an
 *    empty line) reads back as the same events.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/sse_read.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "cli_sse_fuzz: property failed: %s\n", #cond);                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    ap_buf_t log;
    size_t max;
    int n;
} log_t;

static void on_event(void *ud, const char *id, const char *type, const char *data) {
    log_t *l = ud;
    CHECK(!strpbrk(id, "\r\n") && !strpbrk(type, "\r\n"));
    CHECK(!strchr(data, '\r'));
    CHECK(strlen(data) <= l->max);
    ap_buf_puts(&l->log, id);
    ap_buf_append(&l->log, "\1", 1);
    ap_buf_puts(&l->log, type);
    ap_buf_append(&l->log, "\1", 1);
    ap_buf_puts(&l->log, data);
    ap_buf_append(&l->log, "\2", 1);
    l->n++;
}

static ap_rc run(const char *s, size_t n, size_t max, int mode, uint32_t seed, log_t *l) {
    ap_sse_read_t r;
    ap_buf_init(&l->log, 0);
    l->max = max;
    l->n = 0;
    ap_sse_read_init(&r, max, on_event, l);
    ap_rc rc = AP_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = n - i;
        if (mode == 1) k = 1;
        if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % 13;
        }
        if (k > n - i) k = n - i;
        rc = ap_sse_read_feed(&r, s + i, k);
        i += k;
    }
    ap_sse_read_free(&r);
    return rc;
}

static bool same(const log_t *a, const log_t *b) {
    return a->n == b->n && a->log.len == b->log.len &&
           (!a->log.len || !memcmp(a->log.p, b->log.p, a->log.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t max = data[0] < 128 ? (size_t)data[0] + 1 : 1u << 16;
    uint32_t seed = data[1];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;

    log_t whole, bytes, random;
    ap_rc r1 = run(s, n, max, 0, seed, &whole);
    ap_rc r2 = run(s, n, max, 1, seed, &bytes);
    ap_rc r3 = run(s, n, max, 2, seed, &random);
    CHECK(r1 == AP_OK || r1 == AP_ERR_TOO_LARGE);
    CHECK(r1 == r2 && r1 == r3);
    CHECK(same(&whole, &bytes) && same(&whole, &random));

    /* the server's shape: the input cut into id / event / data words */
    ap_buf_t w, want;
    ap_buf_init(&w, 0);
    ap_buf_init(&want, 0);
    int events = 0;
    for (size_t i = 0; i + 3 <= n && events < 8; i += 3) {
        char word[3][8];
        for (int k = 0; k < 3; k++) {
            unsigned char c = (unsigned char)s[i + (size_t)k];
            snprintf(word[k], sizeof word[k], "w%u", c);
        }
        ap_buf_printf(&w, "id: %s\nevent: %s\ndata: {\"x\":\"%s\"}\n\n", word[0], word[1], word[2]);
        ap_buf_printf(&want, "%s\1%s\1{\"x\":\"%s\"}\2", word[0], word[1], word[2]);
        events++;
    }
    ap_buf_puts(&w, ": heartbeat\n\n");
    log_t back;
    CHECK(run(w.p, w.len, 1u << 16, 2, seed, &back) == AP_OK);
    CHECK(back.n == events && back.log.len == want.len &&
          (!want.len || !memcmp(back.log.p, want.p, want.len)));
    ap_buf_free(&w);
    ap_buf_free(&want);
    ap_buf_free(&back.log);
    ap_buf_free(&whole.log);
    ap_buf_free(&bytes.log);
    ap_buf_free(&random.log);
    return 0;
}
