/*
 * spawn: start one process the way every service and exec probe is started.
 *
 * vfork (CLONE_VM|CLONE_VFORK, like posix_spawn): no page tables copied, and the
 * parent resumes as soon as the child has exec'd. posix_spawn itself cannot do what the child must:
 * a new session (so it leads its own process group and the supervisor can signal the whole group),
 * setgroups/setgid/setuid, chdir and PR_SET_PDEATHSIG, in that order. The child also restores the
 * signals the supervisor inherited as ignored and empties its mask, and takes stdin from /dev/null;
 * every other fd is already close-on-exec, so it closes nothing by hand (closing every fd the
 * supervisor held made starting n services O(n^2)). A failure is written into the parent's job
 * record and the child exits 127 (not found) or 126 (any other error), like a shell and tini.
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xt_conf.h"

/* Length of the key of "K=V" (up to '='), or the whole string. */
static size_t env_keylen(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int env_set(char ***v, size_t *n, const char *kv)
{
    size_t kl = env_keylen(kv);
    for (size_t i = 0; i < *n; i++) {
        if (env_keylen((*v)[i]) == kl && strncmp((*v)[i], kv, kl) == 0) {
            char *c = strdup(kv);
            if (c == NULL) return -1;
            free((*v)[i]);
            (*v)[i] = c;
            return 0;
        }
    }
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (nv == NULL) return -1;
    *v = nv;
    if ((nv[*n] = strdup(kv)) == NULL) return -1;
    (*n)++;
    nv[*n] = NULL;
    return 0;
}

char **env_merge(char *const *base, char *const *a, char *const *b)
{
    char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    char *const *srcs[3] = {base, a, b};
    if (v == NULL) return NULL;
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; srcs[s] && srcs[s][i]; i++) {
            if (strchr(srcs[s][i], '=') == NULL) continue;
            if (env_set(&v, &n, srcs[s][i]) < 0) {
                xt_strv_free(v);
                return NULL;
            }
        }
    }
    return v;
}

/*
 * The child's part. It runs in the parent's memory (vfork: the parent waits until
 * it has exec'd or exited), so it only makes system calls and writes its own stack: no malloc, no
 * stdio, no global state, and the privilege drop by raw system calls (glibc's setuid() would try to
 * synchronise the parent's threads, whose descriptors live in this same memory).
 */
typedef struct {
    char *const *argv, *const *env;
    const char *workdir;
    const mf_ident *id;
    int drop, fd_out, fd_err, notify_src, notify_fd;
    pid_t parent;
    volatile int stage, err; /* set by a failing child, read by the parent once it resumes */
} spawn_job;

static const char *const stage_names[] = {"exec",   "setsid",         "chdir", "setgroups", "setgid",
                                          "setuid", "open /dev/null", "dup2",  "prctl"};

/* signals the supervisor inherited as ignored (exec keeps SIG_IGN): the child restores them */
static sigset_t inherited_ign;
static int spawn_ready;

/* Once, before the first spawn: which signals came ignored, and every inherited fd above 2 marked
 * close-on-exec (the supervisor opens all of its own with O_CLOEXEC/SOCK_CLOEXEC), so a child
 * closes nothing by hand. */
static void spawn_init(void)
{
    sigemptyset(&inherited_ign);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) sigaddset(&inherited_ign, sig);
    }
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) /* Linux < 5.11 */
        for (int fd = 3; fd < 1024; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0 && !(fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        }
    spawn_ready = 1;
}

_Noreturn static void child_fail(spawn_job *j, int stage, int e)
{
    j->stage = stage;
    j->err = e;
    _exit(e == ENOENT && stage == 0 ? 127 : 126);
}

/* "WATCHDOG_PID=" + our pid, into the entry reserved for it (no stdio in the child) */
static void child_put_pid(char *entry, size_t room, pid_t pid)
{
    char digits[16];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0 && n < (int)sizeof(digits));
    size_t at = sizeof("WATCHDOG_PID=") - 1;
    while (n > 0 && at + 1 < room)
        entry[at++] = digits[--n];
    entry[at] = '\0';
}

/* execvp with the PATH of the service's environment (not the supervisor's), without allocating:
 * like glibc's, a later EACCES is reported over a final ENOENT. */
