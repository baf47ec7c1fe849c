/* Unit tests: the got.download address guard (xg_guard): every non-public range in every spelling,
 * the allowlists, CIDR parsing, and the download.allow_* keys of xtask.yaml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xc_conf.h"
#include "xg_guard.h"

/* The reason the guard gives for `host`, or NULL when it passes. */
static const char *refused(const char *host, const xg_allow *allow, char *err, size_t errlen)
{
    xg_addr a[XG_ADDRS_MAX];
    size_t n = 99;
    if (xg_resolve_checked(host, allow, a, &n, err, errlen) == 0) {
        assert_true(n >= 1 && n <= XG_ADDRS_MAX);
        return NULL;
    }
    assert_int_equal(n, 0);
    return err;
}

static void test_refused_spellings(void **state)
{
    static const char *const bad[] = {"127.0.0.1",
                                      "localhost",
                                      "LocalHost",
                                      "0.0.0.0",
                                      "[::1]",
                                      "::1",
                                      "::",
                                      "169.254.169.254",
                                      "fdaa::3",
                                      "fdaa:0:1:a7b:1::2",
                                      "fd00:ec2::254",
                                      "2130706433",
                                      "0177.0.0.1",
                                      "0x7f.0.0.1",
                                      "0x7f000001",
                                      "127.1",
                                      "017700000001",
                                      "::ffff:127.0.0.1",
                                      "[::ffff:7f00:1]",
                                      "::127.0.0.1",
                                      "64:ff9b::7f00:1",
                                      "64:ff9b::a9fe:a9fe",
                                      "2002:7f00:1::",
                                      "10.1.2.3",
                                      "172.16.0.1",
                                      "172.31.255.255",
                                      "192.168.1.1",
                                      "100.64.0.1",
                                      "100.127.255.254",
                                      "100.100.100.200",
                                      "fc00::1",
                                      "fe80::1",
                                      "fec0::1",
                                      "224.0.0.1",
                                      "239.255.255.250",
                                      "255.255.255.255",
                                      "ff02::1",
                                      "192.0.0.170",
                                      "198.18.0.1",
                                      "2001:db8::1",
                                      "2001:0::1",
                                      "64:ff9b:1::1",
                                      "0.1.2.3"};
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = refused(bad[i], NULL, err, sizeof err);
        if (!why) fail_msg("'%s' was not refused", bad[i]);
        if (!strstr(why, "refused") || !strstr(why, "not a public address"))
            fail_msg("'%s': unclear message: %s", bad[i], why);
    }
}

static void test_reasons(void **state)
{
    char err[512];
    assert_non_null(strstr(refused("169.254.169.254", NULL, err, sizeof err), "cloud metadata"));
    assert_non_null(strstr(refused("fd00:ec2::254", NULL, err, sizeof err), "cloud metadata"));
    assert_non_null(strstr(refused("fdaa::3", NULL, err, sizeof err), "Fly 6PN"));
    assert_non_null(strstr(refused("::ffff:127.0.0.1", NULL, err, sizeof err), "IPv4-mapped loopback"));
    assert_non_null(strstr(refused("64:ff9b::a9fe:a9fe", NULL, err, sizeof err), "NAT64 cloud metadata"));
    assert_non_null(strstr(refused("10.0.0.1", NULL, err, sizeof err), "RFC 1918"));
    assert_non_null(strstr(refused("100.64.1.1", NULL, err, sizeof err), "CGNAT"));
    assert_non_null(strstr(refused("fc00::1", NULL, err, sizeof err), "ULA"));
    const char *m = refused("2130706433", NULL, err, sizeof err);
    assert_non_null(strstr(m, "127.0.0.1") && strstr(m, "loopback") ? m : NULL);
    m = refused("localhost", NULL, err, sizeof err);
    assert_non_null(strstr(m, "'localhost' resolves to") ? m : NULL);
}

static void test_public_passes(void **state)
{
    static const char *const good[] = {"8.8.8.8",         "1.1.1.1",        "2606:4700:4700::1111",
                                       "[2a00:1450::1]",  "::ffff:8.8.8.8", "64:ff9b::808:808",
                                       "2002:808:808::1", "100.128.0.1",    "172.32.0.1",
                                       "192.169.0.1",     "169.255.0.1",    "223.255.255.255"};
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (refused(good[i], NULL, err, sizeof err)) fail_msg("'%s' refused: %s", good[i], err);
}

static void test_allowlists(void **state)
{
    xg_net nets[2];
    char err[512];
    char *hosts[] = {"LocalHost.", NULL};
    assert_int_equal(xg_net_parse("127.0.0.0/8", &nets[0], err, sizeof err), 0);
    assert_int_equal(xg_net_parse("fdaa::/16", &nets[1], err, sizeof err), 0);
    xg_allow by_net = {NULL, nets, 2}, by_host = {hosts, NULL, 0};
    assert_null(refused("127.0.0.1", &by_net, err, sizeof err));
    assert_null(refused("127.9.9.9", &by_net, err, sizeof err));
    assert_null(refused("::ffff:127.0.0.1", &by_net, err, sizeof err)); /* the same address */
    assert_null(refused("fdaa:0:1::2", &by_net, err, sizeof err));
    assert_non_null(refused("::1", &by_net, err, sizeof err));
    assert_non_null(refused("169.254.169.254", &by_net, err, sizeof err));
    assert_non_null(refused("64:ff9b::7f00:1", &by_net, err, sizeof err)); /* NAT64 is another host */
    assert_null(refused("localhost", &by_host, err, sizeof err));
    assert_non_null(refused("127.0.0.1", &by_host, err, sizeof err)); /* names, not addresses */
}

static void test_net_parse(void **state)
{
    xg_net n;
    char err[256];
    assert_int_equal(xg_net_parse("10.0.0.0/8", &n, err, sizeof err), 0);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(xg_net_parse("::1", &n, err, sizeof err), 0);
    assert_int_equal(n.prefix, 128);
    assert_int_equal(xg_net_parse("0.0.0.0/0", &n, err, sizeof err), 0);
    static const char *const bad[] = {"10.0.0.1/8", "10.0.0.0/33", "abc",        "0x7f.0.0.1/8",
                                      "127.1",      "10.0.0.0/",   "10.0.0.0/a", "/8",
                                      "fdaa::/129", "fdaa::1/16",  "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (xg_net_parse(bad[i], &n, err, sizeof err) == 0) fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err, bad[i]));
    }
}

static void test_conf_keys(void **state)
{
    xc_conf c;
    char err[512];
    xc_conf_defaults(&c);
    assert_int_equal(xc_conf_load_mem(&c, "xtask.yaml",
                                      "download:\n  allow_hosts: [mirror.internal]\n"
                                      "  allow_networks: [\"127.0.0.0/8\", \"::1\"]\n",
                                      NULL, NULL, err, sizeof err),
                     0);
    assert_string_equal(c.download_allow_hosts[0], "mirror.internal");
    assert_int_equal(c.ndownload_allow_nets, 2);
    xc_conf_free(&c);
    xc_conf_defaults(&c);
    assert_int_equal(c.ndownload_allow_nets, 0);
    assert_int_equal(xc_conf_load_mem(&c, "xtask.yaml", "download:\n  allow_networks: [\"10.0.0.1/8\"]\n",
                                      NULL, NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "xtask.yaml:2:20: download.allow_networks: '10.0.0.1/8' has host bits"));
    xc_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_spellings), cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_public_passes),     cmocka_unit_test(test_allowlists),
        cmocka_unit_test(test_net_parse),         cmocka_unit_test(test_conf_keys)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
