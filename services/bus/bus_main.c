/*
 * xtask-bus: the NATS bus's keys, JWTs, certificates and credentials (operator/JWT mode).
 *
 *   xtask-bus init    [--dir DIR] [--domain NAME]... [--node-id ID] [--js-memory SIZE] [--js-disk SIZE]
 *   xtask-bus user add NAME --role ROLE [--capability C]... [--expires DUR] --out FILE [--dir DIR]
 *   xtask-bus user revoke NAME|UKEY [--server URL] [--creds FILE] [--dir DIR]
 *   xtask-bus show    [--dir DIR]
 *   xtask-bus export  [--dir DIR] [--value]
 *
 * DIR: --dir, else $XTASK_BUS_DIR, else ${XTASK_DATA_DIR:-/data}/bus. init materializes the bundle in
 * $XTASK_BUS_BUNDLE (what `export` prints) when it is set. Exit 0, 1 runtime error, 2 usage/config.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus_ops.h"

static void usage(FILE *f)
{
    fputs("usage: xtask-bus init    [--dir DIR] [--domain NAME]... [--node-id ID] [--js-memory SIZE] "
          "[--js-disk SIZE]\n"
          "       xtask-bus user add NAME --role ROLE [--capability C]... [--expires DUR] --out FILE [--dir "
          "DIR]\n"
          "       xtask-bus user revoke NAME|UKEY [--server URL] [--creds SYS_CREDS] [--dir DIR]\n"
          "       xtask-bus show    [--dir DIR]\n"
          "       xtask-bus export  [--dir DIR] [--value]\n"
          "DIR defaults to $XTASK_BUS_DIR, else ${XTASK_DATA_DIR:-/data}/bus. SIZE: bytes or with K/M/G/T;\n"
          "DUR: number with s/m/h/d. Roles: admin, sys (and the platform's roles, docs/SECURITY.md).\n",
          f);
}

/* "10G" -> bytes; -1 if malformed. */
static long long parse_size(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0) return -1;
    long long mul = 1;
    switch (*end) {
    case '\0':
        break;
    case 'K':
        mul = 1LL << 10;
        break;
    case 'M':
        mul = 1LL << 20;
        break;
    case 'G':
        mul = 1LL << 30;
        break;
    case 'T':
        mul = 1LL << 40;
        break;
    default:
        return -1;
    }
    if (*end && end[1] != '\0' && strcmp(end + 1, "B") != 0 && strcmp(end + 1, "iB") != 0) return -1;
    if (v > LLONG_MAX / mul) return -1;
    return v * mul;
}

/* XTASK_DOMAIN may list several names, separated by spaces or commas. */
static void domains_from_env(bus_opts *o, char *buf, size_t buflen)
{
    const char *env = getenv("XTASK_DOMAIN");
    if (env == NULL || snprintf(buf, buflen, "%s", env) >= (int)buflen) return;
    for (char *p = buf; *p && o->ndomains < BUS_MAX_DOMAINS;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, " ,");
        if (n == 0) break;
        o->domains[o->ndomains++] = p;
        p += n;
        if (*p) *p++ = '\0';
    }
}

