/*
 * client.c - HTTP calls to the platform for the CLI (libcurl), and output.
 *
 * 1. AP_URL defaults to http://127.0.0.1:8080; AP_API_KEY is required.
 *    The key is sent as a bearer token and never printed.
 * 2. Errors print the problem's title and detail and exit non-zero.
 */
#include "cmd/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/sse_read.h"
#include "core/buf.h"

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    ap_buf_t *b = ud;
    return ap_buf_append(b, p, sz * n) ? 0 : sz * n;
}

int ap_client_call(const char *method, const char *path, json_t *body, json_t **out) {
    *out = NULL;
    const char *base = getenv("AP_URL");
    if (!base || !*base) base = "http://127.0.0.1:8080";
    const char *key = getenv("AP_API_KEY");
    if (!key || !*key) {
        fprintf(stderr, "error: no API key\n  hint: export AP_API_KEY=$(cat var/admin.key) or a key "
                        "from `agentprov keys create`\n");
        return 1;
    }
    CURL *c = curl_easy_init();
    if (!c) return 1;
    char url[4096], auth[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    ap_buf_t resp;
    ap_buf_init(&resp, 64 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (payload) curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(payload);
    int rc = 0;
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: cannot reach the platform\n  %s: %s\n  hint: start it with `make "
                        "run` or set AP_URL\n",
                base, curl_easy_strerror(cc));
        rc = 1;
    } else {
        json_t *v = resp.len ? json_loadb(resp.p, resp.len, 0, NULL) : NULL;
        if (status >= 400) {
            const char *title = json_string_value(json_object_get(v, "title"));
            const char *detail = json_string_value(json_object_get(v, "detail"));
            fprintf(stderr, "error: %s (HTTP %ld)\n", title ? title : "request failed", status);
            if (detail) fprintf(stderr, "  %s\n", detail);
            json_decref(v);
            rc = 1;
        } else {
            *out = v;
        }
    }
    ap_buf_free(&resp);
    return rc;
}

static void cell(json_t *v, char *buf, size_t cap) {
    if (!v || json_is_null(v))
        snprintf(buf, cap, "-");
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else {
        /* 15 digits: a stored 0.9 shows as 0.9, not 0.90000000000000002 */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        snprintf(buf, cap, "%s", s ? s : "");
        free(s);
    }
}

static void table(json_t *rows, const char *const *cols) {
    size_t ncol = 0;
    while (cols[ncol]) ncol++;
    size_t w[16] = {0};
    char buf[512];
    for (size_t c = 0; c < ncol && c < 16; c++) {
        w[c] = strlen(cols[c]);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            cell(json_object_get(row, cols[c]), buf, sizeof buf);
            if (strlen(buf) > w[c]) w[c] = strlen(buf);
        }
    }
    for (size_t c = 0; c < ncol && c < 16; c++) {
        char up[64];
        size_t k = 0;
        for (; cols[c][k] && k < 63; k++)
            up[k] = (char)(cols[c][k] >= 'a' && cols[c][k] <= 'z' ? cols[c][k] - 32 : cols[c][k]);
        up[k] = '\0';
        if (c + 1 < ncol && c + 1 < 16)
            printf("%-*s  ", (int)w[c], up);
        else
            printf("%s\n", up); /* the last column is not padded */
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        for (size_t c = 0; c < ncol && c < 16; c++) {
            cell(json_object_get(row, cols[c]), buf, sizeof buf);
            if (c + 1 < ncol && c + 1 < 16)
                printf("%-*s  ", (int)w[c], buf);
            else
                printf("%s\n", buf);
        }
    }
}

void ap_client_print(json_t *v, const char *const *columns, bool as_json) {
    if (!v) return;
    if (as_json) {
        char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        printf("%s\n", s);
        free(s);
        return;
    }
    json_t *data = json_object_get(v, "data");
    if (json_is_array(data)) {
        table(data, columns);
        const char *next = json_string_value(json_object_get(v, "next_cursor"));
        if (next) printf("(more: --cursor %s)\n", next);
        return;
    }
    const char *k;
    json_t *x;
    char buf[1024];
    json_object_foreach(v, k, x) {
        cell(x, buf, sizeof buf);
        printf("%-20s %s\n", k, buf);
    }
}

typedef struct {
    ap_sse_read_t rd;
    long status;
    ap_buf_t err; /* the body of an error answer */
    CURL *c;
} sse_t;

static size_t on_sse(char *p, size_t sz, size_t n, void *ud) {
    sse_t *s = ud;
    size_t len = sz * n;
    if (!s->status) curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 400) return ap_buf_append(&s->err, p, len) ? 0 : len;
    return ap_sse_read_feed(&s->rd, p, len) ? 0 : len;
}

int ap_client_events(const char *path, ap_client_event_fn fn, void *ud) {
    const char *base = getenv("AP_URL");
    if (!base || !*base) base = "http://127.0.0.1:8080";
    const char *key = getenv("AP_API_KEY");
    if (!key || !*key) {
        fprintf(stderr, "error: no API key\n  hint: export AP_API_KEY=$(cat var/admin.key)\n");
        return 1;
    }
    CURL *c = curl_easy_init();
    if (!c) return 1;
    char url[4096], auth[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Accept: text/event-stream");
    sse_t s = {.c = c};
    ap_sse_read_init(&s.rd, 16 << 20, fn, ud);
    ap_buf_init(&s.err, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s.status);
    int rc = 0;
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: the event stream broke\n  %s: %s\n", base, curl_easy_strerror(cc));
        rc = 1;
    } else if (s.status >= 400) {
        json_t *v = s.err.len ? json_loadb(s.err.p, s.err.len, 0, NULL) : NULL;
        const char *detail = json_string_value(json_object_get(v, "detail"));
        fprintf(stderr, "error: %s (HTTP %ld)\n", detail ? detail : "request failed", s.status);
        json_decref(v);
        rc = 1;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    ap_sse_read_free(&s.rd);
    ap_buf_free(&s.err);
    return rc;
}
