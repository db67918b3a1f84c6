/*
 * scheduler.c - stride scheduling across tenants over per-class FIFOs.
 *
 * 1. Queues are rings of fixed-size id slots that double when full.
 * 2. The set of queued ids is an open-addressing hash table with
 *    tombstones, rebuilt when it fills up, so duplicates cost O(1).
 */
#include "orch/scheduler.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

typedef struct {
    char (*ids)[AP_SCHED_ID_LEN];
    size_t cap, head, len;
} ring_t;

typedef struct {
    char id[AP_SCHED_ID_LEN];
    ring_t q[AP_SCHED_RANKS];
    size_t queued;
    int running, quota;     /* on a runner thread now; at most quota */
    int inflight, limit;    /* popped and not done (waiting on a model call
                               too); at most limit when limit > 0 */
    double pass, weight;
} tenant_t;

/* A tenant's own quota and weight; outlives its tenant_t (dropped when
 * idle) so the share holds the next time the tenant has work. */
typedef struct {
    char id[AP_SCHED_ID_LEN];
    int quota, limit;
    double weight;
} share_t;

struct ap_sched {
    share_t *shares;
    size_t nshares, cap_shares;
    tenant_t **tenants;
    size_t ntenants, cap_tenants;
    int default_quota;
    double vtime; /* pass of the last dispatch */
    /* queued id set */
    char (*set)[AP_SCHED_ID_LEN];
    size_t set_cap, set_used, set_live;
    size_t total;
};

static const char TOMB[] = "-";

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void set_rehash(ap_sched_t *s, size_t cap) {
    char(*old)[AP_SCHED_ID_LEN] = s->set;
    size_t ocap = s->set_cap;
    s->set = ap_calloc(cap, AP_SCHED_ID_LEN);
    s->set_cap = cap;
    s->set_used = s->set_live = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i][0] || strcmp(old[i], TOMB) == 0) continue;
        size_t j = hash(old[i]) & (cap - 1);
        while (s->set[j][0]) j = (j + 1) & (cap - 1);
        memcpy(s->set[j], old[i], AP_SCHED_ID_LEN);
        s->set_used++;
        s->set_live++;
    }
    ap_free(old);
}

static long set_find(const ap_sched_t *s, const char *id) {
    size_t j = hash(id) & (s->set_cap - 1);
    while (s->set[j][0]) {
        if (strcmp(s->set[j], id) == 0) return (long)j;
        j = (j + 1) & (s->set_cap - 1);
    }
    return -1;
}

static bool set_add(ap_sched_t *s, const char *id) {
    if (set_find(s, id) >= 0) return false;
    if ((s->set_used + 1) * 2 > s->set_cap)
        set_rehash(s, s->set_live * 4 > s->set_cap ? s->set_cap * 2 : s->set_cap);
    size_t j = hash(id) & (s->set_cap - 1);
    while (s->set[j][0] && strcmp(s->set[j], TOMB) != 0) j = (j + 1) & (s->set_cap - 1);
    if (!s->set[j][0]) s->set_used++;
    snprintf(s->set[j], AP_SCHED_ID_LEN, "%s", id);
    s->set_live++;
    return true;
}

static void set_del(ap_sched_t *s, const char *id) {
    long j = set_find(s, id);
    if (j < 0) return;
    memcpy(s->set[j], TOMB, sizeof TOMB);
    s->set_live--;
}

ap_sched_t *ap_sched_new(int default_quota) {
    ap_sched_t *s = ap_calloc(1, sizeof *s);
    s->default_quota = default_quota > 0 ? default_quota : 1;
    s->set_cap = 1024;
    s->set = ap_calloc(s->set_cap, AP_SCHED_ID_LEN);
    return s;
}

void ap_sched_free(ap_sched_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->ntenants; i++) {
        for (int r = 0; r < AP_SCHED_RANKS; r++) ap_free(s->tenants[i]->q[r].ids);
        ap_free(s->tenants[i]);
    }
    ap_free(s->tenants);
    ap_free(s->shares);
    ap_free(s->set);
    ap_free(s);
}

static share_t *share_find(const ap_sched_t *s, const char *id) {
    for (size_t i = 0; i < s->nshares; i++)
        if (strcmp(s->shares[i].id, id) == 0) return &s->shares[i];
    return NULL;
}

static tenant_t *tenant_get(ap_sched_t *s, const char *id) {
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i]->id, id) == 0) return s->tenants[i];
    if (s->ntenants == s->cap_tenants) {
        s->cap_tenants = s->cap_tenants ? s->cap_tenants * 2 : 8;
        s->tenants = ap_realloc(s->tenants, s->cap_tenants * sizeof *s->tenants);
    }
    tenant_t *t = ap_calloc(1, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    const share_t *sh = share_find(s, id);
    t->quota = sh ? sh->quota : s->default_quota;
    t->limit = sh ? sh->limit : 0;
    t->weight = sh ? sh->weight : 1.0;
    t->pass = s->vtime;
    s->tenants[s->ntenants++] = t;
    return t;
}

