/*
 * memory.c - the semantic tier and the service around all three tiers
 * (memory.h); sync.c keeps the index in step with the database and runs
 * the background work.
 *
 * 1. Writes: embed outside any transaction, then one tenant transaction
 *    (the agent's next change sequence, the rows stamped with it or the
 *    tombstones of the rows deleted, the audit entry), commit, then the
 *    index.  A crash between commit and index update loses nothing:
 *    partitions catch up from the change sequence.
 * 2. The index partition key is "tenant/agent/embedder@dim": an agent whose
 *    memory_config names another embedder reads a fresh partition, and
 *    the loader queues the rows embedded otherwise for the re-embed worker
 *    (a background thread), which rewrites them and adds them to the
 *    index as it goes.
 * 3. Recall is a read: the agent and its partition (brought up to date
 *    with the database's changes), the search, then the hits re-read by
 *    id, so a memory forgotten a moment ago cannot come back.  Their
 *    access counts are written in the background (sync.c); until then the
 *    counts shown add what this process has not written yet.
 * 4. Embeddings are stored as base64 of little-endian float32 (text, the
 *    same on both backends).
 */
#include "memory/memory.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "llm/embed.h"
#include "llm/embed_call.h"
#include "memory/graph.h"
#include "memory/index.h"
#include "memory/mem_internal.h"
#include "memory/text.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "embeddings are stored as little-endian float32"
#endif

const char *const ap_mem_types[] = {"fact",         "experience", "skill", "preference",
                                    "relationship", "procedure",  NULL};
const char *const ap_mem_sources[] = {"conversation", "training", "observation", "inference",
                                      "user_feedback", NULL};

