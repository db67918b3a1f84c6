/*
 * agents.c - `agentprov agents|groups|relationships|skills …`: agents,
 * their versions and lifecycle, teams, relationships and skills through
 * the API (/api/v1/agents, /api/v1/agent-groups,
 * /api/v1/agent-relationships, /api/v1/agents/{id}/skills).
 *
 * 1. One table describes every verb: HTTP method, path (with the
 *    positional ids), and whether it takes body flags or list filters.
 *    Body flags are typed: text, integer, number, comma-separated list,
 *    or JSON object (--personality '{"tone":"calm"}'); --file reads a
 *    whole JSON body.
 * 2. --tenant ID uses the canonical tenant path; without it the alias
 *    takes the tenant from the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"
#include "core/buf.h"

typedef enum { F_TEXT, F_INT, F_NUM, F_LIST, F_JSON } ftype;

typedef struct {
    const char *flag, *field;
    ftype type;
} bflag_t;

typedef struct {
    const char *verb;
    const char *method;
    const char *path;   /* under the collection: "" "/{1}" "/{1}/versions/{2}" …; {c} = collection */
    int nargs;          /* positional ids */
    bool body;          /* takes body flags */
    bool list;          /* takes --limit/--cursor and filters */
    const char *usage;  /* argument synopsis */
    const char *const *cols; /* table columns; NULL: the noun's */
} verb_t;

typedef struct {
    const char *noun;
    const char *coll; /* "agents", "agent-groups", … */
    const verb_t *verbs;
    const bflag_t *flags;
    const char *const *filters; /* list query parameters (flag = name with '-') */
    const char *const *cols;
} noun_t;

static const char *const version_cols[] = {"version", "state", "created_at", NULL};

static const bflag_t agent_flags[] = {
    {"name", "name", F_TEXT},
    {"role", "role", F_TEXT},
    {"description", "description", F_TEXT},
    {"capabilities", "capabilities", F_LIST},
    {"tools", "tools", F_LIST},
    {"llm-config", "llm_config_id", F_TEXT},
    {"autonomy", "autonomy_level", F_TEXT},
    {"max-delegation-depth", "max_delegation_depth", F_INT},
    {"personality", "personality", F_JSON},
    {"memory-config", "memory_config", F_JSON},
    {"version", "version", F_INT},
    {NULL, NULL, F_TEXT},
};
static const verb_t agent_verbs[] = {
    {"list", "GET", "", 0, false, true, "[--status S]"},
    {"get", "GET", "/{1}", 1, false, false, "AGENT"},
    {"create", "POST", "", 0, true, false,
     "--name N --role R [--description D] [--capabilities a,b] [--tools t,u] [--llm-config ID]\n"
     "          [--autonomy full|supervised|approval_required] [--max-delegation-depth N]\n"
     "          [--personality JSON] [--memory-config JSON] [--file BODY.json]"},
    {"update", "PATCH", "/{1}", 1, true, false, "AGENT [the create flags]  (a new draft version)"},
    {"versions", "GET", "/{1}/versions", 1, false, true, "AGENT", version_cols},
    {"version", "GET", "/{1}/versions/{2}", 2, false, false, "AGENT N"},
    {"validate", "POST", "/{1}:validate", 1, false, false, "AGENT"},
    {"deploy", "POST", "/{1}:deploy", 1, true, false, "AGENT [--version N]"},
    {"pause", "POST", "/{1}:pause", 1, false, false, "AGENT"},
    {"resume", "POST", "/{1}:resume", 1, false, false, "AGENT"},
    {"retire", "POST", "/{1}:retire", 1, false, false, "AGENT"},
    {NULL, NULL, NULL, 0, false, false, NULL, NULL},
};
static const char *const agent_filters[] = {"status", NULL};
static const char *const agent_cols[] = {"id", "name", "role", "status", "version",
                                         "deployed_version", "capabilities", NULL};

