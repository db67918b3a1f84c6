/*
 * builtin.c - the offline `builtin` provider: a deterministic heuristic
 * behind the provider interface.  docs/builtin-model.md is the user-facing
 * description; this list is the why of the code.
 *
 * 1. One decision per turn, first match wins: tool results at the end of
 *    the conversation → a final answer built from them; else delegation
 *    (delegate_to_agent offered, agents listed, some part matches); else
 *    facts to record (remember/learn_entity offered, "X is Y" / "X: Y" in
 *    the user's message); else a request for approval (request_approval
 *    offered, the objective speaks of approval); else an extractive
 *    answer, or, when nothing is relevant and colleagues are listed, a
 *    query_agent call to the best-matching one.  Because a turn that
 *    ends in tool results always produces a final answer, the heuristic
 *    cannot loop on its own tool calls.  Several delegation results are
 *    composed into a brief (a section per part, naming its agent, no
 *    sentence twice); a delegated part that finds nothing by its own terms
 *    is answered from the rest of its "Part of:" objective.
 * 2. Matching is by terms: lower-cased words minus stopwords, through a
 *    light suffix-stripping stemmer so that "write", "writing" and
 *    "writer" meet.  Term sets are small arrays (a question has few terms),
 *    and a question's terms fit a 64-bit mask, so scoring a context
 *    sentence is one pass over its words.
 * 3. The context is read through plain-text conventions the orchestration
 *    layer follows: section headings in the system message ("# Recalled
 *    memories", "Knowledge facts:"), agent listing lines, an optional
 *    "Objective:" label in the user's message.  A system message without
 *    headings is context as a whole (the gateway case).
 * 4. Every tie is broken by order of appearance and ids come from a
 *    SHA-256 of the request, so the same request gives the same bytes.
 * 5. Odd input is never an error: missing content, invalid UTF-8 (replaced
 *    by '?' before it reaches JSON), unknown schemas, tool results without
 *    a matching call all degrade to a plainer answer.
 * 6. Streaming runs the same computation and slices the result, so a
 *    stream and a complete call cannot disagree.
 */
#include "llm/providers/builtin.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/time.h"
#include "llm/embed.h"

#define MAX_TERM 48 /* bytes of one term; longer words are cut */
#define MAX_QTERMS 64
#define MAX_PARTS 16
#define MAX_TOPIC_WORDS 12
#define ARG_CHUNK 16 /* bytes per streamed argument fragment */

#define JFLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6) | JSON_ENCODE_ANY)

typedef struct {
    const char *p;
    size_t n;
} span_t;

/* ---- small text helpers ------------------------------------------------ */

static bool is_word(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_sp(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static span_t sp(const char *s) {
    return (span_t){s ? s : "", s ? strlen(s) : 0};
}

static span_t trim(span_t s) {
    while (s.n && is_sp((unsigned char)s.p[0])) s.p++, s.n--;
    while (s.n && is_sp((unsigned char)s.p[s.n - 1])) s.n--;
    return s;
}

/* Trims spaces and trailing sentence punctuation. */
static span_t trim_punct(span_t s) {
    s = trim(s);
    while (s.n && strchr(".,;:!", s.p[s.n - 1])) s.n--;
    return trim(s);
}

static bool has_word(span_t s) {
    for (size_t i = 0; i < s.n; i++)
        if (is_word((unsigned char)s.p[i])) return true;
    return false;
}

static bool istarts(span_t s, const char *lit) {
    size_t k = strlen(lit);
    return s.n >= k && strncasecmp(s.p, lit, k) == 0;
}

static bool span_ieq(span_t s, const char *lit) {
    return s.n == strlen(lit) && strncasecmp(s.p, lit, s.n) == 0;
}

static char *dup(ap_arena_t *a, span_t s) {
    return ap_arena_strndup(a, s.p, s.n);
}

/* Number of whitespace-separated words. */
static int64_t count_words(const char *s) {
    int64_t n = 0;
    for (bool in = false; s && *s; s++) {
        bool w = !is_sp((unsigned char)*s);
        if (w && !in) n++;
        in = w;
    }
    return n;
}

static int64_t ceil4(size_t n) {
    return (int64_t)((n + 3) / 4);
}

static bool next_line(span_t text, size_t *pos, span_t *line) {
    if (*pos >= text.n) return false;
    const char *s = text.p + *pos;
    const char *nl = memchr(s, '\n', text.n - *pos);
    size_t n = nl ? (size_t)(nl - s) : text.n - *pos;
    *line = (span_t){s, n};
    *pos += n + 1;
    return true;
}

/* Removes a list marker: "- ", "* ", "• ", "1. ", "2) ". */
static span_t strip_bullet(span_t s) {
    s = trim(s);
    if (s.n >= 2 && strchr("-*+", s.p[0]) && is_sp((unsigned char)s.p[1]))
        return trim((span_t){s.p + 1, s.n - 1});
    if (s.n >= 4 && memcmp(s.p, "\xe2\x80\xa2", 3) == 0) return trim((span_t){s.p + 3, s.n - 3});
    size_t i = 0;
    while (i < s.n && i < 3 && s.p[i] >= '0' && s.p[i] <= '9') i++;
    if (i && i + 1 < s.n && (s.p[i] == '.' || s.p[i] == ')') && is_sp((unsigned char)s.p[i + 1]))
        return trim((span_t){s.p + i + 1, s.n - i - 1});
    return s;
}

/* Removes the first word (and a comma after it). */
static span_t drop_word(span_t s) {
    size_t i = 0;
    while (i < s.n && !is_sp((unsigned char)s.p[i]) && s.p[i] != ',') i++;
    while (i < s.n && (is_sp((unsigned char)s.p[i]) || s.p[i] == ',')) i++;
    return (span_t){s.p + i, s.n - i};
}

/* The first word, lower-cased, without trailing punctuation, into buf. */
static const char *first_word(span_t s, char *buf, size_t cap) {
    size_t i = 0, k = 0;
    while (i < s.n && !is_sp((unsigned char)s.p[i]) && k + 1 < cap)
        buf[k++] = (char)lower((unsigned char)s.p[i++]);
    while (k && strchr(",.:;!?", buf[k - 1])) k--;
    buf[k] = '\0';
    return buf;
}

static bool in_list(const char *w, const char *const *list) {
    for (; *list; list++)
        if (strcmp(w, *list) == 0) return true;
    return false;
}

/* An arena string builder. */
typedef struct {
    ap_arena_t *a;
    char *p;
    size_t n, cap;
} sb_t;

static void sb_add(sb_t *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = ap_arena_alloc(b->a, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sb_t *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static const char *sb_str(sb_t *b) {
    return b->p ? b->p : "";
}

/* Appends s as a sentence: first letter upper-cased, a final period when
 * it ends without punctuation. */
static void sb_sentence(sb_t *b, span_t s) {
    s = trim(s);
    if (!s.n) return;
    if (b->n && !is_sp((unsigned char)b->p[b->n - 1])) sb_add(b, " ", 1);
    char c = s.p[0];
    if (c >= 'a' && c <= 'z') {
        c = (char)(c - 32);
        sb_add(b, &c, 1);
        sb_add(b, s.p + 1, s.n - 1);
    } else {
        sb_add(b, s.p, s.n);
    }
    if (!strchr(".!?\"')]", s.p[s.n - 1])) sb_add(b, ".", 1);
}

/* ---- terms: words minus stopwords, lightly stemmed --------------------- */

static const char *const stopwords[] = {
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from",
    "had", "has", "have", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "just", "know", "me", "more", "most", "my", "no", "nor", "not", "of", "on",
    "or", "our", "out", "over", "please", "she", "should", "so", "some", "such", "tell", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to",
    "too", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your", NULL,
};

static bool ends(const char *w, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n > k && memcmp(w + n - k, suf, k) == 0;
}

/* A light suffix stripper for English (not Porter): plurals, -ing, -ed,
 * -er, -or, -ise/-ize, -yse/-ysis, final e; "writing", "write" and
 * "writer" all give "writ".  Words with non-ASCII bytes are left as they
 * are.  Returns the new length (w is edited in place, never grown past
 * n + 1). */
static size_t stem(char *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)w[i] >= 0x80 || (w[i] >= '0' && w[i] <= '9')) return n;
    if (n <= 3) return n;
    if (ends(w, n, "ies") && n >= 5) {
        n -= 3;
        w[n++] = 'y';
    } else if (ends(w, n, "sses")) {
        n -= 2;
    } else if (ends(w, n, "s") && !ends(w, n, "ss") && !ends(w, n, "us") && !ends(w, n, "is")) {
        n -= 1;
    }
    bool cut = false;
    static const char *const sufs[] = {"ing", "ed", "er", "or"};
    for (size_t i = 0; i < sizeof sufs / sizeof *sufs && !cut; i++) {
        size_t k = strlen(sufs[i]);
        if (ends(w, n, sufs[i]) && n - k >= 3) {
            n -= k;
            cut = true;
        }
    }
    if (cut && n >= 4 && w[n - 1] == w[n - 2] && !strchr("aeiouylsz", w[n - 1])) n--;
    if (ends(w, n, "ysis") && n >= 6) {
        n -= 4;
        w[n++] = 'y';
        w[n++] = 'z';
    } else if ((ends(w, n, "yse") || ends(w, n, "yze") || ends(w, n, "ise") || ends(w, n, "ize")) &&
               n >= 6) {
        w[n - 2] = 'z';
        n -= 1;
    } else if (cut && (ends(w, n, "ys") || ends(w, n, "is")) && n >= 5) {
        w[n - 1] = 'z';
    }
    if (n >= 4 && w[n - 1] == 'e') n--;
    return n;
}

/* The term of one token into out[MAX_TERM]; 0 when it is not a term
 * (stopword, or a single letter). */
static size_t term_of(const char *tok, size_t n, char *out) {
    if (n >= MAX_TERM) n = MAX_TERM - 1;
    for (size_t i = 0; i < n; i++) out[i] = (char)lower((unsigned char)tok[i]);
    out[n] = '\0';
    if (n == 1 && !(out[0] >= '0' && out[0] <= '9')) return 0;
    if (in_list(out, stopwords)) return 0;
    n = stem(out, n);
    out[n] = '\0';
    return n;
}

/* Iterates the tokens of s: call with *pos = 0 until it returns false. */
static bool next_token(span_t s, size_t *pos, span_t *tok) {
    size_t i = *pos;
    while (i < s.n && !is_word((unsigned char)s.p[i])) i++;
    if (i >= s.n) return false;
    size_t b = i;
    while (i < s.n && is_word((unsigned char)s.p[i])) i++;
    *tok = (span_t){s.p + b, i - b};
    *pos = i;
    return true;
}

typedef struct {
    char **v;
    int n, cap;
} terms_t;

static int terms_find(const terms_t *t, const char *w) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->v[i], w) == 0) return i;
    return -1;
}

