/*
 * relationship.c - typed relationships between agents and the queries
 * the runner asks of them.
 *
 * 1. The cycle check loads the tenant's supervision edges (supervises
 *    as boss → subordinate, reports_to reversed), sorts them in C (strcmp:
 *    the databases' collations may differ) and walks them breadth-first
 *    from the new edge's subordinate: reaching its boss closes a cycle, and
 *    the walk's parent links give the cycle to name.  O(E log E) for E
 *    supervision edges; the tenant's relationship lock (ap_tx_lock) keeps
 *    two racing inserts from closing a cycle together on PostgreSQL.
 * 2. Agent ids in a body that are not agents of the tenant answer 400
 *    naming the field, the same for another tenant's id as for a made-up
 *    one.
 */
#include "orch/relationship.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "orch/common.h"

const char *const ap_orch_rel_types[] = {"supervises", "delegates_to", "collaborates_with",
                                         "reports_to", "consults", NULL};
static const char *const styles[] = {"sync", "async", "broadcast", NULL};

const ap_jfield_t ap_orch_rel_create_fields[] = {
    {"from_agent_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"to_agent_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"relationship_type", AP_JT_STRING, true, false, ap_orch_rel_types, 0, 0, 0},
    {"group_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"trust_level", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"communication_style", AP_JT_STRING, false, false, styles, 0, 0, 0},
    {"handoff_rules", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_rel_update_fields[] = {
    {"group_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"trust_level", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"communication_style", AP_JT_STRING, false, false, styles, 0, 0, 0},
    {"handoff_rules", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

#define REL_COLS                                                                            \
    "id, tenant_id, group_id, from_agent_id, to_agent_id, relationship_type, trust_level,"  \
    " communication_style, handoff_rules, created_at, updated_at"

static json_t *rel_json(const ap_rows_t *r, int i) {
    const char *tl = ap_rows_get(r, i, "trust_level");
    return json_pack("{s:s,s:s,s:s?,s:s,s:s,s:s,s:f,s:s,s:o,s:s,s:s}", "id",
                     ap_rows_get(r, i, "id"), "tenant_id", ap_rows_get(r, i, "tenant_id"),
                     "group_id", ap_rows_get(r, i, "group_id"), "from_agent_id",
                     ap_rows_get(r, i, "from_agent_id"), "to_agent_id",
                     ap_rows_get(r, i, "to_agent_id"), "relationship_type",
                     ap_rows_get(r, i, "relationship_type"), "trust_level",
                     tl ? strtod(tl, NULL) : 0.5, "communication_style",
                     ap_rows_get(r, i, "communication_style"), "handoff_rules",
                     ap_orch_json_col(ap_rows_get(r, i, "handoff_rules")), "created_at",
                     ap_rows_get(r, i, "created_at"), "updated_at",
                     ap_rows_get(r, i, "updated_at"));
}

static ap_rc not_found(const char *id, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "relationship not found",
                      "GET /api/v1/agent-relationships lists this tenant's relationships",
                      "no relationship with id \"%.64s\" in this tenant", id);
}

ap_rc ap_orch_rel_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                      ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " REL_COLS " FROM agent_relationships WHERE id = ?"
                           " AND tenant_id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(id, err);
    *out = rel_json(&rows, 0);
    return AP_OK;
}

/* An agent named in a body: an agent of the tenant that is not retired.
 * *name gets its name (tx arena). */
static ap_rc body_agent(ap_tx_t *tx, const char *tenant_id, const char *field, const char *id,
                        const char **name, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(ap_uuid_valid(id) ? id : ""), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "SELECT name, status FROM agents WHERE id = ? AND tenant_id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown agent",
                          "give the id of an agent of this tenant (GET /api/v1/agents)",
                          "%s \"%.64s\" is not an agent of this tenant", field, id);
    if (strcmp(ap_rows_get(&rows, 0, "status"), "retired") == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "agent-retired", "agent is retired",
                          "a retired agent takes no new relationships",
                          "%s \"%.64s\" (%s) is retired", field, id, ap_rows_get(&rows, 0, "name"));
    *name = ap_rows_get(&rows, 0, "name");
    return AP_OK;
}

static ap_rc body_group(ap_tx_t *tx, const char *tenant_id, const char *group_id, ap_err_t *err) {
    if (!group_id) return AP_OK;
    ap_err_t e = {0};
    ap_rc rc = ap_orch_group_check(tx, tenant_id, ap_uuid_valid(group_id) ? group_id : "", &e);
    if (rc == AP_ERR_NOT_FOUND)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown agent group",
                          "give the id of a group of this tenant (GET /api/v1/agent-groups), or "
                          "leave group_id out",
                          "group_id \"%.64s\" is not an agent group of this tenant", group_id);
    if (rc) *err = e;
    return rc;
}

typedef struct {
    const char *boss, *sub;
} edge_t;

static int cmp_edge(const void *a, const void *b) {
    return strcmp(((const edge_t *)a)->boss, ((const edge_t *)b)->boss);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Index of s in the sorted, unique array v[n], or -1. */
static int find_node(const char **v, int n, const char *s) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(v[mid], s);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Refuses boss → sub when sub already reaches boss through supervision:
 * a breadth-first walk from sub over edges sorted by boss (O(E log E)). */
static ap_rc check_cycle(ap_tx_t *tx, const char *tenant_id, const char *boss, const char *sub,
                         ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT from_agent_id AS boss, to_agent_id AS sub FROM"
                           " agent_relationships WHERE tenant_id = ? AND relationship_type ="
                           " 'supervises' UNION ALL SELECT to_agent_id, from_agent_id FROM"
                           " agent_relationships WHERE tenant_id = ? AND relationship_type ="
                           " 'reports_to'",
                           p, 2, &rows, err);
    if (rc) return rc;
    int ne = rows.nrows;
    if (ne == 0) return AP_OK;
    ap_arena_t *a = ap_tx_arena(tx);
    edge_t *edges = ap_arena_alloc(a, sizeof(edge_t) * (size_t)ne);
    const char **nodes = ap_arena_alloc(a, sizeof(char *) * (size_t)(2 * ne + 2));
    int nn = 0;
    for (int e = 0; e < ne; e++) {
        edges[e] = (edge_t){ap_rows_at(&rows, e, 0), ap_rows_at(&rows, e, 1)};
        nodes[nn++] = edges[e].boss;
        nodes[nn++] = edges[e].sub;
    }
    nodes[nn++] = sub;
    nodes[nn++] = boss;
    qsort(edges, (size_t)ne, sizeof *edges, cmp_edge);
    qsort(nodes, (size_t)nn, sizeof *nodes, cmp_str);
    int u = 0;
    for (int i = 0; i < nn; i++)
        if (u == 0 || strcmp(nodes[u - 1], nodes[i]) != 0) nodes[u++] = nodes[i];
    nn = u;
    int *parent = ap_arena_alloc(a, sizeof(int) * (size_t)nn);
    int *queue = ap_arena_alloc(a, sizeof(int) * (size_t)nn);
    for (int i = 0; i < nn; i++) parent[i] = -2; /* unseen */
    int start = find_node(nodes, nn, sub), goal = find_node(nodes, nn, boss);
    int head = 0, tail = 0;
    queue[tail++] = start;
    parent[start] = -1;
    while (head < tail && parent[goal] == -2) {
        int cur = queue[head++];
        /* first edge whose boss is nodes[cur] */
        int lo = 0, hi = ne;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (strcmp(edges[mid].boss, nodes[cur]) < 0) lo = mid + 1;
            else hi = mid;
        }
        for (int e = lo; e < ne && strcmp(edges[e].boss, nodes[cur]) == 0; e++) {
            int next = find_node(nodes, nn, edges[e].sub);
            if (parent[next] != -2) continue;
            parent[next] = cur;
            queue[tail++] = next;
        }
    }
    if (parent[goal] == -2) return AP_OK;
    /* the cycle, named: boss supervises sub supervises … supervises boss */
    ap_rows_t names;
    rc = ap_tx_query(tx, "SELECT id, name FROM agents WHERE tenant_id = ?", p, 1, &names, err);
    if (rc) return rc;
    int np = 0;
    for (int i = goal; i >= 0; i = parent[i]) np++;
    int *path = ap_arena_alloc(a, sizeof(int) * (size_t)np); /* sub … boss */
    for (int i = goal, k = np - 1; i >= 0; i = parent[i]) path[k--] = i;
    char cycle[400];
    size_t len = 0;
    for (int i = -1; i < np; i++) {
        const char *id = i < 0 ? boss : nodes[path[i]], *nm = id;
        for (int k = 0; k < names.nrows; k++)
            if (strcmp(ap_rows_at(&names, k, 0), id) == 0) nm = ap_rows_at(&names, k, 1);
        int w = snprintf(cycle + len, sizeof cycle - len, "%s%.60s", i >= 0 ? " supervises " : "",
                         nm);
        if (w < 0 || (size_t)w >= sizeof cycle - len) {
            snprintf(cycle + sizeof cycle - 5, 5, " ...");
            break;
        }
        len += (size_t)w;
    }
    return ap_err_set(err, AP_ERR_CONFLICT, "supervision-cycle", "supervision cycle",
                      "supervision must form a hierarchy: remove one of these relationships "
                      "first, or choose another direction",
                      "this relationship would close the cycle %s (reports_to counts as "
                      "supervises in the other direction)",
                      cycle);
}

static ap_rc lock(ap_tx_t *tx, const char *tenant_id, ap_err_t *err) {
    char key[80];
    snprintf(key, sizeof key, "agent_relationships:%s", tenant_id);
    return ap_tx_lock(tx, key, err);
}

ap_rc ap_orch_rel_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor, json_t *in,
                         json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *from = ap_json_str(in, "from_agent_id"), *to = ap_json_str(in, "to_agent_id");
    const char *type = ap_json_str(in, "relationship_type");
    const char *group = ap_json_str(in, "group_id");
    const char *from_name, *to_name;
    ap_rc rc = lock(tx, tenant_id, err);
    if (!rc) rc = body_agent(tx, tenant_id, "from_agent_id", from, &from_name, err);
    if (!rc) rc = body_agent(tx, tenant_id, "to_agent_id", to, &to_name, err);
    if (rc) return rc;
    if (strcmp(from, to) == 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "relationship with itself",
                          "give two different agents",
                          "from_agent_id and to_agent_id are both \"%s\"", from);
    rc = body_group(tx, tenant_id, group, err);
    if (rc) return rc;
    if (strcmp(type, "supervises") == 0) rc = check_cycle(tx, tenant_id, from, to, err);
    else if (strcmp(type, "reports_to") == 0) rc = check_cycle(tx, tenant_id, to, from, err);
    if (rc) return rc;
    json_t *tl = json_object_get(in, "trust_level");
    const char *style = ap_json_str(in, "communication_style");
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(group),
                    AP_VTEXT(from),
                    AP_VTEXT(to),
                    AP_VTEXT(type),
                    AP_VREAL(tl ? json_number_value(tl) : 0.5),
                    AP_VTEXT(style ? style : "sync"),
                    AP_VTEXT(json_object_get(in, "handoff_rules")
                                 ? ap_orch_json_text(tx, json_object_get(in, "handoff_rules"))
                                 : "{}"),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    ap_rows_t rows;
    rc = ap_tx_query(tx,
                     "INSERT INTO agent_relationships (" REL_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?,"
                     " ?, ?, ?, ?) ON CONFLICT (from_agent_id, to_agent_id, relationship_type)"
                     " DO NOTHING RETURNING id",
                     v, 11, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "relationship exists",
                          "update the existing relationship instead",
                          "%.100s already %s %.100s", from_name, type, to_name);
    json_t *changes = json_deep_copy(in);
    rc = ap_orch_audit(tx, tenant_id, actor, "agent.relationship.create", "agent_relationship", id,
                       changes, err);
    json_decref(changes);
    if (!rc) rc = ap_orch_rel_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_orch_rel_list(ap_tx_t *tx, const char *tenant_id, const ap_orch_rel_filter_t *f,
                       const char *after, int limit, json_t **out, const char **next,
                       ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id),  AP_VTEXT(after ? after : ""), AP_VTEXT(f->agent_id),
                    AP_VTEXT(f->agent_id), AP_VTEXT(f->agent_id),       AP_VTEXT(f->group_id),
                    AP_VTEXT(f->type),     AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " REL_COLS " FROM agent_relationships WHERE tenant_id = ?"
                           " AND id > ? AND (COALESCE(?, '') = '' OR from_agent_id = ?"
                           " OR to_agent_id = ?) AND COALESCE(group_id, '') ="
                           " COALESCE(?, COALESCE(group_id, '')) AND relationship_type ="
                           " COALESCE(?, relationship_type) ORDER BY id LIMIT ?",
                           p, 8, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, rel_json, "id", next);
    return AP_OK;
}

