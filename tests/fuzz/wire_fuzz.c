/*
 * wire_fuzz.c - libFuzzer target for the wire protocols (llm/wire*.c).
 *
 * FUZZ_SOURCES: src/llm/wire.c src/llm/wire_openai.c src/llm/wire_anthropic.c src/llm/wire_gemini.c src/llm/wire_embed.c src/llm/sse.c src/llm/types.c src/core/arena.c src/core/alloc.c src/core/buf.c src/core/err.c src/core/crypto.c src/core/jload.c
 *
 * Byte 0 picks the target (low 2 bits) and a variant (the rest); the other
 * bytes are the payload.
 * 0. A client request (OpenAI or Anthropic): parse it; when accepted,
 *    build the upstream call for every provider, streamed or not: each
 *    gives a JSON object body or AP_ERR_INVALID with words.
 * 1. An upstream reply of a provider under an HTTP status: the rc and the
 *    error kind agree, the message is valid single-line UTF-8; an answer
 *    has ids, names, arguments, a known finish reason, and renders in
 *    every protocol.
 * 2. An upstream stream of a provider: fed whole and in pieces it gives
 *    the same deltas and result; the deltas re-encoded for an OpenAI and
 *    an Anthropic client decode again without error, with the same text
 *    and the same tool call arguments.
 * 3. Embeddings: a client request, and a provider reply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "llm/wire.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "wire_fuzz: property failed: %s\n", #cond);                            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    ap_crypto_init();
    return 0;
}

static const ap_llm_target_t targets[] = {
    {"http://127.0.0.1:1/v1", "k", "m-openai"},
    {"https://api.anthropic.com/v1", "k", "m-anthropic"},
    {"https://generativelanguage.googleapis.com/v1beta", "k", "gemini-x"},
};

static void check_err(const ap_err_t *err) {
    CHECK(err->rc == AP_ERR_INVALID);
    CHECK(memchr(err->msg, '\0', sizeof err->msg) && err->msg[0]);
    CHECK(memchr(err->detail, '\0', sizeof err->detail));
    CHECK(memchr(err->hint, '\0', sizeof err->hint));
}

static void check_lerr(const ap_llm_error_t *e) {
    CHECK(e->kind != AP_LLM_OK);
    CHECK(memchr(e->message, '\0', sizeof e->message) && e->message[0]);
    for (const char *c = e->message; *c; c++) CHECK((unsigned char)*c >= 0x20 && *c != 0x7F);
    json_t *s = json_string(e->message); /* valid UTF-8 */
    CHECK(s);
    json_decref(s);
    CHECK(e->retry_after_ms >= 0 && e->retry_after_ms <= 86400000);
}

static void dump_ok(json_t *v) {
    CHECK(v);
    char *s = json_dumps(v, JSON_COMPACT);
    CHECK(s);
    free(s);
    json_decref(v);
}

static void fuzz_request(ap_arena_t *a, int variant, const char *s, size_t n) {
    ap_wire_kind client = variant & 1 ? AP_WIRE_ANTHROPIC : AP_WIRE_OPENAI;
    json_t *body = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
    ap_llm_req_t req;
    ap_err_t err;
    memset(&err, 0x5a, sizeof err);
    ap_rc rc = ap_wire_parse_request(a, client, body, &req, &err);
    json_decref(body); /* what was kept lives on in the arena */
    if (rc) {
        check_err(&err);
        return;
    }
    CHECK(req.model && req.nmsgs > 0);
    for (int stream = 0; stream < 2; stream++) {
        req.stream = stream;
        for (int p = 0; p < 3; p++) {
            ap_http_call_t call;
            memset(&err, 0x5a, sizeof err);
            rc = ap_wire_build_call(a, (ap_wire_kind)p, &req, &targets[p], &call, &err);
            if (rc) {
                check_err(&err);
                continue;
            }
            CHECK(call.url && call.nheaders >= 1 && call.nheaders <= AP_WIRE_MAX_HEADERS);
            CHECK(strlen(call.body) == call.len);
            json_t *v = json_loadb(call.body, call.len, 0, NULL);
            CHECK(json_is_object(v));
            json_decref(v);
        }
    }
}

static const int statuses[] = {200, 200, 400, 401, 429, 500, 503, 529};
static const char *const retry[] = {NULL, "3", "Wed, 21 Oct 2015 07:28:00 GMT", "x"};

