/*
 * wire_test.c - the wire protocols (llm/wire*.c) and the SSE parser
 * (llm/sse.c).
 *
 * 1. No database: these run once, not per backend.
 * 2. Rendered bodies are compared as parsed JSON (json_equal), never as
 *    strings, against golden values written out here.  Fixtures use ' for
 *    " (Q() swaps them back) to stay readable.
 * 3. Streams are fed whole, byte by byte and in random pieces (fixed
 *    seed); the deltas must be the same each time.  Encoders are checked by
 *    decoding their output with the matching decoder.
 */
#include "testutil.h"

#include <jansson.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "llm/sse.h"
#include "llm/wire.h"
#include "llm/wire_int.h"

/* ---- helpers ----------------------------------------------------------- */

static char *Q(ap_arena_t *a, const char *s) {
    char *c = ap_arena_strdup(a, s);
    for (char *p = c; *p; p++)
        if (*p == '\'') *p = '"';
    return c;
}

/* Parsed JSON owned by the arena. */
static json_t *J(ap_arena_t *a, const char *s) {
    json_error_t e;
    json_t *v = json_loads(Q(a, s), JSON_DECODE_ANY, &e);
    if (!v) fail_msg("bad JSON in test: %s: %s", e.text, s);
    ap_llm_json_keep(a, v);
    json_decref(v);
    return v;
}

static void check_json(ap_arena_t *a, json_t *got, const char *want) {
    json_t *w = J(a, want);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1) | JSON_ENCODE_ANY);
        char *ws = json_dumps(w, JSON_SORT_KEYS | JSON_INDENT(1) | JSON_ENCODE_ANY);
        print_message("got:\n%s\nwant:\n%s\n", g ? g : "(null)", ws);
        free(g);
        free(ws);
        fail();
    }
}

/* Checks and releases a new reference. */
static void check_json_new(ap_arena_t *a, json_t *got, const char *want) {
    ap_llm_json_keep(a, got);
    json_decref(got);
    check_json(a, got, want);
}

static ap_llm_req_t parse_ok(ap_arena_t *a, ap_wire_kind k, const char *body) {
    ap_llm_req_t req;
    ap_err_t err = {0};
    if (ap_wire_parse_request(a, k, J(a, body), &req, &err))
        fail_msg("parse: %s: %s (%s)", err.msg, err.detail, body);
    return req;
}

static void parse_fails(ap_arena_t *a, ap_wire_kind k, const char *body, const char *type,
                        const char *detail_has) {
    ap_llm_req_t req;
    ap_err_t err = {0};
    ap_rc rc = ap_wire_parse_request(a, k, J(a, body), &req, &err);
    if (rc != AP_ERR_INVALID) fail_msg("accepted: %s", body);
    if (type && strcmp(err.type, type) != 0)
        fail_msg("type %s, want %s (%s) for %s", err.type, type, err.detail, body);
    if (!strstr(err.detail, detail_has))
        fail_msg("detail \"%s\" lacks \"%s\" for %s", err.detail, detail_has, body);
    assert_true(err.msg[0] != '\0');
    assert_true(err.hint[0] != '\0');
}

static const ap_llm_target_t T_OPENAI = {"https://api.openai.com/v1/", "sk-test", "gpt-up"};
static const ap_llm_target_t T_LOCAL = {"http://127.0.0.1:9/v1", NULL, "local-model"};
static const ap_llm_target_t T_ANTHROPIC = {"https://api.anthropic.com/v1", "ak-test", "claude-up"};
static const ap_llm_target_t T_GEMINI = {"https://generativelanguage.googleapis.com/v1beta",
                                         "gk-test", "gemini-up"};

static json_t *build_ok(ap_arena_t *a, ap_wire_kind p, const ap_llm_req_t *req,
                        const ap_llm_target_t *t, ap_http_call_t *call) {
    ap_err_t err = {0};
    if (ap_wire_build_call(a, p, req, t, call, &err))
        fail_msg("build: %s: %s", err.msg, err.detail);
    assert_int_equal(strlen(call->body), call->len);
    json_error_t e;
    json_t *v = json_loadb(call->body, call->len, 0, &e);
    if (!v) fail_msg("built body is not JSON: %s", e.text);
    ap_llm_json_keep(a, v);
    json_decref(v);
    return v;
}

static bool has_header(const ap_http_call_t *c, const char *h) {
    for (int i = 0; i < c->nheaders; i++)
        if (!strcmp(c->headers[i], h)) return true;
    return false;
}

/* Everything a stream's deltas said, and a log of them in order. */
typedef struct {
    ap_buf_t log, content;
    struct {
        char id[64], name[64];
        ap_buf_t args;
    } tools[8];
    int ntools;
    char finish[32];
    ap_llm_usage_t usage;
    bool has_usage, mask_ids;
} agg_t;

static void agg_init(agg_t *g, bool mask_ids) {
    memset(g, 0, sizeof *g);
    ap_buf_init(&g->log, 0);
    ap_buf_init(&g->content, 0);
    for (int i = 0; i < 8; i++) ap_buf_init(&g->tools[i].args, 0);
    g->mask_ids = mask_ids;
}

static void agg_free(agg_t *g) {
    ap_buf_free(&g->log);
    ap_buf_free(&g->content);
    for (int i = 0; i < 8; i++) ap_buf_free(&g->tools[i].args);
}

static void on_delta(void *ud, const ap_llm_delta_t *d) {
    agg_t *g = ud;
    if (d->content) {
        ap_buf_printf(&g->log, "C[%s]", d->content);
        ap_buf_puts(&g->content, d->content);
    }
    if (d->tool_index >= 0) {
        if (d->tool_index >= 8) fail_msg("tool index %d", d->tool_index);
        if (d->tool_index >= g->ntools) g->ntools = d->tool_index + 1;
        ap_buf_printf(&g->log, "T%d[%s|%s|%s]", d->tool_index,
                      d->tool_id ? (g->mask_ids ? "id" : d->tool_id) : "",
                      d->tool_name ? d->tool_name : "", d->tool_args ? d->tool_args : "");
        if (d->tool_id) snprintf(g->tools[d->tool_index].id, 64, "%s", d->tool_id);
        if (d->tool_name) snprintf(g->tools[d->tool_index].name, 64, "%s", d->tool_name);
        if (d->tool_args) ap_buf_puts(&g->tools[d->tool_index].args, d->tool_args);
    }
    if (d->finish_reason) {
        ap_buf_printf(&g->log, "F[%s]", d->finish_reason);
        snprintf(g->finish, sizeof g->finish, "%s", d->finish_reason);
    }
    if (d->has_usage) {
        ap_buf_printf(&g->log, "U[%lld,%lld,%lld]", (long long)d->usage.prompt,
                      (long long)d->usage.completion, (long long)d->usage.cached);
        g->usage = d->usage;
        g->has_usage = true;
    }
}

enum { WHOLE, BYTES, RANDOM };

static ap_rc feed(ap_llm_decoder_t *d, const char *s, size_t n, int mode, agg_t *g,
                  ap_llm_error_t *lerr) {
    size_t i = 0;
    while (i < n) {
        size_t k = mode == WHOLE ? n - i : mode == BYTES ? 1 : 1 + (size_t)(rand() % 40);
        if (k > n - i) k = n - i;
        ap_rc rc = ap_llm_decoder_feed(d, s + i, k, on_delta, g, lerr);
        if (rc) return rc;
        i += k;
    }
    return AP_OK;
}

static bool json_text_equal(ap_arena_t *a, const char *x, const char *y) {
    json_t *jx = json_loads(x, JSON_DECODE_ANY, NULL), *jy = json_loads(y, JSON_DECODE_ANY, NULL);
    bool eq = jx && jy && json_equal(jx, jy);
    json_decref(jx);
    json_decref(jy);
    (void)a;
    return eq;
}

/* ---- SSE parser -------------------------------------------------------- */

typedef struct {
    ap_buf_t log;
    int n;
    int stop_at; /* return an error at this event (1-based), 0 never */
} sse_log_t;

static ap_rc sse_cb(void *ud, const ap_sse_event_t *ev) {
    sse_log_t *l = ud;
    l->n++;
    ap_buf_printf(&l->log, "<%s>", ev->event);
    ap_buf_append(&l->log, ev->data, ev->data_len);
    ap_buf_puts(&l->log, "|");
    assert_int_equal(ev->data[ev->data_len], '\0');
    return l->stop_at && l->n == l->stop_at ? AP_ERR_INVALID : AP_OK;
}

static ap_rc sse_run(const char *s, size_t n, int mode, size_t max_line, size_t max_data,
                     char **out) {
    ap_sse_parser_t p;
    ap_sse_init(&p, max_line, max_data);
    sse_log_t l = {.n = 0};
    ap_buf_init(&l.log, 0);
    ap_rc rc = AP_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = mode == WHOLE ? n : mode == BYTES ? 1 : 1 + (size_t)(rand() % 7);
        if (k > n - i) k = n - i;
        rc = ap_sse_feed(&p, s + i, k, sse_cb, &l);
        i += k;
    }
    ap_sse_free(&p);
    *out = ap_buf_steal(&l.log);
    return rc;
}

static void test_sse_events(void **state) {
    (void)state;
    static const char stream[] = "\xEF\xBB\xBF: a comment first\n"
                                 "data: one\n\n"
                                 "event: named\r\n"
                                 "data:two\r\n"
                                 "data:  three\r\n\r\n"
                                 "event: lonely\n\n" /* no data: not dispatched, name reset */
                                 "data\n\n"          /* a field without colon: empty data */
                                 "id: 7\nretry: 10\nfoo: bar\n" /* ignored fields */
                                 "data: cr\rdata: only\r\r"
                                 "event: e\ndata: {\"a\":1}\n\n"
                                 "data: never finished"; /* no blank line: not dispatched */
    const char *want = "<message>one|<named>two\n three|<message>|<message>cr\nonly|<e>{\"a\":1}|";
    for (int mode = WHOLE; mode <= RANDOM; mode++) {
        for (int rep = 0; rep < (mode == RANDOM ? 50 : 1); rep++) {
            char *got;
            assert_int_equal(sse_run(stream, sizeof stream - 1, mode, 0, 0, &got), AP_OK);
            assert_string_equal(got, want);
            ap_free(got);
        }
    }
}

/* Found by sse_fuzz: a name starting with a NUL byte reached the callback
 * as "", which the writer sends as "event: " and a reader takes for
 * "message"; names are C strings, so such a name is "message" at once. */
static void test_sse_event_name_cut_at_nul(void **state) {
    (void)state;
    static const char stream[] = "event: \0x\ndata: a\n\nevent: b\0c\ndata: b\n\n";
    char *got;
    assert_int_equal(sse_run(stream, sizeof stream - 1, BYTES, 0, 0, &got), AP_OK);
    assert_string_equal(got, "<message>a|<b>b|");
    ap_free(got);
    ap_buf_t out;
    ap_buf_init(&out, 0);
    ap_sse_write(&out, "message", "a", 1);
    assert_int_equal(sse_run(out.p, out.len, WHOLE, 0, 0, &got), AP_OK);
    assert_string_equal(got, "<message>a|");
    ap_free(got);
    ap_buf_free(&out);
}

static void test_sse_line_limit(void **state) {
    (void)state;
    char *got;
    /* a line of exactly 16 bytes passes; 17 fails, whatever the chunking */
    const char ok[] = "data: 0123456789\n\n";
    assert_int_equal(sse_run(ok, sizeof ok - 1, BYTES, 16, 0, &got), AP_OK);
    assert_string_equal(got, "<message>0123456789|");
    ap_free(got);
    const char bad[] = "data: a\n\ndata: 01234567890\n\ndata: b\n\n";
    for (int mode = WHOLE; mode <= RANDOM; mode++) {
        assert_int_equal(sse_run(bad, sizeof bad - 1, mode, 16, 0, &got), AP_ERR_TOO_LARGE);
        assert_string_equal(got, "<message>a|");
        ap_free(got);
    }
    /* an unfinished over-long line fails as soon as it is known */
    ap_sse_parser_t p;
    ap_sse_init(&p, 8, 0);
    sse_log_t l = {.n = 0};
    ap_buf_init(&l.log, 0);
    assert_int_equal(ap_sse_feed(&p, "data: 12", 8, sse_cb, &l), AP_OK);
    assert_int_equal(ap_sse_feed(&p, "3", 1, sse_cb, &l), AP_ERR_TOO_LARGE);
    /* sticky */
    assert_int_equal(ap_sse_feed(&p, "\n\n", 2, sse_cb, &l), AP_ERR_TOO_LARGE);
    assert_int_equal(l.n, 0);
    ap_sse_free(&p);
    ap_buf_free(&l.log);
    /* event data has its own maximum */
    const char big[] = "data: 1234\ndata: 5678\ndata: 9\n\n";
    assert_int_equal(sse_run(big, sizeof big - 1, WHOLE, 0, 12, &got), AP_OK); /* fits */
    ap_free(got);
    assert_int_equal(sse_run(big, sizeof big - 1, WHOLE, 0, 11, &got), AP_ERR_TOO_LARGE);
    ap_free(got);
    /* an over-long event name fails too */
    char name[300] = "event: ";
    memset(name + 7, 'x', 200);
    strcpy(name + 207, "\ndata: x\n\n");
    assert_int_equal(sse_run(name, strlen(name), WHOLE, 0, 0, &got), AP_ERR_TOO_LARGE);
    ap_free(got);
}

