/* Unit tests for xt_jwt: claims as nats-server reads them, signatures that verify, tampering and
 * expiry refused, and the .creds layout. The real nats-server accepting our JWTs is tested in
 * integration-tests/bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xt_jwt.h"

static void test_b64url(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"\xfb\xff", "-_8"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[32];
        unsigned char back[32];
        assert_int_equal(xt_b64url_encode((const unsigned char *)v[i].in, strlen(v[i].in), out, sizeof(out)),
                         (long)strlen(v[i].out));
        assert_string_equal(out, v[i].out);
        assert_int_equal(xt_b64url_decode(out, strlen(out), back, sizeof(back)), (long)strlen(v[i].in));
        assert_memory_equal(back, v[i].in, strlen(v[i].in));
    }
    unsigned char b[8];
    assert_int_equal(xt_b64url_decode("a+b=", 4, b, sizeof(b)), -1);
}

static void test_user_jwt(void **state)
{
    (void)state;
    xt_nkey acct, user;
    char err[256], apub[64], upub[64];
    assert_int_equal(xt_nkey_create(XT_NKEY_ACCOUNT, &acct, err, sizeof(err)), 0);
    assert_int_equal(xt_nkey_create(XT_NKEY_USER, &user, err, sizeof(err)), 0);
    xt_nkey_public_text(&acct, apub, sizeof(apub));
    xt_nkey_public_text(&user, upub, sizeof(upub));
    json_t *perm = json_pack("{s{s[s]} s{s[s] s[s]} s{si}}", "pub", "allow", "xtask.>", "sub", "allow",
                             "_INBOX.>", "deny", "$KV.>", "resp", "max", 1);
    int64_t exp = (int64_t)time(NULL) + 3600;
    json_t *c = xt_jwt_user_claims("alice", upub, perm, exp, NULL);
    char *jwt = xt_jwt_encode(c, &acct, err, sizeof(err));
    assert_non_null(jwt);
    json_t *back = xt_jwt_decode(jwt, (int64_t)time(NULL), err, sizeof(err));
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "iss")), apub);
    assert_string_equal(json_string_value(json_object_get(back, "sub")), upub);
    assert_string_equal(json_string_value(json_object_get(back, "name")), "alice");
    assert_int_equal(json_integer_value(json_object_get(back, "exp")), exp);
    assert_non_null(json_string_value(json_object_get(back, "jti")));
    json_t *nats = json_object_get(back, "nats");
    assert_string_equal(json_string_value(json_object_get(nats, "type")), "user");
    assert_int_equal(json_integer_value(json_object_get(nats, "version")), 2);
    assert_true(json_equal(json_object_get(nats, "pub"), json_object_get(perm, "pub")));
    assert_int_equal(json_integer_value(json_object_get(nats, "subs")), -1);
    json_decref(back);

    /* expired: refused when checked against a later time */
    assert_null(xt_jwt_decode(jwt, exp + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "expired"));

    /* any changed character of the claims or signature is refused */
    size_t len = strlen(jwt);
    char *dot2 = strrchr(jwt, '.');
    size_t positions[] = {40, (size_t)(dot2 - jwt) - 5, len - 3};
    for (size_t i = 0; i < 3; i++) {
        char *t = strdup(jwt);
        t[positions[i]] = t[positions[i]] == 'A' ? 'B' : 'A';
        json_t *x = xt_jwt_decode(t, 0, err, sizeof(err));
        assert_null(x);
        free(t);
    }
    /* signed by another key than iss says */
    xt_nkey other;
    xt_nkey_create(XT_NKEY_ACCOUNT, &other, err, sizeof(err));
    json_t *c2 = xt_jwt_user_claims("mallory", upub, NULL, 0, NULL);
    char *jwt2 = xt_jwt_encode(c2, &other, err, sizeof(err));
    json_t *x = xt_jwt_decode(jwt2, 0, err, sizeof(err));
    assert_non_null(x);
    assert_string_not_equal(json_string_value(json_object_get(x, "iss")), apub);
    json_decref(x);

    /* the .creds file: JWT and seed between the delimiters nats.c looks for */
    char seed[XT_NKEY_SEED_LEN + 1], creds[4096];
    xt_nkey_seed_text(&user, seed, sizeof(seed));
    long n = xt_jwt_creds(jwt, seed, creds, sizeof(creds));
    assert_true(n > 0);
    assert_non_null(strstr(creds, "-----BEGIN NATS USER JWT-----\n"));
    assert_non_null(strstr(creds, jwt));
    assert_non_null(strstr(creds, "-----BEGIN USER NKEY SEED-----\n"));
    assert_non_null(strstr(creds, seed));
    char tiny[64];
    assert_int_equal(xt_jwt_creds(jwt, seed, tiny, sizeof(tiny)), -1);

    free(jwt);
    free(jwt2);
    json_decref(c);
    json_decref(c2);
    json_decref(perm);
    xt_nkey_wipe(&acct);
    xt_nkey_wipe(&user);
    xt_nkey_wipe(&other);
}

