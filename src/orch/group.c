/*
 * group.c - agent groups (teams), their members and their hierarchy.
 *
 * 1. An update reads the group, lays the given fields over it and checks
 *    the result as a whole, like the create.
 * 2. The hierarchy is built in C from two reads (members, relationships
 *    between members): a member's parent is its first supervisor among
 *    the members (supervises, or reports_to reversed, oldest first); a
 *    parent link that would make a loop (impossible while the cycle check
 *    holds, but the tree must never be circular) is listed as an edge.
 */
#include "orch/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "orch/common.h"

#define GROUP_FIELDS                                                                   \
    {"description", AP_JT_STRING, false, false, NULL, 4000, 0, 0},                     \
        {"goal", AP_JT_STRING, false, false, NULL, 4000, 0, 0},                        \
        {"strategy", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},                       \
        {"shared_context", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},                 \
        {"escalation_rules", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},               \
        {"members", AP_JT_ARRAY, false, false, NULL, 0, 0, 0}

const ap_jfield_t ap_orch_group_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    GROUP_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_group_update_fields[] = {
    {"name", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    GROUP_FIELDS,
    AP_JFIELDS_END,
};

#define GROUP_COLS                                                                       \
    "id, tenant_id, name, description, goal, strategy, shared_context, escalation_rules," \
    " created_at, updated_at"

static ap_rc not_found(const char *id, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent group not found",
                      "GET /api/v1/agent-groups lists this tenant's groups",
                      "no agent group with id \"%.64s\" in this tenant", id);
}

static ap_rc members_json(ap_tx_t *tx, const char *group_id, json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(group_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT m.agent_id, a.name, a.role, a.status, m.created_at AS joined_at"
                           " FROM agent_group_members m JOIN agents a ON a.id = m.agent_id"
                           " WHERE m.group_id = ? ORDER BY a.name, a.id",
                           p, 1, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows; i++) json_array_append_new(arr, ap_rows_json(&rows, i, NULL));
    *out = arr;
    return AP_OK;
}

static json_t *group_json(const ap_rows_t *r, int i, json_t *members) {
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s,s:s}", "id",
                     ap_rows_get(r, i, "id"), "tenant_id", ap_rows_get(r, i, "tenant_id"),
                     "name", ap_rows_get(r, i, "name"), "description",
                     ap_rows_get(r, i, "description"), "goal", ap_rows_get(r, i, "goal"),
                     "strategy", ap_orch_json_col(ap_rows_get(r, i, "strategy")),
                     "shared_context", ap_orch_json_col(ap_rows_get(r, i, "shared_context")),
                     "escalation_rules", ap_orch_json_col(ap_rows_get(r, i, "escalation_rules")),
                     "members", members, "created_at", ap_rows_get(r, i, "created_at"),
                     "updated_at", ap_rows_get(r, i, "updated_at"));
}

static ap_rc fetch(ap_tx_t *tx, const char *tenant_id, const char *id, ap_rows_t *rows,
                   ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " GROUP_COLS " FROM agent_groups WHERE id = ?"
                           " AND tenant_id = COALESCE(?, tenant_id)",
                           p, 2, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : not_found(id, err);
}

ap_rc ap_orch_group_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    json_t *members = NULL;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (!rc) rc = members_json(tx, id, &members, err);
    if (!rc) *out = group_json(&rows, 0, members);
    return rc;
}

/* --- checks --- */

static ap_rc check_escalation(ap_tx_t *tx, const char *tenant_id, json_t *rules,
                              json_t *members, ap_err_t *err) {
    if (!json_is_object(rules)) return AP_OK;
    const char *key;
    json_t *v;
    json_object_foreach(rules, key, v) {
        const char *why = NULL;
        if (strcmp(key, "min_confidence") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
                why = "must be a number from 0 to 1";
        } else if (strcmp(key, "on_failure") == 0) {
            if (!json_is_boolean(v)) why = "must be a boolean";
        } else if (strcmp(key, "max_attempts") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10)
                why = "must be an integer from 1 to 10";
        } else if (strcmp(key, "escalate_to") == 0) {
            const char *s = json_string_value(v);
            if (!s) {
                why = "must be \"supervisor\", \"human\" or an agent id of the group";
            } else if (strcmp(s, "supervisor") != 0 && strcmp(s, "human") != 0) {
                bool member = false;
                size_t i;
                json_t *m;
                json_array_foreach(members, i, m) {
                    const char *mid = json_string_value(json_object_get(m, "agent_id"));
                    if (!mid) mid = json_string_value(m);
                    if (mid && strcmp(mid, s) == 0) member = true;
                }
                if (!member) why = "must be \"supervisor\", \"human\" or an agent id of the group";
            }
        } else {
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown escalation rule",
                              "use min_confidence, on_failure, max_attempts and escalate_to "
                              "(docs/agents.md)",
                              "escalation_rules.%.64s is not accepted", key);
        }
        if (why)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid escalation rule",
                              "see docs/agents.md for escalation_rules",
                              "escalation_rules.%s %s", key, why);
    }
    (void)tx;
    (void)tenant_id;
    return AP_OK;
}

