/*
 * run: `xtask-supervisor run`: set up, loop, stop.
 *
 * Start-up is a short list of checked steps (fail fast, exit 2 on a bad manifest, 1 on a system
 * error, nothing started in either case): manifest, secrets, subreaper, signals, output, control
 * socket, status_http, services. Then one loop until everything has stopped. Once running, nothing
 * recoverable is fatal: failures become log lines and back-off deadlines.
 *
 * Exit codes: 0 after a requested stop (SIGTERM, SIGINT, SIGQUIT) with every process gone; 1 when an
 * essential service failed (everything else is stopped first) or on a start-up system error; 2 on a
 * usage or manifest error.
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xt_conf.h"
#include "xt_log.h"

extern char **environ;

const char *sv_manifest_default(void)
{
    static char path[4096];
    const char *dir = getenv("XTASK_CONFIG_DIR");
    if (dir != NULL && *dir != '\0') {
        snprintf(path, sizeof(path), "%s/services.yaml", dir);
        return path;
    }
    return "/etc/xtask/services.yaml";
}

/* *out = a + b (malloc'd): 0, or -1 out of memory. */
static int xt_asprintf_path(char **out, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    *out = malloc(la + lb + 1);
    if (*out == NULL) return -1;
    memcpy(*out, a, la);
    memcpy(*out + la, b, lb + 1);
    return 0;
}

/* --- shutdown ------------------------------------------------------------------------------- */

static void reap_all(sv_ctx *sv)
{
    for (;;) {
        /* peek first: while the child is an unreaped zombie its pid (= its process group id)
         * cannot be reused, so killing what its group left behind cannot hit a stranger */
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0) break;
        pid_t pid = si.si_pid;
        for (size_t i = 0; i < sv->nslots; i++)
            if (sv->slots[i].used && sv->slots[i].pid == pid) kill(-pid, SIGKILL);
        int st;
        if (waitpid(pid, &st, WNOHANG) != pid) break;
        if (!svc_on_child_exit(sv, pid, st)) xt_debug("supervisor: reaped pid %d", (int)pid);
    }
}

static int has_running_dependents(sv_ctx *sv, const svc *s)
{
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *d = &sv->slots[i];
        if (!d->used || d == s || d->pid <= 0) continue;
        for (size_t k = 0; k < d->def->ndeps; k++)
            if (strcmp(d->def->deps[k].name, s->name) == 0) return 1;
    }
    return 0;
}

/* SIGKILL to every service group and every process still parented to us. */
static void sv_hurry(sv_ctx *sv)
{
    pid_t kids[256];
    sv->stopping = SV_HURRYING;
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (s->used && s->pid > 0) kill(-s->pid, SIGKILL);
    }
    int n = procs_children(sv->self, kids, 256);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    timer_arm(&sv->t_orphans, sv_now_ms() + 10);
}

void sv_stop_progress(sv_ctx *sv)
{
    pid_t kids[256];
    int any = 0;
    if (!sv->stopping || sv->done) return;
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!s->used || s->pid <= 0) continue;
        any = 1;
        /* reverse dependency order: a service stops once nothing running depends on it */
        if (s->state != SVC_STOPPING && !has_running_dependents(sv, s)) svc_request_stop(sv, s, STOP_WANTED);
    }
    if (any) return;
    /* every service is down: what is left are orphans and setsid escapees reparented to us */
    int n = procs_children(sv->self, kids, 256);
    if (n == 0) {
        sv->done = 1;
        return;
    }
    for (int i = 0; i < n; i++) {
        char comm[64];
        procs_comm(kids[i], comm, sizeof(comm));
        xt_info("supervisor: killing leftover process %d (%s)", (int)kids[i], comm);
        kill(kids[i], SIGKILL);
    }
    timer_arm(&sv->t_orphans, sv_now_ms() + 10);
}

static void on_orphans(sv_ctx *sv, void *arg)
{
    reap_all(sv);
    sv_stop_progress(sv);
}

static void on_stop_deadline(sv_ctx *sv, void *arg)
{
    if (sv->done) return;
    if (sv->stopping != SV_HURRYING) {
        xt_warn("supervisor: stop budget used up, sending SIGKILL to everything left");
        sv_hurry(sv);
        timer_arm(&sv->t_stop, sv_now_ms() + 1000);
        return;
    }
    xt_error("supervisor: processes survived SIGKILL for 1s, exiting anyway");
    sv->done = 1;
}

