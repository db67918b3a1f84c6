/*
 * api.h - the route table and what handlers share.
 *
 * 1. One table (routes.c) serves canonical tenant paths and their short
 *    aliases; the OpenAPI spec is held to it by a test, both ways.
 * 2. Handlers parse and validate, call one service function inside one
 *    transaction, and render; ap_api_done does the rendering part.
 * 3. Reads share one shape (parameters, a READ transaction, one call, a
 *    page or a 200): ap_api_list_page and ap_api_get_one are whole
 *    handlers for the services' list and get functions; handlers with
 *    filters parse them, then call ap_api_list or ap_api_read.
 */
#ifndef AP_API_API_H
#define AP_API_API_H

#include "http/req.h"
#include "http/router.h"

extern const ap_route_t ap_routes[];

/* Answers `out` with status on success (out stolen), or the problem. */
void ap_api_done(ap_req_t *r, ap_rc rc, const ap_err_t *err, int status, json_t *out);
/* Validates an id path parameter (UUID); answers 404 and returns false when
 * it is not one (an id that cannot exist is not found). */
bool ap_api_id(ap_req_t *r, const char *param, const char **out);
/* Answers 400 for a ?cursor= this API did not hand out, naming it. */
void ap_api_bad_cursor(ap_req_t *r, const char *cursor);
/* A time query parameter (RFC 3339): *out is the time in the store's
 * format (request arena), or NULL when the parameter is absent or empty;
 * answers 400 naming it and returns false when it is not a time. */
bool ap_api_time(ap_req_t *r, const char *name, const char **out);

/* --- read handlers: one READ transaction in the request's tenant scope
 * (r->tenant_id; platform scope when NULL), one call, one answer ---
 *
 * The callbacks run on the request's thread, inside the transaction, and
 * never answer: they return their result (arena memory of the
 * transaction, or new JSON references) and an error in err.  When a
 * helper fails before the call (a malformed parameter, the store down) it
 * answers the problem and never calls the callback. */

/* One page of a list: its size, and the cursor it starts after (NULL: the
 * first page). */
typedef struct {
    int limit;
    const char *cursor;
} ap_api_page_t;

/* The shape of the services' list functions: one page of a tenant's rows
 * after the cursor `after`; *next is NULL on the last page. */
typedef ap_rc (*ap_api_page_fn)(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                                json_t **items, const char **next, ap_err_t *err);
/* A list that needs more than its page (filters, a parent id): ud carries
 * it.  On failure *items may be left set; it is released. */
typedef ap_rc (*ap_api_list_fn)(ap_tx_t *tx, const char *tenant_id, const ap_api_page_t *pg,
                                void *ud, json_t **items, const char **next, ap_err_t *err);
/* The shape of the services' get functions: one resource by id. */
typedef ap_rc (*ap_api_get_fn)(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                               ap_err_t *err);
/* A read whose arguments are not one id: ud carries them. */
typedef ap_rc (*ap_api_read_fn)(ap_tx_t *tx, const char *tenant_id, void *ud, json_t **out,
                                ap_err_t *err);

/* Parses ?limit= (1..500, default 50) and ?cursor=, which must be a UUID
 * (the lists keyed by id); answers the problem and returns false when
 * either is malformed. */
bool ap_api_page(ap_req_t *r, ap_api_page_t *pg);
/* Runs fn for pg and answers {"data": items, "next_cursor": next|null},
 * or fn's problem. */
void ap_api_list(ap_req_t *r, const ap_api_page_t *pg, ap_api_list_fn fn, void *ud);
/* A whole list handler: ap_api_page, then fn for that page. */
void ap_api_list_page(ap_req_t *r, ap_api_page_fn fn);
/* Runs fn and answers 200 with its result, or its problem. */
void ap_api_read(ap_req_t *r, ap_api_read_fn fn, void *ud);
/* A whole get handler: the UUID path parameter `param` (404 when it is
 * not one, see ap_api_id), then fn for it. */
void ap_api_get_one(ap_req_t *r, const char *param, ap_api_get_fn fn);

/* handlers */
void ap_h_healthz(ap_req_t *r);
void ap_h_readyz(ap_req_t *r);
void ap_h_metrics(ap_req_t *r);

void ap_h_tenant_create(ap_req_t *r);
void ap_h_tenant_list(ap_req_t *r);
void ap_h_tenant_get(ap_req_t *r);
void ap_h_tenant_self(ap_req_t *r);
void ap_h_tenant_update(ap_req_t *r);
void ap_h_tenant_suspend(ap_req_t *r);
void ap_h_tenant_resume(ap_req_t *r);
void ap_h_tenant_delete(ap_req_t *r);

void ap_h_user_create(ap_req_t *r);
void ap_h_user_list(ap_req_t *r);
void ap_h_user_get(ap_req_t *r);
void ap_h_user_update(ap_req_t *r);
void ap_h_user_delete(ap_req_t *r);

void ap_h_key_create(ap_req_t *r);
void ap_h_key_list(ap_req_t *r);
void ap_h_key_get(ap_req_t *r);
void ap_h_key_revoke(ap_req_t *r);

void ap_h_audit_list(ap_req_t *r);
void ap_h_audit_verify(ap_req_t *r);

