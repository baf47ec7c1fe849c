/* bus_roles: the permission table of the bus's identities (contract in bus_roles.h). */
#include "bus_roles.h"

#include <stdio.h>
#include <string.h>

/* One row per role: its account and the function that builds its permissions. */
typedef json_t *(*role_fn)(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen);

/* Full rights inside XTASK: the operators' CLI identity. Still confined to its account: SYS (claim
 * updates, server internals) stays out of reach. */
static json_t *role_admin(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    (void)id, (void)caps, (void)ncaps, (void)err, (void)errlen;
    return json_pack("{s{s[s]} s{s[s]}}", "pub", "allow", ">", "sub", "allow", ">");
}

/* The system account's user: pushes account JWTs ($SYS.REQ.CLAIMS.UPDATE) and reads server state. */
static json_t *role_sys(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    (void)id, (void)caps, (void)ncaps, (void)err, (void)errlen;
    return json_pack("{s{s[s]} s{s[s]}}", "pub", "allow", ">", "sub", "allow", ">");
}

static const struct {
    const char *role;
    const char *account;
    role_fn fn;
} roles[] = {
    {"admin", "XTASK", role_admin},
    {"sys", "SYS", role_sys},
};

/* Minted by `xtask-bus init` on every machine. */
static const bus_identity platform[] = {
    {"sys", "sys", "sys"},
    {"admin", "admin", "admin"},
};

json_t *bus_roles_permissions(const char *role, const char *id, const char *const *caps, size_t ncaps,
                              char *err, size_t errlen)
{
    for (size_t i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(roles[i].role, role) == 0) return roles[i].fn(id, caps, ncaps, err, errlen);
    snprintf(err, errlen, "unknown role '%s'", role ? role : "");
    return NULL;
}

const char *bus_roles_account(const char *role)
{
    for (size_t i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(roles[i].role, role) == 0) return roles[i].account;
    return NULL;
}

const bus_identity *bus_roles_platform_identities(size_t *n)
{
    *n = sizeof(platform) / sizeof(platform[0]);
    return platform;
}
