/*
 * idempotency.h - Idempotency-Key on POST.
 *
 * 1. The first request with a key reserves it (a row with no response yet)
 *    in its own transaction, the handler runs, and the response is stored.
 *    The same key with the same method, path and body replays the stored
 *    response; with a different request it is refused with 422; while the
 *    first is still running, 409.
 * 2. Keys are scoped to the caller's tenant and credential.  A 5xx
 *    response releases the key so the client can retry.
 * 3. Records expire after 24 hours (ap_idem_expire, run by the hourly
 *    purge job of `serve`).
 */
#ifndef AP_HTTP_IDEMPOTENCY_H
#define AP_HTTP_IDEMPOTENCY_H

#include <stdbool.h>

#include "http/req.h"

/* Returns true when the request was answered here (replay or problem);
 * false when the handler should run, and then ap_idem_finish must be
 * called with the response. *reserved says whether a key was reserved. */
bool ap_idem_begin(ap_req_t *r, const char *key, bool *reserved);
void ap_idem_finish(ap_req_t *r, const char *key);
/* Forgets records older than older_than_ms (platform scope): a key is
 * honoured for 24 hours (the purge job calls this hourly). */
ap_rc ap_idem_expire(ap_db_t *db, int64_t older_than_ms, int64_t *removed, ap_err_t *err);
#define AP_IDEM_TTL_MS (24 * 3600 * 1000LL)

#endif
