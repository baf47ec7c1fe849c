/*
 * auth_config: configs/auth.yml with Authelia's key names (4.37, and 4.38 spellings where they
 * differ). Keys Authelia has but xtask-auth does not need are accepted and ignored when they cannot
 * weaken security (theme, notifier, storage...); keys that would change who gets access and that we
 * do not implement (ldap, redis, rule networks...) are errors, never silently dropped.
 * xtask extensions are marked (ext) below.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <argon2.h>

#include "auth.h"
#include "xt_log.h"

typedef struct {
    const xt_doc *doc;
    char *err;
    size_t errlen;
} ctx_t;

static int dur(ctx_t *c, const xt_node *n, const char *what, int64_t min_ms, int64_t max_ms, int allow_neg,
               int64_t *out)
{
    const char *s;
    int64_t v;
    if (xt_conf_string(c->doc, n, what, &s, c->err, c->errlen) < 0) return -1;
    if (auth_duration_parse(s, allow_neg, &v) < 0)
        return xt_conf_error(c->err, c->errlen, c->doc, n,
                             "%s: bad duration '%s' (e.g. 90, 250ms, 5s, 2m, 1h, 1d, 1w, 1M, 1y%s)", what, s,
                             allow_neg ? ", -1" : "");
    if (!(allow_neg && v == -1) && (v < min_ms || v > max_ms))
        return xt_conf_error(c->err, c->errlen, c->doc, n, "%s: '%s' is out of range", what, s);
    *out = v;
    return 0;
}

static int ival(ctx_t *c, const xt_node *map, const char *key, const char *what, long long min, long long max,
                int *out)
{
    const xt_node *n = xt_map_get(map, key);
    long long v;
    if (!n) return 0;
    if (xt_conf_int(c->doc, n, what, min, max, &v, c->err, c->errlen) < 0) return -1;
    *out = (int)v;
    return 0;
}

static int u32val(ctx_t *c, const xt_node *map, const char *key, const char *what, long long min,
                  long long max, uint32_t *out)
{
    int v = (int)*out;
    if (ival(c, map, key, what, min, max, &v) < 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int sval(ctx_t *c, const xt_node *map, const char *key, const char *what, const char **out)
{
    const xt_node *n = xt_map_get(map, key);
    if (!n || n->is_null) return 0;
    return xt_conf_string(c->doc, n, what, out, c->err, c->errlen);
}

static int section(ctx_t *c, const xt_node *n, const char *what, const char *const *keys)
{
    if (!n) return 0;
    if (xt_conf_want_map(c->doc, n, what, c->err, c->errlen) < 0) return -1;
    return xt_conf_check_keys(c->doc, n, keys, what, c->err, c->errlen);
}

static int refuse(ctx_t *c, const xt_node *map, const char *key, const char *what)
{
    if (map && xt_map_get(map, key))
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_key(map, key),
                             "%s.%s is not supported by xtask-auth", what, key);
    return 0;
}

/* A path relative to the config file's directory. */
static char *resolve(const char *cfgpath, const char *p)
{
    char *dup, *dir, *out;
    size_t n;
    if (p[0] == '/' || cfgpath == NULL) return strdup(p);
    dup = strdup(cfgpath);
    if (!dup) return NULL;
    dir = dirname(dup);
    n = strlen(dir) + strlen(p) + 2;
    out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", dir, p);
    free(dup);
    return out;
}

