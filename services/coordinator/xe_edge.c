/* xe_edge: `xtask node add|revoke|list` and `xtask join` (contract in xe_edge.h). */
#include "xe_edge.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus_join.h"
#include "bus_ops.h"
#include "bus_store.h"
#include "xc_conf.h"
#include "xk_client.h"
#include "xp_proto.h"
#include "xt_conf.h"
#include "xt_nats.h"

#define XE_BUNDLE_ENV "XTASK_JOIN_BUNDLE"
#define XE_DEFAULT_PORT 4242      /* the local leaf's client port (127.0.0.1 only) */
#define XE_DEFAULT_HTTP_PORT 8242 /* its monitoring port (127.0.0.1 only) */
#define XE_TASKS_MAX (256 * 1024) /* --tasks file */
#define XE_TAGS_MAX 16            /* tags announced in the node record */
#define XE_CHECK_MS 20000         /* how long join waits for the hub to accept the leaf */

/* Capabilities that are verbs of a node (node.capabilities); every other one is a queue of its own
 * (queue.capabilities: xtask.queue.<cap>, consumer xtask-q-<cap>). `task` stays a verb: the general
 * queue belongs to the regions' nodes unless the bundle says `queue-task`. */
static const char *const verb_caps[] = {"task", "which", "got", "silent", "kill-port"};

/* A bundle's hub entry is "[REGION=]URL": the URL part, and the region (else HOST:PORT) in label. */
static const char *hub_split(const char *h, char *label, size_t len)
{
    const char *eq = strchr(h, '='), *sep = strstr(h, "://");
    const char *url = eq && sep && eq < sep ? eq + 1 : h;
    if (url != h)
        snprintf(label, len, "%.*s", (int)(eq - h), h);
    else
        snprintf(label, len, "%s", sep ? sep + 3 : h);
    return url;
}

/* 1 for a WebSocket hub URL (ws://, wss://: the leaf link through the front, on 443). */
static int hub_is_ws(const char *url)
{
    return strncmp(url, "ws://", 5) == 0 || strncmp(url, "wss://", 6) == 0;
}

static int is_verb_cap(const char *c)
{
    for (size_t i = 0; i < sizeof(verb_caps) / sizeof(verb_caps[0]); i++)
        if (strcmp(verb_caps[i], c) == 0) return 1;
    return 0;
}

static int fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("xtask: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return rc;
}

/* Split a comma/space separated list (modified in place) into v. */
static void split_list(char *s, const char **v, size_t *n, size_t max)
{
    for (char *p = s; p && *p && *n < max;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, " ,");
        if (k == 0) break;
        v[(*n)++] = p;
        p += k;
        if (*p) *p++ = '\0';
    }
}

/* --- xtask node ... ---------------------------------------------------------------------------- */

/* The durable consumers of a node's queue capabilities, made with the admin credential: a node
 * identity may only bind to them (docs/SECURITY.md). Replicas follow the queue stream's. */