static const bflag_t group_flags[] = {
    {"name", "name", F_TEXT},
    {"description", "description", F_TEXT},
    {"goal", "goal", F_TEXT},
    {"members", "members", F_LIST},
    {"strategy", "strategy", F_JSON},
    {"shared-context", "shared_context", F_JSON},
    {"escalation-rules", "escalation_rules", F_JSON},
    {NULL, NULL, F_TEXT},
};
static const verb_t group_verbs[] = {
    {"list", "GET", "", 0, false, true, ""},
    {"get", "GET", "/{1}", 1, false, false, "GROUP"},
    {"create", "POST", "", 0, true, false,
     "--name N [--goal G] [--description D] [--members a,b] [--strategy JSON]\n"
     "          [--shared-context JSON] [--escalation-rules JSON] [--file BODY.json]"},
    {"update", "PATCH", "/{1}", 1, true, false, "GROUP [the create flags; --members replaces]"},
    {"delete", "DELETE", "/{1}", 1, false, false, "GROUP"},
    {"add-member", "PUT", "/{1}/members/{2}", 2, false, false, "GROUP AGENT"},
    {"remove-member", "DELETE", "/{1}/members/{2}", 2, false, false, "GROUP AGENT"},
    {"hierarchy", "GET", "/{1}/hierarchy", 1, false, false, "GROUP"},
    {NULL, NULL, NULL, 0, false, false, NULL, NULL},
};
static const char *const group_cols[] = {"id", "name", "goal", "members", NULL};

static const bflag_t rel_flags[] = {
    {"from", "from_agent_id", F_TEXT},
    {"to", "to_agent_id", F_TEXT},
    {"type", "relationship_type", F_TEXT},
    {"group", "group_id", F_TEXT},
    {"trust", "trust_level", F_NUM},
    {"style", "communication_style", F_TEXT},
    {"handoff-rules", "handoff_rules", F_JSON},
    {NULL, NULL, F_TEXT},
};
static const verb_t rel_verbs[] = {
    {"list", "GET", "", 0, false, true, "[--agent-id ID] [--group-id ID] [--type T]"},
    {"get", "GET", "/{1}", 1, false, false, "RELATIONSHIP"},
    {"create", "POST", "", 0, true, false,
     "--from AGENT --to AGENT --type supervises|delegates_to|collaborates_with|reports_to|"
     "consults\n          [--group GROUP] [--trust 0..1] [--style sync|async|broadcast] "
     "[--handoff-rules JSON]"},
    {"update", "PATCH", "/{1}", 1, true, false,
     "RELATIONSHIP [--trust X] [--style S] [--group G] [--handoff-rules JSON]"},
    {"delete", "DELETE", "/{1}", 1, false, false, "RELATIONSHIP"},
    {NULL, NULL, NULL, 0, false, false, NULL, NULL},
};
static const char *const rel_filters[] = {"agent_id", "group_id", "type", NULL};
static const char *const rel_cols[] = {"id", "from_agent_id", "relationship_type", "to_agent_id",
                                       "trust_level", "communication_style", NULL};

static const bflag_t skill_flags[] = {
    {"name", "skill_name", F_TEXT},
    {"proficiency", "proficiency", F_NUM},
    {"learned-from", "learned_from", F_TEXT},
    {NULL, NULL, F_TEXT},
};
static const verb_t skill_verbs[] = {
    {"list", "GET", "/{1}/skills", 1, false, true, "AGENT"},
    {"get", "GET", "/{1}/skills/{2}", 2, false, false, "AGENT SKILL"},
    {"create", "POST", "/{1}/skills", 1, true, false,
     "AGENT --name S [--proficiency 0..1] [--learned-from training|observation|practice|feedback]"},
    {"update", "PATCH", "/{1}/skills/{2}", 2, true, false,
     "AGENT SKILL [--proficiency X] [--learned-from L]"},
    {"delete", "DELETE", "/{1}/skills/{2}", 2, false, false, "AGENT SKILL"},
    {NULL, NULL, NULL, 0, false, false, NULL, NULL},
};
static const char *const skill_cols[] = {"id", "skill_name", "proficiency", "times_used",
                                         "success_rate", "learned_from", "last_used_at", NULL};

