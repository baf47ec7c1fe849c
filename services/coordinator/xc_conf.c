/* xc_conf: configs/xtask.yaml (see xc_conf.h). */
#include "xc_conf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xp_proto.h"

static char **strv_of(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        out[i] = strdup(v[i]);
    return out;
}

void xc_conf_defaults(xc_conf *c)
{
    static const char *const caps[] = {"task", "which", "got", "silent", "kill-port", NULL};
    static const char *const qcaps[] = {"task", NULL};
    static const char *const noop[] = {"true", NULL};
    static const char *const pass[] = {"PATH",     "HOME", "USER", "LOGNAME", "LANG", "LC_ALL",
                                       "LC_CTYPE", "TZ",   "TERM", "TMPDIR",  NULL};
    memset(c, 0, sizeof *c);
    c->region = strdup("");
    c->capabilities = strv_of(caps);
    c->events_project = strdup("default");
    c->heartbeat_ms = 5000;
    c->node_ttl_ms = 15000;
    c->replicas = 1;
    c->results_max_age_ms = 24LL * 3600 * 1000;
    c->results_max_bytes = 256 * 1024 * 1024;
    c->queue_max_bytes = 64 * 1024 * 1024;
    c->nodes_max_bytes = 8 * 1024 * 1024;
    c->manage_streams = 1;
    c->audit_max_age_ms = 90LL * 86400 * 1000;
    c->audit_max_bytes = 256 * 1024 * 1024;
    c->max_concurrent = 4;
    c->max_queued = 16;
    c->max_request_bytes = 1024 * 1024;
    c->output_tail_bytes = 4096;
    c->output_max_bytes = 256 * 1024;
    c->default_timeout_ms = 60000;
    c->max_timeout_ms = 3600 * 1000;
    c->kill_grace_ms = 500;
    c->live_lines_max = 10000;
    c->queue_capabilities = strv_of(qcaps);
    c->ack_wait_ms = 30000;
    c->tasks[0].name = strdup("noop");
    c->tasks[0].argv = strv_of(noop);
    c->tasks[0].timeout_ms = 10000;
    c->tasks[0].description = strdup("does nothing, successfully");
    c->ntasks = 1;
    c->taskfile_dir = strdup(".");
    c->taskfile_timeout_ms = 600000;
    c->which_version = 1;
    c->which_timeout_ms = 2000;
    c->download_dirs = calloc(1, sizeof(char *));
    c->download_allow_hosts = calloc(1, sizeof(char *));
    c->task_env_pass = strv_of(pass);
    c->task_env_set = calloc(1, sizeof(char *));
    xc_conf_env_build(c);
    c->download_max_bytes = 100 * 1024 * 1024;
    c->download_timeout_ms = 120000;
}

static void task_free(xc_task *t)
{
    free(t->name);
    xt_strv_free(t->argv);
    free(t->cwd);
    xt_strv_free(t->env);
    free(t->description);
    memset(t, 0, sizeof *t);
}

void xc_conf_free(xc_conf *c)
{
    free(c->region);
    xt_strv_free(c->capabilities);
    free(c->events_project);
    xt_nats_conf_free(&c->nats);
    xt_strv_free(c->queue_capabilities);
    for (size_t i = 0; i < c->ntasks; i++)
        task_free(&c->tasks[i]);
    for (size_t i = 0; i < c->nsilent; i++)
        task_free(&c->silent[i]);
    free(c->taskfile_path);
    free(c->taskfile_dir);
    xt_strv_free(c->taskfile_allow);
    xt_strv_free(c->download_dirs);
    xt_strv_free(c->download_allow_hosts);
    xt_strv_free(c->task_env_pass);
    xt_strv_free(c->task_env_set);
    xt_strv_free(c->task_env);
    memset(c, 0, sizeof *c);
}

