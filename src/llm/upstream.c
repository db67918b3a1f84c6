/*
 * upstream.c - libcurl multi handles driven by event loops (upstream.h).
 *
 * 1. curl runs in its event-driven mode: CURLMOPT_SOCKETFUNCTION puts its
 *    sockets into the loop's epoll set, CURLMOPT_TIMERFUNCTION keeps its
 *    one deadline, and curl_multi_socket_action is called when a socket
 *    is ready or the deadline passed.  Everything curl does happens on
 *    the loop's thread; no curl call is ever made on another.
 * 2. Where a job waits before it runs: `queue` (submitted from another
 *    thread, under mu), `pending` (submitted on the loop's thread while
 *    it could not start at once), `delayed` (retry backoff), then
 *    `running` (added to curl).  The loop's check starts what is due and
 *    ends what was cancelled, and is the only place jobs finish: on_done
 *    never runs inside ap_upstream_submit or inside a curl call.
 * 3. Cancellation is a flag on the job plus a note to the loop, which
 *    removes the transfer at its next check (the write and progress
 *    callbacks also refuse to go on).  A job is freed by the loop right
 *    after its on_done returns.
 * 4. A socket's watcher is not freed when curl drops the socket, but at
 *    the end of the iteration: epoll may still hold an event for it in
 *    the batch being dispatched.
 */
#include "llm/upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"

/* Finished easy handles kept for the next transfers: reusing one skips
 * curl_easy_init/cleanup and the options that never change. */
#define UPSTREAM_IDLE_MAX 64

struct ap_upstream_job {
    struct ap_upstream_job *next; /* the list it waits in */
    struct ap_upstream_job *prev; /* running list only */
    CURL *easy;
    struct curl_slist *headers;
    char *url, *body;
    size_t body_len;
    ap_upstream_cb_t cb;
    ap_upstream_limits_t lim;
    ap_buf_t reply;
    long status;
    char retry_after[64];
    _Atomic bool cancelled;
    bool too_large;
    bool got_byte;
    int64_t start_at; /* monotonic ms; delayed start (retry backoff) */
};

/* A socket curl asked us to watch (decision 4). */
typedef struct sock {
    ap_loop_io_t io;
    struct ap_upstream *u;
    struct sock *next, *prev; /* live list, then the graveyard */
    bool dead;
} sock_t;

struct ap_upstream {
    CURLM *multi;
    ap_loop_t *loop;
    bool own_loop;
    ap_loop_hook_t hook;
    /* from other threads */
    pthread_mutex_t mu;
    ap_upstream_job_t *queue; /* LIFO, under mu */
    _Atomic bool queued;      /* queue may be non-empty */
    _Atomic bool cancels;     /* some job was cancelled: look */
    /* the loop's thread only */
    ap_upstream_job_t *pending, *pending_tail;
    ap_upstream_job_t *delayed;
    ap_upstream_job_t *running;
    sock_t *socks, *graveyard;
    int64_t deadline; /* curl's timer, monotonic ms; -1: none */
    bool in_curl;     /* inside curl_multi_socket_action */
    bool dirty;       /* a transfer finished outside the check: read messages */
    bool stopped;
    int nrunning;     /* handles added to curl */
    CURL *idle[UPSTREAM_IDLE_MAX];
    int nidle;
    _Atomic int active;
};

static void job_free(ap_upstream_job_t *j) {
    curl_slist_free_all(j->headers);
    ap_free(j->url);
    ap_free(j->body);
    ap_buf_free(&j->reply);
    ap_free(j);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    ap_upstream_job_t *j = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        const char *v = buf + 12;
        size_t vl = len - 12;
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        if (vl >= sizeof j->retry_after) vl = sizeof j->retry_after - 1;
        memcpy(j->retry_after, v, vl);
        j->retry_after[vl] = '\0';
    }
    return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud) {
    ap_upstream_job_t *j = ud;
    size_t len = size * n;
    if (j->cancelled) return 0; /* aborts the transfer */
    j->got_byte = true;
    if (!j->status) curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->status);
    /* Streams hand 2xx bytes straight on; error bodies are buffered so the
     * provider's message can be parsed. */
    if (j->cb.on_data && j->status < 300) {
        j->cb.on_data(j->cb.ud, (int)j->status, data, len);
        return len;
    }
    if (ap_buf_append(&j->reply, data, len)) {
        j->too_large = true;
        return 0;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    ap_upstream_job_t *j = ud;
    return j->cancelled ? 1 : 0;
}

/* ---- ending jobs (the loop's check only) ------------------------------ */

/* A job that never reached curl, or one taken out of it: on_done with an
 * upstream error, then the job is gone. */
