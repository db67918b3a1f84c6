/*
 * index.h - the vector index of the semantic tier: one partition per
 * (tenant, agent, embedder), searched by a blended score.
 *
 * 1. A partition holds each active memory's metadata (type, importance,
 *    times, access count, shared, the row's change sequence) and its
 *    embedding.  The vectors live in a src/vec index (one per partition);
 *    the partition adds an int8 code per vector for the exact scan.
 * 2. Search ranks by the caller's score, known to be at most
 *    w_sim · max(similarity, 0) + bound, where bound comes from the
 *    partition's maxima of the other terms (index.c explains).  Below
 *    AP_MEM_HNSW_MIN entries it is an exact scan; from there on the
 *    partition also gets an HNSW graph (built in the background) and,
 *    once calibrated, search pulls candidates from it in decreasing
 *    similarity until no unseen entry can reach the k-th best score.
 * 3. Partitions are loaded lazily by the caller's loader (under the
 *    partition's write lock, so a put that races a load is never lost),
 *    kept in sync by put/remove after commits and by deltas (apply), and
 *    carry the change sequence they reflect.  The database stays the
 *    truth: recall re-reads hits by id.
 * 4. Locks: one rwlock over the table of partitions (held only to find or
 *    create one), one writer-preferring rwlock per partition: searches of
 *    a partition share it, its writes take it exclusively, and partitions
 *    never wait for each other.  Everything here is thread-safe.
 */
#ifndef AP_MEMORY_INDEX_H
#define AP_MEMORY_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/id.h"

/* Live entries from which a partition gets an HNSW graph, unless
 * ap_mem_index_set_hnsw_min says otherwise (docs/memory.md). */
#define AP_MEM_HNSW_MIN 20000
/* The recall target of the graph path against the exact scan: a graph
 * that cannot reach it more cheaply than the scan is not used. */
#define AP_MEM_RECALL_TARGET 0.95
/* Default cap on candidates pulled from a graph per search before the
 * search gives up on the graph and scans (ap_mem_index_set_max_candidates). */
#define AP_MEM_MAX_CANDIDATES 4096

typedef struct {
    char id[AP_UUID_LEN];
    int type;          /* index into ap_mem_types */
    float importance;  /* 0..1 */
    int64_t created_ms;
    int64_t expires_ms; /* 0: never */
    int64_t access_count;
    int64_t last_access_ms; /* 0: never */
    bool shared;            /* a copy shared by another agent */
    int64_t seq;            /* the row's change sequence (0: unknown) */
} ap_mem_meta_t;

typedef struct {
    char id[AP_UUID_LEN];
    float similarity;
    double score;
} ap_mem_hit_t;

/* Maxima over a partition's entries of what the non-similarity terms of a
 * score depend on (upper bounds: removals do not lower them until the
 * next full pass). */
typedef struct {
    float max_importance;
    int64_t max_created_ms;
    int64_t max_access_count;
} ap_mem_bounds_t;

typedef bool (*ap_mem_filter_fn)(const ap_mem_meta_t *m, void *ud);
typedef double (*ap_mem_score_fn)(const ap_mem_meta_t *m, float similarity, void *ud);
/* An upper bound of score - w_sim · max(similarity, 0) over entries with
 * these maxima. */
typedef double (*ap_mem_bound_fn)(const ap_mem_bounds_t *b, void *ud);

enum { AP_MEM_SEARCH_EXACT = 1 << 0 /* the scan, even where a graph is used */ };

/* An upper bound of score - w_sim · max(similarity, 0) for one entry, for
 * every query issued from now on (or up to a documented margin before
 * now): computed when the entry's metadata changes and kept with it, so
 * the scan can pass over entries that cannot reach the k-th best without
 * reading their metadata (ap_mem_index_set_prior). */
typedef double (*ap_mem_prior_fn)(const ap_mem_meta_t *m);

typedef struct {
    ap_mem_filter_fn filter; /* NULL: every entry */
    ap_mem_score_fn score;   /* NULL: the similarity */
    void *ud;                /* passed to the three */
    double w_sim;            /* weight of the similarity in the score (1 without score) */
    ap_mem_bound_fn bound;   /* NULL: score is the similarity (bound 0) */
    float min_similarity;    /* entries below it are never results */
    unsigned flags;          /* AP_MEM_SEARCH_EXACT */
    bool use_prior;          /* score is what the index's prior bounds */
} ap_mem_query_t;

