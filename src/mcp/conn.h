/*
 * conn.h - one client connection to an external MCP server, over
 * Streamable HTTP (libcurl easy handles) or stdio (a child process with
 * pipes).  Internal to mcp/: client.c builds calls and discovery on it.
 *
 * 1. Open runs the handshake (initialize with our latest version, check
 *    the server's answer is a version we speak, notifications/initialized)
 *    and returns the server's initialize result.
 * 2. Every operation honours the connection's deadline (monotonic) and
 *    its bound on the bytes read per request; the first failure closes
 *    nothing by itself - ap_mcp_conn_close does, and an arena cleanup
 *    calls it, so a child process is always killed and reaped.
 * 3. Blocking; one thread uses a connection.
 */
#ifndef AP_MCP_CONN_H
#define AP_MCP_CONN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

typedef struct {
    /* Streamable HTTP */
    const char *url;
    const char *auth; /* Authorization header value, or NULL */
    /* stdio */
    char *const *argv; /* NULL-terminated; argv[0] a path or a name looked up in envp's PATH */
    char *const *envp; /* NULL-terminated */
} ap_mcp_target_t;

typedef struct ap_mcp_conn ap_mcp_conn_t;

ap_rc ap_mcp_conn_open(ap_arena_t *a, const ap_mcp_target_t *t, uint64_t deadline_ns,
                       size_t max_output, ap_mcp_conn_t **out, json_t **init_result,
                       ap_err_t *err);
/* Sends a request and waits for its answer: *result (new reference) on
 * success; a JSON-RPC error answer is AP_ERR_IO quoting it.  params is
 * stolen (may be NULL). */
ap_rc ap_mcp_conn_request(ap_mcp_conn_t *c, const char *method, json_t *params, json_t **result,
                          ap_err_t *err);
/* Bytes read from the server so far. */
size_t ap_mcp_conn_bytes(const ap_mcp_conn_t *c);
const char *ap_mcp_conn_version(const ap_mcp_conn_t *c);
/* Ends the connection (idempotent). */
void ap_mcp_conn_close(ap_mcp_conn_t *c);

#endif
