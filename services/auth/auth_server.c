/*
 * auth_server: the HTTP side of xtask-auth on one h2o event loop.
 *
 *   GET  /api/verify                 Authelia 4.37 forward-auth (rd = portal URL)
 *   GET  /api/authz/forward-auth     Authelia 4.38 forward-auth (authelia_url = portal URL)
 *   POST /api/firstfactor            {"username","password","keepMeLoggedIn","targetURL"} or a form
 *   POST /api/secondfactor/totp      {"token","targetURL"} or a form
 *   POST /api/logout                 {"targetURL"} or a form
 *   GET  /api/state, /api/health
 *   GET  /                           the portal (HTML forms, no JavaScript)
 *
 * Everything here runs on the loop thread. Password checks go to the worker pool (auth_pool.c);
 * their answers come back as messages. A request that goes away while its check is running only
 * clears a pointer (a dispose hook on the request's pool), the check's result is then dropped.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth.h"
#include "auth_audit.h"
#include "auth_kv.h"
#include "auth_pool.h"
#include "xt_log.h"
#include "xt_path.h"

#define MSG_AUTH_FAILED "Authentication failed. Check your credentials."
#define MSG_2FA_FAILED "Authentication failed, please retry later." /* Authelia's, in the JSON API */
#define MSG_BUSY "Too many sign-ins in progress, retry in a moment."
#define TICK_MS 500

typedef struct {
    int64_t sec, nsec, size, ino;
} file_stamp;

typedef struct server {
    auth_config *cfg;
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    auth_users *users;
    file_stamp users_stamp;
    auth_totp_store totp;
    file_stamp totp_stamp;
    auth_sessions *sessions;
    auth_regulation *reg;
    auth_pool *pool;
    auth_kv *kv;
    auth_audit *audit; /* NULL when audit.enabled is off */
    auth_enrol *enrol; /* TOTP enrolments in progress (auth_enrol.c) */
    h2o_multithread_queue_t *queue;
    h2o_timeout_t delay_timeout, tick_timeout;
    h2o_timeout_entry_t tick_entry;
    int64_t last_sweep_ms;
    char dummy_hash[AUTH_HASH_MAX + 1];
    uint64_t n_verify, n_busy;
    h2o_req_t *kv_redispatch; /* the request being handled again after its KV lookup */
} server;

static volatile sig_atomic_t g_stop;
static server *volatile g_server; /* keeps what we leave to the process exit reachable */

typedef enum { V437 = 0, V438 } verify_ver;

/* What a forward-auth request is about; lives in the request's pool. */
typedef struct {
    verify_ver ver;
    auth_authz_impl impl;
    unsigned method_bit;
    char method[16];
    char host[AUTH_HOST_MAX];
    char *path;   /* normalized, with ?query */
    char *target; /* scheme://host/path?query */
    char *portal; /* login portal URL or NULL */
    int basic;    /* credentials came in a header: 1 Authorization (401), 2 Proxy-Authorization (407) */
} verify_ctx;

typedef enum { JOB_LOGIN, JOB_BASIC } job_kind;

/* One attempt as the regulator counted it: its tickets in the user's and the address's rings. */
struct reg_ticket {
    uint64_t user, ip;
    char addr[AUTH_NAME_MAX + 1];
};

/* One password check in flight. Freed exactly once: by the request's dispose hook when the check
 * has already come back, else by the check's completion when the request is gone. */
typedef struct pending {
    auth_job job;
    server *srv;
    h2o_req_t *req;
    job_kind kind;
    int hash_done, delay_done, banned, form;
    int keep;
    struct reg_ticket rt; /* the attempt, counted when it started (reg_begin) */
    h2o_timeout_entry_t delay;
    char user[AUTH_NAME_MAX + 1];
    char target[AUTH_URL_MAX + 1];
    char req_method[16];
    verify_ctx *vc;
} pending;

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static int file_stat(const char *path, file_stamp *st)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        memset(st, 0, sizeof(*st));
        return -1;
    }
    st->sec = sb.st_mtim.tv_sec;
    st->nsec = sb.st_mtim.tv_nsec;
    st->size = sb.st_size;
    st->ino = (int64_t)sb.st_ino;
    return 0;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 415:
        return "Unsupported Media Type";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static int hdr_get(h2o_req_t *req, const h2o_token_t *tok, const char *name, h2o_iovec_t *out)
{
    ssize_t i = tok ? h2o_find_header(&req->headers, tok, -1)
                    : h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) return 0;
    *out = req->headers.entries[i].value;
    return 1;
}

/* --- audit trail ---------------------------------------------------------------------------- */

/* Copy a header value (bounded; one with control characters counts as absent). */
static void hdr_copy(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    h2o_iovec_t v;
    out[0] = 0;
    if (!hdr_get(req, NULL, name, &v) || v.len >= outlen) return;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.base[i] < 0x20 || v.base[i] == 0x7f) return;
    memcpy(out, v.base, v.len);
    out[v.len] = 0;
}

/* The client as the front saw it: the front puts it in X-Forwarded-For (replacing what an untrusted
 * client sent, appending to what a trusted proxy sent), so the chain's first entry is the client;
 * then X-Real-IP; a request that came without a front: the peer. */
static void client_of(h2o_req_t *req, char *client, size_t clen, char *xff, size_t xlen)
{
    char rip[64];
    hdr_copy(req, "x-forwarded-for", xff, xlen);
    hdr_copy(req, "x-real-ip", rip, sizeof(rip));
    unsigned char bin[sizeof(struct in6_addr)];
    client[0] = 0;
    if (xff[0]) {
        const char *p = xff + strspn(xff, " ");
        size_t n = strcspn(p, ", ");
        if (n < clen) {
            memcpy(client, p, n);
            client[n] = 0;
        }
    }
    if (!client[0] && rip[0]) snprintf(client, clen, "%s", rip);
    /* only an address stands for a client (heimdall GHSA-38x9-25wx-7fg2): "unknown", a port, quotes
     * or any other string would be a regulation key of the sender's choosing */
    if (client[0] && inet_pton(AF_INET, client, bin) != 1 && inet_pton(AF_INET6, client, bin) != 1)
        client[0] = 0;
    if (!client[0]) {
        struct sockaddr_storage ss;
        socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
        if (sl == 0 || h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, client) == SIZE_MAX)
            snprintf(client, clen, "unknown");
    }
}

static void audit_event(server *s, h2o_req_t *req, const char *event, const char *user, int level,
                        int64_t until)
{
    char client[64], xff[256];
    if (!s->audit) return;
    client_of(req, client, sizeof(client), xff, sizeof(xff));
    auth_audit_event(s->audit, event, user, client, xff, level, until);
}

/* --- regulation ------------------------------------------------------------------------------ */

/* Each factor has its own attempt ring: a success ends the failures of its own factor only, so a
 * correct password (phished, or the attacker's guess that already worked) cannot reset the count of
 * wrong TOTP codes between guesses. A ban from either ring bans the user. With regulation.modes
 * `ip`, every attempt also counts in its client address's ring, whatever name it tries; a success
 * there is left out rather than ending the count (an attacker's own sign-in between guesses at other
 * names). Ring keys put a control byte before the name or address, which no user name contains
 * (name_ok): "\x02" the TOTP ring, "\x03" an address. */
static void reg_key(const char *name, int kind, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s", kind == 1 ? "\x02" : kind == 2 ? "\x03" : "", name);
}

/* 1 (and *until) when the user is banned by either factor's ring (with mode user). */
static int reg_banned(server *s, const char *user, int64_t now, int64_t *until)
{
    char k[AUTH_NAME_MAX + 2];
    if (!(s->cfg->reg_modes & AUTH_REG_USER)) return 0;
    reg_key(user, 1, k, sizeof(k));
    return auth_regulation_banned(s->reg, user, now, until) || auth_regulation_banned(s->reg, k, now, until);
}

/* How long (ms) `user`, or with mode ip the client address, stays locked out; 0 when not. */
static int64_t ban_left(server *s, h2o_req_t *req, const char *user, int64_t now)
{
    char k[AUTH_NAME_MAX + 2], addr[AUTH_NAME_MAX + 1], xff[256];
    int64_t until = 0, left = 0;
    if (user && *user && reg_banned(s, user, now, &until) && until - now > left) left = until - now;
    if (s->cfg->reg_modes & AUTH_REG_IP) {
        client_of(req, addr, sizeof(addr), xff, sizeof(xff));
        reg_key(addr, 2, k, sizeof(k));
        if (auth_regulation_banned(s->reg, k, now, &until) && until - now > left) left = until - now;
    }
    return left;
}

/* Start an attempt of a factor: counted now, before the check (auth_regulation_begin), refused
 * (1) when the user or (mode ip) the client address is banned. reg_succeed() once the check passed. */
static int reg_begin(server *s, h2o_req_t *req, const char *user, int totp, int64_t now, struct reg_ticket *t)
{
    char k[AUTH_NAME_MAX + 2], xff[256];
    int64_t until = 0;
    int banned = 0;
    memset(t, 0, sizeof(*t));
    if (s->cfg->reg_modes & AUTH_REG_IP) {
        client_of(req, t->addr, sizeof(t->addr), xff, sizeof(xff));
        reg_key(t->addr, 2, k, sizeof(k));
        banned = auth_regulation_begin(s->reg, k, now, &until, &t->ip);
        if (banned) xt_info("sign-in from %s refused: address banned (regulation)", t->addr);
    }
    if (!banned && (s->cfg->reg_modes & AUTH_REG_USER)) {
        banned = reg_banned(s, user, now, &until);
        reg_key(user, totp, k, sizeof(k));
        if (!banned) banned = auth_regulation_begin(s->reg, k, now, &until, &t->user);
    }
    return banned;
}

