/*
 * time.c - clocks and RFC 3339.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define MAX_MS 253402300799999LL     /* 9999-12-31T23:59:59.999Z */

int64_t ap_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ap_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ap_time_format(int64_t ms, char out[AP_TIME_LEN]) {
    if (ms < MIN_MS) ms = MIN_MS; /* beyond four-digit years gmtime_r can fail */
    if (ms > MAX_MS) ms = MAX_MS;
    time_t secs = (time_t)(ms / 1000);
    int msec = (int)(ms % 1000);
    if (msec < 0) {
        msec += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ" by hand: this runs for every metered call,
     * and snprintf costs ten times as much; the clamp above keeps the year
     * to four digits. */
    int f[7] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                msec};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *o = out;
    for (int i = 0; i < 7; i++) {
        for (int w = width[i] - 1, v = f[i]; w >= 0; w--, v /= 10) o[w] = (char)('0' + v % 10);
        o += width[i];
        *o++ = sep[i];
    }
    *o = '\0';
}

/* Days from civil date (proleptic Gregorian), Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool ap_time_parse(const char *s, int64_t *ms) {
    int Y, M, D, h, m, sec;
    if (strlen(s) < 20) return false;
    if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
        !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return false;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = Y % 4 == 0 && (Y % 100 != 0 || Y % 400 == 0);
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap) ||
        h > 23 || m > 59 || sec > 60)
        return false;
    const char *p = s + 19;
    int frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 3) frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0) return false;
        for (; n < 3; n++) frac *= 10;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
            om > 59)
            return false;
        offset = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p) return false;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t t = ((days * 24 + h) * 60 + m) * 60 + sec - (int64_t)offset * 60;
    t = t * 1000 + frac;
    /* Only instants ap_time_format can write back (years 0000-9999). */
    if (t < MIN_MS || t > MAX_MS) return false;
    *ms = t;
    return true;
}