static void test_sse_callback_stops(void **state) {
    (void)state;
    ap_sse_parser_t p;
    ap_sse_init(&p, 0, 0);
    sse_log_t l = {.stop_at = 2};
    ap_buf_init(&l.log, 0);
    const char s[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(ap_sse_feed(&p, s, sizeof s - 1, sse_cb, &l), AP_ERR_INVALID);
    assert_int_equal(l.n, 2);
    assert_int_equal(ap_sse_feed(&p, s, sizeof s - 1, sse_cb, &l), AP_ERR_INVALID);
    assert_int_equal(l.n, 2);
    ap_sse_free(&p);
    ap_buf_free(&l.log);
    /* arena-tied parser: freed with the arena (ASan checks) */
    ap_arena_t *a = ap_arena_new(1024);
    ap_sse_parser_t *q = ap_sse_new(a, 0, 0);
    sse_log_t l2 = {.n = 0};
    ap_buf_init(&l2.log, 0);
    assert_int_equal(ap_sse_feed(q, "data: partial", 13, sse_cb, &l2), AP_OK);
    ap_arena_free(a);
    ap_buf_free(&l2.log);
}

static void test_sse_writer(void **state) {
    (void)state;
    ap_buf_t out;
    ap_buf_init(&out, 0);
    ap_sse_write(&out, "evil\r\nname", "a\nb\r\nc\rd", 8);
    ap_sse_write(&out, NULL, "", 0);
    ap_sse_write(&out, NULL, "end\n", 4);
    ap_sse_write_comment(&out, "keep\nalive");
    assert_string_equal(out.p, "event: evilname\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
                               "data: \n\n"
                               "data: end\ndata: \n\n"
                               ": keep alive\n\n");
    char *got;
    assert_int_equal(sse_run(out.p, out.len, BYTES, 0, 0, &got), AP_OK);
    assert_string_equal(got, "<evilname>a\nb\nc\nd|<message>|<message>end\n|");
    ap_free(got);
    ap_buf_free(&out);
    /* a full buffer fails cleanly */
    ap_buf_init(&out, 10);
    assert_int_equal(ap_sse_write(&out, NULL, "0123456789", 10), AP_ERR_TOO_LARGE);
    ap_buf_free(&out);
}

/* ---- client requests: OpenAI ------------------------------------------- */

static const char OPENAI_REQ[] =
    "{'model':'gpt-4o','stream':true,'stream_options':{'include_usage':true},"
    " 'max_completion_tokens':300,'temperature':0.5,'top_p':0.9,'stop':'END',"
    " 'seed':7,'logprobs':false,'frequency_penalty':0.1,'presence_penalty':-0.1,"
    " 'parallel_tool_calls':true,'store':false,'service_tier':'auto','n':1,"
    " 'user':'u-1','metadata':{'team':'blue'},"
    " 'messages':["
    "  {'role':'developer','content':[{'type':'text','text':'Be "
    "'},{'type':'text','text':'brief.'}]},"
    "  {'role':'user','content':[{'type':'text','text':'Weather?'},"
    "     {'type':'image_url','image_url':{'url':'data:image/png;base64,iVBO'}}],'name':'ann'},"
    "  {'role':'assistant','content':null,'tool_calls':["
    "     "
    "{'id':'call_1','type':'function','function':{'name':'get_weather','arguments':'{\\'city\\':\\'"
    "Paris\\'}'}},"
    "     {'id':'call_2','type':'function','function':{'name':'get_time','arguments':'{}'}}]},"
    "  {'role':'tool','tool_call_id':'call_1','content':'{\\'temp\\':21}'},"
    "  {'role':'tool','tool_call_id':'call_2','content':[{'type':'text','text':'noon'}]},"
    "  {'role':'user','content':'Thanks'}],"
    " 'tools':[{'type':'function','function':{'name':'get_weather','description':'Weather now',"
    "     "
    "'parameters':{'type':'object','properties':{'city':{'type':'string'}},'required':['city'],"
    "     'additionalProperties':false},'strict':true}},"
    "   "
    "{'type':'function','function':{'name':'get_time','parameters':{'type':'object','properties':{}"
    "}}}],"
    " 'tool_choice':'required'}";

static void test_openai_parse_request(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_OPENAI, OPENAI_REQ);
    assert_string_equal(r.model, "gpt-4o");
    assert_true(r.stream);
    assert_int_equal(r.max_tokens, 300); /* max_completion_tokens is an alias */
    assert_true(r.has_temperature && r.temperature == 0.5);
    assert_true(r.has_top_p && r.top_p == 0.9);
    assert_int_equal(r.nstop, 1);
    assert_string_equal(r.stop[0], "END");
    assert_string_equal(r.user, "u-1");
    check_json(a, r.metadata, "{'team':'blue'}");
    assert_int_equal(r.nmsgs, 6);
    assert_int_equal(r.msgs[0].role, AP_LLM_SYSTEM);
    assert_string_equal(r.msgs[0].content, "Be brief.");
    assert_true(json_is_array(r.msgs[0].parts));
    assert_int_equal(r.msgs[1].role, AP_LLM_USER);
    assert_string_equal(r.msgs[1].content, "Weather?");
    assert_string_equal(r.msgs[1].name, "ann");
    assert_int_equal(json_array_size(r.msgs[1].parts), 2);
    assert_int_equal(r.msgs[2].role, AP_LLM_ASSISTANT);
    assert_null(r.msgs[2].content);
    assert_int_equal(r.msgs[2].ntool_calls, 2);
    assert_string_equal(r.msgs[2].tool_calls[0].id, "call_1");
    assert_string_equal(r.msgs[2].tool_calls[0].name, "get_weather");
    assert_string_equal(r.msgs[2].tool_calls[0].arguments, "{\"city\":\"Paris\"}");
    assert_int_equal(r.msgs[3].role, AP_LLM_TOOL);
    assert_string_equal(r.msgs[3].tool_call_id, "call_1");
    assert_string_equal(r.msgs[3].content, "{\"temp\":21}");
    assert_string_equal(r.msgs[4].content, "noon");
    assert_int_equal(r.ntools, 2);
    assert_string_equal(r.tools[0].name, "get_weather");
    assert_string_equal(r.tools[0].description, "Weather now");
    assert_non_null(r.tools[0].parameters);
    assert_null(r.tools[1].description);
    assert_string_equal(r.tool_choice, "required");
    /* max_tokens alone; tool_choice by name; response_format kept */
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'hi'}],"
                 "'tools':[{'type':'function','function':{'name':'f'}}],"
                 "'tool_choice':{'type':'function','function':{'name':'f'}},"
                 "'response_format':{'type':'json_schema','json_schema':{'name':'x','schema':{'"
                 "type':'object'}}},"
                 "'stop':['a','b'],'temperature':null,'user':null}");
    assert_int_equal(r.max_tokens, 5);
    assert_string_equal(r.tool_choice, "f");
    assert_non_null(r.response_format);
    assert_int_equal(r.nstop, 2);
    assert_false(r.has_temperature);
    assert_false(r.stream);
    /* response_format text means nothing special */
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','messages':[{'role':'user','content':'hi'}],"
                 "'response_format':{'type':'text'}}");
    assert_null(r.response_format);
    ap_arena_free(a);
}

static void test_openai_parse_request_errors(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        const char *body, *type, *detail;
    } cases[] = {
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'temprature':1}", "unknown-field",
         "\"temprature\""},
        {"{'messages':[{'role':'user','content':'x'}]}", "missing-field", "\"model\""},
        {"{'model':'m'}", "missing-field", "\"messages\""},
        {"{'model':'','messages':[{'role':'user','content':'x'}]}", "invalid-field", "\"model\""},
        {"{'model':'m','messages':[]}", "invalid-field", "\"messages\""},
        {"{'model':'m','messages':'hi'}", "invalid-field", "\"messages\" must be array"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'n':2}", "invalid-field",
         "only 1 is supported"},
        {"{'model':'m','messages':[{'role':'robot','content':'x'}]}", "invalid-field",
         "\"messages[0].role\""},
        {"{'model':'m','messages':[{'role':'function','content':'x','name':'f'}]}", "invalid-field",
         "\"messages[0].role\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'},{'role':'user'}]}",
         "missing-field", "\"messages[1].content\""},
        {"{'model':'m','messages':[{'role':'user','content':5}]}", "invalid-field",
         "\"messages[0].content\" must be string or array, got integer"},
        {"{'model':'m','messages':[{'role':'user','content':'x','colour':'red'}]}", "unknown-field",
         "\"messages[0].colour\""},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'video','video':{}}]}]}",
         "invalid-field", "\"messages[0].content[0].type\""},
        {"{'model':'m','messages':[{'role':'system','content':[{'type':'image_url','image_url':{'"
         "url':'x'}}]}]}",
         "invalid-field", "\"messages[0].content[0].type\""},
        {"{'model':'m','messages':[{'role':'user','content':[{'type':'text'}]}]}", "invalid-field",
         "\"messages[0].content[0].text\""},
        {"{'model':'m','messages':[{'role':'tool','content':'x'}]}", "missing-field",
         "\"messages[0].tool_call_id\""},
        {"{'model':'m','messages':[{'role':'user','content':'x','tool_calls':[]}]}",
         "invalid-field", "\"messages[0].tool_calls\""},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':'custom',"
         "'function':{'name':'f','arguments':'{}'}}]}]}",
         "invalid-field", "\"messages[0].tool_calls[0].type\""},
        {"{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
         "'function':{'name':'f','arguments':{}}}]}]}",
         "invalid-field", "\"messages[0].tool_calls[0].function.arguments\" must be string"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'temperature':3}",
         "invalid-field", "\"temperature\" is 3"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'max_tokens':0}", "invalid-field",
         "\"max_tokens\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'max_tokens':'9'}",
         "invalid-field", "\"max_tokens\" must be integer"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stop':['a','b','c','d','e']}",
         "invalid-field", "\"stop\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'web_search'}]}",
         "missing-field", "\"tools[0].function\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'custom','"
         "function':{'name':'f'}}]}",
         "invalid-field", "\"tools[0].type\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'function','"
         "function':{'name':'bad name'}}]}",
         "invalid-field", "\"tools[0].function.name\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'function','"
         "function':{'name':'f'}},"
         "{'type':'function','function':{'name':'f'}}]}",
         "invalid-field", "defined twice"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tools':[{'type':'function','"
         "function':{'name':'f'}}],"
         "'tool_choice':{'type':'function','function':{'name':'g'}}}",
         "invalid-field", "not in tools"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tool_choice':'auto'}",
         "invalid-field", "\"tool_choice\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'tool_choice':'sometimes'}",
         "invalid-field", "\"tool_choice\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stream_options':{'include_usage'"
         ":true}}",
         "invalid-field", "only allowed when stream is true"},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stream':true,'stream_options':{'"
         "usage':true}}",
         "unknown-field", "\"stream_options.usage\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'functions':[]}", "invalid-field",
         "\"functions\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'response_format':{'type':'yaml'}"
         "}",
         "invalid-field", "\"response_format.type\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'modalities':['text','audio']}",
         "invalid-field", "\"modalities\""},
        {"{'model':'m','messages':[{'role':'user','content':'x'}],'stream':'yes'}", "invalid-field",
         "\"stream\" must be boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fails(a, AP_WIRE_OPENAI, cases[i].body, cases[i].type, cases[i].detail);
    /* the body itself must be an object; Gemini is no client protocol */
    ap_llm_req_t r;
    ap_err_t err = {0};
    assert_int_equal(ap_wire_parse_request(a, AP_WIRE_OPENAI, J(a, "[1]"), &r, &err),
                     AP_ERR_INVALID);
    assert_int_equal(ap_wire_parse_request(a, AP_WIRE_OPENAI, NULL, &r, &err), AP_ERR_INVALID);
    assert_int_equal(
        ap_wire_parse_request(a, AP_WIRE_GEMINI, J(a, "{'model':'m','messages':[]}"), &r, &err),
        AP_ERR_INVALID);
    ap_arena_free(a);
}

/* ---- client requests: Anthropic ---------------------------------------- */

static const char ANTHROPIC_REQ[] =
    "{'model':'claude-x','max_tokens':1024,'stream':true,'top_k':40,'temperature':0.2,"
    " 'stop_sequences':['STOP'],'metadata':{'user_id':'u-9'},"
    " 'system':[{'type':'text','text':'Be brief.','cache_control':{'type':'ephemeral'}}],"
    " 'messages':["
    "  {'role':'user','content':[{'type':'text','text':'Weather?'},"
    "     {'type':'image','source':{'type':'base64','media_type':'image/png','data':'iVBO'}}]},"
    "  {'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature':'sig'},"
    "     {'type':'text','text':'Checking.'},"
    "     {'type':'tool_use','id':'toolu_1','name':'get_weather','input':{'city':'Paris'}},"
    "     {'type':'tool_use','id':'toolu_2','name':'get_time','input':{}}]},"
    "  {'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'21C'},"
    "     {'type':'tool_result','tool_use_id':'toolu_2','is_error':true,"
    "      'content':[{'type':'text','text':'clock '},{'type':'text','text':'broken'}]},"
    "     {'type':'text','text':'Thanks'}]},"
    "  {'role':'assistant','content':'You are welcome.'}],"
    " 'tools':[{'name':'get_weather','description':'Weather now',"
    "     'input_schema':{'type':'object','properties':{'city':{'type':'string'}}}},"
    "   {'name':'get_time','input_schema':{'type':'object'}}],"
    " 'tool_choice':{'type':'any'}}";

