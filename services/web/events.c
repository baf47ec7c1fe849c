/*
 * events.c: /events?project=P, Server-Sent Events fed by NATS.
 *
 * Every NATS message is rendered once (Datastar events for the GUI, or plain JSON events with
 * &format=json) into a reference-counted buffer, and a pointer to it goes into each matching
 * client's ring. A client has at most one write in flight (h2o calls `proceed` when it is done);
 * meanwhile new events wait in the ring. A full ring drops its oldest event and counts it; the next
 * write starts with a notice telling the client how many it lost. A slow client therefore costs a
 * bounded amount of memory and never delays the others. Heartbeat comments keep idle streams alive
 * through proxies. The client state lives in the request's pool: when h2o disposes the request
 * (disconnect), the dispose callback unlinks it and drops its references.
 *
 * Datastar 1.0.0-beta.11 (the version in gui/package.json) speaks `datastar-merge-fragments`
 * (data lines `selector`, `mergeMode`, `fragments`) and `datastar-merge-signals` (`signals`).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "web.h"
#include "xt_log.h"
#include "xt_path.h"

#define FMT_DS 0
#define FMT_JSON 1
#define MAX_IOV 64
#define TASKS_KEPT 32            /* task blocks kept per loop for pages that (re)connect */
#define TASK_OUT_MAX (64 * 1024) /* rendered output kept per task block */
#define RECENT_RESULTS 20
#define TICK_MS 1000 /* NATS state and stream age checks */

typedef struct {
    size_t refcnt;
    size_t len;
    char data[];
} ev_buf;

typedef struct sse_client {
    h2o_linklist_t link;
    h2o_linklist_t dirty; /* in web_events.dirty while it has queued events the next flush must send */
    web_server *srv;
    h2o_req_t *req;
    h2o_generator_t gen;
    char project[WEB_PROJECT_MAX + 1];
    int fmt;
    ev_buf **ring;
    size_t cap, head, count;
    uint64_t dropped, dropped_total;
    ev_buf *inflight[MAX_IOV];
    size_t ninflight;
    h2o_iovec_t iov[MAX_IOV + 2];
    char notice[256];
    int sending, closing, finished, linked, want_hb;
    uint64_t last_send_ms;
    uint64_t end_ms; /* the stream ends here: the client reconnects through forward-auth */
} sse_client;

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

/* A task's block on the page, kept so that a page that connects while the task runs (a reload, a
 * reconnect after a restart) gets it with the output so far, and what follows lands in it. */
typedef struct {
    char sid[72];
    char project[WEB_PROJECT_MAX + 1];
    sbuf head;        /* the header's content: id, task, node */
    char status[512]; /* the status span */
    sbuf out;         /* rendered output spans */
    int cut;          /* output beyond TASK_OUT_MAX is not kept here (the stored result has it) */
    uint64_t seq;     /* creation order */
} task_rec;

struct web_events {
    web_server *srv;
    h2o_linklist_t clients;
    h2o_linklist_t dirty; /* clients with queued events: the flush visits these, not every client */
    size_t nclients;
    size_t nfmt[2]; /* clients per format: nothing is rendered in a format nobody reads */
    h2o_timeout_t hb;
    h2o_timeout_entry_t hb_entry;
    h2o_timeout_t render;
    h2o_timeout_entry_t render_entry;
    h2o_timeout_entry_t flush_entry; /* on the context's zero timeout: one write per client per batch */
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    int nodes_dirty, services_dirty;
    int nats_up; /* NATS state the pages were last told: -1 never */
    task_rec tasks[TASKS_KEPT];
    size_t tasks_next;
    uint64_t task_seq;
    ev_buf *recent[RECENT_RESULTS]; /* rendered <li> fragments, newest first */
    char recent_id[RECENT_RESULTS][72];
    char recent_project[RECENT_RESULTS][WEB_PROJECT_MAX + 1];
    uint64_t dropped_total;
    char *picker; /* the task picker as last sent: re-sent only when it changes (a morph would close
                   * the <details> a user opened, at every heartbeat) */
};

static const char hb_text[] = ": hb\n\n";
static atomic_long streams_total; /* every thread's streams: /health and events.max_clients */

/* --- buffers ---------------------------------------------------------------------------- */

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 512;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_esc(sbuf *b, const char *s)
{
    char *e = web_html_escape(s ? s : "", s ? strlen(s) : 0);
    if (e) {
        sb_puts(b, e);
        free(e);
    }
}

static ev_buf *evb_from(sbuf *b)
{
    ev_buf *e = malloc(sizeof(*e) + b->len + 1);
    if (!e) return NULL;
    e->refcnt = 1;
    e->len = b->len;
    memcpy(e->data, b->p ? b->p : "", b->len);
    e->data[b->len] = 0;
    return e;
}

static void evb_release(ev_buf *e)
{
    if (e && --e->refcnt == 0) free(e);
}

/* One Datastar merge-fragments event. `fragment` must be a single line of HTML. */
static void ds_fragments(sbuf *b, const char *selector, const char *mode, const char *fragment)
{
    sb_puts(b, "event: datastar-merge-fragments\n");
    if (selector) {
        sb_puts(b, "data: selector ");
        sb_puts(b, selector);
        sb_puts(b, "\n");
    }
    if (mode) {
        sb_puts(b, "data: mergeMode ");
        sb_puts(b, mode);
        sb_puts(b, "\n");
    }
    sb_puts(b, "data: fragments ");
    sb_puts(b, fragment);
    sb_puts(b, "\n\n");
}

static void ds_signals(sbuf *b, const char *json)
{
    sb_puts(b, "event: datastar-merge-signals\ndata: signals ");
    sb_puts(b, json);
    sb_puts(b, "\n\n");
}

/* Element-id-safe form of a task id. */
static void safe_id(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; in && *in && o + 1 < outlen; in++) {
        char c = *in;
        out[o++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_')
                       ? c
                       : '_';
    }
    out[o] = 0;
}

