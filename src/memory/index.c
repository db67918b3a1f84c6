/*
 * index.c - partitioned vector search by a blended score (index.h).
 *
 * 1. Partitions live in a chained hash map by key under one rwlock, held
 *    only to find or create a partition; each partition has its own
 *    writer-preferring rwlock.  Partitions are never freed before the
 *    index, so a pointer found under the map's lock stays valid.
 * 2. The exact scan has two stages, because a scan of float vectors is
 *    bound by memory bandwidth (100k × 384 floats are 150 MB per query):
 *    each entry has an int8 code (v / scale rounded, scale = max|v| / 127);
 *    the first stage scores every entry with the int8 dot product (a
 *    quarter of the bytes) and keeps the best 4k + 32, the second
 *    re-scores those with the float vectors.  The quantisation error of a
 *    cosine is about 0.005, far inside the over-fetch: the result is the
 *    exact one in practice.  Entries whose score cannot reach the k-th
 *    best even at their approximate similarity are not scored, nor is
 *    their metadata read: each entry carries its prior (ap_mem_prior_fn,
 *    computed when its metadata changes), its own bound of the score's
 *    other terms, in an array the scan reads alongside the codes.  The
 *    int8 products come from dots.c, a block of SCAN_BLOCK at a time.
 * 3. The score is at most w_sim · max(sim, 0) + B, B from the partition's
 *    maxima of importance, creation time and access count (bounds; the
 *    caller turns them into B).  The graph path pulls candidates from an
 *    HNSW iterator (src/vec, the filter applied inside the graph walk) in
 *    batches of decreasing similarity and stops as soon as
 *    w_sim · max(s, 0) + B < the k-th best score, s the smallest
 *    similarity of the last batch: no entry the stream has not yet given
 *    can then enter the top k.  The result is exact with respect to the
 *    stream; how good the stream is depends on the data (next point).
 *    Past max_candidates pulled the search gives up and scans.
 * 4. Calibration.  A graph is only worth using where it reaches the
 *    recall target (AP_MEM_RECALL_TARGET against the exact scan, with the
 *    same filter and score) at less CPU than the scan.  On clustered
 *    embeddings it does with a small beam; on near-uniform vectors, such
 *    as the builtin hashed n-gram embedder's, HNSW needs a beam so wide
 *    that the scan is cheaper (docs/memory.md has the figures).  So a new
 *    graph starts in LEARN: searches scan (exact), and every second one
 *    is handed to ap_mem_index_calibrate (a background thread), which
 *    runs the scan and the graph at each beam of ap_mem_cal_efs, timing
 *    each on the thread's CPU clock.  After CAL_WINDOW samples the
 *    smallest beam that reaches the target more cheaply than the scan is
 *    chosen (USE), or the graph is set aside (OFF) until the partition
 *    has doubled.  In USE, one search in CAL_MONITOR is checked at the
 *    chosen beam, and a window that misses the target (or costs more than
 *    the scan) sends the partition back to LEARN.
 * 5. A graph is built in the background: the vectors are copied under
 *    the vec index's read lock (ap_vec_copy), linked without any lock
 *    held, and the changes made meanwhile (a log kept while `building`)
 *    are replayed under the partition's write lock before it is
 *    installed.
 * 6. Change sequences: every entry carries its row's sequence and a
 *    change older than the entry's is refused, so a late put cannot undo
 *    a newer delta; the partition's own sequence moves on by one when a
 *    commit of this process is applied in order, or to the delta's.
 */
#include "memory/index_internal.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

const int ap_mem_cal_efs[CAL_NEFS] = {32, 64, 128, 256, 512, 1024, 2048};
#define CAL_WINDOW 32
#define CAL_LEARN_EVERY 2
#define CAL_MONITOR 128
#define GRAPH_EXACT_BELOW 1000 /* a graph index's own exact threshold */

#define SCAN_BLOCK 256 /* entries scored by one call of the int8 kernel */

struct ap_mem_index {
    pthread_rwlock_t lock; /* the map of partitions */
    int hnsw_min;          /* live entries from which a partition gets a graph */
    int max_candidates;
    ap_mem_dots_fn dots;   /* the int8 kernel (dots.c): the best for this CPU */
    ap_mem_prior_fn prior; /* NULL: none */
    ap_mem_part_t **buckets;
    size_t nbuckets;
};

static uint64_t hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

ap_mem_index_t *ap_mem_index_new(void) {
    ap_mem_index_t *ix = ap_calloc(1, sizeof *ix);
    pthread_rwlock_init(&ix->lock, NULL);
    ix->nbuckets = 1024;
    ix->buckets = ap_calloc(ix->nbuckets, sizeof *ix->buckets);
    ix->dots = ap_mem_dots_best(NULL);
    ix->hnsw_min = AP_MEM_HNSW_MIN;
    ix->max_candidates = AP_MEM_MAX_CANDIDATES;
    return ix;
}

