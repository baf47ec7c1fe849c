/*
 * xtask-web: the h2o front (forward-auth, reverse proxy, static files) with the GUI, the task API
 * and the SSE event stream fed by NATS.
 *
 * One process, one h2o event loop per thread (`threads`, one per CPU by default), each with its own
 * listeners (SO_REUSEPORT), connections and module state; the configuration is shared read-only.
 * nats.c delivers on its own threads; everything it hands over crosses into the loops as
 * h2o_multithread messages (bus.c), never by touching h2o objects.
 *
 * Modules (one file each):
 *   conf.c    web.yaml -> web_conf (validated, positions in every error)
 *   front.c   the guard in front of every route: path normalization, route selection, client
 *             header hygiene, limits, forward-auth subrequests to the auth service
 *   bus.c     the NATS connection, subscriptions, async requests over one inbox, the node registry
 *   events.c  SSE clients: bounded per-client queues, fan-out, heartbeats, shutdown
 *   api.c     /api/v1/{tasks,nodes,services}, /health, supervisor status polling
 *   main.c    flags, h2o setup, the loop threads, signals, the bounded drain
 */
#ifndef XT_WEB_H
#define XT_WEB_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <jansson.h>
#include <nats/nats.h>

#include "xt_nats.h"
#include "xt_conf.h"

#define WEB_VERSION "0.1.0"
#define WEB_MAX_HOSTS 16
#define WEB_MAX_NAMES 8
#define WEB_MAX_ROUTES 32
#define WEB_MAX_HEADERS 16
#define WEB_MAX_COPY 8
#define WEB_MAX_LISTEN 4
#define WEB_MAX_PROXIES 16
#define WEB_PATH_MAX 4096
#define WEB_PROJECT_MAX 64

typedef struct web_server web_server;
typedef struct web_route web_route;
typedef struct web_host web_host;

/* --- configuration (conf.c) -------------------------------------------------------------- */

typedef enum {
    ROUTE_PROXY = 1,
    ROUTE_FILES,
    ROUTE_HEALTH,
    ROUTE_GUI,
    ROUTE_API,
    ROUTE_EVENTS,
    ROUTE_REDIRECT
} web_route_kind;

typedef struct {
    char *url;  /* http://host:port/path?query of the verify endpoint */
    char *host; /* parsed from url */
    uint16_t port;
    char *path_query;            /* "/api/verify?rd=..." */
    char *copy[WEB_MAX_COPY];    /* header names as configured ("Remote-User") */
    char *copy_lc[WEB_MAX_COPY]; /* lower-case ("remote-user") */
    size_t ncopy;
    int64_t timeout_ms;   /* whole subrequest budget, then 503 */
    int64_t keepalive_ms; /* idle pooled connections close after this */
    long long pool;       /* max connections to the auth service */
} web_fauth_conf;

struct web_route {
    web_route_kind kind;
    char *path;    /* prefix, h2o semantics: "/x/" matches below it, "/x" matches /x and /x/... */
    int is_public; /* forward_auth skipped */
    /* ROUTE_PROXY */
    char *upstream;
    int64_t proxy_timeout_ms;
    int64_t proxy_keepalive_ms;
    int preserve_host;
    /* ROUTE_FILES / ROUTE_GUI */
    char *root;
    /* ROUTE_REDIRECT: only an exact match of `path` is redirected (what lies below is a 404) */
    char *redirect_to;
    long long redirect_status;
};

typedef struct {
    char *name;
    char *value;
} web_header;

struct web_host {
    char *names[WEB_MAX_NAMES];                            /* lower-case, unique across every host */
    int name_line[WEB_MAX_NAMES], name_col[WEB_MAX_NAMES]; /* where each was written */
    size_t nnames;
    int has_fauth;
    web_fauth_conf fauth;
    web_header headers[WEB_MAX_HEADERS];
    size_t nheaders;
    web_route routes[WEB_MAX_ROUTES];
    size_t nroutes;
    /* web_header_key() of every identity header we strip from clients (copy_headers) */
    char *strip_lc[WEB_MAX_COPY];
    size_t nstrip;
    struct web_hostinst *inst; /* one per name and port (h2o hostconf + pathconfs), main.c */
    size_t ninst;
};