void sv_shutdown(sv_ctx *sv, int code, const char *why)
{
    char w[32];
    if (code > sv->exit_code) sv->exit_code = code;
    if (sv->stopping) return;
    sv->stopping = SV_STOPPING;
    sv->stop_deadline = sv_now_ms() + sv->mf->stop_timeout_ms;
    timer_arm(&sv->t_stop, sv->stop_deadline);
    xt_info("supervisor: stopping (%s) within %s", why,
            xt_duration_format(sv->mf->stop_timeout_ms, w, sizeof(w)));
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!s->used) continue;
        s->want = 0;
        if (s->pid <= 0 && (s->state == SVC_WAITING || s->state == SVC_BACKOFF))
            svc_set_state(sv, s, SVC_STOPPED);
    }
    sv_stop_progress(sv);
}

/* --- manifests and environment -------------------------------------------------------------- */

/* Secret values are wiped before they are freed. */
static void secrets_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        explicit_bzero(v[i], strlen(v[i]));
    xt_strv_free(v);
}

/* The services' common environment (ours, then the manifest's env:) and, apart, the secrets' values.
 * A variable of ours that has a secret's name is left out (`fly secrets` values reach the supervisor
 * in its environment too): a secret reaches only the services that name it (svc.c). */
static int build_env(manifest *m, char ***out, char ***secrets_out, char *err, size_t errlen)
{
    char **secrets = NULL;
    if (m->nsecrets > 0) {
        if ((secrets = calloc(1, sizeof(char *))) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (manifest_secrets_load(m, &secrets, err, errlen) < 0) {
            secrets_free(secrets);
            return -1;
        }
    }
    size_t n = xt_strv_len(environ), k = 0;
    char **base = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; base != NULL && i < n; i++) {
        size_t kl = strcspn(environ[i], "=");
        int secret = 0;
        for (size_t j = 0; j < m->nsecrets && !secret; j++)
            secret = strlen(m->secrets[j].name) == kl && strncmp(m->secrets[j].name, environ[i], kl) == 0;
        if (!secret) base[k++] = environ[i];
    }
    *out = base != NULL ? env_merge(base, m->env, NULL) : NULL;
    free(base);
    if (*out == NULL) {
        secrets_free(secrets);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *secrets_out = secrets;
    return 0;
}

static int mf_owns(const manifest *m, const mf_service *d)
{
    return m != NULL && d != NULL && d >= &m->services[0] && d < &m->services[m->nservices];
}

/* Free retired manifests no service refers to any more. */
static void gc_manifests(sv_ctx *sv)
{
    for (size_t r = 0; r < sizeof(sv->retired) / sizeof(sv->retired[0]); r++) {
        manifest *m = sv->retired[r];
        if (m == NULL) continue;
        int used = 0;
        for (size_t i = 0; i < sv->nslots && !used; i++) {
            svc *s = &sv->slots[i];
            used = s->used && (mf_owns(m, s->def) || mf_owns(m, s->next_def));
        }
        if (!used) {
            manifest_free(m);
            sv->retired[r] = NULL;
        }
    }
}

static void update_name_width(sv_ctx *sv)
{
    sv->name_width = strlen("supervisor");
    for (size_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].used && strlen(sv->slots[i].name) > sv->name_width)
            sv->name_width = strlen(sv->slots[i].name);
}

/* keep[i]: service i is supervised (every one, or the --only selection). */
static int select_services(const sv_ctx *sv, const manifest *m, unsigned char keep[MF_MAX_SERVICES],
                           char *err, size_t errlen)
{
    if (sv->only == NULL) {
        memset(keep, 1, MF_MAX_SERVICES);
        return (int)m->nservices;
    }
    char msg[512];
    int n = sv_select(m, sv->only, keep, msg, sizeof(msg));
    if (n < 0) snprintf(err, errlen, "%s: %s", m->path, msg);
    return n;
}

/* --- reload: the parse runs in a thread, the loop applies its result ----------------------------- */

