/*
 * upstream.h - outbound HTTP calls to model providers on one I/O loop.
 *
 * 1. One thread runs a libcurl multi handle; requests are submitted from
 *    any thread and never hold the submitter: the HTTP server suspends the
 *    client connection and resumes it from the callbacks.
 * 2. Callbacks run on the loop thread.  on_data sees the body as it
 *    arrives (streams); on_done is called exactly once per submitted job,
 *    also when the job is cancelled or the loop shuts down.
 * 3. Connections to providers are reused (curl's connection cache); an
 *    upstream that stalls is cut by the job's timeouts (total, and time to
 *    first byte), reported as AP_LLM_TIMEOUT.
 */
#ifndef AP_LLM_UPSTREAM_H
#define AP_LLM_UPSTREAM_H

#include <stddef.h>

#include "core/err.h"
#include "llm/wire.h"

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

ap_rc ap_upstream_new(ap_upstream_t **out, ap_err_t *err);
/* Stops the loop; jobs still running end with AP_LLM_UPSTREAM "shutting down". */
void ap_upstream_free(ap_upstream_t *u);
/* Copies what it needs from call; cb->on_done is guaranteed.  *job may be
 * NULL.  Thread-safe. */
ap_rc ap_upstream_submit(ap_upstream_t *u, const ap_http_call_t *call,
                         const ap_upstream_limits_t *lim, const ap_upstream_cb_t *cb,
                         ap_upstream_job_t **job, ap_err_t *err);
/* Asks the loop to abort a job (its on_done still runs, with a timeout/
 * cancel error).  Thread-safe; harmless after the job finished only while
 * the caller still holds the job (before on_done returned). */
void ap_upstream_cancel(ap_upstream_t *u, ap_upstream_job_t *job);
int ap_upstream_active(ap_upstream_t *u);

#endif