static void end_job(ap_upstream_job_t *j, const char *why) {
    ap_llm_error_t lerr = {.kind = AP_LLM_UPSTREAM};
    snprintf(lerr.message, sizeof lerr.message, "%s", why);
    j->cb.on_done(j->cb.ud, 0, NULL, "", 0, &lerr);
    job_free(j);
}

static void running_unlink(ap_upstream_t *u, ap_upstream_job_t *j) {
    if (j->prev) j->prev->next = j->next;
    else u->running = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
}

/* A running job is over: why is NULL when curl finished it (cc says how),
 * else the reason it was taken out. */
static void finish(ap_upstream_t *u, ap_upstream_job_t *j, CURLcode cc, const char *why) {
    ap_llm_error_t lerr = {0};
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    if (why) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "%s", why);
    } else if (j->cancelled) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "request cancelled");
    } else if (j->too_large) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "upstream reply larger than %zu bytes",
                 j->reply.max);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        lerr.kind = AP_LLM_TIMEOUT;
        snprintf(lerr.message, sizeof lerr.message, "no answer from the provider in time");
    } else if (cc != CURLE_OK) {
        lerr.kind = AP_LLM_UPSTREAM;
        snprintf(lerr.message, sizeof lerr.message, "cannot reach the provider: %s",
                 curl_easy_strerror(cc));
    }
    curl_multi_remove_handle(u->multi, j->easy);
    u->nrunning--;
    if (u->nidle < UPSTREAM_IDLE_MAX) u->idle[u->nidle++] = j->easy;
    else curl_easy_cleanup(j->easy);
    j->easy = NULL;
    running_unlink(u, j);
    atomic_fetch_sub(&u->active, 1);
    j->cb.on_done(j->cb.ud, (int)status, j->retry_after[0] ? j->retry_after : NULL,
                  j->reply.p ? j->reply.p : "", j->reply.len, &lerr);
    job_free(j);
}

/* ---- driving curl -------------------------------------------------------- */

static void drive(ap_upstream_t *u, curl_socket_t s, int flags) {
    int still = 0;
    u->in_curl = true;
    curl_multi_socket_action(u->multi, s, flags, &still);
    u->in_curl = false;
    if (still < u->nrunning) u->dirty = true; /* a transfer is done: its message waits */
}

static void sock_event(ap_loop_io_t *io, uint32_t events) {
    sock_t *k = (sock_t *)((char *)io - offsetof(sock_t, io));
    if (k->dead) return;
    int flags = (events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    drive(k->u, io->fd, flags);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)e;
    ap_upstream_t *u = userp;
    sock_t *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (!k) return 0;
        ap_loop_del(u->loop, &k->io);
        curl_multi_assign(u->multi, s, NULL);
        if (k->prev) k->prev->next = k->next;
        else u->socks = k->next;
        if (k->next) k->next->prev = k->prev;
        k->dead = true;
        k->prev = NULL;
        k->next = u->graveyard;
        u->graveyard = k;
        return 0;
    }
    uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (k) {
        ap_loop_mod(u->loop, &k->io, ev);
        return 0;
    }
    k = ap_calloc(1, sizeof *k);
    k->u = u;
    k->io.fn = sock_event;
    if (ap_loop_add(u->loop, &k->io, s, ev)) {
        ap_free(k);
        return -1; /* curl fails the transfer */
    }
    k->next = u->socks;
    if (u->socks) u->socks->prev = k;
    u->socks = k;
    curl_multi_assign(u->multi, s, k);
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp) {
    (void)m;
    ap_upstream_t *u = userp;
    u->deadline = timeout_ms < 0 ? -1 : ap_loop_now_ms() + timeout_ms;
    return 0;
}

/* A new handle with the options every transfer shares. */
static CURL *easy_new(void) {
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    return e;
}

/* Adds j to curl; false (with why set) when curl refused it. */
static bool start(ap_upstream_t *u, ap_upstream_job_t *j, char *why, size_t cap) {
    CURL *e = u->nidle ? u->idle[--u->nidle] : easy_new();
    j->easy = e;
    /* every option that differs per job is set on every job, so nothing
     * carries over from the handle's previous transfer */
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(j->lim.timeout_ms ? j->lim.timeout_ms : 600000));
    /* no bytes for first_byte_ms: curl's low-speed check cuts it (0: off) */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, j->lim.first_byte_ms ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     j->lim.first_byte_ms ? (long)((j->lim.first_byte_ms + 999) / 1000) : 0L);
    CURLMcode mc = curl_multi_add_handle(u->multi, e);
    if (mc != CURLM_OK) {
        snprintf(why, cap, "cannot start upstream call: %s", curl_multi_strerror(mc));
        curl_easy_cleanup(e);
        j->easy = NULL;
        return false;
    }
    u->nrunning++;
    atomic_fetch_add(&u->active, 1);
    j->prev = NULL;
    j->next = u->running;
    if (u->running) u->running->prev = j;
    u->running = j;
    return true;
}