/* Checks members (array of ids): agents of the tenant, not retired. */
static ap_rc check_members(ap_tx_t *tx, const char *tenant_id, json_t *members, ap_err_t *err) {
    if (!members) return AP_OK;
    ap_rc rc = ap_orch_check_strings(members, "members", AP_ORCH_GROUP_MAX_MEMBERS, 36, err);
    if (rc) return rc;
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        const char *id = json_string_value(m);
        ap_rows_t rows;
        ap_val_t p[] = {AP_VTEXT(ap_uuid_valid(id) ? id : ""), AP_VTEXT(tenant_id)};
        rc = ap_tx_query(tx, "SELECT status FROM agents WHERE id = ? AND tenant_id = ?", p, 2,
                         &rows, err);
        if (rc) return rc;
        if (rows.nrows == 0)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown agent",
                              "list ids of agents of this tenant (GET /api/v1/agents)",
                              "members[%zu] \"%.64s\" is not an agent of this tenant", i, id);
        if (strcmp(ap_rows_get(&rows, 0, "status"), "retired") == 0)
            return ap_err_set(err, AP_ERR_CONFLICT, "agent-retired", "agent is retired",
                              "a retired agent cannot join a group",
                              "members[%zu] \"%.64s\" is retired", i, id);
    }
    return AP_OK;
}

static ap_rc check_text(json_t *g, ap_err_t *err) {
    const char *s = ap_json_str(g, "name");
    bool blank = true;
    for (const char *p = s; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') blank = false;
    if (blank)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "empty field",
                          "give a non-blank name", "field \"name\" is blank");
    return AP_OK;
}

static const ap_orch_kind_t kind = {
    .table = "agent_groups", .noun = "agent group", .short_noun = "group",
    .limit_col = "max_agent_groups", .counted = "", .counted_as = "groups",
    .make_room = "delete a group"};

/* --- writes --- */

static ap_rc store(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *g, bool update,
                   ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(ap_json_str(g, "name")),
                    AP_VTEXT(ap_json_str(g, "description") ? ap_json_str(g, "description") : ""),
                    AP_VTEXT(ap_json_str(g, "goal") ? ap_json_str(g, "goal") : ""),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(g, "strategy"))),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(g, "shared_context"))),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(g, "escalation_rules"))),
                    AP_VTEXT(now),
                    AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(now)};
    if (update)
        return ap_tx_query(tx,
                           "UPDATE agent_groups SET name = ?, description = ?, goal = ?,"
                           " strategy = ?, shared_context = ?, escalation_rules = ?,"
                           " updated_at = ? WHERE id = ? AND tenant_id = ?",
                           v, 9, NULL, err);
    return ap_tx_query(tx,
                       "INSERT INTO agent_groups (name, description, goal, strategy,"
                       " shared_context, escalation_rules, updated_at, id, tenant_id,"
                       " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       v, 10, NULL, err);
}

static ap_rc add_member(ap_tx_t *tx, const char *tenant_id, const char *group_id,
                        const char *agent_id, bool *added, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(group_id), AP_VTEXT(agent_id), AP_VTEXT(now)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO agent_group_members (tenant_id, group_id, agent_id,"
                           " created_at) VALUES (?, ?, ?, ?) ON CONFLICT (group_id, agent_id)"
                           " DO NOTHING RETURNING agent_id",
                           p, 4, &rows, err);
    if (!rc && added) *added = rows.nrows > 0;
    return rc;
}

