#!/usr/bin/env python3
"""Browser end to end over TLS + HTTP/2: Debian's chromium driven by playwright-core (npm) logs in
through the portal, sees the live node, runs a task, watches its output arrive over SSE, logs out.
The screenshot goes to integration-tests/artifacts/web-e2e.png.

Uses the real xtask-auth and the real xtask coordinator node when they are built (stand-ins
otherwise). Skipped only when /usr/bin/chromium or npm is missing."""
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webtest import FakeNode, Nats, StandinAuth, SupervisorStatus, Upstream, gui_root, web_config  # noqa: E402
from xt_testlib import (ARTIFACTS, BIN_DIR, NatsServer, Proc, TempDir, bin_path, http_request, port_block,  # noqa: E402
                        wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.exists("/usr/bin/chromium") or not shutil.which("npm") or not shutil.which("node"):
    print("FAIL: the browser test needs /usr/bin/chromium, node and npm (scripts/deps.sh test installs them)")
    sys.exit(1)


def have(name):
    try:
        return bin_path(name)
    except FileNotFoundError:
        return None


P = port_block("web")
WEB, TLS, AUTH, UP, NATS, NATS_HTTP, SUP = P[0], P[1], P[2], P[3], P[4], P[5], P[6]
DOMAIN = "xtask.test"
APP_URL = f"https://app.{DOMAIN}:{TLS}/web/"
PORTAL = f"https://auth.{DOMAIN}:{TLS}/"
tmp = TempDir("xt-webe2e-")
os.makedirs(ARTIFACTS, exist_ok=True)
shot = os.path.join(ARTIFACTS, "web-e2e.png")

# playwright-core from the lockfile, installed next to the build (never into the sources)
work = os.path.join(os.path.dirname(BIN_DIR), "web-browser-e2e")
os.makedirs(work, exist_ok=True)
for f in ("package.json", "package-lock.json", "e2e.mjs"):
    shutil.copy(os.path.join(HERE, "browser", f), os.path.join(work, f))
if not all(os.path.exists(os.path.join(work, "node_modules", m, "package.json")) for m in ("playwright-core", "axe-core")):
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, timeout=300)

cert, key = os.path.join(tmp.path, "cert.pem"), os.path.join(tmp.path, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN}"],
               check=True, capture_output=True)

nats = NatsServer(NATS, NATS_HTTP, os.path.join(tmp.path, "nats")).start()
procs = []
auth_bin = have("xtask-auth")
if auth_bin:
    pw_hash = subprocess.run(["argon2", "saltsalt1234", "-id", "-t", "1", "-m", "10", "-p", "1", "-e"], input=b"dev-pass",
                             capture_output=True, check=True).stdout.decode().strip()
    users = tmp.write("users.yml", f"""users:
  developer:
    displayname: "Developer"
    password: "{pw_hash}"
    email: dev@{DOMAIN}
    groups: [developers]
""")
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
      policy: one_factor
      subject: "group:developers"
      resources: ["^/web([/?].*)?$", "^/api([/?].*)?$", "^/events([/?].*)?$"]
session:
  domain: {DOMAIN}
  authelia_url: "{PORTAL}"
  secret: "0123456789abcdef0123456789abcdef"
""")
    procs.append(Proc([auth_bin, "--config", auth_cfg]))
    wait_until(lambda: http_request(f"http://127.0.0.1:{AUTH}/api/health", timeout=1)[0] == 200, 15, what="xtask-auth")
    auth_kind = "xtask-auth"
else:
    StandinAuth(AUTH, PORTAL, cookie_domain=DOMAIN).start()
    auth_kind = "stand-in auth"

node_id = "e2e-1"
xtask_bin = have("xtask")
if xtask_bin:
    xcfg = tmp.write("xtask.yaml", f"""version: 1
