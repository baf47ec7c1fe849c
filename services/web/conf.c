/*
 * conf.c: configs/web.yaml -> web_conf, validated at start-up; every error names file:line:col.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web.h"
#include "xt_conf.h"
#include "xt_log.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if ((x) != 0) goto fail;                                                                             \
    } while (0)

/* A string setting into a malloc'd copy (*out untouched when the key is absent). */
static int get_str(const xt_doc *d, const xt_node *map, const char *key, const char *what, char **out,
                   char *err, size_t errlen)
{
    xt_node *n = xt_map_get(map, key);
    const char *s;
    if (n == NULL) return 0;
    if (xt_conf_string(d, n, what, &s, err, errlen) != 0) return -1;
    free(*out);
    *out = strdup(s);
    return 0;
}

static int get_dur(const xt_doc *d, const xt_node *map, const char *key, const char *what, int64_t min,
                   int64_t max, int64_t *out, char *err, size_t errlen)
{
    xt_node *n = xt_map_get(map, key);
    if (n == NULL) return 0;
    return xt_conf_duration(d, n, what, min, max, out, err, errlen);
}

static int get_int(const xt_doc *d, const xt_node *map, const char *key, const char *what, long long min,
                   long long max, long long *out, char *err, size_t errlen)
{
    xt_node *n = xt_map_get(map, key);
    if (n == NULL) return 0;
    return xt_conf_int(d, n, what, min, max, out, err, errlen);
}

/* Sizes: a plain number of bytes or with a KiB/MiB suffix ("16KiB", "1MiB"). */
static int get_size(const xt_doc *d, const xt_node *map, const char *key, const char *what, int64_t min,
                    int64_t max, int64_t *out, char *err, size_t errlen)
{
    xt_node *n = xt_map_get(map, key);
    const char *s;
    char *end;
    if (n == NULL) return 0;
    if (xt_conf_string(d, n, what, &s, err, errlen) != 0) return -1;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return xt_conf_error(err, errlen, d, n, "%s: '%s' is not a size (bytes, KiB or MiB)", what, s);
    if (*end == 0 || strcmp(end, "B") == 0) {
    } else if (strcasecmp(end, "KiB") == 0 || strcasecmp(end, "K") == 0 || strcasecmp(end, "KB") == 0) {
        v *= 1024;
    } else if (strcasecmp(end, "MiB") == 0 || strcasecmp(end, "M") == 0 || strcasecmp(end, "MB") == 0) {
        v *= 1024 * 1024;
    } else {
        return xt_conf_error(err, errlen, d, n, "%s: '%s' is not a size (bytes, KiB or MiB)", what, s);
    }
    if (v < min || v > max)
        return xt_conf_error(err, errlen, d, n, "%s: %lld is out of range [%lld, %lld]", what, v,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

/* "http://host:port/path?q" -> host, port, path+query. */
static int parse_http_url(const char *url, char **host, uint16_t *port, char **pathq)
{
    const char *p, *slash, *colon;
    if (strncmp(url, "http://", 7) != 0) return -1;
    p = url + 7;
    slash = strchr(p, '/');
    if (slash == NULL) slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    if (colon == p || slash == p) return -1;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end != slash || v <= 0 || v > 65535) return -1;
        *port = (uint16_t)v;
        *host = strndup(p, (size_t)(colon - p));
    } else {
        *port = 80;
        *host = strndup(p, (size_t)(slash - p));
    }
    *pathq = strdup(*slash ? slash : "/");
    return 0;
}

static int parse_cidr(const char *s, web_cidr *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen >= sizeof(buf)) return -1;
    memcpy(buf, s, alen);
    buf[alen] = 0;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || v < 0 || v > out->prefix) return -1;
        out->prefix = (int)v;
    }
    return 0;
}

long web_header_key(const char *name, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    long rc = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) continue;
        if (n + 1 >= outlen) {
            rc = -1;
            break;
        }
        out[n++] = ch;
    }
    if (outlen) out[n < outlen ? n : outlen - 1] = 0;
    return rc < 0 ? rc : (long)n;
}

int web_conf_is_trusted(const web_conf *c, const struct sockaddr *sa)
{
    const uint8_t *a;
    int fam;
    uint8_t v4[4];
    if (sa->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        fam = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a = s6->sin6_addr.s6_addr;
        fam = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memcpy(v4, a + 12, 4);
            a = v4;
            fam = AF_INET;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < c->ntrusted; i++) {
        const web_cidr *t = &c->trusted[i];
        if (t->family != fam) continue;
        int bits = t->prefix, k = 0;
        for (; bits >= 8; bits -= 8, k++)
            if (a[k] != t->addr[k]) break;
        if (bits >= 8) continue;
        if (bits == 0 || ((a[k] ^ t->addr[k]) & (uint8_t)(0xff << (8 - bits))) == 0) return 1;
    }
    return 0;
}

