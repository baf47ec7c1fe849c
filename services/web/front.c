/*
 * front.c: the guard that runs first on every route of every host.
 *
 *  1. limits: the request head (method, target, headers) must fit max_header_bytes (431);
 *  2. the target is normalized once with xt_path_normalize (the auth service uses the same
 *     function); refused forms get 400. Routing, X-Forwarded-Uri and the upstream all see that one
 *     canonical path. If h2o picked another pathconf from its own normalization, the guard rebinds
 *     the request to the route that matches the canonical path;
 *  3. client-sent claims are removed by their web_header_key() (case, '-', '_', '.' and every other
 *     non-alphanumeric byte folded): every copy_headers name, Remote-*, other proxies' identity
 *     headers, X-Forwarded-* / Forwarded / client-address / URL-rewrite / method-override headers;
 *     only a trusted proxy's exact X-Forwarded-For/-Proto/-Host are kept;
 *  4. forward_auth (unless the route is public): GET <auth url> over a pooled keep-alive
 *     connection with the client's credentials and X-Forwarded-*; 2xx copies the identity headers
 *     and the request goes on (h2o_delegate_request_deferred); any other answer goes back verbatim;
 *     unreachable, failing or slower than the timeout: 503, never open.
 *
 * The subrequest lives in the request's pool (h2o_mem_alloc_shared): when h2o disposes the request
 * (HTTP/2 RST_STREAM, connection close) the dispose callback cancels the client and the deadline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "web.h"
#include "xt_log.h"
#include "xt_path.h"

#define FAUTH_BODY_MAX (64 * 1024)
#define FAUTH_MAX_HOSTS WEB_MAX_HOSTS

typedef struct {
    h2o_socketpool_t pool;
    h2o_http1client_ctx_t client_ctx;
    h2o_timeout_t timeout; /* io timeout of the client and our whole-request deadline */
    h2o_iovec_t host_header;
    int ready;
} fauth_backend;

struct web_front {
    fauth_backend backends[FAUTH_MAX_HOSTS];
};

typedef struct {
    web_server *srv;
} inflight_token;

typedef struct {
    web_guard *g; /* the guard of the route the request runs on */
    h2o_req_t *req;
    fauth_backend *be;
    h2o_http1client_t *client;
    h2o_timeout_entry_t deadline;
    h2o_iovec_t reqbuf;
    int attempts;
    int status;
    int answered;       /* a response was sent or the request was delegated */
    h2o_headers_t hdrs; /* headers of a non-2xx answer, in the request's pool */
    char *body;
    size_t body_len;
} fauth_sub;

static const char *reason_for(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
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
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

static void inflight_dispose(void *p)
{
    inflight_token *t = p;
    t->srv->inflight--;
}

/* h2o's prefix rule: "/x/" matches "/x/..."; "/x" matches "/x" and "/x/...". */
static int prefix_matches(const char *prefix, const char *path, size_t plen)
{
    size_t n = strlen(prefix);
    if (plen < n || memcmp(path, prefix, n) != 0) return 0;
    return prefix[n - 1] == '/' || plen == n || path[n] == '/';
}

/* Claims a client must never make (docs/SECURITY.md, "The front door"), by web_header_key():
 * identities (Remote-*, other proxies' user/email/group/token headers), client addresses and
 * certificates, forwarded and URL-rewrite headers, method overrides. `prefix`: every key starting
 * with it. Matching on the key, not the spelling, is what covers every alias of each name. */
typedef struct {
    const char *key;
    int prefix;
} claim_key;

static const claim_key claim_keys[] = {
    {"remote", 1},     /* Remote-User, Remote-Groups, Remote-Addr... */
    {"xremote", 1},    /* X-Remote-User, X-Remote-Addr */
    {"xforwarded", 1}, /* every X-Forwarded-*: for, host, user, email, groups, client-cert... */
    {"forwarded", 1},  /* RFC 7239 Forwarded, Forwarded-For */
    {"xoriginal", 1},  /* X-Original-URL/-URI/-Method/-Host/-Forwarded-For */
    {"xrewrite", 1},   /* X-Rewrite-URL */
    {"xrealip", 1},    /* client addresses */
    {"xclientip", 1},
    {"clientip", 1},
    {"trueclientip", 1},
    {"cfconnectingip", 1},
    {"fastlyclientip", 1},
    {"xclusterclientip", 1},
    {"xoriginatingip", 1},
    {"xclientcert", 1}, /* client certificates a TLS terminator would set */
    {"sslclient", 1},
    {"xssl", 1},
    {"xarrclientcert", 1},
    {"xhttpmethod", 1}, /* method overrides: X-HTTP-Method(-Override) */
    {"xmethodoverride", 1},
    {"xauthrequest", 1},          /* oauth2-proxy */
    {"xauthentik", 1},            /* authentik */
    {"xpomerium", 1},             /* Pomerium */
    {"xgoogauthenticated", 1},    /* Google IAP */
    {"xamznoidc", 1},             /* AWS ALB */
    {"xmsclientprincipal", 1},    /* Azure App Service */
    {"tailscaleuser", 1},         /* Tailscale serve */
    {"cfaccessauthenticated", 1}, /* Cloudflare Access */
    {"cfaccessjwt", 1},
    {"xwebauth", 1}, /* Grafana auth proxy */
    {"xauthuser", 1},
    {"xauthemail", 1},
    {"xauthgroup", 1},
    {"xuserinfo", 1}, /* Kong */
    {"xidtoken", 1},
    {"xaccesstoken", 1},
    {"xuser", 0},
    {"xusername", 0},
    {"xuserid", 0},
    {"xuseremail", 0},
    {"xemail", 0},
    {"xgroups", 0},
    {"xgroup", 0},
    {NULL, 0},
};

/* The forwarding headers a trusted proxy may set, in the one spelling h2o hands us (lower case). */
static const char *const trusted_forwarding[] = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                                 NULL};

