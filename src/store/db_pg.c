/*
 * db_pg.c - the PostgreSQL backend (libpq): a connection pool, tenant
 * scoping for row-level security, `?` placeholders, SQLSTATE mapping.
 *
 * 1. The pool opens one connection in `open` (so a wrong URL or a server
 *    that is down fails at start, not on the first request) and the rest
 *    lazily, up to the pool size.  A checked-out connection belongs to one
 *    thread; the pool itself is guarded by one mutex and a condition
 *    variable.  A waiter gives up after POOL_WAIT_MS with
 *    AP_ERR_UNAVAILABLE, so a thread that opens a second transaction while
 *    holding the last connection gets an error instead of a deadlock.
 * 2. A connection that was released as broken, lost its socket, or still
 *    has a transaction open is closed rather than pooled; the next acquire
 *    reconnects.  So tenant settings can never leak from one transaction to
 *    the next, and `begin` retries once on a fresh connection when the
 *    server dropped an idle one (restart, idle_session_timeout): nothing
 *    has run yet, so the retry is safe.
 * 3. Tenant scope is two transaction-local settings (set_config(..., true))
 *    that the RLS policies read: app.tenant_id and app.platform.  They die
 *    with COMMIT/ROLLBACK.  `mode` is not turned into READ ONLY: SQLite
 *    cannot enforce it, and a mode that only fails on one backend would
 *    hide bugs until production.
 * 4. `?` becomes `$n` outside string literals, quoted identifiers, comments
 *    and dollar quotes; `?NNN` keeps its number, as in SQLite.  PostgreSQL's
 *    jsonb `?` operators therefore cannot be written (use jsonb_exists()).
 *    Every parameter is sent as text with no type (the server infers it),
 *    which matches SQLite's loose typing; an untyped `? IS NULL` needs a
 *    CAST.  Statements go through PQexecParams (one round trip, unnamed
 *    statement) rather than a per-connection prepared-statement cache:
 *    simpler, and it survives schema changes and transaction poolers.
 * 5. Results are copied into the caller's arena in one block.  Boolean
 *    columns come back as "1"/"0", as SQLite returns them, so callers read
 *    the same text from both backends.
 * 6. The URL's password never reaches an error or a log line: libpq's
 *    messages are scrubbed of it (raw and decoded) before they are copied.
 *    Connections get client_encoding UTF8 and application_name agentprov
 *    (a fallback: the URL or PGAPPNAME may name the node differently) as
 *    startup parameters, which costs no extra round trip.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/db_backend.h"

#ifndef AP_TESTABLE
#ifdef AP_TESTING
#define AP_TESTABLE
#else
#define AP_TESTABLE static
#endif
#endif

#define POOL_DEFAULT 8
#ifndef POOL_WAIT_MS
#define POOL_WAIT_MS 30000
#endif
#define BOOL_OID 16
#define NUM_LEN 32 /* room for an int64 or a %.17g double */

typedef struct pg_pool pg_pool_t;

typedef struct pg_conn {
    PGconn *pc;
    pg_pool_t *pool;
    struct pg_conn *next; /* idle list */
    bool broken;          /* connection lost mid-transaction: do not pool */
} pg_conn_t;

struct pg_pool {
    char *url; /* holds the password: wiped on close, never logged */
    int size;
    int count;  /* connections that exist or are being opened */
    int in_use; /* checked out */
    int64_t waits;
    pg_conn_t *idle;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* ---- keeping the password out of messages ------------------------------ */

typedef struct {
    char *s[3];
} secrets_t;

static void secrets_add(secrets_t *sc, const char *p, size_t n) {
    if (!p || n == 0) return;
    for (int i = 0; i < 3; i++) {
        if (!sc->s[i]) {
            sc->s[i] = ap_strndup(p, n);
            return;
        }
    }
}

/* The password as written in the URL (user:PASS@host, or ?password=PASS)
 * and as libpq decodes it: libpq's messages may quote either. */
static void secrets_from_url(const char *url, secrets_t *sc) {
    memset(sc, 0, sizeof *sc);
    const char *p = strstr(url, "://");
    if (p) {
        p += 3;
        size_t n = strcspn(p, "/?");
        const char *at = NULL;
        for (const char *q = p; q < p + n; q++)
            if (*q == '@') at = q;
        const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
        if (colon) secrets_add(sc, colon + 1, (size_t)(at - colon - 1));
    }
    const char *q = strstr(url, "password=");
    if (q) {
        q += 9;
        secrets_add(sc, q, strcspn(q, "&"));
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, "password") == 0 && o->val)
                secrets_add(sc, o->val, strlen(o->val));
        PQconninfoFree(opts);
    }
    PQfreemem(perr);
}

