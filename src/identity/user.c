/*
 * user.c - tenant users.
 *
 * 1. Emails are stored lowercased, so "Ann@x.io" and "ann@x.io" are one
 *    user; the unique index (tenant_id, email) settles races.
 * 2. Deleting a user deletes its keys (foreign key cascade) in the same
 *    transaction, and the audit entry records how many.
 */
#include "identity/user.h"

#include <ctype.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"

static const char *const statuses[] = {"active", "disabled", NULL};

const ap_jfield_t ap_user_create_fields[] = {
    {"email", AP_JT_STRING, true, false, NULL, 254, 0, 0},
    {"display_name", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"role", AP_JT_STRING, true, false, ap_role_names, 0, 0, 0},
    {"status", AP_JT_STRING, false, false, statuses, 0, 0, 0},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_user_update_fields[] = {
    {"display_name", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"role", AP_JT_STRING, false, false, ap_role_names, 0, 0, 0},
    {"status", AP_JT_STRING, false, false, statuses, 0, 0, 0},
    AP_JFIELDS_END,
};

#define USER_COLS "id, tenant_id, email, display_name, role, status, created_at, updated_at"

static json_t *user_json(const ap_rows_t *r, int i) {
    return ap_rows_json(r, i, NULL);
}

static ap_rc not_found(ap_err_t *err, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "user not found", "check the user id",
                      "no user with id \"%s\" in this tenant", id);
}

static bool email_ok(const char *e) {
    const char *at = strchr(e, '@');
    if (!at || at == e || strchr(at + 1, '@') || !strchr(at + 1, '.')) return false;
    for (const char *p = e; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) return false;
    return at[1] != '.' && e[strlen(e) - 1] != '.';
}

static ap_rc check_role(const char *tenant_id, ap_role granter, ap_role role, ap_err_t *err) {
    bool platform_tenant = strcmp(tenant_id, AP_NIL_UUID) == 0;
    if ((role == AP_ROLE_PLATFORM_ADMIN) != platform_tenant)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "role not allowed in this tenant",
                          platform_tenant ? "platform users have role platform_admin"
                                          : "platform_admin belongs to the platform",
                          "role %s", ap_role_name(role));
    if (!ap_policy_may_grant(granter, role))
        return ap_err_set(err, AP_ERR_DENIED, "forbidden", "cannot grant this role",
                          "ask a platform administrator", "role %s cannot grant role %s",
                          ap_role_name(granter), ap_role_name(role));
    return AP_OK;
}

ap_rc ap_user_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     ap_role granter, json_t *in, json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    char *email = ap_arena_strdup(a, ap_json_str(in, "email"));
    for (char *p = email; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (!email_ok(email))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid email",
                          "give an address like ann@example.com", "email \"%.254s\"", email);
    ap_role role = ap_role_parse(ap_json_str(in, "role"));
    ap_rc rc = check_role(tenant_id, granter, role, err);
    if (rc) return rc;
    const char *display = ap_json_str(in, "display_name");
    if (!display) display = email;
    const char *status = ap_json_str(in, "status");
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(id),      AP_VTEXT(tenant_id),          AP_VTEXT(email),
                    AP_VTEXT(display), AP_VTEXT(ap_role_name(role)), AP_VTEXT(status ? status : "active"),
                    AP_VTEXT(now),     AP_VTEXT(now)};
    ap_rows_t rows;
    /* ON CONFLICT DO NOTHING: a duplicate leaves the transaction usable on
     * both backends and shows up as zero rows. */
    rc = ap_tx_query(tx,
                     "INSERT INTO users (id, tenant_id, email, display_name, role, status,"
                     " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                     " ON CONFLICT (tenant_id, email) DO NOTHING RETURNING " USER_COLS,
                     p, 8, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "email already in use",
                          "use another email, or update the existing user",
                          "a user with email \"%s\" exists in this tenant", email);
    *out = user_json(&rows, 0);
    json_t *changes = json_pack("{s:s,s:s,s:s}", "email", email, "role", ap_role_name(role),
                                "status", status ? status : "active");
    ap_audit_event_t ev = {"user.create", "user", id, "success", changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

ap_rc ap_user_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                   json_t **out, const char **next, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " USER_COLS " FROM users WHERE tenant_id = ? AND id > ?"
                           " ORDER BY id LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, user_json, "id", next);
    return AP_OK;
}

static ap_rc fetch(ap_tx_t *tx, const char *tenant_id, const char *id, ap_rows_t *rows,
                   ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "SELECT " USER_COLS " FROM users WHERE tenant_id = ? AND id = ?",
                           p, 2, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : not_found(err, id);
}

ap_rc ap_user_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                  ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (rc) return rc;
    *out = user_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_user_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     ap_role granter, const char *id, json_t *in, json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (rc) return rc;
    ap_role old = ap_role_parse(ap_rows_get(&rows, 0, "role"));
    if (!ap_policy_may_grant(granter, old))
        return ap_err_set(err, AP_ERR_DENIED, "forbidden", "cannot change this user",
                          "ask a platform administrator", "role %s cannot manage a %s",
                          ap_role_name(granter), ap_role_name(old));
    const char *role = ap_json_str(in, "role");
    if (role && (rc = check_role(tenant_id, granter, ap_role_parse(role), err))) return rc;
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(ap_json_str(in, "display_name")), AP_VTEXT(role),
                    AP_VTEXT(ap_json_str(in, "status")), AP_VTEXT(now), AP_VTEXT(tenant_id),
                    AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "UPDATE users SET display_name = COALESCE(?, display_name),"
                     " role = COALESCE(?, role), status = COALESCE(?, status), updated_at = ?"
                     " WHERE tenant_id = ? AND id = ? RETURNING " USER_COLS,
                     p, 6, &rows, err);
    if (rc) return rc;
    if (role) {
        /* keys of the user follow a role change: none may exceed it */
        ap_val_t k[] = {AP_VTEXT(role), AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VTEXT("viewer")};
        rc = ap_tx_query(tx,
                         "UPDATE api_keys SET role = ? WHERE tenant_id = ? AND user_id = ?"
                         " AND role <> ?",
                         k, 4, NULL, err);
        if (rc) return rc;
    }
    ap_audit_event_t ev = {"user.update", "user", id, "success", in};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    if (rc) return rc;
    *out = user_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_user_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                     const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM api_keys WHERE tenant_id = ? AND user_id = ?", p, 2,
                           &rows, err);
    if (rc) return rc;
    int64_t keys = rows.changes;
    rc = ap_tx_query(tx, "DELETE FROM users WHERE tenant_id = ? AND id = ?", p, 2, &rows, err);
    if (rc) return rc;
    if (rows.changes == 0) return not_found(err, id);
    json_t *changes = json_pack("{s:I}", "keys_deleted", (json_int_t)keys);
    ap_audit_event_t ev = {"user.delete", "user", id, "success", changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    return rc;
}
