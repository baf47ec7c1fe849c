/*
 * xtask: the coordinator node (`xtask --nats-mode`) and its client commands, in one binary.
 *
 * main only parses the command line, loads configs/xtask.yaml for the node, decides the node id
 * and the NATS URL, and hands over to xn_node_run (node; its threading design is documented at the
 * top of xn_node.c) or to one xk_* client command.
 */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xc_conf.h"
#include "xe_edge.h"
#include "xk_client.h"
#include "xn_node.h"
#include "xp_proto.h"
#include "xt_audit.h"
#include "xt_conf.h"
#include "xt_log.h"
#include "xt_nats.h"

#define DEFAULT_NATS_URL "nats://127.0.0.1:4222"

static const char usage_text[] =
    "usage:\n"
    "  xtask --nats-mode [--cluster-url URL] [--config FILE] [--node-id ID]\n"
    "      Run the coordinator node until SIGTERM/SIGINT. Starts before NATS is reachable and\n"
    "      reconnects forever.\n"
    "  xtask nodes [--json] [--capability C] [--region R] [--platform OS[/ARCH]] [--timeout DUR]\n"
    "      List the nodes that answer xtask.nodes.discover: as soon as every node registered in the\n"
    "      KV registry (xtask_nodes) has answered, else within DUR (default 500ms).\n"
    "  xtask run [--node ID | --any] [--project P] [--timeout DUR] [--quiet] TASK [ARGS...]\n"
    "      Run an allowed task on a node (default: the local node id), streaming its output;\n"
    "      exits with the task's exit code.\n"
    "  xtask submit [--capability C] [--project P] [--timeout DUR] [--wait DUR] TASK [ARGS...]\n"
    "      Put a task on the durable queue (xtask.queue.C, default C=task); prints its id (made by\n"
    "      the platform, never chosen). With --wait, waits for the result and exits like `run`.\n"
    "  xtask result [--wait DUR] ID\n"
    "      Print the stored result of task ID (stream xtask-results) as JSON; exits like `run`:\n"
    "      the task's exit code, 124 timed out, 128+N killed by signal N, 1 an error result (the\n"
    "      task was refused or could not start; the error on stderr) or no result.\n"
    "  xtask audit [--since DUR] [--user U] [-n N] [--json] [--timeout DUR]\n"
    "      Print the audit trail (stream xtask-audit): tasks run and auth events, oldest first,\n"
    "      the newest N (default 100) of the last DUR (default: all), of user U only. Admin\n"
    "      credentials are needed to read it.\n"
    "  xtask ping [--node-id ID] [--timeout DUR]\n"
    "      Readiness probe: exit 0 iff the local node answers xtask.<id>.ping (default 1s).\n"
    "  xtask node add NAME [--capability C]... [--tag T]... [--expires DUR] [--hub [REGION=]URL]...\n"
    "      (admin, in the bus directory) Mint an edge node; prints its join bundle (docs/EDGE.md).\n"
    "  xtask node revoke NAME [--server URL]  |  xtask node list [--json]\n"
    "  xtask join [BUNDLE | FILE | -] [--dir DIR] [--port N] [--tasks FILE] [--websocket]\n"
    "      Join this machine as an edge node: a local TLS leaf to every region and the node, supervised\n"
    "      (--websocket: through the front on 443). `xtask node --help`, `xtask join --help`: all options.\n"
    "\n"
    "common options:\n"
    "  --cluster-url URL  NATS server(s), comma-separated (also XTASK_NATS_URL; default " DEFAULT_NATS_URL
    ")\n"
    "  --config FILE      configs/xtask.yaml (also XTASK_CONFIG; else $XTASK_CONFIG_DIR/xtask.yaml,\n"
    "                     /etc/xtask/xtask.yaml, else built-in defaults: only the `noop` task)\n"
    "  --node-id ID       node id (also XTASK_NODE_ID; else FLY_REGION-FLY_MACHINE_ID; else the hostname)\n"
    "\n"
    "environment (client commands; they win over the nats: block of an explicit --config):\n"
    "  XTASK_NATS_CREDS         .creds file (user JWT + seed) the client authenticates with\n"
    "  XTASK_NATS_TLS_CA        CA file (PEM) that verifies the server (implies TLS)\n"
    "  XTASK_NATS_INBOX_PREFIX  inbox prefix the credentials allow (`cli` user NAME: _INBOX_cli-NAME)\n"
    "\n"
    "  xtask COMMAND --help: that command's usage.\n"
    "\n"
    "exit codes:\n"
    "  0    success (run, submit --wait, result: the task's own exit code)\n"
    "  1    runtime error: error reply or error result, no reply, no result, no node answering\n"
    "  2    usage or configuration error\n"
    "  3    cannot connect to NATS (client commands)\n"
    "  124  run/submit --wait/result: the task timed out\n"
    "  128+N run/submit --wait/result: the task was killed by signal N\n";