/* The attempt was never checked (the worker pool was full): it counts neither way. */
static void reg_forget(server *s, const char *user, int totp, const struct reg_ticket *t)
{
    char k[AUTH_NAME_MAX + 2];
    reg_key(user, totp, k, sizeof(k));
    auth_regulation_forget(s->reg, k, t->user);
    if (t->ip) {
        reg_key(t->addr, 2, k, sizeof(k));
        auth_regulation_forget(s->reg, k, t->ip);
    }
}

static void reg_succeed(server *s, const char *user, int totp, const struct reg_ticket *t)
{
    char k[AUTH_NAME_MAX + 2];
    reg_key(user, totp, k, sizeof(k));
    auth_regulation_succeed(s->reg, k, t->user);
    if (t->ip) {
        reg_key(t->addr, 2, k, sizeof(k));
        auth_regulation_forget(s->reg, k, t->ip);
    }
}

/* A failure, and the ban it completed (if it did): `was_banned` attempts are not counted. */
static size_t end_user_sessions(server *s, const char *user, const char *why);

static void audit_failure(server *s, h2o_req_t *req, const char *event, const char *user, int was_banned,
                          int64_t now)
{
    int64_t until = 0;
    audit_event(s, req, event, user, 0, 0);
    if (!was_banned && reg_banned(s, user, now, &until)) {
        xt_info("'%s' banned until %lld (regulation)", user, (long long)until);
        audit_event(s, req, "ban", user, 0, until);
        /* a ban ends the user's live sessions too (WSTG-SESS-03): whoever completed it may hold one */
        end_user_sessions(s, user, "banned (regulation)");
    }
}