static void secrets_free(secrets_t *sc) {
    for (int i = 0; i < 3; i++) {
        if (sc->s[i]) {
            explicit_bzero(sc->s[i], strlen(sc->s[i]));
            ap_free(sc->s[i]);
        }
    }
}

/* Copies a libpq message into out as one line, each secret replaced. */
static void scrub(const char *msg, const secrets_t *sc, char *out, size_t cap) {
    size_t o = 0;
    const char *m = msg ? msg : "";
    while (*m && o + 1 < cap) {
        size_t hit = 0;
        for (int i = 0; sc && i < 3 && !hit; i++)
            if (sc->s[i] && strncmp(m, sc->s[i], strlen(sc->s[i])) == 0) hit = strlen(sc->s[i]);
        if (hit) {
            for (const char *r = "***"; *r && o + 1 < cap; r++) out[o++] = *r;
            m += hit;
            continue;
        }
        if (*m == '\n' || *m == '\t' || *m == '\r') {
            if (o > 0 && out[o - 1] != ' ') out[o++] = ' ';
            m++;
            continue;
        }
        out[o++] = *m++;
    }
    while (o > 0 && out[o - 1] == ' ') o--;
    out[o] = '\0';
}

/* ---- connections ------------------------------------------------------- */

static void notice_receiver(void *arg, const PGresult *res) {
    (void)arg;
    if (!ap_log_enabled(AP_LOG_DEBUG)) return;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    ap_log(AP_LOG_DEBUG, "postgresql notice", "{s:s,s:s,s:s}", "severity", sev ? sev : "",
           "sqlstate", state ? state : "", "notice", msg ? msg : "");
}

static ap_rc connect_fail(const char *url, const char *libpq_msg, ap_err_t *err) {
    secrets_t sc;
    secrets_from_url(url, &sc);
    char detail[512];
    scrub(libpq_msg, &sc, detail, sizeof detail);
    secrets_free(&sc);
    return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "cannot connect to postgresql",
                      "check that the server is running and the database url is right", "%s",
                      detail);
}

