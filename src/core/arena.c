/*
 * arena.c - block-chained bump allocator with cleanups.
 *
 * 1. Blocks double in size up to 1 MiB; an allocation larger than the
 *    block size gets a block of its own, so big bodies do not waste space.
 * 2. The first block is allocated together with the arena header.
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define ALIGN 16
#define MAX_BLOCK (1u << 20)

typedef struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(ALIGN) unsigned char data[];
} block_t;

typedef struct cleanup {
    struct cleanup *next;
    ap_cleanup_fn fn;
    void *arg;
} cleanup_t;

struct ap_arena {
    block_t *head;  /* current block (most recent) */
    block_t *first; /* kept across resets */
    cleanup_t *cleanups;
    size_t next_cap;
    size_t used;
};

static block_t *block_new(size_t cap) {
    block_t *b = ap_malloc(sizeof(block_t) + cap);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

ap_arena_t *ap_arena_new(size_t first_block) {
    if (first_block < 256) first_block = 256;
    ap_arena_t *a = ap_calloc(1, sizeof *a);
    a->first = a->head = block_new(first_block);
    a->next_cap = first_block * 2;
    return a;
}

static void run_cleanups(ap_arena_t *a) {
    while (a->cleanups) {
        cleanup_t *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->arg);
    }
}

void ap_arena_reset(ap_arena_t *a) {
    run_cleanups(a);
    block_t *b = a->head;
    while (b && b != a->first) {
        block_t *n = b->next;
        ap_free(b);
        b = n;
    }
    a->head = a->first;
    a->first->next = NULL;
    a->first->used = 0;
    a->used = 0;
}

void ap_arena_free(ap_arena_t *a) {
    if (!a) return;
    ap_arena_reset(a);
    ap_free(a->first);
    ap_free(a);
}

void *ap_arena_alloc(ap_arena_t *a, size_t n) {
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need == 0) need = ALIGN;
    block_t *b = a->head;
    if (b->cap - b->used < need) {
        size_t cap = a->next_cap;
        if (a->next_cap < MAX_BLOCK) a->next_cap *= 2;
        if (cap < need) cap = need;
        block_t *nb = block_new(cap);
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += need;
    return p;
}

void *ap_arena_calloc(ap_arena_t *a, size_t n) {
    void *p = ap_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *ap_arena_strndup(ap_arena_t *a, const char *s, size_t n) {
    char *p = ap_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ap_arena_strdup(ap_arena_t *a, const char *s) {
    return s ? ap_arena_strndup(a, s, strlen(s)) : NULL;
}

char *ap_arena_vprintf(ap_arena_t *a, const char *fmt, va_list ap) {
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) n = 0;
    char *p = ap_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *ap_arena_printf(ap_arena_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = ap_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

void ap_arena_cleanup(ap_arena_t *a, ap_cleanup_fn fn, void *arg) {
    cleanup_t *c = ap_arena_alloc(a, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
}

size_t ap_arena_used(const ap_arena_t *a) {
    return a->used;
}
