/*
 * fake_wire.c - the three wire formats of the fake LLM upstream (see
 * fake_wire.h).
 *
 * 1. Usage is realistic enough for metering tests: prompt tokens are the
 *    characters of every message text (and the system prompt) / 4, rounded
 *    up; completion tokens are the words of the reply (tool calls: their
 *    characters / 4).
 * 2. The default reply is "echo: " + the first FAKE_ECHO_CHARS characters
 *    of the last user message that has text, so a test can tell which
 *    request an answer belongs to.
 * 3. Embeddings are feature-hashed bags of words: deterministic unit vectors
 *    where texts sharing words are close, good enough to test retrieval.
 * 4. Streams split text on UTF-8 character boundaries, never inside one.
 */
#include "fake_wire.h"

#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

/* --------------------------------------------------------- JSON writing */

void fake_put(ap_buf_t *b, const char *s, size_t n) {
    (void)ap_buf_append(b, s, n);
}
void fake_put_str(ap_buf_t *b, const char *s) {
    fake_put(b, s, strlen(s));
}

void fake_put_num(ap_buf_t *b, long long v) {
    char t[24];
    int n = snprintf(t, sizeof t, "%lld", v);
    fake_put(b, t, (size_t)n);
}

void fake_put_jstr(ap_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    FAKE_PUTS(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        fake_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': FAKE_PUTS(b, "\\\""); break;
        case '\\': FAKE_PUTS(b, "\\\\"); break;
        case '\n': FAKE_PUTS(b, "\\n"); break;
        case '\r': FAKE_PUTS(b, "\\r"); break;
        case '\t': FAKE_PUTS(b, "\\t"); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fake_put(b, e, sizeof e);
        }
        }
    }
    fake_put(b, s + run, n - run);
    FAKE_PUTS(b, "\"");
}

static void put_jcstr(ap_buf_t *b, const char *s) {
    fake_put_jstr(b, s, strlen(s));
}

/* A unit-vector component with six decimals, without printf. */
static void put_f6(ap_buf_t *b, float x) {
    long v = lroundf(x * 1e6f);
    if (v == 0) {
        FAKE_PUTS(b, "0.0");
        return;
    }
    char t[16];
    size_t i = 0;
    if (v < 0) {
        t[i++] = '-';
        v = -v;
    }
    t[i++] = (char)('0' + v / 1000000);
    t[i++] = '.';
    long frac = v % 1000000;
    for (long k = 100000; k; k /= 10) t[i++] = (char)('0' + (frac / k) % 10);
    fake_put(b, t, i);
}

static size_t utf8_next(const char *s, size_t n, size_t i) {
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

static size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i = utf8_next(s, n, i)) c++;
    return c;
}

static long count_words(const char *s) {
    long w = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

static long tokens_of_chars(size_t chars) {
    long t = (long)((chars + 3) / 4);
    return t ? t : 1;
}

uint64_t fake_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* ------------------------------------------------------ reading requests */

/* Total length of the strings under "content" and "text" keys, anywhere
 * below v: the prompt size for usage, in all three protocols. */
static size_t text_chars(json_t *v, bool count) {
    size_t n = 0;
    if (json_is_string(v)) return count ? utf8_count(json_string_value(v), json_string_length(v)) : 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) n += text_chars(e, count);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) n += text_chars(e, !strcmp(k, "content") || !strcmp(k, "text"));
    }
    return n;
}

/* The first text of a message content: a string, or the first part/block
 * with a "text" string. */
static const char *content_text(json_t *content) {
    if (json_is_string(content)) return json_string_value(content);
    size_t i;
    json_t *e;
    json_array_foreach(content, i, e) {
        json_t *t = json_object_get(e, "text");
        if (json_is_string(t)) return json_string_value(t);
    }
    return NULL;
}

/* The text of the last user message that has text (OpenAI, Anthropic:
 * messages[].content; Gemini: contents[].parts[].text). */
static const char *last_user_text(fake_proto_t p, json_t *body) {
    json_t *msgs = json_object_get(body, p == FAKE_GEMINI ? "contents" : "messages");
    for (size_t i = json_array_size(msgs); i-- > 0;) {
        json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (p == FAKE_GEMINI ? role && strcmp(role, "user") : !role || strcmp(role, "user")) continue;
        const char *t = content_text(json_object_get(m, p == FAKE_GEMINI ? "parts" : "content"));
        if (t) return t;
    }
    return NULL;
}

/* -------------------------------------------------------------- errors */

typedef struct {
    int status;
    const char *oa_type, *oa_code, *an_type, *gm_status, *msg;
} errdef_t;

