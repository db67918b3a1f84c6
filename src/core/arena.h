/*
 * arena.h - region allocator for one request or one task step.
 *
 * 1. Everything allocated from an arena is released at once by
 *    ap_arena_free(); callers never free arena memory individually.
 * 2. Resources that are not memory (database statements, jansson values)
 *    register a cleanup; cleanups run in reverse order of registration
 *    before the memory is released (as nginx pool cleanups do).
 * 3. Not thread-safe: an arena belongs to one thread at a time.
 */
#ifndef AP_CORE_ARENA_H
#define AP_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct ap_arena ap_arena_t;
typedef void (*ap_cleanup_fn)(void *arg);

ap_arena_t *ap_arena_new(size_t first_block);
void ap_arena_free(ap_arena_t *a); /* accepts NULL */
/* Releases everything but keeps the first block for reuse. */
void ap_arena_reset(ap_arena_t *a);

void *ap_arena_alloc(ap_arena_t *a, size_t n);  /* 16-byte aligned */
void *ap_arena_calloc(ap_arena_t *a, size_t n);
char *ap_arena_strdup(ap_arena_t *a, const char *s);
char *ap_arena_strndup(ap_arena_t *a, const char *s, size_t n);
char *ap_arena_printf(ap_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *ap_arena_vprintf(ap_arena_t *a, const char *fmt, va_list ap);
void ap_arena_cleanup(ap_arena_t *a, ap_cleanup_fn fn, void *arg);
/* Bytes handed out so far (for tests and metrics). */
size_t ap_arena_used(const ap_arena_t *a);

#endif
