// hnswlib_bench.cpp - hnswlib (Debian libhnswlib-dev, header-only) on the same
// data and with the same method as vec_bench.c: inner product space on the
// normalised vectors, single-threaded inserts, single queries on one thread.
//
//   hnswlib_bench PREFIX M EF_CONSTRUCTION EF...
//
// Prints "build hnswlib ..." and "search hnswlib EF recall p50_us p99_us qps".
#include <hnswlib/hnswlib.h>

extern "C" {
#include "common.h"
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: hnswlib_bench PREFIX M EF_CONSTRUCTION EF...\n");
        return 2;
    }
    char path[512];
    uint32_t n, dim, nq, qd, gq, gk;
    snprintf(path, sizeof path, "%s.base", argv[1]);
    float *base = (float *)read_file(path, &n, &dim, 4);
    snprintf(path, sizeof path, "%s.query", argv[1]);
    float *qs = (float *)read_file(path, &nq, &qd, 4);
    snprintf(path, sizeof path, "%s.gt", argv[1]);
    uint32_t *gt = (uint32_t *)read_file(path, &gq, &gk, 4);
    size_t M = (size_t)atoi(argv[2]), efc = (size_t)atoi(argv[3]);
    hnswlib::InnerProductSpace space(dim);
    auto *ix = new hnswlib::HierarchicalNSW<float>(&space, n, M, efc, 100);
    double t = now_s(), last = t;
    for (uint32_t i = 0; i < n; i++) {
        ix->addPoint(base + (size_t)i * dim, i);
        if (now_s() - last > 30) {
            last = now_s();
            fprintf(stderr, "  hnswlib: %u/%u inserted, %.0f/s\n", i + 1, n, (i + 1) / (last - t));
        }
    }
    double bt = now_s() - t;
    size_t bytes = (size_t)n * ix->size_data_per_element_;
    printf("build\thnswlib\t%u\t%.2f\t%.0f\t%zu\n", n, bt, n / bt, bytes);
    fflush(stdout);
    uint32_t *got = (uint32_t *)malloc((size_t)nq * 10 * sizeof(uint32_t));
    double *lat = (double *)malloc(nq * sizeof(double));
    double *cpu = (double *)malloc(nq * sizeof(double));
    for (int a = 4; a < argc; a++) {
        if (strcmp(argv[a], "exact") == 0) continue;
        uint32_t ef = (uint32_t)atoi(argv[a]);
        ix->setEf(ef);
        for (uint32_t q = 0; q < nq; q++) {
            double t0 = now_s(), c0 = cpu_s();
            auto res = ix->searchKnn(qs + (size_t)q * dim, 10);
            cpu[q] = cpu_s() - c0;
            lat[q] = now_s() - t0;
            size_t m = res.size();
            for (size_t i = 0; i < 10; i++) got[(size_t)q * 10 + i] = UINT32_MAX;
            while (!res.empty()) {  // max-heap: worst first
                got[(size_t)q * 10 + (--m)] = (uint32_t)res.top().second;
                res.pop();
            }
        }
        report("hnswlib", ef < 10 ? 10 : ef, recall(got, gt, nq, 10, gk), lat, cpu, nq);
    }
    delete ix;
    free(base);
    free(qs);
    free(gt);
    free(got);
    free(lat);
    free(cpu);
    return 0;
}
