/*
 * xtask-bench-client: measures for bench/coordinator/run.sh. Prints one JSON line.
 *   xtask-bench-client req [--nats-default] URL SUBJECT BODY N [THREADS]
 *       request/reply round trips (sequential per thread): p50/p99/mean in us and req/s. The
 *       connection is the platform's (xt_nats: send-asap, and XTASK_NATS_CREDS / _TLS_CA /
 *       _INBOX_PREFIX from the environment); --nats-default connects with nats.c's defaults
 *       (no send-asap: requests wait for the library's flusher).
 *   xtask-bench-client raw URL SUBJECT BODY N
 *       the same round trip from a raw-socket client (the NATS text protocol by hand, blocking
 *       reads): what the server and the responder cost with no client library at all.
 *   xtask-bench-client rawpair URL N
 *       raw requester and raw responder on two sockets of one thread: the server's own floor.
 *   xtask-bench-client gather URL SUBJECT BODY N EXPECT  time until EXPECT replies (scatter-gather)
 *   xtask-bench-client spawn N                           xr_run of `true` alone (spawn + wait + capture)
 */
#include <errno.h>
#include <nats/nats.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xo_output.h"
#include "xr_run.h"
#include "xt_nats.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n, double wall_us)
{
    double sum = 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    for (int i = 0; i < n; i++)
        sum += v[i];
    printf("{\"what\":\"%s\",\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"per_s\":%.1f}\n",
           what, n, v[n / 2], v[(int)(n * 0.99)], sum / n, n / (wall_us / 1e6));
}

/* The platform's connection (send-asap, credentials and TLS from XTASK_NATS_*), or nats.c's
 * defaults when nats_default is set. */
static natsConnection *bench_connect(const char *url, int nats_default)
{
    natsConnection *nc = NULL;
    xt_nats_conf c = {0};
    char err[1024];
    if (nats_default) {
        if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
            fprintf(stderr, "bench: cannot connect to %s\n", url);
        return nc;
    }
    xt_nats_params p = {.cli = 1, .name = "xtask-bench", .creds_where = "XTASK_NATS_CREDS"};
    if (xt_nats_conf_env(&c, err, sizeof err) != 0 ||
        xt_nats_conf_set(&c, "url", url, "URL", err, sizeof err) != 0 ||
        xt_nats_connect(&c, &p, &nc, err, sizeof err) != 0)
        fprintf(stderr, "bench: %s\n", err);
    xt_nats_conf_free(&c);
    return nc;
}

typedef struct {
    natsConnection *nc;
    const char *subj, *body;
    int n;
    double *lat;
    int errors;
} req_arg;

static void *req_thread(void *p)
{
    req_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        natsMsg *m = NULL;
        double t0 = now_us();
        natsStatus st = natsConnection_RequestString(&m, a->nc, a->subj, a->body, 30000);
        a->lat[i] = now_us() - t0;
        if (st != NATS_OK || strstr(natsMsg_GetData(m) ? natsMsg_GetData(m) : "", "\"error\"")) a->errors++;
        natsMsg_Destroy(m);
    }
    return NULL;
}

static int do_req(const char *url, const char *subj, const char *body, int n, int threads, int nats_default)
{
    natsConnection *nc = bench_connect(url, nats_default);
    if (!nc) return 1;
    /* warm-up */
    for (int i = 0; i < 50; i++) {
        natsMsg *m = NULL;
        natsConnection_RequestString(&m, nc, subj, body, 30000);
        natsMsg_Destroy(m);
    }
    req_arg args[64];
    pthread_t th[64];
    if (threads > 64) threads = 64;
    double *all = calloc((size_t)n * (size_t)threads, sizeof *all);
    double t0 = now_us();
    for (int t = 0; t < threads; t++) {
        args[t] = (req_arg){nc, subj, body, n, all + (size_t)t * (size_t)n, 0};
        pthread_create(&th[t], NULL, req_thread, &args[t]);
    }
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        errors += args[t].errors;
    }
    double wall = now_us() - t0;
    if (errors) fprintf(stderr, "bench: %d errors\n", errors);
    report(threads > 1 ? "req-parallel" : "req", all, n * threads, wall);
    free(all);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    return errors ? 1 : 0;
}

