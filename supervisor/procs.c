/*
 * procs: find the processes the supervisor must not leave behind.
 *
 * As a child subreaper (or PID 1), every orphan of a service's tree is reparented to us: grandchildren
 * whose parent died and `setsid` escapees that left the service's process group. At shutdown, after
 * every service's group is gone, whatever still has us as parent is one of those; we find them by
 * scanning /proc/<pid>/stat for PPid == us. cgroups would also catch processes that double-forked
 * out of our tree before we became their parent, but they need a writable cgroup v2 hierarchy, which
 * Fly machines and unprivileged containers do not always give; /proc works everywhere and, as a
 * subreaper, sees every escapee once its parent has gone.
 */
#include "sv.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parent pid of `pid` from /proc/<pid>/stat, or -1. */
static pid_t proc_ppid(const char *pid)
{
    char path[64], buf[512];
    size_t pl = strlen(pid);
    if (pl > 20) return -1;
    memcpy(path, "/proc/", 6);
    memcpy(path + 6, pid, pl);
    memcpy(path + 6 + pl, "/stat", 6);
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

int procs_children(pid_t parent, pid_t *out, int max)
{
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
