/*
 * agent_groups.c - agent groups (teams), their members and hierarchy,
 * relationships between agents, and agents' skills:
 *   …/agent-groups[/{group_id}[/members/{agent_id} | /hierarchy]]
 *   …/agent-relationships[/{relationship_id}]
 *   …/agents/{agent_id}/skills[/{skill_id}]
 * under /api/v1/tenants/{tenant_id} and the short aliases under /api/v1.
 *
 * 1. Reading needs agent.read, every change agent.write.
 * 2. One service call (orch/group.c, relationship.c, skill.c) in one
 *    transaction per request, audited in the same transaction.
 */
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "orch/group.h"
#include "orch/relationship.h"
#include "orch/skill.h"

/* Runs a write: begin, fn, commit, answer. */
#define WRITE_TX(r, status, call)                                                          \
    do {                                                                                   \
        ap_err_t err = {0};                                                                \
        ap_tx_t *tx;                                                                       \
        json_t *out = NULL;                                                                \
        ap_rc rc = ap_db_begin((r)->app->db, (r)->tenant_id, AP_TX_WRITE, (r)->arena, &tx,  \
                               &err);                                                      \
        if (!rc) rc = (call);                                                              \
        if (!rc) rc = ap_tx_commit(tx, &err);                                              \
        ap_api_done((r), rc, &err, (status), out);                                         \
    } while (0)

/* --- groups --- */

void ap_h_group_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_orch_group_create_fields, &in)) return;
    WRITE_TX(r, 201, ap_orch_group_create(tx, r->tenant_id, &r->actor, in, &out, &err));
    json_decref(in);
}

void ap_h_group_list(ap_req_t *r) {
    ap_api_list_page(r, ap_orch_group_list);
}

void ap_h_group_get(ap_req_t *r) {
    ap_api_get_one(r, "group_id", ap_orch_group_get);
}

void ap_h_group_update(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "group_id", &id)) return;
    json_t *in;
    if (ap_req_json(r, ap_orch_group_update_fields, &in)) return;
    WRITE_TX(r, 200, ap_orch_group_update(tx, r->tenant_id, &r->actor, id, in, &out, &err));
    json_decref(in);
}

void ap_h_group_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "group_id", &id)) return;
    WRITE_TX(r, 204, ap_orch_group_delete(tx, r->tenant_id, &r->actor, id, &err));
}

void ap_h_group_member_add(ap_req_t *r) {
    const char *gid, *aid;
    if (!ap_api_id(r, "group_id", &gid) || !ap_api_id(r, "agent_id", &aid)) return;
    WRITE_TX(r, 200, ap_orch_group_member_add(tx, r->tenant_id, &r->actor, gid, aid, &out, &err));
}

void ap_h_group_member_remove(ap_req_t *r) {
    const char *gid, *aid;
    if (!ap_api_id(r, "group_id", &gid) || !ap_api_id(r, "agent_id", &aid)) return;
    WRITE_TX(r, 204, ap_orch_group_member_remove(tx, r->tenant_id, &r->actor, gid, aid, &err));
}

void ap_h_group_hierarchy(ap_req_t *r) {
    ap_api_get_one(r, "group_id", ap_orch_group_hierarchy);
}

/* --- relationships --- */

void ap_h_rel_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_orch_rel_create_fields, &in)) return;
    WRITE_TX(r, 201, ap_orch_rel_create(tx, r->tenant_id, &r->actor, in, &out, &err));
    json_decref(in);
}

static ap_rc rel_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *f,
                      json_t **items, const char **next, ap_err_t *err) {
    return ap_orch_rel_list(tx, tenant_id, f, pg->cursor, pg->limit, items, next, err);
}