static void add_hdr(h2o_req_t *req, const char *name, const char *val, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, val, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

static void respond(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    if (ctype)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

static void respond_text(h2o_req_t *req, int status, const char *text)
{
    respond(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* {"status":"OK"|"KO", "message"?, "data"?} ; data is stolen */
static void respond_json(h2o_req_t *req, int status, const char *st, const char *message, json_t *data)
{
    json_t *o = json_object();
    char *s;
    json_object_set_new(o, "status", json_string(st));
    if (message) json_object_set_new(o, "message", json_string(message));
    if (data) json_object_set_new(o, "data", data);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) {
        respond_text(req, 500, "internal error");
        return;
    }
    {
        h2o_iovec_t v = h2o_strdup(&req->pool, s, strlen(s));
        free(s);
        respond(req, status, "application/json; charset=utf-8", v.base, v.len);
    }
}

static void respond_html(h2o_req_t *req, int status, const auth_portal_page *pg)
{
    size_t len = 0;
    char *html = auth_portal_render(pg, &len);
    h2o_iovec_t v;
    if (!html) {
        respond_text(req, 500, "internal error");
        return;
    }
    v = h2o_strdup(&req->pool, html, len);
    free(html);
    add_hdr(req, "x-frame-options", H2O_STRLIT("DENY"));
    add_hdr(req, "content-security-policy",
            H2O_STRLIT("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                       "frame-ancestors 'none'; base-uri 'none'"));
    add_hdr(req, "referrer-policy", H2O_STRLIT("no-referrer"));
    respond(req, status, "text/html; charset=utf-8", v.base, v.len);
}

static void redirect(h2o_req_t *req, int status, const char *location)
{
    char body[AUTH_URL_MAX * 2 + 64];
    int n;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                   h2o_strdup(&req->pool, location, strlen(location)).base, strlen(location));
    n = snprintf(body, sizeof(body), "%d %s\n", status, reason_of(status));
    respond(req, status, "text/plain; charset=utf-8", h2o_strdup(&req->pool, body, (size_t)n).base,
            (size_t)n);
}

/* Post/redirect/get: a form's outcome is a 303 to the portal, which shows the message `code`
 * (auth_portal_message) and keeps the name tried and the target; Back never resubmits a form. */
static void portal_redirect(h2o_req_t *req, const char *rd, const char *user, const char *code)
{
    char loc[AUTH_URL_MAX * 3 + AUTH_NAME_MAX * 3 + 64], erd[AUTH_URL_MAX * 3 + 1], eu[AUTH_NAME_MAX * 3 + 1];
    if (!rd || auth_url_encode(rd, strlen(rd), erd, sizeof(erd)) < 0) erd[0] = 0;
    if (!user || auth_url_encode(user, strlen(user), eu, sizeof(eu)) < 0) eu[0] = 0;
    snprintf(loc, sizeof(loc), "/?m=%s%s%s%s%s", code, erd[0] ? "&rd=" : "", erd, eu[0] ? "&username=" : "",
             eu);
    redirect(req, 303, loc);
}

static void set_cookie(server *s, h2o_req_t *req, const auth_session *sess)
{
    const auth_config *c = s->cfg;
    char v[512], hex[AUTH_SID_HEX + 1];
    int n;
    const char *ss = strcmp(c->same_site, "strict") == 0 ? "Strict"
                     : strcmp(c->same_site, "none") == 0 ? "None"
                                                         : "Lax";
    if (sess) {
        auth_hex_encode(sess->id, AUTH_SID_BYTES, hex);
        if (sess->remember)
            n = snprintf(v, sizeof(v),
                         "%s=%s; Path=/; Domain=%s; Max-Age=%lld; HttpOnly; Secure; SameSite=%s",
                         c->cookie_name, hex, c->domain, (long long)(c->remember_me_ms / 1000), ss);
        else
            n = snprintf(v, sizeof(v), "%s=%s; Path=/; Domain=%s; HttpOnly; Secure; SameSite=%s",
                         c->cookie_name, hex, c->domain, ss);
        OPENSSL_cleanse(hex, sizeof(hex));
    } else {
        n = snprintf(
            v, sizeof(v),
            "%s=; Path=/; Domain=%s; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; "
            "SameSite=%s",
            c->cookie_name, c->domain, ss);
    }
    if (n > 0 && (size_t)n < sizeof(v)) {
        h2o_iovec_t iv = h2o_strdup(&req->pool, v, (size_t)n);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, iv.base, iv.len);
    }
    OPENSSL_cleanse(v, sizeof(v));
}

/* ------------------------------------------------------------------------------------------ */
/* sessions */

static int64_t inactivity_of(server *s)
{
    return s->cfg->inactivity_ms;
}

static void session_drop(server *s, auth_session *sess)
{
    if (s->kv) auth_kv_delete(s->kv, sess->id);
    auth_sessions_remove(s->sessions, sess);
}

/* End every session of `user` (dropped and deleted from the shared store); how many. */
static size_t end_user_sessions(server *s, const char *user, const char *why)
{
    size_t n = 0;
    for (size_t i = 0; i < auth_sessions_capacity(s->sessions); i++) {
        auth_session *sess = auth_sessions_slot(s->sessions, i);
        if (sess && strcmp(sess->user, user) == 0) {
            session_drop(s, sess);
            n++;
        }
    }
    if (n) xt_info("%zu sessions of '%s' ended: %s", n, user, why);
    return n;
}

/* The request's live session (any Cookie header, our cookie name), or NULL. A dead session, or one
 * whose user is gone or disabled, is removed. `touch` records activity. */
static auth_session *session_of(server *s, h2o_req_t *req, int64_t now, int touch, const auth_user **user)
{
    ssize_t i = -1;
    *user = NULL;
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        char val[AUTH_SID_HEX + 8];
        uint8_t id[AUTH_SID_BYTES];
        long n = auth_cookie_get(v.base, v.len, s->cfg->cookie_name, val, sizeof(val));
        auth_session *sess;
        const auth_user *u;
        if (n != AUTH_SID_HEX || auth_hex_decode(val, (size_t)n, id, sizeof(id)) < 0) continue;
        sess = auth_sessions_find(s->sessions, id);
        OPENSSL_cleanse(val, sizeof(val));
        OPENSSL_cleanse(id, sizeof(id));
        if (!sess) continue;
        if (!auth_session_alive(sess, now, inactivity_of(s))) {
            session_drop(s, sess);
            continue;
        }
        u = auth_users_find(s->users, sess->user);
        if (!u || u->disabled) {
            xt_info("session of '%s' ended: user removed or disabled", sess->user);
            session_drop(s, sess);
            continue;
        }
        if (touch) {
            sess->last_ms = now;
            if (s->kv && !sess->remember && inactivity_of(s) > 0) { /* only inactivity needs it */
                int64_t every = inactivity_of(s) / 4;
                if (every > 5000) every = 5000;
                if (now - sess->synced_ms >= every) {
                    sess->synced_ms = now;
                    auth_kv_put(s->kv, sess);
                }
            }
        }
        *user = u;
        return sess;
    }
    return NULL;
}

static auth_session *session_new(server *s, h2o_req_t *req, const char *user, auth_level level, int remember,
                                 int64_t now)
{
    auth_session *sess = auth_sessions_create(s->sessions, now);
    if (!sess) return NULL;
    snprintf(sess->user, sizeof(sess->user), "%s", user);
    sess->level = (uint8_t)level;
    sess->remember = (uint8_t)(remember && s->cfg->remember_me_ms > 0);
    sess->expires_ms = now + (sess->remember ? s->cfg->remember_me_ms : s->cfg->expiration_ms);
    sess->synced_ms = now;
    if (s->kv) auth_kv_put(s->kv, sess);
    set_cookie(s, req, sess);
    return sess;
}

/* ------------------------------------------------------------------------------------------ */
/* forward-auth */

static void set_remote_headers(h2o_req_t *req, const auth_user *u)
{
    add_hdr(req, "remote-user", u->name, strlen(u->name));
    add_hdr(req, "remote-groups", u->groups_csv, strlen(u->groups_csv));
    add_hdr(req, "remote-name", u->displayname, strlen(u->displayname));
    add_hdr(req, "remote-email", u->email, strlen(u->email));
}

static void verify_unauthorized(server *s, h2o_req_t *req, verify_ctx *vc)
{
    h2o_iovec_t accept = {NULL, 0}, xrw = {NULL, 0};
    int wants_html, status;
    char loc[AUTH_URL_MAX * 4 + 64], enc[AUTH_URL_MAX * 3 + 1];

    if (vc->basic == 2) {
        add_hdr(req, "proxy-authenticate", H2O_STRLIT("Basic realm=\"Authentication required\""));
        respond_text(req, 407, "407 Proxy Authentication Required\n");
        return;
    }
    if (vc->basic) {
        add_hdr(req, "www-authenticate", H2O_STRLIT("Basic realm=\"Authentication required\""));
        respond_text(req, 401, "401 Unauthorized\n");
        return;
    }
    if (!vc->portal) {
        respond_text(req, 401, "401 Unauthorized\n");
        return;
    }
    hdr_get(req, H2O_TOKEN_ACCEPT, NULL, &accept);
    hdr_get(req, NULL, "x-requested-with", &xrw);
    wants_html = accept.base && auth_accepts_html(accept.base, accept.len) &&
                 !(xrw.base && h2o_lcstris(xrw.base, xrw.len, H2O_STRLIT("xmlhttprequest")));
    if (auth_url_encode(vc->target, strlen(vc->target), enc, sizeof(enc)) < 0 ||
        snprintf(loc, sizeof(loc), "%s%srd=%s&rm=%s", vc->portal, strchr(vc->portal, '?') ? "&" : "?", enc,
                 vc->method) >= (int)sizeof(loc)) {
        respond_text(req, 401, "401 Unauthorized\n");
        return;
    }
    if (!wants_html || vc->impl == AUTH_AUTHZ_AUTH_REQUEST) { /* nginx turns AuthRequest's 401 into its own */
        if (vc->ver == V438)                                  /* 4.38 sends the Location with its 401 too */
            add_hdr(req, "location", loc, strlen(loc));
        respond_text(req, 401, "401 Unauthorized\n");
        return;
    }
    if (strcmp(vc->method, "GET") == 0 || strcmp(vc->method, "OPTIONS") == 0 ||
        (vc->ver == V438 && strcmp(vc->method, "HEAD") == 0))
        status = 302;
    else
        status = 303;
    redirect(req, status, loc);
}

/* Authelia's isAuthzResult: the answer for a known (u != NULL) or anonymous request. */
static void verify_decide(server *s, h2o_req_t *req, verify_ctx *vc, const auth_user *u, auth_level level)
{
    auth_object obj = {vc->host, vc->path, vc->method_bit, u ? u->name : NULL, u ? u->groups : NULL};
    int idx, has_subjects;
    auth_policy pol = auth_acl_match(&s->cfg->acl, &obj, &idx, &has_subjects);

    if (pol == AUTH_POLICY_BYPASS) {
        if (u) set_remote_headers(req, u);
        respond_text(req, 200, "200 OK\n");
        return;
    }
    if (pol == AUTH_POLICY_DENY && (u || (vc->ver == V438 && !has_subjects))) {
        xt_info("access to %s denied to %s (%s #%d)", vc->target, u ? u->name : "<anonymous>",
                idx < 0 ? "default policy" : "rule", idx + 1);
        respond_text(req, 403, "403 Forbidden\n");
        return;
    }
    if (u && ((pol == AUTH_POLICY_ONE_FACTOR && level >= AUTH_LEVEL_ONE) ||
              (pol == AUTH_POLICY_TWO_FACTOR && level >= AUTH_LEVEL_TWO))) {
        set_remote_headers(req, u);
        respond_text(req, 200, "200 OK\n");
        return;
    }
    xt_debug("access to %s needs authentication (%s, rule %d)", vc->target, u ? u->name : "<anonymous>",
             idx + 1);
    verify_unauthorized(s, req, vc);
}

/* The request the proxy asks about, read the implementation's way (auth_authz.c): method, scheme,
 * host and path?query. 0, or -1 with a reply sent when something is missing or malformed. */
static int verify_object(h2o_req_t *req, verify_ctx *vc, size_t suffix, h2o_iovec_t *m, h2o_iovec_t *proto,
                         h2o_iovec_t *host, h2o_iovec_t *uri)
{
    int bad = vc->ver == V438 ? 400 : 401; /* 4.38 answers 400, 4.37 401 */
    h2o_iovec_t url;
    const char *sep, *end, *hs;
    switch (vc->impl) {
    case AUTH_AUTHZ_AUTH_REQUEST: /* nginx: X-Original-URL scheme://host/path?query, X-Original-Method */
        if (!hdr_get(req, NULL, "x-original-url", &url) || !hdr_get(req, NULL, "x-original-method", m)) {
            respond_text(req, bad, "missing X-Original-URL or X-Original-Method\n");
            return -1;
        }
        end = url.base + url.len;
        sep = url.len > 3 ? memchr(url.base, ':', url.len) : NULL;
        if (!sep || end - sep < 4 || sep[1] != '/' || sep[2] != '/') {
            respond_text(req, bad, "bad X-Original-URL\n");
            return -1;
        }
        *proto = h2o_iovec_init(url.base, (size_t)(sep - url.base));
        hs = sep + 3;
        for (sep = hs; sep < end && *sep != '/' && *sep != '?' && *sep != '#'; sep++)
            ;
        if (sep == end || *sep != '/') { /* no path: nothing a rule could be matched on */
            respond_text(req, bad, "bad X-Original-URL\n");
            return -1;
        }
        *host = h2o_iovec_init(hs, (size_t)(sep - hs));
        *uri = h2o_iovec_init(sep, (size_t)(end - sep));
        return 0;
    case AUTH_AUTHZ_EXT_AUTHZ: /* Envoy: the request itself, the path after the endpoint's */
        *m = req->method;
        *host = req->authority;
        if (!hdr_get(req, NULL, "x-forwarded-proto", proto)) {
            respond_text(req, bad, "missing X-Forwarded-Proto\n");
            return -1;
        }
        if (suffix < req->path.len && req->path.base[suffix] == '/')
            *uri = h2o_iovec_init(req->path.base + suffix, req->path.len - suffix);
        else if (suffix < req->path.len) /* the endpoint's own path with a query: the query is the target's */
            *uri = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/")),
                              h2o_iovec_init(req->path.base + suffix, req->path.len - suffix));
        else
            *uri = h2o_iovec_init(H2O_STRLIT("/"));
        return 0;
    default: /* ForwardAuth, Legacy: the X-Forwarded-* a front sets */
        if (!hdr_get(req, NULL, "x-forwarded-method", m) || !hdr_get(req, NULL, "x-forwarded-proto", proto) ||
            !hdr_get(req, NULL, "x-forwarded-host", host) || !hdr_get(req, NULL, "x-forwarded-uri", uri)) {
            xt_warn("forward-auth request without X-Forwarded-Method/Proto/Host/Uri: denied");
            respond_text(req, bad, "missing X-Forwarded-* headers\n");
            return -1;
        }
        return 0;
    }
}

/* Check and normalize what verify_object read. -1 (and a reply sent) when malformed. */
static int verify_parse(server *s, h2o_req_t *req, verify_ctx *vc, h2o_iovec_t m, h2o_iovec_t proto,
                        h2o_iovec_t host, h2o_iovec_t uri)
{
    char hostlc[AUTH_HOST_MAX], pathbuf[AUTH_URL_MAX + 1], tgt[AUTH_URL_MAX * 2];
    long pl;
    int n;
    size_t i;
    int bad = vc->ver == V438 ? 400 : 401; /* 4.38 answers 400, 4.37 401 */

    if (m.len == 0 || m.len >= sizeof(vc->method) || !(vc->method_bit = auth_method_bit(m.base, m.len))) {
        respond_text(req, bad, "bad X-Forwarded-Method\n");
        return -1;
    }
    memcpy(vc->method, m.base, m.len);
    vc->method[m.len] = '\0';
    if (!(h2o_lcstris(proto.base, proto.len, H2O_STRLIT("https")) ||
          (s->cfg->allow_http && h2o_lcstris(proto.base, proto.len, H2O_STRLIT("http"))))) {
        xt_info("forward-auth for scheme '%.*s' refused (https only)", (int)(proto.len > 16 ? 16 : proto.len),
                proto.base);
        respond_text(req, 401, "401 Unauthorized\n");
        return -1;
    }
    if (host.len >= sizeof(hostlc) ||
        auth_host_normalize(host.base, host.len, vc->host, sizeof(vc->host)) < 0) {
        respond_text(req, bad, "bad X-Forwarded-Host\n");
        return -1;
    }
    for (i = 0; i < host.len; i++)
        hostlc[i] = (char)((host.base[i] >= 'A' && host.base[i] <= 'Z') ? host.base[i] + 32 : host.base[i]);
    hostlc[host.len] = '\0';
    if (!auth_host_under(vc->host, s->cfg->domain)) {
        xt_info("forward-auth for host '%s' outside session domain '%s': denied", vc->host, s->cfg->domain);
        respond_text(req, 401, "401 Unauthorized\n");
        return -1;
    }
    if (uri.len == 0 || uri.len > AUTH_URL_MAX || memchr(uri.base, '#', uri.len) ||
        (pl = xt_path_normalize(uri.base, uri.len, pathbuf, sizeof(pathbuf))) < 0) {
        respond_text(req, bad, "bad X-Forwarded-Uri\n");
        return -1;
    }
    for (i = 0; i < (size_t)pl; i++)
        if ((unsigned char)pathbuf[i] <= 0x20 || (unsigned char)pathbuf[i] >= 0x7f) {
            respond_text(req, bad, "bad X-Forwarded-Uri\n");
            return -1;
        }
    vc->path = h2o_strdup(&req->pool, pathbuf, (size_t)pl).base;
    n = snprintf(tgt, sizeof(tgt), "%s://%s%s",
                 h2o_lcstris(proto.base, proto.len, H2O_STRLIT("https")) ? "https" : "http", hostlc, pathbuf);
    if (n < 0 || n >= (int)sizeof(tgt) || n > AUTH_URL_MAX) {
        respond_text(req, bad, "target URL too long\n");
        return -1;
    }
    vc->target = h2o_strdup(&req->pool, tgt, (size_t)n).base;

    /* the portal: ?rd= (4.37), ?authelia_url= (4.38), X-Authelia-URL (ExtAuthz), else
     * session.authelia_url */
    vc->portal = (char *)s->cfg->portal_url;
    if (vc->impl == AUTH_AUTHZ_EXT_AUTHZ) {
        h2o_iovec_t v;
        if (hdr_get(req, NULL, "x-authelia-url", &v) && v.len <= AUTH_URL_MAX) {
            if (auth_rd_safe(v.base, v.len, s->cfg->domain, s->cfg->allow_http))
                vc->portal = h2o_strdup(&req->pool, v.base, v.len).base;
            else
                xt_warn("forward-auth: X-Authelia-URL is not under the session domain: ignored");
        }
    } else if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1;
        size_t ql = req->path.len - req->query_at - 1;
        char val[AUTH_URL_MAX + 1];
        long vl = xt_query_get(q, ql, vc->ver == V437 ? "rd" : "authelia_url", val, sizeof(val));
        if (vl > 0) {
            if (auth_rd_safe(val, (size_t)vl, s->cfg->domain, s->cfg->allow_http))
                vc->portal = h2o_strdup(&req->pool, val, (size_t)vl).base;
            else
                xt_warn("forward-auth: portal URL in the query is not under the session domain: ignored");
        }
    }
    return 0;
}

