/* auth_config: Authelia-compatible keys and exact `file:line:col: message` errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

#define BASE "authentication_backend: {file: {path: /x/users.yml}}\nsession: {domain: example.com}\n"

static const char *env_fn(const char *name, void *ud)
{
    (void)ud;
    if (strcmp(name, "AUTH_SESSION_SECRET") == 0) return "0123456789abcdef0123456789abcdef";
    if (strcmp(name, "XTASK_DOMAIN") == 0) return "xtask.fly.dev";
    return NULL;
}

static void good_full(void **st)
{
    auth_config c;
    char err[512];
    const char *text = "server: {host: 127.0.0.1, port: 9091, endpoints: {enable_pprof: false}}\n"
                       "log: {level: debug, format: json}\n"
                       "theme: auto\n"
                       "jwt_secret: whatever\n"
                       "default_redirection_url: https://xtask.fly.dev/web/\n"
                       "totp: {issuer: xtask.fly.dev, algorithm: sha1, digits: 6, period: 30, skew: 1}\n"
                       "authentication_backend:\n"
                       "  refresh_interval: 5m\n"
                       "  password_reset: {disable: true}\n"
                       "  file:\n"
                       "    path: users_database.yml\n"
                       "    password: {algorithm: argon2id, iterations: 1, salt_length: 16, parallelism: 8, "
                       "memory: 64}\n"
                       "access_control: {default_policy: deny}\n"
                       "session:\n"
                       "  name: authelia_session\n"
                       "  domain: ${XTASK_DOMAIN}\n"
                       "  same_site: lax\n"
                       "  secret: ${AUTH_SESSION_SECRET}\n"
                       "  expiration: 1h\n"
                       "  inactivity: 5m\n"
                       "  remember_me_duration: 1M\n"
                       "regulation: {max_retries: 3, find_time: 2m, ban_time: 5m, modes: [user, ip]}\n"
                       "webauthn: {disable: true}\n"
                       "duo_api: {disable: true}\n"
                       "identity_providers: {}\n"
                       "notifier: {disable_startup_check: false}\n";
    (void)st;
    if (auth_config_load_mem("/etc/xtask/auth.yml", text, env_fn, NULL, &c, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.port, 9091);
    assert_int_equal(c.log_json, 1);
    assert_string_equal(c.users_path, "/etc/xtask/users_database.yml");
    assert_string_equal(c.totp_path, "/etc/xtask/totp_secrets.yml");
    assert_int_equal(c.argon2.m_kib, 64 * 1024); /* legacy key: MiB */
    assert_int_equal(c.argon2.t_cost, 1);
    assert_int_equal(c.reg_modes, AUTH_REG_USER | AUTH_REG_IP);
    assert_int_equal(c.argon2.parallelism, 8);
    assert_string_equal(c.domain, "xtask.fly.dev");
    assert_int_equal(c.expiration_ms, 3600000);
    assert_int_equal(c.inactivity_ms, 300000);
    assert_int_equal(c.remember_me_ms, 30LL * 86400000);
    assert_int_equal(c.reg_max_retries, 3);
    assert_int_equal(c.reg_find_time_ms, 120000);
    assert_int_equal(c.reg_ban_time_ms, 300000);
    assert_string_equal(c.default_redirection_url, "https://xtask.fly.dev/web/");
    assert_int_equal(c.kv_enabled, 0);
    auth_config_free(&c);

    /* 4.38 spellings */
    text =
        "server: {address: 'tcp://:9999/'}\n" BASE
        "authentication_backend: {file: {path: u.yml, password: {argon2: {memory: 1024, iterations: 2}}}}\n";
    assert_int_equal(auth_config_load_mem("a.yml", text, env_fn, NULL, &c, err, sizeof(err)),
                     -1); /* dup key */
    text =
        "server: {address: 'tcp://127.0.0.2:9999/'}\n"
        "authentication_backend: {file: {path: u.yml, password: {argon2: {memory: 1024, iterations: 2}}}}\n"
        "session: {domain: example.com, remember_me: -1, authelia_url: 'https://auth.example.com/'}\n";
    if (auth_config_load_mem("a.yml", text, env_fn, NULL, &c, err, sizeof(err)) < 0) fail_msg("%s", err);
    assert_string_equal(c.listen_host, "127.0.0.2");
    assert_int_equal(c.port, 9999);
    assert_int_equal(c.argon2.m_kib, 1024);
    assert_int_equal(c.argon2.t_cost, 2);
    assert_int_equal(c.remember_me_ms, -1);
    assert_string_equal(c.portal_url, "https://auth.example.com/");
    auth_config_free(&c);
}

