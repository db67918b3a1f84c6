/*
 * types.c - names and helpers of the internal LLM representation.
 */
#include "llm/types.h"

const char *ap_llm_role_name(ap_llm_role r) {
    switch (r) {
    case AP_LLM_SYSTEM: return "system";
    case AP_LLM_USER: return "user";
    case AP_LLM_ASSISTANT: return "assistant";
    case AP_LLM_TOOL: return "tool";
    }
    return "user";
}

const char *ap_llm_errkind_name(ap_llm_errkind k) {
    switch (k) {
    case AP_LLM_OK: return "ok";
    case AP_LLM_RATE_LIMITED: return "rate_limited";
    case AP_LLM_OVERLOADED: return "overloaded";
    case AP_LLM_TIMEOUT: return "timeout";
    case AP_LLM_CONTEXT_TOO_LONG: return "context_too_long";
    case AP_LLM_CONTENT_FILTERED: return "content_filtered";
    case AP_LLM_AUTH_FAILED: return "authentication_failed";
    case AP_LLM_BAD_REQUEST: return "bad_request";
    case AP_LLM_UPSTREAM: return "upstream_error";
    case AP_LLM_BUDGET_EXCEEDED: return "budget_exceeded";
    }
    return "upstream_error";
}

bool ap_llm_err_retryable(ap_llm_errkind k) {
    return k == AP_LLM_RATE_LIMITED || k == AP_LLM_OVERLOADED || k == AP_LLM_TIMEOUT ||
           k == AP_LLM_UPSTREAM;
}

static void decref(void *v) {
    json_decref(v);
}

json_t *ap_llm_json_keep(ap_arena_t *a, json_t *v) {
    if (!v) return NULL;
    json_incref(v);
    ap_arena_cleanup(a, decref, v);
    return v;
}