/* `xtask COMMAND --help`: the lines of usage_text about that command (stdout, exit 0). */
static int command_help(const char *cmd)
{
    char head[64];
    int n = snprintf(head, sizeof head, "  xtask %s ", cmd);
    const char *p = strstr(usage_text, head);
    if (n <= 0 || (size_t)n >= sizeof head || p == NULL) {
        fputs(usage_text, stdout);
        return 0;
    }
    /* its entry: the "  xtask CMD" line and the indented lines below it */
    const char *end = strchr(p, '\n');
    while (end != NULL && strncmp(end + 1, "      ", 6) == 0)
        end = strchr(end + 1, '\n');
    printf("usage:\n%.*s\n", end != NULL ? (int)(end - p) : (int)strlen(p), p);
    printf("(xtask --help: common options, environment and exit codes)\n");
    return 0;
}

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "xtask: %s\n", msg);
    fputs(usage_text, stderr);
    return XK_EXIT_USAGE;
}

typedef struct {
    int nats_mode;
    int help;
    const char *cmd;
    const char *url, *config, *node_id;
    xk_opts k;
} cli;

static int parse_dur(const char *s, int64_t *out)
{
    return xt_duration_parse(s, out) == 0 ? 0 : -1;
}

/* Parse argv into c; returns -1 (with a message printed) on a usage error. */
static int parse_cli(int argc, char **argv, cli *c)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(field)                                                                                          \
    do {                                                                                                     \
        if (!v) {                                                                                            \
            fprintf(stderr, "xtask: %s needs a value\n", a);                                                 \
            return -1;                                                                                       \
        }                                                                                                    \
        field = v;                                                                                           \
        i++;                                                                                                 \
    } while (0)
        if (strcmp(a, "--nats-mode") == 0)
            c->nats_mode = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            c->help = 1;
        else if (strcmp(a, "--cluster-url") == 0 || strcmp(a, "--nats-url") == 0)
            TAKE(c->url);
        else if (strcmp(a, "--config") == 0)
            TAKE(c->config);
        else if (strcmp(a, "--node-id") == 0)
            TAKE(c->node_id);
        else if (strcmp(a, "--node") == 0)
            TAKE(c->k.node);
        else if (strcmp(a, "--any") == 0)
            c->k.any = 1;
        else if (strcmp(a, "--project") == 0)
            TAKE(c->k.project);
        else if (strcmp(a, "--capability") == 0)
            TAKE(c->k.capability);
        else if (strcmp(a, "--region") == 0)
            TAKE(c->k.region);
        else if (strcmp(a, "--platform") == 0)
            TAKE(c->k.platform);
        else if (strcmp(a, "--id") == 0) {
            fprintf(stderr, "xtask: --id: task ids are made by the platform, never chosen\n");
            return -1;
        } else if (strcmp(a, "--user") == 0)
            TAKE(c->k.user);
        else if (strcmp(a, "-n") == 0) {
            char *end = NULL;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || !*v || *end || n < 1 || n > XT_AUDIT_LIMIT_MAX) {
                fprintf(stderr, "xtask: -n needs a number of records, 1..%d\n", XT_AUDIT_LIMIT_MAX);
                return -1;
            }
            c->k.limit = n;
            i++;
        } else if (strcmp(a, "--since") == 0) {
            int64_t ms;
            if (!v || parse_dur(v, &ms) != 0 || ms <= 0) {
                fprintf(stderr, "xtask: --since needs a duration such as 30m, 24h, 7d\n");
                return -1;
            }
            c->k.since_ms = ms;
            i++;
        } else if (strcmp(a, "--json") == 0)
            c->k.json = 1;
        else if (strcmp(a, "--quiet") == 0)
            c->k.quiet = 1;
        else if (strcmp(a, "--timeout") == 0 || strcmp(a, "--wait") == 0) {
            int64_t ms;
            if (!v || parse_dur(v, &ms) != 0) {
                fprintf(stderr, "xtask: %s needs a duration such as 500ms, 5s, 2m\n", a);
                return -1;
            }
            if (strcmp(a, "--timeout") == 0)
                c->k.timeout_ms = ms;
            else
                c->k.wait_ms = ms;
            i++;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "xtask: unknown option '%s'\n", a);
            return -1;
        } else if (!c->cmd && !c->nats_mode) {
            c->cmd = a;
        } else {
            break; /* TASK [ARGS...] or ID: options after it belong to the task */
        }
