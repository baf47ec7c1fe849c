/* Unit tests for manifest.c: a full manifest with every field, the defaults, ${VAR} expansion,
 * every validation error with its exact message, and the per-service digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"

static manifest *load(const char *text, char *err, size_t errlen)
{
    manifest *m = NULL;
    if (manifest_load_mem("t.yaml", text, strlen(text), &m, err, errlen) != 0) {
        assert_null(m);
        return NULL;
    }
    return m;
}

static manifest *load_ok(const char *text)
{
    char err[1024] = "";
    manifest *m = load(text, err, sizeof(err));
    if (m == NULL) fail_msg("unexpected error: %s", err);
    return m;
}

static const mf_service *svc(const manifest *m, const char *name)
{
    int i = manifest_find(m, name);
    assert_true(i >= 0);
    return &m->services[i];
}

static void assert_strv(char *const *v, const char *const *want)
{
    size_t i;
    assert_non_null(v);
    for (i = 0; want[i] != NULL; i++) {
        assert_non_null(v[i]);
        assert_string_equal(v[i], want[i]);
    }
    assert_null(v[i]);
}

/* The example of ARCHITECTURE.md plus every other key, with explicit values. */
static const char full_manifest[] =
    "version: 1\n"
    "supervisor:\n"
    "  control_socket: /tmp/xt-test/supervisor.sock\n"
    "  stop_timeout: 4500ms\n"
    "  status_http: 127.0.0.1:20100\n"
    "  log: { format: json }\n"
    "env:\n"
    "  FLY_REGION: ams\n"
    "  NATS_SERVER_NAME: xtask-ams\n"
    "secrets:\n"
    "  AUTH_SESSION_SECRET: { bytes: 48, file: /tmp/xt-test/secrets/session }\n"
    "  OTHER: { file: rel/other }\n"
    "services:\n"
    "  render:\n"
    "    type: oneshot\n"
    "    command: [sh, -c, 'echo rendered']\n"
    "    restart: never\n"
    "  nats:\n"
    "    command: [nats-server, --config, /etc/xtask/nats.conf]\n"
    "    depends_on: { render: completed }\n"
    "    ready:\n"
    "      http: http://127.0.0.1:8222/healthz?js-enabled-only=true\n"
    "      interval: 200ms\n"
    "      timeout: 2s\n"
    "      start_period: 45s\n"
    "    live:\n"
    "      tcp: 127.0.0.1:4222\n"
    "      interval: 5s\n"
    "      failures: 4\n"
    "      start_period: 10s\n"
    "    restart: always\n"
    "    backoff: { initial: 200ms, max: 20s, reset_after: 90s }\n"
    "    restart_limit: { count: 7, window: 2m }\n"
    "    stop: { signal: SIGINT, timeout: 2s }\n"
    "    essential: true\n"
    "    env: { NATS_DEBUG: '1', EMPTY: \"\" }\n"
    "    workdir: /var/lib/nats\n"
    "    user: nats\n"
    "    autostart: yes\n"
    "    secrets: [OTHER]\n"
    "  xtask:\n"
    "    command: [xtask, --nats-mode, --cluster-url, \"nats://127.0.0.1:4222\"]\n"
    "    depends_on: { nats: ready }\n"
    "    ready: { exec: [xtask, ping] }\n"
    "    user: '1000'\n"
    "    restart: on-failure\n"
    "    stop: { signal: 1 }\n"
    "  auth:\n"
    "    secrets: [AUTH_SESSION_SECRET]\n"
    "    command: [xtask-auth, --config, /etc/xtask/auth.yml]\n"
    "    ready: { http: \"https://127.0.0.1:9091/api/health\" }\n"
    "    stop: { signal: quit }\n"
    "    autostart: false\n"
    "  web:\n"
    "    command: [xtask-web, --config, /etc/xtask/web.yaml]\n"
    "    depends_on: { nats: started, auth: ready }\n"
    "    ready: { tcp: \"[::1]:8080\" }\n"
    "    stop: { signal: TERM }\n";