bool ap_mem_index_use_kernel(ap_mem_index_t *ix, const char *name) {
    const char *names[8];
    ap_mem_dots_fn fns[8];
    int n = ap_mem_dots_kernels(names, fns, 8);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) {
            ix->dots = fns[i];
            return true;
        }
    return false;
}

/* ---------- partitions ---------- */

static void log_free(ap_mem_part_t *p) {
    while (p->log) {
        pending_t *x = p->log;
        p->log = x->next;
        ap_free(x->vec);
        ap_free(x);
    }
    p->tail = &p->log;
}

static void log_add(ap_mem_part_t *p, const char *id, uint32_t label, const float *vec) {
    pending_t *x = ap_calloc(1, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->label = label;
    if (vec) {
        x->vec = ap_malloc(sizeof *x->vec * (size_t)p->dim);
        memcpy(x->vec, vec, sizeof *x->vec * (size_t)p->dim);
    }
    if (!p->tail) p->tail = &p->log;
    *p->tail = x;
    p->tail = &x->next;
}

static void cal_reset(ap_mem_part_t *p, int state) {
    p->cal = state;
    p->samples = 0;
    p->total = p->scan_cpu = 0;
    memset(p->found, 0, sizeof p->found);
    memset(p->cpu, 0, sizeof p->cpu);
}

/* Empties a partition (write lock held). */
static void part_reset(ap_mem_part_t *p) {
    ap_vec_release(p->vec);
    p->vec = NULL;
    p->has_graph = false;
    p->gdeleted = 0;
    ap_free(p->meta);
    ap_free(p->labels);
    ap_free(p->novec);
    ap_free(p->codes);
    ap_free(p->scales);
    ap_free(p->priors);
    ap_free(p->slots);
    ap_free(p->lab2e);
    ap_free(p->labfree);
    p->meta = NULL;
    p->labels = NULL;
    p->novec = NULL;
    p->codes = NULL;
    p->scales = NULL;
    p->priors = NULL;
    p->slots = NULL;
    p->lab2e = NULL;
    p->labfree = NULL;
    p->n = p->cap = p->dim = p->nslots = p->used = 0;
    p->labcap = p->nextlab = p->nfree = p->freecap = 0;
    p->bounds = (ap_mem_bounds_t){0};
    p->seq = 0;
    log_free(p); /* a running build sees another gen and gives up */
    p->building = false;
    p->build_failed = false;
    p->gen++;
    p->ef = 0;
    p->off_n = 0;
    p->from_file = false;
    p->changes = p->saved = 0;
    cal_reset(p, CAL_NONE);
}

static void part_free(ap_mem_part_t *p) {
    part_reset(p);
    pthread_rwlock_destroy(&p->lock);
    pthread_mutex_destroy(&p->cal_mu);
    ap_free(p->key);
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

static ap_mem_part_t *find_locked(ap_mem_index_t *ix, const char *key) {
    size_t b = hash(key) % ix->nbuckets;
    for (ap_mem_part_t *p = ix->buckets[b]; p; p = p->next)
        if (strcmp(p->key, key) == 0) return p;
    return NULL;
}

ap_mem_part_t *ap_mem_index_find(ap_mem_index_t *ix, const char *key) {
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = find_locked(ix, key);
    pthread_rwlock_unlock(&ix->lock);
    return p;
}

static ap_mem_part_t *find_or_create(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (p) return p;
    pthread_rwlock_wrlock(&ix->lock);
    p = find_locked(ix, key);
    if (!p) {
        p = ap_calloc(1, sizeof *p);
        p->key = ap_strdup(key);
        p->prior = ix->prior;
        pthread_rwlockattr_t ra;
        pthread_rwlockattr_init(&ra);
#ifdef __GLIBC__
        /* writers first: a stream of searches must not starve a remember */
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
        pthread_rwlock_init(&p->lock, &ra);
        pthread_rwlockattr_destroy(&ra);
        pthread_mutex_init(&p->cal_mu, NULL);
        p->tail = &p->log;
        size_t b = hash(key) % ix->nbuckets;
        p->next = ix->buckets[b];
        ix->buckets[b] = p;
    }
    pthread_rwlock_unlock(&ix->lock);
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

static int entry_of(const ap_mem_part_t *p, const char *id) {
    bool found;
    int s = slot_of(p, id, &found);
    return found ? p->slots[s] - 1 : -1;
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

static float quantize(const float *v, int dim, int8_t *out) {
    float mx = 0;
    for (int d = 0; d < dim; d++) mx = fabsf(v[d]) > mx ? fabsf(v[d]) : mx;
    float scale = mx > 0 ? mx / 127.0f : 0;
    for (int d = 0; d < dim; d++) out[d] = scale > 0 ? (int8_t)lrintf(v[d] / scale) : 0;
    return scale;
}

static void bounds_note(ap_mem_part_t *p, const ap_mem_meta_t *m) {
    if (m->importance > p->bounds.max_importance) p->bounds.max_importance = m->importance;
    if (m->created_ms > p->bounds.max_created_ms) p->bounds.max_created_ms = m->created_ms;
    if (m->access_count > p->bounds.max_access_count) p->bounds.max_access_count = m->access_count;
}

/* After entry e's metadata changed (write lock held): the partition's
 * maxima and the entry's prior.  The float is rounded up a little so it
 * stays an upper bound of the double. */
static void meta_noted(ap_mem_part_t *p, int e) {
    const ap_mem_meta_t *m = &p->meta[e];
    bounds_note(p, m);
    p->priors[e] = p->prior ? (float)p->prior(m) + 1e-6f : INFINITY;
}

static void bounds_recompute(ap_mem_part_t *p) {
    p->bounds = (ap_mem_bounds_t){0};
    for (int e = 0; e < p->n; e++) bounds_note(p, &p->meta[e]);
}

static uint32_t label_alloc(ap_mem_part_t *p) {
    if (p->nfree) return p->labfree[--p->nfree];
    uint32_t l = p->nextlab++;
    if (l >= p->labcap) {
        uint32_t ncap = p->labcap ? p->labcap * 2 : 128;
        p->lab2e = ap_realloc(p->lab2e, sizeof *p->lab2e * ncap);
        for (uint32_t i = p->labcap; i < ncap; i++) p->lab2e[i] = -1;
        p->labcap = ncap;
    }
    return l;
}

static void label_free(ap_mem_part_t *p, uint32_t l) {
    p->lab2e[l] = -1;
    if (p->nfree == p->freecap) {
        p->freecap = p->freecap ? p->freecap * 2 : 64;
        p->labfree = ap_realloc(p->labfree, sizeof *p->labfree * p->freecap);
    }
    p->labfree[p->nfree++] = l;
}

ap_vec_t *ap_mem_part_new_vec(int dim) {
    ap_vec_params_t vp = ap_vec_params_default((uint32_t)dim);
    vp.ef_construction = 100;
    vp.exact_threshold = UINT32_MAX; /* vectors only until a graph is built */
    ap_vec_t *v = NULL;
    if (ap_vec_new(&vp, NULL, &v, NULL)) return NULL;
    return v;
}

/* Keeps the vec index (and the log of a running build) in step; false
 * when the vec index refuses the vector (a zero vector: scan only). */
static bool vec_note(ap_mem_part_t *p, const char *id, uint32_t label, const float *vec) {
    if (p->building) log_add(p, id, label, vec);
    if (vec) return ap_vec_add(p->vec, label, id, vec, NULL) == AP_OK;
    ap_vec_delete(p->vec, 0, id, NULL);
    return true;
}

bool ap_mem_part_novec(const ap_mem_part_t *p, int e) {
    return p->novec[e] != 0;
}

/* A new dense entry e = n (arrays grown, map updated). */
static int entry_append(ap_mem_part_t *p, const ap_mem_meta_t *m, uint32_t label) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->meta = ap_realloc(p->meta, (size_t)p->cap * sizeof *p->meta);
        p->labels = ap_realloc(p->labels, (size_t)p->cap * sizeof *p->labels);
        p->novec = ap_realloc(p->novec, (size_t)p->cap);
        p->codes = ap_realloc(p->codes, (size_t)p->cap * (size_t)p->dim);
        p->scales = ap_realloc(p->scales, (size_t)p->cap * sizeof *p->scales);
        p->priors = ap_realloc(p->priors, (size_t)p->cap * sizeof *p->priors);
    }
    int e = p->n++;
    p->meta[e] = *m;
    p->labels[e] = label;
    p->novec[e] = 0;
    p->lab2e[label] = e;
    if ((p->used + 1) * 2 > p->nslots) {
        rehash(p, p->nslots ? p->nslots * 2 : 128);
    } else {
        bool found;
        int s = slot_of(p, m->id, &found);
        if (p->slots[s] == 0) p->used++;
        p->slots[s] = e + 1;
    }
    meta_noted(p, e);
    return e;
}

void ap_mem_part_adopt(ap_mem_part_t *p, const ap_mem_meta_t *m, uint32_t label,
                       const float *vec) {
    while (label >= p->labcap) {
        uint32_t ncap = p->labcap ? p->labcap * 2 : 128;
        p->lab2e = ap_realloc(p->lab2e, sizeof *p->lab2e * ncap);
        for (uint32_t i = p->labcap; i < ncap; i++) p->lab2e[i] = -1;
        p->labcap = ncap;
    }
    if (label >= p->nextlab) p->nextlab = label + 1;
    int e = entry_append(p, m, label);
    if (vec) {
        p->scales[e] = quantize(vec, p->dim, p->codes + (size_t)e * p->dim);
    } else {
        memset(p->codes + (size_t)e * p->dim, 0, (size_t)p->dim);
        p->scales[e] = 0;
        p->novec[e] = 1;
    }
}

static bool part_put(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim) {
    if (dim <= 0) return false;
    if (!p->vec) {
        p->vec = ap_mem_part_new_vec(dim);
        if (!p->vec) return false;
        p->dim = dim;
    }
    if (dim != p->dim) return false;
    int e = entry_of(p, m->id);
    if (e >= 0) {
        /* an id's vector never changes within a partition (another
         * embedder is another partition): the metadata only */
        if (m->seq && p->meta[e].seq > m->seq) return false; /* older than what is here */
        p->meta[e] = *m;
        meta_noted(p, e);
        p->changes++;
        return true;
    }
    uint32_t label = label_alloc(p);
    bool in_vec = vec_note(p, m->id, label, vec);
    e = entry_append(p, m, label);
    p->novec[e] = !in_vec;
    p->scales[e] = quantize(vec, dim, p->codes + (size_t)e * dim);
    p->changes++;
    return true;
}

static void part_remove(ap_mem_part_t *p, const char *id) {
    bool found;
    int s = slot_of(p, id, &found);
    if (!found) return;
    int e = p->slots[s] - 1;
    vec_note(p, id, p->labels[e], NULL);
    if (p->has_graph) p->gdeleted++;
    label_free(p, p->labels[e]);
    p->slots[s] = -1;
    int last = p->n - 1;
    if (e != last) {
        p->meta[e] = p->meta[last];
        p->labels[e] = p->labels[last];
        p->novec[e] = p->novec[last];
        p->lab2e[p->labels[e]] = e;
        memcpy(p->codes + (size_t)e * p->dim, p->codes + (size_t)last * p->dim, (size_t)p->dim);
        p->scales[e] = p->scales[last];
        p->priors[e] = p->priors[last];
        int ls = slot_of(p, p->meta[e].id, &found);
        p->slots[ls] = e + 1;
    }
    p->n--;
    p->changes++;
}

bool ap_mem_part_add(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim) {
    return part_put(p, m, vec, dim);
}

bool ap_mem_part_update(ap_mem_part_t *p, const ap_mem_meta_t *m) {
    int e = entry_of(p, m->id);
    if (e < 0 || (m->seq && p->meta[e].seq > m->seq)) return false;
    p->meta[e] = *m;
    meta_noted(p, e);
    p->changes++;
    return true;
}

void ap_mem_part_remove(ap_mem_part_t *p, const char *id) {
    part_remove(p, id);
}

bool ap_mem_part_has(ap_mem_part_t *p, const char *id) {
    return entry_of(p, id) >= 0;
}

int ap_mem_part_size(ap_mem_part_t *p) {
    return p->n;
}

int64_t ap_mem_part_seq(ap_mem_part_t *p) {
    return p->seq;
}

void ap_mem_part_set_seq(ap_mem_part_t *p, int64_t seq) {
    p->seq = seq;
}

void ap_mem_part_clear(ap_mem_part_t *p) {
    part_reset(p);
}

const char *ap_mem_part_key(ap_mem_part_t *p) {
    return p->key;
}

/* ---------- loading and changes ---------- */

ap_rc ap_mem_index_ensure(ap_mem_index_t *ix, const char *key, ap_mem_loader_fn load, void *ud,
                          ap_err_t *err) {
    ap_mem_part_t *p = find_or_create(ix, key);
    pthread_rwlock_rdlock(&p->lock);
    bool loaded = p->loaded;
    pthread_rwlock_unlock(&p->lock);
    if (loaded) return AP_OK;
    pthread_rwlock_wrlock(&p->lock);
    ap_rc rc = AP_OK;
    if (!p->loaded) {
        part_reset(p);
        rc = load(ud, p, err);
        if (rc) part_reset(p);
        p->loaded = rc == AP_OK;
        /* unsaved: what a file load applied after the file, or all of a
         * database load */
        if (p->loaded) bounds_recompute(p);
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

/* The partition, write-locked, when it is loaded; NULL otherwise. */
static ap_mem_part_t *lock_loaded(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return NULL;
    pthread_rwlock_wrlock(&p->lock);
    if (p->loaded) return p;
    pthread_rwlock_unlock(&p->lock);
    return NULL;
}

static void seq_step(ap_mem_part_t *p, int64_t seq) {
    if (seq > 0 && p->seq == seq - 1) p->seq = seq;
}

int64_t ap_mem_index_seq(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return -1;
    pthread_rwlock_rdlock(&p->lock);
    int64_t s = p->loaded ? p->seq : -1;
    pthread_rwlock_unlock(&p->lock);
    return s;
}

bool ap_mem_index_apply(ap_mem_index_t *ix, const char *key, int64_t to_seq, ap_mem_apply_fn fn,
                        void *ud) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return false;
    bool ran = p->seq < to_seq;
    if (ran) {
        fn(ud, p);
        p->seq = to_seq;
        p->changes++;
    }
    pthread_rwlock_unlock(&p->lock);
    return ran;
}

void ap_mem_index_put(ap_mem_index_t *ix, const char *key, const ap_mem_meta_t *m,
                      const float *vec, int dim, int64_t seq) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    if (dim != p->dim && p->dim) {
        p->loaded = false; /* another dimension: reload */
    } else {
        part_put(p, m, vec, dim);
        seq_step(p, seq);
    }
    pthread_rwlock_unlock(&p->lock);
}

void ap_mem_index_remove(ap_mem_index_t *ix, const char *key, const char *id, int64_t seq) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    part_remove(p, id);
    seq_step(p, seq);
    pthread_rwlock_unlock(&p->lock);
}

void ap_mem_index_advance(ap_mem_index_t *ix, const char *key, int64_t seq) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    seq_step(p, seq);
    pthread_rwlock_unlock(&p->lock);
}