const ap_jfield_t ap_mem_remember_fields[] = {
    {"agent_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"content", AP_JT_STRING, true, false, NULL, 16384, 0, 0},
    {"memory_type", AP_JT_STRING, true, false, ap_mem_types, 0, 0, 0},
    {"importance", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"source", AP_JT_STRING, false, false, ap_mem_sources, 0, 0, 0},
    {"source_task_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"subject", AP_JT_STRING, false, true, NULL, 200, 0, 0},
    {"expires_at", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    AP_JFIELDS_END,
};
const ap_jfield_t ap_mem_recall_fields[] = {
    {"agent_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"query", AP_JT_STRING, true, false, NULL, 16384, 0, 0},
    {"limit", AP_JT_INT, false, false, NULL, 0, 1, 100},
    {"types", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    {"min_importance", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"min_similarity", AP_JT_NUMBER, false, false, NULL, 0, -1, 1},
    {"since", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"until", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"include_shared", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};
const ap_jfield_t ap_mem_consolidate_fields[] = {
    {"agent_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"dry_run", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};
const ap_jfield_t ap_mem_share_fields[] = {
    {"agent_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"to_agent_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"memory_ids", AP_JT_ARRAY, true, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};
const ap_jfield_t ap_mem_hot_push_fields[] = {
    {"agent_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"conversation_id", AP_JT_STRING, true, false, NULL, 128, 0, 0},
    {"role", AP_JT_STRING, false, false, NULL, 32, 0, 0},
    {"content", AP_JT_STRING, false, false, NULL, 65536, 0, 0},
    {"task_context", AP_JT_OBJECT, false, true, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

/* ---------- helpers ---------- */


static const char *const cfg_keys[] = {"embedder",
                                       "dimensions",
                                       "allow_share_to",
                                       "accept_shared",
                                       "duplicate_threshold",
                                       "contradiction_threshold",
                                       "prune_min_importance",
                                       "prune_after_days",
                                       NULL};

static ap_rc cfg_bad(ap_err_t *err, const char *key, const char *what) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid memory_config",
                      "see docs/memory.md for the memory_config keys",
                      "memory_config.%s: %s", key, what);
}

static bool num_in(json_t *v, double lo, double hi) {
    return json_is_number(v) && json_number_value(v) >= lo && json_number_value(v) <= hi;
}

ap_rc ap_mem_config_check(json_t *cfg, ap_err_t *err) {
    if (!json_is_object(cfg)) return cfg_bad(err, "(root)", "must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) {
        bool known = false;
        for (int i = 0; cfg_keys[i]; i++) known |= !strcmp(cfg_keys[i], k);
        if (!known) return cfg_bad(err, k, "unknown key");
        if (!strcmp(k, "embedder") && (!json_is_string(v) || !json_string_length(v) ||
                                       json_string_length(v) > 200))
            return cfg_bad(err, k, "a string: \"builtin\" or an embedding model id");
        if (!strcmp(k, "dimensions") &&
            (!json_is_integer(v) || json_integer_value(v) < AP_EMBED_DIM_MIN ||
             json_integer_value(v) > AP_EMBED_DIM_MAX))
            return cfg_bad(err, k, "an integer between 8 and 4096");
        if (!strcmp(k, "allow_share_to")) {
            if (!json_is_array(v)) return cfg_bad(err, k, "an array of \"*\" or agent ids");
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                const char *s = json_string_value(e);
                if (!s || (strcmp(s, "*") && !ap_uuid_valid(s)))
                    return cfg_bad(err, k, "each entry is \"*\" or an agent id");
            }
        }
        if (!strcmp(k, "accept_shared") && !json_is_boolean(v))
            return cfg_bad(err, k, "true or false");
        if ((!strcmp(k, "duplicate_threshold") || !strcmp(k, "contradiction_threshold") ||
             !strcmp(k, "prune_min_importance")) &&
            !num_in(v, 0, 1))
            return cfg_bad(err, k, "a number between 0 and 1");
        if (!strcmp(k, "prune_after_days") && !num_in(v, 0, 36500))
            return cfg_bad(err, k, "a number of days between 0 and 36500");
    }
    return AP_OK;
}

static double cfg_num(json_t *c, const char *k, double dflt) {
    json_t *v = json_object_get(c, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static ap_rc agent_not_found(ap_err_t *err, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent not found",
                      "check the agent id", "no agent with id \"%.64s\" in this tenant", id);
}

static ap_rc memory_not_found(ap_err_t *err, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "memory not found",
                      "check the memory id; forgotten memories are gone",
                      "no memory with id \"%.64s\" for this agent", id);
}

/* Reads the agent's memory_config in tx; NOT_FOUND unless the agent is
 * the tenant's.  An unreadable config falls back to the defaults (the
 * agents service validates what it stores). */
ap_rc mem_load_agent(ap_tx_t *tx, const char *tenant, const char *agent, mem_cfg_t *c,
                        ap_err_t *err) {
    if (!agent || !ap_uuid_valid(agent)) return agent_not_found(err, agent ? agent : "");
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent)};
    ap_rc rc = ap_tx_query(tx, "SELECT memory_config FROM agents WHERE tenant_id = ? AND id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (!rows.nrows) return agent_not_found(err, agent);
    ap_arena_t *a = ap_tx_arena(tx);
    c->agent = ap_arena_strdup(a, agent);
    const char *text = ap_rows_at(&rows, 0, 0);
    json_t *cfg = text ? json_loads(text, 0, NULL) : NULL;
    if (cfg && ap_mem_config_check(cfg, NULL)) {
        json_decref(cfg);
        cfg = NULL;
    }
    if (!cfg) cfg = json_object();
    json_t *keep = json_deep_copy(cfg);
    json_decref(cfg);
    /* the config lives as long as the arena */
    ap_arena_cleanup(a, (ap_cleanup_fn)json_decref, keep);
    const char *e = json_string_value(json_object_get(keep, "embedder"));
    c->embedder = ap_arena_strdup(a, e && strcmp(e, "builtin") ? e : "builtin");
    c->dim = (int)json_integer_value(json_object_get(keep, "dimensions"));
    if (!strcmp(c->embedder, "builtin") && c->dim <= 0) c->dim = AP_EMBED_DIM_DEFAULT;
    c->allow_share_to = json_object_get(keep, "allow_share_to");
    json_t *acc = json_object_get(keep, "accept_shared");
    c->accept_shared = acc ? json_is_true(acc) : true;
    c->dup_threshold = cfg_num(keep, "duplicate_threshold", 0.92);
    c->contra_threshold = cfg_num(keep, "contradiction_threshold", 0.5);
    c->prune_min_importance = cfg_num(keep, "prune_min_importance", 0.2);
    c->prune_after_days = cfg_num(keep, "prune_after_days", 30);
    const char *model = strcmp(c->embedder, "builtin") ? c->embedder : "builtin/" AP_EMBED_MODEL;
    c->sig = c->dim > 0 ? ap_arena_printf(a, "%s@%d", model, c->dim) : model;
    c->key = ap_arena_printf(a, "%s/%s/%s", tenant, agent, c->sig);
    return AP_OK;
}

ap_rc mem_read_agent(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                        mem_cfg_t *c, ap_err_t *err) {
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err);
    if (!rc) rc = mem_load_agent(tx, tenant, agent, c, err);
    ap_tx_rollback(tx);
    return rc;
}

/* Embeds n texts with the agent's embedder; *sig gets "model@dim".  A
 * provider call is checked against the tenant's budgets and recorded in
 * llm_usage for c->agent (and task, if not NULL); actor may be NULL. */
ap_rc mem_embed(ap_mem_t *m, ap_arena_t *a, const char *tenant, const mem_cfg_t *c,
                   const ap_actor_t *actor, const char *task, const char *const *texts, int n,
                   float ***vecs, int *dim, const char **sig, ap_err_t *err) {
    if (!strcmp(c->embedder, "builtin")) {
        float **v = ap_arena_alloc(a, sizeof *v * (size_t)(n + 1));
        for (int i = 0; i < n; i++) {
            v[i] = ap_arena_alloc(a, sizeof(float) * (size_t)c->dim);
            ap_embed_hash(texts[i], strlen(texts[i]), v[i], c->dim);
        }
        *vecs = v;
        *dim = c->dim;
        *sig = c->sig;
        return AP_OK;
    }
    ap_llm_embed_result_t r;
    ap_llm_embed_meter_t meter = {.usage = m->usage, .cache = m->cache, .actor = actor,
                                  .agent_id = c->agent, .task_id = task};
    ap_rc rc = ap_llm_embed_sync(m->db, m->upstream, &meter, a, tenant, c->embedder, texts, n,
                                 c->dim, &r, err);
    if (rc) return rc;
    /* unit length, so the index can score by dot product */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < r.dim; d++) s += (double)r.vectors[i][d] * r.vectors[i][d];
        if (s > 0)
            for (int d = 0; d < r.dim; d++) r.vectors[i][d] = (float)(r.vectors[i][d] / sqrt(s));
    }
    *vecs = r.vectors;
    *dim = r.dim;
    *sig = c->dim > 0 ? c->sig : ap_arena_printf(a, "%s@%d", c->embedder, r.dim);
    return AP_OK;
}

const char *mem_vec_b64(ap_arena_t *a, const float *v, int dim) {
    size_t bytes = (size_t)dim * sizeof(float);
    size_t n = sodium_base64_encoded_len(bytes, sodium_base64_VARIANT_ORIGINAL);
    char *out = ap_arena_alloc(a, n);
    sodium_bin2base64(out, n, (const unsigned char *)v, bytes, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

bool mem_vec_unb64(const char *s, float *out, int dim) {
    size_t got = 0;
    if (!s) return false;
    if (sodium_base642bin((unsigned char *)out, (size_t)dim * sizeof(float), s, strlen(s), NULL,
                          &got, NULL, sodium_base64_VARIANT_ORIGINAL))
        return false;
    return got == (size_t)dim * sizeof(float);
}

static int type_index(const char *t) {
    for (int i = 0; t && ap_mem_types[i]; i++)
        if (!strcmp(ap_mem_types[i], t)) return i;
    return -1;
}

static int64_t ms_of(const char *t) {
    int64_t ms = 0;
    return t && ap_time_parse(t, &ms) ? ms : 0;
}

static double recency(int64_t created_ms, int64_t now) {
    double days = (double)(now - created_ms) / 86400000.0;
    if (days < 0) days = 0;
    return exp2(-days / AP_MEM_RECENCY_HALF_LIFE_DAYS); /* 0.5 ^ (days / half-life) */
}

static double access_part(int64_t n) {
    if (n <= 0) return 0;
    double v = log1p((double)n) * (1.0 / 4.61512051684125945); /* / ln 101 */
    return v > 1 ? 1 : v;
}

static double blend(double sim, double importance, int64_t created_ms, int64_t access,
                    int64_t now, json_t **parts) {
    double s = sim < 0 ? 0 : sim > 1 ? 1 : sim;
    double r = recency(created_ms, now), ac = access_part(access);
    if (parts)
        *parts = json_pack("{s:f,s:f,s:f,s:f}", "similarity", s, "importance", importance,
                           "recency", r, "access", ac);
    return AP_MEM_W_SIMILARITY * s + AP_MEM_W_IMPORTANCE * importance + AP_MEM_W_RECENCY * r +
           AP_MEM_W_ACCESS * ac;
}

/* A memory row as the API shows it (no embedding). */
static json_t *mem_json(const ap_rows_t *r, int i) {
    static const char *const ints[] = {"dim", "access_count", NULL};
    json_t *o = ap_rows_json(r, i, ints);
    const char *imp = ap_rows_get(r, i, "importance");
    json_object_set_new(o, "importance", json_real(imp ? atof(imp) : 0));
    json_object_set_new(o, "shared", json_boolean(ap_rows_get(r, i, "shared_from_memory_id")));
    return o;
}

ap_mem_meta_t mem_meta_of(const ap_rows_t *r, int i) {
    ap_mem_meta_t mt = {0};
    snprintf(mt.id, sizeof mt.id, "%s", ap_rows_get(r, i, "id"));
    mt.type = type_index(ap_rows_get(r, i, "memory_type"));
    const char *imp = ap_rows_get(r, i, "importance");
    mt.importance = imp ? (float)atof(imp) : 0;
    mt.created_ms = ms_of(ap_rows_get(r, i, "created_at"));
    mt.expires_ms = ms_of(ap_rows_get(r, i, "expires_at"));
    mt.access_count = ap_rows_int(r, i, "access_count", 0);
    mt.last_access_ms = ms_of(ap_rows_get(r, i, "last_accessed_at"));
    mt.shared = ap_rows_get(r, i, "shared_from_memory_id") != NULL;
    return mt;
}

/* ---------- remember ---------- */

static ap_rc bad_time(ap_err_t *err, const char *field, const char *v) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid timestamp",
                      "use RFC 3339 UTC, like 2026-01-31T12:00:00Z", "%s \"%.40s\"", field, v);
}

static ap_rc body_agent(json_t *in, const char *path_agent, const char **agent, ap_err_t *err) {
    const char *b = ap_json_str(in, "agent_id");
    if (path_agent) {
        if (b && strcasecmp(b, path_agent))
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "agent_id disagrees",
                              "leave agent_id out of the body when the path names the agent",
                              "body agent_id \"%.64s\" is not the path's agent", b);
        *agent = path_agent;
        return AP_OK;
    }
    if (!b)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "missing field",
                          "name the agent: {\"agent_id\": \"…\"}", "field \"agent_id\" is required");
    *agent = b;
    return AP_OK;
}

static ap_rc remember_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                      const char *path_agent, json_t *in, json_t **out, ap_err_t *err) {
    const char *agent;
    ap_rc rc = ap_json_check(in, ap_mem_remember_fields, err);
    if (!rc) rc = body_agent(in, path_agent, &agent, err);
    if (rc) return rc;
    const char *content = ap_json_str(in, "content");
    if (!*content)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "empty content",
                          "give the memory some text", "field \"content\" is empty");
    const char *type = ap_json_str(in, "memory_type");
    json_t *imp = json_object_get(in, "importance");
    double importance = imp ? json_number_value(imp) : 0.5;
    const char *source = ap_json_str(in, "source");
    const char *task = ap_json_str(in, "source_task_id");
    const char *exp = ap_json_str(in, "expires_at");
    int64_t exp_ms = 0;
    char exp_s[AP_TIME_LEN];
    if (exp) {
        if (!ap_time_parse(exp, &exp_ms)) return bad_time(err, "expires_at", exp);
        ap_time_format(exp_ms, exp_s);
    }
    const char *subject = ap_json_str(in, "subject");
    if (subject) {
        char *s = ap_arena_strdup(a, subject);
        for (char *q = s; *q; q++) *q = (char)tolower((unsigned char)*q);
        subject = s;
    } else if (!strcmp(type, "fact")) {
        subject = ap_mem_subject(a, content);
    }
    mem_cfg_t c;
    if ((rc = mem_read_agent(m, a, tenant, agent, &c, err))) return rc;
    float **vecs;
    int dim;
    const char *sig;
    const char *meter_task = task && ap_uuid_valid(task) ? task : NULL; /* a task's id, or none */
    if ((rc = mem_embed(m, a, tenant, &c, actor, meter_task, &content, 1, &vecs, &dim, &sig, err)))
        return rc;
    char model[256];
    snprintf(model, sizeof model, "%s", sig);
    char *at = strrchr(model, '@');
    if (at) *at = '\0';

    ap_tx_t *tx;
    if ((rc = ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, err))) return rc;
    mem_cfg_t c2;
    if ((rc = mem_load_agent(tx, tenant, agent, &c2, err))) return rc;
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    int64_t seq;
    if ((rc = mem_next_seq(tx, tenant, agent, &seq, err))) return rc;
    ap_val_t p[] = {AP_VTEXT(id),      AP_VTEXT(tenant),       AP_VTEXT(agent),
                    AP_VTEXT(type),    AP_VTEXT(content),      AP_VTEXT(subject),
                    AP_VREAL(importance), AP_VTEXT(source ? source : "observation"),
                    AP_VTEXT(task),    AP_VTEXT(model),        AP_VINT(dim),
                    AP_VTEXT(mem_vec_b64(a, vecs[0], dim)), AP_VTEXT(exp ? exp_s : NULL),
                    AP_VTEXT(now),     AP_VTEXT(now),          AP_VINT(seq)};
    ap_rows_t rows;
    rc = ap_tx_query(tx,
                     "INSERT INTO agent_memories (id, tenant_id, agent_id, memory_type, content,"
                     " subject, importance, source, source_task_id, embedder, dim, embedding,"
                     " expires_at, created_at, updated_at, change_seq)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING " MEM_COLS,
                     p, 16, &rows, err);
    if (rc) return rc;
    json_t *changes = json_pack("{s:s,s:s,s:f}", "agent_id", agent, "memory_type", type,
                                "importance", importance);
    ap_audit_event_t ev = {"memory.remember", "memory", id, "success", changes};
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(changes);
    if (!rc) rc = ap_tx_commit(tx, err);
    if (rc) return rc;
    if (!strcmp(c2.sig, sig)) {
        ap_mem_meta_t mt = mem_meta_of(&rows, 0);
        mt.seq = seq;
        ap_mem_index_put(m->ix, c2.key, &mt, vecs[0], dim, seq);
        mem_want_graph(m, c2.key);
    } else {
        ap_mem_index_advance(m->ix, c2.key, seq);
    }
    *out = mem_json(&rows, 0);
    return AP_OK;
}