static int parse_server(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"address",
                                       "host",
                                       "port",
                                       "path",
                                       "enable_pprof",
                                       "enable_expvars",
                                       "disable_healthcheck",
                                       "buffers",
                                       "timeouts",
                                       "headers",
                                       "endpoints",
                                       "asset_path",
                                       "tls",
                                       "hash_workers",
                                       "hash_queue",
                                       NULL};
    const char *addr = NULL, *host = NULL, *path = NULL;
    if (!n) return 0;
    if (section(c, n, "server", keys) < 0 || refuse(c, n, "tls", "server") < 0) return -1;
    if (sval(c, n, "address", "server.address", &addr) < 0 || sval(c, n, "host", "server.host", &host) < 0 ||
        ival(c, n, "port", "server.port", 1, 65535, &cfg->port) < 0 ||
        sval(c, n, "path", "server.path", &path) < 0)
        return -1;
    if (path && strcmp(path, "") != 0 && strcmp(path, "/") != 0)
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "path"),
                             "server.path: only '' or '/' (the front serves the portal on its own host)");
    if (addr) { /* 4.38: tcp://0.0.0.0:9091/ or tcp://:9091 or host:port */
        const char *p = addr, *colon;
        char *end;
        long port;
        size_t hl;
        if (strncmp(p, "tcp://", 6) == 0)
            p += 6;
        else if (strstr(p, "://"))
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "address"),
                                 "server.address: only tcp:// addresses are supported");
        colon = strrchr(p, ':');
        if (!colon)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "address"),
                                 "server.address: expected tcp://host:port");
        port = strtol(colon + 1, &end, 10);
        if (port < 1 || port > 65535 || (*end != '\0' && strcmp(end, "/") != 0))
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "address"),
                                 "server.address: bad port");
        hl = (size_t)(colon - p);
        if (hl >= sizeof(cfg->listen_host))
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "address"),
                                 "server.address: host too long");
        memcpy(cfg->listen_host, p, hl);
        cfg->listen_host[hl] = '\0';
        if (hl == 0) snprintf(cfg->listen_host, sizeof(cfg->listen_host), "0.0.0.0");
        cfg->port = (int)port;
    }
    if (host) {
        if (strlen(host) >= sizeof(cfg->listen_host))
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "host"), "server.host: too long");
        snprintf(cfg->listen_host, sizeof(cfg->listen_host), "%s", host);
    }
    if (ival(c, n, "hash_workers", "server.hash_workers", 1, 16, &cfg->hash_workers) < 0 ||
        ival(c, n, "hash_queue", "server.hash_queue", 1, 4096, &cfg->hash_queue) < 0)
        return -1;
    return 0;
}

static int parse_log(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"level", "format", "file_path", "keep_stdout", NULL};
    const char *level = NULL, *format = NULL;
    if (!n) return 0;
    if (section(c, n, "log", keys) < 0 || sval(c, n, "level", "log.level", &level) < 0 ||
        sval(c, n, "format", "log.format", &format) < 0)
        return -1;
    if (level) {
        int l = strcmp(level, "trace") == 0 ? XT_LOG_DEBUG : xt_log_level_parse(level);
        if (l < 0)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "level"),
                                 "log.level: '%s' (trace, debug, info, warn, error)", level);
        cfg->log_level = l;
    }
    if (format) {
        if (strcmp(format, "json") == 0)
            cfg->log_json = 1;
        else if (strcmp(format, "text") == 0)
            cfg->log_json = 0;
        else
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "format"),
                                 "log.format: text or json");
    }
    return 0;
}

static int parse_totp(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"disable",
                                       "issuer",
                                       "algorithm",
                                       "digits",
                                       "period",
                                       "skew",
                                       "secret_size",
                                       "allowed_algorithms",
                                       "allowed_digits",
                                       "allowed_periods",
                                       "disable_reuse_security_policy",
                                       "secrets_path",
                                       NULL};
    const char *alg = NULL, *sp = NULL;
    if (!n) return 0;
    if (section(c, n, "totp", keys) < 0 || sval(c, n, "issuer", "totp.issuer", &cfg->totp_issuer) < 0 ||
        sval(c, n, "algorithm", "totp.algorithm", &alg) < 0 ||
        sval(c, n, "secrets_path", "totp.secrets_path", &sp) < 0)
        return -1;
    if (alg) {
        if (strcasecmp(alg, "sha1") == 0)
            cfg->totp_algo = AUTH_TOTP_SHA1;
        else if (strcasecmp(alg, "sha256") == 0)
            cfg->totp_algo = AUTH_TOTP_SHA256;
        else if (strcasecmp(alg, "sha512") == 0)
            cfg->totp_algo = AUTH_TOTP_SHA512;
        else
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "algorithm"),
                                 "totp.algorithm: sha1, sha256 or sha512");
    }
    if (xt_map_get(n, "digits")) {
        if (ival(c, n, "digits", "totp.digits", 6, 8, &cfg->totp_digits) < 0) return -1;
        if (cfg->totp_digits == 7)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "digits"), "totp.digits: 6 or 8");
    }
    if (ival(c, n, "period", "totp.period", 15, 300, &cfg->totp_period) < 0 ||
        ival(c, n, "skew", "totp.skew", 0, 10, &cfg->totp_skew) < 0)
        return -1;
    if (sp && !(cfg->totp_path = resolve(cfg->doc->path, sp)))
        return xt_conf_error(c->err, c->errlen, c->doc, n, "out of memory");
    return 0;
}

