/* Unit tests for manifest_secrets_load: generate (0600, directories 0700, base64 of `bytes`
 * random bytes), keep an existing value, refuse unsafe or empty files, merge into an env vector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest.h"
#include "xt_conf.h"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/xt-mf-secrets-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            char sub[512];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d != NULL) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown(void **state)
{
    fixture *f = *state;
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* A manifest with secrets S (file dir/a/b/s, `bytes`) and T (dir/t, 32 bytes). */
static manifest *load_with(const fixture *f, int bytes)
{
    char text[1024], err[512];
    manifest *m = NULL;
    snprintf(text, sizeof(text),
             "version: 1\nsecrets:\n  S: { bytes: %d, file: '%s/a/b/s' }\n  T: { file: '%s/t' }\n"
             "services:\n  x: {command: [x], secrets: [S, T]}\n",
             bytes, f->dir, f->dir);
    if (manifest_load_mem("s.yaml", text, strlen(text), &m, err, sizeof(err)) != 0) fail_msg("%s", err);
    return m;
}

static char **strv(const char *a, const char *b)
{
    char **v = calloc(3, sizeof(*v));
    assert_non_null(v);
    v[0] = a ? strdup(a) : NULL;
    v[1] = a && b ? strdup(b) : NULL;
    return v;
}

static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env[i] != NULL; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') return env[i] + n + 1;
    return NULL;
}

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static int is_base64(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '+' ||
              *s == '/' || *s == '='))
            return 0;
    return 1;
}

static void test_generate_then_keep(void **state)
{
    fixture *f = *state;
    manifest *m = load_with(f, 32);
    char err[512], path[256], content[256];
    struct stat st;
    mode_t old = umask(0);
    char **env = strv("PATH=/bin", "S=from-the-environment");
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), 0);
    umask(old);

    /* env: PATH kept, S replaced, T added; 32 bytes are 44 base64 characters */
    assert_int_equal(xt_strv_len(env), 3);
    assert_string_equal(env[0], "PATH=/bin");
    const char *s = env_get(env, "S"), *t = env_get(env, "T");
    assert_non_null(s);
    assert_non_null(t);
    assert_int_equal(strlen(s), 44);
    assert_int_equal(strlen(t), 44);
    assert_true(is_base64(s));
    assert_string_not_equal(s, t);

    /* files: 0600, the value plus a newline; new directories 0700; no temp file left */
    snprintf(path, sizeof(path), "%s/a/b/s", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    read_file(path, content, sizeof(content));
    assert_int_equal(strlen(content), 45);
    assert_int_equal(content[44], '\n');
    assert_memory_equal(content, s, 44);
    snprintf(path, sizeof(path), "%s/a", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/a/b", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    DIR *d = opendir(path);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') entries++;
    closedir(d);
    assert_int_equal(entries, 1);

    /* second start: the same values */
    char keep_s[64], keep_t[64];
    snprintf(keep_s, sizeof(keep_s), "%s", s);
    snprintf(keep_t, sizeof(keep_t), "%s", t);
    char **env2 = NULL;
    assert_int_equal(manifest_secrets_load(m, &env2, err, sizeof(err)), 0);
    assert_int_equal(xt_strv_len(env2), 2);
    assert_string_equal(env_get(env2, "S"), keep_s);
    assert_string_equal(env_get(env2, "T"), keep_t);
    xt_strv_free(env2);
    xt_strv_free(env);
    manifest_free(m);
}

static void test_keep_existing_value(void **state)
{
    fixture *f = *state;
    manifest *m = load_with(f, 16);
    char err[512], path[256];
    snprintf(path, sizeof(path), "%s/t", f->dir);
    write_file(path, "hand-written value\r\n", 0400);
    char **env = NULL;
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), 0);
    assert_string_equal(env_get(env, "T"), "hand-written value");
    assert_int_equal(strlen(env_get(env, "S")), 24); /* 16 bytes */
    xt_strv_free(env);
    manifest_free(m);
}

static void test_sizes(void **state)
{
    fixture *f = *state;
    for (int bytes = 1; bytes <= 1024; bytes = bytes * 4 + 3) {
        manifest *m = load_with(f, bytes);
        char err[512], path[256];
        char **env = NULL;
        snprintf(path, sizeof(path), "%s/a/b/s", f->dir);
        unlink(path);
        assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), 0);
        assert_int_equal(strlen(env_get(env, "S")), 4 * ((bytes + 2) / 3));
        xt_strv_free(env);
        manifest_free(m);
    }
}

