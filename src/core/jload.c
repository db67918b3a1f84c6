/*
 * jload.c - the fast JSON reader (jload.h): recursive descent over the
 * buffer; strings without escapes go to jansson without a copy, others
 * are unescaped into a scratch buffer.  Any doubt: return to json_loadb.
 */
#include "core/jload.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef struct {
    const char *p, *end;
    size_t flags;
    int depth;
    char *sb; /* scratch for unescaped strings */
    size_t sn, scap;
} jl_t;

static void ws(jl_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static void sb_put(jl_t *j, const char *s, size_t n) {
    if (!j->sb || j->sn + n > j->scap) {
        size_t cap = j->scap ? j->scap : 256;
        while (cap < j->sn + n) cap *= 2;
        j->sb = ap_realloc(j->sb, cap);
        j->scap = cap;
    }
    if (n) memcpy(j->sb + j->sn, s, n);
    j->sn += n;
}

/* Length of the UTF-8 sequence at s (n bytes available) as jansson accepts
 * it: no overlong forms, no surrogates, nothing past U+10FFFF; 0 if bad. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t l;
    uint32_t v;
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) l = 2, v = c & 0x1F;
    else if (c < 0xF0) l = 3, v = c & 0x0F;
    else if (c < 0xF5) l = 4, v = c & 0x07;
    else return 0;
    if (n < l) return 0;
    for (size_t i = 1; i < l; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((l == 3 && v < 0x800) || (l == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return l;
}

static int hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string at j->p (the opening quote): *s, *n point into the buffer or
 * the scratch (valid until the next string). */
static bool str(jl_t *j, const char **s, size_t *n) {
    const char *q = ++j->p;
    while (q < j->end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *s = j->p;
            *n = (size_t)(q - j->p);
            j->p = q + 1;
            return true;
        }
        if (c == '\\' || c < 0x20 || c >= 0x80) break;
        q++;
    }
    j->sn = 0;
    sb_put(j, j->p, (size_t)(q - j->p));
    while (q < j->end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *s = j->sb;
            *n = j->sn;
            j->p = q + 1;
            return true;
        }
        if (c < 0x20) return false;
        if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)q, (size_t)(j->end - q));
            if (!l) return false;
            sb_put(j, q, l);
            q += l;
            continue;
        }
        if (c != '\\') {
            const char *r = q;
            while (r < j->end && *r != '"' && *r != '\\' && (unsigned char)*r >= 0x20 &&
                   (unsigned char)*r < 0x80)
                r++;
            sb_put(j, q, (size_t)(r - q));
            q = r;
            continue;
        }
        if (++q >= j->end) return false;
        char e = *q++, o;
        switch (e) {
        case '"': o = '"'; break;
        case '\\': o = '\\'; break;
        case '/': o = '/'; break;
        case 'b': o = '\b'; break;
        case 'f': o = '\f'; break;
        case 'n': o = '\n'; break;
        case 'r': o = '\r'; break;
        case 't': o = '\t'; break;
        case 'u': {
            uint32_t v, lo;
            if (hex4(q, j->end, &v)) return false;
            q += 4;
            if (v == 0) return false; /* NUL: jansson's call (JSON_ALLOW_NUL) */
            if (v >= 0xDC00 && v <= 0xDFFF) return false;
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (j->end - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, j->end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                q += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            }
            char u[4];
            size_t ul;
            if (v < 0x80) u[0] = (char)v, ul = 1;
            else if (v < 0x800) u[0] = (char)(0xC0 | (v >> 6)), u[1] = (char)(0x80 | (v & 0x3F)), ul = 2;
            else if (v < 0x10000)
                u[0] = (char)(0xE0 | (v >> 12)), u[1] = (char)(0x80 | ((v >> 6) & 0x3F)),
                u[2] = (char)(0x80 | (v & 0x3F)), ul = 3;
            else
                u[0] = (char)(0xF0 | (v >> 18)), u[1] = (char)(0x80 | ((v >> 12) & 0x3F)),
                u[2] = (char)(0x80 | ((v >> 6) & 0x3F)), u[3] = (char)(0x80 | (v & 0x3F)), ul = 4;
            sb_put(j, u, ul);
            continue;
        }
        default: return false;
        }
        sb_put(j, &o, 1);
    }
    return false;
}

