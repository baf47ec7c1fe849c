/*
 * Unit tests for xt_nats against real nats-servers started here (127.0.0.1, ports chosen by the
 * server and read from its ports file): settings and their file:line:col errors, the environment
 * overrides, user/password and token auth, TLS with a throwaway CA made with the openssl CLI
 * (server verification, a wrong CA, a client certificate), the inbox prefix under permissions,
 * retry on a failed first connect and reconnection with the program's hooks, CLI error texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xt_conf.h"
#include "xt_jwt.h"
#include "xt_nats.h"

#define MAX_SERVERS 8

typedef struct {
    pid_t pid;
    int port;
    char conf[512];
} server;

static char tmpdir[256];
static server *running[MAX_SERVERS];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll `pred` every 10 ms until true or `ms` passed. */
static int wait_until(int (*pred)(void *), void *arg, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (pred(arg)) return 1;
        nap_ms(10);
    }
    return pred(arg);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The client port from the server's ports file. */
static int read_port(pid_t pid)
{
    char path[512], buf[1024];
    snprintf(path, sizeof path, "%s/nats-server_%d.ports", tmpdir, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *sep = strstr(buf, "://"); /* the first is the client port: {"nats":["nats://..."],...} */
    const char *colon = sep ? strchr(sep + 3, ':') : NULL;
    return colon ? (int)strtol(colon + 1, NULL, 10) : 0;
}

static int port_ready(void *arg)
{
    server *s = arg;
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        s->pid = 0;
        return 1; /* died: stop waiting */
    }
    return (s->port = read_port(s->pid)) > 0;
}

/* Start nats-server on `port` (0: any) with `extra` appended to the config. */
static void server_start(server *s, const char *name, int port, const char *extra)
{
    char text[4096], log[512];
    snprintf(s->conf, sizeof s->conf, "%s/%s.conf", tmpdir, name);
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, name);
    snprintf(text, sizeof text, "server_name: %s\nlisten: \"127.0.0.1:%d\"\nports_file_dir: \"%s\"\n%s\n",
             name, port ? port : -1, tmpdir, extra ? extra : "");
    write_file(s->conf, text);
    s->port = 0;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("nats-server", "nats-server", "-c", s->conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < MAX_SERVERS; i++)
        if (!running[i]) {
            running[i] = s;
            break;
        }
    wait_until(port_ready, s, 15000);
    if (s->pid == 0 || s->port == 0) fail_msg("nats-server %s did not start (see %s)", name, log);
}

static void server_stop(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        char path[512];
        snprintf(path, sizeof path, "%s/nats-server_%d.ports", tmpdir, (int)s->pid);
        unlink(path);
    }
    s->pid = 0;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] == s) running[i] = NULL;
}

static void run_sh(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "cd '%s' && { %s; } >>openssl.log 2>&1", tmpdir, cmd);
    if (system(full) != 0) fail_msg("command failed (see %s/openssl.log): %s", tmpdir, cmd);
}

static int group_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/xt-nats-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) return -1;
    /* A throwaway CA, a server certificate for 127.0.0.1/localhost, a client certificate, and
     * another CA that signed nothing here. */
    const char *cmds[] = {
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem"
        " -days 2 -subj /CN=xt-test-ca",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out "
        "other.pem"
        " -days 2 -subj /CN=xt-other-ca",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > srv.ext",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr"
        " -subj /CN=localhost",
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2"
        " -extfile srv.ext",
        "printf 'extendedKeyUsage=clientAuth\\n' > cli.ext",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cli.key -out cli.csr"
        " -subj /CN=xt-client",
        "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2"
        " -extfile cli.ext",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        run_sh(cmds[i]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i]) server_stop(running[i]);
    if (!getenv("XT_KEEP_TMP")) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    nats_Close();
    return 0;
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- hooks -------------------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int connected, disconnected, closed;
} hooks;

static void h_connected(natsConnection *nc, void *ud)
{
    hooks *h = ud;
    pthread_mutex_lock(&h->mu);
    h->connected++;
    pthread_mutex_unlock(&h->mu);
}

