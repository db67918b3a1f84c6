/*
 * tools.c - the MCP tool table and the calls behind it (see tools.h).
 *
 * 1. list_agents, get_task and create_task call the orch services
 *    (orch/agent.h, orch/task.h): the same rules, rows and audit entries
 *    as the REST API.  create_task takes the task service's own field
 *    table, so its schema is the REST body's; the new task is handed to
 *    this node's runner after commit (over stdio there is none: the
 *    serving nodes' queue scan picks it up within --task-scan-ms).
 * 2. remember and recall call the memory service (memory/memory.h), which
 *    runs its own transactions (it updates its vector index after commit):
 *    the mcp.tool.call entry follows in a transaction of its own, after the
 *    service's own audit entry.  learn_entity and query_knowledge call the
 *    knowledge graph (memory/graph.h) in the tool's transaction.
 * 3. The agent-to-agent tools (delegate_to_agent, query_agent,
 *    escalate_to_supervisor) call the delegation service
 *    (orch/delegation.h) for a caller outside any task (the loop has its
 *    own for agents inside one).  query_agent commits its query task in a
 *    transaction of its own, hands it to this node's runner and waits for
 *    the answer on this thread (bounded by timeout_ms).
 */
#include "mcp/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/log.h"
#include "core/time.h"
#include "memory/graph.h"
#include "memory/memory.h"
#include "orch/agent.h"
#include "orch/delegation.h"
#include "orch/runner.h"
#include "orch/task.h"

/* ---- inputs ------------------------------------------------------------ */

static const char *const agent_statuses[] = {"draft",   "validated", "deployed",
                                             "running", "paused",    "retired", NULL};
static const char *const priorities[] = {"critical", "high", "normal", "low", "background", NULL};

static const ap_jfield_t list_agents_f[] = {
    {"status", AP_JT_STRING, false, false, agent_statuses, 0, 0, 0},
    {"limit", AP_JT_INT, false, false, NULL, 0, 1, 200},
    {"cursor", AP_JT_STRING, false, false, NULL, 36, 0, 0},
    AP_JFIELDS_END,
};
static const char *const list_agents_d[] = {
    "only agents in this lifecycle status",
    "how many agents to return (1-200, default 50)",
    "next_cursor of the previous page",
};

static const ap_jfield_t get_task_f[] = {
    {"task_id", AP_JT_STRING, true, false, NULL, 36, 0, 0},
    AP_JFIELDS_END,
};
static const char *const get_task_d[] = {"the task's id (a UUID)"};

/* create_task takes the task service's body as it is */
#define create_task_f ap_orch_task_create_fields
static const char *const create_task_d[] = {
    "id (or name) of the deployed agent that is to do the task; or give group_id",
    "id of a team: its lead agent takes the task and delegates",
    "what the agent is to achieve, in plain words",
    "a label for the kind of task (default general)",
    "scheduling priority (default normal)",
    "facts the agent may use, as a JSON object",
    "park the result for a person's approval before it completes",
    "most model/tool steps the task may take",
    "most tokens the task may spend",
    "wall-clock limit in seconds",
};

static const ap_jfield_t delegate_f[] = {
    {"agent_id", AP_JT_STRING, true, false, NULL, 36, 0, 0},
    {"objective", AP_JT_STRING, true, false, NULL, 8000, 0, 0},
    {"parent_task_id", AP_JT_STRING, false, false, NULL, 36, 0, 0},
    {"priority", AP_JT_STRING, false, false, priorities, 0, 0, 0},
    {"from_agent_id", AP_JT_STRING, false, false, NULL, 36, 0, 0},
    AP_JFIELDS_END,
};
static const char *const delegate_d[] = {
    "the agent to hand the work to",
    "what that agent is to achieve",
    "the task this work is part of (it becomes a subtask of it)",
    "scheduling priority (default: the parent's, else normal)",
    "the agent delegating: its relationships must allow it (supervises, delegates_to)",
};

static const ap_jfield_t query_agent_f[] = {
    {"agent_id", AP_JT_STRING, true, false, NULL, 36, 0, 0},
    {"question", AP_JT_STRING, true, false, NULL, 4000, 0, 0},
    {"timeout_ms", AP_JT_INT, false, false, NULL, 0, 100, AP_ORCH_QUERY_MAX_TIMEOUT_MS},
    AP_JFIELDS_END,
};
static const char *const query_agent_d[] = {
    "the agent to ask (id or name)", "the question",
    "how long to wait for the answer (default 30000 ms); the task goes on after it"};

