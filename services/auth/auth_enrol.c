/*
 * auth_enrol: TOTP enrolment from the portal, gated like Authelia 4.38's identity verification.
 *
 * A signed-in user asks for a one-time code; it goes through the notifier (auth_notify.c), never to
 * the page. The code (8 characters, 5 minutes, 5 tries) elevates that session, and only that
 * session, for 5 minutes; the elevation draws a new secret, shown as a QR code. The secret replaces
 * the user's old one only once a code from it was accepted (auth_enrol_confirm): until then the old
 * secret keeps working and nothing is written. One pending enrolment per user, a bounded table (the
 * oldest is dropped when full). Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <qrencode.h>

#include "auth.h"

#define ENROL_MAX 64
#define CODE_LEN 8
#define CODE_TTL_MS (5 * 60 * 1000)
#define ELEVATION_MS (5 * 60 * 1000)
#define CODE_TRIES 5

typedef struct {
    char user[AUTH_NAME_MAX + 1];
    uint8_t sid[AUTH_SID_BYTES]; /* the session this is bound to */
    uint8_t code_hash[SHA256_DIGEST_LENGTH];
    int64_t code_until, elevated_until, touched;
    int tries;
    uint8_t secret[20];
    int has_code, has_secret;
    int64_t last_step; /* of the pending secret: a confirming code is usable once */
} enrol_entry;

struct auth_enrol {
    enrol_entry v[ENROL_MAX];
};

auth_enrol *auth_enrol_new(void)
{
    return calloc(1, sizeof(auth_enrol));
}

void auth_enrol_free(auth_enrol *e)
{
    if (!e) return;
    OPENSSL_cleanse(e, sizeof(*e));
    free(e);
}

static enrol_entry *find(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], int create,
                         int64_t now)
{
    enrol_entry *oldest = &e->v[0];
    for (size_t i = 0; i < ENROL_MAX; i++) {
        enrol_entry *x = &e->v[i];
        if (x->user[0] && strcmp(x->user, user) == 0) {
            if (CRYPTO_memcmp(x->sid, sid, AUTH_SID_BYTES) == 0) return x;
            if (!create) return NULL;
            OPENSSL_cleanse(x, sizeof(*x)); /* another session of the user starts over */
            oldest = x;
            goto fill;
        }
        if (x->touched < oldest->touched) oldest = x;
    }
    if (!create) return NULL;
    OPENSSL_cleanse(oldest, sizeof(*oldest));
fill:
    snprintf(oldest->user, sizeof(oldest->user), "%s", user);
    memcpy(oldest->sid, sid, AUTH_SID_BYTES);
    oldest->touched = now;
    oldest->last_step = -1;
    return oldest;
}

int auth_enrol_new_code(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], int64_t now,
                        char *code, size_t codelen)
{
    static const char abc[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; /* 32: no 0/O, 1/I */
    uint8_t r[CODE_LEN];
    enrol_entry *x;
    if (codelen < CODE_LEN + 1 || RAND_bytes(r, sizeof(r)) != 1) return -1;
    if (!(x = find(e, user, sid, 1, now))) return -1;
    for (int i = 0; i < CODE_LEN; i++)
        code[i] = abc[r[i] & 31];
    code[CODE_LEN] = 0;
    SHA256((const unsigned char *)code, CODE_LEN, x->code_hash);
    x->code_until = now + CODE_TTL_MS;
    x->tries = 0;
    x->has_code = 1;
    x->touched = now;
    OPENSSL_cleanse(r, sizeof(r));
    return 0;
}

int auth_enrol_elevate(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], const char *code,
                       int64_t now)
{
    enrol_entry *x = find(e, user, sid, 0, now);
    uint8_t h[SHA256_DIGEST_LENGTH];
    char up[CODE_LEN + 1];
    size_t n = strlen(code), j = 0;
    if (!x || !x->has_code || now > x->code_until || x->tries >= CODE_TRIES) return -1;
    x->tries++;
    for (size_t i = 0; i < n && j < CODE_LEN; i++) /* as typed: spaces and case do not matter */
        if (code[i] != ' ' && code[i] != '-')
            up[j++] = (char)(code[i] >= 'a' && code[i] <= 'z' ? code[i] - 32 : code[i]);
    up[j] = 0;
    SHA256((const unsigned char *)up, j, h);
    OPENSSL_cleanse(up, sizeof(up));
    if (CRYPTO_memcmp(h, x->code_hash, sizeof(h)) != 0) return 0;
    x->has_code = 0; /* used once */
    if (RAND_bytes(x->secret, sizeof(x->secret)) != 1) return -1;
    x->has_secret = 1;
    x->tries = 0; /* now counts wrong codes of the new secret */
    x->last_step = -1;
    x->elevated_until = now + ELEVATION_MS;
    x->touched = now;
    return 1;
}