enum { AP_MEM_PATH_NONE, AP_MEM_PATH_SCAN, AP_MEM_PATH_GRAPH, AP_MEM_PATH_GRAPH_CAPPED };

/* What a search did (for metrics, calibration and the benchmark). */
typedef struct {
    int path;        /* AP_MEM_PATH_*: GRAPH_CAPPED = the graph gave up at the cap, then scan */
    int pulled;      /* candidates taken from the graph */
    bool sample;     /* the caller should queue this query for ap_mem_index_calibrate */
} ap_mem_search_info_t;

typedef struct ap_mem_index ap_mem_index_t;
typedef struct ap_mem_part ap_mem_part_t;

ap_mem_index_t *ap_mem_index_new(void);
void ap_mem_index_free(ap_mem_index_t *ix); /* accepts NULL */

/* Makes sure the partition `key` is loaded: when it is not, calls
 * load(ud, part) under the partition's write lock; load adds entries with
 * ap_mem_part_add, sets the sequence with ap_mem_part_set_seq and returns
 * AP_OK, or fails (the partition stays unloaded and the next call tries
 * again). */
typedef ap_rc (*ap_mem_loader_fn)(void *ud, ap_mem_part_t *part, ap_err_t *err);
ap_rc ap_mem_index_ensure(ap_mem_index_t *ix, const char *key, ap_mem_loader_fn load, void *ud,
                          ap_err_t *err);

/* Inside a loader or an apply callback only (the partition is locked). */
/* Adds m->id (vec: dim floats, copied), or replaces the metadata of the
 * entry that has it (an id's vector never changes within a partition:
 * another embedder is another partition).  Refused (false) when dim
 * differs from the partition's, or when m->seq is older than the entry's. */
bool ap_mem_part_add(ap_mem_part_t *p, const ap_mem_meta_t *m, const float *vec, int dim);
/* Replaces the metadata of an entry that exists (false otherwise; the
 * vector is kept).  Same seq rule. */
bool ap_mem_part_update(ap_mem_part_t *p, const ap_mem_meta_t *m);
void ap_mem_part_remove(ap_mem_part_t *p, const char *id);
bool ap_mem_part_has(ap_mem_part_t *p, const char *id);
int ap_mem_part_size(ap_mem_part_t *p);
int64_t ap_mem_part_seq(ap_mem_part_t *p);
void ap_mem_part_set_seq(ap_mem_part_t *p, int64_t seq);
/* Empties the partition (a loader that gives up on a file and reads the
 * database instead). */
void ap_mem_part_clear(ap_mem_part_t *p);
const char *ap_mem_part_key(ap_mem_part_t *p);

/* The sequence a loaded partition reflects; -1 when it is not loaded. */
int64_t ap_mem_index_seq(ap_mem_index_t *ix, const char *key);
/* Runs fn(ud, part) under the partition's write lock when the partition
 * is loaded and reflects less than to_seq, then sets its sequence to
 * to_seq; returns whether it ran. */
typedef void (*ap_mem_apply_fn)(void *ud, ap_mem_part_t *part);
bool ap_mem_index_apply(ap_mem_index_t *ix, const char *key, int64_t to_seq, ap_mem_apply_fn fn,
                        void *ud);

/* After a commit of this process.  Adds (as ap_mem_part_add) / removes an
 * entry of a loaded partition (no-op when it is not loaded: its loader will read
 * the row).  seq is the change sequence the commit took (0: unknown):
 * when the partition reflected seq - 1 it now reflects seq. */
void ap_mem_index_put(ap_mem_index_t *ix, const char *key, const ap_mem_meta_t *m,
                      const float *vec, int dim, int64_t seq);
void ap_mem_index_remove(ap_mem_index_t *ix, const char *key, const char *id, int64_t seq);
/* A commit that changed nothing in the partition still moves it on. */
void ap_mem_index_advance(ap_mem_index_t *ix, const char *key, int64_t seq);
/* Access counts written by this process at seq: applied (access_count +=
 * counts[i], last access = max) only when the partition reflected exactly
 * seq - 1, since a partition that has moved past it read the counts from
 * the database already, and one behind it will. */
void ap_mem_index_accessed(ap_mem_index_t *ix, const char *key, const char (*ids)[AP_UUID_LEN],
                           const int64_t *counts, int64_t last_ms, int n, int64_t seq);