static const ap_jfield_t escalate_f[] = {
    {"task_id", AP_JT_STRING, true, false, NULL, 36, 0, 0},
    {"reason", AP_JT_STRING, true, false, NULL, 4000, 0, 0},
    AP_JFIELDS_END,
};
static const char *const escalate_d[] = {"the task to escalate",
                                         "why the supervisor is needed"};

static const ap_jfield_t remember_f[] = {
    {"agent_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"content", AP_JT_STRING, true, false, NULL, 16384, 0, 0},
    {"memory_type", AP_JT_STRING, true, false, ap_mem_types, 0, 0, 0},
    {"importance", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"source", AP_JT_STRING, false, false, ap_mem_sources, 0, 0, 0},
    {"subject", AP_JT_STRING, false, true, NULL, 200, 0, 0},
    {"expires_at", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    AP_JFIELDS_END,
};
static const char *const remember_d[] = {
    "whose memory (an agent id)",
    "what to remember",
    "fact, experience, skill, preference, relationship or procedure",
    "0 (trivial) to 1 (vital); default 0.5",
    "where it came from (default user_feedback)",
    "what or whom it is about",
    "RFC 3339 time after which it is forgotten",
};

static const ap_jfield_t recall_f[] = {
    {"agent_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"query", AP_JT_STRING, true, false, NULL, 16384, 0, 0},
    {"limit", AP_JT_INT, false, false, NULL, 0, 1, 100},
    {"types", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    {"min_importance", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"include_shared", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};
static const char *const recall_d[] = {
    "whose memories (an agent id)",
    "what to look for, in plain words",
    "how many memories (1-100)",
    "only these memory types (array of strings)",
    "only memories at least this important",
    "include memories other agents shared with this one",
};

/* learn_entity takes the knowledge graph's own field table */
#define learn_entity_f ap_graph_learn_fields
static const char *const learn_entity_d[] = {
    "the entity's kind (person, company, product …)",
    "its name",
    "facts about it as a JSON object of attribute → value",
    "how sure, 0-1",
    "RFC 3339 time the facts were observed (default now)",
    "relations: [{relation_type, to_entity_id | to: {entity_type, name}}]",
    "the agent that learned it",
};

static const ap_jfield_t query_knowledge_f[] = {
    {"name", AP_JT_STRING, false, false, NULL, 500, 0, 0},
    {"entity_type", AP_JT_STRING, false, false, NULL, 100, 0, 0},
    {"attribute", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"value", AP_JT_STRING, false, false, NULL, 2000, 0, 0},
    {"as_of", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"limit", AP_JT_INT, false, false, NULL, 0, 1, 500},
    {"neighbors_of", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    AP_JFIELDS_END,
};
static const char *const query_knowledge_d[] = {
    "part of the entity's name",
    "only entities of this kind",
    "only entities with this attribute",
    "… whose attribute has this value",
    "RFC 3339 time to read the facts as of (default now)",
    "how many entities (1-500)",
    "instead: the neighbours of this entity id",
};

/* ---- handlers ---------------------------------------------------------- */

static ap_rc list_agents(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                         ap_err_t *err) {
    const char *cursor = ap_json_str(args, "cursor");
    if (cursor && !ap_uuid_valid(cursor))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid cursor",
                          "pass next_cursor from the previous page unchanged",
                          "cursor \"%.36s\" is not one this list returned", cursor);
    json_t *items = NULL;
    const char *next = NULL;
    ap_rc rc = ap_orch_agent_list(tx, c->tenant_id, ap_json_str(args, "status"), cursor,
                                  (int)ap_json_int(args, "limit", 50), &items, &next, err);
    if (rc) return rc;
    *out = json_pack("{s:o,s:o}", "agents", items, "next_cursor", next ? json_string(next) : json_null());
    return AP_OK;
}

static ap_rc get_task(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                      ap_err_t *err) {
    const char *id = ap_json_str(args, "task_id");
    if (!ap_uuid_valid(id))
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "task not found",
                          "check the task id (create_task returns it)",
                          "no task with id \"%.36s\" in this tenant", id);
    return ap_orch_task_get(tx, c->tenant_id, id, out, err);
}

static ap_rc create_task(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                         ap_err_t *err) {
    ap_orch_wake_t *wake = ap_arena_calloc(ap_tx_arena(tx), sizeof *wake);
    ap_rc rc = ap_orch_task_create(tx, c->tenant_id, c->actor, args, out, wake, err);
    if (!rc) c->after_commit->wake = wake;
    return rc;
}

static ap_rc delegate(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                      ap_err_t *err) {
    ap_orch_wake_t *wake = ap_arena_calloc(ap_tx_arena(tx), sizeof *wake);
    ap_rc rc = ap_orch_delegate(tx, c->tenant_id, c->actor, args, out, wake, err);
    if (!rc) c->after_commit->wake = wake;
    return rc;
}

static ap_rc escalate(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                      ap_err_t *err) {
    ap_orch_wake_t *wake = ap_arena_calloc(ap_tx_arena(tx), sizeof *wake);
    ap_rc rc = ap_orch_escalate(tx, c->tenant_id, c->actor, ap_json_str(args, "task_id"),
                                ap_json_str(args, "reason"), out, wake, err);
    if (!rc) c->after_commit->wake = wake;
    return rc;
}

/* query_agent: the query task is created and committed here, handed to
 * this node's runner, then waited for (blocking this thread up to
 * timeout_ms; delegation.h). */
static ap_rc query_agent(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                         ap_err_t *err) {
    (void)tx;
    ap_arena_t *a = ap_arena_new(4096);
    ap_orch_wake_t wake = {0};
    json_t *task = NULL;
    ap_tx_t *t;
    ap_rc rc = ap_db_begin(c->db, c->tenant_id, AP_TX_WRITE, a, &t, err);
    if (!rc) {
        rc = ap_orch_query_start(t, c->tenant_id, c->actor, ap_json_str(args, "agent_id"),
                                 ap_json_str(args, "question"), &task, &wake, err);
        if (!rc) rc = ap_tx_commit(t, err);
        else ap_tx_rollback(t);
    }
    if (!rc && c->runner) ap_orch_runner_wake(c->runner, c->tenant_id, &wake);
    char id[40] = "";
    if (!rc) snprintf(id, sizeof id, "%s", ap_json_str(task, "id"));
    json_decref(task);
    ap_arena_free(a);
    if (rc) return rc;
    return ap_orch_query_wait(c->db, c->tenant_id, id, (int)ap_json_int(args, "timeout_ms", 0),
                              out, err);
}

static ap_rc no_memory(ap_err_t *err) {
    return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "memory service unavailable", "retry later",
                      "this process has no memory service");
}

/* remember and recall run in the memory service's own transactions (it
 * updates its index after commit); tx is NULL for them. */
static ap_rc remember(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                      ap_err_t *err) {
    (void)tx;
    if (!c->memory) return no_memory(err);
    return ap_mem_remember(c->memory, NULL, c->tenant_id, c->actor, ap_json_str(args, "agent_id"),
                           args, out, err);
}

static ap_rc recall(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                    ap_err_t *err) {
    (void)tx;
    if (!c->memory) return no_memory(err);
    return ap_mem_recall(c->memory, NULL, c->tenant_id, ap_json_str(args, "agent_id"), args, out,
                         err);
}

static ap_rc learn_entity(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                          ap_err_t *err) {
    return ap_graph_learn(tx, c->tenant_id, c->actor, ap_json_str(args, "source_agent_id"), args,
                          out, err);
}

static ap_rc query_knowledge(ap_tx_t *tx, const ap_mcp_caller_t *c, json_t *args, json_t **out,
                             ap_err_t *err) {
    return ap_graph_query(tx, c->tenant_id, args, out, err);
}

/* ---- the table --------------------------------------------------------- */

#define FIELDS(x) x##_f, x##_d

const ap_mcp_tool_t ap_mcp_tools[] = {
    {"list_agents", "List agents",
     "Lists the agents of your tenant with their role, capabilities and lifecycle status "
     "(paged: pass next_cursor back as cursor).",
     FIELDS(list_agents), AP_PERM_AGENT_READ, false, list_agents},
    {"get_task", "Get a task",
     "Returns one task: its status (queued, thinking, executing, waiting_input, delegated, "
     "reviewing, completed, failed, cancelled), output, confidence, tokens and cost.",
     FIELDS(get_task), AP_PERM_TASK_READ, false, get_task},
    {"create_task", "Create a task",
     "Queues a task for a deployed agent; the agent works on it in the background. Returns "
     "the task id to follow with get_task.",
     FIELDS(create_task), AP_PERM_TASK_WRITE, true, create_task},
    {"delegate_to_agent", "Delegate to an agent",
     "Hands work to an agent as a new task: a subtask of parent_task_id when given; with "
     "from_agent_id, only if that agent may delegate to it. Returns the task.",
     FIELDS(delegate), AP_PERM_TASK_WRITE, true, delegate},
    {"query_agent", "Ask an agent",
     "Asks an agent a question (a one-shot task of type query) and waits for its answer, up "
     "to timeout_ms; returns the answer and its confidence.",
     FIELDS(query_agent), AP_PERM_TASK_WRITE, true, query_agent, true},
    {"escalate_to_supervisor", "Escalate to the supervisor",
     "Hands a waiting or queued task up to its agent's supervisor, with the reason; the "
     "supervisor takes it up with a fresh context.",
     FIELDS(escalate), AP_PERM_TASK_WRITE, true, escalate},
    {"remember", "Remember",
     "Stores a memory for an agent (semantic memory: recalled by meaning later).",
     FIELDS(remember), AP_PERM_MEMORY_WRITE, true, remember, true},
    {"recall", "Recall",
     "Finds an agent's memories closest in meaning to a query, ranked by similarity, "
     "importance and recency.",
     FIELDS(recall), AP_PERM_MEMORY_READ, false, recall, true},
    {"learn_entity", "Learn an entity",
     "Adds an entity, or new facts and relations of one, to the tenant's knowledge graph "
     "(facts are kept with their time: older values stay in the history).",
     FIELDS(learn_entity), AP_PERM_MEMORY_WRITE, true, learn_entity},
    {"query_knowledge", "Query knowledge",
     "Finds entities of the tenant's knowledge graph by name, kind or attribute, or the "
     "neighbours of one.",
     FIELDS(query_knowledge), AP_PERM_MEMORY_READ, false, query_knowledge},
    {NULL, NULL, NULL, NULL, NULL, AP_PERM_NONE, false, NULL},
};

/* ---- schema, list, call ------------------------------------------------ */

json_t *ap_mcp_tool_schema(const ap_mcp_tool_t *t) {
    json_t *props = json_object(), *req = json_array();
    for (int i = 0; t->fields[i].name; i++) {
        const ap_jfield_t *f = &t->fields[i];
        json_t *p = json_pack("{s:s}", "type", ap_jtype_name(f->type));
        if (t->field_docs && t->field_docs[i])
            json_object_set_new(p, "description", json_string(t->field_docs[i]));
        if (f->type == AP_JT_STRING && !f->enums)
            json_object_set_new(p, "maxLength", json_integer((json_int_t)(f->max_len ? f->max_len : 4096)));
        if (f->type == AP_JT_STRING) {
            if (f->enums) {
                json_t *e = json_array();
                for (const char *const *s = f->enums; *s; s++) json_array_append_new(e, json_string(*s));
                json_object_set_new(p, "enum", e);
            }
        }
        if ((f->type == AP_JT_INT || f->type == AP_JT_NUMBER) && f->min < f->max) {
            json_object_set_new(p, "minimum", f->type == AP_JT_INT ? json_integer((json_int_t)f->min) : json_real(f->min));
            json_object_set_new(p, "maximum", f->type == AP_JT_INT ? json_integer((json_int_t)f->max) : json_real(f->max));
        }
        json_object_set_new(props, f->name, p);
        if (f->required) json_array_append_new(req, json_string(f->name));
    }
    json_t *s = json_pack("{s:s,s:o,s:b}", "type", "object", "properties", props,
                          "additionalProperties", 0);
    if (json_array_size(req)) json_object_set_new(s, "required", req);
    else json_decref(req);
    return s;
}

const ap_mcp_tool_t *ap_mcp_tool_find(const char *name) {
    for (const ap_mcp_tool_t *t = ap_mcp_tools; t->name; t++)
        if (t->fn && strcmp(t->name, name) == 0) return t;
    return NULL;
}

json_t *ap_mcp_tools_list(void) {
    json_t *arr = json_array();
    for (const ap_mcp_tool_t *t = ap_mcp_tools; t->name; t++) {
        if (!t->fn) continue;
        json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:{s:s,s:b}}", "name", t->name, "title", t->title,
                              "description", t->description, "inputSchema", ap_mcp_tool_schema(t),
                              "annotations", "title", t->title, "readOnlyHint", !t->writes);
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "tools", arr);
}

static json_t *text_result(const char *text, bool is_error, json_t *structured) {
    json_t *r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", text,
                          "isError", is_error);
    if (structured) json_object_set_new(r, "structuredContent", structured);
    return r;
}

