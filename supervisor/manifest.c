/*
 * manifest: read, expand and validate configs/services.yaml (contract: manifest.h, schema:
 * docs/ARCHITECTURE.md, "The manifest").
 *
 * xt_conf does the YAML, the positions and the ${VAR} expansion. This file walks the tree with one
 * table per mapping (top level, supervisor, service, probe, backoff, ...): each row names a key,
 * its type, where its value goes (offset into the struct being filled), its bounds, and whether it
 * is required. The accepted keys and the did-you-mean candidates come from the same rows. Keys are
 * visited in file order and the first error wins: "path:line:col: message".
 *
 * Top-level `x-...` keys are ignored (a place for YAML anchors, as in Compose). Keys other tools
 * use (`healthcheck`, `environment`, `working_dir`) get a hint at ours.
 *
 * Value errors name the setting by its dotted path (`services.nats.stop.timeout: ...`); unknown
 * keys name the mapping (`unknown key 'helth' in service 'nats' (did you mean ...)`). Errors about
 * a value that is missing (`ready:` with nothing after it) point at its key.
 *
 * Secrets (manifest_secrets_load) live here too: they are part of the manifest's contract.
 */
#include "manifest.h"
#include "xt_conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* SHA-256 through OpenSSL's low-level SHA256_* (deprecated in 3.0, still there in every 3.x): EVP
 * would fetch the digest from the default provider, which initialises OpenSSL's library context
 * and provider store: about 2 MB of heap and code pages in the long-running supervisor, whose whole
 * budget is 1.5 MB (supervisor/README.md, "Memory"). The low-level code is a few KB and allocates
 * nothing. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/random.h>

#define MF_MAX_ENV 256                       /* variables in one env: mapping */
#define MF_ENV_NAME_MAX 128                  /* longest variable name */
#define MF_DURATION_MAX (24 * 3600 * 1000LL) /* no setting needs more than a day */
#define MF_SECRET_FILE_MAX 8192              /* a secret file larger than this is not one of ours */
#define MF_SECRET_BYTES_MAX 1024

_Static_assert(sizeof(mf_restart) == sizeof(int) && sizeof(mf_svc_type) == sizeof(int) &&
                   sizeof(mf_log_format) == sizeof(int) && sizeof(mf_dep_cond) == sizeof(int),
               "enum fields are filled through int pointers");

/* --- parse context ------------------------------------------------------------------------ */

typedef struct mf_ctx {
    const xt_doc *doc;
    manifest *m;
    char *err;
    size_t errlen;
    int cur; /* index of the service being parsed */
    /* for messages after the first pass, one row per service (allocated with m->services) */
    const xt_node *(*dep_key)[MF_MAX_DEPS];
    const xt_node *(*dep_cond)[MF_MAX_DEPS];
    const xt_node **svc_map;
    const xt_node *socket_node; /* supervisor.control_socket, when given */
    const xt_node *secret_key[MF_MAX_SECRETS];
} mf_ctx;

static int mf_fail(mf_ctx *c, const xt_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int mf_fail(mf_ctx *c, const xt_node *at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return xt_conf_error(c->err, c->errlen, c->doc, at, "%s", msg);
}

static int mf_oom(mf_ctx *c, const xt_node *at)
{
    return mf_fail(c, at, "out of memory");
}

static int is_null(const xt_node *n)
{
    return n == NULL || (n->kind == XT_NODE_SCALAR && n->is_null);
}

/* Where to point for a value: its key when the value is missing (an empty scalar sits wherever
 * the parser found the next token). */
static const xt_node *mf_pos(const xt_node *key, const xt_node *val)
{
    return is_null(val) && key != NULL ? key : val;
}

static const char *kind_of(const xt_node *n)
{
    if (is_null(n)) return "nothing";
    return n->kind == XT_NODE_MAP ? "a mapping" : n->kind == XT_NODE_SEQ ? "a list" : "a string";
}

/* --- typed values ------------------------------------------------------------------------- */

static int mf_want_map(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what)
{
    if (val != NULL && val->kind == XT_NODE_MAP) return 0;
    return mf_fail(c, mf_pos(key, val), "%s: expected a mapping, got %s", what, kind_of(val));
}

static int mf_string(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, const char **out)
{
    if (is_null(val)) return mf_fail(c, mf_pos(key, val), "%s: has no value", what);
    return xt_conf_string(c->doc, val, what, out, c->err, c->errlen);
}

static int all_digits(const char *s)
{
    if (*s == '\0') return 0;
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* A duration in ms; zero only when min_ms is 0. The unit hint, negative and zero are told apart
 * because they are the common mistakes. */
static int mf_duration(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, int64_t min_ms,
                       int64_t *out)
{
    int64_t ms;
    if (is_null(val))
        return mf_fail(c, mf_pos(key, val), "%s: has no value (a duration like 100ms, 5s or 2m)", what);
    if (val->kind == XT_NODE_SCALAR) {
        const char *s = val->str;
        if (s[0] == '-') return mf_fail(c, val, "%s: '%s' must not be negative", what, s);
        if (all_digits(s) && strcmp(s, "0") != 0)
            return mf_fail(c, val, "%s: '%s' needs a unit: ms, s, m, h", what, s);
        if (xt_duration_parse(s, &ms) == 0 && ms == 0 && min_ms > 0)
            return mf_fail(c, val, "%s: must be more than 0", what);
    }
    return xt_conf_duration(c->doc, val, what, min_ms, MF_DURATION_MAX, out, c->err, c->errlen);
}

static int mf_int(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, long long min,
                  long long max, int *out)
{
    long long v;
    if (is_null(val))
        return mf_fail(c, mf_pos(key, val), "%s: has no value (a number from %lld to %lld)", what, min, max);
    if (xt_conf_int(c->doc, val, what, min, max, &v, c->err, c->errlen) != 0) return -1;
    *out = (int)v;
    return 0;
}

static int mf_bool(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, int *out)
{
    if (is_null(val)) return mf_fail(c, mf_pos(key, val), "%s: has no value (true or false)", what);
    return xt_conf_bool(c->doc, val, what, out, c->err, c->errlen);
}

/* Check "host:port" or "[v6]:port". NULL when fine, else what is wrong. */
static const char *hostport_problem(const char *s)
{
    const char *port;
    if (strstr(s, "://") != NULL) return "is a URL, not host:port";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1) return "is not host:port";
        if (close[1] != ':') return "has no port";
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) return "has no port";
        if (colon == s) return "has no host";
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return "is not host:port (write an IPv6 address in brackets: [::1]:port)";
        port = colon + 1;
    }
    if (*port == '\0') return "has no port";
    long pn = all_digits(port) && strlen(port) <= 5 ? strtol(port, NULL, 10) : 0;
    if (pn < 1 || pn > 65535) return "has a bad port (1 to 65535)";
    return NULL;
}

static int mf_hostport(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what,
                       const char *example, char **out)
{
    const char *s, *why;
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    if ((why = hostport_problem(s)) != NULL)
        return mf_fail(c, val, "%s: '%s' %s (expected host:port, e.g. %s)", what, s, why, example);
    if ((*out = strdup(s)) == NULL) return mf_oom(c, val);
    return 0;
}

/* A command line: a non-empty list of strings whose first is non-empty. A plain string is refused
 * (it would have to be split like a shell does, quoting included); the hint shows it as a list. */
static int mf_argv(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, char ***out,
                   size_t *argc)
{
    char **v = NULL;
    if (val != NULL && val->kind == XT_NODE_SCALAR && !val->is_null) {
        char hint[200];
        size_t n = 0;
        const char *p = val->str;
        hint[0] = '\0';
        while (*p != '\0' && n + 4 < sizeof(hint)) {
            if (isspace((unsigned char)*p)) {
                while (isspace((unsigned char)p[1]))
                    p++;
                if (p[1] != '\0') {
                    hint[n++] = ',';
                    hint[n++] = ' ';
                }
            } else {
                hint[n++] = *p;
            }
            p++;
        }
        hint[n] = '\0';
        if (*p == '\0' && strpbrk(val->str, "'\"\\$|&;<>`") == NULL)
            return mf_fail(c, val, "%s: must be a list, e.g. [%s] (a string is not split into arguments)",
                           what, hint);
        return mf_fail(c, val,
                       "%s: must be a list of arguments, e.g. [sh, -c, \"...\"] (a string is not split "
                       "into arguments)",
                       what);
    }
    if (is_null(val))
        return mf_fail(c, mf_pos(key, val), "%s: has no value (a list like [program, arg, ...])", what);
    if (val->kind == XT_NODE_SEQ && val->len > MF_MAX_ARGV)
        return mf_fail(c, val->items[MF_MAX_ARGV], "%s: too many arguments (at most %d)", what, MF_MAX_ARGV);
    if (val->kind == XT_NODE_SEQ && val->len > 0 && val->items[0]->kind == XT_NODE_SCALAR &&
        !val->items[0]->is_null && val->items[0]->str[0] == '\0')
        return mf_fail(c, val->items[0], "%s: the program name (first item) is empty", what);
    if (xt_conf_strv(c->doc, val, what, 0, 1, &v, c->err, c->errlen) != 0) return -1;
    *out = v;
    if (argc != NULL) *argc = xt_strv_len(v);
    return 0;
}

