/*
 * hot.c - the in-process hot-context backend (hot.h).
 *
 * 1. A chained hash map keyed by "tenant\x1f agent\x1f conversation" (the
 *    separator cannot occur in ids), under one mutex: operations are a few
 *    string copies, so one lock never becomes the bottleneck a sharded map
 *    would fix.
 * 2. Messages are a ring of max_messages slots.  The task context is kept
 *    as compact JSON text, so no jansson value is shared between threads.
 * 3. Expiry is lazy: a read of an expired entry frees it; every 256th
 *    write sweeps the whole map, so abandoned conversations do not pile up.
 */
#include "memory/hot.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/time.h"

typedef struct {
    char *role, *content;
    int64_t at;
} hot_msg_t;

typedef struct entry {
    struct entry *next;
    char *key;
    size_t agent_prefix; /* length of "tenant\x1f agent\x1f" */
    hot_msg_t *msgs;     /* ring */
    int head, n;
    char *task;          /* JSON text or NULL */
    int64_t expires;
} entry_t;

typedef struct {
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t nbuckets;
    int count;
    int max_messages;
    int64_t ttl;
    int64_t (*now)(void);
    unsigned writes;
} local_t;

static uint64_t hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static char *make_key(const char *t, const char *a, const char *c, size_t *agent_prefix) {
    size_t lt = strlen(t), la = strlen(a), lc = c ? strlen(c) : 0;
    char *k = ap_malloc(lt + la + lc + 3);
    memcpy(k, t, lt);
    k[lt] = '\x1f';
    memcpy(k + lt + 1, a, la);
    k[lt + 1 + la] = '\x1f';
    if (lc) memcpy(k + lt + la + 2, c, lc);
    k[lt + la + lc + 2] = '\0';
    if (agent_prefix) *agent_prefix = lt + la + 2;
    return k;
}

static void entry_free(local_t *l, entry_t *e) {
    for (int i = 0; i < e->n; i++) {
        hot_msg_t *m = &e->msgs[(e->head + i) % l->max_messages];
        ap_free(m->role);
        ap_free(m->content);
    }
    ap_free(e->msgs);
    ap_free(e->task);
    ap_free(e->key);
    ap_free(e);
}