/* Each refusal: exact message, nothing changed in env, the file left as it was. */
static void expect_refusal(const fixture *f, const char *content, mode_t mode, const char *what)
{
    manifest *m = load_with(f, 32);
    char err[512], path[256], want[512];
    snprintf(path, sizeof(path), "%s/t", f->dir);
    write_file(path, content, mode);
    char **env = strv("A=1", NULL);
    char **before = env;
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "s.yaml:4:3: secret 'T': %s/t %s", f->dir, what);
    assert_string_equal(err, want);
    assert_ptr_equal(env, before);
    assert_int_equal(xt_strv_len(env), 1);
    assert_string_equal(env[0], "A=1");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
    unlink(path);
    xt_strv_free(env);
    manifest_free(m);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    expect_refusal(f, "x\n", 0640, "is accessible by group or others (mode 0640): chmod 600 it");
    expect_refusal(f, "x\n", 0604, "is accessible by group or others (mode 0604): chmod 600 it");
    expect_refusal(f, "x\n", 0620, "is accessible by group or others (mode 0620): chmod 600 it");
    expect_refusal(f, "", 0600, "is empty (remove it to have a new value generated)");
    expect_refusal(f, "\n\n", 0600, "is empty (remove it to have a new value generated)");
    expect_refusal(f, "two\nlines\n", 0600, "holds a line break or a control byte (a secret is one line)");
    expect_refusal(f, "tab\there", 0600, "holds a line break or a control byte (a secret is one line)");

    char big[9000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_refusal(f, big, 0600, "is larger than 8192 bytes");
}

static void test_not_a_file(void **state)
{
    fixture *f = *state;
    manifest *m = load_with(f, 32);
    char err[512], path[256], want[512];
    snprintf(path, sizeof(path), "%s/t", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    char **env = NULL;
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "s.yaml:4:3: secret 'T': %s/t is not a regular file", f->dir);
    assert_string_equal(err, want);
    assert_null(env);
    rmdir(path);

    /* a file where a directory should be */
    snprintf(path, sizeof(path), "%s/a", f->dir);
    rm_rf(path); /* S, read before T, was generated there */
    write_file(path, "x", 0600);
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "s.yaml:3:3: secret 'S': cannot open %s/a/b/s: Not a directory", f->dir);
    assert_string_equal(err, want);
    assert_null(env);
    manifest_free(m);
}

/* The message never carries the value. */
static void test_values_not_in_messages(void **state)
{
    fixture *f = *state;
    manifest *m = load_with(f, 32);
    char err[512], path[256];
    snprintf(path, sizeof(path), "%s/t", f->dir);
    write_file(path, "TOPSECRETVALUE\n", 0644);
    char **env = NULL;
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), -1);
    assert_null(strstr(err, "TOPSECRET"));
    manifest_free(m);
}

