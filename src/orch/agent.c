/*
 * agent.c - agents, their immutable versions and their lifecycle.
 *
 * 1. The spec of a version is the whole configurable state of the agent,
 *    stored as one JSON object.  An update reads the latest spec, lays the
 *    given fields over it and checks the result as a whole, so a PATCH can
 *    never produce a version the create call would have refused.
 * 2. Status changes are guarded in SQL (WHERE status = <the status read>)
 *    so two racing requests cannot both move an agent from one state.
 * 3. Write-time checks refuse what is malformed (types, unknown tools,
 *    unknown memory_config keys, an LLM configuration that does not
 *    exist); :validate repeats them against the current state of the
 *    tenant (a configuration may have been deleted since) and checks the
 *    agent's relationships, reporting every problem at once.
 */
#include "orch/agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "llm/catalog.h"
#include "orch/common.h"

static const char *const autonomy_levels[] = {"full", "supervised", "approval_required", NULL};

#define SPEC_FIELDS                                                                   \
    {"description", AP_JT_STRING, false, false, NULL, 4000, 0, 0},                    \
        {"capabilities", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},                   \
        {"personality", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},                   \
        {"llm_config_id", AP_JT_STRING, false, true, NULL, 36, 0, 0},                 \
        {"memory_config", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},                 \
        {"autonomy_level", AP_JT_STRING, false, false, autonomy_levels, 0, 0, 0},     \
        {"max_delegation_depth", AP_JT_INT, false, false, NULL, 0, 0,                 \
         AP_ORCH_MAX_DELEGATION_DEPTH},                                                \
        {"tools", AP_JT_ARRAY, false, false, NULL, 0, 0, 0}

const ap_jfield_t ap_orch_agent_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    {"role", AP_JT_STRING, true, false, NULL, 100, 0, 0},
    SPEC_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_agent_update_fields[] = {
    {"name", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"role", AP_JT_STRING, false, false, NULL, 100, 0, 0},
    SPEC_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_orch_agent_deploy_fields[] = {
    {"version", AP_JT_INT, false, false, NULL, 0, 1, 1e9},
    AP_JFIELDS_END,
};

/* memory_config keys (docs/agents.md). */
static const char *const memory_keys[] = {"embedder", "share_with", "allow_share", "ttl_days",
                                          "recall_limit", NULL};

#define MAX_CAPABILITIES 50
#define MAX_TOOLS 64

#define AGENT_COLS                                                                         \
    "id, tenant_id, name, description, role, capabilities, personality, llm_config_id,"    \
    " memory_config, autonomy_level, max_delegation_depth, tools, status, version,"        \
    " deployed_version, created_at, updated_at"

/* --- rendering --- */

static json_t *agent_json(const ap_rows_t *r, int i) {
    const char *dv = ap_rows_get(r, i, "deployed_version");
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s?,s:o,s:s,s:I,s:o,s:s,s:I,s:o,s:s,s:s}", "id",
        ap_rows_get(r, i, "id"), "tenant_id", ap_rows_get(r, i, "tenant_id"), "name",
        ap_rows_get(r, i, "name"), "description", ap_rows_get(r, i, "description"), "role",
        ap_rows_get(r, i, "role"), "capabilities",
        ap_orch_json_col(ap_rows_get(r, i, "capabilities")), "personality",
        ap_orch_json_col(ap_rows_get(r, i, "personality")), "llm_config_id",
        ap_rows_get(r, i, "llm_config_id"), "memory_config",
        ap_orch_json_col(ap_rows_get(r, i, "memory_config")), "autonomy_level",
        ap_rows_get(r, i, "autonomy_level"), "max_delegation_depth",
        (json_int_t)ap_rows_int(r, i, "max_delegation_depth", 0), "tools",
        ap_orch_json_col(ap_rows_get(r, i, "tools")), "status", ap_rows_get(r, i, "status"),
        "version", (json_int_t)ap_rows_int(r, i, "version", 1), "deployed_version",
        dv ? json_integer(strtoll(dv, NULL, 10)) : json_null(), "created_at",
        ap_rows_get(r, i, "created_at"), "updated_at", ap_rows_get(r, i, "updated_at"));
}

