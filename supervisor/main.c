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

int main(int argc, char **argv)
{
    const char *config = NULL, *sockopt = NULL, *cmd = NULL;
    const char *pos[4];
    const char *only = NULL;
    int npos = 0, json = 0, follow = 0, check = 0, help = 0, ts = 0, nowait = 0;
    long nlines = -2; /* -2: not given, -1: all */
    int64_t since = -1, timeout_ms = 60000;
    if (argc > 1 && strcmp(argv[1], "__probe-https") == 0) return sv_https_probe_main(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || (cmd == NULL && strcmp(a, "help") == 0)) {
            help = 1;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--timestamps") == 0) {
            ts = 1;
        } else if (strcmp(a, "--no-wait") == 0) {
            nowait = 1;
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--timeout") == 0) {
            int64_t ms;
            if (++i == argc) return usage_error("%s needs a duration (30s, 10m, 2h)", a);
            if (xt_duration_parse(argv[i], &ms) < 0)
                return usage_error("%s: bad duration '%s' (30s, 10m, 2h)", a, argv[i]);
            if (a[2] == 's')
                since = ms;
            else
                timeout_ms = ms;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("xtask-supervisor %s\n", SV_VERSION);
            return 0;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (++i == argc) return usage_error("%s needs a file", a);
            config = argv[i];
        } else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
            if (++i == argc) return usage_error("%s needs a path", a);
            sockopt = argv[i];
        } else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
            json = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
        } else if (strcmp(a, "--only") == 0 || strncmp(a, "--only=", 7) == 0) {
            if (a[6] == '=')
                only = a + 7;
            else if (++i == argc)
                return usage_error("--only needs service names (--only NAME[,NAME...])");
            else
                only = argv[i];
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
            follow = 1;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--lines") == 0) {
            char *end;
            if (++i == argc) return usage_error("%s needs a number", a);
            errno = 0;
            nlines = strcmp(argv[i], "all") == 0 ? -1 : strtol(argv[i], &end, 10);
            if (nlines != -1 && (*end != '\0' || errno != 0 || nlines < 0))
                return usage_error("bad line count '%s' (a number, or all)", argv[i]);
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (cmd == NULL) {
            cmd = a;
        } else if (npos < 4) {
            pos[npos++] = a;
        } else {
            return usage_error("too many arguments ('%s')", a);
        }
    }
    if (help) {
        for (size_t k = 0; cmd != NULL && k < sizeof(cmd_usage) / sizeof(cmd_usage[0]); k++)
            if (strcmp(cmd, cmd_usage[k].cmd) == 0) {
                fputs(cmd_usage[k].text, stdout);
                return 0;
            }
        fputs(usage, stdout);
        return 0;
    }
    if (cmd == NULL) cmd = "run";
    int is_logs = strcmp(cmd, "logs") == 0, is_restart = strcmp(cmd, "restart") == 0;
    if (!is_logs && (ts || since >= 0 || follow || nlines != -2))
        return usage_error("-t, --since, -f and -n go with logs, not %s", cmd);
    if (!is_restart && nowait) return usage_error("--no-wait goes with restart, not %s", cmd);
    if (config == NULL) config = sv_manifest_default();
    if (only != NULL && strcmp(cmd, "run") != 0) return usage_error("--only goes with run, not %s", cmd);
    if (check && strcmp(cmd, "status") != 0) return usage_error("--check goes with status, not %s", cmd);

    if (strcmp(cmd, "run") == 0) {
        if (npos > 0) return usage_error("run: unexpected argument '%s'", pos[0]);
        return sv_run(config, only);
    }
    if (strcmp(cmd, "check") == 0) {
        if (npos > 1) return usage_error("check: unexpected argument '%s'", pos[1]);
        return cmd_check(npos == 1 ? pos[0] : config);
    }
    char req[SV_CTL_REQ_MAX], sockbuf[512];
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "ping") == 0) {
        if (npos > 0) return usage_error("unexpected argument '%s'", pos[0]);
        snprintf(req, sizeof(req), "%s%s%s", cmd, json ? " json" : "", check ? " check" : "");
    } else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 || is_restart || is_logs) {
        if (npos != 1 && !(is_logs && npos == 0)) return usage_error("%s needs one service name", cmd);
        const char *name = npos == 1 ? pos[0] : "*";
        if (strlen(name) > MF_NAME_MAX || strchr(name, ' ') != NULL || (npos == 1 && strcmp(name, "*") == 0))
            return usage_error("bad service name '%s'", name);
        if (is_logs) {
            char count[24], sincew[40] = "";
            if (nlines == -1)
                snprintf(count, sizeof(count), "all");
            else
                snprintf(count, sizeof(count), "%ld", nlines == -2 ? 50 : nlines);
            if (since >= 0)
                snprintf(sincew, sizeof(sincew), " since=%lld", (long long)(sv_wall_ms() - since));
            snprintf(req, sizeof(req), "logs %s %s%s%s%s", name, count, follow ? " follow" : "",
                     ts ? " ts" : "", sincew);
        } else {
            snprintf(req, sizeof(req), "%s %s%s", cmd, name, is_restart && !nowait ? " wait" : "");
        }
    } else {
        return usage_error("unknown command '%s'", cmd);
    }
    const char *sock = find_socket(sockopt, config, sockbuf, sizeof(sockbuf));
    int rc = client_request(sock, req, is_logs && follow ? -1 : is_restart && !nowait ? timeout_ms : 10000);
    if (rc == 4 && is_restart)
        fprintf(stderr, "xtask-supervisor: restart %s: not READY within %lld ms (see status and logs %s)\n",
                pos[0], (long long)timeout_ms, pos[0]);
    else if (rc == 4)
        fprintf(stderr, "xtask-supervisor: %s: no answer (timeout)\n", sock);
    if (rc == 4) rc = 1;
    return rc;
}