static json_t *number(jl_t *j) {
    const char *s = j->p, *q = s;
    bool real = false;
    if (q < j->end && *q == '-') q++;
    if (q >= j->end) return NULL;
    if (*q == '0') {
        q++;
        if (q < j->end && *q >= '0' && *q <= '9') return NULL;
    } else if (*q >= '1' && *q <= '9') {
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    } else {
        return NULL;
    }
    if (q < j->end && *q == '.') {
        real = true;
        q++;
        if (q >= j->end || *q < '0' || *q > '9') return NULL;
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        if (q >= j->end || *q < '0' || *q > '9') return NULL;
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - s);
    char tmp[64];
    if (n >= sizeof tmp) return NULL; /* long numbers: jansson's call */
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    json_t *v;
    if (real) {
        double d = strtod(tmp, NULL);
        if (isinf(d)) return NULL;
        v = json_real(d);
    } else {
        long long i = strtoll(tmp, NULL, 10);
        if (errno == ERANGE) return NULL;
        v = json_integer((json_int_t)i);
    }
    j->p = q;
    return v;
}

static json_t *value(jl_t *j);

static json_t *object(jl_t *j) {
    j->p++;
    json_t *o = json_object();
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return o;
    }
    for (;;) {
        if (j->p >= j->end || *j->p != '"') goto fail;
        const char *k;
        size_t kn;
        if (!str(j, &k, &kn)) goto fail;
        /* the key may sit in the scratch, which the value can reuse */
        char kbuf[128];
        char *key = kn < sizeof kbuf ? kbuf : ap_malloc(kn + 1);
        memcpy(key, k, kn);
        key[kn] = '\0';
        ws(j);
        json_t *v = NULL;
        if (j->p < j->end && *j->p == ':') {
            j->p++;
            ws(j);
            v = value(j);
        }
        bool dup = v && (j->flags & JSON_REJECT_DUPLICATES) && json_object_getn(o, key, kn);
        if (v && !dup) json_object_setn_new_nocheck(o, key, kn, v);
        else json_decref(v);
        if (key != kbuf) ap_free(key);
        if (!v || dup) goto fail;
        ws(j);
        if (j->p >= j->end) goto fail;
        if (*j->p == '}') {
            j->p++;
            return o;
        }
        if (*j->p != ',') goto fail;
        j->p++;
        ws(j);
    }
fail:
    json_decref(o);
    return NULL;
}

static json_t *array(jl_t *j) {
    j->p++;
    json_t *a = json_array();
    ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(j);
        if (!v) goto fail;
        json_array_append_new(a, v);
        ws(j);
        if (j->p >= j->end) goto fail;
        if (*j->p == ']') {
            j->p++;
            return a;
        }
        if (*j->p != ',') goto fail;
        j->p++;
        ws(j);
    }
fail:
    json_decref(a);
    return NULL;
}

static bool literal(jl_t *j, const char *w, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return false;
    j->p += n;
    return true;
}

static json_t *value(jl_t *j) {
    if (j->p >= j->end) return NULL;
    switch (*j->p) {
    case '{':
    case '[': {
        if (++j->depth > AP_JLOAD_MAX_DEPTH) return NULL;
        json_t *v = *j->p == '{' ? object(j) : array(j);
        j->depth--;
        return v;
    }
    case '"': {
        const char *s;
        size_t n;
        return str(j, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    case 't': return literal(j, "true", 4) ? json_true() : NULL;
    case 'f': return literal(j, "false", 5) ? json_false() : NULL;
    case 'n': return literal(j, "null", 4) ? json_null() : NULL;
    default: return number(j);
    }
}

json_t *ap_jload(const char *buf, size_t len, size_t flags, json_error_t *err) {
    if ((flags & ~(size_t)JSON_REJECT_DUPLICATES) || !buf) return json_loadb(buf, len, flags, err);
    jl_t j = {.p = buf, .end = buf + len, .flags = flags};
    ws(&j);
    json_t *v = NULL;
    if (j.p < j.end && (*j.p == '{' || *j.p == '[')) v = value(&j);
    if (v) {
        ws(&j);
        if (j.p != j.end) {
            json_decref(v);
            v = NULL;
        }
    }
    ap_free(j.sb);
    if (!v) return json_loadb(buf, len, flags, err); /* jansson's answer and error */
    if (err) {
        err->line = err->column = -1;
        err->position = 0;
        memcpy(err->source, "<buffer>", sizeof "<buffer>");
        err->text[0] = '\0';
    }
    return v;
}