static const noun_t agents = {"agents", "agents", agent_verbs, agent_flags, agent_filters,
                              agent_cols};
static const noun_t groups = {"groups", "agent-groups", group_verbs, group_flags, NULL,
                              group_cols};
static const noun_t rels = {"relationships", "agent-relationships", rel_verbs, rel_flags,
                            rel_filters, rel_cols};
static const noun_t skills = {"skills", "agents", skill_verbs, skill_flags, NULL, skill_cols};

static int usage(const noun_t *n, int code) {
    FILE *f = code ? stderr : stdout;
    for (const verb_t *v = n->verbs; v->verb; v++)
        fprintf(f, "%s agentprov %s %s %s\n", v == n->verbs ? "usage:" : "      ", n->noun,
                v->verb, v->usage);
    fprintf(f, "\ncommon: [--tenant ID] (canonical tenant path; default: the key's tenant),\n"
               "        list: [--limit N] [--cursor C]; -o table|json.\n"
               "AP_URL and AP_API_KEY select the platform and the key.\n");
    return code;
}

static void add_param(ap_buf_t *b, const char *name, const char *value) {
    ap_buf_printf(b, "%c%s=", strchr(b->p, '?') ? '&' : '?', name);
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '_' || *s == '.' || *s == '~')
            ap_buf_append(b, s, 1);
        else
            ap_buf_printf(b, "%%%02X", *s);
    }
}

/* Converts one body flag value; prints the problem and returns NULL when
 * it does not parse. */
static json_t *flag_value(const char *flag, ftype t, const char *v) {
    char *end;
    switch (t) {
    case F_TEXT: return json_string(v);
    case F_INT: {
        long long n = strtoll(v, &end, 10);
        if (*v && !*end) return json_integer(n);
        fprintf(stderr, "error: --%s needs an integer, got \"%s\"\n", flag, v);
        return NULL;
    }
    case F_NUM: {
        double d = strtod(v, &end);
        if (*v && !*end) return json_real(d);
        fprintf(stderr, "error: --%s needs a number, got \"%s\"\n", flag, v);
        return NULL;
    }
    case F_LIST: {
        json_t *arr = json_array();
        const char *s = v;
        while (*s) {
            const char *c = strchr(s, ',');
            size_t n = c ? (size_t)(c - s) : strlen(s);
            if (n) json_array_append_new(arr, json_stringn(s, n));
            s += n + (c ? 1 : 0);
        }
        return arr;
    }
    case F_JSON: {
        json_error_t e;
        json_t *o = json_loads(v, 0, &e);
        if (json_is_object(o)) return o;
        json_decref(o);
        fprintf(stderr, "error: --%s needs a JSON object, e.g. '{\"key\":\"value\"}'\n", flag);
        return NULL;
    }
    }
    return NULL;
}