void ap_mem_index_accessed(ap_mem_index_t *ix, const char *key, const char (*ids)[AP_UUID_LEN],
                           const int64_t *counts, int64_t last_ms, int n, int64_t seq) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    if (seq > 0 && p->seq == seq - 1) {
        for (int i = 0; i < n; i++) {
            int e = entry_of(p, ids[i]);
            if (e < 0) continue;
            ap_mem_meta_t *m = &p->meta[e];
            m->access_count += counts[i];
            if (last_ms > m->last_access_ms) m->last_access_ms = last_ms;
            m->seq = seq;
            meta_noted(p, e);
        }
        p->seq = seq;
        p->changes++;
    }
    pthread_rwlock_unlock(&p->lock);
}

void ap_mem_index_drop(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    p->loaded = false;
    pthread_rwlock_unlock(&p->lock);
}

/* ---------- search ---------- */

typedef struct {
    int e;
    float sim;
    double score;
} cand_t;

/* Inserts into a sorted best-first array of capacity cap holding *n. */
static void keep(cand_t *c, int *n, int cap, cand_t x) {
    if (*n == cap && x.score <= c[*n - 1].score) return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && c[i - 1].score < x.score) {
        c[i] = c[i - 1];
        i--;
    }
    c[i] = x;
}

static double score_of(const ap_mem_query_t *q, const ap_mem_meta_t *m, float sim) {
    return q->score ? q->score(m, sim, q->ud) : sim;
}