static void test_full_manifest(void **state)
{
    (void)state;
    manifest *m = load_ok(full_manifest);
    assert_string_equal(m->path, "t.yaml");
    assert_string_equal(m->control_socket, "/tmp/xt-test/supervisor.sock");
    assert_int_equal(m->stop_timeout_ms, 4500);
    assert_string_equal(m->status_http, "127.0.0.1:20100");
    assert_int_equal(m->log_format, MF_LOG_JSON);
    static const char *const genv[] = {"FLY_REGION=ams", "NATS_SERVER_NAME=xtask-ams", NULL};
    assert_strv(m->env, genv);

    assert_int_equal(m->nsecrets, 2);
    assert_string_equal(m->secrets[0].name, "AUTH_SESSION_SECRET");
    assert_int_equal(m->secrets[0].bytes, 48);
    assert_string_equal(m->secrets[0].file, "/tmp/xt-test/secrets/session");
    assert_int_equal(m->secrets[0].line, 11);
    assert_int_equal(m->secrets[0].col, 3);
    assert_string_equal(m->secrets[1].name, "OTHER");
    assert_int_equal(m->secrets[1].bytes, 32);
    assert_string_equal(m->secrets[1].file, "rel/other");

    assert_int_equal(m->nservices, 5);
    const mf_service *r = svc(m, "render");
    assert_int_equal(r->type, SVC_TYPE_ONESHOT);
    assert_int_equal(r->restart, RESTART_NEVER);
    assert_int_equal(r->argc, 3);
    assert_string_equal(r->argv[2], "echo rendered");
    assert_null(r->argv[3]);
    assert_int_equal(r->line, 14);
    assert_int_equal(r->col, 3);

    const mf_service *n = svc(m, "nats");
    static const char *const nargv[] = {"nats-server", "--config", "/etc/xtask/nats.conf", NULL};
    assert_strv(n->argv, nargv);
    assert_int_equal(n->argc, 3);
    assert_int_equal(n->type, SVC_TYPE_LONGRUN);
    assert_int_equal(n->ndeps, 1);
    assert_string_equal(n->deps[0].name, "render");
    assert_int_equal(n->deps[0].index, 0);
    assert_int_equal(n->deps[0].cond, DEP_COMPLETED);
    assert_int_equal(n->deps[0].line, 20);
    assert_int_equal(n->deps[0].col, 19);
    assert_int_equal(n->ready.kind, PROBE_HTTP);
    assert_string_equal(n->ready.target, "http://127.0.0.1:8222/healthz?js-enabled-only=true");
    assert_int_equal(n->ready.interval_ms, 200);
    assert_int_equal(n->ready.timeout_ms, 2000);
    assert_int_equal(n->ready.start_period_ms, 45000);
    assert_int_equal(n->ready.line, 21);
    assert_int_equal(n->ready.col, 5);
    assert_int_equal(n->live.kind, PROBE_TCP);
    assert_string_equal(n->live.target, "127.0.0.1:4222");
    assert_int_equal(n->live.interval_ms, 5000);
    assert_int_equal(n->live.timeout_ms, 1000);
    assert_int_equal(n->live.failures, 4);
    assert_int_equal(n->live.start_period_ms, 10000);
    assert_int_equal(n->restart, RESTART_ALWAYS);
    assert_int_equal(n->backoff_initial_ms, 200);
    assert_int_equal(n->backoff_max_ms, 20000);
    assert_int_equal(n->backoff_reset_ms, 90000);
    assert_int_equal(n->restart_limit_count, 7);
    assert_int_equal(n->restart_limit_window_ms, 120000);
    assert_int_equal(n->stop_signal, SIGINT);
    assert_int_equal(n->stop_timeout_ms, 2000);
    assert_int_equal(n->essential, 1);
    static const char *const nenv[] = {"NATS_DEBUG=1", "EMPTY=", NULL};
    assert_strv(n->env, nenv);
    assert_string_equal(n->workdir, "/var/lib/nats");
    assert_string_equal(n->user, "nats");
    assert_int_equal(n->autostart, 1);

    const mf_service *x = svc(m, "xtask");
    assert_int_equal(x->ready.kind, PROBE_EXEC);
    static const char *const xready[] = {"xtask", "ping", NULL};
    assert_strv(x->ready.argv, xready);
    assert_null(x->ready.target);
    assert_string_equal(x->argv[3], "nats://127.0.0.1:4222");
    assert_string_equal(x->user, "1000");
    assert_int_equal(x->restart, RESTART_ON_FAILURE);
    assert_int_equal(x->stop_signal, SIGHUP);
    assert_int_equal(x->deps[0].index, 1);
    assert_int_equal(x->deps[0].cond, DEP_READY);

    const mf_service *a = svc(m, "auth");
    assert_string_equal(a->ready.target, "https://127.0.0.1:9091/api/health");
    assert_int_equal(a->stop_signal, SIGQUIT);
    assert_int_equal(a->autostart, 0);

    const mf_service *w = svc(m, "web");
    assert_int_equal(w->ndeps, 2);
    assert_int_equal(w->deps[0].cond, DEP_STARTED);
    assert_int_equal(w->deps[1].cond, DEP_READY);
    assert_int_equal(w->deps[1].index, 3);
    assert_int_equal(w->ready.kind, PROBE_TCP);
    assert_string_equal(w->ready.target, "[::1]:8080");
    assert_int_equal(w->stop_signal, SIGTERM);

    /* render, nats, xtask, auth, web in file order is already a valid start order */
    for (int i = 0; i < 5; i++)
        assert_int_equal(m->order[i], i);
    assert_int_equal(manifest_find(m, "nope"), -1);
    assert_int_equal(manifest_find(NULL, "nats"), -1);
    manifest_free(m);
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("XTASK_RUN_DIR");
    manifest *m = load_ok("version: 1\nservices:\n  a:\n    command: [a]\n  b:\n    command: [b]\n"
                          "    type: oneshot\n  c:\n    command: [c]\n    ready: {tcp: 'localhost:1'}\n"
                          "    live: {exec: [true]}\n    backoff:\n    depends_on:\n");
    assert_string_equal(m->control_socket, "/run/xtask/supervisor.sock");
    assert_int_equal(m->stop_timeout_ms, 4000);
    assert_null(m->status_http);
    assert_int_equal(m->log_format, MF_LOG_TEXT);
    assert_non_null(m->env);
    assert_null(m->env[0]);
    assert_int_equal(m->nsecrets, 0);
    const mf_service *a = svc(m, "a");
    assert_int_equal(a->type, SVC_TYPE_LONGRUN);
    assert_int_equal(a->argc, 1);
    assert_non_null(a->env);
    assert_null(a->env[0]);
    assert_null(a->workdir);
    assert_null(a->user);
    assert_int_equal(a->ndeps, 0);
    assert_int_equal(a->ready.kind, PROBE_NONE);
    assert_int_equal(a->live.kind, PROBE_NONE);
    assert_int_equal(a->restart, RESTART_ALWAYS);
    assert_int_equal(a->backoff_initial_ms, 100);
    assert_int_equal(a->backoff_max_ms, 30000);
    assert_int_equal(a->backoff_reset_ms, 60000);
    assert_int_equal(a->restart_limit_count, 10);
    assert_int_equal(a->restart_limit_window_ms, 60000);
    assert_int_equal(a->stop_signal, SIGTERM);
    assert_int_equal(a->stop_timeout_ms, 3000);
    assert_int_equal(a->essential, 0);
    assert_int_equal(a->autostart, 1);
    assert_int_equal(strlen(a->digest), 64);
    const mf_service *b = svc(m, "b");
    assert_int_equal(b->type, SVC_TYPE_ONESHOT);
    assert_int_equal(b->restart, RESTART_ON_FAILURE);
    const mf_service *c = svc(m, "c");
    assert_int_equal(c->ready.kind, PROBE_TCP);
    assert_int_equal(c->ready.interval_ms, 100);
    assert_int_equal(c->ready.timeout_ms, 1000);
    assert_int_equal(c->ready.start_period_ms, 30000);
    assert_int_equal(c->ready.failures, 3);
    assert_int_equal(c->live.kind, PROBE_EXEC);
    assert_int_equal(c->live.interval_ms, 5000);
    assert_int_equal(c->live.timeout_ms, 1000);
    assert_int_equal(c->live.start_period_ms, 0);
    assert_int_equal(c->live.failures, 3);
    assert_int_equal(c->backoff_initial_ms, 100);
    assert_int_equal(c->ndeps, 0);
    manifest_free(m);
}