typedef struct {
    char *address; /* host:port */
    char *cert, *key;
    int http2;
} web_listen_conf;

#define WEB_MAX_RULES 64

/* One api.rules entry (rules.c). NULL lists: any (users, groups) / every task (tasks). */
typedef struct {
    int deny;
    char **users, **groups, **verbs, **tasks; /* NULL-terminated */
    int line, col;
} web_api_rule;

#define WEB_MAX_PROJECTS 64

/* One api.projects entry (rules.c): who may see the project (its events, output, results) and run
 * tasks in it. NULL users and groups: every signed-in user. */
typedef struct {
    char *name;
    char **users, **groups; /* NULL-terminated */
} web_project;

typedef struct {
    uint8_t addr[16];
    int family; /* AF_INET / AF_INET6 */
    int prefix;
} web_cidr;

typedef struct {
    char *path;
    web_listen_conf listen[WEB_MAX_LISTEN];
    size_t nlisten;
    int64_t max_header_bytes;
    int64_t max_body_bytes;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t drain_timeout_ms;
    long long threads; /* event-loop threads; 0 = one per CPU (at most WEB_MAX_THREADS) */
    web_cidr trusted[16];
    size_t ntrusted;
    xt_nats_conf nats; /* nats.url (default nats://127.0.0.1:4222), creds, tls_*, inbox_prefix, name */
    int64_t nats_request_timeout_ms;
    char *sup_status_url;    /* http://127.0.0.1:9100/status.json, optional */
    char *sup_status_socket; /* unix socket path speaking HTTP (GET /status.json), optional */
    int64_t sup_poll_ms;
    long long events_queue;
    int64_t events_heartbeat_ms;
    int64_t events_session_check_ms; /* a stream older than this ends; its reconnect re-checks the session */
    long long events_max_clients;
    long long events_sndbuf;
    char *default_project;
    char *gui_root;
    web_host hosts[WEB_MAX_HOSTS];
    size_t nhosts;
    char *log_level;
    int log_json;
    web_api_rule api_rules[WEB_MAX_RULES]; /* api.rules, in order: the first match decides */
    size_t napi_rules;
    web_project projects[WEB_MAX_PROJECTS]; /* api.projects: none = every signed-in user sees every project */
    size_t nprojects;
} web_conf;

/* Load and validate `path`. Returns 0, or -1 with "file:line:col: ..." in err. Overrides from the
 * command line (may be NULL): listen replaces the first plain-HTTP listener's address,
 * tls_listen the first TLS listener's, nats replaces nats.url. */
int web_conf_load(web_conf *c, const char *path, const char *listen, const char *tls_listen, const char *nats,
                  char *err, size_t errlen);
void web_conf_free(web_conf *c);
/* The key a header name is compared by when the front strips client claims: its letters and digits,
 * lower-cased, everything else dropped ("Remote_User", "remote.user", "REMOTE--USER" and "RemoteUser"
 * are one key, "remoteuser"), so every spelling a lenient upstream or gateway could map onto a name
 * is covered by construction. Writes at most outlen-1 bytes; -1 when the key does not fit. */
long web_header_key(const char *name, size_t len, char *out, size_t outlen);

/* 1 if sa is inside one of the trusted proxy ranges. */
int web_conf_is_trusted(const web_conf *c, const struct sockaddr *sa);

/* --- api rules (rules.c) ------------------------------------------------------------------ */