/* --- clients ---------------------------------------------------------------------------- */

static void client_flush(sse_client *c);

static void client_release_inflight(sse_client *c)
{
    for (size_t i = 0; i < c->ninflight; i++)
        evb_release(c->inflight[i]);
    c->ninflight = 0;
}

static void client_dispose(void *p)
{
    sse_client *c = p;
    if (h2o_linklist_is_linked(&c->dirty)) h2o_linklist_unlink(&c->dirty);
    if (c->linked) {
        h2o_linklist_unlink(&c->link);
        c->srv->events->nclients--;
        c->srv->events->nfmt[c->fmt]--;
        atomic_fetch_sub(&streams_total, 1);
        c->linked = 0;
    }
    client_release_inflight(c);
    while (c->count) {
        evb_release(c->ring[c->head]);
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    free(c->ring);
    c->ring = NULL;
}

static void client_on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, gen, gen);
    client_release_inflight(c);
    c->sending = 0;
    if (c->closing && c->count) { /* the last words (client_end) go out before the end */
        client_flush(c);
        return;
    }
    if (c->closing) {
        c->finished = 1;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    client_flush(c);
}

static void client_on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, gen, gen);
    c->finished = 1;
    if (h2o_linklist_is_linked(&c->dirty)) h2o_linklist_unlink(&c->dirty);
    if (c->linked) {
        h2o_linklist_unlink(&c->link);
        c->srv->events->nclients--;
        c->srv->events->nfmt[c->fmt]--;
        atomic_fetch_sub(&streams_total, 1);
        c->linked = 0;
    }
}

static void client_flush(sse_client *c)
{
    size_t n = 0;
    if (c->sending || c->finished) return;
    if (c->dropped) {
        int len;
        if (c->fmt == FMT_DS)
            len = snprintf(
                c->notice, sizeof(c->notice),
                "event: datastar-merge-signals\ndata: signals {dropped: %llu}\n\n"
                "event: datastar-merge-fragments\ndata: fragments <div id=\"notice\" class=\"notice\">"
                "%llu events were dropped: the connection is too slow</div>\n\n",
                (unsigned long long)c->dropped_total, (unsigned long long)c->dropped);
        else
            len = snprintf(c->notice, sizeof(c->notice),
                           "event: dropped\ndata: {\"dropped\":%llu,\"total\":%llu}\n\n",
                           (unsigned long long)c->dropped, (unsigned long long)c->dropped_total);
        c->iov[n++] = h2o_iovec_init(c->notice, (size_t)len);
        c->dropped = 0;
    }
    while (c->count && c->ninflight < MAX_IOV) {
        ev_buf *e = c->ring[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
        c->inflight[c->ninflight++] = e;
        c->iov[n++] = h2o_iovec_init(e->data, e->len);
    }
    if (n == 0 && c->want_hb) c->iov[n++] = h2o_iovec_init(hb_text, sizeof(hb_text) - 1);
    c->want_hb = 0;
    if (n == 0) return;
    c->sending = 1;
    c->last_send_ms = web_now_ms(c->srv);
    h2o_send(c->req, c->iov, n, H2O_SEND_STATE_IN_PROGRESS);
}

/* Queue one event for a client (takes a reference). */
static void client_push(sse_client *c, ev_buf *e)
{
    if (c->finished || c->closing) return;
    if (c->count == c->cap) {
        evb_release(c->ring[c->head]);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        c->dropped++;
        c->dropped_total++;
        c->srv->events->dropped_total++;
    }
    e->refcnt++;
    c->ring[(c->head + c->count) % c->cap] = e;
    c->count++;
    if (!h2o_linklist_is_linked(&c->dirty)) h2o_linklist_insert(&c->srv->events->dirty, &c->dirty);
}

/* End a stream: `last` (may be NULL) is its last event, then the response ends. */
static void client_end(sse_client *c, ev_buf *last)
{
    if (c->finished || c->closing) return;
    if (last) client_push(c, last);
    c->closing = 1;
    if (h2o_linklist_is_linked(&c->dirty)) h2o_linklist_unlink(&c->dirty);
    if (c->sending) return; /* proceed sends the rest, then ends */
    if (c->count) {
        client_flush(c);
        return;
    }
    c->finished = 1;
    h2o_send(c->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/* Writes go out after the current batch of NATS messages (bus.c hands over at most 64 per loop
 * turn), in the same loop iteration (the context's zero timeout runs right after the I/O callbacks;
 * h2o_send on HTTP/1.1 is a writev at once): one idle client costs one write per event, a loop that
 * falls behind sends each client its backlog in one write instead of one write per event. Only the
 * clients that got something are visited. A client with a write in flight leaves the list too: its
 * `proceed` sends what has queued meanwhile. */
static void flush_cb(h2o_timeout_entry_t *entry)
{
    struct web_events *ev = H2O_STRUCT_FROM_MEMBER(struct web_events, flush_entry, entry);
    while (!h2o_linklist_is_empty(&ev->dirty)) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, dirty, ev->dirty.next);
        h2o_linklist_unlink(&c->dirty);
        if (c->count || c->dropped) client_flush(c);
    }
}

static void broadcast(web_server *srv, const char *project, int fmt, ev_buf *e)
{
    struct web_events *ev = srv->events;
    int any = 0;
    if (!e) return;
    for (h2o_linklist_t *l = ev->clients.next; l != &ev->clients; l = l->next) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, link, l);
        if (c->fmt != fmt || (project && strcmp(project, c->project) != 0)) continue;
        client_push(c, e);
        any = 1;
    }
    if (any && !h2o_timeout_is_linked(&ev->flush_entry))
        h2o_timeout_link(srv->ctx.loop, &srv->ctx.zero_timeout, &ev->flush_entry);
}

static int have_fmt(web_server *srv, int fmt)
{
    return srv->events->nfmt[fmt] != 0;
}

/* --- rendering -------------------------------------------------------------------------- */

/* A node id or task name that may go into a Datastar expression as a '...' literal: nothing that
 * could end the string or the attribute. Others are listed, not clickable. */