static int parse_argon2(ctx_t *c, const xt_node *n, auth_config *cfg, int legacy)
{
    const char *what =
        legacy ? "authentication_backend.file.password" : "authentication_backend.file.password.argon2";
    char w[128];
    int mem = -1;
    const char *variant = NULL;
    auth_argon2_params *a = &cfg->argon2;

#define W(k) (snprintf(w, sizeof(w), "%s.%s", what, k), w)
    if (u32val(c, n, "iterations", W("iterations"), 1, 64, &a->t_cost) < 0 ||
        u32val(c, n, "parallelism", W("parallelism"), 1, 64, &a->parallelism) < 0 ||
        u32val(c, n, "salt_length", W("salt_length"), 8, 64, &a->salt_len) < 0 ||
        u32val(c, n, "key_length", W("key_length"), 16, 64, &a->key_len) < 0)
        return -1;
    if (legacy) { /* Authelia <= 4.36: memory in MiB */
        if (ival(c, n, "memory", W("memory"), 1, 1024, &mem) < 0) return -1;
        if (mem > 0) a->m_kib = (uint32_t)mem * 1024;
    } else {
        if (ival(c, n, "memory", W("memory"), 8, 1024 * 1024, &mem) < 0) return -1;
        if (mem > 0) a->m_kib = (uint32_t)mem;
        if (sval(c, n, "variant", W("variant"), &variant) < 0) return -1;
        if (variant && strcmp(variant, "argon2id") != 0)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "variant"),
                                 "%s: only argon2id is used for new hashes", W("variant"));
    }
#undef W
    if (a->m_kib < 8 * a->parallelism)
        return xt_conf_error(c->err, c->errlen, c->doc, n, "%s: memory must be at least 8 KiB per lane",
                             what);
    return 0;
}

