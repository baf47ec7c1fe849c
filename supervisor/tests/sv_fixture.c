/*
 * sv_fixture: one small program for the supervisor's integration tests. Each argument is a step,
 * run in order:
 *   listen:PORT        listen on 127.0.0.1:PORT (stays open)
 *   listen-after:MS:PORT  listen only after MS milliseconds (in the background of the main loop)
 *   print:TEXT         print TEXT and a newline on stdout
 *   stderr:TEXT        print TEXT on stderr
 *   sleep:MS           sleep
 *   exit:CODE          exit now
 *   touch:FILE         create FILE (also: the pid is written into it)
 *   append:FILE:TEXT   append TEXT and a newline to FILE
 *   ignore-term        ignore SIGTERM and SIGINT (to test SIGKILL escalation)
 *   term-exit:CODE     on SIGTERM, exit with CODE
 *   fork-sleep:MS      fork a child (same process group) that sleeps MS, writes its pid to stdout
 *   setsid-sleep:MS    fork a child that calls setsid() and sleeps MS (an escapee)
 *   setsid-listen:PORT an escapee that listens on 127.0.0.1:PORT ("escapee-listening PID"; exits 3
 *                      with "listen PORT: ..." on stderr if the port is taken) and stays until killed
 *   orphan-sleep:MS    double-fork: a grandchild that sleeps MS; the middle process exits at once
 *   zombies:N          fork N children that exit at once and are never waited for by us
 *   noisy:N            print N lines of 100 bytes as fast as possible, then a final "noisy done" line
 *   longline:N         print one line of N bytes
 *   env:NAME           print NAME=value
 *   fds                print "fds 0 1 2" (the open descriptors, without the one used to list them)
 *   sigmask            print the SigBlk and SigIgn lines of /proc/self/status
 *   uid                print "uid N gid N"
 *   groups             print "groups G G ..." (the supplementary groups, getgroups order)
 *   stamp:FILE         append CLOCK_MONOTONIC in ns (when this step ran) to FILE (benchmarks)
 *   sdnotify:TEXT      send TEXT ('|' for newlines) to $NOTIFY_SOCKET as one datagram (sd_notify)
 *   sdwatchdog:MS:N    send WATCHDOG=1 N times, MS apart
 *   notify:FD          write a newline to FD if it is a pipe (s6's readiness notification; nothing
 *                      when FD is not open: the same command runs under other supervisors)
 *   connect:PORT       exit 0 if 127.0.0.1:PORT accepts a connection, else 1 (a check program)
 *   pid                print "pid N"
 *   forever            sleep until killed
 * Lines written with `print` are flushed at once (stdout unbuffered).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int term_code = -1;
static int lfds[16];
static int nlfds;

/* A whole number from a fixture argument; a typo in a test's command line stops the fixture loudly. */
static long num(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, "sv_fixture: '%s' is not a number\n", s);
        exit(2);
    }
    return v;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(term_code);
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int do_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, "listen %d: %s\n", port, strerror(errno));
        exit(3);
    }
    if (nlfds < 16) lfds[nlfds++] = fd;
    return fd;
}

/* Fork a child that leaves our session and process group (setsid); return its pid in the parent
 * (0 in the child) only once it has left. An escapee is by definition outside the group: if the
 * parent went on (and exited) before the child's setsid(), the supervisor's SIGKILL to the group of
 * an exited main process would still reach the child, and the test would see a process killed that
 * had not escaped yet. Real daemonizers double-fork for the same reason. */