static int do_gather(const char *url, const char *subj, const char *body, int n, int expect)
{
    natsConnection *nc = bench_connect(url, 0);
    natsSubscription *sub = NULL;
    char inbox[128];
    const char *prefix = getenv("XTASK_NATS_INBOX_PREFIX");
    double *lat = calloc((size_t)n, sizeof *lat);
    if (!nc) return 1;
    double t_all = now_us();
    for (int i = 0; i < n; i++) {
        if (xt_nats_inbox(prefix, inbox, sizeof inbox) != 0) return 1;
        natsConnection_SubscribeSync(&sub, nc, inbox);
        double t0 = now_us();
        natsConnection_PublishRequestString(nc, subj, inbox, body);
        int got = 0;
        while (got < expect) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, sub, 5000) != NATS_OK) break;
            got++;
            natsMsg_Destroy(m);
        }
        lat[i] = now_us() - t0;
        natsSubscription_Destroy(sub);
        if (got < expect) {
            fprintf(stderr, "bench: only %d of %d replies\n", got, expect);
            return 1;
        }
    }
    report("gather", lat, n, now_us() - t_all);
    free(lat);
    natsConnection_Destroy(nc);
    return 0;
}

static int do_spawn(int n)
{
    char *argv[] = {"true", NULL};
    double *lat = calloc((size_t)n, sizeof *lat);
    double t_all = now_us();
    for (int i = 0; i < n; i++) {
        xo_output out;
        xr_status st;
        xr_spec spec = {.argv = argv, .timeout_ms = 10000};
        xo_output_init(&out, 4096, 256 * 1024);
        double t0 = now_us();
        xr_run(&spec, &out, &st);
        lat[i] = now_us() - t0;
        xo_output_free(&out);
    }
    report("spawn", lat, n, now_us() - t_all);
    free(lat);
    return 0;
}

/* ---- a raw-socket NATS client: the protocol by hand, blocking reads --------------------------- */

typedef struct {
    int fd;
    char buf[65536];
    size_t len;
} raw_conn;