static int parse_backend(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"password_reset", "refresh_interval", "file", "ldap", NULL};
    static const char *const fkeys[] = {"path", "watch", "search", "password", NULL};
    static const char *const pkeys[] = {"algorithm", "iterations", "salt_length", "parallelism",
                                        "memory",    "key_length", "argon2",      "sha2crypt",
                                        "pbkdf2",    "bcrypt",     "scrypt",      NULL};
    static const char *const akeys[] = {"variant",    "iterations",  "memory", "parallelism",
                                        "key_length", "salt_length", NULL};
    const xt_node *f, *p, *v;
    const char *path = NULL, *alg = NULL;
    if (!n)
        return xt_conf_error(c->err, c->errlen, c->doc, c->doc->root, "authentication_backend is required");
    if (section(c, n, "authentication_backend", keys) < 0 ||
        refuse(c, n, "ldap", "authentication_backend") < 0)
        return -1;
    if ((v = xt_map_get(n, "password_reset"))) { /* Authelia's default is enabled: never silently off */
        int off = 0;
        const xt_node *d = v->kind == XT_NODE_MAP ? xt_map_get(v, "disable") : NULL;
        if (d && xt_conf_bool(c->doc, d, "authentication_backend.password_reset.disable", &off, c->err,
                              c->errlen) < 0)
            return -1;
        if (!off)
            return xt_conf_error(
                c->err, c->errlen, c->doc, xt_map_key(n, "password_reset"),
                "authentication_backend.password_reset is not supported by xtask-auth (no reset "
                "flow: passwords change in the users file): remove it or set "
                "authentication_backend.password_reset.disable: true");
    }
    f = xt_map_get(n, "file");
    if (!f) return xt_conf_error(c->err, c->errlen, c->doc, n, "authentication_backend.file is required");
    if (section(c, f, "authentication_backend.file", fkeys) < 0) return -1;
    if (sval(c, f, "path", "authentication_backend.file.path", &path) < 0) return -1;
    if (!path)
        return xt_conf_error(c->err, c->errlen, c->doc, f, "authentication_backend.file.path is required");
    if (!(cfg->users_path = resolve(cfg->doc->path, path)))
        return xt_conf_error(c->err, c->errlen, c->doc, f, "out of memory");
    if ((v = xt_map_get(f, "watch")) && xt_conf_bool(c->doc, v, "authentication_backend.file.watch",
                                                     &cfg->users_watch, c->err, c->errlen) < 0)
        return -1;
    p = xt_map_get(f, "password");
    if (p) {
        if (section(c, p, "authentication_backend.file.password", pkeys) < 0 ||
            sval(c, p, "algorithm", "authentication_backend.file.password.algorithm", &alg) < 0)
            return -1;
        if (alg && strcmp(alg, "argon2id") != 0 && strcmp(alg, "argon2") != 0)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(p, "algorithm"),
                                 "authentication_backend.file.password.algorithm: only argon2 (argon2id)");
        if (parse_argon2(c, p, cfg, 1) < 0) return -1;
        if ((v = xt_map_get(p, "argon2"))) {
            if (section(c, v, "authentication_backend.file.password.argon2", akeys) < 0 ||
                parse_argon2(c, v, cfg, 0) < 0)
                return -1;
        }
    }
    return 0;
}

