/*
 * memory.c - agent memory over HTTP:
 *   /api/v1/tenants/{tenant_id}/agents/{agent_id}/memory[/{memory_id}]
 *   …/memory:recall  …/memory:consolidate  …/memory:share
 *   …/agents/{agent_id}/context[/{conversation_id}]  (hot context)
 * and the /api/v1/memory alias (tenant from the key; the agent in the body,
 * or ?agent_id= on the list, which without it lists the whole tenant; a
 * memory id alone names its agent).
 *
 * 1. Reading needs memory.read, changing memory.write.  Each handler makes
 *    one service call (memory/memory.h), which opens its own tenant
 *    transactions and audits what it changes.
 */
#include "api/api.h"
#include "http/server.h"
#include "memory/memory.h"

static const char *path_agent(ap_req_t *r, bool *ok) {
    *ok = true;
    if (!ap_req_param(r, "agent_id")) return NULL;
    const char *id;
    *ok = ap_api_id(r, "agent_id", &id);
    return *ok ? id : NULL;
}

typedef ap_rc (*body_call_fn)(ap_mem_t *m, ap_arena_t *a, const char *tenant,
                              const ap_actor_t *actor, const char *agent, json_t *in,
                              json_t **out, ap_err_t *err);

static void with_body(ap_req_t *r, const ap_jfield_t *fields, body_call_fn fn, int status) {
    bool ok;
    const char *agent = path_agent(r, &ok);
    if (!ok) return;
    json_t *in;
    if (ap_req_json(r, fields, &in)) return;
    ap_err_t err = {0};
    json_t *out = NULL;
    ap_rc rc = fn(r->app->memory, r->arena, r->tenant_id, &r->actor, agent, in, &out, &err);
    json_decref(in);
    ap_api_done(r, rc, &err, status, out);
}

static ap_rc recall_call(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                         const char *agent, json_t *in, json_t **out, ap_err_t *err) {
    (void)actor;
    return ap_mem_recall(m, a, tenant, agent, in, out, err);
}

static ap_rc hot_call(ap_mem_t *m, ap_arena_t *a, const char *tenant, const ap_actor_t *actor,
                      const char *agent, json_t *in, json_t **out, ap_err_t *err) {
    (void)actor;
    return ap_mem_hot_push(m, a, tenant, agent, in, out, err);
}

void ap_h_mem_remember(ap_req_t *r) { with_body(r, ap_mem_remember_fields, ap_mem_remember, 201); }
void ap_h_mem_recall(ap_req_t *r) { with_body(r, ap_mem_recall_fields, recall_call, 200); }
void ap_h_mem_consolidate(ap_req_t *r) {
    with_body(r, ap_mem_consolidate_fields, ap_mem_consolidate, 200);
}
void ap_h_mem_share(ap_req_t *r) { with_body(r, ap_mem_share_fields, ap_mem_share, 200); }
void ap_h_mem_context_push(ap_req_t *r) { with_body(r, ap_mem_hot_push_fields, hot_call, 200); }

void ap_h_mem_list(ap_req_t *r) {
    bool ok;
    const char *agent = path_agent(r, &ok);
    if (!ok) return;
    if (!agent) agent = ap_req_query(r, "agent_id");
    int limit;
    const char *cursor;
    if (ap_req_page(r, 50, 500, &limit, &cursor)) return;
    if (cursor && !ap_uuid_valid(cursor)) {
        ap_api_bad_cursor(r, cursor);
        return;
    }
    ap_err_t err = {0};
    json_t *items = NULL;
    const char *next = NULL;
    ap_rc rc = ap_mem_list(r->app->memory, r->arena, r->tenant_id, agent, ap_req_query(r, "type"),
                           ap_req_query(r, "status"), cursor, limit, &items, &next, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return;
    }
    ap_resp_page(r, items, next);
}

void ap_h_mem_get(ap_req_t *r) {
    bool ok;
    const char *agent = path_agent(r, &ok), *id;
    if (!ok || !ap_api_id(r, "memory_id", &id)) return;
    ap_err_t err = {0};
    json_t *out = NULL;
    ap_rc rc = ap_mem_get(r->app->memory, r->arena, r->tenant_id, agent, id,
                          ap_req_query(r, "query"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}

void ap_h_mem_forget(ap_req_t *r) {
    bool ok;
    const char *agent = path_agent(r, &ok), *id;
    if (!ok || !ap_api_id(r, "memory_id", &id)) return;
    ap_err_t err = {0};
    ap_rc rc = ap_mem_forget(r->app->memory, r->arena, r->tenant_id, &r->actor, agent, id, &err);
    ap_api_done(r, rc, &err, 204, NULL);
}

void ap_h_mem_context_get(ap_req_t *r) {
    bool ok;
    const char *agent = path_agent(r, &ok);
    if (!ok) return;
    ap_err_t err = {0};
    json_t *out = NULL;
    ap_rc rc = ap_mem_hot_get(r->app->memory, r->arena, r->tenant_id, agent,
                              ap_req_param(r, "conversation_id"), &out, &err);
    ap_api_done(r, rc, &err, 200, out);
}