static json_t *error_result(const ap_err_t *err) {
    char text[1200];
    if (err->rc == AP_ERR_INTERNAL || err->rc == AP_ERR_IO) {
        ap_log(AP_LOG_ERROR, "mcp tool call failed", "{s:s,s:s}", "error", err->msg, "detail",
               err->detail);
        snprintf(text, sizeof text, "error: the platform could not complete the call; retry later");
    }
    else
        snprintf(text, sizeof text, "error: %s: %s%s%s", err->msg[0] ? err->msg : ap_rc_name(err->rc),
                 err->detail, err->hint[0] ? "; " : "", err->hint);
    return text_result(text, true, NULL);
}

/* The audit entry of a call that did not go through (its own transaction). */
static void audit_outcome(const ap_mcp_caller_t *c, ap_arena_t *a, const ap_mcp_tool_t *t,
                          const char *outcome, const ap_err_t *why) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    json_t *changes = json_pack("{s:s,s:s,s:s}", "tool", t->name, "permission",
                                ap_perm_name(t->perm), "error", why->type[0] ? why->type : ap_rc_type(why->rc));
    ap_audit_event_t ev = {"mcp.tool.call", "mcp_tool", t->name, outcome, changes};
    ap_rc rc = ap_db_begin(c->db, c->tenant_id, AP_TX_WRITE, a, &tx, &err);
    if (!rc) rc = ap_audit_append(tx, c->tenant_id, c->actor, &ev, NULL, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(changes);
    (void)rc; /* the call's answer stands; a failed audit write is logged by the store */
}