/* The verbs a rule may name (NULL-terminated). */
extern const char *const web_api_verbs[];
/* Load web.yaml's `api` section into c->api_rules. 0, or -1 with "file:line:col: ..." in err. */
int web_rules_load(const xt_doc *d, const xt_node *api, web_conf *c, char *err, size_t errlen);
void web_rules_free(web_conf *c);
/* 1 if `user` (groups: the Remote-Groups value, comma-separated) may send `verb` (task: the task
 * name for task.run, else NULL). *rule: the index of the deciding rule, -1 when none matched
 * (default deny). No user: denied. */
int web_rules_allow(const web_conf *c, const char *user, const char *groups, const char *verb,
                    const char *task, int *rule);

/* 1 if `user` (groups: Remote-Groups) may see and use `project` (api.projects; without that section,
 * every signed-in user every project). No user: 0. */
int web_project_allowed(const web_conf *c, const char *user, const char *groups, const char *project);

/* --- front (front.c) ---------------------------------------------------------------------- */

/* Per hostconf instance: the h2o objects for one server name of a host. */
typedef struct web_hostinst {
    h2o_hostconf_t *hostconf;
    h2o_pathconf_t *pathconfs[WEB_MAX_ROUTES + 1]; /* the routes in order, then "/" (catch-all) */
    struct web_guard *guards[WEB_MAX_ROUTES + 1];
} web_hostinst;

typedef struct web_guard {
    h2o_handler_t super;
    web_host *host;
    web_hostinst *inst;
    int route; /* index into host->routes, or -1 for the catch-all */
} web_guard;

/* Register the guard as the first handler of a pathconf. */
web_guard *front_register_guard(h2o_pathconf_t *pc, web_host *host, web_hostinst *inst, int route);
/* Per-host forward-auth client state (socket pool), created at start-up; freed at exit. */
int front_init(web_server *srv);
/* The checks on a raw HTTP/1 request head (pure; the fuzz harness calls it): `buf` is re-parsed with
 * libh2o's own parser and must be the head of the request whose method and path h2o saw. Returns
 * NULL, or the reason for a 400: a head that does not parse or is not this request's, Host twice,
 * Content-Length twice, Transfer-Encoding twice, or Content-Length beside Transfer-Encoding. */
const char *front_head_problem(const char *buf, size_t len, const char *method, size_t method_len,
                               const char *path, size_t path_len);
void front_dispose(web_server *srv);

/* --- bus (bus.c) ---------------------------------------------------------------------------- */

typedef struct web_node {
    char *id;
    char *region;
    json_t *record; /* the last record seen */
    uint64_t seen_ms;
    uint64_t ttl_ms; /* the record's ttl_ms: silent this long = offline */
    int offline;
    struct web_node *next;
} web_node;

/* An answer to an async request: called on the loop with the reply (NULL on timeout). */
typedef void (*bus_reply_cb)(void *data, const char *payload, size_t len, int timed_out);

typedef struct bus_request bus_request;

/* Per thread: register the loop's receiver and timers (before bus_app_start). */
int bus_start(web_server *srv);
int bus_connected(web_server *srv);
/* Publish `payload` on `subject` with a reply to our inbox; `cb` runs once on the loop (reply or
 * timeout). If `multi`, every reply until the deadline goes to cb, then one final timeout call. The
 * request is cancelled (cb never runs again) by bus_request_cancel. */
bus_request *bus_request_start(web_server *srv, const char *subject, const char *payload, size_t len,
                               int64_t timeout_ms, int multi, bus_reply_cb cb, void *data);
/* The same, one reply, with a Nats-Msg-Id header (JetStream dedup: the durable queue). */
bus_request *bus_request_start_id(web_server *srv, const char *subject, const char *msg_id,
                                  const char *payload, size_t len, int64_t timeout_ms, bus_reply_cb cb,
                                  void *data);
void bus_request_cancel(bus_request *r);
/* The shared connection, for work done off the loop (audit reads); NULL before start-up. */
natsConnection *bus_nats_conn(web_server *srv);
/* Plain publish; 0 on success. */
int bus_publish(web_server *srv, const char *subject, const char *payload, size_t len);
/* JSON array of live node records (caller decrefs). */
json_t *bus_nodes_json(web_server *srv);

