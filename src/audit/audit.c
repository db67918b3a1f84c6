/*
 * audit.c - the hash-chained audit log: append, verify, list, export.
 *
 * 1. The canonical form of an entry is built from column text, the same
 *    text verify reads back, so append and verify cannot disagree: every
 *    column but prev_hash and hash, seq as a JSON integer, NULL as null,
 *    `changes` as its stored string, dumped compact with sorted keys.
 * 2. Verify walks the chain in pages keyed by seq and reports the first
 *    entry it cannot trust: a missing seq is reported at the seq it
 *    expected, a broken link or a hash mismatch at the entry's own seq.
 *    entries_checked counts the entries that verified before it (all of
 *    them when ok).  Losing the newest entries of a chain cannot be seen
 *    from the chain alone; that needs an anchor kept elsewhere.
 * 3. A transaction opened for one tenant may only touch that tenant's
 *    chain.  PostgreSQL enforces it with RLS; the check here makes SQLite
 *    refuse the same calls, so a scoping bug fails on both backends.
 * 4. `action` prefix filters use substr() rather than LIKE: SQLite's LIKE
 *    ignores ASCII case and PostgreSQL's does not.  substr counts
 *    characters on both, so the prefix length is given in code points.
 * 5. Result rows live in the transaction's arena, so a long verify or
 *    export grows it page by page; callers give such work its own arena.
 * 6. list.limit 0 means 100 (a zeroed filter just works); otherwise 1..500.
 */
#include "audit/audit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/time.h"

#define PAGE 1000
#define CHANGES_MAX (64 * 1024)

enum {
    C_TENANT,
    C_SEQ,
    C_ID,
    C_TIME,
    C_ACTOR_TYPE,
    C_ACTOR_ID,
    C_ACTOR_ROLE,
    C_ACTION,
    C_RTYPE,
    C_RID,
    C_OUTCOME,
    C_REQUEST,
    C_ADDR,
    C_CHANGES,
    C_PREV,
    C_HASH,
    NCOLS
};

static const char *const col_names[NCOLS] = {
    "tenant_id",     "seq",         "id",         "time",       "actor_type", "actor_id",
    "actor_role",    "action",      "resource_type", "resource_id", "outcome",  "request_id",
    "client_addr",   "changes",     "prev_hash",  "hash",
};

/* Same order as col_names. */
#define SELECT_COLS                                                                       \
    "SELECT tenant_id, seq, id, time, actor_type, actor_id, actor_role, action, "        \
    "resource_type, resource_id, outcome, request_id, client_addr, changes, prev_hash, " \
    "hash FROM audit_log"

static bool parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = (int64_t)v;
    return true;
}

static bool blank(const char *s) {
    return !s || !*s;
}

static ap_rc invalid(ap_err_t *err, const char *field) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid audit entry",
                      "set every required field of the audit event",
                      "field \"%s\" is required", field);
}

/* See point 3. */
static ap_rc scope_check(ap_tx_t *tx, const char *tenant_id, ap_err_t *err) {
    const char *scope = ap_tx_tenant(tx);
    if (!scope || (tenant_id && strcmp(scope, tenant_id) == 0)) return AP_OK;
    return ap_err_set(err, AP_ERR_INTERNAL, NULL, "audit log access outside the tenant scope",
                      "open the transaction for the tenant whose log is read or written",
                      "transaction is scoped to tenant %s, call names %s", scope,
                      tenant_id ? tenant_id : "all tenants");
}

/* A JSON string of s; bytes of a value that is not valid UTF-8 (only a
 * tampered row can hold one) become '?' so the rest still renders. */
