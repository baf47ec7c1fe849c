/* Unit tests: configs/xtask.yaml (task table, allowlists, limits) and its errors with file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xc_conf.h"

static const char *no_env(const char *name, void *ud)
{
    if (strcmp(name, "XT_TEST_DIR") == 0) return "/tmp";
    return NULL;
}

static int load(xc_conf *c, const char *text, char *err, size_t errlen)
{
    xc_conf_defaults(c);
    return xc_conf_load_mem(c, "xtask.yaml", text, no_env, NULL, err, errlen);
}

static void test_defaults(void **state)
{
    xc_conf c;
    char err[512];
    assert_int_equal(load(&c, "", err, sizeof err), 0);
    assert_int_equal(c.ntasks, 1);
    assert_non_null(xc_conf_task(&c, "noop"));
    assert_null(xc_conf_task(&c, "sh"));
    assert_int_equal(c.nsilent, 0);
    assert_int_equal(c.nkill_ports, 0);
    assert_false(xc_conf_port_allowed(&c, 8080));
    assert_false(xc_conf_taskfile_allows(&c, "build"));
    assert_true(xc_conf_has_cap(&c, "task"));
    assert_true(c.manage_streams); /* a region node unless told otherwise */
    assert_int_equal(c.max_request_bytes, 1024 * 1024);
    assert_null(c.download_dirs[0]);
    xc_conf_free(&c);
}

