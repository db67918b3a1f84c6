/*
 * memory.h - agent memory: one service over three tiers.
 *
 *   tier 1  hot context (hot.h): the last messages and the task context of
 *           a conversation, in process, one hour.
 *   tier 2  semantic memory (this file): remember, recall, forget,
 *           consolidate, share; embeddings stored with each memory in
 *           agent_memories, searched through a partitioned index (index.h).
 *   tier 3  knowledge graph (graph.h): entities, temporal facts and
 *           relations of the tenant.
 *
 * 1. Every function takes the tenant and opens its own tenant
 *    transactions (the index is updated after the commit, and embeddings
 *    are computed outside any transaction).  Mutations append their audit
 *    entry in the same transaction as the change.
 * 2. An agent is read from `agents` in the tenant transaction: an agent of
 *    another tenant is "agent not found", exactly like one that does not
 *    exist.  Memories are only ever read with (tenant_id, agent_id): recall
 *    never returns another agent's memory unless it was shared (copied)
 *    to this agent.
 * 3. Inputs are JSON objects checked against the field tables below
 *    (unknown fields refused by name); outputs are new JSON references.
 * 4. The per-agent configuration is agents.memory_config (keys in
 *    docs/memory.md; ap_mem_config_check validates one).
 * 5. ap_mem_t is thread-safe.
 * 6. Embedding with a provider model is a model call like any other: the
 *    tenant's budgets are checked first (over budget: AP_ERR_LIMIT,
 *    "budget-exceeded", naming the budget, nothing written) and each call
 *    is recorded in llm_usage with the agent (and the task of a remember
 *    with source_task_id).  The builtin embedder is free and unmetered.
 *
 * Ranking (docs/memory.md): score = 0.60·similarity + 0.20·importance
 *   + 0.15·recency + 0.05·access, similarity = cosine clamped to [0,1],
 *   recency = 0.5^(age_days / 14), access = min(1, ln(1+n) / ln(101)).
 */
#ifndef AP_MEMORY_MEMORY_H
#define AP_MEMORY_MEMORY_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "memory/hot.h"
#include "memory/index.h"
#include "store/db.h"

struct ap_upstream;
struct ap_usage_writer;
struct ap_llm_cache;
typedef struct ap_mem ap_mem_t;

#define AP_MEM_W_SIMILARITY 0.60
#define AP_MEM_W_IMPORTANCE 0.20
#define AP_MEM_W_RECENCY 0.15
#define AP_MEM_W_ACCESS 0.05
#define AP_MEM_RECENCY_HALF_LIFE_DAYS 14.0

extern const char *const ap_mem_types[];   /* fact experience skill preference relationship procedure */
extern const char *const ap_mem_sources[]; /* conversation training observation inference user_feedback */

/* Request bodies.  agent_id is accepted in every body for the /api/v1/memory
 * alias; when the caller names the agent otherwise (a path) they must agree. */
extern const ap_jfield_t ap_mem_remember_fields[];
extern const ap_jfield_t ap_mem_recall_fields[];
extern const ap_jfield_t ap_mem_consolidate_fields[];
extern const ap_jfield_t ap_mem_share_fields[];
extern const ap_jfield_t ap_mem_hot_push_fields[];

typedef struct {
    ap_db_t *db;
    struct ap_upstream *upstream; /* provider embeddings; NULL: builtin only */
    struct ap_usage_writer *usage; /* provider embeddings are recorded here; NULL: not metered */
    struct ap_llm_cache *cache;    /* budget totals for the budget check; NULL: the database */
    ap_mem_hot_t *hot;            /* taken over; NULL: the in-process backend */
    bool no_worker;               /* tests: no background threads; jobs run only via
                                     ap_mem_run_jobs, counts are written by ap_mem_flush */
    int hnsw_min;                 /* partitions of this many memories get an HNSW graph;
                                     0: AP_MEM_HNSW_MIN, < 0: never (docs/memory.md) */
    int max_candidates;           /* graph candidates per recall before it scans instead;
                                     0: AP_MEM_MAX_CANDIDATES */
    const char *index_dir;        /* partition files (<data-dir>/memory-index); NULL: none */
    int save_min;                 /* partitions of this many memories are saved; 0: hnsw_min */
    int tombstone_days;           /* forgotten memories' tombstones are kept this long;
                                     0: AP_MEM_TOMBSTONE_DAYS */
} ap_mem_opts_t;

#define AP_MEM_TOMBSTONE_DAYS 7

ap_rc ap_mem_new(const ap_mem_opts_t *o, ap_mem_t **out, ap_err_t *err);
void ap_mem_free(ap_mem_t *m); /* accepts NULL; stops the re-embed worker */
/* Stops the re-embed worker (before the upstream loop goes away);
 * queued jobs stay queued.  Accepts NULL. */
void ap_mem_stop_worker(ap_mem_t *m);
ap_mem_hot_t *ap_mem_hot(ap_mem_t *m);
ap_db_t *ap_mem_db(ap_mem_t *m);
/* Runs queued background jobs (re-embedding, graph builds, calibration
 * samples) on this thread; returns how many memories were re-embedded. */
int ap_mem_run_jobs(ap_mem_t *m);
/* Writes the access counts recalls have counted and not yet written (the
 * flusher does it every 200 ms); returns how many memories' counts. */
