/* auth_users: argon2 hashes made by the argon2 CLI (Debian `argon2`), our own hashes, and the
 * Authelia users database. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <argon2.h>

#include "auth.h"

/* echo -n "correct horse" | argon2 <salt> -id|-i|-d -t T -m M -p P -e */
static const char *const cli_hashes[] = {
    "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM$e4SKnVjYVP4RN3nfjX+AW5f73P+ZGDXoIp9nOcEa+f0",
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$uYQQtFzU847rVOhVuuSJYayEiaN9phiSarX38vUXOcY",
    "$argon2i$v=19$m=1024,t=2,p=2$c2FsdHNhbHRzYWx0$uk52AMlI1OX86ZzTDVOhHrTQQnqZ4Ne49W9cI11rssk",
    "$argon2d$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$xzqFUEmWn4QYuaMFqbngD8ODIPpbaNZ7np5YcIdItKU",
};

static void cli_made_hashes(void **st)
{
    size_t i;
    (void)st;
    for (i = 0; i < sizeof(cli_hashes) / sizeof(cli_hashes[0]); i++) {
        assert_int_equal(auth_password_verify(cli_hashes[i], "correct horse", 13), 1);
        assert_int_equal(auth_password_verify(cli_hashes[i], "correct horsE", 13), 0);
        assert_int_equal(auth_password_verify(cli_hashes[i], "", 0), 0);
    }
}