static json_t *version_json(const ap_rows_t *r, int i) {
    return json_pack("{s:s,s:I,s:s,s:o,s:s}", "agent_id", ap_rows_get(r, i, "agent_id"),
                     "version", (json_int_t)ap_rows_int(r, i, "version", 0), "state",
                     ap_rows_get(r, i, "state"), "spec",
                     ap_orch_json_col(ap_rows_get(r, i, "spec")), "created_at",
                     ap_rows_get(r, i, "created_at"));
}

static ap_rc fetch(ap_tx_t *tx, const char *tenant_id, const char *id, ap_rows_t *rows,
                   ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " AGENT_COLS " FROM agents WHERE id = ?"
                           " AND tenant_id = COALESCE(?, tenant_id)",
                           p, 2, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : ap_orch_agent_not_found(id, err);
}

ap_rc ap_orch_agent_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (!rc) *out = agent_json(&rows, 0);
    return rc;
}

/* --- checks --- */

static ap_rc check_llm_config(ap_tx_t *tx, const char *tenant_id, const char *cfg,
                              ap_err_t *err) {
    if (!cfg) return AP_OK;
    bool found = false;
    if (ap_uuid_valid(cfg)) {
        ap_rows_t rows;
        ap_val_t p[] = {AP_VTEXT(cfg), AP_VTEXT(tenant_id)};
        ap_rc rc = ap_tx_query(tx, "SELECT id FROM llm_configs WHERE id = ? AND tenant_id = ?", p,
                               2, &rows, err);
        if (rc) return rc;
        found = rows.nrows > 0;
    }
    if (!found)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown LLM configuration",
                          "give the id of one of GET /api/v1/llm/configs, or null for the "
                          "tenant default",
                          "llm_config_id \"%.64s\" is not an LLM configuration of this tenant",
                          cfg);
    return AP_OK;
}

static ap_rc check_memory(ap_tx_t *tx, const char *tenant_id, json_t *m, ap_err_t *err) {
    if (!json_is_object(m)) return AP_OK;
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        const char *const *k = memory_keys;
        while (*k && strcmp(*k, key) != 0) k++;
        if (!*k)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown memory_config key",
                              "remove the key or correct its spelling (docs/agents.md)",
                              "memory_config.%.64s is not accepted; accepted keys: embedder, "
                              "share_with, allow_share, ttl_days, recall_limit",
                              key);
        const char *why = NULL;
        if (strcmp(key, "embedder") == 0) {
            if (!json_is_string(v)) {
                why = "must be \"builtin\" or an embedding model id of the catalog";
            } else if (strcmp(json_string_value(v), "builtin") != 0) {
                ap_catalog_entry_t e;
                ap_err_t e2 = {0};
                if (ap_catalog_resolve(tx, tenant_id, json_string_value(v), &e, &e2) ||
                    strcmp(e.mode, "embedding") != 0)
                    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown embedder",
                                      "use \"builtin\" or a model of GET "
                                      "/api/v1/llm/models?capability=embedding",
                                      "memory_config.embedder \"%.200s\" is not an embedding "
                                      "model of the catalog",
                                      json_string_value(v));
            }
        } else if (strcmp(key, "share_with") == 0) {
            ap_rc rc = ap_orch_check_strings(v, "memory_config.share_with", 100, 36, err);
            if (rc) return rc;
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                const char *str = json_string_value(s);
                if (strcmp(str, "group") != 0 && !ap_uuid_valid(str))
                    return ap_err_set(err, AP_ERR_INVALID, "invalid-field",
                                      "invalid memory_config.share_with",
                                      "list agent ids, or \"group\" for the agent's groups",
                                      "memory_config.share_with[%zu] \"%.64s\" is neither an "
                                      "agent id nor \"group\"",
                                      i, str);
            }
        } else if (strcmp(key, "allow_share") == 0) {
            if (!json_is_boolean(v)) why = "must be a boolean";
        } else if (strcmp(key, "ttl_days") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 36500)
                why = "must be an integer from 0 (keep forever) to 36500";
        } else if (strcmp(key, "recall_limit") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100)
                why = "must be an integer from 1 to 100";
        }
        if (why)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid memory_config",
                              "see docs/agents.md for memory_config", "memory_config.%s %s", key,
                              why);
    }
    return AP_OK;
}