static ap_rc pg_connect(pg_pool_t *p, PGconn **out, ap_err_t *err) {
    /* Entries before dbname can be overridden by the URL; after, cannot. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname",
                                "client_encoding", NULL};
    const char *const vals[] = {"10", "agentprov", p->url, "UTF8", NULL};
    PGconn *pc = PQconnectdbParams(keys, vals, 1);
    if (!pc) return connect_fail(p->url, "out of memory", err);
    if (PQstatus(pc) != CONNECTION_OK) {
        ap_rc rc = connect_fail(p->url, PQerrorMessage(pc), err);
        PQfinish(pc);
        return rc;
    }
    PQsetNoticeReceiver(pc, notice_receiver, NULL);
    *out = pc;
    return AP_OK;
}

/* ---- errors ------------------------------------------------------------ */

/* 1-based line of the 1-based character position pos in sql. */
static int line_of(const char *sql, long pos) {
    int line = 1;
    long ch = 0;
    for (const unsigned char *s = (const unsigned char *)sql; *s; s++) {
        if ((*s & 0xC0) == 0x80) continue; /* UTF-8 continuation byte */
        if (++ch >= pos) break;
        if (*s == '\n') line++;
    }
    return line;
}

/* Maps a failed result (or a lost connection) to ap_rc.  script_sql, when
 * given, turns the error position into a line number for migrations. */
static ap_rc pg_fail(pg_conn_t *c, const PGresult *res, const char *script_sql, ap_err_t *err) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char detail[400];
    if (primary) {
        snprintf(detail, sizeof detail, "%s", primary);
    } else {
        /* Client-side failures (lost connection) carry no fields; the
         * message never contains the password (it comes from the server
         * or the socket layer), but keep it to one line. */
        const char *m = res ? PQresultErrorMessage(res) : NULL;
        scrub(m && *m ? m : PQerrorMessage(c->pc), NULL, detail, sizeof detail);
    }
    if (PQstatus(c->pc) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0)) {
        c->broken = true;
        return ap_err_set(err, AP_ERR_IO, NULL, "lost connection to postgresql",
                          "retry the request", "%s", detail);
    }
    if (script_sql && res) {
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        if (pos) {
            size_t n = strlen(detail);
            snprintf(detail + n, sizeof detail - n, " (line %d)", line_of(script_sql, atol(pos)));
        }
    }
    if (!state) state = "";
    if (!strcmp(state, "23505") || !strcmp(state, "23503") || !strcmp(state, "23P01") ||
        !strcmp(state, "23001"))
        return ap_err_set(err, AP_ERR_CONFLICT, NULL, "conflicts with an existing record", NULL,
                          "%s", detail);
    if (!strcmp(state, "23502") || !strcmp(state, "23514") || !strncmp(state, "22", 2))
        return ap_err_set(err, AP_ERR_INVALID, NULL, "invalid value", "check the values sent", "%s",
                          detail);
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03") ||
        !strcmp(state, "57014"))
        return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "database is busy", "retry the request",
                          "%s", detail);
    if (!strcmp(state, "42501"))
        return ap_err_set(err, AP_ERR_DENIED, NULL, "not permitted by the database", NULL, "%s",
                          detail);
    return ap_err_set(err, AP_ERR_IO, "storage-error", "database error", NULL, "%s%s%s", detail,
                      *state ? " sqlstate " : "", state);
}

/* ---- pool -------------------------------------------------------------- */

static ap_rc pg_open(const char *url, int pool_size, void **impl, ap_err_t *err) {
    if (!PQisthreadsafe())
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "libpq is not thread-safe",
                          "build against a thread-safe libpq", NULL);
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        secrets_t sc;
        secrets_from_url(url, &sc);
        char detail[512];
        scrub(perr ? perr : "cannot parse the url", &sc, detail, sizeof detail);
        secrets_free(&sc);
        PQfreemem(perr);
        return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "invalid database url",
                          "use postgres://user:password@host:port/database", "%s", detail);
    }
    PQconninfoFree(opts);

    pg_pool_t *p = ap_calloc(1, sizeof *p);
    p->url = ap_strdup(url);
    p->size = pool_size > 0 ? pool_size : POOL_DEFAULT;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);

    PGconn *pc = NULL;
    ap_rc rc = pg_connect(p, &pc, err);
    if (rc) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        explicit_bzero(p->url, strlen(p->url));
        ap_free(p->url);
        ap_free(p);
        return rc;
    }
    pg_conn_t *c = ap_calloc(1, sizeof *c);
    c->pc = pc;
    c->pool = p;
    p->idle = c;
    p->count = 1;
    *impl = p;
    return AP_OK;
}

static void conn_free(pg_conn_t *c) {
    PQfinish(c->pc);
    ap_free(c);
}

