/* Unit tests: xr_run (no shell, own process group, timeout kills the group, bounded capture) and
 * the ops helpers that need no network (path checks, PATH lookup, /proc listeners). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xp_proto.h"
#include "xr_run.h"
#include "xw_ops.h"

typedef struct {
    int lines;
    char last[128];
    pid_t pgid;
} seen;

static void on_line(const char *stream, const char *line, size_t len, void *ud)
{
    seen *s = ud;
    s->lines++;
    snprintf(s->last, sizeof s->last, "%s:%.*s", stream, (int)len, line);
}

static void on_pid(pid_t pgid, void *ud)
{
    seen *s = ud;
    if (pgid) s->pgid = pgid;
}

static void test_exit_and_output(void **state)
{
    char *argv[] = {"sh", "-c", "echo hi; echo oops >&2; exit 7", NULL};
    seen s = {0};
    xr_spec spec = {.argv = argv,
                    .timeout_ms = 5000,
                    .kill_grace_ms = 100,
                    .on_line = on_line,
                    .on_pid = on_pid,
                    .ud = &s};
    xo_output out;
    xr_status st;
    assert_int_equal(xo_output_init(&out, 64, 1024), 0);
    assert_int_equal(xr_run(&spec, &out, &st), 0);
    assert_int_equal(st.exit_code, 7);
    assert_int_equal(st.signal, 0);
    assert_false(st.timed_out);
    assert_int_equal(s.lines, 2);
    assert_true(s.pgid > 0);
    assert_int_equal(out.total, 8);
    xo_output_free(&out);
}

static void test_no_shell(void **state)
{
    /* metacharacters are plain arguments */
    char *argv[] = {"echo", "$(id)", ";", "rm", "-rf", "/", NULL};
    seen s = {0};
    xr_spec spec = {.argv = argv, .timeout_ms = 5000, .on_line = on_line, .ud = &s};
    xo_output out;
    xr_status st;
    xo_output_init(&out, 256, 0);
    xr_run(&spec, &out, &st);
    assert_string_equal(s.last, "stdout:$(id) ; rm -rf /");
    xo_output_free(&out);
}

static void test_spawn_failure(void **state)
{
    char *argv[] = {"/nonexistent/xtask-no-such-program", NULL};
    xr_spec spec = {.argv = argv, .timeout_ms = 1000};
    xo_output out;
    xr_status st;
    xo_output_init(&out, 256, 0);
    assert_int_equal(xr_run(&spec, &out, &st), -1);
    assert_int_equal(st.exit_code, 127);
    assert_int_not_equal(st.spawn_errno, 0);
    size_t n;
    char *t = xo_output_tail(&out, &n);
    assert_non_null(strstr(t, "cannot run"));
    free(t);
    xo_output_free(&out);
}

static void test_timeout_kills_group(void **state)
{
    /* The child leaves a grandchild in the group; the timeout must take both. */
    char pidfile[] = "/tmp/xt-run-XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char script[512];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; trap '' TERM; sleep 30", pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    xr_spec spec = {.argv = argv, .timeout_ms = 300, .kill_grace_ms = 200};
    xo_output out;
    xr_status st;
    xo_output_init(&out, 64, 0);
    int64_t t0 = xp_mono_ms();
    assert_int_equal(xr_run(&spec, &out, &st), 0);
    int64_t took = xp_mono_ms() - t0;
    assert_true(st.timed_out);
    assert_int_equal(st.exit_code, -1);
    assert_true(st.signal == SIGKILL || st.signal == SIGTERM);
    assert_true(took < 2000);
    FILE *f = fopen(pidfile, "r");
    int gc = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &gc), 1);
    fclose(f);
    unlink(pidfile);
    /* the grandchild is gone (or a zombie of init) */
    int alive = kill(gc, 0) == 0;
    if (alive) {
        char p[64], buf[256] = "";
        snprintf(p, sizeof p, "/proc/%d/stat", gc);
        FILE *sf = fopen(p, "r");
        if (sf) {
            if (!fgets(buf, sizeof buf, sf)) buf[0] = 0;
            fclose(sf);
        }
        alive = sf && !strstr(buf, ") Z");
    }
    assert_false(alive);
    xo_output_free(&out);
}

