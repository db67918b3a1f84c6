/*
 * resources.c - `agentprov tenants|users|keys …`: the API client commands.
 *
 * 1. Each verb maps to one HTTP call.  Flags named after body fields
 *    (--display-name → display_name) fill the JSON body; numeric
 *    entitlement flags are sent as integers.
 * 2. --tenant ID uses the canonical tenant path; without it the short
 *    alias takes the tenant from the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"

typedef struct {
    const char *flag;
    const char *field;
    bool integer;
} body_flag_t;

typedef struct {
    const char *noun;        /* "tenants" */
    const char *alias;       /* "/api/v1/users", or NULL for platform resources */
    const char *sub;         /* "users" under /api/v1/tenants/{t}/, or NULL */
    const char *const *cols; /* table columns */
    const body_flag_t *body; /* flags accepted by create/update */
} resource_t;

static const char *const tenant_cols[] = {"id", "slug", "name", "plan", "status", "created_at",
                                          NULL};
static const char *const user_cols[] = {"id", "email", "display_name", "role", "status", NULL};
static const char *const key_cols[] = {"id", "name", "role", "user_id", "expires_at",
                                       "revoked_at", "last_used_at", NULL};

static const body_flag_t tenant_body[] = {{"name", "name", false},
                                          {"slug", "slug", false},
                                          {"plan", "plan", false},
                                          {"max-agents", "max_agents", true},
                                          {"max-agent-groups", "max_agent_groups", true},
                                          {"monthly-token-limit", "monthly_token_limit", true},
                                          {"storage-limit-gb", "storage_limit_gb", true},
                                          {"max-concurrent-tasks", "max_concurrent_tasks", true},
                                          {"task-weight", "task_weight", true},
                                          {NULL, NULL, false}};
static const body_flag_t user_body[] = {{"email", "email", false},
                                        {"display-name", "display_name", false},
                                        {"role", "role", false},
                                        {"status", "status", false},
                                        {NULL, NULL, false}};
static const body_flag_t key_body[] = {{"name", "name", false},
                                       {"role", "role", false},
                                       {"user", "user_id", false},
                                       {"expires-at", "expires_at", false},
                                       {NULL, NULL, false}};

static const resource_t tenants = {"tenants", NULL, NULL, tenant_cols, tenant_body};
static const resource_t users = {"users", "/api/v1/users", "users", user_cols, user_body};
static const resource_t keys = {"keys", "/api/v1/api-keys", "api-keys", key_cols, key_body};

static int usage(const resource_t *r, int code) {
    FILE *f = code ? stderr : stdout;
    if (!r->sub) {
        fprintf(f,
                "usage: agentprov tenants list [--status S] [--limit N] [--cursor C]\n"
                "       agentprov tenants create --name NAME [--slug S] [--plan P] [--max-agents N]"
                " [--max-agent-groups N] [--monthly-token-limit N] [--storage-limit-gb N]\n"
                "         [--max-concurrent-tasks N] [--task-weight N]\n"
                "       agentprov tenants get|suspend|resume|delete ID\n"
                "       agentprov tenants update ID [--name ..] [--plan ..] [--max-agents N] …\n");
    } else {
        fprintf(f, "usage: agentprov %s list [--tenant ID] [--limit N] [--cursor C]\n", r->noun);
        fprintf(f, "       agentprov %s get ID [--tenant ID]\n", r->noun);
        if (r == &users) {
            fprintf(f, "       agentprov users create --email E --role R [--display-name N] "
                       "[--tenant ID]\n"
                       "       agentprov users update ID [--role R] [--status active|disabled] "
                       "[--display-name N]\n"
                       "       agentprov users delete ID\n");
        } else {
            fprintf(f, "       agentprov keys create --name N [--role R] [--user USER_ID] "
                       "[--expires-at RFC3339] [--tenant ID]\n"
                       "       agentprov keys revoke ID\n");
        }
    }
    fprintf(f, "common: -o json for JSON output; AP_URL and AP_API_KEY select the platform and "
               "the key.\n");
    return code;
}