int xc_size_parse(const char *s, size_t *out)
{
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", 1024},
                 {"KB", 1024},
                 {"KiB", 1024},
                 {"M", 1024 * 1024},
                 {"MB", 1024 * 1024},
                 {"MiB", 1024 * 1024},
                 {"G", 1024ULL * 1024 * 1024},
                 {"GB", 1024ULL * 1024 * 1024},
                 {"GiB", 1024ULL * 1024 * 1024}};
    char *end;
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > SIZE_MAX / units[i].mult) return -1;
            *out = (size_t)(v * units[i].mult);
            return 0;
        }
    }
    return -1;
}

/* Loader state: the document and the error buffer. */
typedef struct {
    const xt_doc *doc;
    char *err;
    size_t errlen;
} ld;

static int get_str(ld *l, const xt_node *m, const char *key, const char *what, char **dst)
{
    const xt_node *n = xt_map_get(m, key);
    const char *s;
    if (!n) return 0;
    if (n->kind == XT_NODE_SCALAR && n->is_null) return 0;
    if (xt_conf_string(l->doc, n, what, &s, l->err, l->errlen)) return -1;
    free(*dst);
    *dst = strdup(s);
    return 0;
}

static int get_dur(ld *l, const xt_node *m, const char *key, const char *what, int64_t min, int64_t max,
                   int64_t *dst)
{
    const xt_node *n = xt_map_get(m, key);
    return n ? xt_conf_duration(l->doc, n, what, min, max, dst, l->err, l->errlen) : 0;
}

static int get_int(ld *l, const xt_node *m, const char *key, const char *what, long long min, long long max,
                   int *dst)
{
    const xt_node *n = xt_map_get(m, key);
    long long v;
    if (!n) return 0;
    if (xt_conf_int(l->doc, n, what, min, max, &v, l->err, l->errlen)) return -1;
    *dst = (int)v;
    return 0;
}

static int get_bool(ld *l, const xt_node *m, const char *key, const char *what, int *dst)
{
    const xt_node *n = xt_map_get(m, key);
    return n ? xt_conf_bool(l->doc, n, what, dst, l->err, l->errlen) : 0;
}

static int get_size(ld *l, const xt_node *m, const char *key, const char *what, size_t min, size_t max,
                    size_t *dst)
{
    const xt_node *n = xt_map_get(m, key);
    const char *s;
    size_t v;
    if (!n) return 0;
    if (xt_conf_string(l->doc, n, what, &s, l->err, l->errlen)) return -1;
    if (xc_size_parse(s, &v) != 0)
        return xt_conf_error(l->err, l->errlen, l->doc, n, "%s: '%s' is not a size (e.g. 4096, 64KiB, 1MiB)",
                             what, s);
    if (v < min || v > max)
        return xt_conf_error(l->err, l->errlen, l->doc, n, "%s: %zu is out of range [%zu, %zu]", what, v, min,
                             max);
    *dst = v;
    return 0;
}

static int get_strv(ld *l, const xt_node *m, const char *key, const char *what, int nonempty, char ***dst)
{
    const xt_node *n = xt_map_get(m, key);
    char **v;
    if (!n) return 0;
    if (xt_conf_strv(l->doc, n, what, 0, nonempty, &v, l->err, l->errlen)) return -1;
    xt_strv_free(*dst);
    *dst = v;
    return 0;
}

static int section(ld *l, const xt_node *root, const char *key, const char *const *keys, const xt_node **out)
{
    const xt_node *n = xt_map_get(root, key);
    *out = NULL;
    if (!n || (n->kind == XT_NODE_SCALAR && n->is_null)) return 0;
    if (xt_conf_want_map(l->doc, n, key, l->err, l->errlen) ||
        xt_conf_check_keys(l->doc, n, keys, key, l->err, l->errlen))
        return -1;
    *out = n;
    return 0;
}

