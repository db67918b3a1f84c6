/*
 * fake_upstream.c - a fake LLM upstream speaking the OpenAI, Anthropic and
 * Gemini wire formats, for end-to-end tests and gateway benchmarks.
 * Usage and the x-fake-* request headers: tests/fake/README.md.
 *
 * 1. libmicrohttpd with one epoll thread per CPU.  Nothing in a request
 *    path blocks or sleeps: every wait (latency, the gap between stream
 *    chunks, a stall) is a suspended connection plus an entry in one timer
 *    heap, and a scheduler thread resumes the connection when its time
 *    comes.  A waiting stream costs a heap slot and its MHD connection
 *    memory, never a thread, so thousands of slow streams are cheap.
 * 2. MHD cannot see a client hang up on a suspended connection, so no
 *    suspension lasts longer than PROBE_NS: a connection woken early peeks
 *    at its socket and closes if the client has gone (stalls rely on this).
 * 3. The wire formats live in fake_wire.c; this file is the HTTP side:
 *    routing, x-fake-* scripting, timing, recording, control endpoints.
 *    jansson parses request bodies and builds the /_fake answers only.
 * 4. Each request is steered by its own x-fake-* headers, so concurrent
 *    tests share nothing; the only shared state is the per-path statistics
 *    and last-request table, and the fail-first counters, each behind one
 *    mutex.  Everything lives in one fake_t handed to MHD as closure.
 * 5. Secrets are never stored: the values of authorization, x-api-key,
 *    x-goog-api-key, api-key and the ?key= parameter are replaced by their
 *    SHA-256 hex in the recorded request.
 * 6. SIGTERM/SIGINT: stop accepting, resume every suspended connection (it
 *    then closes), wait until none is left suspended (MHD forbids stopping
 *    with suspended connections), stop the daemon, exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "fake_wire.h"

#define MAX_BODY     (16u << 20)   /* request bodies; more is 413 */
#define PROBE_NS     1000000000ull /* longest suspension between peer checks */
#define SLACK_NS     1000000ull    /* timers this close together fire together */
#define MAX_PATHS    1024          /* distinct paths with stats and a last request */
#define MAX_KEYS     4096          /* distinct x-fake-key values remembered */
#define MAX_DELAY_MS (24L * 3600 * 1000)

/* ---------------------------------------------------------------- types */

typedef enum {
    K_NOT_FOUND,
    K_BAD_METHOD,
    K_CHAT,
    K_EMBED,           /* OpenAI /v1/embeddings */
    K_GEM_EMBED,       /* Gemini :embedContent */
    K_GEM_EMBED_BATCH, /* Gemini :batchEmbedContents */
    K_MODELS,
    K_FAKE_LAST,
    K_FAKE_STATS,
    K_FAKE_RESET,
} kind_t;

typedef struct {
    kind_t kind;
    fake_proto_t proto;
    bool stream;     /* Gemini: from the path; others: from the body later */
    bool sse;        /* Gemini streamGenerateContent?alt=sse */
    char model[256]; /* Gemini: from the path */
} route_t;

/* What the x-fake-* headers asked for.  String pointers point into MHD's
 * connection memory and live as long as the request. */
typedef struct {
    const char *reply, *tool_call, *error_code, *error_message, *retry_after;
    const char *key, *models;
    long latency_ms, chunk_delay_ms, chunks, status, cut_after, fail_first, dims;
    bool stall, malformed, anthropic;
    const char *bad; /* name of the first header with an unusable value */
} script_t;

typedef struct {
    uint64_t due;
    struct MHD_Connection *conn;
} tmr_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tmr_t *heap;
    size_t n, cap;
    bool stop; /* under mu: no more suspensions; drain and exit */
    pthread_t th;
} sched_t;

/* A recorded request: kv holds method\0path\0, then nh header pairs and nq
 * query pairs as name\0value\0. */
typedef struct {
    unsigned long long seq;
    char *kv;
    size_t nh, nq;
    char *body;
    size_t body_len;
} record_t;

typedef struct {
    char *path;
    unsigned long long count;
    record_t *last;
} pslot_t;

typedef struct {
    char *key;
    unsigned long long count;
} kslot_t;

typedef struct {
    struct MHD_Daemon *d;
    sched_t sched;
    atomic_bool stopping;
    atomic_long suspended, streams;
    atomic_ullong seq;

    pthread_mutex_t stats_mu;
    pslot_t paths[MAX_PATHS];
    size_t npaths;
    unsigned long long total, other;

    pthread_mutex_t keys_mu;
    kslot_t keys[MAX_KEYS];
    size_t nkeys;
} fake_t;