/* A reload's parse: manifest, runtime support (users resolved), environment and secrets. It touches
 * nothing of sv_ctx, so the loop goes on serving status, probes and signals meanwhile: a 1000-service
 * manifest takes 15 ms of CPU, and far longer on a loaded machine. */
struct sv_reload_job {
    pthread_t thr;
    char *path;
    int efd; /* eventfd: written when the parse is over */
    int rc;
    manifest *nm;
    char **env, **secrets;
    char err[512];
};

static void *reload_parse(void *arg)
{
    sv_reload_job *j = arg;
    uint64_t one = 1;
    j->rc = -1;
    if (manifest_load(j->path, &j->nm, j->err, sizeof(j->err)) == 0 &&
        sv_check_support(j->nm, j->err, sizeof(j->err)) == 0 &&
        build_env(j->nm, &j->env, &j->secrets, j->err, sizeof(j->err)) == 0)
        j->rc = 0;
    if (write(j->efd, &one, sizeof(one)) < 0) { /* cannot happen with an eventfd */
    }
    return NULL;
}

static void reload_job_free(sv_reload_job *j)
{
    if (j == NULL) return;
    manifest_free(j->nm);
    xt_strv_free(j->env);
    secrets_free(j->secrets);
    free(j->path);
    free(j);
}

static void on_reload_done(sv_ctx *sv, sv_watch *w, uint32_t events);

/* Answer the control clients waiting for the reload. */
static void reload_answer(sv_ctx *sv, int rc, const char *err)
{
    for (int i = 0; i < SV_MAX_CLIENTS; i++) {
        sv_client *c = &sv->clients[i];
        if (c->w.fd < 0 || !c->reload_wait) continue;
        c->reload_wait = 0;
        if (rc < 0)
            sv_buf_printf(&c->out, "error %s\n", err);
        else
            sv_buf_puts(&c->out, "ok\nreloaded\n");
        control_reply(sv, c);
    }
}

