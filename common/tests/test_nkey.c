/* Unit tests for xt_nkey: encodings round-trip, damaged keys are refused, and our Ed25519
 * signatures are the bytes nats.c's nats_Sign makes from the same seed (an independent decoder of
 * the seed format) and verify with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <nats/nats.h>
#include <stdlib.h>
#include <string.h>

#include "xt_nkey.h"

static void test_roundtrip(void **state)
{
    (void)state;
    static const struct {
        xt_nkey_type type;
        char pub0, seed1;
    } types[] = {{XT_NKEY_OPERATOR, 'O', 'O'},
                 {XT_NKEY_ACCOUNT, 'A', 'A'},
                 {XT_NKEY_USER, 'U', 'U'},
                 {XT_NKEY_SERVER, 'N', 'N'},
                 {XT_NKEY_CLUSTER, 'C', 'C'}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        xt_nkey k, back;
        char err[128], seed[XT_NKEY_SEED_LEN + 1], pub[XT_NKEY_PUBLIC_LEN + 1], pub2[XT_NKEY_PUBLIC_LEN + 1];
        assert_int_equal(xt_nkey_create(types[i].type, &k, err, sizeof(err)), 0);
        assert_int_equal(xt_nkey_seed_text(&k, seed, sizeof(seed)), 0);
        assert_int_equal(xt_nkey_public_text(&k, pub, sizeof(pub)), 0);
        assert_int_equal(strlen(seed), XT_NKEY_SEED_LEN);
        assert_int_equal(strlen(pub), XT_NKEY_PUBLIC_LEN);
        assert_int_equal(seed[0], 'S');
        assert_int_equal(seed[1], types[i].seed1);
        assert_int_equal(pub[0], types[i].pub0);
        assert_int_equal(xt_nkey_from_seed(seed, &back, err, sizeof(err)), 0);
        assert_int_equal(back.type, types[i].type);
        assert_memory_equal(back.seed, k.seed, 32);
        assert_int_equal(xt_nkey_public_text(&back, pub2, sizeof(pub2)), 0);
        assert_string_equal(pub, pub2);
        xt_nkey_type t;
        unsigned char raw[32];
        assert_int_equal(xt_nkey_decode_public(pub, &t, raw, err, sizeof(err)), 0);
        assert_int_equal(t, types[i].type);
        assert_memory_equal(raw, k.pub, 32);
        xt_nkey_wipe(&k);
        xt_nkey_wipe(&back);
    }
}

static void test_crc_and_garbage_refused(void **state)
{
    (void)state;
    xt_nkey k, back;
    char err[128], seed[XT_NKEY_SEED_LEN + 1], pub[XT_NKEY_PUBLIC_LEN + 1];
    assert_int_equal(xt_nkey_create(XT_NKEY_USER, &k, err, sizeof(err)), 0);
    xt_nkey_seed_text(&k, seed, sizeof(seed));
    xt_nkey_public_text(&k, pub, sizeof(pub));
    /* every single changed character (within the alphabet) is caught by the CRC */
    for (size_t i = 2; i < XT_NKEY_SEED_LEN - 1; i++) {
        char bad[sizeof(seed)];
        memcpy(bad, seed, sizeof(seed));
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_int_equal(xt_nkey_from_seed(bad, &back, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "CRC16"));
        /* the message never carries the seed */
        assert_null(strstr(err, bad + 4));
    }
    char badpub[sizeof(pub)];
    memcpy(badpub, pub, sizeof(pub));
    badpub[10] = badpub[10] == 'Z' ? 'Y' : 'Z';
    xt_nkey_type t;
    unsigned char raw[32];
    assert_int_equal(xt_nkey_decode_public(badpub, &t, raw, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "CRC16"));
    /* wrong length, bad characters, a public key given as a seed */
    assert_int_equal(xt_nkey_from_seed("SUABC", &back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "characters"));
    char lower[sizeof(seed)];
    memcpy(lower, seed, sizeof(seed));
    lower[5] = 'a';
    assert_int_equal(xt_nkey_from_seed(lower, &back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "base32"));
    assert_int_equal(xt_nkey_from_seed(NULL, &back, err, sizeof(err)), -1);
    assert_int_equal(xt_nkey_decode_public(seed, &t, raw, err, sizeof(err)), -1);
    xt_nkey_wipe(&k);
}

static void test_sign_matches_nats_c(void **state)
{
    (void)state;
    /* nats_Sign refuses an empty input (NATS_INVALID_ARG): its callers always sign a nonce or JWT */
    static const char *const inputs[] = {"x", "nonce-1234", "a longer input, as a JWT header.payload is"};
    for (int round = 0; round < 5; round++) {
        xt_nkey k;
        char err[128], seed[XT_NKEY_SEED_LEN + 1], pub[XT_NKEY_PUBLIC_LEN + 1];
        assert_int_equal(xt_nkey_create(XT_NKEY_USER, &k, err, sizeof(err)), 0);
        xt_nkey_seed_text(&k, seed, sizeof(seed));
        xt_nkey_public_text(&k, pub, sizeof(pub));
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
            unsigned char ours[XT_NKEY_SIG_LEN];
            unsigned char *theirs = NULL;
            int theirs_len = 0;
            assert_int_equal(xt_nkey_sign(&k, inputs[i], strlen(inputs[i]), ours, err, sizeof(err)), 0);
            natsStatus s = nats_Sign(seed, inputs[i], &theirs, &theirs_len);
            if (s != NATS_OK) fail_msg("nats_Sign: %s", nats_GetLastError(NULL));
            assert_int_equal(theirs_len, XT_NKEY_SIG_LEN);
            assert_memory_equal(ours, theirs, XT_NKEY_SIG_LEN);
            free(theirs);
            assert_true(xt_nkey_verify(pub, inputs[i], strlen(inputs[i]), ours, sizeof(ours)));
            ours[3] ^= 1;
            assert_false(xt_nkey_verify(pub, inputs[i], strlen(inputs[i]), ours, sizeof(ours)));
        }
        xt_nkey_wipe(&k);
    }
}

static void test_base32(void **state)
{
    (void)state;
    /* RFC 4648 test vectors, padding removed */
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},
             {"f", "MY"},
             {"fo", "MZXQ"},
             {"foo", "MZXW6"},
             {"foob", "MZXW6YQ"},
             {"fooba", "MZXW6YTB"},
             {"foobar", "MZXW6YTBOI"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[32];
        unsigned char back[32];
        assert_int_equal(xt_base32_encode((const unsigned char *)v[i].in, strlen(v[i].in), out, sizeof(out)),
                         (long)strlen(v[i].out));
        assert_string_equal(out, v[i].out);
        assert_int_equal(xt_base32_decode(out, strlen(out), back, sizeof(back)), (long)strlen(v[i].in));
        assert_memory_equal(back, v[i].in, strlen(v[i].in));
    }
    char small[4];
    assert_int_equal(xt_base32_encode((const unsigned char *)"foobar", 6, small, sizeof(small)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_crc_and_garbage_refused),
        cmocka_unit_test(test_sign_matches_nats_c),
        cmocka_unit_test(test_base32),
    };
    /* nats_Sign's base32 table is set up by the library's initialization */
    if (nats_Open(-1) != NATS_OK) return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nats_Close();
    return rc;
}