/* A portable environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
static int env_name_valid(const char *k)
{
    if (!*k || (*k >= '0' && *k <= '9')) return 0;
    return strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == strlen(k);
}

/* A map of variables {K: V} into a NULL-terminated "K=V" vector (replacing *dst). */
static int parse_env_map(ld *l, const xt_node *env, const char *what, char ***dst)
{
    if (xt_conf_want_map(l->doc, env, what, l->err, l->errlen)) return -1;
    if (env->len > XC_ENV_MAX)
        return xt_conf_error(l->err, l->errlen, l->doc, env, "%s: too many variables (max %d)", what,
                             XC_ENV_MAX);
    xt_strv_free(*dst);
    *dst = calloc(env->len + 1, sizeof(char *));
    for (size_t i = 0; *dst && i < env->len; i++) {
        const char *k = env->keys[i]->str, *val;
        if (!env_name_valid(k))
            return xt_conf_error(l->err, l->errlen, l->doc, env->keys[i], "%s: bad variable name '%s'", what,
                                 k);
        if (xt_conf_string(l->doc, env->items[i], what, &val, l->err, l->errlen)) return -1;
        size_t n = strlen(k) + strlen(val) + 2;
        (*dst)[i] = malloc(n);
        if ((*dst)[i]) snprintf((*dst)[i], n, "%s=%s", k, val);
    }
    return 0;
}

/* One task entry: either a map {argv, cwd, env, timeout, args, description} or a bare argv list. */
static int parse_task(ld *l, const xt_node *key, const xt_node *v, const char *sect, int64_t def_timeout,
                      xc_task *t)
{
    static const char *const keys[] = {"argv", "cwd", "env", "timeout", "args", "description", NULL};
    char what[160];
    memset(t, 0, sizeof *t);
    if (!xp_task_name_valid(key->str))
        return xt_conf_error(l->err, l->errlen, l->doc, key,
                             "%s name '%s' is not valid: up to %d characters of A-Z a-z 0-9 _ - : . "
                             "(not starting with - . :)",
                             sect, key->str, XP_ID_MAX);
    t->name = strdup(key->str);
    t->timeout_ms = def_timeout;
    snprintf(what, sizeof what, "%s.%s", sect, key->str);
    if (v->kind == XT_NODE_SEQ) return xt_conf_strv(l->doc, v, what, 0, 1, &t->argv, l->err, l->errlen);
    if (xt_conf_want_map(l->doc, v, what, l->err, l->errlen) ||
        xt_conf_check_keys(l->doc, v, keys, what, l->err, l->errlen))
        return -1;
    const xt_node *argv = xt_map_get(v, "argv");
    if (!argv)
        return xt_conf_error(l->err, l->errlen, l->doc, v,
                             "%s: 'argv' is required (a list: program and arguments)", what);
    char w2[200];
    snprintf(w2, sizeof w2, "%s.argv", what);
    if (xt_conf_strv(l->doc, argv, w2, 0, 1, &t->argv, l->err, l->errlen)) return -1;
    if (t->argv[0][0] == '\0')
        return xt_conf_error(l->err, l->errlen, l->doc, argv, "%s: the program name is empty", w2);
    snprintf(w2, sizeof w2, "%s.cwd", what);
    if (get_str(l, v, "cwd", w2, &t->cwd)) return -1;
    if (t->cwd && t->cwd[0] != '/')
        return xt_conf_error(l->err, l->errlen, l->doc, xt_map_get(v, "cwd"), "%s: must be an absolute path",
                             w2);
    snprintf(w2, sizeof w2, "%s.timeout", what);
    if (get_dur(l, v, "timeout", w2, 1, 24LL * 3600 * 1000, &t->timeout_ms)) return -1;
    snprintf(w2, sizeof w2, "%s.args", what);
    if (get_bool(l, v, "args", w2, &t->allow_args)) return -1;
    snprintf(w2, sizeof w2, "%s.description", what);
    if (get_str(l, v, "description", w2, &t->description)) return -1;
    const xt_node *env = xt_map_get(v, "env");
    if (env) {
        snprintf(w2, sizeof w2, "%s.env", what);
        if (parse_env_map(l, env, w2, &t->env)) return -1;
    }
    return 0;
}

