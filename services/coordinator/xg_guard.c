/* xg_guard: where got.download may connect (see xg_guard.h). */
#include "xg_guard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Non-public IPv4 ranges, most specific first (the first match names the reason). */
static const struct {
    unsigned char net[4];
    unsigned prefix;
    const char *why;
} v4_table[] = {
    {{169, 254, 169, 254}, 32, "cloud metadata"},
    {{100, 100, 100, 200}, 32, "cloud metadata"},
    {{0, 0, 0, 0}, 8, "unspecified / this network"},
    {{10, 0, 0, 0}, 8, "private (RFC 1918)"},
    {{100, 64, 0, 0}, 10, "shared address space (CGNAT)"},
    {{127, 0, 0, 0}, 8, "loopback"},
    {{169, 254, 0, 0}, 16, "link-local"},
    {{172, 16, 0, 0}, 12, "private (RFC 1918)"},
    {{192, 0, 0, 0}, 24, "IETF protocol assignments"},
    {{192, 0, 2, 0}, 24, "documentation"},
    {{192, 88, 99, 0}, 24, "6to4 relay anycast"},
    {{192, 168, 0, 0}, 16, "private (RFC 1918)"},
    {{198, 18, 0, 0}, 15, "benchmarking"},
    {{198, 51, 100, 0}, 24, "documentation"},
    {{203, 0, 113, 0}, 24, "documentation"},
    {{224, 0, 0, 0}, 4, "multicast"},
    {{240, 0, 0, 0}, 4, "reserved / broadcast"},
};

/* Non-public IPv6 ranges, most specific first. `embed` >= 0: the range carries an IPv4 address at
 * that byte offset, which decides (a mapped public address is public, a mapped loopback is not). */
static const struct {
    unsigned char net[16];
    unsigned prefix;
    const char *why;
    int embed;
} v6_table[] = {
    {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02}, 128, "cloud metadata", -1},
    {{0xfd, 0xaa}, 16, "Fly 6PN private network", -1},
    {{0}, 128, "unspecified", -1},
    {{[15] = 1}, 128, "loopback", -1},
    {{[10] = 0xff, [11] = 0xff}, 96, "IPv4-mapped", 12},
    {{[8] = 0xff, [9] = 0xff}, 96, "IPv4-translated", 12},
    {{0x00, 0x64, 0xff, 0x9b}, 96, "NAT64", 12},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64", -1},
    {{0}, 96, "IPv4-compatible", 12},
    {{0x01, 0x00}, 64, "discard-only", -1},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation", -1},
    {{0x20, 0x01}, 32, "Teredo tunnel", -1},
    {{0x20, 0x02}, 16, "6to4", 2},
    {{0xfc}, 7, "unique local (ULA)", -1},
    {{0xfe, 0x80}, 10, "link-local", -1},
    {{0xfe, 0xc0}, 10, "site-local", -1},
    {{0xff}, 8, "multicast", -1},
};

static int prefix_match(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0) return 0;
    if (rest == 0) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const char *v4_refused(const unsigned char *a)
{
    const char *why = NULL;
    for (size_t i = 0; !why && i < sizeof v4_table / sizeof v4_table[0]; i++)
        if (prefix_match(a, v4_table[i].net, v4_table[i].prefix)) why = v4_table[i].why;
    return why;
}

const char *xg_addr_refused(const xg_addr *a, char *buf, size_t buflen)
{
    const char *why = NULL, *inner = NULL;
    if (a->family == AF_INET) {
        why = v4_refused(a->addr);
    } else if (a->family == AF_INET6) {
        for (size_t i = 0; !why && i < sizeof v6_table / sizeof v6_table[0]; i++) {
            if (!prefix_match(a->addr, v6_table[i].net, v6_table[i].prefix)) continue;
            if (v6_table[i].embed < 0) {
                why = v6_table[i].why;
            } else {
                inner = v4_refused(a->addr + v6_table[i].embed);
                if (!inner) break; /* a public IPv4 address in another spelling */
                why = v6_table[i].why;
            }
        }
    } else {
        why = "not an IP address";
    }
    if (!why) return NULL;
    if (inner)
        snprintf(buf, buflen, "%s %s", why, inner);
    else
        snprintf(buf, buflen, "%s", why);
    return buf;
}