/* Adds the distinct terms of s (up to max in all). */
static void terms_add_text(ap_arena_t *a, terms_t *t, span_t s, int max) {
    size_t pos = 0;
    span_t tok;
    char buf[MAX_TERM + 2];
    while (t->n < max && next_token(s, &pos, &tok)) {
        if (!term_of(tok.p, tok.n, buf) || terms_find(t, buf) >= 0) continue;
        if (t->n == t->cap) {
            int cap = t->cap ? t->cap * 2 : 8;
            char **v = ap_arena_alloc(a, (size_t)cap * sizeof *v);
            if (t->n) memcpy(v, t->v, (size_t)t->n * sizeof *v);
            t->v = v;
            t->cap = cap;
        }
        t->v[t->n++] = ap_arena_strdup(a, buf);
    }
}

/* Terms of s that are in q, as a bit mask over q's indexes. */
static uint64_t match_mask(const terms_t *q, span_t s) {
    uint64_t m = 0;
    size_t pos = 0;
    span_t tok;
    char buf[MAX_TERM + 2];
    while (next_token(s, &pos, &tok)) {
        if (!term_of(tok.p, tok.n, buf)) continue;
        int i = terms_find(q, buf);
        if (i >= 0 && i < 64) m |= (uint64_t)1 << i;
    }
    return m;
}

/* ---- sentences ---------------------------------------------------------- */

static bool is_abbrev(span_t line, size_t dot) {
    static const char *const abbrevs[] = {"etc", "vs", "mr", "mrs", "ms", "dr", "st", "inc",
                                          "ltd", "jr", "sr", "no", "fig", "approx", NULL};
    size_t b = dot;
    while (b > 0 && is_word((unsigned char)line.p[b - 1])) b--;
    size_t n = dot - b;
    if (n == 1 && !(line.p[b] >= '0' && line.p[b] <= '9')) return true; /* initials, e.g. */
    if (n == 0 || n > 6) return false;
    char w[8];
    for (size_t i = 0; i < n; i++) w[i] = (char)lower((unsigned char)line.p[b + i]);
    w[n] = '\0';
    return in_list(w, abbrevs);
}

typedef void (*sentence_fn)(void *ud, span_t s);

/* Splits one line into sentences at . ! ? followed by a space (not after
 * an abbreviation or an initial); list markers are removed. */
static void each_sentence(span_t line, sentence_fn fn, void *ud) {
    line = strip_bullet(line);
    size_t b = 0;
    for (size_t i = 0; i < line.n; i++) {
        char c = line.p[i];
        if (c != '.' && c != '!' && c != '?') continue;
        if (i + 1 < line.n && !is_sp((unsigned char)line.p[i + 1])) continue;
        if (c == '.' && is_abbrev(line, i)) continue;
        span_t s = trim((span_t){line.p + b, i + 1 - b});
        if (has_word(s)) fn(ud, s);
        b = i + 1;
    }
    span_t s = trim((span_t){line.p + b, line.n - b});
    if (has_word(s)) fn(ud, s);
}

/* ---- the conventions of the context ----------------------------------- */

typedef enum { SEC_OTHER, SEC_CONTEXT, SEC_AGENTS } sec_kind;

/* "# Title" / "## Title", or a short line "Title:" with nothing after. */
static bool heading(span_t line, span_t *title) {
    span_t s = trim(line);
    if (s.n && s.p[0] == '#') {
        size_t i = 0;
        while (i < s.n && s.p[i] == '#') i++;
        if (i < s.n && !is_sp((unsigned char)s.p[i])) return false; /* "#1 priority" */
        *title = trim((span_t){s.p + i, s.n - i});
        return true;
    }
    if (s.n < 2 || s.n > 48 || s.p[s.n - 1] != ':' || s.p[0] == '-' || s.p[0] == '*') return false;
    int words = 1;
    for (size_t i = 0; i + 1 < s.n; i++) {
        if (s.p[i] == ':') return false;
        words += is_sp((unsigned char)s.p[i]) && !is_sp((unsigned char)s.p[i + 1]);
    }
    if (words > 5) return false;
    *title = (span_t){s.p, s.n - 1};
    return true;
}

static bool contains_ci(span_t s, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= s.n; i++)
        if (strncasecmp(s.p + i, needle, k) == 0) return true;
    return false;
}

static sec_kind classify(span_t title) {
    static const char *const ctx[] = {"memor", "knowledge", "fact", "context", "document",
                                      "note", "background", "information", "reference",
                                      "result", "history", "finding", NULL};
    static const char *const agents[] = {"agent", "team", "subordinate", "member", "worker",
                                         NULL};
    for (const char *const *k = ctx; *k; k++)
        if (contains_ci(title, *k)) return SEC_CONTEXT;
    for (const char *const *k = agents; *k; k++)
        if (contains_ci(title, *k)) return SEC_AGENTS;
    return SEC_OTHER;
}

typedef struct {
    const char *id, *name, *role;
    terms_t caps, other; /* capability terms; name and role terms */
} agent_t;

/* - agent <id> "<name>" (<role>): capabilities: a, b, c
 * The bullet, the name, the role and the word "capabilities" are
 * optional; the colon after the id/name/role is not, so a sentence that
 * merely starts with "Agent" is not a listing. */
static bool listing_spans(span_t line, const char *kw, span_t *id, span_t *name, span_t *role,
                          span_t *caps) {
    span_t s = strip_bullet(line);
    size_t k = strlen(kw);
    if (!istarts(s, kw) || s.n < k + 2 || !is_sp((unsigned char)s.p[k])) return false;
    s = trim((span_t){s.p + k, s.n - k});
    size_t i = 0;
    while (i < s.n && !is_sp((unsigned char)s.p[i]) && !strchr(":\"(", s.p[i])) i++;
    if (!i) return false;
    *id = (span_t){s.p, i};
    *name = *role = (span_t){"", 0};
    s = trim((span_t){s.p + i, s.n - i});
    if (s.n && s.p[0] == '"') {
        const char *q = memchr(s.p + 1, '"', s.n - 1);
        if (!q) return false;
        *name = (span_t){s.p + 1, (size_t)(q - s.p - 1)};
        s = trim((span_t){q + 1, s.n - (size_t)(q + 1 - s.p)});
    }
    if (s.n && s.p[0] == '(') {
        const char *q = memchr(s.p, ')', s.n);
        if (!q) return false;
        *role = (span_t){s.p + 1, (size_t)(q - s.p - 1)};
        s = trim((span_t){q + 1, s.n - (size_t)(q + 1 - s.p)});
    }
    if (!s.n || s.p[0] != ':') return false;
    s = trim((span_t){s.p + 1, s.n - 1});
    if (istarts(s, "capabilities")) {
        s = trim((span_t){s.p + 12, s.n - 12});
        if (s.n && s.p[0] == ':') s = trim((span_t){s.p + 1, s.n - 1});
    }
    *caps = s;
    return true;
}

/* Agent listing lines (delegation targets) and colleague lines
 * ("- colleague <id> …", query_agent targets): never knowledge. */
static bool is_agent_line(span_t line) {
    span_t id, name, role, caps;
    return listing_spans(line, "agent", &id, &name, &role, &caps) ||
           listing_spans(line, "colleague", &id, &name, &role, &caps);
}

static bool parse_agent(ap_arena_t *a, span_t line, const char *kw, agent_t *ag) {
    span_t id, name, role, caps;
    if (!listing_spans(line, kw, &id, &name, &role, &caps)) return false;
    memset(ag, 0, sizeof *ag);
    ag->id = dup(a, id);
    ag->name = dup(a, name);
    ag->role = dup(a, role);
    terms_add_text(a, &ag->caps, caps, 64);
    terms_add_text(a, &ag->other, name, 64);
    terms_add_text(a, &ag->other, role, 64);
    return true;
}

/* ---- the request, as the heuristic sees it ----------------------------- */

typedef struct {
    ap_arena_t *a;
    const ap_llm_req_t *req;
    const char **text; /* per message: content, or the text of its parts */
    bool *used;        /* per message: already in the answer, not context */
    int quser;         /* index of the last user message, or -1 */
    span_t objective;  /* the part of it that is the objective/question */
    agent_t *agents;
    int nagents;
    agent_t *colleagues; /* "- colleague …" lines of the system messages */
    int ncolleagues;
    char hex[AP_SHA256_HEX];
    /* the outcome */
    ap_llm_tool_call_t *calls;
    int ncalls, capcalls;
    const char *answer;
    double conf;
} bctx_t;