ap_rc ap_orch_rel_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                         const char *id, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    json_t *cur = NULL;
    ap_rc rc = ap_orch_rel_get(tx, tenant_id, id, &cur, err);
    if (rc) return rc;
    json_decref(cur);
    json_t *g = json_object_get(in, "group_id");
    if (json_is_string(g)) rc = body_group(tx, tenant_id, json_string_value(g), err);
    if (rc) return rc;
    json_t *tl = json_object_get(in, "trust_level");
    json_t *hr = json_object_get(in, "handoff_rules");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VINT(g ? 1 : 0),
                    AP_VTEXT(json_string_value(g)),
                    tl ? AP_VREAL(json_number_value(tl)) : AP_VNULL,
                    AP_VTEXT(ap_json_str(in, "communication_style")),
                    AP_VTEXT(hr ? ap_orch_json_text(tx, hr) : NULL),
                    AP_VTEXT(now),
                    AP_VTEXT(id),
                    AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "UPDATE agent_relationships SET group_id = CASE WHEN ? = 1 THEN ? ELSE"
                     " group_id END, trust_level = COALESCE(?, trust_level),"
                     " communication_style = COALESCE(?, communication_style),"
                     " handoff_rules = COALESCE(?, handoff_rules), updated_at = ?"
                     " WHERE id = ? AND tenant_id = ?",
                     v, 8, NULL, err);
    if (!rc)
        rc = ap_orch_audit(tx, tenant_id, actor, "agent.relationship.update", "agent_relationship",
                           id, in, err);
    if (!rc) rc = ap_orch_rel_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_orch_rel_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                         const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "DELETE FROM agent_relationships WHERE id = ? AND tenant_id = ?"
                           " RETURNING from_agent_id, to_agent_id, relationship_type",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(id, err);
    json_t *changes = json_pack("{s:s,s:s,s:s}", "from_agent_id",
                                ap_rows_get(&rows, 0, "from_agent_id"), "to_agent_id",
                                ap_rows_get(&rows, 0, "to_agent_id"), "relationship_type",
                                ap_rows_get(&rows, 0, "relationship_type"));
    rc = ap_orch_audit(tx, tenant_id, actor, "agent.relationship.delete", "agent_relationship", id,
                       changes, err);
    json_decref(changes);
    return rc;
}

