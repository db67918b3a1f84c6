/*
 * cmd/audit.c - `agentprov audit verify|export|list`: the audit log.
 *
 * 1. verify and export are offline: straight to the database, no server,
 *    so an auditor can check a copy of the data, and a broken server
 *    cannot hide a broken chain.  Reads run in platform-scope
 *    transactions.  list is the one API client here (AP_URL, AP_API_KEY):
 *    it shows what the caller's key may read, with the server's filters.
 * 2. Each tenant is verified in its own transaction and arena, so memory
 *    is bounded by the largest chain, not the whole log.
 * 3. Exit status: 0 every chain is intact, 1 a chain is broken, 2 usage
 *    error, 3 the check could not run (database missing or unreachable,
 *    schema mismatch, write error): a monitor can tell "tampered" from
 *    "could not look".
 * 4. A sqlite: URL naming a file that does not exist is refused rather
 *    than created: a mistyped --data-dir must not verify an empty log.
 * 5. --output writes a temporary file next to FILE and renames it at the
 *    end, so a failed export never leaves a truncated FILE behind.
 * 6. list exits 0 on success, 1 when the API refused or could not be
 *    reached (ap_client_call prints why), 2 on a usage error.  Filter
 *    values are percent-encoded into the query string, so an RFC 3339
 *    offset such as +02:00 survives.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "cmd/client.h"
#include "cmd/cmd.h"
#include "core/arena.h"
#include "core/crypto.h"
#include "core/err.h"
#include "store/db.h"
#include "store/migrate.h"

enum { EXIT_OK = 0, EXIT_BROKEN = 1, EXIT_USAGE = 2, EXIT_FAIL = 3 };

static const char usage_text[] =
    "usage: agentprov audit verify [--tenant ID] [--database-url URL] [--data-dir DIR]\n"
    "                              [-o table|json]\n"
    "       agentprov audit export [--format jsonl] [--tenant ID] [--database-url URL]\n"
    "                              [--data-dir DIR] [--output FILE]\n"
    "       agentprov audit list [--tenant ID] [--action A] [--actor KEY_ID]\n"
    "                            [--resource-type T] [--resource-id ID] [--since TIME]\n"
    "                            [--until TIME] [--limit N] [--cursor C] [-o table|json]\n"
    "\n"
    "verify and export check or export the tamper-evident audit log straight from\n"
    "the database; the server does not need to run.  list reads it through the API\n"
    "(AP_URL, AP_API_KEY) with the caller's key.\n"
    "\n"
    "  verify   checks the hash chain of one tenant, or of every tenant with entries,\n"
    "           and names the first bad sequence number of a broken chain\n"
    "  export   writes every entry as one JSON object per line, ordered by tenant\n"
    "           and sequence (default: to standard output)\n"
    "  list     shows entries oldest first, one page at a time\n"
    "\n"
    "  --tenant ID         only this tenant (list: default the key's own tenant)\n"
    "  --database-url URL  sqlite:PATH or postgres://... (default: $AP_DATABASE_URL,\n"
    "                      else sqlite:DIR/agentprov.db)\n"
    "  --data-dir DIR      data directory (default: $AP_DATA_DIR, else ./var)\n"
    "  -o table|json       verify's and list's output format (default: table)\n"
    "  --format jsonl      export format (jsonl is the only one)\n"
    "  --output FILE       export to FILE instead of standard output\n"
    "  --action A          list: this action, or a prefix ending in '*' (user.*)\n"
    "  --actor KEY_ID      list: entries by this actor\n"
    "  --resource-type T, --resource-id ID\n"
    "                      list: entries about this kind of resource, or this one\n"
    "  --since, --until    list: RFC 3339 times (inclusive, exclusive)\n"
    "  --limit N           list: entries per page, 1..500 (default 100)\n"
    "  --cursor C          list: the next page, as printed after the previous one\n"
    "\n"
    "Exit status of verify and export: 0 all chains intact, 1 a chain is broken,\n"
    "2 usage error, 3 the check could not run.  Of list: 0 success, 1 the API\n"
    "refused or could not be reached, 2 usage error.\n";

typedef struct {
    const char *tenant, *db_url, *data_dir, *output_fmt, *format, *output;
    const char *action, *actor, *rtype, *rid, *since, *until, *limit, *cursor;
} opts_t;

/* Which actions accept an option (bit mask). */
enum { A_VERIFY = 1, A_EXPORT = 2, A_LIST = 4 };

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("agentprov audit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nrun 'agentprov audit --help' for usage\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static void print_err(const char *what, const ap_err_t *err) {
    fprintf(stderr, "agentprov audit: %s: %s", what, err->msg[0] ? err->msg : "failed");
    if (err->detail[0]) fprintf(stderr, ": %s", err->detail);
    fputc('\n', stderr);
    if (err->hint[0]) fprintf(stderr, "hint: %s\n", err->hint);
}