static int expr_token(const char *s)
{
    size_t n = 0;
    if (!s || !*s) return 0;
    for (; *s; s++, n++)
        if (n >= 128 || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                          *s == '-' || *s == '_' || *s == '.' || *s == ':'))
            return 0;
    return 1;
}

/* One task of a node: a button that fills the run form (node, task, whether it takes arguments). */
static void render_task_pick(sbuf *f, const char *node, const char *task, json_t *info, int with_help)
{
    json_t *ti = json_object_get(info, task);
    const char *desc = json_string_value(json_object_get(ti, "description"));
    int args = json_is_true(json_object_get(ti, "args"));
    if (expr_token(node) && expr_token(task)) {
        sb_printf(f,
                  "<button type=\"button\" class=\"chip\" data-on-click=\"$node = '%s'; $task = '%s'; "
                  "$takesArgs = %s; $taskError = ''\"",
                  node, task, args ? "true" : "false");
        if (desc && *desc && !with_help) {
            sb_puts(f, " title=\"");
            sb_esc(f, desc);
            sb_puts(f, "\"");
        }
        sb_puts(f, ">");
        sb_esc(f, task);
        sb_puts(f, "</button>");
    } else {
        sb_puts(f, "<code>");
        sb_esc(f, task);
        sb_puts(f, "</code>");
    }
    if (with_help) {
        sb_puts(f, " <span class=\"muted\">");
        sb_esc(f, desc && *desc ? desc : "(no description)");
        sb_puts(f, args ? " &middot; takes arguments" : " &middot; no arguments");
        sb_puts(f, "</span>");
    }
}

static void render_nodes(web_server *srv, sbuf *b, int snapshot)
{
    json_t *nodes = bus_nodes_json(srv);
    sbuf f = {0}, dl = {0}, pk = {0};
    sb_puts(&f, "<tbody id=\"nodes\">");
    sb_puts(&dl, "<datalist id=\"node-list\">");
    sb_puts(&pk, "<div id=\"picker\">");
    size_t i, online = 0;
    json_t *n;
    if (json_array_size(nodes) == 0) {
        sb_puts(&f, "<tr><td colspan=\"6\" class=\"muted\">no nodes yet</td></tr>");
        sb_puts(&pk, "<p class=\"muted\">No node is connected: tasks appear here when one joins.</p>");
    }
    json_array_foreach(nodes, i, n)
    {
        json_t *pf = json_object_get(n, "platform"), *load = json_object_get(n, "load"),
               *tasks = json_object_get(n, "tasks"), *tags = json_object_get(n, "tags"),
               *info = json_object_get(n, "task_info");
        const char *id = json_string_value(json_object_get(n, "id"));
        int on = !json_is_false(json_object_get(n, "online"));
        online += on;
        char plat[128];
        snprintf(plat, sizeof(plat), "%s/%s", json_string_value(json_object_get(pf, "os")) ?: "?",
                 json_string_value(json_object_get(pf, "arch")) ?: "?");
        sb_printf(&f, "<tr class=\"node%s\"><td class=\"node-id\">", on ? "" : " offline");
        sb_esc(&f, id);
        sb_puts(&f, "</td><td class=\"where\">");
        sb_esc(&f, json_string_value(json_object_get(n, "region")));
        if (json_is_array(tags)) { /* an edge node: region is where its leaf attaches now */
            sb_puts(&f,
                    " <span class=\"tag edge\" title=\"edge node: attached through its leaf\">edge</span>");
            size_t k;
            json_t *t;
            json_array_foreach(tags, k, t)
            {
                sb_puts(&f, " <span class=\"tag\">");
                sb_esc(&f, json_string_value(t));
                sb_puts(&f, "</span>");
            }
        }
        sb_printf(&f, "</td><td><span class=\"node-state %s\">%s</span></td><td>", on ? "on" : "off",
                  on ? "online" : "offline");
        sb_esc(&f, plat);
        sb_puts(&f, "</td><td>");
        size_t k;
        json_t *t;
        json_array_foreach(tasks, k, t)
        {
            if (k) sb_puts(&f, " ");
            if (on)
                render_task_pick(&f, id, json_string_value(t), info, 0);
            else {
                sb_puts(&f, "<code>");
                sb_esc(&f, json_string_value(t));
                sb_puts(&f, "</code>");
            }
        }
        sb_printf(&f, "</td><td>%lld</td></tr>",
                  (long long)json_integer_value(json_object_get(load, "running")));
        if (!on) continue;
        sb_puts(&dl, "<option value=\"");
        sb_esc(&dl, id);
        sb_puts(&dl, "\"></option>");
        sb_puts(&pk, "<details><summary><span class=\"node-id\">");
        sb_esc(&pk, id);
        sb_puts(&pk, "</span> <span class=\"muted\">");
        sb_esc(&pk, json_string_value(json_object_get(n, "region")));
        sb_printf(&pk, " &middot; %zu tasks</span></summary><ul class=\"picks\">", json_array_size(tasks));
        json_array_foreach(tasks, k, t)
        {
            sb_puts(&pk, "<li>");
            render_task_pick(&pk, id, json_string_value(t), info, 1);
            sb_puts(&pk, "</li>");
        }
        sb_puts(&pk, "</ul></details>");
    }
    sb_puts(&f, "</tbody>");
    sb_puts(&dl, "</datalist>");
    sb_puts(&pk, "</div>");
    ds_fragments(b, NULL, NULL, f.p);
    ds_fragments(b, NULL, NULL, dl.p);
    struct web_events *ev = srv->events;
    if (snapshot || !ev->picker || strcmp(ev->picker, pk.p ? pk.p : "") != 0)
        ds_fragments(b, NULL, NULL, pk.p);
    if (!ev->picker || strcmp(ev->picker, pk.p ? pk.p : "") != 0) {
        free(ev->picker);
        ev->picker = pk.p;
        pk.p = NULL;
    }
    char sig[96];
    snprintf(sig, sizeof(sig), "{nodeCount: %zu, nodesOnline: %zu}", json_array_size(nodes), online);
    ds_signals(b, sig);
    free(f.p);
    free(dl.p);
    free(pk.p);
    json_decref(nodes);
}