static const char *const top_keys[] = {
    "version", "log", "listen", "limits",           "trusted_proxies", "nats", "supervisor",
    "events",  "gui", "hosts",  "security_headers", "threads",         "api",  NULL};

static int load_headers(const xt_doc *d, const xt_node *map, web_host *h, const char *what, char *err,
                        size_t errlen)
{
    if (xt_conf_want_map(d, map, what, err, errlen) != 0) return -1;
    for (size_t i = 0; i < map->len; i++) {
        const char *v = "";
        const xt_node *vn = map->items[i];
        /* an empty or null value removes a default header */
        if (!(vn->kind == XT_NODE_SCALAR && (vn->is_null || vn->str_len == 0)) &&
            xt_conf_string(d, vn, what, &v, err, errlen) != 0)
            return -1;
        size_t j;
        for (j = 0; j < h->nheaders; j++)
            if (strcasecmp(h->headers[j].name, map->keys[i]->str) == 0) break;
        if (j == h->nheaders) {
            if (h->nheaders == WEB_MAX_HEADERS)
                return xt_conf_error(err, errlen, d, map->keys[i], "%s: more than %d headers", what,
                                     WEB_MAX_HEADERS);
            h->headers[h->nheaders].name = strdup(map->keys[i]->str);
            h->nheaders++;
        } else {
            free(h->headers[j].value);
        }
        h->headers[j].value = strdup(v);
    }
    return 0;
}

static int valid_prefix(const char *p)
{
    if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") || strchr(p, '%') ||
        strchr(p, '?'))
        return 0;
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '\\') return 0;
    return 1;
}

static const char *const route_keys[] = {"path",   "handle", "reverse_proxy", "file_server", "redirect",
                                         "public", NULL};
static const char *const handle_names[] = {"health", "gui", "api", "events", NULL};
static const char *const proxy_keys[] = {"upstream", "timeout", "keepalive", "preserve_host", NULL};

