/*
 * vec.c - HNSW graph, exact search, labels and the index's lifecycle.
 *
 * 1. HNSW as in Malkov & Yashunin (2016, arXiv:1603.09320): a node's level
 *    is floor(-ln(U) / ln(m)); insertion descends greedily from the entry
 *    point to the node's level, then on each layer searches ef_construction
 *    candidates and keeps m of them (2*m on layer 0) with the neighbour
 *    selection heuristic (algorithm 4), shrinking overfull neighbour lists
 *    with the same heuristic.
 * 2. Distance is 1 - dot on normalised vectors; scores are dot products.
 * 3. The dot product keeps 16 independent partial sums, a loop gcc
 *    vectorises at -O2 without -ffast-math (no reassociation needed).
 * 4. Search scratch (visited tags and the two heaps) comes from a small
 *    pool under a mutex, so readers in parallel each have their own.
 */
#include "vec/vec_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocator ---------------------------------------------------------- */

static void *libc_malloc(void *ctx, size_t n) {
    (void)ctx;
    return malloc(n);
}
static void *libc_realloc(void *ctx, void *p, size_t n) {
    (void)ctx;
    return realloc(p, n);
}
static void libc_free(void *ctx, void *p) {
    (void)ctx;
    free(p);
}
static const ap_vec_alloc_t default_alloc = {libc_malloc, libc_realloc, libc_free, NULL};

const ap_vec_alloc_t *ap_vec_alloc_default(void) {
    return &default_alloc;
}

void *vec_alloc(ap_vec_t *ix, size_t n) {
    return ix->al.malloc(ix->al.ctx, n ? n : 1);
}
void vec_free(ap_vec_t *ix, void *p) {
    if (p) ix->al.free(ix->al.ctx, p);
}
static bool vec_grow(ap_vec_t *ix, void *pp, size_t n) {
    void **p = pp;
    void *q = ix->al.realloc(ix->al.ctx, *p, n ? n : 1);
    if (!q) return false;
    *p = q;
    return true;
}

static ap_rc oom(ap_err_t *err) {
    return ap_err_set(err, AP_ERR_LIMIT, "out-of-memory", "out of memory",
                      "free memory or lower the number of vectors", "the vector index could not allocate");
}

/* ---- math --------------------------------------------------------------- */

float ap_vec_dot(const float *a, const float *b, uint32_t dim) {
    float acc[16] = {0};
    size_t n = dim, i = 0;
    for (; i + 16 <= n; i += 16) {
        const float *x = a + i, *y = b + i;
        for (int j = 0; j < 16; j++) acc[j] += x[j] * y[j];
    }
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

bool ap_vec_normalize(float *v, uint32_t dim) {
    double n = 0;
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(v[i])) return false;
        n += (double)v[i] * v[i];
    }
    if (!(n > 0) || !isfinite(n)) return false;
    float inv = (float)(1.0 / sqrt(n));
    for (uint32_t i = 0; i < dim; i++) v[i] *= inv;
    return true;
}

static inline float dist(const ap_vec_t *ix, const float *q, uint32_t slot) {
    return 1.0f - ap_vec_dot(q, ix->d.vecs + (size_t)slot * ix->p.dim, ix->p.dim);
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- params ------------------------------------------------------------- */

ap_vec_params_t ap_vec_params_default(uint32_t dim) {
    return (ap_vec_params_t){.dim = dim, .m = 16, .ef_construction = 200, .ef_search = 64,
                             .exact_threshold = 2000, .seed = 1};
}

ap_rc vec_check_params(const ap_vec_params_t *p, ap_err_t *err) {
    if (p->dim < 1 || p->dim > AP_VEC_DIM_MAX)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid dimension",
                          "use a dimension between 1 and 4096", "dim is %u", p->dim);
    if (p->m < 4 || p->m > 64)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid graph degree",
                          "use m between 4 and 64 (16 is a good default)", "m is %u", p->m);
    if (p->ef_construction < p->m || p->ef_construction > 4096)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid ef_construction",
                          "use ef_construction between m and 4096", "ef_construction is %u",
                          p->ef_construction);
    if (p->ef_search < 1 || p->ef_search > 65536)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid ef_search",
                          "use ef_search between 1 and 65536", "ef_search is %u", p->ef_search);
    return AP_OK;
}

/* ---- slot storage --------------------------------------------------------- */

ap_rc vec_reserve(ap_vec_t *ix, vec_data_t *d, uint32_t cap) {
    if (cap <= d->cap) return AP_OK;
    size_t dim = ix->p.dim, m0 = ix->m0;
    if (!vec_grow(ix, &d->vecs, (size_t)cap * dim * sizeof(float)) ||
        !vec_grow(ix, &d->labels, (size_t)cap * sizeof(uint64_t)) ||
        !vec_grow(ix, &d->flags, cap) || !vec_grow(ix, &d->levels, cap) ||
        !vec_grow(ix, &d->ids, (size_t)cap * sizeof(char *)) ||
        !vec_grow(ix, &d->links0, (size_t)cap * (m0 + 1) * sizeof(uint32_t)) ||
        !vec_grow(ix, &d->links_up, (size_t)cap * sizeof(uint32_t *)))
        return AP_ERR_LIMIT;
    for (uint32_t i = d->cap; i < cap; i++) {
        d->ids[i] = NULL;
        d->links_up[i] = NULL;
        d->links0[(size_t)i * (m0 + 1)] = 0;
    }
    d->cap = cap;
    return AP_OK;
}

