#!/usr/bin/env python3
"""The login portal in Debian's chromium (playwright-core), behind the real xtask-web TLS front:
truthful messages (wrong password, wrong code, used code, locked out with the time left), the username
kept, post/redirect/get (Back after sign-out never resubmits a form); TOTP enrolment from the portal
(a one-time code through notifier.filesystem, the QR code decoded by zbarimg, its secret's code
accepted, nothing stored before that). Screenshots of every step go to
integration-tests/artifacts/portal-NN.png. Fails when /usr/bin/chromium, node or npm is missing."""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "web"))
from webtest import Upstream, gui_root, web_config  # noqa: E402
from xt_testlib import (ARTIFACTS, BIN_DIR, NatsServer, Proc, TempDir, bin_path, fast_hash, http_request,  # noqa: E402
                        port_block, wait_until)

if not os.path.exists("/usr/bin/chromium") or not shutil.which("npm") or not shutil.which("node") \
        or not shutil.which("zbarimg"):
    print("FAIL: the browser test needs /usr/bin/chromium, node, npm and zbarimg (scripts/deps.sh test installs them)")
    sys.exit(1)

P = port_block("auth")
WEB, TLS, AUTH, UP, NATS, NATS_HTTP = P[0], P[1], P[2], P[3], P[4], P[5]
DOMAIN = "xtask.test"
APP_URL = f"https://app.{DOMAIN}:{TLS}/app/hello"
PORTAL = f"https://auth.{DOMAIN}:{TLS}/"
USER, PASS = "ada", "ada-pass"
USER2, PASS2 = "bea", "bea-pass"
tmp = TempDir("xt-portal-e2e-")
shots = os.path.join(ARTIFACTS, "portal")
os.makedirs(shots, exist_ok=True)

# playwright-core from this test's lockfile, installed next to the build (never into the sources)
work = os.path.join(os.path.dirname(BIN_DIR), "auth-portal-browser")
os.makedirs(work, exist_ok=True)
for f in ("package.json", "package-lock.json", "portal.mjs"):
    shutil.copy(os.path.join(HERE, "browser", f), os.path.join(work, f))
if not os.path.exists(os.path.join(work, "node_modules", "playwright-core", "package.json")):
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, timeout=300)

cert, key = os.path.join(tmp.path, "cert.pem"), os.path.join(tmp.path, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN}"],
               check=True, capture_output=True)

users = tmp.write("users.yml", f"""users:
  {USER}:
    displayname: "Ada"
    password: "{fast_hash(PASS)}"
    email: ada@{DOMAIN}
    groups: [admins]
  {USER2}:
    displayname: "Bea"
    password: "{fast_hash(PASS2)}"
    email: bea@{DOMAIN}
    groups: [admins]
""")
notify = os.path.join(tmp.path, "notification.txt")
auth_cfg = tmp.write("auth.yml", f"""
server: {{ address: "tcp://127.0.0.1:{AUTH}/" }}
log: {{level: info}}
totp: {{issuer: {DOMAIN}, secrets_path: "{tmp.path}/totp.yml"}}
authentication_backend:
  file:
    path: "{users}"
access_control:
  default_policy: deny
  rules:
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: bypass
      resources: ["^/health([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: two_factor
      subject: "group:admins"
session:
  domain: {DOMAIN}
  authelia_url: "{PORTAL}"
  secret: "0123456789abcdef0123456789abcdef"
notifier:
  filesystem: {{ filename: "{notify}" }}
regulation:
  max_retries: 3
  find_time: 2m
  ban_time: 2m
  failure_delay: 100ms
""")
procs = []
rc = 1
try:
    r = subprocess.run([bin_path("xtask-auth"), "totp-generate", "--user", USER, "--config", auth_cfg],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    secret = re.search(r"secret=([A-Z2-7]+)", r.stdout).group(1)
    nats = NatsServer(NATS, NATS_HTTP, os.path.join(tmp.path, "nats")).start()
    procs.append(Proc([bin_path("xtask-auth"), "--config", auth_cfg]))
    wait_until(lambda: http_request(f"http://127.0.0.1:{AUTH}/api/health", timeout=1)[0] == 200, 15, what="xtask-auth")
    up = Upstream(UP).start()
    cfg = web_config(os.path.join(tmp.path, "web.yaml"), listen=f"127.0.0.1:{WEB}", auth_port=AUTH, upstream_port=UP,
                     nats_port=NATS, nats_http_port=NATS_HTTP, gui_root=gui_root(), static_root=tmp.path,
                     portal_url=PORTAL, tls={"address": f"127.0.0.1:{TLS}", "cert": cert, "key": key}, domain=DOMAIN)
    web = Proc([bin_path("xtask-web"), "--config", cfg])
    procs.append(web)
    web.wait_output(r"ready", 10)
    env = {"E2E_APP_URL": APP_URL, "E2E_PORTAL_PREFIX": PORTAL, "E2E_USER": USER, "E2E_PASS": PASS,
           "E2E_SECRET": secret, "E2E_USER2": USER2, "E2E_PASS2": PASS2,
           "E2E_NOTIFY_FILE": notify, "E2E_TOTP_FILE": os.path.join(tmp.path, "totp.yml"), "E2E_SCREENSHOT_DIR": shots, "E2E_RESOLVER_RULES": f"MAP *.{DOMAIN} 127.0.0.1"}
    r = subprocess.run(["node", "portal.mjs"], cwd=work, env={**os.environ, **env}, timeout=150)
    rc = r.returncode
    if rc != 0:
        for p in procs:
            print(p.output()[-3000:])
    else:
        out = procs[0].output()
        assert secret not in out and PASS not in out and PASS2 not in out, "a secret in the auth log"
        assert "TOTP enrolled for 'bea' from the portal" in out, out[-2000:]
finally:
    for p in procs:
        p.kill()
    try:
        nats.stop()
        up.stop()
    except NameError:
        pass
    tmp.cleanup()
sys.exit(rc)
