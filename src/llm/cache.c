/*
 * cache.c - the LLM read cache (cache.h): a chained hash table of blobs
 * under one mutex, keyed by kind, tenant and name.
 */
#include "llm/cache.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/time.h"

#define NBUCKETS 1024u
#define NGENS 64u

typedef struct entry {
    struct entry *next;
    int kind;
    char tenant[40];
    char *name;
    int64_t expires_ms;
    size_t len;
    unsigned char *val;
} entry_t;

struct ap_llm_cache {
    pthread_mutex_t mu;
    int64_t ttl_ms;
    uint64_t gen[2][NGENS]; /* per kind and tenant slot (decision 3 of cache.h) */
    int count;
    entry_t *buckets[NBUCKETS];
};

static int64_t now_ms(void) {
    return (int64_t)(ap_mono_ns() / 1000000);
}

static uint32_t hash(int kind, const char *tenant, const char *name) {
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    for (const char *p = tenant; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static void entry_free(entry_t *e) {
    ap_free(e->name);
    ap_free(e->val);
    ap_free(e);
}

ap_llm_cache_t *ap_llm_cache_new(int64_t ttl_ms) {
    ap_llm_cache_t *c = ap_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->ttl_ms = ttl_ms;
    return c;
}

static void clear_all(ap_llm_cache_t *c) {
    for (unsigned i = 0; i < NBUCKETS; i++) {
        for (entry_t *e = c->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void ap_llm_cache_free(ap_llm_cache_t *c) {
    if (!c) return;
    clear_all(c);
    pthread_mutex_destroy(&c->mu);
    ap_free(c);
}

static uint32_t slot(const char *tenant) {
    return hash(0, tenant, "") % NGENS;
}

static int kind_index(int kind) {
    return kind == AP_LLM_CACHE_BUDGET ? 1 : 0;
}

uint64_t ap_llm_cache_gen(ap_llm_cache_t *c, int kind, const char *tenant) {
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->gen[kind_index(kind)][slot(tenant)];
    pthread_mutex_unlock(&c->mu);
    return g;
}

static entry_t **find(ap_llm_cache_t *c, int kind, const char *tenant, const char *name) {
    entry_t **pp = &c->buckets[hash(kind, tenant, name) % NBUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->kind == kind && strcmp((*pp)->tenant, tenant) == 0 &&
            strcmp((*pp)->name, name) == 0)
            break;
    return pp;
}

bool ap_llm_cache_get(ap_llm_cache_t *c, int kind, const char *tenant, const char *name,
                      ap_arena_t *a, void **val, size_t *len) {
    if (!c || c->ttl_ms <= 0 || strlen(tenant) >= sizeof((entry_t *)0)->tenant) return false;
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    entry_t **pp = find(c, kind, tenant, name), *e = *pp;
    if (e && e->expires_ms <= now_ms()) {
        *pp = e->next;
        entry_free(e);
        c->count--;
    } else if (e) {
        *val = ap_arena_alloc(a, e->len ? e->len : 1);
        memcpy(*val, e->val, e->len);
        *len = e->len;
        hit = true;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void ap_llm_cache_put(ap_llm_cache_t *c, uint64_t gen, int kind, const char *tenant,
                      const char *name, const void *val, size_t len) {
    if (!c || c->ttl_ms <= 0 || strlen(tenant) >= sizeof((entry_t *)0)->tenant) return;
    entry_t *e = ap_calloc(1, sizeof *e);
    e->kind = kind;
    memcpy(e->tenant, tenant, strlen(tenant) + 1);
    e->name = ap_strdup(name);
    e->len = len;
    e->val = ap_malloc(len ? len : 1);
    memcpy(e->val, val, len);
    pthread_mutex_lock(&c->mu);
    if (gen != c->gen[kind_index(kind)][slot(tenant)]) { /* invalidated since the read */
        pthread_mutex_unlock(&c->mu);
        entry_free(e);
        return;
    }
    e->expires_ms = now_ms() + c->ttl_ms;
    entry_t **pp = find(c, kind, tenant, name);
    if (*pp) { /* replace */
        entry_t *old = *pp;
        e->next = old->next;
        *pp = e;
        entry_free(old);
    } else {
        if (c->count >= AP_LLM_CACHE_MAX) {
            clear_all(c);
            pp = find(c, kind, tenant, name);
        }
        *pp = e;
        c->count++;
    }
    pthread_mutex_unlock(&c->mu);
}

void ap_llm_cache_update(ap_llm_cache_t *c, int kind, const char *tenant, const char *name,
                         void (*fn)(void *val, size_t len, void *ud), void *ud) {
    if (!c || strlen(tenant) >= sizeof((entry_t *)0)->tenant) return;
    pthread_mutex_lock(&c->mu);
    c->gen[kind_index(kind)][slot(tenant)]++;
    entry_t *e = *find(c, kind, tenant, name);
    if (e && e->expires_ms > now_ms()) fn(e->val, e->len, ud);
    pthread_mutex_unlock(&c->mu);
}

void ap_llm_cache_invalidate(ap_llm_cache_t *c, const char *tenant, int mask) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < 2; k++) {
        if (!(mask & (k ? AP_LLM_CACHE_BUDGET : AP_LLM_CACHE_ROUTE))) continue;
        if (tenant) c->gen[k][slot(tenant)]++;
        else
            for (unsigned i = 0; i < NGENS; i++) c->gen[k][i]++;
    }
    for (unsigned i = 0; i < NBUCKETS; i++) {
        entry_t **pp = &c->buckets[i];
        while (*pp) {
            entry_t *e = *pp;
            if ((e->kind & mask) && (!tenant || strcmp(e->tenant, tenant) == 0)) {
                *pp = e->next;
                entry_free(e);
                c->count--;
            } else
                pp = &e->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
}
