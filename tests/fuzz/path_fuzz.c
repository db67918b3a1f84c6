/*
 * path_fuzz.c - libFuzzer target for ap_path_normalize and ap_route_find.
 *
 * FUZZ_SOURCES: src/http/router.c src/core/arena.c src/core/alloc.c src/core/err.c
 *
 * 1. Properties of every accepted path: it starts with '/', has no "//",
 *    no "." or ".." segment, no trailing slash (unless it is "/"), no
 *    uppercase ASCII and no control character, is valid UTF-8, and is a
 *    fixed point: normalising it again (with the three bytes that mean
 *    something before decoding, '%', '?' and '#', encoded back) gives the
 *    same string.
 * 2. A refusal is always AP_ERR_INVALID with type "invalid-path".
 * 3. Matching the result against a small table never yields a captured
 *    value that holds '/' or ':' or is empty.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"

static void h(struct ap_req *r) {
    (void)r;
}

static const ap_route_t table[] = {
    {"GET", "/api/v1/tenants", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "l"},
    {"GET", "/api/v1/tenants/{tenant_id}", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "g"},
    {"POST", "/api/v1/tenants/{tenant_id}:suspend", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "s"},
    {"GET", "/api/v1/tenants/{tenant_id}/users/{user_id}", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "u"},
    {"GET", "/api/v1/audit:verify", h, AP_PERM_NONE, AP_SCOPE_PUBLIC, "v"},
    {NULL, NULL, NULL, AP_PERM_NONE, AP_SCOPE_PUBLIC, NULL},
};

/* An oracle of its own, not router.c's: well-formed UTF-8 (RFC 3629). */
static bool utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "path_fuzz: property failed: %s\n  input:  \"%s\"\n", #cond, \
                    raw);                                                             \
            abort();                                                                  \
        }                                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *raw = malloc(size + 1);
    memcpy(raw, data, size);
    raw[size] = '\0';
    ap_arena_t *a = ap_arena_new(1024);
    ap_err_t err = {0};
    char *out = NULL;
    ap_rc rc = ap_path_normalize(a, raw, &out, &err);
    if (rc != AP_OK) {
        CHECK(rc == AP_ERR_INVALID);
        CHECK(strcmp(err.type, "invalid-path") == 0);
        CHECK(err.msg[0] != '\0');
    } else {
        size_t n = strlen(out);
        CHECK(out[0] == '/');
        CHECK(!strstr(out, "//"));
        CHECK(n == 1 || out[n - 1] != '/');
        CHECK(n <= strlen(raw));
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];
            CHECK(!(c >= 'A' && c <= 'Z'));
            CHECK(c >= 0x20 && c != 0x7f);
        }
        CHECK(utf8_ok((const unsigned char *)out, n));
        /* no "." or ".." segment */
        for (const char *s = out; *s;) {
            s++; /* past '/' */
            size_t len = strcspn(s, "/");
            CHECK(!(len == 1 && s[0] == '.'));
            CHECK(!(len == 2 && s[0] == '.' && s[1] == '.'));
            s += len;
        }
        /* fixed point */
        char *enc = malloc(n * 3 + 1), *again = NULL;
        size_t e = 0;
        for (size_t i = 0; i < n; i++) {
            char c = out[i];
            if (c == '%' || c == '?' || c == '#') {
                e += (size_t)snprintf(enc + e, 4, "%%%02X", (unsigned char)c);
            } else {
                enc[e++] = c;
            }
        }
        enc[e] = '\0';
        if (e <= 2048) {
            ap_err_t err2 = {0};
            CHECK(ap_path_normalize(a, enc, &again, &err2) == AP_OK);
            CHECK(strcmp(again, out) == 0);
        }
        free(enc);
        /* matching */
        const char *methods[] = {"GET", "POST", "HEAD", "DELETE"};
        for (int k = 0; k < 4; k++) {
            ap_match_t m = {0};
            const char *allow = NULL;
            ap_route_result res = ap_route_find(table, a, methods[k], out, &m, &allow);
            if (res == AP_ROUTE_FOUND) {
                CHECK(m.route == &table[m.index]);
                for (int p = 0; p < m.nparams; p++) {
                    CHECK(m.values[p][0] != '\0');
                    CHECK(!strpbrk(m.values[p], "/:"));
                }
            } else if (res == AP_ROUTE_NO_METHOD) {
                CHECK(allow && allow[0]);
            }
        }
    }
    ap_arena_free(a);
    free(raw);
    return 0;
}
