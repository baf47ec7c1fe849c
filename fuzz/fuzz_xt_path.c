/* common/xt_path.c: xt_path_normalize() (the one path the front, its routes and the auth rules see),
 * xt_url_decode() and xt_query_get(), with the properties their callers rely on. */
#include "fuzz.h"
#include "xt_path.h"

/* The path part of a normalized target: starts with '/', no "//", no "." or ".." segment, only
 * printable ASCII without '\' (escapes stay escaped). */
static void check_canonical(const char *p, size_t len)
{
    size_t plen = len;
    const char *q = memchr(p, '?', len);
    if (q != NULL) plen = (size_t)(q - p);
    if (plen == 0 || p[0] != '/') abort();
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\') abort();
        if (c != '/') continue;
        size_t e = i + 1;
        while (e < plen && p[e] != '/')
            e++;
        size_t slen = e - i - 1;
        if (slen == 0 && e < plen) abort(); /* "//" */
        if (slen == 1 && p[i + 1] == '.') abort();
        if (slen == 2 && p[i + 1] == '.' && p[i + 2] == '.') abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[4096], again[4096];
    const char *name, *query;
    size_t nlen, qlen;

    long n = xt_path_normalize((const char *)data, size, out, sizeof(out));
    if (n >= 0) {
        if ((size_t)n >= sizeof(out) || strlen(out) != (size_t)n) abort();
        check_canonical(out, (size_t)n);
        /* idempotent: what the front forwards normalizes to itself at the auth service */
        long m = xt_path_normalize(out, (size_t)n, again, sizeof(again));
        if (m != n || memcmp(out, again, (size_t)n) != 0) abort();
    }
    /* a tiny output buffer: refused or fits, never written past */
    char small[8];
    n = xt_path_normalize((const char *)data, size, small, sizeof(small));
    if (n >= (long)sizeof(small)) abort();

    for (int plus = 0; plus < 2; plus++) {
        n = xt_url_decode((const char *)data, size, plus, out, sizeof(out));
        if (n >= 0 && ((size_t)n > size || memchr(out, 0, (size_t)n) != NULL)) abort();
    }

    char *s = fz_split(data, size, &name, &nlen, &query, &qlen);
    n = xt_query_get(query, qlen, name, out, sizeof(out));
    if (n >= 0 && ((size_t)n > qlen || strlen(out) != (size_t)n)) abort();
    free(s);
    return 0;
}