json_t *ap_mcp_tool_call(const ap_mcp_caller_t *c, ap_arena_t *a, const ap_mcp_tool_t *t,
                         json_t *args) {
    ap_err_t err = {0};
    ap_mcp_after_commit_t ac = {0};
    ap_mcp_caller_t call = *c;
    call.after_commit = &ac;
    c = &call;
    if (!ap_policy_allows(c->role, t->perm)) {
        ap_err_set(&err, AP_ERR_DENIED, "forbidden", "permission denied",
                   "use an API key whose role has that permission",
                   "tool %s needs permission %s; role %s lacks it", t->name, ap_perm_name(t->perm),
                   ap_role_name(c->role));
        audit_outcome(c, a, t, "denied", &err);
        return error_result(&err);
    }
    if (ap_json_check(args, t->fields, &err)) {
        audit_outcome(c, a, t, "failure", &err);
        return error_result(&err);
    }
    ap_tx_t *tx = NULL;
    json_t *out = NULL;
    ap_rc rc = AP_OK;
    if (t->own_tx) { /* the service writes its change (and its audit) itself */
        rc = t->fn(NULL, c, args, &out, &err);
        if (rc) {
            json_decref(out);
            audit_outcome(c, a, t, "failure", &err);
            return error_result(&err);
        }
    }
    /* a write transaction even for reading tools: the audit entry is written in it */
    if (!rc) rc = ap_db_begin(c->db, c->tenant_id, AP_TX_WRITE, a, &tx, &err);
    if (!rc && !t->own_tx) rc = t->fn(tx, c, args, &out, &err);
    if (!rc) {
        json_t *changes = json_pack("{s:s,s:s}", "tool", t->name, "permission", ap_perm_name(t->perm));
        ap_audit_event_t ev = {"mcp.tool.call", "mcp_tool", t->name, "success", changes};
        rc = ap_audit_append(tx, c->tenant_id, c->actor, &ev, NULL, &err);
        json_decref(changes);
    }
    if (!rc) rc = ap_tx_commit(tx, &err);
    if (!rc && c->after_commit->wake && c->runner)
        ap_orch_runner_wake(c->runner, c->tenant_id, c->after_commit->wake);
    c->after_commit->wake = NULL;
    if (rc) {
        json_decref(out);
        if (tx) ap_tx_rollback(tx);
        audit_outcome(c, a, t, "failure", &err);
        return error_result(&err);
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_t *r = text_result(text ? text : "{}", false, out);
    free(text);
    return r;
}
