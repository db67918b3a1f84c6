/*
 * tools_ext.c - memory and MCP tools of the agent loop, and the memory
 * sections of a task's context (tools_ext.h).
 */
#include "orch/tools_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mcp/client.h"
#include "orch/agent.h"
#include "memory/memory.h"

/* ------------------------------------------------------------- the table */

typedef struct {
    const char *name, *description, *params;
} mem_tool_t;

/* Schemas are what the model sees; the calls adapt them to the memory
 * service (defaults filled in, the task recorded as the source). */
static const mem_tool_t MEM_TOOLS[] = {
    {"remember",
     "Store something worth keeping in your long-term memory (a fact, preference, procedure…).",
     "{\"type\":\"object\",\"properties\":{\"content\":{\"type\":\"string\"},\"memory_type\":"
     "{\"type\":\"string\",\"enum\":[\"fact\",\"experience\",\"skill\",\"preference\","
     "\"relationship\",\"procedure\"]},\"importance\":{\"type\":\"number\",\"minimum\":0,"
     "\"maximum\":1},\"subject\":{\"type\":\"string\"}},\"required\":[\"content\"]}"},
    {"recall", "Search your long-term memory (and memories shared with you) for a query.",
     "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},\"limit\":"
     "{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},\"include_shared\":{\"type\":"
     "\"boolean\"}},\"required\":[\"query\"]}"},
    {"learn_entity",
     "Record an entity (person, company, product, concept…) and what is known of it in the "
     "tenant's knowledge graph.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"description\":"
     "{\"type\":\"string\"},\"entity_type\":{\"type\":\"string\"},\"attributes\":{\"type\":"
     "\"object\"}},\"required\":[\"name\"]}"},
    {"query_knowledge",
     "Look up entities of the knowledge graph by name (a part of it), type or attribute value.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"entity_type\":"
     "{\"type\":\"string\"},\"attribute\":{\"type\":\"string\"},\"value\":{\"type\":"
     "\"string\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}}}"},
};
#define NMEM (int)(sizeof MEM_TOOLS / sizeof MEM_TOOLS[0])

static const mem_tool_t *mem_tool(const char *name) {
    for (int i = 0; i < NMEM; i++)
        if (name && strcmp(MEM_TOOLS[i].name, name) == 0) return &MEM_TOOLS[i];
    return NULL;
}

/* "mcp:<server>/<tool>" as a provider-safe name (tools_ext.h note 2). */
static void model_name(const char *grant, char out[65]) {
    const char *s = grant + 4, *slash = strchr(s, '/');
    char raw[300];
    snprintf(raw, sizeof raw, "mcp__%.*s__%s", slash ? (int)(slash - s) : (int)strlen(s), s,
             slash ? slash + 1 : "");
    size_t n = 0;
    for (const char *p = raw; *p && n < 64; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
}

/* The agent's grants: its deployed version's spec when that version is
 * recorded (as team_view.c reads the rest of it), else its agents row. */
static json_t *granted_tools(ap_tx_t *tx, const char *tenant, const char *agent) {
    ap_rows_t rows;
    ap_err_t e;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent)};
    if (ap_tx_query(tx,
                    "SELECT tools, deployed_version FROM agents WHERE tenant_id = ? AND id = ?", p,
                    2, &rows, &e) ||
        rows.nrows == 0)
        return json_array();
    int64_t dv = ap_rows_int(&rows, 0, "deployed_version", 0);
    ap_orch_agent_spec_t sp;
    if (dv > 0 && !ap_orch_agent_spec(tx, agent, (int)dv, &sp, &e) && json_is_array(sp.tools))
        return json_deep_copy(sp.tools);
    const char *text = ap_rows_get(&rows, 0, "tools");
    json_t *t = json_loads(text ? text : "[]", 0, NULL);
    if (!json_is_array(t)) {
        json_decref(t);
        return json_array();
    }
    return t;
}

json_t *ap_orch_ext_offered(const ap_orch_ext_t *x, ap_tx_t *tx, const char *tenant,
                            const char *agent) {
    json_t *out = json_array();
    if (!x) return out;
    json_t *granted = granted_tools(tx, tenant, agent);
    size_t i;
    json_t *g;
    if (x->mem)
        json_array_foreach(granted, i, g) {
            const mem_tool_t *m = mem_tool(json_string_value(g));
            if (!m) continue;
            json_array_append_new(out, json_pack("{s:s,s:s,s:o,s:s,s:s}", "name", m->name,
                                                 "description", m->description, "parameters",
                                                 json_loads(m->params, 0, NULL), "grant", m->name,
                                                 "kind", "memory"));
        }
    json_t *defs = NULL;
    ap_err_t e;
    if (x->db && !ap_mcp_client_tool_defs(tx, tenant, granted, &defs, &e)) {
        json_array_foreach(defs, i, g) {
            const char *grant = ap_json_str(g, "name");
            if (!grant || strncmp(grant, "mcp:", 4) != 0) continue;
            char mn[65];
            model_name(grant, mn);
            bool dup = false;
            size_t k;
            json_t *o;
            json_array_foreach(out, k, o) if (strcmp(ap_json_str(o, "name"), mn) == 0) dup = true;
            if (dup) continue;
            json_t *schema = json_object_get(g, "input_schema");
            const char *d = ap_json_str(g, "description");
            json_array_append_new(
                out, json_pack("{s:s,s:s,s:o,s:s,s:s}", "name", mn, "description",
                               d && *d ? d : grant, "parameters",
                               json_is_object(schema) ? json_incref(schema)
                                                      : json_pack("{s:s}", "type", "object"),
                               "grant", grant, "kind", "mcp"));
        }
    }
    json_decref(defs);
    json_decref(granted);
    return out;
}

