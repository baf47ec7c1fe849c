/* Unit tests for xtask-bus's operations on a temporary directory: what init creates (modes,
 * JWT chain, certificates), that a second init keeps everything, user add/revoke, that show never
 * prints a secret, and that an exported bundle materializes the same operator elsewhere. The real
 * nats-server accepting all of it is tested in integration-tests/bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus_join.h"
#include "bus_ops.h"
#include "bus_store.h"
#include "xt_jwt.h"

static char dir[256], dir2[256];

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/xt-bus-test-%ld", (long)getpid());
    snprintf(dir2, sizeof(dir2), "/tmp/xt-bus-test2-%ld", (long)getpid());
    rm_rf(dir);
    rm_rf(dir2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(dir);
    rm_rf(dir2);
    return 0;
}

static char *slurp(const char *d, const char *name)
{
    char p[512], err[256];
    snprintf(p, sizeof(p), "%s/%s", d, name);
    return bus_store_read(p, 1 << 20, NULL, NULL, err, sizeof(err));
}

static bus_opts opts(const char *d)
{
    bus_opts o = {0};
    o.dir = d;
    o.domains[0] = "xtask.example.org";
    o.ndomains = 1;
    o.node_id = "test-node";
    o.js_mem = 1 << 20;
    o.js_disk = 1 << 24;
    return o;
}

/* Every file under d is 0600 and every directory 0700. */
static void check_modes(const char *d)
{
    DIR *dh = opendir(d);
    assert_non_null(dh);
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[600];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        assert_int_equal(lstat(p, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            if ((st.st_mode & 0777) != 0700) fail_msg("%s: mode %o", p, st.st_mode & 0777);
            check_modes(p);
        } else if ((st.st_mode & 0777) != 0600) {
            fail_msg("%s: mode %o", p, st.st_mode & 0777);
        }
    }
    closedir(dh);
}

static json_t *creds_claims(const char *d, const char *name)
{
    char file[128], err[256];
    snprintf(file, sizeof(file), "creds/%s.creds", name);
    char *text = slurp(d, file);
    assert_non_null(text);
    char *b = strstr(text, "-----BEGIN NATS USER JWT-----\n");
    assert_non_null(b);
    b += strlen("-----BEGIN NATS USER JWT-----\n");
    *strchr(b, '\n') = '\0';
    json_t *c = xt_jwt_decode(b, 0, err, sizeof(err));
    assert_non_null(c);
    assert_non_null(strstr(b + strlen(b) + 1, "-----BEGIN USER NKEY SEED-----\nSU"));
    free(text);
    return c;
}

static void test_init_idempotent(void **state)
{
    (void)state;
    char err[1024];
    bus_opts o = opts(dir);
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    check_modes(dir);

    /* operator -> accounts -> users */
    char *op = slurp(dir, "operator.jwt");
    json_t *oc = xt_jwt_decode(op, 0, err, sizeof(err));
    assert_non_null(oc);
    const char *op_pub = json_string_value(json_object_get(oc, "sub"));
    const char *sys_pub = json_string_value(json_object_get(json_object_get(oc, "nats"), "system_account"));
    assert_non_null(sys_pub);
    json_t *sc = creds_claims(dir, "sys");
    json_t *ac = creds_claims(dir, "admin");
    assert_string_equal(json_string_value(json_object_get(sc, "iss")), sys_pub);
    const char *xtask_pub = json_string_value(json_object_get(ac, "iss"));
    assert_string_not_equal(xtask_pub, sys_pub);
    char file[128];
    snprintf(file, sizeof(file), "jwt/%s.jwt", xtask_pub);
    char *xa = slurp(dir, file);
    json_t *xc = xt_jwt_decode(xa, 0, err, sizeof(err));
    assert_non_null(xc);
    assert_string_equal(json_string_value(json_object_get(xc, "iss")), op_pub);
    json_t *lim = json_object_get(json_object_get(xc, "nats"), "limits");
    assert_int_equal(json_integer_value(json_object_get(lim, "mem_storage")), 1 << 20);
    assert_int_equal(json_integer_value(json_object_get(lim, "disk_storage")), 1 << 24);
    snprintf(file, sizeof(file), "jwt/%s.jwt", sys_pub);
    char *sa = slurp(dir, file);
    assert_non_null(sa);

    /* a second init keeps every file as it is */
    static const char *const keep[] = {"keys/operator.nk", "operator.jwt",   "route-password",
                                       "tls/ca.pem",       "tls/server.pem", "creds/admin.creds",
                                       "creds/sys.creds",  "users.json"};
    char *before[sizeof(keep) / sizeof(keep[0])];
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        assert_non_null(before[i] = slurp(dir, keep[i]));
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        char *after = slurp(dir, keep[i]);
        if (strcmp(before[i], after) != 0) fail_msg("%s changed on a second init", keep[i]);
        free(after);
        free(before[i]);
    }
    char *xa2 = slurp(dir, file);
    assert_string_equal(sa, xa2);
    free(xa2);
    char *pw = slurp(dir, "route-password");
    assert_int_equal(strlen(pw), 50);
    assert_memory_equal(pw, "xt", 2);
    free(pw);

    /* another domain: a new server certificate, the same CA */
    char *ca = slurp(dir, "tls/ca.pem"), *cert = slurp(dir, "tls/server.pem");
    o.domains[0] = "other.example.org";
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    char *ca2 = slurp(dir, "tls/ca.pem"), *cert2 = slurp(dir, "tls/server.pem");
    assert_string_equal(ca, ca2);
    assert_string_not_equal(cert, cert2);
    free(ca), free(ca2), free(cert), free(cert2);

    fclose(devnull);
    free(op), free(xa), free(sa);
    json_decref(oc), json_decref(sc), json_decref(ac), json_decref(xc);
}

