/*
 * cmd.h - the subcommands main() dispatches to.
 *
 * 1. Each takes the arguments from the subcommand's name on (argv[0] is
 *    "audit", "serve", …) and returns the process exit status: 0 success,
 *    1 failure, 2 usage error.
 */
#ifndef AP_CMD_CMD_H
#define AP_CMD_CMD_H

int ap_cmd_serve(int argc, char **argv);
int ap_cmd_migrate(int argc, char **argv);
int ap_cmd_admin(int argc, char **argv);
int ap_cmd_audit(int argc, char **argv);
int ap_cmd_tenants(int argc, char **argv);
int ap_cmd_users(int argc, char **argv);
int ap_cmd_keys(int argc, char **argv);
int ap_cmd_llm(int argc, char **argv);
int ap_cmd_mcp(int argc, char **argv);
int ap_cmd_tasks(int argc, char **argv);
int ap_cmd_memory(int argc, char **argv);    /* memory.c */
int ap_cmd_knowledge(int argc, char **argv); /* memory.c */
int ap_cmd_agents(int argc, char **argv); /* agents.c */
int ap_cmd_groups(int argc, char **argv);
int ap_cmd_relationships(int argc, char **argv);
int ap_cmd_skills(int argc, char **argv);

#endif
