/*
 * gen.c - test vectors and exact ground truth for the vector benchmark.
 *
 *   gen KIND N NQ DIM SEED OUT_PREFIX
 *
 * KIND clustered: a Gaussian mixture (max(16, N/1000) random unit centres;
 * a point is centre + N(0, 0.6^2/DIM) per component, then normalised), the
 * shape of real embedding sets; queries come from the same mixture.
 * KIND uniform: random unit vectors (the hard case for graph indexes).
 * Writes PREFIX.base, PREFIX.query and PREFIX.gt (top 10 by inner product,
 * exact, computed on 2 threads in blocks that stay in cache).
 */
#include <math.h>
#include <pthread.h>

#include "common.h"
#include "vec/vec.h"

static uint64_t st;
static uint64_t rnd(void) {
    uint64_t z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uni(void) {
    return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) {
    return sqrt(-2 * log(uni())) * cos(2 * M_PI * uni());
}

static float *centres;
static uint32_t ncent, D;
static int clustered;

static void point(float *v) {
    if (clustered) {
        const float *c = centres + (size_t)(rnd() % ncent) * D;
        double s = 0.6 / sqrt((double)D);
        for (uint32_t j = 0; j < D; j++) v[j] = (float)(c[j] + s * gauss());
    } else {
        for (uint32_t j = 0; j < D; j++) v[j] = (float)gauss();
    }
    ap_vec_normalize(v, D);
}

static void write_vecs(const char *path, const void *p, uint32_t n, uint32_t d, size_t elem) {
    FILE *f = fopen(path, "wb");
    uint32_t h[2] = {n, d};
    if (!f || fwrite(h, 4, 2, f) != 2 || fwrite(p, elem, (size_t)n * d, f) != (size_t)n * d ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

#define K 10
static float *base, *qs;
static uint32_t N, NQ;
static uint32_t *gt;

typedef struct {
    uint32_t q0, q1;
} job_t;

static void *truth(void *arg) {
    job_t *j = arg;
    uint32_t nq = j->q1 - j->q0;
    float *best = malloc((size_t)nq * K * sizeof(float));
    uint32_t *ids = gt + (size_t)j->q0 * K;
    for (size_t i = 0; i < (size_t)nq * K; i++) best[i] = -INFINITY, ids[i] = UINT32_MAX;
    const uint32_t B = 256;
    for (uint32_t b0 = 0; b0 < N; b0 += B) {
        uint32_t b1 = b0 + B < N ? b0 + B : N;
        for (uint32_t q = 0; q < nq; q++) {
            float *bs = best + (size_t)q * K;
            uint32_t *is = ids + (size_t)q * K;
            const float *qv = qs + (size_t)(j->q0 + q) * D;
            for (uint32_t i = b0; i < b1; i++) {
                float s = ap_vec_dot(qv, base + (size_t)i * D, D);
                if (s <= bs[K - 1]) continue;
                int p = K - 1;
                while (p > 0 && bs[p - 1] < s) {
                    bs[p] = bs[p - 1];
                    is[p] = is[p - 1];
                    p--;
                }
                bs[p] = s;
                is[p] = i;
            }
        }
    }
    free(best);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: gen clustered|uniform N NQ DIM SEED PREFIX\n");
        return 2;
    }
    clustered = strcmp(argv[1], "clustered") == 0;
    N = (uint32_t)atol(argv[2]);
    NQ = (uint32_t)atol(argv[3]);
    D = (uint32_t)atol(argv[4]);
    st = (uint64_t)atoll(argv[5]);
    const char *pre = argv[6];
    ncent = N / 1000 < 16 ? 16 : N / 1000;
    centres = malloc((size_t)ncent * D * sizeof(float));
    for (uint32_t c = 0; c < ncent; c++) {
        for (uint32_t j = 0; j < D; j++) centres[(size_t)c * D + j] = (float)gauss();
        ap_vec_normalize(centres + (size_t)c * D, D);
    }
    base = malloc((size_t)N * D * sizeof(float));
    qs = malloc((size_t)NQ * D * sizeof(float));
    for (uint32_t i = 0; i < N; i++) point(base + (size_t)i * D);
    for (uint32_t i = 0; i < NQ; i++) point(qs + (size_t)i * D);
    gt = malloc((size_t)NQ * K * sizeof(uint32_t));
    double t = now_s();
    pthread_t th[2];
    job_t jobs[2] = {{0, NQ / 2}, {NQ / 2, NQ}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, truth, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "gen: ground truth for %u queries over %u in %.1f s\n", NQ, N, now_s() - t);
    char path[512];
    snprintf(path, sizeof path, "%s.base", pre);
    write_vecs(path, base, N, D, 4);
    snprintf(path, sizeof path, "%s.query", pre);
    write_vecs(path, qs, NQ, D, 4);
    snprintf(path, sizeof path, "%s.gt", pre);
    write_vecs(path, gt, NQ, K, 4);
    return 0;
}
