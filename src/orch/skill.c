/*
 * skill.c - agents' skills: CRUD and the practice rule (skill.h note 2).
 *
 * 1. record_outcome reads the row, applies the rule in C (one definition
 *    for both backends, unit-tested on its own) and writes it back; the
 *    unique key (agent_id, skill_name) with ON CONFLICT DO NOTHING makes
 *    the first use of a new skill safe against a racing one.
 */
#include "orch/skill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "orch/common.h"

static const char *const sources[] = {"training", "observation", "practice", "feedback", NULL};

const ap_jfield_t ap_orch_skill_create_fields[] = {
    {"skill_name", AP_JT_STRING, true, false, NULL, 100, 0, 0},
    {"proficiency", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"learned_from", AP_JT_STRING, false, false, sources, 0, 0, 0},
    {"examples", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_skill_update_fields[] = {
    {"proficiency", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"learned_from", AP_JT_STRING, false, false, sources, 0, 0, 0},
    {"examples", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

#define SKILL_COLS                                                                         \
    "id, tenant_id, agent_id, skill_name, proficiency, times_used, success_rate,"          \
    " learned_from, examples, last_used_at, created_at, updated_at"

static double num(const ap_rows_t *r, int i, const char *col) {
    const char *s = ap_rows_get(r, i, col);
    return s ? strtod(s, NULL) : 0;
}

static json_t *skill_json(const ap_rows_t *r, int i) {
    return json_pack("{s:s,s:s,s:s,s:s,s:f,s:I,s:f,s:s,s:o,s:s?,s:s,s:s}", "id",
                     ap_rows_get(r, i, "id"), "tenant_id", ap_rows_get(r, i, "tenant_id"),
                     "agent_id", ap_rows_get(r, i, "agent_id"), "skill_name",
                     ap_rows_get(r, i, "skill_name"), "proficiency", num(r, i, "proficiency"),
                     "times_used", (json_int_t)ap_rows_int(r, i, "times_used", 0),
                     "success_rate", num(r, i, "success_rate"), "learned_from",
                     ap_rows_get(r, i, "learned_from"), "examples",
                     ap_orch_json_col(ap_rows_get(r, i, "examples")), "last_used_at",
                     ap_rows_get(r, i, "last_used_at"), "created_at",
                     ap_rows_get(r, i, "created_at"), "updated_at",
                     ap_rows_get(r, i, "updated_at"));
}

static ap_rc not_found(const char *id, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "skill not found",
                      "GET /api/v1/agents/{agent_id}/skills lists the agent's skills",
                      "the agent has no skill with id \"%.64s\"", id);
}

ap_rc ap_orch_skill_get(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                        const char *skill_id, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, agent_id, NULL, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(skill_id), AP_VTEXT(agent_id), AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "SELECT " SKILL_COLS " FROM agent_skills WHERE id = ? AND agent_id = ?"
                     " AND tenant_id = ?",
                     p, 3, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(skill_id, err);
    *out = skill_json(&rows, 0);
    return AP_OK;
}

static ap_rc check_examples(json_t *ex, ap_err_t *err) {
    if (ex && json_array_size(ex) > AP_ORCH_SKILL_EXAMPLES)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "too many examples",
                          "give at most 10 examples", "examples has %zu items",
                          json_array_size(ex));
    return AP_OK;
}

static ap_rc check_name(const char *name, ap_err_t *err) {
    bool blank = true;
    for (const char *p = name; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') blank = false;
    if (blank)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "empty field",
                          "give a skill name, e.g. research", "field \"skill_name\" is blank");
    return AP_OK;
}

/* Inserts a skill row (ON CONFLICT DO NOTHING); *created tells. */
static ap_rc insert(ap_tx_t *tx, const char *tenant_id, const char *agent_id, const char *id,
                    const char *name, double proficiency, const char *learned_from,
                    const char *examples, bool *created, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_rows_t rows;
    ap_val_t v[] = {AP_VTEXT(id),           AP_VTEXT(tenant_id),    AP_VTEXT(agent_id),
                    AP_VTEXT(name),         AP_VREAL(proficiency),  AP_VTEXT(learned_from),
                    AP_VTEXT(examples),     AP_VTEXT(now),          AP_VTEXT(now)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO agent_skills (id, tenant_id, agent_id, skill_name,"
                           " proficiency, times_used, success_rate, learned_from, examples,"
                           " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)"
                           " ON CONFLICT (agent_id, skill_name) DO NOTHING RETURNING id",
                           v, 9, &rows, err);
    if (!rc) *created = rows.nrows > 0;
    return rc;
}

ap_rc ap_orch_skill_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *name = ap_json_str(in, "skill_name");
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, agent_id, NULL, err);
    if (!rc) rc = check_name(name, err);
    if (!rc) rc = check_examples(json_object_get(in, "examples"), err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(agent_id)};
    rc = ap_tx_query(tx, "SELECT COUNT(*) AS n FROM agent_skills WHERE agent_id = ?", p, 1, &rows,
                     err);
    if (rc) return rc;
    if (ap_rows_int(&rows, 0, "n", 0) >= AP_ORCH_SKILLS_MAX)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "too many skills",
                          "delete a skill the agent no longer needs",
                          "an agent may have at most %d skills", AP_ORCH_SKILLS_MAX);
    json_t *pr = json_object_get(in, "proficiency");
    const char *from = ap_json_str(in, "learned_from");
    json_t *ex = json_object_get(in, "examples");
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    bool created;
    rc = insert(tx, tenant_id, agent_id, id, name, pr ? json_number_value(pr) : 0.5,
                from ? from : "training", ex ? ap_orch_json_text(tx, ex) : "[]", &created, err);
    if (rc) return rc;
    if (!created)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "skill exists",
                          "update the existing skill instead",
                          "the agent already has a skill named \"%.100s\"", name);
    json_t *changes = json_deep_copy(in);
    json_object_set_new(changes, "agent_id", json_string(agent_id));
    rc = ap_orch_audit(tx, tenant_id, actor, "agent.skill.create", "agent_skill", id, changes, err);
    json_decref(changes);
    if (!rc) rc = ap_orch_skill_get(tx, tenant_id, agent_id, id, out, err);
    return rc;
}

