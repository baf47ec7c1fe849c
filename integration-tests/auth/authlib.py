"""Helpers for the xtask-auth integration tests (Python standard library only).

    srv = AuthServer(tmp, port, rules=..., users=..., extra=...).start()
    st, hd, body = srv.verify("/web/", cookie=c)
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import struct
import subprocess
import time
import urllib.parse

from xt_testlib import Proc, bin_path, fast_hash, http_request, wait_until  # noqa: F401 (fast_hash re-exported)

DOMAIN = "example.com"
PORTAL = "https://auth.example.com/"
FAILED = []


def case(fn):
    """Run one test function, report it, keep going; the script exits 1 at the end if any failed."""
    t0 = time.monotonic()
    try:
        fn()
        print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - report every case
        FAILED.append(fn.__name__)
        import traceback
        traceback.print_exc()
        print(f"FAIL {fn.__name__}: {e}", flush=True)




def totp(secret_b32, t=None, step=30, digits=6):
    """RFC 6238 TOTP (SHA1) computed here, independently of the service."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if t is None else t) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


def users_yaml(users):
    """users: {name: {password: hash, groups: [...], displayname, email, disabled}}"""
    lines = ["users:"]
    for name, u in users.items():
        lines.append(f"  {name}:")
        lines.append(f"    displayname: \"{u.get('displayname', name.title())}\"")
        lines.append(f"    password: \"{u['password']}\"")
        lines.append(f"    email: {u.get('email', name + '@' + DOMAIN)}")
        lines.append(f"    groups: [{', '.join(u.get('groups', []))}]")
        if u.get("disabled"):
            lines.append("    disabled: true")
    return "\n".join(lines) + "\n"


DEFAULT_RULES = """
access_control:
  default_policy: deny
  rules:
    - domain: "public.example.com"
      policy: bypass
    - domain: ["example.com", "*.example.com"]
      policy: bypass
      resources: ["^/health([/?].*)?$"]
    - domain: ["example.com", "*.example.com"]
      policy: deny
      resources: ["^/secret.*"]
    - domain: ["example.com", "*.example.com"]
      policy: two_factor
      subject: "group:admins"
    - domain: ["example.com", "*.example.com"]
      policy: one_factor
      subject: ["group:developers", "user:ci"]
      resources: ["^/web([/?].*)?$", "^/api([/?].*)?$"]
"""


class AuthServer:
    def __init__(self, tmp, port, users, rules=DEFAULT_RULES, session_extra="", extra="", name="auth",
                 secret="0123456789abcdef0123456789abcdef", env=None):
        self.tmp, self.port, self.name, self.env = tmp, port, name, env
        self.users_path = tmp.write(f"{name}-users.yml", users_yaml(users))
        self.totp_path = os.path.join(tmp.path, f"{name}-totp.yml")
        self.config = tmp.write(f"{name}.yml", f"""
server:
  address: "tcp://127.0.0.1:{port}/"
  hash_workers: 2
  hash_queue: 8
log: {{level: debug}}
totp: {{issuer: example.com, secrets_path: "{self.totp_path}"}}
authentication_backend:
  file:
    path: "{self.users_path}"
    password: {{argon2: {{iterations: 1, memory: 1024, parallelism: 1}}}}
{rules}
session:
  domain: example.com
  authelia_url: "{PORTAL}"
  secret: "{secret}"
{session_extra}
regulation:
  max_retries: 3
  find_time: 10s
  ban_time: 3s
  failure_delay: 300ms
{extra}
""")
        self.proc = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self, timeout=15):
        self.proc = Proc([bin_path("xtask-auth"), "--config", self.config],
                         env=dict(os.environ, **self.env) if self.env else None)
        wait_until(lambda: http_request(self.base + "/api/health", timeout=1)[0] == 200, timeout,
                   what=f"{self.name} healthy")
        return self

    def stop(self):
        if self.proc:
            self.proc.kill()

    def write_users(self, users):
        tmp = self.users_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(users_yaml(users))
        os.replace(tmp, self.users_path)

    def cli(self, *args, input=None):
        return subprocess.run([bin_path("xtask-auth"), *args, "--config", self.config], input=input,
                              capture_output=True, text=True, timeout=30)

    # --- requests -------------------------------------------------------------------------------

    def verify(self, uri, cookie=None, method="GET", host="app.example.com", proto="https",
               accept="text/html,application/xhtml+xml", endpoint="/api/verify", headers=None, query=""):
        h = {"X-Forwarded-Method": method, "X-Forwarded-Proto": proto, "X-Forwarded-Host": host,
             "X-Forwarded-Uri": uri}
        if accept is not None:
            h["Accept"] = accept
        if cookie:
            h["Cookie"] = f"authelia_session={cookie}"
        if headers:
            h.update(headers)
        h = {k: v for k, v in h.items() if v is not None}
        return http_request(self.base + endpoint + query, headers=h)

    def post_json(self, path, body, cookie=None, timeout=5.0):
        h = {"Content-Type": "application/json"}
        if cookie:
            h["Cookie"] = f"authelia_session={cookie}"
        st, hd, data = http_request(self.base + path, "POST", h, json.dumps(body), timeout=timeout)
        return st, hd, (json.loads(data) if data else None)

    def post_form(self, path, fields, cookie=None, headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            h["Cookie"] = f"authelia_session={cookie}"
        if headers:
            h.update(headers)
        return http_request(self.base + path, "POST", h, urllib.parse.urlencode(fields))

    def login(self, user, password, target=None, keep=False, timeout=5.0):
        body = {"username": user, "password": password, "keepMeLoggedIn": keep}
        if target:
            body["targetURL"] = target
        st, hd, js = self.post_json("/api/firstfactor", body, timeout=timeout)
        return st, hd, js, cookie_of(hd)

    def state(self, cookie):
        st, hd, data = http_request(self.base + "/api/state", headers={"Cookie": f"authelia_session={cookie}"})
        return json.loads(data)["data"]


def cookie_of(hd):
    """The session id from a Set-Cookie answer, or None ('' when the cookie is cleared)."""
    sc = hd.get("set-cookie")
    if sc is None:
        return None
    m = re.search(r"authelia_session=([^;]*)", sc)
    return m.group(1) if m else None


def keepalive_requests(port, n, path, headers):
    """n requests over one keep-alive connection; returns the statuses."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    try:
        for _ in range(n):
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            out.append(r.status)
    finally:
        conn.close()
    return out
