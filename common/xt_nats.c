/*
 * xt_nats: settings, connection policy and error text for every NATS connection (see xt_nats.h).
 */
#include "xt_nats.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xt_jwt.h"
#include "xt_log.h"

/* One policy for every program (issue 10: there were four). */
#define RECONNECT_WAIT_MS 250
#define RECONNECT_JITTER_MS 100
#define RECONNECT_JITTER_TLS_MS 1000
#define RECONNECT_BUF_BYTES (8 * 1024 * 1024) /* what publishes may queue while reconnecting */
#define CONNECT_TIMEOUT_MS 2000
#define PING_INTERVAL_MS 5000
#define MAX_PINGS_OUT 3

/* What the callbacks need; freed by the closed callback (nats.c's last one for a connection). */
typedef struct {
    xt_nats_params p;
    char url[XT_NATS_URL_MAX]; /* redacted */
    int quiet;
} conn_ctx;

/* The fields by key, for xt_nats_conf_set and the parser. */
typedef struct {
    const char *key;
    size_t off;
    int file; /* must be a readable regular file */
} field;

static const field fields[] = {
    {"url", offsetof(xt_nats_conf, url), 0},
    {"creds", offsetof(xt_nats_conf, creds), 1},
    {"tls_ca", offsetof(xt_nats_conf, tls_ca), 1},
    {"tls_cert", offsetof(xt_nats_conf, tls_cert), 1},
    {"tls_key", offsetof(xt_nats_conf, tls_key), 1},
    {"inbox_prefix", offsetof(xt_nats_conf, inbox_prefix), 0},
    {"name", offsetof(xt_nats_conf, name), 0},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static char **field_ptr(xt_nats_conf *c, const field *f)
{
    return (char **)((char *)c + f->off);
}

void xt_nats_conf_free(xt_nats_conf *c)
{
    if (!c) return;
    for (size_t i = 0; i < NFIELDS; i++)
        free(*field_ptr(c, &fields[i]));
    memset(c, 0, sizeof *c);
}

int xt_nats_conf_copy(xt_nats_conf *dst, const xt_nats_conf *src)
{
    int rc = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *v = *field_ptr((xt_nats_conf *)src, &fields[i]);
        char **d = field_ptr(dst, &fields[i]);
        if (!v) continue;
        char *copy = strdup(v);
        if (!copy) {
            rc = -1;
            continue;
        }
        free(*d);
        *d = copy;
    }
    return rc;
}

/* --- validation ---------------------------------------------------------------------------- */

/* A readable regular file: 0, else -1 and why in msg. */
static int check_file(const char *path, char *msg, size_t len)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || access(path, R_OK) != 0) {
        snprintf(msg, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, len, "%s: not a regular file", path);
        return -1;
    }
    return 0;
}

/* One or more comma-separated URLs: [scheme://][user[:pass]@]host[:port], no blanks inside. */
static int check_urls(const char *v, char *msg, size_t len)
{
    const char *p = v;
    if (strlen(v) >= XT_NATS_URL_MAX) {
        snprintf(msg, len, "longer than %d bytes", XT_NATS_URL_MAX - 1);
        return -1;
    }
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0) {
            snprintf(msg, len, "an empty URL in the list");
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f) {
                snprintf(msg, len, "a URL holds a blank or control character");
                return -1;
            }
        const char *sep = memmem(p, n, "://", 3);
        if (sep) {
            size_t sl = (size_t)(sep - p);
            if (!((sl == 4 && strncasecmp(p, "nats", 4) == 0) ||
                  (sl == 3 && strncasecmp(p, "tls", 3) == 0))) {
                snprintf(msg, len, "'%.*s': the scheme must be nats:// or tls://", (int)(n > 80 ? 80 : n), p);
                return -1;
            }
            if ((size_t)(sep + 3 - p) == n) {
                snprintf(msg, len, "a URL without a host");
                return -1;
            }
        }
        if (!end) break;
        p = end + 1;
        if (!*p) {
            snprintf(msg, len, "an empty URL in the list");
            return -1;
        }
    }
    return 0;
}

