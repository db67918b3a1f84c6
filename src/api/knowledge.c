/*
 * knowledge.c - the tenant's knowledge graph over HTTP:
 *   /api/v1/tenants/{tenant_id}/knowledge/entities[/{entity_id}[/neighbors|/paths]]
 *   …/knowledge/relations  …/knowledge/graph
 * and the /api/v1/knowledge/… aliases (tenant from the key).
 *
 * 1. Reading needs memory.read, learning and deleting memory.write.
 * 2. Every read takes ?as_of= (RFC 3339): the graph as it was then.
 * 3. One service call (memory/graph.h) in one tenant transaction.
 */
#include <stdlib.h>

#include "api/api.h"
#include "http/server.h"
#include "memory/graph.h"

typedef ap_rc (*write_fn)(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor,
                          const char *agent, json_t *in, json_t **out, ap_err_t *err);

static void write_call(ap_req_t *r, const ap_jfield_t *fields, write_fn fn) {
    json_t *in;
    if (ap_req_json(r, fields, &in)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = fn(tx, r->tenant_id, &r->actor, NULL, in, &out, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, 201, out);
}

void ap_h_kg_learn(ap_req_t *r) { write_call(r, ap_graph_learn_fields, ap_graph_learn); }
void ap_h_kg_relate(ap_req_t *r) { write_call(r, ap_graph_relate_fields, ap_graph_relate); }

static bool read_tx(ap_req_t *r, ap_tx_t **tx, ap_err_t *err) {
    if (!ap_db_begin(r->app->db, r->tenant_id, AP_TX_READ, r->arena, tx, err)) return true;
    ap_resp_problem(r, err);
    return false;
}

void ap_h_kg_list(ap_req_t *r) {
    ap_err_t err = {0};
    json_t *q = json_object();
    static const char *const strs[] = {"name", "entity_type", "attribute", "value", "as_of", NULL};
    for (int i = 0; strs[i]; i++) {
        const char *v = ap_req_query(r, strs[i]);
        if (v) json_object_set_new(q, strs[i], json_string(ap_req_utf8(r->arena, v)));
    }
    int limit;
    const char *cursor;
    if (ap_req_page(r, 50, 500, &limit, &cursor)) {
        json_decref(q);
        return;
    }
    json_object_set_new(q, "limit", json_integer(limit));
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!read_tx(r, &tx, &err)) {
        json_decref(q);
        return;
    }
    ap_rc rc = ap_graph_query(tx, r->tenant_id, q, &out, &err);
    json_decref(q);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_kg_get(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "entity_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!read_tx(r, &tx, &err)) return;
    ap_rc rc = ap_graph_get(tx, r->tenant_id, id, ap_req_query(r, "as_of"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_kg_delete(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "entity_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(r->app->db, r->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_graph_delete(tx, r->tenant_id, &r->actor, id, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    ap_api_done(r, rc, &err, 204, NULL);
}

void ap_h_kg_neighbors(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "entity_id", &id)) return;
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!read_tx(r, &tx, &err)) return;
    ap_rc rc = ap_graph_neighbors(tx, r->tenant_id, id, ap_req_query(r, "as_of"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_kg_paths(ap_req_t *r) {
    const char *id;
    if (!ap_api_id(r, "entity_id", &id)) return;
    ap_err_t err = {0};
    const char *to = ap_req_query(r, "to"), *mh = ap_req_query(r, "max_hops");
    int hops = 3;
    if (mh) {
        char *end;
        long v = strtol(mh, &end, 10);
        hops = *mh && !*end && v >= 1 && v <= AP_GRAPH_MAX_HOPS ? (int)v : -1;
    }
    if (to && !ap_uuid_valid(to)) {
        ap_err_set(&err, AP_ERR_NOT_FOUND, "not-found", "entity not found", "check the entity id",
                   "no entity with id \"%.64s\" in this tenant", ap_req_utf8(r->arena, to));
        ap_resp_problem(r, &err);
        return;
    }
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!read_tx(r, &tx, &err)) return;
    ap_rc rc = ap_graph_paths(tx, r->tenant_id, id, to, hops, ap_req_query(r, "as_of"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_kg_export(ap_req_t *r) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *out = NULL;
    if (!read_tx(r, &tx, &err)) return;
    ap_rc rc = ap_graph_export(tx, r->tenant_id, ap_req_query(r, "as_of"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}
