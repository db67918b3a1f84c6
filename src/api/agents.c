/*
 * agents.c - agents, their versions and lifecycle:
 * /api/v1/tenants/{tenant_id}/agents[/{agent_id}[/versions[/{version}]]]
 * and POST …/agents/{agent_id}:validate|:deploy|:pause|:resume|:retire
 * (aliases under /api/v1/agents, tenant from the key).
 *
 * 1. Reading needs agent.read, every change agent.write.
 * 2. One service call (orch/agent.c) in one transaction per request;
 *    its audit entry lands in the same transaction.
 * 3. The lifecycle actions take no body, except :deploy which may give
 *    {"version": n}; an empty body is accepted for all of them.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/server.h"
#include "orch/agent.h"

void ap_h_agent_create(ap_req_t *r) {
    json_t *in;
    if (ap_req_json(r, ap_orch_agent_create_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_create(tx, r->tenant_id, &r->actor, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

static const char *const statuses[] = {"draft",   "validated", "deployed", "running",
                                       "paused",  "retired",   NULL};

static ap_rc agent_list(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg,
                        void *status, json_t **items, const char **next, ap_err_t *err) {
    return ap_orch_agent_list(tx, tenant_id, status, pg->cursor, pg->limit, items, next, err);
}

void ap_h_agent_list(ap_req_t *r) {
    ap_api_page_t pg;
    if (!ap_api_page(r, &pg)) return;
    const char *status = ap_req_query(r, "status");
    if (status) {
        const char *const *s = statuses;
        while (*s && strcmp(*s, status) != 0) s++;
        if (!*s) {
            ap_err_t err;
            ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid status filter",
                       "use draft, validated, deployed, running, paused or retired",
                       "status is \"%.32s\"", ap_req_utf8(r->arena, status));
            ap_resp_problem(r, &err);
            return;
        }
    }
    ap_api_list(r, &pg, agent_list, (void *)status);
}

void ap_h_agent_get(ap_req_t *r) {
    ap_api_get_one(r, "agent_id", ap_orch_agent_get);
}

void ap_h_agent_update(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "agent_id", &id)) return;
    json_t *in;
    if (ap_req_json(r, ap_orch_agent_update_fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_update(tx, r->tenant_id, &r->actor, id, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, 200, out);
}

/* A positive integer of at most 9 digits, or -1. */
static int parse_version(const char *s) {
    if (!s || !*s || strlen(s) > 9) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    int v = atoi(s);
    return v >= 1 ? v : -1;
}

/* An agent and a version number: the cursor of its versions, or the one
 * to get. */
typedef struct {
    const char *id;
    int version;
} version_ref_t;

static ap_rc versions(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg, void *ud,
                      json_t **items, const char **next, ap_err_t *err) {
    const version_ref_t *v = ud;
    int n = 0;
    ap_rc rc = ap_orch_agent_versions(tx, tenant_id, v->id, v->version, pg->limit, items, &n, err);
    if (!rc && n) *next = ap_arena_printf(ap_tx_arena(tx), "%d", n);
    return rc;
}

/* The cursor is the last version number of the previous page. */
void ap_h_agent_versions(ap_req_t *r) {
    version_ref_t v = {NULL, 0};
    ap_api_page_t pg;
    if (!ap_api_id(r, "agent_id", &v.id) || ap_req_page(r, 50, 500, &pg.limit, &pg.cursor)) return;
    if (pg.cursor && (v.version = parse_version(pg.cursor)) < 0) {
        ap_api_bad_cursor(r, pg.cursor);
        return;
    }
    ap_api_list(r, &pg, versions, &v);
}

static ap_rc version_get(ap_tx_t *tx, const char *tenant_id, void *ud, json_t **out,
                         ap_err_t *err) {
    const version_ref_t *v = ud;
    return ap_orch_agent_version_get(tx, tenant_id, v->id, v->version, out, err);
}

void ap_h_agent_version_get(ap_req_t *r) {
    version_ref_t v;
    if (!ap_api_id(r, "agent_id", &v.id)) return;
    const char *vs = ap_req_param(r, "version");
    v.version = parse_version(vs);
    if (v.version < 0) {
        ap_err_t err;
        ap_err_set(&err, AP_ERR_NOT_FOUND, "not-found", "version not found",
                   "versions are positive integers: GET …/agents/{agent_id}/versions lists them",
                   "\"%.32s\" is not a version number", ap_req_utf8(r->arena, vs ? vs : ""));
        ap_resp_problem(r, &err);
        return;
    }
    ap_api_read(r, version_get, &v);
}

static void transition(ap_req_t *r, ap_agent_op op) {
    const char *id;
    if (!ap_api_id(r, "agent_id", &id)) return;
    int version = 0;
    if (r->body.len > 0) {
        static const ap_jfield_t none[] = {AP_JFIELDS_END};
        json_t *in;
        if (ap_req_json(r, op == AP_AGENT_DEPLOY ? ap_orch_agent_deploy_fields : none, &in))
            return;
        version = (int)ap_json_int(in, "version", 0);
        json_decref(in);
    }
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_transition(tx, r->tenant_id, &r->actor, id, op, version, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_agent_validate(ap_req_t *r) {
    transition(r, AP_AGENT_VALIDATE);
}
void ap_h_agent_deploy(ap_req_t *r) {
    transition(r, AP_AGENT_DEPLOY);
}
void ap_h_agent_pause(ap_req_t *r) {
    transition(r, AP_AGENT_PAUSE);
}
void ap_h_agent_resume(ap_req_t *r) {
    transition(r, AP_AGENT_RESUME);
}
void ap_h_agent_retire(ap_req_t *r) {
    transition(r, AP_AGENT_RETIRE);
}
