/*
 * breaker.c - per-model circuit breakers.
 */
#include "llm/breaker.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"

#define BUCKETS 256

typedef struct entry {
    struct entry *next;
    char *key;
    int failures;      /* consecutive */
    int64_t open_until;
    bool open;
    bool probing;      /* half-open: one probe is out */
} entry_t;

struct ap_breaker {
    pthread_mutex_t mu;
    int threshold;
    int64_t open_ms;
    entry_t *b[BUCKETS];
};

static uint32_t hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

ap_breaker_t *ap_breaker_new(int threshold, int64_t open_ms) {
    ap_breaker_t *b = ap_calloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold > 0 ? threshold : 5;
    b->open_ms = open_ms > 0 ? open_ms : 30000;
    return b;
}

void ap_breaker_free(ap_breaker_t *b) {
    if (!b) return;
    for (int i = 0; i < BUCKETS; i++) {
        entry_t *e = b->b[i];
        while (e) {
            entry_t *n = e->next;
            ap_free(e->key);
            ap_free(e);
            e = n;
        }
    }
    pthread_mutex_destroy(&b->mu);
    ap_free(b);
}

static entry_t *get(ap_breaker_t *b, const char *key, bool create) {
    entry_t **head = &b->b[hash(key) % BUCKETS];
    for (entry_t *e = *head; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e;
    if (!create) return NULL;
    entry_t *e = ap_calloc(1, sizeof *e);
    e->key = ap_strdup(key);
    e->next = *head;
    *head = e;
    return e;
}

bool ap_breaker_allow(ap_breaker_t *b, const char *key, int64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    entry_t *e = get(b, key, false);
    bool ok = true;
    if (e && e->open) {
        if (now_ms < e->open_until || e->probing) {
            ok = false;
        } else {
            e->probing = true; /* half-open: this caller is the probe */
        }
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void ap_breaker_report(ap_breaker_t *b, const char *key, bool ok, int64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    entry_t *e = get(b, key, !ok);
    if (e) {
        if (ok) {
            e->failures = 0;
            e->open = false;
            e->probing = false;
        } else {
            e->failures++;
            if (e->probing || e->failures >= b->threshold) {
                e->open = true;
                e->open_until = now_ms + b->open_ms;
            }
            e->probing = false;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

const char *ap_breaker_state(ap_breaker_t *b, const char *key, int64_t now_ms) {
    pthread_mutex_lock(&b->mu);
    entry_t *e = get(b, key, false);
    const char *s = !e || !e->open ? "closed" : now_ms < e->open_until ? "open" : "half-open";
    pthread_mutex_unlock(&b->mu);
    return s;
}
