/*
 * sse.c - the SSE hub (see sse.h).
 *
 * 1. Streams live in a list under the hub mutex; the hub thread takes a
 *    snapshot of the work to do, writes without the lock (stream writes
 *    only append to the connection's buffer), then prunes.
 * 2. A stream ends once: client gone (ap_req_client_gone or a failed
 *    write, checked at each wake-up and heartbeat), its task finished, or
 *    the hub stopping; the hub thread alone closes and releases it.
 */
#include "api/sse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"

typedef struct stream {
    struct stream *next;
    ap_req_t *r;
    char tenant[40];
    char *type, *task_id, *agent_id, *group_id;
    int64_t last_seq;
    bool dirty, gone, ended;
} stream_t;

struct ap_sse_hub {
    ap_db_t *db;
    ap_bus_t *bus;
    int heartbeat_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    stream_t *streams;
    bool stop, any_dirty;
    pthread_t th;
};

static void on_bus(void *ud, const char *tenant_id) {
    ap_sse_hub_t *h = ud;
    pthread_mutex_lock(&h->mu);
    for (stream_t *s = h->streams; s; s = s->next)
        if (strcmp(s->tenant, tenant_id) == 0) {
            s->dirty = true;
            h->any_dirty = true;
        }
    if (h->any_dirty) pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static bool terminal_event(const stream_t *s, json_t *ev) {
    if (!s->task_id) return false;
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *tid = json_string_value(json_object_get(ev, "task_id"));
    const char *st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
    return type && tid && st && strcmp(type, "task.status") == 0 && strcmp(tid, s->task_id) == 0 &&
           (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
            strcmp(st, "cancelled") == 0);
}

/* Writes the events after s->last_seq.  false when the client is gone. */
static bool feed(ap_sse_hub_t *h, stream_t *s) {
    for (int round = 0; round < 20; round++) {
        ap_arena_t *a = ap_arena_new(16384);
        ap_err_t err = {0};
        ap_tx_t *tx;
        json_t *evs = NULL;
        int64_t last = s->last_seq;
        ap_event_filter_t f = {.type = s->type, .task_id = s->task_id, .agent_id = s->agent_id,
                               .group_id = s->group_id, .after_seq = s->last_seq, .limit = 500};
        ap_rc rc = ap_db_begin(h->db, s->tenant, AP_TX_READ, a, &tx, &err);
        if (!rc) rc = ap_event_list(tx, s->tenant, &f, &evs, &last, &err);
        ap_arena_free(a);
        if (rc) return true; /* try again at the next wake-up */
        ap_buf_t b;
        ap_buf_init(&b, 0);
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev) {
            char *d = json_dumps(ev, JSON_COMPACT);
            ap_buf_printf(&b, "id: %lld\nevent: %s\ndata: %s\n\n",
                          (long long)json_integer_value(json_object_get(ev, "seq")),
                          json_string_value(json_object_get(ev, "type")), d ? d : "{}");
            free(d);
            if (terminal_event(s, ev)) s->ended = true;
        }
        size_t n = json_array_size(evs);
        json_decref(evs);
        s->last_seq = last;
        bool ok = b.len == 0 || ap_req_stream_write(s->r, b.p, b.len);
        ap_buf_free(&b);
        if (!ok) return false;
        if (n < 500 || s->ended) break;
    }
    return true;
}

static void end_stream(stream_t *s) {
    ap_req_stream_close(s->r);
    ap_req_async_release(s->r);
    ap_free(s->type);
    ap_free(s->task_id);
    ap_free(s->agent_id);
    ap_free(s->group_id);
    ap_free(s);
}

static void *hub_main(void *arg) {
    ap_sse_hub_t *h = arg;
    int64_t next_hb = ap_now_ms() + h->heartbeat_ms;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        int64_t now = ap_now_ms();
        bool hb = now >= next_hb;
        if (hb) next_hb = now + h->heartbeat_ms;
        h->any_dirty = false;
        /* snapshot: streams are only removed by this thread */
        for (stream_t *s = h->streams; s; s = s->next) {
            bool dirty = s->dirty;
            s->dirty = false;
            pthread_mutex_unlock(&h->mu);
            /* a client that left is noticed here (or by a failed write), at
             * the latest at the next heartbeat: no callback can race the
             * stream's release */
            bool gone = s->gone || ap_req_client_gone(s->r);
            if (!gone && !s->ended && dirty) gone = !feed(h, s);
            if (!gone && !s->ended && hb) gone = !ap_req_stream_write(s->r, ": keep-alive\n\n", 14);
            if (gone) s->gone = true;
            pthread_mutex_lock(&h->mu);
        }
        stream_t **pp = &h->streams;
        while (*pp) {
            stream_t *s = *pp;
            if (s->gone || s->ended) {
                *pp = s->next;
                end_stream(s);
            } else {
                pp = &s->next;
            }
        }
        if (h->any_dirty || h->stop) continue;
        struct timespec ts = {.tv_sec = next_hb / 1000, .tv_nsec = (next_hb % 1000) * 1000000};
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    while (h->streams) {
        stream_t *s = h->streams;
        h->streams = s->next;
        end_stream(s);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

ap_sse_hub_t *ap_sse_hub_new(ap_db_t *db, ap_bus_t *bus, int heartbeat_ms) {
    ap_sse_hub_t *h = ap_calloc(1, sizeof *h);
    h->db = db;
    h->bus = bus;
    h->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 15000;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (bus) ap_bus_subscribe(bus, on_bus, h);
    pthread_create(&h->th, NULL, hub_main, h);
    return h;
}

void ap_sse_hub_free(ap_sse_hub_t *h) {
    if (!h) return;
    if (h->bus) ap_bus_unsubscribe(h->bus, on_bus, h);
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    ap_free(h);
}

static char *dup_or_null(const char *s) { return s ? ap_strdup(s) : NULL; }

void ap_sse_hub_add(ap_sse_hub_t *h, ap_req_t *r, const char *tenant_id,
                    const ap_event_filter_t *f) {
    stream_t *s = ap_calloc(1, sizeof *s);
    s->r = r;
    snprintf(s->tenant, sizeof s->tenant, "%s", tenant_id);
    s->type = dup_or_null(f->type);
    s->task_id = dup_or_null(f->task_id);
    s->agent_id = dup_or_null(f->agent_id);
    s->group_id = dup_or_null(f->group_id);
    s->last_seq = f->after_seq;
    s->dirty = true;
    ap_resp_header(r, "cache-control", "no-cache");
    ap_resp_header(r, "x-accel-buffering", "no");
    ap_req_async_begin(r, NULL, NULL);
    ap_req_stream_open(r, 200, "text/event-stream");
    ap_req_stream_write(r, ": stream open\n\n", 15);
    pthread_mutex_lock(&h->mu);
    s->next = h->streams;
    h->streams = s;
    h->any_dirty = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}
