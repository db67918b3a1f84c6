/*
 * vec_store.h - a registry of vector indexes by partition key, so the memory
 * service keeps one index per (tenant, agent).
 *
 *     ap_vec_store_t *st;
 *     ap_vec_store_new(&params, NULL, &st, &err);       // params for new indexes
 *     char key[AP_VEC_KEY_MAX];
 *     ap_vec_store_key(key, sizeof key, tenant_id, agent_id);
 *     ap_vec_t *ix;
 *     ap_vec_store_get(st, key, true, &ix, &err);       // created on demand
 *     ap_vec_add(ix, ...); ap_vec_search(ix, ...);
 *     ap_vec_release(ix);                               // every get pairs with a release
 *     ap_vec_store_free(st);
 *
 * 1. The store holds one reference to each index; get hands the caller
 *    another.  Dropping a key (or freeing the store) releases the store's
 *    reference; an index in use stays valid until its last release.
 * 2. All functions are thread-safe (one mutex around the key table; it is
 *    never held while an index is searched or written).
 * 3. Keys are 1 to AP_VEC_KEY_MAX-1 bytes; ap_vec_store_key joins a tenant
 *    and an agent id as "tenant/agent".
 */
#ifndef AP_VEC_STORE_H
#define AP_VEC_STORE_H

#include "vec/vec.h"

#define AP_VEC_KEY_MAX 256

typedef struct ap_vec_store ap_vec_store_t;

ap_rc ap_vec_store_new(const ap_vec_params_t *params, const ap_vec_alloc_t *alloc,
                       ap_vec_store_t **out, ap_err_t *err);
void ap_vec_store_free(ap_vec_store_t *st); /* NULL is harmless */

/* "tenant/agent" into buf; AP_ERR_INVALID when empty, containing '/', or too long. */
ap_rc ap_vec_store_key(char *buf, size_t cap, const char *tenant, const char *agent);

/* The index of key, retained for the caller.  create: a new empty index
 * (the store's params) when there is none; otherwise AP_ERR_NOT_FOUND. */
ap_rc ap_vec_store_get(ap_vec_store_t *st, const char *key, bool create, ap_vec_t **out,
                       ap_err_t *err);
/* Installs ix under key (e.g. one loaded from a file), replacing any index
 * there; the store takes its own reference.  The dimension must match. */
ap_rc ap_vec_store_put(ap_vec_store_t *st, const char *key, ap_vec_t *ix, ap_err_t *err);
/* Removes key; false when there was none. */
bool ap_vec_store_drop(ap_vec_store_t *st, const char *key);
size_t ap_vec_store_count(ap_vec_store_t *st);
/* Calls fn for each key with a retained index (released after fn returns),
 * outside the store's lock: fn may use the store and the index. */
ap_rc ap_vec_store_each(ap_vec_store_t *st, void (*fn)(const char *key, ap_vec_t *ix, void *arg),
                        void *arg, ap_err_t *err);

#endif