void ap_h_rel_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (!ap_api_page(r, &pg)) return;
    ap_orch_rel_filter_t f = {ap_req_query(r, "agent_id"), ap_req_query(r, "group_id"),
                              ap_req_query(r, "type")};
    const char *bad = f.agent_id && !ap_uuid_valid(f.agent_id)   ? "agent_id"
                      : f.group_id && !ap_uuid_valid(f.group_id) ? "group_id"
                                                                 : NULL;
    if (!bad && f.type) {
        const char *const *t = ap_orch_rel_types;
        while (*t && strcmp(*t, f.type) != 0) t++;
        if (!*t) bad = "type";
    }
    if (bad) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid filter",
                   "agent_id and group_id are UUIDs; type is supervises, delegates_to, "
                   "collaborates_with, reports_to or consults",
                   "query parameter %s is \"%.64s\"", bad,
                   ap_req_utf8(r->arena, ap_req_query(r, bad)));
        ap_resp_problem(r, &err);
        return;
    }
    ap_api_list(r, &pg, rel_list, &f);
}

void ap_h_rel_get(ap_req_t *r) {
    ap_api_get_one(r, "relationship_id", ap_orch_rel_get);
}

void ap_h_rel_update(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "relationship_id", &id)) return;
    json_t *in;
    if (ap_req_json(r, ap_orch_rel_update_fields, &in)) return;
    WRITE_TX(r, 200, ap_orch_rel_update(tx, r->tenant_id, &r->actor, id, in, &out, &err));
    json_decref(in);
}

void ap_h_rel_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "relationship_id", &id)) return;
    WRITE_TX(r, 204, ap_orch_rel_delete(tx, r->tenant_id, &r->actor, id, &err));
}

/* --- skills --- */

void ap_h_skill_create(ap_req_t *r) {
    const char *aid;
    if (!ap_api_id(r, "agent_id", &aid)) return;
    json_t *in;
    if (ap_req_json(r, ap_orch_skill_create_fields, &in)) return;
    WRITE_TX(r, 201, ap_orch_skill_create(tx, r->tenant_id, &r->actor, aid, in, &out, &err));
    json_decref(in);
}

static ap_rc skill_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *aid,
                        json_t **items, const char **next, ap_err_t *err) {
    return ap_orch_skill_list(tx, tenant_id, aid, pg->cursor, pg->limit, items, next, err);
}

/* The cursor is a skill name: any text. */
void ap_h_skill_list(ap_req_t *r) {
    const char *aid;
    ap_api_page_t pg;
    if (!ap_api_id(r, "agent_id", &aid) || ap_req_page(r, 50, 500, &pg.limit, &pg.cursor)) return;
    ap_api_list(r, &pg, skill_list, (void *)aid);
}

static ap_rc skill_get(ap_tx_t *tx, const char *tenant_id, void *ids, json_t **out,
                       ap_err_t *err) {
    const char **id = ids;
    return ap_orch_skill_get(tx, tenant_id, id[0], id[1], out, err);
}

void ap_h_skill_get(ap_req_t *r) {
    const char *ids[2];
    if (ap_api_id(r, "agent_id", &ids[0]) && ap_api_id(r, "skill_id", &ids[1]))
        ap_api_read(r, skill_get, ids);
}

void ap_h_skill_update(ap_req_t *r) {
    const char *aid, *sid;
    if (!ap_api_id(r, "agent_id", &aid) || !ap_api_id(r, "skill_id", &sid)) return;
    json_t *in;
    if (ap_req_json(r, ap_orch_skill_update_fields, &in)) return;
    WRITE_TX(r, 200, ap_orch_skill_update(tx, r->tenant_id, &r->actor, aid, sid, in, &out, &err));
    json_decref(in);
}

void ap_h_skill_delete(ap_req_t *r) {
    const char *aid, *sid;
    if (!ap_api_id(r, "agent_id", &aid) || !ap_api_id(r, "skill_id", &sid)) return;
    WRITE_TX(r, 204, ap_orch_skill_delete(tx, r->tenant_id, &r->actor, aid, sid, &err));
}