/* Drops a whole partition (the next ensure reloads it). */
void ap_mem_index_drop(ap_mem_index_t *ix, const char *key);

/* Best k by score among entries passing the filter, whose similarity is at
 * least q->min_similarity; writes up to k hits into out, best first, and
 * returns how many.  A query of another dim than the partition's finds
 * nothing.  info may be NULL. */
int ap_mem_index_search(ap_mem_index_t *ix, const char *key, const float *query, int dim, int k,
                        const ap_mem_query_t *q, ap_mem_hit_t *out, ap_mem_search_info_t *info);

/* Calibration of the graph path on one sampled query (a background
 * thread runs it; index.c explains): the exact answer against the graph's
 * at the partition's ef (or, while calibrating, at every ef it may
 * choose), updating the partition's choice. */
void ap_mem_index_calibrate(ap_mem_index_t *ix, const char *key, const float *query, int dim,
                            int k, const ap_mem_query_t *q);

/* Builds the HNSW graph of every loaded partition that has reached the
 * threshold and has none, one after the other, without holding the
 * partition's lock while building.  Returns how many were installed. */
int ap_mem_index_build(ap_mem_index_t *ix);
/* Whether the partition has reached the threshold and has no graph. */
bool ap_mem_index_wants_build(ap_mem_index_t *ix, const char *key);
/* Another threshold (n <= 0: the default; INT_MAX: never). */
void ap_mem_index_set_hnsw_min(ap_mem_index_t *ix, int n);
void ap_mem_index_set_max_candidates(ap_mem_index_t *ix, int n);
/* The per-entry bound of queries with use_prior; set before the first
 * partition is created. */
void ap_mem_index_set_prior(ap_mem_index_t *ix, ap_mem_prior_fn prior);
/* Benchmarks and tests: use the graph at this beam from now on, without
 * calibrating (0: calibrate again).  No effect without a graph. */
void ap_mem_index_force_graph(ap_mem_index_t *ix, const char *key, int ef);
/* Entries in a partition (-1 when not loaded). */
int ap_mem_index_size(ap_mem_index_t *ix, const char *key);

/* Where a partition with a graph stands (index.c, "Calibration"). */
enum { AP_MEM_CAL_NONE, AP_MEM_CAL_LEARN, AP_MEM_CAL_USE, AP_MEM_CAL_OFF };

/* The state of one partition, for saving and for tests. */
typedef struct {
    char key[256];
    int n;
    bool loaded, has_graph, graph_used; /* graph_used: calibrated and chosen */
    bool from_file;                     /* loaded from its file (not the database) */
    int ef;                             /* the graph search's beam (0: none) */
    int cal;                            /* AP_MEM_CAL_* (NONE without a graph) */
    int64_t seq;
    uint64_t unsaved; /* changes since the last save or load */
} ap_mem_part_info_t;
/* Every partition's state into a new array (*out, ap_free) of *n. */
void ap_mem_index_list(ap_mem_index_t *ix, ap_mem_part_info_t **out, int *n);
bool ap_mem_index_info(ap_mem_index_t *ix, const char *key, ap_mem_part_info_t *out);

/* ---- files (index_file.c) ----
 * A partition file holds the metadata, the calibration and the src/vec
 * index (vectors and graph) of one partition, with the change sequence
 * it reflects; docs/vector-index.md has the format. */

/* Saves the partition `key` to path (path.tmp, fsync, rename).  The
 * partition's read lock is held only while its metadata is copied; the
 * vectors are written under the vec index's read lock.  AP_ERR_NOT_FOUND
 * when the partition is not loaded. */
ap_rc ap_mem_index_save(ap_mem_index_t *ix, const char *key, const char *path, ap_err_t *err);
/* Inside a loader: fills the empty partition from the file at path, which
 * must be the partition's own (its key is in the file); the partition then
 * reflects the file's sequence.  AP_ERR_NOT_FOUND: no file; AP_ERR_INVALID:
 * not a valid partition file (the detail says why; the partition is left
 * empty); AP_ERR_IO: unreadable. */
ap_rc ap_mem_part_load_file(ap_mem_part_t *p, const char *path, ap_err_t *err);
/* The same from an open stream (the fuzz target). */
ap_rc ap_mem_part_load_fp(ap_mem_part_t *p, FILE *f, ap_err_t *err);

#endif
