/* auth_http: cookies, Basic credentials, Accept, hosts, forms, and rd validation against attacks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

#define S(x) x, strlen(x)

static void cookies(void **st)
{
    char v[128];
    (void)st;
    assert_int_equal(auth_cookie_get(S("authelia_session=abc"), "authelia_session", v, sizeof(v)), 3);
    assert_string_equal(v, "abc");
    assert_int_equal(auth_cookie_get(S("a=1; authelia_session=xyz; b=2"), "authelia_session", v, sizeof(v)),
                     3);
    assert_string_equal(v, "xyz");
    assert_int_equal(auth_cookie_get(S("a=1;authelia_session=  q  ;b"), "authelia_session", v, sizeof(v)), 1);
    assert_string_equal(v, "q");
    assert_int_equal(auth_cookie_get(S("authelia_session=\"quoted\""), "authelia_session", v, sizeof(v)), 6);
    assert_string_equal(v, "quoted");
    /* first one wins */
    assert_int_equal(
        auth_cookie_get(S("authelia_session=one; authelia_session=two"), "authelia_session", v, sizeof(v)),
        3);
    assert_string_equal(v, "one");
    /* names must match exactly, not as a suffix or prefix */
    assert_int_equal(auth_cookie_get(S("xauthelia_session=abc"), "authelia_session", v, sizeof(v)), -1);
    assert_int_equal(auth_cookie_get(S("authelia_session_x=abc"), "authelia_session", v, sizeof(v)), -1);
    assert_int_equal(auth_cookie_get(S("foo; bar=authelia_session=1"), "authelia_session", v, sizeof(v)), -1);
    assert_int_equal(auth_cookie_get(S(""), "authelia_session", v, sizeof(v)), -1);
    /* empty value */
    assert_int_equal(auth_cookie_get(S("authelia_session="), "authelia_session", v, sizeof(v)), 0);
    /* bounded */
    assert_int_equal(auth_cookie_get(S("authelia_session=0123456789"), "authelia_session", v, 5), -1);
}

