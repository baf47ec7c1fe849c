/* auth_rules: a table of (host, path, method, user, groups) -> policy over one access_control. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

static const char cfg_text[] = "authentication_backend: {file: {path: /nonexistent/users.yml}}\n"
                               "session: {domain: example.com}\n"
                               "access_control:\n"
                               "  default_policy: deny\n"
                               "  rules:\n"
                               "    - domain: '*.example.com'\n" /* 1 */
                               "      policy: bypass\n"
                               "      resources: ['^/health.*']\n"
                               "    - domain: [example.com, '*.example.com']\n" /* 2 */
                               "      policy: two_factor\n"
                               "      subject: 'group:admins'\n"
                               "      resources: ['^/nats([/?].*)?$']\n"
                               "    - domain: Example.COM\n" /* 3 */
                               "      policy: one_factor\n"
                               "      subject: [['user:carol', 'group:ops'], 'user:dave']\n"
                               "      resources: ['^/ops/\\d+$']\n"
                               "    - domain: [example.com, '*.example.com']\n" /* 4 */
                               "      policy: one_factor\n"
                               "      subject: 'group:developers'\n"
                               "      methods: [GET, HEAD]\n"
                               "      resources: ['^/web.*', '^/api.*']\n"
                               "    - domain: api.example.com\n" /* 5 */
                               "      policy: deny\n"
                               "      methods: DELETE\n"
                               "    - domain: public.example.com\n" /* 6 */
                               "      policy: bypass\n"
                               "    - domain: '*.example.com'\n" /* 7 */
                               "      policy: two_factor\n";

static char *const admins[] = {"admins", "developers", NULL};
static char *const devs[] = {"developers", NULL};
static char *const ops[] = {"ops", NULL};

static void table(void **st)
{
    auth_config cfg;
    char err[512];
    static const struct {
        const char *host, *path, *method, *user;
        char *const *groups;
        auth_policy want;
        int rule; /* 1-based, 0 = default */
    } rows[] = {
        /* bypass on health for subdomains only (no rule names the apex with /health) */
        {"app.example.com", "/health", "GET", NULL, NULL, AUTH_POLICY_BYPASS, 1},
        {"app.example.com", "/healthz?x=1", "GET", NULL, NULL, AUTH_POLICY_BYPASS, 1},
        {"example.com", "/health", "GET", NULL, NULL, AUTH_POLICY_DENY, 0},
        /* anonymous meets subject rules: the first subject rule that matches otherwise */
        {"example.com", "/nats/varz", "GET", NULL, NULL, AUTH_POLICY_TWO_FACTOR, 2},
        {"example.com", "/nats", "GET", "alice", admins, AUTH_POLICY_TWO_FACTOR, 2},
        {"example.com", "/natsx", "GET", "alice", admins, AUTH_POLICY_DENY, 0},
        /* a developer is not an admin: rule 2 does not match, rule 4 does not cover /nats */
        {"example.com", "/nats/varz", "GET", "bob", devs, AUTH_POLICY_DENY, 0},
        {"example.com", "/web/index.html", "GET", "bob", devs, AUTH_POLICY_ONE_FACTOR, 4},
        {"example.com", "/api/tasks?x=1", "HEAD", "bob", devs, AUTH_POLICY_ONE_FACTOR, 4},
        {"example.com", "/api/tasks", "POST", "bob", devs, AUTH_POLICY_DENY, 0},
        /* list of lists: carol AND ops, or dave */
        {"example.com", "/ops/12", "GET", "carol", ops, AUTH_POLICY_ONE_FACTOR, 3},
        {"example.com", "/ops/12", "GET", "carol", devs, AUTH_POLICY_DENY, 0},
        {"example.com", "/ops/12", "GET", "erin", ops, AUTH_POLICY_DENY, 0},
        {"example.com", "/ops/12", "GET", "dave", NULL, AUTH_POLICY_ONE_FACTOR, 3},
        {"example.com", "/ops/x", "GET", "dave", NULL, AUTH_POLICY_DENY, 0},
        {"example.com", "/ops/12", "GET", NULL, NULL, AUTH_POLICY_ONE_FACTOR, 3},
        /* methods */
        {"api.example.com", "/x", "DELETE", "bob", NULL, AUTH_POLICY_DENY, 5},
        {"api.example.com", "/x", "GET", "bob", NULL, AUTH_POLICY_TWO_FACTOR, 7},
        /* exact domain vs wildcard; the wildcard does not match the apex nor look-alikes */
        {"public.example.com", "/anything", "POST", NULL, NULL, AUTH_POLICY_BYPASS, 6},
        {"x.public.example.com", "/anything", "GET", NULL, NULL, AUTH_POLICY_TWO_FACTOR, 7},
        {"example.com", "/other", "GET", "alice", admins, AUTH_POLICY_DENY, 0},
        {"badexample.com", "/web/", "GET", "bob", devs, AUTH_POLICY_DENY, 0},
        {"example.com.evil.net", "/web/", "GET", "bob", devs, AUTH_POLICY_DENY, 0},
        /* regexes see the query too */
        {"example.com", "/x?next=/web/", "GET", "bob", devs, AUTH_POLICY_DENY, 0},
    };
    size_t i;
    (void)st;
    if (auth_config_load_mem("rules.yml", cfg_text, NULL, NULL, &cfg, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.acl.nrules, 7);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        auth_object o = {rows[i].host, rows[i].path, auth_method_bit(rows[i].method, strlen(rows[i].method)),
                         rows[i].user, rows[i].groups};
        int idx, hs;
        auth_policy p = auth_acl_match(&cfg.acl, &o, &idx, &hs);
        if (p != rows[i].want || idx + 1 != rows[i].rule)
            fail_msg("row %zu (%s %s%s as %s): policy %d rule %d, want policy %d rule %d", i, rows[i].method,
                     rows[i].host, rows[i].path, rows[i].user ? rows[i].user : "anonymous", p, idx + 1,
                     rows[i].want, rows[i].rule);
    }
    auth_config_free(&cfg);
}

