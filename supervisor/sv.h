/*
 * sv: the runtime of xtask-supervisor (everything but the manifest parser).
 *
 * One context struct (sv_ctx) is passed explicitly everywhere; there are no mutable globals.
 * One epoll loop drives everything: signals (signalfd), child output pipes, probes, the control
 * socket and the optional status HTTP server. Every object that the loop can call back (watches,
 * timers) is embedded in a fixed-size slot (services, clients), so a pointer handed to epoll stays
 * valid for the life of the process; a closed watch has fd == -1 and late events for it are ignored.
 *
 * Layout: forward typedefs, structs, prototypes grouped by source file, inline helpers last.
 */
#ifndef XT_SV_H
#define XT_SV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "manifest.h"

#define SV_VERSION "0.1.0"

#define SV_MAX_SLOTS (MF_MAX_SERVICES * 2)    /* services, incl. removed ones still stopping */
#define SV_MAX_TIMERS (SV_MAX_SLOTS * 6 + 64) /* 6 per slot (state, 2 per probe, watchdog), a few global */
#define SV_NAME_INDEX 4096        /* open-addressing name -> slot index, > 2 * SV_MAX_SLOTS, power of 2 */
#define SV_LINE_MAX 4096          /* one output line; longer lines are cut with a marker */
#define SV_RING_LINES 200         /* last lines kept per service for `logs` */
#define SV_RING_BYTES (64 * 1024) /* ... and at most this many bytes of them ... */
#define SV_RING_TOTAL (4 * 1024 * 1024)   /* ... or this much shared by all services, 4 KB at least */
#define SV_OUTQ_MAX (64 * 1024)           /* supervisor stdout queue; beyond it lines are dropped */
#define SV_RESTART_RING 128               /* restart_limit.count is capped at this */
#define SV_MAX_CLIENTS 16                 /* control connections at once */
#define SV_CTL_REQ_MAX 512                /* one control request line */
#define SV_SERVICE_ENV "XTASK_SERVICE"    /* every service's environment: XTASK_SERVICE=<its name> */
#define SV_RUN_ENV "XTASK_SUPERVISOR_RUN" /* ... and XTASK_SUPERVISOR_RUN=<our pid>.<our start time> */
#define SV_SWEEP_MS 10                    /* a restart waits this long for killed leftovers to go ... */
#define SV_SWEEP_MAX 100                  /* ... this many times at most, then starts anyway */
#define CTL_LOG_TS 1                      /* logs: "2026-01-02T03:04:05.678Z " before each line */
#define CTL_LOG_NAME 2                    /* logs: "name | " before each line (every service interleaved) */
#define SV_CTL_OUT_MAX (256 * 1024)       /* one control answer (logs -f drops beyond it) */
#define SV_HTTP_CLIENTS 16
#define SV_HTTP_REQ_MAX 4096
#define SV_HTTP_DEADLINE_MS 2000 /* a status_http exchange, accept to last byte sent, whatever pace */
#define SV_IO_TIMEOUT_MS 5000    /* control / HTTP clients idle longer are closed */
#define SV_PROBE_MSG 128
/* the environment entry a child rewrites with its own pid (spawn.c): sd_notify's WATCHDOG_PID */
#define SV_WATCHDOG_PID_ENV "WATCHDOG_PID=----------"
#define SV_SPAWN_BATCH 16 /* services started per loop iteration: each fork+exec waits for the exec */

/* --- forward typedefs ---------------------------------------------------------------------- */
typedef struct sv_ctx sv_ctx;
typedef struct sv_watch sv_watch;
typedef struct sv_timer sv_timer;
typedef struct sv_buf sv_buf;
typedef struct sv_linebuf sv_linebuf;
typedef struct sv_ring sv_ring;
typedef struct sv_probe sv_probe;
typedef struct svc svc;
typedef struct svc_cold svc_cold;
typedef struct sv_client sv_client;
typedef struct sv_hclient sv_hclient;
typedef struct sv_ctl_req sv_ctl_req;
typedef struct sv_reload_job sv_reload_job;

