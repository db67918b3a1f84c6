/*
 * registry.c - the allowlist of stdio commands, tenants' registered MCP
 * servers, and agents' MCP tool names (see client.h).
 *
 * 1. A url may not carry credentials (user:password@): they belong in
 *    auth_header, which is sealed; nor may auth_header hold a line break
 *    (it becomes an HTTP header line).
 * 2. The allowlist lives on the heap for the life of the process; the
 *    process-wide pointer is written once at start, before any thread
 *    reads it.
 */
#include "mcp/client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/secret.h"
#include "core/time.h"

/* ---- allowlist --------------------------------------------------------- */

typedef struct {
    char *name;
    char **argv; /* NULL-terminated */
    char **env;  /* "K=V", NULL-terminated */
} allow_entry_t;

struct ap_mcp_allowlist {
    int n;
    allow_entry_t *e;
};

static const ap_mcp_allowlist_t *g_allow;

void ap_mcp_allowlist_set(const ap_mcp_allowlist_t *l) {
    g_allow = l;
}

const ap_mcp_allowlist_t *ap_mcp_allowlist_get(void) {
    return g_allow;
}

static void free_strv(char **v) {
    for (char **p = v; p && *p; p++) ap_free(*p);
    ap_free(v);
}

void ap_mcp_allowlist_free(ap_mcp_allowlist_t *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) {
        ap_free(l->e[i].name);
        free_strv(l->e[i].argv);
        free_strv(l->e[i].env);
    }
    ap_free(l->e);
    ap_free(l);
}

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > AP_MCP_NAME_MAX) return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '_'))
            return false;
    return true;
}

static ap_rc allow_bad(ap_err_t *err, const char *name, const char *what) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "invalid MCP stdio allowlist",
                      "give {\"name\": [\"/path/program\", \"arg\" …]} or {\"name\": {\"argv\": "
                      "[…], \"env\": {…}}}; names are [a-z0-9_-]",
                      "entry \"%.63s\": %s", name, what);
}

ap_rc ap_mcp_allowlist_parse(const char *text, ap_mcp_allowlist_t **out, ap_err_t *err) {
    *out = NULL;
    json_error_t je;
    json_t *root = text[0] == '@' ? json_load_file(text + 1, JSON_REJECT_DUPLICATES, &je)
                                  : json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "invalid MCP stdio allowlist",
                          "give a JSON object of name → argv (or @FILE holding one)",
                          "%s", root ? "not a JSON object" : je.text);
    }
    ap_mcp_allowlist_t *l = ap_calloc(1, sizeof *l);
    l->e = ap_calloc(json_object_size(root) + 1, sizeof *l->e);
    const char *name;
    json_t *v;
    ap_rc rc = AP_OK;
    json_object_foreach(root, name, v) {
        if (!valid_name(name)) {
            rc = allow_bad(err, name, "the name must be 1-63 of [a-z0-9_-]");
            break;
        }
        json_t *argv = json_is_array(v) ? v : json_object_get(v, "argv");
        json_t *env = json_is_object(v) ? json_object_get(v, "env") : NULL;
        if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > 64) {
            rc = allow_bad(err, name, "argv must be a non-empty array of strings");
            break;
        }
        if (env && !json_is_object(env)) {
            rc = allow_bad(err, name, "env must be an object of strings");
            break;
        }
        allow_entry_t *e = &l->e[l->n++];
        e->name = ap_strdup(name);
        e->argv = ap_calloc(json_array_size(argv) + 1, sizeof(char *));
        size_t i;
        json_t *a;
        json_array_foreach(argv, i, a) {
            if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a)) {
                rc = allow_bad(err, name, "argv must be a non-empty array of strings");
                break;
            }
            e->argv[i] = ap_strdup(json_string_value(a));
        }
        if (rc) break;
        e->env = ap_calloc(json_object_size(env) + 1, sizeof(char *));
        const char *k;
        json_t *ev;
        size_t j = 0;
        json_object_foreach(env, k, ev) {
            if (!json_is_string(ev) || !*k || strchr(k, '=')) {
                rc = allow_bad(err, name, "env must map names without '=' to strings");
                break;
            }
            size_t len = strlen(k) + json_string_length(ev) + 2;
            e->env[j] = ap_malloc(len);
            snprintf(e->env[j], len, "%s=%s", k, json_string_value(ev));
            j++;
        }
        if (rc) break;
    }
    json_decref(root);
    if (rc) {
        ap_mcp_allowlist_free(l);
        return rc;
    }
    *out = l;
    return AP_OK;
}