/* --- events (events.c) ------------------------------------------------------------------ */

int events_init(web_server *srv);
void events_dispose(web_server *srv);
int events_on_req(web_server *srv, h2o_req_t *req);
/* From the bus (on the loop): one NATS message for the SSE clients. */
void events_on_nats(web_server *srv, const char *subject, const char *data, size_t len);
/* Nodes changed: re-render the node table for GUI clients. */
void events_nodes_changed(web_server *srv);
/* Supervisor status changed: re-render the services table. */
void events_services_changed(web_server *srv);
/* A task result known to the front (reply of a run request). */
void events_task_result(web_server *srv, const char *project, json_t *result);
/* How a task ended, in words ("exit 3", "timed out", "killed by signal 9 (KILL)"), its duration
 * ("3.4 s"), and whether it succeeded; j is a task.run reply, stored result or task.finished. */
void events_exit_text(json_t *j, char *out, size_t outlen);
void events_duration_text(json_int_t ms, char *out, size_t outlen);
int events_result_ok(json_t *j);
/* End every stream (shutdown). */
void events_close_all(web_server *srv);
/* Event streams open in the whole process (every thread). */
size_t events_nclients(web_server *srv);

/* --- api (api.c) ------------------------------------------------------------------------- */

int api_init(web_server *srv);
void api_dispose(web_server *srv);
int api_on_req(web_server *srv, h2o_req_t *req);
int api_health_on_req(web_server *srv, h2o_req_t *req);
int api_gui_on_req(web_server *srv, h2o_req_t *req, const web_route *rt);
/* Send a JSON body with status (res headers already chosen by the caller stay). Steals `body`. */
void api_send_json(h2o_req_t *req, int status, const char *reason, json_t *body);
void api_send_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg);
/* Before the NATS connection closes: wait (at most max_ms) for audit reads still running. */
void api_wait_idle(int64_t max_ms);
/* Last supervisor status document (borrowed; NULL if never fetched). */
json_t *api_services_json(web_server *srv);

/* --- server ------------------------------------------------------------------------------ */

/* One per event-loop thread. Everything in it belongs to that thread's loop; `conf` and the h2o
 * configuration are shared read-only. Handlers find theirs from the request's context
 * (web_server_of). */
struct web_server {
    web_conf *conf;
    struct web_app *app;
    unsigned index; /* thread number, 0 = the main thread */
    h2o_context_t ctx;
    h2o_evloop_t *loop;
    h2o_accept_ctx_t accept_ctx[WEB_MAX_LISTEN];
    h2o_socket_t *listeners[WEB_MAX_LISTEN];
    size_t nlisteners;
    int sig_pipe[2];
    h2o_socket_t *sig_sock;
    int shutting_down;
    uint64_t inflight; /* requests in progress (guard-counted) */
    struct web_front *front;
    struct web_bus *bus;
    struct web_events *events;
    struct web_api *api;
};

#define WEB_MAX_THREADS 16

/* The process: configuration, h2o's global configuration, the NATS connection, the threads. */
typedef struct web_app {
    web_conf conf;
    h2o_globalconf_t globalconf;
    SSL_CTX *ssl_ctx[WEB_MAX_LISTEN];
    web_server *threads[WEB_MAX_THREADS];
    unsigned nthreads;
    struct web_nats *nats;
} web_app;

static inline web_server *web_server_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(web_server, ctx, req->conn->ctx);
}

/* NATS, shared by the threads (bus.c): connect and subscribe once every thread's receiver is
 * registered; close before exit. */
int bus_app_start(web_app *app);
void bus_app_stop(web_app *app);

/* Milliseconds on the loop's clock. */
uint64_t web_now_ms(web_server *srv);
/* HTML-escape `in` into a malloc'd string. */
char *web_html_escape(const char *in, size_t len);

#endif
