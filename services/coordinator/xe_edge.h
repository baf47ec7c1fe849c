/*
 * xe_edge: edge nodes (docs/EDGE.md). The admin side mints a node and its join bundle in the bus
 * directory (services/bus: bus_ops_node_add, bus_join); the machine side joins with that bundle.
 *
 *   xtask node add NAME [--capability C]... [--tag T]... [--expires DUR] [--hub URL]...
 *                       [--bus-dir DIR] [--server URL] [--ack-wait DUR] [--out FILE]
 *   xtask node revoke NAME [--server URL] [--creds SYS_CREDS] [--bus-dir DIR]
 *   xtask node list [--bus-dir DIR] [--server URL] [--json]
 *   xtask join [BUNDLE | FILE | -] [--dir DIR] [--port N] [--http-port N] [--tasks FILE]
 *              [--region R] [--timeout DUR] [--no-check] [--print-only]
 *
 * Both return the process exit code: 0, 1 runtime, 2 usage/config (a bad, altered or expired
 * bundle). `xtask join` only returns on an error: it execs xtask-supervisor on its state directory.
 */
#ifndef XE_EDGE_H
#define XE_EDGE_H

#include <stddef.h>

/* argv[0] is "node" or "join" (the command), the rest its arguments. */
int xe_node_main(int argc, char **argv);
int xe_join_main(int argc, char **argv);

/* The edge node's view of its leaf (the node side of `xtask join`, which sets these in the node's
 * environment): XTASK_EDGE_LEAFZ, the local leaf's /leafz URL; XTASK_EDGE_HUBS, "REGION=HOST:PORT,...",
 * one per hub URL of the bundle; XTASK_EDGE_TAGS, "a,b". Not an edge node (no XTASK_EDGE_LEAFZ): -1.
 * Else the region whose hub the leaf is connected to now, into out (0), or "" when it is attached
 * nowhere (1). It asks the leaf (a loopback HTTP GET, at most 1 s): call it from one thread. */
int xe_edge_attached(char *out, size_t len);

/* The node's tags from XTASK_EDGE_TAGS (NULL-terminated, read once; NULL when unset). */
const char *const *xe_edge_tags(void);

#endif