static ap_rc check_tools(json_t *tools, ap_err_t *err) {
    ap_rc rc = ap_orch_check_strings(tools, "tools", MAX_TOOLS, 300, err);
    if (rc) return rc;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!ap_orch_tool_known(json_string_value(t)))
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown tool",
                              "use delegate_to_agent, query_agent, escalate_to_supervisor, "
                              "complete_task, request_approval, remember, recall, learn_entity, "
                              "query_knowledge, or mcp:<server>/<tool>",
                              "tools[%zu] \"%.100s\" is not a known tool", i,
                              json_string_value(t));
    }
    return AP_OK;
}

static ap_rc check_text(json_t *spec, const char *field, ap_err_t *err) {
    const char *s = ap_json_str(spec, field);
    bool blank = true;
    for (const char *p = s; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') blank = false;
    if (blank)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "empty field",
                          "give a non-blank value", "field \"%s\" is blank", field);
    return AP_OK;
}

/* Checks a whole spec (create input with defaults, or latest + patch). */
static ap_rc check_spec(ap_tx_t *tx, const char *tenant_id, json_t *spec, ap_err_t *err) {
    ap_rc rc = check_text(spec, "name", err);
    if (!rc) rc = check_text(spec, "role", err);
    if (!rc)
        rc = ap_orch_check_strings(json_object_get(spec, "capabilities"), "capabilities",
                                   MAX_CAPABILITIES, 100, err);
    if (!rc) rc = check_tools(json_object_get(spec, "tools"), err);
    if (!rc) rc = check_memory(tx, tenant_id, json_object_get(spec, "memory_config"), err);
    if (!rc) rc = check_llm_config(tx, tenant_id, ap_json_str(spec, "llm_config_id"), err);
    return rc;
}

/* The create input with every default filled in (new reference). */
static json_t *spec_with_defaults(json_t *in) {
    json_t *s = json_pack("{s:s,s:[],s:{},s:n,s:{},s:s,s:i,s:[]}", "description", "",
                          "capabilities", "personality", "llm_config_id", "memory_config",
                          "autonomy_level", "full", "max_delegation_depth", 2, "tools");
    json_object_update(s, in);
    return s;
}

static const ap_orch_kind_t kind = {
    .table = "agents", .noun = "agent", .short_noun = "agent", .limit_col = "max_agents",
    .counted = " AND status <> 'retired'", .counted_as = "agents that are not retired",
    .make_room = "retire an agent"};

/* Mirrors spec into the agents row (INSERT when !update). */
static ap_rc store_agent(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *spec,
                         int version, const char *status, bool update, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(ap_json_str(spec, "name")),
                    AP_VTEXT(ap_json_str(spec, "description")),
                    AP_VTEXT(ap_json_str(spec, "role")),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(spec, "capabilities"))),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(spec, "personality"))),
                    AP_VTEXT(ap_json_str(spec, "llm_config_id")),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(spec, "memory_config"))),
                    AP_VTEXT(ap_json_str(spec, "autonomy_level")),
                    AP_VINT(ap_json_int(spec, "max_delegation_depth", 2)),
                    AP_VTEXT(ap_orch_json_text(tx, json_object_get(spec, "tools"))),
                    AP_VTEXT(status),
                    AP_VINT(version),
                    AP_VTEXT(now),
                    AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VINT(version - 1)};
    if (update) {
        ap_rows_t rows;
        ap_rc rc = ap_tx_query(tx,
                               "UPDATE agents SET name = ?, description = ?, role = ?,"
                               " capabilities = ?, personality = ?, llm_config_id = ?,"
                               " memory_config = ?, autonomy_level = ?, max_delegation_depth = ?,"
                               " tools = ?, status = ?, version = ?, updated_at = ?"
                               " WHERE id = ? AND tenant_id = ? AND version = ?",
                               v, 16, &rows, err);
        if (!rc && rows.changes == 0)
            rc = ap_err_set(err, AP_ERR_CONFLICT, "conflict", "agent changed meanwhile",
                            "read the agent again and retry",
                            "agent \"%s\" got a new version while this one was written", id);
        return rc;
    }
    return ap_tx_query(tx,
                       "INSERT INTO agents (name, description, role, capabilities, personality,"
                       " llm_config_id, memory_config, autonomy_level, max_delegation_depth,"
                       " tools, status, version, updated_at, id, tenant_id, created_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (ap_val_t[]){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
                                    v[10], v[11], v[12], v[13], v[14], AP_VTEXT(now)},
                       16, NULL, err);
}

