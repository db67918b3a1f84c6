/*
 * router.c - normalising paths and matching them against patterns.
 *
 * 1. Decoding happens once, here (the server hands over the target as
 *    received); a decoded '%2F' would change the shape of the path, so it
 *    is refused rather than guessed at.
 * 2. Matching is a linear scan over a few dozen routes with early exits on
 *    the first differing segment; that costs less than the syscalls of a
 *    request and keeps the table readable.
 */
#include "http/router.h"

#include <ctype.h>
#include <string.h>

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

size_t ap_router_utf8_seq(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

ap_rc ap_path_normalize(ap_arena_t *a, const char *raw, char **out, ap_err_t *err) {
    size_t n = strlen(raw);
    if (n == 0 || raw[0] != '/')
        return ap_err_set(err, AP_ERR_INVALID, "invalid-path", "path must start with /",
                          "request an absolute path such as /api/v1/tenants", NULL);
    if (n > 2048)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-path", "path too long",
                          "keep request paths under 2048 bytes", "path is %zu bytes", n);
    /* 1: percent-decode and lowercase into dec */
    char *dec = ap_arena_alloc(a, n + 1);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)raw[i];
        if (c == '?' || c == '#') break;
        if (c == '%') {
            int h = i + 1 < n ? hexval((unsigned char)raw[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)raw[i + 2]) : -1;
            if (h < 0 || l < 0)
                return ap_err_set(err, AP_ERR_INVALID, "invalid-path", "bad percent-encoding",
                                  "encode '%' as %25", "at byte %zu of the path", i);
            c = h * 16 + l;
            i += 2;
            if (c == '/' || c == '\\')
                return ap_err_set(err, AP_ERR_INVALID, "invalid-path",
                                  "encoded slash in path", "do not percent-encode '/' in paths",
                                  NULL);
        }
        if (c < 0x20 || c == 0x7f)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-path", "control character in path",
                              "remove control characters from the path", NULL);
        dec[d++] = (char)tolower(c);
    }
    dec[d] = '\0';
    for (size_t i = 0; i < d;) {
        size_t l = ap_router_utf8_seq((const unsigned char *)dec + i, d - i);
        if (l == 0)
            return ap_err_set(err, AP_ERR_INVALID, "invalid-path", "path is not valid UTF-8",
                              "percent-encode the UTF-8 bytes of each character",
                              "byte %zu of the decoded path does not start a UTF-8 character",
                              i);
        i += l;
    }
    /* 2: split into segments, resolving "", "." and ".." */
    char *res = ap_arena_alloc(a, d + 2);
    size_t r = 0;
    size_t i = 0;
    while (i < d) {
        while (i < d && dec[i] == '/') i++;
        size_t s = i;
        while (i < d && dec[i] != '/') i++;
        size_t len = i - s;
        if (len == 0) break;
        if (len == 1 && dec[s] == '.') continue;
        if (len == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (r == 0)
                return ap_err_set(err, AP_ERR_INVALID, "invalid-path",
                                  "path climbs above the root", "remove the '..' segments",
                                  NULL);
            while (r > 0 && res[r - 1] != '/') r--;
            if (r > 0) r--; /* drop the slash too */
            continue;
        }
        res[r++] = '/';
        memcpy(res + r, dec + s, len);
        r += len;
    }
    if (r == 0) res[r++] = '/';
    res[r] = '\0';
    *out = res;
    return AP_OK;
}

/* Matches one path segment [s, s+len) against pattern segment [p, p+plen).
 * Captures {name} with an optional literal suffix (":suspend"). */
static bool seg_match(ap_arena_t *a, const char *p, size_t plen, const char *s, size_t len,
                      ap_match_t *m) {
    if (plen >= 2 && p[0] == '{') {
        const char *close = memchr(p, '}', plen);
        if (!close) return false;
        size_t suffix = plen - (size_t)(close + 1 - p);
        const char *suf = close + 1;
        if (len <= suffix) return false;
        if (suffix && memcmp(s + len - suffix, suf, suffix) != 0) return false;
        size_t vlen = len - suffix;
        if (memchr(s, ':', vlen)) return false; /* an action must match its route */
        if (m->nparams >= AP_MAX_PARAMS) return false;
        m->names[m->nparams] = ap_arena_strndup(a, p + 1, (size_t)(close - p - 1));
        m->values[m->nparams] = ap_arena_strndup(a, s, vlen);
        m->nparams++;
        return true;
    }
    return plen == len && memcmp(p, s, len) == 0;
}

/* A necessary condition for path_match, cheap enough to try on every
 * route: the path starts with the pattern's literal part up to its first
 * capture, and equals a pattern that has none. */
static bool literal_prefix_ok(const char *p, const char *s) {
    while (*p && *p != '{') {
        if (*p != *s) return false;
        p++, s++;
    }
    return *p == '{' || *s == '\0';
}

static bool path_match(ap_arena_t *a, const char *pattern, const char *path, ap_match_t *m) {
    m->nparams = 0;
    if (!literal_prefix_ok(pattern, path)) return false;
    const char *p = pattern, *s = path;
    for (;;) {
        if (*p == '\0' || *s == '\0') return *p == '\0' && *s == '\0';
        if (*p != '/' || *s != '/') return false;
        p++;
        s++;
        const char *pe = strchr(p, '/');
        const char *se = strchr(s, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t slen = se ? (size_t)(se - s) : strlen(s);
        if (!seg_match(a, p, plen, s, slen, m)) return false;
        p += plen;
        s += slen;
    }
}

ap_route_result ap_route_find(const ap_route_t *routes, ap_arena_t *a, const char *method,
                              const char *path, ap_match_t *m, const char **allow) {
    char allowbuf[128] = "";
    size_t an = 0;
    bool path_seen = false;
    for (int i = 0; routes[i].method; i++) {
        if (!literal_prefix_ok(routes[i].pattern, path)) continue;
        ap_match_t tmp = {0};
        if (!path_match(a, routes[i].pattern, path, &tmp)) continue;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            *m = tmp;
            m->route = &routes[i];
            m->index = i;
            return AP_ROUTE_FOUND;
        }
        path_seen = true;
        size_t l = strlen(routes[i].method);
        if (!strstr(allowbuf, routes[i].method) && an + l + 3 < sizeof allowbuf) {
            if (an) {
                memcpy(allowbuf + an, ", ", 2);
                an += 2;
            }
            memcpy(allowbuf + an, routes[i].method, l);
            an += l;
            allowbuf[an] = '\0';
        }
    }
    if (path_seen) {
        if (allow) *allow = ap_arena_strdup(a, allowbuf);
        return AP_ROUTE_NO_METHOD;
    }
    return AP_ROUTE_NO_PATH;
}

const char *ap_match_param(const ap_match_t *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0) return m->values[i];
    return NULL;
}