static void h_disconnected(natsConnection *nc, void *ud)
{
    hooks *h = ud;
    pthread_mutex_lock(&h->mu);
    h->disconnected++;
    pthread_mutex_unlock(&h->mu);
}

static void h_closed(natsConnection *nc, void *ud)
{
    hooks *h = ud;
    pthread_mutex_lock(&h->mu);
    h->closed++;
    pthread_mutex_unlock(&h->mu);
}

static int count(hooks *h, int *field)
{
    pthread_mutex_lock(&h->mu);
    int v = *field;
    pthread_mutex_unlock(&h->mu);
    return v;
}

typedef struct {
    hooks *h;
    int *field;
    int want;
} hook_wait;

static int hook_reached(void *arg)
{
    hook_wait *w = arg;
    return count(w->h, w->field) >= w->want;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* c->url = "<base>:<port>" */
static void conf_url(xt_nats_conf *c, const char *base, int port)
{
    char url[256];
    snprintf(url, sizeof url, "%s:%d", base, port);
    free(c->url);
    c->url = strdup(url);
}

static void on_echo(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud)
{
    if (natsMsg_GetReply(m))
        natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

/* A request/reply on `nc` to an echo responder on `rc`. */
static natsStatus echo_roundtrip(natsConnection *rc, natsConnection *nc, const char *subject)
{
    natsSubscription *sub = NULL;
    natsMsg *reply = NULL;
    natsStatus st = natsConnection_Subscribe(&sub, rc, subject, on_echo, NULL);
    if (st == NATS_OK) st = natsConnection_Flush(rc);
    if (st == NATS_OK) st = natsConnection_RequestString(&reply, nc, subject, "ping", 2000);
    if (st == NATS_OK && strcmp(natsMsg_GetData(reply), "ping") != 0) st = NATS_ERR;
    natsMsg_Destroy(reply);
    natsSubscription_Destroy(sub);
    return st;
}

static void close_conn(natsConnection *nc)
{
    if (nc) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
}

/* ---- settings ----------------------------------------------------------------------------- */

static int parse(const char *yaml, xt_nats_conf *c, char *err, size_t errlen)
{
    xt_doc *doc = NULL;
    int rc = xt_conf_load_mem("t.yaml", yaml, strlen(yaml), NULL, NULL, &doc, err, errlen);
    if (rc == 0) rc = xt_nats_conf_parse(c, doc, xt_map_get(doc->root, "nats"), "nats", err, errlen);
    xt_doc_free(doc);
    return rc;
}

static void test_conf_parse(void **state)
{
    (void)state;
    char yaml[2048], err[1024], ca[300], key[300];
    xt_nats_conf c = {0};
    tmp_path(ca, sizeof ca, "ca.pem");
    tmp_path(key, sizeof key, "cli.key");

    snprintf(yaml, sizeof yaml,
             "nats:\n  url: nats://127.0.0.1:4222, tls://h2:4443\n  creds: %s\n  tls_ca: %s\n"
             "  inbox_prefix: _INBOX_web\n  name: xtask-web\n  heartbeat: 5s\n",
             ca, ca);
    assert_int_equal(parse(yaml, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "nats://127.0.0.1:4222, tls://h2:4443");
    assert_string_equal(c.creds, ca);
    assert_string_equal(c.tls_ca, ca);
    assert_string_equal(c.inbox_prefix, "_INBOX_web");
    assert_string_equal(c.name, "xtask-web");
    assert_null(c.tls_cert);

    /* an empty value unsets (`${XTASK_NATS_CREDS:-}`) */
    assert_int_equal(parse("nats:\n  creds: \"\"\n  tls_ca: ~\n", &c, err, sizeof err), 0);
    assert_null(c.creds);
    assert_null(c.tls_ca);
    assert_string_equal(c.url, "nats://127.0.0.1:4222, tls://h2:4443"); /* untouched */

    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"nats:\n  url: nats://h:1\n  creds: /nonexistent/x.creds\n",
         "t.yaml:3:10: nats.creds: /nonexistent/x.creds: No such file or directory"},
        {"nats:\n  tls_ca: /\n", "t.yaml:2:11: nats.tls_ca: /: not a regular file"},
        {"nats:\n  url: http://h:1\n",
         "t.yaml:2:8: nats.url: 'http://h:1': the scheme must be nats:// or tls://"},
        {"nats:\n  url: \"nats://a:1,,nats://b:2\"\n", "t.yaml:2:8: nats.url: an empty URL in the list"},
        {"nats:\n  url: \"nats://a:1,\"\n", "t.yaml:2:8: nats.url: an empty URL in the list"},
        {"nats:\n  inbox_prefix: _INBOX.>\n", "t.yaml:2:17: nats.inbox_prefix: '_INBOX.>': only letters"},
        {"nats:\n  inbox_prefix: _INBOX.\n", "t.yaml:2:17: nats.inbox_prefix: '_INBOX.': empty token"},
        {"nats:\n  inbox_prefix: [a]\n", "t.yaml:2:17: nats.inbox_prefix"},
        {"nats:\n  url: nats://a:1\n  name: \"a\\tb\"\n", "t.yaml:3:9: nats.name: control characters"},
        {NULL, NULL},
    };
    for (int i = 0; bad[i].yaml; i++) {
        xt_nats_conf b = {0};
        if (parse(bad[i].yaml, &b, err, sizeof err) == 0) fail_msg("accepted: %s", bad[i].yaml);
        if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("got '%s', want '%s'", err, bad[i].want);
        xt_nats_conf_free(&b);
    }
    /* a client key without its certificate */
    xt_nats_conf b = {0};
    snprintf(yaml, sizeof yaml, "nats:\n  tls_key: %s\n", key);
    assert_int_equal(parse(yaml, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.yaml:2:12: nats: tls_cert and tls_key go together"));
    xt_nats_conf_free(&b);
    xt_nats_conf_free(&c);
}

static void test_conf_env(void **state)
{
    (void)state;
    char err[512], ca[300];
    xt_nats_conf c = {0};
    tmp_path(ca, sizeof ca, "ca.pem");
    c.url = strdup("nats://from-config:4222");
    setenv("XTASK_NATS_CREDS", "/nonexistent/admin.creds", 1);
    assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), -1);
    assert_string_equal(err, "XTASK_NATS_CREDS: /nonexistent/admin.creds: No such file or directory");
    setenv("XTASK_NATS_CREDS", ca, 1);
    setenv("XTASK_NATS_TLS_CA", ca, 1);
    setenv("XTASK_NATS_URL", "tls://127.0.0.1:1", 1);
    setenv("XTASK_NATS_INBOX_PREFIX", "_INBOX_admin", 1);
    assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), 0);
    assert_string_equal(c.url, "tls://127.0.0.1:1");
    assert_string_equal(c.creds, ca);
    assert_string_equal(c.tls_ca, ca);
    assert_string_equal(c.inbox_prefix, "_INBOX_admin");
    setenv("XTASK_NATS_INBOX_PREFIX", "a b", 1);
    assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "XTASK_NATS_INBOX_PREFIX: 'a b'"));
    unsetenv("XTASK_NATS_CREDS");
    unsetenv("XTASK_NATS_TLS_CA");
    unsetenv("XTASK_NATS_URL");
    unsetenv("XTASK_NATS_INBOX_PREFIX");

    xt_nats_conf d = {0};
    assert_int_equal(xt_nats_conf_copy(&d, &c), 0);
    assert_string_equal(d.creds, c.creds);
    assert_null(d.name);
    xt_nats_conf_free(&d);
    xt_nats_conf_free(&c);
    assert_null(c.url);
}