static void test_anthropic_parse_request(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_ANTHROPIC, ANTHROPIC_REQ);
    assert_string_equal(r.model, "claude-x");
    assert_int_equal(r.max_tokens, 1024);
    assert_int_equal(r.top_k, 40);
    assert_true(r.stream);
    assert_string_equal(r.user, "u-9");
    assert_int_equal(r.nstop, 1);
    assert_int_equal(r.nmsgs, 7);
    assert_int_equal(r.msgs[0].role, AP_LLM_SYSTEM);
    assert_string_equal(r.msgs[0].content, "Be brief.");
    assert_int_equal(json_array_size(r.msgs[0].parts), 1);
    assert_int_equal(r.msgs[1].role, AP_LLM_USER);
    assert_string_equal(r.msgs[1].content, "Weather?");
    assert_int_equal(json_array_size(r.msgs[1].parts), 2);
    assert_int_equal(r.msgs[2].role, AP_LLM_ASSISTANT);
    assert_string_equal(r.msgs[2].content, "Checking.");
    assert_int_equal(json_array_size(r.msgs[2].parts), 2); /* thinking + text */
    assert_int_equal(r.msgs[2].ntool_calls, 2);
    assert_string_equal(r.msgs[2].tool_calls[0].id, "toolu_1");
    assert_true(json_text_equal(a, r.msgs[2].tool_calls[0].arguments, "{\"city\":\"Paris\"}"));
    assert_string_equal(r.msgs[2].tool_calls[1].arguments, "{}");
    assert_int_equal(r.msgs[3].role, AP_LLM_TOOL);
    assert_string_equal(r.msgs[3].tool_call_id, "toolu_1");
    assert_string_equal(r.msgs[3].content, "21C");
    assert_false(r.msgs[3].is_error);
    assert_int_equal(r.msgs[4].role, AP_LLM_TOOL);
    assert_string_equal(r.msgs[4].content, "clock broken");
    assert_true(r.msgs[4].is_error);
    assert_int_equal(r.msgs[5].role, AP_LLM_USER);
    assert_string_equal(r.msgs[5].content, "Thanks");
    assert_int_equal(r.msgs[6].role, AP_LLM_ASSISTANT);
    assert_string_equal(r.msgs[6].content, "You are welcome.");
    assert_null(r.msgs[6].parts);
    assert_int_equal(r.ntools, 2);
    assert_string_equal(r.tool_choice, "required");
    /* string system, tool_choice tool/none/auto */
    r = parse_ok(
        a, AP_WIRE_ANTHROPIC,
        "{'model':'m','max_tokens':1,'system':'S','messages':[{'role':'user','content':'hi'}],"
        "'tools':[{'name':'f','input_schema':{'type':'object'}}],'tool_choice':{'type':'tool','"
        "name':'f'}}");
    assert_string_equal(r.msgs[0].content, "S");
    assert_null(r.msgs[0].parts);
    assert_string_equal(r.tool_choice, "f");
    r = parse_ok(a, AP_WIRE_ANTHROPIC,
                 "{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'hi'}],"
                 "'tool_choice':{'type':'none'},'thinking':{'type':'disabled'}}");
    assert_string_equal(r.tool_choice, "none");
    assert_int_equal(r.nmsgs, 1);
    ap_arena_free(a);
}

static void test_anthropic_parse_request_errors(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        const char *body, *type, *detail;
    } cases[] = {
        {"{'model':'m','messages':[{'role':'user','content':'x'}]}", "missing-field",
         "\"max_tokens\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'n':1}",
         "unknown-field", "\"n\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'system','content':'x'}]}",
         "invalid-field", "\"messages[0].role\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user'}]}", "missing-field",
         "\"messages[0].content\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':[{'type':'audio'}]}]}",
         "invalid-field", "\"messages[0].content[0].type\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':[{'type':'tool_use','id'"
         ":'a','name':'f','input':{}}]}]}",
         "invalid-field", "\"messages[0].content[0].type\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'assistant','content':[{'type':'tool_use'"
         ",'id':'a','name':'f','input':'x'}]}]}",
         "invalid-field", "\"messages[0].content[0].input\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':[{'type':'tool_result'}]"
         "}]}",
         "missing-field", "\"messages[0].content[0].tool_use_id\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':[{'type':'text'}]}]}",
         "missing-field", "\"messages[0].content[0].text\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'system':[{'type':"
         "'image'}]}",
         "invalid-field", "\"system[0].type\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'temperature':1."
         "5}",
         "invalid-field", "\"temperature\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],"
         "'tools':[{'type':'web_search_20250305','name':'web_search'}]}",
         "invalid-field", "\"tools[0].type\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'tools':[{'name':'"
         "f'}]}",
         "missing-field", "\"tools[0].input_schema\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],"
         "'tools':[{'name':'f','input_schema':{}}],'tool_choice':{'type':'tool','name':'g'}}",
         "invalid-field", "not in tools"},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'tool_choice':{'"
         "type':'maybe'}}",
         "invalid-field", "\"tool_choice.type\""},
        {"{'model':'m','max_tokens':1,'messages':[{'role':'user','content':'x'}],'metadata':{'team'"
         ":'x'}}",
         "unknown-field", "\"metadata.team\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fails(a, AP_WIRE_ANTHROPIC, cases[i].body, cases[i].type, cases[i].detail);
    ap_arena_free(a);
}

/* ---- upstream calls: golden bodies and round trips ---------------------- */

static void test_build_openai_to_anthropic(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_OPENAI, OPENAI_REQ);
    ap_http_call_t c;
    json_t *body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    assert_string_equal(c.url, "https://api.anthropic.com/v1/messages");
    assert_true(has_header(&c, "Content-Type: application/json"));
    assert_true(has_header(&c, "x-api-key: ak-test"));
    assert_true(has_header(&c, "anthropic-version: 2023-06-01"));
    assert_true(has_header(&c, "Accept: text/event-stream"));
    assert_int_equal(c.nheaders, 4);
    check_json(
        a, body,
        "{'model':'claude-up','max_tokens':300,'stream':true,"
        " 'system':[{'type':'text','text':'Be '},{'type':'text','text':'brief.'}],"
        " 'messages':["
        "  {'role':'user','content':[{'type':'text','text':'Weather?'},"
        "    {'type':'image','source':{'type':'base64','media_type':'image/png','data':'iVBO'}}]},"
        "  {'role':'assistant','content':["
        "    {'type':'tool_use','id':'call_1','name':'get_weather','input':{'city':'Paris'}},"
        "    {'type':'tool_use','id':'call_2','name':'get_time','input':{}}]},"
        "  {'role':'user','content':["
        "    {'type':'tool_result','tool_use_id':'call_1','content':'{\\'temp\\':21}'},"
        "    {'type':'tool_result','tool_use_id':'call_2','content':'noon'},"
        "    {'type':'text','text':'Thanks'}]}],"
        " 'tools':[{'name':'get_weather','description':'Weather now',"
        "    'input_schema':{'type':'object','properties':{'city':{'type':'string'}},"
        "    'required':['city'],'additionalProperties':false}},"
        "   {'name':'get_time','input_schema':{'type':'object','properties':{}}}],"
        " 'tool_choice':{'type':'any'},'stop_sequences':['END'],"
        " 'temperature':0.5,'top_p':0.9,'metadata':{'user_id':'u-1'}}");
    /* no max_tokens: the Messages API needs one, 4096 by default; the
     * temperature range differs (OpenAI 0..2, Anthropic 0..1) */
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','temperature':1.7,'messages':[{'role':'system','content':'A'},"
                 "{'role':'system','content':'B'},{'role':'user','content':'x'},"
                 "{'role':'user','content':'y'}]}");
    body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    check_json(a, body,
               "{'model':'claude-up','max_tokens':4096,'system':'A\\n\\nB','temperature':1.0,"
               " 'messages':[{'role':'user','content':[{'type':'text','text':'x'},"
               "   {'type':'text','text':'y'}]}]}");
    assert_int_equal(c.nheaders, 3);
    ap_arena_free(a);
}

static void test_build_openai_to_gemini(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_OPENAI, OPENAI_REQ);
    ap_http_call_t c;
    json_t *body = build_ok(a, AP_WIRE_GEMINI, &r, &T_GEMINI, &c);
    assert_string_equal(c.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                               "gemini-up:streamGenerateContent?alt=sse");
    assert_true(has_header(&c, "x-goog-api-key: gk-test"));
    assert_true(has_header(&c, "Accept: text/event-stream"));
    check_json(a, body,
               "{'systemInstruction':{'parts':[{'text':'Be brief.'}]},"
               " 'contents':["
               "  {'role':'user','parts':[{'text':'Weather?'},"
               "    {'inlineData':{'mimeType':'image/png','data':'iVBO'}}]},"
               "  {'role':'model','parts':["
               "    {'functionCall':{'name':'get_weather','args':{'city':'Paris'}}},"
               "    {'functionCall':{'name':'get_time','args':{}}}]},"
               "  {'role':'user','parts':["
               "    {'functionResponse':{'name':'get_weather','response':{'temp':21}}},"
               "    {'functionResponse':{'name':'get_time','response':{'result':'noon'}}},"
               "    {'text':'Thanks'}]}],"
               " 'tools':[{'functionDeclarations':["
               "   {'name':'get_weather','description':'Weather now','parameters':{'type':'object',"
               "     'properties':{'city':{'type':'string'}},'required':['city']}},"
               "   {'name':'get_time'}]}],"
               " 'toolConfig':{'functionCallingConfig':{'mode':'ANY'}},"
               " 'generationConfig':{'temperature':0.5,'topP':0.9,'maxOutputTokens':300,"
               "   'stopSequences':['END']}}");
    /* not streamed; a named tool choice; JSON mode; models/ prefix */
    r = parse_ok(
        a, AP_WIRE_OPENAI,
        "{'model':'m','messages':[{'role':'user','content':'x'}],"
        "'tools':[{'type':'function','function':{'name':'f','parameters':{'type':'object',"
        "'properties':{'additionalProperties':{'type':'string'}},'$schema':'x'}}}],"
        "'tool_choice':{'type':'function','function':{'name':'f'}},"
        "'response_format':{'type':'json_schema','json_schema':{'name':'o','schema':"
        "{'type':'object','properties':{'a':{'type':'integer'}},'additionalProperties':false}}}}");
    ap_llm_target_t t = {"https://g.example/v1beta", NULL, "models/gemini-2.5-flash"};
    body = build_ok(a, AP_WIRE_GEMINI, &r, &t, &c);
    assert_string_equal(c.url, "https://g.example/v1beta/models/gemini-2.5-flash:generateContent");
    assert_int_equal(c.nheaders, 1);
    check_json(
        a, body,
        "{'contents':[{'role':'user','parts':[{'text':'x'}]}],"
        " 'tools':[{'functionDeclarations':[{'name':'f','parameters':{'type':'object',"
        "   'properties':{'additionalProperties':{'type':'string'}}}}]}],"
        " 'toolConfig':{'functionCallingConfig':{'mode':'ANY','allowedFunctionNames':['f']}},"
        " 'generationConfig':{'responseMimeType':'application/json','responseSchema':"
        "   {'type':'object','properties':{'a':{'type':'integer'}}}}}");
    /* a model id that cannot go into a URL path */
    ap_err_t err = {0};
    ap_llm_target_t bad = {"https://g.example", "k", "../admin?x=1"};
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_GEMINI, &r, &bad, &c, &err), AP_ERR_INVALID);
    /* a tool result whose call is unknown cannot be named for Gemini */
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','messages':[{'role':'tool','tool_call_id':'nope','content':'x'}]}");
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_GEMINI, &r, &T_GEMINI, &c, &err),
                     AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "nope"));
    ap_arena_free(a);
}

static void test_build_anthropic_to_openai(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_ANTHROPIC, ANTHROPIC_REQ);
    ap_http_call_t c;
    json_t *body = build_ok(a, AP_WIRE_OPENAI, &r, &T_OPENAI, &c);
    assert_string_equal(c.url, "https://api.openai.com/v1/chat/completions");
    assert_true(has_header(&c, "Authorization: Bearer sk-test"));
    assert_true(has_header(&c, "Content-Type: application/json"));
    assert_true(has_header(&c, "Accept: text/event-stream"));
    check_json(
        a, body,
        "{'model':'gpt-up','stream':true,'stream_options':{'include_usage':true},"
        " 'max_completion_tokens':1024,'temperature':0.2,'stop':['STOP'],'user':'u-9',"
        " 'messages':["
        "  {'role':'system','content':'Be brief.'},"
        "  {'role':'user','content':[{'type':'text','text':'Weather?'},"
        "    {'type':'image_url','image_url':{'url':'data:image/png;base64,iVBO'}}]},"
        "  {'role':'assistant','content':'Checking.','tool_calls':["
        "    "
        "{'id':'toolu_1','type':'function','function':{'name':'get_weather','arguments':'{\\'"
        "city\\':\\'Paris\\'}'}},"
        "    {'id':'toolu_2','type':'function','function':{'name':'get_time','arguments':'{}'}}]},"
        "  {'role':'tool','tool_call_id':'toolu_1','content':'21C'},"
        "  {'role':'tool','tool_call_id':'toolu_2','content':'clock broken'},"
        "  {'role':'user','content':'Thanks'},"
        "  {'role':'assistant','content':'You are welcome.'}],"
        " 'tools':[{'type':'function','function':{'name':'get_weather','description':'Weather now',"
        "    'parameters':{'type':'object','properties':{'city':{'type':'string'}}}}},"
        "   {'type':'function','function':{'name':'get_time','parameters':{'type':'object'}}}],"
        " 'tool_choice':'required'}");
    /* compatible servers get max_tokens and no Authorization without a key */
    body = build_ok(a, AP_WIRE_OPENAI, &r, &T_LOCAL, &c);
    assert_string_equal(c.url, "http://127.0.0.1:9/v1/chat/completions");
    assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")), 1024);
    assert_null(json_object_get(body, "max_completion_tokens"));
    for (int i = 0; i < c.nheaders; i++) assert_null(strstr(c.headers[i], "Authorization"));
    ap_arena_free(a);
}

static void test_build_anthropic_to_gemini(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t r = parse_ok(a, AP_WIRE_ANTHROPIC, ANTHROPIC_REQ);
    ap_http_call_t c;
    json_t *body = build_ok(a, AP_WIRE_GEMINI, &r, &T_GEMINI, &c);
    assert_string_equal(c.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                               "gemini-up:streamGenerateContent?alt=sse");
    /* thinking dropped; tool results named from their calls; a failed
     * tool answers {"error": …}; a schema without properties left out */
    check_json(a, body,
               "{'systemInstruction':{'parts':[{'text':'Be brief.'}]},"
               " 'contents':["
               "  {'role':'user','parts':[{'text':'Weather?'},"
               "    {'inlineData':{'mimeType':'image/png','data':'iVBO'}}]},"
               "  {'role':'model','parts':[{'text':'Checking.'},"
               "    {'functionCall':{'name':'get_weather','args':{'city':'Paris'}}},"
               "    {'functionCall':{'name':'get_time','args':{}}}]},"
               "  {'role':'user','parts':["
               "    {'functionResponse':{'name':'get_weather','response':{'result':'21C'}}},"
               "    {'functionResponse':{'name':'get_time','response':{'error':'clock broken'}}},"
               "    {'text':'Thanks'}]},"
               "  {'role':'model','parts':[{'text':'You are welcome.'}]}],"
               " 'tools':[{'functionDeclarations':["
               "   {'name':'get_weather','description':'Weather now','parameters':{'type':'object',"
               "     'properties':{'city':{'type':'string'}}}},"
               "   {'name':'get_time'}]}],"
               " 'toolConfig':{'functionCallingConfig':{'mode':'ANY'}},"
               " 'generationConfig':{'temperature':0.2,'topK':40,'maxOutputTokens':1024,"
               "   'stopSequences':['STOP']}}");
    ap_arena_free(a);
}