static double bound_of(const ap_mem_part_t *p, const ap_mem_query_t *q) {
    return q->bound ? q->bound(&p->bounds, q->ud) : 0;
}

static int emit(const ap_mem_part_t *p, const cand_t *best, int n, ap_mem_hit_t *out) {
    for (int i = 0; i < n; i++) {
        memcpy(out[i].id, p->meta[best[i].e].id, sizeof out[i].id);
        out[i].similarity = best[i].sim;
        out[i].score = best[i].score;
    }
    return n;
}

/* The exact two-stage scan (read lock held). */
static int search_scan(ap_mem_index_t *ix, ap_mem_part_t *p, const float *query, int k,
                       const ap_mem_query_t *q, ap_mem_hit_t *out) {
    int dim = p->dim, r = k * 4 + 32, nc = 0, n = 0;
    cand_t *c = ap_malloc(sizeof *c * (size_t)r);
    int8_t *qc = ap_malloc((size_t)dim);
    float qs = quantize(query, dim, qc);
    double w = q->w_sim, bound = bound_of(p, q);
    float floor_sim = q->min_similarity - 0.02f; /* the int8 error is about 0.005 */
    int32_t dots[SCAN_BLOCK];
    for (int e0 = 0; e0 < p->n; e0 += SCAN_BLOCK) {
        int nb = p->n - e0 < SCAN_BLOCK ? p->n - e0 : SCAN_BLOCK;
        ix->dots(p->codes + (size_t)e0 * dim, nb, qc, dim, dots);
        for (int i = 0; i < nb; i++) {
            int e = e0 + i;
            float approx = (float)dots[i] * p->scales[e] * qs;
            if (approx < floor_sim) continue;
            double be = q->use_prior && p->priors[e] < bound ? p->priors[e] : bound;
            if (nc == r && w * (approx > 0 ? approx : 0) + be <= c[nc - 1].score) continue;
            const ap_mem_meta_t *m = &p->meta[e];
            if (q->filter && !q->filter(m, q->ud)) continue;
            keep(c, &nc, r, (cand_t){e, approx, score_of(q, m, approx)});
        }
    }
    /* second stage: the float vectors */
    cand_t *best = ap_malloc(sizeof *best * (size_t)k);
    float *v = ap_malloc(sizeof *v * (size_t)dim);
    for (int i = 0; i < nc; i++) {
        int e = c[i].e;
        float dot = 0;
        if (ap_vec_get(p->vec, 0, p->meta[e].id, v) == AP_OK) dot = ap_vec_dot(v, query, (uint32_t)dim);
        if (dot < q->min_similarity) continue;
        keep(best, &n, k, (cand_t){e, dot, score_of(q, &p->meta[e], dot)});
    }
    emit(p, best, n, out);
    ap_free(v);
    ap_free(best);
    ap_free(c);
    ap_free(qc);
    return n;
}