static void test_operator_and_account(void **state)
{
    (void)state;
    xt_nkey op, sys, acct;
    char err[256], opub[64], spub[64], apub[64];
    xt_nkey_create(XT_NKEY_OPERATOR, &op, err, sizeof(err));
    xt_nkey_create(XT_NKEY_ACCOUNT, &sys, err, sizeof(err));
    xt_nkey_create(XT_NKEY_ACCOUNT, &acct, err, sizeof(err));
    xt_nkey_public_text(&op, opub, sizeof(opub));
    xt_nkey_public_text(&sys, spub, sizeof(spub));
    xt_nkey_public_text(&acct, apub, sizeof(apub));

    json_t *oc = xt_jwt_operator_claims("xtask", opub, spub);
    char *ojwt = xt_jwt_encode(oc, &op, err, sizeof(err));
    json_t *o = xt_jwt_decode(ojwt, 0, err, sizeof(err));
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "iss")), opub);
    assert_string_equal(json_string_value(json_object_get(o, "sub")), opub);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "nats"), "system_account")),
                        spub);

    xt_jwt_account_limits lim;
    xt_jwt_account_limits_default(&lim);
    lim.mem_storage = 1 << 30;
    lim.disk_storage = 10LL << 30;
    lim.streams = lim.consumer = lim.max_ack_pending = -1;
    lim.max_bytes_required = 1;
    json_t *rev = json_pack("{sI}", "UABC", (json_int_t)1234);
    json_t *ac = xt_jwt_account_claims("XTASK", apub, &lim, rev, NULL);
    char *ajwt = xt_jwt_encode(ac, &op, err, sizeof(err));
    json_t *a = xt_jwt_decode(ajwt, 0, err, sizeof(err));
    assert_non_null(a);
    json_t *an = json_object_get(a, "nats");
    assert_string_equal(json_string_value(json_object_get(an, "type")), "account");
    json_t *l = json_object_get(an, "limits");
    assert_int_equal(json_integer_value(json_object_get(l, "mem_storage")), 1 << 30);
    assert_int_equal(json_integer_value(json_object_get(l, "disk_storage")), 10LL << 30);
    assert_true(json_is_true(json_object_get(l, "max_bytes_required")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(an, "revocations"), "UABC")), 1234);

    /* JetStream off: no storage keys at all */
    xt_jwt_account_limits_default(&lim);
    json_t *sc = xt_jwt_account_claims("SYS", spub, &lim, NULL, NULL);
    assert_null(json_object_get(json_object_get(json_object_get(sc, "nats"), "limits"), "mem_storage"));
    assert_null(json_object_get(json_object_get(sc, "nats"), "revocations"));

    free(ojwt);
    free(ajwt);
    json_decref(oc);
    json_decref(o);
    json_decref(ac);
    json_decref(a);
    json_decref(sc);
    json_decref(rev);
    xt_nkey_wipe(&op);
    xt_nkey_wipe(&sys);
    xt_nkey_wipe(&acct);
}

static void test_garbage(void **state)
{
    (void)state;
    char err[256];
    assert_null(xt_jwt_decode(NULL, 0, err, sizeof(err)));
    assert_null(xt_jwt_decode("abc", 0, err, sizeof(err)));
    assert_null(xt_jwt_decode("a.b.c", 0, err, sizeof(err)));
    assert_null(xt_jwt_decode("eyJhbGciOiJIUzI1NiJ9.e30.AAAA", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "alg"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_user_jwt),
        cmocka_unit_test(test_operator_and_account),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
