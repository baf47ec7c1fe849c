/* xr_run: spawn, capture, time out (see xr_run.h). */
#include "xr_run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xp_proto.h"

char **xr_env_merge(char *const *base, char *const *extra)
{
    size_t n = 0, m = 0;
    while (base && base[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    size_t k = 0;
    if (!env) return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(base[i], '=');
        size_t klen = eq ? (size_t)(eq - base[i]) : strlen(base[i]);
        int overridden = 0;
        for (size_t j = 0; j < m && !overridden; j++)
            overridden = strncmp(extra[j], base[i], klen) == 0 && extra[j][klen] == '=';
        if (!overridden) env[k++] = base[i];
    }
    for (size_t j = 0; j < m; j++)
        env[k++] = extra[j];
    env[k] = NULL;
    return env;
}

typedef struct {
    const xr_spec *spec;
    const char *stream;
} line_ctx;

static void line_cb(const char *line, size_t len, void *ud)
{
    line_ctx *lc = ud;
    lc->spec->on_line(lc->stream, line, len, lc->spec->ud);
}

static int spawn_child(const xr_spec *spec, int outfd, int errfd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    char **env = NULL;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outfd, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (spec->cwd) posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
    env = xr_env_merge(spec->env, spec->extra_env);
    if (!env) {
        rc = ENOMEM;
        goto out;
    }
    rc = posix_spawnp(pid, spec->argv[0], &fa, &at, spec->argv, env);
out:
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* Reap pid; fill status. 1 when reaped, 0 when still running. */
static int reap(pid_t pid, xr_status *st, int flags)
{
    int ws;
    pid_t r;
    do
        r = waitpid(pid, &ws, flags);
    while (r < 0 && errno == EINTR);
    if (r != pid) return r < 0; /* ECHILD: someone else reaped it; treat as gone */
    if (WIFEXITED(ws)) {
        st->exit_code = WEXITSTATUS(ws);
        st->signal = 0;
    } else if (WIFSIGNALED(ws)) {
        st->exit_code = -1;
        st->signal = WTERMSIG(ws);
    }
    return 1;
}

int xr_run(const xr_spec *spec, xo_output *out, xr_status *st)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, pidfd = -1;
    pid_t pid = 0;
    int64_t t0 = xp_mono_ms();
    int rc = -1;
    xo_lines lines[2];
    line_ctx lctx[2] = {{spec, "stdout"}, {spec, "stderr"}};

    memset(st, 0, sizeof *st);
    memset(lines, 0, sizeof lines);
    if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
        st->spawn_errno = errno;
        goto fail;
    }
    int e = spawn_child(spec, outp[1], errp[1], &pid);
    close(outp[1]);
    close(errp[1]);
    outp[1] = errp[1] = -1;
    if (e) {
        st->spawn_errno = e;
        goto fail;
    }
    if (spec->on_pid) spec->on_pid(pid, spec->ud);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    int64_t deadline = t0 + spec->timeout_ms, kill_at = 0, next_tick = t0 + spec->tick_ms;
    int exited = 0, term_sent = 0;
    int fds_open = 2;
    char buf[16384];
    while (!exited || fds_open > 0) {
        struct pollfd pf[3];
        int np = 0, idx_out = -1, idx_err = -1, idx_pid = -1;
        if (outp[0] >= 0) {
            idx_out = np;
            pf[np++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        }
        if (errp[0] >= 0) {
            idx_err = np;
            pf[np++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
        }
        if (!exited && pidfd >= 0) {
            idx_pid = np;
            pf[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        int64_t now = xp_mono_ms();
        int64_t wake = exited ? now + 200 : (term_sent ? kill_at : deadline);
        if (!exited && pidfd < 0 && wake > now + 10)
            wake = now + 10; /* no pidfd (old kernel): poll for the exit */
        if (spec->on_tick && spec->tick_ms > 0 && next_tick < wake) wake = next_tick;
        if (spec->cancel && wake > now + 50) wake = now + 50;
        int to = wake > now ? (int)(wake - now) : 0;
        int n = poll(pf, (nfds_t)np, to);
        if (n < 0 && errno != EINTR) break;
        now = xp_mono_ms();
        for (int k = 0; k < 2; k++) {
            int idx = k == 0 ? idx_out : idx_err;
            int *fd = k == 0 ? &outp[0] : &errp[0];
            if (idx < 0 || !(pf[idx].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(*fd, buf, sizeof buf);
            if (r > 0) {
                xo_output_add(out, buf, (size_t)r);
                if (spec->on_line) xo_lines_feed(&lines[k], buf, (size_t)r, line_cb, &lctx[k]);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(*fd);
                *fd = -1;
                fds_open--;
            }
        }
        if (!exited && (idx_pid < 0 || (pf[idx_pid].revents & POLLIN))) {
            if (reap(pid, st, idx_pid < 0 ? WNOHANG : 0)) {
                exited = 1;
                /* Leftovers of the group would keep our pipes open: they go with their leader. */
                kill(-pid, SIGKILL);
            }
        }
        if (exited && n == 0 && fds_open > 0)
            break; /* pipes idle 200 ms after the exit: something outside the group holds them */
        if (!exited) {
            int cancel = spec->cancel && *spec->cancel;
            if (!term_sent && (now >= deadline || cancel)) {
                st->timed_out = !cancel;
                st->cancelled = cancel;
                kill(-pid, spec->kill_grace_ms > 0 ? SIGTERM : SIGKILL);
                term_sent = 1;
                kill_at = now + spec->kill_grace_ms;
            } else if (term_sent && now >= kill_at) {
                kill(-pid, SIGKILL);
                kill_at = now + 1000;
            }
        }
        if (spec->on_tick && spec->tick_ms > 0 && now >= next_tick) {
            spec->on_tick(spec->ud);
            next_tick = now + spec->tick_ms;
        }
    }
    if (spec->on_line) {
        xo_lines_flush(&lines[0], line_cb, &lctx[0]);
        xo_lines_flush(&lines[1], line_cb, &lctx[1]);
    }
    rc = 0;
    goto done;
fail : {
    char msg[256];
    int n =
        snprintf(msg, sizeof msg, "xtask: cannot run '%s': %s\n", spec->argv[0], strerror(st->spawn_errno));
    if (n > 0) xo_output_add(out, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    st->exit_code = 127;
}
done:
    if (pid > 0 && spec->on_pid) spec->on_pid(0, spec->ud);
    for (int k = 0; k < 2; k++) {
        if (outp[k] >= 0) close(outp[k]);
        if (errp[k] >= 0) close(errp[k]);
    }
    if (pidfd >= 0) close(pidfd);
    st->duration_ms = xp_mono_ms() - t0;
    return rc;
}
