/*
 * sync.c - keeping the memory index in step with the database, and the
 * memory service's background work (mem_internal.h, memory.h).
 *
 * 1. Change sequences.  Every transaction that writes an agent's memories
 *    takes the agent's next sequence from its counter row in
 *    agent_memory_seq (INSERT … ON CONFLICT DO UPDATE … RETURNING) and
 *    stamps the rows it writes (agent_memories.change_seq) or the
 *    tombstones of the rows it deletes (agent_memory_tombstones: tenant,
 *    agent, memory id, sequence, time; no content).  The counter row
 *    stays locked until the commit, so one agent's writers commit in
 *    sequence order: a reader that sees counter S also sees every change
 *    up to S, whatever the isolation level.
 * 2. A partition reflects a sequence.  Loading reads the counter first,
 *    then the rows, and reflects that first value: a change committed
 *    while it loads is at most applied twice.  Each recall reads the
 *    counter (one primary-key lookup); when it moved, the rows with a
 *    larger change_seq and the tombstones are applied (only metadata for
 *    entries already there: within one embedder an entry's vector never
 *    changes), so memories remembered, forgotten or updated by another
 *    process are seen at the next recall.  A delta of more than
 *    DELTA_MAX rows, a counter behind the partition (a restored
 *    database), or tombstones pruned past it reload the partition.
 * 3. Files.  With a directory, a partition of save_min entries or more
 *    (or with a graph) is saved to <dir>/<tenant>/<agent>-<hash>.idx at
 *    shutdown, after a graph is built, and in the background once enough
 *    has changed.  Loading tries the file first: it must name the
 *    partition, pass its checksums, reflect a sequence neither ahead of
 *    the counter nor behind the pruned tombstones, and, once the delta is
 *    applied, hold as many entries as the database has active rows of
 *    that embedder; otherwise it is logged and the partition is read from
 *    the database.  Each node keeps its own files.
 * 4. Access counts.  Recall counts its hits here (a map by memory id);
 *    a flusher thread writes them every FLUSH_MS in one transaction per
 *    tenant (one sequence per agent, so other nodes see them), off the
 *    request path.  Until written they are added to what the API shows.
 *    A crash loses at most the last FLUSH_MS of counts.
 * 5. The worker thread runs the start-up warm-up (every agent's partition
 *    from its file or the database, then graph builds), re-embedding,
 *    graph builds, calibration samples (at most CAL_QUEUE queued; more
 *    are dropped), background saves and, hourly, the pruning of
 *    tombstones older than tombstone_days.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/time.h"
#include "memory/mem_internal.h"

#define DELTA_MAX 10000
#define FLUSH_MS 200
#define CAL_QUEUE 4
#define SAVE_EVERY_MS 30000
#define PRUNE_EVERY_MS 3600000
#define ACC_BUCKETS 1024
#define FLUSH_CHUNK 100

enum { JOB_WARM, JOB_REEMBED, JOB_GRAPH };

struct mem_job {
    mem_job_t *next;
    int kind;
    char tenant[AP_UUID_LEN], agent[AP_UUID_LEN];
};

struct mem_cal {
    mem_cal_t *next;
    char key[256];
    float *q;
    int dim, k;
    mem_filter_t f;
};

struct mem_acc {
    mem_acc_t *next;
    char id[AP_UUID_LEN], tenant[AP_UUID_LEN], agent[AP_UUID_LEN];
    char key[256];
    int64_t pending, inflight, last_ms;
};

static void *worker_main(void *arg);
static void *flusher_main(void *arg);

/* ---------- the service object ---------- */

static void mkdirs(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(buf, 0700);
            *s = '/';
        }
    mkdir(buf, 0700);
}

ap_rc ap_mem_new(const ap_mem_opts_t *o, ap_mem_t **out, ap_err_t *err) {
    (void)err;
    ap_mem_t *m = ap_calloc(1, sizeof *m);
    m->db = o->db;
    m->upstream = o->upstream;
    m->usage = o->usage;
    m->cache = o->cache;
    m->hot = o->hot ? o->hot : ap_mem_hot_local_new(0, 0, NULL);
    m->ix = ap_mem_index_new();
    ap_mem_index_set_prior(m->ix, mem_prior);
    int hmin = o->hnsw_min < 0 ? INT_MAX : o->hnsw_min > 0 ? o->hnsw_min : AP_MEM_HNSW_MIN;
    ap_mem_index_set_hnsw_min(m->ix, hmin);
    ap_mem_index_set_max_candidates(m->ix, o->max_candidates);
    m->save_min = o->save_min > 0 ? o->save_min : hmin;
    m->tombstone_days = o->tombstone_days > 0 ? o->tombstone_days : AP_MEM_TOMBSTONE_DAYS;
    if (o->index_dir && *o->index_dir) {
        m->dir = ap_strdup(o->index_dir);
        mkdirs(m->dir);
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    pthread_mutex_init(&m->acc_mu, NULL);
    pthread_cond_init(&m->acc_cv, NULL);
    m->acc = ap_calloc(ACC_BUCKETS, sizeof *m->acc);
    int64_t now = ap_now_ms();
    m->next_save_ms = now + SAVE_EVERY_MS;
    m->next_prune_ms = now + 60000; /* the first prune a minute after start */
    if (!o->no_worker) {
        m->jobs = ap_calloc(1, sizeof *m->jobs); /* first: the warm-up */
        m->jobs->kind = JOB_WARM;
        m->has_worker = pthread_create(&m->worker, NULL, worker_main, m) == 0;
        m->has_flusher = pthread_create(&m->flusher, NULL, flusher_main, m) == 0;
    }
    *out = m;
    return AP_OK;
}

void ap_mem_stop_worker(ap_mem_t *m) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->has_worker) pthread_join(m->worker, NULL);
    m->has_worker = false;
    pthread_mutex_lock(&m->acc_mu);
    m->acc_stop = true;
    pthread_cond_broadcast(&m->acc_cv);
    pthread_mutex_unlock(&m->acc_mu);
    if (m->has_flusher) pthread_join(m->flusher, NULL);
    m->has_flusher = false;
}