/* Matches "--name VALUE" and "--name=VALUE"; *i advances past a separate
 * value.  Returns 1 on a match, 0 on none, -1 when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

/* Parses argv[2..] for `action` (A_*); returns -1 when the command may
 * proceed, else an exit status. */
static int parse_opts(int argc, char **argv, int action, opts_t *o) {
    static const struct {
        const char *name;
        size_t off;
        int actions; /* A_* mask */
    } known[] = {
        {"--tenant", offsetof(opts_t, tenant), A_VERIFY | A_EXPORT | A_LIST},
        {"--database-url", offsetof(opts_t, db_url), A_VERIFY | A_EXPORT},
        {"--data-dir", offsetof(opts_t, data_dir), A_VERIFY | A_EXPORT},
        {"-o", offsetof(opts_t, output_fmt), A_VERIFY | A_LIST},
        {"--format", offsetof(opts_t, format), A_EXPORT},
        {"--output", offsetof(opts_t, output), A_EXPORT},
        {"--action", offsetof(opts_t, action), A_LIST},
        {"--actor", offsetof(opts_t, actor), A_LIST},
        {"--resource-type", offsetof(opts_t, rtype), A_LIST},
        {"--resource-id", offsetof(opts_t, rid), A_LIST},
        {"--since", offsetof(opts_t, since), A_LIST},
        {"--until", offsetof(opts_t, until), A_LIST},
        {"--limit", offsetof(opts_t, limit), A_LIST},
        {"--cursor", offsetof(opts_t, cursor), A_LIST},
    };
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        int m = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0] && !m; k++) {
            if (!(known[k].actions & action)) continue;
            const char *v = NULL;
            m = opt_value(argc, argv, &i, known[k].name, &v);
            if (m < 0) return usage_error("option %s needs a value", known[k].name);
            if (m) {
                if (!*v) return usage_error("option %s needs a non-empty value", known[k].name);
                *(const char **)((char *)o + known[k].off) = v;
            }
        }
        if (!m) {
            if (argv[i][0] == '-') return usage_error("unknown option %s", argv[i]);
            return usage_error("unexpected argument %s", argv[i]);
        }
    }
    if (o->output_fmt && strcmp(o->output_fmt, "table") != 0 &&
        strcmp(o->output_fmt, "json") != 0)
        return usage_error("-o must be table or json, not %s", o->output_fmt);
    if (o->format && strcmp(o->format, "jsonl") != 0)
        return usage_error("--format must be jsonl, not %s", o->format);
    if (o->limit && strspn(o->limit, "0123456789") != strlen(o->limit))
        return usage_error("--limit must be a whole number, not %s", o->limit);
    return -1;
}

/* Opens and checks the database; returns NULL after printing why not. */
static ap_db_t *open_db(const opts_t *o, ap_arena_t *a) {
    const char *url = o->db_url;
    if (!url) url = getenv("AP_DATABASE_URL");
    if (!url || !*url) {
        const char *dir = o->data_dir;
        if (!dir) dir = getenv("AP_DATA_DIR");
        if (!dir || !*dir) dir = "./var";
        url = ap_arena_printf(a, "sqlite:%s/agentprov.db", dir);
    }
    ap_err_t err = {0};
    if (strncmp(url, "sqlite:", 7) == 0 && access(url + 7, F_OK) != 0) {
        ap_err_set(&err, AP_ERR_NOT_FOUND, NULL, "database not found",
                   "pass --data-dir or --database-url, or run agentprov migrate first",
                   "%s: %s", url + 7, strerror(errno));
        print_err("cannot open the database", &err);
        return NULL;
    }
    ap_db_t *db = NULL;
    if (ap_db_open(url, 2, &db, &err)) {
        print_err("cannot open the database", &err);
        return NULL;
    }
    if (ap_migrate_check(db, &err)) {
        print_err("database schema", &err);
        ap_db_close(db);
        return NULL;
    }
    return db;
}

