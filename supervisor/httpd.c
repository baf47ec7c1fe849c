/*
 * httpd: the optional status_http listener, a tiny HTTP/1.1 server inside the loop.
 *   GET /healthz      200 "ok" when every essential service is ready, else 503
 *   GET /status.json  the status JSON (docs/PROTOCOL.md)
 *   GET /metrics      Prometheus text
 * Requests are bounded (SV_HTTP_REQ_MAX), answered once and the connection closed. A request a web
 * page could have sent (a Host name other than an IP literal, localhost or .internal, an Origin, a
 * cross-site Sec-Fetch-Site) gets 403: status_http listens on 0.0.0.0 on Fly.
 *
 * Slow clients cannot hold it: a whole exchange, from accept to the answer's last byte, must fit in
 * SV_HTTP_DEADLINE_MS however steadily the client trickles bytes (a silence timeout alone lets one
 * byte every 2 s hold a slot for ever), and when every slot is taken a new connection evicts the
 * client that has held its slot longest, so a health checker is turned away at most until it
 * connects again. A request already waiting at accept is answered at once, before it can be evicted.
 */
#include "sv.h"

#include <errno.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xt_log.h"

int sv_parse_hostport(const char *hp, struct sockaddr_storage *addr, socklen_t *alen, char *err,
                      size_t errlen)
{
    char host[256], port[16];
    const char *colon;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (rb == NULL || rb[1] != ':') {
            snprintf(err, errlen, "bad address '%s' (want [v6]:port)", hp);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(rb - hp - 1), hp + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL || colon == hp || (size_t)(colon - hp) >= sizeof(host)) {
            snprintf(err, errlen, "bad address '%s' (want host:port)", hp);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
    }
    snprintf(port, sizeof(port), "%s", colon + 1);
    char *end;
    long pn = strtol(port, &end, 10);
    if (port[0] == '\0' || *end != '\0' || pn < 1 || pn > 65535) {
        snprintf(err, errlen, "bad port in '%s'", hp);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc == EAI_NONAME) {
        /* a name: resolved here, synchronously ("localhost" comes from /etc/hosts) */
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, port, &hints, &res);
    }
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *alen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void hclient_close(sv_ctx *sv, sv_hclient *c)
{
    loop_close(sv, &c->w);
    sv_buf_free(&c->out);
    c->req_len = 0;
}

static void hclient_flush(sv_ctx *sv, sv_hclient *c)
{
    if (sv_buf_send(&c->out, c->w.fd, &c->last_io_ms) == 0) {
        loop_mod(sv, &c->w, EPOLLOUT);
        return;
    }
    hclient_close(sv, c); /* all sent (Connection: close) or the peer is gone */
}

static void http_respond(sv_ctx *sv, sv_hclient *c, int code, const char *reason, const char *ctype,
                         sv_buf *body, int head_only)
{
    sv_buf_init(&c->out, 1024 * 1024);
    sv_buf_printf(&c->out,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                  "Connection: close\r\n\r\n",
                  code, reason, ctype, body->len);
    if (!head_only) sv_buf_append(&c->out, body->data, body->len);
    hclient_flush(sv, c);
}

/* The value of header `name` (case-insensitive) in the request head, trimmed, into out; 1 if found
 * (a second copy of the header makes it 2: ambiguous), 0 if absent. */
static int http_header(const char *req, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    int found = 0;
    out[0] = '\0';
    const char *end = req + len, *line = memchr(req, '\n', len);
    while (line != NULL && line + 1 < end) {
        const char *h = line + 1, *eol = memchr(h, '\n', (size_t)(end - h));
        if (eol == NULL) eol = end;
        if ((size_t)(eol - h) > nl && strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (found == 0) snprintf(out, outlen, "%.*s", (int)(ve - v), v);
            found++;
        }
        line = eol < end ? eol : NULL;
    }
    return found > 1 ? 2 : found;
}

/* Whether a browser page could have made this request under a name it controls (DNS rebinding:
 * evil.example resolving to 127.0.0.1, then reading /status.json as same-origin) or across origins.
 * Allowed: a Host that is an IP literal (with or without port), `localhost`, or a name under
 * `.localhost` or `.internal` (no public DNS answers for them: Fly's checks and private names); no
 * Origin header; Sec-Fetch-Site absent, `none` or `same-origin`. Health checkers and curl pass. */
static const char *http_refusal(const sv_hclient *c)
{
    char host[256], v[64];
    int n = http_header(c->req, c->req_len, "host", host, sizeof(host));
    if (n != 1) return n == 0 ? "no Host header" : "more than one Host header";
    char name[256];
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (rb == NULL) return "a malformed Host";
        snprintf(name, sizeof(name), "%.*s", (int)(rb - host - 1), host + 1);
    } else {
        const char *colon = strchr(host, ':');
        snprintf(name, sizeof(name), "%.*s", colon ? (int)(colon - host) : (int)strlen(host), host);
    }
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    size_t nl = strlen(name);
    unsigned char a[sizeof(struct in6_addr)];
    int ok = inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1 ||
             strcmp(name, "localhost") == 0 || (nl > 10 && strcmp(name + nl - 10, ".localhost") == 0) ||
             (nl > 9 && strcmp(name + nl - 9, ".internal") == 0);
    if (!ok) return "a Host name that is not this machine's (DNS rebinding)";
    if (http_header(c->req, c->req_len, "origin", v, sizeof(v)) != 0) return "a cross-origin request";
    if (http_header(c->req, c->req_len, "sec-fetch-site", v, sizeof(v)) != 0 && strcmp(v, "none") != 0 &&
        strcmp(v, "same-origin") != 0)
        return "a cross-site request";
    return NULL;
}