static int parse_session(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"name",         "domain",
                                       "same_site",    "secret",
                                       "expiration",   "inactivity",
                                       "remember_me",  "remember_me_duration",
                                       "authelia_url", "default_redirection_url",
                                       "cookies",      "redis",
                                       "nats",         "max_sessions",
                                       "allow_http",   NULL};
    static const char *const nkeys[] = {"enabled",  XT_NATS_CONF_KEYS, "servers",         "bucket",
                                        "replicas", "lookup_timeout",  "resync_interval", NULL};
    const xt_node *v;
    if (!n)
        return xt_conf_error(c->err, c->errlen, c->doc, c->doc->root, "session is required (session.domain)");
    if (section(c, n, "session", keys) < 0 || refuse(c, n, "redis", "session") < 0 ||
        refuse(c, n, "cookies", "session") < 0)
        return -1;
    if (sval(c, n, "name", "session.name", &cfg->cookie_name) < 0 ||
        sval(c, n, "domain", "session.domain", &cfg->domain) < 0 ||
        sval(c, n, "same_site", "session.same_site", &cfg->same_site) < 0 ||
        sval(c, n, "secret", "session.secret", &cfg->secret) < 0 ||
        sval(c, n, "authelia_url", "session.authelia_url", &cfg->portal_url) < 0 ||
        sval(c, n, "default_redirection_url", "session.default_redirection_url",
             &cfg->default_redirection_url) < 0)
        return -1;
    if (!cfg->domain) return xt_conf_error(c->err, c->errlen, c->doc, n, "session.domain is required");
    {
        char tmp[AUTH_HOST_MAX];
        if (auth_host_normalize(cfg->domain, strlen(cfg->domain), tmp, sizeof(tmp)) < 0 ||
            strchr(cfg->domain, ':') || strcmp(tmp, cfg->domain) != 0)
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "domain"),
                                 "session.domain: a lower-case host name without port or scheme");
    }
    for (const char *p = cfg->cookie_name; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "name"),
                                 "session.name: bad cookie name");
    if (cfg->same_site && strcmp(cfg->same_site, "lax") != 0 && strcmp(cfg->same_site, "strict") != 0 &&
        strcmp(cfg->same_site, "none") != 0)
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "same_site"),
                             "session.same_site: lax, strict or none");
    if (cfg->secret && strlen(cfg->secret) < 16)
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "secret"),
                             "session.secret: at least 16 characters");
    if ((v = xt_map_get(n, "expiration")) &&
        dur(c, v, "session.expiration", 1000, 366 * 86400000LL, 0, &cfg->expiration_ms) < 0)
        return -1;
    if ((v = xt_map_get(n, "inactivity")) &&
        dur(c, v, "session.inactivity", 0, 366 * 86400000LL, 0, &cfg->inactivity_ms) < 0)
        return -1;
    if ((v = xt_map_get(n, "remember_me")) || (v = xt_map_get(n, "remember_me_duration")))
        if (dur(c, v, "session.remember_me", 1000, 3660 * 86400000LL, 1, &cfg->remember_me_ms) < 0) return -1;
    if ((v = xt_map_get(n, "allow_http")) &&
        xt_conf_bool(c->doc, v, "session.allow_http", &cfg->allow_http, c->err, c->errlen) < 0)
        return -1;
    if (ival(c, n, "max_sessions", "session.max_sessions", 16, 10000000, &cfg->max_sessions) < 0) return -1;
    if (cfg->portal_url &&
        !auth_rd_safe(cfg->portal_url, strlen(cfg->portal_url), cfg->domain, cfg->allow_http))
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "authelia_url"),
                             "session.authelia_url must be an https URL under session.domain");
    if (cfg->default_redirection_url &&
        !auth_rd_safe(cfg->default_redirection_url, strlen(cfg->default_redirection_url), cfg->domain,
                      cfg->allow_http))
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "default_redirection_url"),
                             "session.default_redirection_url must be an https URL under session.domain");
    if ((v = xt_map_get(n, "nats"))) {
        if (section(c, v, "session.nats", nkeys) < 0) return -1;
        if (xt_map_get(v, "enabled") && xt_conf_bool(c->doc, xt_map_get(v, "enabled"), "session.nats.enabled",
                                                     &cfg->kv_enabled, c->err, c->errlen) < 0)
            return -1;
        if (xt_nats_conf_parse(&cfg->kv_nats, c->doc, v, "session.nats", c->err, c->errlen) < 0) return -1;
        /* `servers` is the name it had before the connection keys were the same everywhere */
        const xt_node *old = xt_map_get(v, "servers");
        const char *servers = NULL;
        char msg[512];
        if (old && xt_map_get(v, "url"))
            return xt_conf_error(c->err, c->errlen, c->doc, old,
                                 "session.nats: servers and url are the same setting");
        if (sval(c, v, "servers", "session.nats.servers", &servers) < 0 ||
            sval(c, v, "bucket", "session.nats.bucket", &cfg->kv_bucket) < 0)
            return -1;
        if (servers &&
            xt_nats_conf_set(&cfg->kv_nats, "url", servers, "session.nats.servers", msg, sizeof msg) < 0)
            return xt_conf_error(c->err, c->errlen, c->doc, old, "%s", msg);
        if (ival(c, v, "replicas", "session.nats.replicas", 1, 5, &cfg->kv_replicas) < 0) return -1;
        if (xt_map_get(v, "lookup_timeout") &&
            dur(c, xt_map_get(v, "lookup_timeout"), "session.nats.lookup_timeout", 10, 10000, 0,
                &cfg->kv_lookup_timeout_ms) < 0)
            return -1;
        if (xt_map_get(v, "resync_interval") &&
            dur(c, xt_map_get(v, "resync_interval"), "session.nats.resync_interval", 1000, 3600000, 0,
                &cfg->kv_resync_ms) < 0)
            return -1;
        if (cfg->kv_enabled && !cfg->secret)
            return xt_conf_error(
                c->err, c->errlen, c->doc, v,
                "session.nats: session.secret is required (keys in the bucket are keyed by it)");
    }
    if (!cfg->kv_nats.url && !(cfg->kv_nats.url = strdup("nats://127.0.0.1:4222")))
        return xt_conf_error(c->err, c->errlen, c->doc, n, "out of memory");
    /* the auth identity may read only its own replies (docs/SECURITY.md, "The bus") */
    if (!cfg->kv_nats.inbox_prefix && !(cfg->kv_nats.inbox_prefix = strdup("_INBOX_auth")))
        return xt_conf_error(c->err, c->errlen, c->doc, n, "out of memory");
    return 0;
}