typedef enum {
    SVC_STOPPED = 0,
    SVC_WAITING,
    SVC_STARTING,
    SVC_READY,
    SVC_STOPPING,
    SVC_BACKOFF,
    SVC_EXITED,
    SVC_FAILED,
    SVC_NSTATES
} svc_state;

/* Why a running service is being stopped: decides what happens when it has exited. */
typedef enum {
    STOP_NONE = 0,
    STOP_WANTED,  /* `stop NAME` or shutdown: -> STOPPED */
    STOP_RESTART, /* `restart NAME` or reload: start again at once */
    STOP_FAILED,  /* start_period or liveness failure: a failure for the restart policy */
    STOP_REMOVE   /* removed by reload: free the slot */
} svc_stop_reason;

/* --- structs ------------------------------------------------------------------------------- */

typedef void (*sv_watch_fn)(sv_ctx *sv, sv_watch *w, uint32_t events);
typedef void (*sv_timer_fn)(sv_ctx *sv, void *arg);

/* An fd registered with the loop. fd == -1 when not registered. */
struct sv_watch {
    int fd;
    uint32_t events;
    sv_watch_fn cb;
    void *arg;
};

/* A one-shot deadline (monotonic ms). Registered once (timer_init), armed/disarmed at will. */
struct sv_timer {
    int64_t at;
    int armed;
    unsigned reg; /* its index in sv_ctx.timers + 1, 0 before timer_init */
    sv_timer_fn cb;
    void *arg;
};

/* A bounded growable byte buffer: appends beyond `max` fail (and count in `dropped`). */
struct sv_buf {
    char *data;
    size_t len, cap, max;
    uint64_t dropped;
};

/* Splits a byte stream into lines of at most SV_LINE_MAX bytes. Complete lines are delivered
 * from the caller's bytes; only a partial line waits in buf (so a service that writes whole lines
 * never touches it: with 1000 services, untouched pages are memory not spent). */
struct sv_linebuf {
    size_t len;
    int cutting; /* the current line was cut; discard until its newline */
    char *buf;   /* SV_LINE_MAX bytes, owned by the caller (a service's cold tail) */
};

/* The last lines of one service: at most SV_RING_LINES lines and max_bytes bytes. The pointer
 * array grows by doubling up to SV_RING_LINES, so a quiet service costs nothing. */
/* One kept line: when it arrived (wall clock, for `logs -t|--since`) and its supervisor-wide
 * sequence number (the order of arrival, so `logs` of all services interleaves them as they came). */
typedef struct sv_line {
    int64_t at_ms;
    uint64_t seq;
    char text[];
} sv_line;

struct sv_ring {
    sv_line **lines;
    size_t cap;                /* entries in lines (0 before the first line) */
    size_t head, count, bytes; /* head: index of the oldest line */
    size_t max_bytes;          /* 0: SV_RING_BYTES */
};

/* A tcp/http probe's resolved target (resolved once per definition). */
/* A tcp/http probe's exchange: connecting, then (http) writing the request, reading the answer. */
typedef enum { PROBE_CONNECTING = 0, PROBE_WRITING, PROBE_READING } sv_probe_phase;
/* The supervisor's shutdown: running, stopping in reverse dependency order, hurrying (SIGKILL sent). */
typedef enum { SV_RUNNING = 0, SV_STOPPING, SV_HURRYING } sv_stop_phase;

typedef struct sv_probe_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char hostport[256];
    char path[256];
} sv_probe_addr;

/* A tcp/http probe's buffers: touched only by services that have such a probe. */
typedef struct sv_probe_io {
    char io[512]; /* http: request, then the start of the response */
    sv_probe_addr addr;
} sv_probe_io;

