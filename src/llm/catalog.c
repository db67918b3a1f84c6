/*
 * catalog.c - the LLM catalog (see catalog.h).
 *
 * 1. The tier rule mirrors the awk of scripts/catalog-seed.sh clause for
 *    clause; tests/unit/catalog_test.c runs both over every seeded row.
 *    The rule itself is explained in docs/llm-catalog.md.
 * 2. List queries are assembled from fixed SQL clauses; every value the
 *    caller gave is a bound parameter.
 * 3. A model name is resolved with one query fetching every candidate
 *    (exact id, private "name/model", bare model id) and a choice made
 *    here in that order of precedence, so the precedence is in one place.
 * 4. An update reads the row, applies the change, checks the result (both
 *    prices or neither) and writes it back; its audit entry keeps
 *    {field: {from, to}} for each field that changed, so the price history
 *    of a model is in the platform's audit chain.
 */
#include "llm/catalog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/id.h"
#include "core/time.h"

/* ---- the tier rule ------------------------------------------------------ */

static bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.';
}

/* Next word (run of [a-z0-9.]) of the lowercased id s at *pos. */
static bool next_word(const char *s, size_t *pos, const char **w, size_t *n) {
    size_t i = *pos;
    while (s[i] && !word_char(s[i])) i++;
    size_t start = i;
    while (s[i] && word_char(s[i])) i++;
    *pos = i;
    *w = s + start;
    *n = i - start;
    return *n > 0;
}

