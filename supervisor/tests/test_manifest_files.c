/* The manifest corpus in supervisor/tests/manifests/: every .yaml file in bad/ must be refused
 * with the message its first line announces (`# expect: LINE:COL: message`, the file's path in
 * front), every one in good/ must load. integration-tests/supervisor-manifest/ runs the same files through
 * `xtask-supervisor check`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

#define MIN_BAD_MANIFESTS 25

static void corpus_dir(const char *sub, char *out, size_t len)
{
    const char *src = getenv("XT_SOURCE_DIR");
    if (src != NULL && src[0] != '\0') {
        snprintf(out, len, "%s/supervisor/tests/manifests/%s", src, sub);
    } else { /* run by hand: next to this source file */
        const char *slash = strrchr(__FILE__, '/');
        snprintf(out, len, "%.*s/manifests/%s", slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".",
                 sub);
    }
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.yaml files of a directory, sorted; returns how many (names malloc'd into names[]). */
static size_t list_yaml(const char *dir, char **names, size_t max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (d == NULL) fail_msg("cannot open %s", dir);
    while ((e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_name);
    return n;
}

/* The text after "# expect: " on the first line, or "" when the line is not there. */
static void expectation(const char *path, char *out, size_t len)
{
    char line[1024] = "";
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f == NULL) return;
    if (fgets(line, sizeof(line), f) != NULL && strncmp(line, "# expect: ", 10) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, len, "%s", line + 10);
    }
    fclose(f);
}

static void test_bad_manifests(void **state)
{
    (void)state;
    char dir[512], *names[256];
    int failures = 0;
    corpus_dir("bad", dir, sizeof(dir));
    size_t n = list_yaml(dir, names, 256);
    assert_true(n >= MIN_BAD_MANIFESTS);
    for (size_t i = 0; i < n; i++) {
        char path[1024], want[2100], suffix[1024], err[2100] = "";
        manifest *m = NULL;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        expectation(path, suffix, sizeof(suffix));
        snprintf(want, sizeof(want), "%s:%s", path, suffix);
        if (suffix[0] == '\0') {
            print_error("%s: first line must be '# expect: LINE:COL: message'\n", names[i]);
            failures++;
        } else if (manifest_load(path, &m, err, sizeof(err)) == 0) {
            print_error("%s: loaded, expected: %s\n", names[i], suffix);
            manifest_free(m);
            failures++;
        } else if (strcmp(err, want) != 0) {
            print_error("%s:\n  got:  %s\n  want: %s\n", names[i], err, want);
            failures++;
        }
        assert_null(m);
        free(names[i]);
    }
    assert_int_equal(failures, 0);
}

static manifest *load_good(const char *name)
{
    char dir[512], path[1024], err[1024];
    manifest *m = NULL;
    corpus_dir("good", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (manifest_load(path, &m, err, sizeof(err)) != 0) fail_msg("%s", err);
    return m;
}

static void test_good_manifests(void **state)
{
    (void)state;
    char dir[512], *names[64];
    corpus_dir("good", dir, sizeof(dir));
    size_t n = list_yaml(dir, names, 64);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        manifest *m = load_good(names[i]);
        assert_true(m->nservices >= 1);
        manifest_free(m);
        free(names[i]);
    }
}

static void test_architecture_example(void **state)
{
    (void)state;
    unsetenv("XTASK_RUN_DIR");
    unsetenv("XTASK_DATA_DIR");
    unsetenv("XTASK_CONFIG_DIR");
    unsetenv("FLY_REGION");
    manifest *m = load_good("architecture.yaml");
    assert_string_equal(m->control_socket, "/run/xtask/supervisor.sock");
    assert_int_equal(m->stop_timeout_ms, 4000);
    assert_string_equal(m->status_http, "127.0.0.1:9100");
    assert_string_equal(m->env[0], "FLY_REGION=local");
    assert_string_equal(m->env[1], "NATS_SERVER_NAME=xtask-local");
    assert_string_equal(m->secrets[0].file, "/data/secrets/session");
    assert_int_equal(m->nservices, 4);
    static const char *const order[] = {"nats", "xtask", "auth", "web"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(m->services[m->order[i]].name, order[i]);
    const mf_service *nats = &m->services[manifest_find(m, "nats")];
    assert_string_equal(nats->argv[2], "/etc/xtask/nats.conf");
    assert_int_equal(nats->essential, 1);
    assert_int_equal(nats->live.failures, 3);
    assert_int_equal(nats->restart_limit_count, 10);
    const mf_service *xtask = &m->services[manifest_find(m, "xtask")];
    assert_string_equal(xtask->user, "xtask");
    assert_int_equal(xtask->ready.kind, PROBE_EXEC);
    manifest_free(m);
}

static void test_every_key(void **state)
{
    (void)state;
    unsetenv("XT_MANIFEST_TEST_RUN_DIR");
    manifest *m = load_good("every-key.yaml");
    assert_string_equal(m->control_socket, "/tmp/xt-manifest-test/supervisor.sock");
    assert_string_equal(m->status_http, "[::1]:20100");
    assert_int_equal(m->log_format, MF_LOG_JSON);
    assert_string_equal(m->env[2], "LITERAL_DOLLAR=$HOME");
    const mf_service *tools = &m->services[manifest_find(m, "tools")];
    assert_int_equal(tools->stop_signal, SIGKILL);
    assert_int_equal(tools->autostart, 0);
    const mf_service *xtask = &m->services[manifest_find(m, "xtask")];
    assert_int_equal(xtask->live.failures, 5);
    assert_int_equal(xtask->stop_signal, SIGINT);
    assert_int_equal(xtask->deps[0].cond, DEP_READY);
    manifest_free(m);
}

static void test_anchors(void **state)
{
    (void)state;
    manifest *m = load_good("anchors-and-lists.yaml");
    const mf_service *a = &m->services[0], *b = &m->services[1];
    assert_int_equal(a->ready.kind, PROBE_TCP);
    assert_int_equal(b->live.kind, PROBE_TCP);
    assert_string_equal(b->live.target, "127.0.0.1:20001");
    assert_int_equal(b->live.interval_ms, 200);
    assert_int_equal(a->stop_signal, SIGINT);
    assert_int_equal(b->stop_timeout_ms, 500);
    manifest_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_manifests),
        cmocka_unit_test(test_good_manifests),
        cmocka_unit_test(test_architecture_example),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_anchors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
