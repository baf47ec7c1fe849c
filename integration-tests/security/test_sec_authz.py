#!/usr/bin/env python3
"""Security: server.endpoints.authz (Authelia 4.38) against the real xtask-auth and the real front.

Issue 12 found the key accepted and ignored: Basic credentials got in where the admin configured
cookie-only, and custom endpoint names answered 404. Now each configured endpoint answers at
/api/authz/<name> (`legacy` at /api/verify) with its implementation (ForwardAuth, AuthRequest,
ExtAuthz, Legacy) and only its authn strategies, in order; a configured map replaces the defaults."""
import base64
import os
import re
import sys

os.environ.setdefault("XT_PORT_OFFSET", "800")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seclib import APP, DEV_PASS, Runner, Stack, first_status, head_of, raw  # noqa: E402

AUTHZ = """  endpoints:
    authz:
      forward-auth:
        implementation: ForwardAuth
        authn_strategies: [{name: CookieSession}]
      basic-too:
        implementation: ForwardAuth
        authn_strategies:
          - name: HeaderAuthorization
            schemes: [basic]
          - name: CookieSession
      proxy-basic:
        implementation: ForwardAuth
        authn_strategies: [{name: HeaderProxyAuthorization}, {name: CookieSession}]
      auth-request:
        implementation: AuthRequest
      ext-authz:
        implementation: ExtAuthz
      legacy:
        implementation: Legacy
        authn_strategies: [{name: CookieSession}]
      team/app.gate:
        implementation: ForwardAuth
"""
# the front asks the cookie-only endpoint
S = Stack("xt-secauthz-", server_extra=AUTHZ, verify_path="/api/authz/forward-auth?authelia_url=")
T = Runner(S)
BASIC = b"Basic " + base64.b64encode(b"developer:" + DEV_PASS.encode())
WRONG = b"Basic " + base64.b64encode(b"developer:not-the-password")


def ask(path, headers, cookie=None, host=b"127.0.0.1", accept=b"application/json"):
    """A raw question to the auth service; returns (status, head)."""
    h = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    if cookie:
        h += b"Cookie: " + cookie.encode() + b"\r\n"
    r = raw(S.AUTH, b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: " + accept + b"\r\n" + h +
            b"Connection: close\r\n\r\n")
    return first_status(r), head_of(r).decode("latin-1").lower()


def fwd(uri=b"/app/x"):
    return [(b"X-Forwarded-Method", b"GET"), (b"X-Forwarded-Proto", b"http"), (b"X-Forwarded-Host", APP.encode()),
            (b"X-Forwarded-Uri", uri)]


def orig(url=b"http://" + APP.encode() + b"/app/x", method=b"GET"):
    return [(b"X-Original-URL", url), (b"X-Original-Method", method)]


def test_cookie_only_refuses_basic_through_the_front():
    """The admin configured cookie-only: right Basic (and Proxy-) credentials get nobody in, through
    the real front and straight at the endpoint; the session cookie does."""
    for hdr in [b"Authorization: " + BASIC, b"Proxy-Authorization: " + BASIC]:
        S.up.clear()
        r = S.raw(b"GET /app/x HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nAccept: application/json\r\n" + hdr +
                  b"\r\nConnection: close\r\n\r\n")
        assert first_status(r) == 401 and not S.up.seen, (hdr, r[:200])
        st, _ = ask(b"/api/authz/forward-auth", fwd() + [tuple(hdr.split(b": ", 1))])
        assert st == 401, (hdr, st)
    ck, _ = S.login()
    S.up.clear()
    assert S.req("GET", "/app/x", headers={"Cookie": ck})[0] == 200 and len(S.up.seen) == 1
    # 4.38's ForwardAuth: a browser is redirected to the portal, with the target
    st, head = ask(b"/api/authz/forward-auth", fwd(), accept=b"text/html")
    assert st == 302 and "location: http://auth.xtask.test" in head and "rd=http%3a%2f%2fapp.xtask.test" in head, head


def test_header_authorization_where_configured():
    """basic-too: Authorization Basic opens (identity headers set), a wrong one is 401 with
    WWW-Authenticate, whatever cookie comes with it; without the header the cookie decides."""
    st, head = ask(b"/api/authz/basic-too", fwd() + [(b"Authorization", BASIC)])
    assert st == 200 and "remote-user: developer" in head, (st, head)
    st, head = ask(b"/api/authz/basic-too", fwd() + [(b"Authorization", WRONG)])
    assert st == 401 and 'www-authenticate: basic realm="authentication required"' in head, (st, head)
    st, _ = ask(b"/api/authz/basic-too", fwd(b"/app/admin") + [(b"Authorization", BASIC)])
    assert st == 403, st
    ck, _ = S.login()
    assert ask(b"/api/authz/basic-too", fwd(), cookie=ck)[0] == 200
    assert ask(b"/api/authz/basic-too", fwd())[0] == 401


