/*
 * control: the Unix socket that `xtask-supervisor status|start|stop|restart|logs|reload` talk to.
 *
 * Protocol: the client sends one request line (at most SV_CTL_REQ_MAX bytes with its '\n'):
 *     ping | status [json] [check] | start NAME | stop NAME | restart NAME | logs NAME [N] [follow] | reload
 * The answer is a first line "ok" or "error <message>" (or, for `status check` with an essential
 * service not READY, "unhealthy <name STATE, ...>"), then the body; the supervisor closes the
 * connection after the answer, except for `logs ... follow`, which streams the service's new lines
 * until the client goes away. The socket is 0600 in a directory created 0700, and a peer whose uid
 * is neither ours nor root is refused (SO_PEERCRED). A stale socket file is replaced only when
 * nobody answers on it.
 */
#include "sv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xt_log.h"

/* --- request parsing (pure) ----------------------------------------------------------------- */

typedef struct {
    const char *word;
    sv_ctl_cmd cmd;
    int needs_name;
} ctl_verb;

static const ctl_verb ctl_verbs[] = {
    {"ping", CTL_PING, 0},       {"status", CTL_STATUS, 0}, {"start", CTL_START, 1},   {"stop", CTL_STOP, 1},
    {"restart", CTL_RESTART, 1}, {"logs", CTL_LOGS, 1},     {"reload", CTL_RELOAD, 0},
};

int ctl_parse(const char *line, sv_ctl_req *req, char *err, size_t errlen)
{
    char words[5][SV_CTL_REQ_MAX];
    int nw = 0;
    const char *p = line;
    memset(req, 0, sizeof(*req));
    req->nlines = 50;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0') break;
        if (nw == 5) {
            snprintf(err, errlen, "too many words");
            return -1;
        }
        size_t n = 0;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && n < SV_CTL_REQ_MAX - 1)
            words[nw][n++] = *p++;
        words[nw++][n] = '\0';
    }
    if (nw == 0) {
        snprintf(err, errlen, "empty request");
        return -1;
    }
    const ctl_verb *v = NULL;
    for (size_t i = 0; i < sizeof(ctl_verbs) / sizeof(ctl_verbs[0]); i++)
        if (strcmp(words[0], ctl_verbs[i].word) == 0) v = &ctl_verbs[i];
    if (v == NULL) {
        snprintf(err, errlen, "unknown command '%.40s'", words[0]);
        return -1;
    }
    req->cmd = v->cmd;
    int i = 1;
    if (v->needs_name) {
        if (nw < 2) {
            snprintf(err, errlen, "%s: missing service name", v->word);
            return -1;
        }
        if (strlen(words[1]) > MF_NAME_MAX) {
            snprintf(err, errlen, "%s: service name too long", v->word);
            return -1;
        }
        memcpy(req->name, words[1], strlen(words[1]) + 1);
        i = 2;
    }
    for (; i < nw; i++) {
        const char *w = words[i];
        if (v->cmd == CTL_STATUS && strcmp(w, "json") == 0) {
            req->json = 1;
        } else if (v->cmd == CTL_STATUS && strcmp(w, "check") == 0) {
            req->check = 1;
        } else if (v->cmd == CTL_LOGS && strcmp(w, "follow") == 0) {
            req->follow = 1;
        } else if (v->cmd == CTL_LOGS && w[0] >= '0' && w[0] <= '9') {
            char *end;
            long n = strtol(w, &end, 10);
            if (*end != '\0' || n < 0 || n > SV_RING_LINES) {
                snprintf(err, errlen, "logs: line count must be 0..%d", SV_RING_LINES);
                return -1;
            }
            req->nlines = n;
        } else {
            snprintf(err, errlen, "%s: unexpected argument '%.40s'", v->word, w);
            return -1;
        }
    }
    return 0;
}

/* --- connections ---------------------------------------------------------------------------- */

static void client_close(sv_ctx *sv, sv_client *c)
{
    loop_close(sv, &c->w);
    sv_buf_free(&c->out);
    c->req_len = 0;
    c->follow = 0;
    c->closing = 0;
    c->reload_wait = 0;
}

