/*
 * bus.c: the front's NATS side.
 *
 * nats.c calls us on its own threads. Each callback copies the subject and payload into a bus_msg
 * and hands it to the loop with h2o_multithread_send_message; nothing else crosses threads. On the
 * loop: events go to events.c, replies to the pending request that owns the token, node records to
 * the registry. Requests use one wildcard inbox subscription (<inbox>.<token>), so a request never
 * blocks the loop; deadlines are checked by a 50 ms tick while requests are pending.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"
#include "xt_log.h"

#define NODE_TTL_MS 15000    /* a record without its own ttl_ms: offline after this much silence */
#define NODE_FORGET_MS 60000 /* an offline node stays listed (as offline) this long, then goes */
#define NODE_SWEEP_MS 1000
#define BUS_TICK_MS 50

enum { MSG_EVENT = 1, MSG_LOG, MSG_NODE, MSG_REPLY };

/* One NATS message copied once on the nats.c thread, then shared by every loop it goes to: each
 * loop gets a small bus_msg (the queue link) pointing at the shared body; the last loop to finish
 * with it frees it. */
typedef struct {
    atomic_uint refs;
    size_t len;
    char *subject; /* points into `bytes` */
    char *data;    /* points into `bytes`, NUL-terminated */
    char bytes[];
} bus_body;

typedef struct {
    h2o_multithread_message_t super;
    int kind;
    bus_body *body;
    char *subject;
    char *data;
    size_t len;
} bus_msg;

struct bus_request {
    h2o_linklist_t link;
    uint64_t token;
    uint64_t deadline_ms;
    int multi;
    bus_reply_cb cb;
    void *data;
    char target[72]; /* the node the request was sent to, "broadcast", or "" (xt_nats_reply_target) */
};

/* Shared by every thread: the connection and its subscriptions. */
struct web_nats {
    web_app *app;
    natsConnection *nc;
    natsSubscription *subs[6];
    int kinds[6];
    size_t nsubs;
    char inbox[128];
};

/* One per loop thread. */
struct web_bus {
    web_server *srv;
    h2o_multithread_receiver_t receiver;
    int stopping;
    h2o_linklist_t pending;
    uint64_t next_token;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_t sweep;
    h2o_timeout_entry_t sweep_entry;
    web_node *nodes;
    size_t nnodes;
    h2o_linklist_t backlog; /* messages handed over but not processed yet */
    h2o_timeout_entry_t backlog_entry;
};

uint64_t web_now_ms(web_server *srv)
{
    return h2o_now(srv->ctx.loop);
}

/* --- nats.c threads ------------------------------------------------------------------------ */

static bus_body *body_new(const char *subj, const char *data, size_t len, unsigned refs)
{
    size_t sl = strlen(subj);
    bus_body *b = malloc(sizeof(*b) + sl + 1 + len + 1);
    if (!b) return NULL;
    atomic_init(&b->refs, refs);
    b->len = len;
    b->subject = b->bytes;
    memcpy(b->subject, subj, sl + 1);
    b->data = b->bytes + sl + 1;
    if (len) memcpy(b->data, data, len);
    b->data[len] = 0;
    return b;
}