static void pg_close(void *impl) {
    pg_pool_t *p = impl;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    pg_conn_t *idle = p->idle;
    p->idle = NULL;
    int in_use = p->in_use;
    pthread_mutex_unlock(&p->mu);
    while (idle) {
        pg_conn_t *next = idle->next;
        conn_free(idle);
        idle = next;
    }
    if (in_use > 0) {
        /* A transaction still holds a connection and will release it into
         * this pool: keep the pool alive (leak it) rather than crash. */
        ap_log(AP_LOG_ERROR, "database closed with transactions still open", "{s:i}", "in_use",
               in_use);
        return;
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    explicit_bzero(p->url, strlen(p->url));
    ap_free(p->url);
    ap_free(p);
}

/* Gives up a slot (a connection that was closed or never opened). */
static void slot_drop(pg_pool_t *p) {
    pthread_mutex_lock(&p->mu);
    p->count--;
    p->in_use--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static ap_rc pg_acquire(void *impl, void **conn, ap_err_t *err) {
    pg_pool_t *p = impl;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += POOL_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(POOL_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&p->mu);
    bool counted = false;
    while (!p->idle && p->count >= p->size) {
        if (!counted) {
            p->waits++;
            counted = true;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT && !p->idle &&
            p->count >= p->size) {
            int size = p->size;
            pthread_mutex_unlock(&p->mu);
            return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "database connection pool exhausted",
                              "retry the request, or raise the database pool size",
                              "all %d connections stayed busy for %d ms", size, POOL_WAIT_MS);
        }
    }
    p->in_use++;
    pg_conn_t *c = p->idle;
    if (c) {
        p->idle = c->next;
        c->next = NULL;
    } else {
        p->count++;
    }
    pthread_mutex_unlock(&p->mu);

    if (c) {
        *conn = c;
        return AP_OK;
    }
    PGconn *pc = NULL;
    ap_rc rc = pg_connect(p, &pc, err);
    if (rc) {
        slot_drop(p);
        return rc;
    }
    c = ap_calloc(1, sizeof *c);
    c->pc = pc;
    c->pool = p;
    *conn = c;
    return AP_OK;
}

static void pg_release(void *impl, void *conn, bool broken) {
    pg_pool_t *p = impl;
    pg_conn_t *c = conn;
    if (broken || c->broken || PQstatus(c->pc) != CONNECTION_OK ||
        PQtransactionStatus(c->pc) != PQTRANS_IDLE) {
        conn_free(c);
        slot_drop(p);
        return;
    }
    pthread_mutex_lock(&p->mu);
    c->next = p->idle;
    p->idle = c;
    p->in_use--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void pg_stats(void *impl, ap_db_stats_t *out) {
    pg_pool_t *p = impl;
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->in_use = p->in_use;
    out->waits = p->waits;
    pthread_mutex_unlock(&p->mu);
}

/* ---- transactions ------------------------------------------------------ */

static ap_rc pg_begin(void *conn, const char *tenant_id, ap_tx_mode mode, ap_err_t *err) {
    (void)mode; /* see decision 3 */
    pg_conn_t *c = conn;
    PGresult *res = PQexec(c->pc, "BEGIN");
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQstatus(c->pc) != CONNECTION_OK) {
        /* The server dropped this pooled connection while it sat idle. */
        PQclear(res);
        PQreset(c->pc);
        if (PQstatus(c->pc) != CONNECTION_OK) {
            c->broken = true;
            return connect_fail(c->pool->url, PQerrorMessage(c->pc), err);
        }
        ap_log(AP_LOG_WARN, "reconnected to postgresql", NULL);
        res = PQexec(c->pc, "BEGIN");
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ap_rc rc = pg_fail(c, res, NULL, err);
        PQclear(res);
        return rc;
    }
    PQclear(res);

    const char *params[2] = {tenant_id ? tenant_id : "", tenant_id ? "off" : "on"};
    res = PQexecParams(c->pc,
                       "SELECT set_config('app.tenant_id', $1, true), "
                       "set_config('app.platform', $2, true)",
                       2, NULL, params, NULL, NULL, 0);
    ap_rc rc = AP_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) rc = pg_fail(c, res, NULL, err);
    PQclear(res);
    return rc;
}

static ap_rc pg_commit(void *conn, ap_err_t *err) {
    pg_conn_t *c = conn;
    PGresult *res = PQexec(c->pc, "COMMIT");
    ap_rc rc = AP_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(c, res, NULL, err);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        /* COMMIT of an aborted transaction "succeeds" as ROLLBACK. */
        rc = ap_err_set(err, AP_ERR_IO, "storage-error", "transaction was rolled back",
                        "retry the request", "the server answered %s to COMMIT",
                        PQcmdStatus(res));
    PQclear(res);
    return rc;
}