/* Per-request state (MHD's con_cls), freed when MHD completes the request. */
typedef struct {
    fake_t *f;
    struct MHD_Connection *conn;
    ap_buf_t body;
    bool too_large;
    bool waiting;   /* suspended in the access handler (latency) */
    bool suspended; /* counted in f->suspended */
    bool probing;   /* the current suspension ends before its due time */
    struct MHD_Response *pending;
    unsigned pending_status;
    uint64_t due;

    /* streaming (and stalls) */
    bool is_stream, stall, done, cut;
    long cut_after;
    uint64_t delay_ns;
    fake_stream_t st;
    size_t step;
    ap_buf_t out;
    size_t out_off;
} req_t;

/* -------------------------------------------------------------- helpers */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool parse_long(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

static bool parse_bool(const char *v, bool *out) {
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) *out = true;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) *out = false;
    else return false;
    return true;
}

static bool is_secret_header(const char *name) {
    return !strcasecmp(name, "authorization") || !strcasecmp(name, "proxy-authorization") ||
           !strcasecmp(name, "x-api-key") || !strcasecmp(name, "x-goog-api-key") ||
           !strcasecmp(name, "api-key");
}

/* ------------------------------------------------------------ scheduler */

static void heap_push(sched_t *s, tmr_t t) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->heap = ap_realloc(s->heap, s->cap * sizeof *s->heap);
    }
    size_t i = s->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].due <= t.due) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = t;
}

static tmr_t heap_pop(sched_t *s) {
    tmr_t top = s->heap[0], last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n) break;
        if (c + 1 < s->n && s->heap[c + 1].due < s->heap[c].due) c++;
        if (last.due <= s->heap[c].due) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n) s->heap[i] = last;
    return top;
}

/* Resumes connections whose time has come.  Connections are resumed outside
 * the lock; a connection is always suspended before its timer is pushed
 * (both under the lock), so a resume never overtakes its suspend. */
static void *sched_main(void *arg) {
    fake_t *f = arg;
    sched_t *s = &f->sched;
    struct MHD_Connection *batch[512];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        size_t nb = 0;
        uint64_t now = mono_ns();
        while (s->n && nb < sizeof batch / sizeof *batch && (s->stop || s->heap[0].due <= now + SLACK_NS))
            batch[nb++] = heap_pop(s).conn;
        if (nb) {
            pthread_mutex_unlock(&s->mu);
            for (size_t i = 0; i < nb; i++) MHD_resume_connection(batch[i]);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->stop) break;
        if (!s->n) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            uint64_t due = s->heap[0].due;
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull),
                                  .tv_nsec = (long)(due % 1000000000ull)};
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Suspends r's connection until `due` (at most PROBE_NS from now).  Only
 * from an MHD callback of r.  False when shutting down: the caller closes. */
static bool suspend_until(req_t *r, uint64_t due) {
    sched_t *s = &r->f->sched;
    uint64_t now = mono_ns();
    r->probing = due > now + PROBE_NS;
    if (r->probing) due = now + PROBE_NS;
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    MHD_suspend_connection(r->conn);
    heap_push(s, (tmr_t){due, r->conn});
    bool first = s->heap[0].conn == r->conn;
    r->suspended = true;
    atomic_fetch_add(&r->f->suspended, 1);
    pthread_mutex_unlock(&s->mu);
    if (first) pthread_cond_signal(&s->cv);
    return true;
}

/* Called first thing in every MHD callback of r. */
static void resumed(req_t *r) {
    if (!r->suspended) return;
    r->suspended = false;
    atomic_fetch_sub(&r->f->suspended, 1);
}