static const errdef_t STATUS_ERRORS[] = {
    {400, "invalid_request_error", NULL, "invalid_request_error", "INVALID_ARGUMENT", "Invalid request."},
    {401, "invalid_request_error", "invalid_api_key", "authentication_error", "UNAUTHENTICATED",
     "Incorrect API key provided."},
    {403, "invalid_request_error", "permission_denied", "permission_error", "PERMISSION_DENIED",
     "Permission denied."},
    {404, "invalid_request_error", "not_found", "not_found_error", "NOT_FOUND", "Not found."},
    {408, "server_error", "timeout", "timeout_error", "DEADLINE_EXCEEDED", "Request timed out."},
    {409, "invalid_request_error", "conflict", "invalid_request_error", "ABORTED", "Conflict."},
    {413, "invalid_request_error", "request_too_large", "request_too_large", "INVALID_ARGUMENT",
     "Request too large."},
    {429, "requests", "rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED",
     "Rate limit reached. Please try again later."},
    {500, "server_error", NULL, "api_error", "INTERNAL",
     "The server had an error while processing your request."},
    {502, "server_error", NULL, "api_error", "UNAVAILABLE", "Bad gateway."},
    {503, "server_error", NULL, "api_error", "UNAVAILABLE", "The server is overloaded or not ready yet."},
    {504, "server_error", "timeout", "timeout_error", "DEADLINE_EXCEEDED", "Gateway timeout."},
    {529, "server_error", NULL, "overloaded_error", "UNAVAILABLE", "Overloaded"},
};

typedef struct {
    const char *code;
    int status;
    const char *oa_type, *an_type, *gm_status;
    const char *oa_msg, *an_msg, *gm_msg;
} ecode_t;

static const ecode_t ERROR_CODES[] = {
    {"context_length_exceeded", 400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT",
     "This model's maximum context length is 128000 tokens. However, your messages resulted in "
     "200000 tokens. Please reduce the length of the messages.",
     "prompt is too long: 200000 tokens > 199999 maximum",
     "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."},
    {"rate_limit_exceeded", 429, "requests", "rate_limit_error", "RESOURCE_EXHAUSTED",
     "Rate limit reached for requests. Please try again later.",
     "This request would exceed your organization's rate limit. Please try again later.",
     "Resource has been exhausted (e.g. check quota)."},
    {"insufficient_quota", 429, "insufficient_quota", "rate_limit_error", "RESOURCE_EXHAUSTED",
     "You exceeded your current quota, please check your plan and billing details.",
     "Your credit balance is too low to access the API.", "Quota exceeded."},
    {"invalid_api_key", 401, "invalid_request_error", "authentication_error", "UNAUTHENTICATED",
     "Incorrect API key provided.", "invalid x-api-key", "API key not valid. Please pass a valid API key."},
    {"model_not_found", 404, "invalid_request_error", "not_found_error", "NOT_FOUND",
     "The model does not exist or you do not have access to it.", "model: not found",
     "models/unknown is not found for API version v1beta."},
    {"overloaded", 529, "server_error", "overloaded_error", "UNAVAILABLE",
     "The server is overloaded or not ready yet.", "Overloaded",
     "The model is overloaded. Please try again later."},
};

/* The row for status, else the 500 row for 5xx and the 400 row for the rest. */
static const errdef_t *status_error(int status) {
    const errdef_t *fallback = NULL;
    int want = status >= 500 ? 500 : 400;
    for (size_t i = 0; i < sizeof STATUS_ERRORS / sizeof *STATUS_ERRORS; i++) {
        if (STATUS_ERRORS[i].status == status) return &STATUS_ERRORS[i];
        if (STATUS_ERRORS[i].status == want) fallback = &STATUS_ERRORS[i];
    }
    return fallback;
}

static const ecode_t *error_code_def(const char *code) {
    for (size_t i = 0; code && i < sizeof ERROR_CODES / sizeof *ERROR_CODES; i++)
        if (!strcmp(ERROR_CODES[i].code, code)) return &ERROR_CODES[i];
    return NULL;
}

int fake_error_status(long status, const char *code) {
    if (status >= 400) return (int)status;
    const ecode_t *e = error_code_def(code);
    if (e) return e->status;
    return code ? 400 : 500;
}

