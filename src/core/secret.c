/*
 * secret.c - envelope encryption of tenant secrets (see secret.h).
 *
 * 1. The master key file holds hex text, so an operator can copy it into
 *    AP_MASTER_KEY unchanged.
 * 2. Key material on the stack is wiped (sodium_memzero) before return.
 */
#include "core/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONCE crypto_secretbox_NONCEBYTES
#define MAC crypto_secretbox_MACBYTES

static char *to_hex(ap_arena_t *a, const uint8_t *b, size_t n) {
    char *s = ap_arena_alloc(a, 2 * n + 1);
    sodium_bin2hex(s, 2 * n + 1, b, n);
    return s;
}

/* Decodes hex into a new arena buffer; false when not hex. */
static bool from_hex(ap_arena_t *a, const char *hex, uint8_t **out, size_t *n) {
    size_t len = hex ? strlen(hex) : 0;
    if (len == 0 || len % 2) return false;
    *out = ap_arena_alloc(a, len / 2);
    return sodium_hex2bin(*out, len / 2, hex, len, NULL, n, NULL) == 0 && *n == len / 2;
}

ap_rc ap_secret_parse_key(const char *text, uint8_t out[AP_SECRET_KEY_LEN], ap_err_t *err) {
    const char *hint = "give 32 random bytes as 64 hex digits or base64, e.g. "
                       "`openssl rand -hex 32`";
    char buf[128];
    size_t n = 0;
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
    while (text[n] && n < sizeof buf - 1) {
        buf[n] = text[n];
        n++;
    }
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    size_t got = 0;
    bool ok = false;
    if (n == 2 * AP_SECRET_KEY_LEN)
        ok = sodium_hex2bin(out, AP_SECRET_KEY_LEN, buf, n, NULL, &got, NULL) == 0 &&
             got == AP_SECRET_KEY_LEN;
    if (!ok) {
        uint8_t tmp[64];
        ok = sodium_base642bin(tmp, sizeof tmp, buf, n, NULL, &got, NULL,
                               sodium_base64_VARIANT_ORIGINAL) == 0 &&
             got == AP_SECRET_KEY_LEN;
        if (!ok)
            ok = sodium_base642bin(tmp, sizeof tmp, buf, n, NULL, &got, NULL,
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
                 got == AP_SECRET_KEY_LEN;
        if (ok) memcpy(out, tmp, AP_SECRET_KEY_LEN);
        sodium_memzero(tmp, sizeof tmp);
    }
    sodium_memzero(buf, sizeof buf);
    if (!ok)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-master-key", "invalid master key", hint,
                          "the key is not 32 bytes in hex or base64 (%zu characters)", n);
    return AP_OK;
}

ap_rc ap_secret_write_key_file(const char *path, const uint8_t key[AP_SECRET_KEY_LEN],
                               ap_err_t *err) {
    char tmp[4096], hex[2 * AP_SECRET_KEY_LEN + 2];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sodium_bin2hex(hex, sizeof hex, key, AP_SECRET_KEY_LEN);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write(fd, hex, n) == (ssize_t)n && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    ok = ok && rename(tmp, path) == 0;
    sodium_memzero(hex, sizeof hex);
    if (!ok) {
        int e = errno;
        unlink(tmp);
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot write the master key file",
                          "check the data directory's permissions", "%s: %s", path, strerror(e));
    }
    return AP_OK;
}

ap_rc ap_secret_master_load(const char *data_dir, uint8_t out[AP_SECRET_KEY_LEN], bool *from_file,
                            ap_err_t *err) {
    const char *env = getenv("AP_MASTER_KEY");
    *from_file = false;
    if (env && *env) {
        ap_rc rc = ap_secret_parse_key(env, out, err);
        if (rc) snprintf(err->msg, sizeof err->msg, "invalid AP_MASTER_KEY");
        return rc;
    }
    *from_file = true;
    char path[4096];
    snprintf(path, sizeof path, "%s/master.key", data_dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(out, AP_SECRET_KEY_LEN);
        return ap_secret_write_key_file(path, out, err);
    }
    if (fd < 0)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot read the master key file", NULL, "%s: %s",
                          path, strerror(errno));
    struct stat st;
    char buf[256];
    ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof buf - 1) : -1;
    close(fd);
    if (n < 0)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot read the master key file", NULL, "%s",
                          path);
    buf[n] = '\0';
    ap_rc rc = AP_OK;
    if (st.st_mode & 077)
        rc = ap_err_set(err, AP_ERR_DENIED, "insecure-master-key", "master key file is readable by others",
                        "chmod 600 the file", "%s has mode %03o", path,
                        (unsigned)(st.st_mode & 0777));
    if (!rc) rc = ap_secret_parse_key(buf, out, err);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

