/* Unit tests for graph_order: stable topological order, cycles named with their position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

/* Load a manifest from text; returns NULL and leaves the message in err on failure. */
static manifest *load(const char *text, char *err, size_t errlen)
{
    manifest *m = NULL;
    if (manifest_load_mem("g.yaml", text, strlen(text), &m, err, errlen) != 0) return NULL;
    return m;
}

static void expect_order(const char *text, const char *const *names)
{
    char err[512] = "";
    manifest *m = load(text, err, sizeof(err));
    if (m == NULL) fail_msg("load failed: %s", err);
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    assert_int_equal(m->nservices, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m->services[m->order[i]].name, names[i]);
    manifest_free(m);
}

static void expect_error(const char *text, const char *want)
{
    char err[512] = "";
    manifest *m = load(text, err, sizeof(err));
    assert_null(m);
    assert_string_equal(err, want);
}

static void test_independent_keep_file_order(void **state)
{
    (void)state;
    static const char *const want[] = {"c", "a", "b", NULL};
    expect_order("version: 1\nservices:\n  c: {command: [x]}\n  a: {command: [x]}\n  b: {command: [x]}\n",
                 want);
}

static void test_deps_first(void **state)
{
    (void)state;
    static const char *const want[] = {"nats", "web", "auth", "xtask", NULL};
    expect_order("version: 1\nservices:\n"
                 "  web: {command: [x], depends_on: {nats: ready}}\n"
                 "  nats: {command: [x]}\n"
                 "  auth: {command: [x]}\n"
                 "  xtask: {command: [x], depends_on: [web, auth]}\n",
                 want);
}

static void test_chain_reversed(void **state)
{
    (void)state;
    static const char *const want[] = {"e", "d", "c", "b", "a", NULL};
    expect_order("version: 1\nservices:\n"
                 "  a: {command: [x], depends_on: [b]}\n"
                 "  b: {command: [x], depends_on: [c]}\n"
                 "  c: {command: [x], depends_on: [d]}\n"
                 "  d: {command: [x], depends_on: [e]}\n"
                 "  e: {command: [x]}\n",
                 want);
}

static void test_diamond(void **state)
{
    (void)state;
    static const char *const want[] = {"base", "left", "right", "top", NULL};
    expect_order("version: 1\nservices:\n"
                 "  top: {command: [x], depends_on: [left, right]}\n"
                 "  left: {command: [x], depends_on: [base]}\n"
                 "  right: {command: [x], depends_on: [base]}\n"
                 "  base: {command: [x]}\n",
                 want);
}

static void test_cycle_two(void **state)
{
    (void)state;
    expect_error("version: 1\nservices:\n"
                 "  a: {command: [x], depends_on: [b]}\n"
                 "  b: {command: [x], depends_on: [a]}\n",
                 "g.yaml:3:3: dependency cycle: a -> b -> a");
}

static void test_cycle_three_named_from_first_in_file(void **state)
{
    (void)state;
    /* entry through a service outside the cycle; the cycle starts at its first service in file order */
    expect_error("version: 1\nservices:\n"
                 "  web: {command: [x], depends_on: [nats]}\n"
                 "  auth: {command: [x], depends_on: [xtask]}\n"
                 "  nats: {command: [x], depends_on: [auth]}\n"
                 "  xtask: {command: [x], depends_on: {nats: started}}\n",
                 "g.yaml:4:3: dependency cycle: auth -> xtask -> nats -> auth");
}

static void test_cycle_beside_good_services(void **state)
{
    (void)state;
    expect_error("version: 1\nservices:\n"
                 "  ok: {command: [x]}\n"
                 "  p: {command: [x], depends_on: [ok, q]}\n"
                 "  q: {command: [x], depends_on: [r]}\n"
                 "  r: {command: [x], depends_on: [ok, p]}\n",
                 "g.yaml:4:3: dependency cycle: p -> q -> r -> p");
}

/* graph_order on a hand-built manifest: the runtime may call it after editing one. */
static void test_graph_order_direct(void **state)
{
    (void)state;
    char err[256];
    manifest *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->path = strdup("x.yaml");
    m->nservices = 3;
    m->services = calloc(3, sizeof(*m->services));
    m->order = calloc(3, sizeof(*m->order));
    assert_non_null(m->services);
    assert_non_null(m->order);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        m->services[i].name = strdup(names[i]);
        m->services[i].line = i + 2;
        m->services[i].col = 3;
    }
    m->services[0].ndeps = 1;
    m->services[0].deps[0].name = strdup("a");
    m->services[0].deps[0].index = 0;
    m->services[0].deps[0].line = 2;
    m->services[0].deps[0].col = 21;
    assert_int_equal(graph_order(m, err, sizeof(err)), -1);
    assert_string_equal(err, "x.yaml:2:3: dependency cycle: a -> a");
    m->services[0].deps[0].index = 5;
    assert_int_equal(graph_order(m, err, sizeof(err)), -1);
    assert_string_equal(err, "x.yaml:2:21: service 'a' depends on unknown service 'a'");
    m->services[0].deps[0].index = 2;
    assert_int_equal(graph_order(m, err, sizeof(err)), 0);
    assert_int_equal(m->order[0], 1);
    assert_int_equal(m->order[1], 2);
    assert_int_equal(m->order[2], 0);
    manifest_free(m);
}

