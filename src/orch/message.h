/*
 * message.h - messages between agents (and to the people watching):
 * request | response | handoff | escalation | update | question |
 * approval_request.  to_agent_id NULL is a broadcast to the group.
 *
 * 1. Each message appends a message.created event in its transaction.
 * 2. People post messages through the API (from_agent_id NULL unless
 *    given); the runner posts the agents' messages.
 */
#ifndef AP_ORCH_MESSAGE_H
#define AP_ORCH_MESSAGE_H

#include <jansson.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

extern const ap_jfield_t ap_orch_message_create_fields[];
extern const char *const ap_orch_message_types[];

typedef struct {
    const char *group_id, *task_id, *from_agent_id, *to_agent_id; /* or NULL */
    const char *type;
    json_t *content; /* borrowed; NULL: {} */
    const char *reasoning;
    bool requires_response;
    const char *response_deadline;
} ap_orch_msg_t;

/* Writes a message; *id_out (optional, 37 bytes) gets its id. */
ap_rc ap_orch_message_add(ap_tx_t *tx, const char *tenant_id, const ap_orch_msg_t *m,
                          char *id_out, ap_err_t *err);
/* From a request body (ap_orch_message_create_fields); checks the ids. */
ap_rc ap_orch_message_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                             json_t *in, json_t **out, ap_err_t *err);
/* task_id NULL: tenant-wide.  Oldest first, cursor = id. */
ap_rc ap_orch_message_list(ap_tx_t *tx, const char *tenant_id, const char *task_id,
                           const char *after, int limit, json_t **out, const char **next,
                           ap_err_t *err);

#endif