/* audit: { enabled, servers, region } (xtask's own section; Authelia has none). */
static int parse_audit(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"enabled", "servers", "region", NULL};
    const char *env = getenv("FLY_REGION");
    cfg->audit_url = NULL; /* the connection of session.nats (url, creds, TLS) */
    cfg->audit_region = env && *env ? env : "local";
    if (!n) return 0;
    if (section(c, n, "audit", keys) < 0) return -1;
    if (xt_map_get(n, "enabled") && xt_conf_bool(c->doc, xt_map_get(n, "enabled"), "audit.enabled",
                                                 &cfg->audit_enabled, c->err, c->errlen) < 0)
        return -1;
    if (sval(c, n, "servers", "audit.servers", &cfg->audit_url) < 0 ||
        sval(c, n, "region", "audit.region", &cfg->audit_region) < 0)
        return -1;
    const char *r = cfg->audit_region;
    size_t len = strlen(r), ok = len > 0 && len <= 64;
    for (size_t i = 0; ok && i < len; i++)
        ok = (r[i] >= 'a' && r[i] <= 'z') || (r[i] >= 'A' && r[i] <= 'Z') || (r[i] >= '0' && r[i] <= '9') ||
             r[i] == '-' || r[i] == '_';
    if (!ok)
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_get(n, "region") ? xt_map_get(n, "region") : n,
                             "audit.region: '%s' is not 1-64 of A-Z a-z 0-9 _ - (it is a NATS subject token)",
                             r);
    return 0;
}

static int parse_regulation(ctx_t *c, const xt_node *n, auth_config *cfg)
{
    static const char *const keys[] = {"max_retries", "find_time",     "ban_time",
                                       "modes",       "failure_delay", NULL};
    const xt_node *v;
    if (!n) return 0;
    if (section(c, n, "regulation", keys) < 0) return -1;
    if (ival(c, n, "max_retries", "regulation.max_retries", 0, AUTH_MAX_RETRIES_MAX, &cfg->reg_max_retries) <
        0)
        return -1;
    if ((v = xt_map_get(n, "find_time")) &&
        dur(c, v, "regulation.find_time", 1000, 366 * 86400000LL, 0, &cfg->reg_find_time_ms) < 0)
        return -1;
    if ((v = xt_map_get(n, "ban_time")) &&
        dur(c, v, "regulation.ban_time", 1000, 366 * 86400000LL, 0, &cfg->reg_ban_time_ms) < 0)
        return -1;
    if ((v = xt_map_get(n, "failure_delay")) &&
        dur(c, v, "regulation.failure_delay", 0, 10000, 0, &cfg->failure_delay_ms) < 0)
        return -1;
    if ((v = xt_map_get(n, "modes")) != NULL) { /* Authelia 4.39: [user], [ip] or both */
        if (v->kind != XT_NODE_SEQ || v->len == 0)
            return xt_conf_error(c->err, c->errlen, c->doc, v,
                                 "regulation.modes: a list of 'user' and/or 'ip'");
        cfg->reg_modes = 0;
        for (size_t i = 0; i < v->len; i++) {
            const char *m;
            if (xt_conf_string(c->doc, v->items[i], "regulation.modes", &m, c->err, c->errlen) < 0) return -1;
            if (strcmp(m, "user") == 0)
                cfg->reg_modes |= AUTH_REG_USER;
            else if (strcmp(m, "ip") == 0)
                cfg->reg_modes |= AUTH_REG_IP;
            else
                return xt_conf_error(c->err, c->errlen, c->doc, v->items[i],
                                     "regulation.modes: unknown mode '%s' (user, ip)", m);
        }
    }
    return 0;
}