static void test_expansion(void **state)
{
    (void)state;
    setenv("XT_MF_REGION", "syd", 1);
    setenv("XT_MF_DIR", "/srv/xt", 1);
    setenv("XTASK_RUN_DIR", "/tmp/xt-run", 1);
    unsetenv("XT_MF_UNSET");
    manifest *m = load_ok("version: 1\n"
                          "env:\n"
                          "  FLY_REGION: ${XT_MF_REGION:-local}\n"
                          "  NATS_SERVER_NAME: xtask-${XT_MF_UNSET:-local}\n"
                          "  PRICE: $$5 and $HOME\n"
                          "secrets:\n"
                          "  S: { file: \"${XT_MF_DIR}/secrets/s\" }\n"
                          "services:\n"
                          "  nats:\n"
                          "    command: [nats-server, --config, \"${XT_MF_DIR:-/etc/xtask}/nats.conf\"]\n"
                          "    stop: { timeout: '${XT_MF_UNSET:-2s}' }\n"
                          "    ready: { http: 'http://127.0.0.1:${XT_MF_UNSET:-8222}/healthz' }\n"
                          "    secrets: [S]\n");
    static const char *const env[] = {"FLY_REGION=syd", "NATS_SERVER_NAME=xtask-local", "PRICE=$5 and $HOME",
                                      NULL};
    assert_strv(m->env, env);
    assert_string_equal(m->secrets[0].file, "/srv/xt/secrets/s");
    assert_string_equal(m->services[0].argv[2], "/srv/xt/nats.conf");
    assert_int_equal(m->services[0].stop_timeout_ms, 2000);
    assert_string_equal(m->services[0].ready.target, "http://127.0.0.1:8222/healthz");
    assert_string_equal(m->control_socket, "/tmp/xt-run/supervisor.sock"); /* the default, expanded */
    manifest_free(m);
    unsetenv("XTASK_RUN_DIR");

    char err[512];
    assert_null(
        load("version: 1\nservices:\n  a:\n    command: [x, \"--dir=${XT_MF_UNSET}\"]\n", err, sizeof(err)));
    assert_string_equal(
        err, "t.yaml:4:25: environment variable 'XT_MF_UNSET' is not set (use ${XT_MF_UNSET:-default} "
             "to give a default)");
}

/* --- every validation error ---------------------------------------------------------------- */

#define V1 "version: 1\n"
#define SVC "services:\n  a:\n    command: [x]\n"

