/*
 * config.c - CRUD of tenants' LLM configurations and the router's lookup.
 *
 * 1. An update reads the row, lays the fields given over it and checks
 *    the result as a whole, so a PATCH can never leave a configuration the
 *    create call would have refused.
 * 2. Names are checked before writing (a clear 409 naming the name) and
 *    the unique keys stay as the guard against races.
 */
#include "llm/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "core/secret.h"
#include "llm/catalog.h"
#include "llm/policy.h"

#define USD_MAX 1e9

#define CONFIG_FIELDS                                                                   \
    {"is_tenant_default", AP_JT_BOOL, false, false, NULL, 0, 0, 0},                     \
        {"primary_model", AP_JT_STRING, false, true, NULL, 512, 0, 0},                  \
        {"fallback_model", AP_JT_STRING, false, true, NULL, 512, 0, 0},                 \
        {"temperature", AP_JT_NUMBER, false, true, NULL, 0, 0, 2},                      \
        {"max_tokens", AP_JT_INT, false, true, NULL, 0, 1, 10000000},                   \
        {"routing_rules", AP_JT_ARRAY, false, true, NULL, 0, 0, 0},                     \
        {"budget_limit_daily", AP_JT_NUMBER, false, true, NULL, 0, 0, USD_MAX},         \
        {"budget_limit_monthly", AP_JT_NUMBER, false, true, NULL, 0, 0, USD_MAX},       \
        {"use_platform_key", AP_JT_BOOL, false, false, NULL, 0, 0, 0},                  \
        {"byok", AP_JT_OBJECT, false, true, NULL, 0, 0, 0}

const ap_jfield_t ap_llm_config_create_fields[] = {
    {"name", AP_JT_STRING, true, false, NULL, 63, 0, 0},
    CONFIG_FIELDS,
    AP_JFIELDS_END,
};

const ap_jfield_t ap_llm_config_update_fields[] = {
    {"name", AP_JT_STRING, false, false, NULL, 63, 0, 0},
    CONFIG_FIELDS,
    AP_JFIELDS_END,
};

#define COLS                                                                                \
    "id, tenant_id, name, is_tenant_default, primary_model, fallback_model, temperature,"  \
    " max_tokens, routing_rules, budget_limit_daily, budget_limit_monthly,"                 \
    " use_platform_key, created_at, updated_at, byok_provider, byok_key_ciphertext,"      \
    " byok_nonce, byok_data_key_wrapped, byok_key_last4"

static json_t *row_json_base(const ap_rows_t *r, int i);

static json_t *real_or_null(const char *s) {
    return s ? json_real(strtod(s, NULL)) : json_null();
}

/* The key itself is never rendered: its provider, that it is set, and its
 * last 4 characters. */
static json_t *byok_json(const ap_rows_t *r, int i) {
    const char *prov = ap_rows_get(r, i, "byok_provider");
    if (!prov) return json_null();
    return json_pack("{s:s,s:b,s:s}", "provider", prov, "api_key_set", 1, "api_key_last4",
                     ap_rows_get(r, i, "byok_key_last4") ? ap_rows_get(r, i, "byok_key_last4")
                                                         : "");
}

static json_t *row_json(const ap_rows_t *r, int i) {
    json_t *o = row_json_base(r, i);
    json_object_set_new(o, "byok", byok_json(r, i));
    return o;
}

static json_t *row_json_base(const ap_rows_t *r, int i) {
    const char *rules = ap_rows_get(r, i, "routing_rules");
    json_t *jr = rules ? json_loads(rules, 0, NULL) : NULL;
    const char *mt = ap_rows_get(r, i, "max_tokens");
    return json_pack(
        "{s:s,s:s,s:s,s:b,s:s?,s:s?,s:o,s:o,s:o,s:o,s:o,s:b,s:s,s:s}", "id",
        ap_rows_get(r, i, "id"), "tenant_id", ap_rows_get(r, i, "tenant_id"), "name",
        ap_rows_get(r, i, "name"), "is_tenant_default",
        ap_rows_int(r, i, "is_tenant_default", 0) != 0, "primary_model",
        ap_rows_get(r, i, "primary_model"), "fallback_model", ap_rows_get(r, i, "fallback_model"),
        "temperature", real_or_null(ap_rows_get(r, i, "temperature")), "max_tokens",
        mt ? json_integer(strtoll(mt, NULL, 10)) : json_null(), "routing_rules",
        jr ? jr : json_null(), "budget_limit_daily",
        real_or_null(ap_rows_get(r, i, "budget_limit_daily")), "budget_limit_monthly",
        real_or_null(ap_rows_get(r, i, "budget_limit_monthly")), "use_platform_key",
        ap_rows_int(r, i, "use_platform_key", 1) != 0, "created_at",
        ap_rows_get(r, i, "created_at"), "updated_at", ap_rows_get(r, i, "updated_at"));
}

