/*
 * wsproxy: edge nodes' leaf links over WebSocket through the front (docs/EDGE.md, "Leaf over
 * WebSocket on 443"). Networks that block 7422 let 443 through: an edge's leaf nats-server dials
 * wss://FRONT/leafnode, the front passes that one path's WebSocket upgrade to the local
 * nats-server's `websocket {}` listener, which takes it as a leaf connection (nats-server 2.9 routes
 * a WebSocket whose path starts with /leafnode to its leaf code) and authenticates it inside the
 * NATS protocol with the node's JWT, exactly as on 7422. So the path has no HTTP-layer auth, and
 * nothing else on that listener (clients, MQTT) is reachable through the front.
 *
 * h2o 2.2.5's reverse proxy does the upgrade itself (`websocket.enabled`: it forwards
 * `Upgrade: websocket`, and on the upstream's 101 splices the two sockets with h2o_tunnel), so
 * this file only guards the path: a request that is not a WebSocket handshake over HTTP/1.1 GET is
 * answered 400 here and never reaches the broker.
 *
 * Configuration: XTASK_WEB_LEAF_WS=http://127.0.0.1:PORT (the nats-server websocket listener,
 * loopback only); unset = no such path.
 */
#include "wsproxy.h"

#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "xt_log.h"

#define WSPROXY_PATH "/leafnode"    /* nats-server 2.9's leafNodeWSPath: the remote always asks it */
#define WSPROXY_IDLE_MS (5 * 60000) /* > nats-server's 2 min ping interval: an idle leaf stays */
#define WSPROXY_CONNECT_MS 10000

static char upstream[128]; /* "" = off */

int wsproxy_init(char *err, size_t errlen)
{
    const char *u = getenv("XTASK_WEB_LEAF_WS");
    h2o_url_t url;
    upstream[0] = '\0';
    if (u == NULL || *u == '\0') return 0;
    if (strlen(u) >= sizeof(upstream) - sizeof(WSPROXY_PATH) || h2o_url_parse(u, SIZE_MAX, &url) != 0 ||
        url.scheme != &H2O_URL_SCHEME_HTTP || url.path.len > 1 ||
        !(h2o_memis(url.host.base, url.host.len, H2O_STRLIT("127.0.0.1")) ||
          h2o_memis(url.host.base, url.host.len, H2O_STRLIT("localhost")) ||
          h2o_memis(url.host.base, url.host.len, H2O_STRLIT("[::1]")))) {
        snprintf(err, errlen,
                 "XTASK_WEB_LEAF_WS '%s': want http://127.0.0.1:PORT (the local nats-server's websocket "
                 "listener; loopback only)",
                 u);
        return -1;
    }
    snprintf(upstream, sizeof(upstream), "%.*s://%.*s:%u%s", (int)url.scheme->name.len, url.scheme->name.base,
             (int)url.host.len, url.host.base, (unsigned)h2o_url_get_port(&url), WSPROXY_PATH);
    xt_info("leaf links over WebSocket: %s -> %s", WSPROXY_PATH, upstream);
    return 0;
}

static int guard_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    int ws = req->version < 0x200 && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
             req->upgrade.base != NULL &&
             h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket"));
    if (ws) return -1; /* the proxy below */
    h2o_send_error_generic(req, 400, "Bad Request", "leaf links only: a WebSocket upgrade\n",
                           H2O_SEND_ERROR_KEEP_HEADERS);
    return 0;
}

size_t wsproxy_register(h2o_hostconf_t *hostconf)
{
    if (upstream[0] == '\0') return 0;
    h2o_pathconf_t *pc = h2o_config_register_path(hostconf, WSPROXY_PATH, 0);
    h2o_handler_t *g = h2o_create_handler(pc, sizeof(*g));
    g->on_req = guard_on_req;
    h2o_url_t url;
    h2o_url_parse(upstream, SIZE_MAX, &url); /* checked in wsproxy_init */
    h2o_proxy_config_vars_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.io_timeout = WSPROXY_CONNECT_MS;
    cfg.keepalive_timeout = 0; /* an upgraded socket never returns to a pool */
    cfg.websocket.enabled = 1;
    cfg.websocket.timeout = WSPROXY_IDLE_MS;
    h2o_proxy_register_reverse_proxy(pc, &url, &cfg);
    return 1;
}