/* A subject of tokens [A-Za-z0-9_-] separated by single dots, no wildcards. */
static int check_prefix(const char *v, char *msg, size_t len)
{
    size_t n = strlen(v);
    int prev_dot = 1;
    if (n > XT_NATS_PREFIX_MAX) {
        snprintf(msg, len, "longer than %d characters", XT_NATS_PREFIX_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '.') {
            if (prev_dot) break;
            prev_dot = 1;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-')) {
            snprintf(msg, len, "'%s': only letters, digits, '_', '-' and single dots (no wildcards)", v);
            return -1;
        }
        prev_dot = 0;
    }
    if (prev_dot) {
        snprintf(msg, len, "'%s': empty token (a leading, trailing or double dot)", v);
        return -1;
    }
    return 0;
}

static int check_name(const char *v, char *msg, size_t len)
{
    if (strlen(v) > 128) {
        snprintf(msg, len, "longer than 128 characters");
        return -1;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f || *p == '"' || *p == '\\') {
            snprintf(msg, len, "control characters, quotes and backslashes are not allowed");
            return -1;
        }
    return 0;
}

static const field *field_find(const char *key)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].key, key) == 0) return &fields[i];
    return NULL;
}

/* Validate `v` for field `f`: 0, else -1 and the reason in msg. */
static int check_value(const field *f, const char *v, char *msg, size_t len)
{
    if (f->file) return check_file(v, msg, len);
    if (strcmp(f->key, "url") == 0) return check_urls(v, msg, len);
    if (strcmp(f->key, "inbox_prefix") == 0) return check_prefix(v, msg, len);
    return check_name(v, msg, len);
}

static int set_field(xt_nats_conf *c, const field *f, const char *v)
{
    char **d = field_ptr(c, f);
    char *copy = NULL;
    if (v && *v && !(copy = strdup(v))) return -1;
    free(*d);
    *d = copy;
    return 0;
}