json_t *ap_orch_ext_find(const ap_orch_ext_t *x, ap_tx_t *tx, const char *tenant,
                         const char *agent, const char *name) {
    if (!x || !name) return NULL;
    if (!mem_tool(name) && strncmp(name, "mcp", 3) != 0) return NULL;
    json_t *all = ap_orch_ext_offered(x, tx, tenant, agent), *found = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) {
        if (strcmp(ap_json_str(o, "name"), name) == 0 ||
            strcmp(ap_json_str(o, "grant"), name) == 0) {
            found = json_incref(o);
            break;
        }
    }
    json_decref(all);
    return found;
}

bool ap_orch_ext_side_effect(json_t *found) {
    const char *k = ap_json_str(found, "kind");
    return k && strcmp(k, "mcp") == 0;
}

/* ------------------------------------------------------------------ calls */

static json_t *error_of(const ap_err_t *e) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s%s%s", e->msg[0] ? e->msg : "failed",
             e->detail[0] ? ": " : "", e->detail, e->hint[0] ? " (" : "", e->hint);
    if (e->hint[0]) strncat(buf, ")", sizeof buf - strlen(buf) - 1);
    return json_pack("{s:s}", "error", buf);
}

/* The MCP CallToolResult as a tool result: the text parts joined as
 * "output", structured content kept. */
static json_t *mcp_result(json_t *r, bool *is_error) {
    ap_buf_t b;
    ap_buf_init(&b, 0);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "content"), i, c) {
        const char *t = ap_json_str(c, "text");
        if (t) ap_buf_printf(&b, "%s%s", b.len ? "\n" : "", t);
    }
    char *text = ap_buf_steal(&b);
    json_t *out = json_pack("{s:s}", "output", text ? text : "");
    free(text);
    json_t *sc = json_object_get(r, "structuredContent");
    if (sc) json_object_set(out, "structured", sc);
    *is_error = json_is_true(json_object_get(r, "isError"));
    return out;
}

static ap_rc call_memory(const ap_orch_ext_t *x, const char *tenant, const char *agent,
                         const char *task, const char *tool, json_t *args, json_t **res,
                         ap_err_t *e) {
    json_t *in = json_deep_copy(args);
    ap_rc rc;
    if (strcmp(tool, "remember") == 0) {
        if (!json_object_get(in, "memory_type"))
            json_object_set_new(in, "memory_type", json_string("fact"));
        if (!json_object_get(in, "source"))
            json_object_set_new(in, "source", json_string("conversation"));
        if (!json_object_get(in, "source_task_id") && task)
            json_object_set_new(in, "source_task_id", json_string(task));
        rc = ap_mem_tool_remember(x->mem, tenant, agent, in, res, e);
    } else if (strcmp(tool, "recall") == 0) {
        rc = ap_mem_tool_recall(x->mem, tenant, agent, in, res, e);
    } else if (strcmp(tool, "learn_entity") == 0) {
        if (!json_object_get(in, "entity_type"))
            json_object_set_new(in, "entity_type", json_string("concept"));
        json_t *d = json_object_get(in, "description");
        if (d) {
            json_t *attrs = json_object_get(in, "attributes");
            if (!json_is_object(attrs)) {
                attrs = json_object();
                json_object_set_new(in, "attributes", attrs);
            }
            json_object_set(attrs, "description", d);
            json_object_del(in, "description");
        }
        rc = ap_mem_tool_learn_entity(x->mem, tenant, agent, in, res, e);
    } else {
        rc = ap_mem_tool_query_knowledge(x->mem, tenant, agent, in, res, e);
    }
    json_decref(in);
    return rc;
}

