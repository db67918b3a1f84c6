/*
 * server.c - libmicrohttpd glue, the server workers and the request
 * pipeline.
 *
 * 1. Workers, nginx-style: each worker thread runs one event loop
 *    (core/loop.h) that drives its own libmicrohttpd daemon (external
 *    polling: the daemon's epoll descriptor sits in the loop's epoll set,
 *    and MHD_run runs when it is readable or MHD_get_timeout expires) and
 *    its own upstream (llm/upstream.h: a libcurl multi on the same loop).
 *    A gateway call on worker i suspends its connection, sends the
 *    upstream request, gets the reply and resumes the connection, all on
 *    worker i's thread.
 * 2. Accepting, nginx-style: every worker's loop watches one shared
 *    listening socket and accepts on its own thread (MHD_add_connection;
 *    the daemons have no listening socket of their own), so a connection
 *    only goes to a worker that waits in epoll, never to one that is
 *    blocked.  A worker that holds more connections than another (by
 *    more than ACCEPT_SLACK) lets the wake-up pass, for ACCEPT_PAUSE_MS,
 *    so the other takes the new connections; then it accepts a whole
 *    batch anyway, in case the other is busy or stuck.  Without that,
 *    whichever worker wakes first takes a burst of new connections and
 *    serves them alone.  (One SO_REUSEPORT socket per worker spreads
 *    connections evenly too, but the kernel hashes them to sockets
 *    whatever their worker is doing: a worker blocked in a synchronous
 *    call to the server itself — the MCP client discovering the
 *    platform's own /mcp — is handed the very connection it waits for.)
 * 3. Resuming a connection from another thread (event streams, MCP, the
 *    shared upstream) needs a wake-up: libmicrohttpd in external polling
 *    mode does not watch its own inter-thread channel, so each resume
 *    also kicks the worker's loop, which then runs MHD_run.  A resume on
 *    the worker's own thread only sets a flag its next check reads.
 * 4. The first access-handler call creates the request and returns
 *    without a response; body chunks accumulate up to the limit (the rest
 *    is read and dropped, then 413); the final call runs the pipeline and
 *    queues the response.
 * 5. Every step that can refuse the request answers a problem and stops;
 *    refusals of an authenticated caller (403, and 404 for another
 *    tenant's path) are written to the caller's audit chain.
 * 6. In-flight requests are counted from the first access-handler call to
 *    the completion callback, which is what shutdown waits on.  A request
 *    exists a little earlier, from its request line (on_uri), so that the
 *    router sees the target as sent; one that libmicrohttpd drops before
 *    its headers are complete is freed when its connection closes.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/time.h"
#include "http/idempotency.h"
#include "http/req.h"
#include "identity/keycache.h"
#include "llm/upstream.h"

/* Open connections of the whole server; past it new ones wait in the
 * listen backlog. */
#define SERVER_CONNECTION_LIMIT 16384
/* Accepting (decision 2): how many more connections than the least busy
 * worker a worker may hold before it lets a wake-up pass, for how long,
 * and how many it accepts per wake-up. */
#define ACCEPT_SLACK 1
#define ACCEPT_PAUSE_MS 1
#define ACCEPT_BATCH 8
/* After accept failed for want of descriptors or memory. */
#define ACCEPT_BACKOFF_MS 100

/* One server worker (decision 1): its thread runs loop. */
typedef struct ap_server_worker {
    ap_server_t *s;
    struct MHD_Daemon *d;
    ap_loop_t *loop;
    ap_upstream_t *up;
    ap_loop_io_t mhd_io;    /* the daemon's epoll descriptor */
    ap_loop_io_t listen_io; /* the shared listening socket */
    ap_loop_hook_t hook;
    bool ready;          /* the daemon's descriptor was readable */
    bool kick;           /* a connection was resumed or added on this thread */
    bool listening;      /* listen_io is in the loop's set */
    bool passed;         /* the last wake-up of listen_io was let pass */
    int64_t deadline;    /* MHD_get_timeout, monotonic ms; -1: none */
    int64_t listen_at;   /* listen_io paused until then; 0: not paused */
    _Atomic int nconn;   /* open connections of this worker's daemon */
    _Atomic bool kick_remote; /* resumed from another thread */
} worker_t;

