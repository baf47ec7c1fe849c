/* xk_client: the client commands (see xk_client.h). */
#include "xk_client.h"

#include <nats/nats.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xp_proto.h"
#include "xt_nats.h"
#include "xt_audit.h"

const char *xk_requester(void)
{
    static char name[XP_USER_MAX + 1];
    const char *env = getenv("XTASK_USER");
    struct passwd *pw;
    if (env && xp_user_valid(env))
        snprintf(name, sizeof name, "%s", env);
    else if ((pw = getpwuid(getuid())) != NULL && xp_user_valid(pw->pw_name))
        snprintf(name, sizeof name, "%s", pw->pw_name);
    else
        snprintf(name, sizeof name, "uid-%u", (unsigned)getuid());
    return name;
}

/* Connect once, no background retries: a client wants an answer now (XK_EXIT_NO_NATS otherwise,
 * with the cause: "xtask: NATS at nats://...: authorization violation: check XTASK_NATS_CREDS"). */
static int client_connect(const xk_opts *o, natsConnection **nc, int64_t timeout_ms, int global_delivery)
{
    char err[1024];
    xt_nats_params p = {.cli = 1,
                        .global_delivery = global_delivery,
                        .timeout_ms = timeout_ms,
                        .name = "xtask-client",
                        .creds_where = "XTASK_NATS_CREDS",
                        .tls_where = "XTASK_NATS_TLS_CA"};
    *nc = NULL;
    if (nats_Open(-1) != NATS_OK) {
        fprintf(stderr, "xtask: cannot start the NATS library\n");
        return -1;
    }
    if (xt_nats_connect(o->nats, &p, nc, err, sizeof err) != 0) {
        fprintf(stderr, "xtask: cannot connect: %s\n", err);
        return -1;
    }
    return 0;
}

static void client_close(natsConnection *nc)
{
    if (nc) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    nats_CloseAndWait(1000);
}

/* Print an error reply to stderr; 1 if `data` was an error reply. */
static int print_if_error(const char *data, size_t len)
{
    char code[64], msg[1024];
    if (!xp_error_parse(data, len, code, sizeof code, msg, sizeof msg)) return 0;
    fprintf(stderr, "xtask: %s: %s\n", code, msg);
    return 1;
}

/* How many nodes the KV registry (xtask_nodes) holds: the subjects of its stream, within wait_ms.
 * 0 when unknown (no JetStream; a bus identity without $JS.API.STREAM.INFO.KV_xtask_nodes, such as
 * a cli-<name> user today): the caller then waits its whole window. A node
 * that left cleanly still counts until its delete marker expires (node_ttl): never too few. */
static size_t registered_nodes(natsConnection *nc, int64_t wait_ms)
{
    jsCtx *js = NULL;
    jsOptions jo;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    size_t n = 0;
    jsOptions_Init(&jo);
    jo.Wait = wait_ms > 0 ? wait_ms : 1;
    if (natsConnection_JetStream(&js, nc, &jo) == NATS_OK &&
        js_GetStreamInfo(&si, js, "KV_xtask_nodes", NULL, &jerr) == NATS_OK && si != NULL)
        n = (size_t)si->State.NumSubjects;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    return n;
}

/* Scatter-gather on `subject`: every reply within window_ms is appended to arr; with
 * until_registered, it ends as soon as as many nodes answered as the registry holds. */