static int load_route(const xt_doc *d, const xt_node *n, web_host *h, web_route *r, char *err, size_t errlen)
{
    const char *s;
    xt_node *v;
    int kinds = 0;
    if (xt_conf_want_map(d, n, "route", err, errlen) != 0 ||
        xt_conf_check_keys(d, n, route_keys, "route", err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "path")) == NULL) return xt_conf_error(err, errlen, d, n, "route: missing 'path'");
    if (xt_conf_string(d, v, "route.path", &s, err, errlen) != 0) return -1;
    if (!valid_prefix(s))
        return xt_conf_error(err, errlen, d, v, "route.path: '%s' is not a normalized path prefix", s);
    r->path = strdup(s);
    r->proxy_timeout_ms = 30000;
    r->proxy_keepalive_ms = 2000;
    if ((v = xt_map_get(n, "handle")) != NULL) {
        kinds++;
        if (xt_conf_string(d, v, "route.handle", &s, err, errlen) != 0) return -1;
        static const web_route_kind k[] = {ROUTE_HEALTH, ROUTE_GUI, ROUTE_API, ROUTE_EVENTS};
        size_t i;
        for (i = 0; handle_names[i]; i++)
            if (strcmp(s, handle_names[i]) == 0) break;
        if (handle_names[i] == NULL) {
            const char *sug = xt_suggest(s, handle_names);
            return xt_conf_error(err, errlen, d, v,
                                 "route.handle: unknown handler '%s'%s%s%s (one of health, gui, api, events)",
                                 s, sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
        }
        r->kind = k[i];
    }
    if ((v = xt_map_get(n, "reverse_proxy")) != NULL) {
        kinds++;
        r->kind = ROUTE_PROXY;
        if (xt_conf_want_map(d, v, "reverse_proxy", err, errlen) != 0 ||
            xt_conf_check_keys(d, v, proxy_keys, "reverse_proxy", err, errlen) != 0)
            return -1;
        xt_node *u = xt_map_get(v, "upstream");
        if (u == NULL) return xt_conf_error(err, errlen, d, v, "reverse_proxy: missing 'upstream'");
        if (xt_conf_string(d, u, "reverse_proxy.upstream", &s, err, errlen) != 0) return -1;
        char *host = NULL, *pq = NULL;
        uint16_t port;
        if (parse_http_url(s, &host, &port, &pq) != 0) {
            free(host);
            free(pq);
            return xt_conf_error(err, errlen, d, u,
                                 "reverse_proxy.upstream: '%s' is not an http://host:port/path URL", s);
        }
        free(host);
        free(pq);
        r->upstream = strdup(s);
        if (get_dur(d, v, "timeout", "reverse_proxy.timeout", 10, 3600000, &r->proxy_timeout_ms, err,
                    errlen) != 0 ||
            get_dur(d, v, "keepalive", "reverse_proxy.keepalive", 0, 3600000, &r->proxy_keepalive_ms, err,
                    errlen) != 0)
            return -1;
        xt_node *ph = xt_map_get(v, "preserve_host");
        if (ph && xt_conf_bool(d, ph, "reverse_proxy.preserve_host", &r->preserve_host, err, errlen) != 0)
            return -1;
    }
    if ((v = xt_map_get(n, "file_server")) != NULL) {
        kinds++;
        r->kind = ROUTE_FILES;
        if (xt_conf_want_map(d, v, "file_server", err, errlen) != 0) return -1;
        static const char *const fk[] = {"root", NULL};
        if (xt_conf_check_keys(d, v, fk, "file_server", err, errlen) != 0) return -1;
        xt_node *rt = xt_map_get(v, "root");
        if (rt == NULL) return xt_conf_error(err, errlen, d, v, "file_server: missing 'root'");
        if (xt_conf_string(d, rt, "file_server.root", &s, err, errlen) != 0) return -1;
        r->root = strdup(s);
    }
    if ((v = xt_map_get(n, "redirect")) != NULL) {
        static const char *const rk[] = {"to", "status", NULL};
        kinds++;
        r->kind = ROUTE_REDIRECT;
        r->redirect_status = 302;
        if (xt_conf_want_map(d, v, "redirect", err, errlen) != 0 ||
            xt_conf_check_keys(d, v, rk, "redirect", err, errlen) != 0)
            return -1;
        xt_node *to = xt_map_get(v, "to");
        if (to == NULL) return xt_conf_error(err, errlen, d, v, "redirect: missing 'to'");
        if (xt_conf_string(d, to, "redirect.to", &s, err, errlen) != 0) return -1;
        if (s[0] != '/' || s[1] == '/' || strchr(s, '\\') || strpbrk(s, "\r\n"))
            return xt_conf_error(err, errlen, d, to, "redirect.to: '%s' must be a local path ('/...')", s);
        r->redirect_to = strdup(s);
        xt_node *st = xt_map_get(v, "status");
        if (st && xt_conf_int(d, st, "redirect.status", 301, 308, &r->redirect_status, err, errlen) != 0)
            return -1;
    }
    if (kinds != 1)
        return xt_conf_error(err, errlen, d, n,
                             "route '%s': exactly one of handle, reverse_proxy, file_server, redirect",
                             r->path);
    if ((v = xt_map_get(n, "public")) != NULL &&
        xt_conf_bool(d, v, "route.public", &r->is_public, err, errlen) != 0)
        return -1;
    (void)h;
    return 0;
}

static const char *const fauth_keys[] = {"url", "copy_headers", "timeout", "keepalive", "pool", NULL};

static int load_fauth(const xt_doc *d, const xt_node *n, web_host *h, char *err, size_t errlen)
{
    web_fauth_conf *f = &h->fauth;
    const char *s;
    xt_node *v;
    char **copy = NULL;
    if (xt_conf_want_map(d, n, "forward_auth", err, errlen) != 0 ||
        xt_conf_check_keys(d, n, fauth_keys, "forward_auth", err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "url")) == NULL)
        return xt_conf_error(err, errlen, d, n, "forward_auth: missing 'url'");
    if (xt_conf_string(d, v, "forward_auth.url", &s, err, errlen) != 0) return -1;
    if (parse_http_url(s, &f->host, &f->port, &f->path_query) != 0)
        return xt_conf_error(err, errlen, d, v, "forward_auth.url: '%s' is not an http://host:port/path URL",
                             s);
    f->url = strdup(s);
    f->timeout_ms = 2000;
    f->keepalive_ms = 10000;
    f->pool = 256;
    if (get_dur(d, n, "timeout", "forward_auth.timeout", 10, 60000, &f->timeout_ms, err, errlen) != 0 ||
        get_dur(d, n, "keepalive", "forward_auth.keepalive", 0, 3600000, &f->keepalive_ms, err, errlen) !=
            0 ||
        get_int(d, n, "pool", "forward_auth.pool", 1, 100000, &f->pool, err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "copy_headers")) != NULL) {
        if (xt_conf_strv(d, v, "forward_auth.copy_headers", 0, 0, &copy, err, errlen) != 0) return -1;
        for (size_t i = 0; copy[i]; i++) {
            if (f->ncopy == WEB_MAX_COPY) {
                xt_strv_free(copy);
                return xt_conf_error(err, errlen, d, v, "forward_auth.copy_headers: at most %d",
                                     WEB_MAX_COPY);
            }
            char *lc = strdup(copy[i]);
            for (char *p = lc; *p; p++) {
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
                if (*p == '_') *p = '-';
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
                    free(lc);
                    int rc = xt_conf_error(err, errlen, d, v->items[i],
                                           "forward_auth.copy_headers: '%s' is not a header name", copy[i]);
                    xt_strv_free(copy);
                    return rc;
                }
            }
            f->copy[f->ncopy] = strdup(copy[i]);
            f->copy_lc[f->ncopy++] = lc;
        }
        xt_strv_free(copy);
    } else {
        static const char *const def[] = {"Remote-User", "Remote-Groups", "Remote-Name", "Remote-Email"};
        for (size_t i = 0; i < 4; i++) {
            f->copy[i] = strdup(def[i]);
            char *lc = strdup(def[i]);
            for (char *p = lc; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            f->copy_lc[i] = lc;
        }
        f->ncopy = 4;
    }
    return 0;
}

