/*
 * vec_test.c - the vector index library (src/vec/): exact search, HNSW
 * recall, delete, filter, string ids, save/load, corrupt files, threads,
 * the partition store and the injected allocator.
 *
 * 1. No database: the library has no server dependency.
 * 2. Ground truth is computed here in double precision with a plain loop,
 *    not with the library's search.
 * 3. Vectors are random directions (Gaussian components, normalised) from
 *    a seeded generator, so every run sees the same data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vec/vec.h"
#include "vec/vec_store.h"

/* ---- data --------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uni(void) {
    return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
}

/* n random unit vectors of dim d (Gaussian directions). */
static float *random_vectors(size_t n, uint32_t d, uint64_t seed) {
    rng_state = seed;
    float *v = malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (uint32_t j = 0; j < d; j++) {
            double g = sqrt(-2 * log(uni())) * cos(2 * M_PI * uni());
            v[i * d + j] = (float)g;
            s += g * g;
        }
        for (uint32_t j = 0; j < d; j++) v[i * d + j] = (float)(v[i * d + j] / sqrt(s));
    }
    return v;
}

typedef struct {
    double score;
    uint64_t label;
} truth_t;

static int cmp_truth(const void *a, const void *b) {
    const truth_t *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : 0;
}

typedef bool (*keep_fn)(uint64_t label);

/* The k best of data (labels = index) by double-precision dot, keep() filtering. */
static size_t brute(const float *data, size_t n, uint32_t d, const float *q, size_t k,
                    keep_fn keep, truth_t *out) {
    truth_t *all = malloc(n * sizeof *all);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep(i)) continue;
        double s = 0;
        for (uint32_t j = 0; j < d; j++) s += (double)data[i * d + j] * q[j];
        all[m++] = (truth_t){s, i};
    }
    qsort(all, m, sizeof *all, cmp_truth);
    if (m > k) m = k;
    memcpy(out, all, m * sizeof *out);
    free(all);
    return m;
}

static ap_vec_t *build(const float *data, size_t n, const ap_vec_params_t *p) {
    ap_vec_t *ix;
    ap_err_t err;
    assert_int_equal(ap_vec_new(p, NULL, &ix, &err), AP_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ap_vec_add(ix, i, NULL, data + i * p->dim, &err), AP_OK);
    return ix;
}

/* ---- exact search ------------------------------------------------------- */

static void test_exact_below_threshold(void **state) {
    (void)state;
    const uint32_t d = 48;
    const size_t n = 1500, nq = 40, k = 10;
    float *data = random_vectors(n, d, 11), *qs = random_vectors(nq, d, 12);
    ap_vec_params_t p = ap_vec_params_default(d); /* threshold 2000 > n */
    ap_vec_t *ix = build(data, n, &p);
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.live, n);
    assert_int_equal(st.linked, 0); /* no graph below the threshold */
    for (size_t q = 0; q < nq; q++) {
        truth_t want[10];
        ap_vec_hit_t hits[10];
        size_t got;
        assert_int_equal(brute(data, n, d, qs + q * d, k, NULL, want), k);
        assert_int_equal(ap_vec_search(ix, qs + q * d, k, NULL, hits, &got, NULL), AP_OK);
        assert_int_equal(got, k);
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(hits[i].label, want[i].label);
            assert_false(hits[i].has_id);
            assert_true(fabs(hits[i].score - want[i].score) < 1e-5);
        }
    }
    /* k larger than the index: everything, best first */
    ap_vec_hit_t *all = malloc(2000 * sizeof *all);
    size_t got;
    assert_int_equal(ap_vec_search(ix, qs, 2000, NULL, all, &got, NULL), AP_OK);
    assert_int_equal(got, n);
    for (size_t i = 1; i < got; i++) assert_true(all[i - 1].score >= all[i].score);
    free(all);
    ap_vec_release(ix);
    free(data);
    free(qs);
}

/* ---- HNSW recall ---------------------------------------------------------- */

static double recall_at(ap_vec_t *ix, const float *data, size_t n, uint32_t d, const float *qs,
                        size_t nq, uint32_t ef) {
    size_t hit = 0;
    for (size_t q = 0; q < nq; q++) {
        truth_t want[10];
        ap_vec_hit_t hits[10];
        size_t got;
        brute(data, n, d, qs + q * d, 10, NULL, want);
        ap_vec_query_opts_t o = {.ef = ef};
        assert_int_equal(ap_vec_search(ix, qs + q * d, 10, &o, hits, &got, NULL), AP_OK);
        assert_int_equal(got, 10);
        for (size_t i = 0; i < 10; i++)
            for (size_t j = 0; j < 10; j++)
                if (hits[i].label == want[j].label) hit++;
    }
    return (double)hit / (double)(nq * 10);
}

static void test_hnsw_recall(void **state) {
    (void)state;
    const uint32_t d = 64;
    /* Uniform random directions are the hard case for a graph index (real
     * embeddings are clustered); 10k keeps the build a few seconds under ASan.
     * bench/vec measures 10k to 1M at dim 384. */
    const size_t n = 10000, nq = 100;
    float *data = random_vectors(n, d, 21), *qs = random_vectors(nq, d, 22);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.ef_construction = 64;
    ap_vec_t *ix = build(data, n, &p);
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.linked, n);
    double r = recall_at(ix, data, n, d, qs, nq, 200);
    print_message("      recall@10 (n=%zu, dim=%u, M=16, efC=64, ef=200): %.3f\n", n, d, r);
    assert_true(r >= 0.95);
    /* a tiny ef does worse: the parameter reaches the search */
    double r_low = recall_at(ix, data, n, d, qs, nq, 10);
    print_message("      recall@10 at ef=10: %.3f\n", r_low);
    assert_true(r_low < r);
    ap_vec_release(ix);
    free(data);
    free(qs);
}