int xt_nats_conf_set(xt_nats_conf *c, const char *key, const char *value, const char *what, char *err,
                     size_t errlen)
{
    char msg[512];
    const field *f = field_find(key);
    if (!f) {
        snprintf(err, errlen, "%s: unknown NATS setting '%s'", what, key);
        return -1;
    }
    if (value && *value && check_value(f, value, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s: %s", what, msg);
        return -1;
    }
    if (set_field(c, f, value) != 0) {
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    return 0;
}

static int check_pair(const xt_nats_conf *c, const char *where, char *err, size_t errlen)
{
    if (!c->tls_cert != !c->tls_key) {
        snprintf(err, errlen, "%s: tls_cert and tls_key go together (a client certificate needs its key)",
                 where);
        return -1;
    }
    return 0;
}

int xt_nats_conf_parse(xt_nats_conf *c, const xt_doc *doc, const xt_node *map, const char *where, char *err,
                       size_t errlen)
{
    char msg[512], what[96];
    const xt_node *last = map;
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        const xt_node *n = xt_map_get(map, f->key);
        const char *v = NULL;
        if (!n) continue;
        snprintf(what, sizeof what, "%s.%s", where, f->key);
        if (n->kind == XT_NODE_SCALAR && (n->is_null || n->str_len == 0)) {
            set_field(c, f, NULL); /* `${VAR:-}`: unset */
            continue;
        }
        if (xt_conf_string(doc, n, what, &v, err, errlen) != 0) return -1;
        if (strlen(v) != n->str_len)
            return xt_conf_error(err, errlen, doc, n, "%s: a NUL byte in the value", what);
        if (check_value(f, v, msg, sizeof msg) != 0)
            return xt_conf_error(err, errlen, doc, n, "%s: %s", what, msg);
        if (set_field(c, f, v) != 0) return xt_conf_error(err, errlen, doc, n, "%s: out of memory", what);
        last = n;
    }
    if (!c->tls_cert != !c->tls_key)
        return xt_conf_error(err, errlen, doc, last, "%s: tls_cert and tls_key go together", where);
    return 0;
}

/* The one inbox prefix the user JWT of a .creds file may subscribe to ("_INBOX_cli-ams-1" for a sub
 * allow entry "_INBOX_cli-ams-1.>"), into out; 0, or -1 when the file holds no readable user JWT or
 * its subscribe list names no such entry or several (admin: ">", any inbox works). */
static int creds_inbox(const char *path, char *out, size_t outlen)
{
    static const char begin[] = "-----BEGIN NATS USER JWT-----";
    char buf[16384];
    size_t found = 0;
    json_t *claims = NULL;
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    char *jwt = strstr(buf, begin);
    if (jwt) {
        /* the claims only, unverified: the server checks the JWT, this only picks where replies go */
        jwt += sizeof begin - 1;
        jwt += strspn(jwt, "\r\n ");
        jwt[strcspn(jwt, "\r\n ")] = '\0';
        char *payload = strchr(jwt, '.'), *end = payload ? strchr(payload + 1, '.') : NULL;
        unsigned char json[8192];
        long jn = end ? xt_b64url_decode(payload + 1, (size_t)(end - payload - 1), json, sizeof json) : -1;
        if (jn > 0) claims = json_loadb((const char *)json, (size_t)jn, 0, NULL);
    }
    json_t *allow = json_object_get(json_object_get(json_object_get(claims, "nats"), "sub"), "allow");
    size_t i;
    json_t *v;
    json_array_foreach(allow, i, v)
    {
        const char *s = json_string_value(v);
        size_t len = s ? strlen(s) : 0;
        if (len > 8 && strncmp(s, "_INBOX", 6) == 0 && strcmp(s + len - 2, ".>") == 0 && len - 2 < outlen &&
            strchr(s, '*') == NULL && strchr(s, '>') == s + len - 1) {
            snprintf(out, outlen, "%.*s", (int)(len - 2), s);
            found++;
        }
    }
    json_decref(claims);
    explicit_bzero(buf, sizeof buf); /* the file's seed */
    return found == 1 ? 0 : -1;
}

int xt_nats_conf_env(xt_nats_conf *c, char *err, size_t errlen)
{
    static const char *const vars[][2] = {{"XTASK_NATS_URL", "url"},
                                          {"XTASK_NATS_CREDS", "creds"},
                                          {"XTASK_NATS_TLS_CA", "tls_ca"},
                                          {"XTASK_NATS_INBOX_PREFIX", "inbox_prefix"}};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i][0]);
        if (v && *v && xt_nats_conf_set(c, vars[i][1], v, vars[i][0], err, errlen) != 0) return -1;
    }
    /* Replies come back where the credential may read them: a `cli` user of the bus may subscribe
     * to `_INBOX_cli-<name>.>` only, so without an explicit prefix that one is used. */
    char prefix[XT_NATS_PREFIX_MAX + 1];
    if (c->creds && !c->inbox_prefix && creds_inbox(c->creds, prefix, sizeof prefix) == 0 &&
        xt_nats_conf_set(c, "inbox_prefix", prefix, c->creds, err, errlen) != 0)
        return -1;
    return check_pair(c, "nats", err, errlen);
}

/* --- text ---------------------------------------------------------------------------------- */

const char *xt_nats_url_redact(const char *url, char *buf, size_t len)
{
    size_t o = 0;
    const char *p = url ? url : "";
    buf[0] = '\0';
    while (*p && o + 1 < len) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *host = p;
        const char *at = memchr(p, '@', n);
        const char *sep = memmem(p, n, "://", 3);
        if (at) {
            host = at + 1;
            int w = snprintf(buf + o, len - o, "%.*s***@", sep ? (int)(sep + 3 - p) : 0, p);
            o += w > 0 ? (size_t)w : 0;
        }
        if (o < len) {
            int w = snprintf(buf + o, len - o, "%.*s%s", (int)(p + n - host), host, end ? "," : "");
            o += w > 0 ? (size_t)w : 0;
        }
        if (!end) break;
        p = end + 1;
    }
    if (o >= len) o = len - 1;
    buf[o] = '\0';
    return buf;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

