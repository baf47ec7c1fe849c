/*
 * svc: each service as a state machine. Every state change goes through svc_set_state(), which
 * checks the transition against the table in policy.c, logs `name: STARTING -> READY (143 ms)` and
 * re-evaluates what may start or stop now (dependents start the moment their conditions hold: no
 * polling). Decisions (backoff, limits, conditions, policies) are the pure functions of policy.c.
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xt_conf.h"
#include "xt_log.h"

static void svc_spawn(sv_ctx *sv, svc *s);
static void svc_apply_next_def(sv_ctx *sv, svc *s);
static void svc_try_start(sv_ctx *sv, svc *s);

void svc_set_state(sv_ctx *sv, svc *s, svc_state to)
{
    int64_t now = sv_now_ms();
    svc_state from = s->state;
    if (from == to) return;
    if (!svc_transition_ok(from, to))
        xt_error("%s: unexpected transition %s -> %s (bug)", s->name, svc_state_name(from),
                 svc_state_name(to));
    xt_info("%s: %s -> %s (%lld ms)", s->name, svc_state_name(from), svc_state_name(to),
            (long long)(now - s->state_ms));
    s->state = to;
    s->state_ms = now;
    timer_disarm(&s->t_state);
    if (to == SVC_READY) s->ready_ms = now;
    control_state_changed(sv, s);
    sv->unsettled = 1; /* dependents and a shutdown move on in svc_settle, before the loop sleeps */
}

/* --- the name index: svc_find in O(1), not a scan of up to SV_MAX_SLOTS slots per dependency
 * check (1000 services starting would be O(n^2) string compares). Linear probing over
 * sv->name_index; a freed slot rebuilds it (rare: reload only). */

static size_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (size_t)h & (SV_NAME_INDEX - 1);
}

static void name_index_add(sv_ctx *sv, size_t slot)
{
    size_t i = name_hash(sv->slots[slot].name);
    while (sv->name_index[i] != 0)
        i = (i + 1) & (SV_NAME_INDEX - 1);
    sv->name_index[i] = (uint16_t)(slot + 1);
}

static void name_index_rebuild(sv_ctx *sv)
{
    memset(sv->name_index, 0, sizeof(sv->name_index));
    for (size_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].used) name_index_add(sv, i);
}

svc *svc_find(sv_ctx *sv, const char *name)
{
    svc *removed = NULL;
    for (size_t i = name_hash(name); sv->name_index[i] != 0; i = (i + 1) & (SV_NAME_INDEX - 1)) {
        svc *s = &sv->slots[sv->name_index[i] - 1];
        if (!s->used || strcmp(s->name, name) != 0) continue;
        /* a slot being removed by reload is found only if no live slot has the name */
        if (s->stop_reason != STOP_REMOVE) return s;
        removed = s;
    }
    return removed;
}

static void on_state_timer(sv_ctx *sv, void *arg);

/* The next batch of spawns: the timer only wakes the loop, whose settle pass starts them. */
void svc_on_eval_timer(sv_ctx *sv, void *arg)
{
    (void)arg;
    sv->unsettled = 1;
}

