/*
 * xc_conf: configs/xtask.yaml, the node's settings and its allowlists.
 *
 * Nothing runs on a node unless this file names it: tasks (name -> argv, cwd, env, timeout),
 * Taskfile tasks (only with a `task` binary and only the allowed names), silent commands,
 * download directories, ports that kill-port may free. Loaded once at start-up; errors read
 * "file:line:col: message". The loaded struct is read-only afterwards (shared by threads).
 */
#ifndef XC_CONF_H
#define XC_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "xg_guard.h"
#include "xt_conf.h"
#include "xt_nats.h"

#define XC_TASKS_MAX 256
#define XC_ENV_MAX 64
#define XC_LIST_MAX 64

/* One runnable command. */
typedef struct {
    char *name;
    char **argv; /* NULL-terminated, argv[0] looked up on PATH */
    char *cwd;   /* NULL = the node's cwd */
    char **env;  /* NULL-terminated "K=V" added to task_env (below), may be NULL */
    int64_t timeout_ms;
    int allow_args; /* extra request args are appended to argv */
    char *description;
} xc_task;

typedef struct {
    uint16_t lo, hi;
} xc_port_range;

typedef struct {
    /* node */
    char *region;         /* "" = from FLY_REGION or "local" */
    char **capabilities;  /* NULL-terminated */
    char *events_project; /* project of node.joined / node.left events */
    /* nats */
    xt_nats_conf nats; /* url, creds, tls_*, inbox_prefix, name; url NULL: flag / env / default decide */
    int64_t heartbeat_ms;
    int64_t node_ttl_ms;
    int replicas; /* xtask-results, xtask-queue, KV xtask_nodes */
    int64_t results_max_age_ms;
    size_t results_max_bytes; /* xtask-results: oldest results discarded beyond it */
    size_t queue_max_bytes;   /* xtask-queue: new submissions refused beyond it */
    size_t nodes_max_bytes;   /* KV xtask_nodes */
    int manage_streams;       /* 1: create/update the streams, the KV bucket and the queue consumers (the
                                 region's platform identity); 0: bind to them only (an edge node's rights) */
    /* audit: the stream xtask-audit (created by the node, like the other streams) */
    int64_t audit_max_age_ms;
    size_t audit_max_bytes;
    /* limits */
    int max_concurrent; /* tasks running at once */
    int max_queued;     /* requests waiting for a worker; beyond: busy */
    size_t max_request_bytes;
    size_t output_tail_bytes;
    size_t output_max_bytes;
    int64_t default_timeout_ms;
    int64_t max_timeout_ms;
    int64_t kill_grace_ms; /* SIGTERM -> SIGKILL on timeout */
    int live_lines_max;    /* live output lines published per task; the rest only counted */
    /* queue */
    char **queue_capabilities; /* pull consumer per capability (NULL-terminated) */
    int64_t ack_wait_ms;
    /* task_env: the environment every task, silent command and `--version` probe starts from;
     * never the coordinator's own (which holds credentials) */
    char **task_env_pass; /* names copied from the coordinator's environment when set */
    char **task_env_set;  /* "K=V" set for every task (after pass) */
    char **task_env;      /* the result, "K=V", built at load time; NULL-terminated */
    /* tasks */
    xc_task tasks[XC_TASKS_MAX];
    size_t ntasks;
    /* taskfile */
    int taskfile_enabled;
    char *taskfile_path; /* NULL = `task` looks up Taskfile.yml in taskfile_dir */
    char *taskfile_dir;
    char **taskfile_allow; /* names, or "*" for every task of the Taskfile */
    int64_t taskfile_timeout_ms;
    /* silent */
    xc_task silent[XC_TASKS_MAX];
    size_t nsilent;
    /* which */
    int which_version;
    int64_t which_timeout_ms;
    /* download */
    char **download_dirs; /* canonical absolute directories */
    size_t download_max_bytes;
    int64_t download_timeout_ms;
    char **download_allow_hosts;             /* names whose addresses pass the guard; NULL-terminated */
    xg_net download_allow_nets[XC_LIST_MAX]; /* networks that pass the guard (loopback for tests...) */
    size_t ndownload_allow_nets;
    /* kill-port */
    xc_port_range kill_ports[XC_LIST_MAX];
    size_t nkill_ports;
} xc_conf;

/* Fill c with the built-in defaults (a `noop` task only, nothing else allowed). */
void xc_conf_defaults(xc_conf *c);

/* Load `path` over the defaults. 0, or -1 and "path:line:col: message" in err. */
int xc_conf_load(xc_conf *c, const char *path, char *err, size_t errlen);

/* Same from memory (unit tests); `name` is used in messages. */
int xc_conf_load_mem(xc_conf *c, const char *name, const char *text, xt_conf_getenv_fn getenv_fn, void *ud,
                     char *err, size_t errlen);

/* (Re)build c->task_env from task_env_pass (values read from this process's environment now; plus
 * the supervisor's XTASK_SERVICE marker, always) and task_env_set. Done by xc_conf_defaults and the loaders;
 * 0 or -1 (out of memory). */
int xc_conf_env_build(xc_conf *c);

/* Free everything c owns. */
void xc_conf_free(xc_conf *c);

/* The task named `name`, or NULL. */
const xc_task *xc_conf_task(const xc_conf *c, const char *name);

/* The silent command named `name`, or NULL. */
const xc_task *xc_conf_silent(const xc_conf *c, const char *name);

/* 1 if Taskfile task `name` may run (taskfile enabled and allowed by name or "*"). */
int xc_conf_taskfile_allows(const xc_conf *c, const char *name);

/* 1 if kill-port may act on `port`. */
int xc_conf_port_allowed(const xc_conf *c, unsigned port);

/* 1 if the node has capability `cap`. */
int xc_conf_has_cap(const xc_conf *c, const char *cap);

/* Parse "512", "64KiB", "1MiB", "1GiB" (also KB/MB/GB as powers of 1024). 0 or -1. */
int xc_size_parse(const char *s, size_t *out);

#endif
