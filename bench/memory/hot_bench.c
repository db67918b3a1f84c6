/*
 * hot_bench.c - latency of the hot tier (src/memory/hot.c, the in-process
 * backend) with many live conversations.
 *
 *   mem_hot_bench CONVERSATIONS OPS THREADS
 *
 * The tier is filled with CONVERSATIONS conversations (one agent each of
 * 100 per tenant), each with 10 messages of ~200 bytes and a task
 * context.  Then THREADS threads each run OPS operations on random
 * conversations: three pushes of a message (each drops the oldest) for
 * every read of the whole context (get: the messages and the task as
 * JSON), the runner's mix.  Each operation is timed alone on the
 * monotonic clock; prints one markdown row per operation kind: p50, p99,
 * p99.9 and the maximum, plus the operations per second of all threads.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "memory/hot.h"

static ap_mem_hot_t *hot;
static int nconv, nops;

static void ids(int c, char *t, char *a, char *conv) {
    snprintf(t, 40, "0190c0de-0000-7000-8000-%012d", c / 100);
    snprintf(a, 40, "0190c0de-0000-7000-9000-%012d", c);
    snprintf(conv, 40, "conv-%d", c);
}

static const char *text(void) {
    return "The customer asked for the quarterly report again and mentioned that the "
           "figures for the northern region looked wrong; check the ledger export before "
           "answering, and copy the account manager.";
}

typedef struct {
    uint64_t seed;
    double *push, *get;
    int npush, nget;
} worker_t;

static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *run(void *arg) {
    worker_t *w = arg;
    char t[40], a[40], c[40];
    for (int i = 0; i < nops; i++) {
        ids((int)(rnd(&w->seed) % (uint64_t)nconv), t, a, c);
        uint64_t t0 = ap_mono_ns();
        if (i % 4 == 3) {
            json_t *out = NULL;
            ap_rc rc = hot->get(hot, t, a, c, &out, NULL);
            w->get[w->nget++] = (double)(ap_mono_ns() - t0) / 1e3;
            if (rc || !out) {
                fprintf(stderr, "get failed\n");
                exit(1);
            }
            json_decref(out);
        } else {
            if (hot->push(hot, t, a, c, "user", text(), NULL)) {
                fprintf(stderr, "push failed\n");
                exit(1);
            }
            w->push[w->npush++] = (double)(ap_mono_ns() - t0) / 1e3;
        }
    }
    return NULL;
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double pct(const double *v, int n, double p) {
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

static void row(const char *what, double *v, int n, int threads, double ops_s) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    printf("| %d | %d | %s | %.2f µs | %.2f µs | %.2f µs | %.0f µs | %.0f |\n", nconv, threads, what,
           pct(v, n, 0.5), pct(v, n, 0.99), pct(v, n, 0.999), v[n - 1], ops_s);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONVERSATIONS OPS THREADS\n", argv[0]);
        return 2;
    }
    nconv = atoi(argv[1]);
    nops = atoi(argv[2]);
    int nt = atoi(argv[3]);
    if (nconv <= 0 || nops <= 0 || nt <= 0 || nt > 64) return 2;
    hot = ap_mem_hot_local_new(0, 0, NULL);
    char t[40], a[40], c[40];
    uint64_t f0 = ap_mono_ns();
    json_t *task = json_pack("{s:s,s:i,s:[s,s]}", "goal", "reconcile the northern ledger", "step", 3,
                             "tools", "remember", "recall");
    for (int i = 0; i < nconv; i++) {
        ids(i, t, a, c);
        for (int m = 0; m < 10; m++) hot->push(hot, t, a, c, m % 2 ? "assistant" : "user", text(), NULL);
        hot->set_task(hot, t, a, c, task, NULL);
    }
    json_decref(task);
    fprintf(stderr, "%d conversations filled in %.2f s (%d live)\n", nconv,
            (double)(ap_mono_ns() - f0) / 1e9, hot->count(hot));
    worker_t *w = calloc((size_t)nt, sizeof *w);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    for (int i = 0; i < nt; i++) {
        w[i].seed = 1234 + (uint64_t)i;
        w[i].push = malloc(sizeof(double) * (size_t)nops);
        w[i].get = malloc(sizeof(double) * (size_t)nops);
    }
    uint64_t t0 = ap_mono_ns();
    for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, run, &w[i]);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    double secs = (double)(ap_mono_ns() - t0) / 1e9, ops_s = (double)nops * nt / secs;
    /* all threads' samples together */
    double *push = malloc(sizeof(double) * (size_t)nops * (size_t)nt);
    double *get = malloc(sizeof(double) * (size_t)nops * (size_t)nt);
    int np = 0, ng = 0;
    for (int i = 0; i < nt; i++) {
        memcpy(push + np, w[i].push, sizeof(double) * (size_t)w[i].npush);
        memcpy(get + ng, w[i].get, sizeof(double) * (size_t)w[i].nget);
        np += w[i].npush;
        ng += w[i].nget;
        free(w[i].push);
        free(w[i].get);
    }
    row("push", push, np, nt, ops_s);
    row("get", get, ng, nt, ops_s);
    free(push);
    free(get);
    free(w);
    free(th);
    ap_mem_hot_free(hot);
    return 0;
}