static void uptime_text(json_int_t ms, char *out, size_t outlen)
{
    long long sec = ms / 1000;
    if (ms <= 0)
        snprintf(out, outlen, "-");
    else if (sec < 60)
        snprintf(out, outlen, "%lld s", sec);
    else if (sec < 3600)
        snprintf(out, outlen, "%lld min", sec / 60);
    else if (sec < 86400)
        snprintf(out, outlen, "%lld h %lld min", sec / 3600, sec % 3600 / 60);
    else
        snprintf(out, outlen, "%lld d %lld h", sec / 86400, sec % 86400 / 3600);
}

static void render_services(web_server *srv, sbuf *b)
{
    json_t *st = api_services_json(srv);
    json_t *svcs = json_object_get(st, "services");
    sbuf f = {0};
    sb_puts(&f, "<tbody id=\"services\">");
    if (!st) sb_puts(&f, "<tr><td colspan=\"7\" class=\"muted\">supervisor status unavailable</td></tr>");
    size_t i;
    json_t *s;
    json_array_foreach(svcs, i, s)
    {
        const char *state = json_string_value(json_object_get(s, "state")) ?: "?";
        json_t *le = json_object_get(s, "last_exit");
        char cls[32], up[64], last[64] = "-";
        safe_id(state, cls, sizeof(cls));
        uptime_text(strcmp(state, "READY") == 0 || strcmp(state, "STARTING") == 0
                        ? json_integer_value(json_object_get(s, "uptime_ms"))
                        : 0,
                    up, sizeof(up));
        if (json_integer_value(json_object_get(le, "signal")) > 0)
            snprintf(last, sizeof(last), "killed by signal %lld",
                     (long long)json_integer_value(json_object_get(le, "signal")));
        else if (json_is_integer(json_object_get(le, "code")))
            snprintf(last, sizeof(last), "exit %lld",
                     (long long)json_integer_value(json_object_get(le, "code")));
        sb_puts(&f, "<tr><td>");
        sb_esc(&f, json_string_value(json_object_get(s, "name")));
        sb_printf(&f, "</td><td><span class=\"state state-%s\">", cls);
        sb_esc(&f, state);
        sb_printf(&f, "</span></td><td>%lld</td><td>%s</td><td>%lld</td><td>%s</td><td>%s</td></tr>",
                  (long long)json_integer_value(json_object_get(s, "pid")), up,
                  (long long)json_integer_value(json_object_get(s, "restarts")), last,
                  json_is_true(json_object_get(s, "ready")) ? "yes" : "no");
    }
    sb_puts(&f, "</tbody>");
    ds_fragments(b, NULL, NULL, f.p);
    free(f.p);
}

static task_rec *task_find(struct web_events *ev, const char *sid)
{
    for (size_t i = 0; i < TASKS_KEPT; i++)
        if (ev->tasks[i].sid[0] && strcmp(ev->tasks[i].sid, sid) == 0) return &ev->tasks[i];
    return NULL;
}

/* How a task ended, in words: "exit 0", "exit 3", "timed out", "killed by signal 9 (KILL)",
 * "could not start (exit 127)"; never the -1 the protocol carries beside a signal. */
void events_exit_text(json_t *j, char *out, size_t outlen)
{
    static const char *const names[] = {
        [1] = "HUP", [2] = "INT",  [3] = "QUIT",  [4] = "ILL",   [6] = "ABRT",  [7] = "BUS",
        [8] = "FPE", [9] = "KILL", [11] = "SEGV", [13] = "PIPE", [14] = "ALRM", [15] = "TERM"};
    json_t *err = json_object_get(j, "error");
    json_int_t code = json_integer_value(json_object_get(j, "exit_code"));
    json_int_t sig = json_integer_value(json_object_get(j, "signal"));
    if (err)
        snprintf(out, outlen, "refused: %s",
                 json_string_value(json_object_get(err, "message")) ?: json_string_value(err) ?: "error");
    else if (json_is_true(json_object_get(j, "timed_out")))
        snprintf(out, outlen, "timed out");
    else if (sig > 0 && sig < (json_int_t)(sizeof(names) / sizeof(names[0])) && names[sig])
        snprintf(out, outlen, "killed by signal %lld (%s)", (long long)sig, names[sig]);
    else if (sig > 0)
        snprintf(out, outlen, "killed by signal %lld", (long long)sig);
    else if (code == 127)
        snprintf(out, outlen, "could not start (exit 127)");
    else
        snprintf(out, outlen, "exit %lld", (long long)code);
}

int events_result_ok(json_t *j)
{
    return !json_object_get(j, "error") && !json_is_true(json_object_get(j, "timed_out")) &&
           json_integer_value(json_object_get(j, "signal")) <= 0 &&
           json_integer_value(json_object_get(j, "exit_code")) == 0;
}