/* The loop's check: a job leaves the waiting lists (decision 2). */
static void admit(ap_upstream_t *u, ap_upstream_job_t *j, int64_t now) {
    j->next = NULL;
    if (u->stopped) {
        end_job(j, AP_UPSTREAM_SHUTDOWN);
        return;
    }
    if (atomic_load(&j->cancelled)) {
        end_job(j, "request cancelled");
        return;
    }
    if (j->start_at > now) {
        j->next = u->delayed;
        u->delayed = j;
        return;
    }
    char why[256];
    if (!start(u, j, why, sizeof why)) end_job(j, why);
    else drive(u, CURL_SOCKET_TIMEOUT, 0);
}

static ap_upstream_job_t *take_queue(ap_upstream_t *u) {
    pthread_mutex_lock(&u->mu);
    ap_upstream_job_t *q = u->queue, *rev = NULL;
    u->queue = NULL;
    atomic_store(&u->queued, false);
    pthread_mutex_unlock(&u->mu);
    while (q) { /* LIFO: start in submission order */
        ap_upstream_job_t *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    return rev;
}

static void read_messages(ap_upstream_t *u) {
    u->dirty = false;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        ap_upstream_job_t *j;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        finish(u, j, m->data.result, NULL);
    }
}

static void bury(ap_upstream_t *u) {
    while (u->graveyard) {
        sock_t *k = u->graveyard;
        u->graveyard = k->next;
        ap_free(k);
    }
}

static void check(ap_loop_hook_t *h) {
    ap_upstream_t *u = (ap_upstream_t *)((char *)h - offsetof(ap_upstream_t, hook));
    bury(u);
    int64_t now = ap_loop_now_ms();
    if (atomic_load(&u->queued))
        for (ap_upstream_job_t *j = take_queue(u), *n; j; j = n) {
            n = j->next;
            admit(u, j, now);
        }
    while (u->pending) {
        ap_upstream_job_t *j = u->pending;
        u->pending = j->next;
        if (!u->pending) u->pending_tail = NULL;
        admit(u, j, now);
    }
    bool cancels = atomic_exchange(&u->cancels, false);
    for (ap_upstream_job_t **pp = &u->delayed; *pp;) {
        ap_upstream_job_t *j = *pp;
        if (j->start_at <= now || atomic_load(&j->cancelled)) {
            *pp = j->next;
            j->start_at = 0;
            admit(u, j, now); /* starts it, or ends a cancelled one */
        } else {
            pp = &j->next;
        }
    }
    if (cancels)
        for (ap_upstream_job_t *j = u->running, *n; j; j = n) {
            n = j->next;
            if (atomic_load(&j->cancelled)) finish(u, j, CURLE_ABORTED_BY_CALLBACK, NULL);
        }
    if (u->deadline >= 0 && now >= u->deadline) {
        u->deadline = -1;
        drive(u, CURL_SOCKET_TIMEOUT, 0);
    }
    read_messages(u);
}

static int64_t prepare(ap_loop_hook_t *h) {
    ap_upstream_t *u = (ap_upstream_t *)((char *)h - offsetof(ap_upstream_t, hook));
    if (u->dirty || u->pending || atomic_load(&u->queued) ||
        atomic_load(&u->cancels))
        return 0;
    int64_t now = ap_loop_now_ms(), wait = -1;
    if (u->deadline >= 0) wait = u->deadline > now ? u->deadline - now : 0;
    for (ap_upstream_job_t *j = u->delayed; j; j = j->next) {
        int64_t w = j->start_at > now ? j->start_at - now : 0;
        if (wait < 0 || w < wait) wait = w;
    }
    return wait;
}

/* ---- shutting down ------------------------------------------------------- */

/* Ends every job, including the ones their callbacks submit meanwhile
 * (retries), which find the upstream stopped. */
static void end_all(void *arg) {
    ap_upstream_t *u = arg;
    u->stopped = true;
    for (;;) {
        bool any = false;
        for (ap_upstream_job_t *j = take_queue(u), *n; j; j = n) {
            n = j->next;
            end_job(j, AP_UPSTREAM_SHUTDOWN);
            any = true;
        }
        while (u->pending) {
            ap_upstream_job_t *j = u->pending;
            u->pending = j->next;
            if (!u->pending) u->pending_tail = NULL;
            end_job(j, AP_UPSTREAM_SHUTDOWN);
            any = true;
        }
        while (u->delayed) {
            ap_upstream_job_t *j = u->delayed;
            u->delayed = j->next;
            end_job(j, AP_UPSTREAM_SHUTDOWN);
            any = true;
        }
        while (u->running) {
            finish(u, u->running, CURLE_ABORTED_BY_CALLBACK, AP_UPSTREAM_SHUTDOWN);
            any = true;
        }
        if (!any) break;
    }
}