static void methods(void **st)
{
    (void)st;
    assert_int_not_equal(auth_method_bit("GET", 3), 0);
    assert_int_not_equal(auth_method_bit("PROPFIND", 8), 0);
    assert_int_equal(auth_method_bit("get", 3), 0);
    assert_int_equal(auth_method_bit("BREW", 4), 0);
}

/* `resources` mean what they mean in Authelia (Go RE2): each row is a deny rule's regex, a path,
 * and whether RE2 matches it. Rows marked "was" read otherwise before the translation. */
static int denies(const char *re, const char *path, char *err, size_t errlen)
{
    auth_config cfg;
    char text[1024];
    int idx = -1, hs = 0, rc;
    snprintf(text, sizeof(text),
             "authentication_backend: {file: {path: /nonexistent/users.yml}}\n"
             "session: {domain: example.com}\n"
             "access_control:\n  default_policy: one_factor\n  rules:\n"
             "    - domain: example.com\n      policy: deny\n      resources: ['%s']\n",
             re);
    if (auth_config_load_mem("rules.yml", text, NULL, NULL, &cfg, err, errlen) < 0) return -1;
    auth_object o = {"example.com", path, auth_method_bit("GET", 3), "u", NULL};
    rc = auth_acl_match(&cfg.acl, &o, &idx, &hs) == AUTH_POLICY_DENY;
    auth_config_free(&cfg);
    return rc;
}

static void re2_semantics(void **st)
{
    static const struct {
        const char *re, *path;
        int want;
    } rows[] = {
        {"^/api/[\\d]+$", "/api/42", 1}, /* was: "\ or d" */
        {"^/api/[\\d]+$", "/api/d", 0},
        {"^/u/[\\w-]+$", "/u/ab_c-9", 1}, /* was: "\, w or -" */
        {"^/u/[\\w.-]+$", "/u/a.b", 1},
        {"^/u/[\\w.-]+$", "/u/a/b", 0},
        {"\\A/admin\\z", "/admin", 1}, /* was: literal A and z */
        {"\\A/admin\\z", "/admin/x", 0},
        {"^/x/\\d{2}$", "/x/12", 1},
        {"^/x/\\D", "/x/a", 1},
        {"^/x/\\D", "/x/1", 0},
        {"^/s/\\S+\\s*$", "/s/ab", 1},
        {"^/(?:a|b)/", "/b/", 1},
        {"^/(?P<n>a)+?$", "/aa", 1},
        {"^/p\\.json$", "/p.json", 1},
        {"^/p\\.json$", "/pxjson", 0},
        {"^/q\\/r$", "/q/r", 1},
        {"^/[^\\d/]+$", "/abc", 1},
        {"^/[^\\d/]+$", "/a1", 0},
        {"^/[]a]$", "/]", 1},
        {"^/[\\^]$", "/^", 1},
        {"^/[a\\-z]$", "/-", 1},
        {"^/[a\\-z]$", "/m", 0},
        {"^/[\\]\\[]$", "/[", 1},
        {"^/[\\\\]$", "/\\", 1},
    };
    char err[512];
    (void)st;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int got = denies(rows[i].re, rows[i].path, err, sizeof(err));
        if (got != rows[i].want)
            fail_msg("%s on %s: got %d want %d (%s)", rows[i].re, rows[i].path, got, rows[i].want,
                     got < 0 ? err : "");
    }
    /* what RE2 refuses or ERE cannot say exactly: refused at load, naming the rule */
    static const char *const refused[] = {"^/(?i)admin", "^/(?=a)",   "^/a\\b",        "^/\\pL",
                                          "^/\\x41",     "^/(a)\\1",  "^/[[:alpha:]]", "^/a**",
                                          "^/[\\b]",     "^/\\Qa\\E", "^/a\\Z"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (denies(refused[i], "/a", err, sizeof(err)) != -1) fail_msg("%s loaded", refused[i]);
        if (!strstr(err, "rules.yml:8:19: access_control rule #1: bad resources regex: "))
            fail_msg("%s: %s", refused[i], err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(table), cmocka_unit_test(methods),
                                       cmocka_unit_test(re2_semantics)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
