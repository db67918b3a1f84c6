/*
 * session.c - MCP endpoint sessions in the store (see session.h).
 */
#include "mcp/session.h"

#include <string.h>

#include "core/crypto.h"
#include "core/time.h"

#define TOUCH_EVERY_MS (60LL * 1000)

bool ap_mcp_session_id_valid(const char *s) {
    if (!s || strlen(s) != AP_MCP_SESSION_ID_LEN - 1) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static ap_rc not_found(ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "session-not-found", "session not found",
                      "start a new session with initialize",
                      "the Mcp-Session-Id is unknown, expired or was ended");
}

ap_rc ap_mcp_session_create(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                            const char *protocol_version, const char *client_name,
                            const char *client_version, ap_mcp_session_t *out, ap_err_t *err) {
    uint8_t raw[16];
    ap_random(raw, sizeof raw);
    ap_hex(raw, sizeof raw, out->id);
    out->protocol_version = ap_arena_strdup(a, protocol_version);
    out->initialized = false;
    int64_t now_ms = ap_now_ms();
    char now[AP_TIME_LEN], exp[AP_TIME_LEN];
    ap_time_format(now_ms, now);
    ap_time_format(now_ms + AP_MCP_SESSION_TTL_MS, exp);
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, err);
    if (rc) return rc;
    ap_val_t d[] = {AP_VTEXT(tenant_id), AP_VTEXT(key_id), AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "DELETE FROM mcp_sessions WHERE tenant_id = ? AND key_id = ? AND expires_at < ?",
                     d, 3, NULL, err);
    ap_val_t v[] = {AP_VTEXT(out->id),         AP_VTEXT(tenant_id),      AP_VTEXT(key_id),
                    AP_VTEXT(protocol_version), AP_VTEXT(client_name),    AP_VTEXT(client_version),
                    AP_VTEXT(now),              AP_VTEXT(now),            AP_VTEXT(exp)};
    if (!rc)
        rc = ap_tx_query(tx,
                         "INSERT INTO mcp_sessions (id, tenant_id, key_id, protocol_version,"
                         " client_name, client_version, created_at, last_seen_at, expires_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         v, 9, NULL, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    return rc;
}

ap_rc ap_mcp_session_get(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                         const char *id, ap_mcp_session_t *out, ap_err_t *err) {
    if (!ap_mcp_session_id_valid(id)) return not_found(err);
    int64_t now_ms = ap_now_ms();
    char now[AP_TIME_LEN];
    ap_time_format(now_ms, now);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VTEXT(key_id), AP_VTEXT(now)};
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_READ, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "SELECT protocol_version, initialized, last_seen_at FROM mcp_sessions"
                         " WHERE tenant_id = ? AND id = ? AND key_id = ? AND expires_at > ?",
                         p, 4, &rows, err);
    if (rc) return rc;
    ap_tx_rollback(tx);
    if (rows.nrows == 0) return not_found(err);
    memcpy(out->id, id, AP_MCP_SESSION_ID_LEN);
    out->protocol_version = ap_rows_get(&rows, 0, "protocol_version");
    out->initialized = ap_rows_int(&rows, 0, "initialized", 0) != 0;
    int64_t seen = 0;
    if (ap_time_parse(ap_rows_get(&rows, 0, "last_seen_at"), &seen) &&
        now_ms - seen > TOUCH_EVERY_MS) {
        char exp[AP_TIME_LEN];
        ap_time_format(now_ms + AP_MCP_SESSION_TTL_MS, exp);
        ap_val_t u[] = {AP_VTEXT(now), AP_VTEXT(exp), AP_VTEXT(tenant_id), AP_VTEXT(id)};
        rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, err);
        if (!rc)
            rc = ap_tx_query(tx,
                             "UPDATE mcp_sessions SET last_seen_at = ?, expires_at = ?"
                             " WHERE tenant_id = ? AND id = ?",
                             u, 4, NULL, err);
        if (!rc) rc = ap_tx_commit(tx, err);
    }
    return rc;
}

ap_rc ap_mcp_session_mark_initialized(ap_db_t *db, ap_arena_t *a, const char *tenant_id,
                                      const char *id, ap_err_t *err) {
    ap_tx_t *tx;
    ap_val_t u[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx,
                         "UPDATE mcp_sessions SET initialized = 1 WHERE tenant_id = ? AND id = ?"
                         " AND initialized = 0",
                         u, 2, NULL, err);
    if (!rc) rc = ap_tx_commit(tx, err);
    return rc;
}

ap_rc ap_mcp_session_delete(ap_db_t *db, ap_arena_t *a, const char *tenant_id, const char *key_id,
                            const char *id, ap_err_t *err) {
    if (!ap_mcp_session_id_valid(id)) return not_found(err);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VTEXT(key_id)};
    ap_rc rc = ap_db_begin(db, tenant_id, AP_TX_WRITE, a, &tx, err);
    if (!rc)
        rc = ap_tx_query(tx, "DELETE FROM mcp_sessions WHERE tenant_id = ? AND id = ? AND key_id = ?",
                         p, 3, &rows, err);
    if (!rc && rows.changes == 0) {
        ap_tx_rollback(tx);
        return not_found(err);
    }
    if (!rc) rc = ap_tx_commit(tx, err);
    return rc;
}
