/*
 * api.c: the JSON API (/api/v1/tasks, /api/v1/nodes, /api/v1/services), /health, the GUI's static
 * page, and the supervisor status poller.
 *
 * Every NATS exchange is an async bus request bound to the HTTP request's pool: if the client goes
 * away, the dispose callback cancels the bus request, so a late reply finds nothing to touch.
 * Errors are JSON: {"error":{"code":"...","message":"..."}} with a status that fits.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "web.h"
#include "xt_audit.h"
#include "xt_log.h"
#include "xt_path.h"

#define STATUS_MAX (1024 * 1024)

struct web_api {
    web_server *srv;
    json_t *services;     /* last supervisor status document */
    uint64_t services_at; /* when it was fetched */
    h2o_timeout_t poll;
    h2o_timeout_entry_t poll_entry;
    /* one status fetch at a time */
    h2o_http1client_t *client;
    h2o_socket_t *sock;
    h2o_http1client_ctx_t client_ctx;
    h2o_timeout_t io_timeout;
    char *host;
    uint16_t port;
    char *pathq;
    h2o_iovec_t reqbuf;
    char *body;
    size_t body_len;
    int status;
    h2o_multithread_receiver_t audit_rx; /* audit reads finished by their threads */
};

/* Audit reads running in their own threads, process-wide (each holds a JetStream consumer). */
#define AUDIT_INFLIGHT_MAX 4
static atomic_int audit_inflight;

/* --- responses ------------------------------------------------------------------------------ */

void api_send_json(h2o_req_t *req, int status, const char *reason, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t len = s ? strlen(s) : 0;
    h2o_iovec_t b = h2o_strdup(&req->pool, s ? s : "", len);
    free(s);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = b.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, b.base, b.len);
}

void api_send_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *msg)
{
    api_send_json(req, status, reason, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* An SSE answer for Datastar's @post: merge these signals, then end the stream. */
static void send_ds_signals(h2o_req_t *req, json_t *signals)
{
    char *s = json_dumps(signals, JSON_COMPACT);
    json_decref(signals);
    char *buf = h2o_mem_alloc_pool(&req->pool, strlen(s) + 64);
    int n = snprintf(buf, strlen(s) + 64, "event: datastar-merge-signals\ndata: signals %s\n\n", s);
    free(s);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)n;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, buf, (size_t)n);
}

static int is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* NATS subject tokens we build from user input: [A-Za-z0-9_-], 1..64 (no '.', '*', '>'). */
static int valid_token(const char *s, size_t maxlen)
{
    size_t n = 0;
    if (!s || !*s) return 0;
    for (; *s; s++, n++)
        if (n >= maxlen || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                             (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* --- who is asking ------------------------------------------------------------------------ */

/* A request header's value copied into out (bounded, NUL-terminated); "" when absent. The front
 * strips client-supplied identity headers and sets these from the auth service's answer. */
static void req_header_str(h2o_req_t *req, const char *lcname, char *out, size_t outlen)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lcname, strlen(lcname), -1);
    out[0] = 0;
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len < outlen) {
            memcpy(out, v.base, v.len);
            out[v.len] = 0;
        }
        for (char *p = out; *p; p++) /* a value with control characters names nobody */
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                out[0] = 0;
                break;
            }
    }
}

typedef struct {
    char user[129];
    char groups[1024];
} api_who;

static void who_of(h2o_req_t *req, api_who *w)
{
    req_header_str(req, "remote-user", w->user, sizeof(w->user));
    req_header_str(req, "remote-groups", w->groups, sizeof(w->groups));
}

/* 1 if the signed-in user may send `verb` (task: for task.run); else 0 and a 403 (or the GUI's
 * error signal) already sent. Nothing reaches NATS for a refused request. */
static int authorize(web_server *srv, h2o_req_t *req, const api_who *w, const char *verb, const char *task,
                     int ds)
{
    int rule = -1;
    char msg[512];
    if (web_rules_allow(srv->conf, w->user, w->groups, verb, task, &rule)) return 1;
    if (!w->user[0])
        snprintf(msg, sizeof(msg), "no signed-in user: the API needs forward-auth's Remote-User");
    else if (task)
        snprintf(msg, sizeof(msg), "user '%s' may not run task '%s' (%s)", w->user, task,
                 rule >= 0 ? "denied by an api rule" : "no api rule allows it");
    else
        snprintf(msg, sizeof(msg), "user '%s' may not use %s (%s)", w->user, verb,
                 rule >= 0 ? "denied by an api rule" : "no api rule allows it");
    xt_info("api: %s [groups: %s; rule %d]", msg, w->groups[0] ? w->groups : "-", rule >= 0 ? rule + 1 : 0);
    if (ds)
        send_ds_signals(req, json_pack("{s:s}", "taskError", msg));
    else
        api_send_json(req, 403, "Forbidden",
                      json_pack("{s:{s:s,s:s,s:s,s:s?}}", "error", "code", "forbidden", "message", msg,
                                "verb", verb, "task", task));
    return 0;
}

/* --- /health ------------------------------------------------------------------------------- */

int api_health_on_req(web_server *srv, h2o_req_t *req)
{
    int ok = !srv->shutting_down && bus_connected(srv);
    json_t *b = json_pack("{s:s,s:s,s:b,s:I}", "status", ok ? "ok" : "unavailable", "version", WEB_VERSION,
                          "nats", bus_connected(srv), "event_streams", (json_int_t)events_nclients(srv));
    api_send_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
    return 0;
}

/* --- tasks --------------------------------------------------------------------------------- */

typedef struct {
    web_server *srv;
    h2o_req_t *req; /* NULL once answered (fire-and-forget runs keep going) */
    bus_request *breq;
    char id[72];
    char project[WEB_PROJECT_MAX + 1];
    int ds;   /* answer as Datastar signals */
    int wait; /* answer with the task's reply */
    int kind; /* 0 run, 1 queue, 2 result lookup */
    char node[72];
    api_who who; /* result lookups: the result's project must be one this user may see */
    /* a GUI run streams its answer: the task id at once, then how the run ended (ds_stream_*) */
    h2o_generator_t gen;
    h2o_iovec_t last; /* the final event, waiting for the first write to finish */
    int sending, streaming;
} api_call;

