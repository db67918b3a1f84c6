/*
 * index.c - exact, partitioned vector search (index.h).
 *
 * 1. A partition is three parallel arrays (metadata, vectors, nothing
 *    else) plus an open-addressing map id → slot; removal moves the last
 *    entry into the hole, so scans stay dense.
 * 2. Partitions live in a chained hash map by key ("tenant/agent").
 * 3. The scan keeps the best k in a small sorted array (k is a recall
 *    limit, at most a few hundred), which beats a heap at these sizes.
 */
#include "memory/index.h"

#include <pthread.h>
#include <string.h>

#include "core/alloc.h"

struct ap_mem_part {
    struct ap_mem_part *next;
    char *key;
    bool loaded;
    int dim;
    int n, cap;
    ap_mem_meta_t *meta;
    float *vecs;
    int *slots; /* map: id hash → slot+1, 0 empty, -1 tombstone */
    int nslots, used;
};

struct ap_mem_index {
    pthread_rwlock_t lock;
    ap_mem_part_t **buckets;
    size_t nbuckets;
};

static uint64_t hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

ap_mem_index_t *ap_mem_index_new(void) {
    ap_mem_index_t *ix = ap_calloc(1, sizeof *ix);
    pthread_rwlock_init(&ix->lock, NULL);
    ix->nbuckets = 1024;
    ix->buckets = ap_calloc(ix->nbuckets, sizeof *ix->buckets);
    return ix;
}

static void part_free(ap_mem_part_t *p) {
    ap_free(p->key);
    ap_free(p->meta);
    ap_free(p->vecs);
    ap_free(p->slots);
    ap_free(p);
}

void ap_mem_index_free(ap_mem_index_t *ix) {
    if (!ix) return;
    for (size_t b = 0; b < ix->nbuckets; b++) {
        ap_mem_part_t *p = ix->buckets[b];
        while (p) {
            ap_mem_part_t *n = p->next;
            part_free(p);
            p = n;
        }
    }
    ap_free(ix->buckets);
    pthread_rwlock_destroy(&ix->lock);
    ap_free(ix);
}

static ap_mem_part_t *part_find(ap_mem_index_t *ix, const char *key, bool create) {
    size_t b = hash(key) % ix->nbuckets;
    for (ap_mem_part_t *p = ix->buckets[b]; p; p = p->next)
        if (strcmp(p->key, key) == 0) return p;
    if (!create) return NULL;
    ap_mem_part_t *p = ap_calloc(1, sizeof *p);
    p->key = ap_strdup(key);
    p->next = ix->buckets[b];
    ix->buckets[b] = p;
    return p;
}

/* The map slot holding id, or the slot where it would go (-1 if full). */
static int slot_of(const ap_mem_part_t *p, const char *id, bool *found) {
    *found = false;
    if (!p->nslots) return -1;
    size_t mask = (size_t)p->nslots - 1, i = hash(id) & mask;
    int tomb = -1;
    for (int probes = 0; probes < p->nslots; probes++, i = (i + 1) & mask) {
        int s = p->slots[i];
        if (s == 0) return tomb >= 0 ? tomb : (int)i;
        if (s < 0) {
            if (tomb < 0) tomb = (int)i;
            continue;
        }
        if (strcmp(p->meta[s - 1].id, id) == 0) {
            *found = true;
            return (int)i;
        }
    }
    return tomb;
}

static void rehash(ap_mem_part_t *p, int nslots) {
    ap_free(p->slots);
    p->slots = ap_calloc((size_t)nslots, sizeof *p->slots);
    p->nslots = nslots;
    p->used = p->n;
    for (int e = 0; e < p->n; e++) {
        bool f;
        int s = slot_of(p, p->meta[e].id, &f);
        p->slots[s] = e + 1;
    }
}

static bool part_put(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim) {
    if (p->n == 0 && p->dim == 0) p->dim = dim;
    if (dim != p->dim) return false;
    bool found;
    int s = slot_of(p, m->id, &found);
    if (found) {
        int e = p->slots[s] - 1;
        p->meta[e] = *m;
        memcpy(p->vecs + (size_t)e * dim, vec, (size_t)dim * sizeof *vec);
        return true;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->meta = ap_realloc(p->meta, (size_t)p->cap * sizeof *p->meta);
        p->vecs = ap_realloc(p->vecs, (size_t)p->cap * dim * sizeof *p->vecs);
    }
    int e = p->n++;
    p->meta[e] = *m;
    memcpy(p->vecs + (size_t)e * dim, vec, (size_t)dim * sizeof *vec);
    if ((p->used + 1) * 2 > p->nslots) {
        rehash(p, p->nslots ? p->nslots * 2 : 128);
    } else {
        s = slot_of(p, m->id, &found);
        if (p->slots[s] == 0) p->used++;
        p->slots[s] = e + 1;
    }
    return true;
}