ap_rc ap_orch_skill_list(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                         const char *after, int limit, json_t **out, const char **next,
                         ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, agent_id, NULL, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(agent_id), AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""),
                    AP_VINT(limit + 1)};
    rc = ap_tx_query(tx,
                     "SELECT " SKILL_COLS " FROM agent_skills WHERE agent_id = ? AND tenant_id = ?"
                     " AND skill_name > ? ORDER BY skill_name LIMIT ?",
                     p, 4, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, skill_json, "skill_name", next);
    return AP_OK;
}

ap_rc ap_orch_skill_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, const char *skill_id, json_t *in, json_t **out,
                           ap_err_t *err) {
    *out = NULL;
    json_t *cur = NULL;
    ap_rc rc = ap_orch_skill_get(tx, tenant_id, agent_id, skill_id, &cur, err);
    json_decref(cur);
    if (!rc) rc = check_examples(json_object_get(in, "examples"), err);
    if (rc) return rc;
    json_t *pr = json_object_get(in, "proficiency");
    json_t *ex = json_object_get(in, "examples");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {pr ? AP_VREAL(json_number_value(pr)) : AP_VNULL,
                    AP_VTEXT(ap_json_str(in, "learned_from")),
                    AP_VTEXT(ex ? ap_orch_json_text(tx, ex) : NULL),
                    AP_VTEXT(now),
                    AP_VTEXT(skill_id),
                    AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "UPDATE agent_skills SET proficiency = COALESCE(?, proficiency),"
                     " learned_from = COALESCE(?, learned_from), examples = COALESCE(?, examples),"
                     " updated_at = ? WHERE id = ? AND tenant_id = ?",
                     v, 6, NULL, err);
    if (!rc)
        rc = ap_orch_audit(tx, tenant_id, actor, "agent.skill.update", "agent_skill", skill_id, in,
                           err);
    if (!rc) rc = ap_orch_skill_get(tx, tenant_id, agent_id, skill_id, out, err);
    return rc;
}