static void call_dispose(void *p)
{
    api_call *c = p;
    if (c->breq) {
        bus_request_cancel(c->breq);
        c->breq = NULL;
    }
}

static int error_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"bad_request", 400}, {"unknown_task", 404},     {"not_found", 404},
               {"not_allowed", 403}, {"path_not_allowed", 403}, {"payload_too_large", 413},
               {"busy", 503},        {"timeout", 504},          {NULL, 502}};
    size_t i;
    for (i = 0; map[i].code; i++)
        if (code && strcmp(code, map[i].code) == 0) break;
    return map[i].status;
}

static const char *status_reason(int st)
{
    switch (st) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Bad Gateway";
    }
}

/* A reply for a run that the HTTP client no longer waits for: only the GUI hears about it. */
typedef struct {
    web_server *srv;
    char project[WEB_PROJECT_MAX + 1];
} bg_run;

static void bg_run_cb(void *data, const char *payload, size_t len, int timed_out)
{
    bg_run *b = data;
    if (!timed_out && len) {
        json_t *j = json_loadb(payload, len, 0, NULL);
        if (json_is_object(j) && !json_object_get(j, "error")) events_task_result(b->srv, b->project, j);
        json_decref(j);
    }
    free(b);
}

/* --- the GUI's run: one streamed answer ------------------------------------------------------- */

static h2o_iovec_t ds_signals_event(h2o_req_t *req, json_t *signals)
{
    char *s = json_dumps(signals, JSON_COMPACT);
    json_decref(signals);
    size_t cap = (s ? strlen(s) : 2) + 64;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    int n = snprintf(buf, cap, "event: datastar-merge-signals\ndata: signals %s\n\n", s ? s : "{}");
    free(s);
    return h2o_iovec_init(buf, (size_t)n);
}

static void ds_stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    api_call *c = H2O_STRUCT_FROM_MEMBER(api_call, gen, gen);
    c->sending = 0;
    if (c->last.base) {
        h2o_iovec_t v = c->last;
        c->last = h2o_iovec_init(NULL, 0);
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
    }
}

static void ds_stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* the page went away: call_dispose cancels the request to the node */
}

/* The first event of a GUI run's answer ("started t-..."); the stream stays open for its end. */
static void ds_stream_start(api_call *c, json_t *signals)
{
    h2o_req_t *req = c->req;
    h2o_iovec_t v = ds_signals_event(req, signals);
    c->gen.proceed = ds_stream_proceed;
    c->gen.stop = ds_stream_stop;
    c->streaming = 1;
    c->sending = 1;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &c->gen);
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void ds_stream_finish(api_call *c, json_t *signals)
{
    h2o_iovec_t v = ds_signals_event(c->req, signals);
    if (c->sending)
        c->last = v;
    else
        h2o_send(c->req, &v, 1, H2O_SEND_STATE_FINAL);
}

/* The end of a GUI run, in words the page shows: the node's error, or how the task ended. */
static void ds_run_reply_cb(void *data, const char *payload, size_t len, int timed_out)
{
    api_call *c = data;
    char msg[768];
    c->breq = NULL;
    json_t *j = (!timed_out && len) ? json_loadb(payload, len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    if (timed_out) {
        snprintf(msg, sizeof(msg), "%s: node '%s' did not answer in time", c->id, c->node);
        ds_stream_finish(c, json_pack("{s:s,s:s}", "taskError", msg, "taskNote", ""));
    } else if (len == 0) {
        snprintf(msg, sizeof(msg), "node '%s' does not answer: it is unknown or stopped (see Nodes)",
                 c->node);
        ds_stream_finish(c, json_pack("{s:s,s:s,s:s}", "taskError", msg, "taskNote", "", "taskId", ""));
    } else if (!json_is_object(j)) {
        snprintf(msg, sizeof(msg), "%s: node '%s' sent a reply that is not JSON", c->id, c->node);
        ds_stream_finish(c, json_pack("{s:s,s:s}", "taskError", msg, "taskNote", ""));
    } else if (err) {
        const char *m = json_string_value(json_object_get(err, "message"));
        const char *code = json_string_value(json_object_get(err, "code"));
        snprintf(msg, sizeof(msg), "node '%s' refused: %s%s%s%s", c->node, m ? m : "error", code ? " (" : "",
                 code ? code : "", code ? ")" : "");
        ds_stream_finish(c, json_pack("{s:s,s:s,s:s}", "taskError", msg, "taskNote", "", "taskId", ""));
    } else {
        char how[384], dur[64];
        events_task_result(c->srv, c->project, j);
        events_exit_text(j, how, sizeof(how));
        events_duration_text(json_integer_value(json_object_get(j, "duration_ms")), dur, sizeof(dur));
        snprintf(msg, sizeof(msg), "finished: %s in %s", how, dur);
        ds_stream_finish(c, json_pack("{s:s,s:s}", "taskNote", msg, "taskError", ""));
    }
    json_decref(j);
}

static void run_reply_cb(void *data, const char *payload, size_t len, int timed_out)
{
    api_call *c = data;
    h2o_req_t *req = c->req;
    c->breq = NULL;
    if (timed_out) {
        api_send_error(req, 504, "Gateway Timeout", "timeout", "no answer from the node in time");
        return;
    }
    if (len == 0) {
        api_send_error(req, 404, "Not Found", "unknown_node", "no node answers on that subject");
        return;
    }
    json_t *j = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        api_send_error(req, 502, "Bad Gateway", "bad_reply", "the node's reply is not JSON");
        return;
    }
    json_t *err = json_object_get(j, "error");
    if (err) {
        int st = error_status(json_string_value(json_object_get(err, "code")));
        api_send_json(req, st, status_reason(st), j);
        return;
    }
    events_task_result(c->srv, c->project, j);
    api_send_json(req, 200, "OK", j);
}