struct ap_server {
    struct ap_app *app;
    worker_t *w;
    int nw;
    int listen_fd;
    _Atomic int inflight;
    int port;
};

/* The worker must run MHD_run soon: a connection was resumed (decision 3). */
static void kick(worker_t *w) {
    if (ap_loop_on_thread(w->loop)) {
        w->kick = true;
        return;
    }
    atomic_store(&w->kick_remote, true);
    ap_loop_wake(w->loop);
}

static void resume_conn(ap_req_t *r) {
    MHD_resume_connection(r->conn);
    kick(r->worker);
}

static void answer(ap_req_t *r, ap_rc rc, const char *type, const char *msg, const char *hint,
                   const char *detail) {
    ap_err_t err;
    ap_err_set(&err, rc, type, msg, hint, "%s", detail ? detail : "");
    ap_resp_problem(r, &err);
}

/* Writes a denial to the caller's own tenant chain, in its own transaction. */
static void audit_denied(ap_req_t *r, const char *reason) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    const char *route = r->match.route ? r->match.route->pattern : r->path;
    json_t *changes = json_pack("{s:s,s:s,s:s}", "reason", reason, "method", r->method, "path",
                                r->path ? r->path : "");
    ap_audit_event_t ev = {
        .action = "auth.denied",
        .resource_type = "route",
        .resource_id = route,
        .outcome = "denied",
        .changes = changes,
    };
    ap_rc rc = ap_db_begin(r->app->db, r->principal->tenant_id, AP_TX_WRITE, r->arena, &tx, &err);
    if (!rc) rc = ap_audit_append(tx, r->principal->tenant_id, &r->actor, &ev, NULL, &err);
    if (!rc) rc = ap_tx_commit(tx, &err);
    json_decref(changes);
    if (rc)
        ap_log(AP_LOG_ERROR, "audit of denial failed", "{s:s,s:s}", "request_id", r->request_id,
               "detail", err.detail);
}

static const char *bearer(ap_req_t *r) {
    const char *h = ap_req_header(r, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) == 0) return h + 7;
        return "";
    }
    return ap_req_header(r, "X-API-Key");
}

/* Checks that a tenant named in the path exists and is not deleted (for
 * platform admins acting in another tenant). */
static ap_rc tenant_visible(ap_req_t *r, const char *tid) {
    ap_err_t err = {0};
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tid)};
    ap_rc rc = ap_db_begin(r->app->db, tid, AP_TX_READ, r->arena, &tx, &err);
    if (!rc) rc = ap_tx_query(tx, "SELECT status FROM tenants WHERE id = ?", p, 1, &rows, &err);
    if (rc) {
        ap_resp_problem(r, &err);
        return rc;
    }
    ap_tx_rollback(tx);
    if (rows.nrows == 0 || strcmp(ap_rows_at(&rows, 0, 0), "deleted") == 0) {
        answer(r, AP_ERR_NOT_FOUND, "not-found", "tenant not found",
               "check the tenant id", "no tenant with this id");
        return AP_ERR_NOT_FOUND;
    }
    return AP_OK;
}

