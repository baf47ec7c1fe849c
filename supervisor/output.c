/*
 * output: services' stdout/stderr pipes -> lines -> the supervisor's stdout, never blocking.
 *
 * Each line goes three ways: the service's ring of last lines (for `logs`), `logs -f` followers,
 * and a bounded queue in front of the supervisor's stdout, which is non-blocking. When nobody reads
 * our stdout the queue fills and further lines are dropped with a per-service counter; the child
 * is never blocked because its pipe is always drained. When the queue empties again, one line per
 * service reports how many lines were lost.
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "xt_log.h"

static const char cut_marker[] = " [...line cut]";

/* --- line splitting (pure) ------------------------------------------------------------------ */

void linebuf_feed(sv_linebuf *lb, const char *p, size_t n, sv_line_fn fn, void *ud)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!lb->cutting && lb->len == 0 && nl != NULL && take <= SV_LINE_MAX) {
            /* a whole line in the caller's bytes: delivered from there, no copy */
            fn(ud, p, take > 0 && p[take - 1] == '\r' ? take - 1 : take, 0);
        } else if (lb->cutting) {
            /* the rest of a line already delivered cut */
            if (nl) lb->cutting = 0;
        } else {
            size_t room = SV_LINE_MAX - lb->len;
            if (take <= room) {
                memcpy(lb->buf + lb->len, p, take);
                lb->len += take;
                if (nl) {
                    size_t l = lb->len;
                    if (l > 0 && lb->buf[l - 1] == '\r') l--;
                    fn(ud, lb->buf, l, 0);
                    lb->len = 0;
                }
            } else {
                memcpy(lb->buf + lb->len, p, room);
                lb->len = SV_LINE_MAX;
                fn(ud, lb->buf, lb->len, 1);
                lb->len = 0;
                lb->cutting = nl == NULL;
            }
        }
        if (!nl) break;
        n -= take + 1;
        p = nl + 1;
    }
}

void linebuf_flush(sv_linebuf *lb, sv_line_fn fn, void *ud)
{
    if (lb->len > 0) fn(ud, lb->buf, lb->len, 0);
    lb->len = 0;
    lb->cutting = 0;
}

/* --- ring of last lines (pure) -------------------------------------------------------------- */

static void ring_drop_oldest(sv_ring *r)
{
    sv_line *old = r->lines[r->head];
    r->bytes -= strlen(old->text);
    free(old);
    r->lines[r->head] = NULL;
    r->head = (r->head + 1) % r->cap;
    r->count--;
}

/* Double the pointer array (up to SV_RING_LINES), oldest line first in the new one. */
static int ring_grow(sv_ring *r)
{
    size_t cap = r->cap ? r->cap * 2 : 4;
    if (cap > SV_RING_LINES) cap = SV_RING_LINES;
    sv_line **v = calloc(cap, sizeof(*v));
    if (v == NULL) return -1;
    for (size_t i = 0; i < r->count; i++)
        v[i] = r->lines[(r->head + i) % r->cap];
    free(r->lines);
    r->lines = v;
    r->cap = cap;
    r->head = 0;
    return 0;
}

int64_t sv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const sv_line *ring_push(sv_ring *r, const char *line, size_t len, int64_t at_ms, uint64_t seq)
{
    size_t max = r->max_bytes != 0 ? r->max_bytes : SV_RING_BYTES;
    if (len > max) len = max;
    while (r->count > 0 && (r->count == SV_RING_LINES || r->bytes + len > max))
        ring_drop_oldest(r);
    if (r->count == r->cap && ring_grow(r) != 0) return NULL;
    sv_line *copy = malloc(sizeof(*copy) + len + 1);
    if (copy == NULL) return NULL;
    copy->at_ms = at_ms;
    copy->seq = seq;
    memcpy(copy->text, line, len);
    copy->text[len] = '\0';
    r->lines[(r->head + r->count) % r->cap] = copy;
    r->count++;
    r->bytes += len;
    return copy;
}

const sv_line *ring_line(const sv_ring *r, size_t i)
{
    if (i >= r->count) return NULL;
    return r->lines[(r->head + i) % r->cap];
}

const char *ring_get(const sv_ring *r, size_t i)
{
    const sv_line *l = ring_line(r, i);
    return l != NULL ? l->text : NULL;
}