#undef TAKE
    }
    c->k.args = argv + i;
    return 0;
}

static const char *find_config(const char *flag, int *explicit)
{
    static char path[PATH_MAX];
    const char *env = getenv("XTASK_CONFIG");
    const char *dir = getenv("XTASK_CONFIG_DIR");
    *explicit = 1;
    if (flag) return flag;
    if (env && *env) return env;
    *explicit = 0;
    if (dir && *dir) {
        snprintf(path, sizeof path, "%s/xtask.yaml", dir);
        if (access(path, R_OK) == 0) return path;
    }
    if (access("/etc/xtask/xtask.yaml", R_OK) == 0) return "/etc/xtask/xtask.yaml";
    return NULL;
}

static const char *nats_url(const cli *c, const xc_conf *conf)
{
    const char *env = getenv("XTASK_NATS_URL");
    if (c->url) return c->url;
    if (env && *env) return env;
    if (conf && conf->nats.url && *conf->nats.url) return conf->nats.url;
    return DEFAULT_NATS_URL;
}

static int local_node_id(const cli *c, char *out, size_t outlen)
{
    char host[256] = "", err[256];
    if (gethostname(host, sizeof host) != 0) host[0] = '\0';
    host[sizeof host - 1] = '\0';
    if (xp_node_id(c->node_id, NULL, NULL, host, out, outlen, err, sizeof err) != 0) {
        fprintf(stderr, "xtask: %s\n", err);
        return -1;
    }
    return 0;
}

/* mkdir -p for the download directories, then their canonical form (prefix checks compare
 * canonical paths). A directory that cannot be made is logged; downloads into it will fail. */
static void prepare_download_dirs(xc_conf *conf)
{
    for (size_t i = 0; conf->download_dirs && conf->download_dirs[i]; i++) {
        char *d = conf->download_dirs[i], real[PATH_MAX];
        for (char *p = d + 1;; p++) {
            if (*p == '/' || *p == '\0') {
                char save = *p;
                *p = '\0';
                if (mkdir(d, 0755) != 0 && errno != EEXIST)
                    xt_warn("download dir %s: %s", d, strerror(errno));
                *p = save;
                if (!save) break;
            }
        }
        if (realpath(d, real) && strcmp(real, d) != 0) {
            char *r = strdup(real);
            if (r) {
                free(conf->download_dirs[i]);
                conf->download_dirs[i] = r;
            }
        }
    }
}

