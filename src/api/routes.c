/*
 * routes.c - every HTTP route: method, pattern, handler, permission,
 * tenant scope, audit action name.
 *
 * 1. Canonical paths carry the tenant (/api/v1/tenants/{tenant_id}/…);
 *    the short aliases take it from the credential.  Both point at the
 *    same handler, which reads r->tenant_id and never the path.
 * 2. docs/api/openapi.yaml lists exactly these; tests/e2e/openapi.test.mjs
 *    compares them.
 */
#include "api/api.h"

#define T "/api/v1/tenants/{tenant_id}"

const ap_route_t ap_routes[] = {
    {"GET", "/healthz", ap_h_healthz, AP_PERM_NONE, AP_SCOPE_PUBLIC, "health.live"},
    {"GET", "/readyz", ap_h_readyz, AP_PERM_NONE, AP_SCOPE_PUBLIC, "health.ready"},
    {"GET", "/metrics", ap_h_metrics, AP_PERM_NONE, AP_SCOPE_PUBLIC, "metrics.read"},

    {"POST", "/api/v1/tenants", ap_h_tenant_create, AP_PERM_TENANT_ADMIN, AP_SCOPE_PLATFORM, "tenant.create"},
    {"GET", "/api/v1/tenants", ap_h_tenant_list, AP_PERM_TENANT_ADMIN, AP_SCOPE_PLATFORM, "tenant.list"},
    {"GET", T, ap_h_tenant_get, AP_PERM_TENANT_READ, AP_SCOPE_PATH, "tenant.get"},
    {"PATCH", T, ap_h_tenant_update, AP_PERM_TENANT_ADMIN, AP_SCOPE_PATH, "tenant.update"},
    {"DELETE", T, ap_h_tenant_delete, AP_PERM_TENANT_ADMIN, AP_SCOPE_PATH, "tenant.delete"},
    {"POST", T ":suspend", ap_h_tenant_suspend, AP_PERM_TENANT_ADMIN, AP_SCOPE_PATH, "tenant.suspend"},
    {"POST", T ":resume", ap_h_tenant_resume, AP_PERM_TENANT_ADMIN, AP_SCOPE_PATH, "tenant.resume"},
    {"GET", "/api/v1/tenant", ap_h_tenant_self, AP_PERM_TENANT_READ, AP_SCOPE_CRED, "tenant.get"},

    {"POST", T "/users", ap_h_user_create, AP_PERM_USER_WRITE, AP_SCOPE_PATH, "user.create"},
    {"GET", T "/users", ap_h_user_list, AP_PERM_USER_READ, AP_SCOPE_PATH, "user.list"},
    {"GET", T "/users/{user_id}", ap_h_user_get, AP_PERM_USER_READ, AP_SCOPE_PATH, "user.get"},
    {"PATCH", T "/users/{user_id}", ap_h_user_update, AP_PERM_USER_WRITE, AP_SCOPE_PATH, "user.update"},
    {"DELETE", T "/users/{user_id}", ap_h_user_delete, AP_PERM_USER_WRITE, AP_SCOPE_PATH, "user.delete"},
    {"POST", "/api/v1/users", ap_h_user_create, AP_PERM_USER_WRITE, AP_SCOPE_CRED, "user.create"},
    {"GET", "/api/v1/users", ap_h_user_list, AP_PERM_USER_READ, AP_SCOPE_CRED, "user.list"},
    {"GET", "/api/v1/users/{user_id}", ap_h_user_get, AP_PERM_USER_READ, AP_SCOPE_CRED, "user.get"},
    {"PATCH", "/api/v1/users/{user_id}", ap_h_user_update, AP_PERM_USER_WRITE, AP_SCOPE_CRED, "user.update"},
    {"DELETE", "/api/v1/users/{user_id}", ap_h_user_delete, AP_PERM_USER_WRITE, AP_SCOPE_CRED, "user.delete"},

    {"POST", T "/api-keys", ap_h_key_create, AP_PERM_KEY_WRITE, AP_SCOPE_PATH, "api_key.create"},
    {"GET", T "/api-keys", ap_h_key_list, AP_PERM_KEY_READ, AP_SCOPE_PATH, "api_key.list"},
    {"GET", T "/api-keys/{key_id}", ap_h_key_get, AP_PERM_KEY_READ, AP_SCOPE_PATH, "api_key.get"},
    {"POST", T "/api-keys/{key_id}:revoke", ap_h_key_revoke, AP_PERM_KEY_WRITE, AP_SCOPE_PATH, "api_key.revoke"},
    {"POST", "/api/v1/api-keys", ap_h_key_create, AP_PERM_KEY_WRITE, AP_SCOPE_CRED, "api_key.create"},
    {"GET", "/api/v1/api-keys", ap_h_key_list, AP_PERM_KEY_READ, AP_SCOPE_CRED, "api_key.list"},
    {"GET", "/api/v1/api-keys/{key_id}", ap_h_key_get, AP_PERM_KEY_READ, AP_SCOPE_CRED, "api_key.get"},
    {"POST", "/api/v1/api-keys/{key_id}:revoke", ap_h_key_revoke, AP_PERM_KEY_WRITE, AP_SCOPE_CRED, "api_key.revoke"},

    {"GET", T "/audit", ap_h_audit_list, AP_PERM_AUDIT_READ, AP_SCOPE_PATH, "audit.list"},
    {"GET", T "/audit:verify", ap_h_audit_verify, AP_PERM_AUDIT_READ, AP_SCOPE_PATH, "audit.verify"},
    {"GET", "/api/v1/audit", ap_h_audit_list, AP_PERM_AUDIT_READ, AP_SCOPE_CRED, "audit.list"},
    {"GET", "/api/v1/audit:verify", ap_h_audit_verify, AP_PERM_AUDIT_READ, AP_SCOPE_CRED, "audit.verify"},

    /* the LLM catalog: one model is named by ?id= (GET) or "id" in the body (api/llm.c) */
    {"GET", "/api/v1/llm/providers", ap_h_llm_provider_list, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.provider.list"},
    {"GET", "/api/v1/llm/models", ap_h_llm_model_list, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.model.list"},
    {"POST", "/api/v1/llm/models", ap_h_llm_model_create, AP_PERM_LLM_CATALOG_ADMIN, AP_SCOPE_PLATFORM, "llm.model.create"},
    {"PATCH", "/api/v1/llm/models", ap_h_llm_model_update, AP_PERM_LLM_CATALOG_ADMIN, AP_SCOPE_PLATFORM, "llm.model.update"},
    {"POST", "/api/v1/llm/models:deactivate", ap_h_llm_model_deactivate, AP_PERM_LLM_CATALOG_ADMIN, AP_SCOPE_PLATFORM, "llm.model.deactivate"},
    {"POST", T "/llm/providers", ap_h_llm_private_create, AP_PERM_LLM_PROVIDER_WRITE, AP_SCOPE_PATH, "llm.private_provider.create"},
    {"GET", T "/llm/providers", ap_h_llm_private_list, AP_PERM_LLM_READ, AP_SCOPE_PATH, "llm.private_provider.list"},
    {"DELETE", T "/llm/providers/{provider_id}", ap_h_llm_private_delete, AP_PERM_LLM_PROVIDER_WRITE, AP_SCOPE_PATH, "llm.private_provider.delete"},
    {"POST", "/api/v1/llm/private-providers", ap_h_llm_private_create, AP_PERM_LLM_PROVIDER_WRITE, AP_SCOPE_CRED, "llm.private_provider.create"},
    {"GET", "/api/v1/llm/private-providers", ap_h_llm_private_list, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.private_provider.list"},
    {"DELETE", "/api/v1/llm/private-providers/{provider_id}", ap_h_llm_private_delete, AP_PERM_LLM_PROVIDER_WRITE, AP_SCOPE_CRED, "llm.private_provider.delete"},
    {"GET", T "/llm/usage", ap_h_llm_usage, AP_PERM_LLM_READ, AP_SCOPE_PATH, "llm.usage"},
    {"GET", "/api/v1/llm/usage", ap_h_llm_usage, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.usage"},
    {"POST", T "/llm/configs", ap_h_llm_config_create, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_PATH, "llm.config.create"},
    {"GET", T "/llm/configs", ap_h_llm_config_list, AP_PERM_LLM_READ, AP_SCOPE_PATH, "llm.config.list"},
    {"GET", T "/llm/configs/{config_id}", ap_h_llm_config_get, AP_PERM_LLM_READ, AP_SCOPE_PATH, "llm.config.get"},
    {"PATCH", T "/llm/configs/{config_id}", ap_h_llm_config_update, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_PATH, "llm.config.update"},
    {"DELETE", T "/llm/configs/{config_id}", ap_h_llm_config_delete, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_PATH, "llm.config.delete"},
    {"POST", "/api/v1/llm/configs", ap_h_llm_config_create, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_CRED, "llm.config.create"},
    {"GET", "/api/v1/llm/configs", ap_h_llm_config_list, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.config.list"},
    {"GET", "/api/v1/llm/configs/{config_id}", ap_h_llm_config_get, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.config.get"},
    {"PATCH", "/api/v1/llm/configs/{config_id}", ap_h_llm_config_update, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_CRED, "llm.config.update"},
    {"DELETE", "/api/v1/llm/configs/{config_id}", ap_h_llm_config_delete, AP_PERM_LLM_CONFIG_WRITE, AP_SCOPE_CRED, "llm.config.delete"},

    /* agent tasks, messages, events (api/tasks.c) */
    {"POST", T "/tasks", ap_h_task_create, AP_PERM_TASK_WRITE, AP_SCOPE_PATH, "task.create"},
    {"GET", T "/tasks", ap_h_task_list, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.list"},
    {"GET", T "/tasks/{task_id}", ap_h_task_get, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.get"},
    {"GET", T "/tasks/{task_id}/tree", ap_h_task_tree, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.tree"},
    {"GET", T "/tasks/{task_id}/steps", ap_h_task_steps, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.steps"},
    {"GET", T "/tasks/{task_id}/messages", ap_h_task_messages, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.messages"},
    {"GET", T "/tasks/{task_id}/events", ap_h_task_events, AP_PERM_TASK_READ, AP_SCOPE_PATH, "task.events"},
    {"POST", T "/tasks/{task_id}:cancel", ap_h_task_cancel, AP_PERM_TASK_WRITE, AP_SCOPE_PATH, "task.cancel"},
    {"POST", T "/tasks/{task_id}:approve", ap_h_task_approve, AP_PERM_TASK_APPROVE, AP_SCOPE_PATH, "task.approve"},
    {"POST", T "/tasks/{task_id}:reject", ap_h_task_reject, AP_PERM_TASK_APPROVE, AP_SCOPE_PATH, "task.reject"},
    {"GET", T "/messages", ap_h_message_list, AP_PERM_TASK_READ, AP_SCOPE_PATH, "message.list"},
    {"POST", T "/messages", ap_h_message_create, AP_PERM_TASK_WRITE, AP_SCOPE_PATH, "message.create"},
    {"GET", T "/events", ap_h_event_list, AP_PERM_TASK_READ, AP_SCOPE_PATH, "event.list"},
    {"POST", "/api/v1/tasks", ap_h_task_create, AP_PERM_TASK_WRITE, AP_SCOPE_CRED, "task.create"},
    {"GET", "/api/v1/tasks", ap_h_task_list, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.list"},
    {"GET", "/api/v1/tasks/{task_id}", ap_h_task_get, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.get"},
    {"GET", "/api/v1/tasks/{task_id}/tree", ap_h_task_tree, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.tree"},
    {"GET", "/api/v1/tasks/{task_id}/steps", ap_h_task_steps, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.steps"},
    {"GET", "/api/v1/tasks/{task_id}/messages", ap_h_task_messages, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.messages"},
    {"GET", "/api/v1/tasks/{task_id}/events", ap_h_task_events, AP_PERM_TASK_READ, AP_SCOPE_CRED, "task.events"},
    {"POST", "/api/v1/tasks/{task_id}:cancel", ap_h_task_cancel, AP_PERM_TASK_WRITE, AP_SCOPE_CRED, "task.cancel"},
    {"POST", "/api/v1/tasks/{task_id}:approve", ap_h_task_approve, AP_PERM_TASK_APPROVE, AP_SCOPE_CRED, "task.approve"},
    {"POST", "/api/v1/tasks/{task_id}:reject", ap_h_task_reject, AP_PERM_TASK_APPROVE, AP_SCOPE_CRED, "task.reject"},
    {"GET", "/api/v1/messages", ap_h_message_list, AP_PERM_TASK_READ, AP_SCOPE_CRED, "message.list"},
    {"POST", "/api/v1/messages", ap_h_message_create, AP_PERM_TASK_WRITE, AP_SCOPE_CRED, "message.create"},
    {"GET", "/api/v1/events", ap_h_event_list, AP_PERM_TASK_READ, AP_SCOPE_CRED, "event.list"},
    /* agents (api/agents.c) */
    {"POST", T "/agents", ap_h_agent_create, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.create"},
    {"GET", T "/agents", ap_h_agent_list, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "agent.list"},
    {"GET", T "/agents/{agent_id}", ap_h_agent_get, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "agent.get"},
    {"PATCH", T "/agents/{agent_id}", ap_h_agent_update, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.update"},
    {"GET", T "/agents/{agent_id}/versions", ap_h_agent_versions, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "agent.version.list"},
    {"GET", T "/agents/{agent_id}/versions/{version}", ap_h_agent_version_get, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "agent.version.get"},
    {"POST", T "/agents/{agent_id}:validate", ap_h_agent_validate, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.validate"},
    {"POST", T "/agents/{agent_id}:deploy", ap_h_agent_deploy, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.deploy"},
    {"POST", T "/agents/{agent_id}:pause", ap_h_agent_pause, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.pause"},
    {"POST", T "/agents/{agent_id}:resume", ap_h_agent_resume, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.resume"},
    {"POST", T "/agents/{agent_id}:retire", ap_h_agent_retire, AP_PERM_AGENT_WRITE, AP_SCOPE_PATH, "agent.retire"},
    {"POST", "/api/v1/agents", ap_h_agent_create, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.create"},
    {"GET", "/api/v1/agents", ap_h_agent_list, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "agent.list"},
    {"GET", "/api/v1/agents/{agent_id}", ap_h_agent_get, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "agent.get"},
    {"PATCH", "/api/v1/agents/{agent_id}", ap_h_agent_update, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.update"},
    {"GET", "/api/v1/agents/{agent_id}/versions", ap_h_agent_versions, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "agent.version.list"},
    {"GET", "/api/v1/agents/{agent_id}/versions/{version}", ap_h_agent_version_get, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "agent.version.get"},
    {"POST", "/api/v1/agents/{agent_id}:validate", ap_h_agent_validate, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.validate"},
    {"POST", "/api/v1/agents/{agent_id}:deploy", ap_h_agent_deploy, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.deploy"},
    {"POST", "/api/v1/agents/{agent_id}:pause", ap_h_agent_pause, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.pause"},
    {"POST", "/api/v1/agents/{agent_id}:resume", ap_h_agent_resume, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.resume"},
    {"POST", "/api/v1/agents/{agent_id}:retire", ap_h_agent_retire, AP_PERM_AGENT_WRITE, AP_SCOPE_CRED, "agent.retire"},

    /* the LLM gateway: OpenAI- and Anthropic-compatible; errors in their shapes */
    {"POST", "/v1/chat/completions", ap_h_gw_chat, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.chat", 1},
    {"POST", "/v1/embeddings", ap_h_gw_embeddings, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.embeddings", 1},
    {"GET", "/v1/models", ap_h_gw_models, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.models", 1},
    {"POST", "/v1/messages", ap_h_gw_messages, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.messages", 2},

    /* the MCP endpoint (Streamable HTTP); errors as JSON-RPC error objects */
    {"POST", "/mcp", ap_h_mcp_post, AP_PERM_MCP_USE, AP_SCOPE_CRED, "mcp.call", AP_ERROR_WIRE_JSONRPC},
    {"DELETE", "/mcp", ap_h_mcp_delete, AP_PERM_MCP_USE, AP_SCOPE_CRED, "mcp.session.delete", AP_ERROR_WIRE_JSONRPC},

    /* external MCP servers of the tenant, for its agents (api/mcp_servers.c) */
    {"POST", T "/mcp-servers", ap_h_mcp_server_create, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_PATH, "mcp.server.create"},
    {"GET", T "/mcp-servers", ap_h_mcp_server_list, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "mcp.server.list"},
    {"GET", T "/mcp-servers/{server_id}", ap_h_mcp_server_get, AP_PERM_AGENT_READ, AP_SCOPE_PATH, "mcp.server.get"},
    {"DELETE", T "/mcp-servers/{server_id}", ap_h_mcp_server_delete, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_PATH, "mcp.server.delete"},
    {"POST", T "/mcp-servers/{server_id}:discover", ap_h_mcp_server_discover, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_PATH, "mcp.server.discover"},
    {"POST", T "/mcp-servers/{server_id}/tools/{tool}:call", ap_h_mcp_server_call, AP_PERM_TASK_WRITE, AP_SCOPE_PATH, "mcp.server.call"},
    {"POST", "/api/v1/mcp-servers", ap_h_mcp_server_create, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_CRED, "mcp.server.create"},
    {"GET", "/api/v1/mcp-servers", ap_h_mcp_server_list, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "mcp.server.list"},
    {"GET", "/api/v1/mcp-servers/{server_id}", ap_h_mcp_server_get, AP_PERM_AGENT_READ, AP_SCOPE_CRED, "mcp.server.get"},
    {"DELETE", "/api/v1/mcp-servers/{server_id}", ap_h_mcp_server_delete, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_CRED, "mcp.server.delete"},
    {"POST", "/api/v1/mcp-servers/{server_id}:discover", ap_h_mcp_server_discover, AP_PERM_MCP_SERVER_WRITE, AP_SCOPE_CRED, "mcp.server.discover"},
    {"POST", "/api/v1/mcp-servers/{server_id}/tools/{tool}:call", ap_h_mcp_server_call, AP_PERM_TASK_WRITE, AP_SCOPE_CRED, "mcp.server.call"},

    {NULL, NULL, NULL, AP_PERM_NONE, AP_SCOPE_PUBLIC, NULL},
};