svc *svc_add(sv_ctx *sv, manifest *mf, const mf_service *def)
{
    (void)mf;
    for (size_t i = 0; i < SV_MAX_SLOTS; i++) {
        svc *s = &sv->slots[i];
        if (s->used) continue;
        if (i < sv->nslots) {
            /* a reused slot: cleared, but its timers stay registered with the loop. A fresh one
             * is still zero (sv_ctx is calloc'd): not writing it keeps its cold pages untouched. */
            unsigned regs[6] = {s->t_state.reg,     s->ready.t_next.reg,   s->ready.t_timeout.reg,
                                s->live.t_next.reg, s->live.t_timeout.reg, s->t_wd.reg};
            memset(s, 0, sizeof(*s));
            s->t_state.reg = regs[0];
            s->ready.t_next.reg = regs[1];
            s->ready.t_timeout.reg = regs[2];
            s->live.t_next.reg = regs[3];
            s->live.t_timeout.reg = regs[4];
            s->t_wd.reg = regs[5];
        }
        s->used = 1;
        if (i + 1 > sv->nslots) sv->nslots = i + 1;
        snprintf(s->name, sizeof(s->name), "%s", def->name);
        name_index_add(sv, i);
        s->c = &sv->cold[i];
        s->notify.fd = -1;
        s->hw.fd = -1;
        s->lb[0].buf = s->c->lbuf[0];
        s->lb[1].buf = s->c->lbuf[1];
        size_t nsvc = sv->mf != NULL && sv->mf->nservices > 0 ? sv->mf->nservices : 1;
        s->ring.max_bytes = SV_RING_TOTAL / nsvc;
        if (s->ring.max_bytes > SV_RING_BYTES) s->ring.max_bytes = SV_RING_BYTES;
        if (s->ring.max_bytes < 4096) s->ring.max_bytes = 4096;
        s->def = def;
        s->state = SVC_STOPPED;
        s->state_ms = sv_now_ms();
        s->want = def->autostart;
        s->out[0].fd = s->out[1].fd = -1;
        timer_init(sv, &s->t_state, on_state_timer, s);
        sdnotify_init(sv, s);
        probe_setup(sv, s);
        size_t w = strlen(s->name);
        if (w > sv->name_width) sv->name_width = w;
        return s;
    }
    return NULL;
}

void svc_free_slot(sv_ctx *sv, svc *s)
{
    probe_cancel(sv, &s->ready);
    probe_cancel(sv, &s->live);
    output_detach(sv, s);
    svc_notify_close(sv, s);
    sdnotify_close(sv, s);
    probe_holder_close(sv, s);
    ring_free(&s->ring);
    timer_disarm(&s->t_state);
    timer_disarm(&s->ready.t_next);
    timer_disarm(&s->live.t_next);
    s->used = 0;
    name_index_rebuild(sv);
}

int svc_deps_ok(sv_ctx *sv, const svc *s)
{
    for (size_t i = 0; i < s->def->ndeps; i++) {
        const mf_dep *d = &s->def->deps[i];
        svc *t = svc_find(sv, d->name);
        if (t == NULL || !dep_cond_holds(d->cond, t->state, t->completed)) return 0;
    }
    return 1;
}

/* Start every WAITING service whose conditions hold. Spawning waits for each child's exec: 1000
 * services at once would keep the loop (status, signals, probes) waiting, so at most SV_SPAWN_BATCH
 * per iteration; the rest start at the next one, after the loop's events (t_eval wakes it). */
static void svc_start_waiting(sv_ctx *sv)
{
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!(s->used && s->want && s->state == SVC_WAITING && svc_deps_ok(sv, s))) continue;
        if (sv->spawned >= SV_SPAWN_BATCH) {
            if (!sv->t_eval.armed) timer_arm(&sv->t_eval, sv_now_ms());
            return;
        }
        sv->spawned++;
        svc_spawn(sv, s);
    }
}

/* The settle pass, once per loop iteration before it sleeps (loop_once): what the iteration's state
 * changes imply, until nothing more changes. A dependent starts in the same iteration as its
 * condition becomes true; during a shutdown, the next services stop. State changes only set
 * sv->unsettled: nothing recurses from a transition back into the scheduler. */
void svc_settle(sv_ctx *sv)
{
    while (sv->unsettled && !sv->done) {
        sv->unsettled = 0;
        if (sv->stopping)
            sv_stop_progress(sv);
        else
            svc_start_waiting(sv);
    }
}