static bool peer_gone(req_t *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return true;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---------------------------------------------- stats and last request */

static void record_free(record_t *rec) {
    if (!rec) return;
    ap_free(rec->kv);
    ap_free(rec->body);
    ap_free(rec);
}

/* Counts the request and keeps rec as the last one for its path (takes
 * ownership of rec).  Thread-safe. */
static void stats_add(fake_t *f, const char *path, record_t *rec) {
    size_t plen = strlen(path);
    size_t i = (size_t)(fake_hash(path, plen) % MAX_PATHS);
    record_t *old = NULL;
    pthread_mutex_lock(&f->stats_mu);
    rec->seq = ++f->total;
    while (f->paths[i].path && strcmp(f->paths[i].path, path)) i = (i + 1) % MAX_PATHS;
    if (!f->paths[i].path) {
        if (f->npaths >= MAX_PATHS * 3 / 4) {
            f->other++;
            pthread_mutex_unlock(&f->stats_mu);
            record_free(rec);
            return;
        }
        f->paths[i].path = ap_strndup(path, plen);
        f->npaths++;
    }
    f->paths[i].count++;
    old = f->paths[i].last;
    f->paths[i].last = rec;
    pthread_mutex_unlock(&f->stats_mu);
    record_free(old);
}

static void stats_reset(fake_t *f) {
    pthread_mutex_lock(&f->stats_mu);
    for (size_t i = 0; i < MAX_PATHS; i++) {
        ap_free(f->paths[i].path);
        record_free(f->paths[i].last);
        f->paths[i] = (pslot_t){0};
    }
    f->npaths = 0;
    f->total = f->other = 0;
    pthread_mutex_unlock(&f->stats_mu);
    pthread_mutex_lock(&f->keys_mu);
    for (size_t i = 0; i < MAX_KEYS; i++) {
        ap_free(f->keys[i].key);
        f->keys[i] = (kslot_t){0};
    }
    f->nkeys = 0;
    pthread_mutex_unlock(&f->keys_mu);
}

/* Counts one more request carrying `key`; true while it is among the first
 * n.  When the table fills up it is forgotten (tests use few keys).
 * Thread-safe. */
static bool fail_first_hit(fake_t *f, const char *key, long n) {
    size_t klen = strlen(key);
    size_t i = (size_t)(fake_hash(key, klen) % MAX_KEYS);
    pthread_mutex_lock(&f->keys_mu);
    while (f->keys[i].key && strcmp(f->keys[i].key, key)) i = (i + 1) % MAX_KEYS;
    if (!f->keys[i].key) {
        if (f->nkeys >= MAX_KEYS * 3 / 4) {
            for (size_t j = 0; j < MAX_KEYS; j++) {
                ap_free(f->keys[j].key);
                f->keys[j] = (kslot_t){0};
            }
            f->nkeys = 0;
            i = (size_t)(fake_hash(key, klen) % MAX_KEYS);
        }
        f->keys[i].key = ap_strndup(key, klen);
        f->nkeys++;
    }
    bool hit = ++f->keys[i].count <= (unsigned long long)n;
    pthread_mutex_unlock(&f->keys_mu);
    return hit;
}

/* ------------------------------------------------ request headers, body */

typedef struct {
    script_t *s;
    ap_buf_t *kv;
    size_t n;
} hdr_ctx_t;

static void script_set(script_t *s, const char *name, const char *full, const char *v) {
    bool ok = true;
    if (!strcasecmp(name, "reply")) s->reply = v;
    else if (!strcasecmp(name, "tool-call")) s->tool_call = v;
    else if (!strcasecmp(name, "latency-ms")) ok = parse_long(v, 0, MAX_DELAY_MS, &s->latency_ms);
    else if (!strcasecmp(name, "chunk-delay-ms")) ok = parse_long(v, 0, MAX_DELAY_MS, &s->chunk_delay_ms);
    else if (!strcasecmp(name, "chunks")) ok = parse_long(v, 1, FAKE_MAX_CHUNKS, &s->chunks);
    else if (!strcasecmp(name, "status")) ok = parse_long(v, 100, 599, &s->status);
    else if (!strcasecmp(name, "retry-after")) ok = *(s->retry_after = v) != '\0';
    else if (!strcasecmp(name, "error-code")) ok = *(s->error_code = v) != '\0';
    else if (!strcasecmp(name, "error-message")) s->error_message = v;
    else if (!strcasecmp(name, "stall")) ok = parse_bool(v, &s->stall);
    else if (!strcasecmp(name, "malformed")) ok = parse_bool(v, &s->malformed);
    else if (!strcasecmp(name, "cut-after")) ok = parse_long(v, 0, FAKE_MAX_CHUNKS, &s->cut_after);
    else if (!strcasecmp(name, "fail-first")) ok = parse_long(v, 0, 1000000000L, &s->fail_first);
    else if (!strcasecmp(name, "key")) s->key = v;
    else if (!strcasecmp(name, "embedding-dims")) ok = parse_long(v, 1, FAKE_MAX_DIMS, &s->dims);
    else if (!strcasecmp(name, "models")) s->models = v;
    if (!ok && !s->bad) s->bad = full;
}

/* Appends name\0value\0 with the name lowercased and secrets hashed. */
static void kv_add(ap_buf_t *kv, const char *name, const char *value, bool secret) {
    size_t at = kv->len;
    fake_put(kv, name, strlen(name) + 1);
    for (char *p = kv->p + at; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    if (secret) {
        char hex[AP_SHA256_HEX];
        ap_sha256_hex(value, strlen(value), hex);
        fake_put(kv, hex, AP_SHA256_HEX);
    } else {
        fake_put(kv, value, strlen(value) + 1);
    }
}

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    hdr_ctx_t *h = cls;
    if (!value) value = "";
    kv_add(h->kv, key, value, is_secret_header(key));
    h->n++;
    if (!strncasecmp(key, "x-fake-", 7)) script_set(h->s, key + 7, key, value);
    else if (!strcasecmp(key, "anthropic-version")) h->s->anthropic = true;
    return MHD_YES;
}

static enum MHD_Result on_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    hdr_ctx_t *h = cls;
    kv_add(h->kv, key, value ? value : "", !strcmp(key, "key"));
    h->n++;
    return MHD_YES;
}