void ap_mem_free(ap_mem_t *m) {
    if (!m) return;
    ap_mem_stop_worker(m);
    ap_mem_flush(m);
    if (m->dir) ap_mem_save(m, true);
    while (m->jobs) {
        mem_job_t *j = m->jobs;
        m->jobs = j->next;
        ap_free(j);
    }
    while (m->cals) {
        mem_cal_t *c = m->cals;
        m->cals = c->next;
        ap_free(c->q);
        ap_free(c);
    }
    for (size_t b = 0; b < ACC_BUCKETS; b++)
        while (m->acc[b]) {
            mem_acc_t *x = m->acc[b];
            m->acc[b] = x->next;
            ap_free(x);
        }
    ap_free(m->acc);
    ap_mem_hot_free(m->hot);
    ap_mem_index_free(m->ix);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->acc_cv);
    pthread_mutex_destroy(&m->acc_mu);
    ap_free(m->dir);
    ap_free(m);
}

ap_mem_hot_t *ap_mem_hot(ap_mem_t *m) { return m->hot; }
ap_db_t *ap_mem_db(ap_mem_t *m) { return m->db; }

static void push_job(ap_mem_t *m, int kind, const char *tenant, const char *agent) {
    pthread_mutex_lock(&m->mu);
    for (mem_job_t *j = m->jobs; j; j = j->next)
        if (j->kind == kind && !strcmp(j->tenant, tenant) && !strcmp(j->agent, agent)) {
            pthread_mutex_unlock(&m->mu);
            return;
        }
    mem_job_t *j = ap_calloc(1, sizeof *j);
    j->kind = kind;
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
    snprintf(j->agent, sizeof j->agent, "%s", agent);
    mem_job_t **pp = &m->jobs;
    while (*pp) pp = &(*pp)->next;
    *pp = j;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void mem_enqueue_reembed(ap_mem_t *m, const char *tenant, const char *agent) {
    push_job(m, JOB_REEMBED, tenant, agent);
}

void mem_want_graph(ap_mem_t *m, const char *key) {
    if (ap_mem_index_wants_build(m->ix, key)) push_job(m, JOB_GRAPH, "", "");
}

void mem_calibrate_later(ap_mem_t *m, const char *key, const float *query, int dim, int k,
                         const mem_filter_t *f) {
    pthread_mutex_lock(&m->mu);
    if (m->ncals < CAL_QUEUE && !m->stop) {
        mem_cal_t *c = ap_calloc(1, sizeof *c);
        snprintf(c->key, sizeof c->key, "%s", key);
        c->q = ap_malloc(sizeof *c->q * (size_t)dim);
        memcpy(c->q, query, sizeof *c->q * (size_t)dim);
        c->dim = dim;
        c->k = k;
        c->f = *f;
        mem_cal_t **pp = &m->cals;
        while (*pp) pp = &(*pp)->next;
        *pp = c;
        m->ncals++;
        pthread_cond_signal(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---------- change sequences ---------- */

ap_rc mem_next_seq(ap_tx_t *tx, const char *tenant, const char *agent, int64_t *seq,
                   ap_err_t *err) {
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO agent_memory_seq (tenant_id, agent_id, seq, pruned_seq)"
                           " VALUES (?, ?, 1, 0) ON CONFLICT (tenant_id, agent_id)"
                           " DO UPDATE SET seq = agent_memory_seq.seq + 1 RETURNING seq",
                           p, 2, &r, err);
    if (rc) return rc;
    *seq = ap_rows_int(&r, 0, "seq", 0);
    return AP_OK;
}

ap_rc mem_tombstone(ap_tx_t *tx, const char *tenant, const char *agent, const char *id,
                    int64_t seq, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent), AP_VTEXT(id), AP_VINT(seq), AP_VTEXT(now)};
    return ap_tx_query(tx,
                       "INSERT INTO agent_memory_tombstones (tenant_id, agent_id, memory_id,"
                       " change_seq, deleted_at) VALUES (?, ?, ?, ?, ?)",
                       p, 5, NULL, err);
}

static ap_rc read_counter(ap_tx_t *tx, const char *tenant, const char *agent, int64_t *seq,
                          int64_t *pruned, ap_err_t *err) {
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT seq, pruned_seq FROM agent_memory_seq"
                           " WHERE tenant_id = ? AND agent_id = ?",
                           p, 2, &r, err);
    if (rc) return rc;
    *seq = r.nrows ? ap_rows_int(&r, 0, "seq", 0) : 0;
    *pruned = r.nrows ? ap_rows_int(&r, 0, "pruned_seq", 0) : 0;
    return AP_OK;
}

