/*
 * memory_index_test.c - the memory index (src/memory/index.c,
 * index_file.c) without a database: the exact scan, the graph path with
 * the bounded blend against the exact scan (with filters), the cap, the
 * calibration, change-sequence rules, and partition files (round trip,
 * corrupt, truncated, another partition's).
 *
 * 1. Data come from seeded generators: every run sees the same vectors.
 * 2. The score and its bound here mirror memory.c's ranking (0.60·sim +
 *    0.20·importance + 0.15·recency + 0.05·access).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/embed.h"
#include "memory/index.h"
#include "memory/index_internal.h"

/* ---------- data ---------- */

static uint32_t lcg;
static double unif(void) {
    lcg = lcg * 1664525u + 1013904223u;
    return (double)(lcg >> 8) / (1u << 24);
}

static void normalize(float *v, int d) {
    double n = 0;
    for (int i = 0; i < d; i++) n += (double)v[i] * v[i];
    for (int i = 0; i < d; i++) v[i] = (float)(v[i] / sqrt(n));
}

/* n unit vectors of dim d: uniform directions (clusters 0) or around
 * `clusters` random centres. */
static float *make_vecs(int n, int d, int clusters, uint32_t seed) {
    lcg = seed;
    float *c = clusters ? malloc(sizeof *c * (size_t)clusters * d) : NULL;
    for (int k = 0; k < clusters * d; k++) c[k] = (float)(unif() - 0.5);
    for (int k = 0; k < clusters; k++) normalize(c + (size_t)k * d, d);
    float *v = malloc(sizeof *v * (size_t)n * d);
    for (int i = 0; i < n; i++) {
        float *x = v + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            double noise = unif() - 0.5;
            x[j] = clusters ? c[(size_t)(i % clusters) * d + j] + (float)(noise * 0.9 / sqrt(d) * 3)
                            : (float)noise;
        }
        normalize(x, d);
    }
    free(c);
    return v;
}

#define DAY 86400000LL
static const int64_t NOW = 1800000000000LL;

typedef struct {
    int n, d;
    float *v;
    ap_mem_meta_t *m;
} set_t;

static set_t set;

static ap_rc load_set(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    (void)ud, (void)err;
    for (int i = 0; i < set.n; i++) assert_true(ap_mem_part_add(p, &set.m[i], set.v + (size_t)i * set.d, set.d));
    ap_mem_part_set_seq(p, 5);
    return AP_OK;
}

static void make_set(int n, int d, int clusters, uint32_t seed) {
    set.n = n;
    set.d = d;
    set.v = make_vecs(n, d, clusters, seed);
    set.m = calloc((size_t)n, sizeof *set.m);
    lcg = seed * 7 + 1;
    for (int i = 0; i < n; i++) {
        ap_mem_meta_t *m = &set.m[i];
        snprintf(m->id, sizeof m->id, "0190c0de-0000-7000-8000-%012d", i);
        m->type = i % 6;
        m->importance = (float)(round(unif() * 100) / 100);
        m->created_ms = NOW - (int64_t)(unif() * 60 * DAY);
        m->access_count = (int64_t)(unif() * unif() * 30);
        m->shared = i % 7 == 0;
    }
}

static void free_set(void) {
    free(set.v);
    free(set.m);
    memset(&set, 0, sizeof set);
}

/* ---------- the ranking of memory.c ---------- */

typedef struct {
    unsigned types;
    float min_importance;
    int64_t since, until;
    bool no_shared;
} tf_t;

static bool tfilt(const ap_mem_meta_t *m, void *ud) {
    const tf_t *f = ud;
    if (f->types && !(f->types & (1u << m->type))) return false;
    if (m->importance < f->min_importance) return false;
    if (f->since && m->created_ms < f->since) return false;
    if (f->until && m->created_ms >= f->until) return false;
    if (f->no_shared && m->shared) return false;
    return true;
}

static double rec(int64_t created) {
    double days = (double)(NOW - created) / DAY;
    return exp2(-(days < 0 ? 0 : days) / 14.0);
}
static double acc(int64_t n) {
    double v = n > 0 ? log1p((double)n) / log(101) : 0;
    return v > 1 ? 1 : v;
}

static double tscore(const ap_mem_meta_t *m, float sim, void *ud) {
    (void)ud;
    double s = sim < 0 ? 0 : sim > 1 ? 1 : sim;
    return 0.6 * s + 0.2 * m->importance + 0.15 * rec(m->created_ms) + 0.05 * acc(m->access_count);
}

static double tbound(const ap_mem_bounds_t *b, void *ud) {
    (void)ud;
    return 0.2 * b->max_importance + 0.15 * rec(b->max_created_ms) + 0.05 * acc(b->max_access_count);
}

