/*
 * xt_nats: the one way every xtask program connects to NATS.
 *
 * A connection is described by the same keys in every configuration file (configs/xtask.yaml,
 * configs/web.yaml, configs/auth.yml's session.nats):
 *
 *   nats:
 *     url: nats://127.0.0.1:4222,nats://10.0.0.2:4222   # one or more, comma-separated
 *     creds: /data/bus/creds/web.creds                   # user JWT + nkey seed (operator mode)
 *     tls_ca: /data/bus/ca.pem                           # verify the server with this CA
 *     tls_cert: ..., tls_key: ...                        # client certificate (both or neither)
 *     inbox_prefix: _INBOX_web                           # replies come back under this prefix
 *     name: xtask-web-ams                                # the connection's name on the server
 *
 * and, for the `xtask` client commands and tools, by XTASK_NATS_URL, XTASK_NATS_CREDS,
 * XTASK_NATS_TLS_CA and XTASK_NATS_INBOX_PREFIX. Unset keys keep nats.c's behaviour (no
 * credentials, plain TCP unless the URL says tls://, the _INBOX prefix).
 *
 * One connection policy for all: send-asap always (nats.c's flusher otherwise adds ~1 ms to every
 * request/reply), reconnect forever with a jittered wait, a bounded reconnect buffer, pings every
 * 5 s. Services may start before the server (retry_connect); a CLI fails fast with the cause
 * ("authorization violation: check XTASK_NATS_CREDS"). Disconnects, reconnects, closes and async
 * errors are logged through xt_log, then handed to the program's own hooks.
 */
#ifndef XT_NATS_H
#define XT_NATS_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#include "xt_conf.h"

#define XT_NATS_URL_MAX 2048
#define XT_NATS_PREFIX_MAX 64

/* The connection keys a `nats:` map may hold: splice into the caller's list of allowed keys. */
#define XT_NATS_CONF_KEYS "url", "creds", "tls_ca", "tls_cert", "tls_key", "inbox_prefix", "name"

/* A connection's settings. Every string is malloc'd (or NULL: unset) and owned by the struct. */
typedef struct {
    char *url;          /* comma-separated server URLs */
    char *creds;        /* .creds file */
    char *tls_ca;       /* CA file (PEM) that verifies the server; implies TLS */
    char *tls_cert;     /* client certificate chain (PEM), with tls_key */
    char *tls_key;      /* client private key (PEM) */
    char *inbox_prefix; /* custom inbox prefix (no trailing dot) */
    char *name;         /* connection name shown by the server */
} xt_nats_conf;

typedef void (*xt_nats_conn_cb)(natsConnection *nc, void *ud);

/* How one program connects. Zero-initialize, then set what applies. */
typedef struct {
    int cli;                 /* 1: fail fast (no retry on a failed first connect), quiet logs */
    int retry_connect;       /* services: when no server answers yet, connect in the background
                              * (a refused credential or certificate still fails at once) */
    int global_delivery;     /* natsOptions_UseGlobalMessageDelivery */
    int64_t timeout_ms;      /* connect timeout (0: 2000 ms) */
    const char *name;        /* connection name when the conf has none */
    const char *creds_where; /* names the credential setting in hints (default "nats.creds") */
    const char *tls_where;   /* names the CA setting in hints (default "nats.tls_ca") */
    /* Hooks, called on nats.c's threads after the module has logged the event. on_connected runs
     * on the first connection (also a late one, with retry_connect) and on every reconnection. */
    xt_nats_conn_cb on_connected;
    xt_nats_conn_cb on_disconnected;
    xt_nats_conn_cb on_closed;
    natsErrHandler on_error;
    void *ud;
} xt_nats_params;

/* --- settings ----------------------------------------------------------------------------- */

/* Free the strings of `c` and zero it. Accepts NULL. */
void xt_nats_conf_free(xt_nats_conf *c);

/* Copy every set field of `src` into `dst` (replacing dst's values). -1 on out of memory. */
int xt_nats_conf_copy(xt_nats_conf *dst, const xt_nats_conf *src);

/* Read the connection keys of the `nats:` MAP `map` (other keys are the caller's to read and
 * check). `where` prefixes the names in messages ("nats", "session.nats"). Files must exist and be
 * readable now; tls_cert and tls_key go together; the inbox prefix must be a subject without
 * wildcards. Empty or null values leave a field unset (so `${XTASK_NATS_CREDS:-}` works).
 * Errors: -1 and "file:line:col: nats.creds: /x.creds: No such file or directory". */
int xt_nats_conf_parse(xt_nats_conf *c, const xt_doc *doc, const xt_node *map, const char *where, char *err,
                       size_t errlen);

/* Override from the environment for the CLIs: XTASK_NATS_URL, XTASK_NATS_CREDS,
 * XTASK_NATS_TLS_CA, XTASK_NATS_INBOX_PREFIX (set and non-empty ones win). Validated like the
 * config keys; the message names the variable. */
int xt_nats_conf_env(xt_nats_conf *c, char *err, size_t errlen);

/* Set one field by key name ("url", "creds", ...), validated; `what` names the source in messages
 * (a flag or a variable). NULL or "" unsets it. */