static int env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MF_ENV_NAME_MAX || isdigit((unsigned char)s[0])) return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

/* `env:` mapping -> "K=V" vector (never NULL on success). */
static int mf_env(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, char ***out)
{
    char **v = NULL;
    size_t i;
    if (!is_null(val) && mf_want_map(c, key, val, what) != 0) return -1;
    size_t n = is_null(val) ? 0 : val->len;
    if (n > MF_MAX_ENV)
        return mf_fail(c, val->keys[MF_MAX_ENV], "%s: too many variables (at most %d)", what, MF_MAX_ENV);
    if ((v = calloc(n + 1, sizeof(*v))) == NULL) return mf_oom(c, key);
    for (i = 0; i < n; i++) {
        const xt_node *k = val->keys[i], *x = val->items[i];
        if (!env_name_ok(k->str)) {
            mf_fail(c, k,
                    "%s: invalid variable name '%s' (letters, digits and '_', not starting with a digit)",
                    what, k->str);
            goto fail;
        }
        if (is_null(x)) {
            mf_fail(c, k, "%s.%s: has no value (write \"\" for an empty string)", what, k->str);
            goto fail;
        }
        if (x->kind != XT_NODE_SCALAR) {
            mf_fail(c, x, "%s.%s: expected a string, got %s", what, k->str, kind_of(x));
            goto fail;
        }
        size_t len = strlen(k->str) + 1 + x->str_len + 1;
        if ((v[i] = malloc(len)) == NULL) {
            mf_oom(c, k);
            goto fail;
        }
        snprintf(v[i], len, "%s=%s", k->str, x->str);
    }
    *out = v;
    return 0;
fail:
    xt_strv_free(v);
    return -1;
}

/* --- enumerations and signals ------------------------------------------------------------- */

typedef struct mf_enum {
    const char *noun;           /* "restart policy" */
    const char *const *choices; /* index = stored value */
    const char *const *aliases; /* pairs: a likely word, the choice to suggest */
} mf_enum;

static const char *const restart_names[] = {"always", "on-failure", "never", NULL};
static const char *const restart_aliases[] = {
    "no",         "never",     "false",      "never",          "off",    "never", "on_failure",
    "on-failure", "onfailure", "on-failure", "unless-stopped", "always", NULL};
static const mf_enum restart_enum = {"restart policy", restart_names, restart_aliases};
static const char *const type_names[] = {"longrun", "oneshot", NULL};
static const char *const type_aliases[] = {"simple",  "longrun", "daemon",  "longrun", "one-shot",
                                           "oneshot", "once",    "oneshot", NULL};
static const mf_enum type_enum = {"service type", type_names, type_aliases};
static const char *const cond_names[] = {"started", "ready", "completed", NULL};
static const char *const cond_aliases[] = {"service_started",
                                           "started",
                                           "service_healthy",
                                           "ready",
                                           "healthy",
                                           "ready",
                                           "service_completed_successfully",
                                           "completed",
                                           NULL};
static const mf_enum cond_enum = {"dependency condition", cond_names, cond_aliases};
static const char *const log_names[] = {"text", "json", NULL};
static const mf_enum log_enum = {"log format", log_names, NULL};
static const char *const enc_names[] = {"base64", "hex", "base64url", NULL};
static const char *const enc_aliases[] = {"b64",     "base64",     "base16",    "hex",        "hexadecimal",
                                          "hex",     "base64-url", "base64url", "base64_url", "base64url",
                                          "urlsafe", "base64url",  NULL};
static const mf_enum enc_enum = {"secret encoding", enc_names, enc_aliases};