/* ---------- recall ---------- */

static bool filt(const ap_mem_meta_t *mt, void *ud) {
    const mem_filter_t *f = ud;
    if (f->types && (mt->type < 0 || !(f->types & (1u << mt->type)))) return false;
    if (mt->importance < f->min_importance) return false;
    if (f->since && mt->created_ms < f->since) return false;
    if (f->until && mt->created_ms >= f->until) return false;
    if (mt->expires_ms && mt->expires_ms <= f->now) return false;
    if (!f->include_shared && mt->shared) return false;
    return true;
}

static double score_fn(const ap_mem_meta_t *mt, float sim, void *ud) {
    const mem_filter_t *f = ud;
    return blend(sim, mt->importance, mt->created_ms, mt->access_count, f->now, NULL);
}

/* score - 0.60 · similarity is at most this for any entry of a partition
 * with these maxima (each term grows with its input). */
static double bound_fn(const ap_mem_bounds_t *b, void *ud) {
    const mem_filter_t *f = ud;
    double imp = b->max_importance > 1 ? 1 : b->max_importance;
    return AP_MEM_W_IMPORTANCE * imp + AP_MEM_W_RECENCY * recency(b->max_created_ms, f->now) +
           AP_MEM_W_ACCESS * access_part(b->max_access_count);
}

/* One entry's score - 0.60 · similarity, for every recall that starts no
 * more than a minute before this is computed (recency only falls with
 * time; the index computes it when the entry's metadata changes). */
double mem_prior(const ap_mem_meta_t *mt) {
    return AP_MEM_W_IMPORTANCE * mt->importance +
           AP_MEM_W_RECENCY * recency(mt->created_ms, ap_now_ms() - 60000) +
           AP_MEM_W_ACCESS * access_part(mt->access_count);
}

ap_mem_query_t mem_query(mem_filter_t *f) {
    return (ap_mem_query_t){.filter = filt, .score = score_fn, .ud = f,
                            .w_sim = AP_MEM_W_SIMILARITY, .bound = bound_fn,
                            .min_similarity = (float)f->min_similarity, .use_prior = true};
}

static json_t *ranking_json(void) {
    return json_pack("{s:{s:f,s:f,s:f,s:f},s:f,s:s}", "weights", "similarity",
                     AP_MEM_W_SIMILARITY, "importance", AP_MEM_W_IMPORTANCE, "recency",
                     AP_MEM_W_RECENCY, "access", AP_MEM_W_ACCESS, "recency_half_life_days",
                     AP_MEM_RECENCY_HALF_LIFE_DAYS, "formula",
                     "score = 0.60*similarity + 0.20*importance + 0.15*recency + 0.05*access");
}

/* The row's counters plus the accesses this process has not written yet. */
static void overlay_access(ap_mem_t *m, json_t *o, const char *id) {
    int64_t last = 0, pend = mem_access_pending(m, id, &last);
    if (!pend) return;
    json_int_t n = json_integer_value(json_object_get(o, "access_count"));
    json_object_set_new(o, "access_count", json_integer(n + pend));
    char t[AP_TIME_LEN];
    ap_time_format(last, t);
    const char *was = json_string_value(json_object_get(o, "last_accessed_at"));
    if (!was || strcmp(was, t) < 0) json_object_set_new(o, "last_accessed_at", json_string(t));
}