void ap_h_llm_provider_list(ap_req_t *r);
void ap_h_llm_model_list(ap_req_t *r);
void ap_h_llm_model_create(ap_req_t *r);
void ap_h_llm_model_update(ap_req_t *r);
void ap_h_llm_model_deactivate(ap_req_t *r);
void ap_h_llm_private_create(ap_req_t *r);
void ap_h_llm_private_list(ap_req_t *r);
void ap_h_llm_private_delete(ap_req_t *r);
void ap_h_llm_usage(ap_req_t *r); /* llm_usage.c */
void ap_h_llm_config_create(ap_req_t *r); /* llm_config.c */
void ap_h_llm_config_list(ap_req_t *r);
void ap_h_llm_config_get(ap_req_t *r);
void ap_h_llm_config_update(ap_req_t *r);
void ap_h_llm_config_delete(ap_req_t *r);

/* tasks, messages, events (tasks.c) */
void ap_h_task_create(ap_req_t *r);
void ap_h_task_list(ap_req_t *r);
void ap_h_task_get(ap_req_t *r);
void ap_h_task_tree(ap_req_t *r);
void ap_h_task_steps(ap_req_t *r);
void ap_h_task_messages(ap_req_t *r);
void ap_h_task_events(ap_req_t *r);
void ap_h_task_cancel(ap_req_t *r);
void ap_h_task_approve(ap_req_t *r);
void ap_h_task_reject(ap_req_t *r);
void ap_h_message_list(ap_req_t *r);
void ap_h_message_create(ap_req_t *r);
void ap_h_event_list(ap_req_t *r);
/* agents, versions, lifecycle (agents.c) */
void ap_h_agent_create(ap_req_t *r);
void ap_h_agent_list(ap_req_t *r);
void ap_h_agent_get(ap_req_t *r);
void ap_h_agent_update(ap_req_t *r);
void ap_h_agent_versions(ap_req_t *r);
void ap_h_agent_version_get(ap_req_t *r);
void ap_h_agent_validate(ap_req_t *r);
void ap_h_agent_deploy(ap_req_t *r);
void ap_h_agent_pause(ap_req_t *r);
void ap_h_agent_resume(ap_req_t *r);
void ap_h_agent_retire(ap_req_t *r);
/* agent memory (memory.c) and the knowledge graph (knowledge.c) */
void ap_h_mem_remember(ap_req_t *r);
void ap_h_mem_recall(ap_req_t *r);
void ap_h_mem_consolidate(ap_req_t *r);
void ap_h_mem_share(ap_req_t *r);
void ap_h_mem_list(ap_req_t *r);
void ap_h_mem_get(ap_req_t *r);
void ap_h_mem_forget(ap_req_t *r);
void ap_h_mem_context_push(ap_req_t *r);
void ap_h_mem_context_get(ap_req_t *r);
void ap_h_kg_learn(ap_req_t *r);
void ap_h_kg_relate(ap_req_t *r);
void ap_h_kg_list(ap_req_t *r);
void ap_h_kg_get(ap_req_t *r);
void ap_h_kg_delete(ap_req_t *r);
void ap_h_kg_neighbors(ap_req_t *r);
void ap_h_kg_paths(ap_req_t *r);
void ap_h_kg_export(ap_req_t *r);
/* groups, members, hierarchy, relationships, skills (agent_groups.c) */
void ap_h_group_create(ap_req_t *r);
void ap_h_group_list(ap_req_t *r);
void ap_h_group_get(ap_req_t *r);
void ap_h_group_update(ap_req_t *r);
void ap_h_group_delete(ap_req_t *r);
void ap_h_group_member_add(ap_req_t *r);
void ap_h_group_member_remove(ap_req_t *r);
void ap_h_group_hierarchy(ap_req_t *r);
void ap_h_rel_create(ap_req_t *r);
void ap_h_rel_list(ap_req_t *r);
void ap_h_rel_get(ap_req_t *r);
void ap_h_rel_update(ap_req_t *r);
void ap_h_rel_delete(ap_req_t *r);
void ap_h_skill_create(ap_req_t *r);
void ap_h_skill_list(ap_req_t *r);
void ap_h_skill_get(ap_req_t *r);
void ap_h_skill_update(ap_req_t *r);
void ap_h_skill_delete(ap_req_t *r);

/* the LLM gateway (gateway.c) */
void ap_h_gw_chat(ap_req_t *r);
void ap_h_gw_messages(ap_req_t *r);
void ap_h_gw_embeddings(ap_req_t *r);
void ap_h_gw_models(ap_req_t *r);

/* the MCP endpoint (mcp.c) */
void ap_h_mcp_post(ap_req_t *r);
void ap_h_mcp_delete(ap_req_t *r);
/* a tenant's external MCP servers (mcp_servers.c) */
void ap_h_mcp_server_create(ap_req_t *r);
void ap_h_mcp_server_list(ap_req_t *r);
void ap_h_mcp_server_get(ap_req_t *r);
void ap_h_mcp_server_delete(ap_req_t *r);
void ap_h_mcp_server_discover(ap_req_t *r);
void ap_h_mcp_server_call(ap_req_t *r);

#endif
