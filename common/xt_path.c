/*
 * xt_path: request path normalization shared by the front and the auth service (see xt_path.h).
 *
 * Two passes: the first decodes escapes of unreserved characters and canonicalizes every other
 * byte (so "%2e%2e" becomes ".." before dot segments are looked at, and no encoded slash can hide a
 * segment boundary: those are refused); the second resolves "//", "." and ".." over the segments.
 */
#include "xt_path.h"

#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* pchar minus '%' (RFC 3986): unreserved, sub-delims, ':' '@', plus '/' as separator. */
static int is_plain(int c)
{
    return is_unreserved(c) || strchr("!$&'()*+,;=:@/", c) != NULL;
}

static int put(char *out, size_t outlen, size_t *n, char c)
{
    if (*n + 1 >= outlen) return -1;
    out[(*n)++] = c;
    return 0;
}

static int put_escape(char *out, size_t outlen, size_t *n, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    if (put(out, outlen, n, '%') || put(out, outlen, n, hex[c >> 4]) || put(out, outlen, n, hex[c & 15]))
        return -1;
    return 0;
}

long xt_path_normalize(const char *in, size_t len, char *out, size_t outlen)
{
    size_t qpos = len, n = 0;
    const char *q = memchr(in, '?', len);
    if (q != NULL) qpos = (size_t)(q - in);
    if (outlen == 0 || qpos == 0 || in[0] != '/') return -1;

    /* pass 1: canonical bytes into out */
    for (size_t i = 0; i < qpos; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int h, l;
            if (i + 2 >= qpos) return -1;
            h = hexval((unsigned char)in[i + 1]);
            l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (unsigned char)(h << 4 | l);
            i += 2;
            if (c == 0 || c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return -1;
            if (is_unreserved(c)) {
                if (put(out, outlen, &n, (char)c)) return -1;
            } else if (put_escape(out, outlen, &n, c)) {
                return -1;
            }
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == '\\') return -1;
        if (is_plain(c)) {
            if (put(out, outlen, &n, (char)c)) return -1;
        } else if (put_escape(out, outlen, &n, c)) {
            return -1;
        }
    }

    /* pass 2: resolve segments in place (the result is never longer than pass 1's) */
    size_t r = 0, w = 0;
    int trailing = 0;
    while (r < n) {
        /* here out[r] == '/' */
        size_t s = r + 1, e = s;
        while (e < n && out[e] != '/')
            e++;
        size_t slen = e - s;
        /* ".;x" and "..;x" (also with ';' as %3B): servlet-style upstreams read them as "." and ".." */
        if (slen >= 2 && out[s] == '.') {
            size_t d = out[s + 1] == '.' ? 2 : 1;
            if (slen > d && (out[s + d] == ';' || (slen >= d + 3 && memcmp(out + s + d, "%3B", 3) == 0)))
                return -1;
        }
        if (slen == 0 || (slen == 1 && out[s] == '.')) {
            trailing = 1;
        } else if (slen == 2 && out[s] == '.' && out[s + 1] == '.') {
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0) w--; /* drop the '/' too */
            trailing = 1;
        } else {
            out[w++] = '/';
            memmove(out + w, out + s, slen);
            w += slen;
            trailing = 0;
        }
        r = e;
    }
    if (w == 0 || trailing) out[w++] = '/';

    /* the query, unchanged but for control bytes */
    for (size_t i = qpos; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f) return -1;
        if (w + 1 >= outlen) return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return (long)w;
}

long xt_url_decode(const char *in, size_t len, int plus_is_space, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (unsigned char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == 0) return -1; /* %00 or a raw NUL: out is a C string that a NUL would cut short */
        if (n + 1 >= outlen) return -1;
        out[n++] = (char)c;
    }
    if (outlen == 0) return -1;
    out[n] = '\0';
    return (long)n;
}

long xt_query_get(const char *query, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name), i = 0;
    while (i <= len) {
        size_t e = i;
        while (e < len && query[e] != '&')
            e++;
        const char *pair = query + i;
        size_t plen = e - i;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - pair) : plen;
        if (klen == nlen && memcmp(pair, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : pair + plen;
            long r = xt_url_decode(v, (size_t)(pair + plen - v), 1, out, outlen);
            return r < 0 ? -2 : r;
        }
        i = e + 1;
    }
    return -1;
}