/* Keys Authelia has that would decide who gets in, and that xtask-auth does not implement: refused
 * unless they are switched off, never accepted and ignored. */
static int refuse_unbuilt(ctx_t *c, const xt_node *root)
{
    static const char *const off_only[] = {"webauthn", "duo_api", NULL};
    const xt_node *n, *v;
    int off = 0;
    for (size_t i = 0; off_only[i]; i++) {
        if (!(n = xt_map_get(root, off_only[i]))) continue;
        off = 0;
        if (n->kind == XT_NODE_MAP && (v = xt_map_get(n, "disable")) &&
            xt_conf_bool(c->doc, v, off_only[i], &off, c->err, c->errlen) < 0)
            return -1;
        if (!off)
            return xt_conf_error(
                c->err, c->errlen, c->doc, xt_map_key(root, off_only[i]),
                "%s is not supported by xtask-auth (TOTP is its only second factor): remove it "
                "or set %s.disable: true",
                off_only[i], off_only[i]);
    }
    if ((n = xt_map_get(root, "identity_providers")) && n->kind == XT_NODE_MAP && n->len > 0)
        return xt_conf_error(
            c->err, c->errlen, c->doc, n->keys[0],
            "identity_providers.%s is not supported by xtask-auth (no OpenID Connect provider)",
            n->keys[0]->str);
    if ((n = xt_map_get(root, "server")) && (n = xt_map_get(n, "endpoints")) && n->kind == XT_NODE_MAP &&
        (v = xt_map_get(n, "rate_limits")))
        return xt_conf_error(c->err, c->errlen, c->doc, xt_map_key(n, "rate_limits"),
                             "server.endpoints.rate_limits is not supported by xtask-auth (regulation and "
                             "server.hash_queue bound sign-ins)");
    return 0;
}

static void defaults(auth_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->port = 9091;
    cfg->log_level = XT_LOG_INFO;
    cfg->hash_workers = 2;
    cfg->hash_queue = 32;
    cfg->failure_delay_ms = 500;
    cfg->totp_issuer = "xtask";
    cfg->totp_algo = AUTH_TOTP_SHA1;
    cfg->totp_digits = 6;
    cfg->totp_period = 30;
    cfg->totp_skew = 1;
    cfg->users_watch = 1;
    cfg->argon2 = (auth_argon2_params){Argon2_id, 3, 65536, 4, 16, 32};
    cfg->cookie_name = "authelia_session";
    cfg->same_site = "lax";
    cfg->expiration_ms = 3600000;
    cfg->inactivity_ms = 300000;
    cfg->remember_me_ms = 30 * 86400000LL;
    cfg->max_sessions = 100000;
    cfg->reg_max_retries = 3;
    cfg->reg_find_time_ms = 120000;
    cfg->reg_ban_time_ms = 300000;
    cfg->reg_modes = AUTH_REG_USER;
    cfg->kv_bucket = "xtask_sessions";
    cfg->kv_replicas = 1;
    cfg->kv_lookup_timeout_ms = 1000;
    cfg->kv_resync_ms = 30000;
}