/* A .creds file at `path` for a user whose subscribe allow list is `sub` (JSON array text). The
 * signature is not checked here (the server does), so a made-up one does. */
static void write_creds(const char *path, const char *sub)
{
    char claims[1024], b64[2048];
    snprintf(claims, sizeof claims, "{\"name\":\"u\",\"nats\":{\"sub\":{\"allow\":%s},\"type\":\"user\"}}",
             sub);
    assert_true(xt_b64url_encode((const unsigned char *)claims, strlen(claims), b64, sizeof b64) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.%s.c2ln\n"
            "------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAFAKE\n"
            "------END USER NKEY SEED------\n",
            b64);
    fclose(f);
}

/* Without XTASK_NATS_INBOX_PREFIX, a CLI uses the one inbox its credential may read. */
static void test_conf_env_inbox_from_creds(void **state)
{
    (void)state;
    char err[512], path[300];
    tmp_path(path, sizeof path, "inbox.creds");
    unsetenv("XTASK_NATS_INBOX_PREFIX");
    setenv("XTASK_NATS_CREDS", path, 1);
    write_creds(path, "[\"xtask.logs.*\", \"_INBOX_cli-ams-1.>\"]");
    xt_nats_conf c = {0};
    assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), 0);
    assert_string_equal(c.inbox_prefix, "_INBOX_cli-ams-1");
    xt_nats_conf_free(&c);
    /* an explicit prefix wins */
    setenv("XTASK_NATS_INBOX_PREFIX", "_INBOX_x", 1);
    assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), 0);
    assert_string_equal(c.inbox_prefix, "_INBOX_x");
    xt_nats_conf_free(&c);
    unsetenv("XTASK_NATS_INBOX_PREFIX");
    /* admin (">"), two inboxes, a wildcard: nats.c's default */
    const char *none[] = {"[\">\"]", "[\"_INBOX_a.>\", \"_INBOX_b.>\"]", "[\"_INBOX_*.>\"]"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        write_creds(path, none[i]);
        assert_int_equal(xt_nats_conf_env(&c, err, sizeof err), 0);
        assert_null(c.inbox_prefix);
        xt_nats_conf_free(&c);
    }
    unsetenv("XTASK_NATS_CREDS");
}

