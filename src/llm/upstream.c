/*
 * upstream.c - the libcurl multi loop.
 *
 * 1. Submissions go on a mutex-protected queue and wake the loop with
 *    curl_multi_wakeup; the loop owns every easy handle from then on, so
 *    no curl call ever happens on two threads.
 * 2. A streamed job hands body bytes to on_data as curl delivers them; a
 *    non-streamed one buffers up to max_body and hands it to on_done.
 * 3. Cancellation is a flag read by the loop, which removes the handle and
 *    calls on_done; a job is freed by the loop after on_done returns.
 */
#include "llm/upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/time.h"

/* Finished easy handles kept for the next transfers: reusing one skips
 * curl_easy_init/cleanup and the options that never change. */
#define UPSTREAM_IDLE_MAX 64

struct ap_upstream_job {
    struct ap_upstream_job *next; /* queue link, then active list */
    struct ap_upstream_job *prev;
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

struct ap_upstream {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    ap_upstream_job_t *queue;  /* submitted, not yet added (LIFO) */
    ap_upstream_job_t *running; /* loop thread only */
    ap_upstream_job_t *delayed; /* loop thread only: waiting for start_at */
    CURL *idle[UPSTREAM_IDLE_MAX]; /* loop thread only: finished handles to reuse */
    int nidle;
    bool stop;
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

static void finish(ap_upstream_t *u, ap_upstream_job_t *j, CURLcode cc) {
    ap_llm_error_t lerr = {0};
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    if (j->cancelled) {
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
    if (u->nidle < UPSTREAM_IDLE_MAX) u->idle[u->nidle++] = j->easy;
    else curl_easy_cleanup(j->easy);
    j->easy = NULL;
    if (j->prev) j->prev->next = j->next;
    else u->running = j->next;
    if (j->next) j->next->prev = j->prev;
    u->active--;
    j->cb.on_done(j->cb.ud, (int)status, j->retry_after[0] ? j->retry_after : NULL,
                  j->reply.p ? j->reply.p : "", j->reply.len, &lerr);
    job_free(j);
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

static void start(ap_upstream_t *u, ap_upstream_job_t *j) {
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
    if (mc == CURLM_OK) {
        u->active++;
        j->prev = NULL;
        j->next = u->running;
        if (u->running) u->running->prev = j;
        u->running = j;
    } else {
        ap_llm_error_t lerr = {.kind = AP_LLM_UPSTREAM};
        snprintf(lerr.message, sizeof lerr.message, "cannot start upstream call: %s",
                 curl_multi_strerror(mc));
        curl_easy_cleanup(e);
        j->easy = NULL;
        j->cb.on_done(j->cb.ud, 0, NULL, "", 0, &lerr);
        job_free(j);
    }
}

static void *loop(void *arg) {
    ap_upstream_t *u = arg;
    for (;;) {
        pthread_mutex_lock(&u->mu);
        ap_upstream_job_t *q = u->queue;
        u->queue = NULL;
        bool stop = u->stop;
        pthread_mutex_unlock(&u->mu);
        /* the queue is LIFO; reverse to start in submission order */
        ap_upstream_job_t *rev = NULL;
        while (q) {
            ap_upstream_job_t *n = q->next;
            q->next = rev;
            rev = q;
            q = n;
        }
        int64_t now = (int64_t)(ap_mono_ns() / 1000000);
        while (rev) {
            ap_upstream_job_t *n = rev->next;
            if (stop) atomic_store(&rev->cancelled, true);
            if (!stop && rev->start_at > now) { /* not due yet: wait in the delayed list */
                rev->next = u->delayed;
                u->delayed = rev;
            } else {
                start(u, rev);
            }
            rev = n;
        }
        /* due (or cancelled, or shutting down) delayed jobs start now */
        int poll_ms = 200;
        for (ap_upstream_job_t **pp = &u->delayed; *pp;) {
            ap_upstream_job_t *j = *pp;
            if (stop || j->start_at <= now || atomic_load(&j->cancelled)) {
                *pp = j->next;
                if (stop) atomic_store(&j->cancelled, true);
                start(u, j);
            } else {
                if (j->start_at - now < poll_ms) poll_ms = (int)(j->start_at - now);
                pp = &j->next;
            }
        }
        if (stop) {
            while (u->running) {
                atomic_store(&u->running->cancelled, true);
                finish(u, u->running, CURLE_ABORTED_BY_CALLBACK);
            }
            return NULL;
        }
        int nrunning = 0;
        curl_multi_perform(u->multi, &nrunning);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(u->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            ap_upstream_job_t *j;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            finish(u, j, m->data.result);
        }
        /* cancelled jobs: the progress callback aborts them within a second;
         * wake-ups make it sooner */
        curl_multi_poll(u->multi, NULL, 0, poll_ms > 0 ? poll_ms : 1, NULL);
    }
}

static void global_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

ap_rc ap_upstream_new(ap_upstream_t **out, ap_err_t *err) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    ap_upstream_t *u = ap_calloc(1, sizeof *u);
    u->multi = curl_multi_init();
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    pthread_mutex_init(&u->mu, NULL);
    if (pthread_create(&u->thread, NULL, loop, u) != 0) {
        curl_multi_cleanup(u->multi);
        pthread_mutex_destroy(&u->mu);
        ap_free(u);
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot start the upstream loop", NULL,
                          NULL);
    }
    *out = u;
    return AP_OK;
}

void ap_upstream_free(ap_upstream_t *u) {
    if (!u) return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    pthread_mutex_unlock(&u->mu);
    curl_multi_wakeup(u->multi);
    pthread_join(u->thread, NULL);
    while (u->nidle) curl_easy_cleanup(u->idle[--u->nidle]);
    curl_multi_cleanup(u->multi);
    pthread_mutex_destroy(&u->mu);
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
    if (j->lim.delay_ms > 0) j->start_at = (int64_t)(ap_mono_ns() / 1000000) + j->lim.delay_ms;
    ap_buf_init(&j->reply, j->lim.max_body ? j->lim.max_body : (16u << 20));
    if (job) *job = j;
    pthread_mutex_lock(&u->mu);
    j->next = u->queue;
    u->queue = j;
    pthread_mutex_unlock(&u->mu);
    curl_multi_wakeup(u->multi);
    return AP_OK;
}

void ap_upstream_cancel(ap_upstream_t *u, ap_upstream_job_t *job) {
    atomic_store(&job->cancelled, true);
    curl_multi_wakeup(u->multi);
}

int ap_upstream_active(ap_upstream_t *u) {
    return atomic_load(&u->active);
}