/* Tenants to verify: the one named, or every tenant with entries. */
static ap_rc tenant_list(ap_db_t *db, const char *tenant, json_t **out, ap_err_t *err) {
    if (tenant) {
        *out = json_pack("[s]", tenant);
        if (!*out)
            return ap_err_set(err, AP_ERR_INVALID, NULL, "invalid tenant id", NULL,
                              "--tenant is not valid UTF-8");
        return AP_OK;
    }
    ap_arena_t *a = ap_arena_new(4096);
    ap_tx_t *tx;
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, a, &tx, err);
    if (!rc) rc = ap_audit_tenants(tx, out, err);
    ap_arena_free(a); /* rolls back: nothing was written */
    return rc;
}

static int cmd_verify(const opts_t *o) {
    ap_arena_t *a = ap_arena_new(1024);
    ap_db_t *db = open_db(o, a);
    if (!db) {
        ap_arena_free(a);
        return EXIT_FAIL;
    }
    bool as_json = o->output_fmt && strcmp(o->output_fmt, "json") == 0;
    int status = EXIT_OK;
    ap_err_t err = {0};
    json_t *tenants = NULL, *results = json_array();
    if (tenant_list(db, o->tenant, &tenants, &err)) {
        print_err("cannot list tenants", &err);
        status = EXIT_FAIL;
        goto done;
    }
    size_t width = strlen("TENANT"), i;
    json_t *t;
    json_array_foreach(tenants, i, t) {
        size_t n = strlen(json_string_value(t));
        if (n > width) width = n;
    }
    if (!as_json) printf("%-*s  %-3s  %10s  %s\n", (int)width, "TENANT", "OK", "ENTRIES",
                         "FIRST_BAD");
    if (json_array_size(tenants) == 0) fputs("agentprov audit: no audit entries\n", stderr);
    json_array_foreach(tenants, i, t) {
        const char *id = json_string_value(t);
        ap_arena_t *ta = ap_arena_new(1 << 16);
        ap_tx_t *tx;
        ap_audit_verify_t v;
        ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, ta, &tx, &err);
        if (!rc) rc = ap_audit_verify(tx, id, &v, &err);
        ap_arena_free(ta);
        if (rc) {
            char what[160];
            snprintf(what, sizeof what, "cannot verify tenant %s", id);
            print_err(what, &err);
            status = EXIT_FAIL;
            goto done;
        }
        if (!v.ok) {
            if (status == EXIT_OK) status = EXIT_BROKEN;
            fprintf(stderr, "agentprov audit: tenant %s: chain broken at seq %lld: %s\n", id,
                    (long long)v.first_bad_sequence, v.reason);
        }
        if (as_json) {
            json_array_append_new(results,
                                  json_pack("{s:s,s:b,s:I,s:o}", "tenant_id", id, "ok", v.ok,
                                            "entries_checked", (json_int_t)v.entries_checked,
                                            "first_bad_sequence",
                                            v.ok ? json_null()
                                                 : json_integer(v.first_bad_sequence)));
        } else {
            char bad[24] = "-";
            if (!v.ok) snprintf(bad, sizeof bad, "%lld", (long long)v.first_bad_sequence);
            printf("%-*s  %-3s  %10lld  %s\n", (int)width, id, v.ok ? "yes" : "NO",
                   (long long)v.entries_checked, bad);
        }
    }
    if (as_json) {
        json_dumpf(results, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) status = EXIT_FAIL;
done:
    json_decref(tenants);
    json_decref(results);
    ap_db_close(db);
    ap_arena_free(a);
    return status;
}

