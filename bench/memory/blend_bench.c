/*
 * blend_bench.c - recall@10 and cost of the memory index's graph path
 * (the bounded blend, src/memory/index.c) against its exact scan, in
 * process, with recall's own filter and score (memory.c's mem_query).
 *
 *   mem_blend_bench KIND N QUERIES CACHE_DIR META [EF...]
 *
 * KIND text: texts of 8-14 words from a 3000-word vocabulary (the same
 *   generator as bench/memory/load.mjs) through the builtin embedder
 *   (384 dimensions); queries are three random words of the first 500,
 *   as bench/memory/recall.lua sends.
 * KIND random: uniform random unit vectors of 384 dimensions (the worst
 *   case for a graph); queries likewise.
 * KIND clustered: a Gaussian mixture as bench/vec/gen.c (max(16, N/1000)
 *   centres, noise 0.6/sqrt(384)); queries from the same mixture.
 * META fresh: importance uniform in 0..1 (0.01 steps), created within the
 *   last hour, never recalled (what bench/memory/run.sh loads); META
 *   spread: created within the last 30 days and access counts skewed
 *   (most 0, a few up to ~50), which loosens the bound (index.c).  Every
 *   seventh memory is a shared copy; the default recall filters
 *   (min_similarity 0.05, shared included), limit 10.
 *
 * The partition (vectors, graph: M 16, ef_construction 100) is built once
 * and kept in CACHE_DIR as a partition file.  For each EF the graph is
 * forced at that beam and every query is answered both ways; the report
 * is one line per EF: recall@10 (overlap with the exact top 10), the
 * candidates pulled (mean, p99), how often the cap (4096) sent the search
 * to the scan, and the thread CPU time per query (p50, p99) of the graph
 * path and of the scan.  Then the calibration of index.c is run on the
 * first 32 queries and its choice printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/time.h"
#include "llm/embed.h"
#include "memory/index.h"
#include "memory/index_internal.h"
#include "memory/mem_internal.h"
#include "vec/vec.h"

#define DIM 384
#define DAY 86400000LL

static uint64_t st;
static uint64_t rnd(void) {
    uint64_t z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uni(void) { return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(void) { return sqrt(-2 * log(uni())) * cos(2 * M_PI * uni()); }

/* load.mjs's generator: Math.imul LCG over 31 bits */
static int32_t lseed = 42;
static double lrnd(void) {
    lseed = (int32_t)(((uint32_t)lseed * 1103515245u + 12345u) & 0x7fffffff);
    return lseed / (double)0x7fffffff;
}
static const char *const syl[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po",
                                  "ve", "do", "gu", "ha", "zi", "be", "fo"};
static char vocab[3000][16];

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

typedef struct {
    const char *kind;
    bool spread;
    int n;
    int64_t now;
    float *centres;
    int ncent;
} gen_t;

static void make_vec(gen_t *g, int i, float *v) {
    if (!strcmp(g->kind, "text")) {
        (void)i;
        char t[512] = "";
        size_t len = 0;
        int nw = 8 + (int)floor(lrnd() * 7);
        for (int w = 0; w < nw; w++)
            len += (size_t)snprintf(t + len, sizeof t - len, "%s%s", w ? " " : "",
                                    vocab[(int)floor(lrnd() * 3000)]);
        ap_embed_hash(t, strlen(t), v, DIM);
    } else if (!strcmp(g->kind, "clustered")) {
        const float *c = g->centres + (size_t)(rnd() % (uint64_t)g->ncent) * DIM;
        for (int j = 0; j < DIM; j++) v[j] = (float)(c[j] + 0.6 / sqrt(DIM) * gauss());
        ap_vec_normalize(v, DIM);
    } else {
        for (int j = 0; j < DIM; j++) v[j] = (float)gauss();
        ap_vec_normalize(v, DIM);
    }
}

static ap_mem_meta_t make_meta(gen_t *g, int i) {
    ap_mem_meta_t m = {0};
    snprintf(m.id, sizeof m.id, "0190c0de-0000-7000-8000-%012d", i);
    m.type = i % 6;
    m.importance = (float)(round(uni() * 100) / 100);
    if (g->spread) {
        m.created_ms = g->now - (int64_t)(uni() * 30 * DAY);
        double u = uni();
        m.access_count = u < 0.8 ? 0 : (int64_t)(50 * pow(uni(), 3));
    } else {
        m.created_ms = g->now - (int64_t)(uni() * DAY / 24);
    }
    m.shared = i % 7 == 0;
    m.seq = 1;
    return m;
}