static void test_build_same_protocol(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    /* Anthropic → Anthropic keeps thinking blocks, images and cache_control */
    ap_llm_req_t r = parse_ok(a, AP_WIRE_ANTHROPIC, ANTHROPIC_REQ);
    ap_http_call_t c;
    json_t *body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    check_json(
        a, body,
        "{'model':'claude-up','max_tokens':1024,'stream':true,'top_k':40,'temperature':0.2,"
        " 'stop_sequences':['STOP'],'metadata':{'user_id':'u-9'},"
        " 'system':[{'type':'text','text':'Be brief.','cache_control':{'type':'ephemeral'}}],"
        " 'messages':["
        "  {'role':'user','content':[{'type':'text','text':'Weather?'},"
        "    {'type':'image','source':{'type':'base64','media_type':'image/png','data':'iVBO'}}]},"
        "  {'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature':'sig'},"
        "    {'type':'text','text':'Checking.'},"
        "    {'type':'tool_use','id':'toolu_1','name':'get_weather','input':{'city':'Paris'}},"
        "    {'type':'tool_use','id':'toolu_2','name':'get_time','input':{}}]},"
        "  "
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'21C'},"
        "    {'type':'tool_result','tool_use_id':'toolu_2','content':'clock "
        "broken','is_error':true},"
        "    {'type':'text','text':'Thanks'}]},"
        "  {'role':'assistant','content':'You are welcome.'}],"
        " 'tools':[{'name':'get_weather','description':'Weather now',"
        "    'input_schema':{'type':'object','properties':{'city':{'type':'string'}}}},"
        "   {'name':'get_time','input_schema':{'type':'object'}}],"
        " 'tool_choice':{'type':'any'}}");
    /* OpenAI → OpenAI keeps user parts as they were */
    r = parse_ok(a, AP_WIRE_OPENAI, OPENAI_REQ);
    body = build_ok(a, AP_WIRE_OPENAI, &r, &T_LOCAL, &c);
    check_json(
        a, body,
        "{'model':'local-model','stream':true,'stream_options':{'include_usage':true},"
        " 'max_tokens':300,'temperature':0.5,'top_p':0.9,'stop':['END'],'user':'u-1',"
        " 'messages':["
        "  {'role':'system','content':'Be brief.'},"
        "  {'role':'user','name':'ann','content':[{'type':'text','text':'Weather?'},"
        "    {'type':'image_url','image_url':{'url':'data:image/png;base64,iVBO'}}]},"
        "  {'role':'assistant','content':null,'tool_calls':["
        "    "
        "{'id':'call_1','type':'function','function':{'name':'get_weather','arguments':'{\\'city\\'"
        ":\\'Paris\\'}'}},"
        "    {'id':'call_2','type':'function','function':{'name':'get_time','arguments':'{}'}}]},"
        "  {'role':'tool','tool_call_id':'call_1','content':'{\\'temp\\':21}'},"
        "  {'role':'tool','tool_call_id':'call_2','content':'noon'},"
        "  {'role':'user','content':'Thanks'}],"
        " 'tools':[{'type':'function','function':{'name':'get_weather','description':'Weather now',"
        "    'parameters':{'type':'object','properties':{'city':{'type':'string'}},"
        "    'required':['city'],'additionalProperties':false}}},"
        "   "
        "{'type':'function','function':{'name':'get_time','parameters':{'type':'object','"
        "properties':{}}}}],"
        " 'tool_choice':'required'}");
    ap_arena_free(a);
}

static bool str_eq(const char *x, const char *y) {
    return (!x && !y) || (x && y && !strcmp(x, y));
}

/* Same conversation, tools and choices (arguments compared as JSON). */
static void same_conversation(ap_arena_t *a, const ap_llm_req_t *x, const ap_llm_req_t *y,
                              bool with_is_error) {
    assert_int_equal(x->nmsgs, y->nmsgs);
    for (int i = 0; i < x->nmsgs; i++) {
        const ap_llm_msg_t *m = &x->msgs[i], *n = &y->msgs[i];
        if (m->role != n->role || !str_eq(m->content, n->content) ||
            !str_eq(m->tool_call_id, n->tool_call_id) || m->ntool_calls != n->ntool_calls ||
            (with_is_error && m->is_error != n->is_error))
            fail_msg("message %d differs: %s/%s \"%s\" vs %s/%s \"%s\"", i,
                     ap_llm_role_name(m->role), m->tool_call_id ? m->tool_call_id : "-",
                     m->content ? m->content : "(null)", ap_llm_role_name(n->role),
                     n->tool_call_id ? n->tool_call_id : "-", n->content ? n->content : "(null)");
        for (int k = 0; k < m->ntool_calls; k++) {
            assert_string_equal(m->tool_calls[k].id, n->tool_calls[k].id);
            assert_string_equal(m->tool_calls[k].name, n->tool_calls[k].name);
            assert_true(json_text_equal(a, m->tool_calls[k].arguments, n->tool_calls[k].arguments));
        }
    }
    assert_int_equal(x->ntools, y->ntools);
    for (int i = 0; i < x->ntools; i++) {
        assert_string_equal(x->tools[i].name, y->tools[i].name);
        assert_true(str_eq(x->tools[i].description, y->tools[i].description));
        assert_true(json_equal(x->tools[i].parameters, y->tools[i].parameters));
    }
    assert_true(str_eq(x->tool_choice, y->tool_choice));
    assert_int_equal(x->max_tokens, y->max_tokens);
    assert_int_equal(x->nstop, y->nstop);
}

static void test_round_trips(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_http_call_t c;
    ap_llm_req_t back;
    ap_err_t err = {0};
    /* OpenAI client → Anthropic upstream body → read as an Anthropic client */
    ap_llm_req_t r = parse_ok(a, AP_WIRE_OPENAI, OPENAI_REQ);
    json_t *body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    if (ap_wire_parse_request(a, AP_WIRE_ANTHROPIC, body, &back, &err)) fail_msg("%s", err.detail);
    same_conversation(a, &r, &back, true);
    /* … and on to OpenAI again */
    body = build_ok(a, AP_WIRE_OPENAI, &back, &T_LOCAL, &c);
    ap_llm_req_t again;
    if (ap_wire_parse_request(a, AP_WIRE_OPENAI, body, &again, &err)) fail_msg("%s", err.detail);
    same_conversation(a, &r, &again, true);
    /* Anthropic client → OpenAI upstream body → read as an OpenAI client */
    r = parse_ok(a, AP_WIRE_ANTHROPIC, ANTHROPIC_REQ);
    body = build_ok(a, AP_WIRE_OPENAI, &r, &T_LOCAL, &c);
    if (ap_wire_parse_request(a, AP_WIRE_OPENAI, body, &back, &err)) fail_msg("%s", err.detail);
    same_conversation(a, &r, &back, false); /* OpenAI has no is_error */
    /* Anthropic → Anthropic is lossless */
    body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    if (ap_wire_parse_request(a, AP_WIRE_ANTHROPIC, body, &back, &err)) fail_msg("%s", err.detail);
    same_conversation(a, &r, &back, true);
    ap_arena_free(a);
}

static void test_build_refuses(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_http_call_t c;
    ap_err_t err = {0};
    ap_llm_req_t r =
        parse_ok(a, AP_WIRE_OPENAI, "{'model':'m','messages':[{'role':'user','content':'x'}]}");
    ap_llm_target_t t = {"https://x", "key\r\nX-Evil: 1", "m"};
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_OPENAI, &r, &t, &c, &err), AP_ERR_INVALID);
    ap_llm_target_t t2 = {NULL, NULL, "m"};
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_OPENAI, &r, &t2, &c, &err), AP_ERR_INVALID);
    /* arguments that are not an object cannot become tool_use input */
    r = parse_ok(
        a, AP_WIRE_OPENAI,
        "{'model':'m','messages':[{'role':'assistant','tool_calls':[{'id':'c','type':'function',"
        "'function':{'name':'f','arguments':'[1,'}}]}]}");
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c, &err),
                     AP_ERR_INVALID);
    assert_string_equal(err.type, "invalid-tool-call");
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_GEMINI, &r, &T_GEMINI, &c, &err),
                     AP_ERR_INVALID);
    /* an input_audio part cannot go to Anthropic; an image URL not to Gemini */
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','messages':[{'role':'user','content':[{'type':'input_audio',"
                 "'input_audio':{'data':'AAA','format':'wav'}}]}]}");
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c, &err),
                     AP_ERR_INVALID);
    assert_string_equal(err.type, "unsupported-content");
    r = parse_ok(a, AP_WIRE_OPENAI,
                 "{'model':'m','messages':[{'role':'user','content':[{'type':'image_url',"
                 "'image_url':{'url':'https://x/cat.png'}}]}]}");
    assert_int_equal(ap_wire_build_call(a, AP_WIRE_GEMINI, &r, &T_GEMINI, &c, &err),
                     AP_ERR_INVALID);
    /* … but Anthropic fetches URLs itself */
    json_t *body = build_ok(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c);
    check_json(a, json_object_get(body, "messages"),
               "[{'role':'user','content':[{'type':'image','source':{'type':'url','url':'https://x/"
               "cat.png'}}]}]");
    ap_arena_free(a);
}

/* ---- upstream replies --------------------------------------------------- */

static ap_llm_resp_t reply_ok(ap_arena_t *a, ap_wire_kind p, const char *body) {
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    const char *b = Q(a, body);
    if (ap_wire_parse_reply(a, p, 200, NULL, b, strlen(b), &resp, &lerr))
        fail_msg("reply: %s: %s", ap_llm_errkind_name(lerr.kind), lerr.message);
    assert_int_equal(lerr.kind, AP_LLM_OK);
    return resp;
}

static void test_parse_reply_openai(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_resp_t r = reply_ok(
        a, AP_WIRE_OPENAI,
        "{'id':'chatcmpl-9','object':'chat.completion','created':1700000000,'model':'gpt-4o-2024',"
        " 'choices':[{'index':0,'message':{'role':'assistant','content':null,'tool_calls':["
        "   {'id':'call_x','type':'function','function':{'name':'f','arguments':'{\\'a\\':1}'}}]},"
        "   'finish_reason':'tool_calls'}],"
        " 'usage':{'prompt_tokens':20,'completion_tokens':7,'total_tokens':27,"
        "   'prompt_tokens_details':{'cached_tokens':16}}}");
    assert_string_equal(r.id, "chatcmpl-9");
    assert_string_equal(r.model, "gpt-4o-2024");
    assert_int_equal(r.created, 1700000000);
    assert_null(r.content);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].id, "call_x");
    assert_string_equal(r.tool_calls[0].arguments, "{\"a\":1}");
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_int_equal(r.usage.prompt, 20);
    assert_int_equal(r.usage.completion, 7);
    assert_int_equal(r.usage.cached, 16);
    /* content_filter as a finish reason is an answer, not an error */
    r = reply_ok(a, AP_WIRE_OPENAI,
                 "{'choices':[{'message':{'role':'assistant','content':'Par'},'finish_reason':'"
                 "content_filter'}]}");
    assert_string_equal(r.content, "Par");
    assert_string_equal(r.finish_reason, "content_filter");
    assert_true(r.created > 0);
    /* legacy function_call finish; a missing finish reason */
    r = reply_ok(a, AP_WIRE_OPENAI,
                 "{'choices':[{'message':{'content':'x'},'finish_reason':'function_call'}]}");
    assert_string_equal(r.finish_reason, "tool_calls");
    r = reply_ok(a, AP_WIRE_OPENAI, "{'choices':[{'message':{'content':'x'}}]}");
    assert_string_equal(r.finish_reason, "stop");
    ap_arena_free(a);
}

static void test_parse_reply_anthropic(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_resp_t r = reply_ok(
        a, AP_WIRE_ANTHROPIC,
        "{'id':'msg_1','type':'message','role':'assistant','model':'claude-x',"
        " 'content':[{'type':'thinking','thinking':'..','signature':'s'},{'type':'text','text':'On "
        "'},"
        "   {'type':'text','text':'it.'},"
        "   {'type':'tool_use','id':'toolu_1','name':'f','input':{'q':'x'}}],"
        " 'stop_reason':'tool_use','stop_sequence':null,"
        " 'usage':{'input_tokens':5,'cache_read_input_tokens':100,'cache_creation_input_tokens':3,"
        "   'output_tokens':9}}");
    assert_string_equal(r.id, "msg_1");
    assert_string_equal(r.content, "On it.");
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].id, "toolu_1");
    assert_string_equal(r.tool_calls[0].arguments, "{\"q\":\"x\"}");
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_int_equal(r.usage.prompt, 108); /* every input token, cache reads and writes included */
    assert_int_equal(r.usage.cached, 100);
    assert_int_equal(r.usage.completion, 9);
    static const char *const stops[][2] = {{"end_turn", "stop"},
                                           {"stop_sequence", "stop"},
                                           {"max_tokens", "length"},
                                           {"tool_use", "tool_calls"},
                                           {"refusal", "content_filter"}};
    for (size_t i = 0; i < 5; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{'type':'message','content':[{'type':'text','text':'x'}],'stop_reason':'%s'}",
                 stops[i][0]);
        assert_string_equal(reply_ok(a, AP_WIRE_ANTHROPIC, body).finish_reason, stops[i][1]);
    }
    ap_arena_free(a);
}