static void pg_rollback(void *conn) {
    pg_conn_t *c = conn;
    PGTransactionStatusType ts = PQtransactionStatus(c->pc);
    if (ts == PQTRANS_IDLE) return; /* e.g. after a failed COMMIT */
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR) {
        c->broken = true;
        return;
    }
    PGresult *res = PQexec(c->pc, "ROLLBACK");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) c->broken = true;
    PQclear(res);
}

/* ---- statements -------------------------------------------------------- */

static bool ident_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || (unsigned char)ch >= 0x80;
}

/* Length of a dollar-quote tag ("$$" or "$name$") starting at s, or 0. */
static size_t dollar_tag(const char *s) {
    size_t n = 1;
    if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' ||
          s[n] == '$'))
        return 0;
    while (s[n] != '$' && ident_char(s[n])) n++;
    return s[n] == '$' ? n + 1 : 0;
}

/* Rewrites `?` and `?NNN` placeholders to `$n` (decision 4).  Returns a
 * string the caller frees with ap_free; *nparams gets the highest
 * placeholder number (0 when there are none). */
AP_TESTABLE char *ap_db_pg_rewrite(const char *sql, int *nparams) {
    size_t len = strlen(sql), q = 0;
    for (size_t i = 0; i < len; i++) q += sql[i] == '?';
    char *out = ap_malloc(len + q * 11 + 1);
    size_t o = 0, i = 0;
    long max = 0;
    while (i < len) {
        char ch = sql[i];
        size_t start = i;
        if (ch == '\'') {
            /* E'...' strings also take backslash escapes. */
            bool esc = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                       (i < 2 || !ident_char(sql[i - 2]));
            i++;
            while (i < len) {
                if (esc && sql[i] == '\\' && i + 1 < len) {
                    i += 2;
                } else if (sql[i] == '\'') {
                    if (i + 1 < len && sql[i + 1] == '\'') {
                        i += 2;
                    } else {
                        i++;
                        break;
                    }
                } else {
                    i++;
                }
            }
        } else if (ch == '"') {
            i++;
            while (i < len) {
                if (sql[i] == '"') {
                    if (i + 1 < len && sql[i + 1] == '"') {
                        i += 2;
                    } else {
                        i++;
                        break;
                    }
                } else {
                    i++;
                }
            }
        } else if (ch == '-' && i + 1 < len && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n') i++;
        } else if (ch == '/' && i + 1 < len && sql[i + 1] == '*') {
            int depth = 1; /* PostgreSQL block comments nest */
            i += 2;
            while (i < len && depth > 0) {
                if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
        } else if (ch == '$' && (i == 0 || !ident_char(sql[i - 1])) && dollar_tag(sql + i)) {
            size_t tl = dollar_tag(sql + i);
            i += tl;
            while (i < len && strncmp(sql + i, sql + start, tl) != 0) i++;
            i = i < len ? i + tl : len;
        } else if (ch == '?') {
            i++;
            long num = 0;
            bool explicit_num = false;
            while (i < len && sql[i] >= '0' && sql[i] <= '9' && num < 1000000) {
                num = num * 10 + (sql[i++] - '0');
                explicit_num = true;
            }
            if (!explicit_num) num = max + 1;
            if (num > max) max = num;
            o += (size_t)snprintf(out + o, 12, "$%ld", num);
            continue;
        } else {
            i++;
        }
        memcpy(out + o, sql + start, i - start);
        o += i - start;
    }
    out[o] = '\0';
    *nparams = (int)max;
    return out;
}

static const char *fmt_param(const ap_val_t *v, char *buf) {
    switch (v->t) {
    case AP_V_TEXT: return v->s;
    case AP_V_INT: snprintf(buf, NUM_LEN, "%" PRId64, v->i); return buf;
    case AP_V_REAL:
        if (isnan(v->d)) return "NaN";
        if (isinf(v->d)) return v->d > 0 ? "Infinity" : "-Infinity";
        snprintf(buf, NUM_LEN, "%.17g", v->d);
        return buf;
    case AP_V_NULL: break;
    }
    return NULL;
}

static void copy_rows(const PGresult *res, ap_arena_t *a, ap_rows_t *out) {
    int nr = PQntuples(res), nc = PQnfields(res);
    out->nrows = nr;
    out->ncols = nc;
    out->cols = ap_arena_alloc(a, sizeof(char *) * (size_t)(nc ? nc : 1));
    for (int j = 0; j < nc; j++) out->cols[j] = ap_arena_strdup(a, PQfname(res, j));
    size_t cells = (size_t)nr * (size_t)nc, bytes = 0;
    out->vals = ap_arena_alloc(a, sizeof(char *) * (cells ? cells : 1));
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nc; j++)
            if (!PQgetisnull(res, r, j)) bytes += (size_t)PQgetlength(res, r, j) + 1;
    char *blk = bytes ? ap_arena_alloc(a, bytes) : NULL;
    for (int j = 0; j < nc; j++) {
        bool is_bool = PQftype(res, j) == BOOL_OID;
        for (int r = 0; r < nr; r++) {
            const char **cell = &out->vals[(size_t)r * (size_t)nc + (size_t)j];
            if (PQgetisnull(res, r, j)) {
                *cell = NULL;
                continue;
            }
            const char *v = PQgetvalue(res, r, j);
            size_t n = (size_t)PQgetlength(res, r, j);
            if (is_bool && n == 1) v = *v == 't' ? "1" : "0";
            memcpy(blk, v, n);
            blk[n] = '\0';
            *cell = blk;
            blk += n + 1;
        }
    }
}