struct sv_probe {
    svc *s;
    int is_live;
    const mf_probe *def;
    int active; /* probing is wanted (the next run is armed after each result) */
    int running;
    int64_t t0_ns;
    sv_watch w;         /* tcp/http socket */
    pid_t pid;          /* exec probe child */
    sv_timer t_next;    /* next run */
    sv_timer t_timeout; /* the running probe's deadline */
    sv_probe_io *x;     /* its buffers, in the cold tail of the svc (see struct svc) */
    size_t io_len, io_off;
    sv_probe_phase phase; /* tcp/http: where the exchange is */
    int addr_ok;          /* x->addr holds the resolved target */
    /* a passing tcp/http ready probe is READY only on the service's own listener (holder.c) */
    sv_watch vw;       /* the holder child's answer */
    pid_t vpid;        /* the holder child */
    unsigned vuid;     /* the uid of the listener it looks for */
    char pass_msg[24]; /* what the probe said ("connected", "HTTP 200") while the holder is looked up */
    int wait_held;     /* passed: waits for the service's pre-spawn lookup (svc.hpid) */
    /* last result */
    int has_result, ok;
    double latency_ms;
    char msg[SV_PROBE_MSG];
    int64_t result_ms;
};

struct svc {
    int used;
    char name[MF_NAME_MAX + 1];
    const mf_service *def;      /* points into a manifest owned by sv_ctx (current or retired) */
    const mf_service *next_def; /* reload: the definition to use on the next start */
    svc_state state;
    int64_t state_ms; /* when the current state was entered */
    int want;         /* 1: should be running */
    pid_t pid;        /* main process (also its process group and session id) */
    int64_t spawn_ms, ready_ms;
    int restarts; /* total restarts since the supervisor started */
    int attempt;  /* backoff attempt (0 = first restart waits initial) */
    int nrt;      /* restart times kept in rtimes (ring of the last ones) */
    int has_exit, last_code, last_sig;
    int64_t last_exit_ms;
    int completed; /* oneshot: exited 0 */
    svc_stop_reason stop_reason;
    int live_fails;
    int sweeps;                     /* start attempts spent waiting for the previous run's leftovers to die */
    sv_timer t_state;               /* BACKOFF: restart; STARTING: start_period; STOPPING: SIGKILL */
    sv_watch out[2];                /* stdout, stderr pipes (read ends) */
    sv_linebuf lb[2];               /* their buffers are lbuf[] */
    sv_watch notify;                /* ready: {notify: N}: the read end of the service's fd N, until READY */
    unsigned long long start_ticks; /* pid's start time (/proc stat field 22), for the state file */
    sv_ring ring;
    uint64_t dropped, dropped_reported;
    sv_probe ready, live;
    /* never a false READY (holder.c): who else listens on the ready probe's port */
    int held_before;          /* a listener was there before this run was spawned */
    unsigned long held_inode; /* the foreign listener found last (a pass on it fails at once) */
    unsigned long own_inode;  /* a listener this run was found to hold (its probes pass on it) */
    pid_t held_pid;           /* its process, 0 when not (or no longer) held */
    char held_comm[16];
    sv_watch hw;   /* the pre-spawn lookup of who holds it (a holder.c child) ... */
    pid_t hpid;    /* ... its pid while it has not answered: it outlives a crashing run */
    sv_watch sdn;  /* ready: {sd_notify: true}: this run's NOTIFY_SOCKET (sdnotify.c) */
    sv_timer t_wd; /* watchdog: restart unless WATCHDOG=1 comes first */
    int sd_warned; /* a refused sender or an oversized datagram was logged (once per run) */
    svc_cold *c;   /* sv_ctx.cold[its slot] */
};

/* A service's large parts, written only when used (a partial output line, restarts, a tcp/http
 * probe). They live in an array beside the slots, so the slots' small parts are packed together:
 * 1000 quiet services touch 1000 * sizeof(svc) bytes, not a page or more each (7.2 MB -> 4 MB). */
struct svc_cold {
    char lbuf[2][SV_LINE_MAX];
    int64_t rtimes[SV_RESTART_RING];
    sv_probe_io ready_io, live_io;
    char sd_status[128]; /* the last STATUS= of an sd_notify service */
};