static void child_exec(spawn_job *j)
{
    const char *file = j->argv[0], *path = NULL;
    if (strchr(file, '/') != NULL) {
        execve(file, j->argv, j->env);
        return;
    }
    for (size_t i = 0; j->env[i] != NULL && path == NULL; i++)
        if (strncmp(j->env[i], "PATH=", 5) == 0) path = j->env[i] + 5;
    if (path == NULL) path = "/bin:/usr/bin";
    size_t fl = strlen(file);
    int eacces = 0;
    char buf[4096];
    for (const char *p = path;; p++) {
        const char *e = strchr(p, ':');
        size_t dl = e ? (size_t)(e - p) : strlen(p);
        if (dl + 1 + fl < sizeof(buf)) {
            memcpy(buf, p, dl);
            size_t at = dl;
            if (dl > 0) buf[at++] = '/';
            memcpy(buf + at, file, fl + 1);
            execve(buf, j->argv, j->env);
            if (errno == EACCES)
                eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
                     errno != ETIMEDOUT)
                return;
        }
        if (e == NULL) break;
        p = e;
    }
    if (eacces) errno = EACCES;
}

_Noreturn static void child_main(spawn_job *j)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    /* handlers are reset by exec; only an inherited SIG_IGN would survive it */
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&inherited_ign, sig) == 1) sigaction(sig, &dfl, NULL);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    if (setsid() < 0) child_fail(j, 1, errno);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0) child_fail(j, 6, errno);
    if (dup2(nul, 0) < 0 || dup2(j->fd_out >= 0 ? j->fd_out : nul, 1) < 0 ||
        dup2(j->fd_err >= 0 ? j->fd_err : nul, 2) < 0)
        child_fail(j, 7, errno);
    /* everything above 2 is close-on-exec already (spawn_init, O_CLOEXEC everywhere); this one call
     * only covers an fd a library opened without it */
    (void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    /* but the readiness pipe's write end stays open as the fd the manifest names */
    if (j->notify_src >= 0) {
        if (j->notify_src != j->notify_fd) {
            if (dup2(j->notify_src, j->notify_fd) < 0) child_fail(j, 7, errno);
        } else if (fcntl(j->notify_fd, F_SETFD, 0) < 0) {
            child_fail(j, 7, errno);
        }
    }
    if (j->workdir != NULL && chdir(j->workdir) < 0) child_fail(j, 2, errno);
    if (j->drop) {
        if (syscall(SYS_setgroups, (size_t)j->id->ngroups, j->id->groups) < 0) child_fail(j, 3, errno);
        if (syscall(SYS_setresgid, j->id->gid, j->id->gid, j->id->gid) < 0) child_fail(j, 4, errno);
        if (syscall(SYS_setresuid, j->id->uid, j->id->uid, j->id->uid) < 0) child_fail(j, 5, errno);
    }
    /* No service outlives the supervisor: SIGKILL when it dies, by any signal. Set after the
     * privilege drop (a credential change clears it), kept across exec; if the supervisor died
     * before this line, the signal will never come: go now. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(j, 8, errno);
    if (getppid() != j->parent) _exit(126);
    /* WATCHDOG_PID is our own pid, known only here: its entry was reserved with room for it */
    for (size_t i = 0; j->env[i] != NULL; i++)
        if (strcmp(j->env[i], SV_WATCHDOG_PID_ENV) == 0)
            child_put_pid(j->env[i], sizeof(SV_WATCHDOG_PID_ENV), getpid());
    child_exec(j);
    child_fail(j, 0, errno);
}

pid_t spawn_process(char *const *argv, char *const *env, const char *workdir, const mf_ident *id, int fd_out,
                    int fd_err, int notify_src, int notify_fd, int *exec_errno, char *err, size_t errlen)
{
    /* the names were resolved when the manifest was loaded (users.c): nothing is looked up here */
    spawn_job j = {.argv = argv,
                   .env = env,
                   .workdir = workdir,
                   .id = id,
                   .drop = id != NULL && id->set && geteuid() == 0,
                   .fd_out = fd_out,
                   .fd_err = fd_err,
                   .notify_src = notify_src,
                   .notify_fd = notify_fd,
                   .parent = getpid()};
    *exec_errno = 0;
    if (!spawn_ready) spawn_init();
    /* vfork: no copy of the page tables, and the parent resumes once the child has exec'd (or
     * exited). The child only calls child_main, which never returns (sanitizers follow vfork) */
    pid_t pid = vfork();
    if (pid == 0) child_main(&j);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (j.err != 0) {
        *exec_errno = j.err;
        int st = j.stage;
        if (st < 0 || st > 8) st = 0;
        if (st == 0)
            snprintf(err, errlen, "exec %s: %s", argv[0], strerror(j.err));
        else if (st == 2)
            snprintf(err, errlen, "chdir %s: %s", workdir, strerror(j.err));
        else
            snprintf(err, errlen, "%s: %s", stage_names[st], strerror(j.err));
    }
    return pid;
}
