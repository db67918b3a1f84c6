/*
 * vec_store.c - partition key -> index registry (hash table with chaining
 * under one mutex).
 */
#include "vec/vec_store.h"

#include <pthread.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    ap_vec_t *ix;
    char key[];
} entry_t;

struct ap_vec_store {
    ap_vec_alloc_t al;
    ap_vec_params_t p;
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t nbuckets, n;
};

static ap_rc oom(ap_err_t *err) {
    return ap_err_set(err, AP_ERR_LIMIT, "out-of-memory", "out of memory", NULL,
                      "the vector store could not allocate");
}

static ap_rc check_key(const char *key, ap_err_t *err) {
    size_t n = strlen(key);
    if (n == 0 || n >= AP_VEC_KEY_MAX)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid partition key",
                          "use a key of 1 to 255 bytes", "key has %zu bytes", n);
    return AP_OK;
}

static size_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 29));
}

ap_rc ap_vec_store_new(const ap_vec_params_t *params, const ap_vec_alloc_t *alloc,
                       ap_vec_store_t **out, ap_err_t *err) {
    *out = NULL;
    /* validate the params once, with an index that is dropped at once */
    ap_vec_t *probe;
    ap_rc rc = ap_vec_new(params, alloc, &probe, err);
    if (rc) return rc;
    ap_vec_release(probe);
    if (!alloc) alloc = ap_vec_alloc_default();
    ap_vec_store_t *st = alloc->malloc(alloc->ctx, sizeof *st);
    if (!st) return oom(err);
    memset(st, 0, sizeof *st);
    st->al = *alloc;
    st->p = *params;
    st->nbuckets = 64;
    st->buckets = alloc->malloc(alloc->ctx, st->nbuckets * sizeof(entry_t *));
    if (!st->buckets) {
        alloc->free(alloc->ctx, st);
        return oom(err);
    }
    memset(st->buckets, 0, st->nbuckets * sizeof(entry_t *));
    pthread_mutex_init(&st->mu, NULL);
    *out = st;
    return AP_OK;
}

void ap_vec_store_free(ap_vec_store_t *st) {
    if (!st) return;
    for (size_t i = 0; i < st->nbuckets; i++) {
        for (entry_t *e = st->buckets[i], *next; e; e = next) {
            next = e->next;
            ap_vec_release(e->ix);
            st->al.free(st->al.ctx, e);
        }
    }
    st->al.free(st->al.ctx, st->buckets);
    pthread_mutex_destroy(&st->mu);
    st->al.free(st->al.ctx, st);
}

ap_rc ap_vec_store_key(char *buf, size_t cap, const char *tenant, const char *agent) {
    size_t a = strlen(tenant), b = strlen(agent);
    if (!a || !b || strchr(tenant, '/') || strchr(agent, '/') || a + b + 2 > cap ||
        a + b + 2 > AP_VEC_KEY_MAX)
        return AP_ERR_INVALID;
    memcpy(buf, tenant, a);
    buf[a] = '/';
    memcpy(buf + a + 1, agent, b + 1);
    return AP_OK;
}

static entry_t **find(ap_vec_store_t *st, const char *key) {
    entry_t **pe = &st->buckets[hash(key) & (st->nbuckets - 1)];
    while (*pe && strcmp((*pe)->key, key) != 0) pe = &(*pe)->next;
    return pe;
}

static void maybe_grow(ap_vec_store_t *st) {
    if (st->n < st->nbuckets) return;
    size_t nb = st->nbuckets * 2;
    entry_t **b = st->al.malloc(st->al.ctx, nb * sizeof(entry_t *));
    if (!b) return; /* longer chains, still correct */
    memset(b, 0, nb * sizeof(entry_t *));
    for (size_t i = 0; i < st->nbuckets; i++)
        for (entry_t *e = st->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t h = hash(e->key) & (nb - 1);
            e->next = b[h];
            b[h] = e;
        }
    st->al.free(st->al.ctx, st->buckets);
    st->buckets = b;
    st->nbuckets = nb;
}