/* Many copies of each vector (an agent that remembers the same text again
 * and again; bench/memory once loaded ~120 copies of each of 834 texts):
 * the neighbour heuristic used to fill a node's list with its copies, so
 * every group of copies became an island, a search found only the entry's
 * island (fewer than k items) and was repeated exactly.  The graph must
 * stay connected: k results from the graph (the filter sees a small part
 * of the index, not every item), the nearest distinct vectors among them. */
static bool filter_count(uint64_t label, const char *id, void *arg) {
    (void)label, (void)id;
    (*(size_t *)arg)++;
    return true;
}

static void test_hnsw_duplicates(void **state) {
    (void)state;
    const uint32_t d = 32;
    const size_t distinct = 300, copies = 40, n = distinct * copies, nq = 30, k = 50;
    float *base = random_vectors(distinct, d, 31), *qs = random_vectors(nq, d, 32);
    float *data = malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) /* copies interleaved, as texts arrive */
        memcpy(data + i * d, base + (i % distinct) * d, d * sizeof(float));
    ap_vec_params_t p = ap_vec_params_default(d);
    p.ef_construction = 64;
    ap_vec_t *ix = build(data, n, &p);
    truth_t *truth = malloc(k * sizeof *truth);
    ap_vec_hit_t *hits = malloc(k * sizeof *hits);
    size_t worst = 0, short_results = 0;
    for (size_t q = 0; q < nq; q++) {
        size_t calls = 0, got = 0;
        ap_vec_query_opts_t o = {.ef = 4 * k, .filter = filter_count, .filter_arg = &calls};
        assert_int_equal(ap_vec_search(ix, qs + q * d, k, &o, hits, &got, NULL), AP_OK);
        assert_int_equal(got, k);
        if (calls > worst) worst = calls;
        short_results += calls >= n; /* an exact repeat calls it for every item */
        /* copies tie, so by score: the 10 nearest distinct vectors are among
         * the hits (not every copy of them is: a node links to one copy of
         * a vector) */
        assert_int_equal(brute(base, distinct, d, qs + q * d, 10, NULL, truth), 10);
        for (size_t t = 0; t < 10; t++) {
            bool found = false;
            for (size_t h = 0; h < got && !found; h++)
                found = fabs(hits[h].score - truth[t].score) < 1e-5;
            assert_true(found);
        }
    }
    print_message("      duplicates (%zu x %zu): at most %zu filter calls per search\n", distinct,
                  copies, worst);
    assert_int_equal(short_results, 0);
    free(truth);
    free(hits);
    ap_vec_release(ix);
    free(data);
    free(base);
    free(qs);
}

/* ---- delete, filter, ids ------------------------------------------------ */

static bool is_even(uint64_t label) {
    return label % 2 == 0;
}
static bool filter_even(uint64_t label, const char *id, void *arg) {
    (void)id;
    (*(int *)arg)++;
    return label % 2 == 0;
}
static bool filter_none(uint64_t label, const char *id, void *arg) {
    (void)label, (void)id, (void)arg;
    return false;
}
static bool filter_one(uint64_t label, const char *id, void *arg) {
    (void)id;
    return label == *(uint64_t *)arg;
}

