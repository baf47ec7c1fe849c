/*
 * auth_authz: Authelia 4.38's `server.endpoints.authz`, the authorization endpoints a proxy asks.
 *
 * Each endpoint has a name, an implementation and an ordered list of authn strategies:
 *   name `legacy`     -> /api/verify (and /api/verify/<anything>), implementation Legacy;
 *   any other name    -> /api/authz/<name> (ExtAuthz and Legacy also take /api/authz/<name>/<path>).
 *   ForwardAuth  (Traefik, Caddy): X-Forwarded-Method/-Proto/-Host/-Uri;
 *   AuthRequest  (nginx auth_request): X-Original-URL and X-Original-Method;
 *   ExtAuthz     (Envoy): the request's own method and Host, the path after the endpoint,
 *                X-Forwarded-Proto; the portal from X-Authelia-URL;
 *   Legacy       (/api/verify of 4.37): X-Forwarded-* (X-Original-URL is not read here).
 * Strategies, tried in order until one authenticates: CookieSession; HeaderAuthorization
 * (Authorization, 401 + WWW-Authenticate), HeaderProxyAuthorization (Proxy-Authorization, 407 +
 * Proxy-Authenticate), HeaderAuthRequestProxyAuthorization (Proxy-Authorization, 401 +
 * WWW-Authenticate), HeaderLegacy (?auth=basic: Authorization, else Proxy-Authorization). A header
 * strategy takes the scheme `basic` only: `bearer` needs an OpenID Connect provider, which xtask-auth
 * does not have, so it is refused rather than accepted and ignored.
 *
 * As in Authelia, a configured `authz` replaces the defaults: only the endpoints listed answer. When
 * the key is absent, the endpoints are today's: `legacy` (GET/HEAD) and `forward-auth`.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

static const char *const impl_names[] = {"Legacy", "ForwardAuth", "AuthRequest", "ExtAuthz", NULL};
static const char *const strat_names[] = {"CookieSession",
                                          "HeaderAuthorization",
                                          "HeaderProxyAuthorization",
                                          "HeaderAuthRequestProxyAuthorization",
                                          "HeaderLegacy",
                                          NULL};

static void endpoint_set(auth_authz_endpoint *ep, const char *name, auth_authz_impl impl)
{
    memset(ep, 0, sizeof(*ep));
    ep->impl = impl;
    if (strcmp(name, "legacy") == 0)
        snprintf(ep->path, sizeof(ep->path), "/api/verify");
    else
        snprintf(ep->path, sizeof(ep->path), "/api/authz/%s", name);
    ep->prefix = impl == AUTH_AUTHZ_LEGACY || impl == AUTH_AUTHZ_EXT_AUTHZ;
    ep->any_method = 1;
}

void auth_authz_defaults(auth_authz *a)
{
    memset(a, 0, sizeof(*a));
    /* today's endpoints, unchanged: /api/verify answers GET and HEAD on its exact path */
    endpoint_set(&a->ep[0], "legacy", AUTH_AUTHZ_LEGACY);
    a->ep[0].prefix = 0;
    a->ep[0].any_method = 0;
    a->ep[0].strat[a->ep[0].nstrat++] = AUTH_AUTHN_HEADER_LEGACY;
    a->ep[0].strat[a->ep[0].nstrat++] = AUTH_AUTHN_COOKIE;
    endpoint_set(&a->ep[1], "forward-auth", AUTH_AUTHZ_FORWARD_AUTH);
    a->ep[1].prefix = 0;
    a->ep[1].strat[a->ep[1].nstrat++] = AUTH_AUTHN_HEADER_AUTHORIZATION;
    a->ep[1].strat[a->ep[1].nstrat++] = AUTH_AUTHN_COOKIE;
    a->n = 2;
}

/* The defaults Authelia gives an endpoint configured without authn_strategies. */
static void strategies_default(auth_authz_endpoint *ep)
{
    ep->nstrat = 0;
    if (ep->impl == AUTH_AUTHZ_LEGACY)
        ep->strat[ep->nstrat++] = AUTH_AUTHN_HEADER_LEGACY;
    else
        ep->strat[ep->nstrat++] = AUTH_AUTHN_HEADER_AUTHORIZATION;
    ep->strat[ep->nstrat++] = AUTH_AUTHN_COOKIE;
}

/* Authelia's endpoint names: ^[a-zA-Z]([a-zA-Z0-9/._-]*[a-zA-Z])?$ (and no "..": a path segment). */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_AUTHZ_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if ((i == 0 || i == n - 1) && !alpha) return 0;
        if (!alpha && !(c >= '0' && c <= '9') && c != '/' && c != '.' && c != '_' && c != '-') return 0;
    }
    return strstr(s, "..") == NULL && strstr(s, "//") == NULL && strstr(s, "/.") == NULL;
}