static ap_rc set_members(ap_tx_t *tx, const char *tenant_id, const char *group_id,
                         json_t *members, ap_err_t *err) {
    if (!members) return AP_OK;
    ap_val_t p[] = {AP_VTEXT(group_id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM agent_group_members WHERE group_id = ? AND tenant_id = ?",
                           p, 2, NULL, err);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        if (!rc) rc = add_member(tx, tenant_id, group_id, json_string_value(m), NULL, err);
    }
    return rc;
}

/* escalation_rules.escalate_to may name a member: checked against the
 * members given, or the current ones. */
static ap_rc member_list(ap_tx_t *tx, const char *id, json_t *given, json_t **out,
                         ap_err_t *err) {
    if (given) {
        *out = json_incref(given);
        return AP_OK;
    }
    if (!id) {
        *out = json_array();
        return AP_OK;
    }
    return members_json(tx, id, out, err);
}

static ap_rc check_all(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *g,
                       json_t *given_members, ap_err_t *err) {
    ap_rc rc = check_text(g, err);
    if (!rc) rc = check_members(tx, tenant_id, given_members, err);
    json_t *members = NULL;
    if (!rc) rc = member_list(tx, id, given_members, &members, err);
    if (!rc) rc = check_escalation(tx, tenant_id, json_object_get(g, "escalation_rules"), members, err);
    json_decref(members);
    if (!rc) rc = ap_orch_name_free(tx, &kind, tenant_id, ap_json_str(g, "name"), id, err);
    return rc;
}

ap_rc ap_orch_group_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    json_t *g = json_pack("{s:s,s:s,s:{},s:{},s:{}}", "description", "", "goal", "", "strategy",
                          "shared_context", "escalation_rules");
    json_object_update(g, in);
    json_t *members = json_object_get(in, "members");
    ap_rc rc = check_all(tx, tenant_id, NULL, g, members, err);
    if (!rc) rc = ap_orch_check_limit(tx, &kind, tenant_id, err);
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    if (!rc) rc = store(tx, tenant_id, id, g, false, err);
    if (!rc) rc = set_members(tx, tenant_id, id, members, err);
    if (!rc) rc = ap_orch_audit(tx, tenant_id, actor, "agent_group.create", "agent_group", id, in, err);
    json_decref(g);
    if (!rc) rc = ap_orch_group_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_orch_group_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    json_t *cur = NULL;
    ap_rc rc = ap_orch_group_get(tx, tenant_id, id, &cur, err);
    if (rc) return rc;
    json_object_update(cur, in);
    json_t *members = json_object_get(in, "members");
    rc = check_all(tx, tenant_id, id, cur, members, err);
    if (!rc) rc = store(tx, tenant_id, id, cur, true, err);
    if (!rc) rc = set_members(tx, tenant_id, id, members, err);
    json_decref(cur);
    if (!rc) rc = ap_orch_audit(tx, tenant_id, actor, "agent_group.update", "agent_group", id, in, err);
    if (!rc) rc = ap_orch_group_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_orch_group_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM agent_groups WHERE id = ? AND tenant_id = ? RETURNING name",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(id, err);
    json_t *changes = json_pack("{s:s}", "name", ap_rows_get(&rows, 0, "name"));
    rc = ap_orch_audit(tx, tenant_id, actor, "agent_group.delete", "agent_group", id, changes, err);
    json_decref(changes);
    return rc;
}

ap_rc ap_orch_group_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " GROUP_COLS " FROM agent_groups WHERE tenant_id = ? AND id > ?"
                           " ORDER BY id LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    int n = rows.nrows > limit ? limit : rows.nrows;
    for (int i = 0; i < n && !rc; i++) {
        json_t *members = NULL;
        rc = members_json(tx, ap_rows_get(&rows, i, "id"), &members, err);
        if (!rc) json_array_append_new(arr, group_json(&rows, i, members));
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    if (rows.nrows > limit) *next = ap_rows_get(&rows, limit - 1, "id");
    *out = arr;
    return AP_OK;
}

ap_rc ap_orch_group_member_add(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                               const char *group_id, const char *agent_id, json_t **out,
                               ap_err_t *err) {
    *out = NULL;
    ap_rc rc = ap_orch_group_check(tx, tenant_id, group_id, err);
    const char *status = NULL;
    if (!rc) rc = ap_orch_agent_status(tx, tenant_id, agent_id, &status, err);
    if (rc) return rc;
    if (strcmp(status, "retired") == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "agent-retired", "agent is retired",
                          "a retired agent cannot join a group", "agent \"%s\" is retired",
                          agent_id);
    bool added = false;
    rc = add_member(tx, tenant_id, group_id, agent_id, &added, err);
    if (!rc && added) {
        json_t *changes = json_pack("{s:s}", "agent_id", agent_id);
        rc = ap_orch_audit(tx, tenant_id, actor, "agent_group.member.add", "agent_group", group_id,
                           changes, err);
        json_decref(changes);
    }
    if (!rc) rc = ap_orch_group_get(tx, tenant_id, group_id, out, err);
    return rc;
}