static const ap_llm_tool_t *offered(const bctx_t *c, const char *name) {
    for (int i = 0; i < c->req->ntools; i++)
        if (c->req->tools[i].name && strcmp(c->req->tools[i].name, name) == 0)
            return &c->req->tools[i];
    return NULL;
}

static bool choice_is(const bctx_t *c, const char *v) {
    return c->req->tool_choice && strcmp(c->req->tool_choice, v) == 0;
}

/* tool_choice: NULL/auto/required allow every tool offered, none allows
 * none, a tool name allows only that one. */
static bool allowed(const bctx_t *c, const char *name) {
    if (!offered(c, name)) return false;
    const char *tc = c->req->tool_choice;
    if (!tc || !strcmp(tc, "auto") || !strcmp(tc, "required")) return true;
    if (!strcmp(tc, "none")) return false;
    return strcmp(tc, name) == 0;
}

static const char *msg_text(ap_arena_t *a, const ap_llm_msg_t *m) {
    if (m->content) return m->content;
    if (!json_is_array(m->parts)) return "";
    sb_t b = {a};
    size_t i;
    json_t *part;
    json_array_foreach(m->parts, i, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (!t) continue;
        if (b.n) sb_puts(&b, "\n");
        sb_puts(&b, t);
    }
    return sb_str(&b);
}

/* "Objective: …" or "Task: …" up to the next blank line, when present;
 * otherwise the whole message. */
static span_t objective_of(span_t text) {
    size_t pos = 0;
    span_t line;
    while (next_line(text, &pos, &line)) {
        span_t t = trim(line);
        size_t k = istarts(t, "objective:") ? 10 : istarts(t, "task:") ? 5 : 0;
        if (!k) continue;
        const char *b = t.p + k, *e = text.p + text.n;
        bool seen = has_word((span_t){b, t.n - k});
        span_t l2;
        while (next_line(text, &pos, &l2)) {
            if (!trim(l2).n && seen) {
                e = l2.p;
                break;
            }
            seen |= has_word(l2);
        }
        return trim((span_t){b, (size_t)(e - b)});
    }
    return trim(text);
}

/* Length-prefixed, so that field boundaries cannot shift; NULL is "". */
static void hash_str(ap_buf_t *b, const char *s) {
    uint64_t len = s ? strlen(s) : 0;
    ap_buf_append(b, &len, sizeof len);
    if (len) ap_buf_append(b, s, len);
}

static void hash_json(ap_buf_t *b, json_t *v) {
    char *s = v ? json_dumps(v, JFLAGS | JSON_SORT_KEYS) : NULL;
    hash_str(b, s);
    free(s);
}

static void analyse(bctx_t *c) {
    const ap_llm_req_t *r = c->req;
    ap_arena_t *a = c->a;
    c->text = ap_arena_calloc(a, (size_t)(r->nmsgs > 0 ? r->nmsgs : 1) * sizeof *c->text);
    c->used = ap_arena_calloc(a, (size_t)(r->nmsgs > 0 ? r->nmsgs : 1) * sizeof *c->used);
    c->quser = -1;
    for (int i = 0; i < r->nmsgs; i++) {
        c->text[i] = msg_text(a, &r->msgs[i]);
        if (r->msgs[i].role == AP_LLM_USER) c->quser = i;
    }
    c->objective = c->quser >= 0 ? objective_of(sp(c->text[c->quser])) : sp("");

    /* Agent listing lines, in system messages and the user's message. */
    c->agents = ap_arena_calloc(a, AP_BUILTIN_MAX_AGENTS * sizeof *c->agents);
    for (int i = 0; i < r->nmsgs && c->nagents < AP_BUILTIN_MAX_AGENTS; i++) {
        if (r->msgs[i].role != AP_LLM_SYSTEM && i != c->quser) continue;
        size_t pos = 0;
        span_t line;
        span_t text = sp(c->text[i]);
        while (c->nagents < AP_BUILTIN_MAX_AGENTS && next_line(text, &pos, &line))
            if (parse_agent(a, line, "agent", &c->agents[c->nagents])) c->nagents++;
    }
    c->colleagues = ap_arena_calloc(a, AP_BUILTIN_MAX_AGENTS * sizeof *c->colleagues);
    for (int i = 0; i < r->nmsgs && c->ncolleagues < AP_BUILTIN_MAX_AGENTS; i++) {
        if (r->msgs[i].role != AP_LLM_SYSTEM) continue;
        size_t pos = 0;
        span_t line;
        span_t text = sp(c->text[i]);
        while (c->ncolleagues < AP_BUILTIN_MAX_AGENTS && next_line(text, &pos, &line))
            if (parse_agent(a, line, "colleague", &c->colleagues[c->ncolleagues]))
                c->ncolleagues++;
    }

    /* The request's hash: ids derive from it. */
    ap_buf_t b;
    ap_buf_init(&b, 0);
    hash_str(&b, r->model);
    for (int i = 0; i < r->nmsgs; i++) {
        const ap_llm_msg_t *m = &r->msgs[i];
        hash_str(&b, ap_llm_role_name(m->role));
        hash_str(&b, c->text[i]);
        for (int k = 0; k < m->ntool_calls; k++) {
            hash_str(&b, m->tool_calls[k].id);
            hash_str(&b, m->tool_calls[k].name);
            hash_str(&b, m->tool_calls[k].arguments);
        }
        hash_str(&b, m->tool_call_id);
        hash_str(&b, m->is_error ? "error" : NULL);
    }
    for (int i = 0; i < r->ntools; i++) {
        hash_str(&b, r->tools[i].name);
        hash_json(&b, r->tools[i].parameters);
    }
    hash_str(&b, r->tool_choice);
    hash_json(&b, r->response_format);
    for (int i = 0; i < r->nstop; i++) hash_str(&b, r->stop[i]);
    int64_t mt = r->max_tokens;
    ap_buf_append(&b, &mt, sizeof mt);
    ap_sha256_hex(b.p ? b.p : "", b.len, c->hex);
    ap_buf_free(&b);
}

/* ---- JSON helpers ------------------------------------------------------ */

/* A JSON string of s[0..n); bytes that are not valid UTF-8 become '?'
 * (jansson refuses invalid UTF-8, and user text may contain it). */
static json_t *jstrn(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (v) return v;
    char *t = ap_malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80                ? 1
                     : (ch & 0xE0) == 0xC0 ? 2
                     : (ch & 0xF0) == 0xE0 ? 3
                     : (ch & 0xF8) == 0xF0 ? 4
                                           : 0;
        /* jansson judges one sequence: overlongs and surrogates included */
        json_t *probe = len && i + len <= n ? json_stringn(s + i, len) : NULL;
        if (probe) {
            json_decref(probe);
            memcpy(t + k, s + i, len);
            k += len;
            i += len;
        } else {
            t[k++] = '?';
            i++;
        }
    }
    v = json_stringn(t, k);
    ap_free(t);
    return v ? v : json_string("");
}

static json_t *jstr(const char *s) {
    return jstrn(s ? s : "", s ? strlen(s) : 0);
}

/* Dumps v (stolen) into arena memory. */
static char *jdump(ap_arena_t *a, json_t *v) {
    char *s = json_dumps(v, JFLAGS);
    char *r = ap_arena_strdup(a, s ? s : "null");
    free(s);
    json_decref(v);
    return r;
}

static double clampd(double x, json_t *schema) {
    json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
    if (json_is_number(mn) && x < json_number_value(mn)) x = json_number_value(mn);
    if (json_is_number(mx) && x > json_number_value(mx)) x = json_number_value(mx);
    return x;
}

/* A value satisfying a simple JSON Schema: strings get text, numbers the
 * confidence, integers 1, booleans true, arrays one element (or
 * minItems), objects every declared property; const/enum take their
 * first value, anyOf/oneOf/allOf their first non-null branch. */