static const char *const host_keys[] = {"names", "forward_auth", "headers", "routes", NULL};

/* 1 if the scalar written at (line, col) of the source text holds a ${VAR} reference: its value
 * then depends on the environment rather than on what the user typed. */
static int scalar_has_var(const char *src, int line, int col)
{
    const char *p = src;
    if (!src || line < 1 || col < 1) return 0;
    for (int l = 1; l < line && p; l++)
        if ((p = strchr(p, '\n')) != NULL) p++;
    if (!p) return 0;
    for (int c = 1; c < col && *p && *p != '\n'; c++)
        p++;
    char q = (*p == '"' || *p == '\'') ? *p++ : 0;
    for (; *p && *p != '\n'; p++) {
        if (q ? (*p == q && p[-1] != '\\') : (*p == ',' || *p == ']' || *p == '}' || *p == '#')) break;
        if (p[0] == '$' && p[1] == '{') return 1;
    }
    return 0;
}

/* Add the lower-cased name `lc` (written at node `at`) to host `h`. A name already listed is a
 * mistake the user should hear about (h2o cannot register one name twice): -1 with
 * "duplicate host 'x' (first at line N)". The exception is a duplicate within one host where either
 * spelling comes from ${VAR} expansion (XTASK_DOMAIN=localhost next to a literal localhost): the
 * user listed aliases of one host and expects them merged, so the later one is skipped (returns 1,
 * `lc` not taken). Returns 0 when `lc` was added (h owns it). */
static int names_add(const xt_doc *d, const char *src, const web_host *hosts, size_t nhosts, web_host *h,
                     const xt_node *at, char *lc, char *err, size_t errlen)
{
    for (size_t k = 0; k <= nhosts; k++) {
        const web_host *o = k < nhosts ? &hosts[k] : h;
        for (size_t j = 0; j < o->nnames; j++) {
            if (strcmp(o->names[j], lc) != 0) continue;
            if (o == h && (scalar_has_var(src, at->line, at->col) ||
                           scalar_has_var(src, o->name_line[j], o->name_col[j]))) {
                xt_debug("%s:%d:%d: host '%s' listed twice after ${VAR} expansion; kept once", d->path,
                         at->line, at->col, lc);
                return 1;
            }
            return xt_conf_error(err, errlen, d, at, "duplicate host '%s' (first at line %d%s)", lc,
                                 o->name_line[j], o == h ? "" : ", in another host");
        }
    }
    if (h->nnames == WEB_MAX_NAMES)
        return xt_conf_error(err, errlen, d, at, "host.names: at most %d", WEB_MAX_NAMES);
    h->name_line[h->nnames] = at->line;
    h->name_col[h->nnames] = at->col;
    h->names[h->nnames++] = lc;
    return 0;
}

