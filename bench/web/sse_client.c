/*
 * sse_client: N Server-Sent-Events clients (or N NATS subscribers, the anchor) on one epoll loop,
 * for the fan-out benchmark.
 *
 *   xtask-web-bench-sse HOST PORT PATH N SECONDS [COOKIE]
 *   xtask-web-bench-sse HOST PORT nats:SUBJECT N SECONDS       (N plain nats-server subscribers)
 *
 * Every event whose data carries "t":<unix ns> (stamped by the publisher just before it publishes
 * on NATS) yields one publish-to-client latency sample, taken twice:
 *   - arrival: when the bytes reached the client's socket (the kernel's receive timestamp,
 *     SO_TIMESTAMPNS): what a packet capture at the client would show, independent of how late this
 *     one thread, emulating N browsers, gets round to reading that socket;
 *   - read: when this process read and parsed it (arrival plus this client's own queueing).
 * Prints one JSON line:
 * {"clients":N,"connected":n,"samples":k,"p50_ms":..,"p99_ms":..,"max_ms":..,
 *  "read_p50_ms":..,"read_p99_ms":..,"read_max_ms":..,"errors":e,
 *  "first_p50_ms":..,"last_p50_ms":..,"client_cpu_s":..}
 * p50/p99/max are the arrival latencies. first/last: per event (by its "seq"), the arrival latency
 * of the first and of the last client; their medians split the latency into the way to the front
 * and the fan-out's spread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAX_SEQ 200000

typedef struct {
    int fd;
    size_t len;
    int connected;
    char buf[BUF];
} conn;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
    if (!n) return -1;
    size_t i = (size_t)((double)n * q);
    return (double)v[i < n ? i : n - 1] / 1e6;
}

/* The kernel's receive timestamp of what recvmsg returned (the newest segment), or 0. */
static uint64_t cmsg_ts(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH|nats:SUBJECT N SECONDS [COOKIE]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3], *cookie = argc > 6 ? argv[6] : "";
    int port = (int)strtol(argv[2], NULL, 10), n = (int)strtol(argv[4], NULL, 10);
    int nats = strncmp(path, "nats:", 5) == 0;
    const char *sep = nats ? "\r\n" : "\n\n"; /* one NATS protocol line / one SSE event */
    double secs = strtod(argv[5], NULL);
    size_t cap = 4000000, ns = 0;
    uint64_t *samples = malloc(cap * sizeof(*samples)), *rsamples = malloc(cap * sizeof(*rsamples));
    uint64_t *ev_first = calloc(MAX_SEQ, sizeof(*ev_first)), *ev_last = calloc(MAX_SEQ, sizeof(*ev_last));
    conn *cs = calloc((size_t)n, sizeof(*cs));
    int ep = epoll_create1(0), errors = 0, connected = 0, one = 1;
    char req[2048];
    int rl = nats ? snprintf(req, sizeof(req),
                             "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"sse-bench\"}\r\n"
                             "SUB %s 1\r\nPING\r\n",
                             path + 5)
                  : snprintf(req, sizeof(req),
                             "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n", path,
                             host, *cookie ? "Cookie: " : "", cookie, *cookie ? "\r\n" : "");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (!samples || !rsamples || !cs || !ev_first || !ev_last || ep < 0) return 1;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0 ||
            connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write(fd, req, (size_t)rl) != rl) {
            errors++;
            if (fd >= 0) close(fd);
            cs[i].fd = -1;
            continue;
        }
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), last_data = 0;
    /* SSE_SPIN_US: after data, poll without sleeping for this long before blocking in epoll_wait
     * again (0 = always block). A fan-out's writes arrive a few microseconds apart: a client that
     * sleeps between them makes every write pay a wake-up (and itself a context switch). */
    const char *spin_env = getenv("SSE_SPIN_US");
    uint64_t spin_ns = spin_env ? (uint64_t)strtoull(spin_env, NULL, 10) * 1000u : 0;
    struct epoll_event evs[256];
    char cbuf[CMSG_SPACE(sizeof(struct timespec)) * 2];
    while (now_ns() < end) {
        int k = epoll_wait(ep, evs, 256, spin_ns && now_ns() - last_data < spin_ns ? 0 : 100);
        if (k > 0) last_data = now_ns();
        for (int e = 0; e < k; e++) {
            conn *c = &cs[evs[e].data.u32];
            struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = BUF - 1 - c->len};
            struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
            ssize_t r = recvmsg(c->fd, &mh, 0);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                continue;
            }
            uint64_t t_now = now_ns(), t_arr = cmsg_ts(&mh);
            if (!t_arr || t_arr > t_now) t_arr = t_now;
            c->len += (size_t)r;
            c->buf[c->len] = 0;
            if (!c->connected && strstr(c->buf, nats ? "PONG\r\n" : "\r\n\r\n")) {
                c->connected = 1;
                connected++;
            }
            if (nats && strstr(c->buf, "PING\r\n") && write(c->fd, "PONG\r\n", 6) != 6) errors++;
            /* consume complete events (SSE) or lines (NATS); keep the tail */
            char *p = c->buf, *last = NULL, *q;
            while ((q = strstr(p, sep)) != NULL) {
                *q = 0;
                char *t = strstr(p, "\"t\":");
                if (t && ns < cap) {
                    uint64_t ts = strtoull(t + 4, NULL, 10);
                    if (ts > start && t_arr >= ts) {
                        uint64_t d = t_arr - ts;
                        rsamples[ns] = t_now - ts;
                        samples[ns++] = d;
                        char *sq = strstr(p, "\"seq\":");
                        unsigned long long seq = sq ? strtoull(sq + 6, NULL, 10) : MAX_SEQ;
                        if (seq < MAX_SEQ) {
                            if (!ev_first[seq] || d < ev_first[seq]) ev_first[seq] = d;
                            if (d > ev_last[seq]) ev_last[seq] = d;
                        }
                    }
                }
                p = q + 2;
                last = p;
            }
            if (last) {
                c->len -= (size_t)(last - c->buf);
                memmove(c->buf, last, c->len);
            } else if (c->len >= BUF - 1) {
                c->len = 0; /* an event larger than the buffer: drop it */
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                   ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    qsort(samples, ns, sizeof(*samples), cmp_u64);
    qsort(rsamples, ns, sizeof(*rsamples), cmp_u64);
    size_t nf = 0;
    for (size_t i = 0; i < MAX_SEQ; i++)
        if (ev_first[i]) {
            ev_first[nf] = ev_first[i];
            ev_last[nf++] = ev_last[i];
        }
    qsort(ev_first, nf, sizeof(*ev_first), cmp_u64);
    qsort(ev_last, nf, sizeof(*ev_last), cmp_u64);
    printf("{\"clients\":%d,\"connected\":%d,\"samples\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"read_p50_ms\":%.3f,\"read_p99_ms\":%.3f,\"read_max_ms\":%.3f,"
           "\"errors\":%d,\"first_p50_ms\":%.3f,\"last_p50_ms\":%.3f,\"client_cpu_s\":%.2f}\n",
           n, connected, ns, pct(samples, ns, 0.5), pct(samples, ns, 0.99), pct(samples, ns, 1),
           pct(rsamples, ns, 0.5), pct(rsamples, ns, 0.99), pct(rsamples, ns, 1), errors,
           pct(ev_first, nf, 0.5), pct(ev_last, nf, 0.5), cpu_s);
    free(ev_first);
    free(ev_last);
    for (int i = 0; i < n; i++)
        if (cs[i].fd >= 0) close(cs[i].fd);
    free(cs);
    free(samples);
    free(rsamples);
    return 0;
}
