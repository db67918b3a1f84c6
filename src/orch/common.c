/*
 * common.c - helpers shared by the orch modules (see common.h).
 */
#include "orch/common.h"

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