static void queue_reply_cb(void *data, const char *payload, size_t len, int timed_out)
{
    api_call *c = data;
    h2o_req_t *req = c->req;
    c->breq = NULL;
    json_t *ack = (!timed_out && len) ? json_loadb(payload, len, 0, NULL) : NULL;
    if (timed_out || !len || !json_is_object(ack) || json_object_get(ack, "error")) {
        json_decref(ack);
        if (c->ds)
            send_ds_signals(req, json_pack("{s:s}", "taskError", "the queue is not available"));
        else
            api_send_error(req, 503, "Service Unavailable", "queue_unavailable",
                           "the task queue stream is not available");
        return;
    }
    json_int_t seq = json_integer_value(json_object_get(ack, "seq"));
    json_decref(ack);
    if (c->ds)
        send_ds_signals(req, json_pack("{s:s,s:s}", "taskId", c->id, "taskError", ""));
    else
        api_send_json(req, 202, "Accepted", json_pack("{s:s,s:b,s:I}", "id", c->id, "queued", 1, "seq", seq));
}

/* An SSE answer for Datastar's @get: merge this fragment (one line of HTML), then end. */
static void send_ds_fragment(h2o_req_t *req, const char *html)
{
    size_t cap = strlen(html) + 64;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    int n = snprintf(buf, cap, "event: datastar-merge-fragments\ndata: fragments %s\n\n", html);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)n;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, buf, (size_t)n);
}

/* A growing HTML buffer for the result panel (bounded by the stored result's own size). */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} html_buf;

static void hb_put(html_buf *h, const char *s, size_t n)
{
    if (h->oom) return;
    if (h->len + n + 1 > h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 4096;
        while (nc < h->len + n + 1)
            nc *= 2;
        char *np = realloc(h->p, nc);
        if (!np) {
            h->oom = 1;
            return;
        }
        h->p = np;
        h->cap = nc;
    }
    memcpy(h->p + h->len, s, n);
    h->len += n;
    h->p[h->len] = 0;
}

static void hb_str(html_buf *h, const char *s)
{
    hb_put(h, s, strlen(s));
}

/* Escaped text; newlines become <br> (a fragment travels as one SSE data line). */
static void hb_text(html_buf *h, const char *s)
{
    char *e = web_html_escape(s ? s : "", s ? strlen(s) : 0);
    for (const char *q = e ? e : ""; *q; q++) {
        size_t run = strcspn(q, "\r\n");
        hb_put(h, q, run);
        q += run;
        if (!*q) break;
        if (*q == '\n') hb_str(h, "<br>");
    }
    free(e);
}

static void hb_row(html_buf *h, const char *dt, const char *dd, const char *cls)
{
    hb_str(h, "<dt>");
    hb_str(h, dt);
    hb_str(h, cls ? "</dt><dd class=\"" : "</dt><dd>");
    if (cls) {
        hb_str(h, cls);
        hb_str(h, "\">");
    }
    hb_text(h, dd ? dd : "");
    hb_str(h, "</dd>");
}

/* The result panel (#result-view): what ran where, how it ended, how long, its stored output. */
static void send_ds_result(h2o_req_t *req, const char *id, json_t *res, const char *problem)
{
    html_buf h = {0};
    hb_str(&h, "<section id=\"result-view\" class=\"card wide\" aria-live=\"polite\"><h2>Result <code>");
    hb_text(&h, id);
    hb_str(&h, "</code></h2>");
    if (!res) {
        hb_str(&h, "<p class=\"error\">");
        hb_text(&h, problem);
        hb_str(&h, "</p>");
    } else {
        char how[384], dur[64];
        events_exit_text(res, how, sizeof(how));
        events_duration_text(json_integer_value(json_object_get(res, "duration_ms")), dur, sizeof(dur));
        const char *out = json_string_value(json_object_get(res, "output"));
        if (!out) out = json_string_value(json_object_get(res, "output_tail"));
        hb_str(&h, "<dl class=\"result\">");
        hb_row(&h, "task", json_string_value(json_object_get(res, "task")), NULL);
        hb_row(&h, "node", json_string_value(json_object_get(res, "node")), NULL);
        hb_row(&h, "project", json_string_value(json_object_get(res, "project")), NULL);
        hb_row(&h, "requested by", json_string_value(json_object_get(res, "requested_by")), NULL);
        hb_row(&h, "ended", how, events_result_ok(res) ? "ok" : "fail");
        hb_row(&h, "duration", dur, NULL);
        hb_str(&h, "</dl><pre class=\"out\" tabindex=\"0\" role=\"region\" aria-label=\"stored output\">");
        hb_text(&h, out);
        hb_str(&h, "</pre>");
        if (json_is_true(json_object_get(res, "truncated")))
            hb_str(&h, "<p class=\"muted\">(the output was cut: only its first part is stored)</p>");
    }
    hb_str(&h, "</section>");
    if (h.oom)
        api_send_error(req, 503, "Service Unavailable", "internal", "out of memory");
    else
        send_ds_fragment(req, h.p);
    free(h.p);
}

/* A stored result is shown only to users who may see its project (api.projects). */
static int result_visible(api_call *c, json_t *res)
{
    const char *p = json_string_value(json_object_get(res, "project"));
    return web_project_allowed(c->srv->conf, c->who.user, c->who.groups,
                               p && *p ? p : c->srv->conf->default_project);
}

