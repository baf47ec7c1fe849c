/*
 * auth_http: pure parsing of what a forward-auth request carries (cookies, Basic credentials,
 * Accept, hosts) and of redirect targets. No allocation; every output is bounded by the caller.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "xt_path.h"

long auth_cookie_get(const char *hdr, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), i = 0;
    while (i < len) {
        size_t ks, ke, vs, ve;
        while (i < len && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == ';'))
            i++;
        ks = i;
        while (i < len && hdr[i] != '=' && hdr[i] != ';')
            i++;
        ke = i;
        while (ke > ks && (hdr[ke - 1] == ' ' || hdr[ke - 1] == '\t'))
            ke--;
        if (i >= len || hdr[i] != '=') continue; /* a pair without '=': skip it */
        i++;
        while (i < len && (hdr[i] == ' ' || hdr[i] == '\t'))
            i++;
        vs = i;
        while (i < len && hdr[i] != ';')
            i++;
        ve = i;
        while (ve > vs && (hdr[ve - 1] == ' ' || hdr[ve - 1] == '\t'))
            ve--;
        if (ve - vs >= 2 && hdr[vs] == '"' && hdr[ve - 1] == '"') vs++, ve--;
        if (ke - ks == nl && memcmp(hdr + ks, name, nl) == 0) {
            if (ve - vs >= outlen) return -1;
            memcpy(out, hdr + vs, ve - vs);
            out[ve - vs] = '\0';
            return (long)(ve - vs);
        }
    }
    return -1;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static long b64_decode(const char *in, size_t len, char *out, size_t outlen)
{
    uint32_t buf = 0;
    int bits = 0;
    size_t i, o = 0;
    while (len > 0 && in[len - 1] == '=')
        len--;
    for (i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0) return -1;
        buf = (buf << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            if (o >= outlen) return -1;
            out[o++] = (char)((buf >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return (long)o;
}

int auth_basic_parse(const char *hdr, size_t len, char *user, size_t ulen, char *pw, size_t plen)
{
    char dec[AUTH_NAME_MAX + AUTH_PASSWORD_MAX + 2];
    long n;
    char *colon;
    size_t i = 0;
    if (len < 6 || strncasecmp(hdr, "basic ", 6) != 0) return -1;
    i = 6;
    while (i < len && hdr[i] == ' ')
        i++;
    while (len > i && hdr[len - 1] == ' ')
        len--;
    n = b64_decode(hdr + i, len - i, dec, sizeof(dec) - 1);
    if (n <= 0) return -1;
    dec[n] = '\0';
    if (memchr(dec, '\0', (size_t)n)) return -1;
    colon = strchr(dec, ':');
    if (!colon || colon == dec) return -1;
    *colon = '\0';
    if (strlen(dec) >= ulen || strlen(colon + 1) >= plen) return -1;
    memcpy(user, dec, strlen(dec) + 1);
    memcpy(pw, colon + 1, strlen(colon + 1) + 1);
    memset(dec, 0, sizeof(dec));
    return 0;
}

int auth_accepts_html(const char *accept, size_t len)
{
    size_t i = 0, idx = 0;
    while (i <= len) {
        size_t s = i, e;
        while (i < len && accept[i] != ',')
            i++;
        e = i;
        /* strip parameters and spaces */
        {
            size_t k;
            for (k = s; k < e; k++)
                if (accept[k] == ';') {
                    e = k;
                    break;
                }
        }
        while (s < e && (accept[s] == ' ' || accept[s] == '\t'))
            s++;
        while (e > s && (accept[e - 1] == ' ' || accept[e - 1] == '\t'))
            e--;
        if (e - s == 9 && memcmp(accept + s, "text/html", 9) == 0) return 1;
        if (idx == 0 && e - s == 3 && memcmp(accept + s, "*/*", 3) == 0) return 1;
        idx++;
        i++;
    }
    return 0;
}

long auth_host_normalize(const char *in, size_t len, char *out, size_t outlen)
{
    size_t i, hl = len;
    const char *colon = memchr(in, ':', len);
    if (colon) {
        size_t pl = len - (size_t)(colon - in) - 1;
        unsigned long port = 0;
        hl = (size_t)(colon - in);
        if (pl == 0 || pl > 5) return -1;
        for (i = 0; i < pl; i++) {
            char c = colon[1 + i];
            if (c < '0' || c > '9') return -1;
            port = port * 10 + (unsigned long)(c - '0');
        }
        if (port == 0 || port > 65535) return -1;
    }
    if (hl == 0 || hl >= outlen || hl > 253) return -1;
    for (i = 0; i < hl; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return -1;
        if (c == '.' && (i == 0 || out[i - 1] == '.')) return -1;
        out[i] = c;
    }
    if (out[hl - 1] == '.') return -1;
    out[hl] = '\0';
    return (long)hl;
}

int auth_host_under(const char *host, const char *domain)
{
    size_t hl = strlen(host), dl = strlen(domain);
    if (dl == 0) return 0;
    if (hl == dl) return strcmp(host, domain) == 0;
    return hl > dl + 1 && host[hl - dl - 1] == '.' && strcmp(host + hl - dl, domain) == 0;
}

int auth_rd_safe(const char *url, size_t len, const char *domain, int allow_http)
{
    size_t i, as, ae;
    char host[AUTH_HOST_MAX];

    if (len == 0 || len > AUTH_URL_MAX || memchr(url, '\0', len)) return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\') return 0;
    }
    if (len > 8 && memcmp(url, "https://", 8) == 0)
        as = 8;
    else if (allow_http && len > 7 && memcmp(url, "http://", 7) == 0)
        as = 7;
    else
        return 0;
    for (ae = as; ae < len && url[ae] != '/' && url[ae] != '?' && url[ae] != '#'; ae++)
        if (url[ae] == '@' || url[ae] == '%' || url[ae] == '[' || url[ae] == ']') return 0;
    if (ae == as) return 0;
    if (auth_host_normalize(url + as, ae - as, host, sizeof(host)) < 0) return 0;
    return auth_host_under(host, domain);
}

long auth_form_get(const char *body, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), i = 0;
    while (i < len) {
        size_t s = i, eq;
        while (i < len && body[i] != '&')
            i++;
        for (eq = s; eq < i && body[eq] != '='; eq++)
            ;
        if (eq - s == nl && memcmp(body + s, name, nl) == 0) {
            size_t vs = eq < i ? eq + 1 : i;
            long n = xt_url_decode(body + vs, i - vs, 1, out, outlen);
            return n < 0 ? -2 : n;
        }
        i++;
    }
    return -1;
}

long auth_url_encode(const char *in, size_t len, char *out, size_t outlen)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            if (o + 1 >= outlen) return -1;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outlen) return -1;
            out[o++] = '%';
            out[o++] = hx[c >> 4];
            out[o++] = hx[c & 15];
        }
    }
    if (o >= outlen) return -1;
    out[o] = '\0';
    return (long)o;
}
