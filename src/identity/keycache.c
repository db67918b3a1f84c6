/*
 * keycache.c - the verified-key cache (keycache.h).
 *
 * 1. A flat array of slots indexed by the first bytes of the key's hash;
 *    the full 32-byte hash is compared (constant time) before a hit.
 * 2. Invalidation bumps the generation and clears every slot's "used"
 *    mark; entries carry the generation they were filled in, so a put
 *    that began before an invalidation is dropped.
 */
#include "identity/keycache.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/time.h"

typedef struct {
    bool used;
    uint8_t hash[AP_SHA256_LEN];
    int64_t filled_ms; /* monotonic */
    int64_t expires_ms; /* wall clock */
    ap_role role;
    bool has_user;
    char key_id[40], tenant_id[40], user_id[40], tenant_status[16], name[128];
} slot_t;

struct ap_key_cache {
    pthread_mutex_t mu;
    int64_t ttl_ms;
    uint64_t gen;
    slot_t *slots;
};

ap_key_cache_t *ap_key_cache_new(int64_t ttl_ms) {
    ap_key_cache_t *c = ap_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->ttl_ms = ttl_ms;
    if (ttl_ms > 0) c->slots = ap_calloc(AP_KEY_CACHE_SLOTS, sizeof *c->slots);
    return c;
}

void ap_key_cache_free(ap_key_cache_t *c) {
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    ap_free(c->slots);
    ap_free(c);
}

static slot_t *slot_of(ap_key_cache_t *c, const uint8_t *hash) {
    uint32_t h;
    memcpy(&h, hash, sizeof h);
    return &c->slots[h % AP_KEY_CACHE_SLOTS];
}

uint64_t ap_key_cache_gen(ap_key_cache_t *c) {
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}

bool ap_key_cache_get(ap_key_cache_t *c, const uint8_t hash[AP_SHA256_LEN], int64_t now_ms,
                      ap_arena_t *a, ap_principal_t *out) {
    if (!c || !c->slots) return false;
    slot_t copy;
    int64_t mono = (int64_t)(ap_mono_ns() / 1000000);
    pthread_mutex_lock(&c->mu);
    slot_t *s = slot_of(c, hash);
    bool hit = s->used && ap_ct_eq(s->hash, hash, AP_SHA256_LEN) &&
               mono - s->filled_ms < c->ttl_ms && now_ms < s->expires_ms;
    if (hit) copy = *s;
    pthread_mutex_unlock(&c->mu);
    if (!hit) return false;
    out->key_id = ap_arena_strdup(a, copy.key_id);
    out->tenant_id = ap_arena_strdup(a, copy.tenant_id);
    out->user_id = copy.has_user ? ap_arena_strdup(a, copy.user_id) : NULL;
    out->name = ap_arena_strdup(a, copy.name);
    out->tenant_status = ap_arena_strdup(a, copy.tenant_status);
    out->role = copy.role;
    return true;
}

static bool fits(char *dst, size_t cap, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n >= cap) return false;
    memcpy(dst, s ? s : "", n + 1);
    return true;
}

void ap_key_cache_put(ap_key_cache_t *c, uint64_t gen, const uint8_t hash[AP_SHA256_LEN],
                      int64_t now_ms, int64_t expires_ms, const ap_principal_t *p) {
    if (!c || !c->slots) return;
    (void)now_ms;
    slot_t e = {.used = true, .filled_ms = (int64_t)(ap_mono_ns() / 1000000), .expires_ms = expires_ms, .role = p->role,
                .has_user = p->user_id != NULL};
    memcpy(e.hash, hash, AP_SHA256_LEN);
    if (!fits(e.key_id, sizeof e.key_id, p->key_id) ||
        !fits(e.tenant_id, sizeof e.tenant_id, p->tenant_id) ||
        !fits(e.user_id, sizeof e.user_id, p->user_id) ||
        !fits(e.tenant_status, sizeof e.tenant_status, p->tenant_status) ||
        !fits(e.name, sizeof e.name, p->name))
        return;
    pthread_mutex_lock(&c->mu);
    if (gen == c->gen) *slot_of(c, hash) = e;
    pthread_mutex_unlock(&c->mu);
}

void ap_key_cache_invalidate(ap_key_cache_t *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->gen++;
    if (c->slots)
        for (int i = 0; i < AP_KEY_CACHE_SLOTS; i++) c->slots[i].used = false;
    pthread_mutex_unlock(&c->mu);
}

ap_rc ap_apikey_authenticate_cached(ap_key_cache_t *c, ap_db_t *db, ap_arena_t *a,
                                    const char *token, ap_principal_t *out, ap_err_t *err) {
    if (!c || !c->slots) return ap_apikey_authenticate(db, a, token, out, err);
    uint8_t h[AP_SHA256_LEN];
    ap_sha256(token, strlen(token), h);
    if (ap_key_cache_get(c, h, ap_now_ms(), a, out)) return AP_OK;
    uint64_t gen = ap_key_cache_gen(c);
    ap_rc rc = ap_apikey_authenticate(db, a, token, out, err);
    if (!rc) ap_key_cache_put(c, gen, h, 0, out->expires_ms, out);
    return rc;
}
