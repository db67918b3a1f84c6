/*
 * index_file.c - saving a partition of the memory index and loading it
 * back (index.h; docs/vector-index.md has the format).
 *
 * 1. One file per partition: a 64-byte header (ending in the CRC-32 of
 *    its first 60 bytes) with the change sequence the partition reflects
 *    and its calibration, the partition key, one fixed-size record of
 *    metadata per entry, the CRC-32 of key and records, then the src/vec
 *    index of the vectors (and graph) in its own format.
 * 2. Saving copies the metadata under the partition's read lock, then
 *    writes the vectors under the vec index's read lock, so the two are
 *    not one snapshot: an entry changed in between may be in one and not
 *    the other.  Loading keeps only entries present in both (with the
 *    same label) and drops the rest; the caller then applies the
 *    database's changes since the file's sequence and compares counts,
 *    so whatever the file missed comes back from the database.
 * 3. The loader trusts nothing: sizes are bounded by what is left of the
 *    file before anything is allocated, each field is range-checked, ids
 *    must be unique, and any failure is AP_ERR_INVALID with a detail; the
 *    partition is left empty.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "memory/index_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "index_file.c writes the host's byte order and assumes little-endian"
#endif

uint32_t ap_vec_crc32(uint32_t crc, const void *data, size_t n); /* vec/vec_file.c */

static const char MAGIC[8] = {'A', 'P', 'M', 'E', 'M', 'P', 'R', 'T'};
#define FILE_VERSION 1u
#define HEADER_BYTES 64u
#define RECORD_BYTES 96u
#define F_HAS_VEC 1u
#define LABEL_SLACK 65536u

typedef struct {
    uint32_t dim, count, cal, ef, off_n, keylen, flags;
    int64_t seq;
} header_t;

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void put64(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }
static int64_t get64(const unsigned char *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void header_encode(const header_t *h, unsigned char b[HEADER_BYTES]) {
    memset(b, 0, HEADER_BYTES);
    memcpy(b, MAGIC, 8);
    put32(b + 8, FILE_VERSION);
    put32(b + 12, HEADER_BYTES);
    put32(b + 16, h->dim);
    put32(b + 20, h->count);
    put64(b + 24, h->seq);
    put32(b + 32, h->cal);
    put32(b + 36, h->ef);
    put32(b + 40, h->off_n);
    put32(b + 44, h->keylen);
    put32(b + 48, h->flags);
    put32(b + 60, ap_vec_crc32(0, b, 60));
}

static void record_encode(const ap_mem_meta_t *m, uint32_t label, bool novec,
                          unsigned char r[RECORD_BYTES]) {
    memset(r, 0, RECORD_BYTES);
    size_t n = strnlen(m->id, AP_UUID_LEN - 1);
    memcpy(r, m->id, n);
    put32(r + 40, (uint32_t)m->type);
    memcpy(r + 44, &m->importance, 4);
    put64(r + 48, m->created_ms);
    put64(r + 56, m->expires_ms);
    put64(r + 64, m->access_count);
    put64(r + 72, m->last_access_ms);
    put64(r + 80, m->seq);
    put32(r + 88, label);
    r[92] = m->shared ? 1 : 0;
    r[93] = novec ? 1 : 0;
}

static ap_rc io_err(ap_err_t *err, const char *what, const char *path) {
    return ap_err_set(err, AP_ERR_IO, NULL, "cannot write memory index file",
                      "check the data directory's free space and permissions", "%s %s: %s",
                      what, path, strerror(errno));
}

ap_rc ap_mem_index_save(ap_mem_index_t *ix, const char *key, const char *path, ap_err_t *err) {
    ap_mem_part_t *p = ap_mem_index_find(ix, key);
    if (!p) return ap_err_set(err, AP_ERR_NOT_FOUND, NULL, "partition not loaded", NULL, "%s", key);
    pthread_rwlock_rdlock(&p->lock);
    if (!p->loaded) {
        pthread_rwlock_unlock(&p->lock);
        return ap_err_set(err, AP_ERR_NOT_FOUND, NULL, "partition not loaded", NULL, "%s", key);
    }
    header_t h = {(uint32_t)p->dim, (uint32_t)p->n, (uint32_t)p->cal, (uint32_t)p->ef,
                  (uint32_t)p->off_n, (uint32_t)strlen(p->key), p->vec ? F_HAS_VEC : 0, p->seq};
    if (!p->has_graph) h.cal = CAL_NONE, h.ef = 0;
    unsigned char *recs = ap_malloc((size_t)h.count * RECORD_BYTES + 1);
    for (int e = 0; e < p->n; e++)
        record_encode(&p->meta[e], p->labels[e], ap_mem_part_novec(p, e),
                      recs + (size_t)e * RECORD_BYTES);
    ap_vec_t *vec = p->vec;
    if (vec) ap_vec_retain(vec);
    uint64_t mark = p->changes;
    pthread_rwlock_unlock(&p->lock);

    size_t plen = strlen(path);
    char *tmp = ap_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    ap_rc rc = AP_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = io_err(err, "open", tmp);
    } else {
        unsigned char hb[HEADER_BYTES], tail[4];
        header_encode(&h, hb);
        uint32_t crc = ap_vec_crc32(0, key, h.keylen);
        crc = ap_vec_crc32(crc, recs, (size_t)h.count * RECORD_BYTES);
        put32(tail, crc);
        if (fwrite(hb, 1, sizeof hb, f) != sizeof hb || fwrite(key, 1, h.keylen, f) != h.keylen ||
            fwrite(recs, RECORD_BYTES, h.count, f) != h.count || fwrite(tail, 1, 4, f) != 4)
            rc = io_err(err, "write", tmp);
        if (!rc && vec) rc = ap_vec_save_fp(vec, f, err);
        if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = io_err(err, "sync", tmp);
        if (fclose(f) != 0 && !rc) rc = io_err(err, "close", tmp);
        if (!rc && rename(tmp, path) != 0) rc = io_err(err, "rename", path);
        if (rc) unlink(tmp);
    }
    ap_free(tmp);
    ap_free(recs);
    ap_vec_release(vec);
    if (!rc) {
        pthread_rwlock_wrlock(&p->lock);
        if (mark > p->saved) p->saved = mark;
        pthread_rwlock_unlock(&p->lock);
    }
    return rc;
}