/* 1 when the client's header `name` must not reach the auth service or an upstream: a copy_headers
 * name of any host, or a claim of claim_keys, in any spelling. From a trusted proxy, the exact
 * X-Forwarded-For/-Proto/-Host it sets are kept (and believed). A name whose key does not fit the
 * buffer is dropped too (fail closed). */
static int header_is_claim(const web_host *h, const h2o_iovec_t *name, int trusted)
{
    char key[96];
    long kl = web_header_key(name->base, name->len, key, sizeof(key));
    int claim = 0;
    if (kl < 0) return 1;
    for (size_t i = 0; i < h->nstrip && !claim; i++)
        claim = strcmp(key, h->strip_lc[i]) == 0;
    /* every claim_keys entry starts with one of these letters: most headers stop here */
    if (!claim && (kl == 0 || !memchr("rxfcts", key[0], 6))) return 0;
    for (size_t i = 0; claim_keys[i].key && !claim; i++) {
        size_t n = strlen(claim_keys[i].key);
        claim = claim_keys[i].prefix ? (size_t)kl >= n && memcmp(key, claim_keys[i].key, n) == 0
                                     : strcmp(key, claim_keys[i].key) == 0;
    }
    if (claim && trusted)
        for (size_t i = 0; trusted_forwarding[i]; i++)
            if (h2o_memis(name->base, name->len, trusted_forwarding[i], strlen(trusted_forwarding[i])))
                return 0;
    return claim;
}

static void send_plain(h2o_req_t *req, int status, const char *code, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, msg);
    req->res.status = status;
    req->res.reason = reason_for(status);
    req->res.content_length = (size_t)n;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, (size_t)n);
}

/* Find a header (case-insensitive) in the request; returns its value or a NULL base. */
static h2o_iovec_t req_header(h2o_req_t *req, const char *lcname)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lcname, strlen(lcname), -1);
    if (i == -1) return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

static int safe_value(h2o_iovec_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] == '\r' || v.base[i] == '\n' || v.base[i] == 0) return 0;
    return 1;
}

/* --- the subrequest ------------------------------------------------------------------------ */

static h2o_http1client_head_cb fauth_on_connect(h2o_http1client_t *client, const char *errstr,
                                                h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                                int *method_is_head);

static void fauth_finish_503(fauth_sub *s, const char *why)
{
    s->answered = 1;
    h2o_timeout_unlink(&s->deadline);
    xt_warn("forward_auth: %s -> 503", why);
    send_plain(s->req, 503, "auth_unavailable", "authentication service unavailable");
}

static void fauth_start(fauth_sub *s)
{
    s->attempts++;
    h2o_http1client_connect_with_pool(&s->client, s, &s->be->client_ctx, &s->be->pool, fauth_on_connect);
}