const char *xt_nats_status_text(natsStatus st, const xt_nats_params *p, char *buf, size_t len)
{
    natsStatus last_st = NATS_OK;
    const char *detail = nats_GetLastError(&last_st);
    const char *creds = p && p->creds_where ? p->creds_where : "nats.creds";
    const char *tls = p && p->tls_where ? p->tls_where : "nats.tls_ca";
    if (detail && detail[0] == '(' && strstr(detail, "): "))
        detail = strstr(detail, "): ") + 3; /* (conn.c:733) */
    if (detail && !*detail) detail = NULL;
    if (st == NATS_CONNECTION_AUTH_FAILED || contains(detail, "authorization violation") ||
        contains(detail, "authentication"))
        snprintf(buf, len, "authorization violation: check %s", creds);
    else if (st == NATS_NOT_PERMITTED || contains(detail, "permissions violation"))
        snprintf(buf, len, "permission denied%s%s", detail ? ": " : "", detail ? detail : "");
    else if (st == NATS_SECURE_CONNECTION_REQUIRED)
        snprintf(buf, len, "the server requires TLS: set %s (or use a tls:// URL)", tls);
    else if (st == NATS_SECURE_CONNECTION_WANTED)
        snprintf(buf, len, "TLS wanted but the server does not offer it: check the URL and %s", tls);
    else if (st == NATS_SSL_ERROR || contains(detail, "certificate") || contains(detail, "ssl"))
        snprintf(buf, len, "TLS handshake failed (%s): check %s", detail ? detail : natsStatus_GetText(st),
                 tls);
    else if (st == NATS_NO_SERVER)
        snprintf(buf, len, "no server reachable (refused or timed out)");
    else if (detail && st != NATS_OK)
        snprintf(buf, len, "%s: %s", natsStatus_GetText(st), detail);
    else
        snprintf(buf, len, "%s", natsStatus_GetText(st));
    return buf;
}

int xt_nats_inbox(const char *prefix, char *buf, size_t len)
{
    natsInbox *ib = NULL;
    int rc = -1;
    if (natsInbox_Create(&ib) != NATS_OK) goto out;
    const char *s = (const char *)ib;
    const char *tail = strchr(s, '.'); /* "_INBOX.<nuid>" */
    int w;
    if (prefix && *prefix && tail)
        w = snprintf(buf, len, "%s%s", prefix, tail);
    else
        w = snprintf(buf, len, "%s", s);
    rc = w > 0 && (size_t)w < len ? 0 : -1;
out:
    natsInbox_Destroy(ib);
    return rc;
}

/* --- reply subjects that name the node (see xt_nats.h) ---------------------------------------- */

/* The inbox's tail: without "_INBOX_"; the plain "_INBOX." (the admin's default) becomes "admin.". */
static int inbox_tail(const char *inbox, char *buf, size_t len)
{
    int w;
    if (strncmp(inbox, "_INBOX_", 7) == 0)
        w = snprintf(buf, len, "%s", inbox + 7);
    else if (strncmp(inbox, "_INBOX.", 7) == 0)
        w = snprintf(buf, len, "admin.%s", inbox + 7);
    else
        w = snprintf(buf, len, "%s", inbox);
    return w > 0 && (size_t)w < len ? 0 : -1;
}

static int fmt_ok(int w, size_t len)
{
    return w > 0 && (size_t)w < len ? 0 : -1;
}

int xt_nats_reply_target(const char *subject, char *buf, size_t len)
{
    static const char *const not_nodes[] = {"nodes", "queue", "results", "logs", "events", "audit", NULL};
    if (!len) return -1;
    buf[0] = '\0';
    if (strncmp(subject, "xtask.", 6) != 0) return 0;
    const char *tok = subject + 6, *dot = strchr(tok, '.');
    size_t n = dot ? (size_t)(dot - tok) : strlen(tok);
    if (!dot || n == 0) return 0;
    if ((n == strlen(XT_NATS_REPLY_BROADCAST) && strncmp(tok, XT_NATS_REPLY_BROADCAST, n) == 0) ||
        strcmp(subject, "xtask.nodes.discover") == 0)
        return fmt_ok(snprintf(buf, len, "%s", XT_NATS_REPLY_BROADCAST), len);
    for (size_t i = 0; not_nodes[i]; i++)
        if (n == strlen(not_nodes[i]) && strncmp(tok, not_nodes[i], n) == 0) return 0;
    return fmt_ok(snprintf(buf, len, "%.*s", (int)n, tok), len);
}

