/*
 * cache.h - a short-lived cache of what every model call reads: resolved
 * routes per tenant and model name, and budget totals per tenant and day.
 *
 * 1. Values are byte blobs copied in and out (the caller serialises);
 *    nothing handed out points into the cache, so entries can go at any
 *    time.  Thread-safe (one mutex; a chained hash table).
 * 2. Freshness: an entry lives at most ttl_ms (AP_LLM_CACHE_MS, default
 *    2000; 0 switches the cache off).  Writes that change what a value was
 *    computed from invalidate it at once on this node: configuration and
 *    tenant writes the tenant's entries, catalog writes everything, the
 *    usage writer a tenant's budget totals after each batch.  Other nodes
 *    see a change within the TTL.
 * 3. A value computed while an invalidation ran is not stored: callers
 *    take ap_llm_cache_gen before reading the database and pass it to put,
 *    which drops the value if an invalidation of that kind touched the
 *    tenant since (generations are kept per kind and per tenant slot, so
 *    one tenant's usage writes do not stop another's caching).
 * 4. At most AP_LLM_CACHE_MAX entries; past that the table is emptied
 *    (a cache of hot tenants refills at once).
 */
#ifndef AP_LLM_CACHE_H
#define AP_LLM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct ap_llm_cache ap_llm_cache_t;

enum { AP_LLM_CACHE_ROUTE = 1, AP_LLM_CACHE_BUDGET = 2, AP_LLM_CACHE_ALL = 3 };

#define AP_LLM_CACHE_MAX 4096

/* ttl_ms <= 0: a cache that never holds anything. */
ap_llm_cache_t *ap_llm_cache_new(int64_t ttl_ms);
void ap_llm_cache_free(ap_llm_cache_t *c); /* accepts NULL */
/* The invalidation generation of (kind, tenant), to pass to put
 * (decision 3). */
uint64_t ap_llm_cache_gen(ap_llm_cache_t *c, int kind, const char *tenant);
/* A copy of the value of (kind, tenant, name) in a (16-byte aligned);
 * false when absent or expired.  c may be NULL (a miss). */
bool ap_llm_cache_get(ap_llm_cache_t *c, int kind, const char *tenant, const char *name,
                      ap_arena_t *a, void **val, size_t *len);
void ap_llm_cache_put(ap_llm_cache_t *c, uint64_t gen, int kind, const char *tenant,
                      const char *name, const void *val, size_t len);
/* Changes the value of (kind, tenant, name) in place with fn, under the
 * cache's lock, when it is there; either way a put of a value read before
 * (an older generation) is refused afterwards. */
void ap_llm_cache_update(ap_llm_cache_t *c, int kind, const char *tenant, const char *name,
                         void (*fn)(void *val, size_t len, void *ud), void *ud);
/* Drops the entries of the kinds in mask for tenant (NULL: every tenant). */
void ap_llm_cache_invalidate(ap_llm_cache_t *c, const char *tenant, int mask);

#endif