/* Schedule a restart after a failure or an exit the policy restarts; or give up. */
static void svc_after_exit(sv_ctx *sv, svc *s, int failure)
{
    const mf_service *d = s->def;
    int64_t now = sv_now_ms();
    if (sv->stopping || !s->want) {
        svc_set_state(sv, s, SVC_STOPPED);
        return;
    }
    if (!restart_wanted(d->restart, failure)) {
        svc_set_state(sv, s, failure ? SVC_FAILED : SVC_EXITED);
    } else if (restart_limit_hit(s->c->rtimes, s->nrt, d->restart_limit_count, d->restart_limit_window_ms,
                                 now)) {
        char w[32];
        xt_error("%s: %d restarts within %s, giving up", s->name, d->restart_limit_count,
                 xt_duration_format(d->restart_limit_window_ms, w, sizeof(w)));
        svc_set_state(sv, s, SVC_FAILED);
    } else {
        int64_t ran = s->spawn_ms > 0 ? now - s->spawn_ms : 0;
        s->attempt = backoff_attempt_after_run(s->attempt, ran, d->backoff_reset_ms);
        int64_t delay = backoff_delay(d->backoff_initial_ms, d->backoff_max_ms, s->attempt);
        s->attempt++;
        restart_record(s->c->rtimes, &s->nrt, now);
        s->restarts++;
        svc_set_state(sv, s, SVC_BACKOFF);
        timer_arm(&s->t_state, now + delay);
        char w[32];
        xt_info("%s: restarting in %s", s->name, xt_duration_format(delay, w, sizeof(w)));
    }
    if (s->state == SVC_FAILED && d->essential) {
        char why[128];
        snprintf(why, sizeof(why), "essential service %s failed", s->name);
        sv_shutdown(sv, 1, why);
    }
}

/* Before a service runs again: kill what its previous run left behind outside its process group
 * (setsid escapees, reparented to us, that still carry XTASK_SERVICE=<name>), so that the new run
 * does not find its port taken or its work done twice. Returns 1 if the start must wait a moment for
 * them to die (the state is then BACKOFF with a short timer), 0 to start now. */
static int svc_sweep_leftovers(sv_ctx *sv, svc *s)
{
    pid_t left[64];
    if (s->spawn_ms == 0) return 0; /* first run: nothing of it can be left */
    int n = procs_leftovers(sv->self, s->name, left, 64);
    if (n == 0) {
        s->sweeps = 0;
        return 0;
    }
    if (s->sweeps >= SV_SWEEP_MAX) {
        xt_error("%s: %d process(es) of its previous run survive SIGKILL (pid %d); starting anyway", s->name,
                 n, (int)left[0]);
        s->sweeps = 0;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char comm[32];
        procs_comm(left[i], comm, sizeof(comm));
        if (s->sweeps == 0 || i == 0)
            xt_warn("%s: killing pid %d (%s), left behind by its previous run outside its process group",
                    s->name, (int)left[i], comm);
        kill(left[i], SIGKILL);
    }
    s->sweeps++;
    svc_set_state(sv, s, SVC_BACKOFF);
    timer_arm(&s->t_state, sv_now_ms() + SV_SWEEP_MS);
    return 1;
}

/* ready: {notify: N}: any newline on the pipe means READY (s6's protocol); EOF before one means the
 * service closed it without saying so, and start_period decides. Either way the pipe is done. */