static void result_reply_cb(void *data, const char *payload, size_t len, int timed_out)
{
    api_call *c = data;
    h2o_req_t *req = c->req;
    c->breq = NULL;
    if (c->ds) {
        json_t *j = (!timed_out && len) ? json_loadb(payload, len, 0, NULL) : NULL;
        json_t *msg = json_object_get(j, "message");
        const char *b64 = json_string_value(json_object_get(msg, "data"));
        json_t *res = NULL;
        if (b64) {
            size_t bl = strlen(b64);
            unsigned char *raw = malloc(bl / 4 * 3 + 4);
            int n = raw ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl) : -1;
            for (size_t i = bl; n >= 0 && i > 0 && b64[i - 1] == '='; i--)
                n--;
            res = n >= 0 ? json_loadb((const char *)raw, (size_t)n, 0, NULL) : NULL;
            free(raw);
        }
        if (json_is_object(res) && !result_visible(c, res)) {
            json_decref(res);
            res = NULL;
            b64 = NULL; /* as if there were none: another project's results are not ours to confirm */
        }
        send_ds_result(req, c->id, json_is_object(res) ? res : NULL,
                       timed_out || !len ? "the results stream is not available; try again"
                       : b64             ? "the stored result is not JSON"
                                         : "no stored result for this task (yet)");
        json_decref(res);
        json_decref(j);
        return;
    }
    if (timed_out || !len) {
        api_send_error(req, 503, "Service Unavailable", "results_unavailable",
                       "the results stream is not available");
        return;
    }
    json_t *j = json_loadb(payload, len, 0, NULL);
    json_t *msg = json_object_get(j, "message");
    const char *b64 = json_string_value(json_object_get(msg, "data"));
    if (!msg || !b64) {
        json_t *err = json_object_get(j, "error");
        json_int_t code = json_integer_value(json_object_get(err, "code"));
        json_decref(j);
        if (code == 404)
            api_send_error(req, 404, "Not Found", "not_found", "no result for that task id (yet)");
        else
            api_send_error(req, 502, "Bad Gateway", "bad_reply", "unexpected answer from JetStream");
        return;
    }
    size_t bl = strlen(b64);
    unsigned char *raw = malloc(bl / 4 * 3 + 4);
    int n = raw ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl) : -1;
    if (n >= 0) {
        for (size_t i = bl; i > 0 && b64[i - 1] == '='; i--)
            n--;
    }
    json_t *res = n >= 0 ? json_loadb((const char *)raw, (size_t)n, 0, NULL) : NULL;
    free(raw);
    json_decref(j);
    if (!json_is_object(res)) {
        json_decref(res);
        api_send_error(req, 502, "Bad Gateway", "bad_reply", "the stored result is not JSON");
        return;
    }
    if (!result_visible(c, res)) {
        json_decref(res);
        api_send_error(req, 404, "Not Found", "not_found", "no result for that task id (yet)");
        return;
    }
    api_send_json(req, 200, "OK", res);
}