/* ---------- load ---------- */

static ap_rc bad(ap_err_t *err, const char *detail) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-memory-index", "invalid memory index file",
                      "nothing to do: the partition is rebuilt from the database, the file "
                      "is rewritten at the next save",
                      "%s", detail);
}

static uint64_t remaining(FILE *f) {
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) return UINT64_MAX;
    long end = ftell(f);
    if (end < 0 || fseek(f, here, SEEK_SET) != 0) return UINT64_MAX;
    return end >= here ? (uint64_t)(end - here) : 0;
}

static ap_rc rd(FILE *f, void *p, size_t n, const char *what, ap_err_t *err) {
    if (n == 0 || fread(p, 1, n, f) == n) return AP_OK;
    if (ferror(f))
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot read memory index file",
                          "check the file's permissions and the disk", "read error in %s: %s",
                          what, strerror(errno));
    char d[96];
    snprintf(d, sizeof d, "file ends inside the %s", what);
    return bad(err, d);
}

/* Decodes and checks one record. */
static ap_rc record_decode(const unsigned char *r, ap_mem_meta_t *m, uint32_t *label,
                           bool *novec, uint32_t label_max, ap_err_t *err) {
    memset(m, 0, sizeof *m);
    size_t n = strnlen((const char *)r, 40);
    if (n == 0 || n >= AP_UUID_LEN) return bad(err, "a record's id is empty or too long");
    for (size_t i = n; i < 40; i++)
        if (r[i]) return bad(err, "a record's id is not NUL-padded");
    for (size_t i = 0; i < n; i++)
        if (r[i] < 0x21 || r[i] > 0x7e) return bad(err, "a record's id has a non-printable byte");
    memcpy(m->id, r, n);
    m->type = (int32_t)get32(r + 40);
    memcpy(&m->importance, r + 44, 4);
    m->created_ms = get64(r + 48);
    m->expires_ms = get64(r + 56);
    m->access_count = get64(r + 64);
    m->last_access_ms = get64(r + 72);
    m->seq = get64(r + 80);
    *label = get32(r + 88);
    if (m->type < -1 || m->type > 5) return bad(err, "a record's memory type is out of range");
    if (!isfinite(m->importance) || m->importance < 0 || m->importance > 1)
        return bad(err, "a record's importance is not within 0..1");
    if (m->created_ms < 0 || m->expires_ms < 0 || m->access_count < 0 || m->last_access_ms < 0 ||
        m->seq < 0)
        return bad(err, "a record has a negative time, count or sequence");
    if (*label >= label_max) return bad(err, "a record's label is out of range");
    if (r[92] > 1 || r[93] > 1 || r[94] || r[95]) return bad(err, "a record has unknown flags");
    m->shared = r[92] == 1;
    *novec = r[93] == 1;
    return AP_OK;
}

