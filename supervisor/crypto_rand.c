/*
 * crypto_rand: RAND_bytes for the static xtask-supervisor binary, from libcrypto.so loaded with
 * dlopen on first use.
 *
 * Why: the rest of what manifest.c calls from OpenSSL (SHA256_*, EVP_EncodeBlock, OPENSSL_cleanse)
 * comes from libcrypto.a, a few KB of code. OpenSSL's RAND_bytes would pull in its whole DRBG and
 * provider framework (about 4 MB of code in the binary): never run in the supervisor itself, but
 * the page cache maps it in around the code that does run, which costs 0.7 MB of RSS (measured,
 * README.md "Memory"). Secrets are only generated in the short-lived child process that loads
 * them (run.c), so libcrypto.so is never mapped into the long-running supervisor. Because this
 * object defines RAND_bytes, the linker takes nothing for it from libcrypto.a.
 */
#include <dlfcn.h>
#include <stddef.h>

#include <openssl/rand.h>

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
