/*
 * jsonrpc.h - JSON-RPC 2.0 messages as MCP uses them: parse, classify,
 * build answers.
 *
 * 1. A body is one message or (protocol versions before 2025-06-18) a
 *    batch: a non-empty array of messages.  Parsing only says whether the
 *    bytes are JSON (-32700 otherwise); each message is then classified on
 *    its own as a request, a notification, a response, or invalid (-32600)
 *    with the reason, so one bad member of a batch spoils only itself.
 * 2. MCP narrows JSON-RPC: ids are strings or integers (never null or a
 *    fraction), params are an object.  A message that breaks these is
 *    invalid; its id is echoed when it was a usable id, else null.
 * 3. Unknown top-level members are ignored (peers add their own; MCP
 *    extends through `_meta` inside params).
 * 4. Pure functions over jansson values; thread-safe.  Nothing here knows
 *    about HTTP or tenants.
 */
#ifndef AP_MCP_JSONRPC_H
#define AP_MCP_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define AP_RPC_PARSE_ERROR -32700
#define AP_RPC_INVALID_REQUEST -32600
#define AP_RPC_METHOD_NOT_FOUND -32601
#define AP_RPC_INVALID_PARAMS -32602
#define AP_RPC_INTERNAL_ERROR -32603
/* Server-defined codes (-32000..-32099) for transport-level refusals. */
#define AP_RPC_SERVER_ERROR -32000
#define AP_RPC_UNAUTHENTICATED -32001
#define AP_RPC_FORBIDDEN -32003
#define AP_RPC_NOT_FOUND -32004
#define AP_RPC_RATE_LIMITED -32029

typedef enum {
    AP_RPC_REQUEST,
    AP_RPC_NOTIFICATION,
    AP_RPC_RESPONSE,
    AP_RPC_INVALID,
} ap_rpc_kind;

typedef struct {
    ap_rpc_kind kind;
    json_t *id;         /* borrowed: string or integer; NULL for notifications and bad ids */
    const char *method; /* borrowed; requests and notifications */
    json_t *params;     /* borrowed object, or NULL when absent */
    json_t *result;     /* borrowed; responses with a result */
    json_t *error;      /* borrowed; responses with an error */
    char why[160];      /* AP_RPC_INVALID: what is wrong with the message */
} ap_rpc_msg_t;

/* Parses body as JSON.  AP_ERR_INVALID (the caller answers -32700) when it
 * is not JSON; *root is a new reference otherwise, *batch true when it is
 * an array.  Duplicate object keys are a parse error. */
ap_rc ap_rpc_parse(const char *body, size_t len, json_t **root, bool *batch, ap_err_t *err);

/* Classifies one message (an element of a batch, or the root). */
void ap_rpc_classify(json_t *m, ap_rpc_msg_t *out);

/* {"jsonrpc":"2.0","id":id,"result":result}; result is stolen, id borrowed
 * (NULL renders null).  New reference. */
json_t *ap_rpc_result(json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id|null,"error":{code,message[,data]}}; data is
 * stolen (may be NULL).  New reference. */
json_t *ap_rpc_error(json_t *id, int code, const char *message, json_t *data);
/* {"jsonrpc":"2.0","id":id,"method":method[,"params":params]}; params
 * stolen (may be NULL), id borrowed (NULL: a notification).  New
 * reference. */
json_t *ap_rpc_request(json_t *id, const char *method, json_t *params);

/* The JSON-RPC code for an HTTP refusal of the transport (401 → -32001,
 * 403 → -32003, 404 → -32004, 429 → -32029, other 4xx → -32600, 5xx →
 * -32603). */
int ap_rpc_code_for_status(int status);

/* MCP protocol versions this side speaks, server and client alike. */
#define AP_MCP_LATEST_VERSION "2025-06-18"
/* NULL-terminated, latest first. */
extern const char *const ap_mcp_versions[];
bool ap_mcp_version_supported(const char *v);

#endif
