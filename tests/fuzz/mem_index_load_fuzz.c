/*
 * mem_index_load_fuzz.c - libFuzzer target for loading a memory index
 * partition file (src/memory/index_file.c, docs/vector-index.md).
 *
 * FUZZ_SOURCES: src/memory/index.c src/memory/dots.c src/memory/index_file.c src/vec/vec.c src/vec/vec_file.c src/core/err.c src/core/alloc.c
 *
 * 1. The first input byte picks a mode; the rest is the file.  In mode odd
 *    the target first repairs the checksums it can find (the header's, the
 *    records', and the embedded vector index's two) so that mutations
 *    reach the structural checks behind them.
 * 2. The partition takes the key the file names (when it has a plausible
 *    one), so files get past the key check.
 * 3. Loading never crashes, leaks or reads out of bounds; a refusal is
 *    AP_ERR_INVALID with a detail and leaves the partition empty.  A file
 *    that loads is a working partition: a search on both paths, a put and
 *    a remove succeed, and saving it and loading the copy gives the same
 *    entries and sequence.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memory/index.h"
#include "vec/vec_internal.h"

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "mem_index_load_fuzz: property failed: %s\n", #cond);  \
            abort();                                                                \
        }                                                                           \
    } while (0)

static uint32_t get32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void fix_crcs(uint8_t *b, size_t n) {
    if (n < 64) return;
    uint32_t c = ap_vec_crc32(0, b, 60);
    memcpy(b + 60, &c, 4);
    uint64_t keylen = get32(b + 44), count = get32(b + 20);
    uint64_t end = 64 + keylen + count * 96;
    if (end + 4 > n) return;
    c = ap_vec_crc32(0, b + 64, (size_t)(end - 64));
    memcpy(b + end, &c, 4);
    uint64_t v = end + 4; /* the vec index */
    if (v + 72 > n) return;
    c = ap_vec_crc32(0, b + v, 64);
    memcpy(b + v + 64, &c, 4);
    c = ap_vec_crc32(0, b + v + 68, (size_t)(n - v - 72));
    memcpy(b + n - 4, &c, 4);
}

typedef struct {
    const uint8_t *buf;
    size_t n;
    ap_rc rc;
    int size;
} ctx_t;

static ap_rc load(void *ud, ap_mem_part_t *p, ap_err_t *err) {
    ctx_t *c = ud;
    FILE *f = fmemopen((void *)c->buf, c->n ? c->n : 1, "rb");
    CHECK(f);
    if (!c->n) fgetc(f); /* fmemopen refuses size 0 */
    ap_err_t e;
    memset(&e, 0, sizeof e);
    c->rc = ap_mem_part_load_fp(p, f, &e);
    fclose(f);
    if (c->rc) {
        CHECK(c->rc == AP_ERR_INVALID || c->rc == AP_ERR_LIMIT);
        CHECK(e.msg[0] && e.detail[0]);
        CHECK(ap_mem_part_size(p) == 0);
    }
    c->size = ap_mem_part_size(p);
    (void)err;
    return AP_OK;
}

static bool any(const ap_mem_meta_t *m, void *ud) {
    (void)m, (void)ud;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = size - 1;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, data + 1, n);
    if (data[0] & 1) fix_crcs(buf, n);
    char key[256] = "k";
    if (n >= 64) {
        uint32_t kl = get32(buf + 44);
        if (kl >= 1 && kl <= 255 && 64 + (size_t)kl <= n) {
            memcpy(key, buf + 64, kl);
            key[kl] = '\0';
            if (strlen(key) != kl) snprintf(key, sizeof key, "k");
        }
    }
    ap_mem_index_t *ix = ap_mem_index_new();
    ctx_t c = {buf, n, 0, 0};
    ap_err_t err;
    CHECK(ap_mem_index_ensure(ix, key, load, &c, &err) == AP_OK);
    if (c.rc == AP_OK) {
        ap_mem_part_info_t pi;
        CHECK(ap_mem_index_info(ix, key, &pi) && pi.from_file);
        /* a working partition: searches, a put and a remove */
        ap_mem_query_t q = {.filter = any, .w_sim = 1, .min_similarity = -1};
        ap_mem_query_t qe = q;
        qe.flags = AP_MEM_SEARCH_EXACT;
        ap_mem_hit_t hits[4];
        int dim = 1;
        /* the dimension: the header's */
        if (n >= 20) dim = (int)get32(buf + 16);
        float *v = calloc((size_t)dim, sizeof *v);
        v[0] = 1;
        int a = ap_mem_index_search(ix, key, v, dim, 4, &q, hits, NULL);
        int b = ap_mem_index_search(ix, key, v, dim, 4, &qe, hits, NULL);
        CHECK(a >= 0 && b >= 0 && a <= 4 && b <= 4);
        ap_mem_meta_t m = {.id = "fuzz-put", .seq = 0};
        ap_mem_index_put(ix, key, &m, v, dim, 0);
        CHECK(ap_mem_index_size(ix, key) == c.size + 1);
        ap_mem_index_remove(ix, key, "fuzz-put", 0);
        CHECK(ap_mem_index_size(ix, key) == c.size);
        /* save and load again: the same */
        char path[64];
        snprintf(path, sizeof path, "/tmp/mem_index_fuzz.%d", (int)getpid());
        CHECK(ap_mem_index_save(ix, key, path, &err) == AP_OK);
        FILE *f = fopen(path, "rb");
        CHECK(f);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *copy = malloc((size_t)len + 1);
        CHECK(fread(copy, 1, (size_t)len, f) == (size_t)len);
        fclose(f);
        unlink(path);
        ap_mem_index_t *iy = ap_mem_index_new();
        ctx_t c2 = {copy, (size_t)len, 0, 0};
        CHECK(ap_mem_index_ensure(iy, key, load, &c2, &err) == AP_OK);
        CHECK(c2.rc == AP_OK);
        CHECK(c2.size == c.size);
        CHECK(ap_mem_index_seq(iy, key) == ap_mem_index_seq(ix, key));
        ap_mem_index_free(iy);
        free(copy);
        free(v);
    }
    ap_mem_index_free(ix);
    free(buf);
    return 0;
}