ap_rc ap_orch_skill_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *agent_id, const char *skill_id, ap_err_t *err) {
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, agent_id, NULL, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(skill_id), AP_VTEXT(agent_id), AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "DELETE FROM agent_skills WHERE id = ? AND agent_id = ? AND tenant_id = ?"
                     " RETURNING skill_name",
                     p, 3, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(skill_id, err);
    json_t *changes = json_pack("{s:s,s:s}", "agent_id", agent_id, "skill_name",
                                ap_rows_get(&rows, 0, "skill_name"));
    rc = ap_orch_audit(tx, tenant_id, actor, "agent.skill.delete", "agent_skill", skill_id, changes,
                       err);
    json_decref(changes);
    return rc;
}

/* --- the practice rule --- */

ap_rc ap_orch_skill_record_outcome(ap_tx_t *tx, const char *agent_id, const char *skill_name,
                                   bool success, double confidence, const char *example,
                                   json_t **out, ap_err_t *err) {
    if (out) *out = NULL;
    if (!skill_name || !*skill_name || strlen(skill_name) > 100)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid skill name",
                          "name the skill with 1 to 100 bytes", "skill_name is %s",
                          skill_name && *skill_name ? "too long" : "empty");
    ap_rows_t a;
    ap_val_t pa[] = {AP_VTEXT(agent_id), AP_VTEXT(ap_orch_tenant(tx))};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT tenant_id FROM agents WHERE id = ?"
                           " AND tenant_id = COALESCE(?, tenant_id)",
                           pa, 2, &a, err);
    if (rc) return rc;
    if (a.nrows == 0) return ap_orch_agent_not_found(agent_id, err);
    const char *tenant_id = ap_rows_get(&a, 0, "tenant_id");
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    bool created;
    rc = insert(tx, tenant_id, agent_id, id, skill_name, 0.5, "practice", "[]", &created, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(agent_id), AP_VTEXT(skill_name)};
    rc = ap_tx_query(tx,
                     "SELECT " SKILL_COLS " FROM agent_skills WHERE agent_id = ? AND skill_name = ?",
                     p, 2, &rows, err);
    if (rc) return rc;
    ap_orch_skill_state_t s = {num(&rows, 0, "proficiency"), num(&rows, 0, "success_rate"),
                               (int)ap_rows_int(&rows, 0, "times_used", 0)};
    ap_orch_skill_apply(&s, success, confidence);
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    json_t *examples = ap_orch_json_col(ap_rows_get(&rows, 0, "examples"));
    if (!json_is_array(examples)) {
        json_decref(examples);
        examples = json_array();
    }
    if (example) {
        json_array_append_new(examples,
                              json_pack("{s:s,s:b,s:f,s:s}", "text", example, "success", success,
                                        "confidence", isfinite(confidence) ? confidence : 0.0,
                                        "at", now));
        while (json_array_size(examples) > AP_ORCH_SKILL_EXAMPLES) json_array_remove(examples, 0);
    }
    ap_val_t v[] = {AP_VREAL(s.proficiency), AP_VINT(s.times_used), AP_VREAL(s.success_rate),
                    AP_VTEXT(ap_orch_json_text(tx, examples)), AP_VTEXT(now), AP_VTEXT(now),
                    AP_VTEXT(ap_rows_get(&rows, 0, "id"))};
    json_decref(examples);
    rc = ap_tx_query(tx,
                     "UPDATE agent_skills SET proficiency = ?, times_used = ?, success_rate = ?,"
                     " examples = ?, last_used_at = ?, updated_at = ? WHERE id = ?",
                     v, 7, NULL, err);
    if (!rc && out)
        rc = ap_orch_skill_get(tx, tenant_id, agent_id, ap_rows_get(&rows, 0, "id"), out, err);
    return rc;
}