struct sv_client {
    sv_watch w;
    char req[SV_CTL_REQ_MAX];
    size_t req_len;
    sv_buf out;
    int closing;     /* close once `out` is written */
    int follow;      /* logs -f: slot index + 1 of the followed service, -1: every service */
    int backlog;     /* logs: kept lines still to send (after cursor), a buffer-full at a time */
    int lflags;      /* logs: CTL_LOG_* */
    int lslot;       /* logs: slot index + 1 of the service, 0: every service */
    uint64_t cursor; /* logs: seq of the last kept line sent */
    int64_t since_ms;
    int restart_wait; /* restart: slot index + 1; answered when the service is READY or has failed */
    int reload_wait;  /* `reload`: answered when the parse (off the loop) is over and applied */
    int64_t last_io_ms;
};

struct sv_hclient {
    sv_watch w;
    char req[SV_HTTP_REQ_MAX];
    size_t req_len;
    sv_buf out;
    int64_t last_io_ms;
    int64_t accepted_ms; /* the exchange must be over by accepted_ms + SV_HTTP_DEADLINE_MS */
};

/* A parsed control request. */
typedef enum { CTL_PING = 0, CTL_STATUS, CTL_START, CTL_STOP, CTL_RESTART, CTL_LOGS, CTL_RELOAD } sv_ctl_cmd;

struct sv_ctl_req {
    sv_ctl_cmd cmd;
    int json;         /* status json */
    int check;        /* status check: answer `unhealthy <why>` instead of `ok` unless healthy */
    int follow;       /* logs ... follow */
    long nlines;      /* logs: how many lines (default 50, -1 all kept) */
    int ts;           /* logs: prefix each line with its time */
    int wait;         /* restart: answer once READY or failed */
    int64_t since_ms; /* logs: only lines that arrived at or after this wall-clock time */
    char name[MF_NAME_MAX + 1];
};

struct sv_ctx {
    int epfd;
    int sigfd;
    sv_watch sigw;
    int64_t start_ms;
    pid_t self;
    int is_pid1;
    const char *manifest_path;
    const char *only;     /* `run --only` list, or NULL: every service */
    manifest *mf;         /* current manifest */
    manifest *retired[8]; /* older manifests still referenced by a stopping service */
    char **env;           /* supervisor env + manifest env, no secret ("K=V", NULL-terminated) */
    char **secrets;       /* every secret "NAME=value": a service gets those its `secrets:` names */
    svc slots[SV_MAX_SLOTS];
    svc_cold cold[SV_MAX_SLOTS];        /* slots[i].c == &cold[i] */
    size_t nslots;                      /* slots ever used (loops stop here: untouched slots stay unpaged) */
    uint16_t name_index[SV_NAME_INDEX]; /* slot index + 1 by name hash, 0 empty (svc.c) */
    size_t name_width;                  /* longest service name, for aligned output */
    sv_timer *timers[SV_MAX_TIMERS];
    size_t ntimers;
    /* output */
    int out_fd;
    int out_json;
    int out_pollable; /* stdout can be polled (pipe, tty, socket) */
    int out_flags_saved, err_flags_saved;
    sv_watch outw;
    sv_buf outq;
    /* shutdown */
    sv_stop_phase stopping; /* SV_RUNNING (0: tests read it as "not stopping"), then the shutdown */
    int exit_code;
    int done;
    int64_t stop_deadline;
    sv_timer t_stop;    /* the whole-budget deadline */
    sv_timer t_orphans; /* re-scan for leftover processes */
    int unsettled;      /* a state changed since the last settle pass (svc_settle) */
    int shed_pending;   /* start-up or a reload is under way: mem_shed once it is over */
    sv_timer t_eval;    /* more services to start than SV_SPAWN_BATCH: go on next iteration */
    int spawned;        /* services spawned in this loop iteration (loop_once resets it) */
    uint64_t line_seq;  /* seq of the last line kept by any service */
    int state_dirty;    /* a service was spawned: rewrite the state file before sleeping */
    int reload_pending;
    sv_reload_job *rjob; /* the reload being parsed in a thread (run.c), or NULL */
    int reload_again;    /* another reload was asked for meanwhile: parse again when it is over */
    sv_watch reload_w;   /* its eventfd */
    /* leftovers of an earlier run (procs.c) */
    char *state_path; /* <control socket>.state */
    char run_id[48];  /* "<pid>.<start time>": this run's marker */
    /* control */
    char *ctl_path;
    sv_watch ctlw;
    sv_client clients[SV_MAX_CLIENTS];
    sv_timer t_io; /* idle client sweep */
    /* status http */
    sv_watch httpw;
    sv_hclient hclients[SV_HTTP_CLIENTS];
};