static void test_text(void **state)
{
    (void)state;
    char buf[256];
    assert_string_equal(xt_nats_url_redact("nats://u:secret@h:1,nats://h2:2,tok@h3:3", buf, sizeof buf),
                        "nats://***@h:1,nats://h2:2,***@h3:3");
    assert_string_equal(xt_nats_url_redact("nats://h:1", buf, sizeof buf), "nats://h:1");
    xt_nats_url_redact("nats://u:secret@h:1", buf, 12);
    assert_null(strstr(buf, "secret"));
    xt_nats_params p = {.creds_where = "XTASK_NATS_CREDS"};
    assert_string_equal(xt_nats_status_text(NATS_CONNECTION_AUTH_FAILED, &p, buf, sizeof buf),
                        "authorization violation: check XTASK_NATS_CREDS");
    assert_int_equal(xt_nats_inbox("_INBOX_web", buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "_INBOX_web.", 11), 0);
    assert_true(strlen(buf) > 15);
    assert_int_equal(xt_nats_inbox(NULL, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "_INBOX.", 7), 0);
    assert_int_equal(xt_nats_inbox("_INBOX_web", buf, 8), -1);
}

/* Replies to nodes under _R.<node>.: the target from the subject, back to the requester's routing. */
static void test_reply_subjects(void **state)
{
    (void)state;
    char buf[256], node[64];
    assert_int_equal(xt_nats_reply_for("xtask.ams-1.task.run", "_INBOX_web.Yx.0.7", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.ams-1.web.Yx.0.7");
    assert_int_equal(xt_nats_reply_for("xtask.broadcast.task.run", "_INBOX_cli-a.Q.1", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.broadcast.cli-a.Q.1");
    assert_int_equal(xt_nats_reply_for("xtask.nodes.discover", "_INBOX.Z.1", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.broadcast.admin.Z.1");
    /* not a node's request: the plain inbox */
    static const char *const plain[] = {"$JS.API.STREAM.MSG.GET.xtask-results",
                                        "xtask.queue.task",
                                        "xtask.results.a.b",
                                        "xtask.nodes.register.a",
                                        "xtask",
                                        NULL};
    for (size_t i = 0; plain[i]; i++) {
        assert_int_equal(xt_nats_reply_for(plain[i], "_INBOX_web.Yx.1", buf, sizeof buf), 0);
        assert_string_equal(buf, "_INBOX_web.Yx.1");
    }
    assert_int_equal(xt_nats_reply_for("xtask.ams-1.task.run", "_INBOX_web.Yx.0.7", buf, 10), -1);
    assert_int_equal(xt_nats_reply_sub("xtask.ams-1.ping", "_INBOX_cli-a.Q", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.ams-1.cli-a.Q");
    assert_int_equal(xt_nats_reply_sub("xtask.nodes.discover", "_INBOX_cli-a.Q", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.*.cli-a.>");
    assert_int_equal(xt_nats_reply_sub("$JS.API.INFO", "_INBOX_cli-a.Q", buf, sizeof buf), 0);
    assert_string_equal(buf, "_INBOX_cli-a.Q");
    assert_int_equal(xt_nats_reply_wildcard("_INBOX_web.Yx", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.*.web.>");
    /* the node answers under its own id; a plain inbox stays as it is */
    assert_int_equal(xt_nats_reply_as("ams-1", "_R.broadcast.web.Yx.0.7", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.ams-1.web.Yx.0.7");
    assert_int_equal(xt_nats_reply_as("ams-1", "_R.ams-1.web.Yx.0.7", buf, sizeof buf), 0);
    assert_string_equal(buf, "_R.ams-1.web.Yx.0.7");
    assert_int_equal(xt_nats_reply_as("ams-1", "_INBOX_web.Yx.3", buf, sizeof buf), 0);
    assert_string_equal(buf, "_INBOX_web.Yx.3");
    /* the requester routes both forms */
    assert_string_equal(xt_nats_reply_rest("_R.ams-1.web.Yx.0.7", "_INBOX_web.Yx", node, sizeof node), "0.7");
    assert_string_equal(node, "ams-1");
    assert_string_equal(xt_nats_reply_rest("_INBOX_web.Yx.0.7", "_INBOX_web.Yx", node, sizeof node), "0.7");
    assert_string_equal(node, "");
    assert_null(xt_nats_reply_rest("_R.ams-1.web.Yz.0.7", "_INBOX_web.Yx", NULL, 0));
    assert_null(xt_nats_reply_rest("_INBOX_web.Yxx.1", "_INBOX_web.Yx", NULL, 0));
    assert_string_equal(xt_nats_reply_rest("_R.b-2.admin.Z.1", "_INBOX.Z", node, sizeof node), "1");
    assert_string_equal(node, "b-2");
    assert_string_equal(xt_nats_reply_rest("_R.b-2.cli-a.Q", "_INBOX_cli-a.Q", NULL, 0), "");
    assert_null(xt_nats_reply_rest("_R.b-2.cli-a.QQ", "_INBOX_cli-a.Q", NULL, 0));
}

/* ---- connections -------------------------------------------------------------------------- */

static void test_plain_and_cli_errors(void **state)
{
    (void)state;
    server s = {0};
    char err[512];
    natsConnection *nc = NULL, *rc = NULL;
    xt_nats_conf c = {0};
    xt_nats_params p = {.cli = 1, .name = "xt-test", .creds_where = "XTASK_NATS_CREDS"};
    server_start(&s, "plain", 0, NULL);
    conf_url(&c, "nats://127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    assert_int_equal(xt_nats_connect(&c, &p, &rc, err, sizeof err), 0);
    assert_int_equal(echo_roundtrip(rc, nc, "xt.echo"), NATS_OK);
    close_conn(nc);
    close_conn(rc);
    server_stop(&s);
    /* nothing listens there now: a CLI fails at once, naming the URL */
    int64_t t0 = now_ms();
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    assert_null(nc);
    assert_true(now_ms() - t0 < 5000);
    char want[128];
    snprintf(want, sizeof want, "NATS at nats://127.0.0.1:%d: no server reachable", s.port);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("got '%s'", err);
    xt_nats_conf_free(&c);
}

static void test_user_password_and_token(void **state)
{
    (void)state;
    server s = {0}, t = {0};
    char err[512];
    natsConnection *nc = NULL, *rc = NULL;
    xt_nats_conf c = {0};
    xt_nats_params p = {.cli = 1, .creds_where = "XTASK_NATS_CREDS"};
    server_start(&s, "userpass", 0, "authorization { user: alice, password: \"s3cr3t-pw\" }");
    conf_url(&c, "nats://alice:s3cr3t-pw@127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    assert_int_equal(xt_nats_connect(&c, &p, &rc, err, sizeof err), 0);
    assert_int_equal(echo_roundtrip(rc, nc, "xt.echo"), NATS_OK);
    close_conn(nc);
    close_conn(rc);
    /* anonymous and a wrong password are refused with the hint, and no password in the text */
    conf_url(&c, "nats://127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    assert_non_null(strstr(err, "authorization violation: check XTASK_NATS_CREDS"));
    conf_url(&c, "nats://alice:wrong-pw@127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    assert_non_null(strstr(err, "authorization violation: check XTASK_NATS_CREDS"));
    assert_non_null(strstr(err, "nats://***@127.0.0.1:"));
    assert_null(strstr(err, "wrong-pw"));
    server_stop(&s);

    server_start(&t, "token", 0, "authorization { token: \"tok-123456\" }");
    conf_url(&c, "nats://tok-123456@127.0.0.1", t.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    close_conn(nc);
    conf_url(&c, "nats://bad-token@127.0.0.1", t.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    assert_non_null(strstr(err, "authorization violation"));
    server_stop(&t);
    xt_nats_conf_free(&c);
}

static void test_tls(void **state)
{
    (void)state;
    server s = {0}, m = {0};
    char err[512], extra[2048], ca[300], other[300], cert[300], key[300];
    natsConnection *nc = NULL, *rc = NULL;
    xt_nats_conf c = {0};
    xt_nats_params p = {.cli = 1, .tls_where = "XTASK_NATS_TLS_CA"};
    tmp_path(ca, sizeof ca, "ca.pem");
    tmp_path(other, sizeof other, "other.pem");
    tmp_path(cert, sizeof cert, "cli.pem");
    tmp_path(key, sizeof key, "cli.key");
    snprintf(extra, sizeof extra, "tls { cert_file: \"%s/srv.pem\", key_file: \"%s/srv.key\", timeout: 2 }",
             tmpdir, tmpdir);
    server_start(&s, "tls", 0, extra);

    /* verified with our CA */
    conf_url(&c, "nats://127.0.0.1", s.port);
    c.tls_ca = strdup(ca);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    assert_int_equal(xt_nats_connect(&c, &p, &rc, err, sizeof err), 0);
    assert_int_equal(echo_roundtrip(rc, nc, "xt.echo"), NATS_OK);
    close_conn(nc);
    close_conn(rc);

    /* a CA that did not sign the server's certificate */
    free(c.tls_ca);
    c.tls_ca = strdup(other);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    if (!strstr(err, "TLS handshake failed") || !strstr(err, "check XTASK_NATS_TLS_CA"))
        fail_msg("got '%s'", err);

    /* no CA configured against a server that requires TLS: nats.c tries the system's CAs */
    free(c.tls_ca);
    c.tls_ca = NULL;
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1);
    if (!strstr(err, "TLS") || !strstr(err, "XTASK_NATS_TLS_CA") || strstr(err, "conn.c"))
        fail_msg("got '%s'", err);
    server_stop(&s);

    /* mutual TLS: the server verifies our client certificate */
    snprintf(extra, sizeof extra,
             "tls { cert_file: \"%s/srv.pem\", key_file: \"%s/srv.key\", ca_file: \"%s\", verify: true,"
             " timeout: 2 }",
             tmpdir, tmpdir, ca);
    server_start(&m, "mtls", 0, extra);
    conf_url(&c, "tls://127.0.0.1", m.port);
    c.tls_ca = strdup(ca);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), -1); /* no client certificate */
    c.tls_cert = strdup(cert);
    c.tls_key = strdup(key);
    if (xt_nats_connect(&c, &p, &nc, err, sizeof err) != 0) fail_msg("mtls: %s", err);
    close_conn(nc);
    server_stop(&m);
    xt_nats_conf_free(&c);
}

static void test_inbox_prefix_under_permissions(void **state)
{
    (void)state;
    server s = {0};
    char err[512];
    natsConnection *nc = NULL, *rc = NULL;
    xt_nats_conf c = {0}, r = {0};
    xt_nats_params p = {.cli = 1};
    /* `web` may only receive replies under its own prefix; `node` answers requests */
    server_start(
        &s, "perms", 0,
        "authorization { users: [\n"
        "  { user: web, password: w, permissions: { publish: [\"xt.>\"], subscribe: [\"_INBOX_web.>\"] } }\n"
        "  { user: node, password: n, permissions: { subscribe: [\"xt.>\"], allow_responses: true } }\n"
        "] }");
    conf_url(&r, "nats://node:n@127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&r, &p, &rc, err, sizeof err), 0);
    conf_url(&c, "nats://web:w@127.0.0.1", s.port);
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    /* the default _INBOX is not web's: the request gets no answer */
    assert_int_not_equal(echo_roundtrip(rc, nc, "xt.echo"), NATS_OK);
    close_conn(nc);
    c.inbox_prefix = strdup("_INBOX_web");
    assert_int_equal(xt_nats_connect(&c, &p, &nc, err, sizeof err), 0);
    assert_int_equal(echo_roundtrip(rc, nc, "xt.echo2"), NATS_OK);
    close_conn(nc);
    close_conn(rc);
    server_stop(&s);
    xt_nats_conf_free(&c);
    xt_nats_conf_free(&r);
}

static void test_retry_and_reconnect(void **state)
{
    (void)state;
    server s = {0};
    char err[512];
    natsConnection *nc = NULL;
    xt_nats_conf c = {0};
    hooks h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    xt_nats_params p = {.retry_connect = 1,
                        .name = "xt-test-service",
                        .on_connected = h_connected,
                        .on_disconnected = h_disconnected,
                        .on_closed = h_closed,
                        .ud = &h};
    /* learn a port the server can have, then start the service before the server */
    server_start(&s, "retry", 0, NULL);
    int port = s.port;
    server_stop(&s);
    conf_url(&c, "nats://127.0.0.1", port);
    if (xt_nats_connect(&c, &p, &nc, err, sizeof err) != 0) fail_msg("retry connect: %s", err);
    assert_non_null(nc);
    assert_int_equal(count(&h, &h.connected), 0);
    server_start(&s, "retry", port, NULL);
    hook_wait w = {&h, &h.connected, 1};
    assert_true(wait_until(hook_reached, &w, 10000));
    /* the server goes away and comes back: disconnected, then connected again */
    server_stop(&s);
    w = (hook_wait){&h, &h.disconnected, 1};
    assert_true(wait_until(hook_reached, &w, 10000));
    server_start(&s, "retry", port, NULL);
    w = (hook_wait){&h, &h.connected, 2};
    assert_true(wait_until(hook_reached, &w, 10000));
    natsConnection_Close(nc);
    w = (hook_wait){&h, &h.closed, 1};
    assert_true(wait_until(hook_reached, &w, 5000));
    natsConnection_Destroy(nc);
    server_stop(&s);
    xt_nats_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_parse),
        cmocka_unit_test(test_conf_env),
        cmocka_unit_test(test_conf_env_inbox_from_creds),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_plain_and_cli_errors),
        cmocka_unit_test(test_user_password_and_token),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_inbox_prefix_under_permissions),
        cmocka_unit_test(test_reply_subjects),
        cmocka_unit_test(test_retry_and_reconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