int auth_enrol_stage(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], int64_t now,
                     char *secret_b32, size_t b32len)
{
    enrol_entry *x = find(e, user, sid, 0, now);
    if (!x) return AUTH_ENROL_NONE;
    if (x->has_secret && now <= x->elevated_until) {
        if (auth_base32_encode(x->secret, sizeof(x->secret), secret_b32, b32len) < 0) return AUTH_ENROL_NONE;
        return AUTH_ENROL_ELEVATED;
    }
    if (x->has_code && now <= x->code_until && x->tries < CODE_TRIES) return AUTH_ENROL_CODE_SENT;
    return AUTH_ENROL_NONE;
}

int auth_enrol_confirm(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], const char *token,
                       int64_t now, const auth_config *cfg, char *secret_b32, size_t b32len, int64_t *step)
{
    enrol_entry *x = find(e, user, sid, 0, now);
    int rc;
    if (!x || !x->has_secret || now > x->elevated_until) return -1;
    rc = auth_totp_check(x->secret, sizeof(x->secret), token, now / 1000, cfg->totp_period, cfg->totp_skew,
                         cfg->totp_digits, cfg->totp_algo, &x->last_step);
    if (rc != AUTH_TOTP_OK) {
        if (++x->tries >= 2 * CODE_TRIES) { /* no guessing the new secret's codes: start over */
            OPENSSL_cleanse(x, sizeof(*x));
            return -1;
        }
        return rc == AUTH_TOTP_REUSED ? AUTH_TOTP_REUSED : AUTH_TOTP_WRONG;
    }
    if (auth_base32_encode(x->secret, sizeof(x->secret), secret_b32, b32len) < 0) return -1;
    *step = x->last_step;
    OPENSSL_cleanse(x, sizeof(*x)); /* done: the secret goes to the store, nowhere else */
    return AUTH_TOTP_OK;
}

char *auth_enrol_qr_svg(const char *text, int scale, size_t *len)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    char *out = NULL, *p;
    size_t cap, o = 0;
    int w, side, n;
    if (!qr) return NULL;
    w = qr->width;
    side = w + 8; /* a quiet zone of 4 modules each side */
    cap = 512 + (size_t)w * (size_t)w * 24;
    if (!(out = malloc(cap))) goto done;
    n = snprintf(
        out, cap,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"qr\" role=\"img\" aria-label=\"QR code of the "
        "otpauth URI\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">"
        "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
        side * scale, side * scale, side, side, side, side);
    o = (size_t)n;
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            if (qr->data[y * w + x] & 1) {
                p = out + o;
                n = snprintf(p, cap - o, "M%d %dh1v1h-1z", x + 4, y + 4);
                if (n < 0 || (size_t)n >= cap - o) {
                    free(out);
                    out = NULL;
                    goto done;
                }
                o += (size_t)n;
            }
    n = snprintf(out + o, cap - o, "\"/></svg>");
    if (n < 0 || (size_t)n >= cap - o) {
        free(out);
        out = NULL;
        goto done;
    }
    o += (size_t)n;
    *len = o;
done:
    QRcode_free(qr);
    return out;
}