/* An error before the answer's head: retry once (a pooled connection may have gone stale). */
static void fauth_failed(fauth_sub *s, const char *errstr)
{
    s->client = NULL; /* the library closes it after we return */
    if (s->answered) return;
    if (s->attempts < 2 && h2o_timeout_is_linked(&s->deadline)) {
        fauth_start(s);
        return;
    }
    fauth_finish_503(s, errstr);
}

static void fauth_deadline_cb(h2o_timeout_entry_t *entry)
{
    fauth_sub *s = H2O_STRUCT_FROM_MEMBER(fauth_sub, deadline, entry);
    if (s->client != NULL) {
        h2o_http1client_cancel(s->client);
        s->client = NULL;
    }
    if (!s->answered) fauth_finish_503(s, "timeout");
}

static void fauth_dispose(void *p)
{
    fauth_sub *s = p;
    if (s->client != NULL) {
        h2o_http1client_cancel(s->client);
        s->client = NULL;
    }
    if (h2o_timeout_is_linked(&s->deadline)) h2o_timeout_unlink(&s->deadline);
}

static void fauth_send_answer(fauth_sub *s)
{
    h2o_req_t *req = s->req;
    s->answered = 1;
    h2o_timeout_unlink(&s->deadline);
    req->res.status = s->status;
    req->res.reason = reason_for(s->status);
    for (size_t i = 0; i < s->hdrs.size; i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, s->hdrs.entries[i].name->base,
                              s->hdrs.entries[i].name->len, 1, NULL, s->hdrs.entries[i].value.base,
                              s->hdrs.entries[i].value.len);
    req->res.content_length = s->body_len;
    h2o_send_inline(req, s->body ? s->body : "", s->body_len);
}

static int fauth_on_body_deny(h2o_http1client_t *client, const char *errstr)
{
    fauth_sub *s = client->data;
    h2o_buffer_t *in = client->sock->input;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        s->client = NULL;
        if (!s->answered) fauth_finish_503(s, errstr);
        return -1;
    }
    if (in->size != 0) {
        size_t take = in->size;
        if (s->body_len + take > FAUTH_BODY_MAX) take = FAUTH_BODY_MAX - s->body_len;
        if (take) {
            if (s->body == NULL) s->body = h2o_mem_alloc_pool(&s->req->pool, FAUTH_BODY_MAX);
            memcpy(s->body + s->body_len, in->bytes, take);
            s->body_len += take;
        }
        h2o_buffer_consume(&client->sock->input, in->size);
    }
    if (errstr == h2o_http1client_error_is_eos) {
        s->client = NULL;
        if (!s->answered) fauth_send_answer(s);
    }
    return 0;
}

static int fauth_on_body_allow(h2o_http1client_t *client, const char *errstr)
{
    fauth_sub *s = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        s->client = NULL;
        if (!s->answered) fauth_finish_503(s, errstr);
        return -1;
    }
    h2o_buffer_consume(&client->sock->input, client->sock->input->size);
    if (errstr == h2o_http1client_error_is_eos) {
        s->client = NULL;
        if (!s->answered) {
            s->answered = 1;
            h2o_timeout_unlink(&s->deadline);
            h2o_delegate_request_deferred(s->req, &s->g->super);
        }
    }
    return 0;
}

static const char *const deny_copy[] = {
    "location", "set-cookie", "content-type", "www-authenticate", "cache-control", "retry-after", NULL};

