/*
 * tasks.c - `agentprov tasks create|get|list|tree|steps|cancel|approve|
 * reject|run|follow …`: agent tasks through the API.
 *
 * 1. `run` creates a task and, with --follow, prints its progress live
 *    from the task's event stream (SSE), then the outcome; the exit status
 *    is 0 for a completed task, 1 otherwise.
 * 2. Progress lines name agents by name: the agent list is read once at
 *    the start (ids are shown when it cannot be read).
 * 3. --tenant ID uses the canonical tenant path; without it the alias
 *    takes the tenant from the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"

static const char *const task_cols[] = {"id", "status", "priority", "assigned_agent_id",
                                        "objective", "created_at", NULL};

static int usage(int code) {
    FILE *f = code ? stderr : stdout;
    fprintf(f,
            "usage: agentprov tasks run (--agent NAME|ID | --group ID) [--follow] [options] "
            "\"objective\"\n"
            "       agentprov tasks create (--agent NAME|ID | --group ID) [options] \"objective\"\n"
            "       agentprov tasks list [--status S] [--priority P] [--agent ID] [--group ID]"
            " [--parent ID] [--limit N] [--cursor C]\n"
            "       agentprov tasks get|tree|steps|messages|follow ID\n"
            "       agentprov tasks cancel ID [--reason TEXT]\n"
            "       agentprov tasks approve|reject ID [--comment TEXT]\n"
            "options of run/create: --priority critical|high|normal|low|background, --type T,\n"
            "  --requires-approval, --max-steps N, --timeout SECONDS\n"
            "common: --tenant ID, -o json; AP_URL and AP_API_KEY select the platform and the "
            "key.\n");
    return code;
}

typedef struct {
    json_t *names; /* agent id → name */
    const char *root;
    int status_code; /* exit status from the root's last status */
} follow_t;

static const char *agent_name(follow_t *f, const char *id) {
    const char *n = id ? json_string_value(json_object_get(f->names, id)) : NULL;
    return n ? n : id ? id : "-";
}

static void on_event(void *ud, const char *id, const char *type, const char *data) {
    follow_t *f = ud;
    json_t *ev = json_loads(data, 0, NULL);
    json_t *d = json_object_get(ev, "data");
    const char *task = json_string_value(json_object_get(ev, "task_id"));
    const char *agent = agent_name(f, json_string_value(json_object_get(ev, "agent_id")));
    char tshort[9] = "-";
    if (task) snprintf(tshort, sizeof tshort, "%s", task + (strlen(task) > 8 ? strlen(task) - 8 : 0));
    if (strcmp(type, "task.status") == 0) {
        const char *st = json_string_value(json_object_get(d, "status"));
        const char *why = json_string_value(json_object_get(d, "reason"));
        if (!why) why = json_string_value(json_object_get(d, "detail"));
        printf("[%s] task …%s %-12s %s → %s%s%s\n", id, tshort, agent,
               json_string_value(json_object_get(d, "from")), st, why ? "  " : "", why ? why : "");
        if (task && f->root && strcmp(task, f->root) == 0 && st)
            f->status_code = strcmp(st, "completed") == 0 ? 0 : 1;
    } else if (strcmp(type, "task.created") == 0) {
        printf("[%s] task …%s %-12s created: %s\n", id, tshort,
               agent_name(f, json_string_value(json_object_get(d, "assigned_agent_id"))),
               json_string_value(json_object_get(d, "objective")));
    } else if (strcmp(type, "tool.call") == 0) {
        json_t *in = json_object_get(d, "arguments");
        json_t *inner = json_object_get(in, "arguments");
        char *args = json_dumps(inner ? inner : in, JSON_COMPACT | JSON_REAL_PRECISION(15));
        printf("[%s] task …%s %-12s calls %s %s\n", id, tshort, agent,
               json_string_value(json_object_get(d, "name")), args ? args : "");
        free(args);
    } else if (strcmp(type, "message.created") == 0) {
        printf("[%s] task …%s %-12s %s → %s\n", id, tshort,
               agent_name(f, json_string_value(json_object_get(d, "from_agent_id"))),
               json_string_value(json_object_get(d, "message_type")),
               agent_name(f, json_string_value(json_object_get(d, "to_agent_id"))));
    } else if (strcmp(type, "task.step") == 0) {
        const char *name = json_string_value(json_object_get(d, "name"));
        printf("[%s] task …%s %-12s step %lld %s%s%s\n", id, tshort, agent,
               (long long)json_integer_value(json_object_get(d, "seq")),
               json_string_value(json_object_get(d, "kind")), name ? " " : "", name ? name : "");
    }
    fflush(stdout);
    json_decref(ev);
}

