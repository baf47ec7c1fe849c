/* bus_roles: the permission table of the bus's identities (contract in bus_roles.h). */
#include "bus_roles.h"

#include <stdarg.h>
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

/* ---- the XTASK identities (bus4): subjects of docs/PROTOCOL.md, "Identity binding" ---------- */

#define ROLE_SUBJ_MAX 256
#define ROLE_RESP_TTL_NS (3600LL * 1000000000LL) /* a reply may come up to an hour after its request */

static const char *const stream_results = "xtask-results", *const stream_queue = "xtask-queue",
                         *const kv_nodes = "xtask_nodes", *const kv_sessions = "xtask_sessions",
                         *const stream_audit = "xtask-audit";

/* Verbs a node serves per capability: the broadcasts its identity may receive. */
static const struct {
    const char *cap, *verb;
} cap_verbs[] = {
    {"task", "task.run"},      {"which", "which.check"},     {"got", "got.download"},
    {"silent", "silent.exec"}, {"kill-port", "kill-port.*"},
};

/* Subjects that only nodes publish (each under its own name): nobody else may. */
static const char *const node_only[] = {"xtask.results.>",         "xtask.logs.>",
                                        "xtask.events.>",          "xtask.nodes.register.>",
                                        "xtask.nodes.heartbeat.>", "xtask.audit.>"};

/* Append one formatted subject to arr; -1 if it does not fit. */
static int add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add(json_t *arr, const char *fmt, ...)
{
    char s[ROLE_SUBJ_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s, sizeof(s), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(s)) return -1;
    return json_array_append_new(arr, json_string(s));
}

/* An id or capability that goes into a subject: one token of [A-Za-z0-9_-], 1-64 characters
 * (docs/PROTOCOL.md), so it can never widen a permission ("*", ">", ".") or break a subject. */
static int token_ok(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return 0;
    }
    return n >= 1 && n <= 64;
}

static json_t *perm(json_t *pub_allow, json_t *pub_deny, json_t *sub_allow, int resp)
{
    json_t *p = json_pack("{s{s:o} s{s:o}}", "pub", "allow", pub_allow, "sub", "allow", sub_allow);
    if (p && pub_deny) json_object_set_new(json_object_get(p, "pub"), "deny", pub_deny);
    if (p && resp)
        json_object_set_new(p, "resp", json_pack("{s:i s:I}", "max", 1, "ttl", (json_int_t)ROLE_RESP_TTL_NS));
    return p;
}

/* A node: its own subjects, the broadcasts of its capabilities, its queues; platform adds the admin
 * of the xtask streams (create/update/info, never delete or purge). */