static void route(struct MHD_Connection *c, const char *url, const char *method, route_t *rt) {
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    memset(rt, 0, sizeof *rt);
    rt->kind = K_NOT_FOUND;
    rt->proto = FAKE_OPENAI;
    if (!strncmp(url, "/_fake/", 7)) {
        const char *n = url + 7;
        if (!strcmp(n, "last")) rt->kind = get ? K_FAKE_LAST : K_BAD_METHOD;
        else if (!strcmp(n, "stats")) rt->kind = get ? K_FAKE_STATS : K_BAD_METHOD;
        else if (!strcmp(n, "reset")) rt->kind = post ? K_FAKE_RESET : K_BAD_METHOD;
        return;
    }
    if (!strcmp(url, "/v1/chat/completions")) {
        rt->kind = post ? K_CHAT : K_BAD_METHOD;
        return;
    }
    if (!strcmp(url, "/v1/embeddings")) {
        rt->kind = post ? K_EMBED : K_BAD_METHOD;
        return;
    }
    if (!strcmp(url, "/v1/models")) {
        rt->kind = get ? K_MODELS : K_BAD_METHOD;
        return; /* Anthropic or OpenAI: decided by the anthropic-version header */
    }
    if (!strcmp(url, "/v1/messages")) {
        rt->proto = FAKE_ANTHROPIC;
        rt->kind = post ? K_CHAT : K_BAD_METHOD;
        return;
    }
    const char *m = NULL;
    if (!strncmp(url, "/v1beta/models", 14)) m = url + 14;
    else if (!strncmp(url, "/v1/models/", 11)) m = url + 10;
    if (!m) return;
    rt->proto = FAKE_GEMINI;
    if (!*m || !strcmp(m, "/")) {
        rt->kind = get ? K_MODELS : K_BAD_METHOD;
        return;
    }
    if (*m++ != '/') return;
    const char *colon = strrchr(m, ':');
    if (!colon) return;
    size_t ml = (size_t)(colon - m);
    if (ml >= sizeof rt->model) ml = sizeof rt->model - 1;
    memcpy(rt->model, m, ml);
    const char *act = colon + 1;
    if (!strcmp(act, "generateContent")) {
        rt->kind = K_CHAT;
    } else if (!strcmp(act, "streamGenerateContent")) {
        rt->kind = K_CHAT;
        rt->stream = true;
        const char *alt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alt");
        rt->sse = alt && !strcmp(alt, "sse");
    } else if (!strcmp(act, "embedContent")) {
        rt->kind = K_GEM_EMBED;
    } else if (!strcmp(act, "batchEmbedContents")) {
        rt->kind = K_GEM_EMBED_BATCH;
    } else {
        return;
    }
    if (!post) rt->kind = K_BAD_METHOD;
}

/* ------------------------------------------------------------ responses */

static void add_common_headers(struct MHD_Response *resp, fake_proto_t p, const char *ctype,
                               unsigned long long n) {
    char id[40];
    snprintf(id, sizeof id, "req_fake%llu", n);
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (p == FAKE_OPENAI) MHD_add_response_header(resp, "x-request-id", id);
    else if (p == FAKE_ANTHROPIC) MHD_add_response_header(resp, "request-id", id);
}

