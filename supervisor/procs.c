/*
 * procs: find the processes the supervisor must not leave behind.
 *
 * As a child subreaper (or PID 1), every orphan of a service's tree is reparented to us: grandchildren
 * whose parent died and `setsid` escapees that left the service's process group. At shutdown, after
 * every service's group is gone, whatever still has us as parent is one of those; we find them in
 * the kernel's list of our children (/proc/<us>/task/<us>/children), or where the kernel lacks it by
 * scanning /proc/<pid>/stat for PPid == us. cgroups would also catch processes that double-forked
 * out of our tree before we became their parent, but they need a writable cgroup v2 hierarchy, which
 * Fly machines and unprivileged containers do not always give; /proc works everywhere and, as a
 * subreaper, sees every escapee once its parent has gone.
 *
 * A service that is merely restarted must not find what its previous run left behind either (an
 * escapee still holding the port, say). Every service runs with XTASK_SERVICE=<name> in its
 * environment (as supervisord sets SUPERVISOR_PROCESS_NAME), which its descendants inherit; before a
 * service starts again, our children that carry its name are its leftovers (procs_leftovers).
 */
#include "sv.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parent pid of `pid` from /proc/<pid>/stat, or -1. */
static pid_t proc_ppid(const char *pid)
{
    char path[64], buf[512];
    if (snprintf(path, sizeof(path), "/proc/%s/stat", pid) >= (int)sizeof(path)) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold ')' and spaces, so take the last ')' */
    char *rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ' || rp[2] == '\0' || rp[3] != ' ') return -1;
    return (pid_t)strtol(rp + 4, NULL, 10);
}

/* The kernel's own list of `parent`'s children (CONFIG_PROC_CHILDREN: one read instead of a /proc
 * scan; the supervisor is single-threaded, so its main thread is the parent of them all). Returns
 * the count, or -1 when the kernel has no such file. */
static int children_file(pid_t parent, pid_t *out, int max)
{
    char path[80], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
    int fd = open(path, O_RDONLY | O_CLOEXEC), n = 0;
    if (fd < 0) return -1;
    long cur = -1;
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                cur = (cur < 0 ? 0 : cur) * 10 + (buf[i] - '0');
            } else {
                if (cur > 0 && n < max) out[n++] = (pid_t)cur;
                cur = -1;
            }
        }
    if (cur > 0 && n < max) out[n++] = (pid_t)cur;
    close(fd);
    return n;
}

int procs_children(pid_t parent, pid_t *out, int max)
{
    int nf = children_file(parent, out, max);
    if (nf >= 0) return nf;
    DIR *d = opendir("/proc");
    int n = 0;
    if (d == NULL) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        if (proc_ppid(e->d_name) == parent) out[n++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return n;
}

void procs_comm(pid_t pid, char *out, size_t len)
{
    char path[64];
    snprintf(out, len, "?");
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, out, len - 1);
    close(fd);
    if (n <= 0) {
        snprintf(out, len, "?");
        return;
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* Whether /proc/<pid>/environ holds the entry `entry` ("KEY=value", under 255 bytes) exactly. The
 * file is a list of NUL-terminated entries; it is read in blocks, keeping enough of each block's end
 * to find an entry that straddles two. A zombie's or another user's environment reads as empty. */
static int proc_env_has(pid_t pid, const char *entry)
{
    char path[64], buf[4096 + 256], needle[256];
    size_t el = strlen(entry), keep = 1;
    if (el + 2 > sizeof(needle)) return 0;
    needle[0] = '\0';
    memcpy(needle + 1, entry, el);
    needle[el + 1] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;
    if (fd < 0) return 0;
    buf[0] = '\0'; /* the first entry has no NUL before it */
    for (;;) {
        ssize_t n = read(fd, buf + keep, 4096);
        if (n <= 0) break;
        size_t len = keep + (size_t)n;
        if (memmem(buf, len, needle, el + 2) != NULL) {
            found = 1;
            break;
        }
        keep = len < el + 1 ? len : el + 1;
        memmove(buf, buf + len - keep, keep);
    }
    close(fd);
    return found;
}

int procs_leftovers(pid_t self, const char *name, pid_t *out, int max)
{
    char entry[256];
    pid_t kids[256];
    int n = 0;
    if (snprintf(entry, sizeof(entry), "%s=%s", SV_SERVICE_ENV, name) >= (int)sizeof(entry)) return 0;
    int nk = procs_children(self, kids, 256);
    for (int i = 0; i < nk && n < max; i++)
        if (proc_env_has(kids[i], entry)) out[n++] = kids[i];
    return n;
}