static json_t *fill_schema(json_t *schema, const char *text, double conf, int depth) {
    if (depth > 8) return json_null();
    if (!json_is_object(schema)) return jstr(text);
    json_t *v = json_object_get(schema, "const");
    if (v) return json_deep_copy(v);
    v = json_object_get(schema, "enum");
    if (json_is_array(v) && json_array_size(v)) return json_deep_copy(json_array_get(v, 0));
    static const char *const alts[] = {"anyOf", "oneOf", "allOf"};
    for (size_t k = 0; k < 3; k++) {
        v = json_object_get(schema, alts[k]);
        if (!json_is_array(v) || !json_array_size(v)) continue;
        size_t i;
        json_t *alt;
        json_array_foreach(v, i, alt) {
            const char *t = json_string_value(json_object_get(alt, "type"));
            if (!t || strcmp(t, "null")) return fill_schema(alt, text, conf, depth + 1);
        }
        return json_null();
    }
    const char *type = NULL;
    v = json_object_get(schema, "type");
    if (json_is_string(v)) type = json_string_value(v);
    if (json_is_array(v)) {
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            if (json_is_string(t) && strcmp(json_string_value(t), "null")) {
                type = json_string_value(t);
                break;
            }
        }
        if (!type) type = "null";
    }
    if (!type)
        type = json_object_get(schema, "properties") ? "object"
               : json_object_get(schema, "items")    ? "array"
                                                     : "string";
    if (!strcmp(type, "number")) return json_real(clampd(conf, schema));
    if (!strcmp(type, "integer")) return json_integer((json_int_t)llround(clampd(1, schema)));
    if (!strcmp(type, "boolean")) return json_true();
    if (!strcmp(type, "null")) return json_null();
    if (!strcmp(type, "array")) {
        json_int_t n = 1;
        json_t *mn = json_object_get(schema, "minItems"), *mx = json_object_get(schema, "maxItems");
        if (json_is_integer(mn) && json_integer_value(mn) > n) n = json_integer_value(mn);
        if (json_is_integer(mx) && json_integer_value(mx) < n) n = json_integer_value(mx);
        if (n > 8) n = 8;
        json_t *arr = json_array();
        for (json_int_t i = 0; i < n; i++)
            json_array_append_new(
                arr, fill_schema(json_object_get(schema, "items"), text, conf, depth + 1));
        return arr;
    }
    if (!strcmp(type, "object")) {
        json_t *obj = json_object(), *props = json_object_get(schema, "properties");
        const char *key;
        json_t *sub;
        json_object_foreach(props, key, sub) {
            json_object_set_new(obj, key, fill_schema(sub, text, conf, depth + 1));
        }
        size_t i;
        json_array_foreach(json_object_get(schema, "required"), i, sub) {
            const char *k = json_string_value(sub);
            if (k && !json_object_get(obj, k)) json_object_set_new(obj, k, jstr(text));
        }
        return obj;
    }
    /* string */
    json_t *ml = json_object_get(schema, "maxLength");
    size_t n = strlen(text);
    if (json_is_integer(ml) && json_integer_value(ml) >= 0) {
        /* maxLength counts characters: cut after that many UTF-8 starts */
        json_int_t chars = 0;
        size_t i = 0;
        for (; i < n; i++) {
            if (((unsigned char)text[i] & 0xC0) != 0x80 && chars++ == json_integer_value(ml)) break;
        }
        n = i;
    }
    return jstrn(text, n);
}

/* The first key of cands that the tool's schema declares, else cands[0]. */
static const char *pick_key(const ap_llm_tool_t *t, const char *const *cands) {
    json_t *props = t ? json_object_get(t->parameters, "properties") : NULL;
    for (const char *const *k = cands; *k; k++)
        if (json_object_get(props, *k)) return *k;
    return cands[0];
}

/* Fills the schema's required properties that args lacks. */
static void fill_required(json_t *args, const ap_llm_tool_t *t, const char *text, double conf) {
    json_t *params = t ? t->parameters : NULL, *props = json_object_get(params, "properties");
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(params, "required"), i, k) {
        const char *key = json_string_value(k);
        if (key && !json_object_get(args, key))
            json_object_set_new(args, key, fill_schema(json_object_get(props, key), text, conf, 0));
    }
}

static void add_call(bctx_t *c, const char *name, json_t *args /* stolen */) {
    if (c->ncalls == c->capcalls) {
        int cap = c->capcalls ? c->capcalls * 2 : 4;
        ap_llm_tool_call_t *v = ap_arena_calloc(c->a, (size_t)cap * sizeof *v);
        if (c->ncalls) memcpy(v, c->calls, (size_t)c->ncalls * sizeof *v);
        c->calls = v;
        c->capcalls = cap;
    }
    ap_llm_tool_call_t *tc = &c->calls[c->ncalls];
    tc->id = ap_arena_printf(c->a, "call_%.16s%d", c->hex + 24, c->ncalls);
    tc->name = ap_arena_strdup(c->a, name);
    tc->arguments = jdump(c->a, args);
    c->ncalls++;
}

/* ---- facts: "X is Y", "X: Y" ----------------------------------------- */

typedef struct {
    span_t subject, sentence;
} fact_t;

static const char *const fact_leadins[] = {
    "please remember that ", "please note that ", "remember that ", "note that ", "remember: ",
    "note: ", "fact: ", "fyi: ", "fyi, ", "fyi ", "remember ", NULL,
};

static const char *const not_subjects[] = {
    "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "whether", "if",
    "there", "it", "this", "that", "these", "those", "here", "he", "she", "they", "we", "i",
    "you", "check", "find", "tell", "ask", "see", "ensure", "verify", "make", "let", "please",
    NULL,
};

static const char *const labels[] = {
    "objective", "task", "question", "context", "goal", "request", "subtask", "instructions",
    "hint", "example", "answer", "note", "output", NULL,
};

static bool parse_fact(span_t s, fact_t *f) {
    s = trim(s);
    if (!s.n || s.p[s.n - 1] == '?') return false;
    for (const char *const *l = fact_leadins; *l; l++) {
        if (istarts(s, *l)) {
            size_t k = strlen(*l);
            s = trim((span_t){s.p + k, s.n - k});
            break;
        }
    }
    s = trim_punct(s);
    if (!has_word(s)) return false;
    char w[32];
    /* "X: Y" — a short key, a colon and a space, a value */
    const char *colon = memchr(s.p, ':', s.n);
    if (colon && (size_t)(colon - s.p) + 1 < s.n && is_sp((unsigned char)colon[1])) {
        span_t key = trim((span_t){s.p, (size_t)(colon - s.p)});
        span_t val = trim((span_t){colon + 1, s.n - (size_t)(colon + 1 - s.p)});
        int words = 0;
        bool plain = key.n > 0;
        size_t pos = 0;
        span_t tok;
        while (next_token(key, &pos, &tok)) words++;
        for (size_t i = 0; i < key.n && plain; i++)
            plain = is_word((unsigned char)key.p[i]) || key.p[i] == ' ' || key.p[i] == '-' ||
                    key.p[i] == '\'' || key.p[i] == '_';
        if (plain && words >= 1 && words <= 4 && has_word(val) &&
            !in_list(first_word(key, w, sizeof w), labels) &&
            !(words == 1 && in_list(first_word(key, w, sizeof w), not_subjects))) {
            *f = (fact_t){key, s};
            return true;
        }
        if (plain && words <= 4) return false; /* a label line, not a copula sentence */
    }
    /* "X is|are|was|were Y" — X of 1..6 words, Y not empty */
    size_t pos = 0;
    span_t tok;
    int nwords = 0;
    while (next_token(s, &pos, &tok)) {
        if (++nwords > 40) return false;
        if (span_ieq(tok, "is") || span_ieq(tok, "are") || span_ieq(tok, "was") ||
            span_ieq(tok, "were")) {
            if (nwords < 2 || nwords > 7) return false;
            span_t subj = trim((span_t){s.p, (size_t)(tok.p - s.p)});
            span_t rest = {tok.p + tok.n, s.n - (size_t)(tok.p + tok.n - s.p)};
            if (!has_word(rest) || in_list(first_word(subj, w, sizeof w), not_subjects))
                return false;
            for (size_t i = 0; i < subj.n; i++)
                if (strchr(",;()[]{}\"", subj.p[i])) return false;
            *f = (fact_t){subj, s};
            return true;
        }
    }
    return false;
}

typedef struct {
    fact_t facts[AP_BUILTIN_MAX_FACTS];
    int n;
    sb_t rest; /* the sentences that are not facts */
} facts_t;

static void fact_sentence(void *ud, span_t s) {
    facts_t *fs = ud;
    fact_t f;
    if (fs->n < AP_BUILTIN_MAX_FACTS && parse_fact(s, &f)) {
        fs->facts[fs->n++] = f;
        return;
    }
    if (fs->rest.n) sb_add(&fs->rest, " ", 1);
    sb_add(&fs->rest, s.p, s.n);
}

static void find_facts(bctx_t *c, facts_t *fs) {
    memset(fs, 0, sizeof *fs);
    fs->rest.a = c->a;
    size_t pos = 0;
    span_t line;
    while (next_line(c->objective, &pos, &line)) {
        span_t t;
        if (is_agent_line(line) || heading(line, &t)) continue;
        each_sentence(line, fact_sentence, fs);
    }
}

/* The subject without a leading article. */
static span_t entity_name(span_t s) {
    static const char *const arts[] = {"the ", "a ", "an ", "our ", "my ", "their ", NULL};
    for (const char *const *k = arts; *k; k++)
        if (istarts(s, *k) && s.n > strlen(*k))
            return trim((span_t){s.p + strlen(*k), s.n - strlen(*k)});
    return s;
}

static char *fact_text(ap_arena_t *a, const fact_t *f) {
    sb_t b = {a};
    sb_sentence(&b, f->sentence);
    return (char *)sb_str(&b);
}

static bool record_facts(bctx_t *c) {
    bool rem = allowed(c, "remember"), ent = allowed(c, "learn_entity");
    if (!rem && !ent) return false;
    facts_t fs;
    find_facts(c, &fs);
    static const char *const content_keys[] = {"content", "text", "memory", "fact", NULL};
    static const char *const name_keys[] = {"name",        "entity", "subject",
                                            "entity_name", "title",  NULL};
    static const char *const desc_keys[] = {"description", "fact", "summary", "content",
                                            "text", "observation", NULL};
    for (int i = 0; i < fs.n; i++) {
        char *text = fact_text(c->a, &fs.facts[i]);
        if (rem) {
            const ap_llm_tool_t *t = offered(c, "remember");
            json_t *args = json_object();
            json_object_set_new(args, pick_key(t, content_keys), jstr(text));
            fill_required(args, t, text, 0.9);
            add_call(c, "remember", args);
        }
        if (ent) {
            const ap_llm_tool_t *t = offered(c, "learn_entity");
            span_t name = entity_name(fs.facts[i].subject);
            json_t *args = json_object();
            json_object_set_new(args, pick_key(t, name_keys), jstrn(name.p, name.n));
            json_object_set_new(args, pick_key(t, desc_keys), jstr(text));
            fill_required(args, t, text, 0.9);
            add_call(c, "learn_entity", args);
        }
    }
    return fs.n > 0;
}