static int64_t changes_of(PGresult *res) {
    const char *st = PQcmdStatus(res);
    if (strncmp(st, "INSERT", 6) && strncmp(st, "UPDATE", 6) && strncmp(st, "DELETE", 6) &&
        strncmp(st, "MERGE", 5))
        return 0;
    const char *n = PQcmdTuples(res);
    return *n ? strtoll(n, NULL, 10) : 0;
}

static ap_rc pg_query(void *conn, ap_arena_t *a, const char *sql, const ap_val_t *params,
                      int nparams, ap_rows_t *out, ap_err_t *err) {
    pg_conn_t *c = conn;
    int want = 0;
    char *text = ap_db_pg_rewrite(sql, &want);
    if (want != nparams) {
        ap_free(text);
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "wrong number of query parameters", NULL,
                          "the statement has %d placeholders but %d values were given", want,
                          nparams);
    }
    const char **vals = NULL;
    char *nums = NULL;
    if (nparams > 0) {
        vals = ap_malloc(sizeof *vals * (size_t)nparams);
        nums = ap_malloc((size_t)NUM_LEN * (size_t)nparams);
        for (int k = 0; k < nparams; k++) vals[k] = fmt_param(&params[k], nums + k * NUM_LEN);
    }
    PGresult *res = PQexecParams(c->pc, text, nparams, NULL, vals, NULL, NULL, 0);
    ap_free(vals);
    ap_free(nums);
    ap_free(text);

    ap_rc rc = AP_OK;
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
        copy_rows(res, a, out);
        break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY: break;
    default: rc = pg_fail(c, res, NULL, err); break;
    }
    if (!rc) out->changes = changes_of(res);
    PQclear(res);
    return rc;
}

static ap_rc pg_lock(void *conn, const char *key, ap_err_t *err) {
    pg_conn_t *c = conn;
    const char *params[1] = {key};
    PGresult *res = PQexecParams(c->pc, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                                 1, NULL, params, NULL, NULL, 0);
    ap_rc rc = AP_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) rc = pg_fail(c, res, NULL, err);
    PQclear(res);
    return rc;
}

static ap_rc pg_script(void *conn, const char *sql, ap_err_t *err) {
    pg_conn_t *c = conn;
    PGresult *res = PQexec(c->pc, sql);
    ap_rc rc = AP_OK;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
        rc = pg_fail(c, res, sql, err);
    PQclear(res);
    return rc;
}

const ap_db_backend_t ap_db_pg = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .acquire = pg_acquire,
    .release = pg_release,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .query = pg_query,
    .lock = pg_lock,
    .script = pg_script,
    .stats = pg_stats,
};
