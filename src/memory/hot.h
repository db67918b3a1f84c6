/*
 * hot.h - tier 1 of agent memory: the hot context of one conversation.
 *
 * 1. Per (tenant, agent, conversation): the last `max_messages` messages
 *    (role + content) and the current task context (a JSON object).  An
 *    entry lives `ttl_ms` after its last write (default 1 hour), then it
 *    is gone as if never written.
 * 2. The tier is an interface (a struct of function pointers) so a Redis
 *    backend can replace the in-process one without changing callers.
 *    ap_mem_hot_local_new builds the in-process backend: a growing hash
 *    map in shards with a mutex each, entries kept in the order of their
 *    last write, so the expired ones are freed from the head of that list.  Reads and
 *    writes are O(messages), amortised O(1) in the number of
 *    conversations, and take microseconds (bench/RESULTS.md).
 * 3. All functions are thread-safe.  Strings passed in are copied.
 */
#ifndef AP_MEMORY_HOT_H
#define AP_MEMORY_HOT_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"

#define AP_MEM_HOT_MAX_MESSAGES 10
#define AP_MEM_HOT_TTL_MS (3600 * 1000)

typedef struct ap_mem_hot ap_mem_hot_t;

struct ap_mem_hot {
    void *impl;
    /* Appends a message, dropping the oldest past max_messages. */
    ap_rc (*push)(ap_mem_hot_t *h, const char *tenant_id, const char *agent_id,
                  const char *conversation_id, const char *role, const char *content,
                  ap_err_t *err);
    /* Replaces the task context (a JSON object, borrowed; NULL clears it). */
    ap_rc (*set_task)(ap_mem_hot_t *h, const char *tenant_id, const char *agent_id,
                      const char *conversation_id, json_t *task_context, ap_err_t *err);
    /* *out (new reference): {"messages":[{"role","content","at"}…],
     * "task_context":{…}|null, "expires_at":"…"}; AP_ERR_NOT_FOUND when
     * there is no live entry. */
    ap_rc (*get)(ap_mem_hot_t *h, const char *tenant_id, const char *agent_id,
                 const char *conversation_id, json_t **out, ap_err_t *err);
    /* Drops one conversation (NULL conversation_id: every conversation of
     * the agent). */
    void (*clear)(ap_mem_hot_t *h, const char *tenant_id, const char *agent_id,
                  const char *conversation_id);
    /* Live entries (for metrics and tests). */
    int (*count)(ap_mem_hot_t *h);
    void (*destroy)(ap_mem_hot_t *h);
};

/* The in-process backend.  max_messages <= 0 and ttl_ms <= 0 take the
 * defaults; now_ms NULL uses the wall clock (tests inject a clock). */
ap_mem_hot_t *ap_mem_hot_local_new(int max_messages, int64_t ttl_ms, int64_t (*now_ms)(void));
void ap_mem_hot_free(ap_mem_hot_t *h); /* accepts NULL */

#endif
