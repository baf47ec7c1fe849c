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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xt_log.h"

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
        procs_info pi;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (procs_stat(pid, &pi) == 0 && pi.ppid == parent) out[n++] = pid;
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
int procs_env_has(pid_t pid, const char *entry)
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
        if (procs_env_has(kids[i], entry)) out[n++] = kids[i];
    return n;
}

/* --- what an earlier supervisor of the same manifest left behind ------------------------------ */

/* The one reader of /proc/<pid>/stat: state, parent, process group, session and start time (clock
 * ticks since boot: with the pid, a process's identity that a recycled pid never has). 0, or -1 when
 * the process is gone. */
int procs_stat(pid_t pid, procs_info *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold ')' and spaces, so take the last ')' */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0') return -1;
    p += 2;
    /* fields from 3: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
     * stime cutime cstime priority nice num_threads itrealvalue starttime (22) */
    char st = *p;
    long long f[19];
    char *end;
    p++;
    for (int k = 0; k < 19; k++) {
        f[k] = strtoll(p, &end, 10);
        if (end == p) return -1;
        p = end;
    }
    out->state = st;
    out->ppid = (pid_t)f[0];
    out->pgid = (pid_t)f[1];
    out->sid = (pid_t)f[2];
    out->start = (unsigned long long)f[18];
    return 0;
}

/* The state file: "xtask-supervisor-state 1", "run PID START", then "svc NAME PID START" for each
 * running service (its process group and session have its pid as id). Rewritten (temp + rename) at
 * every spawn, removed at a clean stop; what a killed supervisor leaves is read at the next start. */
void procs_state_save(sv_ctx *sv)
{
    char tmp[4200];
    if (sv->state_path == NULL) return;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", sv->state_path) >= (int)sizeof(tmp)) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return;
    }
    fprintf(f, "xtask-supervisor-state 1\nrun %s\n", sv->run_id);
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (s->used && s->pid > 0 && s->start_ticks != 0)
            fprintf(f, "svc %s %d %llu\n", s->name, (int)s->pid, s->start_ticks);
    }
    if (fclose(f) != 0 || rename(tmp, sv->state_path) < 0) unlink(tmp);
}

typedef struct {
    pid_t pid;
    unsigned long long start;
} procs_group;

/* Is `pid` one of what the earlier run left: it carries that run's marker in its environment, or it
 * is in the process group of one of its services (started no earlier than that group's leader, whose
 * pid, while the group lives, cannot be given to anyone else)? */
static int procs_is_left(pid_t pid, const char *marker, const procs_group *g, int ng)
{
    procs_info pi, leader;
    if (procs_stat(pid, &pi) < 0 || pi.state == 'Z') return 0;
    if (procs_env_has(pid, marker)) return 1;
    for (int i = 0; i < ng; i++) {
        if (pi.pgid != g[i].pid || pi.start < g[i].start) continue;
        /* the leader's pid now belongs to a new process: a new group, not ours */
        if (procs_stat(g[i].pid, &leader) == 0 && leader.start != g[i].start) continue;
        return 1;
    }
    return 0;
}

/* Every process left by the earlier run, at most max. */
static int procs_find_left(pid_t self, const char *marker, const procs_group *g, int ng, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    int n = 0;
    if (d == NULL) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (pid != self && procs_is_left(pid, marker, g, ng)) out[n++] = pid;
    }
    closedir(d);
    return n;
}

int procs_cleanup_previous(sv_ctx *sv, int64_t term_ms)
{
    char line[512], marker[128] = "", run[64] = "";
    procs_group g[MF_MAX_SERVICES * 2];
    int ng = 0, killed = 0;
    FILE *f = sv->state_path ? fopen(sv->state_path, "re") : NULL;
    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        int pid;
        unsigned long long start;
        if (sscanf(line, "run %63s", run) == 1) continue;
        if (ng < (int)(sizeof(g) / sizeof(g[0])) && sscanf(line, "svc %*s %d %llu", &pid, &start) == 2 &&
            pid > 1) {
            g[ng].pid = (pid_t)pid;
            g[ng].start = start;
            ng++;
        }
    }
    fclose(f);
    int opid = 0;
    unsigned long long ostart = 0;
    procs_info now;
    if (run[0] == '\0' || sscanf(run, "%d.%llu", &opid, &ostart) != 2) return 0;
    if (opid > 0 && opid != (int)sv->self && procs_stat((pid_t)opid, &now) == 0 && now.start == ostart) {
        xt_warn(
            "supervisor: the earlier supervisor of this manifest (pid %d) is still alive but does not answer "
            "on its socket; its services are left to it",
            opid);
        return 0;
    }
    snprintf(marker, sizeof(marker), "%s=%s", SV_RUN_ENV, run);
    pid_t left[256];
    int64_t deadline = sv_now_ms() + term_ms;
    int hard = 0;
    for (int round = 0;; round++) {
        int n = procs_find_left(sv->self, marker, g, ng, left, 256);
        if (n == 0) break;
        if (round == 0) {
            killed = n;
            for (int i = 0; i < n; i++) {
                char comm[32];
                procs_comm(left[i], comm, sizeof(comm));
                xt_warn(
                    "supervisor: stopping pid %d (%s), left behind by an earlier supervisor of this manifest "
                    "(pid %d)",
                    (int)left[i], comm, opid);
                kill(left[i], SIGTERM);
            }
        } else if (!hard && sv_now_ms() >= deadline) {
            hard = 1;
            xt_warn("supervisor: %d of them still running, sending SIGKILL", n);
        } else if (hard && sv_now_ms() >= deadline + 1000) {
            xt_error("supervisor: %d process(es) left by the earlier supervisor survive SIGKILL (pid %d); "
                     "starting anyway",
                     n, (int)left[0]);
            break;
        }
        for (int i = 0; hard && i < n; i++)
            kill(left[i], SIGKILL);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL); /* bounded: the whole wait is term_ms + 1 s at most */
    }
    return killed;
}
