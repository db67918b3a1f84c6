/*
 * tenant.c - tenant lifecycle and entitlements.
 *
 * 1. The slug is derived from the name when not given (lowercase letters,
 *    digits and single dashes) and is unique across the platform.
 * 2. Status changes are guarded in SQL (WHERE status IN …) so two racing
 *    requests cannot both succeed from the same state.
 */
#include "tenant/tenant.h"

#include <ctype.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"

static const char *const plans[] = {"free", "team", "business", "enterprise", NULL};

#define ENT_FIELDS                                                                           \
    {"max_agents", AP_JT_INT, false, false, NULL, 0, 0, 1000000},                           \
        {"max_agent_groups", AP_JT_INT, false, false, NULL, 0, 0, 1000000},                 \
        {"monthly_token_limit", AP_JT_INT, false, false, NULL, 0, 0, 1e15},                 \
        {"storage_limit_gb", AP_JT_INT, false, false, NULL, 0, 0, 1000000},                 \
        {"max_concurrent_tasks", AP_JT_INT, false, false, NULL, 0, 0, 10000},              \
        {"task_weight", AP_JT_INT, false, false, NULL, 0, 1, 100}

const ap_jfield_t ap_tenant_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    {"slug", AP_JT_STRING, false, false, NULL, 63, 0, 0},
    {"plan", AP_JT_STRING, false, false, plans, 0, 0, 0},
    ENT_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_tenant_update_fields[] = {
    {"name", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"plan", AP_JT_STRING, false, false, plans, 0, 0, 0},
    ENT_FIELDS,
    AP_JFIELDS_END,
};

static const char *const ent_names[] = {"max_agents", "max_agent_groups", "monthly_token_limit",
                                        "storage_limit_gb", "max_concurrent_tasks", "task_weight",
                                        NULL};

#define TENANT_COLS                                                                         \
    "id, name, slug, plan, status, max_agents, max_agent_groups, monthly_token_limit,"      \
    " storage_limit_gb, max_concurrent_tasks, task_weight, created_at, updated_at, suspended_at, deleted_at"

static json_t *tenant_json(const ap_rows_t *r, int i) {
    json_t *o = ap_rows_json(r, i, ent_names);
    json_t *ent = json_object();
    for (const char *const *e = ent_names; *e; e++) {
        json_object_set(ent, *e, json_object_get(o, *e));
        json_object_del(o, *e);
    }
    json_object_set_new(o, "entitlements", ent);
    return o;
}

static ap_rc not_found(ap_err_t *err, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "tenant not found", "check the tenant id",
                      "no tenant with id \"%s\"", id);
}

static bool slug_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 2 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static char *slugify(ap_arena_t *a, const char *name) {
    size_t n = strlen(name);
    char *s = ap_arena_alloc(a, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n && o < 63; i++) {
        unsigned char c = (unsigned char)name[i];
        if (isalnum(c) && c < 0x80)
            s[o++] = (char)tolower(c);
        else if (o > 0 && s[o - 1] != '-')
            s[o++] = '-';
    }
    while (o > 0 && s[o - 1] == '-') o--;
    s[o] = '\0';
    return s;
}

ap_rc ap_tenant_create(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                       ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *name = ap_json_str(in, "name");
    const char *slug = ap_json_str(in, "slug");
    if (!slug) slug = slugify(a, name);
    if (!slug_ok(slug))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid slug",
                          "use 2-63 lowercase letters, digits and dashes, e.g. acme-corp",
                          "slug \"%.63s\"", slug);
    if (strcmp(slug, "platform") == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "slug is reserved",
                          "choose another slug", "slug \"platform\" is reserved");
    const char *plan = ap_json_str(in, "plan");
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(id),
                    AP_VTEXT(name),
                    AP_VTEXT(slug),
                    AP_VTEXT(plan ? plan : "free"),
                    AP_VINT(ap_json_int(in, "max_agents", 10)),
                    AP_VINT(ap_json_int(in, "max_agent_groups", 5)),
                    AP_VINT(ap_json_int(in, "monthly_token_limit", 1000000)),
                    AP_VINT(ap_json_int(in, "storage_limit_gb", 10)),
                    AP_VINT(ap_json_int(in, "max_concurrent_tasks", 0)),
                    AP_VINT(ap_json_int(in, "task_weight", 1)),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    ap_rows_t rows;
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO tenants (id, name, slug, plan, max_agents, max_agent_groups,"
                           " monthly_token_limit, storage_limit_gb, max_concurrent_tasks, task_weight,"
                           " created_at, updated_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING " TENANT_COLS,
                           p, 12, &rows, err);
    if (rc == AP_ERR_CONFLICT)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "slug already in use",
                          "choose another slug", "a tenant with slug \"%s\" exists", slug);
    if (rc) return rc;
    *out = tenant_json(&rows, 0);
    ap_audit_event_t ev = {"tenant.create", "tenant", id, "success", *out};
    rc = ap_audit_append(tx, id, actor, &ev, NULL, err);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

