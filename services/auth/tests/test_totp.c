/* auth_totp: RFC 6238 appendix B test vectors, the skew window, codes usable once, the store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"

static const uint8_t k1[] = "12345678901234567890";
static const uint8_t k256[] = "12345678901234567890123456789012";
static const uint8_t k512[] = "1234567890123456789012345678901234567890123456789012345678901234";

static void rfc6238_vectors(void **st)
{
    static const struct {
        int64_t t;
        uint32_t sha1, sha256, sha512;
    } v[] = {
        {59, 94287082, 46119246, 90693936},         {1111111109, 7081804, 68084774, 25091201},
        {1111111111, 14050471, 67062674, 99943326}, {1234567890, 89005924, 91819424, 93441116},
        {2000000000, 69279037, 90698825, 38618901}, {20000000000LL, 65353130, 77737706, 47863826},
    };
    size_t i;
    (void)st;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint64_t c = (uint64_t)(v[i].t / 30);
        assert_int_equal(auth_hotp(k1, 20, c, 8, AUTH_TOTP_SHA1), v[i].sha1);
        assert_int_equal(auth_hotp(k256, 32, c, 8, AUTH_TOTP_SHA256), v[i].sha256);
        assert_int_equal(auth_hotp(k512, 64, c, 8, AUTH_TOTP_SHA512), v[i].sha512);
    }
}

static void code_of(int64_t t, char out[8])
{
    snprintf(out, 8, "%06u", auth_hotp(k1, 20, (uint64_t)(t / 30), 6, AUTH_TOTP_SHA1));
}

static void window_and_reuse(void **st)
{
    char c[8];
    int64_t last = -1, now = 1111111111;
    (void)st;
    /* the current step */
    code_of(now, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 1);
    assert_int_equal(last, now / 30);
    /* the same code again: refused (usable once), and told apart from a wrong code */
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), AUTH_TOTP_REUSED);
    assert_int_equal(last, now / 30);
    /* the previous step is also at or before the last used one: refused */
    code_of(now - 30, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), AUTH_TOTP_REUSED);
    /* a wrong code stays wrong */
    code_of(now, c);
    c[0] = (char)(c[0] == '9' ? '0' : c[0] + 1);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), AUTH_TOTP_WRONG);
    /* the next step (skew 1): accepted once */
    code_of(now + 30, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 1);
    /* two steps away: outside the window */
    last = -1;
    code_of(now + 60, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
    code_of(now - 60, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
    /* skew 0: only the current step */
    code_of(now - 30, c);
    assert_int_equal(auth_totp_check(k1, 20, c, now, 30, 0, 6, AUTH_TOTP_SHA1, &last), 0);
    /* malformed codes */
    assert_int_equal(auth_totp_check(k1, 20, "12345", now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
    assert_int_equal(auth_totp_check(k1, 20, "1234567", now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
    assert_int_equal(auth_totp_check(k1, 20, "12a456", now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
    assert_int_equal(auth_totp_check(k1, 20, "", now, 30, 1, 6, AUTH_TOTP_SHA1, &last), 0);
}

static void uri(void **st)
{
    char out[512];
    (void)st;
    assert_int_equal(auth_totp_uri("xtask.fly.dev", "alice b", "JBSWY3DPEHPK3PXP", AUTH_TOTP_SHA1, 6, 30, out,
                                   sizeof(out)),
                     0);
    assert_string_equal(out,
                        "otpauth://totp/xtask.fly.dev:alice%20b?secret=JBSWY3DPEHPK3PXP&issuer=xtask.fly.dev"
                        "&algorithm=SHA1&digits=6&period=30");
    assert_int_equal(auth_totp_uri("x", "y", "JBSWY3DPEHPK3PXP", AUTH_TOTP_SHA1, 6, 30, out, 20), -1);
}

static void store(void **st)
{
    char dir[] = "/tmp/xt-totp-XXXXXX", path[256], err[256];
    auth_totp_store s;
    struct stat sb;
    auth_totp_entry *e;
    (void)st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/totp.yml", dir);
    /* missing file: empty store */
    assert_int_equal(auth_totp_store_load(path, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(auth_totp_store_set(path, "alice", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", err, sizeof(err)),
                     0);
    assert_int_equal(auth_totp_store_set(path, "bob", "JBSWY3DPEHPK3PXP", err, sizeof(err)), 0);
    assert_int_equal(auth_totp_store_set(path, "alice", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", err, sizeof(err)),
                     0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(auth_totp_store_load(path, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 2);
    e = auth_totp_store_find(&s, "alice");
    assert_non_null(e);
    assert_int_equal(e->keylen, 20);
    assert_memory_equal(e->key, k1, 20);
    assert_null(auth_totp_store_find(&s, "carol"));
    auth_totp_store_free(&s);
    /* names that could break the file are refused */
    assert_int_equal(auth_totp_store_set(path, "a: b", "JBSWY3DPEHPK3PXP", err, sizeof(err)), -1);
    assert_int_equal(auth_totp_store_set(path, "", "JBSWY3DPEHPK3PXP", err, sizeof(err)), -1);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(rfc6238_vectors), cmocka_unit_test(window_and_reuse),
                                       cmocka_unit_test(uri), cmocka_unit_test(store)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
