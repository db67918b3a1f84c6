/*
 * wire_embed.c - embeddings: the OpenAI /v1/embeddings request and answer
 * on the client side; OpenAI-style and Gemini batchEmbedContents calls
 * upstream.
 *
 * 1. Clients give input as a string or an array of strings (token arrays
 *    are refused, as are empty strings, which OpenAI refuses too);
 *    encoding_format float or base64 (little-endian float32, as the OpenAI
 *    API and its SDKs use); upstream calls always ask for float.
 * 2. Upstream replies are checked as a whole: one vector per input, all of
 *    one dimension, every value a number; OpenAI's data[] is put back in
 *    index order.
 * 3. Gemini always goes through batchEmbedContents (one call for any
 *    number of inputs); a single embedContent reply is accepted too.
 *    Gemini reports no token usage for embeddings: usage stays 0.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/jload.h"
#include "llm/wire_int.h"

#define MAX_INPUTS 2048

ap_rc ap_wire_parse_embed_request(ap_arena_t *a, json_t *body, ap_llm_embed_req_t *req,
                                  ap_err_t *err) {
    static const wire_field_t f[] = {{"model", WT_STR, true},
                                     {"input", WT_STR | WT_ARR, true},
                                     {"encoding_format", WT_STR | WT_NULL, false},
                                     {"dimensions", WT_INT | WT_NULL, false},
                                     {"user", WT_STR | WT_NULL, false},
                                     {NULL, 0, false}};
    memset(req, 0, sizeof *req);
    if (!json_is_object(body))
        return ap_err_set(err, AP_ERR_INVALID, "malformed-json",
                          "request body must be a JSON object", "wrap the fields in {...}",
                          "expected an object, got %s", body ? wire_json_type(body) : "nothing");
    ap_rc rc = wire_check(body, f, "", err);
    if (rc) return rc;
    req->model = wire_dup(a, wire_str(body, "model"));
    if (!*req->model) return wire_err_value(err, "model", "name a model", "is empty");
    const char *fmt = wire_str(body, "encoding_format");
    if (fmt && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)
        return wire_err_value(err, "encoding_format", "ask for \"float\" or \"base64\"",
                              "is \"%.40s\"", fmt);
    req->base64 = fmt && strcmp(fmt, "base64") == 0;
    if ((rc = wire_int(body, "dimensions", 1, 65536, &req->dimensions, err))) return rc;
    json_t *in = json_object_get(body, "input");
    size_t n = json_is_string(in) ? 1 : json_array_size(in);
    if (n == 0) return wire_err_value(err, "input", "send at least one string", "is empty");
    if (n > MAX_INPUTS)
        return wire_err_value(err, "input", "split the inputs over several requests",
                              "has %zu inputs; at most %d are allowed", n, MAX_INPUTS);
    req->inputs = ap_arena_alloc(a, n * sizeof *req->inputs);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(in) ? in : json_array_get(in, i);
        char fb[48];
        wire_path_i(fb, sizeof fb, "", "input", i);
        if (!json_is_string(s))
            return wire_err_type(err, json_is_string(in) ? "input" : fb,
                                 "string (token arrays are not supported)", s);
        if (json_string_length(s) == 0)
            return wire_err_value(err, json_is_string(in) ? "input" : fb, "send non-empty text",
                                  "is an empty string");
        req->inputs[i] = wire_dup(a, json_string_value(s));
    }
    req->ninputs = (int)n;
    return AP_OK;
}

json_t *ap_wire_render_embed_response(const ap_llm_embed_resp_t *resp) {
    json_t *data = json_array();
    for (int i = 0; i < resp->nvectors; i++) {
        json_t *vec;
        if (resp->base64) {
            size_t n = (size_t)resp->dim * 4;
            uint8_t *raw = ap_malloc(n ? n : 1);
            for (int j = 0; j < resp->dim; j++) {
                uint32_t u;
                memcpy(&u, &resp->vectors[i][j], 4);
                for (int k = 0; k < 4; k++) raw[j * 4 + k] = (uint8_t)(u >> (8 * k));
            }
            size_t elen = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
            char *enc = ap_malloc(elen);
            sodium_bin2base64(enc, elen, raw, n, sodium_base64_VARIANT_ORIGINAL);
            vec = json_string(enc);
            ap_free(enc);
            ap_free(raw);
        } else {
            vec = json_array();
            for (int j = 0; j < resp->dim; j++)
                json_array_append_new(vec, json_real((double)resp->vectors[i][j]));
        }
        json_array_append_new(
            data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", vec));
    }
    return json_pack("{s:s,s:o,s:o,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                     wire_jstr(resp->model ? resp->model : ""), "usage", "prompt_tokens",
                     (json_int_t)resp->usage.prompt, "total_tokens",
                     (json_int_t)(resp->usage.prompt + resp->usage.completion));
}

ap_rc ap_wire_build_embed_call(ap_arena_t *a, ap_wire_kind provider, const ap_llm_embed_req_t *req,
                               const ap_llm_target_t *t, ap_http_call_t *out, ap_err_t *err) {
    memset(out, 0, sizeof *out);
    ap_rc rc = wire_check_target(t, err);
    if (rc) return rc;
    json_t *body;
    if (provider == AP_WIRE_OPENAI) {
        json_t *in = json_array();
        for (int i = 0; i < req->ninputs; i++) json_array_append_new(in, wire_jstr(req->inputs[i]));
        body = json_pack("{s:o,s:o,s:s}", "model", wire_jstr(t->model), "input", in,
                         "encoding_format", "float");
        if (req->dimensions > 0)
            json_object_set_new(body, "dimensions", json_integer(req->dimensions));
        out->url = wire_url(a, t->base_url, "/embeddings");
        wire_header(a, out, "Content-Type: application/json");
        if (t->api_key && *t->api_key) wire_header(a, out, "Authorization: Bearer %s", t->api_key);
    } else if (provider == AP_WIRE_GEMINI) {
        const char *model = wire_gemini_model(t->model);
        if (!model)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-target", "invalid Gemini model id",
                              "use letters, digits, '.', '-' and '_'", "model \"%.64s\"", t->model);
        json_t *reqs = json_array();
        char *full = ap_arena_printf(a, "models/%s", model);
        for (int i = 0; i < req->ninputs; i++) {
            json_t *r = json_pack("{s:s,s:{s:[{s:o}]}}", "model", full, "content", "parts", "text",
                                  wire_jstr(req->inputs[i]));
            if (req->dimensions > 0)
                json_object_set_new(r, "outputDimensionality", json_integer(req->dimensions));
            json_array_append_new(reqs, r);
        }
        body = json_pack("{s:o}", "requests", reqs);
        out->url = wire_url(a, t->base_url, ap_arena_printf(a, "/%s:batchEmbedContents", full));
        wire_header(a, out, "Content-Type: application/json");
        if (t->api_key && *t->api_key) wire_header(a, out, "x-goog-api-key: %s", t->api_key);
    } else {
        return ap_err_set(err, AP_ERR_INVALID, "unsupported-protocol",
                          "the provider has no embeddings API",
                          "route embeddings to an OpenAI-compatible or Gemini model",
                          "Anthropic offers no embeddings endpoint");
    }
    out->body = wire_dump(a, body, &out->len);
    return AP_OK;
}

static ap_rc bad_reply(ap_llm_error_t *lerr, int status, const char *what) {
    char m[200];
    snprintf(m, sizeof m, "malformed embeddings reply from the provider: %s", what);
    memset(lerr, 0, sizeof *lerr);
    lerr->kind = AP_LLM_UPSTREAM;
    lerr->http_status = status;
    wire_set_message(lerr, m, strlen(m));
    return AP_ERR_UNAVAILABLE;
}

/* Copies a JSON array of numbers into a float vector of *dim values. */
static bool read_vector(ap_arena_t *a, json_t *arr, int *dim, float **out) {
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > 65536) return false;
    if (*dim && (size_t)*dim != n) return false;
    *dim = (int)n;
    float *v = ap_arena_alloc(a, n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(arr, i);
        if (!json_is_number(x)) return false;
        v[i] = (float)json_number_value(x);
    }
    *out = v;
    return true;
}