void vec_data_free(ap_vec_t *ix, vec_data_t *d) {
    for (uint32_t i = 0; i < d->cap; i++) {
        vec_free(ix, d->ids[i]);
        vec_free(ix, d->links_up[i]);
    }
    vec_free(ix, d->vecs);
    vec_free(ix, d->labels);
    vec_free(ix, d->flags);
    vec_free(ix, d->levels);
    vec_free(ix, d->ids);
    vec_free(ix, d->links0);
    vec_free(ix, d->links_up);
    vec_free(ix, d->map);
    memset(d, 0, sizeof *d);
    d->max_level = -1;
}

static inline uint32_t *links_at(const ap_vec_t *ix, uint32_t slot, int level) {
    if (level == 0) return ix->d.links0 + (size_t)slot * (ix->m0 + 1);
    return ix->d.links_up[slot] + (size_t)(level - 1) * (ix->p.m + 1);
}

/* ---- label / id map ----------------------------------------------------- */

static uint64_t hash_key(uint64_t label, const char *id) {
    uint64_t h;
    if (id) {
        h = 0xcbf29ce484222325ull;
        for (const unsigned char *s = (const unsigned char *)id; *s; s++)
            h = (h ^ *s) * 0x100000001b3ull;
        h ^= 0x5bd1e995u;
    } else {
        h = label;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static bool slot_is(const vec_data_t *d, uint32_t slot, uint64_t label, const char *id) {
    if (id) return d->ids[slot] && strcmp(d->ids[slot], id) == 0;
    return !d->ids[slot] && d->labels[slot] == label;
}

uint32_t vec_map_find(const vec_data_t *d, uint64_t label, const char *id) {
    if (!d->map_cap) return UINT32_MAX;
    uint32_t mask = d->map_cap - 1;
    for (uint32_t i = (uint32_t)hash_key(label, id) & mask;; i = (i + 1) & mask) {
        uint32_t e = d->map[i];
        if (e == 0) return UINT32_MAX;
        if (e != VEC_MAP_TOMB && slot_is(d, e - 1, label, id)) return e - 1;
    }
}

static void map_put_raw(vec_data_t *d, uint32_t slot) {
    uint32_t mask = d->map_cap - 1;
    uint32_t i = (uint32_t)hash_key(d->labels[slot], d->ids[slot]) & mask;
    while (d->map[i] != 0 && d->map[i] != VEC_MAP_TOMB) i = (i + 1) & mask;
    if (d->map[i] == 0) d->map_used++;
    d->map[i] = slot + 1;
}

ap_rc vec_map_insert(ap_vec_t *ix, vec_data_t *d, uint32_t slot) {
    if ((uint64_t)(d->map_used + 1) * 10 >= (uint64_t)d->map_cap * 7) {
        uint32_t ncap = 64;
        while ((uint64_t)ncap * 7 <= (d->live + 1) * 20) ncap *= 2; /* load <= 0.35 after */
        uint32_t *old = d->map, ocap = d->map_cap;
        d->map = vec_alloc(ix, (size_t)ncap * sizeof(uint32_t));
        if (!d->map) {
            d->map = old;
            return AP_ERR_LIMIT;
        }
        memset(d->map, 0, (size_t)ncap * sizeof(uint32_t));
        d->map_cap = ncap;
        d->map_used = 0;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i] && old[i] != VEC_MAP_TOMB) map_put_raw(d, old[i] - 1);
        vec_free(ix, old);
    }
    map_put_raw(d, slot);
    return AP_OK;
}

static void map_remove(vec_data_t *d, uint32_t slot) {
    uint32_t mask = d->map_cap - 1;
    for (uint32_t i = (uint32_t)hash_key(d->labels[slot], d->ids[slot]) & mask;; i = (i + 1) & mask) {
        if (d->map[i] == 0) return;
        if (d->map[i] == slot + 1) {
            d->map[i] = VEC_MAP_TOMB;
            return;
        }
    }
}

/* ---- search scratch: visited tags and heaps ------------------------------ */

typedef struct {
    float d;
    uint32_t id;
} cand_t;

struct vec_scratch {
    vec_scratch_t *next;
    uint32_t *tags;
    uint32_t tags_cap, tag;
    cand_t *cand, *res; /* min-heap of candidates, max-heap of results */
    size_t cand_n, res_n, cand_cap, res_cap;
    float *qbuf;
};

static void scratch_free(ap_vec_t *ix, vec_scratch_t *s) {
    if (!s) return;
    vec_free(ix, s->tags);
    vec_free(ix, s->cand);
    vec_free(ix, s->res);
    vec_free(ix, s->qbuf);
    vec_free(ix, s);
}

/* A scratch whose tags cover `slots`; NULL when out of memory. */
static vec_scratch_t *scratch_get(ap_vec_t *ix, uint32_t slots) {
    pthread_mutex_lock(&ix->pool_mu);
    vec_scratch_t *s = ix->pool;
    if (s) ix->pool = s->next;
    pthread_mutex_unlock(&ix->pool_mu);
    if (!s) {
        s = vec_alloc(ix, sizeof *s);
        if (!s) return NULL;
        memset(s, 0, sizeof *s);
        s->qbuf = vec_alloc(ix, (size_t)ix->p.dim * sizeof(float));
        if (!s->qbuf) {
            vec_free(ix, s);
            return NULL;
        }
    }
    if (s->tags_cap < slots) {
        uint32_t ncap = slots < 1024 ? 1024 : slots + slots / 4;
        vec_free(ix, s->tags);
        s->tags = vec_alloc(ix, (size_t)ncap * sizeof(uint32_t));
        if (!s->tags) {
            s->tags_cap = 0;
            scratch_free(ix, s);
            return NULL;
        }
        memset(s->tags, 0, (size_t)ncap * sizeof(uint32_t));
        s->tags_cap = ncap;
        s->tag = 0;
    }
    if (++s->tag == 0) { /* wrapped: clear */
        memset(s->tags, 0, (size_t)s->tags_cap * sizeof(uint32_t));
        s->tag = 1;
    }
    s->cand_n = s->res_n = 0;
    return s;
}

