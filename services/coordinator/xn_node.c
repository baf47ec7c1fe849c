/*
 * xn_node: the coordinator node (`xtask --nats-mode`).
 *
 * Design (threads and who owns what)
 * ----------------------------------
 * - main thread: one poll loop over a signalfd (SIGTERM, SIGINT, SIGHUP) and an eventfd that the
 *   nats.c connection callbacks poke. It publishes `xtask.nodes.register.<id>` (start, every
 *   (re)connect) and `xtask.nodes.heartbeat.<id>` + the KV record (every nats.heartbeat). All of these
 *   are core publishes: nothing in this loop waits on the broker, so signals are handled at once
 *   even during an outage. The KV record is a plain publish on `$KV.xtask_nodes.<id>` (that is
 *   what a KV put is), so no pending ack can pile up while the broker is away.
 * - nats.c callback threads (one per subscription): `xtask.<id>.>`, `xtask.nodes.discover`,
 *   `xtask.broadcast.<verb>` for ping and the verbs of our capabilities. They answer cheap requests inline
 * (ping, discover, and every error that needs no work: bad JSON, oversized payload, unknown task, busy) and
 * queue the rest as jobs. They never wait for a process, a download or the broker.
 * - worker threads (limits.max_concurrent): take jobs from one bounded FIFO (limits.max_queued;
 *   beyond it the request gets `busy`), run them (xr_run: own process group, no shell, deadline),
 *   publish live output, reply, store the result in `xtask-results`.
 * - jetstream thread: creates/updates the streams `xtask-queue` and `xtask-results`, the KV bucket
 *   `xtask_nodes` and one durable pull consumer per queue capability, whenever the connection is
 *   (re)established, retrying with a back-off until JetStream answers (nats.manage_streams, the
 *   region's platform node); an edge node only checks that its consumers exist.
 * - Every subject we publish carries our id (register, heartbeat, logs, events, results, KV key),
 *   and our replies come to `_INBOX_node-<id>.`: the bus's permissions bind a node identity to them
 *   (docs/SECURITY.md, "The bus").
 * - puller threads (one per queue capability): fetch one message at a time, and only while a worker
 *   is free, so a busy node leaves queued work to other nodes. The job is run by a worker, which
 *   sends in-progress acks while it runs, stores the result, then acks (a task interrupted by a
 *   shutdown is nak'ed so that another node runs it). Before running, the worker looks the id up in
 *   `xtask-results` (our own results only): a message redelivered after we stored its result is
 *   acked, not run again.
 *
 * A node killed with SIGKILL cannot kill its tasks' groups (posix_spawn has no parent-death
 * signal). Under xtask-supervisor they are not left to finish unobserved: they carry the node's
 * XTASK_SERVICE=xtask, and the supervisor kills them before it starts the node again
 * (integration-tests/coordinator/test_supervised.py). Run bare, such a task finishes unobserved
 * and, if it came from the queue, runs again after ack_wait (its result is stored once).
 *
 * Request/reply subjects are never inside a stream's subjects (ARCHITECTURE.md): the streams hold
 * `xtask.queue.>` and `xtask.results.>` only, and node ids `queue`/`results`/... are refused.
 *
 * Shutdown (SIGTERM/SIGINT): stop taking requests (unsubscribe), answer queued jobs `unavailable`,
 * SIGKILL every running task's process group, join the threads, publish node.left and the KV delete
 * marker, flush, close: well under a second unless a worker is stuck in a download (bounded by the
 * 1 s join wait, after which the process exits anyway).
 */
#include "xn_node.h"

#include <errno.h>
#include <nats/nats.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "xe_edge.h"
#include "xo_output.h"
#include "xr_run.h"
#include "xt_log.h"
#include "xt_nats.h"
#include "xw_ops.h"

#define XN_STREAM_QUEUE "xtask-queue"
#define XN_STREAM_RESULTS "xtask-results"
#define XN_STREAM_AUDIT "xtask-audit"
#define XN_KV_BUCKET "xtask_nodes"
#define XN_QCAPS_MAX 16
#define XN_WORKERS_MAX 256
#define XN_JS_WAIT_MS 2000
#define XN_BCAST_MAX 8

typedef enum { JOB_RUN, JOB_QUEUE_RUN, JOB_WHICH, JOB_DOWNLOAD, JOB_SILENT, JOB_KILL_PORT } job_kind;

typedef struct job {
    job_kind kind;
    natsMsg *msg;   /* the request (or the queue message); owned */
    json_t *req;    /* parsed body (which, download) */
    xp_run_req run; /* parsed body (task.run, queue) */
    unsigned port;
    int broadcast;
    struct job *next;
} job;

typedef struct xn {
    const xc_conf *conf;
    char id[XP_ID_MAX + 1], region[XP_ID_MAX + 1];
    char attached[128]; /* an edge node: the region its leaf is attached to ("" unknown; under mu) */
    char os[64], arch[64], hostname[256];
    char **task_names;   /* announced task names (NULL-terminated) */
    json_t *task_info;   /* announced: each configured task's description and whether it takes args */
    char task_bin[4096]; /* the `task` binary, "" when absent */
    int64_t started_ms;

    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub_node, *sub_discover;
    natsSubscription *sub_broadcast[XN_BCAST_MAX]; /* one per verb of our capabilities */
    int nbroadcast;
    int evfd;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t work_cv; /* workers wait here alone: one job wakes one worker, not the pool */
    job *head, *tail;
    int nqueued, running, reserved;
    int stopping;
    int js_ready, js_setup_needed;
    atomic_int register_needed;
    natsSubscription *qsubs[XN_QCAPS_MAX];
    /* in-progress ack period of queued tasks: ack_wait/3 of the configuration, or of the shortest
     * consumer an edge node bound to (an admin made it, `xtask node add --ack-wait`) */
    atomic_llong q_tick_ms;
    pid_t pgids[XN_WORKERS_MAX];
    volatile sig_atomic_t cancel;

    pthread_t workers[XN_WORKERS_MAX];
    int nworkers;
    pthread_t js_thread;
    pthread_t pullers[XN_QCAPS_MAX];
    int npullers;
    int worker_seq;
} xn;

/* ---- small helpers ------------------------------------------------------------------------ */