static void body_release(bus_body *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

/* Hand `body` (one reference already counted for this loop) to a loop. */
static void hand_over(web_server *srv, int kind, bus_body *body)
{
    bus_msg *m = calloc(1, sizeof(*m));
    if (!m) {
        body_release(body);
        return;
    }
    m->kind = kind;
    m->body = body;
    m->subject = body->subject;
    m->data = body->data;
    m->len = body->len;
    h2o_multithread_send_message(&srv->bus->receiver, &m->super);
}

/* On a nats.c thread: copy the message to the loop(s) that want it. Replies go to the thread
 * named in the reply subject (<inbox>.<thread>.<token>; "n" = node records for every thread). */
static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct web_nats *n = closure;
    web_app *app = n->app;
    int kind = MSG_EVENT;
    const char *subj = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    int dl = natsMsg_GetDataLength(msg);
    size_t len = dl > 0 ? (size_t)dl : 0;
    for (size_t i = 0; i < n->nsubs; i++)
        if (n->subs[i] == sub) kind = n->kinds[i];
    if (!subj) subj = "";
    unsigned first = 0, count = app->nthreads;
    if (kind == MSG_REPLY) {
        /* <inbox>.<thread>.<token> or, from a node, _R.<node>.<inbox tail>.<thread>.<token> */
        const char *t = xt_nats_reply_rest(subj, n->inbox, NULL, 0);
        if (!t) {
            count = 0;
        } else if (t[0] == 'n' && t[1] == '.') {
            kind = MSG_NODE;
        } else {
            unsigned long tid = strtoul(t, NULL, 10);
            first = (unsigned)tid;
            count = tid < app->nthreads ? 1 : 0;
        }
    }
    bus_body *body = count ? body_new(subj, data ? data : "", len, count) : NULL;
    for (unsigned i = first; body && i < first + count; i++)
        hand_over(app->threads[i], kind, body);
    natsMsg_Destroy(msg);
}

/* --- the loop ------------------------------------------------------------------------------ */

static void node_upsert(struct web_bus *b, const char *data, size_t len)
{
    json_error_t je;
    json_t *rec = json_loadb(data, len, 0, &je);
    const char *id;
    if (!rec || !json_is_object(rec) || !(id = json_string_value(json_object_get(rec, "id"))) || !*id ||
        strlen(id) > 128) {
        json_decref(rec);
        return;
    }
    web_node *n;
    int added = 0;
    for (n = b->nodes; n; n = n->next)
        if (strcmp(n->id, id) == 0) break;
    if (!n) {
        if (b->nnodes >= 1024) {
            json_decref(rec);
            return;
        }
        n = calloc(1, sizeof(*n));
        n->id = strdup(id);
        n->next = b->nodes;
        b->nodes = n;
        b->nnodes++;
        added = 1;
    }
    json_decref(n->record);
    n->record = rec;
    json_int_t ttl = json_integer_value(json_object_get(rec, "ttl_ms"));
    n->ttl_ms = ttl >= 1000 && ttl <= 3600000 ? (uint64_t)ttl : NODE_TTL_MS;
    n->offline = 0;
    free(n->region);
    const char *reg = json_string_value(json_object_get(rec, "region"));
    n->region = strdup(reg ? reg : "");
    n->seen_ms = web_now_ms(b->srv);
    if (added) xt_info("nodes: %s joined", id);
    events_nodes_changed(b->srv);
}

static void node_remove(struct web_bus *b, const char *id)
{
    for (web_node **pp = &b->nodes; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            web_node *n = *pp;
            *pp = n->next;
            b->nnodes--;
            xt_info("nodes: %s left", n->id);
            free(n->id);
            free(n->region);
            json_decref(n->record);
            free(n);
            events_nodes_changed(b->srv);
            return;
        }
    }
}

static void sweep_cb(h2o_timeout_entry_t *e)
{
    struct web_bus *b = H2O_STRUCT_FROM_MEMBER(struct web_bus, sweep_entry, e);
    uint64_t now = web_now_ms(b->srv);
    web_node *n = b->nodes;
    while (n) {
        web_node *next = n->next;
        if (now - n->seen_ms > n->ttl_ms + NODE_FORGET_MS) {
            char id[160];
            snprintf(id, sizeof(id), "%s", n->id);
            node_remove(b, id);
        } else if (!n->offline && now - n->seen_ms > n->ttl_ms) {
            /* silent for its whole TTL (its KV record expires too): shown as offline at once */
            n->offline = 1;
            xt_info("nodes: %s offline (no heartbeat for %llu ms)", n->id,
                    (unsigned long long)(now - n->seen_ms));
            events_nodes_changed(b->srv);
        }
        n = next;
    }
    if (!b->stopping) h2o_timeout_link(b->srv->ctx.loop, &b->sweep, &b->sweep_entry);
}