int ap_mem_flush(ap_mem_t *m);
/* Saves the index partition files: all that changed (all), or those that
 * changed enough (the background rule, docs/memory.md).  Returns how many
 * were written. */
int ap_mem_save(ap_mem_t *m, bool all);
/* The state of an agent's index partition (diagnostics and tests): false
 * when the agent is unknown or its partition is not loaded. */
bool ap_mem_index_state(ap_mem_t *m, const char *tenant_id, const char *agent_id,
                        ap_mem_part_info_t *out);
/* Deletes tombstones older than tombstone_days (hourly in the
 * background); partitions that reflect less than what was pruned reload. */
int ap_mem_prune_tombstones(ap_mem_t *m);

/* Validates an agents.memory_config object (for the agents service). */
ap_rc ap_mem_config_check(json_t *cfg, ap_err_t *err);

/* --- tier 2: semantic memory --- *
 * agent_id may be NULL where the memory id alone names it (get, forget);
 * otherwise it is the agent the memory belongs to. */

/* {agent_id?, content, memory_type, importance?, source?, source_task_id?,
 *  subject?, expires_at?} → the memory (201). */
ap_rc ap_mem_remember(ap_mem_t *m, ap_arena_t *a, const char *tenant_id,
                      const ap_actor_t *actor, const char *agent_id, json_t *in, json_t **out,
                      ap_err_t *err);
/* {agent_id?, query, limit?, types?, min_importance?, min_similarity?,
 *  since?, until?, include_shared?} → {"data":[memory + similarity, score,
 * score_parts], "ranking":{weights…}}.  Bumps access_count and
 * last_accessed_at of what it returns. */
ap_rc ap_mem_recall(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                    json_t *in, json_t **out, ap_err_t *err);
/* A page of an agent's memories (newest id last), with counters; agent_id
 * NULL lists every agent's of the tenant; type and status filter when not
 * NULL. */
ap_rc ap_mem_list(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                  const char *type, const char *status, const char *after, int limit,
                  json_t **items, const char **next, ap_err_t *err);
/* One memory; with query not NULL, also its similarity and blended score
 * against that query (the memory inspector). */
ap_rc ap_mem_get(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                 const char *memory_id, const char *query, json_t **out, ap_err_t *err);
/* Deletes the memory from the store and the index. */
ap_rc ap_mem_forget(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const ap_actor_t *actor,
                    const char *agent_id, const char *memory_id, ap_err_t *err);
/* {agent_id?, dry_run?} → {"merged":[…], "superseded":[…],
 * "pruned_expired":[ids], "pruned_low_value":[ids], "counts":{…}}. */
ap_rc ap_mem_consolidate(ap_mem_t *m, ap_arena_t *a, const char *tenant_id,
                         const ap_actor_t *actor, const char *agent_id, json_t *in, json_t **out,
                         ap_err_t *err);
/* {agent_id?, to_agent_id, memory_ids:[…]} → {"shared":[{id, shared_from_memory_id}],
 * "skipped":[ids already shared]}.  AP_ERR_DENIED when memory_config of
 * either agent forbids it. */
ap_rc ap_mem_share(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const ap_actor_t *actor,
                   const char *from_agent_id, json_t *in, json_t **out, ap_err_t *err);

/* --- tier 1 through the service (checks the agent exists in the tenant) --- */
/* {conversation_id, role?, content?, task_context?} */
ap_rc ap_mem_hot_push(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                      json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_mem_hot_get(ap_mem_t *m, ap_arena_t *a, const char *tenant_id, const char *agent_id,
                     const char *conversation_id, json_t **out, ap_err_t *err);

/* --- agent tools (the runner): (tenant, agent, JSON args) → JSON result ---
 * args are the tool call's arguments; the actor is the agent itself.
 *   remember        args as ap_mem_remember (no agent_id)   → the memory
 *   recall          args as ap_mem_recall                   → {"data":[…]}
 *   learn_entity    args as ap_graph_learn (graph.h)        → the entity
 *   query_knowledge args as ap_graph_query (graph.h)        → {"data":[…]}
 * *result is a new reference; on error *result is NULL and err says why
 * (the runner hands err.detail back to the model). */
ap_rc ap_mem_tool_remember(ap_mem_t *m, const char *tenant_id, const char *agent_id,
                           json_t *args, json_t **result, ap_err_t *err);
ap_rc ap_mem_tool_recall(ap_mem_t *m, const char *tenant_id, const char *agent_id, json_t *args,
                         json_t **result, ap_err_t *err);
ap_rc ap_mem_tool_learn_entity(ap_mem_t *m, const char *tenant_id, const char *agent_id,
                               json_t *args, json_t **result, ap_err_t *err);
ap_rc ap_mem_tool_query_knowledge(ap_mem_t *m, const char *tenant_id, const char *agent_id,
                                  json_t *args, json_t **result, ap_err_t *err);
/* What the runner puts into a task's context: the `limit` memories best
 * recalled for `objective` and the knowledge facts of entities named in
 * it: {"memories":[…], "facts":[…]}. */
ap_rc ap_mem_task_context(ap_mem_t *m, const char *tenant_id, const char *agent_id,
                          const char *objective, int limit, json_t **result, ap_err_t *err);


#endif