static ap_mem_query_t blend_query(tf_t *f) {
    return (ap_mem_query_t){.filter = tfilt, .score = tscore, .ud = f, .w_sim = 0.6,
                            .bound = tbound, .min_similarity = -1};
}

static const ap_mem_query_t plain = {.w_sim = 1, .min_similarity = -1};

static int overlap(const ap_mem_hit_t *a, int na, const ap_mem_hit_t *b, int nb) {
    int f = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!strcmp(a[i].id, b[j].id)) {
                f++;
                break;
            }
    return f;
}

static const ap_mem_meta_t *meta_by_id(const char *id) {
    for (int i = 0; i < set.n; i++)
        if (!strcmp(set.m[i].id, id)) return &set.m[i];
    return NULL;
}

/* ---------- exact scan ---------- */

static ap_rc load3(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    (void)err;
    float(*v)[4] = ud;
    for (int i = 0; i < 3; i++) {
        ap_mem_meta_t m = {0};
        snprintf(m.id, sizeof m.id, "id%d", i);
        assert_true(ap_mem_part_add(p, &m, v[i], 4));
    }
    float bad[2] = {1, 0};
    ap_mem_meta_t m = {.id = "baddim"};
    assert_false(ap_mem_part_add(p, &m, bad, 2));
    return AP_OK;
}

static void test_index_exact_search(void **state) {
    (void)state;
    ap_mem_index_t *ix = ap_mem_index_new();
    float v[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0.8f, 0.6f, 0, 0}};
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_ensure(ix, "k", load3, v, &err), AP_OK);
    assert_int_equal(ap_mem_index_size(ix, "k"), 3);
    ap_mem_hit_t hits[3];
    float q[4] = {1, 0, 0, 0};
    ap_mem_search_info_t info;
    int n = ap_mem_index_search(ix, "k", q, 4, 3, &plain, hits, &info);
    assert_int_equal(n, 3);
    assert_int_equal(info.path, AP_MEM_PATH_SCAN);
    assert_string_equal(hits[0].id, "id0");
    assert_string_equal(hits[1].id, "id2");
    assert_string_equal(hits[2].id, "id1");
    ap_mem_index_remove(ix, "k", "id0", 0);
    assert_int_equal(ap_mem_index_size(ix, "k"), 2);
    n = ap_mem_index_search(ix, "k", q, 4, 3, &plain, hits, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].id, "id2");
    /* min_similarity leaves out what is below it */
    ap_mem_query_t ms = plain;
    ms.min_similarity = 0.5f;
    assert_int_equal(ap_mem_index_search(ix, "k", q, 4, 3, &ms, hits, NULL), 1);
    /* many puts and removes keep the id map right */
    for (int i = 0; i < 500; i++) {
        ap_mem_meta_t m = {0};
        snprintf(m.id, sizeof m.id, "n%d", i);
        ap_mem_index_put(ix, "k", &m, v[1], 4, 0);
    }
    for (int i = 0; i < 500; i += 2) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        ap_mem_index_remove(ix, "k", id, 0);
    }
    assert_int_equal(ap_mem_index_size(ix, "k"), 252);
    /* another dim finds nothing; another key is not loaded */
    assert_int_equal(ap_mem_index_search(ix, "k", q, 3, 3, &plain, hits, NULL), 0);
    assert_int_equal(ap_mem_index_search(ix, "other", q, 4, 3, &plain, hits, NULL), 0);
    ap_mem_index_free(ix);
}

/* The int8 first stage with float re-scoring finds exactly the float top k. */
static void test_index_quantised_scan_is_exact(void **state) {
    (void)state;
    make_set(3000, 384, 0, 12345);
    ap_mem_index_t *ix = ap_mem_index_new();
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_ensure(ix, "q", load_set, NULL, &err), AP_OK);
    for (int q = 0; q < 20; q++) {
        /* a query near entry q*7, so the top is not all ties */
        float query[384];
        for (int d = 0; d < 384; d++)
            query[d] = set.v[(size_t)q * 7 * 384 + d] + 0.5f * set.v[(size_t)(q * 7 + 1) * 384 + d];
        normalize(query, 384);
        ap_mem_hit_t hits[10];
        assert_int_equal(ap_mem_index_search(ix, "q", query, 384, 10, &plain, hits, NULL), 10);
        double best[10];
        int bi[10], nb = 0;
        for (int i = 0; i < set.n; i++) {
            double dot = 0;
            for (int d = 0; d < 384; d++) dot += (double)set.v[(size_t)i * 384 + d] * query[d];
            if (nb == 10 && dot <= best[9]) continue;
            int j = nb < 10 ? nb++ : 9;
            while (j > 0 && best[j - 1] < dot) {
                best[j] = best[j - 1];
                bi[j] = bi[j - 1];
                j--;
            }
            best[j] = dot;
            bi[j] = i;
        }
        for (int k = 0; k < 10; k++) {
            assert_string_equal(hits[k].id, set.m[bi[k]].id);
            assert_true(fabs(hits[k].similarity - best[k]) < 1e-4);
        }
    }
    ap_mem_index_free(ix);
    free_set();
}