static void request_finish(bus_request *r)
{
    h2o_linklist_unlink(&r->link);
    free(r);
}

static void tick_cb(h2o_timeout_entry_t *e)
{
    struct web_bus *b = H2O_STRUCT_FROM_MEMBER(struct web_bus, tick_entry, e);
    uint64_t now = web_now_ms(b->srv);
    h2o_linklist_t *l = b->pending.next;
    while (l != &b->pending) {
        bus_request *r = H2O_STRUCT_FROM_MEMBER(bus_request, link, l);
        l = l->next;
        if (now >= r->deadline_ms) {
            bus_reply_cb cb = r->cb;
            void *data = r->data;
            request_finish(r);
            cb(data, NULL, 0, 1);
        }
    }
    if (!h2o_linklist_is_empty(&b->pending) && !b->stopping)
        h2o_timeout_link(b->srv->ctx.loop, &b->tick, &b->tick_entry);
}

static void on_reply(struct web_bus *b, bus_msg *m)
{
    char node[72];
    const char *rest = xt_nats_reply_rest(m->subject, b->srv->app->nats->inbox, node, sizeof node);
    const char *dot = rest ? strchr(rest, '.') : NULL;
    if (!dot) return;
    uint64_t token = strtoull(dot + 1, NULL, 10);
    for (h2o_linklist_t *l = b->pending.next; l != &b->pending; l = l->next) {
        bus_request *r = H2O_STRUCT_FROM_MEMBER(bus_request, link, l);
        if (r->token == token) {
            /* only the node a request went to may answer it (any node a broadcast, under its id) */
            if (strcmp(r->target, "broadcast") == 0 ? !node[0] : strcmp(r->target, node) != 0) return;
            bus_reply_cb cb = r->cb;
            void *data = r->data;
            /* a 503 status-only message means "no responders" (headers-only, empty payload) */
            if (!r->multi) request_finish(r);
            cb(data, m->data, m->len, 0);
            return;
        }
    }
}

/* At most this many messages per loop turn: between two batches the loop completes the writes of
 * the SSE clients, so a client that reads keeps up with a burst larger than its queue. */
#define BUS_BATCH 64

static void process_backlog(struct web_bus *b);

static void backlog_cb(h2o_timeout_entry_t *e)
{
    process_backlog(H2O_STRUCT_FROM_MEMBER(struct web_bus, backlog_entry, e));
}

static void on_loop_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct web_bus *b = H2O_STRUCT_FROM_MEMBER(struct web_bus, receiver, receiver);
    h2o_linklist_insert_list(&b->backlog, messages);
    if (!h2o_timeout_is_linked(&b->backlog_entry)) process_backlog(b);
}

