/*
 * probe: readiness and liveness checks that never block the loop.
 *
 *   tcp  host:port   non-blocking connect; connected = pass
 *   http URL         non-blocking connect, one GET (HTTP/1.1, Connection: close), 2xx = pass
 *   exec [argv]      a child process (service env, user, workdir); exit 0 = pass, SIGKILL at timeout
 *
 * http is a small built-in client for http:// URLs (probes target the services on loopback).
 * libcurl was measured: mapping it and its dependencies costs about 6 MB of RSS in the supervisor,
 * four times the whole 1.5 MB budget, for one GET per interval; see README "Probes". An https://
 * URL is therefore probed by a child, like an exec probe: this binary's `__probe-https`, which loads
 * libcurl there (https_probe.c).
 * A probe runs at most once at a time; the next run is armed `interval` after the previous result.
 */
#include "sv.h"

#include <errno.h>
#include <poll.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xt_conf.h"
#include "xt_log.h"

typedef sv_probe_addr probe_addr;

static void probe_finish(sv_ctx *sv, sv_probe *p, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void holder_stop(sv_ctx *sv, sv_probe *p);
static int probe_is_https(const mf_probe *d);
static int probe_target(const sv_probe *p, probe_addr *a, char *err, size_t errlen);

static void probe_finish(sv_ctx *sv, sv_probe *p, int ok, const char *fmt, ...)
{
    va_list ap;
    int64_t now = sv_now_ms();
    p->latency_ms = (double)(sv_now_ns() - p->t0_ns) / 1e6;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
    p->ok = ok;
    p->has_result = 1;
    p->result_ms = now;
    p->running = 0;
    loop_close(sv, &p->w);
    timer_disarm(&p->t_timeout);
    if (p->pid > 0) {
        kill(-p->pid, SIGKILL); /* reaped by the SIGCHLD loop; it is no longer ours to match */
        p->pid = 0;
    }
    holder_stop(sv, p);
    p->wait_held = 0;
    if (p->active) timer_arm(&p->t_next, now + (p->def->interval_ms > 0 ? p->def->interval_ms : 1000));
    xt_debug("%s: %s probe %s (%s, %.1f ms)", p->s->name, p->is_live ? "live" : "ready", ok ? "ok" : "failed",
             p->msg, p->latency_ms);
    svc_probe_result(sv, p->s, p->is_live, ok);
}

/* Stop looking for who holds the port (the child is reaped by the SIGCHLD loop). */
static void holder_stop(sv_ctx *sv, sv_probe *p)
{
    loop_close(sv, &p->vw);
    if (p->vpid > 0) {
        kill(p->vpid, SIGKILL);
        p->vpid = 0;
    }
}

/* The ready probe was answered by another process's listener: a failure that says whose. */
static void probe_held(sv_ctx *sv, sv_probe *p)
{
    svc *s = p->s;
    if (s->held_before && !p->is_live)
        probe_finish(sv, p, 0, "%s answers before %s started: held by pid %d (%s)", p->x->addr.hostport,
                     s->name, (int)s->held_pid, s->held_comm);
    else
        probe_finish(sv, p, 0, "%s answered by pid %d (%s), not by %s", p->x->addr.hostport, (int)s->held_pid,
                     s->held_comm, s->name);
}

/* Set the probe's message without a result (vsnprintf: a long address is cut). */
static void probe_note(sv_probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void probe_note(sv_probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
}

/* A holder child's line: "own", "held <pid> <comm>" or "none"; records who holds the port. Returns 1
 * for "own", 0 for a stranger (held_pid set) or -1 when the holder cannot be seen. */
static int holder_parse(svc *s, const char *addr, const char *line, int live)
{
    int pid = 0;
    char comm[16] = "";
    if (strncmp(line, "own\n", 4) == 0) {
        s->held_pid = 0;
        return 1;
    }
    if (sscanf(line, "held %d %15[^\n]", &pid, comm) >= 1 && pid > 0) {
        if (pid != s->held_pid)
            xt_warn("%s: %s answers %s: held by pid %d (%s); not %s on it", s->name, addr,
                    s->held_before && !live ? "before it started" : "from another process", pid,
                    comm[0] ? comm : "?", live ? "alive" : "ready");
        s->held_pid = pid;
        snprintf(s->held_comm, sizeof(s->held_comm), "%s", comm[0] ? comm : "?");
        return 0;
    }
    s->held_pid = 0;
    return -1;
}

static ssize_t holder_read(int fd, char *line, size_t len)
{
    ssize_t n = read(fd, line, len - 1);
    line[n > 0 ? n : 0] = '\0';
    return n;
}

/* The probe-level child (the listener appeared after the spawn) answered. */
static void on_holder(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    sv_probe *p = w->arg;
    svc *s = p->s;
    char line[128];
    (void)events;
    if (holder_read(w->fd, line, sizeof(line)) < 0 && (errno == EAGAIN || errno == EINTR)) return;
    int r = holder_parse(s, p->x->addr.hostport, line, p->is_live);
    if (r == 1) {
        s->own_inode = s->held_inode; /* probe_lookup noted the listener it asked about */
        s->held_inode = 0;
        probe_finish(sv, p, 1, "%s", p->pass_msg);
    } else if (r == 0)
        probe_held(sv, p);
    else /* not in the service's tree, and its process cannot be seen (another user's) */
        probe_finish(sv, p, 0, "%s answered by a listener of uid %u that no process of %s holds",
                     p->x->addr.hostport, p->vuid, s->name);
}

static void probe_lookup(sv_ctx *sv, sv_probe *p, const unsigned long *inodes, int n);

/* The pre-spawn child answered: the port's holder is known, whatever became of that run. */
static void on_svc_holder(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    svc *s = w->arg;
    sv_probe *p = &s->ready;
    char line[128];
    (void)events;
    if (holder_read(w->fd, line, sizeof(line)) < 0 && (errno == EAGAIN || errno == EINTR)) return;
    loop_close(sv, w);
    s->hpid = 0; /* reaped by the SIGCHLD loop */
    if (holder_parse(s, p->x->addr.hostport, line, 0) != 0) s->held_pid = 0;
    if (!p->wait_held) {
        /* the run died before its probe passed (a crash on the taken port): say whose it is anyway */
        if (s->held_pid > 0 && !p->running) {
            probe_note(p, "%s answers before %s started: held by pid %d (%s)", p->x->addr.hostport, s->name,
                       (int)s->held_pid, s->held_comm);
            p->has_result = 1;
            p->ok = 0;
            p->result_ms = sv_now_ms();
        }
        return;
    }
    p->wait_held = 0;
    if (s->held_pid > 0) {
        probe_held(sv, p);
        return;
    }
    unsigned long inodes[8];
    int n = holder_listeners(&p->x->addr.ss, inodes, 8, &p->vuid);
    if (n <= 0 || holder_fast(s->pid, inodes, n))
        probe_finish(sv, p, 1, "%s", p->pass_msg);
    else
        probe_lookup(sv, p, inodes, n);
}

void probe_holder_close(sv_ctx *sv, svc *s)
{
    loop_close(sv, &s->hw);
    if (s->hpid > 0) kill(s->hpid, SIGKILL);
    s->hpid = 0;
}

/* Start the probe-level child that says whose the listener is. */
static void probe_lookup(sv_ctx *sv, sv_probe *p, const unsigned long *inodes, int n)
{
    int rfd = -1;
    p->s->held_inode = inodes[0];
    pid_t pid = holder_start(sv, p->s, p->s->pid, inodes, n, &rfd);
    if (pid < 0) {
        probe_finish(sv, p, 0, "%s answers; cannot look up who listens: %s", p->x->addr.hostport,
                     strerror(errno));
        return;
    }
    p->vpid = pid;
    if (loop_add(sv, &p->vw, rfd, EPOLLIN, on_holder, p) < 0) {
        close(rfd);
        probe_finish(sv, p, 0, "epoll: %s", strerror(errno));
    }
}

/* A tcp/http probe got its answer. A ready probe's answer makes the service READY only if the
 * listener is the service's own (holder.c): in the loop when its main process holds it, else by a
 * short-lived child; a listener already known to be a stranger's fails at once. */
static void probe_pass(sv_ctx *sv, sv_probe *p, const char *msg)
{
    svc *s = p->s;
    unsigned long inodes[8];
    loop_close(sv, &p->w);
    int n = holder_listeners(&p->x->addr.ss, inodes, 8, &p->vuid);
    /* n == 0: no local listener (the target is another host); n < 0: the kernel cannot tell. A
     * listener this run was already found to own (a liveness probe every interval) is not looked
     * up again. */
    int known_own = 0;
    for (int i = 0; i < n && !known_own; i++)
        known_own = s->own_inode != 0 && inodes[i] == s->own_inode;
    if (n <= 0 || known_own || holder_fast(s->pid, inodes, n)) {
        if (n == 1) s->own_inode = inodes[0]; /* the main process holds it: remembered */
        s->held_pid = 0;
        probe_finish(sv, p, 1, "%s", msg);
        return;
    }
    snprintf(p->pass_msg, sizeof(p->pass_msg), "%s", msg);
    for (int i = 0; i < n; i++) {
        if (inodes[i] != s->held_inode || s->held_inode == 0) continue;
        if (s->hpid > 0 && !p->is_live) {
            p->wait_held = 1; /* the pre-spawn lookup of this very listener is under way */
            return;
        }
        if (s->held_pid > 0 && kill(s->held_pid, 0) == 0) {
            probe_held(sv, p);
            return;
        }
    }
    probe_lookup(sv, p, inodes, n);
}

void probe_before_spawn(sv_ctx *sv, svc *s)
{
    sv_probe *p = &s->ready;
    unsigned long inodes[8];
    unsigned uid;
    char err[160];
    int n = 0, known = 0, rfd = -1;
    s->held_before = 0;
    s->own_inode = 0; /* a new run owns nothing yet */
    if (p->def != NULL && mf_probe_kinds[p->def->kind].network && !probe_is_https(p->def)) {
        if (!p->addr_ok && probe_target(p, &p->x->addr, err, sizeof(err)) == 0) p->addr_ok = 1;
        if (p->addr_ok) n = holder_listeners(&p->x->addr.ss, inodes, 8, &uid);
    }
    for (int i = 0; i < n; i++)
        if (s->held_inode != 0 && inodes[i] == s->held_inode) known = 1;
    s->held_before = n > 0;
    if (n <= 0 || !known) {
        probe_holder_close(sv, s);
        s->held_pid = 0;
        s->held_inode = 0;
    }
    if (n <= 0 || known) return; /* nothing there, or its holder is known or being looked up */
    xt_debug("%s: %s has a listener before it starts", s->name, p->x->addr.hostport);
    s->held_inode = inodes[0];
    pid_t pid = holder_start(sv, s, 0, inodes, n, &rfd);
    if (pid < 0) return; /* the probe-level lookup will try again */
    s->hpid = pid;
    if (loop_add(sv, &s->hw, rfd, EPOLLIN, on_svc_holder, s) < 0) {
        close(rfd);
        probe_holder_close(sv, s);
    }
}

/* Split a probe target into an address (and for http a path). */
static int probe_target(const sv_probe *p, probe_addr *a, char *err, size_t errlen)
{
    const char *t = p->def->target ? p->def->target : "";
    const char *hp = t;
    size_t hplen;
    snprintf(a->path, sizeof(a->path), "/");
    if (p->def->kind == PROBE_HTTP) {
        if (strncmp(t, "http://", 7) != 0) {
            snprintf(err, errlen, "only http:// URLs are supported");
            return -1;
        }
        hp = t + 7;
        const char *slash = strchr(hp, '/');
        hplen = slash ? (size_t)(slash - hp) : strlen(hp);
        if (slash) snprintf(a->path, sizeof(a->path), "%s", slash);
    } else {
        hplen = strlen(hp);
    }
    if (hplen == 0 || hplen >= sizeof(a->hostport)) {
        snprintf(err, errlen, "bad address '%s'", t);
        return -1;
    }
    memcpy(a->hostport, hp, hplen);
    a->hostport[hplen] = '\0';
    char tmp[300];
    /* http without a port: 80 */
    if (p->def->kind == PROBE_HTTP && strchr(a->hostport, ':') == NULL)
        snprintf(tmp, sizeof(tmp), "%s:80", a->hostport);
    else if (p->def->kind == PROBE_HTTP && a->hostport[0] == '[' && strstr(a->hostport, "]:") == NULL)
        snprintf(tmp, sizeof(tmp), "%s:80", a->hostport);
    else
        snprintf(tmp, sizeof(tmp), "%s", a->hostport);
    return sv_parse_hostport(tmp, &a->ss, &a->len, err, errlen);
}

/* The 3-digit status code at s, or 0. */
static int atoi_status(const char *s)
{
    if (s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9') return 0;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

static void probe_io(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    sv_probe *p = w->arg;
    if (p->phase == PROBE_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
        if (soerr != 0) {
            probe_finish(sv, p, 0, "%s", strerror(soerr));
            return;
        }
        if (p->def->kind == PROBE_TCP) {
            probe_pass(sv, p, "connected");
            return;
        }
        p->phase = PROBE_WRITING;
    }
    if (p->phase == PROBE_WRITING) {
        while (p->io_off < p->io_len) {
            ssize_t n = send(w->fd, p->x->io + p->io_off, p->io_len - p->io_off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                loop_mod(sv, w, EPOLLOUT);
                return;
            }
            if (n < 0) {
                probe_finish(sv, p, 0, "send: %s", strerror(errno));
                return;
            }
            p->io_off += (size_t)n;
        }
        p->phase = PROBE_READING;
        p->io_len = 0;
        loop_mod(sv, w, EPOLLIN);
        return;
    }
    /* PROBE_READING: the status line is all we need */
    for (;;) {
        size_t room = sizeof(p->x->io) - 1 - p->io_len;
        ssize_t n = room ? recv(w->fd, p->x->io + p->io_len, room, 0) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n > 0) p->io_len += (size_t)n;
        p->x->io[p->io_len] = '\0';
        char *eol = strstr(p->x->io, "\r\n");
        if (eol != NULL || n <= 0) {
            int code = 0;
            if (strncmp(p->x->io, "HTTP/1.", 7) == 0 && p->io_len >= 12 && p->x->io[8] == ' ')
                code = atoi_status(p->x->io + 9);
            if (code == 0) {
                probe_finish(sv, p, 0, n < 0 ? "recv: %s" : "no HTTP status line", strerror(errno));
                return;
            }
            char hm[16];
            snprintf(hm, sizeof(hm), "HTTP %d", code);
            if (code >= 200 && code < 300)
                probe_pass(sv, p, hm);
            else
                probe_finish(sv, p, 0, "%s", hm);
            return;
        }
    }
}

static int probe_is_https(const mf_probe *d)
{
    return d->kind == PROBE_HTTP && strncasecmp(d->target, "https://", 8) == 0;
}

static void probe_run(sv_ctx *sv, sv_probe *p)
{
    char err[160];
    p->t0_ns = sv_now_ns();
    p->running = 1;
    p->phase = PROBE_CONNECTING;
    p->io_len = p->io_off = 0;
    timer_arm(&p->t_timeout, sv_now_ms() + (p->def->timeout_ms > 0 ? p->def->timeout_ms : 1000));
    if (p->def->kind == PROBE_EXEC || probe_is_https(p->def)) {
        int eerr = 0;
        const mf_service *d = p->s->def;
        char **env = env_merge(sv->env, d->env, NULL);
        char tmo[24], *const https_argv[] = {"/proc/self/exe",
                                             "__probe-https",
                                             p->def->target,
                                             tmo,
                                             p->def->insecure ? "0" : "1",
                                             NULL};
        snprintf(tmo, sizeof(tmo), "%lld", (long long)(p->def->timeout_ms > 0 ? p->def->timeout_ms : 1000));
        char *const *argv = p->def->kind == PROBE_EXEC ? p->def->argv : https_argv;
        pid_t pid =
            env ? spawn_process(argv, env, d->workdir, &d->ident, -1, -1, -1, -1, &eerr, err, sizeof(err))
                : -1;
        xt_strv_free(env);
        if (pid < 0) {
            probe_finish(sv, p, 0, "%s", env ? err : "out of memory");
            return;
        }
        if (eerr != 0) {
            p->pid = pid; /* reaped by the SIGCHLD loop; report the reason now */
            probe_finish(sv, p, 0, "%s", err);
            return;
        }
        p->pid = pid;
        return;
    }
    if (!p->addr_ok) {
        if (probe_target(p, &p->x->addr, err, sizeof(err)) < 0) {
            probe_finish(sv, p, 0, "%s", err);
            return;
        }
        p->addr_ok = 1;
    }
    const probe_addr a = p->x->addr;
    int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        probe_finish(sv, p, 0, "socket: %s", strerror(errno));
        return;
    }
    if (p->def->kind == PROBE_HTTP) {
        int n = snprintf(p->x->io, sizeof(p->x->io),
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xtask-supervisor/" SV_VERSION
                         "\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                         a.path, a.hostport);
        if (n < 0 || (size_t)n >= sizeof(p->x->io)) {
            close(fd);
            probe_finish(sv, p, 0, "URL too long");
            return;
        }
        p->io_len = (size_t)n;
    }
    int rc = connect(fd, (struct sockaddr *)&a.ss, a.len);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        probe_finish(sv, p, 0, "%s", strerror(e));
        return;
    }
    if (p->def->kind == PROBE_TCP) {
        /* On loopback the handshake has usually completed by now: look once without waiting and
         * skip the epoll round trip (add, wake-up, delete: three system calls of a probe's eight). */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (rc == 0 || poll(&pfd, 1, 0) == 1) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (rc != 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
            close(fd);
            if (soerr != 0)
                probe_finish(sv, p, 0, "%s", strerror(soerr));
            else
                probe_pass(sv, p, "connected");
            return;
        }
    }
    if (loop_add(sv, &p->w, fd, EPOLLOUT, probe_io, p) < 0) {
        close(fd);
        probe_finish(sv, p, 0, "epoll: %s", strerror(errno));
        return;
    }
}

static void on_probe_next(sv_ctx *sv, void *arg)
{
    sv_probe *p = arg;
    if (p->active && !p->running) probe_run(sv, p);
}

static void on_probe_timeout(sv_ctx *sv, void *arg)
{
    sv_probe *p = arg;
    char w[32];
    if (p->running)
        probe_finish(sv, p, 0, "timeout after %s", xt_duration_format(p->def->timeout_ms, w, sizeof(w)));
}

void probe_setup(sv_ctx *sv, svc *s)
{
    sv_probe *ps[2] = {&s->ready, &s->live};
    for (int i = 0; i < 2; i++) {
        sv_probe *p = ps[i];
        if (p->s == s) probe_cancel(sv, p);
        p->s = s;
        p->is_live = i;
        p->x = i ? &s->c->live_io : &s->c->ready_io;
        p->def = i ? &s->def->live : &s->def->ready;
        p->w.fd = -1;
        p->vw.fd = -1;
        p->vpid = 0;
        p->pid = 0;
        p->running = 0;
        p->active = 0;
        p->addr_ok = 0;
        timer_init(sv, &p->t_next, on_probe_next, p);
        timer_init(sv, &p->t_timeout, on_probe_timeout, p);
    }
}

void probe_begin(sv_ctx *sv, sv_probe *p, int64_t first_at)
{
    /* notify, log and sd_notify are not polled: the service's fd, output line or datagram says when
     * (svc.c, output.c, sdnotify.c) */
    if (p->def == NULL || !mf_probe_kinds[p->def->kind].polled) return;
    p->active = 1;
    timer_arm(&p->t_next, first_at);
}

void probe_cancel(sv_ctx *sv, sv_probe *p)
{
    p->active = 0;
    timer_disarm(&p->t_next);
    timer_disarm(&p->t_timeout);
    loop_close(sv, &p->w);
    if (p->pid > 0) {
        kill(-p->pid, SIGKILL);
        p->pid = 0;
    }
    holder_stop(sv, p);
    p->wait_held = 0;
    p->running = 0;
}

int probe_on_child_exit(sv_ctx *sv, pid_t pid, int status)
{
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!s->used) continue;
        sv_probe *ps[2] = {&s->ready, &s->live};
        for (int j = 0; j < 2; j++) {
            sv_probe *p = ps[j];
            if (p->vpid == pid && pid > 0) {
                p->vpid = 0; /* its answer comes through the pipe */
                return 1;
            }
            if (p->pid != pid) continue;
            p->pid = 0;
            if (!p->running) return 1;
            if (WIFEXITED(status) && probe_is_https(p->def)) {
                static const char *const why[] = {"2xx", "answered, not 2xx",
                                                  "no answer (connection, TLS or timeout)",
                                                  "libcurl.so.4 cannot be loaded"};
                int code = WEXITSTATUS(status);
                probe_finish(sv, p, code == 0, "https: %s", code < 4 ? why[code] : "helper failed");
            } else if (WIFEXITED(status))
                probe_finish(sv, p, WEXITSTATUS(status) == 0, "exit %d", WEXITSTATUS(status));
            else
                probe_finish(sv, p, 0, "signal %d", WTERMSIG(status));
            return 1;
        }
    }
    return 0;
}