static h2o_http1client_body_cb fauth_on_head(h2o_http1client_t *client, const char *errstr, int minor_version,
                                             int status, h2o_iovec_t msg, h2o_header_t *headers,
                                             size_t num_headers, int rlen)
{
    fauth_sub *s = client->data;
    h2o_req_t *req = s->req;
    web_host *h = s->g->host;
    int eos = errstr == h2o_http1client_error_is_eos;

    if (errstr != NULL && !eos) {
        fauth_failed(s, errstr);
        return NULL;
    }
    if (s->answered) {
        s->client = NULL;
        return NULL;
    }
    if (status >= 200 && status <= 299) {
        for (size_t k = 0; k < h->fauth.ncopy; k++) {
            const char *lc = h->fauth.copy_lc[k];
            size_t lclen = strlen(lc);
            for (size_t i = 0; i < num_headers; i++) {
                if (headers[i].name->len == lclen && strncasecmp(headers[i].name->base, lc, lclen) == 0 &&
                    safe_value(headers[i].value)) {
                    h2o_iovec_t v = h2o_strdup(&req->pool, headers[i].value.base, headers[i].value.len);
                    h2o_add_header_by_str(&req->pool, &req->headers, lc, lclen, 1, h->fauth.copy[k], v.base,
                                          v.len);
                    break;
                }
            }
        }
        if (eos) {
            s->client = NULL;
            s->answered = 1;
            h2o_timeout_unlink(&s->deadline);
            h2o_delegate_request_deferred(req, &s->g->super);
            return NULL;
        }
        return fauth_on_body_allow;
    }
    s->status = status;
    for (size_t i = 0; i < num_headers; i++) {
        for (size_t k = 0; deny_copy[k]; k++) {
            size_t kl = strlen(deny_copy[k]);
            if (headers[i].name->len == kl && strncasecmp(headers[i].name->base, deny_copy[k], kl) == 0) {
                h2o_vector_reserve(&req->pool, &s->hdrs, s->hdrs.size + 1);
                h2o_header_t *e = s->hdrs.entries + s->hdrs.size++;
                e->name = h2o_mem_alloc_pool(&req->pool, sizeof(*e->name));
                *e->name = h2o_strdup(&req->pool, deny_copy[k], kl);
                e->orig_name = NULL;
                e->value = h2o_strdup(&req->pool, headers[i].value.base, headers[i].value.len);
            }
        }
    }
    if (eos) {
        s->client = NULL;
        fauth_send_answer(s);
        return NULL;
    }
    return fauth_on_body_deny;
}

static h2o_http1client_head_cb fauth_on_connect(h2o_http1client_t *client, const char *errstr,
                                                h2o_iovec_t **reqbufs, size_t *reqbufcnt, int *method_is_head)
{
    fauth_sub *s = client->data;
    if (errstr != NULL) {
        fauth_failed(s, errstr);
        return NULL;
    }
    if (s->answered) {
        s->client = NULL;
        return NULL;
    }
    *reqbufs = &s->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return fauth_on_head;
}

/* 1 when `authority` ("name" or "name:port", any case) is one of h's names. */
static int host_names_host(const web_host *h, h2o_iovec_t authority)
{
    size_t n = authority.len;
    if (n && authority.base[0] == '[') { /* IPv6 literal: up to the bracket */
        const char *rb = memchr(authority.base, ']', n);
        if (!rb) return 0;
        n = (size_t)(rb - authority.base) + 1;
    } else {
        const char *colon = memchr(authority.base, ':', n);
        if (colon) n = (size_t)(colon - authority.base);
    }
    for (size_t i = 0; i < h->nnames; i++)
        if (h2o_lcstris(authority.base, n, h->names[i], strlen(h->names[i]))) return 1;
    return 0;
}

/* The subrequest's head: GET <path?query> with the client's credentials and X-Forwarded-*. */
static h2o_iovec_t build_auth_request(h2o_req_t *req, web_server *srv, web_host *h, fauth_backend *be)
{
    static const char *const pass[] = {"cookie",           "authorization", "proxy-authorization", "accept",
                                       "x-requested-with", "user-agent",    "accept-language",     NULL};
    struct sockaddr_storage ss;
    char peer[64] = "";
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    int trusted = 0;
    if (sl != 0) {
        h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, peer);
        trusted = web_conf_is_trusted(srv->conf, (struct sockaddr *)&ss);
    }
    const char *proto = req->scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http";
    h2o_iovec_t host = req->authority, xff = h2o_iovec_init(NULL, 0), xproto = h2o_iovec_init(NULL, 0);
    if (trusted) {
        h2o_iovec_t v;
        if ((v = req_header(req, "x-forwarded-proto")).base && safe_value(v)) xproto = v;
        if ((v = req_header(req, "x-forwarded-host")).base && safe_value(v)) host = v;
        if ((v = req_header(req, "x-forwarded-for")).base && safe_value(v)) xff = v;
    }
    /* The auth decides for the host whose routes serve the request (Pomerium CVE-2023-33189: the
     * decision and the routing must read the same request). A Host that names none of this host's
     * names reached it as h2o's fallback (unknown name, trailing dot...), and a trusted proxy's
     * X-Forwarded-Host may name another host than the one routed to: then the decision is asked for
     * this host's first name, the routes actually served. */
    if (!host_names_host(h, host)) host = h2o_iovec_init(h->names[0], strlen(h->names[0]));
    size_t cap = 1024 + strlen(h->fauth.path_query) + be->host_header.len + host.len + req->path.len +
                 xff.len + xproto.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; i++)
        cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf, *end = buf + cap;
