/*
 * policy.h - roles, permissions and the one matrix that joins them.
 *
 * 1. The matrix lives in policy.c and nowhere else; docs/permissions.md is
 *    generated from the same table by `agentprov admin permissions` and a
 *    test holds them together.
 * 2. Roles are ordered by reach for "may this caller grant that role":
 *    a caller never grants a role it could not act as itself.
 */
#ifndef AP_POLICY_POLICY_H
#define AP_POLICY_POLICY_H

#include <stdbool.h>

typedef enum {
    AP_ROLE_NONE = 0,
    AP_ROLE_VIEWER,
    AP_ROLE_AUDITOR,
    AP_ROLE_OPERATOR,
    AP_ROLE_PROJECT_ADMIN,
    AP_ROLE_TENANT_ADMIN,
    AP_ROLE_PLATFORM_ADMIN,
    AP_ROLE_COUNT
} ap_role;

typedef enum {
    AP_PERM_NONE = 0,     /* public route: no credential needed */
    AP_PERM_TENANT_READ,  /* read the caller's own tenant */
    AP_PERM_TENANT_ADMIN, /* create, list, update, suspend, resume, delete tenants */
    AP_PERM_USER_READ,
    AP_PERM_USER_WRITE,
    AP_PERM_KEY_READ, /* key metadata; the secret is never readable */
    AP_PERM_KEY_WRITE,
    AP_PERM_AUDIT_READ,
    AP_PERM_LLM_READ,           /* the model catalog and the tenant's private providers */
    AP_PERM_LLM_CATALOG_ADMIN,  /* add, change, deactivate platform models and prices */
    AP_PERM_LLM_PROVIDER_WRITE, /* register and delete the tenant's private providers */
    AP_PERM_LLM_INVOKE,         /* call models through the gateway (it costs money) */
    AP_PERM_LLM_CONFIG_WRITE,   /* create, change, delete the tenant's LLM configurations */
    AP_PERM_AGENT_READ,         /* agents, teams, relationships, skills, MCP servers */
    AP_PERM_AGENT_WRITE,        /* define, version, deploy, pause, retire agents and teams */
    AP_PERM_TASK_READ,          /* tasks, task board and trees, messages, events */
    AP_PERM_TASK_WRITE,         /* create, cancel tasks; post messages */
    AP_PERM_TASK_APPROVE,       /* approve or reject a task waiting for approval */
    AP_PERM_MEMORY_READ,        /* recall and inspect agents' memories and knowledge */
    AP_PERM_MEMORY_WRITE,       /* remember, forget, consolidate, share; learn knowledge */
    AP_PERM_MCP_USE,            /* reach the platform as an MCP server (/mcp) */
    AP_PERM_MCP_SERVER_WRITE,   /* register and remove the tenant's external MCP servers */
    AP_PERM_COUNT
} ap_perm;

const char *ap_role_name(ap_role r);
ap_role ap_role_parse(const char *s); /* AP_ROLE_NONE when unknown */
const char *ap_perm_name(ap_perm p);
const char *ap_perm_describe(ap_perm p);
bool ap_policy_allows(ap_role r, ap_perm p);
/* May a caller with role `granter` create a user or key with role `r`? */
bool ap_policy_may_grant(ap_role granter, ap_role r);
/* NULL-terminated list of role names, for enum validation. */
extern const char *const ap_role_names[];

#endif