static int follow(const char *base, const char *id, bool as_json) {
    follow_t f = {.names = json_object(), .root = id, .status_code = 1};
    json_t *agents = NULL;
    char path[1024];
    /* the agent list is optional: without it ids are shown */
    snprintf(path, sizeof path, "%s/agents?limit=500", base);
    if (!ap_client_call("GET", path, NULL, &agents)) {
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(agents, "data"), i, a)
            json_object_set(f.names, json_string_value(json_object_get(a, "id")),
                            json_object_get(a, "name"));
    }
    json_decref(agents);
    snprintf(path, sizeof path, "%s/tasks/%s/events", base, id);
    int rc = ap_client_events(path, on_event, &f);
    json_decref(f.names);
    if (rc) return rc;
    json_t *t = NULL;
    snprintf(path, sizeof path, "%s/tasks/%s", base, id);
    if (ap_client_call("GET", path, NULL, &t)) return 1;
    const char *st = json_string_value(json_object_get(t, "status"));
    if (as_json) {
        ap_client_print(t, NULL, true);
    } else {
        printf("\nstatus:     %s\n", st);
        json_t *o = json_object_get(t, "output");
        if (json_is_string(o)) printf("output:     %s\n", json_string_value(o));
        json_t *c = json_object_get(t, "confidence");
        if (json_is_number(c)) printf("confidence: %.2f\n", json_number_value(c));
        json_t *e = json_object_get(t, "error");
        if (json_is_object(e))
            printf("error:      %s: %s\n", json_string_value(json_object_get(e, "code")),
                   json_string_value(json_object_get(e, "detail")));
        printf("tokens:     %lld (tree)\n",
               (long long)json_integer_value(json_object_get(t, "tokens_total")));
    }
    rc = st && strcmp(st, "completed") == 0 ? 0 : 1;
    json_decref(t);
    return rc;
}