/* Every int8 kernel this CPU runs gives the scalar kernel's integers, at
 * every length (the vector loops and their tails) and at the extremes. */
static void test_dot_kernels_agree(void **state) {
    (void)state;
    const char *names[8];
    ap_mem_dots_fn fns[8];
    int nk = ap_mem_dots_kernels(names, fns, 8);
    assert_true(nk >= 1);
    assert_string_equal(names[0], "scalar");
    print_message("      kernels:");
    for (int k = 0; k < nk; k++) print_message(" %s", names[k]);
    print_message("\n");
    static const int dims[] = {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 384, 385};
    lcg = 31337;
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int d = dims[di], n = 37;
        int8_t *codes = malloc((size_t)n * (size_t)d), *q = malloc((size_t)d);
        for (int i = 0; i < n * d; i++) codes[i] = (int8_t)((int)(unif() * 256) - 128);
        for (int i = 0; i < d; i++) q[i] = (int8_t)((int)(unif() * 256) - 128);
        memset(codes, 127, (size_t)d); /* the largest sums, both signs */
        memset(codes + d, -128, (size_t)d);
        int32_t want[37], got[37];
        fns[0](codes, n, q, d, want);
        for (int i = 0; i < n; i++) {
            int32_t s = 0;
            for (int j = 0; j < d; j++) s += codes[(size_t)i * d + j] * q[j];
            assert_int_equal(want[i], s);
        }
        for (int k = 1; k < nk; k++) {
            fns[k](codes, n, q, d, got);
            assert_memory_equal(got, want, sizeof want);
        }
        free(codes);
        free(q);
    }
}

/* The scan passes over an entry when even its own prior (an upper bound of
 * its non-similarity terms) cannot lift it to the k-th best: the results
 * stay those of the partition's bound, with filters, and the prior follows
 * every change of the entry's metadata. */
static double tprior(const ap_mem_meta_t *m) {
    return 0.2 * m->importance + 0.15 * rec(m->created_ms) + 0.05 * acc(m->access_count);
}

static ap_rc load_line(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    (void)ud, (void)err;
    for (int i = 0; i < 100; i++) {
        ap_mem_meta_t m = {.created_ms = NOW - 20 * DAY, .seq = 1};
        snprintf(m.id, sizeof m.id, "line%d", i);
        double c = 1 - 0.001 * i;
        float v[4] = {(float)c, (float)sqrt(1 - c * c), 0, 0};
        assert_true(ap_mem_part_add(p, &m, v, 4));
    }
    ap_mem_part_set_seq(p, 5);
    return AP_OK;
}

static void test_scan_prior(void **state) {
    (void)state;
    const int n = 4000, d = 64;
    make_set(n, d, 20, 777);
    ap_mem_index_t *ix = ap_mem_index_new();
    ap_mem_index_set_prior(ix, tprior);
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_ensure(ix, "p", load_set, NULL, &err), AP_OK);
    float *qs = make_vecs(30, d, 20, 778);
    tf_t filters[] = {{0}, {.min_importance = 0.5f}, {.no_shared = true}};
    for (size_t fi = 0; fi < sizeof filters / sizeof *filters; fi++) {
        ap_mem_query_t bq = blend_query(&filters[fi]), pq = bq;
        pq.use_prior = true;
        for (int i = 0; i < 30; i++) {
            const float *qv = qs + (size_t)i * d;
            ap_mem_hit_t a[10], b[10];
            int na = ap_mem_index_search(ix, "p", qv, d, 10, &bq, a, NULL);
            int nb = ap_mem_index_search(ix, "p", qv, d, 10, &pq, b, NULL);
            assert_int_equal(na, 10);
            assert_int_equal(nb, na);
            /* the blend's own top 10, from the float vectors */
            double best[10];
            int nbest = 0;
            for (int e = 0; e < n; e++) {
                if (!tfilt(&set.m[e], &filters[fi])) continue;
                double dot = 0;
                for (int j = 0; j < d; j++) dot += (double)set.v[(size_t)e * d + j] * qv[j];
                double sc = tscore(&set.m[e], (float)dot, NULL);
                if (nbest == 10 && sc <= best[9]) continue;
                int j = nbest < 10 ? nbest++ : 9;
                while (j > 0 && best[j - 1] < sc) {
                    best[j] = best[j - 1];
                    j--;
                }
                best[j] = sc;
            }
            for (int h = 0; h < nb; h++) {
                assert_string_equal(a[h].id, b[h].id);
                assert_true(fabs(b[h].score - best[h]) < 1e-5);
            }
        }
    }
    free(qs);
    ap_mem_index_free(ix);
    free_set();

    /* 100 entries along one arc: similarity 1, 0.999, ..., equal otherwise.
     * Entry 60 (similarity 0.94) is past the 36 candidates a top 1 keeps;
     * 100 accesses lift it by 0.05, above entry 0 (0.6 × 0.06 = 0.036). */
    ix = ap_mem_index_new();
    ap_mem_index_set_prior(ix, tprior);
    assert_int_equal(ap_mem_index_ensure(ix, "line", load_line, NULL, &err), AP_OK);
    tf_t none = {0};
    ap_mem_query_t pq = blend_query(&none);
    pq.use_prior = true;
    float q[4] = {1, 0, 0, 0};
    ap_mem_hit_t h[1];
    assert_int_equal(ap_mem_index_search(ix, "line", q, 4, 1, &pq, h, NULL), 1);
    assert_string_equal(h[0].id, "line0");
    char ids[1][AP_UUID_LEN] = {"line60"};
    int64_t counts[1] = {100};
    ap_mem_index_accessed(ix, "line", (const char(*)[AP_UUID_LEN])ids, counts, NOW, 1, 6);
    assert_int_equal(ap_mem_index_search(ix, "line", q, 4, 1, &pq, h, NULL), 1);
    assert_string_equal(h[0].id, "line60");
    /* a put that raises entry 70's importance: its prior follows */
    ap_mem_meta_t m = {.id = "line70", .importance = 1, .created_ms = NOW - 20 * DAY, .seq = 7};
    float v70[4] = {0.93f, (float)sqrt(1 - 0.93 * 0.93), 0, 0};
    ap_mem_index_put(ix, "line", &m, v70, 4, 7);
    assert_int_equal(ap_mem_index_search(ix, "line", q, 4, 1, &pq, h, NULL), 1);
    assert_string_equal(h[0].id, "line70");
    ap_mem_index_free(ix);
}