static void scratch_put(ap_vec_t *ix, vec_scratch_t *s) {
    pthread_mutex_lock(&ix->pool_mu);
    s->next = ix->pool;
    ix->pool = s;
    pthread_mutex_unlock(&ix->pool_mu);
}

static bool heap_reserve(ap_vec_t *ix, cand_t **h, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    size_t ncap = n < 64 ? 64 : n * 2;
    if (!vec_grow(ix, h, ncap * sizeof(cand_t))) return false;
    *cap = ncap;
    return true;
}

/* sign +1: max-heap on d; -1: min-heap */
static void heap_push(cand_t *h, size_t *n, cand_t c, float sign) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (sign * h[p].d >= sign * c.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand_t heap_pop(cand_t *h, size_t *n, float sign) {
    cand_t top = h[0], last = h[--(*n)];
    size_t i = 0, len = *n;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        float bd = sign * last.d;
        if (l < len && sign * h[l].d > bd) best = l, bd = sign * h[l].d;
        if (l + 1 < len && sign * h[l + 1].d > bd) best = l + 1;
        if (best == i) break;
        h[i] = h[best];
        i = best;
    }
    if (len) h[i] = last;
    return top;
}

/* ---- HNSW layer search ---------------------------------------------------- */

typedef struct {
    ap_vec_filter_fn filter;
    void *arg;
    bool check; /* false: every node is a result (building; nothing deleted, no filter) */
} accept_t;

static inline bool accepted(const ap_vec_t *ix, const accept_t *a, uint32_t slot) {
    if (!a->check) return true;
    if (ix->d.flags[slot] & VEC_F_DELETED) return false;
    return !a->filter || a->filter(ix->d.labels[slot], ix->d.ids[slot], a->arg);
}

/* Greedy descent on one layer from *ep to the closest node. */
static void greedy(const ap_vec_t *ix, const float *q, uint32_t *ep, float *epd, int level) {
    for (bool changed = true; changed;) {
        changed = false;
        const uint32_t *l = links_at(ix, *ep, level);
        for (uint32_t i = 1; i <= l[0]; i++) {
            float d = dist(ix, q, l[i]);
            if (d < *epd) {
                *epd = d;
                *ep = l[i];
                changed = true;
            }
        }
    }
}

/* Searches one layer from ep; leaves up to ef accepted nodes in s->res (a
 * max-heap).  false when out of memory. */
static bool search_layer(ap_vec_t *ix, vec_scratch_t *s, const float *q, uint32_t ep, float epd,
                         size_t ef, int level, const accept_t *a) {
    if (++s->tag == 0) {
        memset(s->tags, 0, (size_t)s->tags_cap * sizeof(uint32_t));
        s->tag = 1;
    }
    s->cand_n = s->res_n = 0;
    size_t maxdeg = (level == 0 ? ix->m0 : ix->p.m);
    if (!heap_reserve(ix, &s->res, &s->res_cap, ef + 1) ||
        !heap_reserve(ix, &s->cand, &s->cand_cap, ef + maxdeg + 1))
        return false;
    bool filtering = a->check;
    float bound = INFINITY;
    s->tags[ep] = s->tag;
    if (accepted(ix, a, ep)) {
        heap_push(s->res, &s->res_n, (cand_t){epd, ep}, 1);
        bound = epd;
    }
    heap_push(s->cand, &s->cand_n, (cand_t){epd, ep}, -1);
    while (s->cand_n) {
        cand_t c = s->cand[0];
        if (c.d > bound && (s->res_n == ef || !filtering)) break;
        heap_pop(s->cand, &s->cand_n, -1);
        const uint32_t *l = links_at(ix, c.id, level);
        uint32_t deg = l[0];
        for (uint32_t i = 1; i <= deg; i++)
            __builtin_prefetch(ix->d.vecs + (size_t)l[i] * ix->p.dim);
        for (uint32_t i = 1; i <= deg; i++) {
            uint32_t n = l[i];
            if (s->tags[n] == s->tag) continue;
            s->tags[n] = s->tag;
            float d = dist(ix, q, n);
            if (s->res_n < ef || d < bound) {
                if (!heap_reserve(ix, &s->cand, &s->cand_cap, s->cand_n + 1)) return false;
                heap_push(s->cand, &s->cand_n, (cand_t){d, n}, -1);
                if (accepted(ix, a, n)) {
                    heap_push(s->res, &s->res_n, (cand_t){d, n}, 1);
                    if (s->res_n > ef) heap_pop(s->res, &s->res_n, 1);
                    bound = s->res[0].d;
                }
            }
        }
    }
    return true;
}

/* ---- construction ------------------------------------------------------- */

static int cmp_cand(const void *x, const void *y) {
    const cand_t *a = x, *b = y;
    return a->d < b->d ? -1 : a->d > b->d ? 1 : (a->id > b->id) - (a->id < b->id);
}

/* Two vectors this close count as copies of each other. */
#define VEC_DUP_DIST 1e-6f

/* The heuristic of algorithm 4: keeps a candidate (closest first) only if
 * it is closer to the base than to every neighbour already kept, and is
 * not a copy of one (the paper's strict "closer" keeps every copy: with
 * many copies of a vector a node's list held only its copies, and each
 * group of copies became an island no search could leave).  c is sorted
 * in place; returns how many are kept at the front. */
