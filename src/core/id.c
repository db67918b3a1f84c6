/*
 * id.c - UUIDv7 generation and validation.
 *
 * 1. Layout: 48-bit unix ms | ver 7 | 12-bit counter (rand_a) | var 10 |
 *    62 random bits.  The counter starts at a random value below 2^11 each
 *    new millisecond and increments within it (RFC 9562 method 1), per
 *    thread, so one thread's ids are strictly increasing.
 */
#include "core/id.h"

#include <stdint.h>
#include <string.h>

#include "core/crypto.h"
#include "core/time.h"

static _Thread_local int64_t last_ms;
static _Thread_local uint16_t counter;

void ap_uuid7(char out[AP_UUID_LEN]) {
    uint8_t b[16];
    ap_random(b, sizeof b);
    int64_t ms = ap_now_ms();
    if (ms <= last_ms) {
        ms = last_ms;
        counter++;
        if (counter > 0x0fff) { /* counter exhausted: borrow the next ms */
            ms = ++last_ms;
            counter = (uint16_t)(b[6] & 0x07);
        }
    } else {
        last_ms = ms;
        counter = (uint16_t)(((b[6] & 0x07) << 8) | b[7]);
    }
    b[0] = (uint8_t)(ms >> 40);
    b[1] = (uint8_t)(ms >> 32);
    b[2] = (uint8_t)(ms >> 24);
    b[3] = (uint8_t)(ms >> 16);
    b[4] = (uint8_t)(ms >> 8);
    b[5] = (uint8_t)ms;
    b[6] = (uint8_t)(0x70 | ((counter >> 8) & 0x0f));
    b[7] = (uint8_t)(counter & 0xff);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[b[i] >> 4];
        out[o++] = hx[b[i] & 15];
    }
    out[o] = '\0';
}

bool ap_uuid_valid(const char *s) {
    if (!s || strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}
