/*
 * fakeup.h - build/fake-upstream for the unit tests that call a provider
 * over HTTP: started once per test binary on a free loopback port (it
 * prints the port it bound in its "ready" log line), stopped at exit.
 *
 * 1. Its log goes to an unlinked temporary file, read back for the port:
 *    a pipe nobody drains would block it.
 * 2. tu_fake_start() returns the port, or 0 when build/fake-upstream is
 *    not built (the tests that need it skip); it fails the test when the
 *    program is there but does not start within 5 s.
 */
#ifndef AP_FAKEUP_H
#define AP_FAKEUP_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static pid_t tu_fake_pid_;
static int tu_fake_port_;

static inline void tu_fake_stop_(void) {
    if (tu_fake_pid_ > 0) {
        kill(tu_fake_pid_, SIGTERM);
        waitpid(tu_fake_pid_, NULL, 0);
        tu_fake_pid_ = 0;
    }
}

static inline int tu_fake_start(void) {
    if (tu_fake_port_) return tu_fake_port_;
    if (access("build/fake-upstream", X_OK) != 0) return 0;
    char log[] = "/tmp/aptest-fake-XXXXXX";
    int fd = mkstemp(log);
    if (fd < 0) return 0;
    unlink(log);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    char *argv[] = {"build/fake-upstream", "--listen", "127.0.0.1:0", "--threads", "2",
                    "--exit-with-parent", NULL};
    int rc = posix_spawn(&tu_fake_pid_, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        close(fd);
        return 0;
    }
    atexit(tu_fake_stop_);
    for (int i = 0; i < 500 && !tu_fake_port_; i++) { /* up to 5 s */
        char buf[512];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        const char *p = strstr(buf, "\"port\":");
        if (strstr(buf, "\"ready\"") && p) tu_fake_port_ = atoi(p + 7);
        else usleep(10 * 1000);
    }
    close(fd);
    if (!tu_fake_port_) fail_msg("build/fake-upstream did not start");
    return tu_fake_port_;
}

#endif
