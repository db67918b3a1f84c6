/*
 * conn.c - client connections to external MCP servers (see conn.h).
 *
 * 1. HTTP: one easy handle per message, no redirects, http/https only,
 *    the remaining time as the transfer timeout.  Answers come as JSON or
 *    as an event stream read until the answer with our id arrives; the
 *    body callback stops the transfer past the byte bound.
 * 2. stdio: fork + execve of a path resolved before the fork (nothing
 *    that allocates runs in the child), stdin/stdout pipes, stderr to
 *    /dev/null, a process group of its own.  Lines are read with poll()
 *    against the deadline.  A request from the server (roots/list,
 *    sampling …) is answered -32601: we offer no client capabilities.
 *    SIGPIPE is blocked around writes, so a server that died makes a
 *    write fail with EPIPE instead of killing the platform.
 */
#include "mcp/conn.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/time.h"
#include "core/version.h"
#include "llm/sse.h"
#include "mcp/jsonrpc.h"

struct ap_mcp_conn {
    ap_arena_t *arena;
    const ap_mcp_target_t *t;
    bool stdio;
    uint64_t deadline_ns;
    size_t max_output;
    size_t bytes;
    json_int_t next_id;
    const char *version; /* negotiated */
    bool closed;
    /* http */
    char session[256];
    /* stdio */
    pid_t pid;
    int in_fd, out_fd;
    ap_buf_t rbuf;
};

static int remaining_ms(const ap_mcp_conn_t *c) {
    uint64_t now = ap_mono_ns();
    if (now >= c->deadline_ns) return 0;
    uint64_t ms = (c->deadline_ns - now) / 1000000u;
    return ms > 0 ? (int)ms : 1;
}

static ap_rc timed_out(ap_err_t *err, const char *what) {
    return ap_err_set(err, AP_ERR_UNAVAILABLE, "mcp-timeout", "MCP server timed out",
                      "raise timeout_ms, or check the server", "no answer to %s before the deadline",
                      what);
}

static ap_rc too_large(ap_err_t *err, size_t max) {
    return ap_err_set(err, AP_ERR_TOO_LARGE, "mcp-output-too-large", "MCP server output too large",
                      "raise max_output_bytes, or ask the tool for less",
                      "the server sent more than %zu bytes", max);
}

/* The answer to our request id: result (stolen into *result) or error. */
static ap_rc take_answer(json_t *msg, const char *method, json_t **result, ap_err_t *err) {
    json_t *e = json_object_get(msg, "error");
    if (e) {
        return ap_err_set(err, AP_ERR_IO, "mcp-error", "MCP server refused the request",
                          "check the tool name and arguments against the server's tools",
                          "%s: error %" JSON_INTEGER_FORMAT ": %.300s", method,
                          json_integer_value(json_object_get(e, "code")),
                          json_string_value(json_object_get(e, "message")));
    }
    json_t *r = json_object_get(msg, "result");
    if (!json_is_object(r))
        return ap_err_set(err, AP_ERR_IO, "mcp-protocol", "MCP server answered badly", NULL,
                          "%s: the result is not an object", method);
    *result = json_incref(r);
    return AP_OK;
}

static bool is_our_answer(json_t *m, json_int_t id) {
    ap_rpc_msg_t msg;
    ap_rpc_classify(m, &msg);
    return msg.kind == AP_RPC_RESPONSE && json_is_integer(msg.id) &&
           json_integer_value(msg.id) == id;
}

/* ---- HTTP ------------------------------------------------------------- */

typedef struct {
    ap_mcp_conn_t *c;
    ap_buf_t body;
    bool over;
    char ctype[128];
    char session[256];
} http_rx_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    http_rx_t *rx = ud;
    size_t len = sz * n;
    rx->c->bytes += len;
    if (rx->body.len + len > rx->c->max_output || ap_buf_append(&rx->body, p, len)) {
        rx->over = true;
        return 0; /* stops the transfer */
    }
    return len;
}

static void header_value(const char *p, size_t len, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(p, name, nl) != 0 || p[nl] != ':') return;
    const char *v = p + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    if (vl >= cap) vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    http_rx_t *rx = ud;
    header_value(p, sz * n, "content-type", rx->ctype, sizeof rx->ctype);
    header_value(p, sz * n, "mcp-session-id", rx->session, sizeof rx->session);
    return sz * n;
}

typedef struct {
    json_int_t id;
    json_t *found;
} sse_find_t;