static int ensure_queue_consumers(const bus_opts *o, const char *server, int64_t ack_wait_ms)
{
    char creds[PATH_MAX], err[1024];
    int rc = 1;
    xt_nats_conf nc = {0};
    natsConnection *conn = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    size_t nq = 0;
    for (size_t i = 0; i < o->ncaps; i++)
        nq += !is_verb_cap(o->caps[i]);
    if (nq == 0) return 0;
    if (bus_store_path(creds, sizeof(creds), o->dir, "creds/admin.creds") != 0) return 1;
    xt_nats_params p = {.cli = 1,
                        .timeout_ms = 5000,
                        .name = "xtask-node-add",
                        .creds_where = "the admin credential (BUS_DIR/creds/admin.creds)"};
    if (xt_nats_conf_set(&nc, "url", server, "--server", err, sizeof(err)) != 0 ||
        xt_nats_conf_set(&nc, "creds", creds, "admin creds", err, sizeof(err)) != 0 ||
        xt_nats_connect(&nc, &p, &conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "xtask: queue consumers: %s\n", err);
        goto out;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    natsStatus st = natsConnection_JetStream(&js, conn, &jo);
    /* an account JWT just pushed (a revocation) reloads the account's JetStream for a moment */
    for (int tries = 0; st == NATS_OK && tries < 50; tries++) {
        jsErrCode jerr = 0;
        st = js_GetStreamInfo(&si, js, "xtask-queue", NULL, &jerr);
        if (st == NATS_OK || jerr == JSStreamNotFoundErr) break;
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
        st = NATS_OK;
    }
    if (si == NULL) {
        fprintf(stderr, "xtask: queue consumers: stream xtask-queue at %s: %s (a region's node creates it)\n",
                server, natsStatus_GetText(st));
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < o->ncaps; i++) {
        if (is_verb_cap(o->caps[i])) continue;
        char durable[96], filter[128];
        snprintf(durable, sizeof(durable), "xtask-q-%s", o->caps[i]);
        snprintf(filter, sizeof(filter), "xtask.queue.%s", o->caps[i]);
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = durable;
        cc.FilterSubject = filter;
        cc.AckPolicy = js_AckExplicit;
        cc.AckWait = ack_wait_ms * 1000000LL; /* the nodes' in-progress acks keep long tasks */
        cc.MaxDeliver = -1;
        cc.MaxAckPending = 1000;
        cc.Replicas = si->Config ? si->Config->Replicas : 1;
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        natsStatus ast = js_AddConsumer(&ci, js, "xtask-queue", &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        if (ast != NATS_OK && jerr != JSConsumerNameExistErr && jerr != JSConsumerExistingActiveErr) {
            fprintf(stderr, "xtask: consumer %s: %s (%d)\n", durable, natsStatus_GetText(ast), (int)jerr);
            rc = 1;
        } else {
            fprintf(stderr, "xtask: queue %s -> consumer %s ready\n", filter, durable);
        }
    }
out:
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(conn);
    xt_nats_conf_free(&nc);
    return rc;
}

static const char node_add_usage[] =
    "usage: xtask node add NAME [--capability C]... [--tag T]... [--expires DUR] [--hub tls://HOST:PORT]...\n"
    "                           [--bus-dir DIR] [--server URL] [--ack-wait DUR] [--out FILE]\n";
static const char node_revoke_usage[] = "usage: xtask node revoke NAME [--server URL] [--creds SYS_CREDS] "
                                        "[--bus-dir DIR]\n";
static const char node_list_usage[] = "usage: xtask node list [--bus-dir DIR] [--server URL] [--json]\n";

/* `sub` NULL: every subcommand. Help goes to stdout (asked for), a usage error to stderr. */
static void node_usage(FILE *to, const char *sub)
{
    int all = sub == NULL;
    if (all || strcmp(sub, "add") == 0) {
        fputs(node_add_usage, to);
        fputs(
            "  Mint an edge node in the bus directory; prints its join bundle (a secret; --out FILE: 0600).\n"
            "  Hubs default to $XTASK_HUB_URLS (comma-separated), else tls://$XTASK_DOMAIN:7422. A "
            "capability\n"
            "  other than task/which/got/silent/kill-port is a queue; --server creates its consumer there.\n",
            to);
    }
    if (all || strcmp(sub, "revoke") == 0) {
        fputs(node_revoke_usage, to);
        fputs("  Revoke the node's credential and push it through the region at --server: every region\n"
              "  drops its leaf within seconds and refuses it afterwards.\n",
              to);
    }
    if (all || strcmp(sub, "list") == 0) {
        fputs(node_list_usage, to);
        fputs("  The edge nodes of the bus directory; with --server, also the live record of each (online,\n"
              "  seconds since its last heartbeat, the region its leaf is attached to, version).\n",
              to);
    }
    if (all)
        fputs("--server defaults to $XTASK_NATS_URL (a region's client URL); --bus-dir to $XTASK_BUS_DIR.\n"
              "Details: docs/EDGE.md.\n",
              to);
}

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

/* The live part of `node list`: each node's record in KV xtask_nodes (present while the node
 * heartbeats; TTL nats.node_ttl), read with the admin credential at `server`. Adds "online",
 * "version", "region" and "seen_ms_ago" to each row; a failure to connect is reported and the rows
 * stay as the bus directory knows them. */
static void node_list_live(const bus_opts *o, const char *server, json_t *rows)
{
    char creds[PATH_MAX], err[1024];
    xt_nats_conf nc = {0};
    natsConnection *conn = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    if (bus_store_path(creds, sizeof(creds), o->dir, "creds/admin.creds") != 0) return;
    xt_nats_params p = {.cli = 1,
                        .timeout_ms = 3000,
                        .name = "xtask-node-list",
                        .creds_where = "the admin credential (BUS_DIR/creds/admin.creds)"};
    if (xt_nats_conf_set(&nc, "url", server, "--server", err, sizeof(err)) != 0 ||
        xt_nats_conf_set(&nc, "creds", creds, "admin creds", err, sizeof(err)) != 0 ||
        xt_nats_connect(&nc, &p, &conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "xtask: node list: live state unavailable: %s\n", err);
        goto out;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 3000;
    if (natsConnection_JetStream(&js, conn, &jo) != NATS_OK ||
        js_KeyValue(&kv, js, "xtask_nodes") != NATS_OK) {
        fprintf(stderr, "xtask: node list: KV xtask_nodes not found at %s\n", server);
        goto out;
    }
    size_t i;
    json_t *row;
    int64_t now = xp_now_ms();
    json_array_foreach(rows, i, row)
    {
        kvEntry *e = NULL;
        json_t *rec = NULL;
        if (kvStore_Get(&e, kv, json_string_value(json_object_get(row, "name"))) == NATS_OK)
            rec = json_loadb((const char *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
        json_object_set_new(row, "online", json_boolean(rec != NULL));
        if (rec) {
            json_object_set(row, "version", json_object_get(rec, "version"));
            json_object_set(row, "region", json_object_get(rec, "region"));
            json_object_set(row, "platform", json_object_get(rec, "platform"));
            json_int_t ts = json_integer_value(json_object_get(rec, "ts_ms"));
            json_object_set_new(row, "seen_ms_ago", json_integer(ts > 0 ? (json_int_t)(now - ts) : -1));
        }
        json_decref(rec);
        kvEntry_Destroy(e);
    }
out:
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(conn);
    xt_nats_conf_free(&nc);
}

static int node_list(const bus_opts *o, const char *server, int as_json)
{
    char err[1024];
    json_t *users = bus_ops_users(o, err, sizeof(err));
    if (users == NULL) return fail(1, "%s", err);
    json_t *arr = json_array();
    const char *name;
    json_t *u;
    json_object_foreach(users, name, u)
    {
        if (strcmp(json_string_value(json_object_get(u, "role")) ?: "", "edge") != 0) continue;
        json_int_t exp = json_integer_value(json_object_get(u, "exp"));
        json_int_t rv = json_integer_value(json_object_get(u, "revoked"));
        const char *status =
            rv > 0 ? "revoked" : (exp > 0 && exp <= (json_int_t)time(NULL) ? "expired" : "active");
        json_array_append_new(arr,
                              json_pack("{ss sO* sO* sO* sI ss}", "name", name, "caps",
                                        json_object_get(u, "caps"), "tags", json_object_get(u, "tags"),
                                        "hubs", json_object_get(u, "hubs"), "exp", exp, "status", status));
    }
    if (server) node_list_live(o, server, arr);
    if (as_json) {
        char *s = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", s ? s : "[]");
        free(s);
    } else {
        printf("%-24s %-8s %-30s %-20s %-20s %-16s %-10s %s\n", "NODE", "STATUS", "CAPABILITIES", "TAGS",
               "EXPIRES", "REGION", "VERSION", "SEEN");
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            char caps[256] = "", tags[256] = "", when[32] = "never";
            size_t k;
            json_t *c;
            json_array_foreach(json_object_get(e, "caps"), k, c) snprintf(
                caps + strlen(caps), sizeof(caps) - strlen(caps), "%s%s", k ? "," : "", json_string_value(c));
            json_array_foreach(json_object_get(e, "tags"), k, c) snprintf(
                tags + strlen(tags), sizeof(tags) - strlen(tags), "%s%s", k ? "," : "", json_string_value(c));
            json_int_t exp = json_integer_value(json_object_get(e, "exp"));
            if (exp > 0) {
                time_t t = (time_t)exp;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            }
            char seen[96] = "-";
            json_t *on = json_object_get(e, "online");
            const char *region = "-", *version = "-";
            if (json_is_true(on)) {
                snprintf(seen, sizeof(seen), "online, %.1fs ago",
                         (double)json_integer_value(json_object_get(e, "seen_ms_ago")) / 1000.0);
                region = json_string_value(json_object_get(e, "region")) ?: "?";
                version = json_string_value(json_object_get(e, "version")) ?: "?";
            } else if (json_is_false(on))
                snprintf(seen, sizeof(seen), "offline");
            printf("%-24s %-8s %-30s %-20s %-20s %-16s %-10s %s\n",
                   json_string_value(json_object_get(e, "name")),
                   json_string_value(json_object_get(e, "status")), caps[0] ? caps : "-",
                   tags[0] ? tags : "-", when, region, version, seen);
        }
    }
    json_decref(arr);
    json_decref(users);
    return 0;
}

int xe_node_main(int argc, char **argv)
{
    static char dirbuf[PATH_MAX], hubbuf[4096], credsbuf[PATH_MAX];
    bus_opts o = {0};
    const char *sub = argc > 1 ? argv[1] : NULL, *server = NULL, *out_path = NULL, *e;
    char err[1024] = "";
    int as_json = 0, rc = 2;
    int64_t ack_wait_ms = 30000;
    if (sub != NULL && is_help(sub)) {
        node_usage(stdout, NULL);
        return 0;
    }
    if (sub == NULL || (strcmp(sub, "add") != 0 && strcmp(sub, "revoke") != 0 && strcmp(sub, "list") != 0)) {
        node_usage(stderr, NULL);
        return sub ? fail(2, "node: unknown subcommand '%s'", sub) : 2;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            node_usage(stdout, sub);
            return 0;
        }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--json") != 0;
        if (a[0] == '-' && takes && v == NULL) return fail(2, "%s needs a value", a);
        if (strcmp(a, "--capability") == 0) {
            if (o.ncaps >= BUS_MAX_CAPS) return fail(2, "at most %d --capability", BUS_MAX_CAPS);
            o.caps[o.ncaps++] = v;
        } else if (strcmp(a, "--tag") == 0) {
            if (o.ntags >= BUS_MAX_CAPS) return fail(2, "at most %d --tag", BUS_MAX_CAPS);
            o.tags[o.ntags++] = v;
        } else if (strcmp(a, "--hub") == 0) {
            if (o.nhubs >= BUS_MAX_DOMAINS) return fail(2, "at most %d --hub", BUS_MAX_DOMAINS);
            o.hubs[o.nhubs++] = v;
        } else if (strcmp(a, "--expires") == 0) {
            long long s = bus_ops_parse_duration(v);
            if (s < 0) return fail(2, "--expires '%s': want a number with s/m/h/d (e.g. 90d)", v);
            o.expires_in = s;
        } else if (strcmp(a, "--ack-wait") == 0) {
            if (xt_duration_parse(v, &ack_wait_ms) != 0 || ack_wait_ms < 1000)
                return fail(2, "--ack-wait '%s': want a duration of at least 1s", v);
        } else if (strcmp(a, "--bus-dir") == 0) {
            o.dir = v;
        } else if (strcmp(a, "--server") == 0) {
            server = v;
        } else if (strcmp(a, "--creds") == 0) {
            o.creds = v;
        } else if (strcmp(a, "--out") == 0) {
            out_path = v;
        } else if (strcmp(a, "--json") == 0) {
            as_json = 1;
            continue;
        } else if (a[0] == '-') {
            node_usage(stderr, sub);
            return fail(2, "node %s: unknown option '%s'", sub, a);
        } else if (o.name == NULL) {
            o.name = a;
            continue;
        } else {
            return fail(2, "node %s: unexpected argument '%s'", sub, a);
        }
        i++;
    }
    if (o.dir == NULL) o.dir = bus_ops_default_dir(dirbuf, sizeof(dirbuf));
    if (server == NULL && (e = getenv("XTASK_NATS_URL")) && *e) server = e;
    if (strcmp(sub, "list") == 0)
        return o.name ? fail(2, "node list takes no name") : node_list(&o, server, as_json);
    if (o.name == NULL) return fail(2, "node %s: a node name is required", sub);
    if (!xp_token_valid(o.name) || xp_node_id_reserved(o.name))
        return fail(2, "node name '%s': 1-64 of A-Z a-z 0-9 _ - (and not nodes, queue, results, ...)",
                    o.name);
    if (strcmp(sub, "revoke") == 0) {
        o.server = server ? server : "nats://127.0.0.1:4222";
        if (o.creds == NULL && bus_store_path(credsbuf, sizeof(credsbuf), o.dir, "creds/sys.creds") == 0)
            o.creds = credsbuf;
        rc = bus_ops_user_revoke(&o, stderr, err, sizeof(err));
        if (rc != 0) return fail(rc, "node revoke %s: %s", o.name, err);
        fprintf(stderr, "xtask: node %s revoked: every region drops its leaf and refuses it from now on\n",
                o.name);
        return 0;
    }
    if (o.nhubs == 0 && (e = getenv("XTASK_HUB_URLS")) && *e && strlen(e) < sizeof(hubbuf)) {
        snprintf(hubbuf, sizeof(hubbuf), "%s", e);
        split_list(hubbuf, o.hubs, &o.nhubs, BUS_MAX_DOMAINS);
    }
    if (o.nhubs == 0 && (e = getenv("XTASK_DOMAIN")) && *e &&
        snprintf(hubbuf, sizeof(hubbuf), "tls://%s:7422", e) < (int)sizeof(hubbuf))
        o.hubs[o.nhubs++] = hubbuf;
    if (o.ncaps == 0) o.caps[o.ncaps++] = "task";
    char *bundle = NULL;
    rc = bus_ops_node_add(&o, stderr, &bundle, err, sizeof(err));
    if (rc != 0) return fail(rc, "node add %s: %s", o.name, err);
    if (out_path) {
        if (bus_store_write(out_path, bundle, strlen(bundle), 0600, err, sizeof(err)) != 0) {
            rc = fail(1, "%s", err);
            goto out;
        }
        fprintf(stderr,
                "xtask: node %s: join bundle written to %s (0600, a secret). On the machine:\n"
                "  xtask join %s\n",
                o.name, out_path, out_path);
    } else {
        printf("%s\n", bundle);
        fprintf(stderr,
                "xtask: node %s: the line above is its join bundle (a secret). On the machine:\n"
                "  xtask join '<bundle>'      or: XTASK_JOIN_BUNDLE='<bundle>' xtask join\n"
                "  docker run -e XTASK_JOIN_BUNDLE='<bundle>' IMAGE edge\n",
                o.name);
    }
    if (server)
        rc = ensure_queue_consumers(&o, server, ack_wait_ms);
    else
        for (size_t i = 0; i < o.ncaps; i++)
            if (!is_verb_cap(o.caps[i])) {
                fprintf(stderr,
                        "xtask: note: no --server: the queue consumer xtask-q-%s is not created here "
                        "(run with --server, or create it on a region)\n",
                        o.caps[i]);
                break;
            }
out:
    OPENSSL_cleanse(bundle, strlen(bundle));
    free(bundle);
    return rc;
}

/* --- xtask join ---------------------------------------------------------------------------------- */

typedef struct {
    const char *source; /* argument: bundle text, a file or "-" */
    const char *dir, *tasks, *region;
    int port, http_port;
    int64_t check_ms;
    int no_check, print_only;
    int ws;              /* the leaf dials the bundle's WebSocket hubs (--websocket, or the fallback) */
    char self[PATH_MAX]; /* this executable (xtask) */
    char sup[PATH_MAX];  /* xtask-supervisor */
    char nats[PATH_MAX]; /* nats-server */
    char password[64];   /* the local leaf's client password */
} join_ctx;

static void join_usage(FILE *to)
{
    fputs("usage: xtask join [BUNDLE | FILE | -] [--dir DIR] [--port N] [--http-port N] [--tasks FILE]\n"
          "                  [--region R] [--timeout DUR] [--websocket] [--no-check] [--print-only]\n"
          "The bundle comes from the argument (text, a file, or - for stdin), else $" XE_BUNDLE_ENV ".\n"
          "DIR: $XTASK_EDGE_DIR, else ${XTASK_DATA_DIR:-$HOME/.xtask}/edge. --tasks: a YAML file with the\n"
          "machine's own part of xtask.yaml (tasks:, taskfile:, silent:, which:, download:, kill_port:,\n"
          "task_env:, limits:). Runs a local leaf nats-server (127.0.0.1:N, TLS leaf link to every hub) and\n"
          "the node under xtask-supervisor until SIGTERM/SIGINT. --websocket: the leaf dials the bundle's\n"
          "wss:// hubs (the front, 443) instead of tls:// (7422); without it, join tries them when no\n"
          "tls:// hub answered within --timeout.\n",
          to);
}

/* Read the bundle: text, "-" (stdin), a file, or the environment. malloc'd, or NULL with err. */
static char *bundle_text(const char *src, char *err, size_t errlen)
{
    if (src == NULL) {
        const char *e = getenv(XE_BUNDLE_ENV);
        if (e == NULL || *e == '\0') {
            snprintf(err, errlen,
                     "no bundle: give it as an argument, a file, - (stdin) or in $" XE_BUNDLE_ENV);
            return NULL;
        }
        return strdup(e);
    }
    if (strncmp(src, BUS_JOIN_PREFIX, sizeof(BUS_JOIN_PREFIX) - 1) == 0) return strdup(src);
    if (strcmp(src, "-") == 0) {
        char *buf = malloc(BUS_JOIN_MAX + 2);
        size_t n = buf ? fread(buf, 1, BUS_JOIN_MAX + 1, stdin) : 0;
        if (buf == NULL || n > BUS_JOIN_MAX) {
            snprintf(err, errlen, "stdin: not a join bundle (more than %d bytes)", BUS_JOIN_MAX);
            free(buf);
            return NULL;
        }
        buf[n] = '\0';
        return buf;
    }
    int missing = 0;
    char *t = bus_store_read(src, BUS_JOIN_MAX, NULL, &missing, err, errlen);
    if (t == NULL && missing)
        snprintf(err, errlen, "'%.200s' is neither a join bundle (xtj1....) nor a readable file", src);
    return t;
}

/* dir/name into out; -1 if too long. */
static int join_path(const join_ctx *j, const char *name, char *out, size_t len)
{
    return bus_store_path(out, len, j->dir, name);
}

static int write_file(const join_ctx *j, const char *name, const char *text, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (join_path(j, name, p, sizeof(p)) != 0) {
        snprintf(err, errlen, "%s/%s: path too long", j->dir, name);
        return -1;
    }
    return bus_store_write(p, text, strlen(text), 0600, err, errlen);
}

/* The local leaf's client password: kept across joins (a running node keeps working). */
static int local_password(join_ctx *j, char *err, size_t errlen)
{
    char p[PATH_MAX], lerr[256];
    int missing = 0;
    if (join_path(j, "local-password", p, sizeof(p)) != 0) return -1;
    char *have = bus_store_read(p, 256, NULL, &missing, lerr, sizeof(lerr));
    if (have && strlen(have) == 50 && strspn(have, "0123456789abcdefxt") == 50) {
        snprintf(j->password, sizeof(j->password), "%s", have);
        OPENSSL_cleanse(have, strlen(have));
        free(have);
        return 0;
    }
    free(have);
    unsigned char rnd[24];
    if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "no random bytes for the local password");
        return -1;
    }
    snprintf(j->password, sizeof(j->password), "xt");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(j->password + 2 + 2 * i, 3, "%02x", rnd[i]);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return write_file(j, "local-password", j->password, err, errlen);
}

/* Append to a bounded buffer; returns -1 once it overflowed. */
typedef struct {
    char *p;
    size_t len, cap;
    int over;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->over) return;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->over = 1;
    else
        b->len += (size_t)n;
}