/* Queues body (stealing it) now, or after x-fake-latency-ms. */
static enum MHD_Result send_buffer(req_t *r, const script_t *s, fake_proto_t p, unsigned status,
                                   ap_buf_t *body, const char *ctype) {
    unsigned long long n = atomic_fetch_add(&r->f->seq, 1) + 1;
    if (s && s->malformed && body->len > 1) {
        body->len /= 2;
        body->p[body->len] = '\0';
    }
    size_t len = body->len;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, ap_buf_steal(body), MHD_RESPMEM_MUST_FREE);
    add_common_headers(resp, p, ctype, n);
    if (s && s->retry_after && status >= 400) MHD_add_response_header(resp, "Retry-After", s->retry_after);
    if (s && s->latency_ms > 0) {
        r->pending = resp;
        r->pending_status = status;
        r->due = mono_ns() + (uint64_t)s->latency_ms * 1000000ull;
        if (!suspend_until(r, r->due)) return MHD_NO;
        r->waiting = true;
        return MHD_YES;
    }
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(req_t *r, const script_t *s, fake_proto_t p, int status, const char *code,
                                  const char *msg) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    fake_render_error(&b, p, status, code, msg, atomic_load(&r->f->seq) + 1);
    return send_buffer(r, s, p, (unsigned)status, &b, "application/json");
}

static enum MHD_Result send_json(req_t *r, unsigned status, json_t *v) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    fake_put_str(&b, s);
    free(s);
    return send_buffer(r, NULL, FAKE_OPENAI, status, &b, "application/json");
}

/* Writes the next step of the stream into r->out: step 0 carries the
 * preamble, every step one content piece, the last one the terminator;
 * x-fake-cut-after N ends after N pieces with no terminator. */
static void produce(req_t *r, uint64_t now) {
    ap_buf_reset(&r->out);
    r->out_off = 0;
    size_t i = r->step;
    if (i == 0) fake_stream_preamble(&r->st, &r->out);
    if (r->cut_after >= 0 && i >= (size_t)r->cut_after) {
        r->done = r->cut = true;
        return;
    }
    fake_stream_piece(&r->st, i, &r->out);
    r->step++;
    if (r->step == r->st.npieces) {
        r->done = true;
        if (r->cut_after >= 0) r->cut = true;
        else fake_stream_end(&r->st, &r->out);
        return;
    }
    r->due = now + r->delay_ns;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    req_t *r = cls;
    resumed(r);
    if (atomic_load(&r->f->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
    while (r->out_off >= r->out.len) {
        if (r->done) return r->cut ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t now = mono_ns();
        if (r->stall || now < r->due) {
            if (r->probing && peer_gone(r)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (!suspend_until(r, r->stall ? UINT64_MAX : r->due)) return MHD_CONTENT_READER_END_WITH_ERROR;
            return 0;
        }
        produce(r, now);
    }
    size_t n = r->out.len - r->out_off;
    if (n > max) n = max;
    memcpy(buf, r->out.p + r->out_off, n);
    r->out_off += n;
    return (ssize_t)n;
}

/* Headers now; the body from stream_read as its steps fall due. */
static enum MHD_Result start_stream(req_t *r, fake_proto_t p, const char *ctype) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, r, NULL);
    add_common_headers(resp, p, ctype, atomic_fetch_add(&r->f->seq, 1) + 1);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    r->is_stream = true;
    atomic_fetch_add(&r->f->streams, 1);
    ap_buf_init(&r->out, 0);
    enum MHD_Result ok = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* ------------------------------------------------------ /_fake control */

static json_t *kv_object(const char **p, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *k = *p;
        *p += strlen(k) + 1;
        const char *v = *p;
        *p += strlen(v) + 1;
        json_t *old = json_object_get(o, k);
        json_t *val;
        if (json_is_string(old)) {
            ap_buf_t j;
            ap_buf_init(&j, 0);
            fake_put_str(&j, json_string_value(old));
            FAKE_PUTS(&j, ", ");
            fake_put_str(&j, v);
            val = json_string(j.p);
            ap_buf_free(&j);
        } else {
            val = json_string(v);
        }
        json_object_set_new(o, k, val ? val : json_null()); /* NULL: not UTF-8 */
    }
    return o;
}

static json_t *record_json(const record_t *rec) {
    const char *p = rec->kv;
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)rec->seq));
    json_object_set_new(o, "method", json_string(p));
    p += strlen(p) + 1;
    json_t *path = json_string(p);
    json_object_set_new(o, "path", path ? path : json_null());
    p += strlen(p) + 1;
    json_object_set_new(o, "headers", kv_object(&p, rec->nh));
    json_object_set_new(o, "query", kv_object(&p, rec->nq));
    json_t *body = NULL;
    if (rec->body_len) {
        body = json_loadb(rec->body, rec->body_len, JSON_DECODE_ANY, NULL);
        if (!body) body = json_stringn(rec->body, rec->body_len);
    }
    json_object_set_new(o, "body", body ? body : json_null());
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)rec->body_len));
    return o;
}