static ap_rc on_event(void *ud, const ap_sse_event_t *ev) {
    sse_find_t *f = ud;
    if (f->found || !ev->data_len) return AP_OK;
    json_t *m = json_loadb(ev->data, ev->data_len, 0, NULL);
    if (m && is_our_answer(m, f->id)) {
        f->found = m;
        return AP_OK;
    }
    json_decref(m);
    return AP_OK;
}

/* POSTs one message; for a request (id > 0) finds its answer. */
static ap_rc http_send(ap_mcp_conn_t *c, const char *method, json_t *msg, json_int_t id,
                       json_t **answer, ap_err_t *err) {
    int ms = remaining_ms(c);
    if (ms == 0) return timed_out(err, method);
    char *payload = json_dumps(msg, JSON_COMPACT);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    http_rx_t rx = {.c = c};
    ap_buf_init(&rx.body, 0);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/json, text/event-stream");
    char line[4200];
    if (c->t->auth) {
        snprintf(line, sizeof line, "Authorization: %s", c->t->auth);
        hdr = curl_slist_append(hdr, line);
    }
    if (c->session[0]) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %s", c->session);
        hdr = curl_slist_append(hdr, line);
    }
    if (c->version) {
        snprintf(line, sizeof line, "MCP-Protocol-Version: %s", c->version);
        hdr = curl_slist_append(hdr, line);
    }
    curl_easy_setopt(h, CURLOPT_URL, c->t->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rx);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &rx);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "agentprov-mcp-client");
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(payload);
    ap_rc rc = AP_OK;
    if (rx.over)
        rc = too_large(err, c->max_output);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = timed_out(err, method);
    else if (cc != CURLE_OK)
        rc = ap_err_set(err, AP_ERR_UNAVAILABLE, "mcp-unreachable", "cannot reach the MCP server",
                        "check the server's url and that it is running",
                        "%s: %s", method, curl_easy_strerror(cc));
    else if (status == 404 && c->session[0])
        rc = ap_err_set(err, AP_ERR_IO, "mcp-session-lost", "MCP server ended the session",
                        "retry the call", "%s: HTTP 404 for session", method);
    else if (status < 200 || status > 299)
        rc = ap_err_set(err, AP_ERR_IO, "mcp-http-status", "MCP server refused the request",
                        "check the url and the Authorization header value",
                        "%s: HTTP %ld", method, status);
    if (!rc && rx.session[0] && !c->session[0])
        snprintf(c->session, sizeof c->session, "%s", rx.session);
    if (!rc && id > 0) {
        json_t *found = NULL;
        if (strncasecmp(rx.ctype, "text/event-stream", 17) == 0) {
            ap_sse_parser_t p;
            ap_sse_init(&p, c->max_output, c->max_output);
            sse_find_t f = {.id = id};
            ap_sse_feed(&p, rx.body.p ? rx.body.p : "", rx.body.len, on_event, &f);
            ap_sse_feed(&p, "\n\n", 2, on_event, &f);
            ap_sse_free(&p);
            found = f.found;
        } else if (rx.body.len) {
            found = json_loadb(rx.body.p, rx.body.len, 0, NULL);
            if (found && !is_our_answer(found, id)) {
                json_decref(found);
                found = NULL;
            }
        }
        if (!found)
            rc = ap_err_set(err, AP_ERR_IO, "mcp-protocol", "MCP server answered badly",
                            "check that the url is a Streamable HTTP MCP endpoint",
                            "%s: no JSON-RPC answer with our id in the HTTP %ld response", method,
                            status);
        *answer = found;
    }
    ap_buf_free(&rx.body);
    return rc;
}

static void http_close(ap_mcp_conn_t *c) {
    if (!c->session[0]) return;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char line[4200];
    snprintf(line, sizeof line, "Mcp-Session-Id: %s", c->session);
    hdr = curl_slist_append(hdr, line);
    if (c->t->auth) {
        snprintf(line, sizeof line, "Authorization: %s", c->t->auth);
        hdr = curl_slist_append(hdr, line);
    }
    curl_easy_setopt(h, CURLOPT_URL, c->t->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    http_rx_t rx = {.c = c};
    ap_buf_init(&rx.body, 4096);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rx);
    (void)curl_easy_perform(h); /* best effort: the server may not support DELETE */
    ap_buf_free(&rx.body);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    c->session[0] = '\0';
}

/* ---- stdio ------------------------------------------------------------ */