static void pipeline(ap_req_t *r) {
    struct ap_app *app = r->app;
    ap_err_t err = {0};
    char *path;
    if (ap_path_normalize(r->arena, r->raw_path, &path, &err)) {
        r->path = ap_req_utf8(r->arena, r->raw_path); /* logged and echoed */
        ap_resp_problem(r, &err);
        return;
    }
    r->path = path;
    const char *allow = NULL;
    ap_route_result rr = ap_route_find(app->routes, r->arena, r->method, path, &r->match, &allow);
    if (rr == AP_ROUTE_NO_PATH) {
        answer(r, AP_ERR_NOT_FOUND, "not-found", "no such endpoint",
               "see docs/api/openapi.yaml for the endpoints", path);
        return;
    }
    if (rr == AP_ROUTE_NO_METHOD) {
        ap_resp_header(r, "Allow", allow);
        ap_err_set(&err, AP_ERR_INVALID, "method-not-allowed", "method not allowed",
                   "use one of the methods in the Allow header", "%s is not accepted on %s; allowed: %s",
                   r->method, path, allow);
        ap_resp_problem(r, &err);
        return;
    }
    const ap_route_t *route = r->match.route;
    if (r->too_large) {
        ap_err_set(&err, AP_ERR_TOO_LARGE, "payload-too-large", "request body too large",
                   "send a smaller body", "bodies are limited to %zu bytes", app->max_body);
        ap_resp_problem(r, &err);
        return;
    }
    if (route->scope == AP_SCOPE_PUBLIC) {
        route->handler(r);
        return;
    }
    /* authenticate */
    const char *token = bearer(r);
    if (!token) {
        ap_resp_header(r, "WWW-Authenticate", "Bearer");
        answer(r, AP_ERR_UNAUTH, "unauthenticated", "missing API key",
               "send Authorization: Bearer <api key>", "this endpoint needs an API key");
        return;
    }
    r->principal = ap_arena_calloc(r->arena, sizeof *r->principal);
    if (ap_apikey_authenticate_cached(app->key_cache, app->db, r->arena, token, r->principal,
                                       &err)) {
        r->principal = NULL;
        ap_resp_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        ap_resp_problem(r, &err);
        return;
    }
    ap_principal_t *pr = r->principal;
    bool platform = pr->role == AP_ROLE_PLATFORM_ADMIN;
    r->actor = (ap_actor_t){.type = "key",
                            .id = pr->key_id,
                            .role = ap_role_name(pr->role),
                            .request_id = r->request_id,
                            .client_addr = r->client_addr};
    if (!platform && strcmp(pr->tenant_status, "active") != 0) {
        audit_denied(r, strcmp(pr->tenant_status, "suspended") == 0 ? "tenant suspended"
                                                                   : "tenant deleted");
        answer(r, AP_ERR_DENIED, "tenant-suspended",
               strcmp(pr->tenant_status, "suspended") == 0 ? "tenant is suspended"
                                                           : "tenant is deleted",
               "ask a platform administrator to resume the tenant",
               "calls are refused while the tenant is not active; its data is kept");
        return;
    }
    /* resolve the tenant */
    switch (route->scope) {
    case AP_SCOPE_PATH: {
        const char *tid = ap_req_param(r, "tenant_id");
        if (!tid || !ap_uuid_valid(tid)) {
            answer(r, AP_ERR_NOT_FOUND, "not-found", "tenant not found",
                   "tenant ids are UUIDs as returned by the API", "no tenant with this id");
            return;
        }
        if (!platform && strcmp(tid, pr->tenant_id) != 0) {
            audit_denied(r, "another tenant");
            answer(r, AP_ERR_NOT_FOUND, "not-found", "tenant not found",
                   "check the tenant id", "no tenant with this id");
            return;
        }
        if (platform && strncmp(route->action, "tenant.", 7) != 0 && tenant_visible(r, tid))
            return;
        r->tenant_id = tid;
        break;
    }
    case AP_SCOPE_CRED: r->tenant_id = pr->tenant_id; break;
    default: r->tenant_id = NULL; break;
    }
    /* authorise */
    if (!ap_policy_allows(pr->role, route->perm)) {
        audit_denied(r, "role lacks permission");
        ap_err_set(&err, AP_ERR_DENIED, "forbidden", "permission denied",
                   "ask a tenant administrator for a key with a suitable role",
                   "role %s lacks permission %s", ap_role_name(pr->role),
                   ap_perm_name(route->perm));
        ap_resp_problem(r, &err);
        return;
    }
    /* model calls are not replayable records: no idempotency keys there */
    const char *idem = strcmp(r->method, "POST") == 0 && !route->error_wire
                           ? ap_req_header(r, "Idempotency-Key")
                           : NULL;
    bool reserved = false;
    if (idem && ap_idem_begin(r, idem, &reserved)) return;
    route->handler(r);
    if (r->async) return; /* answered later, from another thread */
    if (!r->answered) answer(r, AP_ERR_INTERNAL, NULL, "handler gave no answer", NULL, NULL);
    if (reserved) ap_idem_finish(r, idem);
}