static ap_rc store_version(ap_tx_t *tx, const char *tenant_id, const char *id, int version,
                           json_t *spec, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VINT(version),
                    AP_VTEXT(ap_orch_json_text(tx, spec)), AP_VTEXT(now)};
    return ap_tx_query(tx,
                       "INSERT INTO agent_versions (tenant_id, agent_id, version, spec, state,"
                       " created_at) VALUES (?, ?, ?, ?, 'draft', ?)",
                       v, 5, NULL, err);
}

ap_rc ap_orch_agent_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    json_t *spec = spec_with_defaults(in);
    ap_rc rc = check_spec(tx, tenant_id, spec, err);
    if (!rc) rc = ap_orch_check_limit(tx, &kind, tenant_id, err);
    if (!rc) rc = ap_orch_name_free(tx, &kind, tenant_id, ap_json_str(spec, "name"), NULL, err);
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    if (!rc) rc = store_agent(tx, tenant_id, id, spec, 1, "draft", false, err);
    if (!rc) rc = store_version(tx, tenant_id, id, 1, spec, err);
    if (!rc) {
        json_t *changes = json_pack("{s:O,s:i}", "spec", spec, "version", 1);
        rc = ap_orch_audit(tx, tenant_id, actor, "agent.create", "agent", id, changes, err);
        json_decref(changes);
    }
    json_decref(spec);
    if (!rc) rc = ap_orch_agent_get(tx, tenant_id, id, out, err);
    return rc;
}

/* The spec of version (0: the latest) into *spec (new reference). */
static ap_rc load_spec(ap_tx_t *tx, const char *tenant_id, const char *id, int version,
                       json_t **spec, const char **state, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VINT(version)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT v.spec, v.state FROM agent_versions v JOIN agents a"
                           " ON a.id = v.agent_id WHERE v.agent_id = ?"
                           " AND a.tenant_id = COALESCE(?, a.tenant_id)"
                           " AND v.version = CASE WHEN ? = 0 THEN a.version ELSE ? END",
                           (ap_val_t[]){p[0], p[1], p[2], p[2]}, 4, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "version not found",
                          "GET /api/v1/agents/{agent_id}/versions lists the versions",
                          "agent \"%.64s\" has no version %d", id, version);
    *spec = ap_orch_json_col(ap_rows_get(&rows, 0, "spec"));
    if (state) *state = ap_rows_get(&rows, 0, "state");
    return AP_OK;
}

ap_rc ap_orch_agent_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (rc) return rc;
    const char *status = ap_rows_get(&rows, 0, "status");
    int version = (int)ap_rows_int(&rows, 0, "version", 1);
    if (strcmp(status, "retired") == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "invalid-transition", "agent is retired",
                          "a retired agent cannot change; create a new agent",
                          "agent \"%s\" is retired", id);
    json_t *spec = NULL;
    rc = load_spec(tx, tenant_id, id, version, &spec, NULL, err);
    if (rc) return rc;
    json_object_update(spec, in);
    rc = check_spec(tx, tenant_id, spec, err);
    if (!rc) rc = ap_orch_name_free(tx, &kind, tenant_id, ap_json_str(spec, "name"), id, err);
    /* a new draft: an agent not yet deployed is a draft again; a deployed
     * one keeps running its deployed version */
    bool undeployed = strcmp(status, "draft") == 0 || strcmp(status, "validated") == 0;
    if (!rc)
        rc = store_agent(tx, tenant_id, id, spec, version + 1, undeployed ? "draft" : status,
                         true, err);
    if (!rc) rc = store_version(tx, tenant_id, id, version + 1, spec, err);
    json_decref(spec);
    if (!rc) {
        json_t *changes = json_pack("{s:O,s:i}", "changes", in, "version", version + 1);
        rc = ap_orch_audit(tx, tenant_id, actor, "agent.update", "agent", id, changes, err);
        json_decref(changes);
    }
    if (!rc) rc = ap_orch_agent_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_orch_agent_list(ap_tx_t *tx, const char *tenant_id, const char *status,
                         const char *after, int limit, json_t **out, const char **next,
                         ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VTEXT(status),
                    AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " AGENT_COLS " FROM agents WHERE tenant_id = ? AND id > ?"
                           " AND status = COALESCE(?, status) ORDER BY id LIMIT ?",
                           p, 4, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, agent_json, "id", next);
    return AP_OK;
}