static int raw_write(raw_conn *r, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(r->fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* One protocol line (without CRLF) into line; a MSG's payload is consumed and skipped. PINGs from
 * the server are answered here. 0, or -1 on EOF/-ERR/overflow. */
static int raw_next(raw_conn *r, char *line, size_t linecap)
{
    for (;;) {
        char *eol = memmem(r->buf, r->len, "\r\n", 2);
        if (eol) {
            size_t ll = (size_t)(eol - r->buf);
            size_t need = ll + 2, size = 0;
            if (ll >= linecap) return -1;
            if (ll >= 4 && memcmp(r->buf, "MSG ", 4) == 0) {
                const char *sp = memrchr(r->buf, ' ', ll);
                size = (size_t)strtoul(sp + 1, NULL, 10);
                need += size + 2;
            }
            if (r->len >= need) {
                memcpy(line, r->buf, ll);
                line[ll] = '\0';
                memmove(r->buf, r->buf + need, r->len - need);
                r->len -= need;
                if (strcmp(line, "PING") == 0) {
                    if (raw_write(r, "PONG\r\n", 6) != 0) return -1;
                    continue;
                }
                if (strncmp(line, "-ERR", 4) == 0) {
                    fprintf(stderr, "bench raw: %s\n", line);
                    return -1;
                }
                return 0;
            }
        }
        if (r->len == sizeof r->buf) return -1;
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        r->len += (size_t)n;
    }
}

/* Wait for the line starting with `want` (skipping others, e.g. INFO, +OK). */
static int raw_expect(raw_conn *r, const char *want)
{
    char line[4096];
    for (;;) {
        if (raw_next(r, line, sizeof line) != 0) return -1;
        if (strncmp(line, want, strlen(want)) == 0) return 0;
    }
}

/* Connect to nats://host:port (no credentials: the raw floor runs against an open server). */
static int raw_open(raw_conn *r, const char *url)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof host) return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - p), p);
    snprintf(port, sizeof port, "%s", colon + 1);
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
    r->fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (r->fd < 0 || connect(r->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"echo\":false,"
                                "\"name\":\"xtask-bench-raw\"}\r\nPING\r\n";
    if (raw_expect(r, "INFO ") != 0 || raw_write(r, hello, sizeof hello - 1) != 0 ||
        raw_expect(r, "PONG") != 0)
        return -1;
    return 0;
}

static int raw_sub(raw_conn *r, const char *subject, int sid)
{
    char cmd[512];
    int n = snprintf(cmd, sizeof cmd, "SUB %s %d\r\nPING\r\n", subject, sid);
    if (raw_write(r, cmd, (size_t)n) != 0) return -1;
    return raw_expect(r, "PONG");
}

static int raw_pub(raw_conn *r, const char *subject, const char *reply, const char *body)
{
    char cmd[8192];
    size_t bl = strlen(body);
    int n = snprintf(cmd, sizeof cmd, "PUB %s %s %zu\r\n%s\r\n", subject, reply ? reply : "", bl, body);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    return raw_write(r, cmd, (size_t)n);
}

/* The reply subject of "MSG <subject> <sid> <reply> <size>". */
static int msg_reply(const char *line, char *out, size_t len)
{
    const char *t[6];
    size_t tl[6];
    int k = 0;
    for (const char *p = line; *p && k < 6;) {
        while (*p == ' ')
            p++;
        if (!*p) break;
        t[k] = p;
        while (*p && *p != ' ')
            p++;
        tl[k] = (size_t)(p - t[k]);
        k++;
    }
    if (k != 5) return -1;
    snprintf(out, len, "%.*s", (int)tl[3], t[3]);
    return 0;
}

/* Round trips from a raw requester to whatever answers `subj`, or (paired) to a raw responder on a
 * second connection served by this same thread. */
static int raw_bench(const char *url, const char *subj, const char *body, int n, int paired)
{
    raw_conn *q = calloc(1, sizeof *q), *r = paired ? calloc(1, sizeof *r) : NULL;
    double *lat = calloc((size_t)n + 50, sizeof *lat);
    char line[8192], reply_to[256];
    int rc = 1;
    if (!q || !lat || (paired && !r)) goto out;
    if (raw_open(q, url) != 0 || raw_sub(q, "_RAW_INBOX.bench.*", 1) != 0) goto out;
    if (paired && (raw_open(r, url) != 0 || raw_sub(r, subj, 1) != 0)) goto out;
    double t_all = 0;
    for (int i = -50; i < n; i++) { /* 50 warm-up round trips */
        char inbox[64];
        snprintf(inbox, sizeof inbox, "_RAW_INBOX.bench.%d", i < 0 ? -i : i);
        if (i == 0) t_all = now_us();
        double t0 = now_us();
        if (raw_pub(q, subj, inbox, body) != 0) goto out;
        if (paired) {
            if (raw_next(r, line, sizeof line) != 0 || strncmp(line, "MSG ", 4) != 0 ||
                msg_reply(line, reply_to, sizeof reply_to) != 0)
                goto out;
            if (raw_pub(r, reply_to, NULL, "{\"ok\":true}") != 0) goto out;
        }
        for (;;) {
            if (raw_next(q, line, sizeof line) != 0) goto out;
            if (strncmp(line, "MSG ", 4) == 0 && strstr(line, inbox)) break;
        }
        if (i >= 0) lat[i] = now_us() - t0;
    }
    report(paired ? "rawpair" : "raw", lat, n, now_us() - t_all);
    rc = 0;
out:
    if (rc) fprintf(stderr, "bench raw: failed (%s)\n", url);
    if (q && q->fd > 0) close(q->fd);
    if (r && r->fd > 0) close(r->fd);
    free(q);
    free(r);
    free(lat);
    return rc;
}

/* A positive count from the command line, or exit 2 naming it. */
static int count_arg(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 10000000) {
        fprintf(stderr, "bench_client: '%s' is not a positive count\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int rc = 2;
    int nats_default = argc >= 3 && strcmp(argv[2], "--nats-default") == 0;
    if (nats_default) {
        argv[2] = argv[1];
        argv++;
        argc--;
    }
    if (argc >= 6 && strcmp(argv[1], "req") == 0)
        rc = do_req(argv[2], argv[3], argv[4], count_arg(argv[5]), argc >= 7 ? count_arg(argv[6]) : 1,
                    nats_default);
    else if (argc == 6 && strcmp(argv[1], "raw") == 0)
        rc = raw_bench(argv[2], argv[3], argv[4], count_arg(argv[5]), 0);
    else if (argc == 4 && strcmp(argv[1], "rawpair") == 0)
        rc = raw_bench(argv[2], "bench.rawpair", "{}", count_arg(argv[3]), 1);
    else if (argc == 7 && strcmp(argv[1], "gather") == 0)
        rc = do_gather(argv[2], argv[3], argv[4], count_arg(argv[5]), count_arg(argv[6]));
    else if (argc == 3 && strcmp(argv[1], "spawn") == 0)
        rc = do_spawn(count_arg(argv[2]));
    else
        fprintf(stderr, "usage: see the header of bench_client.c\n");
    nats_Close();
    return rc;
}
