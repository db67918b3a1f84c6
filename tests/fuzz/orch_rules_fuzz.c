/*
 * orch_rules_fuzz.c - libFuzzer target for the orch domain's pure rules:
 * tool names (ap_orch_tool_known) and the skill practice rule
 * (ap_orch_skill_apply).
 *
 * FUZZ_SOURCES: src/orch/rules.c
 *
 * 1. A name is known exactly when it is a built-in tool name or
 *    "mcp:" + 1..128 of [A-Za-z0-9_.-] + "/" + 1..128 of the same (checked
 *    against a second, independent reading of the rule).
 * 2. Whatever the state and the outcome, the rule leaves proficiency and
 *    success_rate in [0, 1], counts one more use (saturating), and moves
 *    proficiency toward c·s, never past it.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch/agent.h"
#include "orch/skill.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "orch_rules_fuzz: property failed: %s\n", #cond);         \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static int part_len(const char *s, char stop) {
    int n = 0;
    for (; s[n] && s[n] != stop; n++) {
        char c = s[n];
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", c))
            return -1;
    }
    return n;
}

static int reference(const char *name) {
    static const char *const builtin[] = {"delegate_to_agent", "query_agent",
                                          "escalate_to_supervisor", "complete_task",
                                          "request_approval", "remember", "recall",
                                          "learn_entity", "query_knowledge"};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(name, builtin[i]) == 0) return 1;
    if (strncmp(name, "mcp:", 4) != 0) return 0;
    int a = part_len(name + 4, '/');
    if (a < 1 || a > 128 || name[4 + a] != '/') return 0;
    int b = part_len(name + 5 + a, '\0');
    return b >= 1 && b <= 128;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *name = malloc(size + 1);
    memcpy(name, data, size);
    name[size] = '\0';
    CHECK(ap_orch_tool_known(name) == (reference(name) == 1));
    free(name);
    if (size >= 2 * sizeof(double) + sizeof(int) + sizeof(double) + 1) {
        ap_orch_skill_state_t s;
        double c;
        memcpy(&s.proficiency, data, sizeof(double));
        memcpy(&s.success_rate, data + 8, sizeof(double));
        memcpy(&s.times_used, data + 16, sizeof(int));
        memcpy(&c, data + 16 + sizeof(int), sizeof(double));
        bool success = data[16 + sizeof(int) + 8] & 1;
        int before = s.times_used;
        double p0 = s.proficiency >= 0 ? (s.proficiency <= 1 ? s.proficiency : 1) : 0;
        double cc = c >= 0 ? (c <= 1 ? c : 1) : 0, target = success ? cc : 0;
        ap_orch_skill_apply(&s, success, c);
        CHECK(s.proficiency >= 0 && s.proficiency <= 1);
        CHECK(s.success_rate >= 0 && s.success_rate <= 1);
        CHECK(s.times_used == (before < 0 ? 1 : before == INT_MAX ? INT_MAX : before + 1));
        /* toward the target, never past it */
        CHECK(fabs(s.proficiency - target) <= fabs(p0 - target) + 1e-12);
        CHECK((s.proficiency - target) * (p0 - target) >= -1e-12);
    }
    return 0;
}
