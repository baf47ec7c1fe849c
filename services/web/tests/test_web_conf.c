/*
 * test_web_conf: web.yaml validation (messages with file:line:col, did-you-mean), the identity
 * headers stripped on every host, trusted proxy ranges.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "web.h"

static char path[64];

/* Load `text` as a config file; returns web_conf_load's result, message in err. */
static int load(web_conf *c, const char *text, char *err, size_t errlen)
{
    snprintf(path, sizeof(path), "/tmp/xt-web-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = web_conf_load(c, path, NULL, NULL, NULL, err, errlen);
    unlink(path);
    return rc;
}

static const char base[] = "version: 1\n"
                           "listen: [{address: '127.0.0.1:8080'}]\n"
                           "trusted_proxies: [10.0.0.0/8, 'fdaa::/16', 192.168.1.7]\n"
                           "hosts:\n"
                           "  - names: [Main.Example, localhost]\n"
                           "    forward_auth:\n"
                           "      url: http://127.0.0.1:9091/api/verify?rd=https://auth.example/\n"
                           "      copy_headers: [Remote-User, X_Custom_Id]\n"
                           "    routes:\n"
                           "      - {path: /health, handle: health, public: true}\n"
                           "      - {path: /nats/, reverse_proxy: {upstream: 'http://127.0.0.1:8222/'}}\n"
                           "      - {path: /, redirect: {to: /web/}}\n"
                           "  - names: [other]\n"
                           "    routes:\n"
                           "      - {path: /, file_server: {root: /var/www}}\n";

static void test_valid(void **state)
{
    web_conf c;
    char err[512] = "";
    assert_int_equal(load(&c, base, err, sizeof(err)), 0);
    assert_int_equal(c.nhosts, 2);
    assert_string_equal(c.hosts[0].names[0], "main.example"); /* names are matched lower-case */
    assert_int_equal(c.hosts[0].nroutes, 3);
    assert_int_equal(c.hosts[0].routes[1].kind, ROUTE_PROXY);
    assert_int_equal(c.hosts[0].routes[2].kind, ROUTE_REDIRECT);
    assert_int_equal(c.hosts[0].routes[2].redirect_status, 302);
    assert_string_equal(c.hosts[0].fauth.copy_lc[1], "x-custom-id");
    /* every host strips every host's identity headers */
    assert_int_equal(c.hosts[1].nstrip, 2);
    assert_string_equal(c.hosts[1].strip_lc[0], "remoteuser"); /* web_header_key */
    web_conf_free(&c);
}

/* Every spelling a lenient parser could fold onto a name has the same key; a key that does not
 * fit is an error, never a truncated key. */
static void test_header_key(void **state)
{
    (void)state;
    static const char *const same[] = {"Remote-User",  "remote_user", "REMOTE.USER",
                                       "remote--user", "RemoteUser",  "r-e_m.o~t!e'u*s+e^r"};
    char k[16];
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(web_header_key(same[i], strlen(same[i]), k, sizeof(k)), 10);
        assert_string_equal(k, "remoteuser");
    }
    assert_int_equal(web_header_key("X-Forwarded-Client-Cert", 23, k, sizeof(k)), -1);
    assert_int_equal(web_header_key("-_-", 3, k, sizeof(k)), 0);
    assert_string_equal(k, "");
}

static void expect_error(const char *text, const char *want)
{
    web_conf c;
    char err[512] = "";
    assert_int_equal(load(&c, text, err, sizeof(err)), -1);
    if (strstr(err, want) == NULL) fail_msg("error '%s' does not contain '%s'", err, want);
    web_conf_free(&c);
}

static void test_errors(void **state)
{
    expect_error("version: 1\nlistn: []\n", ":2:1: unknown key 'listn' in web.yaml (did you mean 'listen'?)");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: /x, handle: helth}\n",
                 ":6:28: route.handle: unknown handler 'helth' (did you mean 'health'?)");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: /x, handle: health, file_server: {root: /}}\n",
                 "exactly one of handle, reverse_proxy, file_server, redirect");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: '/a/../b', handle: health}\n",
                 "is not a normalized path prefix");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: /x, reverse_proxy: {upstream: 'ftp://h/'}}\n",
                 "is not an http://host:port/path URL");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: /, redirect: {to: '//evil.example/'}}\n",
                 "must be a local path");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\ntrusted_proxies: [10.0.0.0/33]\nhosts: []\n",
                 "is not an address or CIDR range");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a]\n"
                 "    forward_auth: {url: 'http://a:1/v', copy_headers: ['Remote User']}\n"
                 "    routes: [{path: /, handle: health}]\n",
                 "is not a header name");
    expect_error("version: 1\nlisten: [{address: 'x:1', tls: {cert: /c}}]\nhosts: []\n",
                 "both 'cert' and 'key' are required");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nlimits: {max_body_bytes: 12XB}\nhosts: []\n",
                 "is not a size");
    expect_error(
        "version: 1\nlisten: [{address: 'x:1'}]\nnats:\n  url: nats://h:1\n  creds: /nonexistent/web.creds\n"
        "hosts: []\n",
        ":5:10: nats.creds: /nonexistent/web.creds: No such file or directory");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nnats: {inbox_prefix: '_INBOX.>'}\nhosts: []\n",
                 ":3:22: nats.inbox_prefix: '_INBOX.>'");
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nnats: {tls_ca: /nonexistent/ca.pem}\nhosts: []\n",
                 ":3:16: nats.tls_ca: /nonexistent/ca.pem: No such file or directory");
}

