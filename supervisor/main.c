/*
 * xtask-supervisor: command line. `run` (the default) supervises; the other commands talk to a
 * running supervisor over its control socket, except `check`, which only validates a manifest.
 *
 * Exit codes: 0 ok; 1 runtime error (a command the supervisor refused, an essential service failed,
 * `status --check` with an essential service not READY, `restart` whose service failed or was not
 * READY within --timeout);
 * 2 usage or manifest error; 3 the supervisor is not running.
 */
#include "sv.h"
#include "xt_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: xtask-supervisor [-c FILE] [-s SOCKET] [COMMAND]\n"
    "\n"
    "commands:\n"
    "  run [--only NAME[,NAME...]]\n"
    "                         supervise the services of the manifest (default); --only: those\n"
    "                         services and what they depend on (transitively)\n"
    "  status [--json] [--check]\n"
    "                         state, pid, uptime, restarts, last exit, readiness, last probe;\n"
    "                         --check: exit 0 only when every essential service is READY, else 1\n"
    "                         (3 when not running): a HEALTHCHECK without curl\n"
    "  start|stop|restart NAME\n"
    "  logs NAME [-f] [-n N]  the last N lines (default 50, at most 200) of a service; -f follows\n"
    "  reload                 re-read the manifest; restart only the services that changed\n"
    "  check FILE             validate a manifest only (exit 0 or 2)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      manifest (default $XTASK_CONFIG_DIR/services.yaml,\n"
    "                         else /etc/xtask/services.yaml)\n"
    "  -s, --socket PATH      control socket (default $XTASK_SUPERVISOR_SOCKET, else the\n"
    "                         manifest's supervisor.control_socket)\n"
    "  -h, --help             this text; COMMAND --help: that command's usage\n"
    "  -V, --version          the version\n"
    "\n"
    "exit codes: 0 ok, 1 runtime error (refused; restart failed or not READY in time;\n"
    "status --check not healthy), 2 usage or manifest error, 3 supervisor not running\n";

/* `COMMAND --help`: that command's usage (stdout, exit 0). */
static const struct {
    const char *cmd, *text;
} cmd_usage[] = {
    {"run", "usage: xtask-supervisor [-c FILE] [-s SOCKET] run [--only NAME[,NAME...]]\n"
            "supervise the manifest's services (--only: those and what they depend on)\n"},
    {"status", "usage: xtask-supervisor [-s SOCKET] status [--json] [--check]\n"
               "state, pid, uptime, restarts, last exit and readiness of every service;\n"
               "--check: exit 0 only when every essential service is READY, else 1 (3: not running)\n"},
    {"start", "usage: xtask-supervisor [-s SOCKET] start NAME\nstart a stopped service\n"},
    {"stop", "usage: xtask-supervisor [-s SOCKET] stop NAME\nstop a service (it stays stopped)\n"},
    {"restart", "usage: xtask-supervisor [-s SOCKET] restart NAME [--no-wait] [--timeout DURATION]\n"
                "restart a service and wait until it is READY again (default timeout 60s).\n"
                "exit 0 READY; 1 it failed (the reason on stderr) or was not READY in time;\n"
                "2 usage; 3 the supervisor is not running. --no-wait: return once requested\n"},
    {"logs", "usage: xtask-supervisor [-s SOCKET] logs [NAME] [-f] [-n N|all] [-t] [--since DURATION]\n"
             "the last N lines (default 50) of NAME, or without NAME of every service interleaved in\n"
             "arrival order, each as \"name | line\"; -t: prefix the time (UTC); --since 10m|2h|30s:\n"
             "only lines newer than that; -f: then follow. The supervisor keeps the last 200 lines\n"
             "(at most 64 KB) of each service; -n all sends all of them\n"},
    {"reload", "usage: xtask-supervisor [-c FILE] [-s SOCKET] reload\n"
               "re-read the manifest; restart only the services that changed\n"},
    {"check",
     "usage: xtask-supervisor check [FILE]\nvalidate a manifest only (exit 0, or 2 with file:line:col)\n"},
    {"ping", "usage: xtask-supervisor [-s SOCKET] ping\nexit 0 when the supervisor answers, 3 when not\n"},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xtask-supervisor: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see xtask-supervisor --help)\n");
    va_end(ap);
    return 2;
}

/* The control socket for client commands: -s, $XTASK_SUPERVISOR_SOCKET, the manifest, the default. */
static const char *find_socket(const char *opt, const char *config, char *buf, size_t len)
{
    if (opt != NULL) return opt;
    const char *env = getenv("XTASK_SUPERVISOR_SOCKET");
    if (env != NULL && *env != '\0') return env;
    manifest *m = NULL;
    char err[512];
    if (manifest_load(config, &m, err, sizeof(err)) == 0) {
        snprintf(buf, len, "%s", m->control_socket);
        manifest_free(m);
        return buf;
    }
    const char *run = getenv("XTASK_RUN_DIR");
    snprintf(buf, len, "%s/supervisor.sock", run && *run ? run : "/run/xtask");
    return buf;
}

