/*
 * hot.c - the in-process hot-context backend (hot.h).
 *
 * 1. A chained hash map keyed by "tenant\x1f agent\x1f conversation" (the
 *    separator cannot occur in ids), in HOT_SHARDS shards by the key's
 *    hash, each under its own mutex, so threads rarely wait for each
 *    other.  A shard's table doubles when it holds more entries than
 *    buckets (each entry keeps its hash, so a rehash reads no key), which
 *    keeps chains short at any number of conversations.
 * 2. Messages are a ring of max_messages slots.  The task context is kept
 *    as compact JSON text, so no jansson value is shared between threads.
 * 3. Expiry.  Every write sets expires = now + ttl, one ttl for the whole
 *    map, so the order of last writes is the order of expiry: entries sit
 *    in a list per shard in that order (a write moves its entry to the
 *    tail), and every operation first frees the expired ones at the head
 *    of its shard's list.  Each
 *    entry is freed once, for O(1) amortised work per operation and
 *    never a walk of the map.  A read of an expired entry frees it too.
 *    Should the wall clock step back, entries written since expire a
 *    little late, in list order; reads still see them gone on time.
 */
#include "memory/hot.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/time.h"

#define HOT_SHARDS 16 /* a power of two */

typedef struct {
    char *role, *content;
    int64_t at;
} hot_msg_t;

typedef struct entry {
    struct entry *next;          /* bucket chain */
    struct entry *older, *newer; /* the shard's list by last write (note 3) */
    uint64_t hash;
    char *key;
    size_t agent_prefix; /* length of "tenant\x1f agent\x1f" */
    hot_msg_t *msgs;     /* ring */
    int head, n;
    char *task; /* JSON text or NULL */
    int64_t expires;
} entry_t;

typedef struct {
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    int count;
    entry_t *oldest, *newest;
} shard_t;

typedef struct {
    shard_t shards[HOT_SHARDS];
    int max_messages;
    int64_t ttl;
    int64_t (*now)(void);
} local_t;

/* A key, its hash and its length up to the conversation. */
typedef struct {
    char *key;
    size_t agent_prefix;
    uint64_t hash;
} hkey_t;

static uint64_t hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 32);
}

static hkey_t make_key(const char *t, const char *a, const char *c) {
    size_t lt = strlen(t), la = strlen(a), lc = c ? strlen(c) : 0;
    char *k = ap_malloc(lt + la + lc + 3);
    memcpy(k, t, lt);
    k[lt] = '\x1f';
    memcpy(k + lt + 1, a, la);
    k[lt + 1 + la] = '\x1f';
    if (lc) memcpy(k + lt + la + 2, c, lc);
    k[lt + la + lc + 2] = '\0';
    return (hkey_t){k, lt + la + 2, hash(k)};
}

/* The shard of a hash: its top bits (the buckets use the low ones). */
static shard_t *shard_of(local_t *l, uint64_t h) {
    return &l->shards[h >> 60 & (HOT_SHARDS - 1)];
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

static void list_unlink(shard_t *s, entry_t *e) {
    if (e->older) e->older->newer = e->newer;
    else s->oldest = e->newer;
    if (e->newer) e->newer->older = e->older;
    else s->newest = e->older;
    e->older = e->newer = NULL;
}

static void list_append(shard_t *s, entry_t *e) {
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest) s->newest->newer = e;
    else s->oldest = e;
    s->newest = e;
}