void sv_reload_request(sv_ctx *sv)
{
    if (sv->rjob != NULL) {
        sv->reload_again = 1; /* the running parse may have read the file before this change */
        return;
    }
    sv_reload_job *j = calloc(1, sizeof(*j));
    int efd = -1;
    if (j == NULL || (j->path = strdup(sv->manifest_path)) == NULL ||
        (efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        loop_add(sv, &sv->reload_w, efd, EPOLLIN, on_reload_done, NULL) < 0) {
        if (efd >= 0) close(efd);
        reload_job_free(j);
        xt_error("reload: %s (keeping the running configuration)", strerror(errno ? errno : ENOMEM));
        reload_answer(sv, -1, "out of resources");
        return;
    }
    j->efd = efd;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay the loop's (signalfd) */
    int e = pthread_create(&j->thr, NULL, reload_parse, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        loop_close(sv, &sv->reload_w);
        reload_job_free(j);
        xt_error("reload: cannot start the parse: %s (keeping the running configuration)", strerror(e));
        reload_answer(sv, -1, "cannot start the parse");
        return;
    }
    sv->rjob = j;
}

/* Wait for a reload parse still running (at exit) and drop its result. */
static void reload_abandon(sv_ctx *sv)
{
    if (sv->rjob == NULL) return;
    pthread_join(sv->rjob->thr, NULL);
    loop_close(sv, &sv->reload_w);
    reload_job_free(sv->rjob);
    sv->rjob = NULL;
}

static int sv_reload_apply(sv_ctx *sv, sv_reload_job *job, char *err, size_t errlen);

static void on_reload_done(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    sv_reload_job *j = sv->rjob;
    char err[512];
    (void)w;
    (void)events;
    if (j == NULL) return;
    pthread_join(j->thr, NULL);
    loop_close(sv, &sv->reload_w);
    sv->rjob = NULL;
    int rc = -1;
    if (sv->stopping) {
        snprintf(err, sizeof(err), "the supervisor is stopping");
    } else if (j->rc < 0) {
        snprintf(err, sizeof(err), "%s", j->err);
        xt_error("reload: %s (keeping the running configuration)", err);
    } else {
        rc = sv_reload_apply(sv, j, err, sizeof(err));
    }
    reload_job_free(j);
    if (sv->reload_again && !sv->stopping) {
        sv->reload_again = 0;
        sv_reload_request(sv); /* the clients wait for this one */
        return;
    }
    sv->reload_again = 0;
    reload_answer(sv, rc, err);
}

static int sv_reload_apply(sv_ctx *sv, sv_reload_job *job, char *err, size_t errlen)
{
    manifest *nm = job->nm;
    char **env = job->env, **secrets = job->secrets;
    int changed = 0, added = 0, removed = 0, same = 0;
    gc_manifests(sv);
    size_t slot = 0;
    while (slot < sizeof(sv->retired) / sizeof(sv->retired[0]) && sv->retired[slot] != NULL)
        slot++;
    if (slot == sizeof(sv->retired) / sizeof(sv->retired[0])) {
        snprintf(err, errlen, "too many reloads in progress, try again when services have restarted");
        xt_error("reload: %s (keeping the running configuration)", err);
        return -1;
    }
    unsigned char keep[MF_MAX_SERVICES];
    if (select_services(sv, nm, keep, err, errlen) < 0) {
        xt_error("reload: %s (keeping the running configuration)", err);
        return -1;
    }
    job->nm = NULL; /* ours now */
    job->env = job->secrets = NULL;
    xt_strv_free(sv->env);
    sv->env = env;
    secrets_free(sv->secrets);
    sv->secrets = secrets;
    sv->out_json = nm->log_format == MF_LOG_JSON;
    if (strcmp(nm->control_socket, sv->mf->control_socket) != 0 ||
        (nm->status_http == NULL) != (sv->mf->status_http == NULL) ||
        (nm->status_http != NULL && strcmp(nm->status_http, sv->mf->status_http) != 0))
        xt_warn("reload: control_socket and status_http changes take effect at the next start");
    /* existing services: unchanged ones follow the new definition in place */
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!s->used || s->stop_reason == STOP_REMOVE) continue;
        int j = manifest_find(nm, s->name);
        if (j >= 0 && !keep[j]) j = -1; /* outside --only now: as if removed */
        if (j < 0) {
            removed++;
            xt_info("reload: %s removed", s->name);
            svc_request_stop(sv, s, STOP_REMOVE);
            continue;
        }
        const mf_service *d = &nm->services[j];
        if (strcmp(d->digest, s->def->digest) == 0) {
            same++;
            s->def = d;
            s->next_def = NULL;
            s->ready.def = &d->ready;
            s->live.def = &d->live;
            s->ready.addr_ok = s->live.addr_ok = 0;
            continue;
        }
        changed++;
        xt_info("reload: %s changed", s->name);
        if (s->pid > 0) {
            s->next_def = d;
            svc_request_restart(sv, s);
        } else {
            s->def = d;
            s->next_def = NULL;
            probe_setup(sv, s);
            if (d->autostart || s->want) svc_request_restart(sv, s);
        }
    }
    sv->retired[slot] = sv->mf;
    sv->mf = nm;
    for (size_t k = 0; k < nm->nservices; k++) {
        size_t j = (size_t)nm->order[k];
        if (!keep[j]) continue;
        svc *s = svc_find(sv, nm->services[j].name);
        if (s != NULL && s->stop_reason != STOP_REMOVE) continue;
        svc *n = svc_add(sv, nm, &nm->services[j]);
        if (n == NULL) {
            xt_error("reload: no slot for %s", nm->services[j].name);
            continue;
        }
        added++;
        xt_info("reload: %s added", n->name);
        if (n->want) svc_request_start(sv, n);
    }
    update_name_width(sv);
    gc_manifests(sv);
    sv->unsettled = 1;
    xt_info("reload: %s: %d changed, %d added, %d removed, %d unchanged", sv->manifest_path, changed, added,
            removed, same);
    malloc_trim(0); /* the parse's YAML tree is freed: give its pages back (see sv_run) */
    sv->shed_pending = 1;
    return 0;
}

/* --- signals -------------------------------------------------------------------------------- */