static int load_host(const xt_doc *d, const char *src, const xt_node *n, const web_host *hosts, size_t nhosts,
                     web_host *h, const xt_node *sec, char *err, size_t errlen)
{
    xt_node *v;
    char **names = NULL;
    if (xt_conf_want_map(d, n, "host", err, errlen) != 0 ||
        xt_conf_check_keys(d, n, host_keys, "host", err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "names")) == NULL)
        return xt_conf_error(err, errlen, d, n, "host: missing 'names'");
    if (xt_conf_strv(d, v, "host.names", 1, 1, &names, err, errlen) != 0) return -1;
    for (size_t i = 0; names[i]; i++) {
        const xt_node *at = v->kind == XT_NODE_SEQ ? v->items[i] : v;
        char *lc = strdup(names[i]);
        for (char *p = lc; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        int rc = names_add(d, src, hosts, nhosts, h, at, lc, err, errlen);
        if (rc != 0) {
            free(lc);
            if (rc < 0) {
                xt_strv_free(names);
                return -1;
            }
        }
    }
    xt_strv_free(names);
    if (sec && load_headers(d, sec, h, "security_headers", err, errlen) != 0) return -1;
    if ((v = xt_map_get(n, "headers")) != NULL && load_headers(d, v, h, "host.headers", err, errlen) != 0)
        return -1;
    /* a header set to an empty string is removed from the defaults */
    for (size_t i = 0; i < h->nheaders;) {
        if (h->headers[i].value[0] == 0) {
            free(h->headers[i].name);
            free(h->headers[i].value);
            h->headers[i] = h->headers[--h->nheaders];
        } else {
            i++;
        }
    }
    if ((v = xt_map_get(n, "forward_auth")) != NULL) {
        if (load_fauth(d, v, h, err, errlen) != 0) return -1;
        h->has_fauth = 1;
    }
    if ((v = xt_map_get(n, "routes")) == NULL || v->kind != XT_NODE_SEQ || v->len == 0)
        return xt_conf_error(err, errlen, d, v ? v : n, "host: 'routes' must be a non-empty list");
    if (v->len > WEB_MAX_ROUTES)
        return xt_conf_error(err, errlen, d, v, "host.routes: at most %d", WEB_MAX_ROUTES);
    for (size_t i = 0; i < v->len; i++) {
        if (load_route(d, v->items[i], h, &h->routes[i], err, errlen) != 0) return -1;
        h->nroutes++;
        for (size_t j = 0; j < i; j++)
            if (strcmp(h->routes[j].path, h->routes[i].path) == 0)
                return xt_conf_error(err, errlen, d, v->items[i], "route '%s' is listed twice",
                                     h->routes[i].path);
    }
    return 0;
}