/* The /_fake/ control paths: not counted, not recorded, not scriptable. */
static enum MHD_Result fake_control(req_t *r, kind_t k) {
    fake_t *f = r->f;
    if (k == K_NOT_FOUND) return send_json(r, 404, json_pack("{s:s}", "error", "unknown control path"));
    if (k == K_BAD_METHOD) return send_json(r, 405, json_pack("{s:s}", "error", "method not allowed"));
    if (k == K_FAKE_RESET) {
        stats_reset(f);
        return send_json(r, 200, json_pack("{s:b}", "ok", 1));
    }
    if (k == K_FAKE_STATS) {
        json_t *paths = json_object();
        pthread_mutex_lock(&f->stats_mu);
        for (size_t i = 0; i < MAX_PATHS; i++)
            if (f->paths[i].path)
                json_object_set_new(paths, f->paths[i].path, json_integer((json_int_t)f->paths[i].count));
        json_t *o = json_pack("{s:I,s:I,s:o}", "total", (json_int_t)f->total, "other", (json_int_t)f->other,
                              "paths", paths);
        pthread_mutex_unlock(&f->stats_mu);
        json_object_set_new(o, "active_streams", json_integer(atomic_load(&f->streams)));
        json_object_set_new(o, "suspended", json_integer(atomic_load(&f->suspended)));
        return send_json(r, 200, o);
    }
    const char *path = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "path");
    if (!path) return send_json(r, 400, json_pack("{s:s}", "error", "missing ?path="));
    json_t *o = NULL;
    size_t i = (size_t)(fake_hash(path, strlen(path)) % MAX_PATHS);
    pthread_mutex_lock(&f->stats_mu);
    while (f->paths[i].path && strcmp(f->paths[i].path, path)) i = (i + 1) % MAX_PATHS;
    if (f->paths[i].path && f->paths[i].last) o = record_json(f->paths[i].last);
    pthread_mutex_unlock(&f->stats_mu);
    if (!o) return send_json(r, 404, json_pack("{s:s,s:s}", "error", "no request recorded", "path", path));
    return send_json(r, 200, o);
}

/* -------------------------------------------------------- MHD callbacks */

static enum MHD_Result chat(req_t *r, const route_t *rt, const script_t *s, json_t *body) {
    const char *why = NULL;
    fake_chat_t c;
    unsigned long long n = atomic_fetch_add(&r->f->seq, 1) + 1;
    if (!fake_chat_init(&c, rt->proto, rt->proto == FAKE_GEMINI ? rt->model : NULL, body, s->reply,
                        s->tool_call, n, &why))
        return send_error(r, s, rt->proto, 400, NULL, why);
    bool stream = rt->stream || (rt->proto != FAKE_GEMINI && json_is_true(json_object_get(body, "stream")));
    if (!stream) {
        ap_buf_t b;
        ap_buf_init(&b, 0);
        fake_render_chat(&b, &c);
        fake_chat_free(&c);
        return send_buffer(r, s, rt->proto, 200, &b, "application/json");
    }
    fake_stream_init(&r->st, &c, s->chunks);
    r->st.malformed = s->malformed;
    r->st.gemini_sse = rt->sse;
    r->cut_after = s->cut_after;
    r->delay_ns = (uint64_t)s->chunk_delay_ms * 1000000ull;
    r->due = mono_ns() + (uint64_t)s->latency_ms * 1000000ull;
    return start_stream(r, rt->proto, fake_stream_ctype(rt->proto, rt->sse));
}

static enum MHD_Result handle(req_t *r, const char *url, const char *method) {
    fake_t *f = r->f;
    route_t rt;
    route(r->conn, url, method, &rt);
    if (!strncmp(url, "/_fake/", 7)) return fake_control(r, rt.kind);