/* The biggest graph allowed: MF_MAX_SERVICES services in a chain written backwards. */
static void test_max_chain(void **state)
{
    (void)state;
    char *text = malloc(MF_MAX_SERVICES * 80 + 64);
    size_t off = 0;
    char err[512];
    assert_non_null(text);
    off += (size_t)snprintf(text + off, 64, "version: 1\nservices:\n");
    for (int i = 0; i < MF_MAX_SERVICES; i++) {
        if (i + 1 < MF_MAX_SERVICES)
            off += (size_t)snprintf(text + off, 80, "  s%d: {command: [x], depends_on: [s%d]}\n", i, i + 1);
        else
            off += (size_t)snprintf(text + off, 80, "  s%d: {command: [x]}\n", i);
    }
    manifest *m = load(text, err, sizeof(err));
    if (m == NULL) fail_msg("%s", err);
    for (int i = 0; i < MF_MAX_SERVICES; i++)
        assert_int_equal(m->order[i], MF_MAX_SERVICES - 1 - i);
    manifest_free(m);
    free(text);
}

/* A wide random graph at the cap: the order is the one the simple rule gives (at each step the
 * first service in file order whose dependencies are placed), computed here the slow way. */
static void test_random_graph_stable(void **state)
{
    (void)state;
    size_t cap = MF_MAX_SERVICES * 200 + 64, off = 0;
    char *text = malloc(cap), err[512];
    int *want = malloc(MF_MAX_SERVICES * sizeof(int)), *placed = calloc(MF_MAX_SERVICES, sizeof(int));
    unsigned seed = 12345;
    assert_non_null(text);
    assert_non_null(want);
    assert_non_null(placed);
    off += (size_t)snprintf(text + off, cap - off, "version: 1\nservices:\n");
    for (int i = 0; i < MF_MAX_SERVICES; i++) {
        off += (size_t)snprintf(text + off, cap - off, "  s%d:\n    command: [x]\n    depends_on: [", i);
        int nd = 0, got[4];
        for (int k = 0; k < 4; k++) { /* edges to later services too: file order is not the order */
            seed = seed * 1103515245u + 12345u;
            int d = (int)((seed >> 8) % MF_MAX_SERVICES), dup = 0;
            if ((d * 7919) % MF_MAX_SERVICES >= (i * 7919) % MF_MAX_SERVICES) continue; /* a DAG */
            for (int q = 0; q < nd; q++)
                dup |= got[q] == d;
            if (dup) continue;
            got[nd] = d;
            off += (size_t)snprintf(text + off, cap - off, "%ss%d", nd++ ? ", " : "", d);
        }
        off += (size_t)snprintf(text + off, cap - off, "]\n");
    }
    manifest *m = load(text, err, sizeof(err));
    if (m == NULL) fail_msg("%s", err);
    {
        for (int k = 0; k < MF_MAX_SERVICES; k++) {
            int i;
            for (i = 0; i < MF_MAX_SERVICES; i++) {
                size_t j;
                if (placed[i]) continue;
                for (j = 0; j < m->services[i].ndeps && placed[m->services[i].deps[j].index]; j++)
                    ;
                if (j == m->services[i].ndeps) break;
            }
            assert_true(i < MF_MAX_SERVICES);
            placed[i] = 1;
            want[k] = i;
        }
        for (int k = 0; k < MF_MAX_SERVICES; k++)
            assert_int_equal(m->order[k], want[k]);
        manifest_free(m);
    }
    free(placed);
    free(want);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_keep_file_order),
        cmocka_unit_test(test_deps_first),
        cmocka_unit_test(test_chain_reversed),
        cmocka_unit_test(test_diamond),
        cmocka_unit_test(test_cycle_two),
        cmocka_unit_test(test_cycle_three_named_from_first_in_file),
        cmocka_unit_test(test_cycle_beside_good_services),
        cmocka_unit_test(test_graph_order_direct),
        cmocka_unit_test(test_max_chain),
        cmocka_unit_test(test_random_graph_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