static ap_rc load_gen(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    gen_t *g = ud;
    (void)err;
    float v[DIM];
    bool text = !strcmp(g->kind, "text");
    for (int i = 0; i < g->n; i++) {
        make_vec(g, i, v);
        ap_mem_meta_t m = make_meta(g, i);
        if (text) m.importance = (float)(round(lrnd() * 100) / 100); /* as load.mjs draws it */
        ap_mem_part_add(p, &m, v, DIM);
    }
    ap_mem_part_set_seq(p, 1);
    return AP_OK;
}

static ap_rc load_cached(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    return ap_mem_part_load_file(p, ud, err);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s text|random|clustered N QUERIES CACHE_DIR fresh|spread [EF...]\n",
                argv[0]);
        return 2;
    }
    gen_t g = {.kind = argv[1], .n = atoi(argv[2]), .now = 1800000000000LL,
               .spread = !strcmp(argv[5], "spread")};
    int nq = atoi(argv[3]);
    const char *cache = argv[4];
    for (int v = 0; v < 3000; v++) {
        int n = 2 + (int)floor(lrnd() * 3);
        size_t len = 0;
        vocab[v][0] = '\0';
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(vocab[v] + len, sizeof vocab[v] - len, "%s",
                                    syl[(int)floor(lrnd() * 15)]);
    }
    st = 7;
    g.ncent = g.n / 1000 > 16 ? g.n / 1000 : 16;
    g.centres = malloc(sizeof *g.centres * (size_t)g.ncent * DIM);
    for (int c = 0; c < g.ncent; c++) {
        for (int j = 0; j < DIM; j++) g.centres[(size_t)c * DIM + j] = (float)gauss();
        ap_vec_normalize(g.centres + (size_t)c * DIM, DIM);
    }
    char key[128], path[512];
    snprintf(key, sizeof key, "bench/%s-%d-%s/builtin@384", g.kind, g.n, argv[5]);
    mkdir(cache, 0700);
    snprintf(path, sizeof path, "%s/%s-%d-%s.idx", cache, g.kind, g.n, argv[5]);
    ap_mem_index_t *ix = ap_mem_index_new();
    ap_mem_index_set_prior(ix, mem_prior);
    ap_mem_index_set_hnsw_min(ix, 1000);
    ap_err_t err = {0};
    double t0 = (double)ap_mono_ns() / 1e9;
    ap_mem_part_info_t pi;
    if (ap_mem_index_ensure(ix, key, load_cached, path, &err) || ap_mem_index_size(ix, key) != g.n) {
        ap_mem_index_drop(ix, key);
        ap_mem_index_ensure(ix, key, load_gen, &g, &err);
        double t1 = (double)ap_mono_ns() / 1e9;
        ap_mem_index_build(ix);
        double t2 = (double)ap_mono_ns() / 1e9;
        fprintf(stderr, "%s %d: generated in %.1f s, graph built in %.1f s (%.0f inserts/s)\n",
                g.kind, g.n, t1 - t0, t2 - t1, g.n / (t2 - t1));
        if (ap_mem_index_save(ix, key, path, &err)) fprintf(stderr, "save: %s\n", err.detail);
    } else {
        fprintf(stderr, "%s %d: loaded from %s in %.1f s\n", g.kind, g.n, path,
                (double)ap_mono_ns() / 1e9 - t0);
    }
    ap_mem_index_info(ix, key, &pi);
    if (!pi.has_graph) {
        fprintf(stderr, "no graph\n");
        return 1;
    }
    /* queries: after the data, from the same generators */
    float *qs = malloc(sizeof *qs * (size_t)nq * DIM);
    srand(7);
    for (int q = 0; q < nq; q++) {
        float *v = qs + (size_t)q * DIM;
        if (!strcmp(g.kind, "text")) {
            char t[128];
            snprintf(t, sizeof t, "%s %s %s", vocab[rand() % 500], vocab[rand() % 500],
                     vocab[rand() % 500]);
            ap_embed_hash(t, strlen(t), v, DIM);
        } else {
            make_vec(&g, q, v);
        }
    }
    mem_filter_t f = {.min_similarity = 0.05, .include_shared = true, .now = g.now};
    ap_mem_query_t mq = mem_query(&f), me = mq;
    me.flags = AP_MEM_SEARCH_EXACT;
    me.use_prior = false; /* the reference: the partition's bound only */
    ap_mem_hit_t(*truth)[10] = malloc(sizeof *truth * (size_t)nq);
    int *nt = malloc(sizeof *nt * (size_t)nq);
    double *gcpu = malloc(sizeof *gcpu * (size_t)nq), *pulled = malloc(sizeof *pulled * (size_t)nq);
    for (int q = 0; q < nq; q++)
        nt[q] = ap_mem_index_search(ix, key, qs + (size_t)q * DIM, DIM, 10, &me, truth[q], NULL);
    /* the scan's variants: each int8 kernel (src/memory/dots.c) with the
     * per-entry prior, and the best kernel with the partition's bound
     * only; interleaved over three rounds; each must give the hits above */
    const char *kn[8];
    ap_mem_dots_fn kf[8];
    int nk = ap_mem_dots_kernels(kn, kf, 8), nv = nk + 1;
    double *kcpu = malloc(sizeof *kcpu * (size_t)nq * 3 * (size_t)nv);
    int differ = 0;
    for (int round = 0; round < 3; round++)
        for (int v = 0; v < nv; v++) {
            ap_mem_index_use_kernel(ix, kn[v < nk ? v : nk - 1]);
            ap_mem_query_t mv = me;
            mv.use_prior = v < nk;
            for (int q = 0; q < nq; q++) {
                ap_mem_hit_t h[10];
                double c0 = cpu_ms();
                int n = ap_mem_index_search(ix, key, qs + (size_t)q * DIM, DIM, 10, &mv, h, NULL);
                kcpu[((size_t)v * 3 + (size_t)round) * (size_t)nq + (size_t)q] = cpu_ms() - c0;
                differ += n != nt[q];
                for (int i = 0; i < n && n == nt[q]; i++) differ += strcmp(h[i].id, truth[q][i].id) != 0;
            }
        }
    ap_mem_index_use_kernel(ix, kn[nk - 1]);
    /* the scan the graph is compared with below: recall's own (the best
     * kernel, per-entry priors) */
    double scan50 = pct(kcpu + (size_t)(nk - 1) * 3 * (size_t)nq, 3 * nq, 0.5);
    double scan99 = pct(kcpu + (size_t)(nk - 1) * 3 * (size_t)nq, 3 * nq, 0.99);
    printf("| kind | metadata | memories | scan kernel | pass-over bound | scan CPU p50 | scan CPU p99 |\n"
           "|---|---|---|---|---|---|---|\n");
    for (int v = 0; v < nv; v++) {
        double *x = kcpu + (size_t)v * 3 * (size_t)nq;
        double p50 = pct(x, 3 * nq, 0.5), p99 = pct(x, 3 * nq, 0.99);
        printf("| %s | %s | %d | %s | %s | %.3f ms | %.3f ms |\n", g.kind, argv[5], g.n,
               kn[v < nk ? v : nk - 1], v < nk ? "per entry" : "partition", p50, p99);
    }
    printf("(%d queries × 3 rounds each, interleaved; hits differing from the scan's with the "
           "partition's bound: %d)\n\n", nq, differ);
    free(kcpu);
    printf("| kind | metadata | memories | ef | recall@10 | pulled mean | pulled p99 | capped | graph CPU p50 | "
           "graph CPU p99 | scan CPU p50 | scan CPU p99 |\n");
    for (int a = 6; a < argc; a++) {
        int ef = atoi(argv[a]);
        ap_mem_index_force_graph(ix, key, ef);
        double found = 0, total = 0, pull = 0;
        int capped = 0;
        for (int q = 0; q < nq; q++) {
            ap_mem_hit_t h[10];
            ap_mem_search_info_t info;
            double c0 = cpu_ms();
            int n = ap_mem_index_search(ix, key, qs + (size_t)q * DIM, DIM, 10, &mq, h, &info);
            gcpu[q] = cpu_ms() - c0;
            pulled[q] = info.pulled;
            pull += info.pulled;
            capped += info.path == AP_MEM_PATH_GRAPH_CAPPED;
            for (int i = 0; i < nt[q]; i++)
                for (int j = 0; j < n; j++)
                    if (!strcmp(truth[q][i].id, h[j].id)) {
                        found++;
                        break;
                    }
            total += nt[q];
        }
        printf("| %s | %s | %d | %d | %.3f | %.0f | %.0f | %.1f %% | %.3f ms | %.3f ms | %.3f ms | %.3f ms |\n",
               g.kind, argv[5], g.n, ef, total ? found / total : 1, pull / nq, pct(pulled, nq, 0.99),
               100.0 * capped / nq, pct(gcpu, nq, 0.5), pct(gcpu, nq, 0.99), scan50, scan99);
        fflush(stdout);
    }
    /* what the calibration of index.c chooses */
    ap_mem_index_force_graph(ix, key, 0);
    for (int q = 0; q < 32 && q < nq; q++)
        ap_mem_index_calibrate(ix, key, qs + (size_t)q * DIM, DIM, 10, &mq);
    ap_mem_index_info(ix, key, &pi);
    printf("\ncalibration (%s, %s, %d): %s\n", g.kind, argv[5], g.n,
           pi.graph_used ? "graph used" : "graph set aside: the scan answers");
    if (pi.graph_used) printf("  at ef %d\n", pi.ef);
    ap_mem_index_free(ix);
    free(qs);
    free(truth);
    free(nt);
    free(gcpu);
    free(pulled);
    free(g.centres);
    return 0;
}