static void client_addr(struct MHD_Connection *c, char *out, size_t cap) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* What a connection remembers between callbacks: the request on_uri
 * created that on_completed has not released yet.  libmicrohttpd does not
 * always complete a request it has announced (a request line whose
 * arguments overflow its pool is dropped without a completion call), so
 * the close of the connection frees what is still pending. */
typedef struct {
    ap_req_t *pending;
} conn_ctx_t;

static conn_ctx_t *conn_ctx(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The state shared between a server thread and the thread that answers
 * asynchronously (req.h, "answers from another thread"), all of it under
 * mu.  Lifetime is a reference count: the server side holds one reference
 * until the request completes (req_free), the async side one until
 * ap_req_async_release; whoever drops the last frees r and its arena
 * (req_destroy), on its own thread.  The server side keeps its reference
 * while it runs on_gone, so on_gone always sees live memory even when the
 * async side releases at the same moment.
 *
 *   suspended  the connection sleeps and the next producer must resume it;
 *              cleared by the one thread that resumes (so a suspension is
 *              resumed exactly once) and when the server side completes.
 *   gone       the server side completed (answer sent, or client gone):
 *              nothing may resume the connection any more.
 *   finished   the async side delivered its last word (whole answer or the
 *              stream's close): a completion after that needs no on_gone. */
struct ap_req_async {
    pthread_mutex_t mu;
    ap_server_t *srv;
    int refs;
    bool dispatched; /* the pipeline ran; a later call is the resumed one */
    bool ready;      /* an answer (whole or stream head) is there */
    bool suspended;
    bool gone;
    bool finished;
    bool streaming;
    bool stream_done;
    ap_buf_t out; /* stream bytes not yet handed to libmicrohttpd */
    size_t off;
    void (*on_gone)(void *ud);
    void *ud;
};

static void req_destroy(ap_server_t *s, ap_req_t *r);

void ap_req_async_begin(ap_req_t *r, void (*on_gone)(void *ud), void *ud) {
    struct ap_req_async *as = ap_arena_calloc(r->arena, sizeof *as);
    pthread_mutex_init(&as->mu, NULL);
    as->refs = 2;
    as->on_gone = on_gone;
    as->ud = ud;
    ap_buf_init(&as->out, 16u << 20);
    r->async = as;
}

/* Marks the answer ready (and, for a whole answer, final) and wakes the
 * connection if it sleeps.  The connection stays suspended, hence alive,
 * until this thread resumes it: only the thread that clears `suspended`
 * resumes, and a completed request is never resumed. */
static void wake(ap_req_t *r, bool final) {
    struct ap_req_async *as = r->async;
    pthread_mutex_lock(&as->mu);
    as->ready = true;
    if (final) as->finished = true;
    bool resume = as->suspended && !as->gone;
    as->suspended = false;
    pthread_mutex_unlock(&as->mu);
    if (resume) resume_conn(r);
}

void ap_req_async_answer(ap_req_t *r) {
    wake(r, true);
}

void ap_req_stream_open(ap_req_t *r, int status, const char *content_type) {
    r->status = status;
    r->content_type = content_type;
    r->answered = true;
    pthread_mutex_lock(&r->async->mu);
    r->async->streaming = true;
    pthread_mutex_unlock(&r->async->mu);
    wake(r, false);
}

bool ap_req_stream_write(ap_req_t *r, const char *data, size_t len) {
    struct ap_req_async *as = r->async;
    pthread_mutex_lock(&as->mu);
    if (as->gone || ap_buf_append(&as->out, data, len)) {
        /* gone, or a client so slow 16 MiB piled up: stop producing */
        pthread_mutex_unlock(&as->mu);
        return false;
    }
    bool resume = as->suspended;
    as->suspended = false;
    pthread_mutex_unlock(&as->mu);
    if (resume) resume_conn(r);
    return true;
}

void ap_req_stream_close(ap_req_t *r) {
    struct ap_req_async *as = r->async;
    pthread_mutex_lock(&as->mu);
    as->stream_done = true;
    as->finished = true;
    bool resume = as->suspended && !as->gone;
    as->suspended = false;
    pthread_mutex_unlock(&as->mu);
    if (resume) resume_conn(r);
}

bool ap_req_client_gone(ap_req_t *r) {
    pthread_mutex_lock(&r->async->mu);
    bool g = r->async->gone;
    pthread_mutex_unlock(&r->async->mu);
    return g;
}

void ap_req_async_release(ap_req_t *r) {
    struct ap_req_async *as = r->async;
    pthread_mutex_lock(&as->mu);
    int left = --as->refs;
    ap_server_t *s = as->srv;
    pthread_mutex_unlock(&as->mu);
    if (left == 0) req_destroy(s, r);
}

/* libmicrohttpd pulls stream bytes here; with nothing to send the
 * connection is suspended until a write or the close wakes it. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    ap_req_t *r = cls;
    struct ap_req_async *as = r->async;
    pthread_mutex_lock(&as->mu);
    if (as->out.len > as->off) {
        size_t n = as->out.len - as->off;
        if (n > max) n = max;
        memcpy(buf, as->out.p + as->off, n);
        as->off += n;
        if (as->off == as->out.len) {
            as->off = 0;
            ap_buf_reset(&as->out);
        }
        pthread_mutex_unlock(&as->mu);
        return (ssize_t)n;
    }
    if (as->stream_done) {
        pthread_mutex_unlock(&as->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    as->suspended = true;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&as->mu);
    return 0;
}

static void req_destroy(ap_server_t *s, ap_req_t *r) {
    bool counted = r->method != NULL;
    free(r->resp_body);
    ap_buf_free(&r->body);
    if (r->async) {
        ap_buf_free(&r->async->out);
        pthread_mutex_destroy(&r->async->mu);
    }
    ap_arena_free(r->arena);
    if (counted) atomic_fetch_sub(&s->inflight, 1);
}

/* The server side is done with r (answer sent, or client gone).  While
 * the async side still works, on_gone tells it to stop; the server's
 * reference is dropped only after on_gone returned, so on_gone never
 * races the async side's release into freed memory. */
static void req_free(ap_server_t *s, ap_req_t *r) {
    struct ap_req_async *as = r->async;
    if (as) {
        pthread_mutex_lock(&as->mu);
        as->srv = s;
        as->gone = true;
        as->suspended = false;
        bool notify = as->on_gone && as->refs > 1 && !as->finished;
        pthread_mutex_unlock(&as->mu);
        if (notify) as->on_gone(as->ud);
        pthread_mutex_lock(&as->mu);
        int left = --as->refs;
        pthread_mutex_unlock(&as->mu);
        if (left > 0) return; /* the async side frees r at its release */
    }
    req_destroy(s, r);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)c;
    worker_t *w = cls;
    ap_server_t *s = w->s;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&w->nconn, 1);
        *socket_context = ap_calloc(1, sizeof(conn_ctx_t));
        return;
    }
    atomic_fetch_sub(&w->nconn, 1);
    conn_ctx_t *cc = *socket_context;
    if (!cc) return;
    if (cc->pending) req_free(s, cc->pending);
    ap_free(cc);
    *socket_context = NULL;
}

