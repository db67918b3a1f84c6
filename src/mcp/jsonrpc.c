/*
 * jsonrpc.c - JSON-RPC 2.0 parse, classify and build (see jsonrpc.h).
 */
#include "mcp/jsonrpc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

ap_rc ap_rpc_parse(const char *body, size_t len, json_t **root, bool *batch, ap_err_t *err) {
    *root = NULL;
    *batch = false;
    if (len == 0)
        return ap_err_set(err, AP_ERR_INVALID, "parse-error", "parse error",
                          "send one JSON-RPC 2.0 message as JSON", "the body is empty");
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v)
        return ap_err_set(err, AP_ERR_INVALID, "parse-error", "parse error",
                          "fix the JSON syntax at the position given",
                          "%s at line %d, column %d", jerr.text, jerr.line, jerr.column);
    *root = v;
    *batch = json_is_array(v);
    return AP_OK;
}

static void invalid(ap_rpc_msg_t *out, const char *why) {
    out->kind = AP_RPC_INVALID;
    snprintf(out->why, sizeof out->why, "%s", why);
}

void ap_rpc_classify(json_t *m, ap_rpc_msg_t *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(m)) {
        invalid(out, "a JSON-RPC message must be an object");
        return;
    }
    json_t *id = json_object_get(m, "id");
    /* MCP ids: strings or integers; remember a usable one for the answer */
    if (id && (json_is_string(id) || json_is_integer(id))) out->id = id;
    json_t *ver = json_object_get(m, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        invalid(out, "\"jsonrpc\" must be the string \"2.0\"");
        return;
    }
    if (id && !out->id) {
        invalid(out, "\"id\" must be a string or an integer");
        return;
    }
    json_t *method = json_object_get(m, "method");
    json_t *result = json_object_get(m, "result");
    json_t *error = json_object_get(m, "error");
    if (method) {
        if (!json_is_string(method) || json_string_length(method) == 0 ||
            strlen(json_string_value(method)) != json_string_length(method)) {
            invalid(out, "\"method\" must be a non-empty string");
            return;
        }
        if (result || error) {
            invalid(out, "a request carries no \"result\" or \"error\"");
            return;
        }
        json_t *params = json_object_get(m, "params");
        if (params && !json_is_object(params)) {
            invalid(out, "\"params\" must be an object");
            return;
        }
        out->method = json_string_value(method);
        out->params = params;
        out->kind = id ? AP_RPC_REQUEST : AP_RPC_NOTIFICATION;
        return;
    }
    if (!id) {
        invalid(out, "a message needs \"method\" (request, notification) or \"id\" (response)");
        return;
    }
    if ((result != NULL) == (error != NULL)) {
        invalid(out, "a response carries exactly one of \"result\" and \"error\"");
        return;
    }
    if (error && (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
                  !json_is_string(json_object_get(error, "message")))) {
        invalid(out, "\"error\" must be an object with an integer code and a string message");
        return;
    }
    out->result = result;
    out->error = error;
    out->kind = AP_RPC_RESPONSE;
}

json_t *ap_rpc_result(json_t *id, json_t *result) {
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "result", result ? result : json_object());
    return o;
}

json_t *ap_rpc_error(json_t *id, int code, const char *message, json_t *data) {
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_t *msg = json_string(message ? message : "error");
    json_object_set_new(e, "message", msg ? msg : json_string("error"));
    if (data) json_object_set_new(e, "data", data);
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "error", e);
    return o;
}

json_t *ap_rpc_request(json_t *id, const char *method, json_t *params) {
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    if (id) json_object_set(o, "id", id);
    json_object_set_new(o, "method", json_string(method));
    if (params) json_object_set_new(o, "params", params);
    return o;
}

int ap_rpc_code_for_status(int status) {
    switch (status) {
    case 401: return AP_RPC_UNAUTHENTICATED;
    case 403: return AP_RPC_FORBIDDEN;
    case 404: return AP_RPC_NOT_FOUND;
    case 429: return AP_RPC_RATE_LIMITED;
    default: break;
    }
    if (status >= 500) return AP_RPC_INTERNAL_ERROR;
    return AP_RPC_INVALID_REQUEST;
}

const char *const ap_mcp_versions[] = {"2025-06-18", "2025-03-26", "2024-11-05", NULL};

bool ap_mcp_version_supported(const char *v) {
    if (!v) return false;
    for (const char *const *p = ap_mcp_versions; *p; p++)
        if (strcmp(*p, v) == 0) return true;
    return false;
}