#define VERSION_COLS "agent_id, version, state, spec, created_at"

ap_rc ap_orch_agent_versions(ap_tx_t *tx, const char *tenant_id, const char *id,
                             int after_version, int limit, json_t **out, int *next,
                             ap_err_t *err) {
    *out = NULL;
    *next = 0;
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, id, NULL, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VINT(after_version),
                    AP_VINT(after_version), AP_VINT(limit + 1)};
    rc = ap_tx_query(tx,
                     "SELECT " VERSION_COLS " FROM agent_versions WHERE agent_id = ?"
                     " AND tenant_id = ? AND (? = 0 OR version < ?)"
                     " ORDER BY version DESC LIMIT ?",
                     p, 5, &rows, err);
    if (rc) return rc;
    const char *last;
    *out = ap_rows_page(&rows, limit, version_json, "version", &last);
    if (last) *next = atoi(last);
    return AP_OK;
}

ap_rc ap_orch_agent_version_get(ap_tx_t *tx, const char *tenant_id, const char *id,
                                int version, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rc rc = ap_orch_agent_status(tx, tenant_id, id, NULL, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VINT(version)};
    rc = ap_tx_query(tx,
                     "SELECT " VERSION_COLS " FROM agent_versions WHERE agent_id = ?"
                     " AND tenant_id = ? AND version = ?",
                     p, 3, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "version not found",
                          "GET /api/v1/agents/{agent_id}/versions lists the versions",
                          "agent \"%.64s\" has no version %d", id, version);
    *out = version_json(&rows, 0);
    return AP_OK;
}

/* --- lifecycle --- */

static const char *op_name(ap_agent_op op) {
    switch (op) {
    case AP_AGENT_VALIDATE: return "validate";
    case AP_AGENT_DEPLOY: return "deploy";
    case AP_AGENT_PAUSE: return "pause";
    case AP_AGENT_RESUME: return "resume";
    case AP_AGENT_RETIRE: return "retire";
    }
    return "?";
}

/* The operations allowed from each status (docs/agents.md). */
static const struct {
    const char *status;
    const char *ops; /* space-separated, for the check and the message */
} allowed[] = {
    {"draft", "validate retire"},
    {"validated", "validate deploy retire"},
    {"deployed", "validate deploy pause retire"},
    {"running", "validate deploy pause retire"},
    {"paused", "validate deploy resume retire"},
    {"retired", ""},
};

static const char *allowed_ops(const char *status) {
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcmp(allowed[i].status, status) == 0) return allowed[i].ops;
    return "";
}