/* argv[0] as an executable path: itself when it has a '/', else looked up
 * in PATH of envp (arena memory), or NULL. */
static const char *resolve(ap_arena_t *a, const char *prog, char *const *envp) {
    if (strchr(prog, '/')) return access(prog, X_OK) == 0 ? prog : NULL;
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    char *dirs = ap_arena_strdup(a, path), *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *cand = ap_arena_printf(a, "%s/%s", *d ? d : ".", prog);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) return cand;
    }
    return NULL;
}

static ap_rc stdio_spawn(ap_mcp_conn_t *c, ap_err_t *err) {
    const char *path = resolve(c->arena, c->t->argv[0], c->t->envp);
    if (!path)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, "mcp-cannot-start", "cannot start the MCP server",
                          "ask the platform administrator to fix the allowlist entry",
                          "program \"%.200s\" not found", c->t->argv[0]);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) goto fail;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        goto fail;
    }
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        if (devnull >= 0) close(devnull);
        goto fail;
    }
    if (pid == 0) { /* child: async-signal-safe calls only */
        setpgid(0, 0);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (devnull >= 0) dup2(devnull, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execve(path, c->t->argv, c->t->envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with the first kill */
    close(in[0]);
    close(out[1]);
    if (devnull >= 0) close(devnull);
    c->pid = pid;
    c->in_fd = in[1];
    c->out_fd = out[0];
    fcntl(c->out_fd, F_SETFL, fcntl(c->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(c->in_fd, F_SETFL, fcntl(c->in_fd, F_GETFL) | O_NONBLOCK);
    return AP_OK;
fail:
    return ap_err_set(err, AP_ERR_UNAVAILABLE, "mcp-cannot-start", "cannot start the MCP server",
                      "retry later", "%s", strerror(errno));
}

static ap_rc stdio_write(ap_mcp_conn_t *c, const char *method, json_t *msg, ap_err_t *err) {
    char *s = json_dumps(msg, JSON_COMPACT);
    size_t len = strlen(s);
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_buf_append(&b, s, len);
    ap_buf_append(&b, "\n", 1);
    free(s);
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ap_rc rc = AP_OK;
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = write(c->in_fd, b.p + off, b.len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            int ms = remaining_ms(c);
            if (ms == 0) {
                rc = timed_out(err, method);
                break;
            }
            struct pollfd p = {.fd = c->in_fd, .events = POLLOUT};
            poll(&p, 1, ms);
            continue;
        }
        if (errno == EPIPE) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero); /* consume the pending SIGPIPE */
        }
        rc = ap_err_set(err, AP_ERR_IO, "mcp-server-exited", "MCP server exited",
                        "check the allowlist entry runs an MCP server on stdio",
                        "%s: cannot write to the server: %s", method, strerror(errno));
        break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ap_buf_free(&b);
    return rc;
}

/* Reads lines until the answer to id (or, for id 0, returns at once). */
static ap_rc stdio_read(ap_mcp_conn_t *c, const char *method, json_int_t id, json_t **answer,
                        ap_err_t *err) {
    size_t start = c->bytes;
    for (;;) {
        if (c->bytes - start > c->max_output) return too_large(err, c->max_output);
        char *nl = c->rbuf.len ? memchr(c->rbuf.p, '\n', c->rbuf.len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->rbuf.p);
            json_t *m = json_loadb(c->rbuf.p, n, 0, NULL);
            memmove(c->rbuf.p, nl + 1, c->rbuf.len - n - 1);
            c->rbuf.len -= n + 1;
            if (!m) continue; /* not JSON: a chatty server; skip the line */
            if (is_our_answer(m, id)) {
                *answer = m;
                return AP_OK;
            }
            ap_rpc_msg_t msg;
            ap_rpc_classify(m, &msg);
            if (msg.kind == AP_RPC_REQUEST) { /* we offer no client capabilities */
                json_t *no = ap_rpc_error(msg.id, AP_RPC_METHOD_NOT_FOUND,
                                          "this client offers no capabilities", NULL);
                ap_rc wrc = stdio_write(c, method, no, err);
                json_decref(no);
                if (wrc) {
                    json_decref(m);
                    return wrc;
                }
            }
            json_decref(m);
            continue;
        }
        int ms = remaining_ms(c);
        if (ms == 0) return timed_out(err, method);
        struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
        int pr = poll(&p, 1, ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) continue; /* the deadline check above decides */
        char buf[16384];
        ssize_t r = read(c->out_fd, buf, sizeof buf);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0)
            return ap_err_set(err, AP_ERR_IO, "mcp-server-exited", "MCP server exited",
                              "check the allowlist entry runs an MCP server on stdio",
                              "%s: the server closed its output before answering", method);
        c->bytes += (size_t)r;
        ap_buf_append(&c->rbuf, buf, (size_t)r);
    }
}

