/*
 * policy: the pure decisions of the supervisor (no I/O, no clock), unit-tested in
 * tests/test_policy.c: state names and allowed transitions, backoff arithmetic, the restart limit
 * window, dependency conditions and restart policies.
 */
#include "sv.h"

static const char *const state_names[SVC_NSTATES] = {
    [SVC_STOPPED] = "STOPPED", [SVC_WAITING] = "WAITING",   [SVC_STARTING] = "STARTING",
    [SVC_READY] = "READY",     [SVC_STOPPING] = "STOPPING", [SVC_BACKOFF] = "BACKOFF",
    [SVC_EXITED] = "EXITED",   [SVC_FAILED] = "FAILED",
};

/* Allowed transitions: row = from, column = to. Anything else is a bug that svc_set_state logs. */
#define S_ (1u << SVC_STOPPED)
#define W_ (1u << SVC_WAITING)
#define ST (1u << SVC_STARTING)
#define R_ (1u << SVC_READY)
#define SP (1u << SVC_STOPPING)
#define B_ (1u << SVC_BACKOFF)
#define E_ (1u << SVC_EXITED)
#define F_ (1u << SVC_FAILED)
static const unsigned transitions[SVC_NSTATES] = {
    [SVC_STOPPED] = W_ | ST | B_ | F_,            /* start requested (spawn may fail at once) */
    [SVC_WAITING] = S_ | ST | B_ | F_,            /* stop; conditions hold; spawn failed */
    [SVC_STARTING] = S_ | R_ | SP | B_ | E_ | F_, /* ready; stop; exited (restart, done, give up) */
    [SVC_READY] = S_ | SP | B_ | E_ | F_,         /* stop; exited */
    [SVC_STOPPING] = S_ | W_ | ST | B_ | E_ | F_, /* stopped; restarted; failed stop reason */
    [SVC_BACKOFF] = S_ | W_ | ST | B_ | F_,       /* stop; delay over; spawn failed again */
    [SVC_EXITED] = S_ | W_ | ST | B_ | F_,        /* manual start or dependency restart */
    [SVC_FAILED] = S_ | W_ | ST | B_,             /* manual start */
};
#undef S_
#undef W_
#undef ST
#undef R_
#undef SP
#undef B_
#undef E_
#undef F_

const char *svc_state_name(svc_state st)
{
    if ((unsigned)st >= SVC_NSTATES) return "?";
    return state_names[st];
}

int svc_transition_ok(svc_state from, svc_state to)
{
    if ((unsigned)from >= SVC_NSTATES || (unsigned)to >= SVC_NSTATES) return 0;
    return (transitions[from] >> to) & 1u;
}

int svc_state_running(svc_state st)
{
    return st == SVC_STARTING || st == SVC_READY || st == SVC_STOPPING;
}

int64_t backoff_delay(int64_t initial_ms, int64_t max_ms, int attempt)
{
    if (initial_ms < 0) initial_ms = 0;
    if (max_ms < initial_ms) max_ms = initial_ms;
    if (attempt < 0) attempt = 0;
    int64_t d = initial_ms;
    /* doubling stops at the cap, so it can never overflow */
    for (int i = 0; i < attempt && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    return d > max_ms ? max_ms : d;
}

int backoff_attempt_after_run(int attempt, int64_t ran_ms, int64_t reset_ms)
{
    if (ran_ms >= reset_ms) return 0;
    return attempt;
}

int restart_limit_hit(const int64_t *times, int n, int count, int64_t window_ms, int64_t now)
{
    if (count <= 0) return 0;
    if (count > SV_RESTART_RING) count = SV_RESTART_RING;
    int recent = 0;
    for (int i = 0; i < n && i < SV_RESTART_RING; i++)
        if (now - times[i] < window_ms) recent++;
    return recent >= count;
}

void restart_record(int64_t *times, int *n, int64_t now)
{
    if (*n < SV_RESTART_RING) {
        times[(*n)++] = now;
        return;
    }
    /* replace the oldest */
    int oldest = 0;
    for (int i = 1; i < SV_RESTART_RING; i++)
        if (times[i] < times[oldest]) oldest = i;
    times[oldest] = now;
}

int dep_cond_holds(mf_dep_cond cond, svc_state st, int completed)
{
    switch (cond) {
    case DEP_STARTED:
        return st == SVC_STARTING || st == SVC_READY || (st == SVC_EXITED && completed);
    case DEP_READY:
        return st == SVC_READY || (st == SVC_EXITED && completed);
    case DEP_COMPLETED:
        return st == SVC_EXITED && completed;
    }
    return 0;
}

int restart_wanted(mf_restart policy, int failure)
{
    switch (policy) {
    case RESTART_ALWAYS:
        return 1;
    case RESTART_ON_FAILURE:
        return failure;
    case RESTART_NEVER:
        return 0;
    }
    return 0;
}