static ap_rc not_found(const char *id, ap_err_t *err) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "configuration not found",
                      "GET /api/v1/llm/configs lists this tenant's configurations",
                      "no LLM configuration with id \"%.64s\" in this tenant", id);
}

static ap_rc check_name(const char *name, ap_err_t *err) {
    bool ok = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9');
    for (const char *s = name; ok && *s; s++)
        ok = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
             *s == '.';
    if (!ok || strcmp(name, "auto") == 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid configuration name",
                          "use lowercase letters, digits, '-', '_' and '.', starting with a "
                          "letter or digit (not \"auto\"), e.g. support-bot",
                          "name \"%.63s\"", name);
    return AP_OK;
}

static ap_rc check_model(ap_tx_t *tx, const char *tenant_id, const char *field, const char *model,
                         ap_err_t *err) {
    if (!model) return AP_OK;
    ap_catalog_entry_t e;
    ap_err_t e2 = {0};
    if (ap_catalog_resolve(tx, tenant_id, model, &e, &e2))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "unknown model",
                          "name a chat model of GET /api/v1/llm/models?capability=chat",
                          "%s \"%.200s\": %.200s", field, model, e2.detail);
    if (strcmp(e.mode, "chat") != 0)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "not a chat model",
                          "name a chat model of GET /api/v1/llm/models?capability=chat",
                          "%s \"%.200s\" is a %s model", field, model, e.mode);
    return AP_OK;
}

/* Checks a whole configuration (create input, or row + patch). */
static ap_rc check_all(ap_tx_t *tx, const char *tenant_id, json_t *c, ap_err_t *err) {
    ap_rc rc = check_name(ap_json_str(c, "name"), err);
    if (!rc) rc = check_model(tx, tenant_id, "primary_model", ap_json_str(c, "primary_model"), err);
    if (!rc)
        rc = check_model(tx, tenant_id, "fallback_model", ap_json_str(c, "fallback_model"), err);
    json_t *rules = json_object_get(c, "routing_rules");
    if (!rc) rc = ap_llm_rules_check(rules, err);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        if (rc) break;
        char field[48];
        snprintf(field, sizeof field, "routing_rules[%zu].model", i);
        rc = check_model(tx, tenant_id, field, json_string_value(json_object_get(r, "model")), err);
    }
    return rc;
}

static ap_rc name_free(ap_tx_t *tx, const char *tenant_id, const char *name, const char *id,
                       ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(name), AP_VTEXT(id ? id : "")};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT COUNT(*) AS n FROM llm_configs WHERE tenant_id = ? AND name = ?"
                           " AND id <> ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    if (ap_rows_int(&rows, 0, "n", 0))
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "name taken",
                          "choose another name, or update the existing configuration",
                          "an LLM configuration named \"%.63s\" exists in this tenant", name);
    return AP_OK;
}

static ap_val_t num_val(json_t *c, const char *k) {
    json_t *v = json_object_get(c, k);
    return json_is_number(v) ? AP_VREAL(json_number_value(v)) : AP_VNULL;
}