#define PUT(s, n)                                                                                            \
    do {                                                                                                     \
        size_t n_ = (n);                                                                                     \
        if (p + n_ < end) {                                                                                  \
            memcpy(p, (s), n_);                                                                              \
            p += n_;                                                                                         \
        }                                                                                                    \
    } while (0)
#define PUTS(s) PUT(s, strlen(s))
    PUTS("GET ");
    PUTS(h->fauth.path_query);
    PUTS(" HTTP/1.1\r\nHost: ");
    PUT(be->host_header.base, be->host_header.len);
    PUTS("\r\nX-Forwarded-Method: ");
    PUT(req->method.base, req->method.len);
    PUTS("\r\nX-Forwarded-Proto: ");
    if (xproto.base)
        PUT(xproto.base, xproto.len);
    else
        PUTS(proto);
    PUTS("\r\nX-Forwarded-Host: ");
    PUT(host.base, host.len);
    PUTS("\r\nX-Forwarded-Uri: ");
    PUT(req->path.base, req->path.len);
    PUTS("\r\nX-Forwarded-For: ");
    if (xff.base) {
        PUT(xff.base, xff.len);
        PUTS(", ");
    }
    PUTS(peer);
    PUTS("\r\n");
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *hd = &req->headers.entries[i];
        for (size_t k = 0; pass[k]; k++) {
            if (hd->name->len == strlen(pass[k]) && memcmp(hd->name->base, pass[k], hd->name->len) == 0 &&
                safe_value(hd->value)) {
                PUT(pass[k], hd->name->len);
                PUTS(": ");
                PUT(hd->value.base, hd->value.len);
                PUTS("\r\n");
                break;
            }
        }
    }
    PUTS("\r\n");
#undef PUT
#undef PUTS
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Requests whose framing or target another HTTP parser could read differently (docs/SECURITY.md
 * findings 1-5): a header with an empty name (how libh2o 2.2.5 keeps an obs-fold continuation line)
 * or with bytes outside tchar; Content-Length twice or next to Transfer-Encoding (RFC 9112 6.1/6.3);
 * Host twice (RFC 9112 3.2); TRACE/TRACK (cross-site tracing through an echoing upstream).
 * Returns NULL, "method" for a refused method, or the reason for a 400. */
static const char *framing_problem(const h2o_req_t *req)
{
    size_t ncl = 0, nte = 0, nhost = 0;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("TRACE")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("TRACK")))
        return "method";
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *nm = req->headers.entries[i].name;
        if (nm->len == 0) return "obsolete line folding or empty header name";
        for (size_t k = 0; k < nm->len; k++)
            if (!is_tchar((unsigned char)nm->base[k])) return "invalid header name";
        if (h2o_iovec_is_token(nm)) {
            const h2o_token_t *t = (const h2o_token_t *)nm;
            ncl += t == H2O_TOKEN_CONTENT_LENGTH;
            nte += t == H2O_TOKEN_TRANSFER_ENCODING;
            nhost += t == H2O_TOKEN_HOST;
        } else if (h2o_lcstris(nm->base, nm->len, H2O_STRLIT("content-length"))) {
            ncl++;
        } else if (h2o_lcstris(nm->base, nm->len, H2O_STRLIT("transfer-encoding"))) {
            nte++;
        } else if (h2o_lcstris(nm->base, nm->len, H2O_STRLIT("host"))) {
            nhost++;
        }
    }
    if (ncl > 1) return "more than one Content-Length";
    if (ncl && nte) return "Content-Length with Transfer-Encoding";
    if (nhost > 1) return "more than one Host";
    return NULL;
}

/* picohttpparser, the parser libh2o reads HTTP/1 requests with: libh2o-evloop exports it, but
 * libh2o-dev does not install its header. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

/* What libh2o 2.2.5 hides from handlers: it moves Host into req->authority (the last one wins) and
 * keeps Content-Length and Transfer-Encoding to itself to frame the body (the first Content-Length
 * wins; Transfer-Encoding wins over it). On HTTP/1.x the request head is still at the start of the
 * connection's input while the handler runs (h2o consumes it once the response is sent), so parse it
 * again with the same parser and count them (docs/SECURITY.md findings 2-4). */