static void fuzz_reply(ap_arena_t *a, int variant, const char *s, size_t n) {
    ap_wire_kind p = (ap_wire_kind)(variant % 3);
    int status = statuses[(variant / 3) % 8];
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    memset(&lerr, 0x5a, sizeof lerr);
    ap_rc rc = ap_wire_parse_reply(a, p, status, retry[variant % 4], s, n, &resp, &lerr);
    if (rc) {
        CHECK(rc == AP_ERR_UNAVAILABLE);
        check_lerr(&lerr);
        CHECK(lerr.http_status == status);
        return;
    }
    CHECK(status == 200 && lerr.kind == AP_LLM_OK);
    CHECK(resp.finish_reason);
    CHECK(!strcmp(resp.finish_reason, "stop") || !strcmp(resp.finish_reason, "length") ||
          !strcmp(resp.finish_reason, "tool_calls") ||
          !strcmp(resp.finish_reason, "content_filter"));
    CHECK(resp.content || resp.ntool_calls);
    for (int i = 0; i < resp.ntool_calls; i++)
        CHECK(resp.tool_calls[i].id && *resp.tool_calls[i].id && resp.tool_calls[i].name &&
              resp.tool_calls[i].arguments);
    for (int k = 0; k < 3; k++) dump_ok(ap_wire_render_response((ap_wire_kind)k, &resp));
}

/* Text, and per tool call (in order of first appearance) the arguments. */
typedef struct {
    ap_buf_t log, text;
    int order[64], norder;
    ap_buf_t args[64];
    bool ids; /* log tool ids (not for Gemini, whose missing ids are random) */
    ap_llm_encoder_t *enc[2];
    ap_buf_t out[2];
} seen_t;

static void seen_init(seen_t *g, bool ids) {
    memset(g, 0, sizeof *g);
    ap_buf_init(&g->log, 0);
    ap_buf_init(&g->text, 0);
    for (int i = 0; i < 64; i++) ap_buf_init(&g->args[i], 0);
    ap_buf_init(&g->out[0], 0);
    ap_buf_init(&g->out[1], 0);
    g->ids = ids;
}

static void seen_free(seen_t *g) {
    ap_buf_free(&g->log);
    ap_buf_free(&g->text);
    for (int i = 0; i < 64; i++) ap_buf_free(&g->args[i]);
    ap_buf_free(&g->out[0]);
    ap_buf_free(&g->out[1]);
}

static void on_delta(void *ud, const ap_llm_delta_t *d) {
    seen_t *g = ud;
    if (d->content) {
        ap_buf_printf(&g->log, "C%zu:", strlen(d->content));
        ap_buf_puts(&g->log, d->content);
        ap_buf_puts(&g->text, d->content);
    }
    if (d->tool_index >= 0) {
        CHECK(d->tool_index < 1024);
        ap_buf_printf(&g->log, "T%d:%s:%s:%s", d->tool_index,
                      g->ids && d->tool_id ? d->tool_id : "", d->tool_name ? d->tool_name : "",
                      d->tool_args ? d->tool_args : "");
        int k = 0;
        while (k < g->norder && g->order[k] != d->tool_index) k++;
        if (k == g->norder && k < 64) g->order[g->norder++] = d->tool_index;
        if (k < 64 && d->tool_args) ap_buf_puts(&g->args[k], d->tool_args);
    } else {
        CHECK(!d->tool_id && !d->tool_name && !d->tool_args);
    }
    if (d->finish_reason) ap_buf_printf(&g->log, "F:%s", d->finish_reason);
    if (d->has_usage)
        ap_buf_printf(&g->log, "U:%lld,%lld,%lld", (long long)d->usage.prompt,
                      (long long)d->usage.completion, (long long)d->usage.cached);
    for (int i = 0; i < 2; i++)
        if (g->enc[i]) ap_llm_encoder_delta(g->enc[i], d, &g->out[i]);
}

static ap_rc decode(ap_arena_t *a, ap_wire_kind p, const char *s, size_t n, uint32_t seed,
                    seen_t *g, ap_llm_error_t *lerr, bool *done) {
    ap_llm_decoder_t *d = ap_llm_decoder_new(a, p);
    ap_rc rc = AP_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = n - i;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % 17;
        }
        if (k > n - i) k = n - i;
        rc = ap_llm_decoder_feed(d, s + i, k, on_delta, g, lerr);
        i += k;
    }
    *done = ap_llm_decoder_done(d);
    return rc;
}