/* The platform makes task ids ("t-" and 16 hex digits, like the node and the CLI); never the client. */
static int make_task_id(char *out, size_t outlen)
{
    unsigned char r[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && read(fd, r, sizeof(r)) == (ssize_t)sizeof(r);
    if (fd >= 0) close(fd);
    if (!ok) return -1; /* never a guessable id */
    snprintf(out, outlen, "t-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6],
             r[7]);
    return 0;
}

/* args from the body: an array of strings, or (GUI form) a string split on blanks; `task` first. */
static json_t *collect_args(json_t *body)
{
    json_t *args = json_array();
    const char *task = json_string_value(json_object_get(body, "task"));
    json_t *a = json_object_get(body, "args");
    if (task && *task) json_array_append_new(args, json_string(task));
    if (json_is_array(a)) {
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            if (!json_is_string(v) || json_string_length(v) > 4096) {
                json_decref(args);
                return NULL;
            }
            json_array_append(args, v);
        }
    } else if (json_is_string(a)) {
        char *s = strdup(json_string_value(a)), *save = NULL;
        for (char *t = strtok_r(s, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
            json_array_append_new(args, json_string(t));
        free(s);
    } else if (a && !json_is_null(a)) {
        json_decref(args);
        return NULL;
    }
    if (json_array_size(args) == 0 || json_array_size(args) > 64) {
        json_decref(args);
        return NULL;
    }
    return args;
}

static void tasks_post(web_server *srv, h2o_req_t *req)
{
    int ds = h2o_find_header_by_str(&req->headers, H2O_STRLIT("datastar-request"), -1) >= 0;
    json_error_t je;
    json_t *body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, 0, &je);
#define FAIL(st, code, msg)                                                                                  \
    do {                                                                                                     \
        if (ds)                                                                                              \
            send_ds_signals(req, json_pack("{s:s}", "taskError", msg));                                      \
        else                                                                                                 \
            api_send_error(req, st, status_reason(st), code, msg);                                           \
        json_decref(body);                                                                                   \
        return;                                                                                              \
    } while (0)
    if (!json_is_object(body)) FAIL(400, "bad_request", "the body must be a JSON object");
    const char *mode = json_string_value(json_object_get(body, "mode"));
    const char *node = json_string_value(json_object_get(body, "node"));
    const char *project = json_string_value(json_object_get(body, "project"));
    const char *cap = json_string_value(json_object_get(body, "capability"));
    json_t *to = json_object_get(body, "timeout_ms");
    json_t *w = json_object_get(body, "wait");
    if (!mode || !*mode) mode = "run";
    if (!project || !*project) project = srv->conf->default_project;
    if (!cap || !*cap) cap = "task";
    if (strcmp(mode, "run") != 0 && strcmp(mode, "queue") != 0)
        FAIL(400, "bad_request", "mode: run or queue");
    if (!valid_token(project, WEB_PROJECT_MAX)) FAIL(400, "bad_request", "project: 1-64 of [A-Za-z0-9_-]");
    if (!valid_token(cap, 64)) FAIL(400, "bad_request", "capability: 1-64 of [A-Za-z0-9_-]");
    json_int_t timeout_ms = json_is_integer(to) ? json_integer_value(to) : 60000;
    if (timeout_ms < 1 || timeout_ms > 3600000) FAIL(400, "bad_request", "timeout_ms: 1..3600000");
    if (json_object_get(body, "id"))
        FAIL(400, "bad_request",
             "id: task ids are made by the platform; omit it (the answer carries the id)");
    json_t *args = collect_args(body);
    if (!args) FAIL(400, "bad_request", "args: a task name and up to 63 string arguments");
    api_who who;
    who_of(req, &who);
    if (!web_project_allowed(srv->conf, who.user, who.groups, project)) {
        char pm[256];
        json_decref(args);
        snprintf(pm, sizeof(pm), "user '%s' may not use project '%s' (api.projects)", who.user, project);
        FAIL(403, "forbidden", pm);
    }
    if (!authorize(srv, req, &who, "task.run", json_string_value(json_array_get(args, 0)), ds)) {
        json_decref(args);
        json_decref(body);
        return;
    }
    api_call *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->req = req;
    c->ds = ds;
    c->wait = ds ? 0 : (w ? json_is_true(w) : 1);
    snprintf(c->project, sizeof(c->project), "%s", project);
    if (make_task_id(c->id, sizeof(c->id)) != 0) {
        json_decref(args);
        FAIL(503, "internal", "no randomness for a task id");
    }
    json_t *msg = json_pack("{s:o,s:s,s:s,s:I,s:s,s:s}", "args", args, "project", project, "id", c->id,
                            "timeout_ms", timeout_ms, "requested_by", who.user, "via", "web");
    char *payload = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    char subject[256];
    if (strcmp(mode, "queue") == 0) {
        c->kind = 1;
        snprintf(subject, sizeof(subject), "xtask.queue.%s", cap);
        /* the id is the stream's dedup key: a resubmission within the window is dropped */
        c->breq =
            bus_request_start_id(srv, subject, c->id, payload, strlen(payload), 5000, queue_reply_cb, c);
    } else {
        if (!valid_token(node, 64)) {
            free(payload);
            FAIL(400, "bad_request", "node: 1-64 of [A-Za-z0-9_-] (see /api/v1/nodes)");
        }
        snprintf(subject, sizeof(subject), "xtask.%s.task.run", node);
        snprintf(c->node, sizeof(c->node), "%s", node);
        if (ds) {
            /* the GUI hears how its run ends on this request: an error reply (not allowed, no
             * arguments, unknown or stopped node) is shown, never dropped */
            c->breq = bus_request_start(srv, subject, payload, strlen(payload), timeout_ms + 5000, 0,
                                        ds_run_reply_cb, c);
            free(payload);
            if (!c->breq) FAIL(503, "nats_unavailable", "the message bus (NATS) is not connected: try again");
            char note[160];
            snprintf(note, sizeof(note), "started on %s", node);
            ds_stream_start(c,
                            json_pack("{s:s,s:s,s:s}", "taskId", c->id, "taskError", "", "taskNote", note));
            json_decref(body);
            return;
        }
        if (c->wait) {
            c->breq = bus_request_start(srv, subject, payload, strlen(payload), timeout_ms + 5000, 0,
                                        run_reply_cb, c);
        } else {
            bg_run *bg = calloc(1, sizeof(*bg));
            bg->srv = srv;
            snprintf(bg->project, sizeof(bg->project), "%s", project);
            if (bus_request_start(srv, subject, payload, strlen(payload), timeout_ms + 5000, 0, bg_run_cb,
                                  bg) == NULL) {
                free(bg);
                free(payload);
                FAIL(503, "nats_unavailable", "NATS is not connected");
            }
            free(payload);
            if (ds)
                send_ds_signals(req, json_pack("{s:s,s:s}", "taskId", c->id, "taskError", ""));
            else
                api_send_json(req, 202, "Accepted",
                              json_pack("{s:s,s:s,s:s}", "id", c->id, "node", node, "status", "running"));
            json_decref(body);
            return;
        }
    }
    free(payload);
    if (!c->breq) FAIL(503, "nats_unavailable", "NATS is not connected");
    json_decref(body);
#undef FAIL
}

static void tasks_get(web_server *srv, h2o_req_t *req, const char *id)
{
    if (!valid_token(id, 64)) {
        api_send_error(req, 400, "Bad Request", "bad_request", "task id: 1-64 of [A-Za-z0-9_-]");
        return;
    }
    api_call *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->req = req;
    c->kind = 2;
    c->ds = h2o_find_header_by_str(&req->headers, H2O_STRLIT("datastar-request"), -1) >= 0;
    snprintf(c->id, sizeof(c->id), "%s", id);
    who_of(req, &c->who);
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"last_by_subj\":\"xtask.results.*.%s\"}", id);
    c->breq = bus_request_start(srv, "$JS.API.STREAM.MSG.GET.xtask-results", body, (size_t)n, 5000, 0,
                                result_reply_cb, c);
    if (!c->breq)
        api_send_error(req, 503, "Service Unavailable", "nats_unavailable", "NATS is not connected");
}

/* --- other verbs: POST /api/v1/nodes/{node}/{verb} ------------------------------------------ */

static void verb_reply_cb(void *data, const char *payload, size_t len, int timed_out)
{
    api_call *c = data;
    h2o_req_t *req = c->req;
    c->breq = NULL;
    if (timed_out) {
        api_send_error(req, 504, "Gateway Timeout", "timeout", "no answer from the node in time");
        return;
    }
    if (len == 0) {
        api_send_error(req, 404, "Not Found", "unknown_node", "no node answers on that subject");
        return;
    }
    json_t *j = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        api_send_error(req, 502, "Bad Gateway", "bad_reply", "the node's reply is not JSON");
        return;
    }
    json_t *err = json_object_get(j, "error");
    int st = err ? error_status(json_string_value(json_object_get(err, "code"))) : 200;
    api_send_json(req, st, status_reason(st), j);
}

/* which.check, got.download, silent.exec, kill-port on one node, each allowed by api.rules. The
 * body is the verb's request (docs/PROTOCOL.md); kill-port takes {"port": N}. The web adds who
 * asked (requested_by, via), overwriting whatever the client put there. */
