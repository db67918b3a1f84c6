/*
 * policy.c - routing policies (policy.h): needs, difficulty, rules,
 * ranking.
 *
 * 1. The difficulty scan reads at most the first 64 KiB of each message's
 *    text, so an enormous prompt costs no more than a large one (its
 *    length already makes it hard).
 * 2. Ranking is a stable insertion sort over at most a few hundred
 *    candidates: no allocation, deterministic ties (by id).
 */
#include "llm/policy.h"

#include <stdio.h>
#include <string.h>

#define SCAN_MAX (64u * 1024u)

static const char *const policy_names[] = {NULL, "fixed", "fallback", "cheapest", "fastest", "auto"};

bool ap_llm_policy_parse(const char *s, ap_llm_policy *out) {
    if (!s) return false;
    for (int i = 1; i <= AP_POLICY_AUTO; i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *out = (ap_llm_policy)i;
            return true;
        }
    return false;
}

const char *ap_llm_policy_name(ap_llm_policy p) {
    return p > AP_POLICY_NONE && p <= AP_POLICY_AUTO ? policy_names[p] : "none";
}

int ap_llm_tier_parse(const char *s) {
    if (!s) return 0;
    if (strcmp(s, "basic") == 0) return 1;
    if (strcmp(s, "good") == 0) return 2;
    if (strcmp(s, "best") == 0) return 3;
    return 0;
}

const char *ap_llm_tier_name(int tier) {
    return tier >= 3 ? "best" : tier == 2 ? "good" : "basic";
}

int ap_llm_speed_rank(const char *t) {
    if (!t) return 1;
    return strcmp(t, "fast") == 0 ? 0 : strcmp(t, "slow") == 0 ? 2 : 1;
}

int ap_llm_size_rank(const char *t) {
    static const char *const sizes[] = {"tiny", "small", "medium", "large", "xl"};
    for (int i = 0; t && i < 5; i++)
        if (strcmp(t, sizes[i]) == 0) return i;
    return 2;
}

/* ---- needs ------------------------------------------------------------- */

static size_t text_len(const char *s) {
    return s ? strnlen(s, SCAN_MAX) : 0;
}

static bool is_image_part(json_t *part) {
    const char *t = json_string_value(json_object_get(part, "type"));
    return t && (strcmp(t, "image_url") == 0 || strcmp(t, "image") == 0 ||
                 strcmp(t, "input_image") == 0);
}

void ap_llm_needs_of(const ap_llm_req_t *req, ap_llm_needs_t *out) {
    memset(out, 0, sizeof *out);
    int64_t chars = 0;
    for (int i = 0; i < req->nmsgs; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->content) chars += (int64_t)strlen(m->content);
        size_t k;
        json_t *part;
        json_array_foreach(m->parts, k, part) {
            const char *t = json_string_value(json_object_get(part, "text"));
            if (t) chars += (int64_t)strlen(t);
            if (is_image_part(part)) out->vision = true;
        }
        for (int j = 0; j < m->ntool_calls; j++)
            if (m->tool_calls[j].arguments) chars += (int64_t)strlen(m->tool_calls[j].arguments);
    }
    out->prompt_tokens = (chars + 3) / 4;
    out->output_tokens = req->max_tokens > 0 ? req->max_tokens : 0;
    out->tools = req->ntools > 0;
}

/* ---- difficulty -------------------------------------------------------- */

static const char *const cues[] = {"prove",     "step by step", "analyze",      "analyse",
                                   "derive",    "reason about", "explain why",  "trade-off",
                                   "tradeoff",  "compare",      "optimize",     "optimise",
                                   "debug",     "algorithm",    "theorem",      "complexity"};
#define NCUES (sizeof cues / sizeof cues[0])

static const char *const code_marks[] = {"#include", "def ", "function ", "=>", "();", "};",
                                         "public static", "SELECT "};

static bool scan_has(const char *s, const char *needle) {
    if (!s) return false;
    size_t n = text_len(s);
    if (n < strlen(s)) { /* a huge text: look at its first SCAN_MAX bytes only */
        size_t nl = strlen(needle);
        for (size_t i = 0; i + nl <= n; i++)
            if (strncasecmp(s + i, needle, nl) == 0) return true;
        return false;
    }
    return strcasestr(s, needle) != NULL;
}

static void why_add(ap_llm_difficulty_t *d, const char *fmt, const char *arg) {
    size_t n = strlen(d->why);
    if (n + 3 >= sizeof d->why) return;
    if (n) {
        memcpy(d->why + n, ", ", 3);
        n += 2;
    }
    snprintf(d->why + n, sizeof d->why - n, fmt, arg);
}