static void test_parse_reply_gemini(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_resp_t r = reply_ok(
        a, AP_WIRE_GEMINI,
        "{'candidates':[{'content':{'role':'model','parts':[{'text':'secret','thought':true},"
        "   {'text':'Let me "
        "check.'},{'functionCall':{'name':'get_weather','args':{'city':'Paris'}}}]},"
        "   'finishReason':'STOP','index':0}],"
        " 'usageMetadata':{'promptTokenCount':30,'candidatesTokenCount':8,'thoughtsTokenCount':4,"
        "   'cachedContentTokenCount':12,'totalTokenCount':42},"
        " 'modelVersion':'gemini-2.5-flash','responseId':'resp-1'}");
    assert_string_equal(r.content, "Let me check.");
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "get_weather");
    assert_true(json_text_equal(a, r.tool_calls[0].arguments, "{\"city\":\"Paris\"}"));
    assert_true(strncmp(r.tool_calls[0].id, "call_", 5) == 0 && strlen(r.tool_calls[0].id) == 29);
    assert_string_equal(r.finish_reason, "tool_calls"); /* STOP with a call */
    assert_int_equal(r.usage.prompt, 30);
    assert_int_equal(r.usage.completion, 12);
    assert_int_equal(r.usage.cached, 12);
    assert_string_equal(r.model, "gemini-2.5-flash");
    assert_string_equal(r.id, "resp-1");
    r = reply_ok(
        a, AP_WIRE_GEMINI,
        "{'candidates':[{'content':{'parts':[{'text':'abc'}]},'finishReason':'MAX_TOKENS'}]}");
    assert_string_equal(r.finish_reason, "length");
    /* SAFETY after some text: the content_filter finish reason */
    r = reply_ok(a, AP_WIRE_GEMINI,
                 "{'candidates':[{'content':{'parts':[{'text':'abc'}]},'finishReason':'SAFETY'}]}");
    assert_string_equal(r.finish_reason, "content_filter");
    /* SAFETY with nothing, or a blocked prompt: CONTENT_FILTERED */
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    const char *b = Q(a, "{'candidates':[{'finishReason':'SAFETY','index':0}]}");
    assert_int_equal(ap_wire_parse_reply(a, AP_WIRE_GEMINI, 200, NULL, b, strlen(b), &resp, &lerr),
                     AP_ERR_UNAVAILABLE);
    assert_int_equal(lerr.kind, AP_LLM_CONTENT_FILTERED);
    assert_non_null(strstr(lerr.message, "SAFETY"));
    b = Q(a, "{'candidates':[{'finishReason':'MALFORMED_FUNCTION_CALL'}]}");
    assert_int_equal(ap_wire_parse_reply(a, AP_WIRE_GEMINI, 200, NULL, b, strlen(b), &resp, &lerr),
                     AP_ERR_UNAVAILABLE);
    assert_int_equal(lerr.kind, AP_LLM_UPSTREAM);
    b = Q(a, "{'promptFeedback':{'blockReason':'PROHIBITED_CONTENT'}}");
    assert_int_equal(ap_wire_parse_reply(a, AP_WIRE_GEMINI, 200, NULL, b, strlen(b), &resp, &lerr),
                     AP_ERR_UNAVAILABLE);
    assert_int_equal(lerr.kind, AP_LLM_CONTENT_FILTERED);
    ap_arena_free(a);
}

typedef struct {
    ap_wire_kind p;
    int status;
    const char *retry_after;
    const char *body;
    ap_llm_errkind kind;
    int64_t retry_ms;
    const char *msg_has;
} err_case_t;

static void test_error_mapping(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const err_case_t cases[] = {
        {AP_WIRE_OPENAI, 429, "7",
         "{'error':{'message':'Rate limit reached for "
         "requests','type':'requests','param':null,'code':'rate_limit_exceeded'}}",
         AP_LLM_RATE_LIMITED, 7000, "Rate limit reached"},
        {AP_WIRE_OPENAI, 429, "0.5", "{'error':{'message':'slow down'}}", AP_LLM_RATE_LIMITED, 500,
         "slow down"},
        {AP_WIRE_ANTHROPIC, 529, NULL,
         "{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}",
         AP_LLM_OVERLOADED, 0, "Overloaded"},
        {AP_WIRE_GEMINI, 503, "garbage",
         "{'error':{'code':503,'message':'The model is overloaded.','status':'UNAVAILABLE'}}",
         AP_LLM_OVERLOADED, 0, "overloaded"},
        {AP_WIRE_OPENAI, 408, NULL, "timeout", AP_LLM_TIMEOUT, 0, "timeout"},
        {AP_WIRE_GEMINI, 504, NULL,
         "{'error':{'code':504,'message':'Deadline expired','status':'DEADLINE_EXCEEDED'}}",
         AP_LLM_TIMEOUT, 0, "Deadline"},
        {AP_WIRE_OPENAI, 400, NULL,
         "{'error':{'message':'This model\\u2019s maximum context length is 128000 tokens.',"
         "'type':'invalid_request_error','param':'messages','code':'context_length_exceeded'}}",
         AP_LLM_CONTEXT_TOO_LONG, 0, "maximum context length"},
        {AP_WIRE_ANTHROPIC, 400, NULL,
         "{'type':'error','error':{'type':'invalid_request_error','message':'prompt is too long: "
         "210000 tokens > 200000 maximum'}}",
         AP_LLM_CONTEXT_TOO_LONG, 0, "prompt is too long"},
        {AP_WIRE_ANTHROPIC, 400, NULL,
         "{'type':'error','error':{'type':'invalid_request_error','message':'input length and "
         "`max_tokens` exceed context limit: 190000 + 20000 > 200000'}}",
         AP_LLM_CONTEXT_TOO_LONG, 0, "context limit"},
        {AP_WIRE_GEMINI, 400, NULL,
         "{'error':{'code':400,'message':'The input token count (1200000) exceeds the maximum "
         "number of tokens allowed (1048576).','status':'INVALID_ARGUMENT'}}",
         AP_LLM_CONTEXT_TOO_LONG, 0, "input token count"},
        {AP_WIRE_OPENAI, 400, NULL,
         "{'error':{'message':'The response was "
         "filtered','type':null,'param':'prompt','code':'content_filter'}}",
         AP_LLM_CONTENT_FILTERED, 0, "filtered"},
        {AP_WIRE_OPENAI, 401, NULL,
         "{'error':{'message':'Incorrect API key "
         "provided','type':'invalid_request_error','code':'invalid_api_key'}}",
         AP_LLM_AUTH_FAILED, 0, "Incorrect API key"},
        {AP_WIRE_ANTHROPIC, 403, NULL,
         "{'type':'error','error':{'type':'permission_error','message':'no access'}}",
         AP_LLM_AUTH_FAILED, 0, "no access"},
        {AP_WIRE_OPENAI, 404, NULL,
         "{'error':{'message':'The model nope does not "
         "exist','type':'invalid_request_error','code':'model_not_found'}}",
         AP_LLM_BAD_REQUEST, 0, "does not exist"},
        {AP_WIRE_OPENAI, 422, NULL, "{'detail':'bad'}", AP_LLM_BAD_REQUEST, 0, "bad"},
        {AP_WIRE_ANTHROPIC, 400, NULL,
         "{'type':'error','error':{'type':'invalid_request_error','message':'max_tokens: 100000 > "
         "64000'}}",
         AP_LLM_BAD_REQUEST, 0, "max_tokens"},
        {AP_WIRE_ANTHROPIC, 500, NULL,
         "{'type':'error','error':{'type':'api_error','message':'Internal server error'}}",
         AP_LLM_UPSTREAM, 0, "Internal"},
        {AP_WIRE_OPENAI, 502, NULL, "<html><body>Bad Gateway</body></html>", AP_LLM_UPSTREAM, 0,
         "Bad Gateway"},
        {AP_WIRE_GEMINI, 500, NULL, "", AP_LLM_UPSTREAM, 0, "HTTP 500"},
        {AP_WIRE_GEMINI, 429, "12",
         "[{'error':{'code':429,'message':'Resource has been "
         "exhausted','status':'RESOURCE_EXHAUSTED'}}]",
         AP_LLM_RATE_LIMITED, 12000, "exhausted"},
        /* 200 with a malformed body */
        {AP_WIRE_OPENAI, 200, NULL, "{'choices':", AP_LLM_UPSTREAM, 0, "malformed"},
        {AP_WIRE_OPENAI, 200, NULL, "", AP_LLM_UPSTREAM, 0, "empty body"},
        {AP_WIRE_OPENAI, 200, NULL, "{'choices':[]}", AP_LLM_UPSTREAM, 0, "malformed"},
        {AP_WIRE_ANTHROPIC, 200, NULL, "{'type':'message'}", AP_LLM_UPSTREAM, 0, "malformed"},
        {AP_WIRE_GEMINI, 200, NULL, "{'candidates':[]}", AP_LLM_UPSTREAM, 0, "malformed"},
        /* 200 carrying an error (some compatible servers) */
        {AP_WIRE_OPENAI, 200, NULL, "{'error':{'message':'context length exceeded','code':null}}",
         AP_LLM_CONTEXT_TOO_LONG, 0, "context length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const err_case_t *c = &cases[i];
        ap_llm_resp_t resp;
        ap_llm_error_t lerr;
        const char *b = Q(a, c->body);
        ap_rc rc =
            ap_wire_parse_reply(a, c->p, c->status, c->retry_after, b, strlen(b), &resp, &lerr);
        if (rc != AP_ERR_UNAVAILABLE || lerr.kind != c->kind ||
            lerr.retry_after_ms != c->retry_ms || !strstr(lerr.message, c->msg_has) ||
            lerr.http_status != c->status)
            fail_msg("case %zu: rc %d kind %s retry %lld status %d message \"%s\"", i, rc,
                     ap_llm_errkind_name(lerr.kind), (long long)lerr.retry_after_ms,
                     lerr.http_status, lerr.message);
    }
    /* Retry-After as an HTTP date */
    char date[64];
    time_t at = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    ap_wire_parse_reply(a, AP_WIRE_ANTHROPIC, 429, date, "{}", 2, &resp, &lerr);
    assert_int_equal(lerr.kind, AP_LLM_RATE_LIMITED);
    assert_true(lerr.retry_after_ms >= 28000 && lerr.retry_after_ms <= 30000);
    ap_wire_parse_reply(a, AP_WIRE_ANTHROPIC, 429, "Wed, 21 Oct 2015 07:28:00 GMT", "{}", 2, &resp,
                        &lerr);
    assert_int_equal(lerr.retry_after_ms, 0); /* in the past */
    /* the client-facing statuses */
    assert_int_equal(ap_wire_error_status(AP_LLM_RATE_LIMITED), 429);
    assert_int_equal(ap_wire_error_status(AP_LLM_OVERLOADED), 503);
    assert_int_equal(ap_wire_error_status(AP_LLM_TIMEOUT), 504);
    assert_int_equal(ap_wire_error_status(AP_LLM_CONTEXT_TOO_LONG), 400);
    assert_int_equal(ap_wire_error_status(AP_LLM_CONTENT_FILTERED), 400);
    assert_int_equal(ap_wire_error_status(AP_LLM_BAD_REQUEST), 400);
    assert_int_equal(ap_wire_error_status(AP_LLM_AUTH_FAILED), 502);
    assert_int_equal(ap_wire_error_status(AP_LLM_UPSTREAM), 502);
    ap_arena_free(a);
}

static void test_error_message_truncated_at_utf8(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    /* 400 × "é" (2 bytes) after one ASCII byte: 801 bytes, cut inside a
     * character at 511 */
    ap_buf_t b;
    ap_buf_init(&b, 0);
    ap_buf_puts(&b, "{\"error\":{\"message\":\"x");
    for (int i = 0; i < 400; i++) ap_buf_puts(&b, "\xC3\xA9");
    ap_buf_puts(&b, "\"}}");
    ap_llm_resp_t resp;
    ap_llm_error_t lerr;
    ap_wire_parse_reply(a, AP_WIRE_OPENAI, 400, NULL, b.p, b.len, &resp, &lerr);
    size_t n = strlen(lerr.message);
    assert_true(n <= 511 && n >= 505);
    assert_int_equal(n % 2, 1);            /* never half a character */
    json_t *s = json_string(lerr.message); /* valid UTF-8 */
    assert_non_null(s);
    json_decref(s);
    /* invalid UTF-8 and control characters in a plain-text body */
    const char raw[] = "bad \xFF\xFE bytes\nand\ttabs \xE2\x82";
    ap_wire_parse_reply(a, AP_WIRE_OPENAI, 500, NULL, raw, sizeof raw - 1, &resp, &lerr);
    assert_string_equal(lerr.message, "bad ?? bytes and tabs ??");
    ap_buf_free(&b);
    ap_arena_free(a);
}

static void test_render_error(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    check_json_new(a, ap_wire_render_error(AP_WIRE_OPENAI, 400, "invalid_request_error", "bad n"),
                   "{'error':{'message':'bad n','type':'invalid_request_error','param':null,"
                   "'code':'invalid_request_error'}}");
    check_json_new(
        a, ap_wire_render_error(AP_WIRE_OPENAI, 429, NULL, "slow"),
        "{'error':{'message':'slow','type':'rate_limit_error','param':null,'code':null}}");
    check_json_new(a, ap_wire_render_error(AP_WIRE_ANTHROPIC, 529, "overloaded", "busy"),
                   "{'type':'error','error':{'type':'overloaded_error','message':'busy'}}");
    check_json_new(a, ap_wire_render_error(AP_WIRE_ANTHROPIC, 404, "model_not_found", "no such"),
                   "{'type':'error','error':{'type':'not_found_error','message':'no such'}}");
    check_json_new(a, ap_wire_render_error(AP_WIRE_ANTHROPIC, 401, NULL, "who"),
                   "{'type':'error','error':{'type':'authentication_error','message':'who'}}");
    check_json_new(a, ap_wire_render_error(AP_WIRE_GEMINI, 429, NULL, "slow"),
                   "{'error':{'code':429,'message':'slow','status':'RESOURCE_EXHAUSTED'}}");
    /* invalid UTF-8 never makes a NULL body */
    json_t *v = ap_wire_render_error(AP_WIRE_OPENAI, 500, NULL, "x\xFFy");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                        "x?y");
    json_decref(v);
    ap_arena_free(a);
}

