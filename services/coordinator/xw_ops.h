/*
 * xw_ops: the node's non-task verbs: which.check, got.download, kill-port.
 *
 * Each takes the parsed request and the node's configuration and returns the JSON reply (success
 * or `{"error":..}`), malloc'd, owned by the caller. They block (processes, network, /proc scans):
 * call them from a worker thread.
 */
#ifndef XW_OPS_H
#define XW_OPS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "xc_conf.h"

/* which.check `{"name":"git"}` -> `{"name","found","path","version"}`. */
char *xw_which(const xc_conf *c, json_t *req);

/* got.download `{"url","output","sha256"?}` -> `{"path","bytes","sha256"}`. */
char *xw_download(const xc_conf *c, json_t *req);

/* kill-port.{port} -> `{"port","found","killed":[pids]}`. */
char *xw_kill_port(const xc_conf *c, unsigned port);

/* Find the pids holding a TCP socket that listens on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}
 * and /proc/<pid>/fd. `proc_root` is "/proc" (tests may point elsewhere). Returns the count (up to
 * max) and fills pids. */
size_t xw_port_listeners(const char *proc_root, unsigned port, pid_t *pids, size_t max);

/* Resolve `path` (absolute; the file itself may not exist) and check that its directory lies inside
 * one of `dirs` (canonical). 0 and the canonical path in out, or -1 with a message. */
int xw_path_allowed(char *const *dirs, const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Search PATH for an executable `name` (no '/'); 0 and the path in out, or -1. */
int xw_which_path(const char *name, char *out, size_t outlen);

#endif
