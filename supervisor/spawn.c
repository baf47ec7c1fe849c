/*
 * spawn: start one process the way every service and exec probe is started.
 *
 * fork + exec (the supervisor is small, so fork is cheap and lets the child do setsid, setgroups,
 * setgid, setuid and chdir in order). The child: a new session (so it leads its own process group
 * and the supervisor can signal the whole group), default signal dispositions and an empty mask,
 * stdin from /dev/null, every fd but 0-2 close-on-exec (close_range), then exec. An exec failure is
 * sent back as an errno over a close-on-exec pipe and the child exits 127 (not found) or 126 (any
 * other exec error), like a shell and tini.
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
#include <unistd.h>

#include "xt_conf.h"

extern char **environ;

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

/* In the child only: report errno to the parent and exit. */
static void child_fail(int errfd, int stage, int e)
{
    int msg[2] = {stage, e};
    ssize_t w = write(errfd, msg, sizeof(msg));
    (void)w;
    _exit(e == ENOENT && stage == 0 ? 127 : 126);
}

static const char *const stage_names[] = {"exec",   "setsid",         "chdir", "setgroups", "setgid",
                                          "setuid", "open /dev/null", "dup2",  "prctl"};

pid_t spawn_process(char *const *argv, char *const *env, const char *workdir, const mf_ident *id, int fd_out,
                    int fd_err, int notify_src, int notify_fd, int *exec_errno, char *err, size_t errlen)
{
    /* the names were resolved when the manifest was loaded (users.c): nothing is looked up here */
    int drop = id != NULL && id->set && geteuid() == 0;
    pid_t parent = getpid();
    int ep[2];
    *exec_errno = 0;
    if (pipe2(ep, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if (notify_src >= 0 && ep[1] == notify_fd) { /* the child's dup2 to notify_fd would clobber it */
        int moved = fcntl(ep[1], F_DUPFD_CLOEXEC, notify_fd + 1);
        if (moved < 0) {
            snprintf(err, errlen, "fcntl: %s", strerror(errno));
            close(ep[0]);
            close(ep[1]);
            return -1;
        }
        close(ep[1]);
        ep[1] = moved;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        sigset_t empty;
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &dfl, NULL); /* SIGKILL/SIGSTOP and RT signals glibc owns just fail */
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        if (setsid() < 0) child_fail(ep[1], 1, errno);
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul < 0) child_fail(ep[1], 6, errno);
        if (dup2(nul, 0) < 0 || dup2(fd_out >= 0 ? fd_out : nul, 1) < 0 ||
            dup2(fd_err >= 0 ? fd_err : nul, 2) < 0)
            child_fail(ep[1], 7, errno);
        /* everything above 2 closes at exec, including the error pipe once exec succeeds */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
            for (int fd = 3; fd < 1024; fd++)
                if (fd != ep[1] && fd != notify_src) close(fd);
        }
        /* but the readiness pipe's write end stays open as the fd the manifest names */
        if (notify_src >= 0) {
            if (notify_src != notify_fd) {
                if (dup2(notify_src, notify_fd) < 0) child_fail(ep[1], 7, errno);
            } else if (fcntl(notify_fd, F_SETFD, 0) < 0) {
                child_fail(ep[1], 7, errno);
            }
        }
        if (workdir != NULL && chdir(workdir) < 0) child_fail(ep[1], 2, errno);
        if (drop) {
            if (setgroups(id->ngroups, id->groups) < 0) child_fail(ep[1], 3, errno);
            if (setgid(id->gid) < 0) child_fail(ep[1], 4, errno);
            if (setuid(id->uid) < 0) child_fail(ep[1], 5, errno);
        }
        /* No service outlives the supervisor: SIGKILL when it dies, by any signal. Set after the
         * privilege drop (a credential change clears it), kept across exec; if the supervisor died
         * before this line, the signal will never come: go now. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(ep[1], 8, errno);
        if (getppid() != parent) _exit(126);
        /* WATCHDOG_PID is our own pid, known only here: its entry was reserved with room for it */
        for (size_t i = 0; env[i] != NULL; i++)
            if (strcmp(env[i], SV_WATCHDOG_PID_ENV) == 0)
                snprintf(env[i] + 13, sizeof(SV_WATCHDOG_PID_ENV) - 13, "%d", (int)getpid());
        environ = (char **)env;
        execvp(argv[0], argv);
        child_fail(ep[1], 0, errno);
    }
    close(ep[1]);
    /* Wait for exec (or its failure): the child runs no user code before exec, so this is as short
     * as posix_spawn's own wait for its vfork child. */
    int msg[2];
    ssize_t n;
    do
        n = read(ep[0], msg, sizeof(msg));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof(msg)) {
        *exec_errno = msg[1];
        int st = msg[0];
        if (st < 0 || st > 8) st = 0;
        if (st == 0)
            snprintf(err, errlen, "exec %s: %s", argv[0], strerror(msg[1]));
        else if (st == 2)
            snprintf(err, errlen, "chdir %s: %s", workdir, strerror(msg[1]));
        else
            snprintf(err, errlen, "%s: %s", stage_names[st], strerror(msg[1]));
    }
    return pid;
}