const char *front_head_problem(const char *buf, size_t len, const char *method, size_t method_len,
                               const char *path, size_t path_len)
{
    struct phr_header hs[H2O_MAX_HEADERS];
    size_t nh = H2O_MAX_HEADERS, ml, pl, ncl = 0, nte = 0, nhost = 0;
    const char *m, *p;
    int minor;
    if (len > H2O_MAX_REQLEN) len = H2O_MAX_REQLEN;
    int r = phr_parse_request(buf, len, &m, &ml, &p, &pl, &minor, hs, &nh, 0);
    if (r <= 0 || !h2o_memis(m, ml, method, method_len) || !h2o_memis(p, pl, path, path_len))
        return "request head unavailable";
    for (size_t i = 0; i < nh; i++) {
        ncl += h2o_lcstris(hs[i].name, hs[i].name_len, H2O_STRLIT("content-length"));
        nte += h2o_lcstris(hs[i].name, hs[i].name_len, H2O_STRLIT("transfer-encoding"));
        nhost += h2o_lcstris(hs[i].name, hs[i].name_len, H2O_STRLIT("host"));
    }
    if (nhost > 1) return "more than one Host";
    if (ncl > 1) return "more than one Content-Length";
    if (nte > 1) return "more than one Transfer-Encoding";
    if (ncl && nte) return "Content-Length with Transfer-Encoding";
    return NULL;
}

/* front_head_problem() on this request's connection input. Fails closed: no head is refused. */
static const char *raw_head_problem(h2o_req_t *req)
{
    if (req->version >= 0x200) return NULL; /* HTTP/2: h2o's HPACK decoder refuses these itself */
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (!sock || !sock->input) return "request head unavailable";
    return front_head_problem(sock->input->bytes, sock->input->size, req->input.method.base,
                              req->input.method.len, req->input.path.base, req->input.path.len);
}

/* Cross-site request forgery, whatever the content type and beyond the cookie's SameSite (a sibling
 * subdomain is "same site" to a cookie): a request that can change state (every method but GET, HEAD,
 * OPTIONS) is refused when the browser says it comes from another site (Sec-Fetch-Site: cross-site,
 * or same-site from a host that is not ours) or when its Origin is not one of this front's host
 * names (any port and scheme: TLS may end before us). Requests without either header are not from
 * a browser page (every browser sends Origin on a cross-origin POST): CLI and API clients. */
static int cross_site(const web_conf *c, h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")))
        return 0;
    h2o_iovec_t o = req_header(req, "origin"), sfs = req_header(req, "sec-fetch-site");
    if (sfs.base && h2o_lcstris(sfs.base, sfs.len, H2O_STRLIT("cross-site"))) return 1;
    if (!o.base) return 0;
    /* scheme "://" host [":" port], nothing else (RFC 6454 serialization); "null" is foreign */
    const char *p = memchr(o.base, ':', o.len);
    if (!p || (size_t)(o.base + o.len - p) < 4 || p[1] != '/' || p[2] != '/') return 1;
    const char *host = p + 3, *end = o.base + o.len, *hend = host;
    if (host < end && *host == '[') { /* IPv6 literal */
        hend = memchr(host, ']', (size_t)(end - host));
        if (!hend) return 1;
        hend++;
    } else {
        while (hend < end && *hend != ':' && *hend != '/')
            hend++;
    }
    if (hend < end && *hend == '/') return 1;
    if (hend == host) return 1;
    for (size_t i = 0; i < c->nhosts; i++)
        for (size_t k = 0; k < c->hosts[i].nnames; k++)
            if (h2o_lcstris(host, (size_t)(hend - host), c->hosts[i].names[k], strlen(c->hosts[i].names[k])))
                return 0;
    return 1;
}

/* 1 when s is exactly an IPv4 or IPv6 address (no port, brackets, quotes, "unknown" or RFC 7239
 * obfuscated names: heimdall GHSA-38x9-25wx-7fg2, whatever is not an address is not one). */
