/*
 * bus_ops: the operations of `xtask-bus` on a bus directory (layout below). Each returns 0, 1 for a
 * runtime failure or 2 for a usage/config error, with the message in err. No operation prints or
 * logs a seed, a password or a private key, except `export`, whose output is the secret bundle.
 *
 * DIR/operator.jwt            operator JWT (nats.conf `operator:`)
 * DIR/jwt/<account>.jwt       account JWTs: the full resolver's directory (nats.conf `resolver.dir`)
 * DIR/keys/{operator,SYS,XTASK}.nk   nkey seeds (0600)
 * DIR/keys/ca-key.pem         the CA's private key (only where the CA was created; not in the bundle)
 * DIR/route-password          route credential shared by the regions (0600)
 * DIR/tls/{ca.pem,server.pem,server-key.pem}   platform CA, leaf listener certificate and key
 * DIR/creds/<name>.creds      one per platform identity (0600)
 * DIR/users.json              the users minted here: name, role, public key, expiry, revocation
 * Directories 0700, files 0600.
 */
#ifndef BUS_OPS_H
#define BUS_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

#define BUS_MAX_DOMAINS 16
#define BUS_MAX_CAPS 32

typedef struct bus_opts {
    const char *dir;
    const char *domains[BUS_MAX_DOMAINS]; /* SANs of the leaf certificate (besides loopback) */
    size_t ndomains;
    const char *node_id;     /* id handed to the roles (the local node) */
    int64_t js_mem, js_disk; /* XTASK account JetStream limits, bytes */
    const char *bundle;      /* XTASK_BUS_BUNDLE: materialized by init when set */
    /* user add / revoke */
    const char *name, *role, *out;
    const char *caps[BUS_MAX_CAPS];
    size_t ncaps;
    int64_t expires_in; /* seconds, 0 = never */
    const char *server; /* revoke: push the account JWT to this nats URL */
    const char *creds;  /* revoke: the SYS user's creds (default DIR/creds/sys.creds) */
    int export_value;   /* export: the value only, without `fly secrets set` */
    /* node add (an edge node: role node, its join bundle) */
    const char *tags[BUS_MAX_CAPS];
    size_t ntags;
    const char *hubs[BUS_MAX_DOMAINS]; /* leaf URLs of every region, e.g. tls://xtask.fly.dev:7422 */
    size_t nhubs;
} bus_opts;

/* A credential lifetime, "90d" (s, m, h or d after a positive number) -> seconds; -1 if malformed
 * or too large. `xtask-bus user add --expires` and `xtask node add --expires` both take it. */
long long bus_ops_parse_duration(const char *s);

int bus_ops_init(const bus_opts *o, FILE *out, char *err, size_t errlen);
int bus_ops_user_add(const bus_opts *o, FILE *out, char *err, size_t errlen);
int bus_ops_user_revoke(const bus_opts *o, FILE *out, char *err, size_t errlen);
int bus_ops_show(const bus_opts *o, FILE *out, char *err, size_t errlen);
int bus_ops_export(const bus_opts *o, FILE *out, char *err, size_t errlen);

/* An edge node: mints o->name with role node and o->caps (o->expires_in), records its tags and hubs
 * in users.json, and returns its join bundle (bus_join.h; malloc'd, a secret) in *bundle. The
 * node's .creds exists only inside the bundle. Returns 0, 1 or 2 like the others. */
int bus_ops_node_add(const bus_opts *o, FILE *out, char **bundle, char *err, size_t errlen);

/* users.json of the directory (new reference; an empty object when there is none), or NULL. */
json_t *bus_ops_users(const bus_opts *o, char *err, size_t errlen);

/* The bus directory when none is given: $XTASK_BUS_DIR, else ${XTASK_DATA_DIR:-/data}/bus. */
const char *bus_ops_default_dir(char *buf, size_t len);

#endif