/* Writes c (checked) as row id: INSERT when !update. */
static ap_rc store(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *c, bool update,
                   ap_err_t *err) {
    bool dflt = json_is_true(json_object_get(c, "is_tenant_default"));
    ap_rc rc;
    if (dflt) {
        ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(id)};
        rc = ap_tx_query(tx,
                         "UPDATE llm_configs SET is_tenant_default = 0 WHERE tenant_id = ?"
                         " AND id <> ? AND is_tenant_default = 1",
                         p, 2, NULL, err);
        if (rc) return rc;
    }
    json_t *rules = json_object_get(c, "routing_rules");
    char *rules_s = json_is_array(rules) ? json_dumps(rules, JSON_COMPACT) : NULL;
    json_t *mt = json_object_get(c, "max_tokens");
    json_t *upk = json_object_get(c, "use_platform_key");
    char now[AP_TIME_LEN];
    ap_time_format(ap_now_ms(), now);
    ap_val_t v[] = {AP_VTEXT(ap_json_str(c, "name")),
                    AP_VINT(dflt ? 1 : 0),
                    AP_VTEXT(ap_json_str(c, "primary_model")),
                    AP_VTEXT(ap_json_str(c, "fallback_model")),
                    num_val(c, "temperature"),
                    json_is_integer(mt) ? AP_VINT(json_integer_value(mt)) : AP_VNULL,
                    AP_VTEXT(rules_s),
                    num_val(c, "budget_limit_daily"),
                    num_val(c, "budget_limit_monthly"),
                    AP_VINT(upk && !json_is_true(upk) ? 0 : 1),
                    AP_VTEXT(now),
                    AP_VTEXT(id),
                    AP_VTEXT(tenant_id)};
    if (update)
        rc = ap_tx_query(tx,
                         "UPDATE llm_configs SET name = ?, is_tenant_default = ?,"
                         " primary_model = ?, fallback_model = ?, temperature = ?,"
                         " max_tokens = ?, routing_rules = ?, budget_limit_daily = ?,"
                         " budget_limit_monthly = ?, use_platform_key = ?, updated_at = ?"
                         " WHERE id = ? AND tenant_id = ?",
                         v, 13, NULL, err);
    else
        rc = ap_tx_query(tx,
                         "INSERT INTO llm_configs (name, is_tenant_default, primary_model,"
                         " fallback_model, temperature, max_tokens, routing_rules,"
                         " budget_limit_daily, budget_limit_monthly, use_platform_key,"
                         " updated_at, id, tenant_id, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (ap_val_t[]){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
                                      v[10], v[11], v[12], AP_VTEXT(now)},
                         14, NULL, err);
    free(rules_s);
    return rc;
}

/* The fields given, for the audit entry: a BYOK key becomes "api_key_set". */
static ap_rc audit(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                   const char *action, const char *id, json_t *in, ap_err_t *err) {
    json_t *changes = json_deep_copy(in);
    json_t *b = json_object_get(changes, "byok");
    if (json_is_object(b)) {
        json_object_del(b, "api_key");
        json_object_set_new(b, "api_key_set", json_true());
    }
    ap_audit_event_t ev = {action, "llm_config", id, "success", changes};
    ap_rc rc = ap_audit_append(tx, tenant_id, actor, &ev, NULL, err);
    json_decref(changes);
    return rc;
}

/* {"provider": "<platform provider id>", "api_key": "..."} or null. */
static ap_rc check_byok(ap_tx_t *tx, json_t *in, const uint8_t *master, ap_err_t *err) {
    json_t *b = json_object_get(in, "byok");
    if (!b || json_is_null(b)) return AP_OK;
    const char *hint = "give {\"provider\": \"openai\", \"api_key\": \"sk-...\"}, or null to remove "
                       "the key";
    const char *prov = json_string_value(json_object_get(b, "provider"));
    const char *key = json_string_value(json_object_get(b, "api_key"));
    if (!prov || !key || json_object_size(b) != 2)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid byok", hint,
                          "byok needs exactly the strings provider and api_key");
    size_t n = strlen(key);
    bool ok = n >= 8 && n <= 1024;
    for (size_t i = 0; ok && i < n; i++) ok = key[i] > ' ' && key[i] < 0x7f;
    if (!ok) /* the detail never quotes the key */
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid byok api_key", hint,
                          "byok.api_key must be 8 to 1024 printable ASCII characters without "
                          "spaces (got %zu bytes)", n);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(prov)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT wire_protocol, active FROM llm_providers WHERE id = ?"
                           " AND tenant_id IS NULL",
                           p, 1, &rows, err);
    if (rc) return rc;
    const char *wire = rows.nrows ? ap_rows_get(&rows, 0, "wire_protocol") : NULL;
    if (!wire || !ap_rows_int(&rows, 0, "active", 0) || strcmp(wire, "builtin") == 0 ||
        (strcmp(wire, "openai") != 0 && strcmp(wire, "anthropic") != 0 &&
         strcmp(wire, "gemini") != 0))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid byok provider",
                          "name an active platform provider of GET /api/v1/llm/providers",
                          "byok.provider \"%.64s\" is not an active provider with an API", prov);
    if (!master)
        return ap_err_set(err, AP_ERR_UNAVAILABLE, NULL, "no master key",
                          "start agentprov serve with AP_MASTER_KEY or a data directory",
                          "tenant keys cannot be stored without a master key");
    return AP_OK;
}