/* ---- delegation -------------------------------------------------------- */

static bool connector_at(span_t s, size_t i, const char *w) {
    size_t k = strlen(w);
    return i > 0 && (is_sp((unsigned char)s.p[i - 1]) || s.p[i - 1] == ',') && i + k < s.n &&
           strncasecmp(s.p + i, w, k) == 0 && is_sp((unsigned char)s.p[i + k]);
}

static span_t clean_part(span_t s) {
    static const char *const lead[] = {"and", "then", "also", "finally", "first", "firstly",
                                       "next", "afterwards", NULL};
    s = strip_bullet(trim_punct(s));
    char w[16];
    while (s.n && in_list(first_word(s, w, sizeof w), lead)) s = trim(drop_word(s));
    return trim_punct(s);
}

/* Splits an objective at line ends, ';', sentence ends, and the words
 * "and" / "then".  The last part takes the rest past MAX_PARTS. */
static int split_objective(span_t s, span_t *parts) {
    int n = 0;
    size_t b = 0;
    for (size_t i = 0; i < s.n && n < MAX_PARTS - 1; i++) {
        char ch = s.p[i];
        size_t next = 0;
        if (ch == '\n' || ch == ';') {
            next = i + 1;
        } else if ((ch == '.' || ch == '!' || ch == '?') &&
                   (i + 1 == s.n || is_sp((unsigned char)s.p[i + 1])) &&
                   !(ch == '.' && is_abbrev(s, i))) {
            next = i + 1;
        } else if (connector_at(s, i, "and") || connector_at(s, i, "then")) {
            next = i;
        } else {
            continue;
        }
        span_t p = clean_part((span_t){s.p + b, i - b});
        if (has_word(p)) parts[n++] = p;
        b = next;
    }
    span_t p = clean_part((span_t){s.p + b, s.n - b});
    if (has_word(p)) parts[n++] = p;
    return n;
}

/* capability terms count twice, name/role terms once */
static int agent_score(const terms_t *part, const agent_t *ag) {
    int s = 0;
    for (int i = 0; i < part->n; i++) {
        if (terms_find(&ag->caps, part->v[i]) >= 0)
            s += 2;
        else if (terms_find(&ag->other, part->v[i]) >= 0)
            s += 1;
    }
    return s;
}

static bool delegate(bctx_t *c) {
    if (!allowed(c, "delegate_to_agent") || !c->nagents) return false;
    span_t parts[MAX_PARTS];
    int np = split_objective(c->objective, parts);
    if (!np) return false;
    int sc[MAX_PARTS][AP_BUILTIN_MAX_AGENTS];
    int best[MAX_PARTS], kept[AP_BUILTIN_MAX_DELEGATIONS], nkept = 0;
    bool any = false;
    for (int p = 0; p < np; p++) {
        terms_t t = {0};
        terms_add_text(c->a, &t, parts[p], 64);
        best[p] = -1;
        for (int j = 0; j < c->nagents; j++) {
            sc[p][j] = agent_score(&t, &c->agents[j]);
            if (sc[p][j] > 0 && (best[p] < 0 || sc[p][j] > sc[p][best[p]])) best[p] = j;
        }
        any |= best[p] >= 0;
    }
    if (!any) return false;
    /* At most a handful of agents: the first ones to be chosen; parts of the
     * others go to their best match among those kept. */
    for (int p = 0; p < np; p++) {
        if (best[p] < 0) continue;
        bool in = false;
        for (int k = 0; k < nkept; k++) in |= kept[k] == best[p];
        if (in) continue;
        if (nkept < AP_BUILTIN_MAX_DELEGATIONS) {
            kept[nkept++] = best[p];
            continue;
        }
        int b = -1;
        for (int k = 0; k < nkept; k++)
            if (sc[p][kept[k]] > 0 && (b < 0 || sc[p][kept[k]] > sc[p][b])) b = kept[k];
        best[p] = b;
    }
    /* Parts no agent matched go with the part before them (or after). */
    for (int p = 0; p < np; p++) {
        if (best[p] >= 0) continue;
        for (int q = p - 1; q >= 0 && best[p] < 0; q--) best[p] = best[q];
        for (int q = p + 1; q < np && best[p] < 0; q++) best[p] = best[q];
    }
    const ap_llm_tool_t *t = offered(c, "delegate_to_agent");
    for (int k = 0; k < nkept; k++) {
        sb_t obj = {c->a};
        for (int p = 0; p < np; p++) {
            if (best[p] != kept[k]) continue;
            int e = p;
            while (e + 1 < np && best[e + 1] == kept[k]) e++;
            /* adjacent parts keep the words between them ("… and …") */
            span_t run = {parts[p].p, (size_t)(parts[e].p + parts[e].n - parts[p].p)};
            if (obj.n) sb_puts(&obj, "; ");
            if (run.n && run.p[0] >= 'a' && run.p[0] <= 'z' && !obj.n) {
                char up = (char)(run.p[0] - 32);
                sb_add(&obj, &up, 1);
                sb_add(&obj, run.p + 1, run.n - 1);
            } else {
                sb_add(&obj, run.p, run.n);
            }
            p = e;
        }
        json_t *args = json_object();
        json_object_set_new(args, "agent_id", jstr(c->agents[kept[k]].id));
        json_object_set_new(args, "objective", jstr(sb_str(&obj)));
        fill_required(args, t, sb_str(&obj), 0.8);
        add_call(c, "delegate_to_agent", args);
    }
    return true;
}

/* ---- approval and consultation ------------------------------------------ */

/* request_approval offered and the objective speaks of approval ("approv…",
 * "sign-off", "sign off"): ask for it first, giving the sentence as the
 * reason. */
typedef struct {
    span_t hit;
} approval_scan_t;

static void approval_sentence(void *ud, span_t s) {
    approval_scan_t *sc = ud;
    if (!sc->hit.n && (contains_ci(s, "approv") || contains_ci(s, "sign-off") ||
                       contains_ci(s, "sign off")))
        sc->hit = s;
}

static bool ask_approval(bctx_t *c) {
    if (!allowed(c, "request_approval")) return false;
    approval_scan_t sc = {{"", 0}};
    size_t pos = 0;
    span_t line;
    while (next_line(c->objective, &pos, &line)) each_sentence(line, approval_sentence, &sc);
    if (!sc.hit.n) return false;
    sb_t b = {c->a};
    sb_sentence(&b, sc.hit);
    json_t *args = json_object();
    json_object_set_new(args, "reason", jstr(sb_str(&b)));
    fill_required(args, offered(c, "request_approval"), sb_str(&b), 0.5);
    add_call(c, "request_approval", args);
    return true;
}

/* query_agent offered, colleagues listed, and nothing in the context
 * answers: ask the colleague whose capabilities match the objective best
 * (the first listed on a tie or no match). */
static bool consult(bctx_t *c) {
    if (!allowed(c, "query_agent") || !c->ncolleagues) return false;
    terms_t t = {0};
    terms_add_text(c->a, &t, c->objective, 64);
    int best = 0, bs = -1;
    for (int j = 0; j < c->ncolleagues; j++) {
        int sc = agent_score(&t, &c->colleagues[j]);
        if (sc > bs) {
            bs = sc;
            best = j;
        }
    }
    sb_t q = {c->a};
    sb_add(&q, c->objective.p, c->objective.n);
    json_t *args = json_object();
    json_object_set_new(args, "agent_id", jstr(c->colleagues[best].id));
    json_object_set_new(args, "question", jstr(sb_str(&q)));
    fill_required(args, offered(c, "query_agent"), sb_str(&q), 0.5);
    add_call(c, "query_agent", args);
    return true;
}

/* ---- extractive answers ----------------------------------------------- */

typedef struct {
    span_t s;
    uint64_t mask;
    int score;
    int order;
} cand_t;

typedef struct {
    ap_arena_t *a;
    const terms_t *q;
    cand_t *v;
    int n, cap;
} cands_t;

/* "Part of: <the whole objective>": the line the task runner adds to a
 * delegated part.  It says what the part belongs to; it is not knowledge. */
static bool is_part_of(span_t line) {
    return istarts(strip_bullet(line), "part of:");
}

/* The whole objective of a delegated part, or an empty span. */
static span_t part_of(const bctx_t *c) {
    if (c->quser < 0) return sp("");
    size_t pos = 0;
    span_t line, text = sp(c->text[c->quser]);
    while (next_line(text, &pos, &line)) {
        span_t l = strip_bullet(line);
        if (istarts(l, "part of:")) return trim((span_t){l.p + 8, l.n - 8});
    }
    return sp("");
}

/* A composition objective ("Write a one-page brief", "Summarise …") may
 * use more sentences than a plain question. */
static bool composes(span_t objective) {
    static const char *const verbs[] = {"write", "draft", "summarise", "summarize", "compose",
                                        "prepare", "compile", NULL};
    char w[24];
    return in_list(first_word(strip_bullet(objective), w, sizeof w), verbs);
}