static void on_notify(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    svc *s = w->arg;
    char buf[64];
    (void)events;
    ssize_t n = read(w->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    int ready = n > 0 && memchr(buf, '\n', (size_t)n) != NULL;
    if (n > 0 && !ready) return;
    loop_close(sv, w);
    if (ready) {
        xt_debug("%s: ready (notification fd %d)", s->name, s->def->ready.notify_fd);
        snprintf(s->ready.msg, sizeof(s->ready.msg), "notified on fd %d", s->def->ready.notify_fd);
        s->ready.has_result = s->ready.ok = 1;
        s->ready.result_ms = sv_now_ms();
        svc_probe_result(sv, s, 0, 1);
    }
}

void svc_notify_close(sv_ctx *sv, svc *s)
{
    loop_close(sv, &s->notify);
}

static void svc_spawn(sv_ctx *sv, svc *s)
{
    char err[256] = "";
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pn[2] = {-1, -1}, eerr = 0;
    int64_t now = sv_now_ms();
    svc_apply_next_def(sv, s);
    if (svc_sweep_leftovers(sv, s)) return;
    probe_before_spawn(sv, s); /* before the fork: a listener seen now is not this run's */
    const mf_service *d = s->def;
    output_detach(sv, s);
    pid_t pid = -1;
    char mark[sizeof(SV_SERVICE_ENV) + MF_NAME_MAX + 1];
    snprintf(mark, sizeof(mark), "%s=%s", SV_SERVICE_ENV, s->name);
    /* the run's marks, sd_notify's socket and watchdog, then the secrets this service names (and no
     * other). WATCHDOG_PID is the child's own pid, written by the child (spawn.c) */
    char nsock[sizeof(((struct sockaddr_un *)0)->sun_path) + 16], wusec[48], wpid[] = SV_WATCHDOG_PID_ENV;
    char *extra[5 + MF_MAX_SECRETS] = {mark};
    size_t nx = 1;
    if (d->ready.kind == PROBE_SD_NOTIFY) {
        if (sdnotify_open(sv, s, nsock, sizeof(nsock), err, sizeof(err)) < 0) {
            xt_error("%s: %s", s->name, err);
            s->has_exit = 0;
            s->spawn_ms = now;
            svc_after_exit(sv, s, 1);
            return;
        }
        extra[nx++] = nsock;
        if (d->watchdog_ms > 0) {
            snprintf(wusec, sizeof(wusec), "WATCHDOG_USEC=%lld", (long long)d->watchdog_ms * 1000);
            extra[nx++] = wusec;
            extra[nx++] = wpid;
        }
    }
    for (size_t i = 0; d->secrets != NULL && d->secrets[i] != NULL && nx < 4 + MF_MAX_SECRETS; i++) {
        size_t nl = strlen(d->secrets[i]);
        for (size_t j = 0; sv->secrets != NULL && sv->secrets[j] != NULL; j++)
            if (strncmp(sv->secrets[j], d->secrets[i], nl) == 0 && sv->secrets[j][nl] == '=') {
                extra[nx++] = sv->secrets[j];
                break;
            }
    }
    extra[nx] = NULL;
    char **env = env_merge(sv->env, d->env, extra);
    if (env == NULL) {
        snprintf(err, sizeof(err), "out of memory");
    } else if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
               (d->ready.kind == PROBE_NOTIFY && pipe2(pn, O_CLOEXEC | O_NONBLOCK) < 0)) {
        snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
    } else {
        pid = spawn_process(d->argv, env, d->workdir, &d->ident, po[1], pe[1], pn[1],
                            d->ready.kind == PROBE_NOTIFY ? d->ready.notify_fd : -1, &eerr, err, sizeof(err));
    }
    xt_strv_free(env);
    if (po[1] >= 0) close(po[1]);
    if (pe[1] >= 0) close(pe[1]);
    if (pn[1] >= 0) close(pn[1]);
    svc_notify_close(sv, s);
    if (pn[0] >= 0 && (pid < 0 || loop_add(sv, &s->notify, pn[0], EPOLLIN, on_notify, s) < 0)) {
        if (pid >= 0) xt_error("%s: cannot watch its notification fd: %s", s->name, strerror(errno));
        close(pn[0]);
    }
    if (pid < 0) {
        if (po[0] >= 0) close(po[0]);
        if (pe[0] >= 0) close(pe[0]);
        sdnotify_close(sv, s);
        xt_error("%s: %s", s->name, err);
        s->has_exit = 0;
        s->spawn_ms = now;
        svc_after_exit(sv, s, 1);
        return;
    }
    output_attach(sv, s, po[0], pe[0]);
    s->pid = pid;
    /* A supervisor killed from now on leaves a record of this process group: the state file is
     * rewritten before the loop next sleeps (loop_once), once for all the spawns of an iteration,
     * with the start time read here once: rewriting it per spawn, reading /proc for every running
     * service, made 1000 services take 25 s to start instead of 4 s. */
    procs_info pi;
    s->start_ticks = procs_stat(pid, &pi) == 0 ? pi.start : 0;
    sv->state_dirty = 1;
    s->spawn_ms = now;
    s->stop_reason = STOP_NONE;
    s->live_fails = 0;
    s->completed = 0;
    if (eerr != 0)
        xt_error("%s: %s", s->name, err); /* the child exits 127/126; its exit is handled as usual */
    else
        xt_debug("%s: pid %d", s->name, (int)pid);
    svc_set_state(sv, s, SVC_STARTING);
    if (s->state != SVC_STARTING || eerr != 0) return;
    if (d->type == SVC_TYPE_ONESHOT) return; /* ready (completed) when it exits 0 */
    if (d->ready.kind == PROBE_NONE) {
        svc_set_state(sv, s, SVC_READY);
        if (s->state == SVC_READY && d->live.kind != PROBE_NONE)
            probe_begin(sv, &s->live, now + d->live.start_period_ms + d->live.interval_ms);
        return;
    }
    timer_arm(&s->t_state, now + d->ready.start_period_ms);
    probe_begin(sv, &s->ready, now);
}