static size_t select_neighbors(const ap_vec_t *ix, cand_t *c, size_t n, size_t m) {
    qsort(c, n, sizeof *c, cmp_cand);
    if (n <= m) return n;
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        bool good = true;
        const float *ci = ix->d.vecs + (size_t)c[i].id * ix->p.dim;
        for (size_t j = 0; j < kept; j++) {
            float dj = dist(ix, ci, c[j].id);
            if (dj < c[i].d || dj <= VEC_DUP_DIST) {
                good = false;
                break;
            }
        }
        if (good) c[kept++] = c[i];
    }
    return kept;
}

/* Adds `from` to the neighbour list of `to` on a layer, shrinking it with the
 * heuristic when full. */
static void link_back(ap_vec_t *ix, uint32_t to, uint32_t from, int level) {
    uint32_t *l = links_at(ix, to, level);
    uint32_t maxdeg = level == 0 ? ix->m0 : ix->p.m;
    for (uint32_t i = 1; i <= l[0]; i++)
        if (l[i] == from) return;
    if (l[0] < maxdeg) {
        l[++l[0]] = from;
        return;
    }
    cand_t c[2 * 64 + 1];
    const float *tv = ix->d.vecs + (size_t)to * ix->p.dim;
    size_t n = 0;
    for (uint32_t i = 1; i <= l[0]; i++) c[n++] = (cand_t){dist(ix, tv, l[i]), l[i]};
    c[n++] = (cand_t){dist(ix, tv, from), from};
    size_t kept = select_neighbors(ix, c, n, maxdeg);
    l[0] = (uint32_t)kept;
    for (size_t i = 0; i < kept; i++) l[i + 1] = c[i].id;
}

/* Links slot into the graph. */
static ap_rc link_slot(ap_vec_t *ix, uint32_t slot) {
    vec_data_t *d = &ix->d;
    int level = d->levels[slot];
    if (level > 0 && !d->links_up[slot]) { /* already there after a failed attempt */
        size_t words = (size_t)level * (ix->p.m + 1);
        d->links_up[slot] = vec_alloc(ix, words * sizeof(uint32_t));
        if (!d->links_up[slot]) return AP_ERR_LIMIT;
        for (int l = 1; l <= level; l++) links_at(ix, slot, l)[0] = 0;
    }
    links_at(ix, slot, 0)[0] = 0;
    if (d->max_level < 0) {
        d->entry = slot;
        d->max_level = level;
        d->linked = slot + 1;
        return AP_OK;
    }
    const float *q = d->vecs + (size_t)slot * ix->p.dim;
    uint32_t ep = d->entry;
    float epd = dist(ix, q, ep);
    for (int l = d->max_level; l > level; l--) greedy(ix, q, &ep, &epd, l);
    vec_scratch_t *s = scratch_get(ix, d->count);
    if (!s) return AP_ERR_LIMIT;
    accept_t all = {0};
    cand_t *sel = NULL;
    size_t sel_cap = 0;
    ap_rc rc = AP_OK;
    for (int l = level < d->max_level ? level : d->max_level; l >= 0; l--) {
        if (!search_layer(ix, s, q, ep, epd, ix->p.ef_construction, l, &all) ||
            !heap_reserve(ix, &sel, &sel_cap, s->res_n)) {
            rc = AP_ERR_LIMIT;
            break;
        }
        size_t n = s->res_n;
        memcpy(sel, s->res, n * sizeof(cand_t));
        size_t kept = select_neighbors(ix, sel, n, ix->p.m);
        uint32_t *lk = links_at(ix, slot, l);
        lk[0] = (uint32_t)kept;
        for (size_t i = 0; i < kept; i++) lk[i + 1] = sel[i].id;
        for (size_t i = 0; i < kept; i++) link_back(ix, sel[i].id, slot, l);
        ep = sel[0].id; /* sorted: the closest */
        epd = sel[0].d;
    }
    vec_free(ix, sel);
    scratch_put(ix, s);
    if (rc) return rc;
    if (level > d->max_level) {
        d->max_level = level;
        d->entry = slot;
    }
    d->linked = slot + 1;
    return AP_OK;
}

static bool graph_wanted(const ap_vec_t *ix) {
    return ix->d.max_level >= 0 || ix->d.live >= ix->p.exact_threshold;
}

static ap_rc link_pending(ap_vec_t *ix) {
    while (ix->d.linked < ix->d.count) {
        ap_rc rc = link_slot(ix, ix->d.linked);
        if (rc) return rc;
    }
    return AP_OK;
}

/* ---- lifecycle ------------------------------------------------------------ */

ap_rc vec_create(const ap_vec_params_t *p, const ap_vec_alloc_t *alloc, ap_vec_t **out,
                 ap_err_t *err) {
    *out = NULL;
    ap_rc rc = vec_check_params(p, err);
    if (rc) return rc;
    if (!alloc) alloc = &default_alloc;
    ap_vec_t *ix = alloc->malloc(alloc->ctx, sizeof *ix);
    if (!ix) return oom(err);
    memset(ix, 0, sizeof *ix);
    ix->al = *alloc;
    ix->p = *p;
    ix->m0 = 2 * p->m;
    ix->level_mult = 1.0 / log((double)p->m);
    atomic_init(&ix->refs, 1);
    /* writers first: glibc's default lets a stream of readers starve them */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&ix->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&ix->pool_mu, NULL);
    ix->d.max_level = -1;
    ix->d.rng = p->seed;
    *out = ix;
    return AP_OK;
}

