/*
 * skill.h - agents' skills and how practice changes them (table
 * agent_skills; docs/agents.md).
 *
 * 1. A skill belongs to one agent; skill_name (1..100 bytes) is unique per
 *    agent.  proficiency and success_rate are in [0, 1]; learned_from is
 *    training | observation | practice | feedback; examples is an array
 *    (at most AP_ORCH_SKILL_EXAMPLES kept).  times_used, success_rate and
 *    last_used_at move only through ap_orch_skill_record_outcome.
 * 2. The update rule of ap_orch_skill_record_outcome, for an outcome
 *    s ∈ {0, 1} (success) with confidence c ∈ [0, 1] (clamped):
 *      n'            = times_used + 1
 *      success_rate' = success_rate + (s − success_rate) / n'   (running mean)
 *      η             = max(0.05, 1 / (n' + 1))                  (1/2, 1/3, … ≥ 0.05)
 *      proficiency'  = proficiency + η · (c·s − proficiency)    (clamped to [0, 1])
 *    An example (when given) is appended as {"text", "success",
 *    "confidence", "at"}, keeping the last AP_ORCH_SKILL_EXAMPLES.  A skill
 *    the agent does not have yet is created first with proficiency 0.5 and
 *    learned_from "practice".
 * 3. REST writes are audited (agent.skill.create, .update, .delete);
 *    record_outcome is not (the runner's task events record it).
 */
#ifndef AP_ORCH_SKILL_H
#define AP_ORCH_SKILL_H

#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/json.h"
#include "store/db.h"

#define AP_ORCH_SKILL_EXAMPLES 10
#define AP_ORCH_SKILLS_MAX 200 /* per agent */

extern const ap_jfield_t ap_orch_skill_create_fields[];
extern const ap_jfield_t ap_orch_skill_update_fields[];

/* tx: a transaction for tenant_id; *out a new reference. */
ap_rc ap_orch_skill_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, json_t *in, json_t **out, ap_err_t *err);
ap_rc ap_orch_skill_get(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                        const char *skill_id, json_t **out, ap_err_t *err);
/* Ordered by skill_name. after: the skill_name cursor. */
ap_rc ap_orch_skill_list(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                         const char *after, int limit, json_t **out, const char **next,
                         ap_err_t *err);
ap_rc ap_orch_skill_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, const char *skill_id, json_t *in, json_t **out,
                           ap_err_t *err);
ap_rc ap_orch_skill_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, const char *skill_id, ap_err_t *err);

/* The pure rule of note 2 (exposed for tests and for the documentation). */
typedef struct {
    double proficiency, success_rate;
    int times_used;
} ap_orch_skill_state_t;
void ap_orch_skill_apply(ap_orch_skill_state_t *s, bool success, double confidence);

/* For the runner, when a task completes: applies note 2 to agent_id's
 * skill_name in the tx's tenant (platform scope: the agent's tenant).
 * example may be NULL.  *out (optional, may be NULL) gets the skill. */
ap_rc ap_orch_skill_record_outcome(ap_tx_t *tx, const char *agent_id, const char *skill_name,
                                   bool success, double confidence, const char *example,
                                   json_t **out, ap_err_t *err);

#endif
