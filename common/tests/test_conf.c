/* Unit tests for xt_conf: positions, expansion, duplicate keys, typed getters, durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xt_conf.h"

static const char *fake_env(const char *name, void *ud)
{
    (void)ud;
    if (strcmp(name, "REGION") == 0) return "ams";
    if (strcmp(name, "EMPTY") == 0) return "";
    return NULL;
}

static xt_doc *load(const char *text, char *err, size_t errlen)
{
    xt_doc *d = NULL;
    if (xt_conf_load_mem("t.yaml", text, strlen(text), fake_env, NULL, &d, err, errlen) != 0) return NULL;
    return d;
}

static void test_positions_and_order(void **state)
{
    (void)state;
    char err[256];
    xt_doc *d = load("a: 1\nsvc:\n  nats:\n    command: [x, y]\n", err, sizeof(err));
    assert_non_null(d);
    assert_int_equal(d->root->kind, XT_NODE_MAP);
    xt_node *svc = xt_map_get(d->root, "svc");
    xt_node *nats = xt_map_get(svc, "nats");
    assert_non_null(nats);
    xt_node *cmd = xt_map_get(nats, "command");
    assert_int_equal(cmd->kind, XT_NODE_SEQ);
    assert_int_equal(cmd->len, 2);
    assert_string_equal(cmd->items[1]->str, "y");
    assert_int_equal(cmd->line, 4);
    assert_int_equal(cmd->col, 14);
    xt_node *k = xt_map_key(nats, "command");
    assert_int_equal(k->line, 4);
    assert_int_equal(k->col, 5);
    assert_null(xt_map_get(d->root, "missing"));
    xt_doc_free(d);
}

static void test_expansion(void **state)
{
    (void)state;
    char err[256];
    xt_doc *d = load("a: ${REGION}\nb: x-${MISSING:-def}-y\nc: ${EMPTY:-fallback}\nd: $$5\ne: $HOME\n"
                     "f: ${MISSING:-${REGION}}\n",
                     err, sizeof(err));
    assert_non_null(d);
    assert_string_equal(xt_map_get(d->root, "a")->str, "ams");
    assert_string_equal(xt_map_get(d->root, "b")->str, "x-def-y");
    assert_string_equal(xt_map_get(d->root, "c")->str, "fallback");
    assert_string_equal(xt_map_get(d->root, "d")->str, "$5");
    assert_string_equal(xt_map_get(d->root, "e")->str, "$HOME");
    assert_string_equal(xt_map_get(d->root, "f")->str, "ams");
    xt_doc_free(d);
}

static void test_unset_variable_position(void **state)
{
    (void)state;
    char err[256];
    assert_null(load("x: 1\nkey: abc${NOPE}\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:2:9: environment variable 'NOPE' is not set "
                             "(use ${NOPE:-default} to give a default)");
    assert_null(load("key: \"${BAD\"\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:7: unterminated '${' (write '$$' for a literal '$')");
    assert_null(load("key: ${1X}\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:6: bad variable name in '${1X}'");
    assert_null(load("key: ${A:=b}\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:6: bad expansion '${A:=b}' (forms: ${VAR} and ${VAR:-default})");
}

static void test_duplicate_and_syntax(void **state)
{
    (void)state;
    char err[256];
    assert_null(load("services:\n  web: {}\n  web: {}\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:3:3: duplicate key 'web' (first defined at line 2)");
    assert_null(load("a: [1, 2\n", err, sizeof(err)));
    assert_non_null(strstr(err, "t.yaml:2:1: YAML syntax error"));
    assert_null(load("a: 1\n---\nb: 2\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:2:1: more than one YAML document in the file");
    assert_null(load("? [a]\n: 1\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:3: a mapping key must be a plain string");
}

/* Build a mapping of n keys "k<i>: <i>", optionally with key `dup_of` written again at the end. */
static char *big_map(size_t n, long dup_of)
{
    size_t cap = (n + 2) * 32, len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "k%zu: %zu\n", i, i);
    if (dup_of >= 0) len += (size_t)snprintf(t + len, cap - len, "k%ld: again\n", dup_of);
    return t;
}

/* Mappings past the plain-scan size use the hash set: every duplicate is still found, with the
 * position of both, and distinct keys that share prefixes or lengths are never confused. */