static void test_full(void **state)
{
    const char *text =
        "version: 1\n"
        "node: { region: ams, capabilities: [task, which], events_project: ops }\n"
        "nats: { url: 'nats://x:1', heartbeat: 1s, node_ttl: 3s, replicas: 3, manage_streams: false }\n"
        "limits: { max_concurrent: 2, max_queued: 0, max_request: 4KiB, output_tail: 1KiB,"
        " output_max: 1MiB, default_timeout: 5s, kill_grace: 0ms }\n"
        "queue: { capabilities: [task, gpu], ack_wait: 3s }\n"
        "tasks:\n"
        "  build:\n"
        "    argv: [make, -j2]\n"
        "    cwd: /src\n"
        "    env: { CC: gcc, A: 'x=y' }\n"
        "    timeout: 2m\n"
        "    args: true\n"
        "  lint: [ruff, check]\n"
        "  'go:build:native': { argv: [go, build] }\n"
        "taskfile: { enabled: true, allow: [test, 'go:vet'], dir: /src }\n"
        "silent: { warm: [true] }\n"
        "which: { version: false }\n"
        "download: { dirs: ['${XT_TEST_DIR}'], max_bytes: 10MiB }\n"
        "kill_port: { ports: [3000-3002, 8081] }\n";
    xc_conf c;
    char err[512];
    if (load(&c, text, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(c.region, "ams");
    assert_string_equal(c.events_project, "ops");
    assert_false(xc_conf_has_cap(&c, "got"));
    assert_string_equal(c.nats.url, "nats://x:1");
    assert_int_equal(c.heartbeat_ms, 1000);
    assert_int_equal(c.replicas, 3);
    assert_false(c.manage_streams);
    assert_int_equal(c.max_concurrent, 2);
    assert_int_equal(c.max_queued, 0);
    assert_int_equal(c.max_request_bytes, 4096);
    assert_int_equal(c.output_max_bytes, 1 << 20);
    assert_int_equal(c.kill_grace_ms, 0);
    assert_int_equal(c.ack_wait_ms, 3000);
    assert_string_equal(c.queue_capabilities[1], "gpu");
    assert_int_equal(c.ntasks, 3);
    const xc_task *b = xc_conf_task(&c, "build");
    assert_non_null(b);
    assert_string_equal(b->argv[0], "make");
    assert_string_equal(b->argv[1], "-j2");
    assert_null(b->argv[2]);
    assert_string_equal(b->cwd, "/src");
    assert_string_equal(b->env[0], "CC=gcc");
    assert_string_equal(b->env[1], "A=x=y");
    assert_int_equal(b->timeout_ms, 120000);
    assert_true(b->allow_args);
    const xc_task *l = xc_conf_task(&c, "lint");
    assert_string_equal(l->argv[1], "check");
    assert_int_equal(l->timeout_ms, 5000); /* limits.default_timeout comes first in the file */
    assert_false(l->allow_args);
    assert_non_null(xc_conf_task(&c, "go:build:native"));
    assert_null(xc_conf_task(&c, "noop")); /* a tasks: section replaces the defaults */
    assert_true(xc_conf_taskfile_allows(&c, "test"));
    assert_true(xc_conf_taskfile_allows(&c, "go:vet"));
    assert_false(xc_conf_taskfile_allows(&c, "deploy"));
    assert_non_null(xc_conf_silent(&c, "warm"));
    assert_false(c.which_version);
    assert_string_equal(c.download_dirs[0], "/tmp");
    assert_int_equal(c.download_max_bytes, 10 << 20);
    assert_true(xc_conf_port_allowed(&c, 3000));
    assert_true(xc_conf_port_allowed(&c, 3002));
    assert_false(xc_conf_port_allowed(&c, 3003));
    assert_true(xc_conf_port_allowed(&c, 8081));
    assert_false(xc_conf_port_allowed(&c, 22));
    xc_conf_free(&c);
}

static void test_taskfile_star(void **state)
{
    xc_conf c;
    char err[512];
    assert_int_equal(load(&c, "taskfile: { enabled: true, allow: ['*'] }\n", err, sizeof err), 0);
    assert_true(xc_conf_taskfile_allows(&c, "anything"));
    assert_false(xc_conf_taskfile_allows(&c, "-rf")); /* never an option to `task` */
    xc_conf_free(&c);
    assert_int_equal(load(&c, "taskfile: { enabled: false, allow: ['*'] }\n", err, sizeof err), 0);
    assert_false(xc_conf_taskfile_allows(&c, "anything"));
    xc_conf_free(&c);
}

/* Each bad file: the exact position and a word of the message. */
static void test_errors(void **state)
{
    static const struct {
        const char *text, *pos, *word;
    } cases[] = {
        {"tasks:\n  build: { argv: [make], timeot: 5s }\n", "xtask.yaml:2:", "did you mean 'timeout'"},
        {"taks:\n  x: [true]\n", "xtask.yaml:1:1:", "did you mean 'tasks'"},
        {"tasks:\n  build: { cwd: /x }\n", "xtask.yaml:2:10:", "'argv' is required"},
        {"tasks:\n  build: { argv: [] }\n", "xtask.yaml:2:", "argv"},
        {"tasks:\n  'bad name': [true]\n", "xtask.yaml:2:3:", "not valid"},
        {"tasks:\n  -x: [true]\n", "xtask.yaml:2:3:", "not valid"},
        {"tasks:\n  b: { argv: [x], cwd: rel/dir }\n", "xtask.yaml:2:", "absolute"},
        {"tasks:\n  b: { argv: [x], timeout: soon }\n", "xtask.yaml:2:", "timeout"},
        {"tasks:\n  b: { argv: [x], args: maybe }\n", "xtask.yaml:2:", "args"},
        {"tasks:\n  b: { argv: [x], env: [A] }\n", "xtask.yaml:2:", "env"},
        {"limits: { max_concurrent: 0 }\n", "xtask.yaml:1:", "max_concurrent"},
        {"limits: { max_request: lots }\n", "xtask.yaml:1:", "not a size"},
        {"nats: { heartbeat: 10s, node_ttl: 15s }\n", "xtask.yaml:1:", "twice"},
        {"nats: { replicas: 7 }\n", "xtask.yaml:1:", "replicas"},
        {"nats:\n  creds: /nonexistent/node.creds\n",
         "xtask.yaml:2:10:", "nats.creds: /nonexistent/node.creds: No such file or directory"},
        {"nats: { inbox_prefix: '_INBOX.*' }\n", "xtask.yaml:1:", "nats.inbox_prefix"},
        {"nats: { url: 'http://x:1' }\n", "xtask.yaml:1:", "nats.url"},
        {"nats: { manage_streams: sometimes }\n", "xtask.yaml:1:", "manage_streams"},
        {"node: { region: 'a.b' }\n", "xtask.yaml:1:", "region"},
        {"kill_port: { ports: [70000] }\n", "xtask.yaml:1:", "1-65535"},
        {"kill_port: { ports: [abc] }\n", "xtask.yaml:1:", "not a port"},
        {"kill_port: { ports: [9-3] }\n", "xtask.yaml:1:", "1-65535"},
        {"download: { dirs: [relative] }\n", "xtask.yaml:1:", "not absolute"},
        {"version: 2\n", "xtask.yaml:1:", "version"},
        {"- a\n- b\n", "xtask.yaml:1:1:", ""},
        {"tasks:\n  b: { argv: [x], cwd: '${NOPE_NOT_SET}' }\n", "xtask.yaml:2:", "NOPE_NOT_SET"},
        {"queue: { capabilities: ['a.b'] }\n", "xtask.yaml:1:", "queue.capabilities"},
        {"taskfile: { allow: ['-rf'] }\n", "xtask.yaml:1:", "taskfile.allow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xc_conf c;
        char err[512] = "";
        int rc = load(&c, cases[i].text, err, sizeof err);
        xc_conf_free(&c);
        if (rc != -1) fail_msg("case %zu accepted:\n%s", i, cases[i].text);
        if (strncmp(err, cases[i].pos, strlen(cases[i].pos)) != 0 || !strstr(err, cases[i].word))
            fail_msg("case %zu: got '%s', want prefix '%s' and '%s'", i, err, cases[i].pos, cases[i].word);
    }
}

static void test_size_parse(void **state)
{
    size_t v;
    assert_int_equal(xc_size_parse("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(xc_size_parse("64KiB", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(xc_size_parse("1MB", &v), 0);
    assert_int_equal(v, 1 << 20);
    assert_int_equal(xc_size_parse("2G", &v), 0);
    assert_int_equal(v, (size_t)2 << 30);
    assert_int_equal(xc_size_parse("", &v), -1);
    assert_int_equal(xc_size_parse("-1", &v), -1);
    assert_int_equal(xc_size_parse("1TB", &v), -1);
    assert_int_equal(xc_size_parse("99999999999999999999999", &v), -1);
}

static void test_shipped_config(void **state)
{
    /* configs/xtask.yaml loads, and allows no arbitrary command */
    const char *src = getenv("XT_SOURCE_DIR");
    char path[4096], err[512];
    xc_conf c;
    snprintf(path, sizeof path, "%s/configs/xtask.yaml", src ? src : ".");
    xc_conf_defaults(&c);
    if (xc_conf_load(&c, path, err, sizeof err) != 0) fail_msg("%s", err);
    assert_non_null(xc_conf_task(&c, "noop"));
    for (size_t i = 0; i < c.ntasks; i++) {
        const char *p = c.tasks[i].argv[0];
        if (strcmp(p, "sh") == 0 || strcmp(p, "bash") == 0 || strcmp(p, "/bin/sh") == 0)
            fail_msg("task %s runs a shell", c.tasks[i].name);
    }
    assert_int_equal(c.nsilent, 0);
    assert_int_equal(c.nkill_ports, 0);
    assert_false(c.taskfile_enabled);
    xc_conf_free(&c);
}

static int has(char **v, const char *kv)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], kv) == 0) return 1;
    return 0;
}

static void test_task_env(void **state)
{
    xc_conf c;
    char err[512];
    setenv("XT_UNIT_PASS", "p", 1);
    setenv("XT_UNIT_SECRET", "s3cr3t", 1);
    setenv("XT_UNIT_SHADOW", "mine", 1);
    assert_int_equal(load(&c, "", err, sizeof err), 0); /* defaults: PATH and friends only */
    for (size_t i = 0; c.task_env[i]; i++)
        assert_null(strstr(c.task_env[i], "XT_UNIT"));
    xc_conf_free(&c);
    assert_int_equal(load(&c,
                          "task_env:\n  pass: [XT_UNIT_PASS, XT_UNIT_SHADOW, XT_UNIT_UNSET]\n"
                          "  set: { XT_UNIT_SHADOW: conf, XT_B: b }\n",
                          err, sizeof err),
                     0);
    assert_true(has(c.task_env, "XT_UNIT_PASS=p"));
    assert_true(has(c.task_env, "XT_UNIT_SHADOW=conf"));
    assert_false(has(c.task_env, "XT_UNIT_SHADOW=mine"));
    assert_true(has(c.task_env, "XT_B=b"));
    size_t n = 0;
    while (c.task_env[n])
        n++;
    assert_int_equal(n, 3); /* no PATH: pass replaces the default list; unset names are skipped */
    xc_conf_free(&c);
    assert_int_equal(load(&c, "task_env:\n  pass: [PATH, \"A=B\"]\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "xtask.yaml:2:9: task_env.pass: 'A=B' is not a variable name"));
    xc_conf_free(&c);
    assert_int_equal(load(&c, "task_env:\n  set: { 1X: a }\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "xtask.yaml:2:10: task_env.set: bad variable name '1X'"));
    xc_conf_free(&c);
    assert_int_equal(load(&c, "task_env:\n  pas: []\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "did you mean 'pass'"));
    xc_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_full),
        cmocka_unit_test(test_taskfile_star), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_size_parse),    cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_task_env)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