ap_rc ap_tenant_list(ap_tx_t *tx, const char *status, const char *after, int limit, json_t **out,
                     const char **next, ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc;
    if (status) {
        ap_val_t p[] = {AP_VTEXT(AP_NIL_UUID), AP_VTEXT(after ? after : ""), AP_VTEXT(status),
                        AP_VINT(limit + 1)};
        rc = ap_tx_query(tx,
                         "SELECT " TENANT_COLS " FROM tenants WHERE id <> ? AND id > ?"
                         " AND status = ? ORDER BY id LIMIT ?",
                         p, 4, &rows, err);
    } else {
        ap_val_t p[] = {AP_VTEXT(AP_NIL_UUID), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
        rc = ap_tx_query(tx,
                         "SELECT " TENANT_COLS " FROM tenants WHERE id <> ? AND id > ?"
                         " AND status <> 'deleted' ORDER BY id LIMIT ?",
                         p, 3, &rows, err);
    }
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, tenant_json, "id", next);
    return AP_OK;
}

static ap_rc fetch(ap_tx_t *tx, const char *id, ap_rows_t *rows, ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(AP_NIL_UUID)};
    ap_rc rc = ap_tx_query(tx, "SELECT " TENANT_COLS " FROM tenants WHERE id = ? AND id <> ?", p,
                           2, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : not_found(err, id);
}

