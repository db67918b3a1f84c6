/*
 * mem_internal.h - what memory.c (the service's operations) and sync.c
 * (keeping the index in step with the database: loading, change
 * sequences, files, access counts, background threads) share.  Not for
 * other modules.
 */
#ifndef AP_MEMORY_MEM_INTERNAL_H
#define AP_MEMORY_MEM_INTERNAL_H

#include <pthread.h>

#include "memory/index.h"
#include "memory/memory.h"

#define MEM_COLS                                                                              \
    "id, tenant_id, agent_id, memory_type, content, subject, importance, source,"             \
    " source_task_id, embedder, dim, access_count, last_accessed_at, shared_from_memory_id," \
    " shared_from_agent_id, status, superseded_by, expires_at, created_at, updated_at"

typedef struct mem_job mem_job_t;
typedef struct mem_acc mem_acc_t;
typedef struct mem_cal mem_cal_t;

struct ap_mem {
    ap_db_t *db;
    struct ap_upstream *upstream;
    struct ap_usage_writer *usage;
    struct ap_llm_cache *cache;
    ap_mem_hot_t *hot;
    ap_mem_index_t *ix;
    char *dir;           /* partition files; NULL: none */
    int save_min;        /* partitions of this many entries are saved */
    int tombstone_days;  /* tombstones older than this are pruned */
    /* the worker: warm-up, re-embed, graph builds, calibration, saves */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mem_job_t *jobs;
    mem_cal_t *cals;
    int ncals;
    bool stop, has_worker, warmed;
    pthread_t worker;
    int64_t next_save_ms, next_prune_ms;
    /* access counts not yet written (sync.c), and their flusher */
    pthread_mutex_t acc_mu;
    pthread_cond_t acc_cv;
    mem_acc_t **acc;
    size_t nacc;
    bool acc_stop, has_flusher;
    pthread_t flusher;
};

/* An agent's memory configuration, read in a tenant transaction. */
typedef struct {
    const char *agent;    /* the agent's id (metering) */
    const char *embedder; /* "builtin" or a model id */
    int dim;              /* 0: model default */
    json_t *allow_share_to;
    bool accept_shared;
    double dup_threshold, contra_threshold, prune_min_importance, prune_after_days;
    const char *key; /* index partition key */
    const char *sig; /* "embedder@dim" as stored in rows (dim known after embed) */
} mem_cfg_t;

/* Recall's filters and the ranking's clock (a value: a calibration job
 * keeps a copy). */
typedef struct {
    unsigned types; /* bit per type; 0: all */
    double min_importance, min_similarity;
    int64_t since, until, now;
    bool include_shared;
} mem_filter_t;

/* memory.c */
ap_rc mem_load_agent(ap_tx_t *tx, const char *tenant, const char *agent, mem_cfg_t *c,
                     ap_err_t *err);
ap_rc mem_read_agent(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                     mem_cfg_t *c, ap_err_t *err);
ap_rc mem_embed(ap_mem_t *m, ap_arena_t *a, const char *tenant, const mem_cfg_t *c,
                const ap_actor_t *actor, const char *task, const char *const *texts, int n,
                float ***vecs, int *dim, const char **sig, ap_err_t *err);
const char *mem_vec_b64(ap_arena_t *a, const float *v, int dim);
bool mem_vec_unb64(const char *s, float *out, int dim);
ap_mem_meta_t mem_meta_of(const ap_rows_t *r, int i);
/* The search of a recall with these filters. */
ap_mem_query_t mem_query(mem_filter_t *f);
/* The index's prior for mem_query's score (ap_mem_index_set_prior). */
double mem_prior(const ap_mem_meta_t *mt);

/* sync.c */
/* Loads the agent's partition if needed (from its file, else the
 * database) and applies what changed in the database since (the delta
 * behind the agent's change sequence). */
ap_rc mem_ensure(ap_mem_t *m, ap_tx_t *tx, const char *tenant, const char *agent,
                 const mem_cfg_t *c, ap_err_t *err);
/* The agent's next change sequence, taken in tx (its counter row stays
 * locked until the commit, so writers of one agent commit in sequence
 * order). */
ap_rc mem_next_seq(ap_tx_t *tx, const char *tenant, const char *agent, int64_t *seq,
                   ap_err_t *err);
/* A forgotten or deleted memory's tombstone: its id and sequence only. */
ap_rc mem_tombstone(ap_tx_t *tx, const char *tenant, const char *agent, const char *id,
                    int64_t seq, ap_err_t *err);
void mem_enqueue_reembed(ap_mem_t *m, const char *tenant, const char *agent);
void mem_want_graph(ap_mem_t *m, const char *key);
/* Counts one access of each id; written to the database by the flusher. */
void mem_access_note(ap_mem_t *m, const char *tenant, const char *agent, const char *key,
                     const char *const *ids, int n, int64_t now_ms);
/* Accesses of id counted here and not yet committed (the latest time in
 * *last_ms, 0 when none). */
int64_t mem_access_pending(ap_mem_t *m, const char *id, int64_t *last_ms);
/* Queues a sampled recall for calibration (dropped when the queue is full). */
void mem_calibrate_later(ap_mem_t *m, const char *key, const float *query, int dim, int k,
                         const mem_filter_t *f);
/* Re-embeds up to 64 rows; memory.c. */
int mem_reembed_batch(ap_mem_t *m, const char *tenant, const char *agent);

#endif