/* The local leaf: clients on 127.0.0.1 only with the local password, one remote with every hub's
 * URL (it reattaches to another region when one goes), TLS verified with the bundle's CA. */
static int write_leaf_conf(const join_ctx *j, const bus_join *b, char *err, size_t errlen)
{
    static char text[16384];
    sbuf s = {text, 0, sizeof(text), 0};
    char creds[PATH_MAX], ca[PATH_MAX];
    join_path(j, "node.creds", creds, sizeof(creds));
    join_path(j, "ca.pem", ca, sizeof(ca));
    sb_add(&s, "# generated by `xtask join` (node %s): rewritten on every join\n", b->node);
    sb_add(&s, "server_name: \"edge-%s\"\nhost: 127.0.0.1\nport: %d\nhttp: \"127.0.0.1:%d\"\n", b->node,
           j->port, j->http_port);
    sb_add(&s, "default_js_domain: { \"$G\": \"\" }\n");
    sb_add(&s, "max_payload: 1048576\nauthorization { user: node, password: \"%s\", timeout: 2 }\n",
           j->password);
    sb_add(&s, "leafnodes {\n  reconnect: 1\n  remotes [ {\n    urls: [");
    /* one remote: nats-server 2.9 refuses ws and non-ws URLs in the same remote, and two remotes
     * would be two links of the same node */
    int n = 0, wss = 0;
    for (size_t i = 0; i < b->nhubs; i++) {
        char label[128];
        const char *url = hub_split(b->hubs[i], label, sizeof(label));
        if (hub_is_ws(url) != j->ws) continue;
        sb_add(&s, "%s\"%s\"", n++ ? ", " : "", url);
        wss |= strncmp(url, "wss://", 6) == 0;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s",
                 j->ws ? "the bundle lists no WebSocket hub (an admin adds one: --hub REGION=wss://HOST)"
                       : "the bundle lists no tls:// hub (try --websocket)");
        return -1;
    }
    sb_add(&s, "]\n    credentials: \"%s\"\n", creds);
    if (!j->ws)
        sb_add(&s, "    tls { ca_file: \"%s\", timeout: 3 }\n", ca);
    else if (wss) /* the front's certificate is a public one (Fly's edge): the system's roots */
        sb_add(&s, "    tls { timeout: 5 }\n");
    sb_add(&s, "  } ]\n}\n");
    if (s.over) {
        snprintf(err, errlen, "leaf.conf: too large");
        return -1;
    }
    return write_file(j, "leaf.conf", text, err, errlen);
}

