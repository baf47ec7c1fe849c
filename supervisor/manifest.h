/*
 * manifest: configs/services.yaml as the supervisor uses it.
 *
 * manifest_load() reads, expands and validates the whole file before anything starts; every error
 * is "file:line:col: message" and the supervisor exits 2 on it. The structs below are the contract
 * between the parser (manifest.c, graph.c) and the runtime (everything else in supervisor/): the
 * runtime only reads them. Schema: docs/ARCHITECTURE.md ("The manifest").
 */
#ifndef XT_MANIFEST_H
#define XT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MF_MAX_SERVICES 1000 /* services in one manifest (s6-svscan's default too) */
#define MF_NAME_MAX 48       /* [a-z0-9][a-z0-9_-]* up to this many bytes */
#define MF_MAX_DEPS 16       /* depends_on entries of one service */
#define MF_MAX_SECRETS 32
#define MF_MAX_ARGV 256 /* command / exec probe arguments */

/* NOTIFY and LOG are readiness protocols, not polled probes: the service says when it is ready. */
typedef enum {
    PROBE_NONE = 0,
    PROBE_TCP,
    PROBE_HTTP,
    PROBE_EXEC,
    PROBE_NOTIFY,
    PROBE_LOG,
    PROBE_SD_NOTIFY
} mf_probe_kind;
/* What each kind is, indexed by mf_probe_kind (manifest.c): one table for the parser, the digest,
 * the probe runner and status. */
typedef struct {
    const char *name; /* as written in the manifest and shown by status ("none" for PROBE_NONE) */
    int polled;       /* run by probe.c every interval (tcp, http, exec): can check liveness */
    int network;      /* a host:port target whose listener's owner is checked (tcp, http) */
} mf_probe_kind_info;
extern const mf_probe_kind_info mf_probe_kinds[];
typedef enum { RESTART_ALWAYS = 0, RESTART_ON_FAILURE, RESTART_NEVER } mf_restart;
typedef enum { DEP_STARTED = 0, DEP_READY, DEP_COMPLETED } mf_dep_cond;
typedef enum { SVC_TYPE_LONGRUN = 0, SVC_TYPE_ONESHOT } mf_svc_type;
typedef enum { MF_LOG_TEXT = 0, MF_LOG_JSON } mf_log_format;
/* How a generated secret's random bytes are written (`encoding:`). */
typedef enum { MF_ENC_BASE64 = 0, MF_ENC_HEX, MF_ENC_BASE64URL } mf_secret_encoding;

#define MF_SECRET_PREFIX_MAX 32 /* `prefix:` of a secret, printable ASCII without spaces or quotes */

/* A readiness or liveness probe. kind == PROBE_NONE when absent. */
typedef struct mf_probe {
    mf_probe_kind kind;
    char *target;            /* TCP: "host:port"; HTTP: the URL */
    char **argv;             /* EXEC: NULL-terminated */
    int64_t interval_ms;     /* ready default 100ms; live default 5s */
    int64_t timeout_ms;      /* default 1s */
    int64_t start_period_ms; /* ready: give up (FAILED start) after this; default 30s.
                              * live: failures ignored for this long after READY; default 0 */
    int failures;            /* live: consecutive failures that restart the service; default 3 */
    int insecure;            /* https: do not verify the certificate */
    int notify_fd;           /* NOTIFY (s6's notification-fd): the service writes a newline to this fd */
    char *log_re;            /* LOG: an extended regular expression (POSIX regex.h) for one output line */
    void *log_compiled;      /* LOG: its regex_t, compiled at load */
    int line, col;           /* where the probe is defined */
} mf_probe;

typedef struct mf_dep {
    char *name; /* the service depended on */
    int index;  /* its index in manifest.services (set by the parser) */
    mf_dep_cond cond;
    int line, col;
} mf_dep;

/* Who a service runs as: `user:` / `group:` resolved to numbers once per load (check, run, reload),
 * so that a spawn never looks a name up. Filled by the supervisor (users.c); freed by manifest_free. */
typedef struct mf_ident {
    int set; /* `user:` given and resolved */
    uid_t uid;
    gid_t gid;      /* the user's primary group, or `group:` */
    size_t ngroups; /* supplementary groups (the user's memberships and gid) */
    gid_t *groups;  /* malloc'd, or NULL */
} mf_ident;