static void pending_dispose(void *p_);
static void pending_send_login(pending *p);
static int pending_start(server *s, h2o_req_t *req, pending *p, const char *pw, size_t pwlen, int with_delay);

static int verify_basic(server *s, h2o_req_t *req, verify_ctx *vc, h2o_iovec_t hdr)
{
    char user[AUTH_NAME_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    pending *p;
    if (!vc->basic) vc->basic = 1;
    if (auth_basic_parse(hdr.base, hdr.len, user, sizeof(user), pw, sizeof(pw)) < 0) {
        verify_unauthorized(s, req, vc);
        return 0;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        respond_text(req, 503, "busy\n");
        return 0;
    }
    p->kind = JOB_BASIC;
    p->vc = vc;
    snprintf(p->user, sizeof(p->user), "%s", user);
    snprintf(p->req_method, sizeof(p->req_method), "%s", vc->method);
    if (pending_start(s, req, p, pw, strlen(pw), 0) < 0) respond_text(req, 503, "busy\n");
    OPENSSL_cleanse(pw, sizeof(pw));
    return 0;
}

/* An authz endpoint (auth_authz.c): read the object the implementation's way, then try the
 * endpoint's authn strategies in order until one authenticates (Authelia's Authz.authn). A header
 * strategy whose header is present decides (its credentials right or wrong); an absent header passes
 * to the next strategy. Strategies not listed are never consulted: Basic credentials sent to a
 * cookie-only endpoint are ignored, as the admin configured. */
static int on_verify(server *s, h2o_req_t *req, const auth_authz_endpoint *ep, size_t suffix)
{
    verify_ctx *vc = h2o_mem_alloc_pool(&req->pool, sizeof(*vc));
    int64_t now = auth_now_ms();
    const auth_user *u = NULL;
    auth_session *sess;
    h2o_iovec_t authz, m, proto, host, uri;
    int last_style = 0;

    memset(vc, 0, sizeof(*vc));
    vc->impl = ep->impl;
    vc->ver = ep->impl == AUTH_AUTHZ_LEGACY ? V437 : V438;
    s->n_verify++;
    if (verify_object(req, vc, suffix, &m, &proto, &host, &uri) < 0 ||
        verify_parse(s, req, vc, m, proto, host, uri) < 0)
        return 0;
    for (size_t i = 0; i < ep->nstrat; i++) {
        switch (ep->strat[i]) {
        case AUTH_AUTHN_COOKIE:
            sess = session_of(s, req, now, 1, &u);
            if (sess) {
                verify_decide(s, req, vc, u, (auth_level)sess->level);
                return 0;
            }
            last_style = 0;
            break;
        case AUTH_AUTHN_HEADER_AUTHORIZATION:
            last_style = 1;
            if (hdr_get(req, H2O_TOKEN_AUTHORIZATION, NULL, &authz)) {
                vc->basic = 1;
                return verify_basic(s, req, vc, authz);
            }
            break;
        case AUTH_AUTHN_HEADER_PROXY_AUTHORIZATION:
        case AUTH_AUTHN_HEADER_AUTHREQUEST_PROXY_AUTHORIZATION:
            last_style = ep->strat[i] == AUTH_AUTHN_HEADER_PROXY_AUTHORIZATION ? 2 : 1;
            if (hdr_get(req, H2O_TOKEN_PROXY_AUTHORIZATION, NULL, &authz)) {
                vc->basic = last_style;
                return verify_basic(s, req, vc, authz);
            }
            break;
        case AUTH_AUTHN_HEADER_LEGACY: {
            int basic_mode = 0;
            last_style = 1;
            if (req->query_at != SIZE_MAX) {
                char val[16];
                long vl = xt_query_get(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1,
                                       "auth", val, sizeof(val));
                basic_mode = vl == 5 && memcmp(val, "basic", 5) == 0;
            }
            if (basic_mode) { /* ?auth=basic: the Authorization header is expected */
                vc->basic = 1;
                if (!hdr_get(req, H2O_TOKEN_AUTHORIZATION, NULL, &authz)) {
                    verify_unauthorized(s, req, vc);
                    return 0;
                }
                return verify_basic(s, req, vc, authz);
            }
            if (hdr_get(req, H2O_TOKEN_PROXY_AUTHORIZATION, NULL, &authz)) {
                vc->basic = 1;
                return verify_basic(s, req, vc, authz);
            }
            break;
        }
        }
    }
    /* nobody authenticated: the last strategy, if a header one, answers the way it asks for credentials */
    vc->basic = last_style;
    verify_decide(s, req, vc, NULL, AUTH_LEVEL_NONE);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* password checks in flight */

static void pending_dispose(void *p_)
{
    pending *p = *(pending **)p_;
    p->req = NULL;
    if (h2o_timeout_is_linked(&p->delay)) h2o_timeout_unlink(&p->delay);
    if (p->hash_done) free(p);
}

static void pending_maybe_finish(pending *p)
{
    if (!p->req) return;
    if (p->kind == JOB_BASIC) {
        server *s = p->srv;
        const auth_user *u = auth_users_find(s->users, p->user);
        int ok = p->job.result == 1 && u && !u->disabled && !p->banned;
        int64_t now = auth_now_ms();
        if (ok) reg_succeed(s, p->user, 0, &p->rt);
        if (ok) {
            verify_decide(s, p->req, p->vc, u, AUTH_LEVEL_ONE);
        } else {
            audit_failure(s, p->req, "login_failed", p->user, p->banned, now);
            verify_unauthorized(s, p->req, p->vc);
        }
        return;
    }
    /* a success answers at once; every failure (wrong password, unknown, disabled or banned user)
     * waits for the failure delay too */
    {
        const auth_user *u = auth_users_find(p->srv->users, p->user);
        int ok = p->job.result == 1 && u && !u->disabled && !p->banned;
        if (ok || p->delay_done) pending_send_login(p);
    }
}

static void on_hash_done(auth_job *job)
{
    pending *p = H2O_STRUCT_FROM_MEMBER(pending, job, job);
    p->hash_done = 1;
    if (!p->req) {
        free(p);
        return;
    }
    pending_maybe_finish(p);
}

static void on_delay_done(h2o_timeout_entry_t *e)
{
    pending *p = H2O_STRUCT_FROM_MEMBER(pending, delay, e);
    p->delay_done = 1;
    if (p->hash_done) pending_maybe_finish(p);
}

/* Queue the check of `pw` against the user's hash (a real user's hash for unknown or disabled users,
 * so that every failure costs the same). -1 when the pool is full (p is freed). */
static int pending_start(server *s, h2o_req_t *req, pending *p, const char *pw, size_t pwlen, int with_delay)
{
    const auth_user *u = auth_users_find(s->users, p->user);
    const char *hash = (u && !u->disabled)
                           ? u->password
                           : (s->users && s->users->n ? s->users->v[0].password : s->dummy_hash);
    pending **anchor;

    p->srv = s;
    p->req = req;
    p->banned = reg_begin(s, req, p->user, 0, auth_now_ms(), &p->rt);
    snprintf(p->job.hash, sizeof(p->job.hash), "%s", hash);
    if (pwlen > AUTH_PASSWORD_MAX) pwlen = AUTH_PASSWORD_MAX;
    memcpy(p->job.pw, pw, pwlen);
    p->job.pwlen = pwlen;
    p->job.done = on_hash_done;
    if (auth_pool_submit(s->pool, &p->job) < 0) {
        s->n_busy++;
        if (!p->banned) reg_forget(s, p->user, 0, &p->rt);
        OPENSSL_cleanse(p->job.pw, sizeof(p->job.pw));
        free(p);
        return -1;
    }
    anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*anchor), pending_dispose);
    *anchor = p;
    p->delay.cb = on_delay_done;
    if (with_delay)
        h2o_timeout_link(s->ctx.loop, &s->delay_timeout, &p->delay);
    else
        p->delay_done = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* first factor, second factor, logout, state */

typedef struct {
    int form; /* 1: x-www-form-urlencoded, 0: JSON */
    json_t *json;
} body_t;

/* Parse the body as JSON or a form. -1 (reply sent) when neither. */
static int body_parse(h2o_req_t *req, body_t *b)
{
    h2o_iovec_t ct = {NULL, 0};
    memset(b, 0, sizeof(*b));
    hdr_get(req, H2O_TOKEN_CONTENT_TYPE, NULL, &ct);
    if (ct.base && ct.len >= 33 &&
        h2o_lcstris(ct.base, 33, H2O_STRLIT("application/x-www-form-urlencoded"))) {
        b->form = 1;
        return 0;
    }
    if (ct.base && ct.len >= 16 && h2o_lcstris(ct.base, 16, H2O_STRLIT("application/json"))) {
        json_error_t e;
        b->json =
            json_loadb(req->entity.base ? req->entity.base : "", req->entity.len, JSON_REJECT_DUPLICATES, &e);
        if (!b->json || !json_is_object(b->json)) {
            json_decref(b->json);
            b->json = NULL;
            respond_json(req, 400, "KO", "Unable to parse the request body.", NULL);
            return -1;
        }
        return 0;
    }
    respond_json(req, 415, "KO", "Use application/json or application/x-www-form-urlencoded.", NULL);
    return -1;
}

/* A string field: form name or JSON key. Length, -1 absent/wrong type, -2 too long or malformed. */
static long body_str(h2o_req_t *req, body_t *b, const char *form_name, const char *json_key, char *out,
                     size_t outlen)
{
    if (b->form)
        return auth_form_get(req->entity.base ? req->entity.base : "", req->entity.len, form_name, out,
                             outlen);
    {
        json_t *v = json_object_get(b->json, json_key);
        const char *s;
        size_t l;
        if (!v || !json_is_string(v)) return -1;
        s = json_string_value(v);
        l = json_string_length(v);
        if (l >= outlen || memchr(s, '\0', l)) return -2;
        memcpy(out, s, l + 1);
        return (long)l;
    }
}

static int body_bool(h2o_req_t *req, body_t *b, const char *name)
{
    if (b->form) {
        char v[8];
        long n = auth_form_get(req->entity.base ? req->entity.base : "", req->entity.len, name, v, sizeof(v));
        return n > 0 && (strcmp(v, "true") == 0 || strcmp(v, "on") == 0 || strcmp(v, "1") == 0);
    }
    return json_is_true(json_object_get(b->json, name));
}

/* A form post from a page that is not ours (Origin outside the session domain) is refused. */
static int origin_ok(server *s, h2o_req_t *req)
{
    h2o_iovec_t o;
    if (!hdr_get(req, NULL, "origin", &o)) return 1;
    return auth_rd_safe(o.base, o.len, s->cfg->domain, s->cfg->allow_http);
}

static int name_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) return 0;
    return 1;
}

