/*
 * crypto.h - randomness, SHA-256, constant-time comparison, base64url and hex.
 *
 * 1. Everything goes through libsodium; ap_crypto_init() must be called once
 *    before threads start (it is idempotent).
 * 2. Outputs are written into caller buffers of the documented size.
 */
#ifndef AP_CORE_CRYPTO_H
#define AP_CORE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define AP_SHA256_LEN 32
#define AP_SHA256_HEX 65

ap_rc ap_crypto_init(void);
void ap_random(void *buf, size_t n);
uint32_t ap_random_u32(void);
void ap_sha256(const void *data, size_t n, uint8_t out[AP_SHA256_LEN]);
void ap_sha256_hex(const void *data, size_t n, char out[AP_SHA256_HEX]);
/* Constant-time equality of two equal-length buffers. */
bool ap_ct_eq(const void *a, const void *b, size_t n);
void ap_hex(const uint8_t *in, size_t n, char *out /* 2n+1 */);
/* base64url without padding; out needs ap_b64url_len(n) bytes. */
size_t ap_b64url_len(size_t n);
void ap_b64url(const uint8_t *in, size_t n, char *out);

#endif