ap_rc ap_vec_new(const ap_vec_params_t *params, const ap_vec_alloc_t *alloc, ap_vec_t **out,
                 ap_err_t *err) {
    return vec_create(params, alloc, out, err);
}

void ap_vec_retain(ap_vec_t *ix) {
    atomic_fetch_add(&ix->refs, 1);
}

void ap_vec_release(ap_vec_t *ix) {
    if (!ix || atomic_fetch_sub(&ix->refs, 1) != 1) return;
    vec_data_free(ix, &ix->d);
    while (ix->pool) {
        vec_scratch_t *s = ix->pool;
        ix->pool = s->next;
        scratch_free(ix, s);
    }
    pthread_rwlock_destroy(&ix->lock);
    pthread_mutex_destroy(&ix->pool_mu);
    ix->al.free(ix->al.ctx, ix);
}

ap_vec_params_t ap_vec_params(const ap_vec_t *ix) {
    return ix->p;
}

/* ---- add / delete ------------------------------------------------------ */

static ap_rc check_id(const char *id, ap_err_t *err) {
    if (!id) return AP_OK;
    size_t n = strlen(id);
    if (n == 0 || n >= AP_VEC_ID_MAX)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid vector id",
                          "use a string id of 1 to 63 bytes", "id has %zu bytes", n);
    return AP_OK;
}

static void mark_deleted(vec_data_t *d, uint32_t slot) {
    map_remove(d, slot);
    d->flags[slot] |= VEC_F_DELETED;
    d->live--;
    d->deleted++;
}

/* Appends an item (write lock held, vector already normalised in place). */
static ap_rc append(ap_vec_t *ix, uint64_t label, const char *id, const float *v) {
    vec_data_t *d = &ix->d;
    if (d->count >= VEC_SLOTS_MAX) return AP_ERR_LIMIT;
    if (d->count == d->cap) {
        uint32_t ncap = d->cap < 64 ? 64 : d->cap + d->cap / 2;
        if (ncap > VEC_SLOTS_MAX) ncap = VEC_SLOTS_MAX;
        if (vec_reserve(ix, d, ncap)) return AP_ERR_LIMIT;
    }
    uint32_t slot = d->count;
    char *idc = NULL;
    if (id) {
        size_t n = strlen(id);
        idc = vec_alloc(ix, n + 1);
        if (!idc) return AP_ERR_LIMIT;
        memcpy(idc, id, n + 1);
    }
    uint32_t old = vec_map_find(d, label, id);
    memcpy(d->vecs + (size_t)slot * ix->p.dim, v, (size_t)ix->p.dim * sizeof(float));
    d->labels[slot] = label;
    d->ids[slot] = idc;
    d->flags[slot] = id ? VEC_F_HAS_ID : 0;
    double u = ((double)(rng_next(&d->rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    int level = (int)(-log(u) * ix->level_mult);
    d->levels[slot] = (uint8_t)(level > VEC_LEVEL_MAX ? VEC_LEVEL_MAX : level);
    if (vec_map_insert(ix, d, slot)) { /* the old item, if any, stays */
        vec_free(ix, idc);
        d->ids[slot] = NULL;
        return AP_ERR_LIMIT;
    }
    if (old != UINT32_MAX) mark_deleted(d, old); /* removes only old's map entry */
    d->count++;
    d->live++;
    return graph_wanted(ix) ? link_pending(ix) : AP_OK;
}

ap_rc ap_vec_add(ap_vec_t *ix, uint64_t label, const char *id, const float *vec, ap_err_t *err) {
    ap_rc rc = check_id(id, err);
    if (rc) return rc;
    /* normalise into a private copy before taking the lock */
    float stackbuf[512];
    float *v = ix->p.dim <= 512 ? stackbuf : vec_alloc(ix, (size_t)ix->p.dim * sizeof(float));
    if (!v) return oom(err);
    memcpy(v, vec, (size_t)ix->p.dim * sizeof(float));
    if (!ap_vec_normalize(v, ix->p.dim)) {
        if (v != stackbuf) vec_free(ix, v);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid vector",
                          "send a non-zero vector of finite numbers",
                          "the vector is zero or has a non-finite component");
    }
    pthread_rwlock_wrlock(&ix->lock);
    rc = append(ix, label, id, v);
    pthread_rwlock_unlock(&ix->lock);
    if (v != stackbuf) vec_free(ix, v);
    return rc ? oom(err) : AP_OK;
}

ap_rc ap_vec_delete(ap_vec_t *ix, uint64_t label, const char *id, ap_err_t *err) {
    ap_rc rc = check_id(id, err);
    if (rc) return rc;
    pthread_rwlock_wrlock(&ix->lock);
    uint32_t slot = vec_map_find(&ix->d, label, id);
    if (slot != UINT32_MAX) mark_deleted(&ix->d, slot);
    pthread_rwlock_unlock(&ix->lock);
    if (slot == UINT32_MAX) {
        if (id)
            return ap_err_set(err, AP_ERR_NOT_FOUND, NULL, "vector not found",
                              "check the id", "no vector with id \"%s\"", id);
        return ap_err_set(err, AP_ERR_NOT_FOUND, NULL, "vector not found", "check the label",
                          "no vector with label %llu", (unsigned long long)label);
    }
    return AP_OK;
}

bool ap_vec_contains(ap_vec_t *ix, uint64_t label, const char *id) {
    if (id && check_id(id, NULL)) return false;
    pthread_rwlock_rdlock(&ix->lock);
    bool found = vec_map_find(&ix->d, label, id) != UINT32_MAX;
    pthread_rwlock_unlock(&ix->lock);
    return found;
}

/* ---- search --------------------------------------------------------------- */

static void fill_hit(const ap_vec_t *ix, ap_vec_hit_t *h, cand_t c) {
    h->label = ix->d.labels[c.id];
    h->score = 1.0f - c.d;
    const char *id = ix->d.ids[c.id];
    h->has_id = id != NULL;
    if (id) {
        size_t n = strlen(id);
        memcpy(h->id, id, n + 1);
    } else {
        h->id[0] = '\0';
    }
}

/* Exact: every accepted slot, a max-heap of the k best. */
static bool search_exact(ap_vec_t *ix, vec_scratch_t *s, const float *q, size_t k,
                         const accept_t *a) {
    s->res_n = 0;
    if (!heap_reserve(ix, &s->res, &s->res_cap, k + 1)) return false;
    for (uint32_t i = 0; i < ix->d.count; i++) {
        if (!accepted(ix, a, i)) continue;
        float d = dist(ix, q, i);
        if (s->res_n < k) {
            heap_push(s->res, &s->res_n, (cand_t){d, i}, 1);
        } else if (d < s->res[0].d) {
            heap_pop(s->res, &s->res_n, 1);
            heap_push(s->res, &s->res_n, (cand_t){d, i}, 1);
        }
    }
    return true;
}

static bool search_hnsw(ap_vec_t *ix, vec_scratch_t *s, const float *q, size_t ef,
                        const accept_t *a) {
    uint32_t ep = ix->d.entry;
    float epd = dist(ix, q, ep);
    for (int l = ix->d.max_level; l > 0; l--) greedy(ix, q, &ep, &epd, l);
    return search_layer(ix, s, q, ep, epd, ef, 0, a);
}

ap_rc ap_vec_search(ap_vec_t *ix, const float *query, size_t k, const ap_vec_query_opts_t *opts,
                    ap_vec_hit_t *hits, size_t *n, ap_err_t *err) {
    *n = 0;
    ap_vec_query_opts_t o = opts ? *opts : (ap_vec_query_opts_t){0};
    if (k == 0) return AP_OK;
    if (k > 65536)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "k too large",
                          "ask for at most 65536 results", "k is %zu", k);
    size_t ef = o.ef ? o.ef : ix->p.ef_search;
    if (ef < k) ef = k;
    pthread_rwlock_rdlock(&ix->lock);
    vec_scratch_t *s = scratch_get(ix, ix->d.count);
    if (!s) {
        pthread_rwlock_unlock(&ix->lock);
        return oom(err);
    }
    float *q = s->qbuf;
    memcpy(q, query, (size_t)ix->p.dim * sizeof(float));
    if (!ap_vec_normalize(q, ix->p.dim)) {
        scratch_put(ix, s);
        pthread_rwlock_unlock(&ix->lock);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid query vector",
                          "send a non-zero vector of finite numbers",
                          "the query vector is zero or has a non-finite component");
    }
    /* nothing deleted and no filter: every node is a result, no flag reads */
    accept_t a = {o.filter, o.filter_arg, ix->d.deleted > 0 || o.filter};
    bool exact = (o.flags & AP_VEC_EXACT) || ix->d.max_level < 0 ||
                 ix->d.linked < ix->d.count || ix->d.live < ix->p.exact_threshold;
    bool ok = true;
    if (ix->d.live == 0) {
        s->res_n = 0;
    } else if (exact) {
        ok = search_exact(ix, s, q, k, &a);
    } else {
        ok = search_hnsw(ix, s, q, ef, &a);
        if (ok && s->res_n < k && s->res_n < ix->d.live) ok = search_exact(ix, s, q, k, &a);
    }
    if (ok) {
        while (s->res_n > k) heap_pop(s->res, &s->res_n, 1);
        size_t m = s->res_n;
        for (size_t i = m; i > 0; i--) fill_hit(ix, &hits[i - 1], heap_pop(s->res, &s->res_n, 1));
        *n = m;
    }
    scratch_put(ix, s);
    pthread_rwlock_unlock(&ix->lock);
    return ok ? AP_OK : oom(err);
}

