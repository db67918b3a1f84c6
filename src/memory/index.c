/*
 * index.c - exact, partitioned vector search (index.h).
 *
 * 1. A partition is three parallel arrays (metadata, vectors, nothing
 *    else) plus an open-addressing map id → slot; removal moves the last
 *    entry into the hole, so scans stay dense.
 * 2. Partitions live in a chained hash map by key ("tenant/agent").
 * 3. The scan keeps the best k in a small sorted array (k is a recall
 *    limit, at most a few hundred), which beats a heap at these sizes.
 * 4. Two stages, because a scan of float vectors is bound by memory
 *    bandwidth (100k × 384 floats are 150 MB per query): each vector also
 *    has an int8 code (v / scale rounded, scale = max|v| / 127), the first
 *    stage scores every entry with the int8 dot product (a quarter of the
 *    bytes) and keeps the best 4k + 32, and the second re-scores those
 *    with the float vectors.  The quantisation error of a cosine is about
 *    0.005, far inside the over-fetch, so the result is the exact one in
 *    practice.
 * 5. A partition of hnsw_min live entries or more also gets an HNSW
 *    graph (src/vec), built in the background by ap_mem_index_build: the
 *    entries are copied under the lock, the graph is built without it,
 *    and the changes made meanwhile (a log kept while `building`) are
 *    replayed before it is installed.  Once installed, its approximate
 *    search gives the 4k + 32 candidates instead of the int8 scan; they
 *    are re-scored the same way.
 */
#include "memory/index.h"

#include <math.h>
#include <pthread.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "vec/vec.h"

typedef struct pending {
    struct pending *next;
    char id[AP_UUID_LEN];
    float *vec; /* NULL: a removal */
} pending_t;

struct ap_mem_part {
    struct ap_mem_part *next;
    char *key;
    bool loaded;
    ap_vec_t *hnsw;         /* NULL until built */
    bool building;          /* a build copied the entries and is running */
    unsigned gen;           /* bumped by every reload and build start */
    bool hnsw_failed;       /* a build failed: scan only, do not retry */
    pending_t *log, **tail; /* changes since the copy, oldest first */
    int dim;
    int n, cap;
    ap_mem_meta_t *meta;
    float *vecs;
    int8_t *codes;  /* n × dim int8 codes */
    float *scales;  /* per entry */
    int *slots; /* map: id hash → slot+1, 0 empty, -1 tombstone */
    int nslots, used;
};

static int32_t dot_i8(const int8_t *a, const int8_t *b, int dim);
#if defined(__x86_64__) && defined(__GNUC__)
static int32_t dot_i8_avx2(const int8_t *a, const int8_t *b, int dim);
#endif

struct ap_mem_index {
    pthread_rwlock_t lock;
    int hnsw_min; /* live entries from which a partition gets a graph */
    int32_t (*dot_i8)(const int8_t *a, const int8_t *b, int dim); /* best for this CPU */
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
    ix->dot_i8 = dot_i8;
    ix->hnsw_min = AP_MEM_HNSW_MIN;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) ix->dot_i8 = dot_i8_avx2;
#endif
    return ix;
}

static void log_free(ap_mem_part_t *p) {
    while (p->log) {
        pending_t *x = p->log;
        p->log = x->next;
        ap_free(x->vec);
        ap_free(x);
    }
    p->tail = &p->log;
}

