/*
 * sdnotify: systemd's readiness and watchdog protocol (`ready: { sd_notify: true }`, `watchdog:`).
 *
 * Each run of such a service gets its own AF_UNIX datagram socket, named by the kernel (autobind: a
 * fresh abstract name nobody can squat) and passed as NOTIFY_SOCKET=@name. A datagram holds
 * newline-separated KEY=VALUE assignments (sd_notify(3)):
 *   READY=1       the service is READY
 *   STATUS=text   a free-form status, shown by `status` and status.json
 *   WATCHDOG=1    a keep-alive: with `watchdog: D` (WATCHDOG_USEC and WATCHDOG_PID are passed), a READY
 *                 service that sends none for D is restarted; WATCHDOG=trigger restarts it at once
 *   MAINPID=n     ignored: the supervisor's main process is the one it started
 *   BARRIER=1 and anything else: ignored; file descriptors sent along (the barrier's) are closed
 *                 once the datagram is handled, which is what releases `systemd-notify`'s wait.
 * Only the service's own processes may notify: SO_PASSCRED gives each datagram its sender's pid, which
 * must be the main process, in its session, or an escapee carrying this run's marks; other senders
 * are ignored (logged once per run). Datagrams are bounded (SV_SDNOTIFY_MAX bytes, longer ones are
 * dropped whole) and at most SV_SDNOTIFY_BATCH are read per wake-up, so a flood cannot hold the loop.
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xt_conf.h"
#include "xt_log.h"

#define SV_SDNOTIFY_MAX 4096 /* one datagram (systemd's own limit is larger; no message needs it) */
#define SV_SDNOTIFY_BATCH 16 /* datagrams read per wake-up */
#define SV_SDNOTIFY_FDS 16   /* fds accepted with one datagram (and closed): more are dropped */

/* Is `pid` one of service s's processes? Its main process, a member of its session, or an escapee
 * of this very run (its environment carries the run's marks). */
static int sender_ok(sv_ctx *sv, const svc *s, pid_t pid)
{
    char mark_svc[sizeof(SV_SERVICE_ENV) + MF_NAME_MAX + 1], mark_run[sizeof(SV_RUN_ENV) + 48];
    procs_info pi;
    if (pid <= 0 || s->pid <= 0) return 0;
    if (pid == s->pid) return 1;
    if (procs_stat(pid, &pi) == 0 && pi.sid == s->pid) return 1;
    snprintf(mark_svc, sizeof(mark_svc), "%s=%s", SV_SERVICE_ENV, s->name);
    snprintf(mark_run, sizeof(mark_run), "%s=%s", SV_RUN_ENV, sv->run_id);
    return procs_env_has(pid, mark_svc) && procs_env_has(pid, mark_run);
}

/* STATUS= text for `status`: printable ASCII, cut to fit. */
static void set_status(svc *s, const char *v, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof(s->c->sd_status); i++)
        s->c->sd_status[o++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    s->c->sd_status[o] = '\0';
}

/* One datagram's assignments. */
static void handle(sv_ctx *sv, svc *s, char *buf, size_t len)
{
    int64_t now = sv_now_ms();
    for (size_t i = 0; i < len;) {
        char *line = buf + i, *nl = memchr(line, '\n', len - i);
        size_t n = nl ? (size_t)(nl - line) : len - i;
        i += n + 1;
        if (n == 7 && memcmp(line, "READY=1", 7) == 0) {
            if (s->state != SVC_STARTING) continue;
            xt_debug("%s: ready (sd_notify)", s->name);
            snprintf(s->ready.msg, sizeof(s->ready.msg), "READY=1");
            s->ready.has_result = s->ready.ok = 1;
            s->ready.result_ms = now;
            s->ready.latency_ms = (double)(now - s->spawn_ms);
            svc_probe_result(sv, s, 0, 1);
            if (s->state == SVC_READY && s->def->watchdog_ms > 0)
                timer_arm(&s->t_wd, now + s->def->watchdog_ms);
        } else if (n >= 7 && memcmp(line, "STATUS=", 7) == 0) {
            set_status(s, line + 7, n - 7);
        } else if (n == 10 && memcmp(line, "WATCHDOG=1", 10) == 0) {
            if (s->def->watchdog_ms > 0 && s->state == SVC_READY)
                timer_arm(&s->t_wd, now + s->def->watchdog_ms);
        } else if (n == 16 && memcmp(line, "WATCHDOG=trigger", 16) == 0) {
            if (s->state == SVC_READY || s->state == SVC_STARTING) {
                xt_warn("%s: WATCHDOG=trigger (sd_notify), restarting", s->name);
                svc_fail(sv, s);
                return;
            }
        } else if (n >= 8 && memcmp(line, "MAINPID=", 8) == 0) {
            xt_debug("%s: %.*s ignored (the main process is the one the supervisor started)", s->name,
                     (int)(n < 40 ? n : 40), line);
        }
    }
}