static const struct {
    const char *text;
    const char *err;
} bad[] = {
    /* document and top level */
    {"", "t.yaml:1:1: the manifest is empty (it needs 'version: 1' and 'services:')"},
    {"- a\n- b\n",
     "t.yaml:1:1: the manifest must be a mapping with 'version: 1' and 'services:', not a list"},
    {"services:\n  a: {command: [x]}\n", "t.yaml:1:1: the manifest has no 'version' (add 'version: 1')"},
    {"version: 2\n" SVC, "t.yaml:1:10: version: unsupported version '2' (this supervisor reads version 1)"},
    {"version: [1]\n" SVC, "t.yaml:1:10: version: expected 1, got a list"},
    {"version:\n" SVC, "t.yaml:1:1: version: expected 1, got nothing"},
    {V1, "t.yaml:1:1: the manifest has no 'services'"},
    {V1 "services:\n", "t.yaml:2:1: services: no services defined"},
    {V1 "services: {}\n", "t.yaml:2:11: services: no services defined"},
    {V1 "services: [a]\n", "t.yaml:2:11: services: expected a mapping, got a list"},
    {V1 "servces:\n  a: {command: [x]}\n",
     "t.yaml:2:1: unknown key 'servces' in the manifest (did you mean 'services'?)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {notify: 2}\n",
     "t.yaml:5:21: services.a.ready.notify: 2 is out of range (3 to 255)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {log: \"a(\"}\n",
     "t.yaml:5:18: services.a.ready.log: 'a(' is not a valid extended regular expression: Unmatched ( or "
     "\\("},
    {V1 "services:\n  a:\n    command: [x]\n    live: {notify: 3}\n",
     "t.yaml:5:12: services.a.live: 'notify' says when a service is ready, it cannot check liveness (use "
     "tcp, "
     "http or exec)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {sd_notify: false}\n",
     "t.yaml:5:24: services.a.ready.sd_notify: only 'true' makes sense (leave it out for no sd_notify)"},
    {V1 "services:\n  a:\n    command: [x]\n    live: {sd_notify: true}\n",
     "t.yaml:5:12: services.a.live: 'sd_notify' says when a service is ready, it cannot check liveness (use "
     "tcp, http or exec, or watchdog: for WATCHDOG=1 pings)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {tcp: \"127.0.0.1:1\"}\n    watchdog: 1s\n",
     "t.yaml:6:15: services.a.watchdog: needs ready: { sd_notify: true } (WATCHDOG=1 comes on the notify "
     "socket)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {sd_notify: true}\n    watchdog: 0s\n",
     "t.yaml:6:15: services.a.watchdog: must be more than 0"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {notfy: 3}\n",
     "t.yaml:5:13: unknown key 'notfy' in services.a.ready (did you mean 'notify'?)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {notify: 3, log: x}\n",
     "t.yaml:5:24: services.a.ready: has both 'notify' and 'log' (a probe checks one thing)"},
    {V1 "services:\n  a:\n    command: [x]\n    ready: {}\n",
     "t.yaml:5:5: services.a.ready: needs one of tcp, http, exec, notify, sd_notify or log"},
    {V1 "x-anchors: &a [1]\nfoo: 1\n" SVC, "t.yaml:3:1: unknown key 'foo' in the manifest (known keys: "
                                           "version, supervisor, env, secrets, services)"},
    {V1 SVC "    x-note: hi\n",
     "t.yaml:5:5: unknown key 'x-note' in service 'a' (known keys: command, type, depends_on, "
     "ready, live, restart, backoff, restart_limit, stop, essential, user, group, env, secrets, "
     "workdir, autostart, watchdog)"},
    {V1 "foo: 1\n" SVC, "t.yaml:2:1: unknown key 'foo' in the manifest (known keys: version, supervisor, "
                        "env, secrets, services)"},
    /* supervisor */
    {V1 "supervisor:\n  stop_timout: 4s\n" SVC,
     "t.yaml:3:3: unknown key 'stop_timout' in 'supervisor' (did you mean 'stop_timeout'?)"},
    {V1 "supervisor: [x]\n" SVC, "t.yaml:2:13: supervisor: expected a mapping, got a list"},
    {V1 "supervisor:\n  stop_timeout: 5\n" SVC,
     "t.yaml:3:17: supervisor.stop_timeout: '5' needs a unit: ms, s, m, h"},
    {V1 "supervisor:\n  stop_timeout: 0s\n" SVC, "t.yaml:3:17: supervisor.stop_timeout: must be more than 0"},
    {V1 "supervisor:\n  stop_timeout: -1s\n" SVC,
     "t.yaml:3:17: supervisor.stop_timeout: '-1s' must not be negative"},
    {V1 "supervisor:\n  stop_timeout: 5 s\n" SVC,
     "t.yaml:3:17: supervisor.stop_timeout: '5 s' is not a duration (e.g. 100ms, 5s, 2m, 1h30m)"},
    {V1 "supervisor:\n  stop_timeout: 2d\n" SVC,
     "t.yaml:3:17: supervisor.stop_timeout: 2d is too long (at most 1d)"},
    {V1 "supervisor:\n  status_http: 9100\n" SVC,
     "t.yaml:3:16: supervisor.status_http: '9100' has no port (expected host:port, e.g. 127.0.0.1:9100)"},
    {V1 "supervisor:\n  status_http: ':9100'\n" SVC,
     "t.yaml:3:16: supervisor.status_http: ':9100' has no host (expected host:port, e.g. 127.0.0.1:9100)"},
    {V1 "supervisor:\n  status_http: 127.0.0.1:99999\n" SVC,
     "t.yaml:3:16: supervisor.status_http: '127.0.0.1:99999' has a bad port (1 to 65535) (expected "
     "host:port, e.g. "
     "127.0.0.1:9100)"},
    {V1 "supervisor:\n  status_http: ::1:9100\n" SVC,
     "t.yaml:3:16: supervisor.status_http: '::1:9100' is not host:port (write an IPv6 address in brackets: "
     "[::1]:port) (expected host:port, e.g. 127.0.0.1:9100)"},
    {V1 "supervisor:\n  log: { format: xml }\n" SVC,
     "t.yaml:3:18: supervisor.log.format: unknown log format 'xml' (expected text or json)"},
    {V1 "supervisor:\n  log: { format: jsn }\n" SVC,
     "t.yaml:3:18: supervisor.log.format: unknown log format 'jsn' (did you mean 'json'?)"},
    {V1 "supervisor:\n  log: json\n" SVC, "t.yaml:3:8: supervisor.log: expected a mapping, got a string"},
    {V1 "supervisor:\n  log: { fromat: json }\n" SVC,
     "t.yaml:3:10: unknown key 'fromat' in supervisor.log (did you mean 'format'?)"},
    {V1 "supervisor:\n  control_socket: ''\n" SVC,
     "t.yaml:3:19: supervisor.control_socket: must not be empty"},
    {V1 "supervisor:\n  control_socket: "
        "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n" SVC,
     "t.yaml:3:19: supervisor.control_socket: "
     "'/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock' is too long for a Unix socket (at most 107 "
     "bytes)"},
    /* env */
    {V1 "env: [A=1]\n" SVC, "t.yaml:2:6: env: expected a mapping, got a list"},
    {V1 "env:\n  A: [1, 2]\n" SVC, "t.yaml:3:6: env.A: expected a string, got a list"},
    {V1 "env:\n  A: {b: 1}\n" SVC, "t.yaml:3:6: env.A: expected a string, got a mapping"},
    {V1 "env:\n  A:\n" SVC, "t.yaml:3:3: env.A: has no value (write \"\" for an empty string)"},
    {V1 "env:\n  1A: x\n" SVC,
     "t.yaml:3:3: env: invalid variable name '1A' (letters, digits and '_', not starting with a digit)"},
    {V1 "env:\n  A-B: x\n" SVC,
     "t.yaml:3:3: env: invalid variable name 'A-B' (letters, digits and '_', not starting with a digit)"},
    /* secrets */
    {V1 "secrets:\n  S: { bytes: 0, file: /x }\n" SVC,
     "t.yaml:3:15: secrets.S.bytes: 0 is out of range (1 to 1024)"},
    {V1 "secrets:\n  S: { bytes: 4096, file: /x }\n" SVC,
     "t.yaml:3:15: secrets.S.bytes: 4096 is out of range (1 to 1024)"},
    {V1 "secrets:\n  S: { bytes: lots, file: /x }\n" SVC,
     "t.yaml:3:15: secrets.S.bytes: 'lots' is not a whole number"},
    {V1 "secrets:\n  S: { bytes: 32 }\n" SVC,
     "t.yaml:3:3: secret 'S' has no 'file' (where the value is kept between starts)"},
    {V1 "secrets:\n  S:\n" SVC,
     "t.yaml:3:3: secret 'S' has no 'file' (where the value is kept between starts)"},
    {V1 "secrets:\n  S: /data/s\n" SVC,
     "t.yaml:3:6: secrets.S: expected a mapping {bytes: 32, file: PATH}, got a string"},
    {V1 "secrets:\n  S: { file: /x, mode: 600 }\n" SVC,
     "t.yaml:3:18: unknown key 'mode' in secret 'S' (known keys: bytes, file, encoding, prefix)"},
    {V1 "secrets:\n  my-secret: { file: /x }\n" SVC,
     "t.yaml:3:3: invalid secret name 'my-secret' (it is exported as an environment variable: letters, "
     "digits and "
     "'_', not starting with a digit)"},
    {V1 "env:\n  S: x\nsecrets:\n  S: { file: /x }\n" SVC,
     "t.yaml:5:3: secret 'S' is also set in env (the secret is exported under that name)"},
    {V1 "secrets:\n  S: { file: /x }\n" SVC "    env: { S: y }\n",
     "t.yaml:3:3: secret 'S' is also set in services.a.env (the secret is exported under that name)"},
    /* service names and bodies */
    {V1 "services:\n  Web: {command: [x]}\n", "t.yaml:3:3: invalid service name 'Web' (lowercase letters, "
                                              "digits, '-' and '_', starting with a letter or "
                                              "digit, at most 48 bytes)"},
    {V1 "services:\n  -web: {command: [x]}\n", "t.yaml:3:3: invalid service name '-web' (lowercase letters, "
                                               "digits, '-' and '_', starting with a letter or "
                                               "digit, at most 48 bytes)"},
    {V1 "services:\n  a234567890123456789012345678901234567890123456789: {command: [x]}\n",
     "t.yaml:3:3: invalid service name 'a234567890123456789012345678901234567890123456789' (lowercase "
     "letters, "
     "digits, '-' and '_', starting with a letter or digit, at most 48 bytes)"},
    {V1 "services:\n  a: {command: [x]}\n  a: {command: [y]}\n",
     "t.yaml:4:3: duplicate key 'a' (first defined at line 3)"},
    {V1 "services:\n  a:\n",
     "t.yaml:3:3: service 'a' has no 'command' (the program to run, as a list: [program, "
     "arg, ...])"},
    {V1 "services:\n  a: {restart: always}\n",
     "t.yaml:3:3: service 'a' has no 'command' (the program to run, as a list: [program, arg, ...])"},
    {V1 "services:\n  a: nats-server\n", "t.yaml:3:6: services.a: expected a mapping, got a string"},
    {V1 "services:\n  a:\n    command: [x]\n    helth: {tcp: 'h:1'}\n",
     "t.yaml:5:5: unknown key 'helth' in service 'a' (did you mean 'ready'?)"},
    {V1 "services:\n  a:\n    command: [x]\n    healthcheck: {tcp: 'h:1'}\n",
     "t.yaml:5:5: unknown key 'healthcheck' in service 'a' (did you mean 'ready'?)"},
    {V1 "services:\n  a:\n    command: [x]\n    environment: {A: b}\n",
     "t.yaml:5:5: unknown key 'environment' in service 'a' (did you mean 'env'?)"},
    {V1 SVC "    ready: {url: 'http://h/'}\n",
     "t.yaml:5:13: unknown key 'url' in services.a.ready (did you mean 'http'?)"},
    {V1 "services:\n  a:\n    comand: [x]\n", "t.yaml:4:5: unknown key 'comand' in service 'a' (did you mean "
                                              "'command'?)"},
    /* command */
    {V1 "services:\n  a:\n    command: nats-server --config /etc/nats.conf\n",
     "t.yaml:4:14: services.a.command: must be a list, e.g. [nats-server, --config, /etc/nats.conf] (a "
     "string is not "
     "split into arguments)"},
    {V1 "services:\n  a:\n    command: \"sh -c 'exec x'\"\n",
     "t.yaml:4:14: services.a.command: must be a list of arguments, e.g. [sh, -c, \"...\"] (a string is not "
     "split "
     "into arguments)"},
    {V1 "services:\n  a:\n    command: []\n", "t.yaml:4:14: services.a.command: must not be an empty list"},
    {V1 "services:\n  a:\n    command:\n",
     "t.yaml:4:5: services.a.command: has no value (a list like [program, arg, ...])"},
    {V1 "services:\n  a:\n    command: ['', x]\n",
     "t.yaml:4:15: services.a.command: the program name (first item) is empty"},
    {V1 "services:\n  a:\n    command: [x, [y]]\n",
     "t.yaml:4:18: services.a.command: item 2: expected a string, got a list"},
    {V1 "services:\n  a:\n    command: {x: y}\n",
     "t.yaml:4:14: services.a.command: expected a list, got a mapping"},
    /* type, restart */
    {V1 SVC "    type: daemon\n", "t.yaml:5:11: services.a.type: unknown service type 'daemon' (did you mean "
                                  "'longrun'?)"},
    {V1 SVC "    type: batch\n",
     "t.yaml:5:11: services.a.type: unknown service type 'batch' (expected longrun or oneshot)"},
    {V1 SVC "    restart: allways\n",
     "t.yaml:5:14: services.a.restart: unknown restart policy 'allways' (did you mean 'always'?)"},
    {V1 SVC "    restart: on_failure\n",
     "t.yaml:5:14: services.a.restart: unknown restart policy 'on_failure' (did you mean 'on-failure'?)"},
    {V1 SVC "    restart: no\n",
     "t.yaml:5:14: services.a.restart: unknown restart policy 'no' (did you mean 'never'?)"},
    {V1 SVC "    restart: sometimes\n", "t.yaml:5:14: services.a.restart: unknown restart policy 'sometimes' "
                                        "(expected always, on-failure or never)"},
    {V1 SVC "    restart: [always]\n", "t.yaml:5:14: services.a.restart: expected a string, got a list"},
    {V1 SVC "    type: oneshot\n    restart: always\n",
     "t.yaml:6:14: services.a.restart: a oneshot service runs to completion: use on-failure or never, not "
     "always"},
    {V1 SVC "    type: oneshot\n    live: {tcp: 'h:1'}\n",
     "t.yaml:6:5: services.a.live: a oneshot service has no liveness probe"},
    /* depends_on */
    {V1 SVC "  b:\n    command: [x]\n    depends_on: {zzz: ready}\n",
     "t.yaml:7:18: service 'b' depends on unknown service 'zzz'"},
    {V1 "services:\n  nats: {command: [x]}\n  web:\n    command: [x]\n    depends_on: [natz]\n",
     "t.yaml:6:18: service 'web' depends on unknown service 'natz' (did you mean 'nats'?)"},
    {V1 SVC "    depends_on: [a]\n", "t.yaml:5:18: service 'a' depends on itself"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: {a: redy}\n",
     "t.yaml:7:21: services.b.depends_on.a: unknown dependency condition 'redy' (did you mean 'ready'?)"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: {a: healthy}\n",
     "t.yaml:7:21: services.b.depends_on.a: unknown dependency condition 'healthy' (did you mean 'ready'?)"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: {a: completed}\n",
     "t.yaml:7:21: services.b.depends_on.a: 'completed' needs a oneshot service, and 'a' is not (type: "
     "oneshot)"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: a\n",
     "t.yaml:7:17: services.b.depends_on: expected a mapping {service: condition} or a list of services, got "
     "a "
     "string"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: [a, a]\n",
     "t.yaml:7:21: services.b.depends_on: 'a' is listed "
     "twice"},
    {V1 SVC "  b:\n    command: [x]\n    depends_on: [a, {c: ready}]\n",
     "t.yaml:7:21: services.b.depends_on: item 2: expected a service name, got a mapping"},
    {V1 "services:\n  a: {command: [x], depends_on: [b]}\n  b: {command: [x], depends_on: [a]}\n",
     "t.yaml:3:3: dependency cycle: a -> b -> a"},
    /* probes */
    {V1 SVC "    ready:\n",
     "t.yaml:5:5: services.a.ready: needs one of tcp, http, exec, notify, sd_notify or log"},
    {V1 SVC "    ready: {interval: 1s}\n",
     "t.yaml:5:5: services.a.ready: needs one of tcp, http, exec, notify, sd_notify or log"},
    {V1 SVC "    ready: {tcp: 'h:1', http: 'http://h/'}\n",
     "t.yaml:5:25: services.a.ready: has both 'tcp' and 'http' (a probe checks one thing)"},
    {V1 SVC "    live: {exec: [x], tcp: 'h:1'}\n",
     "t.yaml:5:23: services.a.live: has both 'exec' and 'tcp' (a probe checks one thing)"},
    {V1 SVC "    ready: http://h/\n", "t.yaml:5:12: services.a.ready: expected a mapping, got a string"},
    {V1 SVC "    ready: {tcp: localhost}\n",
     "t.yaml:5:18: services.a.ready.tcp: 'localhost' has no port (expected host:port, e.g. 127.0.0.1:4222)"},
    {V1 SVC "    ready: {tcp: 'localhost:0'}\n",
     "t.yaml:5:18: services.a.ready.tcp: 'localhost:0' has a bad port (1 to 65535) (expected host:port, e.g. "
     "127.0.0.1:4222)"},
    {V1 SVC "    ready: {http: 'ftp://h/x'}\n",
     "t.yaml:5:19: services.a.ready.http: 'ftp://h/x' is not an http:// or https:// URL"},
    {V1 SVC "    ready: {http: '127.0.0.1:8080/health'}\n",
     "t.yaml:5:19: services.a.ready.http: '127.0.0.1:8080/health' is not an http:// or https:// URL"},
    {V1 SVC "    ready: {http: 'http:///health'}\n",
     "t.yaml:5:19: services.a.ready.http: 'http:///health' has no host"},
    {V1 SVC "    ready: {http: 'http://h/x', insecure: true}\n",
     "t.yaml:5:43: services.a.ready.insecure: only an https:// probe has a certificate to leave unchecked"},
    {V1 SVC "    live: {tcp: 'h:1', insecure: yes}\n",
     "t.yaml:5:34: services.a.live.insecure: only an https:// probe has a certificate to leave unchecked"},
    {V1 SVC "    ready: {exec: 'xtask ping'}\n",
     "t.yaml:5:19: services.a.ready.exec: must be a list, e.g. [xtask, ping] (a string is not split into "
     "arguments)"},
    {V1 SVC "    ready: {htp: 'http://h/'}\n",
     "t.yaml:5:13: unknown key 'htp' in services.a.ready (did you mean 'http'?)"},
    {V1 SVC "    ready: {tcp: 'h:1', interval: 100}\n",
     "t.yaml:5:35: services.a.ready.interval: '100' needs a unit: ms, s, m, h"},
    {V1 SVC "    ready: {tcp: 'h:1', timeout: 0}\n",
     "t.yaml:5:34: services.a.ready.timeout: must be more than 0"},
    {V1 SVC "    ready: {tcp: 'h:1', start_period: 0s}\n",
     "t.yaml:5:39: services.a.ready.start_period: must be more than 0 (how long the service may take to "
     "become "
     "ready)"},
    {V1 SVC "    live: {tcp: 'h:1', failures: 0}\n",
     "t.yaml:5:34: services.a.live.failures: 0 is out of range (1 to "
     "1000)"},
    {V1 SVC "    live: {tcp: 'h:1', failures: -2}\n",
     "t.yaml:5:34: services.a.live.failures: -2 is out of range (1 to 1000)"},
    {V1 SVC "    live: {tcp: 'h:1', interval: }\n",
     "t.yaml:5:24: services.a.live.interval: has no value (a duration like 100ms, 5s or 2m)"},
    /* backoff, restart_limit, stop */
    {V1 SVC "    backoff: {initial: 10s, max: 1s}\n",
     "t.yaml:5:34: services.a.backoff: max (1s) is less than initial "
     "(10s)"},
    {V1 SVC "    backoff: {initial: 1m}\n",
     "t.yaml:5:24: services.a.backoff: max (30s) is less than initial (1m)"},
    {V1 SVC "    backoff: {inital: 1s}\n",
     "t.yaml:5:15: unknown key 'inital' in services.a.backoff (did you mean 'initial'?)"},
    {V1 SVC "    backoff: 1s\n", "t.yaml:5:14: services.a.backoff: expected a mapping, got a string"},
    {V1 SVC "    backoff: {reset_after: 0ms}\n",
     "t.yaml:5:28: services.a.backoff.reset_after: must be more than 0"},
    {V1 SVC "    restart_limit: {count: 0}\n",
     "t.yaml:5:28: services.a.restart_limit.count: 0 is out of range (1 to 100000)"},
    {V1 SVC "    restart_limit: {count: 3, window: 60}\n",
     "t.yaml:5:39: services.a.restart_limit.window: '60' needs a unit: ms, s, m, h"},
    {V1 SVC "    stop: {signal: SIGTRM}\n",
     "t.yaml:5:20: services.a.stop.signal: unknown signal 'SIGTRM' (did you mean 'SIGTERM'?)"},
    {V1 SVC "    stop: {signal: TREM}\n",
     "t.yaml:5:20: services.a.stop.signal: unknown signal 'TREM' (did you mean 'SIGTERM'?)"},
    {V1 SVC "    stop: {signal: BOGUS}\n", "t.yaml:5:20: services.a.stop.signal: unknown signal 'BOGUS' (use "
                                           "SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, "
                                           "SIGUSR2 or SIGKILL)"},
    {V1 SVC "    stop: {signal: 99}\n", "t.yaml:5:20: services.a.stop.signal: signal 99 is not one a service "
                                        "can be stopped with (use SIGTERM, SIGINT, "
                                        "SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL)"},
    {V1 SVC "    stop: {signal: SIGSTOP}\n", "t.yaml:5:20: services.a.stop.signal: unknown signal 'SIGSTOP' "
                                             "(use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, "
                                             "SIGUSR2 or SIGKILL)"},
    {V1 SVC "    stop: {timeout: -3s}\n", "t.yaml:5:21: services.a.stop.timeout: '-3s' must not be negative"},
    {V1 SVC "    stop: {timeout: 3}\n",
     "t.yaml:5:21: services.a.stop.timeout: '3' needs a unit: ms, s, m, h"},
    /* scalars */
    {V1 SVC "    essential: maybe\n",
     "t.yaml:5:16: services.a.essential: expected true or false, got 'maybe'"},
    {V1 SVC "    autostart: [true]\n",
     "t.yaml:5:16: services.a.autostart: expected true or false, got a list"},
    {V1 SVC "    user: ''\n", "t.yaml:5:11: services.a.user: must not be empty"},
    {V1 SVC "    user: {name: x}\n", "t.yaml:5:11: services.a.user: expected a string, got a mapping"},
    {V1 SVC "    workdir:\n", "t.yaml:5:5: services.a.workdir: has no value"},
    {V1 SVC "    env: {X: [1]}\n", "t.yaml:5:14: services.a.env.X: expected a string, got a list"},
    {V1 SVC "    env: X=1\n", "t.yaml:5:10: services.a.env: expected a mapping, got a string"},
    /* secrets: encoding and prefix */
    {V1 "secrets:\n  S: {file: /s, encoding: base32}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:27: secrets.S.encoding: unknown secret encoding 'base32' (did you mean 'base64'?)"},
    {V1 "secrets:\n  S: {file: /s, encoding: url}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:27: secrets.S.encoding: unknown secret encoding 'url' (expected base64, hex or base64url)"},
    {V1 "secrets:\n  S: {file: /s, encoding: [hex]}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:27: secrets.S.encoding: expected a string, got a list"},
    {V1 "secrets:\n  S: {file: /s, prefix: ''}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:25: secrets.S.prefix: must not be empty"},
    {V1 "secrets:\n  S: {file: /s, prefix: 'a b'}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:25: secrets.S.prefix: 'a b' has a character that is not allowed (printable ASCII without "
     "spaces, quotes, '$', '\\' or '`')"},
    {V1 "secrets:\n  S: {file: /s, prefix: 0123456789abcdef0123456789abcdef0}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:25: secrets.S.prefix: longer than 32 bytes"},
    {V1 "secrets:\n  S: {file: /s, encodng: hex}\n"
        "services:\n  a: {command: [x]}\n",
     "t.yaml:3:17: unknown key 'encodng' in secret 'S' (did you mean 'encoding'?)"},
    /* YAML itself */
    {V1 "services:\n  a: {command: [x]\n",
     "t.yaml:4:1: YAML syntax error: did not find expected ',' or '}' while "
     "parsing a flow mapping"},
};