static void http_handle(sv_ctx *sv, sv_hclient *c)
{
    char method[8], target[256];
    sv_buf body;
    sv_buf_init(&body, 512 * 1024);
    const char *sp1 = memchr(c->req, ' ', c->req_len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', c->req_len - (size_t)(sp1 + 1 - c->req)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 - c->req >= (long)sizeof(method) ||
        sp2 - sp1 - 1 >= (long)sizeof(target)) {
        sv_buf_puts(&body, "bad request\n");
        http_respond(sv, c, 400, "Bad Request", "text/plain", &body, 0);
        sv_buf_free(&body);
        return;
    }
    snprintf(method, sizeof(method), "%.*s", (int)(sp1 - c->req), c->req);
    snprintf(target, sizeof(target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    char *q = strchr(target, '?');
    if (q != NULL) *q = '\0';
    int head = strcmp(method, "HEAD") == 0;
    const char *refused = http_refusal(c);
    if (refused != NULL) {
        sv_buf_printf(&body, "refused: %s\n", refused);
        http_respond(sv, c, 403, "Forbidden", "text/plain", &body, head);
    } else if (!head && strcmp(method, "GET") != 0) {
        sv_buf_puts(&body, "method not allowed\n");
        http_respond(sv, c, 405, "Method Not Allowed", "text/plain", &body, 0);
    } else if (strcmp(target, "/healthz") == 0) {
        int ok = status_healthy(sv);
        sv_buf_puts(&body, ok ? "ok\n" : "not ready\n");
        http_respond(sv, c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain", &body, head);
    } else if (strcmp(target, "/status.json") == 0) {
        status_json(sv, &body);
        sv_buf_puts(&body, "\n");
        http_respond(sv, c, 200, "OK", "application/json", &body, head);
    } else if (strcmp(target, "/metrics") == 0) {
        status_metrics(sv, &body);
        http_respond(sv, c, 200, "OK", "text/plain; version=0.0.4", &body, head);
    } else {
        sv_buf_puts(&body, "not found\n");
        http_respond(sv, c, 404, "Not Found", "text/plain", &body, head);
    }
    sv_buf_free(&body);
}

static void hclient_io(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    sv_hclient *c = w->arg;
    if (c->out.len > 0) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) hclient_flush(sv, c);
        return;
    }
    for (;;) {
        size_t room = sizeof(c->req) - 1 - c->req_len;
        if (room == 0) {
            sv_buf body;
            sv_buf_init(&body, 64);
            sv_buf_puts(&body, "request too large\n");
            http_respond(sv, c, 431, "Request Header Fields Too Large", "text/plain", &body, 0);
            sv_buf_free(&body);
            return;
        }
        ssize_t n = recv(w->fd, c->req + c->req_len, room, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            hclient_close(sv, c);
            return;
        }
        c->req_len += (size_t)n;
        c->req[c->req_len] = '\0';
        c->last_io_ms = sv_now_ms();
        if (strstr(c->req, "\r\n\r\n") != NULL || strstr(c->req, "\n\n") != NULL) {
            http_handle(sv, c);
            return;
        }
    }
}

/* A free slot, else the one held longest (its client is evicted: see the top of the file). */
static sv_hclient *hclient_slot(sv_ctx *sv)
{
    sv_hclient *oldest = NULL;
    for (int i = 0; i < SV_HTTP_CLIENTS; i++) {
        sv_hclient *c = &sv->hclients[i];
        if (c->w.fd < 0) return c;
        if (oldest == NULL || c->accepted_ms < oldest->accepted_ms) oldest = c;
    }
    hclient_close(sv, oldest);
    return oldest;
}

static void on_http_accept(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    (void)events;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        sv_hclient *c = hclient_slot(sv);
        c->req_len = 0;
        sv_buf_init(&c->out, 0);
        c->accepted_ms = c->last_io_ms = sv_now_ms();
        if (loop_add(sv, &c->w, fd, EPOLLIN, hclient_io, c) < 0) {
            close(fd);
            continue;
        }
        if (!sv->t_io.armed) timer_arm(&sv->t_io, c->last_io_ms + 1000);
        hclient_io(sv, &c->w, EPOLLIN); /* the request is usually there already */
    }
}

/* HTTP clients past their deadline are closed by the control module's 1 s sweep through this. */
static void on_http_sweep(sv_ctx *sv, void *arg)
{
    (void)arg;
    int64_t now = sv_now_ms();
    for (int i = 0; i < SV_HTTP_CLIENTS; i++) {
        sv_hclient *c = &sv->hclients[i];
        if (c->w.fd >= 0 && now - c->accepted_ms > SV_HTTP_DEADLINE_MS) hclient_close(sv, c);
    }
}

int httpd_sweep(sv_ctx *sv)
{
    int any = 0;
    on_http_sweep(sv, NULL);
    for (int i = 0; i < SV_HTTP_CLIENTS; i++)
        if (sv->hclients[i].w.fd >= 0) any = 1;
    return any;
}

int httpd_open(sv_ctx *sv, const char *hostport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    for (int i = 0; i < SV_HTTP_CLIENTS; i++)
        sv->hclients[i].w.fd = -1;
    if (sv_parse_hostport(hostport, &ss, &sl, err, errlen) < 0) return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        snprintf(err, errlen, "status_http: socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errlen, "status_http %s: %s", hostport, strerror(errno));
        close(fd);
        return -1;
    }
    if (loop_add(sv, &sv->httpw, fd, EPOLLIN, on_http_accept, NULL) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return 0;
}

void httpd_close(sv_ctx *sv)
{
    for (int i = 0; i < SV_HTTP_CLIENTS; i++)
        if (sv->hclients[i].w.fd >= 0) hclient_close(sv, &sv->hclients[i]);
    loop_close(sv, &sv->httpw);
}