/* The file's text (at most 1 MiB, NUL-terminated, malloc'd), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t n = 0, cap = 1024 * 1024;
    if (!f) return NULL;
    if ((buf = malloc(cap + 1)) != NULL) {
        n = fread(buf, 1, cap, f);
        buf[n] = 0;
    }
    fclose(f);
    return buf;
}

static const char *const listen_keys[] = {"address", "tls", NULL};

int web_conf_load(web_conf *c, const char *path, const char *listen, const char *tls_listen, const char *nats,
                  char *err, size_t errlen)
{
    xt_doc *d = NULL;
    xt_node *root, *v, *m;
    int rc = -1;
    char *src = NULL;

    memset(c, 0, sizeof(*c));
    c->path = strdup(path);
    c->max_header_bytes = 16384;
    c->max_body_bytes = 1024 * 1024;
    c->request_timeout_ms = 10000;
    c->idle_timeout_ms = 30000;
    c->drain_timeout_ms = 1500;
    c->nats.url = strdup("nats://127.0.0.1:4222");
    c->nats.name = strdup("xtask-web");
    c->nats.inbox_prefix =
        strdup("_INBOX_web"); /* the web identity's replies (docs/SECURITY.md, "The bus") */
    c->nats_request_timeout_ms = 30000;
    c->sup_poll_ms = 2000;
    c->events_queue = 256;
    c->events_heartbeat_ms = 15000;
    c->events_session_check_ms = 60000;
    c->events_max_clients = 10000;
    c->events_sndbuf = 65536;
    c->default_project = strdup("default");
    c->log_level = strdup("info");

    if (xt_conf_load_file(path, &d, err, errlen) != 0) goto out;
    src = read_text(path);
    root = d->root;
    if (root == NULL) {
        xt_conf_error(err, errlen, d, NULL, "empty configuration");
        goto out;
    }
    CHECK(xt_conf_want_map(d, root, "web.yaml", err, errlen));
    CHECK(xt_conf_check_keys(d, root, top_keys, "web.yaml", err, errlen));
    if ((v = xt_map_get(root, "version")) != NULL) {
        long long ver;
        CHECK(xt_conf_int(d, v, "version", 1, 1, &ver, err, errlen));
    }
    if ((v = xt_map_get(root, "threads")) != NULL &&
        !(v->kind == XT_NODE_SCALAR && strcmp(v->str, "auto") == 0))
        CHECK(xt_conf_int(d, v, "threads (auto or a number)", 1, WEB_MAX_THREADS, &c->threads, err, errlen));
    if ((m = xt_map_get(root, "log")) != NULL) {
        static const char *const k[] = {"level", "format", NULL};
        char *fmt = NULL;
        CHECK(xt_conf_want_map(d, m, "log", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "log", err, errlen));
        CHECK(get_str(d, m, "level", "log.level", &c->log_level, err, errlen));
        if (xt_log_level_parse(c->log_level) < 0) {
            xt_conf_error(err, errlen, d, xt_map_get(m, "level"),
                          "log.level: '%s' is not debug, info, warn or error", c->log_level);
            goto fail;
        }
        CHECK(get_str(d, m, "format", "log.format", &fmt, err, errlen));
        if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0) {
            xt_conf_error(err, errlen, d, xt_map_get(m, "format"), "log.format: '%s' is not text or json",
                          fmt);
            free(fmt);
            goto fail;
        }
        c->log_json = fmt && strcmp(fmt, "json") == 0;
        free(fmt);
    }
    if ((v = xt_map_get(root, "listen")) == NULL || v->kind != XT_NODE_SEQ || v->len == 0) {
        xt_conf_error(err, errlen, d, v ? v : root, "listen: a non-empty list of {address, tls} is required");
        goto fail;
    }
    if (v->len > WEB_MAX_LISTEN) {
        xt_conf_error(err, errlen, d, v, "listen: at most %d listeners", WEB_MAX_LISTEN);
        goto fail;
    }
    for (size_t i = 0; i < v->len; i++) {
        web_listen_conf *l = &c->listen[c->nlisten++];
        xt_node *ln = v->items[i], *t;
        CHECK(xt_conf_want_map(d, ln, "listen", err, errlen));
        CHECK(xt_conf_check_keys(d, ln, listen_keys, "listen", err, errlen));
        CHECK(get_str(d, ln, "address", "listen.address", &l->address, err, errlen));
        if (l->address == NULL || strrchr(l->address, ':') == NULL) {
            xt_conf_error(err, errlen, d, ln, "listen.address: host:port is required");
            goto fail;
        }
        if ((t = xt_map_get(ln, "tls")) != NULL) {
            static const char *const tk[] = {"cert", "key", "http2", NULL};
            CHECK(xt_conf_want_map(d, t, "listen.tls", err, errlen));
            CHECK(xt_conf_check_keys(d, t, tk, "listen.tls", err, errlen));
            CHECK(get_str(d, t, "cert", "listen.tls.cert", &l->cert, err, errlen));
            CHECK(get_str(d, t, "key", "listen.tls.key", &l->key, err, errlen));
            if (!l->cert || !l->key) {
                xt_conf_error(err, errlen, d, t, "listen.tls: both 'cert' and 'key' are required");
                goto fail;
            }
            l->http2 = 1;
            xt_node *h2 = xt_map_get(t, "http2");
            if (h2) CHECK(xt_conf_bool(d, h2, "listen.tls.http2", &l->http2, err, errlen));
        }
    }
    if ((m = xt_map_get(root, "limits")) != NULL) {
        static const char *const k[] = {"max_header_bytes", "max_body_bytes", "request_timeout",
                                        "idle_timeout",     "drain_timeout",  NULL};
        CHECK(xt_conf_want_map(d, m, "limits", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "limits", err, errlen));
        CHECK(get_size(d, m, "max_header_bytes", "limits.max_header_bytes", 1024, 256 * 1024,
                       &c->max_header_bytes, err, errlen));
        CHECK(get_size(d, m, "max_body_bytes", "limits.max_body_bytes", 0, 1024LL * 1024 * 1024,
                       &c->max_body_bytes, err, errlen));
        CHECK(get_dur(d, m, "request_timeout", "limits.request_timeout", 100, 600000, &c->request_timeout_ms,
                      err, errlen));
        CHECK(get_dur(d, m, "idle_timeout", "limits.idle_timeout", 100, 3600000, &c->idle_timeout_ms, err,
                      errlen));
        CHECK(get_dur(d, m, "drain_timeout", "limits.drain_timeout", 0, 60000, &c->drain_timeout_ms, err,
                      errlen));
    }
    if ((v = xt_map_get(root, "trusted_proxies")) != NULL) {
        if (v->kind != XT_NODE_SEQ) {
            xt_conf_error(err, errlen, d, v, "trusted_proxies: a list of addresses or CIDR ranges");
            goto fail;
        }
        for (size_t i = 0; i < v->len; i++) {
            const char *s;
            CHECK(xt_conf_string(d, v->items[i], "trusted_proxies", &s, err, errlen));
            if (c->ntrusted == 16 || parse_cidr(s, &c->trusted[c->ntrusted]) != 0) {
                xt_conf_error(err, errlen, d, v->items[i],
                              "trusted_proxies: '%s' is not an address or CIDR range (max 16)", s);
                goto fail;
            }
            c->ntrusted++;
        }
    }
    if ((m = xt_map_get(root, "nats")) != NULL) {
        static const char *const k[] = {XT_NATS_CONF_KEYS, "request_timeout", NULL};
        CHECK(xt_conf_want_map(d, m, "nats", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "nats", err, errlen));
        CHECK(xt_nats_conf_parse(&c->nats, d, m, "nats", err, errlen));
        CHECK(get_dur(d, m, "request_timeout", "nats.request_timeout", 10, 3600000,
                      &c->nats_request_timeout_ms, err, errlen));
    }
    if ((m = xt_map_get(root, "supervisor")) != NULL) {
        static const char *const k[] = {"status_url", "status_socket", "poll", NULL};
        CHECK(xt_conf_want_map(d, m, "supervisor", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "supervisor", err, errlen));
        CHECK(get_str(d, m, "status_url", "supervisor.status_url", &c->sup_status_url, err, errlen));
        CHECK(get_str(d, m, "status_socket", "supervisor.status_socket", &c->sup_status_socket, err, errlen));
        CHECK(get_dur(d, m, "poll", "supervisor.poll", 100, 3600000, &c->sup_poll_ms, err, errlen));
        if (c->sup_status_url) {
            char *h = NULL, *pq = NULL;
            uint16_t p;
            int bad = parse_http_url(c->sup_status_url, &h, &p, &pq);
            free(h);
            free(pq);
            if (bad) {
                xt_conf_error(err, errlen, d, xt_map_get(m, "status_url"),
                              "supervisor.status_url: '%s' is not an http://host:port/path URL",
                              c->sup_status_url);
                goto fail;
            }
        }
    }
    if ((m = xt_map_get(root, "events")) != NULL) {
        static const char *const k[] = {"queue",   "heartbeat",     "max_clients", "sndbuf",
                                        "project", "session_check", NULL};
        CHECK(xt_conf_want_map(d, m, "events", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "events", err, errlen));
        CHECK(get_int(d, m, "queue", "events.queue", 4, 65536, &c->events_queue, err, errlen));
        CHECK(get_dur(d, m, "heartbeat", "events.heartbeat", 100, 3600000, &c->events_heartbeat_ms, err,
                      errlen));
        CHECK(get_int(d, m, "max_clients", "events.max_clients", 1, 1000000, &c->events_max_clients, err,
                      errlen));
        CHECK(get_int(d, m, "sndbuf", "events.sndbuf", 0, 64 * 1024 * 1024, &c->events_sndbuf, err, errlen));
        CHECK(get_str(d, m, "project", "events.project", &c->default_project, err, errlen));
        CHECK(get_dur(d, m, "session_check", "events.session_check", 100, 3600000,
                      &c->events_session_check_ms, err, errlen));
    }
    if ((m = xt_map_get(root, "gui")) != NULL) {
        static const char *const k[] = {"root", NULL};
        CHECK(xt_conf_want_map(d, m, "gui", err, errlen));
        CHECK(xt_conf_check_keys(d, m, k, "gui", err, errlen));
        CHECK(get_str(d, m, "root", "gui.root", &c->gui_root, err, errlen));
    }
    if ((m = xt_map_get(root, "api")) != NULL) CHECK(web_rules_load(d, m, c, err, errlen));
    xt_node *sec = xt_map_get(root, "security_headers");
    if (sec) CHECK(xt_conf_want_map(d, sec, "security_headers", err, errlen));
    if ((v = xt_map_get(root, "hosts")) == NULL || v->kind != XT_NODE_SEQ || v->len == 0) {
        xt_conf_error(err, errlen, d, v ? v : root, "hosts: a non-empty list is required");
        goto fail;
    }
    if (v->len > WEB_MAX_HOSTS) {
        xt_conf_error(err, errlen, d, v, "hosts: at most %d", WEB_MAX_HOSTS);
        goto fail;
    }
    for (size_t i = 0; i < v->len; i++) {
        CHECK(load_host(d, src, v->items[i], c->hosts, i, &c->hosts[i], sec, err, errlen));
        c->nhosts++;
        web_host *h = &c->hosts[i];
        for (size_t r = 0; r < h->nroutes; r++) {
            if ((h->routes[r].kind == ROUTE_GUI) && c->gui_root == NULL) {
                xt_conf_error(err, errlen, d, v->items[i], "a 'gui' route needs gui.root");
                goto fail;
            }
            /* The API decides from the signed-in user: only where forward-auth supplies it. */
            if (h->routes[r].kind == ROUTE_API) {
                int has_user = 0;
                for (size_t k = 0; k < h->fauth.ncopy; k++)
                    if (strcmp(h->fauth.copy_lc[k], "remote-user") == 0) has_user = 1;
                if (!h->has_fauth || !has_user || h->routes[r].is_public) {
                    xt_node *rn = xt_map_get(v->items[i], "routes");
                    xt_conf_error(err, errlen, d, rn && rn->kind == XT_NODE_SEQ ? rn->items[r] : v->items[i],
                                  "route '%s': the api needs the signed-in user: a host with forward_auth "
                                  "copying Remote-User, and not public",
                                  h->routes[r].path);
                    goto fail;
                }
            }
        }
    }
    /* identity headers are stripped on every host: the union of every host's copy_headers */
    for (size_t i = 0; i < c->nhosts; i++) {
        web_host *h = &c->hosts[i];
        for (size_t j = 0; j < c->nhosts; j++) {
            for (size_t k = 0; k < c->hosts[j].fauth.ncopy; k++) {
                const char *cl = c->hosts[j].fauth.copy_lc[k];
                char lc[128];
                size_t x;
                if (web_header_key(cl, strlen(cl), lc, sizeof(lc)) <= 0) continue;
                for (x = 0; x < h->nstrip; x++)
                    if (strcmp(h->strip_lc[x], lc) == 0) break;
                if (x == h->nstrip && h->nstrip < WEB_MAX_COPY) h->strip_lc[h->nstrip++] = strdup(lc);
            }
        }
    }
    if (listen || tls_listen) {
        int done_plain = listen == NULL, done_tls = tls_listen == NULL;
        for (size_t i = 0; i < c->nlisten; i++) {
            web_listen_conf *l = &c->listen[i];
            if (!l->cert && !done_plain) {
                free(l->address);
                l->address = strdup(listen);
                done_plain = 1;
            } else if (l->cert && !done_tls) {
                free(l->address);
                l->address = strdup(tls_listen);
                done_tls = 1;
            }
        }
        if (!done_plain || !done_tls) {
            snprintf(err, errlen, "%s: --%s given but the configuration has no such listener", path,
                     !done_plain ? "listen" : "tls-listen");
            goto fail;
        }
    }
    if (nats) CHECK(xt_nats_conf_set(&c->nats, "url", nats, "--nats", err, errlen));
    rc = 0;
    goto out;