int xt_nats_reply_for(const char *subject, const char *inbox, char *buf, size_t len)
{
    char target[128], tail[512];
    if (xt_nats_reply_target(subject, target, sizeof target) != 0) return -1;
    if (!target[0]) return fmt_ok(snprintf(buf, len, "%s", inbox), len);
    if (inbox_tail(inbox, tail, sizeof tail) != 0) return -1;
    return fmt_ok(snprintf(buf, len, XT_NATS_REPLY_PREFIX "%s.%s", target, tail), len);
}

int xt_nats_reply_sub(const char *subject, const char *inbox, char *buf, size_t len)
{
    char target[128];
    if (xt_nats_reply_target(subject, target, sizeof target) != 0) return -1;
    if (strcmp(target, XT_NATS_REPLY_BROADCAST) == 0) return xt_nats_reply_wildcard(inbox, buf, len);
    return xt_nats_reply_for(subject, inbox, buf, len);
}

int xt_nats_reply_wildcard(const char *inbox, char *buf, size_t len)
{
    char tail[512];
    if (inbox_tail(inbox, tail, sizeof tail) != 0) return -1;
    char *dot = strchr(tail, '.');
    if (dot) *dot = '\0';
    return fmt_ok(snprintf(buf, len, XT_NATS_REPLY_PREFIX "*.%s.>", tail), len);
}

const char *xt_nats_reply_rest(const char *subject, const char *inbox, char *node, size_t nodelen)
{
    size_t il = strlen(inbox), pl = strlen(XT_NATS_REPLY_PREFIX);
    const char *rest = NULL;
    char tail[512];
    if (node && nodelen) node[0] = '\0';
    if (strncmp(subject, inbox, il) == 0 && (subject[il] == '.' || subject[il] == '\0')) {
        rest = subject + il + (subject[il] == '.');
    } else if (strncmp(subject, XT_NATS_REPLY_PREFIX, pl) == 0 && inbox_tail(inbox, tail, sizeof tail) == 0) {
        const char *tok = subject + pl, *dot = strchr(tok, '.');
        size_t tl = strlen(tail);
        if (dot && dot > tok && strncmp(dot + 1, tail, tl) == 0 &&
            (dot[1 + tl] == '.' || dot[1 + tl] == '\0')) {
            rest = dot + 1 + tl + (dot[1 + tl] == '.');
            if (node && nodelen) snprintf(node, nodelen, "%.*s", (int)(dot - tok), tok);
        }
    }
    return rest;
}

int xt_nats_reply_as(const char *self, const char *reply, char *buf, size_t len)
{
    const char *p = reply + strlen(XT_NATS_REPLY_PREFIX), *dot;
    if (strncmp(reply, XT_NATS_REPLY_PREFIX, strlen(XT_NATS_REPLY_PREFIX)) != 0 || !(dot = strchr(p, '.')))
        return fmt_ok(snprintf(buf, len, "%s", reply), len);
    return fmt_ok(snprintf(buf, len, XT_NATS_REPLY_PREFIX "%s%s", self, dot), len);
}

/* --- callbacks ----------------------------------------------------------------------------- */

/* The server this connection reached, else the configured list. nats.c gives the URL as configured,
 * with any user:password@ in it (an edge node's local leaf): redacted before it reaches a log. */
static const char *connected_url(natsConnection *nc, const conn_ctx *x, char *buf, size_t len)
{
    char raw[256] = "";
    if (natsConnection_GetConnectedUrl(nc, raw, sizeof raw) != NATS_OK || !raw[0]) return x->url;
    xt_nats_url_redact(raw, buf, len);
    return buf;
}