static void stdio_close(ap_mcp_conn_t *c) {
    if (c->in_fd >= 0) close(c->in_fd);
    c->in_fd = -1;
    if (c->pid > 0) {
        /* a moment to exit on end of input, then the whole group goes */
        for (int i = 0; i < 20; i++) {
            if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
                c->pid = 0;
                break;
            }
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (c->pid > 0) {
            kill(-c->pid, SIGKILL);
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            c->pid = 0;
        }
    }
    if (c->out_fd >= 0) close(c->out_fd);
    c->out_fd = -1;
    ap_buf_free(&c->rbuf);
}

/* ---- the connection ---------------------------------------------------- */

static ap_rc send_msg(ap_mcp_conn_t *c, const char *method, json_t *params, bool request,
                      json_t **result, ap_err_t *err) {
    json_int_t id = request ? ++c->next_id : 0;
    json_t *jid = request ? json_integer(id) : NULL;
    json_t *msg = ap_rpc_request(jid, method, params);
    json_decref(jid);
    json_t *answer = NULL;
    ap_rc rc;
    if (c->stdio) {
        rc = stdio_write(c, method, msg, err);
        if (!rc && request) rc = stdio_read(c, method, id, &answer, err);
    } else {
        rc = http_send(c, method, msg, id, &answer, err);
    }
    json_decref(msg);
    if (!rc && request) rc = take_answer(answer, method, result, err);
    json_decref(answer);
    return rc;
}

ap_rc ap_mcp_conn_request(ap_mcp_conn_t *c, const char *method, json_t *params, json_t **result,
                          ap_err_t *err) {
    *result = NULL;
    return send_msg(c, method, params, true, result, err);
}

static void cleanup(void *arg) {
    ap_mcp_conn_close(arg);
}

ap_rc ap_mcp_conn_open(ap_arena_t *a, const ap_mcp_target_t *t, uint64_t deadline_ns,
                       size_t max_output, ap_mcp_conn_t **out, json_t **init_result,
                       ap_err_t *err) {
    *out = NULL;
    *init_result = NULL;
    ap_mcp_conn_t *c = ap_arena_calloc(a, sizeof *c);
    c->arena = a;
    c->t = t;
    c->stdio = t->argv != NULL;
    c->deadline_ns = deadline_ns;
    c->max_output = max_output;
    c->in_fd = c->out_fd = -1;
    ap_buf_init(&c->rbuf, 0);
    ap_arena_cleanup(a, cleanup, c);
    ap_rc rc = c->stdio ? stdio_spawn(c, err) : AP_OK;
    if (rc) return rc;
    json_t *params = json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", AP_MCP_LATEST_VERSION,
                               "capabilities", "clientInfo", "name", "agentprov", "version",
                               ap_version);
    json_t *res = NULL;
    rc = send_msg(c, "initialize", params, true, &res, err);
    if (rc) return rc;
    const char *v = json_string_value(json_object_get(res, "protocolVersion"));
    if (!ap_mcp_version_supported(v)) {
        rc = ap_err_set(err, AP_ERR_IO, "mcp-version", "MCP server speaks another version",
                        "use a server that speaks 2025-06-18, 2025-03-26 or 2024-11-05",
                        "the server answered protocol version \"%.32s\"", v ? v : "");
        json_decref(res);
        return rc;
    }
    for (const char *const *p = ap_mcp_versions; *p; p++)
        if (strcmp(*p, v) == 0) c->version = *p;
    rc = send_msg(c, "notifications/initialized", NULL, false, NULL, err);
    if (rc) {
        json_decref(res);
        return rc;
    }
    *out = c;
    *init_result = res;
    return AP_OK;
}

size_t ap_mcp_conn_bytes(const ap_mcp_conn_t *c) {
    return c->bytes;
}

const char *ap_mcp_conn_version(const ap_mcp_conn_t *c) {
    return c->version;
}

void ap_mcp_conn_close(ap_mcp_conn_t *c) {
    if (!c || c->closed) return;
    c->closed = true;
    if (c->stdio)
        stdio_close(c);
    else
        http_close(c);
}