static void log_add(ap_mem_part_t *p, const char *id, const float *vec) {
    pending_t *x = ap_calloc(1, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    if (vec) {
        x->vec = ap_malloc(sizeof *x->vec * (size_t)p->dim);
        memcpy(x->vec, vec, sizeof *x->vec * (size_t)p->dim);
    }
    if (!p->tail) p->tail = &p->log;
    *p->tail = x;
    p->tail = &x->next;
}

/* Keeps the graph (or the log of a running build) in step with a change. */
static void graph_note(ap_mem_part_t *p, const char *id, const float *vec) {
    if (p->building) log_add(p, id, vec);
    if (!p->hnsw) return;
    if (vec)
        ap_vec_add(p->hnsw, 0, id, vec, NULL);
    else
        ap_vec_delete(p->hnsw, 0, id, NULL);
}

static void part_free(ap_mem_part_t *p) {
    log_free(p);
    ap_vec_release(p->hnsw);
    ap_free(p->key);
    ap_free(p->meta);
    ap_free(p->vecs);
    ap_free(p->codes);
    ap_free(p->scales);
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

static float quantize(const float *v, int dim, int8_t *out) {
    float mx = 0;
    for (int d = 0; d < dim; d++) mx = fabsf(v[d]) > mx ? fabsf(v[d]) : mx;
    float scale = mx > 0 ? mx / 127.0f : 0;
    for (int d = 0; d < dim; d++) out[d] = scale > 0 ? (int8_t)lrintf(v[d] / scale) : 0;
    return scale;
}

static void set_entry(ap_mem_part_t *p, int e, const ap_mem_meta_t *m, const float *vec) {
    int dim = p->dim;
    p->meta[e] = *m;
    memcpy(p->vecs + (size_t)e * dim, vec, (size_t)dim * sizeof *vec);
    p->scales[e] = quantize(vec, dim, p->codes + (size_t)e * dim);
}

static bool part_put(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim) {
    if (p->n == 0 && p->dim == 0) p->dim = dim;
    if (dim != p->dim) return false;
    bool found;
    int s = slot_of(p, m->id, &found);
    if (found) {
        set_entry(p, p->slots[s] - 1, m, vec);
        graph_note(p, m->id, vec);
        return true;
    }
    graph_note(p, m->id, vec);
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->meta = ap_realloc(p->meta, (size_t)p->cap * sizeof *p->meta);
        p->vecs = ap_realloc(p->vecs, (size_t)p->cap * dim * sizeof *p->vecs);
        p->codes = ap_realloc(p->codes, (size_t)p->cap * dim);
        p->scales = ap_realloc(p->scales, (size_t)p->cap * sizeof *p->scales);
    }
    int e = p->n++;
    set_entry(p, e, m, vec);
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
    graph_note(p, id, NULL);
    int e = p->slots[s] - 1;
    p->slots[s] = -1;
    int last = p->n - 1;
    if (e != last) {
        p->meta[e] = p->meta[last];
        memcpy(p->vecs + (size_t)e * p->dim, p->vecs + (size_t)last * p->dim,
               (size_t)p->dim * sizeof *p->vecs);
        memcpy(p->codes + (size_t)e * p->dim, p->codes + (size_t)last * p->dim, (size_t)p->dim);
        p->scales[e] = p->scales[last];
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
        ap_free(p->codes);
        ap_free(p->scales);
        ap_free(p->slots);
        p->meta = NULL;
        p->vecs = NULL;
        p->codes = NULL;
        p->scales = NULL;
        p->slots = NULL;
        p->n = p->cap = p->dim = p->nslots = p->used = 0;
        ap_vec_release(p->hnsw);
        p->hnsw = NULL;
        log_free(p); /* a running build sees another gen and gives up */
        p->building = false;
        p->gen++;
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

/* Eight independent partial sums: the compiler can keep them in one
 * vector register (a plain reduction is not vectorised without
 * -ffast-math). */
static float dot_product(const float *a, const float *b, int dim) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[d + j] * b[d + j];
    float s = 0;
    for (; d < dim; d++) s += a[d] * b[d];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

int ap_mem_index_search(ap_mem_index_t *ix, const char *key, const float *query, int dim, int k,
                        ap_mem_filter_fn filter, ap_mem_score_fn score, void *ud,
                        ap_mem_hit_t *out) {
    return ap_mem_index_search_bounded(ix, key, query, dim, k, filter, score, ud, 0, 0, out);
}

#ifdef __SSE2__
/* SSE2 (every x86-64): sign-extend 16 bytes to two halves of int16 and
 * multiply-add pairs into int32 (pmaddwd); |sum| <= dim × 127² fits. */
static int32_t dot_i8(const int8_t *a, const int8_t *b, int dim) {
    const __m128i zero = _mm_setzero_si128();
    __m128i acc = zero;
    int d = 0;
    for (; d + 16 <= dim; d += 16) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + d));
        __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + d));
        __m128i sa = _mm_cmpgt_epi8(zero, va), sb = _mm_cmpgt_epi8(zero, vb);
        acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpacklo_epi8(va, sa), _mm_unpacklo_epi8(vb, sb)));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpackhi_epi8(va, sa), _mm_unpackhi_epi8(vb, sb)));
    }
    int32_t t[4];
    _mm_storeu_si128((__m128i *)(void *)t, acc);
    int32_t s = t[0] + t[1] + t[2] + t[3];
    for (; d < dim; d++) s += (int16_t)a[d] * (int16_t)b[d];
    return s;
}
#else
static int32_t dot_i8(const int8_t *a, const int8_t *b, int dim) {
    int32_t s = 0;
    for (int d = 0; d < dim; d++) s += (int16_t)a[d] * (int16_t)b[d];
    return s;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX2_DOT 1
/* AVX2 where the CPU has it (chosen at run time): one vpmovsxbw per 16
 * bytes and 256-bit multiply-adds, two accumulators. */
__attribute__((target("avx2"))) static int32_t dot_i8_avx2(const int8_t *a, const int8_t *b,
                                                           int dim) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int d = 0;
    for (; d + 32 <= dim; d += 32) {
        __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + d)));
        __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(b + d)));
        __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + d + 16)));
        __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(b + d + 16)));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, b0));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a1, b1));
    }
    acc0 = _mm256_add_epi32(acc0, acc1);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc0), _mm256_extracti128_si256(acc0, 1));
    int32_t t[4];
    _mm_storeu_si128((__m128i *)(void *)t, s4);
    int32_t s = t[0] + t[1] + t[2] + t[3];
    for (; d < dim; d++) s += (int16_t)a[d] * (int16_t)b[d];
    return s;
}
#endif