/* Where to go after a factor: the target if safe, and whether its rule is met at `level`. */
static const char *safe_target(server *s, const char *target, const auth_user *u, auth_level level,
                               int *needs_more)
{
    char host[AUTH_HOST_MAX], path[AUTH_URL_MAX + 1];
    const char *p, *slash;
    size_t hl;
    auth_object obj;
    int idx, hs;
    auth_policy pol;
    *needs_more = 0;
    if (!target || !*target || !auth_rd_safe(target, strlen(target), s->cfg->domain, s->cfg->allow_http))
        return NULL;
    p = strstr(target, "://") + 3;
    slash = p + strcspn(p, "/?#");
    hl = (size_t)(slash - p);
    if (auth_host_normalize(p, hl, host, sizeof(host)) < 0) return NULL;
    if (*slash == '/') {
        if (xt_path_normalize(slash, strcspn(slash, "#"), path, sizeof(path)) < 0) return NULL;
    } else {
        snprintf(path, sizeof(path), "/%.*s", (int)strcspn(slash, "#"), slash);
    }
    obj = (auth_object){host, path, auth_method_bit("GET", 3), u->name, u->groups};
    pol = auth_acl_match(&s->cfg->acl, &obj, &idx, &hs);
    *needs_more = pol == AUTH_POLICY_TWO_FACTOR && level < AUTH_LEVEL_TWO;
    return target;
}

static void pending_send_login(pending *p)
{
    server *s = p->srv;
    h2o_req_t *req = p->req;
    int64_t now = auth_now_ms();
    const auth_user *u = auth_users_find(s->users, p->user);
    int ok = p->job.result == 1 && u && !u->disabled && !p->banned;
    const auth_user *old_u;
    auth_session *old, *sess;
    const char *tgt;
    int more;
    char enc[AUTH_URL_MAX * 3 + 1], loc[AUTH_URL_MAX * 3 + 16];

    if (h2o_timeout_is_linked(&p->delay)) h2o_timeout_unlink(&p->delay);
    if (ok) reg_succeed(s, p->user, 0, &p->rt);
    if (!ok) {
        xt_info("first factor failed for '%s'%s", p->user, p->banned ? " (banned)" : "");
        audit_failure(s, req, "login_failed", p->user, p->banned, now);
        if (p->form)
            portal_redirect(req, p->target, p->user,
                            ban_left(s, req, p->user, now) ? "locked" : "credentials");
        else
            respond_json(req, 401, "KO", MSG_AUTH_FAILED, NULL);
        return;
    }
    /* a new id at every login (session fixation) */
    old = session_of(s, req, now, 0, &old_u);
    if (old) session_drop(s, old);
    sess = session_new(s, req, u->name, AUTH_LEVEL_ONE, p->keep, now);
    if (!sess) {
        respond_json(req, 503, "KO", "Unable to create a session.", NULL);
        return;
    }
    xt_info("first factor succeeded for '%s'", u->name);
    audit_event(s, req, "login", u->name, AUTH_LEVEL_ONE, 0);
    tgt = safe_target(s, p->target, u, AUTH_LEVEL_ONE, &more);
    if (!tgt && !p->target[0] && s->cfg->default_redirection_url) tgt = s->cfg->default_redirection_url;
    if (p->form) {
        if (tgt && !more) {
            redirect(req, 303, tgt);
        } else {
            if (tgt && auth_url_encode(tgt, strlen(tgt), enc, sizeof(enc)) >= 0)
                snprintf(loc, sizeof(loc), "/?rd=%s", enc);
            else
                snprintf(loc, sizeof(loc), "/");
            redirect(req, 303, loc);
        }
        return;
    }
    if (tgt && !more)
        respond_json(req, 200, "OK", NULL, json_pack("{s:s}", "redirect", tgt));
    else
        respond_json(req, 200, "OK", NULL, NULL);
}

