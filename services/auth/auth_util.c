/* auth_util: durations in Authelia's syntax, base32, hex, constant-time compare, clocks. */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "auth.h"

int auth_duration_parse(const char *s, int allow_neg, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1},       {"s", 1000},           {"m", 60000},           {"h", 3600000},
                 {"d", 86400000}, {"w", 7 * 86400000LL}, {"M", 30 * 86400000LL}, {"y", 365 * 86400000LL}};
    int64_t total = 0;
    const char *p = s;
    int any = 0;

    if (s == NULL || *s == '\0') return -1;
    if (allow_neg && strcmp(s, "-1") == 0) {
        *out_ms = -1;
        return 0;
    }
    /* a bare number is seconds */
    for (p = s; *p && isdigit((unsigned char)*p); p++)
        ;
    if (*p == '\0') {
        int64_t v = 0;
        for (p = s; *p; p++) {
            if (v > (INT64_MAX / 1000 - 9) / 10) return -1;
            v = v * 10 + (*p - '0');
        }
        *out_ms = v * 1000;
        return 0;
    }
    p = s;
    while (*p) {
        int64_t v = 0;
        size_t i, best = 0, bestlen = 0;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) {
            if (v > INT64_MAX / 10 - 9) return -1;
            v = v * 10 + (*p++ - '0');
        }
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ul = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, ul) == 0 && ul > bestlen) {
                best = i;
                bestlen = ul;
            }
        }
        if (bestlen == 0) return -1;
        p += bestlen;
        if (v != 0 && units[best].ms > INT64_MAX / v) return -1;
        if (total > INT64_MAX - v * units[best].ms) return -1;
        total += v * units[best].ms;
        any = 1;
    }
    if (!any) return -1;
    *out_ms = total;
    return 0;
}

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

long auth_base32_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0, i;
    uint32_t buf = 0;
    int bits = 0;

    for (i = 0; i < len; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            if (o + 1 >= outlen) return -1;
            out[o++] = b32_alphabet[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) {
        if (o + 1 >= outlen) return -1;
        out[o++] = b32_alphabet[(buf << (5 - bits)) & 31];
    }
    if (o >= outlen) return -1;
    out[o] = '\0';
    return (long)o;
}

long auth_base32_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
    size_t o = 0, i;
    uint32_t buf = 0;
    int bits = 0;

    for (i = 0; i < len; i++) {
        int c = toupper((unsigned char)in[i]), v;
        const char *pos;
        if (c == '=') break;
        if (c == ' ' || c == '-') continue;
        pos = c ? strchr(b32_alphabet, c) : NULL;
        if (pos == NULL) return -1;
        v = (int)(pos - b32_alphabet);
        buf = (buf << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (o >= outlen) return -1;
            out[o++] = (uint8_t)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    for (; i < len; i++)
        if (in[i] != '=') return -1;
    return (long)o;
}

void auth_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int auth_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
    size_t i;
    if (inlen != 2 * outlen) return -1;
    for (i = 0; i < outlen; i++) {
        int hi = hexval((unsigned char)in[2 * i]), lo = hexval((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int auth_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    size_t i;
    if (alen != blen) return 0;
    for (i = 0; i < alen; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

int64_t auth_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t auth_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