static ap_rc recall_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *path_agent,
                    json_t *in, json_t **out, ap_err_t *err) {
    const char *agent;
    ap_rc rc = ap_json_check(in, ap_mem_recall_fields, err);
    if (!rc) rc = body_agent(in, path_agent, &agent, err);
    if (rc) return rc;
    mem_filter_t f = {.min_similarity = 0.05, .include_shared = true, .now = ap_now_ms()};
    json_t *types = json_object_get(in, "types");
    size_t i;
    json_t *t;
    json_array_foreach(types, i, t) {
        int ti = type_index(json_string_value(t));
        if (ti < 0)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown memory type",
                              "types are fact, experience, skill, preference, relationship, "
                              "procedure",
                              "types[%zu] is not a memory type", i);
        f.types |= 1u << ti;
    }
    if (json_object_get(in, "min_importance"))
        f.min_importance = json_number_value(json_object_get(in, "min_importance"));
    if (json_object_get(in, "min_similarity"))
        f.min_similarity = json_number_value(json_object_get(in, "min_similarity"));
    const char *since = ap_json_str(in, "since"), *until = ap_json_str(in, "until");
    if (since && !ap_time_parse(since, &f.since)) return bad_time(err, "since", since);
    if (until && !ap_time_parse(until, &f.until)) return bad_time(err, "until", until);
    if (json_object_get(in, "include_shared"))
        f.include_shared = json_is_true(json_object_get(in, "include_shared"));
    int limit = (int)ap_json_int(in, "limit", 10);
    const char *query = ap_json_str(in, "query");

    mem_cfg_t c;
    ap_tx_t *tx;
    /* a read transaction: the agent, and its partition brought up to date
     * with the database's changes */
    if ((rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err))) return rc;
    rc = mem_load_agent(tx, tenant, agent, &c, err);
    if (!rc) rc = mem_ensure(m, tx, tenant, agent, &c, err);
    /* the builtin embedder runs in place; a provider call never inside a
     * transaction */
    bool builtin = !rc && !strcmp(c.embedder, "builtin");
    if (rc || !builtin) ap_tx_rollback(tx);
    if (rc) return rc;
    float **q;
    int dim;
    const char *sig;
    if ((rc = mem_embed(m, a, tenant, &c, NULL, NULL, &query, 1, &q, &dim, &sig, err))) return rc;
    if (!builtin && (rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err))) return rc;
    ap_mem_hit_t *hits = ap_arena_alloc(a, sizeof *hits * (size_t)limit);
    ap_mem_query_t mq = mem_query(&f);
    ap_mem_search_info_t info;
    int n = ap_mem_index_search(m->ix, c.key, q[0], dim, limit, &mq, hits, &info);
    json_t *data = json_array();
    const char **ids = ap_arena_alloc(a, sizeof *ids * (size_t)(n + 1));
    int nids = 0;
    if (n > 0) {
        /* the hits as the database has them now; the rows come back in any order */
        ap_buf_t sql;
        ap_buf_init(&sql, 0);
        ap_buf_puts(&sql, "SELECT " MEM_COLS " FROM agent_memories WHERE tenant_id = ?"
                          " AND agent_id = ? AND status = 'active' AND id IN (?");
        for (int h = 1; h < n; h++) ap_buf_puts(&sql, ", ?");
        ap_buf_puts(&sql, ")");
        ap_val_t *p = ap_arena_alloc(a, sizeof *p * (size_t)(n + 2));
        p[0] = AP_VTEXT(tenant);
        p[1] = AP_VTEXT(agent);
        for (int h = 0; h < n; h++) p[h + 2] = AP_VTEXT(hits[h].id);
        ap_rows_t rows;
        rc = ap_tx_query(tx, sql.p, p, n + 2, &rows, err);
        ap_buf_free(&sql);
        for (int h = 0; h < n && !rc; h++) {
            int row = -1; /* forgotten meanwhile: no row */
            for (int r = 0; r < rows.nrows && row < 0; r++)
                if (!strcmp(ap_rows_get(&rows, r, "id"), hits[h].id)) row = r;
            if (row >= 0) ids[nids++] = ap_rows_get(&rows, row, "id");
        }
        /* this access counts now (written in the background) */
        mem_access_note(m, tenant, agent, c.key, ids, nids, f.now);
        for (int h = 0, k = 0; h < n && !rc && k < nids; h++) {
            if (strcmp(hits[h].id, ids[k])) continue;
            int row = -1;
            for (int r = 0; r < rows.nrows && row < 0; r++)
                if (!strcmp(ap_rows_get(&rows, r, "id"), ids[k])) row = r;
            k++;
            json_t *o = mem_json(&rows, row);
            overlay_access(m, o, hits[h].id);
            json_t *parts;
            ap_mem_meta_t mt = mem_meta_of(&rows, row);
            /* the score as ranked (before this access) */
            double sc = blend(hits[h].similarity, mt.importance, mt.created_ms,
                              json_integer_value(json_object_get(o, "access_count")) - 1, f.now,
                              &parts);
            json_object_set_new(o, "similarity", json_real(hits[h].similarity));
            json_object_set_new(o, "score", json_real(sc));
            json_object_set_new(o, "score_parts", parts);
            json_array_append_new(data, o);
        }
    }
    ap_tx_rollback(tx);
    if (rc) {
        json_decref(data);
        return rc;
    }
    if (info.sample) mem_calibrate_later(m, c.key, q[0], dim, limit, &f);
    *out = json_pack("{s:o,s:o}", "data", data, "ranking", ranking_json());
    return AP_OK;
}

/* ---------- list, get, forget ---------- */

static ap_rc list_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                  const char *type, const char *status, const char *after, int limit,
                  json_t **items, const char **next, ap_err_t *err) {
    if (type && type_index(type) < 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "unknown memory type",
                          "type is fact, experience, skill, preference, relationship or procedure",
                          "type \"%.40s\"", type);
    if (status && strcmp(status, "active") && strcmp(status, "superseded"))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "unknown status",
                          "status is active or superseded", "status \"%.40s\"", status);
    ap_tx_t *tx;
    mem_cfg_t c;
    ap_rc rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err);
    if (!rc && agent) rc = mem_load_agent(tx, tenant, agent, &c, err);
    if (rc) return rc;
    ap_rows_t rows;
    /* two spellings, so each uses its index: (tenant, agent, id) or the key */
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent ? agent : ""),
                    AP_VTEXT(after ? after : ""),
                    AP_VTEXT(type),   AP_VTEXT(type),   AP_VTEXT(status),
                    AP_VTEXT(status), AP_VINT(limit + 1)};
    rc = ap_tx_query(tx,
                     agent ? "SELECT " MEM_COLS " FROM agent_memories WHERE tenant_id = ?"
                             " AND agent_id = ?"
                             " AND id > ? AND (CAST(? AS TEXT) IS NULL OR memory_type = ?)"
                             " AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY id LIMIT ?"
                           : "SELECT " MEM_COLS " FROM agent_memories WHERE tenant_id = ?"
                             " AND ? = ''"
                     " AND id > ? AND (CAST(? AS TEXT) IS NULL OR memory_type = ?)"
                     " AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY id LIMIT ?",
                     p, 8, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    int n = rows.nrows > limit ? limit : rows.nrows;
    for (int i = 0; i < n; i++) {
        json_t *o = mem_json(&rows, i);
        overlay_access(m, o, ap_rows_get(&rows, i, "id"));
        json_array_append_new(arr, o);
    }
    *next = rows.nrows > limit ? ap_arena_strdup(a, ap_rows_get(&rows, n - 1, "id")) : NULL;
    *items = arr;
    return AP_OK;
}

static ap_rc fetch_mem(ap_tx_t *tx, const char *tenant, const char *agent, const char *id,
                       ap_rows_t *rows, ap_err_t *err) {
    if (!ap_uuid_valid(id)) return memory_not_found(err, id);
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id), AP_VTEXT(agent), AP_VTEXT(agent)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " MEM_COLS ", embedding FROM agent_memories"
                           " WHERE tenant_id = ? AND id = ? AND (CAST(? AS TEXT) IS NULL OR agent_id = ?)",
                           p, 4, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : memory_not_found(err, id);
}

