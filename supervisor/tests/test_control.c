/* Unit tests: control protocol request parsing (control.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sv.h"

static void test_parse_valid(void **state)
{
    (void)state;
    sv_ctl_req r;
    char err[128];
    assert_int_equal(ctl_parse("status", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_STATUS);
    assert_false(r.json);
    assert_int_equal(ctl_parse("status json", &r, err, sizeof(err)), 0);
    assert_true(r.json);
    assert_false(r.check);
    assert_int_equal(ctl_parse("status check json", &r, err, sizeof(err)), 0);
    assert_true(r.json);
    assert_true(r.check);
    assert_int_equal(ctl_parse("logs web check", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("  restart   nats \r", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_RESTART);
    assert_string_equal(r.name, "nats");
    assert_int_equal(ctl_parse("logs web", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_LOGS);
    assert_int_equal(r.nlines, 50);
    assert_false(r.follow);
    assert_int_equal(ctl_parse("logs web 10 follow", &r, err, sizeof(err)), 0);
    assert_int_equal(r.nlines, 10);
    assert_true(r.follow);
    /* no cap but the supervisor's rings: 1000, all; every service (*), times, since */
    assert_int_equal(ctl_parse("logs * 1000 follow ts since=1700000000000", &r, err, sizeof(err)), 0);
    assert_string_equal(r.name, "*");
    assert_int_equal(r.nlines, 1000);
    assert_true(r.follow && r.ts);
    assert_true(r.since_ms == 1700000000000LL);
    assert_int_equal(ctl_parse("logs web all", &r, err, sizeof(err)), 0);
    assert_int_equal(r.nlines, -1);
    assert_int_equal(ctl_parse("restart web wait", &r, err, sizeof(err)), 0);
    assert_true(r.wait);
    assert_int_equal(ctl_parse("reload", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_RELOAD);
    assert_int_equal(ctl_parse("ping", &r, err, sizeof(err)), 0);
    assert_int_equal(ctl_parse("start a", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_START);
    assert_int_equal(ctl_parse("stop a", &r, err, sizeof(err)), 0);
    assert_int_equal(r.cmd, CTL_STOP);
}

static void test_parse_errors(void **state)
{
    (void)state;
    sv_ctl_req r;
    char err[128];
    assert_int_equal(ctl_parse("", &r, err, sizeof(err)), -1);
    assert_string_equal(err, "empty request");
    assert_int_equal(ctl_parse("frobnicate", &r, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown command 'frobnicate'");
    assert_int_equal(ctl_parse("start", &r, err, sizeof(err)), -1);
    assert_string_equal(err, "start: missing service name");
    assert_int_equal(ctl_parse("status yaml", &r, err, sizeof(err)), -1);
    assert_string_equal(err, "status: unexpected argument 'yaml'");
    assert_int_equal(ctl_parse("logs web since=soon", &r, err, sizeof(err)), -1);
    assert_string_equal(err, "logs: since= needs a time in ms since the epoch");
    assert_int_equal(ctl_parse("logs web 99999999999999999999", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("start web wait", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("logs a b c d e f g h i", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("logs web 12x", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("reload now", &r, err, sizeof(err)), -1);
    assert_int_equal(ctl_parse("a b c d e f", &r, err, sizeof(err)), -1);
    char longname[MF_NAME_MAX + 20];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    char req[200];
    snprintf(req, sizeof(req), "stop %s", longname);
    assert_int_equal(ctl_parse(req, &r, err, sizeof(err)), -1);
    assert_string_equal(err, "stop: service name too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
