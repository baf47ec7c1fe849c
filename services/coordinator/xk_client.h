/*
 * xk_client: the `xtask` client commands (nodes, run, submit, result, ping) over NATS.
 * Each returns the process exit code (see XK_EXIT_*; `run` returns the task's own code).
 */
#ifndef XK_CLIENT_H
#define XK_CLIENT_H

#include <stdint.h>

#include "xt_nats.h"

#define XK_EXIT_OK 0
#define XK_EXIT_ERROR 1     /* error reply, no reply, not found */
#define XK_EXIT_USAGE 2     /* bad command line or configuration */
#define XK_EXIT_NO_NATS 3   /* could not connect to NATS */
#define XK_EXIT_TIMEOUT 124 /* `run`: the task timed out (as timeout(1)) */

typedef struct {
    const xt_nats_conf *nats; /* url, creds, TLS, inbox prefix (config, then XTASK_NATS_*, then flag) */
    const char *node;         /* run: target node; ping: the local node id */
    int any;                  /* run: pick a node through discover */
    const char *project;
    const char *capability; /* nodes: filter; submit: queue capability */
    const char *region;     /* nodes: filter */
    const char *platform;   /* nodes: filter */
    const char *id;         /* result: the id (submit: refused, ids are made by the platform) */
    const char *user;       /* audit: only this user's records */
    int64_t since_ms;       /* audit: records of the last since_ms (0 = all) */
    long limit;             /* audit: the newest N records (0 = 100) */
    int json;               /* nodes: print JSON */
    int quiet;              /* run: no live output */
    int64_t timeout_ms;     /* request timeout (nodes: gather window; run: task timeout) */
    int64_t wait_ms;        /* result/submit: wait this long for the result */
    char **args;            /* run/submit: task name and arguments (NULL-terminated) */
} xk_opts;

int xk_nodes(const xk_opts *o);
int xk_run(const xk_opts *o);
int xk_submit(const xk_opts *o);
int xk_result(const xk_opts *o);
int xk_ping(const xk_opts *o);
int xk_audit(const xk_opts *o);

/* Who the CLI says asked for a task (requested_by): XTASK_USER, else the login name of the uid. */
const char *xk_requester(void);

#endif