void ap_upstream_shutdown(ap_upstream_t *u) {
    ap_loop_call(u->loop, end_all, u);
}

/* ---- the API --------------------------------------------------------------- */

static void global_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

ap_rc ap_upstream_new_on(ap_loop_t *loop, ap_upstream_t **out, ap_err_t *err) {
    (void)err;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    ap_upstream_t *u = ap_calloc(1, sizeof *u);
    u->loop = loop;
    u->deadline = -1;
    u->multi = curl_multi_init();
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    pthread_mutex_init(&u->mu, NULL);
    u->hook.prepare = prepare;
    u->hook.check = check;
    ap_loop_hook_add(loop, &u->hook);
    *out = u;
    return AP_OK;
}

ap_rc ap_upstream_new(ap_upstream_t **out, ap_err_t *err) {
    ap_loop_t *loop;
    ap_rc rc = ap_loop_new(&loop, err);
    if (rc) return rc;
    ap_upstream_t *u;
    ap_upstream_new_on(loop, &u, err);
    u->own_loop = true;
    if ((rc = ap_loop_start_thread(loop, err))) {
        u->own_loop = false;
        ap_upstream_free(u);
        ap_loop_free(loop);
        return rc;
    }
    *out = u;
    return AP_OK;
}

void ap_upstream_free(ap_upstream_t *u) {
    if (!u) return;
    if (u->own_loop) {
        ap_upstream_shutdown(u);
        ap_loop_join(u->loop);
    }
    end_all(u); /* what came from other threads after the loop stopped */
    ap_loop_hook_del(u->loop, &u->hook);
    while (u->nidle) curl_easy_cleanup(u->idle[--u->nidle]);
    curl_multi_cleanup(u->multi); /* drops the sockets it still watched */
    while (u->socks) { /* none are left in practice; never leak one */
        sock_t *k = u->socks;
        u->socks = k->next;
        ap_loop_del(u->loop, &k->io);
        ap_free(k);
    }
    bury(u);
    pthread_mutex_destroy(&u->mu);
    if (u->own_loop) ap_loop_free(u->loop);
    ap_free(u);
}

ap_rc ap_upstream_submit(ap_upstream_t *u, const ap_http_call_t *call,
                         const ap_upstream_limits_t *lim, const ap_upstream_cb_t *cb,
                         ap_upstream_job_t **job, ap_err_t *err) {
    (void)err;
    ap_upstream_job_t *j = ap_calloc(1, sizeof *j);
    j->url = ap_strdup(call->url);
    j->body = ap_strndup(call->body ? call->body : "", call->len);
    j->body_len = call->len;
    for (int i = 0; i < call->nheaders; i++) j->headers = curl_slist_append(j->headers, call->headers[i]);
    j->headers = curl_slist_append(j->headers, "Expect:"); /* no 100-continue round trip */
    j->cb = *cb;
    if (lim) j->lim = *lim;
    int64_t now = ap_loop_now_ms();
    if (j->lim.delay_ms > 0) j->start_at = now + j->lim.delay_ms;
    ap_buf_init(&j->reply, j->lim.max_body ? j->lim.max_body : (16u << 20));
    if (job) *job = j;
    if (!ap_loop_on_thread(u->loop)) { /* another thread: queue, wake the loop */
        pthread_mutex_lock(&u->mu);
        j->next = u->queue;
        u->queue = j;
        atomic_store(&u->queued, true);
        pthread_mutex_unlock(&u->mu);
        ap_loop_wake(u->loop);
        return AP_OK;
    }
    if (j->start_at > now && !u->stopped) { /* backoff: the check starts it when due */
        j->next = u->delayed;
        u->delayed = j;
        return AP_OK;
    }
    char why[256];
    if (!u->in_curl && !u->stopped && start(u, j, why, sizeof why)) {
        drive(u, CURL_SOCKET_TIMEOUT, 0); /* curl sends the request now */
        return AP_OK;
    }
    /* inside curl, stopped, or refused by curl: the check deals with it
     * (on_done never runs inside submit) */
    j->next = NULL;
    if (u->pending_tail) u->pending_tail->next = j;
    else u->pending = j;
    u->pending_tail = j;
    return AP_OK;
}

void ap_upstream_cancel(ap_upstream_t *u, ap_upstream_job_t *job) {
    atomic_store(&job->cancelled, true);
    atomic_store(&u->cancels, true);
    if (!ap_loop_on_thread(u->loop)) ap_loop_wake(u->loop);
}

int ap_upstream_active(ap_upstream_t *u) {
    return atomic_load(&u->active);
}
