/*
 * req.h - one HTTP request as handlers see it, and how they answer.
 *
 * 1. Everything a request allocates lives in r->arena, freed when the
 *    response has been sent.  Handlers never free what they get here.
 * 2. A handler answers exactly once, with ap_resp_json, ap_resp_problem or
 *    ap_resp_raw; a handler that answers nothing gets a 500.
 * 3. Problems are RFC 9457 application/problem+json with a stable type,
 *    a one-line title, a detail that says what to change, and the request
 *    id.  5xx problems never carry internal details (those are logged).
 */
#ifndef AP_HTTP_REQ_H
#define AP_HTTP_REQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "core/json.h"
#include "http/router.h"
#include "identity/apikey.h"
#include "store/db.h"

struct MHD_Connection;
struct ap_server_worker;
struct ap_upstream;
typedef struct ap_app ap_app_t;

#define AP_MAX_RESP_HEADERS 8

typedef struct ap_req {
    ap_app_t *app;
    ap_arena_t *arena;
    struct MHD_Connection *conn;
    struct ap_server_worker *worker; /* the server worker serving the connection */
    /* The worker's upstream (llm/upstream.h): a call submitted there runs
     * on this request's thread, with no hand-off.  Never NULL on a request
     * the server made. */
    struct ap_upstream *upstream;
    const char *method;
    const char *raw_path;
    const char *path; /* normalised */
    ap_match_t match;
    ap_buf_t body;
    bool too_large;
    char request_id[AP_UUID_LEN];
    char client_addr[64];
    ap_principal_t *principal; /* NULL on public routes */
    const char *tenant_id;     /* resolved tenant, NULL for platform routes */
    ap_actor_t actor;
    uint64_t start_ns;
    /* response */
    int status;
    char *resp_body; /* heap (malloc), handed to libmicrohttpd */
    size_t resp_len;
    const char *content_type;
    const char *resp_hdr_k[AP_MAX_RESP_HEADERS];
    const char *resp_hdr_v[AP_MAX_RESP_HEADERS];
    int nresp_hdr;
    bool answered;
    /* What an idempotency record keeps instead of resp_body when the
     * response holds a secret (a new API key): arena memory, or NULL. */
    const char *replay_body;
    /* Set by ap_req_async_begin: the answer comes from another thread. */
    struct ap_req_async *async;
} ap_req_t;

const char *ap_req_param(ap_req_t *r, const char *name);
const char *ap_req_query(ap_req_t *r, const char *name);
const char *ap_req_header(ap_req_t *r, const char *name);

/* Parses the body as a JSON object and checks it against fields; on
 * failure answers the problem itself and returns non-zero. */
ap_rc ap_req_json(ap_req_t *r, const ap_jfield_t *fields, json_t **out);
/* Pagination parameters: ?limit= (1..max, default dflt) and ?cursor=.
 * Answers a problem and returns non-zero when they are malformed. */
ap_rc ap_req_page(ap_req_t *r, int dflt, int max, int *limit, const char **cursor);

void ap_resp_json(ap_req_t *r, int status, json_t *body /* reference stolen */);
void ap_resp_problem(ap_req_t *r, const ap_err_t *err);
void ap_resp_raw(ap_req_t *r, int status, const char *content_type, char *heap_body,
                 size_t len);
void ap_resp_header(ap_req_t *r, const char *name, const char *value);
/* A list page: {"data": items, "next_cursor": next|null}. */
void ap_resp_page(ap_req_t *r, json_t *items, const char *next);

/* --- answers from another thread (the LLM gateway) ---
 *
 * A handler that starts work elsewhere calls ap_req_async_begin and
 * returns without answering; the connection is suspended (no thread is
 * held).  The other side then answers once, either whole (ap_resp_* then
 * ap_req_async_answer) or as a stream (ap_req_stream_open, _write,
 * _close), and finally ap_req_async_release.  Thread-safe.
 *
 * Lifetime (a reference count under the request's mutex, server.c):
 *   - r, its arena and everything in it (ud included) live until both the
 *     server side is done with the request (answer sent, or the client
 *     went away) and the async side called ap_req_async_release; whichever
 *     comes last frees them, on its own thread.  After its release the
 *     async side must not touch r.
 *   - on_gone(ud) runs at most once, on a server thread, when the request
 *     ends on the server side before the async side gave its last word
 *     (ap_req_async_answer, or ap_req_stream_close): the client is gone,
 *     stop early.  It runs while the server side still holds its
 *     reference, so ud is valid throughout, even if the async side
 *     releases meanwhile.  It must not block; it must not free r.
 *   - Once the server side is done, ap_req_stream_write returns false and
 *     nothing resumes the connection any more. */
void ap_req_async_begin(ap_req_t *r, void (*on_gone)(void *ud), void *ud);
void ap_req_async_answer(ap_req_t *r);
void ap_req_stream_open(ap_req_t *r, int status, const char *content_type);
/* false once the client is gone (stop producing). */
bool ap_req_stream_write(ap_req_t *r, const char *data, size_t len);
void ap_req_stream_close(ap_req_t *r);
void ap_req_async_release(ap_req_t *r);
bool ap_req_client_gone(ap_req_t *r);

/* Request headers whose names start with one of the comma-separated
 * prefixes, as "Name: value" strings in the arena (for forwarding to a
 * provider; credentials are never matched).  Returns how many. */
int ap_req_forward_headers(ap_req_t *r, const char *prefix_list, const char **out, int max);

int ap_rc_status(ap_rc rc, const char *type);
/* s with every byte that is not part of a UTF-8 character replaced by '?'
 * (arena memory), for echoing client input in JSON and logs. */
const char *ap_req_utf8(ap_arena_t *a, const char *s);
/* Builds the problem JSON (new reference). */
json_t *ap_problem_json(const ap_err_t *err, int status, const char *request_id,
                        const char *instance);

#endif