static void add_cand(void *ud, span_t s) {
    cands_t *cs = ud;
    s = trim(s);
    if (!has_word(s) || s.p[s.n - 1] == '?' || istarts(s, "I have no information about")) return;
    if (cs->n == cs->cap) {
        int cap = cs->cap ? cs->cap * 2 : 32;
        cand_t *v = ap_arena_alloc(cs->a, (size_t)cap * sizeof *v);
        if (cs->n) memcpy(v, cs->v, (size_t)cs->n * sizeof *v);
        cs->v = v;
        cs->cap = cap;
    }
    uint64_t m = match_mask(cs->q, s);
    cs->v[cs->n] = (cand_t){s, m, __builtin_popcountll(m), cs->n};
    cs->n++;
}

/* Adds the lines of text (skipping agent lines and headings). */
static void add_text(cands_t *cs, span_t text) {
    size_t pos = 0;
    span_t line, t;
    while (next_line(text, &pos, &line))
        if (!is_agent_line(line) && !heading(line, &t) && !is_part_of(line))
            each_sentence(line, add_cand, cs);
}

/* The context sections of a system message: the whole message when it has
 * no headings, otherwise what is under a context-like heading. */
static void add_system(cands_t *cs, span_t text) {
    size_t pos = 0;
    span_t line, title;
    bool headed = false;
    while (next_line(text, &pos, &line)) headed |= heading(line, &title);
    if (!headed) {
        add_text(cs, text);
        return;
    }
    sec_kind k = SEC_OTHER;
    pos = 0;
    while (next_line(text, &pos, &line)) {
        if (heading(line, &title)) {
            k = classify(title);
            continue;
        }
        if (k == SEC_CONTEXT && !is_agent_line(line)) each_sentence(line, add_cand, cs);
    }
}

/* Strings of a JSON value, one per line, ids and timestamps left out. */
static void json_text(sb_t *b, json_t *v, const char *key, int depth) {
    if (depth > 6) return;
    if (json_is_string(v)) {
        size_t n = key ? strlen(key) : 0;
        if (key && (!strcmp(key, "id") || (n > 3 && !strcmp(key + n - 3, "_id")) ||
                    (n > 3 && !strcmp(key + n - 3, "_at")) || !strcmp(key, "type")))
            return;
        if (b->n) sb_puts(b, "\n");
        sb_puts(b, json_string_value(v));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) json_text(b, e, key, depth + 1);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) json_text(b, e, k, depth + 1);
    }
}

/* A tool result's text: JSON is reduced to its strings. */
static span_t result_text(ap_arena_t *a, const char *content) {
    json_t *j = json_loads(content, JSON_DECODE_ANY, NULL);
    if (!j) return sp(content);
    sb_t b = {a};
    json_text(&b, j, NULL, 0);
    json_decref(j);
    return sp(sb_str(&b));
}

static int cmp_cand(const void *pa, const void *pb) {
    const cand_t *x = pa, *y = pb;
    if (x->score != y->score) return y->score - x->score;
    return x->order - y->order;
}

/* "I have no information about <topic>." — topic: the question's first
 * line without question words, imperative verbs and end punctuation. */
static const char *no_info(ap_arena_t *a, span_t question) {
    static const char *const lead[] = {
        "what", "what's", "whats", "who", "who's", "whom", "whose", "where", "when", "why",
        "how", "which", "is", "are", "was", "were", "do", "does", "did", "can", "could",
        "would", "should", "will", "tell", "me", "us", "about", "please", "you", "know", "i",
        "we", "need", "want", "to", "describe", "explain", "summarise", "summarize", "research",
        "find", "write", "draft", "list", "give", "provide", "prepare", "compile", "analyse",
        "analyze", "investigate", "identify", "review", "check", "compare", "outline", "report",
        "look", "up", "into", "on", "out", "any", "information", "info", "book", "plan",
        "create", "build", "design", "make", "organise", "organize", "schedule", "send", "fix",
        "update", "translate", "calculate", "estimate", "evaluate", "assess", "study", NULL,
    };
    span_t line = {0};
    size_t pos = 0;
    while (next_line(question, &pos, &line) && !has_word(line)) {
    }
    span_t s = trim_punct(strip_bullet(line));
    while (s.n && s.p[s.n - 1] == '?') s = trim_punct((span_t){s.p, s.n - 1});
    char w[24];
    span_t full = s;
    while (s.n && in_list(first_word(s, w, sizeof w), lead)) s = trim(drop_word(s));
    if (!has_word(s)) s = full;
    if (!has_word(s)) return "I have no information about that.";
    /* at most MAX_TOPIC_WORDS words */
    size_t i = 0;
    for (int words = 0; i < s.n; words++) {
        while (i < s.n && is_sp((unsigned char)s.p[i])) i++;
        if (words == MAX_TOPIC_WORDS) break;
        while (i < s.n && !is_sp((unsigned char)s.p[i])) i++;
    }
    bool cut = i < s.n;
    s = trim_punct((span_t){s.p, i});
    sb_t b = {a};
    sb_puts(&b, "I have no information about ");
    /* "The market" → "the market"; names ("Rex", "EV market") stay */
    static const char *const dets[] = {"the", "a", "an", "this", "that", "these", "those", "our",
                                       "my", "your", "their", "its", "some", "all", NULL};
    if (s.p[0] >= 'A' && s.p[0] <= 'Z' && in_list(first_word(s, w, sizeof w), dets)) {
        char lc = (char)(s.p[0] + 32);
        sb_add(&b, &lc, 1);
        sb_add(&b, s.p + 1, s.n - 1);
    } else {
        sb_add(&b, s.p, s.n);
    }
    sb_puts(&b, cut ? "\xe2\x80\xa6" : ".");
    return sb_str(&b);
}

/* Answers question from the context: the best sentences by number of
 * question terms they contain (ties: earlier first), those scoring at
 * least half the best, up to AP_BUILTIN_MAX_SENTENCES.  *found: how many.
 * Sets c->conf. */
static const char *extract_ex(bctx_t *c, span_t question, span_t minus, int max, int *found) {
    const ap_llm_req_t *r = c->req;
    terms_t q = {0};
    size_t pos = 0;
    span_t line, t;
    while (next_line(question, &pos, &line))
        if (!is_agent_line(line) && !heading(line, &t)) terms_add_text(c->a, &q, line, MAX_QTERMS);
    if (minus.n) { /* the question less these terms */
        terms_t m = {0};
        terms_add_text(c->a, &m, minus, MAX_QTERMS);
        int k = 0;
        for (int i = 0; i < q.n; i++)
            if (terms_find(&m, q.v[i]) < 0) q.v[k++] = q.v[i];
        q.n = k;
    }
    if (max > AP_BUILTIN_MAX_BRIEF_SENTENCES) max = AP_BUILTIN_MAX_BRIEF_SENTENCES;
    *found = 0;
    if (!has_word(question)) {
        c->conf = 0.1;
        return "There is no question to answer.";
    }
    cands_t cs = {c->a, &q};
    for (int i = 0; i < r->nmsgs; i++) {
        span_t text = sp(c->text[i]);
        if (c->used[i]) continue;
        if (r->msgs[i].role == AP_LLM_SYSTEM) {
            add_system(&cs, text);
        } else if (i == c->quser) {
            /* the lines around an "Objective:" part are context too */
            span_t whole = trim(text);
            if (c->objective.p != whole.p || c->objective.n != whole.n) {
                add_text(&cs, (span_t){text.p, (size_t)(c->objective.p - text.p)});
                const char *e = c->objective.p + c->objective.n;
                add_text(&cs, (span_t){e, (size_t)(text.p + text.n - e)});
            }
        } else if (r->msgs[i].role == AP_LLM_TOOL) {
            add_text(&cs, result_text(c->a, c->text[i]));
        } else {
            add_text(&cs, text);
        }
    }
    if (cs.n) qsort(cs.v, (size_t)cs.n, sizeof *cs.v, cmp_cand);
    if (!cs.n || cs.v[0].score == 0) {
        c->conf = 0.1;
        return no_info(c->a, question);
    }
    int min = (cs.v[0].score + 1) / 2;
    sb_t b = {c->a};
    uint64_t covered = 0;
    span_t picked[AP_BUILTIN_MAX_BRIEF_SENTENCES];
    for (int i = 0; i < cs.n && *found < max && cs.v[i].score >= min; i++) {
        bool seen = false;
        for (int k = 0; k < *found; k++)
            seen |= picked[k].n == cs.v[i].s.n && !memcmp(picked[k].p, cs.v[i].s.p, cs.v[i].s.n);
        if (seen) continue;
        picked[(*found)++] = cs.v[i].s;
        covered |= cs.v[i].mask;
        sb_sentence(&b, cs.v[i].s);
    }
    int nq = q.n < 64 ? q.n : 64;
    double cover = nq ? (double)__builtin_popcountll(covered) / nq : 0;
    c->conf = round((0.3 + 0.6 * cover) * 100) / 100;
    return sb_str(&b);
}

static const char *extract(bctx_t *c, span_t question, int *found) {
    return extract_ex(c, question, sp(""), AP_BUILTIN_MAX_SENTENCES, found);
}

/* A worker's answer (rule 5): from the objective's terms; when they find
 * nothing and the task is part of a larger objective ("write a one-page
 * brief" of "research X and write a one-page brief"), from the terms of
 * the whole objective that are not the part's own.  A composition
 * objective keeps up to AP_BUILTIN_MAX_BRIEF_SENTENCES sentences. */
static const char *answer_part(bctx_t *c, int *found) {
    int max = composes(c->objective) ? AP_BUILTIN_MAX_BRIEF_SENTENCES : AP_BUILTIN_MAX_SENTENCES;
    const char *ans = extract_ex(c, c->objective, sp(""), max, found);
    span_t whole = part_of(c);
    if (*found || !has_word(whole)) return ans;
    double conf = c->conf;
    const char *wide = extract_ex(c, whole, c->objective, max, found);
    if (*found) return wide;
    c->conf = conf;
    return ans;
}