ap_rc ap_tenant_get(ap_tx_t *tx, const char *id, json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch(tx, id, &rows, err);
    if (rc) return rc;
    *out = tenant_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_tenant_update(ap_tx_t *tx, const ap_actor_t *actor, const char *id, json_t *in,
                       json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch(tx, id, &rows, err);
    if (rc) return rc;
    if (strcmp(ap_rows_get(&rows, 0, "status"), "deleted") == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "tenant is deleted",
                          "a deleted tenant cannot be changed", "tenant \"%s\"", id);
    const char *name = ap_json_str(in, "name");
    const char *plan = ap_json_str(in, "plan");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    /* COALESCE keeps what the request leaves out. */
    ap_val_t p[] = {
        AP_VTEXT(name),
        AP_VTEXT(plan),
        ap_json_has(in, "max_agents") ? AP_VINT(ap_json_int(in, "max_agents", 0)) : AP_VNULL,
        ap_json_has(in, "max_agent_groups") ? AP_VINT(ap_json_int(in, "max_agent_groups", 0))
                                            : AP_VNULL,
        ap_json_has(in, "monthly_token_limit")
            ? AP_VINT(ap_json_int(in, "monthly_token_limit", 0))
            : AP_VNULL,
        ap_json_has(in, "storage_limit_gb") ? AP_VINT(ap_json_int(in, "storage_limit_gb", 0))
                                            : AP_VNULL,
        ap_json_has(in, "max_concurrent_tasks")
            ? AP_VINT(ap_json_int(in, "max_concurrent_tasks", 0))
            : AP_VNULL,
        ap_json_has(in, "task_weight") ? AP_VINT(ap_json_int(in, "task_weight", 1)) : AP_VNULL,
        AP_VTEXT(now),
        AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "UPDATE tenants SET name = COALESCE(?, name), plan = COALESCE(?, plan),"
                     " max_agents = COALESCE(?, max_agents),"
                     " max_agent_groups = COALESCE(?, max_agent_groups),"
                     " monthly_token_limit = COALESCE(?, monthly_token_limit),"
                     " storage_limit_gb = COALESCE(?, storage_limit_gb),"
                     " max_concurrent_tasks = COALESCE(?, max_concurrent_tasks),"
                     " task_weight = COALESCE(?, task_weight), updated_at = ?"
                     " WHERE id = ? RETURNING " TENANT_COLS,
                     p, 10, &rows, err);
    if (rc) return rc;
    ap_audit_event_t ev = {"tenant.update", "tenant", id, "success", in};
    rc = ap_audit_append(tx, id, actor, &ev, NULL, err);
    if (rc) return rc;
    *out = tenant_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_tenant_transition(ap_tx_t *tx, const ap_actor_t *actor, const char *id, ap_tenant_op op,
                           json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch(tx, id, &rows, err);
    if (rc) return rc;
    const char *from = ap_rows_get(&rows, 0, "status");
    const char *sql, *action, *want;
    switch (op) {
    case AP_TENANT_SUSPEND:
        sql = "UPDATE tenants SET status = 'suspended', suspended_at = ?, updated_at = ?"
              " WHERE id = ? AND status = 'active' RETURNING " TENANT_COLS;
        action = "tenant.suspend";
        want = "active";
        break;
    case AP_TENANT_RESUME:
        sql = "UPDATE tenants SET status = 'active', suspended_at = NULL, updated_at = ?"
              " WHERE id = ? AND status = 'suspended' RETURNING " TENANT_COLS;
        action = "tenant.resume";
        want = "suspended";
        break;
    default:
        sql = "UPDATE tenants SET status = 'deleted', deleted_at = ?, updated_at = ?"
              " WHERE id = ? AND status <> 'deleted' RETURNING " TENANT_COLS;
        action = "tenant.delete";
        want = "active or suspended";
        break;
    }
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p3[] = {AP_VTEXT(now), AP_VTEXT(now), AP_VTEXT(id)};
    ap_val_t pr[] = {AP_VTEXT(now), AP_VTEXT(id)};
    rc = op == AP_TENANT_RESUME ? ap_tx_query(tx, sql, pr, 2, &rows, err)
                                : ap_tx_query(tx, sql, p3, 3, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "invalid-state", "tenant is not in a state for this",
                          "check the tenant's status first", "tenant is %s; this needs %s", from,
                          want);
    json_t *changes = json_pack("{s:s,s:s}", "from", from, "to", ap_rows_get(&rows, 0, "status"));
    ap_audit_event_t ev = {action, "tenant", id, "success", changes};
    rc = ap_audit_append(tx, id, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) return rc;
    *out = tenant_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_tenant_purge(ap_tx_t *tx, const ap_actor_t *actor, int retention_days, json_t **purged,
                      ap_err_t *err) {
    char cutoff[AP_TIME_LEN];
    ap_time_format(ap_now_ms() - (int64_t)retention_days * 86400000, cutoff);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(cutoff)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT id, slug FROM tenants WHERE status = 'deleted'"
                           " AND deleted_at <= ? ORDER BY id",
                           p, 1, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows && !rc; i++) {
        const char *id = ap_rows_get(&rows, i, "id");
        ap_val_t q[] = {AP_VTEXT(id)};
        /* keys reference users: remove them first; FK cascades cover the rest */
        rc = ap_tx_query(tx, "DELETE FROM api_keys WHERE tenant_id = ?", q, 1, NULL, err);
        if (!rc) rc = ap_tx_query(tx, "DELETE FROM users WHERE tenant_id = ?", q, 1, NULL, err);
        if (!rc)
            rc = ap_tx_query(tx, "DELETE FROM idempotency_keys WHERE tenant_id = ?", q, 1, NULL,
                             err);
        if (!rc) rc = ap_tx_query(tx, "DELETE FROM tenants WHERE id = ?", q, 1, NULL, err);
        json_t *changes = json_pack("{s:s,s:i}", "slug", ap_rows_get(&rows, i, "slug"),
                                    "retention_days", retention_days);
        ap_audit_event_t ev = {"tenant.purge", "tenant", id, "success", changes};
        if (!rc) rc = ap_audit_append(tx, AP_NIL_UUID, actor, &ev, NULL, err);
        json_decref(changes);
        json_array_append_new(arr, json_string(id));
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *purged = arr;
    return AP_OK;
}