static int run(const noun_t *n, int argc, char **argv) {
    if (argc < 2) return usage(n, 2);
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) return usage(n, 0);
    const verb_t *v = n->verbs;
    while (v->verb && strcmp(v->verb, verb) != 0) v++;
    if (!v->verb) {
        fprintf(stderr, "error: unknown %s command \"%s\"\n", n->noun, verb);
        return usage(n, 2);
    }
    const char *args[2] = {NULL, NULL}, *tenant = NULL;
    int nargs = 0, rc = 2;
    bool as_json = false;
    json_t *body = json_object();
    ap_buf_t query;
    ap_buf_init(&query, 8192);
    ap_buf_puts(&query, "");
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rc = usage(n, 0);
            goto out;
        }
        if (strcmp(a, "-o") == 0) {
            const char *fmt = i + 1 < argc ? argv[++i] : "";
            if (strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0) {
                fprintf(stderr, "error: -o must be table or json, not \"%s\"\n", fmt);
                goto out;
            }
            as_json = strcmp(fmt, "json") == 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (nargs >= v->nargs) {
                fprintf(stderr, "error: unexpected argument \"%s\"\n  hint: agentprov %s %s %s\n",
                        a, n->noun, v->verb, v->usage);
                goto out;
            }
            args[nargs++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            goto out;
        }
        const char *name = a + 2, *val = argv[++i];
        if (strcmp(name, "tenant") == 0) {
            tenant = val;
            continue;
        }
        if (v->list && (strcmp(name, "limit") == 0 || strcmp(name, "cursor") == 0)) {
            add_param(&query, name, val);
            continue;
        }
        bool filtered = false;
        for (const char *const *f = n->filters; v->list && f && *f; f++) {
            char flag[64];
            snprintf(flag, sizeof flag, "%s", *f);
            for (char *c = flag; *c; c++)
                if (*c == '_') *c = '-';
            if (strcmp(flag, name) == 0) {
                add_param(&query, *f, val);
                filtered = true;
            }
        }
        if (filtered) continue;
        if (v->body && strcmp(name, "file") == 0) {
            json_error_t e;
            json_t *o = json_load_file(val, 0, &e);
            if (!json_is_object(o)) {
                json_decref(o);
                fprintf(stderr, "error: %s is not a JSON object file: %s\n", val, e.text);
                goto out;
            }
            json_object_update(body, o);
            json_decref(o);
            continue;
        }
        const bflag_t *bf = n->flags;
        while (v->body && bf->flag && strcmp(bf->flag, name) != 0) bf++;
        if (!v->body || !bf->flag) {
            fprintf(stderr, "error: unknown option \"%s\"\n  hint: agentprov %s --help\n", a,
                    n->noun);
            goto out;
        }
        json_t *jv = flag_value(bf->flag, bf->type, val);
        if (!jv) goto out;
        json_object_set_new(body, bf->field, jv);
    }
    if (nargs < v->nargs) {
        fprintf(stderr, "error: %s %s needs %s\n", n->noun, v->verb, v->usage);
        goto out;
    }
    ap_buf_t path;
    ap_buf_init(&path, 8192);
    if (tenant)
        ap_buf_printf(&path, "/api/v1/tenants/%s/%s", tenant, n->coll);
    else
        ap_buf_printf(&path, "/api/v1/%s", n->coll);
    for (const char *p = v->path; *p; p++) {
        if (p[0] == '{' && (p[1] == '1' || p[1] == '2') && p[2] == '}') {
            ap_buf_puts(&path, args[p[1] - '1']);
            p += 2;
        } else {
            ap_buf_append(&path, p, 1);
        }
    }
    if (query.len) ap_buf_puts(&path, query.p);
    bool send = v->body || strcmp(v->method, "POST") == 0;
    json_t *res = NULL;
    rc = ap_client_call(v->method, path.p, send ? body : NULL, &res);
    ap_buf_free(&path);
    if (rc == 0) {
        if (res)
            ap_client_print(res, v->cols ? v->cols : n->cols, as_json || strcmp(v->verb, "hierarchy") == 0 ||
                                              strcmp(v->verb, "version") == 0);
        else if (!as_json)
            printf("done\n");
    }
    json_decref(res);
out:
    ap_buf_free(&query);
    json_decref(body);
    return rc;
}

int ap_cmd_agents(int argc, char **argv) {
    return run(&agents, argc, argv);
}
int ap_cmd_groups(int argc, char **argv) {
    return run(&groups, argc, argv);
}
int ap_cmd_relationships(int argc, char **argv) {
    return run(&rels, argc, argv);
}
int ap_cmd_skills(int argc, char **argv) {
    return run(&skills, argc, argv);
}