static void on_sdnotify(sv_ctx *sv, sv_watch *wt, uint32_t events)
{
    svc *s = wt->arg;
    (void)events;
    for (int k = 0; k < SV_SDNOTIFY_BATCH && s->sdn.fd >= 0; k++) {
        char buf[SV_SDNOTIFY_MAX];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * SV_SDNOTIFY_FDS)];
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
        ssize_t n = recvmsg(s->sdn.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break; /* EAGAIN: all read */
        const struct ucred *cred = NULL;
        int fds[SV_SDNOTIFY_FDS], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET) continue;
            if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                cred = (const struct ucred *)CMSG_DATA(c);
            if (c->cmsg_type == SCM_RIGHTS) {
                size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t j = 0; j < m && nfds < SV_SDNOTIFY_FDS; j++)
                    memcpy(&fds[nfds++], CMSG_DATA(c) + j * sizeof(int), sizeof(int));
            }
        }
        if (cred == NULL || !sender_ok(sv, s, cred->pid)) {
            if (!s->sd_warned)
                xt_warn("%s: sd_notify message from pid %d ignored: not one of its processes", s->name,
                        cred ? (int)cred->pid : 0);
            s->sd_warned = 1;
        } else if ((size_t)n > sizeof(buf) || (mh.msg_flags & MSG_TRUNC)) {
            if (!s->sd_warned)
                xt_warn("%s: sd_notify message of %zd bytes dropped (at most %d)", s->name, n,
                        SV_SDNOTIFY_MAX);
            s->sd_warned = 1;
        } else {
            handle(sv, s, buf, (size_t)n);
        }
        for (int j = 0; j < nfds; j++)
            close(fds[j]); /* after the datagram is handled: a barrier's sender waits for this */
    }
}

static void on_watchdog(sv_ctx *sv, void *arg)
{
    svc *s = arg;
    char w[32];
    if (s->state != SVC_READY || s->pid <= 0) return;
    xt_warn("%s: watchdog: no WATCHDOG=1 within %s, restarting", s->name,
            xt_duration_format(s->def->watchdog_ms, w, sizeof(w)));
    svc_fail(sv, s);
}

void sdnotify_init(sv_ctx *sv, svc *s)
{
    s->sdn.fd = -1;
    timer_init(sv, &s->t_wd, on_watchdog, s);
}

int sdnotify_open(sv_ctx *sv, svc *s, char *env, size_t envlen, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1, rc = -1;
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    sdnotify_close(sv, s);
    s->sd_warned = 0;
    s->c->sd_status[0] = '\0';
    if (fd < 0) {
        snprintf(err, errlen, "notify socket: %s", strerror(errno));
    } else if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
               bind(fd, (struct sockaddr *)&sa, sizeof(sa_family_t)) < 0 || /* autobind */
               getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        snprintf(err, errlen, "notify socket: %s", strerror(errno));
    } else if (len <= offsetof(struct sockaddr_un, sun_path) + 1 || sa.sun_path[0] != '\0') {
        snprintf(err, errlen, "notify socket: no abstract name");
    } else if (loop_add(sv, &s->sdn, fd, EPOLLIN, on_sdnotify, s) < 0) {
        snprintf(err, errlen, "notify socket: epoll: %s", strerror(errno));
    } else {
        int nl = (int)(len - offsetof(struct sockaddr_un, sun_path) - 1);
        snprintf(env, envlen, "NOTIFY_SOCKET=@%.*s", nl, sa.sun_path + 1);
        fd = -1;
        rc = 0;
    }
    if (fd >= 0) close(fd);
    return rc;
}

void sdnotify_close(sv_ctx *sv, svc *s)
{
    loop_close(sv, &s->sdn);
    timer_disarm(&s->t_wd);
}