/* "12 ms", "3.4 s", "2 min 5 s" */
void events_duration_text(json_int_t ms, char *out, size_t outlen)
{
    if (ms < 1000)
        snprintf(out, outlen, "%lld ms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, outlen, "%lld.%lld s", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
    else
        snprintf(out, outlen, "%lld min %lld s", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
}

static void task_block_html(const task_rec *t, sbuf *f)
{
    sb_printf(f, "<section class=\"task\" id=\"task-%s\"><header>", t->sid);
    if (t->head.p) sb_put(f, t->head.p, t->head.len);
    sb_puts(f, " ");
    sb_puts(f, t->status);
    sb_printf(
        f,
        "</header><pre id=\"out-%s\" class=\"out\" tabindex=\"0\" role=\"log\" aria-label=\"output of %s\">",
        t->sid, t->sid);
    if (t->out.p) sb_put(f, t->out.p, t->out.len);
    sb_puts(f, "</pre></section>");
}

/* The block a task's output goes into: created on task.started, or at the first sign of the task. */
static void render_task_block(struct web_events *ev, sbuf *b, const char *sid, const char *project, json_t *j)
{
    task_rec *t = &ev->tasks[ev->tasks_next];
    ev->tasks_next = (ev->tasks_next + 1) % TASKS_KEPT;
    free(t->head.p);
    free(t->out.p);
    memset(t, 0, sizeof(*t));
    snprintf(t->sid, sizeof(t->sid), "%s", sid);
    snprintf(t->project, sizeof(t->project), "%s", project ? project : "");
    t->seq = ++ev->task_seq;
    sb_puts(&t->head, "<code>");
    sb_esc(&t->head, json_string_value(json_object_get(j, "id")));
    sb_puts(&t->head, "</code> <b>");
    sb_esc(&t->head, json_string_value(json_object_get(j, "task")) ?: "");
    sb_puts(&t->head, "</b> on <span class=\"node-id\">");
    sb_esc(&t->head, json_string_value(json_object_get(j, "node")) ?: "?");
    sb_puts(&t->head, "</span>");
    const char *by = json_string_value(json_object_get(j, "requested_by"));
    if (by && *by) {
        sb_puts(&t->head, " <span class=\"muted\">by ");
        sb_esc(&t->head, by);
        sb_puts(&t->head, "</span>");
    }
    snprintf(t->status, sizeof(t->status), "<span id=\"st-%s\" class=\"st run\">running</span>", sid);
    sbuf f = {0};
    task_block_html(t, &f);
    ds_fragments(b, "#tasks", "prepend", f.p);
    free(f.p);
}

static ev_buf *render_result_li(const char *sid, json_t *j)
{
    sbuf f = {0};
    char how[384], dur[64];
    events_exit_text(j, how, sizeof(how));
    events_duration_text(json_integer_value(json_object_get(j, "duration_ms")), dur, sizeof(dur));
    sb_printf(&f,
              "<li id=\"res-%s\" class=\"%s\"><button type=\"button\" class=\"link\" "
              "data-on-click=\"@get('/api/v1/tasks/%s', {retryMaxCount: 0})\" title=\"open the result\">",
              sid, events_result_ok(j) ? "ok" : "fail", sid);
    sb_esc(&f, json_string_value(json_object_get(j, "id")));
    sb_puts(&f, "</button> ");
    sb_esc(&f, json_string_value(json_object_get(j, "task")) ?: "");
    sb_puts(&f, " on ");
    sb_esc(&f, json_string_value(json_object_get(j, "node")) ?: "?");
    sb_puts(&f, ": <span class=\"how\">");
    sb_esc(&f, how);
    sb_printf(&f, "</span> in %s</li>", dur);
    ev_buf *e = evb_from(&f);
    free(f.p);
    return e;
}

static void remember_result(struct web_events *ev, const char *sid, const char *project, json_t *j, sbuf *b)
{
    for (size_t i = 0; i < RECENT_RESULTS; i++)
        if (ev->recent[i] && strcmp(ev->recent_id[i], sid) == 0) return; /* already shown */
    ev_buf *li = render_result_li(sid, j);
    if (!li) return;
    evb_release(ev->recent[RECENT_RESULTS - 1]);
    memmove(&ev->recent[1], &ev->recent[0], sizeof(ev->recent[0]) * (RECENT_RESULTS - 1));
    memmove(&ev->recent_id[1], &ev->recent_id[0], sizeof(ev->recent_id[0]) * (RECENT_RESULTS - 1));
    memmove(&ev->recent_project[1], &ev->recent_project[0],
            sizeof(ev->recent_project[0]) * (RECENT_RESULTS - 1));
    ev->recent[0] = li;
    snprintf(ev->recent_id[0], sizeof(ev->recent_id[0]), "%s", sid);
    snprintf(ev->recent_project[0], sizeof(ev->recent_project[0]), "%s", project ? project : "");
    ds_fragments(b, "#results", "prepend", li->data);
    task_rec *t = task_find(ev, sid);
    if (t) {
        char how[384];
        events_exit_text(j, how, sizeof(how));
        char *e = web_html_escape(how, strlen(how));
        snprintf(t->status, sizeof(t->status), "<span id=\"st-%s\" class=\"st %s\">%s</span>", sid,
                 events_result_ok(j) ? "ok" : "fail", e ? e : "");
        free(e);
        ds_fragments(b, NULL, NULL, t->status);
    }
}

/* Datastar rendering of one NATS message; empty when it has no GUI form. */
static void render_ds(struct web_events *ev, const char *subject, const char *project, json_t *j, sbuf *b)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *id = json_string_value(json_object_get(j, "id"));
    char sid[72] = "";
    safe_id(id, sid, sizeof(sid));
    int is_log = strncmp(subject, "xtask.logs.", 11) == 0;
    if (!type && is_log) type = "log";
    if (!type) type = "";
    /* xtask.logs.<node> carries no project: the page shows a task's lines from its project's
     * task.output events only, so no page sees another project's output */
    if (is_log || !project) return;
    if (sid[0] && strncmp(type, "task.", 5) == 0 && !task_find(ev, sid))
        render_task_block(ev, b, sid, project, j);
    if (strcmp(type, "task.started") == 0) {
        /* the block was just rendered above */
    } else if (strcmp(type, "task.output") == 0) {
        sbuf f = {0};
        const char *stream = json_string_value(json_object_get(j, "stream"));
        char sel[96];
        sb_printf(&f, "<span class=\"%s\">", stream && strcmp(stream, "stderr") == 0 ? "stderr" : "stdout");
        sb_esc(&f, json_string_value(json_object_get(j, "line")) ?: "");
        sb_puts(&f, "</span>");
        snprintf(sel, sizeof(sel), "#out-%s", sid);
        ds_fragments(b, sel, "append", f.p);
        task_rec *t = task_find(ev, sid);
        if (t && !t->cut && t->out.len + f.len <= TASK_OUT_MAX)
            sb_put(&t->out, f.p, f.len);
        else if (t)
            t->cut = 1;
        free(f.p);
    } else if (strcmp(type, "task.finished") == 0) {
        remember_result(ev, sid, project, j, b);
    } else {
        sbuf f = {0};
        char *dump = json_dumps(j, JSON_COMPACT);
        sb_puts(&f, "<li class=\"activity\"><code>");
        sb_esc(&f, subject);
        sb_puts(&f, "</code> ");
        sb_esc(&f, dump ? dump : "");
        sb_puts(&f, "</li>");
        free(dump);
        ds_fragments(b, "#activity", "prepend", f.p);
        free(f.p);
    }
}

/* JSON rendering: "event: <type>\ndata: <payload>" (one data line per payload line). */
static void render_json(const char *type, const char *data, size_t len, sbuf *b)
{
    sb_puts(b, "event: ");
    sb_puts(b, type);
    sb_puts(b, "\n");
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || data[i] == '\n') {
            size_t l = i - start;
            if (l && data[start + l - 1] == '\r') l--;
            sb_puts(b, "data: ");
            sb_put(b, data + start, l);
            sb_puts(b, "\n");
            start = i + 1;
        }
    }
    sb_puts(b, "\n");
}