static void test_delete_and_filter(void **state) {
    (void)state;
    const uint32_t d = 32;
    const size_t n = 4000;
    float *data = random_vectors(n, d, 31), *qs = random_vectors(20, d, 32);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.ef_construction = 64;
    ap_vec_t *ix = build(data, n, &p);
    for (size_t q = 0; q < 20; q++) {
        const float *qv = qs + q * d;
        /* delete the current best: it never comes back */
        ap_vec_hit_t h[10];
        size_t got;
        assert_int_equal(ap_vec_search(ix, qv, 10, NULL, h, &got, NULL), AP_OK);
        uint64_t gone = h[0].label;
        assert_true(ap_vec_contains(ix, gone, NULL));
        assert_int_equal(ap_vec_delete(ix, gone, NULL, NULL), AP_OK);
        assert_false(ap_vec_contains(ix, gone, NULL));
        ap_err_t err;
        assert_int_equal(ap_vec_delete(ix, gone, NULL, &err), AP_ERR_NOT_FOUND);
        ap_vec_hit_t h2[10];
        assert_int_equal(ap_vec_search(ix, qv, 10, &(ap_vec_query_opts_t){.ef = 200}, h2, &got,
                                       NULL),
                         AP_OK);
        assert_int_equal(got, 10);
        for (size_t i = 0; i < got; i++) assert_int_not_equal(h2[i].label, gone);
        ap_vec_query_opts_t ex = {.flags = AP_VEC_EXACT};
        assert_int_equal(ap_vec_search(ix, qv, 10, &ex, h2, &got, NULL), AP_OK);
        for (size_t i = 0; i < got; i++) assert_int_not_equal(h2[i].label, gone);
        assert_int_equal(h2[0].label, h[1].label); /* the runner-up moves up */

        /* filter: only even labels, and the callback was consulted */
        int calls = 0;
        ap_vec_query_opts_t fo = {.ef = 200, .filter = filter_even, .filter_arg = &calls};
        assert_int_equal(ap_vec_search(ix, qv, 10, &fo, h2, &got, NULL), AP_OK);
        assert_int_equal(got, 10);
        assert_true(calls > 0);
        for (size_t i = 0; i < got; i++) assert_int_equal(h2[i].label % 2, 0);
    }
    /* filtered exact equals the brute-force filtered truth (deleted are odd or even;
       compare against the live set) */
    {
        truth_t want[10];
        ap_vec_hit_t h[10];
        size_t got;
        int calls = 0;
        ap_vec_query_opts_t fo = {.filter = filter_even, .filter_arg = &calls,
                                  .flags = AP_VEC_EXACT};
        assert_int_equal(ap_vec_search(ix, qs, 10, &fo, h, &got, NULL), AP_OK);
        truth_t all[60];
        size_t m = brute(data, n, d, qs, 60, is_even, all), w = 0;
        for (size_t i = 0; i < m && w < 10; i++)
            if (ap_vec_contains(ix, all[i].label, NULL)) want[w++] = all[i];
        for (size_t i = 0; i < 10; i++) assert_int_equal(h[i].label, want[i].label);
    }
    /* a filter that rejects everything: no results; a filter for one item finds it
       even when the graph search alone would miss it (exact fallback) */
    ap_vec_hit_t h[10];
    size_t got = 99;
    assert_int_equal(ap_vec_search(ix, qs, 10, &(ap_vec_query_opts_t){.filter = filter_none}, h,
                                   &got, NULL),
                     AP_OK);
    assert_int_equal(got, 0);
    uint64_t want_label = 1234;
    assert_true(ap_vec_contains(ix, want_label, NULL));
    assert_int_equal(ap_vec_search(ix, qs, 10,
                                   &(ap_vec_query_opts_t){.filter = filter_one,
                                                          .filter_arg = &want_label},
                                   h, &got, NULL),
                     AP_OK);
    assert_int_equal(got, 1);
    assert_int_equal(h[0].label, 1234);

    /* compaction drops deleted slots and keeps the answers */
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.deleted, 20);
    assert_int_equal(st.live, n - 20);
    ap_vec_hit_t before[10], after[10];
    size_t nb, na;
    ap_vec_query_opts_t ex = {.flags = AP_VEC_EXACT};
    assert_int_equal(ap_vec_search(ix, qs + d, 10, &ex, before, &nb, NULL), AP_OK);
    assert_int_equal(ap_vec_compact(ix, NULL), AP_OK);
    ap_vec_stats(ix, &st);
    assert_int_equal(st.deleted, 0);
    assert_int_equal(st.live, n - 20);
    assert_int_equal(st.linked, n - 20);
    assert_int_equal(ap_vec_search(ix, qs + d, 10, &ex, after, &na, NULL), AP_OK);
    assert_int_equal(nb, na);
    for (size_t i = 0; i < na; i++) assert_int_equal(before[i].label, after[i].label);
    assert_int_equal(ap_vec_search(ix, qs + d, 10, &(ap_vec_query_opts_t){.ef = 200}, after, &na,
                                   NULL),
                     AP_OK);
    assert_int_equal(after[0].label, before[0].label);
    ap_vec_release(ix);
    free(data);
    free(qs);
}