static void verb_post(web_server *srv, h2o_req_t *req, const char *rest)
{
    char node[72], verb[32], subject[256];
    const char *slash = strchr(rest, '/');
    size_t nl = slash ? (size_t)(slash - rest) : 0;
    if (!slash || nl == 0 || nl >= sizeof(node) || strlen(slash + 1) >= sizeof(verb)) {
        api_send_error(req, 404, "Not Found", "not_found", "POST /api/v1/nodes/{node}/{verb}");
        return;
    }
    memcpy(node, rest, nl);
    node[nl] = 0;
    snprintf(verb, sizeof(verb), "%s", slash + 1);
    if (!valid_token(node, 64)) {
        api_send_error(req, 400, "Bad Request", "bad_request",
                       "node: 1-64 of [A-Za-z0-9_-] (see /api/v1/nodes)");
        return;
    }
    if (strcmp(verb, "which.check") != 0 && strcmp(verb, "got.download") != 0 &&
        strcmp(verb, "silent.exec") != 0 && strcmp(verb, "kill-port") != 0) {
        api_send_error(
            req, 404, "Not Found", "not_found",
            "verb: one of which.check, got.download, silent.exec, kill-port (tasks: POST /api/v1/tasks)");
        return;
    }
    json_t *body =
        json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        api_send_error(req, 400, "Bad Request", "bad_request", "the body must be a JSON object");
        return;
    }
    api_who who;
    who_of(req, &who);
    if (!authorize(srv, req, &who, verb, NULL, 0)) {
        json_decref(body);
        return;
    }
    if (strcmp(verb, "kill-port") == 0) {
        json_t *p = json_object_get(body, "port");
        json_int_t port = json_is_integer(p) ? json_integer_value(p) : 0;
        if (port < 1 || port > 65535) {
            json_decref(body);
            api_send_error(req, 400, "Bad Request", "bad_request", "port: an integer 1..65535");
            return;
        }
        json_object_del(body, "port");
        snprintf(subject, sizeof(subject), "xtask.%s.kill-port.%d", node, (int)port);
    } else {
        snprintf(subject, sizeof(subject), "xtask.%s.%s", node, verb);
    }
    json_object_set_new(body, "requested_by", json_string(who.user));
    json_object_set_new(body, "via", json_string("web"));
    char *payload = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    api_call *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->req = req;
    int64_t wait = strcmp(verb, "got.download") == 0 ? 300000 : srv->conf->nats_request_timeout_ms;
    c->breq =
        payload ? bus_request_start(srv, subject, payload, strlen(payload), wait, 0, verb_reply_cb, c) : NULL;
    free(payload);
    if (!c->breq)
        api_send_error(req, 503, "Service Unavailable", "nats_unavailable", "NATS is not connected");
}

/* --- the audit trail: GET /api/v1/audit?since=1h&user=U&n=N (api.rules verb audit.read) ---- */

typedef struct audit_job {
    h2o_multithread_message_t super;
    struct web_api *api;
    h2o_req_t *req;            /* NULL once the client left (loop thread only) */
    struct audit_job **anchor; /* in the request's pool; cleared when the job is done */
    natsConnection *nc;
    xt_audit_query q;
    char user[129];
    json_t *result;
    char err[512];
    int rc;
} audit_job;

static void audit_anchor_dispose(void *p)
{
    audit_job **anchor = p;
    if (*anchor) (*anchor)->req = NULL;
}

static void *audit_thread(void *arg)
{
    audit_job *j = arg;
    j->rc = xt_audit_read(j->nc, &j->q, &j->result, j->err, sizeof(j->err));
    h2o_multithread_send_message(&j->api->audit_rx, &j->super);
    return NULL;
}

static void audit_on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        audit_job *j = H2O_STRUCT_FROM_MEMBER(audit_job, super.link, messages->next);
        h2o_linklist_unlink(&j->super.link);
        if (j->req) {
            if (j->rc == 0)
                api_send_json(j->req, 200, "OK",
                              json_pack("{s:O,s:I}", "records", j->result, "count",
                                        (json_int_t)json_array_size(j->result)));
            else
                api_send_error(j->req, 503, "Service Unavailable", "audit_unavailable", j->err);
        }
        if (j->anchor) *j->anchor = NULL;
        json_decref(j->result);
        free(j);
        atomic_fetch_sub(&audit_inflight, 1);
    }
}

static void audit_get(web_server *srv, h2o_req_t *req)
{
    api_who who;
    char v[160];
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t ql = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    long n;
    who_of(req, &who);
    if (!authorize(srv, req, &who, "audit.read", NULL, 0)) return;
    audit_job *j = calloc(1, sizeof(*j));
    if (!j) {
        api_send_error(req, 503, "Service Unavailable", "internal", "out of memory");
        return;
    }
    j->api = srv->api;
    j->q.timeout_ms = 5000;
    if ((n = xt_query_get(q, ql, "since", v, sizeof(v))) != -1) {
        int64_t ms;
        if (n < 0 || xt_duration_parse(v, &ms) != 0 || ms <= 0) {
            free(j);
            api_send_error(req, 400, "Bad Request", "bad_request", "since: a duration such as 30m, 24h, 7d");
            return;
        }
        j->q.since_ms = (int64_t)time(NULL) * 1000 - ms;
    }
    if ((n = xt_query_get(q, ql, "user", j->user, sizeof(j->user))) != -1) {
        if (n <= 0) {
            free(j);
            api_send_error(req, 400, "Bad Request", "bad_request", "user: a user name (at most 128 bytes)");
            return;
        }
        j->q.user = j->user;
    }
    if ((n = xt_query_get(q, ql, "n", v, sizeof(v))) != -1) {
        char *end = NULL;
        long lim = n > 0 ? strtol(v, &end, 10) : 0;
        if (n <= 0 || *end || lim < 1 || lim > XT_AUDIT_LIMIT_MAX) {
            free(j);
            api_send_error(req, 400, "Bad Request", "bad_request", "n: a number of records, 1..10000");
            return;
        }
        j->q.limit = (size_t)lim;
    }
    natsConnection *nc = bus_nats_conn(srv);
    if (!nc || !bus_connected(srv)) {
        free(j);
        api_send_error(req, 503, "Service Unavailable", "nats_unavailable", "NATS is not connected");
        return;
    }
    if (atomic_fetch_add(&audit_inflight, 1) >= AUDIT_INFLIGHT_MAX) {
        atomic_fetch_sub(&audit_inflight, 1);
        free(j);
        api_send_error(req, 503, "Service Unavailable", "busy", "too many audit reads at once; retry");
        return;
    }
    j->req = req;
    j->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*j->anchor), audit_anchor_dispose);
    *j->anchor = j;
    j->nc = nc; /* shared; closed only after api_wait_idle (main.c) */
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, audit_thread, j) != 0) {
        *j->anchor = NULL;
        atomic_fetch_sub(&audit_inflight, 1);
        free(j);
        api_send_error(req, 503, "Service Unavailable", "internal", "cannot start the audit read");
    }
    pthread_attr_destroy(&at);
}