static int parse_tasks(ld *l, const xt_node *root, const char *sect, int64_t def_timeout, xc_task *tasks,
                       size_t *ntasks)
{
    const xt_node *m = xt_map_get(root, sect);
    if (!m || (m->kind == XT_NODE_SCALAR && m->is_null)) return 0;
    if (xt_conf_want_map(l->doc, m, sect, l->err, l->errlen)) return -1;
    for (size_t i = 0; i < *ntasks; i++)
        task_free(&tasks[i]);
    *ntasks = 0;
    if (m->len > XC_TASKS_MAX)
        return xt_conf_error(l->err, l->errlen, l->doc, m, "%s: too many entries (max %d)", sect,
                             XC_TASKS_MAX);
    for (size_t i = 0; i < m->len; i++) {
        int rc = parse_task(l, m->keys[i], m->items[i], sect, def_timeout, &tasks[*ntasks]);
        (*ntasks)++; /* counted even on failure so that xc_conf_free frees it */
        if (rc) return -1;
    }
    return 0;
}

static int parse_ports(ld *l, const xt_node *m, xc_conf *c)
{
    const xt_node *n = xt_map_get(m, "ports");
    if (!n) return 0;
    if (n->kind != XT_NODE_SEQ)
        return xt_conf_error(l->err, l->errlen, l->doc, n,
                             "kill_port.ports: a list of ports or ranges (\"8081-8099\")");
    if (n->len > XC_LIST_MAX)
        return xt_conf_error(l->err, l->errlen, l->doc, n, "kill_port.ports: too many entries (max %d)",
                             XC_LIST_MAX);
    c->nkill_ports = 0;
    for (size_t i = 0; i < n->len; i++) {
        const xt_node *it = n->items[i];
        unsigned lo, hi;
        char extra;
        if (it->kind != XT_NODE_SCALAR || !it->str)
            return xt_conf_error(l->err, l->errlen, l->doc, it,
                                 "kill_port.ports: expected a port or a range");
        int k = sscanf(it->str, "%u-%u%c", &lo, &hi, &extra);
        if (k == 1 && strspn(it->str, "0123456789") == strlen(it->str))
            hi = lo;
        else if (k != 2)
            return xt_conf_error(l->err, l->errlen, l->doc, it,
                                 "kill_port.ports: '%s' is not a port or a range", it->str);
        if (lo < 1 || hi > 65535 || lo > hi)
            return xt_conf_error(l->err, l->errlen, l->doc, it, "kill_port.ports: '%s' is out of 1-65535",
                                 it->str);
        c->kill_ports[c->nkill_ports].lo = (uint16_t)lo;
        c->kill_ports[c->nkill_ports].hi = (uint16_t)hi;
        c->nkill_ports++;
    }
    return 0;
}

static int parse_dirs(ld *l, const xt_node *m, xc_conf *c)
{
    const xt_node *n = xt_map_get(m, "dirs");
    char **v;
    if (!n) return 0;
    if (xt_conf_strv(l->doc, n, "download.dirs", 0, 0, &v, l->err, l->errlen)) return -1;
    for (size_t i = 0; v[i]; i++) {
        if (v[i][0] != '/') {
            xt_strv_free(v);
            return xt_conf_error(l->err, l->errlen, l->doc, n->items[i],
                                 "download.dirs: '%s' is not absolute", n->items[i]->str);
        }
        /* Canonical when it exists (symlinks resolved), so that prefix checks compare like with like. */
        char real[PATH_MAX];
        if (realpath(v[i], real)) {
            free(v[i]);
            v[i] = strdup(real);
        }
    }
    xt_strv_free(c->download_dirs);
    c->download_dirs = v;
    return 0;
}

