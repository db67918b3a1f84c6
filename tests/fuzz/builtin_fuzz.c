/*
 * builtin_fuzz.c - libFuzzer target for the built-in model's heuristic
 * (ap_builtin_complete) over text shaped like the task runner's context.
 *
 * FUZZ_SOURCES: src/llm/providers/builtin.c src/llm/embed.c src/llm/types.c src/core/arena.c src/core/alloc.c src/core/buf.c src/core/crypto.c src/core/time.c src/core/err.c
 *
 * 1. The input is split at NUL bytes into: system text, user text, and
 *    optionally a tool call's name, its arguments and its result, and a
 *    second result, of a delegate_to_agent call with the same arguments
 *    (then the conversation ends with those tool results: the composed
 *    answer, "Part of:" lines and repeated sentences included).  The tools of an agent step
 *    are offered: delegate_to_agent, query_agent, request_approval,
 *    remember, complete_task.
 * 2. Whatever the text: AP_OK; every tool call names an offered tool and
 *    carries a JSON object as arguments; delegate_to_agent and query_agent
 *    calls name an id from a listing line (invalid UTF-8 aside, which
 *    becomes '?'); the usage is not negative; the
 *    same request gives the same response (determinism); after tool
 *    results the turn is a final answer (complete_task, no new call).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/crypto.h"
#include "llm/providers/builtin.h"

static const char *part(const uint8_t **p, const uint8_t *end, char **owned) {
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    size_t n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = z ? z + 1 : end;
    *owned = s;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int inited;
    if (!inited) {
        ap_crypto_init();
        inited = 1;
    }
    const uint8_t *p = data, *end = data + size;
    char *own[6] = {0};
    const char *sys = part(&p, end, &own[0]);
    const char *usr = part(&p, end, &own[1]);
    bool with_result = p < end;
    const char *tname = with_result ? part(&p, end, &own[2]) : NULL;
    const char *targs = with_result ? part(&p, end, &own[3]) : NULL;
    const char *tres = with_result ? part(&p, end, &own[4]) : NULL;
    bool second = with_result && p < end;
    const char *tres2 = second ? part(&p, end, &own[5]) : NULL;
    ap_llm_tool_call_t calls[2] = {{"call_f1", tname, targs},
                                   {"call_f2", "delegate_to_agent", targs}};
    ap_llm_msg_t msgs[5] = {
        {.role = AP_LLM_SYSTEM, .content = sys},
        {.role = AP_LLM_USER, .content = usr},
        {.role = AP_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = second ? 2 : 1},
        {.role = AP_LLM_TOOL, .tool_call_id = "call_f1", .content = tres},
        {.role = AP_LLM_TOOL, .tool_call_id = "call_f2", .content = tres2}};
    static const char *const names[] = {"delegate_to_agent", "query_agent", "request_approval",
                                        "remember", "complete_task"};
    ap_llm_tool_t tools[5];
    for (int i = 0; i < 5; i++) tools[i] = (ap_llm_tool_t){.name = names[i]};
    ap_llm_req_t req = {.model = "builtin/agentprov-mini", .msgs = msgs,
                        .nmsgs = second ? 5 : with_result ? 4 : 2, .tools = tools, .ntools = 5};
    ap_arena_t *a = ap_arena_new(4096), *b = ap_arena_new(4096);
    ap_llm_resp_t r1, r2;
    ap_err_t err = {0};
    if (ap_builtin_complete(a, &req, &r1, &err) != AP_OK) abort();
    if (ap_builtin_complete(b, &req, &r2, &err) != AP_OK) abort();
    if (r1.usage.prompt < 0 || r1.usage.completion < 0) abort();
    if ((r1.content == NULL) != (r2.content == NULL) ||
        (r1.content && strcmp(r1.content, r2.content) != 0) || r1.ntool_calls != r2.ntool_calls)
        abort();
    for (int i = 0; i < r1.ntool_calls; i++) {
        const ap_llm_tool_call_t *tc = &r1.tool_calls[i];
        bool known = false;
        for (int k = 0; k < 5; k++) known |= strcmp(tc->name, names[k]) == 0;
        if (!known || strcmp(tc->arguments, r2.tool_calls[i].arguments) != 0) abort();
        if (with_result && (r1.ntool_calls != 1 || strcmp(tc->name, "complete_task") != 0))
            abort();
        json_t *args = json_loads(tc->arguments, 0, NULL);
        if (!json_is_object(args)) abort();
        if (!strcmp(tc->name, "delegate_to_agent") || !strcmp(tc->name, "query_agent")) {
            const char *id = json_string_value(json_object_get(args, "agent_id"));
            /* bytes that are not UTF-8 reach JSON as '?' */
            if (!id || !*id || (!strchr(id, '?') && !strstr(sys, id) && !strstr(usr, id)))
                abort();
        }
        json_decref(args);
    }
    ap_arena_free(a);
    ap_arena_free(b);
    for (int i = 0; i < 6; i++) free(own[i]);
    return 0;
}