void fake_render_error(ap_buf_t *b, fake_proto_t p, int status, const char *code, const char *msg,
                       unsigned long long n) {
    const errdef_t *d = status_error(status);
    const ecode_t *e = error_code_def(code);
    if (p == FAKE_OPENAI) {
        if (!msg) msg = e ? e->oa_msg : d->msg;
        FAKE_PUTS(b, "{\"error\":{\"message\":");
        put_jcstr(b, msg);
        FAKE_PUTS(b, ",\"type\":");
        put_jcstr(b, e ? e->oa_type : d->oa_type);
        FAKE_PUTS(b, ",\"param\":null,\"code\":");
        if (code) put_jcstr(b, code);
        else if (d->oa_code) put_jcstr(b, d->oa_code);
        else FAKE_PUTS(b, "null");
        FAKE_PUTS(b, "}}");
    } else if (p == FAKE_ANTHROPIC) {
        if (!msg) msg = e ? e->an_msg : d->msg;
        FAKE_PUTS(b, "{\"type\":\"error\",\"error\":{\"type\":");
        put_jcstr(b, e ? e->an_type : code ? code : d->an_type);
        FAKE_PUTS(b, ",\"message\":");
        put_jcstr(b, msg);
        FAKE_PUTS(b, "},\"request_id\":\"req_fake");
        fake_put_num(b, (long long)n);
        FAKE_PUTS(b, "\"}");
    } else {
        if (!msg) msg = e ? e->gm_msg : d->msg;
        FAKE_PUTS(b, "{\"error\":{\"code\":");
        fake_put_num(b, status);
        FAKE_PUTS(b, ",\"message\":");
        put_jcstr(b, msg);
        FAKE_PUTS(b, ",\"status\":");
        put_jcstr(b, e ? e->gm_status : code ? code : d->gm_status);
        FAKE_PUTS(b, "}}");
    }
}

/* ----------------------------------------------------------------- chat */

void fake_chat_free(fake_chat_t *c) {
    ap_free(c->model);
    ap_free(c->content);
    ap_free(c->tool_name);
    memset(c, 0, sizeof *c);
}

bool fake_chat_init(fake_chat_t *c, fake_proto_t p, const char *path_model, json_t *body, const char *reply,
                    const char *tool_call, unsigned long long n, const char **why) {
    memset(c, 0, sizeof *c);
    c->proto = p;
    c->n = n;
    c->created = (long long)time(NULL);
    const char *model = path_model ? path_model : json_string_value(json_object_get(body, "model"));
    c->model = ap_strdup(model && *model ? model : "fake-model");
    json_t *so = json_object_get(body, "stream_options");
    c->include_usage = json_is_true(json_object_get(so, "include_usage"));
    size_t chars = text_chars(json_object_get(body, p == FAKE_GEMINI ? "contents" : "messages"), false) +
                   text_chars(json_object_get(body, p == FAKE_GEMINI ? "systemInstruction" : "system"), true);
    c->prompt_tokens = tokens_of_chars(chars);
    if (tool_call) {
        const char *colon = strchr(tool_call, ':');
        json_error_t jerr;
        json_t *args = colon ? json_loads(colon + 1, JSON_DECODE_ANY, &jerr) : NULL;
        bool ok = colon && colon > tool_call && json_is_object(args);
        json_decref(args);
        if (!ok) {
            *why = "fake-upstream: x-fake-tool-call must be <name>:<json object>";
            fake_chat_free(c);
            return false;
        }
        c->tool_name = ap_strndup(tool_call, (size_t)(colon - tool_call));
        c->content = ap_strdup(colon + 1);
        c->completion_tokens = tokens_of_chars(strlen(tool_call));
        return true;
    }
    if (reply) {
        c->content = ap_strdup(reply);
    } else {
        const char *t = last_user_text(p, body);
        if (!t) t = "";
        size_t tn = strlen(t), end = 0;
        for (size_t k = 0; end < tn && k < FAKE_ECHO_CHARS; k++) end = utf8_next(t, tn, end);
        ap_buf_t b;
        ap_buf_init(&b, 0);
        FAKE_PUTS(&b, "echo: ");
        fake_put(&b, t, end);
        c->content = ap_buf_steal(&b);
    }
    c->completion_tokens = count_words(c->content);
    if (!c->completion_tokens) c->completion_tokens = 1;
    return true;
}