/* download.allow_networks: CIDR networks that the download guard lets through. */
static int parse_allow_nets(ld *l, const xt_node *m, xc_conf *c)
{
    const xt_node *n = xt_map_get(m, "allow_networks");
    char msg[160];
    if (!n) return 0;
    if (n->kind != XT_NODE_SEQ)
        return xt_conf_error(l->err, l->errlen, l->doc, n,
                             "download.allow_networks: a list of networks (\"10.0.0.0/8\", \"fdaa::/16\")");
    if (n->len > XC_LIST_MAX)
        return xt_conf_error(l->err, l->errlen, l->doc, n,
                             "download.allow_networks: too many entries (max %d)", XC_LIST_MAX);
    c->ndownload_allow_nets = 0;
    for (size_t i = 0; i < n->len; i++) {
        const xt_node *it = n->items[i];
        if (it->kind != XT_NODE_SCALAR || !it->str)
            return xt_conf_error(l->err, l->errlen, l->doc, it,
                                 "download.allow_networks: expected a network");
        if (xg_net_parse(it->str, &c->download_allow_nets[i], msg, sizeof msg) != 0)
            return xt_conf_error(l->err, l->errlen, l->doc, it, "download.allow_networks: %s", msg);
        c->ndownload_allow_nets++;
    }
    return 0;
}

/* task_env: {pass: [NAMES], set: {K: V}}. */
static int parse_task_env(ld *l, const xt_node *s, xc_conf *c)
{
    if (get_strv(l, s, "pass", "task_env.pass", 0, &c->task_env_pass)) return -1;
    for (size_t i = 0; c->task_env_pass[i]; i++) {
        if (!env_name_valid(c->task_env_pass[i]))
            return xt_conf_error(l->err, l->errlen, l->doc, xt_map_get(s, "pass"),
                                 "task_env.pass: '%s' is not a variable name", c->task_env_pass[i]);
        if (i >= XC_ENV_MAX)
            return xt_conf_error(l->err, l->errlen, l->doc, xt_map_get(s, "pass"),
                                 "task_env.pass: too many variables (max %d)", XC_ENV_MAX);
    }
    const xt_node *set = xt_map_get(s, "set");
    if (set && !(set->kind == XT_NODE_SCALAR && set->is_null) &&
        parse_env_map(l, set, "task_env.set", &c->task_env_set))
        return -1;
    return 0;
}

/* Always carried, whatever task_env.pass says: the supervisor finds a dead node's leftover tasks by
 * this marker (supervisor/procs.c) and kills them before the node starts again. Not a secret. */
#define XC_SUPERVISOR_MARK "XTASK_SERVICE"

/* Append NAME=getenv(NAME) to env[*k] unless unset or fixed by `set`. */
static void env_pass_one(char **env, size_t *k, const char *name, char *const *set)
{
    const char *v = getenv(name);
    size_t nl = strlen(name);
    for (size_t j = 0; v && set && set[j]; j++)
        if (strncmp(set[j], name, nl) == 0 && set[j][nl] == '=') v = NULL;
    for (size_t j = 0; v && j < *k; j++) /* listed twice */
        if (strncmp(env[j], name, nl) == 0 && env[j][nl] == '=') v = NULL;
    if (!v) return;
    size_t n = nl + strlen(v) + 2;
    if ((env[*k] = malloc(n))) snprintf(env[(*k)++], n, "%s=%s", name, v);
}

int xc_conf_env_build(xc_conf *c)
{
    size_t np = 0, ns = 0, k = 0;
    while (c->task_env_pass && c->task_env_pass[np])
        np++;
    while (c->task_env_set && c->task_env_set[ns])
        ns++;
    char **env = calloc(np + ns + 2, sizeof *env);
    if (!env) return -1;
    for (size_t i = 0; i < np; i++)
        env_pass_one(env, &k, c->task_env_pass[i], c->task_env_set);
    env_pass_one(env, &k, XC_SUPERVISOR_MARK, c->task_env_set);
    for (size_t j = 0; j < ns; j++)
        if ((env[k] = strdup(c->task_env_set[j]))) k++;
    xt_strv_free(c->task_env);
    c->task_env = env;
    return 0;
}