/* `encoding:` and `prefix:` shape generated values; an existing file is kept as it is. */
static void test_encodings(void **state)
{
    fixture *f = *state;
    char text[1024], err[512], buf[256];
    manifest *m = NULL;
    snprintf(text, sizeof(text),
             "version: 1\nsecrets:\n"
             "  B: { bytes: 24, file: '%s/b' }\n"
             "  H: { bytes: 24, encoding: hex, prefix: xt, file: '%s/h' }\n"
             "  U: { bytes: 32, encoding: base64url, file: '%s/u' }\n"
             "  P: { bytes: 1, encoding: base64, prefix: 'k.', file: '%s/p' }\n"
             "services:\n  x: {command: [x], secrets: [B, H, U, P]}\n",
             f->dir, f->dir, f->dir, f->dir);
    if (manifest_load_mem("s.yaml", text, strlen(text), &m, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(m->secrets[0].encoding, MF_ENC_BASE64);
    assert_null(m->secrets[0].prefix);
    assert_int_equal(m->secrets[1].encoding, MF_ENC_HEX);
    assert_string_equal(m->secrets[1].prefix, "xt");
    assert_int_equal(m->secrets[2].encoding, MF_ENC_BASE64URL);
    char **env = strv(NULL, NULL);
    if (manifest_secrets_load(m, &env, err, sizeof(err)) != 0) fail_msg("%s", err);
    const char *b = env_get(env, "B"), *h = env_get(env, "H"), *u = env_get(env, "U"), *p = env_get(env, "P");
    assert_non_null(b);
    assert_int_equal(strlen(b), 32);
    assert_true(is_base64(b));
    assert_non_null(h);
    assert_int_equal(strlen(h), 2 + 48);
    assert_memory_equal(h, "xt", 2);
    for (const char *q = h + 2; *q; q++)
        assert_true((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'));
    assert_non_null(u);
    assert_int_equal(strlen(u), 43); /* 32 bytes: 43 characters without the '=' */
    for (const char *q = u; *q; q++)
        assert_true((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
                    *q == '-' || *q == '_');
    assert_non_null(p);
    assert_int_equal(strlen(p), 2 + 4); /* one byte: "xx==" */
    assert_memory_equal(p, "k.", 2);
    assert_string_equal(p + 4, "==");
    /* the files hold the same values */
    snprintf(text, sizeof(text), "%s/h", f->dir);
    read_file(text, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, h, strlen(h)), 0);
    /* kept as is on the next load, even if the encoding changed since */
    char keep[64];
    snprintf(keep, sizeof(keep), "%s", h);
    xt_strv_free(env);
    manifest_free(m);
    snprintf(text, sizeof(text),
             "version: 1\nsecrets:\n  H: { bytes: 24, encoding: base64, file: '%s/h' }\n"
             "services:\n  x: {command: [x], secrets: [H]}\n",
             f->dir);
    m = NULL;
    if (manifest_load_mem("s.yaml", text, strlen(text), &m, err, sizeof(err)) != 0) fail_msg("%s", err);
    env = strv(NULL, NULL);
    if (manifest_secrets_load(m, &env, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_string_equal(env_get(env, "H"), keep);
    xt_strv_free(env);
    manifest_free(m);
}

static void test_no_secrets(void **state)
{
    (void)state;
    char err[256];
    manifest *m = NULL;
    const char *t = "version: 1\nservices:\n  x: {command: [x]}\n";
    assert_int_equal(manifest_load_mem("n.yaml", t, strlen(t), &m, err, sizeof(err)), 0);
    char **env = NULL;
    assert_int_equal(manifest_secrets_load(m, &env, err, sizeof(err)), 0);
    assert_non_null(env);
    assert_null(env[0]);
    xt_strv_free(env);
    manifest_free(m);
}

/* Secrets reach only the services that name them: the parse, the did-you-mean and the unused case. */
static void test_scopes(void **state)
{
    (void)state;
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"version: 1\nsecrets:\n  AUTH_SESSION_SECRET: { file: /tmp/xt-nope/s }\nservices:\n"
         "  a: {command: [a], secrets: [AUTH_SESION_SECRET]}\n",
         "q.yaml:5:31: services.a.secrets: unknown secret 'AUTH_SESION_SECRET' (did you mean "
         "'AUTH_SESSION_SECRET'?)"},
        {"version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\nservices:\n  a: {command: [a], secrets: "
         "[ZZZ_Q]}\n",
         "q.yaml:5:31: services.a.secrets: unknown secret 'ZZZ_Q' (define it under the top-level secrets:)"},
        {"version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\n  T: { file: /tmp/xt-nope/t }\nservices:\n"
         "  a: {command: [a], secrets: [S]}\n",
         "q.yaml:4:3: secret 'T' is given to no service"},
        {"version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\nservices:\n  a: {command: [a], secrets: [S, "
         "S]}\n",
         "q.yaml:5:34: services.a.secrets: 'S' is listed twice"},
        {"version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\nservices:\n  a: {command: [a], secrets: S}\n",
         "q.yaml:5:30: services.a.secrets must be a list of secret names"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        manifest *m = NULL;
        err[0] = '\0';
        assert_int_equal(manifest_load_mem("q.yaml", bad[i].text, strlen(bad[i].text), &m, err, sizeof(err)),
                         -1);
        if (strstr(err, bad[i].err) == NULL) fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].err);
    }
    const char *ok = "version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\n  T: { file: /tmp/xt-nope/t }\n"
                     "services:\n  a: {command: [a], secrets: [S]}\n  b: {command: [b], secrets: [T, S]}\n"
                     "  c: {command: [c]}\n";
    manifest *m = NULL;
    assert_int_equal(manifest_load_mem("q.yaml", ok, strlen(ok), &m, err, sizeof(err)), 0);
    assert_string_equal(m->services[0].secrets[0], "S");
    assert_null(m->services[0].secrets[1]);
    assert_string_equal(m->services[1].secrets[0], "T");
    assert_non_null(m->services[2].secrets);
    assert_null(m->services[2].secrets[0]);
    /* the list is part of the service's digest (a reload restarts a service whose secrets change) */
    char d0[65];
    memcpy(d0, m->services[2].digest, sizeof(d0));
    manifest_free(m);
    const char *ok2 = "version: 1\nsecrets:\n  S: { file: /tmp/xt-nope/s }\n  T: { file: /tmp/xt-nope/t }\n"
                      "services:\n  a: {command: [a], secrets: [S]}\n  b: {command: [b], secrets: [S]}\n"
                      "  c: {command: [c], secrets: [T]}\n";
    m = NULL;
    assert_int_equal(manifest_load_mem("q.yaml", ok2, strlen(ok2), &m, err, sizeof(err)), 0);
    assert_string_not_equal(m->services[2].digest, d0);
    manifest_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_then_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_existing_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_not_in_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encodings, setup, teardown),
        cmocka_unit_test(test_no_secrets),
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