/* ---- a final answer from tool results ---------------------------------- */

static const ap_llm_tool_call_t *find_call(const ap_llm_req_t *r, int before, const char *id) {
    if (!id) return NULL;
    for (int i = before - 1; i >= 0; i--) {
        const ap_llm_msg_t *m = &r->msgs[i];
        for (int k = 0; k < m->ntool_calls; k++)
            if (m->tool_calls[k].id && !strcmp(m->tool_calls[k].id, id))
                return &m->tool_calls[k];
    }
    return NULL;
}

static const char *arg_str(ap_arena_t *a, const ap_llm_tool_call_t *tc,
                           const char *const *keys) {
    if (!tc || !tc->arguments) return NULL;
    json_t *j = json_loads(tc->arguments, 0, NULL);
    const char *r = NULL;
    for (const char *const *k = keys; *k && !r; k++) {
        const char *v = json_string_value(json_object_get(j, *k));
        if (v && *v) r = ap_arena_strdup(a, v);
    }
    json_decref(j);
    return r;
}

/* A subtask's output: the "output" (or result/answer/…) of a JSON
 * object, the string of a JSON string, else the text. */
static const char *sub_output(ap_arena_t *a, const char *content, double *conf,
                              bool *has_conf) {
    json_t *j = json_loads(content, JSON_DECODE_ANY, NULL);
    if (!j) return content;
    const char *r = NULL;
    if (json_is_string(j)) r = ap_arena_strdup(a, json_string_value(j));
    if (json_is_object(j)) {
        static const char *const keys[] = {"output", "result", "answer", "content", "text",
                                           "summary", NULL};
        for (const char *const *k = keys; *k && !r; k++) {
            const char *v = json_string_value(json_object_get(j, *k));
            if (v) r = ap_arena_strdup(a, v);
        }
        const char *e = json_string_value(json_object_get(j, "error"));
        if (!r && e) r = ap_arena_printf(a, "(failed: %s)", e);
        json_t *cf = json_object_get(j, "confidence");
        if (json_is_number(cf)) {
            *conf = json_number_value(cf);
            *has_conf = true;
        }
    }
    if (!r) {
        sb_t b = {a};
        json_text(&b, j, NULL, 0);
        r = sb_str(&b);
    }
    json_decref(j);
    return r;
}

typedef struct {
    span_t before; /* the sections so far */
    sb_t out;
    int kept;
} fresh_t;

static void fresh_sentence(void *ud, span_t s) {
    fresh_t *f = ud;
    s = trim(s);
    if (!s.n) return;
    for (size_t i = 0; i + s.n <= f->before.n; i++)
        if (!memcmp(f->before.p + i, s.p, s.n)) return; /* said in an earlier section */
    if (f->out.n) sb_puts(&f->out, " ");
    sb_add(&f->out, s.p, s.n);
    f->kept++;
}

/* A later section's text without the sentences an earlier one gave. */
static const char *not_repeated(ap_arena_t *a, span_t before, const char *text) {
    fresh_t f = {before, {a}, 0};
    size_t pos = 0;
    span_t line;
    span_t t = sp(text);
    while (next_line(t, &pos, &line)) each_sentence(line, fresh_sentence, &f);
    return f.kept ? sb_str(&f.out) : "(as above)";
}

/* The name of a listed agent or colleague, or NULL. */
static const char *agent_name(const bctx_t *c, const char *id) {
    if (!id) return NULL;
    for (int k = 0; k < 2; k++) {
        const agent_t *v = k ? c->colleagues : c->agents;
        for (int j = 0; j < (k ? c->ncolleagues : c->nagents); j++) {
            if (!v[j].id || strcmp(v[j].id, id)) continue;
            if (v[j].name && *v[j].name) return v[j].name;
            return v[j].role && *v[j].role ? v[j].role : NULL;
        }
    }
    return NULL;
}

static void from_results(bctx_t *c) {
    const ap_llm_req_t *r = c->req;
    int first = r->nmsgs;
    while (first > 0 && r->msgs[first - 1].role == AP_LLM_TOOL) first--;
    sb_t deleg = {c->a}, noted = {c->a}, other = {c->a};
    int ndeleg = 0, nnoted = 0, nother = 0, nconf = 0;
    const char *lone = "";
    double sumconf = 0;
    bool have_rem = false;
    for (int i = first; i < r->nmsgs; i++) {
        const ap_llm_tool_call_t *tc = find_call(r, first, r->msgs[i].tool_call_id);
        if (tc && tc->name && !strcmp(tc->name, "remember")) have_rem = true;
    }
    for (int i = first; i < r->nmsgs; i++) {
        const ap_llm_msg_t *m = &r->msgs[i];
        const ap_llm_tool_call_t *tc = find_call(r, first, m->tool_call_id);
        const char *name = tc && tc->name ? tc->name : m->name ? m->name : "tool";
        if (!strcmp(name, "delegate_to_agent") || !strcmp(name, "query_agent")) {
            static const char *const okeys[] = {"objective", "question", "query", NULL};
            double cf = 0;
            bool has = false;
            const char *out = sub_output(c->a, c->text[i], &cf, &has);
            if (m->is_error && strncmp(out, "(failed: ", 9))
                out = ap_arena_printf(c->a, "(failed: %s)", out);
            static const char *const ikeys[] = {"agent_id", NULL};
            const char *obj = arg_str(c->a, tc, okeys);
            const char *who = agent_name(c, arg_str(c->a, tc, ikeys));
            bool failed = !strncmp(out, "(failed: ", 9);
            if (has || failed) sumconf += failed ? 0 : cf, nconf++; /* a failed part counts 0 */
            c->used[i] = true;
            if (ndeleg++) sb_puts(&deleg, "\n\n");
            if (obj || who) { /* a section: "## <part> (<agent>)" */
                sb_puts(&deleg, "## ");
                span_t o = trim_punct(sp(obj ? obj : who));
                sb_add(&deleg, o.p, o.n);
                if (obj && who) sb_puts(&deleg, ap_arena_printf(c->a, " (%s)", who));
                sb_puts(&deleg, "\n");
            }
            span_t o = trim(sp(out));
            lone = o.n ? dup(c->a, o) : "(no output)";
            sb_puts(&deleg, ndeleg > 1 ? not_repeated(c->a, sp(sb_str(&deleg)), lone) : lone);
        } else if (!strcmp(name, "remember") || !strcmp(name, "learn_entity")) {
            static const char *const rkeys[] = {"content", "text", "memory", "fact", NULL};
            static const char *const ekeys[] = {"description", "fact", "summary", "content",
                                                "text", "observation", "name", NULL};
            if (!strcmp(name, "learn_entity") && have_rem) continue;
            const char *f = arg_str(c->a, tc, !strcmp(name, "remember") ? rkeys : ekeys);
            if (!f) continue;
            if (!nnoted++) sb_puts(&noted, "Noted:");
            sb_sentence(&noted, sp(f));
        } else {
            span_t t = result_text(c->a, c->text[i]);
            if (nother++) sb_puts(&other, "\n");
            if (m->is_error) sb_puts(&other, "(failed) ");
            sb_add(&other, t.p, t.n);
        }
    }
    /* A lone delegation result reads better without its objective. */
    if (ndeleg == 1) {
        deleg = (sb_t){c->a};
        sb_puts(&deleg, lone);
    }
    sb_t ans = {c->a};
    double conf = 1;
    if (ndeleg) {
        span_t title = {0};
        size_t tpos = 0;
        next_line(c->objective, &tpos, &title);
        title = trim_punct(strip_bullet(title));
        if (ndeleg > 1 && has_word(title)) { /* the brief's title: the objective */
            sb_puts(&ans, "# ");
            sb_sentence(&ans, title);
            if (ans.p[ans.n - 1] == '.') ans.p[--ans.n] = '\0';
            sb_puts(&ans, "\n\n");
        }
        sb_add(&ans, deleg.p, deleg.n);
        conf = nconf ? round(sumconf / nconf * 100) / 100 : 0.7;
    }
    if (nnoted) {
        if (ans.n) sb_puts(&ans, "\n\n");
        sb_add(&ans, noted.p, noted.n);
        conf = conf < 0.9 ? conf : 0.9;
    }
    /* The question still gets an answer: after recorded facts, the rest of
     * the message; after other tools, from their results and the context. */
    span_t question = {0};
    if (nother || (!ndeleg && !nnoted)) {
        question = c->objective;
    } else if (nnoted && !ndeleg) {
        facts_t fs;
        find_facts(c, &fs);
        question = sp(sb_str(&fs.rest));
    }
    if (has_word(question)) {
        int found;
        const char *x = extract(c, question, &found);
        if (!found && nother) {
            /* nothing matched the question: show what the tools returned */
            sb_t b = {c->a};
            int k = 0;
            size_t pos = 0;
            span_t line;
            span_t o = sp(sb_str(&other));
            while (k < AP_BUILTIN_MAX_SENTENCES && next_line(o, &pos, &line)) {
                if (!has_word(line)) continue;
                sb_sentence(&b, line);
                k++;
            }
            x = b.n ? ap_arena_printf(c->a, "The tools returned: %s", sb_str(&b)) : x;
            c->conf = 0.5;
        }
        if (ans.n) sb_puts(&ans, "\n\n");
        sb_puts(&ans, x);
        conf = conf < c->conf ? conf : c->conf;
    }
    if (!ans.n) {
        sb_puts(&ans, "Done.");
        conf = 0.5;
    }
    c->answer = sb_str(&ans);
    c->conf = conf;
}

