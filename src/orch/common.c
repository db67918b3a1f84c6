/*
 * common.c - helpers shared by the orch modules (see common.h).
 */
#include "orch/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *ap_orch_json_col(const char *s) {
    json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

const char *ap_orch_json_text(ap_tx_t *tx, json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    const char *out = ap_arena_strdup(ap_tx_arena(tx), s ? s : "null");
    free(s);
    return out;
}

ap_rc ap_orch_check_strings(json_t *v, const char *field, size_t max_items, size_t max_len,
                            ap_err_t *err) {
    if (!v || json_is_null(v)) return AP_OK;
    if (!json_is_array(v))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "wrong type for field",
                          "give an array of strings", "field \"%s\" must be an array", field);
    if (json_array_size(v) > max_items)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "too many items",
                          "give fewer items", "%s has %zu items; at most %zu are allowed", field,
                          json_array_size(v), max_items);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        const char *str = json_string_value(s);
        if (!str || !*str || strlen(str) > max_len)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid array item",
                              "give non-empty strings", "%s[%zu] must be a string of 1 to %zu bytes",
                              field, i, max_len);
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_array_get(v, j)), str) == 0)
                return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "duplicate array item",
                                  "list each value once", "%s[%zu] \"%.100s\" repeats %s[%zu]",
                                  field, i, str, field, j);
    }
    return AP_OK;
}

ap_rc ap_orch_audit(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                    const char *action, const char *resource_type, const char *id,
                    json_t *changes, ap_err_t *err) {
    ap_audit_event_t ev = {action, resource_type, id, "success", changes};
    return ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
}

const char *ap_orch_tenant(ap_tx_t *tx) {
    return ap_tx_tenant(tx);
}

ap_rc ap_orch_agent_not_found(const char *id, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent not found",
                      "GET /api/v1/agents lists this tenant's agents",
                      "no agent with id \"%.64s\" in this tenant", id);
}

ap_rc ap_orch_agent_status(ap_tx_t *tx, const char *tenant_id, const char *id,
                           const char **status, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT status FROM agents WHERE id = ? AND tenant_id = COALESCE(?, tenant_id)",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return ap_orch_agent_not_found(id, err);
    if (status) *status = ap_rows_get(&rows, 0, "status");
    return AP_OK;
}

ap_rc ap_orch_group_check(ap_tx_t *tx, const char *tenant_id, const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT id FROM agent_groups WHERE id = ? AND tenant_id = COALESCE(?, tenant_id)",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent group not found",
                          "GET /api/v1/agent-groups lists this tenant's groups",
                          "no agent group with id \"%.64s\" in this tenant", id);
    return AP_OK;
}

ap_rc ap_orch_check_unit(json_t *v, const char *field, ap_err_t *err) {
    if (!v || json_is_null(v)) return AP_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= 0 && d <= 1))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "value out of range",
                          "give a number from 0 to 1", "%s must be a number from 0 to 1", field);
    return AP_OK;
}

ap_rc ap_orch_name_free(ap_tx_t *tx, const ap_orch_kind_t *k, const char *tenant_id,
                        const char *name, const char *id, ap_err_t *err) {
    char sql[160], hint[96];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) AS n FROM %s WHERE tenant_id = ? AND name = ? AND id <> ?", k->table);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(name), AP_VTEXT(id ? id : "")};
    ap_rc rc = ap_tx_query(tx, sql, p, 3, &rows, err);
    if (rc) return rc;
    if (!ap_rows_int(&rows, 0, "n", 0)) return AP_OK;
    snprintf(hint, sizeof hint, "choose another name, or update the existing %s", k->short_noun);
    return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "name taken", hint,
                      "an %s named \"%.200s\" exists in this tenant", k->noun, name);
}

ap_rc ap_orch_check_limit(ap_tx_t *tx, const ap_orch_kind_t *k, const char *tenant_id,
                          ap_err_t *err) {
    char key[80], sql[256], msg[64], hint[160];
    snprintf(key, sizeof key, "%s:%s", k->table, tenant_id);
    ap_rc rc = ap_tx_lock(tx, key, err);
    if (rc) return rc;
    snprintf(sql, sizeof sql,
             "SELECT (SELECT %s FROM tenants WHERE id = ?) AS max,"
             " (SELECT COUNT(*) FROM %s WHERE tenant_id = ?%s) AS n",
             k->limit_col, k->table, k->counted);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx, sql, p, 2, &rows, err);
    if (rc) return rc;
    int64_t max = ap_rows_int(&rows, 0, "max", 0), n = ap_rows_int(&rows, 0, "n", 0);
    if (n < max) return AP_OK;
    snprintf(msg, sizeof msg, "%s limit reached", k->noun);
    snprintf(hint, sizeof hint,
             "%s, or ask a platform administrator to raise the tenant's %s", k->make_room,
             k->limit_col);
    return ap_err_set(err, AP_ERR_DENIED, "limit-exceeded", msg, hint,
                      "%s is %lld and the tenant has %lld %s", k->limit_col, (long long)max,
                      (long long)n, k->counted_as);
}