void ap_llm_difficulty(const ap_llm_req_t *req, ap_llm_difficulty_t *d) {
    memset(d, 0, sizeof *d);
    ap_llm_needs_t needs;
    ap_llm_needs_of(req, &needs);
    int s = 0;
    if (needs.prompt_tokens > 8000) s += 3, why_add(d, "%s", "very long prompt");
    else if (needs.prompt_tokens > 2000) s += 2, why_add(d, "%s", "long prompt");
    else if (needs.prompt_tokens > 500) s += 1, why_add(d, "%s", "medium prompt");
    bool block = false, code = false;
    bool seen[NCUES] = {0};
    int cue_points = 0;
    for (int i = 0; i < req->nmsgs; i++) {
        const ap_llm_msg_t *m = &req->msgs[i];
        if (m->role == AP_LLM_ASSISTANT || m->role == AP_LLM_TOOL) continue;
        const char *texts[9];
        int nt = 0;
        if (m->content) texts[nt++] = m->content;
        size_t k;
        json_t *part;
        json_array_foreach(m->parts, k, part) {
            const char *t = json_string_value(json_object_get(part, "text"));
            if (t && nt < 9) texts[nt++] = t;
        }
        for (int t = 0; t < nt; t++) {
            if (!block && scan_has(texts[t], "```")) block = true;
            for (size_t c = 0; !code && c < sizeof code_marks / sizeof code_marks[0]; c++)
                if (scan_has(texts[t], code_marks[c])) code = true;
            for (size_t c = 0; c < NCUES; c++)
                if (!seen[c] && scan_has(texts[t], cues[c])) {
                    seen[c] = true;
                    if (cue_points < 4) {
                        cue_points += 2;
                        why_add(d, "cue \"%s\"", cues[c]);
                    }
                }
        }
    }
    if (block) s += 2, why_add(d, "%s", "code block");
    else if (code) s += 1, why_add(d, "%s", "code");
    s += cue_points;
    if (req->ntools > 5) s += 2, why_add(d, "%s", "many tools");
    else if (req->ntools > 0) s += 1, why_add(d, "%s", "tools");
    if (req->nmsgs > 6) s += 1, why_add(d, "%s", "long conversation");
    if (!d->why[0]) snprintf(d->why, sizeof d->why, "short, plain");
    d->score = s;
    d->tier = s >= 4 ? 3 : s >= 2 ? 2 : 1;
    d->level = s >= 4 ? "hard" : s >= 2 ? "medium" : "easy";
}

/* ---- rules ------------------------------------------------------------- */

static const char *rule_problem(json_t *r) {
    if (!json_is_object(r)) return "is not an object";
    json_t *model = json_object_get(r, "model"), *policy = json_object_get(r, "policy");
    json_t *floor = json_object_get(r, "quality_floor"), *when = json_object_get(r, "when");
    if (model && !json_is_string(model)) return "has a \"model\" that is not a string";
    if (policy) {
        ap_llm_policy p;
        if (!ap_llm_policy_parse(json_string_value(policy), &p))
            return "has a \"policy\" other than fixed, fallback, cheapest, fastest or auto";
    }
    if (!model == !policy) return "needs exactly one of \"model\" and \"policy\"";
    if (floor && !ap_llm_tier_parse(json_string_value(floor)))
        return "has a \"quality_floor\" other than basic, good or best";
    if (when) {
        if (!json_is_object(when)) return "has a \"when\" that is not an object";
        const char *k;
        json_t *v;
        json_object_foreach(when, k, v) {
            if (strcmp(k, "agent_id") == 0 || strcmp(k, "task_type") == 0) {
                if (!json_is_string(v)) return "has a \"when\" condition that is not a string";
            } else if (strcmp(k, "metadata") == 0) {
                if (!json_is_object(v)) return "has a \"when.metadata\" that is not an object";
                const char *mk;
                json_t *mv;
                json_object_foreach(v, mk, mv) {
                    if (!json_is_string(mv)) return "has a \"when.metadata\" value that is not a string";
                }
            } else
                return "has a \"when\" key other than agent_id, task_type and metadata";
        }
    }
    size_t known = (model ? 1u : 0u) + (policy ? 1u : 0u) + (floor ? 1u : 0u) + (when ? 1u : 0u);
    if (json_object_size(r) > known)
        return "has a member other than \"when\", \"model\", \"policy\" and \"quality_floor\"";
    return NULL;
}