/* The node's xtask.yaml: connection, identity and queues from the bundle; tasks from --tasks. */
static int write_node_conf(const join_ctx *j, const bus_join *b, char *err, size_t errlen)
{
    static char text[XE_TASKS_MAX + 8192];
    sbuf s = {text, 0, sizeof(text), 0};
    char dl[PATH_MAX];
    join_path(j, "downloads", dl, sizeof(dl));
    sb_add(&s, "# generated by `xtask join` (node %s): rewritten on every join\nversion: 1\n", b->node);
    sb_add(&s, "node:\n  region: \"%s\"\n  capabilities: [", j->region);
    int k = 0;
    for (size_t i = 0; i < b->ncaps; i++)
        if (is_verb_cap(b->caps[i])) sb_add(&s, "%s%s", k++ ? ", " : "", b->caps[i]);
    sb_add(&s, "]\nnats:\n  url: \"nats://node:%s@127.0.0.1:%d\"\n  inbox_prefix: \"_INBOX_node-%s\"\n",
           j->password, j->port, b->node);
    sb_add(&s, "  manage_streams: false\nqueue:\n  capabilities: [");
    k = 0;
    for (size_t i = 0; i < b->ncaps; i++)
        if (!is_verb_cap(b->caps[i])) sb_add(&s, "%s%s", k++ ? ", " : "", b->caps[i]);
    sb_add(&s, "]\ndownload:\n  dirs: [\"%s\"]\n", dl);
    if (j->tasks) {
        char lerr[512];
        char *t = bus_store_read(j->tasks, XE_TASKS_MAX, NULL, NULL, lerr, sizeof(lerr));
        if (t == NULL) {
            snprintf(err, errlen, "--tasks: %s", lerr);
            return -1;
        }
        /* the bundle decides who this node is and how it connects: not the machine's file */
        static const char *const owned[] = {"version:", "node:", "nats:", "queue:", "download:"};
        int line = 1;
        for (const char *p = t; *p; line++) {
            for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
                if (strncmp(p, owned[i], strlen(owned[i])) == 0) {
                    snprintf(err, errlen,
                             "%s:%d:1: '%.*s' is set by the join bundle; this file holds the machine's "
                             "tasks only",
                             j->tasks, line, (int)strlen(owned[i]) - 1, owned[i]);
                    free(t);
                    return -1;
                }
            const char *nl = strchr(p, '\n');
            if (!nl) break;
            p = nl + 1;
        }
        sb_add(&s, "# --- %s\n%s\n", j->tasks, t);
        free(t);
    } else {
        sb_add(&s, "tasks:\n  noop: { argv: [\"true\"], timeout: 10s, description: does nothing }\n"
                   "  echo: { argv: [echo], args: true, timeout: 10s, description: prints its arguments }\n");
    }
    if (s.over) {
        snprintf(err, errlen, "xtask.yaml: too large");
        return -1;
    }
    if (write_file(j, "xtask.yaml", text, err, errlen) != 0) return -1;
    /* validate now: a mistake in --tasks is a usage error here, not a crash loop later */
    char p[PATH_MAX];
    xc_conf c;
    xc_conf_defaults(&c);
    join_path(j, "xtask.yaml", p, sizeof(p));
    int rc = xc_conf_load(&c, p, err, errlen);
    xc_conf_free(&c);
    return rc;
}

