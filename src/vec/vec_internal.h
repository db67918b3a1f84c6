/*
 * vec_internal.h - the index's layout, shared by vec.c (graph and search)
 * and vec_file.c (save/load).  Not for users of the library.
 *
 * 1. Slots 0..count-1 hold items in insertion order; a slot's vector is
 *    vecs[slot*dim], normalised.  Slots are never reused (ap_vec_compact).
 * 2. Slots 0..linked-1 are in the HNSW graph.  Layer 0 neighbours of a
 *    slot: links0[slot*(m0+1)] is the count, the ids follow.  Layers 1..level
 *    are in links_up[slot], (m+1) words per layer, same shape.
 * 3. The map finds a slot by label or id: open addressing over slot+1
 *    (0 empty, MAP_TOMB a removed entry); deleted slots are not in it.
 */
#ifndef AP_VEC_INTERNAL_H
#define AP_VEC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "vec/vec.h"

#define VEC_F_DELETED 1u
#define VEC_F_HAS_ID 2u
#define VEC_LEVEL_MAX 31
#define VEC_SLOTS_MAX (1u << 30)
#define VEC_MAP_TOMB UINT32_MAX

typedef struct {
    uint32_t count, cap;
    float *vecs;
    uint64_t *labels;
    uint8_t *flags;
    uint8_t *levels;
    char **ids;          /* NULL for label items */
    uint32_t *links0;
    uint32_t **links_up;
    uint32_t linked;
    uint32_t entry;
    int max_level;       /* -1: no graph yet */
    uint64_t live, deleted;
    uint64_t rng;
    uint32_t *map;
    uint32_t map_cap, map_used;
} vec_data_t;

typedef struct vec_scratch vec_scratch_t;

struct ap_vec {
    ap_vec_alloc_t al;
    ap_vec_params_t p;
    uint32_t m0;
    double level_mult;
    atomic_int refs;
    pthread_rwlock_t lock;
    pthread_mutex_t pool_mu;
    vec_scratch_t *pool;
    vec_data_t d;
};

/* vec.c, for the loader */
ap_rc vec_check_params(const ap_vec_params_t *p, ap_err_t *err);
ap_rc vec_create(const ap_vec_params_t *p, const ap_vec_alloc_t *alloc, ap_vec_t **out,
                 ap_err_t *err);
ap_rc vec_reserve(ap_vec_t *ix, vec_data_t *d, uint32_t cap);
ap_rc vec_map_insert(ap_vec_t *ix, vec_data_t *d, uint32_t slot);
uint32_t vec_map_find(const vec_data_t *d, uint64_t label, const char *id);
void vec_data_free(ap_vec_t *ix, vec_data_t *d);
void *vec_alloc(ap_vec_t *ix, size_t n);
void vec_free(ap_vec_t *ix, void *p);

/* vec_file.c: running CRC-32 (zlib's); start with 0, feed chunks.  The
 * fuzz target uses it to give mutated files a valid checksum. */
uint32_t ap_vec_crc32(uint32_t crc, const void *data, size_t n);

#endif