/* Host names: a literal duplicate is an error with both positions; aliases that collapse into one
 * name through ${VAR} expansion (XTASK_DOMAIN=localhost next to a literal localhost) are merged. */
static void test_duplicate_hosts(void **state)
{
    web_conf c;
    char err[512] = "";
    setenv("XT_TEST_DOMAIN", "localhost", 1);
    assert_int_equal(
        load(&c,
             "version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n"
             "  - names: [\"${XT_TEST_DOMAIN:-xtask.fly.dev}\", \"xtask-local.${XT_TEST_DOMAIN}\",\n"
             "            localhost, 127.0.0.1, LocalHost]\n"
             "    routes: [{path: /, handle: health}]\n"
             "  - names:\n      - auth.${XT_TEST_DOMAIN}\n      - ${XT_TEST_DOMAIN}\n"
             "    routes: [{path: /, handle: health}]\n",
             err, sizeof(err)),
        -1);
    /* the same name in two hosts is ambiguous even when it comes from a variable */
    if (strstr(err, ":9:9: duplicate host 'localhost' (first at line 4, in another host)") == NULL)
        fail_msg("unexpected error '%s'", err);
    web_conf_free(&c);

    /* names match case-insensitively: two literal spellings of one name are a mistake */
    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [Main.Example, b,\n"
                 "      main.example]\n    routes: [{path: /, handle: health}]\n",
                 ":5:7: duplicate host 'main.example' (first at line 4)");

    assert_int_equal(
        load(&c,
             "version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n"
             "  - names: [\"${XT_TEST_DOMAIN:-xtask.fly.dev}\", \"xtask-local.${XT_TEST_DOMAIN}\",\n"
             "            localhost, 127.0.0.1]\n"
             "    routes: [{path: /, handle: health}]\n"
             "  - names:\n      - auth.${XT_TEST_DOMAIN}\n"
             "    routes: [{path: /, handle: health}]\n",
             err, sizeof(err)),
        0);
    assert_int_equal(c.hosts[0].nnames, 3);
    assert_string_equal(c.hosts[0].names[0], "localhost");
    assert_string_equal(c.hosts[0].names[1], "xtask-local.localhost");
    assert_string_equal(c.hosts[0].names[2], "127.0.0.1");
    assert_string_equal(c.hosts[1].names[0], "auth.localhost");
    web_conf_free(&c);

    expect_error("version: 1\nlisten: [{address: 'x:1'}]\nhosts:\n  - names: [a, b, a]\n"
                 "    routes: [{path: /, handle: health}]\n",
                 ":4:19: duplicate host 'a' (first at line 4)");
    unsetenv("XT_TEST_DOMAIN");
}

static int trusted(web_conf *c, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &s4->sin_addr);
    }
    return web_conf_is_trusted(c, (struct sockaddr *)&ss);
}

static void test_trusted(void **state)
{
    web_conf c;
    char err[512] = "";
    assert_int_equal(load(&c, base, err, sizeof(err)), 0);
    assert_true(trusted(&c, "10.1.2.3"));
    assert_true(trusted(&c, "192.168.1.7"));
    assert_false(trusted(&c, "192.168.1.8"));
    assert_false(trusted(&c, "11.0.0.1"));
    assert_true(trusted(&c, "fdaa:0:1::2"));
    assert_false(trusted(&c, "fdab::1"));
    assert_true(trusted(&c, "::ffff:10.9.9.9")); /* IPv4-mapped */
    assert_false(trusted(&c, "::1"));
    web_conf_free(&c);
}

/* api.rules: parsed in order, validated with positions, first match decides, default deny. */
static const char rules_host[] = "version: 1\n"
                                 "listen: [{address: '127.0.0.1:8080'}]\n"
                                 "hosts:\n"
                                 "  - names: [a]\n"
                                 "    forward_auth: {url: 'http://127.0.0.1:9091/api/verify', copy_headers: "
                                 "[Remote-User, Remote-Groups]}\n"
                                 "    routes:\n"
                                 "      - {path: /api/, handle: api}\n";