static bool word_is(const char *w, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

static size_t digits(const char *w, size_t from, size_t to) {
    size_t i = from;
    while (i < to && w[i] >= '0' && w[i] <= '9') i++;
    return i - from;
}

static double number(const char *w, size_t n) {
    char buf[64];
    if (n >= sizeof buf) n = sizeof buf - 1;
    for (size_t i = 0; i < n; i++) buf[i] = w[i] == 'p' ? '.' : w[i];
    buf[n] = '\0';
    return strtod(buf, NULL);
}

/* "8x7b" → 56; "70b", "r7b" → 70, 7; "1p5b", "1.5b" → 1.5; else -1. */
static double word_params(const char *w, size_t n) {
    if (n < 2 || w[n - 1] != 'b') return -1;
    size_t end = n - 1; /* the 'b' */
    size_t a = digits(w, 0, end);
    if (a && a < end && w[a] == 'x') {
        size_t b = digits(w, a + 1, end);
        if (b && a + 1 + b == end) return number(w, a) * number(w + a + 1, b);
    }
    size_t i = (w[0] >= 'a' && w[0] <= 'z') ? 1 : 0;
    size_t start = i;
    size_t d = digits(w, i, end);
    if (!d) return -1;
    i += d;
    if (i < end && (w[i] == '.' || w[i] == 'p')) {
        size_t f = digits(w, i + 1, end);
        if (!f) return -1;
        i += 1 + f;
    }
    if (i != end) return -1;
    return number(w + start, end - start);
}

static char *lowered(const char *s) {
    size_t n = strlen(s);
    char *o = ap_malloc(n + 1);
    for (size_t i = 0; i <= n; i++) o[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    return o;
}

static double params_of(const char *m) {
    size_t pos = 0, n;
    const char *w;
    while (next_word(m, &pos, &w, &n)) {
        double p = word_params(w, n);
        if (p >= 0) return p;
    }
    return -1;
}

double ap_catalog_params_b(const char *model_id) {
    char *m = lowered(model_id);
    double p = params_of(m);
    ap_free(m);
    return p;
}

static const char *size_cue(const char *m) {
    size_t pos = 0, n;
    const char *w;
    while (next_word(m, &pos, &w, &n)) {
        if (word_is(w, n, "nano") || word_is(w, n, "tiny")) return "tiny";
        if (word_is(w, n, "mini") || word_is(w, n, "flash") || word_is(w, n, "haiku") ||
            word_is(w, n, "small") || word_is(w, n, "lite") || word_is(w, n, "instant") ||
            word_is(w, n, "air"))
            return "small";
        if (word_is(w, n, "medium")) return "medium";
        if (word_is(w, n, "opus") || word_is(w, n, "pro") || word_is(w, n, "large") ||
            word_is(w, n, "max") || word_is(w, n, "ultra"))
            return "xl";
    }
    return NULL;
}

static bool speed_cue(const char *m) {
    size_t pos = 0, n;
    const char *w;
    while (next_word(m, &pos, &w, &n))
        if (word_is(w, n, "fast") || word_is(w, n, "instant") || word_is(w, n, "turbo") ||
            word_is(w, n, "flash"))
            return true;
    return false;
}

void ap_catalog_derive(const char *provider_id, const char *model_id, const char *mode,
                       bool priced, double pin, double pout, ap_catalog_tiers_t *out) {
    if (strcmp(provider_id, "builtin") == 0) {
        *out = (ap_catalog_tiers_t){"fast", "basic", "tiny", true};
        return;
    }
    bool embedding = strcmp(mode, "embedding") == 0;
    char *m = lowered(model_id);
    double p = params_of(m);
    const char *size, *cue;
    if (p >= 0)
        size = p < 4 ? "tiny" : p < 12 ? "small" : p < 50 ? "medium" : p < 150 ? "large" : "xl";
    else if (embedding)
        size = "small";
    else if ((cue = size_cue(m)))
        size = cue;
    else if (priced && pout > 0)
        size = pout < 0.3 ? "small" : pout < 3 ? "medium" : pout < 20 ? "large" : "xl";
    else
        size = "medium";
    bool small = strcmp(size, "tiny") == 0 || strcmp(size, "small") == 0;
    bool xl = strcmp(size, "xl") == 0;

    const char *speed;
    if (embedding || strcmp(provider_id, "groq") == 0 || strcmp(provider_id, "cerebras") == 0 ||
        strcmp(provider_id, "sambanova") == 0 || speed_cue(m))
        speed = "fast";
    else
        speed = small ? "fast" : xl ? "slow" : "standard";

    const char *quality;
    if (embedding)
        quality = "good";
    else if (small)
        quality = "basic";
    else if (xl)
        quality = "best";
    else if (priced && (pin + pout) / 2 >= 4)
        quality = "best";
    else
        quality = "good";
    ap_free(m);
    *out = (ap_catalog_tiers_t){speed, quality, size, p >= 0 && p <= 8};
}

/* ---- rows to JSON -------------------------------------------------------- */

#define MODEL_COLS                                                                           \
    "m.id AS id, m.provider_id AS provider_id, m.model_id AS model_id,"                     \
    " m.display_name AS display_name, m.mode AS mode, m.context_window AS context_window,"   \
    " m.max_output_tokens AS max_output_tokens,"                                            \
    " m.input_usd_per_mtok AS input_usd_per_mtok,"                                          \
    " m.output_usd_per_mtok AS output_usd_per_mtok, m.supports_tools AS supports_tools,"     \
    " m.supports_vision AS supports_vision, m.supports_reasoning AS supports_reasoning,"     \
    " m.speed_tier AS speed_tier, m.quality_tier AS quality_tier,"                          \
    " m.size_category AS size_category, m.edge_optimized AS edge_optimized,"                \
    " m.active AS active, m.tenant_id AS tenant_id, m.source AS source,"                    \
    " m.created_at AS created_at, m.updated_at AS updated_at, p.name AS provider_name,"      \
    " p.wire_protocol AS wire_protocol, p.base_url AS base_url,"                            \
    " p.active AS provider_active, p.tenant_id AS provider_tenant"
#define MODEL_FROM " FROM llm_models m JOIN llm_providers p ON p.id = m.provider_id"

#define PROVIDER_COLS                                                                        \
    "p.id AS id, p.name AS name, p.wire_protocol AS wire_protocol, p.base_url AS base_url,"  \
    " p.tenant_id AS tenant_id, p.active AS active, p.notes AS notes,"                       \
    " p.created_at AS created_at, p.updated_at AS updated_at,"                               \
    " (SELECT COUNT(*) FROM llm_models c WHERE c.provider_id = p.id AND c.active = 1)"       \
    " AS model_count"

static bool is1(const char *v) {
    return v && strcmp(v, "1") == 0;
}

static json_t *jstr(const char *v) {
    return v ? json_string(v) : json_null();
}

static json_t *jint(const char *v) {
    return v ? json_integer(strtoll(v, NULL, 10)) : json_null();
}

static json_t *jreal(const char *v) {
    return v ? json_real(strtod(v, NULL)) : json_null();
}

static json_t *model_json(const ap_rows_t *r, int i) {
#define G(c) ap_rows_get(r, i, c)
    json_t *o = json_object();
    json_object_set_new(o, "id", jstr(G("id")));
    json_object_set_new(o, "provider_id", jstr(G("provider_id")));
    json_object_set_new(o, "model_id", jstr(G("model_id")));
    json_object_set_new(o, "display_name", jstr(G("display_name")));
    json_object_set_new(o, "mode", jstr(G("mode")));
    json_object_set_new(o, "context_window", jint(G("context_window")));
    json_object_set_new(o, "max_output_tokens", jint(G("max_output_tokens")));
    json_object_set_new(o, "input_usd_per_mtok", jreal(G("input_usd_per_mtok")));
    json_object_set_new(o, "output_usd_per_mtok", jreal(G("output_usd_per_mtok")));
    json_object_set_new(o, "priced",
                        json_boolean(G("input_usd_per_mtok") && G("output_usd_per_mtok")));
    json_object_set_new(o, "supports_tools", json_boolean(is1(G("supports_tools"))));
    json_object_set_new(o, "supports_vision", json_boolean(is1(G("supports_vision"))));
    json_object_set_new(o, "supports_reasoning", json_boolean(is1(G("supports_reasoning"))));
    json_object_set_new(o, "speed_tier", jstr(G("speed_tier")));
    json_object_set_new(o, "quality_tier", jstr(G("quality_tier")));
    json_object_set_new(o, "size_category", jstr(G("size_category")));
    json_object_set_new(o, "edge_optimized", json_boolean(is1(G("edge_optimized"))));
    json_object_set_new(o, "active", json_boolean(is1(G("active"))));
    json_object_set_new(o, "provider_active", json_boolean(is1(G("provider_active"))));
    json_object_set_new(o, "tenant_id", jstr(G("tenant_id")));
    json_object_set_new(o, "source", jstr(G("source")));
    json_object_set_new(o, "created_at", jstr(G("created_at")));
    json_object_set_new(o, "updated_at", jstr(G("updated_at")));
    return o;
}

static json_t *provider_json(const ap_rows_t *r, int i) {
    json_t *o = json_object();
    json_object_set_new(o, "id", jstr(G("id")));
    json_object_set_new(o, "name", jstr(G("name")));
    json_object_set_new(o, "wire_protocol", jstr(G("wire_protocol")));
    json_object_set_new(o, "base_url", jstr(G("base_url")));
    json_object_set_new(o, "private", json_boolean(G("tenant_id") != NULL));
    json_object_set_new(o, "tenant_id", jstr(G("tenant_id")));
    json_object_set_new(o, "active", json_boolean(is1(G("active"))));
    json_object_set_new(o, "notes", jstr(G("notes")));
    json_object_set_new(o, "model_count", jint(G("model_count")));
    json_object_set_new(o, "created_at", jstr(G("created_at")));
    json_object_set_new(o, "updated_at", jstr(G("updated_at")));
    return o;
#undef G
}

/* Turns limit+1 fetched rows into a page; *next is the last id shown. */
static void page(const ap_rows_t *rows, int limit, json_t *(*fn)(const ap_rows_t *, int),
                 json_t **out, const char **next) {
    json_t *arr = json_array();
    int n = rows->nrows > limit ? limit : rows->nrows;
    for (int i = 0; i < n; i++) json_array_append_new(arr, fn(rows, i));
    *next = rows->nrows > limit ? ap_rows_get(rows, n - 1, "id") : NULL;
    *out = arr;
}

/* ---- listing ------------------------------------------------------------- */

static ap_rc bad_param(ap_err_t *err, const char *name, const char *value, const char *hint) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "invalid filter", hint,
                      "%s is \"%.64s\"", name, value);
}

static ap_rc check_cursor(const char *after, ap_err_t *err) {
    if (after && strlen(after) > 512)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "invalid cursor",
                          "pass next_cursor from the previous page unchanged",
                          "cursor is %zu bytes; ids are at most 512", strlen(after));
    return AP_OK;
}