ap_rc ap_orch_group_member_remove(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                  const char *group_id, const char *agent_id, ap_err_t *err) {
    ap_rc rc = ap_orch_group_check(tx, tenant_id, group_id, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(group_id), AP_VTEXT(agent_id), AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "DELETE FROM agent_group_members WHERE group_id = ? AND agent_id = ?"
                     " AND tenant_id = ?",
                     p, 3, &rows, err);
    if (rc) return rc;
    if (rows.changes == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "not a member",
                          "GET /api/v1/agent-groups/{group_id} lists the members",
                          "agent \"%.64s\" is not a member of group \"%.64s\"", agent_id,
                          group_id);
    json_t *changes = json_pack("{s:s}", "agent_id", agent_id);
    rc = ap_orch_audit(tx, tenant_id, actor, "agent_group.member.remove", "agent_group", group_id,
                       changes, err);
    json_decref(changes);
    return rc;
}

/* --- hierarchy --- */

ap_rc ap_orch_group_hierarchy(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                              ap_err_t *err) {
    *out = NULL;
    ap_rows_t g, m, r;
    ap_rc rc = fetch(tx, tenant_id, id, &g, err);
    if (rc) return rc;
    ap_val_t p[] = {AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "SELECT a.id, a.name, a.role, a.status, a.capabilities FROM"
                     " agent_group_members gm JOIN agents a ON a.id = gm.agent_id"
                     " WHERE gm.group_id = ? ORDER BY a.name, a.id",
                     p, 1, &m, err);
    if (rc) return rc;
    ap_val_t q[] = {AP_VTEXT(id), AP_VTEXT(id), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "SELECT r.id, r.from_agent_id, r.to_agent_id, r.relationship_type,"
                     " r.trust_level, r.communication_style, r.group_id FROM agent_relationships r"
                     " WHERE (r.group_id IS NULL OR r.group_id = ?)"
                     " AND r.from_agent_id IN (SELECT agent_id FROM agent_group_members"
                     " WHERE group_id = ?) AND r.to_agent_id IN (SELECT agent_id FROM"
                     " agent_group_members WHERE group_id = ?) ORDER BY r.created_at, r.id",
                     q, 3, &r, err);
    if (rc) return rc;
    int n = m.nrows;
    ap_arena_t *a = ap_tx_arena(tx);
    int *parent = ap_arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    int *via = ap_arena_alloc(a, sizeof(int) * (size_t)(n + 1)); /* relationship row */
    bool *link = ap_arena_calloc(a, sizeof(bool) * (size_t)(r.nrows + 1));
    for (int i = 0; i < n; i++) parent[i] = via[i] = -1;
    for (int e = 0; e < r.nrows; e++) {
        const char *type = ap_rows_get(&r, e, "relationship_type");
        bool sup = strcmp(type, "supervises") == 0, rep = strcmp(type, "reports_to") == 0;
        if (!sup && !rep) continue;
        const char *boss = ap_rows_get(&r, e, sup ? "from_agent_id" : "to_agent_id");
        const char *sub = ap_rows_get(&r, e, sup ? "to_agent_id" : "from_agent_id");
        int bi = -1, si = -1;
        for (int i = 0; i < n; i++) {
            if (strcmp(ap_rows_get(&m, i, "id"), boss) == 0) bi = i;
            if (strcmp(ap_rows_get(&m, i, "id"), sub) == 0) si = i;
        }
        if (bi < 0 || si < 0 || parent[si] >= 0) continue;
        bool loop = false; /* would bi's chain of parents reach si? */
        for (int k = bi, hops = 0; k >= 0 && hops <= n; k = parent[k], hops++)
            if (k == si) loop = true;
        if (loop) continue;
        parent[si] = bi;
        via[si] = e;
        link[e] = true;
    }
    json_t **nodes = ap_arena_alloc(a, sizeof(json_t *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        nodes[i] = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:[]}", "agent_id",
                             ap_rows_get(&m, i, "id"), "name", ap_rows_get(&m, i, "name"), "role",
                             ap_rows_get(&m, i, "role"), "status", ap_rows_get(&m, i, "status"),
                             "capabilities", ap_orch_json_col(ap_rows_get(&m, i, "capabilities")),
                             "relationship_id",
                             via[i] >= 0 ? json_string(ap_rows_get(&r, via[i], "id")) : json_null(),
                             "children");
    json_t *roots = json_array();
    for (int i = 0; i < n; i++) {
        if (parent[i] >= 0)
            json_array_append(json_object_get(nodes[parent[i]], "children"), nodes[i]);
        else
            json_array_append(roots, nodes[i]);
    }
    for (int i = 0; i < n; i++) json_decref(nodes[i]);
    json_t *edges = json_array();
    for (int e = 0; e < r.nrows; e++) {
        if (link[e]) continue;
        const char *tl = ap_rows_get(&r, e, "trust_level");
        json_array_append_new(
            edges, json_pack("{s:s,s:s,s:s,s:s,s:f,s:s}", "relationship_id",
                             ap_rows_get(&r, e, "id"), "from_agent_id",
                             ap_rows_get(&r, e, "from_agent_id"), "to_agent_id",
                             ap_rows_get(&r, e, "to_agent_id"), "relationship_type",
                             ap_rows_get(&r, e, "relationship_type"), "trust_level",
                             tl ? strtod(tl, NULL) : 0.5, "communication_style",
                             ap_rows_get(&r, e, "communication_style")));
    }
    *out = json_pack("{s:s,s:s,s:s,s:o,s:o}", "group_id", id, "name", ap_rows_get(&g, 0, "name"),
                     "goal", ap_rows_get(&g, 0, "goal"), "roots", roots, "edges", edges);
    return AP_OK;
}

