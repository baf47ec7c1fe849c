/*
 * xr_run: run one command without a shell, in its own process group, with bounded output capture
 * and a deadline.
 *
 * posix_spawnp (vfork-like, so spawning stays cheap in a large process) with: a new process group,
 * the default signal mask and dispositions, stdin /dev/null, stdout/stderr on pipes, every other fd
 * closed. The calling thread then polls the two pipes and a pidfd for the child's exit until the
 * deadline; on timeout or cancel it sends SIGTERM to the group, then SIGKILL after `kill_grace_ms`.
 * When the leader has exited, whatever is left in its group is SIGKILLed (a task never leaves
 * background processes behind, nor holds our pipes open).
 * Blocking: call it from a worker thread, never from a NATS callback.
 */
#ifndef XR_RUN_H
#define XR_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xo_output.h"

typedef struct xr_spec xr_spec;

/* Called with each output line (stream "stdout" or "stderr"). */
typedef void (*xr_line_fn)(const char *stream, const char *line, size_t len, void *ud);

/* Called about every `tick_ms` while the command runs (e.g. JetStream in-progress acks). */
typedef void (*xr_tick_fn)(void *ud);

/* Called once with the child's pid (== its process group) after the spawn, and with 0 when the run
 * is over; lets the caller register the group for a shutdown kill. */
typedef void (*xr_pid_fn)(pid_t pgid, void *ud);

struct xr_spec {
    char *const *argv;      /* argv[0] looked up on PATH */
    char *const *env;       /* the child's whole environment ("K=V"); NULL = empty, never ours */
    char *const *extra_env; /* "K=V" added to / overriding env; may be NULL */
    const char *cwd;        /* NULL = inherit */
    int64_t timeout_ms;     /* > 0 */
    int64_t kill_grace_ms;
    xr_line_fn on_line; /* may be NULL */
    xr_tick_fn on_tick; /* may be NULL */
    int64_t tick_ms;
    xr_pid_fn on_pid; /* may be NULL */
    void *ud;
    volatile sig_atomic_t *cancel; /* may be NULL; non-zero = stop now (as on timeout) */
};

typedef struct {
    int spawn_errno; /* non-zero: the command could not be started (exit_code 127) */
    int exit_code;   /* exit status, or -1 when signalled */
    int signal;      /* terminating signal or 0 */
    int timed_out;
    int cancelled;
    int64_t duration_ms;
} xr_status;

/* Run spec, capturing output into out (initialised by the caller). Returns 0 when the command ran
 * (whatever its exit), -1 on a spawn failure (st->spawn_errno set, a message appended to out). */
int xr_run(const xr_spec *spec, xo_output *out, xr_status *st);

/* Build an environment: `base` plus `extra` ("K=V", overriding; either may be NULL). malloc'd vector
 * of pointers into base/extra (free only the vector). The caller's own environment is never used:
 * a task must not see the coordinator's secrets. */
char **xr_env_merge(char *const *base, char *const *extra);

#endif
