#!/usr/bin/env python3
"""Security: published forward-auth advisories of the anchors (Traefik, Caddy, oauth2-proxy,
authentik, Authelia, Pomerium, heimdall, Oathkeeper, tinyauth) replayed as classes against the real
front (xtask-web) and the real auth (xtask-auth) over loopback. Each case names the advisories it
covers; docs/SECURITY.md ("Advisories") maps each one to its case."""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse

os.environ.setdefault("XT_PORT_OFFSET", "740")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seclib import APP, DEV_PASS, Runner, Stack, first_status, header_lines, raw  # noqa: E402
from xt_testlib import Proc, bin_path, fast_hash, http_request, wait_until  # noqa: E402

S = Stack("xt-secadv-", auth_extra="")
T = Runner(S)
DEV, _ = S.login()
CK = DEV.encode()


def get(path, extra=b"", cookie=None, host=APP.encode()):
    c = b"Cookie: " + cookie + b"\r\n" if cookie else b""
    return S.raw(b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: application/json\r\n" + c + extra +
                 b"Connection: close\r\n\r\n")


def key(name):
    """The comparison key a lenient upstream could fold a name to: letters and digits, lower case."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def spellings(name):
    """Every way a gateway or framework could map onto `name` (Traefik CVE-2026-54763/-88011/-33433,
    Caddy CVE-2026-30851): case, '_' or '.' for '-', separators dropped or doubled."""
    low = name.lower()
    return {name, low, name.upper(), low.replace("-", "_"), name.replace("-", "_").upper(), low.replace("-", "."),
            low.replace("-", ""), low.replace("-", "--"), low.replace("-", "-_"),
            "".join(c.upper() if i % 2 else c for i, c in enumerate(low))}


# names an upstream could take as a claim: identities of this and other proxies, forwarded and
# client-address headers, client certificates, URL rewrites, method overrides
CLAIMS = ["Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "Remote-Addr", "X-Remote-User",
          "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username",
          "X-Forwarded-Access-Token", "X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert",
          "X-Forwarded-Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Uri", "X-Forwarded-Method",
          "X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server", "Forwarded",
          "X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Access-Token",
          "X-authentik-username", "X-authentik-groups", "X-Pomerium-Claim-Email", "X-Pomerium-Jwt-Assertion",
          "X-Goog-Authenticated-User-Email", "X-Amzn-Oidc-Identity", "X-MS-Client-Principal-Name",
          "Tailscale-User-Login", "Cf-Access-Authenticated-User-Email", "X-WEBAUTH-USER", "X-Userinfo",
          "X-User", "X-Email", "X-Groups", "X-Real-IP", "X-Client-IP", "True-Client-IP", "CF-Connecting-IP",
          "X-Cluster-Client-IP", "X-Original-URL", "X-Original-URI", "X-Original-Method", "X-Rewrite-URL",
          "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-SSL-Client-Cert", "SSL-Client-Cert"]
CLAIM_KEYS = {key(n) for n in CLAIMS}
# what the front itself adds to a proxied request (h2o's forwarded headers), and the auth's identity
EXPECTED = {"remoteuser": "developer", "remotegroups": "developers", "remotename": "Developer",
            "remoteemail": "dev@xtask.test", "xforwardedfor": "127.0.0.1", "xforwardedproto": "http"}


def upstream_claims():
    assert S.up.seen, "no request reached the upstream"
    out = []
    for r in S.up.seen:
        for k, v in header_lines(r["head"]):
            if key(k) in CLAIM_KEYS:
                out.append((k, v))
    return out


def test_identity_and_claim_aliases_never_reach_upstream():
    """Traefik CVE-2026-54763, CVE-2026-88011, CVE-2026-33433; Caddy CVE-2026-30851 (identity header
    aliases); Traefik CVE-2026-35051, oauth2-proxy CVE-2026-40575 / CVE-2026-76835, authentik
    CVE-2024-47070 (forwarded and other proxies' identity headers passed through)."""
    for name in CLAIMS:
        lines = b"".join(f"{sp}: evil-{i}\r\n".encode() for i, sp in enumerate(sorted(spellings(name))))
        lines += f"{name}: evil-dup\r\n{name}: evil-dup2\r\n".encode()  # duplicates
        # anonymous: nothing opens, nothing reaches the upstream
        S.up.clear()
        r = get(b"/app/x", extra=lines)
        assert first_status(r) == 401 and not S.up.seen, (name, r[:200])
        # signed in: the upstream sees the auth's identity and the front's own forwarding headers only
        S.up.clear()
        r = get(b"/app/x", extra=lines, cookie=CK)
        assert first_status(r) == 200, (name, r[:300])
        got = upstream_claims()
        for k, v in got:
            assert "evil" not in v, (name, k, v)
            assert EXPECTED.get(key(k)) == v, (name, k, v)
        assert sorted(key(k) for k, _ in got) == sorted(EXPECTED), (name, got)


def test_forwarded_host_never_changes_the_decision():
    """Authelia CVE-2021-32637 family, Pomerium CVE-2021-39206: a client's X-Forwarded-Host/-Uri or
    X-Original-URL must not move the auth decision to a public route."""
    for extra in [b"X-Forwarded-Uri: /health\r\n", b"X_Forwarded_Uri: /health\r\n", b"X-Original-URL: /health\r\n",
                  b"X-Rewrite-URL: /health\r\n", b"X-Forwarded-Host: public.other\r\n",
                  b"x.forwarded.host: public.other\r\n", b"X-Forwarded-Method: OPTIONS\r\n",
                  b"X-HTTP-Method-Override: OPTIONS\r\n"]:
        S.up.clear()
        r = get(b"/app/secret", extra=extra)
        assert first_status(r) == 401 and not S.up.seen, (extra, r[:200])


# --- brute force: a second auth service with a tight regulation ----------------------------------

REG_PORT = S.TLS + 1
REG_CFG = re.sub(r"regulation:\n(  .*\n)+", "regulation:\n  max_retries: 3\n  find_time: 1m\n  ban_time: 1m\n"
                 "  failure_delay: 1s\n", open(os.path.join(S.tmp.path, "auth.yml")).read())
REG_CFG = REG_CFG.replace(f":{S.AUTH}/", f":{REG_PORT}/").replace("hash_queue: 8", "hash_queue: 32")
REG_CFG = REG_CFG.replace("totp.yml", "reg-totp.yml")
REG_CFG_PATH = S.tmp.write("reg-auth.yml", REG_CFG)
REG = Proc([bin_path("xtask-auth"), "--config", REG_CFG_PATH])
wait_until(lambda: http_request(f"http://127.0.0.1:{REG_PORT}/api/health", timeout=1)[0] == 200, 15,
           what="regulated xtask-auth healthy")


def totp(secret_b32, t=None):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int((time.time() if t is None else t) // 30)), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return f"{(struct.unpack('>I', mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** 6:06d}"


def reg_post(path, body, cookie=None):
    h = {"Content-Type": "application/json", "Host": "auth.xtask.test"}
    if cookie:
        h["Cookie"] = cookie
    st, hd, b = http_request(f"http://127.0.0.1:{REG_PORT}{path}", "POST", h, json.dumps(body), timeout=10)
    m = re.search(r"authelia_session=([^;]+)", hd.get("set-cookie", ""))
    return st, ("authelia_session=" + m.group(1)) if m else None


def raw_login(user, password):
    """A sign-in sent on its own connection, its answer read later (many in flight at once)."""
    body = json.dumps({"username": user, "password": password}).encode()
    c = socket.create_connection(("127.0.0.1", REG_PORT), timeout=10)
    c.sendall(b"POST /api/firstfactor HTTP/1.1\r\nHost: auth.xtask.test\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return c


def read_status(c):
    out = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        out += d
    c.close()
    return first_status(out)


def test_parallel_guesses_each_counted():
    """Regulation sidestepped by concurrency (attempts checked before any is counted; Authelia
    CVE-2025-24806 family): ten wrong passwords in flight at once, then the right one. Only
    max_retries guesses may be checked; the right password arrives after them and must be refused."""
    wrong = [raw_login("developer", f"guess-{i}") for i in range(10)]
    right = raw_login("developer", DEV_PASS)
    assert read_status(right) == 401, "the right password got in past ten guesses in flight"
    assert all(read_status(c) == 401 for c in wrong)
    st, _ = reg_post("/api/firstfactor", {"username": "developer", "password": DEV_PASS})
    assert st == 401, st  # still banned


def test_totp_count_survives_a_first_factor_success():
    """Regulation sidestepped by the order of events: with the password known, wrong TOTP codes
    interleaved with fresh successful first factors (each success used to end the failure count)."""
    r = subprocess.run([bin_path("xtask-auth"), "totp-generate", "--user", "admin", "--config", REG_CFG_PATH],
                       capture_output=True, text=True, timeout=30)
    secret = re.search(r"secret=([A-Z2-7]+)", r.stdout).group(1)
    wait_until(lambda: reg_post("/api/firstfactor", {"username": "admin", "password": "adm-Pa55-s3cret"})[0] == 200,
               5, what="admin signs in")
    now = time.time()
    good = {totp(secret, now + d) for d in (-60, -30, 0, 30, 60)}
    bad = [f"{n:06d}" for n in range(100000, 100100) if f"{n:06d}" not in good]
    for round_ in range(3):
        st, ck = reg_post("/api/firstfactor", {"username": "admin", "password": "adm-Pa55-s3cret"})
        if st != 200:
            break  # banned: the first factor is refused too, which is the point
        for _ in range(2):
            st, _ = reg_post("/api/secondfactor/totp", {"token": bad.pop()}, cookie=ck)
            assert st == 401, st
    # six wrong codes within find_time: banned, the right code is refused
    st, ck = reg_post("/api/firstfactor", {"username": "admin", "password": "adm-Pa55-s3cret"})
    assert st == 401, ("first factor after six wrong TOTP codes", st)


def test_one_address_cannot_try_every_name_unslowed():
    """regulation.modes [user, ip] (Authelia 4.39): one client guessing at many names is banned itself,
    and its own successful sign-ins between the guesses do not end its count."""
    port = S.TLS + 2
    cfg = REG_CFG.replace(f":{REG_PORT}/", f":{port}/").replace("max_retries: 3", "max_retries: 3\n  modes: [user, ip]")
    cfg = cfg.replace("failure_delay: 1s", "failure_delay: 50ms").replace("reg-totp.yml", "ip-totp.yml")
    p = Proc([bin_path("xtask-auth"), "--config", S.tmp.write("ip-auth.yml", cfg)])
    try:
        wait_until(lambda: http_request(f"http://127.0.0.1:{port}/api/health", timeout=1)[0] == 200, 15,
                   what="xtask-auth (modes user, ip) healthy")

        def login(user, pw):
            return http_request(f"http://127.0.0.1:{port}/api/firstfactor", "POST",
                                {"Content-Type": "application/json"},
                                json.dumps({"username": user, "password": pw}), timeout=10)[0]
        for name in ["alice", "bob", "carol"]:
            assert login(name, "guess") == 401
            if name != "carol":
                assert login("developer", DEV_PASS) == 200  # the attacker's own account
        assert login("developer", DEV_PASS) == 401, "the address is not banned after three names"
        assert login("admin", "adm-Pa55-s3cret") == 401
    finally:
        out = p.output()
        p.kill()
    assert "address banned" in out, out[-2000:]


def test_unbuilt_settings_refused():
    """Settings Authelia has that decide who gets in are implemented or refused with file:line:col,
    never accepted and ignored: server.endpoints.authz is built (security_authz) but its `bearer`
    scheme needs OIDC and is refused; OIDC, WebAuthn, Duo are refused."""
    base = open(os.path.join(S.tmp.path, "auth.yml")).read()
    for extra, want in [
            ("  endpoints:\n    authz:\n      forward-auth:\n        implementation: ForwardAuth\n"
             "        authn_strategies: [{name: HeaderAuthorization, schemes: [bearer]}]\n",
             "server.endpoints.authz.forward-auth.authn_strategies: strategy 'HeaderAuthorization': scheme "
             "'bearer' needs an OpenID Connect provider"),
            (None, "identity_providers.oidc is not supported"), (None, "webauthn is not supported")]:
        if extra is not None:
            text = base.replace("server:\n", "server:\n" + extra, 1)
        elif "oidc" in want:
            text = base + "identity_providers:\n  oidc:\n    hmac_secret: x\n"
        else:
            text = base + "webauthn:\n  display_name: x\n"
        path = S.tmp.write("refused.yml", text)
        r = subprocess.run([bin_path("xtask-auth"), "check-config", "--config", path], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2, (want, r.returncode, r.stdout, r.stderr)
        assert re.search(r"refused\.yml:\d+:\d+: " + re.escape(want), r.stderr + r.stdout), (want, r.stderr)


def test_sessions_end_when_the_password_changes():
    """OWASP WSTG-SESS-03 / CWE-384 class: a session made with a password that has since been changed
    (users database reloaded) must end, here and on every instance sharing the session record."""
    users = os.path.join(S.tmp.path, "users.yml")
    old = open(users).read()
    ck, _ = S.login()
    ck2, _ = S.login()
    assert S.req("GET", "/app/p", headers={"Cookie": ck})[0] == 200
    try:
        new_hash = fast_hash("n3w-Pa55-s3cret")
        text = re.sub(r'(developer:\n(?:    .*\n)*?    password: )"[^"]*"', lambda m: m.group(1) + f'"{new_hash}"', old)
        assert text != old
        open(users + ".tmp", "w").write(text)
        os.replace(users + ".tmp", users)
        wait_until(lambda: S.req("GET", "/app/p", headers={"Cookie": ck})[0] == 401, 5,
                   what="the session made with the old password to end")
        assert S.req("GET", "/app/p", headers={"Cookie": ck2})[0] == 401
        # the new password opens a new session
        st, hd, _ = S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                          body={"username": "developer", "password": "n3w-Pa55-s3cret"})
        assert st == 200, st
    finally:
        open(users + ".tmp", "w").write(old)
        os.replace(users + ".tmp", users)
        wait_until(lambda: S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                                 body={"username": "developer", "password": DEV_PASS})[0] == 200, 5,
                   what="the old users database back")


def test_cross_site_requests_refused():
    """CSRF beyond SameSite (a sibling subdomain is the same site to a cookie): a request a foreign page
    can make (form or fetch, any content type) must not change state: the task API, logout, upstreams."""
    ck, _ = S.login()
    ours = f"http://{APP}:{S.WEB}"
    browser = [  # (headers a browser adds, content type): foreign pages
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, "application/x-www-form-urlencoded"),
        ({"Origin": "https://evil.example"}, "text/plain"),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, "multipart/form-data; boundary=x"),
        ({"Origin": "http://evil.xtask.test", "Sec-Fetch-Site": "same-site"}, "text/plain"),
        ({"Origin": f"http://{APP}.evil.example:{S.WEB}"}, "application/json"),
        ({"Sec-Fetch-Site": "cross-site"}, "application/json"),
    ]
    for hdrs, ctype in browser:
        h = dict(hdrs, Cookie=ck, **{"Content-Type": ctype})
        S.up.clear()
        st, _, b = S.req("POST", "/app/change", headers=h, body='{"a":1}')
        assert st == 403 and not S.up.seen, (hdrs, ctype, st, b)
        st, _, b = S.req("POST", "/api/v1/tasks", headers=h, body='{"node":"n","task":"noop"}')
        assert st == 403 and b"cross_site" in b, (hdrs, ctype, st, b)
        st, _, b = S.req("POST", "/api/logout", headers=h, body="{}")
        assert st == 403, (hdrs, st, b)
        assert S.req("GET", "/app/still", headers={"Cookie": ck})[0] == 200, "a cross-site logout ended the session"
    # the same page, a CLI, and safe methods still work
    for hdrs in [{"Origin": ours, "Sec-Fetch-Site": "same-origin"}, {"Origin": f"https://{APP}"}, {}]:
        S.up.clear()
        st, _, b = S.req("POST", "/app/change", headers=dict(hdrs, Cookie=ck), body='{"a":1}')
        assert st == 200 and len(S.up.seen) == 1, (hdrs, st, b)
    st, _, _ = S.req("GET", "/app/read", headers={"Cookie": ck, "Origin": "https://evil.example",
                                                  "Sec-Fetch-Site": "cross-site"})
    assert st == 200, st
    # the portal's own form posts to itself
    st, _, b = S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                     headers={"Origin": f"http://auth.xtask.test:{S.WEB}", "Sec-Fetch-Site": "same-origin"},
                     body={"username": "developer", "password": DEV_PASS})
    assert st == 200, (st, b)