ap_rc ap_llm_rules_check(json_t *rules, ap_err_t *err) {
    if (!rules || json_is_null(rules)) return AP_OK;
    if (!json_is_array(rules))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid routing rules",
                          "give routing_rules as an array of rules", "routing_rules is not an array");
    if (json_array_size(rules) > AP_LLM_RULES_MAX)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "too many routing rules",
                          "give at most 50 rules", "routing_rules has %zu items",
                          json_array_size(rules));
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        const char *why = rule_problem(r);
        if (why)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid routing rule",
                              "give each rule as {\"when\": {\"agent_id\"|\"task_type\"|"
                              "\"metadata\": …}, \"model\": \"provider/model\"} or with "
                              "\"policy\": \"cheapest\"|\"fastest\"|\"auto\"|\"fixed\"|\"fallback\"",
                              "routing_rules[%zu] %s", i, why);
    }
    return AP_OK;
}

static bool str_is(json_t *want, const char *have) {
    return have && strcmp(json_string_value(want), have) == 0;
}

bool ap_llm_rules_match(json_t *rules, const char *agent_id, const char *task_type,
                        json_t *metadata, ap_llm_rule_match_t *out) {
    memset(out, 0, sizeof *out);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        json_t *when = json_object_get(r, "when");
        bool ok = true;
        json_t *v;
        if ((v = json_object_get(when, "agent_id")) && !str_is(v, agent_id)) ok = false;
        if (ok && (v = json_object_get(when, "task_type")) && !str_is(v, task_type)) ok = false;
        json_t *md = json_object_get(when, "metadata");
        const char *k;
        json_t *mv;
        if (ok && md) json_object_foreach(md, k, mv) {
            json_t *have = json_object_get(metadata, k);
            if (!json_is_string(have) || !str_is(mv, json_string_value(have))) {
                ok = false;
                break;
            }
        }
        if (!ok) continue;
        out->index = (int)i;
        out->model = json_string_value(json_object_get(r, "model"));
        if (!out->model) ap_llm_policy_parse(json_string_value(json_object_get(r, "policy")),
                                             &out->policy);
        out->quality_floor = ap_llm_tier_parse(json_string_value(json_object_get(r, "quality_floor")));
        out->has_when = when && json_object_size(when) > 0;
        return true;
    }
    return false;
}

/* ---- ranking ----------------------------------------------------------- */

static bool meets(const ap_llm_cand_t *c, const ap_llm_needs_t *n) {
    if (n->tools && !c->tools) return false;
    if (n->vision && !c->vision) return false;
    if (c->context_window > 0 && n->prompt_tokens + n->output_tokens > c->context_window)
        return false;
    return true;
}

static double cost(const ap_llm_cand_t *c, const ap_llm_needs_t *n) {
    int64_t out = n->output_tokens > 0 ? n->output_tokens : 1024;
    return ((double)n->prompt_tokens * c->in_per_mtok + (double)out * c->out_per_mtok) / 1e6;
}

/* < 0 when a ranks before b. */
static int cmp(ap_llm_policy p, const ap_llm_needs_t *n, const ap_llm_cand_t *a,
               const ap_llm_cand_t *b) {
    if (p == AP_POLICY_FASTEST) {
        if (a->speed != b->speed) return a->speed - b->speed;
        if (a->size != b->size) return a->size - b->size;
    }
    if (a->priced != b->priced) return a->priced ? -1 : 1; /* unpriced: unknown, not cheap */
    if (a->priced) {
        double ca = cost(a, n), cb = cost(b, n);
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    if (a->quality != b->quality) return b->quality - a->quality;
    return strcmp(a->id, b->id);
}

/* Selection of the best `max` (max is small): no allocation, stable. */
int ap_llm_rank(ap_llm_policy p, const ap_llm_needs_t *needs, int min_tier,
                const ap_llm_cand_t *c, int n, int *order, int max, bool *relaxed) {
    *relaxed = false;
    int floor = needs->quality_floor > min_tier ? needs->quality_floor : min_tier;
    int eligible = 0;
    for (int i = 0; i < n; i++)
        if (meets(&c[i], needs) && c[i].quality >= floor) eligible++;
    if (eligible == 0) *relaxed = floor > 1; /* none at the floor: the best available */
    int k = 0;
    while (k < max) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (!meets(&c[i], needs)) continue;
            if (!*relaxed && c[i].quality < floor) continue;
            bool taken = false;
            for (int j = 0; j < k && !taken; j++) taken = order[j] == i;
            if (taken) continue;
            if (best < 0) {
                best = i;
                continue;
            }
            const ap_llm_cand_t *a = &c[i], *b = &c[best];
            int d = *relaxed && a->quality != b->quality ? b->quality - a->quality
                                                         : cmp(p, needs, a, b);
            if (d < 0) best = i;
        }
        if (best < 0) break;
        order[k++] = best;
    }
    return k;
}