void ap_orch_ext_call(const ap_orch_ext_t *x, const char *tenant, const char *agent,
                      const char *task, json_t *found, json_t *args, json_t **content,
                      bool *is_error) {
    *content = NULL;
    *is_error = false;
    ap_err_t e = {0};
    json_t *res = NULL;
    const char *kind = ap_json_str(found, "kind"), *grant = ap_json_str(found, "grant");
    ap_rc rc;
    if (kind && strcmp(kind, "memory") == 0 && x->mem) {
        rc = call_memory(x, tenant, agent, task, grant, args, &res, &e);
    } else if (kind && strcmp(kind, "mcp") == 0 && x->db) {
        ap_arena_t *a = ap_arena_new(1024);
        const char *server = NULL, *tool = NULL;
        ap_mcp_tool_ref_parse(a, grant, &server, &tool);
        ap_actor_t actor = {.type = "agent", .id = agent};
        ap_mcp_limits_t lim = {.timeout_ms = x->mcp_timeout_ms ? x->mcp_timeout_ms
                                                               : AP_ORCH_MCP_TIMEOUT_MS,
                               .max_output = x->mcp_max_output};
        json_t *r = NULL;
        rc = server && tool ? ap_mcp_client_call(x->db, x->master_key, tenant, &actor, server,
                                                 tool, args, &lim, &r, &e)
                            : ap_err_set(&e, AP_ERR_INVALID, "invalid-field", "bad tool name",
                                         NULL, "%s", grant);
        if (!rc) res = mcp_result(r, is_error);
        json_decref(r);
        ap_arena_free(a);
    } else {
        rc = ap_err_set(&e, AP_ERR_UNAVAILABLE, "unavailable", "tool unavailable", NULL,
                        "%s is not available on this node", grant ? grant : "tool");
    }
    if (rc) {
        json_decref(res);
        *content = error_of(&e);
        *is_error = true;
        return;
    }
    *content = res ? res : json_object();
}

/* ---------------------------------------------------------------- context */

static void fact_lines(ap_buf_t *b, json_t *facts) {
    size_t i;
    json_t *f;
    json_array_foreach(facts, i, f) {
        const char *name = ap_json_str(f, "name");
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(f, "attributes"), k, v) {
            if (strcmp(k, "description") == 0 && json_is_string(v)) {
                ap_buf_printf(b, "- %s\n", json_string_value(v));
                continue;
            }
            char attr[128];
            snprintf(attr, sizeof attr, "%s", k);
            for (char *p = attr; *p; p++)
                if (*p == '_') *p = ' ';
            char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            ap_buf_printf(b, "- %s %s is %s.\n", name ? name : "", attr,
                          t ? t : json_string_value(v));
            free(t);
        }
        if (json_object_size(json_object_get(f, "attributes")) == 0)
            ap_buf_printf(b, "- %s is a known %s.\n", name ? name : "",
                          ap_json_str(f, "entity_type") ? ap_json_str(f, "entity_type") : "entity");
    }
}

void ap_orch_ext_context(const ap_orch_ext_t *x, const char *tenant, const char *agent,
                         const char *task, const char *objective, ap_buf_t *sys, json_t **used) {
    if (used) *used = NULL;
    if (!x || !x->mem) return;
    ap_orch_ext_hot(x, tenant, agent, task, "user", objective);
    json_t *tc = NULL;
    ap_err_t e = {0};
    if (ap_mem_task_context(x->mem, tenant, agent, objective, AP_ORCH_CONTEXT_MEMORIES, &tc, &e)) {
        ap_log(AP_LOG_WARN, "task context without memory", "{s:s,s:s,s:s}", "task_id",
               task ? task : "", "error", e.msg, "detail", e.detail);
        return;
    }
    json_t *mems = json_object_get(tc, "memories"), *facts = json_object_get(tc, "facts");
    json_t *u = json_pack("{s:[],s:[]}", "memories", "facts");
    size_t i;
    json_t *m;
    if (json_array_size(mems)) {
        ap_buf_puts(sys, "# Recalled memories\n");
        json_array_foreach(mems, i, m) {
            const char *c = ap_json_str(m, "content");
            if (!c) continue;
            ap_buf_printf(sys, "- %s\n", c);
            const char *id = ap_json_str(m, "id");
            if (id) json_array_append_new(json_object_get(u, "memories"), json_string(id));
        }
    }
    if (json_array_size(facts)) {
        ap_buf_puts(sys, "# Knowledge facts\n");
        fact_lines(sys, facts);
        json_array_foreach(facts, i, m) {
            const char *n = ap_json_str(m, "name");
            if (n) json_array_append_new(json_object_get(u, "facts"), json_string(n));
        }
    }
    json_decref(tc);
    if (used)
        *used = u;
    else
        json_decref(u);
}

void ap_orch_ext_hot(const ap_orch_ext_t *x, const char *tenant, const char *agent,
                     const char *task, const char *role, const char *content) {
    if (!x || !x->mem || !task || !content) return;
    ap_mem_hot_t *h = ap_mem_hot(x->mem);
    ap_err_t e;
    if (h) h->push(h, tenant, agent, task, role, content, &e);
}