int ap_cmd_tasks(int argc, char **argv) {
    if (argc < 2) return usage(2);
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) return usage(0);
    const char *pos = NULL, *tenant = NULL;
    const char *q[16][2];
    int nq = 0;
    bool as_json = false, do_follow = false;
    json_t *body = json_object();
    int rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-o") == 0 && i + 1 < argc) {
            as_json = strcmp(argv[++i], "json") == 0;
            continue;
        }
        if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            do_follow = true;
            continue;
        }
        if (strcmp(a, "--requires-approval") == 0) {
            json_object_set_new(body, "requires_approval", json_true());
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (pos) {
                fprintf(stderr, "error: unexpected argument \"%s\"\n  hint: quote the objective\n", a);
                goto out;
            }
            pos = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            goto out;
        }
        const char *n = a + 2, *v = argv[++i];
        bool list = strcmp(verb, "list") == 0;
        if (strcmp(n, "tenant") == 0) tenant = v;
        else if (list && nq < 16 && (strcmp(n, "status") == 0 || strcmp(n, "priority") == 0 ||
                                     strcmp(n, "limit") == 0 || strcmp(n, "cursor") == 0)) {
            q[nq][0] = n;
            q[nq++][1] = v;
        } else if (list && nq < 16 && strcmp(n, "agent") == 0) {
            q[nq][0] = "agent_id";
            q[nq++][1] = v;
        } else if (list && nq < 16 && strcmp(n, "group") == 0) {
            q[nq][0] = "group_id";
            q[nq++][1] = v;
        } else if (list && nq < 16 && strcmp(n, "parent") == 0) {
            q[nq][0] = "parent_task_id";
            q[nq++][1] = v;
        } else if (strcmp(n, "agent") == 0) json_object_set_new(body, "assigned_agent_id", json_string(v));
        else if (strcmp(n, "group") == 0) json_object_set_new(body, "group_id", json_string(v));
        else if (strcmp(n, "priority") == 0) json_object_set_new(body, "priority", json_string(v));
        else if (strcmp(n, "type") == 0) json_object_set_new(body, "task_type", json_string(v));
        else if (strcmp(n, "reason") == 0) json_object_set_new(body, "reason", json_string(v));
        else if (strcmp(n, "comment") == 0) json_object_set_new(body, "comment", json_string(v));
        else if (strcmp(n, "max-steps") == 0 || strcmp(n, "timeout") == 0) {
            char *end;
            long long x = strtoll(v, &end, 10);
            if (*end || !*v) {
                fprintf(stderr, "error: %s needs an integer, got \"%s\"\n", a, v);
                goto out;
            }
            json_object_set_new(body, strcmp(n, "timeout") == 0 ? "timeout_seconds" : "max_steps",
                                json_integer(x));
        } else {
            fprintf(stderr, "error: unknown option \"%s\"\n  hint: agentprov tasks --help\n", a);
            goto out;
        }
    }
    char base[256], path[2048];
    if (tenant)
        snprintf(base, sizeof base, "/api/v1/tenants/%s", tenant);
    else
        snprintf(base, sizeof base, "/api/v1");
    json_t *out = NULL;
    bool create = strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0;
    if (create) {
        if (!pos) {
            fprintf(stderr, "error: tasks %s needs the objective\n", verb);
            goto out;
        }
        json_object_set_new(body, "objective", json_string(pos));
        snprintf(path, sizeof path, "%s/tasks", base);
        rc = ap_client_call("POST", path, body, &out);
        if (rc) goto out;
        const char *id = json_string_value(json_object_get(out, "id"));
        if (strcmp(verb, "run") == 0 && do_follow) {
            char tid[64];
            snprintf(tid, sizeof tid, "%s", id ? id : "");
            if (!as_json) printf("task %s queued\n", tid);
            json_decref(out);
            out = NULL;
            rc = follow(base, tid, as_json);
            goto out;
        }
        ap_client_print(out, NULL, as_json);
        rc = 0;
        goto out;
    }
    if (strcmp(verb, "list") == 0) {
        int n = snprintf(path, sizeof path, "%s/tasks", base);
        for (int i = 0; i < nq && n < (int)sizeof path - 1; i++)
            n += snprintf(path + n, sizeof path - (size_t)n, "%c%s=%s", i ? '&' : '?', q[i][0], q[i][1]);
        rc = ap_client_call("GET", path, NULL, &out);
        if (!rc) ap_client_print(out, task_cols, as_json);
        goto out;
    }
    if (!pos) {
        fprintf(stderr, "error: tasks %s needs a task id\n", verb);
        usage(2);
        goto out;
    }
    if (strcmp(verb, "follow") == 0) {
        rc = follow(base, pos, as_json);
        goto out;
    }
    const char *method = "GET", *suffix = NULL;
    bool send = false;
    if (strcmp(verb, "get") == 0) suffix = "";
    else if (strcmp(verb, "tree") == 0) suffix = "/tree";
    else if (strcmp(verb, "steps") == 0) suffix = "/steps";
    else if (strcmp(verb, "messages") == 0) suffix = "/messages";
    else if (strcmp(verb, "cancel") == 0 || strcmp(verb, "approve") == 0 ||
             strcmp(verb, "reject") == 0) {
        method = "POST";
        send = true;
        suffix = strcmp(verb, "cancel") == 0 ? ":cancel" : strcmp(verb, "approve") == 0 ? ":approve" : ":reject";
    }
    if (!suffix) {
        fprintf(stderr, "error: unknown tasks command \"%s\"\n", verb);
        usage(2);
        goto out;
    }
    snprintf(path, sizeof path, "%s/tasks/%s%s", base, pos, suffix);
    rc = ap_client_call(method, path, send ? body : NULL, &out);
    if (!rc) {
        if (strcmp(verb, "tree") == 0 && !as_json) as_json = true;
        ap_client_print(out, strcmp(verb, "steps") == 0
                                 ? (const char *const[]){"seq", "kind", "name", "state", "tokens", NULL}
                                 : task_cols,
                        as_json);
    }
out:
    json_decref(out);
    json_decref(body);
    return rc;
}