/* ---- the response ------------------------------------------------------ */

/* The answer in the requested response_format. */
static const char *format_answer(bctx_t *c, const char *ans) {
    json_t *rf = c->req->response_format;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type || !strcmp(type, "text")) return ans;
    if (!strcmp(type, "json_schema")) {
        json_t *js = json_object_get(rf, "json_schema");
        json_t *schema = json_object_get(js, "schema");
        if (!schema) schema = json_object_get(rf, "schema");
        if (json_is_object(schema)) {
            json_t *v = fill_schema(schema, ans, c->conf, 0);
            if (!json_is_object(v) && !json_is_array(v)) {
                json_t *o = json_object();
                json_object_set_new(o, "answer", v);
                v = o;
            }
            return jdump(c->a, v);
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "answer", jstr(ans));
    json_object_set_new(o, "confidence", json_real(c->conf));
    return jdump(c->a, o);
}

static int64_t prompt_tokens(const bctx_t *c) {
    const ap_llm_req_t *r = c->req;
    size_t n = 0;
    for (int i = 0; i < r->nmsgs; i++) {
        n += strlen(c->text[i]);
        for (int k = 0; k < r->msgs[i].ntool_calls; k++) {
            const ap_llm_tool_call_t *tc = &r->msgs[i].tool_calls[k];
            n += (tc->name ? strlen(tc->name) : 0) + (tc->arguments ? strlen(tc->arguments) : 0);
        }
    }
    for (int i = 0; i < r->ntools; i++) {
        const ap_llm_tool_t *t = &r->tools[i];
        n += (t->name ? strlen(t->name) : 0) + (t->description ? strlen(t->description) : 0);
        if (t->parameters) {
            char *s = json_dumps(t->parameters, JFLAGS);
            n += s ? strlen(s) : 0;
            free(s);
        }
    }
    return ceil4(n);
}

/* Cuts at the earliest stop sequence, then at max_tokens words. */
static const char *limit_text(bctx_t *c, const char *text, const char **finish) {
    const ap_llm_req_t *r = c->req;
    size_t n = strlen(text);
    for (int i = 0; i < r->nstop; i++) {
        if (!r->stop[i] || !*r->stop[i]) continue;
        const char *hit = strstr(text, r->stop[i]);
        if (hit && (size_t)(hit - text) < n) n = (size_t)(hit - text);
    }
    *finish = "stop";
    if (r->max_tokens > 0) {
        size_t i = 0;
        int words = 0;
        while (i < n) {
            while (i < n && is_sp((unsigned char)text[i])) i++;
            if (i >= n) break;
            if (words == r->max_tokens) {
                n = i;
                while (n && is_sp((unsigned char)text[n - 1])) n--;
                *finish = "length";
                break;
            }
            while (i < n && !is_sp((unsigned char)text[i])) i++;
            words++;
        }
    }
    return ap_arena_strndup(c->a, text, n);
}

/* A call that tool_choice demands but no rule produced: the whole
 * objective to the first listed agent for delegate_to_agent, otherwise
 * arguments filled from the tool's schema (strings get the objective). */
static void forced_call(bctx_t *c, const ap_llm_tool_t *t) {
    char *text = dup(c->a, c->objective);
    json_t *v;
    if (!strcmp(t->name, "delegate_to_agent") && c->nagents) {
        v = json_object();
        json_object_set_new(v, "agent_id", jstr(c->agents[0].id));
        json_object_set_new(v, "objective", jstr(text));
        fill_required(v, t, text, c->conf);
    } else {
        v = fill_schema(t->parameters, text, c->conf, 0);
        if (!json_is_object(v)) {
            json_decref(v);
            v = json_object();
        }
    }
    add_call(c, t->name, v);
}

ap_rc ap_builtin_complete(ap_arena_t *a, const ap_llm_req_t *req, ap_llm_resp_t *out,
                          ap_err_t *err) {
    assert(a && req && out);
    (void)err;
    memset(out, 0, sizeof *out);
    bctx_t c = {.a = a, .req = req};
    analyse(&c);

    const ap_llm_req_t *r = req;
    bool after_tools = r->nmsgs > 0 && r->msgs[r->nmsgs - 1].role == AP_LLM_TOOL;
    if (after_tools) {
        from_results(&c);
    } else if (!delegate(&c) && !record_facts(&c) && !ask_approval(&c)) {
        int found;
        c.answer = answer_part(&c, &found);
        if (!found) consult(&c); /* a call to query_agent replaces the answer */
    }

    const char *forced = r->tool_choice && strcmp(r->tool_choice, "auto") &&
                                 strcmp(r->tool_choice, "none") &&
                                 strcmp(r->tool_choice, "required")
                             ? r->tool_choice
                             : NULL;
    const char *finish = "stop";
    if (!c.ncalls && c.answer) {
        const char *formatted = format_answer(&c, c.answer);
        if (allowed(&c, "complete_task")) {
            json_t *args = json_object();
            json_object_set_new(args, "output", jstr(formatted));
            json_object_set_new(args, "confidence", json_real(c.conf));
            fill_required(args, offered(&c, "complete_task"), formatted, c.conf);
            add_call(&c, "complete_task", args);
        } else if (forced && offered(&c, forced)) {
            forced_call(&c, offered(&c, forced));
        } else if (choice_is(&c, "required") && r->ntools > 0 && r->tools[0].name) {
            forced_call(&c, &r->tools[0]);
        } else {
            out->content = limit_text(&c, formatted, &finish);
        }
    }
    if (c.ncalls) {
        out->tool_calls = c.calls;
        out->ntool_calls = c.ncalls;
        finish = "tool_calls";
    }
    out->id = ap_arena_printf(a, "builtin-%.24s", c.hex);
    out->model = ap_arena_strdup(a, r->model && *r->model ? r->model : AP_BUILTIN_MODEL);
    out->finish_reason = finish;
    out->usage.prompt = prompt_tokens(&c);
    out->usage.completion = count_words(out->content);
    for (int i = 0; i < out->ntool_calls; i++)
        out->usage.completion +=
            ceil4(strlen(out->tool_calls[i].name) + strlen(out->tool_calls[i].arguments));
    out->created = ap_now_ms() / 1000;
    return AP_OK;
}

/* ---- streaming ----------------------------------------------------------- */

ap_rc ap_builtin_stream(ap_arena_t *a, const ap_llm_req_t *req, ap_llm_delta_fn fn, void *ud,
                        ap_err_t *err) {
    assert(fn);
    ap_llm_resp_t resp;
    ap_rc rc = ap_builtin_complete(a, req, &resp, err);
    if (rc) return rc;
    const char *s = resp.content ? resp.content : "";
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && is_sp((unsigned char)s[j])) j++;
        while (j < n && !is_sp((unsigned char)s[j])) j++;
        ap_llm_delta_t d = {.tool_index = -1, .content = ap_arena_strndup(a, s + i, j - i)};
        fn(ud, &d);
        i = j;
    }
    for (int k = 0; k < resp.ntool_calls; k++) {
        const ap_llm_tool_call_t *tc = &resp.tool_calls[k];
        ap_llm_delta_t d = {.tool_index = k, .tool_id = tc->id, .tool_name = tc->name};
        fn(ud, &d);
        size_t an = strlen(tc->arguments);
        for (size_t i = 0; i < an;) {
            size_t j = i + ARG_CHUNK < an ? i + ARG_CHUNK : an;
            while (j < an && ((unsigned char)tc->arguments[j] & 0xC0) == 0x80) j++;
            ap_llm_delta_t f = {.tool_index = k,
                                .tool_args = ap_arena_strndup(a, tc->arguments + i, j - i)};
            fn(ud, &f);
            i = j;
        }
    }
    ap_llm_delta_t last = {.tool_index = -1, .finish_reason = resp.finish_reason,
                           .has_usage = true, .usage = resp.usage};
    fn(ud, &last);
    return AP_OK;
}

/* ---- embeddings ---------------------------------------------------------- */

ap_rc ap_builtin_embed(ap_arena_t *a, const ap_llm_embed_req_t *req, ap_llm_embed_resp_t *out,
                       ap_err_t *err) {
    assert(a && req && out);
    memset(out, 0, sizeof *out);
    int dim = req->dimensions ? req->dimensions : AP_EMBED_DIM_DEFAULT;
    if (dim < AP_EMBED_DIM_MIN || dim > AP_EMBED_DIM_MAX)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "dimensions out of range",
                          "use 8 to 4096 dimensions, or omit the field for 384",
                          "dimensions %d is outside %d..%d", req->dimensions, AP_EMBED_DIM_MIN,
                          AP_EMBED_DIM_MAX);
    int n = req->ninputs > 0 ? req->ninputs : 0;
    out->vectors = ap_arena_calloc(a, (size_t)(n ? n : 1) * sizeof *out->vectors);
    for (int i = 0; i < n; i++) {
        const char *s = req->inputs[i] ? req->inputs[i] : "";
        size_t len = strlen(s);
        out->vectors[i] = ap_arena_alloc(a, (size_t)dim * sizeof(float));
        ap_embed_hash(s, len, out->vectors[i], dim);
        out->usage.prompt += ceil4(len);
    }
    out->nvectors = n;
    out->dim = dim;
    out->model = ap_arena_strdup(a, req->model && *req->model ? req->model : AP_EMBED_MODEL);
    return AP_OK;
}