typedef struct {
    const ap_mem_part_t *p;
    const ap_mem_query_t *q;
} accept_t;

static bool graph_accept(uint64_t label, const char *id, void *arg) {
    (void)id;
    const accept_t *a = arg;
    const ap_mem_part_t *p = a->p;
    if (label >= p->labcap || p->lab2e[label] < 0) return false;
    return !a->q->filter || a->q->filter(&p->meta[p->lab2e[label]], a->q->ud);
}

/* The graph path (read lock held): pulls batches of ef until the bound
 * says no unseen entry can enter the top k.  -1 when it reached cap
 * (the caller scans instead). */
static int search_graph(ap_mem_part_t *p, const float *query, int k, const ap_mem_query_t *q,
                        int ef, int cap, ap_mem_hit_t *out, int *pulled) {
    accept_t a = {p, q};
    ap_vec_query_opts_t o = {.ef = (uint32_t)ef, .filter = graph_accept, .filter_arg = &a};
    ap_vec_iter_t *it;
    *pulled = 0;
    if (ap_vec_iter_new(p->vec, query, &o, &it, NULL)) return -1;
    double w = q->w_sim, bound = bound_of(p, q);
    ap_vec_hit_t *buf = ap_malloc(sizeof *buf * (size_t)ef);
    cand_t *best = ap_malloc(sizeof *best * (size_t)k);
    int n = 0;
    bool capped = false;
    for (;;) {
        size_t got;
        if (ap_vec_iter_next(it, buf, (size_t)ef, &got, NULL) || got == 0) break;
        for (size_t i = 0; i < got; i++) {
            int e = p->lab2e[buf[i].label];
            float sim = buf[i].score;
            if (sim < q->min_similarity) continue;
            keep(best, &n, k, (cand_t){e, sim, score_of(q, &p->meta[e], sim)});
        }
        *pulled += (int)got;
        float smin = buf[got - 1].score;
        if (smin < q->min_similarity) break;
        if (n == k && w * (smin > 0 ? smin : 0) + bound < best[k - 1].score) break;
        if (*pulled >= cap) {
            capped = true;
            break;
        }
    }
    ap_vec_iter_free(it);
    if (!capped) emit(p, best, n, out);
    ap_free(best);
    ap_free(buf);
    return capped ? -1 : n;
}

