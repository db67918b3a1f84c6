/*
 * policy.h - routing policies: what a request needs, how hard it looks,
 * which routing rule applies, and how candidate models are ranked.
 * Pure functions (no I/O, no globals); the router (router.c) feeds them
 * the catalog and applies the result.  docs/llm-gateway.md states the
 * rules for people.
 *
 * 1. Policies: fixed (the model named, no fallbacks), fallback (the model
 *    named, then the fallback chain), cheapest, fastest, auto (cheapest at
 *    the quality tier the request's difficulty calls for).
 * 2. Needs: tools offered → the tools capability; an image part → vision;
 *    estimated prompt tokens (characters / 4) + max_tokens must fit the
 *    context window (unknown windows pass); a quality floor (basic < good
 *    < best) from the configuration, a rule or the request metadata.
 * 3. Difficulty (auto), a score from the request:
 *      prompt > 500 tokens +1, > 2000 +2 (instead), > 8000 +3 (instead);
 *      a fenced code block (```) +2, else code-like text +1;
 *      each distinct reasoning cue +2, at most +4 in all ("prove",
 *      "step by step", "analyze"/"analyse", "derive", "reason about",
 *      "explain why", "trade-off"/"tradeoff", "compare", "optimi[sz]e",
 *      "debug", "algorithm", "theorem", "complexity");
 *      tools offered +1 (more than 5: +2);
 *      more than 6 messages +1.
 *    0–1 easy → basic tier, 2–3 medium → good, 4 and more hard → best.
 * 4. Ranking, among candidates meeting the needs:
 *      cheapest: estimated cost of the call at list prices (unpriced
 *        models after all priced ones), then higher quality, then id;
 *      fastest: speed tier (fast, standard, slow), then size (tiny … xl),
 *        then cost, then id;
 *      auto: cheapest among those at or above the difficulty tier (and
 *        the floor); when none is, the highest quality available.
 * 5. Routing rules: [{"when": {"agent_id": s, "task_type": s,
 *    "metadata": {k: s}}, "model": s | "policy": s, "quality_floor": s}],
 *    at most 50, applied in order; the first whose every condition holds
 *    wins; a rule without "when" always matches (the configuration's
 *    policy, written last).
 */
#ifndef AP_LLM_POLICY_H
#define AP_LLM_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "llm/types.h"

typedef enum {
    AP_POLICY_NONE = 0,
    AP_POLICY_FIXED,
    AP_POLICY_FALLBACK,
    AP_POLICY_CHEAPEST,
    AP_POLICY_FASTEST,
    AP_POLICY_AUTO,
} ap_llm_policy;

#define AP_LLM_RULES_MAX 50

/* "fixed" … "auto"; false for anything else. */
bool ap_llm_policy_parse(const char *s, ap_llm_policy *out);
const char *ap_llm_policy_name(ap_llm_policy p);
/* "basic" 1, "good" 2, "best" 3; 0 for anything else. */
int ap_llm_tier_parse(const char *s);
const char *ap_llm_tier_name(int tier);

typedef struct {
    bool tools, vision;
    int64_t prompt_tokens; /* estimate */
    int64_t output_tokens; /* max_tokens, 0 when not given */
    int quality_floor;     /* 0: none */
} ap_llm_needs_t;

/* Needs of a request (decision 2); quality_floor is left 0. */
void ap_llm_needs_of(const ap_llm_req_t *req, ap_llm_needs_t *out);

typedef struct {
    int score;
    int tier;       /* 1 basic, 2 good, 3 best */
    const char *level; /* "easy" | "medium" | "hard" */
    char why[160];  /* the signals that scored: "code block, cue \"prove\"" or "short" */
} ap_llm_difficulty_t;

void ap_llm_difficulty(const ap_llm_req_t *req, ap_llm_difficulty_t *out);

/* Checks the shape of routing rules (decision 5); names the bad rule. */
ap_rc ap_llm_rules_check(json_t *rules, ap_err_t *err);

typedef struct {
    int index;            /* of the rule in the array */
    const char *model;    /* or NULL */
    ap_llm_policy policy; /* NONE when the rule names a model */
    int quality_floor;    /* 0: none */
    bool has_when;
} ap_llm_rule_match_t;

/* The first rule matching (rules already checked); false when none. */
bool ap_llm_rules_match(json_t *rules, const char *agent_id, const char *task_type,
                        json_t *metadata, ap_llm_rule_match_t *out);

/* A model as the ranking sees it. */
typedef struct {
    const char *id;
    bool priced;
    double in_per_mtok, out_per_mtok;
    int quality; /* 1..3 */
    int speed;   /* 0 fast, 1 standard, 2 slow */
    int size;    /* 0 tiny … 4 xl */
    bool tools, vision;
    int64_t context_window; /* 0: unknown */
} ap_llm_cand_t;

/* Orders the candidates meeting needs for policy p (cheapest, fastest or
 * auto; difficulty tier for auto in min_tier) into order[] (indices into
 * c, at most max); returns how many.  *relaxed tells that no candidate
 * reached the tier floor and the best available were taken instead. */
int ap_llm_rank(ap_llm_policy p, const ap_llm_needs_t *needs, int min_tier,
                const ap_llm_cand_t *c, int n, int *order, int max, bool *relaxed);

/* Speed and size ranks of the catalog's tier words (unknown: middle). */
int ap_llm_speed_rank(const char *speed_tier);
int ap_llm_size_rank(const char *size_category);

#endif