/* --- the runner's questions --- */

static ap_rc count_edges(ap_tx_t *tx, const char *sql, const char *a, const char *b, bool *yes,
                         ap_err_t *err) {
    *yes = false;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(ap_orch_tenant(tx)), AP_VTEXT(a), AP_VTEXT(b), AP_VTEXT(b),
                    AP_VTEXT(a)};
    ap_rc rc = ap_tx_query(tx, sql, p, 5, &rows, err);
    if (!rc) *yes = ap_rows_int(&rows, 0, "n", 0) > 0;
    return rc;
}

ap_rc ap_orch_rel_allows_delegation(ap_tx_t *tx, const char *from, const char *to, bool *allowed,
                                    ap_err_t *err) {
    /* supervises / delegates_to from → to; reports_to to → from */
    return count_edges(tx,
                       "SELECT COUNT(*) AS n FROM agent_relationships WHERE tenant_id ="
                       " COALESCE(?, tenant_id) AND ((from_agent_id = ? AND to_agent_id = ?"
                       " AND relationship_type IN ('supervises', 'delegates_to'))"
                       " OR (from_agent_id = ? AND to_agent_id = ?"
                       " AND relationship_type = 'reports_to'))",
                       from, to, allowed, err);
}

ap_rc ap_orch_rel_can_query(ap_tx_t *tx, const char *from, const char *to, bool *allowed,
                            ap_err_t *err) {
    return count_edges(tx,
                       "SELECT COUNT(*) AS n FROM agent_relationships WHERE tenant_id ="
                       " COALESCE(?, tenant_id) AND ((from_agent_id = ? AND to_agent_id = ?"
                       " AND relationship_type IN ('consults', 'collaborates_with'))"
                       " OR (from_agent_id = ? AND to_agent_id = ?"
                       " AND relationship_type = 'collaborates_with'))",
                       from, to, allowed, err);
}

