/*
 * crypto.c - libsodium-backed primitives.
 */
#include "core/crypto.h"

#include <sodium.h>

ap_rc ap_crypto_init(void) {
    return sodium_init() < 0 ? AP_ERR_INTERNAL : AP_OK;
}

void ap_random(void *buf, size_t n) {
    randombytes_buf(buf, n);
}

uint32_t ap_random_u32(void) {
    return randombytes_random();
}

void ap_sha256(const void *data, size_t n, uint8_t out[AP_SHA256_LEN]) {
    crypto_hash_sha256(out, data, n);
}

void ap_sha256_hex(const void *data, size_t n, char out[AP_SHA256_HEX]) {
    uint8_t h[AP_SHA256_LEN];
    crypto_hash_sha256(h, data, n);
    ap_hex(h, sizeof h, out);
}

bool ap_ct_eq(const void *a, const void *b, size_t n) {
    return sodium_memcmp(a, b, n) == 0;
}

void ap_hex(const uint8_t *in, size_t n, char *out) {
    sodium_bin2hex(out, n * 2 + 1, in, n);
}

size_t ap_b64url_len(size_t n) {
    return sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void ap_b64url(const uint8_t *in, size_t n, char *out) {
    sodium_bin2base64(out, ap_b64url_len(n), in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