/* --- policy.c: pure functions (unit-tested) ------------------------------------------------ */

/* State name ("READY"), or "?" */
const char *svc_state_name(svc_state st);
/* 1 if the state machine allows from -> to. */
int svc_transition_ok(svc_state from, svc_state to);
/* Delay before restart number `attempt` (0-based): initial * 2^attempt, capped at max, >= 0. */
int64_t backoff_delay(int64_t initial_ms, int64_t max_ms, int attempt);
/* Backoff attempt to use for the next restart: 0 if the process ran >= reset_ms, else attempt. */
int backoff_attempt_after_run(int attempt, int64_t ran_ms, int64_t reset_ms);
/* 1 if `count` restarts (times[], n kept) already happened within `window_ms` before now, so one
 * more would exceed the limit. count <= 0 means no limit. */
int restart_limit_hit(const int64_t *times, int n, int count, int64_t window_ms, int64_t now);
/* Record a restart time in a ring of SV_RESTART_RING entries (*n grows up to the cap). */
void restart_record(int64_t *times, int *n, int64_t now);
/* Does a dependency condition hold for a dependency in state `st`, `completed` = oneshot exit 0? */
int dep_cond_holds(mf_dep_cond cond, svc_state st, int completed);
/* After an exit: 1 if the policy restarts. failure = non-zero exit, signal or a failed probe. */
int restart_wanted(mf_restart policy, int failure);
/* 1 if the state has a live process */
int svc_state_running(svc_state st);

/* --- loop.c -------------------------------------------------------------------------------- */
int64_t sv_now_ms(void);
int64_t sv_now_ns(void);
int loop_init(sv_ctx *sv);
int loop_add(sv_ctx *sv, sv_watch *w, int fd, uint32_t events, sv_watch_fn cb, void *arg);
int loop_mod(sv_ctx *sv, sv_watch *w, uint32_t events);
/* Unregister and close w->fd (if >= 0); sets fd = -1. */
void loop_close(sv_ctx *sv, sv_watch *w);
void timer_init(sv_ctx *sv, sv_timer *t, sv_timer_fn cb, void *arg);
void timer_arm(sv_timer *t, int64_t at_ms);
void timer_disarm(sv_timer *t);
/* One iteration: wait for events or the earliest timer, dispatch. */
void loop_once(sv_ctx *sv);

