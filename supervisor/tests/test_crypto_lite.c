/* Unit tests: the built-in SHA-256 and base64 (sha256.c) give OpenSSL's answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sv_crypto.h"

static void ours(const unsigned char *p, size_t n, size_t chunk, unsigned char out[32])
{
    sv_sha256_ctx c;
    sv_sha256_init(&c);
    for (size_t off = 0; off < n; off += chunk)
        sv_sha256_update(&c, p + off, n - off < chunk ? n - off : chunk);
    sv_sha256_final(&c, out);
}

static void test_sha256_known_vectors(void **state)
{
    (void)state;
    unsigned char md[32];
    static const unsigned char empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                                            0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                                            0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    ours((const unsigned char *)"", 0, 1, md);
    assert_memory_equal(md, empty, 32);
    static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                          0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                          0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    ours((const unsigned char *)"abc", 3, 3, md);
    assert_memory_equal(md, abc, 32);
}

static void test_sha256_matches_openssl(void **state)
{
    (void)state;
    unsigned char buf[1000], a[32], b[32];
    unsigned int blen;
    RAND_bytes(buf, sizeof(buf));
    for (size_t n = 0; n <= sizeof(buf); n += (n < 130 ? 1 : 97)) {
        for (size_t chunk = 1; chunk <= 129; chunk += 64) {
            ours(buf, n, chunk, a);
            EVP_MD_CTX *d = EVP_MD_CTX_new();
            EVP_DigestInit_ex(d, EVP_sha256(), NULL);
            EVP_DigestUpdate(d, buf, n);
            EVP_DigestFinal_ex(d, b, &blen);
            EVP_MD_CTX_free(d);
            assert_int_equal(blen, 32);
            assert_memory_equal(a, b, 32);
        }
    }
}

static void test_base64_matches_openssl(void **state)
{
    (void)state;
    unsigned char in[100];
    char a[200];
    unsigned char b[200];
    RAND_bytes(in, sizeof(in));
    for (int n = 0; n <= 100; n++) {
        int la = sv_base64(a, in, (size_t)n);
        int lb = EVP_EncodeBlock(b, in, n);
        assert_int_equal(la, lb);
        assert_string_equal(a, (char *)b);
    }
    assert_int_equal(sv_base64(a, (const unsigned char *)"foob", 4), 8);
    assert_string_equal(a, "Zm9vYg==");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_vectors),
        cmocka_unit_test(test_sha256_matches_openssl),
        cmocka_unit_test(test_base64_matches_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
