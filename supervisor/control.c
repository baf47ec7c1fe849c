/*
 * control: the Unix socket that `xtask-supervisor status|start|stop|restart|logs|reload` talk to.
 *
 * Protocol: the client sends one request line (at most SV_CTL_REQ_MAX bytes with its '\n'):
 *     ping | status [json] [check] | start NAME | stop NAME | restart NAME [wait] | reload
 *     | logs NAME|* [N|all] [follow] [ts] [since=EPOCH_MS]
 * The answer is a first line "ok" or "error <message>" (or, for `status check` with an essential
 * service not READY, "unhealthy <name STATE, ...>"), then the body; the supervisor closes the
 * connection after the answer, except for `logs ... follow`, which streams new lines until the
 * client goes away. `restart NAME wait` is answered when the service is READY ("ok") or has failed
 * ("error NAME: <why>"). `logs *` interleaves every service in the order the lines arrived, each
 * prefixed "name | "; `ts` prefixes the arrival time. The kept lines are sent a buffer-full at a
 * time (a cursor: the seq of the last line sent), so memory stays bounded by the rings. The socket is 0600 in
 * a directory created 0700, and a peer whose uid is neither ours nor root is refused (SO_PEERCRED). A stale
 * socket file is replaced only when nobody answers on it.
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
#include <time.h>
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
    char words[8][SV_CTL_REQ_MAX];
    int nw = 0;
    const char *p = line;
    memset(req, 0, sizeof(*req));
    req->nlines = 50;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0') break;
        if (nw == 8) {
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
        } else if (v->cmd == CTL_LOGS && strcmp(w, "ts") == 0) {
            req->ts = 1;
        } else if (v->cmd == CTL_LOGS && strcmp(w, "all") == 0) {
            req->nlines = -1;
        } else if (v->cmd == CTL_RESTART && strcmp(w, "wait") == 0) {
            req->wait = 1;
        } else if (v->cmd == CTL_LOGS && strncmp(w, "since=", 6) == 0) {
            char *end;
            errno = 0;
            long long ms = strtoll(w + 6, &end, 10);
            if (end == w + 6 || *end != '\0' || errno != 0 || ms < 0) {
                snprintf(err, errlen, "logs: since= needs a time in ms since the epoch");
                return -1;
            }
            req->since_ms = (int64_t)ms;
        } else if (v->cmd == CTL_LOGS && w[0] >= '0' && w[0] <= '9') {
            char *end;
            errno = 0;
            long n = strtol(w, &end, 10);
            if (*end != '\0' || errno != 0 || n < 0) {
                snprintf(err, errlen, "logs: bad line count '%.40s'", w);
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
    sv->shed_pending = 1; /* the request's code pages go once the loop is idle again (mem.c) */
    loop_close(sv, &c->w);
    sv_buf_free(&c->out);
    c->req_len = 0;
    c->follow = 0;
    c->closing = 0;
    c->reload_wait = 0;
    c->backlog = 0;
    c->restart_wait = 0;
}

