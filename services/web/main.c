/*
 * xtask-web: flags, h2o set-up from web.yaml, listeners, signals, the loop, the bounded drain.
 *
 *   xtask-web --config configs/web.yaml [--listen ADDR] [--tls-listen ADDR] [--nats URL] [--check]
 *
 * Exit codes: 0 after a clean shutdown, 2 for usage or configuration errors, 1 for system errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "web.h"
#include "wsproxy.h"
#include "xt_log.h"

typedef struct {
    h2o_handler_t super;
    web_route *rt; /* NULL: the catch-all 404 */
} builtin_handler;

static web_app app;

/* Loop threads that finished their drain. They then park instead of exiting: h2o keeps per-thread
 * recycled buffers in thread-local storage, which must stay reachable until the process exits. */
static pthread_mutex_t drained_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained_cv = PTHREAD_COND_INITIALIZER;
static unsigned drained;
static unsigned set_up, setup_failed;

/* A loop thread: its h2o objects are created here, on the thread that uses them (h2o keeps
 * per-thread buffer recyclers: a socket created on one thread and read on another corrupts them). */
static int thread_setup(web_server *srv, char *err, size_t errlen);
static void *thread_run(void *arg);

static void *thread_main(void *arg)
{
    web_server *srv = arg;
    char err[512];
    int rc = thread_setup(srv, err, sizeof(err));
    if (rc != 0) xt_error("thread %u: %s", srv->index, err);
    pthread_mutex_lock(&drained_mu);
    set_up++;
    setup_failed += rc != 0;
    pthread_cond_broadcast(&drained_cv);
    pthread_mutex_unlock(&drained_mu);
    if (rc != 0) return NULL;
    return thread_run(srv);
}

/* Async-signal-safe: one byte into every loop's pipe. */
static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    for (unsigned i = 0; i < app.nthreads; i++) {
        if (app.threads[i] && app.threads[i]->sig_pipe[1] >= 0 &&
            write(app.threads[i]->sig_pipe[1], &c, 1) < 0) {
            /* the pipe is full: a shutdown is already pending there */
        }
    }
    errno = saved;
}

/* `redirect` routes answer the exact path only; what lies below them is not theirs. */
static int redirect_on_req(h2o_req_t *req, const web_route *rt)
{
    static const char *const reasons[] = {
        "Moved Permanently", "Found",  "See Other",          "Not Modified",
        "Use Proxy",         "Unused", "Temporary Redirect", "Permanent Redirect"};
    if (req->path_normalized.len != strlen(rt->path)) {
        api_send_error(req, 404, "Not Found", "not_found", "no route for this path");
        return 0;
    }
    h2o_send_redirect(req, (int)rt->redirect_status, reasons[rt->redirect_status - 301], rt->redirect_to,
                      strlen(rt->redirect_to));
    return 0;
}

static int builtin_on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    builtin_handler *self = (builtin_handler *)_self;
    web_server *srv = web_server_of(req);
    if (self->rt == NULL) {
        api_send_error(req, 404, "Not Found", "not_found", "no route for this path");
        return 0;
    }
    switch (self->rt->kind) {
    case ROUTE_HEALTH:
        return api_health_on_req(srv, req);
    case ROUTE_API:
        return api_on_req(srv, req);
    case ROUTE_EVENTS:
        return events_on_req(srv, req);
    case ROUTE_GUI:
        return api_gui_on_req(srv, req, self->rt);
    case ROUTE_REDIRECT:
        return redirect_on_req(req, self->rt);
    default:
        return -1;
    }
}

