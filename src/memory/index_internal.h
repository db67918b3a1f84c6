/*
 * index_internal.h - a partition's layout, shared by index.c (search,
 * changes, calibration) and index_file.c (save/load).  Not for other
 * modules.
 *
 * 1. Entries are dense (0..n-1): meta, labels, int8 codes and scales in
 *    parallel arrays; removal moves the last entry into the hole, so scans
 *    stay dense.  An open-addressing map finds an entry by id.
 * 2. Each entry has a label, stable for its life, under which its vector
 *    sits in the partition's src/vec index: lab2e maps a label back to the
 *    entry, so the graph search's filter reaches the metadata with one
 *    array read.  Labels of removed entries are reused.
 */
#ifndef AP_MEMORY_INDEX_INTERNAL_H
#define AP_MEMORY_INDEX_INTERNAL_H

#include <pthread.h>

#include "memory/index.h"
#include "vec/vec.h"

/* Calibration states of a partition with a graph (index.c). */
enum { CAL_NONE = AP_MEM_CAL_NONE, CAL_LEARN = AP_MEM_CAL_LEARN, CAL_USE = AP_MEM_CAL_USE,
       CAL_OFF = AP_MEM_CAL_OFF };

/* The beams a calibration tries, smallest first. */
#define CAL_NEFS 7
extern const int ap_mem_cal_efs[CAL_NEFS];

typedef struct pending {
    struct pending *next;
    char id[AP_UUID_LEN];
    uint32_t label;
    float *vec; /* NULL: a removal */
} pending_t;

struct ap_mem_part {
    struct ap_mem_part *next;
    char *key;
    pthread_rwlock_t lock;
    bool loaded;
    int64_t seq;
    int dim;
    ap_vec_t *vec; /* the vectors; with a graph once built (NULL while empty) */
    bool has_graph;
    uint64_t gdeleted; /* removals since the graph was built (deleted waypoints) */
    /* entries */
    int n, cap;
    ap_mem_meta_t *meta;
    uint32_t *labels;
    uint8_t *novec; /* 1: the vec index refused the vector (a zero vector) */
    int8_t *codes;  /* n × dim */
    float *scales;
    float *priors;  /* the prior of each entry (+inf without one) */
    ap_mem_prior_fn prior;
    int *slots; /* id map: slot+1, 0 empty, -1 tombstone */
    int nslots, used;
    int *lab2e; /* label → entry, -1 free */
    uint32_t labcap, nextlab;
    uint32_t *labfree;
    uint32_t nfree, freecap;
    ap_mem_bounds_t bounds;
    /* background graph build */
    bool building, build_failed;
    unsigned gen;
    pending_t *log, **tail;
    /* calibration (cal_mu guards the statistics; state and ef change
     * under the write lock or cal_mu with the read lock held) */
    pthread_mutex_t cal_mu;
    int cal, ef, off_n;
    uint64_t searches; /* atomic */
    int samples;
    double found[CAL_NEFS], cpu[CAL_NEFS], scan_cpu;
    double total;
    /* persistence */
    uint64_t changes, saved; /* changes counted; at the last save or load */
    bool from_file;
};

/* dots.c: out[i] = the dot product of entry i's int8 code (codes + i·dim)
 * with the query code q, for n entries.  Every kernel gives the same
 * integers. */
typedef void (*ap_mem_dots_fn)(const int8_t *codes, int n, const int8_t *q, int dim,
                               int32_t *out);
/* The kernels this CPU runs, slowest first (at most max; returns how many). */
int ap_mem_dots_kernels(const char **names, ap_mem_dots_fn *fns, int max);
/* The fastest of them (its name in *name when name is not NULL). */
ap_mem_dots_fn ap_mem_dots_best(const char **name);
/* Makes the index's scans use the kernel of this name (tests and
 * benchmarks); false when this CPU has no such kernel. */
bool ap_mem_index_use_kernel(ap_mem_index_t *ix, const char *name);

/* index.c, for index_file.c: an empty partition's vec index of dim. */
ap_vec_t *ap_mem_part_new_vec(int dim);
/* Appends an entry whose vector is already in p->vec under label (vec
 * NULL: an entry without a vector). */
void ap_mem_part_adopt(ap_mem_part_t *p, const ap_mem_meta_t *m, uint32_t label,
                       const float *vec);
bool ap_mem_part_novec(const ap_mem_part_t *p, int e);
ap_mem_part_t *ap_mem_index_find(ap_mem_index_t *ix, const char *key);

#endif