typedef struct mf_service {
    char *name;
    int line, col;    /* position of the service's key */
    mf_svc_type type; /* `type: longrun` (default) or `oneshot` */
    char **argv;      /* `command`, NULL-terminated, argv[0] non-empty */
    size_t argc;
    char **env;               /* `env:` of the service, "K=V" NULL-terminated (may be empty, not NULL) */
    char *workdir;            /* `workdir:` or NULL */
    char *user;               /* `user:` (name or uid) or NULL; applied only when running as root */
    mf_dep deps[MF_MAX_DEPS]; /* `depends_on: {a: ready}`; the list form `[a, b]` means ready */
    size_t ndeps;
    mf_probe ready;                  /* readiness; PROBE_NONE: ready when started (oneshot: when exited 0) */
    mf_probe live;                   /* liveness; PROBE_NONE: none */
    mf_restart restart;              /* default always (oneshot: on-failure) */
    int64_t backoff_initial_ms;      /* default 100ms */
    int64_t backoff_max_ms;          /* default 30s */
    int64_t backoff_reset_ms;        /* default 60s: running this long resets the backoff */
    int restart_limit_count;         /* default 10 restarts ... */
    int64_t restart_limit_window_ms; /* ... within 60s, then FAILED */
    int stop_signal;                 /* default SIGTERM */
    int64_t stop_timeout_ms;         /* default 3s, then SIGKILL to the process group */
    int essential;                   /* FAILED stops everything and the supervisor exits non-zero */
    int autostart;                   /* default 1; `autostart: false` waits for `xtask-supervisor start` */
    /* added after the first release (additive): */
    int user_line, user_col;   /* where `user:`'s value is (for the resolver's messages) */
    char *group;               /* `group:` (name or gid) or NULL: the primary group instead of the user's */
    int group_line, group_col; /* where `group:`'s value is */
    mf_ident ident;            /* filled by the supervisor's resolver (users.c), not by the parser */
    char **secrets;            /* `secrets: [NAME, ...]`: the top-level secrets exported to this service,
                                * and to no other (NULL-terminated, never NULL after a load) */
    char digest[65];           /* hex SHA-256 of the service's expanded definition (for reload); it also
                                * covers the top-level env and the secrets' definitions (not their
                                * values), never the supervisor: section; key order does not matter */
    int64_t watchdog_ms;       /* `watchdog:` (needs ready: {sd_notify: true}): WATCHDOG=1 at least this
                                * often once READY, else restarted; 0: none */
} mf_service;

typedef struct mf_secret {
    char *name; /* exported as this environment variable, only to the services that name it */
    int bytes;  /* random bytes (1..1024), default 32 */
    char *file; /* kept if present, else generated 0600 (directories created 0700) */
    int line, col;
    /* added after the first release (additive): */
    mf_secret_encoding encoding; /* base64 (default, padded), hex (lower case), base64url (no padding) */
    char *prefix;                /* written before the encoded bytes, or NULL: e.g. `xt` so that a program
                                  * which parses the value as a config token (nats-server) never sees a
                                  * leading digit */
} mf_secret;

typedef struct manifest {
    char *path;
    char *control_socket;    /* default ${XTASK_RUN_DIR:-/run/xtask}/supervisor.sock */
    int64_t stop_timeout_ms; /* whole shutdown budget, default 4s */
    char *status_http;       /* "host:port" or NULL */
    mf_log_format log_format;
    char **env; /* top-level `env:` as "K=V", NULL-terminated (never NULL) */
    mf_secret secrets[MF_MAX_SECRETS];
    size_t nsecrets;
    mf_service *services; /* nservices of them, allocated for the count the file has */
    size_t nservices;
    int *order; /* a start order: dependencies before dependents (nservices entries) */
} manifest;

/* Read, expand and validate `path`. On success *out is owned by the caller (manifest_free).
 * On failure -1 and "path:line:col: message" in err; nothing is left allocated. */
int manifest_load(const char *path, manifest **out, char *err, size_t errlen);

/* Same from memory (tests). `name` is used in messages. */
int manifest_load_mem(const char *name, const char *text, size_t len, manifest **out, char *err,
                      size_t errlen);

/* Free a manifest. Accepts NULL. */
void manifest_free(manifest *m);

/* Index of service `name`, or -1. */
int manifest_find(const manifest *m, const char *name);

/* Secrets: for each secret, read its file if it exists (must be a regular file, not world- or
 * group-readable, non-empty), else generate `bytes` random bytes from getrandom(2), encode
 * them (`encoding`, after `prefix`) and write them 0600 (atomically: temp file + rename). The values are
 * appended to *env as "NAME=value" (env is a NULL-terminated malloc'd vector the caller frees with
 * xt_strv_free). The values are never logged. */
int manifest_secrets_load(const manifest *m, char ***env, char *err, size_t errlen);

/* --- graph.c ------------------------------------------------------------------------------ */

/* Fill m->order with a topological order (stable: file order among independent services).
 * On a cycle: -1 and "path:line:col: dependency cycle: a -> b -> c -> a". */
int graph_order(manifest *m, char *err, size_t errlen);

#endif
