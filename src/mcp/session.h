/*
 * session.h - sessions of the platform's MCP endpoint (Streamable HTTP).
 *
 * 1. initialize creates a session: 128 random bits as 32 hex digits,
 *    returned in the Mcp-Session-Id header.  The session belongs to the
 *    API key that opened it; any other key (of this tenant or another)
 *    presenting the id gets AP_ERR_NOT_FOUND, exactly as for an id that
 *    never existed, so ids neither leak nor transfer.
 * 2. Sessions live in the store (mcp_sessions), so every node of a cluster
 *    serves every session.  A session expires after AP_MCP_SESSION_TTL_MS
 *    without use; use moves expiry forward (written at most once a minute,
 *    so reads do not all turn into writes).  Expired rows are removed when
 *    the key opens its next session.
 * 3. Each function runs its own transaction in the tenant; thread-safe.
 */
#ifndef AP_MCP_SESSION_H
#define AP_MCP_SESSION_H

#include <stdbool.h>

#include "core/arena.h"
#include "core/err.h"
#include "store/db.h"

#define AP_MCP_SESSION_ID_LEN 33 /* 32 hex digits + NUL */
#define AP_MCP_SESSION_TTL_MS (24LL * 3600 * 1000)

typedef struct {
    char id[AP_MCP_SESSION_ID_LEN];
    const char *protocol_version; /* arena memory */
    bool initialized;
} ap_mcp_session_t;

/* Does s look like a session id this server hands out? */
bool ap_mcp_session_id_valid(const char *s);

ap_rc ap_mcp_session_create(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                            const char *protocol_version, const char *client_name,
                            const char *client_version, ap_mcp_session_t *out, ap_err_t *err);
/* Finds a live session of key_id and extends it. */
ap_rc ap_mcp_session_get(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                         const char *id, ap_mcp_session_t *out, ap_err_t *err);
ap_rc ap_mcp_session_mark_initialized(ap_db_t *db, ap_arena_t *a, const char *tenant_id,
                                      const char *id, ap_err_t *err);
ap_rc ap_mcp_session_delete(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                            const char *id, ap_err_t *err);

#endif