/* Creates the request from the target exactly as the client sent it.
 * libmicrohttpd percent-decodes the url it later passes to on_request;
 * normalising that again would decode twice ("%252F" → "%2F" → "/") and
 * would see "%2F" as a real '/', "%00" as the end of the path and "%3F"
 * as the start of a query.  Whatever this returns is *con_cls; the
 * completion callback, or else the connection's close, releases it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    worker_t *w = cls;
    ap_server_t *s = w->s;
    ap_arena_t *a = ap_arena_new(8192);
    ap_req_t *r = ap_arena_calloc(a, sizeof *r);
    r->arena = a;
    r->app = s->app;
    r->conn = c;
    r->worker = w;
    r->upstream = w->up;
    r->raw_path = ap_arena_strndup(a, uri, strcspn(uri, "?"));
    r->start_ns = ap_mono_ns();
    r->match.index = -1;
    ap_uuid7(r->request_id);
    client_addr(c, r->client_addr, sizeof r->client_addr);
    ap_buf_init(&r->body, s->app->max_body);
    conn_ctx_t *cc = conn_ctx(c);
    if (cc) {
        if (cc->pending) req_free(s, cc->pending); /* never completed */
        cc->pending = r;
    }
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)url; /* decoded by libmicrohttpd; r->raw_path is what was sent */
    (void)version;
    ap_req_t *r = *con_cls;
    if (!r) return MHD_NO; /* on_uri always runs first */
    if (!r->method) { /* headers complete: from here on the request is in flight */
        r->method = method;
        atomic_fetch_add(&((worker_t *)cls)->s->inflight, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large && ap_buf_append(&r->body, upload_data, *upload_size))
            r->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    struct ap_req_async *as = r->async;
    if (!as || !as->dispatched) {
        pipeline(r);
        as = r->async;
        if (as) {
            pthread_mutex_lock(&as->mu);
            as->dispatched = true;
            as->srv = ((worker_t *)cls)->s;
            if (!as->ready) { /* no thread waits: sleep until the answer wakes us */
                as->suspended = true;
                MHD_suspend_connection(c);
                pthread_mutex_unlock(&as->mu);
                return MHD_YES;
            }
            pthread_mutex_unlock(&as->mu);
        }
    }
    if (!r->answered) answer(r, AP_ERR_INTERNAL, NULL, "no answer", NULL, NULL);
    struct MHD_Response *resp;
    bool streaming = false;
    if (as) {
        pthread_mutex_lock(&as->mu);
        streaming = as->streaming;
        pthread_mutex_unlock(&as->mu);
    }
    if (streaming) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, r, NULL);
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len,
                                               r->resp_body ? r->resp_body : (void *)"",
                                               r->resp_body ? MHD_RESPMEM_MUST_FREE
                                                            : MHD_RESPMEM_PERSISTENT);
        r->resp_body = NULL; /* owned by the response now */
    }
    if (r->content_type) MHD_add_response_header(resp, "Content-Type", r->content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    for (int i = 0; i < r->nresp_hdr; i++)
        MHD_add_response_header(resp, r->resp_hdr_k[i], r->resp_hdr_v[i]);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    ap_server_t *s = ((worker_t *)cls)->s;
    ap_req_t *r = *con_cls;
    if (!r) return;
    conn_ctx_t *cc = conn_ctx(c);
    if (cc && cc->pending == r) cc->pending = NULL;
    uint64_t dur = ap_mono_ns() - r->start_ns;
    if (r->answered) {
        ap_metrics_observe(s->app->metrics, r->match.route ? r->match.index : -1, r->status, dur);
        if (ap_log_enabled(AP_LOG_INFO))
            ap_log(AP_LOG_INFO, "request", "{s:s,s:s?,s:s,s:s,s:s,s:i,s:f,s:b}", "request_id",
                   r->request_id, "tenant_id", r->tenant_id, "method", r->method, "route",
                   r->match.route ? r->match.route->pattern : "unmatched", "path",
                   r->path ? r->path : r->raw_path, "status", r->status, "duration_ms",
                   (double)dur / 1e6, "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    }
    *con_cls = NULL;
    req_free(s, r);
}

/* ---- workers ------------------------------------------------------------ */

static void mhd_ready(ap_loop_io_t *io, uint32_t events) {
    (void)events;
    worker_t *w = (worker_t *)((char *)io - offsetof(worker_t, mhd_io));
    w->ready = true;
}

static int64_t mhd_prepare(ap_loop_hook_t *h) {
    worker_t *w = (worker_t *)((char *)h - offsetof(worker_t, hook));
    if (w->kick || atomic_load(&w->kick_remote)) return 0;
    int64_t now = ap_loop_now_ms(), wait = -1;
    MHD_UNSIGNED_LONG_LONG to;
    if (MHD_get_timeout(w->d, &to) == MHD_YES) {
        if (to > (MHD_UNSIGNED_LONG_LONG)INT32_MAX) to = INT32_MAX;
        w->deadline = now + (int64_t)to;
        wait = (int64_t)to;
    } else {
        w->deadline = -1;
    }
    if (w->listen_at) {
        int64_t l = w->listen_at > now ? w->listen_at - now : 0;
        if (wait < 0 || l < wait) wait = l;
    }
    return wait;
}

/* False when another worker holds fewer connections than w by more than
 * ACCEPT_SLACK: its turn (decision 2).  Counts read without a lock: a
 * stale one only moves a connection to the other worker. */
static bool fair_turn(worker_t *w) {
    ap_server_t *s = w->s;
    int mine = atomic_load(&w->nconn);
    for (int i = 0; i < s->nw; i++) {
        worker_t *o = &s->w[i];
        if (o != w && atomic_load(&o->nconn) + ACCEPT_SLACK < mine) return false;
    }
    return true;
}

static int total_conns(ap_server_t *s) {
    int n = 0;
    for (int i = 0; i < s->nw; i++) n += atomic_load(&s->w[i].nconn);
    return n;
}

/* Stops watching the listening socket for ms (the check resumes it). */
static void listen_pause(worker_t *w, int ms) {
    ap_loop_mod(w->loop, &w->listen_io, 0);
    w->listen_at = ap_loop_now_ms() + ms;
}

static void on_listen(ap_loop_io_t *io, uint32_t events) {
    (void)events;
    worker_t *w = (worker_t *)((char *)io - offsetof(worker_t, listen_io));
    if (w->listen_at) return; /* paused in this iteration already */
    if (total_conns(w->s) >= SERVER_CONNECTION_LIMIT) {
        listen_pause(w, ACCEPT_BACKOFF_MS);
        return;
    }
    bool after_pass = w->passed; /* the others had their turn: a whole batch */
    if (!after_pass && !fair_turn(w)) {
        w->passed = true;
        listen_pause(w, ACCEPT_PAUSE_MS);
        return;
    }
    w->passed = false;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(w->s->listen_fd, (struct sockaddr *)&sa, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                ap_log(AP_LOG_WARN, "cannot accept connections", "{s:s,s:i}", "error",
                       strerror(errno), "retry_ms", ACCEPT_BACKOFF_MS);
                listen_pause(w, ACCEPT_BACKOFF_MS);
            }
            break; /* EAGAIN: another worker took it */
        }
        /* closes fd itself when it cannot take it */
        MHD_add_connection(w->d, fd, (const struct sockaddr *)&sa, len);
        w->kick = true; /* its first bytes may be there: MHD_run in this iteration */
        if (!after_pass && !fair_turn(w)) break;
    }
}