static h2o_headers_command_t *make_header_cmds(web_host *h)
{
    h2o_headers_command_t *cmds = calloc(h->nheaders + 1, sizeof(*cmds));
    for (size_t i = 0; i < h->nheaders; i++) {
        size_t nl = strlen(h->headers[i].name);
        char *lc = strdup(h->headers[i].name);
        for (char *p = lc; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        const h2o_token_t *tok = h2o_lookup_token(lc, nl);
        if (tok) {
            cmds[i].name = (h2o_iovec_t *)&tok->buf;
            free(lc);
        } else {
            h2o_iovec_t *name = malloc(sizeof(*name));
            *name = h2o_iovec_init(lc, nl);
            cmds[i].name = name;
        }
        cmds[i].cmd = H2O_HEADERS_CMD_SET;
        cmds[i].value = h2o_iovec_init(h->headers[i].value, strlen(h->headers[i].value));
    }
    cmds[h->nheaders].cmd = H2O_HEADERS_CMD_NULL;
    return cmds;
}

static h2o_headers_command_t *all_cmds[WEB_MAX_HOSTS];

static int register_route(web_app *a, h2o_pathconf_t *pc, web_route *rt, char *err, size_t errlen)
{
    if (rt->kind == ROUTE_PROXY) {
        h2o_url_t url;
        if (h2o_url_parse(rt->upstream, SIZE_MAX, &url) != 0) {
            snprintf(err, errlen, "%s: reverse_proxy.upstream '%s' is not a URL", a->conf.path, rt->upstream);
            return -1;
        }
        h2o_proxy_config_vars_t cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.io_timeout = (uint64_t)rt->proxy_timeout_ms;
        cfg.keepalive_timeout = (uint64_t)rt->proxy_keepalive_ms;
        cfg.preserve_host = rt->preserve_host ? 1 : 0;
        h2o_proxy_register_reverse_proxy(pc, &url, &cfg);
    } else if (rt->kind == ROUTE_FILES) {
        static const char *index_files[] = {"index.html", NULL};
        h2o_file_register(pc, rt->root, index_files, NULL, 0);
    } else {
        builtin_handler *b = (builtin_handler *)h2o_create_handler(pc, sizeof(*b));
        b->super.on_req = builtin_on_req;
        b->rt = rt;
    }
    return 0;
}

static int setup_hosts(web_app *a, char *err, size_t errlen)
{
    for (size_t hi = 0; hi < a->conf.nhosts; hi++) {
        web_host *h = &a->conf.hosts[hi];
        all_cmds[hi] = make_header_cmds(h);
        /* h2o matches "name:port" only against a host registered with that port (65535 stands for
         * the scheme's default port only): register each name for every listener port too */
        uint16_t ports[WEB_MAX_LISTEN + 1];
        size_t nports = 0;
        ports[nports++] = 65535;
        for (size_t l = 0; l < a->conf.nlisten; l++) {
            uint16_t p = (uint16_t)strtol(strrchr(a->conf.listen[l].address, ':') + 1, NULL, 10);
            size_t k;
            for (k = 0; k < nports; k++)
                if (ports[k] == p) break;
            if (k == nports && p != 0) ports[nports++] = p;
        }
        h->ninst = h->nnames * nports;
        h->inst = calloc(h->ninst, sizeof(*h->inst));
        int has_root = 0;
        for (size_t r = 0; r < h->nroutes; r++)
            if (strcmp(h->routes[r].path, "/") == 0) has_root = 1;
        for (size_t ii = 0; ii < h->ninst; ii++) {
            size_t ni = ii / nports;
            web_hostinst *inst = &h->inst[ii];
            inst->hostconf = h2o_config_register_host(
                &a->globalconf, h2o_iovec_init(h->names[ni], strlen(h->names[ni])), ports[ii % nports]);
            size_t first = wsproxy_register(inst->hostconf); /* edge leafs over WebSocket, before routes */
            for (size_t r = 0; r < h->nroutes; r++) {
                h2o_pathconf_t *pc = h2o_config_register_path(inst->hostconf, h->routes[r].path, 0);
                inst->guards[r] = front_register_guard(pc, h, inst, (int)r);
                if (register_route(a, pc, &h->routes[r], err, errlen) != 0) return -1;
                if (h->nheaders) h2o_headers_register(pc, all_cmds[hi]);
            }
            size_t catch_all = h->nroutes;
            if (has_root) {
                for (size_t r = 0; r < h->nroutes; r++)
                    if (strcmp(h->routes[r].path, "/") == 0) inst->guards[catch_all] = inst->guards[r];
            } else {
                h2o_pathconf_t *pc = h2o_config_register_path(inst->hostconf, "/", 0);
                inst->guards[catch_all] = front_register_guard(pc, h, inst, -1);
                builtin_handler *b = (builtin_handler *)h2o_create_handler(pc, sizeof(*b));
                b->super.on_req = builtin_on_req;
                b->rt = NULL;
                if (h->nheaders) h2o_headers_register(pc, all_cmds[hi]);
            }
            /* the path vector is final now: take the pathconfs' addresses */
            for (size_t r = 0; r < h->nroutes; r++)
                inst->pathconfs[r] = &inst->hostconf->paths.entries[first + r];
            if (has_root) {
                for (size_t r = 0; r < h->nroutes; r++)
                    if (strcmp(h->routes[r].path, "/") == 0) inst->pathconfs[catch_all] = inst->pathconfs[r];
            } else {
                inst->pathconfs[catch_all] = &inst->hostconf->paths.entries[first + h->nroutes];
            }
        }
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_accept_ctx_t *actx = listener->data;
    if (err != NULL) return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) return;
        h2o_accept(actx, sock);
    }
}

