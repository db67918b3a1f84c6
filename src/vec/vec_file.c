/*
 * vec_file.c - saving an index to a file and loading it back.
 *
 * 1. Format version 1, little-endian (docs/vector-index.md has the table):
 *    a 68-byte header ending in the CRC-32 of its first 64 bytes, then the
 *    sections flags+levels, labels, string ids, vectors, layer-0 links,
 *    upper-layer links, and a trailer: the CRC-32 of every body byte.
 * 2. The loader trusts nothing: each count is bounded before it allocates
 *    (and, on a seekable stream, checked against the bytes that remain),
 *    each link must name a linked slot, each level must be within the
 *    header's, vectors must be finite and unit length, labels and ids
 *    unique among live items.  Any violation, a short read, trailing bytes
 *    or a checksum mismatch returns AP_ERR_INVALID with what was wrong.
 */
#include "vec/vec_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vec_file.c writes the host's byte order and assumes little-endian"
#endif

static const char MAGIC[8] = {'A', 'P', 'V', 'E', 'C', 'I', 'D', 'X'};
#define HEADER_BYTES 68u

/* ---- CRC-32 (IEEE 802.3, reflected, as in zlib) ------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t ap_vec_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- header ------------------------------------------------------------- */

typedef struct {
    uint32_t version, header_bytes, dim, m, ef_construction, ef_search, exact_threshold;
    uint32_t count, linked, entry;
    int32_t max_level;
    uint32_t reserved;
    uint64_t rng;
} header_t;

static void put32(unsigned char *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static uint32_t get32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void header_encode(const header_t *h, unsigned char b[HEADER_BYTES]) {
    memcpy(b, MAGIC, 8);
    const uint32_t w[12] = {h->version, h->header_bytes, h->dim, h->m, h->ef_construction,
                            h->ef_search, h->exact_threshold, h->count, h->linked, h->entry,
                            (uint32_t)h->max_level, h->reserved};
    for (int i = 0; i < 12; i++) put32(b + 8 + 4 * i, w[i]);
    memcpy(b + 56, &h->rng, 8);
    put32(b + 64, ap_vec_crc32(0, b, 64));
}

/* ---- save --------------------------------------------------------------- */

typedef struct {
    FILE *f;
    uint32_t crc;
    bool ok;
} writer_t;

static void wr(writer_t *w, const void *p, size_t n) {
    if (!w->ok || n == 0) return;
    w->crc = ap_vec_crc32(w->crc, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->ok = false;
}

ap_rc ap_vec_save_fp(ap_vec_t *ix, FILE *f, ap_err_t *err) {
    pthread_rwlock_rdlock(&ix->lock);
    const vec_data_t *d = &ix->d;
    uint32_t linked = d->max_level < 0 ? 0 : d->linked;
    header_t h = {AP_VEC_FORMAT_VERSION, HEADER_BYTES, ix->p.dim, ix->p.m, ix->p.ef_construction,
                  ix->p.ef_search, ix->p.exact_threshold, d->count, linked,
                  linked ? d->entry : 0, linked ? d->max_level : -1, 0, d->rng};
    unsigned char hb[HEADER_BYTES];
    header_encode(&h, hb);
    writer_t w = {f, 0, fwrite(hb, 1, sizeof hb, f) == sizeof hb};
    wr(&w, d->flags, d->count);
    wr(&w, d->levels, d->count);
    wr(&w, d->labels, (size_t)d->count * sizeof(uint64_t));
    for (uint32_t i = 0; i < d->count; i++) {
        if (!d->ids[i]) continue;
        unsigned char len = (unsigned char)strlen(d->ids[i]);
        wr(&w, &len, 1);
        wr(&w, d->ids[i], len);
    }
    wr(&w, d->vecs, (size_t)d->count * ix->p.dim * sizeof(float));
    wr(&w, d->links0, (size_t)linked * (ix->m0 + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < linked; i++)
        if (d->levels[i])
            wr(&w, d->links_up[i], (size_t)d->levels[i] * (ix->p.m + 1) * sizeof(uint32_t));
    pthread_rwlock_unlock(&ix->lock);
    unsigned char tail[4];
    put32(tail, w.crc);
    if (w.ok && fwrite(tail, 1, 4, f) != 4) w.ok = false;
    if (w.ok && fflush(f) != 0) w.ok = false;
    if (!w.ok)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot write vector index",
                          "check the disk space and permissions", "write failed: %s",
                          strerror(errno));
    return AP_OK;
}

ap_rc ap_vec_save(ap_vec_t *ix, const char *path, ap_err_t *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) return ap_err_set(err, AP_ERR_LIMIT, NULL, "out of memory", NULL, "saving %s", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        ap_rc rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot write vector index",
                              "check that the directory exists and is writable", "%s: %s", tmp,
                              strerror(errno));
        free(tmp);
        return rc;
    }
    ap_rc rc = ap_vec_save_fp(ix, f, err);
    if (!rc && fsync(fileno(f)) != 0)
        rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot write vector index",
                        "check the disk", "fsync %s: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && !rc)
        rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot write vector index", "check the disk",
                        "close %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot write vector index",
                        "check the directory's permissions", "rename to %s: %s", path,
                        strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- load --------------------------------------------------------------- */

typedef struct {
    FILE *f;
    uint32_t crc;
    ap_err_t *err;
} reader_t;

static ap_rc bad(ap_err_t *err, const char *detail) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-vector-index", "invalid vector index file",
                      "restore the file from a backup or rebuild the index from its source "
                      "records",
                      "%s", detail);
}

