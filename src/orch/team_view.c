/*
 * team_view.c - SQL reads of agents, groups and relationships for tasks.
 */
#include "orch/team_view.h"

#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "orch/agent.h"
#include "orch/relationship.h"
#include "orch/skill.h"

ap_rc ap_orch_tv_agent(ap_tx_t *tx, const char *tenant_id, const char *ref, const char *field,
                       ap_orch_agent_t *out, ap_err_t *err) {
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(ref)};
    ap_rc rc = ap_tx_query(tx,
                           ap_uuid_valid(ref)
                               ? "SELECT * FROM agents WHERE tenant_id = ? AND id = ?"
                               : "SELECT * FROM agents WHERE tenant_id = ? AND name = ?",
                           p, 2, &r, err);
    if (rc) return rc;
    if (r.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent not found",
                          "give the id or name of an agent of this tenant",
                          "%s \"%.64s\" names no agent", field, ref);
    out->id = ap_rows_get(&r, 0, "id");
    out->name = ap_rows_get(&r, 0, "name");
    out->role = ap_rows_get(&r, 0, "role");
    out->description = ap_rows_get(&r, 0, "description");
    out->capabilities = ap_rows_get(&r, 0, "capabilities");
    out->personality = ap_rows_get(&r, 0, "personality");
    out->autonomy_level = ap_rows_get(&r, 0, "autonomy_level");
    out->status = ap_rows_get(&r, 0, "status");
    out->llm_config_id = ap_rows_get(&r, 0, "llm_config_id");
    out->max_delegation_depth = (int)ap_rows_int(&r, 0, "max_delegation_depth", 2);
    int64_t dv = ap_rows_int(&r, 0, "deployed_version", 0);
    out->version = (int)(dv > 0 ? dv : ap_rows_int(&r, 0, "version", 1));
    /* a deployed agent runs its deployed version's spec (agent_versions),
     * not the latest draft the agents row mirrors */
    ap_orch_agent_spec_t sp;
    ap_err_t e2 = {0};
    if (dv > 0 && !ap_orch_agent_spec(tx, out->id, (int)dv, &sp, &e2)) {
        ap_arena_t *a = ap_tx_arena(tx);
        if (sp.name) out->name = sp.name;
        if (sp.role) out->role = sp.role;
        if (sp.description) out->description = sp.description;
        if (sp.autonomy_level) out->autonomy_level = sp.autonomy_level;
        out->llm_config_id = sp.llm_config_id;
        out->max_delegation_depth = sp.max_delegation_depth;
        char *c = sp.capabilities ? json_dumps(sp.capabilities, JSON_COMPACT) : NULL;
        char *pe = sp.personality ? json_dumps(sp.personality, JSON_COMPACT) : NULL;
        if (c) out->capabilities = ap_arena_strdup(a, c);
        if (pe) out->personality = ap_arena_strdup(a, pe);
        free(c);
        free(pe);
    }
    return AP_OK;
}

bool ap_orch_tv_runnable(const ap_orch_agent_t *a) {
    return a->status && (strcmp(a->status, "deployed") == 0 || strcmp(a->status, "running") == 0);
}

ap_rc ap_orch_tv_delegates(ap_tx_t *tx, const char *tenant_id, const char *self, ap_rows_t *out,
                           ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(self)};
    return ap_tx_query(
        tx,
        "SELECT a.id, a.name, a.role, a.capabilities FROM agents a WHERE a.tenant_id = ? AND"
        " a.id IN (SELECT to_agent_id FROM agent_relationships WHERE from_agent_id = ? AND"
        " relationship_type IN ('supervises', 'delegates_to')) ORDER BY a.created_at, a.id",
        p, 2, out, err);
}

ap_rc ap_orch_tv_consultees(ap_tx_t *tx, const char *tenant_id, const char *self, ap_rows_t *out,
                            ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(self), AP_VTEXT(self)};
    return ap_tx_query(
        tx,
        "SELECT a.id, a.name, a.role, a.capabilities FROM agents a WHERE a.tenant_id = ? AND"
        " a.id IN (SELECT to_agent_id FROM agent_relationships WHERE from_agent_id = ? AND"
        " relationship_type IN ('collaborates_with', 'consults') UNION SELECT from_agent_id FROM"
        " agent_relationships WHERE to_agent_id = ? AND relationship_type = 'collaborates_with')"
        " ORDER BY a.created_at, a.id",
        p, 3, out, err);
}