static json_t *str_json(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *c = ap_malloc(n + 1);
    for (size_t i = 0; i <= n; i++) c[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_string(c);
    ap_free(c);
    return j;
}

/* Canonical JSON (free with free()) of an entry's columns; NULL when a
 * value is not valid UTF-8. */
static char *canonical(const char *const v[NCOLS], int64_t seq) {
    json_t *o = json_object();
    for (int i = 0; i < C_PREV; i++) {
        json_t *j;
        if (i == C_SEQ)
            j = json_integer((json_int_t)seq);
        else if (!v[i])
            j = json_null();
        else if (!(j = json_string(v[i]))) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, col_names[i], j);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static void entry_hash(const char *prev, const char *canon, char out[AP_SHA256_HEX]) {
    size_t np = strlen(prev), nc = strlen(canon);
    char *m = ap_malloc(np + nc);
    memcpy(m, prev, np);
    memcpy(m + np, canon, nc);
    ap_sha256_hex(m, np + nc, out);
    ap_free(m);
}

ap_rc ap_audit_append(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                      const ap_audit_event_t *ev, int64_t *seq_out, ap_err_t *err) {
    if (blank(tenant_id)) return invalid(err, "tenant_id");
    if (!actor || blank(actor->type)) return invalid(err, "actor.type");
    if (!ev || blank(ev->action)) return invalid(err, "action");
    if (blank(ev->resource_type)) return invalid(err, "resource_type");
    if (blank(ev->outcome)) return invalid(err, "outcome");
    ap_rc rc = scope_check(tx, tenant_id, err);
    if (rc) return rc;

    ap_arena_t *a = ap_tx_arena(tx);
    rc = ap_tx_lock(tx, ap_arena_printf(a, "audit:%s", tenant_id), err);
    if (rc) return rc;
    ap_rows_t r;
    rc = ap_tx_query(tx,
                     "SELECT seq, hash FROM audit_log WHERE tenant_id = ? "
                     "ORDER BY seq DESC LIMIT 1",
                     (ap_val_t[]){AP_VTEXT(tenant_id)}, 1, &r, err);
    if (rc) return rc;
    int64_t seq = 1;
    const char *prev = AP_AUDIT_GENESIS;
    if (r.nrows) {
        int64_t last;
        prev = ap_rows_at(&r, 0, 1);
        if (!parse_i64(ap_rows_at(&r, 0, 0), &last) || !prev)
            return ap_err_set(err, AP_ERR_INTERNAL, NULL, "audit chain head is unreadable",
                              "run agentprov audit verify", "tenant %s", tenant_id);
        seq = last + 1;
    }

    char *changes = NULL;
    if (ev->changes) {
        changes = json_dumps(ev->changes, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        size_t n = changes ? strlen(changes) : 0;
        if (n > CHANGES_MAX) {
            free(changes);
            return ap_err_set(err, AP_ERR_TOO_LARGE, NULL, "audit changes too large",
                              "record a summary of the change, not its content",
                              "changes is %zu bytes, the maximum is %d", n, CHANGES_MAX);
        }
    }
    char id[AP_UUID_LEN], now[AP_TIME_LEN], seqs[24];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    snprintf(seqs, sizeof seqs, "%lld", (long long)seq);

    const char *v[NCOLS] = {
        [C_TENANT] = tenant_id,        [C_SEQ] = seqs,
        [C_ID] = id,                   [C_TIME] = now,
        [C_ACTOR_TYPE] = actor->type,  [C_ACTOR_ID] = actor->id,
        [C_ACTOR_ROLE] = actor->role,  [C_ACTION] = ev->action,
        [C_RTYPE] = ev->resource_type, [C_RID] = ev->resource_id,
        [C_OUTCOME] = ev->outcome,     [C_REQUEST] = actor->request_id,
        [C_ADDR] = actor->client_addr, [C_CHANGES] = changes,
    };
    char *canon = canonical(v, seq);
    if (!canon) {
        free(changes);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid audit entry",
                          "pass UTF-8 text", "a field of the audit entry is not valid UTF-8");
    }
    char hash[AP_SHA256_HEX];
    entry_hash(prev, canon, hash);
    free(canon);
    v[C_PREV] = prev;
    v[C_HASH] = hash;

    ap_val_t p[NCOLS];
    for (int i = 0; i < NCOLS; i++) p[i] = i == C_SEQ ? AP_VINT(seq) : AP_VTEXT(v[i]);
    rc = ap_tx_query(tx,
                     "INSERT INTO audit_log (tenant_id, seq, id, time, actor_type, actor_id, "
                     "actor_role, action, resource_type, resource_id, outcome, request_id, "
                     "client_addr, changes, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     p, NCOLS, NULL, err);
    free(changes);
    if (rc) return rc;
    if (seq_out) *seq_out = seq;
    return AP_OK;
}

static void bad(ap_audit_verify_t *out, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bad(ap_audit_verify_t *out, int64_t seq, const char *fmt, ...) {
    out->ok = false;
    out->first_bad_sequence = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

/* Checks one row against the chain so far; false (and *out filled) when
 * the entry is bad. */
static bool check_row(const char *const v[NCOLS], int64_t expect, const char *prev,
                      ap_audit_verify_t *out) {
    int64_t seq;
    if (!parse_i64(v[C_SEQ], &seq)) {
        bad(out, expect, "seq after %lld is not an integer", (long long)(expect - 1));
        return false;
    }
    if (seq != expect) {
        if (seq > expect)
            bad(out, expect, "entry %lld is missing (next is %lld)", (long long)expect,
                (long long)seq);
        else
            bad(out, expect, "unexpected entry with seq %lld before %lld", (long long)seq,
                (long long)expect);
        return false;
    }
    if (!v[C_PREV] || strcmp(v[C_PREV], prev) != 0) {
        if (expect == 1)
            bad(out, seq, "prev_hash of the first entry is not the genesis hash");
        else
            bad(out, seq, "prev_hash does not match the hash of entry %lld",
                (long long)(seq - 1));
        return false;
    }
    char *canon = canonical(v, seq);
    if (!canon) {
        bad(out, seq, "entry holds text that is not valid UTF-8");
        return false;
    }
    char hash[AP_SHA256_HEX];
    entry_hash(prev, canon, hash);
    free(canon);
    if (!v[C_HASH] || strcmp(v[C_HASH], hash) != 0) {
        bad(out, seq, "hash does not match the entry's contents");
        return false;
    }
    return true;
}

ap_rc ap_audit_verify(ap_tx_t *tx, const char *tenant_id, ap_audit_verify_t *out,
                      ap_err_t *err) {
    memset(out, 0, sizeof *out);
    out->ok = true;
    if (blank(tenant_id)) return invalid(err, "tenant_id");
    ap_rc rc = scope_check(tx, tenant_id, err);
    if (rc) return rc;

    char prev[AP_SHA256_HEX] = AP_AUDIT_GENESIS;
    int64_t expect = 1, after = INT64_MIN;
    for (;;) {
        ap_rows_t r;
        rc = ap_tx_query(tx,
                         SELECT_COLS " WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                         (ap_val_t[]){AP_VTEXT(tenant_id), AP_VINT(after), AP_VINT(PAGE)}, 3,
                         &r, err);
        if (rc) return rc;
        for (int i = 0; i < r.nrows; i++) {
            const char *v[NCOLS];
            for (int c = 0; c < NCOLS; c++) v[c] = ap_rows_at(&r, i, c);
            if (!check_row(v, expect, prev, out)) return AP_OK;
            snprintf(prev, sizeof prev, "%s", v[C_HASH]);
            out->entries_checked++;
            after = expect++;
        }
        if (r.nrows < PAGE) break;
    }
    return AP_OK;
}

/* One entry as a JSON object with every column (new reference). */
static json_t *entry_json(const ap_rows_t *r, int row) {
    json_t *o = json_object();
    for (int c = 0; c < NCOLS; c++) {
        const char *v = ap_rows_at(r, row, c);
        json_t *j = NULL;
        int64_t n;
        if (!v)
            j = json_null();
        else if (c == C_SEQ && parse_i64(v, &n))
            j = json_integer((json_int_t)n);
        else if (c == C_CHANGES)
            j = json_loads(v, JSON_DECODE_ANY, NULL);
        if (!j) j = str_json(v);
        json_object_set_new(o, col_names[c], j);
    }
    return o;
}

/* Appends a constant SQL fragment; the fragments below always fit. */
static void sql_add(char *sql, size_t cap, size_t *len, const char *frag) {
    size_t n = strlen(frag);
    if (*len + n >= cap) abort(); /* programmer mistake: fragments are constant */
    memcpy(sql + *len, frag, n + 1);
    *len += n;
}

static size_t utf8_chars(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static ap_rc bad_time(ap_err_t *err, const char *field, const char *value) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid time",
                      "use RFC 3339, e.g. 2026-01-31T12:00:00Z",
                      "%s \"%.200s\" is not an RFC 3339 time", field, value);
}

ap_rc ap_audit_list(ap_tx_t *tx, const char *tenant_id, const ap_audit_filter_t *f,
                    json_t **out, int64_t *next_seq, ap_err_t *err) {
    static const ap_audit_filter_t no_filter = {0};
    if (!f) f = &no_filter;
    *out = NULL;
    *next_seq = 0;
    if (blank(tenant_id)) return invalid(err, "tenant_id");
    ap_rc rc = scope_check(tx, tenant_id, err);
    if (rc) return rc;
    int limit = f->limit ? f->limit : 100;
    if (limit < 1 || limit > 500)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid limit",
                          "use a limit between 1 and 500", "limit %d is out of range",
                          f->limit);

    ap_arena_t *a = ap_tx_arena(tx);
    char sql[1024];
    size_t len = 0;
    ap_val_t p[10];
    int np = 0;
    sql[0] = '\0';
    sql_add(sql, sizeof sql, &len, SELECT_COLS " WHERE tenant_id = ?");
    p[np++] = AP_VTEXT(tenant_id);
    if (f->since) {
        int64_t ms;
        if (!ap_time_parse(f->since, &ms)) return bad_time(err, "since", f->since);
        char *t = ap_arena_alloc(a, AP_TIME_LEN);
        ap_time_format(ms, t);
        sql_add(sql, sizeof sql, &len, " AND time >= ?");
        p[np++] = AP_VTEXT(t);
    }
    if (f->until) {
        int64_t ms;
        if (!ap_time_parse(f->until, &ms)) return bad_time(err, "until", f->until);
        char *t = ap_arena_alloc(a, AP_TIME_LEN);
        ap_time_format(ms, t);
        sql_add(sql, sizeof sql, &len, " AND time < ?");
        p[np++] = AP_VTEXT(t);
    }
    if (f->actor_id) {
        sql_add(sql, sizeof sql, &len, " AND actor_id = ?");
        p[np++] = AP_VTEXT(f->actor_id);
    }
    if (f->action) {
        size_t n = strlen(f->action);
        if (n && f->action[n - 1] == '*') {
            if (n > 1) { /* a bare "*" matches everything */
                sql_add(sql, sizeof sql, &len, " AND substr(action, 1, ?) = ?");
                p[np++] = AP_VINT(utf8_chars(f->action, n - 1));
                p[np++] = AP_VTEXT(ap_arena_strndup(a, f->action, n - 1));
            }
        } else {
            sql_add(sql, sizeof sql, &len, " AND action = ?");
            p[np++] = AP_VTEXT(f->action);
        }
    }
    if (f->resource_type) {
        sql_add(sql, sizeof sql, &len, " AND resource_type = ?");
        p[np++] = AP_VTEXT(f->resource_type);
    }
    if (f->resource_id) {
        sql_add(sql, sizeof sql, &len, " AND resource_id = ?");
        p[np++] = AP_VTEXT(f->resource_id);
    }
    if (f->after_seq > 0) {
        sql_add(sql, sizeof sql, &len, " AND seq > ?");
        p[np++] = AP_VINT(f->after_seq);
    }
    sql_add(sql, sizeof sql, &len, " ORDER BY seq LIMIT ?");
    p[np++] = AP_VINT(limit + 1);

    ap_rows_t r;
    rc = ap_tx_query(tx, sql, p, np, &r, err);
    if (rc) return rc;
    int n = r.nrows > limit ? limit : r.nrows;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, entry_json(&r, i));
    if (r.nrows > limit) parse_i64(ap_rows_at(&r, n - 1, C_SEQ), next_seq);
    *out = arr;
    return AP_OK;
}

ap_rc ap_audit_export_jsonl(ap_tx_t *tx, const char *tenant_id, FILE *out, int64_t *count,
                            ap_err_t *err) {
    *count = 0;
    ap_rc rc = scope_check(tx, tenant_id, err);
    if (rc) return rc;
    /* Keyset paging on (tenant_id, seq); tenant "" sorts before any id. */
    const char *after_tenant = "";
    int64_t after_seq = INT64_MIN;
    for (;;) {
        ap_rows_t r;
        if (tenant_id)
            rc = ap_tx_query(tx,
                             SELECT_COLS " WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                             (ap_val_t[]){AP_VTEXT(tenant_id), AP_VINT(after_seq),
                                          AP_VINT(PAGE)},
                             3, &r, err);
        else
            rc = ap_tx_query(tx,
                             SELECT_COLS " WHERE tenant_id > ? OR (tenant_id = ? AND seq > ?) "
                                         "ORDER BY tenant_id, seq LIMIT ?",
                             (ap_val_t[]){AP_VTEXT(after_tenant), AP_VTEXT(after_tenant),
                                          AP_VINT(after_seq), AP_VINT(PAGE)},
                             4, &r, err);
        if (rc) return rc;
        for (int i = 0; i < r.nrows; i++) {
            json_t *o = entry_json(&r, i);
            int w = json_dumpf(o, out, JSON_COMPACT);
            json_decref(o);
            if (w != 0 || fputc('\n', out) == EOF)
                return ap_err_set(err, AP_ERR_IO, NULL, "cannot write the export",
                                  "check the output file and free disk space",
                                  "write failed after %lld entries", (long long)*count);
            (*count)++;
        }
        if (r.nrows < PAGE) break;
        after_tenant = ap_rows_at(&r, r.nrows - 1, C_TENANT);
        if (!parse_i64(ap_rows_at(&r, r.nrows - 1, C_SEQ), &after_seq))
            return ap_err_set(err, AP_ERR_INTERNAL, NULL, "audit entry is unreadable",
                              "run agentprov audit verify", "seq \"%s\" of tenant %s",
                              ap_rows_at(&r, r.nrows - 1, C_SEQ), after_tenant);
    }
    if (fflush(out) != 0 || ferror(out))
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot write the export",
                          "check the output file and free disk space", "write failed");
    return AP_OK;
}

ap_rc ap_audit_tenants(ap_tx_t *tx, json_t **out, ap_err_t *err) {
    *out = NULL;
    const char *scope = ap_tx_tenant(tx);
    ap_rows_t r;
    ap_rc rc =
        scope ? ap_tx_query(tx,
                            "SELECT DISTINCT tenant_id FROM audit_log WHERE tenant_id = ? "
                            "ORDER BY tenant_id",
                            (ap_val_t[]){AP_VTEXT(scope)}, 1, &r, err)
              : ap_tx_query(tx, "SELECT DISTINCT tenant_id FROM audit_log ORDER BY tenant_id",
                            NULL, 0, &r, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r.nrows; i++) json_array_append_new(arr, str_json(ap_rows_at(&r, i, 0)));
    *out = arr;
    return AP_OK;
}
