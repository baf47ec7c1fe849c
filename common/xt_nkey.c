/* xt_nkey: NATS nkeys with OpenSSL 3.0 Ed25519 (contract in xt_nkey.h). */
#include "xt_nkey.h"

#include "xt_radix.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* Prefix bytes of nkeys (the first base32 letter is prefix >> 3). */
enum {
    PREFIX_SEED = 18 << 3,     /* 'S' */
    PREFIX_OPERATOR = 14 << 3, /* 'O' */
    PREFIX_ACCOUNT = 0,        /* 'A' */
    PREFIX_USER = 20 << 3,     /* 'U' */
    PREFIX_SERVER = 13 << 3,   /* 'N' */
    PREFIX_CLUSTER = 2 << 3,   /* 'C' */
};

static const struct {
    xt_nkey_type type;
    unsigned char prefix;
    const char *name;
} prefixes[] = {
    {XT_NKEY_OPERATOR, PREFIX_OPERATOR, "operator"},
    {XT_NKEY_ACCOUNT, PREFIX_ACCOUNT, "account"},
    {XT_NKEY_USER, PREFIX_USER, "user"},
    {XT_NKEY_SERVER, PREFIX_SERVER, "server"},
    {XT_NKEY_CLUSTER, PREFIX_CLUSTER, "cluster"},
};

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int prefix_of(xt_nkey_type type, unsigned char *out)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (prefixes[i].type == type) {
            *out = prefixes[i].prefix;
            return 0;
        }
    }
    return -1;
}

static int type_of(unsigned char prefix, xt_nkey_type *out)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (prefixes[i].prefix == prefix) {
            *out = prefixes[i].type;
            return 0;
        }
    }
    return -1;
}

const char *xt_nkey_type_name(xt_nkey_type type)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (prefixes[i].type == type) return prefixes[i].name;
    return "unknown";
}

uint16_t xt_nkey_crc16(const unsigned char *data, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

long xt_base32_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    return xt_radix_encode(in, len, b32_alphabet, 5, out, outlen);
}

long xt_base32_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    return xt_radix_decode(in, len, b32_alphabet, 5, out, outlen);
}

static void set_err(char *err, size_t errlen, const char *what)
{
    if (err == NULL || errlen == 0) return;
    unsigned long e = ERR_get_error();
    if (e != 0) {
        char ossl[160];
        ERR_error_string_n(e, ossl, sizeof(ossl));
        snprintf(err, errlen, "%s: %s", what, ossl);
        ERR_clear_error();
    } else {
        snprintf(err, errlen, "%s", what);
    }
}