static void fuzz_stream(ap_arena_t *a, int variant, const char *s, size_t n) {
    ap_wire_kind p = (ap_wire_kind)(variant % 3);
    seen_t whole, pieces;
    seen_init(&whole, p != AP_WIRE_GEMINI);
    seen_init(&pieces, p != AP_WIRE_GEMINI);
    whole.enc[0] = ap_llm_encoder_new(a, AP_WIRE_OPENAI, NULL, "m", true);
    whole.enc[1] = ap_llm_encoder_new(a, AP_WIRE_ANTHROPIC, NULL, "m", false);
    ap_llm_error_t e1, e2;
    bool d1, d2;
    ap_rc r1 = decode(a, p, s, n, 0, &whole, &e1, &d1);
    ap_rc r2 = decode(a, p, s, n, (uint32_t)variant + 1, &pieces, &e2, &d2);
    CHECK(r1 == r2 && d1 == d2);
    CHECK(whole.log.len == pieces.log.len);
    CHECK(!whole.log.len || !memcmp(whole.log.p, pieces.log.p, whole.log.len));
    if (r1) {
        CHECK(r1 == AP_ERR_UNAVAILABLE);
        check_lerr(&e1);
        CHECK(e1.kind == e2.kind && !strcmp(e1.message, e2.message));
    }
    for (int i = 0; i < 2; i++) {
        if (r1)
            ap_llm_encoder_error(whole.enc[i], &e1, &whole.out[i]);
        else
            ap_llm_encoder_finish(whole.enc[i], NULL, &whole.out[i]);
        seen_t back;
        seen_init(&back, true);
        ap_llm_error_t e3;
        bool d3;
        ap_wire_kind k = i ? AP_WIRE_ANTHROPIC : AP_WIRE_OPENAI;
        ap_rc r3 = decode(a, k, whole.out[i].p ? whole.out[i].p : "", whole.out[i].len, 7, &back,
                          &e3, &d3);
        CHECK(r3 == r1);
        if (!r3) CHECK(d3);
        CHECK(back.text.len == whole.text.len);
        CHECK(!back.text.len || !memcmp(back.text.p, whole.text.p, back.text.len));
        if (!r3) {
            CHECK(back.norder == whole.norder);
            for (int t = 0; t < back.norder; t++)
                CHECK(back.args[t].len == whole.args[t].len &&
                      (!back.args[t].len ||
                       !memcmp(back.args[t].p, whole.args[t].p, back.args[t].len)));
        }
        seen_free(&back);
    }
    seen_free(&whole);
    seen_free(&pieces);
}

static void fuzz_embed(ap_arena_t *a, int variant, const char *s, size_t n) {
    json_t *body = json_loadb(s, n, 0, NULL);
    ap_llm_embed_req_t req;
    ap_err_t err;
    ap_rc rc = ap_wire_parse_embed_request(a, body, &req, &err);
    json_decref(body);
    if (rc)
        check_err(&err);
    else
        CHECK(req.ninputs > 0 && req.model);
    ap_wire_kind p = variant & 1 ? AP_WIRE_GEMINI : AP_WIRE_OPENAI;
    ap_llm_embed_resp_t resp;
    ap_llm_error_t lerr;
    rc = ap_wire_parse_embed_reply(a, p, 200, NULL, s, n, &resp, &lerr);
    if (rc) {
        check_lerr(&lerr);
        return;
    }
    CHECK(resp.nvectors > 0 && resp.dim > 0);
    for (int i = 0; i < resp.nvectors; i++) CHECK(resp.vectors[i]);
    dump_ok(ap_wire_render_embed_response(&resp));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int target = data[0] & 3, variant = data[0] >> 2;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    ap_arena_t *a = ap_arena_new(4096);
    switch (target) {
    case 0: fuzz_request(a, variant, s, n); break;
    case 1: fuzz_reply(a, variant, s, n); break;
    case 2: fuzz_stream(a, variant, s, n); break;
    case 3: fuzz_embed(a, variant, s, n); break;
    }
    ap_arena_free(a);
    return 0;
}
