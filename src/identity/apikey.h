/*
 * apikey.h - API keys: issue, authenticate, list, revoke.
 *
 * 1. A key reads "apk_<id16>_<secret43>": a recognisable prefix, a 16-char
 *    lookup id (96 random bits, base64url) and a 256-bit secret (base64url).
 *    Only the lookup id and SHA-256 of the whole key are stored; keys are
 *    high-entropy, so a fast hash is the right one.  The hash comparison is
 *    constant-time.
 * 2. The plaintext key exists only in the create result, once.
 * 3. last_used_at is written at most once a minute per key, so reads do not
 *    turn into writes under load.
 * 4. Authentication joins the key's tenant so the caller learns its tenant
 *    status in the same query.
 */
#ifndef AP_IDENTITY_APIKEY_H
#define AP_IDENTITY_APIKEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/err.h"
#include "policy/policy.h"
#include "store/db.h"

#define AP_KEY_PREFIX "apk_"

typedef struct {
    const char *key_id;
    const char *tenant_id;
    const char *user_id; /* NULL for service keys */
    const char *name;
    const char *tenant_status; /* "active" | "suspended" | "deleted" */
    ap_role role;
    int64_t expires_ms; /* the key's expiry (ms since the epoch), INT64_MAX: none */
} ap_principal_t;

typedef struct {
    const char *name;
    const char *role;       /* role name; for a user key, defaults to the user's */
    const char *user_id;    /* or NULL for a service key */
    const char *expires_at; /* RFC 3339 or NULL */
} ap_apikey_spec_t;

/* Authenticates a presented key.  Runs its own platform-scope transaction.
 * Unknown, malformed, revoked and expired keys all return AP_ERR_UNAUTH;
 * the detail says which of revoked/expired it was only when the lookup id
 * matched a real key, never anything about the secret. */
ap_rc ap_apikey_authenticate(ap_db_t *db, ap_arena_t *a, const char *token,
                             ap_principal_t *out, ap_err_t *err);

/* Creates a key in tx's tenant.  *key_json is the key's metadata plus
 * "key": the plaintext, shown once (new reference). */
ap_rc ap_apikey_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                       ap_role granter, const ap_apikey_spec_t *spec, json_t **key_json,
                       ap_err_t *err);
ap_rc ap_apikey_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                     json_t **out, const char **next, ap_err_t *err);
ap_rc ap_apikey_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                    ap_err_t *err);
ap_rc ap_apikey_revoke(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                       const char *id, json_t **out, ap_err_t *err);

/* Makes the plaintext for a new key and its stored parts (exposed for
 * tests and for the first-start admin key). */
void ap_apikey_generate(char *key /* 80 */, char *lookup /* 17 */, char *hash /* 65 */);

#endif