int api_on_req(web_server *srv, h2o_req_t *req)
{
    /* req->path_normalized is the canonical path (front.c); the route prefix is /api/ or similar */
    char path[512];
    size_t plen = req->path_normalized.len < sizeof(path) - 1 ? req->path_normalized.len : sizeof(path) - 1;
    memcpy(path, req->path_normalized.base, plen);
    path[plen] = 0;
    const char *p = strstr(path, "/v1/");
    if (!p) {
        api_send_error(req, 404, "Not Found", "not_found", "no such API endpoint");
        return 0;
    }
    p += 4;
    if (strcmp(p, "tasks") == 0 || strcmp(p, "tasks/") == 0) {
        if (is_method(req, "POST"))
            tasks_post(srv, req);
        else
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed",
                           "POST a task; GET /api/v1/tasks/{id}");
    } else if (strncmp(p, "tasks/", 6) == 0) {
        if (is_method(req, "GET"))
            tasks_get(srv, req, p + 6);
        else
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "GET");
    } else if (strncmp(p, "nodes/", 6) == 0) {
        if (is_method(req, "POST"))
            verb_post(srv, req, p + 6);
        else
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "POST");
    } else if (strcmp(p, "audit") == 0) {
        if (is_method(req, "GET"))
            audit_get(srv, req);
        else
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "GET");
    } else if (strcmp(p, "nodes") == 0) {
        if (!is_method(req, "GET")) {
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "GET");
            return 0;
        }
        api_send_json(req, 200, "OK", json_pack("{s:o}", "nodes", bus_nodes_json(srv)));
    } else if (strcmp(p, "services") == 0) {
        if (!is_method(req, "GET")) {
            api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "GET");
            return 0;
        }
        json_t *st = srv->api->services;
        if (!st)
            api_send_error(req, 503, "Service Unavailable", "supervisor_unavailable",
                           srv->conf->sup_status_url || srv->conf->sup_status_socket
                               ? "no status from the supervisor yet"
                               : "no supervisor status configured");
        else
            api_send_json(req, 200, "OK", json_incref(st));
    } else {
        api_send_error(req, 404, "Not Found", "not_found", "no such API endpoint");
    }
    return 0;
}

/* --- GUI ----------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *type;
} gui_files[] = {{"index.html", "text/html; charset=utf-8"},
                 {"app.css", "text/css; charset=utf-8"},
                 {"app.js", "text/javascript; charset=utf-8"},
                 {"datastar.js", "text/javascript; charset=utf-8"},
                 {NULL, NULL}};

/* The page and its two assets, read from gui.root at each request (small; the OS caches them). */
int api_gui_on_req(web_server *srv, h2o_req_t *req, const web_route *rt)
{
    size_t pl = strlen(rt->path);
    const char *rest = req->path_normalized.base + pl;
    size_t rlen = req->path_normalized.len - pl;
    char name[64];
    if (!is_method(req, "GET") && !is_method(req, "HEAD")) {
        api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "GET");
        return 0;
    }
    if (rlen == 0 && rt->path[pl - 1] != '/') { /* "/web" -> "/web/" so relative URLs resolve */
        char loc[256];
        snprintf(loc, sizeof(loc), "%s/", rt->path);
        h2o_send_redirect(req, 301, "Moved Permanently", loc, strlen(loc));
        return 0;
    }
    if (rlen && rest[0] == '/') {
        rest++;
        rlen--;
    }
    if (rlen == 0) {
        snprintf(name, sizeof(name), "index.html");
    } else if (rlen < sizeof(name)) {
        memcpy(name, rest, rlen);
        name[rlen] = 0;
    } else {
        name[0] = 0;
    }
    size_t i;
    for (i = 0; gui_files[i].name; i++)
        if (strcmp(name, gui_files[i].name) == 0) break;
    if (!gui_files[i].name) {
        api_send_error(req, 404, "Not Found", "not_found", "no such file");
        return 0;
    }
    char fpath[1024];
    snprintf(fpath, sizeof(fpath), "%s/%s", srv->conf->gui_root, name);
    int fd = open(fpath, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > 4 * 1024 * 1024) {
        if (fd >= 0) close(fd);
        xt_warn("gui: cannot read %s", fpath);
        api_send_error(req, 404, "Not Found", "not_found", "GUI asset missing");
        return 0;
    }
    char *buf = h2o_mem_alloc_pool(&req->pool, (size_t)st.st_size + 1);
    ssize_t got = 0;
    while (got < st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
        if (r <= 0) break;
        got += r;
    }
    close(fd);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)got;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, gui_files[i].type,
                   strlen(gui_files[i].type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   strcmp(name, "datastar.js") != 0 ? "no-cache" : "max-age=300",
                   strcmp(name, "datastar.js") != 0 ? 8 : 11); /* our files change with the server */
    h2o_send_inline(req, buf, (size_t)got);
    return 0;
}

/* --- supervisor status --------------------------------------------------------------------- */

static void status_store(struct web_api *a, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    int changed = !a->services || !json_equal(a->services, j);
    json_decref(a->services);
    a->services = j;
    a->services_at = web_now_ms(a->srv);
    if (changed) events_services_changed(a->srv);
}

static void status_body_append(struct web_api *a, const char *p, size_t n)
{
    if (a->body_len + n > STATUS_MAX) n = STATUS_MAX - a->body_len;
    if (!a->body) a->body = malloc(STATUS_MAX + 1);
    if (a->body && n) {
        memcpy(a->body + a->body_len, p, n);
        a->body_len += n;
    }
}

static int status_on_body(h2o_http1client_t *client, const char *errstr)
{
    struct web_api *a = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        a->client = NULL;
        return -1;
    }
    status_body_append(a, client->sock->input->bytes, client->sock->input->size);
    h2o_buffer_consume(&client->sock->input, client->sock->input->size);
    if (errstr == h2o_http1client_error_is_eos) {
        a->client = NULL;
        if (a->status == 200 && a->body) status_store(a, a->body, a->body_len);
    }
    return 0;
}