/* The supervisor's manifest: the leaf, then the node once the leaf serves clients. */
static int write_manifest(const join_ctx *j, const bus_join *b, char *err, size_t errlen)
{
    static char text[8192];
    sbuf s = {text, 0, sizeof(text), 0};
    char leaf[PATH_MAX], conf[PATH_MAX], sock[PATH_MAX];
    join_path(j, "leaf.conf", leaf, sizeof(leaf));
    join_path(j, "xtask.yaml", conf, sizeof(conf));
    join_path(j, "run/supervisor.sock", sock, sizeof(sock));
    sb_add(&s, "# generated by `xtask join` (node %s): xtask-supervisor run -c THIS\nversion: 1\n", b->node);
    sb_add(&s, "supervisor:\n  control_socket: \"%s\"\n  stop_timeout: 3s\n", sock);
    sb_add(&s, "services:\n  leaf:\n    command: [\"%s\", -c, \"%s\"]\n", j->nats, leaf);
    sb_add(
        &s,
        "    ready: { http: \"http://127.0.0.1:%d/varz\", interval: 50ms, timeout: 1s, start_period: 30s }\n"
        "    live: { tcp: \"127.0.0.1:%d\", interval: 2s, timeout: 1s, failures: 3 }\n"
        "    restart: always\n    backoff: { initial: 50ms, max: 2s, reset_after: 10s }\n"
        "    stop: { signal: SIGINT, timeout: 1s }\n    essential: true\n",
        j->http_port, j->port);
    sb_add(&s, "  node:\n    command: [\"%s\", --nats-mode, --config, \"%s\", --node-id, \"%s\"]\n", j->self,
           conf, b->node);
    sb_add(&s,
           "    depends_on: { leaf: ready }\n"
           "    ready: { exec: [\"%s\", ping, --config, \"%s\", --node-id, \"%s\"], interval: 100ms, "
           "timeout: 2s, "
           "start_period: 60s }\n"
           "    restart: always\n    backoff: { initial: 50ms, max: 2s, reset_after: 10s }\n"
           "    stop: { signal: SIGTERM, timeout: 1s }\n    essential: true\n",
           j->self, conf, b->node);
    /* the node reports the region its leaf is attached to (xe_edge_attached) and its tags */
    sb_add(&s, "    env:\n      XTASK_EDGE_LEAFZ: \"http://127.0.0.1:%d/leafz\"\n      XTASK_EDGE_HUBS: \"",
           j->http_port);
    for (size_t i = 0, n = 0; i < b->nhubs; i++) {
        char label[128];
        const char *url = hub_split(b->hubs[i], label, sizeof(label)), *hp = strstr(url, "://");
        if (hub_is_ws(url) != j->ws || hp == NULL) continue;
        hp += 3;
        size_t hl = strcspn(hp, "/");
        const char *colon = memchr(hp, ':', hl), *rb = memchr(hp, ']', hl);
        int has_port = colon && (!rb || colon > rb);
        sb_add(&s, "%s%s=%.*s%s", n++ ? "," : "", label, (int)hl, hp,
               has_port ? "" : (strncmp(url, "wss://", 6) == 0 ? ":443" : ":80"));
    }
    sb_add(&s, "\"\n      XTASK_EDGE_TAGS: \"");
    for (size_t i = 0; i < b->ntags; i++)
        sb_add(&s, "%s%s", i ? "," : "", b->tags[i]);
    sb_add(&s, "\"\n");
    if (s.over) {
        snprintf(err, errlen, "edge.yaml: too large");
        return -1;
    }
    return write_file(j, "edge.yaml", text, err, errlen);
}

