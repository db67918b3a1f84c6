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

    /* agent memory: canonical per agent; the /api/v1/memory alias names the agent in the
     * body (or ?agent_id= on the list) or through the memory id (api/memory.c) */
    {"GET", T "/agents/{agent_id}/memory", ap_h_mem_list, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "memory.list"},
    {"POST", T "/agents/{agent_id}/memory", ap_h_mem_remember, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "memory.remember"},
    {"GET", T "/agents/{agent_id}/memory/{memory_id}", ap_h_mem_get, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "memory.get"},
    {"DELETE", T "/agents/{agent_id}/memory/{memory_id}", ap_h_mem_forget, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "memory.forget"},
    {"POST", T "/agents/{agent_id}/memory:recall", ap_h_mem_recall, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "memory.recall"},
    {"POST", T "/agents/{agent_id}/memory:consolidate", ap_h_mem_consolidate, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "memory.consolidate"},
    {"POST", T "/agents/{agent_id}/memory:share", ap_h_mem_share, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "memory.share"},
    {"POST", T "/agents/{agent_id}/context", ap_h_mem_context_push, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "memory.context.push"},
    {"GET", T "/agents/{agent_id}/context/{conversation_id}", ap_h_mem_context_get, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "memory.context.get"},
    {"GET", "/api/v1/memory", ap_h_mem_list, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "memory.list"},
    {"POST", "/api/v1/memory", ap_h_mem_remember, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "memory.remember"},
    {"GET", "/api/v1/memory/{memory_id}", ap_h_mem_get, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "memory.get"},
    {"DELETE", "/api/v1/memory/{memory_id}", ap_h_mem_forget, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "memory.forget"},
    {"POST", "/api/v1/memory:recall", ap_h_mem_recall, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "memory.recall"},
    {"POST", "/api/v1/memory:consolidate", ap_h_mem_consolidate, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "memory.consolidate"},
    {"POST", "/api/v1/memory:share", ap_h_mem_share, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "memory.share"},

    /* the knowledge graph of the tenant (api/knowledge.c) */
    {"POST", T "/knowledge/entities", ap_h_kg_learn, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "knowledge.learn"},
    {"GET", T "/knowledge/entities", ap_h_kg_list, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "knowledge.list"},
    {"GET", T "/knowledge/entities/{entity_id}", ap_h_kg_get, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "knowledge.get"},
    {"DELETE", T "/knowledge/entities/{entity_id}", ap_h_kg_delete, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "knowledge.delete"},
    {"GET", T "/knowledge/entities/{entity_id}/neighbors", ap_h_kg_neighbors, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "knowledge.neighbors"},
    {"GET", T "/knowledge/entities/{entity_id}/paths", ap_h_kg_paths, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "knowledge.paths"},
    {"POST", T "/knowledge/relations", ap_h_kg_relate, AP_PERM_MEMORY_WRITE, AP_SCOPE_PATH, "knowledge.relate"},
    {"GET", T "/knowledge/graph", ap_h_kg_export, AP_PERM_MEMORY_READ, AP_SCOPE_PATH, "knowledge.export"},
    {"POST", "/api/v1/knowledge/entities", ap_h_kg_learn, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "knowledge.learn"},
    {"GET", "/api/v1/knowledge/entities", ap_h_kg_list, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "knowledge.list"},
    {"GET", "/api/v1/knowledge/entities/{entity_id}", ap_h_kg_get, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "knowledge.get"},
    {"DELETE", "/api/v1/knowledge/entities/{entity_id}", ap_h_kg_delete, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "knowledge.delete"},
    {"GET", "/api/v1/knowledge/entities/{entity_id}/neighbors", ap_h_kg_neighbors, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "knowledge.neighbors"},
    {"GET", "/api/v1/knowledge/entities/{entity_id}/paths", ap_h_kg_paths, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "knowledge.paths"},
    {"POST", "/api/v1/knowledge/relations", ap_h_kg_relate, AP_PERM_MEMORY_WRITE, AP_SCOPE_CRED, "knowledge.relate"},
    {"GET", "/api/v1/knowledge/graph", ap_h_kg_export, AP_PERM_MEMORY_READ, AP_SCOPE_CRED, "knowledge.export"},

    /* the LLM gateway: OpenAI- and Anthropic-compatible; errors in their shapes */
    {"POST", "/v1/chat/completions", ap_h_gw_chat, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.chat", 1},
    {"POST", "/v1/embeddings", ap_h_gw_embeddings, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.embeddings", 1},
    {"GET", "/v1/models", ap_h_gw_models, AP_PERM_LLM_READ, AP_SCOPE_CRED, "llm.models", 1},
    {"POST", "/v1/messages", ap_h_gw_messages, AP_PERM_LLM_INVOKE, AP_SCOPE_CRED, "llm.messages", 2},

    {NULL, NULL, NULL, AP_PERM_NONE, AP_SCOPE_PUBLIC, NULL},
};
