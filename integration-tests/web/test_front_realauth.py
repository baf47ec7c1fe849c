#!/usr/bin/env python3
"""xtask-web in front of the real xtask-auth (services/auth): login through the portal host, the
forward-auth answers for each rule, identity spoofing, traversal, logout through the front.
Fails when xtask-auth is not built."""
import json
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webtest import Upstream, gui_root, web_config  # noqa: E402
from xt_testlib import (NatsServer, Proc, TempDir, bin_path, fast_hash, http_request, port_block,  # noqa: E402
                        wait_until)

AUTH_BIN = bin_path("xtask-auth")  # FileNotFoundError (test fails) when it was not built

P = port_block("web")
WEB, AUTH, UP, NATS, NATS_HTTP = P[0], P[1], P[2], P[3], P[4]
DOMAIN = "xtask.test"
APP, PORTAL_HOST = f"app.{DOMAIN}", f"auth.{DOMAIN}"
PORTAL = f"http://{PORTAL_HOST}:{WEB}/"
tmp = TempDir("xt-webra-")




users = tmp.write("users.yml", f"""users:
  developer:
    displayname: "Developer"
    password: "{fast_hash('dev-pass')}"
    email: dev@{DOMAIN}
    groups: [developers]
  ci:
    displayname: "CI"
    password: "{fast_hash('ci-pass')}"
    email: ci@{DOMAIN}
    groups: [automation]
""")
auth_cfg = tmp.write("auth.yml", f"""
server:
  address: "tcp://127.0.0.1:{AUTH}/"
  hash_workers: 1
  hash_queue: 8
log: {{level: info}}
totp: {{issuer: {DOMAIN}, secrets_path: "{tmp.path}/totp.yml"}}
authentication_backend:
  file:
    path: "{users}"
    password: {{argon2: {{iterations: 1, memory: 1024, parallelism: 1}}}}
access_control:
  default_policy: deny
  rules:
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: bypass
      resources: ["^/health([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: two_factor
      subject: "group:admins"
      resources: ["^/nats([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: one_factor
      subject: "group:developers"
      resources: ["^/web([/?].*)?$", "^/api([/?].*)?$", "^/events([/?].*)?$", "^/app([/?].*)?$", "^/static([/?].*)?$"]
session:
  domain: {DOMAIN}
  authelia_url: "{PORTAL}"
  secret: "0123456789abcdef0123456789abcdef"
  allow_http: true
regulation:
  max_retries: 5
  find_time: 10s
  ban_time: 3s
  failure_delay: 100ms
""")
os.makedirs(os.path.join(tmp.path, "static"), exist_ok=True)
nats = NatsServer(NATS, NATS_HTTP, os.path.join(tmp.path, "nats")).start()
auth = Proc([AUTH_BIN, "--config", auth_cfg])
wait_until(lambda: http_request(f"http://127.0.0.1:{AUTH}/api/health", timeout=1)[0] == 200, 15, what="xtask-auth healthy")
up = Upstream(UP).start()
cfg = web_config(os.path.join(tmp.path, "web.yaml"), listen=f"127.0.0.1:{WEB}", auth_port=AUTH, upstream_port=UP,
                 nats_port=NATS, nats_http_port=NATS_HTTP, gui_root=gui_root(), static_root=os.path.join(tmp.path, "static"),
                 portal_url=PORTAL, domain=DOMAIN, trusted="[127.0.0.1/32]", threads=1)
web = Proc([bin_path("xtask-web"), "--config", cfg])
web.wait_output(r"ready", 10)
BASE = f"http://127.0.0.1:{WEB}"
wait_until(lambda: http_request(BASE + "/health", headers={"Host": APP})[0] == 200, 10, what="/health")