/* ---------- the graph path ---------- */

static ap_mem_index_t *graph_index(const char *key, int ef) {
    ap_mem_index_t *ix = ap_mem_index_new();
    ap_mem_index_set_hnsw_min(ix, 1000);
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_ensure(ix, key, load_set, NULL, &err), AP_OK);
    assert_true(ap_mem_index_wants_build(ix, key));
    assert_int_equal(ap_mem_index_build(ix), 1);
    assert_false(ap_mem_index_wants_build(ix, key));
    if (ef) ap_mem_index_force_graph(ix, key, ef);
    return ix;
}

/* The bounded blend on the graph against the exact scan, with each kind of
 * filter: recall@10 >= 0.95, every hit passes the filter, best first, and
 * the search stops long before it has seen the partition. */
static void test_bounded_blend_vs_exact(void **state) {
    (void)state;
    const int n = 4000, d = 48;
    make_set(n, d, 40, 4242);
    ap_mem_index_t *ix = graph_index("b", 64);
    float *qs = make_vecs(60, d, 40, 4243);
    tf_t filters[] = {{0},
                      {.types = (1u << 0) | (1u << 3)},
                      {.min_importance = 0.5f},
                      {.since = NOW - 30 * DAY, .until = NOW - 5 * DAY},
                      {.no_shared = true}};
    for (size_t fi = 0; fi < sizeof filters / sizeof *filters; fi++) {
        ap_mem_query_t q = blend_query(&filters[fi]);
        double found = 0, total = 0, pulled = 0;
        for (int i = 0; i < 60; i++) {
            const float *qv = qs + (size_t)i * d;
            ap_mem_hit_t ex[10], gr[10];
            ap_mem_query_t qe = q;
            qe.flags = AP_MEM_SEARCH_EXACT;
            ap_mem_search_info_t ie, ig;
            int ne = ap_mem_index_search(ix, "b", qv, d, 10, &qe, ex, &ie);
            int ng = ap_mem_index_search(ix, "b", qv, d, 10, &q, gr, &ig);
            assert_int_equal(ie.path, AP_MEM_PATH_SCAN);
            assert_int_equal(ig.path, AP_MEM_PATH_GRAPH);
            assert_int_equal(ng, ne);
            for (int h = 0; h < ng; h++) {
                const ap_mem_meta_t *m = meta_by_id(gr[h].id);
                assert_non_null(m);
                assert_true(tfilt(m, &filters[fi]));
                assert_true(fabs(gr[h].score - tscore(m, gr[h].similarity, NULL)) < 1e-6);
                if (h) assert_true(gr[h - 1].score >= gr[h].score);
            }
            found += overlap(ex, ne, gr, ng);
            total += ne;
            pulled += ig.pulled;
        }
        print_message("      filter %zu: recall@10 %.3f, candidates pulled %.0f of %d\n", fi,
                      found / total, pulled / 60, n);
        assert_true(found >= 0.95 * total);
        assert_true(pulled / 60 < n / 2);
    }
    free(qs);
    ap_mem_index_free(ix);
    free_set();
}