typedef struct {
    ap_mem_part_t *p;
    ap_mem_filter_fn filter;
    void *ud;
} graph_filter_t;

static bool graph_filter(uint64_t label, const char *id, void *arg);

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

int ap_mem_index_search_bounded(ap_mem_index_t *ix, const char *key, const float *query, int dim,
                                int k, ap_mem_filter_fn filter, ap_mem_score_fn score, void *ud,
                                double bound_w, double bound_extra, ap_mem_hit_t *out) {
    if (k <= 0 || dim <= 0) return 0;
    int n = 0;
    int r = k * 4 + 32; /* first-stage candidates */
    cand_t *c = ap_malloc(sizeof *c * (size_t)r);
    int8_t *qc = ap_malloc((size_t)dim);
    float qs = quantize(query, dim, qc);
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    if (p && p->loaded && p->dim == dim && p->hnsw) {
        /* candidates from the graph, filtered by the caller's filter */
        graph_filter_t gf = {p, filter, ud};
        ap_vec_hit_t *vh = ap_malloc(sizeof *vh * (size_t)r);
        size_t nh = 0;
        /* a wide beam: a search that ends with fewer than r accepted items
         * is repeated exactly by src/vec, which costs more than our scan */
        ap_vec_query_opts_t qo = {.ef = (uint32_t)(4 * r > 200 ? 4 * r : 200),
                                  .filter = graph_filter, .filter_arg = &gf};
        if (ap_vec_search(p->hnsw, query, (size_t)r, &qo, vh, &nh, NULL)) nh = 0;
        cand_t *best = ap_malloc(sizeof *best * (size_t)k);
        for (size_t i = 0; i < nh; i++) {
            bool found;
            int sl = slot_of(p, vh[i].id, &found);
            if (!found) continue;
            int e = p->slots[sl] - 1;
            float dot = dot_product(p->vecs + (size_t)e * dim, query, dim);
            keep(best, &n, k, (cand_t){e, dot, score ? score(&p->meta[e], dot, ud) : dot});
        }
        for (int i = 0; i < n; i++) {
            memcpy(out[i].id, p->meta[best[i].e].id, sizeof out[i].id);
            out[i].similarity = best[i].sim;
            out[i].score = best[i].score;
        }
        ap_free(best);
        ap_free(vh);
    } else if (p && p->loaded && p->dim == dim) {
        int nc = 0;
        for (int e = 0; e < p->n; e++) {
            const ap_mem_meta_t *m = &p->meta[e];
            if (filter && !filter(m, ud)) continue;
            float approx = (float)ix->dot_i8(p->codes + (size_t)e * dim, qc, dim) * p->scales[e] * qs;
            if (nc == r && bound_w > 0 &&
                bound_w * (approx > 0 ? approx : 0) + bound_extra <= c[nc - 1].score)
                continue;
            keep(c, &nc, r, (cand_t){e, approx, score ? score(m, approx, ud) : approx});
        }
        /* second stage: exact */
        cand_t *best = ap_malloc(sizeof *best * (size_t)k);
        for (int i = 0; i < nc; i++) {
            int e = c[i].e;
            float dot = dot_product(p->vecs + (size_t)e * dim, query, dim);
            keep(best, &n, k, (cand_t){e, dot, score ? score(&p->meta[e], dot, ud) : dot});
        }
        for (int i = 0; i < n; i++) {
            memcpy(out[i].id, p->meta[best[i].e].id, sizeof out[i].id);
            out[i].similarity = best[i].sim;
            out[i].score = best[i].score;
        }
        ap_free(best);
    }
    pthread_rwlock_unlock(&ix->lock);
    ap_free(c);
    ap_free(qc);
    return n;
}