void events_on_nats(web_server *srv, const char *subject, const char *data, size_t len)
{
    struct web_events *ev = srv->events;
    char project[WEB_PROJECT_MAX + 1] = "";
    char type[128] = "log";
    const char *p = NULL;
    if (strncmp(subject, "xtask.events.", 13) == 0) {
        const char *s = subject + 13, *dot = strchr(s, '.');
        if (!dot || (size_t)(dot - s) > WEB_PROJECT_MAX) return;
        memcpy(project, s, (size_t)(dot - s));
        project[dot - s] = 0;
        /* xtask.events.<project>.<node>.<type>: the node token binds the publisher (docs/PROTOCOL.md) */
        const char *t = strchr(dot + 1, '.');
        snprintf(type, sizeof(type), "%s", t ? t + 1 : dot + 1);
        p = project;
    }
    if (have_fmt(srv, FMT_JSON)) {
        sbuf b = {0};
        render_json(type, data, len, &b);
        ev_buf *e = evb_from(&b);
        free(b.p);
        broadcast(srv, p, FMT_JSON, e);
        evb_release(e);
    }
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    if (!json_object_get(j, "type") && p) json_object_set_new(j, "type", json_string(type));
    sbuf b = {0};
    render_ds(ev, subject, p, j, &b);
    json_decref(j);
    if (b.len && have_fmt(srv, FMT_DS)) {
        ev_buf *e = evb_from(&b);
        broadcast(srv, p, FMT_DS, e);
        evb_release(e);
    }
    free(b.p);
}

void events_task_result(web_server *srv, const char *project, json_t *result)
{
    struct web_events *ev = srv->events;
    char sid[72];
    safe_id(json_string_value(json_object_get(result, "id")), sid, sizeof(sid));
    if (!sid[0]) return;
    sbuf b = {0};
    remember_result(ev, sid, project, result, &b);
    if (b.len) {
        ev_buf *e = evb_from(&b);
        broadcast(srv, project, FMT_DS, e);
        evb_release(e);
    }
    free(b.p);
}

static void render_timer_cb(h2o_timeout_entry_t *entry)
{
    struct web_events *ev = H2O_STRUCT_FROM_MEMBER(struct web_events, render_entry, entry);
    sbuf b = {0};
    if (ev->nodes_dirty) render_nodes(ev->srv, &b, 0);
    if (ev->services_dirty) render_services(ev->srv, &b);
    ev->nodes_dirty = ev->services_dirty = 0;
    if (b.len) {
        ev_buf *e = evb_from(&b);
        broadcast(ev->srv, NULL, FMT_DS, e);
        evb_release(e);
    }
    free(b.p);
}

static void schedule_render(struct web_events *ev)
{
    if (!h2o_timeout_is_linked(&ev->render_entry) && !ev->srv->shutting_down)
        h2o_timeout_link(ev->srv->ctx.loop, &ev->render, &ev->render_entry);
}

void events_nodes_changed(web_server *srv)
{
    if (!srv->events) return;
    srv->events->nodes_dirty = 1;
    schedule_render(srv->events);
}

void events_services_changed(web_server *srv)
{
    if (!srv->events) return;
    srv->events->services_dirty = 1;
    schedule_render(srv->events);
}

static void hb_cb(h2o_timeout_entry_t *entry)
{
    struct web_events *ev = H2O_STRUCT_FROM_MEMBER(struct web_events, hb_entry, entry);
    uint64_t now = web_now_ms(ev->srv);
    for (h2o_linklist_t *l = ev->clients.next; l != &ev->clients;) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, link, l);
        l = l->next;
        if (!c->sending && now - c->last_send_ms >= (uint64_t)ev->srv->conf->events_heartbeat_ms / 2) {
            c->want_hb = 1;
            client_flush(c);
        }
    }
    if (!ev->srv->shutting_down) h2o_timeout_link(ev->srv->ctx.loop, &ev->hb, &ev->hb_entry);
}

/* The banner a NATS outage shows on every page (web keeps serving; live updates and runs wait). */
static void render_bus_banner(sbuf *b, int up)
{
    if (up)
        ds_fragments(b, NULL, NULL, "<div id=\"bus-banner\" class=\"banner\" hidden></div>");
    else
        ds_fragments(
            b, NULL, NULL,
            "<div id=\"bus-banner\" class=\"banner\" role=\"alert\">The message bus (NATS) is "
            "unreachable: live updates and task runs wait until it is back. Reconnecting&hellip;</div>");
}

static ev_buf *reauth_event(void)
{
    sbuf b = {0};
    sb_puts(&b, "event: xtask-reauth\ndata: {}\n\n");
    ev_buf *e = evb_from(&b);
    free(b.p);
    return e;
}

