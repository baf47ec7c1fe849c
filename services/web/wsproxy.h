/* wsproxy: the edge leaf's WebSocket path through the front (contract and why: wsproxy.c). */
#ifndef WSPROXY_H
#define WSPROXY_H

#include <stddef.h>

#include "web.h"

/* Read XTASK_WEB_LEAF_WS once at start: 0 (also when unset: the path is off), or -1 and a message
 * naming the variable (a usage error: exit 2). */
int wsproxy_init(char *err, size_t errlen);

/* Register /leafnode on a host, before its routes (the first matching prefix wins). Returns how
 * many pathconfs it added (0 when off, else 1): the host's route pathconfs start there. */
size_t wsproxy_register(h2o_hostconf_t *hostconf);

#endif
