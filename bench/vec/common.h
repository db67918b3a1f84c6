/*
 * common.h - data files shared by the vector benchmark drivers (C and C++).
 *
 * A vector file: u32 n, u32 dim, then n*dim float32 (little-endian).
 * A ground-truth file: u32 nq, u32 k, then nq*k u32 ids, best first.
 * Latencies: clock_gettime around each single query, twice: CLOCK_MONOTONIC
 * (wall: what a caller waits, including time the thread was preempted on a
 * busy machine) and CLOCK_THREAD_CPUTIME_ID (CPU time of the query alone).
 */
#ifndef BENCH_VEC_COMMON_H
#define BENCH_VEC_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void *read_file(const char *path, uint32_t *n, uint32_t *dim, size_t elem) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint32_t h[2];
    if (fread(h, 4, 2, f) != 2) {
        fprintf(stderr, "%s: short header\n", path);
        exit(1);
    }
    size_t count = (size_t)h[0] * h[1];
    void *p = malloc(count * elem + 1);
    if (!p || fread(p, elem, count, f) != count) {
        fprintf(stderr, "%s: short body\n", path);
        exit(1);
    }
    fclose(f);
    *n = h[0];
    *dim = h[1];
    return p;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* recall@k of got (nq*k) against truth (nq*gk, gk >= k) */
static inline double recall(const uint32_t *got, const uint32_t *truth, uint32_t nq, uint32_t k,
                            uint32_t gk) {
    size_t hit = 0;
    for (uint32_t q = 0; q < nq; q++)
        for (uint32_t i = 0; i < k; i++)
            for (uint32_t j = 0; j < k; j++)
                if (got[(size_t)q * k + i] == truth[(size_t)q * gk + j]) {
                    hit++;
                    break;
                }
    return (double)hit / ((double)nq * k);
}

/* One line per ef: "ef recall p50_us p99_us qps cpu_p50_us cpu_p99_us cpu_qps"
 * (cpu_qps = queries / summed CPU time) */
static inline void report(const char *who, uint32_t ef, double rec, double *lat, double *cpu,
                          uint32_t nq) {
    double total = 0, ctotal = 0;
    for (uint32_t i = 0; i < nq; i++) total += lat[i], ctotal += cpu[i];
    qsort(lat, nq, sizeof *lat, cmp_double);
    qsort(cpu, nq, sizeof *cpu, cmp_double);
    size_t i99 = (size_t)(nq * 0.99);
    printf("search\t%s\t%u\t%.4f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%.0f\n", who, ef, rec,
           lat[nq / 2] * 1e6, lat[i99] * 1e6, nq / total, cpu[nq / 2] * 1e6, cpu[i99] * 1e6,
           nq / ctotal);
    fflush(stdout);
}

#endif