static void process_backlog(struct web_bus *b)
{
    h2o_linklist_t *messages = &b->backlog;
    for (int n = 0; n < BUS_BATCH && !h2o_linklist_is_empty(messages); n++) {
        bus_msg *m = H2O_STRUCT_FROM_MEMBER(bus_msg, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        if (!b->stopping) {
            switch (m->kind) {
            case MSG_EVENT:
                events_on_nats(b->srv, m->subject, m->data, m->len);
                /* xtask.events.<p>.<node>.node.left removes the node at once */
                {
                    const char *t = strstr(m->subject, ".node.left");
                    if (t && t[10] == 0) {
                        json_t *j = json_loadb(m->data, m->len, 0, NULL);
                        const char *id = json_string_value(json_object_get(j, "node"));
                        if (id) node_remove(b, id);
                        json_decref(j);
                    }
                }
                break;
            case MSG_LOG:
                events_on_nats(b->srv, m->subject, m->data, m->len);
                break;
            case MSG_NODE:
                node_upsert(b, m->data, m->len);
                break;
            case MSG_REPLY:
                on_reply(b, m);
                break;
            }
        }
        body_release(m->body);
        free(m);
    }
    if (!h2o_linklist_is_empty(messages) && !h2o_timeout_is_linked(&b->backlog_entry))
        h2o_timeout_link(b->srv->ctx.loop, &b->srv->ctx.zero_timeout, &b->backlog_entry);
}

static int subscribe(struct web_nats *n, const char *subject, int kind)
{
    natsStatus s = natsConnection_Subscribe(&n->subs[n->nsubs], n->nc, subject, on_nats_msg, n);
    if (s != NATS_OK) {
        xt_error("nats: subscribe %s: %s", subject, natsStatus_GetText(s));
        return -1;
    }
    natsSubscription_SetPendingLimits(n->subs[n->nsubs], 65536, 64 * 1024 * 1024);
    n->kinds[n->nsubs++] = kind;
    return 0;
}

int bus_start(web_server *srv)
{
    struct web_bus *b = calloc(1, sizeof(*b));
    if (!b) return -1;
    srv->bus = b;
    b->srv = srv;
    h2o_linklist_init_anchor(&b->pending);
    h2o_linklist_init_anchor(&b->backlog);
    b->backlog_entry.cb = backlog_cb;
    h2o_multithread_register_receiver(srv->ctx.queue, &b->receiver, on_loop_messages);
    h2o_timeout_init(srv->ctx.loop, &b->tick, BUS_TICK_MS);
    b->tick_entry.cb = tick_cb;
    h2o_timeout_init(srv->ctx.loop, &b->sweep, NODE_SWEEP_MS);
    b->sweep_entry.cb = sweep_cb;
    h2o_timeout_link(srv->ctx.loop, &b->sweep, &b->sweep_entry);
    return 0;
}

int bus_app_start(web_app *app)
{
    struct web_nats *n = calloc(1, sizeof(*n));
    char err[1024];
    const web_conf *c = &app->conf;
    if (!n) return -1;
    app->nats = n;
    n->app = app;
    /* replies to this process come back under its own inbox prefix (what its credentials allow) */
    if (xt_nats_inbox(c->nats.inbox_prefix, n->inbox, sizeof(n->inbox)) != 0) {
        xt_error("nats: cannot make an inbox");
        return -1;
    }
    /* starts before the server is reachable; nats.c buffers what is published meanwhile */
    xt_nats_params p = {.retry_connect = 1, .name = "xtask-web"};
    if (xt_nats_connect(&c->nats, &p, &n->nc, err, sizeof(err)) != 0) {
        xt_error("%s", err);
        return -1;
    }
    char inbox_sub[160], node_sub[200], discover_reply[200], inbox0[160];
    snprintf(inbox_sub, sizeof(inbox_sub), "%s.>", n->inbox);
    snprintf(inbox0, sizeof(inbox0), "%s.n.0", n->inbox);
    if (xt_nats_reply_wildcard(n->inbox, node_sub, sizeof(node_sub)) != 0 ||
        xt_nats_reply_for("xtask.nodes.discover", inbox0, discover_reply, sizeof(discover_reply)) != 0)
        return -1;
    if (subscribe(n, "xtask.events.>", MSG_EVENT) || subscribe(n, "xtask.logs.>", MSG_LOG) ||
        subscribe(n, "xtask.nodes.heartbeat.*", MSG_NODE) ||
        subscribe(n, "xtask.nodes.register.*", MSG_NODE) || subscribe(n, inbox_sub, MSG_REPLY) ||
        subscribe(n, node_sub, MSG_REPLY))
        return -1;
    /* every node answers with its record: the registry is full before the first heartbeat */
    natsConnection_PublishRequestString(n->nc, "xtask.nodes.discover", discover_reply, "{}");
    return 0;
}

void bus_app_stop(web_app *app)
{
    struct web_nats *n = app->nats;
    if (!n) return;
    for (unsigned i = 0; i < app->nthreads; i++)
        if (app->threads[i] && app->threads[i]->bus)
            app->threads[i]->bus->stopping = 1; /* loops that still run drop what arrives */
    for (size_t i = 0; i < n->nsubs; i++) {
        natsSubscription_Unsubscribe(n->subs[i]);
        natsSubscription_Destroy(n->subs[i]);
    }
    if (n->nc) {
        natsConnection_Close(n->nc);
        natsConnection_Destroy(n->nc);
    }
    nats_CloseAndWait(2000);
    /* the loops' queues and registries stay reachable from `app` until the process exits */
}

int bus_connected(web_server *srv)
{
    struct web_nats *n = srv->app->nats;
    return n && n->nc && natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* Publish with our inbox as the reply subject; msg_id (may be NULL) goes in the Nats-Msg-Id header. */
static bus_request *request_start(web_server *srv, const char *subject, const char *msg_id,
                                  const char *payload, size_t len, int64_t timeout_ms, int multi,
                                  bus_reply_cb cb, void *data)
{
    struct web_bus *b = srv->bus;
    struct web_nats *n = srv->app->nats;
    char reply[200], inbox[200];
    if (!b || !n || !n->nc) return NULL;
    bus_request *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->token = ++b->next_token;
    r->deadline_ms = web_now_ms(srv) + (uint64_t)timeout_ms;
    r->multi = multi;
    r->cb = cb;
    r->data = data;
    /* a node's request: its reply under _R.<node>. (xt_nats.h), the only replies a node may send */
    snprintf(inbox, sizeof(inbox), "%s.%u.%llu", n->inbox, srv->index, (unsigned long long)r->token);
    if (xt_nats_reply_target(subject, r->target, sizeof(r->target)) != 0 ||
        xt_nats_reply_for(subject, inbox, reply, sizeof(reply)) != 0) {
        free(r);
        return NULL;
    }
    natsStatus s;
    if (msg_id) {
        natsMsg *m = NULL;
        s = natsMsg_Create(&m, subject, reply, payload, (int)len);
        if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
        if (s == NATS_OK) s = natsConnection_PublishMsg(n->nc, m);
        natsMsg_Destroy(m);
    } else {
        s = natsConnection_PublishRequest(n->nc, subject, reply, payload, (int)len);
    }
    if (s != NATS_OK) {
        xt_warn("nats: request %s: %s", subject, natsStatus_GetText(s));
        free(r);
        return NULL;
    }
    h2o_linklist_insert(&b->pending, &r->link);
    if (!h2o_timeout_is_linked(&b->tick_entry)) h2o_timeout_link(srv->ctx.loop, &b->tick, &b->tick_entry);
    return r;
}

bus_request *bus_request_start(web_server *srv, const char *subject, const char *payload, size_t len,
                               int64_t timeout_ms, int multi, bus_reply_cb cb, void *data)
{
    return request_start(srv, subject, NULL, payload, len, timeout_ms, multi, cb, data);
}

bus_request *bus_request_start_id(web_server *srv, const char *subject, const char *msg_id,
                                  const char *payload, size_t len, int64_t timeout_ms, bus_reply_cb cb,
                                  void *data)
{
    return request_start(srv, subject, msg_id, payload, len, timeout_ms, 0, cb, data);
}

natsConnection *bus_nats_conn(web_server *srv)
{
    struct web_nats *n = srv->app->nats;
    return n ? n->nc : NULL;
}

void bus_request_cancel(bus_request *r)
{
    if (r) request_finish(r);
}

int bus_publish(web_server *srv, const char *subject, const char *payload, size_t len)
{
    struct web_nats *n = srv->app->nats;
    if (!n || !n->nc) return -1;
    return natsConnection_Publish(n->nc, subject, payload, (int)len) == NATS_OK ? 0 : -1;
}

json_t *bus_nodes_json(web_server *srv)
{
    json_t *arr = json_array();
    if (!srv->bus) return arr;
    uint64_t now = web_now_ms(srv);
    for (web_node *n = srv->bus->nodes; n; n = n->next) {
        json_t *r = json_copy(n->record); /* shallow: the record stays as the node sent it */
        if (!r) continue;
        json_object_set_new(r, "online", json_boolean(!n->offline));
        json_object_set_new(r, "seen_ms_ago", json_integer((json_int_t)(now - n->seen_ms)));
        json_array_append_new(arr, r);
    }
    return arr;
}
