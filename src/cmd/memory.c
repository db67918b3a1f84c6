/*
 * memory.c - `agentprov memory …` and `agentprov knowledge …`: agent memory
 * and the knowledge graph through the API (docs/memory.md).
 *
 * 1. Without --tenant the /api/v1/memory and /api/v1/knowledge aliases are
 *    used (tenant from the key, the agent in the body or ?agent_id=); with
 *    --tenant ID the canonical tenant paths.
 * 2. Options are parsed into one table; each verb says which it takes, so
 *    an option a verb does not know is refused by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"
#include "core/buf.h"

typedef struct {
    const char *name; /* without "--" */
    const char *val;  /* NULL: absent; "" for a switch that is set */
    bool is_switch;
} opt_t;

enum {
    O_TENANT, O_AGENT, O_TYPE, O_IMPORTANCE, O_SOURCE, O_SUBJECT, O_EXPIRES, O_LIMIT, O_TYPES,
    O_MIN_IMPORTANCE, O_QUERY, O_TO, O_DRY, O_STATUS, O_NAME, O_ATTR, O_ATTRIBUTE, O_VALUE,
    O_AS_OF, O_MAX_HOPS, O_FROM, O_RELATION, O_CONFIDENCE, O_CURSOR, O_N
};

static const char *const opt_names[O_N] = {
    "tenant", "agent",      "type",  "importance", "source",   "subject",    "expires-at",
    "limit",  "types",      "min-importance", "query", "to",   "dry-run",    "status",
    "name",   "attr",       "attribute", "value",  "as-of",    "max-hops",   "from",
    "relation", "confidence", "cursor",
};

typedef struct {
    opt_t o[O_N];
    const char *pos[64];
    int npos;
    json_t *attrs; /* --attr k=v, repeatable */
    bool as_json;
} args_t;

static int mem_usage(FILE *f, int code) {
    fprintf(f,
            "usage: agentprov memory remember --agent ID --type T [--importance X] [--source S]\n"
            "                                 [--subject S] [--expires-at T] CONTENT\n"
            "       agentprov memory recall --agent ID [--limit N] [--types a,b] [--min-importance X] QUERY\n"
            "       agentprov memory list [--agent ID] [--type T] [--status S] [--limit N] [--cursor C]\n"
            "       agentprov memory get ID [--query Q]\n"
            "       agentprov memory forget ID\n"
            "       agentprov memory consolidate --agent ID [--dry-run]\n"
            "       agentprov memory share --agent ID --to AGENT_ID MEMORY_ID…\n"
            "  every verb takes [--tenant ID] (with --agent) [-o table|json]\n"
            "  T is fact, experience, skill, preference, relationship or procedure.\n"
            "\nAP_URL and AP_API_KEY select the platform and the key.\n");
    return code;
}

static int kg_usage(FILE *f, int code) {
    fprintf(f,
            "usage: agentprov knowledge learn --type T --name N [--attr KEY=VALUE]… [--confidence X]\n"
            "       agentprov knowledge query [--name N] [--type T] [--attribute A [--value V]] [--as-of T]\n"
            "       agentprov knowledge get|neighbors ID [--as-of T]\n"
            "       agentprov knowledge paths ID [--to ID] [--max-hops N] [--as-of T]\n"
            "       agentprov knowledge relate --from ID --to ID --relation R\n"
            "       agentprov knowledge graph [--as-of T]\n"
            "       agentprov knowledge delete ID\n"
            "  every verb takes [--tenant ID] [-o table|json]\n"
            "\nAP_URL and AP_API_KEY select the platform and the key.\n");
    return code;
}

static void add_param(ap_buf_t *b, const char *name, const char *value) {
    if (!value) return;
    ap_buf_printf(b, "%c%s=", strchr(b->p, '?') ? '&' : '?', name);
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '_' || *s == '.' || *s == '~')
            ap_buf_append(b, s, 1);
        else
            ap_buf_printf(b, "%%%02X", *s);
    }
}