static bool graph_filter(uint64_t label, const char *id, void *arg) {
    (void)label;
    const graph_filter_t *g = arg;
    bool found;
    int sl = id ? slot_of(g->p, id, &found) : -1;
    if (!id || !found) return false;
    return !g->filter || g->filter(&g->p->meta[g->p->slots[sl] - 1], g->ud);
}

void ap_mem_index_set_hnsw_min(ap_mem_index_t *ix, int n) {
    pthread_rwlock_wrlock(&ix->lock);
    ix->hnsw_min = n > 0 ? n : AP_MEM_HNSW_MIN;
    pthread_rwlock_unlock(&ix->lock);
}

bool ap_mem_index_wants_build(ap_mem_index_t *ix, const char *key) {
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    bool want = p && p->loaded && !p->hnsw && !p->building && !p->hnsw_failed &&
                p->n >= ix->hnsw_min;
    pthread_rwlock_unlock(&ix->lock);
    return want;
}

/* Builds one graph; false when no partition needs one. */
static bool build_one(ap_mem_index_t *ix, int *installed) {
    pthread_rwlock_wrlock(&ix->lock);
    ap_mem_part_t *p = NULL;
    for (size_t b = 0; b < ix->nbuckets && !p; b++)
        for (ap_mem_part_t *q = ix->buckets[b]; q && !p; q = q->next)
            if (q->loaded && !q->hnsw && !q->building && !q->hnsw_failed && q->n >= ix->hnsw_min)
                p = q;
    if (!p) {
        pthread_rwlock_unlock(&ix->lock);
        return false;
    }
    /* copy the entries; changes from now on go to the log */
    p->building = true;
    unsigned gen = ++p->gen;
    int n = p->n, dim = p->dim;
    char(*ids)[AP_UUID_LEN] = ap_malloc(sizeof *ids * (size_t)n);
    float *vecs = ap_malloc(sizeof *vecs * (size_t)n * (size_t)dim);
    for (int e = 0; e < n; e++) memcpy(ids[e], p->meta[e].id, AP_UUID_LEN);
    memcpy(vecs, p->vecs, sizeof *vecs * (size_t)n * (size_t)dim);
    pthread_rwlock_unlock(&ix->lock);

    ap_vec_params_t vp = ap_vec_params_default((uint32_t)dim);
    vp.ef_construction = 100;
    ap_vec_t *g = NULL;
    bool ok = ap_vec_new(&vp, NULL, &g, NULL) == AP_OK;
    for (int e = 0; ok && e < n; e++) ok = ap_vec_add(g, 0, ids[e], vecs + (size_t)e * dim, NULL) == AP_OK;
    ap_free(ids);
    ap_free(vecs);

    pthread_rwlock_wrlock(&ix->lock);
    if (ok && p->building && p->gen == gen) {
        for (pending_t *x = p->log; x; x = x->next) {
            if (x->vec)
                ap_vec_add(g, 0, x->id, x->vec, NULL);
            else
                ap_vec_delete(g, 0, x->id, NULL);
        }
        p->hnsw = g;
        g = NULL;
        (*installed)++;
    }
    if (p->gen == gen) {
        log_free(p);
        p->building = false;
        if (!ok) p->hnsw_failed = true;
    }
    pthread_rwlock_unlock(&ix->lock);
    ap_vec_release(g);
    return true;
}

int ap_mem_index_build(ap_mem_index_t *ix) {
    int installed = 0;
    while (build_one(ix, &installed)) {
    }
    return installed;
}

int ap_mem_index_size(ap_mem_index_t *ix, const char *key) {
    pthread_rwlock_rdlock(&ix->lock);
    ap_mem_part_t *p = part_find(ix, key, false);
    int n = p && p->loaded ? p->n : -1;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}