static void basic(void **st)
{
    char u[65], p[257];
    (void)st;
    /* alice:secret */
    assert_int_equal(auth_basic_parse(S("Basic YWxpY2U6c2VjcmV0"), u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(u, "alice");
    assert_string_equal(p, "secret");
    assert_int_equal(auth_basic_parse(S("basic   YWxpY2U6c2VjcmV0  "), u, sizeof(u), p, sizeof(p)), 0);
    /* a:b:c -> password may hold ':' */
    assert_int_equal(auth_basic_parse(S("Basic YTpiOmM="), u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(u, "a");
    assert_string_equal(p, "b:c");
    assert_int_equal(auth_basic_parse(S("Bearer YWxpY2U6c2VjcmV0"), u, sizeof(u), p, sizeof(p)), -1);
    assert_int_equal(auth_basic_parse(S("Basic"), u, sizeof(u), p, sizeof(p)), -1);
    assert_int_equal(auth_basic_parse(S("Basic !!!!"), u, sizeof(u), p, sizeof(p)), -1);
    assert_int_equal(auth_basic_parse(S("Basic YWxpY2U="), u, sizeof(u), p, sizeof(p)), -1); /* no ':' */
    assert_int_equal(auth_basic_parse(S("Basic OnNlY3JldA=="), u, sizeof(u), p, sizeof(p)),
                     -1);                                                                    /* empty user */
    assert_int_equal(auth_basic_parse(S("Basic YQBiOmM="), u, sizeof(u), p, sizeof(p)), -1); /* NUL */
    assert_int_equal(auth_basic_parse(S("Basic YWxpY2U6c2VjcmV0"), u, 3, p, sizeof(p)), -1); /* bounded */
}

static void accept_html(void **st)
{
    (void)st;
    assert_true(auth_accepts_html(S("text/html")));
    assert_true(auth_accepts_html(S("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
    assert_true(auth_accepts_html(S("application/json, text/html;q=0.1")));
    assert_true(auth_accepts_html(S("*/*")));
    assert_true(auth_accepts_html(S(" */* ; q=1")));
    assert_false(auth_accepts_html(S("application/json, */*"))); /* star/star only counts first */
    assert_false(auth_accepts_html(S("application/json")));
    assert_false(auth_accepts_html(S("")));
    assert_false(auth_accepts_html(S("text/htmlx")));
}

static void hosts(void **st)
{
    char h[256];
    (void)st;
    assert_int_equal(auth_host_normalize(S("App.Example.COM"), h, sizeof(h)), 15);
    assert_string_equal(h, "app.example.com");
    assert_int_equal(auth_host_normalize(S("example.com:8443"), h, sizeof(h)), 11);
    assert_string_equal(h, "example.com");
    assert_int_equal(auth_host_normalize(S("example.com:"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("example.com:99999"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("example.com:80x"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("exa mple.com"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("example.com."), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S(".example.com"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("a..example.com"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("evil.com/x.example.com"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S("[::1]"), h, sizeof(h)), -1);
    assert_int_equal(auth_host_normalize(S(""), h, sizeof(h)), -1);
    assert_true(auth_host_under("example.com", "example.com"));
    assert_true(auth_host_under("a.b.example.com", "example.com"));
    assert_false(auth_host_under("badexample.com", "example.com"));
    assert_false(auth_host_under("example.com.evil.net", "example.com"));
    assert_false(auth_host_under("com", "example.com"));
}

static void rd_validation(void **st)
{
    static const char *const good[] = {
        "https://example.com",
        "https://example.com/",
        "https://app.example.com/web/?q=a%20b#frag",
        "https://APP.example.com:8443/x",
        "https://a.b.example.com/path/..;/x", /* the path is not ours to judge; the host is */
    };
    static const char *const bad[] = {
        "",
        "/relative",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https:/\\evil.com",
        "https:\\\\evil.com",
        "https://evil.com",
        "https://example.com.evil.com/",
        "https://evilexample.com/",
        "https://evil.com#.example.com",
        "https://evil.com?.example.com",
        "https://evil.com\\.example.com",
        "https://example.com@evil.com/",
        "https://user:pass@example.com/",
        "https://evil.com%2F.example.com/",
        "https://evil.com%40example.com/",
        "https://%65xample.com/",
        "https://example.com%00.evil.com/",
        "https://exam ple.com/",
        " https://example.com/",
        "https://example.com/ x",
        "https://example.com/\tx",
        "https://example.com/\r\nSet-Cookie: x=1",
        "\thttps://example.com/",
        "http://example.com/",  /* http refused unless allowed */
        "HTTPS://example.com/", /* scheme must be lower-case */
        "javascript://example.com/%0aalert(1)",
        "javascript:alert(1)",
        "data:text/html,<script>",
        "ftp://example.com/",
        "https:example.com",
        "https://",
        "https:///example.com",
        "https://[::1]/",
        "https://example.com:99999/",
        "https://example.com:/",
        "https://\xe2\x80\xa8"
        "example.com/",
        "https://exa\xc3\xa9"
        "mple.com/",
        "https://example.com./",
    };
    size_t i;
    (void)st;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!auth_rd_safe(S(good[i]), "example.com", 0)) fail_msg("refused a good target: %s", good[i]);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (auth_rd_safe(S(bad[i]), "example.com", 0)) fail_msg("accepted an attack: %s", bad[i]);
    }
    assert_true(auth_rd_safe(S("http://example.com/"), "example.com", 1));
    assert_false(auth_rd_safe(S("http://evil.com/"), "example.com", 1));
    /* an embedded NUL */
    assert_false(auth_rd_safe("https://example.com\0.evil", 25, "example.com", 0));
    /* too long */
    {
        static char big[AUTH_URL_MAX + 64];
        memset(big, 'a', sizeof(big) - 1);
        memcpy(big, "https://example.com/", 20);
        assert_false(auth_rd_safe(big, strlen(big), "example.com", 0));
    }
}

static void forms(void **st)
{
    char v[64];
    (void)st;
    assert_int_equal(auth_form_get(S("username=alice&password=p%40ss+word"), "password", v, sizeof(v)), 9);
    assert_string_equal(v, "p@ss word");
    assert_int_equal(auth_form_get(S("username=alice&password=x"), "username", v, sizeof(v)), 5);
    assert_int_equal(auth_form_get(S("xusername=alice"), "username", v, sizeof(v)), -1);
    assert_int_equal(auth_form_get(S("username"), "username", v, sizeof(v)), 0);
    assert_int_equal(auth_form_get(S("username=%zz"), "username", v, sizeof(v)), -2);
    assert_int_equal(auth_form_get(S("username=a%00b"), "username", v, sizeof(v)), -2);
    assert_int_equal(auth_form_get(S("username=0123456789"), "username", v, 4), -2);
    assert_int_equal(auth_url_encode(S("https://a.b/c?d=e f"), v, sizeof(v)), 33);
    assert_string_equal(v, "https%3A%2F%2Fa.b%2Fc%3Fd%3De%20f");
    assert_int_equal(auth_url_encode(S("abcdef"), v, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(cookies),       cmocka_unit_test(basic),
                                       cmocka_unit_test(accept_html),   cmocka_unit_test(hosts),
                                       cmocka_unit_test(rd_validation), cmocka_unit_test(forms)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