/* Parses argv[2..]; allowed is a bitmask of options the verb accepts. */
static int parse(int argc, char **argv, unsigned long allowed, args_t *a) {
    memset(a, 0, sizeof *a);
    for (int k = 0; k < O_N; k++) {
        a->o[k].name = opt_names[k];
        a->o[k].is_switch = k == O_DRY;
    }
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-o")) {
            const char *fmt = i + 1 < argc ? argv[++i] : "";
            if (strcmp(fmt, "json") && strcmp(fmt, "table")) {
                fprintf(stderr, "error: -o must be table or json, not \"%s\"\n", fmt);
                return 2;
            }
            a->as_json = !strcmp(fmt, "json");
            continue;
        }
        if (strncmp(s, "--", 2)) {
            if (a->npos < 64) a->pos[a->npos++] = s;
            continue;
        }
        int k = 0;
        while (k < O_N && strcmp(s + 2, opt_names[k])) k++;
        if (k == O_N || !(allowed & (1ul << k))) {
            fprintf(stderr, "error: unknown option \"%s\" for %s %s\n", s, argv[0], argv[1]);
            return 2;
        }
        if (a->o[k].is_switch) {
            a->o[k].val = "";
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", s);
            return 2;
        }
        const char *v = argv[++i];
        if (k == O_ATTR) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                fprintf(stderr, "error: --attr takes KEY=VALUE, not \"%s\"\n", v);
                return 2;
            }
            if (!a->attrs) a->attrs = json_object();
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - v), v);
            json_object_set_new(a->attrs, key, json_string(eq + 1));
            continue;
        }
        a->o[k].val = v;
    }
    return 0;
}

#define B(x) (1ul << (x))
#define V(k) (a.o[k].val)

static int need(const char *what, const char *v) {
    if (v) return 0;
    fprintf(stderr, "error: %s is required\n", what);
    return 2;
}

static int call_print(const char *method, const char *path, json_t *body, bool as_json,
                      const char *const *cols) {
    json_t *res = NULL;
    int rc = ap_client_call(method, path, body, &res);
    if (!rc && res) ap_client_print(res, cols, as_json);
    if (!rc && !res) printf("done\n");
    json_decref(res);
    return rc;
}

static const char *const mem_cols[] = {"id", "agent_id", "memory_type", "importance", "access_count",
                                       "status", "content", NULL};
static const char *const recall_cols[] = {"id", "score", "similarity", "memory_type", "content",
                                          NULL};

/* The memory base path: canonical when both tenant and agent are given,
 * else the alias (a memory id alone names its agent there). */
static void mem_base(ap_buf_t *p, const args_t *ap) {
    const args_t a = *ap;
    if (V(O_TENANT) && V(O_AGENT))
        ap_buf_printf(p, "/api/v1/tenants/%s/agents/%s/memory", V(O_TENANT), V(O_AGENT));
    else
        ap_buf_puts(p, "/api/v1/memory");
}