static void test_users(void **state)
{
    (void)state;
    char err[1024], out_path[300];
    bus_opts o = opts(dir);
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    snprintf(out_path, sizeof(out_path), "%s/alice.creds", dir);
    o.name = "alice";
    o.role = "admin";
    o.out = out_path;
    o.expires_in = 3600;
    assert_int_equal(bus_ops_user_add(&o, devnull, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(out_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* twice: refused while the first is valid */
    assert_int_equal(bus_ops_user_add(&o, devnull, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "exists"));
    /* unknown role, bad name */
    o.name = "bob";
    o.role = "root";
    assert_int_equal(bus_ops_user_add(&o, devnull, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "unknown role 'root'"));
    o.name = "../etc";
    o.role = "admin";
    assert_int_equal(bus_ops_user_add(&o, devnull, err, sizeof(err)), 2);

    /* revoke: the XTASK account JWT now lists alice's key */
    o.name = "alice";
    assert_int_equal(bus_ops_user_revoke(&o, devnull, err, sizeof(err)), 0);
    char *users = slurp(dir, "users.json");
    json_t *u = json_loads(users, 0, NULL);
    const char *alice = json_string_value(json_object_get(json_object_get(u, "alice"), "pub"));
    assert_non_null(alice);
    assert_true(json_integer_value(json_object_get(json_object_get(u, "alice"), "revoked")) > 0);
    json_t *ac = creds_claims(dir, "admin");
    char file[128];
    snprintf(file, sizeof(file), "jwt/%s.jwt", json_string_value(json_object_get(ac, "iss")));
    char *xa = slurp(dir, file);
    json_t *xc = xt_jwt_decode(xa, 0, err, sizeof(err));
    assert_true(json_integer_value(
                    json_object_get(json_object_get(json_object_get(xc, "nats"), "revocations"), alice)) > 0);
    /* init keeps the revocation */
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    char *xa2 = slurp(dir, file);
    assert_string_equal(xa, xa2);
    /* an unknown user */
    o.name = "nobody";
    assert_int_equal(bus_ops_user_revoke(&o, devnull, err, sizeof(err)), 2);

    /* show: public keys, no secret */
    char showp[300];
    snprintf(showp, sizeof(showp), "%s/show.txt", dir);
    FILE *f = fopen(showp, "w");
    assert_int_equal(bus_ops_show(&o, f, err, sizeof(err)), 0);
    fclose(f);
    char *shown = slurp(dir, "show.txt");
    assert_non_null(strstr(shown, alice));
    assert_non_null(strstr(shown, "revoked"));
    char *pw = slurp(dir, "route-password");
    char *seed = slurp(dir, "keys/operator.nk");
    assert_null(strstr(shown, pw));
    assert_null(strstr(shown, seed));
    assert_null(strstr(shown, "PRIVATE"));
    assert_null(strstr(shown, "\nSU"));
    free(shown), free(pw), free(seed), free(users), free(xa), free(xa2);
    json_decref(u), json_decref(ac), json_decref(xc);
    fclose(devnull);
}

static void test_bundle(void **state)
{
    (void)state;
    char err[1024];
    bus_opts o = opts(dir);
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    char bp[300];
    snprintf(bp, sizeof(bp), "%s/bundle.txt", dir);
    FILE *f = fopen(bp, "w");
    o.export_value = 1;
    assert_int_equal(bus_ops_export(&o, f, err, sizeof(err)), 0);
    fclose(f);
    char *bundle = slurp(dir, "bundle.txt");
    *strchr(bundle, '\n') = '\0';

    bus_opts o2 = opts(dir2);
    o2.bundle = bundle;
    assert_int_equal(bus_ops_init(&o2, devnull, err, sizeof(err)), 0);
    check_modes(dir2);
    static const char *const same[] = {"keys/operator.nk", "keys/XTASK.nk", "route-password", "tls/ca.pem",
                                       "tls/server.pem"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char *a = slurp(dir, same[i]), *b = slurp(dir2, same[i]);
        if (strcmp(a, b) != 0) fail_msg("%s differs after import", same[i]);
        free(a), free(b);
    }
    /* the CA key stays where the CA was made */
    char p[300];
    snprintf(p, sizeof(p), "%s/keys/ca-key.pem", dir2);
    assert_false(bus_store_exists(p));
    /* the importing machine mints its own creds from the shared account key */
    json_t *a1 = creds_claims(dir, "admin"), *a2 = creds_claims(dir2, "admin");
    assert_string_equal(json_string_value(json_object_get(a1, "iss")),
                        json_string_value(json_object_get(a2, "iss")));
    assert_string_not_equal(json_string_value(json_object_get(a1, "sub")),
                            json_string_value(json_object_get(a2, "sub")));
    /* a damaged bundle is refused */
    o2.bundle = "not-a-bundle!";
    assert_int_equal(bus_ops_init(&o2, devnull, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "XTASK_BUS_BUNDLE"));
    json_decref(a1), json_decref(a2);
    free(bundle);
    fclose(devnull);
}

/* node add: a join bundle that parses back to what was asked, carries no account or operator seed,
 * keeps its credential's expiry, and is refused once altered, expired or with another credential;
 * a revocation without JetStream limits keeps the account's. */
static void test_node_join_bundle(void **state)
{
    (void)state;
    char err[1024];
    bus_opts o = opts(dir);
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(bus_ops_init(&o, devnull, err, sizeof(err)), 0);
    o.name = "ci-1";
    o.caps[0] = "task";
    o.caps[1] = "ci";
    o.ncaps = 2;
    o.tags[0] = "linux";
    o.ntags = 1;
    o.hubs[0] = "tls://a.example:7422";
    o.hubs[1] = "tls://b.example:7422";
    o.nhubs = 2;
    o.expires_in = 3600;
    char *b = NULL;
    assert_int_equal(bus_ops_node_add(&o, devnull, &b, err, sizeof(err)), 0);
    assert_non_null(b);
    assert_true(strncmp(b, BUS_JOIN_PREFIX, strlen(BUS_JOIN_PREFIX)) == 0);
    bus_join j;
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(bus_join_parse(b, now, &j, err, sizeof(err)), 0);
    assert_string_equal(j.node, "ci-1");
    assert_int_equal(j.ncaps, 2);
    assert_string_equal(j.caps[1], "ci");
    assert_int_equal(j.nhubs, 2);
    assert_string_equal(j.hubs[1], "tls://b.example:7422");
    assert_string_equal(j.tags[0], "linux");
    assert_true(j.exp > now && j.exp <= now + 3600);
    char *ca = slurp(dir, "tls/ca.pem");
    assert_string_equal(j.ca, ca);
    bus_join_free(&j);
    /* no seed of the operator or an account inside (decoded) */
    {
        size_t n = strlen(b);
        unsigned char *raw = malloc(n);
        long len = xt_b64url_decode(b + strlen(BUS_JOIN_PREFIX), n - strlen(BUS_JOIN_PREFIX), raw, n);
        assert_true(len > 0);
        raw[len] = 0; /* decoded text is shorter than its base64 */
        const char *keys[] = {"keys/operator.nk", "keys/XTASK.nk", "keys/SYS.nk", "keys/ca-key.pem"};
        for (size_t i = 0; i < 4; i++) {
            char *k = slurp(dir, keys[i]);
            k[20] = '\0';
            assert_null(strstr((char *)raw, k));
            free(k);
        }
        free(raw);
    }
    /* expired as of a later time; a flipped character anywhere in the payload */
    assert_int_equal(bus_join_parse(b, now + 7200, &j, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "expired at"));
    size_t n = strlen(b);
    int refused = 0;
    for (size_t i = strlen(BUS_JOIN_PREFIX) + 10; i < n; i += n / 17) {
        char *c = strdup(b);
        c[i] = c[i] == 'A' ? 'B' : 'A';
        if (bus_join_parse(c, now, &j, err, sizeof(err)) == 2)
            refused++;
        else
            bus_join_free(&j);
        free(c);
    }
    assert_true(refused >= 15);
    assert_int_equal(bus_join_parse("xtj1.", now, &j, err, sizeof(err)), 2);
    assert_int_equal(bus_join_parse("hello", now, &j, err, sizeof(err)), 2);
    /* twice: refused while active; no hubs: a usage error */
    char *b2 = NULL;
    assert_int_equal(bus_ops_node_add(&o, devnull, &b2, err, sizeof(err)), 2);
    o.name = "ci-2";
    o.nhubs = 0;
    assert_int_equal(bus_ops_node_add(&o, devnull, &b2, err, sizeof(err)), 2);
    o.hubs[0] = "nats://plain:7422";
    o.nhubs = 1;
    assert_int_equal(bus_ops_node_add(&o, devnull, &b2, err, sizeof(err)), 2);
    /* hub entries: [REGION=]tls://, wss://; ws:// on loopback only; a bad region name */
    const char *bad[] = {"ws://front.example:80", "bad region=tls://a:7422", "=tls://a:7422",
                         "ams=nats://a:7422", "ams=tls://a:7422=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.hubs[0] = bad[i];
        assert_int_equal(bus_ops_node_add(&o, devnull, &b2, err, sizeof(err)), 2);
        assert_non_null(strstr(err, "--hub"));
    }
    o.hubs[0] = "ams=tls://a.example:7422";
    o.hubs[1] = "ams-443=wss://xtask.example";
    o.hubs[2] = "lo=ws://127.0.0.1:8080";
    o.nhubs = 3;
    assert_int_equal(bus_ops_node_add(&o, devnull, &b2, err, sizeof(err)), 0);
    assert_int_equal(bus_join_parse(b2, now, &j, err, sizeof(err)), 0);
    assert_int_equal(j.nhubs, 3);
    assert_string_equal(j.hubs[1], "ams-443=wss://xtask.example");
    bus_join_free(&j);
    free(b2);
    b2 = NULL;
    /* revoke without limits (xtask node revoke): JetStream limits unchanged */
    json_t *ac = creds_claims(dir, "admin");
    char file[128];
    snprintf(file, sizeof(file), "jwt/%s.jwt", json_string_value(json_object_get(ac, "iss")));
    char *before = slurp(dir, file);
    json_t *bc = xt_jwt_decode(before, 0, err, sizeof(err));
    bus_opts r = {0};
    r.dir = dir;
    r.name = "ci-1";
    assert_int_equal(bus_ops_user_revoke(&r, devnull, err, sizeof(err)), 0);
    char *after = slurp(dir, file);
    json_t *xc = xt_jwt_decode(after, 0, err, sizeof(err));
    assert_true(json_equal(json_object_get(json_object_get(bc, "nats"), "limits"),
                           json_object_get(json_object_get(xc, "nats"), "limits")));
    json_decref(bc);
    json_decref(xc);
    json_decref(ac);
    free(before);
    free(after);
    free(ca);
    free(b);
    fclose(devnull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_join_bundle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
