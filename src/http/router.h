/*
 * router.h - path normalisation and the route table matcher.
 *
 * 1. Paths are normalised before routing and authorisation, so no spelling
 *    of a path reaches a handler without its checks: percent-decoding,
 *    lowercasing, repeated slashes collapsed, "." and ".." resolved, a
 *    trailing slash dropped.  Encoded '/', NUL, control characters and
 *    ".." above the root are refused (400), and so is a path that is not
 *    UTF-8 once decoded (it could be neither logged nor echoed as JSON).
 * 2. Patterns are literal segments and {name} captures; a segment may end
 *    in a colon action ("{tenant_id}:suspend") as ARCHITECTURE.md §7 asks.
 * 3. The route table itself lives in api/routes.c; the router only
 *    matches.  Thread-safe: it reads the immutable table.
 */
#ifndef AP_HTTP_ROUTER_H
#define AP_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/err.h"
#include "policy/policy.h"

#define AP_MAX_PARAMS 6

struct ap_req;
typedef void (*ap_handler_fn)(struct ap_req *r);

typedef enum {
    AP_SCOPE_PUBLIC,   /* no credential, no tenant */
    AP_SCOPE_PLATFORM, /* credential; no tenant in path (platform-level) */
    AP_SCOPE_PATH,     /* tenant from the {tenant_id} path segment */
    AP_SCOPE_CRED,     /* alias: tenant from the credential */
} ap_scope;

typedef struct {
    const char *method;
    const char *pattern;
    ap_handler_fn handler;
    ap_perm perm;
    ap_scope scope;
    const char *action; /* audit action name, e.g. "tenant.create" */
    /* Error bodies for this route: 0 problem+json; otherwise an
     * ap_wire_kind + 1, so OpenAI/Anthropic SDKs see their own shapes, or
     * AP_ERROR_WIRE_JSONRPC (the MCP endpoint: JSON-RPC error objects). */
    int error_wire;
} ap_route_t;

#define AP_ERROR_WIRE_JSONRPC 100

typedef struct {
    const ap_route_t *route;
    int index;
    int nparams;
    const char *names[AP_MAX_PARAMS];
    const char *values[AP_MAX_PARAMS];
} ap_match_t;

/* Writes the normalised path into the arena.  AP_ERR_INVALID with a
 * detail when the path cannot be normalised safely.  raw is the request
 * target as the client sent it (not decoded by the HTTP library): it is
 * decoded here exactly once. */
ap_rc ap_path_normalize(ap_arena_t *a, const char *raw, char **out, ap_err_t *err);

/* Length of the well-formed UTF-8 sequence at s (at most n bytes): 1..4,
 * or 0 when the bytes there are not UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF included).  Pure; thread-safe. */
size_t ap_router_utf8_seq(const unsigned char *s, size_t n);

typedef enum { AP_ROUTE_FOUND, AP_ROUTE_NO_PATH, AP_ROUTE_NO_METHOD } ap_route_result;

/* Finds method + path in routes (terminated by a NULL method).  On
 * AP_ROUTE_NO_METHOD, *allow lists the methods the path accepts. */
ap_route_result ap_route_find(const ap_route_t *routes, ap_arena_t *a, const char *method,
                              const char *path, ap_match_t *m, const char **allow);
const char *ap_match_param(const ap_match_t *m, const char *name);

#endif