int ap_cmd_memory(int argc, char **argv) {
    if (argc < 2) return mem_usage(stderr, 2);
    const char *verb = argv[1];
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) return mem_usage(stdout, 0);
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return mem_usage(stdout, 0);
    args_t a;
    unsigned long common = B(O_TENANT);
    unsigned long allowed = !strcmp(verb, "remember")
                                ? B(O_AGENT) | B(O_TYPE) | B(O_IMPORTANCE) | B(O_SOURCE) |
                                      B(O_SUBJECT) | B(O_EXPIRES)
                            : !strcmp(verb, "recall")
                                ? B(O_AGENT) | B(O_LIMIT) | B(O_TYPES) | B(O_MIN_IMPORTANCE)
                            : !strcmp(verb, "list")
                                ? B(O_AGENT) | B(O_TYPE) | B(O_STATUS) | B(O_LIMIT) | B(O_CURSOR)
                            : !strcmp(verb, "get")         ? B(O_QUERY) | B(O_AGENT)
                            : !strcmp(verb, "forget")      ? B(O_AGENT)
                            : !strcmp(verb, "consolidate") ? B(O_AGENT) | B(O_DRY)
                            : !strcmp(verb, "share")       ? B(O_AGENT) | B(O_TO)
                                                           : 0;
    if (!allowed) {
        fprintf(stderr, "error: unknown memory command \"%s\"\n", verb);
        return mem_usage(stderr, 2);
    }
    int rc = parse(argc, argv, allowed | common, &a);
    if (rc) return rc;
    ap_buf_t p;
    ap_buf_init(&p, 8192);
    json_t *body = NULL;
    const char *method = "POST";
    const char *const *cols = mem_cols;
    if (!strcmp(verb, "remember")) {
        if ((rc = need("--agent", V(O_AGENT))) || (rc = need("--type", V(O_TYPE))) ||
            (rc = need("CONTENT", a.npos ? a.pos[0] : NULL)))
            goto out;
        mem_base(&p, &a);
        body = json_pack("{s:s,s:s,s:s}", "agent_id", V(O_AGENT), "content", a.pos[0],
                         "memory_type", V(O_TYPE));
        if (V(O_IMPORTANCE)) json_object_set_new(body, "importance", json_real(atof(V(O_IMPORTANCE))));
        if (V(O_SOURCE)) json_object_set_new(body, "source", json_string(V(O_SOURCE)));
        if (V(O_SUBJECT)) json_object_set_new(body, "subject", json_string(V(O_SUBJECT)));
        if (V(O_EXPIRES)) json_object_set_new(body, "expires_at", json_string(V(O_EXPIRES)));
    } else if (!strcmp(verb, "recall")) {
        if ((rc = need("--agent", V(O_AGENT))) || (rc = need("QUERY", a.npos ? a.pos[0] : NULL)))
            goto out;
        mem_base(&p, &a);
        ap_buf_puts(&p, ":recall");
        body = json_pack("{s:s,s:s}", "agent_id", V(O_AGENT), "query", a.pos[0]);
        if (V(O_LIMIT)) json_object_set_new(body, "limit", json_integer(atoi(V(O_LIMIT))));
        if (V(O_MIN_IMPORTANCE))
            json_object_set_new(body, "min_importance", json_real(atof(V(O_MIN_IMPORTANCE))));
        if (V(O_TYPES)) {
            json_t *ts = json_array();
            char *copy = strdup(V(O_TYPES)), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_array_append_new(ts, json_string(t));
            free(copy);
            json_object_set_new(body, "types", ts);
        }
        cols = recall_cols;
    } else if (!strcmp(verb, "list")) {
        method = "GET";
        mem_base(&p, &a);
        if (!V(O_TENANT)) add_param(&p, "agent_id", V(O_AGENT));
        add_param(&p, "type", V(O_TYPE));
        add_param(&p, "status", V(O_STATUS));
        add_param(&p, "limit", V(O_LIMIT));
        add_param(&p, "cursor", V(O_CURSOR));
    } else if (!strcmp(verb, "get") || !strcmp(verb, "forget")) {
        if ((rc = need("ID", a.npos ? a.pos[0] : NULL))) goto out;
        method = verb[0] == 'g' ? "GET" : "DELETE";
        mem_base(&p, &a);
        ap_buf_printf(&p, "/%s", a.pos[0]);
        add_param(&p, "query", V(O_QUERY));
    } else if (!strcmp(verb, "consolidate")) {
        if ((rc = need("--agent", V(O_AGENT)))) goto out;
        mem_base(&p, &a);
        ap_buf_puts(&p, ":consolidate");
        body = json_pack("{s:s,s:b}", "agent_id", V(O_AGENT), "dry_run", V(O_DRY) != NULL);
        a.as_json = true; /* a report, not a list */
    } else { /* share */
        if ((rc = need("--agent", V(O_AGENT))) || (rc = need("--to", V(O_TO))) ||
            (rc = need("MEMORY_ID", a.npos ? a.pos[0] : NULL)))
            goto out;
        mem_base(&p, &a);
        ap_buf_puts(&p, ":share");
        json_t *ids = json_array();
        for (int i = 0; i < a.npos; i++) json_array_append_new(ids, json_string(a.pos[i]));
        body = json_pack("{s:s,s:s,s:o}", "agent_id", V(O_AGENT), "to_agent_id", V(O_TO),
                         "memory_ids", ids);
        a.as_json = true;
    }
    /* ranked results are shown in the API's order */
    if (!strcmp(verb, "recall") && !a.as_json) {
        json_t *res = NULL;
        rc = ap_client_call(method, p.p, body, &res);
        if (!rc && res) {
            json_t *page = json_pack("{s:O,s:n}", "data", json_object_get(res, "data"), "next_cursor");
            ap_client_print(page, cols, false);
            json_decref(page);
        }
        json_decref(res);
    } else {
        rc = call_print(method, p.p, body, a.as_json, cols);
    }
out:
    json_decref(body);
    json_decref(a.attrs);
    ap_buf_free(&p);
    return rc;
}

static const char *const ent_cols[] = {"id", "entity_type", "name", "confidence", "evidence_count",
                                       NULL};