/* Unlinks e from its chain and the list and frees it.  Holds s->mu. */
static void drop(local_t *l, shard_t *s, entry_t *e) {
    for (entry_t **pp = &s->buckets[e->hash & (s->nbuckets - 1)]; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    list_unlink(s, e);
    entry_free(l, e);
    s->count--;
}

/* Frees the expired entries at the head of the list (note 3).  Holds s->mu. */
static void expire(local_t *l, shard_t *s, int64_t now) {
    while (s->oldest && s->oldest->expires <= now) drop(l, s, s->oldest);
}

static void grow(shard_t *s) {
    size_t nb = s->nbuckets * 2;
    entry_t **b = ap_calloc(nb, sizeof *b);
    for (size_t i = 0; i < s->nbuckets; i++) {
        entry_t *e = s->buckets[i];
        while (e) {
            entry_t *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    ap_free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* Finds (create: or makes) the live entry for k in its shard s.  A new
 * entry takes k->key (then NULL); otherwise the caller frees it.  Holds
 * s->mu. */
static entry_t *find(local_t *l, shard_t *s, hkey_t *k, bool create, int64_t now) {
    expire(l, s, now);
    for (entry_t *e = s->buckets[k->hash & (s->nbuckets - 1)]; e; e = e->next) {
        if (e->hash != k->hash || strcmp(e->key, k->key) != 0) continue;
        if (e->expires > now) return e;
        drop(l, s, e); /* expired (the clock stepped back): gone */
        break;
    }
    if (!create) return NULL;
    if ((size_t)s->count >= s->nbuckets) grow(s);
    entry_t *e = ap_calloc(1, sizeof *e);
    e->key = k->key;
    k->key = NULL;
    e->hash = k->hash;
    e->agent_prefix = k->agent_prefix;
    e->msgs = ap_calloc((size_t)l->max_messages, sizeof *e->msgs);
    size_t b = k->hash & (s->nbuckets - 1);
    e->next = s->buckets[b];
    s->buckets[b] = e;
    list_append(s, e);
    s->count++;
    return e;
}

static ap_rc check_ids(const char *t, const char *a, const char *c, ap_err_t *err) {
    if (!t || !*t || !a || !*a || !c || !*c)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "missing id",
                          "pass tenant, agent and conversation ids",
                          "hot context needs tenant_id, agent_id and conversation_id");
    return AP_OK;
}

/* A write: the entry lives ttl from now and moves to the list's tail. */
static void after_write(local_t *l, shard_t *s, entry_t *e, int64_t now) {
    e->expires = now + l->ttl;
    if (s->newest != e) {
        list_unlink(s, e);
        list_append(s, e);
    }
}

static ap_rc l_push(ap_mem_hot_t *h, const char *t, const char *a, const char *c,
                    const char *role, const char *content, ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    local_t *l = h->impl;
    hkey_t k = make_key(t, a, c);
    char *r = ap_strdup(role ? role : "user"), *text = ap_strdup(content ? content : "");
    shard_t *s = shard_of(l, k.hash);
    pthread_mutex_lock(&s->mu);
    int64_t now = l->now();
    entry_t *e = find(l, s, &k, true, now);
    hot_msg_t *m;
    if (e->n == l->max_messages) { /* drop the oldest */
        m = &e->msgs[e->head];
        ap_free(m->role);
        ap_free(m->content);
        e->head = (e->head + 1) % l->max_messages;
        e->n--;
    }
    m = &e->msgs[(e->head + e->n) % l->max_messages];
    m->role = r;
    m->content = text;
    m->at = now;
    e->n++;
    after_write(l, s, e, now);
    pthread_mutex_unlock(&s->mu);
    ap_free(k.key);
    return AP_OK;
}

static ap_rc l_set_task(ap_mem_hot_t *h, const char *t, const char *a, const char *c,
                        json_t *task, ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    char *text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    char *copy = text ? ap_strdup(text) : NULL;
    free(text);
    local_t *l = h->impl;
    hkey_t k = make_key(t, a, c);
    shard_t *s = shard_of(l, k.hash);
    pthread_mutex_lock(&s->mu);
    int64_t now = l->now();
    entry_t *e = find(l, s, &k, true, now);
    char *old = e->task;
    e->task = copy;
    after_write(l, s, e, now);
    pthread_mutex_unlock(&s->mu);
    ap_free(old);
    ap_free(k.key);
    return AP_OK;
}

static ap_rc l_get(ap_mem_hot_t *h, const char *t, const char *a, const char *c, json_t **out,
                   ap_err_t *err) {
    ap_rc rc = check_ids(t, a, c, err);
    if (rc) return rc;
    local_t *l = h->impl;
    hkey_t k = make_key(t, a, c);
    shard_t *s = shard_of(l, k.hash);
    pthread_mutex_lock(&s->mu);
    entry_t *e = find(l, s, &k, false, l->now());
    ap_free(k.key);
    if (!e) {
        pthread_mutex_unlock(&s->mu);
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
    char *task_text = e->task ? ap_strdup(e->task) : NULL;
    char exp[AP_TIME_LEN];
    ap_time_format(e->expires, exp);
    pthread_mutex_unlock(&s->mu);
    json_t *task = task_text ? json_loads(task_text, 0, NULL) : NULL;
    ap_free(task_text);
    *out = json_pack("{s:o,s:o,s:s}", "messages", msgs, "task_context", task ? task : json_null(),
                     "expires_at", exp);
    return AP_OK;
}

/* One conversation: a lookup.  Every conversation of an agent: a walk of
 * every shard's list (rare: an agent deleted or its memory wiped). */
static void l_clear(ap_mem_hot_t *h, const char *t, const char *a, const char *c) {
    if (!t || !a) return;
    local_t *l = h->impl;
    hkey_t k = make_key(t, a, c);
    if (c) {
        shard_t *s = shard_of(l, k.hash);
        pthread_mutex_lock(&s->mu);
        entry_t *e = find(l, s, &k, false, l->now());
        if (e) drop(l, s, e);
        pthread_mutex_unlock(&s->mu);
    } else {
        for (int i = 0; i < HOT_SHARDS; i++) {
            shard_t *s = &l->shards[i];
            pthread_mutex_lock(&s->mu);
            for (entry_t *e = s->oldest, *next; e; e = next) {
                next = e->newer;
                if (e->agent_prefix == k.agent_prefix && memcmp(e->key, k.key, k.agent_prefix) == 0)
                    drop(l, s, e);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    ap_free(k.key);
}

static int l_count(ap_mem_hot_t *h) {
    local_t *l = h->impl;
    int n = 0;
    for (int i = 0; i < HOT_SHARDS; i++) {
        shard_t *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        expire(l, s, l->now());
        n += s->count;
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}

static void l_destroy(ap_mem_hot_t *h) {
    local_t *l = h->impl;
    for (int i = 0; i < HOT_SHARDS; i++) {
        shard_t *s = &l->shards[i];
        expire(l, s, INT64_MAX);
        ap_free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    ap_free(l);
    ap_free(h);
}

ap_mem_hot_t *ap_mem_hot_local_new(int max_messages, int64_t ttl_ms, int64_t (*now_ms)(void)) {
    local_t *l = ap_calloc(1, sizeof *l);
    for (int i = 0; i < HOT_SHARDS; i++) {
        shard_t *s = &l->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = 64;
        s->buckets = ap_calloc(s->nbuckets, sizeof *s->buckets);
    }
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