static bool op_allowed(const char *status, ap_agent_op op) {
    const char *ops = allowed_ops(status), *name = op_name(op);
    size_t n = strlen(name);
    for (const char *p = ops; (p = strstr(p, name)); p += n)
        if ((p == ops || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

static ap_rc bad_transition(const char *id, const char *status, ap_agent_op op,
                            ap_err_t *err) {
    const char *ops = allowed_ops(status);
    char list[128] = "";
    size_t n = 0;
    for (const char *p = ops; *p && n + 3 < sizeof list; p++) {
        if (*p == ' ') {
            n += (size_t)snprintf(list + n, sizeof list - n, ", :");
        } else {
            if (n == 0) list[n++] = ':';
            list[n++] = *p;
            list[n] = '\0';
        }
    }
    return ap_err_set(err, AP_ERR_CONFLICT, "invalid-transition", "transition not allowed",
                      *ops ? "use one of the transitions allowed from the current status"
                           : "a retired agent cannot change; create a new agent",
                      "agent \"%s\" is %s: :%s is not allowed; allowed from %s: %s", id, status,
                      op_name(op), status, *ops ? list : "none");
}

/* Collects every problem of spec and the agent's relationships into buf. */
static ap_rc validate_spec(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *spec,
                           char *buf, size_t cap, ap_err_t *err) {
    size_t n = 0;
    buf[0] = '\0';
#define PROBLEM(...)                                                                    \
    do {                                                                                \
        if (n + 2 < cap) {                                                              \
            if (n) n += (size_t)snprintf(buf + n, cap - n, "; ");                       \
            if (n < cap) n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);          \
        }                                                                               \
    } while (0)
    ap_err_t e = {0};
    const char *checks[] = {"name", "role"};
    for (int i = 0; i < 2; i++)
        if (check_text(spec, checks[i], &e)) PROBLEM("%s", e.detail);
    if (ap_orch_check_strings(json_object_get(spec, "capabilities"), "capabilities",
                              MAX_CAPABILITIES, 100, &e))
        PROBLEM("%s", e.detail);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(spec, "tools"), i, t) {
        if (!ap_orch_tool_known(json_string_value(t)))
            PROBLEM("tool \"%.100s\" is not known", json_string_value(t));
    }
    if (check_memory(tx, tenant_id, json_object_get(spec, "memory_config"), &e))
        PROBLEM("%s", e.detail);
    const char *cfg = ap_json_str(spec, "llm_config_id");
    if (cfg) {
        ap_rc rc = check_llm_config(tx, tenant_id, cfg, &e);
        if (rc == AP_ERR_INVALID)
            PROBLEM("%s", e.detail);
        else if (rc)
            return ap_err_set(err, rc, NULL, e.msg, e.hint, "%s", e.detail);
    }
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VTEXT(id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(
        tx,
        "SELECT r.relationship_type, a.name FROM agent_relationships r"
        " JOIN agents a ON a.id = CASE WHEN r.from_agent_id = ? THEN r.to_agent_id"
        " ELSE r.from_agent_id END"
        " WHERE r.tenant_id = ? AND (r.from_agent_id = ? OR r.to_agent_id = ?)"
        " AND a.status = 'retired'",
        p, 4, &rows, err);
    if (rc) return rc;
    for (int r = 0; r < rows.nrows; r++)
        PROBLEM("relationship %s with agent \"%.100s\" which is retired",
                ap_rows_get(&rows, r, "relationship_type"), ap_rows_get(&rows, r, "name"));
    json_array_foreach(json_object_get(spec, "tools"), i, t) {
        if (strcmp(json_string_value(t), "delegate_to_agent") == 0 &&
            ap_json_int(spec, "max_delegation_depth", 2) == 0)
            PROBLEM("tool delegate_to_agent is listed but max_delegation_depth is 0");
    }
#undef PROBLEM
    return AP_OK;
}

static ap_rc set_status(ap_tx_t *tx, const char *tenant_id, const char *id, const char *from,
                        const char *to, int deployed_version, ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(to),        AP_VINT(deployed_version), AP_VINT(deployed_version),
                    AP_VTEXT(now),       AP_VTEXT(id),              AP_VTEXT(tenant_id),
                    AP_VTEXT(from)};
    ap_rc rc = ap_tx_query(tx,
                           "UPDATE agents SET status = ?, deployed_version = CASE WHEN ? = 0"
                           " THEN deployed_version ELSE ? END, updated_at = ?"
                           " WHERE id = ? AND tenant_id = ? AND status = ?",
                           p, 7, &rows, err);
    if (!rc && rows.changes == 0)
        rc = ap_err_set(err, AP_ERR_CONFLICT, "conflict", "agent changed meanwhile",
                        "read the agent again and retry",
                        "agent \"%s\" left status %s while this request ran", id, from);
    return rc;
}

static ap_rc do_validate(ap_tx_t *tx, const char *tenant_id, const char *id, int version,
                         json_t **changes, ap_err_t *err) {
    json_t *spec = NULL;
    ap_rc rc = load_spec(tx, tenant_id, id, version, &spec, NULL, err);
    if (rc) return rc;
    char problems[480];
    rc = validate_spec(tx, tenant_id, id, spec, problems, sizeof problems, err);
    json_decref(spec);
    if (rc) return rc;
    if (problems[0])
        return ap_err_set(err, AP_ERR_INVALID, "agent-invalid", "agent spec has problems",
                          "fix them with PATCH (a new version) and validate again",
                          "version %d: %s", version, problems);
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VINT(version)};
    rc = ap_tx_query(tx,
                     "UPDATE agent_versions SET state = 'validated' WHERE agent_id = ?"
                     " AND tenant_id = ? AND version = ?",
                     p, 3, NULL, err);
    if (!rc) *changes = json_pack("{s:i}", "version", version);
    return rc;
}

