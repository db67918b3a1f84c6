/*
 * policy_fuzz.c - libFuzzer target for routing rules and the difficulty
 * rule (llm/policy.c).
 *
 * FUZZ_SOURCES: src/llm/policy.c src/llm/types.c src/core/arena.c src/core/alloc.c src/core/err.c
 *
 * 1. Input: the bytes as a JSON document (routing rules) and, NUL
 *    terminated, as the text of a user message.
 * 2. Rules: ap_llm_rules_check never crashes; rules it accepts always
 *    match consistently: the matched index is in range, and the match
 *    names exactly one of a model and a policy.  A rejection names
 *    routing_rules.
 * 3. Difficulty: the score is never negative, the tier is 1..3 and agrees
 *    with the level and the score; the explanation is a terminated string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/policy.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "policy_fuzz: property failed: %s\n", #cond);                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *rules = json_loadb((const char *)data, size, 0, NULL);
    if (rules) {
        ap_err_t err = {0};
        if (ap_llm_rules_check(rules, &err) == AP_OK) {
            json_t *md = json_pack("{s:s,s:s}", "team", "research", "plan", "gold");
            ap_llm_rule_match_t m;
            if (json_is_array(rules) && ap_llm_rules_match(rules, "a", "t", md, &m)) {
                CHECK(m.index >= 0 && (size_t)m.index < json_array_size(rules));
                CHECK((m.model != NULL) != (m.policy != AP_POLICY_NONE));
                CHECK(m.quality_floor >= 0 && m.quality_floor <= 3);
            }
            json_decref(md);
        } else {
            CHECK(strstr(err.detail, "routing_rules") != NULL);
        }
        json_decref(rules);
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    ap_llm_msg_t msg = {.role = AP_LLM_USER, .content = text};
    ap_llm_req_t req = {.model = "auto", .msgs = &msg, .nmsgs = 1};
    ap_llm_difficulty_t d;
    ap_llm_difficulty(&req, &d);
    CHECK(d.score >= 0);
    CHECK(d.tier >= 1 && d.tier <= 3);
    CHECK(d.tier == (d.score >= 4 ? 3 : d.score >= 2 ? 2 : 1));
    CHECK(strcmp(d.level, d.tier == 3 ? "hard" : d.tier == 2 ? "medium" : "easy") == 0);
    CHECK(memchr(d.why, '\0', sizeof d.why) != NULL);
    free(text);
    return 0;
}