static void test_duplicate_large_maps(void **state)
{
    (void)state;
    char err[256], want[128];
    static const long dups[] = {0, 7, 8, 9, 4999, 99998};
    for (size_t d = 0; d < sizeof(dups) / sizeof(dups[0]); d++) {
        char *t = big_map(100000, dups[d]);
        assert_null(load(t, err, sizeof(err)));
        snprintf(want, sizeof(want), "t.yaml:100001:1: duplicate key 'k%ld' (first defined at line %ld)",
                 dups[d], dups[d] + 1);
        assert_string_equal(err, want);
        free(t);
    }
    /* sizes around the switch from the scan to the set, and one large map without duplicates */
    static const size_t sizes[] = {7, 8, 9, 10, 17, 33, 100000};
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        char *t = big_map(sizes[z], -1);
        xt_doc *d = load(t, err, sizeof(err));
        assert_non_null(d);
        assert_int_equal(d->root->len, sizes[z]);
        snprintf(want, sizeof(want), "k%zu", sizes[z] - 1);
        assert_string_equal(xt_map_get(d->root, want)->str, want + 1);
        xt_doc_free(d);
        free(t);
    }
    /* a duplicate in a nested, flow-style mapping, and keys that differ only after a shared prefix */
    assert_null(load("a: {x1: 1, x2: 2, x3: 3, x4: 4, x5: 5, x6: 6, x7: 7, x8: 8, x9: 9, x10: 10, x2: 0}\n",
                     err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:77: duplicate key 'x2' (first defined at line 1)");
    xt_doc *d = load("{ab: 1, abc: 2, abcd: 3, b: 4, ba: 5, bab: 6, c: 7, ca: 8, cab: 9, '': 10}\n", err,
                     sizeof(err));
    assert_non_null(d);
    assert_int_equal(d->root->len, 10);
    xt_doc_free(d);
}

static void test_aliases_and_empty(void **state)
{
    (void)state;
    char err[256];
    xt_doc *d = load("base: &b {x: 1}\nother: *b\n", err, sizeof(err));
    assert_non_null(d);
    assert_string_equal(xt_map_get(xt_map_get(d->root, "other"), "x")->str, "1");
    xt_doc_free(d);
    assert_null(load("a: *nope\n", err, sizeof(err)));
    assert_string_equal(err, "t.yaml:1:4: unknown anchor '*nope'");
    d = load("", err, sizeof(err));
    assert_non_null(d);
    assert_null(d->root);
    xt_doc_free(d);
}

static void test_check_keys(void **state)
{
    (void)state;
    char err[256];
    static const char *const allowed[] = {"command", "ready", "health", "restart", NULL};
    xt_doc *d = load("nats:\n  command: [a]\n  helth: x\n", err, sizeof(err));
    assert_non_null(d);
    assert_int_equal(
        xt_conf_check_keys(d, xt_map_get(d->root, "nats"), allowed, "service 'nats'", err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:3:3: unknown key 'helth' in service 'nats' (did you mean 'health'?)");
    xt_doc_free(d);
    d = load("nats:\n  zzzzzz: 1\n", err, sizeof(err));
    assert_int_equal(
        xt_conf_check_keys(d, xt_map_get(d->root, "nats"), allowed, "service 'nats'", err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:2:3: unknown key 'zzzzzz' in service 'nats' "
                             "(known keys: command, ready, health, restart)");
    xt_doc_free(d);
}

static void test_typed(void **state)
{
    (void)state;
    char err[256];
    xt_doc *d = load("s: hello\nq: ''\nb: yes\nbad: maybe\ni: 42\nbig: 99999999999999999999\nd: 1h30m\n"
                     "dn: 5\ndx: 5x\nl: [a, b]\nls: one\nlm: [a, {b: 1}]\nn: ~\n",
                     err, sizeof(err));
    assert_non_null(d);
    const char *s;
    int b;
    long long i;
    int64_t ms;
    char **v;
    assert_int_equal(xt_conf_string(d, xt_map_get(d->root, "s"), "s", &s, err, sizeof(err)), 0);
    assert_string_equal(s, "hello");
    assert_int_equal(xt_conf_string(d, xt_map_get(d->root, "q"), "q", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:2:4: q: must not be empty");
    assert_int_equal(xt_conf_string(d, xt_map_get(d->root, "l"), "l", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:10:4: l: expected a string, got a list");
    assert_int_equal(xt_conf_string(d, xt_map_get(d->root, "n"), "n", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:13:4: n: expected a string, got null");
    assert_int_equal(xt_conf_bool(d, xt_map_get(d->root, "b"), "b", &b, err, sizeof(err)), 0);
    assert_int_equal(b, 1);
    assert_int_equal(xt_conf_bool(d, xt_map_get(d->root, "bad"), "essential", &b, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:4:6: essential: expected true or false, got 'maybe'");
    assert_int_equal(xt_conf_int(d, xt_map_get(d->root, "i"), "i", 0, 100, &i, err, sizeof(err)), 0);
    assert_int_equal(i, 42);
    assert_int_equal(xt_conf_int(d, xt_map_get(d->root, "i"), "count", 0, 10, &i, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:5:4: count: 42 is out of range (0 to 10)");
    assert_int_equal(xt_conf_int(d, xt_map_get(d->root, "big"), "big", 0, 10, &i, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:6:6: big: '99999999999999999999' is not a whole number");
    assert_int_equal(xt_conf_duration(d, xt_map_get(d->root, "d"), "d", 0, INT64_MAX, &ms, err, sizeof(err)),
                     0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(
        xt_conf_duration(d, xt_map_get(d->root, "dn"), "stop.timeout", 0, INT64_MAX, &ms, err, sizeof(err)),
        -1);
    assert_string_equal(err, "t.yaml:8:5: stop.timeout: '5' needs a unit (ms, s, m, h, d), e.g. '5s'");
    assert_int_equal(xt_conf_duration(d, xt_map_get(d->root, "dx"), "t", 0, INT64_MAX, &ms, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "t.yaml:9:5: t: '5x' is not a duration (e.g. 100ms, 5s, 2m, 1h30m)");
    assert_int_equal(xt_conf_duration(d, xt_map_get(d->root, "d"), "t", 0, 60000, &ms, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:7:4: t: 1h30m is too long (at most 1m)");
    assert_int_equal(xt_conf_strv(d, xt_map_get(d->root, "l"), "l", 0, 1, &v, err, sizeof(err)), 0);
    assert_int_equal(xt_strv_len(v), 2);
    assert_string_equal(v[1], "b");
    xt_strv_free(v);
    assert_int_equal(xt_conf_strv(d, xt_map_get(d->root, "ls"), "ls", 1, 1, &v, err, sizeof(err)), 0);
    assert_string_equal(v[0], "one");
    xt_strv_free(v);
    assert_int_equal(xt_conf_strv(d, xt_map_get(d->root, "ls"), "command", 0, 1, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:11:5: command: expected a list, got a string");
    assert_int_equal(xt_conf_strv(d, xt_map_get(d->root, "lm"), "lm", 0, 1, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "t.yaml:12:9: lm: item 2: expected a string, got a mapping");
    xt_doc_free(d);
}

static void test_durations(void **state)
{
    (void)state;
    int64_t ms;
    char buf[32];
    assert_int_equal(xt_duration_parse("100ms", &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(xt_duration_parse("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(xt_duration_parse("1d2h", &ms), 0);
    assert_int_equal(ms, 93600000);
    assert_int_equal(xt_duration_parse("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(xt_duration_parse("", &ms), -1);
    assert_int_equal(xt_duration_parse("5", &ms), -1);
    assert_int_equal(xt_duration_parse("-5s", &ms), -1);
    assert_int_equal(xt_duration_parse("5 s", &ms), -1);
    assert_int_equal(xt_duration_parse("99999999999999999999s", &ms), -1);
    assert_string_equal(xt_duration_format(150, buf, sizeof(buf)), "150ms");
    assert_string_equal(xt_duration_format(5000, buf, sizeof(buf)), "5s");
    assert_string_equal(xt_duration_format(5400000, buf, sizeof(buf)), "1h30m");
}

static void test_suggest(void **state)
{
    (void)state;
    static const char *const c[] = {"always", "on-failure", "never", NULL};
    assert_string_equal(xt_suggest("alway", c), "always");
    assert_string_equal(xt_suggest("on_failure", c), "on-failure");
    assert_null(xt_suggest("sometimes", c));
}

static void test_file_errors(void **state)
{
    (void)state;
    char err[256];
    xt_doc *d;
    assert_int_equal(xt_conf_load_file("/nonexistent/x.yaml", &d, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
    assert_int_equal(xt_conf_load_file("/", &d, err, sizeof(err)), -1);
    assert_string_equal(err, "/: not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_and_order),
        cmocka_unit_test(test_expansion),
        cmocka_unit_test(test_unset_variable_position),
        cmocka_unit_test(test_duplicate_and_syntax),
        cmocka_unit_test(test_duplicate_large_maps),
        cmocka_unit_test(test_aliases_and_empty),
        cmocka_unit_test(test_check_keys),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