static void test_render_response(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_tool_call_t tcs[] = {{"call_1", "f", "{\"a\":1}"}, {NULL, "g", "not json"}};
    ap_llm_resp_t r = {.id = "id-1",
                       .model = "m-1",
                       .content = "Hi",
                       .tool_calls = tcs,
                       .ntool_calls = 1,
                       .finish_reason = "tool_calls",
                       .usage = {.prompt = 100, .completion = 10, .cached = 60},
                       .created = 1700000000};
    check_json_new(
        a, ap_wire_render_response(AP_WIRE_OPENAI, &r),
        "{'id':'id-1','object':'chat.completion','created':1700000000,'model':'m-1',"
        " 'choices':[{'index':0,'message':{'role':'assistant','content':'Hi','refusal':null,"
        "   "
        "'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f','arguments':'{\\'"
        "a\\':1}'}}]},"
        "   'logprobs':null,'finish_reason':'tool_calls'}],"
        " 'usage':{'prompt_tokens':100,'completion_tokens':10,'total_tokens':110,"
        "   'prompt_tokens_details':{'cached_tokens':60}}}");
    check_json_new(a, ap_wire_render_response(AP_WIRE_ANTHROPIC, &r),
                   "{'id':'id-1','type':'message','role':'assistant','model':'m-1',"
                   " 'content':[{'type':'text','text':'Hi'},"
                   "   {'type':'tool_use','id':'call_1','name':'f','input':{'a':1}}],"
                   " 'stop_reason':'tool_use','stop_sequence':null,"
                   " 'usage':{'input_tokens':40,'cache_creation_input_tokens':0,"
                   "   'cache_read_input_tokens':60,'output_tokens':10}}");
    check_json_new(a, ap_wire_render_response(AP_WIRE_GEMINI, &r),
                   "{'candidates':[{'content':{'role':'model','parts':[{'text':'Hi'},"
                   "   {'functionCall':{'name':'f','args':{'a':1},'id':'call_1'}}]},"
                   "   'finishReason':'STOP','index':0}],"
                   " 'usageMetadata':{'promptTokenCount':100,'candidatesTokenCount':10,"
                   "   'cachedContentTokenCount':60,'totalTokenCount':110},"
                   " 'modelVersion':'m-1','responseId':'id-1'}");
    /* generated ids, arguments that are not JSON, length → max_tokens */
    ap_llm_resp_t r2 = {
        .content = NULL, .tool_calls = tcs + 1, .ntool_calls = 1, .finish_reason = "length"};
    json_t *o = ap_wire_render_response(AP_WIRE_OPENAI, &r2);
    assert_true(!strncmp(json_string_value(json_object_get(o, "id")), "chatcmpl-", 9));
    json_t *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
    assert_true(json_is_null(json_object_get(msg, "content")));
    json_decref(o);
    o = ap_wire_render_response(AP_WIRE_ANTHROPIC, &r2);
    assert_true(!strncmp(json_string_value(json_object_get(o, "id")), "msg_", 4));
    assert_string_equal(json_string_value(json_object_get(o, "stop_reason")), "max_tokens");
    json_t *tu = json_array_get(json_object_get(o, "content"), 0);
    assert_true(!strncmp(json_string_value(json_object_get(tu, "id")), "toolu_", 6));
    check_json(a, json_object_get(tu, "input"), "{}");
    json_decref(o);
    ap_arena_free(a);
}

/* ---- stream decoders ---------------------------------------------------- */

#define OC                                                                                         \
    "data: {'id':'chatcmpl-1','object':'chat.completion.chunk','created':1,'model':'gpt-x',"       \
    "'choices':[{'index':0,"

static const char OPENAI_STREAM[] = OC
    "'delta':{'role':'assistant','content':''},'finish_reason':null}]}\n\n" OC
    "'delta':{'content':'Hel'},'finish_reason':null}]}\n\n"
    ": keep-alive\n\n" OC "'delta':{'content':'lo \xE2\x9C\x93'},'finish_reason':null}]}\n\n" OC
    "'delta':{'tool_calls':[{'index':0,'id':'call_a','type':'function',"
    "'function':{'name':'get_weather','arguments':''}}]},'finish_reason':null}]}\n\n" OC
    "'delta':{'tool_calls':[{'index':0,'function':{'arguments':'{\\'city\\':'}}]},'finish_reason':"
    "null}]}\n\n" OC "'delta':{'tool_calls':[{'index':1,'id':'call_b','type':'function',"
    "'function':{'name':'get_time','arguments':'{}'}}]},'finish_reason':null}]}\n\n" OC
    "'delta':{'tool_calls':[{'index':0,'function':{'arguments':'\\'Paris\\'}'}}]},'finish_reason':"
    "null}]}\n\n" OC "'delta':{},'finish_reason':'tool_calls'}]}\n\n"
    "data: "
    "{'id':'chatcmpl-1','object':'chat.completion.chunk','created':1,'model':'gpt-x','choices':[],"
    "'usage':{'prompt_tokens':10,'completion_tokens':5,'total_tokens':15,"
    "'prompt_tokens_details':{'cached_tokens':4}}}\n\n"
    "data: [DONE]\n\n";

static const char ANTHROPIC_STREAM[] =
    "event: message_start\n"
    "data: {'type':'message_start','message':{'id':'msg_1','type':'message','role':'assistant',"
    "'model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,"
    "'usage':{'input_tokens':6,'cache_read_input_tokens':4,'output_tokens':1}}}\n\n"
    "event: content_block_start\n"
    "data: {'type':'content_block_start','index':0,'content_block':{'type':'text','text':''}}\n\n"
    "event: ping\ndata: {'type':'ping'}\n\n"
    "event: content_block_delta\n"
    "data: {'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'Hel'}}\n\n"
    "event: content_block_delta\n"
    "data: {'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'lo "
    "\xE2\x9C\x93'}}\n\n"
    "event: content_block_stop\ndata: {'type':'content_block_stop','index':0}\n\n"
    "event: content_block_start\n"
    "data: "
    "{'type':'content_block_start','index':1,'content_block':{'type':'tool_use','id':'call_a',"
    "'name':'get_weather','input':{}}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta','partial_json':''}}"
    "\n\n"
    "event: content_block_delta\n"
    "data: "
    "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta','partial_json':'{"
    "\\'city\\':'}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta','partial_json':'\\'"
    "Paris\\'}'}}\n\n"
    "event: content_block_stop\ndata: {'type':'content_block_stop','index':1}\n\n"
    "event: content_block_start\n"
    "data: "
    "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use','id':'call_b',"
    "'name':'get_time','input':{}}}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta','partial_json':'{}'"
    "}}\n\n"
    "event: content_block_stop\ndata: {'type':'content_block_stop','index':2}\n\n"
    "event: message_delta\n"
    "data: {'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
    "'usage':{'output_tokens':5}}\n\n"
    "event: message_stop\ndata: {'type':'message_stop'}\n\n";

static const char GEMINI_STREAM[] =
    "data: {'candidates':[{'content':{'role':'model','parts':[{'text':'Hel'}]},'index':0}],"
    "'usageMetadata':{'promptTokenCount':10,'candidatesTokenCount':1,'cachedContentTokenCount':4}}"
    "\r\n\r\n"
    "data: {'candidates':[{'content':{'role':'model','parts':[{'text':'lo "
    "\xE2\x9C\x93'}]},'index':0}]}\r\n\r\n"
    "data: {'candidates':[{'content':{'role':'model','parts':["
    "{'functionCall':{'name':'get_weather','args':{'city':'Paris'}}},"
    "{'functionCall':{'name':'get_time','args':{}}}]},'finishReason':'STOP','index':0}],"
    "'usageMetadata':{'promptTokenCount':10,'candidatesTokenCount':5,'cachedContentTokenCount':4}}"
    "\r\n\r\n";

/* What every fixture says: "Hello ✓", two tool calls, tool_calls, usage. */
static void check_agg(ap_arena_t *a, const agg_t *g, bool ids) {
    assert_string_equal(g->content.p, "Hello \xE2\x9C\x93");
    assert_int_equal(g->ntools, 2);
    assert_string_equal(g->tools[0].name, "get_weather");
    assert_string_equal(g->tools[1].name, "get_time");
    assert_true(json_text_equal(a, g->tools[0].args.p, "{\"city\":\"Paris\"}"));
    assert_true(json_text_equal(a, g->tools[1].args.p, "{}"));
    if (ids) {
        assert_string_equal(g->tools[0].id, "call_a");
        assert_string_equal(g->tools[1].id, "call_b");
    } else {
        assert_true(!strncmp(g->tools[0].id, "call_", 5) && !strncmp(g->tools[1].id, "call_", 5));
        assert_string_not_equal(g->tools[0].id, g->tools[1].id);
    }
    assert_string_equal(g->finish, "tool_calls");
    assert_true(g->has_usage);
    assert_int_equal(g->usage.prompt, 10);
    assert_int_equal(g->usage.completion, 5);
    assert_int_equal(g->usage.cached, 4);
}

static void decode_fixture(ap_wire_kind p, const char *fixture, bool ids) {
    ap_arena_t *a = ap_arena_new(4096);
    const char *s = Q(a, fixture);
    size_t n = strlen(s);
    char *first = NULL;
    srand(42);
    for (int mode = WHOLE; mode <= RANDOM; mode++) {
        for (int rep = 0; rep < (mode == RANDOM ? 30 : 1); rep++) {
            agg_t g;
            agg_init(&g, !ids);
            ap_llm_error_t lerr;
            ap_llm_decoder_t *d = ap_llm_decoder_new(a, p);
            if (feed(d, s, n, mode, &g, &lerr))
                fail_msg("decode: %s: %s", ap_llm_errkind_name(lerr.kind), lerr.message);
            assert_true(ap_llm_decoder_done(d));
            check_agg(a, &g, ids);
            if (!first)
                first = ap_arena_strdup(a, g.log.p);
            else
                assert_string_equal(g.log.p, first);
            agg_free(&g);
        }
    }
    /* cut before the end: not done */
    agg_t g;
    agg_init(&g, !ids);
    ap_llm_decoder_t *d = ap_llm_decoder_new(a, p);
    assert_int_equal(feed(d, s, n * 2 / 3, WHOLE, &g, NULL), AP_OK);
    assert_false(ap_llm_decoder_done(d));
    agg_free(&g);
    ap_arena_free(a);
}

static void test_decode_openai(void **state) {
    (void)state;
    decode_fixture(AP_WIRE_OPENAI, OPENAI_STREAM, true);
}

static void test_decode_anthropic(void **state) {
    (void)state;
    decode_fixture(AP_WIRE_ANTHROPIC, ANTHROPIC_STREAM, true);
}

static void test_decode_gemini(void **state) {
    (void)state;
    decode_fixture(AP_WIRE_GEMINI, GEMINI_STREAM, false);
}

static void decode_error(ap_wire_kind p, const char *stream, ap_llm_errkind kind,
                         const char *content_before, const char *msg_has) {
    ap_arena_t *a = ap_arena_new(4096);
    const char *s = Q(a, stream);
    for (int mode = WHOLE; mode <= BYTES; mode++) {
        agg_t g;
        agg_init(&g, true);
        ap_llm_error_t lerr;
        ap_llm_decoder_t *d = ap_llm_decoder_new(a, p);
        assert_int_equal(feed(d, s, strlen(s), mode, &g, &lerr), AP_ERR_UNAVAILABLE);
        if (lerr.kind != kind || !strstr(lerr.message, msg_has))
            fail_msg("%s: \"%s\" for %s", ap_llm_errkind_name(lerr.kind), lerr.message, stream);
        assert_string_equal(g.content.len ? g.content.p : "", content_before);
        /* sticky, and no more deltas */
        memset(&lerr, 0, sizeof lerr);
        assert_int_equal(ap_llm_decoder_feed(d, "data: {}\n\n", 10, on_delta, &g, &lerr),
                         AP_ERR_UNAVAILABLE);
        assert_int_equal(lerr.kind, kind);
        agg_free(&g);
    }
    ap_arena_free(a);
}

/* Proxies report input tokens in message_delta only; a delta without
 * cache counts keeps those of message_start. */
static void test_decode_anthropic_usage(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        const char *start, *delta;
        int64_t prompt, completion, cached;
    } cases[] = {
        {"{'input_tokens':0,'output_tokens':0}", "{'input_tokens':9,'output_tokens':3}", 9, 3, 0},
        {"{'input_tokens':5,'cache_read_input_tokens':7,'cache_creation_input_tokens':2,"
         "'output_tokens':1}",
         "{'output_tokens':4}", 14, 4, 7},
        {"{'input_tokens':5,'cache_read_input_tokens':7,'output_tokens':1}",
         "{'input_tokens':5,'cache_read_input_tokens':7,'cache_creation_input_tokens':0,"
         "'output_tokens':6}",
         12, 6, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = ap_arena_printf(a,
                                  "event: message_start\ndata: {'type':'message_start','message':"
                                  "{'id':'m','usage':%s}}\n\n"
                                  "event: message_delta\ndata: {'type':'message_delta','delta':"
                                  "{'stop_reason':'end_turn'},'usage':%s}\n\n"
                                  "event: message_stop\ndata: {'type':'message_stop'}\n\n",
                                  cases[i].start, cases[i].delta);
        s = Q(a, s);
        agg_t g;
        agg_init(&g, false);
        ap_llm_decoder_t *d = ap_llm_decoder_new(a, AP_WIRE_ANTHROPIC);
        assert_int_equal(feed(d, s, strlen(s), WHOLE, &g, NULL), AP_OK);
        assert_true(g.has_usage);
        assert_int_equal(g.usage.prompt, cases[i].prompt);
        assert_int_equal(g.usage.completion, cases[i].completion);
        assert_int_equal(g.usage.cached, cases[i].cached);
        assert_string_equal(g.finish, "stop");
        agg_free(&g);
    }
    ap_arena_free(a);
}