static const allow_entry_t *allow_find(const ap_mcp_allowlist_t *l, const char *name) {
    for (int i = 0; l && i < l->n; i++)
        if (strcmp(l->e[i].name, name) == 0) return &l->e[i];
    return NULL;
}

bool ap_mcp_allowlist_has(const ap_mcp_allowlist_t *l, const char *name) {
    return allow_find(l, name) != NULL;
}

json_t *ap_mcp_allowlist_names(const ap_mcp_allowlist_t *l) {
    json_t *a = json_array();
    for (int i = 0; l && i < l->n; i++) json_array_append_new(a, json_string(l->e[i].name));
    return a;
}

/* Exposed to client.c: the argv and environment of an entry, in the arena. */
bool ap_mcp_allowlist_target(ap_arena_t *a, const ap_mcp_allowlist_t *l, const char *name,
                             char *const **argv, char *const **envp);
bool ap_mcp_allowlist_target(ap_arena_t *a, const ap_mcp_allowlist_t *l, const char *name,
                             char *const **argv, char *const **envp) {
    const allow_entry_t *e = allow_find(l, name);
    if (!e) return false;
    int ne = 0;
    while (e->env[ne]) ne++;
    char **env = ap_arena_calloc(a, (size_t)(ne + 4) * sizeof(char *));
    int k = 0;
    const char *path = getenv("PATH"), *home = getenv("HOME"), *lang = getenv("LANG");
    env[k++] = ap_arena_printf(a, "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    if (home) env[k++] = ap_arena_printf(a, "HOME=%s", home);
    if (lang) env[k++] = ap_arena_printf(a, "LANG=%s", lang);
    for (int i = 0; i < ne; i++) env[k++] = e->env[i];
    *argv = e->argv;
    *envp = env;
    return true;
}

/* ---- registry ---------------------------------------------------------- */

const ap_jfield_t ap_mcp_server_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, AP_MCP_NAME_MAX, 0, 0},
    {"url", AP_JT_STRING, false, false, NULL, 2048, 0, 0},
    {"auth_header", AP_JT_STRING, false, false, NULL, 4096, 0, 0},
    {"command", AP_JT_STRING, false, false, NULL, AP_MCP_NAME_MAX, 0, 0},
    AP_JFIELDS_END,
};

#define COLS                                                                                 \
    "id, tenant_id, name, transport, url, command, auth_ciphertext, tools, server_info,"   \
    " protocol_version, discovered_at, created_at, updated_at"

static json_t *json_or_null(const char *s) {
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *row_json(const ap_rows_t *r, int i) {
    json_t *tools = json_or_null(ap_rows_get(r, i, "tools"));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:b,s:o,s:o,s:o,s:s?,s:s?,s:s,s:s}", "id",
                          ap_rows_get(r, i, "id"), "name", ap_rows_get(r, i, "name"), "transport",
                          ap_rows_get(r, i, "transport"), "url", ap_rows_get(r, i, "url"),
                          "command", ap_rows_get(r, i, "command"), "auth_header_set",
                          ap_rows_get(r, i, "auth_ciphertext") != NULL, "tool_count",
                          json_is_array(tools) ? json_integer((json_int_t)json_array_size(tools))
                                               : json_null(),
                          "tools", tools, "server_info",
                          json_or_null(ap_rows_get(r, i, "server_info")), "protocol_version",
                          ap_rows_get(r, i, "protocol_version"), "discovered_at",
                          ap_rows_get(r, i, "discovered_at"), "created_at",
                          ap_rows_get(r, i, "created_at"), "updated_at",
                          ap_rows_get(r, i, "updated_at"));
    return o;
}