static ap_rc rd(reader_t *r, void *p, size_t n, const char *what) {
    if (n == 0) return AP_OK;
    if (fread(p, 1, n, r->f) != n) {
        if (ferror(r->f))
            return ap_err_set(r->err, AP_ERR_IO, NULL, "cannot read vector index",
                              "check the file's permissions and the disk", "read error in %s: %s",
                              what, strerror(errno));
        return ap_err_set(r->err, AP_ERR_INVALID, "invalid-vector-index",
                          "invalid vector index file",
                          "the file is truncated: restore it from a backup or rebuild the index",
                          "file ends inside the %s", what);
    }
    r->crc = ap_vec_crc32(r->crc, p, n);
    return AP_OK;
}

/* Bytes left in a seekable stream, or UINT64_MAX when it cannot tell. */
static uint64_t remaining(FILE *f) {
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) return UINT64_MAX;
    long end = ftell(f);
    if (end < 0 || fseek(f, here, SEEK_SET) != 0) return UINT64_MAX;
    return end >= here ? (uint64_t)(end - here) : 0;
}

static ap_rc load_body(reader_t *r, ap_vec_t *ix, const header_t *h) {
    vec_data_t *d = &ix->d;
    ap_err_t *err = r->err;
    uint32_t dim = h->dim, m0 = ix->m0, m = ix->p.m;
    if (vec_reserve(ix, d, h->count)) return ap_err_set(err, AP_ERR_LIMIT, NULL, "out of memory",
                                                        NULL, "index of %u slots", h->count);
    ap_rc rc;
    if ((rc = rd(r, d->flags, h->count, "slot flags")) ||
        (rc = rd(r, d->levels, h->count, "slot levels")) ||
        (rc = rd(r, d->labels, (size_t)h->count * 8, "labels")))
        return rc;
    for (uint32_t i = 0; i < h->count; i++) {
        if (d->flags[i] & ~(VEC_F_DELETED | VEC_F_HAS_ID)) return bad(err, "unknown slot flag");
        if (d->levels[i] > VEC_LEVEL_MAX) return bad(err, "slot level out of range");
        if (i < h->linked && (int)d->levels[i] > h->max_level)
            return bad(err, "slot level above the graph's top level");
    }
    for (uint32_t i = 0; i < h->count; i++) {
        if (!(d->flags[i] & VEC_F_HAS_ID)) continue;
        unsigned char len;
        char buf[AP_VEC_ID_MAX];
        if ((rc = rd(r, &len, 1, "string ids"))) return rc;
        if (len == 0 || len >= AP_VEC_ID_MAX) return bad(err, "string id length out of range");
        if ((rc = rd(r, buf, len, "string ids"))) return rc;
        if (memchr(buf, 0, len)) return bad(err, "string id contains a NUL byte");
        buf[len] = '\0';
        d->ids[i] = vec_alloc(ix, (size_t)len + 1);
        if (!d->ids[i]) return ap_err_set(err, AP_ERR_LIMIT, NULL, "out of memory", NULL, "ids");
        memcpy(d->ids[i], buf, (size_t)len + 1);
    }
    d->count = h->count; /* from here vec_data_free frees what was set */
    if ((rc = rd(r, d->vecs, (size_t)h->count * dim * sizeof(float), "vectors"))) return rc;
    for (uint32_t i = 0; i < h->count; i++) {
        const float *v = d->vecs + (size_t)i * dim;
        double n2 = 0;
        for (uint32_t j = 0; j < dim; j++) {
            if (!isfinite(v[j])) return bad(err, "a vector has a non-finite component");
            n2 += (double)v[j] * v[j];
        }
        if (fabs(n2 - 1.0) > 1e-3) return bad(err, "a vector is not of unit length");
    }
    if ((rc = rd(r, d->links0, (size_t)h->linked * (m0 + 1) * 4, "layer-0 links"))) return rc;
    for (uint32_t i = 0; i < h->linked; i++) {
        const uint32_t *l = d->links0 + (size_t)i * (m0 + 1);
        if (l[0] > m0) return bad(err, "a layer-0 neighbour list is too long");
        for (uint32_t j = 1; j <= l[0]; j++)
            if (l[j] >= h->linked) return bad(err, "a link names a slot outside the graph");
    }
    for (uint32_t i = 0; i < h->linked; i++) {
        if (!d->levels[i]) continue;
        size_t words = (size_t)d->levels[i] * (m + 1);
        d->links_up[i] = vec_alloc(ix, words * 4);
        if (!d->links_up[i]) return ap_err_set(err, AP_ERR_LIMIT, NULL, "out of memory", NULL, "links");
        if ((rc = rd(r, d->links_up[i], words * 4, "upper-layer links"))) return rc;
        for (uint32_t lv = 0; lv < d->levels[i]; lv++) {
            const uint32_t *l = d->links_up[i] + (size_t)lv * (m + 1);
            if (l[0] > m) return bad(err, "an upper-layer neighbour list is too long");
            for (uint32_t j = 1; j <= l[0]; j++)
                if (l[j] >= h->linked || d->levels[l[j]] < lv + 1)
                    return bad(err, "an upper-layer link names a slot not on that layer");
        }
    }
    /* Slots past the graph have no links. */
    for (uint32_t i = h->linked; i < h->count; i++) d->links0[(size_t)i * (m0 + 1)] = 0;
    uint32_t body_crc = r->crc;
    unsigned char tail[4];
    if ((rc = rd(r, tail, 4, "checksum"))) return rc;
    if (get32(tail) != body_crc)
        return bad(err, "checksum mismatch: the file is corrupt");
    if (fgetc(r->f) != EOF) return bad(err, "unexpected bytes after the checksum");
    /* Live items: into the map, duplicates refused. */
    d->linked = h->linked;
    d->entry = h->entry;
    d->max_level = h->max_level;
    d->rng = h->rng;
    for (uint32_t i = 0; i < h->count; i++) {
        if (d->flags[i] & VEC_F_DELETED) {
            d->deleted++;
            continue;
        }
        if (vec_map_find(d, d->labels[i], d->ids[i]) != UINT32_MAX)
            return bad(err, "two live items have the same label or id");
        if (vec_map_insert(ix, d, i))
            return ap_err_set(err, AP_ERR_LIMIT, NULL, "out of memory", NULL, "label map");
        d->live++;
    }
    return AP_OK;
}