ap_rc ap_catalog_provider_list(ap_tx_t *tx, const char *tenant_id, bool include_inactive,
                               const char *after, int limit, json_t **out, const char **next,
                               ap_err_t *err) {
    ap_rc rc = check_cursor(after, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VINT(include_inactive ? 1 : 0),
                    AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    rc = ap_tx_query(tx,
                     "SELECT " PROVIDER_COLS " FROM llm_providers p"
                     " WHERE (p.tenant_id IS NULL OR p.tenant_id = ?)"
                     " AND (p.active = 1 OR ? = 1) AND p.id > ? ORDER BY p.id LIMIT ?",
                     p, 4, &rows, err);
    if (rc) return rc;
    page(&rows, limit, provider_json, out, next);
    return AP_OK;
}

#define MAX_PARAMS 40
#define MAX_ITEMS 8

typedef struct {
    ap_buf_t sql;
    ap_val_t p[MAX_PARAMS];
    int np;
} query_t;

static void q_add(query_t *q, const char *clause, const ap_val_t *vals, int n) {
    ap_buf_puts(&q->sql, clause);
    for (int i = 0; i < n && q->np < MAX_PARAMS; i++) q->p[q->np++] = vals[i];
}

static const char *const tier_speeds[] = {"fast", "standard", "slow", NULL};
static const char *const tier_qualities[] = {"best", "good", "basic", NULL};
static const char *const tier_sizes[] = {"tiny", "small", "medium", "large", "xl", NULL};

static bool in_list(const char *const *list, const char *s, size_t n) {
    for (; *list; list++)
        if (strlen(*list) == n && strncmp(*list, s, n) == 0) return true;
    return false;
}

/* Splits a comma list, calling fn for each item; refuses empty items and
 * more than MAX_ITEMS. */
static ap_rc each_item(ap_arena_t *a, const char *name, const char *list, query_t *q,
                       ap_rc (*fn)(ap_arena_t *, const char *, query_t *, ap_err_t *),
                       ap_err_t *err) {
    int count = 0;
    const char *s = list;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == 0 || ++count > MAX_ITEMS)
            return bad_param(err, name, list,
                             "give a comma-separated list of up to 8 values, without empty items");
        ap_rc rc = fn(a, ap_arena_strndup(a, s, n), q, err);
        if (rc) return rc;
        if (!comma) return AP_OK;
        s = comma + 1;
    }
}

static ap_rc add_capability(ap_arena_t *a, const char *c, query_t *q, ap_err_t *err) {
    (void)a;
    if (strcmp(c, "tools") == 0) q_add(q, " AND m.supports_tools = 1", NULL, 0);
    else if (strcmp(c, "vision") == 0) q_add(q, " AND m.supports_vision = 1", NULL, 0);
    else if (strcmp(c, "reasoning") == 0) q_add(q, " AND m.supports_reasoning = 1", NULL, 0);
    else if (strcmp(c, "edge") == 0) q_add(q, " AND m.edge_optimized = 1", NULL, 0);
    else if (strcmp(c, "chat") == 0) q_add(q, " AND m.mode = 'chat'", NULL, 0);
    else if (strcmp(c, "embedding") == 0) q_add(q, " AND m.mode = 'embedding'", NULL, 0);
    else
        return bad_param(err, "capability", c,
                         "use tools, vision, reasoning, chat, embedding or edge (comma-separated)");
    return AP_OK;
}

static ap_rc add_tier(ap_arena_t *a, const char *t, query_t *q, ap_err_t *err) {
    (void)a;
    size_t n = strlen(t);
    ap_val_t v = AP_VTEXT(t);
    if (in_list(tier_qualities, t, n)) q_add(q, " AND m.quality_tier = ?", &v, 1);
    else if (in_list(tier_speeds, t, n)) q_add(q, " AND m.speed_tier = ?", &v, 1);
    else if (in_list(tier_sizes, t, n)) q_add(q, " AND m.size_category = ?", &v, 1);
    else
        return bad_param(err, "tier", t,
                         "use best, good, basic (quality), fast, standard, slow (speed) or "
                         "tiny, small, medium, large, xl (size)");
    return AP_OK;
}

ap_rc ap_catalog_model_list(ap_tx_t *tx, const char *tenant_id, const ap_catalog_filter_t *f,
                            json_t **out, const char **next, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    ap_rc rc = check_cursor(f->after, err);
    if (rc) return rc;
    double max_price = 0;
    if (f->max_price) {
        char *end;
        max_price = strtod(f->max_price, &end);
        if (!*f->max_price || *end || !isfinite(max_price) || max_price < 0 || max_price > 1e6)
            return bad_param(err, "max_price", f->max_price,
                             "give a decimal number of USD per million tokens, e.g. 0.5");
    }
    if (f->provider && strlen(f->provider) > 200)
        return bad_param(err, "provider", f->provider, "give a provider id");
    query_t q = {.np = 0};
    ap_buf_init(&q.sql, 0);
    ap_val_t tv = AP_VTEXT(tenant_id);
    q_add(&q, "SELECT " MODEL_COLS MODEL_FROM " WHERE (m.tenant_id IS NULL OR m.tenant_id = ?)",
          &tv, 1);
    if (!f->include_inactive) q_add(&q, " AND m.active = 1 AND p.active = 1", NULL, 0);
    if (f->provider) {
        ap_val_t v[] = {AP_VTEXT(f->provider), AP_VTEXT(tenant_id), AP_VTEXT(f->provider)};
        q_add(&q, " AND (m.provider_id = ? OR (p.tenant_id = ? AND p.name = ?))", v, 3);
    }
    if (f->capability) rc = each_item(a, "capability", f->capability, &q, add_capability, err);
    if (!rc && f->tier) rc = each_item(a, "tier", f->tier, &q, add_tier, err);
    if (!rc && f->max_price) {
        ap_val_t v[] = {AP_VREAL(max_price), AP_VREAL(max_price)};
        q_add(&q,
              " AND m.input_usd_per_mtok IS NOT NULL AND m.input_usd_per_mtok <= ?"
              " AND m.output_usd_per_mtok <= ?",
              v, 2);
    }
    if (!rc) {
        ap_val_t v[] = {AP_VTEXT(f->after ? f->after : ""), AP_VINT(f->limit + 1)};
        q_add(&q, " AND m.id > ? ORDER BY m.id LIMIT ?", v, 2);
        ap_rows_t rows;
        rc = ap_tx_query(tx, q.sql.p, q.p, q.np, &rows, err);
        if (!rc) page(&rows, f->limit, model_json, out, next);
    }
    ap_buf_free(&q.sql);
    return rc;
}

/* ---- finding one model --------------------------------------------------- */

static bool usable(const ap_rows_t *r, int i) {
    const char *w = ap_rows_get(r, i, "wire_protocol");
    return is1(ap_rows_get(r, i, "active")) && is1(ap_rows_get(r, i, "provider_active")) && w &&
           (!strcmp(w, "openai") || !strcmp(w, "anthropic") || !strcmp(w, "gemini") ||
            !strcmp(w, "builtin"));
}

static ap_rc not_found(ap_err_t *err, const char *name, const char *why) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "model not found",
                      "GET /api/v1/llm/models lists the models this tenant can use; name one "
                      "as provider/model",
                      "model \"%.200s\" %s", name, why);
}

/* Finds the row `name` designates for tenant_id (decision 3 of the file
 * comment).  usable_only: a bare model id only counts models that can be
 * called (for the gateway); otherwise every visible one (for reading and
 * administration). */