static int gather(const xk_opts *o, natsConnection *nc, const char *subject, const char *body,
                  int64_t window_ms, json_t *arr, int until_registered)
{
    char inbox[XT_NATS_PREFIX_MAX + 64], reply[XT_NATS_PREFIX_MAX + 128], rsub[XT_NATS_PREFIX_MAX + 128];
    natsSubscription *sub = NULL;
    size_t expect = 0;
    natsStatus st = xt_nats_inbox(o->nats->inbox_prefix, inbox, sizeof inbox) == 0 &&
                            xt_nats_reply_for(subject, inbox, reply, sizeof reply) == 0 &&
                            xt_nats_reply_sub(subject, inbox, rsub, sizeof rsub) == 0
                        ? NATS_OK
                        : NATS_ERR;
    if (st == NATS_OK) st = natsConnection_SubscribeSync(&sub, nc, rsub);
    if (st == NATS_OK) st = natsConnection_PublishRequestString(nc, subject, reply, body);
    int64_t deadline = xp_mono_ms() + window_ms;
    /* asked after the request went out: the answers queue on the inbox meanwhile. Half the window
     * at most: an identity not allowed to ask (no answer) still has the other half to collect */
    if (st == NATS_OK && until_registered) expect = registered_nodes(nc, window_ms / 2);
    while (st == NATS_OK && (expect == 0 || json_array_size(arr) < expect)) {
        int64_t left = deadline - xp_mono_ms();
        natsMsg *m = NULL;
        if (left <= 0) break;
        if (natsSubscription_NextMsg(&m, sub, left) != NATS_OK) break;
        /* a broadcast's wildcard also carries replies to other requests of this identity */
        const char *rest = xt_nats_reply_rest(natsMsg_GetSubject(m), inbox, NULL, 0);
        if (!rest || *rest) {
            natsMsg_Destroy(m);
            continue;
        }
        json_t *v = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        if (json_is_object(v) && !json_object_get(v, "error")) json_array_append(arr, v);
        json_decref(v);
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    return st == NATS_OK ? 0 : -1;
}

/* A request to one node ("{}" body) with its reply under _R.<node>. (xt_nats.h): nats.c's own
 * request inboxes are not subjects a node may answer through a leaf. */
static natsStatus node_request(const xk_opts *o, natsConnection *nc, const char *subject, int64_t timeout_ms,
                               natsMsg **out)
{
    char inbox[XT_NATS_PREFIX_MAX + 64], reply[XT_NATS_PREFIX_MAX + 128];
    natsSubscription *sub = NULL;
    *out = NULL;
    natsStatus st = xt_nats_inbox(o->nats->inbox_prefix, inbox, sizeof inbox) == 0 &&
                            xt_nats_reply_for(subject, inbox, reply, sizeof reply) == 0
                        ? NATS_OK
                        : NATS_ERR;
    if (st == NATS_OK) st = natsConnection_SubscribeSync(&sub, nc, reply);
    if (st == NATS_OK) st = natsSubscription_AutoUnsubscribe(sub, 1);
    if (st == NATS_OK) st = natsConnection_PublishRequestString(nc, subject, reply, "{}");
    if (st == NATS_OK) st = natsSubscription_NextMsg(out, sub, timeout_ms);
    if (st == NATS_OK && natsMsg_IsNoResponders(*out)) {
        natsMsg_Destroy(*out);
        *out = NULL;
        st = NATS_NO_RESPONDERS;
    }
    natsSubscription_Destroy(sub);
    return st;
}

static char *filter_body(const xk_opts *o, const char *task)
{
    json_t *f = json_object();
    if (o->capability) json_object_set_new(f, "capability", json_string(o->capability));
    if (o->region) json_object_set_new(f, "region", json_string(o->region));
    if (o->platform) json_object_set_new(f, "platform", json_string(o->platform));
    if (task) json_object_set_new(f, "task", json_string(task));
    char *s = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    return s;
}

static int cmp_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

int xk_nodes(const xk_opts *o)
{
    natsConnection *nc = NULL;
    json_t *arr = json_array();
    int rc = XK_EXIT_ERROR;
    char *body = filter_body(o, NULL);
    if (client_connect(o, &nc, o->timeout_ms, 0) != 0) {
        rc = XK_EXIT_NO_NATS;
        goto out;
    }
    /* a filter leaves registered nodes silent: then the whole window */
    int unfiltered = !o->capability && !o->region && !o->platform;
    if (gather(o, nc, "xtask.nodes.discover", body, o->timeout_ms > 0 ? o->timeout_ms : 500, arr,
               unfiltered) != 0) {
        fprintf(stderr, "xtask: discover failed\n");
        goto out;
    }
    /* sort by id for a stable listing */
    size_t n = json_array_size(arr);
    json_t **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(arr, i);
    if (v) qsort(v, n, sizeof *v, cmp_id);
    if (o->json) {
        json_t *sorted = json_array();
        for (size_t i = 0; v && i < n; i++)
            json_array_append(sorted, v[i]);
        char *s = json_dumps(sorted, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(sorted);
    } else {
        printf("%-24s %-8s %-16s %7s %6s  %s\n", "ID", "REGION", "PLATFORM", "RUNNING", "LOAD1", "TASKS");
        for (size_t i = 0; v && i < n; i++) {
            json_t *r = v[i], *plat = json_object_get(r, "platform"), *load = json_object_get(r, "load");
            char platform[96], tasks[512] = "";
            snprintf(platform, sizeof platform, "%s/%s",
                     json_string_value(json_object_get(plat, "os")) ?: "?",
                     json_string_value(json_object_get(plat, "arch")) ?: "?");
            size_t k;
            json_t *t;
            json_array_foreach(json_object_get(r, "tasks"), k, t)
            {
                size_t used = strlen(tasks);
                snprintf(tasks + used, sizeof tasks - used, "%s%s", k ? "," : "", json_string_value(t) ?: "");
            }
            printf("%-24s %-8s %-16s %7lld %6.2f  %s\n", json_string_value(json_object_get(r, "id")) ?: "?",
                   json_string_value(json_object_get(r, "region")) ?: "?", platform,
                   (long long)json_integer_value(json_object_get(load, "running")),
                   json_number_value(json_object_get(load, "load1")), tasks);
        }
    }
    free(v);
    rc = n > 0 ? XK_EXIT_OK : XK_EXIT_ERROR;
    if (n == 0) fprintf(stderr, "xtask: no node answered\n");
out:
    free(body);
    json_decref(arr);
    client_close(nc);
    return rc;
}

/* ---- run: live output and the reply, delivered in order on one thread --------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *id;
    int quiet;
    natsMsg *reply;
} run_state;

static void on_log(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    run_state *rs = closure;
    json_t *v = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    const char *id = json_string_value(json_object_get(v, "id"));
    if (!rs->quiet && id && strcmp(id, rs->id) == 0) {
        json_t *line = json_object_get(v, "line");
        const char *stream = json_string_value(json_object_get(v, "stream"));
        FILE *f = stream && strcmp(stream, "stderr") == 0 ? stderr : stdout;
        fwrite(json_string_value(line) ?: "", 1, json_string_length(line), f);
        fputc('\n', f);
        fflush(f);
    }
    json_decref(v);
    natsMsg_Destroy(m);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    run_state *rs = closure;
    pthread_mutex_lock(&rs->mu);
    if (!rs->reply)
        rs->reply = m;
    else
        natsMsg_Destroy(m);
    pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

/* Pick the least busy node that allows `task`. */
static int pick_node(natsConnection *nc, const xk_opts *o, const char *task, char *out, size_t outlen)
{
    json_t *arr = json_array();
    char *body = filter_body(o, task);
    long best = -1;
    size_t i;
    json_t *r;
    gather(o, nc, "xtask.nodes.discover", body, 300, arr, 0);
    json_array_foreach(arr, i, r)
    {
        json_t *load = json_object_get(r, "load");
        long busy = (long)(json_integer_value(json_object_get(load, "running")) +
                           json_integer_value(json_object_get(load, "queued")));
        const char *id = json_string_value(json_object_get(r, "id"));
        if (id && (best < 0 || busy < best)) {
            best = busy;
            snprintf(out, outlen, "%s", id);
        }
    }
    free(body);
    json_decref(arr);
    return best < 0 ? -1 : 0;
}

static int exit_code_of(json_t *res)
{
    if (json_is_true(json_object_get(res, "timed_out"))) return XK_EXIT_TIMEOUT;
    int sig = (int)json_integer_value(json_object_get(res, "signal"));
    if (sig > 0) return 128 + sig;
    int code = (int)json_integer_value(json_object_get(res, "exit_code"));
    return code >= 0 && code < 256 ? code : XK_EXIT_ERROR;
}

int xk_run(const xk_opts *o)
{
    natsConnection *nc = NULL;
    natsSubscription *logs = NULL, *rsub = NULL;
    char inbox[XT_NATS_PREFIX_MAX + 64], rsubj[XT_NATS_PREFIX_MAX + 128];
    run_state rs = {.quiet = o->quiet};
    xp_run_req req;
    char id[XP_ID_MAX + 1], node[XP_ID_MAX + 1], subj[160];
    int rc = XK_EXIT_ERROR;
    char *body = NULL;

    memset(&req, 0, sizeof req);
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    for (size_t i = 0; o->args[i] && i < XP_ARGS_MAX; i++)
        req.args[req.nargs++] = o->args[i];
    snprintf(req.project, sizeof req.project, "%s", o->project ? o->project : "default");
    xp_new_id(id, sizeof id);
    snprintf(req.id, sizeof req.id, "%s", id);
    snprintf(req.requested_by, sizeof req.requested_by, "%s", xk_requester());
    snprintf(req.via, sizeof req.via, "cli");
    req.timeout_ms = o->timeout_ms;
    rs.id = id;

    if (client_connect(o, &nc, 0, 1) != 0) {
        rc = XK_EXIT_NO_NATS;
        goto out;
    }
    if (o->any) {
        if (pick_node(nc, o, req.args[0], node, sizeof node) != 0) {
            fprintf(stderr, "xtask: no node offers task '%s'\n", req.args[0]);
            goto out;
        }
    } else {
        snprintf(node, sizeof node, "%s", o->node);
    }
    body = xp_run_req_json(&req);
    snprintf(subj, sizeof subj, "xtask.logs.%s", node);
    natsStatus st = natsConnection_Subscribe(&logs, nc, subj, on_log, &rs);
    snprintf(subj, sizeof subj, "xtask.%s.task.run", node);
    if (st == NATS_OK && (xt_nats_inbox(o->nats->inbox_prefix, inbox, sizeof inbox) != 0 ||
                          xt_nats_reply_for(subj, inbox, rsubj, sizeof rsubj) != 0))
        st = NATS_ERR;
    if (st == NATS_OK) st = natsConnection_Subscribe(&rsub, nc, rsubj, on_reply, &rs);
    if (st == NATS_OK)
        st = natsConnection_Flush(nc); /* the server knows our interest before the task starts */
    if (st == NATS_OK) st = natsConnection_PublishRequestString(nc, subj, rsubj, body);
    if (st != NATS_OK) {
        fprintf(stderr, "xtask: request to %s failed: %s\n", subj, natsStatus_GetText(st));
        goto out;
    }
    /* Wait for the reply: the task's own deadline is the node's business; ours is a safety net. */
    int64_t wait = o->timeout_ms > 0 ? o->timeout_ms + 5000 : 3600 * 1000 + 10000;
    int64_t deadline = xp_mono_ms() + wait;
    int64_t probe = xp_mono_ms() + 2000;
    pthread_mutex_lock(&rs.mu);
    while (!rs.reply) {
        int64_t now = xp_mono_ms();
        if (now >= deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t step = deadline - now < 250 ? deadline - now : 250;
        ts.tv_nsec += (long)(step * 1000000L);
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&rs.cv, &rs.mu, &ts);
        if (!rs.reply && xp_mono_ms() >= probe) {
            /* no answer yet: is anyone there? (a request to a missing node never fails by itself) */
            pthread_mutex_unlock(&rs.mu);
            natsMsg *pong = NULL;
            char ps[160];
            snprintf(ps, sizeof ps, "xtask.%s.ping", node);
            natsStatus ps_st = node_request(o, nc, ps, 2000, &pong);
            natsMsg_Destroy(pong);
            pthread_mutex_lock(&rs.mu);
            if (ps_st != NATS_OK && !rs.reply) {
                pthread_mutex_unlock(&rs.mu);
                fprintf(stderr, "xtask: node '%s' does not answer\n", node);
                goto out;
            }
            probe = xp_mono_ms() + 5000;
        }
    }
    natsMsg *reply = rs.reply;
    rs.reply = NULL;
    pthread_mutex_unlock(&rs.mu);
    if (!reply) {
        fprintf(stderr, "xtask: no reply from node '%s' in %lld ms\n", node, (long long)wait);
        goto out;
    }
    if (natsMsg_IsNoResponders(reply)) {
        fprintf(stderr, "xtask: node '%s' does not answer (no responders on %s)\n", node, subj);
        natsMsg_Destroy(reply);
        goto out;
    }
    const char *data = natsMsg_GetData(reply);
    size_t len = (size_t)natsMsg_GetDataLength(reply);
    json_t *res = json_loadb(data, len, 0, NULL);
    if (!json_is_object(res)) {
        fprintf(stderr, "xtask: unreadable reply from node '%s'\n", node);
        json_decref(res);
        natsMsg_Destroy(reply);
        goto out;
    }
    if (print_if_error(data, len)) {
        json_decref(res);
        natsMsg_Destroy(reply);
        goto out;
    }
    rc = exit_code_of(res);
    if (rc == XK_EXIT_TIMEOUT) fprintf(stderr, "xtask: task '%s' timed out on %s\n", req.args[0], node);
    if (o->quiet) {
        json_t *tail = json_object_get(res, "output_tail");
        fwrite(json_string_value(tail) ?: "", 1, json_string_length(tail), stdout);
    }
    json_decref(res);
    natsMsg_Destroy(reply);
out:
    free(body);
    /* drain, not unsubscribe: a message still queued in the global delivery thread when its
     * subscription goes away is never freed by nats.c 3.4 (LeakSanitizer, 1 run in 4 under load);
     * draining delivers what is queued (on_log frees it), then closes, within a deadline */
    if (logs && natsSubscription_Drain(logs) == NATS_OK) natsSubscription_WaitForDrainCompletion(logs, 1000);
    if (rsub && natsSubscription_Drain(rsub) == NATS_OK) natsSubscription_WaitForDrainCompletion(rsub, 1000);
    natsSubscription_Destroy(logs);
    natsSubscription_Destroy(rsub);
    client_close(nc);
    /* a reply delivered after the one taken (or after giving up) waits here: no thread delivers any
     * more once the library is closed */
    natsMsg_Destroy(rs.reply);
    pthread_mutex_destroy(&rs.mu);
    pthread_cond_destroy(&rs.cv);
    return rc;
}

/* Fetch the stored result of id into *out (caller decrefs); waits up to wait_ms. Results are
 * stored under the node that ran them (`xtask.results.<node>.<id>`): the last of any node. */
static int fetch_result(natsConnection *nc, const char *id, int64_t wait_ms, json_t **out)
{
    jsCtx *js = NULL;
    char subj[160];
    int64_t deadline = xp_mono_ms() + wait_ms;
    int rc = -1;
    snprintf(subj, sizeof subj, "xtask.results.*.%s", id);
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK) return -1;
    for (;;) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        if (js_GetLastMsg(&m, js, "xtask-results", subj, NULL, &jerr) == NATS_OK) {
            *out = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
            natsMsg_Destroy(m);
            rc = *out ? 0 : -1;
            break;
        }
        if (xp_mono_ms() >= deadline) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL); /* a bounded poll of the results stream, not a synchronization */
    }
    jsCtx_Destroy(js);
    return rc;
}

