/* Unit tests for xt_path: the traversal and encoding forms the front must never let through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "xt_path.h"

static const char *norm(const char *in)
{
    static char out[256];
    long n = xt_path_normalize(in, strlen(in), out, sizeof(out));
    return n < 0 ? NULL : out;
}

static void test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"/", "/"},
        {"/web/", "/web/"},
        {"/web/index.html", "/web/index.html"},
        {"/health/../nats", "/nats"},
        {"/health/%2e%2e/nats", "/nats"},
        {"/health/%2E%2e/nats/", "/nats/"},
        {"/health/.%2e/nats", "/nats"},
        {"//nats", "/nats"},
        {"///nats//varz", "/nats/varz"},
        {"/health;/../nats", "/nats"},
        {"/./nats/./varz", "/nats/varz"},
        {"/../../nats", "/nats"},
        {"/a/b/..", "/a/"},
        {"/a/b/.", "/a/b/"},
        {"/..", "/"},
        {"/%7euser", "/~user"},
        {"/a%20b", "/a%20b"},
        {"/a b", "/a%20b"},
        {"/%c3%a9", "/%C3%A9"},
        {"/\xc3\xa9", "/%C3%A9"},
        {"/api/v1/tasks?x=1&y=/../z", "/api/v1/tasks?x=1&y=/../z"},
        {"/health/..?q", "/?q"},
        {"/a/%3b/b", "/a/%3B/b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = norm(cases[i].in);
        if (got == NULL || strcmp(got, cases[i].want) != 0)
            fail_msg("normalize(%s) = %s, want %s", cases[i].in, got ? got : "(refused)", cases[i].want);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "nats",
        "/health/..%2fnats",
        "/health/..%2Fnats",
        "/a%5c..%5cnats",
        "/a\\..\\b",
        "/a%00b",
        "/a%0ab",
        "/a%",
        "/a%4",
        "/a%zz",
        "/a\x01",
        "?x",
        "/ok?a\x7f",
        "/health/..;/nats",
        "/health/..;x/nats",
        "/a/.;/b",
        "/a/%2e%2e;/b",
        "/a/.%3b/b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (norm(bad[i]) != NULL) fail_msg("normalize(%s) accepted as %s", bad[i], norm(bad[i]));
    char small[4];
    assert_int_equal(xt_path_normalize("/abcdef", 7, small, sizeof(small)), -1);
}

static void test_query(void **state)
{
    (void)state;
    char out[64];
    const char *q = "a=1&rd=https%3A%2F%2Fx.example%2Fp%3Fq&empty=&flag&plus=a+b";
    assert_int_equal(xt_query_get(q, strlen(q), "rd", out, sizeof(out)), 21);
    assert_string_equal(out, "https://x.example/p?q");
    assert_int_equal(xt_query_get(q, strlen(q), "a", out, sizeof(out)), 1);
    assert_int_equal(xt_query_get(q, strlen(q), "empty", out, sizeof(out)), 0);
    assert_int_equal(xt_query_get(q, strlen(q), "flag", out, sizeof(out)), 0);
    assert_int_equal(xt_query_get(q, strlen(q), "plus", out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(xt_query_get(q, strlen(q), "r", out, sizeof(out)), -1);
    assert_int_equal(xt_query_get("x=%00", 5, "x", out, sizeof(out)), -2);
    assert_int_equal(xt_query_get("x=%g1", 5, "x", out, sizeof(out)), -2);
    assert_int_equal(xt_query_get("x=abcdef", 8, "x", out, 4), -2);
    /* a raw NUL is refused like %00 (fuzz_xt_path): the value is used as a C string, and a form
     * field "username=alice<NUL>x" would otherwise read as "alice" with the length of "alice<NUL>x" */
    assert_int_equal(xt_query_get("x=ab\0c", 6, "x", out, sizeof(out)), -2);
    assert_int_equal(xt_url_decode("ab\0c", 4, 0, out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