static ap_rc find_model(ap_tx_t *tx, const char *tenant_id, const char *name, bool usable_only,
                        ap_rows_t *rows, int *row, ap_err_t *err) {
    if (!name || !*name || strlen(name) > 512)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "invalid model name",
                          "name a model as provider/model, e.g. openai/gpt-4o",
                          "the model name is empty or longer than 512 bytes");
    ap_arena_t *a = ap_tx_arena(tx);
    /* The common spelling, a catalog id, is a primary-key lookup; only a
     * miss pays for the search by bare or private names below (it scans
     * the catalog).  An exact id always wins there too, so the answer is
     * the same. */
    ap_val_t pk[] = {AP_VTEXT(name), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " MODEL_COLS MODEL_FROM
                           " WHERE m.id = ? AND (m.tenant_id IS NULL OR m.tenant_id = ?)",
                           pk, 2, rows, err);
    if (rc) return rc;
    if (rows->nrows == 1) {
        *row = 0;
        return AP_OK;
    }
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(name), AP_VTEXT(name), AP_VTEXT(tenant_id),
                    AP_VTEXT(name)};
    rc = ap_tx_query(tx,
                           "SELECT " MODEL_COLS MODEL_FROM
                           " WHERE (m.tenant_id IS NULL OR m.tenant_id = ?)"
                           " AND (m.id = ? OR m.model_id = ?"
                           " OR (p.tenant_id = ? AND (p.name || '/' || m.model_id) = ?))"
                           " ORDER BY m.id LIMIT 50",
                           p, 5, rows, err);
    if (rc) return rc;
    int exact = -1, priv = -1, bare = -1, nbare = 0, nskipped = 0;
    for (int i = 0; i < rows->nrows; i++) {
        const char *id = ap_rows_get(rows, i, "id");
        const char *pt = ap_rows_get(rows, i, "provider_tenant");
        if (strcmp(id, name) == 0) {
            exact = i;
        } else if (pt && strcmp(ap_arena_printf(a, "%s/%s", ap_rows_get(rows, i, "provider_name"),
                                                ap_rows_get(rows, i, "model_id")),
                                name) == 0) {
            priv = i;
        } else if (strcmp(ap_rows_get(rows, i, "model_id"), name) == 0) {
            if (usable_only && !usable(rows, i)) {
                nskipped++;
                continue;
            }
            if (nbare++ == 0) bare = i;
        }
    }
    *row = exact >= 0 ? exact : priv >= 0 ? priv : nbare == 1 ? bare : -1;
    if (*row >= 0) return AP_OK;
    if (nbare > 1) {
        ap_buf_t b;
        ap_buf_init(&b, 0);
        int shown = 0;
        for (int i = 0; i < rows->nrows; i++) {
            if (strcmp(ap_rows_get(rows, i, "model_id"), name) != 0) continue;
            if (usable_only && !usable(rows, i)) continue;
            const char *id = ap_rows_get(rows, i, "id");
            if (b.len + strlen(id) > 300) {
                ap_buf_puts(&b, ", …");
                break;
            }
            ap_buf_printf(&b, "%s%s", shown++ ? ", " : "", id);
        }
        ap_err_set(err, AP_ERR_INVALID, "ambiguous-model", "ambiguous model name",
                   "name one of them as provider/model",
                   "model \"%.120s\" matches %d models: %s", name, nbare, b.p ? b.p : "");
        ap_buf_free(&b);
        return AP_ERR_INVALID;
    }
    return not_found(err, name,
                     nskipped ? "is deactivated, or its provider is not enabled"
                              : "is not in the catalog");
}

ap_rc ap_catalog_model_get(ap_tx_t *tx, const char *tenant_id, const char *name, json_t **out,
                           ap_err_t *err) {
    ap_rows_t rows;
    int i;
    ap_rc rc = find_model(tx, tenant_id, name, false, &rows, &i, err);
    if (rc) return rc;
    *out = model_json(&rows, i);
    return AP_OK;
}

/* One row of MODEL_COLS as an entry (strings are the rows' memory). */
static void entry_of(const ap_rows_t *r, int i, ap_catalog_entry_t *out) {
#define G(c) ap_rows_get(r, i, c)
    out->id = G("id");
    out->provider_id = G("provider_id");
    out->provider_name = G("provider_name");
    out->wire_protocol = G("wire_protocol");
    out->base_url = G("base_url");
    out->model_id = G("model_id");
    out->mode = G("mode");
    out->tenant_id = G("tenant_id");
    out->priced = G("input_usd_per_mtok") && G("output_usd_per_mtok");
    if (out->priced) {
        out->input_usd_per_mtok = strtod(G("input_usd_per_mtok"), NULL);
        out->output_usd_per_mtok = strtod(G("output_usd_per_mtok"), NULL);
    }
    out->supports_tools = is1(G("supports_tools"));
    out->supports_vision = is1(G("supports_vision"));
    out->supports_reasoning = is1(G("supports_reasoning"));
    out->context_window = ap_rows_int(r, i, "context_window", 0);
    out->max_output_tokens = ap_rows_int(r, i, "max_output_tokens", 0);
    out->tiers.speed_tier = G("speed_tier");
    out->tiers.quality_tier = G("quality_tier");
    out->tiers.size_category = G("size_category");
    out->tiers.edge_optimized = is1(G("edge_optimized"));
#undef G
}

ap_rc ap_catalog_resolve(ap_tx_t *tx, const char *tenant_id, const char *model,
                         ap_catalog_entry_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rows_t rows;
    int i;
    ap_rc rc = find_model(tx, tenant_id, model, true, &rows, &i, err);
    if (rc) return rc;
#define G(c) ap_rows_get(&rows, i, c)
    if (!is1(G("active"))) return not_found(err, model, "is deactivated");
    if (!is1(G("provider_active")) || !usable(&rows, i))
        return not_found(err, model,
                         ap_arena_printf(ap_tx_arena(tx),
                                         "belongs to provider %s, which is not enabled (it "
                                         "speaks %s)",
                                         G("provider_id"), G("wire_protocol")));
    entry_of(&rows, i, out);
#undef G
    return AP_OK;
}

ap_rc ap_catalog_chat_models(ap_tx_t *tx, const char *tenant_id, ap_catalog_entry_t **out,
                             int *n, ap_err_t *err) {
    *out = NULL;
    *n = 0;
    ap_rows_t rows;
    ap_val_t v[] = {AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " MODEL_COLS MODEL_FROM
                           " WHERE (m.tenant_id IS NULL OR m.tenant_id = ?) AND m.active = 1"
                           " AND p.active = 1 AND m.mode = 'chat' ORDER BY m.id",
                           v, 1, &rows, err);
    if (rc) return rc;
    ap_catalog_entry_t *e =
        ap_arena_calloc(ap_tx_arena(tx), sizeof *e * (size_t)(rows.nrows ? rows.nrows : 1));
    for (int i = 0; i < rows.nrows; i++)
        if (usable(&rows, i)) entry_of(&rows, i, &e[(*n)++]);
    *out = e;
    return AP_OK;
}