int ap_cmd_knowledge(int argc, char **argv) {
    if (argc < 2) return kg_usage(stderr, 2);
    const char *verb = argv[1];
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) return kg_usage(stdout, 0);
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return kg_usage(stdout, 0);
    unsigned long allowed = !strcmp(verb, "learn") ? B(O_TYPE) | B(O_NAME) | B(O_ATTR) | B(O_CONFIDENCE)
                            : !strcmp(verb, "query")
                                ? B(O_NAME) | B(O_TYPE) | B(O_ATTRIBUTE) | B(O_VALUE) | B(O_AS_OF) | B(O_LIMIT)
                            : !strcmp(verb, "get") || !strcmp(verb, "neighbors") ? B(O_AS_OF)
                            : !strcmp(verb, "paths") ? B(O_TO) | B(O_MAX_HOPS) | B(O_AS_OF)
                            : !strcmp(verb, "relate") ? B(O_FROM) | B(O_TO) | B(O_RELATION)
                            : !strcmp(verb, "graph")  ? B(O_AS_OF)
                            : !strcmp(verb, "delete") ? B(O_TENANT)
                                                      : 0;
    if (!allowed) {
        fprintf(stderr, "error: unknown knowledge command \"%s\"\n", verb);
        return kg_usage(stderr, 2);
    }
    args_t a;
    int rc = parse(argc, argv, allowed | B(O_TENANT), &a);
    if (rc) return rc;
    ap_buf_t p;
    ap_buf_init(&p, 8192);
    if (V(O_TENANT))
        ap_buf_printf(&p, "/api/v1/tenants/%s/knowledge", V(O_TENANT));
    else
        ap_buf_puts(&p, "/api/v1/knowledge");
    json_t *body = NULL;
    const char *method = "GET";
    const char *const *cols = ent_cols;
    bool by_id = !strcmp(verb, "get") || !strcmp(verb, "neighbors") || !strcmp(verb, "paths") ||
                 !strcmp(verb, "delete");
    if (by_id && (rc = need("ID", a.npos ? a.pos[0] : NULL))) goto out;
    if (!strcmp(verb, "learn")) {
        if ((rc = need("--type", V(O_TYPE))) || (rc = need("--name", V(O_NAME)))) goto out;
        method = "POST";
        ap_buf_puts(&p, "/entities");
        body = json_pack("{s:s,s:s}", "entity_type", V(O_TYPE), "name", V(O_NAME));
        if (a.attrs) json_object_set(body, "attributes", a.attrs);
        if (V(O_CONFIDENCE)) json_object_set_new(body, "confidence", json_real(atof(V(O_CONFIDENCE))));
        a.as_json = true;
    } else if (!strcmp(verb, "query")) {
        ap_buf_puts(&p, "/entities");
        add_param(&p, "name", V(O_NAME));
        add_param(&p, "entity_type", V(O_TYPE));
        add_param(&p, "attribute", V(O_ATTRIBUTE));
        add_param(&p, "value", V(O_VALUE));
        add_param(&p, "as_of", V(O_AS_OF));
        add_param(&p, "limit", V(O_LIMIT));
    } else if (!strcmp(verb, "relate")) {
        if ((rc = need("--from", V(O_FROM))) || (rc = need("--to", V(O_TO))) ||
            (rc = need("--relation", V(O_RELATION))))
            goto out;
        method = "POST";
        ap_buf_puts(&p, "/relations");
        body = json_pack("{s:s,s:s,s:s}", "from_entity_id", V(O_FROM), "to_entity_id", V(O_TO),
                         "relation_type", V(O_RELATION));
        a.as_json = true;
    } else if (!strcmp(verb, "graph")) {
        ap_buf_puts(&p, "/graph");
        add_param(&p, "as_of", V(O_AS_OF));
        a.as_json = true;
    } else {
        ap_buf_printf(&p, "/entities/%s", a.pos[0]);
        if (!strcmp(verb, "neighbors")) ap_buf_puts(&p, "/neighbors");
        if (!strcmp(verb, "paths")) {
            ap_buf_puts(&p, "/paths");
            add_param(&p, "to", V(O_TO));
            add_param(&p, "max_hops", V(O_MAX_HOPS));
        }
        if (!strcmp(verb, "delete")) method = "DELETE";
        add_param(&p, "as_of", V(O_AS_OF));
        if (strcmp(verb, "delete")) a.as_json = true;
    }
    rc = call_print(method, p.p, body, a.as_json, cols);
out:
    json_decref(body);
    json_decref(a.attrs);
    ap_buf_free(&p);
    return rc;
}