static ap_rc do_deploy(ap_tx_t *tx, const char *tenant_id, const char *id, int version,
                       int *chosen, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id), AP_VINT(version), AP_VINT(version)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT version, state FROM agent_versions WHERE agent_id = ?"
                           " AND tenant_id = ? AND (version = ? OR (? = 0 AND state = 'validated'))"
                           " ORDER BY version DESC LIMIT 1",
                           p, 4, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) {
        if (version)
            return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "version not found",
                              "GET /api/v1/agents/{agent_id}/versions lists the versions",
                              "agent \"%.64s\" has no version %d", id, version);
        return ap_err_set(err, AP_ERR_CONFLICT, "not-validated", "no validated version",
                          "validate the agent first: POST /api/v1/agents/{agent_id}:validate",
                          "agent \"%s\" has no validated version to deploy", id);
    }
    if (strcmp(ap_rows_get(&rows, 0, "state"), "validated") != 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "not-validated", "version is a draft",
                          "validate it first: POST /api/v1/agents/{agent_id}:validate",
                          "version %d of agent \"%s\" is a draft", version, id);
    *chosen = (int)ap_rows_int(&rows, 0, "version", 0);
    return AP_OK;
}

ap_rc ap_orch_agent_transition(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                               const char *id, ap_agent_op op, int version, json_t **out,
                               ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_rc rc = fetch(tx, tenant_id, id, &rows, err);
    if (rc) return rc;
    const char *status = ap_rows_get(&rows, 0, "status");
    int latest = (int)ap_rows_int(&rows, 0, "version", 1);
    if (!op_allowed(status, op)) return bad_transition(id, status, op, err);
    const char *to = status;
    int deployed = 0;
    json_t *changes = NULL;
    switch (op) {
    case AP_AGENT_VALIDATE:
        rc = do_validate(tx, tenant_id, id, latest, &changes, err);
        if (strcmp(status, "draft") == 0) to = "validated";
        break;
    case AP_AGENT_DEPLOY:
        rc = do_deploy(tx, tenant_id, id, version, &deployed, err);
        if (!rc) changes = json_pack("{s:i}", "version", deployed);
        if (strcmp(status, "validated") == 0) to = "deployed";
        break;
    case AP_AGENT_PAUSE: to = "paused"; break;
    case AP_AGENT_RESUME: to = "deployed"; break;
    case AP_AGENT_RETIRE: to = "retired"; break;
    }
    if (!rc) rc = set_status(tx, tenant_id, id, status, to, deployed, err);
    if (!rc) {
        if (!changes) changes = json_object();
        json_object_set_new(changes, "from", json_string(status));
        json_object_set_new(changes, "to", json_string(to));
        char action[32];
        snprintf(action, sizeof action, "agent.%s", op_name(op));
        rc = ap_orch_audit(tx, tenant_id, actor, action, "agent", id, changes, err);
    }
    json_decref(changes);
    if (!rc) rc = ap_orch_agent_get(tx, tenant_id, id, out, err);
    return rc;
}

/* --- runner --- */

static void json_release(void *v) {
    json_decref(v);
}

