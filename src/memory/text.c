/*
 * text.c - the text rules of agent memory (text.h).
 *
 * 1. Bytes >= 0x80 count as letters, so words of any script stay whole;
 *    case folding is ASCII only, like the builtin embedder's.
 */
#include "memory/text.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool is_copula(const char *w, size_t n) {
    static const char *const cop[] = {"is",    "are", "was",   "were",   "has", "have",
                                      "likes", "prefers", "uses", "equals", "lives", NULL};
    for (int i = 0; cop[i]; i++)
        if (strlen(cop[i]) == n && !memcmp(cop[i], w, n)) return true;
    return false;
}

const char *ap_mem_subject(ap_arena_t *a, const char *content) {
    /* words (lower-cased, letters/digits/'), up to a copula or ':' */
    char *out = ap_arena_alloc(a, strlen(content) + 1);
    size_t o = 0;
    int words = 0;
    const char *p = content;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p) && *p != ':' && !((unsigned char)*p & 0x80)) p++;
        if (!*p) break;
        if (*p == ':') {
            if (!words) return NULL;
            out[o] = '\0';
            return out;
        }
        const char *w = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '\'' || ((unsigned char)*p & 0x80))) p++;
        size_t n = (size_t)(p - w);
        char low[16];
        size_t ln = n < sizeof low ? n : sizeof low - 1;
        for (size_t i = 0; i < ln; i++) low[i] = (char)tolower((unsigned char)w[i]);
        if (n < sizeof low && is_copula(low, n)) {
            if (!words) return NULL;
            out[o] = '\0';
            return out;
        }
        if (++words > 8) return NULL;
        if ((n == 3 && !strncasecmp(w, "the", 3)) || (n == 1 && (*w == 'a' || *w == 'A')) ||
            (n == 2 && !strncasecmp(w, "an", 2))) {
            words--;
            continue;
        }
        if (o) out[o++] = ' ';
        for (size_t i = 0; i < n; i++) out[o++] = (char)tolower((unsigned char)w[i]);
    }
    return NULL;
}

bool ap_mem_same_text(const char *x, const char *y) {
    for (;;) {
        while (*x && !isalnum((unsigned char)*x)) x++;
        while (*y && !isalnum((unsigned char)*y)) y++;
        if (!*x || !*y) return !*x && !*y;
        if (tolower((unsigned char)*x) != tolower((unsigned char)*y)) return false;
        x++;
        y++;
    }
}

const char *ap_mem_norm_name(ap_arena_t *a, const char *name) {
    char *o = ap_arena_alloc(a, strlen(name) + 1);
    size_t n = 0;
    bool space = false;
    for (const char *p = name; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isspace(ch)) {
            space = n > 0;
            continue;
        }
        if (space) o[n++] = ' ';
        space = false;
        o[n++] = (char)tolower(ch);
    }
    o[n] = '\0';
    return o;
}

