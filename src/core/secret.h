/*
 * secret.h - tenant secrets at rest (BYOK provider keys): envelope
 * encryption with libsodium secretbox (XSalsa20-Poly1305).
 *
 * 1. Each secret gets its own random 32-byte data key; the secret is
 *    sealed with the data key, and the data key is sealed ("wrapped") with
 *    the master key.  Rotating the master key re-wraps data keys only; the
 *    sealed secrets do not change.
 * 2. The master key is AP_MASTER_KEY (64 hex digits, or standard base64 of
 *    32 bytes), else <data-dir>/master.key (the same text), created with
 *    mode 0600 on first start.  It is read once at start and held by the
 *    caller; it is never logged.
 * 3. Everything stored is hex text (both backends store it as TEXT).
 * 4. Plaintexts are returned in arena memory and are the caller's to keep
 *    out of logs, responses and audit entries.
 */
#ifndef AP_CORE_SECRET_H
#define AP_CORE_SECRET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

#define AP_SECRET_KEY_LEN 32

typedef struct {
    const char *ciphertext;  /* hex: secretbox(plaintext) under the data key */
    const char *nonce;       /* hex, 24 bytes */
    const char *wrapped_key; /* hex: wrap nonce (24 bytes) + secretbox(data key) */
} ap_sealed_t;

/* Parses 64 hex digits or base64 (standard, padded or not) of 32 bytes;
 * surrounding whitespace is ignored. */
ap_rc ap_secret_parse_key(const char *text, uint8_t out[AP_SECRET_KEY_LEN], ap_err_t *err);
/* AP_MASTER_KEY, else <data_dir>/master.key (created 0600 when missing,
 * refused when readable by group or others).  *from_file says which. */
ap_rc ap_secret_master_load(const char *data_dir, uint8_t out[AP_SECRET_KEY_LEN], bool *from_file,
                            ap_err_t *err);
/* Writes key as hex to path, mode 0600, atomically (temp file + rename). */
ap_rc ap_secret_write_key_file(const char *path, const uint8_t key[AP_SECRET_KEY_LEN],
                               ap_err_t *err);

ap_rc ap_secret_seal(const uint8_t master[AP_SECRET_KEY_LEN], const char *plaintext,
                     ap_arena_t *a, ap_sealed_t *out, ap_err_t *err);
/* A wrong master key or altered data: AP_ERR_DENIED "secret-unreadable". */
ap_rc ap_secret_open(const uint8_t master[AP_SECRET_KEY_LEN], const ap_sealed_t *in,
                     ap_arena_t *a, char **plaintext, ap_err_t *err);
/* Re-wraps a data key from old_master to new_master. */
ap_rc ap_secret_rewrap(const uint8_t old_master[AP_SECRET_KEY_LEN],
                       const uint8_t new_master[AP_SECRET_KEY_LEN], const char *wrapped_key,
                       ap_arena_t *a, const char **out, ap_err_t *err);

#endif
