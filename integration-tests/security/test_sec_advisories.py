#!/usr/bin/env python3
"""Security: published forward-auth advisories of the anchors (Traefik, Caddy, oauth2-proxy,
authentik, Authelia, Pomerium, heimdall, Oathkeeper, tinyauth) replayed as classes against the real
front (xtask-web) and the real auth (xtask-auth) over loopback. Each case names the advisories it
covers; docs/SECURITY.md ("Advisories") maps each one to its case."""
import os
import re
import sys
import threading
import urllib.parse

os.environ.setdefault("XT_PORT_OFFSET", "740")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seclib import APP, DEV_PASS, PORTAL_HOST, Runner, Stack, first_status, header_lines  # noqa: E402
from xt_testlib import fast_hash, http_request, wait_until  # noqa: E402

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


for t in [test_identity_and_claim_aliases_never_reach_upstream, test_forwarded_host_never_changes_the_decision]:
    T.case(t)
T.finish()
