/* Unit tests: `run --only` service selection (select.c): transitive dependencies, list forms,
 * unknown names with a did-you-mean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sv.h"

static const char text[] = "version: 1\n"
                           "services:\n"
                           "  nats: {command: [n]}\n"
                           "  auth: {command: [a]}\n"
                           "  xtask: {command: [x], depends_on: {nats: ready}}\n"
                           "  web: {command: [w], depends_on: {nats: ready, auth: ready}}\n"
                           "  edge: {command: [e], depends_on: [web]}\n"
                           "  lone: {command: [l]}\n";

static manifest *load(void)
{
    manifest *m = NULL;
    char err[512];
    if (manifest_load_mem("t.yaml", text, strlen(text), &m, err, sizeof(err)) != 0) fail_msg("%s", err);
    return m;
}

/* The kept names in file order, space-separated. */
static void kept(const manifest *m, const unsigned char *keep, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->nservices; i++)
        if (keep[i]) n += (size_t)snprintf(out + n, len - n, "%s%s", n ? " " : "", m->services[i].name);
}

static void test_select_closure(void **state)
{
    (void)state;
    manifest *m = load();
    unsigned char keep[MF_MAX_SERVICES];
    char err[256], got[256];
    static const struct {
        const char *only, *want;
        int n;
    } cases[] = {
        {"nats", "nats", 1},
        {"xtask", "nats xtask", 2},
        {"web", "nats auth web", 3},
        {"edge", "nats auth web edge", 4}, /* transitive */
        {"auth,xtask", "nats auth xtask", 3},
        {" lone , nats,,lone ", "nats lone", 2},
        {"web xtask", "nats auth xtask web", 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sv_select(m, cases[i].only, keep, err, sizeof(err)), cases[i].n);
        kept(m, keep, got, sizeof(got));
        assert_string_equal(got, cases[i].want);
    }
    manifest_free(m);
}

static void test_select_errors(void **state)
{
    (void)state;
    manifest *m = load();
    unsigned char keep[MF_MAX_SERVICES];
    char err[256];
    assert_int_equal(sv_select(m, "natz", keep, err, sizeof(err)), -1);
    assert_string_equal(err, "--only: unknown service 'natz' (did you mean 'nats'?)");
    assert_int_equal(sv_select(m, "nats,wbe", keep, err, sizeof(err)), -1);
    assert_string_equal(err, "--only: unknown service 'wbe' (did you mean 'web'?)");
    assert_int_equal(sv_select(m, "caddy", keep, err, sizeof(err)), -1);
    assert_string_equal(err, "--only: unknown service 'caddy' (services: nats auth xtask web edge lone)");
    assert_int_equal(sv_select(m, " , ", keep, err, sizeof(err)), -1);
    assert_string_equal(err, "--only: no service named (--only NAME[,NAME...])");
    assert_int_equal(sv_select(m, "", keep, err, sizeof(err)), -1);
    char longname[80];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(sv_select(m, longname, keep, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "service name too long"));
    /* a small buffer is cut, not overrun */
    char small[24];
    assert_int_equal(sv_select(m, "caddy", keep, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    manifest_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_closure),
        cmocka_unit_test(test_select_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
