/*
 * main.c - dispatches to src/cmd/<name>.c.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/version.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} cmds[] = {
    {"serve", ap_cmd_serve, "run the platform"},
    {"migrate", ap_cmd_migrate, "apply the database migrations"},
    {"admin", ap_cmd_admin, "offline administration (purge, permissions)"},
    {"audit", ap_cmd_audit, "verify, export or list the audit log"},
    {"tenants", ap_cmd_tenants, "manage tenants through the API"},
    {"users", ap_cmd_users, "manage users through the API"},
    {"keys", ap_cmd_keys, "manage API keys through the API"},
    {"tasks", ap_cmd_tasks, "create, follow, approve and cancel agent tasks through the API"},
    {"llm", ap_cmd_llm, "list LLM models and providers, and the tenant's usage, through the API"},
    {"mcp", ap_cmd_mcp, "serve the MCP tools on stdio (--stdio); manage external MCP servers (servers)"},
    {"memory", ap_cmd_memory, "remember, recall, list, forget, consolidate, share agent memories"},
    {"knowledge", ap_cmd_knowledge, "learn and query the tenant's knowledge graph"},
    {"agents", ap_cmd_agents, "define, version, validate, deploy, pause and retire agents"},
    {"groups", ap_cmd_groups, "manage agent groups (teams), their members and hierarchy"},
    {"relationships", ap_cmd_relationships, "relate agents: supervises, delegates_to, …"},
    {"skills", ap_cmd_skills, "manage agents' skills"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: agentprov <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-14s %s\n", cmds[i].name, cmds[i].what);
    fprintf(f, "\n`agentprov <command> --help` describes each.  API client commands read AP_URL "
               "and AP_API_KEY.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("agentprov %s\n", ap_version);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