static int on_firstfactor(server *s, h2o_req_t *req)
{
    body_t b;
    char user[AUTH_NAME_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    long ul, pl;
    pending *p;

    if (body_parse(req, &b) < 0) return 0;
    if (b.form && !origin_ok(s, req)) {
        respond_text(req, 403, "403 Forbidden\n");
        return 0;
    }
    ul = body_str(req, &b, "username", "username", user, sizeof(user));
    pl = body_str(req, &b, "password", "password", pw, sizeof(pw));
    p = calloc(1, sizeof(*p));
    if (!p) {
        json_decref(b.json);
        respond_json(req, 503, "KO", MSG_BUSY, NULL);
        return 0;
    }
    p->kind = JOB_LOGIN;
    p->form = b.form;
    p->keep = body_bool(req, &b, "keepMeLoggedIn");
    if (body_str(req, &b, "rd", "targetURL", p->target, sizeof(p->target)) < 0) p->target[0] = '\0';
    json_decref(b.json);
    if (ul <= 0 || pl <= 0 || !name_ok(user)) {
        OPENSSL_cleanse(pw, sizeof(pw));
        if (b.form)
            portal_redirect(req, p->target, ul > 0 && name_ok(user) ? user : "", "credentials");
        else
            respond_json(req, 401, "KO", MSG_AUTH_FAILED, NULL);
        free(p);
        return 0;
    }
    memcpy(p->user, user, (size_t)ul + 1);
    if (pending_start(s, req, p, pw, (size_t)pl, 1) < 0) {
        OPENSSL_cleanse(pw, sizeof(pw));
        add_hdr(req, "retry-after", H2O_STRLIT("1"));
        if (b.form)
            portal_redirect(req, "", user, "busy");
        else
            respond_json(req, 503, "KO", MSG_BUSY, NULL);
        return 0;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return 0;
}

/* TOTP failures wait the same failure delay as passwords. */
typedef struct {
    h2o_timeout_entry_t e;
    h2o_req_t *req;
    int form;
    const char *code; /* the portal's message code (auth_portal_message) */
    char rd[AUTH_URL_MAX + 1];
    char user[AUTH_NAME_MAX + 1];
} totp_fail;

static void totp_fail_dispose(void *x)
{
    totp_fail *f = x;
    if (h2o_timeout_is_linked(&f->e)) h2o_timeout_unlink(&f->e);
}

static void totp_fail_send(h2o_timeout_entry_t *e)
{
    totp_fail *f = H2O_STRUCT_FROM_MEMBER(totp_fail, e, e);
    if (f->form)
        portal_redirect(f->req, f->rd, f->user, f->code);
    else
        respond_json(f->req, 401, "KO", MSG_2FA_FAILED, NULL);
}

static int on_totp(server *s, h2o_req_t *req)
{
    body_t b;
    char token[16], target[AUTH_URL_MAX + 1];
    int64_t now = auth_now_ms();
    struct reg_ticket rt;
    const auth_user *u = NULL;
    auth_session *sess;
    auth_totp_entry *te;
    int banned, ok = 0, more, res = AUTH_TOTP_WRONG;
    const char *tgt;

    if (body_parse(req, &b) < 0) return 0;
    if (b.form && !origin_ok(s, req)) {
        json_decref(b.json);
        respond_text(req, 403, "403 Forbidden\n");
        return 0;
    }
    if (body_str(req, &b, "token", "token", token, sizeof(token)) < 0) token[0] = '\0';
    if (body_str(req, &b, "rd", "targetURL", target, sizeof(target)) < 0) target[0] = '\0';
    json_decref(b.json);
    sess = session_of(s, req, now, 1, &u);
    if (!sess || sess->level < AUTH_LEVEL_ONE) {
        if (b.form)
            portal_redirect(req, target, "", "signin");
        else
            respond_json(req, 401, "KO", MSG_2FA_FAILED, NULL);
        return 0;
    }
    banned = reg_begin(s, req, u->name, 1, now, &rt);
    te = auth_totp_store_find(&s->totp, u->name);
    if (te && !banned)
        res = auth_totp_check(te->key, te->keylen, token, now / 1000, s->cfg->totp_period, s->cfg->totp_skew,
                              s->cfg->totp_digits, s->cfg->totp_algo, &te->last_step);
    ok = res == AUTH_TOTP_OK;
    if (ok) reg_succeed(s, u->name, 1, &rt);
    if (!ok) {
        totp_fail *f = h2o_mem_alloc_shared(&req->pool, sizeof(*f), totp_fail_dispose);
        memset(f, 0, sizeof(*f));
        f->req = req;
        f->form = b.form;
        snprintf(f->rd, sizeof(f->rd), "%s",
                 auth_rd_safe(target, strlen(target), s->cfg->domain, s->cfg->allow_http) ? target : "");
        snprintf(f->user, sizeof(f->user), "%s", u->name);
        f->e.cb = totp_fail_send;
        xt_info("second factor failed for '%s'%s%s", u->name, te ? "" : " (no TOTP enrolled)",
                banned ? " (banned)" : "");
        audit_failure(s, req, "second_factor_failed", u->name, banned, now);
        f->code = ban_left(s, req, f->user, now) ? "locked" : res == AUTH_TOTP_REUSED ? "used" : "code";
        h2o_timeout_link(s->ctx.loop, &s->delay_timeout, &f->e);
        return 0;
    }
    {
        char user[AUTH_NAME_MAX + 1];
        int remember = sess->remember;
        snprintf(user, sizeof(user), "%s", u->name);
        session_drop(s, sess);
        sess = session_new(s, req, user, AUTH_LEVEL_TWO, remember, now);
    }
    if (!sess) {
        respond_json(req, 503, "KO", "Unable to create a session.", NULL);
        return 0;
    }
    xt_info("second factor succeeded for '%s'", u->name);
    audit_event(s, req, "second_factor", u->name, AUTH_LEVEL_TWO, 0);
    tgt = safe_target(s, target, u, AUTH_LEVEL_TWO, &more);
    if (!tgt && !target[0]) tgt = s->cfg->default_redirection_url;
    if (b.form) {
        redirect(req, 303, tgt ? tgt : "/");
        return 0;
    }
    respond_json(req, 200, "OK", NULL, tgt ? json_pack("{s:s}", "redirect", tgt) : NULL);
    return 0;
}

static int on_logout(server *s, h2o_req_t *req)
{
    body_t b;
    char target[AUTH_URL_MAX + 1];
    const auth_user *u;
    auth_session *sess;
    int safe;
    if (body_parse(req, &b) < 0) return 0;
    if (b.form && !origin_ok(s, req)) {
        json_decref(b.json);
        respond_text(req, 403, "403 Forbidden\n");
        return 0;
    }
    if (body_str(req, &b, "rd", "targetURL", target, sizeof(target)) < 0) target[0] = '\0';
    json_decref(b.json);
    sess = session_of(s, req, auth_now_ms(), 0, &u);
    if (sess) {
        xt_info("logout of '%s'", sess->user);
        audit_event(s, req, "logout", sess->user, 0, 0);
        session_drop(s, sess);
    }
    set_cookie(s, req, NULL);
    safe = target[0] && auth_rd_safe(target, strlen(target), s->cfg->domain, s->cfg->allow_http);
    if (b.form) {
        redirect(req, 303, safe ? target : "/");
        return 0;
    }
    respond_json(req, 200, "OK", NULL, json_pack("{s:b}", "safeTargetURL", safe));
    return 0;
}

static int on_state(server *s, h2o_req_t *req)
{
    const auth_user *u;
    auth_session *sess = session_of(s, req, auth_now_ms(), 0, &u);
    json_t *d = json_pack("{s:s,s:i,s:s}", "username", sess ? u->name : "", "authentication_level",
                          sess ? (int)sess->level : 0, "default_redirection_url",
                          s->cfg->default_redirection_url ? s->cfg->default_redirection_url : "");
    respond_json(req, 200, "OK", NULL, d);
    return 0;
}

static int on_portal(server *s, h2o_req_t *req)
{
    const auth_user *u;
    int64_t now = auth_now_ms();
    auth_session *sess = session_of(s, req, now, 0, &u);
    char rd[AUTH_URL_MAX + 1] = "", code[16] = "", name[AUTH_NAME_MAX + 1] = "", msg[256];
    auth_portal_page pg = {AUTH_PORTAL_LOGIN, NULL, rd, NULL, NULL, 0, 0, NULL, NULL};
    int kind = -1;
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1;
        size_t ql = req->path.len - req->query_at - 1;
        long n = xt_query_get(q, ql, "rd", rd, sizeof(rd));
        if (n <= 0 || !auth_rd_safe(rd, (size_t)n, s->cfg->domain, s->cfg->allow_http)) rd[0] = '\0';
        if (xt_query_get(q, ql, "m", code, sizeof(code)) <= 0) code[0] = '\0';
        if (xt_query_get(q, ql, "username", name, sizeof(name)) <= 0 || !name_ok(name)) name[0] = '\0';
    }
    /* the message a form's redirect asked for; a lock-out's time left is read now, not from the URL */
    if (code[0])
        kind = auth_portal_message(
            code, strcmp(code, "locked") == 0 ? ban_left(s, req, sess ? u->name : name, now) : 0, msg,
            sizeof(msg));
    if (kind == 1) pg.error = msg;
    if (kind == 0) pg.notice = msg;
    if (!sess) {
        pg.user = name;
        respond_html(req, 200, &pg);
    } else {
        int more = 1;
        const char *tgt = rd[0] ? safe_target(s, rd, u, (auth_level)sess->level, &more) : NULL;
        pg.user = u->name;
        if (tgt && !more) { /* already signed in enough for the target: go there (as Authelia) */
            redirect(req, 302, rd);
        } else if (sess->level < AUTH_LEVEL_TWO) {
            pg.view = AUTH_PORTAL_TOTP;
            if (!auth_totp_store_find(&s->totp, u->name)) {
                if (!pg.error && !pg.notice)
                    pg.error = "No one-time password is enrolled for you yet: set up an authenticator app "
                               "(below), or ask an administrator (xtask-auth totp-generate).";
                pg.can_enrol = 1;
            }
            respond_html(req, 200, &pg);
        } else {
            pg.view = AUTH_PORTAL_DONE;
            pg.can_enrol = 1;
            respond_html(req, 200, &pg);
        }
    }
    return 0;
}

/* --- TOTP enrolment (auth_enrol.c): Authelia 4.38's identity verification, then the QR code --- */

static void reload_totp(server *s, int initial);

#define MSG_NO_NOTIFIER                                                                                      \
    "Setting up an authenticator from the browser needs a notifier to send the one-time code: configure "    \
    "notifier.filesystem.filename in the auth configuration. Until then an administrator enrols you "        \
    "(xtask-auth totp-generate --user NAME)."

/* The session may enrol: signed in, and with the second factor when it replaces one. */
static int enrol_allowed(server *s, const auth_session *sess, const auth_user *u)
{
    int has = auth_totp_store_find(&s->totp, u->name) != NULL;
    return sess->level >= (has ? AUTH_LEVEL_TWO : AUTH_LEVEL_ONE);
}

/* Common checks of the enrolment requests: the session (or a reply sent and NULL). */
static auth_session *enrol_session(server *s, h2o_req_t *req, int form, const auth_user **u)
{
    auth_session *sess = session_of(s, req, auth_now_ms(), 1, u);
    const char *code = !sess                         ? "signin"
                       : !s->cfg->notify_path        ? NULL
                       : !enrol_allowed(s, sess, *u) ? "need-2fa"
                                                     : "";
    if (code && !*code) return sess;
    if (form) {
        if (code)
            portal_redirect(req, "", "", code);
        else
            redirect(req, 303, "/enrol");
    } else {
        respond_json(req, sess ? 403 : 401, "KO", code ? "Operation failed." : MSG_NO_NOTIFIER, NULL);
    }
    return NULL;
}

static int on_enrol_page(server *s, h2o_req_t *req)
{
    const auth_user *u;
    int64_t now = auth_now_ms();
    auth_session *sess = session_of(s, req, now, 0, &u);
    char code[16] = "", msg[256], b32[64], uri[512];
    auth_portal_page pg = {AUTH_PORTAL_ENROL, NULL, "", NULL, NULL, 0, -1, NULL, NULL};
    char *svg = NULL;
    size_t len = 0;
    int kind = -1;
    if (!sess) {
        portal_redirect(req, "", "", "signin");
        return 0;
    }
    if (req->query_at != SIZE_MAX &&
        xt_query_get(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, "m", code,
                     sizeof(code)) > 0)
        kind = auth_portal_message(code, 0, msg, sizeof(msg));
    if (kind == 1) pg.error = msg;
    if (kind == 0) pg.notice = msg;
    pg.user = u->name;
    if (!s->cfg->notify_path) {
        pg.error = MSG_NO_NOTIFIER;
    } else if (!enrol_allowed(s, sess, u)) {
        auth_portal_message("need-2fa", 0, msg, sizeof(msg));
        pg.error = msg;
    } else {
        pg.enrol_stage = auth_enrol_stage(s->enrol, u->name, sess->id, now, b32, sizeof(b32));
        if (pg.enrol_stage == AUTH_ENROL_ELEVATED &&
            auth_totp_uri(s->cfg->totp_issuer, u->name, b32, s->cfg->totp_algo, s->cfg->totp_digits,
                          s->cfg->totp_period, uri, sizeof(uri)) == 0 &&
            (svg = auth_enrol_qr_svg(uri, 5, &len)) != NULL) {
            pg.qr_svg = svg;
            pg.secret = b32;
        } else if (pg.enrol_stage == AUTH_ENROL_ELEVATED) {
            pg.enrol_stage = -1;
            pg.error = "The QR code could not be made: try again.";
        }
    }
    respond_html(req, 200, &pg);
    free(svg);
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    return 0;
}

/* POST (form or JSON) without `otc`: send a one-time code through the notifier. With `otc` (form),
 * or PUT (JSON, Authelia 4.38): check it; right, the session is elevated and a new secret drawn. */
static int on_elevation(server *s, h2o_req_t *req)
{
    body_t b;
    char otc[32], body[512], to[2 * AUTH_NAME_MAX + 512], err[512], code[16];
    const auth_user *u;
    auth_session *sess;
    int put = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT")), rc;
    long ol;
    if (!put && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        respond_text(req, 405, "405 Method Not Allowed\n");
        return 0;
    }
    if (body_parse(req, &b) < 0) return 0;
    ol = body_str(req, &b, "otc", "otc", otc, sizeof(otc));
    json_decref(b.json);
    if (b.form && !origin_ok(s, req)) {
        respond_text(req, 403, "403 Forbidden\n");
        return 0;
    }
    if (!(sess = enrol_session(s, req, b.form, &u))) return 0;
    if (ol < 0 && !put) {
        if (auth_enrol_new_code(s->enrol, u->name, sess->id, auth_now_ms(), code, sizeof(code)) < 0) {
            respond_json(req, 503, "KO", "Operation failed.", NULL);
            return 0;
        }
        snprintf(to, sizeof(to), "%s <%s>", u->displayname, u->email);
        snprintf(
            body, sizeof(body),
            "Hi %s,\n\nYour one-time code to set up an authenticator app: %s\n\nIt expires in 5 minutes. "
            "If you did not ask for it, someone else knows your password: change it.",
            u->displayname, code);
        OPENSSL_cleanse(code, sizeof(code));
        rc = auth_notify_send(s->cfg->notify_path, to, "xtask: your one-time code", body, err, sizeof(err));
        OPENSSL_cleanse(body, sizeof(body));
        if (rc < 0) xt_error("notifier: %s", err);
        xt_info("identity verification code for '%s' %s", u->name, rc < 0 ? "NOT sent" : "sent");
        if (b.form)
            redirect(req, 303, rc < 0 ? "/enrol?m=notify-failed" : "/enrol?m=sent");
        else
            respond_json(req, rc < 0 ? 500 : 200, rc < 0 ? "KO" : "OK", rc < 0 ? "Operation failed." : NULL,
                         NULL);
        return 0;
    }
    rc = auth_enrol_elevate(s->enrol, u->name, sess->id, ol > 0 ? otc : "", auth_now_ms());
    OPENSSL_cleanse(otc, sizeof(otc));
    xt_info("identity verification of '%s': %s", u->name, rc == 1 ? "elevated" : "refused");
    if (b.form)
        redirect(req, 303, rc == 1 ? "/enrol" : rc == 0 ? "/enrol?m=otc" : "/enrol?m=otc-expired");
    else
        respond_json(req, rc == 1 ? 200 : 403, rc == 1 ? "OK" : "KO", rc == 1 ? NULL : "Operation failed.",
                     NULL);
    return 0;
}

/* A code from the new secret: only then does it replace the user's old one (store and memory). */
static int on_totp_register(server *s, h2o_req_t *req)
{
    body_t b;
    char token[16], b32[64], err[512];
    const auth_user *u;
    auth_session *sess;
    int64_t step = -1;
    int rc;
    if (body_parse(req, &b) < 0) return 0;
    if (body_str(req, &b, "token", "token", token, sizeof(token)) < 0) token[0] = 0;
    json_decref(b.json);
    if (b.form && !origin_ok(s, req)) {
        respond_text(req, 403, "403 Forbidden\n");
        return 0;
    }
    if (!(sess = enrol_session(s, req, b.form, &u))) return 0;
    rc = auth_enrol_confirm(s->enrol, u->name, sess->id, token, auth_now_ms(), s->cfg, b32, sizeof(b32),
                            &step);
    if (rc == AUTH_TOTP_OK) {
        if (auth_totp_store_set(s->cfg->totp_path, u->name, b32, err, sizeof(err)) < 0) {
            xt_error("TOTP enrolment of '%s': %s", u->name, err);
            rc = -2;
        } else {
            auth_totp_entry *te;
            reload_totp(s, 0);
            if ((te = auth_totp_store_find(&s->totp, u->name))) te->last_step = step; /* used once */
            xt_info("TOTP enrolled for '%s' from the portal", u->name);
            audit_event(s, req, "totp_enrolled", u->name, sess->level, 0);
        }
    }
    OPENSSL_cleanse(b32, sizeof(b32));
    if (b.form)
        redirect(req, 303,
                 rc == AUTH_TOTP_OK       ? "/?m=enrolled"
                 : rc == AUTH_TOTP_WRONG  ? "/enrol?m=code"
                 : rc == AUTH_TOTP_REUSED ? "/enrol?m=used"
                 : rc == -2               ? "/enrol?m=notify-failed"
                                          : "/enrol?m=elevation");
    else
        respond_json(req, rc == AUTH_TOTP_OK ? 200 : 401, rc == AUTH_TOTP_OK ? "OK" : "KO",
                     rc == AUTH_TOTP_OK ? NULL : MSG_2FA_FAILED, NULL);
    return 0;
}

static int on_health(server *s, h2o_req_t *req)
{
    respond_json(req, 200, "OK", NULL, NULL);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* routing */

typedef struct {
    const char *method; /* NULL: GET or HEAD */
    const char *path;
    int (*fn)(server *s, h2o_req_t *req);
} route;

static const route routes[] = {
    {"POST", "/api/firstfactor", on_firstfactor},
    {"POST", "/api/secondfactor/totp", on_totp},
    {"POST", "/api/logout", on_logout},
    {NULL, "/api/state", on_state},
    {NULL, "/api/health", on_health},
    {NULL, "/", on_portal},
    {NULL, "/index.html", on_portal},
    {NULL, "/enrol", on_enrol_page},
    {"*", "/api/user/session/elevation", on_elevation},
    {"POST", "/api/secondfactor/totp/register", on_totp_register},
};

typedef struct {
    h2o_handler_t super;
    server *srv;
} handler_t;

/* A cookie whose session is not in the local table is looked up in the shared store before the
 * request is handled (auth_kv.h: why, and the bounds). The request waits off the loop; when the
 * answer comes (the session, if found, is then in the local table) it is handled again, once. */
typedef struct {
    h2o_handler_t *self;
    h2o_req_t *req; /* NULL once the request is gone */
    auth_kv_lookup *lk;
} kv_wait;

static void kv_wait_dispose(void *p)
{
    kv_wait *w = p;
    if (w->lk) auth_kv_lookup_cancel(w->lk);
    w->req = NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req);

static void kv_wait_done(void *ud, int found)
{
    kv_wait *w = ud;
    server *s = ((handler_t *)w->self)->srv;
    (void)found;
    w->lk = NULL;
    if (!w->req) return;
    s->kv_redispatch = w->req;
    on_req(w->self, w->req);
    s->kv_redispatch = NULL;
}

/* 1 when the request now waits for a lookup: no cookie of ours names a local session, and one of
 * them is well formed (the first such is looked up). */
static int kv_lookup_needed(server *s, h2o_handler_t *self, h2o_req_t *req)
{
    ssize_t i = -1;
    uint8_t miss[AUTH_SID_BYTES];
    int have_miss = 0;
    kv_wait *w;
    if (!s->kv || s->kv_redispatch == req) return 0;
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        char val[AUTH_SID_HEX + 8];
        uint8_t id[AUTH_SID_BYTES];
        long n = auth_cookie_get(v.base, v.len, s->cfg->cookie_name, val, sizeof(val));
        int ok = n == AUTH_SID_HEX && auth_hex_decode(val, (size_t)n, id, sizeof(id)) == 0;
        OPENSSL_cleanse(val, sizeof(val));
        if (!ok) continue;
        if (auth_sessions_find(s->sessions, id)) {
            OPENSSL_cleanse(id, sizeof(id));
            OPENSSL_cleanse(miss, sizeof(miss));
            return 0;
        }
        if (!have_miss) memcpy(miss, id, sizeof(miss));
        have_miss = 1;
        OPENSSL_cleanse(id, sizeof(id));
    }
    if (!have_miss) return 0;
    w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), kv_wait_dispose);
    w->self = self;
    w->req = req;
    w->lk = auth_kv_lookup_start(s->kv, miss, kv_wait_done, w);
    OPENSSL_cleanse(miss, sizeof(miss));
    if (!w->lk) {
        w->req = NULL;
        return 0;
    }
    return 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server *s = ((handler_t *)self)->srv;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    size_t i, suffix = 0;
    const auth_authz_endpoint *ep = auth_authz_find(&s->cfg->authz, req->path.base, plen, &suffix);
    if (ep) { /* server.endpoints.authz: /api/verify, /api/authz/<name> */
        if (!ep->any_method && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
            !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
            respond_text(req, 405, "405 Method Not Allowed\n");
            return 0;
        }
        if (kv_lookup_needed(s, self, req)) return 0;
        return on_verify(s, req, ep, suffix);
    }
    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route *r = &routes[i];
        if (strlen(r->path) != plen || memcmp(r->path, req->path.base, plen) != 0) continue;
        if (r->method == NULL) {
            if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
                !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
                break;
        } else if (strcmp(r->method, "*") != 0 &&
                   !h2o_memis(req->method.base, req->method.len, r->method, strlen(r->method))) {
            break;
        }
        if (r->fn != on_health && kv_lookup_needed(s, self, req)) return 0;
        return r->fn(s, req);
    }
    if (i < sizeof(routes) / sizeof(routes[0])) {
        respond_text(req, 405, "405 Method Not Allowed\n");
        return 0;
    }
    respond_text(req, 404, "404 Not Found\n");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* periodic work: users file and TOTP store reloads, session sweep (never on the request path) */