/* ---- resumable search ------------------------------------------------------
 * C (s->cand, min-heap) holds every discovered node not yet expanded (never
 * pruned, so a search can go on); W (s->res, max-heap) the ef nearest
 * accepted nodes not yet handed out; D (over, min-heap) the accepted nodes
 * farther than all of W.  A batch: refill W from D, expand C's nearest
 * until W is full and no candidate is nearer than W's farthest, then sort
 * W into the ready list and hand it out.  Exact mode puts every accepted
 * item into D and never expands. */

struct ap_vec_iter {
    ap_vec_t *ix;
    vec_scratch_t *s;
    accept_t a;
    size_t ef;
    cand_t *over, *ready;
    size_t over_n, over_cap, ready_n, ready_pos, ready_cap;
    uint64_t visited;
};

static void heapify_min(cand_t *h, size_t n) {
    for (size_t i = n / 2; i-- > 0;) {
        cand_t x = h[i];
        size_t j = i;
        for (;;) {
            size_t l = 2 * j + 1, b = j;
            float bd = x.d;
            if (l < n && h[l].d < bd) b = l, bd = h[l].d;
            if (l + 1 < n && h[l + 1].d < bd) b = l + 1;
            if (b == j) break;
            h[j] = h[b];
            j = b;
        }
        h[j] = x;
    }
}

