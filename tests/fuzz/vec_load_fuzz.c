/*
 * vec_load_fuzz.c - libFuzzer target for loading a vector index file.
 *
 * FUZZ_SOURCES: src/vec/vec.c src/vec/vec_file.c src/core/err.c
 *
 * 1. The first input byte picks a mode; the rest is the file.  In mode
 *    odd the target first rewrites the header CRC and the trailing body CRC
 *    so that mutations reach the structural checks behind the checksums
 *    (otherwise almost every mutation stops at "checksum mismatch").
 * 2. Loading never crashes, leaks or reads out of bounds; a refusal is
 *    AP_ERR_INVALID with a message and a detail.
 * 3. A file that loads is a working index: a search, an insert (which
 *    walks the loaded graph) and a delete succeed, and saving it and
 *    loading the copy gives the same statistics.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec/vec_internal.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "vec_load_fuzz: property failed: %s\n", #cond); \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = size - 1;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, data + 1, n);
    if ((data[0] & 1) && n >= 72) {
        uint32_t c = ap_vec_crc32(0, buf, 64);
        memcpy(buf + 64, &c, 4);
        c = ap_vec_crc32(0, buf + 68, n - 72);
        memcpy(buf + n - 4, &c, 4);
    }
    FILE *f = fmemopen(buf, n ? n : 1, "rb");
    CHECK(f);
    if (!n) fgetc(f); /* fmemopen refuses size 0: read past the one byte */
    ap_vec_t *ix = NULL;
    ap_err_t err;
    ap_rc rc = ap_vec_load_fp(f, NULL, &ix, &err);
    fclose(f);
    if (rc) {
        CHECK(ix == NULL);
        CHECK(rc == AP_ERR_INVALID || rc == AP_ERR_LIMIT);
        CHECK(err.msg[0] && err.detail[0]);
        free(buf);
        return 0;
    }
    CHECK(ix);
    ap_vec_params_t p = ap_vec_params(ix);
    float *q = calloc(p.dim, sizeof(float));
    q[0] = 1;
    ap_vec_hit_t hits[8];
    size_t got;
    CHECK(ap_vec_search(ix, q, 8, NULL, hits, &got, NULL) == AP_OK);
    CHECK(ap_vec_search(ix, q, 8, &(ap_vec_query_opts_t){.flags = AP_VEC_EXACT}, hits, &got,
                        NULL) == AP_OK);
    for (size_t i = 1; i < got; i++) CHECK(hits[i - 1].score >= hits[i].score);
    CHECK(ap_vec_add(ix, 0xF00D, NULL, q, NULL) == AP_OK);
    CHECK(ap_vec_contains(ix, 0xF00D, NULL));
    CHECK(ap_vec_delete(ix, 0xF00D, NULL, NULL) == AP_OK);
    ap_vec_stats_t s1, s2;
    ap_vec_stats(ix, &s1);
    char *out = NULL;
    size_t outlen = 0;
    FILE *w = open_memstream(&out, &outlen);
    CHECK(w);
    CHECK(ap_vec_save_fp(ix, w, NULL) == AP_OK);
    fclose(w);
    FILE *r = fmemopen(out, outlen, "rb");
    ap_vec_t *copy = NULL;
    CHECK(ap_vec_load_fp(r, NULL, &copy, &err) == AP_OK);
    fclose(r);
    ap_vec_stats(copy, &s2);
    CHECK(s1.live == s2.live && s1.deleted == s2.deleted && s1.linked == s2.linked);
    ap_vec_release(copy);
    ap_vec_release(ix);
    free(out);
    free(q);
    free(buf);
    return 0;
}
