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

void ap_h_agent_list(ap_req_t *r) {
    int limit;
    const char *cursor;
    if (ap_req_page(r, 50, 500, &limit, &cursor)) return;
    if (cursor && !ap_uuid_valid(cursor)) {
        ap_api_bad_cursor(r, cursor);
        return;
    }
    ap_err_t err = {0};
    const char *status = ap_req_query(r, "status");
    if (status) {
        const char *const *s = statuses;
        while (*s && strcmp(*s, status) != 0) s++;
        if (!*s) {
            ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid status filter",
                       "use draft, validated, deployed, running, paused or retired",
                       "status is \"%.32s\"", ap_req_utf8(r->arena, status));
            ap_resp_problem(r, &err);
            return;
        }
    }
    ap_tx_t *tx;
    json_t *items = NULL;
    const char *next = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_list(tx, r->tenant_id, status, cursor, limit, &items, &next, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_page(r, items, next);
}

void ap_h_agent_get(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "agent_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_get(tx, r->tenant_id, id, &out, &err);
    ap_api_done(r, rc, &err, 200, out);
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

void ap_h_agent_versions(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "agent_id", &id)) return;
    int limit;
    const char *cursor;
    if (ap_req_page(r, 50, 500, &limit, &cursor)) return;
    int after = 0;
    if (cursor && (after = parse_version(cursor)) < 0) {
        ap_api_bad_cursor(r, ap_req_utf8(r->arena, cursor));
        return;
    }
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *items = NULL;
    int next = 0;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_versions(tx, r->tenant_id, id, after, limit, &items, &next, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_page(r, items, next ? ap_arena_printf(r->arena, "%d", next) : NULL);
}

void ap_h_agent_version_get(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "agent_id", &id)) return;
    ap_err_t err = {0};
    const char *vs = ap_req_param(r, "version");
    int version = parse_version(vs);
    if (version < 0) {
        ap_err_set(&err, AP_ERR_NOT_FOUND, "not-found", "version not found",
                   "versions are positive integers: GET …/agents/{agent_id}/versions lists them",
                   "\"%.32s\" is not a version number", ap_req_utf8(r->arena, vs ? vs : ""));
        ap_resp_problem(r, &err);
        return;
    }
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_orch_agent_version_get(tx, r->tenant_id, id, version, &out, &err);
    ap_api_done(r, rc, &err, 200, out);
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