static void test_decode_errors(void **state) {
    (void)state;
    decode_error(AP_WIRE_OPENAI,
                 OC "'delta':{'content':'Hi'},'finish_reason':null}]}\n\n"
                    "data: {'error':{'message':'Rate limit "
                    "reached','type':'rate_limit_error','code':'rate_limit_exceeded'}}\n\n",
                 AP_LLM_RATE_LIMITED, "Hi", "Rate limit");
    decode_error(AP_WIRE_OPENAI, "data: {not json\n\n", AP_LLM_UPSTREAM, "", "malformed");
    decode_error(AP_WIRE_OPENAI, "data: [1,2]\n\n", AP_LLM_UPSTREAM, "", "not a JSON object");
    decode_error(
        AP_WIRE_ANTHROPIC,
        "event: content_block_delta\n"
        "data: "
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'Hi'}}\n\n"
        "event: error\n"
        "data: {'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}\n\n",
        AP_LLM_OVERLOADED, "Hi", "Overloaded");
    decode_error(AP_WIRE_ANTHROPIC,
                 "event: content_block_start\n"
                 "data: "
                 "{'type':'content_block_start','index':99999999,'content_block':{'type':'text','"
                 "text':''}}\n\n",
                 AP_LLM_UPSTREAM, "", "out of range");
    decode_error(AP_WIRE_ANTHROPIC,
                 "event: error\ndata: {'type':'error','error':{'type':'invalid_request_error',"
                 "'message':'prompt is too long: 300000 tokens > 200000 maximum'}}\n\n",
                 AP_LLM_CONTEXT_TOO_LONG, "", "prompt is too long");
    decode_error(AP_WIRE_GEMINI,
                 "data: {'error':{'code':429,'message':'Quota "
                 "exceeded','status':'RESOURCE_EXHAUSTED'}}\r\n\r\n",
                 AP_LLM_RATE_LIMITED, "", "Quota");
    decode_error(AP_WIRE_GEMINI,
                 "data: {'candidates':[{'finishReason':'SAFETY','index':0}]}\r\n\r\n",
                 AP_LLM_CONTENT_FILTERED, "", "SAFETY");
    decode_error(AP_WIRE_GEMINI, "data: {'promptFeedback':{'blockReason':'SAFETY'}}\r\n\r\n",
                 AP_LLM_CONTENT_FILTERED, "", "SAFETY");
    /* an over-long line */
    ap_arena_t *a = ap_arena_new(4096);
    size_t n = AP_SSE_MAX_LINE + 100;
    char *big = ap_arena_alloc(a, n);
    memset(big, 'x', n);
    memcpy(big, "data: ", 6);
    ap_llm_decoder_t *d = ap_llm_decoder_new(a, AP_WIRE_OPENAI);
    ap_llm_error_t lerr;
    assert_int_equal(ap_llm_decoder_feed(d, big, n, on_delta, NULL, &lerr), AP_ERR_UNAVAILABLE);
    assert_int_equal(lerr.kind, AP_LLM_UPSTREAM);
    assert_non_null(strstr(lerr.message, "longer than"));
    decode_error(AP_WIRE_GEMINI,
                 "data: {'candidates':[{'finishReason':'MALFORMED_FUNCTION_CALL'}]}\r\n\r\n",
                 AP_LLM_UPSTREAM, "", "MALFORMED_FUNCTION_CALL");
    /* Gemini: SAFETY after text is a finish reason, not an error */
    agg_t g;
    agg_init(&g, true);
    const char *s = Q(a, "data: {'candidates':[{'content':{'parts':[{'text':'Par'}]}}]}\r\n\r\n"
                         "data: {'candidates':[{'finishReason':'SAFETY'}]}\r\n\r\n");
    d = ap_llm_decoder_new(a, AP_WIRE_GEMINI);
    assert_int_equal(feed(d, s, strlen(s), WHOLE, &g, &lerr), AP_OK);
    assert_string_equal(g.finish, "content_filter");
    assert_true(ap_llm_decoder_done(d));
    agg_free(&g);
    ap_arena_free(a);
}

/* ---- stream encoders ---------------------------------------------------- */

typedef struct {
    ap_llm_delta_t d[64];
    int n;
} dlist_t;

static void collect(void *ud, const ap_llm_delta_t *d) {
    dlist_t *l = ud;
    assert_true(l->n < 64);
    l->d[l->n++] = *d;
}

/* Decodes fixture with `from`, re-encodes for `to`, decodes that again. */
static char *transcode(ap_arena_t *a, ap_wire_kind from, const char *fixture, ap_wire_kind to,
                       bool include_usage, agg_t *out) {
    const char *s = Q(a, fixture);
    dlist_t l = {.n = 0};
    ap_llm_decoder_t *d = ap_llm_decoder_new(a, from);
    assert_int_equal(ap_llm_decoder_feed(d, s, strlen(s), collect, &l, NULL), AP_OK);
    ap_llm_encoder_t *e = ap_llm_encoder_new(
        a, to, to == AP_WIRE_ANTHROPIC ? "msg_x" : "chatcmpl-x", "served-model", include_usage);
    ap_buf_t buf;
    ap_buf_init(&buf, 0);
    ap_llm_usage_t usage = {0};
    for (int i = 0; i < l.n; i++) {
        if (l.d[i].has_usage) usage = l.d[i].usage;
        ap_llm_encoder_delta(e, &l.d[i], &buf);
    }
    ap_llm_encoder_finish(e, &usage, &buf);
    ap_llm_encoder_delta(e, &l.d[0], &buf); /* after the end: ignored */
    ap_llm_encoder_finish(e, &usage, &buf);
    char *text = ap_arena_strdup(a, buf.p);
    ap_llm_decoder_t *back = ap_llm_decoder_new(a, to);
    ap_llm_error_t lerr;
    if (feed(back, buf.p, buf.len, BYTES, out, &lerr))
        fail_msg("re-decode: %s\n%s", lerr.message, buf.p);
    assert_true(ap_llm_decoder_done(back));
    ap_buf_free(&buf);
    return text;
}

/* The event names of an SSE text, "," separated. */
static char *event_names(const char *s) {
    ap_sse_parser_t p;
    ap_sse_init(&p, 0, 0);
    sse_log_t l = {.n = 0};
    ap_buf_init(&l.log, 0);
    assert_int_equal(ap_sse_feed(&p, s, strlen(s), sse_cb, &l), AP_OK);
    ap_sse_free(&p);
    ap_buf_t names;
    ap_buf_init(&names, 0);
    for (const char *c = l.log.p; c && (c = strchr(c, '<')); c++) {
        const char *e = strchr(c, '>');
        ap_buf_append(&names, c + 1, (size_t)(e - c - 1));
        ap_buf_puts(&names, ",");
    }
    ap_buf_free(&l.log);
    return ap_buf_steal(&names);
}

static void test_encoder_openai(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        ap_wire_kind from;
        const char *fixture;
        bool ids;
    } src[] = {{AP_WIRE_OPENAI, OPENAI_STREAM, true},
               {AP_WIRE_ANTHROPIC, ANTHROPIC_STREAM, true},
               {AP_WIRE_GEMINI, GEMINI_STREAM, false}};
    for (size_t i = 0; i < 3; i++) {
        agg_t g;
        agg_init(&g, false);
        char *out = transcode(a, src[i].from, src[i].fixture, AP_WIRE_OPENAI, true, &g);
        check_agg(a, &g, src[i].ids);
        /* the first chunk carries the role; usage chunk; [DONE] last */
        const char *nl = strchr(out, '\n');
        json_t *first = json_loadb(out + 6, (size_t)(nl - out - 6), 0, NULL);
        json_t *delta =
            json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta");
        assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
        assert_string_equal(json_string_value(json_object_get(first, "object")),
                            "chat.completion.chunk");
        assert_string_equal(json_string_value(json_object_get(first, "id")), "chatcmpl-x");
        assert_string_equal(json_string_value(json_object_get(first, "model")), "served-model");
        json_decref(first);
        size_t len = strlen(out);
        assert_true(len > 14 && !strcmp(out + len - 14, "data: [DONE]\n\n"));
        assert_non_null(strstr(out, "\"choices\":[],\"usage\":{"));
        agg_free(&g);
    }
    /* without include_usage: no usage chunk */
    agg_t g;
    agg_init(&g, false);
    char *out = transcode(a, AP_WIRE_OPENAI, OPENAI_STREAM, AP_WIRE_OPENAI, false, &g);
    assert_null(strstr(out, "usage"));
    assert_false(g.has_usage);
    assert_string_equal(g.content.p, "Hello \xE2\x9C\x93");
    agg_free(&g);
    ap_arena_free(a);
}

static void test_encoder_anthropic(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        ap_wire_kind from;
        const char *fixture;
        bool ids;
    } src[] = {{AP_WIRE_OPENAI, OPENAI_STREAM, true},
               {AP_WIRE_ANTHROPIC, ANTHROPIC_STREAM, true},
               {AP_WIRE_GEMINI, GEMINI_STREAM, false}};
    for (size_t i = 0; i < 3; i++) {
        agg_t g;
        agg_init(&g, false);
        char *out = transcode(a, src[i].from, src[i].fixture, AP_WIRE_ANTHROPIC, false, &g);
        check_agg(a, &g, src[i].ids);
        char *names = event_names(out);
        assert_true(!strncmp(names, "message_start,content_block_start,content_block_delta,", 54));
        size_t nl = strlen(names);
        if (nl < 46 || strcmp(names + nl - 46, "content_block_stop,message_delta,message_stop,"))
            fail_msg("events: %s", names);
        ap_free(names);
        assert_non_null(strstr(out, "\"stop_reason\":\"tool_use\""));
        assert_non_null(strstr(out, "\"type\":\"input_json_delta\""));
        agg_free(&g);
    }
    /* the exact frames for a short text answer */
    ap_llm_encoder_t *e = ap_llm_encoder_new(a, AP_WIRE_ANTHROPIC, "msg_1", "claude-x", false);
    ap_buf_t buf;
    ap_buf_init(&buf, 0);
    ap_llm_delta_t d1 = {.content = "Hi", .tool_index = -1};
    ap_llm_delta_t d2 = {.finish_reason = "length", .tool_index = -1};
    ap_llm_encoder_delta(e, &d1, &buf);
    ap_llm_encoder_delta(e, &d2, &buf);
    ap_llm_usage_t u = {.prompt = 12, .completion = 3, .cached = 2};
    ap_llm_encoder_finish(e, &u, &buf);
    char *names = event_names(buf.p);
    assert_string_equal(names, "message_start,content_block_start,content_block_delta,"
                               "content_block_stop,message_delta,message_stop,");
    ap_free(names);
    const char *md = strstr(buf.p, "event: message_delta\ndata: ");
    assert_non_null(md);
    md += strlen("event: message_delta\ndata: ");
    json_t *v = json_loadb(md, (size_t)(strchr(md, '\n') - md), 0, NULL);
    check_json(a, v,
               "{'type':'message_delta','delta':{'stop_reason':'max_tokens','stop_sequence':null},"
               "'usage':{'input_tokens':10,'cache_creation_input_tokens':0,"
               "'cache_read_input_tokens':2,'output_tokens':3}}");
    json_decref(v);
    const char *ms =
        strstr(buf.p, "event: message_start\ndata: ") + strlen("event: message_start\ndata: ");
    v = json_loadb(ms, (size_t)(strchr(ms, '\n') - ms), 0, NULL);
    check_json(
        a, v,
        "{'type':'message_start','message':{'id':'msg_1','type':'message','role':'assistant',"
        "'model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,"
        "'usage':{'input_tokens':0,'cache_creation_input_tokens':0,'cache_read_input_tokens':0,"
        "'output_tokens':0}}}");
    json_decref(v);
    ap_buf_free(&buf);
    /* Anthropic → Anthropic: message_start carries the input count */
    agg_t ga;
    agg_init(&ga, false);
    char *out = transcode(a, AP_WIRE_ANTHROPIC, ANTHROPIC_STREAM, AP_WIRE_ANTHROPIC, false, &ga);
    assert_non_null(strstr(out, "\"usage\":{\"input_tokens\":6,\"cache_creation_input_tokens\":0,"
                                "\"cache_read_input_tokens\":4,\"output_tokens\":0}"));
    agg_free(&ga);
    /* finish with nothing sent: a complete empty message */
    e = ap_llm_encoder_new(a, AP_WIRE_ANTHROPIC, NULL, "m", false);
    ap_buf_init(&buf, 0);
    ap_llm_encoder_finish(e, NULL, &buf);
    names = event_names(buf.p);
    assert_string_equal(names, "message_start,message_delta,message_stop,");
    ap_free(names);
    assert_non_null(strstr(buf.p, "\"id\":\"msg_"));
    assert_non_null(strstr(buf.p, "\"stop_reason\":\"end_turn\""));
    ap_buf_free(&buf);
    ap_arena_free(a);
}

static void test_encoder_errors(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    static const struct {
        ap_wire_kind k;
        ap_llm_errkind kind;
    } cases[] = {
        {AP_WIRE_OPENAI, AP_LLM_RATE_LIMITED},    {AP_WIRE_OPENAI, AP_LLM_CONTEXT_TOO_LONG},
        {AP_WIRE_OPENAI, AP_LLM_UPSTREAM},        {AP_WIRE_ANTHROPIC, AP_LLM_OVERLOADED},
        {AP_WIRE_ANTHROPIC, AP_LLM_RATE_LIMITED}, {AP_WIRE_ANTHROPIC, AP_LLM_UPSTREAM}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ap_llm_encoder_t *e = ap_llm_encoder_new(a, cases[i].k, "id", "m", true);
        ap_buf_t buf;
        ap_buf_init(&buf, 0);
        ap_llm_delta_t d = {.content = "partial", .tool_index = -1};
        ap_llm_encoder_delta(e, &d, &buf);
        ap_llm_error_t err = {.kind = cases[i].kind};
        snprintf(err.message, sizeof err.message,
                 cases[i].kind == AP_LLM_CONTEXT_TOO_LONG ? "prompt is too long" : "it broke");
        ap_llm_encoder_error(e, &err, &buf);
        size_t len = buf.len;
        ap_llm_encoder_finish(e, NULL, &buf); /* nothing after an error */
        ap_llm_encoder_error(e, &err, &buf);
        assert_int_equal(buf.len, len);
        if (cases[i].k == AP_WIRE_ANTHROPIC)
            assert_non_null(strstr(buf.p, "event: error\n"));
        else
            assert_null(strstr(buf.p, "[DONE]"));
        agg_t g;
        agg_init(&g, false);
        ap_llm_error_t lerr;
        ap_llm_decoder_t *dec = ap_llm_decoder_new(a, cases[i].k);
        assert_int_equal(feed(dec, buf.p, buf.len, BYTES, &g, &lerr), AP_ERR_UNAVAILABLE);
        assert_string_equal(g.content.p, "partial");
        if (lerr.kind != cases[i].kind)
            fail_msg("case %zu: %s became %s", i, ap_llm_errkind_name(cases[i].kind),
                     ap_llm_errkind_name(lerr.kind));
        assert_non_null(strstr(lerr.message, cases[i].kind == AP_LLM_CONTEXT_TOO_LONG
                                                 ? "prompt is too long"
                                                 : "it broke"));
        agg_free(&g);
        ap_buf_free(&buf);
    }
    ap_arena_free(a);
}