/* A memory far down the similarity order but with the highest importance
 * tops the blend: the bound keeps the graph search pulling batches until
 * it is found.  With a cap below that, the search gives up on the graph
 * and scans: the same answer. */
typedef struct {
    float s;
    int i;
} si_t;
static int cmp_si(const void *a, const void *b) {
    float x = ((const si_t *)a)->s, y = ((const si_t *)b)->s;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_bounded_blend_lifts_important(void **state) {
    (void)state;
    const int n = 3000, d = 32;
    make_set(n, d, 2, 99);
    for (int i = 0; i < n; i++) {
        set.m[i].importance = 0;
        set.m[i].access_count = 0;
        set.m[i].created_ms = NOW - 20 * DAY;
    }
    float *q = make_vecs(1, d, 2, 99); /* near centre 0 */
    /* the entry deepest in the similarity order that importance 1 still
     * lifts to the top gets it */
    si_t *r = malloc(sizeof *r * (size_t)n);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)set.v[(size_t)i * d + j] * q[j];
        r[i] = (si_t){(float)s, i};
    }
    qsort(r, (size_t)n, sizeof *r, cmp_si);
    int rank = 1;
    while (rank + 1 < n && 0.6 * (r[0].s - r[rank + 1].s) < 0.15) rank++;
    int star = r[rank].i;
    print_message("      the important memory is %d-th by similarity\n", rank + 1);
    assert_true(rank > 64); /* beyond the first batches */
    set.m[star].importance = 1;
    free(r);
    ap_mem_index_t *ix = graph_index("l", 32);
    tf_t f = {0};
    ap_mem_query_t bq = blend_query(&f);
    ap_mem_hit_t hits[5];
    ap_mem_search_info_t info;
    int got = ap_mem_index_search(ix, "l", q, d, 5, &bq, hits, &info);
    assert_int_equal(got, 5);
    assert_int_equal(info.path, AP_MEM_PATH_GRAPH);
    assert_string_equal(hits[0].id, set.m[star].id);
    assert_true(info.pulled > 32); /* more than the first batch */
    print_message("      the important memory found after %d candidates\n", info.pulled);
    /* capped: scanned instead, same top */
    ap_mem_index_set_max_candidates(ix, 16);
    got = ap_mem_index_search(ix, "l", q, d, 5, &bq, hits, &info);
    assert_int_equal(info.path, AP_MEM_PATH_GRAPH_CAPPED);
    assert_int_equal(got, 5);
    assert_string_equal(hits[0].id, set.m[star].id);
    free(q);
    ap_mem_index_free(ix);
    free_set();
}

/* Builtin-embedded memories with many repeats (bench/memory once loaded
 * 100k memories that were ~120 copies of each of 834 texts): the graph
 * used to fall apart into islands of copies.  The graph search must reach
 * the best similarity the scan finds, without walking every entry. */