/* Stores (sealed) or clears the BYOK key of row id when the input has "byok". */
static ap_rc apply_byok(ap_tx_t *tx, const char *tenant_id, const char *id, json_t *in,
                        const uint8_t *master, ap_err_t *err) {
    json_t *b = json_object_get(in, "byok");
    if (!b) return AP_OK;
    ap_sealed_t sealed = {0};
    const char *prov = NULL;
    char last4[5] = "";
    if (json_is_object(b)) {
        const char *key = json_string_value(json_object_get(b, "api_key"));
        prov = json_string_value(json_object_get(b, "provider"));
        ap_rc rc = ap_secret_seal(master, key, ap_tx_arena(tx), &sealed, err);
        if (rc) return rc;
        snprintf(last4, sizeof last4, "%s", key + strlen(key) - 4);
    }
    ap_val_t v[] = {AP_VTEXT(prov),          AP_VTEXT(sealed.ciphertext),
                    AP_VTEXT(sealed.nonce),  AP_VTEXT(sealed.wrapped_key),
                    AP_VTEXT(prov ? last4 : NULL), AP_VTEXT(id),
                    AP_VTEXT(tenant_id)};
    return ap_tx_query(tx,
                       "UPDATE llm_configs SET byok_provider = ?, byok_key_ciphertext = ?,"
                       " byok_nonce = ?, byok_data_key_wrapped = ?, byok_key_last4 = ?"
                       " WHERE id = ? AND tenant_id = ?",
                       v, 7, NULL, err);
}

ap_rc ap_llm_config_get(ap_tx_t *tx, const char *tenant_id, const char *id, json_t **out,
                        ap_err_t *err) {
    *out = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "SELECT " COLS " FROM llm_configs WHERE id = ? AND tenant_id = ?",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(id, err);
    *out = row_json(&rows, 0);
    return AP_OK;
}

ap_rc ap_llm_config_create(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, json_t *in, json_t **out, ap_err_t *err) {
    *out = NULL;
    ap_rc rc = check_all(tx, tenant_id, in, err);
    if (!rc) rc = check_byok(tx, in, master, err);
    if (rc) return rc;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id)};
    rc = ap_tx_query(tx, "SELECT COUNT(*) AS n FROM llm_configs WHERE tenant_id = ?", p, 1, &rows,
                     err);
    if (rc) return rc;
    if (ap_rows_int(&rows, 0, "n", 0) >= AP_LLM_CONFIG_MAX)
        return ap_err_set(err, AP_ERR_CONFLICT, "conflict", "too many configurations",
                          "delete one you no longer use",
                          "a tenant may have at most %d LLM configurations", AP_LLM_CONFIG_MAX);
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    rc = name_free(tx, tenant_id, ap_json_str(in, "name"), NULL, err);
    if (!rc) rc = store(tx, tenant_id, id, in, false, err);
    if (!rc) rc = apply_byok(tx, tenant_id, id, in, master, err);
    if (!rc) rc = audit(tx, tenant_id, actor, "llm.config.create", id, in, err);
    if (!rc) rc = ap_llm_config_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_llm_config_update(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const uint8_t *master, const char *id, json_t *in, json_t **out,
                           ap_err_t *err) {
    *out = NULL;
    json_t *cur = NULL;
    ap_rc rc = ap_llm_config_get(tx, tenant_id, id, &cur, err);
    if (!rc) rc = check_byok(tx, in, master, err);
    if (rc) {
        json_decref(cur);
        return rc;
    }
    json_object_update(cur, in);
    rc = check_all(tx, tenant_id, cur, err);
    if (!rc) rc = name_free(tx, tenant_id, ap_json_str(cur, "name"), id, err);
    if (!rc) rc = store(tx, tenant_id, id, cur, true, err);
    json_decref(cur);
    if (!rc) rc = apply_byok(tx, tenant_id, id, in, master, err);
    if (!rc) rc = audit(tx, tenant_id, actor, "llm.config.update", id, in, err);
    if (!rc) rc = ap_llm_config_get(tx, tenant_id, id, out, err);
    return rc;
}