static ap_rc get_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                 const char *id, const char *query, json_t **out, ap_err_t *err) {
    ap_tx_t *tx;
    mem_cfg_t c;
    ap_rows_t rows;
    ap_rc rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err);
    if (!rc && agent) rc = mem_load_agent(tx, tenant, agent, &c, err);
    if (!rc) rc = fetch_mem(tx, tenant, agent, id, &rows, err);
    if (!rc && !agent) rc = mem_load_agent(tx, tenant, ap_rows_get(&rows, 0, "agent_id"), &c, err);
    ap_tx_rollback(tx);
    if (rc) return rc;
    json_t *o = mem_json(&rows, 0);
    overlay_access(m, o, id);
    if (query) {
        float **q;
        int dim;
        const char *sig;
        int rdim = (int)ap_rows_int(&rows, 0, "dim", 0);
        rc = mem_embed(m, a, tenant, &c, NULL, NULL, &query, 1, &q, &dim, &sig, err);
        float *v = rc || rdim != dim ? NULL : ap_arena_alloc(a, sizeof *v * (size_t)dim);
        if (!rc && v && mem_vec_unb64(ap_rows_get(&rows, 0, "embedding"), v, dim)) {
            ap_mem_meta_t mt = mem_meta_of(&rows, 0);
            json_t *parts;
            float sim = ap_embed_cosine(q[0], v, dim);
            double sc = blend(sim, mt.importance, mt.created_ms,
                              json_integer_value(json_object_get(o, "access_count")), ap_now_ms(),
                              &parts);
            json_object_set_new(o, "similarity", json_real(sim));
            json_object_set_new(o, "score", json_real(sc));
            json_object_set_new(o, "score_parts", parts);
        } else if (!rc) {
            json_object_set_new(o, "similarity", json_null());
            json_object_set_new(o, "score", json_null());
        }
        if (rc) {
            json_decref(o);
            return rc;
        }
    }
    *out = o;
    return AP_OK;
}

static ap_rc forget_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                    const char *agent, const char *id, ap_err_t *err) {
    ap_tx_t *tx;
    mem_cfg_t c;
    ap_rows_t rows;
    ap_rc rc = ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, err);
    if (!rc && agent) rc = mem_load_agent(tx, tenant, agent, &c, err);
    if (!rc) rc = fetch_mem(tx, tenant, agent, id, &rows, err);
    if (rc) return rc;
    const char *owner = ap_arena_strdup(a, ap_rows_get(&rows, 0, "agent_id"));
    if (!agent && (rc = mem_load_agent(tx, tenant, owner, &c, err))) return rc;
    int64_t seq;
    if ((rc = mem_next_seq(tx, tenant, owner, &seq, err))) return rc;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id)};
    rc = ap_tx_query(tx, "DELETE FROM agent_memories WHERE tenant_id = ? AND id = ?", p, 2, NULL,
                     err);
    if (!rc) rc = mem_tombstone(tx, tenant, owner, id, seq, err);
    if (rc) return rc;
    json_t *changes = json_pack("{s:s}", "agent_id", owner);
    ap_audit_event_t ev = {"memory.forget", "memory", id, "success", changes};
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(changes);
    if (!rc) rc = ap_tx_commit(tx, err);
    if (!rc) ap_mem_index_remove(m->ix, c.key, id, seq);
    return rc;
}

/* ---------- consolidate ---------- */

typedef struct {
    const char *id, *type, *content, *subject, *sig, *created;
    double importance;
    int64_t access, created_ms, expires_ms;
    float *vec;
    int dim;
    int fate; /* 0 keep, 1 merged away, 2 superseded, 3 expired, 4 low value */
    int into; /* merged into / superseded by (index) */
    bool changed;
} cand_t;

#define CONSOLIDATE_MAX 5000