static void client_flush(sv_ctx *sv, sv_client *c)
{
    int rc = sv_buf_send(&c->out, c->w.fd, &c->last_io_ms);
    if (rc == 0) {
        loop_mod(sv, &c->w, EPOLLIN | EPOLLOUT);
        return;
    }
    if (rc < 0 || c->closing) {
        client_close(sv, c);
        return;
    }
    loop_mod(sv, &c->w, EPOLLIN);
}

static void ctl_answer(sv_ctx *sv, sv_client *c, const char *line)
{
    sv_ctl_req req;
    char err[256];
    sv_buf *o = &c->out;
    c->closing = 1;
    if (ctl_parse(line, &req, err, sizeof(err)) < 0) {
        sv_buf_printf(o, "error %s\n", err);
        return;
    }
    svc *s = NULL;
    if (req.name[0] != '\0') {
        s = svc_find(sv, req.name);
        if (s == NULL) {
            sv_buf_printf(o, "error unknown service '%s'\n", req.name);
            return;
        }
    }
    if (sv->stopping && (req.cmd == CTL_START || req.cmd == CTL_RESTART || req.cmd == CTL_RELOAD)) {
        sv_buf_puts(o, "error the supervisor is stopping\n");
        return;
    }
    switch (req.cmd) {
    case CTL_PING:
        sv_buf_printf(o, "ok\npong %d\n", (int)sv->self);
        break;
    case CTL_STATUS: {
        char why[256];
        /* `status check` (the container's HEALTHCHECK): the same body, but the first line says
         * whether every essential service is ready, so the CLI's exit code can tell */
        if (req.check && !status_check(sv, why, sizeof(why)))
            sv_buf_printf(o, "unhealthy %s\n", why);
        else
            sv_buf_puts(o, "ok\n");
        if (req.json) {
            status_json(sv, o);
            sv_buf_puts(o, "\n");
        } else {
            status_table(sv, o);
        }
        break;
    }
    case CTL_START:
        xt_info("control: start %s", s->name);
        svc_request_start(sv, s);
        sv_buf_printf(o, "ok\n%s: %s\n", s->name, svc_state_name(s->state));
        break;
    case CTL_STOP:
        xt_info("control: stop %s", s->name);
        svc_request_stop(sv, s, STOP_WANTED);
        sv_buf_printf(o, "ok\n%s: %s\n", s->name, svc_state_name(s->state));
        break;
    case CTL_RESTART:
        xt_info("control: restart %s", s->name);
        svc_request_restart(sv, s);
        sv_buf_printf(o, "ok\n%s: %s\n", s->name, svc_state_name(s->state));
        break;
    case CTL_LOGS: {
        sv_buf_puts(o, "ok\n");
        size_t n = (size_t)req.nlines;
        size_t first = s->ring.count > n ? s->ring.count - n : 0;
        for (size_t i = first; i < s->ring.count; i++) {
            sv_buf_puts(o, ring_get(&s->ring, i));
            sv_buf_puts(o, "\n");
        }
        if (req.follow) {
            c->closing = 0;
            c->follow = (int)(s - sv->slots) + 1;
        }
        break;
    }
    case CTL_RELOAD:
        xt_info("control: reload");
        c->closing = 0; /* answered once the parse is over (run.c) */
        c->reload_wait = 1;
        sv_reload_request(sv);
        break;
    }
}

