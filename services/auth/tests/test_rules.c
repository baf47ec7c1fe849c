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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(table), cmocka_unit_test(methods)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