/* The CLI run now, with a UTF-8 password (skipped when the CLI is absent). */
static void cli_live(void **st)
{
    FILE *p;
    char line[512];
    (void)st;
    if (access("/usr/bin/argon2", X_OK) != 0) skip();
    p = popen("printf '%s' 'p\xc3\xa4ss w\xc3\xb6rd \xe2\x9c\x93' | /usr/bin/argon2 livesalt1234 -id -t 1 -m "
              "12 -p 2 -e",
              "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    assert_int_equal(strncmp(line, "$argon2id$v=19$m=4096,t=1,p=2$", 30), 0);
    assert_int_equal(auth_password_verify(line, "p\xc3\xa4ss w\xc3\xb6rd \xe2\x9c\x93", 15), 1);
    assert_int_equal(auth_password_verify(line, "pass word", 9), 0);
}

static void malformed_and_out_of_bounds(void **st)
{
    (void)st;
    assert_int_equal(auth_password_verify("", "x", 1), -1);
    assert_int_equal(auth_password_verify("plaintext", "plaintext", 9), -1);
    assert_int_equal(auth_password_verify("$6$salt$abcdef", "x", 1), -1); /* sha512crypt: not supported */
    assert_int_equal(auth_password_verify("$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM", "x", 1), -1);
    /* 4 GiB of memory, 1000 passes: refused before hashing */
    assert_int_equal(
        auth_password_verify(
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQxMjM$e4SKnVjYVP4RN3nfjX+AW5f73P+ZGDXoIp9nOcEa+f0",
            "x", 1),
        -1);
    assert_int_equal(
        auth_password_verify(
            "$argon2id$v=19$m=1024,t=1000,p=1$c29tZXNhbHQxMjM$e4SKnVjYVP4RN3nfjX+AW5f73P+ZGDXoIp9nOcEa+f0",
            "x", 1),
        -1);
}

static void own_hashes(void **st)
{
    auth_argon2_params p = {Argon2_id, 1, 1024, 1, 16, 32};
    char a[AUTH_HASH_MAX + 1], b[AUTH_HASH_MAX + 1];
    (void)st;
    assert_int_equal(auth_password_hash(&p, "s3cret", 6, a, sizeof(a)), 0);
    assert_int_equal(auth_password_hash(&p, "s3cret", 6, b, sizeof(b)), 0);
    assert_int_equal(strncmp(a, "$argon2id$v=19$m=1024,t=1,p=1$", 30), 0);
    assert_string_not_equal(a, b); /* random salts */
    assert_int_equal(auth_password_verify(a, "s3cret", 6), 1);
    assert_int_equal(auth_password_verify(a, "s3cre", 5), 0);
    assert_int_equal(auth_password_hash(&p, "s3cret", 6, a, 20), -1); /* bounded output */
}

static char *write_tmp(const char *text)
{
    static char path[64];
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/xt-users-XXXXXX");
    close(mkstemp(path));
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void users_file(void **st)
{
    char err[512];
    auth_users *u = NULL;
    const auth_user *a;
    char *path = write_tmp(
        "users:\n"
        "  bob:\n"
        "    displayname: \"Bob B\"\n"
        "    password: "
        "\"$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM$e4SKnVjYVP4RN3nfjX+AW5f73P+ZGDXoIp9nOcEa+f0\"\n"
        "    email: bob@example.com\n"
        "    groups: [developers]\n"
        "  alice:\n"
        "    password: "
        "\"$argon2i$v=19$m=1024,t=2,p=2$c2FsdHNhbHRzYWx0$uk52AMlI1OX86ZzTDVOhHrTQQnqZ4Ne49W9cI11rssk\"\n"
        "    groups: [admins, developers]\n"
        "    disabled: true\n");
    (void)st;
    if (auth_users_load(path, &u, err, sizeof(err)) < 0) fail_msg("%s", err);
    assert_int_equal(u->n, 2);
    a = auth_users_find(u, "alice");
    assert_non_null(a);
    assert_string_equal(a->displayname, "alice"); /* defaults to the name */
    assert_string_equal(a->email, "");
    assert_string_equal(a->groups_csv, "admins,developers");
    assert_int_equal(a->disabled, 1);
    a = auth_users_find(u, "bob");
    assert_non_null(a);
    assert_string_equal(a->displayname, "Bob B");
    assert_string_equal(a->groups_csv, "developers");
    assert_int_equal(auth_password_verify(a->password, "correct horse", 13), 1);
    assert_null(auth_users_find(u, "carol"));
    assert_null(auth_users_find(u, "Bob"));
    auth_users_free(u);
    unlink(path);
}

static void users_file_errors(void **st)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"users:\n  bob:\n    password: plain\n", ":3:15: user 'bob': password must be an argon2 hash "
                                                  "($argon2id$v=19$m=...,t=...,p=...$salt$hash) within "
                                                  "bounds (m <= 1 GiB, t <= 64, p <= 64)"},
        {"users:\n  bob:\n    displayname: Bob\n", ":3:5: user 'bob': 'password' is required"},
        {"users:\n  bob:\n    passwd: x\n",
         ":3:5: unknown key 'passwd' in user 'bob' (did you mean 'password'?)"},
        {"userz: {}\n", ":1:1: unknown key 'userz' in users database (did you mean 'users'?)"},
        {"users:\n  'b b':\n    password: x\n", ":2:3: user name 'b b': no spaces, ',' or ':'"},
        {"users:\n  bob:\n    password: "
         "\"$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM$e4SKnVjYVP4RN3nfjX+AW5f73P+ZGDXoIp9nOcEa+f0\"\n"
         "    displayname: \"Bob\\r\\nSet-Cookie: x=1\"\n",
         ":4:18: user 'bob': displayname: control characters or too long"},
    };
    size_t i;
    (void)st;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512], want[600];
        auth_users *u = NULL;
        char *path = write_tmp(cases[i].text);
        snprintf(want, sizeof(want), "%s%s", path, cases[i].msg);
        assert_int_equal(auth_users_load(path, &u, err, sizeof(err)), -1);
        assert_null(u);
        if (strcmp(err, want) != 0) fail_msg("case %zu:\n got: %s\nwant: %s", i, err, want);
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(cli_made_hashes),
                                       cmocka_unit_test(cli_live),
                                       cmocka_unit_test(malformed_and_out_of_bounds),
                                       cmocka_unit_test(own_hashes),
                                       cmocka_unit_test(users_file),
                                       cmocka_unit_test(users_file_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