ap_rc ap_wire_parse_embed_reply(ap_arena_t *a, ap_wire_kind provider, int status,
                                const char *retry_after, const char *body, size_t len,
                                ap_llm_embed_resp_t *resp, ap_llm_error_t *lerr) {
    ap_llm_error_t tmp;
    if (!lerr) lerr = &tmp;
    memset(resp, 0, sizeof *resp);
    memset(lerr, 0, sizeof *lerr);
    if (status >= 300 || status < 200) return wire_fail_body(lerr, status, retry_after, body, len);
    json_t *v = body && len ? ap_jload(body, len, 0, NULL) : NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        return bad_reply(lerr, status, "not a JSON object");
    }
    ap_rc rc = wire_fail_json(lerr, 0, retry_after, v);
    if (rc) {
        lerr->http_status = status;
        json_decref(v);
        return rc;
    }
    json_t *items;
    bool gemini = provider == AP_WIRE_GEMINI;
    if (gemini) {
        items = json_object_get(v, "embeddings");
        if (!items && json_is_object(json_object_get(v, "embedding")))
            items = json_pack("[O]", json_object_get(v, "embedding"));
        else
            json_incref(items);
    } else {
        items = json_incref(json_object_get(v, "data"));
    }
    size_t n = json_array_size(items);
    const char *what = NULL;
    if (n == 0 || n > MAX_INPUTS)
        what = "no vectors";
    else {
        resp->vectors = ap_arena_calloc(a, n * sizeof *resp->vectors);
        for (size_t i = 0; i < n && !what; i++) {
            json_t *it = json_array_get(items, i);
            size_t at = i;
            if (!gemini) {
                json_t *ji = json_object_get(it, "index");
                if (json_is_integer(ji)) {
                    if (json_integer_value(ji) < 0 || (size_t)json_integer_value(ji) >= n) {
                        what = "index out of range";
                        break;
                    }
                    at = (size_t)json_integer_value(ji);
                }
                if (resp->vectors[at]) {
                    what = "an index appears twice";
                    break;
                }
            }
            json_t *vals = json_object_get(it, gemini ? "values" : "embedding");
            if (!read_vector(a, vals, &resp->dim, &resp->vectors[at]))
                what = "a vector is missing, empty, of another dimension or not numbers";
        }
    }
    if (!what) {
        resp->nvectors = (int)n;
        if (!gemini) {
            resp->model = wire_dup(a, wire_str(v, "model"));
            json_t *u = wire_get(v, "usage");
            resp->usage.prompt = (int64_t)json_integer_value(json_object_get(u, "prompt_tokens"));
        }
    }
    json_decref(items);
    json_decref(v);
    if (what) {
        memset(resp, 0, sizeof *resp);
        return bad_reply(lerr, status, what);
    }
    return AP_OK;
}
