/* Unit tests: `user:` / `group:` resolution (users.c) without NSS: passwd and group files (given
 * through XTASK_SUPERVISOR_PASSWD_FILE / _GROUP_FILE), supplementary groups, numeric ids, the getent
 * fallback (the real getent on this machine: `nobody` is in every Debian /etc/passwd), and the
 * file:line:col errors for unknown names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sv.h"

static char dir[] = "/tmp/sv-test-users-XXXXXX";
static char pwf[128], grf[128];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(pwf, sizeof(pwf), "%s/passwd", dir);
    snprintf(grf, sizeof(grf), "%s/group", dir);
    write_file(pwf, "root:x:0:0:root:/root:/bin/sh\n"
                    "alice:x:1500:1500:Alice:/home/alice:/bin/sh\n"
                    "bob:x:1501:1501::/home/bob:/bin/sh\n");
    write_file(grf, "root:x:0:\n"
                    "alice:x:1500:\n"
                    "staff:x:50:bob,alice\n"
                    "audio:x:29:alice\n"
                    "video:x:44:bob\n");
    setenv("XTASK_SUPERVISOR_PASSWD_FILE", pwf, 1);
    setenv("XTASK_SUPERVISOR_GROUP_FILE", grf, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(pwf);
    unlink(grf);
    rmdir(dir);
    return 0;
}

/* Load a one-service manifest with the given extra lines, resolve; returns the rc, err filled. */
static int resolve(const char *extra, manifest **out, char *err, size_t errlen)
{
    char text[512];
    snprintf(text, sizeof(text), "version: 1\nservices:\n  a:\n    command: [x]\n%s", extra);
    *out = NULL;
    if (manifest_load_mem("t.yaml", text, strlen(text), out, err, errlen) != 0) fail_msg("%s", err);
    return users_resolve(*out, err, errlen);
}

static int has_group(const mf_ident *id, gid_t g)
{
    for (size_t i = 0; i < id->ngroups; i++)
        if (id->groups[i] == g) return 1;
    return 0;
}

static void test_users_files(void **state)
{
    (void)state;
    manifest *m;
    char err[512];
    assert_int_equal(resolve("    user: alice\n", &m, err, sizeof(err)), 0);
    const mf_ident *id = &m->services[0].ident;
    assert_true(id->set);
    assert_int_equal(id->uid, 1500);
    assert_int_equal(id->gid, 1500);
    /* supplementary: the primary group and every group listing alice, not bob's video */
    assert_int_equal(id->ngroups, 3);
    assert_true(has_group(id, 1500) && has_group(id, 50) && has_group(id, 29));
    assert_false(has_group(id, 44));
    manifest_free(m);
    /* a uid that has an entry: that entry's groups */
    assert_int_equal(resolve("    user: \"1501\"\n", &m, err, sizeof(err)), 0);
    id = &m->services[0].ident;
    assert_int_equal(id->uid, 1501);
    assert_int_equal(id->gid, 1501);
    assert_true(has_group(id, 50) && has_group(id, 44));
    manifest_free(m);
    /* no user: nothing to resolve */
    assert_int_equal(resolve("", &m, err, sizeof(err)), 0);
    assert_false(m->services[0].ident.set);
    manifest_free(m);
}

static void test_users_numeric_and_group(void **state)
{
    (void)state;
    manifest *m;
    char err[512];
    /* a uid without an entry: runs with gid = uid and no other group */
    assert_int_equal(resolve("    user: 4242\n", &m, err, sizeof(err)), 0);
    const mf_ident *id = &m->services[0].ident;
    assert_int_equal(id->uid, 4242);
    assert_int_equal(id->gid, 4242);
    assert_int_equal(id->ngroups, 1);
    manifest_free(m);
    /* group: by name replaces the primary group, memberships stay */
    assert_int_equal(resolve("    user: alice\n    group: staff\n", &m, err, sizeof(err)), 0);
    id = &m->services[0].ident;
    assert_int_equal(id->uid, 1500);
    assert_int_equal(id->gid, 50);
    assert_true(has_group(id, 29));
    manifest_free(m);
    /* group: by number */
    assert_int_equal(resolve("    user: alice\n    group: 777\n", &m, err, sizeof(err)), 0);
    assert_int_equal(m->services[0].ident.gid, 777);
    assert_true(has_group(&m->services[0].ident, 777));
    manifest_free(m);
}

static void test_users_errors(void **state)
{
    (void)state;
    manifest *m;
    char err[512];
    assert_int_equal(resolve("    user: alicee\n", &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.yaml:5:11: service 'a': unknown user 'alicee'"));
    manifest_free(m);
    assert_int_equal(resolve("    user: alice\n    group: stafff\n", &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.yaml:6:12: service 'a': unknown group 'stafff'"));
    manifest_free(m);
    assert_int_equal(resolve("    group: staff\n", &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.yaml:5:12: service 'a': group: needs a user:"));
    manifest_free(m);
    /* the parser refuses what cannot be a name at all */
    const char *bad = "version: 1\nservices:\n  a:\n    command: [x]\n    user: \"a:b\"\n";
    assert_int_equal(manifest_load_mem("t.yaml", bad, strlen(bad), &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.yaml:5:11:"));
}

static void test_users_getent_fallback(void **state)
{
    (void)state;
    manifest *m;
    char err[512];
    /* `nobody` is not in our test passwd file: getent (NSS, in its own process) finds it */
    if (system("getent passwd nobody >/dev/null 2>&1") != 0) skip();
    assert_int_equal(resolve("    user: nobody\n", &m, err, sizeof(err)), 0);
    assert_int_equal(m->services[0].ident.uid, 65534);
    assert_true(m->services[0].ident.ngroups >= 1);
    manifest_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users_files),
        cmocka_unit_test(test_users_numeric_and_group),
        cmocka_unit_test(test_users_errors),
        cmocka_unit_test(test_users_getent_fallback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