def test_query_and_fragment_never_open_a_bypass():
    """oauth2-proxy CVE-2025-54576 class (a skip-auth regex matched against the query string): the
    public /health rule must not open /app/... because the query, a matrix parameter or an encoded
    separator names /health. Not affected: rules are anchored and the path is canonical."""
    for target in [b"/app/x?/health", b"/app/x?x=/health", b"/app/x;/health", b"/app/x%3f/health",
                   b"/app/x%23/health", b"/health/../app/x", b"/health%2f..%2fapp/x", b"/app/x?%2fhealth"]:
        S.up.clear()
        r = get(target)
        assert first_status(r) in (400, 401) and not S.up.seen, (target, r[:200])


def test_redirect_target_tricks():
    """The `/\\` and `/\\t` redirect family and oauth2-proxy CVE-2021-21291 (a domain allow-list
    matched by suffix): no sign-in or logout redirect leaves the session domain."""
    web = S.WEB
    bad = ["/\\evil.example", "/\\\tevil.example", "/\t/evil.example", "\\\\evil.example/", "//evil.example",
           "https://evilxtask.test/", "https://xtask.test.evil.example/", f"http://{APP}.evil.example:{web}/",
           f"http://{APP}@evil.example/", "https://evil.example/.xtask.test", "https:/\\evil.example",
           "http://evil.example\\@xtask.test/", "/%5cevil.example", "/%09/evil.example"]
    for rd in bad:
        st, hd, body = S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                             body={"username": "developer", "password": DEV_PASS, "targetURL": rd})
        assert st == 200 and b"evil" not in body, (rd, st, body)
        q = urllib.parse.quote(rd, safe="")
        st, hd, _ = S.req("POST", "/api/logout", host="auth.xtask.test", body=f"rd={q}",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert "evil" not in hd.get("location", ""), (rd, st, hd)


def test_trusted_proxy_only_its_own_forwarded_entry():
    """Behind a trusted proxy (Fly's edge), the client's own X-Forwarded-For entries precede the one
    the proxy appended: only that last entry may stand for the client (audit trail, regulation by
    address), and the other forwarded spellings and headers are still stripped."""
    t = Stack("xt-secadv-trusted-", trusted="[127.0.0.1/32]")
    try:
        ck, _ = t.login()
        t.up.clear()
        r = raw(t.WEB, b"GET /app/t HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nCookie: " + ck.encode() +
                b"\r\nX-Forwarded-For: 6.6.6.6, 7.7.7.7\r\nX-Forwarded-For: 8.8.8.8,  203.0.113.9 \r\n"
                b"X_Forwarded_For: 9.9.9.9\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
                b"Connection: close\r\n\r\n")
        assert first_status(r) == 200, r[:300]
        got = [(k.lower(), v) for k, v in header_lines(t.up.seen[0]["head"]) if key(k) in CLAIM_KEYS]
        xff = [v for k, v in got if k == "x-forwarded-for"]
        assert xff == ["203.0.113.9, 127.0.0.1"], got
        assert not any(k in ("x-real-ip", "x_forwarded_for") for k, _ in got), got
    finally:
        t.stop()


def test_a_ban_ends_the_users_sessions():
    """WSTG-SESS-03: regulation banning a user ends the sessions that user holds (whoever completed
    the ban may already hold one). The main stack: max_retries 30, ban_time 3s."""
    ck, _ = S.login()
    assert S.req("GET", "/app/b", headers={"Cookie": ck})[0] == 200
    for i in range(30):
        st = http_request(f"http://127.0.0.1:{S.AUTH}/api/firstfactor", "POST", {"Content-Type": "application/json"},
                          json.dumps({"username": "developer", "password": f"wrong-{i}"}), timeout=10)[0]
        assert st == 401, st
    assert S.req("GET", "/app/b", headers={"Cookie": ck})[0] == 401, "the session outlived the ban"
    wait_until(lambda: http_request(f"http://127.0.0.1:{S.AUTH}/api/firstfactor", "POST",
                                    {"Content-Type": "application/json"},
                                    json.dumps({"username": "developer", "password": DEV_PASS}))[0] == 200, 10,
               what="the ban to end")



# --- the six advisories replayed last: path, host, malformed-request and forwarded-address classes --

def verify(headers, cookie=None, path=b"/api/verify"):
    """A forward-auth question sent straight to the auth service (as nginx auth_request, Traefik or
    Caddy would send it: any front, not only ours), exact bytes; returns the status."""
    h = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    if cookie:
        h += b"Cookie: " + cookie + b"\r\n"
    return first_status(raw(S.AUTH, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n" +
                            h + b"Connection: close\r\n\r\n"))


def fwd(uri=b"/app/x", host=APP.encode(), method=b"GET", proto=b"http"):
    return [(b"X-Forwarded-Method", method), (b"X-Forwarded-Proto", proto), (b"X-Forwarded-Host", host),
            (b"X-Forwarded-Uri", uri)]


_TRUSTED = []


def trusted_stack():
    """One stack whose front trusts 127.0.0.1 as a proxy (started on first use, stopped at the end)."""
    if not _TRUSTED:
        _TRUSTED.append(Stack("xt-secadv-tp-", trusted="[127.0.0.1/32]"))
    return _TRUSTED[0]


def test_authelia_cve_2021_29456():
    """Authelia CVE-2021-29456 (GHSA-68wm-pfjf-wqp6, fixed in 4.29.3): behind nginx auth_request a
    malformed request made /api/verify answer 200 (the fix's title: "verify returns 200 on malformed
    request"). Class: a forward-auth question the auth service cannot read must never be allowed.
    Not affected: every unreadable X-Forwarded-* (missing, empty, bad method, scheme, host, port,
    escape, control byte, fragment, relative or absolute URI, too long) gets 400 or 401 on both
    endpoints, anonymous and signed in (the signed-in user asks for a denied path); and the front
    refuses malformed targets before asking anything (nothing reaches the upstream)."""
    ck = S.login()[0].encode()  # the ban case before ended the module's session
    bad = [fwd()[:3], fwd()[1:], fwd(uri=b""), fwd(uri=b"app/x"), fwd(uri=b"http://app.xtask.test/health"),
           fwd(uri=b"/app/x%zz"), fwd(uri=b"/app/%00/x"), fwd(uri=b"/app/x#/health"), fwd(uri=b"/app/x\x7f"),
           fwd(uri=b"/app/x\t/health"), fwd(uri=b"/app/%2fhealth"), fwd(uri=b"/app/" + b"a" * 9000),
           fwd(host=b""), fwd(host=b"app.xtask.test:99999"), fwd(host=b"app..xtask.test"),
           fwd(host=b"app.xtask.test/health"), fwd(host=b"app.xtask.test@evil.example"), fwd(host=b"evil.example"),
           fwd(method=b""), fwd(method=b"get"), fwd(method=b"G ET"), fwd(proto=b""), fwd(proto=b"ftp"),
           fwd() + [(b"X-Forwarded-Uri", b"/health")], fwd() + [(b"X-Forwarded-Host", b"evil.example")]]
    for path in (b"/api/verify", b"/api/authz/forward-auth"):
        for hs in bad:
            st = verify(hs, path=path)
            assert st in (400, 401, 403), (path, hs, st)
            hs2 = [(k, v.replace(b"/app/x", b"/app/admin")) for k, v in hs]
            st = verify(hs2, cookie=ck, path=path)
            assert st in (400, 401, 403), (path, hs2, st)
        # the well-formed questions are answered as usual (the cases above are not refused wholesale)
        assert verify(fwd(), path=path) == 401 and verify(fwd(), cookie=ck, path=path) == 200
        assert verify(fwd(uri=b"/app/admin"), cookie=ck, path=path) == 403
    for target in [b"app/x", b"/app/x%zz", b"/app/%00", b"/app/x\x01", b"*", b"/app/%2e%2e%2f%2e%2e/x"]:
        S.up.clear()
        r = S.raw(b"GET " + target + b" HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nCookie: " + ck +
                  b"\r\nConnection: close\r\n\r\n")
        assert first_status(r) in (400, 401, 404) and not S.up.seen, (target, r[:200])


def test_pomerium_cve_2023_33189():
    """Pomerium CVE-2023-33189 (GHSA-pvrc-wvj2-f59p): "with specially crafted requests, incorrect
    authorization decisions may be made". The fix (pomerium d315e68) evaluates the policy of the route
    Envoy actually chose ("use route id from envoy"), normalizes query parameters and turns on
    normalize_path. Class: the decision must be about the route that serves the request. Affected
    before this change: h2o serves a Host naming no configured host (unknown name, trailing dot) with
    the first host's routes, but the auth service was asked about the Host as sent: `nosuch.xtask.test`
    matched the `*.xtask.test` rule and opened /app/admin, which a rule for app.xtask.test denies.
    Fixed: the front asks about the name of the host whose routes serve (its first name when the
    Host, or a trusted proxy's X-Forwarded-Host, names none of its names)."""
    ck = S.login()[0].encode()  # the ban case before ended the module's session
    assert first_status(get(b"/app/admin", cookie=ck)) == 403
    hosts = ["APP.XTASK.TEST", "app.xtask.test.", f"app.xtask.test:{S.WEB}", "App.Xtask.Test.:80",
             "nosuch.xtask.test", "xtask.test", "auth2.xtask.test", "app.xtask.test..", "localhost", "127.0.0.1"]
    targets = [b"/app/admin", b"/app/admin/x", b"/app/ok/../admin", b"/app//admin", b"/app/%61dmin",
               b"/app/admin?x=/app/ok", b"/app/./admin/"]
    for host in hosts:
        for t in targets:
            S.up.clear()
            r = get(t, cookie=ck, host=host.encode())
            assert first_status(r) in (400, 401, 403) and not S.up.seen, (host, t, r[:200])
    # a trusted proxy naming another host than the one routed to does not move the decision either
    tp = trusted_stack()
    ck, _ = tp.login()
    for xfh in [b"other.xtask.test", b"nosuch.xtask.test", b"APP.XTASK.TEST", b"auth.xtask.test"]:
        tp.up.clear()
        r = raw(tp.WEB, b"GET /app/admin HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nCookie: " + ck.encode() +
                b"\r\nX-Forwarded-Host: " + xfh + b"\r\nConnection: close\r\n\r\n")
        assert first_status(r) == 403 and not tp.up.seen, (xfh, r[:200])
    tp.up.clear()
    r = raw(tp.WEB, b"GET /app/x HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nCookie: " + ck.encode() +
            b"\r\nX-Forwarded-Host: nosuch.xtask.test\r\nConnection: close\r\n\r\n")
    assert first_status(r) == 200 and len(tp.up.seen) == 1, r[:300]


def test_heimdall_ghsa_3q34_rx83_r6mq():
    """heimdall GHSA-3q34-rx83-r6mq (CVE-2026-42274, fixed in 0.17.14): rules matched on the raw path
    while the upstream normalizes dot-segments, so /public/../user/x (also %2e%2e, and %2e%2e%2f with
    encoded slashes allowed) ran the public rule. Not affected: the front and the auth service read the
    path with the one xt_path_normalize (dot-segments resolved after decoding unreserved escapes,
    encoded slashes and backslashes refused), so the decision, the route and the upstream see the same
    path. Proved through the front (anonymous and signed in) and straight at the auth service with the
    raw path a front that forwards $request_uri would send."""
    ck = S.login()[0].encode()  # the ban case before ended the module's session
    traversals = [b"/health/../app/x", b"/health/%2e%2e/app/x", b"/health/.%2E/app/x", b"/health/%2E./app/x",
                  b"//health/../app/x", b"/health/./../app/x", b"/health/x/../../app/x", b"/health;/../app/x",
                  b"/health/%2e%2e%2fapp/x", b"/health/..%2fapp/x", b"/health/..%5capp/x", b"/health/..\\app/x",
                  b"/health/..;/app/x", b"/health/%252e%252e/app/x"]
    for t in traversals:
        S.up.clear()
        r = get(t)  # (a double escape stays literal: /health/%252e%252e/app/x is /health's own answer)
        assert first_status(r) in (200, 400, 401) and not S.up.seen and b"X-Upstream" not in r, (t, r[:200])
        S.up.clear()
        r = get(t, cookie=ck)
        if first_status(r) == 200 and b"X-Upstream" in r:  # what opened is what is served: the canonical path
            assert [x["head"].split(" ")[1] for x in S.up.seen] == ["/app/x"], (t, S.up.seen)
        elif first_status(r) == 200:
            assert not S.up.seen, (t, S.up.seen)
        else:
            assert first_status(r) in (400, 404) and not S.up.seen, (t, r[:200])
        if b"%25" not in t:  # a double escape is /health's own path, rightly public
            assert verify(fwd(uri=t)) in (400, 401), t
    # a deny rule cannot be walked around either
    for t in [b"/app/x/../admin", b"/app/%2e%2e/app/admin", b"/health/../app/admin", b"/app/./admin"]:
        assert verify(fwd(uri=t), cookie=ck) == 403, t


def test_heimdall_ghsa_38x9_25wx_7fg2():
    """heimdall GHSA-38x9-25wx-7fg2 (CVE-2026-57210, fixed in 0.17.17): with trusted_proxies set, the
    client addresses taken from X-Forwarded-For / Forwarded were not checked to be addresses ("unknown",
    obfuscated names, ports, quoted fragments split on ',') and went to rules and upstreams. Affected
    before this change: the front kept a trusted proxy's last X-Forwarded-For entry whatever it was,
    and the auth service took the first entry as the client (audit, regulation.modes ip). Fixed: the
    front keeps that entry only if it is an IP address, else the peer stands for the client; the auth
    service takes an address only. Forwarded is never read (and always stripped)."""
    tp = trusted_stack()
    ck, _ = tp.login()
    cases = [(b"unknown", None), (b"_hidden", None), (b'1.2.3.4"', None), (b"1.2.3.4:80", None),
             (b"999.1.1.1", None), (b'"[2001:db8::1]:80"', None), (b"[2001:db8::1]", None),
             (b"1.2.3.4 5.6.7.8", None), (b"6.6.6.6, unknown", None), (b"203.0.113.9", "203.0.113.9"),
             (b"6.6.6.6, 2001:db8::7", "2001:db8::7"), (b"unknown, 203.0.113.9", "203.0.113.9")]
    for xff, kept in cases:
        want = [f"{kept}, 127.0.0.1" if kept else "127.0.0.1"]
        extra = b"X-Forwarded-For: " + xff + b'\r\nForwarded: for="1.2.3.4,5.6.7.8";proto=https\r\n'
        tp.up.clear()
        r = raw(tp.WEB, b"GET /app/x HTTP/1.1\r\nHost: " + APP.encode() + b"\r\nCookie: " + ck.encode() + b"\r\n" +
                extra + b"Connection: close\r\n\r\n")
        assert first_status(r) == 200, (xff, r[:300])
        got = [(k.lower(), v) for k, v in header_lines(tp.up.seen[0]["head"]) if key(k) in ("xforwardedfor", "forwarded")]
        assert got == [("x-forwarded-for", want[0])], (xff, got)
        # the forward-auth question carries the same single address (the fake auth records it)
        tp.fake.requests.clear()
        r = raw(tp.WEB, b"GET /app/x HTTP/1.1\r\nHost: fake.xtask.test\r\n" + extra + b"Connection: close\r\n\r\n")
        assert first_status(r) == 200 and tp.fake.requests, (xff, r[:200])
        asked = [v for k, v in header_lines(tp.fake.requests[-1]) if k.lower() in ("x-forwarded-for", "forwarded")]
        assert asked == want, (xff, asked)


def test_ory_oathkeeper_cve_2026_33494():
    """Ory Oathkeeper CVE-2026-33494 (GHSA-p224-6x5r-fjpm, fixed in v26.2.0): rules matched the raw
    path, so /public/../admin/secrets ran the permissive /public/<.*> rule and the upstream served
    /admin/secrets. Not affected, with the advisory's exact shape: our public route is /health and
    /app/admin is denied; /health/../app/admin/secrets is decided (and served) as /app/admin/secrets,
    through the front and straight at the auth's decision API."""
    ck = S.login()[0].encode()  # the ban case before ended the module's session
    shape = [b"/health/../app/admin/secrets", b"/health/%2e%2e/app/admin/secrets",
             b"/health/%2E%2E/app/admin/secrets", b"/health/..%2F/app/admin/secrets"]
    for t in shape:
        S.up.clear()
        assert first_status(get(t)) in (400, 401) and not S.up.seen, t
        assert first_status(get(t, cookie=ck)) in (400, 403) and not S.up.seen, t
        for path in (b"/api/verify", b"/api/authz/forward-auth"):
            assert verify(fwd(uri=t), path=path) in (400, 401, 403), (t, path)
            assert verify(fwd(uri=t), cookie=ck, path=path) in (400, 401, 403), (t, path)


def test_tinyauth_cve_2026_137182():
    """tinyauth CVE-2026-137182: no advisory text under this ID was found (searched: the issues, pages
    and docs corpora, the tinyauth repositories). The tinyauth forward-auth advisories found are
    GHSA-328g-jx67-v94g (CVE-2026-77560, < 5.1.2: the per-app ACL matched case-sensitively against the
    case-insensitive host name, so another spelling of the host escaped its allow-list) and
    GHSA-9xhm-w3wj-xhqh (CVE-2026-77561: 257 bogus user names filled the login-attempt map and locked
    every user out). Both classes tested. Not affected: host names are folded (case, port) before the
    rules and a trailing dot is refused; regulation is per name, so a flood of names locks no one else
    out."""
    ck = S.login()[0].encode()  # the ban case before ended the module's session
    for host in [b"APP.XTASK.TEST", b"App.Xtask.Test", b"app.xtask.test:443", b"APP.xtask.test:80",
                 b"app.xtask.test.", b"app.xtask.test.:443", b"app.XTASK.test"]:
        st = verify(fwd(uri=b"/app/admin", host=host), cookie=ck)
        assert st in (400, 401, 403), (host, st)
        st = verify(fwd(uri=b"/app/admin", host=host), cookie=ck, path=b"/api/authz/forward-auth")
        assert st in (400, 401, 403), (host, st)
    # a flood of unknown names (more than tinyauth's 256) then the real user signs in at once
    import concurrent.futures

    def bogus(i):
        return http_request(f"http://127.0.0.1:{S.AUTH}/api/firstfactor", "POST", {"Content-Type": "application/json"},
                            json.dumps({"username": f"nobody{i}", "password": "x"}), timeout=15)[0]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        sts = list(ex.map(bogus, range(300)))
    assert set(sts) <= {401, 503}, set(sts)
    st, _, _ = S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                     body={"username": "developer", "password": DEV_PASS})
    assert st == 200, st

for t in [test_identity_and_claim_aliases_never_reach_upstream, test_forwarded_host_never_changes_the_decision,
          test_parallel_guesses_each_counted, test_totp_count_survives_a_first_factor_success,
          test_one_address_cannot_try_every_name_unslowed, test_unbuilt_settings_refused,
          test_sessions_end_when_the_password_changes, test_cross_site_requests_refused,
          test_query_and_fragment_never_open_a_bypass, test_redirect_target_tricks,
          test_trusted_proxy_only_its_own_forwarded_entry, test_a_ban_ends_the_users_sessions,
          test_authelia_cve_2021_29456, test_pomerium_cve_2023_33189, test_heimdall_ghsa_3q34_rx83_r6mq,
          test_heimdall_ghsa_38x9_25wx_7fg2, test_ory_oathkeeper_cve_2026_33494, test_tinyauth_cve_2026_137182]:
    T.case(t)
if T.failed:
    print("---- regulated auth ----\n" + REG.output()[-3000:])
REG.kill()
for t in _TRUSTED:
    t.stop()
T.finish()
