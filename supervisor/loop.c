/*
 * loop: the one epoll loop. Watches are fds with a callback; timers are deadlines registered once
 * and armed at will. The loop sleeps until the earliest armed timer. Timers are found by a linear
 * scan: there are at most a few hundred (bounded by the fixed slots) and a scan of them costs less
 * than the epoll_wait syscall itself, so a heap would buy nothing here.
 */
#include "sv.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "xt_log.h"

int64_t sv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sv_now_ms(void)
{
    return sv_now_ns() / 1000000;
}

int loop_init(sv_ctx *sv)
{
    sv->epfd = epoll_create1(EPOLL_CLOEXEC);
    return sv->epfd < 0 ? -1 : 0;
}

int loop_add(sv_ctx *sv, sv_watch *w, int fd, uint32_t events, sv_watch_fn cb, void *arg)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->arg = arg;
    if (epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        w->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

int loop_mod(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    if (w->fd < 0 || w->events == events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    w->events = events;
    return epoll_ctl(sv->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void loop_close(sv_ctx *sv, sv_watch *w)
{
    if (w->fd < 0) return;
    epoll_ctl(sv->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    close(w->fd);
    w->fd = -1;
}

void timer_init(sv_ctx *sv, sv_timer *t, sv_timer_fn cb, void *arg)
{
    t->armed = 0;
    t->cb = cb;
    t->arg = arg;
    if (t->reg > 0 && t->reg <= sv->ntimers && sv->timers[t->reg - 1] == t) return; /* O(1), not a scan */
    if (sv->ntimers < SV_MAX_TIMERS) {
        sv->timers[sv->ntimers++] = t;
        t->reg = (unsigned)sv->ntimers;
    } else {
        xt_error("supervisor: too many timers (bug)");
    }
}

void timer_arm(sv_timer *t, int64_t at_ms)
{
    t->at = at_ms;
    t->armed = 1;
}

void timer_disarm(sv_timer *t)
{
    t->armed = 0;
}

void loop_once(sv_ctx *sv)
{
    struct epoll_event evs[32];
    int64_t now = sv_now_ms(), earliest = -1;
    for (size_t i = 0; i < sv->ntimers; i++) {
        sv_timer *t = sv->timers[i];
        if (t->armed && (earliest < 0 || t->at < earliest)) earliest = t->at;
    }
    int timeout = -1;
    if (earliest >= 0)
        timeout = earliest <= now ? 0 : (int)(earliest - now > 3600000 ? 3600000 : earliest - now);
    int n = epoll_wait(sv->epfd, evs, 32, timeout);
    sv->spawned = 0;
    if (n < 0 && errno != EINTR) xt_error("supervisor: epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        sv_watch *w = evs[i].data.ptr;
        if (w->fd < 0 || w->cb == NULL) /* closed earlier in this batch */
            continue;
        w->cb(sv, w, evs[i].events);
    }
    now = sv_now_ms();
    for (size_t i = 0; i < sv->ntimers; i++) {
        sv_timer *t = sv->timers[i];
        if (t->armed && t->at <= now) {
            t->armed = 0;
            t->cb(sv, t->arg);
        }
    }
}