static ap_rc consolidate_in(ap_mem_t *m, ap_arena_t *a, const char *tenant,
                         const ap_actor_t *actor, const char *path_agent, json_t *in,
                         json_t **out, ap_err_t *err) {
    const char *agent;
    ap_rc rc = ap_json_check(in, ap_mem_consolidate_fields, err);
    if (!rc) rc = body_agent(in, path_agent, &agent, err);
    if (rc) return rc;
    bool dry = json_is_true(json_object_get(in, "dry_run"));
    ap_mem_flush(m); /* merged counts include what recalls counted */
    ap_tx_t *tx;
    mem_cfg_t c;
    if ((rc = ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, err))) return rc;
    if ((rc = mem_load_agent(tx, tenant, agent, &c, err))) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent), AP_VINT(CONSOLIDATE_MAX)};
    rc = ap_tx_query(tx,
                     "SELECT id, memory_type, content, subject, importance, access_count,"
                     " created_at, expires_at, embedder, dim, embedding FROM agent_memories"
                     " WHERE tenant_id = ? AND agent_id = ? AND status = 'active'"
                     " ORDER BY created_at, id LIMIT ?",
                     p, 3, &rows, err);
    if (rc) return rc;
    int n = rows.nrows;
    cand_t *cs = ap_arena_calloc(a, sizeof *cs * (size_t)(n + 1));
    int64_t now = ap_now_ms();
    int64_t old = now - (int64_t)(c.prune_after_days * 86400000.0);
    for (int i = 0; i < n; i++) {
        cand_t *x = &cs[i];
        x->id = ap_rows_get(&rows, i, "id");
        x->type = ap_rows_get(&rows, i, "memory_type");
        x->content = ap_rows_get(&rows, i, "content");
        x->subject = ap_rows_get(&rows, i, "subject");
        x->importance = atof(ap_rows_get(&rows, i, "importance"));
        x->access = ap_rows_int(&rows, i, "access_count", 0);
        x->created = ap_rows_get(&rows, i, "created_at");
        x->created_ms = ms_of(x->created);
        x->expires_ms = ms_of(ap_rows_get(&rows, i, "expires_at"));
        x->dim = (int)ap_rows_int(&rows, i, "dim", 0);
        x->sig = ap_arena_printf(a, "%s@%d", ap_rows_get(&rows, i, "embedder"), x->dim);
        x->into = -1;
        if (x->expires_ms && x->expires_ms <= now) {
            x->fate = 3;
            continue;
        }
        if (x->importance < c.prune_min_importance && x->access == 0 && x->created_ms < old) {
            x->fate = 4;
            continue;
        }
        if (x->dim > 0 && x->dim <= AP_EMBED_DIM_MAX) {
            x->vec = ap_arena_alloc(a, sizeof(float) * (size_t)x->dim);
            if (!mem_vec_unb64(ap_rows_get(&rows, i, "embedding"), x->vec, x->dim)) x->vec = NULL;
        }
    }
    /* pairs, older i before newer j */
    for (int j = 0; j < n; j++) {
        cand_t *y = &cs[j];
        if (y->fate || !y->vec) continue;
        for (int i = 0; i < j && !y->fate; i++) {
            cand_t *x = &cs[i];
            if (x->fate || !x->vec || strcmp(x->type, y->type) || strcmp(x->sig, y->sig)) continue;
            float sim = ap_embed_cosine(x->vec, y->vec, x->dim);
            bool facts = !strcmp(x->type, "fact") && x->subject && y->subject &&
                         !strcmp(x->subject, y->subject);
            if (facts && !ap_mem_same_text(x->content, y->content) && sim >= c.contra_threshold) {
                x->fate = 2; /* the older fact gives way */
                x->into = j;
            } else if (sim >= c.dup_threshold) {
                y->fate = 1; /* the newer duplicate folds into the older */
                y->into = i;
                if (y->importance > x->importance) x->importance = y->importance;
                x->access += y->access;
                x->changed = true;
            }
        }
    }
    json_t *merged = json_array(), *superseded = json_array(), *expired = json_array(),
           *low = json_array();
    char ts[AP_TIME_LEN];
    ap_time_format(now, ts);
    int64_t seq = 0;
    if (!dry) rc = mem_next_seq(tx, tenant, agent, &seq, err);
    for (int i = 0; i < n && !rc; i++) {
        cand_t *x = &cs[i];
        if (x->fate == 1) {
            json_array_append_new(merged, json_pack("{s:s,s:s}", "kept", cs[x->into].id,
                                                    "removed", x->id));
        } else if (x->fate == 2) {
            json_array_append_new(superseded, json_pack("{s:s,s:s}", "old", x->id, "new",
                                                        cs[x->into].id));
        } else if (x->fate == 3) {
            json_array_append_new(expired, json_string(x->id));
        } else if (x->fate == 4) {
            json_array_append_new(low, json_string(x->id));
        }
        if (dry) continue;
        ap_val_t q[] = {AP_VTEXT(tenant), AP_VTEXT(x->id)};
        if (x->fate == 1 || x->fate >= 3) {
            rc = ap_tx_query(tx, "DELETE FROM agent_memories WHERE tenant_id = ? AND id = ?", q,
                             2, NULL, err);
            if (!rc) rc = mem_tombstone(tx, tenant, agent, x->id, seq, err);
        } else if (x->fate == 2) {
            ap_val_t s[] = {AP_VTEXT(cs[x->into].id), AP_VTEXT(ts), AP_VINT(seq),
                            AP_VTEXT(tenant), AP_VTEXT(x->id)};
            rc = ap_tx_query(tx,
                             "UPDATE agent_memories SET status = 'superseded', superseded_by = ?,"
                             " updated_at = ?, change_seq = ? WHERE tenant_id = ? AND id = ?",
                             s, 5, NULL, err);
        } else if (x->changed) {
            ap_val_t s[] = {AP_VREAL(x->importance), AP_VINT(x->access), AP_VTEXT(ts),
                            AP_VINT(seq), AP_VTEXT(tenant), AP_VTEXT(x->id)};
            rc = ap_tx_query(tx,
                             "UPDATE agent_memories SET importance = ?, access_count = ?,"
                             " updated_at = ?, change_seq = ? WHERE tenant_id = ? AND id = ?",
                             s, 6, NULL, err);
        }
    }
    json_t *counts = json_pack(
        "{s:i,s:I,s:I,s:I,s:I}", "examined", n, "merged", (json_int_t)json_array_size(merged),
        "superseded", (json_int_t)json_array_size(superseded), "pruned_expired",
        (json_int_t)json_array_size(expired), "pruned_low_value", (json_int_t)json_array_size(low));
    json_t *res = json_pack("{s:o,s:o,s:o,s:o,s:o,s:b}", "merged", merged, "superseded",
                            superseded, "pruned_expired", expired, "pruned_low_value", low,
                            "counts", counts, "dry_run", dry);
    if (!rc && !dry) {
        json_t *changes = json_pack("{s:s,s:O}", "agent_id", agent, "counts", counts);
        ap_audit_event_t ev = {"memory.consolidate", "agent", agent, "success", changes};
        rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
        json_decref(changes);
        if (!rc) rc = ap_tx_commit(tx, err);
    }
    if (rc) {
        json_decref(res);
        return rc;
    }
    if (!dry) {
        for (int i = 0; i < n; i++) {
            cand_t *x = &cs[i];
            if (x->fate) {
                ap_mem_index_remove(m->ix, c.key, x->id, 0);
            } else if (x->changed && x->vec && !strcmp(x->sig, c.sig)) {
                ap_mem_meta_t mt = {.seq = seq};
                snprintf(mt.id, sizeof mt.id, "%s", x->id);
                mt.type = type_index(x->type);
                mt.importance = (float)x->importance;
                mt.created_ms = x->created_ms;
                mt.expires_ms = x->expires_ms;
                mt.access_count = x->access;
                ap_val_t q[] = {AP_VTEXT(tenant), AP_VTEXT(x->id)};
                ap_tx_t *rt;
                ap_rows_t rr;
                /* shared flag and last access from the row */
                if (!ap_db_begin(m->db, tenant, AP_TX_READ, a, &rt, NULL) &&
                    !ap_tx_query(rt,
                                 "SELECT shared_from_memory_id, last_accessed_at FROM"
                                 " agent_memories WHERE tenant_id = ? AND id = ?",
                                 q, 2, &rr, NULL) &&
                    rr.nrows) {
                    mt.shared = ap_rows_at(&rr, 0, 0) != NULL;
                    mt.last_access_ms = ms_of(ap_rows_at(&rr, 0, 1));
                    ap_mem_index_put(m->ix, c.key, &mt, x->vec, x->dim, 0);
                }
                ap_tx_rollback(rt);
            }
        }
        ap_mem_index_advance(m->ix, c.key, seq);
    }
    *out = res;
    return AP_OK;
}

/* ---------- share ---------- */

static bool share_allowed(const mem_cfg_t *from, const char *to) {
    if (!from->allow_share_to) return true; /* default: within the tenant */
    size_t i;
    json_t *e;
    json_array_foreach(from->allow_share_to, i, e) {
        const char *s = json_string_value(e);
        if (s && (!strcmp(s, "*") || !strcasecmp(s, to))) return true;
    }
    return false;
}