    script_t s = {.cut_after = -1, .fail_first = -1};
    record_t *rec = ap_calloc(1, sizeof *rec);
    ap_buf_t kv;
    ap_buf_init(&kv, 0);
    fake_put(&kv, method, strlen(method) + 1);
    fake_put(&kv, url, strlen(url) + 1);
    hdr_ctx_t h = {&s, &kv, 0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, on_header, &h);
    rec->nh = h.n;
    h.n = 0;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, on_query, &h);
    rec->nq = h.n;
    rec->kv = ap_buf_steal(&kv);
    if (rt.kind == K_MODELS && rt.proto == FAKE_OPENAI && s.anthropic) rt.proto = FAKE_ANTHROPIC;

    json_t *body = NULL;
    json_error_t jerr;
    bool needs_body =
        rt.kind == K_CHAT || rt.kind == K_EMBED || rt.kind == K_GEM_EMBED || rt.kind == K_GEM_EMBED_BATCH;
    if (needs_body && !r->too_large) body = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &jerr);
    rec->body_len = r->body.len;
    rec->body = ap_buf_steal(&r->body);
    stats_add(f, url, rec);

    enum MHD_Result ok;
    if (s.bad) {
        char msg[160];
        snprintf(msg, sizeof msg, "fake-upstream: bad value in header %s (see tests/fake/README.md)", s.bad);
        ok = send_error(r, &s, rt.proto, 400, NULL, msg);
    } else if (rt.kind == K_NOT_FOUND) {
        ok = send_error(r, &s, rt.proto, 404, NULL, "fake-upstream: unknown path");
    } else if (rt.kind == K_BAD_METHOD) {
        ok = send_error(r, &s, rt.proto, 405, NULL, "fake-upstream: method not allowed");
    } else if (s.stall) {
        bool sse = rt.sse || (rt.proto != FAKE_GEMINI && json_is_true(json_object_get(body, "stream")));
        r->stall = true;
        ok = start_stream(r, rt.proto, sse ? fake_stream_ctype(rt.proto, true) : "application/json");
    } else if ((s.fail_first >= 0 && fail_first_hit(f, s.key ? s.key : "", s.fail_first)) ||
               (s.fail_first < 0 && (s.status >= 400 || s.error_code))) {
        ok = send_error(r, &s, rt.proto, fake_error_status(s.status, s.error_code), s.error_code,
                        s.error_message);
    } else if (r->too_large) {
        ok = send_error(r, &s, rt.proto, 413, NULL, "fake-upstream: request body too large");
    } else if (needs_body && !json_is_object(body)) {
        char msg[300];
        snprintf(msg, sizeof msg, "fake-upstream: request body is not a JSON object: %s",
                 body ? "" : jerr.text);
        ok = send_error(r, &s, rt.proto, 400, NULL, msg);
    } else if (rt.kind == K_CHAT) {
        ok = chat(r, &rt, &s, body);
    } else {
        const char *why = NULL;
        ap_buf_t b;
        ap_buf_init(&b, 0);
        bool good = true;
        if (rt.kind == K_MODELS) fake_render_models(&b, rt.proto, s.models);
        else if (rt.kind == K_EMBED) good = fake_openai_embeddings(&b, body, s.dims, &why);
        else good = fake_gemini_embeddings(&b, body, rt.kind == K_GEM_EMBED_BATCH, s.dims, &why);
        if (good) {
            ok = send_buffer(r, &s, rt.proto, 200, &b, "application/json");
        } else {
            ap_buf_free(&b);
            ok = send_error(r, &s, rt.proto, 400, NULL, why);
        }
    }
    json_decref(body);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)version;
    req_t *r = *con_cls;
    if (!r) {
        r = ap_calloc(1, sizeof *r);
        r->f = cls;
        r->conn = conn;
        r->cut_after = -1;
        ap_buf_init(&r->body, MAX_BODY);
        *con_cls = r;
        return MHD_YES;
    }
    resumed(r);
    if (*upload_size) {
        if (!r->too_large && ap_buf_append(&r->body, upload, *upload_size)) {
            r->too_large = true;
            ap_buf_free(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->waiting) return handle(r, url, method);
    /* Resumed while waiting out x-fake-latency-ms. */
    r->waiting = false;
    if (atomic_load(&r->f->stopping)) return MHD_NO;
    if (mono_ns() < r->due) {
        if ((r->probing && peer_gone(r)) || !suspend_until(r, r->due)) return MHD_NO;
        r->waiting = true;
        return MHD_YES;
    }
    enum MHD_Result ok = MHD_queue_response(conn, r->pending_status, r->pending);
    MHD_destroy_response(r->pending);
    r->pending = NULL;
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)conn;
    (void)why;
    fake_t *f = cls;
    req_t *r = *con_cls;
    if (!r) return;
    resumed(r);
    if (r->pending) MHD_destroy_response(r->pending);
    if (r->is_stream) atomic_fetch_sub(&f->streams, 1);
    ap_buf_free(&r->body);
    ap_buf_free(&r->out);
    fake_stream_free(&r->st);
    ap_free(r);
    *con_cls = NULL;
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *to) {
    fputs("usage: fake-upstream [--listen HOST:PORT] [--threads N] [--exit-with-parent]\n"
          "  A fake OpenAI / Anthropic / Gemini upstream for tests and benchmarks.\n"
          "  --listen   address to bind (default 127.0.0.1:0; port 0 picks a free one)\n"
          "  --threads  MHD worker threads (default: number of CPUs)\n"
          "  --exit-with-parent  stop (as on SIGTERM) when the parent process dies\n"
          "  Prints {\"msg\":\"ready\",\"port\":N} on stderr when listening.  See tests/fake/README.md.\n",
          to);
}