/* --- runner --- */

static void json_release(void *v) {
    json_decref(v);
}

static json_t *owned(ap_tx_t *tx, const char *s) {
    json_t *v = ap_orch_json_col(s);
    ap_arena_cleanup(ap_tx_arena(tx), json_release, v);
    return v;
}

ap_rc ap_orch_group_context(ap_tx_t *tx, const char *group_id, ap_orch_group_ctx_t *out,
                            ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rows_t rows;
    ap_rc rc = fetch(tx, ap_orch_tenant(tx), group_id, &rows, err);
    if (rc) return rc;
    *out = (ap_orch_group_ctx_t){
        .id = ap_rows_get(&rows, 0, "id"),
        .tenant_id = ap_rows_get(&rows, 0, "tenant_id"),
        .name = ap_rows_get(&rows, 0, "name"),
        .description = ap_rows_get(&rows, 0, "description"),
        .goal = ap_rows_get(&rows, 0, "goal"),
        .strategy = owned(tx, ap_rows_get(&rows, 0, "strategy")),
        .shared_context = owned(tx, ap_rows_get(&rows, 0, "shared_context")),
        .escalation_rules = owned(tx, ap_rows_get(&rows, 0, "escalation_rules")),
    };
    return AP_OK;
}

ap_rc ap_orch_agent_groups(ap_tx_t *tx, const char *agent_id, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(agent_id), AP_VTEXT(ap_orch_tenant(tx))};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT g.id AS group_id, g.name FROM agent_group_members m JOIN"
                           " agent_groups g ON g.id = m.group_id WHERE m.agent_id = ?"
                           " AND m.tenant_id = COALESCE(?, m.tenant_id) ORDER BY g.name, g.id",
                           p, 2, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows; i++) json_array_append_new(arr, ap_rows_json(&rows, i, NULL));
    *out = arr;
    return AP_OK;
}

ap_rc ap_orch_group_has_member(ap_tx_t *tx, const char *group_id, const char *agent_id,
                               bool *member, ap_err_t *err) {
    *member = false;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(group_id), AP_VTEXT(agent_id), AP_VTEXT(ap_orch_tenant(tx))};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT COUNT(*) AS n FROM agent_group_members WHERE group_id = ?"
                           " AND agent_id = ? AND tenant_id = COALESCE(?, tenant_id)",
                           p, 3, &rows, err);
    if (!rc) *member = ap_rows_int(&rows, 0, "n", 0) > 0;
    return rc;
}