static ap_rc unreadable(ap_err_t *err) {
    return ap_err_set(err, AP_ERR_DENIED, "secret-unreadable", "secret cannot be decrypted",
                      "the master key differs from the one it was stored with; set it again",
                      "decryption failed (wrong master key or altered data)");
}

ap_rc ap_secret_seal(const uint8_t master[AP_SECRET_KEY_LEN], const char *plaintext,
                     ap_arena_t *a, ap_sealed_t *out, ap_err_t *err) {
    (void)err;
    uint8_t dk[AP_SECRET_KEY_LEN], nonce[NONCE];
    randombytes_buf(dk, sizeof dk);
    randombytes_buf(nonce, sizeof nonce);
    size_t n = strlen(plaintext);
    uint8_t *c = ap_arena_alloc(a, n + MAC);
    crypto_secretbox_easy(c, (const uint8_t *)plaintext, n, nonce, dk);
    uint8_t w[NONCE + MAC + AP_SECRET_KEY_LEN];
    randombytes_buf(w, NONCE);
    crypto_secretbox_easy(w + NONCE, dk, sizeof dk, w, master);
    out->ciphertext = to_hex(a, c, n + MAC);
    out->nonce = to_hex(a, nonce, sizeof nonce);
    out->wrapped_key = to_hex(a, w, sizeof w);
    sodium_memzero(dk, sizeof dk);
    return AP_OK;
}

/* Unwraps a data key into dk. */
static ap_rc unwrap(ap_arena_t *a, const uint8_t master[AP_SECRET_KEY_LEN], const char *wrapped,
                    uint8_t dk[AP_SECRET_KEY_LEN], ap_err_t *err) {
    uint8_t *w;
    size_t n;
    if (!from_hex(a, wrapped, &w, &n) || n != NONCE + MAC + AP_SECRET_KEY_LEN ||
        crypto_secretbox_open_easy(dk, w + NONCE, n - NONCE, w, master) != 0)
        return unreadable(err);
    return AP_OK;
}

ap_rc ap_secret_open(const uint8_t master[AP_SECRET_KEY_LEN], const ap_sealed_t *in,
                     ap_arena_t *a, char **plaintext, ap_err_t *err) {
    uint8_t dk[AP_SECRET_KEY_LEN], *c, *nonce;
    size_t n, nn;
    ap_rc rc = unwrap(a, master, in->wrapped_key, dk, err);
    if (rc) return rc;
    if (!from_hex(a, in->ciphertext, &c, &n) || n < MAC || !from_hex(a, in->nonce, &nonce, &nn) ||
        nn != NONCE) {
        sodium_memzero(dk, sizeof dk);
        return unreadable(err);
    }
    char *p = ap_arena_alloc(a, n - MAC + 1);
    int bad = crypto_secretbox_open_easy((uint8_t *)p, c, n, nonce, dk);
    sodium_memzero(dk, sizeof dk);
    if (bad) return unreadable(err);
    p[n - MAC] = '\0';
    *plaintext = p;
    return AP_OK;
}

ap_rc ap_secret_rewrap(const uint8_t old_master[AP_SECRET_KEY_LEN],
                       const uint8_t new_master[AP_SECRET_KEY_LEN], const char *wrapped_key,
                       ap_arena_t *a, const char **out, ap_err_t *err) {
    uint8_t dk[AP_SECRET_KEY_LEN];
    ap_rc rc = unwrap(a, old_master, wrapped_key, dk, err);
    if (rc) return rc;
    uint8_t w[NONCE + MAC + AP_SECRET_KEY_LEN];
    randombytes_buf(w, NONCE);
    crypto_secretbox_easy(w + NONCE, dk, sizeof dk, w, new_master);
    sodium_memzero(dk, sizeof dk);
    *out = to_hex(a, w, sizeof w);
    return AP_OK;
}