/* A reload ends, at once, every session of a user who is gone, disabled or whose password hash
 * changed (OWASP WSTG-SESS-03): dropped here and deleted from the shared store, which ends them on
 * every instance watching it. */
static void end_changed_sessions(server *s, const auth_users *old, const auth_users *nu)
{
    size_t n = 0;
    for (size_t i = 0; i < auth_sessions_capacity(s->sessions); i++) {
        auth_session *sess = auth_sessions_slot(s->sessions, i);
        const auth_user *ou, *u;
        const char *why = NULL;
        if (!sess) continue;
        ou = auth_users_find(old, sess->user);
        u = auth_users_find(nu, sess->user);
        if (!u)
            why = "user removed";
        else if (u->disabled)
            why = "user disabled";
        else if (ou && CRYPTO_memcmp(ou->pwtag, u->pwtag, AUTH_PWTAG_BYTES) != 0)
            why = "password changed";
        if (why) {
            xt_info("session of '%s' ended: %s", sess->user, why);
            session_drop(s, sess);
            n++;
        }
    }
    if (n) xt_info("users database reload ended %zu sessions", n);
}

static void reload_users(server *s, int initial)
{
    file_stamp st;
    auth_users *nu = NULL;
    char err[512];
    if (file_stat(s->cfg->users_path, &st) < 0 && !initial) return;
    if (!initial && memcmp(&st, &s->users_stamp, sizeof(st)) == 0) return;
    s->users_stamp = st;
    if (auth_users_load(s->cfg->users_path, &nu, err, sizeof(err)) < 0) {
        xt_error("%s (keeping the previous users)", err);
        return;
    }
    if (!initial) end_changed_sessions(s, s->users, nu);
    auth_users_free(s->users);
    s->users = nu;
    xt_info("users database %s: %zu users", initial ? "loaded" : "reloaded", nu->n);
}