static void test_string_ids_and_replace(void **state) {
    (void)state;
    const uint32_t d = 8;
    ap_vec_params_t p = ap_vec_params_default(d);
    ap_vec_t *ix;
    assert_int_equal(ap_vec_new(&p, NULL, &ix, NULL), AP_OK);
    float a[8] = {1, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 1, 0, 0, 0, 0, 0, 0},
          c[8] = {0, 0, 3, 0, 0, 0, 0, 0};
    assert_int_equal(ap_vec_add(ix, 7, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", a, NULL), AP_OK);
    assert_int_equal(ap_vec_add(ix, 7, NULL, b, NULL), AP_OK); /* label 7: another name space */
    ap_vec_hit_t h[4];
    size_t got;
    assert_int_equal(ap_vec_search(ix, a, 4, NULL, h, &got, NULL), AP_OK);
    assert_int_equal(got, 2);
    assert_true(h[0].has_id);
    assert_string_equal(h[0].id, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_int_equal(h[0].label, 7);
    assert_true(fabsf(h[0].score - 1.0f) < 1e-6);
    assert_false(h[1].has_id);
    assert_true(fabsf(h[1].score) < 1e-6);
    /* replacing the id's vector: the old one is gone, the score is cosine (c normalised) */
    assert_int_equal(ap_vec_add(ix, 8, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", c, NULL), AP_OK);
    assert_int_equal(ap_vec_search(ix, c, 4, NULL, h, &got, NULL), AP_OK);
    assert_int_equal(got, 2);
    assert_true(h[0].has_id);
    assert_int_equal(h[0].label, 8);
    assert_true(fabsf(h[0].score - 1.0f) < 1e-6);
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.live, 2);
    assert_int_equal(st.deleted, 1);
    assert_int_equal(ap_vec_delete(ix, 0, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", NULL), AP_OK);
    assert_false(ap_vec_contains(ix, 0, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
    assert_true(ap_vec_contains(ix, 7, NULL));
    /* bad input */
    ap_err_t err;
    float zero[8] = {0}, nan8[8] = {NAN, 1, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ap_vec_add(ix, 1, NULL, zero, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "zero"));
    assert_int_equal(ap_vec_add(ix, 1, NULL, nan8, &err), AP_ERR_INVALID);
    assert_int_equal(ap_vec_add(ix, 1, "", a, &err), AP_ERR_INVALID);
    char longid[80];
    memset(longid, 'x', 79);
    longid[79] = '\0';
    assert_int_equal(ap_vec_add(ix, 1, longid, a, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "79 bytes"));
    assert_int_equal(ap_vec_search(ix, zero, 4, NULL, h, &got, &err), AP_ERR_INVALID);
    assert_int_equal(got, 0);
    ap_vec_params_t bad = ap_vec_params_default(0);
    ap_vec_t *none;
    assert_int_equal(ap_vec_new(&bad, NULL, &none, &err), AP_ERR_INVALID);
    assert_null(none);
    assert_non_null(strstr(err.detail, "dim is 0"));
    bad = ap_vec_params_default(16);
    bad.m = 2;
    assert_int_equal(ap_vec_new(&bad, NULL, &none, &err), AP_ERR_INVALID);
    ap_vec_release(ix);
}

/* ---- save / load ------------------------------------------------------- */

static char tmpdir[64];

static void tmp_path(char *buf, size_t cap, const char *name) {
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/vec_test.XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
    }
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void same_results(ap_vec_t *x, ap_vec_t *y, const float *qs, size_t nq, uint32_t d,
                         unsigned flags) {
    for (size_t q = 0; q < nq; q++) {
        ap_vec_hit_t a[10], b[10];
        size_t na, nb;
        ap_vec_query_opts_t o = {.ef = 50, .flags = flags};
        assert_int_equal(ap_vec_search(x, qs + q * d, 10, &o, a, &na, NULL), AP_OK);
        assert_int_equal(ap_vec_search(y, qs + q * d, 10, &o, b, &nb, NULL), AP_OK);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(a[i].label, b[i].label);
            assert_int_equal(a[i].has_id, b[i].has_id);
            assert_string_equal(a[i].id, b[i].id);
            assert_true(a[i].score == b[i].score);
        }
    }
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void expect_refused(const char *path, const char *words) {
    ap_vec_t *ix = (ap_vec_t *)0x1;
    ap_err_t err;
    assert_int_equal(ap_vec_load(path, NULL, &ix, &err), AP_ERR_INVALID);
    assert_null(ix);
    if (!strstr(err.detail, words)) fail_msg("detail \"%s\" lacks \"%s\"", err.detail, words);
}

static void test_save_load(void **state) {
    (void)state;
    const uint32_t d = 24;
    const size_t n = 3000;
    float *data = random_vectors(n, d, 41), *qs = random_vectors(30, d, 42);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.ef_construction = 40;
    ap_vec_t *ix = build(data, n, &p);
    char sid[32];
    for (int i = 0; i < 50; i++) {
        snprintf(sid, sizeof sid, "mem-%d", i);
        assert_int_equal(ap_vec_add(ix, 1000000 + i, sid, data + i * d, NULL), AP_OK);
    }
    for (uint64_t l = 0; l < 100; l += 3) assert_int_equal(ap_vec_delete(ix, l, NULL, NULL), AP_OK);
    char path[128];
    tmp_path(path, sizeof path, "a.vec");
    ap_err_t err;
    assert_int_equal(ap_vec_save(ix, path, &err), AP_OK);
    ap_vec_t *back;
    assert_int_equal(ap_vec_load(path, NULL, &back, &err), AP_OK);
    same_results(ix, back, qs, 30, d, 0);
    same_results(ix, back, qs, 30, d, AP_VEC_EXACT);
    ap_vec_stats_t s1, s2;
    ap_vec_stats(ix, &s1);
    ap_vec_stats(back, &s2);
    assert_int_equal(s1.live, s2.live);
    assert_int_equal(s1.deleted, s2.deleted);
    assert_int_equal(s1.linked, s2.linked);
    assert_int_equal(s1.max_level, s2.max_level);
    assert_false(ap_vec_contains(back, 3, NULL));
    assert_true(ap_vec_contains(back, 0, "mem-7"));
    /* the loaded index keeps growing the same way as the original */
    for (size_t i = 0; i < 20; i++) {
        assert_int_equal(ap_vec_add(ix, 5000 + i, NULL, qs + i * d, NULL), AP_OK);
        assert_int_equal(ap_vec_add(back, 5000 + i, NULL, qs + i * d, NULL), AP_OK);
    }
    same_results(ix, back, qs, 30, d, 0);
    ap_vec_release(back);
    /* a small (exact-only) index and an empty one round-trip too */
    ap_vec_t *small = build(data, 10, &p), *empty = build(data, 0, &p);
    char p2[128], p3[128];
    tmp_path(p2, sizeof p2, "small.vec");
    tmp_path(p3, sizeof p3, "empty.vec");
    assert_int_equal(ap_vec_save(small, p2, NULL), AP_OK);
    assert_int_equal(ap_vec_save(empty, p3, NULL), AP_OK);
    assert_int_equal(ap_vec_load(p2, NULL, &back, NULL), AP_OK);
    same_results(small, back, qs, 5, d, 0);
    ap_vec_release(back);
    assert_int_equal(ap_vec_load(p3, NULL, &back, NULL), AP_OK);
    size_t got = 9;
    ap_vec_hit_t h[3];
    assert_int_equal(ap_vec_search(back, qs, 3, NULL, h, &got, NULL), AP_OK);
    assert_int_equal(got, 0);
    ap_vec_release(back);
    ap_vec_release(small);
    ap_vec_release(empty);

    /* corrupt files are refused with words that say why */
    size_t len;
    unsigned char *good = read_bytes(path, &len);
    char bad[128];
    tmp_path(bad, sizeof bad, "bad.vec");
    unsigned char *b = malloc(len);
    memcpy(b, good, len);
    b[len / 2] ^= 0x40; /* a flipped bit in the vectors */
    write_bytes(bad, b, len);
    expect_refused(bad, "checksum");
    write_bytes(bad, good, len / 2); /* truncated: sizes checked before allocating */
    expect_refused(bad, "shorter");
    write_bytes(bad, good, len - 100); /* truncated in the variable-size sections */
    expect_refused(bad, "file ends inside the upper-layer links");
    write_bytes(bad, good, len - 2); /* truncated inside the trailer */
    expect_refused(bad, "checksum");
    write_bytes(bad, good, 40); /* inside the header */
    expect_refused(bad, "header");
    memcpy(b, good, len);
    b[0] = 'X';
    write_bytes(bad, b, len);
    expect_refused(bad, "not a vector index");
    memcpy(b, good, len);
    b[8] = 9; /* version 9 */
    write_bytes(bad, b, len);
    expect_refused(bad, "version 9");
    memcpy(b, good, len);
    b[20] ^= 1; /* a header field, header CRC now wrong */
    write_bytes(bad, b, len);
    expect_refused(bad, "header checksum");
    write_bytes(bad, (const unsigned char *)"", 0);
    expect_refused(bad, "not a vector index");
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    write_bytes(bad, longer, len + 1);
    expect_refused(bad, "after the checksum");
    free(longer);
    tmp_path(bad, sizeof bad, "missing.vec");
    assert_int_equal(ap_vec_load(bad, NULL, &back, &err), AP_ERR_NOT_FOUND);
    free(b);
    free(good);
    ap_vec_release(ix);
    free(data);
    free(qs);
}

/* ---- threads ------------------------------------------------------------ */

#define TH_D 32
#define TH_N 3000
static float *th_data;
static atomic_int th_done;
static atomic_size_t th_deleted_upto; /* labels below it that are ≡ 4 (mod 5) are deleted */

static void *reader(void *arg) {
    ap_vec_t *ix = arg;
    size_t searches = 0;
    while (!atomic_load(&th_done) || searches < 50) {
        const float *q = th_data + (searches * 7919 % TH_N) * TH_D;
        size_t deleted_upto = atomic_load(&th_deleted_upto);
        ap_vec_hit_t h[10];
        size_t got;
        assert_int_equal(ap_vec_search(ix, q, 10, &(ap_vec_query_opts_t){.ef = 32}, h, &got, NULL),
                         AP_OK);
        for (size_t i = 0; i < got; i++) {
            /* every hit is a real item with its real score, best first */
            assert_true(h[i].label < TH_N);
            float s = ap_vec_dot(q, th_data + h[i].label * TH_D, TH_D);
            assert_true(fabsf(s - h[i].score) < 1e-4);
            if (i) assert_true(h[i - 1].score >= h[i].score);
            if (h[i].label % 5 == 4 && h[i].label < deleted_upto)
                fail_msg("deleted label %llu returned", (unsigned long long)h[i].label);
        }
        searches++;
    }
    return (void *)(uintptr_t)searches;
}

static void test_readers_with_writer(void **state) {
    (void)state;
    th_data = random_vectors(TH_N, TH_D, 51);
    ap_vec_params_t p = ap_vec_params_default(TH_D);
    p.ef_construction = 32;
    p.exact_threshold = 500; /* the graph is built while readers run */
    ap_vec_t *ix;
    assert_int_equal(ap_vec_new(&p, NULL, &ix, NULL), AP_OK);
    assert_int_equal(ap_vec_add(ix, 0, NULL, th_data, NULL), AP_OK);
    atomic_store(&th_done, 0);
    atomic_store(&th_deleted_upto, 0);
    pthread_t r[3];
    for (int i = 0; i < 3; i++) pthread_create(&r[i], NULL, reader, ix);
    for (size_t i = 1; i < TH_N; i++) {
        assert_int_equal(ap_vec_add(ix, i, NULL, th_data + i * TH_D, NULL), AP_OK);
        /* labels ≡ 4 (mod 5) are deleted right away (except the last 100) */
        if (i % 5 == 4 && i < TH_N - 100) {
            assert_int_equal(ap_vec_delete(ix, i, NULL, NULL), AP_OK);
            atomic_store(&th_deleted_upto, i + 1);
        }
        if (i == TH_N / 2) assert_int_equal(ap_vec_compact(ix, NULL), AP_OK);
    }
    atomic_store(&th_done, 1);
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(r[i], &ret);
        total += (uintptr_t)ret;
    }
    print_message("      %zu searches ran alongside %d inserts\n", total, TH_N);
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.live, TH_N - (TH_N - 100) / 5);
    ap_vec_release(ix);
    free(th_data);
}

/* ---- partition store ---------------------------------------------------- */

static void count_each(const char *key, ap_vec_t *ix, void *arg) {
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    if (strcmp(key, "t1/a1") == 0) assert_int_equal(st.live, 1);
    (*(int *)arg)++;
}

static void test_store(void **state) {
    (void)state;
    ap_vec_params_t p = ap_vec_params_default(4);
    ap_vec_store_t *st;
    assert_int_equal(ap_vec_store_new(&p, NULL, &st, NULL), AP_OK);
    char key[AP_VEC_KEY_MAX];
    assert_int_equal(ap_vec_store_key(key, sizeof key, "t1", "a1"), AP_OK);
    assert_string_equal(key, "t1/a1");
    assert_int_equal(ap_vec_store_key(key, sizeof key, "t/1", "a1"), AP_ERR_INVALID);
    assert_int_equal(ap_vec_store_key(key, sizeof key, "", "a1"), AP_ERR_INVALID);
    assert_int_equal(ap_vec_store_key(key, 4, "t1", "a1"), AP_ERR_INVALID);
    ap_vec_t *ix, *again, *other;
    ap_err_t err;
    assert_int_equal(ap_vec_store_get(st, "t1/a1", false, &ix, &err), AP_ERR_NOT_FOUND);
    assert_int_equal(ap_vec_store_get(st, "t1/a1", true, &ix, &err), AP_OK);
    float v[4] = {1, 2, 3, 4};
    assert_int_equal(ap_vec_add(ix, 1, NULL, v, NULL), AP_OK);
    assert_int_equal(ap_vec_store_get(st, "t1/a1", false, &again, &err), AP_OK);
    assert_ptr_equal(ix, again);
    assert_int_equal(ap_vec_store_get(st, "t1/a2", true, &other, &err), AP_OK);
    assert_ptr_not_equal(ix, other);
    assert_false(ap_vec_contains(other, 1, NULL)); /* partitions do not share items */
    /* many partitions: the table grows and finds them all */
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof k, "t2/agent-%d", i);
        ap_vec_t *x;
        assert_int_equal(ap_vec_store_get(st, k, true, &x, NULL), AP_OK);
        ap_vec_release(x);
    }
    assert_int_equal(ap_vec_store_count(st), 302);
    int seen = 0;
    assert_int_equal(ap_vec_store_each(st, count_each, &seen, NULL), AP_OK);
    assert_int_equal(seen, 302);
    /* dropping a key leaves the caller's reference valid */
    assert_true(ap_vec_store_drop(st, "t1/a1"));
    assert_false(ap_vec_store_drop(st, "t1/a1"));
    assert_true(ap_vec_contains(ix, 1, NULL));
    assert_int_equal(ap_vec_store_get(st, "t1/a1", false, &again, &err), AP_ERR_NOT_FOUND);
    /* put installs an index (e.g. loaded); wrong dimension refused */
    assert_int_equal(ap_vec_store_put(st, "t1/a1", ix, NULL), AP_OK);
    ap_vec_t *got;
    assert_int_equal(ap_vec_store_get(st, "t1/a1", false, &got, NULL), AP_OK);
    assert_ptr_equal(got, ix);
    ap_vec_release(got);
    ap_vec_params_t p8 = ap_vec_params_default(8);
    ap_vec_t *wrong;
    assert_int_equal(ap_vec_new(&p8, NULL, &wrong, NULL), AP_OK);
    assert_int_equal(ap_vec_store_put(st, "t1/a3", wrong, &err), AP_ERR_INVALID);
    ap_vec_release(wrong);
    ap_vec_release(ix);
    ap_vec_release(ix); /* the second reference of get #2 */
    ap_vec_release(other);
    ap_vec_store_free(st);
}

/* ---- allocator -------------------------------------------------------- */

typedef struct {
    long live;
    long calls, fail_at; /* fail the fail_at-th malloc/realloc (0: never) */
} counting_t;

static void *c_malloc(void *ctx, size_t n) {
    counting_t *c = ctx;
    if (c->fail_at && ++c->calls == c->fail_at) return NULL;
    void *p = malloc(n);
    if (p) c->live++;
    return p;
}
static void *c_realloc(void *ctx, void *p, size_t n) {
    counting_t *c = ctx;
    if (c->fail_at && ++c->calls == c->fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) c->live++;
    return q;
}
static void c_free(void *ctx, void *p) {
    counting_t *c = ctx;
    if (p) c->live--;
    free(p);
}

static void test_allocator(void **state) {
    (void)state;
    const uint32_t d = 16;
    float *data = random_vectors(600, d, 61);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.exact_threshold = 100;
    counting_t c = {0};
    ap_vec_alloc_t al = {c_malloc, c_realloc, c_free, &c};
    ap_vec_t *ix;
    assert_int_equal(ap_vec_new(&p, &al, &ix, NULL), AP_OK);
    for (int i = 0; i < 600; i++) /* odd: the same id replaced over and over */
        assert_int_equal(ap_vec_add(ix, i, i % 2 ? "x" : NULL, data + i * d, NULL), AP_OK);
    ap_vec_hit_t h[5];
    size_t got;
    assert_int_equal(ap_vec_search(ix, data, 5, NULL, h, &got, NULL), AP_OK);
    assert_true(c.live > 0); /* the index allocated through it */
    ap_vec_release(ix);
    assert_int_equal(c.live, 0); /* and gave everything back */
    /* failing allocations: an error, never a crash or a leak */
    for (long at = 1; at < 400; at += 7) {
        counting_t f = {0, 0, at};
        ap_vec_alloc_t fa = {c_malloc, c_realloc, c_free, &f};
        ap_vec_t *x = NULL;
        ap_err_t err;
        ap_rc rc = ap_vec_new(&p, &fa, &x, &err);
        for (int i = 0; !rc && i < 300; i++) {
            rc = ap_vec_add(x, i, NULL, data + i * d, &err);
            if (!rc) rc = ap_vec_search(x, data, 5, NULL, h, &got, &err);
        }
        if (rc) assert_int_equal(rc, AP_ERR_LIMIT);
        ap_vec_release(x);
        assert_int_equal(f.live, 0);
    }
    free(data);
}

/* ---- resumable search ------------------------------------------------------ */

static bool keep_odd(uint64_t label, const char *id, void *arg) {
    (void)id, (void)arg;
    return label % 2 == 1;
}
static bool keep_odd_label(uint64_t label) {
    return label % 2 == 1;
}

/* Below the threshold the iterator hands out every accepted item once, in
 * exact order, whatever the batch sizes asked. */
static void test_iter_exact(void **state) {
    (void)state;
    const uint32_t d = 24;
    const size_t n = 900;
    float *data = random_vectors(n, d, 41), *q = random_vectors(1, d, 42);
    ap_vec_params_t p = ap_vec_params_default(d);
    ap_vec_t *ix = build(data, n, &p);
    assert_int_equal(ap_vec_delete(ix, 7, NULL, NULL), AP_OK);
    truth_t *want = malloc(n * sizeof *want);
    size_t nw = brute(data, n, d, q, n, keep_odd_label, want);
    /* label 7 is deleted: drop it from the truth */
    for (size_t i = 0; i < nw; i++)
        if (want[i].label == 7) memmove(&want[i], &want[i + 1], (--nw - i) * sizeof *want);
    ap_vec_iter_t *it;
    ap_vec_query_opts_t o = {.ef = 16, .filter = keep_odd};
    assert_int_equal(ap_vec_iter_new(ix, q, &o, &it, NULL), AP_OK);
    ap_vec_hit_t hits[37];
    size_t got = 0, m;
    for (size_t ask = 1;; ask = ask % 37 + 1) {
        assert_int_equal(ap_vec_iter_next(it, hits, ask, &m, NULL), AP_OK);
        if (!m) break;
        for (size_t i = 0; i < m; i++, got++) {
            assert_true(got < nw);
            assert_int_equal(hits[i].label, want[got].label);
            assert_true(fabs(hits[i].score - want[got].score) < 1e-5);
        }
    }
    assert_int_equal(got, nw);
    assert_int_equal(ap_vec_iter_visited(it), n);
    ap_vec_iter_free(it);
    ap_vec_release(ix);
    free(want);
    free(data);
    free(q);
}

/* On a graph: the first batch is the filtered ap_vec_search of k = ef;
 * pulling on continues the same search (the first 300 hold most of the
 * exact 300 best), never repeats an item, never hands out a rejected or
 * deleted one, and reaches every accepted item in the end. */
static void test_iter_graph(void **state) {
    (void)state;
    const uint32_t d = 32;
    const size_t n = 6000, nq = 20, ef = 64;
    float *data = random_vectors(n, d, 51), *qs = random_vectors(nq, d, 52);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.ef_construction = 64;
    ap_vec_t *ix = build(data, n, &p);
    for (uint64_t l = 1; l < n; l += 50) assert_int_equal(ap_vec_delete(ix, l, NULL, NULL), AP_OK);
    bool *seen = malloc(n);
    truth_t *want = malloc(300 * sizeof *want);
    ap_vec_hit_t *hits = malloc(n * sizeof *hits), first[64];
    double found = 0;
    for (size_t q = 0; q < nq; q++) {
        const float *qv = qs + q * d;
        ap_vec_query_opts_t o = {.ef = ef, .filter = keep_odd};
        size_t nf;
        assert_int_equal(ap_vec_search(ix, qv, ef, &o, first, &nf, NULL), AP_OK);
        ap_vec_iter_t *it;
        assert_int_equal(ap_vec_iter_new(ix, qv, &o, &it, NULL), AP_OK);
        size_t m, total = 0;
        assert_int_equal(ap_vec_iter_next(it, hits, ef, &m, NULL), AP_OK);
        assert_int_equal(m, nf);
        for (size_t i = 0; i < m; i++) assert_int_equal(hits[i].label, first[i].label);
        total = m;
        while (total < 300) {
            assert_int_equal(ap_vec_iter_next(it, hits + total, 300 - total, &m, NULL), AP_OK);
            assert_true(m > 0);
            total += m;
        }
        /* the first 300 against the exact 300 best accepted live items */
        size_t nw = 0;
        truth_t *all = malloc(n * sizeof *all);
        size_t na = brute(data, n, d, qv, n, keep_odd_label, all);
        for (size_t i = 0; i < na && nw < 300; i++)
            if ((all[i].label - 1) % 50 != 0) want[nw++] = all[i];
        free(all);
        for (size_t i = 0; i < 300; i++)
            for (size_t j = 0; j < nw; j++)
                if (hits[i].label == want[j].label) {
                    found++;
                    break;
                }
        /* and the rest, to the end */
        for (;;) {
            assert_int_equal(ap_vec_iter_next(it, hits + total, n - total, &m, NULL), AP_OK);
            if (!m) break;
            total += m;
        }
        memset(seen, 0, n);
        for (size_t i = 0; i < total; i++) {
            uint64_t l = hits[i].label;
            assert_true(l % 2 == 1);
            assert_true((l - 1) % 50 != 0);
            assert_false(seen[l]);
            seen[l] = true;
        }
        size_t accepted = 0;
        for (uint64_t l = 1; l < n; l += 2) accepted += (l - 1) % 50 != 0;
        assert_int_equal(total, accepted);
        assert_true(ap_vec_iter_visited(it) <= n);
        ap_vec_iter_free(it);
    }
    double r = found / (double)(nq * 300);
    print_message("      iterator: the first 300 handed out hold %.3f of the exact 300 best\n", r);
    assert_true(r >= 0.9);
    free(seen);
    free(want);
    free(hits);
    ap_vec_release(ix);
    free(data);
    free(qs);
}

static void count_items(uint64_t label, const char *id, const float *vec, void *arg) {
    (void)id, (void)vec;
    size_t *c = arg;
    c[0]++;
    c[1] += label;
}

/* get, each, copy (no graph until asked) and the threshold change. */
static void test_copy_and_helpers(void **state) {
    (void)state;
    const uint32_t d = 16;
    const size_t n = 3000;
    float *data = random_vectors(n, d, 61);
    ap_vec_params_t p = ap_vec_params_default(d);
    p.exact_threshold = UINT32_MAX; /* a store of vectors, no graph */
    ap_vec_t *ix;
    assert_int_equal(ap_vec_new(&p, NULL, &ix, NULL), AP_OK);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "item-%zu", i);
        assert_int_equal(ap_vec_add(ix, i, id, data + i * d, NULL), AP_OK);
    }
    assert_int_equal(ap_vec_delete(ix, 0, "item-5", NULL), AP_OK);
    ap_vec_stats_t st;
    ap_vec_stats(ix, &st);
    assert_int_equal(st.linked, 0);
    float v[16];
    assert_int_equal(ap_vec_get(ix, 0, "item-9", v), AP_OK);
    for (uint32_t j = 0; j < d; j++) assert_true(fabs(v[j] - data[9 * d + j]) < 1e-6);
    assert_int_equal(ap_vec_get(ix, 0, "item-5", v), AP_ERR_NOT_FOUND);
    size_t c[2] = {0, 0};
    ap_vec_each(ix, count_items, c);
    assert_int_equal(c[0], n - 1);
    assert_int_equal(c[1], n * (n - 1) / 2 - 5);
    ap_vec_params_t gp = ap_vec_params_default(d);
    gp.ef_construction = 40;
    gp.exact_threshold = UINT32_MAX;
    ap_vec_t *g;
    assert_int_equal(ap_vec_copy(ix, &gp, NULL, &g, NULL), AP_OK);
    ap_vec_stats(g, &st);
    assert_int_equal(st.live, n - 1);
    assert_int_equal(st.deleted, 0);
    assert_int_equal(st.linked, 0);
    assert_int_equal(ap_vec_set_exact_threshold(g, 1000, NULL), AP_OK);
    ap_vec_stats(g, &st);
    assert_int_equal(st.linked, n - 1);
    assert_true(ap_vec_contains(g, 0, "item-9"));
    assert_false(ap_vec_contains(g, 0, "item-5"));
    ap_vec_hit_t h[1];
    size_t got;
    assert_int_equal(ap_vec_search(g, data + 42 * d, 1, NULL, h, &got, NULL), AP_OK);
    assert_string_equal(h[0].id, "item-42");
    assert_int_equal(h[0].label, 42);
    ap_vec_params_t bad = ap_vec_params_default(d + 1);
    assert_int_equal(ap_vec_copy(ix, &bad, NULL, &(ap_vec_t *){NULL}, NULL), AP_ERR_INVALID);
    ap_vec_release(g);
    ap_vec_release(ix);
    free(data);
}

static void cleanup_tmp(void) {
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "vec_test: could not remove %s\n", tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_below_threshold),
        cmocka_unit_test(test_hnsw_recall),
        cmocka_unit_test(test_hnsw_duplicates),
        cmocka_unit_test(test_delete_and_filter),
        cmocka_unit_test(test_string_ids_and_replace),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_readers_with_writer),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_allocator),
        cmocka_unit_test(test_iter_exact),
        cmocka_unit_test(test_iter_graph),
        cmocka_unit_test(test_copy_and_helpers),
    };
    /* VEC_TEST_FILTER=test_readers* runs a subset (e.g. under TSan) */
    if (getenv("VEC_TEST_FILTER")) cmocka_set_test_filter(getenv("VEC_TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup_tmp();
    return rc;
}