int ap_mem_index_search(ap_mem_index_t *ix, const char *key, const float *query, int dim, int k,
                        const ap_mem_query_t *q, ap_mem_hit_t *out, ap_mem_search_info_t *info) {
    ap_mem_search_info_t dummy;
    if (!info) info = &dummy;
    *info = (ap_mem_search_info_t){AP_MEM_PATH_NONE, 0, false};
    if (k <= 0 || dim <= 0) return 0;
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return 0;
    /* cosine on both paths: the graph normalises what it is given */
    float *qn = ap_malloc(sizeof *qn * (size_t)dim);
    memcpy(qn, query, sizeof *qn * (size_t)dim);
    if (!ap_vec_normalize(qn, (uint32_t)dim)) memset(qn, 0, sizeof *qn * (size_t)dim);
    query = qn;
    pthread_rwlock_rdlock(&p->lock);
    int n = 0;
    if (p->loaded && p->dim == dim && p->n > 0) {
        bool exact = q->flags & AP_MEM_SEARCH_EXACT;
        int cal = p->has_graph ? p->cal : CAL_NONE;
        if (!exact && (cal == CAL_LEARN || cal == CAL_USE)) {
            uint64_t c = __atomic_fetch_add(&p->searches, 1, __ATOMIC_RELAXED);
            info->sample = c % (cal == CAL_LEARN ? CAL_LEARN_EVERY : CAL_MONITOR) == 0;
        }
        n = -1;
        if (!exact && cal == CAL_USE) {
            n = search_graph(p, query, k, q, p->ef, ix->max_candidates, out, &info->pulled);
            info->path = n < 0 ? AP_MEM_PATH_GRAPH_CAPPED : AP_MEM_PATH_GRAPH;
        }
        if (n < 0) {
            n = search_scan(ix, p, query, k, q, out);
            if (info->path == AP_MEM_PATH_NONE) info->path = AP_MEM_PATH_SCAN;
        }
    }
    pthread_rwlock_unlock(&p->lock);
    ap_free(qn);
    return n;
}

/* ---------- calibration ---------- */

static int overlap(const ap_mem_hit_t *a, int na, const ap_mem_hit_t *b, int nb) {
    int f = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!strcmp(a[i].id, b[j].id)) {
                f++;
                break;
            }
    return f;
}

/* Chooses after a window (cal_mu held): the smallest beam that reaches
 * the target more cheaply than the scan. */