ap_rc ap_orch_supervisor_of(ap_tx_t *tx, const char *agent_id, const char **supervisor_id,
                            ap_err_t *err) {
    *supervisor_id = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(ap_orch_tenant(tx)), AP_VTEXT(agent_id), AP_VTEXT(agent_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT CASE WHEN relationship_type = 'supervises' THEN from_agent_id"
                           " ELSE to_agent_id END AS boss FROM agent_relationships"
                           " WHERE tenant_id = COALESCE(?, tenant_id) AND"
                           " ((to_agent_id = ? AND relationship_type = 'supervises') OR"
                           " (from_agent_id = ? AND relationship_type = 'reports_to'))"
                           " ORDER BY created_at, id LIMIT 1",
                           p, 3, &rows, err);
    if (!rc && rows.nrows) *supervisor_id = ap_rows_get(&rows, 0, "boss");
    return rc;
}

/* What the other end is to agent_id, by type and direction. */
static const char *relation_of(const char *type, bool outgoing) {
    if (strcmp(type, "supervises") == 0) return outgoing ? "subordinate" : "supervisor";
    if (strcmp(type, "reports_to") == 0) return outgoing ? "supervisor" : "subordinate";
    if (strcmp(type, "delegates_to") == 0) return outgoing ? "delegate" : "delegator";
    if (strcmp(type, "consults") == 0) return outgoing ? "consultant" : "consulted_by";
    return "peer";
}

