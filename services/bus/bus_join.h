/*
 * bus_join: an edge node's join bundle, the one secret `xtask node add` prints and `xtask join`
 * takes (docs/EDGE.md).
 *
 *   xtj1.<base64url of {"v":1,"join":<join JWT>,"creds":"<.creds text>","ca":"<CA PEM>"}>
 *
 * The join JWT is signed by the XTASK account key (the key that signs the node's user JWT) and
 * carries what the joining machine must trust: claims sub = the node's user public key, name = the
 * node id, exp = the credential's expiry, nats = {"type":"xtask-join","version":2,"node":..,
 * "caps":[..],"tags":[..],"hubs":["tls://host:7422",..],"ca_sha256":"<hex of the CA PEM>"}.
 * Parsing checks that the join JWT verifies, that its issuer signed the user JWT, that both name the
 * same user key, that the seed is that key's, and that the CA is the one named: an altered bundle
 * (node, capabilities, hubs, CA, credential) is refused before anything connects. Never in the
 * bundle: the operator or account seeds.
 */
#ifndef BUS_JOIN_H
#define BUS_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "xt_nkey.h"

#define BUS_JOIN_MAX_HUBS 16
#define BUS_JOIN_MAX_CAPS 32
#define BUS_JOIN_MAX_TAGS 16
#define BUS_JOIN_MAX 65536 /* bytes of bundle text */
#define BUS_JOIN_PREFIX "xtj1."

/* A parsed bundle. Every string is malloc'd and owned (free with bus_join_free). */
typedef struct bus_join {
    char *node;                    /* node id (its subjects, its inbox _INBOX_node-<id>) */
    char *caps[BUS_JOIN_MAX_CAPS]; /* capabilities as minted into its permissions */
    size_t ncaps;
    char *tags[BUS_JOIN_MAX_TAGS];
    size_t ntags;
    char *hubs[BUS_JOIN_MAX_HUBS]; /* leaf URLs of every region */
    size_t nhubs;
    char *ca;    /* PEM: verifies the hubs' leaf certificates */
    char *creds; /* the node's .creds text (secret) */
    char user_pub[XT_NKEY_PUBLIC_LEN + 1];
    char account_pub[XT_NKEY_PUBLIC_LEN + 1];
    int64_t exp; /* unix seconds, 0 = never */
} bus_join;

/* The bundle text for a minted node (malloc'd, a secret). account: the XTASK account key that
 * signed creds' JWT. Returns NULL with err. */
char *bus_join_encode(const xt_nkey *account, const char *node, const char *const *caps, size_t ncaps,
                      const char *const *tags, size_t ntags, const char *const *hubs, size_t nhubs,
                      const char *ca_pem, const char *creds, int64_t exp, char *err, size_t errlen);

/* Parse and verify `text` (surrounding white space ignored) as of `now` (unix seconds; an expired
 * bundle is refused, naming the expiry). Returns 0, or 2 with err naming what is wrong. */
int bus_join_parse(const char *text, int64_t now, bus_join *out, char *err, size_t errlen);

/* Free the strings (wiping the credential) and zero the struct. Accepts NULL. */
void bus_join_free(bus_join *j);

#endif
