/*
 * index.h - the vector index of the semantic tier: one partition per
 * (tenant, agent), exact search.
 *
 * 1. A partition holds each active memory's embedding and the metadata
 *    recall filters and ranks on (type, importance, times, access count,
 *    shared).  Search is an exact scan: cosine of the query with every
 *    vector (vectors are unit length, so a dot product), the caller's
 *    filter, then the caller's score, keeping the best k.  The interface
 *    is small; a partition of AP_MEM_HNSW_MIN entries or more also gets an
 *    HNSW graph (src/vec, built in the background) that replaces the scan
 *    for choosing candidates (index.c explains).
 * 2. Partitions are loaded lazily from the database (the caller's loader
 *    runs once per partition, under the write lock, so a put that races a
 *    load is never lost) and kept in sync by put/remove after commits.
 *    The database stays the truth: recall re-reads hits by id, so a stale
 *    entry can never return a forgotten memory.
 * 3. One rwlock over the index: searches share it, writes take it
 *    exclusively.  Thread-safe.
 */
#ifndef AP_MEMORY_INDEX_H
#define AP_MEMORY_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"

/* Live entries from which a partition also gets an HNSW graph (src/vec),
 * unless ap_mem_index_set_hnsw_min says otherwise. */
#define AP_MEM_HNSW_MIN 20000

typedef struct {
    char id[AP_UUID_LEN];
    int type;          /* index into ap_mem_types */
    float importance;  /* 0..1 */
    int64_t created_ms;
    int64_t expires_ms; /* 0: never */
    int64_t access_count;
    int64_t last_access_ms; /* 0: never */
    bool shared;            /* a copy shared by another agent */
} ap_mem_meta_t;

typedef struct {
    char id[AP_UUID_LEN];
    float similarity;
    double score;
} ap_mem_hit_t;

typedef struct ap_mem_index ap_mem_index_t;
typedef struct ap_mem_part ap_mem_part_t;

ap_mem_index_t *ap_mem_index_new(void);
void ap_mem_index_free(ap_mem_index_t *ix); /* accepts NULL */

/* Makes sure the partition `key` is loaded: when it is not, calls
 * load(ud, part) with the index locked; load adds entries with
 * ap_mem_part_add and returns AP_OK, or fails (the partition stays
 * unloaded and the next call tries again). */
typedef ap_rc (*ap_mem_loader_fn)(void *ud, ap_mem_part_t *part, ap_err_t *err);
ap_rc ap_mem_index_ensure(ap_mem_index_t *ix, const char *key, ap_mem_loader_fn load, void *ud,
                          ap_err_t *err);
/* Inside a loader only.  vec (dim floats) is copied.  Entries whose dim
 * differs from the partition's first entry are refused (false). */
bool ap_mem_part_add(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim);

/* Adds or replaces id in a loaded partition (no-op when the partition is
 * not loaded: its loader will read the row).  Thread-safe. */
void ap_mem_index_put(ap_mem_index_t *ix, const char *key, const ap_mem_meta_t *m,
                      const float *vec, int dim);
void ap_mem_index_remove(ap_mem_index_t *ix, const char *key, const char *id);
/* Drops a whole partition (an embedder change; the next ensure reloads). */
void ap_mem_index_drop(ap_mem_index_t *ix, const char *key);
/* access_count += 1, last_access_ms = now for id. */
void ap_mem_index_touch(ap_mem_index_t *ix, const char *key, const char *id, int64_t now_ms);

typedef bool (*ap_mem_filter_fn)(const ap_mem_meta_t *m, void *ud);
typedef double (*ap_mem_score_fn)(const ap_mem_meta_t *m, float similarity, void *ud);
/* Best k by score among entries passing filter (NULL: all); writes up to k
 * hits into out, best first, and returns how many.  A query of another
 * dim than the partition's finds nothing. */
int ap_mem_index_search(ap_mem_index_t *ix, const char *key, const float *query, int dim, int k,
                        ap_mem_filter_fn filter, ap_mem_score_fn score, void *ud,
                        ap_mem_hit_t *out);
/* The same, for a score known to be at most bound_w * max(similarity, 0)
 * + bound_extra: entries that cannot reach the k-th best are not scored
 * (bound_w 0: no bound). */
int ap_mem_index_search_bounded(ap_mem_index_t *ix, const char *key, const float *query, int dim,
                                int k, ap_mem_filter_fn filter, ap_mem_score_fn score, void *ud,
                                double bound_w, double bound_extra, ap_mem_hit_t *out);
/* Builds the HNSW graph of every loaded partition that has reached the
 * threshold and has none, one after the other, without holding the index
 * lock while building (a background thread calls it).  Returns how many
 * graphs were installed. */
int ap_mem_index_build(ap_mem_index_t *ix);
/* Whether the partition has reached the threshold and has no graph. */
bool ap_mem_index_wants_build(ap_mem_index_t *ix, const char *key);
/* Tests: another threshold (n <= 0: the default). */
void ap_mem_index_set_hnsw_min(ap_mem_index_t *ix, int n);
/* Entries in a partition (-1 when not loaded). */
int ap_mem_index_size(ap_mem_index_t *ix, const char *key);

#endif
