/*
 * xn_node: the coordinator node on NATS (`xtask --nats-mode`). See the design notes at the top of
 * xn_node.c.
 */
#ifndef XN_NODE_H
#define XN_NODE_H

#include "xc_conf.h"
#include "xp_proto.h"

typedef struct {
    const xt_nats_conf *nats; /* the connection: url (comma-separated), creds, TLS, inbox prefix */
    const char *node_id;      /* decided by the caller (xp_node_id) */
    const char *region;       /* "" or NULL: FLY_REGION, else "local" */
    const xc_conf *conf;
} xn_params;

/* Run the node until SIGTERM/SIGINT; returns the process exit code (0 on a clean stop, 1 when the
 * node could not start). Blocks SIGTERM/SIGINT/SIGHUP in the calling thread before any thread
 * exists, so it must be called from main before other threads are started. */
int xn_node_run(const xn_params *p);

#endif
