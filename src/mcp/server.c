/*
 * server.c - MCP lifecycle and dispatch (see server.h).
 */
#include "mcp/server.h"

#include <string.h>

#include "core/version.h"
#include "mcp/tools.h"

bool ap_mcp_version_allows_batch(const char *v) {
    /* batching was removed in 2025-06-18; before initialize, the
     * transport's default (2025-03-26) applies */
    return !v || strcmp(v, "2025-06-18") < 0;
}

static json_t *initialize(const ap_mcp_caller_t *c, ap_mcp_state_t *st, ap_arena_t *a,
                          json_t *id, json_t *params) {
    (void)c;
    json_t *pv = params ? json_object_get(params, "protocolVersion") : NULL;
    if (!json_is_string(pv))
        return ap_rpc_error(id, AP_RPC_INVALID_PARAMS,
                            "initialize needs params.protocolVersion (a string such as \"" AP_MCP_LATEST_VERSION "\")",
                            NULL);
    json_t *ci = json_object_get(params, "clientInfo");
    const char *want = json_string_value(pv);
    const char *ver = ap_mcp_version_supported(want) ? want : AP_MCP_LATEST_VERSION;
    for (const char *const *p = ap_mcp_versions; *p; p++)
        if (strcmp(*p, ver) == 0) ver = *p; /* static storage */
    st->protocol_version = ver;
    st->did_initialize = true;
    st->initialized = false;
    if (json_is_object(ci)) {
        const char *n = json_string_value(json_object_get(ci, "name"));
        const char *v = json_string_value(json_object_get(ci, "version"));
        st->client_name = n ? ap_arena_strndup(a, n, strlen(n) > 200 ? 200 : strlen(n)) : NULL;
        st->client_version = v ? ap_arena_strndup(a, v, strlen(v) > 64 ? 64 : strlen(v)) : NULL;
    }
    json_t *res = json_pack(
        "{s:s,s:{s:{s:b}},s:{s:s,s:s,s:s},s:s}", "protocolVersion", ver, "capabilities", "tools",
        "listChanged", 0, "serverInfo", "name", "agentprov", "title", "AgentProvision", "version",
        ap_version, "instructions",
        "AgentProvision platform tools: list agents, create and follow tasks. Each tool is "
        "authorised as the role of the API key you connected with.");
    return ap_rpc_result(id, res);
}

static json_t *tools_call(const ap_mcp_caller_t *c, ap_arena_t *a, json_t *id, json_t *params) {
    json_t *name = params ? json_object_get(params, "name") : NULL;
    if (!json_is_string(name))
        return ap_rpc_error(id, AP_RPC_INVALID_PARAMS,
                            "tools/call needs params.name, the name of a tool from tools/list",
                            NULL);
    const ap_mcp_tool_t *t = ap_mcp_tool_find(json_string_value(name));
    if (!t) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown tool \"%.64s\"; tools/list names the tools",
                 json_string_value(name));
        return ap_rpc_error(id, AP_RPC_INVALID_PARAMS, msg, NULL);
    }
    json_t *args = json_object_get(params, "arguments");
    if (args && !json_is_object(args) && !json_is_null(args))
        return ap_rpc_error(id, AP_RPC_INVALID_PARAMS,
                            "params.arguments must be an object of the tool's input", NULL);
    json_t *own = json_is_object(args) ? json_incref(args) : json_object();
    json_t *res = ap_mcp_tool_call(c, a, t, own);
    json_decref(own);
    return ap_rpc_result(id, res);
}

json_t *ap_mcp_handle(const ap_mcp_caller_t *c, ap_mcp_state_t *st, ap_arena_t *a, json_t *msg) {
    ap_rpc_msg_t m;
    ap_rpc_classify(msg, &m);
    switch (m.kind) {
    case AP_RPC_INVALID: return ap_rpc_error(m.id, AP_RPC_INVALID_REQUEST, m.why, NULL);
    case AP_RPC_RESPONSE: return NULL; /* we send no requests: nothing waits for it */
    case AP_RPC_NOTIFICATION:
        if (strcmp(m.method, "notifications/initialized") == 0) {
            st->initialized = true;
            st->saw_initialized = true;
        }
        return NULL;
    case AP_RPC_REQUEST: break;
    }
    if (strcmp(m.method, "initialize") == 0) return initialize(c, st, a, m.id, m.params);
    if (strcmp(m.method, "ping") == 0) return ap_rpc_result(m.id, json_object());
    if (strcmp(m.method, "tools/list") == 0) return ap_rpc_result(m.id, ap_mcp_tools_list());
    if (strcmp(m.method, "tools/call") == 0) return tools_call(c, a, m.id, m.params);
    char text[200];
    snprintf(text, sizeof text, "method \"%.64s\" not found; this server offers initialize, "
                                "ping, tools/list and tools/call",
             m.method);
    return ap_rpc_error(m.id, AP_RPC_METHOD_NOT_FOUND, text, NULL);
}

void ap_mcp_process(const ap_mcp_caller_t *c, ap_mcp_state_t *st, ap_arena_t *a, json_t *root,
                    bool batch, json_t **answer, bool *refused) {
    *answer = NULL;
    *refused = false;
    if (!batch) {
        *answer = ap_mcp_handle(c, st, a, root);
        return;
    }
    if (!ap_mcp_version_allows_batch(st->protocol_version)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "JSON-RPC batches are not part of protocol version %s; send one message per "
                 "request",
                 st->protocol_version);
        *answer = ap_rpc_error(NULL, AP_RPC_INVALID_REQUEST, msg, NULL);
        *refused = true;
        return;
    }
    if (json_array_size(root) == 0) {
        *answer = ap_rpc_error(NULL, AP_RPC_INVALID_REQUEST, "an empty batch is not a request", NULL);
        *refused = true;
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(root, i, m) {
        json_t *meth = json_is_object(m) ? json_object_get(m, "method") : NULL;
        if (json_is_string(meth) && strcmp(json_string_value(meth), "initialize") == 0) {
            *answer = ap_rpc_error(NULL, AP_RPC_INVALID_REQUEST,
                                   "initialize must be sent alone, not inside a batch", NULL);
            *refused = true;
            return;
        }
    }
    json_t *out = json_array();
    json_array_foreach(root, i, m) {
        json_t *r = ap_mcp_handle(c, st, a, m);
        if (r) json_array_append_new(out, r);
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return;
    }
    *answer = out;
}