def req(method, path, host=APP, headers=None, body=None):
    h = {"Host": host}
    h.update(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    return http_request(BASE + path, method, h, body, timeout=10)


def login(user, password):
    st, hd, body = req("POST", "/api/firstfactor", host=PORTAL_HOST,
                       body={"username": user, "password": password, "targetURL": f"http://{APP}:{WEB}/web/"})
    assert st == 200, (st, hd, body)
    m = re.search(r"authelia_session=([^;]+)", hd.get("set-cookie", ""))
    assert m, hd
    return "authelia_session=" + m.group(1)


FAILED = []


def case(fn):
    t0 = time.monotonic()
    try:
        fn()
        print(f"ok   {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - report every case
        FAILED.append(fn.__name__)
        traceback.print_exc()
        print(f"FAIL {fn.__name__}: {e!r}", flush=True)


DEV = None


def test_portal_and_login_through_front():
    global DEV
    st, hd, body = req("GET", "/web/", headers={"Accept": "text/html"})
    assert st == 302, (st, hd)
    assert hd["location"].startswith(PORTAL) and "rd=" in hd["location"], hd
    st, _, body = req("GET", "/?rd=x", host=PORTAL_HOST, headers={"Accept": "text/html"})
    assert st == 200 and b"<form" in body, (st, body[:200])
    DEV = login("developer", "dev-pass")


def test_allowed_identity_from_real_auth():
    st, _, body = req("GET", "/app/hello", headers={"Cookie": DEV})
    assert st == 200, (st, body[:200])
    rec = json.loads(body)
    hs = {k: v for k, v in rec["headers"]}
    assert hs.get("remote-user") == "developer" and hs.get("remote-groups") == "developers", rec["headers"]
    st, _, body = req("GET", "/web/", headers={"Cookie": DEV})
    assert st == 200 and b"datastar" in body, st


def test_401_403_and_spoofing():
    assert req("GET", "/api/v1/nodes", headers={"Accept": "application/json"})[0] == 401
    assert req("GET", "/api/v1/nodes", headers={"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"})[0] == 401
    assert req("GET", "/nats/varz", headers={"Cookie": DEV})[0] in (401, 403)
    ci = login("ci", "ci-pass")
    assert req("GET", "/web/", headers={"Cookie": ci})[0] == 403
    for name in ["Remote-User", "remote_user", "REMOTE-USER", "Remote_Groups"]:
        st, _, body = req("GET", "/app/s", headers={"Cookie": DEV, name: "admin"})
        hs = json.loads(body)["headers"]
        assert st == 200 and [v for k, v in hs if k == "remote-user"] == ["developer"], (name, hs)
        assert not any("_" in k and k.startswith("remote") for k, v in hs), hs
        assert req("GET", "/app/s", headers={name: "admin", "Accept": "application/json"})[0] == 401


def test_traversal_with_real_rules():
    for p in ["/health/../nats/varz", "/health/%2e%2e/nats/varz", "//nats/varz", "/health/..%2fnats/varz"]:
        st, _, body = req("GET", p, headers={"Accept": "application/json"})
        assert st in (400, 401) and b"server_id" not in body, (p, st)


def test_trusted_proxy_forwarded_headers():
    # this front trusts 127.0.0.1 (as Fly's edge would be): its X-Forwarded-Proto/Host reach the auth
    # service, which builds the login redirect from them
    st, hd, _ = req("GET", "/web/", headers={"Accept": "text/html", "X-Forwarded-Proto": "https",
                                             "X-Forwarded-Host": f"app.{DOMAIN}"})
    assert st == 302 and "rd=https%3A%2F%2Fapp.xtask.test%2Fweb%2F" in hd["location"], hd


def test_logout_through_front():
    st, hd, _ = req("POST", "/api/logout", headers={"Cookie": DEV, "Content-Type": "application/json"}, body="{}")
    assert st == 200, (st, hd)
    assert req("GET", "/app/x", headers={"Cookie": DEV, "Accept": "application/json"})[0] == 401


for t in [test_portal_and_login_through_front, test_allowed_identity_from_real_auth, test_401_403_and_spoofing,
          test_traversal_with_real_rules, test_trusted_proxy_forwarded_headers, test_logout_through_front]:
    case(t)
if FAILED:
    print(web.output()[-3000:])
    print(auth.output()[-3000:])
web.kill()
auth.kill()
up.stop()
nats.stop()
tmp.cleanup()
print(f"{6 - len(FAILED)} passed, {len(FAILED)} failed")
sys.exit(1 if FAILED else 0)