static ap_rc invalid(ap_err_t *err, const char *hint, const char *detail) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid MCP server", hint, "%s", detail);
}

static ap_rc check_url(const char *u, ap_err_t *err) {
    const char *h = strncasecmp(u, "http://", 7) == 0    ? u + 7
                    : strncasecmp(u, "https://", 8) == 0 ? u + 8
                                                         : NULL;
    if (!h || !*h || *h == '/')
        return invalid(err, "give the server's Streamable HTTP endpoint, e.g. https://host/mcp",
                       "field \"url\" must be an http:// or https:// URL with a host");
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return invalid(err, "percent-encode spaces and control characters",
                           "field \"url\" contains a space or control character");
    size_t auth_end = strcspn(h, "/?#");
    if (memchr(h, '@', auth_end))
        return invalid(err, "put the credential in auth_header (stored sealed), not in the url",
                       "field \"url\" carries user information (user:password@)");
    return AP_OK;
}

ap_rc ap_mcp_server_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *name = ap_json_str(in, "name");
    const char *url = ap_json_str(in, "url");
    const char *auth = ap_json_str(in, "auth_header");
    const char *command = ap_json_str(in, "command");
    if (!valid_name(name))
        return invalid(err, "use 1-63 lowercase letters, digits, '-' or '_' (it prefixes tool names)",
                       "field \"name\" must match [a-z0-9_-]{1,63}");
    if ((url != NULL) == (command != NULL))
        return invalid(err, "give url for a Streamable HTTP server, or command for a stdio server",
                       "exactly one of \"url\" and \"command\" is needed");
    if (url) {
        ap_rc rc = check_url(url, err);
        if (rc) return rc;
    }
    if (auth && !url)
        return invalid(err, "leave auth_header out for stdio servers",
                       "field \"auth_header\" applies to url servers only");
    if (auth && (strpbrk(auth, "\r\n") || !*auth))
        return invalid(err, "give the header's value on one line, e.g. \"Bearer <token>\"",
                       "field \"auth_header\" is empty or holds a line break");
    if (command && !ap_mcp_allowlist_has(ap_mcp_allowlist_get(), command)) {
        json_t *names = ap_mcp_allowlist_names(ap_mcp_allowlist_get());
        char *list = json_dumps(names, JSON_COMPACT);
        json_decref(names);
        ap_rc rc = ap_err_set(err, AP_ERR_INVALID, "invalid-field", "command not allowed",
                              "name an entry of the platform administrator's allowlist "
                              "(AP_MCP_STDIO_ALLOW)",
                              "field \"command\" is \"%.63s\"; allowed: %s", command, list);
        free(list);
        return rc;
    }
    if (auth && !master)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "no master key",
                          "start the server with a master key (AP_MASTER_KEY or the data dir)",
                          "secrets cannot be stored without a master key");
    ap_rows_t rows;
    ap_val_t pn[] = {AP_VTEXT(tenant_id), AP_VTEXT(name)};
    ap_rc rc = ap_tx_query(tx, "SELECT id FROM mcp_servers WHERE tenant_id = ? AND name = ?", pn, 2,
                           &rows, err);
    if (rc) return rc;
    if (rows.nrows)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "name taken",
                          "pick another name, or delete the other server first",
                          "an MCP server named \"%s\" exists in this tenant", name);
    ap_sealed_t sealed = {0};
    if (auth) {
        rc = ap_secret_seal(master, auth, ap_tx_arena(tx), &sealed, err);
        if (rc) return rc;
    }
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(id),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(name),
                    AP_VTEXT(url ? "http" : "stdio"),
                    AP_VTEXT(url),
                    AP_VTEXT(command),
                    AP_VTEXT(sealed.ciphertext),
                    AP_VTEXT(sealed.nonce),
                    AP_VTEXT(sealed.wrapped_key),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO mcp_servers (id, tenant_id, name, transport, url, command,"
                     " auth_ciphertext, auth_nonce, auth_data_key_wrapped, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     v, 11, NULL, err);
    if (rc) return rc;
    json_t *changes = json_pack("{s:s,s:s,s:s?,s:s?,s:b}", "name", name, "transport",
                                url ? "http" : "stdio", "url", url, "command", command,
                                "auth_header_set", auth != NULL);
    ap_audit_event_t ev = {"mcp.server.create", "mcp_server", id, "success", changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) return rc;
    return ap_mcp_server_get(tx, tenant_id, id, out, err);
}