/* ---- platform administration --------------------------------------------- */

static const char *const modes[] = {"chat", "embedding", "completion", "rerank", NULL};

#define TOKENS_MAX 100000000.0
#define PRICE_MAX 1000000.0

#define MODEL_FIELDS                                                                      \
    {"display_name", AP_JT_STRING, false, false, NULL, 200, 0, 0},                        \
        {"mode", AP_JT_STRING, false, false, modes, 0, 0, 0},                             \
        {"context_window", AP_JT_INT, false, true, NULL, 0, 1, TOKENS_MAX},               \
        {"max_output_tokens", AP_JT_INT, false, true, NULL, 0, 1, TOKENS_MAX},            \
        {"input_usd_per_mtok", AP_JT_NUMBER, false, true, NULL, 0, 0, PRICE_MAX},         \
        {"output_usd_per_mtok", AP_JT_NUMBER, false, true, NULL, 0, 0, PRICE_MAX},        \
        {"supports_tools", AP_JT_BOOL, false, false, NULL, 0, 0, 0},                      \
        {"supports_vision", AP_JT_BOOL, false, false, NULL, 0, 0, 0},                     \
        {"supports_reasoning", AP_JT_BOOL, false, false, NULL, 0, 0, 0}
#define TIER_FIELDS                                                                       \
    {"speed_tier", AP_JT_STRING, false, false, tier_speeds, 0, 0, 0},                     \
        {"quality_tier", AP_JT_STRING, false, false, tier_qualities, 0, 0, 0},            \
        {"size_category", AP_JT_STRING, false, false, tier_sizes, 0, 0, 0},               \
        {"edge_optimized", AP_JT_BOOL, false, false, NULL, 0, 0, 0},                      \
        {"active", AP_JT_BOOL, false, false, NULL, 0, 0, 0}

