/*
 * breaker.h - a circuit breaker per provider model.
 *
 * 1. Closed: calls pass.  After `threshold` consecutive retryable failures
 *    (rate limited, overloaded, timeout, upstream error) it opens for
 *    `open_ms`: calls are refused at once, so the router moves to the next
 *    target without waiting on a provider that is down.  Then half-open:
 *    one probe call passes; its success closes the breaker, its failure
 *    opens it again.
 * 2. Client errors (bad request, context too long) say nothing about the
 *    provider's health and are not reported here.
 * 3. Thread-safe (one mutex; a small chained hash table by catalog id).
 */
#ifndef AP_LLM_BREAKER_H
#define AP_LLM_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ap_breaker ap_breaker_t;

/* threshold <= 0 and open_ms <= 0 take the defaults (5, 30 s). */
ap_breaker_t *ap_breaker_new(int threshold, int64_t open_ms);
void ap_breaker_free(ap_breaker_t *b); /* accepts NULL */
/* May a call to key go now?  In half-open state only one caller gets true
 * until it reports. */
bool ap_breaker_allow(ap_breaker_t *b, const char *key, int64_t now_ms);
void ap_breaker_report(ap_breaker_t *b, const char *key, bool ok, int64_t now_ms);
/* "closed" | "open" | "half-open" (for explanations and tests). */
const char *ap_breaker_state(ap_breaker_t *b, const char *key, int64_t now_ms);

#endif