/* Runs after the upstream's check (hooks run in the order they were
 * added), so replies that resumed connections in this iteration are sent
 * in it. */
static void mhd_check(ap_loop_hook_t *h) {
    worker_t *w = (worker_t *)((char *)h - offsetof(worker_t, hook));
    bool run = w->ready || w->kick;
    if (atomic_load(&w->kick_remote) && atomic_exchange(&w->kick_remote, false)) run = true;
    if (w->listen_at || (!run && w->deadline >= 0)) {
        int64_t now = ap_loop_now_ms();
        if (w->listen_at && now >= w->listen_at) { /* the pause is over */
            w->listen_at = 0;
            if (w->listening) ap_loop_mod(w->loop, &w->listen_io, EPOLLIN);
        }
        if (!run && w->deadline >= 0 && now >= w->deadline) run = true;
    }
    if (!run) return;
    w->ready = w->kick = false;
    MHD_run(w->d);
}

/* The listening socket every worker's daemon watches; -1 with errno set
 * on failure. */
static int listen_on(const struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void worker_free(worker_t *w) {
    if (w->d) MHD_stop_daemon(w->d);
    ap_upstream_free(w->up);
    ap_loop_free(w->loop);
}

static ap_rc worker_init(ap_server_t *s, worker_t *w, ap_err_t *err) {
    w->s = s;
    w->deadline = -1;
    ap_rc rc = ap_loop_new(&w->loop, err);
    if (rc) return rc;
    /* the upstream's hook first: see mhd_check */
    if ((rc = ap_upstream_new_on(w->loop, &w->up, err))) return rc;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_NO_LISTEN_SOCKET;
    w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, w,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            /* 16 KiB of per-connection pool (request line,
                             * headers, read and write buffers) instead of
                             * 32: libmicrohttpd zeroes the pool for every
                             * request on a kept-alive connection, and an
                             * open stream holds it (see bench/RESULTS.md) */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVER_CONNECTION_LIMIT,
                            MHD_OPTION_END);
    if (!w->d)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "listen-failed", "cannot start the HTTP server",
                          "check the process's descriptor limit", "libmicrohttpd refused to start");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
    w->mhd_io.fn = mhd_ready;
    if (!di || ap_loop_add(w->loop, &w->mhd_io, di->epoll_fd, EPOLLIN))
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot start the HTTP server", NULL,
                          "the daemon's epoll descriptor cannot be watched");
    w->listen_io.fn = on_listen;
    if (ap_loop_add(w->loop, &w->listen_io, s->listen_fd, EPOLLIN))
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot start the HTTP server", NULL,
                          "the listening socket cannot be watched");
    w->listening = true;
    w->hook.prepare = mhd_prepare;
    w->hook.check = mhd_check;
    ap_loop_hook_add(w->loop, &w->hook);
    return AP_OK;
}

