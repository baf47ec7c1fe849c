/* common/xt_nkey.c and xt_jwt.c: nkey seeds and public keys, NATS JWTs, base32 and base64url, as
 * xtask-bus reads them from its directory and from the region bundle (XTASK_BUS_BUNDLE). Properties:
 * what decodes re-encodes to something that decodes to the same bytes; nothing is read or written
 * out of bounds; a JWT that decodes is an object with a `nats` object. */
#include "fuzz.h"
#include "xt_jwt.h"
#include "xt_nkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_str(data, size);
    char err[256], text[128];
    unsigned char raw[4096], again[4096];

    xt_nkey k;
    if (xt_nkey_from_seed(s, &k, err, sizeof(err)) == 0) {
        xt_nkey k2;
        if (xt_nkey_seed_text(&k, text, sizeof(text)) != 0) abort();
        if (xt_nkey_from_seed(text, &k2, err, sizeof(err)) != 0) abort();
        if (k2.type != k.type || memcmp(k2.seed, k.seed, 32) != 0 || memcmp(k2.pub, k.pub, 32) != 0) abort();
        xt_nkey_wipe(&k2);
        xt_nkey_wipe(&k);
    }
    xt_nkey_type t;
    unsigned char pub[32];
    if (xt_nkey_decode_public(s, &t, pub, err, sizeof(err)) == 0) {
        xt_nkey p = {.type = t};
        memcpy(p.pub, pub, 32);
        if (xt_nkey_public_text(&p, text, sizeof(text)) != 0) abort();
        xt_nkey_type t2;
        unsigned char pub2[32];
        if (xt_nkey_decode_public(text, &t2, pub2, err, sizeof(err)) != 0 || t2 != t ||
            memcmp(pub, pub2, 32) != 0)
            abort();
    }

    json_t *claims = xt_jwt_decode(s, 0, err, sizeof(err));
    if (claims != NULL && (!json_is_object(claims) || !json_is_object(json_object_get(claims, "nats"))))
        abort();
    json_decref(claims);

    size_t len = strlen(s);
    char *enc = malloc(len * 2 + 8);
    if (enc == NULL) abort();
    long n = xt_base32_decode(s, len, raw, sizeof(raw));
    if (n >= 0) {
        if (xt_base32_encode(raw, (size_t)n, enc, len * 2 + 8) < 0) abort();
        if (xt_base32_decode(enc, strlen(enc), again, sizeof(again)) != n ||
            memcmp(raw, again, (size_t)n) != 0)
            abort();
    }
    n = xt_b64url_decode(s, len, raw, sizeof(raw));
    if (n >= 0) {
        if (xt_b64url_encode(raw, (size_t)n, enc, len * 2 + 8) < 0) abort();
        if (xt_b64url_decode(enc, strlen(enc), again, sizeof(again)) != n ||
            memcmp(raw, again, (size_t)n) != 0)
            abort();
    }
    free(enc);
    free(s);
    return 0;
}