const ap_jfield_t ap_catalog_model_create_fields[] = {
    {"provider_id", AP_JT_STRING, true, false, NULL, 64, 0, 0},
    {"model_id", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    MODEL_FIELDS,
    TIER_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_catalog_model_update_fields[] = {
    {"id", AP_JT_STRING, true, false, NULL, 512, 0, 0},
    MODEL_FIELDS,
    TIER_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_catalog_model_ref_fields[] = {
    {"id", AP_JT_STRING, true, false, NULL, 512, 0, 0},
    AP_JFIELDS_END,
};

/* A model's columns as they will be written. */
typedef struct {
    const char *display_name, *mode, *speed, *quality, *size;
    json_t *ctx, *max_out, *in_price, *out_price; /* JSON number or null (borrowed) */
    bool tools, vision, reasoning, edge, active;
} model_vals_t;

static ap_rc check_model_id(const char *id, ap_err_t *err) {
    if (!*id || id[0] == '/')
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid model_id",
                          "give the provider's own model name, e.g. gpt-4o",
                          "model_id \"%.64s\" is empty or starts with '/'", id);
    for (const char *s = id; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid model_id",
                              "model names have no spaces or control characters",
                              "model_id \"%.64s\" contains a space or control character", id);
    return AP_OK;
}

static ap_rc check_prices(const model_vals_t *v, ap_err_t *err) {
    if (json_is_null(v->in_price) != json_is_null(v->out_price))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "give both prices or neither",
                          "set input_usd_per_mtok and output_usd_per_mtok together; null in "
                          "both makes the model unpriced",
                          "only one of input_usd_per_mtok and output_usd_per_mtok would be set");
    return AP_OK;
}

static ap_val_t num_val(json_t *v) {
    if (json_is_integer(v)) return AP_VINT(json_integer_value(v));
    if (json_is_real(v)) return AP_VREAL(json_real_value(v));
    return AP_VNULL;
}

static bool bool_or(json_t *in, const char *k, bool dflt) {
    json_t *v = json_object_get(in, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *str_or(json_t *in, const char *k, const char *dflt) {
    const char *s = ap_json_str(in, k);
    return s ? s : dflt;
}

static json_t *num_or(json_t *in, const char *k, json_t *dflt) {
    json_t *v = json_object_get(in, k);
    return v ? v : dflt;
}

/* Fills the tiers the input left out from the rule. */
static void derive_missing(const char *provider_id, const char *model_id, model_vals_t *v,
                           json_t *in) {
    bool priced = !json_is_null(v->in_price) && !json_is_null(v->out_price);
    ap_catalog_tiers_t t;
    ap_catalog_derive(provider_id, model_id, v->mode, priced,
                      priced ? json_number_value(v->in_price) : 0,
                      priced ? json_number_value(v->out_price) : 0, &t);
    v->speed = str_or(in, "speed_tier", t.speed_tier);
    v->quality = str_or(in, "quality_tier", t.quality_tier);
    v->size = str_or(in, "size_category", t.size_category);
    v->edge = bool_or(in, "edge_optimized", t.edge_optimized);
}

static ap_rc fetch_by_id(ap_tx_t *tx, const char *id, ap_rows_t *rows, ap_err_t *err) {
    ap_val_t p[] = {AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx, "SELECT " MODEL_COLS MODEL_FROM " WHERE m.id = ?", p, 1, rows, err);
    if (!rc && rows->nrows == 0)
        rc = ap_err_set(err, AP_ERR_INTERNAL, NULL, "model vanished", NULL, "%.200s", id);
    return rc;
}

static ap_rc insert_model(ap_tx_t *tx, const char *provider_id, const char *model_id,
                          const char *tenant_id, const char *source, const model_vals_t *v,
                          bool *inserted, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    const char *id = ap_arena_printf(a, "%s/%s", provider_id, model_id);
    ap_val_t p[] = {AP_VTEXT(id),
                    AP_VTEXT(provider_id),
                    AP_VTEXT(model_id),
                    AP_VTEXT(v->display_name),
                    AP_VTEXT(v->mode),
                    num_val(v->ctx),
                    num_val(v->max_out),
                    num_val(v->in_price),
                    num_val(v->out_price),
                    AP_VINT(v->tools),
                    AP_VINT(v->vision),
                    AP_VINT(v->reasoning),
                    AP_VTEXT(v->speed),
                    AP_VTEXT(v->quality),
                    AP_VTEXT(v->size),
                    AP_VINT(v->edge),
                    AP_VINT(v->active),
                    AP_VTEXT(tenant_id),
                    AP_VTEXT(source),
                    AP_VTEXT(now),
                    AP_VTEXT(now)};
    ap_rows_t rows;
    ap_rc rc = ap_tx_query(
        tx,
        "INSERT INTO llm_models (id, provider_id, model_id, display_name, mode, context_window,"
        " max_output_tokens, input_usd_per_mtok, output_usd_per_mtok, supports_tools,"
        " supports_vision, supports_reasoning, speed_tier, quality_tier, size_category,"
        " edge_optimized, active, tenant_id, source, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        p, 21, &rows, err);
    if (!rc) *inserted = rows.nrows == 1;
    return rc;
}

static ap_rc audit_platform(ap_tx_t *tx, const ap_actor_t *actor, const char *action,
                            const char *id, json_t *changes, ap_err_t *err) {
    ap_audit_event_t ev = {action, "llm_model", id, "success", changes};
    return ap_audit_append(tx, AP_NIL_UUID, actor, &ev, NULL, err);
}

ap_rc ap_catalog_model_create(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                              ap_err_t *err) {
    *out = NULL;
    const char *provider_id = ap_json_str(in, "provider_id");
    const char *model_id = ap_json_str(in, "model_id");
    ap_rc rc = check_model_id(model_id, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t pp[] = {AP_VTEXT(provider_id)};
    rc = ap_tx_query(tx, "SELECT id FROM llm_providers WHERE id = ? AND tenant_id IS NULL", pp, 1,
                     &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown provider",
                          "GET /api/v1/llm/providers lists the platform providers",
                          "provider_id \"%.64s\" is not a platform provider", provider_id);
    json_t *null = json_null(); /* a static singleton in jansson */
    model_vals_t v = {
        .display_name = str_or(in, "display_name", model_id),
        .mode = str_or(in, "mode", "chat"),
        .ctx = num_or(in, "context_window", null),
        .max_out = num_or(in, "max_output_tokens", null),
        .in_price = num_or(in, "input_usd_per_mtok", null),
        .out_price = num_or(in, "output_usd_per_mtok", null),
        .tools = bool_or(in, "supports_tools", false),
        .vision = bool_or(in, "supports_vision", false),
        .reasoning = bool_or(in, "supports_reasoning", false),
        .active = bool_or(in, "active", true),
    };
    rc = check_prices(&v, err);
    if (!rc) {
        derive_missing(provider_id, model_id, &v, in);
        bool inserted = false;
        rc = insert_model(tx, provider_id, model_id, NULL, "admin", &v, &inserted, err);
        if (!rc && !inserted)
            rc = ap_err_set(err, AP_ERR_CONFLICT, "conflict", "model already exists",
                            "change it with PATCH /api/v1/llm/models",
                            "model \"%.64s/%.200s\" is in the catalog", provider_id, model_id);
    }
    if (rc) return rc;
    const char *id = ap_arena_printf(ap_tx_arena(tx), "%s/%s", provider_id, model_id);
    rc = fetch_by_id(tx, id, &rows, err);
    if (rc) return rc;
    json_t *o = model_json(&rows, 0);
    rc = audit_platform(tx, actor, "llm.model.create", id, o, err);
    if (rc) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return AP_OK;
}

/* {field: {from, to}} for every field of `in` (but id) whose value changed. */
static json_t *diff(json_t *in, json_t *before, json_t *after) {
    json_t *d = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        if (strcmp(k, "id") == 0) continue;
        json_t *b = json_object_get(before, k), *x = json_object_get(after, k);
        if (b && x && !json_equal(b, x))
            json_object_set_new(d, k, json_pack("{s:O,s:O}", "from", b, "to", x));
    }
    return d;
}

ap_rc ap_catalog_model_update(ap_tx_t *tx, const ap_actor_t *actor, json_t *in, json_t **out,
                              ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    int i;
    ap_rc rc = find_model(tx, NULL, ap_json_str(in, "id"), false, &rows, &i, err);
    if (rc) return rc;
    json_t *before = model_json(&rows, i);
    const char *id = ap_rows_get(&rows, i, "id");
#define OLD(k) json_object_get(before, k)
    model_vals_t v = {
        .display_name = str_or(in, "display_name", json_string_value(OLD("display_name"))),
        .mode = str_or(in, "mode", json_string_value(OLD("mode"))),
        .speed = str_or(in, "speed_tier", json_string_value(OLD("speed_tier"))),
        .quality = str_or(in, "quality_tier", json_string_value(OLD("quality_tier"))),
        .size = str_or(in, "size_category", json_string_value(OLD("size_category"))),
        .ctx = num_or(in, "context_window", OLD("context_window")),
        .max_out = num_or(in, "max_output_tokens", OLD("max_output_tokens")),
        .in_price = num_or(in, "input_usd_per_mtok", OLD("input_usd_per_mtok")),
        .out_price = num_or(in, "output_usd_per_mtok", OLD("output_usd_per_mtok")),
        .tools = bool_or(in, "supports_tools", json_is_true(OLD("supports_tools"))),
        .vision = bool_or(in, "supports_vision", json_is_true(OLD("supports_vision"))),
        .reasoning = bool_or(in, "supports_reasoning", json_is_true(OLD("supports_reasoning"))),
        .edge = bool_or(in, "edge_optimized", json_is_true(OLD("edge_optimized"))),
        .active = bool_or(in, "active", json_is_true(OLD("active"))),
    };
#undef OLD
    rc = check_prices(&v, err);
    if (!rc) {
        char now[AP_TIME_LEN];
        ap_time_format(ap_now_ms(), now);
        ap_val_t p[] = {AP_VTEXT(v.display_name), AP_VTEXT(v.mode), num_val(v.ctx),
                        num_val(v.max_out),       num_val(v.in_price), num_val(v.out_price),
                        AP_VINT(v.tools),         AP_VINT(v.vision),   AP_VINT(v.reasoning),
                        AP_VTEXT(v.speed),        AP_VTEXT(v.quality), AP_VTEXT(v.size),
                        AP_VINT(v.edge),          AP_VINT(v.active),   AP_VTEXT(now),
                        AP_VTEXT(id)};
        rc = ap_tx_query(tx,
                         "UPDATE llm_models SET display_name = ?, mode = ?, context_window = ?,"
                         " max_output_tokens = ?, input_usd_per_mtok = ?,"
                         " output_usd_per_mtok = ?, supports_tools = ?, supports_vision = ?,"
                         " supports_reasoning = ?, speed_tier = ?, quality_tier = ?,"
                         " size_category = ?, edge_optimized = ?, active = ?, updated_at = ?"
                         " WHERE id = ? AND tenant_id IS NULL",
                         p, 16, NULL, err);
    }
    ap_rows_t now_rows;
    if (!rc) rc = fetch_by_id(tx, id, &now_rows, err);
    json_t *after = rc ? NULL : model_json(&now_rows, 0);
    if (!rc) {
        json_t *changes = diff(in, before, after);
        rc = audit_platform(tx, actor, "llm.model.update", id, changes, err);
        json_decref(changes);
    }
    json_decref(before);
    if (rc) {
        json_decref(after);
        return rc;
    }
    *out = after;
    return AP_OK;
}

ap_rc ap_catalog_model_deactivate(ap_tx_t *tx, const ap_actor_t *actor, const char *name,
                                  json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    int i;
    ap_rc rc = find_model(tx, NULL, name, false, &rows, &i, err);
    if (rc) return rc;
    const char *id = ap_rows_get(&rows, i, "id");
    if (!is1(ap_rows_get(&rows, i, "active")))
        return ap_err_set(err, AP_ERR_CONFLICT, "invalid-state", "model is already inactive",
                          "reactivate it with PATCH /api/v1/llm/models and \"active\": true",
                          "model \"%.200s\" is inactive", id);
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t p[] = {AP_VTEXT(now), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "UPDATE llm_models SET active = 0, updated_at = ?"
                     " WHERE id = ? AND tenant_id IS NULL",
                     p, 2, NULL, err);
    if (!rc) rc = fetch_by_id(tx, id, &rows, err);
    if (rc) return rc;
    json_t *changes = json_pack("{s:{s:b,s:b}}", "active", "from", 1, "to", 0);
    rc = audit_platform(tx, actor, "llm.model.deactivate", id, changes, err);
    json_decref(changes);
    if (rc) return rc;
    *out = model_json(&rows, 0);
    return AP_OK;
}

/* ---- tenants' private providers ----------------------------------------- */

const ap_jfield_t ap_catalog_private_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 63, 0, 0},
    {"base_url", AP_JT_STRING, true, false, NULL, 2048, 0, 0},
    {"notes", AP_JT_STRING, false, true, NULL, 1000, 0, 0},
    {"models", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

static const ap_jfield_t private_model_fields[] = {
    {"model_id", AP_JT_STRING, true, false, NULL, 200, 0, 0},
    MODEL_FIELDS,
    AP_JFIELDS_END,
};

static ap_rc check_name(const char *name, ap_err_t *err) {
    bool ok = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9');
    for (const char *s = name; ok && *s; s++)
        ok = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
             *s == '.';
    if (!ok)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid provider name",
                          "use lowercase letters, digits, '-', '_' and '.', starting with a "
                          "letter or digit, e.g. my-vllm",
                          "name \"%.63s\"", name);
    return AP_OK;
}

/* http(s)://host[:port][/path], no credentials, query or fragment.  *out
 * is the URL without trailing slashes (tx-arena memory). */
static ap_rc check_base_url(ap_arena_t *a, const char *url, const char **out, ap_err_t *err) {
    const char *hint = "give the server's OpenAI-compatible base, e.g. "
                       "http://10.0.0.5:8000/v1 or https://llm.example.com/v1; keys never go "
                       "in the URL";
    size_t scheme = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    const char *why = NULL;
    if (!scheme) why = "must start with http:// or https://";
    for (const char *s = url; !why && *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f || (unsigned char)*s >= 0x80)
            why = "contains a space, a control or a non-ASCII character";
        else if (*s == '?' || *s == '#')
            why = "has a query or a fragment";
    if (!why) {
        const char *host = url + scheme;
        size_t alen = strcspn(host, "/");
        if (memchr(host, '@', alen))
            why = "carries credentials (user:password@); they are never stored here";
        else if (alen == 0)
            why = "has no host";
        else {
            size_t hlen = alen;
            if (host[0] == '[') {
                const char *close = memchr(host, ']', alen);
                if (!close) why = "has an unterminated IPv6 address";
                hlen = close ? (size_t)(close - host) + 1 : alen;
            } else {
                hlen = strcspn(host, ":/");
                for (size_t i = 0; !why && i < hlen; i++)
                    if (!((host[i] >= 'a' && host[i] <= 'z') ||
                          (host[i] >= 'A' && host[i] <= 'Z') ||
                          (host[i] >= '0' && host[i] <= '9') || host[i] == '.' ||
                          host[i] == '-'))
                        why = "has an invalid host name";
                if (!why && hlen == 0) why = "has no host";
            }
            if (!why && hlen < alen) {
                const char *port = host + hlen;
                size_t plen = alen - hlen;
                long pv = 0;
                bool ok = port[0] == ':' && plen >= 2 && plen <= 6;
                for (size_t i = 1; ok && i < plen; i++) {
                    ok = port[i] >= '0' && port[i] <= '9';
                    pv = pv * 10 + (port[i] - '0');
                }
                if (!ok || pv < 1 || pv > 65535) why = "has an invalid port";
            }
        }
    }
    if (why)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid base_url", hint,
                          "base_url %s", why);
    size_t n = strlen(url);
    while (n > scheme && url[n - 1] == '/') n--;
    *out = ap_arena_strndup(a, url, n);
    return AP_OK;
}

/* Checks models[] and fills vals (one per item). */
static ap_rc check_private_models(json_t *models, const char *provider_id, model_vals_t *vals,
                                  const char **ids, ap_err_t *err) {
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        ap_rc rc = AP_OK;
        json_t *obj = NULL;
        if (json_is_string(m)) {
            obj = json_pack("{s:O}", "model_id", m);
        } else if (json_is_object(m)) {
            obj = json_incref(m);
            rc = ap_json_check(obj, private_model_fields, err);
        } else {
            rc = ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid model",
                            "give each model as a string (its id) or an object with model_id",
                            "got %s", json_is_array(m) ? "an array" : "a number, boolean or null");
        }
        const char *id = rc ? NULL : ap_json_str(obj, "model_id");
        if (!rc && strlen(id) > 200)
            rc = ap_err_set(err, AP_ERR_INVALID, "invalid-field", "field too long",
                            "shorten the value", "model_id is %zu bytes; at most 200", strlen(id));
        if (!rc) rc = check_model_id(id, err);
        for (size_t j = 0; !rc && j < i; j++)
            if (strcmp(ids[j], id) == 0)
                rc = ap_err_set(err, AP_ERR_INVALID, "invalid-field", "duplicate model",
                                "list each model once", "model_id \"%.64s\" appears twice", id);
        if (!rc) {
            json_t *null = json_null(); /* a static singleton in jansson */
            ids[i] = id;
            vals[i] = (model_vals_t){
                .display_name = str_or(obj, "display_name", id),
                .mode = str_or(obj, "mode", "chat"),
                .ctx = num_or(obj, "context_window", null),
                .max_out = num_or(obj, "max_output_tokens", null),
                .in_price = num_or(obj, "input_usd_per_mtok", null),
                .out_price = num_or(obj, "output_usd_per_mtok", null),
                .tools = bool_or(obj, "supports_tools", false),
                .vision = bool_or(obj, "supports_vision", false),
                .reasoning = bool_or(obj, "supports_reasoning", false),
                .active = true,
            };
            rc = check_prices(&vals[i], err);
            if (!rc) derive_missing(provider_id, id, &vals[i], obj);
        }
        /* The values in vals point into m (obj holds m's own members, or m
         * itself), which lives as long as the caller's input. */
        json_decref(obj);
        if (rc) {
            char d[sizeof err->detail];
            snprintf(d, sizeof d, "models[%zu]: %.480s", i, err->detail);
            snprintf(err->detail, sizeof err->detail, "%s", d);
            return rc;
        }
    }
    return AP_OK;
}