static int cmd_check(const char *path)
{
    manifest *m = NULL;
    char err[1024];
    if (manifest_load(path, &m, err, sizeof(err)) < 0 || sv_check_support(m, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        manifest_free(m);
        return 2;
    }
    printf("%s: ok (%zu services:", path, m->nservices);
    for (size_t k = 0; k < m->nservices; k++)
        printf(" %s", m->services[m->order[k]].name);
    printf(")\n");
    manifest_free(m);
    return 0;
}

/* The command line, parsed. */
typedef struct {
    const char *config, *sockopt, *cmd, *only;
    const char *pos[4];
    int npos, json, follow, check, help, ts, nowait;
    long nlines; /* -2: not given, -1: all */
    int64_t since, timeout_ms;
} cli_opts;

/* Options without a value: the flag they set. */
static const struct {
    const char *s, *l;
    size_t off;
} flags[] = {
    {"-h", "--help", offsetof(cli_opts, help)},      {"-t", "--timestamps", offsetof(cli_opts, ts)},
    {NULL, "--no-wait", offsetof(cli_opts, nowait)}, {"-j", "--json", offsetof(cli_opts, json)},
    {NULL, "--check", offsetof(cli_opts, check)},    {"-f", "--follow", offsetof(cli_opts, follow)},
};

/* Options with a value, and what the value is (for "needs ..."); the index is set_valued's. */
static const struct {
    const char *s, *l, *what;
} valued[] = {
    {"-c", "--config", "a file"},
    {"-s", "--socket", "a path"},
    {"-n", "--lines", "a number"},
    {NULL, "--since", "a duration (30s, 10m, 2h)"},
    {NULL, "--timeout", "a duration (30s, 10m, 2h)"},
    {NULL, "--only", "service names (--only NAME[,NAME...])"},
};

static int opt_is(const char *a, const char *s, const char *l)
{
    return (s != NULL && strcmp(a, s) == 0) || strcmp(a, l) == 0;
}

/* The value v of valued[k]: -1 when taken, else the exit code. */
static int set_valued(cli_opts *o, size_t k, const char *a, const char *v)
{
    int64_t ms;
    char *end = NULL;
    if (k == 0) o->config = v;
    if (k == 1) o->sockopt = v;
    if (k == 5) o->only = v;
    if (k == 2) {
        errno = 0;
        o->nlines = strcmp(v, "all") == 0 ? -1 : strtol(v, &end, 10);
        if (o->nlines != -1 && (*end != '\0' || errno != 0 || o->nlines < 0))
            return usage_error("bad line count '%s' (a number, or all)", v);
    }
    if (k == 3 || k == 4) {
        if (xt_duration_parse(v, &ms) < 0) return usage_error("%s: bad duration '%s' (30s, 10m, 2h)", a, v);
        *(k == 3 ? &o->since : &o->timeout_ms) = ms;
    }
    return -1;
}

/* One argument (argv[*i], and its value after it): -1 to go on, else the exit code. */
static int parse_arg(cli_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (o->cmd == NULL && strcmp(a, "help") == 0) a = "--help";
    for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
        if (opt_is(a, flags[k].s, flags[k].l)) {
            *(int *)((char *)o + flags[k].off) = 1;
            return -1;
        }
    if (strncmp(a, "--only=", 7) == 0) return set_valued(o, 5, a, a + 7);
    for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
        if (opt_is(a, valued[k].s, valued[k].l)) {
            if (++*i == argc) return usage_error("%s needs %s", a, valued[k].what);
            return set_valued(o, k, a, argv[*i]);
        }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
        printf("xtask-supervisor %s\n", SV_VERSION);
        return 0;
    }
    if (a[0] == '-' && a[1] != '\0') return usage_error("unknown option '%s'", a);
    if (o->cmd == NULL)
        o->cmd = a;
    else if (o->npos < 4)
        o->pos[o->npos++] = a;
    else
        return usage_error("too many arguments ('%s')", a);
    return -1;
}

/* `--help` or `COMMAND --help`, on stdout. */
static int print_help(const char *cmd)
{
    for (size_t k = 0; cmd != NULL && k < sizeof(cmd_usage) / sizeof(cmd_usage[0]); k++)
        if (strcmp(cmd, cmd_usage[k].cmd) == 0) {
            fputs(cmd_usage[k].text, stdout);
            return 0;
        }
    fputs(usage, stdout);
    return 0;
}