int xg_net_contains(const xg_net *n, const xg_addr *a)
{
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (n->family == AF_INET && a->family == AF_INET) return prefix_match(a->addr, n->addr, n->prefix);
    if (n->family == AF_INET && a->family == AF_INET6 && memcmp(a->addr, mapped, 12) == 0)
        return prefix_match(a->addr + 12, n->addr, n->prefix);
    if (n->family == AF_INET6 && a->family == AF_INET6) return prefix_match(a->addr, n->addr, n->prefix);
    return 0;
}

int xg_net_parse(const char *s, xg_net *out, char *err, size_t errlen)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "'%s' is not a network (e.g. 10.0.0.0/8, fdaa::/16, 127.0.0.1)", s);
        goto out;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    /* inet_pton, not inet_aton: only the dotted-quad spelling of IPv4 (no octal or hex surprises). */
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6;
    else {
        snprintf(err, errlen, "'%s' is not a network (e.g. 10.0.0.0/8, fdaa::/16, 127.0.0.1)", s);
        goto out;
    }
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        char *end;
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "'%s': the prefix length after '/' must be a number", s);
            goto out;
        }
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v > max) {
            snprintf(err, errlen, "'%s': the prefix length must be 0-%u", s, max);
            goto out;
        }
        out->prefix = (unsigned)v;
    }
    for (unsigned bit = out->prefix; bit < max; bit++)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8))) {
            snprintf(err, errlen, "'%s' has host bits set after the /%u prefix", s, out->prefix);
            goto out;
        }
    rc = 0;
out:
    return rc;
}

int xg_addr_from_sockaddr(const struct sockaddr *sa, xg_addr *a)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        a->family = AF_INET;
        memcpy(a->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        a->family = AF_INET6;
        memcpy(a->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

void xg_addr_format(const xg_addr *a, char *out, size_t outlen)
{
    if (!inet_ntop(a->family, a->addr, out, (socklen_t)outlen)) snprintf(out, outlen, "?");
}

static int host_allowed(const char *host, char *const *hosts)
{
    size_t hl = strlen(host);
    if (hl && host[hl - 1] == '.') hl--;
    for (size_t i = 0; hosts && hosts[i]; i++) {
        size_t al = strlen(hosts[i]);
        if (al && hosts[i][al - 1] == '.') al--;
        if (al == hl && strncasecmp(host, hosts[i], hl) == 0) return 1;
    }
    return 0;
}

int xg_resolve_checked(const char *host, const xg_allow *allow, xg_addr *out, size_t *n, char *err,
                       size_t errlen)
{
    char name[256], text[INET6_ADDRSTRLEN], why[96];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    size_t hl = strlen(host);
    int rc = -1;
    *n = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* an IPv6 literal as URLs write it */
        host++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof name) {
        snprintf(err, errlen, "the URL's host is empty or too long");
        goto out;
    }
    memcpy(name, host, hl);
    name[hl] = '\0';
    int by_name = host_allowed(name, allow ? allow->hosts : NULL);
    int gai = getaddrinfo(name, NULL, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", name, gai_strerror(gai));
        goto out;
    }
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        xg_addr a;
        int dup = 0;
        if (xg_addr_from_sockaddr(ai->ai_addr, &a) != 0) continue;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = out[i].family == a.family && memcmp(out[i].addr, a.addr, 16) == 0;
        if (dup) continue;
        int allowed = by_name || !xg_addr_refused(&a, why, sizeof why);
        for (size_t i = 0; !allowed && allow && i < allow->nnets; i++)
            allowed = xg_net_contains(&allow->nets[i], &a);
        if (!allowed) {
            xg_addr_format(&a, text, sizeof text);
            if (strcmp(text, name) == 0)
                snprintf(err, errlen,
                         "%s is not a public address (%s): refused (download.allow_networks may allow it)",
                         text, why);
            else
                snprintf(err, errlen,
                         "'%s' resolves to %s, not a public address (%s): refused "
                         "(download.allow_networks or download.allow_hosts may allow it)",
                         name, text, why);
            *n = 0;
            goto out;
        }
        if (*n < XG_ADDRS_MAX) out[(*n)++] = a;
    }
    if (*n == 0) {
        snprintf(err, errlen, "'%s' has no IPv4 or IPv6 address", name);
        goto out;
    }
    rc = 0;
out:
    if (res) freeaddrinfo(res);
    return rc;
}