static ap_rc private_models_json(ap_tx_t *tx, const char *tenant_id, const char *first,
                                 const char *last, json_t *providers, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(first), AP_VTEXT(last)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " MODEL_COLS MODEL_FROM " WHERE m.tenant_id = ?"
                           " AND m.provider_id >= ? AND m.provider_id <= ?"
                           " ORDER BY m.provider_id, m.id",
                           p, 3, &rows, err);
    if (rc) return rc;
    size_t k;
    json_t *prov;
    json_array_foreach(providers, k, prov) {
        const char *pid = json_string_value(json_object_get(prov, "id"));
        json_t *arr = json_array();
        for (int i = 0; i < rows.nrows; i++)
            if (strcmp(ap_rows_get(&rows, i, "provider_id"), pid) == 0)
                json_array_append_new(arr, model_json(&rows, i));
        json_object_set_new(prov, "models", arr);
    }
    return AP_OK;
}

ap_rc ap_catalog_private_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_arena_t *a = ap_tx_arena(tx);
    const char *name = ap_json_str(in, "name");
    const char *url = NULL;
    ap_rc rc = check_name(name, err);
    if (!rc) rc = check_base_url(a, ap_json_str(in, "base_url"), &url, err);
    if (rc) return rc;
    json_t *models = json_object_get(in, "models");
    size_t nm = models ? json_array_size(models) : 0;
    if (nm > AP_CATALOG_MAX_PRIVATE_MODELS)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "too many models",
                          "register at most 200 models per provider", "models has %zu items",
                          nm);
    ap_rows_t rows;
    ap_val_t q[] = {AP_VTEXT(name), AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx,
                     "SELECT (SELECT COUNT(*) FROM llm_providers WHERE id = ? AND tenant_id IS NULL)"
                     " AS platform, (SELECT COUNT(*) FROM llm_providers WHERE tenant_id = ?) AS own",
                     q, 2, &rows, err);
    if (rc) return rc;
    if (ap_rows_int(&rows, 0, "platform", 0))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "name taken by the platform",
                          "choose a name that is not a platform provider id",
                          "\"%s\" is a platform provider", name);
    if (ap_rows_int(&rows, 0, "own", 0) >= AP_CATALOG_MAX_PRIVATE)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "too many private providers",
                          "delete one you no longer use",
                          "a tenant may register at most %d private providers",
                          AP_CATALOG_MAX_PRIVATE);
    char id[AP_UUID_LEN], now[AP_TIME_LEN];
    ap_uuid7(id);
    ap_time_format(ap_now_ms(), now);
    model_vals_t *vals = ap_arena_calloc(a, (nm + 1) * sizeof *vals);
    const char **ids = ap_arena_calloc(a, (nm + 1) * sizeof *ids);
    if (models && (rc = check_private_models(models, id, vals, ids, err))) return rc;
    ap_val_t p[] = {AP_VTEXT(id),        AP_VTEXT(name), AP_VTEXT(url),
                    AP_VTEXT(tenant_id), AP_VTEXT(ap_json_str(in, "notes")),
                    AP_VTEXT(now),       AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO llm_providers (id, name, wire_protocol, base_url, tenant_id,"
                     " active, notes, created_at, updated_at)"
                     " VALUES (?, ?, 'openai', ?, ?, 1, ?, ?, ?)"
                     " ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id",
                     p, 7, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "provider name already in use",
                          "choose another name, or delete the existing provider first",
                          "this tenant has a private provider named \"%s\"", name);
    for (size_t i = 0; i < nm; i++) {
        bool inserted = false;
        rc = insert_model(tx, id, ids[i], tenant_id, "tenant", &vals[i], &inserted, err);
        if (rc) return rc;
    }
    ap_val_t s[] = {AP_VTEXT(id)};
    rc = ap_tx_query(tx, "SELECT " PROVIDER_COLS " FROM llm_providers p WHERE p.id = ?", s, 1,
                     &rows, err);
    if (rc) return rc;
    json_t *o = json_array();
    json_array_append_new(o, provider_json(&rows, 0));
    rc = private_models_json(tx, tenant_id, id, id, o, err);
    json_t *prov = json_incref(json_array_get(o, 0));
    json_decref(o);
    if (!rc) {
        json_t *mids = json_array();
        for (size_t i = 0; i < nm; i++) json_array_append_new(mids, json_string(ids[i]));
        json_t *changes = json_pack("{s:s,s:s,s:o}", "name", name, "base_url", url, "models", mids);
        ap_audit_event_t ev = {"llm.private_provider.create", "llm_provider", id, "success",
                               changes};
        rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
        json_decref(changes);
    }
    if (rc) {
        json_decref(prov);
        return rc;
    }
    *out = prov;
    return AP_OK;
}

