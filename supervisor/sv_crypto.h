/*
 * sv_crypto: what the supervisor needs of OpenSSL without mapping libcrypto into the long-running
 * process (libcrypto costs 1.5-3.5 MB of RSS there, against a 1.5 MB budget for the whole
 * supervisor). See crypto_lite.c.
 */
#ifndef XT_SV_CRYPTO_H
#define XT_SV_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

typedef struct sv_sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t nbuf;
} sv_sha256_ctx;

void sv_sha256_init(sv_sha256_ctx *c);
void sv_sha256_update(sv_sha256_ctx *c, const void *data, size_t n);
void sv_sha256_final(sv_sha256_ctx *c, unsigned char out[32]);
/* Standard base64 with padding into out (4*ceil(n/3)+1 bytes), NUL-terminated; returns the length
 * (EVP_EncodeBlock's contract). */
int sv_base64(char *out, const unsigned char *in, size_t n);

#endif