static int load_doc(xc_conf *c, const xt_doc *doc, char *err, size_t errlen)
{
    static const char *const top[] = {"version",  "node",      "nats",     "limits", "queue",
                                      "task_env", "tasks",     "taskfile", "silent", "which",
                                      "download", "kill_port", "audit",    NULL};
    static const char *const k_tenv[] = {"pass", "set", NULL};
    static const char *const k_audit[] = {"max_age", "max_bytes", NULL};
    static const char *const k_node[] = {"region", "capabilities", "events_project", NULL};
    static const char *const k_nats[] = {
        XT_NATS_CONF_KEYS, "heartbeat",         "node_ttl",        "replicas",        "results_max_age",
        "manage_streams",  "results_max_bytes", "queue_max_bytes", "nodes_max_bytes", NULL};
    static const char *const k_limits[] = {
        "max_concurrent",  "max_queued",  "max_request", "output_tail",    "output_max",
        "default_timeout", "max_timeout", "kill_grace",  "live_lines_max", NULL};
    static const char *const k_queue[] = {"capabilities", "ack_wait", NULL};
    static const char *const k_tf[] = {"enabled", "path", "dir", "allow", "timeout", NULL};
    static const char *const k_which[] = {"version", "timeout", NULL};
    static const char *const k_dl[] = {"dirs", "max_bytes", "timeout", "allow_hosts", "allow_networks", NULL};
    static const char *const k_kp[] = {"ports", NULL};
    ld l = {doc, err, errlen};
    const xt_node *root = doc->root, *s;
    if (!root) return 0; /* an empty file: defaults */
    if (xt_conf_want_map(doc, root, "the top level", err, errlen) ||
        xt_conf_check_keys(doc, root, top, "the top level", err, errlen))
        return -1;
    const xt_node *ver = xt_map_get(root, "version");
    long long version = 1;
    if (ver && xt_conf_int(doc, ver, "version", 1, 1, &version, err, errlen)) return -1;

    if (section(&l, root, "node", k_node, &s)) return -1;
    if (s && (get_str(&l, s, "region", "node.region", &c->region) ||
              get_strv(&l, s, "capabilities", "node.capabilities", 0, &c->capabilities) ||
              get_str(&l, s, "events_project", "node.events_project", &c->events_project)))
        return -1;
    if (c->region[0] && !xp_token_valid(c->region))
        return xt_conf_error(err, errlen, doc, xt_map_get(s, "region"),
                             "node.region: '%s' is not a valid token", c->region);
    if (!xp_token_valid(c->events_project))
        return xt_conf_error(err, errlen, doc, xt_map_get(s, "events_project"),
                             "node.events_project: '%s' is not a valid token", c->events_project);
    for (size_t i = 0; c->capabilities[i]; i++)
        if (!xp_token_valid(c->capabilities[i]))
            return xt_conf_error(err, errlen, doc, xt_map_get(s, "capabilities"),
                                 "node.capabilities: '%s' is not a valid token", c->capabilities[i]);

    if (section(&l, root, "nats", k_nats, &s)) return -1;
    if (s && (xt_nats_conf_parse(&c->nats, doc, s, "nats", err, errlen) ||
              get_dur(&l, s, "heartbeat", "nats.heartbeat", 100, 600000, &c->heartbeat_ms) ||
              get_dur(&l, s, "node_ttl", "nats.node_ttl", 1000, 3600000, &c->node_ttl_ms) ||
              get_int(&l, s, "replicas", "nats.replicas", 1, 5, &c->replicas) ||
              get_dur(&l, s, "results_max_age", "nats.results_max_age", 1000, 365LL * 86400000,
                      &c->results_max_age_ms) ||
              get_size(&l, s, "results_max_bytes", "nats.results_max_bytes", 1024 * 1024, (size_t)1 << 40,
                       &c->results_max_bytes) ||
              get_size(&l, s, "queue_max_bytes", "nats.queue_max_bytes", 1024 * 1024, (size_t)1 << 40,
                       &c->queue_max_bytes) ||
              get_size(&l, s, "nodes_max_bytes", "nats.nodes_max_bytes", 64 * 1024, (size_t)1 << 32,
                       &c->nodes_max_bytes) ||
              get_bool(&l, s, "manage_streams", "nats.manage_streams", &c->manage_streams)))
        return -1;
    if (c->node_ttl_ms < 2 * c->heartbeat_ms)
        return xt_conf_error(err, errlen, doc, s, "nats.node_ttl must be at least twice nats.heartbeat");

    if (section(&l, root, "audit", k_audit, &s)) return -1;
    if (s &&
        (get_dur(&l, s, "max_age", "audit.max_age", 60000, 3650LL * 86400000, &c->audit_max_age_ms) ||
         get_size(&l, s, "max_bytes", "audit.max_bytes", 1024 * 1024, (size_t)64 << 30, &c->audit_max_bytes)))
        return -1;

    if (section(&l, root, "limits", k_limits, &s)) return -1;
    if (s &&
        (get_int(&l, s, "max_concurrent", "limits.max_concurrent", 1, 256, &c->max_concurrent) ||
         get_int(&l, s, "max_queued", "limits.max_queued", 0, 4096, &c->max_queued) ||
         get_size(&l, s, "max_request", "limits.max_request", 256, 64 * 1024 * 1024, &c->max_request_bytes) ||
         get_size(&l, s, "output_tail", "limits.output_tail", 64, 512 * 1024, &c->output_tail_bytes) ||
         get_size(&l, s, "output_max", "limits.output_max", 0, 16 * 1024 * 1024, &c->output_max_bytes) ||
         get_dur(&l, s, "default_timeout", "limits.default_timeout", 1, 86400000, &c->default_timeout_ms) ||
         get_dur(&l, s, "max_timeout", "limits.max_timeout", 1, 86400000, &c->max_timeout_ms) ||
         get_dur(&l, s, "kill_grace", "limits.kill_grace", 0, 60000, &c->kill_grace_ms) ||
         get_int(&l, s, "live_lines_max", "limits.live_lines_max", 0, 10000000, &c->live_lines_max)))
        return -1;

    if (section(&l, root, "queue", k_queue, &s)) return -1;
    if (s && (get_strv(&l, s, "capabilities", "queue.capabilities", 0, &c->queue_capabilities) ||
              get_dur(&l, s, "ack_wait", "queue.ack_wait", 1000, 3600000, &c->ack_wait_ms)))
        return -1;
    for (size_t i = 0; c->queue_capabilities[i]; i++)
        if (!xp_token_valid(c->queue_capabilities[i]))
            return xt_conf_error(err, errlen, doc, xt_map_get(s, "capabilities"),
                                 "queue.capabilities: '%s' is not a valid token", c->queue_capabilities[i]);

    if (section(&l, root, "task_env", k_tenv, &s)) return -1;
    if (s && parse_task_env(&l, s, c)) return -1;

    if (parse_tasks(&l, root, "tasks", c->default_timeout_ms, c->tasks, &c->ntasks)) return -1;

    if (section(&l, root, "taskfile", k_tf, &s)) return -1;
    if (s && (get_bool(&l, s, "enabled", "taskfile.enabled", &c->taskfile_enabled) ||
              get_str(&l, s, "path", "taskfile.path", &c->taskfile_path) ||
              get_str(&l, s, "dir", "taskfile.dir", &c->taskfile_dir) ||
              get_strv(&l, s, "allow", "taskfile.allow", 0, &c->taskfile_allow) ||
              get_dur(&l, s, "timeout", "taskfile.timeout", 1, 86400000, &c->taskfile_timeout_ms)))
        return -1;
    for (size_t i = 0; c->taskfile_allow && c->taskfile_allow[i]; i++)
        if (strcmp(c->taskfile_allow[i], "*") != 0 && !xp_task_name_valid(c->taskfile_allow[i]))
            return xt_conf_error(err, errlen, doc, xt_map_get(s, "allow"),
                                 "taskfile.allow: '%s' is not a task name", c->taskfile_allow[i]);

    if (parse_tasks(&l, root, "silent", c->default_timeout_ms, c->silent, &c->nsilent)) return -1;

    if (section(&l, root, "which", k_which, &s)) return -1;
    if (s && (get_bool(&l, s, "version", "which.version", &c->which_version) ||
              get_dur(&l, s, "timeout", "which.timeout", 1, 60000, &c->which_timeout_ms)))
        return -1;

    if (section(&l, root, "download", k_dl, &s)) return -1;
    if (s &&
        (parse_dirs(&l, s, c) ||
         get_size(&l, s, "max_bytes", "download.max_bytes", 1, (size_t)64 << 30, &c->download_max_bytes) ||
         get_dur(&l, s, "timeout", "download.timeout", 1, 86400000, &c->download_timeout_ms) ||
         get_strv(&l, s, "allow_hosts", "download.allow_hosts", 0, &c->download_allow_hosts) ||
         parse_allow_nets(&l, s, c)))
        return -1;

    if (section(&l, root, "kill_port", k_kp, &s)) return -1;
    if (s && parse_ports(&l, s, c)) return -1;
    return xc_conf_env_build(c);
}