static void on_connected(natsConnection *nc, void *ud)
{
    conn_ctx *x = ud;
    char buf[256];
    const char *url = connected_url(nc, x, buf, sizeof buf);
    if (x->quiet)
        xt_debug("connected to NATS at %s", url);
    else
        xt_info("connected to NATS at %s", url);
    if (x->p.on_connected) x->p.on_connected(nc, x->p.ud);
}

static void on_reconnected(natsConnection *nc, void *ud)
{
    conn_ctx *x = ud;
    char buf[256];
    const char *url = connected_url(nc, x, buf, sizeof buf);
    xt_info("reconnected to NATS at %s", url);
    if (x->p.on_connected) x->p.on_connected(nc, x->p.ud);
}

static void on_disconnected(natsConnection *nc, void *ud)
{
    conn_ctx *x = ud;
    /* a deliberate close also passes here: say nothing then */
    if (!natsConnection_IsClosed(nc)) xt_warn("disconnected from NATS (%s): reconnecting", x->url);
    if (x->p.on_disconnected) x->p.on_disconnected(nc, x->p.ud);
}

static void on_closed(natsConnection *nc, void *ud)
{
    conn_ctx *x = ud;
    const char *last = NULL;
    natsStatus st = natsConnection_GetLastError(nc, &last);
    if (st != NATS_OK && st != NATS_CONNECTION_CLOSED && last && *last)
        xt_warn("NATS connection closed (%s): %s", x->url, last);
    else
        xt_debug("NATS connection closed (%s)", x->url);
    if (x->p.on_closed) x->p.on_closed(nc, x->p.ud);
    free(x);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *ud)
{
    conn_ctx *x = ud;
    const char *last = NULL;
    natsConnection_GetLastError(nc, &last);
    if (err == NATS_SLOW_CONSUMER && sub)
        xt_warn("NATS: slow consumer on %s: messages dropped", natsSubscription_GetSubject(sub));
    else if (last && *last && strcasestr(last, "authorization"))
        xt_error("NATS (%s): %s: check %s", x->url, last, x->p.creds_where ? x->p.creds_where : "nats.creds");
    else
        xt_warn("NATS (%s): %s%s%s", x->url, natsStatus_GetText(err), last && *last ? ": " : "",
                last && *last ? last : "");
    if (x->p.on_error) x->p.on_error(nc, sub, err, x->p.ud);
}

/* --- connect ------------------------------------------------------------------------------- */

/* The server is not (yet) there, as opposed to refusing us. */
static int unreachable(natsStatus st)
{
    return st == NATS_NO_SERVER || st == NATS_TIMEOUT || st == NATS_IO_ERROR || st == NATS_SYS_ERROR ||
           st == NATS_CONNECTION_CLOSED || st == NATS_STALE_CONNECTION;
}