ap_rc ap_mcp_server_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " COLS " FROM mcp_servers WHERE tenant_id = ? AND id > ?"
                           " ORDER BY id LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    *out = ap_rows_page(&rows, limit, row_json, "id", next);
    return AP_OK;
}

ap_rc ap_mcp_server_get(ap_tx_t *tx, const char *tenant_id, const char *id_or_name, json_t **out,
                        ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id_or_name)};
    bool by_id = ap_uuid_valid(id_or_name);
    ap_rc rc = ap_tx_query(tx,
                           by_id ? "SELECT " COLS " FROM mcp_servers WHERE tenant_id = ? AND id = ?"
                                 : "SELECT " COLS " FROM mcp_servers WHERE tenant_id = ? AND name = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "MCP server not found",
                          "list the tenant's MCP servers for their ids and names",
                          "no MCP server \"%.64s\" in this tenant", id_or_name);
    *out = row_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_mcp_server_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM mcp_servers WHERE tenant_id = ? AND id = ? RETURNING name",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "MCP server not found",
                          "list the tenant's MCP servers for their ids",
                          "no MCP server with id \"%s\" in this tenant", id);
    json_t *changes = json_pack("{s:s}", "name", ap_rows_get(&rows, 0, "name"));
    ap_audit_event_t ev = {"mcp.server.delete", "mcp_server", id, "success", changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    return rc;
}

/* ---- agents' tool names ------------------------------------------------ */

bool ap_mcp_tool_ref_parse(ap_arena_t *a, const char *name, const char **server,
                           const char **tool) {
    if (!name || strncmp(name, "mcp:", 4) != 0) return false;
    const char *s = name + 4;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1]) return false;
    char *srv = ap_arena_strndup(a, s, (size_t)(slash - s));
    if (!valid_name(srv)) return false;
    *server = srv;
    *tool = ap_arena_strdup(a, slash + 1);
    return true;
}

ap_rc ap_mcp_client_tool_defs(ap_tx_t *tx, const char *tenant_id, json_t *granted, json_t **out,
                              ap_err_t *err) {
    *out = json_array();
    ap_arena_t *a = ap_tx_arena(tx);
    size_t i;
    json_t *g;
    json_array_foreach(granted, i, g) {
        const char *srv, *tool;
        if (!ap_mcp_tool_ref_parse(a, json_string_value(g), &srv, &tool)) continue;
        ap_rows_t rows;
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(srv)};
        ap_rc rc = ap_tx_query(tx, "SELECT tools FROM mcp_servers WHERE tenant_id = ? AND name = ?",
                               p, 2, &rows, err);
        if (rc) {
            json_decref(*out);
            *out = NULL;
            return rc;
        }
        if (rows.nrows == 0 || !ap_rows_get(&rows, 0, "tools")) continue;
        json_t *tools = json_loads(ap_rows_get(&rows, 0, "tools"), 0, NULL);
        size_t j;
        json_t *t;
        json_array_foreach(tools, j, t) {
            const char *tn = json_string_value(json_object_get(t, "name"));
            if (!tn || (strcmp(tool, "*") != 0 && strcmp(tool, tn) != 0)) continue;
            json_t *schema = json_object_get(t, "inputSchema");
            const char *desc = json_string_value(json_object_get(t, "description"));
            json_t *sc = schema ? json_incref(schema) : json_pack("{s:s}", "type", "object");
            json_array_append_new(*out, json_pack("{s:s,s:s,s:o}", "name",
                                                  ap_arena_printf(a, "mcp:%s/%s", srv, tn),
                                                  "description", desc ? desc : "",
                                                  "input_schema", sc));
        }
        json_decref(tools);
    }
    return AP_OK;
}