ap_rc ap_catalog_private_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                              json_t **out, const char **next, ap_err_t *err) {
    ap_rc rc = check_cursor(after, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    rc = ap_tx_query(tx,
                     "SELECT " PROVIDER_COLS " FROM llm_providers p"
                     " WHERE p.tenant_id = ? AND p.id > ? ORDER BY p.id LIMIT ?",
                     p, 3, &rows, err);
    if (rc) return rc;
    json_t *arr;
    page(&rows, limit, provider_json, &arr, next);
    size_t n = json_array_size(arr);
    if (n) {
        const char *first = json_string_value(json_object_get(json_array_get(arr, 0), "id"));
        const char *last = json_string_value(json_object_get(json_array_get(arr, n - 1), "id"));
        rc = private_models_json(tx, tenant_id, first, last, arr, err);
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return AP_OK;
}

ap_rc ap_catalog_private_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                                const char *provider_id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(provider_id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM llm_models WHERE provider_id = ? AND tenant_id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    int64_t models = rows.changes;
    rc = ap_tx_query(tx, "DELETE FROM llm_providers WHERE id = ? AND tenant_id = ? RETURNING name",
                     p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "provider not found",
                          "GET /api/v1/llm/private-providers lists this tenant's providers",
                          "no private provider with id \"%.64s\" in this tenant", provider_id);
    json_t *changes = json_pack("{s:s,s:I}", "name", ap_rows_get(&rows, 0, "name"),
                                "models_deleted", (json_int_t)models);
    ap_audit_event_t ev = {"llm.private_provider.delete", "llm_provider", provider_id, "success",
                           changes};
    rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    return rc;
}