/* A program next to this executable (the build tree, /usr/bin), else on PATH. */
static int find_program(const char *self, const char *name, char *out, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", self);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (snprintf(out, len, "%s/%s", dir, name) < (int)len && access(out, X_OK) == 0) return 0;
    }
    const char *path = getenv("PATH");
    char pbuf[4096];
    snprintf(pbuf, sizeof(pbuf), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *p = pbuf; p && *p;) {
        char *c = strchr(p, ':');
        if (c) *c = '\0';
        if (*p && snprintf(out, len, "%s/%s", p, name) < (int)len && access(out, X_OK) == 0) return 0;
        p = c ? c + 1 : NULL;
    }
    return -1;
}

/* What the leaf's log says about its link, or NULL while undecided. *ok set when it attached. */
static const char *leaf_verdict(const char *log, int *ok)
{
    *ok = 0;
    /* logged once the hub accepted the link (after TLS and the credential: addLeafNodeConnection
     * runs on the hub's post-CONNECT INFO); "Leafnode connection created" comes before the TLS
     * handshake, so it proves nothing. The line exists because leaf.conf maps $G to the default
     * JetStream domain (write_leaf_conf). */
    if (strstr(log, "due to default domain")) {
        *ok = 1;
        return "attached";
    }
    if (strstr(log, "Authorization Violation") || strstr(log, "Authentication Expired") ||
        strstr(log, "Authentication Revoked") || strstr(log, "authorization violation"))
        return "the hub refused the node's credential: revoked, expired, or not issued by this platform (ask "
               "an "
               "admin for a new bundle)";
    if (strstr(log, "x509") || strstr(log, "certificate"))
        return "TLS: the hub's certificate does not verify with the bundle's CA (wrong CA, or not the "
               "platform's "
               "hub)";
    if (strstr(log, "address already in use"))
        return "the local port is in use (choose another with --port / --http-port)";
    return NULL;
}

/* Start the leaf once on its own and wait until a hub accepts it (or names why not): a refused
 * credential, a wrong CA or an unreachable hub are reported here with their cause, before the
 * supervisor would restart the leaf forever. */
static int join_check(const join_ctx *j, const bus_join *b)
{
    char logp[PATH_MAX], conf[PATH_MAX];
    join_path(j, "leaf-check.log", logp, sizeof(logp));
    join_path(j, "leaf.conf", conf, sizeof(conf));
    int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail(1, "%s: %s", logp, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execl(j->nats, j->nats, "-c", conf, (char *)NULL);
        _exit(127);
    }
    close(fd);
    if (pid < 0) return fail(1, "fork: %s", strerror(errno));
    struct timespec t0, now, step = {0, 20 * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *why = NULL;
    int ok = 0, exited = 0, rc = 1;
    char *log = NULL;
    for (;;) {
        free(log);
        char lerr[256];
        log = bus_store_read(logp, 1 << 20, NULL, NULL, lerr, sizeof(lerr));
        if (log && (why = leaf_verdict(log, &ok)) != NULL) break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            exited = 1;
            why = "the local leaf nats-server exited";
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > j->check_ms) break;
        nanosleep(&step, NULL);
    }
    if (!exited) {
        kill(pid, SIGINT);
        waitpid(pid, NULL, 0);
    }
    if (ok) {
        rc = 0;
    } else if (why) {
        rc = fail(1, "join %s: %s", b->node, why);
    } else {
        fprintf(stderr, "xtask: join %s: no hub accepted the leaf within %lld ms; tried:", b->node,
                (long long)j->check_ms);
        for (size_t i = 0; i < b->nhubs; i++)
            fprintf(stderr, " %s", b->hubs[i]);
        fprintf(stderr, " (outbound %s blocked? --no-check starts anyway and keeps trying)\n",
                j->ws ? "HTTPS/WebSocket" : "TLS to the leaf port; --websocket goes through 443");
        rc = 3; /* no verdict: the caller may try the WebSocket hubs */
    }
    if (!ok && log) {
        /* the leaf's own words, last lines (the log holds no secret: nats-server redacts) */
        size_t n = strlen(log), lines = 0;
        const char *p = log + n;
        while (p > log && lines < 6)
            if (*--p == '\n') lines++;
        fprintf(stderr, "--- %s (last lines) ---\n%s", logp, p);
    }
    free(log);
    return rc;
}