static int mf_enum_parse(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what,
                         const mf_enum *e, int *out)
{
    const char *s, *hint = NULL;
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    for (int i = 0; e->choices[i] != NULL; i++) {
        if (strcmp(s, e->choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    for (int i = 0; e->aliases != NULL && e->aliases[i] != NULL; i += 2)
        if (strcasecmp(s, e->aliases[i]) == 0) hint = e->aliases[i + 1];
    if (hint == NULL) hint = xt_suggest(s, e->choices);
    char list[128];
    size_t n = 0;
    for (int i = 0; e->choices[i] != NULL; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
                              i == 0              ? ""
                              : e->choices[i + 1] ? ", "
                                                  : " or ",
                              e->choices[i]);
    if (hint != NULL)
        return mf_fail(c, val, "%s: unknown %s '%s' (did you mean '%s'?)", what, e->noun, s, hint);
    return mf_fail(c, val, "%s: unknown %s '%s' (expected %s)", what, e->noun, s, list);
}

static const struct {
    const char *name;
    int num;
} mf_signals[] = {
    {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},     {"SIGQUIT", SIGQUIT}, {"SIGHUP", SIGHUP},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},   {"SIGKILL", SIGKILL}, {"SIGABRT", SIGABRT},
    {"SIGALRM", SIGALRM}, {"SIGWINCH", SIGWINCH}, {"SIGPWR", SIGPWR},
};
#define MF_NSIGNALS (sizeof(mf_signals) / sizeof(mf_signals[0]))

/* SIGTERM, TERM, sigterm or 15. */
static int mf_signal(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, int *out)
{
    const char *s;
    char full[40];
    const char *names[MF_NSIGNALS + 1];
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    if (all_digits(s)) {
        long num = strlen(s) < 4 ? strtol(s, NULL, 10) : -1;
        for (size_t i = 0; i < MF_NSIGNALS; i++) {
            if (num == mf_signals[i].num) {
                *out = mf_signals[i].num;
                return 0;
            }
        }
        return mf_fail(c, val,
                       "%s: signal %s is not one a service can be stopped with (use SIGTERM, SIGINT, "
                       "SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL)",
                       what, s);
    }
    snprintf(full, sizeof(full), "%s%.32s", strncasecmp(s, "SIG", 3) == 0 ? "" : "SIG", s);
    for (size_t i = 0; i < MF_NSIGNALS; i++) {
        names[i] = mf_signals[i].name;
        if (strcasecmp(full, mf_signals[i].name) == 0) {
            *out = mf_signals[i].num;
            return 0;
        }
    }
    names[MF_NSIGNALS] = NULL;
    const char *hint = xt_suggest(full, names);
    if (hint != NULL) return mf_fail(c, val, "%s: unknown signal '%s' (did you mean '%s'?)", what, s, hint);
    return mf_fail(c, val,
                   "%s: unknown signal '%s' (use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or "
                   "SIGKILL)",
                   what, s);
}

/* --- tables ------------------------------------------------------------------------------- */

typedef int (*mf_field_fn)(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what);

typedef enum { F_DUR, F_INT, F_BOOL, F_STR, F_ENUM, F_SIGNAL, F_HOSTPORT, F_ENV, F_MAP, F_FUNC } mf_ftype;

typedef struct mf_table mf_table;

/* One key of a mapping. */
typedef struct mf_field {
    const char *key;
    mf_ftype type;
    size_t off;          /* where the value goes in the struct being filled */
    long long min, max;  /* F_INT: bounds; F_DUR: min 0 allows 0, else must be > 0 */
    const void *sub;     /* F_ENUM: const mf_enum *; F_MAP: const mf_table *; F_HOSTPORT: example */
    mf_field_fn fn;      /* F_FUNC */
    const char *missing; /* required: said after "<where> " when the key is absent */
} mf_field;

struct mf_table {
    const mf_field *f;
    size_t n;
    const char *const *aliases; /* pairs: a key other tools use, the key it is here */
    int extensions;             /* `x-...` keys are accepted and ignored (a place for YAML anchors) */
};

#define FIELD_PTR(base, off, T) ((T *)(void *)((char *)(base) + (off)))

static int mf_parse_map(mf_ctx *c, const xt_node *map, const xt_node *owner, const mf_table *t,
                        const char *what, const char *where, void *base);

static int mf_field_parse(mf_ctx *c, const mf_field *f, void *base, const xt_node *key, const xt_node *val,
                          const char *what)
{
    switch (f->type) {
    case F_DUR:
        return mf_duration(c, key, val, what, f->min, FIELD_PTR(base, f->off, int64_t));
    case F_INT:
        return mf_int(c, key, val, what, f->min, f->max, FIELD_PTR(base, f->off, int));
    case F_BOOL:
        return mf_bool(c, key, val, what, FIELD_PTR(base, f->off, int));
    case F_STR: {
        const char *s;
        if (mf_string(c, key, val, what, &s) != 0) return -1;
        if ((*FIELD_PTR(base, f->off, char *) = strdup(s)) == NULL) return mf_oom(c, val);
        return 0;
    }
    case F_ENUM:
        return mf_enum_parse(c, key, val, what, f->sub, FIELD_PTR(base, f->off, int));
    case F_SIGNAL:
        return mf_signal(c, key, val, what, FIELD_PTR(base, f->off, int));
    case F_HOSTPORT:
        return mf_hostport(c, key, val, what, f->sub, FIELD_PTR(base, f->off, char *));
    case F_ENV: {
        char ***dst = FIELD_PTR(base, f->off, char **);
        xt_strv_free(*dst); /* the default empty vector */
        *dst = NULL;
        return mf_env(c, key, val, what, dst);
    }
    case F_MAP:
        if (is_null(val)) return 0; /* `backoff:` with nothing under it: defaults */
        if (mf_want_map(c, key, val, what) != 0) return -1;
        return mf_parse_map(c, val, key, f->sub, what, what, base);
    case F_FUNC:
        return f->fn(c, base, key, val, what);
    }
    return mf_fail(c, key, "internal error: bad field type");
}

/* Check the keys of `map` against table `t`, then parse each value in file order into `base`.
 * `what` prefixes value messages ("services.nats"), `where` names the mapping in unknown-key and
 * missing-key messages ("service 'nats'"); missing keys point at `owner`. */
static int mf_parse_map(mf_ctx *c, const xt_node *map, const xt_node *owner, const mf_table *t,
                        const char *what, const char *where, void *base)
{
    const char *names[32];
    char kwhat[256];
    size_t i, j;
    for (i = 0; i < t->n && i < 31; i++)
        names[i] = t->f[i].key;
    names[i] = NULL;
    /* Names from other tools (compose's healthcheck, systemd's environment): hint at ours when
     * no key of ours is close. */
    for (i = 0; t->aliases != NULL && i < map->len; i++) {
        const char *k = map->keys[i]->str, *alias[16], *hint = NULL;
        size_t na = 0;
        for (j = 0; names[j] != NULL && strcmp(names[j], k) != 0; j++)
            ;
        if (names[j] != NULL || xt_suggest(k, names) != NULL) continue;
        for (j = 0; t->aliases[j] != NULL && na < 15; j += 2)
            alias[na++] = t->aliases[j];
        alias[na] = NULL;
        if ((hint = xt_suggest(k, alias)) == NULL) continue;
        for (j = 0; t->aliases[j] != hint; j += 2)
            ;
        return mf_fail(c, map->keys[i], "unknown key '%s' in %s (did you mean '%s'?)", k, where,
                       t->aliases[j + 1]);
    }
    if (t->extensions) { /* check the keys of a view without the x- keys */
        xt_node view = *map;
        int rc;
        view.keys = calloc(map->len + 1, sizeof(*view.keys));
        view.items = calloc(map->len + 1, sizeof(*view.items));
        view.len = 0;
        if (view.keys == NULL || view.items == NULL) {
            free(view.keys);
            free(view.items);
            return mf_oom(c, map);
        }
        for (i = 0; i < map->len; i++) {
            if (strncmp(map->keys[i]->str, "x-", 2) != 0) {
                view.keys[view.len] = map->keys[i];
                view.items[view.len++] = map->items[i];
            }
        }
        rc = xt_conf_check_keys(c->doc, &view, names, where, c->err, c->errlen);
        free(view.keys);
        free(view.items);
        if (rc != 0) return -1;
    } else if (xt_conf_check_keys(c->doc, map, names, where, c->err, c->errlen) != 0) {
        return -1;
    }
    for (i = 0; i < map->len; i++) {
        for (j = 0; j < t->n && strcmp(t->f[j].key, map->keys[i]->str) != 0; j++)
            ;
        if (j == t->n) /* an x- extension key */
            continue;
        snprintf(kwhat, sizeof(kwhat), "%s%s%s", what, what[0] ? "." : "", t->f[j].key);
        if (mf_field_parse(c, &t->f[j], base, map->keys[i], map->items[i], kwhat) != 0) return -1;
    }
    for (j = 0; j < t->n; j++)
        if (t->f[j].missing != NULL && xt_map_get(map, t->f[j].key) == NULL)
            return mf_fail(c, owner, "%s %s", where, t->f[j].missing);
    return 0;
}

/* clang-format off */
#define TABLE(rows) {rows, sizeof(rows) / sizeof(rows[0]), NULL, 0}
#define TABLE_ALIASES(rows, aliases) {rows, sizeof(rows) / sizeof(rows[0]), aliases, 0}
/* clang-format on */

/* probes */

/* notify, log and sd_notify are readiness protocols, not polled probes: the service says when */
const mf_probe_kind_info mf_probe_kinds[] = {
    [PROBE_NONE] = {"none", 0, 0},           [PROBE_TCP] = {"tcp", 1, 1},       [PROBE_HTTP] = {"http", 1, 1},
    [PROBE_EXEC] = {"exec", 1, 0},           [PROBE_NOTIFY] = {"notify", 0, 0}, [PROBE_LOG] = {"log", 0, 0},
    [PROBE_SD_NOTIFY] = {"sd_notify", 0, 0},
};

static int probe_kind(mf_ctx *c, mf_probe *p, const xt_node *key, const char *what, mf_probe_kind kind)
{
    if (p->kind != PROBE_NONE) {
        char probe[200];
        snprintf(probe, sizeof(probe), "%.*s", (int)(strlen(what) - strlen(mf_probe_kinds[kind].name) - 1),
                 what);
        return mf_fail(c, key, "%s: has both '%s' and '%s' (a probe checks one thing)", probe,
                       mf_probe_kinds[p->kind].name, mf_probe_kinds[kind].name);
    }
    p->kind = kind;
    return 0;
}

static int probe_tcp(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    if (probe_kind(c, p, key, what, PROBE_TCP) != 0) return -1;
    return mf_hostport(c, key, val, what, "127.0.0.1:4222", &p->target);
}

static int probe_http(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    const char *s, *rest;
    if (probe_kind(c, p, key, what, PROBE_HTTP) != 0 || mf_string(c, key, val, what, &s) != 0) return -1;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return mf_fail(c, val, "%s: '%s' is not an http:// or https:// URL", what, s);
    if (*rest == '\0' || *rest == '/' || *rest == ':' || *rest == '?')
        return mf_fail(c, val, "%s: '%s' has no host", what, s);
    if ((p->target = strdup(s)) == NULL) return mf_oom(c, val);
    return 0;
}

static int probe_exec(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    if (probe_kind(c, p, key, what, PROBE_EXEC) != 0) return -1;
    return mf_argv(c, key, val, what, &p->argv, NULL);
}

/* `notify: 3`: s6's readiness protocol: the fd the service writes a newline to when it is ready
 * (s6-supervise's notification-fd). 0-2 are its stdin/stdout/stderr. */
static int probe_notify(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    long long fd;
    if (probe_kind(c, p, key, what, PROBE_NOTIFY) != 0) return -1;
    if (xt_conf_int(c->doc, val, what, 3, 255, &fd, c->err, c->errlen) != 0) return -1;
    p->notify_fd = (int)fd;
    return 0;
}

/* `sd_notify: true`: systemd's protocol: the service (or a process of its tree) sends READY=1 to the
 * datagram socket named by $NOTIFY_SOCKET. */
static int probe_sd_notify(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    int on = 0;
    if (xt_conf_bool(c->doc, val, what, &on, c->err, c->errlen) != 0) return -1;
    if (!on) return mf_fail(c, val, "%s: only 'true' makes sense (leave it out for no sd_notify)", what);
    return probe_kind(c, p, key, what, PROBE_SD_NOTIFY);
}

/* `log: "regex"`: ready at the first output line (stdout or stderr) that matches. POSIX extended
 * regular expressions from libc: no library to link into the static binary (PCRE2 would add about
 * 600 KB of code for features a readiness line does not need). */
static int probe_log(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_probe *p = base;
    const char *s;
    if (probe_kind(c, p, key, what, PROBE_LOG) != 0 || mf_string(c, key, val, what, &s) != 0) return -1;
    regex_t *re = calloc(1, sizeof(*re));
    if (re == NULL || (p->log_re = strdup(s)) == NULL) {
        free(re);
        return mf_oom(c, val);
    }
    int rc = regcomp(re, s, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        free(re);
        return mf_fail(c, val, "%s: '%s' is not a valid extended regular expression: %s", what, s, msg);
    }
    p->log_compiled = re;
    return 0;
}

static const mf_field probe_fields[] = {
    {.key = "notify", .type = F_FUNC, .fn = probe_notify},
    {.key = "log", .type = F_FUNC, .fn = probe_log},
    {.key = "sd_notify", .type = F_FUNC, .fn = probe_sd_notify},
    {.key = "tcp", .type = F_FUNC, .fn = probe_tcp},
    {.key = "http", .type = F_FUNC, .fn = probe_http},
    {.key = "exec", .type = F_FUNC, .fn = probe_exec},
    {.key = "interval", .type = F_DUR, .off = offsetof(mf_probe, interval_ms), .min = 1},
    {.key = "timeout", .type = F_DUR, .off = offsetof(mf_probe, timeout_ms), .min = 1},
    {.key = "start_period", .type = F_DUR, .off = offsetof(mf_probe, start_period_ms), .min = 0},
    {.key = "failures", .type = F_INT, .off = offsetof(mf_probe, failures), .min = 1, .max = 1000},
    {.key = "insecure", .type = F_BOOL, .off = offsetof(mf_probe, insecure)},
};
static const char *const probe_aliases[] = {
    "url",  "http",    "port",     "tcp",    "address",  "tcp",           "command",      "exec", "cmd",
    "exec", "retries", "failures", "period", "interval", "start_timeout", "start_period", NULL};
static const mf_table probe_table = TABLE_ALIASES(probe_fields, probe_aliases);

static int svc_probe(mf_ctx *c, mf_probe *p, const xt_node *key, const xt_node *val, const char *what,
                     int is_ready)
{
    p->line = key->line;
    p->col = key->col;
    if (is_null(val))
        return mf_fail(c, key, "%s: needs one of tcp, http, exec, notify, sd_notify or log", what);
    if (mf_want_map(c, key, val, what) != 0 || mf_parse_map(c, val, key, &probe_table, what, what, p) != 0)
        return -1;
    if (p->kind == PROBE_NONE)
        return mf_fail(c, key, "%s: needs one of tcp, http, exec, notify, sd_notify or log", what);
    if (!is_ready && !mf_probe_kinds[p->kind].polled) {
        const char *k = mf_probe_kinds[p->kind].name;
        return mf_fail(
            c, xt_map_key(val, k),
            "%s: '%s' says when a service is ready, it cannot check liveness (use tcp, http or exec%s)", what,
            k, p->kind == PROBE_SD_NOTIFY ? ", or watchdog: for WATCHDOG=1 pings" : "");
    }
    if (p->insecure && (p->kind != PROBE_HTTP || strncasecmp(p->target, "https://", 8) != 0))
        return mf_fail(c, xt_map_get(val, "insecure"),
                       "%s.insecure: only an https:// probe has a certificate to leave unchecked", what);
    if (is_ready && p->start_period_ms == 0)
        return mf_fail(c, xt_map_get(val, "start_period"),
                       "%s.start_period: must be more than 0 (how long the "
                       "service may take to become ready)",
                       what);
    return 0;
}

static int svc_ready(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    return svc_probe(c, &((mf_service *)base)->ready, key, val, what, 1);
}

static int svc_live(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    return svc_probe(c, &((mf_service *)base)->live, key, val, what, 0);
}

/* service */

static int svc_command(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_service *s = base;
    return mf_argv(c, key, val, what, &s->argv, &s->argc);
}

static int svc_dep_add(mf_ctx *c, mf_service *s, const xt_node *name, const xt_node *cond, const char *what)
{
    if (s->ndeps == MF_MAX_DEPS)
        return mf_fail(c, name, "%s: too many dependencies (at most %d)", what, MF_MAX_DEPS);
    mf_dep *d = &s->deps[s->ndeps];
    d->cond = DEP_READY;
    d->index = -1;
    d->line = name->line;
    d->col = name->col;
    if (cond != NULL && !is_null(cond)) {
        char cwhat[256];
        int v;
        snprintf(cwhat, sizeof(cwhat), "%s.%s", what, name->str);
        if (mf_enum_parse(c, name, cond, cwhat, &cond_enum, &v) != 0) return -1;
        d->cond = (mf_dep_cond)v;
    }
    if ((d->name = strdup(name->str)) == NULL) return mf_oom(c, name);
    c->dep_key[c->cur][s->ndeps] = name;
    c->dep_cond[c->cur][s->ndeps] = cond;
    s->ndeps++;
    return 0;
}

/* depends_on: {name: condition, ...} or [name, ...] (each `ready`, which for a service without a
 * readiness probe means started, and for a oneshot means exited 0). */
static int svc_depends_on(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_service *s = base;
    if (is_null(val)) return 0;
    if (val->kind == XT_NODE_MAP) {
        for (size_t i = 0; i < val->len; i++)
            if (svc_dep_add(c, s, val->keys[i], val->items[i], what) != 0) return -1;
        return 0;
    }
    if (val->kind == XT_NODE_SEQ) {
        for (size_t i = 0; i < val->len; i++) {
            const xt_node *it = val->items[i];
            if (it->kind != XT_NODE_SCALAR || it->is_null || it->str[0] == '\0')
                return mf_fail(c, it, "%s: item %zu: expected a service name, got %s", what, i + 1,
                               it->kind == XT_NODE_SCALAR && !it->is_null ? "an empty string" : kind_of(it));
            for (size_t j = 0; j < i; j++)
                if (strcmp(val->items[j]->str, it->str) == 0)
                    return mf_fail(c, it, "%s: '%s' is listed twice", what, it->str);
            if (svc_dep_add(c, s, it, NULL, what) != 0) return -1;
        }
        return 0;
    }
    return mf_fail(c, val, "%s: expected a mapping {service: condition} or a list of services, got %s", what,
                   kind_of(val));
}

static const mf_field backoff_fields[] = {
    {.key = "initial", .type = F_DUR, .off = offsetof(mf_service, backoff_initial_ms), .min = 1},
    {.key = "max", .type = F_DUR, .off = offsetof(mf_service, backoff_max_ms), .min = 1},
    {.key = "reset_after", .type = F_DUR, .off = offsetof(mf_service, backoff_reset_ms), .min = 1},
};
static const mf_table backoff_table = TABLE(backoff_fields);

static const mf_field restart_limit_fields[] = {
    {.key = "count",
     .type = F_INT,
     .off = offsetof(mf_service, restart_limit_count),
     .min = 1,
     .max = 100000},
    {.key = "window", .type = F_DUR, .off = offsetof(mf_service, restart_limit_window_ms), .min = 1},
};
static const mf_table restart_limit_table = TABLE(restart_limit_fields);

static const mf_field stop_fields[] = {
    {.key = "signal", .type = F_SIGNAL, .off = offsetof(mf_service, stop_signal)},
    {.key = "timeout", .type = F_DUR, .off = offsetof(mf_service, stop_timeout_ms), .min = 1},
};
static const mf_table stop_table = TABLE(stop_fields);

/* `user:` / `group:`: a name or a number, kept with its position; resolved by the supervisor (users.c)
 * at check, run and reload, where an unknown one is reported at this position. */
static int svc_ident_field(mf_ctx *c, const xt_node *key, const xt_node *val, const char *what, char **dst,
                           int *line, int *col)
{
    const char *s;
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    if (*s == '\0' || strlen(s) > 255 || strpbrk(s, ": \t\n") != NULL)
        return mf_fail(c, val, "%s: '%s' is not a user or group name or number", what, s);
    free(*dst);
    if ((*dst = strdup(s)) == NULL) return mf_oom(c, val);
    *line = val->line;
    *col = val->col;
    return 0;
}

static int svc_user(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_service *sv = base;
    return svc_ident_field(c, key, val, what, &sv->user, &sv->user_line, &sv->user_col);
}

static int svc_group(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_service *sv = base;
    return svc_ident_field(c, key, val, what, &sv->group, &sv->group_line, &sv->group_col);
}

/* `secrets: [NAME, ...]`: which top-level secrets this service gets (checked against them later). */
static int svc_secrets(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_service *sv = base;
    (void)key;
    if (val->kind != XT_NODE_SEQ)
        return mf_fail(c, val, "%s must be a list of secret names, e.g. [AUTH_SESSION_SECRET], not %s", what,
                       kind_of(val));
    if (val->len > MF_MAX_SECRETS)
        return mf_fail(c, val, "%s: too many names (at most %d)", what, MF_MAX_SECRETS);
    xt_strv_free(sv->secrets);
    if ((sv->secrets = calloc(val->len + 1, sizeof(char *))) == NULL) return mf_oom(c, val);
    for (size_t i = 0; i < val->len; i++) {
        const xt_node *it = val->items[i];
        if (it->kind != XT_NODE_SCALAR || it->str == NULL || !env_name_ok(it->str))
            return mf_fail(c, it, "%s: expected a secret name (letters, digits and _), not %s", what,
                           kind_of(it));
        for (size_t j = 0; j < i; j++)
            if (strcmp(sv->secrets[j], it->str) == 0)
                return mf_fail(c, it, "%s: '%s' is listed twice", what, it->str);
        if ((sv->secrets[i] = strdup(it->str)) == NULL) return mf_oom(c, it);
    }
    return 0;
}

static const mf_field service_fields[] = {
    {.key = "command",
     .type = F_FUNC,
     .fn = svc_command,
     .missing = "has no 'command' (the program to run, as a list: [program, arg, ...])"},
    {.key = "type", .type = F_ENUM, .off = offsetof(mf_service, type), .sub = &type_enum},
    {.key = "depends_on", .type = F_FUNC, .fn = svc_depends_on},
    {.key = "ready", .type = F_FUNC, .fn = svc_ready},
    {.key = "live", .type = F_FUNC, .fn = svc_live},
    {.key = "restart", .type = F_ENUM, .off = offsetof(mf_service, restart), .sub = &restart_enum},
    {.key = "backoff", .type = F_MAP, .sub = &backoff_table},
    {.key = "restart_limit", .type = F_MAP, .sub = &restart_limit_table},
    {.key = "stop", .type = F_MAP, .sub = &stop_table},
    {.key = "essential", .type = F_BOOL, .off = offsetof(mf_service, essential)},
    {.key = "user", .type = F_FUNC, .fn = svc_user},
    {.key = "group", .type = F_FUNC, .fn = svc_group},
    {.key = "env", .type = F_ENV, .off = offsetof(mf_service, env)},
    {.key = "secrets", .type = F_FUNC, .fn = svc_secrets},
    {.key = "workdir", .type = F_STR, .off = offsetof(mf_service, workdir)},
    {.key = "autostart", .type = F_BOOL, .off = offsetof(mf_service, autostart)},
    {.key = "watchdog", .type = F_DUR, .off = offsetof(mf_service, watchdog_ms), .min = 1},
};
static const char *const service_aliases[] = {
    "health",      "ready", "healthcheck", "ready",       "readiness", "ready",   "liveness",
    "live",        "cmd",   "command",     "exec",        "command",   "args",    "command",
    "environment", "env",   "working_dir", "workdir",     "cwd",       "workdir", "requires",
    "depends_on",  "after", "depends_on",  "stop_signal", "stop",      NULL};
static const mf_table service_table = TABLE_ALIASES(service_fields, service_aliases);

static void svc_defaults(mf_service *s)
{
    s->type = SVC_TYPE_LONGRUN;
    s->restart = RESTART_ALWAYS;
    s->backoff_initial_ms = 100;
    s->backoff_max_ms = 30000;
    s->backoff_reset_ms = 60000;
    s->restart_limit_count = 10;
    s->restart_limit_window_ms = 60000;
    s->stop_signal = SIGTERM;
    s->stop_timeout_ms = 3000;
    s->essential = 0;
    s->autostart = 1;
    s->ready.interval_ms = 100;
    s->ready.timeout_ms = 1000;
    s->ready.start_period_ms = 30000;
    s->ready.failures = 3;
    s->live.interval_ms = 5000;
    s->live.timeout_ms = 1000;
    s->live.start_period_ms = 0;
    s->live.failures = 3;
}

/* Checks across keys of one service, once all of them are read. */
static int svc_check(mf_ctx *c, mf_service *s, const xt_node *map, const char *what)
{
    const xt_node *restart = xt_map_get(map, "restart");
    if (s->type == SVC_TYPE_ONESHOT) {
        if (restart == NULL)
            s->restart = RESTART_ON_FAILURE;
        else if (s->restart == RESTART_ALWAYS)
            return mf_fail(c, restart,
                           "%s.restart: a oneshot service runs to completion: use on-failure or never, "
                           "not always",
                           what);
        if (s->live.kind != PROBE_NONE)
            return mf_fail(c, xt_map_key(map, "live"), "%s.live: a oneshot service has no liveness probe",
                           what);
    }
    if (s->backoff_max_ms < s->backoff_initial_ms) {
        const xt_node *bo = xt_map_get(map, "backoff");
        const xt_node *at = xt_map_get(bo, "max") ? xt_map_get(bo, "max") : xt_map_get(bo, "initial");
        char a[32], b[32];
        return mf_fail(c, at, "%s.backoff: max (%s) is less than initial (%s)", what,
                       xt_duration_format(s->backoff_max_ms, b, sizeof(b)),
                       xt_duration_format(s->backoff_initial_ms, a, sizeof(a)));
    }
    if (s->watchdog_ms > 0 && s->ready.kind != PROBE_SD_NOTIFY)
        return mf_fail(
            c, xt_map_get(map, "watchdog"),
            "%s.watchdog: needs ready: { sd_notify: true } (WATCHDOG=1 comes on the notify socket)", what);
    if (s->env == NULL && (s->env = calloc(1, sizeof(char *))) == NULL) return mf_oom(c, map);
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MF_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return 0;
    for (; *s != '\0'; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' || *s == '_')) return 0;
    return 1;
}

static int top_services(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    manifest *m = base;
    if (is_null(val) || (val->kind == XT_NODE_MAP && val->len == 0))
        return mf_fail(c, mf_pos(key, val), "services: no services defined");
    if (mf_want_map(c, key, val, what) != 0) return -1;
    if (val->len > MF_MAX_SERVICES)
        return mf_fail(c, val->keys[MF_MAX_SERVICES], "too many services (at most %d)", MF_MAX_SERVICES);
    if (m->services != NULL) return mf_fail(c, key, "services: defined twice"); /* cannot happen */
    /* sized for what the file holds: a 4-service manifest does not pay for 1000 */
    if ((m->services = calloc(val->len, sizeof(*m->services))) == NULL ||
        (m->order = calloc(val->len, sizeof(*m->order))) == NULL ||
        (c->dep_key = calloc(val->len, sizeof(*c->dep_key))) == NULL ||
        (c->dep_cond = calloc(val->len, sizeof(*c->dep_cond))) == NULL ||
        (c->svc_map = calloc(val->len, sizeof(*c->svc_map))) == NULL)
        return mf_oom(c, key);
    for (size_t i = 0; i < val->len; i++) {
        const xt_node *k = val->keys[i], *v = val->items[i];
        char swhat[128], where[128];
        if (!name_ok(k->str))
            return mf_fail(c, k,
                           "invalid service name '%s' (lowercase letters, digits, '-' and '_', starting with "
                           "a letter or digit, at most %d bytes)",
                           k->str, MF_NAME_MAX);
        mf_service *s = &m->services[m->nservices++];
        svc_defaults(s);
        if ((s->name = strdup(k->str)) == NULL) return mf_oom(c, k);
        s->line = k->line;
        s->col = k->col;
        c->cur = (int)(m->nservices - 1);
        c->svc_map[c->cur] = v;
        snprintf(swhat, sizeof(swhat), "services.%s", s->name);
        snprintf(where, sizeof(where), "service '%s'", s->name);
        if (is_null(v)) return mf_fail(c, k, "%s %s", where, service_fields[0].missing);
        if (mf_want_map(c, k, v, swhat) != 0 || mf_parse_map(c, v, k, &service_table, swhat, where, s) != 0 ||
            svc_check(c, s, v, swhat) != 0)
            return -1;
    }
    return 0;
}

/* secrets */

/* `prefix:` goes verbatim into the environment and into programs' configs: printable ASCII only,
 * no spaces, quotes, '$' or '\\' (they would mean something to whoever reads the value), bounded. */
static int secret_prefix(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    mf_secret *sec = base;
    const char *s;
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    if (strlen(s) > MF_SECRET_PREFIX_MAX)
        return mf_fail(c, val, "%s: longer than %d bytes", what, MF_SECRET_PREFIX_MAX);
    for (const char *p = s; *p != '\0'; p++)
        if (*p <= ' ' || *p > '~' || strchr("\"'$\\`", *p) != NULL)
            return mf_fail(c, val,
                           "%s: '%s' has a character that is not allowed (printable ASCII without "
                           "spaces, quotes, '$', '\\' or '`')",
                           what, s);
    free(sec->prefix);
    if ((sec->prefix = strdup(s)) == NULL) return mf_oom(c, val);
    return 0;
}

static const mf_field secret_fields[] = {
    {.key = "bytes", .type = F_INT, .off = offsetof(mf_secret, bytes), .min = 1, .max = MF_SECRET_BYTES_MAX},
    {.key = "file",
     .type = F_STR,
     .off = offsetof(mf_secret, file),
     .missing = "has no 'file' (where the value is kept between starts)"},
    {.key = "encoding", .type = F_ENUM, .off = offsetof(mf_secret, encoding), .sub = &enc_enum},
    {.key = "prefix", .type = F_FUNC, .fn = secret_prefix},
};
static const mf_table secret_table = TABLE(secret_fields);

static int top_secrets(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    manifest *m = base;
    if (is_null(val)) return 0;
    if (mf_want_map(c, key, val, what) != 0) return -1;
    for (size_t i = 0; i < val->len; i++) {
        const xt_node *k = val->keys[i], *v = val->items[i];
        char swhat[200], where[200];
        if (m->nsecrets == MF_MAX_SECRETS)
            return mf_fail(c, k, "too many secrets (at most %d)", MF_MAX_SECRETS);
        if (!env_name_ok(k->str))
            return mf_fail(c, k,
                           "invalid secret name '%s' (it is exported as an environment variable: letters, "
                           "digits and '_', not starting with a digit)",
                           k->str);
        mf_secret *s = &m->secrets[m->nsecrets++];
        s->bytes = 32;
        s->line = k->line;
        s->col = k->col;
        c->secret_key[m->nsecrets - 1] = k;
        if ((s->name = strdup(k->str)) == NULL) return mf_oom(c, k);
        snprintf(swhat, sizeof(swhat), "secrets.%s", s->name);
        snprintf(where, sizeof(where), "secret '%s'", s->name);
        if (is_null(v)) return mf_fail(c, k, "%s %s", where, secret_fields[1].missing);
        if (v->kind != XT_NODE_MAP)
            return mf_fail(c, v, "%s: expected a mapping {bytes: 32, file: PATH}, got %s", swhat, kind_of(v));
        if (mf_parse_map(c, v, k, &secret_table, swhat, where, s) != 0) return -1;
    }
    return 0;
}

/* supervisor */

static int sup_socket(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    manifest *m = base;
    const char *s;
    if (mf_string(c, key, val, what, &s) != 0) return -1;
    c->socket_node = val;
    if ((m->control_socket = strdup(s)) == NULL) return mf_oom(c, val);
    return 0;
}

static const mf_field log_fields[] = {
    {.key = "format", .type = F_ENUM, .off = offsetof(manifest, log_format), .sub = &log_enum},
};
static const mf_table log_table = TABLE(log_fields);

static const mf_field supervisor_fields[] = {
    {.key = "control_socket", .type = F_FUNC, .fn = sup_socket},
    {.key = "stop_timeout", .type = F_DUR, .off = offsetof(manifest, stop_timeout_ms), .min = 1},
    {.key = "status_http",
     .type = F_HOSTPORT,
     .off = offsetof(manifest, status_http),
     .sub = "127.0.0.1:9100"},
    {.key = "log", .type = F_MAP, .sub = &log_table},
};
static const mf_table supervisor_table = TABLE(supervisor_fields);

static int top_supervisor(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    if (is_null(val)) return 0;
    if (mf_want_map(c, key, val, what) != 0) return -1;
    return mf_parse_map(c, val, key, &supervisor_table, what, "'supervisor'", base);
}

static int top_version(mf_ctx *c, void *base, const xt_node *key, const xt_node *val, const char *what)
{
    (void)base;
    if (is_null(val) || val->kind != XT_NODE_SCALAR)
        return mf_fail(c, mf_pos(key, val), "version: expected 1, got %s", kind_of(val));
    if (strcmp(val->str, "1") != 0)
        return mf_fail(c, val, "version: unsupported version '%s' (this supervisor reads version 1)",
                       val->str);
    return 0;
}

static const mf_field top_fields[] = {
    {.key = "version", .type = F_FUNC, .fn = top_version, .missing = "has no 'version' (add 'version: 1')"},
    {.key = "supervisor", .type = F_FUNC, .fn = top_supervisor},
    {.key = "env", .type = F_ENV, .off = offsetof(manifest, env)},
    {.key = "secrets", .type = F_FUNC, .fn = top_secrets},
    {.key = "services", .type = F_FUNC, .fn = top_services, .missing = "has no 'services'"},
};
static const mf_table top_table = {top_fields, sizeof(top_fields) / sizeof(top_fields[0]), NULL, 1};

/* --- cross-checks ------------------------------------------------------------------------- */

/* Resolve every depends_on name to an index; unknown, self and `completed` on a long-running
 * service are refused here (cycles in graph_order). */
static int mf_resolve_deps(mf_ctx *c)
{
    manifest *m = c->m;
    const char *names[MF_MAX_SERVICES + 1];
    for (size_t i = 0; i < m->nservices; i++)
        names[i] = m->services[i].name;
    names[m->nservices] = NULL;
    for (size_t i = 0; i < m->nservices; i++) {
        mf_service *s = &m->services[i];
        for (size_t j = 0; j < s->ndeps; j++) {
            mf_dep *d = &s->deps[j];
            const xt_node *at = c->dep_key[i][j];
            if (strcmp(d->name, s->name) == 0)
                return mf_fail(c, at, "service '%s' depends on itself", s->name);
            d->index = manifest_find(m, d->name);
            if (d->index < 0) {
                const char *hint = xt_suggest(d->name, names);
                if (hint != NULL)
                    return mf_fail(c, at, "service '%s' depends on unknown service '%s' (did you mean '%s'?)",
                                   s->name, d->name, hint);
                return mf_fail(c, at, "service '%s' depends on unknown service '%s'", s->name, d->name);
            }
            if (d->cond == DEP_COMPLETED && m->services[d->index].type != SVC_TYPE_ONESHOT)
                return mf_fail(
                    c, c->dep_cond[i][j] != NULL ? c->dep_cond[i][j] : at,
                    "services.%s.depends_on.%s: 'completed' needs a oneshot service, and '%s' is not "
                    "(type: oneshot)",
                    s->name, d->name, d->name);
        }
    }
    return 0;
}

static int env_has(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') return 1;
    return 0;
}

/* A secret is exported under its own name: an env entry of the same name would hide it. */
static int mf_check_secret_names(mf_ctx *c)
{
    manifest *m = c->m;
    for (size_t i = 0; i < m->nsecrets; i++) {
        const char *name = m->secrets[i].name;
        if (env_has(m->env, name))
            return mf_fail(c, c->secret_key[i],
                           "secret '%s' is also set in env (the secret is exported under that "
                           "name)",
                           name);
        for (size_t j = 0; j < m->nservices; j++)
            if (env_has(m->services[j].env, name))
                return mf_fail(c, c->secret_key[i],
                               "secret '%s' is also set in services.%s.env (the secret is "
                               "exported under that name)",
                               name, m->services[j].name);
    }
    return 0;
}

/* Secrets reach only the services that name them: every name a service lists is a secret, and every
 * secret is named by some service (a secret nobody gets is a mistake: a forgotten name, or a secret
 * that should go). */
static int mf_check_secret_scopes(mf_ctx *c)
{
    manifest *m = c->m;
    const char *names[MF_MAX_SECRETS + 1];
    int used[MF_MAX_SECRETS] = {0};
    for (size_t i = 0; i < m->nsecrets; i++)
        names[i] = m->secrets[i].name;
    names[m->nsecrets] = NULL;
    for (size_t i = 0; i < m->nservices; i++) {
        mf_service *s = &m->services[i];
        if (s->secrets == NULL && (s->secrets = calloc(1, sizeof(char *))) == NULL) return mf_oom(c, NULL);
        const xt_node *list = c->svc_map[i] != NULL ? xt_map_get(c->svc_map[i], "secrets") : NULL;
        for (size_t j = 0; s->secrets[j] != NULL; j++) {
            const xt_node *at = list != NULL && j < list->len ? list->items[j] : c->svc_map[i];
            size_t k = 0;
            while (k < m->nsecrets && strcmp(m->secrets[k].name, s->secrets[j]) != 0)
                k++;
            if (k < m->nsecrets) {
                used[k] = 1;
                continue;
            }
            const char *hint = xt_suggest(s->secrets[j], names);
            if (hint != NULL)
                return mf_fail(c, at, "services.%s.secrets: unknown secret '%s' (did you mean '%s'?)",
                               s->name, s->secrets[j], hint);
            return mf_fail(
                c, at, "services.%s.secrets: unknown secret '%s' (define it under the top-level secrets:)",
                s->name, s->secrets[j]);
        }
    }
    for (size_t k = 0; k < m->nsecrets; k++)
        if (!used[k])
            return mf_fail(c, c->secret_key[k],
                           "secret '%s' is given to no service: list it in the secrets: of the services that "
                           "need it (a secret reaches only those)",
                           m->secrets[k].name);
    return 0;
}

static int mf_check_socket(mf_ctx *c)
{
    manifest *m = c->m;
    if (m->control_socket == NULL) {
        char msg[256];
        size_t off;
        if (xt_conf_expand("${XTASK_RUN_DIR:-/run/xtask}/supervisor.sock", NULL, NULL, &m->control_socket,
                           &off, msg, sizeof(msg)) != 0)
            return mf_fail(c, c->doc->root, "supervisor.control_socket (default): %s", msg);
    }
    if (strlen(m->control_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return mf_fail(c, c->socket_node != NULL ? c->socket_node : c->doc->root,
                       "supervisor.control_socket: '%s' is too long for a Unix socket (at most %zu bytes)",
                       m->control_socket, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return 0;
}

/* --- digest ------------------------------------------------------------------------------- */

/* The canonical form is a list of "tag:length:bytes\n" records in a fixed order; mappings whose
 * order carries no meaning (env, depends_on, secrets) are sorted first, so reordering a manifest
 * changes no digest. Top-level env and the secrets' definitions are part of every service's
 * digest: the service runs with them. */
static void dg_put(SHA256_CTX *d, const char *tag, const char *s)
{
    char hdr[64];
    size_t n = s != NULL ? strlen(s) : 0;
    int k = snprintf(hdr, sizeof(hdr), "%s%s:%zu:", tag, s != NULL ? "" : "~", n);
    SHA256_Update(d, hdr, (size_t)k);
    if (n > 0) SHA256_Update(d, s, n);
    SHA256_Update(d, "\n", 1);
}

static void dg_int(SHA256_CTX *d, const char *tag, long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", v);
    dg_put(d, tag, num);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void dg_env(SHA256_CTX *d, const char *tag, char *const *env)
{
    size_t n = xt_strv_len(env);
    const char *sorted[MF_MAX_ENV + MF_MAX_SECRETS];
    if (n > sizeof(sorted) / sizeof(sorted[0])) n = sizeof(sorted) / sizeof(sorted[0]);
    for (size_t i = 0; i < n; i++)
        sorted[i] = env[i];
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);
    dg_int(d, tag, (long long)n);
    for (size_t i = 0; i < n; i++)
        dg_put(d, tag, sorted[i]);
}

static void dg_argv(SHA256_CTX *d, const char *tag, char *const *argv)
{
    size_t n = xt_strv_len(argv);
    dg_int(d, tag, (long long)n);
    for (size_t i = 0; i < n; i++)
        dg_put(d, tag, argv[i]);
}

static void dg_probe(SHA256_CTX *d, const char *tag, const mf_probe *p)
{
    dg_int(d, tag, p->kind);
    if (p->kind == PROBE_NONE) return;
    dg_put(d, "target", p->target);
    dg_argv(d, "argv", p->argv);
    dg_int(d, "interval", p->interval_ms);
    dg_int(d, "timeout", p->timeout_ms);
    dg_int(d, "start_period", p->start_period_ms);
    dg_int(d, "failures", p->failures);
    dg_int(d, "insecure", p->insecure);
    if (p->kind == PROBE_NOTIFY) dg_int(d, "notify", p->notify_fd);
    if (p->kind == PROBE_LOG) dg_put(d, "log", p->log_re);
}

static int cmp_dep(const void *a, const void *b)
{
    return strcmp((*(const mf_dep *const *)a)->name, (*(const mf_dep *const *)b)->name);
}

static int cmp_secret(const void *a, const void *b)
{
    return strcmp((*(const mf_secret *const *)a)->name, (*(const mf_secret *const *)b)->name);
}

static int mf_digest(const manifest *m, mf_service *s)
{
    SHA256_CTX ctx, *d = &ctx;
    unsigned char md[SHA256_DIGEST_LENGTH];
    const mf_dep *deps[MF_MAX_DEPS];
    const mf_secret *secrets[MF_MAX_SECRETS];
    int rc = -1;
    if (SHA256_Init(d) != 1) goto out;
    dg_put(d, "xtask-service-v1", "");
    dg_put(d, "name", s->name);
    dg_int(d, "type", s->type);
    dg_argv(d, "command", s->argv);
    dg_env(d, "env", s->env);
    if (s->secrets != NULL && s->secrets[0] != NULL) dg_env(d, "secrets", s->secrets); /* which, not values */
    dg_put(d, "workdir", s->workdir);
    dg_put(d, "user", s->user);
    if (s->group != NULL) dg_put(d, "group", s->group); /* absent: the digest of older manifests */
    for (size_t i = 0; i < s->ndeps; i++)
        deps[i] = &s->deps[i];
    qsort(deps, s->ndeps, sizeof(deps[0]), cmp_dep);
    dg_int(d, "depends_on", (long long)s->ndeps);
    for (size_t i = 0; i < s->ndeps; i++) {
        dg_put(d, "dep", deps[i]->name);
        dg_int(d, "cond", deps[i]->cond);
    }
    dg_probe(d, "ready", &s->ready);
    dg_probe(d, "live", &s->live);
    dg_int(d, "restart", s->restart);
    dg_int(d, "backoff.initial", s->backoff_initial_ms);
    dg_int(d, "backoff.max", s->backoff_max_ms);
    dg_int(d, "backoff.reset_after", s->backoff_reset_ms);
    dg_int(d, "restart_limit.count", s->restart_limit_count);
    dg_int(d, "restart_limit.window", s->restart_limit_window_ms);
    dg_int(d, "stop.signal", s->stop_signal);
    dg_int(d, "stop.timeout", s->stop_timeout_ms);
    dg_int(d, "essential", s->essential);
    dg_int(d, "autostart", s->autostart);
    if (s->watchdog_ms > 0) dg_int(d, "watchdog", s->watchdog_ms);
    dg_env(d, "global.env", m->env);
    for (size_t i = 0; i < m->nsecrets; i++)
        secrets[i] = &m->secrets[i];
    qsort(secrets, m->nsecrets, sizeof(secrets[0]), cmp_secret);
    dg_int(d, "secrets", (long long)m->nsecrets);
    for (size_t i = 0; i < m->nsecrets; i++) {
        dg_put(d, "secret", secrets[i]->name);
        dg_int(d, "bytes", secrets[i]->bytes);
        dg_put(d, "file", secrets[i]->file);
        dg_int(d, "encoding", secrets[i]->encoding);
        dg_put(d, "prefix", secrets[i]->prefix ? secrets[i]->prefix : "");
    }
    if (SHA256_Final(md, d) != 1) goto out;
    for (unsigned int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(s->digest + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    OPENSSL_cleanse(&ctx, sizeof(ctx));
    return rc;
}

/* --- public ------------------------------------------------------------------------------- */

static int manifest_build(const xt_doc *doc, manifest **out, char *err, size_t errlen)
{
    mf_ctx *c = calloc(1, sizeof(*c));
    manifest *m = calloc(1, sizeof(*m));
    int rc = -1;
    *out = NULL;
    if (c == NULL || m == NULL) {
        xt_conf_error(err, errlen, doc, NULL, "out of memory");
        goto out;
    }
    c->doc = doc;
    c->m = m;
    c->err = err;
    c->errlen = errlen;
    m->stop_timeout_ms = 4000;
    m->log_format = MF_LOG_TEXT;
    if ((m->path = strdup(doc->path)) == NULL) {
        mf_oom(c, NULL);
        goto out;
    }
    if (doc->root == NULL) {
        snprintf(err, errlen, "%s:1:1: the manifest is empty (it needs 'version: 1' and 'services:')",
                 doc->path);
        goto out;
    }
    if (doc->root->kind != XT_NODE_MAP) {
        mf_fail(c, doc->root, "the manifest must be a mapping with 'version: 1' and 'services:', not %s",
                kind_of(doc->root));
        goto out;
    }
    if (mf_parse_map(c, doc->root, doc->root, &top_table, "", "the manifest", m) != 0) goto out;
    if (m->env == NULL && (m->env = calloc(1, sizeof(char *))) == NULL) {
        mf_oom(c, NULL);
        goto out;
    }
    if (mf_check_socket(c) != 0 || mf_check_secret_names(c) != 0 || mf_check_secret_scopes(c) != 0 ||
        mf_resolve_deps(c) != 0 || graph_order(m, err, errlen) != 0)
        goto out;
    for (size_t i = 0; i < m->nservices; i++) {
        if (mf_digest(m, &m->services[i]) != 0) {
            mf_fail(c, NULL, "cannot compute a SHA-256 digest (OpenSSL)");
            goto out;
        }
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    manifest_free(m);
    if (c != NULL) {
        free(c->dep_key);
        free(c->dep_cond);
        free(c->svc_map);
    }
    free(c);
    return rc;
}

int manifest_load(const char *path, manifest **out, char *err, size_t errlen)
{
    xt_doc *doc = NULL;
    int rc;
    *out = NULL;
    if (xt_conf_load_file(path, &doc, err, errlen) != 0) return -1;
    rc = manifest_build(doc, out, err, errlen);
    xt_doc_free(doc);
    return rc;
}

int manifest_load_mem(const char *name, const char *text, size_t len, manifest **out, char *err,
                      size_t errlen)
{
    xt_doc *doc = NULL;
    int rc;
    *out = NULL;
    if (xt_conf_load_mem(name, text, len, NULL, NULL, &doc, err, errlen) != 0) return -1;
    rc = manifest_build(doc, out, err, errlen);
    xt_doc_free(doc);
    return rc;
}

static void probe_free(mf_probe *p)
{
    if (p->log_compiled != NULL) regfree(p->log_compiled);
    free(p->log_compiled);
    free(p->log_re);
    free(p->target);
    xt_strv_free(p->argv);
}

void manifest_free(manifest *m)
{
    if (m == NULL) return;
    for (size_t i = 0; i < m->nservices; i++) {
        mf_service *s = &m->services[i];
        free(s->name);
        xt_strv_free(s->argv);
        xt_strv_free(s->env);
        xt_strv_free(s->secrets);
        free(s->workdir);
        free(s->user);
        free(s->group);
        free(s->ident.groups);
        for (size_t j = 0; j < s->ndeps; j++)
            free(s->deps[j].name);
        probe_free(&s->ready);
        probe_free(&s->live);
    }
    for (size_t i = 0; i < m->nsecrets; i++) {
        free(m->secrets[i].name);
        free(m->secrets[i].file);
        free(m->secrets[i].prefix);
    }
    free(m->services);
    free(m->order);
    free(m->path);
    free(m->control_socket);
    free(m->status_http);
    xt_strv_free(m->env);
    free(m);
}

int manifest_find(const manifest *m, const char *name)
{
    for (size_t i = 0; m != NULL && name != NULL && i < m->nservices; i++)
        if (strcmp(m->services[i].name, name) == 0) return (int)i;
    return -1;
}

/* --- secrets ------------------------------------------------------------------------------ */

static int secret_fail(char *err, size_t errlen, const manifest *m, const mf_secret *s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int secret_fail(char *err, size_t errlen, const manifest *m, const mf_secret *s, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "%s:%d:%d: secret '%s': ", m->path, s->line, s->col, s->name);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Read an existing secret file: regular, owner-only, non-empty, one line of printable bytes. */
static int secret_read(const manifest *m, const mf_secret *s, int fd, char **out, char *err, size_t errlen)
{
    struct stat st;
    char buf[MF_SECRET_FILE_MAX + 1];
    size_t len = 0;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        secret_fail(err, errlen, m, s, "cannot stat %s: %s", s->file, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        secret_fail(err, errlen, m, s, "%s is not a regular file", s->file);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        secret_fail(err, errlen, m, s, "%s is accessible by group or others (mode %04o): chmod 600 it",
                    s->file, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            secret_fail(err, errlen, m, s, "cannot read %s: %s", s->file, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == sizeof(buf)) {
            secret_fail(err, errlen, m, s, "%s is larger than %d bytes", s->file, MF_SECRET_FILE_MAX);
            goto out;
        }
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len == 0) {
        secret_fail(err, errlen, m, s, "%s is empty (remove it to have a new value generated)", s->file);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            secret_fail(err, errlen, m, s, "%s holds a line break or a control byte (a secret is one line)",
                        s->file);
            goto out;
        }
    }
    buf[len] = '\0';
    if ((*out = strdup(buf)) == NULL) {
        secret_fail(err, errlen, m, s, "out of memory");
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

/* mkdir -p for the directories above `file`, each new one 0700. */
static int secret_mkdirs(const manifest *m, const mf_secret *s, char *err, size_t errlen)
{
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s", s->file) >= (int)sizeof(dir))
        return secret_fail(err, errlen, m, s, "path too long");
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                return secret_fail(err, errlen, m, s, "cannot create directory %s: %s", dir, strerror(errno));
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return 0;
}

static int fsync_dir_of(const char *file)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* prefix + raw bytes in the secret's encoding into out (MF_SECRET_PREFIX_MAX + 2 * n + 1 bytes at
 * least), NUL-terminated; returns the length. base64 is OpenSSL's EVP_EncodeBlock (padded);
 * base64url is the same with '-' and '_' and without padding (RFC 4648 section 5); hex is lower case. */
static int secret_encode(const mf_secret *s, const unsigned char *raw, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    size_t len = s->prefix != NULL ? strlen(s->prefix) : 0;
    if (len > 0) memcpy(out, s->prefix, len);
    char *p = out + len;
    if (s->encoding == MF_ENC_HEX) {
        for (size_t i = 0; i < n; i++) {
            *p++ = hexd[raw[i] >> 4];
            *p++ = hexd[raw[i] & 15];
        }
        *p = '\0';
        return (int)(p - out);
    }
    int k = EVP_EncodeBlock((unsigned char *)p, raw, (int)n);
    if (s->encoding == MF_ENC_BASE64URL) {
        while (k > 0 && p[k - 1] == '=')
            k--;
        p[k] = '\0';
        for (int i = 0; i < k; i++)
            p[i] = p[i] == '+' ? '-' : p[i] == '/' ? '_' : p[i];
    }
    return (int)len + k;
}

/* n random bytes from the kernel's CSPRNG (getrandom(2), blocking only until it is seeded at boot) */
static int secret_random(unsigned char *raw, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Generate a value and write it atomically without replacing a file someone else wrote in the
 * meantime (link(2) refuses an existing name; rename where the filesystem has no hard links).
 * Returns 1 when the file appeared meanwhile (caller reads it). */
static int secret_generate(const manifest *m, const mf_secret *s, char **out, char *err, size_t errlen)
{
    unsigned char raw[MF_SECRET_BYTES_MAX];
    char b64[MF_SECRET_PREFIX_MAX + 2 * MF_SECRET_BYTES_MAX + 2]; /* prefix + the longest encoding + \n */
    char tmp[4200];
    int fd = -1, rc = -1, tmp_made = 0;
    size_t n = (size_t)s->bytes;
    if (s->bytes < 1 || s->bytes > MF_SECRET_BYTES_MAX)
        return secret_fail(err, errlen, m, s, "bytes must be between 1 and %d", MF_SECRET_BYTES_MAX);
    if (secret_mkdirs(m, s, err, errlen) != 0) return -1;
    if (secret_random(raw, n) != 0) {
        secret_fail(err, errlen, m, s, "getrandom: %s", strerror(errno));
        goto out;
    }
    int blen = secret_encode(s, raw, n, b64);
    b64[blen] = '\n';
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", s->file) >= (int)sizeof(tmp)) {
        secret_fail(err, errlen, m, s, "path too long");
        goto out;
    }
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        secret_fail(err, errlen, m, s, "cannot create a file next to %s: %s", s->file, strerror(errno));
        goto out;
    }
    tmp_made = 1;
    size_t off = 0, total = (size_t)blen + 1;
    while (off < total) {
        ssize_t w = write(fd, b64 + off, total - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            secret_fail(err, errlen, m, s, "cannot write %s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        secret_fail(err, errlen, m, s, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (link(tmp, s->file) == 0) {
        unlink(tmp);
        tmp_made = 0;
    } else if (errno == EEXIST) {
        rc = 1; /* someone else generated it first: theirs wins */
        goto out;
    } else if (rename(tmp, s->file) == 0) {
        tmp_made = 0;
    } else {
        secret_fail(err, errlen, m, s, "cannot create %s: %s", s->file, strerror(errno));
        goto out;
    }
    fsync_dir_of(s->file);
    b64[blen] = '\0';
    if ((*out = strdup(b64)) == NULL) {
        secret_fail(err, errlen, m, s, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (tmp_made) unlink(tmp);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    return rc;
}

static int secret_get(const manifest *m, const mf_secret *s, char **out, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(s->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0) {
            int rc = secret_read(m, s, fd, out, err, errlen);
            close(fd);
            return rc;
        }
        if (errno != ENOENT)
            return secret_fail(err, errlen, m, s, "cannot open %s: %s", s->file, strerror(errno));
        int rc = secret_generate(m, s, out, err, errlen);
        if (rc <= 0) return rc;
    }
    return secret_fail(err, errlen, m, s, "%s keeps changing", s->file);
}

static void secret_free(char *v)
{
    if (v != NULL) {
        OPENSSL_cleanse(v, strlen(v));
        free(v);
    }
}

int manifest_secrets_load(const manifest *m, char ***env, char *err, size_t errlen)
{
    char *vals[MF_MAX_SECRETS] = {0};
    char **nv = NULL;
    int rc = -1;
    size_t n = xt_strv_len(*env), i;
    for (i = 0; i < m->nsecrets; i++)
        if (secret_get(m, &m->secrets[i], &vals[i], err, errlen) != 0) goto out;
    if ((nv = calloc(n + m->nsecrets + 1, sizeof(*nv))) == NULL) {
        snprintf(err, errlen, "%s: out of memory", m->path);
        goto out;
    }
    for (i = 0; i < m->nsecrets; i++) {
        size_t len = strlen(m->secrets[i].name) + 1 + strlen(vals[i]) + 1;
        if ((nv[n + i] = malloc(len)) == NULL) {
            snprintf(err, errlen, "%s: out of memory", m->path);
            goto out;
        }
        snprintf(nv[n + i], len, "%s=%s", m->secrets[i].name, vals[i]);
    }
    /* Commit: keep the old entries except those a secret replaces, then the secrets. */
    size_t k = 0;
    for (i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < m->nsecrets; j++) {
            size_t l = strlen(m->secrets[j].name);
            if (strncmp((*env)[i], m->secrets[j].name, l) == 0 && (*env)[i][l] == '=') break;
        }
        if (j < m->nsecrets)
            secret_free((*env)[i]);
        else
            nv[k++] = (*env)[i];
    }
    for (i = 0; i < m->nsecrets; i++) {
        nv[k++] = nv[n + i];
        if (k - 1 != n + i) nv[n + i] = NULL;
    }
    nv[k] = NULL;
    free(*env);
    *env = nv;
    nv = NULL;
    rc = 0;
out:
    if (nv != NULL) {
        for (i = 0; i < m->nsecrets; i++)
            secret_free(nv[n + i]);
        free(nv);
    }
    for (i = 0; i < m->nsecrets; i++)
        secret_free(vals[i]);
    return rc;
}