size_t ring_after(const sv_ring *r, uint64_t seq)
{
    size_t lo = 0, hi = r->count; /* seqs grow from the oldest line: binary search */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_line(r, mid)->seq > seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void ring_free(sv_ring *r)
{
    while (r->count > 0)
        ring_drop_oldest(r);
    free(r->lines);
    r->lines = NULL;
    r->cap = 0;
    r->head = 0;
}

/* --- the supervisor's stdout ---------------------------------------------------------------- */

static void out_report_drops(sv_ctx *sv);

static void out_flush(sv_ctx *sv)
{
    /* round 0 writes the queue; round 1 writes the drop reports queued once it was empty */
    for (int round = 0; round < 2; round++) {
        while (sv->outq.len > 0 && sv->out_fd >= 0) {
            ssize_t n = write(sv->out_fd, sv->outq.data, sv->outq.len);
            if (n > 0) {
                sv_buf_consume(&sv->outq, (size_t)n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                if (sv->out_pollable) loop_mod(sv, &sv->outw, EPOLLOUT);
                return;
            }
            /* EPIPE or worse: nobody will ever read; stop writing */
            sv->out_fd = -1;
            sv->outq.len = 0;
            return;
        }
        if (round == 0) out_report_drops(sv);
    }
    if (sv->out_pollable) loop_mod(sv, &sv->outw, 0);
}

static void out_writable(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    out_flush(sv);
}

int output_init(sv_ctx *sv, int fd, int json)
{
    sv->out_fd = fd;
    sv->out_json = json;
    sv_buf_init(&sv->outq, SV_OUTQ_MAX);
    sv->outw.fd = -1;
    sv->out_flags_saved = fcntl(fd, F_GETFL);
    sv->err_flags_saved = fcntl(2, F_GETFL);
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* epoll needs its own fd number to watch */
    if (dupfd >= 0 && loop_add(sv, &sv->outw, dupfd, 0, out_writable, NULL) == 0) {
        sv->out_pollable = 1;
        if (sv->out_flags_saved >= 0) fcntl(fd, F_SETFL, sv->out_flags_saved | O_NONBLOCK);
        /* our own log lines go to stderr: never let them block the loop either */
        if (sv->err_flags_saved >= 0) fcntl(2, F_SETFL, sv->err_flags_saved | O_NONBLOCK);
    } else {
        /* a regular file (epoll says EPERM): writes to it do not block */
        if (dupfd >= 0) close(dupfd);
        sv->out_pollable = 0;
    }
    return 0;
}

void output_finish(sv_ctx *sv)
{
    if (sv->out_fd >= 0 && sv->outq.len > 0) {
        ssize_t n = write(sv->out_fd, sv->outq.data, sv->outq.len);
        (void)n;
    }
    if (sv->out_pollable) {
        if (sv->out_flags_saved >= 0) fcntl(1, F_SETFL, sv->out_flags_saved);
        if (sv->err_flags_saved >= 0) fcntl(2, F_SETFL, sv->err_flags_saved);
    }
    loop_close(sv, &sv->outw);
    sv_buf_free(&sv->outq);
}

/* Format one line into the queue; all or nothing. */
static int out_format(sv_ctx *sv, const char *name, int stream, const char *line, size_t len, int cut)
{
    sv_buf *q = &sv->outq;
    size_t mark = q->len;
    int rc = 0;
    if (sv->out_json) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rc |= sv_buf_printf(q, "{\"ts_ms\":%lld,\"service\":\"%s\",\"stream\":\"%s\",\"line\":\"",
                            (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, name,
                            stream == 1   ? "stdout"
                            : stream == 2 ? "stderr"
                                          : "supervisor");
        rc |= sv_buf_json_str(q, line, len);
        if (cut) rc |= sv_buf_puts(q, cut_marker);
        rc |= sv_buf_puts(q, "\"}\n");
    } else {
        rc |= sv_buf_printf(q, "%-*s | ", (int)sv->name_width, name);
        rc |= sv_buf_append(q, line, len);
        if (cut) rc |= sv_buf_puts(q, cut_marker);
        rc |= sv_buf_puts(q, "\n");
    }
    if (rc != 0) {
        q->len = mark;
        return -1;
    }
    return 0;
}

static void out_report_drops(sv_ctx *sv)
{
    for (size_t i = 0; i < sv->nslots; i++) {
        svc *s = &sv->slots[i];
        if (!s->used || s->dropped == s->dropped_reported) continue;
        char msg[160];
        int n = snprintf(msg, sizeof(msg), "%s: %llu lines dropped (supervisor output not read fast enough)",
                         s->name, (unsigned long long)(s->dropped - s->dropped_reported));
        if (out_format(sv, "supervisor", 0, msg, (size_t)n, 0) < 0) return;
        s->dropped_reported = s->dropped;
    }
}

void output_line(sv_ctx *sv, svc *s, int stream, const char *line, size_t len)
{
    if (sv->out_fd < 0) return;
    if (sv->outq.len > 0 && sv->out_pollable) {
        /* already waiting for the reader: queue or drop */
        if (out_format(sv, s->name, stream, line, len, 0) < 0) s->dropped++;
        return;
    }
    if (out_format(sv, s->name, stream, line, len, 0) < 0) {
        s->dropped++;
        return;
    }
    out_flush(sv);
}

/* --- service pipes -------------------------------------------------------------------------- */

typedef struct {
    sv_ctx *sv;
    svc *s;
    int stream;
} line_ctx;

/* ready: {log: "regex"}: the first output line (stdout or stderr) that matches makes it READY. */
static void log_ready_check(sv_ctx *sv, svc *s, const char *line, size_t len)
{
    char text[SV_LINE_MAX + 1]; /* regexec wants a C string; a line has no NUL (cut at one) */
    const char *nul = memchr(line, '\0', len);
    if (nul != NULL) len = (size_t)(nul - line);
    memcpy(text, line, len);
    text[len] = '\0';
    if (regexec(s->def->ready.log_compiled, text, 0, NULL, 0) != 0) return;
    xt_debug("%s: ready (output line matches /%s/)", s->name, s->def->ready.log_re);
    snprintf(s->ready.msg, sizeof(s->ready.msg), "output line matched");
    s->ready.has_result = s->ready.ok = 1;
    s->ready.result_ms = sv_now_ms();
    svc_probe_result(sv, s, 0, 1);
}

static void on_line(void *ud, const char *line, size_t len, int cut)
{
    line_ctx *lc = ud;
    sv_ctx *sv = lc->sv;
    svc *s = lc->s;
    const sv_line *kept = ring_push(&s->ring, line, len, sv_wall_ms(), ++sv->line_seq);
    if (s->state == SVC_STARTING && s->def->ready.kind == PROBE_LOG && s->def->ready.log_compiled != NULL)
        log_ready_check(sv, s, line, len);
    if (kept != NULL) control_follow_line(sv, s, kept);
    if (sv->out_fd < 0) return;
    if (sv->outq.len > 0 && sv->out_pollable) {
        if (out_format(sv, s->name, lc->stream, line, len, cut) < 0) s->dropped++;
        return;
    }
    if (out_format(sv, s->name, lc->stream, line, len, cut) < 0)
        s->dropped++;
    else
        out_flush(sv);
}

static void pipe_readable(sv_ctx *sv, sv_watch *w, uint32_t events)
{
    svc *s = w->arg;
    int stream = w == &s->out[0] ? 1 : 2;
    line_ctx lc = {sv, s, stream};
    char buf[8192];
    /* bounded work per wake-up so one noisy child cannot starve the loop */
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n > 0) {
            linebuf_feed(&s->lb[stream - 1], buf, (size_t)n, on_line, &lc);
            if ((size_t)n < sizeof(buf)) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        /* EOF or error: every writer is gone */
        linebuf_flush(&s->lb[stream - 1], on_line, &lc);
        loop_close(sv, w);
        return;
    }
}

void output_attach(sv_ctx *sv, svc *s, int fd_out, int fd_err)
{
    int fds[2] = {fd_out, fd_err};
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0) continue;
        s->lb[i].len = 0;
        s->lb[i].cutting = 0;
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        if (loop_add(sv, &s->out[i], fds[i], EPOLLIN, pipe_readable, s) < 0) {
            xt_warn("%s: cannot watch output: %s", s->name, strerror(errno));
            close(fds[i]);
        }
    }
}

void output_detach(sv_ctx *sv, svc *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->out[i].fd < 0) continue;
        line_ctx lc = {sv, s, i + 1};
        /* take what is already in the pipe, then the partial line */
        char buf[8192];
        ssize_t n;
        int rounds = 0;
        while (rounds++ < 16 && (n = read(s->out[i].fd, buf, sizeof(buf))) > 0)
            linebuf_feed(&s->lb[i], buf, (size_t)n, on_line, &lc);
        linebuf_flush(&s->lb[i], on_line, &lc);
        loop_close(sv, &s->out[i]);
    }
}