int xc_conf_load(xc_conf *c, const char *path, char *err, size_t errlen)
{
    xt_doc *doc = NULL;
    if (xt_conf_load_file(path, &doc, err, errlen)) return -1;
    int rc = load_doc(c, doc, err, errlen);
    xt_doc_free(doc);
    return rc;
}

int xc_conf_load_mem(xc_conf *c, const char *name, const char *text, xt_conf_getenv_fn getenv_fn, void *ud,
                     char *err, size_t errlen)
{
    xt_doc *doc = NULL;
    if (xt_conf_load_mem(name, text, strlen(text), getenv_fn, ud, &doc, err, errlen)) return -1;
    int rc = load_doc(c, doc, err, errlen);
    xt_doc_free(doc);
    return rc;
}

static const xc_task *find(const xc_task *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

const xc_task *xc_conf_task(const xc_conf *c, const char *name)
{
    return find(c->tasks, c->ntasks, name);
}

const xc_task *xc_conf_silent(const xc_conf *c, const char *name)
{
    return find(c->silent, c->nsilent, name);
}

int xc_conf_taskfile_allows(const xc_conf *c, const char *name)
{
    if (!c->taskfile_enabled || !xp_task_name_valid(name)) return 0;
    for (size_t i = 0; c->taskfile_allow && c->taskfile_allow[i]; i++)
        if (strcmp(c->taskfile_allow[i], "*") == 0 || strcmp(c->taskfile_allow[i], name) == 0) return 1;
    return 0;
}

int xc_conf_port_allowed(const xc_conf *c, unsigned port)
{
    for (size_t i = 0; i < c->nkill_ports; i++)
        if (port >= c->kill_ports[i].lo && port <= c->kill_ports[i].hi) return 1;
    return 0;
}

int xc_conf_has_cap(const xc_conf *c, const char *cap)
{
    for (size_t i = 0; c->capabilities && c->capabilities[i]; i++)
        if (strcmp(c->capabilities[i], cap) == 0) return 1;
    return 0;
}