static void test_index_graph_with_repeats(void **state) {
    (void)state;
    static const char *const syl[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po"};
    enum { DN = 3000, DTEXTS = 60, QD = 384 };
    float(*dv)[QD] = calloc(DTEXTS, sizeof *dv);
    uint32_t x = 99;
    for (int t = 0; t < DTEXTS; t++) {
        char text[256] = "";
        size_t len = 0;
        for (int w = 0; w < 8; w++) {
            for (int s = 0; s < 3; s++) {
                x = x * 1664525u + 1013904223u;
                len += (size_t)snprintf(text + len, sizeof text - len, "%s", syl[(x >> 24) % 8]);
            }
            len += (size_t)snprintf(text + len, sizeof text - len, " ");
        }
        ap_embed_hash(text, strlen(text), dv[t], QD);
    }
    set.n = DN;
    set.d = QD;
    set.v = malloc(sizeof *set.v * DN * QD);
    set.m = calloc(DN, sizeof *set.m);
    for (int i = 0; i < DN; i++) {
        memcpy(set.v + (size_t)i * QD, dv[i % DTEXTS], sizeof dv[0]);
        snprintf(set.m[i].id, sizeof set.m[i].id, "0190c0de-0000-7000-8000-%012d", i);
        set.m[i].importance = (float)(i % 10) / 10;
    }
    ap_mem_index_t *ix = graph_index("d", 256);
    for (int q = 0; q < 20; q++) {
        float query[QD];
        ap_embed_hash("kalomi nesuta ripo", 18, query, QD);
        for (int d = 0; d < QD; d++) query[d] += 0.05f * dv[q][d];
        ap_mem_hit_t hs[10], hg[10];
        ap_mem_query_t qe = plain;
        qe.flags = AP_MEM_SEARCH_EXACT;
        ap_mem_search_info_t info;
        assert_int_equal(ap_mem_index_search(ix, "d", query, QD, 10, &qe, hs, NULL), 10);
        assert_int_equal(ap_mem_index_search(ix, "d", query, QD, 10, &plain, hg, &info), 10);
        assert_int_equal(info.path, AP_MEM_PATH_GRAPH);
        assert_true(info.pulled < DN);
        assert_true(fabs(hg[0].similarity - hs[0].similarity) < 1e-4);
    }
    ap_mem_index_free(ix);
    free(dv);
    free_set();
}

/* A new graph is calibrated before it is used: searches scan meanwhile,
 * every second one is a sample, and after a window of samples the graph
 * is either used at a beam of the list or set aside. */
static void test_calibration(void **state) {
    (void)state;
    const int d = 32;
    make_set(3000, d, 30, 7);
    ap_mem_index_t *ix = graph_index("c", 0);
    float *qs = make_vecs(40, d, 30, 8);
    tf_t f = {0};
    ap_mem_query_t q = blend_query(&f);
    ap_mem_part_info_t pi;
    assert_true(ap_mem_index_info(ix, "c", &pi));
    assert_true(pi.has_graph);
    assert_false(pi.graph_used);
    int samples = 0, searches = 0;
    for (;; searches++) {
        ap_mem_hit_t hits[10];
        ap_mem_search_info_t info;
        const float *qv = qs + (size_t)(searches % 40) * d;
        ap_mem_index_search(ix, "c", qv, d, 10, &q, hits, &info);
        assert_int_equal(info.path, AP_MEM_PATH_SCAN); /* exact while learning */
        assert_int_equal(info.sample, searches % 2 == 0);
        if (info.sample) {
            samples++;
            ap_mem_index_calibrate(ix, "c", qv, d, 10, &q);
        }
        assert_true(ap_mem_index_info(ix, "c", &pi));
        if (samples == 32) break;
        assert_false(pi.graph_used);
    }
    assert_int_equal(searches, 62);
    print_message("      after calibration: graph %s, ef %d\n", pi.graph_used ? "used" : "set aside",
                  pi.ef);
    if (pi.graph_used) {
        bool listed = false;
        for (int e = 32; e <= 2048; e *= 2) listed |= pi.ef == e;
        assert_true(listed);
        ap_mem_hit_t hits[10];
        ap_mem_search_info_t info;
        ap_mem_index_search(ix, "c", qs, d, 10, &q, hits, &info);
        assert_true(info.path == AP_MEM_PATH_GRAPH || info.path == AP_MEM_PATH_GRAPH_CAPPED);
    }
    /* forcing and releasing */
    ap_mem_index_force_graph(ix, "c", 128);
    assert_true(ap_mem_index_info(ix, "c", &pi) && pi.graph_used && pi.ef == 128);
    ap_mem_index_force_graph(ix, "c", 0);
    assert_true(ap_mem_index_info(ix, "c", &pi) && !pi.graph_used);
    free(qs);
    ap_mem_index_free(ix);
    free_set();
}

/* Forgotten memories stay in the graph as deleted waypoints (with their
 * vectors) until the graph is rebuilt: once they outnumber a quarter of
 * the live entries the background build compacts it, keeping the beam the
 * calibration chose. */
static void test_graph_compaction(void **state) {
    (void)state;
    const int n = 2000, d = 16;
    make_set(n, d, 10, 21);
    ap_mem_index_t *ix = graph_index("g", 64);
    for (int i = 0; i < 350; i++) ap_mem_index_remove(ix, "g", set.m[i].id, 0);
    assert_false(ap_mem_index_wants_build(ix, "g")); /* 350 of 1650: not yet */
    for (int i = 350; i < 500; i++) ap_mem_index_remove(ix, "g", set.m[i].id, 0);
    assert_true(ap_mem_index_wants_build(ix, "g"));
    assert_int_equal(ap_mem_index_build(ix), 1);
    assert_false(ap_mem_index_wants_build(ix, "g"));
    ap_mem_part_info_t pi;
    assert_true(ap_mem_index_info(ix, "g", &pi));
    assert_true(pi.graph_used && pi.ef == 64);
    assert_int_equal(pi.n, 1500);
    /* the rebuilt graph answers like the scan and never returns a removed one */
    float *qs = make_vecs(10, d, 10, 22);
    for (int q = 0; q < 10; q++) {
        ap_mem_hit_t a[10], b[10];
        ap_mem_query_t ex = plain;
        ex.flags = AP_MEM_SEARCH_EXACT;
        int na = ap_mem_index_search(ix, "g", qs + (size_t)q * d, d, 10, &ex, a, NULL);
        int nb = ap_mem_index_search(ix, "g", qs + (size_t)q * d, d, 10, &plain, b, NULL);
        assert_int_equal(na, nb);
        assert_true(overlap(a, na, b, nb) >= 9);
        for (int h = 0; h < nb; h++)
            for (int i = 0; i < 500; i++) assert_string_not_equal(b[h].id, set.m[i].id);
    }
    free(qs);
    ap_mem_index_free(ix);
    free_set();
}

/* ---------- change sequences ---------- */

static ap_mem_meta_t one(const char *id, int64_t seq, float imp) {
    ap_mem_meta_t m = {.importance = imp, .seq = seq};
    snprintf(m.id, sizeof m.id, "%s", id);
    return m;
}

typedef struct {
    ap_mem_meta_t m;
    bool ok;
} upd_t;
static void apply_upd(void *ud, ap_mem_part_t *p) {
    upd_t *u = ud;
    u->ok = ap_mem_part_update(p, &u->m);
}

static void test_seq_rules(void **state) {
    (void)state;
    make_set(0, 8, 0, 3);
    ap_mem_index_t *ix = ap_mem_index_new();
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_seq(ix, "s"), -1);
    assert_int_equal(ap_mem_index_ensure(ix, "s", load_set, NULL, &err), AP_OK);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 5);
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    /* a commit right after what the partition reflects moves it on; one
     * after a gap does not (a delta will bring the gap) */
    ap_mem_meta_t a = one("a", 6, 0.1f);
    ap_mem_index_put(ix, "s", &a, v, 8, 6);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 6);
    ap_mem_meta_t b = one("b", 8, 0.1f);
    ap_mem_index_put(ix, "s", &b, v, 8, 8);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 6);
    ap_mem_index_advance(ix, "s", 7);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 7);
    /* a delta runs only when it is ahead */
    upd_t u = {one("a", 9, 0.9f), false};
    assert_true(ap_mem_index_apply(ix, "s", 9, apply_upd, &u));
    assert_true(u.ok);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 9);
    assert_false(ap_mem_index_apply(ix, "s", 9, apply_upd, &u));
    /* an older version of an entry never overwrites a newer one */
    upd_t old = {one("a", 7, 0.3f), true};
    assert_true(ap_mem_index_apply(ix, "s", 10, apply_upd, &old));
    assert_false(old.ok);
    ap_mem_meta_t stale = one("a", 8, 0.0f);
    ap_mem_index_put(ix, "s", &stale, v, 8, 0);
    ap_mem_hit_t h[1];
    ap_mem_query_t ex = plain;
    ex.flags = AP_MEM_SEARCH_EXACT;
    tf_t f = {0};
    ap_mem_query_t bq = blend_query(&f);
    /* importance 0.9 kept: a scores above b (both have the same vector) */
    assert_int_equal(ap_mem_index_search(ix, "s", v, 8, 1, &bq, h, NULL), 1);
    assert_string_equal(h[0].id, "a");
    /* access counts of this process apply only in sequence */
    const char ids[1][AP_UUID_LEN] = {"b"};
    int64_t cnt[1] = {1000};
    ap_mem_index_accessed(ix, "s", ids, cnt, NOW, 1, 12); /* reflects 10: not 11 */
    assert_int_equal(ap_mem_index_seq(ix, "s"), 10);
    ap_mem_index_accessed(ix, "s", ids, cnt, NOW, 1, 11);
    assert_int_equal(ap_mem_index_seq(ix, "s"), 11);
    ap_mem_index_drop(ix, "s");
    assert_int_equal(ap_mem_index_seq(ix, "s"), -1);
    (void)ex;
    ap_mem_index_free(ix);
    free_set();
}