int main(int argc, char **argv)
{
    static char dirbuf[PATH_MAX], domainbuf[1024], nodebuf[256];
    bus_opts o = {0};
    char err[1024] = "";
    int rc = 2;
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int first = 2;
    if (strcmp(cmd, "user") == 0) {
        if (argc < 3 || (strcmp(argv[2], "add") != 0 && strcmp(argv[2], "revoke") != 0)) {
            fprintf(stderr, "xtask-bus: user: want `user add` or `user revoke`\n");
            usage(stderr);
            return 2;
        }
        cmd = strcmp(argv[2], "add") == 0 ? "user-add" : "user-revoke";
        first = 3;
    } else if (strcmp(cmd, "init") != 0 && strcmp(cmd, "show") != 0 && strcmp(cmd, "export") != 0) {
        fprintf(stderr, "xtask-bus: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    o.js_mem = 1LL << 30;
    o.js_disk = 10LL << 30;
    const char *e;
    if ((e = getenv("XTASK_NATS_MAX_MEMORY")) && *e) o.js_mem = parse_size(e);
    if ((e = getenv("XTASK_NATS_MAX_FILE")) && *e) o.js_disk = parse_size(e);
    if (o.js_mem < 0 || o.js_disk < 0) {
        fprintf(
            stderr,
            "xtask-bus: XTASK_NATS_MAX_MEMORY/XTASK_NATS_MAX_FILE: want bytes or a number with K/M/G/T\n");
        return 2;
    }
    static const struct option longopts[] = {
        {"dir", required_argument, 0, 'd'},
        {"domain", required_argument, 0, 'D'},
        {"node-id", required_argument, 0, 'n'},
        {"js-memory", required_argument, 0, 'm'},
        {"js-disk", required_argument, 0, 'k'},
        {"role", required_argument, 0, 'r'},
        {"capability", required_argument, 0, 'c'},
        {"expires", required_argument, 0, 'x'},
        {"out", required_argument, 0, 'o'},
        {"server", required_argument, 0, 's'},
        {"creds", required_argument, 0, 'C'},
        {"value", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = first;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        long long v;
        switch (ch) {
        case 'd':
            o.dir = optarg;
            break;
        case 'D':
            if (o.ndomains >= BUS_MAX_DOMAINS) {
                fprintf(stderr, "xtask-bus: at most %d --domain\n", BUS_MAX_DOMAINS);
                return 2;
            }
            o.domains[o.ndomains++] = optarg;
            break;
        case 'n':
            o.node_id = optarg;
            break;
        case 'm':
        case 'k':
            if ((v = parse_size(optarg)) < 0) {
                fprintf(stderr, "xtask-bus: --%s '%s': want bytes or a number with K/M/G/T\n",
                        ch == 'm' ? "js-memory" : "js-disk", optarg);
                return 2;
            }
            *(ch == 'm' ? &o.js_mem : &o.js_disk) = v;
            break;
        case 'r':
            o.role = optarg;
            break;
        case 'c':
            if (o.ncaps >= BUS_MAX_CAPS) {
                fprintf(stderr, "xtask-bus: at most %d --capability\n", BUS_MAX_CAPS);
                return 2;
            }
            o.caps[o.ncaps++] = optarg;
            break;
        case 'x':
            if ((v = bus_ops_parse_duration(optarg)) < 0) {
                fprintf(stderr, "xtask-bus: --expires '%s': want a number with s/m/h/d (e.g. 90d)\n", optarg);
                return 2;
            }
            o.expires_in = v;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 's':
            o.server = optarg;
            break;
        case 'C':
            o.creds = optarg;
            break;
        case 'v':
            o.export_value = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int npos = argc - optind;
    int want_pos = strncmp(cmd, "user-", 5) == 0 ? 1 : 0;
    if (npos != want_pos) {
        fprintf(stderr, "xtask-bus: %s: %s\n", argv[1],
                want_pos ? "want one user name" : "unexpected argument");
        usage(stderr);
        return 2;
    }
    if (want_pos) o.name = argv[optind];
    if (o.dir == NULL) o.dir = bus_ops_default_dir(dirbuf, sizeof(dirbuf));
    if (o.ndomains == 0) domains_from_env(&o, domainbuf, sizeof(domainbuf));
    if (o.node_id == NULL) {
        /* the coordinator's rule (xtask.yaml): XTASK_NODE_ID, FLY_REGION-FLY_MACHINE_ID, hostname */
        const char *r = getenv("FLY_REGION"), *m = getenv("FLY_MACHINE_ID");
        if ((e = getenv("XTASK_NODE_ID")) && *e)
            o.node_id = e;
        else if (r && *r && m && *m &&
                 snprintf(nodebuf, sizeof(nodebuf), "%s-%s", r, m) < (int)sizeof(nodebuf))
            o.node_id = nodebuf;
        else if (gethostname(nodebuf, sizeof(nodebuf) - 1) == 0)
            o.node_id = nodebuf;
    }
    o.bundle = getenv("XTASK_BUS_BUNDLE");
    if (strcmp(cmd, "init") == 0)
        rc = bus_ops_init(&o, stdout, err, sizeof(err));
    else if (strcmp(cmd, "user-add") == 0)
        rc = bus_ops_user_add(&o, stdout, err, sizeof(err));
    else if (strcmp(cmd, "user-revoke") == 0)
        rc = bus_ops_user_revoke(&o, stdout, err, sizeof(err));
    else if (strcmp(cmd, "show") == 0)
        rc = bus_ops_show(&o, stdout, err, sizeof(err));
    else
        rc = bus_ops_export(&o, stdout, err, sizeof(err));
    if (rc != 0) fprintf(stderr, "xtask-bus: %s\n", err[0] ? err : "failed");
    return rc;
}
