/*
 * holder: who listens on a readiness probe's port (never a false READY).
 *
 * A tcp/http readiness probe only says that *something* answers. When an old nats-server (or any
 * stranger) still holds the port, the new service's probe passes at once while the service itself
 * crash-loops on the taken port. So a passing ready probe is accepted only when the listening socket
 * belongs to the service's process tree:
 *
 *   1. the listeners on the probe's address come from the kernel (NETLINK_SOCK_DIAG, listening sockets
 *      only: one request, answered in microseconds, however many connections the host has; reading
 *      /proc/net/tcp walks every socket and took about 200 ms on a busy host);
 *   2. fast path, in the loop: the service's main process has one of them open (/proc/<pid>/fd, at
 *      most HOLDER_FAST_FDS entries);
 *   3. otherwise a short-lived child (fork, no exec) walks /proc: the service's session and
 *      descendants first, then everyone, and writes one line on a pipe: "own", "held <pid> <comm>"
 *      or "none". The loop never waits for it; the probe's timeout bounds it.
 * A target that no local socket listens on (another host) is not checked.
 */
#include "sv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOLDER_FAST_FDS 512   /* fds of the main process looked at in the loop */
#define HOLDER_MAX_PROCS 8192 /* processes the child considers */

/* Does listening address (family, 16 bytes) serve the target ss? Same address, the wildcard, or
 * (an IPv6 socket) the IPv4-mapped form of an IPv4 target. */
static int addr_serves(int family, const uint32_t *src, const struct sockaddr_storage *ss)
{
    static const uint32_t zero[4] = {0, 0, 0, 0};
    if (family == AF_INET) {
        if (ss->ss_family != AF_INET) return 0;
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return src[0] == 0 || src[0] == a->sin_addr.s_addr;
    }
    if (memcmp(src, zero, 16) == 0) return 1;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        return memcmp(src, &a->sin6_addr, 16) == 0;
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    unsigned char m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(m + 12, &a->sin_addr, 4);
    return memcmp(src, m, 16) == 0;
}

static uint16_t target_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) return ((const struct sockaddr_in *)ss)->sin_port;
    return ((const struct sockaddr_in6 *)ss)->sin6_port;
}

/* Is the target one of this host's addresses? A wildcard listener serves it only then (a probe of
 * another host's port 4222 says nothing about a local 0.0.0.0:4222). bind() to it tells, without
 * listing the interfaces. */
static int addr_is_local(const struct sockaddr_storage *ss)
{
    struct sockaddr_storage a = *ss;
    socklen_t len;
    if (a.ss_family == AF_INET) {
        ((struct sockaddr_in *)&a)->sin_port = 0;
        len = sizeof(struct sockaddr_in);
    } else {
        ((struct sockaddr_in6 *)&a)->sin6_port = 0;
        len = sizeof(struct sockaddr_in6);
    }
    int fd = socket(a.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int local = fd >= 0 && bind(fd, (struct sockaddr *)&a, len) == 0;
    if (fd >= 0) close(fd);
    return local;
}

/* One SOCK_DIAG dump of the listening TCP sockets of `family`; appends matches. -1 on failure. */
static int diag_family(int nl, int family, const struct sockaddr_storage *ss, unsigned long *inodes, int max,
                       int *n, unsigned *uid, int *local)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = (unsigned)family;
    req.r.sdiag_family = (unsigned char)family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = 1u << TCP_LISTEN;
    req.r.id.idiag_sport = target_port(ss);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -1;
    /* the kernel fills the dump in recv: it never waits for anyone */
    long buf[8192 / sizeof(long)];
    for (;;) {
        ssize_t r = recv(nl, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        size_t len = (size_t)r;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) return -1;
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (m->id.idiag_sport != target_port(ss) || m->idiag_inode == 0) continue;
            if (!addr_serves(m->idiag_family, m->id.idiag_src, ss)) continue;
            if (*local < 0) *local = addr_is_local(ss);
            if (!*local) continue; /* only a wildcard can match a non-local target: not this one */
            if (*n < max) inodes[(*n)++] = m->idiag_inode;
            *uid = m->idiag_uid;
        }
    }
}

int holder_listeners(const struct sockaddr_storage *ss, unsigned long *inodes, int max, unsigned *uid)
{
    int n = 0, rc = -1, local = -1;
    *uid = 0;
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) return 0;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) return -1;
    /* an IPv4 target is also served by an IPv6 wildcard socket (dual stack) */
    if ((ss->ss_family == AF_INET6 || diag_family(nl, AF_INET, ss, inodes, max, &n, uid, &local) == 0) &&
        diag_family(nl, AF_INET6, ss, inodes, max, &n, uid, &local) == 0)
        rc = n;
    close(nl);
    return rc;
}

