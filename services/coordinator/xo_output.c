/* xo_output: bounded output capture (see xo_output.h). */
#include "xo_output.h"

#include <stdlib.h>
#include <string.h>

int xo_output_init(xo_output *o, size_t tail_cap, size_t full_cap)
{
    memset(o, 0, sizeof *o);
    o->tail_cap = tail_cap ? tail_cap : 1;
    o->full_cap = full_cap;
    o->ring = malloc(o->tail_cap);
    o->full = full_cap ? malloc(full_cap) : NULL;
    if (!o->ring || (full_cap && !o->full)) {
        xo_output_free(o);
        return -1;
    }
    return 0;
}

void xo_output_add(xo_output *o, const char *p, size_t n)
{
    o->total += n;
    size_t room = o->full_cap - o->full_len;
    size_t keep = n < room ? n : room;
    if (keep) {
        memcpy(o->full + o->full_len, p, keep);
        o->full_len += keep;
    }
    o->dropped += n - keep;
    /* Only the last tail_cap bytes of p can survive in the ring. */
    if (n >= o->tail_cap) {
        memcpy(o->ring, p + (n - o->tail_cap), o->tail_cap);
        o->ring_start = 0;
        o->ring_len = o->tail_cap;
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t end = (o->ring_start + o->ring_len) % o->tail_cap;
        if (o->ring_len == o->tail_cap) { /* full: overwrite the oldest */
            size_t chunk = o->tail_cap - o->ring_start;
            if (chunk > n - i) chunk = n - i;
            memcpy(o->ring + o->ring_start, p + i, chunk);
            o->ring_start = (o->ring_start + chunk) % o->tail_cap;
            i += chunk;
        } else {
            size_t chunk = (end >= o->ring_start ? o->tail_cap - end : o->ring_start - end);
            if (chunk > n - i) chunk = n - i;
            if (chunk > o->tail_cap - o->ring_len) chunk = o->tail_cap - o->ring_len;
            memcpy(o->ring + end, p + i, chunk);
            o->ring_len += chunk;
            i += chunk;
        }
    }
}

char *xo_output_tail(const xo_output *o, size_t *len)
{
    char *s = malloc(o->ring_len + 1);
    if (!s) {
        *len = 0;
        return NULL;
    }
    size_t first = o->tail_cap - o->ring_start;
    if (first > o->ring_len) first = o->ring_len;
    memcpy(s, o->ring + o->ring_start, first);
    memcpy(s + first, o->ring, o->ring_len - first);
    s[o->ring_len] = '\0';
    *len = o->ring_len;
    return s;
}

void xo_output_free(xo_output *o)
{
    free(o->ring);
    free(o->full);
    o->ring = o->full = NULL;
}

static void emit_line(xo_lines *l, xo_line_fn emit, void *ud)
{
    size_t n = l->len;
    if (n > 0 && l->buf[n - 1] == '\r') n--;
    emit(l->buf, n, ud);
    l->len = 0;
}

void xo_lines_feed(xo_lines *l, const char *p, size_t n, xo_line_fn emit, void *ud)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            emit_line(l, emit, ud);
            continue;
        }
        if (l->len == sizeof l->buf) emit_line(l, emit, ud);
        l->buf[l->len++] = p[i];
    }
}

void xo_lines_flush(xo_lines *l, xo_line_fn emit, void *ud)
{
    if (l->len) emit_line(l, emit, ud);
}
