/*
 * xt_nkey: NATS nkeys (Ed25519 key pairs in NATS's text encoding), made with OpenSSL 3.0.
 *
 * Text form, as nats-server, nats.c and nsc read it: base32 (RFC 4648 alphabet, no padding) of
 *   public key: [type prefix byte][32-byte Ed25519 public key][CRC16 little-endian]   56 chars
 *   seed:       [seed prefix | type][32-byte Ed25519 private seed][CRC16 little-endian] 58 chars
 * The CRC is CRC-16/XMODEM (poly 0x1021, init 0) over everything before it. The first letter tells
 * the type: O operator, A account, U user, N server, C cluster; seeds start "S" + that letter.
 *
 * A seed is a secret: callers wipe keys with xt_nkey_wipe and never print or log seeds.
 */
#ifndef XT_NKEY_H
#define XT_NKEY_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    XT_NKEY_OPERATOR,
    XT_NKEY_ACCOUNT,
    XT_NKEY_USER,
    XT_NKEY_SERVER,
    XT_NKEY_CLUSTER,
} xt_nkey_type;

#define XT_NKEY_PUBLIC_LEN 56 /* text length, without the NUL */
#define XT_NKEY_SEED_LEN 58
#define XT_NKEY_SIG_LEN 64

typedef struct xt_nkey {
    xt_nkey_type type;
    unsigned char seed[32]; /* Ed25519 private seed (secret) */
    unsigned char pub[32];  /* Ed25519 public key */
} xt_nkey;

/* A new random key pair of `type` into *out. Returns 0, or -1 with err filled. */
int xt_nkey_create(xt_nkey_type type, xt_nkey *out, char *err, size_t errlen);

/* Decode a text seed ("SU...", "SA...", "SO...") into *out, deriving the public key. Refuses a
 * wrong length, bad base32, a CRC mismatch, a non-seed prefix or an unknown type, naming which.
 * Returns 0 or -1 with err filled (the seed itself is never copied into err). */
int xt_nkey_from_seed(const char *seed, xt_nkey *out, char *err, size_t errlen);

/* Write the text seed (58 chars + NUL) into out; outlen >= XT_NKEY_SEED_LEN + 1. Returns 0 or -1. */
int xt_nkey_seed_text(const xt_nkey *k, char *out, size_t outlen);

/* Write the text public key (56 chars + NUL) into out; outlen >= XT_NKEY_PUBLIC_LEN + 1. */
int xt_nkey_public_text(const xt_nkey *k, char *out, size_t outlen);

/* Decode a text public key: its type and the raw Ed25519 key. Returns 0 or -1 with err filled. */
int xt_nkey_decode_public(const char *text, xt_nkey_type *type, unsigned char raw[32], char *err,
                          size_t errlen);

/* Ed25519 signature of data (64 bytes into sig). Deterministic (RFC 8032): the same seed and data
 * give the bytes nats.c's nats_Sign gives. Returns 0 or -1 with err filled. */
int xt_nkey_sign(const xt_nkey *k, const void *data, size_t len, unsigned char sig[XT_NKEY_SIG_LEN],
                 char *err, size_t errlen);

/* 1 if sig is a valid signature of data by the text public key `pub`, else 0. */
int xt_nkey_verify(const char *pub, const void *data, size_t len, const unsigned char *sig, size_t siglen);

/* Zero the secret part of *k (safe on NULL). */
void xt_nkey_wipe(xt_nkey *k);

/* The one-letter name of a type ("operator", "account", ...). */
const char *xt_nkey_type_name(xt_nkey_type type);

/* CRC-16/XMODEM as nkeys computes it. */
uint16_t xt_nkey_crc16(const unsigned char *data, size_t len);

/* RFC 4648 base32 without padding; returns the text length or -1 if out is too small. */
long xt_base32_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
/* Decode base32 without padding (upper case); returns the byte count or -1 on a bad character or
 * overflow. Leftover bits of the last character are ignored, as Go's decoder (nkeys) does: the
 * CRC inside an nkey catches a changed character. */
long xt_base32_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
