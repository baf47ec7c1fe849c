/* auth_util: Authelia durations, base32, hex, constant-time compare. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

static void durations(void **st)
{
    int64_t v;
    (void)st;
    assert_int_equal(auth_duration_parse("90", 0, &v), 0);
    assert_int_equal(v, 90000);
    assert_int_equal(auth_duration_parse("250ms", 0, &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(auth_duration_parse("5m", 0, &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(auth_duration_parse("1h30m", 0, &v), 0);
    assert_int_equal(v, 5400000);
    assert_int_equal(auth_duration_parse("1M", 0, &v), 0); /* month, not minute */
    assert_int_equal(v, 30LL * 86400000);
    assert_int_equal(auth_duration_parse("1y", 0, &v), 0);
    assert_int_equal(v, 365LL * 86400000);
    assert_int_equal(auth_duration_parse("2w", 0, &v), 0);
    assert_int_equal(v, 14LL * 86400000);
    assert_int_equal(auth_duration_parse("-1", 1, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(auth_duration_parse("-1", 0, &v), -1);
    assert_int_equal(auth_duration_parse("", 0, &v), -1);
    assert_int_equal(auth_duration_parse("5x", 0, &v), -1);
    assert_int_equal(auth_duration_parse("m", 0, &v), -1);
    assert_int_equal(auth_duration_parse("99999999999999999999s", 0, &v), -1);
}

static void base32(void **st)
{
    /* RFC 4648 test vectors */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"};
    char buf[64];
    uint8_t raw[64];
    size_t i;
    (void)st;
    for (i = 0; i < 7; i++) {
        long n = auth_base32_encode((const uint8_t *)in[i], strlen(in[i]), buf, sizeof(buf));
        assert_int_equal(n, strlen(out[i]));
        assert_string_equal(buf, out[i]);
        n = auth_base32_decode(buf, strlen(buf), raw, sizeof(raw));
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(raw, in[i], strlen(in[i]));
    }
    assert_int_equal(auth_base32_decode("mzxw6ytboi======", 16, raw, sizeof(raw)), 6);
    assert_int_equal(auth_base32_decode("MZ1W", 4, raw, sizeof(raw)), -1);
    assert_int_equal(auth_base32_decode("MZXW6YTBOI", 10, raw, 3), -1); /* bounded output */
    assert_int_equal(auth_base32_encode((const uint8_t *)"foobar", 6, buf, 5), -1);
}

static void hex(void **st)
{
    uint8_t b[4] = {0xde, 0xad, 0xbe, 0xef}, o[4];
    char h[9];
    (void)st;
    auth_hex_encode(b, 4, h);
    assert_string_equal(h, "deadbeef");
    assert_int_equal(auth_hex_decode("DEADbeef", 8, o, 4), 0);
    assert_memory_equal(o, b, 4);
    assert_int_equal(auth_hex_decode("deadbee", 7, o, 4), -1);
    assert_int_equal(auth_hex_decode("deadbeeg", 8, o, 4), -1);
    assert_true(auth_ct_equal("abc", 3, "abc", 3));
    assert_false(auth_ct_equal("abc", 3, "abd", 3));
    assert_false(auth_ct_equal("abc", 3, "ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(durations), cmocka_unit_test(base32),
                                       cmocka_unit_test(hex)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