/* ---------- files ---------- */

static char tmpdir[64];
static const char *tmp_path(const char *name) {
    static char p[160];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/apmemix-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
    }
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

typedef struct {
    const char *path;
    ap_rc rc;
    char detail[512];
} file_ctx_t;

static ap_rc load_from(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    file_ctx_t *c = ud;
    ap_err_t e = {0};
    c->rc = ap_mem_part_load_file(p, c->path, &e);
    snprintf(c->detail, sizeof c->detail, "%s", e.detail);
    if (c->rc) assert_int_equal(ap_mem_part_size(p), 0);
    (void)err;
    return AP_OK;
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void copy_file(const char *from, const char *to, long len, long flip) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    for (long i = 0; i < len; i++) {
        int c = fgetc(a);
        fputc(i == flip ? c ^ 0x10 : c, b);
    }
    fclose(a);
    fclose(b);
}

static void test_file_round_trip_and_refusals(void **state) {
    (void)state;
    const int d = 32;
    make_set(2500, d, 25, 11);
    const char *key = "t-1/a-1/builtin/hash-embed-384@32";
    ap_mem_index_t *ix = graph_index(key, 64);
    ap_mem_index_remove(ix, key, set.m[3].id, 6); /* a deleted slot in the graph */
    char path[160];
    snprintf(path, sizeof path, "%s", tmp_path("p.idx"));
    ap_err_t err = {0};
    assert_int_equal(ap_mem_index_save(ix, key, path, &err), AP_OK);
    ap_mem_part_info_t pi;
    assert_true(ap_mem_index_info(ix, key, &pi));
    assert_int_equal(pi.unsaved, 0);

    /* round trip: same entries, sequence, graph, beam and answers */
    ap_mem_index_t *iy = ap_mem_index_new();
    file_ctx_t c = {path, 0, ""};
    assert_int_equal(ap_mem_index_ensure(iy, key, load_from, &c, &err), AP_OK);
    assert_int_equal(c.rc, AP_OK);
    assert_int_equal(ap_mem_index_size(iy, key), 2499);
    assert_int_equal(ap_mem_index_seq(iy, key), 6);
    assert_true(ap_mem_index_info(iy, key, &pi));
    assert_true(pi.from_file && pi.has_graph && pi.graph_used);
    assert_int_equal(pi.ef, 64);
    float *qs = make_vecs(20, d, 25, 12);
    tf_t f = {.min_importance = 0.2f};
    ap_mem_query_t q = blend_query(&f);
    for (int i = 0; i < 20; i++) {
        ap_mem_hit_t a[10], b[10];
        ap_mem_search_info_t ia, ib;
        int na = ap_mem_index_search(ix, key, qs + (size_t)i * d, d, 10, &q, a, &ia);
        int nb = ap_mem_index_search(iy, key, qs + (size_t)i * d, d, 10, &q, b, &ib);
        assert_int_equal(ib.path, AP_MEM_PATH_GRAPH);
        assert_int_equal(na, nb);
        for (int h = 0; h < na; h++) {
            assert_string_equal(a[h].id, b[h].id);
            assert_true(fabs(a[h].score - b[h].score) < 1e-9);
        }
    }
    /* the loaded partition takes changes like any other */
    ap_mem_meta_t m = one("fresh", 7, 1);
    ap_mem_index_put(iy, key, &m, qs, d, 7);
    ap_mem_hit_t h[1];
    assert_int_equal(ap_mem_index_search(iy, key, qs, d, 1, &plain, h, NULL), 1);
    assert_string_equal(h[0].id, "fresh");
    ap_mem_index_free(iy);

    /* refusals: each leaves the partition empty and says why */
    struct {
        const char *name, *key, *want;
        long len, flip;
    } bad[] = {
        {"flip-records.idx", key, "checksum", 0, 200},
        {"flip-vectors.idx", key, "vectors", 0, -1000},
        {"flip-header.idx", key, "header checksum", 0, 20},
        {"truncated.idx", key, "", -1, -1},
        {"other.idx", "t-1/a-2/builtin/hash-embed-384@32", "another partition", 0, -1},
    };
    long size = file_size(path);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char bp[160];
        snprintf(bp, sizeof bp, "%s", tmp_path(bad[i].name));
        long flip = bad[i].flip < -1 ? size + bad[i].flip : bad[i].flip;
        copy_file(path, bp, bad[i].len < 0 ? size / 2 : size, flip);
        ap_mem_index_t *iz = ap_mem_index_new();
        file_ctx_t bc = {bp, 0, ""};
        assert_int_equal(ap_mem_index_ensure(iz, bad[i].key, load_from, &bc, &err), AP_OK);
        assert_int_equal(bc.rc, AP_ERR_INVALID);
        assert_true(strstr(bc.detail, bad[i].want) != NULL);
        assert_int_equal(ap_mem_index_size(iz, bad[i].key), 0);
        ap_mem_index_free(iz);
        unlink(bp);
    }
    /* missing */
    ap_mem_index_t *iz = ap_mem_index_new();
    file_ctx_t mc = {tmp_path("none.idx"), 0, ""};
    assert_int_equal(ap_mem_index_ensure(iz, key, load_from, &mc, &err), AP_OK);
    assert_int_equal(mc.rc, AP_ERR_NOT_FOUND);
    ap_mem_index_free(iz);
    /* not loaded: nothing to save */
    assert_int_equal(ap_mem_index_save(ix, "nope", tmp_path("x.idx"), &err), AP_ERR_NOT_FOUND);
    unlink(path);
    rmdir(tmpdir);
    free(qs);
    ap_mem_index_free(ix);
    free_set();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_exact_search),
        cmocka_unit_test(test_index_quantised_scan_is_exact),
        cmocka_unit_test(test_dot_kernels_agree),
        cmocka_unit_test(test_scan_prior),
        cmocka_unit_test(test_bounded_blend_vs_exact),
        cmocka_unit_test(test_bounded_blend_lifts_important),
        cmocka_unit_test(test_index_graph_with_repeats),
        cmocka_unit_test(test_calibration),
        cmocka_unit_test(test_graph_compaction),
        cmocka_unit_test(test_seq_rules),
        cmocka_unit_test(test_file_round_trip_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
