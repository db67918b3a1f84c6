/*
 * vec.h - a vector index: HNSW graph with exact search for small indexes,
 * cosine similarity on float32 vectors, save/load to a checksummed file.
 *
 * A standalone library: libc, pthreads and core/err.h only; no server header.
 * docs/vector-index.md describes the algorithm, the parameters, the file
 * format and the concurrency contract.
 *
 * Usage:
 *
 *     ap_vec_params_t p = ap_vec_params_default(384);   // dim fixed per index
 *     ap_vec_t *ix;
 *     if (ap_vec_new(&p, NULL, &ix, &err)) ...           // NULL: malloc/realloc/free
 *     ap_vec_add(ix, 42, NULL, embedding, &err);         // label 42 (or a string id)
 *     ap_vec_hit_t hits[10]; size_t n;
 *     ap_vec_search(ix, query, 10, &(ap_vec_query_opts_t){.ef = 64}, hits, &n, &err);
 *     ap_vec_delete(ix, 42, NULL);                       // excluded from results at once
 *     ap_vec_save(ix, "/path/agent.vec", &err);          // atomic: temp file + rename
 *     ap_vec_release(ix);                                // frees at the last reference
 *
 * 1. Similarity is cosine: vectors are normalised on insert (and queries on
 *    search), the score is their inner product in [-1, 1], higher is closer.
 *    A zero vector or a non-finite component is refused (AP_ERR_INVALID).
 * 2. Labels: an item is named by a 64-bit label, or by a string id (1 to
 *    AP_VEC_ID_MAX-1 bytes) when `id` is not NULL.  Both name spaces live in
 *    one index; adding a label or id that exists replaces its vector.
 * 3. Delete marks the slot deleted: it leaves results at once and stays in
 *    the graph as a waypoint.  Slots are not reused; ap_vec_compact rebuilds
 *    the index from the live items (ap_vec_stats says how many are deleted).
 * 4. Below params.exact_threshold live items (default 2,000) the graph is not
 *    built and every search is exact (brute force); the graph is built when
 *    the index grows past it.  AP_VEC_EXACT forces an exact search.
 * 5. Concurrency: every function may be called from any thread.  Searches
 *    take the index's read lock and run in parallel; add, delete, compact
 *    and load take the write lock.  The filter callback runs under the read
 *    lock and must not call back into the same index.
 * 6. Errors are ap_rc with an ap_err_t (err may be NULL).  Allocation
 *    failure of the injected allocator returns AP_ERR_LIMIT.
 */
#ifndef AP_VEC_VEC_H
#define AP_VEC_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define AP_VEC_ID_MAX 64         /* string ids: at most 63 bytes */
#define AP_VEC_DIM_MAX 4096      /* dimension limit */
#define AP_VEC_FORMAT_VERSION 1u /* file format version written by ap_vec_save */

/* Injectable allocator; ctx is passed back to every call.  The struct is
 * copied at ap_vec_new, so it may live on the caller's stack. */
typedef struct {
    void *(*malloc)(void *ctx, size_t n);
    void *(*realloc)(void *ctx, void *p, size_t n);
    void (*free)(void *ctx, void *p);
    void *ctx;
} ap_vec_alloc_t;

/* The default: libc malloc/realloc/free. */
const ap_vec_alloc_t *ap_vec_alloc_default(void);

typedef struct {
    uint32_t dim;             /* vector dimension, 1..AP_VEC_DIM_MAX */
    uint32_t m;               /* graph degree on upper layers (2*m on layer 0); 4..64, default 16 */
    uint32_t ef_construction; /* candidate list while inserting; >= m, default 200 */
    uint32_t ef_search;       /* default ef of a search (query opts may override); default 64 */
    uint32_t exact_threshold; /* below this many live items search is exact; default 2000 */
    uint64_t seed;            /* level generator seed (deterministic builds); default 1 */
} ap_vec_params_t;

ap_vec_params_t ap_vec_params_default(uint32_t dim);

typedef struct ap_vec ap_vec_t;

/* A result: the item's label, or its string id (has_id), and its cosine score. */
typedef struct {
    uint64_t label;
    bool has_id;
    char id[AP_VEC_ID_MAX];
    float score;
} ap_vec_hit_t;

/* Filter: return true to keep the item. id is NULL for label items. */
typedef bool (*ap_vec_filter_fn)(uint64_t label, const char *id, void *arg);

enum { AP_VEC_EXACT = 1 << 0 };

typedef struct {
    uint32_t ef;             /* 0: params.ef_search; raised to k when smaller */
    ap_vec_filter_fn filter; /* NULL: every live item */
    void *filter_arg;
    unsigned flags;          /* AP_VEC_EXACT */
} ap_vec_query_opts_t;

typedef struct {
    uint64_t live;     /* items that searches can return */
    uint64_t deleted;  /* slots marked deleted (reclaimed by ap_vec_compact) */
    uint64_t linked;   /* slots in the HNSW graph (0 while below the threshold) */
    uint32_t dim;
    uint32_t max_level;
    size_t bytes;      /* memory held by the index, approximately */
} ap_vec_stats_t;

/* Creates an empty index (reference count 1).  alloc NULL: the default. */
ap_rc ap_vec_new(const ap_vec_params_t *params, const ap_vec_alloc_t *alloc, ap_vec_t **out,
                 ap_err_t *err);
/* Reference counting for shared indexes (ap_vec_store hands out references). */
void ap_vec_retain(ap_vec_t *ix);
void ap_vec_release(ap_vec_t *ix); /* NULL is harmless */

