/*
 * embed.c - the builtin embedding model: hashed word and character n-grams.
 *
 * 1. Tokens are maximal runs of ASCII letters and digits and bytes >= 0x80
 *    (so UTF-8 letters of any script stay inside words); ASCII is folded
 *    to lower case.  Everything else separates tokens.
 * 2. Features, each hashed with its own seed so that the word "ab" and the
 *    3-gram "ab" land in unrelated buckets:
 *      word unigram            weight 1.0   (0.2 for a short stopword list)
 *      word bigram "w1 w2"     weight 0.6
 *      character 3-grams of "<word>" (boundary markers), weight 0.35,
 *      not taken for stopwords.
 *    The per-kind weight plays the part of a fixed IDF: words carry the
 *    meaning, bigrams add word order, and 3-grams (one per byte of a word,
 *    so numerous) get a small weight each; they make "market" and
 *    "markets" or a typo still close.
 * 3. Term frequency is sublinear: a feature seen tf times adds
 *    weight * (1 + ln tf), so a repeated word does not dominate.  Counting
 *    needs the feature list sorted by hash: features are collected in one
 *    heap array (two passes over the text size it exactly).
 * 4. Hash: FNV-1a 64 over the feature bytes, started from a per-kind seed,
 *    then the splitmix64 finaliser (FNV's low bits mix poorly).  Bit 0 of
 *    the result is the sign, the rest modulo dim the bucket; signed
 *    buckets keep collisions from biasing cosines upward.
 * 5. The vector is L2-normalised; no features gives the zero vector,
 *    which callers can recognise (cosine 0 with everything).
 */
#include "llm/embed.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define SEED_WORD 0x77u
#define SEED_BIGRAM 0x62u
#define SEED_CHAR3 0x63u

#define W_WORD 1.0f
#define W_STOPWORD 0.2f
#define W_BIGRAM 0.6f
#define W_CHAR3 0.35f

typedef struct {
    uint64_t h;
    float w;
} feature_t;

static bool is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80;
}

static unsigned char fold(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static uint64_t fnv_start(uint32_t seed) {
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < 4; i++) {
        h ^= (seed >> (8 * i)) & 0xffu;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t fnv_byte(uint64_t h, unsigned char c) {
    h ^= c;
    return h * 1099511628211ull;
}

static uint64_t fnv_word(uint64_t h, const char *w, size_t n) {
    for (size_t i = 0; i < n; i++) h = fnv_byte(h, fold((unsigned char)w[i]));
    return h;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Common English function words: they appear in nearly every text, so as
 * unigrams they would make unrelated sentences look alike. */
static bool is_stopword(const char *w, size_t n) {
    static const char *const stop[] = {
        "a",     "an",   "and",  "are",   "as",   "at",    "be",    "but",   "by",   "do",
        "does",  "for",  "from", "had",   "has",  "have",  "he",    "her",   "his",  "how",
        "i",     "if",   "in",   "into",  "is",   "it",    "its",   "me",    "my",   "no",
        "not",   "of",   "on",   "or",    "our",  "she",   "so",    "than",  "that", "the",
        "their", "them", "then", "there", "they", "this",  "those", "to",    "was",  "we",
        "were",  "what", "when", "where", "which", "who",  "why",   "will",  "with", "you",
        "your",
    };
    if (n > 5) return false;
    char low[8];
    for (size_t i = 0; i < n; i++) low[i] = (char)fold((unsigned char)w[i]);
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++)
        if (strlen(stop[i]) == n && memcmp(stop[i], low, n) == 0) return true;
    return false;
}

static int cmp_feature(const void *pa, const void *pb) {
    const feature_t *x = pa, *y = pb;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    if (x->w != y->w) return x->w < y->w ? -1 : 1;
    return 0;
}

void ap_embed_hash(const char *text, size_t len, float *out, int dim) {
    if (!out || dim <= 0) return;
    memset(out, 0, (size_t)dim * sizeof *out);
    if (!text || !len) return;

    /* Pass 1: size the feature array (tokens, bigrams, one 3-gram per byte). */
    size_t nfeat = 0;
    for (size_t i = 0; i < len;) {
        if (!is_word_byte((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < len && is_word_byte((unsigned char)text[i])) i++;
        nfeat += 2 + (i - s);
    }
    if (!nfeat) return;
    feature_t *f = ap_malloc(nfeat * sizeof *f);
    size_t k = 0;

    /* Pass 2: collect the features. */
    const char *prev = NULL;
    size_t prevn = 0;
    for (size_t i = 0; i < len;) {
        if (!is_word_byte((unsigned char)text[i])) {
            i++;
            continue;
        }
        const char *w = text + i;
        size_t s = i;
        while (i < len && is_word_byte((unsigned char)text[i])) i++;
        size_t n = i - s;
        bool stop = is_stopword(w, n);

        f[k++] = (feature_t){fnv_word(fnv_start(SEED_WORD), w, n), stop ? W_STOPWORD : W_WORD};
        if (prev) {
            uint64_t h = fnv_word(fnv_start(SEED_BIGRAM), prev, prevn);
            h = fnv_word(fnv_byte(h, ' '), w, n);
            f[k++] = (feature_t){h, W_BIGRAM};
        }
        if (!stop) {
            /* 3-grams of "<" word ">": n of them for a word of n bytes. */
            for (size_t j = 0; j < n; j++) {
                uint64_t h = fnv_start(SEED_CHAR3);
                for (size_t t = j; t < j + 3; t++) {
                    /* position t in the padded word: 0 is '<', n+1 is '>' */
                    unsigned char c = t == 0       ? '<'
                                      : t == n + 1 ? '>'
                                                   : fold((unsigned char)w[t - 1]);
                    h = fnv_byte(h, c);
                }
                f[k++] = (feature_t){h, W_CHAR3};
            }
        }
        prev = w;
        prevn = n;
    }

    /* Sublinear term frequency over runs of equal hashes. */
    qsort(f, k, sizeof *f, cmp_feature);
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && f[j].h == f[i].h) j++;
        uint64_t m = mix(f[i].h);
        float v = f[i].w * (1.0f + logf((float)(j - i)));
        size_t idx = (size_t)((m >> 1) % (uint64_t)dim);
        out[idx] += (m & 1) ? -v : v;
        i = j;
    }
    ap_free(f);

    double norm = 0;
    for (int d = 0; d < dim; d++) norm += (double)out[d] * out[d];
    if (norm <= 0) return; /* every bucket cancelled out: leave zeros */
    float inv = (float)(1.0 / sqrt(norm));
    for (int d = 0; d < dim; d++) out[d] *= inv;
}

float ap_embed_cosine(const float *a, const float *b, int dim) {
    if (!a || !b || dim <= 0) return 0;
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < dim; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    if (na <= 0 || nb <= 0) return 0;
    double c = dot / (sqrt(na) * sqrt(nb));
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    return (float)c;
}