static int run(const resource_t *res, int argc, char **argv) {
    if (argc < 2) return usage(res, 2);
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) return usage(res, 0);
    const char *id = NULL, *tenant = NULL, *limit = NULL, *cursor = NULL, *status = NULL;
    bool as_json = false;
    json_t *body = json_object();
    int rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0) {
            const char *fmt = i + 1 < argc ? argv[++i] : NULL;
            if (!fmt || (strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0)) {
                fprintf(stderr, "error: -o must be table or json, not \"%s\"\n",
                        fmt ? fmt : "");
                goto out;
            }
            as_json = strcmp(fmt, "json") == 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (id) {
                fprintf(stderr, "error: unexpected argument \"%s\"\n", a);
                goto out;
            }
            id = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            goto out;
        }
        const char *v = argv[++i];
        const char *name = a + 2;
        if (strcmp(name, "tenant") == 0 && res->sub) {
            tenant = v;
            continue;
        }
        if (strcmp(name, "limit") == 0) {
            limit = v;
            continue;
        }
        if (strcmp(name, "cursor") == 0) {
            cursor = v;
            continue;
        }
        if (strcmp(name, "status") == 0 && strcmp(verb, "list") == 0) {
            status = v;
            continue;
        }
        const body_flag_t *bf = res->body;
        while (bf->flag && strcmp(bf->flag, name) != 0) bf++;
        if (!bf->flag) {
            fprintf(stderr, "error: unknown option \"%s\"\n  hint: agentprov %s --help\n", a,
                    res->noun);
            goto out;
        }
        if (bf->integer) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (*end || !*v) {
                fprintf(stderr, "error: %s needs an integer, got \"%s\"\n", a, v);
                goto out;
            }
            json_object_set_new(body, bf->field, json_integer(n));
        } else {
            json_object_set_new(body, bf->field, json_string(v));
        }
    }
    char base[512], path[1024];
    if (!res->sub)
        snprintf(base, sizeof base, "/api/v1/tenants");
    else if (tenant)
        snprintf(base, sizeof base, "/api/v1/tenants/%s/%s", tenant, res->sub);
    else
        snprintf(base, sizeof base, "%s", res->alias);
    const char *method = NULL;
    bool send_body = false, need_id = true;
    const char *suffix = "";
    if (strcmp(verb, "list") == 0) {
        method = "GET";
        need_id = false;
    } else if (strcmp(verb, "get") == 0) {
        method = "GET";
    } else if (strcmp(verb, "create") == 0) {
        method = "POST";
        send_body = true;
        need_id = false;
    } else if (strcmp(verb, "update") == 0 && res != &keys) {
        method = "PATCH";
        send_body = true;
    } else if (strcmp(verb, "delete") == 0 && res != &keys) {
        method = "DELETE";
    } else if (strcmp(verb, "revoke") == 0 && res == &keys) {
        method = "POST";
        suffix = ":revoke";
    } else if ((strcmp(verb, "suspend") == 0 || strcmp(verb, "resume") == 0) && res == &tenants) {
        method = "POST";
        suffix = strcmp(verb, "suspend") == 0 ? ":suspend" : ":resume";
    } else {
        fprintf(stderr, "error: unknown %s command \"%s\"\n", res->noun, verb);
        usage(res, 2);
        goto out;
    }
    if (need_id && !id) {
        fprintf(stderr, "error: %s %s needs an id\n", res->noun, verb);
        goto out;
    }
    if (!need_id && id) {
        fprintf(stderr, "error: unexpected argument \"%s\"\n", id);
        goto out;
    }
    if (!send_body && json_object_size(body)) {
        fprintf(stderr, "error: %s %s takes no field options\n", res->noun, verb);
        goto out;
    }
    if (need_id)
        snprintf(path, sizeof path, "%s/%s%s", base, id, suffix);
    else
        snprintf(path, sizeof path, "%s", base);
    if (!need_id && strcmp(method, "GET") == 0) {
        size_t n = strlen(path);
        char sep = '?';
        if (limit) n += (size_t)snprintf(path + n, sizeof path - n, "%climit=%s", sep, limit), sep = '&';
        if (cursor) n += (size_t)snprintf(path + n, sizeof path - n, "%ccursor=%s", sep, cursor), sep = '&';
        if (status) snprintf(path + n, sizeof path - n, "%cstatus=%s", sep, status);
    }
    json_t *out = NULL;
    rc = ap_client_call(method, path, send_body ? body : NULL, &out);
    if (rc == 0) {
        if (out)
            ap_client_print(out, res->cols, as_json);
        else if (!as_json)
            printf("done\n");
        if (res == &keys && strcmp(verb, "create") == 0 && !as_json)
            printf("\nstore the key now: it is shown only once.\n");
    }
    json_decref(out);
out:
    json_decref(body);
    return rc;
}

int ap_cmd_tenants(int argc, char **argv) {
    return run(&tenants, argc, argv);
}

int ap_cmd_users(int argc, char **argv) {
    return run(&users, argc, argv);
}

int ap_cmd_keys(int argc, char **argv) {
    return run(&keys, argc, argv);
}
