/*
 * tools.h - the tools the platform offers as an MCP server: one table,
 * one entry per tool (name, description, input fields, permission,
 * handler).
 *
 * 1. The input schema is generated from the entry's field table
 *    (core/json.h), and arguments are checked against the same table, so
 *    the schema a client sees and the checks it meets cannot drift.
 *    Unknown arguments are refused by name.
 * 2. Every call is authorised as the calling key's role against the tool's
 *    permission (the same matrix as the REST routes) and leaves one audit
 *    entry "mcp.tool.call" (tool, outcome) in the tenant's chain; a tool
 *    that changes something writes that entry and its own in the one
 *    transaction of the change.
 * 3. A failure - permission, arguments, a missing resource, a service
 *    error - is a tool result with isError and a message that says what to
 *    change, not a protocol error: the model calling the tool can correct
 *    itself.  An unknown tool name is a protocol error (-32602).
 * 4. A tool whose service is not available in this build has no handler
 *    and is left out of tools/list (and is unknown to tools/call): no tool
 *    answers with a stand-in result.
 */
#ifndef AP_MCP_TOOLS_H
#define AP_MCP_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/json.h"
#include "mcp/server.h"

typedef ap_rc (*ap_mcp_tool_fn)(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args,
                                json_t **out, ap_err_t *err);

typedef struct {
    const char *name;
    const char *title;
    const char *description;
    const ap_jfield_t *fields;       /* input arguments */
    const char *const *field_docs;   /* one description per field, same order */
    ap_perm perm;
    bool writes;                     /* changes something (readOnlyHint false) */
    ap_mcp_tool_fn fn;               /* NULL: not available in this build */
    bool own_tx;                     /* fn opens its own transactions (tx is NULL) */
} ap_mcp_tool_t;

/* Terminated by an entry with name NULL. */
extern const ap_mcp_tool_t ap_mcp_tools[];

/* The JSON Schema of a tool's input (new reference). */
json_t *ap_mcp_tool_schema(const ap_mcp_tool_t *t);
/* The tools/list result: {"tools": [...]} of the available tools (new
 * reference). */
json_t *ap_mcp_tools_list(void);
/* The available tool named name, or NULL. */
const ap_mcp_tool_t *ap_mcp_tool_find(const char *name);
/* Runs tools/call for an available tool: authorises, checks arguments,
 * calls, audits.  Returns the CallToolResult (new reference). */
json_t *ap_mcp_tool_call(const ap_mcp_caller_t *c, ap_arena_t *a, const ap_mcp_tool_t *t,
                         json_t *args);

#endif
