/*
 * version.h - the build's version (git describe), for logs, --version and
 * /metrics.
 *
 * 1. Defined in one generated file (build/gen/version.c), rewritten only
 *    when the version changes, so every object of a build agrees on it.
 */
#ifndef AP_CORE_VERSION_H
#define AP_CORE_VERSION_H

extern const char ap_version[];

#endif
