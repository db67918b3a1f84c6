/*
 * policy.c - the role → permission matrix.
 *
 * 1. viewer reads; operator runs work (and reads); auditor reads the audit
 *    log and non-secret metadata; project_admin manages agents and teams
 *    (as those land); tenant_admin manages its own tenant's users and keys;
 *    platform_admin manages tenants and may act in any tenant.
 * 2. Key metadata is limited to admins even though it holds no secret: a
 *    key list is a map of who can get in.
 * 3. Every role reads the LLM catalog (llm.read); only platform_admin
 *    changes it (llm.catalog.admin); tenant_admin registers the tenant's
 *    private providers (llm.provider.write) and its LLM configurations
 *    (llm.config.write; every role reads them with llm.read: they hold
 *    budgets and model choices, no secret).
 * 4. Agents and teams: every role but auditor reads them; project_admin and
 *    up define them.  Tasks: every role reads; operator and up create and
 *    cancel; project_admin and up approve or reject.  Memory and knowledge:
 *    every role but auditor reads (they may hold business content);
 *    operator and up write.  /mcp: operator and up (each tool call is then
 *    authorised as the key's role); external MCP servers: tenant_admin.
 */
#include "policy/policy.h"

#include <string.h>

const char *const ap_role_names[] = {"viewer",        "auditor",      "operator",
                                     "project_admin", "tenant_admin", "platform_admin",
                                     NULL};

const char *ap_role_name(ap_role r) {
    if (r <= AP_ROLE_NONE || r >= AP_ROLE_COUNT) return "none";
    return ap_role_names[r - 1];
}

ap_role ap_role_parse(const char *s) {
    if (!s) return AP_ROLE_NONE;
    for (int i = 0; ap_role_names[i]; i++)
        if (strcmp(ap_role_names[i], s) == 0) return (ap_role)(i + 1);
    return AP_ROLE_NONE;
}

static const struct {
    const char *name, *what;
} perms[AP_PERM_COUNT] = {
    [AP_PERM_NONE] = {"public", "no credential needed"},
    [AP_PERM_TENANT_READ] = {"tenant.read", "read the caller's own tenant"},
    [AP_PERM_TENANT_ADMIN] = {"tenant.admin", "create, list, update, suspend, resume, delete tenants"},
    [AP_PERM_USER_READ] = {"user.read", "list and read users"},
    [AP_PERM_USER_WRITE] = {"user.write", "create, update, delete users"},
    [AP_PERM_KEY_READ] = {"key.read", "list API keys (metadata only; never the secret)"},
    [AP_PERM_KEY_WRITE] = {"key.write", "create and revoke API keys"},
    [AP_PERM_AUDIT_READ] = {"audit.read", "read, verify and export the audit log"},
    [AP_PERM_LLM_READ] = {"llm.read", "list LLM providers and models, the tenant's private providers and LLM configurations, and read its LLM usage"},
    [AP_PERM_LLM_CATALOG_ADMIN] = {"llm.catalog.admin", "add, change and deactivate platform models and their prices"},
    [AP_PERM_LLM_PROVIDER_WRITE] = {"llm.provider.write", "register and delete the tenant's private LLM providers"},
    [AP_PERM_LLM_INVOKE] = {"llm.invoke", "call models through the OpenAI/Anthropic-compatible gateway (metered)"},
    [AP_PERM_LLM_CONFIG_WRITE] = {"llm.config.write", "create, change and delete the tenant's LLM configurations (models, defaults, budgets)"},
    [AP_PERM_AGENT_READ] = {"agent.read", "list and read agents, their versions and skills, teams, relationships and MCP servers"},
    [AP_PERM_AGENT_WRITE] = {"agent.write", "define, version, validate, deploy, pause, resume and retire agents; define teams and relationships"},
    [AP_PERM_TASK_READ] = {"task.read", "read tasks, the task board, task trees, messages and live events"},
    [AP_PERM_TASK_WRITE] = {"task.write", "create and cancel tasks, post messages"},
    [AP_PERM_TASK_APPROVE] = {"task.approve", "approve or reject a task that waits for approval"},
    [AP_PERM_MEMORY_READ] = {"memory.read", "recall and inspect agents' memories and the knowledge graph"},
    [AP_PERM_MEMORY_WRITE] = {"memory.write", "remember, forget, consolidate and share memories; add knowledge"},
    [AP_PERM_MCP_USE] = {"mcp.use", "use the platform as an MCP server (each tool call is authorised as the caller's role)"},
    [AP_PERM_MCP_SERVER_WRITE] = {"mcp.server.write", "register and remove the tenant's external MCP servers"},
};

const char *ap_perm_name(ap_perm p) {
    return p < AP_PERM_COUNT ? perms[p].name : "unknown";
}

const char *ap_perm_describe(ap_perm p) {
    return p < AP_PERM_COUNT ? perms[p].what : "unknown";
}

/* rows: permissions; columns: viewer auditor operator project_admin
 * tenant_admin platform_admin */
static const bool matrix[AP_PERM_COUNT][AP_ROLE_COUNT - 1] = {
    /*                        vie    aud    ope    pro    ten    pla */
    [AP_PERM_NONE] = {true, true, true, true, true, true},
    [AP_PERM_TENANT_READ] = {true, true, true, true, true, true},
    [AP_PERM_TENANT_ADMIN] = {false, false, false, false, false, true},
    [AP_PERM_USER_READ] = {true, true, true, true, true, true},
    [AP_PERM_USER_WRITE] = {false, false, false, false, true, true},
    [AP_PERM_KEY_READ] = {false, false, false, false, true, true},
    [AP_PERM_KEY_WRITE] = {false, false, false, false, true, true},
    [AP_PERM_AUDIT_READ] = {false, true, false, false, true, true},
    [AP_PERM_LLM_READ] = {true, true, true, true, true, true},
    [AP_PERM_LLM_CATALOG_ADMIN] = {false, false, false, false, false, true},
    [AP_PERM_LLM_PROVIDER_WRITE] = {false, false, false, false, true, true},
    [AP_PERM_LLM_INVOKE] = {false, false, true, true, true, true},
    [AP_PERM_LLM_CONFIG_WRITE] = {false, false, false, false, true, true},
    [AP_PERM_AGENT_READ] = {true, false, true, true, true, true},
    [AP_PERM_AGENT_WRITE] = {false, false, false, true, true, true},
    [AP_PERM_TASK_READ] = {true, true, true, true, true, true},
    [AP_PERM_TASK_WRITE] = {false, false, true, true, true, true},
    [AP_PERM_TASK_APPROVE] = {false, false, false, true, true, true},
    [AP_PERM_MEMORY_READ] = {true, false, true, true, true, true},
    [AP_PERM_MEMORY_WRITE] = {false, false, true, true, true, true},
    [AP_PERM_MCP_USE] = {false, false, true, true, true, true},
    [AP_PERM_MCP_SERVER_WRITE] = {false, false, false, false, true, true},
};

bool ap_policy_allows(ap_role r, ap_perm p) {
    if (r <= AP_ROLE_NONE || r >= AP_ROLE_COUNT || p >= AP_PERM_COUNT) return false;
    return matrix[p][r - 1];
}

bool ap_policy_may_grant(ap_role granter, ap_role r) {
    if (r <= AP_ROLE_NONE || r >= AP_ROLE_COUNT) return false;
    if (r == AP_ROLE_PLATFORM_ADMIN) return granter == AP_ROLE_PLATFORM_ADMIN;
    return granter == AP_ROLE_PLATFORM_ADMIN || granter == AP_ROLE_TENANT_ADMIN;
}