/* Adds or replaces an item.  id NULL: the item is named by label; otherwise
 * by the string id (label is then stored alongside and returned in hits). */
ap_rc ap_vec_add(ap_vec_t *ix, uint64_t label, const char *id, const float *vec, ap_err_t *err);
/* Marks an item deleted.  AP_ERR_NOT_FOUND when there is none. */
ap_rc ap_vec_delete(ap_vec_t *ix, uint64_t label, const char *id, ap_err_t *err);
/* true when the item exists and is not deleted. */
bool ap_vec_contains(ap_vec_t *ix, uint64_t label, const char *id);

/* The k nearest live items accepted by the filter, best first, into
 * hits[0..*n).  opts may be NULL.  *n < k when fewer items qualify.  An HNSW
 * search that finds fewer than k accepted items (a selective filter) is
 * repeated exactly, so a filter never hides an item that qualifies. */
ap_rc ap_vec_search(ap_vec_t *ix, const float *query, size_t k, const ap_vec_query_opts_t *opts,
                    ap_vec_hit_t *hits, size_t *n, ap_err_t *err);

/* ---- resumable search ----------------------------------------------------
 * An iterator hands out the live items accepted by the filter in batches,
 * nearest first within a batch, for as long as the caller asks: a caller
 * whose stopping rule depends on what it has seen (e.g. a ranking that
 * blends similarity with other terms, docs/memory.md) pulls until it can
 * stop.  Each batch is the `ef` best items the graph search has settled
 * (no unexpanded candidate is closer than any of them, HNSW's own
 * termination rule), so the first batch is what ap_vec_search(k = ef)
 * returns and later batches continue the same search; across batches the
 * order is approximate (a later batch may hold an item closer than one
 * already given).  Rejected and deleted items are walked through but never
 * returned, so a filter is applied during the search.  Below the exact
 * threshold (or with AP_VEC_EXACT) every accepted item is scored once and
 * handed out in exact order.
 *
 * The iterator holds the index's read lock from ap_vec_iter_new to
 * ap_vec_iter_free: keep it short, and do not write to the same index from
 * the thread that holds it. */
typedef struct ap_vec_iter ap_vec_iter_t;

ap_rc ap_vec_iter_new(ap_vec_t *ix, const float *query, const ap_vec_query_opts_t *opts,
                      ap_vec_iter_t **out, ap_err_t *err);
/* Up to max next items into hits[0..*n); *n == 0 when every accepted item
 * reachable has been handed out. */
ap_rc ap_vec_iter_next(ap_vec_iter_t *it, ap_vec_hit_t *hits, size_t max, size_t *n,
                       ap_err_t *err);
/* Items whose distance the iterator has computed so far (its cost). */
uint64_t ap_vec_iter_visited(const ap_vec_iter_t *it);
void ap_vec_iter_free(ap_vec_iter_t *it); /* NULL is harmless; releases the read lock */

/* ---- whole-index helpers ------------------------------------------------- */

/* Copies the normalised vector of a live item into out (dim floats);
 * AP_ERR_NOT_FOUND when there is none. */
ap_rc ap_vec_get(ap_vec_t *ix, uint64_t label, const char *id, float *out);
/* Calls fn for every live item (under the read lock; fn must not call
 * back into ix). */
void ap_vec_each(ap_vec_t *ix,
                 void (*fn)(uint64_t label, const char *id, const float *vec, void *arg),
                 void *arg);
/* A new index with params (the same dim) holding src's live items, their
 * names and vectors, without any graph: fast (a copy under src's read
 * lock).  params.exact_threshold decides when the copy's graph is built;
 * set it high to copy now and build later with ap_vec_set_exact_threshold
 * outside any lock the caller holds. */
ap_rc ap_vec_copy(ap_vec_t *src, const ap_vec_params_t *params, const ap_vec_alloc_t *alloc,
                  ap_vec_t **out, ap_err_t *err);
/* Changes the exact threshold; when the index has reached it and has no
 * graph yet, links every item now (as long as building the graph takes,
 * under the write lock). */
ap_rc ap_vec_set_exact_threshold(ap_vec_t *ix, uint32_t threshold, ap_err_t *err);

/* Rebuilds the index from its live items, dropping deleted slots. */
ap_rc ap_vec_compact(ap_vec_t *ix, ap_err_t *err);
void ap_vec_stats(ap_vec_t *ix, ap_vec_stats_t *out);
ap_vec_params_t ap_vec_params(const ap_vec_t *ix);

/* Save: writes path.tmp, fsyncs, renames over path.  Load: AP_ERR_INVALID
 * with a detail for a file that is not an index, has another version, is
 * truncated or fails its checksum; AP_ERR_IO when it cannot be read.
 * alloc NULL: the default. The _fp forms read/write an open stream. */
ap_rc ap_vec_save(ap_vec_t *ix, const char *path, ap_err_t *err);
ap_rc ap_vec_save_fp(ap_vec_t *ix, FILE *f, ap_err_t *err);
ap_rc ap_vec_load(const char *path, const ap_vec_alloc_t *alloc, ap_vec_t **out, ap_err_t *err);
ap_rc ap_vec_load_fp(FILE *f, const ap_vec_alloc_t *alloc, ap_vec_t **out, ap_err_t *err);

/* Normalises v in place; false for a zero or non-finite vector. */
bool ap_vec_normalize(float *v, uint32_t dim);
/* Inner product (cosine of normalised vectors). */
float ap_vec_dot(const float *a, const float *b, uint32_t dim);

#endif