static void client_io(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    sv_client *c = w->arg;
    if (events & EPOLLOUT) client_flush(sv, c);
    if (c->w.fd < 0 || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (;;) {
        char tmp[SV_CTL_REQ_MAX];
        ssize_t n = recv(c->w.fd, tmp, sizeof(tmp), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            client_close(sv, c);
            return;
        }
        c->last_io_ms = sv_now_ms();
        if (c->follow || c->closing || c->reload_wait) continue; /* nothing more is read; ignore */
        size_t room = sizeof(c->req) - 1 - c->req_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(c->req + c->req_len, tmp, take);
        c->req_len += take;
        c->req[c->req_len] = '\0';
        char *nl = memchr(c->req, '\n', c->req_len);
        if (nl != NULL) {
            *nl = '\0';
            ctl_answer(sv, c, c->req);
            client_flush(sv, c);
            return;
        }
        if (c->req_len == sizeof(c->req) - 1) {
            sv_buf_puts(&c->out, "error request too long\n");
            c->closing = 1;
            client_flush(sv, c);
            return;
        }
    }
}

void control_reply(sv_ctx *sv, sv_client *c)
{
    c->closing = 1;
    client_flush(sv, c);
}

static void on_io_sweep(sv_ctx *sv, void *arg)
{
    int64_t now = sv_now_ms();
    int any = 0;
    for (int i = 0; i < SV_MAX_CLIENTS; i++) {
        sv_client *c = &sv->clients[i];
        if (c->w.fd < 0 || c->follow || c->reload_wait) continue;
        if (now - c->last_io_ms > SV_IO_TIMEOUT_MS)
            client_close(sv, c);
        else
            any = 1;
    }
    any |= httpd_sweep(sv);
    if (any) timer_arm(&sv->t_io, now + 1000);
}

static void on_accept(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or a transient error: the loop calls again on the next connection */
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.uid != 0 && cr.uid != geteuid()) {
            xt_warn("control: refused a connection from uid %d", (int)cr.uid);
            close(fd);
            continue;
        }
        sv_client *c = NULL;
        for (int i = 0; i < SV_MAX_CLIENTS; i++)
            if (sv->clients[i].w.fd < 0) {
                c = &sv->clients[i];
                break;
            }
        if (c == NULL) {
            static const char busy[] = "error too many control connections\n";
            ssize_t wn = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
            (void)wn;
            close(fd);
            continue;
        }
        c->req_len = 0;
        c->closing = 0;
        c->follow = 0;
        sv_buf_init(&c->out, SV_CTL_OUT_MAX);
        c->last_io_ms = sv_now_ms();
        if (loop_add(sv, &c->w, fd, EPOLLIN, client_io, c) < 0) {
            close(fd);
            continue;
        }
        if (!sv->t_io.armed) timer_arm(&sv->t_io, c->last_io_ms + 1000);
    }
}

void control_follow_line(sv_ctx *sv, svc *s, const char *line, size_t len)
{
    int idx = (int)(s - sv->slots) + 1;
    for (int i = 0; i < SV_MAX_CLIENTS; i++) {
        sv_client *c = &sv->clients[i];
        if (c->w.fd < 0 || c->follow != idx) continue;
        if (c->out.dropped > 0) {
            char m[80];
            int n = snprintf(m, sizeof(m), "[... %llu lines dropped]\n", (unsigned long long)c->out.dropped);
            if (sv_buf_append(&c->out, m, (size_t)n) == 0)
                c->out.dropped = 0;
            else
                continue;
        }
        if (c->out.len + len + 1 > c->out.max) {
            c->out.dropped++;
            continue;
        }
        sv_buf_append(&c->out, line, len);
        sv_buf_append(&c->out, "\n", 1);
        if (!(c->w.events & EPOLLOUT)) client_flush(sv, c);
    }
}

/* mkdir -p for the socket's directory; new directories are 0700. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(tmp, sizeof(tmp), "%s", path);
    char *slash = strrchr(tmp, '/');
    if (slash == NULL || slash == tmp) return 0;
    *slash = '\0';
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir %s: %s", tmp, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    return 0;
}

int control_open(sv_ctx *sv, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    for (int i = 0; i < SV_MAX_CLIENTS; i++)
        sv->clients[i].w.fd = -1;
    timer_init(sv, &sv->t_io, on_io_sweep, NULL);
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    if (make_dirs(path, err, errlen) < 0) return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            snprintf(err, errlen, "another supervisor answers on %s", path);
            return -1;
        }
        if (probe >= 0) close(probe);
        unlink(path); /* stale: nobody answers */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (loop_add(sv, &sv->ctlw, fd, EPOLLIN, on_accept, NULL) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        close(fd);
        return -1;
    }
    sv->ctl_path = strdup(path);
    return 0;
}

void control_close(sv_ctx *sv)
{
    for (int i = 0; i < SV_MAX_CLIENTS; i++)
        if (sv->clients[i].w.fd >= 0) {
            client_flush(sv, &sv->clients[i]);
            client_close(sv, &sv->clients[i]);
        }
    if (sv->ctlw.fd >= 0) {
        loop_close(sv, &sv->ctlw);
        if (sv->ctl_path != NULL) unlink(sv->ctl_path);
    }
    free(sv->ctl_path);
    sv->ctl_path = NULL;
}