static void test_errors(void **state)
{
    (void)state;
    unsetenv("XTASK_RUN_DIR");
    int failures = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[1024] = "";
        manifest *m = load(bad[i].text, err, sizeof(err));
        if (m != NULL) {
            manifest_free(m);
            print_error("case %zu loaded, expected: %s\n", i, bad[i].err);
            failures++;
        } else if (strcmp(err, bad[i].err) != 0) {
            print_error("case %zu:\n  got:  %s\n  want: %s\n", i, err, bad[i].err);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Bounds: one past each maximum is refused at the first item beyond it. */
static void test_limits(void **state)
{
    (void)state;
    size_t cap = 128 * 1024, off;
    char *t = malloc(cap), err[512];
    assert_non_null(t);

    off = (size_t)snprintf(t, cap, "version: 1\nservices:\n");
    for (int i = 0; i <= MF_MAX_SERVICES; i++)
        off += (size_t)snprintf(t + off, cap - off, "  s%d: {command: [x]}\n", i);
    assert_null(load(t, err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1003:3: too many services (at most 1000)");

    off = (size_t)snprintf(t, cap, "version: 1\nservices:\n");
    for (int i = 0; i <= MF_MAX_DEPS; i++)
        off += (size_t)snprintf(t + off, cap - off, "  d%d: {command: [x]}\n", i);
    off += (size_t)snprintf(t + off, cap - off, "  top:\n    command: [x]\n    depends_on:\n");
    for (int i = 0; i <= MF_MAX_DEPS; i++)
        off += (size_t)snprintf(t + off, cap - off, "      - d%d\n", i);
    assert_null(load(t, err, sizeof(err)));
    assert_string_equal(err, "t.yaml:39:9: services.top.depends_on: too many dependencies (at most 16)");

    off = (size_t)snprintf(t, cap, "version: 1\nservices:\n  a:\n    command:\n");
    for (int i = 0; i <= MF_MAX_ARGV; i++)
        off += (size_t)snprintf(t + off, cap - off, "      - a%d\n", i);
    assert_null(load(t, err, sizeof(err)));
    assert_string_equal(err, "t.yaml:261:9: services.a.command: too many arguments (at most 256)");

    off = (size_t)snprintf(t, cap, "version: 1\nsecrets:\n");
    for (int i = 0; i <= MF_MAX_SECRETS; i++)
        off += (size_t)snprintf(t + off, cap - off, "  S%d: {file: /x/%d}\n", i, i);
    snprintf(t + off, cap - off, "services:\n  a: {command: [x]}\n");
    assert_null(load(t, err, sizeof(err)));
    assert_string_equal(err, "t.yaml:35:3: too many secrets (at most 32)");

    off = (size_t)snprintf(t, cap, "version: 1\nenv:\n");
    for (int i = 0; i <= 256; i++)
        off += (size_t)snprintf(t + off, cap - off, "  V%d: x\n", i);
    snprintf(t + off, cap - off, "services:\n  a: {command: [x]}\n");
    assert_null(load(t, err, sizeof(err)));
    assert_string_equal(err, "t.yaml:259:3: env: too many variables (at most 256)");

    /* exactly at the limits: fine */
    off = (size_t)snprintf(t, cap, "version: 1\nservices:\n");
    for (int i = 0; i < MF_MAX_SERVICES; i++)
        off += (size_t)snprintf(t + off, cap - off, "  s%d: {command: [x]}\n", i);
    manifest *m = load_ok(t);
    assert_int_equal(m->nservices, MF_MAX_SERVICES);
    manifest_free(m);
    free(t);
}

/* A short error buffer truncates the message but never overflows. */
static void test_small_err_buffer(void **state)
{
    (void)state;
    char err[16];
    memset(err, 'x', sizeof(err));
    manifest *m = NULL;
    const char *t = "version: 3\n";
    assert_int_equal(manifest_load_mem("t.yaml", t, strlen(t), &m, err, sizeof(err)), -1);
    assert_null(m);
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/xt-mf-XXXXXX";
    char err[512];
    manifest *m = NULL;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *t = "version: 1\nservices:\n  a:\n    command: [x]\n    stop: {signal: SIGKIL}\n";
    assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    assert_int_equal(manifest_load(path, &m, err, sizeof(err)), -1);
    char want[256];
    snprintf(want, sizeof(want),
             "%s:5:20: services.a.stop.signal: unknown signal 'SIGKIL' (did you mean 'SIGKILL'?)", path);
    assert_string_equal(err, want);
    unlink(path);
    assert_int_equal(manifest_load(path, &m, err, sizeof(err)), -1);
    assert_null(m);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    manifest_free(NULL);
}

/* --- digest -------------------------------------------------------------------------------- */

static void digests(const char *text, char out[][65], size_t n)
{
    manifest *m = load_ok(text);
    assert_int_equal(m->nservices, n);
    for (size_t i = 0; i < n; i++) {
        int k = manifest_find(m, i == 0 ? "a" : "b");
        assert_int_equal(strlen(m->services[k].digest), 64);
        memcpy(out[i], m->services[k].digest, 65);
    }
    manifest_free(m);
}

static void test_digest(void **state)
{
    (void)state;
    char base[2][65], other[2][65];
    const char *t = "version: 1\nenv: {G: 1, H: 2}\nservices:\n"
                    "  a: {command: [x, y], env: {A: 1, B: 2}}\n"
                    "  b: {command: [z], depends_on: {a: ready}}\n";
    digests(t, base, 2);
    assert_string_not_equal(base[0], base[1]);

    /* stable: same text, and the same meaning written differently */
    digests(t, other, 2);
    assert_string_equal(base[0], other[0]);
    assert_string_equal(base[1], other[1]);
    digests("version: 1\nenv:\n  H: 2\n  G: 1\nservices:\n"
            "  b:\n    command: [z]\n    depends_on: [a]\n"
            "  a:\n    command: [\"x\", 'y']\n    env: {B: 2, A: 1}\n    restart: always\n    stop: {signal: "
            "15}\n",
            other, 2);
    assert_string_equal(base[0], other[0]);
    assert_string_equal(base[1], other[1]);
    /* defaults written out change nothing */
    digests(
        "version: 1\nenv: {G: 1, H: 2}\nservices:\n"
        "  a: {command: [x, y], env: {A: 1, B: 2}, backoff: {initial: 100ms, max: 30s}, autostart: true}\n"
        "  b: {command: [z], depends_on: {a: ready}, essential: false, stop: {timeout: 3s}}\n",
        other, 2);
    assert_string_equal(base[0], other[0]);
    assert_string_equal(base[1], other[1]);

    /* a change in one service changes its digest only */
    digests("version: 1\nenv: {G: 1, H: 2}\nservices:\n"
            "  a: {command: [x, y, z], env: {A: 1, B: 2}}\n"
            "  b: {command: [z], depends_on: {a: ready}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    assert_string_equal(base[1], other[1]);
    /* argument boundaries count: [x, y] is not [xy] nor ["x y"] */
    digests("version: 1\nenv: {G: 1, H: 2}\nservices:\n"
            "  a: {command: [\"x y\"], env: {A: 1, B: 2}}\n"
            "  b: {command: [z], depends_on: {a: ready}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    digests("version: 1\nenv: {G: 1, H: 2}\nservices:\n"
            "  a: {command: [x, y], env: {A: 1, B: 3}}\n"
            "  b: {command: [z], depends_on: {a: started}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    assert_string_not_equal(base[1], other[1]);
    digests("version: 1\nenv: {G: 1, H: 2}\nservices:\n"
            "  a: {command: [x, y], env: {A: 1, B: 2}, live: {tcp: 'h:1'}}\n"
            "  b: {command: [z], depends_on: {a: ready}, stop: {signal: INT}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    assert_string_not_equal(base[1], other[1]);
    /* the global env and the secrets reach every service */
    digests("version: 1\nenv: {G: 1, H: 3}\nservices:\n"
            "  a: {command: [x, y], env: {A: 1, B: 2}}\n"
            "  b: {command: [z], depends_on: {a: ready}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    assert_string_not_equal(base[1], other[1]);
    digests("version: 1\nenv: {G: 1, H: 2}\nsecrets: {K: {file: /k}}\nservices:\n"
            "  a: {command: [x, y], env: {A: 1, B: 2}, secrets: [K]}\n"
            "  b: {command: [z], depends_on: {a: ready}}\n",
            other, 2);
    assert_string_not_equal(base[0], other[0]);
    assert_string_not_equal(base[1], other[1]);
    /* the supervisor section is not part of any service */
    digests("version: 1\nsupervisor: {stop_timeout: 9s, log: {format: json}}\nenv: {G: 1, H: 2}\nservices:\n"
            "  a: {command: [x, y], env: {A: 1, B: 2}}\n"
            "  b: {command: [z], depends_on: {a: ready}}\n",
            other, 2);
    assert_string_equal(base[0], other[0]);
    assert_string_equal(base[1], other[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_manifest), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_expansion),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),        cmocka_unit_test(test_small_err_buffer),
        cmocka_unit_test(test_load_file),     cmocka_unit_test(test_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