static int lookup(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static int parse_strategy(const xt_doc *doc, const xt_node *sn, const char *ename, size_t idx,
                          auth_authz_endpoint *ep, char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "schemes", "scheme_basic_cache_lifespan", NULL};
    const xt_node *v;
    const char *name = NULL;
    int k;
    if (xt_conf_want_map(doc, sn, "authn_strategies item", err, errlen) < 0 ||
        xt_conf_check_keys(doc, sn, keys, "authn_strategies item", err, errlen) < 0)
        return -1;
    if (!(v = xt_map_get(sn, "name")) || v->is_null)
        return xt_conf_error(err, errlen, doc, sn,
                             "server.endpoints.authz.%s.authn_strategies: strategy #%zu: 'name' must be set",
                             ename, idx + 1);
    if (xt_conf_string(doc, v, "authn_strategies name", &name, err, errlen) < 0) return -1;
    if ((k = lookup(strat_names, name)) < 0) {
        const char *sug = xt_suggest(name, strat_names);
        return xt_conf_error(
            err, errlen, doc, v,
            "server.endpoints.authz.%s.authn_strategies: unknown strategy '%s'%s%s%s (one of "
            "CookieSession, HeaderAuthorization, HeaderProxyAuthorization, "
            "HeaderAuthRequestProxyAuthorization, HeaderLegacy)",
            ename, name, sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
    }
    for (size_t i = 0; i < ep->nstrat; i++)
        if ((int)ep->strat[i] == k)
            return xt_conf_error(err, errlen, doc, v,
                                 "server.endpoints.authz.%s.authn_strategies: strategy '%s' listed twice",
                                 ename, name);
    if ((v = xt_map_get(sn, "schemes")) && !v->is_null) {
        char **schemes = NULL;
        if (k == AUTH_AUTHN_COOKIE || k == AUTH_AUTHN_HEADER_LEGACY)
            return xt_conf_error(
                err, errlen, doc, v,
                "server.endpoints.authz.%s.authn_strategies: strategy '%s' takes no 'schemes'", ename, name);
        if (xt_conf_strv(doc, v, "schemes", 1, 1, &schemes, err, errlen) < 0) return -1;
        for (size_t i = 0; schemes[i]; i++) {
            const xt_node *at = v->kind == XT_NODE_SEQ && i < v->len ? v->items[i] : v;
            int rc = 0;
            if (strcasecmp(schemes[i], "bearer") == 0)
                rc = xt_conf_error(
                    err, errlen, doc, at,
                    "server.endpoints.authz.%s.authn_strategies: strategy '%s': scheme 'bearer' "
                    "needs an OpenID Connect provider, which xtask-auth does not have",
                    ename, name);
            else if (strcasecmp(schemes[i], "basic") != 0)
                rc =
                    xt_conf_error(err, errlen, doc, at,
                                  "server.endpoints.authz.%s.authn_strategies: strategy '%s': unknown scheme "
                                  "'%s' (basic)",
                                  ename, name, schemes[i]);
            if (rc < 0) {
                xt_strv_free(schemes);
                return -1;
            }
        }
        xt_strv_free(schemes);
    }
    if ((v = xt_map_get(sn, "scheme_basic_cache_lifespan")) && !v->is_null) {
        int64_t ms = 0;
        if (xt_conf_duration(doc, v, "scheme_basic_cache_lifespan", 0, INT64_MAX / 4, &ms, err, errlen) < 0)
            return -1;
        if (ms != 0)
            return xt_conf_error(
                err, errlen, doc, v,
                "server.endpoints.authz.%s.authn_strategies: scheme_basic_cache_lifespan is not "
                "supported by xtask-auth (every Basic credential is checked): remove it or set 0",
                ename);
    }
    ep->strat[ep->nstrat++] = (auth_authn_kind)k;
    return 0;
}

int auth_authz_parse(const xt_doc *doc, const xt_node *n, auth_authz *a, char *err, size_t errlen)
{
    static const char *const keys[] = {"implementation", "authn_strategies", NULL};
    auth_authz_defaults(a);
    if (!n || n->is_null) return 0;
    if (xt_conf_want_map(doc, n, "server.endpoints.authz", err, errlen) < 0) return -1;
    if (n->len == 0) return 0; /* as in Authelia: an empty map means the defaults */
    if (n->len > AUTH_AUTHZ_MAX)
        return xt_conf_error(err, errlen, doc, n, "server.endpoints.authz: at most %d endpoints",
                             AUTH_AUTHZ_MAX);
    a->n = 0;
    for (size_t i = 0; i < n->len; i++) {
        const char *name = n->keys[i]->str, *impl = NULL;
        const xt_node *e = n->items[i], *v;
        auth_authz_endpoint *ep = &a->ep[a->n];
        int k;
        if (!name_ok(name))
            return xt_conf_error(
                err, errlen, doc, n->keys[i],
                "server.endpoints.authz: endpoint name '%s' has invalid characters (a letter, "
                "then letters, digits, '/', '.', '_' or '-', ending with a letter)",
                name);
        if (e->is_null) {
            impl = strcmp(name, "legacy") == 0 ? "Legacy" : NULL;
        } else {
            if (xt_conf_want_map(doc, e, "server.endpoints.authz endpoint", err, errlen) < 0 ||
                xt_conf_check_keys(doc, e, keys, "server.endpoints.authz endpoint", err, errlen) < 0)
                return -1;
            if ((v = xt_map_get(e, "implementation")) && !v->is_null &&
                xt_conf_string(doc, v, "implementation", &impl, err, errlen) < 0)
                return -1;
            if (!impl && strcmp(name, "legacy") == 0) impl = "Legacy";
        }
        if (!impl)
            return xt_conf_error(err, errlen, doc, n->keys[i],
                                 "server.endpoints.authz.%s: 'implementation' must be set (ForwardAuth, "
                                 "AuthRequest, ExtAuthz or Legacy)",
                                 name);
        if ((k = lookup(impl_names, impl)) < 0) {
            const char *sug = xt_suggest(impl, impl_names);
            return xt_conf_error(err, errlen, doc, e->is_null ? n->keys[i] : xt_map_get(e, "implementation"),
                                 "server.endpoints.authz.%s: unknown implementation '%s'%s%s%s (ForwardAuth, "
                                 "AuthRequest, ExtAuthz or Legacy)",
                                 name, impl, sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
        }
        if (strcmp(name, "legacy") == 0 && k != AUTH_AUTHZ_LEGACY)
            return xt_conf_error(err, errlen, doc, xt_map_get(e, "implementation"),
                                 "server.endpoints.authz.legacy: the endpoint named 'legacy' must use the "
                                 "Legacy implementation");
        endpoint_set(ep, name, (auth_authz_impl)k);
        v = e->is_null ? NULL : xt_map_get(e, "authn_strategies");
        if (v && !v->is_null) {
            if (v->kind != XT_NODE_SEQ)
                return xt_conf_error(err, errlen, doc, v,
                                     "server.endpoints.authz.%s.authn_strategies: a list of {name: ...}",
                                     name);
            if (v->len > AUTH_AUTHN_MAX)
                return xt_conf_error(err, errlen, doc, v,
                                     "server.endpoints.authz.%s.authn_strategies: at most %d", name,
                                     AUTH_AUTHN_MAX);
            for (size_t j = 0; j < v->len; j++)
                if (parse_strategy(doc, v->items[j], name, j, ep, err, errlen) < 0) return -1;
        }
        if (ep->nstrat == 0) strategies_default(ep);
        a->n++;
    }
    /* an endpoint whose path lies under a prefix endpoint would never answer */
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < a->n; j++) {
            size_t pl = strlen(a->ep[j].path);
            if (i != j && a->ep[j].prefix && strncmp(a->ep[i].path, a->ep[j].path, pl) == 0 &&
                a->ep[i].path[pl] == '/')
                return xt_conf_error(
                    err, errlen, doc, n->keys[i],
                    "server.endpoints.authz.%s: %s lies under %s, whose %s implementation takes "
                    "every path below it",
                    n->keys[i]->str, a->ep[i].path, a->ep[j].path, impl_names[a->ep[j].impl]);
        }
    return 0;
}

const auth_authz_endpoint *auth_authz_find(const auth_authz *a, const char *path, size_t len, size_t *suffix)
{
    const auth_authz_endpoint *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < a->n; i++) {
        const auth_authz_endpoint *ep = &a->ep[i];
        size_t pl = strlen(ep->path);
        if (len < pl || memcmp(path, ep->path, pl) != 0) continue;
        if (len > pl && !(ep->prefix && path[pl] == '/')) continue;
        if (pl > best_len) {
            best = ep;
            best_len = pl;
        }
    }
    if (best && suffix) *suffix = best_len;
    return best;
}