typedef struct {
    ap_mem_part_t *p;
    const ap_mem_meta_t *recs;
    const uint32_t *labels;
    const bool *novec;
    int *map; /* open addressing over record index + 1 */
    size_t mask;
    char (*drop)[AP_VEC_ID_MAX];
    size_t ndrop, capdrop;
    bool dup;
} adopt_t;

static uint64_t id_hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int rec_find(const adopt_t *a, const char *id) {
    for (size_t i = id_hash(id) & a->mask;; i = (i + 1) & a->mask) {
        int r = a->map[i];
        if (!r) return -1;
        if (!strcmp(a->recs[r - 1].id, id)) return r - 1;
    }
}

static void adopt_one(uint64_t label, const char *id, const float *vec, void *arg) {
    adopt_t *a = arg;
    int r = id ? rec_find(a, id) : -1;
    if (r >= 0 && !a->novec[r] && a->labels[r] == label && (label >= a->p->labcap || a->p->lab2e[label] < 0)) {
        ap_mem_part_adopt(a->p, &a->recs[r], (uint32_t)label, vec);
        return;
    }
    if (!id) { /* only the partition's ids are kept: an unnamed item is refused */
        a->dup = true;
        return;
    }
    if (a->ndrop == a->capdrop) {
        a->capdrop = a->capdrop ? a->capdrop * 2 : 16;
        a->drop = ap_realloc(a->drop, sizeof *a->drop * a->capdrop);
    }
    snprintf(a->drop[a->ndrop++], AP_VEC_ID_MAX, "%s", id);
}