static json_t *node_perms(const char *id, const char *const *caps, size_t ncaps, int platform, char *err,
                          size_t errlen)
{
    json_t *pub = json_array(), *sub = json_array();
    int bad = !pub || !sub;
    if (errlen) err[0] = '\0';
    if (!token_ok(id)) {
        snprintf(err, errlen, "node id '%s': 1-64 characters of A-Z a-z 0-9 _ -", id ? id : "");
        bad = 1;
    }
    for (size_t i = 0; !bad && i < ncaps; i++)
        if (!token_ok(caps[i])) {
            snprintf(err, errlen, "capability '%s': 1-64 characters of A-Z a-z 0-9 _ -",
                     caps[i] ? caps[i] : "");
            bad = 1;
        }
    if (!bad) {
        bad |= add(pub, "xtask.nodes.register.%s", id) | add(pub, "xtask.nodes.heartbeat.%s", id) |
               add(pub, "xtask.logs.%s", id) | add(pub, "xtask.events.*.%s.>", id) |
               add(pub, "xtask.results.%s.*", id) | add(pub, "$KV.%s.%s", kv_nodes, id) |
               add(pub, "xtask.audit.task.%s", id) | add(pub, "_R.%s.>", id) | add(pub, "_R.%s.web.>", id) |
               add(pub, "_R.%s.admin.>", id) |
               add(pub, "$JS.API.DIRECT.GET.%s.xtask.results.%s.>", stream_results, id);
        bad |= add(sub, "xtask.%s.>", id) | add(sub, "xtask.nodes.discover") |
               add(sub, "xtask.broadcast.ping") | add(sub, "_INBOX_node-%s.>", id);
    }
    for (size_t i = 0; !bad && !platform && i < ncaps; i++) {
        for (size_t v = 0; v < sizeof(cap_verbs) / sizeof(cap_verbs[0]); v++)
            if (strcmp(cap_verbs[v].cap, caps[i]) == 0)
                bad |= add(sub, "xtask.broadcast.%s", cap_verbs[v].verb);
        bad |= add(pub, "$JS.API.CONSUMER.INFO.%s.xtask-q-%s", stream_queue, caps[i]) |
               add(pub, "$JS.API.CONSUMER.MSG.NEXT.%s.xtask-q-%s", stream_queue, caps[i]) |
               add(pub, "$JS.ACK.%s.xtask-q-%s.>", stream_queue, caps[i]);
    }
    if (!bad && platform) {
        /* The region's coordinator (minted by `xtask-bus init`, without capabilities: its
         * configuration decides them): every verb's broadcast and every queue of the region. */
        for (size_t v = 0; v < sizeof(cap_verbs) / sizeof(cap_verbs[0]); v++)
            bad |= add(sub, "xtask.broadcast.%s", cap_verbs[v].verb);
        bad |=
            add(pub, "$JS.API.CONSUMER.MSG.NEXT.%s.*", stream_queue) | add(pub, "$JS.ACK.%s.>", stream_queue);
        const char *streams[] = {stream_results, stream_queue, "KV_xtask_nodes", stream_audit};
        for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
            bad |= add(pub, "$JS.API.STREAM.CREATE.%s", streams[i]) |
                   add(pub, "$JS.API.STREAM.UPDATE.%s", streams[i]) |
                   add(pub, "$JS.API.STREAM.INFO.%s", streams[i]);
        bad |= add(pub, "$JS.API.CONSUMER.DURABLE.CREATE.%s.*", stream_queue) |
               add(pub, "$JS.API.CONSUMER.CREATE.%s.>", stream_queue) |
               add(pub, "$JS.API.CONSUMER.INFO.%s.*", stream_queue);
    }
    if (bad) {
        if (!err[0]) snprintf(err, errlen, "permissions of node '%s': out of memory or subject too long", id);
        json_decref(pub);
        json_decref(sub);
        return NULL;
    }
    return perm(pub, NULL, sub, 1);
}

static json_t *role_node(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    return node_perms(id, caps, ncaps, 0, err, errlen);
}

/* An edge node (`xtask node add`): a node whose link is a leaf connection. The same rights as a node:
 * a leaf nats-server enforces only the publish allow list the hub sent it, without the JWT's response
 * permission (nats-server 2.9), and a node's replies go under _R.<its id>.>, in that list; the hub
 * tells the leaf of a requester's broadcast subscription _R.*.web.> only when its ReverseMatch finds
 * it among these subjects, hence _R.<id>.web.> and _R.<id>.admin.> by name (xt_nats.h). */
static json_t *role_edge(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    return node_perms(id, caps, ncaps, 0, err, errlen);
}

static json_t *role_platform(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    return node_perms(id, caps, ncaps, 1, err, errlen);
}