static int run_node(const cli *c)
{
    xc_conf conf;
    char err[1024], id[XP_ID_MAX + 1];
    int explicit;
    const char *path = find_config(c->config, &explicit);
    xc_conf_defaults(&conf);
    if (path) {
        if (xc_conf_load(&conf, path, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            xc_conf_free(&conf);
            return XK_EXIT_USAGE;
        }
        xt_info("configuration: %s", path);
    } else {
        xt_warn("no configuration file: built-in defaults (only the `noop` task)");
    }
    if (local_node_id(c, id, sizeof id) != 0) {
        xc_conf_free(&conf);
        return XK_EXIT_USAGE;
    }
    prepare_download_dirs(&conf);
    /* the node's credentials and TLS come from its configuration; the URL as documented above */
    xt_nats_conf nats = {0};
    if (xt_nats_conf_copy(&nats, &conf.nats) != 0 ||
        xt_nats_conf_set(&nats, "url", nats_url(c, &conf), "--cluster-url", err, sizeof err) != 0) {
        fprintf(stderr, "xtask: %s\n", err);
        xt_nats_conf_free(&nats);
        xc_conf_free(&conf);
        return XK_EXIT_USAGE;
    }
    xn_params p = {.nats = &nats, .node_id = id, .region = conf.region, .conf = &conf};
    int rc = xn_node_run(&p);
    xt_nats_conf_free(&nats);
    xc_conf_free(&conf);
    return rc;
}

/* The client's connection: the `nats:` block of a configuration named explicitly (flag or
 * XTASK_CONFIG), then XTASK_NATS_URL / _CREDS / _TLS_CA / _INBOX_PREFIX, then --cluster-url. */
static int client_nats(const cli *c, xt_nats_conf *out)
{
    int explicit;
    const char *path = find_config(c->config, &explicit);
    xc_conf conf;
    char err[1024];
    int rc = -1;
    xc_conf_defaults(&conf);
    if (path && explicit && xc_conf_load(&conf, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (path && explicit && xt_nats_conf_copy(out, &conf.nats) != 0) {
        fprintf(stderr, "xtask: out of memory\n");
        goto out;
    }
    if (xt_nats_conf_env(out, err, sizeof err) != 0 ||
        (c->url && xt_nats_conf_set(out, "url", c->url, "--cluster-url", err, sizeof err) != 0) ||
        (!out->url && xt_nats_conf_set(out, "url", DEFAULT_NATS_URL, "default", err, sizeof err) != 0)) {
        fprintf(stderr, "xtask: %s\n", err);
        goto out;
    }
    rc = 0;
out:
    xc_conf_free(&conf);
    return rc;
}

static int run_client(cli *c)
{
    char id[XP_ID_MAX + 1];
    if (strcmp(c->cmd, "nodes") == 0) {
        if (c->k.args[0]) return usage("nodes takes no arguments");
        return xk_nodes(&c->k);
    }
    if (strcmp(c->cmd, "run") == 0 || strcmp(c->cmd, "submit") == 0) {
        if (!c->k.args[0]) return usage("a task name is required");
        if (!xp_task_name_valid(c->k.args[0])) return usage("the task name is not valid");
        if (c->k.node && c->k.any) return usage("--node and --any exclude each other");
        if (c->k.node && (!xp_token_valid(c->k.node) || xp_node_id_reserved(c->k.node)))
            return usage("--node: not a valid node id");
        if (strcmp(c->cmd, "submit") == 0) {
            if (c->k.capability && !xp_token_valid(c->k.capability))
                return usage("--capability: not a valid capability");
            return xk_submit(&c->k);
        }
        if (!c->k.node && !c->k.any) {
            if (local_node_id(c, id, sizeof id) != 0) return XK_EXIT_USAGE;
            c->k.node = id;
        }
        return xk_run(&c->k);
    }
    if (strcmp(c->cmd, "result") == 0) {
        if (!c->k.args[0] || c->k.args[1]) return usage("result takes one task id");
        c->k.id = c->k.args[0];
        return xk_result(&c->k);
    }
    if (strcmp(c->cmd, "audit") == 0) {
        if (c->k.args[0]) return usage("audit takes no arguments (use --user, --since, -n)");
        if (c->k.user && !xp_user_valid(c->k.user)) return usage("--user: not a user name");
        return xk_audit(&c->k);
    }
    if (strcmp(c->cmd, "ping") == 0) {
        if (c->k.args[0]) return usage("ping takes no arguments");
        if (local_node_id(c, id, sizeof id) != 0) return XK_EXIT_USAGE;
        c->k.node = id;
        return xk_ping(&c->k);
    }
    fprintf(stderr, "xtask: unknown command '%s'\n", c->cmd);
    return usage(NULL);
}

int main(int argc, char **argv)
{
    cli c;
    memset(&c, 0, sizeof c);
    xt_log_init(XT_LOG_INFO, 0);
    if (argc >= 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("xtask %s\n", XP_VERSION);
        return 0;
    }
    /* edge nodes: their own argument syntax (xe_edge.h) */
    if (argc >= 2 && (strcmp(argv[1], "node") == 0 || strcmp(argv[1], "join") == 0))
        return strcmp(argv[1], "node") == 0 ? xe_node_main(argc - 1, argv + 1)
                                            : xe_join_main(argc - 1, argv + 1);
    int bad = parse_cli(argc, argv, &c);
    if (c.help) return command_help(c.nats_mode ? "--nats-mode" : c.cmd ? c.cmd : "");
    if (bad != 0) return usage(NULL);
    if (c.nats_mode) {
        if (c.k.args[0]) return usage("--nats-mode takes no arguments");
        return run_node(&c);
    }
    if (!c.cmd) return usage("a command is required");
    xt_nats_conf nats = {0};
    if (client_nats(&c, &nats) != 0) {
        xt_nats_conf_free(&nats);
        return XK_EXIT_USAGE;
    }
    c.k.nats = &nats;
    int rc = run_client(&c);
    xt_nats_conf_free(&nats);
    return rc;
}