/* reload: a changed definition takes effect at the next start */
static void svc_apply_next_def(sv_ctx *sv, svc *s)
{
    if (s->next_def == NULL || s->pid > 0) return;
    s->def = s->next_def;
    s->next_def = NULL;
    probe_setup(sv, s);
}

static void svc_try_start(sv_ctx *sv, svc *s)
{
    if (sv->stopping || !s->want || s->pid > 0) return;
    svc_apply_next_def(sv, s);
    if (svc_deps_ok(sv, s) && sv->spawned < SV_SPAWN_BATCH) {
        sv->spawned++;
        svc_spawn(sv, s);
        return;
    }
    svc_set_state(sv, s, SVC_WAITING); /* its dependencies, or the next batch (svc_settle) */
    if (svc_deps_ok(sv, s) && !sv->t_eval.armed) timer_arm(&sv->t_eval, sv_now_ms());
}

/* Signal a running service's process group to stop; SIGKILL after its timeout. */
static void svc_stop_process(sv_ctx *sv, svc *s, svc_stop_reason why)
{
    int64_t now = sv_now_ms();
    if (s->pid <= 0) return;
    /* a shutdown or explicit stop wins over a pending restart */
    if (s->state == SVC_STOPPING) {
        if (why == STOP_WANTED || why == STOP_REMOVE) s->stop_reason = why;
        return;
    }
    s->stop_reason = why;
    probe_cancel(sv, &s->ready);
    probe_cancel(sv, &s->live);
    svc_set_state(sv, s, SVC_STOPPING);
    int sig = s->def->stop_signal > 0 ? s->def->stop_signal : SIGTERM;
    if (kill(-s->pid, sig) < 0) kill(s->pid, sig);
    int64_t deadline = now + s->def->stop_timeout_ms;
    if (sv->stopping && deadline > sv->stop_deadline) deadline = sv->stop_deadline;
    timer_arm(&s->t_state, deadline);
}

void svc_fail(sv_ctx *sv, svc *s)
{
    svc_stop_process(sv, s, STOP_FAILED);
}

static void on_state_timer(sv_ctx *sv, void *arg)
{
    svc *s = arg;
    char w[32];
    switch (s->state) {
    case SVC_BACKOFF:
        if (svc_deps_ok(sv, s))
            svc_spawn(sv, s);
        else
            svc_set_state(sv, s, SVC_WAITING);
        break;
    case SVC_STARTING:
        xt_warn("%s: not ready within %s (%s), restarting", s->name,
                xt_duration_format(s->def->ready.start_period_ms, w, sizeof(w)),
                s->ready.has_result ? s->ready.msg : "no probe answer");
        svc_stop_process(sv, s, STOP_FAILED);
        break;
    case SVC_STOPPING:
        if (s->pid > 0) {
            xt_warn("%s: still running after its stop timeout, sending SIGKILL to its process group",
                    s->name);
            if (kill(-s->pid, SIGKILL) < 0) kill(s->pid, SIGKILL);
        }
        break;
    default:
        break;
    }
}

void svc_request_start(sv_ctx *sv, svc *s)
{
    if (sv->stopping) return;
    s->want = 1;
    switch (s->state) {
    case SVC_FAILED:
        s->nrt = 0;
        s->attempt = 0;
        /* fall through */
    case SVC_STOPPED:
    case SVC_EXITED:
    case SVC_BACKOFF:
        if (s->state != SVC_BACKOFF) s->attempt = 0;
        svc_try_start(sv, s);
        break;
    default:
        break;
    }
}