/* Options that go with one command only: -1 when the combination is fine, else 2. */
static int check_combination(const cli_opts *o)
{
    int is_logs = strcmp(o->cmd, "logs") == 0;
    if (!is_logs && (o->ts || o->since >= 0 || o->follow || o->nlines != -2))
        return usage_error("-t, --since, -f and -n go with logs, not %s", o->cmd);
    if (strcmp(o->cmd, "restart") != 0 && o->nowait)
        return usage_error("--no-wait goes with restart, not %s", o->cmd);
    if (o->only != NULL && strcmp(o->cmd, "run") != 0)
        return usage_error("--only goes with run, not %s", o->cmd);
    if (o->check && strcmp(o->cmd, "status") != 0)
        return usage_error("--check goes with status, not %s", o->cmd);
    return -1;
}

/* The control request of a client command into req: -1, or the exit code of a usage error. */
static int build_request(const cli_opts *o, char *req, size_t len)
{
    const char *cmd = o->cmd;
    int is_logs = strcmp(cmd, "logs") == 0, is_restart = strcmp(cmd, "restart") == 0;
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "ping") == 0) {
        if (o->npos > 0) return usage_error("unexpected argument '%s'", o->pos[0]);
        snprintf(req, len, "%s%s%s", cmd, o->json ? " json" : "", o->check ? " check" : "");
        return -1;
    }
    if (strcmp(cmd, "start") != 0 && strcmp(cmd, "stop") != 0 && !is_restart && !is_logs)
        return usage_error("unknown command '%s'", cmd);
    if (o->npos != 1 && !(is_logs && o->npos == 0)) return usage_error("%s needs one service name", cmd);
    const char *name = o->npos == 1 ? o->pos[0] : "*";
    if (strlen(name) > MF_NAME_MAX || strchr(name, ' ') != NULL || (o->npos == 1 && strcmp(name, "*") == 0))
        return usage_error("bad service name '%s'", name);
    if (!is_logs) {
        snprintf(req, len, "%s %s%s", cmd, name, is_restart && !o->nowait ? " wait" : "");
        return -1;
    }
    char count[24], sincew[40] = "";
    if (o->nlines == -1)
        snprintf(count, sizeof(count), "all");
    else
        snprintf(count, sizeof(count), "%ld", o->nlines == -2 ? 50 : o->nlines);
    if (o->since >= 0) snprintf(sincew, sizeof(sincew), " since=%lld", (long long)(sv_wall_ms() - o->since));
    snprintf(req, len, "logs %s %s%s%s%s", name, count, o->follow ? " follow" : "", o->ts ? " ts" : "",
             sincew);
    return -1;
}

int main(int argc, char **argv)
{
    cli_opts o = {.nlines = -2, .since = -1, .timeout_ms = 60000};
    char req[SV_CTL_REQ_MAX], sockbuf[512];
    int rc = -1;
    if (argc > 1 && strcmp(argv[1], "__probe-https") == 0) return sv_https_probe_main(argc - 2, argv + 2);
    for (int i = 1; i < argc && rc < 0; i++)
        rc = parse_arg(&o, argc, argv, &i);
    if (rc >= 0) return rc;
    if (o.help) return print_help(o.cmd);
    if (o.cmd == NULL) o.cmd = "run";
    if (o.config == NULL) o.config = sv_manifest_default();
    if ((rc = check_combination(&o)) >= 0) return rc;
    if (strcmp(o.cmd, "run") == 0) {
        if (o.npos > 0) return usage_error("run: unexpected argument '%s'", o.pos[0]);
        return sv_run(o.config, o.only);
    }
    if (strcmp(o.cmd, "check") == 0) {
        if (o.npos > 1) return usage_error("check: unexpected argument '%s'", o.pos[1]);
        return cmd_check(o.npos == 1 ? o.pos[0] : o.config);
    }
    if ((rc = build_request(&o, req, sizeof(req))) >= 0) return rc;
    int is_restart = strcmp(o.cmd, "restart") == 0, follow = strcmp(o.cmd, "logs") == 0 && o.follow;
    const char *sock = find_socket(o.sockopt, o.config, sockbuf, sizeof(sockbuf));
    rc = client_request(sock, req, follow ? -1 : is_restart && !o.nowait ? o.timeout_ms : 10000);
    if (rc == 4 && is_restart)
        fprintf(stderr, "xtask-supervisor: restart %s: not READY within %lld ms (see status and logs %s)\n",
                o.pos[0], (long long)o.timeout_ms, o.pos[0]);
    else if (rc == 4)
        fprintf(stderr, "xtask-supervisor: %s: no answer (timeout)\n", sock);
    return rc == 4 ? 1 : rc;
}