static void test_api_rules(void **state)
{
    web_conf c;
    char err[512] = "", text[2048];
    int rule;
    snprintf(text, sizeof(text),
             "%sapi:\n  rules:\n"
             "    - {users: [mallory], verbs: [task.run], policy: deny}\n"
             "    - {groups: [admins], verbs: [task.run, kill-port, audit.read]}\n"
             "    - {groups: [developers], verbs: [task.run, which.check], tasks: [noop, 'build:*']}\n",
             rules_host);
    assert_int_equal(load(&c, text, err, sizeof(err)), 0);
    assert_int_equal(c.napi_rules, 3);
    assert_true(web_rules_allow(&c, "dev", "developers", "task.run", "noop", &rule));
    assert_int_equal(rule, 2);
    assert_true(web_rules_allow(&c, "dev", " staff , developers", "task.run", "build:web", &rule));
    assert_false(web_rules_allow(&c, "dev", "developers", "task.run", "deploy", &rule));
    assert_int_equal(rule, -1); /* no rule: default deny */
    assert_false(web_rules_allow(&c, "dev", "developers", "kill-port", NULL, &rule));
    assert_false(web_rules_allow(&c, "dev", "developers-x", "task.run", "noop", &rule));
    assert_true(web_rules_allow(&c, "root", "admins", "kill-port", NULL, &rule));
    assert_true(web_rules_allow(&c, "root", "admins", "audit.read", NULL, &rule));
    assert_false(web_rules_allow(&c, "mallory", "admins", "task.run", "noop", &rule)); /* first match: deny */
    assert_int_equal(rule, 0);
    assert_false(web_rules_allow(&c, "", "admins", "task.run", "noop", &rule)); /* nobody signed in */
    assert_false(web_rules_allow(&c, NULL, "admins", "task.run", "noop", &rule));
    web_conf_free(&c);

    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {groups: [a], verbs: [task.rn]}\n", rules_host);
    expect_error(text, ":10:29: api rule verbs: unknown verb 'task.rn' (did you mean 'task.run'?)");
    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {groups: [a]}\n", rules_host);
    expect_error(text, ":10:7: api rule: missing 'verbs'");
    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {verbs: [kill-port], tasks: [x]}\n", rules_host);
    expect_error(text, ":10:35: api rule tasks: only meaningful with the verb task.run");
    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {verbs: [task.run], tasks: ['a b']}\n", rules_host);
    expect_error(text, "api rule tasks: 'a b' is not a task name or pattern");
    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {verbs: [task.run], policy: maybe}\n", rules_host);
    expect_error(text, "api rule policy: 'maybe' is not allow or deny");
    snprintf(text, sizeof(text), "%sapi:\n  rules:\n    - {verbs: [task.run], group: [x]}\n", rules_host);
    expect_error(text, "unknown key 'group' in api rule (did you mean 'groups'?)");
    snprintf(text, sizeof(text), "%sapi:\n  rulez: []\n", rules_host);
    expect_error(text, ":9:3: unknown key 'rulez' in api");
    /* the api only where forward-auth supplies the user */
    expect_error("version: 1\nlisten: [{address: '127.0.0.1:8080'}]\nhosts:\n  - names: [a]\n    routes:\n"
                 "      - {path: /api/, handle: api}\n",
                 ":6:9: route '/api/': the api needs the signed-in user");
    snprintf(text, sizeof(text), "%s", rules_host);
    char *pub = strstr(text, "handle: api}");
    memcpy(pub, "handle: api, public: true}\n", strlen("handle: api, public: true}\n") + 1);
    expect_error(text, "the api needs the signed-in user");
}

/* api.projects: who may see which project, by user and Remote-Groups; none listed: everyone. */
static void test_api_projects(void **state)
{
    web_conf c;
    char err[512] = "", text[2048];
    assert_int_equal(load(&c, rules_host, err, sizeof(err)), 0);
    assert_true(web_project_allowed(&c, "dev", "", "anything")); /* no api.projects: one team */
    assert_false(web_project_allowed(&c, "", "", "default"));    /* but never nobody */
    web_conf_free(&c);
    snprintf(text, sizeof(text),
             "%sapi:\n  projects:\n    default:\n    ops: {groups: [admins]}\n"
             "    pay: {users: [alice], groups: [payments]}\n",
             rules_host);
    assert_int_equal(load(&c, text, err, sizeof(err)), 0);
    assert_int_equal(c.nprojects, 3);
    assert_true(web_project_allowed(&c, "dev", "developers", "default"));
    assert_false(web_project_allowed(&c, "dev", "developers", "ops"));
    assert_true(web_project_allowed(&c, "root", "staff, admins", "ops"));
    assert_true(web_project_allowed(&c, "alice", "", "pay"));
    assert_true(web_project_allowed(&c, "bob", "payments", "pay"));
    assert_false(web_project_allowed(&c, "bob", "payments-x", "pay"));
    assert_false(web_project_allowed(&c, "root", "admins", "unlisted")); /* not named: nobody's */
    web_conf_free(&c);
    snprintf(text, sizeof(text), "%sapi:\n  projects:\n    'a.b': {groups: [x]}\n", rules_host);
    expect_error(text, ":10:5: api.projects: 'a.b' is not a project name");
    snprintf(text, sizeof(text), "%sapi:\n  projects:\n    p: {group: [x]}\n", rules_host);
    expect_error(text, "unknown key 'group' in api.projects entry (did you mean 'groups'?)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),           cmocka_unit_test(test_errors),
        cmocka_unit_test(test_duplicate_hosts), cmocka_unit_test(test_trusted),
        cmocka_unit_test(test_api_rules),       cmocka_unit_test(test_api_projects),
        cmocka_unit_test(test_header_key)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
