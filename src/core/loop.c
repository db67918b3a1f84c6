/*
 * loop.c - the event loop (loop.h).
 *
 * 1. The wake-up eventfd is an ordinary watched descriptor; reading it
 *    clears wake_pending, after which a waker writes again.  A waker sets
 *    its own note before it wakes, and the hooks' checks run after the
 *    eventfd was read, so no note is missed.
 * 2. ap_loop_call queues on a mutex-protected list (rare: start-up and
 *    shutdown).  When the loop stops it marks itself not running and then
 *    runs what is still queued, under the same mutex the callers check
 *    `running` with, so every call runs exactly once.
 */
#include "core/loop.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

typedef struct loop_call {
    void (*fn)(void *arg);
    void *arg;
    bool done;
    struct loop_call *next;
} loop_call_t;

struct ap_loop {
    int ep, efd;
    ap_loop_io_t wake_io;
    ap_loop_hook_t *hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    loop_call_t *calls; /* under mu */
    pthread_t owner;
    pthread_t thread;
    bool has_thread, started; /* started: under mu */
    _Atomic bool running, stop, wake_pending, has_calls;
};

int64_t ap_loop_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_wake(ap_loop_io_t *io, uint32_t events) {
    (void)events;
    ap_loop_t *l = (ap_loop_t *)((char *)io - offsetof(ap_loop_t, wake_io));
    uint64_t v;
    while (read(l->efd, &v, sizeof v) < 0 && errno == EINTR) {}
    atomic_store(&l->wake_pending, false);
}

ap_rc ap_loop_new(ap_loop_t **out, ap_err_t *err) {
    ap_loop_t *l = ap_calloc(1, sizeof *l);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->ep < 0 || l->efd < 0) {
        int e = errno;
        if (l->ep >= 0) close(l->ep);
        if (l->efd >= 0) close(l->efd);
        ap_free(l);
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot create an event loop", NULL,
                          "%s", strerror(e));
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->wake_io.fn = on_wake;
    ap_loop_add(l, &l->wake_io, l->efd, EPOLLIN);
    *out = l;
    return AP_OK;
}

void ap_loop_free(ap_loop_t *l) {
    if (!l) return;
    close(l->ep);
    close(l->efd);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    ap_free(l);
}

void ap_loop_hook_add(ap_loop_t *l, ap_loop_hook_t *h) {
    ap_loop_hook_t **pp = &l->hooks;
    while (*pp) pp = &(*pp)->next;
    h->next = NULL;
    *pp = h;
}

void ap_loop_hook_del(ap_loop_t *l, ap_loop_hook_t *h) {
    for (ap_loop_hook_t **pp = &l->hooks; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            return;
        }
}

ap_rc ap_loop_add(ap_loop_t *l, ap_loop_io_t *io, int fd, uint32_t events) {
    io->fd = fd;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        return ap_err_set(NULL, AP_ERR_INTERNAL, NULL, "cannot watch a descriptor", NULL, "%s",
                          strerror(errno));
    return AP_OK;
}

void ap_loop_mod(ap_loop_t *l, ap_loop_io_t *io, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = io};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, io->fd, &ev);
}

void ap_loop_del(ap_loop_t *l, ap_loop_io_t *io) {
    epoll_ctl(l->ep, EPOLL_CTL_DEL, io->fd, NULL);
}

void ap_loop_wake(ap_loop_t *l) {
    if (atomic_exchange(&l->wake_pending, true)) return; /* a wake-up is on its way */
    uint64_t one = 1;
    while (write(l->efd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void ap_loop_stop(ap_loop_t *l) {
    atomic_store(&l->stop, true);
    ap_loop_wake(l);
}

bool ap_loop_on_thread(ap_loop_t *l) {
    return atomic_load(&l->running) && pthread_equal(l->owner, pthread_self());
}

/* Runs the queued calls; they were taken from the list under mu. */
static void run_calls(ap_loop_t *l, loop_call_t *c) {
    while (c) {
        loop_call_t *next = c->next;
        c->fn(c->arg);
        pthread_mutex_lock(&l->mu);
        c->done = true; /* c lives on its caller's stack: not touched after this */
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        c = next;
    }
}

static loop_call_t *take_calls(ap_loop_t *l) {
    pthread_mutex_lock(&l->mu);
    loop_call_t *c = l->calls, *rev = NULL;
    l->calls = NULL;
    atomic_store(&l->has_calls, false);
    pthread_mutex_unlock(&l->mu);
    while (c) { /* the list is LIFO: run in the order they came */
        loop_call_t *n = c->next;
        c->next = rev;
        rev = c;
        c = n;
    }
    return rev;
}

void ap_loop_call(ap_loop_t *l, void (*fn)(void *arg), void *arg) {
    if (ap_loop_on_thread(l)) {
        fn(arg);
        return;
    }
    pthread_mutex_lock(&l->mu);
    if (!atomic_load(&l->running)) {
        pthread_mutex_unlock(&l->mu);
        fn(arg);
        return;
    }
    loop_call_t c = {.fn = fn, .arg = arg, .next = l->calls};
    l->calls = &c;
    atomic_store(&l->has_calls, true);
    ap_loop_wake(l);
    while (!c.done) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void ap_loop_run(ap_loop_t *l) {
    pthread_mutex_lock(&l->mu);
    l->owner = pthread_self();
    atomic_store(&l->running, true);
    l->started = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    struct epoll_event evs[256];
    while (!atomic_load(&l->stop)) {
        int64_t wait = -1;
        for (ap_loop_hook_t *h = l->hooks; h; h = h->next) {
            int64_t w = h->prepare(h);
            if (w >= 0 && (wait < 0 || w < wait)) wait = w;
        }
        if (atomic_load(&l->has_calls)) wait = 0;
        int n = epoll_wait(l->ep, evs, 256, wait > INT_MAX ? INT_MAX : (int)wait);
        for (int i = 0; i < n; i++) {
            ap_loop_io_t *io = evs[i].data.ptr;
            io->fn(io, evs[i].events);
        }
        if (atomic_load(&l->has_calls)) run_calls(l, take_calls(l));
        for (ap_loop_hook_t *h = l->hooks; h; h = h->next) h->check(h);
    }
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->running, false);
    pthread_mutex_unlock(&l->mu);
    run_calls(l, take_calls(l));
}

static void *thread_main(void *arg) {
    ap_loop_run(arg);
    return NULL;
}

ap_rc ap_loop_start_thread(ap_loop_t *l, ap_err_t *err) {
    if (pthread_create(&l->thread, NULL, thread_main, l) != 0)
        return ap_err_set(err, AP_ERR_INTERNAL, NULL, "cannot start an event loop thread", NULL,
                          "%s", strerror(errno));
    l->has_thread = true;
    pthread_mutex_lock(&l->mu);
    while (!l->started) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    return AP_OK;
}

void ap_loop_join(ap_loop_t *l) {
    if (!l->has_thread) return;
    ap_loop_stop(l);
    pthread_join(l->thread, NULL);
    l->has_thread = false;
}