static void poke(xn *n)
{
    uint64_t one = 1;
    if (write(n->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        xt_warn("eventfd write: %s", strerror(errno));
}

static void publish_str(xn *n, const char *subj, char *s)
{
    if (!s) return;
    natsStatus st = natsConnection_PublishString(n->nc, subj, s);
    if (st != NATS_OK && st != NATS_CONNECTION_CLOSED)
        xt_debug("publish %s: %s", subj, natsStatus_GetText(st));
    free(s);
}

static char *with_node(xn *n, char *s);

/* Reply to m with s (owned, may be NULL). Error replies get "node" added. A reply under _R. goes
 * under this node's own id (a broadcast's marker replaced): the only replies its identity may send
 * (xt_nats.h, docs/SECURITY.md "Replies"). */
static void reply_str(xn *n, natsMsg *m, char *s)
{
    const char *reply = natsMsg_GetReply(m);
    char to[512];
    if (s && strncmp(s, "{\"error\":", 9) == 0) s = with_node(n, s);
    if (s && reply && *reply && xt_nats_reply_as(n->id, reply, to, sizeof to) == 0)
        natsConnection_PublishString(n->nc, to, s);
    free(s);
}

/* Compact JSON text of o (decref'd); NULL-safe. */
static char *jdump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *with_node(xn *n, char *s)
{
    json_t *o = s ? json_loads(s, 0, NULL) : NULL;
    if (json_is_object(o) && !json_object_get(o, "node")) {
        json_object_set_new(o, "node", json_string(n->id));
        free(s);
        s = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    return s;
}

/* region: the caller's buffer for the record's region (an edge node's changes when it reattaches). */
static void node_info(xn *n, xp_node_info *ni, char *region, size_t rlen)
{
    double load[1] = {0};
    if (getloadavg(load, 1) < 1) load[0] = 0;
    pthread_mutex_lock(&n->mu);
    ni->running = n->running;
    ni->queued = n->nqueued;
    snprintf(region, rlen, "%s", n->attached[0] ? n->attached : n->region);
    pthread_mutex_unlock(&n->mu);
    ni->id = n->id;
    ni->region = region;
    ni->tags = xe_edge_tags();
    ni->capabilities = (const char *const *)n->conf->capabilities;
    ni->os = n->os;
    ni->arch = n->arch;
    ni->hostname = n->hostname;
    ni->tasks = (const char *const *)n->task_names;
    ni->task_info = n->task_info;
    ni->heartbeat_ms = n->conf->heartbeat_ms;
    ni->ttl_ms = n->conf->node_ttl_ms;
    ni->load1 = load[0];
    ni->started_ms = n->started_ms;
    ni->ts_ms = xp_now_ms();
}

static void publish_event(xn *n, const char *project, const char *type, const char *id, json_t *extra)
{
    char subj[256];
    snprintf(subj, sizeof subj, "xtask.events.%s.%s.%s", project, n->id, type);
    publish_str(n, subj, xp_event_json(type, id, n->id, extra, xp_now_ms()));
}

/* An edge node: the region its leaf is attached to now (main thread; a loopback GET). */
static void edge_poll(xn *n)
{
    char where[128];
    if (xe_edge_attached(where, sizeof where) < 0) return;
    pthread_mutex_lock(&n->mu);
    snprintf(n->attached, sizeof n->attached, "%s", where);
    pthread_mutex_unlock(&n->mu);
}

/* Announce: xtask.nodes.<what>.<id> (what: register or heartbeat), plus the KV record. */
static void announce(xn *n, const char *what)
{
    xp_node_info ni;
    char kvsubj[128], subject[128], region[128];
    node_info(n, &ni, region, sizeof region);
    char *rec = xp_node_json(&ni);
    if (!rec) return;
    snprintf(subject, sizeof subject, "xtask.nodes.%s.%s", what, n->id);
    natsConnection_PublishString(n->nc, subject, rec);
    snprintf(kvsubj, sizeof kvsubj, "$KV.%s.%s", XN_KV_BUCKET, n->id);
    natsConnection_PublishString(n->nc, kvsubj, rec);
    free(rec);
}

/* ---- jobs --------------------------------------------------------------------------------- */

static void job_free(job *j)
{
    if (!j) return;
    natsMsg_Destroy(j->msg);
    json_decref(j->req);
    xp_run_req_free(&j->run);
    free(j);
}

/* Queue a job; on a full queue the request gets `busy` (queue jobs never: a slot was reserved). */
static void enqueue(xn *n, job *j)
{
    pthread_mutex_lock(&n->mu);
    int full =
        j->kind != JOB_QUEUE_RUN && n->running + n->nqueued >= n->conf->max_concurrent + n->conf->max_queued;
    if (n->stopping || full) {
        pthread_mutex_unlock(&n->mu);
        if (!j->broadcast || !n->stopping)
            reply_str(n, j->msg,
                      n->stopping ? xp_error_json(XP_ERR_UNAVAILABLE, "node %s is shutting down", n->id)
                                  : xp_error_json(XP_ERR_BUSY, "node %s is busy (%d running, %d queued)",
                                                  n->id, n->running, n->nqueued));
        if (j->kind == JOB_QUEUE_RUN) natsMsg_Nak(j->msg, NULL);
        job_free(j);
        return;
    }
    if (j->kind == JOB_QUEUE_RUN) n->reserved--;
    j->next = NULL;
    if (n->tail)
        n->tail->next = j;
    else
        n->head = j;
    n->tail = j;
    n->nqueued++;
    /* a new job frees no capacity: only a worker needs to know (waking the pool and the other
     * waiters on cv for every request cost ~0.1-0.5 ms of context switches on 2 CPUs) */
    pthread_cond_signal(&n->work_cv);
    pthread_mutex_unlock(&n->mu);
}

/* ---- task runs ---------------------------------------------------------------------------- */

typedef struct {
    xn *n;
    const char *id, *task, *project;
    natsMsg *qmsg; /* queue message: in-progress acks */
    int slot;
    int lines, dropped;
    int live;
    json_t *started; /* the task.started event's fields, published once the child is spawned */
} run_ctx;

static void run_on_line(const char *stream, const char *line, size_t len, void *ud)
{
    run_ctx *rc = ud;
    char subj[128];
    if (!rc->live) return;
    if (rc->lines >= rc->n->conf->live_lines_max) {
        rc->dropped++;
        return;
    }
    rc->lines++;
    snprintf(subj, sizeof subj, "xtask.logs.%s", rc->n->id);
    publish_str(rc->n, subj, xp_log_json(rc->id, rc->task, stream, line, len));
    json_t *extra = json_pack("{s:s,s:s,s:s%}", "task", rc->task, "stream", stream, "line", line, len);
    publish_event(rc->n, rc->project, "task.output", rc->id, extra);
}

static void run_on_tick(void *ud)
{
    run_ctx *rc = ud;
    if (rc->qmsg) natsMsg_InProgress(rc->qmsg, NULL);
}

/* The task.started event, once: right after the spawn (it goes out while the child execs, off the
 * request's path), or after a spawn that failed. */
static void run_started(run_ctx *rc)
{
    if (!rc->started) return;
    publish_event(rc->n, rc->project, "task.started", rc->id, rc->started);
    rc->started = NULL;
}

static void run_on_pid(pid_t pgid, void *ud)
{
    run_ctx *rc = ud;
    pthread_mutex_lock(&rc->n->mu);
    rc->n->pgids[rc->slot] = pgid;
    if (pgid > 0 && rc->n->stopping) kill(-pgid, SIGKILL);
    pthread_mutex_unlock(&rc->n->mu);
    if (pgid > 0) run_started(rc);
}

/* Build the argv for task `r` into a malloc'd vector of borrowed strings; NULL + error reply. */
static char **task_argv(xn *n, const xp_run_req *r, const xc_task **tk, char **err)
{
    const char *name = r->args[0];
    const xc_task *t = xc_conf_task(n->conf, name);
    size_t extra = r->nargs - 1, k = 0;
    char **argv;
    *tk = t;
    if (t) {
        if (extra && !t->allow_args) {
            *err = xp_error_json(XP_ERR_NOT_ALLOWED, "task '%s' takes no arguments on node %s", name, n->id);
            return NULL;
        }
        size_t base = xt_strv_len(t->argv);
        argv = calloc(base + extra + 1, sizeof *argv);
        for (size_t i = 0; argv && i < base; i++)
            argv[k++] = t->argv[i];
    } else if (n->task_bin[0] && xc_conf_taskfile_allows(n->conf, name)) {
        argv = calloc(8 + extra + 1, sizeof *argv);
        if (argv) {
            argv[k++] = n->task_bin;
            if (n->conf->taskfile_dir) {
                argv[k++] = "--dir";
                argv[k++] = n->conf->taskfile_dir;
            }
            if (n->conf->taskfile_path) {
                argv[k++] = "--taskfile";
                argv[k++] = n->conf->taskfile_path;
            }
            argv[k++] = (char *)name;
            if (extra) argv[k++] = "--";
        }
    } else {
        *err = xp_error_json(XP_ERR_UNKNOWN_TASK, "task '%s' is not allowed on node %s", name, n->id);
        return NULL;
    }
    if (!argv) {
        *err = xp_error_json(XP_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    for (size_t i = 1; i < r->nargs; i++)
        argv[k++] = r->args[i];
    argv[k] = NULL;
    return argv;
}

/* 1 if xtask-results already holds this node's result for id. A direct get of our own subject
 * (`$JS.API.DIRECT.GET.xtask-results.xtask.results.<node>.<id>`): a node identity may read its own
 * results only, never the stream (other developers' output). A message redelivered to another
 * node after we stored its result runs again there (a second result; readers take the last). */
static int result_exists(xn *n, const char *id)
{
    char subj[160];
    natsMsg *m = NULL;
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    snprintf(subj, sizeof subj, "xtask.results.%s.%s", n->id, id);
    o.LastBySubject = subj;
    natsStatus st = js_DirectGetMsg(&m, n->js, XN_STREAM_RESULTS, NULL, &o);
    natsMsg_Destroy(m);
    return st == NATS_OK;
}

/* Store a result, retrying with a bounded back-off. Right after a cluster peer dies JetStream
 * re-elects the stream's leader: for a second or two a publish gets "no responders" (10076) or
 * times out. One warning per result that needed retries, one line when it finally went through.
 * qmsg (a queue message, may be NULL) gets in-progress acks meanwhile, so it stays ours: it is acked
 * only after the store succeeded. Gives up after XN_STORE_BUDGET_MS, or at once on shutdown. */
#define XN_STORE_BUDGET_MS 15000
#define XN_STORE_BACKOFF_MAX_MS 1000

static int node_stopping(xn *n)
{
    pthread_mutex_lock(&n->mu);
    int s = n->stopping;
    pthread_mutex_unlock(&n->mu);
    return s || n->cancel;
}

/* Publish `json` on the stream subject `subj` with the store's retries (see above); `what` names it
 * in the log ("result t-..", "audit record"). */
static int js_store(xn *n, const char *subj, const char *what, const char *json, natsMsg *qmsg)
{
    int64_t t0 = xp_now_ms(), backoff = 50;
    int attempts = 0;
    for (;;) {
        jsErrCode jerr = 0;
        jsPubAck *pa = NULL;
        natsStatus st = js_Publish(&pa, n->js, subj, json, (int)strlen(json), NULL, &jerr);
        jsPubAck_Destroy(pa);
        attempts++;
        if (st == NATS_OK) {
            if (attempts > 1)
                xt_info("%s stored after %d attempts (%lld ms)", what, attempts,
                        (long long)(xp_now_ms() - t0));
            return 0;
        }
        int64_t spent = xp_now_ms() - t0;
        /* a payload the stream refuses will not be accepted later either */
        int permanent = st == NATS_MAX_PAYLOAD || jerr == JSStreamMessageExceedsMaximumErr;
        if (permanent || spent + backoff > XN_STORE_BUDGET_MS || node_stopping(n)) {
            xt_warn("storing %s failed after %d attempts (%lld ms): %s (%d)", what, attempts,
                    (long long)spent, natsStatus_GetText(st), (int)jerr);
            return -1;
        }
        if (attempts == 1)
            xt_warn("storing %s: %s (%d); retrying for up to %d s (JetStream electing a leader?)", what,
                    natsStatus_GetText(st), (int)jerr, XN_STORE_BUDGET_MS / 1000);
        if (qmsg) natsMsg_InProgress(qmsg, NULL);
        nats_Sleep(backoff);
        backoff = backoff * 2 > XN_STORE_BACKOFF_MAX_MS ? XN_STORE_BACKOFF_MAX_MS : backoff * 2;
    }
}

static int store_result(xn *n, const char *id, const char *json, natsMsg *qmsg)
{
    char subj[160], what[96];
    snprintf(subj, sizeof subj, "xtask.results.%s.%s", n->id, id);
    snprintf(what, sizeof what, "result %s", id);
    return js_store(n, subj, what, json, qmsg);
}

/* ---- audit trail ---------------------------------------------------------------------------
 * Every verb this node executes, and every request it refuses, leaves one record on
 * xtask.audit.task.<node id> (stream xtask-audit: no delete, no purge). The record names who asked
 * (requested_by, via: from the request, set by the web API or the CLI), what (verb, task, target),
 * where (node, region), when (ts_ms, started_ms, finished_ms) and how it ended. Never the task's
 * arguments or output: they may hold secrets; the record says how many arguments there were. */

static json_t *audit_base(xn *n, const char *verb, const char *requested_by, const char *via)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "type", "task", "verb", verb, "node", n->id, "region",
                     n->region, "requested_by", requested_by && *requested_by ? requested_by : "unknown",
                     "via", via && *via ? via : "", "ts_ms", (json_int_t)xp_now_ms());
}

/* Store an audit record (stolen) with retries: worker threads only (it may wait). */
static void audit_store(xn *n, json_t *rec)
{
    char subj[128];
    char *s = jdump(rec);
    if (!s) return;
    snprintf(subj, sizeof subj, "xtask.audit.task.%s", n->id);
    js_store(n, subj, "audit record", s, NULL);
    free(s);
}

/* Publish an audit record (stolen) without waiting: callback threads (refusals). */
static void audit_publish(xn *n, json_t *rec)
{
    char subj[128];
    snprintf(subj, sizeof subj, "xtask.audit.task.%s", n->id);
    publish_str(n, subj, jdump(rec));
}

/* The requester named in a parsed JSON body (which, download, silent, kill-port). */
static const char *body_str(json_t *req, const char *key)
{
    const char *v = json_string_value(json_object_get(req, key));
    return v && xp_user_valid(v) ? v : "";
}

static void do_run(xn *n, job *j, int slot)
{
    const xp_run_req *r = &j->run;
    const xc_task *t = NULL;
    char *err = NULL, id[XP_ID_MAX + 1];
    int queued = j->kind == JOB_QUEUE_RUN;
    xo_output out = {0};
    xr_status st;

    if (r->id[0])
        snprintf(id, sizeof id, "%s", r->id);
    else
        xp_new_id(id, sizeof id);
    char **argv = task_argv(n, r, &t, &err);
    if (!argv) {
        char code[64] = "", msg[512] = "";
        if (err) xp_error_parse(err, strlen(err), code, sizeof code, msg, sizeof msg);
        json_t *ar = audit_base(n, "task.run", r->requested_by, r->via);
        json_object_update_new(ar,
                               json_pack("{s:s,s:s,s:s,s:b,s:s,s:s}", "id", id, "task", r->args[0], "project",
                                         r->project, "queued", queued, "outcome", "refused", "error", code));
        audit_store(n, ar);
        if (queued) {
            /* Not runnable here: terminate it, with a stored error result so the caller learns why. */
            xt_warn("queued task %s (%s) refused: %s", id, r->args[0], err ? err : "");
            if (err) store_result(n, id, err, j->msg);
            natsMsg_Term(j->msg, NULL);
        } else {
            reply_str(n, j->msg, err);
            err = NULL;
        }
        free(err);
        return;
    }
    if (queued && result_exists(n, id)) {
        xt_info("queued task %s already has a result: acked without running it again", id);
        natsMsg_Ack(j->msg, NULL);
        free(argv);
        return;
    }
    int64_t timeout = t ? t->timeout_ms : n->conf->taskfile_timeout_ms;
    if (r->timeout_ms > 0 && r->timeout_ms < timeout) timeout = r->timeout_ms;
    if (timeout > n->conf->max_timeout_ms) timeout = n->conf->max_timeout_ms;
    if (xo_output_init(&out, n->conf->output_tail_bytes, n->conf->output_max_bytes) != 0) {
        reply_str(n, j->msg, xp_error_json(XP_ERR_INTERNAL, "out of memory"));
        free(argv);
        return;
    }
    run_ctx rc = {.n = n,
                  .id = id,
                  .task = r->args[0],
                  .project = r->project,
                  .qmsg = queued ? j->msg : NULL,
                  .slot = slot,
                  .live = 1};
    xr_spec spec = {.argv = argv,
                    .env = n->conf->task_env,
                    .extra_env = t ? t->env : NULL,
                    .cwd = t ? t->cwd : NULL,
                    .timeout_ms = timeout,
                    .kill_grace_ms = n->conf->kill_grace_ms,
                    .on_line = run_on_line,
                    .on_tick = queued ? run_on_tick : NULL,
                    .tick_ms = queued ? (int64_t)atomic_load(&n->q_tick_ms) : 0,
                    .on_pid = run_on_pid,
                    .ud = &rc,
                    .cancel = &n->cancel};
    int64_t started = xp_now_ms();
    rc.started = json_pack("{s:s,s:b,s:s}", "task", r->args[0], "queued", queued, "requested_by",
                           r->requested_by[0] ? r->requested_by : "unknown");
    xr_run(&spec, &out, &st);
    run_started(&rc);
    int64_t finished = xp_now_ms();

    size_t tail_len = 0;
    char *tail = xo_output_tail(&out, &tail_len);
    xp_result res = {.id = id,
                     .node = n->id,
                     .task = r->args[0],
                     .project = r->project,
                     .requested_by = r->requested_by[0] ? r->requested_by : "unknown",
                     .via = r->via,
                     .exit_code = st.exit_code,
                     .signal = st.signal,
                     .timed_out = st.timed_out,
                     .duration_ms = st.duration_ms,
                     .started_ms = started,
                     .finished_ms = finished,
                     .tail = tail,
                     .tail_len = tail_len,
                     .truncated = out.total > tail_len || out.dropped > 0,
                     .output = out.full,
                     .output_len = out.full_len};
    size_t maxb = n->conf->max_request_bytes > 4096 ? n->conf->max_request_bytes : 4096;
    char *stored = NULL;
    if (queued) {
        stored = xp_result_json(&res, 1, maxb);
        if (st.cancelled) {
            natsMsg_Nak(j->msg, NULL); /* shutdown: let another node (or our restart) run it */
        } else if (stored && store_result(n, id, stored, j->msg) == 0) {
            natsMsg_AckSync(j->msg, NULL, NULL);
        } else {
            natsMsg_Nak(j->msg, NULL);
        }
    } else {
        /* The durable copy first, then the requester: once a requester holds the result, so does
         * the results stream. Replying first left a window in which a node killed after its reply
         * lost a result the requester had been told about (stack_kill, CI run 7). It costs task.run
         * one JetStream round trip (bench/coordinator). */
        stored = xp_result_json(&res, 1, maxb);
        if (stored && !st.cancelled) store_result(n, id, stored, NULL);
        reply_str(n, j->msg, xp_result_json(&res, 0, maxb));
    }
    publish_event(n, r->project, "task.finished", id,
                  json_pack("{s:s,s:i,s:i,s:b,s:I,s:s}", "task", r->args[0], "exit_code", st.exit_code,
                            "signal", st.signal, "timed_out", st.timed_out, "duration_ms",
                            (json_int_t)st.duration_ms, "requested_by",
                            r->requested_by[0] ? r->requested_by : "unknown"));
    xt_info("task %s %s (by %s): exit %d signal %d%s in %lld ms", id, r->args[0],
            r->requested_by[0] ? r->requested_by : "unknown", st.exit_code, st.signal,
            st.timed_out ? " (timed out)" : "", (long long)st.duration_ms);
    json_t *ar = audit_base(n, "task.run", r->requested_by, r->via);
    json_object_update_new(
        ar, json_pack("{s:s,s:s,s:s,s:i,s:b,s:s,s:I,s:I,s:I,s:i,s:i,s:b}", "id", id, "task", r->args[0],
                      "project", r->project, "nargs", (int)r->nargs - 1, "queued", queued, "outcome",
                      st.cancelled ? "cancelled" : "finished", "started_ms", (json_int_t)started,
                      "finished_ms", (json_int_t)finished, "duration_ms", (json_int_t)st.duration_ms,
                      "exit_code", st.exit_code, "signal", st.signal, "timed_out", st.timed_out));
    audit_store(n, ar);
    free(stored);
    free(tail);
    free(argv);
    xo_output_free(&out);
}

/* Run a silent command; returns the reply (owned). */
static char *do_silent(xn *n, job *j, int slot)
{
    const char *name = json_string_value(json_object_get(j->req, "name"));
    const xc_task *t = name ? xc_conf_silent(n->conf, name) : NULL;
    xo_output out;
    xr_status st;
    if (!name) return xp_error_json(XP_ERR_BAD_REQUEST, "'name' (string) is required");
    if (!t)
        return xp_error_json(XP_ERR_NOT_ALLOWED, "'%.64s' is not a silent command on node %s", name, n->id);
    if (xo_output_init(&out, 64, 0) != 0) return xp_error_json(XP_ERR_INTERNAL, "out of memory");
    run_ctx rc = {.n = n, .slot = slot};
    xr_spec spec = {.argv = t->argv,
                    .env = n->conf->task_env,
                    .extra_env = t->env,
                    .cwd = t->cwd,
                    .timeout_ms = t->timeout_ms,
                    .kill_grace_ms = n->conf->kill_grace_ms,
                    .on_pid = run_on_pid,
                    .ud = &rc,
                    .cancel = &n->cancel};
    xr_run(&spec, &out, &st);
    xo_output_free(&out);
    return jdump(json_pack("{s:s,s:s,s:i,s:i,s:b,s:I}", "name", name, "node", n->id, "exit_code",
                           st.exit_code, "signal", st.signal, "timed_out", st.timed_out, "duration_ms",
                           (json_int_t)st.duration_ms));
}

static const char *job_verb(job_kind k)
{
    switch (k) {
    case JOB_WHICH:
        return "which.check";
    case JOB_DOWNLOAD:
        return "got.download";
    case JOB_SILENT:
        return "silent.exec";
    case JOB_KILL_PORT:
        return "kill-port";
    default:
        return "task.run";
    }
}

/* The audit record of a verb other than task.run, from its request and its reply `rep`. */
static json_t *audit_verb(xn *n, const job *j, const char *rep, int64_t duration_ms)
{
    json_t *rec = audit_base(n, job_verb(j->kind), body_str(j->req, "requested_by"), body_str(j->req, "via"));
    char target[512] = "", code[64] = "", msg[256];
    const char *v;
    if (j->kind == JOB_KILL_PORT) {
        snprintf(target, sizeof target, "%u", j->port);
    } else if (j->kind == JOB_DOWNLOAD) {
        /* where it was written and from which host-and-path: never the query (it may hold a token) */
        const char *url = json_string_value(json_object_get(j->req, "url"));
        const char *out = json_string_value(json_object_get(j->req, "output"));
        snprintf(target, sizeof target, "%.*s -> %.200s", url ? (int)strcspn(url, "?#") : 0, url ? url : "",
                 out ? out : "");
    } else if ((v = json_string_value(json_object_get(j->req, "name"))) != NULL) {
        snprintf(target, sizeof target, "%.128s", v);
    }
    json_object_set_new(rec, "target", json_string(target));
    json_object_set_new(rec, "duration_ms", json_integer(duration_ms));
    if (rep && xp_error_parse(rep, strlen(rep), code, sizeof code, msg, sizeof msg)) {
        json_object_set_new(rec, "outcome", json_string("error"));
        json_object_set_new(rec, "error", json_string(code));
    } else {
        json_t *r = rep ? json_loads(rep, 0, NULL) : NULL;
        json_t *ec = json_object_get(r, "exit_code");
        json_object_set_new(rec, "outcome", json_string("done"));
        if (json_is_integer(ec)) json_object_set(rec, "exit_code", ec);
        json_decref(r);
    }
    return rec;
}

static void *worker_main(void *arg)
{
    xn *n = arg;
    pthread_mutex_lock(&n->mu);
    int slot = n->worker_seq++;
    for (;;) {
        while (!n->head && !n->stopping)
            pthread_cond_wait(&n->work_cv, &n->mu);
        if (n->stopping) break;
        job *j = n->head;
        n->head = j->next;
        if (!n->head) n->tail = NULL;
        n->nqueued--;
        n->running++;
        pthread_mutex_unlock(&n->mu);
        switch (j->kind) {
        case JOB_RUN:
        case JOB_QUEUE_RUN:
            do_run(n, j, slot);
            break;
        case JOB_SILENT:
        case JOB_WHICH:
        case JOB_DOWNLOAD:
        case JOB_KILL_PORT: {
            int64_t t0 = xp_mono_ms();
            char *rep = j->kind == JOB_SILENT     ? do_silent(n, j, slot)
                        : j->kind == JOB_WHICH    ? xw_which(n->conf, j->req)
                        : j->kind == JOB_DOWNLOAD ? xw_download(n->conf, j->req)
                                                  : xw_kill_port(n->conf, j->port);
            rep = with_node(n, rep);
            json_t *rec = audit_verb(n, j, rep, xp_mono_ms() - t0);
            reply_str(n, j->msg, rep); /* the requester first, then the durable record */
            audit_store(n, rec);
            break;
        }
        }
        job_free(j);
        pthread_mutex_lock(&n->mu);
        n->running--;
        pthread_cond_broadcast(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- request dispatch (nats.c callback threads) ------------------------------------------- */

/* Verbs a node serves, with the capability each needs. */
static const struct {
    const char *verb;
    const char *cap;
    job_kind kind;
} verbs[] = {
    {"task.run", "task", JOB_RUN},
    {"which.check", "which", JOB_WHICH},
    {"got.download", "got", JOB_DOWNLOAD},
    {"silent.exec", "silent", JOB_SILENT},
    {"kill-port", "kill-port", JOB_KILL_PORT},
};

/* Handle verb `verb` (the subject after "xtask.<id>." or "xtask.broadcast.") for message m
 * (ownership taken). Broadcast requests that this node cannot serve get no reply at all. */
static void dispatch(xn *n, natsMsg *m, const char *verb, int broadcast)
{
    char err[512];
    const char *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    job *j = NULL;

    if (len > n->conf->max_request_bytes) {
        if (!broadcast)
            reply_str(n, m,
                      xp_error_json(XP_ERR_PAYLOAD_TOO_LARGE, "request of %zu bytes exceeds %zu", len,
                                    n->conf->max_request_bytes));
        goto out;
    }
    if (strcmp(verb, "ping") == 0) {
        int js;
        pthread_mutex_lock(&n->mu);
        js = n->js_ready;
        pthread_mutex_unlock(&n->mu);
        reply_str(
            n, m,
            jdump(json_pack("{s:s,s:s,s:b,s:b}", "id", n->id, "node", n->id, "ok", 1, "jetstream", js)));
        goto out;
    }
    size_t vi = 0, nverbs = sizeof verbs / sizeof verbs[0];
    unsigned port = 0;
    for (; vi < nverbs; vi++) {
        size_t vl = strlen(verbs[vi].verb);
        if (strncmp(verb, verbs[vi].verb, vl) == 0) {
            if (verbs[vi].kind == JOB_KILL_PORT && verb[vl] == '.') {
                char *end;
                unsigned long p = strtoul(verb + vl + 1, &end, 10);
                if (*end || p < 1 || p > 65535 || verb[vl + 1] < '0' || verb[vl + 1] > '9') {
                    if (!broadcast)
                        reply_str(n, m,
                                  xp_error_json(XP_ERR_BAD_REQUEST, "'%s' is not a port", verb + vl + 1));
                    goto out;
                }
                port = (unsigned)p;
                break;
            }
            if (verb[vl] == '\0' && verbs[vi].kind != JOB_KILL_PORT) break;
        }
    }
    if (vi == nverbs) {
        if (!broadcast)
            reply_str(n, m, xp_error_json(XP_ERR_NOT_FOUND, "no verb '%s' on node %s", verb, n->id));
        goto out;
    }
    if (!xc_conf_has_cap(n->conf, verbs[vi].cap)) {
        if (!broadcast)
            reply_str(n, m,
                      xp_error_json(XP_ERR_NOT_ALLOWED, "node %s does not have capability '%s'", n->id,
                                    verbs[vi].cap));
        goto out;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        reply_str(n, m, xp_error_json(XP_ERR_INTERNAL, "out of memory"));
        goto out;
    }
    j->kind = verbs[vi].kind;
    j->port = port;
    j->broadcast = broadcast;
    if (j->kind == JOB_RUN) {
        xp_err code;
        if (xp_run_req_parse(data, len, &j->run, &code, err, sizeof err) != 0) {
            if (!broadcast) reply_str(n, m, xp_error_json(code, "%s", err));
            goto out;
        }
        const char *name = j->run.args[0];
        if (!xc_conf_task(n->conf, name) && !(n->task_bin[0] && xc_conf_taskfile_allows(n->conf, name))) {
            if (!broadcast) {
                reply_str(
                    n, m,
                    xp_error_json(XP_ERR_UNKNOWN_TASK, "task '%s' is not allowed on node %s", name, n->id));
                json_t *ar = audit_base(n, "task.run", j->run.requested_by, j->run.via);
                json_object_update_new(ar,
                                       json_pack("{s:s,s:s,s:s,s:s}", "task", name, "project", j->run.project,
                                                 "outcome", "refused", "error", "unknown_task"));
                audit_publish(n, ar);
            }
            goto out;
        }
    } else if (j->kind == JOB_KILL_PORT) {
        /* the body is optional ({} or empty); it may name the requester */
        j->req = xp_parse_object(data, len, 1, err, sizeof err);
    } else {
        j->req = xp_parse_object(data, len, 0, err, sizeof err);
        if (!j->req) {
            if (!broadcast) reply_str(n, m, xp_error_json(XP_ERR_BAD_REQUEST, "%s", err));
            goto out;
        }
        if (j->kind == JOB_SILENT && broadcast) {
            const char *name = json_string_value(json_object_get(j->req, "name"));
            if (!name || !xc_conf_silent(n->conf, name)) goto out;
        }
    }
    j->msg = m;
    m = NULL;
    enqueue(n, j);
    j = NULL;
out:
    job_free(j);
    natsMsg_Destroy(m);
}

static void on_node_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    xn *n = closure;
    const char *subj = natsMsg_GetSubject(m);
    size_t pre = strlen("xtask.") + strlen(n->id) + 1;
    dispatch(n, m, strlen(subj) > pre ? subj + pre : "", 0);
}

static void on_broadcast_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    xn *n = closure;
    const char *subj = natsMsg_GetSubject(m);
    size_t pre = strlen("xtask.broadcast.");
    dispatch(n, m, strlen(subj) > pre ? subj + pre : "", 1);
}

static void on_discover(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    xn *n = closure;
    xp_filter f;
    xp_node_info ni;
    char err[256];
    if ((size_t)natsMsg_GetDataLength(m) > n->conf->max_request_bytes) {
        reply_str(n, m, xp_error_json(XP_ERR_PAYLOAD_TOO_LARGE, "discover filter too large"));
    } else if (xp_filter_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &f, err, sizeof err) !=
               0) {
        reply_str(n, m, xp_error_json(XP_ERR_BAD_REQUEST, "%s", err));
    } else {
        char region[128];
        node_info(n, &ni, region, sizeof region);
        if (xp_filter_match(&f, &ni)) reply_str(n, m, xp_node_json(&ni));
    }
    natsMsg_Destroy(m);
}

/* ---- connection events -------------------------------------------------------------------- */

static void on_connected(natsConnection *nc, void *closure)
{
    xn *n = closure;
    pthread_mutex_lock(&n->mu);
    n->js_setup_needed = 1;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    atomic_store(&n->register_needed, 1);
    poke(n);
}

/* ---- JetStream setup and the queue -------------------------------------------------------- */

/* Create the stream, or update an existing one to this configuration (so a new max_bytes applies to
 * streams made before it). Bounded in bytes: a flood of publishes cannot fill the volume. deny:
 * deny_delete and deny_purge (the audit trail). */
static int ensure_stream(xn *n, const char *name, const char *subject, jsRetentionPolicy ret,
                         int64_t max_age_ms, size_t max_bytes, int deny)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subjects[1] = {subject};
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = ret;
    sc.Storage = js_FileStorage;
    sc.Replicas = n->conf->replicas;
    sc.MaxAge = max_age_ms * 1000000LL;
    sc.Duplicates = 2LL * 60 * 1000000000LL;
    sc.MaxBytes = (int64_t)max_bytes;
    /* results: the oldest go; the work queue: new submissions are refused, never silently dropped */
    sc.Discard = ret == js_WorkQueuePolicy ? js_DiscardNew : js_DiscardOld;
    /* direct gets: how a node looks up its own result (docs/PROTOCOL.md) */
    sc.AllowDirect = ret == js_LimitsPolicy;
    sc.DenyDelete = deny != 0;
    sc.DenyPurge = deny != 0;
    natsStatus st = js_AddStream(&si, n->js, &sc, NULL, &jerr);
    if (st != NATS_OK && jerr == JSStreamNameExistErr) {
        jsStreamInfo_Destroy(si);
        si = NULL;
        st = js_UpdateStream(&si, n->js, &sc, NULL, &jerr);
        if (st != NATS_OK) {
            /* An existing stream we cannot update (e.g. replicas) still works: keep it. */
            xt_warn("stream %s exists with another configuration: %s (%d); using it as it is", name,
                    natsStatus_GetText(st), (int)jerr);
            st = NATS_OK;
        }
    }
    jsStreamInfo_Destroy(si);
    if (st != NATS_OK) xt_warn("stream %s: %s (%d)", name, natsStatus_GetText(st), (int)jerr);
    return st == NATS_OK ? 0 : -1;
}

static int ensure_kv(xn *n)
{
    kvStore *kv = NULL;
    kvConfig kc;
    natsStatus st = js_KeyValue(&kv, n->js, XN_KV_BUCKET);
    if (st != NATS_OK) {
        kvConfig_Init(&kc);
        kc.Bucket = XN_KV_BUCKET;
        kc.History = 1;
        kc.TTL = n->conf->node_ttl_ms * 1000000LL;
        kc.Replicas = n->conf->replicas;
        kc.StorageType = js_MemoryStorage;
        kc.MaxBytes = (int64_t)n->conf->nodes_max_bytes;
        st = js_CreateKeyValue(&kv, n->js, &kc);
    }
    kvStore_Destroy(kv);
    if (st != NATS_OK) xt_warn("KV %s: %s", XN_KV_BUCKET, natsStatus_GetText(st));
    return st == NATS_OK ? 0 : -1;
}

static int ensure_consumer(xn *n, const char *cap)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    char durable[96], filter[128];
    snprintf(durable, sizeof durable, "xtask-q-%s", cap);
    snprintf(filter, sizeof filter, "xtask.queue.%s", cap);
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.FilterSubject = filter;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = n->conf->ack_wait_ms * 1000000LL;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = 1000;
    cc.Replicas = n->conf->replicas;
    natsStatus st = js_AddConsumer(&ci, n->js, XN_STREAM_QUEUE, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (st != NATS_OK && jerr != JSConsumerNameExistErr && jerr != JSConsumerExistingActiveErr) {
        /* Already there with the same config is NATS_OK; anything else is worth a line. */
        ci = NULL;
        if (js_GetConsumerInfo(&ci, n->js, XN_STREAM_QUEUE, durable, NULL, NULL) == NATS_OK) {
            jsConsumerInfo_Destroy(ci);
            return 0;
        }
        xt_warn("consumer %s: %s (%d)", durable, natsStatus_GetText(st), (int)jerr);
        return -1;
    }
    return 0;
}

/* An edge node binds: it may not create or update streams, buckets or consumers (its identity has
 * no stream API beyond its own consumers' info and fetches); the region's platform made them. */
static int bind_consumers(xn *n)
{
    for (size_t i = 0; n->conf->queue_capabilities[i]; i++) {
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        char durable[96];
        snprintf(durable, sizeof durable, "xtask-q-%s", n->conf->queue_capabilities[i]);
        natsStatus st = js_GetConsumerInfo(&ci, n->js, XN_STREAM_QUEUE, durable, NULL, &jerr);
        long long tick = st == NATS_OK && ci->Config ? ci->Config->AckWait / 3000000LL : 0;
        if (tick > 0 && tick < atomic_load(&n->q_tick_ms)) atomic_store(&n->q_tick_ms, tick);
        jsConsumerInfo_Destroy(ci);
        if (st != NATS_OK) {
            xt_warn("consumer %s of %s not there yet (the region's platform node creates it): %s (%d)",
                    durable, XN_STREAM_QUEUE, natsStatus_GetText(st), (int)jerr);
            return -1;
        }
    }
    return 0;
}

static int js_setup(xn *n)
{
    if (!n->conf->manage_streams) return bind_consumers(n);
    if (ensure_stream(n, XN_STREAM_RESULTS, "xtask.results.>", js_LimitsPolicy, n->conf->results_max_age_ms,
                      n->conf->results_max_bytes, 0) ||
        ensure_stream(n, XN_STREAM_QUEUE, "xtask.queue.>", js_WorkQueuePolicy, 0, n->conf->queue_max_bytes,
                      0) ||
        ensure_stream(n, XN_STREAM_AUDIT, "xtask.audit.>", js_LimitsPolicy, n->conf->audit_max_age_ms,
                      n->conf->audit_max_bytes, 1) ||
        ensure_kv(n))
        return -1;
    for (size_t i = 0; n->conf->queue_capabilities[i]; i++)
        if (ensure_consumer(n, n->conf->queue_capabilities[i])) return -1;
    return 0;
}

static void cond_wait_ms(xn *n, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&n->cv, &n->mu, &ts);
}

static void *js_thread_main(void *arg)
{
    xn *n = arg;
    int64_t backoff = 250;
    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        if (!n->js_setup_needed) {
            pthread_cond_wait(&n->cv, &n->mu);
            continue;
        }
        n->js_setup_needed = 0;
        pthread_mutex_unlock(&n->mu);
        int ok = natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED && js_setup(n) == 0;
        pthread_mutex_lock(&n->mu);
        if (ok) {
            if (!n->js_ready)
                xt_info("JetStream ready: streams %s, %s, %s, KV %s", XN_STREAM_QUEUE, XN_STREAM_RESULTS,
                        XN_STREAM_AUDIT, XN_KV_BUCKET);
            n->js_ready = 1;
            backoff = 250;
            pthread_cond_broadcast(&n->cv);
        } else {
            n->js_setup_needed = 1;
            cond_wait_ms(n, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

typedef struct {
    xn *n;
    int idx;
} puller_arg;

static void *puller_main(void *arg)
{
    puller_arg *pa = arg;
    xn *n = pa->n;
    const char *cap = n->conf->queue_capabilities[pa->idx];
    char durable[96], filter[128];
    natsSubscription *sub = NULL;
    snprintf(durable, sizeof durable, "xtask-q-%s", cap);
    snprintf(filter, sizeof filter, "xtask.queue.%s", cap);

    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        /* Work only with JetStream set up and a free worker (reserved for this message). */
        if (!n->js_ready || n->running + n->nqueued + n->reserved >= n->conf->max_concurrent) {
            cond_wait_ms(n, 500);
            continue;
        }
        n->reserved++;
        pthread_mutex_unlock(&n->mu);

        natsStatus st = NATS_OK;
        if (!sub) {
            jsSubOptions so;
            jsErrCode jerr = 0;
            jsSubOptions_Init(&so);
            so.Stream = XN_STREAM_QUEUE;
            so.Consumer = durable; /* bound: never deleted by us */
            st = js_PullSubscribe(&sub, n->js, filter, durable, NULL, &so, &jerr);
            if (st != NATS_OK) {
                xt_warn("pull subscription %s: %s (%d)", durable, natsStatus_GetText(st), (int)jerr);
                sub = NULL;
            } else {
                pthread_mutex_lock(&n->mu);
                n->qsubs[pa->idx] = sub;
                pthread_mutex_unlock(&n->mu);
            }
        }
        int64_t t0 = xp_mono_ms(), wait_ms = 0;
        if (sub) {
            natsMsgList list = {0};
            jsErrCode jerr = 0;
            st = natsSubscription_Fetch(&list, sub, 1, 500, &jerr);
            if (st == NATS_OK && list.Count > 0) {
                for (int i = 0; i < list.Count; i++) {
                    job *j = calloc(1, sizeof *j);
                    xp_err code;
                    char err[512];
                    natsMsg *m = list.Msgs[i];
                    list.Msgs[i] = NULL;
                    if (!j) {
                        natsMsg_Nak(m, NULL);
                        natsMsg_Destroy(m);
                        continue;
                    }
                    if (xp_run_req_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &j->run, &code,
                                         err, sizeof err) != 0) {
                        xt_warn("queue %s: dropping a bad message: %s", filter, err);
                        natsMsg_Term(m, NULL);
                        natsMsg_Destroy(m);
                        free(j);
                        continue;
                    }
                    /* The platform made the id and submitted it as the message's Nats-Msg-Id (the
                     * stream's dedup key): a message whose id is missing or differs was not
                     * submitted by the platform's rules, so it is refused, not run. */
                    const char *mid = NULL;
                    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &mid) != NATS_OK) mid = NULL;
                    if (!j->run.id[0] || !mid || strcmp(mid, j->run.id) != 0) {
                        xt_warn("queue %s: refusing a message whose id '%s' is not its Nats-Msg-Id '%s'",
                                filter, j->run.id, mid ? mid : "");
                        json_t *ar = audit_base(n, "task.run", j->run.requested_by, j->run.via);
                        json_object_update_new(ar, json_pack("{s:s,s:s,s:b,s:s,s:s}", "id", j->run.id, "task",
                                                             j->run.args[0], "queued", 1, "outcome",
                                                             "refused", "error", "bad_request"));
                        audit_publish(n, ar);
                        natsMsg_Term(m, NULL);
                        natsMsg_Destroy(m);
                        xp_run_req_free(&j->run);
                        free(j);
                        continue;
                    }
                    j->kind = JOB_QUEUE_RUN;
                    j->msg = m;
                    enqueue(n, j); /* consumes the reservation */
                }
                natsMsgList_Destroy(&list);
                pthread_mutex_lock(&n->mu);
                continue;
            }
            natsMsgList_Destroy(&list);
            /* 3.4.1 may return a timeout at once after a timeout: never spin. */
            if (st == NATS_TIMEOUT && xp_mono_ms() - t0 < 100)
                wait_ms = 100;
            else if (st != NATS_TIMEOUT && st != NATS_OK)
                wait_ms = 500;
        } else {
            wait_ms = 1000;
        }
        pthread_mutex_lock(&n->mu);
        n->reserved--;
        if (wait_ms && !n->stopping) cond_wait_ms(n, wait_ms);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void collect_task_names(xn *n)
{
    const xc_conf *c = n->conf;
    size_t k = 0, cap = c->ntasks + xt_strv_len(c->taskfile_allow) + 1;
    n->task_names = calloc(cap, sizeof(char *));
    if (!n->task_names) return;
    n->task_info = json_object();
    for (size_t i = 0; i < c->ntasks; i++) {
        n->task_names[k++] = strdup(c->tasks[i].name);
        json_object_set_new(n->task_info, c->tasks[i].name,
                            json_pack("{s:s,s:b}", "description",
                                      c->tasks[i].description ? c->tasks[i].description : "", "args",
                                      c->tasks[i].allow_args));
    }
    if (n->task_bin[0] && c->taskfile_enabled)
        for (size_t i = 0; c->taskfile_allow && c->taskfile_allow[i]; i++)
            if (strcmp(c->taskfile_allow[i], "*") != 0 && !xc_conf_task(c, c->taskfile_allow[i]))
                n->task_names[k++] = strdup(c->taskfile_allow[i]);
    n->task_names[k] = NULL;
}

static int connect_nats(xn *n, const xt_nats_conf *conf)
{
    char name[128], err[1024];
    snprintf(name, sizeof name, "xtask-node-%s", n->id);
    /* starts before the server is reachable: on_connected runs when it connects */
    xt_nats_params p = {.retry_connect = 1, .name = name, .on_connected = on_connected, .ud = n};
    natsStatus st;
    /* Our replies (PubAcks, consumer fetches, direct gets) come to `_INBOX_node-<id>` unless the
     * configuration names another: the only inbox a node identity may read (docs/SECURITY.md,
     * "The bus"). A shallow copy: the strings stay the configuration's. */
    xt_nats_conf c = *conf;
    char prefix[XP_ID_MAX + 16];
    snprintf(prefix, sizeof prefix, "_INBOX_node-%s", n->id);
    if (!c.inbox_prefix || !*c.inbox_prefix) c.inbox_prefix = prefix;
    if (xt_nats_connect(&c, &p, &n->nc, err, sizeof err) != 0) {
        xt_error("%s", err);
        return -1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = XN_JS_WAIT_MS;
    st = natsConnection_JetStream(&n->js, n->nc, &jo);
    if (st != NATS_OK) {
        xt_error("JetStream context: %s", natsStatus_GetText(st));
        return -1;
    }
    char subj[128];
    snprintf(subj, sizeof subj, "xtask.%s.>", n->id);
    st = natsConnection_Subscribe(&n->sub_node, n->nc, subj, on_node_msg, n);
    if (st == NATS_OK)
        st = natsConnection_Subscribe(&n->sub_discover, n->nc, "xtask.nodes.discover", on_discover, n);
    /* Broadcasts: only the verbs of our capabilities (a node identity may subscribe to no other). */
    if (st == NATS_OK)
        st = natsConnection_Subscribe(&n->sub_broadcast[n->nbroadcast++], n->nc, "xtask.broadcast.ping",
                                      on_broadcast_msg, n);
    for (size_t i = 0; st == NATS_OK && i < sizeof verbs / sizeof verbs[0] && n->nbroadcast < XN_BCAST_MAX;
         i++) {
        if (!xc_conf_has_cap(n->conf, verbs[i].cap)) continue;
        snprintf(subj, sizeof subj, "xtask.broadcast.%s%s", verbs[i].verb,
                 verbs[i].kind == JOB_KILL_PORT ? ".*" : "");
        st = natsConnection_Subscribe(&n->sub_broadcast[n->nbroadcast++], n->nc, subj, on_broadcast_msg, n);
    }
    if (st != NATS_OK) {
        xt_error("subscribe: %s", natsStatus_GetText(st));
        return -1;
    }
    natsSubscription_SetPendingLimits(n->sub_node, 4096, 64 * 1024 * 1024);
    return 0;
}

static void node_stop(xn *n)
{
    /* 1. no new requests */
    if (n->sub_node) natsSubscription_Unsubscribe(n->sub_node);
    for (int i = 0; i < n->nbroadcast; i++)
        if (n->sub_broadcast[i]) natsSubscription_Unsubscribe(n->sub_broadcast[i]);
    if (n->sub_discover) natsSubscription_Unsubscribe(n->sub_discover);
    /* 2. refuse the queued jobs, kill the running groups, wake everyone */
    pthread_mutex_lock(&n->mu);
    n->stopping = 1;
    n->cancel = 1;
    job *q = n->head;
    n->head = n->tail = NULL;
    n->nqueued = 0;
    for (int i = 0; i < XN_WORKERS_MAX; i++)
        if (n->pgids[i] > 0) kill(-n->pgids[i], SIGKILL);
    pthread_cond_broadcast(&n->cv);
    pthread_cond_broadcast(&n->work_cv);
    pthread_mutex_unlock(&n->mu);
    while (q) {
        job *next = q->next;
        if (q->kind == JOB_QUEUE_RUN)
            natsMsg_Nak(q->msg, NULL);
        else if (!q->broadcast)
            reply_str(n, q->msg, xp_error_json(XP_ERR_UNAVAILABLE, "node %s is shutting down", n->id));
        job_free(q);
        q = next;
    }
    /* 3. join (a worker stuck in a download gets 1.5 s, then we leave without it) */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 1;
    dl.tv_nsec += 500000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int64_t t_join = xp_mono_ms();
    int all_joined = 1;
    for (int i = 0; i < n->nworkers; i++)
        if (pthread_timedjoin_np(n->workers[i], NULL, &dl) != 0) all_joined = 0;
    for (int i = 0; i < n->npullers; i++)
        if (pthread_timedjoin_np(n->pullers[i], NULL, &dl) != 0) all_joined = 0;
    if (pthread_timedjoin_np(n->js_thread, NULL, &dl) != 0) all_joined = 0;
    xt_debug("shutdown: threads joined in %lld ms", (long long)(xp_mono_ms() - t_join));
    /* 4. say goodbye */
    if (natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED) {
        natsMsg *m = NULL;
        char kvsubj[128];
        snprintf(kvsubj, sizeof kvsubj, "$KV.%s.%s", XN_KV_BUCKET, n->id);
        if (natsMsg_Create(&m, kvsubj, NULL, NULL, 0) == NATS_OK) {
            natsMsgHeader_Set(m, "KV-Operation", "DEL");
            natsConnection_PublishMsg(n->nc, m);
        }
        natsMsg_Destroy(m);
        publish_event(n, n->conf->events_project, "node.left", NULL, json_pack("{s:s}", "region", n->region));
        natsConnection_FlushTimeout(n->nc, 500);
    }
    if (!all_joined) {
        xt_warn("a worker did not stop in time; exiting without it");
        return;
    }
    for (int i = 0; i < XN_QCAPS_MAX; i++)
        natsSubscription_Destroy(n->qsubs[i]);
    natsSubscription_Destroy(n->sub_node);
    for (int i = 0; i < n->nbroadcast; i++)
        natsSubscription_Destroy(n->sub_broadcast[i]);
    natsSubscription_Destroy(n->sub_discover);
    jsCtx_Destroy(n->js);
    natsConnection_Close(n->nc);
    natsConnection_Destroy(n->nc);
    n->nc = NULL;
}

int xn_node_run(const xn_params *p)
{
    static xn node; /* one per process; static so a late worker never outlives it */
    xn *n = &node;
    sigset_t sigs;
    struct utsname un;
    int sfd = -1, rc = 1;
    puller_arg pargs[XN_QCAPS_MAX];

    memset(n, 0, sizeof *n);
    n->conf = p->conf;
    atomic_init(&n->q_tick_ms, (long long)(p->conf->ack_wait_ms / 3));
    n->evfd = -1;
    snprintf(n->id, sizeof n->id, "%s", p->node_id);
    const char *fly = getenv("FLY_REGION");
    snprintf(n->region, sizeof n->region, "%s",
             p->region && *p->region ? p->region : (fly && *fly ? fly : "local"));
    if (uname(&un) == 0) {
        snprintf(n->os, sizeof n->os, "%.63s", strcmp(un.sysname, "Linux") == 0 ? "linux" : un.sysname);
        snprintf(n->arch, sizeof n->arch, "%.63s", un.machine);
    }
    if (gethostname(n->hostname, sizeof n->hostname) != 0)
        snprintf(n->hostname, sizeof n->hostname, "unknown");
    if (p->conf->taskfile_enabled && xw_which_path("task", n->task_bin, sizeof n->task_bin) != 0) {
        xt_warn("taskfile.enabled is set but no `task` binary is on PATH: Taskfile tasks are off");
        n->task_bin[0] = '\0';
    }
    collect_task_names(n);
    n->started_ms = xp_now_ms();

    /* Signals: blocked before any thread exists, so every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    n->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, &ca);
    pthread_cond_init(&n->work_cv, NULL);
    pthread_condattr_destroy(&ca);
    if (sfd < 0 || n->evfd < 0) {
        xt_error("signalfd/eventfd: %s", strerror(errno));
        goto out;
    }
    if (nats_Open(-1) != NATS_OK) {
        xt_error("nats_Open failed");
        goto out;
    }
    char url[XT_NATS_URL_MAX];
    xt_info("node %s (region %s) starting: NATS %s, %zu tasks, %d workers", n->id, n->region,
            xt_nats_url_redact(p->nats->url, url, sizeof url), p->conf->ntasks, p->conf->max_concurrent);
    if (connect_nats(n, p->nats) != 0) goto out_nats;

    n->nworkers = p->conf->max_concurrent < XN_WORKERS_MAX ? p->conf->max_concurrent : XN_WORKERS_MAX;
    for (int i = 0; i < n->nworkers; i++)
        pthread_create(&n->workers[i], NULL, worker_main, n);
    pthread_create(&n->js_thread, NULL, js_thread_main, n);
    for (size_t i = 0; p->conf->queue_capabilities[i] && i < XN_QCAPS_MAX; i++) {
        if (!xc_conf_has_cap(p->conf, "task")) break; /* queue entries are task runs */
        pargs[i] = (puller_arg){n, (int)i};
        pthread_create(&n->pullers[n->npullers++], NULL, puller_main, &pargs[i]);
    }

    int64_t next_hb = xp_mono_ms() + p->conf->heartbeat_ms;
    for (;;) {
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN}, {.fd = n->evfd, .events = POLLIN}};
        int64_t now = xp_mono_ms();
        int r = poll(pf, 2, next_hb > now ? (int)(next_hb - now) : 0);
        if (r < 0 && errno != EINTR) {
            xt_error("poll: %s", strerror(errno));
            break;
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    xt_info("SIGHUP ignored (restart the node to reload its configuration)");
                } else {
                    xt_info("signal %d: stopping", (int)si.ssi_signo);
                    break;
                }
            }
        }
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            if (read(n->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                xt_warn("eventfd read: %s", strerror(errno));
        }
        if (atomic_exchange(&n->register_needed, 0)) {
            edge_poll(n);
            announce(n, "register");
            publish_event(n, p->conf->events_project, "node.joined", NULL,
                          json_pack("{s:s}", "region", n->region));
            xt_info("registered as %s", n->id);
        }
        now = xp_mono_ms();
        if (now >= next_hb) {
            edge_poll(n);
            if (natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED) announce(n, "heartbeat");
            next_hb = now + p->conf->heartbeat_ms;
        }
    }
    int64_t t_stop = xp_mono_ms();
    node_stop(n);
    xt_debug("shutdown: node stopped in %lld ms", (long long)(xp_mono_ms() - t_stop));
    rc = 0;
    if (!n->nc) {
        xt_strv_free(n->task_names);
        n->task_names = NULL;
        json_decref(n->task_info);
        n->task_info = NULL;
        int64_t t_close = xp_mono_ms();
        natsStatus cs = nats_CloseAndWait(1000);
        xt_debug("shutdown: library closed in %lld ms (%s)", (long long)(xp_mono_ms() - t_close),
                 natsStatus_GetText(cs));
    }
    xt_info("stopped");
    goto out;
out_nats:
    if (n->nc) {
        natsConnection_Destroy(n->nc);
        n->nc = NULL;
    }
    nats_Close();
out:
    if (sfd >= 0) close(sfd);
    if (n->evfd >= 0) close(n->evfd);
    xt_strv_free(n->task_names);
    n->task_names = NULL;
    return rc;
}