/* Stops the workers' threads and frees the first n workers. */
static void workers_free(ap_server_t *s, int n) {
    for (int i = 0; i < n; i++)
        if (s->w[i].loop) ap_loop_join(s->w[i].loop);
    for (int i = 0; i < n; i++) worker_free(&s->w[i]);
    if (s->listen_fd >= 0) close(s->listen_fd);
    ap_free(s->w);
    ap_free(s);
}

ap_rc ap_server_start(struct ap_app *app, const ap_server_opts_t *opts, ap_server_t **out,
                      ap_err_t *err) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opts->port);
    if (inet_pton(AF_INET, opts->host, &sa.sin_addr) != 1)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-config", "invalid listen address",
                          "use an IPv4 address and port, e.g. 127.0.0.1:8080", "host \"%s\"",
                          opts->host);
    ap_server_t *s = ap_calloc(1, sizeof *s);
    s->app = app;
    s->nw = opts->threads > 0 ? opts->threads : 2;
    s->w = ap_calloc((size_t)s->nw, sizeof *s->w);
    s->listen_fd = listen_on(&sa);
    if (s->listen_fd < 0) {
        int e = errno;
        workers_free(s, 0);
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "listen-failed", "cannot listen",
                          "pick another --listen address or free the port",
                          "could not bind %s:%d: %s", opts->host, opts->port, strerror(e));
    }
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    getsockname(s->listen_fd, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
    for (int i = 0; i < s->nw; i++) {
        ap_rc rc = worker_init(s, &s->w[i], err);
        if (!rc) rc = ap_loop_start_thread(s->w[i].loop, err);
        if (rc) {
            workers_free(s, i + 1);
            return rc;
        }
    }
    *out = s;
    return AP_OK;
}

int ap_server_port(ap_server_t *s) {
    return s->port;
}

static void quiesce_worker(void *arg) {
    worker_t *w = arg;
    if (w->listening) ap_loop_del(w->loop, &w->listen_io);
    w->listening = false;
    w->listen_at = 0;
}

void ap_server_quiesce(ap_server_t *s) {
    for (int i = 0; i < s->nw; i++) ap_loop_call(s->w[i].loop, quiesce_worker, &s->w[i]);
    /* no worker watches it any more: connections still in the backlog are
     * refused, new ones find the port closed */
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
}

bool ap_server_drain(ap_server_t *s, int timeout_ms) {
    uint64_t deadline = ap_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (atomic_load(&s->inflight) > 0) {
        if (ap_mono_ns() > deadline) return false;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

void ap_server_end_calls(ap_server_t *s) {
    for (int i = 0; i < s->nw; i++) ap_upstream_shutdown(s->w[i].up);
}

void ap_server_stop(ap_server_t *s) {
    if (!s) return;
    ap_server_end_calls(s);
    workers_free(s, s->nw);
}