/* Unlinks and frees expired entries of the whole map.  Holds mu. */
static void sweep(local_t *l, int64_t now) {
    for (size_t b = 0; b < l->nbuckets; b++) {
        entry_t **pp = &l->buckets[b];
        while (*pp) {
            entry_t *e = *pp;
            if (e->expires <= now) {
                *pp = e->next;
                entry_free(l, e);
                l->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

/* Finds (create: or makes) the live entry for key.  Holds mu. */
static entry_t *find(local_t *l, const char *t, const char *a, const char *c, bool create,
                     int64_t now) {
    size_t ap;
    char *key = make_key(t, a, c, &ap);
    size_t b = hash(key) % l->nbuckets;
    for (entry_t **pp = &l->buckets[b]; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (strcmp(e->key, key) != 0) continue;
        if (e->expires <= now) { /* expired: gone */
            *pp = e->next;
            entry_free(l, e);
            l->count--;
            break;
        }
        ap_free(key);
        return e;
    }
    if (!create) {
        ap_free(key);
        return NULL;
    }
    entry_t *e = ap_calloc(1, sizeof *e);
    e->key = key;
    e->agent_prefix = ap;
    e->msgs = ap_calloc((size_t)l->max_messages, sizeof *e->msgs);
    e->next = l->buckets[b];
    l->buckets[b] = e;
    l->count++;
    return e;
}

static ap_rc check_ids(const char *t, const char *a, const char *c, ap_err_t *err) {
    if (!t || !*t || !a || !*a || !c || !*c)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "missing id",
                          "pass tenant, agent and conversation ids",
                          "hot context needs tenant_id, agent_id and conversation_id");
    return AP_OK;
}

static void after_write(local_t *l, entry_t *e, int64_t now) {
    e->expires = now + l->ttl;
    if (++l->writes % 256 == 0) sweep(l, now);
}

static ap_rc l_push(ap_mem_hot_t *h, const char *t, const char *a, const char *c,
                    const char *role, const char *content, ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    local_t *l = h->impl;
    pthread_mutex_lock(&l->mu);
    int64_t now = l->now();
    entry_t *e = find(l, t, a, c, true, now);
    hot_msg_t *m;
    if (e->n == l->max_messages) { /* drop the oldest */
        m = &e->msgs[e->head];
        ap_free(m->role);
        ap_free(m->content);
        e->head = (e->head + 1) % l->max_messages;
        e->n--;
    }
    m = &e->msgs[(e->head + e->n) % l->max_messages];
    m->role = ap_strdup(role ? role : "user");
    m->content = ap_strdup(content ? content : "");
    m->at = now;
    e->n++;
    after_write(l, e, now);
    pthread_mutex_unlock(&l->mu);
    return AP_OK;
}

static ap_rc l_set_task(ap_mem_hot_t *h, const char *t, const char *a, const char *c,
                        json_t *task, ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    local_t *l = h->impl;
    pthread_mutex_lock(&l->mu);
    int64_t now = l->now();
    entry_t *e = find(l, t, a, c, true, now);
    ap_free(e->task);
    e->task = text ? ap_strdup(text) : NULL;
    after_write(l, e, now);
    pthread_mutex_unlock(&l->mu);
    free(text);
    return AP_OK;
}

static ap_rc l_get(ap_mem_hot_t *h, const char *t, const char *a, const char *c, json_t **out,
                   ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    local_t *l = h->impl;
    pthread_mutex_lock(&l->mu);
    entry_t *e = find(l, t, a, c, false, l->now());
    if (!e) {
        pthread_mutex_unlock(&l->mu);
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "no hot context",
                          "push a message first; hot context expires an hour after its last write",
                          "no live hot context for conversation \"%.64s\"", c);
    }
    json_t *msgs = json_array();
    for (int i = 0; i < e->n; i++) {
        hot_msg_t *m = &e->msgs[(e->head + i) % l->max_messages];
        char at[AP_TIME_LEN];
        ap_time_format(m->at, at);
        json_array_append_new(msgs, json_pack("{s:s,s:s,s:s}", "role", m->role, "content",
                                              m->content, "at", at));
    }
    json_t *task = e->task ? json_loads(e->task, 0, NULL) : NULL;
    char exp[AP_TIME_LEN];
    ap_time_format(e->expires, exp);
    pthread_mutex_unlock(&l->mu);
    *out = json_pack("{s:o,s:o,s:s}", "messages", msgs, "task_context", task ? task : json_null(),
                     "expires_at", exp);
    return AP_OK;
}

static void l_clear(ap_mem_hot_t *h, const char *t, const char *a, const char *c) {
    if (!t || !a) return;
    local_t *l = h->impl;
    size_t ap;
    char *key = make_key(t, a, c, &ap);
    pthread_mutex_lock(&l->mu);
    for (size_t b = 0; b < l->nbuckets; b++) {
        entry_t **pp = &l->buckets[b];
        while (*pp) {
            entry_t *e = *pp;
            bool hit = c ? strcmp(e->key, key) == 0
                         : (e->agent_prefix == ap && memcmp(e->key, key, ap) == 0);
            if (hit) {
                *pp = e->next;
                entry_free(l, e);
                l->count--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
    ap_free(key);
}

static int l_count(ap_mem_hot_t *h) {
    local_t *l = h->impl;
    pthread_mutex_lock(&l->mu);
    sweep(l, l->now());
    int n = l->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void l_destroy(ap_mem_hot_t *h) {
    local_t *l = h->impl;
    sweep(l, INT64_MAX);
    ap_free(l->buckets);
    pthread_mutex_destroy(&l->mu);
    ap_free(l);
    ap_free(h);
}

ap_mem_hot_t *ap_mem_hot_local_new(int max_messages, int64_t ttl_ms, int64_t (*now_ms)(void)) {
    local_t *l = ap_calloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->nbuckets = 1024;
    l->buckets = ap_calloc(l->nbuckets, sizeof *l->buckets);
    l->max_messages = max_messages > 0 ? max_messages : AP_MEM_HOT_MAX_MESSAGES;
    l->ttl = ttl_ms > 0 ? ttl_ms : AP_MEM_HOT_TTL_MS;
    l->now = now_ms ? now_ms : ap_now_ms;
    ap_mem_hot_t *h = ap_calloc(1, sizeof *h);
    *h = (ap_mem_hot_t){l, l_push, l_set_task, l_get, l_clear, l_count, l_destroy};
    return h;
}

void ap_mem_hot_free(ap_mem_hot_t *h) {
    if (h) h->destroy(h);
}