static int validate(auth_config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"server",
                                       "log",
                                       "theme",
                                       "jwt_secret",
                                       "default_redirection_url",
                                       "totp",
                                       "authentication_backend",
                                       "access_control",
                                       "session",
                                       "regulation",
                                       "storage",
                                       "notifier",
                                       "identity_validation",
                                       "identity_providers",
                                       "ntp",
                                       "password_policy",
                                       "webauthn",
                                       "duo_api",
                                       "telemetry",
                                       "certificates_directory",
                                       "default_2fa_method",
                                       "privacy_policy",
                                       "definitions",
                                       "audit",
                                       NULL};
    ctx_t c = {cfg->doc, err, errlen};
    const xt_node *root = cfg->doc->root;
    const char *dru = NULL;

    if (!root) return xt_conf_error(err, errlen, cfg->doc, NULL, "empty configuration");
    if (xt_conf_want_map(cfg->doc, root, "configuration", err, errlen) < 0 ||
        xt_conf_check_keys(cfg->doc, root, keys, "the configuration", err, errlen) < 0)
        return -1;
    if (parse_server(&c, xt_map_get(root, "server"), cfg) < 0 ||
        parse_log(&c, xt_map_get(root, "log"), cfg) < 0 ||
        parse_totp(&c, xt_map_get(root, "totp"), cfg) < 0 ||
        parse_backend(&c, xt_map_get(root, "authentication_backend"), cfg) < 0 ||
        parse_session(&c, xt_map_get(root, "session"), cfg) < 0 ||
        parse_regulation(&c, xt_map_get(root, "regulation"), cfg) < 0 || refuse_unbuilt(&c, root) < 0 ||
        parse_audit(&c, xt_map_get(root, "audit"), cfg) < 0 ||
        auth_notify_parse(cfg->doc, xt_map_get(root, "notifier"), &cfg->notify_path, err, errlen) < 0 ||
        auth_acl_parse(cfg->doc, xt_map_get(root, "access_control"), &cfg->acl, err, errlen) < 0)
        return -1;
    { /* server.endpoints.authz (auth_authz.c); absent: today's two endpoints */
        const xt_node *e = xt_map_get(root, "server");
        e = e && e->kind == XT_NODE_MAP ? xt_map_get(e, "endpoints") : NULL;
        e = e && e->kind == XT_NODE_MAP ? xt_map_get(e, "authz") : NULL;
        if (auth_authz_parse(cfg->doc, e, &cfg->authz, err, errlen) < 0) return -1;
    }
    if (sval(&c, root, "default_redirection_url", "default_redirection_url", &dru) < 0) return -1;
    if (dru && !cfg->default_redirection_url) {
        if (!auth_rd_safe(dru, strlen(dru), cfg->domain, cfg->allow_http))
            return xt_conf_error(err, errlen, cfg->doc, xt_map_get(root, "default_redirection_url"),
                                 "default_redirection_url must be an https URL under session.domain");
        cfg->default_redirection_url = dru;
    }
    if (!cfg->totp_path) {
        cfg->totp_path = resolve(cfg->users_path, "totp_secrets.yml");
        if (!cfg->totp_path) return xt_conf_error(err, errlen, cfg->doc, NULL, "out of memory");
    }
    return 0;
}

int auth_config_load_mem(const char *name, const char *text, xt_conf_getenv_fn getenv_fn, void *ud,
                         auth_config *cfg, char *err, size_t errlen)
{
    defaults(cfg);
    if (xt_conf_load_mem(name, text, strlen(text), getenv_fn, ud, &cfg->doc, err, errlen) < 0) return -1;
    if (validate(cfg, err, errlen) < 0) {
        auth_config_free(cfg);
        return -1;
    }
    return 0;
}

int auth_config_load(const char *path, auth_config *cfg, char *err, size_t errlen)
{
    defaults(cfg);
    if (xt_conf_load_file(path, &cfg->doc, err, errlen) < 0) return -1;
    if (validate(cfg, err, errlen) < 0) {
        auth_config_free(cfg);
        return -1;
    }
    return 0;
}

void auth_config_free(auth_config *cfg)
{
    auth_acl_free(&cfg->acl);
    free(cfg->users_path);
    free(cfg->totp_path);
    free(cfg->notify_path);
    xt_doc_free(cfg->doc);
    xt_nats_conf_free(&cfg->kv_nats);
    cfg->users_path = cfg->totp_path = NULL;
    cfg->doc = NULL;
}