static void reload_totp(server *s, int initial)
{
    file_stamp st;
    auth_totp_store nt;
    char err[512];
    size_t i;
    file_stat(s->cfg->totp_path, &st);
    if (!initial && memcmp(&st, &s->totp_stamp, sizeof(st)) == 0) return;
    s->totp_stamp = st;
    if (auth_totp_store_load(s->cfg->totp_path, &nt, err, sizeof(err)) < 0) {
        xt_error("%s (keeping the previous TOTP secrets)", err);
        return;
    }
    for (i = 0; i < nt.n; i++) { /* keep "used once" across reloads */
        auth_totp_entry *old = auth_totp_store_find(&s->totp, nt.v[i].name);
        if (old && old->keylen == nt.v[i].keylen && memcmp(old->key, nt.v[i].key, old->keylen) == 0)
            nt.v[i].last_step = old->last_step;
    }
    auth_totp_store_free(&s->totp);
    s->totp = nt;
    if (!initial) xt_info("TOTP secrets reloaded: %zu users enrolled", nt.n);
}

static void on_tick(h2o_timeout_entry_t *e)
{
    server *s = H2O_STRUCT_FROM_MEMBER(server, tick_entry, e);
    int64_t now = auth_now_ms();
    if (s->cfg->users_watch) reload_users(s, 0);
    reload_totp(s, 0);
    if (now - s->last_sweep_ms >= 5000) {
        size_t n = auth_sessions_sweep(s->sessions, now, inactivity_of(s));
        s->last_sweep_ms = now;
        if (n) xt_debug("swept %zu expired sessions (%zu live)", n, auth_sessions_count(s->sessions));
    }
    if (!g_stop) h2o_timeout_link(s->ctx.loop, &s->tick_timeout, &s->tick_entry);
}

/* ------------------------------------------------------------------------------------------ */
/* shared store updates */

static void on_kv_update(void *ud, const auth_session *in, int deleted)
{
    server *s = ud;
    auth_session *cur = auth_sessions_find(s->sessions, in->id);
    if (deleted) {
        if (cur) auth_sessions_remove(s->sessions, cur);
        return;
    }
    if (cur && cur->last_ms > in->last_ms) { /* ours is fresher: keep our activity time */
        int64_t last = cur->last_ms;
        cur = auth_sessions_put(s->sessions, in);
        cur->last_ms = last;
        return;
    }
    auth_sessions_put(s->sessions, in);
}

/* ------------------------------------------------------------------------------------------ */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    server *s = listener->data;
    h2o_socket_t *sock;
    if (err) return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL) return;
    h2o_accept(&s->accept_ctx, sock);
}

static int listen_on(server *s)
{
    struct sockaddr_in sa;
    int fd, one = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->cfg->port);
    if (inet_pton(AF_INET, s->cfg->listen_host, &sa.sin_addr) != 1) {
        xt_error("server: '%s' is not an IPv4 address", s->cfg->listen_host);
        return -1;
    }
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        xt_error("listen on %s:%d: %s", s->cfg->listen_host, s->cfg->port, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    s->listener = h2o_evloop_socket_create(s->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int auth_server_run(auth_config *cfg)
{
    server *s = calloc(1, sizeof(*s));
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    handler_t *h;
    h2o_multithread_queue_t *queue = NULL;
    struct sigaction sa;
    int rc = 1;
    char pw[32];

    if (!s) return 1;
    s->cfg = cfg;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    reload_users(s, 1);
    if (!s->users) {
        xt_error("cannot start without a valid users database");
        free(s);
        return 1;
    }
    file_stat(s->cfg->users_path, &s->users_stamp);
    reload_totp(s, 1);
    s->sessions = auth_sessions_new((size_t)cfg->max_sessions);
    s->reg = auth_regulation_new(cfg->reg_max_retries, cfg->reg_find_time_ms, cfg->reg_ban_time_ms, 65536);
    s->enrol = auth_enrol_new();
    if (!s->sessions || !s->reg || !s->enrol) goto out;
    /* a hash to check unknown users against when the users file is empty */
    if (RAND_bytes((unsigned char *)pw, sizeof(pw)) != 1 ||
        auth_password_hash(&cfg->argon2, pw, sizeof(pw), s->dummy_hash, sizeof(s->dummy_hash)) < 0) {
        xt_error("cannot compute the placeholder hash");
        goto out;
    }

    h2o_config_init(&s->gconf);
    s->gconf.max_request_entity_size = AUTH_BODY_MAX;
    s->gconf.http1.upgrade_to_http2 = 0; /* no h2c: HTTP/1.1 only on this internal port */
    host = h2o_config_register_host(&s->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h = (handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = s;
    h2o_context_init(&s->ctx, h2o_evloop_create(), &s->gconf);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->gconf.hosts;
    h2o_timeout_init(s->ctx.loop, &s->delay_timeout, (uint64_t)cfg->failure_delay_ms);
    h2o_timeout_init(s->ctx.loop, &s->tick_timeout, TICK_MS);
    s->tick_entry.cb = on_tick;
    h2o_timeout_link(s->ctx.loop, &s->tick_timeout, &s->tick_entry);

    queue = s->queue = h2o_multithread_create_queue(s->ctx.loop);
    s->pool = auth_pool_new(queue, cfg->hash_workers, cfg->hash_queue);
    if (!s->pool) goto out;
    if (cfg->kv_enabled) {
        char err[512];
        int64_t ttl = cfg->expiration_ms > cfg->remember_me_ms ? cfg->expiration_ms : cfg->remember_me_ms;
        s->kv = auth_kv_new(cfg, ttl, queue, on_kv_update, s, err, sizeof(err));
        if (!s->kv) {
            xt_error("session.nats: %s", err);
            goto out;
        }
    }
    if (cfg->audit_enabled) {
        char err[512];
        xt_nats_conf ac = {0};
        int bad = xt_nats_conf_copy(&ac, &cfg->kv_nats) != 0;
        if (!bad && cfg->audit_url) {
            free(ac.url);
            bad = (ac.url = strdup(cfg->audit_url)) == NULL;
        }
        s->audit = bad ? NULL : auth_audit_new(&ac, cfg->audit_region, err, sizeof(err));
        if (!s->audit) {
            xt_error("%s", bad ? "audit: out of memory" : err);
            xt_nats_conf_free(&ac);
            goto out;
        }
        char url[256];
        xt_info("audit trail: xtask.audit.auth.%s via %s", cfg->audit_region,
                xt_nats_url_redact(ac.url, url, sizeof(url)));
        xt_nats_conf_free(&ac);
    }
    if (listen_on(s) < 0) goto out;
    xt_info("listening on %s:%d (session domain %s, %zu rules, %d hash workers)", cfg->listen_host, cfg->port,
            cfg->domain, cfg->acl.nrules, cfg->hash_workers);
    while (!g_stop)
        h2o_evloop_run(s->ctx.loop, INT32_MAX);
    xt_info("shutting down");
    /* stop accepting; let password checks in flight finish and answer (bounded) */
    h2o_socket_read_stop(s->listener);
    h2o_socket_close(s->listener);
    s->listener = NULL;
    {
        int64_t deadline = auth_mono_ms() + 1500;
        while (auth_pool_in_flight(s->pool) > 0 && auth_mono_ms() < deadline)
            h2o_evloop_run(s->ctx.loop, 50);
        if (s->kv) {
            auth_kv_free(s->kv);
            s->kv = NULL;
            h2o_evloop_run(s->ctx.loop, 0); /* deliver what the store still queued */
        }
    }
    rc = 0;
out:
    if (s->listener) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
    }
    if (s->kv) auth_kv_free(s->kv);
    auth_audit_free(s->audit);
    s->audit = NULL;
    if (s->pool) auth_pool_free(s->pool);
    auth_sessions_free(s->sessions);
    auth_regulation_free(s->reg);
    auth_enrol_free(s->enrol);
    auth_users_free(s->users);
    auth_totp_store_free(&s->totp);
    /* the server, loop, context and queue are left to the process exit (connections may still hold
     * them); g_server keeps them reachable */
    g_server = s;
    return rc;
}