bool ap_orch_tv_may_delegate(ap_tx_t *tx, const char *tenant_id, const char *self, const char *to) {
    (void)tenant_id; /* the transaction's tenant */
    bool ok = false;
    ap_err_t e;
    return !ap_orch_rel_allows_delegation(tx, self, to, &ok, &e) && ok;
}

bool ap_orch_tv_may_query(ap_tx_t *tx, const char *tenant_id, const char *self, const char *to) {
    (void)tenant_id;
    bool ok = false;
    ap_err_t e;
    return !ap_orch_rel_can_query(tx, self, to, &ok, &e) && ok;
}

ap_rc ap_orch_tv_supervisor(ap_tx_t *tx, const char *tenant_id, const char *self, const char **out,
                            ap_err_t *err) {
    (void)tenant_id;
    return ap_orch_supervisor_of(tx, self, out, err);
}

ap_rc ap_orch_tv_group(ap_tx_t *tx, const char *tenant_id, const char *group_id, ap_rows_t *out,
                       ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(group_id)};
    return ap_tx_query(tx,
                       "SELECT id, name, goal, strategy, shared_context, escalation_rules FROM"
                       " agent_groups WHERE tenant_id = ? AND id = ?",
                       p, 2, out, err);
}

ap_rc ap_orch_tv_group_of(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                          const char **out, ap_err_t *err) {
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(agent_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT group_id FROM agent_group_members WHERE tenant_id = ? AND"
                           " agent_id = ? ORDER BY created_at, group_id LIMIT 1",
                           p, 2, &r, err);
    if (rc) return rc;
    *out = r.nrows ? ap_rows_get(&r, 0, "group_id") : NULL;
    return AP_OK;
}

ap_rc ap_orch_tv_group_top(ap_tx_t *tx, const char *tenant_id, const char *group_id,
                           const char **out, ap_err_t *err) {
    ap_rows_t g;
    ap_rc rc = ap_orch_tv_group(tx, tenant_id, group_id, &g, err);
    if (rc) return rc;
    if (!g.nrows)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "group not found",
                          "give the id of an agent group of this tenant",
                          "group_id \"%s\" names no group", group_id);
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(group_id), AP_VTEXT(group_id),
                    AP_VTEXT(group_id)};
    rc = ap_tx_query(
        tx,
        "SELECT m.agent_id AS id, (SELECT COUNT(*) FROM agent_relationships s WHERE"
        " s.from_agent_id = m.agent_id AND s.relationship_type = 'supervises') AS subs"
        " FROM agent_group_members m WHERE m.tenant_id = ? AND m.group_id = ? AND NOT EXISTS"
        " (SELECT 1 FROM agent_relationships x JOIN agent_group_members o ON o.agent_id ="
        " x.from_agent_id AND o.group_id = ? WHERE x.to_agent_id = m.agent_id AND"
        " x.relationship_type = 'supervises') AND NOT EXISTS (SELECT 1 FROM"
        " agent_relationships y JOIN agent_group_members o2 ON o2.agent_id = y.to_agent_id AND"
        " o2.group_id = ? WHERE y.from_agent_id = m.agent_id AND y.relationship_type ="
        " 'reports_to') ORDER BY CASE WHEN (SELECT COUNT(*) FROM agent_relationships s2 WHERE"
        " s2.from_agent_id = m.agent_id AND s2.relationship_type = 'supervises') > 0 THEN 0"
        " ELSE 1 END, m.created_at, m.agent_id LIMIT 1",
        p, 4, &r, err);
    if (rc) return rc;
    if (!r.nrows)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "group has no top supervisor",
                          "add members to the group, or give assigned_agent_id",
                          "group %s has no member that nobody in it supervises", group_id);
    *out = ap_rows_get(&r, 0, "id");
    return AP_OK;
}

ap_rc ap_orch_tv_skill_outcome(ap_tx_t *tx, const char *tenant_id, const char *agent_id,
                               const char *skill_name, bool success, double confidence,
                               const char *example, ap_err_t *err) {
    (void)tenant_id;
    return ap_orch_skill_record_outcome(tx, agent_id, skill_name, success, confidence, example,
                                        NULL, err);
}
