/*
 * xo_output: bounded capture of a task's output.
 *
 * Two bounds, one pass: a tail ring keeps the last `tail_cap` bytes (for the task.run reply), and a
 * linear buffer keeps the first `full_cap` bytes (for the stored result). Bytes beyond full_cap are
 * counted and dropped. A line splitter cuts the stream into lines of at most XO_LINE_MAX bytes for
 * the live output (longer lines are emitted in pieces).
 * Not thread-safe: one task, one thread.
 */
#ifndef XO_OUTPUT_H
#define XO_OUTPUT_H

#include <stddef.h>

#define XO_LINE_MAX 4096

typedef struct {
    char *ring; /* tail_cap bytes */
    size_t tail_cap, ring_start, ring_len;
    char *full; /* full_cap bytes */
    size_t full_cap, full_len;
    size_t total;   /* every byte seen */
    size_t dropped; /* bytes not kept in `full` */
} xo_output;

/* Allocate both buffers (tail_cap >= 1; full_cap may be 0). 0, or -1 on ENOMEM. */
int xo_output_init(xo_output *o, size_t tail_cap, size_t full_cap);

/* Append n bytes. */
void xo_output_add(xo_output *o, const char *p, size_t n);

/* Copy the tail (oldest first) into a malloc'd buffer of *len bytes (+ NUL). Caller frees. */
char *xo_output_tail(const xo_output *o, size_t *len);

/* Free the buffers. Accepts a zeroed struct. */
void xo_output_free(xo_output *o);

/* Line splitter for one stream. */
typedef struct {
    char buf[XO_LINE_MAX];
    size_t len;
} xo_lines;

/* Feed n bytes; calls emit(line, len, ud) for every complete line (without '\n', '\r' trimmed) and
 * for every XO_LINE_MAX-byte piece of a longer line. */
typedef void (*xo_line_fn)(const char *line, size_t len, void *ud);
void xo_lines_feed(xo_lines *l, const char *p, size_t n, xo_line_fn emit, void *ud);

/* Emit what is left (an unterminated last line). */
void xo_lines_flush(xo_lines *l, xo_line_fn emit, void *ud);

#endif