ap_rc ap_llm_config_delete(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                           const char *id, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(id), AP_VTEXT(tenant_id)};
    ap_rc rc = ap_tx_query(tx, "DELETE FROM llm_configs WHERE id = ? AND tenant_id = ? RETURNING name",
                           p, 2, &rows, err);
    if (rc) return rc;
    if (rows.nrows == 0) return not_found(id, err);
    json_t *changes = json_pack("{s:s}", "name", ap_rows_get(&rows, 0, "name"));
    rc = audit(tx, tenant_id, actor, "llm.config.delete", id, changes, err);
    json_decref(changes);
    return rc;
}

ap_rc ap_llm_config_list(ap_tx_t *tx, const char *tenant_id, const char *after, int limit,
                         json_t **out, const char **next, ap_err_t *err) {
    *out = NULL;
    *next = NULL;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(after ? after : ""), AP_VINT(limit + 1)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " COLS " FROM llm_configs WHERE tenant_id = ? AND id > ?"
                           " ORDER BY id LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    int n = rows.nrows > limit ? limit : rows.nrows;
    for (int i = 0; i < n; i++) json_array_append_new(arr, row_json(&rows, i));
    if (rows.nrows > limit) *next = ap_rows_get(&rows, limit - 1, "id");
    *out = arr;
    return AP_OK;
}

static void fill(const ap_rows_t *r, int i, ap_llm_config_t *c) {
    const char *t = ap_rows_get(r, i, "temperature");
    const char *mt = ap_rows_get(r, i, "max_tokens");
    const char *bd = ap_rows_get(r, i, "budget_limit_daily");
    const char *bm = ap_rows_get(r, i, "budget_limit_monthly");
    *c = (ap_llm_config_t){
        .found = true,
        .name = ap_rows_get(r, i, "name"),
        .primary_model = ap_rows_get(r, i, "primary_model"),
        .fallback_model = ap_rows_get(r, i, "fallback_model"),
        .routing_rules = ap_rows_get(r, i, "routing_rules"),
        .has_temperature = t != NULL,
        .temperature = t ? strtod(t, NULL) : 0,
        .max_tokens = mt ? (int)strtol(mt, NULL, 10) : 0,
        .budget_daily = bd ? strtod(bd, NULL) : -1,
        .budget_monthly = bm ? strtod(bm, NULL) : -1,
        .use_platform_key = ap_rows_int(r, i, "use_platform_key", 1) != 0,
        .byok_provider = ap_rows_get(r, i, "byok_provider"),
        .byok = {.ciphertext = ap_rows_get(r, i, "byok_key_ciphertext"),
                 .nonce = ap_rows_get(r, i, "byok_nonce"),
                 .wrapped_key = ap_rows_get(r, i, "byok_data_key_wrapped")},
    };
}

ap_rc ap_llm_config_lookup(ap_tx_t *tx, const char *tenant_id, const char *name,
                           ap_llm_config_t *named, ap_llm_config_t *dflt, ap_err_t *err) {
    memset(named, 0, sizeof *named);
    memset(dflt, 0, sizeof *dflt);
    named->budget_daily = named->budget_monthly = dflt->budget_daily = dflt->budget_monthly = -1;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant_id), AP_VTEXT(name ? name : "")};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " COLS " FROM llm_configs WHERE tenant_id = ?"
                           " AND (is_tenant_default = 1 OR name = ?)",
                           p, 2, &rows, err);
    if (rc) return rc;
    for (int i = 0; i < rows.nrows; i++) {
        if (name && strcmp(ap_rows_get(&rows, i, "name"), name) == 0) fill(&rows, i, named);
        if (ap_rows_int(&rows, i, "is_tenant_default", 0)) fill(&rows, i, dflt);
    }
    return AP_OK;
}