/* ---------- deltas ---------- */

#define DELTA_COLS                                                                          \
    "id, memory_type, importance, created_at, expires_at, access_count, last_accessed_at," \
    " shared_from_memory_id, status, embedder, dim, embedding, change_seq"

typedef struct {
    ap_rows_t rows, tombs;
    const char *sig;
    int stale;
} delta_t;

/* Reads the changes after `after`; AP_ERR_LIMIT when there are too many. */
static ap_rc read_delta(ap_tx_t *tx, const char *tenant, const char *agent, int64_t after,
                        delta_t *d, ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent), AP_VINT(after), AP_VINT(DELTA_MAX + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " DELTA_COLS " FROM agent_memories WHERE tenant_id = ?"
                           " AND agent_id = ? AND change_seq > ? ORDER BY change_seq LIMIT ?",
                           p, 4, &d->rows, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT memory_id FROM agent_memory_tombstones WHERE tenant_id = ?"
                         " AND agent_id = ? AND change_seq > ? LIMIT ?",
                         p, 4, &d->tombs, err);
    if (!rc && (d->rows.nrows > DELTA_MAX || d->tombs.nrows > DELTA_MAX)) return AP_ERR_LIMIT;
    return rc;
}

static void apply_delta(void *ud, ap_mem_part_t *p) {
    delta_t *d = ud;
    float *v = NULL;
    int vdim = 0;
    for (int i = 0; i < d->rows.nrows; i++) {
        const ap_rows_t *r = &d->rows;
        const char *id = ap_rows_get(r, i, "id");
        const char *status = ap_rows_get(r, i, "status");
        const char *emb = ap_rows_get(r, i, "embedder");
        int dim = (int)ap_rows_int(r, i, "dim", 0);
        char sig[300];
        snprintf(sig, sizeof sig, "%s@%d", emb ? emb : "", dim);
        bool active = status && !strcmp(status, "active");
        if (!active || strcmp(sig, d->sig) || dim <= 0 || dim > 4096) {
            ap_mem_part_remove(p, id);
            if (active) d->stale++;
            continue;
        }
        ap_mem_meta_t mt = mem_meta_of(r, i);
        mt.seq = ap_rows_int(r, i, "change_seq", 0);
        if (ap_mem_part_has(p, id)) {
            ap_mem_part_update(p, &mt);
            continue;
        }
        if (dim != vdim) {
            v = ap_realloc(v, sizeof *v * (size_t)dim);
            vdim = dim;
        }
        if (!mem_vec_unb64(ap_rows_get(r, i, "embedding"), v, dim)) {
            d->stale++;
            continue;
        }
        ap_mem_part_add(p, &mt, v, dim);
    }
    for (int i = 0; i < d->tombs.nrows; i++) ap_mem_part_remove(p, ap_rows_at(&d->tombs, i, 0));
    ap_free(v);
}

/* ---------- loading ---------- */

typedef struct {
    ap_mem_t *m;
    ap_tx_t *tx;
    const char *tenant, *agent, *sig;
    int stale;
} load_ctx_t;