int xt_nats_conf_set(xt_nats_conf *c, const char *key, const char *value, const char *what, char *err,
                     size_t errlen);

/* --- connections -------------------------------------------------------------------------- */

/* Connect with `c` and `p` (the caller must have called nats_Open or let nats.c open itself).
 * 0: *out is the connection (with p->retry_connect possibly still connecting in the background;
 * the program's on_connected then runs when it connects). -1: *out is NULL and `err` holds
 * "NATS at <url>: <cause>" (passwords in URLs never appear). Free with natsConnection_Destroy
 * (after natsConnection_Close if you want the close to be synchronous). */
int xt_nats_connect(const xt_nats_conf *c, const xt_nats_params *p, natsConnection **out, char *err,
                    size_t errlen);

/* A one-line cause for `st` (use right after the failing call, on the same thread: it reads
 * nats.c's last error), with a hint naming the setting to check ("authorization violation: check
 * XTASK_NATS_CREDS"). `p` may be NULL. Returns buf. */
const char *xt_nats_status_text(natsStatus st, const xt_nats_params *p, char *buf, size_t len);

/* `url` with any user:password@ or token@ replaced by "***@" (for logs and messages). */
const char *xt_nats_url_redact(const char *url, char *buf, size_t len);

/* A new inbox subject under `prefix` (NULL or "": _INBOX), e.g. "_INBOX_web.Yx3...". 0 or -1. */
int xt_nats_inbox(const char *prefix, char *buf, size_t len);

/* Replies to nodes go to subjects that name the node (docs/SECURITY.md, "Replies"):
 *   _R.<node>.<tail>  where <tail> is the requester's inbox without its "_INBOX_" (the plain
 *   "_INBOX." of the admin's default reads "admin."), e.g. a request to xtask.ams-1.task.run from
 *   _INBOX_web.Yx3.0.7 is sent with the reply _R.ams-1.web.Yx3.0.7.
 * A node identity may publish only under _R.<its id>.>, so it can answer only requests addressed to
 * it, and reach no requester's inbox. A requester subscribes to the exact reply of a request to one
 * node. A broadcast (xtask.broadcast.*, xtask.nodes.discover) is sent with _R.broadcast.<tail>, each
 * node answers it under its own id, and the requester subscribes to _R.*.<identity>.> (its
 * credentials allow only its own identity, the first token of the tail) and keeps its own replies
 * (xt_nats_reply_rest). Through a leaf link only that shape works: the hub tells a leaf of a
 * wildcard subscription when nats-server 2.9's ReverseMatch finds it in the node's publish list,
 * which holds _R.<node>.web.> and _R.<node>.admin.> for it (services/bus/bus_roles.c).
 * XT_NATS_REPLY_BROADCAST is that marker, never a node id (xtask.broadcast.* is taken). */
#define XT_NATS_REPLY_PREFIX "_R."
#define XT_NATS_REPLY_BROADCAST "broadcast"

/* The node a request subject is addressed to: its id for xtask.<node>.<verb>, XT_NATS_REPLY_BROADCAST
 * for a broadcast or discover, "" when the subject is no node's (JetStream API, queue submissions:
 * their replies keep the plain inbox). 0, or -1 when it does not fit. */
int xt_nats_reply_target(const char *subject, char *buf, size_t len);

/* The reply subject for a request on `subject` from `inbox` (a full inbox subject, "_INBOX_web.Yx3.0.7"):
 * _R.<target>.<tail> for a node's request, else `inbox` itself. 0 or -1 (does not fit). */
int xt_nats_reply_for(const char *subject, const char *inbox, char *buf, size_t len);

/* The wildcard a requester subscribes to for the replies of every node to its identity
 * ("_R.*.web.>" for "_INBOX_web.Yx3"): replies of other processes of the same identity arrive too;
 * xt_nats_reply_rest tells its own. 0 or -1. */
int xt_nats_reply_wildcard(const char *inbox, char *buf, size_t len);

/* What a requester subscribes to for the replies of one request on `subject` sent with the reply
 * xt_nats_reply_for made from `inbox`: that subject for a node's request (only that node may publish
 * there), xt_nats_reply_wildcard for a broadcast (filter with xt_nats_reply_rest), `inbox`
 * otherwise. 0 or -1. */
int xt_nats_reply_sub(const char *subject, const char *inbox, char *buf, size_t len);

/* What follows `inbox` in a reply's subject, whether it came to the inbox itself ("<inbox>.0.7") or
 * under a node's reply prefix ("_R.<node>.<tail>.0.7"): "0.7" ("" when nothing follows); NULL if
 * the subject is neither.
 * *node (if not NULL) gets the node token, or "" for a plain inbox. */
const char *xt_nats_reply_rest(const char *subject, const char *inbox, char *node, size_t nodelen);

/* The subject a node `self` publishes its reply to a request with `reply`: _R.<self>.<tail> for a
 * reply under _R. (a broadcast's marker replaced by its id), else `reply`. 0 or -1. */
int xt_nats_reply_as(const char *self, const char *reply, char *buf, size_t len);

#endif