/* 1 if the bundle lists a hub of that kind (ws: WebSocket, else tls://). */
static int bundle_has(const bus_join *b, int ws)
{
    for (size_t i = 0; i < b->nhubs; i++) {
        char label[128];
        if (hub_is_ws(hub_split(b->hubs[i], label, sizeof(label))) == ws) return 1;
    }
    return 0;
}

static int join_parse_args(int argc, char **argv, join_ctx *j)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            join_usage(stdout);
            return -2;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const char *const valued[] = {"--dir",  "--tasks",     "--region",
                                             "--port", "--http-port", "--timeout"};
        int takes = 0;
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
            takes |= strcmp(a, valued[k]) == 0;
        if (takes && v == NULL) return fail(2, "%s needs a value", a);
        if (strcmp(a, "--no-check") == 0)
            j->no_check = 1;
        else if (strcmp(a, "--websocket") == 0)
            j->ws = 1;
        else if (strcmp(a, "--print-only") == 0)
            j->print_only = 1;
        else if (strcmp(a, "--dir") == 0)
            j->dir = argv[++i];
        else if (strcmp(a, "--tasks") == 0)
            j->tasks = argv[++i];
        else if (strcmp(a, "--region") == 0)
            j->region = argv[++i];
        else if (strcmp(a, "--port") == 0 || strcmp(a, "--http-port") == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 1 || p > 65535) return fail(2, "%s '%s': want a port number", a, v);
            *(strcmp(a, "--port") == 0 ? &j->port : &j->http_port) = (int)p;
            i++;
        } else if (strcmp(a, "--timeout") == 0) {
            int64_t ms;
            if (xt_duration_parse(v, &ms) != 0 || ms <= 0) return fail(2, "--timeout '%s': want e.g. 20s", v);
            j->check_ms = ms;
            i++;
        } else if (a[0] == '-' && a[1]) {
            join_usage(stderr);
            return fail(2, "join: unknown option '%s'", a);
        } else if (j->source == NULL)
            j->source = a;
        else
            return fail(2, "join: unexpected argument (give one bundle)");
    }
    return 0;
}

int xe_join_main(int argc, char **argv)
{
    static char dirbuf[PATH_MAX];
    join_ctx j;
    bus_join b;
    char err[1024] = "";
    int rc = 2;
    memset(&j, 0, sizeof(j));
    memset(&b, 0, sizeof(b));
    j.port = XE_DEFAULT_PORT;
    j.http_port = XE_DEFAULT_HTTP_PORT;
    j.check_ms = XE_CHECK_MS;
    j.region = "edge";
    int pr = join_parse_args(argc, argv, &j);
    if (pr != 0) return pr == -2 ? 0 : pr;
    if (!xp_token_valid(j.region)) return fail(2, "--region '%s': 1-64 of A-Z a-z 0-9 _ -", j.region);
    char *text = bundle_text(j.source, err, sizeof(err));
    if (text == NULL) return fail(2, "join: %s", err);
    rc = bus_join_parse(text, (int64_t)time(NULL), &b, err, sizeof(err));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    unsetenv(XE_BUNDLE_ENV); /* a secret: not for the leaf, the node or its tasks */
    if (rc != 0) return fail(rc, "join: %s", err);
    rc = 1;
    if (!xp_token_valid(b.node) || xp_node_id_reserved(b.node)) {
        rc = fail(2, "join: the bundle's node id '%s' is not usable", b.node);
        goto out;
    }
    if (j.dir == NULL) {
        const char *e = getenv("XTASK_EDGE_DIR"), *d = getenv("XTASK_DATA_DIR"), *h = getenv("HOME");
        if (e && *e)
            j.dir = e;
        else if (d && *d && snprintf(dirbuf, sizeof(dirbuf), "%s/edge", d) < (int)sizeof(dirbuf))
            j.dir = dirbuf;
        else if (snprintf(dirbuf, sizeof(dirbuf), "%s/.xtask/edge", h && *h ? h : "/tmp") <
                 (int)sizeof(dirbuf))
            j.dir = dirbuf;
    }
    ssize_t n = readlink("/proc/self/exe", j.self, sizeof(j.self) - 1);
    if (n <= 0) {
        rc = fail(1, "cannot find this program (/proc/self/exe)");
        goto out;
    }
    j.self[n] = '\0';
    if (find_program(j.self, "xtask-supervisor", j.sup, sizeof(j.sup)) != 0 ||
        find_program(j.self, "nats-server", j.nats, sizeof(j.nats)) != 0) {
        rc = fail(1, "join: xtask-supervisor and nats-server must be next to %s or on PATH", j.self);
        goto out;
    }
    if (!bundle_has(&b, 0)) j.ws = 1; /* a bundle with WebSocket hubs only */
    char p[PATH_MAX];
    umask(077);
    if (bus_store_mkdir(j.dir, 0700, err, sizeof(err)) != 0 ||
        (join_path(&j, "run", p, sizeof(p)) == 0 && bus_store_mkdir(p, 0700, err, sizeof(err)) != 0) ||
        (join_path(&j, "downloads", p, sizeof(p)) == 0 && bus_store_mkdir(p, 0700, err, sizeof(err)) != 0) ||
        local_password(&j, err, sizeof(err)) != 0 ||
        write_file(&j, "node.creds", b.creds, err, sizeof(err)) != 0 ||
        write_file(&j, "ca.pem", b.ca, err, sizeof(err)) != 0 ||
        write_leaf_conf(&j, &b, err, sizeof(err)) != 0) {
        rc = fail(1, "join: %s", err);
        goto out;
    }
    if (write_node_conf(&j, &b, err, sizeof(err)) != 0) {
        rc = fail(2, "join: %s", err);
        goto out;
    }
    if (write_manifest(&j, &b, err, sizeof(err)) != 0) {
        rc = fail(1, "join: %s", err);
        goto out;
    }
    char manifest[PATH_MAX];
    join_path(&j, "edge.yaml", manifest, sizeof(manifest));
    fprintf(stderr, "xtask: join %s: state in %s (leaf 127.0.0.1:%d, %zu hub URL%s)\n", b.node, j.dir, j.port,
            b.nhubs, b.nhubs == 1 ? "" : "s");
    if (j.print_only) {
        printf("%s\n", manifest);
        rc = 0;
        goto out;
    }
    if (!j.no_check) {
        int c = join_check(&j, &b);
        if (c == 3 && !j.ws && bundle_has(&b, 1)) { /* 7422 blocked: the front's 443 */
            fprintf(stderr, "xtask: join %s: trying the bundle's WebSocket hubs\n", b.node);
            j.ws = 1;
            if (write_leaf_conf(&j, &b, err, sizeof(err)) != 0 ||
                write_manifest(&j, &b, err, sizeof(err)) != 0) {
                rc = fail(1, "join: %s", err);
                goto out;
            }
            c = join_check(&j, &b);
        }
        if (c != 0) goto out;
    }
    fflush(NULL);
    char *const args[] = {j.sup, "-c", manifest, "run", NULL};
    bus_join_free(&b);
    execv(j.sup, args);
    rc = fail(1, "exec %s: %s", j.sup, strerror(errno));
out:
    OPENSSL_cleanse(j.password, sizeof(j.password));
    bus_join_free(&b);
    return rc;
}

