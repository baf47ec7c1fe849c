/*
 * buf: bounded growable byte buffers. An append that would pass `max` fails as a whole (nothing is
 * half-written) and counts in `dropped`: callers drop the data, they never grow without limit.
 */
#include "sv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void sv_buf_init(sv_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->dropped = 0;
}

static int buf_reserve(sv_buf *b, size_t n)
{
    if (b->len + n > b->max) {
        b->dropped++;
        return -1;
    }
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > b->max) cap = b->max;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->dropped++;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int sv_buf_append(sv_buf *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int sv_buf_puts(sv_buf *b, const char *s)
{
    return sv_buf_append(b, s, strlen(s));
}

int sv_buf_printf(sv_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n >= sizeof(tmp)) n = sizeof(tmp) - 1;
    return sv_buf_append(b, tmp, (size_t)n);
}

int sv_buf_json_str(sv_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t elen = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else {
            continue;
        }
        if (sv_buf_append(b, s + start, i - start) < 0 || sv_buf_append(b, esc, elen) < 0) return -1;
        start = i + 1;
    }
    return sv_buf_append(b, s + start, n - start);
}

void sv_buf_consume(sv_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

int sv_buf_send(sv_buf *b, int fd, int64_t *last_io_ms)
{
    while (b->len > 0) {
        ssize_t n = send(fd, b->data, b->len, MSG_NOSIGNAL);
        if (n > 0) {
            sv_buf_consume(b, (size_t)n);
            *last_io_ms = sv_now_ms();
        } else if (n < 0 && errno == EAGAIN) {
            return 0;
        } else if (!(n < 0 && errno == EINTR)) {
            return -1;
        }
    }
    return 1;
}

void sv_buf_free(sv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
