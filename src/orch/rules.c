/*
 * rules.c - the pure rules of the orch domain, with no store behind them
 * (so a fuzz target can link them alone): which tool names agents may
 * list, and how practice moves a skill (skill.h note 2).
 */
#include <limits.h>
#include <string.h>

#include "orch/agent.h"
#include "orch/skill.h"

const char *const ap_orch_tool_names[] = {
    "delegate_to_agent", "query_agent", "escalate_to_supervisor", "complete_task",
    "request_approval",  "remember",    "recall",                 "learn_entity",
    "query_knowledge",   NULL,
};

static bool mcp_part_ok(const char *s, size_t n) {
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool ap_orch_tool_known(const char *name) {
    if (!name) return false;
    for (const char *const *t = ap_orch_tool_names; *t; t++)
        if (strcmp(*t, name) == 0) return true;
    if (strncmp(name, "mcp:", 4) != 0) return false;
    const char *server = name + 4, *slash = strchr(server, '/');
    return slash && mcp_part_ok(server, (size_t)(slash - server)) &&
           mcp_part_ok(slash + 1, strlen(slash + 1));
}

static double unit(double v) {
    return v >= 0 ? (v <= 1 ? v : 1) : 0; /* NaN → 0 */
}

void ap_orch_skill_apply(ap_orch_skill_state_t *s, bool success, double confidence) {
    /* a damaged row (NaN, out of range, negative count) is read as the
     * nearest valid state rather than spreading */
    double c = unit(confidence), x = success ? 1.0 : 0.0;
    double rate = unit(s->success_rate), prof = unit(s->proficiency);
    int n = s->times_used < 0 ? 1 : s->times_used < INT_MAX ? s->times_used + 1 : INT_MAX;
    rate += (x - rate) / n;
    double eta = 1.0 / ((double)n + 1);
    if (eta < 0.05) eta = 0.05;
    prof += eta * (c * x - prof);
    s->success_rate = unit(rate);
    s->proficiency = unit(prof);
    s->times_used = n;
}