/* Inserts or replaces (mutex held); takes over the caller's reference to ix. */
static ap_rc put_locked(ap_vec_store_t *st, const char *key, ap_vec_t *ix) {
    entry_t **pe = find(st, key);
    if (*pe) {
        ap_vec_release((*pe)->ix);
        (*pe)->ix = ix;
        return AP_OK;
    }
    size_t n = strlen(key);
    entry_t *e = st->al.malloc(st->al.ctx, sizeof *e + n + 1);
    if (!e) return AP_ERR_LIMIT;
    e->next = NULL;
    e->ix = ix;
    memcpy(e->key, key, n + 1);
    *pe = e;
    st->n++;
    maybe_grow(st);
    return AP_OK;
}

ap_rc ap_vec_store_get(ap_vec_store_t *st, const char *key, bool create, ap_vec_t **out,
                       ap_err_t *err) {
    *out = NULL;
    ap_rc rc = check_key(key, err);
    if (rc) return rc;
    pthread_mutex_lock(&st->mu);
    entry_t *e = *find(st, key);
    if (e) {
        ap_vec_retain(e->ix);
        *out = e->ix;
    } else if (create) {
        ap_vec_t *ix;
        rc = ap_vec_new(&st->p, &st->al, &ix, err);
        if (!rc && put_locked(st, key, ix)) {
            ap_vec_release(ix);
            rc = oom(err);
        }
        if (!rc) {
            ap_vec_retain(ix);
            *out = ix;
        }
    } else {
        rc = ap_err_set(err, AP_ERR_NOT_FOUND, NULL, "no vector index for this partition",
                        "add a vector first", "no index under key \"%s\"", key);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

ap_rc ap_vec_store_put(ap_vec_store_t *st, const char *key, ap_vec_t *ix, ap_err_t *err) {
    ap_rc rc = check_key(key, err);
    if (rc) return rc;
    if (ap_vec_params(ix).dim != st->p.dim)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "dimension mismatch",
                          "use an index of the store's dimension", "index has %u, store %u",
                          ap_vec_params(ix).dim, st->p.dim);
    ap_vec_retain(ix);
    pthread_mutex_lock(&st->mu);
    rc = put_locked(st, key, ix);
    pthread_mutex_unlock(&st->mu);
    if (rc) {
        ap_vec_release(ix);
        return oom(err);
    }
    return AP_OK;
}

bool ap_vec_store_drop(ap_vec_store_t *st, const char *key) {
    pthread_mutex_lock(&st->mu);
    entry_t **pe = find(st, key), *e = *pe;
    if (e) {
        *pe = e->next;
        st->n--;
    }
    pthread_mutex_unlock(&st->mu);
    if (!e) return false;
    ap_vec_release(e->ix);
    st->al.free(st->al.ctx, e);
    return true;
}

size_t ap_vec_store_count(ap_vec_store_t *st) {
    pthread_mutex_lock(&st->mu);
    size_t n = st->n;
    pthread_mutex_unlock(&st->mu);
    return n;
}

ap_rc ap_vec_store_each(ap_vec_store_t *st, void (*fn)(const char *key, ap_vec_t *ix, void *arg),
                        void *arg, ap_err_t *err) {
    pthread_mutex_lock(&st->mu);
    size_t n = st->n, i = 0;
    char **keys = st->al.malloc(st->al.ctx, (n ? n : 1) * sizeof(char *));
    ap_vec_t **ixs = st->al.malloc(st->al.ctx, (n ? n : 1) * sizeof(ap_vec_t *));
    char *pool = NULL;
    if (keys && ixs) pool = st->al.malloc(st->al.ctx, (n ? n : 1) * AP_VEC_KEY_MAX);
    if (!pool) {
        pthread_mutex_unlock(&st->mu);
        if (keys) st->al.free(st->al.ctx, keys);
        if (ixs) st->al.free(st->al.ctx, ixs);
        return oom(err);
    }
    for (size_t b = 0; b < st->nbuckets; b++)
        for (entry_t *e = st->buckets[b]; e; e = e->next) {
            keys[i] = pool + i * AP_VEC_KEY_MAX;
            strcpy(keys[i], e->key);
            ixs[i] = e->ix;
            ap_vec_retain(e->ix);
            i++;
        }
    pthread_mutex_unlock(&st->mu);
    for (i = 0; i < n; i++) {
        fn(keys[i], ixs[i], arg);
        ap_vec_release(ixs[i]);
    }
    st->al.free(st->al.ctx, pool);
    st->al.free(st->al.ctx, keys);
    st->al.free(st->al.ctx, ixs);
    return AP_OK;
}
