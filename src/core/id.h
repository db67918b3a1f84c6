/*
 * id.h - UUIDv7 identifiers (RFC 9562): time-ordered, so primary keys and
 * cursors sort by creation time.
 *
 * 1. Text form is lowercase, 36 characters; ap_uuid_valid accepts only that
 *    canonical form (paths are lowercased before routing).
 * 2. Thread-safe: the random part comes from libsodium; within one
 *    millisecond a per-thread counter keeps ids increasing.
 */
#ifndef AP_CORE_ID_H
#define AP_CORE_ID_H

#include <stdbool.h>

#define AP_UUID_LEN 37

void ap_uuid7(char out[AP_UUID_LEN]);
bool ap_uuid_valid(const char *s);

#define AP_NIL_UUID "00000000-0000-0000-0000-000000000000"

#endif