int xk_result(const xk_opts *o)
{
    natsConnection *nc = NULL;
    json_t *res = NULL;
    if (!xp_token_valid(o->id)) {
        fprintf(stderr, "xtask: '%s' is not a task id\n", o->id);
        return XK_EXIT_USAGE;
    }
    if (client_connect(o, &nc, 0, 0) != 0) return XK_EXIT_NO_NATS;
    int rc = XK_EXIT_ERROR;
    if (fetch_result(nc, o->id, o->wait_ms, &res) == 0) {
        char *s = json_dumps(res, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        /* the exit code tells how the task ended, as `run` does: a script need not parse the JSON */
        if (s != NULL && print_if_error(s, strlen(s)))
            rc = XK_EXIT_ERROR;
        else
            rc = exit_code_of(res);
        free(s);
    } else {
        fprintf(stderr, "xtask: no result for '%s'\n", o->id);
    }
    json_decref(res);
    client_close(nc);
    return rc;
}

int xk_submit(const xk_opts *o)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    xp_run_req req;
    char subj[160];
    int rc = XK_EXIT_ERROR;
    memset(&req, 0, sizeof req);
    for (size_t i = 0; o->args[i] && i < XP_ARGS_MAX; i++)
        req.args[req.nargs++] = o->args[i];
    snprintf(req.project, sizeof req.project, "%s", o->project ? o->project : "default");
    xp_new_id(req.id, sizeof req.id); /* the platform makes the id; it is also the Nats-Msg-Id */
    snprintf(req.requested_by, sizeof req.requested_by, "%s", xk_requester());
    snprintf(req.via, sizeof req.via, "cli");
    req.timeout_ms = o->timeout_ms;
    char *body = xp_run_req_json(&req);
    if (client_connect(o, &nc, 0, 0) != 0) {
        free(body);
        return XK_EXIT_NO_NATS;
    }
    snprintf(subj, sizeof subj, "xtask.queue.%s", o->capability ? o->capability : "task");
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = req.id; /* a resubmission within the duplicate window is dropped by the stream */
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK) st = js_Publish(&pa, js, subj, body, (int)strlen(body), &po, &jerr);
    if (st != NATS_OK) {
        fprintf(stderr, "xtask: submit to %s failed: %s (%d)\n", subj, natsStatus_GetText(st), (int)jerr);
        goto out;
    }
    printf("%s\n", req.id);
    fflush(stdout);
    rc = XK_EXIT_OK;
    if (o->wait_ms > 0) {
        json_t *res = NULL;
        if (fetch_result(nc, req.id, o->wait_ms, &res) == 0) {
            json_t *tail = json_object_get(res, "output_tail");
            fwrite(json_string_value(tail) ?: "", 1, json_string_length(tail), stdout);
            rc = exit_code_of(res);
        } else {
            fprintf(stderr, "xtask: no result for %s within the wait\n", req.id);
            rc = XK_EXIT_ERROR;
        }
        json_decref(res);
    }
