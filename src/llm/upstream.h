/*
 * upstream.h - outbound HTTP calls to model providers on event loops.
 *
 * 1. An upstream is one libcurl multi handle on one event loop
 *    (core/loop.h): either a loop and thread of its own (ap_upstream_new:
 *    the process's shared upstream, for the task runner, memory and the
 *    CLI), or the loop of a server worker (ap_upstream_new_on: the
 *    gateway's calls stay on the thread that serves the client, with no
 *    hand-off between threads).  Requests never hold the submitter: the
 *    HTTP server suspends the client connection and resumes it from the
 *    callbacks.
 * 2. A job submitted on the loop's own thread is started at once (curl
 *    sends the request before submit returns, unless it has to wait:
 *    backoff, or a submission from inside one of curl's callbacks); from
 *    any other thread it is queued and the loop is woken.  No lock is
 *    taken on the loop's own thread.
 * 3. Callbacks run on the loop's thread.  on_data sees the body as it
 *    arrives (streams); on_done is called exactly once per submitted job,
 *    also when the job is cancelled or the upstream shuts down, and never
 *    from inside ap_upstream_submit or ap_upstream_cancel.
 * 4. Connections to providers are reused (curl's connection cache, one per
 *    upstream); an upstream that stalls is cut by the job's timeouts
 *    (total, and time to first byte), reported as AP_LLM_TIMEOUT.
 */
#ifndef AP_LLM_UPSTREAM_H
#define AP_LLM_UPSTREAM_H

#include <stddef.h>

#include "core/err.h"
#include "core/loop.h"
#include "llm/wire.h"

/* The message of jobs ended by a shutdown (ap_upstream_shutdown). */
#define AP_UPSTREAM_SHUTDOWN "shutting down"

typedef struct ap_upstream ap_upstream_t;
typedef struct ap_upstream_job ap_upstream_job_t;

typedef struct {
    /* First body bytes of a 2xx reply; status and Retry-After are known. */
    void (*on_data)(void *ud, int status, const char *data, size_t len);
    /* status: HTTP status (0 when none); lerr kind OK on success. body holds
     * the whole reply when the job did not stream (on_data NULL). */
    void (*on_done)(void *ud, int status, const char *retry_after, const char *body,
                    size_t len, const ap_llm_error_t *lerr);
    void *ud;
} ap_upstream_cb_t;

typedef struct {
    int timeout_ms;       /* whole call; 0 = 600 s */
    int first_byte_ms;    /* until the first byte; 0 = no separate bound */
    size_t max_body;      /* non-streamed replies; 0 = 16 MiB */
    int delay_ms;         /* start no sooner than this (retry backoff); 0 = now */
} ap_upstream_limits_t;

/* An upstream with a loop and a thread of its own. */
ap_rc ap_upstream_new(ap_upstream_t **out, ap_err_t *err);
/* An upstream on a loop run by its caller (a server worker).  The loop
 * must outlive it. */
ap_rc ap_upstream_new_on(ap_loop_t *loop, ap_upstream_t **out, ap_err_t *err);
/* Jobs in flight, and every job submitted from now on, end with
 * AP_LLM_UPSTREAM AP_UPSTREAM_SHUTDOWN; returns when those in flight have
 * ended (their on_done ran on the loop's thread).  Thread-safe. */
void ap_upstream_shutdown(ap_upstream_t *u);
/* Shuts down, stops its own loop and frees.  For ap_upstream_new_on the
 * loop must not run any more.  Accepts NULL. */
void ap_upstream_free(ap_upstream_t *u);
/* Copies what it needs from call; cb->on_done is guaranteed (decision 3).
 * *job may be NULL.  Thread-safe; lock-free on the loop's thread. */
ap_rc ap_upstream_submit(ap_upstream_t *u, const ap_http_call_t *call,
                         const ap_upstream_limits_t *lim, const ap_upstream_cb_t *cb,
                         ap_upstream_job_t **job, ap_err_t *err);
/* Asks the loop to abort a job (its on_done still runs, with
 * AP_LLM_UPSTREAM "request cancelled", unless it finished meanwhile).
 * Thread-safe; valid until the job's on_done returned. */
void ap_upstream_cancel(ap_upstream_t *u, ap_upstream_job_t *job);
int ap_upstream_active(ap_upstream_t *u);

#endif
