/*
 * loop.h - an event loop for one thread: epoll, per-iteration hooks, and
 * a wake-up eventfd for the other threads.
 *
 * API (summary)
 *
 *   ap_loop_new(&l, &err);
 *   ap_loop_hook_add(l, &hook);          // before the loop runs
 *   ap_loop_add(l, &io, fd, EPOLLIN);    // on the loop's thread (or before it runs)
 *   ap_loop_run(l);                      // on the thread that owns it, until ap_loop_stop
 *   ap_loop_wake(l); ap_loop_call(l, fn, arg); ap_loop_stop(l);   // any thread
 *
 * 1. One thread runs a loop, and everything registered on it runs on that
 *    thread: I/O callbacks, and hooks.  Owners of loop-thread state need no
 *    lock for it: a caller on the loop's thread (ap_loop_on_thread) acts at
 *    once; any other thread leaves a note and wakes the loop.
 * 2. The loop keeps no timers.  Before each wait every hook's prepare says
 *    how long the loop may sleep (0: there is work now; negative: no
 *    bound); after the wait every hook's check runs, in the order they were
 *    added, whatever woke the loop.  The few timers a user has (libcurl's
 *    one deadline, libmicrohttpd's timeout, retry delays) are cheaper kept
 *    by the user than in a general timer structure.
 * 3. Waking from another thread writes the eventfd only when no wake-up is
 *    pending already, so a burst of notes costs one write.
 * 4. ap_loop_call runs a function on the loop's thread and waits for it;
 *    when the loop does not run (not started, or stopped) it runs on the
 *    caller's thread, so it can be used on either side of a shutdown.
 */
#ifndef AP_CORE_LOOP_H
#define AP_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

typedef struct ap_loop ap_loop_t;

/* A descriptor watched by the loop; embedded in its owner's struct. */
typedef struct ap_loop_io {
    void (*fn)(struct ap_loop_io *io, uint32_t events); /* EPOLLIN, EPOLLOUT, EPOLLERR, … */
    int fd;
} ap_loop_io_t;

/* Work done on every iteration; embedded in its owner's struct. */
typedef struct ap_loop_hook {
    int64_t (*prepare)(struct ap_loop_hook *h); /* ms the loop may sleep; < 0: no bound */
    void (*check)(struct ap_loop_hook *h);
    struct ap_loop_hook *next;
} ap_loop_hook_t;

ap_rc ap_loop_new(ap_loop_t **out, ap_err_t *err);
/* The loop must not run.  Accepts NULL. */
void ap_loop_free(ap_loop_t *l);

/* Hooks are added before the loop runs, or on its thread. */
void ap_loop_hook_add(ap_loop_t *l, ap_loop_hook_t *h);
void ap_loop_hook_del(ap_loop_t *l, ap_loop_hook_t *h);

/* Watch fd (level-triggered).  On the loop's thread, or while it does not run. */
ap_rc ap_loop_add(ap_loop_t *l, ap_loop_io_t *io, int fd, uint32_t events);
void ap_loop_mod(ap_loop_t *l, ap_loop_io_t *io, uint32_t events);
void ap_loop_del(ap_loop_t *l, ap_loop_io_t *io);

/* Runs the loop on the calling thread until ap_loop_stop. */
void ap_loop_run(ap_loop_t *l);
/* Runs the loop on a new thread; returns once it runs (so ap_loop_call
 * and ap_loop_on_thread see it running from then on). */
ap_rc ap_loop_start_thread(ap_loop_t *l, ap_err_t *err);
/* Stops a loop started with ap_loop_start_thread and waits for its thread. */
void ap_loop_join(ap_loop_t *l);
/* Any thread: ap_loop_run returns after the current iteration. */
void ap_loop_stop(ap_loop_t *l);
/* Any thread: the loop runs one more iteration (its hooks' checks) soon. */
void ap_loop_wake(ap_loop_t *l);
/* Any thread: fn(arg) on the loop's thread, returning when it has run
 * (decision 4).  Must not be called from inside fn's own loop iteration
 * with the loop stopping. */
void ap_loop_call(ap_loop_t *l, void (*fn)(void *arg), void *arg);
/* True on the thread that runs l, while it runs. */
bool ap_loop_on_thread(ap_loop_t *l);

/* Monotonic milliseconds, the clock of prepare's answers. */
int64_t ap_loop_now_ms(void);

#endif
