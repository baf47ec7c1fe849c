/*
 * crypto_lite: the nine OpenSSL functions manifest.c calls, for the xtask-supervisor binary only.
 *
 * Why: mapping libcrypto costs the supervisor 1.5 MB of RSS at exec and 3.5 MB once EVP has loaded
 * its provider (measured), against a budget of 1.5 MB for the whole process. manifest.c uses
 * OpenSSL for a SHA-256 digest of each service (change detection on reload), base64 and RAND_bytes
 * for generated secrets. This file gives the binary the same functions with the same contracts:
 *   - EVP_* SHA-256 and EVP_EncodeBlock: sha256.c (checked against OpenSSL in test_crypto_lite);
 *   - RAND_bytes: OpenSSL's own RAND_bytes, from libcrypto loaded with dlopen on first use. The
 *     supervisor only loads secrets in a short-lived child process (run.c), so libcrypto is never
 *     mapped into the long-running supervisor.
 * The unit tests of manifest.c link the real OpenSSL; only the supervisor binary links this file,
 * and it does not link libcrypto (so nothing else in the process can see these definitions).
 */
#include "sv_crypto.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* EVP_sha256() returns a token compared by address; EVP_MD is opaque to callers. */
static const char sha256_token = 's';

struct evp_md_ctx_st {
    sv_sha256_ctx c;
};

const EVP_MD *EVP_sha256(void)
{
    return (const EVP_MD *)&sha256_token;
}

EVP_MD_CTX *EVP_MD_CTX_new(void)
{
    return calloc(1, sizeof(EVP_MD_CTX));
}

void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
{
    if (ctx != NULL) {
        OPENSSL_cleanse(ctx, sizeof(*ctx));
        free(ctx);
    }
}

int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
{
    (void)impl;
    if (ctx == NULL || type != (const EVP_MD *)&sha256_token) return 0;
    sv_sha256_init(&ctx->c);
    return 1;
}

int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
{
    if (ctx == NULL) return 0;
    sv_sha256_update(&ctx->c, d, cnt);
    return 1;
}

int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)
{
    if (ctx == NULL) return 0;
    sv_sha256_final(&ctx->c, md);
    if (s != NULL) *s = 32;
    return 1;
}

int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    return n < 0 ? -1 : sv_base64((char *)t, f, (size_t)n);
}

void OPENSSL_cleanse(void *ptr, size_t len)
{
    if (ptr != NULL) explicit_bzero(ptr, len);
}

int RAND_bytes(unsigned char *buf, int num)
{
    static int (*real)(unsigned char *, int);
    if (real == NULL) {
        void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) return 0;
        *(void **)&real = dlsym(h, "RAND_bytes");
        if (real == NULL) return 0;
    }
    return real(buf, num);
}
