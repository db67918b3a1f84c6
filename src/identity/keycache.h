/*
 * keycache.h - a short-lived cache of verified API keys, so a hot key
 * costs one SHA-256 and a table probe instead of a database read.
 *
 * 1. Keyed by SHA-256 of the whole presented key (the plaintext is never
 *    kept); only keys that authenticated are stored, so unknown, revoked,
 *    expired and malformed keys always reach the database.
 * 2. Freshness: an entry lives at most ttl_ms (AP_KEY_CACHE_MS, default
 *    1000; 0 switches the cache off) and never past the key's expiry.
 *    Every write that can change an authentication outcome — a key
 *    revoked, a tenant suspended, resumed, updated or deleted, a user
 *    updated or deleted — calls ap_key_cache_invalidate after its commit,
 *    which empties the table: on this node a revoked key stops working at
 *    once.  Other nodes, and the admin CLI writing the database from
 *    another process, are seen within the TTL.
 * 3. A value read from the database while an invalidation ran is not
 *    stored: take ap_key_cache_gen before the read and pass it to put.
 * 4. Direct-mapped (AP_KEY_CACHE_SLOTS slots; a colliding key replaces the
 *    other), one mutex; values are copied in and out.  Thread-safe.
 */
#ifndef AP_IDENTITY_KEYCACHE_H
#define AP_IDENTITY_KEYCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/crypto.h"
#include "identity/apikey.h"
#include "store/db.h"

#define AP_KEY_CACHE_SLOTS 4096

typedef struct ap_key_cache ap_key_cache_t;

/* ttl_ms <= 0: a cache that never holds anything. */
ap_key_cache_t *ap_key_cache_new(int64_t ttl_ms);
void ap_key_cache_free(ap_key_cache_t *c); /* accepts NULL */
uint64_t ap_key_cache_gen(ap_key_cache_t *c);
/* The principal of a verified key with this hash, its strings copied into
 * a; false when absent, stale or past expires_ms.  c may be NULL. */
bool ap_key_cache_get(ap_key_cache_t *c, const uint8_t hash[AP_SHA256_LEN], int64_t now_ms,
                      ap_arena_t *a, ap_principal_t *out);
/* expires_ms: the key's expiry (wall clock; INT64_MAX: none); now_ms is
 * unused (the TTL runs on the monotonic clock).  Strings that do not fit
 * the entry are not cached (the next call reads the database). */
void ap_key_cache_put(ap_key_cache_t *c, uint64_t gen, const uint8_t hash[AP_SHA256_LEN],
                      int64_t now_ms, int64_t expires_ms, const ap_principal_t *p);
/* ap_apikey_authenticate through the cache (decision 1): a hit answers
 * without the database; a miss authenticates and stores the principal. */
ap_rc ap_apikey_authenticate_cached(ap_key_cache_t *c, ap_db_t *db, ap_arena_t *a,
                                    const char *token, ap_principal_t *out, ap_err_t *err);
/* Forgets every entry (decision 2).  c may be NULL. */
void ap_key_cache_invalidate(ap_key_cache_t *c);

#endif