/* Drops tenants with nothing queued and nothing running. */
static void tenant_gc(ap_sched_t *s, size_t i) {
    tenant_t *t = s->tenants[i];
    if (t->queued || t->running || t->inflight) return;
    for (int r = 0; r < AP_SCHED_RANKS; r++) ap_free(t->q[r].ids);
    ap_free(t);
    s->tenants[i] = s->tenants[--s->ntenants];
}

bool ap_sched_push(ap_sched_t *s, const char *tenant_id, const char *task_id, int rank) {
    if (strlen(task_id) >= AP_SCHED_ID_LEN || strlen(tenant_id) >= AP_SCHED_ID_LEN) return false;
    if (!set_add(s, task_id)) return false;
    if (rank < 0) rank = 0;
    if (rank >= AP_SCHED_RANKS) rank = AP_SCHED_RANKS - 1;
    tenant_t *t = tenant_get(s, tenant_id);
    if (!t->queued && !t->inflight && t->pass < s->vtime) t->pass = s->vtime;
    ring_t *q = &t->q[rank];
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 16;
        char(*n)[AP_SCHED_ID_LEN] = ap_calloc(ncap, AP_SCHED_ID_LEN);
        for (size_t i = 0; i < q->len; i++)
            memcpy(n[i], q->ids[(q->head + i) % q->cap], AP_SCHED_ID_LEN);
        ap_free(q->ids);
        q->ids = n;
        q->cap = ncap;
        q->head = 0;
    }
    snprintf(q->ids[(q->head + q->len) % q->cap], AP_SCHED_ID_LEN, "%s", task_id);
    q->len++;
    t->queued++;
    s->total++;
    return true;
}

bool ap_sched_pop(ap_sched_t *s, char tenant_out[AP_SCHED_ID_LEN],
                  char task_out[AP_SCHED_ID_LEN]) {
    tenant_t *best = NULL;
    int best_rank = AP_SCHED_RANKS;
    for (size_t i = 0; i < s->ntenants; i++) {
        tenant_t *t = s->tenants[i];
        if (!t->queued || t->running >= t->quota || (t->limit > 0 && t->inflight >= t->limit))
            continue;
        int r = 0;
        while (r < AP_SCHED_RANKS && !t->q[r].len) r++;
        if (r < best_rank || (r == best_rank && t->pass < best->pass)) {
            best = t;
            best_rank = r;
        }
    }
    if (!best) return false;
    ring_t *q = &best->q[best_rank];
    memcpy(task_out, q->ids[q->head], AP_SCHED_ID_LEN);
    q->head = (q->head + 1) % q->cap;
    q->len--;
    best->queued--;
    best->running++;
    best->inflight++;
    s->total--;
    s->vtime = best->pass;
    best->pass += 1.0 / best->weight;
    memcpy(tenant_out, best->id, AP_SCHED_ID_LEN);
    set_del(s, task_out);
    return true;
}

void ap_sched_done(ap_sched_t *s, const char *tenant_id) {
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i]->id, tenant_id) == 0) {
            if (s->tenants[i]->running > 0) s->tenants[i]->running--;
            if (s->tenants[i]->inflight > 0) s->tenants[i]->inflight--;
            tenant_gc(s, i);
            return;
        }
}

void ap_sched_await(ap_sched_t *s, const char *tenant_id, bool waiting) {
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i]->id, tenant_id) == 0) {
            tenant_t *t = s->tenants[i];
            if (waiting && t->running > 0) t->running--;
            if (!waiting) t->running++;
            return;
        }
}

void ap_sched_set_share(ap_sched_t *s, const char *tenant_id, int quota, int limit,
                        double weight) {
    if (strlen(tenant_id) >= AP_SCHED_ID_LEN) return;
    share_t *sh = share_find(s, tenant_id);
    if (!sh) {
        if (s->nshares == s->cap_shares) {
            s->cap_shares = s->cap_shares ? s->cap_shares * 2 : 8;
            s->shares = ap_realloc(s->shares, s->cap_shares * sizeof *s->shares);
        }
        sh = &s->shares[s->nshares++];
        snprintf(sh->id, sizeof sh->id, "%s", tenant_id);
        sh->quota = s->default_quota;
        sh->weight = 1.0;
    }
    if (quota >= 1) sh->quota = quota;
    if (limit >= 0) sh->limit = limit;
    if (weight > 0) sh->weight = weight;
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i]->id, tenant_id) == 0) {
            s->tenants[i]->quota = sh->quota;
            s->tenants[i]->limit = sh->limit;
            s->tenants[i]->weight = sh->weight;
        }
}

bool ap_sched_has_share(const ap_sched_t *s, const char *tenant_id) {
    return share_find(s, tenant_id) != NULL;
}

size_t ap_sched_len(const ap_sched_t *s) { return s->total; }

bool ap_sched_has(const ap_sched_t *s, const char *task_id) { return set_find(s, task_id) >= 0; }