ap_rc ap_mem_part_load_fp(ap_mem_part_t *p, FILE *f, ap_err_t *err) {
    unsigned char hb[HEADER_BYTES];
    size_t got = fread(hb, 1, sizeof hb, f);
    if (got < 8 || memcmp(hb, MAGIC, 8) != 0) {
        if (ferror(f))
            return ap_err_set(err, AP_ERR_IO, NULL, "cannot read memory index file",
                              "check the file's permissions", "read error: %s", strerror(errno));
        return bad(err, "not a memory index file (no APMEMPRT magic)");
    }
    if (got < 16) return bad(err, "file ends inside the header");
    if (get32(hb + 8) != FILE_VERSION) {
        char d[96];
        snprintf(d, sizeof d, "format version %u; this build reads version %u", get32(hb + 8),
                 FILE_VERSION);
        return bad(err, d);
    }
    if (got < HEADER_BYTES) return bad(err, "file ends inside the header");
    if (get32(hb + 60) != ap_vec_crc32(0, hb, 60)) return bad(err, "header checksum mismatch");
    if (get32(hb + 12) != HEADER_BYTES || get32(hb + 52) || get32(hb + 56))
        return bad(err, "unknown header layout");
    header_t h = {get32(hb + 16), get32(hb + 20), get32(hb + 32), get32(hb + 36),
                  get32(hb + 40), get32(hb + 44), get32(hb + 48), get64(hb + 24)};
    if (h.dim < 1 || h.dim > AP_VEC_DIM_MAX) return bad(err, "dimension out of range");
    if (h.seq < 0) return bad(err, "negative change sequence");
    if (h.cal > CAL_OFF) return bad(err, "unknown calibration state");
    bool ef_ok = h.ef == 0;
    for (int j = 0; j < CAL_NEFS; j++) ef_ok |= h.ef == (uint32_t)ap_mem_cal_efs[j];
    if (!ef_ok || (h.cal == CAL_USE && h.ef == 0)) return bad(err, "graph beam out of range");
    if (h.flags & ~F_HAS_VEC) return bad(err, "unknown flags");
    if (h.count && !(h.flags & F_HAS_VEC)) return bad(err, "records without vectors");
    if (h.keylen == 0 || h.keylen > 255) return bad(err, "key length out of range");
    uint64_t left = remaining(f);
    if (left != UINT64_MAX && left < h.keylen + (uint64_t)h.count * RECORD_BYTES + 4)
        return bad(err, "file is shorter than its header says");
    if (h.count > (1u << 26)) return bad(err, "record count out of range");
    char key[256];
    ap_rc rc = rd(f, key, h.keylen, "key", err);
    if (rc) return rc;
    key[h.keylen] = '\0';
    if (strlen(key) != h.keylen || strcmp(key, p->key) != 0)
        return bad(err, "the file belongs to another partition");
    unsigned char *raw = ap_malloc((size_t)h.count * RECORD_BYTES + 1);
    ap_mem_meta_t *recs = ap_malloc(sizeof *recs * ((size_t)h.count + 1));
    uint32_t *labels = ap_malloc(sizeof *labels * ((size_t)h.count + 1));
    bool *novec = ap_malloc(sizeof *novec * ((size_t)h.count + 1));
    adopt_t a = {0};
    ap_vec_t *vec = NULL;
    rc = rd(f, raw, (size_t)h.count * RECORD_BYTES, "records", err);
    unsigned char tail[4];
    if (!rc) rc = rd(f, tail, 4, "records checksum", err);
    if (!rc) {
        uint32_t crc = ap_vec_crc32(ap_vec_crc32(0, key, h.keylen), raw, (size_t)h.count * RECORD_BYTES);
        if (crc != get32(tail)) rc = bad(err, "records checksum mismatch: the file is corrupt");
    }
    uint32_t label_max = 4 * h.count + LABEL_SLACK;
    for (uint32_t i = 0; !rc && i < h.count; i++)
        rc = record_decode(raw + (size_t)i * RECORD_BYTES, &recs[i], &labels[i], &novec[i],
                           label_max, err);
    if (!rc) {
        size_t cap = 16;
        while (cap < (size_t)h.count * 2) cap *= 2;
        a = (adopt_t){p, recs, labels, novec, ap_calloc(cap, sizeof(int)), cap - 1, NULL, 0, 0,
                      false};
        for (uint32_t i = 0; !rc && i < h.count; i++) {
            if (rec_find(&a, recs[i].id) >= 0) {
                rc = bad(err, "two records have the same id");
                break;
            }
            size_t j = id_hash(recs[i].id) & a.mask;
            while (a.map[j]) j = (j + 1) & a.mask;
            a.map[j] = (int)i + 1;
        }
    }
    if (!rc && (h.flags & F_HAS_VEC)) {
        ap_err_t verr = {0};
        ap_rc vrc = ap_vec_load_fp(f, NULL, &vec, &verr);
        if (vrc == AP_ERR_IO) {
            rc = ap_err_set(err, AP_ERR_IO, NULL, "cannot read memory index file",
                            "check the file's permissions and the disk", "%s", verr.detail);
        } else if (vrc) {
            char d[600];
            snprintf(d, sizeof d, "vectors: %s", verr.detail);
            rc = bad(err, d);
        } else if (ap_vec_params(vec).dim != h.dim) {
            rc = bad(err, "the vectors' dimension differs from the header's");
        }
    } else if (!rc && fgetc(f) != EOF) {
        rc = bad(err, "unexpected bytes after the records");
    }
    if (!rc && vec) {
        p->vec = vec;
        p->dim = (int)h.dim;
        vec = NULL;
        ap_vec_each(p->vec, adopt_one, &a);
        if (a.dup) rc = bad(err, "the vectors hold an item without an id");
        for (size_t i = 0; !rc && i < a.ndrop; i++) ap_vec_delete(p->vec, 0, a.drop[i], NULL);
        /* entries the vec index never held (zero vectors) */
        for (uint32_t i = 0; !rc && i < h.count; i++)
            if (novec[i] && (labels[i] >= p->labcap || p->lab2e[labels[i]] < 0) &&
                !ap_mem_part_has(p, recs[i].id))
                ap_mem_part_adopt(p, &recs[i], labels[i], NULL);
        if (!rc) {
            ap_vec_stats_t st;
            ap_vec_stats(p->vec, &st);
            p->has_graph = st.linked > 0;
            p->gdeleted = st.deleted; /* waypoints saved with the graph */
            if (p->has_graph) {
                p->cal = h.cal == CAL_NONE ? CAL_LEARN : (int)h.cal;
                p->ef = (int)h.ef;
                p->off_n = (int)h.off_n;
            }
        }
    }
    if (!rc) {
        p->seq = h.seq;
        p->from_file = true;
        p->saved = p->changes; /* what is applied from now on is unsaved */
    }
    ap_vec_release(vec);
    ap_free(a.map);
    ap_free(a.drop);
    ap_free(raw);
    ap_free(recs);
    ap_free(labels);
    ap_free(novec);
    if (rc) ap_mem_part_clear(p);
    return rc;
}

ap_rc ap_mem_part_load_file(ap_mem_part_t *p, const char *path, ap_err_t *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return ap_err_set(err, errno == ENOENT ? AP_ERR_NOT_FOUND : AP_ERR_IO, NULL,
                          "cannot open memory index file", "check the data directory",
                          "%s: %s", path, strerror(errno));
    ap_rc rc = ap_mem_part_load_fp(p, f, err);
    fclose(f);
    return rc;
}
