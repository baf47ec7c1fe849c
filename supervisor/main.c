/*
 * xtask-supervisor: command line. `run` (the default) supervises; the other commands talk to a
 * running supervisor over its control socket, except `check`, which only validates a manifest.
 *
 * Exit codes: 0 ok; 1 runtime error (a command the supervisor refused, an essential service failed,
 * `status --check` with an essential service not READY);
 * 2 usage or manifest error; 3 the supervisor is not running.
 */
#include "sv.h"

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
    "  -h, --help             this text\n"
    "  -V, --version          the version\n"
    "\n"
    "exit codes: 0 ok, 1 runtime error, 2 usage or manifest error, 3 supervisor not running\n";

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
    int npos = 0, json = 0, follow = 0, check = 0;
    long nlines = -1;
    if (argc > 1 && strcmp(argv[1], "__probe-https") == 0) return sv_https_probe_main(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
            fputs(usage, stdout);
            return 0;
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
            nlines = strtol(argv[i], &end, 10);
            if (*end != '\0' || nlines < 0 || nlines > SV_RING_LINES)
                return usage_error("bad line count '%s' (0..200)", argv[i]);
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
    if (cmd == NULL) cmd = "run";
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
    } else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 || strcmp(cmd, "restart") == 0 ||
               strcmp(cmd, "logs") == 0) {
        if (npos != 1) return usage_error("%s needs one service name", cmd);
        if (strlen(pos[0]) > MF_NAME_MAX || strchr(pos[0], ' ') != NULL)
            return usage_error("bad service name '%s'", pos[0]);
        if (strcmp(cmd, "logs") == 0)
            snprintf(req, sizeof(req), "logs %s %ld%s", pos[0], nlines < 0 ? 50 : nlines,
                     follow ? " follow" : "");
        else
            snprintf(req, sizeof(req), "%s %s", cmd, pos[0]);
    } else {
        return usage_error("unknown command '%s'", cmd);
    }
    const char *sock = find_socket(sockopt, config, sockbuf, sizeof(sockbuf));
    return client_request(sock, req, follow && strcmp(cmd, "logs") == 0);
}