static int ip_literal(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char bin[sizeof(struct in6_addr)];
    if (n == 0 || n >= sizeof(buf)) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    return inet_pton(AF_INET, buf, bin) == 1 || inet_pton(AF_INET6, buf, bin) == 1;
}

/* A trusted proxy appends the address it saw to X-Forwarded-For; every entry before it came from
 * its client and proves nothing. Keep that last entry only (one header, one address), so that the
 * auth service's "first entry is the client" (audit, regulation.modes ip) reads the proxy's word,
 * never the client's. An entry that is not an IP address is dropped: the peer stands for the client. */
static void trusted_xff_trim(h2o_req_t *req)
{
    ssize_t last = -1, i = -1;
    while ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), i)) != -1)
        last = i;
    if (last < 0) return;
    for (i = last - 1; i >= 0; i--)
        if (h2o_lcstris(req->headers.entries[i].name->base, req->headers.entries[i].name->len,
                        H2O_STRLIT("x-forwarded-for"))) {
            h2o_delete_header(&req->headers, i);
            last--;
        }
    h2o_iovec_t v = req->headers.entries[last].value;
    size_t start = v.len;
    while (start > 0 && v.base[start - 1] != ',')
        start--;
    while (start < v.len && (v.base[start] == ' ' || v.base[start] == '\t'))
        start++;
    size_t end = v.len;
    while (end > start && (v.base[end - 1] == ' ' || v.base[end - 1] == '\t'))
        end--;
    if (!ip_literal(v.base + start, end - start))
        h2o_delete_header(&req->headers, last);
    else
        req->headers.entries[last].value = h2o_strdup(&req->pool, v.base + start, end - start);
}

static int guard_on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    web_guard *g = (web_guard *)_self;
    web_server *srv = web_server_of(req);
    web_host *h = g->host;
    char canon[WEB_PATH_MAX];

    inflight_token *tok = h2o_mem_alloc_shared(&req->pool, sizeof(*tok), inflight_dispose);
    tok->srv = srv;
    srv->inflight++;

    /* 1. the size of the request head */
    size_t head = req->method.len + req->path.len + req->authority.len;
    for (size_t i = 0; i < req->headers.size; i++)
        head += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (head > (size_t)srv->conf->max_header_bytes) {
        req->http1_is_persistent = 0;
        send_plain(req, 431, "headers_too_large", "request header fields too large");
        return 0;
    }

    /* 1b. framing that proxies in front of us or upstreams behind us could read differently */
    const char *bad = framing_problem(req);
    if (!bad) bad = raw_head_problem(req);
    if (bad) {
        req->http1_is_persistent = 0;
        if (strcmp(bad, "method") == 0)
            send_plain(req, 405, "method_not_allowed", "TRACE and TRACK are not allowed");
        else
            send_plain(req, 400, "bad_request", bad);
        return 0;
    }
    /* Defence in depth after the checks above: a body's framing is where parsers part (chunk
     * extensions, bare LFs in chunk lines...), so no further request is read on this connection
     * after one with a body. */
    if (req->entity.base != NULL) req->http1_is_persistent = 0;

    /* 2. one canonical path */
    long n = xt_path_normalize(req->path.base, req->path.len, canon, sizeof(canon));
    if (n < 0) {
        send_plain(req, 400, "bad_path", "malformed or refused request path");
        return 0;
    }
    size_t plen = (size_t)n;
    const char *q = memchr(canon, '?', (size_t)n);
    if (q) plen = (size_t)(q - canon);
    /* "..;x" and ".;x" are ordinary segments here, but servlet containers behind a proxy read them
     * as ".." and ".": refuse them rather than forward an ambiguity */
    for (size_t i = 0; i + 2 < plen; i++) {
        if (canon[i] == '/' && canon[i + 1] == '.' &&
            (canon[i + 2] == ';' || (canon[i + 2] == '.' && i + 3 < plen && canon[i + 3] == ';'))) {
            send_plain(req, 400, "bad_path", "malformed or refused request path");
            return 0;
        }
    }
    int ri = -1;
    for (size_t i = 0; i < h->nroutes; i++) {
        if (prefix_matches(h->routes[i].path, canon, plen)) {
            ri = (int)i;
            break;
        }
    }
    web_guard *target = g->inst->guards[ri >= 0 ? (size_t)ri : h->nroutes];
    req->path = h2o_strdup(&req->pool, canon, (size_t)n);
    req->path_normalized =
        h2o_url_normalize_path(&req->pool, req->path.base, req->path.len, &req->query_at, &req->norm_indexes);
    if (target != g)
        h2o_req_bind_conf(req, req->hostconf, g->inst->pathconfs[ri >= 0 ? (size_t)ri : h->nroutes]);

    /* 3. header hygiene */
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    int trusted = sl != 0 && web_conf_is_trusted(srv->conf, (struct sockaddr *)&ss);
    for (size_t i = 0; i < req->headers.size;) {
        const h2o_iovec_t *nm = req->headers.entries[i].name;
        if (header_is_claim(h, nm, trusted))
            h2o_delete_header(&req->headers, (ssize_t)i);
        else
            i++;
    }
    if (trusted) trusted_xff_trim(req);

    /* 3b. cross-site requests that could change state */
    if (cross_site(srv->conf, req)) {
        xt_info("refused a cross-site %.*s %.*s", (int)req->method.len, req->method.base, (int)plen, canon);
        send_plain(req, 403, "cross_site", "cross-site request refused");
        return 0;
    }

    /* 4. forward_auth */
    int is_public = ri >= 0 && h->routes[ri].is_public;
    /* a public redirect (e.g. "/" -> "/web/") opens its exact path only, not everything below it */
    if (is_public && h->routes[ri].kind == ROUTE_REDIRECT && plen != strlen(h->routes[ri].path))
        is_public = 0;
    int need_auth = h->has_fauth && !is_public;
    if (!need_auth) {
        if (target != g) {
            h2o_delegate_request(req, &target->super);
            return 0;
        }
        return -1;
    }
    fauth_backend *be = &srv->front->backends[h - srv->conf->hosts];
    fauth_sub *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), fauth_dispose);
    memset(s, 0, sizeof(*s));
    s->g = target;
    s->req = req;
    s->be = be;
    s->deadline.cb = fauth_deadline_cb;
    s->reqbuf = build_auth_request(req, srv, h, be);
    h2o_timeout_link(srv->ctx.loop, &be->timeout, &s->deadline);
    fauth_start(s);
    return 0;
}