/* Every second: tell the pages when NATS goes or comes back, and end the streams whose time is up.
 * An ended stream is reopened by the page at once (event xtask-reauth); the new request goes
 * through forward-auth, so a session that expired or was logged out ends there (401) instead of
 * streaming on. */
static void tick_cb(h2o_timeout_entry_t *entry)
{
    struct web_events *ev = H2O_STRUCT_FROM_MEMBER(struct web_events, tick_entry, entry);
    web_server *srv = ev->srv;
    int up = bus_connected(srv);
    if (up != ev->nats_up) {
        if (ev->nats_up != -1)
            xt_info("events: NATS %s: telling %zu pages", up ? "back" : "lost", ev->nclients);
        ev->nats_up = up;
        sbuf b = {0};
        render_bus_banner(&b, up);
        ev_buf *e = evb_from(&b);
        free(b.p);
        broadcast(srv, NULL, FMT_DS, e);
        evb_release(e);
    }
    uint64_t now = web_now_ms(srv);
    ev_buf *bye = NULL;
    for (h2o_linklist_t *l = ev->clients.next; l != &ev->clients;) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, link, l);
        l = l->next;
        if (now < c->end_ms || c->closing || c->finished) continue;
        if (!bye) bye = reauth_event();
        client_end(c, bye);
    }
    evb_release(bye);
    if (!srv->shutting_down) h2o_timeout_link(srv->ctx.loop, &ev->tick, &ev->tick_entry);
}

/* --- the handler ------------------------------------------------------------------------ */

static int valid_project(const char *p)
{
    if (!*p) return 0;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return 0;
    return 1;
}

/* A request header's value (bounded, NUL-terminated; "" when absent or holding control bytes). */
static void header_str(h2o_req_t *req, const char *lcname, char *out, size_t outlen)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lcname, strlen(lcname), -1);
    out[0] = 0;
    if (i < 0 || req->headers.entries[i].value.len >= outlen) return;
    memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    out[req->headers.entries[i].value.len] = 0;
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            out[0] = 0;
            return;
        }
}

int events_on_req(web_server *srv, h2o_req_t *req)
{
    struct web_events *ev = srv->events;
    char project[WEB_PROJECT_MAX + 1], fmt[16] = "";
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        api_send_error(req, 405, "Method Not Allowed", "method_not_allowed", "use GET");
        return 0;
    }
    long n = xt_query_get(q, qlen, "project", project, sizeof(project));
    if (n == -1)
        snprintf(project, sizeof(project), "%s", srv->conf->default_project);
    else if (n < 0 || !valid_project(project)) {
        api_send_error(req, 400, "Bad Request", "bad_request", "project: 1-64 of [A-Za-z0-9_-]");
        return 0;
    }
    char user[129], groups[1024];
    header_str(req, "remote-user", user, sizeof(user));
    header_str(req, "remote-groups", groups, sizeof(groups));
    if (!web_project_allowed(srv->conf, user, groups, project)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "user '%s' may not see project '%s' (api.projects)", user, project);
        xt_info("events: %s", msg);
        api_send_error(req, 403, "Forbidden", "forbidden", msg);
        return 0;
    }
    if (xt_query_get(q, qlen, "format", fmt, sizeof(fmt)) >= 0 && strcmp(fmt, "json") != 0 &&
        strcmp(fmt, "datastar") != 0) {
        api_send_error(req, 400, "Bad Request", "bad_request", "format: json or datastar");
        return 0;
    }
    if (srv->shutting_down || atomic_load(&streams_total) >= (long)srv->conf->events_max_clients) {
        api_send_error(req, 503, "Service Unavailable", "busy", "too many event streams");
        return 0;
    }
    sse_client *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), client_dispose);
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->req = req;
    c->fmt = strcmp(fmt, "json") == 0 ? FMT_JSON : FMT_DS;
    snprintf(c->project, sizeof(c->project), "%s", project);
    /* spread over the last quarter of the interval: streams opened together (after a restart) do
     * not all come back to forward-auth in the same second */
    uint64_t span = (uint64_t)srv->conf->events_session_check_ms;
    c->end_ms = web_now_ms(srv) + span - (span / 4) * (((uintptr_t)c >> 4) % 101) / 100;
    c->cap = (size_t)srv->conf->events_queue;
    c->ring = calloc(c->cap, sizeof(*c->ring));
    c->gen.proceed = client_on_proceed;
    c->gen.stop = client_on_stop;
    h2o_linklist_insert(&ev->clients, &c->link);
    c->linked = 1;
    ev->nclients++;
    ev->nfmt[c->fmt]++;
    atomic_fetch_add(&streams_total, 1);

    /* HTTP/1.1: a small kernel send buffer per stream bounds what a client that stops reading pins in
     * the kernel, and makes it show up in its own queue sooner (HTTP/2 shares the socket: left alone) */
    if (req->version < 0x200 && srv->conf->events_sndbuf > 0 && req->conn->callbacks->get_socket) {
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        int sz = (int)srv->conf->events_sndbuf;
        if (sock) setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    h2o_start_response(req, &c->gen);

    /* the first write: who is logged in, and the current state of the page */
    sbuf b = {0};
    if (c->fmt == FMT_DS) {
        ssize_t ui = h2o_find_header_by_str(&req->headers, H2O_STRLIT("remote-user"), -1);
        json_t *sig = json_object();
        json_object_set_new(
            sig, "user",
            ui >= 0 ? json_stringn(req->headers.entries[ui].value.base, req->headers.entries[ui].value.len)
                    : json_string(""));
        json_object_set_new(sig, "project", json_string(project));
        json_object_set_new(sig, "connected", json_true());
        {
            /* admins (whom api.rules allow audit.read) get the link to NATS monitoring (/nats/, which
             * the auth rules open to admins only) */
            int rule;
            json_object_set_new(
                sig, "isAdmin",
                json_boolean(web_rules_allow(srv->conf, user, groups, "audit.read", NULL, &rule)));
        }
        char *s = json_dumps(sig, JSON_COMPACT);
        /* for the page's stream client (gui/app.js): how often it hears from us at least */
        sb_printf(&b, "event: xtask-hello\ndata: {\"heartbeat_ms\":%lld,\"session_check_ms\":%lld}\n\n",
                  (long long)srv->conf->events_heartbeat_ms, (long long)srv->conf->events_session_check_ms);
        ds_signals(&b, s);
        free(s);
        json_decref(sig);
        render_bus_banner(&b, bus_connected(srv));
        if (srv->conf->nprojects) { /* the projects this user may open (the selector's choices) */
            sbuf f = {0};
            sb_puts(&f, "<datalist id=\"project-list\">");
            for (size_t i = 0; i < srv->conf->nprojects; i++)
                if (web_project_allowed(srv->conf, user, groups, srv->conf->projects[i].name)) {
                    sb_puts(&f, "<option value=\"");
                    sb_esc(&f, srv->conf->projects[i].name);
                    sb_puts(&f, "\"></option>");
                }
            sb_puts(&f, "</datalist>");
            ds_fragments(&b, NULL, NULL, f.p);
            free(f.p);
        }
        render_nodes(srv, &b, 1);
        render_services(srv, &b);
        sbuf f = {0};
        sb_puts(&f, "<ul id=\"results\">");
        for (size_t i = 0; i < RECENT_RESULTS; i++)
            if (ev->recent[i] && strcmp(ev->recent_project[i], project) == 0)
                sb_put(&f, ev->recent[i]->data, ev->recent[i]->len);
        sb_puts(&f, "</ul>");
        ds_fragments(&b, NULL, NULL, f.p);
        /* the project's task blocks, newest first, with their output so far: a reloaded page
         * re-attaches to running tasks */
        f.len = 0;
        sb_puts(&f, "<div id=\"tasks\">");
        for (uint64_t last = UINT64_MAX;;) {
            task_rec *best = NULL;
            for (size_t i = 0; i < TASKS_KEPT; i++) {
                task_rec *t = &ev->tasks[i];
                if (t->sid[0] && t->seq < last && strcmp(t->project, project) == 0 &&
                    (!best || t->seq > best->seq))
                    best = t;
            }
            if (!best) break;
            task_block_html(best, &f);
            last = best->seq;
        }
        sb_puts(&f, "</div>");
        ds_fragments(&b, NULL, NULL, f.p);
        free(f.p);
    } else {
        sb_printf(&b, "event: hello\ndata: {\"project\":\"%s\"}\n\n", project);
    }
    ev_buf *e = evb_from(&b);
    free(b.p);
    if (e) {
        client_push(c, e);
        evb_release(e);
    }
    client_flush(c);
    return 0;
}