void fake_render_chat(ap_buf_t *b, const fake_chat_t *c) {
    size_t clen = strlen(c->content);
    long long total = c->prompt_tokens + c->completion_tokens;
    if (c->proto == FAKE_OPENAI) {
        FAKE_PUTS(b, "{\"id\":\"chatcmpl-fake");
        fake_put_num(b, (long long)c->n);
        FAKE_PUTS(b, "\",\"object\":\"chat.completion\",\"created\":");
        fake_put_num(b, c->created);
        FAKE_PUTS(b, ",\"model\":");
        put_jcstr(b, c->model);
        FAKE_PUTS(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        if (c->tool_name) {
            FAKE_PUTS(b, "null,\"tool_calls\":[{\"id\":\"call_fake");
            fake_put_num(b, (long long)c->n);
            FAKE_PUTS(b, "\",\"type\":\"function\",\"function\":{\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"arguments\":");
            fake_put_jstr(b, c->content, clen);
            FAKE_PUTS(b, "}}]");
        } else {
            fake_put_jstr(b, c->content, clen);
        }
        FAKE_PUTS(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
        fake_put_str(b, c->tool_name ? "\"tool_calls\"" : "\"stop\"");
        FAKE_PUTS(b, "}],\"usage\":{\"prompt_tokens\":");
        fake_put_num(b, c->prompt_tokens);
        FAKE_PUTS(b, ",\"completion_tokens\":");
        fake_put_num(b, c->completion_tokens);
        FAKE_PUTS(b, ",\"total_tokens\":");
        fake_put_num(b, total);
        FAKE_PUTS(b, "},\"system_fingerprint\":\"fp_fake\"}");
    } else if (c->proto == FAKE_ANTHROPIC) {
        FAKE_PUTS(b, "{\"id\":\"msg_fake");
        fake_put_num(b, (long long)c->n);
        FAKE_PUTS(b, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        put_jcstr(b, c->model);
        FAKE_PUTS(b, ",\"content\":[");
        if (c->tool_name) {
            FAKE_PUTS(b, "{\"type\":\"tool_use\",\"id\":\"toolu_fake");
            fake_put_num(b, (long long)c->n);
            FAKE_PUTS(b, "\",\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"input\":");
            fake_put(b, c->content, clen); /* validated JSON object */
            FAKE_PUTS(b, "}");
        } else {
            FAKE_PUTS(b, "{\"type\":\"text\",\"text\":");
            fake_put_jstr(b, c->content, clen);
            FAKE_PUTS(b, "}");
        }
        FAKE_PUTS(b, "],\"stop_reason\":");
        fake_put_str(b, c->tool_name ? "\"tool_use\"" : "\"end_turn\"");
        FAKE_PUTS(b, ",\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
        fake_put_num(b, c->prompt_tokens);
        FAKE_PUTS(b, ",\"output_tokens\":");
        fake_put_num(b, c->completion_tokens);
        FAKE_PUTS(b, "}}");
    } else {
        FAKE_PUTS(b, "{\"candidates\":[{\"content\":{\"parts\":[");
        if (c->tool_name) {
            FAKE_PUTS(b, "{\"functionCall\":{\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"args\":");
            fake_put(b, c->content, clen);
            FAKE_PUTS(b, "}}");
        } else {
            FAKE_PUTS(b, "{\"text\":");
            fake_put_jstr(b, c->content, clen);
            FAKE_PUTS(b, "}");
        }
        FAKE_PUTS(b, "],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{"
                     "\"promptTokenCount\":");
        fake_put_num(b, c->prompt_tokens);
        FAKE_PUTS(b, ",\"candidatesTokenCount\":");
        fake_put_num(b, c->completion_tokens);
        FAKE_PUTS(b, ",\"totalTokenCount\":");
        fake_put_num(b, total);
        FAKE_PUTS(b, "},\"modelVersion\":");
        put_jcstr(b, c->model);
        FAKE_PUTS(b, ",\"responseId\":\"fake");
        fake_put_num(b, (long long)c->n);
        FAKE_PUTS(b, "\"}");
    }
}

/* -------------------------------------------------------------- streams */

void fake_stream_init(fake_stream_t *st, fake_chat_t *c, long chunks) {
    memset(st, 0, sizeof *st);
    st->chat = *c;
    memset(c, 0, sizeof *c);
    const char *s = st->chat.content;
    size_t n = strlen(s);
    size_t want;
    if (st->chat.tool_name && st->chat.proto == FAKE_GEMINI) want = 1;
    else if (chunks > 0) want = (size_t)chunks;
    else if (st->chat.tool_name) want = 3;
    else want = 0; /* by words */
    if (want == 0) {
        size_t cap = 8;
        st->cuts = ap_malloc(cap * sizeof *st->cuts);
        st->cuts[0] = 0;
        for (size_t i = 1; i < n; i++) {
            bool sp_before = s[i - 1] == ' ' || s[i - 1] == '\n' || s[i - 1] == '\t';
            bool sp_here = s[i] == ' ' || s[i] == '\n' || s[i] == '\t';
            if (!sp_before || sp_here) continue;
            if (st->npieces + 2 >= cap) st->cuts = ap_realloc(st->cuts, (cap *= 2) * sizeof *st->cuts);
            st->cuts[++st->npieces] = i;
        }
        st->cuts[++st->npieces] = n;
        return;
    }
    size_t chars = utf8_count(s, n);
    st->npieces = want;
    st->cuts = ap_malloc((want + 1) * sizeof *st->cuts);
    size_t pos = 0, ch = 0;
    for (size_t k = 0; k <= want; k++) {
        size_t target = chars * k / want;
        while (ch < target) {
            pos = utf8_next(s, n, pos);
            ch++;
        }
        st->cuts[k] = pos;
    }
    st->cuts[want] = n;
}

void fake_stream_free(fake_stream_t *st) {
    fake_chat_free(&st->chat);
    ap_free(st->cuts);
    st->cuts = NULL;
    st->npieces = 0;
}

const char *fake_stream_ctype(fake_proto_t p, bool gemini_sse) {
    if (p == FAKE_GEMINI) return gemini_sse ? "text/event-stream" : "application/json";
    return "text/event-stream; charset=utf-8";
}

static void oa_open(ap_buf_t *b, const fake_chat_t *c) {
    FAKE_PUTS(b, "data: {\"id\":\"chatcmpl-fake");
    fake_put_num(b, (long long)c->n);
    FAKE_PUTS(b, "\",\"object\":\"chat.completion.chunk\",\"created\":");
    fake_put_num(b, c->created);
    FAKE_PUTS(b, ",\"model\":");
    put_jcstr(b, c->model);
    FAKE_PUTS(b, ",\"system_fingerprint\":\"fp_fake\",\"choices\":[");
}

static void oa_close(ap_buf_t *b, const fake_chat_t *c) {
    FAKE_PUTS(b, "]");
    if (c->include_usage) FAKE_PUTS(b, ",\"usage\":null");
    FAKE_PUTS(b, "}\n\n");
}

static void an_event(ap_buf_t *b, const char *name) {
    FAKE_PUTS(b, "event: ");
    fake_put_str(b, name);
    FAKE_PUTS(b, "\ndata: ");
}

/* Gemini chunks: SSE events, or the elements of one JSON array. */
static void gm_open(const fake_stream_t *st, ap_buf_t *b, bool first) {
    if (st->gemini_sse) FAKE_PUTS(b, "data: ");
    else fake_put_str(b, first ? "[" : ",\r\n");
    FAKE_PUTS(b, "{\"candidates\":[{\"content\":{\"parts\":[");
}

static void gm_close(const fake_stream_t *st, ap_buf_t *b, bool final) {
    const fake_chat_t *c = &st->chat;
    FAKE_PUTS(b, "],\"role\":\"model\"},");
    if (final) FAKE_PUTS(b, "\"finishReason\":\"STOP\",");
    FAKE_PUTS(b, "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":");
    fake_put_num(b, c->prompt_tokens);
    if (final) {
        FAKE_PUTS(b, ",\"candidatesTokenCount\":");
        fake_put_num(b, c->completion_tokens);
        FAKE_PUTS(b, ",\"totalTokenCount\":");
        fake_put_num(b, c->prompt_tokens + c->completion_tokens);
    } else {
        FAKE_PUTS(b, ",\"totalTokenCount\":");
        fake_put_num(b, c->prompt_tokens);
    }
    FAKE_PUTS(b, "},\"modelVersion\":");
    put_jcstr(b, c->model);
    FAKE_PUTS(b, ",\"responseId\":\"fake");
    fake_put_num(b, (long long)c->n);
    FAKE_PUTS(b, "\"}");
    if (st->gemini_sse) FAKE_PUTS(b, "\r\n\r\n");
}

void fake_stream_preamble(const fake_stream_t *st, ap_buf_t *b) {
    const fake_chat_t *c = &st->chat;
    if (c->proto == FAKE_OPENAI) {
        oa_open(b, c);
        FAKE_PUTS(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":");
        if (c->tool_name) {
            FAKE_PUTS(b, "null,\"tool_calls\":[{\"index\":0,\"id\":\"call_fake");
            fake_put_num(b, (long long)c->n);
            FAKE_PUTS(b, "\",\"type\":\"function\",\"function\":{\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"arguments\":\"\"}}]");
        } else {
            FAKE_PUTS(b, "\"\"");
        }
        FAKE_PUTS(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
        oa_close(b, c);
    } else if (c->proto == FAKE_ANTHROPIC) {
        an_event(b, "message_start");
        FAKE_PUTS(b, "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake");
        fake_put_num(b, (long long)c->n);
        FAKE_PUTS(b, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        put_jcstr(b, c->model);
        FAKE_PUTS(b,
                  ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
        fake_put_num(b, c->prompt_tokens);
        FAKE_PUTS(b, ",\"output_tokens\":1}}}\n\n");
        an_event(b, "content_block_start");
        if (c->tool_name) {
            FAKE_PUTS(
                b, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
                   "\"id\":\"toolu_fake");
            fake_put_num(b, (long long)c->n);
            FAKE_PUTS(b, "\",\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"input\":{}}}\n\n");
        } else {
            FAKE_PUTS(b, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
                         "\"text\":\"\"}}\n\n");
        }
        an_event(b, "ping");
        FAKE_PUTS(b, "{\"type\":\"ping\"}\n\n");
    }
    /* Gemini has no preamble. */
}

/* Cuts the JSON payload of the event written since `start` in half, keeping
 * its framing: what x-fake-malformed does to a stream. */
static void make_malformed(ap_buf_t *b, size_t start) {
    char *d = memmem(b->p + start, b->len - start, "data: ", 6);
    size_t ps = d ? (size_t)(d - b->p) + 6 : start;
    size_t pe = b->len;
    while (pe > ps && (b->p[pe - 1] == '\n' || b->p[pe - 1] == '\r')) pe--;
    char tail[8];
    size_t tl = b->len - pe < sizeof tail ? b->len - pe : sizeof tail;
    memcpy(tail, b->p + pe, tl);
    b->len = ps + (pe - ps) / 2;
    fake_put(b, tail, tl);
}

void fake_stream_piece(const fake_stream_t *st, size_t i, ap_buf_t *b) {
    const fake_chat_t *c = &st->chat;
    const char *p = c->content + st->cuts[i];
    size_t n = st->cuts[i + 1] - st->cuts[i];
    size_t start = b->len;
    if (c->proto == FAKE_OPENAI) {
        oa_open(b, c);
        if (c->tool_name) {
            FAKE_PUTS(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
            fake_put_jstr(b, p, n);
            FAKE_PUTS(b, "}}]},\"logprobs\":null,\"finish_reason\":null}");
        } else {
            FAKE_PUTS(b, "{\"index\":0,\"delta\":{\"content\":");
            fake_put_jstr(b, p, n);
            FAKE_PUTS(b, "},\"logprobs\":null,\"finish_reason\":null}");
        }
        oa_close(b, c);
    } else if (c->proto == FAKE_ANTHROPIC) {
        an_event(b, "content_block_delta");
        FAKE_PUTS(b, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
        if (c->tool_name) FAKE_PUTS(b, "{\"type\":\"input_json_delta\",\"partial_json\":");
        else FAKE_PUTS(b, "{\"type\":\"text_delta\",\"text\":");
        fake_put_jstr(b, p, n);
        FAKE_PUTS(b, "}}\n\n");
    } else {
        gm_open(st, b, i == 0);
        if (c->tool_name) {
            FAKE_PUTS(b, "{\"functionCall\":{\"name\":");
            put_jcstr(b, c->tool_name);
            FAKE_PUTS(b, ",\"args\":");
            fake_put_str(b, c->content); /* validated JSON object */
            FAKE_PUTS(b, "}}");
        } else {
            FAKE_PUTS(b, "{\"text\":");
            fake_put_jstr(b, p, n);
            FAKE_PUTS(b, "}");
        }
        gm_close(st, b, false);
    }
    if (i == 0 && st->malformed) make_malformed(b, start);
}

void fake_stream_end(const fake_stream_t *st, ap_buf_t *b) {
    const fake_chat_t *c = &st->chat;
    if (c->proto == FAKE_OPENAI) {
        oa_open(b, c);
        FAKE_PUTS(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
        fake_put_str(b, c->tool_name ? "\"tool_calls\"}" : "\"stop\"}");
        oa_close(b, c);
        if (c->include_usage) {
            oa_open(b, c);
            FAKE_PUTS(b, "],\"usage\":{\"prompt_tokens\":");
            fake_put_num(b, c->prompt_tokens);
            FAKE_PUTS(b, ",\"completion_tokens\":");
            fake_put_num(b, c->completion_tokens);
            FAKE_PUTS(b, ",\"total_tokens\":");
            fake_put_num(b, c->prompt_tokens + c->completion_tokens);
            FAKE_PUTS(b, "}}\n\n");
        }
        FAKE_PUTS(b, "data: [DONE]\n\n");
    } else if (c->proto == FAKE_ANTHROPIC) {
        an_event(b, "content_block_stop");
        FAKE_PUTS(b, "{\"type\":\"content_block_stop\",\"index\":0}\n\n");
        an_event(b, "message_delta");
        FAKE_PUTS(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
        fake_put_str(b, c->tool_name ? "\"tool_use\"" : "\"end_turn\"");
        FAKE_PUTS(b, ",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
        fake_put_num(b, c->completion_tokens);
        FAKE_PUTS(b, "}}\n\n");
        an_event(b, "message_stop");
        FAKE_PUTS(b, "{\"type\":\"message_stop\"}\n\n");
    } else {
        gm_open(st, b, false);
        FAKE_PUTS(b, "{\"text\":\"\"}");
        gm_close(st, b, true);
        if (!st->gemini_sse) FAKE_PUTS(b, "]");
    }
}

/* ----------------------------------------------------------- embeddings */

/* A deterministic unit vector by feature hashing: each word adds +-1 to one
 * dimension, so texts sharing words have a high cosine similarity. */
static void embed_text(float *v, size_t dims, const char *s, size_t n) {
    memset(v, 0, dims * sizeof *v);
    char w[128];
    size_t wl = 0;
    bool any = false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : ' ';
        bool word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
        if (word) {
            if (wl < sizeof w) w[wl++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            continue;
        }
        if (!wl) continue;
        uint64_t h = fake_hash(w, wl);
        v[h % dims] += (h >> 63) ? -1.0f : 1.0f;
        any = true;
        wl = 0;
    }
    if (!any) v[fake_hash(s, n) % dims] = 1.0f;
    double norm = 0;
    for (size_t i = 0; i < dims; i++) norm += (double)v[i] * v[i];
    if (norm == 0) { /* every word cancelled out */
        v[fake_hash(s, n) % dims] = 1.0f;
        return;
    }
    float inv = (float)(1.0 / sqrt(norm));
    for (size_t i = 0; i < dims; i++) v[i] *= inv;
}

static void embed_tokens(float *v, size_t dims, json_t *tokens) {
    ap_buf_t t;
    ap_buf_init(&t, 0);
    size_t i;
    json_t *e;
    json_array_foreach(tokens, i, e) {
        fake_put_num(&t, json_integer_value(e));
        FAKE_PUTS(&t, " ");
    }
    embed_text(v, dims, t.p ? t.p : "", t.len);
    ap_buf_free(&t);
}

static void put_vector(ap_buf_t *b, const float *v, size_t dims, bool base64) {
    if (base64) {
        size_t blen = sodium_base64_ENCODED_LEN(dims * sizeof *v, sodium_base64_VARIANT_ORIGINAL);
        char *out = ap_malloc(blen);
        sodium_bin2base64(out, blen, (const unsigned char *)v, dims * sizeof *v,
                          sodium_base64_VARIANT_ORIGINAL);
        FAKE_PUTS(b, "\"");
        fake_put_str(b, out);
        FAKE_PUTS(b, "\"");
        ap_free(out);
        return;
    }
    FAKE_PUTS(b, "[");
    for (size_t i = 0; i < dims; i++) {
        if (i) FAKE_PUTS(b, ",");
        put_f6(b, v[i]);
    }
    FAKE_PUTS(b, "]");
}

bool fake_openai_embeddings(ap_buf_t *out, json_t *body, long dims_override, const char **why) {
    json_t *input = json_object_get(body, "input");
    json_int_t d = json_integer_value(json_object_get(body, "dimensions"));
    size_t dims = dims_override > 0 ? (size_t)dims_override : d > 0 && d <= FAKE_MAX_DIMS ? (size_t)d : 1536;
    const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
    bool b64 = fmt && !strcmp(fmt, "base64");
    const char *model = json_string_value(json_object_get(body, "model"));
    /* input: a string, an array of strings, an array of token ids, or an
     * array of token-id arrays. */
    json_t *items = json_array();
    if (json_is_string(input) || (json_is_array(input) && json_is_integer(json_array_get(input, 0))))
        json_array_append(items, input);
    else if (json_is_array(input)) json_array_extend(items, input);
    if (!json_array_size(items)) {
        json_decref(items);
        *why = "'input' must be a non-empty string or array";
        return false;
    }
    float *v = ap_malloc(dims * sizeof *v);
    ap_buf_t *b = out;
    long tokens = 0;
    FAKE_PUTS(b, "{\"object\":\"list\",\"data\":[");
    size_t i;
    json_t *e;
    json_array_foreach(items, i, e) {
        if (json_is_string(e)) {
            embed_text(v, dims, json_string_value(e), json_string_length(e));
            tokens += tokens_of_chars(utf8_count(json_string_value(e), json_string_length(e)));
        } else {
            embed_tokens(v, dims, e);
            tokens += (long)json_array_size(e);
        }
        if (i) FAKE_PUTS(b, ",");
        FAKE_PUTS(b, "{\"object\":\"embedding\",\"index\":");
        fake_put_num(b, (long long)i);
        FAKE_PUTS(b, ",\"embedding\":");
        put_vector(b, v, dims, b64);
        FAKE_PUTS(b, "}");
    }
    FAKE_PUTS(b, "],\"model\":");
    put_jcstr(b, model ? model : "fake-embedding");
    FAKE_PUTS(b, ",\"usage\":{\"prompt_tokens\":");
    fake_put_num(b, tokens);
    FAKE_PUTS(b, ",\"total_tokens\":");
    fake_put_num(b, tokens);
    FAKE_PUTS(b, "}}");
    ap_free(v);
    json_decref(items);
    return true;
}

/* One Gemini EmbedContentRequest into {"values":[...]}. */
static void gemini_embedding(ap_buf_t *b, json_t *req, long dims_override, float *v) {
    json_int_t d = json_integer_value(json_object_get(req, "outputDimensionality"));
    size_t dims = dims_override > 0 ? (size_t)dims_override : d > 0 && d <= FAKE_MAX_DIMS ? (size_t)d : 768;
    ap_buf_t t;
    ap_buf_init(&t, 0);
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(json_object_get(req, "content"), "parts"), i, part) {
        json_t *tx = json_object_get(part, "text");
        if (!json_is_string(tx)) continue;
        if (t.len) FAKE_PUTS(&t, " ");
        fake_put(&t, json_string_value(tx), json_string_length(tx));
    }
    embed_text(v, dims, t.p ? t.p : "", t.len);
    ap_buf_free(&t);
    FAKE_PUTS(b, "{\"values\":");
    put_vector(b, v, dims, false);
    FAKE_PUTS(b, "}");
}

bool fake_gemini_embeddings(ap_buf_t *b, json_t *body, bool batch, long dims, const char **why) {
    json_t *reqs = json_object_get(body, "requests");
    if (batch && !json_array_size(reqs)) {
        *why = "* BatchEmbedContentsRequest.requests: must not be empty";
        return false;
    }
    float *v = ap_malloc(FAKE_MAX_DIMS * sizeof *v);
    if (batch) {
        FAKE_PUTS(b, "{\"embeddings\":[");
        size_t i;
        json_t *e;
        json_array_foreach(reqs, i, e) {
            if (i) FAKE_PUTS(b, ",");
            gemini_embedding(b, e, dims, v);
        }
        FAKE_PUTS(b, "]}");
    } else {
        FAKE_PUTS(b, "{\"embedding\":");
        gemini_embedding(b, body, dims, v);
        FAKE_PUTS(b, "}");
    }
    ap_free(v);
    return true;
}

/* --------------------------------------------------------------- models */

void fake_render_models(ap_buf_t *b, fake_proto_t p, const char *ids) {
    const char *list = ids                   ? ids
                       : p == FAKE_ANTHROPIC ? "claude-sonnet-4-5,claude-haiku-4-5"
                       : p == FAKE_GEMINI    ? "gemini-2.5-flash,gemini-2.5-pro,text-embedding-004"
                                             : "gpt-4o-mini,gpt-4o,text-embedding-3-small";
    fake_put_str(b, p == FAKE_GEMINI ? "{\"models\":[" : "{\"data\":[");
    const char *first = list;
    size_t first_len = 0, last_len = 0;
    const char *last = list;
    bool any = false;
    for (const char *q = list; *q;) {
        const char *e = strchr(q, ',');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        while (n && *q == ' ') q++, n--;
        while (n && q[n - 1] == ' ') n--;
        if (n) {
            if (any) FAKE_PUTS(b, ",");
            else first = q, first_len = n;
            last = q, last_len = n;
            any = true;
            if (p == FAKE_OPENAI) {
                FAKE_PUTS(b, "{\"id\":");
                fake_put_jstr(b, q, n);
                FAKE_PUTS(b, ",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"fake-upstream\"}");
            } else if (p == FAKE_ANTHROPIC) {
                FAKE_PUTS(b, "{\"type\":\"model\",\"id\":");
                fake_put_jstr(b, q, n);
                FAKE_PUTS(b, ",\"display_name\":");
                fake_put_jstr(b, q, n);
                FAKE_PUTS(b, ",\"created_at\":\"2025-01-01T00:00:00Z\"}");
            } else {
                FAKE_PUTS(b, "{\"name\":\"models/");
                ap_buf_t esc;
                ap_buf_init(&esc, 0);
                fake_put_jstr(&esc, q, n);
                fake_put(b, esc.p + 1, esc.len - 1); /* already opened the quote */
                ap_buf_free(&esc);
                FAKE_PUTS(b, ",\"displayName\":");
                fake_put_jstr(b, q, n);
                FAKE_PUTS(b, ",\"supportedGenerationMethods\":[\"generateContent\",\"streamGenerateContent\","
                             "\"embedContent\",\"batchEmbedContents\"]}");
            }
        }
        if (!e) break;
        q = e + 1;
    }
    FAKE_PUTS(b, "]");
    if (p == FAKE_OPENAI) FAKE_PUTS(b, ",\"object\":\"list\"");
    if (p == FAKE_ANTHROPIC) {
        FAKE_PUTS(b, ",\"has_more\":false,\"first_id\":");
        if (any) fake_put_jstr(b, first, first_len);
        else FAKE_PUTS(b, "null");
        FAKE_PUTS(b, ",\"last_id\":");
        if (any) fake_put_jstr(b, last, last_len);
        else FAKE_PUTS(b, "null");
    }
    FAKE_PUTS(b, "}");
}