static int open_listener(const char *address, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(address, ':');
    size_t hl = (size_t)(colon - address);
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "listen %s: address too long", address);
        return -1;
    }
    memcpy(host, address, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "listen %s: %s", address, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "listen %s: %s", address, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static SSL_CTX *make_ssl_ctx(const web_listen_conf *l, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, l->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, l->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    if (l->http2)
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    else
        h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
fail:
    snprintf(err, errlen, "listen %s: TLS cert %s / key %s: %s", l->address, l->cert, l->key,
             ERR_reason_error_string(ERR_get_error()) ?: "error");
    SSL_CTX_free(ctx);
    return NULL;
}

static void on_sig_read(h2o_socket_t *sock, const char *err)
{
    web_server *srv = sock->data;
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (!srv->shutting_down) {
        if (srv->index == 0) xt_info("signal: shutting down");
        srv->shutting_down = 1;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: xtask-web --config FILE [--listen HOST:PORT] [--tls-listen HOST:PORT] [--nats URL] "
               "[--check]\n");
}

/* One loop thread's resources: context, listeners (SO_REUSEPORT: the kernel spreads connections),
 * signal pipe, and the modules' per-loop state. */
static int thread_setup(web_server *srv, char *err, size_t errlen)
{
    srv->conf = &app.conf;
    srv->app = &app;
    srv->sig_pipe[0] = srv->sig_pipe[1] = -1;
    srv->loop = h2o_evloop_create();
    h2o_context_init(&srv->ctx, srv->loop, &app.globalconf);
    for (size_t i = 0; i < app.conf.nlisten; i++) {
        web_listen_conf *l = &app.conf.listen[i];
        int fd = open_listener(l->address, err, errlen);
        if (fd < 0) return -1;
        h2o_accept_ctx_t *actx = &srv->accept_ctx[i];
        actx->ctx = &srv->ctx;
        actx->hosts = app.globalconf.hosts;
        actx->ssl_ctx = app.ssl_ctx[i];
        srv->listeners[i] = h2o_evloop_socket_create(srv->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        srv->listeners[i]->data = actx;
        h2o_socket_read_start(srv->listeners[i], on_accept);
        srv->nlisteners++;
    }
    if (pipe2(srv->sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    srv->sig_sock = h2o_evloop_socket_create(srv->loop, srv->sig_pipe[0], 0);
    srv->sig_sock->data = srv;
    h2o_socket_read_start(srv->sig_sock, on_sig_read);
    if (front_init(srv) != 0 || events_init(srv) != 0 || api_init(srv) != 0 || bus_start(srv) != 0) {
        snprintf(err, errlen, "start-up failed");
        return -1;
    }
    return 0;
}

/* Run one loop until a signal, then drain: no new connections, streams ended, running requests
 * get drain_timeout. */
static void *thread_run(void *arg)
{
    web_server *srv = arg;
    while (!srv->shutting_down)
        h2o_evloop_run(srv->loop, INT32_MAX);
    for (size_t i = 0; i < srv->nlisteners; i++) {
        h2o_socket_read_stop(srv->listeners[i]);
        h2o_socket_close(srv->listeners[i]);
        srv->listeners[i] = NULL;
    }
    srv->nlisteners = 0;
    h2o_context_request_shutdown(&srv->ctx);
    events_close_all(srv);
    uint64_t deadline = h2o_now(srv->loop) + (uint64_t)app.conf.drain_timeout_ms;
    while (srv->inflight > 0 && h2o_now(srv->loop) < deadline)
        h2o_evloop_run(srv->loop, (int32_t)(deadline - h2o_now(srv->loop)));
    if (srv->inflight > 0)
        xt_warn("shutdown: %llu requests still running after %lld ms; closing",
                (unsigned long long)srv->inflight, (long long)app.conf.drain_timeout_ms);
    h2o_evloop_run(srv->loop, 0);
    pthread_mutex_lock(&drained_mu);
    drained++;
    pthread_cond_broadcast(&drained_cv);
    while (srv->index != 0)
        pthread_cond_wait(&drained_cv, &drained_mu); /* parked until the process exits */
    pthread_mutex_unlock(&drained_mu);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"tls-listen", required_argument, NULL, 't'},
                                         {"nats", required_argument, NULL, 'n'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *listen_o = NULL, *tls_o = NULL, *nats_o = NULL;
    int check = 0, c;
    char err[1024];
    pthread_t tids[WEB_MAX_THREADS];

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            listen_o = optarg;
            break;
        case 't':
            tls_o = optarg;
            break;
        case 'n':
            nats_o = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("xtask-web %s\n", WEB_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (web_conf_load(&app.conf, config, listen_o, tls_o, nats_o, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        web_conf_free(&app.conf);
        return 2;
    }
    if (check) {
        printf("%s: ok\n", config);
        web_conf_free(&app.conf);
        return 0;
    }
    xt_log_init((xt_log_level)xt_log_level_parse(app.conf.log_level), app.conf.log_json);
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&app.globalconf);
    app.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("xtask-web"));
    app.globalconf.max_request_entity_size = (size_t)app.conf.max_body_bytes;
    app.globalconf.http1.req_timeout = (uint64_t)app.conf.request_timeout_ms;
    app.globalconf.http1.upgrade_to_http2 = 0; /* no h2c */
    app.globalconf.http2.idle_timeout = (uint64_t)app.conf.idle_timeout_ms;
    app.globalconf.proxy.emit_x_forwarded_headers = 1;
    if (wsproxy_init(err, sizeof(err)) != 0 || setup_hosts(&app, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    for (size_t i = 0; i < app.conf.nlisten; i++) {
        web_listen_conf *l = &app.conf.listen[i];
        if (l->cert && (app.ssl_ctx[i] = make_ssl_ctx(l, err, sizeof(err))) == NULL) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    app.nthreads = app.conf.threads > 0 ? (unsigned)app.conf.threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (app.nthreads > WEB_MAX_THREADS) app.nthreads = WEB_MAX_THREADS;
    /* signals go to the pipes; block them in the loop threads so the handler runs in main */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (unsigned i = 0; i < app.nthreads; i++) {
        app.threads[i] = calloc(1, sizeof(web_server));
        app.threads[i]->index = i;
        app.threads[i]->sig_pipe[0] = app.threads[i]->sig_pipe[1] = -1;
    }
    /* the other loops block every signal (the handler runs in this thread or a nats.c one) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 1; i < app.nthreads; i++)
        pthread_create(&tids[i], NULL, thread_main, app.threads[i]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (thread_setup(app.threads[0], err, sizeof(err)) != 0) {
        xt_error("%s", err);
        return 1;
    }
    pthread_mutex_lock(&drained_mu);
    while (set_up < app.nthreads - 1)
        pthread_cond_wait(&drained_cv, &drained_mu);
    pthread_mutex_unlock(&drained_mu);
    if (setup_failed) {
        xt_error("start-up failed");
        return 1;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (bus_app_start(&app) != 0) {
        xt_error("start-up failed");
        return 1;
    }
    for (size_t i = 0; i < app.conf.nlisten; i++) {
        web_listen_conf *l = &app.conf.listen[i];
        xt_info("listening on %s%s", l->address, l->cert ? (l->http2 ? " (TLS, h2)" : " (TLS)") : "");
    }
    char nats_url[XT_NATS_URL_MAX];
    xt_info("xtask-web %s ready (%zu hosts, %u threads, nats %s)", WEB_VERSION, app.conf.nhosts, app.nthreads,
            xt_nats_url_redact(app.conf.nats.url, nats_url, sizeof nats_url));

    thread_run(app.threads[0]);
    pthread_mutex_lock(&drained_mu);
    while (drained < app.nthreads)
        pthread_cond_wait(&drained_cv, &drained_mu);
    pthread_mutex_unlock(&drained_mu);
    api_wait_idle(6000);
    bus_app_stop(&app);
    xt_info("stopped");
    /* h2o 2.2.5 has no way to close the connections it still holds (idle keep-alive clients), and
     * h2o_context_dispose asserts on their timers: contexts, loops and the configuration stay
     * reachable from `app` until the process exits. */
    return 0;
}