static ap_rc share_in(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                   const char *path_agent, json_t *in, json_t **out, ap_err_t *err) {
    const char *from;
    ap_rc rc = ap_json_check(in, ap_mem_share_fields, err);
    if (!rc) rc = body_agent(in, path_agent, &from, err);
    if (rc) return rc;
    const char *to = ap_json_str(in, "to_agent_id");
    json_t *ids = json_object_get(in, "memory_ids");
    size_t nids = json_array_size(ids);
    if (nids < 1 || nids > 100)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid memory_ids",
                          "share 1 to 100 memories per call", "memory_ids has %zu entries", nids);
    for (size_t i = 0; i < nids; i++)
        if (!json_is_string(json_array_get(ids, i)))
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid memory_ids",
                              "memory_ids is an array of memory ids",
                              "memory_ids[%zu] is not a string", i);
    mem_cfg_t cf, ct;
    if ((rc = mem_read_agent(m, a, tenant, from, &cf, err))) return rc;
    if ((rc = mem_read_agent(m, a, tenant, to, &ct, err))) return rc;
    if (!strcasecmp(from, to))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "cannot share with itself",
                          "name another agent in to_agent_id", "to_agent_id is the same agent");
    if (!share_allowed(&cf, to))
        return ap_err_set(err, AP_ERR_DENIED, "forbidden", "sharing not allowed",
                          "add the receiving agent (or \"*\") to the sender's "
                          "memory_config.allow_share_to",
                          "agent %s does not allow sharing to agent %s", from, to);
    if (!ct.accept_shared)
        return ap_err_set(err, AP_ERR_DENIED, "forbidden", "sharing not accepted",
                          "set the receiver's memory_config.accept_shared to true",
                          "agent %s does not accept shared memories", to);
    /* read the memories (sender's only) */
    ap_tx_t *tx;
    if ((rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err))) return rc;
    ap_rows_t *src = ap_arena_calloc(a, sizeof *src * nids);
    for (size_t i = 0; i < nids && !rc; i++)
        rc = fetch_mem(tx, tenant, from, json_string_value(json_array_get(ids, i)), &src[i], err);
    ap_tx_rollback(tx);
    if (rc) return rc;
    /* embed for the receiver when its embedder differs */
    const char **texts = ap_arena_alloc(a, sizeof *texts * nids);
    for (size_t i = 0; i < nids; i++) texts[i] = ap_rows_get(&src[i], 0, "content");
    float **vecs;
    int dim;
    const char *sig;
    if ((rc = mem_embed(m, a, tenant, &ct, actor, NULL, texts, (int)nids, &vecs, &dim, &sig, err)))
        return rc;
    char model[256];
    snprintf(model, sizeof model, "%s", sig);
    char *at = strrchr(model, '@');
    if (at) *at = '\0';

    if ((rc = ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, err))) return rc;
    if ((rc = mem_load_agent(tx, tenant, to, &ct, err))) return rc;
    int64_t seq;
    if ((rc = mem_next_seq(tx, tenant, to, &seq, err))) return rc;
    json_t *shared = json_array(), *skipped = json_array();
    ap_rows_t *made = ap_arena_calloc(a, sizeof *made * nids);
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    for (size_t i = 0; i < nids && !rc; i++) {
        const ap_rows_t *s = &src[i];
        const char *sid = ap_rows_get(s, 0, "id");
        char id[AP_UUID_LEN];
        ap_uuid7(id);
        ap_val_t p[] = {AP_VTEXT(id),
                        AP_VTEXT(tenant),
                        AP_VTEXT(to),
                        AP_VTEXT(ap_rows_get(s, 0, "memory_type")),
                        AP_VTEXT(ap_rows_get(s, 0, "content")),
                        AP_VTEXT(ap_rows_get(s, 0, "subject")),
                        AP_VREAL(atof(ap_rows_get(s, 0, "importance"))),
                        AP_VTEXT(ap_rows_get(s, 0, "source")),
                        AP_VTEXT(ap_rows_get(s, 0, "source_task_id")),
                        AP_VTEXT(model),
                        AP_VINT(dim),
                        AP_VTEXT(mem_vec_b64(a, vecs[i], dim)),
                        AP_VTEXT(sid),
                        AP_VTEXT(from),
                        AP_VTEXT(ap_rows_get(s, 0, "expires_at")),
                        AP_VTEXT(now),
                        AP_VTEXT(now),
                        AP_VINT(seq),
                        AP_VTEXT(tenant),
                        AP_VTEXT(to),
                        AP_VTEXT(sid)};
        rc = ap_tx_query(tx,
                         "INSERT INTO agent_memories (id, tenant_id, agent_id, memory_type, content,"
                         " subject, importance, source, source_task_id, embedder, dim, embedding,"
                         " shared_from_memory_id, shared_from_agent_id, expires_at, created_at,"
                         " updated_at, change_seq) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                         " ?, ?, ?, ?"
                         " WHERE NOT EXISTS (SELECT 1 FROM agent_memories WHERE tenant_id = ?"
                         " AND agent_id = ? AND shared_from_memory_id = ?) RETURNING " MEM_COLS,
                         p, 21, &made[i], err);
        if (rc) break;
        if (!made[i].nrows) {
            json_array_append_new(skipped, json_string(sid));
            continue;
        }
        json_array_append_new(shared, json_pack("{s:s,s:s}", "id", id, "shared_from_memory_id", sid));
    }
    if (!rc) {
        json_t *changes = json_pack("{s:s,s:s,s:O}", "from_agent_id", from, "to_agent_id", to,
                                    "shared", shared);
        ap_audit_event_t ev = {"memory.share", "agent", to, "success", changes};
        rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
        json_decref(changes);
    }
    if (!rc) rc = ap_tx_commit(tx, err);
    if (rc) {
        json_decref(shared);
        json_decref(skipped);
        return rc;
    }
    if (!strcmp(ct.sig, sig))
        for (size_t i = 0; i < nids; i++)
            if (made[i].nrows) {
                ap_mem_meta_t mt = mem_meta_of(&made[i], 0);
                mt.seq = seq;
                ap_mem_index_put(m->ix, ct.key, &mt, vecs[i], dim, 0);
            }
    ap_mem_index_advance(m->ix, ct.key, seq);
    *out = json_pack("{s:o,s:o}", "shared", shared, "skipped", skipped);
    return AP_OK;
}

/* ---------- tier 1 through the service ---------- */

ap_rc ap_mem_hot_push(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *path_agent,
                      json_t *in, json_t **out, ap_err_t *err) {
    const char *agent;
    mem_cfg_t c;
    ap_rc rc = ap_json_check(in, ap_mem_hot_push_fields, err);
    if (!rc) rc = body_agent(in, path_agent, &agent, err);
    if (!rc) rc = mem_read_agent(m, a, tenant, agent, &c, err);
    if (rc) return rc;
    const char *conv = ap_json_str(in, "conversation_id");
    const char *content = ap_json_str(in, "content");
    if (content)
        rc = m->hot->push(m->hot, tenant, agent, conv, ap_json_str(in, "role"), content, err);
    json_t *task = json_object_get(in, "task_context");
    if (!rc && task) rc = m->hot->set_task(m->hot, tenant, agent, conv, json_is_null(task) ? NULL : task, err);
    if (!rc && !content && !task)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "nothing to push",
                          "send content (a message) or task_context",
                          "neither content nor task_context was given");
    if (rc) return rc;
    return m->hot->get(m->hot, tenant, agent, conv, out, err);
}

ap_rc ap_mem_hot_get(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                     const char *conv, json_t **out, ap_err_t *err) {
    mem_cfg_t c;
    ap_rc rc = mem_read_agent(m, a, tenant, agent, &c, err);
    if (rc) return rc;
    return m->hot->get(m->hot, tenant, agent, conv, out, err);
}

/* ---------- agent tools ---------- */

static ap_actor_t agent_actor(const char *agent) {
    return (ap_actor_t){.type = "agent", .id = agent, .role = NULL};
}

static ap_rc strip_agent(json_t *args, json_t **copy, ap_err_t *err) {
    if (!json_is_object(args))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "arguments must be an object",
                          "pass the tool arguments as a JSON object", "got another JSON value");
    *copy = json_copy(args);
    return AP_OK;
}

ap_rc ap_mem_tool_remember(ap_mem_t *m, const char *tenant, const char *agent, json_t *args,
                           json_t **result, ap_err_t *err) {
    json_t *in = NULL;
    *result = NULL;
    ap_rc rc = strip_agent(args, &in, err);
    if (rc) return rc;
    ap_arena_t *a = ap_arena_new(8192);
    ap_actor_t actor = agent_actor(agent);
    rc = ap_mem_remember(m, a, tenant, &actor, agent, in, result, err);
    ap_arena_free(a);
    json_decref(in);
    return rc;
}

ap_rc ap_mem_tool_recall(ap_mem_t *m, const char *tenant, const char *agent, json_t *args,
                         json_t **result, ap_err_t *err) {
    json_t *in = NULL;
    *result = NULL;
    ap_rc rc = strip_agent(args, &in, err);
    if (rc) return rc;
    ap_arena_t *a = ap_arena_new(8192);
    rc = ap_mem_recall(m, a, tenant, agent, in, result, err);
    ap_arena_free(a);
    json_decref(in);
    return rc;
}