/* web and cli send verbs on behalf of people: never in a node's name, never the stream admin. */
static json_t *client_perms(const char *role, const char *id, int all_verbs, char *err, size_t errlen)
{
    static const char *const verbs[] = {"ping",         "task.run",    "which.check",
                                        "got.download", "silent.exec", "kill-port.*"};
    json_t *pub = json_array(), *deny = json_array(), *sub = json_array();
    int bad = !pub || !deny || !sub;
    if (errlen) err[0] = '\0';
    size_t nverbs = all_verbs ? sizeof(verbs) / sizeof(verbs[0]) : 2; /* cli: ping and task.run */
    if (!all_verbs && !token_ok(id)) {
        snprintf(err, errlen, "cli user '%s': 1-64 characters of A-Z a-z 0-9 _ -", id ? id : "");
        bad = 1;
    }
    for (size_t i = 0; !bad && i < nverbs; i++)
        bad |= add(pub, "xtask.*.%s", verbs[i]);
    if (!bad)
        /* STREAM.INFO of the node registry: `xtask nodes` stops waiting once as many nodes
         * answered as it holds (its state only: keys, not values, need a consumer) */
        bad |= add(pub, "xtask.nodes.discover") | add(pub, "xtask.queue.*") |
               add(pub, "$JS.API.STREAM.MSG.GET.%s", stream_results) |
               add(pub, "$JS.API.STREAM.INFO.KV_%s", kv_nodes) | add(sub, "xtask.logs.*");
    for (size_t i = 0; !bad && i < sizeof(node_only) / sizeof(node_only[0]); i++)
        bad |= add(deny, "%s", node_only[i]);
    if (!bad && all_verbs)
        bad |= add(sub, "_INBOX_%s.>", role) | add(sub, "_R.*.%s.>", role) | add(sub, "xtask.events.>") |
               add(sub, "xtask.nodes.heartbeat.*") | add(sub, "xtask.nodes.register.*");
    else if (!bad)
        bad |= add(sub, "_INBOX_cli-%s.>", id) | add(sub, "_R.*.cli-%s.>", id);
    if (bad) {
        if (!err[0]) snprintf(err, errlen, "permissions of %s: out of memory", role);
        json_decref(pub);
        json_decref(deny);
        json_decref(sub);
        return NULL;
    }
    return perm(pub, deny, sub, 0);
}

static json_t *role_web(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    (void)caps, (void)ncaps;
    return client_perms("web", id, 1, err, errlen);
}

static json_t *role_cli(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    (void)caps, (void)ncaps;
    return client_perms("cli", id, 0, err, errlen);
}

/* auth: the sessions bucket (its KV API only) and its own audit records. */
static json_t *role_auth(const char *id, const char *const *caps, size_t ncaps, char *err, size_t errlen)
{
    (void)id, (void)caps, (void)ncaps;
    const char *b = "KV_xtask_sessions";
    json_t *pub = json_array(), *sub = json_array();
    int bad = !pub || !sub;
    if (!bad)
        bad |= add(pub, "$KV.%s.>", kv_sessions) | add(pub, "$JS.API.STREAM.INFO.%s", b) |
               add(pub, "$JS.API.STREAM.CREATE.%s", b) | add(pub, "$JS.API.STREAM.UPDATE.%s", b) |
               add(pub, "$JS.API.CONSUMER.CREATE.%s", b) | add(pub, "$JS.API.CONSUMER.CREATE.%s.>", b) |
               add(pub, "$JS.API.CONSUMER.DELETE.%s.*", b) | add(pub, "$JS.API.DIRECT.GET.%s.>", b) |
               add(pub, "$JS.API.STREAM.MSG.GET.%s", b) | add(pub, "$JS.FC.%s.>", b) |
               add(pub, "xtask.audit.auth.*") | add(sub, "_INBOX_auth.>") |
               add(pub, "$JS.API.STREAM.NAMES"); /* nats.c's KV watcher finds its stream by subject */
    if (bad) {
        snprintf(err, errlen, "permissions of auth: out of memory");
        json_decref(pub);
        json_decref(sub);
        return NULL;
    }
    return perm(pub, NULL, sub, 0);
}

static const struct {
    const char *role;
    const char *account;
    role_fn fn;
} roles[] = {
    {"admin", "XTASK", role_admin},       {"sys", "SYS", role_sys},     {"node", "XTASK", role_node},
    {"platform", "XTASK", role_platform}, {"web", "XTASK", role_web},   {"auth", "XTASK", role_auth},
    {"cli", "XTASK", role_cli},           {"edge", "XTASK", role_edge},
};

/* Minted by `xtask-bus init` on every machine. */
static const bus_identity platform[] = {
    {"sys", "sys", "sys"},
    {"admin", "admin", "admin"},
    {"node", "node-{id}", "platform"}, /* the region's coordinator: its node id, the streams' admin */
    {"web", "web", "web"},
    {"auth", "auth", "auth"},
    {"cli", "cli-{id}", "cli"}, /* XTASK_NATS_INBOX_PREFIX=_INBOX_cli-<node id> */
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