/* Build the options; on failure the cause is in msg. */
static natsStatus make_options(const xt_nats_conf *c, const xt_nats_params *p, conn_ctx *x, natsOptions **out,
                               char *msg, size_t len)
{
    natsOptions *o = NULL;
    const char *name = c->name ? c->name : p->name;
    int64_t tmo =
        p->timeout_ms > 0 && p->timeout_ms < CONNECT_TIMEOUT_MS ? p->timeout_ms : CONNECT_TIMEOUT_MS;
    natsStatus st = natsOptions_Create(&o);
    const char *step = "options";
    if (st == NATS_OK) st = natsOptions_SetURL(o, c->url);
    if (st == NATS_OK && name) st = natsOptions_SetName(o, name);
    if (st == NATS_OK) st = natsOptions_SetSendAsap(o, true);
    if (st == NATS_OK) st = natsOptions_SetTimeout(o, tmo);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, RECONNECT_WAIT_MS);
    if (st == NATS_OK) st = natsOptions_SetReconnectJitter(o, RECONNECT_JITTER_MS, RECONNECT_JITTER_TLS_MS);
    if (st == NATS_OK) st = natsOptions_SetReconnectBufSize(o, RECONNECT_BUF_BYTES);
    if (st == NATS_OK) st = natsOptions_SetPingInterval(o, PING_INTERVAL_MS);
    if (st == NATS_OK) st = natsOptions_SetMaxPingsOut(o, MAX_PINGS_OUT);
    if (st == NATS_OK && p->global_delivery) st = natsOptions_UseGlobalMessageDelivery(o, true);
    if (st == NATS_OK && c->inbox_prefix) {
        step = "inbox_prefix";
        st = natsOptions_SetCustomInboxPrefix(o, c->inbox_prefix);
    }
    if (st == NATS_OK && c->creds) {
        step = p->creds_where ? p->creds_where : "nats.creds";
        st = natsOptions_SetUserCredentialsFromFiles(o, c->creds, NULL);
    }
    if (st == NATS_OK && (c->tls_ca || c->tls_cert)) {
        step = p->tls_where ? p->tls_where : "nats.tls_ca";
        st = natsOptions_SetSecure(o, true);
        if (st == NATS_OK && c->tls_ca) st = natsOptions_LoadCATrustedCertificates(o, c->tls_ca);
        if (st == NATS_OK && c->tls_cert) st = natsOptions_LoadCertificatesChain(o, c->tls_cert, c->tls_key);
    }
    if (st == NATS_OK) step = "options";
    if (st == NATS_OK) st = natsOptions_SetReconnectedCB(o, on_reconnected, x);
    if (st == NATS_OK) st = natsOptions_SetDisconnectedCB(o, on_disconnected, x);
    if (st == NATS_OK) st = natsOptions_SetClosedCB(o, on_closed, x);
    if (st == NATS_OK) st = natsOptions_SetErrorHandler(o, on_error, x);
    if (st != NATS_OK) {
        const char *detail = nats_GetLastError(NULL);
        snprintf(msg, len, "%s: %s", step, detail && *detail ? detail : natsStatus_GetText(st));
        natsOptions_Destroy(o);
        o = NULL;
    }
    *out = o;
    return st;
}

int xt_nats_connect(const xt_nats_conf *c, const xt_nats_params *p, natsConnection **out, char *err,
                    size_t errlen)
{
    natsOptions *o = NULL;
    conn_ctx *x = calloc(1, sizeof *x);
    char msg[512];
    natsStatus st;
    int rc = -1;
    *out = NULL;
    if (!x) {
        snprintf(err, errlen, "NATS: out of memory");
        goto out;
    }
    x->p = *p;
    x->quiet = p->cli;
    xt_nats_url_redact(c->url, x->url, sizeof x->url);
    if (!c->url || !*c->url) {
        snprintf(err, errlen, "NATS: no server URL");
        goto out;
    }
    if (make_options(c, p, x, &o, msg, sizeof msg) != NATS_OK) {
        snprintf(err, errlen, "NATS at %s: %s", x->url, msg);
        goto out;
    }
    st = natsConnection_Connect(out, o);
    /* A service that may start before the server retries in the background, but only when the
     * server is not there yet: a refused credential or certificate is a configuration error that
     * retrying hides (nats.c would retry silently, then close), so it fails now with its cause. */
    if (st != NATS_OK && p->retry_connect && !p->cli && unreachable(st)) {
        xt_nats_status_text(st, p, msg, sizeof msg);
        *out = NULL;
        if (natsOptions_SetRetryOnFailedConnect(o, true, on_connected, x) == NATS_OK)
            st = natsConnection_Connect(out, o);
    }
    if (st == NATS_NOT_YET_CONNECTED) {
        xt_warn("NATS at %s not reachable yet (%s): retrying in the background", x->url, msg);
        x = NULL; /* the connection owns it now: freed by on_closed */
        rc = 0;
    } else if (st == NATS_OK) {
        conn_ctx *mine = x;
        x = NULL;
        rc = 0;
        on_connected(*out, mine);
    } else {
        xt_nats_status_text(st, p, msg, sizeof msg);
        snprintf(err, errlen, "NATS at %s: %s", x->url, msg);
        *out = NULL;
    }
out:
    natsOptions_Destroy(o);
    free(x);
    return rc;
}