void svc_request_stop(sv_ctx *sv, svc *s, svc_stop_reason why)
{
    if (why != STOP_RESTART) s->want = 0;
    if (s->pid > 0) {
        svc_stop_process(sv, s, why);
        return;
    }
    if (s->state == SVC_WAITING || s->state == SVC_BACKOFF) svc_set_state(sv, s, SVC_STOPPED);
    if (why == STOP_REMOVE && s->pid <= 0) svc_free_slot(sv, s);
}

void svc_request_restart(sv_ctx *sv, svc *s)
{
    if (sv->stopping) return;
    s->want = 1;
    if (s->pid > 0) {
        svc_stop_process(sv, s, STOP_RESTART);
        return;
    }
    s->attempt = 0;
    if (s->state == SVC_FAILED) s->nrt = 0;
    if (s->state == SVC_BACKOFF) svc_set_state(sv, s, SVC_STOPPED);
    svc_try_start(sv, s);
}

void svc_probe_result(sv_ctx *sv, svc *s, int is_live, int ok)
{
    const mf_service *d = s->def;
    if (!is_live) {
        if (ok && s->state == SVC_STARTING) {
            probe_cancel(sv, &s->ready);
            svc_set_state(sv, s, SVC_READY);
            if (s->state == SVC_READY && d->live.kind != PROBE_NONE)
                probe_begin(sv, &s->live, sv_now_ms() + d->live.start_period_ms + d->live.interval_ms);
        }
        return;
    }
    if (s->state != SVC_READY) return;
    if (ok) {
        s->live_fails = 0;
        return;
    }
    s->live_fails++;
    if (s->live_fails >= (d->live.failures > 0 ? d->live.failures : 1)) {
        xt_warn("%s: liveness failed %d times (%s), restarting", s->name, s->live_fails, s->live.msg);
        svc_stop_process(sv, s, STOP_FAILED);
    }
}

static void log_exit(const svc *s, int status)
{
    if (WIFEXITED(status))
        xt_info("%s: exited with code %d", s->name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        xt_info("%s: killed by signal %d (%s)", s->name, WTERMSIG(status), strsignal(WTERMSIG(status)));
}

int svc_on_child_exit(sv_ctx *sv, pid_t pid, int status)
{
    svc *s = NULL;
    for (size_t i = 0; i < sv->nslots; i++)
        if (sv->slots[i].used && sv->slots[i].pid == pid) {
            s = &sv->slots[i];
            break;
        }
    if (s == NULL) return probe_on_child_exit(sv, pid, status);
    int64_t now = sv_now_ms();
    s->pid = 0;
    s->has_exit = 1;
    s->last_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    s->last_sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    s->last_exit_ms = now;
    /* whatever the main process left in its group got SIGKILL before the reap (run.c) */
    probe_cancel(sv, &s->ready);
    probe_cancel(sv, &s->live);
    svc_notify_close(sv, s);
    sdnotify_close(sv, s);
    log_exit(s, status);
    int failure = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (s->state == SVC_STOPPING) {
        svc_stop_reason why = s->stop_reason;
        s->stop_reason = STOP_NONE;
        if (why == STOP_REMOVE) {
            svc_set_state(sv, s, SVC_STOPPED);
            svc_free_slot(sv, s);
        } else if (sv->stopping || why == STOP_WANTED || why == STOP_NONE || !s->want) {
            svc_set_state(sv, s, SVC_STOPPED);
        } else if (why == STOP_RESTART) {
            s->attempt = 0;
            svc_set_state(sv, s, SVC_STOPPED);
            svc_try_start(sv, s);
        } else {
            svc_after_exit(sv, s, 1);
        }
    } else if (s->def->type == SVC_TYPE_ONESHOT && !failure) {
        s->completed = 1;
        svc_set_state(sv, s, SVC_EXITED);
    } else {
        svc_after_exit(sv, s, failure);
    }
    if (sv->stopping) sv->unsettled = 1;
    return 1;
}