static ap_rc fill_spec(ap_tx_t *tx, const ap_rows_t *rows, int version,
                       ap_orch_agent_spec_t *out, ap_err_t *err) {
    const char *id = ap_rows_get(rows, 0, "id");
    json_t *spec = NULL;
    ap_rc rc = load_spec(tx, ap_rows_get(rows, 0, "tenant_id"), id, version, &spec, NULL, err);
    if (rc) return rc;
    ap_arena_cleanup(ap_tx_arena(tx), json_release, spec);
    ap_arena_t *a = ap_tx_arena(tx);
    const char *cfg = ap_json_str(spec, "llm_config_id");
    *out = (ap_orch_agent_spec_t){
        .id = id,
        .tenant_id = ap_rows_get(rows, 0, "tenant_id"),
        .name = ap_arena_strdup(a, ap_json_str(spec, "name") ? ap_json_str(spec, "name") : ""),
        .description = ap_arena_strdup(
            a, ap_json_str(spec, "description") ? ap_json_str(spec, "description") : ""),
        .role = ap_arena_strdup(a, ap_json_str(spec, "role") ? ap_json_str(spec, "role") : ""),
        .status = ap_rows_get(rows, 0, "status"),
        .version = version,
        .llm_config_id = cfg ? ap_arena_strdup(a, cfg) : NULL,
        .autonomy_level = ap_arena_strdup(a, ap_json_str(spec, "autonomy_level")
                                                 ? ap_json_str(spec, "autonomy_level")
                                                 : "full"),
        .max_delegation_depth = (int)ap_json_int(spec, "max_delegation_depth", 2),
        .capabilities = json_object_get(spec, "capabilities"),
        .personality = json_object_get(spec, "personality"),
        .memory_config = json_object_get(spec, "memory_config"),
        .tools = json_object_get(spec, "tools"),
        .spec = spec,
    };
    return AP_OK;
}

ap_rc ap_orch_agent_spec(ap_tx_t *tx, const char *agent_id, int version,
                         ap_orch_agent_spec_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rows_t rows;
    ap_rc rc = fetch(tx, ap_orch_tenant(tx), agent_id, &rows, err);
    if (rc) return rc;
    if (version == 0) {
        const char *dv = ap_rows_get(&rows, 0, "deployed_version");
        if (!dv)
            return ap_err_set(err, AP_ERR_CONFLICT, "agent-not-runnable", "agent not deployed",
                              "deploy the agent: POST /api/v1/agents/{agent_id}:deploy",
                              "agent \"%s\" has no deployed version", agent_id);
        version = (int)strtol(dv, NULL, 10);
    }
    return fill_spec(tx, &rows, version, out, err);
}

ap_rc ap_orch_agent_runnable(ap_tx_t *tx, const char *agent_id, ap_orch_agent_spec_t *out,
                             ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rows_t rows;
    ap_rc rc = fetch(tx, ap_orch_tenant(tx), agent_id, &rows, err);
    if (rc) return rc;
    const char *status = ap_rows_get(&rows, 0, "status");
    const char *dv = ap_rows_get(&rows, 0, "deployed_version");
    if ((strcmp(status, "deployed") != 0 && strcmp(status, "running") != 0) || !dv)
        return ap_err_set(err, AP_ERR_CONFLICT, "agent-not-runnable", "agent does not take tasks",
                          strcmp(status, "paused") == 0
                              ? "resume it: POST /api/v1/agents/{agent_id}:resume"
                              : "validate and deploy it: POST /api/v1/agents/{agent_id}:deploy",
                          "agent \"%.200s\" is %s; only deployed or running agents take tasks",
                          ap_rows_get(&rows, 0, "name"), status);
    return fill_spec(tx, &rows, (int)strtol(dv, NULL, 10), out, err);
}

ap_rc ap_orch_agent_set_running(ap_tx_t *tx, const char *agent_id, bool running,
                                ap_err_t *err) {
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(running ? "running" : "deployed"), AP_VTEXT(now),
                    AP_VTEXT(agent_id), AP_VTEXT(ap_orch_tenant(tx)),
                    AP_VTEXT(running ? "deployed" : "running")};
    return ap_tx_query(tx,
                       "UPDATE agents SET status = ?, updated_at = ? WHERE id = ?"
                       " AND tenant_id = COALESCE(?, tenant_id) AND status = ?",
                       p, 5, NULL, err);
}