static int cmd_export(const opts_t *o) {
    ap_arena_t *a = ap_arena_new(1 << 16);
    ap_db_t *db = open_db(o, a);
    if (!db) {
        ap_arena_free(a);
        return EXIT_FAIL;
    }
    int status = EXIT_FAIL;
    FILE *out = stdout;
    char *tmp = NULL;
    ap_err_t err = {0};
    if (o->output) {
        tmp = ap_arena_printf(a, "%s.XXXXXX", o->output);
        int fd = mkstemp(tmp);
        if (fd < 0 || !(out = fdopen(fd, "w"))) {
            fprintf(stderr, "agentprov audit: cannot create %s: %s\n", o->output,
                    strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            out = NULL;
            goto done;
        }
    }
    ap_tx_t *tx = NULL;
    int64_t count = 0;
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_READ, a, &tx, &err);
    if (!rc) rc = ap_audit_export_jsonl(tx, o->tenant, out, &count, &err);
    /* Read only; and finished here on every path, because the arena that
     * would otherwise roll it back outlives the database (freed after
     * ap_db_close below). */
    ap_tx_rollback(tx);
    if (rc) {
        print_err("export failed", &err);
        goto done;
    }
    if (tmp) {
        int closed = fclose(out);
        out = NULL;
        if (closed != 0 || rename(tmp, o->output) != 0) {
            fprintf(stderr, "agentprov audit: cannot write %s: %s\n", o->output,
                    strerror(errno));
            goto done;
        }
        tmp = NULL;
        fprintf(stderr, "exported %lld entries to %s\n", (long long)count, o->output);
    }
    status = EXIT_OK;
done:
    if (out && out != stdout) fclose(out);
    if (tmp) unlink(tmp);
    ap_db_close(db);
    ap_arena_free(a);
    return status;
}

/* Percent-encodes value onto out at *n (RFC 3986 unreserved characters
 * and '*' stay as they are); false when it would not fit in cap. */
static bool encode(char *out, size_t cap, size_t *n, const char *value) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        bool plain = (*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
                     (*v >= '0' && *v <= '9') || strchr("-._~*", *v);
        if (*n + (plain ? 1 : 3) >= cap) return false;
        if (plain) {
            out[(*n)++] = (char)*v;
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[*v >> 4];
            out[(*n)++] = hex[*v & 15];
        }
    }
    out[*n] = '\0';
    return true;
}

/* Appends "?name=value" (or "&name=value" after the first); false when
 * the path would not fit.  A NULL value adds nothing. */
static bool add_query(char *path, size_t cap, const char *name, const char *value) {
    if (!value) return true;
    size_t n = strlen(path);
    int w = snprintf(path + n, cap - n, "%c%s=", strchr(path, '?') ? '&' : '?', name);
    if (w < 0 || (size_t)w >= cap - n) return false;
    n += (size_t)w;
    return encode(path, cap, &n, value);
}

static int cmd_list(const opts_t *o) {
    static const char *const cols[] = {"seq",         "time",        "actor_id", "action",
                                       "resource_type", "resource_id", "outcome",  NULL};
    char path[4096] = "/api/v1/audit";
    if (o->tenant) {
        size_t n = strlen("/api/v1/tenants/");
        memcpy(path, "/api/v1/tenants/", n + 1);
        if (!encode(path, sizeof path, &n, o->tenant) || n + sizeof "/audit" > sizeof path)
            return usage_error("--tenant is too long");
        memcpy(path + n, "/audit", sizeof "/audit");
    }
    if (!add_query(path, sizeof path, "action", o->action) ||
        !add_query(path, sizeof path, "actor", o->actor) ||
        !add_query(path, sizeof path, "resource_type", o->rtype) ||
        !add_query(path, sizeof path, "resource_id", o->rid) ||
        !add_query(path, sizeof path, "since", o->since) ||
        !add_query(path, sizeof path, "until", o->until) ||
        !add_query(path, sizeof path, "limit", o->limit) ||
        !add_query(path, sizeof path, "cursor", o->cursor))
        return usage_error("the filters are too long");
    json_t *out = NULL;
    if (ap_client_call("GET", path, NULL, &out) != 0) return 1;
    ap_client_print(out, cols, o->output_fmt && strcmp(o->output_fmt, "json") == 0);
    json_decref(out);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* argv[0] is "audit", argv[1] the action. */
int ap_cmd_audit(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *action = argv[1];
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0 ||
        strcmp(action, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    int which = strcmp(action, "verify") == 0   ? A_VERIFY
                : strcmp(action, "export") == 0 ? A_EXPORT
                : strcmp(action, "list") == 0   ? A_LIST
                                                : 0;
    if (!which) {
        if (action[0] == '-') return usage_error("unknown option %s", action);
        return usage_error("unknown action %s (want verify, export or list)", action);
    }
    opts_t o = {0};
    int st = parse_opts(argc, argv, which, &o);
    if (st >= 0) return st;
    if (which == A_LIST) return cmd_list(&o);
    bool is_verify = which == A_VERIFY;
    if (ap_crypto_init() != AP_OK) {
        fputs("agentprov audit: cannot initialise libsodium\n", stderr);
        return EXIT_FAIL;
    }
    return is_verify ? cmd_verify(&o) : cmd_export(&o);
}
