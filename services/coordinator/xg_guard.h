/*
 * xg_guard: where got.download may connect (server-side request forgery guard).
 *
 * A node's network position is worth more than its download: its loopback (nats-server's
 * monitoring page, the supervisor's status port), the machine's link-local metadata service, the
 * organisation's private network (Fly's 6PN, fdaa::/16). got.download therefore refuses every
 * address that is not public unicast, in every spelling (IPv4-mapped, -compatible, NAT64 and 6to4
 * forms are judged by the IPv4 address they carry), unless the node's configuration allowlists it
 * (download.allow_networks by CIDR, download.allow_hosts by name).
 *
 * A host is resolved once, here; every address it resolves to must pass; the transfer then connects
 * only to the addresses checked (xw_download pins them in libcurl and refuses any other socket), so a
 * DNS answer that changes between check and connect cannot redirect it.
 */
#ifndef XG_GUARD_H
#define XG_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

#define XG_ADDRS_MAX 16

/* A network: family AF_INET or AF_INET6, address in network byte order, prefix length. */
typedef struct {
    int family;
    unsigned char addr[16];
    unsigned prefix;
} xg_net;

/* An address as resolved: family and bytes (4 or 16). */
typedef struct {
    int family;
    unsigned char addr[16];
} xg_addr;

/* What a download may reach beyond the public Internet. Borrowed pointers. */
typedef struct {
    char *const *hosts; /* NULL-terminated host names (case-insensitive, trailing dot ignored); may be NULL */
    const xg_net *nets;
    size_t nnets;
} xg_allow;

/* Parse "10.0.0.0/8", "fdaa::/16" or a single address ("127.0.0.1" = /32, "::1" = /128). The host
 * bits must be zero. 0, or -1 with a message in err. */
int xg_net_parse(const char *s, xg_net *out, char *err, size_t errlen);

/* Why `a` is not a public unicast address ("loopback", "private (RFC 1918)", "cloud metadata",
 * "Fly 6PN private network", "IPv4-mapped loopback", ...) written into buf (which is returned), or
 * NULL when it is public. */
const char *xg_addr_refused(const xg_addr *a, char *buf, size_t buflen);

/* 1 if `a` lies in `n` (an IPv4 network also matches the IPv4-mapped form of its addresses). */
int xg_net_contains(const xg_net *n, const xg_addr *a);

/* Fill `a` from a sockaddr (AF_INET / AF_INET6). 0, or -1 for another family. */
int xg_addr_from_sockaddr(const struct sockaddr *sa, xg_addr *a);

/* Text of `a` ("127.0.0.1", "::1") into out. */
void xg_addr_format(const xg_addr *a, char *out, size_t outlen);

/* Resolve `host` (a name or an address literal, IPv6 with or without brackets) once and check every
 * address against the policy. 0 with up to XG_ADDRS_MAX addresses in out/n, or -1 with a message in
 * err naming the host, the address and why it was refused. */
int xg_resolve_checked(const char *host, const xg_allow *allow, xg_addr *out, size_t *n, char *err,
                       size_t errlen);

#endif
