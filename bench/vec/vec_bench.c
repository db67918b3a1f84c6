/*
 * vec_bench.c - src/vec on benchmark data: build (insert rate), then for each
 * ef the recall@10 against the exact ground truth and the latency of single
 * queries on one thread (p50, p99, queries per second).
 *
 *   vec_bench PREFIX M EF_CONSTRUCTION EF...
 *
 * Prints tab-separated lines: "build ours N seconds inserts_per_s bytes"
 * and "search ours EF recall p50_us p99_us qps"; with EF "exact" the
 * brute-force search (AP_VEC_EXACT).  Vectors are inserted from memory, so
 * no embedding time is included.
 */
#include "common.h"
#include "vec/vec.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: vec_bench PREFIX M EF_CONSTRUCTION EF...\n");
        return 2;
    }
    char path[512];
    uint32_t n, dim, nq, qd, gq, gk;
    snprintf(path, sizeof path, "%s.base", argv[1]);
    float *base = read_file(path, &n, &dim, 4);
    snprintf(path, sizeof path, "%s.query", argv[1]);
    float *qs = read_file(path, &nq, &qd, 4);
    snprintf(path, sizeof path, "%s.gt", argv[1]);
    uint32_t *gt = read_file(path, &gq, &gk, 4);
    ap_vec_params_t p = ap_vec_params_default(dim);
    p.m = (uint32_t)atoi(argv[2]);
    p.ef_construction = (uint32_t)atoi(argv[3]);
    p.exact_threshold = 0; /* always the graph: this measures HNSW */
    ap_vec_t *ix;
    ap_err_t err;
    if (ap_vec_new(&p, NULL, &ix, &err)) {
        fprintf(stderr, "vec_bench: %s: %s\n", err.msg, err.detail);
        return 1;
    }
    double t = now_s(), last = t;
    for (uint32_t i = 0; i < n; i++) {
        if (ap_vec_add(ix, i, NULL, base + (size_t)i * dim, &err)) {
            fprintf(stderr, "vec_bench: %s\n", err.detail);
            return 1;
        }
        if (now_s() - last > 30) {
            last = now_s();
            fprintf(stderr, "  ours: %u/%u inserted, %.0f/s\n", i + 1, n, (i + 1) / (last - t));
        }
    }
    double bt = now_s() - t;
    ap_vec_stats_t s;
    ap_vec_stats(ix, &s);
    printf("build\tours\t%u\t%.2f\t%.0f\t%zu\n", n, bt, n / bt, s.bytes);
    fflush(stdout);
    uint32_t *got = malloc((size_t)nq * 10 * sizeof(uint32_t));
    double *lat = malloc(nq * sizeof(double)), *cpu = malloc(nq * sizeof(double));
    ap_vec_hit_t hits[10];
    for (int a = 4; a < argc; a++) {
        bool exact = strcmp(argv[a], "exact") == 0;
        ap_vec_query_opts_t o = {.ef = exact ? 0 : (uint32_t)atoi(argv[a]),
                                 .flags = exact ? AP_VEC_EXACT : 0};
        for (uint32_t q = 0; q < nq; q++) {
            size_t m;
            double t0 = now_s(), c0 = cpu_s();
            ap_vec_search(ix, qs + (size_t)q * dim, 10, &o, hits, &m, NULL);
            cpu[q] = cpu_s() - c0;
            lat[q] = now_s() - t0;
            for (size_t i = 0; i < 10; i++) got[(size_t)q * 10 + i] = i < m ? (uint32_t)hits[i].label : UINT32_MAX;
        }
        report("ours", o.ef, recall(got, gt, nq, 10, gk), lat, cpu, nq);
    }
    ap_vec_release(ix);
    free(base);
    free(qs);
    free(gt);
    free(got);
    free(lat);
    free(cpu);
    return 0;
}