static void test_env_and_cwd(void **state)
{
    char *argv[] = {"sh", "-c", "echo \"$XT_A:$(pwd)\"", NULL};
    char *env[] = {"XT_A=hello", NULL};
    seen s = {0};
    xr_spec spec = {
        .argv = argv, .extra_env = env, .cwd = "/tmp", .timeout_ms = 5000, .on_line = on_line, .ud = &s};
    xo_output out;
    xr_status st;
    xo_output_init(&out, 256, 0);
    xr_run(&spec, &out, &st);
    assert_string_equal(s.last, "stdout:hello:/tmp");
    xo_output_free(&out);
}

static void test_big_output_bounded(void **state)
{
    char *argv[] = {"head", "-c", "1000000", "/dev/zero", NULL};
    xr_spec spec = {.argv = argv, .timeout_ms = 5000};
    xo_output out;
    xr_status st;
    xo_output_init(&out, 100, 1000);
    xr_run(&spec, &out, &st);
    assert_int_equal(st.exit_code, 0);
    assert_int_equal(out.total, 1000000);
    assert_int_equal(out.full_len, 1000);
    assert_int_equal(out.ring_len, 100);
    xo_output_free(&out);
}

static void test_path_allowed(void **state)
{
    char base[] = "/tmp/xt-dl-XXXXXX", sub[PATH_MAX + 16], out[PATH_MAX + 64], err[256], link[PATH_MAX + 64],
         p[PATH_MAX + 64];
    assert_non_null(mkdtemp(base));
    char real[PATH_MAX];
    assert_non_null(realpath(base, real));
    snprintf(sub, sizeof sub, "%s/in", real);
    mkdir(sub, 0755);
    char *dirs[] = {sub, NULL};
    snprintf(p, sizeof p, "%s/file.bin", sub);
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, p);
    snprintf(p, sizeof p, "%s/../file.bin", sub);
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside"));
    snprintf(p, sizeof p, "%s/x", real);
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), -1);
    snprintf(p, sizeof p, "%s-evil/x", sub); /* prefix but not a subdirectory */
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), -1);
    assert_int_equal(xw_path_allowed(dirs, "relative/x", out, sizeof out, err, sizeof err), -1);
    snprintf(p, sizeof p, "%s/", sub);
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), -1);
    /* a symlinked directory that leads outside */
    snprintf(link, sizeof link, "%s/escape", sub);
    assert_int_equal(symlink("/etc", link), 0);
    snprintf(p, sizeof p, "%s/escape/passwd", sub);
    assert_int_equal(xw_path_allowed(dirs, p, out, sizeof out, err, sizeof err), -1);
    /* a symlink as the target itself */
    snprintf(link, sizeof link, "%s/target", sub);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    assert_int_equal(xw_path_allowed(dirs, link, out, sizeof out, err, sizeof err), -1);
    unlink(link);
    snprintf(link, sizeof link, "%s/escape", sub);
    unlink(link);
    rmdir(sub);
    rmdir(real);
}

static void test_which_path(void **state)
{
    char out[PATH_MAX];
    assert_int_equal(xw_which_path("sh", out, sizeof out), 0);
    assert_true(out[0] == '/');
    assert_int_equal(xw_which_path("xtask-surely-not-installed", out, sizeof out), -1);
    assert_int_equal(xw_which_path("/bin/sh", out, sizeof out), -1);
}

static void test_port_listeners(void **state)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 1), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    unsigned port = ntohs(a.sin_port);
    pid_t pids[8];
    size_t n = xw_port_listeners("/proc", port, pids, 8);
    assert_int_equal(n, 1);
    assert_int_equal(pids[0], getpid());
    close(s);
    assert_int_equal(xw_port_listeners("/proc", port, pids, 8), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_and_output), cmocka_unit_test(test_no_shell),
        cmocka_unit_test(test_spawn_failure),   cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_env_and_cwd),     cmocka_unit_test(test_big_output_bounded),
        cmocka_unit_test(test_path_allowed),    cmocka_unit_test(test_which_path),
        cmocka_unit_test(test_port_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