/* ---- embeddings --------------------------------------------------------- */

static void test_embed_request(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_embed_req_t r;
    ap_err_t err = {0};
    assert_int_equal(
        ap_wire_parse_embed_request(a, J(a, "{'model':'e','input':'hello'}"), &r, &err), AP_OK);
    assert_int_equal(r.ninputs, 1);
    assert_string_equal(r.inputs[0], "hello");
    assert_int_equal(r.dimensions, 0);
    assert_int_equal(
        ap_wire_parse_embed_request(a,
                                    J(a, "{'model':'e','input':['a','b'],'encoding_format':'float',"
                                         "'dimensions':256,'user':'u'}"),
                                    &r, &err),
        AP_OK);
    assert_int_equal(r.ninputs, 2);
    assert_string_equal(r.inputs[1], "b");
    assert_int_equal(r.dimensions, 256);
    static const struct {
        const char *body, *detail;
    } bad[] = {
        {"{'model':'e','input':'x','encoding_format':'base85'}", "\"encoding_format\""},
        {"{'model':'e','input':[[1,2,3]]}", "\"input[0]\""},
        {"{'model':'e','input':[1,2]}", "\"input[0]\""},
        {"{'model':'e','input':''}", "\"input\""},
        {"{'model':'e','input':[]}", "\"input\""},
        {"{'model':'e'}", "\"input\""},
        {"{'input':'x'}", "\"model\""},
        {"{'model':'e','input':'x','dimensions':0}", "\"dimensions\""},
        {"{'model':'e','input':'x','encodingFormat':'float'}", "\"encodingFormat\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ap_wire_parse_embed_request(a, J(a, bad[i].body), &r, &err) != AP_ERR_INVALID)
            fail_msg("accepted %s", bad[i].body);
        if (!strstr(err.detail, bad[i].detail))
            fail_msg("detail \"%s\" lacks %s", err.detail, bad[i].detail);
    }
    ap_arena_free(a);
}

static void test_embed_calls(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    const char *inputs[] = {"a", "b"};
    ap_llm_embed_req_t r = {
        .model = "client-name", .inputs = inputs, .ninputs = 2, .dimensions = 64};
    ap_http_call_t c;
    ap_err_t err = {0};
    ap_llm_target_t t = {"https://api.openai.com/v1", "sk", "text-embedding-3-small"};
    assert_int_equal(ap_wire_build_embed_call(a, AP_WIRE_OPENAI, &r, &t, &c, &err), AP_OK);
    assert_string_equal(c.url, "https://api.openai.com/v1/embeddings");
    assert_true(has_header(&c, "Authorization: Bearer sk"));
    check_json(a, J(a, c.body),
               "{'model':'text-embedding-3-small','input':['a','b'],'encoding_format':'float','"
               "dimensions':64}");
    ap_llm_target_t g = {"https://generativelanguage.googleapis.com/v1beta", "gk",
                         "text-embedding-004"};
    assert_int_equal(ap_wire_build_embed_call(a, AP_WIRE_GEMINI, &r, &g, &c, &err), AP_OK);
    assert_string_equal(c.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                               "text-embedding-004:batchEmbedContents");
    assert_true(has_header(&c, "x-goog-api-key: gk"));
    check_json(
        a, J(a, c.body),
        "{'requests':[{'model':'models/text-embedding-004','content':{'parts':[{'text':'a'}]},"
        "'outputDimensionality':64},{'model':'models/text-embedding-004','content':{'parts':"
        "[{'text':'b'}]},'outputDimensionality':64}]}");
    assert_int_equal(ap_wire_build_embed_call(a, AP_WIRE_ANTHROPIC, &r, &T_ANTHROPIC, &c, &err),
                     AP_ERR_INVALID);
    /* replies */
    ap_llm_embed_resp_t resp;
    ap_llm_error_t lerr;
    const char *b = Q(a, "{'object':'list','model':'text-embedding-3-small','data':["
                         "{'object':'embedding','index':1,'embedding':[3,4.5]},"
                         "{'object':'embedding','index':0,'embedding':[1,-2]}],"
                         "'usage':{'prompt_tokens':5,'total_tokens':5}}");
    assert_int_equal(
        ap_wire_parse_embed_reply(a, AP_WIRE_OPENAI, 200, NULL, b, strlen(b), &resp, &lerr), AP_OK);
    assert_int_equal(resp.nvectors, 2);
    assert_int_equal(resp.dim, 2);
    assert_true(resp.vectors[0][0] == 1.0f && resp.vectors[0][1] == -2.0f);
    assert_true(resp.vectors[1][0] == 3.0f && resp.vectors[1][1] == 4.5f);
    assert_int_equal(resp.usage.prompt, 5);
    assert_string_equal(resp.model, "text-embedding-3-small");
    b = Q(a, "{'embeddings':[{'values':[0.5,0.25]},{'values':[1,2]}]}");
    assert_int_equal(
        ap_wire_parse_embed_reply(a, AP_WIRE_GEMINI, 200, NULL, b, strlen(b), &resp, &lerr), AP_OK);
    assert_int_equal(resp.nvectors, 2);
    assert_true(resp.vectors[0][1] == 0.25f && resp.vectors[1][1] == 2.0f);
    b = Q(a, "{'embedding':{'values':[7,8,9]}}");
    assert_int_equal(
        ap_wire_parse_embed_reply(a, AP_WIRE_GEMINI, 200, NULL, b, strlen(b), &resp, &lerr), AP_OK);
    assert_int_equal(resp.nvectors, 1);
    assert_int_equal(resp.dim, 3);
    static const char *const bad[] = {
        "{'data':[{'index':0,'embedding':[1,2]},{'index':1,'embedding':[1]}]}",
        "{'data':[{'index':0,'embedding':[1,2]},{'index':0,'embedding':[1,2]}]}",
        "{'data':[{'index':5,'embedding':[1,2]}]}",
        "{'data':[{'index':0,'embedding':'AAAA'}]}",
        "{'data':[]}",
        "[1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = Q(a, bad[i]);
        assert_int_equal(
            ap_wire_parse_embed_reply(a, AP_WIRE_OPENAI, 200, NULL, b, strlen(b), &resp, &lerr),
            AP_ERR_UNAVAILABLE);
        assert_int_equal(lerr.kind, AP_LLM_UPSTREAM);
        assert_int_equal(resp.nvectors, 0);
    }
    b = Q(a, "{'error':{'code':429,'message':'Quota','status':'RESOURCE_EXHAUSTED'}}");
    assert_int_equal(
        ap_wire_parse_embed_reply(a, AP_WIRE_GEMINI, 429, "3", b, strlen(b), &resp, &lerr),
        AP_ERR_UNAVAILABLE);
    assert_int_equal(lerr.kind, AP_LLM_RATE_LIMITED);
    assert_int_equal(lerr.retry_after_ms, 3000);
    /* the answer to the client */
    float v0[] = {0.5f, -1.25f}, v1[] = {2.0f, 0.0f};
    float *vecs[] = {v0, v1};
    ap_llm_embed_resp_t out = {
        .vectors = vecs, .nvectors = 2, .dim = 2, .usage = {.prompt = 8}, .model = "emb"};
    check_json_new(a, ap_wire_render_embed_response(&out),
                   "{'object':'list','model':'emb','data':["
                   "{'object':'embedding','index':0,'embedding':[0.5,-1.25]},"
                   "{'object':'embedding','index':1,'embedding':[2.0,0.0]}],"
                   "'usage':{'prompt_tokens':8,'total_tokens':8}}");
    ap_arena_free(a);
}


/* The direct text renderer of OpenAI replies writes exactly what json_dumps
 * of the jansson rendering writes: escapes, control characters, non-ASCII,
 * bytes that are not UTF-8, missing fields, tool calls (jansson path). */
static void test_render_text_matches_jansson(void **state) {
    (void)state;
    const char *contents[] = {
        "hello", "", "quote \" backslash \\ slash / tab\t nl\n cr\r bs\b ff\f",
        "ctl \x01\x1f del \x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8",
        "bad \xc3 byte \xff and \xed\xa0\x80 surrogate", NULL,
    };
    const char *finish[] = {"stop", "length", "tool_calls", "content_filter", NULL};
    for (size_t i = 0; i < sizeof contents / sizeof *contents; i++) {
        ap_llm_resp_t resp;
        memset(&resp, 0, sizeof resp);
        resp.id = i % 2 ? "chatcmpl-\x01x\"" : "chatcmpl-abc";
        resp.model = i == 3 ? NULL : "gpt-4o-mini \xc3\xa9";
        resp.created = 1700000000 + (int64_t)i;
        resp.content = contents[i];
        resp.finish_reason = finish[i % 5];
        resp.usage.prompt = 12 + (int64_t)i;
        resp.usage.completion = 7;
        resp.usage.cached = (int64_t)i;
        size_t len;
        char *text = ap_wire_render_response_text(AP_WIRE_OPENAI, &resp, &len);
        json_t *o = ap_wire_render_response(AP_WIRE_OPENAI, &resp);
        char *want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        assert_string_equal(text, want);
        assert_int_equal(len, strlen(want));
        free(text);
        free(want);
    }
    /* with tool calls: the jansson path, same text */
    ap_llm_tool_call_t tc = {.id = "call_1", .name = "f", .arguments = "{\"a\":1}"};
    ap_llm_resp_t resp = {.id = "x", .model = "m", .created = 1, .tool_calls = &tc, .ntool_calls = 1};
    size_t len;
    char *text = ap_wire_render_response_text(AP_WIRE_OPENAI, &resp, &len);
    assert_non_null(strstr(text, "\"tool_calls\":[{\"id\":\"call_1\""));
    free(text);
}


/* The OpenAI request body written directly equals json_dumps of the
 * jansson body for every shape it takes, and steps aside for the rest. */
static void test_openai_body_text_matches_jansson(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = "be \"brief\"\n\x01"},
        {.role = AP_LLM_USER, .content = "caf\xc3\xa9 \xff", .name = "ann"},
        {.role = AP_LLM_ASSISTANT, .content = NULL},
        {.role = AP_LLM_USER, .content = "again"},
    };
    const char *stops[] = {"\n\n", "END"};
    ap_llm_target_t t = {.model = "gpt-4o-mini", .base_url = "http://127.0.0.1:1/v1", .api_key = "sk"};
    for (int v = 0; v < 6; v++) {
        ap_llm_req_t req;
        memset(&req, 0, sizeof req);
        req.msgs = msgs;
        req.nmsgs = v == 0 ? 1 : 4;
        req.stream = v & 1;
        req.max_tokens = v >= 2 ? 256 : 0;
        req.user = v >= 3 ? "u-\"1\"" : NULL;
        if (v >= 4) {
            req.stop = stops;
            req.nstop = 2;
        }
        if (v == 5) t.base_url = "https://api.openai.com/v1";
        size_t len;
        char *text = wire_openai_body_text(a, &req, &t, &len);
        assert_non_null(text);
        json_t *body;
        ap_err_t err = {0};
        assert_int_equal(wire_openai_body(a, &req, &t, &body, &err), AP_OK);
        char *want = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(body);
        assert_string_equal(text, want);
        assert_int_equal(len, strlen(want));
        free(want);
    }
    ap_llm_req_t req;
    memset(&req, 0, sizeof req);
    req.msgs = msgs;
    req.nmsgs = 1;
    req.has_temperature = true;
    req.temperature = 0.2;
    size_t len;
    assert_null(wire_openai_body_text(a, &req, &t, &len)); /* reals: jansson */
    ap_arena_free(a);
}

int main(void) {
    ap_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_text_matches_jansson),
        cmocka_unit_test(test_openai_body_text_matches_jansson),
        cmocka_unit_test(test_sse_events),
        cmocka_unit_test(test_sse_event_name_cut_at_nul),
        cmocka_unit_test(test_sse_line_limit),
        cmocka_unit_test(test_sse_callback_stops),
        cmocka_unit_test(test_sse_writer),
        cmocka_unit_test(test_openai_parse_request),
        cmocka_unit_test(test_openai_parse_request_errors),
        cmocka_unit_test(test_anthropic_parse_request),
        cmocka_unit_test(test_anthropic_parse_request_errors),
        cmocka_unit_test(test_build_openai_to_anthropic),
        cmocka_unit_test(test_build_openai_to_gemini),
        cmocka_unit_test(test_build_anthropic_to_openai),
        cmocka_unit_test(test_build_anthropic_to_gemini),
        cmocka_unit_test(test_build_same_protocol),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_build_refuses),
        cmocka_unit_test(test_parse_reply_openai),
        cmocka_unit_test(test_parse_reply_anthropic),
        cmocka_unit_test(test_parse_reply_gemini),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_error_message_truncated_at_utf8),
        cmocka_unit_test(test_render_error),
        cmocka_unit_test(test_render_response),
        cmocka_unit_test(test_decode_openai),
        cmocka_unit_test(test_decode_anthropic),
        cmocka_unit_test(test_decode_gemini),
        cmocka_unit_test(test_decode_anthropic_usage),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_encoder_openai),
        cmocka_unit_test(test_encoder_anthropic),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_embed_request),
        cmocka_unit_test(test_embed_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