static void part_remove(ap_mem_part_t *p, const char *id) {
    bool found;
    int s = slot_of(p, id, &found);
    if (!found) return;
    int e = p->slots[s] - 1;
    p->slots[s] = -1;
    int last = p->n - 1;
    if (e != last) {
        p->meta[e] = p->meta[last];
        memcpy(p->vecs + (size_t)e * p->dim, p->vecs + (size_t)last * p->dim,
               (size_t)p->dim * sizeof *p->vecs);
        int ls = slot_of(p, p->meta[e].id, &found);
        p->slots[ls] = e + 1;
    }
    p->n--;
}

bool ap_mem_part_add(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim) {
    return part_put(p, m, vec, dim);
}

ap_rc ap_mem_index_ensure(ap_mem_index_t *ix, const char *key, ap_mem_loader_fn load, void *ud,
                          ap_err_t *err) {
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    bool loaded = p && p->loaded;
    pthread_rwlock_unlock(&ix->lock);
    if (loaded) return AP_OK;
    pthread_rwlock_wrlock(&ix->lock);
    p = part_find(ix, key, true);
    ap_rc rc = AP_OK;
    if (!p->loaded) {
        ap_free(p->meta);
        ap_free(p->vecs);
        ap_free(p->slots);
        p->meta = NULL;
        p->vecs = NULL;
        p->slots = NULL;
        p->n = p->cap = p->dim = p->nslots = p->used = 0;
        rc = load(ud, p, err);
        p->loaded = rc == AP_OK;
    }
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

void ap_mem_index_put(ap_mem_index_t *ix, const char *key, const ap_mem_meta_t *m,
                      const float *vec, int dim) {
    pthread_rwlock_wrlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p && p->loaded) {
        if (!part_put(p, m, vec, dim)) p->loaded = false; /* dim changed: reload */
    }
    pthread_rwlock_unlock(&ix->lock);
}

void ap_mem_index_remove(ap_mem_index_t *ix, const char *key, const char *id) {
    pthread_rwlock_wrlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p && p->loaded) part_remove(p, id);
    pthread_rwlock_unlock(&ix->lock);
}

void ap_mem_index_drop(ap_mem_index_t *ix, const char *key) {
    pthread_rwlock_wrlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p) p->loaded = false;
    pthread_rwlock_unlock(&ix->lock);
}

void ap_mem_index_touch(ap_mem_index_t *ix, const char *key, const char *id, int64_t now_ms) {
    pthread_rwlock_wrlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p && p->loaded) {
        bool found;
        int s = slot_of(p, id, &found);
        if (found) {
            ap_mem_meta_t *m = &p->meta[p->slots[s] - 1];
            m->access_count++;
            m->last_access_ms = now_ms;
        }
    }
    pthread_rwlock_unlock(&ix->lock);
}

int ap_mem_index_search(ap_mem_index_t *ix, const char *key, const float *query, int dim, int k,
                        ap_mem_filter_fn filter, ap_mem_score_fn score, void *ud,
                        ap_mem_hit_t *out) {
    if (k <= 0) return 0;
    int n = 0;
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p && p->loaded && p->dim == dim) {
        for (int e = 0; e < p->n; e++) {
            const ap_mem_meta_t *m = &p->meta[e];
            if (filter && !filter(m, ud)) continue;
            const float *v = p->vecs + (size_t)e * dim;
            float dot = 0;
            for (int d = 0; d < dim; d++) dot += v[d] * query[d];
            double sc = score ? score(m, dot, ud) : dot;
            if (n == k && sc <= out[n - 1].score) continue;
            int i = n < k ? n++ : k - 1;
            while (i > 0 && out[i - 1].score < sc) {
                out[i] = out[i - 1];
                i--;
            }
            memcpy(out[i].id, m->id, sizeof out[i].id);
            out[i].similarity = dot;
            out[i].score = sc;
        }
    }
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

int ap_mem_index_size(ap_mem_index_t *ix, const char *key) {
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    int n = p && p->loaded ? p->n : -1;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}