ap_rc ap_mem_tool_learn_entity(ap_mem_t *m, const char *tenant, const char *agent, json_t *args,
                               json_t **result, ap_err_t *err) {
    *result = NULL;
    ap_arena_t *a = ap_arena_new(8192);
    ap_actor_t actor = agent_actor(agent);
    mem_cfg_t c;
    ap_rc rc = mem_read_agent(m, a, tenant, agent, &c, err);
    ap_tx_t *tx;
    if (!rc) rc = ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_graph_learn(tx, tenant, &actor, agent, args, result, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    if (rc && *result) {
        json_decref(*result);
        *result = NULL;
    }
    ap_arena_free(a);
    return rc;
}

ap_rc ap_mem_tool_query_knowledge(ap_mem_t *m, const char *tenant, const char *agent,
                                  json_t *args, json_t **result, ap_err_t *err) {
    *result = NULL;
    ap_arena_t *a = ap_arena_new(8192);
    mem_cfg_t c;
    ap_rc rc = mem_read_agent(m, a, tenant, agent, &c, err);
    ap_tx_t *tx;
    if (!rc) rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err);
    if (!rc) rc = ap_graph_query(tx, tenant, args, result, err);
    ap_arena_free(a);
    return rc;
}

ap_rc ap_mem_task_context(ap_mem_t *m, const char *tenant, const char *agent,
                          const char *objective, int limit, json_t **result, ap_err_t *err) {
    *result = NULL;
    json_t *args = json_pack("{s:s,s:i}", "query", objective ? objective : "", "limit",
                             limit > 0 && limit <= 100 ? limit : 5);
    json_t *mem = NULL;
    ap_rc rc = objective && *objective ? ap_mem_tool_recall(m, tenant, agent, args, &mem, err)
                                       : AP_OK;
    json_decref(args);
    if (rc) return rc;
    json_t *facts = NULL;
    ap_arena_t *a = ap_arena_new(8192);
    ap_tx_t *tx;
    rc = ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, err);
    if (!rc) rc = ap_graph_facts_for_text(tx, tenant, objective ? objective : "", 20, &facts, err);
    ap_arena_free(a);
    if (rc) {
        json_decref(mem);
        return rc;
    }
    json_t *mems = mem ? json_incref(json_object_get(mem, "data")) : json_array();
    json_decref(mem);
    *result = json_pack("{s:o,s:o}", "memories", mems, "facts", facts);
    return AP_OK;
}

/* ---------- the re-embed worker ---------- */

/* Re-embeds up to 64 rows of one agent that were embedded otherwise than
 * its memory_config says; returns how many, or -1 on error. */
int mem_reembed_batch(ap_mem_t *m, const char *tenant, const char *agent) {
    ap_arena_t *a = ap_arena_new(1 << 16);
    ap_err_t err = {0};
    mem_cfg_t c;
    int done = -1;
    ap_tx_t *tx;
    ap_rows_t rows;
    if (mem_read_agent(m, a, tenant, agent, &c, &err)) goto out;
    char model[256];
    snprintf(model, sizeof model, "%s", c.sig);
    char *at = strrchr(model, '@');
    if (at) *at = '\0';
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent), AP_VTEXT(model), AP_VINT(c.dim)};
    if (ap_db_begin(m->db, tenant, AP_TX_READ, a, &tx, &err) ||
        ap_tx_query(tx,
                    "SELECT id, content FROM agent_memories WHERE tenant_id = ? AND agent_id = ?"
                    " AND NOT (embedder = ? AND dim = ?) ORDER BY id LIMIT 64",
                    p, 4, &rows, &err))
        goto out;
    ap_tx_rollback(tx);
    if (!rows.nrows) {
        done = 0;
        goto out;
    }
    const char **texts = ap_arena_alloc(a, sizeof *texts * (size_t)rows.nrows);
    for (int i = 0; i < rows.nrows; i++) texts[i] = ap_rows_at(&rows, i, 1);
    float **vecs;
    int dim;
    const char *sig;
    if (mem_embed(m, a, tenant, &c, NULL, NULL, texts, rows.nrows, &vecs, &dim, &sig, &err)) goto out;
    snprintf(model, sizeof model, "%s", sig);
    if ((at = strrchr(model, '@'))) *at = '\0';
    if (ap_db_begin(m->db, tenant, AP_TX_WRITE, a, &tx, &err)) goto out;
    int64_t seq;
    if (mem_next_seq(tx, tenant, agent, &seq, &err)) goto out;
    ap_rows_t *upd = ap_arena_calloc(a, sizeof *upd * (size_t)rows.nrows);
    for (int i = 0; i < rows.nrows; i++) {
        ap_val_t u[] = {AP_VTEXT(model), AP_VINT(dim), AP_VTEXT(mem_vec_b64(a, vecs[i], dim)),
                        AP_VINT(seq), AP_VTEXT(tenant), AP_VTEXT(ap_rows_at(&rows, i, 0))};
        if (ap_tx_query(tx,
                        "UPDATE agent_memories SET embedder = ?, dim = ?, embedding = ?,"
                        " change_seq = ? WHERE tenant_id = ? AND id = ? RETURNING " MEM_COLS,
                        u, 6, &upd[i], &err))
            goto out;
    }
    if (ap_tx_commit(tx, &err)) goto out;
    for (int i = 0; i < rows.nrows; i++)
        if (upd[i].nrows && !strcmp(ap_rows_get(&upd[i], 0, "status"), "active") &&
            !strcmp(sig, c.sig)) {
            ap_mem_meta_t mt = mem_meta_of(&upd[i], 0);
            mt.seq = seq;
            ap_mem_index_put(m->ix, c.key, &mt, vecs[i], dim, 0);
        }
    ap_mem_index_advance(m->ix, c.key, seq);
    done = rows.nrows;
out:
    if (done < 0)
        ap_log(AP_LOG_WARN, "memory re-embed failed", "{s:s,s:s,s:s,s:s}", "tenant_id", tenant,
               "agent_id", agent, "error", err.msg, "detail", err.detail);
    ap_arena_free(a);
    return done;
}

/* ---------- the public entry points ----------
 * Each call works in an arena of its own, freed on return: a transaction
 * left open by an error path is rolled back there, whatever the lifetime
 * of the caller's arena. */

#define WORK(call)                              \
    ap_arena_t *w = ap_arena_new(16384);        \
    ap_rc rc = call;                            \
    ap_arena_free(w);                           \
    return rc

ap_rc ap_mem_remember(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                      const char *agent, json_t *in, json_t **out, ap_err_t *err) {
    (void)a;
    WORK(remember_in(m, w, tenant, actor, agent, in, out, err));
}

ap_rc ap_mem_recall(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                    json_t *in, json_t **out, ap_err_t *err) {
    (void)a;
    WORK(recall_in(m, w, tenant, agent, in, out, err));
}

ap_rc ap_mem_list(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                  const char *type, const char *status, const char *after, int limit,
                  json_t **items, const char **next, ap_err_t *err) {
    ap_arena_t *w = ap_arena_new(16384);
    ap_rc rc = list_in(m, w, tenant, agent, type, status, after, limit, items, next, err);
    if (!rc && *next) *next = ap_arena_strdup(a, *next);
    ap_arena_free(w);
    return rc;
}

ap_rc ap_mem_get(ap_mem_t *m, ap_arena_t *a, const char *tenant, const char *agent,
                 const char *memory_id, const char *query, json_t **out, ap_err_t *err) {
    (void)a;
    WORK(get_in(m, w, tenant, agent, memory_id, query, out, err));
}

ap_rc ap_mem_forget(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                    const char *agent, const char *memory_id, ap_err_t *err) {
    (void)a;
    WORK(forget_in(m, w, tenant, actor, agent, memory_id, err));
}

ap_rc ap_mem_consolidate(ap_mem_t *m, ap_arena_t *a, const char *tenant,
                         const ap_actor_t *actor, const char *agent, json_t *in, json_t **out,
                         ap_err_t *err) {
    (void)a;
    WORK(consolidate_in(m, w, tenant, actor, agent, in, out, err));
}

ap_rc ap_mem_share(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                   const char *from_agent, json_t *in, json_t **out, ap_err_t *err) {
    (void)a;
    WORK(share_in(m, w, tenant, actor, from_agent, in, out, err));
}