static pid_t escape(void)
{
    int pfd[2];
    char c;
    if (pipe(pfd) < 0) exit(4);
    pid_t p = fork();
    if (p < 0) exit(4);
    if (p == 0) {
        close(pfd[0]);
        if (setsid() < 0) _exit(4);
        close(pfd[1]); /* the parent's read returns 0: we have left */
        return 0;
    }
    close(pfd[1]);
    while (read(pfd[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(pfd[0]);
    return p;
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET ('@' = the abstract namespace). */
static void sd_send(const char *text)
{
    const char *e = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[8192];
    size_t n = strlen(text), el = e ? strlen(e) : 0;
    if (e == NULL || el == 0 || el >= sizeof(sa.sun_path) || n >= sizeof(msg)) {
        fprintf(stderr, "sdnotify: no usable NOTIFY_SOCKET\n");
        exit(5);
    }
    memcpy(sa.sun_path, e, el);
    if (e[0] == '@') sa.sun_path[0] = '\0';
    for (size_t i = 0; i < n; i++)
        msg[i] = text[i] == '|' ? '\n' : text[i];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, n, 0, (struct sockaddr *)&sa,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + el)) != (ssize_t)n) {
        fprintf(stderr, "sdnotify: %s\n", strerror(errno));
        exit(5);
    }
    close(fd);
}

static void sleeper(long ms)
{
    signal(SIGTERM, SIG_DFL);
    msleep(ms);
    _exit(0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strncmp(a, "listen:", 7) == 0) {
            do_listen((int)num(a + 7));
        } else if (strncmp(a, "listen-after:", 13) == 0) {
            long ms = strtol(a + 13, &a, 10);
            msleep(ms);
            do_listen((int)num(a + 1));
        } else if (strncmp(a, "print:", 6) == 0) {
            printf("%s\n", a + 6);
        } else if (strncmp(a, "stderr:", 7) == 0) {
            fprintf(stderr, "%s\n", a + 7);
        } else if (strncmp(a, "sleep:", 6) == 0) {
            msleep(num(a + 6));
        } else if (strncmp(a, "exit:", 5) == 0) {
            exit((int)num(a + 5));
        } else if (strncmp(a, "touch:", 6) == 0) {
            FILE *f = fopen(a + 6, "w");
            if (f) {
                fprintf(f, "%d\n", (int)getpid());
                fclose(f);
            }
        } else if (strncmp(a, "append:", 7) == 0) {
            char *sep = strchr(a + 7, ':');
            if (sep) {
                *sep = '\0';
                FILE *f = fopen(a + 7, "a");
                if (f) {
                    fprintf(f, "%s\n", sep + 1);
                    fclose(f);
                }
            }
        } else if (strcmp(a, "ignore-term") == 0) {
            signal(SIGTERM, SIG_IGN);
            signal(SIGINT, SIG_IGN);
        } else if (strncmp(a, "term-exit:", 10) == 0) {
            term_code = (int)num(a + 10);
            signal(SIGTERM, on_term);
        } else if (strncmp(a, "fork-sleep:", 11) == 0) {
            pid_t p = fork();
            if (p == 0) sleeper(num(a + 11));
            printf("child %d\n", (int)p);
        } else if (strncmp(a, "setsid-sleep:", 13) == 0) {
            pid_t p = escape();
            if (p == 0) {
                signal(SIGTERM, SIG_IGN); /* an escapee that also ignores polite requests */
                msleep(num(a + 13));
                _exit(0);
            }
            printf("escapee %d\n", (int)p);
        } else if (strncmp(a, "setsid-listen:", 14) == 0) {
            pid_t p = escape();
            if (p == 0) {
                signal(SIGTERM, SIG_IGN);
                do_listen((int)num(a + 14));
                printf("escapee-listening %d\n", (int)getpid());
                for (;;)
                    pause();
            }
            printf("escapee %d\n", (int)p);
        } else if (strncmp(a, "orphan-sleep:", 13) == 0) {
            int pfd[2];
            if (pipe(pfd) < 0) exit(4);
            pid_t p = fork();
            if (p == 0) {
                pid_t g = fork();
                if (g == 0) {
                    close(pfd[0]);
                    pid_t me = getpid();
                    if (write(pfd[1], &me, sizeof(me)) < 0) _exit(1);
                    close(pfd[1]);
                    sleeper(num(a + 13));
                }
                _exit(0);
            }
            pid_t g = 0;
            close(pfd[1]);
            if (read(pfd[0], &g, sizeof(g)) < 0) g = 0;
            close(pfd[0]);
            waitpid(p, NULL, 0);
            printf("orphan %d\n", (int)g);
        } else if (strncmp(a, "zombies:", 8) == 0) {
            int n = (int)num(a + 8);
            for (int k = 0; k < n; k++)
                if (fork() == 0) _exit(0);
            printf("zombies %d\n", n);
        } else if (strncmp(a, "noisy:", 6) == 0) {
            long n = num(a + 6);
            char line[101];
            memset(line, 'x', 99);
            line[99] = '\n';
            line[100] = '\0';
            for (long k = 0; k < n; k++)
                if (fwrite(line, 1, 100, stdout) != 100) exit(5);
            printf("noisy done\n");
        } else if (strncmp(a, "longline:", 9) == 0) {
            long n = num(a + 9);
            for (long k = 0; k < n; k++)
                putchar('y');
            putchar('\n');
        } else if (strncmp(a, "sdnotify:", 9) == 0) {
            sd_send(a + 9);
        } else if (strncmp(a, "sdwatchdog:", 11) == 0) {
            long ms = strtol(a + 11, &a, 10), n = strtol(a + 1, NULL, 10);
            for (long k = 0; k < n; k++) {
                sd_send("WATCHDOG=1");
                msleep(ms);
            }
        } else if (strncmp(a, "notify:", 7) == 0) {
            int nfd = (int)strtol(a + 7, NULL, 10);
            struct stat st;
            if (nfd > 2 && fstat(nfd, &st) == 0 && S_ISFIFO(st.st_mode)) {
                ssize_t w = write(nfd, "\n", 1);
                (void)w;
                close(nfd);
            }
        } else if (strncmp(a, "connect:", 8) == 0) {
            int cfd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in ca = {.sin_family = AF_INET, .sin_port = htons((unsigned short)num(a + 8))};
            ca.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            exit(cfd >= 0 && connect(cfd, (struct sockaddr *)&ca, sizeof(ca)) == 0 ? 0 : 1);
        } else if (strcmp(a, "pid") == 0) {
            printf("pid %d\n", (int)getpid());
        } else if (strncmp(a, "env:", 4) == 0) {
            const char *v = getenv(a + 4);
            printf("%s=%s\n", a + 4, v ? v : "(unset)");
        } else if (strcmp(a, "fds") == 0) {
            DIR *d = opendir("/proc/self/fd");
            char out[512] = "fds";
            size_t o = 3;
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL)
                if (e->d_name[0] != '.' && (int)num(e->d_name) != dirfd(d) && o < sizeof(out) - 16)
                    o += (size_t)snprintf(out + o, sizeof(out) - o, " %s", e->d_name);
            if (d) closedir(d);
            printf("%s\n", out);
        } else if (strcmp(a, "sigmask") == 0) {
            FILE *f = fopen("/proc/self/status", "r");
            char ln[256];
            while (f && fgets(ln, sizeof(ln), f))
                if (strncmp(ln, "SigBlk:", 7) == 0 || strncmp(ln, "SigIgn:", 7) == 0) fputs(ln, stdout);
            if (f) fclose(f);
        } else if (strcmp(a, "uid") == 0) {
            printf("uid %d gid %d\n", (int)getuid(), (int)getgid());
        } else if (strcmp(a, "groups") == 0) {
            gid_t g[256];
            int n = getgroups(256, g);
            printf("groups");
            for (int k = 0; k < n; k++)
                printf(" %d", (int)g[k]);
            printf("\n");
        } else if (strncmp(a, "stamp:", 6) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            FILE *f = fopen(a + 6, "a");
            if (f) {
                fprintf(f, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
                fclose(f);
            }
        } else if (strcmp(a, "forever") == 0) {
            /* accept and close connections (probes) so the backlog never fills */
            struct pollfd pf[16];
            for (int k = 0; k < nlfds; k++)
                pf[k] = (struct pollfd){.fd = lfds[k], .events = POLLIN};
            for (;;) {
                if (nlfds == 0) {
                    pause();
                    continue;
                }
                if (poll(pf, (nfds_t)nlfds, -1) <= 0) continue;
                for (int k = 0; k < nlfds; k++)
                    if (pf[k].revents & POLLIN) {
                        int c = accept(lfds[k], NULL, NULL);
                        if (c >= 0) close(c);
                    }
            }
        } else {
            fprintf(stderr, "sv_fixture: unknown step '%s'\n", a);
            return 2;
        }
    }
    return 0;
}