static void cal_decide(ap_mem_part_t *p) {
    double scan = p->scan_cpu / p->samples;
    if (p->cal == CAL_LEARN) {
        int pick = -1;
        for (int j = 0; j < CAL_NEFS && pick < 0; j++)
            if (p->found[j] >= AP_MEM_RECALL_TARGET * p->total && p->cpu[j] / p->samples < scan)
                pick = j;
        if (pick >= 0) {
            p->ef = ap_mem_cal_efs[pick];
            cal_reset(p, CAL_USE);
        } else {
            p->off_n = p->n;
            cal_reset(p, CAL_OFF);
        }
    } else if (p->cal == CAL_USE) {
        int j = 0;
        while (j < CAL_NEFS - 1 && ap_mem_cal_efs[j] < p->ef) j++;
        bool ok = p->found[j] >= AP_MEM_RECALL_TARGET * p->total && p->cpu[j] / p->samples < scan;
        cal_reset(p, ok ? CAL_USE : CAL_LEARN);
    }
}

void ap_mem_index_calibrate(ap_mem_index_t *ix, const char *key, const float *query, int dim,
                            int k, const ap_mem_query_t *q) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p || k <= 0 || k > 1000) return;
    ap_mem_hit_t *truth = ap_malloc(sizeof *truth * (size_t)k),
                 *got = ap_malloc(sizeof *got * (size_t)k);
    double found[CAL_NEFS] = {0}, cpu[CAL_NEFS] = {0}, scan = 0;
    int cal = CAL_NONE, ef = 0, nt = 0;
    bool ok = false;
    pthread_rwlock_rdlock(&p->lock);
    if (p->loaded && p->has_graph && p->dim == dim && (p->cal == CAL_LEARN || p->cal == CAL_USE)) {
        cal = p->cal;
        ef = p->ef;
        double t0 = cpu_ms();
        nt = search_scan(ix, p, query, k, q, truth);
        scan = cpu_ms() - t0;
        ok = true;
    }
    pthread_rwlock_unlock(&p->lock);
    /* each beam under its own read lock, so a writer waits one search at most */
    for (int j = 0; ok && j < CAL_NEFS; j++) {
        if (cal == CAL_USE && ap_mem_cal_efs[j] != ef) continue;
        pthread_rwlock_rdlock(&p->lock);
        if (p->loaded && p->has_graph && p->dim == dim) {
            int pulled;
            double t0 = cpu_ms();
            int ng = search_graph(p, query, k, q, ap_mem_cal_efs[j], INT32_MAX, got, &pulled);
            cpu[j] = cpu_ms() - t0;
            found[j] = overlap(truth, nt, got, ng > 0 ? ng : 0);
        } else {
            ok = false;
        }
        pthread_rwlock_unlock(&p->lock);
    }
    if (ok) {
        pthread_rwlock_rdlock(&p->lock);
        pthread_mutex_lock(&p->cal_mu);
        if (p->cal == cal && p->ef == ef) {
            for (int j = 0; j < CAL_NEFS; j++) {
                p->found[j] += found[j];
                p->cpu[j] += cpu[j];
            }
            p->scan_cpu += scan;
            p->total += nt;
            if (++p->samples >= CAL_WINDOW) cal_decide(p);
        }
        pthread_mutex_unlock(&p->cal_mu);
        pthread_rwlock_unlock(&p->lock);
    }
    ap_free(truth);
    ap_free(got);
}

/* ---------- graph builds ---------- */

void ap_mem_index_set_hnsw_min(ap_mem_index_t *ix, int n) {
    pthread_rwlock_wrlock(&ix->lock);
    ix->hnsw_min = n > 0 ? n : AP_MEM_HNSW_MIN;
    pthread_rwlock_unlock(&ix->lock);
}

void ap_mem_index_set_prior(ap_mem_index_t *ix, ap_mem_prior_fn prior) {
    ix->prior = prior;
}

void ap_mem_index_set_max_candidates(ap_mem_index_t *ix, int n) {
    pthread_rwlock_wrlock(&ix->lock);
    ix->max_candidates = n > 0 ? n : AP_MEM_MAX_CANDIDATES;
    pthread_rwlock_unlock(&ix->lock);
}

/* A partition that reached the threshold without a graph, or whose graph
 * holds more deleted slots (waypoints, with their vectors) than a quarter
 * of its live ones: the build is also the compaction. */
static bool wants_graph(const ap_mem_index_t *ix, const ap_mem_part_t *p) {
    if (!p->loaded || !p->vec || p->building || p->build_failed || p->n < ix->hnsw_min)
        return false;
    return !p->has_graph || p->gdeleted * 4 > (uint64_t)p->n;
}

bool ap_mem_index_wants_build(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return false;
    pthread_rwlock_rdlock(&p->lock);
    bool want = wants_graph(ix, p);
    /* a graph set aside comes back when the partition has doubled */
    bool relearn = p->loaded && p->has_graph && p->cal == CAL_OFF && p->n >= 2 * p->off_n;
    pthread_rwlock_unlock(&p->lock);
    if (relearn) {
        pthread_rwlock_wrlock(&p->lock);
        if (p->cal == CAL_OFF && p->n >= 2 * p->off_n) cal_reset(p, CAL_LEARN);
        pthread_rwlock_unlock(&p->lock);
    }
    return want;
}

