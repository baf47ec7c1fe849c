/*
 * bus_roles: what each identity of the bus may do, as the `nats` permission part of its user JWT.
 *
 * One table for every identity `xtask-bus` mints (docs/SECURITY.md, "The bus", documents it). The
 * result is merged into the user JWT's `nats` claims by xt_jwt_user_claims:
 *   {"pub": {"allow": [...], "deny": [...]}, "sub": {"allow": [...], "deny": [...]},
 *    "resp": {"max": N, "ttl": nanoseconds}}      (every part optional; absent = nothing allowed,
 *                                                  the account's default_permissions are empty)
 * Roles of the XTASK account: admin (full rights in XTASK), and node, web, auth, platform (bus4).
 * Role of the SYS account: sys (claim updates, server monitoring).
 */
#ifndef BUS_ROLES_H
#define BUS_ROLES_H

#include <jansson.h>
#include <stddef.h>

/* The permissions of `role` for identity `id` (e.g. a node id; may be used in subjects) with the
 * capabilities caps[0..ncaps) (a node's verbs; other roles ignore them). Returns a new reference,
 * or NULL with err naming the problem (unknown role, bad id or capability). */
json_t *bus_roles_permissions(const char *role, const char *id, const char *const *caps, size_t ncaps,
                              char *err, size_t errlen);

/* The account a role's users belong to: "SYS" for sys, "XTASK" for the others; NULL if unknown. */
const char *bus_roles_account(const char *role);

/* The identities `xtask-bus init` mints a .creds file for, in order: creds/<file>.creds (a stable
 * path the services' configs name), JWT name `name` where "{id}" stands for the local node id
 * (--node-id, XTASK_NODE_ID, ...; e.g. "node-{id}"), permissions of `role` for that node id. */
/* The shipped configs name these files (configs/services.yaml, xtask.yaml, web.yaml, auth.yml, under
 * $XTASK_BUS_DIR/creds/): node.creds (the region's coordinator, `xtask --nats-mode`), web.creds
 * (xtask-web), auth.creds (xtask-auth), cli.creds (the manifest's `xtask ping` probe and a shell on the
 * machine: XTASK_NATS_CREDS), sys.creds (`xtask-bus user revoke --server`), admin.creds (operators). */
typedef struct bus_identity {
    const char *file;
    const char *name;
    const char *role;
} bus_identity;

const bus_identity *bus_roles_platform_identities(size_t *n);

#endif