static void on_signal(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int sig = (int)si.ssi_signo;
        switch (sig) {
        case SIGCHLD:
            reap_all(sv);
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            if (!sv->stopping) {
                sv_shutdown(sv, 0, sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGQUIT");
            } else if (sv->stopping == SV_STOPPING) {
                xt_warn("supervisor: second stop signal, sending SIGKILL to everything");
                sv_hurry(sv);
            }
            break;
        case SIGHUP:
            if (!sv->stopping) {
                xt_info("supervisor: SIGHUP, reloading %s", sv->manifest_path);
                sv_reload_request(sv);
            }
            break;
        default:
            break;
        }
    }
    gc_manifests(sv);
}

static int setup_signals(sv_ctx *sv)
{
    sigset_t all, watched;
    sigfillset(&all);
    /* synchronous faults must still kill us (and let sanitizers report) */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    sigdelset(&all, SIGTRAP);
    if (sigprocmask(SIG_BLOCK, &all, NULL) < 0) return -1;
    sigemptyset(&watched);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&watched, sigs[i]);
    sv->sigfd = signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sv->sigfd < 0) return -1;
    return loop_add(sv, &sv->sigw, sv->sigfd, EPOLLIN, on_signal, NULL);
}

/* --- main sequence -------------------------------------------------------------------------- */