/* One line for a `logs` client: [time ]["name | "]text. */
static int logs_emit(sv_client *c, const svc *s, const sv_line *l)
{
    char pre[MF_NAME_MAX + 64];
    size_t n = 0;
    if (c->lflags & CTL_LOG_TS) {
        time_t t = (time_t)(l->at_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        n += strftime(pre, sizeof(pre), "%Y-%m-%dT%H:%M:%S", &tm);
        int k = snprintf(pre + n, sizeof(pre) - n, ".%03dZ ", (int)(l->at_ms % 1000));
        if (k > 0) n += (size_t)k;
    }
    if (c->lflags & CTL_LOG_NAME) {
        int k = snprintf(pre + n, sizeof(pre) - n, "%s | ", s->name);
        if (k > 0) n += (size_t)k;
    }
    if (n >= sizeof(pre)) n = sizeof(pre) - 1;
    size_t len = strlen(l->text);
    if (c->out.len + n + len + 1 > c->out.max) return -1;
    sv_buf_append(&c->out, pre, n);
    sv_buf_append(&c->out, l->text, len);
    sv_buf_append(&c->out, "\n", 1);
    return 0;
}

/* The next kept line after the client's cursor among the services it reads (by seq: arrival order). */
static const sv_line *logs_next(sv_ctx *sv, sv_client *c, const svc **from)
{
    const sv_line *best = NULL;
    size_t lo = c->lslot > 0 ? (size_t)c->lslot - 1 : 0, hi = c->lslot > 0 ? (size_t)c->lslot : sv->nslots;
    for (size_t i = lo; i < hi; i++) {
        const svc *s = &sv->slots[i];
        if (!s->used) continue;
        const sv_line *l = ring_line(&s->ring, ring_after(&s->ring, c->cursor));
        if (l != NULL && (best == NULL || l->seq < best->seq)) {
            best = l;
            *from = s;
        }
    }
    return best;
}

/* Queue kept lines up to half the output buffer; once none is left, follow or close. */
static void logs_fill(sv_ctx *sv, sv_client *c)
{
    while (c->backlog && c->out.len < c->out.max / 2) {
        const svc *s = NULL;
        const sv_line *l = logs_next(sv, c, &s);
        if (l == NULL) {
            c->backlog = 0;
            if (c->follow == 0) c->closing = 1;
            break;
        }
        if (l->at_ms >= c->since_ms && logs_emit(c, s, l) < 0) break;
        c->cursor = l->seq;
    }
}

/* Lines of the client's services with a seq above `seq`. */
static size_t logs_count_after(sv_ctx *sv, const sv_client *c, uint64_t seq)
{
    size_t lo = c->lslot > 0 ? (size_t)c->lslot - 1 : 0, hi = c->lslot > 0 ? (size_t)c->lslot : sv->nslots,
           n = 0;
    for (size_t i = lo; i < hi; i++)
        if (sv->slots[i].used) n += sv->slots[i].ring.count - ring_after(&sv->slots[i].ring, seq);
    return n;
}

/* The seq just before the last n kept lines of the client's services (0: from the oldest): the
 * smallest seq with at most n lines above it, by binary search over seqs (each step a binary
 * search per ring), so `logs -n 100000` of 1000 services costs ~64 x 1000 x 8 steps, not n x 1000. */
static uint64_t logs_start(sv_ctx *sv, const sv_client *c, long n)
{
    uint64_t lo = 0, hi = sv->line_seq;
    while (n >= 0 && lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (logs_count_after(sv, c, mid) <= (size_t)n)
            hi = mid;
        else
            lo = mid + 1;
    }
    return n < 0 ? 0 : lo;
}

static void client_flush(sv_ctx *sv, sv_client *c)
{
    for (;;) {
        int rc = sv_buf_send(&c->out, c->w.fd, &c->last_io_ms);
        if (rc == 0) {
            loop_mod(sv, &c->w, EPOLLIN | EPOLLOUT);
            return;
        }
        if (rc < 0) {
            client_close(sv, c);
            return;
        }
        if (!c->backlog) break;
        logs_fill(sv, c);
        if (c->out.len == 0) break;
    }
    if (c->closing) {
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
    if (req.name[0] != '\0' && !(req.cmd == CTL_LOGS && strcmp(req.name, "*") == 0)) {
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
        if (req.wait) {
            c->closing = 0; /* answered by control_state_changed */
            c->restart_wait = (int)(s - sv->slots) + 1;
        } else {
            sv_buf_printf(o, "ok\n%s: %s\n", s->name, svc_state_name(s->state));
        }
        break;
    case CTL_LOGS:
        sv_buf_puts(o, "ok\n");
        c->closing = 0;
        c->lslot = s != NULL ? (int)(s - sv->slots) + 1 : 0;
        c->lflags = (req.ts ? CTL_LOG_TS : 0) | (s == NULL ? CTL_LOG_NAME : 0);
        c->since_ms = req.since_ms;
        c->cursor = logs_start(sv, c, req.nlines);
        c->backlog = 1;
        /* followed from here on: lines kept meanwhile are still after the cursor */
        c->follow = req.follow ? (s != NULL ? c->lslot : -1) : 0;
        logs_fill(sv, c);
        break;
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
        if (c->follow || c->closing || c->reload_wait || c->restart_wait || c->backlog)
            continue; /* nothing more is read; ignore */
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
        if (c->w.fd < 0 || c->follow || c->reload_wait || c->restart_wait) continue;
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
        c->backlog = 0;
        c->restart_wait = 0;
        sv_buf_init(&c->out, SV_CTL_OUT_MAX);
        c->last_io_ms = sv_now_ms();
        if (loop_add(sv, &c->w, fd, EPOLLIN, client_io, c) < 0) {
            close(fd);
            continue;
        }
        if (!sv->t_io.armed) timer_arm(&sv->t_io, c->last_io_ms + 1000);
    }
}

void control_follow_line(sv_ctx *sv, svc *s, const sv_line *l)
{
    int idx = (int)(s - sv->slots) + 1;
    for (int i = 0; i < SV_MAX_CLIENTS; i++) {
        sv_client *c = &sv->clients[i];
        if (c->w.fd < 0 || c->backlog || (c->follow != idx && c->follow != -1)) continue;
        if (c->out.dropped > 0) {
            char m[80];
            int n = snprintf(m, sizeof(m), "[... %llu lines dropped]\n", (unsigned long long)c->out.dropped);
            if (sv_buf_append(&c->out, m, (size_t)n) == 0)
                c->out.dropped = 0;
            else
                continue;
        }
        if (logs_emit(c, s, l) < 0) {
            c->out.dropped++;
            continue;
        }
        c->cursor = l->seq;
        if (!(c->w.events & EPOLLOUT)) client_flush(sv, c);
    }
}

void control_state_changed(sv_ctx *sv, svc *s)
{
    int idx = (int)(s - sv->slots) + 1;
    for (int i = 0; i < SV_MAX_CLIENTS; i++) {
        sv_client *c = &sv->clients[i];
        if (c->w.fd < 0 || c->restart_wait != idx) continue;
        sv_buf *o = &c->out;
        if (s->state == SVC_READY || (s->state == SVC_EXITED && s->completed)) {
            sv_buf_printf(o, "ok\n%s: %s\n", s->name, svc_state_name(s->state));
        } else if (s->state == SVC_FAILED || (s->state == SVC_STOPPED && !s->want) ||
                   (s->state == SVC_EXITED && s->has_exit && (s->last_code != 0 || s->last_sig != 0))) {
            char why[160] = "";
            /* a failed readiness probe of this run says why; a passed one is an older run's */
            int bad_probe =
                s->state == SVC_FAILED && s->ready.has_result && !s->ready.ok && s->ready.msg[0] != '\0';
            if (s->has_exit && s->last_sig != 0)
                snprintf(why, sizeof(why), ", killed by signal %d", s->last_sig);
            else if (s->has_exit)
                snprintf(why, sizeof(why), ", exit code %d", s->last_code);
            sv_buf_printf(o, "error %s: %s%s%s%s\n", s->name, svc_state_name(s->state), why,
                          bad_probe ? ", readiness: " : "", bad_probe ? s->ready.msg : "");
        } else {
            continue;
        }
        c->restart_wait = 0;
        c->closing = 1;
        client_flush(sv, c);
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