static uint64_t fnv(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool safe_part(const char *s, size_t n) {
    if (n == 0 || n >= AP_UUID_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

/* <dir>/<tenant>/<agent>-<hash of the embedder>.idx for a key
 * "tenant/agent/embedder@dim"; false without a directory or for a key of
 * another shape. */
static bool part_path(const ap_mem_t *m, const char *key, char *path, size_t cap, bool mkdir_) {
    if (!m->dir) return false;
    const char *s1 = strchr(key, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2 || !safe_part(key, (size_t)(s1 - key)) || !safe_part(s1 + 1, (size_t)(s2 - s1 - 1)))
        return false;
    snprintf(path, cap, "%s/%.*s", m->dir, (int)(s1 - key), key);
    if (mkdir_) mkdir(path, 0700);
    size_t n = strlen(path);
    snprintf(path + n, cap - n, "/%.*s-%016llx.idx", (int)(s2 - s1 - 1), s1 + 1,
             (unsigned long long)fnv(s2 + 1));
    return true;
}

static ap_rc load_rows(load_ctx_t *l, ap_mem_part_t *part, ap_err_t *err) {
    char last[AP_UUID_LEN] = "";
    float *v = NULL;
    int vdim = 0;
    for (;;) {
        ap_arena_t *a = ap_arena_new(1 << 16);
        ap_rows_t rows;
        ap_val_t p[] = {AP_VTEXT(l->tenant), AP_VTEXT(l->agent), AP_VTEXT(last)};
        ap_rc rc = ap_tx_query(l->tx,
                               "SELECT " DELTA_COLS " FROM agent_memories"
                               " WHERE tenant_id = ? AND agent_id = ? AND status = 'active'"
                               " AND id > ? ORDER BY id LIMIT 2000",
                               p, 3, &rows, err);
        if (rc) {
            ap_arena_free(a);
            ap_free(v);
            return rc;
        }
        for (int i = 0; i < rows.nrows; i++) {
            const char *emb = ap_rows_get(&rows, i, "embedder");
            int dim = (int)ap_rows_int(&rows, i, "dim", 0);
            char *sig = ap_arena_printf(a, "%s@%d", emb ? emb : "", dim);
            if (strcmp(sig, l->sig) || dim <= 0 || dim > 4096) {
                l->stale++;
                continue;
            }
            if (dim != vdim) {
                v = ap_realloc(v, sizeof *v * (size_t)dim);
                vdim = dim;
            }
            if (!mem_vec_unb64(ap_rows_get(&rows, i, "embedding"), v, dim)) {
                l->stale++;
                continue;
            }
            ap_mem_meta_t mt = mem_meta_of(&rows, i);
            mt.seq = ap_rows_int(&rows, i, "change_seq", 0);
            ap_mem_part_add(part, &mt, v, dim);
        }
        bool more = rows.nrows == 2000;
        if (more) snprintf(last, sizeof last, "%s", ap_rows_get(&rows, rows.nrows - 1, "id"));
        ap_arena_free(a);
        if (!more) break;
    }
    ap_free(v);
    return AP_OK;
}

/* The file of the partition, checked against the database and brought up
 * to date; false (logged, partition emptied) when it cannot be used. */
static bool load_file(load_ctx_t *l, ap_mem_part_t *part, ap_err_t *err) {
    char path[PATH_MAX];
    if (!part_path(l->m, ap_mem_part_key(part), path, sizeof path, false)) return false;
    ap_err_t ferr = {0};
    uint64_t t0 = ap_mono_ns();
    ap_rc rc = ap_mem_part_load_file(part, path, &ferr);
    if (rc == AP_ERR_NOT_FOUND) return false;
    const char *why = NULL;
    char detail[sizeof ferr.detail] = "";
    int64_t seq = 0, pruned = 0, count = -1;
    int64_t fseq = ap_mem_part_seq(part);
    if (rc) {
        why = "unreadable or corrupt";
        snprintf(detail, sizeof detail, "%s", ferr.detail);
    } else if (read_counter(l->tx, l->tenant, l->agent, &seq, &pruned, err)) {
        why = "database error";
    } else if (fseq > seq) {
        why = "ahead of the database (restored or another database)";
    } else if (fseq < pruned) {
        why = "older than the kept tombstones";
    } else {
        ap_arena_t *a = ap_arena_new(1 << 16);
        delta_t d = {.sig = l->sig};
        ap_rc drc = fseq < seq ? read_delta(l->tx, l->tenant, l->agent, fseq, &d, err) : AP_OK;
        if (drc == AP_ERR_LIMIT) {
            why = "too far behind the database";
        } else if (drc) {
            why = "database error";
        } else {
            apply_delta(&d, part);
            l->stale += d.stale;
            ap_mem_part_set_seq(part, seq);
            char model[256];
            snprintf(model, sizeof model, "%s", l->sig);
            char *at = strrchr(model, '@');
            int dim = at ? atoi(at + 1) : 0;
            if (at) *at = '\0';
            ap_rows_t r;
            ap_val_t p[] = {AP_VTEXT(l->tenant), AP_VTEXT(l->agent), AP_VTEXT(model), AP_VINT(dim)};
            if (ap_tx_query(l->tx,
                            "SELECT COUNT(*) AS n FROM agent_memories WHERE tenant_id = ?"
                            " AND agent_id = ? AND status = 'active' AND embedder = ? AND dim = ?",
                            p, 4, &r, err))
                why = "database error";
            else if ((count = ap_rows_int(&r, 0, "n", -1)) != ap_mem_part_size(part))
                why = "its entries do not match the database";
        }
        ap_arena_free(a);
    }
    if (why) {
        ap_log(AP_LOG_WARN, "memory index file not used", "{s:s,s:s,s:s,s:I,s:I,s:I,s:I}",
               "path", path, "reason", why, "detail", detail, "file_seq", (json_int_t)fseq,
               "db_seq", (json_int_t)seq, "entries", (json_int_t)ap_mem_part_size(part),
               "rows", (json_int_t)count);
        ap_mem_part_clear(part);
        return false;
    }
    ap_log(AP_LOG_INFO, "memory index file loaded", "{s:s,s:i,s:I,s:I,s:f}", "path", path,
           "entries", ap_mem_part_size(part), "file_seq", (json_int_t)fseq, "db_seq",
           (json_int_t)seq, "ms", (double)(ap_mono_ns() - t0) / 1e6);
    return true;
}

static ap_rc loader(void *ud, ap_mem_part_t *part, ap_err_t *err) {
    load_ctx_t *l = ud;
    if (l->m->dir && load_file(l, part, err)) return AP_OK;
    int64_t seq, pruned;
    ap_rc rc = read_counter(l->tx, l->tenant, l->agent, &seq, &pruned, err);
    if (!rc) rc = load_rows(l, part, err);
    if (!rc) ap_mem_part_set_seq(part, seq);
    return rc;
}

static ap_rc ensure_loaded(ap_mem_t *m, ap_tx_t *tx, const char *tenant, const char *agent,
                           const mem_cfg_t *c, ap_err_t *err) {
    load_ctx_t l = {m, tx, tenant, agent, c->sig, 0};
    ap_rc rc = ap_mem_index_ensure(m->ix, c->key, loader, &l, err);
    if (!rc && l.stale) mem_enqueue_reembed(m, tenant, agent);
    return rc;
}

ap_rc mem_ensure(ap_mem_t *m, ap_tx_t *tx, const char *tenant, const char *agent,
                 const mem_cfg_t *c, ap_err_t *err) {
    ap_rc rc = ensure_loaded(m, tx, tenant, agent, c, err);
    if (rc) return rc;
    int64_t have = ap_mem_index_seq(m->ix, c->key), seq, pruned;
    if ((rc = read_counter(tx, tenant, agent, &seq, &pruned, err))) return rc;
    if (have >= 0 && seq != have) {
        delta_t d = {.sig = c->sig};
        ap_rc drc = seq < have || have < pruned
                        ? AP_ERR_LIMIT
                        : read_delta(tx, tenant, agent, have, &d, err);
        if (drc == AP_ERR_LIMIT) { /* cannot catch up: read it all again */
            ap_mem_index_drop(m->ix, c->key);
            rc = ensure_loaded(m, tx, tenant, agent, c, err);
        } else if (drc) {
            return drc;
        } else {
            ap_mem_index_apply(m->ix, c->key, seq, apply_delta, &d);
            if (d.stale) mem_enqueue_reembed(m, tenant, agent);
        }
    }
    if (!rc) mem_want_graph(m, c->key);
    return rc;
}

/* ---------- access counts ---------- */

static size_t acc_bucket(const char *id) {
    uint64_t h = fnv(id);
    return (size_t)((h ^ (h >> 31)) % ACC_BUCKETS);
}

static mem_acc_t *acc_find(ap_mem_t *m, const char *id) {
    for (mem_acc_t *x = m->acc[acc_bucket(id)]; x; x = x->next)
        if (!strcmp(x->id, id)) return x;
    return NULL;
}

void mem_access_note(ap_mem_t *m, const char *tenant, const char *agent, const char *key,
                     const char *const *ids, int n, int64_t now_ms) {
    pthread_mutex_lock(&m->acc_mu);
    for (int i = 0; i < n; i++) {
        mem_acc_t *x = acc_find(m, ids[i]);
        if (!x) {
            x = ap_calloc(1, sizeof *x);
            snprintf(x->id, sizeof x->id, "%s", ids[i]);
            snprintf(x->tenant, sizeof x->tenant, "%s", tenant);
            snprintf(x->agent, sizeof x->agent, "%s", agent);
            size_t b = acc_bucket(ids[i]);
            x->next = m->acc[b];
            m->acc[b] = x;
            m->nacc++;
        }
        snprintf(x->key, sizeof x->key, "%s", key);
        x->pending++;
        if (now_ms > x->last_ms) x->last_ms = now_ms;
    }
    pthread_mutex_unlock(&m->acc_mu);
}

int64_t mem_access_pending(ap_mem_t *m, const char *id, int64_t *last_ms) {
    pthread_mutex_lock(&m->acc_mu);
    mem_acc_t *x = acc_find(m, id);
    int64_t n = x ? x->pending + x->inflight : 0;
    if (last_ms) *last_ms = x && n ? x->last_ms : 0;
    pthread_mutex_unlock(&m->acc_mu);
    return n;
}

typedef struct {
    char id[AP_UUID_LEN], tenant[AP_UUID_LEN], agent[AP_UUID_LEN], key[256];
    int64_t n, last_ms;
} acc_item_t;

static int acc_cmp(const void *a, const void *b) {
    const acc_item_t *x = a, *y = b;
    int c = strcmp(x->tenant, y->tenant);
    if (!c) c = strcmp(x->agent, y->agent);
    if (!c) c = strcmp(x->key, y->key);
    if (!c) c = strcmp(x->id, y->id);
    return c;
}

/* Settles items[0..n) after their write: ok, the counts are in the
 * database; otherwise they are pending again. */
static void acc_settle(ap_mem_t *m, const acc_item_t *it, int n, bool ok) {
    pthread_mutex_lock(&m->acc_mu);
    for (int i = 0; i < n; i++) {
        size_t b = acc_bucket(it[i].id);
        for (mem_acc_t **pp = &m->acc[b]; *pp; pp = &(*pp)->next) {
            mem_acc_t *x = *pp;
            if (strcmp(x->id, it[i].id)) continue;
            x->inflight -= it[i].n;
            if (!ok) x->pending += it[i].n;
            if (!x->pending && !x->inflight) {
                *pp = x->next;
                ap_free(x);
                m->nacc--;
            }
            break;
        }
    }
    pthread_mutex_unlock(&m->acc_mu);
}

/* One tenant's counts (items sorted by agent): one transaction, one
 * sequence per agent. */
static bool flush_tenant(ap_mem_t *m, acc_item_t *it, int n) {
    ap_arena_t *a = ap_arena_new(1 << 14);
    ap_err_t err = {0};
    ap_tx_t *tx;
    int64_t *seqs = ap_arena_calloc(a, sizeof *seqs * (size_t)n);
    ap_rc rc = ap_db_begin(m->db, it[0].tenant, AP_TX_WRITE, a, &tx, &err);
    for (int i = 0; !rc && i < n;) {
        int j = i;
        while (j < n && !strcmp(it[j].agent, it[i].agent)) j++;
        int64_t seq = 0;
        rc = mem_next_seq(tx, it[i].tenant, it[i].agent, &seq, &err);
        for (int k = i; k < j; k++) seqs[k] = seq;
        for (int c = i; !rc && c < j; c += FLUSH_CHUNK) {
            int cn = j - c < FLUSH_CHUNK ? j - c : FLUSH_CHUNK;
            ap_buf_t sql;
            ap_buf_init(&sql, 0);
            ap_buf_puts(&sql,
                        "UPDATE agent_memories SET access_count = access_count"
                        " + CAST(v.column2 AS BIGINT), last_accessed_at = CASE WHEN"
                        " last_accessed_at IS NULL OR last_accessed_at < v.column3 THEN"
                        " v.column3 ELSE last_accessed_at END, change_seq = ? FROM (VALUES ");
            ap_val_t *p = ap_arena_alloc(a, sizeof *p * (size_t)(3 * cn + 3));
            p[0] = AP_VINT(seq);
            for (int k = 0; k < cn; k++) {
                ap_buf_puts(&sql, k ? ", (?, ?, ?)" : "(?, ?, ?)");
                char *t = ap_arena_alloc(a, AP_TIME_LEN);
                ap_time_format(it[c + k].last_ms, t);
                p[1 + 3 * k] = AP_VTEXT(it[c + k].id);
                p[2 + 3 * k] = AP_VINT(it[c + k].n);
                p[3 + 3 * k] = AP_VTEXT(t);
            }
            ap_buf_puts(&sql, ") AS v WHERE agent_memories.tenant_id = ? AND"
                              " agent_memories.agent_id = ? AND agent_memories.id = v.column1");
            p[1 + 3 * cn] = AP_VTEXT(it[i].tenant);
            p[2 + 3 * cn] = AP_VTEXT(it[i].agent);
            rc = ap_tx_query(tx, sql.p, p, 3 * cn + 3, NULL, &err);
            ap_buf_free(&sql);
        }
        i = j;
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (rc) {
        ap_log(AP_LOG_WARN, "memory access counts not written", "{s:s,s:s,s:s}", "tenant_id",
               it[0].tenant, "error", err.msg, "detail", err.detail);
    } else {
        /* the index of this process, per partition */
        for (int i = 0; i < n;) {
            int j = i;
            int64_t last = 0;
            while (j < n && !strcmp(it[j].agent, it[i].agent) && !strcmp(it[j].key, it[i].key)) {
                if (it[j].last_ms > last) last = it[j].last_ms;
                j++;
            }
            char(*ids)[AP_UUID_LEN] = ap_arena_alloc(a, sizeof *ids * (size_t)(j - i));
            int64_t *counts = ap_arena_alloc(a, sizeof *counts * (size_t)(j - i));
            for (int k = i; k < j; k++) {
                memcpy(ids[k - i], it[k].id, AP_UUID_LEN);
                counts[k - i] = it[k].n;
            }
            ap_mem_index_accessed(m->ix, it[i].key, (const char(*)[AP_UUID_LEN])ids, counts, last,
                                  j - i, seqs[i]);
            i = j;
        }
    }
    ap_arena_free(a);
    return rc == AP_OK;
}

int ap_mem_flush(ap_mem_t *m) {
    pthread_mutex_lock(&m->acc_mu);
    int n = 0, cap = (int)m->nacc;
    acc_item_t *it = cap ? ap_malloc(sizeof *it * (size_t)cap) : NULL;
    for (size_t b = 0; b < ACC_BUCKETS && n < cap; b++)
        for (mem_acc_t *x = m->acc[b]; x && n < cap; x = x->next) {
            if (!x->pending) continue;
            acc_item_t *y = &it[n++];
            memcpy(y->id, x->id, sizeof y->id);
            memcpy(y->tenant, x->tenant, sizeof y->tenant);
            memcpy(y->agent, x->agent, sizeof y->agent);
            memcpy(y->key, x->key, sizeof y->key);
            y->n = x->pending;
            y->last_ms = x->last_ms;
            x->inflight += x->pending;
            x->pending = 0;
        }
    pthread_mutex_unlock(&m->acc_mu);
    if (n) qsort(it, (size_t)n, sizeof *it, acc_cmp);
    int written = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && !strcmp(it[j].tenant, it[i].tenant)) j++;
        bool ok = flush_tenant(m, it + i, j - i);
        acc_settle(m, it + i, j - i, ok);
        if (ok) written += j - i;
        i = j;
    }
    ap_free(it);
    return written;
}

static void *flusher_main(void *arg) {
    ap_mem_t *m = arg;
    pthread_mutex_lock(&m->acc_mu);
    while (!m->acc_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += FLUSH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->acc_cv, &m->acc_mu, &ts);
        bool any = m->nacc > 0;
        pthread_mutex_unlock(&m->acc_mu);
        if (any) ap_mem_flush(m);
        pthread_mutex_lock(&m->acc_mu);
    }
    pthread_mutex_unlock(&m->acc_mu);
    ap_mem_flush(m);
    return NULL;
}

/* ---------- files ---------- */

int ap_mem_save(ap_mem_t *m, bool all) {
    if (!m->dir) return 0;
    ap_mem_part_info_t *ps;
    int n, saved = 0;
    ap_mem_index_list(m->ix, &ps, &n);
    for (int i = 0; i < n; i++) {
        ap_mem_part_info_t *p = &ps[i];
        if (!p->loaded || !p->unsaved || (p->n < m->save_min && !p->has_graph)) continue;
        /* in the background: graphs only (a partition about to get one
         * is saved when it has it), once enough has changed */
        uint64_t enough = (uint64_t)(p->n / 20 > 1000 ? p->n / 20 : 1000);
        if (!all && (!p->has_graph || p->unsaved < enough)) continue;
        char path[PATH_MAX];
        if (!part_path(m, p->key, path, sizeof path, true)) continue;
        ap_err_t err = {0};
        uint64_t t0 = ap_mono_ns();
        if (ap_mem_index_save(m->ix, p->key, path, &err)) {
            ap_log(AP_LOG_WARN, "memory index file not saved", "{s:s,s:s,s:s}", "path", path,
                   "error", err.msg, "detail", err.detail);
            continue;
        }
        saved++;
        ap_log(AP_LOG_INFO, "memory index file saved", "{s:s,s:i,s:b,s:f}", "path", path,
               "entries", p->n, "graph", p->has_graph, "ms", (double)(ap_mono_ns() - t0) / 1e6);
    }
    ap_free(ps);
    return saved;
}

/* Removes the files of partitions that are not loaded after the warm-up
 * (agents without memories, tenants purged, embedders changed). */
static void remove_orphans(ap_mem_t *m) {
    ap_mem_part_info_t *ps;
    int n;
    ap_mem_index_list(m->ix, &ps, &n);
    char(*keep)[PATH_MAX] = ap_malloc(sizeof *keep * (size_t)(n + 1));
    int nk = 0;
    for (int i = 0; i < n; i++)
        if (ps[i].loaded && part_path(m, ps[i].key, keep[nk], PATH_MAX, false)) nk++;
    DIR *top = opendir(m->dir);
    struct dirent *t;
    while (top && (t = readdir(top))) {
        if (t->d_name[0] == '.') continue;
        char tdir[PATH_MAX];
        snprintf(tdir, sizeof tdir, "%s/%s", m->dir, t->d_name);
        DIR *d = opendir(tdir);
        struct dirent *f;
        while (d && (f = readdir(d))) {
            if (f->d_name[0] == '.') continue;
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%.2000s/%.200s", tdir, f->d_name);
            bool used = false;
            for (int k = 0; k < nk && !used; k++) used = !strcmp(keep[k], path);
            if (!used && unlink(path) == 0)
                ap_log(AP_LOG_INFO, "memory index file removed", "{s:s}", "path", path);
        }
        if (d) closedir(d);
        rmdir(tdir); /* only when empty */
    }
    if (top) closedir(top);
    ap_free(keep);
    ap_free(ps);
}

bool ap_mem_index_state(ap_mem_t *m, const char *tenant, const char *agent,
                        ap_mem_part_info_t *out) {
    ap_arena_t *a = ap_arena_new(4096);
    mem_cfg_t c;
    bool ok = !mem_read_agent(m, a, tenant, agent, &c, NULL) &&
              ap_mem_index_info(m->ix, c.key, out) && out->loaded;
    ap_arena_free(a);
    return ok;
}

/* ---------- tombstones ---------- */

static int prune_tombstones(ap_mem_t *m) {
    ap_arena_t *a = ap_arena_new(1 << 14);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows = {0};
    char cut[AP_TIME_LEN];
    ap_time_format(ap_now_ms() - (int64_t)m->tombstone_days * 86400000, cut);
    ap_val_t c[] = {AP_VTEXT(cut)};
    ap_rc rc = ap_db_begin(m->db, NULL, AP_TX_WRITE, a, &tx, &err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT tenant_id, agent_id, MAX(change_seq) AS s FROM"
                         " agent_memory_tombstones WHERE deleted_at < ?"
                         " GROUP BY tenant_id, agent_id ORDER BY tenant_id, agent_id",
                         c, 1, &rows, &err);
    for (int i = 0; !rc && i < rows.nrows; i++) {
        int64_t s = ap_rows_int(&rows, i, "s", 0);
        ap_val_t p[] = {AP_VINT(s), AP_VTEXT(ap_rows_at(&rows, i, 0)),
                        AP_VTEXT(ap_rows_at(&rows, i, 1)), AP_VINT(s)};
        rc = ap_tx_query(tx,
                         "UPDATE agent_memory_seq SET pruned_seq = ? WHERE tenant_id = ?"
                         " AND agent_id = ? AND pruned_seq < ?",
                         p, 4, NULL, &err);
    }
    if (!rc)
        rc = ap_tx_query(tx, "DELETE FROM agent_memory_tombstones WHERE deleted_at < ?", c, 1,
                         NULL, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (rc)
        ap_log(AP_LOG_WARN, "memory tombstones not pruned", "{s:s,s:s}", "error", err.msg,
               "detail", err.detail);
    else if (rows.nrows)
        ap_log(AP_LOG_INFO, "memory tombstones pruned", "{s:i}", "agents", rows.nrows);
    int n = rc ? -1 : rows.nrows;
    ap_arena_free(a);
    return n;
}

int ap_mem_prune_tombstones(ap_mem_t *m) {
    return prune_tombstones(m);
}

/* ---------- the worker ---------- */

static bool stopping(ap_mem_t *m) {
    pthread_mutex_lock(&m->mu);
    bool s = m->stop;
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* Loads the partition of every agent that has memories (from its file,
 * else the database), so the first recall after a start does not pay. */
static void warm_all(ap_mem_t *m) {
    ap_arena_t *a = ap_arena_new(1 << 14);
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows;
    uint64_t t0 = ap_mono_ns();
    int loaded = 0;
    if (ap_db_begin(m->db, NULL, AP_TX_READ, a, &tx, &err) ||
        ap_tx_query(tx,
                    "SELECT DISTINCT tenant_id, agent_id FROM agent_memories"
                    " WHERE status = 'active' ORDER BY tenant_id, agent_id",
                    NULL, 0, &rows, &err)) {
        ap_log(AP_LOG_WARN, "memory index warm-up failed", "{s:s,s:s}", "error", err.msg,
               "detail", err.detail);
        ap_arena_free(a);
        return;
    }
    ap_tx_rollback(tx);
    bool complete = true;
    for (int i = 0; i < rows.nrows; i++) {
        if (stopping(m)) {
            complete = false;
            break;
        }
        ap_arena_t *b = ap_arena_new(1 << 14);
        const char *tenant = ap_rows_at(&rows, i, 0), *agent = ap_rows_at(&rows, i, 1);
        mem_cfg_t c;
        ap_tx_t *t;
        if (!ap_db_begin(m->db, tenant, AP_TX_READ, b, &t, &err) &&
            !mem_load_agent(t, tenant, agent, &c, &err) && !mem_ensure(m, t, tenant, agent, &c, &err))
            loaded++;
        else
            complete = false;
        ap_arena_free(b);
    }
    ap_log(AP_LOG_INFO, "memory index loaded", "{s:i,s:f}", "partitions", loaded, "ms",
           (double)(ap_mono_ns() - t0) / 1e6);
    if (complete && m->dir) remove_orphans(m);
    ap_arena_free(a);
}

static void run_job(ap_mem_t *m, mem_job_t *j) {
    if (j->kind == JOB_WARM) {
        warm_all(m);
        pthread_mutex_lock(&m->mu);
        m->warmed = true;
        pthread_mutex_unlock(&m->mu);
    }
    if (j->kind == JOB_WARM || j->kind == JOB_GRAPH) {
        int g = ap_mem_index_build(m->ix);
        if (g) {
            ap_log(AP_LOG_INFO, "memory index graphs built", "{s:i}", "graphs", g);
            ap_mem_save(m, true); /* the expensive part is done: keep it */
        }
    } else {
        while (mem_reembed_batch(m, j->tenant, j->agent) > 0 && !stopping(m)) {
        }
    }
    ap_free(j);
}

static void run_cal(ap_mem_t *m, mem_cal_t *c) {
    ap_mem_query_t q = mem_query(&c->f);
    ap_mem_part_info_t a, b;
    bool had = ap_mem_index_info(m->ix, c->key, &a);
    ap_mem_index_calibrate(m->ix, c->key, c->q, c->dim, c->k, &q);
    if (had && ap_mem_index_info(m->ix, c->key, &b) && (a.cal != b.cal || a.ef != b.ef))
        ap_log(AP_LOG_INFO, "memory index calibrated", "{s:s,s:i,s:s,s:i}", "partition", c->key,
               "entries", b.n,
               "search", b.cal == AP_MEM_CAL_USE     ? "graph"
                         : b.cal == AP_MEM_CAL_OFF   ? "scan (the graph costs more for this recall)"
                                                     : "scan (calibrating the graph)",
               "ef", b.ef);
    ap_free(c->q);
    ap_free(c);
}

/* Takes the next job or calibration sample; waits up to a second when
 * wait is set.  Both NULL: nothing (or stopping). */
static void next_work(ap_mem_t *m, bool wait, mem_job_t **job, mem_cal_t **cal) {
    *job = NULL;
    *cal = NULL;
    pthread_mutex_lock(&m->mu);
    if (wait && !m->jobs && !m->cals && !m->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    if (!(wait && m->stop)) {
        if (m->jobs) {
            *job = m->jobs;
            m->jobs = (*job)->next;
        } else if (m->cals) {
            *cal = m->cals;
            m->cals = (*cal)->next;
            m->ncals--;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

static void *worker_main(void *arg) {
    ap_mem_t *m = arg;
    while (!stopping(m)) {
        mem_job_t *j;
        mem_cal_t *c;
        next_work(m, true, &j, &c);
        if (j) run_job(m, j);
        if (c) run_cal(m, c);
        int64_t now = ap_now_ms();
        if (now >= m->next_save_ms) {
            m->next_save_ms = now + SAVE_EVERY_MS;
            ap_mem_save(m, false);
        }
        if (now >= m->next_prune_ms) {
            m->next_prune_ms = now + PRUNE_EVERY_MS;
            prune_tombstones(m);
        }
    }
    return NULL;
}

int ap_mem_run_jobs(ap_mem_t *m) {
    int total = 0;
    for (;;) {
        mem_job_t *j;
        mem_cal_t *c;
        next_work(m, false, &j, &c);
        if (!j && !c) break;
        if (j) {
            if (j->kind == JOB_REEMBED) {
                int n;
                while ((n = mem_reembed_batch(m, j->tenant, j->agent)) > 0) total += n;
                ap_free(j);
            } else {
                run_job(m, j);
            }
        }
        if (c) run_cal(m, c);
    }
    return total;
}