/* --- the node side: where its leaf is attached ------------------------------------------------- */

typedef struct {
    char buf[16384];
    size_t len;
    int over;
} leafz_body;

static size_t leafz_write(char *p, size_t size, size_t n, void *ud)
{
    leafz_body *b = ud;
    size_t k = size * n;
    if (k > sizeof(b->buf) - 1 - b->len) {
        b->over = 1;
        return 0;
    }
    memcpy(b->buf + b->len, p, k);
    b->len += k;
    return k;
}

/* 1 if the hub "HOST:PORT" is the address ip:port (HOST literal, or one of its addresses). */
static int hub_is(const char *hostport, const char *ip, long port)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || strtol(colon + 1, NULL, 10) != port || (size_t)(colon - hostport) >= sizeof(host))
        return 0;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
    if (strcmp(host, ip) == 0) return 1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int hit = 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) return 0;
    for (struct addrinfo *a = res; a && !hit; a = a->ai_next) {
        char h[NI_MAXHOST];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, h, sizeof(h), NULL, 0, NI_NUMERICHOST) == 0)
            hit = strcmp(h, ip) == 0;
    }
    freeaddrinfo(res);
    return hit;
}

/* nats-server 2.9 names neither end of a leaf link in /leafz (the hub's shows the edge's address,
 * the edge's shows the hub's ip and port) nor keeps the hub's server_name it got in INFO anywhere a
 * client can read: the edge's side maps the hub's address back to the bundle's hub entry. */
int xe_edge_attached(char *out, size_t len)
{
    static char last_ip[64], last_label[128];
    static long last_port;
    const char *url = getenv("XTASK_EDGE_LEAFZ"), *hubs = getenv("XTASK_EDGE_HUBS");
    int rc = 1;
    if (url == NULL || *url == '\0') return -1;
    snprintf(out, len, "%s", "");
    leafz_body *b = calloc(1, sizeof(*b));
    CURL *h = curl_easy_init();
    json_t *z = NULL;
    if (b == NULL || h == NULL) goto out;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, leafz_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if (curl_easy_perform(h) != CURLE_OK) goto out;
    z = json_loadb(b->buf, b->len, 0, NULL);
    json_t *leaf = json_array_get(json_object_get(z, "leafs"), 0);
    const char *ip = json_string_value(json_object_get(leaf, "ip"));
    long port = (long)json_integer_value(json_object_get(leaf, "port"));
    if (ip == NULL || port <= 0) goto out;
    if (port == last_port && strcmp(ip, last_ip) == 0) { /* no lookup while the link stays */
        snprintf(out, len, "%s", last_label);
        rc = 0;
        goto out;
    }
    char list[4096], label[128];
    snprintf(list, sizeof(list), "%s", hubs ? hubs : "");
    snprintf(label, sizeof(label), "%s:%ld", ip, port); /* a hub the bundle does not list */
    const char *ent[BUS_MAX_DOMAINS];
    size_t nent = 0;
    split_list(list, ent, &nent, BUS_MAX_DOMAINS);
    for (size_t i = 0; i < nent; i++) {
        char *e = (char *)ent[i], *eq = strchr(e, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        if (hub_is(eq + 1, ip, port)) {
            snprintf(label, sizeof(label), "%s", e);
            break;
        }
    }
    snprintf(last_ip, sizeof(last_ip), "%s", ip);
    snprintf(last_label, sizeof(last_label), "%s", label);
    last_port = port;
    snprintf(out, len, "%s", label);
    rc = 0;
out:
    json_decref(z);
    if (h) curl_easy_cleanup(h);
    free(b);
    return rc;
}

static char *edge_tags_buf;
static const char *edge_tags[XE_TAGS_MAX + 1];

static void edge_tags_load(void)
{
    const char *t = getenv("XTASK_EDGE_TAGS");
    size_t n = 0;
    if (t == NULL || (edge_tags_buf = strdup(t)) == NULL) return;
    split_list(edge_tags_buf, edge_tags, &n, XE_TAGS_MAX);
    edge_tags[n] = NULL;
}

const char *const *xe_edge_tags(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, edge_tags_load);
    return edge_tags_buf ? edge_tags : NULL;
}
