/*
 * llm.c - `agentprov llm models|providers|configs|usage …`: the LLM
 * catalog, the tenant's LLM configurations and its usage through the API
 * (GET /api/v1/llm/models, /api/v1/llm/providers, /api/v1/llm/configs,
 * /api/v1/llm/usage).  Configurations are changed through the API.
 *
 * 1. Flags map one to one onto the query parameters; values are
 *    percent-encoded (model ids hold '/').
 * 2. The table shows prices as short decimals and "unpriced" for a model
 *    without a price; -o json prints the API's answer unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "cmd/cmd.h"
#include "core/buf.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: agentprov llm models [--provider P] [--capability C] [--tier T]\n"
            "                            [--max-price USD] [--id MODEL] [--include-inactive]\n"
            "                            [--limit N] [--cursor C] [-o table|json]\n"
            "       agentprov llm providers [--include-inactive] [--limit N] [--cursor C]\n"
            "                               [-o table|json]\n"
            "       agentprov llm configs [--limit N] [--cursor C] [-o table|json]\n"
            "       agentprov llm usage [--group-by day|model|agent] [--since T] [--until T]\n"
            "                           [-o table|json]\n"
            "\n"
            "  --provider P      a provider id (openai, groq, …) or a private provider's name\n"
            "  --capability C    tools, vision, reasoning, chat, embedding, edge; comma-separated\n"
            "                    values must all hold\n"
            "  --tier T          best|good|basic, fast|standard|slow or tiny|small|medium|large|xl;\n"
            "                    comma-separated values must all hold\n"
            "  --max-price USD   input and output list prices both at most USD per million\n"
            "                    tokens (unpriced models never match)\n"
            "  --id MODEL        look one model up: provider/model, or a bare model id\n"
            "  --include-inactive  deactivated models and inactive providers too\n"
            "                    (platform_admin only)\n"
            "  --group-by G      usage summed by day (default), model or agent\n"
            "  --since/--until T RFC 3339 instants; since inclusive, until exclusive\n"
            "\nAP_URL and AP_API_KEY select the platform and the key.\n");
    return code;
}

/* Appends &name=value (or ?name=value) with value percent-encoded. */
static void add_param(ap_buf_t *b, const char *name, const char *value) {
    ap_buf_printf(b, "%c%s=", strchr(b->p, '?') ? '&' : '?', name);
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '_' || *s == '.' || *s == '~')
            ap_buf_append(b, s, 1);
        else
            ap_buf_printf(b, "%%%02X", *s);
    }
}

static json_t *price_cell(json_t *v) {
    if (!json_is_number(v)) return json_string("unpriced");
    char s[32];
    snprintf(s, sizeof s, "%.4g", json_number_value(v));
    return json_string(s);
}

/* The rows of a models page reshaped for the table. */
static json_t *model_rows(json_t *page) {
    json_t *rows = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(page, "data"), i, m) {
        char caps[64] = "";
        size_t n = 0;
        const char *names[] = {"supports_tools", "supports_vision", "supports_reasoning",
                               "edge_optimized"};
        const char *shown[] = {"tools", "vision", "reasoning", "edge"};
        for (int k = 0; k < 4; k++)
            if (json_is_true(json_object_get(m, names[k])))
                n += (size_t)snprintf(caps + n, sizeof caps - n, "%s%s", n ? "," : "", shown[k]);
        json_t *row = json_pack(
            "{s:O,s:O,s:O,s:o,s:o,s:s,s:O,s:O,s:O,s:s}", "id", json_object_get(m, "id"), "mode",
            json_object_get(m, "mode"), "context", json_object_get(m, "context_window"),
            "in_usd_mtok", price_cell(json_object_get(m, "input_usd_per_mtok")), "out_usd_mtok",
            price_cell(json_object_get(m, "output_usd_per_mtok")), "capabilities",
            n ? caps : "-", "quality", json_object_get(m, "quality_tier"), "speed",
            json_object_get(m, "speed_tier"), "size", json_object_get(m, "size_category"),
            "active", json_is_true(json_object_get(m, "active")) ? "yes" : "no");
        if (row) json_array_append_new(rows, row);
    }
    json_t *out = json_pack("{s:o,s:O}", "data", rows, "next_cursor",
                            json_object_get(page, "next_cursor"));
    return out;
}

static const char *const provider_cols[] = {"id", "name", "wire_protocol", "base_url", "active",
                                            "model_count", NULL};
static const char *const config_cols[] = {"id", "name", "is_tenant_default", "primary_model",
                                          "fallback_model", "budget_limit_daily",
                                          "budget_limit_monthly", NULL};
static const char *const model_cols[] = {"id",      "mode",  "context", "in_usd_mtok",
                                         "out_usd_mtok", "capabilities", "quality", "speed",
                                         "size",    "active", NULL};

static const char *const usage_cols[] = {"group", "calls", "errors", "prompt_tokens",
                                         "completion_tokens", "cached_tokens", "cost_usd",
                                         "unpriced_calls", NULL};