ap_rc ap_vec_load_fp(FILE *f, const ap_vec_alloc_t *alloc, ap_vec_t **out, ap_err_t *err) {
    *out = NULL;
    unsigned char hb[HEADER_BYTES];
    size_t got = fread(hb, 1, sizeof hb, f);
    if (got < 8 || memcmp(hb, MAGIC, 8) != 0) {
        if (ferror(f))
            return ap_err_set(err, AP_ERR_IO, NULL, "cannot read vector index",
                              "check the file's permissions", "read error: %s", strerror(errno));
        return bad(err, "not a vector index file (no APVECIDX magic)");
    }
    if (got < 12) return bad(err, "file ends inside the header");
    uint32_t version = get32(hb + 8);
    if (version != AP_VEC_FORMAT_VERSION) {
        char msg[128];
        snprintf(msg, sizeof msg, "format version %u; this build reads version %u", version,
                 AP_VEC_FORMAT_VERSION);
        return bad(err, msg);
    }
    if (got < HEADER_BYTES) return bad(err, "file ends inside the header");
    if (get32(hb + 64) != ap_vec_crc32(0, hb, 64)) return bad(err, "header checksum mismatch");
    header_t h;
    uint32_t w[12];
    for (int i = 0; i < 12; i++) w[i] = get32(hb + 8 + 4 * i);
    h = (header_t){w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], (int32_t)w[10],
                   w[11], 0};
    memcpy(&h.rng, hb + 56, 8);
    if (h.header_bytes != HEADER_BYTES || h.reserved != 0) return bad(err, "unknown header layout");
    ap_vec_params_t p = {h.dim, h.m, h.ef_construction, h.ef_search, h.exact_threshold, 0};
    ap_err_t perr;
    if (vec_check_params(&p, &perr)) {
        return ap_err_set(err, AP_ERR_INVALID, "invalid-vector-index",
                          "invalid vector index file",
                          "restore the file from a backup or rebuild the index from its source "
                          "records",
                          "header parameters: %s", perr.detail);
    }
    if (h.count > VEC_SLOTS_MAX || h.linked > h.count) return bad(err, "slot counts out of range");
    if (h.linked ? (h.max_level < 0 || h.max_level > VEC_LEVEL_MAX || h.entry >= h.linked)
                 : (h.max_level != -1 || h.entry != 0))
        return bad(err, "graph entry point out of range");
    /* The fixed-size sections must fit in what is left of the file. */
    uint64_t need = (uint64_t)h.count * (2 + 8 + (uint64_t)h.dim * 4) +
                    (uint64_t)h.linked * (2 * h.m + 1) * 4 + 4;
    uint64_t left = remaining(f);
    if (left != UINT64_MAX && left < need) return bad(err, "file is shorter than its header says");
    ap_vec_t *ix;
    ap_rc rc = vec_create(&p, alloc, &ix, err);
    if (rc) return rc;
    reader_t r = {f, 0, err};
    rc = load_body(&r, ix, &h);
    if (!rc && h.linked && ix->d.levels[h.entry] != h.max_level)
        rc = bad(err, "graph entry point is not on the top level");
    if (rc) {
        ap_vec_release(ix);
        return rc;
    }
    *out = ix;
    return AP_OK;
}

ap_rc ap_vec_load(const char *path, const ap_vec_alloc_t *alloc, ap_vec_t **out, ap_err_t *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ap_err_set(err, errno == ENOENT ? AP_ERR_NOT_FOUND : AP_ERR_IO, NULL,
                          "cannot open vector index", "check the path and permissions", "%s: %s",
                          path, strerror(errno));
    ap_rc rc = ap_vec_load_fp(f, alloc, out, err);
    fclose(f);
    return rc;
}
