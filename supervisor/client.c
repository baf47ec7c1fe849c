/*
 * client: the CLI side of the control socket (`status`, `start`, `logs -f`, ...). Plain blocking
 * I/O with a receive timeout: this runs in the short-lived CLI process, never in the supervisor.
 */
#include "sv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int client_request(const char *sock, const char *request, int64_t timeout_ms)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "xtask-supervisor: socket path too long: %s\n", sock);
        return 2;
    }
    memcpy(sa.sun_path, sock, strlen(sock));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        if (e == EACCES || e == EPERM)
            fprintf(stderr, "xtask-supervisor: %s: %s (run as the supervisor's user)\n", sock, strerror(e));
        else
            fprintf(stderr, "xtask-supervisor: not running (no answer on %s)\n", sock);
        return 3;
    }
    if (timeout_ms >= 0) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        if (timeout_ms == 0) tv.tv_usec = 1000; /* 0 would mean no timeout */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    char line[SV_CTL_REQ_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", request);
    if (n < 0 || (size_t)n >= sizeof(line) || write_all(fd, line, (size_t)n) < 0) {
        fprintf(stderr, "xtask-supervisor: cannot send the request on %s\n", sock);
        close(fd);
        return 1;
    }
    /* first line: "ok" or "error <message>"; then the body, printed as it comes */
    char buf[16384], first[1024];
    size_t flen = 0;
    int got_first = 0, rc = 1, unhealthy = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN && !got_first) {
            rc = 4; /* the caller says what was waited for */
            break;
        }
        if (r < 0) {
            fprintf(stderr, "xtask-supervisor: %s: %s\n", sock,
                    errno == EAGAIN ? "no answer (timeout)" : strerror(errno));
            rc = 1;
            break;
        }
        if (r == 0) break;
        size_t off = 0;
        if (!got_first) {
            while (off < (size_t)r && buf[off] != '\n') {
                if (flen < sizeof(first) - 1) first[flen++] = buf[off];
                off++;
            }
            if (off == (size_t)r) continue;
            off++;
            first[flen] = '\0';
            got_first = 1;
            if (strcmp(first, "ok") == 0) {
                rc = 0;
            } else if (strncmp(first, "unhealthy ", 10) == 0) {
                /* `status check`: the status still goes to stdout, the verdict to stderr + exit 1 */
                fprintf(stderr, "xtask-supervisor: not ready: %s\n", first + 10);
                rc = 0;
                unhealthy = 1;
            } else {
                fprintf(stderr, "xtask-supervisor: %s\n",
                        strncmp(first, "error ", 6) == 0 ? first + 6 : first);
                rc = 1;
            }
        }
        if (off < (size_t)r && write_all(rc == 0 ? 1 : 2, buf + off, (size_t)r - off) < 0) break;
    }
    if (!got_first && rc != 0 && rc != 4 && flen == 0)
        fprintf(stderr, "xtask-supervisor: empty answer on %s\n", sock);
    close(fd);
    return got_first ? (rc == 0 && unhealthy ? 1 : rc) : rc == 4 ? 4 : 1;
}