/* The Ed25519 public key of a 32-byte seed. */
static int derive_public(const unsigned char seed[32], unsigned char pub[32], char *err, size_t errlen)
{
    int rc = -1;
    size_t plen = 32;
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    if (pk == NULL || EVP_PKEY_get_raw_public_key(pk, pub, &plen) != 1 || plen != 32) {
        set_err(err, errlen, "Ed25519 key");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(pk);
    return rc;
}

int xt_nkey_create(xt_nkey_type type, xt_nkey *out, char *err, size_t errlen)
{
    unsigned char p;
    memset(out, 0, sizeof(*out));
    if (prefix_of(type, &p) != 0) {
        set_err(err, errlen, "unknown nkey type");
        return -1;
    }
    out->type = type;
    if (RAND_priv_bytes(out->seed, sizeof(out->seed)) != 1) {
        set_err(err, errlen, "random seed");
        return -1;
    }
    if (derive_public(out->seed, out->pub, err, errlen) != 0) {
        xt_nkey_wipe(out);
        return -1;
    }
    return 0;
}

/* [prefix bytes][32 bytes][crc16 LE] -> base32 text. */
static int encode_with_crc(const unsigned char *head, size_t hlen, const unsigned char key[32], char *out,
                           size_t outlen)
{
    unsigned char raw[2 + 32 + 2];
    memcpy(raw, head, hlen);
    memcpy(raw + hlen, key, 32);
    uint16_t crc = xt_nkey_crc16(raw, hlen + 32);
    raw[hlen + 32] = (unsigned char)(crc & 0xff);
    raw[hlen + 33] = (unsigned char)(crc >> 8);
    long n = xt_base32_encode(raw, hlen + 34, out, outlen);
    OPENSSL_cleanse(raw, sizeof(raw));
    return n < 0 ? -1 : 0;
}

int xt_nkey_seed_text(const xt_nkey *k, char *out, size_t outlen)
{
    unsigned char p;
    if (prefix_of(k->type, &p) != 0 || outlen < XT_NKEY_SEED_LEN + 1) return -1;
    unsigned char head[2] = {(unsigned char)(PREFIX_SEED | (p >> 5)), (unsigned char)((p & 31) << 3)};
    return encode_with_crc(head, 2, k->seed, out, outlen);
}

int xt_nkey_public_text(const xt_nkey *k, char *out, size_t outlen)
{
    unsigned char p;
    if (prefix_of(k->type, &p) != 0 || outlen < XT_NKEY_PUBLIC_LEN + 1) return -1;
    return encode_with_crc(&p, 1, k->pub, out, outlen);
}

/* base32 text of the expected length -> raw bytes with a checked CRC. */
static int decode_checked(const char *text, size_t want_chars, unsigned char *raw, size_t rawlen,
                          const char *what, char *err, size_t errlen)
{
    char msg[96];
    size_t len = text ? strnlen(text, want_chars + 1) : 0;
    if (len != want_chars) {
        snprintf(msg, sizeof(msg), "%s: %zu characters, want %zu", what, len, want_chars);
        set_err(err, errlen, msg);
        return -1;
    }
    if (xt_base32_decode(text, len, raw, rawlen) != (long)rawlen) {
        snprintf(msg, sizeof(msg), "%s: not base32 (A-Z, 2-7)", what);
        set_err(err, errlen, msg);
        return -1;
    }
    uint16_t crc = (uint16_t)(raw[rawlen - 2] | (raw[rawlen - 1] << 8));
    if (xt_nkey_crc16(raw, rawlen - 2) != crc) {
        snprintf(msg, sizeof(msg), "%s: checksum (CRC16) mismatch", what);
        set_err(err, errlen, msg);
        return -1;
    }
    return 0;
}

int xt_nkey_from_seed(const char *seed, xt_nkey *out, char *err, size_t errlen)
{
    unsigned char raw[36];
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (decode_checked(seed, XT_NKEY_SEED_LEN, raw, sizeof(raw), "nkey seed", err, errlen) != 0) goto out;
    if ((raw[0] & 0xf8) != PREFIX_SEED) {
        set_err(err, errlen, "nkey seed: not a seed (want S...)");
        goto out;
    }
    unsigned char p = (unsigned char)(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3));
    if (type_of(p, &out->type) != 0) {
        set_err(err, errlen, "nkey seed: unknown key type");
        goto out;
    }
    memcpy(out->seed, raw + 2, 32);
    if (derive_public(out->seed, out->pub, err, errlen) != 0) goto out;
    rc = 0;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    if (rc != 0) xt_nkey_wipe(out);
    return rc;
}

int xt_nkey_decode_public(const char *text, xt_nkey_type *type, unsigned char raw[32], char *err,
                          size_t errlen)
{
    unsigned char buf[35];
    if (decode_checked(text, XT_NKEY_PUBLIC_LEN, buf, sizeof(buf), "nkey public key", err, errlen) != 0)
        return -1;
    if (type_of(buf[0], type) != 0) {
        set_err(err, errlen, "nkey public key: unknown prefix");
        return -1;
    }
    memcpy(raw, buf + 1, 32);
    return 0;
}

int xt_nkey_sign(const xt_nkey *k, const void *data, size_t len, unsigned char sig[XT_NKEY_SIG_LEN],
                 char *err, size_t errlen)
{
    int rc = -1;
    size_t slen = XT_NKEY_SIG_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k->seed, 32);
    if (ctx == NULL || pk == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) != 1 ||
        EVP_DigestSign(ctx, sig, &slen, data, len) != 1 || slen != XT_NKEY_SIG_LEN) {
        set_err(err, errlen, "Ed25519 sign");
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}

int xt_nkey_verify(const char *pub, const void *data, size_t len, const unsigned char *sig, size_t siglen)
{
    unsigned char raw[32];
    xt_nkey_type t;
    int ok = 0;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    if (siglen != XT_NKEY_SIG_LEN || xt_nkey_decode_public(pub, &t, raw, NULL, 0) != 0) goto out;
    ctx = EVP_MD_CTX_new();
    pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    if (ctx == NULL || pk == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) != 1) goto out;
    ok = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

void xt_nkey_wipe(xt_nkey *k)
{
    if (k != NULL) OPENSSL_cleanse(k->seed, sizeof(k->seed));
}