static bool iter_accept(ap_vec_iter_t *it, cand_t c) {
    vec_scratch_t *s = it->s;
    if (s->res_n < it->ef) {
        heap_push(s->res, &s->res_n, c, 1);
        return true;
    }
    if (!heap_reserve(it->ix, &it->over, &it->over_cap, it->over_n + 1)) return false;
    if (c.d < s->res[0].d) {
        cand_t far = heap_pop(s->res, &s->res_n, 1);
        heap_push(s->res, &s->res_n, c, 1);
        c = far;
    }
    heap_push(it->over, &it->over_n, c, -1);
    return true;
}

/* Produces the next batch into it->ready; false when out of memory. */
static bool iter_batch(ap_vec_iter_t *it) {
    ap_vec_t *ix = it->ix;
    vec_scratch_t *s = it->s;
    while (s->res_n < it->ef && it->over_n)
        heap_push(s->res, &s->res_n, heap_pop(it->over, &it->over_n, -1), 1);
    while (s->cand_n) {
        cand_t c = s->cand[0];
        if (s->res_n >= it->ef && c.d > s->res[0].d) break;
        heap_pop(s->cand, &s->cand_n, -1);
        const uint32_t *l = links_at(ix, c.id, 0);
        uint32_t deg = l[0];
        for (uint32_t i = 1; i <= deg; i++)
            __builtin_prefetch(ix->d.vecs + (size_t)l[i] * ix->p.dim);
        if (!heap_reserve(ix, &s->cand, &s->cand_cap, s->cand_n + deg)) return false;
        for (uint32_t i = 1; i <= deg; i++) {
            uint32_t n = l[i];
            if (s->tags[n] == s->tag) continue;
            s->tags[n] = s->tag;
            cand_t x = {dist(ix, s->qbuf, n), n};
            it->visited++;
            heap_push(s->cand, &s->cand_n, x, -1);
            if (accepted(ix, &it->a, n) && !iter_accept(it, x)) return false;
        }
    }
    /* W, nearest first, becomes the ready list */
    if (!heap_reserve(ix, &it->ready, &it->ready_cap, s->res_n)) return false;
    size_t n = s->res_n;
    for (size_t i = n; i > 0; i--) it->ready[i - 1] = heap_pop(s->res, &s->res_n, 1);
    it->ready_n = n;
    it->ready_pos = 0;
    return true;
}

ap_rc ap_vec_iter_new(ap_vec_t *ix, const float *query, const ap_vec_query_opts_t *opts,
                      ap_vec_iter_t **out, ap_err_t *err) {
    *out = NULL;
    ap_vec_query_opts_t o = opts ? *opts : (ap_vec_query_opts_t){0};
    ap_vec_iter_t *it = vec_alloc(ix, sizeof *it);
    if (!it) return oom(err);
    memset(it, 0, sizeof *it);
    it->ix = ix;
    it->ef = o.ef ? o.ef : ix->p.ef_search;
    if (it->ef > 65536) it->ef = 65536;
    pthread_rwlock_rdlock(&ix->lock);
    it->s = scratch_get(ix, ix->d.count);
    if (!it->s) {
        pthread_rwlock_unlock(&ix->lock);
        vec_free(ix, it);
        return oom(err);
    }
    vec_scratch_t *s = it->s;
    memcpy(s->qbuf, query, (size_t)ix->p.dim * sizeof(float));
    if (!ap_vec_normalize(s->qbuf, ix->p.dim)) {
        ap_vec_iter_free(it);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid query vector",
                          "send a non-zero vector of finite numbers",
                          "the query vector is zero or has a non-finite component");
    }
    it->a = (accept_t){o.filter, o.filter_arg, ix->d.deleted > 0 || o.filter};
    bool exact = (o.flags & AP_VEC_EXACT) || ix->d.max_level < 0 ||
                 ix->d.linked < ix->d.count || ix->d.live < ix->p.exact_threshold;
    bool ok = heap_reserve(ix, &s->res, &s->res_cap, it->ef + 1) &&
              heap_reserve(ix, &s->cand, &s->cand_cap, 64);
    if (ok && ix->d.live == 0) {
        /* nothing to hand out */
    } else if (ok && exact) {
        ok = heap_reserve(ix, &it->over, &it->over_cap, ix->d.live);
        for (uint32_t i = 0; ok && i < ix->d.count; i++) {
            if (!accepted(ix, &it->a, i)) continue;
            it->over[it->over_n++] = (cand_t){dist(ix, s->qbuf, i), i};
        }
        it->visited = ix->d.count;
        if (ok) heapify_min(it->over, it->over_n);
    } else if (ok) {
        uint32_t ep = ix->d.entry;
        float epd = dist(ix, s->qbuf, ep);
        for (int l = ix->d.max_level; l > 0; l--) greedy(ix, s->qbuf, &ep, &epd, l);
        s->tags[ep] = s->tag;
        it->visited = 1;
        heap_push(s->cand, &s->cand_n, (cand_t){epd, ep}, -1);
        if (accepted(ix, &it->a, ep)) heap_push(s->res, &s->res_n, (cand_t){epd, ep}, 1);
    }
    if (!ok) {
        ap_vec_iter_free(it);
        return oom(err);
    }
    *out = it;
    return AP_OK;
}

ap_rc ap_vec_iter_next(ap_vec_iter_t *it, ap_vec_hit_t *hits, size_t max, size_t *n,
                       ap_err_t *err) {
    *n = 0;
    while (*n < max) {
        if (it->ready_pos == it->ready_n) {
            if (!iter_batch(it)) return oom(err);
            if (it->ready_n == 0) break;
        }
        size_t take = it->ready_n - it->ready_pos;
        if (take > max - *n) take = max - *n;
        for (size_t i = 0; i < take; i++) fill_hit(it->ix, &hits[*n + i], it->ready[it->ready_pos + i]);
        it->ready_pos += take;
        *n += take;
    }
    return AP_OK;
}