/* fds 0-2 must exist, or pipes we create would land there and be clobbered by dup2. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
}

/* What the manifest allows but this runtime does not do: refuse it at start, not at the first probe. */
/* Whether an https probe's child can load libcurl: this binary's `__probe-https --available`. */
static int https_available(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0) dup2(devnull, 2);
        execl(exe, exe, "__probe-https", "--available", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int sv_check_support(manifest *m, char *err, size_t errlen)
{
    int checked = 0;
    for (size_t i = 0; i < m->nservices; i++) {
        const mf_service *d = &m->services[i];
        const mf_probe *ps[2] = {&d->ready, &d->live};
        for (int k = 0; k < 2; k++)
            if (ps[k]->kind == PROBE_HTTP && strncasecmp(ps[k]->target, "https://", 8) == 0 && !checked++ &&
                !https_available()) {
                snprintf(err, errlen,
                         "%s:%d:%d: service '%s': https:// probes need libcurl.so.4 (package libcurl4), "
                         "which cannot be loaded here; use http:// or an exec probe",
                         m->path, ps[k]->line, ps[k]->col, d->name);
                return -1;
            }
    }
    return users_resolve(m, err, errlen);
}

int sv_run(const char *manifest_path, const char *only)
{
    char err[1024];
    manifest *m = NULL;
    unsigned char keep[MF_MAX_SERVICES];
    int rc = 1;
    ensure_std_fds();
    xt_log_init(XT_LOG_INFO, 0);
    if (manifest_load(manifest_path, &m, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        return 2;
    }
    if (sv_check_support(m, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        manifest_free(m);
        return 2;
    }
    sv_ctx *sv = calloc(1, sizeof(*sv));
    if (sv == NULL) {
        manifest_free(m);
        return 1;
    }
    sv->only = only;
    int nkeep = select_services(sv, m, keep, err, sizeof(err));
    if (nkeep < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        manifest_free(m);
        free(sv);
        return 2;
    }
    sv->mf = m;
    sv->manifest_path = manifest_path;
    sv->self = getpid();
    sv->is_pid1 = sv->self == 1;
    sv->start_ms = sv_now_ms();
    sv->sigfd = sv->epfd = -1;
    sv->sigw.fd = sv->ctlw.fd = sv->httpw.fd = sv->outw.fd = sv->reload_w.fd = -1;
    for (int i = 0; i < SV_MAX_CLIENTS; i++)
        sv->clients[i].w.fd = -1;
    for (int i = 0; i < SV_HTTP_CLIENTS; i++)
        sv->hclients[i].w.fd = -1;
    if (m->log_format == MF_LOG_JSON) xt_log_init(XT_LOG_INFO, 1);
    /* this run's marker, inherited by every service and whatever it leaves behind (procs.c) */
    procs_info self = {0};
    procs_stat(sv->self, &self);
    snprintf(sv->run_id, sizeof(sv->run_id), "%d.%llu", (int)sv->self, self.start);
    setenv(SV_RUN_ENV, sv->run_id, 1);
    if (build_env(m, &sv->env, &sv->secrets, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!sv->is_pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        xt_warn("supervisor: cannot become a child subreaper: %s (orphans will not be ours)",
                strerror(errno));
    if (loop_init(sv) < 0 || setup_signals(sv) < 0) {
        fprintf(stderr, "xtask-supervisor: loop setup: %s\n", strerror(errno));
        goto out;
    }
    timer_init(sv, &sv->t_stop, on_stop_deadline, NULL);
    timer_init(sv, &sv->t_eval, svc_on_eval_timer, NULL);
    timer_init(sv, &sv->t_orphans, on_orphans, NULL);
    output_init(sv, 1, m->log_format == MF_LOG_JSON);
    if (control_open(sv, m->control_socket, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        goto out;
    }
    if (m->status_http != NULL && httpd_open(sv, m->status_http, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-supervisor: %s\n", err);
        goto out;
    }
    /* the socket is ours (no other supervisor answered on it): what an earlier supervisor of this
     * manifest left running when it died (SIGKILL, OOM) goes before anything starts */
    if (xt_asprintf_path(&sv->state_path, m->control_socket, ".state") < 0) {
        fprintf(stderr, "xtask-supervisor: out of memory\n");
        goto out;
    }
    procs_cleanup_previous(sv, m->stop_timeout_ms);
    procs_state_save(sv);
    xt_info("supervisor: %s: %zu services, pid %d%s, control %s%s%s", manifest_path, m->nservices,
            (int)sv->self, sv->is_pid1 ? " (PID 1)" : " (subreaper)", m->control_socket,
            m->status_http ? ", http " : "", m->status_http ? m->status_http : "");
    if (only != NULL) {
        char names[512];
        size_t off = 0;
        names[0] = '\0';
        for (size_t k = 0; k < m->nservices && off < sizeof(names); k++) {
            int i = m->order[k];
            if (keep[i]) {
                int w =
                    snprintf(names + off, sizeof(names) - off, "%s%s", off ? " " : "", m->services[i].name);
                off = w < 0 ? sizeof(names) : off + (size_t)w;
            }
        }
        xt_info("supervisor: --only %s: %d of %zu services (%s)", only, nkeep, m->nservices, names);
    }
    for (size_t i = 0; i < m->nservices; i++)
        if (keep[i]) svc_add(sv, m, &m->services[i]);
    update_name_width(sv);
    /* The manifest's YAML tree was freed after the parse, but glibc keeps the heap it grew to:
     * 1000 services leave about 1 MB there, nearly what the services' runtime state costs. */
    malloc_trim(0);
    sv->shed_pending = 1; /* and the start-up's code pages once every service has started (mem.c) */
    /* dependencies first (graph order); independent ones all start now, in parallel */
    for (size_t k = 0; k < m->nservices; k++) {
        svc *s = svc_find(sv, m->services[m->order[k]].name);
        if (s != NULL && s->want) svc_request_start(sv, s);
    }
    for (;;) {
        svc_settle(sv); /* what the last iteration's events and timers changed */
        if (sv->done) break;
        if (sv->state_dirty) { /* the spawns since the last sleep (svc_spawn) */
            sv->state_dirty = 0;
            procs_state_save(sv);
        }
        if (sv->shed_pending) mem_shed(sv);
        loop_once(sv);
    }
    reload_abandon(sv);
    reap_all(sv);
    xt_info("supervisor: stopped (exit %d)", sv->exit_code);
    rc = sv->exit_code;
out:
    if (sv->state_path != NULL && sv->done) unlink(sv->state_path); /* stopped cleanly: nothing left */
    free(sv->state_path);
    control_close(sv);
    httpd_close(sv);
    /* slots first: detaching a service flushes its last partial lines into the output queue */
    for (size_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].used) svc_free_slot(sv, &sv->slots[i]);
    output_finish(sv);
    for (size_t r = 0; r < sizeof(sv->retired) / sizeof(sv->retired[0]); r++)
        manifest_free(sv->retired[r]);
    manifest_free(sv->mf);
    xt_strv_free(sv->env);
    secrets_free(sv->secrets);
    if (sv->sigfd >= 0) close(sv->sigfd);
    if (sv->epfd >= 0) close(sv->epfd);
    free(sv);
    return rc;
}