node: {{ region: local, capabilities: [task], events_project: default }}
nats: {{ url: "nats://127.0.0.1:{NATS}", heartbeat: 1s, node_ttl: 5s, replicas: 1 }}
tasks:
  count:
    argv: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i of 5; sleep 0.2; done"]
    timeout: 20s
  demo:
    argv: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo step $i of 8; sleep 0.5; done"]
    timeout: 30s
    description: eight steps, half a second apart
  slow:
    argv: ["sleep", "30"]
    timeout: 1s
""")
    procs.append(Proc([xtask_bin, "--nats-mode", "--config", xcfg, "--node-id", node_id]))
    task = "count"
    node_kind = "xtask coordinator"
else:
    nc = Nats(NATS)
    fake = FakeNode(nc, node_id, lines=5, line_delay=0.2)
    task = "build"
    node_kind = "stand-in node"

up = Upstream(UP).start()
sup = SupervisorStatus(SUP)
cfg = web_config(os.path.join(tmp.path, "web.yaml"), listen=f"127.0.0.1:{WEB}", auth_port=AUTH, upstream_port=UP,
                 nats_port=NATS, nats_http_port=NATS_HTTP, gui_root=gui_root(), static_root=tmp.path, portal_url=PORTAL,
                 tls={"address": f"127.0.0.1:{TLS}", "cert": cert, "key": key}, domain=DOMAIN,
                 supervisor_url=f"http://127.0.0.1:{SUP}/status.json", events_extra="  session_check: 3s\n",
                 api_extra="  projects:\n    default: { groups: [developers] }\n    ops: { groups: [admins] }\n")
web = Proc([bin_path("xtask-web"), "--config", cfg])
procs.append(web)
web.wait_output(r"ready", 10)
if not xtask_bin:
    fake.heartbeat()

# An edge node as the web sees it: a record with tags, the region its leaf attaches to, a 3 s TTL.
# It announces itself until the page asks it to go silent (the file edge-stop in the work dir).
edge_stop = os.path.join(work, "edge-stop")
if os.path.exists(edge_stop):
    os.unlink(edge_stop)
edge_nc = Nats(NATS, name="edge-sim")
edge_done = threading.Event()


def edge_node():
    rec = {"id": "edge-ci-1", "region": "ams", "tags": ["ci", "linux"], "capabilities": ["task"],
           "platform": {"os": "linux", "arch": "x86_64", "hostname": "runner"}, "tasks": ["build"],
           "task_info": {"build": {"description": "the CI build", "args": True}},
           "load": {"running": 0, "queued": 0, "load1": 0.0}, "heartbeat_ms": 1000, "ttl_ms": 3000}
    while not edge_done.is_set() and not os.path.exists(edge_stop):
        rec["ts_ms"] = int(time.time() * 1000)
        edge_nc.publish("xtask.nodes.heartbeat.edge-ci-1", rec)
        edge_done.wait(1.0)


edge_thread = threading.Thread(target=edge_node, daemon=True)
edge_thread.start()
print(f"e2e with {auth_kind} and {node_kind}; screenshot {shot}", flush=True)
env = {"E2E_APP_URL": APP_URL, "E2E_PORTAL_PREFIX": PORTAL, "E2E_USER": "developer", "E2E_PASS": "dev-pass",
       "E2E_NODE": node_id, "E2E_TASK": task, "E2E_SCREENSHOT": shot,
       "E2E_RESOLVER_RULES": f"MAP *.{DOMAIN} 127.0.0.1", "E2E_FULL": "1" if xtask_bin else "",
       "E2E_EDGE_STOP": edge_stop}
r = subprocess.run(["node", "e2e.mjs"], cwd=work, env={**os.environ, **env}, timeout=150)
edge_done.set()
edge_thread.join(5)
if r.returncode != 0:
    print(web.output()[-3000:])
    for p in procs[:-1]:
        print(p.output()[-2000:])
for p in procs:
    p.kill()
nats.stop()
up.stop()
sup.stop()
tmp.cleanup()
sys.exit(r.returncode)