fail:
    rc = -1;
out:
    xt_doc_free(d);
    free(src);
    return rc;
}

void web_conf_free(web_conf *c)
{
    free(c->path);
    for (size_t i = 0; i < c->nlisten; i++) {
        free(c->listen[i].address);
        free(c->listen[i].cert);
        free(c->listen[i].key);
    }
    xt_nats_conf_free(&c->nats);
    free(c->sup_status_url);
    free(c->sup_status_socket);
    free(c->default_project);
    free(c->gui_root);
    free(c->log_level);
    web_rules_free(c);
    for (size_t i = 0; i < WEB_MAX_HOSTS; i++) {
        web_host *h = &c->hosts[i];
        for (size_t j = 0; j < h->nnames; j++)
            free(h->names[j]);
        free(h->fauth.url);
        free(h->fauth.host);
        free(h->fauth.path_query);
        for (size_t j = 0; j < h->fauth.ncopy; j++) {
            free(h->fauth.copy[j]);
            free(h->fauth.copy_lc[j]);
        }
        for (size_t j = 0; j < h->nheaders; j++) {
            free(h->headers[j].name);
            free(h->headers[j].value);
        }
        for (size_t j = 0; j < WEB_MAX_ROUTES; j++) {
            free(h->routes[j].path);
            free(h->routes[j].upstream);
            free(h->routes[j].root);
            free(h->routes[j].redirect_to);
        }
        for (size_t j = 0; j < h->nstrip; j++)
            free(h->strip_lc[j]);
        free(h->inst);
    }
    memset(c, 0, sizeof(*c));
}

char *web_html_escape(const char *in, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += (in[i] == '<' || in[i] == '>') ? 4 : in[i] == '&' ? 5 : (in[i] == '"' || in[i] == '\'') ? 6 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (in[i]) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#x27;";
            break;
        default:
            break;
        }
        if (rep) {
            size_t rl = strlen(rep);
            memcpy(o, rep, rl);
            o += rl;
        } else {
            /* newlines and CRs would split an SSE data line: fold them to spaces */
            *o++ = (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
        }
    }
    *o = 0;
    return out;
}