/* Builds one graph; false when no partition needs one. */
static bool build_one(ap_mem_index_t *ix, int *installed) {
    ap_mem_part_t *p = NULL;
    unsigned gen = 0;
    ap_vec_t *src = NULL;
    pthread_rwlock_rdlock(&ix->lock);
    for (size_t b = 0; b < ix->nbuckets && !p; b++)
        for (ap_mem_part_t *c = ix->buckets[b]; c && !p; c = c->next) {
            pthread_rwlock_wrlock(&c->lock);
            if (wants_graph(ix, c)) {
                p = c;
                p->building = true; /* changes from now on go to the log too */
                gen = ++p->gen;
                src = p->vec;
                ap_vec_retain(src);
            }
            pthread_rwlock_unlock(&c->lock);
        }
    pthread_rwlock_unlock(&ix->lock);
    if (!p) return false;
    ap_vec_params_t vp = ap_vec_params(src);
    vp.exact_threshold = UINT32_MAX;
    ap_vec_t *g = NULL;
    /* link every item (0), then searches of a graph shrunk below
     * GRAPH_EXACT_BELOW items are exact */
    bool ok = ap_vec_copy(src, &vp, NULL, &g, NULL) == AP_OK &&
              ap_vec_set_exact_threshold(g, 0, NULL) == AP_OK &&
              ap_vec_set_exact_threshold(g, GRAPH_EXACT_BELOW, NULL) == AP_OK;
    ap_vec_release(src);
    pthread_rwlock_wrlock(&p->lock);
    if (ok && p->building && p->gen == gen) {
        for (pending_t *x = p->log; x; x = x->next) {
            if (x->vec)
                ap_vec_add(g, x->label, x->id, x->vec, NULL);
            else
                ap_vec_delete(g, 0, x->id, NULL);
        }
        ap_vec_release(p->vec);
        p->vec = g;
        g = NULL;
        p->gdeleted = 0;
        for (pending_t *x = p->log; x; x = x->next) p->gdeleted += !x->vec;
        if (!p->has_graph) { /* a new graph is calibrated; a compacted one keeps its beam */
            p->has_graph = true;
            p->ef = 0;
            cal_reset(p, CAL_LEARN);
        }
        p->changes++;
        (*installed)++;
    }
    if (p->gen == gen) {
        log_free(p);
        p->building = false;
        if (!ok) p->build_failed = true;
    }
    pthread_rwlock_unlock(&p->lock);
    ap_vec_release(g);
    return true;
}

int ap_mem_index_build(ap_mem_index_t *ix) {
    int installed = 0;
    while (build_one(ix, &installed)) {
    }
    return installed;
}

void ap_mem_index_force_graph(ap_mem_index_t *ix, const char *key, int ef) {
    ap_mem_part_t *p = lock_loaded(ix, key);
    if (!p) return;
    if (p->has_graph) {
        p->ef = ef > 0 ? ef : 0;
        cal_reset(p, ef > 0 ? CAL_USE : CAL_LEARN);
    }
    pthread_rwlock_unlock(&p->lock);
}

int ap_mem_index_size(ap_mem_index_t *ix, const char *key) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return -1;
    pthread_rwlock_rdlock(&p->lock);
    int n = p->loaded ? p->n : -1;
    pthread_rwlock_unlock(&p->lock);
    return n;
}

static void info_of(ap_mem_part_t *p, ap_mem_part_info_t *o) {
    snprintf(o->key, sizeof o->key, "%s", p->key);
    o->loaded = p->loaded;
    o->n = p->loaded ? p->n : 0;
    o->has_graph = p->has_graph;
    o->graph_used = p->has_graph && p->cal == CAL_USE;
    o->ef = p->ef;
    o->cal = p->has_graph ? p->cal : CAL_NONE;
    o->from_file = p->from_file;
    o->seq = p->seq;
    o->unsaved = p->changes - p->saved;
}

bool ap_mem_index_info(ap_mem_index_t *ix, const char *key, ap_mem_part_info_t *out) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return false;
    pthread_rwlock_rdlock(&p->lock);
    info_of(p, out);
    pthread_rwlock_unlock(&p->lock);
    return true;
}

void ap_mem_index_list(ap_mem_index_t *ix, ap_mem_part_info_t **out, int *n) {
    int cap = 16, k = 0;
    ap_mem_part_info_t *a = ap_malloc(sizeof *a * (size_t)cap);
    pthread_rwlock_rdlock(&ix->lock);
    for (size_t b = 0; b < ix->nbuckets; b++)
        for (ap_mem_part_t *p = ix->buckets[b]; p; p = p->next) {
            if (k == cap) a = ap_realloc(a, sizeof *a * (size_t)(cap *= 2));
            pthread_rwlock_rdlock(&p->lock);
            info_of(p, &a[k++]);
            pthread_rwlock_unlock(&p->lock);
        }
    pthread_rwlock_unlock(&ix->lock);
    *out = a;
    *n = k;
}