/* --- buf.c --------------------------------------------------------------------------------- */
void sv_buf_init(sv_buf *b, size_t max);
int sv_buf_append(sv_buf *b, const void *p, size_t n);
int sv_buf_puts(sv_buf *b, const char *s);
int sv_buf_printf(sv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as the body of a JSON string (no quotes). */
int sv_buf_json_str(sv_buf *b, const char *s, size_t n);
void sv_buf_consume(sv_buf *b, size_t n);
/* Send what b holds on a non-blocking socket (stamping *last_io_ms at each progress): 1 all sent,
 * 0 the socket is full (wait for EPOLLOUT), -1 the peer is gone. */
int sv_buf_send(sv_buf *b, int fd, int64_t *last_io_ms);
void sv_buf_free(sv_buf *b);

/* --- output.c ------------------------------------------------------------------------------ */
typedef void (*sv_line_fn)(void *ud, const char *line, size_t len, int cut);
/* Feed bytes; calls fn for each complete line (without '\n'). Lines longer than SV_LINE_MAX are
 * delivered cut (cut = 1) and the rest of that line is discarded. */
void linebuf_feed(sv_linebuf *lb, const char *p, size_t n, sv_line_fn fn, void *ud);
/* Deliver a pending partial line (at EOF). */
void linebuf_flush(sv_linebuf *lb, sv_line_fn fn, void *ud);
/* Keep a line; returns the kept copy (NULL when out of memory). */
const sv_line *ring_push(sv_ring *r, const char *line, size_t len, int64_t at_ms, uint64_t seq);
int64_t sv_wall_ms(void);
/* i-th kept line (0 = oldest) or NULL */
const char *ring_get(const sv_ring *r, size_t i);
const sv_line *ring_line(const sv_ring *r, size_t i);
/* index of the first kept line whose seq is > seq (count if none) */
size_t ring_after(const sv_ring *r, uint64_t seq);
void ring_free(sv_ring *r);
int output_init(sv_ctx *sv, int fd, int json);
/* Queue one line of service `s` (stream 1 stdout, 2 stderr, 0 supervisor) for our stdout. */
void output_line(sv_ctx *sv, svc *s, int stream, const char *line, size_t len);
/* Start reading a service's pipes. */
void output_attach(sv_ctx *sv, svc *s, int fd_out, int fd_err);
/* Close a service's pipes (flushing partial lines). */
void output_detach(sv_ctx *sv, svc *s);
/* Best-effort non-blocking flush, restore the fd flags. */
void output_finish(sv_ctx *sv);

/* --- mem.c -------------------------------------------------------------------------------- */

/* Once no service is WAITING or STARTING: drop the program's read-only pages from our page tables
 * (they come back from the page cache when used); clears sv->shed_pending. */
void mem_shed(sv_ctx *sv);

/* --- spawn.c ------------------------------------------------------------------------------- */
/* Build the environment: supervisor env, then each vector in order (later keys win). Caller frees
 * with xt_strv_free. */
char **env_merge(char *const *base, char *const *a, char *const *b);
/* Start argv as a session leader with a clean signal mask, stdin /dev/null, stdout/stderr to the
 * given fds (or /dev/null when -1), as `id` (resolved by users.c; NULL or unset: as we are) when
 * root; notify_src, when >= 0, is the child's fd notify_fd (ready: {notify: N}). Returns the pid, or -1 with
 * a message in err (exec failures are reported after the child's exit, see *exec_errno). */
pid_t spawn_process(char *const *argv, char *const *env, const char *workdir, const mf_ident *id, int fd_out,
                    int fd_err, int notify_src, int notify_fd, int *exec_errno, char *err, size_t errlen);

/* --- svc.c --------------------------------------------------------------------------------- */
void svc_set_state(sv_ctx *sv, svc *s, svc_state to);
svc *svc_find(sv_ctx *sv, const char *name);
svc *svc_add(sv_ctx *sv, manifest *mf, const mf_service *def);
void svc_request_start(sv_ctx *sv, svc *s);
void svc_request_stop(sv_ctx *sv, svc *s, svc_stop_reason why);
void svc_request_restart(sv_ctx *sv, svc *s);
/* A child exited: returns 1 if it was a service or probe process. */
int svc_on_child_exit(sv_ctx *sv, pid_t pid, int status);
/* Once per loop iteration, before it sleeps: start the WAITING services whose conditions hold, or
 * move a shutdown on, until nothing changes (a state change only marks sv->unsettled). */
void svc_settle(sv_ctx *sv);
/* t_eval's callback: the next batch of starts. */
void svc_on_eval_timer(sv_ctx *sv, void *arg);
void svc_probe_result(sv_ctx *sv, svc *s, int is_live, int ok);
int svc_deps_ok(sv_ctx *sv, const svc *s);
void svc_free_slot(sv_ctx *sv, svc *s);
/* Stop watching the service's notification fd (ready: {notify: N}), if it is watched. */
void svc_notify_close(sv_ctx *sv, svc *s);
/* A running service failed (watchdog): stop it; the restart policy decides what follows. */
void svc_fail(sv_ctx *sv, svc *s);

/* --- probe.c ------------------------------------------------------------------------------- */
void probe_setup(sv_ctx *sv, svc *s);
/* Begin probing (ready: right away; live: after its start_period). */
void probe_begin(sv_ctx *sv, sv_probe *p, int64_t first_at);
void probe_cancel(sv_ctx *sv, sv_probe *p);
/* An exec probe child exited: returns 1 if pid was one. */
int probe_on_child_exit(sv_ctx *sv, pid_t pid, int status);

/* At a spawn (before the fork): note whether the ready probe's port already has a listener, and
 * if so look up whose (in a child; its answer outlives this run, which may crash at once on it). */
void probe_before_spawn(sv_ctx *sv, svc *s);
/* The slot is freed: stop that lookup. */
void probe_holder_close(sv_ctx *sv, svc *s);

/* --- sdnotify.c ---------------------------------------------------------------------------- */
/* Register the watchdog timer (once per slot). */
void sdnotify_init(sv_ctx *sv, svc *s);
/* Before a spawn: this run's datagram socket; env gets "NOTIFY_SOCKET=@name". 0, or -1 + err. */
int sdnotify_open(sv_ctx *sv, svc *s, char *env, size_t envlen, char *err, size_t errlen);
/* The run is over: close its socket, disarm its watchdog. */
void sdnotify_close(sv_ctx *sv, svc *s);

/* --- holder.c ------------------------------------------------------------------------------ */
/* TCP sockets listening where ss points (its address, the wildcard, dual stack): their inodes (at
 * most max) and the uid of one. Returns the count, or -1 when the kernel cannot say (no sock_diag). */
int holder_listeners(const struct sockaddr_storage *ss, unsigned long *inodes, int max, unsigned *uid);
/* 1 if pid has one of those sockets open (looking at a bounded number of its fds). */
int holder_fast(pid_t pid, const unsigned long *inodes, int n);
/* A child that finds which process has one of the sockets open and writes one line on the pipe
 * whose read end is *rfd: "own" (svc_pid's session or an escapee of s's run; never when svc_pid is
 * 0), "held <pid> <comm>" or "none". Returns its pid or -1. */
pid_t holder_start(sv_ctx *sv, const svc *s, pid_t svc_pid, const unsigned long *inodes, int n, int *rfd);

/* --- run.c --------------------------------------------------------------------------------- */
/* Supervise; only: NULL for every service, else a --only list (see sv_select). */
int sv_run(const char *manifest_path, const char *only);
void sv_shutdown(sv_ctx *sv, int code, const char *why);
void sv_stop_progress(sv_ctx *sv);
/* Re-read the manifest: parsed in a thread, applied by the loop when done (on error the old one
 * stays); the control clients with reload_wait get the answer then. */
void sv_reload_request(sv_ctx *sv);
const char *sv_manifest_default(void);
/* --- https_probe.c ---------------------------------------------------------------------------- */
/* `xtask-supervisor __probe-https ...` (the child of an https probe). Exit codes: */
#define SV_HTTPS_NOT_2XX 1 /* answered, not 2xx */
#define SV_HTTPS_FAILED 2  /* no answer: connection, TLS or timeout */
#define SV_HTTPS_NO_CURL 3 /* libcurl.so.4 cannot be loaded */
int sv_https_probe_main(int argc, char **argv);

/* Refuse what the manifest allows but this runtime cannot do (https probes without libcurl), and
 * resolve its users and groups (users.c): -1 + file:line:col. Called by check, run and reload. */
int sv_check_support(manifest *m, char *err, size_t errlen);

/* --- users.c ------------------------------------------------------------------------------- */
/* Resolve every service's `user:` / `group:` into its ident (the files, then getent; never NSS in
 * this process). -1 with "file:line:col: service 'x': unknown user 'y' ..." in err. */
int users_resolve(manifest *m, char *err, size_t errlen);

/* --- select.c ------------------------------------------------------------------------------ */
/* `run --only LIST`: LIST is names separated by ',' (or blanks). keep[i] = 1 for each named service
 * and everything it depends on, transitively. Returns how many are kept, or -1 with a message
 * (unknown name with a did-you-mean, empty list) in err. */
int sv_select(const manifest *m, const char *list, unsigned char keep[MF_MAX_SERVICES], char *err,
              size_t errlen);

/* --- procs.c ------------------------------------------------------------------------------- */
/* Pids whose parent is `parent` (from /proc), at most max; returns the count. */
int procs_children(pid_t parent, pid_t *out, int max);
/* Our children (orphans reparented to us) whose environment says they belong to service `name`. */
int procs_leftovers(pid_t self, const char *name, pid_t *out, int max);
void procs_comm(pid_t pid, char *out, size_t len);
/* Whether /proc/<pid>/environ holds the entry "KEY=value" exactly. */
int procs_env_has(pid_t pid, const char *entry);
/* What the supervisor reads of /proc/<pid>/stat (procs_stat, its one reader). */
typedef struct {
    char state; /* R, S, Z, ... */
    pid_t ppid, pgid, sid;
    unsigned long long start; /* clock ticks since boot */
} procs_info;
/* pid's /proc/<pid>/stat fields: 0, or -1 when it is gone. */
int procs_stat(pid_t pid, procs_info *out);
/* Write sv->state_path: this run's id and each running service's pid and start time. */
void procs_state_save(sv_ctx *sv);
/* At start: stop what an earlier supervisor of this manifest (same state file) left running: the
 * processes with its XTASK_SUPERVISOR_RUN marker, and the members of its services' process groups
 * (pid + start time checked: a recycled pid is never touched). SIGTERM, SIGKILL after term_ms;
 * returns how many were found. Nothing is done while that supervisor is still alive. */
int procs_cleanup_previous(sv_ctx *sv, int64_t term_ms);

/* --- control.c ----------------------------------------------------------------------------- */
/* Parse one request line (no newline). 0 or -1 with a message. */
int ctl_parse(const char *line, sv_ctl_req *req, char *err, size_t errlen);
int control_open(sv_ctx *sv, const char *path, char *err, size_t errlen);
void control_close(sv_ctx *sv);
/* The answer in c->out is complete: send it and close. */
void control_reply(sv_ctx *sv, sv_client *c);
/* A line of service s was produced: feed followers. */
void control_follow_line(sv_ctx *sv, svc *s, const sv_line *l);
/* A service changed state: answers the `restart NAME wait` clients waiting for it. */
void control_state_changed(sv_ctx *sv, svc *s);

/* --- status.c ------------------------------------------------------------------------------ */
void status_json(sv_ctx *sv, sv_buf *b);
void status_table(sv_ctx *sv, sv_buf *b);
void status_metrics(sv_ctx *sv, sv_buf *b);
/* 1 when every essential service is READY (or completed, for a oneshot) */
int status_healthy(sv_ctx *sv);
/* Same, and when not healthy, why in `why` ("stopping" or "web STARTING, xtask BACKOFF"; cut to fit). */
int status_check(sv_ctx *sv, char *why, size_t len);

/* --- httpd.c ------------------------------------------------------------------------------- */
int httpd_open(sv_ctx *sv, const char *hostport, char *err, size_t errlen);
/* Close idle HTTP clients; 1 if some are still open. */
int httpd_sweep(sv_ctx *sv);
void httpd_close(sv_ctx *sv);
/* Parse "host:port" (IPv4, [IPv6] or a name resolved once) into addr. */
int sv_parse_hostport(const char *hp, struct sockaddr_storage *addr, socklen_t *alen, char *err,
                      size_t errlen);

/* --- client.c ------------------------------------------------------------------------------ */
/* CLI side: send `request` to the socket, print the answer. Returns the process exit code. */
/* Send one request, print the answer. timeout_ms: how long to wait for it (-1: forever, `logs -f`).
 * Returns 0, 1 (refused / error), 3 (not running), 4 (no answer within timeout_ms). */
int client_request(const char *sock, const char *request, int64_t timeout_ms);

/* --- inline helpers ------------------------------------------------------------------------ */
static inline int svc_is_running(const svc *s)
{
    return s->pid > 0;
}

#endif