web_guard *front_register_guard(h2o_pathconf_t *pc, web_host *host, web_hostinst *inst, int route)
{
    web_guard *g = (web_guard *)h2o_create_handler(pc, sizeof(*g));
    g->super.on_req = guard_on_req;
    g->host = host;
    g->inst = inst;
    g->route = route;
    return g;
}

int front_init(web_server *srv)
{
    srv->front = calloc(1, sizeof(*srv->front));
    if (!srv->front) return -1;
    for (size_t i = 0; i < srv->conf->nhosts; i++) {
        web_host *h = &srv->conf->hosts[i];
        fauth_backend *be = &srv->front->backends[i];
        if (!h->has_fauth) continue;
        h2o_socketpool_init_by_hostport(&be->pool, h2o_iovec_init(h->fauth.host, strlen(h->fauth.host)),
                                        h->fauth.port, 0, (size_t)h->fauth.pool);
        h2o_socketpool_set_timeout(&be->pool, srv->ctx.loop, (uint64_t)h->fauth.keepalive_ms);
        h2o_timeout_init(srv->ctx.loop, &be->timeout, (uint64_t)h->fauth.timeout_ms);
        be->client_ctx.loop = srv->ctx.loop;
        be->client_ctx.getaddr_receiver = &srv->ctx.receivers.hostinfo_getaddr;
        be->client_ctx.io_timeout = &be->timeout;
        be->client_ctx.websocket_timeout = NULL;
        be->client_ctx.ssl_ctx = NULL;
        char hh[300];
        int n = snprintf(hh, sizeof(hh), "%s:%u", h->fauth.host, (unsigned)h->fauth.port);
        be->host_header = h2o_strdup(NULL, hh, (size_t)n);
        be->ready = 1;
    }
    return 0;
}

void front_dispose(web_server *srv)
{
    if (!srv->front) return;
    for (size_t i = 0; i < srv->conf->nhosts; i++) {
        fauth_backend *be = &srv->front->backends[i];
        if (!be->ready) continue;
        h2o_socketpool_dispose(&be->pool);
        h2o_timeout_dispose(srv->ctx.loop, &be->timeout);
        free(be->host_header.base);
    }
    free(srv->front);
    srv->front = NULL;
}