out:
    jsPubAck_Destroy(pa);
    jsCtx_Destroy(js);
    free(body);
    client_close(nc);
    return rc;
}

int xk_ping(const xk_opts *o)
{
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    char subj[160];
    int64_t to = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    if (client_connect(o, &nc, to, 0) != 0) return XK_EXIT_ERROR;
    snprintf(subj, sizeof subj, "xtask.%s.ping", o->node);
    natsStatus st = node_request(o, nc, subj, to, &reply);
    int rc = XK_EXIT_ERROR;
    if (st == NATS_OK) {
        json_t *v = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
        if (json_is_true(json_object_get(v, "ok"))) {
            rc = XK_EXIT_OK;
            printf("%s ok\n", o->node);
        }
        json_decref(v);
    } else {
        fprintf(stderr, "xtask: node '%s' did not answer %s: %s\n", o->node, subj, natsStatus_GetText(st));
    }
    natsMsg_Destroy(reply);
    client_close(nc);
    return rc;
}

int xk_audit(const xk_opts *o)
{
    natsConnection *nc = NULL;
    json_t *recs = NULL;
    char err[512];
    xt_audit_query q = {.user = o->user,
                        .limit = o->limit > 0 ? (size_t)o->limit : 0,
                        .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000,
                        .since_ms = o->since_ms > 0 ? xp_now_ms() - o->since_ms : 0};
    if (client_connect(o, &nc, 0, 0) != 0) return XK_EXIT_NO_NATS;
    int rc = XK_EXIT_ERROR;
    if (xt_audit_read(nc, &q, &recs, err, sizeof err) != 0) {
        fprintf(stderr, "xtask: audit: %s\n", err);
    } else if (o->json) {
        char *s = json_dumps(recs, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
        rc = XK_EXIT_OK;
    } else {
        size_t i;
        json_t *r;
        printf("%-24s %-5s %-14s %-16s %-20s %-10s %s\n", "TIME (UTC)", "TYPE", "WHAT", "WHO", "WHERE",
               "OUTCOME", "DETAIL");
        json_array_foreach(recs, i, r)
        {
            char when[32] = "?", what[64], who[160], where[96], detail[256];
            time_t t = (time_t)(json_integer_value(json_object_get(r, "ts_ms")) / 1000);
            struct tm tm;
            if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            const char *type = json_string_value(json_object_get(r, "type")) ?: "?";
            const char *who_s = json_string_value(json_object_get(r, "requested_by"));
            if (!who_s) who_s = json_string_value(json_object_get(r, "user"));
            snprintf(who, sizeof who, "%s", who_s ? who_s : "-");
            const char *node = json_string_value(json_object_get(r, "node"));
            const char *client = json_string_value(json_object_get(r, "client"));
            snprintf(where, sizeof where, "%s", node ? node : client ? client : "-");
            if (strcmp(type, "task") == 0) {
                snprintf(what, sizeof what, "%s", json_string_value(json_object_get(r, "verb")) ?: "?");
                const char *task = json_string_value(json_object_get(r, "task"));
                const char *target = json_string_value(json_object_get(r, "target"));
                json_t *ec = json_object_get(r, "exit_code");
                char ecs[32] = "";
                if (json_is_integer(ec))
                    snprintf(ecs, sizeof ecs, " exit %lld", (long long)json_integer_value(ec));
                snprintf(detail, sizeof detail, "%s%s %lldms%s%s",
                         task     ? task
                         : target ? target
                                  : "",
                         ecs, (long long)json_integer_value(json_object_get(r, "duration_ms")),
                         json_string_value(json_object_get(r, "id")) ? " " : "",
                         json_string_value(json_object_get(r, "id")) ?: "");
            } else {
                snprintf(what, sizeof what, "%s", json_string_value(json_object_get(r, "event")) ?: "?");
                snprintf(detail, sizeof detail, "%s", json_string_value(json_object_get(r, "region")) ?: "");
            }
            printf("%-24s %-5s %-14s %-16s %-20s %-10s %s\n", when, type, what, who, where,
                   json_string_value(json_object_get(r, "outcome")) ?: "-", detail);
        }
        rc = XK_EXIT_OK;
    }
    json_decref(recs);
    client_close(nc);
    return rc;
}