/* HOST:PORT or [V6]:PORT into *ss. */
static bool parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6) {
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon) return false;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    long port;
    if (!parse_long(colon + 1, 0, 65535, &port)) return false;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *v6 = false;
    if (!strcmp(host, "localhost")) return inet_pton(AF_INET, "127.0.0.1", &a->sin_addr) == 1;
    return inet_pton(AF_INET, host, &a->sin_addr) == 1;
}

int main(int argc, char **argv) {
    const char *listen_at = "127.0.0.1:0";
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    bool with_parent = false;
    pid_t parent = getppid();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen_at = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (!parse_long(argv[++i], 1, 1024, &threads)) {
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(argv[i], "--exit-with-parent")) {
            with_parent = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    struct sockaddr_storage ss;
    bool v6;
    if (!parse_listen(listen_at, &ss, &v6)) {
        fprintf(stderr, "{\"msg\":\"bad --listen address\",\"value\":\"%s\"}\n", listen_at);
        return 2;
    }
    if (ap_crypto_init()) {
        fputs("{\"msg\":\"libsodium init failed\"}\n", stderr);
        return 1;
    }

    /* Thousands of streams need thousands of descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned conn_limit = rl.rlim_cur > 200000 ? 200000u
                          : rl.rlim_cur > 64   ? (unsigned)rl.rlim_cur - 32
                                               : 32u;

    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A test runner that is killed cannot stop us: let the kernel do it. */
    if (with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)) {
        fputs("{\"msg\":\"parent already gone\"}\n", stderr);
        return 1;
    }

    fake_t *f = ap_calloc(1, sizeof *f);
    pthread_mutex_init(&f->stats_mu, NULL);
    pthread_mutex_init(&f->keys_mu, NULL);
    pthread_mutex_init(&f->sched.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->sched.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&f->sched.th, NULL, sched_main, f)) {
        fputs("{\"msg\":\"cannot start the scheduler thread\"}\n", stderr);
        return 1;
    }

    /* Not MHD_USE_TURBO: it skips shutdown() on close, and a connection
     * closed from a content reader (x-fake-cut-after) then stayed open until
     * its worker thread happened to wake up again. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6) flags |= MHD_USE_IPv6;
    f->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                            MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                            4096u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, f, MHD_OPTION_END);
    if (!f->d) {
        fprintf(stderr, "{\"msg\":\"cannot listen\",\"listen\":\"%s\",\"error\":\"%s\"}\n", listen_at,
                strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "{\"msg\":\"ready\",\"port\":%u}\n", di ? (unsigned)di->port : 0u);
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);

    /* Shut down: refuse new connections, wake and close every waiting one. */
    atomic_store(&f->stopping, true);
    MHD_socket lfd = MHD_quiesce_daemon(f->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    pthread_mutex_lock(&f->sched.mu);
    f->sched.stop = true;
    pthread_cond_signal(&f->sched.cv);
    pthread_mutex_unlock(&f->sched.mu);
    pthread_join(f->sched.th, NULL);
    for (int i = 0; i < 500 && atomic_load(&f->suspended) > 0; i++) usleep(10000);
    long left = atomic_load(&f->suspended);
    if (left == 0) MHD_stop_daemon(f->d);
    fprintf(stderr, "{\"msg\":\"stopped\",\"signal\":%d,\"suspended_left\":%ld}\n", sig, left);

    stats_reset(f);
    ap_free(f->sched.heap);
    pthread_mutex_destroy(&f->stats_mu);
    pthread_mutex_destroy(&f->keys_mu);
    pthread_mutex_destroy(&f->sched.mu);
    pthread_cond_destroy(&f->sched.cv);
    int rc = left == 0 ? 0 : 1;
    if (left == 0) ap_free(f);
    return rc;
}