/* The usage report reshaped for the table: one "group" column, then the
 * total as a last row. */
static json_t *usage_rows(json_t *rep) {
    json_t *rows = json_array();
    const char *by = json_string_value(json_object_get(rep, "group_by"));
    const char *key = by && strcmp(by, "agent") == 0 ? "agent_id" : by ? by : "day";
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(rep, "data"), i, g) {
        json_t *row = json_deep_copy(g);
        json_t *k = json_object_get(g, key);
        json_object_set_new(row, "group", json_is_string(k) ? json_copy(k) : json_string("-"));
        json_array_append_new(rows, row);
    }
    json_t *total = json_deep_copy(json_object_get(rep, "total"));
    if (total) {
        json_object_set_new(total, "group", json_string("total"));
        json_array_append_new(rows, total);
    }
    return json_pack("{s:o,s:n}", "data", rows, "next_cursor");
}

static int usage_cmd(int argc, char **argv) {
    static const char *const flags[] = {"group-by", "since", "until", NULL};
    ap_buf_t path;
    ap_buf_init(&path, 4096);
    ap_buf_puts(&path, "/api/v1/llm/usage");
    bool as_json = false;
    int rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ap_buf_free(&path);
            return usage(stdout, 0);
        }
        if (strcmp(a, "-o") == 0) {
            const char *fmt = i + 1 < argc ? argv[++i] : "";
            if (strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0) {
                fprintf(stderr, "error: -o must be table or json, not \"%s\"\n", fmt);
                goto out;
            }
            as_json = strcmp(fmt, "json") == 0;
            continue;
        }
        const char *const *f = flags;
        while (*f && (strncmp(a, "--", 2) != 0 || strcmp(a + 2, *f) != 0)) f++;
        if (!*f) {
            fprintf(stderr, "error: unknown option \"%s\"\n  hint: agentprov llm --help\n", a);
            goto out;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            goto out;
        }
        add_param(&path, strcmp(*f, "group-by") == 0 ? "group_by" : *f, argv[++i]);
    }
    json_t *res = NULL;
    rc = ap_client_call("GET", path.p, NULL, &res);
    if (rc == 0 && res) {
        if (as_json) {
            ap_client_print(res, usage_cols, true);
        } else {
            json_t *t = usage_rows(res);
            ap_client_print(t, usage_cols, false);
            json_decref(t);
        }
    }
    json_decref(res);
out:
    ap_buf_free(&path);
    return rc;
}

int ap_cmd_llm(int argc, char **argv) {
    if (argc < 2) return usage(stderr, 2);
    const char *what = argv[1];
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0) return usage(stdout, 0);
    if (strcmp(what, "usage") == 0) return usage_cmd(argc, argv);
    bool models = strcmp(what, "models") == 0;
    bool configs = strcmp(what, "configs") == 0;
    if (!models && !configs && strcmp(what, "providers") != 0) {
        fprintf(stderr, "error: unknown llm command \"%s\"\n", what);
        return usage(stderr, 2);
    }
    static const char *const model_flags[] = {"provider", "capability", "tier", "max-price",
                                              "id",       "limit",      "cursor", NULL};
    static const char *const provider_flags[] = {"limit", "cursor", NULL};
    ap_buf_t path;
    ap_buf_init(&path, 8192);
    ap_buf_puts(&path, models    ? "/api/v1/llm/models"
                       : configs ? "/api/v1/llm/configs"
                                 : "/api/v1/llm/providers");
    bool as_json = false;
    int rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ap_buf_free(&path);
            return usage(stdout, 0);
        }
        if (strcmp(a, "-o") == 0) {
            const char *fmt = i + 1 < argc ? argv[++i] : "";
            if (strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0) {
                fprintf(stderr, "error: -o must be table or json, not \"%s\"\n", fmt);
                goto out;
            }
            as_json = strcmp(fmt, "json") == 0;
            continue;
        }
        if (strcmp(a, "--include-inactive") == 0 && !configs) {
            add_param(&path, "include_inactive", "true");
            continue;
        }
        const char *const *f = models ? model_flags : provider_flags;
        while (*f && (strncmp(a, "--", 2) != 0 || strcmp(a + 2, *f) != 0)) f++;
        if (!*f) {
            fprintf(stderr, "error: unknown option \"%s\"\n  hint: agentprov llm --help\n", a);
            goto out;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: option %s needs a value\n", a);
            goto out;
        }
        add_param(&path, strcmp(*f, "max-price") == 0 ? "max_price" : *f, argv[++i]);
    }
    json_t *res = NULL;
    rc = ap_client_call("GET", path.p, NULL, &res);
    if (rc == 0 && res) {
        if (as_json || !models) {
            ap_client_print(res, configs ? config_cols : provider_cols, as_json);
        } else {
            json_t *t = model_rows(res);
            ap_client_print(t, model_cols, false);
            json_decref(t);
        }
    }
    json_decref(res);
out:
    ap_buf_free(&path);
    return rc;
}