ap_rc ap_orch_rel_neighbours(ap_tx_t *tx, const char *agent_id, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(agent_id), AP_VTEXT(ap_orch_tenant(tx)), AP_VTEXT(agent_id),
                    AP_VTEXT(agent_id)};
    ap_rc rc = ap_tx_query(
        tx,
        "SELECT r.id AS relationship_id, r.relationship_type, r.trust_level,"
        " r.communication_style, r.handoff_rules, r.from_agent_id, a.id AS agent_id, a.name,"
        " a.role, a.status, a.capabilities FROM agent_relationships r JOIN agents a"
        " ON a.id = CASE WHEN r.from_agent_id = ? THEN r.to_agent_id ELSE r.from_agent_id END"
        " WHERE r.tenant_id = COALESCE(?, r.tenant_id) AND (r.from_agent_id = ?"
        " OR r.to_agent_id = ?) ORDER BY a.name, r.id",
        p, 4, &rows, err);
    if (rc) return rc;
    static const char *const order[] = {"supervisor", "subordinate", "delegate", "peer",
                                        "consultant", "delegator",   "consulted_by", NULL};
    json_t *arr = json_array();
    for (const char *const *o = order; *o; o++) {
        for (int i = 0; i < rows.nrows; i++) {
            bool outgoing = strcmp(ap_rows_get(&rows, i, "from_agent_id"), agent_id) == 0;
            const char *rel = relation_of(ap_rows_get(&rows, i, "relationship_type"), outgoing);
            if (strcmp(rel, *o) != 0) continue;
            const char *tl = ap_rows_get(&rows, i, "trust_level");
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:f,s:s,s:o}", "agent_id",
                               ap_rows_get(&rows, i, "agent_id"), "name",
                               ap_rows_get(&rows, i, "name"), "role", ap_rows_get(&rows, i, "role"),
                               "status", ap_rows_get(&rows, i, "status"), "capabilities",
                               ap_orch_json_col(ap_rows_get(&rows, i, "capabilities")), "relation",
                               rel, "relationship_type",
                               ap_rows_get(&rows, i, "relationship_type"), "relationship_id",
                               ap_rows_get(&rows, i, "relationship_id"), "trust_level",
                               tl ? strtod(tl, NULL) : 0.5, "communication_style",
                               ap_rows_get(&rows, i, "communication_style"), "handoff_rules",
                               ap_orch_json_col(ap_rows_get(&rows, i, "handoff_rules"))));
        }
    }
    *out = arr;
    return AP_OK;
}
