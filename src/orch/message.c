/*
 * message.c - agent messages (agent_messages) and their events.
 */
#include "orch/message.h"

#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "events/event.h"
#include "orch/team_view.h"

const char *const ap_orch_message_types[] = {
    "request", "response", "handoff", "escalation", "update", "question", "approval_request", NULL};

const ap_jfield_t ap_orch_message_create_fields[] = {
    {"task_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"group_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"from_agent_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"to_agent_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    {"message_type", AP_JT_STRING, true, false, ap_orch_message_types, 0, 0, 0},
    {"content", AP_JT_OBJECT, true, false, NULL, 0, 0, 0},
    {"reasoning", AP_JT_STRING, false, true, NULL, 8000, 0, 0},
    {"requires_response", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    {"response_deadline", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    AP_JFIELDS_END,
};

#define MSG_COLS                                                                                  \
    "id, tenant_id, group_id, task_id, from_agent_id, to_agent_id, message_type, content,"      \
    " reasoning, requires_response, response_deadline, created_at"

static json_t *msg_json(const ap_rows_t *r, int i) {
    json_t *o = ap_rows_json(r, i, NULL);
    const char *c = ap_rows_get(r, i, "content");
    json_t *cj = c ? json_loads(c, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "content", cj ? cj : json_object());
    json_object_set_new(o, "requires_response",
                        json_boolean(ap_rows_int(r, i, "requires_response", 0) != 0));
    return o;
}

ap_rc ap_orch_message_add(ap_tx_t *tx, const char *tenant_id, const ap_orch_msg_t *m,
                          char *id_out, ap_err_t *err) {
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    char *content = m->content ? json_dumps(m->content, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    ap_val_t p[] = {AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(m->group_id),
                    AP_VTEXT(m->task_id),
                    AP_VTEXT(m->from_agent_id),
                    AP_VTEXT(m->to_agent_id),
                    AP_VTEXT(m->type),
                    AP_VTEXT(content ? content : "{}"),
                    AP_VTEXT(m->reasoning),
                    AP_VINT(m->requires_response ? 1 : 0),
                    AP_VTEXT(m->response_deadline),
                    AP_VTEXT(now)};
    ap_rc rc = ap_tx_query(tx,
                           "INSERT INTO agent_messages (" MSG_COLS
                           ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           p, 12, NULL, err);
    free(content);
    if (rc) return rc;
    json_t *d = json_pack("{s:s,s:s,s:s?,s:s?,s:O?}", "message_id", id, "message_type", m->type,
                          "from_agent_id", m->from_agent_id, "to_agent_id", m->to_agent_id,
                          "content", m->content);
    rc = ap_event_append(tx, tenant_id, "message.created", m->task_id,
                         m->from_agent_id ? m->from_agent_id : m->to_agent_id, m->group_id, d,
                         NULL, err);
    json_decref(d);
    if (!rc && id_out) memcpy(id_out, id, AP_UUID_LEN);
    return rc;
}

static ap_rc check_ref(ap_tx_t *tx, const char *tenant_id, const char *table, const char *field,
                       const char *id, ap_err_t *err) {
    if (!id) return AP_OK;
    if (!ap_uuid_valid(id))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid id",
                          "ids are UUIDs as returned by the API", "%s \"%.64s\" is not a UUID",
                          field, id);
    ap_rows_t r;
    ap_arena_t *a = ap_tx_arena(tx);
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, ap_arena_printf(a, "SELECT 1 FROM %s WHERE tenant_id = ? AND id = ?", table),
                           p, 2, &r, err);
    if (rc) return rc;
    if (!r.nrows)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown id",
                          "give the id of an existing resource of this tenant",
                          "%s \"%s\" names nothing in this tenant", field, id);
    return AP_OK;
}

ap_rc ap_orch_message_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                             json_t *in, json_t **out, ap_err_t *err) {
    ap_orch_msg_t m = {
        .task_id = ap_json_str(in, "task_id"),
        .group_id = ap_json_str(in, "group_id"),
        .from_agent_id = ap_json_str(in, "from_agent_id"),
        .to_agent_id = ap_json_str(in, "to_agent_id"),
        .type = ap_json_str(in, "message_type"),
        .content = json_object_get(in, "content"),
        .reasoning = ap_json_str(in, "reasoning"),
        .requires_response = json_is_true(json_object_get(in, "requires_response")),
        .response_deadline = ap_json_str(in, "response_deadline"),
    };
    int64_t ms;
    if (m.response_deadline && !ap_time_parse(m.response_deadline, &ms))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid time",
                          "use RFC 3339, e.g. 2026-01-31T12:00:00Z",
                          "response_deadline \"%.40s\" is not a time", m.response_deadline);
    /* the tenant's event lock before anything else (events/event.h 4.) */
    ap_rc rc = ap_event_lock(tx, tenant_id, err);
    if (!rc) rc = check_ref(tx, tenant_id, "agent_tasks", "task_id", m.task_id, err);
    if (!rc) rc = check_ref(tx, tenant_id, "agent_groups", "group_id", m.group_id, err);
    if (!rc) rc = check_ref(tx, tenant_id, "agents", "from_agent_id", m.from_agent_id, err);
    if (!rc) rc = check_ref(tx, tenant_id, "agents", "to_agent_id", m.to_agent_id, err);
    if (rc) return rc;
    if (m.task_id && !m.group_id) {
        ap_rows_t r;
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(m.task_id)};
        rc = ap_tx_query(tx, "SELECT group_id FROM agent_tasks WHERE tenant_id = ? AND id = ?", p,
                         2, &r, err);
        if (rc) return rc;
        if (r.nrows) m.group_id = ap_rows_get(&r, 0, "group_id");
    }
    char id[AP_UUID_LEN];
    rc = ap_orch_message_add(tx, tenant_id, &m, id, err);
    if (rc) return rc;
    ap_audit_event_t ev = {.action = "message.create", .resource_type = "agent_message",
                           .resource_id = id, .outcome = "success"};
    json_t *ch = json_pack("{s:s,s:s?}", "message_type", m.type, "task_id", m.task_id);
    ev.changes = ch;
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(ch);
    if (rc) return rc;
    ap_rows_t r;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    rc = ap_tx_query(tx, "SELECT " MSG_COLS " FROM agent_messages WHERE tenant_id = ? AND id = ?",
                     p, 2, &r, err);
    if (rc) return rc;
    *out = msg_json(&r, 0);
    return AP_OK;
}

ap_rc ap_orch_message_list(ap_tx_t *tx, const char *tenant_id, const char *task_id,
                           const char *after, int limit, json_t **out, const char **next,
                           ap_err_t *err) {
    ap_rows_t r;
    ap_rc rc;
    if (task_id) {
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VTEXT(task_id),
                        AP_VINT(limit + 1)};
        rc = ap_tx_query(tx,
                         "SELECT " MSG_COLS " FROM agent_messages WHERE tenant_id = ? AND id > ?"
                         " AND task_id = ? ORDER BY id LIMIT ?",
                         p, 4, &r, err);
    } else {
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
        rc = ap_tx_query(tx,
                         "SELECT " MSG_COLS " FROM agent_messages WHERE tenant_id = ? AND id > ?"
                         " ORDER BY id LIMIT ?",
                         p, 3, &r, err);
    }
    if (rc) return rc;
    *out = ap_rows_page(&r, limit, msg_json, "id", next);
    return AP_OK;
}