def test_header_proxy_authorization():
    """proxy-basic: Proxy-Authorization opens; a wrong one is 407 with Proxy-Authenticate; the
    Authorization header is not this endpoint's and is ignored."""
    st, head = ask(b"/api/authz/proxy-basic", fwd() + [(b"Proxy-Authorization", BASIC)])
    assert st == 200 and "remote-user: developer" in head, (st, head)
    st, head = ask(b"/api/authz/proxy-basic", fwd() + [(b"Proxy-Authorization", WRONG)])
    assert st == 407 and "proxy-authenticate: basic" in head, (st, head)
    st, head = ask(b"/api/authz/proxy-basic", fwd() + [(b"Authorization", BASIC)])
    assert st == 401 and "remote-user" not in head, (st, head)


def test_auth_request_implementation():
    """AuthRequest (nginx auth_request): the object comes from X-Original-URL / X-Original-Method;
    anonymous gets 401 with the portal in Location; its default strategies take Authorization Basic;
    a malformed X-Original-URL is 400, never 200 (Authelia CVE-2021-29456 shape); the X-Forwarded-*
    headers are not read by this implementation."""
    ck, _ = S.login()
    assert ask(b"/api/authz/auth-request", orig(), cookie=ck)[0] == 200
    assert ask(b"/api/authz/auth-request", orig(b"http://" + APP.encode() + b"/app/admin"), cookie=ck)[0] == 403
    st, head = ask(b"/api/authz/auth-request", orig(), accept=b"text/html")
    assert st == 401 and "location: http://auth.xtask.test" in head, (st, head)
    assert ask(b"/api/authz/auth-request", orig() + [(b"Authorization", BASIC)])[0] == 200
    for url in [b"", b"/app/x", b"app.xtask.test/app/x", b"http://" + APP.encode(), b"http://" + APP.encode() + b"?x",
                b"http:/" + APP.encode() + b"/app/x", b"http://evil.example/app/x", b"ftp://" + APP.encode() + b"/x",
                b"http://" + APP.encode() + b"/health/../app/admin", b"http://" + APP.encode() + b"/app/%zz",
                b"http://u@" + APP.encode() + b"/app/x", b"http://" + APP.encode() + b":0/app/x"]:
        st, _ = ask(b"/api/authz/auth-request", orig(url), cookie=ck)
        assert st in (400, 401, 403), (url, st)
    assert ask(b"/api/authz/auth-request", fwd(), cookie=ck)[0] == 400
    assert ask(b"/api/authz/auth-request", orig(method=b""), cookie=ck)[0] == 400


def test_ext_authz_implementation():
    """ExtAuthz (Envoy): the method and Host of the request itself, the path after the endpoint's,
    X-Forwarded-Proto; dot-segments in that path are resolved before the rules."""
    ck, _ = S.login()
    xfp = [(b"X-Forwarded-Proto", b"http")]
    host = APP.encode()
    assert ask(b"/api/authz/ext-authz/app/x?y=1", xfp, cookie=ck, host=host)[0] == 200
    assert ask(b"/api/authz/ext-authz/app/x", xfp, host=host)[0] == 401
    assert ask(b"/api/authz/ext-authz/app/admin", xfp, cookie=ck, host=host)[0] == 403
    assert ask(b"/api/authz/ext-authz/health/../app/admin", xfp, cookie=ck, host=host)[0] == 403
    assert ask(b"/api/authz/ext-authz/health", xfp, host=host)[0] == 200
    assert ask(b"/api/authz/ext-authz/app/x", [], cookie=ck, host=host)[0] == 400
    assert ask(b"/api/authz/ext-authz/app/x", xfp, cookie=ck, host=b"evil.example")[0] in (400, 401)


def test_legacy_cookie_only_and_custom_names():
    """legacy configured cookie-only: /api/verify ignores Proxy-Authorization and ?auth=basic; a
    custom name (with '/' and '.') answers at /api/authz/<name>; a configured map replaces the
    defaults, so an unlisted name is 404."""
    ck, _ = S.login()
    assert ask(b"/api/verify", fwd() + [(b"Proxy-Authorization", BASIC)])[0] == 401
    assert ask(b"/api/verify?auth=basic", fwd() + [(b"Authorization", BASIC)])[0] == 401
    assert ask(b"/api/verify", fwd(), cookie=ck)[0] == 200
    st, head = ask(b"/api/authz/team/app.gate", fwd() + [(b"Authorization", BASIC)])
    assert st == 200 and "remote-user: developer" in head, (st, head)
    assert ask(b"/api/authz/team/app.gate", fwd(), cookie=ck)[0] == 200
    assert ask(b"/api/authz/team/app.gate", fwd())[0] == 401
    for p in [b"/api/authz/nosuch", b"/api/authz/team", b"/api/authz/team/app.gate/x", b"/api/authz/forward-auth/x"]:
        assert ask(p, fwd(), cookie=ck)[0] == 404, p


for t in [test_cookie_only_refuses_basic_through_the_front, test_header_authorization_where_configured,
          test_header_proxy_authorization, test_auth_request_implementation, test_ext_authz_implementation,
          test_legacy_cookie_only_and_custom_names]:
    T.case(t)
T.finish()