static h2o_http1client_body_cb status_on_head(h2o_http1client_t *client, const char *errstr, int minor,
                                              int status, h2o_iovec_t msg, h2o_header_t *headers, size_t nh,
                                              int rlen)
{
    struct web_api *a = client->data;
    if (errstr != NULL) {
        a->client = NULL;
        return NULL;
    }
    a->status = status;
    a->body_len = 0;
    return status_on_body;
}

static h2o_http1client_head_cb status_on_connect(h2o_http1client_t *client, const char *errstr,
                                                 h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                                 int *method_is_head)
{
    struct web_api *a = client->data;
    if (errstr != NULL) {
        a->client = NULL;
        return NULL;
    }
    *reqbufs = &a->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return status_on_head;
}

/* Control socket: send "status json\n", read "ok\n{...}\n" until the supervisor closes. */
static void sock_on_read(h2o_socket_t *sock, const char *err)
{
    struct web_api *a = sock->data;
    status_body_append(a, sock->input->bytes, sock->input->size);
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (err != NULL) {
        h2o_socket_close(sock);
        a->sock = NULL;
        if (a->body && a->body_len > 3 && memcmp(a->body, "ok\n", 3) == 0)
            status_store(a, a->body + 3, a->body_len - 3);
    }
}

static void sock_on_written(h2o_socket_t *sock, const char *err)
{
    struct web_api *a = sock->data;
    if (err != NULL) {
        h2o_socket_close(sock);
        a->sock = NULL;
        return;
    }
    h2o_socket_read_start(sock, sock_on_read);
}

static void sock_on_connect(h2o_socket_t *sock, const char *err)
{
    struct web_api *a = sock->data;
    static h2o_iovec_t line = {"status json\n", 12};
    if (err != NULL) {
        h2o_socket_close(sock);
        a->sock = NULL;
        return;
    }
    h2o_socket_write(sock, &line, 1, sock_on_written);
}

static void poll_cb(h2o_timeout_entry_t *e)
{
    struct web_api *a = H2O_STRUCT_FROM_MEMBER(struct web_api, poll_entry, e);
    web_server *srv = a->srv;
    if (srv->shutting_down) return;
    if (srv->conf->sup_status_url && a->client == NULL) {
        a->body_len = 0;
        a->status = 0;
        h2o_http1client_connect(&a->client, a, &a->client_ctx, h2o_iovec_init(a->host, strlen(a->host)),
                                a->port, 0, status_on_connect);
    } else if (srv->conf->sup_status_socket && a->sock == NULL) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv->conf->sup_status_socket);
        a->body_len = 0;
        if ((a->sock = h2o_socket_connect(srv->ctx.loop, (struct sockaddr *)&sa, sizeof(sa),
                                          sock_on_connect)) != NULL)
            a->sock->data = a;
    }
    /* a status older than three polls is stale: show it as unavailable */
    if (a->services && web_now_ms(srv) - a->services_at > 3 * (uint64_t)srv->conf->sup_poll_ms + 1000) {
        json_decref(a->services);
        a->services = NULL;
        events_services_changed(srv);
    }
    h2o_timeout_link(srv->ctx.loop, &a->poll, &a->poll_entry);
}

void api_wait_idle(int64_t max_ms)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int64_t waited = 0; atomic_load(&audit_inflight) > 0 && waited < max_ms; waited += 10)
        nanosleep(&ts, NULL); /* a bounded wait for reads that use the connection about to close */
}

json_t *api_services_json(web_server *srv)
{
    return srv->api ? srv->api->services : NULL;
}

int api_init(web_server *srv)
{
    struct web_api *a = calloc(1, sizeof(*a));
    if (!a) return -1;
    srv->api = a;
    a->srv = srv;
    h2o_multithread_register_receiver(srv->ctx.queue, &a->audit_rx, audit_on_messages);
    if (srv->conf->sup_status_url) {
        /* http://host:port/path, validated by conf.c */
        const char *p = srv->conf->sup_status_url + 7, *slash = strchr(p, '/'), *colon;
        if (!slash) slash = p + strlen(p);
        colon = memchr(p, ':', (size_t)(slash - p));
        a->host = strndup(p, (size_t)((colon ? colon : slash) - p));
        a->port = colon ? (uint16_t)strtol(colon + 1, NULL, 10) : 80; /* digits checked by conf.c */
        a->pathq = strdup(*slash ? slash : "/");
        char buf[1024];
        int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n",
                         a->pathq, a->host, (unsigned)a->port);
        a->reqbuf = h2o_strdup(NULL, buf, (size_t)n);
        h2o_timeout_init(srv->ctx.loop, &a->io_timeout, 2000);
        a->client_ctx.loop = srv->ctx.loop;
        a->client_ctx.getaddr_receiver = &srv->ctx.receivers.hostinfo_getaddr;
        a->client_ctx.io_timeout = &a->io_timeout;
    }
    if (srv->conf->sup_status_url || srv->conf->sup_status_socket) {
        h2o_timeout_init(srv->ctx.loop, &a->poll, (uint64_t)srv->conf->sup_poll_ms);
        a->poll_entry.cb = poll_cb;
        poll_cb(&a->poll_entry);
    }
    return 0;
}

void api_dispose(web_server *srv)
{
    struct web_api *a = srv->api;
    if (!a) return;
    if (a->client) h2o_http1client_cancel(a->client);
    if (a->sock) h2o_socket_close(a->sock);
    h2o_multithread_unregister_receiver(srv->ctx.queue, &a->audit_rx);
    if (h2o_timeout_is_linked(&a->poll_entry)) h2o_timeout_unlink(&a->poll_entry);
    if (srv->conf->sup_status_url || srv->conf->sup_status_socket)
        h2o_timeout_dispose(srv->ctx.loop, &a->poll);
    if (srv->conf->sup_status_url) h2o_timeout_dispose(srv->ctx.loop, &a->io_timeout);
    json_decref(a->services);
    free(a->host);
    free(a->pathq);
    free(a->reqbuf.base);
    free(a->body);
    free(a);
    srv->api = NULL;
}