uint64_t ap_vec_iter_visited(const ap_vec_iter_t *it) {
    return it->visited;
}

void ap_vec_iter_free(ap_vec_iter_t *it) {
    if (!it) return;
    ap_vec_t *ix = it->ix;
    scratch_put(ix, it->s);
    pthread_rwlock_unlock(&ix->lock);
    vec_free(ix, it->over);
    vec_free(ix, it->ready);
    vec_free(ix, it);
}

/* ---- whole-index helpers --------------------------------------------------- */

ap_rc ap_vec_get(ap_vec_t *ix, uint64_t label, const char *id, float *out) {
    if (id && check_id(id, NULL)) return AP_ERR_NOT_FOUND;
    pthread_rwlock_rdlock(&ix->lock);
    uint32_t slot = vec_map_find(&ix->d, label, id);
    if (slot != UINT32_MAX)
        memcpy(out, ix->d.vecs + (size_t)slot * ix->p.dim, (size_t)ix->p.dim * sizeof(float));
    pthread_rwlock_unlock(&ix->lock);
    return slot == UINT32_MAX ? AP_ERR_NOT_FOUND : AP_OK;
}

void ap_vec_each(ap_vec_t *ix,
                 void (*fn)(uint64_t label, const char *id, const float *vec, void *arg),
                 void *arg) {
    pthread_rwlock_rdlock(&ix->lock);
    for (uint32_t i = 0; i < ix->d.count; i++)
        if (!(ix->d.flags[i] & VEC_F_DELETED))
            fn(ix->d.labels[i], ix->d.ids[i], ix->d.vecs + (size_t)i * ix->p.dim, arg);
    pthread_rwlock_unlock(&ix->lock);
}

ap_rc ap_vec_copy(ap_vec_t *src, const ap_vec_params_t *params, const ap_vec_alloc_t *alloc,
                  ap_vec_t **out, ap_err_t *err) {
    *out = NULL;
    if (params->dim != src->p.dim)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "dimension mismatch",
                          "copy into an index of the same dimension",
                          "source dim %u, copy dim %u", src->p.dim, params->dim);
    ap_vec_params_t p = *params;
    uint32_t threshold = p.exact_threshold;
    p.exact_threshold = UINT32_MAX; /* no linking while copying */
    ap_vec_t *dst;
    ap_rc rc = vec_create(&p, alloc ? alloc : &src->al, &dst, err);
    if (rc) return rc;
    pthread_rwlock_rdlock(&src->lock);
    if (src->d.live) rc = vec_reserve(dst, &dst->d, (uint32_t)src->d.live);
    for (uint32_t i = 0; !rc && i < src->d.count; i++) {
        if (src->d.flags[i] & VEC_F_DELETED) continue;
        rc = append(dst, src->d.labels[i], src->d.ids[i], src->d.vecs + (size_t)i * p.dim);
    }
    pthread_rwlock_unlock(&src->lock);
    dst->p.exact_threshold = threshold;
    if (rc) {
        ap_vec_release(dst);
        return oom(err);
    }
    *out = dst;
    return AP_OK;
}

ap_rc ap_vec_set_exact_threshold(ap_vec_t *ix, uint32_t threshold, ap_err_t *err) {
    pthread_rwlock_wrlock(&ix->lock);
    ix->p.exact_threshold = threshold;
    ap_rc rc = graph_wanted(ix) ? link_pending(ix) : AP_OK;
    pthread_rwlock_unlock(&ix->lock);
    return rc ? oom(err) : AP_OK;
}

/* ---- compaction and stats ------------------------------------------------ */

ap_rc ap_vec_compact(ap_vec_t *ix, ap_err_t *err) {
    ap_vec_t *tmp;
    ap_vec_params_t p = ix->p;
    ap_rc rc = vec_create(&p, &ix->al, &tmp, err);
    if (rc) return rc;
    pthread_rwlock_wrlock(&ix->lock);
    tmp->d.rng = ix->d.rng;
    if (ix->d.live) rc = vec_reserve(tmp, &tmp->d, (uint32_t)ix->d.live);
    for (uint32_t i = 0; !rc && i < ix->d.count; i++) {
        if (ix->d.flags[i] & VEC_F_DELETED) continue;
        rc = append(tmp, ix->d.labels[i], ix->d.ids[i], ix->d.vecs + (size_t)i * p.dim);
    }
    if (!rc) {
        vec_data_t old = ix->d;
        ix->d = tmp->d;
        tmp->d = old;
    }
    pthread_rwlock_unlock(&ix->lock);
    ap_vec_release(tmp);
    return rc ? oom(err) : AP_OK;
}

void ap_vec_stats(ap_vec_t *ix, ap_vec_stats_t *out) {
    pthread_rwlock_rdlock(&ix->lock);
    const vec_data_t *d = &ix->d;
    out->live = d->live;
    out->deleted = d->deleted;
    out->linked = d->max_level < 0 ? 0 : d->linked;
    out->dim = ix->p.dim;
    out->max_level = d->max_level < 0 ? 0 : (uint32_t)d->max_level;
    size_t per = (size_t)ix->p.dim * 4 + 8 + 2 + sizeof(char *) * 2 + (ix->m0 + 1) * 4;
    size_t b = sizeof *ix + (size_t)d->cap * per + (size_t)d->map_cap * 4;
    for (uint32_t i = 0; i < d->linked && d->max_level >= 0; i++)
        b += (size_t)d->levels[i] * (ix->p.m + 1) * 4;
    out->bytes = b;
    pthread_rwlock_unlock(&ix->lock);
}