/* 1 if pid has one of the sockets open, 0 if not, -1 if unknown (unreadable, or more than max fds). */
static int fd_has(pid_t pid, const unsigned long *inodes, int n, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    int found = 0, seen = 0;
    struct dirent *e;
    while (found == 0 && (e = readdir(d)) != NULL) {
        char target[64];
        if (e->d_name[0] == '.') continue;
        if (max > 0 && ++seen > max) {
            found = -1;
            break;
        }
        ssize_t r = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
        if (r < 9 || memcmp(target, "socket:[", 8) != 0) continue;
        target[r] = '\0';
        unsigned long ino = strtoul(target + 8, NULL, 10);
        for (int i = 0; i < n; i++)
            if (ino == inodes[i]) found = 1;
    }
    closedir(d);
    return found;
}

int holder_fast(pid_t pid, const unsigned long *inodes, int n)
{
    return pid > 0 && fd_has(pid, inodes, n, HOLDER_FAST_FDS) == 1;
}

typedef struct {
    pid_t pid, sid;
    int mine;
} proc_ent;

/* pid and session of /proc/<name>: 0 or -1 */
static int proc_ent_read(const char *name, proc_ent *p)
{
    procs_info pi;
    p->pid = (pid_t)strtol(name, NULL, 10);
    p->mine = 0;
    if (procs_stat(p->pid, &pi) != 0) return -1;
    p->sid = pi.sid;
    return 0;
}

/* The child's work: which process holds one of the inodes? The line it writes on fd. */
static void holder_child(int fd, pid_t svc_pid, const char *mark_svc, const char *mark_run,
                         const unsigned long *inodes, int n)
{
    char line[128];
    proc_ent *ps = calloc(HOLDER_MAX_PROCS, sizeof(*ps));
    int np = 0;
    DIR *d = opendir("/proc");
    snprintf(line, sizeof(line), "none\n");
    if (ps != NULL && d != NULL) {
        struct dirent *e;
        while (np < HOLDER_MAX_PROCS && (e = readdir(d)) != NULL)
            if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && proc_ent_read(e->d_name, &ps[np]) == 0) np++;
        /* the service's tree: its session (it is a session leader); an escapee that left it by setsid is
         * recognised below by the run's marks in its environment */
        for (int i = 0; i < np; i++)
            ps[i].mine = svc_pid > 0 && (ps[i].pid == svc_pid || ps[i].sid == svc_pid);
        pid_t holder = 0;
        int own = 0;
        for (int k = 0; k < 2 && !own && holder == 0; k++)
            for (int i = 0; i < np && !own && holder == 0; i++)
                if (ps[i].mine == (k == 0) && fd_has(ps[i].pid, inodes, n, 0) == 1) {
                    if (k == 0)
                        own = 1;
                    else
                        holder = ps[i].pid;
                }
        /* an escapee of this very run (setsid, reparented) still carries the run's marks */
        if (svc_pid > 0 && holder > 0 && procs_env_has(holder, mark_svc) && procs_env_has(holder, mark_run))
            own = 1;
        if (own) {
            snprintf(line, sizeof(line), "own\n");
        } else if (holder > 0) {
            char comm[32];
            procs_comm(holder, comm, sizeof(comm));
            snprintf(line, sizeof(line), "held %d %s\n", (int)holder, comm);
        }
    }
    if (d != NULL) closedir(d);
    free(ps);
    size_t len = strlen(line);
    if (write(fd, line, len) != (ssize_t)len) _exit(1);
    _exit(0);
}

pid_t holder_start(sv_ctx *sv, const svc *s, pid_t svc_pid, const unsigned long *inodes, int n, int *rfd)
{
    int p[2];
    char mark_svc[sizeof(SV_SERVICE_ENV) + MF_NAME_MAX + 1], mark_run[sizeof(SV_RUN_ENV) + 48];
    snprintf(mark_svc, sizeof(mark_svc), "%s=%s", SV_SERVICE_ENV, s->name);
    snprintf(mark_run, sizeof(mark_run), "%s=%s", SV_RUN_ENV, sv->run_id);
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        /* Reading another user's /proc/<pid>/fd needs CAP_SYS_PTRACE, which a container's root
         * usually lacks (podman, Docker, Fly): a service dropped to its user would look like a
         * stranger. Its own credentials see its own processes; a listener of another uid stays
         * unseen and is reported with its uid (never taken for the service's). */
        const mf_ident *id = &s->def->ident;
        if (id->set && geteuid() == 0 && id->uid != 0 &&
            (setgroups(id->ngroups, id->groups) < 0 || setgid(id->gid) < 0 || setuid(id->uid) < 0))
            _exit(1);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* after the credential change, which clears it */
        if (getppid() != sv->self) _exit(1);
        holder_child(p[1], svc_pid, mark_svc, mark_run, inodes, n);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *rfd = p[0];
    return pid;
}