static void errors(void **st)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {BASE "sesion: {}\n",
         "auth.yml:3:1: unknown key 'sesion' in the configuration (did you mean 'session'?)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domian: example.com}\n",
         "auth.yml:2:11: unknown key 'domian' in session (did you mean 'domain'?)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {name: s}\n",
         "auth.yml:2:10: session.domain is required"},
        {"session: {domain: example.com}\n", "auth.yml:1:1: authentication_backend is required"},
        {"authentication_backend: {ldap: {}}\nsession: {domain: example.com}\n",
         "auth.yml:1:26: authentication_backend.ldap is not supported by xtask-auth"},
        {BASE "access_control:\n  default_policy: denny\n",
         "auth.yml:4:19: access_control.default_policy: unknown policy 'denny' (did you mean 'deny'?)"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: one_factor\n"
              "      resources: ['^/web(']\n",
         "auth.yml:7:19: access_control rule #1: bad resources regex: Unmatched ( or \\("},
        {BASE "access_control:\n  rules:\n    - policy: deny\n",
         "auth.yml:5:7: access_control rule #1: 'domain' is required"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: bypass\n"
              "      subject: 'group:admins'\n",
         "auth.yml:6:15: access_control rule #1: policy 'bypass' is not supported with 'subject' (as in "
         "Authelia)"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: one_factor\n"
              "      subject: 'admins'\n",
         "auth.yml:7:16: subject 'admins' must start with 'user:' or 'group:'"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: one_factor\n"
              "      methods: [GET, PSTO]\n",
         "auth.yml:7:22: access_control rule #1: unknown method 'PSTO'"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: one_factor\n"
              "      methods: [GETT]\n",
         "auth.yml:7:17: access_control rule #1: unknown method 'GETT' (did you mean 'GET'?)"},
        {BASE "access_control:\n  rules:\n    - domain: example.com\n      policy: one_factor\n"
              "      networks: [10.0.0.0/8]\n",
         "auth.yml:7:7: access_control rule #1: 'networks' is not supported by xtask-auth (a rule is never "
         "relaxed silently)"},
        {BASE "access_control:\n  rules:\n    - domain: 'ex ample.com'\n      policy: deny\n",
         "auth.yml:5:15: access_control rule #1: bad domain 'ex ample.com' (a host name, or '*.' and a host "
         "name)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, expiration: 5 "
         "minutes}\n",
         "auth.yml:2:44: session.expiration: bad duration '5 minutes' (e.g. 90, 250ms, 5s, 2m, 1h, 1d, 1w, "
         "1M, 1y)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, same_site: loose}\n",
         "auth.yml:2:43: session.same_site: lax, strict or none"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: 'https://example.com'}\n",
         "auth.yml:2:19: session.domain: a lower-case host name without port or scheme"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, secret: short}\n",
         "auth.yml:2:40: session.secret: at least 16 characters"},
        {"authentication_backend: {file: {path: /x}}\n"
         "session: {domain: example.com, authelia_url: 'https://auth.evil.com/'}\n",
         "auth.yml:2:46: session.authelia_url must be an https URL under session.domain"},
        {BASE "regulation: {max_retries: 100}\n",
         "auth.yml:3:27: regulation.max_retries: 100 is out of range (0 to 32)"},
        {BASE "server: {port: 0}\n", "auth.yml:3:16: server.port: 0 is out of range (1 to 65535)"},
        {BASE "totp: {digits: 7}\n", "auth.yml:3:16: totp.digits: 6 or 8"},
        {BASE "log: {level: loud}\n", "auth.yml:3:14: log.level: 'loud' (trace, debug, info, warn, error)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, nats: {enabled: "
         "true}}\n",
         "auth.yml:2:38: session.nats: session.secret is required (keys in the bucket are keyed by it)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, secret: "
         "0123456789abcdef, nats: {resync_interval: 10ms}}\n",
         "auth.yml:2:82: session.nats.resync_interval: '10ms' is out of range"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, secret: "
         "0123456789abcdef, nats: {resync: 1s}}\n",
         "auth.yml:2:65: unknown key 'resync' in session.nats (known keys: enabled, url, creds, tls_ca, "
         "tls_cert, tls_key, inbox_prefix, name, servers, bucket, replicas, lookup_timeout, "
         "resync_interval)"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, secret: "
         "0123456789abcdef, nats: {creds: /nonexistent/auth.creds}}\n",
         "auth.yml:2:72: session.nats.creds: /nonexistent/auth.creds: No such file or directory"},
        {"authentication_backend: {file: {path: /x}}\nsession: {domain: example.com, secret: "
         "0123456789abcdef, nats: {url: 'nats://a:1', servers: 'nats://b:1'}}\n",
         "auth.yml:2:93: session.nats: servers and url are the same setting"},
        {BASE "session: {domain: x}\n", "auth.yml:3:1: duplicate key 'session' (first defined at line 2)"},
        /* settings that decide who gets in are implemented or refused, never accepted and ignored */
        /* server.endpoints.authz (auth_authz.c): what is not built is refused where it is written */
        {BASE "server:\n  endpoints:\n    authz:\n      fa:\n        implementation: ForwardAuth\n"
              "        authn_strategies: [{name: HeaderAuthorization, schemes: [basic, bearer]}]\n",
         "auth.yml:8:73: server.endpoints.authz.fa.authn_strategies: strategy 'HeaderAuthorization': scheme "
         "'bearer' needs an OpenID Connect provider, which xtask-auth does not have"},
        {BASE "server: {endpoints: {authz: {fa: {implementation: ForwardAut}}}}\n",
         "auth.yml:3:51: server.endpoints.authz.fa: unknown implementation 'ForwardAut' (did you mean "
         "'ForwardAuth'?) (ForwardAuth, AuthRequest, ExtAuthz or Legacy)"},
        {BASE "server: {endpoints: {authz: {legacy: {implementation: ForwardAuth}}}}\n",
         "auth.yml:3:55: server.endpoints.authz.legacy: the endpoint named 'legacy' must use the Legacy "
         "implementation"},
        {BASE "server: {endpoints: {authz: {fa: {}}}}\n",
         "auth.yml:3:30: server.endpoints.authz.fa: 'implementation' must be set (ForwardAuth, AuthRequest, "
         "ExtAuthz or Legacy)"},
        {BASE "server: {endpoints: {authz: {'x/../y': {implementation: ExtAuthz}}}}\n",
         "auth.yml:3:30: server.endpoints.authz: endpoint name 'x/../y' has invalid characters (a letter, "
         "then "
         "letters, digits, '/', '.', '_' or '-', ending with a letter)"},
        {BASE "server: {endpoints: {authz: {fa: {implementation: ForwardAuth, authn_strategies: [{name: "
              "CookieSession, schemes: [basic]}]}}}}\n",
         "auth.yml:3:114: server.endpoints.authz.fa.authn_strategies: strategy 'CookieSession' takes no "
         "'schemes'"},
        {BASE "server: {endpoints: {authz: {fa: {implementation: ForwardAuth, authn_strategies: [{name: "
              "Cookie}]}}}}\n",
         "auth.yml:3:90: server.endpoints.authz.fa.authn_strategies: unknown strategy 'Cookie' (one of "
         "CookieSession, HeaderAuthorization, HeaderProxyAuthorization, HeaderAuthRequestProxyAuthorization, "
         "HeaderLegacy)"},
        {BASE "server: {endpoints: {authz: {ex: {implementation: ExtAuthz}, ex/fa: {implementation: "
              "ForwardAuth}}}}\n",
         "auth.yml:3:62: server.endpoints.authz.ex/fa: /api/authz/ex/fa lies under /api/authz/ex, whose "
         "ExtAuthz implementation takes every path below it"},
        {"authentication_backend: {file: {path: /x}, password_reset: {disable: false}}\nsession: {domain: "
         "example.com}\n",
         "auth.yml:1:44: authentication_backend.password_reset is not supported by xtask-auth (no reset "
         "flow: "
         "passwords change in the users file): remove it or set "
         "authentication_backend.password_reset.disable: "
         "true"},
        {BASE "server: {endpoints: {rate_limits: {}}}\n",
         "auth.yml:3:22: server.endpoints.rate_limits is not supported by xtask-auth (regulation and "
         "server.hash_queue bound sign-ins)"},
        {BASE "identity_providers:\n  oidc: {hmac_secret: x}\n",
         "auth.yml:4:3: identity_providers.oidc is not supported by xtask-auth (no OpenID Connect provider)"},
        {BASE "webauthn: {display_name: x}\n", "auth.yml:3:1: webauthn is not supported by xtask-auth (TOTP "
                                               "is its only second factor): remove it or "
                                               "set webauthn.disable: true"},
        {BASE "duo_api: {disable: false, hostname: x}\n",
         "auth.yml:3:1: duo_api is not supported by xtask-auth (TOTP is its only second factor): remove it "
         "or "
         "set duo_api.disable: true"},
        {BASE "regulation: {modes: [user, ipp]}\n",
         "auth.yml:3:28: regulation.modes: unknown mode 'ipp' (user, ip)"},
        {BASE "regulation: {modes: []}\n", "auth.yml:3:21: regulation.modes: a list of 'user' and/or 'ip'"},
        {"authentication_backend: {file: {path: /x}}\nsession:\n  domain: example.com\n  secret: ${NOPE}\n",
         "auth.yml:4:11: environment variable 'NOPE' is not set (use ${NOPE:-default} to give a default)"},
    };
    size_t i;
    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        auth_config c;
        char err[512] = "";
        if (auth_config_load_mem("auth.yml", cases[i].text, env_fn, NULL, &c, err, sizeof(err)) == 0) {
            auth_config_free(&c);
            fail_msg("case %zu loaded, expected: %s", i, cases[i].msg);
        }
        if (strcmp(err, cases[i].msg) != 0) fail_msg("case %zu:\n got: %s\nwant: %s", i, err, cases[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(good_full), cmocka_unit_test(errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