int events_init(web_server *srv)
{
    struct web_events *ev = calloc(1, sizeof(*ev));
    if (!ev) return -1;
    srv->events = ev;
    ev->srv = srv;
    h2o_linklist_init_anchor(&ev->clients);
    h2o_linklist_init_anchor(&ev->dirty);
    h2o_timeout_init(srv->ctx.loop, &ev->hb, (uint64_t)srv->conf->events_heartbeat_ms);
    ev->hb_entry.cb = hb_cb;
    h2o_timeout_link(srv->ctx.loop, &ev->hb, &ev->hb_entry);
    h2o_timeout_init(srv->ctx.loop, &ev->render, 200);
    ev->render_entry.cb = render_timer_cb;
    ev->nats_up = -1;
    h2o_timeout_init(srv->ctx.loop, &ev->tick, TICK_MS);
    ev->tick_entry.cb = tick_cb;
    h2o_timeout_link(srv->ctx.loop, &ev->tick, &ev->tick_entry);
    ev->flush_entry.cb = flush_cb;
    return 0;
}

void events_close_all(web_server *srv)
{
    struct web_events *ev = srv->events;
    if (!ev) return;
    for (h2o_linklist_t *l = ev->clients.next; l != &ev->clients;) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, link, l);
        l = l->next;
        c->closing = 1;
        if (!c->sending && !c->finished) {
            c->finished = 1;
            h2o_send(c->req, NULL, 0, H2O_SEND_STATE_FINAL);
        }
    }
}

size_t events_nclients(web_server *srv)
{
    long n = atomic_load(&streams_total);
    return n > 0 ? (size_t)n : 0;
}

void events_dispose(web_server *srv)
{
    struct web_events *ev = srv->events;
    if (!ev) return;
    if (h2o_timeout_is_linked(&ev->hb_entry)) h2o_timeout_unlink(&ev->hb_entry);
    if (h2o_timeout_is_linked(&ev->render_entry)) h2o_timeout_unlink(&ev->render_entry);
    if (h2o_timeout_is_linked(&ev->flush_entry)) h2o_timeout_unlink(&ev->flush_entry);
    if (h2o_timeout_is_linked(&ev->tick_entry)) h2o_timeout_unlink(&ev->tick_entry);
    h2o_timeout_dispose(srv->ctx.loop, &ev->tick);
    for (size_t i = 0; i < TASKS_KEPT; i++) {
        free(ev->tasks[i].head.p);
        free(ev->tasks[i].out.p);
    }
    h2o_timeout_dispose(srv->ctx.loop, &ev->hb);
    h2o_timeout_dispose(srv->ctx.loop, &ev->render);
    for (size_t i = 0; i < RECENT_RESULTS; i++)
        evb_release(ev->recent[i]);
    free(ev->picker);
    /* clients still linked belong to requests h2o has not disposed; detach them */
    while (!h2o_linklist_is_empty(&ev->dirty))
        h2o_linklist_unlink(ev->dirty.next);
    while (!h2o_linklist_is_empty(&ev->clients)) {
        sse_client *c = H2O_STRUCT_FROM_MEMBER(sse_client, link, ev->clients.next);
        h2o_linklist_unlink(&c->link);
        c->linked = 0;
    }
    free(ev);
    srv->events = NULL;
}
